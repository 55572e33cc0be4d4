//! Building the files of an archival move: warm rows by day partition, one open file per
//! partition. Each file is staged, fsynced and published through the store (see
//! `store/local.rs` for the order that makes it crash-safe); the coordinator then commits the
//! catalog change through the warm writer. Compaction writes its output with the same
//! [`Part`] (`compact.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::{ColdFile, ColdFileWriter};
use super::store::{ColdStore, FileRef, RangeRead};
use super::{day_of, ColdArchiveStorage};
use crate::catalog::{ColdCatalog, NewFile};
use crate::error::{Error, Result};
use crate::failpoint::crash_point_of;
use crate::record::Record;

/// Called with a file's partition and `(id, rev)` rows before it is published (archival uses
/// it to keep a partition from holding a dead and a live copy of one id, see
/// `coordinator/deletes.rs`).
pub(crate) type PublishHook<'a> = dyn FnMut(&str, &[(i64, i64)]) -> Result<()> + Send + 'a;

/// A published file, ready for its catalog commit.
#[derive(Debug)]
pub(crate) struct FinishedFile {
    pub file: NewFile,
    /// `(id, rev)` of every row, for an archival commit.
    pub rows: Vec<(i64, i64)>,
}

/// One output file being written (staged in the store until [`finish`](Self::finish)).
pub(super) struct Part<R: Record> {
    writer: Option<ColdFileWriter<R>>,
    store: Arc<dyn ColdStore>,
    /// For the intent recorded before an upload (object stores).
    catalog: Arc<dyn ColdCatalog>,
    /// The file's key.
    relative: String,
    rows: Vec<(i64, i64)>,
    prefix: &'static str,
    /// The archival page that last added rows (to close the least recently used part).
    last_page: u64,
    /// Published (or handed over): nothing staged is left to discard.
    done: bool,
}

impl<R: Record> Part<R> {
    pub(super) fn create(
        cold: &ColdArchiveStorage<R>,
        day: i64,
        prefix: &'static str,
    ) -> Result<Self> {
        let relative = cold.new_file_path(day)?;
        let store = Arc::clone(cold.store());
        let writer =
            ColdFileWriter::create_with(&cold.writer_options(), store.path_of(&relative), || {
                store.stage(&relative)
            })?;
        Ok(Self {
            writer: Some(writer),
            store,
            catalog: Arc::clone(cold.catalog()),
            relative,
            rows: Vec::new(),
            prefix,
            last_page: 0,
            done: false,
        })
    }

    pub(super) fn append(&mut self, records: &[R], revs: impl Iterator<Item = i64>) -> Result<()> {
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

    /// Remove the published file again (best effort: a file left behind is uncatalogued, and
    /// the next open removes it).
    fn remove_published(&self) {
        match self.store.delete(&self.relative) {
            Ok(()) => tracing::info!(key = %self.relative, "removed a short published file"),
            Err(e) => {
                tracing::warn!(key = %self.relative, error = %e, "could not remove a short published file; the next open will")
            }
        }
    }

    pub(super) fn estimated_bytes(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.estimated_bytes())
    }

    /// Steps 1–4 of a move: close and fsync the staged file, publish it (locally: rename it
    /// into place, fsync the directory), and check that the store holds every byte written.
    pub(super) fn finish(self) -> Result<FinishedFile> {
        self.finish_with(&mut |_, _| Ok(()))
    }

