//! Configuration: the seed's tiering policy (`TieringConfig`) inside the full `StorageConfig`.
//!
//! `TieringConfig` keeps exactly the seed's five fields, so the seed's struct literal compiles
//! as written. Everything else (data directory, hot capacity, SQLite settings, limits) lives in
//! `StorageConfig`, which embeds a `TieringConfig` and is what a TOML file describes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{Error, Result};

/// Default: 3600 s (1 hour) before a record leaves the hot tier.
pub const DEFAULT_HOT_TO_WARM_AGE: u64 = 3600;
/// Default: 604800 s (7 days) before a record is archived to the cold tier.
pub const DEFAULT_WARM_TO_COLD_AGE: u64 = 604_800;
/// Default: 300 s between maintenance runs.
pub const DEFAULT_MAINTENANCE_INTERVAL: u64 = 300;
/// Default: `true`, reads promote frequently accessed records to the hot tier.
pub const DEFAULT_AUTO_PROMOTE_ON_ACCESS: bool = true;
/// Default: 2, a record is promoted on its 2nd read that misses hot.
pub const DEFAULT_MIN_HOT_ACCESS_COUNT: u64 = 2;

/// Default: `tiered_storage_data` in the working directory, unless the environment variable
/// [`DATA_DIR_ENV`] names another directory.
pub const DEFAULT_DATA_DIR: &str = "tiered_storage_data";
/// Environment variable that overrides [`DEFAULT_DATA_DIR`] for `StorageConfig::default()`.
pub const DATA_DIR_ENV: &str = "TIERED_STORAGE_DATA_DIR";
/// Default: 10,000 records in the hot tier.
pub const DEFAULT_HOT_CAPACITY: u64 = 10_000;
/// Default: 65,536 counters per row of the promotion frequency sketch (256 KiB in all).
pub const DEFAULT_HOT_FREQUENCY_COUNTERS: usize = 65_536;
/// Default: 64 KiB, the largest encoded record accepted.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;
/// Default: 1024 writes at most in one group-commit transaction.
pub const DEFAULT_WARM_MAX_BATCH: usize = 1024;
/// Default: 8,192 queued writes before `put` waits (back-pressure).
pub const DEFAULT_WARM_QUEUE_DEPTH: usize = 8192;
/// Default: 8 idle read connections kept open.
pub const DEFAULT_WARM_READ_CONNECTIONS: usize = 8;
/// Default: 64 MiB of SQLite page cache per connection.
pub const DEFAULT_WARM_CACHE_MIB: u64 = 64;
/// Default: 256 MiB of the database memory-mapped for reads.
pub const DEFAULT_WARM_MMAP_MIB: u64 = 256;
/// Default: 5,000 ms SQLite busy timeout.
pub const DEFAULT_WARM_BUSY_TIMEOUT_MS: u64 = 5000;
/// Default: 65,536 ids with pending access statistics before a flush is forced.
pub const DEFAULT_WARM_ACCESS_FLUSH_THRESHOLD: usize = 65_536;
/// Default: 1,000 ms between flushes of access statistics when the writer is idle.
pub const DEFAULT_WARM_ACCESS_FLUSH_INTERVAL_MS: u64 = 1000;
/// Default: 262,144 signatures held in memory (about 10 MiB) before they are merged into the
/// on-disk signature index in one sorted bulk insert.
pub const DEFAULT_WARM_SIGNATURE_MERGE_THRESHOLD: usize = 262_144;
/// Default: 100 µs, the longest a group commit waits for more writes when writers are
/// concurrent (it closes sooner once 25 µs pass with no new write).
pub const DEFAULT_WARM_GROUP_COMMIT_WINDOW_US: u64 = 100;
/// Default: 1,024 pages released per incremental vacuum step.
pub const DEFAULT_WARM_VACUUM_PAGES: u32 = 1024;

/// Default: ZSTD level 1 for the string columns of cold files. Measured here on 2.5M records:
/// level 1 gave 159.3 bytes/record and 261k records/s of archival, level 3 158.0 bytes/record
/// and 241k records/s (the signatures, most of the bytes, do not compress).
pub const DEFAULT_COLD_ZSTD_LEVEL: i32 = 1;
/// Default: 128 MiB, the size at which an archival or compaction output file is closed.
pub const DEFAULT_COLD_TARGET_FILE_MIB: u64 = 128;
/// Default: 131,072 rows per Parquet row group.
pub const DEFAULT_COLD_ROW_GROUP_ROWS: usize = 131_072;
/// Default: 1,024 rows per data page (small pages make point reads fast: measured 0.7 ms p95 at
/// 10M rows against 2.5 ms for 8k-row pages).
pub const DEFAULT_COLD_DATA_PAGE_ROWS: usize = 1024;
/// Default: 8,192 warm rows read per archival step (keyset pagination by id).
pub const DEFAULT_COLD_ARCHIVE_BATCH_ROWS: usize = 8192;
/// Default: 4 day partitions written at once by one archival pass.
pub const DEFAULT_COLD_MAX_OPEN_PARTITIONS: usize = 4;
/// Default: 64 MiB of cached Parquet footers and page indexes.
pub const DEFAULT_COLD_METADATA_CACHE_MIB: u64 = 64;
/// Default threads running cold reads and scan pages.
pub const DEFAULT_COLD_READ_THREADS: usize = 4;
/// Default: a file below 1/4 of the target size is small and is merged by compaction.
pub const DEFAULT_COLD_COMPACT_SMALL_FRACTION: f64 = 0.25;
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

