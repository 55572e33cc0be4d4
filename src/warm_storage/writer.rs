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
use super::catalog::{ArchiveAck, CompactCommit};
use super::checkpoint::{Checkpointer, WRITER_AUTOCHECKPOINT_FRAMES};
use super::schema::sqlite_err;
use super::sig_index::SignatureDelta;
use super::WarmSqliteStorage;
use crate::catalog::{CatalogRebuild, FileState, NewFile};
use crate::config::WarmConfig;
use crate::dir_lock::DirLock;
use crate::error::{Error, Result};
#[cfg(test)]
use crate::record::EncodedRecord;
use crate::record::Record;

/// What one run of warm upkeep ([`WarmSqliteStorage::run_upkeep`]) did.
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
        deletes: Option<crate::catalog::DeletePublish>,
        reply: oneshot::Sender<Result<CompactCommit>>,
    },
    PublishDeletes {
        publish: crate::catalog::DeletePublish,
        reply: oneshot::Sender<Result<Option<String>>>,
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
    /// Record or drop intents, or a replica's copy (`cold_intents`, `cold_replicas`).
    ColdState {
        op: super::catalog::ColdStateOp,
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
    /// Per-day generation counters, bumped after each commit of puts, updates and removes.
    pub generations: super::generations::DayGenerations,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The writer thread's state: the one write connection, the id and commit counters, the
/// signature watermark and the access backlog. Its catalog transactions are in `catalog`, write
/// application in `apply` and the access flushes in `access`.
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
    /// Archived files whose rows are being settled (warm rows deleted), a chunk at a time
    /// between write batches, oldest first.
    pub(super) settling: std::collections::VecDeque<SettleJob>,
    /// After a failed settle step: not before this instant again.
    settle_retry_at: Option<std::time::Instant>,
    /// Free pages are being returned to the file system, a slice of `vacuum_pages` per step
    /// between write batches, until the free list is empty (set by upkeep and by the end of an
    /// archival's settling, which frees the deleted rows' pages).
    vacuum_pending: bool,
    /// The data directory's ownership lock. Declared after `conn`, so it is released only once
    /// the connection has closed, when the thread exits.
    _lock: Option<DirLock>,
}

/// An archived file being settled: its rows `(id, rev)` in id order, the next one to settle,
/// what was done so far, and the archival pass waiting for the end (none when recovery or a
/// revived file resumed it).
pub(super) struct SettleJob {
    file_id: i64,
    rows: Vec<(i64, i64)>,
    next: usize,
    archived: u64,
    superseded: u64,
    reply: Option<oneshot::Sender<Result<ArchiveAck>>>,
}

impl SettleJob {
    /// A file's settling from its first row; `reply` answers the archival pass (none when
    /// recovery resumes it).
    fn new(
        file_id: i64,
        rows: Vec<(i64, i64)>,
        reply: Option<oneshot::Sender<Result<ArchiveAck>>>,
    ) -> Self {
        Self {
            file_id,
            rows,
            next: 0,
            archived: 0,
            superseded: 0,
            reply,
        }
    }

    fn answer(self) {
        if let Some(reply) = self.reply {
            let _ = reply.send(Ok(ArchiveAck {
                file_id: self.file_id,
                archived: self.archived,
                superseded: self.superseded,
            }));
        }
    }
}

/// How long the writer waits before retrying a settle step that failed.
const SETTLE_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

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
        let mut writer = Self {
            conn,
            path,
            cfg,
            shared,
            next_id,
            seq: 0,
            sig_watermark,
            access_backlog: std::collections::VecDeque::new(),
            settling: std::collections::VecDeque::new(),
            settle_retry_at: None,
            vacuum_pending: false,
            _lock: Some(lock),
        };
        // Recovery: an archival interrupted between its catalog commit and the end of its
        // settling is finished now, before the store serves anything (its warm rows above the
        // settled-through id are authoritative until then, so nothing is lost or doubled).
        writer.resume_settling()?;
        while !writer.settling.is_empty() {
            writer.settle_next()?;
        }
        Ok(writer)
    }

    /// Queue every catalogued, live, unsettled file that no job is settling.
    fn resume_settling(&mut self) -> Result<()> {
        for (file_id, rows) in self.unsettled_files()? {
            if self.settling.iter().all(|j| j.file_id != file_id) {
                tracing::info!(
                    file_id,
                    rows = rows.len(),
                    "resuming an archival's settling"
                );
                self.settling.push_back(SettleJob::new(file_id, rows, None));
            }
        }
        Ok(())
    }

    /// Whether a settle step may run now.
    fn settle_ready(&self) -> bool {
        !self.settling.is_empty()
            && self
                .settle_retry_at
                .is_none_or(|t| std::time::Instant::now() >= t)
    }

    /// One settle step (at most `settle_chunk_rows` rows) of the oldest job, in one
    /// transaction. The job's pass is answered after its last step; a file no longer live is
    /// left alone (its warm rows stay authoritative) until it is live again.
    fn settle_next(&mut self) -> Result<()> {
        let Some(mut job) = self.settling.pop_front() else {
            return Ok(());
        };
        let end = (job.next + self.cfg.settle_chunk_rows).min(job.rows.len());
        let last = end == job.rows.len();
        match self.settle_step(job.file_id, &job.rows[job.next..end], last) {
            Ok(Some((archived, superseded))) => {
                self.settle_retry_at = None;
                job.archived += archived;
                job.superseded += superseded;
                job.next = end;
                if last {
                    job.answer();
                    self.vacuum_pending = true;
                } else {
                    crate::failpoint::crash_point("archive:settling");
                    self.settling.push_front(job);
                }
                Ok(())
            }
            Ok(None) => {
                tracing::warn!(
                    file_id = job.file_id,
                    left = job.rows.len() - job.next,
                    "archived file no longer live: its unsettled rows stay in warm"
                );
                job.answer();
                Ok(())
            }
            Err(e) => {
                self.settling.push_front(job);
                self.settle_retry_at = Some(std::time::Instant::now() + SETTLE_RETRY);
                Err(e)
            }
        }
    }

    fn vacuum_step_logged(&mut self) {
        if let Err(e) = self.vacuum_step() {
            // Retried at the next upkeep.
            self.vacuum_pending = false;
            tracing::warn!(error = %e, "incremental vacuum step failed");
        }
    }

    fn settle_next_logged(&mut self) {
        if let Err(e) = self.settle_next() {
            tracing::error!(error = %e, "archival settle step failed; will retry");
        }
    }

    /// Return one slice (`vacuum_pages`) of free pages to the file system, in its own
    /// transaction; the file shrinks by as much. Returns the pages freed; clears
    /// `vacuum_pending` once the free list is empty (then a passive checkpoint moves the
    /// relocated pages into the database, so the WAL can restart at its size limit).
    fn vacuum_step(&mut self) -> Result<i64> {
        let path = &self.path;
        let free = |conn: &Connection| -> Result<i64> {
            conn.pragma_query_value(None, "freelist_count", |r| r.get(0))
                .map_err(sqlite_err("read freelist_count", path))
        };
        let before = free(&self.conn)?;
        if before > 0 {
            // SQLite frees one page per step of this pragma: it must be stepped to the end
            // (`execute_batch` steps it once, and freed a single page per upkeep).
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "PRAGMA incremental_vacuum({})",
                    self.cfg.vacuum_pages
                ))
                .map_err(sqlite_err("incremental_vacuum", path))?;
            let mut rows = stmt
                .query([])
                .map_err(sqlite_err("incremental_vacuum", path))?;
            while rows
                .next()
                .map_err(sqlite_err("incremental_vacuum", path))?
                .is_some()
            {}
        }
        let after = free(&self.conn)?;
        if after == 0 {
            self.vacuum_pending = false;
            if before > 0 {
                self.conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .map_err(sqlite_err("wal_checkpoint", path))?;
            }
        }
        Ok(before - after)
    }

    /// Work done while no command waits: a settle step, else a vacuum slice, else an
    /// access-statistics chunk.
    fn background_step(&mut self) {
        if self.settle_ready() {
            self.settle_next_logged();
        } else if self.vacuum_pending {
            self.vacuum_step_logged();
        } else if !self.access_backlog.is_empty() {
            self.flush_access_chunk_logged();
        } else {
            // Only a settle step waiting out its retry delay.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The thread's main loop; returns when every sender is gone, after a last flush.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Declared first, so it stops (and closes its connection) before the writer's own
        // connection and the directory lock go.
        let checkpointer = self.start_checkpointer();
        let mut batch: Vec<(WriteOp, Reply)> = Vec::with_capacity(self.cfg.max_batch);
        let mut deferred = Vec::new();
        let window = std::time::Duration::from_micros(self.cfg.group_commit_window_us);
        let mut concurrent = false;
        loop {
            // With archived rows to settle or access statistics left to write, do a step
            // whenever no command waits.
            let first = if self.access_backlog.is_empty()
                && self.settling.is_empty()
                && !self.vacuum_pending
            {
                match rx.blocking_recv() {
                    Some(cmd) => cmd,
                    None => break,
                }
            } else {
                match rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.background_step();
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
            self.take_access_if_due();
            // Under a steady stream of writes the backlogs still drain: one step per batch.
            if self.settle_ready() {
                self.settle_next_logged();
            } else if self.vacuum_pending {
                self.vacuum_step_logged();
            }
            if !self.access_backlog.is_empty() {
                self.flush_access_chunk_logged();
            }
            if let Some(c) = &checkpointer {
                c.committed();
            }
        }
        if let Err(e) = self.flush_access() {
            tracing::error!(error = %e, "final access-statistics flush failed");
        }
    }

    /// Start the background checkpointer and raise this connection's own automatic
    /// checkpoint to the backstop (see `checkpoint`). Without a checkpointer, SQLite's default
    /// stays: the writer checkpoints every 1,000 frames itself.
    fn start_checkpointer(&mut self) -> Option<Checkpointer> {
        let started = Checkpointer::start(&self.path, &self.cfg).and_then(|c| {
            self.conn
                .pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_FRAMES)
                .map_err(sqlite_err("set wal_autocheckpoint", &self.path))?;
            Ok(c)
        });
        match started {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no background checkpointer: commits checkpoint the WAL themselves");
                None
            }
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
            // Step 4a: the catalog row, in one small transaction; the warm rows are deleted
            // by settle steps between write batches, and the pass is answered after the last.
            Command::Archive { file, rows, reply } => match self.catalogue_archive(&file, &rows) {
                Ok(file_id) => {
                    crate::failpoint::crash_point("archive:catalogued");
                    self.settling
                        .push_back(SettleJob::new(file_id, rows, Some(reply)));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Compact {
                file,
                replaces,
                dropped,
                deletes,
                reply,
            } => {
                let r = self.compact(file.as_ref(), &replaces, &dropped, deletes.as_ref());
                let _ = reply.send(r);
            }
            Command::PublishDeletes { publish, reply } => {
                let _ = reply.send(self.publish_deletes(&publish));
            }
            Command::SetFileState {
                file_id,
                state,
                reply,
            } => {
                let r = self.set_file_state(file_id, state);
                // A file live again resumes the settling a quarantine stopped.
                let r = r.and_then(|()| self.resume_settling());
                let _ = reply.send(r);
            }
            Command::ColdState { op, reply } => {
                let _ = reply.send(self.cold_state(&op));
            }
            Command::ReserveFileSeqs {
                floor,
                count,
                reply,
            } => {
                let _ = reply.send(self.reserve_file_seqs(floor, count));
            }
            Command::RebuildCatalog { plan, reply } => {
                let r = self.rebuild_catalog(&plan);
                let r = r.and_then(|()| self.resume_settling());
                let _ = reply.send(r);
            }
        }
    }

    /// Apply `batch` in one transaction and answer each caller after the commit. If SQLite
    /// fails, nothing was committed: each write is retried alone, so only the bad one fails.
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

    /// Warm upkeep, between batches: write every pending access statistic, merge the
    /// signature delta, a sampled ANALYZE, one incremental-vacuum slice (the rest follow
    /// between batches), a passive checkpoint.
    fn upkeep(&mut self) -> Result<WarmUpkeepReport> {
        let access_rows_flushed = self.flush_access()?;
        let signatures_merged = self.merge_signatures()?;
        let path = &self.path;
        // A sampled ANALYZE keeps the planner's statistics fresh in milliseconds, not seconds.
        self.conn
            .execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;")
            .map_err(sqlite_err("analyze", path))?;
        // One slice now; the writer returns the rest a slice at a time between write
        // batches, so free pages go back promptly without holding puts for long.
        self.vacuum_pending = true;
        let pages_vacuumed = self.vacuum_step()?;
        let path = &self.path;
        let (_busy, wal_frames, wal_frames_checkpointed): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sqlite_err("wal_checkpoint", path))?;
        Ok(WarmUpkeepReport {
            access_rows_flushed,
            signatures_merged,
            pages_vacuumed,
            wal_frames,
            wal_frames_checkpointed,
        })
    }
}

