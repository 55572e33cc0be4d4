//! `AutoTieringCoordinator`: routes reads hot → warm → cold, makes writes durable in warm before
//! caching them in hot, promotes records read often, and moves records between warm and cold.

mod aggregate;
mod backup;
mod cache;
mod columns;
mod deletes;
mod export;
mod maintenance;
mod moves;
mod read;
mod replication;
mod scan;
#[cfg(feature = "sql")]
mod sql;
mod write;

pub use aggregate::{Aggregate, AggregateRow, GroupBy, GroupKey, Measure};
pub use backup::BackupReport;
pub use columns::BatchCursor;
pub use deletes::PublishReport;
pub use export::{ExportFormat, ExportReport};
pub use maintenance::{MaintenanceStatus, MaintenanceStepReport};
pub use moves::{
    ArchiveProgress, ArchiveReport, CompactionProgress, CompactionReport, IntegrityReport,
    RebuildReport,
};
pub use scan::{RecordCursor, ScanOrder, ScanRange};
#[cfg(feature = "sql")]
pub use sql::{SqlRows, SqlValue};

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tracing::Instrument;

use crate::blocking::run_blocking;
use crate::catalog::ColdCatalog;
use crate::cold_storage::ColdArchiveStorage;
use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::hot_storage::HotMemoryStorage;
use crate::monitor::alerts::AlertBook;
use crate::monitor::{StorageStats, TieredMetrics};
use crate::record::{Record, TransactionRecord};
use crate::warm_storage::{WarmSqliteStorage, WarmUpkeepReport};

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
    /// The query-result cache; `None` when off (the default, and every read-only open).
    query_cache: Option<cache::QueryCache>,
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
    ///
    /// The store owns its data directory until [`shutdown`](Self::shutdown) or drop: a second
    /// read-write open of it, from this process or another, fails with [`Error::AlreadyOpen`].
    /// Use [`open_read_only`](Self::open_read_only) beside the owner.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("bot.toml");
    /// # std::fs::write(&path, "data_dir = \"store\"\n[hot]\ncapacity = 50000\n").unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
    ///
    /// // `data_dir = "store"` in the file: resolved against the file's directory.
    /// let config = StorageConfig::from_toml_file(&path)?;
    /// let store = AutoTieringCoordinator::<TransactionRecord>::open(config).await?;
    /// assert_eq!(store.config().data_dir, dir.path().join("store"));
    /// # Ok(()) }
    /// ```
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
        let warm = run_blocking(move || {
            if !warm_config.read_only {
                prepare_data_dir(&warm_config.data_dir)?;
            }
            WarmSqliteStorage::open(&warm_config)
        })
        .await??;
        let catalog: Arc<dyn ColdCatalog> = Arc::new(warm.clone());
        let cold_config = config.clone();
        let (cold, check) = run_blocking(move || {
            let cold = ColdArchiveStorage::open(&cold_config, catalog)?;
            // Recovery deletes and quarantines: only the owner, holding the lock, runs it.
            let check = if cold_config.read_only {
                Default::default()
            } else {
                let check = cold.check_on_open()?;
                // An object store's orphans (uploads a crash left uncommitted, replaced files
                // past the grace period) go by their intents: the check never lists the bucket.
                if cold.is_remote() {
                    let swept = cold.sweep_intents_now()?;
                    tracing::info!(?swept, "cold intent sweep at open");
                }
                check
            };
            Ok::<_, Error>((cold, check))
        })
        .await??;
        for file_id in &check.quarantine {
            warm.set_file_state(*file_id, crate::catalog::FileState::Quarantined)
                .await?;
        }
        let deletes_missing = check.deletes_missing.clone();
        let catalog_lost = check.uncatalogued;
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
        // A read-only handle does not see the owner's commits bump the generations.
        let query_cache = (config.query_cache.enabled() && !config.read_only)
            .then(|| cache::QueryCache::new(config.query_cache.max_bytes));
        let store = Self {
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
            query_cache,
        };
        if !store.config.read_only && !catalog_lost {
            // Tombstones a crash or an abrupt end left unpublished reach outside readers now,
            // and a catalogued delete file that is gone (a partial restore) is written again.
            // (Not with files the catalog never reserved on disk: a publication reserves file
            // numbers above them, and they would then pass for a move's leftovers.)
            let _move = store.moves.lock().await;
            store.publish_locked(deletes_missing).await?;
        }
        Ok(store)
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
    /// program), from every tier, merged in id order (or in time order:
    /// [`ScanRange::oldest_first`], [`ScanRange::newest_first`]) with no duplicates, at most
    /// [`ScanRange::limit`] of them, a page at a time. Cold files, row groups and pages whose
    /// statistics exclude the range are skipped.
    ///
    /// [`Error::InvalidQuery`] if a filter names a field the record type has no column for, or
    /// an `outcome_kind` that is not an [`OutcomeKind`](crate::OutcomeKind).
    ///
    /// The cursor returns records in the range's order, each once; drain it with
    /// [`next_page`](RecordCursor::next_page) or [`next`](RecordCursor::next) until `None`, as
    /// a `Stream`, or with [`collect`](RecordCursor::collect); [`query`](Self::query) does it
    /// in one call.
    /// It is not a snapshot: each page reads its records as they are then, and holds no lock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, Outcome, OutcomeKind, ScanRange, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for (ts, outcome) in [(1_000, Outcome::Profit(0.1)), (2_000, Outcome::Loss(0.2)), (3_000, Outcome::Profit(0.3))] {
    ///     let trade = TransactionRecord { timestamp_decision_made: ts, actual_outcome: outcome, ..Default::default() };
    ///     store.put(&trade).await?;
    /// }
    ///
    /// // Profitable trades with a decision time in 1..=3 s (Unix ms), two per page.
    /// let range = ScanRange::default().with_time(1_000..=3_000).with_outcome(OutcomeKind::Profit);
    /// let mut cursor = store.scan(range, 2)?;
    /// let mut profit = 0.0;
    /// while let Some(page) = cursor.next_page().await? {
    ///     for trade in page {
    ///         if let Outcome::Profit(sol) = trade.actual_outcome {
    ///             profit += sol;
    ///         }
    ///     }
    /// }
    /// assert!((profit - 0.4).abs() < 1e-9);
    /// # Ok(()) }
    /// ```
    pub fn scan(&self, range: ScanRange, page_size: usize) -> Result<RecordCursor<R>> {
        range.validate::<R>()?;
        Ok(RecordCursor::new(
            self.warm.clone(),
            self.cold.clone(),
            range,
            page_size,
        ))
    }

    /// The answer to a query, in one call: the records `range` selects, in its order (id, oldest
    /// or newest first), at most `range.limit` of them (all without a limit; memory is the
    /// result). The same as [`scan`](Self::scan) drained with
    /// [`collect`](RecordCursor::collect), sized to the limit.
    ///
    /// [`Error::InvalidQuery`] for a filter on a field the record type lacks, an unknown outcome
    /// kind or `limit(0)`.
    ///
    /// With `[query_cache]` on, answers are cached and served until a write touches a UTC day
    /// the range's time bounds cover (see [`QueryCacheConfig`](crate::QueryCacheConfig)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, Outcome, OutcomeKind, ScanRange, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for (ts, outcome) in [(1_000, Outcome::Loss(0.1)), (2_000, Outcome::Profit(0.5)), (3_000, Outcome::Loss(0.2))] {
    ///     store.put(&TransactionRecord { timestamp_decision_made: ts, actual_outcome: outcome, ..Default::default() }).await?;
    /// }
    /// // The most recent loss.
    /// let last_loss = store
    ///     .query(ScanRange::default().with_outcome(OutcomeKind::Loss).newest_first().limit(1))
    ///     .await?;
    /// assert_eq!(last_loss[0].timestamp_decision_made, 3_000);
    /// // Total PnL, Loss counted negative (see `Outcome::pnl`).
    /// let pnl: f64 = store.query(ScanRange::default()).await?.iter()
    ///     .filter_map(|t| t.actual_outcome.pnl()).sum();
    /// assert!((pnl - 0.2).abs() < 1e-9);
    /// # Ok(()) }
    /// ```
    pub async fn query(&self, range: ScanRange) -> Result<Vec<R>> {
        let Some(cache) = &self.query_cache else {
            return self.query_uncached(range).await;
        };
        range.validate::<R>()?;
        let key = cache::query_key(&range);
        // Read BEFORE computing: a write the answer might miss then changes the fingerprint.
        let fingerprint = self
            .warm
            .generations()
            .fingerprint(range.min_ts, range.max_ts);
        if let Some(cache::Answer::Records(records)) = cache.get(&key, fingerprint) {
            if let Some(records) = records.downcast_ref::<Vec<R>>() {
                return Ok(records.clone());
            }
        }
        let records = self.query_uncached(range).await?;
        let bytes = cache::records_bytes(&records);
        cache.insert(
            key,
            fingerprint,
            cache::Answer::Records(Arc::new(records.clone())),
            bytes,
        );
        Ok(records)
    }

    /// [`query`](Self::query) computed from the tiers, never from the cache.
    async fn query_uncached(&self, range: ScanRange) -> Result<Vec<R>> {
        let limit = range.limit.unwrap_or(usize::MAX);
        let page_size = range
            .limit
            .map_or(DEFAULT_LIST_PAGE_SIZE, |n| n.min(scan::MAX_WINDOW_ROWS));
        self.scan(range, page_size)?.collect(limit).await
    }

    /// The `n` newest records by timestamp (`timestamp_ms()`, ties by id), newest first, from
    /// every tier: `query(ScanRange::default().newest_first().limit(n))`. It reads about `n`
    /// records, not a time window: with the newest records in warm, one SQLite read of `n` rows
    /// on the `ts` index and a catalog check; cold files are opened only when their time range
    /// can hold one of the `n`. `latest(0)` is empty.
    ///
    /// [`recently_put`](Self::recently_put) orders by id (put order) instead. Cached like
    /// `query` when the query-result cache is on (any write invalidates it: it covers every
    /// day).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for ts in [5_000, 1_000, 9_000, 7_000] {
    ///     store.put(&TransactionRecord { timestamp_decision_made: ts, ..Default::default() }).await?;
    /// }
    /// let times: Vec<i64> = store.latest(2).await?.iter().map(|t| t.timestamp_decision_made).collect();
    /// assert_eq!(times, [9_000, 7_000]);
    /// # Ok(()) }
    /// ```
    pub async fn latest(&self, n: usize) -> Result<Vec<R>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.query(ScanRange::default().newest_first().limit(n))
            .await
    }

    /// Records of `range` as Arrow batches holding only `columns`, in that order: names of the
    /// record type's cold (Parquet) columns, [`Record::cold_schema`] (for [`TransactionRecord`]
    /// e.g. `"id"`, `"timestamp_decision_made"`, `"mint"`, `"outcome_kind"`,
    /// `"outcome_value"`, `"initial_sol_spent"`). From every tier, in ascending id order, each
    /// record once, at most `page_size` rows per batch, at most `range.limit` rows in all.
    ///
    /// Cold files are read through a Parquet projection: only the asked columns (plus `id` and
    /// the timestamp, and the columns `range` filters on) are read and decoded, and row groups
    /// and pages that the range excludes are skipped. Warm and hot rows are converted with
    /// [`Record::to_cold_batch`], so the values are the same whichever tier holds a record.
    /// Like [`scan`](Self::scan) it is not a snapshot: each batch is read as the store then is.
    ///
    /// [`Error::InvalidQuery`] for an unknown column, no column, a filter on a column that is
    /// not text, an unknown outcome kind, or a time order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use arrow_array::{Array, Float64Array};
    /// use tiered_storage::{AutoTieringCoordinator, ScanRange, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for spent in [0.5, 1.5] {
    ///     let trade = TransactionRecord { initial_sol_spent: Some(spent), ..Default::default() };
    ///     store.put(&trade).await?;
    /// }
    /// let mut cursor = store.scan_columns(ScanRange::default(), &["id", "initial_sol_spent"], 1000)?;
    /// let mut total = 0.0;
    /// while let Some(batch) = cursor.next_batch().await? {
    ///     assert_eq!(batch.num_columns(), 2);
    ///     let spent = batch.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
    ///     total += spent.iter().flatten().sum::<f64>();
    /// }
    /// assert_eq!(total, 2.0);
    /// # Ok(()) }
    /// ```
    pub fn scan_columns(
        &self,
        range: ScanRange,
        columns: &[&str],
        page_size: usize,
    ) -> Result<BatchCursor> {
        if columns.is_empty() {
            return Err(Error::invalid_query(
                "no column asked for: name at least one column",
            ));
        }
        range.validate::<R>()?;
        if range.order != ScanOrder::IdAscending {
            return Err(Error::invalid_query(
                "scan_columns reads in id order; use a range without oldest_first/newest_first",
            ));
        }
        let roots = columns::column_indices::<R>(columns)?;
        let page_size = page_size.max(1);
        let limit = range.limit;
        let scan = columns::BatchScan::new(
            self.warm.clone(),
            self.cold.clone(),
            range,
            &roots,
            page_size,
        )?;
        Ok(BatchCursor::new(scan, &roots, page_size, limit))
    }

    /// Count, sum, min, max and average of a [`Measure`] over the records a [`ScanRange`]
    /// selects, from every tier, grouped by UTC day or hour, mint, program, outcome kind or a
    /// text column; one [`AggregateRow`] per group that counted anything, sorted by group.
    ///
    /// Computed on Arrow arrays off the async worker threads: cold files are read through a
    /// Parquet projection of the involved columns only (measure, grouping, filters, id and
    /// timestamp), and row groups and pages whose id, time or equality statistics exclude the
    /// range are skipped; no record is built for a cold row. Each window of ids is read from
    /// one warm snapshot, so every live record is counted once, in the version the store
    /// serves. Results are cached when `[query_cache]` is on (see
    /// [`QueryCacheConfig`](crate::QueryCacheConfig)).
    ///
    /// [`Error::InvalidQuery`] for an unknown column, a measure that is not numeric, a grouping
    /// column that is not text, PnL of a record type without outcome columns, an unknown
    /// outcome kind, or a range with a limit (an aggregate covers every record the range
    /// selects; its order does not matter).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{Aggregate, AutoTieringCoordinator, GroupBy, GroupKey, Measure, Outcome, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// const DAY: i64 = 86_400_000;
    /// for (ts, outcome) in [(0, Outcome::Profit(1.0)), (1, Outcome::Loss(0.25)), (DAY, Outcome::Neutral)] {
    ///     let trade = TransactionRecord { timestamp_decision_made: ts, actual_outcome: outcome, ..Default::default() };
    ///     store.put(&trade).await?;
    /// }
    /// let by_day = store.aggregate(&Aggregate::new(Measure::Pnl).group_by(GroupBy::Day)).await?;
    /// assert_eq!(by_day.len(), 2);
    /// assert_eq!((by_day[0].group.clone(), by_day[0].count, by_day[0].sum), (GroupKey::Day(0), 2, 0.75));
    /// assert_eq!((by_day[1].group.clone(), by_day[1].sum, by_day[1].min), (GroupKey::Day(DAY), 0.0, Some(0.0)));
    /// # Ok(()) }
    /// ```
    pub async fn aggregate(&self, query: &Aggregate) -> Result<Vec<AggregateRow>> {
        let Some(cache) = &self.query_cache else {
            return self.aggregate_uncached(query).await;
        };
        let key = cache::aggregate_key(query);
        // Read BEFORE computing: a write the answer might miss then changes the fingerprint.
        let range = query.range();
        let fingerprint = self
            .warm
            .generations()
            .fingerprint(range.min_ts, range.max_ts);
        if let Some(cache::Answer::Rows(rows)) = cache.get(&key, fingerprint) {
            return Ok(rows.as_ref().clone());
        }
        let rows = self.aggregate_uncached(query).await?;
        let bytes = cache::rows_bytes(&rows);
        cache.insert(
            key,
            fingerprint,
            cache::Answer::Rows(Arc::new(rows.clone())),
            bytes,
        );
        Ok(rows)
    }

    /// [`aggregate`](Self::aggregate) computed from the tiers, never from the cache.
    pub(crate) async fn aggregate_uncached(&self, query: &Aggregate) -> Result<Vec<AggregateRow>> {
        let plan = Arc::new(aggregate::Plan::new::<R>(query)?);
        // Slices of the id space aggregated at once on the cold pool, one per core (each
        // window of each slice still read from one warm snapshot), then merged.
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(self.config.cold.read_threads);
        let last_id = self.warm.assigned_below().saturating_sub(1);
        let slices = aggregate::split(query.range(), 1, last_id, threads);
        let handles: Vec<_> = slices
            .into_iter()
            .map(|range| {
                let (warm, cold, plan) = (self.warm.clone(), self.cold.clone(), plan.clone());
                self.cold.pool().start(move || plan.run(warm, cold, range))
            })
            .collect();
        let mut groups = aggregate::Groups::default();
        for handle in handles {
            groups.merge(handle.await??);
        }
        Ok(plan.finish(groups))
    }
    /// The `n` most recently put records still stored, newest (highest id) first, from every
    /// tier. Ids are assigned in put order, so this is "the last trades written": it reads
    /// windows of ids downwards from the newest, about `n` records when few were removed, and
    /// never more than the store holds.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let mut ids = Vec::new();
    /// for _ in 0..5 {
    ///     ids.push(store.put(&TransactionRecord::default()).await?);
    /// }
    /// store.remove(ids[4]).await?;
    /// let last: Vec<i64> = store.recently_put(2).await?.iter().filter_map(|t| t.id).collect();
    /// assert_eq!(last, [ids[3], ids[2]]);
    /// # Ok(()) }
    /// ```
    pub async fn recently_put(&self, n: usize) -> Result<Vec<R>> {
        let mut out: Vec<R> = Vec::with_capacity(n.min(DEFAULT_LIST_PAGE_SIZE));
        if n == 0 {
            return Ok(out);
        }
        // Ids are assigned from 1 upwards; everything below `hi` is a candidate.
        let warm = self.warm.clone();
        let mut hi = run_blocking(move || warm.assigned_below()).await? - 1;
        let mut width = (n as i64).saturating_mul(2).max(64);
        while hi >= 1 && out.len() < n {
            let lo = hi.saturating_sub(width - 1).max(1);
            let range = ScanRange::default().with_ids(lo..=hi);
            let mut cursor = self.scan(range, DEFAULT_LIST_PAGE_SIZE)?;
            // The window's newest `need` records, oldest first: memory stays about n + a page.
            let need = n - out.len();
            let mut newest = std::collections::VecDeque::with_capacity(need.min(4096));
            while let Some(page) = cursor.next_page().await? {
                for record in page {
                    if newest.len() == need {
                        newest.pop_front();
                    }
                    newest.push_back(record);
                }
            }
            out.extend(newest.into_iter().rev());
            hi = lo - 1;
            // Few records in this window (many removed): look further down faster.
            width = width.saturating_mul(2);
        }
        Ok(out)
    }

    /// Counts and read routing counters.
    pub async fn get_stats(&self) -> Result<StorageStats> {
        Ok(StorageStats::from_tiers(
            &self.hot.metrics(),
            &self.warm.metrics(),
            &self.cold.metrics(),
        ))
    }

    /// Metrics of every tier: counts, measured bytes, hits and misses, access times over the
    /// recent window (`metrics.window_secs`), evictions, promotions, records archived,
    /// archival lag and cold files:
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
            query_cache: self.query_cache.as_ref().map(cache::QueryCache::metrics),
            replication: self.cold.replication_lag()?,
            cold_stores: self.cold.store_failures(),
        })
    }

    /// Every metric and active alert as a Prometheus text exposition (content type
    /// [`PROMETHEUS_CONTENT_TYPE`](crate::PROMETHEUS_CONTENT_TYPE)), for a `/metrics` endpoint.
    pub async fn export_prometheus(&self) -> Result<String> {
        let alerts = self.get_alerts().await;
        let metrics = self.collect_metrics().await?;
        Ok(crate::monitor::prometheus::render(&metrics, &alerts))
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
