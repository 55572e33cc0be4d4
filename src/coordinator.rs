//! `AutoTieringCoordinator`: routes reads hot → warm, makes writes durable in warm before caching
//! them in hot, and promotes records read often.

use std::path::Path;

use serde::Serialize;

use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::hot_storage::HotMemoryStorage;
use crate::metrics::TierMetrics;
use crate::record::{Record, TransactionRecord};
use crate::warm_storage::{MaintenanceReport, WarmRow, WarmSqliteStorage, WriteOp};

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
}

impl<R: Record> std::fmt::Debug for AutoTieringCoordinator<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoTieringCoordinator")
            .field("data_dir", &self.config.data_dir)
            .field("hot", &self.hot)
            .field("warm", &self.warm)
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
    /// Distinct records stored (hot is a cache over warm, so this is the warm count).
    pub total_records: u64,
    /// Reads answered by hot.
    pub hot_hits: u64,
    /// Reads answered by warm.
    pub warm_hits: u64,
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
    /// Cold tier (not configured in this build).
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
        config.validate()?;
        let warm_config = config.clone();
        let warm = tokio::task::spawn_blocking(move || {
            prepare_data_dir(&warm_config.data_dir)?;
            WarmSqliteStorage::open(&warm_config)
        })
        .await
        .map_err(|_| Error::Closed)??;
        let hot = HotMemoryStorage::new(&config);
        tracing::info!(data_dir = %config.data_dir.display(), warm_records = warm.len(), "store opened");
        Ok(Self { config, hot, warm })
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
        let ack = self.warm.write(WriteOp::Put(encoded)).await?;
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
        // Evict before the commit, so hot never serves the old version once warm has the new.
        // The guard is finished by a task that waits for the commit even if this future is
        // dropped: a cancelled update that still commits cannot leave hot stale.
        let mut guard = self.hot.begin_write(id);
        let warm = self.warm.clone();
        // Only a record that was cached is re-cached: skip the clone otherwise.
        let recache = guard.was_cached().then(|| record.clone());
        let done = tokio::spawn(async move {
            let ack = warm.write(WriteOp::Update(encoded)).await?;
            match recache {
                Some(record) => guard.finish(record, bytes, ack.seq, false),
                None => guard.committed(ack.seq),
            }
            Ok(())
        });
        done.await.map_err(join_error)?
    }

    /// Delete a record from every tier. [`Error::NotFound`] if no tier holds it.
    pub async fn remove(&self, id: i64) -> Result<()> {
        let mut guard = self.hot.begin_write(id);
        let warm = self.warm.clone();
        let done = tokio::spawn(async move {
            let ack = warm.write(WriteOp::Remove(id)).await?;
            guard.committed(ack.seq);
            Ok::<_, Error>(ack.removed)
        });
        if done.await.map_err(join_error)?? {
            Ok(())
        } else {
            Err(Error::NotFound { id })
        }
    }

    /// Read by id: hot, then warm. A hot hit never leaves the calling thread; a warm read runs
    /// on it too (a few µs, no thread hop).
    pub async fn get(&self, id: i64) -> Result<Option<R>> {
        if let Some(r) = self.hot.lookup(id) {
            return Ok(Some(r));
        }
        let ticket = self.hot.fill_ticket(id);
        let Some(row) = self.warm.read_by_id(id)? else {
            return Ok(None);
        };
        Ok(Some(self.after_lower_hit(row, ticket)))
    }

    /// Read by transaction signature: hot, then warm.
    pub async fn get_by_signature(&self, signature: &str) -> Result<Option<R>> {
        if signature.is_empty() {
            return Err(Error::EmptySignature);
        }
        if let Some(r) = self.hot.lookup_signature(signature) {
            return Ok(Some(r));
        }
        let Some(row) = self.warm.read_by_signature(signature)? else {
            return Ok(None);
        };
        let id = row.record.id().expect("warm rows carry their id");
        if !self.should_promote(id) {
            return Ok(Some(row.record));
        }
        // A fill ticket must predate the read it guards, and the id was unknown before this
        // read: promote from a re-read by id under a fresh ticket. The re-read is at least as
        // new as the first, so it is the one returned.
        let ticket = self.hot.fill_ticket(id);
        match self.warm.read_by_id(id)? {
            Some(fresh) if fresh.record.signature() == Some(signature) => {
                let record = fresh.record.clone();
                self.hot.fill(fresh.record, fresh.bytes, ticket);
                Ok(Some(record))
            }
            // Renamed or removed since the first read.
            _ => Ok(None),
        }
    }

    fn should_promote(&self, id: i64) -> bool {
        self.config.tiering.auto_promote_on_access
            && u64::from(self.hot.touch(id)) >= self.config.tiering.min_hot_access_count
    }

    fn after_lower_hit(&self, row: WarmRow<R>, ticket: crate::hot_storage::FillTicket) -> R {
        let id = row.record.id().expect("lower-tier rows carry their id");
        if self.should_promote(id) {
            self.hot.fill(row.record.clone(), row.bytes, ticket);
        }
        row.record
    }

    /// Records with `timestamp_ms() >= since_ms`, in id order, fetched a page at a time.
    pub fn list_since(&self, since_ms: i64) -> RecordCursor<R> {
        self.list_since_with_page_size(since_ms, DEFAULT_LIST_PAGE_SIZE)
    }

    /// [`list_since`](Self::list_since) with a chosen page size (memory is one page).
    pub fn list_since_with_page_size(&self, since_ms: i64, page_size: usize) -> RecordCursor<R> {
        RecordCursor {
            warm: self.warm.clone(),
            since_ms,
            after_id: None,
            page_size: page_size.max(1),
            buffer: std::collections::VecDeque::new(),
            done: false,
        }
    }

    /// Counts and read routing counters.
    pub async fn get_stats(&self) -> Result<StorageStats> {
        let hot = self.hot.metrics();
        let warm = self.warm.metrics();
        Ok(StorageStats {
            hot_records: hot.record_count,
            warm_records: warm.record_count,
            total_records: warm.record_count,
            hot_hits: hot.hits,
            warm_hits: warm.hits,
            misses: warm.misses,
            promotions: hot.promotions,
            hot_evictions: hot.evictions,
        })
    }

    /// Metrics of every tier.
    pub async fn collect_metrics(&self) -> Result<TieredMetrics> {
        Ok(TieredMetrics {
            hot: Some(self.hot.metrics()),
            warm: Some(self.warm.metrics()),
            cold: None,
        })
    }

    /// Run one maintenance pass now: hot housekeeping, then warm upkeep.
    pub async fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.hot.metrics();
        self.warm.run_maintenance().await
    }

    /// The hot tier.
    pub fn hot_tier(&self) -> &HotMemoryStorage<R> {
        &self.hot
    }

    /// The warm tier.
    pub fn warm_tier(&self) -> &WarmSqliteStorage<R> {
        &self.warm
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

/// A paginated scan from [`AutoTieringCoordinator::list_since`]. Holds one page in memory;
/// each page is read off the async worker threads.
pub struct RecordCursor<R: Record = TransactionRecord> {
    warm: WarmSqliteStorage<R>,
    since_ms: i64,
    after_id: Option<i64>,
    page_size: usize,
    buffer: std::collections::VecDeque<R>,
    done: bool,
}

impl<R: Record> RecordCursor<R> {
    /// The next page, or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<R>>> {
        if !self.buffer.is_empty() {
            return Ok(Some(self.buffer.drain(..).collect()));
        }
        if self.done {
            return Ok(None);
        }
        let warm = self.warm.clone();
        let (since, after, limit) = (self.since_ms, self.after_id, self.page_size);
        let page = tokio::task::spawn_blocking(move || warm.read_page(since, after, limit))
            .await
            .map_err(|_| Error::Closed)??;
        if page.len() < self.page_size {
            self.done = true;
        }
        match page.last() {
            Some(last) => {
                self.after_id = last.id();
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }

    /// The next record, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<R>> {
        if self.buffer.is_empty() {
            match self.next_page().await? {
                Some(page) => self.buffer.extend(page),
                None => return Ok(None),
            }
        }
        Ok(self.buffer.pop_front())
    }
}
