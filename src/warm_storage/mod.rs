//! Warm tier (L2): SQLite in WAL mode, one group-commit writer thread, reads on the caller's
//! thread from a pool of read-only connections.
//!
//! This file is the handle: open and close, the reader pool and the command plumbing. The
//! writer thread's loop is in `writer`, what one transaction of writes does in `apply`, the
//! cold-file catalog in `catalog`, access statistics in `access`, point reads in `lookup`,
//! range reads in `scan`, and integrity checks and backup in `integrity`.

mod access;
mod apply;
mod catalog;
mod checkpoint;
mod home;
mod integrity;
mod lookup;
mod scan;
mod schema;
mod sig_index;
mod writer;

pub(crate) use apply::{ColdHome, PendingWrite, WriteAck, WriteOp};
pub(crate) use catalog::{ArchiveAck, CompactCommit};
pub(crate) use lookup::{Lookup, SignatureLookup};
pub(crate) use scan::TimeQuery;

pub use writer::WarmUpkeepReport;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::blocking::run_blocking;
use crate::config::{StorageConfig, WarmConfig};
use crate::dir_lock::DirLock;
use crate::error::{Error, Result};
use crate::metrics::{AccessStats, TierMetrics};
use crate::record::{decode_with_id, Record, TransactionRecord};
use crate::tier::StorageTier;
use schema::sqlite_err;
use writer::{Command, Shared, Writer};

/// File name of the warm database inside the data directory.
pub const WARM_DB_FILE: &str = "warm.sqlite3";
/// Target access time of the warm tier: 10 ms.
pub const WARM_TARGET_ACCESS_TIME: Duration = Duration::from_millis(10);

/// The SQLite warm tier. Cheap to clone; clones share one database and writer.
pub struct WarmSqliteStorage<R: Record = TransactionRecord> {
    inner: Arc<Inner>,
    _record: PhantomData<fn() -> R>,
}

impl<R: Record> Clone for WarmSqliteStorage<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _record: PhantomData,
        }
    }
}

impl<R: Record> std::fmt::Debug for WarmSqliteStorage<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmSqliteStorage")
            .field("path", &self.inner.path)
            .field("rows", &self.len())
            .finish()
    }
}

struct Inner {
    path: PathBuf,
    cfg: WarmConfig,
    max_record_bytes: usize,
    /// `None` only while dropping, so the writer sees the channel close and exits, and in a
    /// read-only open, which has no writer.
    tx: Option<mpsc::Sender<Command>>,
    /// The writer thread, until it is joined (by `close_writer` or on drop).
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Opened with `read_only`: no writer, no lock, no writes.
    read_only: bool,
    shared: Arc<Shared>,
    /// Read connections: at most `read_connections` exist; a reader waits for one when all
    /// are in use, so their number and page caches do not grow with the threads that read.
    readers: Mutex<Readers>,
    /// Signalled when a connection is returned (or a slot frees).
    returned: parking_lot::Condvar,
    stats: AccessStats,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Readers close first, so the writer's connection is the last one: SQLite then
        // checkpoints the WAL into the database file and deletes it on a clean shutdown.
        self.readers.lock().idle.clear();
        drop(self.tx.take());
        if let Some(handle) = self.writer.get_mut().take() {
            // Nothing the writer runs holds a handle; should the last one ever be dropped on
            // the writer thread itself, joining it from itself would never return. It exits on
            // its own once the channel is closed, releasing the lock after its connection.
            if handle.thread().id() == std::thread::current().id() {
                return;
            }
            if handle.join().is_err() {
                tracing::error!(path = %self.path.display(), "warm writer thread panicked");
            }
        }
    }
}

