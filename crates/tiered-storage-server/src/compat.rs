//! Interim stand-ins for library APIs that are being added on main (removed once merged).
#![allow(dead_code)]

use tiered_storage::{AutoTieringCoordinator, Error, MaintenanceStatus, Result, ScanRange, TierMetrics, TransactionRecord};

pub(crate) trait ErrorCode {
    fn code(&self) -> &'static str;
}

impl ErrorCode for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::ConfigFile { .. } => "config_file",
            Error::DuplicateSignature { .. } => "duplicate_signature",
            Error::EmptySignature => "empty_signature",
            Error::RecordTooLarge { .. } => "record_too_large",
            Error::NotFound { .. } => "not_found",
            Error::InvalidRecord { .. } => "invalid_record",
            Error::Conflict { .. } => "conflict",
            Error::Unsupported { .. } => "unsupported",
            Error::DataDir { .. } => "data_dir",
            Error::Io { .. } => "io",
            Error::Sqlite { .. } => "sqlite",
            Error::Corrupt { .. } => "corrupt",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::Codec { .. } => "codec",
            Error::ColdFile { .. } => "cold_file",
            Error::Closed => "closed",
            Error::AlreadyOpen { .. } => "already_open",
            Error::ReadOnly { .. } => "read_only",
            _ => "internal",
        }
    }
}

pub(crate) trait StoreCompat {
    async fn put_many(&self, records: &[TransactionRecord]) -> Result<Vec<Result<i64>>>;
    async fn recently_put(&self, n: usize) -> Result<Vec<TransactionRecord>>;
}

impl StoreCompat for AutoTieringCoordinator {
    async fn put_many(&self, records: &[TransactionRecord]) -> Result<Vec<Result<i64>>> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            match self.put(r).await {
                Err(Error::Closed) => return Err(Error::Closed),
                other => out.push(other),
            }
        }
        Ok(out)
    }
    async fn recently_put(&self, n: usize) -> Result<Vec<TransactionRecord>> {
        let mut cursor = self.scan(ScanRange::default(), 1000)?;
        let mut all = Vec::new();
        while let Some(r) = cursor.next().await? {
            all.push(r);
        }
        all.reverse();
        all.truncate(n);
        Ok(all)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub records_archived: u64,
    pub archive_files: u64,
    pub compaction_groups: u64,
    pub compaction_files_in: u64,
    pub compaction_files_out: u64,
    pub compaction_bytes_in: u64,
    pub compaction_bytes_out: u64,
    pub last_archive_ms: i64,
    pub last_compaction_ms: i64,
}

pub(crate) fn counters(_s: &MaintenanceStatus) -> Counters {
    Counters::default()
}

pub(crate) fn writes(_m: &TierMetrics) -> u64 {
    0
}
