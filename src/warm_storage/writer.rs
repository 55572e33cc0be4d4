//! The warm tier's single writer thread: the group-commit loop, dispatch of the other commands
//! between batches, and upkeep (signature-index merges, ANALYZE, vacuum, checkpoint).
//!
//! Every write waits in one channel. The thread takes the first, drains what else is queued (up
//! to `max_batch`), applies them all in one transaction, commits, and only then answers each
//! caller. A validation failure (duplicate signature, unknown id) answers that caller alone and
//! writes nothing for it. An SQLite failure rolls the batch back and retries each write in its
//! own transaction, so one bad write cannot fail its neighbours.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::apply::{WriteAck, WriteOp};
use super::catalog::ArchiveAck;
use super::schema::sqlite_err;
use super::sig_index::SignatureDelta;
use super::WarmSqliteStorage;
use crate::catalog::{CatalogRebuild, FileState, NewFile};
use crate::config::WarmConfig;
use crate::dir_lock::DirLock;
use crate::error::{Error, Result};
use crate::record::Record;

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WarmUpkeepReport {
    /// Rows whose access statistics were written.
    pub access_rows_flushed: usize,
    /// Signatures moved from the in-memory delta into the on-disk signature index.
    pub signatures_merged: usize,
    /// Free pages returned to the file system by incremental vacuum.
    pub pages_vacuumed: i64,
    /// Frames in the WAL at the checkpoint.
    pub wal_frames: i64,
    /// Frames the checkpoint moved into the database.
    pub wal_frames_checkpointed: i64,
}

