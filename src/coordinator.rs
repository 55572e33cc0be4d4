//! `AutoTieringCoordinator`: routes reads hot → warm → cold, makes writes durable in warm before
//! caching them in hot, promotes records read often, and moves records between warm and cold.

mod backup;
mod maintenance;
mod moves;
mod scan;

pub use backup::BackupReport;
pub use maintenance::{MaintenanceStatus, MaintenanceStepReport};
pub use moves::{ArchiveReport, CompactionReport, IntegrityReport, RebuildReport};
pub use scan::{RecordCursor, ScanRange};

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::Serialize;
use tracing::Instrument;

use crate::catalog::ColdCatalog;
use crate::cold_storage::{ColdArchiveStorage, ColdRead};
use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::hot_storage::HotMemoryStorage;
use crate::metrics::alerts::AlertBook;
use crate::metrics::TierMetrics;
use crate::record::{signature_hash, Record, TransactionRecord};
use crate::warm_storage::{
    ColdHome, Lookup, SignatureLookup, WarmSqliteStorage, WarmUpkeepReport, WriteOp,
};

/// How many times a read or write follows a record that moved between warm and cold while it
/// was being looked up, before giving up. Each retry needs another tier move of the same record
/// in between, so this is never reached in practice.
const MOVE_RETRIES: usize = 64;

/// Records per page fetched by [`RecordCursor`]. Default for `list_since`.
pub const DEFAULT_LIST_PAGE_SIZE: usize = 512;

/// The store: one hot cache over one SQLite database.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tiered_storage::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
///
/// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
/// let mut record = TransactionRecord::default();
/// record.transaction_signature = Some("5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnb".into());
/// let id = store.put(&record).await?;
///
/// record.id = Some(id);
/// record.final_sol_received = Some(0.75);
/// store.update(&record).await?;
/// assert_eq!(store.get(id).await?.unwrap().final_sol_received, Some(0.75));
///
/// store.remove(id).await?;
/// assert!(store.get(id).await?.is_none());
/// # Ok(()) }
/// ```
pub struct AutoTieringCoordinator<R: Record = TransactionRecord> {
    config: StorageConfig,
    hot: HotMemoryStorage<R>,
    warm: WarmSqliteStorage<R>,
    cold: ColdArchiveStorage<R>,
    /// One tier move (archival, compaction, catalog rebuild) at a time.
    moves: tokio::sync::Mutex<()>,
    /// Set when shutdown begins: moves and maintenance steps are refused, a running archival
    /// ends at its next page.
    stopping: Arc<AtomicBool>,
    /// Writes hold it shared for their whole duration; shutdown takes it exclusively (waiting
    /// for them) and sets it, after which writes fail with `Error::Closed`.
    gate: Arc<tokio::sync::RwLock<bool>>,
    /// Whether shutdown has completed (a second call waits on the first).
    shutdown_done: tokio::sync::Mutex<bool>,
    maintenance: maintenance::MaintenanceState,
    alerts: parking_lot::Mutex<AlertBook>,
}

impl<R: Record> std::fmt::Debug for AutoTieringCoordinator<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoTieringCoordinator")
            .field("data_dir", &self.config.data_dir)
            .field("hot", &self.hot)
            .field("warm", &self.warm)
            .field("cold", &self.cold)
            .finish()
    }
}

/// Record counts and read routing counters, from [`AutoTieringCoordinator::get_stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageStats {
    /// Records cached in hot.
    pub hot_records: u64,
    /// Records stored in warm.
    pub warm_records: u64,
    /// Live records archived in cold.
    pub cold_records: u64,
    /// Distinct records stored: warm plus cold (hot is a cache over them).
    pub total_records: u64,
    /// Reads answered by hot.
    pub hot_hits: u64,
    /// Reads answered by warm.
    pub warm_hits: u64,
    /// Reads answered by cold.
    pub cold_hits: u64,
    /// Reads no tier could answer.
    pub misses: u64,
    /// Records promoted into hot by reads.
    pub promotions: u64,
    /// Records evicted from hot for capacity.
    pub hot_evictions: u64,
}