    /// [`finish`](Self::finish), calling `before_publish` with the file's partition and rows
    /// once the file is staged and synced, before it is published.
    pub(super) fn finish_with(
        mut self,
        before_publish: &mut PublishHook<'_>,
    ) -> Result<FinishedFile> {
        let writer = self.writer.take().expect("finished once");
        let summary = writer.finish()?;
        // Checksums of what is staged now, fsynced: the catalog commit stores them.
        let staged = FileRef::staged(&self.store, &self.relative);
        let opened = ColdFile::<R>::open_at(staged, None)?;
        let page_sums = opened.compute_sums()?;
        // The tail an open reads (page index and footer): one suffix read on an object store.
        let footer_len = match opened.footer_len() {
            Some(tail) => tail,
            None => footer_len(
                &*self.store.open_staged(&self.relative)?,
                summary.bytes,
                &self.store.path_of(&self.relative),
            )?,
        };
        crash_point_of(self.prefix, "temp_written");
        before_publish(super::store::partition_of(&self.relative), &self.rows)?;
        if self.store.is_remote() {
            // A crash between the upload and the catalog commit leaves an object nothing
            // names: the intent lets the sweep find it without listing the bucket.
            self.catalog
                .record_intents(std::slice::from_ref(&self.relative))?;
        }
        self.store.publish(&self.relative)?;
        self.done = true;
        crash_point_of(self.prefix, "published");
        // A short write or a cut-off upload must not get a file catalogued whose checksums
        // cannot match: its records would be unreadable once warm deleted them.
        let published = self.store.stat(&self.relative);
        let etag = match &published {
            Ok(Some(s)) if s.len == summary.bytes => s.etag.clone(),
            _ => None,
        };
        let published = published.map(|s| s.map(|s| s.len));
        if !matches!(published, Ok(Some(n)) if n == summary.bytes) {
            self.remove_published();
            return Err(match published {
                Err(e) => e,
                Ok(found) => Error::Io {
                    op: "publish cold file",
                    path: self.store.path_of(&self.relative),
                    source: std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        format!(
                            "{} of {} bytes published",
                            found.unwrap_or(0),
                            summary.bytes
                        ),
                    ),
                },
            });
        }
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
                etag,
                footer_len: Some(footer_len),
            },
            rows: std::mem::take(&mut self.rows),
        })
    }
}

/// The length of the Parquet footer of a `len`-byte file: its metadata plus the 8-byte tail
/// (metadata length, `PAR1`). With it in the catalog, an uncached footer is one suffix read.
pub(crate) fn footer_len(file: &dyn RangeRead, len: u64, path: &std::path::Path) -> Result<u64> {
    let tail = file.read(len.saturating_sub(8)..len)?;
    match <[u8; 8]>::try_from(&tail[..]) {
        Ok(t) if &t[4..] == b"PAR1" => {
            let meta = u64::from(u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
            Ok((meta + 8).min(len))
        }
        _ => Err(Error::cold_file(path, "not a Parquet file: no PAR1 tail")),
    }
}

impl<R: Record> Drop for Part<R> {
    fn drop(&mut self) {
        // An abandoned part (error, or a pass cut short) leaves no staged file behind, and
        // neither does a failed finish (a full disk at close, fsync or publish).
        drop(self.writer.take());
        if !self.done {
            if let Err(e) = self.store.discard_staged(&self.relative) {
                tracing::warn!(key = %self.relative, error = %e, "could not remove a staged cold file; the next open will");
            }
        }
    }
}

/// Archival output: one open file per day partition (at most `max_open_partitions`; beyond
/// that the least recently used is closed), each closed at the target size.
pub(crate) struct ArchiveBuilder<'a, R: Record> {
    cold: ColdArchiveStorage<R>,
    before_publish: Box<PublishHook<'a>>,
    open: BTreeMap<i64, Part<R>>,
    pages: u64,
    /// Files are also closed at this many rows (bounding each archival commit).
    max_file_rows: usize,
}

impl<'a, R: Record> ArchiveBuilder<'a, R> {
    pub(crate) fn new(cold: ColdArchiveStorage<R>) -> Self {
        Self {
            cold,
            before_publish: Box::new(|_, _| Ok(())),
            open: BTreeMap::new(),
            pages: 0,
            max_file_rows: usize::MAX,
        }
    }

    /// Call `hook` before each file is published.
    pub(crate) fn with_before_publish(mut self, hook: Box<PublishHook<'a>>) -> Self {
        self.before_publish = hook;
        self
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
                    finished.push(part.finish_with(&mut *self.before_publish)?);
                }
                self.open
                    .insert(day, Part::create(&self.cold, day, "archive")?);
            }
            let part = self.open.get_mut(&day).expect("just opened");
            part.last_page = self.pages;
            part.append(&records, revs.into_iter())?;
            if part.estimated_bytes() >= target || part.rows.len() >= self.max_file_rows {
                let part = self.open.remove(&day).expect("present");
                finished.push(part.finish_with(&mut *self.before_publish)?);
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
            match part.finish_with(&mut *self.before_publish) {
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
    match cold.store().delete(relative) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed a published file its failed pass never catalogued")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an uncatalogued file; the next open will")
        }
    }
}
