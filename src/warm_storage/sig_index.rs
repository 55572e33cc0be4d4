//! The in-memory half of the warm tier's two-level signature index.
//!
//! `sig_index` in SQLite maps `sig_hash → id` for every row at or below the watermark
//! `meta.sig_merged_upto`; it is filled in bulk, sorted, so each merge dirties each index page
//! about once. Rows above the watermark are found through this delta instead. The delta is
//! bounded (a merge runs when it reaches `warm.signature_merge_threshold`) and is rebuilt on
//! open from the rows above the watermark, so it never needs to be persisted.

use std::collections::BTreeSet;

use parking_lot::RwLock;

/// `(sig_hash, id)` pairs of committed rows above the watermark.
#[derive(Debug, Default)]
pub(crate) struct SignatureDelta {
    entries: RwLock<BTreeSet<(i64, i64)>>,
}

/// A change to apply once its transaction has committed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DeltaChange {
    Add(i64, i64),
    Remove(i64, i64),
}

impl SignatureDelta {
    /// Ids whose signature hashes to `hash` (usually none or one).
    pub fn ids(&self, hash: i64) -> Vec<i64> {
        self.entries
            .read()
            .range((hash, i64::MIN)..=(hash, i64::MAX))
            .map(|&(_, id)| id)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn apply(&self, changes: &[DeltaChange]) {
        if changes.is_empty() {
            return;
        }
        let mut set = self.entries.write();
        for c in changes {
            match *c {
                DeltaChange::Add(h, id) => set.insert((h, id)),
                DeltaChange::Remove(h, id) => set.remove(&(h, id)),
            };
        }
    }

    /// Drop entries for ids at or below `upto` (they are now in `sig_index`).
    pub fn forget_through(&self, upto: i64) {
        self.entries.write().retain(|&(_, id)| id > upto);
    }

    pub fn replace(&self, entries: BTreeSet<(i64, i64)>) {
        *self.entries.write() = entries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_storage_signature_delta_tracks_changes() {
        let d = SignatureDelta::default();
        d.apply(&[
            DeltaChange::Add(5, 10),
            DeltaChange::Add(5, 11),
            DeltaChange::Add(6, 12),
        ]);
        assert_eq!(d.ids(5), vec![10, 11]);
        d.apply(&[DeltaChange::Remove(5, 10)]);
        assert_eq!(d.ids(5), vec![11]);
        d.forget_through(11);
        assert!(d.ids(5).is_empty());
        assert_eq!(d.ids(6), vec![12]);
        assert_eq!(d.len(), 1);
    }
}
