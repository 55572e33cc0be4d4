//! Cold tier (L3): immutable Parquet files under `cold/date=YYYY-MM-DD/`, catalogued in the warm
//! SQLite database.
//!
//! - `store/` is the seam every byte of cold I/O goes through ([`store::ColdStore`]; the local
//!   filesystem implements it).
//! - `file/` writes, reads and scans one Parquet file (point reads through the page index,
//!   scans pruned by statistics).
//! - `archive.rs` builds archival output files and `compact.rs` plans and merges compaction
//!   groups; the coordinator commits both.
//! - `recovery.rs` checks the store against the catalog on open, verifies files and rebuilds
//!   the catalog from footers.
//!
//! The cold tier never writes the catalog itself: a move's catalog change must commit in the
//! same SQLite transaction as the warm delete, so the warm writer applies it. Reads go through
//! [`ColdCatalog`], which answers each question from one database snapshot.

mod archive;
mod cache;
mod checksum;
mod compact;
pub(crate) mod deletes;
mod export;
pub(crate) mod file;
mod read;
mod recovery;
pub(crate) mod replicate;
pub(crate) mod store;
mod sweep;
mod tier;

pub(crate) use archive::{discard_path, ArchiveBuilder, FinishedFile};
pub(crate) use compact::CompactionGroup;
pub use deletes::DELETES_DIR;
pub(crate) use read::ColdRead;
pub use recovery::{ColdFileProblem, ProblemKind, VerifyReport};
pub use replicate::{
    ReplicaLagMetrics, ReplicaProblem, ReplicaProblemKind, ReplicationReport, StoreFailureMetrics,
};
pub(crate) use store::{is_missing, partition_of};
pub use sweep::SweepReport;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::blocking::BlockingPool;
use crate::catalog::{CatalogEntry, ColdCatalog, FileState};
use crate::config::{ColdConfig, StorageConfig};
use crate::error::{Error, Result};
use crate::metrics::{AccessStats, TierMetrics};
use crate::record::{Record, TransactionRecord};
use cache::MetaCache;
use file::{ColdFile, ScanBounds, WriterOptions};
use store::{ColdStore, FileRef, LocalStore};

/// Directory of the cold tier inside the data directory.
pub const COLD_DIR: &str = "cold";
/// Target access time of the cold tier: 100 ms.
pub const COLD_TARGET_ACCESS_TIME: Duration = Duration::from_millis(100);

/// File numbers reserved per catalog commit.
const SEQ_BLOCK: u64 = 16;

/// How often a direct read re-locates a record whose file vanished under it (compaction
/// replaced it).
const RELOCATE_ATTEMPTS: usize = 8;

/// The Parquet archive. Cheap to clone; clones share one metadata cache.
pub struct ColdArchiveStorage<R: Record = TransactionRecord> {
    inner: Arc<Inner<R>>,
}

impl<R: Record> Clone for ColdArchiveStorage<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Record> std::fmt::Debug for ColdArchiveStorage<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdArchiveStorage")
            .field("store", &self.inner.store)
            .finish()
    }
}

struct Inner<R: Record> {
    /// Where the files are: every byte of cold I/O goes through it.
    store: Arc<dyn ColdStore>,
    root: PathBuf,
    cfg: ColdConfig,
    catalog: Arc<dyn ColdCatalog>,
    cache: Mutex<MetaCache<R>>,
    /// Threads for blocking reads (see `crate::blocking`).
    pool: BlockingPool,
    stats: AccessStats,
    problems: Mutex<Vec<ColdFileProblem>>,
    /// File sequence numbers: `(next, end)`, where `next..end` is reserved in the catalog
    /// (`meta.cold_next_seq`). File names are `part-<seq>.parquet`, unique and increasing.
    seqs: Mutex<(u64, u64)>,
    /// Records archived by this process, and files written.
    archived: AtomicU64,
    files_written: AtomicU64,
    _record: PhantomData<fn() -> R>,
}

