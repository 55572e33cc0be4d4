//! Warm tier (L2): SQLite in WAL mode, one group-commit writer thread, reads on the caller's
//! thread from a pool of read-only connections.

mod lookup;
mod schema;
mod sig_index;
mod writer;

pub(crate) use lookup::{Lookup, SignatureLookup};

pub use writer::MaintenanceReport;
pub(crate) use writer::{ArchiveAck, ColdHome, WriteAck, WriteOp};

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{CatalogEntry, CatalogRebuild, ColdCatalog, FileState, NewFile};
use crate::config::{StorageConfig, WarmConfig};
use crate::dir_lock::DirLock;
use crate::error::{Error, Result};
use crate::metrics::{AccessStats, TierMetrics};
use crate::record::{decode_with_id, EncodedRecord, Record, TransactionRecord};
use crate::tier::StorageTier;
use schema::sqlite_err;
pub(crate) use writer::now_ms;
use writer::{Command, Shared, Writer};

/// File name of the warm database inside the data directory.
pub const WARM_DB_FILE: &str = "warm.sqlite3";
/// Target access time of the warm tier (the seed's "< 10 ms").
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
            // The last handle can be dropped on the writer thread itself (a hook it runs holds
            // a handle): it exits on its own once the channel is closed, releasing the lock
            // after its connection; joining it from itself would never return.
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

    /// Queue one read for the batched access statistics; never writes on the read path.
    fn note_access(&self, id: i64) {
        if self.read_only {
            return;
        }
        let now = now_ms();
        let pending = {
            let mut map = self.shared.access.lock();
            // Bounded: if the writer is far behind, drop statistics rather than grow.
            if map.len() < 2 * self.cfg.access_flush_threshold || map.contains_key(&id) {
                let e = map.entry(id).or_insert((0, now));
                e.0 = e.0.saturating_add(1);
                e.1 = now;
            }
            map.len()
        };
        let last = self.shared.last_flush_ms.load(Ordering::Relaxed) as i64;
        let due = pending >= self.cfg.access_flush_threshold
            || now - last >= self.cfg.access_flush_interval_ms as i64;
        if due && !self.shared.flush_requested.swap(true, Ordering::Relaxed) {
            if let Some(tx) = &self.tx {
                if tx.try_send(Command::FlushAccess { reply: None }).is_err() {
                    self.shared.flush_requested.store(false, Ordering::Relaxed);
                }
            }
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

    /// One page for `list_since`, on the calling thread. Keyset-paginated by id, so each page
    /// costs the same however deep the scan is.
    pub(crate) fn read_page(
        &self,
        since_ms: i64,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let path = &self.inner.path;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner.with_reader(|conn| {
            let after = match after_id {
                Some(a) => a,
                // First page: start just below the smallest matching id, found on the ts index,
                // instead of walking every older row in id order.
                None => match conn
                    .prepare_cached("SELECT min(id) FROM records INDEXED BY records_ts WHERE ts >= ?1")
                    .and_then(|mut s| s.query_row([since_ms], |r| r.get::<_, Option<i64>>(0)))
                    .map_err(sqlite_err("list_since start", path))?
                {
                    Some(first) => first - 1,
                    None => return Ok(Vec::new()),
                },
            };
            // `+ts` keeps the planner on the primary key, which yields id order with no sort.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, payload FROM records WHERE id > ?1 AND +ts >= ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(sqlite_err("list_since", path))?;
            let mut rows = stmt
                .query(rusqlite::params![after, since_ms, limit])
                .map_err(sqlite_err("list_since", path))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err("list_since", path))? {
                let id: i64 = row.get(0).map_err(sqlite_err("list_since", path))?;
                let payload = row
                    .get_ref(1)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(sqlite_err("list_since", path))?;
                out.push(decode_with_id(id, payload)?);
            }
            Ok(out)
        })
    }

    /// Send one write to the writer thread and wait for its commit.
    pub(crate) async fn write(&self, op: WriteOp) -> Result<WriteAck> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .send(Command::Write { op, reply })
            .await
            .map_err(|_| Error::Closed)?;
        self.inner.noted(rx.await.map_err(|_| Error::Closed)?)
    }

    /// Ids below this were all committed once, as of now: each is live or removed. Read it
    /// before a lookup, and pass it to [`confirm_absent`](Self::confirm_absent) after a miss.
    pub(crate) fn assigned_below(&self) -> i64 {
        if self.inner.read_only {
            // The owner's counter is in its memory; the committed state bounds it.
            return self
                .query_value(
                    "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'next_id'), 1),
                                coalesce((SELECT max(id) FROM records), 0) + 1,
                                coalesce((SELECT max(max_id) FROM cold_files), 0) + 1)",
                    [],
                    "read next id",
                )
                .ok()
                .flatten()
                .unwrap_or(0);
        }
        self.inner.shared.next_id.load(Ordering::Acquire)
    }

    /// After no tier found `id`: `Ok` if that is the truth (never assigned as of
    /// `assigned_below`, removed, or from before removals were tracked), else
    /// [`Error::Corrupt`]: a committed, unremoved record that cannot be found was hidden by
    /// damage, and must not read as "not found".
    pub(crate) fn confirm_absent(&self, id: i64, assigned_below: i64) -> Result<()> {
        if id < 1 || id >= assigned_below {
            return Ok(());
        }
        let path = &self.inner.path;
        let (tracked_from, removed): (i64, bool) = self.inner.with_reader(|conn| {
            conn.prepare_cached(
                "SELECT coalesce((SELECT value FROM meta WHERE key = 'removed_tracked_from'), 0),
                        EXISTS (SELECT 1 FROM removed WHERE id = ?1)",
            )
            .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(sqlite_err("check a removal", path))
        })?;
        if removed || id < tracked_from {
            return Ok(());
        }
        self.inner.noted(Err(Error::Corrupt {
            path: path.clone(),
            detail: format!(
                "record {id} was stored and never removed, but no tier can find it (a damaged \
                 index or page hides it)"
            ),
        }))
    }

    /// SQLite's `quick_check` of the whole database (blocking; reads every page). Returns its
    /// complaints, empty when the database is sound; a sound check clears the corruption alert.
    pub fn quick_check(&self) -> Result<Vec<String>> {
        let path = &self.inner.path;
        let found = self.inner.with_reader(|conn| {
            let mut stmt = conn
                .prepare("PRAGMA quick_check")
                .map_err(sqlite_err("quick_check", path))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sqlite_err("quick_check", path))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(sqlite_err("quick_check", path))
        });
        // Damage bad enough stops the check itself: that is its finding.
        let found = match found {
            Err(Error::Corrupt { detail, .. }) => vec![detail],
            other => other?,
        };
        let problems: Vec<String> = found.into_iter().filter(|m| m != "ok").collect();
        let mut seen = self.inner.shared.corruption.lock();
        match problems.first() {
            Some(first) => {
                seen.get_or_insert_with(|| format!("quick_check: {first}"));
            }
            None => *seen = None,
        }
        Ok(problems)
    }

    /// Copy the database into `dest` (a new file) through SQLite's online backup API, in one
    /// step: one snapshot, taken as a reader, so the writer is never blocked. Fsyncs the copy
    /// and returns its size. Blocking.
    pub(crate) fn backup_into(&self, dest: &Path) -> Result<u64> {
        use rusqlite::backup::{Backup, StepResult};
        let path = &self.inner.path;
        // Its own connection: the backup holds it for as long as the copy takes.
        let src = self
            .inner
            .noted(schema::open_reader(path, &self.inner.cfg))?;
        let mut dst = Connection::open(dest).map_err(sqlite_err("create backup copy", dest))?;
        let mut attempts = 0;
        loop {
            let backup = Backup::new(&src, &mut dst).map_err(sqlite_err("start backup", path))?;
            let step = self.inner.noted(
                backup
                    .step(-1)
                    .map_err(sqlite_err("back up the warm database", path)),
            )?;
            match step {
                StepResult::Done => break,
                // Locked or busy for a moment (a checkpoint): try again.
                _ if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => {
                    return Err(Error::Io {
                        op: "back up the warm database (it stayed busy)",
                        path: path.clone(),
                        source: std::io::Error::other(format!("{other:?}")),
                    })
                }
            }
        }
        drop(dst);
        let io = |op: &'static str| {
            let path = dest.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        let file = std::fs::File::open(dest).map_err(io("open backup copy"))?;
        file.sync_all().map_err(io("fsync backup copy"))?;
        Ok(file.metadata().map_err(io("stat backup copy"))?.len())
    }

    /// The first corruption SQLite reported since open (or since a clean `quick_check`).
    pub fn corruption(&self) -> Option<String> {
        self.inner.shared.corruption.lock().clone()
    }

    /// Validate and encode on the caller's thread (keeps the writer thread on SQL only).
    pub(crate) fn encode(&self, record: &R) -> Result<EncodedRecord> {
        EncodedRecord::new(record, self.inner.max_record_bytes)
    }

    /// Write all pending access statistics now; returns the rows updated.
    pub async fn flush_access_stats(&self) -> Result<usize> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .send(Command::FlushAccess { reply: Some(reply) })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Flush access statistics, sampled ANALYZE, one incremental-vacuum step and a passive WAL
    /// checkpoint. Runs on the writer thread between batches.
    pub async fn run_maintenance(&self) -> Result<MaintenanceReport> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .send(Command::Maintenance { reply })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Persisted read count and last read time (ms) of a record, as of the last flush:
    /// `None` if there is no such record, `(0, None)` if it was never read.
    pub fn access_stats(&self, id: i64) -> Result<Option<(u64, Option<i64>)>> {
        self.inner.with_reader(|conn| {
            conn.prepare_cached(
                "SELECT coalesce(a.reads, 0), a.last_ms FROM records r
                 LEFT JOIN access a ON a.id = r.id WHERE r.id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                    .optional()
            })
            .map_err(sqlite_err("read access stats", &self.inner.path))
        })
    }

    /// One archival step: up to `limit` rows with `ts < cutoff_ms` and id in `(after_id, upto_id]`, in
    /// id order (keyset pagination), each with its `rev` so the commit can tell whether it
    /// changed meanwhile.
    pub(crate) fn archive_page(
        &self,
        cutoff_ms: i64,
        after_id: i64,
        upto_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, R)>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, rev, payload FROM records WHERE id > ?1 AND id <= ?4 AND +ts < ?2
                     ORDER BY id LIMIT ?3",
                )
                .map_err(sqlite_err("archive scan", path))?;
            let mut rows = stmt
                .query(rusqlite::params![
                    after_id,
                    cutoff_ms,
                    limit as i64,
                    upto_id
                ])
                .map_err(sqlite_err("archive scan", path))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err("archive scan", path))? {
                let id: i64 = row.get(0).map_err(sqlite_err("archive scan", path))?;
                let rev: i64 = row.get(1).map_err(sqlite_err("archive scan", path))?;
                let payload = row
                    .get_ref(2)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(sqlite_err("archive scan", path))?;
                out.push((rev, decode_with_id(id, payload)?));
            }
            Ok(out)
        })
    }

    /// One window of a cross-tier scan, from ONE snapshot: the warm records with id in
    /// `(after_id, upto_id]` and timestamp in `[min_ts, max_ts]`, the live catalogued files that
    /// overlap both ranges, and their tombstones in the id range. In one snapshot a record is
    /// either in warm or live in exactly one file.
    pub(crate) fn scan_window(
        &self,
        after_id: i64,
        upto_id: i64,
        min_ts: i64,
        max_ts: i64,
    ) -> Result<ScanWindow<R>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let tx = conn
                .unchecked_transaction()
                .map_err(sqlite_err("begin scan window", path))?;
            let mut warm = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, payload FROM records WHERE id > ?1 AND id <= ?2
                         AND +ts >= ?3 AND +ts <= ?4 ORDER BY id",
                    )
                    .map_err(sqlite_err("scan window", path))?;
                let mut rows = stmt
                    .query(rusqlite::params![after_id, upto_id, min_ts, max_ts])
                    .map_err(sqlite_err("scan window", path))?;
                while let Some(row) = rows.next().map_err(sqlite_err("scan window", path))? {
                    let id: i64 = row.get(0).map_err(sqlite_err("scan window", path))?;
                    let payload = row
                        .get_ref(1)
                        .and_then(|v| v.as_blob().map_err(Into::into))
                        .map_err(sqlite_err("scan window", path))?;
                    warm.push(decode_with_id(id, payload)?);
                }
            }
            let files = query_entries(
                &tx,
                path,
                "WHERE f.max_id > ?1 AND f.min_id <= ?2 AND f.max_ts >= ?3 AND f.min_ts <= ?4",
                rusqlite::params![after_id, upto_id, min_ts, max_ts],
            )?;
            let mut dead = Vec::new();
            for f in &files {
                dead.extend(
                    query_dead(&tx, path, f.file_id, after_id.saturating_add(1), upto_id)?
                        .into_iter()
                        .map(|id| (f.file_id, id)),
                );
            }
            // The smallest id above the window that warm or a live file may hold, so empty
            // stretches of the id space are skipped.
            let next: Option<i64> = tx
                .query_row(
                    "SELECT min(n) FROM (
                        SELECT min(id) AS n FROM records WHERE id > ?1
                        UNION ALL
                        SELECT min(max(min_id, ?1 + 1)) FROM cold_files
                        WHERE max_id > ?1 AND max_ts >= ?2 AND min_ts <= ?3)",
                    rusqlite::params![upto_id, min_ts, max_ts],
                    |r| r.get(0),
                )
                .map_err(sqlite_err("scan window", path))?;
            tx.commit().map_err(sqlite_err("end scan window", path))?;
            Ok(ScanWindow {
                warm,
                files,
                dead,
                next,
            })
        })
    }

    /// Smallest id with `ts >= since_ms` in warm (from the ts index), to start a scan there.
    pub(crate) fn first_id_since(&self, since_ms: i64) -> Result<Option<i64>> {
        self.query_value(
            "SELECT min(id) FROM records INDEXED BY records_ts WHERE ts >= ?1",
            [since_ms],
            "scan start",
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

    /// Commit an archival move: catalogue `file` and delete the warm rows `(id, rev)` it holds,
    /// in one transaction.
    pub(crate) async fn commit_archive(
        &self,
        file: NewFile,
        rows: Vec<(i64, i64)>,
    ) -> Result<ArchiveAck> {
        self.command(|reply| Command::Archive { file, rows, reply })
            .await
    }

    /// Commit a compaction: catalogue `file` (if any), uncatalogue `replaces`, drop `dropped`
    /// tombstones and move the rest onto the new file, in one transaction.
    pub(crate) async fn commit_compaction(
        &self,
        file: Option<NewFile>,
        replaces: Vec<i64>,
        dropped: Vec<(i64, i64)>,
    ) -> Result<Option<i64>> {
        self.command(|reply| Command::Compact {
            file,
            replaces,
            dropped,
            reply,
        })
        .await
    }

    /// Mark a catalogued file live or quarantined.
    pub(crate) async fn set_file_state(&self, file_id: i64, state: FileState) -> Result<()> {
        self.command(|reply| Command::SetFileState {
            file_id,
            state,
            reply,
        })
        .await
    }

    /// Apply a catalog rebuild in one transaction.
    pub(crate) async fn rebuild_catalog(&self, plan: CatalogRebuild) -> Result<()> {
        self.command(|reply| Command::RebuildCatalog { plan, reply })
            .await
    }

    /// The largest id of a record with `ts < cutoff_ms` (a scan of the timestamp index over
    /// the due records only), `None` when none is due. Bounds an archival pass's keyset scan,
    /// so a pass never reads the young records after the last due one.
    pub(crate) fn max_due_id(&self, cutoff_ms: i64) -> Result<Option<i64>> {
        self.query_value(
            "SELECT max(id) FROM records INDEXED BY records_ts WHERE ts < ?1",
            [cutoff_ms],
            "find the last record due for archival",
        )
    }

    /// The smallest record timestamp in warm (an index lookup), `None` when warm is empty.
    pub fn oldest_timestamp_ms(&self) -> Result<Option<i64>> {
        self.query_value("SELECT min(ts) FROM records", [], "read oldest timestamp")
    }

    /// Counters snapshot.
    pub fn metrics(&self) -> TierMetrics {
        let mut m = TierMetrics {
            tier_name: "warm".to_owned(),
            record_count: self.len(),
            bytes_stored: self.bytes_on_disk(),
            ..TierMetrics::default()
        };
        self.inner.stats.fill(&mut m);
        m
    }
}

/// One window of a cross-tier scan (see [`WarmSqliteStorage::scan_window`]).
pub(crate) struct ScanWindow<R> {
    pub warm: Vec<R>,
    pub files: Vec<CatalogEntry>,
    pub dead: Vec<(i64, i64)>,
    pub next: Option<i64>,
}

const ENTRY_COLUMNS: &str = "SELECT f.file_id, f.path, f.min_id, f.max_id, f.min_ts, f.max_ts,
    f.row_count, f.bytes, f.state,
    (SELECT count(*) FROM cold_dead d WHERE d.file_id = f.file_id) FROM cold_files f ";

fn query_entries(
    conn: &Connection,
    path: &Path,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<CatalogEntry>> {
    let sql = format!("{ENTRY_COLUMNS}{filter} ORDER BY f.min_id, f.file_id");
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(sqlite_err("read cold catalog", path))?;
    let rows = stmt
        .query_map(params, |r| {
            Ok(CatalogEntry {
                file_id: r.get(0)?,
                path: r.get(1)?,
                min_id: r.get(2)?,
                max_id: r.get(3)?,
                min_ts: r.get(4)?,
                max_ts: r.get(5)?,
                rows: r.get::<_, i64>(6)? as u64,
                bytes: r.get::<_, i64>(7)? as u64,
                state: FileState::parse(r.get_ref(8)?.as_str()?),
                dead_rows: r.get::<_, i64>(9)? as u64,
            })
        })
        .map_err(sqlite_err("read cold catalog", path))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(sqlite_err("read cold catalog", path))
}

fn query_dead(conn: &Connection, path: &Path, file_id: i64, lo: i64, hi: i64) -> Result<Vec<i64>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id FROM cold_dead WHERE file_id = ?1 AND id >= ?2 AND id <= ?3 ORDER BY id",
        )
        .map_err(sqlite_err("read tombstones", path))?;
    let rows = stmt
        .query_map([file_id, lo, hi], |r| r.get(0))
        .map_err(sqlite_err("read tombstones", path))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(sqlite_err("read tombstones", path))
}

