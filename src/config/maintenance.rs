//! Background maintenance settings: archival pacing and compaction.

use serde::{Deserialize, Serialize};

use super::MAX_AGE_SECS;
use crate::error::{Error, Result};

/// Default: 100,000 records/s at most moved by background archival (about a third of what one
/// unthrottled pass reaches on a 2-core machine), so a backlog leaves CPU for foreground reads.
pub const DEFAULT_MAINTENANCE_ARCHIVE_RECORDS_PER_SEC: u64 = 100_000;
/// Default: 1,000,000 records at most archived by one maintenance step; a larger backlog is
/// drained over the following steps.
pub const DEFAULT_MAINTENANCE_ARCHIVE_MAX_RECORDS_PER_STEP: u64 = 1_000_000;
/// Default: 32,768 records at most per background archival commit (and file). A commit holds
/// the warm writer while it deletes its records from warm, about 1.7 µs per record here, so
/// puts wait at most about 60 ms; compaction later merges the small files.
pub const DEFAULT_MAINTENANCE_ARCHIVE_COMMIT_ROWS: u64 = 32_768;
/// Default: 5 s between maintenance steps while an archival backlog remains (the regular
/// interval is `tiering.maintenance_interval`).
pub const DEFAULT_MAINTENANCE_BACKLOG_INTERVAL_SECS: u64 = 5;
/// Default: compaction runs on every maintenance step that leaves no archival backlog.
pub const DEFAULT_MAINTENANCE_COMPACT: bool = true;

/// Background maintenance settings (see `AutoTieringCoordinator::start_maintenance_loop`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Most records per second background archival moves; the archival reader waits between
    /// pages to stay under it. Default: [`DEFAULT_MAINTENANCE_ARCHIVE_RECORDS_PER_SEC`].
    pub archive_records_per_sec: u64,
    /// Most records one maintenance step archives. Default:
    /// [`DEFAULT_MAINTENANCE_ARCHIVE_MAX_RECORDS_PER_STEP`].
    pub archive_max_records_per_step: u64,
    /// Most records one background archival commit moves: files are closed at this many rows,
    /// because the commit holds the warm writer (and so puts) while it deletes them from warm.
    /// Compaction merges the files later. Default:
    /// [`DEFAULT_MAINTENANCE_ARCHIVE_COMMIT_ROWS`].
    pub archive_commit_rows: u64,
    /// Seconds between steps while an archival backlog remains. Default:
    /// [`DEFAULT_MAINTENANCE_BACKLOG_INTERVAL_SECS`].
    pub backlog_interval_secs: u64,
    /// Whether steps compact the cold tier once no backlog remains. Default:
    /// [`DEFAULT_MAINTENANCE_COMPACT`].
    pub compact: bool,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            archive_records_per_sec: DEFAULT_MAINTENANCE_ARCHIVE_RECORDS_PER_SEC,
            archive_max_records_per_step: DEFAULT_MAINTENANCE_ARCHIVE_MAX_RECORDS_PER_STEP,
            archive_commit_rows: DEFAULT_MAINTENANCE_ARCHIVE_COMMIT_ROWS,
            backlog_interval_secs: DEFAULT_MAINTENANCE_BACKLOG_INTERVAL_SECS,
            compact: DEFAULT_MAINTENANCE_COMPACT,
        }
    }
}

impl MaintenanceConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.archive_records_per_sec == 0 {
            return Err(Error::config(
                "maintenance.archive_records_per_sec",
                "must be at least 1",
            ));
        }
        if self.archive_max_records_per_step == 0 {
            return Err(Error::config(
                "maintenance.archive_max_records_per_step",
                "must be at least 1",
            ));
        }
        if self.archive_commit_rows == 0 {
            return Err(Error::config(
                "maintenance.archive_commit_rows",
                "must be at least 1",
            ));
        }
        if self.backlog_interval_secs == 0 || self.backlog_interval_secs > MAX_AGE_SECS {
            return Err(Error::config(
                "maintenance.backlog_interval_secs",
                format!("must be between 1 and {MAX_AGE_SECS}"),
            ));
        }
        Ok(())
    }
}