impl<R: Record> WarmSqliteStorage<R> {
    /// Run warm upkeep now: flush access statistics, merge the signature delta into the
    /// on-disk index, sampled ANALYZE, one incremental-vacuum step and a passive WAL
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

/// A writer driven by hand: built on a fresh database and given its commands before its
/// thread starts, so the first batch holds exactly the writes queued (tests of the loop and of
/// write application).
#[cfg(test)]
pub(super) mod testing {
    use std::path::Path;

    use super::*;
    use crate::config::StorageConfig;
    use crate::record::TransactionRecord;
    use crate::warm_storage::{schema, WARM_DB_FILE};

    /// A writer on the warm database in `dir` (created if needed), and the state it shares.
    pub(in crate::warm_storage) fn writer(dir: &Path) -> (Writer, Arc<Shared>) {
        let config = StorageConfig::default().with_data_dir(dir);
        let path = dir.join(WARM_DB_FILE);
        let lock = DirLock::acquire(dir, now_ms()).unwrap();
        let conn = schema::open_writer(&path, &config.warm).unwrap();
        let shared = Arc::new(Shared::default());
        let writer = Writer::new(conn, path, config.warm, Arc::clone(&shared), lock).unwrap();
        (writer, shared)
    }

    pub(in crate::warm_storage) fn encode(record: &TransactionRecord) -> EncodedRecord {
        EncodedRecord::new(record, StorageConfig::default().max_record_bytes).unwrap()
    }