impl Inner {
    /// Run `f` on a read connection, on this thread: an idle one, else a new one while fewer
    /// than `read_connections` exist, else the next one returned (holds are a few µs to a few
    /// ms: one query or one page, never nested).
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = {
            let mut readers = self.readers.lock();
            loop {
                if let Some(c) = readers.idle.pop() {
                    break Some(c);
                }
                if readers.open < self.cfg.read_connections {
                    readers.open += 1;
                    break None;
                }
                self.returned.wait(&mut readers);
            }
        };
        let conn = match conn {
            Some(c) => c,
            None => match schema::open_reader(&self.path, &self.cfg) {
                Ok(c) => c,
                Err(e) => {
                    self.readers.lock().open -= 1;
                    self.returned.notify_one();
                    return self.noted(Err(e));
                }
            },
        };
        // Returned on every path, a panic in `f` included.
        let lent = Lent {
            inner: self,
            conn: Some(conn),
        };
        self.noted(f(lent.conn.as_ref().expect("lent until dropped")))
    }

    /// Pass `r` on, remembering the first corruption it reports (for the alert).
    fn noted<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(Error::Corrupt { detail, .. }) = &r {
            let mut seen = self.shared.corruption.lock();
            if seen.is_none() {
                tracing::error!(path = %self.path.display(), %detail, "warm database corrupt");
                *seen = Some(detail.clone());
            }
        }
        r
    }

    fn sender(&self) -> Result<&mpsc::Sender<Command>> {
        if self.read_only {
            return Err(self.read_only_error("write"));
        }
        self.tx.as_ref().ok_or(Error::Closed)
    }

    fn read_only_error(&self, op: &'static str) -> Error {
        Error::ReadOnly {
            path: self.path.parent().unwrap_or(&self.path).to_path_buf(),
            op,
        }
    }
}

/// The read connections: idle ones, and how many exist (idle or lent).
#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

/// A read connection lent to one query; returned to the idle list when dropped.
struct Lent<'a> {
    inner: &'a Inner,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.readers.lock().idle.push(conn);
            self.inner.returned.notify_one();
        }
    }
}

/// One stored row, decoded.
pub(crate) struct WarmRow<R> {
    pub record: R,
    pub bytes: usize,
}

impl<R: Record> WarmSqliteStorage<R> {
    /// Open (creating and migrating if needed) `warm.sqlite3` in the config's data directory and
    /// start its writer thread. Blocks on file I/O: call it from a blocking context.
    ///
    /// A read-write open first takes the data directory's ownership lock (see
    /// [`Error::AlreadyOpen`]); the writer thread holds it until it exits. With
    /// `config.read_only` the database is opened read-only, with no writer and no lock: it must
    /// exist, and be at this build's schema version.
    pub fn open(config: &StorageConfig) -> Result<Self> {
        if config.read_only {
            return Self::open_read_only(config);
        }
        let path = config.data_dir.join(WARM_DB_FILE);
        let cfg = config.warm.clone();
        let lock = DirLock::acquire(&config.data_dir, config.clock.now_ms())?;
        let conn = schema::open_writer(&path, &cfg)?;
        let shared = Arc::new(Shared::default());
        let writer = Writer::new(conn, path.clone(), cfg.clone(), Arc::clone(&shared), lock)?;
        let (tx, rx) = mpsc::channel(cfg.queue_depth);
        let handle = std::thread::Builder::new()
            .name("tiered-storage-warm-writer".into())
            .spawn({
                let span = tracing::info_span!("warm_writer", path = %path.display());
                move || span.in_scope(|| writer.run(rx))
            })
            .map_err(|source| Error::Io {
                op: "spawn warm writer thread for",
                path: path.clone(),
                source,
            })?;
        let inner = Inner {
            path,
            cfg,
            max_record_bytes: config.max_record_bytes,
            tx: Some(tx),
            writer: Mutex::new(Some(handle)),
            read_only: false,
            shared,
            readers: Mutex::new(Readers::default()),
            returned: parking_lot::Condvar::new(),
            stats: AccessStats::new(
                config.clock.get(),
                Duration::from_secs(config.metrics.window_secs),
            ),
        };
        // Open one reader now so a broken database fails at open, not at the first read.
        inner.with_reader(|_| Ok(()))?;
        let warm = Self {
            inner: Arc::new(inner),
            _record: PhantomData,
        };
        warm.check_on_open()?;
        Ok(warm)
    }

