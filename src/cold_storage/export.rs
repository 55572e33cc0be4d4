//! Copying cold files out of the store into a local directory laid out like a cold directory
//! (for backups): every file through the store's `export`, then every directory made durable.

use std::collections::BTreeSet;
use std::path::Path;

use super::store::{fsync_dir, partition_of};
use super::ColdArchiveStorage;
use crate::error::Result;
use crate::record::Record;

/// What [`ColdArchiveStorage::export_to`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ExportReport {
    /// Files copied.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Of them, files hard-linked rather than copied.
    pub linked: u64,
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Copy the files of `keys` to `<dir>/<key>`, durably: each file, each partition directory
    /// and `dir` itself are fsynced (blocking). `dir` is created if needed.
    pub(crate) fn export_to(&self, keys: &[String], dir: &Path) -> Result<ExportReport> {
        let mut report = ExportReport::default();
        let mut partitions = BTreeSet::new();
        for key in keys {
            let exported = self.store().export(key, &dir.join(key))?;
            partitions.insert(partition_of(key));
            report.files += 1;
            report.bytes += exported.bytes;
            report.linked += u64::from(exported.linked);
        }
        for partition in partitions {
            fsync_dir(&dir.join(partition))?;
        }
        if !keys.is_empty() {
            fsync_dir(dir)?;
        }
        Ok(report)
    }
}
