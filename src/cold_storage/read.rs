//! Point reads of the files a warm snapshot named: cold never asks warm which files to read.

use std::time::Instant;

use super::recovery::{ColdFileProblem, ProblemKind};
use super::{store, ColdArchiveStorage};
use crate::catalog::{ArchivedCopy, CatalogEntry, FileState};
use crate::error::{Error, Result};
use crate::record::Record;

/// What a cold read of the files it was handed found.
pub(crate) enum ColdRead<R> {
    /// The record, and the file holding its live copy.
    Found { record: R, file_id: i64 },
    /// None of the files holds it.
    Absent,
    /// A file was removed since the snapshot that named it (compaction replaced it): look the
    /// record up again. If a newer snapshot names the same file and it is still not there, it
    /// is gone for good: see [`ColdArchiveStorage::gone`].
    Vanished { file_id: i64, error: Error },
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Read record `id` from the files a warm snapshot said may hold it (blocking, about one
    /// page per column). Counted as a cold hit or miss.
    pub(crate) fn read(&self, id: i64, files: &[CatalogEntry]) -> Result<ColdRead<R>> {
        let start = Instant::now();
        let out = self.read_uncounted(id, files);
        self.count_read(&out, start);
        out
    }

    /// [`read`](Self::read) without counting a hit or miss: for the write path's lookups of
    /// an archived record's home, which are not reads.
    ///
    /// Every candidate file is tried: a record has at most one live copy, so a healthy file
    /// that holds it answers, whatever other files cover its id. Only when none does and a
    /// candidate was quarantined or unreadable is the answer an error (it may be in there),
    /// never "absent".
    pub(crate) fn read_uncounted(&self, id: i64, files: &[CatalogEntry]) -> Result<ColdRead<R>> {
        let mut failed: Option<Error> = None;
        for entry in files {
            let path = self.file_path(&entry.path);
            if entry.state == FileState::Quarantined {
                failed.get_or_insert_with(|| {
                    Error::cold_file(&path, format!("quarantined; it may hold record {id}"))
                });
                continue;
            }
            match self.open_file(entry).and_then(|f| f.get(id)) {
                Ok(Some(record)) => {
                    return Ok(ColdRead::Found {
                        record,
                        file_id: entry.file_id,
                    })
                }
                Ok(None) => {}
                Err(e) if store::is_missing(&e) => {
                    tracing::debug!(error = %e, "cold file removed since the snapshot");
                    self.forget(&[entry.file_id]);
                    return Ok(ColdRead::Vanished {
                        file_id: entry.file_id,
                        error: e,
                    });
                }
                Err(e) => {
                    self.forget(&[entry.file_id]);
                    self.report(ColdFileProblem::new(
                        Some(entry.file_id),
                        path,
                        ProblemKind::Unreadable,
                        e.to_string(),
                    ));
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(ColdRead::Absent),
        }
    }

    /// Read the archived record carrying `signature` from the copies a warm snapshot said may
    /// (their signature hash matches): each read by id and confirmed by its text. Counted as
    /// one cold hit or miss.
    pub(crate) fn read_signature(
        &self,
        signature: &str,
        copies: &[ArchivedCopy],
    ) -> Result<ColdRead<R>> {
        let start = Instant::now();
        let out = self.read_signature_uncounted(signature, copies);
        self.count_read(&out, start);
        out
    }

    fn read_signature_uncounted(
        &self,
        signature: &str,
        copies: &[ArchivedCopy],
    ) -> Result<ColdRead<R>> {
        for copy in copies {
            match self.read_uncounted(copy.id, &copy.files)? {
                ColdRead::Found { record, file_id } if record.signature() == Some(signature) => {
                    return Ok(ColdRead::Found { record, file_id })
                }
                vanished @ ColdRead::Vanished { .. } => return Ok(vanished),
                _ => {}
            }
        }
        Ok(ColdRead::Absent)
    }

    /// After a read found file `file_id` missing: `Ok` the first time (compaction removed it
    /// after the snapshot that named it; look again). A newer snapshot that still catalogues
    /// it cannot have raced a compaction (a compaction uncatalogues its inputs before it
    /// removes them), so the second time the file is gone for good: reported as a `Missing`
    /// problem, and the read fails with the error.
    pub(crate) fn check_vanished(
        &self,
        last: &mut Option<i64>,
        file_id: i64,
        error: Error,
    ) -> Result<()> {
        if *last != Some(file_id) {
            *last = Some(file_id);
            return Ok(());
        }
        let path = match &error {
            Error::ColdFile { path, .. } => path.clone(),
            _ => self.root().to_path_buf(),
        };
        self.report(ColdFileProblem::new(
            Some(file_id),
            path,
            ProblemKind::Missing,
            error.to_string(),
        ));
        Err(error)
    }

    /// Count a lookup that found no candidate file: a cold miss with no file read.
    pub(crate) fn count_miss(&self, start: Instant) {
        self.inner.stats.record(false, start);
    }

    /// A found record is a hit and an absent one a miss. A vanished file is neither: the read
    /// starts again from warm.
    fn count_read(&self, out: &Result<ColdRead<R>>, start: Instant) {
        match out {
            Ok(ColdRead::Found { .. }) => self.inner.stats.record(true, start),
            Ok(ColdRead::Absent) => self.inner.stats.record(false, start),
            Ok(ColdRead::Vanished { .. }) | Err(_) => {}
        }
    }
}