    /// With `warm.quick_check_on_open`, refuse a damaged database.
    fn check_on_open(&self) -> Result<()> {
        if !self.inner.cfg.quick_check_on_open {
            return Ok(());
        }
        let problems = self.quick_check()?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Corrupt {
            path: self.inner.path.clone(),
            detail: format!("quick_check at open: {}", problems.join("; ")),
        })
    }

    fn open_read_only(config: &StorageConfig) -> Result<Self> {
        let path = config.data_dir.join(WARM_DB_FILE);
        let cfg = config.warm.clone();
        schema::check_read_only(&path, &cfg)?;
        let inner = Inner {
            path,
            cfg,
            max_record_bytes: config.max_record_bytes,
            tx: None,
            writer: Mutex::new(None),
            read_only: true,
            shared: Arc::new(Shared::default()),
            readers: Mutex::new(Readers::default()),
            returned: parking_lot::Condvar::new(),
            stats: AccessStats::new(
                config.clock.get(),
                Duration::from_secs(config.metrics.window_secs),
            ),
        };
        let warm = Self {
            inner: Arc::new(inner),
            _record: PhantomData,
        };
        warm.check_on_open()?;
        Ok(warm)
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Stop the writer thread after the commands already queued, and wait for it: its
    /// connection closes and the data directory's lock is released. Later writes fail with
    /// [`Error::Closed`]; reads go on. Blocks: call it from a blocking context.
    pub(crate) fn close_writer(&self) {
        if let Some(tx) = &self.inner.tx {
            // An error means the writer has already stopped.
            let _ = tx.blocking_send(Command::Stop);
        }
        let handle = self.inner.writer.lock().take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!(path = %self.inner.path.display(), "warm writer thread panicked");
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Committed records (kept by the writer; no table scan). A read-only handle, which has
    /// no writer, counts them in its snapshot (0 if that read fails).
    pub fn len(&self) -> u64 {
        if self.inner.read_only {
            return self
                .query_value("SELECT count(*) FROM records", [], "count records")
                .ok()
                .flatten()
                .unwrap_or(0) as u64;
        }
        self.inner.shared.rows.load(Ordering::Relaxed)
    }

    /// Whether the tier holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Group commits so far and the writes they carried: `(transactions, writes)`.
    pub fn group_commit_counts(&self) -> (u64, u64) {
        (
            self.inner.shared.batches.load(Ordering::Relaxed),
            self.inner.shared.batched_writes.load(Ordering::Relaxed),
        )
    }

    /// Bytes on disk: the database file plus its WAL.
    pub fn bytes_on_disk(&self) -> u64 {
        let wal = self.inner.path.with_extension("sqlite3-wal");
        [&self.inner.path, &wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Decode a found row, queue its access statistics and count the hit or miss.
    fn finish_read(
        &self,
        found: Option<(i64, Vec<u8>)>,
        start: Instant,
    ) -> Result<Option<WarmRow<R>>> {
        let out = match found {
            Some((id, p)) => {
                self.inner.note_access(id);
                Some(WarmRow {
                    bytes: p.len(),
                    record: decode_with_id(id, &p)?,
                })
            }
            None => None,
        };
        self.inner.stats.record(out.is_some(), start);
        Ok(out)
    }

    /// Signatures held in memory awaiting a bulk merge into the on-disk index, and merges so far.
    pub fn signature_delta_stats(&self) -> (usize, u64) {
        (
            self.inner.shared.sig_delta.len(),
            self.inner.shared.sig_merges.load(Ordering::Relaxed),
        )
    }

    /// One nullable integer from a one-row query, on a pooled reader on this thread.
    fn query_value(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        op: &'static str,
    ) -> Result<Option<i64>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.query_row(params, |r| r.get::<_, Option<i64>>(0)))
                .map_err(sqlite_err(op, path))
        })
    }

    async fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .send(make(reply))
            .await
            .map_err(|_| Error::Closed)?;
        self.inner.noted(rx.await.map_err(|_| Error::Closed)?)
    }

    /// Counters snapshot.
    pub fn metrics(&self) -> TierMetrics {
        let mut m = TierMetrics {
            tier_name: "warm".to_owned(),
            record_count: self.len(),
            bytes_stored: self.bytes_on_disk(),
            writes: self.group_commit_counts().1,
            ..TierMetrics::default()
        };
        self.inner.stats.fill(&mut m);
        m
    }
}

#[async_trait]
impl<R: Record> StorageTier<R> for WarmSqliteStorage<R> {
    async fn get(&self, id: i64) -> Result<Option<R>> {
        Ok(match self.lookup(id)? {
            Lookup::Row(row) => Some(row.record),
            Lookup::Archived(_) => None,
        })
    }