/// Default: 60 s of recent accesses behind the access-time percentiles and recent hit rates.
pub const DEFAULT_METRICS_WINDOW_SECS: u64 = 60;

/// Default: 1 ms, the hot tier's p95 access-time target.
pub const DEFAULT_ALERT_HOT_P95_TARGET_US: u64 = 1_000;
/// Default: 10 ms, the warm tier's p95 access-time target.
pub const DEFAULT_ALERT_WARM_P95_TARGET_US: u64 = 10_000;
/// Default: 100 ms, the cold tier's p95 access-time target.
pub const DEFAULT_ALERT_COLD_P95_TARGET_US: u64 = 100_000;
/// Default: an alert when the hot tier answers fewer than 50% of recent lookups.
pub const DEFAULT_ALERT_HOT_HIT_RATE_FLOOR_PCT: f64 = 50.0;
/// Default: 200 lookups in the window before access-time, hit-rate and degradation alerts may
/// fire, so a quiet store raises no alert from a handful of reads.
pub const DEFAULT_ALERT_MIN_SAMPLES: u64 = 200;
/// Default: a warning when the hot tier is 80% full.
pub const DEFAULT_ALERT_HOT_CAPACITY_WARNING_PCT: f64 = 80.0;
/// Default: a critical alert when the hot tier is 95% full.
pub const DEFAULT_ALERT_HOT_CAPACITY_CRITICAL_PCT: f64 = 95.0;
/// Default: 1 GiB, the free-disk floor of the data directory's file system.
pub const DEFAULT_ALERT_MIN_FREE_DISK_BYTES: u64 = 1 << 30;
/// Default: 3,600 s of grace past `warm_to_cold_age` before an archival-lag alert.
pub const DEFAULT_ALERT_ARCHIVAL_GRACE_SECS: u64 = 3_600;
/// Default: a degradation alert when a tier's recent p95 is 3× its p95 since open.
pub const DEFAULT_ALERT_DEGRADATION_FACTOR: f64 = 3.0;
/// Default: 256 resolved alerts kept in the history.
pub const DEFAULT_ALERT_HISTORY_LIMIT: usize = 256;

/// Default: a file whose rows are 20% superseded or deleted is rewritten by compaction.
pub const DEFAULT_COLD_COMPACT_DEAD_FRACTION: f64 = 0.2;

/// The seed's tiering policy. Ages and intervals are in seconds.
///
/// ```
/// use tiered_storage::TieringConfig;
/// let config = TieringConfig {
///     hot_to_warm_age: 300,
///     warm_to_cold_age: 3600,
///     maintenance_interval: 60,
///     auto_promote_on_access: true,
///     min_hot_access_count: 2,
/// };
/// assert_eq!(TieringConfig::default().warm_to_cold_age, 604_800);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TieringConfig {
    /// Seconds a record stays in the hot tier after it was cached (the hot TTL).
    /// Default: [`DEFAULT_HOT_TO_WARM_AGE`].
    pub hot_to_warm_age: u64,
    /// Seconds after its timestamp before a record is archived to cold.
    /// Default: [`DEFAULT_WARM_TO_COLD_AGE`].
    pub warm_to_cold_age: u64,
    /// Seconds between background maintenance runs. Default: [`DEFAULT_MAINTENANCE_INTERVAL`].
    pub maintenance_interval: u64,
    /// Promote records read often to the hot tier. Default: [`DEFAULT_AUTO_PROMOTE_ON_ACCESS`].
    pub auto_promote_on_access: bool,
    /// A record is promoted on this many reads that missed hot (1 = on the first).
    /// Default: [`DEFAULT_MIN_HOT_ACCESS_COUNT`].
    pub min_hot_access_count: u64,
}

impl Default for TieringConfig {
    fn default() -> Self {
        Self {
            hot_to_warm_age: DEFAULT_HOT_TO_WARM_AGE,
            warm_to_cold_age: DEFAULT_WARM_TO_COLD_AGE,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            auto_promote_on_access: DEFAULT_AUTO_PROMOTE_ON_ACCESS,
            min_hot_access_count: DEFAULT_MIN_HOT_ACCESS_COUNT,
        }
    }
}

/// Upper bound for every age and interval: 100 years, in seconds. Larger values would overflow
/// millisecond arithmetic and exceed what moka accepts as a TTL.
pub const MAX_AGE_SECS: u64 = 100 * 365 * 24 * 3600;

