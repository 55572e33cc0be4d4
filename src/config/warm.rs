//! Warm tier (SQLite) settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default: 1024 writes at most in one group-commit transaction.
pub const DEFAULT_WARM_MAX_BATCH: usize = 1024;
/// Default: 8,192 queued writes before `put` waits (back-pressure).
pub const DEFAULT_WARM_QUEUE_DEPTH: usize = 8192;
/// Default: 8 idle read connections kept open.
pub const DEFAULT_WARM_READ_CONNECTIONS: usize = 8;
/// Default: 16 MiB of SQLite page cache per connection, 144 MiB at most over the 8 readers and
/// the writer (was 64 MiB, 576 MiB in all). Reads go through the mmap first; YCSB C over 1M
/// records (560 MiB database) measured the same at 16 and 64 MiB.
pub const DEFAULT_WARM_CACHE_MIB: u64 = 16;
/// Default: 256 MiB of the database memory-mapped for reads.
pub const DEFAULT_WARM_MMAP_MIB: u64 = 256;
/// Default: 5,000 ms SQLite busy timeout.
pub const DEFAULT_WARM_BUSY_TIMEOUT_MS: u64 = 5000;
/// Default: 16,384 ids with pending access statistics before a flush is forced (about 1 MiB;
/// was 65,536).
pub const DEFAULT_WARM_ACCESS_FLUSH_THRESHOLD: usize = 16_384;
/// Default: 60,000 ms, the least time between two takes of the pending access statistics by
/// the writer (was 1,000 ms, and reads woke the writer for it).
pub const DEFAULT_WARM_ACCESS_FLUSH_INTERVAL_MS: u64 = 60_000;
/// Default: one warm read in 16 (per thread) is noted in the access statistics, counting 16.
pub const DEFAULT_WARM_ACCESS_SAMPLE_EVERY: u32 = 16;
/// Default: 262,144 signatures held in memory (about 10 MiB) before they are merged into the
/// on-disk signature index in one sorted bulk insert.
pub const DEFAULT_WARM_SIGNATURE_MERGE_THRESHOLD: usize = 262_144;
/// Default: 100 µs, the longest a group commit waits for more writes when writers are
/// concurrent (it closes sooner once 25 µs pass with no new write).
pub const DEFAULT_WARM_GROUP_COMMIT_WINDOW_US: u64 = 100;
/// Default: 1,024 pages (4 MiB with the default 4 KiB pages) released per incremental-vacuum
/// step.
pub const DEFAULT_WARM_VACUUM_PAGES: u32 = 1024;
/// Default: 512 archived rows settled (warm row deleted or cold copy tombstoned) per writer
/// transaction. Measured here: about 1 ms per step, so a put waits at most that long behind
/// archival.
pub const DEFAULT_WARM_SETTLE_CHUNK_ROWS: usize = 512;

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
    /// Ids with pending access statistics that make a read hand them to the writer (the only
    /// time a read wakes it); twice this many are kept at most, further new ids are dropped.
    /// Default: [`DEFAULT_WARM_ACCESS_FLUSH_THRESHOLD`].
    pub access_flush_threshold: usize,
    /// Least time between two takes of the pending access statistics by the writer, ms: it
    /// takes them between write batches once this has passed (reads never wake it for this),
    /// and warm upkeep writes them all. Default: [`DEFAULT_WARM_ACCESS_FLUSH_INTERVAL_MS`].
    pub access_flush_interval_ms: u64,
    /// One warm read in this many, per thread, is noted in the access statistics and counts
    /// for this many reads (1: every read, exactly). Default:
    /// [`DEFAULT_WARM_ACCESS_SAMPLE_EVERY`].
    pub access_sample_every: u32,
    /// Free pages returned to the file system per incremental-vacuum step. Upkeep and the end
    /// of an archival start the steps; the writer runs them between write batches until the
    /// free list is empty, so this bounds how long one holds puts. Default:
    /// [`DEFAULT_WARM_VACUUM_PAGES`].
    pub vacuum_pages: u32,
    /// Recent signatures kept in memory before a bulk merge into the on-disk index. Larger means
    /// fewer, longer merges and more memory. Default: [`DEFAULT_WARM_SIGNATURE_MERGE_THRESHOLD`].
    pub signature_merge_threshold: usize,
    /// Longest a group commit waits for more writes while writers are concurrent, µs (0: never
    /// wait). A lone writer never waits. Default: [`DEFAULT_WARM_GROUP_COMMIT_WINDOW_US`].
    pub group_commit_window_us: u64,
    /// Archived rows settled per writer transaction after an archival's catalog commit (the
    /// delete of their warm rows). Each step runs between write batches, so this bounds how
    /// long a put waits behind archival. Default: [`DEFAULT_WARM_SETTLE_CHUNK_ROWS`].
    pub settle_chunk_rows: usize,
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
            access_sample_every: DEFAULT_WARM_ACCESS_SAMPLE_EVERY,
            vacuum_pages: DEFAULT_WARM_VACUUM_PAGES,
            signature_merge_threshold: DEFAULT_WARM_SIGNATURE_MERGE_THRESHOLD,
            group_commit_window_us: DEFAULT_WARM_GROUP_COMMIT_WINDOW_US,
            settle_chunk_rows: DEFAULT_WARM_SETTLE_CHUNK_ROWS,
            quick_check_on_open: false,
        }
    }
}

impl WarmConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_batch == 0 || self.max_batch > 100_000 {
            return Err(Error::config(
                "warm.max_batch",
                "must be between 1 and 100000",
            ));
        }
        if self.queue_depth == 0 || self.queue_depth > 1 << 20 {
            return Err(Error::config(
                "warm.queue_depth",
                "must be between 1 and 1048576",
            ));
        }
        if self.busy_timeout_ms > i32::MAX as u64 {
            return Err(Error::config(
                "warm.busy_timeout_ms",
                format!("must be at most {}", i32::MAX),
            ));
        }
        if self.read_connections == 0 {
            return Err(Error::config("warm.read_connections", "must be at least 1"));
        }
        if self.cache_mib == 0 || self.cache_mib > 1 << 20 {
            return Err(Error::config(
                "warm.cache_mib",
                "must be between 1 and 1048576",
            ));
        }
        if self.mmap_mib > 1 << 20 {
            return Err(Error::config("warm.mmap_mib", "must be at most 1048576"));
        }
        if self.access_flush_threshold == 0 || self.access_flush_threshold > 1 << 24 {
            return Err(Error::config(
                "warm.access_flush_threshold",
                "must be between 1 and 16777216",
            ));
        }
        if self.access_sample_every == 0 || self.access_sample_every > 1 << 16 {
            return Err(Error::config(
                "warm.access_sample_every",
                "must be between 1 and 65536",
            ));
        }
        if self.access_flush_interval_ms == 0 {
            return Err(Error::config(
                "warm.access_flush_interval_ms",
                "must be at least 1",
            ));
        }
        if self.group_commit_window_us > 100_000 {
            return Err(Error::config(
                "warm.group_commit_window_us",
                "must be at most 100000 (100 ms)",
            ));
        }
        if self.signature_merge_threshold == 0 || self.signature_merge_threshold > 1 << 26 {
            return Err(Error::config(
                "warm.signature_merge_threshold",
                "must be between 1 and 67108864",
            ));
        }
        if self.settle_chunk_rows == 0 || self.settle_chunk_rows > 1 << 20 {
            return Err(Error::config(
                "warm.settle_chunk_rows",
                "must be between 1 and 1048576",
            ));
        }
        Ok(())
    }

    pub(crate) fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}