impl<R: Record> ColdCatalog for WarmSqliteStorage<R> {
    fn covering(&self, id: i64) -> Result<Vec<CatalogEntry>> {
        let path = &self.inner.path;
        self.inner
            .with_reader(|conn| query_entries(conn, path, lookup::COVERING, [id]))
    }

    fn archived_ids(&self, sig_hash: i64) -> Result<Vec<i64>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT s.id FROM sig_index s WHERE s.sig_hash = ?1
                     AND NOT EXISTS (SELECT 1 FROM records r WHERE r.id = s.id)",
                )
                .map_err(sqlite_err("archived signature lookup", path))?;
            let rows = stmt
                .query_map([sig_hash], |r| r.get::<_, i64>(0))
                .map_err(sqlite_err("archived signature lookup", path))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(sqlite_err("archived signature lookup", path))
        })
    }

    fn entries(&self) -> Result<Vec<CatalogEntry>> {
        let path = &self.inner.path;
        self.inner
            .with_reader(|conn| query_entries(conn, path, "", []))
    }

    fn dead_ids(&self, file_id: i64, lo: i64, hi: i64) -> Result<Vec<i64>> {
        let path = &self.inner.path;
        self.inner
            .with_reader(|conn| query_dead(conn, path, file_id, lo, hi))
    }

    fn page_sums(&self, file_id: i64) -> Result<Option<Vec<u8>>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            conn.prepare_cached("SELECT page_sums FROM cold_files WHERE file_id = ?1")
                .and_then(|mut s| s.query_row([file_id], |r| r.get::<_, Option<Vec<u8>>>(0)))
                .optional()
                .map(Option::flatten)
                .map_err(sqlite_err("read page checksums", path))
        })
    }

    fn reserved_file_seq(&self) -> Result<u64> {
        Ok(self
            .query_value(
                "SELECT (SELECT value FROM meta WHERE key = 'cold_next_seq')",
                [],
                "read cold_next_seq",
            )?
            .unwrap_or(0)
            .max(0) as u64)
    }

    fn reserve_file_seqs(&self, floor: u64, count: u64) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .blocking_send(Command::ReserveFileSeqs {
                floor,
                count,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        rx.blocking_recv().map_err(|_| Error::Closed)?
    }

    fn in_warm(&self, ids: &[i64]) -> Result<Vec<bool>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT 1 FROM records WHERE id = ?1")
                .map_err(sqlite_err("check warm ids", path))?;
            ids.iter()
                .map(|id| {
                    stmt.exists([id])
                        .map_err(sqlite_err("check warm ids", path))
                })
                .collect()
        })
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
        tokio::task::spawn_blocking(move || this.read_page(since_ms, after_id, limit))
            .await
            .map_err(|_| Error::Closed)?
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
        self.run_maintenance().await.map(|_| ())
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
    use crate::record::Outcome;

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

    #[tokio::test]
    async fn warm_storage_rejects_duplicates_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let first = w.put(&sample(1)).await.unwrap();
        let err = w.put(&sample(1)).await.unwrap_err();
        assert!(
            matches!(err, Error::DuplicateSignature { existing_id, .. } if existing_id == first),
            "{err}"
        );
        assert_eq!(w.len(), 1);
        // Records without a signature never collide.
        let mut a = sample(2);
        a.transaction_signature = None;
        w.put(&a).await.unwrap();
        w.put(&a).await.unwrap();
        assert_eq!(w.len(), 3);
    }

    #[tokio::test]
    async fn warm_storage_update_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let id = w.put(&sample(1)).await.unwrap();
        let mut r = w.get(id).await.unwrap().unwrap();
        r.actual_outcome = Outcome::Profit(0.25);
        r.sell_price_sol = Some(0.002);
        let enc = w.encode(&r).unwrap();
        w.write(WriteOp::Update(enc, None, Vec::new()))
            .await
            .unwrap();
        assert_eq!(w.get(id).await.unwrap().unwrap(), r);
        let mut ghost = r.clone();
        ghost.id = Some(999);
        ghost.transaction_signature = Some("ghost".into());
        let err = w
            .write(WriteOp::Update(w.encode(&ghost).unwrap(), None, Vec::new()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { id: 999 }));
        assert!(w.remove(id).await.unwrap());
        assert!(!w.remove(id).await.unwrap());
        assert!(w.get(id).await.unwrap().is_none());
        assert_eq!(w.len(), 0);
    }

    #[tokio::test]
    async fn warm_storage_ids_are_never_reused_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let last = {
            let w = open(dir.path());
            w.put(&sample(1)).await.unwrap();
            let last = w.put(&sample(2)).await.unwrap();
            assert!(w.remove(last).await.unwrap());
            last
        };
        let w = open(dir.path());
        let next = w.put(&sample(3)).await.unwrap();
        assert!(next > last, "id {next} reused (last was {last})");
        assert_eq!(w.len(), 2);
    }

    #[tokio::test]
    async fn warm_storage_list_since_pages_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        for n in 0..50 {
            let mut r = sample(n);
            // Timestamps out of id order: every third record is old.
            r.timestamp_decision_made = if n % 3 == 0 { 10 } else { 1000 + n as i64 };
            w.put(&r).await.unwrap();
        }
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let page = w.list_since(1000, after, 7).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 7);
            after = page.last().unwrap().id;
            seen.extend(page.into_iter().map(|r| r.id.unwrap()));
        }
        let expected: Vec<i64> = (0..50).filter(|n| n % 3 != 0).map(|n| n + 1).collect();
        assert_eq!(seen, expected);
        assert!(w.list_since(i64::MAX, None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn warm_storage_access_stats_are_batched_then_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let id = w.put(&sample(1)).await.unwrap();
        for _ in 0..5 {
            w.get(id).await.unwrap();
        }
        assert_eq!(
            w.access_stats(id).unwrap().unwrap().0,
            0,
            "reads must not write"
        );
        w.flush_access_stats().await.unwrap();
        let (count, last) = w.access_stats(id).unwrap().unwrap();
        assert_eq!(count, 5);
        assert!(last.is_some());
        // Counts accumulate across flushes.
        w.get(id).await.unwrap();
        w.flush_access_stats().await.unwrap();
        assert_eq!(w.access_stats(id).unwrap().unwrap().0, 6);
        let never_read = w.put(&sample(2)).await.unwrap();
        assert_eq!(w.access_stats(never_read).unwrap(), Some((0, None)));
    }

    /// A periodic flush writes its statistics a chunk at a time between write batches; every
    /// read is still counted once, and puts interleaved with the chunks all commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_periodic_access_flush_is_chunked_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StorageConfig::default().with_data_dir(dir.path());
        c.warm.access_flush_interval_ms = 1;
        let w = WarmSqliteStorage::open(&c).unwrap();
        let n = 3 * writer::ACCESS_FLUSH_CHUNK + 17;
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(w.put(&sample(i as u64)).await.unwrap());
        }
        // Reads queue statistics; with a 1 ms interval, reads themselves request periodic
        // flushes, and puts keep arriving while the chunks are written.
        for (k, &id) in ids.iter().enumerate() {
            w.get(id).await.unwrap();
            if k % 1000 == 0 {
                w.put(&sample(1_000_000 + k as u64)).await.unwrap();
            }
        }
        // One more read, past the interval, requests the flush that takes the last reads.
        tokio::time::sleep(Duration::from_millis(5)).await;
        w.get(ids[0]).await.unwrap();
        let mut waited = 0;
        while ids
            .iter()
            .any(|&id| w.access_stats(id).unwrap().unwrap().0 == 0)
        {
            assert!(waited < 500, "periodic flushes never wrote every statistic");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        // Nothing was counted twice or lost, and an explicit flush finds nothing left.
        w.flush_access_stats().await.unwrap();
        for (k, &id) in ids.iter().enumerate() {
            let reads = if k == 0 { 2 } else { 1 };
            assert_eq!(w.access_stats(id).unwrap().unwrap().0, reads, "id {id}");
        }
        assert_eq!(
            w.count().await.unwrap(),
            n as u64 + (n as u64).div_ceil(1000)
        );
    }

    /// An archival pass reads only up to the last due record: young records after it are never
    /// scanned, and none is due when the oldest record is young.
    #[tokio::test]
    async fn warm_storage_archive_scan_stops_at_the_last_due_record() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let mut ids = Vec::new();
        for (n, ts) in [(1, 100), (2, 5_000), (3, 200), (4, 9_000), (5, 9_500)] {
            let mut r = sample(n);
            r.timestamp_decision_made = ts;
            ids.push(w.put(&r).await.unwrap());
        }
        assert_eq!(w.max_due_id(50).unwrap(), None);
        assert_eq!(w.max_due_id(1_000).unwrap(), Some(ids[2]));
        assert_eq!(w.max_due_id(i64::MAX).unwrap(), Some(ids[4]));
        let page: Vec<i64> = w
            .archive_page(1_000, i64::MIN, ids[2], 100)
            .unwrap()
            .iter()
            .map(|(_, r)| r.id.unwrap())
            .collect();
        assert_eq!(page, [ids[0], ids[2]]);
        assert_eq!(w.oldest_timestamp_ms().unwrap(), Some(100));
    }

    /// A remove drops the record's statistics, and a flush after a racing remove adds none.
    #[tokio::test]
    async fn warm_storage_access_stats_follow_removes() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let a = w.put(&sample(1)).await.unwrap();
        let b = w.put(&sample(2)).await.unwrap();
        w.get(a).await.unwrap();
        w.flush_access_stats().await.unwrap();
        w.get(b).await.unwrap(); // pending, not yet flushed
        assert!(w.remove(a).await.unwrap());
        assert!(w.remove(b).await.unwrap());
        assert_eq!(
            w.flush_access_stats().await.unwrap(),
            0,
            "b was removed before the flush"
        );
        let conn = Connection::open(w.path()).unwrap();
        let orphans: i64 = conn
            .query_row("SELECT count(*) FROM access", [], |r| r.get(0))
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[tokio::test]
    async fn warm_storage_maintenance_runs() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let mut ids = Vec::new();
        for n in 0..2000 {
            ids.push(w.put(&sample(n)).await.unwrap());
        }
        for id in ids {
            w.remove(id).await.unwrap();
        }
        let report = w.run_maintenance().await.unwrap();
        assert!(report.pages_vacuumed > 0, "{report:?}");
        assert!(w.bytes_on_disk() > 0);
    }

    /// Signatures stay findable and unique through bulk merges, on both sides of the watermark,
    /// and after a reopen rebuilds the delta.
    #[tokio::test]
    async fn warm_storage_signature_index_survives_merges_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StorageConfig::default().with_data_dir(dir.path());
        config.warm.signature_merge_threshold = 4;
        let sig = |n: u64| sample(n).transaction_signature.unwrap();
        let (ids, changed_low, changed_high) = {
            let w: WarmSqliteStorage = WarmSqliteStorage::open(&config).unwrap();
            let mut ids = Vec::new();
            for n in 0..10 {
                ids.push(w.put(&sample(n)).await.unwrap());
            }
            assert!(w.signature_delta_stats().1 >= 2, "merges ran");
            // Re-key one merged row (below the watermark) and one recent row (above it).
            let mut low = w.get(ids[0]).await.unwrap().unwrap();
            low.transaction_signature = Some("renamed-low".into());
            w.write(WriteOp::Update(w.encode(&low).unwrap(), None, Vec::new()))
                .await
                .unwrap();
            let mut high = w.get(ids[9]).await.unwrap().unwrap();
            high.transaction_signature = Some("renamed-high".into());
            w.write(WriteOp::Update(w.encode(&high).unwrap(), None, Vec::new()))
                .await
                .unwrap();
            assert!(w.remove(ids[1]).await.unwrap());
            assert!(w.remove(ids[8]).await.unwrap());
            (ids, low, high)
        };
        for round in 0..2 {
            let w: WarmSqliteStorage = WarmSqliteStorage::open(&config).unwrap();
            for (i, id) in ids.iter().enumerate() {
                let by_sig = w.get_by_signature(&sig(i as u64)).await.unwrap();
                let expected = !matches!(i, 0 | 1 | 8 | 9);
                assert_eq!(
                    by_sig.map(|r| r.id.unwrap()),
                    expected.then_some(*id),
                    "row {i}, round {round}"
                );
            }
            assert_eq!(
                w.get_by_signature("renamed-low").await.unwrap().unwrap().id,
                changed_low.id
            );
            assert_eq!(
                w.get_by_signature("renamed-high")
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
                changed_high.id
            );
            // A freed signature can be reused; a taken one cannot.
            let err = w.put(&sample(5)).await.unwrap_err();
            assert!(
                matches!(err, Error::DuplicateSignature { existing_id, .. } if existing_id == ids[5])
            );
            let mut dup = sample(100);
            dup.transaction_signature = Some("renamed-low".into());
            assert!(matches!(
                w.put(&dup).await,
                Err(Error::DuplicateSignature { .. })
            ));
            if round == 0 {
                let reused = w.put(&sample(0)).await.unwrap();
                assert_eq!(
                    w.get_by_signature(&sig(0)).await.unwrap().unwrap().id,
                    Some(reused)
                );
                w.remove(reused).await.unwrap();
                w.run_maintenance().await.unwrap();
            }
        }
    }

    /// Two puts with one signature in the same group commit: exactly one wins.
    /// A signature hash that `sig_index` maps to an archived record (its row left warm) is
    /// never confirmed inside the write transaction: the write comes back unconfirmed with
    /// nothing written, and goes through once the caller says the archived text differs.
    #[tokio::test]
    async fn warm_storage_archived_signature_hash_is_confirmed_by_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let archived = w.put(&sample(1)).await.unwrap();
        w.run_maintenance().await.unwrap(); // merge: the pair is in `sig_index` now
                                            // What archival does to the row (its signature stays indexed).
        let raw = Connection::open(dir.path().join(WARM_DB_FILE)).unwrap();
        raw.busy_timeout(Duration::from_secs(10)).unwrap();
        raw.execute("DELETE FROM records WHERE id = ?1", [archived])
            .unwrap();
        drop(raw);
        let rows = w.len();

        // Alone, the warm tier counts a hash match as taken.
        let err = w.put(&sample(1)).await.unwrap_err();
        assert!(
            matches!(err, Error::DuplicateSignature { existing_id, .. } if existing_id == archived),
            "{err}"
        );
        let ack = w
            .write(WriteOp::Put(w.encode(&sample(1)).unwrap(), Vec::new()))
            .await
            .unwrap();
        assert_eq!(ack.unconfirmed, vec![archived]);
        assert_eq!(w.len(), rows, "nothing written for an unconfirmed put");

        let ack = w
            .write(WriteOp::Put(w.encode(&sample(1)).unwrap(), vec![archived]))
            .await
            .unwrap();
        assert!(ack.unconfirmed.is_empty());
        assert!(matches!(w.lookup(ack.id).unwrap(), Lookup::Row(_)));
        // An update to that signature goes through the same check.
        let mut other = sample(2);
        other.id = Some(w.put(&sample(2)).await.unwrap());
        other.transaction_signature = sample(1).transaction_signature;
        let ack = w
            .write(WriteOp::Update(
                w.encode(&other).unwrap(),
                None,
                vec![archived],
            ))
            .await;
        assert!(
            matches!(ack, Err(Error::DuplicateSignature { existing_id, .. }) if existing_id != archived),
            "the warm copy put above owns it now: {ack:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_duplicate_within_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let w = w.clone();
                tokio::spawn(async move { w.put(&sample(7)).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::DuplicateSignature { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(w.len(), 1);
    }

    #[tokio::test]
    async fn warm_storage_corrupt_payload_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let id = w.put(&sample(1)).await.unwrap();
        let conn = Connection::open(w.path()).unwrap();
        conn.execute("UPDATE records SET payload = x'ffffff' WHERE id = ?1", [id])
            .unwrap();
        let err = w.get(id).await.unwrap_err();
        assert!(
            matches!(err, Error::Codec { id: Some(i), .. } if i == id),
            "{err}"
        );
    }
}

#[cfg(test)]
mod integrity_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_quick_check_of_a_sound_database_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let warm: WarmSqliteStorage =
            WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir.path())).unwrap();
        for n in 0..500 {
            let r = TransactionRecord {
                transaction_signature: Some(format!("qc-{n}")),
                ..TransactionRecord::default()
            };
            warm.write(WriteOp::Put(warm.encode(&r).unwrap(), Vec::new()))
                .await
                .unwrap();
        }
        let w = warm.clone();
        let problems = tokio::task::spawn_blocking(move || w.quick_check())
            .await
            .unwrap()
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(warm.corruption().is_none());
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