impl TieringConfig {
    fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("tiering.hot_to_warm_age", self.hot_to_warm_age),
            ("tiering.warm_to_cold_age", self.warm_to_cold_age),
            ("tiering.maintenance_interval", self.maintenance_interval),
        ] {
            if v > MAX_AGE_SECS {
                return Err(Error::config(
                    field,
                    format!("must be at most {MAX_AGE_SECS} seconds (100 years)"),
                ));
            }
        }
        if self.hot_to_warm_age == 0 {
            return Err(Error::config(
                "tiering.hot_to_warm_age",
                "must be at least 1 second",
            ));
        }
        if self.warm_to_cold_age == 0 {
            return Err(Error::config(
                "tiering.warm_to_cold_age",
                "must be at least 1 second",
            ));
        }
        if self.maintenance_interval == 0 {
            return Err(Error::config(
                "tiering.maintenance_interval",
                "must be at least 1 second",
            ));
        }
        if self.min_hot_access_count == 0 {
            return Err(Error::config(
                "tiering.min_hot_access_count",
                "must be at least 1 (1 promotes on the first read)",
            ));
        }
        if self.min_hot_access_count > u64::from(u8::MAX) {
            return Err(Error::config(
                "tiering.min_hot_access_count",
                format!("must be at most {}", u8::MAX),
            ));
        }
        Ok(())
    }
}

/// How SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous = NORMAL` in WAL mode: an acknowledged write survives a process crash, but
    /// the last commits before a power loss or kernel panic may be lost (the WAL is fsynced at
    /// checkpoints, not at every commit).
    #[default]
    Normal,
    /// `synchronous = FULL`: every group commit fsyncs the WAL before any of its writers is
    /// answered, so acknowledged writes also survive a power loss. One fsync is shared by all
    /// writes in a batch.
    Full,
}

/// Hot tier (moka) settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotConfig {
    /// Maximum records cached. Default: [`DEFAULT_HOT_CAPACITY`].
    pub capacity: u64,
    /// Optional bound on the encoded bytes cached, enforced together with `capacity`.
    /// Default: none.
    pub max_bytes: Option<u64>,
    /// Counters per row of the promotion frequency sketch. Default:
    /// [`DEFAULT_HOT_FREQUENCY_COUNTERS`].
    pub frequency_counters: usize,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_HOT_CAPACITY,
            max_bytes: None,
            frequency_counters: DEFAULT_HOT_FREQUENCY_COUNTERS,
        }
    }
}

/// Warm tier (SQLite) settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmConfig {
    /// Commit durability. Default: [`Durability::Normal`].
    pub durability: Durability,
    /// Most writes in one group commit. Default: [`DEFAULT_WARM_MAX_BATCH`].
    pub max_batch: usize,
    /// Writes queued before writers wait. Default: [`DEFAULT_WARM_QUEUE_DEPTH`].
    pub queue_depth: usize,
    /// Idle read connections kept. Default: [`DEFAULT_WARM_READ_CONNECTIONS`].
    pub read_connections: usize,
    /// Page cache per connection, MiB. Default: [`DEFAULT_WARM_CACHE_MIB`].
    pub cache_mib: u64,
    /// Bytes of the database memory-mapped for reads, MiB (0 disables). Default:
    /// [`DEFAULT_WARM_MMAP_MIB`].
    pub mmap_mib: u64,
    /// SQLite busy timeout, ms. Default: [`DEFAULT_WARM_BUSY_TIMEOUT_MS`].
    pub busy_timeout_ms: u64,
    /// Pending access-statistic entries that force a flush. Default:
    /// [`DEFAULT_WARM_ACCESS_FLUSH_THRESHOLD`].
    pub access_flush_threshold: usize,
    /// Idle interval between access-statistic flushes, ms. Default:
    /// [`DEFAULT_WARM_ACCESS_FLUSH_INTERVAL_MS`].
    pub access_flush_interval_ms: u64,
    /// Free pages returned to the OS per maintenance run. Default: [`DEFAULT_WARM_VACUUM_PAGES`].
    pub vacuum_pages: u32,
    /// Recent signatures kept in memory before a bulk merge into the on-disk index. Larger means
    /// fewer, longer merges and more memory. Default: [`DEFAULT_WARM_SIGNATURE_MERGE_THRESHOLD`].
    pub signature_merge_threshold: usize,
    /// Longest a group commit waits for more writes while writers are concurrent, µs (0: never
    /// wait). A lone writer never waits. Default: [`DEFAULT_WARM_GROUP_COMMIT_WINDOW_US`].
    pub group_commit_window_us: u64,
    /// Run SQLite's `quick_check` over the whole database at open, and refuse to open a damaged
    /// one with [`Error::Corrupt`](crate::Error::Corrupt). It reads every page (about a second
    /// per GiB here). Default: `false`; `verify` runs it on demand.
    pub quick_check_on_open: bool,
}