/// Per-tier metrics, from [`AutoTieringCoordinator::collect_metrics`]. A tier that is not
/// configured is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TieredMetrics {
    /// Hot tier.
    pub hot: Option<TierMetrics>,
    /// Warm tier.
    pub warm: Option<TierMetrics>,
    /// Cold tier.
    pub cold: Option<TierMetrics>,
}

impl AutoTieringCoordinator<TransactionRecord> {
    /// Open with every default (data in [`crate::config::DEFAULT_DATA_DIR`], or
    /// `$TIERED_STORAGE_DATA_DIR`).
    pub async fn with_defaults() -> Result<Self> {
        Self::open(StorageConfig::default()).await
    }

    /// Open with a [`TieringConfig`](crate::TieringConfig) (other settings default) or a full
    /// [`StorageConfig`].
    pub async fn new(config: impl Into<StorageConfig>) -> Result<Self> {
        Self::open(config).await
    }
}

impl<R: Record> AutoTieringCoordinator<R> {
    /// Open a store of any [`Record`] type. Validates the config, creates the data directory,
    /// opens (and migrates) the warm database.
    pub async fn open(config: impl Into<StorageConfig>) -> Result<Self> {
        let config = config.into();
        let span = tracing::info_span!("open", data_dir = %config.data_dir.display());
        Self::open_inner(config).instrument(span).await
    }

