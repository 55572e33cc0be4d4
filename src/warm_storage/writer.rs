//! The warm tier's single writer thread: group commit, id assignment, access-stat flushes and
//! SQLite maintenance.
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
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::schema::sqlite_err;
use super::sig_index::{DeltaChange, SignatureDelta};
use crate::catalog::{CatalogRebuild, FileState, NewFile};
use crate::config::WarmConfig;
use crate::dir_lock::DirLock;
use crate::error::{Error, Result};
use crate::record::EncodedRecord;

/// Where the caller found an archived record: the cold file holding its live copy, and the
/// hash of its signature there (so the signature index can be re-keyed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColdHome {
    pub file_id: i64,
    pub sig_hash: Option<i64>,
}

/// One write.
#[derive(Debug)]
pub(crate) enum WriteOp {
    /// Insert a new record; the writer assigns its id. The ids are archived records whose
    /// signature the caller read and found different (see [`WriteAck::unconfirmed`]).
    Put(EncodedRecord, Vec<i64>),
    /// Replace an existing record (its `id` is set). If it is not in warm, the cold home says
    /// where the caller found it archived: the new version goes to warm and the cold copy is
    /// tombstoned, in one transaction. The ids are as for `Put`.
    Update(EncodedRecord, Option<ColdHome>, Vec<i64>),
    /// Delete a record; an archived one (with its cold home) is tombstoned.
    Remove(i64, Option<ColdHome>),
}

/// What an archival commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArchiveAck {
    /// The new file's catalog id.
    pub file_id: i64,
    /// Warm rows deleted (now served from the file).
    pub archived: u64,
    /// Rows that changed or went away while the file was written: their copies in the file
    /// are tombstoned and warm keeps the newer version.
    pub superseded: u64,
}

/// What a committed write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteAck {
    /// The record's id (assigned for a put).
    pub id: i64,
    /// Commit order of this write: later commits have larger sequences.
    pub seq: u64,
    /// For a remove: whether a row was deleted.
    pub removed: bool,
    /// The cold home given was stale (the record moved since it was located): nothing was
    /// written; locate the record again and retry.
    pub moved: bool,
    /// Nothing was written: these archived records' signatures hash like the written one's,
    /// and only their cold copies hold the text. The caller reads them (the writer never reads
    /// cold files inside a transaction), then refuses the write as a duplicate or sends it
    /// again with the ids it found different. Empty for a write that was applied.
    pub unconfirmed: Vec<i64>,
}