    async fn get_by_signature(&self, signature: &str) -> Result<Option<R>> {
        Ok(match self.lookup_signature(signature)? {
            SignatureLookup::Row(row) => Some(row.record),
            SignatureLookup::Archived(_) => None,
        })
    }

    /// Insert a new record (its id must be unset) and return the assigned id.
    async fn put(&self, record: &R) -> Result<i64> {
        if record.id().is_some() {
            return Err(Error::invalid(
                "put assigns ids: the record already has one (use update to change a stored record)",
            ));
        }
        let encoded = self.encode(record)?;
        let ack = self.write(WriteOp::Put(encoded, Vec::new())).await?;
        // Alone, the warm tier cannot read the archived copies whose signature hash matches:
        // a hash match counts as taken.
        match ack.unconfirmed.first() {
            Some(&existing_id) => Err(Error::DuplicateSignature {
                signature: record.signature().unwrap_or_default().to_owned(),
                existing_id,
            }),
            None => Ok(ack.id),
        }
    }

    async fn remove(&self, id: i64) -> Result<bool> {
        Ok(self.write(WriteOp::Remove(id, None)).await?.removed)
    }

    async fn list_since(
        &self,
        since_ms: i64,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let this = self.clone();
        run_blocking(move || this.read_page(since_ms, after_id, limit)).await?
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.len())
    }

    async fn contains(&self, id: i64) -> Result<bool> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            conn.prepare_cached("SELECT 1 FROM records WHERE id = ?1")
                .and_then(|mut s| s.exists([id]))
                .map_err(sqlite_err("contains", path))
        })
    }

    async fn get_metrics(&self) -> Result<TierMetrics> {
        Ok(self.metrics())
    }

    async fn maintenance(&self) -> Result<()> {
        self.run_upkeep().await.map(|_| ())
    }

    fn tier_name(&self) -> &'static str {
        "warm"
    }

    fn target_access_time(&self) -> Duration {
        WARM_TARGET_ACCESS_TIME
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;

    fn open(dir: &Path) -> WarmSqliteStorage {
        WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir)).unwrap()
    }

    #[tokio::test]
    async fn warm_storage_put_get_by_id_and_signature() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let id = w.put(&sample(1)).await.unwrap();
        let got = w.get(id).await.unwrap().unwrap();
        assert_eq!(got.id, Some(id));
        assert_eq!(got.scored_candidate, sample(1).scored_candidate);
        let sig = sample(1).transaction_signature.unwrap();
        assert_eq!(
            w.get_by_signature(&sig).await.unwrap().unwrap().id,
            Some(id)
        );
        assert!(w.get(id + 1).await.unwrap().is_none());
        assert!(w.get_by_signature("missing").await.unwrap().is_none());
        assert_eq!(w.count().await.unwrap(), 1);
        assert!(w.contains(id).await.unwrap());
    }

    /// Regression: every thread that found the idle list empty opened another connection (42
    /// fds on the database under a 64-task load with `read_connections = 8`). Now readers wait
    /// for one of `read_connections`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_read_connections_stay_within_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StorageConfig::default().with_data_dir(dir.path());
        config.warm.read_connections = 3;
        let warm: WarmSqliteStorage = WarmSqliteStorage::open(&config).unwrap();
        let mut ids = Vec::new();
        for n in 0..200 {
            let r = TransactionRecord {
                transaction_signature: Some(format!("pool-{n}")),
                ..TransactionRecord::default()
            };
            ids.push(
                warm.write(WriteOp::Put(warm.encode(&r).unwrap(), Vec::new()))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let peak = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..24 {
                let (warm, ids, peak) = (&warm, &ids, &peak);
                s.spawn(move || {
                    for round in 0..50 {
                        let id = ids[(t * 7 + round) % ids.len()];
                        assert!(matches!(warm.lookup(id).unwrap(), Lookup::Row(_)));
                        let open = warm.inner.readers.lock().open;
                        peak.fetch_max(open, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        let peak = peak.into_inner();
        assert!((1..=3).contains(&peak), "{peak} read connections");
        assert!(warm.inner.readers.lock().idle.len() <= 3);
    }
}
