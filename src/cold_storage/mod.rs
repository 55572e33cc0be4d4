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
mod checksum;
mod compact;
mod export;
pub(crate) mod file;
mod recovery;
pub(crate) mod store;

pub(crate) use archive::{discard_path, ArchiveBuilder, FinishedFile};
pub use recovery::{ColdFileProblem, ProblemKind, VerifyReport};

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::blocking::BlockingPool;
use crate::catalog::{ArchivedCopy, CatalogEntry, ColdCatalog, FileState};
use crate::config::{ColdConfig, StorageConfig};
use crate::error::{Error, Result};
use crate::metrics::{AccessStats, TierMetrics};
use crate::record::{signature_hash, Record, TransactionRecord};
use crate::tier::StorageTier;
use file::{ColdFile, ScanBounds, WriterOptions};
use store::{ColdStore, FileRef, LocalStore};

/// Directory of the cold tier inside the data directory.
pub const COLD_DIR: &str = "cold";
/// Target access time of the cold tier (the seed's "< 100 ms").
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

/// Opened files (footer and page index), bounded by their in-memory size, least recently used
/// evicted first.
struct MetaCache<R: Record> {
    files: HashMap<i64, (Arc<ColdFile<R>>, usize, u64)>,
    bytes: usize,
    limit: usize,
    tick: u64,
}

impl<R: Record> MetaCache<R> {
    fn get(&mut self, file_id: i64) -> Option<Arc<ColdFile<R>>> {
        self.tick += 1;
        let tick = self.tick;
        self.files.get_mut(&file_id).map(|e| {
            e.2 = tick;
            Arc::clone(&e.0)
        })
    }

    fn insert(&mut self, file_id: i64, file: Arc<ColdFile<R>>) {
        let size = file.memory_size();
        self.tick += 1;
        if let Some(old) = self.files.insert(file_id, (file, size, self.tick)) {
            self.bytes -= old.1;
        }
        self.bytes += size;
        while self.bytes > self.limit && self.files.len() > 1 {
            let (&victim, _) = self
                .files
                .iter()
                .filter(|(&id, _)| id != file_id)
                .min_by_key(|(_, e)| e.2)
                .expect("more than one entry");
            self.remove(victim);
        }
    }