impl WriteAck {
    fn new(id: i64, seq: u64) -> Self {
        Self {
            id,
            seq,
            removed: false,
            moved: false,
            unconfirmed: Vec::new(),
        }
    }
}

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaintenanceReport {
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
    Maintenance {
        reply: oneshot::Sender<Result<MaintenanceReport>>,
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
    conn: Connection,
    path: PathBuf,
    cfg: WarmConfig,
    shared: Arc<Shared>,
    next_id: i64,
    seq: u64,
    /// Every row with id <= this has its signature in `sig_index`.
    sig_watermark: i64,
    /// Access statistics taken from `shared.access` and not yet written, in id order. A
    /// periodic flush writes them `ACCESS_FLUSH_CHUNK` at a time, between write batches, so a
    /// busy second of reads never holds puts behind one long transaction.
    access_backlog: std::collections::VecDeque<(i64, (u32, i64))>,
    /// The data directory's ownership lock. Declared after `conn`, so it is released only once
    /// the connection has closed, when the thread exits.
    _lock: Option<DirLock>,
}

/// Access-statistic upserts per transaction of a periodic flush (a few ms of work).
pub(crate) const ACCESS_FLUSH_CHUNK: usize = 512;

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
            Command::Maintenance { reply } => {
                let _ = reply.send(self.maintenance());
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
                let r = self
                    .conn
                    .execute(
                        "UPDATE cold_files SET state = ?2 WHERE file_id = ?1",
                        params![file_id, state.as_str()],
                    )
                    .map(|_| ())
                    .map_err(sqlite_err("set cold file state", &self.path));
                let _ = reply.send(r);
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

    /// The catalog half of an archival move, in ONE transaction: catalogue the published file
    /// and delete the warm rows it holds. A row that changed since it was copied (its `rev`
    /// moved) or went away keeps its warm state, and its copy in the file is tombstoned.
    fn archive(&mut self, file: &NewFile, rows: &[(i64, i64)]) -> Result<ArchiveAck> {
        // Archived rows keep their signatures in `sig_index`. Rows above the watermark are
        // indexed only by the in-memory delta, which is rebuilt from `records` on open, so they
        // are merged first.
        if rows.iter().any(|&(id, _)| id > self.sig_watermark) {
            self.merge_signatures()?;
        }
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let file_id = insert_file(&tx, path, file)?;
        let (mut archived, mut superseded) = (0u64, 0u64);
        {
            // Rows are deleted a run of consecutive ids at a time: no other row can sit inside
            // such a run (ids are unique and never reused), so a range delete removes exactly
            // the run's rows, after one range read has checked that each is still the version
            // that was copied. A row that changed or went away splits the run and is tombstoned.
            let mut read = tx
                .prepare_cached(
                    "SELECT id, rev FROM records WHERE id >= ?1 AND id <= ?2 ORDER BY id",
                )
                .map_err(sqlite_err("prepare archive check", path))?;
            let mut delete = tx
                .prepare_cached("DELETE FROM records WHERE id >= ?1 AND id <= ?2")
                .map_err(sqlite_err("prepare archive delete", path))?;
            let mut delete_access = tx
                .prepare_cached("DELETE FROM access WHERE id >= ?1 AND id <= ?2")
                .map_err(sqlite_err("prepare archive delete", path))?;
            let mut run_delete = |lo: i64, hi: i64| -> Result<u64> {
                let n = delete
                    .execute([lo, hi])
                    .map_err(sqlite_err("archive delete", path))?;
                delete_access
                    .execute([lo, hi])
                    .map_err(sqlite_err("archive delete access", path))?;
                Ok(n as u64)
            };
            let mut i = 0;
            while i < rows.len() {
                let mut j = i + 1;
                while j < rows.len() && rows[j].0 == rows[j - 1].0 + 1 {
                    j += 1;
                }
                let run = &rows[i..j];
                let current: HashMap<i64, i64> = read
                    .query_map([run[0].0, run[run.len() - 1].0], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .and_then(|rows| rows.collect())
                    .map_err(sqlite_err("archive check", path))?;
                let mut start: Option<i64> = None;
                for &(id, rev) in run {
                    if current.get(&id) == Some(&rev) {
                        start.get_or_insert(id);
                        continue;
                    }
                    if let Some(lo) = start.take() {
                        archived += run_delete(lo, id - 1)?;
                    }
                    tombstone(&tx, path, file_id, id)?;
                    superseded += 1;
                }
                if let Some(lo) = start {
                    archived += run_delete(lo, run[run.len() - 1].0)?;
                }
                i = j;
            }
        }
        // Ids are never reused, even if the archived rows held the largest one.
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?1)",
            [self.next_id],
        )
        .map_err(sqlite_err("save next_id", path))?;
        tx.commit().map_err(sqlite_err("commit archive", path))?;
        self.shared.rows.fetch_sub(archived, Ordering::Relaxed);
        Ok(ArchiveAck {
            file_id,
            archived,
            superseded,
        })
    }

    /// The catalog half of a compaction, in ONE transaction: catalogue the merged file (if any
    /// row survived), drop the tombstones it consumed, move tombstones added since the merge
    /// began onto the new file (their rows are in it), and uncatalogue the replaced files.
    fn compact(
        &mut self,
        file: Option<&NewFile>,
        replaces: &[i64],
        dropped: &[(i64, i64)],
    ) -> Result<Option<i64>> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        for &f in replaces {
            let live: bool = tx
                .prepare_cached("SELECT 1 FROM cold_files WHERE file_id = ?1 AND state = 'live'")
                .and_then(|mut s| s.exists([f]))
                .map_err(sqlite_err("check compacted file", path))?;
            if !live {
                return Err(Error::invalid(format!(
                    "compaction input file {f} is no longer catalogued as live"
                )));
            }
        }
        let new_id = file.map(|f| insert_file(&tx, path, f)).transpose()?;
        for &(f, id) in dropped {
            tx.prepare_cached("DELETE FROM cold_dead WHERE file_id = ?1 AND id = ?2")
                .and_then(|mut s| s.execute([f, id]))
                .map_err(sqlite_err("drop tombstone", path))?;
        }
        for &f in replaces {
            if let Some(n) = new_id {
                tx.prepare_cached("UPDATE OR IGNORE cold_dead SET file_id = ?2 WHERE file_id = ?1")
                    .and_then(|mut s| s.execute([f, n]))
                    .map_err(sqlite_err("move tombstones", path))?;
            }
            tx.prepare_cached("DELETE FROM cold_dead WHERE file_id = ?1")
                .and_then(|mut s| s.execute([f]))
                .map_err(sqlite_err("drop tombstones", path))?;
            tx.prepare_cached("DELETE FROM cold_files WHERE file_id = ?1")
                .and_then(|mut s| s.execute([f]))
                .map_err(sqlite_err("uncatalogue file", path))?;
        }
        tx.commit().map_err(sqlite_err("commit compaction", path))?;
        Ok(new_id)
    }

    fn reserve_file_seqs(&mut self, floor: u64, count: u64) -> Result<u64> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let next: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'cold_next_seq'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite_err("read cold_next_seq", path))?
            .unwrap_or(1);
        let first = (next.max(1) as u64).max(floor);
        let end = i64::try_from(first.saturating_add(count)).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('cold_next_seq', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [end],
        )
        .map_err(sqlite_err("reserve cold file numbers", path))?;
        tx.commit()
            .map_err(sqlite_err("commit cold file reservation", path))?;
        Ok(first)
    }

    fn rebuild_catalog(&mut self, plan: &CatalogRebuild) -> Result<()> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        for &f in &plan.remove {
            tx.execute("DELETE FROM cold_dead WHERE file_id = ?1", [f])
                .and_then(|_| tx.execute("DELETE FROM cold_files WHERE file_id = ?1", [f]))
                .map_err(sqlite_err("uncatalogue missing file", path))?;
        }
        for (file, dead) in &plan.add {
            let file_id = insert_file(&tx, path, file)?;
            for &id in dead {
                tombstone(&tx, path, file_id, id)?;
            }
        }
        tx.commit()
            .map_err(sqlite_err("commit catalog rebuild", path))
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

    /// Apply `ops` in one transaction. The outer error means SQLite failed and nothing was
    /// committed; inner errors are per-write validation failures (nothing written for them).
    fn apply(&mut self, ops: &[&WriteOp]) -> Result<Vec<Result<WriteAck>>> {
        let path = &self.path;
        let mut next_id = self.next_id;
        let mut seq = self.seq;
        let mut delta: i64 = 0;
        let mut changes: Vec<DeltaChange> = Vec::new();
        let mut deleted = false;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let index = SigIndexTx {
            conn: &tx,
            path,
            delta: &self.shared.sig_delta,
            watermark: self.sig_watermark,
        };
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            seq += 1;
            let r = match op {
                WriteOp::Put(rec, distinct) => {
                    if let Some(refused) = index.refuse(rec, None, &changes, distinct, seq)? {
                        refused
                    } else {
                        let id = next_id;
                        write_row(
                            &tx,
                            "INSERT INTO records (id, sig_hash, signature, ts, payload)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            id,
                            rec,
                        )
                        .map_err(sqlite_err("insert", path))?;
                        if let Some(h) = rec.sig_hash {
                            changes.push(DeltaChange::Add(h, id));
                        }
                        next_id += 1;
                        delta += 1;
                        Ok(WriteAck::new(id, seq))
                    }
                }
                WriteOp::Update(rec, home, distinct) => {
                    let id = rec.id.expect("update carries an id");
                    match index.current_hash(id)? {
                        Some(old_hash) => {
                            if let Some(refused) =
                                index.refuse(rec, Some(id), &changes, distinct, seq)?
                            {
                                refused
                            } else {
                                write_row(
                                    &tx,
                                    "UPDATE records SET sig_hash = ?2, signature = ?3, ts = ?4,
                                     payload = ?5, rev = rev + 1 WHERE id = ?1",
                                    id,
                                    rec,
                                )
                                .map_err(sqlite_err("update", path))?;
                                if old_hash != rec.sig_hash {
                                    index.rekey(id, old_hash, rec.sig_hash, &mut changes)?;
                                }
                                Ok(WriteAck::new(id, seq))
                            }
                        }
                        None => match home {
                            None => Err(Error::NotFound { id }),
                            Some(home) if !cold_copy_is_live(&tx, path, home.file_id, id)? => {
                                Ok(WriteAck {
                                    moved: true,
                                    ..WriteAck::new(id, seq)
                                })
                            }
                            Some(home) => {
                                if let Some(refused) =
                                    index.refuse(rec, Some(id), &changes, distinct, seq)?
                                {
                                    refused
                                } else {
                                    // The new version comes back to warm; the archived copy
                                    // is tombstoned in the same transaction.
                                    write_row(
                                        &tx,
                                        "INSERT INTO records (id, sig_hash, signature, ts, payload, rev)
                                         VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                                        id,
                                        rec,
                                    )
                                    .map_err(sqlite_err("insert", path))?;
                                    tombstone(&tx, path, home.file_id, id)?;
                                    if home.sig_hash != rec.sig_hash {
                                        index.rekey(
                                            id,
                                            home.sig_hash,
                                            rec.sig_hash,
                                            &mut changes,
                                        )?;
                                    }
                                    delta += 1;
                                    Ok(WriteAck::new(id, seq))
                                }
                            }
                        },
                    }
                }
                WriteOp::Remove(id, home) => match index.current_hash(*id)? {
                    Some(old_hash) => {
                        tx.prepare_cached("DELETE FROM records WHERE id = ?1")
                            .and_then(|mut s| s.execute([id]))
                            .map_err(sqlite_err("delete", path))?;
                        tx.prepare_cached("DELETE FROM access WHERE id = ?1")
                            .and_then(|mut s| s.execute([id]))
                            .map_err(sqlite_err("delete access", path))?;
                        index.rekey(*id, old_hash, None, &mut changes)?;
                        note_removed(&tx, path, *id)?;
                        delta -= 1;
                        deleted = true;
                        Ok(WriteAck {
                            removed: true,
                            ..WriteAck::new(*id, seq)
                        })
                    }
                    None => match home {
                        None => Ok(WriteAck::new(*id, seq)),
                        Some(home) if !cold_copy_is_live(&tx, path, home.file_id, *id)? => {
                            Ok(WriteAck {
                                moved: true,
                                ..WriteAck::new(*id, seq)
                            })
                        }
                        Some(home) => {
                            tombstone(&tx, path, home.file_id, *id)?;
                            index.rekey(*id, home.sig_hash, None, &mut changes)?;
                            note_removed(&tx, path, *id)?;
                            Ok(WriteAck {
                                removed: true,
                                ..WriteAck::new(*id, seq)
                            })
                        }
                    },
                },
            };
            results.push(r);
        }
        if deleted {
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?1)")
                .and_then(|mut s| s.execute([next_id]))
                .map_err(sqlite_err("save next_id", path))?;
        }
        let added = self.shared.sig_delta.add_before_commit(&changes);
        if let Err(e) = tx.commit() {
            self.shared.sig_delta.undo(&added);
            return Err(sqlite_err("commit", path)(e));
        }
        self.shared.sig_delta.remove_after_commit(&changes);
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        self.shared
            .batched_writes
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        self.next_id = next_id;
        self.shared.next_id.store(next_id, Ordering::Release);
        self.seq = seq;
        if delta >= 0 {
            self.shared.rows.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.shared
                .rows
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
        Ok(results)
    }

    /// Move every signature above the watermark into `sig_index` in one sorted bulk insert,
    /// then advance the watermark in the same transaction. Returns the rows merged.
    pub(crate) fn merge_signatures(&mut self) -> Result<usize> {
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

    /// Move the pending access statistics into the backlog (in id order, so consecutive
    /// upserts land on the same `access` pages). `bounded`: not while the backlog is already
    /// `access_flush_threshold` long (invariant 4: new statistics then wait in the shared map,
    /// which is capped and drops new ids beyond its cap).
    fn take_access(&mut self, bounded: bool) {
        self.shared.flush_requested.store(false, Ordering::Relaxed);
        self.shared
            .last_flush_ms
            .store(now_ms() as u64, Ordering::Relaxed);
        if bounded && self.access_backlog.len() >= self.cfg.access_flush_threshold {
            return;
        }
        let pending = std::mem::take(&mut *self.shared.access.lock());
        if pending.is_empty() {
            return;
        }
        let mut all: Vec<(i64, (u32, i64))> = self.access_backlog.drain(..).collect();
        all.extend(pending);
        // An id read again since the last take appears twice; both upserts add up correctly.
        all.sort_unstable_by_key(|&(id, _)| id);
        self.access_backlog = all.into();
    }

    /// Write every pending access statistic; returns the rows updated. A failed chunk does
    /// not stop the rest; the first error is returned after all were tried.
    fn flush_access(&mut self) -> Result<usize> {
        let mut updated = 0;
        let mut first_err = None;
        // One take (reads arriving meanwhile wait for the next flush), even past the backlog
        // bound: an explicit flush writes everything queued when it was asked.
        self.take_access(false);
        while !self.access_backlog.is_empty() {
            match self.flush_access_chunk() {
                Ok(n) => updated += n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(updated),
        }
    }

    fn flush_access_chunk_logged(&mut self) {
        if let Err(e) = self.flush_access_chunk() {
            tracing::warn!(error = %e, "access-statistics flush failed");
        }
    }

    /// Write up to `ACCESS_FLUSH_CHUNK` statistics from the backlog in one transaction. On an
    /// error the chunk is dropped (statistics are advisory), so a bad row cannot wedge the
    /// writer.
    fn flush_access_chunk(&mut self) -> Result<usize> {
        let n = self.access_backlog.len().min(ACCESS_FLUSH_CHUNK);
        if n == 0 {
            return Ok(0);
        }
        let chunk: Vec<(i64, (u32, i64))> = self.access_backlog.drain(..n).collect();
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let mut updated = 0;
        {
            // Rows removed since they were read are skipped, so no orphan statistics remain.
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO access (id, reads, last_ms)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM records WHERE id = ?1)
                     ON CONFLICT (id) DO UPDATE SET reads = reads + excluded.reads,
                     last_ms = max(last_ms, excluded.last_ms)",
                )
                .map_err(sqlite_err("prepare access upsert", path))?;
            for (id, (reads, last)) in &chunk {
                updated += stmt
                    .execute(params![id, reads, last])
                    .map_err(sqlite_err("upsert access", path))?;
            }
        }
        tx.commit().map_err(sqlite_err("commit", path))?;
        Ok(updated)
    }

    fn maintenance(&mut self) -> Result<MaintenanceReport> {
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
        Ok(MaintenanceReport {
            access_rows_flushed,
            signatures_merged,
            pages_vacuumed: free_before - free_after,
            wal_frames,
            wal_frames_checkpointed,
        })
    }
}

