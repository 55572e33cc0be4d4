//! Building the files of a tier move: archival output (warm rows by day partition) and
//! compaction output (live rows of several files merged). Each file is written to a temp path,
//! fsynced, renamed into place and its directory fsynced; the coordinator then commits the
//! catalog change through the warm writer.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use super::file::{publish, ColdFile, ColdFileScan, ColdFileWriter, ScanBounds};
use super::{day_of, ColdArchiveStorage};
use crate::catalog::{CatalogEntry, FileState, NewFile};
use crate::error::{Error, Result};
use crate::failpoint::crash_point;
use crate::record::Record;

/// A compaction's output (none when no input row was live) and the tombstones it consumed.
pub(crate) type CompactionOutput = (Option<FinishedFile>, Vec<(i64, i64)>);

/// A published file, ready for its catalog commit.
#[derive(Debug)]
pub(crate) struct FinishedFile {
    pub file: NewFile,
    /// `(id, rev)` of every row, for an archival commit.
    pub rows: Vec<(i64, i64)>,
}

/// One output file being written.
struct Part<R: Record> {
    writer: Option<ColdFileWriter<R>>,
    tmp: PathBuf,
    final_path: PathBuf,
    relative: String,
    rows: Vec<(i64, i64)>,
    prefix: &'static str,
    /// The archival page that last added rows (to close the least recently used part).
    last_page: u64,
}

impl<R: Record> Part<R> {
    fn create(cold: &ColdArchiveStorage<R>, day: i64, prefix: &'static str) -> Result<Self> {
        let relative = cold.new_file_path(day)?;
        let final_path = cold.file_path(&relative);
        let tmp = final_path.with_extension("parquet.tmp");
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                op: "create cold partition",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let writer = ColdFileWriter::create(&tmp, &cold.writer_options())?;
        Ok(Self {
            writer: Some(writer),
            tmp,
            final_path,
            relative,
            rows: Vec::new(),
            prefix,
            last_page: 0,
        })
    }

    fn append(&mut self, records: &[R], revs: impl Iterator<Item = i64>) -> Result<()> {
        self.writer
            .as_mut()
            .expect("an open part has a writer")
            .append(records)?;
        self.rows.extend(
            records
                .iter()
                .map(|r| r.id().expect("stored records carry their id"))
                .zip(revs),
        );
        Ok(())
    }

    fn estimated_bytes(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.estimated_bytes())
    }

    /// Steps 1–4 of a move: close and fsync the temp file, rename it into place, fsync the
    /// directory.
    fn finish(mut self) -> Result<FinishedFile> {
        let writer = self.writer.take().expect("finished once");
        let summary = writer.finish()?;
        // Checksums of what is on disk now, fsynced: the catalog commit stores them.
        let page_sums = ColdFile::<R>::open(&self.tmp)?.compute_sums()?;
        crash_point(&format!("{}:temp_written", self.prefix));
        publish(&self.tmp, &self.final_path)?;
        crash_point(&format!("{}:published", self.prefix));
        Ok(FinishedFile {
            file: NewFile {
                path: std::mem::take(&mut self.relative),
                min_id: summary.min_id,
                max_id: summary.max_id,
                min_ts: summary.min_ts,
                max_ts: summary.max_ts,
                rows: summary.rows,
                bytes: summary.bytes,
                page_sums: Some(page_sums),
            },
            rows: std::mem::take(&mut self.rows),
        })
    }
}