    /// Open a store that another process (or handle) may own, without owning it: for a report
    /// job or a dashboard beside the bot.
    ///
    /// - Warm is read through SQLite's WAL snapshots and cold through the catalog; the owner's
    ///   archival and compaction may run meanwhile (a read that finds its file replaced looks
    ///   again).
    /// - Nothing is written: writes, moves and maintenance fail with [`Error::ReadOnly`], no
    ///   open-time cleanup or recovery runs, no lock is taken, and nothing is cached in hot
    ///   (the owner's updates would leave it stale).
    /// - The database must exist and be at this build's schema version.
    /// - A signature lookup also scans the owner's unmerged recent rows (the owner indexes
    ///   them in its memory), so it costs more than in the owner.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, Error, StorageConfig, TransactionRecord};
    ///
    /// let config = StorageConfig::default().with_data_dir(dir.path());
    /// let owner = AutoTieringCoordinator::new(config.clone()).await?;
    /// let mut record = TransactionRecord::default();
    /// record.transaction_signature = Some("sig-1".into());
    /// let id = owner.put(&record).await?;
    ///
    /// // A second read-write open fails at once, naming the holder...
    /// let err = AutoTieringCoordinator::new(config.clone()).await.unwrap_err();
    /// assert!(matches!(err, Error::AlreadyOpen { .. }));
    /// // ...and a read-only one sees what the owner committed.
    /// let reader = AutoTieringCoordinator::<TransactionRecord>::open_read_only(config).await?;
    /// assert!(reader.get(id).await?.is_some());
    /// assert!(matches!(reader.put(&TransactionRecord::default()).await, Err(Error::ReadOnly { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn open_read_only(config: impl Into<StorageConfig>) -> Result<Self> {
        let mut config = config.into();
        config.read_only = true;
        Self::open(config).await
    }

    async fn open_inner(config: StorageConfig) -> Result<Self> {
        config.validate()?;
        let data_dir = std::path::absolute(&config.data_dir).unwrap_or(config.data_dir.clone());
        tracing::info!(data_dir = %data_dir.display(), read_only = config.read_only, "opening store");
        let warm_config = config.clone();
        let warm = tokio::task::spawn_blocking(move || {
            if !warm_config.read_only {
                prepare_data_dir(&warm_config.data_dir)?;
            }
            WarmSqliteStorage::open(&warm_config)
        })
        .await
        .map_err(|_| Error::Closed)??;
        let catalog: Arc<dyn ColdCatalog> = Arc::new(warm.clone());
        let cold_config = config.clone();
        let (cold, check) = tokio::task::spawn_blocking(move || {
            let cold = ColdArchiveStorage::open(&cold_config, catalog)?;
            // Recovery deletes and quarantines: only the owner, holding the lock, runs it.
            let check = if cold_config.read_only {
                Default::default()
            } else {
                cold.check_on_open()?
            };
            Ok::<_, Error>((cold, check))
        })
        .await
        .map_err(|_| Error::Closed)??;
        for file_id in &check.quarantine {
            warm.set_file_state(*file_id, crate::catalog::FileState::Quarantined)
                .await?;
        }
        let hot = HotMemoryStorage::new(&config);
        tracing::info!(
            data_dir = %config.data_dir.display(),
            warm_records = warm.len(),
            cold_temp_removed = check.temp_removed,
            cold_orphans_removed = check.orphans_removed,
            cold_quarantined = check.quarantine.len(),
            "store opened"
        );
        let alerts = parking_lot::Mutex::new(AlertBook::new(config.alerts.history_limit));
        Ok(Self {
            config,
            hot,
            warm,
            cold,
            moves: tokio::sync::Mutex::new(()),
            stopping: Arc::new(AtomicBool::new(false)),
            gate: Arc::new(tokio::sync::RwLock::new(false)),
            shutdown_done: tokio::sync::Mutex::new(false),
            maintenance: maintenance::MaintenanceState::default(),
            alerts,
        })
    }

    /// Store a new record durably and return its id. The record's id must be unset.
    ///
    /// Returns after the warm transaction holding it has committed; the record is then cached
    /// in hot. If the future is dropped before it resolves, the write may still commit.
    pub async fn put(&self, record: &R) -> Result<i64> {
        if record.id().is_some() {
            return Err(Error::invalid(
                "put assigns ids: the record already has one (use update to change a stored record)",
            ));
        }
        let encoded = self.warm.encode(record)?;
        let bytes = encoded.payload.len();
        let permit = self.write_permit("put").await?;
        let mut distinct = Vec::new();
        let ack = loop {
            let ack = self
                .warm
                .write(WriteOp::Put(encoded.clone(), std::mem::take(&mut distinct)))
                .await?;
            if ack.unconfirmed.is_empty() {
                break ack;
            }
            distinct =
                confirm_distinct(&self.warm, &self.cold, &encoded.signature, ack.unconfirmed)
                    .await?;
        };
        drop(permit);
        let mut cached = record.clone();
        cached.set_id(ack.id);
        self.hot.insert_put(cached, bytes, ack.seq);
        Ok(ack.id)
    }

    /// Replace a stored record (matched by its id) durably. Typical use: filling in a trade's
    /// outcome. Reads are linearizable: once any read has seen the new version (and certainly
    /// once this returns), no read sees the old one.
    pub async fn update(&self, record: &R) -> Result<()> {
        let Some(id) = record.id() else {
            return Err(Error::invalid(
                "update needs the record's id (as returned by put)",
            ));
        };
        let encoded = self.warm.encode(record)?;
        let bytes = encoded.payload.len();
        let permit = self.write_permit("update").await?;
        // Evict before the commit, so hot never serves the old version once warm has the new.
        // The guard is finished by a task that waits for the commit even if this future is
        // dropped: a cancelled update that still commits cannot leave hot stale.
        let mut guard = self.hot.begin_write(id);
        let warm = self.warm.clone();
        let cold = self.cold.clone();
        // Only a record that was cached is re-cached: skip the clone otherwise.
        let recache = guard.was_cached().then(|| record.clone());
        let done = tokio::spawn(async move {
            // Shutdown waits for this write, even if the caller stops waiting.
            let _permit = permit;
            let mut home = None;
            let mut distinct = Vec::new();
            for _ in 0..MOVE_RETRIES {
                let op = WriteOp::Update(encoded.clone(), home, std::mem::take(&mut distinct));
                match warm.write(op).await {
                    Ok(ack) if !ack.unconfirmed.is_empty() => {
                        distinct =
                            confirm_distinct(&warm, &cold, &encoded.signature, ack.unconfirmed)
                                .await?;
                        continue;
                    }
                    Ok(ack) if !ack.moved => {
                        match recache {
                            Some(record) => guard.finish(record, bytes, ack.seq, false),
                            None => guard.committed(ack.seq),
                        }
                        return Ok(());
                    }
                    // Not in warm, or the cold copy named moved: find it and write again.
                    Ok(_) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                home = locate_home(&warm, &cold, id)
                    .await?
                    .ok_or(Error::NotFound { id })?;
            }
            Err(Error::Conflict { id })
        });
        done.await.map_err(join_error)?
    }

    /// Delete a record from every tier. [`Error::NotFound`] if no tier holds it.
    pub async fn remove(&self, id: i64) -> Result<()> {
        let permit = self.write_permit("remove").await?;
        let mut guard = self.hot.begin_write(id);
        let warm = self.warm.clone();
        let cold = self.cold.clone();
        let done = tokio::spawn(async move {
            // Shutdown waits for this write, even if the caller stops waiting.
            let _permit = permit;
            let mut home = None;
            for _ in 0..MOVE_RETRIES {
                let ack = warm.write(WriteOp::Remove(id, home)).await?;
                if ack.removed {
                    guard.committed(ack.seq);
                    return Ok(true);
                }
                // Not in warm, or the cold copy named moved: find it and write again.
                match locate_home(&warm, &cold, id).await? {
                    None => return Ok(false),
                    Some(h) => home = h,
                }
            }
            Err(Error::Conflict { id })
        });
        if done.await.map_err(join_error)?? {
            Ok(())
        } else {
            Err(Error::NotFound { id })
        }
    }

    /// Permission to write: held until the write's commit is known, so shutdown (which takes
    /// the gate exclusively) waits for it. [`Error::Closed`] once shutdown has begun.
    async fn write_permit(
        &self,
        op: &'static str,
    ) -> Result<tokio::sync::OwnedRwLockReadGuard<bool>> {
        if self.config.read_only {
            return Err(Error::ReadOnly {
                path: self.config.data_dir.clone(),
                op,
            });
        }
        let permit = Arc::clone(&self.gate).read_owned().await;
        if *permit || self.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(permit)
    }

    /// Read by id: hot, then warm, then cold. A hot hit never leaves the calling thread; a
    /// warm read runs on it too (a few µs, no thread hop); a cold read (about one Parquet page
    /// per column) runs on a blocking thread.
    pub async fn get(&self, id: i64) -> Result<Option<R>> {
        if let Some(r) = self.hot.lookup(id) {
            return Ok(Some(r));
        }
        let ticket = self.hot.fill_ticket(id);
        let Some(found) = self.read_lower(id).await? else {
            return Ok(None);
        };
        if self.should_promote(id) {
            self.hot.fill(found.record.clone(), found.bytes(), ticket);
        }
        Ok(Some(found.record))
    }

    /// Read by id below hot: warm answers from one snapshot with the row or the cold files that
    /// may hold it, and cold reads only those. A file compaction removed since the snapshot
    /// makes the read start again; nothing else does.
    async fn read_lower(&self, id: i64) -> Result<Option<LowerHit<R>>> {
        // Read before the lookup: an id below it committed before the lookup began, so the
        // lookup must find it unless it was removed. (A read-only handle reads the committed
        // bound only on a miss.)
        let assigned = (!self.config.read_only).then(|| self.warm.assigned_below());
        for _ in 0..MOVE_RETRIES {
            let files = match self.warm.lookup(id)? {
                Lookup::Row(row) => {
                    return Ok(Some(LowerHit {
                        record: row.record,
                        bytes: Some(row.bytes),
                    }))
                }
                Lookup::Archived(files) => files,
            };
            let read = if files.is_empty() {
                self.cold.count_miss(std::time::Instant::now());
                ColdRead::Absent
            } else {
                self.cold_read(move |cold| cold.read(id, &files)).await?
            };
            match read {
                ColdRead::Found { record, .. } => {
                    return Ok(Some(LowerHit {
                        record,
                        bytes: None,
                    }))
                }
                ColdRead::Absent => {
                    // Corruption never reads as "not found".
                    let assigned = assigned.unwrap_or_else(|| self.warm.assigned_below());
                    self.warm.confirm_absent(id, assigned)?;
                    return Ok(None);
                }
                ColdRead::Vanished => continue,
            }
        }
        Err(Error::Conflict { id })
    }

    /// Read by transaction signature: hot, then warm, then cold. Warm answers from one
    /// snapshot with the row, or the archived records whose signature hash matches and the
    /// files that may hold them; cold reads only those and confirms the text.
    pub async fn get_by_signature(&self, signature: &str) -> Result<Option<R>> {
        if signature.is_empty() {
            return Err(Error::EmptySignature);
        }
        if let Some(r) = self.hot.lookup_signature(signature) {
            return Ok(Some(r));
        }
        let mut last = None;
        for _ in 0..MOVE_RETRIES {
            let copies = match self.warm.lookup_signature(signature)? {
                SignatureLookup::Row(row) => {
                    return self.promote_by_signature(row.record, None, signature).await
                }
                SignatureLookup::Archived(copies) => copies,
            };
            let Some(first) = copies.first() else {
                self.cold.count_miss(std::time::Instant::now());
                return Ok(None);
            };
            last = Some(first.id);
            let sig = signature.to_owned();
            match self
                .cold_read(move |cold| cold.read_signature(&sig, &copies))
                .await?
            {
                ColdRead::Found { record, file_id } => {
                    return self
                        .promote_by_signature(record, Some(file_id), signature)
                        .await
                }
                ColdRead::Absent => return Ok(None),
                ColdRead::Vanished => continue,
            }
        }
        Err(Error::Conflict {
            id: last.unwrap_or_default(),
        })
    }

    /// After a lower-tier hit by signature: promote on the Nth read. A fill ticket must predate
    /// the read it guards, and the id was unknown before this read. For a copy read from cold
    /// file `from_file`, the ticket is taken now and the file confirmed still to be the
    /// record's home (every update or remove of an archived record moves or tombstones it, so
    /// the copy read is current; a later write is caught by the ticket). Otherwise (a warm hit,
    /// or the record moved), the record is read again by id under the ticket; the re-read is at
    /// least as new as the first, so it is the one returned.
    async fn promote_by_signature(
        &self,
        record: R,
        from_file: Option<i64>,
        signature: &str,
    ) -> Result<Option<R>> {
        let id = record.id().expect("stored records carry their id");
        if !self.should_promote(id) {
            return Ok(Some(record));
        }
        let ticket = self.hot.fill_ticket(id);
        if let Some(file_id) = from_file {
            if self.warm.cold_copy_is_current(id, file_id)? {
                self.hot.fill(record.clone(), encoded_len(&record), ticket);
                return Ok(Some(record));
            }
        }
        match self.read_lower(id).await? {
            Some(fresh) if fresh.record.signature() == Some(signature) => {
                self.hot.fill(fresh.record.clone(), fresh.bytes(), ticket);
                Ok(Some(fresh.record))
            }
            // Renamed or removed since the first read.
            _ => Ok(None),
        }
    }

    /// Run a blocking cold read off the async worker threads.
    async fn cold_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ColdArchiveStorage<R>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cold = self.cold.clone();
        self.cold.pool().run(move || f(&cold)).await?
    }

    fn should_promote(&self, id: i64) -> bool {
        // A read-only handle caches nothing: the owner's writes would leave it stale.
        !self.config.read_only
            && self.config.tiering.auto_promote_on_access
            && u64::from(self.hot.touch(id)) >= self.config.tiering.min_hot_access_count
    }

    /// Records with `timestamp_ms() >= since_ms`, from every tier, in id order, fetched a page
    /// at a time.
    pub fn list_since(&self, since_ms: i64) -> RecordCursor<R> {
        self.list_since_with_page_size(since_ms, DEFAULT_LIST_PAGE_SIZE)
    }

    /// [`list_since`](Self::list_since) with a chosen page size (memory is about one page).
    pub fn list_since_with_page_size(&self, since_ms: i64, page_size: usize) -> RecordCursor<R> {
        RecordCursor::new(
            self.warm.clone(),
            self.cold.clone(),
            ScanRange::default().with_time(since_ms..=i64::MAX),
            page_size,
        )
    }

    /// Records in a time range, an id range and matching field filters (outcome, mint,
    /// program), from every tier, merged in id order with no duplicates, a page at a time.
    /// Cold files and row groups whose statistics exclude the range are skipped.
    ///
    /// [`Error::InvalidRecord`] if a filter names a field the record type has no column for.
    pub fn scan(&self, range: ScanRange, page_size: usize) -> Result<RecordCursor<R>> {
        range.validate::<R>()?;
        Ok(RecordCursor::new(
            self.warm.clone(),
            self.cold.clone(),
            range,
            page_size,
        ))
    }

    /// Counts and read routing counters.
    pub async fn get_stats(&self) -> Result<StorageStats> {
        let hot = self.hot.metrics();
        let warm = self.warm.metrics();
        let cold = self.cold.metrics();
        Ok(StorageStats {
            hot_records: hot.record_count,
            warm_records: warm.record_count,
            cold_records: cold.record_count,
            total_records: warm.record_count + cold.record_count,
            hot_hits: hot.hits,
            warm_hits: warm.hits,
            cold_hits: cold.hits,
            misses: cold.misses,
            promotions: hot.promotions,
            hot_evictions: hot.evictions,
        })
    }

    /// Metrics of every tier: counts, measured bytes, hits and misses, access times over the
    /// recent window (`metrics.window_secs`), evictions, promotions, records archived,
    /// archival lag and cold files. As in the seed:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let coordinator = tiered_storage::AutoTieringCoordinator::new(
    /// #     tiered_storage::StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let metrics = coordinator.collect_metrics().await?;
    ///
    /// if let Some(hot) = metrics.hot {
    ///     println!("Hot tier: {} records, {:.2}% hit rate",
    ///         hot.record_count, hot.hit_rate());
    ///     println!("P95 access time: {}µs", hot.p95_access_time_us);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn collect_metrics(&self) -> Result<TieredMetrics> {
        let mut warm = self.warm.metrics();
        if let Some(oldest) = self.warm.oldest_timestamp_ms()? {
            let overdue_ms = self.archive_cutoff_ms().saturating_sub(oldest);
            warm.archival_lag_secs = (overdue_ms.max(0) / 1000) as u64;
        }
        Ok(TieredMetrics {
            hot: Some(self.hot.metrics()),
            warm: Some(warm),
            cold: Some(self.cold.metrics()),
        })
    }

    /// Every metric and active alert as a Prometheus text exposition (content type
    /// [`PROMETHEUS_CONTENT_TYPE`](crate::PROMETHEUS_CONTENT_TYPE)), for a `/metrics` endpoint.
    pub async fn export_prometheus(&self) -> Result<String> {
        let alerts = self.get_alerts().await;
        let metrics = self.collect_metrics().await?;
        Ok(crate::metrics::prometheus::render(&metrics, &alerts))
    }

    /// Run warm upkeep now (access-statistics flush, signature merge, sampled ANALYZE, one
    /// incremental-vacuum step, checkpoint). [`run_maintenance_step`](Self::run_maintenance_step)
    /// runs a whole maintenance step, archival and compaction included.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn run_warm_upkeep(&self) -> Result<WarmUpkeepReport> {
        self.check_open("run_warm_upkeep")?;
        self.hot.run_pending_tasks();
        self.warm.run_upkeep().await
    }

    /// The hot tier.
    pub fn hot_tier(&self) -> &HotMemoryStorage<R> {
        &self.hot
    }

    /// The warm tier.
    pub fn warm_tier(&self) -> &WarmSqliteStorage<R> {
        &self.warm
    }

    /// The cold tier.
    pub fn cold_tier(&self) -> &ColdArchiveStorage<R> {
        &self.cold
    }

    /// The configuration in force.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }
}