    fn remove(&mut self, file_id: i64) {
        if let Some((_, size, _)) = self.files.remove(&file_id) {
            self.bytes -= size;
        }
    }
}

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
        let mut seqs = self.inner.seqs.lock();
        if seqs.0 >= seqs.1 {
            let first = self.inner.catalog.reserve_file_seqs(seqs.0, SEQ_BLOCK)?;
            *seqs = (first, first + SEQ_BLOCK);
        }
        let seq = seqs.0;
        seqs.0 += 1;
        Ok(format!("date={}/part-{seq:012}.parquet", day_string(day)))
    }

    /// The absolute path of a catalogued relative path (for messages and problem reports).
    pub fn file_path(&self, relative: &str) -> PathBuf {
        self.inner.store.path_of(relative)
    }

    /// Every catalogued file.
    pub fn files(&self) -> Result<Vec<CatalogEntry>> {
        self.inner.catalog.entries()
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
        let file = Arc::new(ColdFile::open_at(
            FileRef::published(&self.inner.store, &entry.path),
            sums.as_deref(),
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

#[async_trait]
impl<R: Record> StorageTier<R> for ColdArchiveStorage<R> {
    /// Reads the archived copy of `id`, if a live file holds one. Alone, the cold tier does
    /// not know whether warm holds a newer version: the coordinator's `get` does.
    async fn get(&self, id: i64) -> Result<Option<R>> {
        let this = self.clone();
        self.pool().run(move || this.read_alone(id)).await?
    }

    /// Reads the archived record carrying `signature`, if a live file holds one (see `get`).
    async fn get_by_signature(&self, signature: &str) -> Result<Option<R>> {
        let this = self.clone();
        let sig = signature.to_owned();
        self.pool()
            .run(move || {
                let ids = this.inner.catalog.archived_ids(signature_hash(&sig))?;
                for id in ids {
                    if let Some(r) = this.read_alone(id)? {
                        if r.signature() == Some(sig.as_str()) {
                            return Ok(Some(r));
                        }
                    }
                }
                Ok(None)
            })
            .await?
    }

    /// Refused: the cold tier is written by archival, whose catalog change must commit with
    /// the warm delete. Use `AutoTieringCoordinator::archive_now`.
    async fn put(&self, _record: &R) -> Result<i64> {
        Err(Error::Unsupported {
            op: "put into the cold tier (it is written only by archival: put through the coordinator, and AutoTieringCoordinator::archive_now moves records here)",
        })
    }

    /// Refused: a cold delete is a tombstone committed by the warm writer. Use
    /// `AutoTieringCoordinator::remove`.
    async fn remove(&self, _id: i64) -> Result<bool> {
        Err(Error::Unsupported {
            op: "remove from the cold tier (archived records are removed through AutoTieringCoordinator::remove, which tombstones them)",
        })
    }

    async fn list_since(
        &self,
        since_ms: i64,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let this = self.clone();
        self.pool()
            .run(move || this.page_since(since_ms, after_id, limit))
            .await?
    }

    async fn count(&self) -> Result<u64> {
        Ok(self
            .inner
            .catalog
            .entries()?
            .iter()
            .map(CatalogEntry::live_rows)
            .sum())
    }

    async fn get_metrics(&self) -> Result<TierMetrics> {
        Ok(self.metrics())
    }

    fn tier_name(&self) -> &'static str {
        "cold"
    }

    fn target_access_time(&self) -> Duration {
        COLD_TARGET_ACCESS_TIME
    }
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Direct tier access: read `id` from the files the catalog says cover it, following a
    /// file that compaction replaced meanwhile.
    fn read_alone(&self, id: i64) -> Result<Option<R>> {
        let mut vanished = None;
        for _ in 0..RELOCATE_ATTEMPTS {
            let files = self.inner.catalog.covering(id)?;
            match self.read(id, &files)? {
                ColdRead::Found { record, .. } => return Ok(Some(record)),
                ColdRead::Absent => return Ok(None),
                ColdRead::Vanished { file_id, error } => {
                    self.check_vanished(&mut vanished, file_id, error)?
                }
            }
        }
        Err(Error::Conflict { id })
    }

    /// One page of live archived records with `timestamp_ms() >= since_ms` and id above
    /// `after_id`, in id order, file by file (blocking).
    fn page_since(&self, since_ms: i64, after_id: Option<i64>, limit: usize) -> Result<Vec<R>> {
        let after = after_id.unwrap_or(i64::MIN);
        let mut entries: Vec<CatalogEntry> = self
            .inner
            .catalog
            .entries()?
            .into_iter()
            .filter(|e| e.max_id > after && e.max_ts >= since_ms)
            .collect();
        entries.sort_by_key(|e| e.min_id);
        let mut out: Vec<R> = Vec::new();
        let bounds = ScanBounds {
            min_id: after.saturating_add(1),
            max_id: i64::MAX,
            min_ts: since_ms,
            max_ts: i64::MAX,
            equals: Vec::new(),
            batch_rows: limit.clamp(1, 8192),
        };
        for entry in &entries {
            // Files are sorted by min_id; once the page is full and the next file starts past
            // its last id, no later file can contribute a smaller id.
            if out.len() >= limit && out.last().and_then(Record::id) < Some(entry.min_id) {
                break;
            }
            let dead = self
                .inner
                .catalog
                .dead_ids(entry.file_id, bounds.min_id, entry.max_id)?;
            for batch in self.scan_file(entry, &bounds)? {
                for r in batch? {
                    let id = r.id().expect("cold rows carry their id");
                    if dead.binary_search(&id).is_err() {
                        out.push(r);
                    }
                }
                if out.len() >= limit {
                    break;
                }
            }
            out.sort_by_key(|r| r.id());
            out.truncate(limit);
        }
        Ok(out)
    }
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