impl Default for WarmConfig {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            max_batch: DEFAULT_WARM_MAX_BATCH,
            queue_depth: DEFAULT_WARM_QUEUE_DEPTH,
            read_connections: DEFAULT_WARM_READ_CONNECTIONS,
            cache_mib: DEFAULT_WARM_CACHE_MIB,
            mmap_mib: DEFAULT_WARM_MMAP_MIB,
            busy_timeout_ms: DEFAULT_WARM_BUSY_TIMEOUT_MS,
            access_flush_threshold: DEFAULT_WARM_ACCESS_FLUSH_THRESHOLD,
            access_flush_interval_ms: DEFAULT_WARM_ACCESS_FLUSH_INTERVAL_MS,
            vacuum_pages: DEFAULT_WARM_VACUUM_PAGES,
            signature_merge_threshold: DEFAULT_WARM_SIGNATURE_MERGE_THRESHOLD,
            group_commit_window_us: DEFAULT_WARM_GROUP_COMMIT_WINDOW_US,
            quick_check_on_open: false,
        }
    }
}

impl WarmConfig {
    pub(crate) fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}

/// Cold tier (Parquet) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdConfig {
    /// ZSTD compression level, 1–22. Default: [`DEFAULT_COLD_ZSTD_LEVEL`].
    pub zstd_level: i32,
    /// Output files are closed at about this size, MiB. Default: [`DEFAULT_COLD_TARGET_FILE_MIB`].
    pub target_file_mib: u64,
    /// Rows per row group. Default: [`DEFAULT_COLD_ROW_GROUP_ROWS`].
    pub row_group_rows: usize,
    /// Rows per data page. Default: [`DEFAULT_COLD_DATA_PAGE_ROWS`].
    pub data_page_rows: usize,
    /// Warm rows read per archival step. Default: [`DEFAULT_COLD_ARCHIVE_BATCH_ROWS`].
    pub archive_batch_rows: usize,
    /// Day partitions one archival pass writes at once; more days close the fullest file
    /// early. Default: [`DEFAULT_COLD_MAX_OPEN_PARTITIONS`].
    pub max_open_partitions: usize,
    /// Bytes of Parquet metadata (footers, page indexes) kept in memory, MiB.
    /// Default: [`DEFAULT_COLD_METADATA_CACHE_MIB`].
    pub metadata_cache_mib: u64,
    /// Threads that run cold reads and scan pages (the store's own, so the thread count stays
    /// fixed however many tasks read; a read waits for a free one). Default:
    /// [`DEFAULT_COLD_READ_THREADS`].
    pub read_threads: usize,
    /// Files smaller than this fraction of the target size are merged by compaction.
    /// Default: [`DEFAULT_COLD_COMPACT_SMALL_FRACTION`].
    pub compact_small_fraction: f64,
    /// Files with at least this fraction of superseded or deleted rows are rewritten by
    /// compaction. Default: [`DEFAULT_COLD_COMPACT_DEAD_FRACTION`].
    pub compact_dead_fraction: f64,
}

impl Default for ColdConfig {
    fn default() -> Self {
        Self {
            zstd_level: DEFAULT_COLD_ZSTD_LEVEL,
            target_file_mib: DEFAULT_COLD_TARGET_FILE_MIB,
            row_group_rows: DEFAULT_COLD_ROW_GROUP_ROWS,
            data_page_rows: DEFAULT_COLD_DATA_PAGE_ROWS,
            archive_batch_rows: DEFAULT_COLD_ARCHIVE_BATCH_ROWS,
            max_open_partitions: DEFAULT_COLD_MAX_OPEN_PARTITIONS,
            metadata_cache_mib: DEFAULT_COLD_METADATA_CACHE_MIB,
            read_threads: DEFAULT_COLD_READ_THREADS,
            compact_small_fraction: DEFAULT_COLD_COMPACT_SMALL_FRACTION,
            compact_dead_fraction: DEFAULT_COLD_COMPACT_DEAD_FRACTION,
        }
    }
}

