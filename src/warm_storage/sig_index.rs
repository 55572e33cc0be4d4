//! The in-memory half of the warm tier's two-level signature index.
//!
//! `sig_index` in SQLite maps `sig_hash → id` for every row at or below the watermark
//! `meta.sig_merged_upto`; it is filled in bulk, sorted, so each merge dirties each index page
//! about once. Rows above the watermark are found through this delta instead, except archived
//! ones: the archival step that deletes a warm row above the watermark moves its pair from the
//! delta into `sig_index`, in the same transaction. The delta is
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

    pub fn contains(&self, hash: i64, id: i64) -> bool {
        self.entries.read().contains(&(hash, id))
    }

    /// Drop the pairs of rows that left warm (archived: `sig_index` holds them now), after
    /// the commit that indexed them there.
    pub fn forget(&self, pairs: &[(i64, i64)]) {
        let mut set = self.entries.write();
        for pair in pairs {
            set.remove(pair);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Insert the `Add`s of `changes`; returns the pairs that were not already present, so a
    /// failed commit can take back exactly those. Done *before* COMMIT: a reader must never see
    /// a committed row by id yet miss it by signature, and a premature entry is harmless because
    /// every candidate is confirmed against the committed row.
    pub fn add_before_commit(&self, changes: &[DeltaChange]) -> Vec<(i64, i64)> {
        let mut set = self.entries.write();
        changes
            .iter()
            .filter_map(|c| match *c {
                DeltaChange::Add(h, id) if set.insert((h, id)) => Some((h, id)),
                _ => None,
            })
            .collect()
    }

    /// Take back pairs added by [`add_before_commit`](Self::add_before_commit) for a
    /// transaction that did not commit.
    pub fn undo(&self, added: &[(i64, i64)]) {
        let mut set = self.entries.write();
        for pair in added {
            set.remove(pair);
        }
    }

    /// Apply the `Remove`s of `changes`, after COMMIT (until then the old rows are still the
    /// committed ones). A pair that a later change in the same batch re-added stays.
    pub fn remove_after_commit(&self, changes: &[DeltaChange]) {
        let mut set = self.entries.write();
        for (i, c) in changes.iter().enumerate() {
            if let DeltaChange::Remove(h, id) = *c {
                let re_added = changes[i + 1..].iter().any(
                    |later| matches!(*later, DeltaChange::Add(h2, id2) if (h2, id2) == (h, id)),
                );
                if !re_added {
                    set.remove(&(h, id));
                }
            }
        }
    }

    #[cfg(test)]
    pub fn apply(&self, changes: &[DeltaChange]) {
        self.add_before_commit(changes);
        self.remove_after_commit(changes);
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

    /// Rename A→B→A in one batch, then the commit fails: A must still be there, B must not.
    #[test]
    fn warm_storage_signature_delta_undo_takes_back_only_new_pairs() {
        let d = SignatureDelta::default();
        d.apply(&[DeltaChange::Add(1, 7)]);
        let batch = [
            DeltaChange::Remove(1, 7),
            DeltaChange::Add(2, 7),
            DeltaChange::Remove(2, 7),
            DeltaChange::Add(1, 7),
        ];
        let added = d.add_before_commit(&batch);
        assert_eq!(added, vec![(2, 7)]);
        d.undo(&added);
        assert_eq!(d.ids(1), vec![7]);
        assert!(d.ids(2).is_empty());
        // Had it committed: the final state is A.
        d.add_before_commit(&batch);
        d.remove_after_commit(&batch);
        assert_eq!(d.ids(1), vec![7]);
        assert!(d.ids(2).is_empty());
    }
}