impl<R: Record> Drop for Part<R> {
    fn drop(&mut self) {
        // An abandoned part (error, or a pass cut short) leaves no temp file behind, and
        // neither does a failed finish (a full disk at close, fsync or rename). After a
        // successful publish the temp path no longer exists and this does nothing.
        drop(self.writer.take());
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Archival output: one open file per day partition (at most `max_open_partitions`; beyond
/// that the least recently used is closed), each closed at the target size.
pub(crate) struct ArchiveBuilder<R: Record> {
    cold: ColdArchiveStorage<R>,
    open: BTreeMap<i64, Part<R>>,
    pages: u64,
    /// Files are also closed at this many rows (bounding each archival commit).
    max_file_rows: usize,
}

impl<R: Record> ArchiveBuilder<R> {
    pub(crate) fn new(cold: ColdArchiveStorage<R>) -> Self {
        Self {
            cold,
            open: BTreeMap::new(),
            pages: 0,
            max_file_rows: usize::MAX,
        }
    }

    /// Close files at `rows` rows too (checked after each page, so a file may exceed it by
    /// less than one page).
    pub(crate) fn with_max_file_rows(mut self, rows: usize) -> Self {
        self.max_file_rows = rows.max(1);
        self
    }

    /// Add one keyset page of warm rows `(rev, record)`, in ascending id order. Returns the
    /// files that reached the target size (or were closed to make room), already published.
    pub(crate) fn add_page(&mut self, page: Vec<(i64, R)>) -> Result<Vec<FinishedFile>> {
        let mut finished = Vec::new();
        match self.add_page_into(page, &mut finished) {
            Ok(()) => Ok(finished),
            Err(e) => {
                discard(&self.cold, &finished);
                Err(e)
            }
        }
    }

    fn add_page_into(
        &mut self,
        page: Vec<(i64, R)>,
        finished: &mut Vec<FinishedFile>,
    ) -> Result<()> {
        let mut by_day: BTreeMap<i64, (Vec<R>, Vec<i64>)> = BTreeMap::new();
        for (rev, r) in page {
            let e = by_day.entry(day_of(r.timestamp_ms())).or_default();
            e.0.push(r);
            e.1.push(rev);
        }
        let target = self.cold.config().target_file_bytes();
        self.pages += 1;
        for (day, (records, revs)) in by_day {
            if !self.open.contains_key(&day) {
                if self.open.len() >= self.cold.config().max_open_partitions {
                    // Close the file that went longest without rows: pages come in id order,
                    // so a day that stopped receiving rows is usually done.
                    let stalest = *self
                        .open
                        .iter()
                        .min_by_key(|(_, p)| p.last_page)
                        .expect("at least one open part")
                        .0;
                    let part = self.open.remove(&stalest).expect("present");
                    finished.push(part.finish()?);
                }
                self.open
                    .insert(day, Part::create(&self.cold, day, "archive")?);
            }
            let part = self.open.get_mut(&day).expect("just opened");
            part.last_page = self.pages;
            part.append(&records, revs.into_iter())?;
            if part.estimated_bytes() >= target || part.rows.len() >= self.max_file_rows {
                let part = self.open.remove(&day).expect("present");
                finished.push(part.finish()?);
            }
        }
        Ok(())
    }

    /// Close every open file. On an error, files already published by this call are removed
    /// again (they would never be catalogued); the others' temp files go with their parts.
    pub(crate) fn finish(mut self) -> Result<Vec<FinishedFile>> {
        let parts = std::mem::take(&mut self.open);
        let mut finished = Vec::with_capacity(parts.len());
        for part in parts.into_values() {
            match part.finish() {
                Ok(f) => finished.push(f),
                Err(e) => {
                    discard(&self.cold, &finished);
                    return Err(e);
                }
            }
        }
        Ok(finished)
    }
}

/// Remove published files that will never be catalogued (their pass failed first). Best
/// effort: a file left behind is uncatalogued, and the next open removes it.
pub(crate) fn discard<R: Record>(cold: &ColdArchiveStorage<R>, files: &[FinishedFile]) {
    for f in files {
        discard_path(cold, &f.file.path);
    }
}

/// [`discard`] for one catalog-relative path.
pub(crate) fn discard_path<R: Record>(cold: &ColdArchiveStorage<R>, relative: &str) {
    let path = cold.file_path(relative);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed a published file its failed pass never catalogued")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an uncatalogued file; the next open will")
        }
    }
}

/// Files of one partition to merge into one.
#[derive(Debug, Clone)]
pub(crate) struct CompactionGroup {
    pub inputs: Vec<CatalogEntry>,
}

/// The partition (`date=...`) of a relative path.
fn partition(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
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
        for e in entries.iter().filter(|e| e.state == FileState::Live) {
            let dead_heavy =
                e.rows > 0 && e.dead_rows as f64 >= e.rows as f64 * cfg.compact_dead_fraction;
            if dead_heavy || e.bytes < small {
                by_partition.entry(partition(&e.path)).or_default().push(e);
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