impl ColdConfig {
    fn validate(&self) -> Result<()> {
        if !(1..=22).contains(&self.zstd_level) {
            return Err(Error::config("cold.zstd_level", "must be between 1 and 22"));
        }
        if self.target_file_mib == 0 || self.target_file_mib > 64 * 1024 {
            return Err(Error::config(
                "cold.target_file_mib",
                "must be between 1 and 65536",
            ));
        }
        if !(1024..=1 << 24).contains(&self.row_group_rows) {
            return Err(Error::config(
                "cold.row_group_rows",
                "must be between 1024 and 16777216",
            ));
        }
        if !(64..=1 << 20).contains(&self.data_page_rows) {
            return Err(Error::config(
                "cold.data_page_rows",
                "must be between 64 and 1048576",
            ));
        }
        if !(1..=1 << 20).contains(&self.archive_batch_rows) {
            return Err(Error::config(
                "cold.archive_batch_rows",
                "must be between 1 and 1048576",
            ));
        }
        if !(1..=64).contains(&self.max_open_partitions) {
            return Err(Error::config(
                "cold.max_open_partitions",
                "must be between 1 and 64",
            ));
        }
        if !(1..=256).contains(&self.read_threads) {
            return Err(Error::config(
                "cold.read_threads",
                "must be between 1 and 256",
            ));
        }
        if self.metadata_cache_mib == 0 || self.metadata_cache_mib > 1 << 20 {
            return Err(Error::config(
                "cold.metadata_cache_mib",
                "must be between 1 and 1048576",
            ));
        }
        for (field, v) in [
            ("cold.compact_small_fraction", self.compact_small_fraction),
            ("cold.compact_dead_fraction", self.compact_dead_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(field, "must be between 0.0 and 1.0"));
            }
        }
        Ok(())
    }

    /// The target file size in bytes.
    pub fn target_file_bytes(&self) -> u64 {
        self.target_file_mib * 1024 * 1024
    }
}

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

/// Metrics settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Seconds of recent accesses behind access-time percentiles and recent hit rates.
    /// Default: [`DEFAULT_METRICS_WINDOW_SECS`].
    pub window_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            window_secs: DEFAULT_METRICS_WINDOW_SECS,
        }
    }
}

/// Alert thresholds (see `AutoTieringCoordinator::get_alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// Hot p95 access-time target, µs. Default: [`DEFAULT_ALERT_HOT_P95_TARGET_US`].
    pub hot_p95_target_us: u64,
    /// Warm p95 access-time target, µs. Default: [`DEFAULT_ALERT_WARM_P95_TARGET_US`].
    pub warm_p95_target_us: u64,
    /// Cold p95 access-time target, µs. Default: [`DEFAULT_ALERT_COLD_P95_TARGET_US`].
    pub cold_p95_target_us: u64,
    /// Alert when hot answers fewer than this percentage of recent lookups; `None` disables.
    /// Default: [`DEFAULT_ALERT_HOT_HIT_RATE_FLOOR_PCT`].
    pub hot_hit_rate_floor_pct: Option<f64>,
    /// The same floor for warm (share of lookups that reached warm and found the record there);
    /// `None` disables. Default: none.
    pub warm_hit_rate_floor_pct: Option<f64>,
    /// Lookups in the window before access-time, hit-rate and degradation alerts may fire.
    /// Default: [`DEFAULT_ALERT_MIN_SAMPLES`].
    pub min_samples: u64,
    /// Hot fill (records / capacity) that raises a warning, percent. Default:
    /// [`DEFAULT_ALERT_HOT_CAPACITY_WARNING_PCT`].
    pub hot_capacity_warning_pct: f64,
    /// Hot fill that raises a critical alert, percent. Default:
    /// [`DEFAULT_ALERT_HOT_CAPACITY_CRITICAL_PCT`].
    pub hot_capacity_critical_pct: f64,
    /// Alert when the data directory holds more bytes than this; `None` disables. Default: none.
    pub disk_budget_bytes: Option<u64>,
    /// Alert when the data directory's file system has fewer free bytes than this; `None`
    /// disables. Default: [`DEFAULT_ALERT_MIN_FREE_DISK_BYTES`].
    pub min_free_disk_bytes: Option<u64>,
    /// Seconds past `warm_to_cold_age` a warm record may wait for archival before an alert.
    /// Default: [`DEFAULT_ALERT_ARCHIVAL_GRACE_SECS`].
    pub archival_grace_secs: u64,
    /// Alert when a tier's recent p95 is at least this multiple of its p95 since open.
    /// Default: [`DEFAULT_ALERT_DEGRADATION_FACTOR`].
    pub degradation_factor: f64,
    /// Resolved alerts kept. Default: [`DEFAULT_ALERT_HISTORY_LIMIT`].
    pub history_limit: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            hot_p95_target_us: DEFAULT_ALERT_HOT_P95_TARGET_US,
            warm_p95_target_us: DEFAULT_ALERT_WARM_P95_TARGET_US,
            cold_p95_target_us: DEFAULT_ALERT_COLD_P95_TARGET_US,
            hot_hit_rate_floor_pct: Some(DEFAULT_ALERT_HOT_HIT_RATE_FLOOR_PCT),
            warm_hit_rate_floor_pct: None,
            min_samples: DEFAULT_ALERT_MIN_SAMPLES,
            hot_capacity_warning_pct: DEFAULT_ALERT_HOT_CAPACITY_WARNING_PCT,
            hot_capacity_critical_pct: DEFAULT_ALERT_HOT_CAPACITY_CRITICAL_PCT,
            disk_budget_bytes: None,
            min_free_disk_bytes: Some(DEFAULT_ALERT_MIN_FREE_DISK_BYTES),
            archival_grace_secs: DEFAULT_ALERT_ARCHIVAL_GRACE_SECS,
            degradation_factor: DEFAULT_ALERT_DEGRADATION_FACTOR,
            history_limit: DEFAULT_ALERT_HISTORY_LIMIT,
        }
    }
}

