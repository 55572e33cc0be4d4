//! Compaction: which files to merge (per day partition, small or dead-heavy files packed up
//! to the target size), the merge of their live rows into one new file, and the removal of
//! the inputs once the catalog no longer references them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::archive::{FinishedFile, Part};
use super::file::{ColdFileScan, ScanBounds};
use super::store::partition_of;
use super::ColdArchiveStorage;
use crate::catalog::{CatalogEntry, FileState};
use crate::error::Result;
use crate::record::Record;

/// A compaction's output (none when no input row was live) and the tombstones it consumed.
pub(crate) type CompactionOutput = (Option<FinishedFile>, Vec<(i64, i64)>);

/// Files of one partition to merge into one.
#[derive(Debug, Clone)]
pub(crate) struct CompactionGroup {
    pub inputs: Vec<CatalogEntry>,
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Which files to compact: per day partition, the live files that are small (below
    /// `compact_small_fraction` of the target) or hold many dead rows (at least
    /// `compact_dead_fraction`), packed into groups whose live bytes fit the target. A group
    /// of one small file with nothing dead is left alone: rewriting it gains nothing.
    pub(crate) fn plan_compaction(&self, entries: &[CatalogEntry]) -> Vec<CompactionGroup> {
        let cfg = self.config();
        let target = cfg.target_file_bytes();
        let small = (target as f64 * cfg.compact_small_fraction) as u64;
        let mut by_partition: BTreeMap<&str, Vec<&CatalogEntry>> = BTreeMap::new();
        // A file still settling serves only part of its rows: it waits for its archival.
        for e in entries
            .iter()
            .filter(|e| e.state == FileState::Live && e.is_settled())
        {
            let dead_heavy =
                e.rows > 0 && e.dead_rows as f64 >= e.rows as f64 * cfg.compact_dead_fraction;
            if dead_heavy || e.bytes < small {
                by_partition
                    .entry(partition_of(&e.path))
                    .or_default()
                    .push(e);
            }
        }
        let mut groups = Vec::new();
        for files in by_partition.into_values() {
            let mut current: Vec<CatalogEntry> = Vec::new();
            let mut bytes = 0u64;
            for e in files {
                let live_bytes = e.bytes * e.live_rows() / e.rows.max(1);
                if !current.is_empty() && bytes + live_bytes > target {
                    groups.push(std::mem::take(&mut current));
                    bytes = 0;
                }
                bytes += live_bytes;
                current.push(e.clone());
            }
            groups.push(current);
        }
        groups
            .into_iter()
            .filter(|g| g.len() > 1 || g.iter().any(|e| e.dead_rows > 0))
            .map(|inputs| CompactionGroup { inputs })
            .collect()
    }

    /// Write the merged file of a group: the live rows of its inputs in id order, tombstoned
    /// rows dropped. Returns the published file (`None` when no row is live) and the
    /// tombstones it consumed, for the catalog commit.
    pub(crate) fn build_compaction(&self, group: &CompactionGroup) -> Result<CompactionOutput> {
        let mut dropped = Vec::new();
        let mut sources = Vec::new();
        let bounds = ScanBounds::default();
        for e in &group.inputs {
            let dead = self.catalog().dead_ids(e.file_id, i64::MIN, i64::MAX)?;
            dropped.extend(dead.iter().map(|&id| (e.file_id, id)));
            sources.push(MergeSource {
                scan: self.scan_file(e, &bounds)?,
                buffer: VecDeque::new(),
                dead,
            });
        }
        let day = super::day_of(group.inputs[0].min_ts);
        let mut part: Option<Part<R>> = None;
        let mut batch: Vec<R> = Vec::with_capacity(8192);
        let mut last: Option<i64> = None;
        loop {
            let mut best: Option<(usize, i64)> = None;
            for (i, s) in sources.iter_mut().enumerate() {
                if let Some(id) = s.peek_id()? {
                    if best.is_none_or(|(_, b)| id < b) {
                        best = Some((i, id));
                    }
                }
            }
            let Some((i, id)) = best else { break };
            let r = sources[i].buffer.pop_front().expect("peeked");
            if last == Some(id) {
                // Two live copies of one id cannot happen (exactly-once); keep the first.
                tracing::warn!(
                    id,
                    "duplicate live id across compaction inputs; keeping one"
                );
                continue;
            }
            last = Some(id);
            batch.push(r);
            if batch.len() == 8192 {
                let p = match part.as_mut() {
                    Some(p) => p,
                    None => part.insert(Part::create(self, day, "compact")?),
                };
                p.append(&batch, std::iter::repeat(0))?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            let p = match part.as_mut() {
                Some(p) => p,
                None => part.insert(Part::create(self, day, "compact")?),
            };
            p.append(&batch, std::iter::repeat(0))?;
        }
        let finished = part.map(Part::finish).transpose()?;
        Ok((finished, dropped))
    }
}

/// One compaction input: its scan, a buffer of rows, and the ids to drop.
struct MergeSource<R: Record> {
    scan: ColdFileScan<R>,
    buffer: VecDeque<R>,
    dead: Vec<i64>,
}

impl<R: Record> MergeSource<R> {
    /// The next live id, refilling the buffer from the scan as needed.
    fn peek_id(&mut self) -> Result<Option<i64>> {
        loop {
            while let Some(r) = self.buffer.front() {
                let id = r.id().expect("cold rows carry their id");
                if self.dead.binary_search(&id).is_ok() {
                    self.buffer.pop_front();
                } else {
                    return Ok(Some(id));
                }
            }
            match self.scan.next() {
                Some(batch) => self.buffer.extend(batch?),
                None => return Ok(None),
            }
        }
    }
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Remove compacted input files, which the catalog no longer references, and make the
    /// removals durable. A file that cannot be removed is only logged: it is uncatalogued, and
    /// the next open removes it. Fails only if a partition cannot be synced.
    pub(crate) fn remove_compacted(&self, inputs: &[CatalogEntry]) -> Result<()> {
        let store = self.store();
        if store.is_remote() {
            // Readers that opened an input before the switch may still read it: the intent
            // recorded before the commit has the sweep delete it after the grace period.
            return Ok(());
        }
        let mut partitions = BTreeSet::new();
        for e in inputs {
            match store.delete(&e.path) {
                Ok(()) => {
                    partitions.insert(partition_of(&e.path));
                }
                Err(err) => {
                    // Harmless: the file is uncatalogued and the next open removes it.
                    tracing::warn!(path = %self.file_path(&e.path).display(), error = %err, "could not remove compacted file");
                }
            }
        }
        for partition in partitions {
            store.sync(partition)?;
        }
        Ok(())
    }
}