/// Cold-tier counters, from [`ColdArchiveStorage::cold_stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ColdStats {
    /// Catalogued files (live and quarantined).
    pub files: u64,
    /// Quarantined files.
    pub quarantined_files: u64,
    /// Bytes of catalogued files.
    pub bytes: u64,
    /// Rows written to catalogued files.
    pub rows: u64,
    /// Of those, rows superseded or deleted (tombstoned).
    pub dead_rows: u64,
    /// Bytes of Parquet metadata held in the cache now.
    pub metadata_cache_bytes: u64,
    /// Files open in the metadata cache.
    pub metadata_cache_files: u64,
    /// Records archived since the store was opened.
    pub archived_since_open: u64,
    /// Files written by archival since the store was opened.
    pub archive_files_since_open: u64,
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Open the archive under `<data_dir>/cold`, with `catalog` answering catalog queries.
    /// Blocking file I/O; does not check the directory (see `recover`).
    pub(crate) fn open(config: &StorageConfig, catalog: Arc<dyn ColdCatalog>) -> Result<Self> {
        let root = config.data_dir.join(COLD_DIR);
        #[cfg(test)]
        if let Some(store) = store::faulty::take_installed(&root) {
            return Self::open_with_store(config, catalog, store);
        }
        if config.cold.is_object_store() {
            return Self::open_with_store(config, catalog, object_store(config)?);
        }
        let store: Arc<dyn ColdStore> = if config.read_only {
            Arc::new(LocalStore::new(root))
        } else {
            Arc::new(LocalStore::create(root)?)
        };
        Self::open_with_store(config, catalog, store)
    }

    /// [`open`](Self::open) with the files in `store`.
    pub(crate) fn open_with_store(
        config: &StorageConfig,
        catalog: Arc<dyn ColdCatalog>,
        store: Arc<dyn ColdStore>,
    ) -> Result<Self> {
        let root = store.root().to_path_buf();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                root,
                cfg: config.cold.clone(),
                catalog,
                cache: Mutex::new(MetaCache {
                    files: HashMap::new(),
                    bytes: 0,
                    limit: (config.cold.metadata_cache_mib * 1024 * 1024) as usize,
                    tick: 0,
                }),
                pool: BlockingPool::new("tiered-storage-read", config.cold.read_threads)?,
                stats: AccessStats::new(
                    config.clock.get(),
                    std::time::Duration::from_secs(config.metrics.window_secs),
                ),
                problems: Mutex::new(Vec::new()),
                seqs: Mutex::new((1, 1)),
                archived: AtomicU64::new(0),
                files_written: AtomicU64::new(0),
                _record: PhantomData,
            }),
        })
    }

    /// The cold directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the files are.
    pub(crate) fn store(&self) -> &Arc<dyn ColdStore> {
        &self.inner.store
    }

    pub(crate) fn config(&self) -> &ColdConfig {
        &self.inner.cfg
    }

    pub(crate) fn catalog(&self) -> &Arc<dyn ColdCatalog> {
        &self.inner.catalog
    }

    pub(crate) fn writer_options(&self) -> WriterOptions {
        WriterOptions {
            zstd_level: self.inner.cfg.zstd_level,
            row_group_rows: self.inner.cfg.row_group_rows,
            data_page_rows: self.inner.cfg.data_page_rows,
            string_page_rows: self
                .inner
                .cfg
                .string_page_rows
                .min(self.inner.cfg.data_page_rows),
            bloom_columns: self.inner.cfg.bloom_filter_columns.clone(),
            bloom_fpp: self.inner.cfg.bloom_filter_fpp(),
        }
    }

    /// The threads that run blocking reads.
    pub(crate) fn pool(&self) -> &BlockingPool {
        &self.inner.pool
    }

    /// A fresh relative path `date=YYYY-MM-DD/part-<seq>.parquet` for a file of `day`. Its
    /// number is reserved durably in the catalog before the file exists (blocking, a block of
    /// numbers at a time), so open can tell a move's leftover from a file it never made.
    pub(crate) fn new_file_path(&self, day: i64) -> Result<String> {
        Ok(format!(
            "date={}/part-{:012}.parquet",
            day_string(day),
            self.next_seq()?
        ))
    }

    /// A fresh file number, reserved durably (see [`new_file_path`](Self::new_file_path)).
    pub(crate) fn next_seq(&self) -> Result<u64> {
        let mut seqs = self.inner.seqs.lock();
        if seqs.0 >= seqs.1 {
            let first = self.inner.catalog.reserve_file_seqs(seqs.0, SEQ_BLOCK)?;
            *seqs = (first, first + SEQ_BLOCK);
        }
        let seq = seqs.0;
        seqs.0 += 1;
        Ok(seq)
    }

    /// The absolute path of a catalogued relative path (for messages and problem reports).
    pub fn file_path(&self, relative: &str) -> PathBuf {
        self.inner.store.path_of(relative)
    }

    /// Every catalogued file.
    pub fn files(&self) -> Result<Vec<CatalogEntry>> {
        self.inner.catalog.entries()
    }

    /// Every catalogued delete file (`_deletes/date=YYYY-MM-DD/part-N.parquet`, see
    /// [`AutoTieringCoordinator::publish_deletes`](crate::AutoTieringCoordinator::publish_deletes)).
    pub fn delete_files(&self) -> Result<Vec<crate::catalog::DeleteFileEntry>> {
        self.inner.catalog.delete_files()
    }

    /// Problems found with cold files (missing, truncated, unreadable), newest last. They are
    /// also logged at error level, and each raises a `ColdFileCorruption` alert. A file's
    /// problems are forgotten when `verify_cold` finds it sound or it leaves the catalog.
    pub fn problems(&self) -> Vec<ColdFileProblem> {
        self.inner.problems.lock().clone()
    }

    /// Forget the problems recorded for `path` (it was found sound again, or left the catalog).
    pub(crate) fn clear_problems(&self, matches: impl Fn(&ColdFileProblem) -> bool) {
        self.inner.problems.lock().retain(|p| !matches(p));
    }

    pub(crate) fn report(&self, problem: ColdFileProblem) {
        tracing::error!(path = %problem.path.display(), kind = ?problem.kind, detail = %problem.detail, "cold file problem");
        let mut problems = self.inner.problems.lock();
        if !problems
            .iter()
            .any(|p| p.path == problem.path && p.kind == problem.kind)
        {
            problems.push(problem);
        }
        let excess = problems.len().saturating_sub(1024);
        problems.drain(..excess);
    }

    /// The opened file for a catalog entry, from the cache or the disk.
    fn open_file(&self, entry: &CatalogEntry) -> Result<Arc<ColdFile<R>>> {
        if let Some(f) = self.inner.cache.lock().get(entry.file_id) {
            return Ok(f);
        }
        let sums = self.inner.catalog.page_sums(entry.file_id)?;
        // The catalog's length and ETag open an object with no request, and its footer
        // length reads the footer and page index in one.
        let known = store::ObjectStat {
            len: entry.bytes,
            etag: entry.etag.clone(),
        };
        let file = Arc::new(ColdFile::open_with(
            FileRef::published_known(&self.inner.store, &entry.path, known),
            sums.as_deref(),
            entry.footer_len,
        )?);
        self.inner
            .cache
            .lock()
            .insert(entry.file_id, Arc::clone(&file));
        Ok(file)
    }

    /// Drop cached metadata of files that are no longer catalogued.
    pub(crate) fn forget(&self, file_ids: &[i64]) {
        let mut cache = self.inner.cache.lock();
        for &f in file_ids {
            cache.remove(f);
        }
    }

    /// Open a streaming scan of one catalogued file within `bounds`.
    pub(crate) fn scan_file(
        &self,
        entry: &CatalogEntry,
        bounds: &ScanBounds,
    ) -> Result<file::ColdFileScan<R>> {
        if entry.state == FileState::Quarantined {
            return Err(Error::cold_file(
                self.file_path(&entry.path),
                "quarantined; a scan over its range cannot be complete",
            ));
        }
        self.open_file(entry)?.scan(bounds)
    }

    /// Open a streaming scan of one catalogued file within `bounds` that reads and decodes only
    /// the top-level columns `roots` (ascending, holding 0 and 1; see
    /// [`ColdFile::scan_batches`]).
    pub(crate) fn scan_file_batches(
        &self,
        entry: &CatalogEntry,
        bounds: &ScanBounds,
        roots: &[usize],
        dictionary: &[usize],
    ) -> Result<file::ColdBatchScan> {
        if entry.state == FileState::Quarantined {
            return Err(Error::cold_file(
                self.file_path(&entry.path),
                "quarantined; a scan over its range cannot be complete",
            ));
        }
        self.open_file(entry)?
            .scan_batches(bounds, roots, dictionary)
    }

    /// Counters and sizes.
    pub fn cold_stats(&self) -> Result<ColdStats> {
        let entries = self.inner.catalog.entries()?;
        let cache = self.inner.cache.lock();
        Ok(ColdStats {
            files: entries.len() as u64,
            quarantined_files: entries
                .iter()
                .filter(|e| e.state == FileState::Quarantined)
                .count() as u64,
            bytes: entries.iter().map(|e| e.bytes).sum(),
            rows: entries.iter().map(|e| e.rows).sum(),
            dead_rows: entries.iter().map(|e| e.dead_rows).sum(),
            metadata_cache_bytes: cache.bytes as u64,
            metadata_cache_files: cache.files.len() as u64,
            archived_since_open: self.inner.archived.load(Ordering::Relaxed),
            archive_files_since_open: self.inner.files_written.load(Ordering::Relaxed),
        })
    }

    /// What the object store did since open (requests per store, and the cache's and
    /// replicas' figures); `None` when the cold tier is on local disk.
    #[cfg(feature = "s3")]
    pub fn object_metrics(&self) -> Option<store::object::ObjectStoreMetrics> {
        self.inner.store.object().map(|o| {
            let mut m = o.metrics();
            m.replicas = self.replication_lag().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "replication lag: catalog unreadable");
                Vec::new()
            });
            m
        })
    }

    /// Bytes of Parquet metadata cached in memory: the cold tier's resident index.
    pub fn metadata_cache_bytes(&self) -> u64 {
        self.inner.cache.lock().bytes as u64
    }

    pub(crate) fn note_archived(&self, rows: u64) {
        self.inner.archived.fetch_add(rows, Ordering::Relaxed);
        self.inner.files_written.fetch_add(1, Ordering::Relaxed);
    }

    /// Counters snapshot. `record_count` is the live rows of catalogued files.
    pub fn metrics(&self) -> TierMetrics {
        let mut m = TierMetrics {
            tier_name: "cold".to_owned(),
            ..TierMetrics::default()
        };
        match self.inner.catalog.entries() {
            Ok(entries) => {
                m.record_count = entries.iter().map(CatalogEntry::live_rows).sum();
                m.bytes_stored = entries.iter().map(|e| e.bytes).sum();
                m.file_count = entries.len() as u64;
                m.quarantined_files = entries
                    .iter()
                    .filter(|e| e.state == FileState::Quarantined)
                    .count() as u64;
            }
            Err(e) => tracing::warn!(error = %e, "cold metrics: catalog unreadable"),
        }
        m.records_archived = self.inner.archived.load(Ordering::Relaxed);
        self.inner.stats.fill(&mut m);
        m
    }
}

/// The object store of `cold.store` (staging in `<data_dir>/cold-staging`; nothing created
/// for a read-only open, which only reads).
#[cfg(feature = "s3")]
fn object_store(config: &StorageConfig) -> Result<Arc<dyn ColdStore>> {
    Ok(Arc::new(store::object::ObjectColdStore::open(
        &config.cold,
        &config.data_dir,
        config.read_only,
    )?))
}

#[cfg(not(feature = "s3"))]
fn object_store(_config: &StorageConfig) -> Result<Arc<dyn ColdStore>> {
    Err(Error::config(
        "cold.store",
        "this build has no object-store support: build tiered-storage with the `s3` feature",
    ))
}

/// `YYYY-MM-DD` of a day number (days since the Unix epoch), proleptic Gregorian.
pub(crate) fn day_string(day: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day (since the Unix epoch, UTC) of a Unix-ms timestamp.
pub(crate) fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_storage_day_strings() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(day_of(1_700_000_000_000)), "2023-11-14");
        assert_eq!(day_string(day_of(951_782_400_000)), "2000-02-29");
        assert_eq!(day_string(-1), "1969-12-31");
        assert_eq!(day_of(-1), -1);
    }
}