/// A write task that panicked re-raises the panic here; one cancelled by runtime shutdown
/// means the store is going away.
fn join_error(e: tokio::task::JoinError) -> Error {
    match e.try_into_panic() {
        Ok(payload) => std::panic::resume_unwind(payload),
        Err(_) => Error::Closed,
    }
}

/// Create the data directory and prove it is writable, so the error names the directory.
fn prepare_data_dir(dir: &Path) -> Result<()> {
    let err = |source| Error::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)?;
    Ok(())
}

/// Where a record lives, found for a write (not counted as a read).
enum Home<R> {
    /// It has a warm row.
    Warm,
    /// Its live copy is in this cold file.
    Cold { record: R, file_id: i64 },
    /// No tier holds it.
    Nowhere,
}

/// Find where `id` lives: warm names the candidate files in one snapshot, cold reads them. A
/// file compaction removed since the snapshot makes it look again.
async fn find_home<R: Record>(
    warm: &WarmSqliteStorage<R>,
    cold: &ColdArchiveStorage<R>,
    id: i64,
) -> Result<Home<R>> {
    for _ in 0..MOVE_RETRIES {
        let Some(files) = warm.locate(id)? else {
            return Ok(Home::Warm);
        };
        if files.is_empty() {
            return Ok(Home::Nowhere);
        }
        let reader = cold.clone();
        match cold
            .pool()
            .run(move || reader.read_uncounted(id, &files))
            .await??
        {
            ColdRead::Found { record, file_id } => return Ok(Home::Cold { record, file_id }),
            ColdRead::Absent => return Ok(Home::Nowhere),
            ColdRead::Vanished => continue,
        }
    }
    Err(Error::Conflict { id })
}