pub(crate) enum Command {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<WriteAck>>,
    },
    FlushAccess {
        reply: Option<oneshot::Sender<Result<usize>>>,
    },
    Upkeep {
        reply: oneshot::Sender<Result<WarmUpkeepReport>>,
    },
    Archive {
        file: NewFile,
        rows: Vec<(i64, i64)>,
        reply: oneshot::Sender<Result<ArchiveAck>>,
    },
    Compact {
        file: Option<NewFile>,
        replaces: Vec<i64>,
        dropped: Vec<(i64, i64)>,
        reply: oneshot::Sender<Result<Option<i64>>>,
    },
    SetFileState {
        file_id: i64,
        state: FileState,
        reply: oneshot::Sender<Result<()>>,
    },
    RebuildCatalog {
        plan: CatalogRebuild,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Reserve cold file sequence numbers (see `meta.cold_next_seq`).
    ReserveFileSeqs {
        floor: u64,
        count: u64,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Take no more commands: finish those queued, then exit (closing the connection and
    /// releasing the directory lock).
    Stop,
}

/// State shared between the writer thread and readers.
#[derive(Default)]
pub(crate) struct Shared {
    /// Committed row count.
    pub rows: AtomicU64,
    /// Group-commit transactions committed.
    pub batches: AtomicU64,
    /// Writes committed in those transactions.
    pub batched_writes: AtomicU64,
    /// Pending access statistics: id → (reads, last read ms).
    pub access: Mutex<HashMap<i64, (u32, i64)>>,
    /// A flush is queued; readers need not ask again.
    pub flush_requested: AtomicBool,
    /// When access statistics were last flushed, ms.
    pub last_flush_ms: AtomicU64,
    /// Signatures of rows above the `sig_index` watermark.
    pub sig_delta: SignatureDelta,
    /// Bulk merges of the signature delta into `sig_index`.
    pub sig_merges: AtomicU64,
    /// The next id the writer hands out (0 until the writer has started). Every id below it
    /// was committed once: it is live or in `removed`.
    pub next_id: std::sync::atomic::AtomicI64,
    /// The first corruption SQLite reported, for the alert (cleared by a clean `verify`).
    pub corruption: Mutex<Option<String>>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) struct Writer {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    pub(super) cfg: WarmConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) next_id: i64,
    pub(super) seq: u64,
    /// Every row with id <= this has its signature in `sig_index`.
    pub(super) sig_watermark: i64,
    /// Access statistics taken from `shared.access` and not yet written, in id order. A
    /// periodic flush writes them `ACCESS_FLUSH_CHUNK` at a time, between write batches, so a
    /// busy second of reads never holds puts behind one long transaction.
    pub(super) access_backlog: std::collections::VecDeque<(i64, (u32, i64))>,
    /// The data directory's ownership lock. Declared after `conn`, so it is released only once
    /// the connection has closed, when the thread exits.
    _lock: Option<DirLock>,
}

/// A lingering group commit closes once no write has arrived for this long.
const LINGER_GAP: std::time::Duration = std::time::Duration::from_micros(25);

type Reply = oneshot::Sender<Result<WriteAck>>;

impl Writer {
    /// Read the id counter and row count, then take ownership of the connection.
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        cfg: WarmConfig,
        shared: Arc<Shared>,
        lock: DirLock,
    ) -> Result<Self> {
        let max_id: Option<i64> = conn
            .query_row("SELECT max(id) FROM records", [], |r| r.get(0))
            .map_err(sqlite_err("read max id", &path))?;
        let saved: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'next_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sqlite_err("read next_id", &path))?;
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .map_err(sqlite_err("count records", &path))?;
        let sig_watermark: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'sig_merged_upto'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite_err("read sig_merged_upto", &path))?
            .unwrap_or(0);
        let mut delta = BTreeSet::new();
        {
            let mut stmt = conn
                .prepare("SELECT sig_hash, id FROM records WHERE id > ?1 AND sig_hash IS NOT NULL")
                .map_err(sqlite_err("rebuild signature delta", &path))?;
            let rows = stmt
                .query_map([sig_watermark], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(sqlite_err("rebuild signature delta", &path))?;
            for pair in rows {
                delta.insert(pair.map_err(sqlite_err("rebuild signature delta", &path))?);
            }
        }
        shared.sig_delta.replace(delta);
        shared.rows.store(rows as u64, Ordering::Relaxed);
        shared
            .last_flush_ms
            .store(now_ms() as u64, Ordering::Relaxed);
        // Ids are never reused: `meta.next_id` is saved by every batch that deletes rows, so a
        // deleted maximum is remembered; otherwise the maximum id present is authoritative.
        let next_id = saved.unwrap_or(1).max(max_id.unwrap_or(0) + 1);
        shared.next_id.store(next_id, Ordering::Release);
        Ok(Self {
            conn,
            path,
            cfg,
            shared,
            next_id,
            seq: 0,
            sig_watermark,
            access_backlog: std::collections::VecDeque::new(),
            _lock: Some(lock),
        })
    }

    /// The thread's main loop; returns when every sender is gone, after a last flush.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch: Vec<(WriteOp, Reply)> = Vec::with_capacity(self.cfg.max_batch);
        let mut deferred = Vec::new();
        let window = std::time::Duration::from_micros(self.cfg.group_commit_window_us);
        let mut concurrent = false;
        loop {
            // With access statistics left to write, write a chunk whenever no command waits.
            let first = if self.access_backlog.is_empty() {
                match rx.blocking_recv() {
                    Some(cmd) => cmd,
                    None => break,
                }
            } else {
                match rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.flush_access_chunk_logged();
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            };
            let mut next = Some(first);
            let mut last_arrival = std::time::Instant::now();
            let deadline = last_arrival + window;
            loop {
                while let Some(cmd) = next.take() {
                    match cmd {
                        Command::Write { op, reply } => batch.push((op, reply)),
                        // Senders fail from now on; what is queued still runs.
                        Command::Stop => rx.close(),
                        other => deferred.push(other),
                    }
                    if batch.len() < self.cfg.max_batch {
                        next = rx.try_recv().ok();
                    }
                }
                // Linger only under concurrency (the last batch had company): writers answered
                // by the previous commit are re-submitting, and one commit for all of them
                // costs far less than one each. A lone writer never waits.
                if !concurrent || batch.len() >= self.cfg.max_batch {
                    break;
                }
                let now = std::time::Instant::now();
                if now >= deadline || now - last_arrival >= LINGER_GAP {
                    break;
                }
                // Yield, not spin: on a small machine the writers we wait for need this core.
                std::thread::yield_now();
                next = rx.try_recv().ok();
                if next.is_some() {
                    last_arrival = std::time::Instant::now();
                }
            }
            concurrent = batch.len() > 1;
            if !batch.is_empty() {
                self.commit_batch(&mut batch);
            }
            if self.shared.sig_delta.len() >= self.cfg.signature_merge_threshold {
                if let Err(e) = self.merge_signatures() {
                    tracing::error!(error = %e, "signature index merge failed; will retry");
                }
            }
            for cmd in deferred.drain(..) {
                self.handle_other(cmd);
            }
            // Under a steady stream of writes the backlog still drains: one chunk per batch.
            if !self.access_backlog.is_empty() {
                self.flush_access_chunk_logged();
            }
        }
        if let Err(e) = self.flush_access() {
            tracing::error!(error = %e, "final access-statistics flush failed");
        }
    }

    fn handle_other(&mut self, cmd: Command) {
        match cmd {
            Command::Write { .. } | Command::Stop => unreachable!("handled by the run loop"),
            // A periodic flush (no one waiting) takes the statistics and writes the first chunk;
            // the run loop writes the rest between write batches. A requested flush writes all.
            Command::FlushAccess { reply: None } => {
                self.take_access(true);
                self.flush_access_chunk_logged();
            }
            Command::FlushAccess { reply: Some(reply) } => {
                let r = self.flush_access();
                if let Err(e) = &r {
                    tracing::warn!(error = %e, "access-statistics flush failed");
                }
                let _ = reply.send(r);
            }
            Command::Upkeep { reply } => {
                let _ = reply.send(self.upkeep());
            }
            Command::Archive { file, rows, reply } => {
                let _ = reply.send(self.archive(&file, &rows));
            }
            Command::Compact {
                file,
                replaces,
                dropped,
                reply,
            } => {
                let _ = reply.send(self.compact(file.as_ref(), &replaces, &dropped));
            }
            Command::SetFileState {
                file_id,
                state,
                reply,
            } => {
                let _ = reply.send(self.set_file_state(file_id, state));
            }
            Command::ReserveFileSeqs {
                floor,
                count,
                reply,
            } => {
                let _ = reply.send(self.reserve_file_seqs(floor, count));
            }
            Command::RebuildCatalog { plan, reply } => {
                let _ = reply.send(self.rebuild_catalog(&plan));
            }
        }
    }
    fn commit_batch(&mut self, batch: &mut Vec<(WriteOp, Reply)>) {
        tracing::trace!(writes = batch.len(), "group commit");
        let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
        match self.apply(&ops) {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) if batch.len() == 1 => {
                let (_, reply) = batch.pop().expect("one write");
                let _ = reply.send(Err(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "group commit failed; retrying writes one by one");
                for (op, reply) in batch.drain(..) {
                    let r = self
                        .apply(&[&op])
                        .and_then(|mut v| v.pop().expect("one result"));
                    let _ = reply.send(r);
                }
            }
        }
    }
    /// Move every signature above the watermark into `sig_index` in one sorted bulk insert,
    /// then advance the watermark in the same transaction. Returns the rows merged.
    pub(super) fn merge_signatures(&mut self) -> Result<usize> {
        let upto = self.next_id - 1;
        if upto <= self.sig_watermark {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let merged = tx
            .execute(
                "INSERT OR IGNORE INTO sig_index (sig_hash, id)
                 SELECT sig_hash, id FROM records
                 WHERE id > ?1 AND id <= ?2 AND sig_hash IS NOT NULL
                 ORDER BY sig_hash, id",
                [self.sig_watermark, upto],
            )
            .map_err(sqlite_err("merge signature index", path))?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('sig_merged_upto', ?1)",
            [upto],
        )
        .map_err(sqlite_err("save sig_merged_upto", path))?;
        tx.commit().map_err(sqlite_err("commit", path))?;
        self.sig_watermark = upto;
        self.shared.sig_delta.forget_through(upto);
        self.shared.sig_merges.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            merged,
            upto,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "signature index merged"
        );
        Ok(merged)
    }
    fn upkeep(&mut self) -> Result<WarmUpkeepReport> {
        let access_rows_flushed = self.flush_access()?;
        let signatures_merged = self.merge_signatures()?;
        let path = &self.path;
        // A sampled ANALYZE keeps the planner's statistics fresh in milliseconds, not seconds.
        self.conn
            .execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;")
            .map_err(sqlite_err("analyze", path))?;
        let free_before: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))
            .map_err(sqlite_err("read freelist_count", path))?;
        self.conn
            .execute_batch(&format!(
                "PRAGMA incremental_vacuum({});",
                self.cfg.vacuum_pages
            ))
            .map_err(sqlite_err("incremental_vacuum", path))?;
        let free_after: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))
            .map_err(sqlite_err("read freelist_count", path))?;
        let (_busy, wal_frames, wal_frames_checkpointed): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sqlite_err("wal_checkpoint", path))?;
        Ok(WarmUpkeepReport {
            access_rows_flushed,
            signatures_merged,
            pages_vacuumed: free_before - free_after,
            wal_frames,
            wal_frames_checkpointed,
        })
    }
}

impl<R: Record> WarmSqliteStorage<R> {
    /// Flush access statistics, sampled ANALYZE, one incremental-vacuum step and a passive WAL
    /// checkpoint. Runs on the writer thread between batches.
    pub async fn run_upkeep(&self) -> Result<WarmUpkeepReport> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .send(Command::Upkeep { reply })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::record::tests::sample;
    use crate::tier::StorageTier;

    fn open(dir: &std::path::Path) -> WarmSqliteStorage {
        WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir)).unwrap()
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
        let report = w.run_upkeep().await.unwrap();
        assert!(report.pages_vacuumed > 0, "{report:?}");
        assert!(w.bytes_on_disk() > 0);
    }
}