    /// Queue `ops` and a `Stop`, then run the writer's loop until its thread exits; the
    /// answers, in the order of `ops`.
    pub(in crate::warm_storage) fn run_queued(
        writer: Writer,
        ops: Vec<WriteOp>,
    ) -> Vec<Result<WriteAck>> {
        let (tx, rx) = mpsc::channel(ops.len() + 1);
        let mut answers = Vec::new();
        for op in ops {
            let (reply, answer) = oneshot::channel();
            tx.try_send(Command::Write { op, reply })
                .unwrap_or_else(|_| panic!("queue full"));
            answers.push(answer);
        }
        tx.try_send(Command::Stop)
            .unwrap_or_else(|_| panic!("queue full"));
        std::thread::spawn(move || writer.run(rx)).join().unwrap();
        answers
            .into_iter()
            .map(|a| a.blocking_recv().expect("every queued write is answered"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::testing::{encode, run_queued, writer};
    use super::*;
    use crate::config::StorageConfig;
    use crate::record::tests::sample;
    use crate::record::Outcome;
    use crate::tier::StorageTier;
    use crate::warm_storage::WARM_DB_FILE;

    fn open(dir: &Path) -> WarmSqliteStorage {
        WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir)).unwrap()
    }

    /// The committed `(id, signature)` rows, read through a connection of their own.
    fn committed(dir: &Path) -> Vec<(i64, Option<String>)> {
        let conn = Connection::open(dir.join(WARM_DB_FILE)).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, signature FROM records ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn sig(n: u64) -> Option<String> {
        sample(n).transaction_signature
    }

    /// Writes queued while the writer is busy go into ONE transaction, answered in queue order
    /// with increasing commit sequences and consecutive ids.
    #[test]
    fn warm_storage_queued_writes_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (w, shared) = writer(dir.path());
        let ops = (0..8)
            .map(|n| WriteOp::Put(encode(&sample(n)), Vec::new()))
            .collect();
        let acks: Vec<WriteAck> = run_queued(w, ops).into_iter().map(|a| a.unwrap()).collect();
        assert_eq!(shared.batches.load(Ordering::Relaxed), 1);
        assert_eq!(shared.batched_writes.load(Ordering::Relaxed), 8);
        for pair in acks.windows(2) {
            assert!(pair[0].seq < pair[1].seq, "{acks:?}");
            assert_eq!(pair[1].id, pair[0].id + 1, "{acks:?}");
        }
        let ids: Vec<i64> = committed(dir.path()).iter().map(|r| r.0).collect();
        assert_eq!(ids, acks.iter().map(|a| a.id).collect::<Vec<_>>());
    }

    /// An SQLite failure in the middle of a batch rolls the whole transaction back; each write
    /// is then retried in a transaction of its own, so only the failing one is refused.
    #[test]
    fn warm_storage_sqlite_failure_mid_batch_retries_each_write_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (w, shared) = writer(dir.path());
        // A trigger on the writer's own connection fails one insert inside SQLite, after the
        // write has passed validation: what an I/O error or a full disk does to a statement.
        w.conn
            .execute_batch(
                "CREATE TEMP TRIGGER refuse_one BEFORE INSERT ON records WHEN NEW.ts = 666
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )
            .unwrap();
        let mut bad = sample(2);
        bad.timestamp_decision_made = 666;
        let answers = run_queued(
            w,
            vec![
                WriteOp::Put(encode(&sample(1)), Vec::new()),
                WriteOp::Put(encode(&bad), Vec::new()),
                WriteOp::Put(encode(&sample(3)), Vec::new()),
            ],
        );
        assert!(
            matches!(&answers[1], Err(Error::Sqlite { op: "insert", .. })),
            "{:?}",
            answers[1]
        );
        let (first, third) = (answers[0].as_ref().unwrap(), answers[2].as_ref().unwrap());
        assert!(first.seq < third.seq);
        // The batch's transaction committed nothing; the two good writes committed alone.
        assert_eq!(shared.batches.load(Ordering::Relaxed), 2);
        assert_eq!(shared.batched_writes.load(Ordering::Relaxed), 2);
        assert_eq!(shared.rows.load(Ordering::Relaxed), 2);
        assert_eq!(
            committed(dir.path()),
            [(first.id, sig(1)), (third.id, sig(3))]
        );
    }