impl AlertConfig {
    fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("alerts.hot_p95_target_us", self.hot_p95_target_us),
            ("alerts.warm_p95_target_us", self.warm_p95_target_us),
            ("alerts.cold_p95_target_us", self.cold_p95_target_us),
        ] {
            if v == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        for (field, v) in [
            ("alerts.hot_hit_rate_floor_pct", self.hot_hit_rate_floor_pct),
            (
                "alerts.warm_hit_rate_floor_pct",
                self.warm_hit_rate_floor_pct,
            ),
            (
                "alerts.hot_capacity_warning_pct",
                Some(self.hot_capacity_warning_pct),
            ),
            (
                "alerts.hot_capacity_critical_pct",
                Some(self.hot_capacity_critical_pct),
            ),
        ] {
            if v.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
                return Err(Error::config(field, "must be between 0 and 100"));
            }
        }
        if self.hot_capacity_warning_pct > self.hot_capacity_critical_pct {
            return Err(Error::config(
                "alerts.hot_capacity_warning_pct",
                "must not exceed alerts.hot_capacity_critical_pct",
            ));
        }
        if !(self.degradation_factor >= 1.0 && self.degradation_factor.is_finite()) {
            return Err(Error::config(
                "alerts.degradation_factor",
                "must be a finite number of at least 1.0",
            ));
        }
        if self.history_limit == 0 || self.history_limit > 1 << 20 {
            return Err(Error::config(
                "alerts.history_limit",
                "must be between 1 and 1048576",
            ));
        }
        if self.archival_grace_secs > MAX_AGE_SECS {
            return Err(Error::config(
                "alerts.archival_grace_secs",
                format!("must be at most {MAX_AGE_SECS}"),
            ));
        }
        Ok(())
    }
}

/// The store's clock inside [`StorageConfig`]: the system clock unless a test or simulation
/// sets another (see [`StorageConfig::with_clock`]). Not part of TOML. Two handles are equal
/// when both are the system clock or both share one clock.
#[derive(Clone, Default)]
pub struct ClockHandle(Option<SharedClock>);

impl std::fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("SystemClock"),
            Some(c) => c.fmt(f),
        }
    }
}

impl PartialEq for ClockHandle {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl ClockHandle {
    /// Now, per this clock, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.get().now_ms()
    }

    /// The clock (one process-wide system clock when none was set).
    pub(crate) fn get(&self) -> SharedClock {
        static SYSTEM: std::sync::OnceLock<SharedClock> = std::sync::OnceLock::new();
        match &self.0 {
            Some(c) => Arc::clone(c),
            None => Arc::clone(SYSTEM.get_or_init(|| Arc::new(SystemClock::default()))),
        }
    }
}

/// The whole store's configuration. Loadable from TOML:
///
/// ```
/// let config = tiered_storage::StorageConfig::from_toml_str(r#"
///     data_dir = "/var/lib/bot/store"
///     [tiering]
///     hot_to_warm_age = 300
///     [hot]
///     capacity = 50000
///     [warm]
///     durability = "full"
/// "#).unwrap();
/// assert_eq!(config.tiering.hot_to_warm_age, 300);
/// assert_eq!(config.tiering.warm_to_cold_age, 604_800); // unset fields keep their defaults
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory holding `warm.sqlite3` (and later the cold files). Default:
    /// [`DEFAULT_DATA_DIR`], or `$TIERED_STORAGE_DATA_DIR` when set.
    pub data_dir: PathBuf,
    /// The seed's tiering policy.
    pub tiering: TieringConfig,
    /// Hot tier settings.
    pub hot: HotConfig,
    /// Warm tier settings.
    pub warm: WarmConfig,
    /// Cold tier settings.
    pub cold: ColdConfig,
    /// Background maintenance settings.
    pub maintenance: MaintenanceConfig,
    /// Metrics settings.
    pub metrics: MetricsConfig,
    /// Alert thresholds.
    pub alerts: AlertConfig,
    /// Largest encoded record accepted, bytes. Default: [`DEFAULT_MAX_RECORD_BYTES`].
    pub max_record_bytes: usize,
    /// Open without owning the directory: read warm through SQLite snapshots and cold through
    /// the catalog, write nothing, run no maintenance, take no lock. For a second process (a
    /// report job, a dashboard) beside the owner. Default: `false`. See
    /// [`AutoTieringCoordinator::open_read_only`](crate::AutoTieringCoordinator::open_read_only).
    pub read_only: bool,
    /// Where time comes from. Default: the system clock. Not read from TOML.
    #[serde(skip)]
    pub clock: ClockHandle,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let data_dir = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Self {
            data_dir,
            tiering: TieringConfig::default(),
            hot: HotConfig::default(),
            warm: WarmConfig::default(),
            cold: ColdConfig::default(),
            maintenance: MaintenanceConfig::default(),
            metrics: MetricsConfig::default(),
            alerts: AlertConfig::default(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            read_only: false,
            clock: ClockHandle::default(),
        }
    }
}