/// Run an INSERT or UPDATE whose parameters are `(id, sig_hash, signature, ts, payload)`.
fn write_row(
    conn: &Connection,
    sql: &str,
    id: i64,
    rec: &EncodedRecord,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        id,
        rec.sig_hash,
        rec.signature,
        rec.timestamp_ms,
        rec.payload
    ])
}

fn duplicate(rec: &EncodedRecord, existing_id: i64) -> Error {
    Error::DuplicateSignature {
        signature: rec.signature.clone().unwrap_or_default(),
        existing_id,
    }
}

/// What the duplicate-signature check found.
enum SigCheck {
    /// No other record carries the signature.
    Free,
    /// This record does.
    Taken(i64),
    /// These archived records may: their signature hash matches.
    Unconfirmed(Vec<i64>),
}

/// The signature index as seen from inside one write transaction.
struct SigIndexTx<'a> {
    conn: &'a Connection,
    path: &'a std::path::Path,
    delta: &'a SignatureDelta,
    watermark: i64,
}

impl SigIndexTx<'_> {
    /// `Some(sig_hash)` of the row `id` (itself `None` for a record without a signature), or
    /// `None` when there is no such row.
    fn current_hash(&self, id: i64) -> Result<Option<Option<i64>>> {
        self.conn
            .prepare_cached("SELECT sig_hash FROM records WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get::<_, Option<i64>>(0)).optional())
            .map_err(sqlite_err("read signature hash", self.path))
    }

    /// Why `rec` must not be written, if it must not: another record carries its signature
    /// (`Err(DuplicateSignature)`), or archived records whose text only cold holds share its
    /// hash (`Ok` with [`WriteAck::unconfirmed`]; nothing written). `distinct` lists archived
    /// ids the caller already read and found different.
    fn refuse(
        &self,
        rec: &EncodedRecord,
        exclude: Option<i64>,
        batch: &[DeltaChange],
        distinct: &[i64],
        seq: u64,
    ) -> Result<Option<Result<WriteAck>>> {
        Ok(match self.find(rec, exclude, batch, distinct)? {
            SigCheck::Free => None,
            SigCheck::Taken(existing_id) => Some(Err(duplicate(rec, existing_id))),
            SigCheck::Unconfirmed(ids) => Some(Ok(WriteAck {
                unconfirmed: ids,
                ..WriteAck::new(rec.id.unwrap_or(0), seq)
            })),
        })
    }

    /// Whether another record carries `rec`'s signature: candidates from `sig_index`, the
    /// committed delta and this batch's own inserts, each confirmed by its text as the
    /// transaction sees it (so earlier writes in the batch count). A `sig_index` candidate
    /// whose row left warm is archived: its text is in a cold file, which is not read here
    /// (it would hold every writer behind a Parquet read); it is reported unconfirmed unless
    /// the caller listed it in `distinct`.
    fn find(
        &self,
        rec: &EncodedRecord,
        exclude: Option<i64>,
        batch: &[DeltaChange],
        distinct: &[i64],
    ) -> Result<SigCheck> {
        let (Some(hash), Some(sig)) = (rec.sig_hash, rec.signature.as_deref()) else {
            return Ok(SigCheck::Free);
        };
        let mut candidates = self.delta.ids(hash);
        candidates.extend(batch.iter().filter_map(|c| match *c {
            DeltaChange::Add(h, id) if h == hash => Some(id),
            _ => None,
        }));
        let mut indexed = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id FROM sig_index WHERE sig_hash = ?1")
                .map_err(sqlite_err("signature check", self.path))?;
            let ids = stmt
                .query_map([hash], |r| r.get::<_, i64>(0))
                .map_err(sqlite_err("signature check", self.path))?;
            for id in ids {
                indexed.push(id.map_err(sqlite_err("signature check", self.path))?);
            }
        }
        let indexed_len = indexed.len();
        candidates.splice(0..0, indexed);
        let mut unconfirmed = Vec::new();
        for (i, id) in candidates.into_iter().enumerate() {
            if Some(id) == exclude {
                continue;
            }
            let text: Option<Option<String>> = self
                .conn
                .prepare_cached("SELECT signature FROM records WHERE id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(sqlite_err("signature check", self.path))?;
            match text {
                Some(text) if text.as_deref() == Some(sig) => return Ok(SigCheck::Taken(id)),
                Some(_) => {}
                // A `sig_index` pair whose row left warm: the record is archived (signatures
                // stay indexed when records move to cold).
                None if i < indexed_len && id <= self.watermark && !distinct.contains(&id) => {
                    unconfirmed.push(id);
                }
                None => {}
            }
        }
        Ok(if unconfirmed.is_empty() {
            SigCheck::Free
        } else {
            SigCheck::Unconfirmed(unconfirmed)
        })
    }

    /// Record that row `id`'s signature hash went from `old` to `new` (`None`: removed).
    /// Rows at or below the watermark live in `sig_index` and are changed there; rows above it
    /// are changed in the delta after commit.
    fn rekey(
        &self,
        id: i64,
        old: Option<i64>,
        new: Option<i64>,
        changes: &mut Vec<DeltaChange>,
    ) -> Result<()> {
        if id <= self.watermark {
            if let Some(h) = old {
                self.conn
                    .prepare_cached("DELETE FROM sig_index WHERE sig_hash = ?1 AND id = ?2")
                    .and_then(|mut s| s.execute([h, id]))
                    .map_err(sqlite_err("update signature index", self.path))?;
            }
            if let Some(h) = new {
                self.conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO sig_index (sig_hash, id) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute([h, id]))
                    .map_err(sqlite_err("update signature index", self.path))?;
            }
        } else {
            if let Some(h) = old {
                changes.push(DeltaChange::Remove(h, id));
            }
            if let Some(h) = new {
                changes.push(DeltaChange::Add(h, id));
            }
        }
        Ok(())
    }
}