/// Where to write an id that warm did not hold: `None` if no tier holds it, `Some(None)` if it
/// is back in warm (write there), `Some(Some(home))` for its archived copy.
async fn locate_home<R: Record>(
    warm: &WarmSqliteStorage<R>,
    cold: &ColdArchiveStorage<R>,
    id: i64,
) -> Result<Option<Option<ColdHome>>> {
    Ok(match find_home(warm, cold, id).await? {
        Home::Warm => Some(None),
        Home::Cold { record, file_id } => Some(Some(ColdHome {
            file_id,
            sig_hash: record.signature().map(signature_hash),
        })),
        Home::Nowhere => None,
    })
}

/// A write's signature hash matched archived records `ids`, whose text only their cold
/// copies hold: read them (on the read pool, outside any write transaction). A copy carrying
/// `signature` makes the write a duplicate; otherwise the ids are returned, to be sent with the
/// write again as known to differ. (One that went back to warm meanwhile is checked against
/// its row by the writer.)
async fn confirm_distinct<R: Record>(
    warm: &WarmSqliteStorage<R>,
    cold: &ColdArchiveStorage<R>,
    signature: &Option<String>,
    ids: Vec<i64>,
) -> Result<Vec<i64>> {
    let signature = signature.as_deref().unwrap_or_default();
    for &id in &ids {
        if let Home::Cold { record, .. } = find_home(warm, cold, id).await? {
            if record.signature() == Some(signature) {
                return Err(Error::DuplicateSignature {
                    signature: signature.to_owned(),
                    existing_id: id,
                });
            }
        }
    }
    Ok(ids)
}

/// A record read from warm or cold, with its encoded size when warm knew it.
struct LowerHit<R> {
    record: R,
    bytes: Option<usize>,
}

impl<R: Record> LowerHit<R> {
    /// Encoded size, for the hot tier's byte bound (encoded now for a cold hit).
    fn bytes(&self) -> usize {
        self.bytes.unwrap_or_else(|| encoded_len(&self.record))
    }
}

/// Encoded size of a record, for the hot tier's byte bound.
fn encoded_len<R: Record>(record: &R) -> usize {
    let mut buf = Vec::new();
    match record.encode(&mut buf) {
        Ok(()) => buf.len(),
        Err(_) => 0,
    }
}