impl From<TieringConfig> for StorageConfig {
    fn from(tiering: TieringConfig) -> Self {
        Self {
            tiering,
            ..Self::default()
        }
    }
}

impl StorageConfig {
    /// Defaults with the data directory set.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Replace the tiering policy.
    pub fn with_tiering(mut self, tiering: TieringConfig) -> Self {
        self.tiering = tiering;
        self
    }

    /// Set the hot tier's record capacity.
    pub fn with_hot_capacity(mut self, capacity: u64) -> Self {
        self.hot.capacity = capacity;
        self
    }

    /// Set the warm tier's durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.warm.durability = durability;
        self
    }

    /// Take time from `clock` instead of the system clock: ageing, TTL, metric windows and
    /// alerts then move only when it does (see [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockHandle(Some(Arc::new(clock)));
        self
    }

    /// Parse a TOML document. Unknown keys are errors, so typos are caught.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| Error::ConfigFile {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Read and parse a TOML file. A relative `data_dir` in the file is resolved against the
    /// file's directory, not the working directory.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // A relative `data_dir` written in the file means "beside this file", wherever the
        // process starts: resolved against the working directory, the same file started
        // elsewhere would silently open a new, empty store.
        let in_file = toml::from_str::<toml::Table>(&text)
            .map(|t| t.contains_key("data_dir"))
            .unwrap_or(false);
        if in_file && config.data_dir.is_relative() {
            let base = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let base = std::path::absolute(base).map_err(|e| Error::ConfigFile {
                path: path.to_path_buf(),
                message: format!("cannot resolve the file's directory: {e}"),
            })?;
            config.data_dir = base.join(&config.data_dir);
        }
        config.validate()?;
        Ok(config)
    }

    /// Check every field. Called once at open; returns [`Error::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        self.tiering.validate()?;
        self.cold.validate()?;
        self.alerts.validate()?;
        let m = &self.maintenance;
        if m.archive_records_per_sec == 0 {
            return Err(Error::config(
                "maintenance.archive_records_per_sec",
                "must be at least 1",
            ));
        }
        if m.archive_max_records_per_step == 0 {
            return Err(Error::config(
                "maintenance.archive_max_records_per_step",
                "must be at least 1",
            ));
        }
        if m.archive_commit_rows == 0 {
            return Err(Error::config(
                "maintenance.archive_commit_rows",
                "must be at least 1",
            ));
        }
        if m.backlog_interval_secs == 0 || m.backlog_interval_secs > MAX_AGE_SECS {
            return Err(Error::config(
                "maintenance.backlog_interval_secs",
                format!("must be between 1 and {MAX_AGE_SECS}"),
            ));
        }
        // Six slots of at least a second each.
        if !(6..=86_400 * 7).contains(&self.metrics.window_secs) {
            return Err(Error::config(
                "metrics.window_secs",
                "must be between 6 and 604800",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::config("data_dir", "must not be empty"));
        }
        if self.hot.capacity == 0 {
            return Err(Error::config("hot.capacity", "must be at least 1"));
        }
        if self.hot.max_bytes == Some(0) {
            return Err(Error::config(
                "hot.max_bytes",
                "must be at least 1, or unset for no byte bound",
            ));
        }
        if !(64..=1 << 26).contains(&self.hot.frequency_counters) {
            return Err(Error::config(
                "hot.frequency_counters",
                "must be between 64 and 67108864",
            ));
        }
        let w = &self.warm;
        if w.max_batch == 0 || w.max_batch > 100_000 {
            return Err(Error::config(
                "warm.max_batch",
                "must be between 1 and 100000",
            ));
        }
        if w.queue_depth == 0 || w.queue_depth > 1 << 20 {
            return Err(Error::config(
                "warm.queue_depth",
                "must be between 1 and 1048576",
            ));
        }
        if w.busy_timeout_ms > i32::MAX as u64 {
            return Err(Error::config(
                "warm.busy_timeout_ms",
                format!("must be at most {}", i32::MAX),
            ));
        }
        if w.read_connections == 0 {
            return Err(Error::config("warm.read_connections", "must be at least 1"));
        }
        if w.cache_mib == 0 || w.cache_mib > 1 << 20 {
            return Err(Error::config(
                "warm.cache_mib",
                "must be between 1 and 1048576",
            ));
        }
        if w.mmap_mib > 1 << 20 {
            return Err(Error::config("warm.mmap_mib", "must be at most 1048576"));
        }
        if w.access_flush_threshold == 0 || w.access_flush_threshold > 1 << 24 {
            return Err(Error::config(
                "warm.access_flush_threshold",
                "must be between 1 and 16777216",
            ));
        }
        if w.access_flush_interval_ms == 0 {
            return Err(Error::config(
                "warm.access_flush_interval_ms",
                "must be at least 1",
            ));
        }
        if w.group_commit_window_us > 100_000 {
            return Err(Error::config(
                "warm.group_commit_window_us",
                "must be at most 100000 (100 ms)",
            ));
        }
        if w.signature_merge_threshold == 0 || w.signature_merge_threshold > 1 << 26 {
            return Err(Error::config(
                "warm.signature_merge_threshold",
                "must be between 1 and 67108864",
            ));
        }
        if self.max_record_bytes < 64 || self.max_record_bytes > 256 * 1024 * 1024 {
            return Err(Error::config(
                "max_record_bytes",
                "must be between 64 and 268435456",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_defaults() {
        let t = TieringConfig::default();
        assert_eq!(t.hot_to_warm_age, 3600);
        assert_eq!(t.warm_to_cold_age, 604_800);
        assert_eq!(t.maintenance_interval, 300);
        assert!(t.auto_promote_on_access);
        assert_eq!(t.min_hot_access_count, 2);
        assert_eq!(StorageConfig::default().hot.capacity, 10_000);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let mut c = StorageConfig::default();
        c.hot.capacity = 0;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                field: "hot.capacity",
                ..
            })
        ));

        let mut c = StorageConfig::default();
        c.tiering.min_hot_access_count = 0;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                field: "tiering.min_hot_access_count",
                ..
            })
        ));

        let mut c = StorageConfig::default();
        c.warm.max_batch = 0;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                field: "warm.max_batch",
                ..
            })
        ));
    }

    /// Values that would panic deep inside moka, rusqlite or tokio are refused up front.
    #[test]
    fn huge_values_are_config_errors_not_panics() {
        type Case = (&'static str, fn(&mut StorageConfig));
        let cases: [Case; 5] = [
            ("tiering.hot_to_warm_age", |c| {
                c.tiering.hot_to_warm_age = u64::MAX
            }),
            ("tiering.warm_to_cold_age", |c| {
                c.tiering.warm_to_cold_age = u64::MAX
            }),
            ("warm.busy_timeout_ms", |c| {
                c.warm.busy_timeout_ms = u64::MAX
            }),
            ("warm.queue_depth", |c| c.warm.queue_depth = usize::MAX),
            ("warm.access_flush_threshold", |c| {
                c.warm.access_flush_threshold = usize::MAX
            }),
        ];
        for (field, set) in cases {
            let mut c = StorageConfig::default();
            set(&mut c);
            match c.validate() {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut c = StorageConfig::default();
        c.tiering.hot_to_warm_age = MAX_AGE_SECS;
        c.validate().unwrap();
    }

    #[test]
    fn toml_rejects_unknown_keys_and_bad_values() {
        let err = StorageConfig::from_toml_str("[tiering]\nhot_to_warm_agee = 3\n").unwrap_err();
        assert!(matches!(err, Error::ConfigFile { .. }), "{err}");
        let err = StorageConfig::from_toml_str("[hot]\ncapacity = 0\n").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    field: "hot.capacity",
                    ..
                }
            ),
            "{err}"
        );
        let ok = StorageConfig::from_toml_str("[warm]\ndurability = \"full\"\n").unwrap();
        assert_eq!(ok.warm.durability, Durability::Full);
    }

    #[test]
    fn toml_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.toml");
        let mut c = StorageConfig::default().with_data_dir("/tmp/x");
        c.hot.max_bytes = Some(1 << 20);
        std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(StorageConfig::from_toml_file(&path).unwrap(), c);
        let missing = StorageConfig::from_toml_file(dir.path().join("nope.toml")).unwrap_err();
        assert!(matches!(missing, Error::ConfigFile { .. }));
    }

    /// Regression: a relative `data_dir` in a TOML file was resolved against the working
    /// directory, so the same file started elsewhere silently opened a new, empty store.
    #[test]
    fn config_relative_data_dir_in_a_file_resolves_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).unwrap();
        let path = conf.join("store.toml");
        std::fs::write(&path, "data_dir = \"../store-data\"\n").unwrap();
        let c = StorageConfig::from_toml_file(&path).unwrap();
        assert!(c.data_dir.is_absolute(), "{:?}", c.data_dir);
        assert_eq!(
            c.data_dir.canonicalize().ok(),
            None,
            "not created by loading"
        );
        assert_eq!(
            c.data_dir,
            std::path::absolute(&conf).unwrap().join("../store-data")
        );
        // Absolute paths are kept; a file without `data_dir` keeps the default.
        std::fs::write(&path, "data_dir = \"/var/lib/x\"\n").unwrap();
        assert_eq!(
            StorageConfig::from_toml_file(&path).unwrap().data_dir,
            PathBuf::from("/var/lib/x")
        );
        std::fs::write(&path, "max_record_bytes = 4096\n").unwrap();
        assert_eq!(
            StorageConfig::from_toml_file(&path).unwrap().data_dir,
            StorageConfig::default().data_dir
        );
    }
}