/// Whether file `file_id` is catalogued, live, covers `id` and holds no tombstone for it.
fn cold_copy_is_live(
    conn: &Connection,
    path: &std::path::Path,
    file_id: i64,
    id: i64,
) -> Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM cold_files WHERE file_id = ?1 AND state = 'live'
         AND min_id <= ?2 AND max_id >= ?2
         AND NOT EXISTS (SELECT 1 FROM cold_dead WHERE file_id = ?1 AND id = ?2)",
    )
    .and_then(|mut s| s.exists([file_id, id]))
    .map_err(sqlite_err("check cold copy", path))
}

/// Mark the copy of `id` in cold file `file_id` as no longer served.
fn tombstone(conn: &Connection, path: &std::path::Path, file_id: i64, id: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO cold_dead (file_id, id) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute([file_id, id]))
        .map_err(sqlite_err("tombstone", path))?;
    Ok(())
}

/// Record that `id` was removed, so a later miss of it reads as "removed", not as corruption.
fn note_removed(conn: &Connection, path: &std::path::Path, id: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO removed (id) VALUES (?1)")
        .and_then(|mut s| s.execute([id]))
        .map(drop)
        .map_err(sqlite_err("record removal", path))
}

fn insert_file(conn: &Connection, path: &std::path::Path, file: &NewFile) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO cold_files (path, min_id, max_id, min_ts, max_ts, row_count, bytes, state,
         created_ms, page_sums) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'live', ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            file.path,
            file.min_id,
            file.max_id,
            file.min_ts,
            file.max_ts,
            file.rows as i64,
            file.bytes as i64,
            now_ms(),
            file.page_sums
        ])
    })
    .map_err(sqlite_err("insert cold file", path))?;
    Ok(conn.last_insert_rowid())
}