    /// `Stop` ends the loop only once the writes queued with it are committed and answered;
    /// the channel refuses anything sent after it.
    #[test]
    fn warm_storage_stop_drains_queued_writes_before_the_thread_exits() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _shared) = writer(dir.path());
        let (tx, rx) = mpsc::channel(8);
        let mut answers = Vec::new();
        for (n, stop_before) in [(1, false), (2, false), (3, true)] {
            if stop_before {
                tx.try_send(Command::Stop)
                    .unwrap_or_else(|_| panic!("queue full"));
            }
            let (reply, answer) = oneshot::channel();
            let op = WriteOp::Put(encode(&sample(n)), Vec::new());
            tx.try_send(Command::Write { op, reply })
                .unwrap_or_else(|_| panic!("queue full"));
            answers.push(answer);
        }
        std::thread::spawn(move || w.run(rx)).join().unwrap();
        let ids: Vec<i64> = answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap().unwrap().id)
            .collect();
        let (reply, _answer) = oneshot::channel();
        let late = WriteOp::Put(encode(&sample(4)), Vec::new());
        assert!(
            tx.try_send(Command::Write { op: late, reply }).is_err(),
            "a stopped writer takes no more commands"
        );
        let rows = committed(dir.path());
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), ids);
        assert_eq!(rows.len(), 3);
    }

    /// After `close_writer` every write fails with `Closed`, reads go on, and the directory
    /// lock is free for another read-write open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_writes_after_close_writer_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let id = w.put(&sample(1)).await.unwrap();
        let closing = w.clone();
        crate::blocking::run_blocking(move || closing.close_writer())
            .await
            .unwrap();
        assert!(matches!(w.put(&sample(2)).await, Err(Error::Closed)));
        assert!(matches!(w.remove(id).await, Err(Error::Closed)));
        assert!(matches!(w.run_upkeep().await, Err(Error::Closed)));
        assert!(matches!(w.flush_access_stats().await, Err(Error::Closed)));
        assert_eq!(w.get(id).await.unwrap().unwrap().id, Some(id));
        let next = open(dir.path());
        assert!(next.put(&sample(2)).await.unwrap() > id);
    }

    /// Every kind of write gets a commit sequence above the one committed before it.
    #[tokio::test]
    async fn warm_storage_commit_sequences_increase_in_commit_order() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let put = |n| WriteOp::Put(encode(&sample(n)), Vec::new());
        let a = w.write(put(1)).await.unwrap();
        let b = w.write(put(2)).await.unwrap();
        let mut changed = w.get(a.id).await.unwrap().unwrap();
        changed.actual_outcome = Outcome::Loss(0.5);
        let c = w
            .write(WriteOp::Update(encode(&changed), None, Vec::new()))
            .await
            .unwrap();
        let d = w.write(WriteOp::Remove(b.id, None)).await.unwrap();
        assert!(d.removed);
        let e = w.write(put(3)).await.unwrap();
        let seqs = [a.seq, b.seq, c.seq, d.seq, e.seq];
        assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    }

    /// Concurrent writers share group commits: writes arriving while one commits (or while
    /// the loop lingers after a shared commit) go into the next, so there are fewer commits
    /// than writes. Sequences follow commit order: ids, assigned in commit order, rise with them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_concurrent_writes_share_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let tasks: Vec<_> = (0..16u64)
            .map(|t| {
                let w = w.clone();
                tokio::spawn(async move {
                    let mut acks = Vec::new();
                    for k in 0..25 {
                        let op = WriteOp::Put(encode(&sample(t * 1000 + k)), Vec::new());
                        acks.push(w.write(op).await.unwrap());
                    }
                    acks
                })
            })
            .collect();
        let mut acks = Vec::new();
        for t in tasks {
            acks.extend(t.await.unwrap());
        }
        let (batches, writes) = w.group_commit_counts();
        assert_eq!(writes, 400);
        assert!(batches < writes, "{batches} commits for {writes} writes");
        assert_eq!(w.len(), 400);
        acks.sort_by_key(|a| a.seq);
        for pair in acks.windows(2) {
            assert!(pair[0].seq < pair[1].seq, "sequence {} twice", pair[0].seq);
            assert!(pair[0].id < pair[1].id, "{:?} then {:?}", pair[0], pair[1]);
        }
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

    /// Regression: upkeep stepped `PRAGMA incremental_vacuum(N)` once, and SQLite frees one
    /// page per step, so each run returned a single page to the file system (returning what
    /// one archival freed would have taken months). A run now frees a whole slice, and the
    /// database file shrinks.
    #[tokio::test]
    async fn warm_storage_upkeep_returns_every_free_page_in_slices() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::StorageConfig::default().with_data_dir(dir.path());
        config.warm.vacuum_pages = 16;
        let w = WarmSqliteStorage::<crate::record::TransactionRecord>::open(&config).unwrap();
        let mut ids = Vec::new();
        for n in 0..3000 {
            ids.push(w.put(&sample(n)).await.unwrap());
        }
        w.run_upkeep().await.unwrap();
        for id in ids {
            w.remove(id).await.unwrap();
        }
        let db = dir.path().join(super::super::WARM_DB_FILE);
        let pages = |conn: &rusqlite::Connection| -> (i64, i64) {
            (
                conn.pragma_query_value(None, "page_count", |r| r.get(0))
                    .unwrap(),
                conn.pragma_query_value(None, "freelist_count", |r| r.get(0))
                    .unwrap(),
            )
        };
        let (count_before, free_before) = pages(&rusqlite::Connection::open(&db).unwrap());
        assert!(
            free_before > 2 * 16,
            "enough free pages for several slices: {free_before}"
        );
        let first = w.run_upkeep().await.unwrap();
        assert_eq!(first.pages_vacuumed, 16, "one whole slice: {first:?}");
        // The writer returns the rest a slice at a time between batches, without upkeep.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (count_after, free_after) = loop {
            let (count, free) = pages(&rusqlite::Connection::open(&db).unwrap());
            if free == 0 || std::time::Instant::now() > deadline {
                break (count, free);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(free_after, 0, "every free page returned");
        assert!(
            count_after == count_before - free_before,
            "the file gives the pages back: {count_before} -> {count_after}"
        );
    }
}
