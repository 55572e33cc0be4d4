//! The cold-file catalog, kept in the warm database: the reads the cold tier makes through
//! [`ColdCatalog`], and the writer thread's catalog transactions (archive, compact, reserve
//! file numbers, rebuild, file state), each one transaction.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::schema::sqlite_err;
use super::writer::{now_ms, Command, Writer};
use super::WarmSqliteStorage;
use crate::catalog::{
    CatalogEntry, CatalogRebuild, ColdCatalog, DeleteFileEntry, DeletePublish, FileState, NewFile,
    PartitionDead,
};
use crate::error::{Error, Result};
use crate::record::Record;

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

/// The `(id, rev)` of an archived file's rows still to settle, in id order.
pub(super) type SettleList = Vec<(i64, i64)>;

/// What a compaction commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CompactCommit {
    /// The output (if any rows survived: its catalog id) replaced the inputs, and the
    /// partition's delete file was replaced (`retired`: the old one's path, to unlink).
    Committed {
        file_id: Option<i64>,
        retired: Option<String>,
    },
    /// An input was no longer catalogued as live (quarantined since the plan): nothing
    /// changed, and the output is to be discarded.
    InputGone { file_id: i64 },
}

impl<R: Record> WarmSqliteStorage<R> {
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
        deletes: Option<DeletePublish>,
    ) -> Result<CompactCommit> {
        self.command(|reply| Command::Compact {
            file,
            replaces,
            dropped,
            deletes,
            reply,
        })
        .await
    }

    /// Commit a delete-file publication: catalogue the new file (if any) in place of the
    /// partition's current one, and mark the partition clean if no tombstone was added since
    /// its ids were read. Returns the retired file's path, to unlink.
    pub(crate) async fn commit_deletes(&self, publish: DeletePublish) -> Result<Option<String>> {
        self.command(|reply| Command::PublishDeletes { publish, reply })
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
}

const ENTRY_COLUMNS: &str = "SELECT f.file_id, f.path, f.min_id, f.max_id, f.min_ts, f.max_ts,
    f.row_count, f.bytes, f.state,
    (SELECT count(*) FROM cold_dead d WHERE d.file_id = f.file_id), f.settled_upto, f.settle_left,
    f.etag, f.footer_len
    FROM cold_files f ";

pub(super) fn query_entries(
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
                settled_upto: r.get(10)?,
                unsettled_rows: r.get::<_, i64>(11)?.max(0) as u64,
                etag: r.get(12)?,
                footer_len: r.get::<_, Option<i64>>(13)?.map(|n| n.max(0) as u64),
            })
        })
        .map_err(sqlite_err("read cold catalog", path))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(sqlite_err("read cold catalog", path))
}

pub(super) fn query_dead(
    conn: &Connection,
    path: &Path,
    file_id: i64,
    lo: i64,
    hi: i64,
) -> Result<Vec<i64>> {
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

impl<R: Record> WarmSqliteStorage<R> {
    /// Send a cold-state change to the writer and wait for its commit (blocking).
    fn cold_state(&self, op: ColdStateOp) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .blocking_send(Command::ColdState { op, reply })
            .map_err(|_| Error::Closed)?;
        rx.blocking_recv().map_err(|_| Error::Closed)?
    }
}

/// A change to the object-store state of the catalog (`cold_intents`, `cold_replicas`), one
/// transaction each.
#[derive(Debug)]
pub(crate) enum ColdStateOp {
    RecordIntents(Vec<String>),
    DropIntents(Vec<String>),
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    MarkReplicated {
        replica: String,
        key: String,
        bytes: u64,
    },
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    UnmarkReplicated {
        replica: String,
        key: String,
    },
}

/// The catalogued objects (data and delete files) with their bytes and creation time.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
const CATALOGUED_OBJECTS: &str = "SELECT path, bytes, created_ms FROM cold_files
     UNION ALL SELECT path, bytes, created_ms FROM cold_delete_files";

impl<R: Record> ColdCatalog for WarmSqliteStorage<R> {
    fn record_intents(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.cold_state(ColdStateOp::RecordIntents(keys.to_vec()))
    }

    fn intents(&self) -> Result<Vec<(String, i64)>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let err = || sqlite_err("read cold intents", path);
            let mut stmt = conn
                .prepare_cached("SELECT key, created_ms FROM cold_intents ORDER BY created_ms, key")
                .map_err(err())?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err())?;
            rows.collect::<rusqlite::Result<_>>().map_err(err())
        })
    }

    fn is_catalogued(&self, key: &str) -> Result<bool> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM cold_files WHERE path = ?1)
                     OR EXISTS (SELECT 1 FROM cold_delete_files WHERE path = ?1)",
            )
            .and_then(|mut s| s.query_row([key], |r| r.get(0)))
            .map_err(sqlite_err("look up a cold key", path))
        })
    }

    fn drop_intents(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.cold_state(ColdStateOp::DropIntents(keys.to_vec()))
    }

    fn replica_pending(&self, replica: &str, limit: usize) -> Result<Vec<(String, u64)>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let err = || sqlite_err("read replication backlog", path);
            let sql = format!(
                "SELECT o.path, o.bytes FROM ({CATALOGUED_OBJECTS}) o
                 WHERE NOT EXISTS (SELECT 1 FROM cold_replicas c
                                   WHERE c.key = o.path AND c.replica = ?1)
                 ORDER BY o.created_ms, o.path LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(err())?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![replica, limit], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })
                .map_err(err())?;
            rows.collect::<rusqlite::Result<_>>().map_err(err())
        })
    }

    fn replica_lag(&self, replica: &str) -> Result<crate::catalog::ReplicaLag> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let sql = format!(
                "SELECT count(*), coalesce(sum(o.bytes), 0), min(o.created_ms)
                 FROM ({CATALOGUED_OBJECTS}) o
                 WHERE NOT EXISTS (SELECT 1 FROM cold_replicas c
                                   WHERE c.key = o.path AND c.replica = ?1)"
            );
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_row([replica], |r| {
                        Ok(crate::catalog::ReplicaLag {
                            objects: r.get::<_, i64>(0)?.max(0) as u64,
                            bytes: r.get::<_, i64>(1)?.max(0) as u64,
                            oldest_ms: r.get(2)?,
                        })
                    })
                })
                .map_err(sqlite_err("read replication lag", path))
        })
    }

    fn mark_replicated(&self, replica: &str, key: &str, bytes: u64) -> Result<()> {
        self.cold_state(ColdStateOp::MarkReplicated {
            replica: replica.to_owned(),
            key: key.to_owned(),
            bytes,
        })
    }

    fn unmark_replicated(&self, replica: &str, key: &str) -> Result<()> {
        self.cold_state(ColdStateOp::UnmarkReplicated {
            replica: replica.to_owned(),
            key: key.to_owned(),
        })
    }

    fn covering(&self, id: i64) -> Result<Vec<CatalogEntry>> {
        let path = &self.inner.path;
        self.inner
            .with_reader(|conn| super::home::candidates(conn, path, id))
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

    fn delete_files(&self) -> Result<Vec<DeleteFileEntry>> {
        let path = &self.inner.path;
        self.inner
            .with_reader(|conn| query_delete_files(conn, path, None))
    }

    fn dirty_partitions(&self) -> Result<Vec<String>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT partition FROM cold_delete_dirty ORDER BY partition")
                .map_err(sqlite_err("read dirty partitions", path))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sqlite_err("read dirty partitions", path))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(sqlite_err("read dirty partitions", path))
        })
    }

    fn partition_dead(&self, partition: &str) -> Result<PartitionDead> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let err = || sqlite_err("read a partition's tombstones", path);
            let tx = conn.unchecked_transaction().map_err(err())?;
            // Keys of the partition's files sort between "P/" and "P0" ('0' follows '/').
            let (lo, hi) = (format!("{partition}/"), format!("{partition}0"));
            let tombstones = tx
                .prepare_cached(
                    "SELECT d.file_id, d.id FROM cold_dead d JOIN cold_files f
                     ON f.file_id = d.file_id WHERE f.path >= ?1 AND f.path < ?2
                     ORDER BY d.file_id, d.id",
                )
                .and_then(|mut st| {
                    st.query_map([&lo, &hi], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<(i64, i64)>>>()
                })
                .map_err(err())?;
            let gen: i64 = tx
                .prepare_cached("SELECT gen FROM cold_delete_dirty WHERE partition = ?1")
                .and_then(|mut st| st.query_row([partition], |r| r.get(0)).optional())
                .map_err(err())?
                .unwrap_or(0);
            let current = query_delete_files(&tx, path, Some(partition))?.pop();
            Ok(PartitionDead {
                tombstones,
                gen,
                current,
            })
        })
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

impl Writer {
    /// The catalog half of an archival move, step 4a: catalogue the published file in one
    /// small transaction, settled through `min_id - 1` (none of its rows served yet), with the
    /// `(id, rev)` list of its rows so that recovery can settle them after a crash. The warm
    /// rows stay authoritative until [`settle_step`](Self::settle_step) deletes them, a chunk at
    /// a time between write batches.
    pub(super) fn catalogue_archive(&mut self, file: &NewFile, rows: &[(i64, i64)]) -> Result<i64> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let file_id = insert_file(&tx, path, file)?;
        tx.prepare_cached(
            "UPDATE cold_files SET settled_upto = ?2, settle_left = ?3, settle = ?4
             WHERE file_id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                file_id,
                file.min_id.saturating_sub(1),
                rows.len() as i64,
                encode_settle(rows)
            ])
        })
        .map_err(sqlite_err("catalogue archived file", path))?;
        tx.commit().map_err(sqlite_err("commit archive", path))?;
        Ok(file_id)
    }

    /// Settle the next `rows` (ascending ids, the next unsettled rows of file `file_id`) in ONE
    /// transaction, step 4b of an archival move: delete each warm row still at the version
    /// that was copied, tombstone the copy of each row that changed or went away since, and
    /// advance the file's settled-through id past them, so that each record is served from
    /// exactly one place before and after the commit. `last` marks the file's final rows.
    /// `None` when the file is no longer catalogued as live (quarantined or dropped by a
    /// rebuild): nothing changed, and its warm rows stay authoritative.
    pub(super) fn settle_step(
        &mut self,
        file_id: i64,
        rows: &[(i64, i64)],
        last: bool,
    ) -> Result<Option<(u64, u64)>> {
        let path = &self.path;
        let sig_watermark = self.sig_watermark;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let live: bool = tx
            .prepare_cached("SELECT 1 FROM cold_files WHERE file_id = ?1 AND state = 'live'")
            .and_then(|mut s| s.exists([file_id]))
            .map_err(sqlite_err("check settling file", path))?;
        if !live {
            return Ok(None);
        }
        let (mut archived, mut superseded) = (0u64, 0u64);
        // Ids whose warm row this step deletes: their home becomes this file.
        let mut settled: Vec<i64> = Vec::with_capacity(rows.len());
        // `(sig_hash, id)` of deleted rows above the signature watermark, now in `sig_index`.
        let mut moved: Vec<(i64, i64)> = Vec::new();
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
            // Archived rows keep their signatures in `sig_index`. Rows above its watermark are
            // indexed only by the in-memory delta, which is rebuilt from `records` on open, so
            // the rows about to leave are indexed first, in this transaction: a bounded insert
            // instead of a merge of the whole delta.
            let mut unmerged = tx
                .prepare_cached(
                    "SELECT sig_hash, id FROM records
                     WHERE id >= max(?1, ?3 + 1) AND id <= ?2 AND sig_hash IS NOT NULL",
                )
                .map_err(sqlite_err("prepare archive index", path))?;
            let mut index = tx
                .prepare_cached("INSERT OR IGNORE INTO sig_index (sig_hash, id) VALUES (?1, ?2)")
                .map_err(sqlite_err("prepare archive index", path))?;
            let moved = &mut moved;
            let mut delete = tx
                .prepare_cached("DELETE FROM records WHERE id >= ?1 AND id <= ?2")
                .map_err(sqlite_err("prepare archive delete", path))?;
            let mut delete_access = tx
                .prepare_cached("DELETE FROM access WHERE id >= ?1 AND id <= ?2")
                .map_err(sqlite_err("prepare archive delete", path))?;
            let mut run_delete = |lo: i64, hi: i64| -> Result<u64> {
                if hi > sig_watermark {
                    let pairs = unmerged
                        .query_map([lo, hi, sig_watermark], |r| Ok((r.get(0)?, r.get(1)?)))
                        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(i64, i64)>>>())
                        .map_err(sqlite_err("archive index", path))?;
                    for &(h, id) in &pairs {
                        index
                            .execute([h, id])
                            .map_err(sqlite_err("archive index", path))?;
                    }
                    moved.extend(pairs);
                }
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
                        settled.push(id);
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
        // Their home is this file from this commit on (`home.rs`): a lookup reads this file
        // only, not every file whose range covers them.
        super::home::note_archived(&tx, path, file_id, settled)?;
        // The file now serves the rows just settled (and, at the end, all of them).
        let upto = match (last, rows.last()) {
            (true, _) | (false, None) => i64::MAX,
            (false, Some(&(id, _))) => id,
        };
        tx.prepare_cached(
            "UPDATE cold_files SET settled_upto = ?2, settle_left = max(settle_left - ?3, 0),
             settle = CASE WHEN ?4 THEN NULL ELSE settle END WHERE file_id = ?1",
        )
        .and_then(|mut s| s.execute(params![file_id, upto, rows.len() as i64, last]))
        .map_err(sqlite_err("advance settled id", path))?;
        if archived > 0 {
            // Ids are never reused, even if the archived rows held the largest one.
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?1)")
                .and_then(|mut s| s.execute([self.next_id]))
                .map_err(sqlite_err("save next_id", path))?;
        }
        tx.commit()
            .map_err(sqlite_err("commit archive step", path))?;
        self.shared.sig_delta.forget(&moved);
        self.shared.rows.fetch_sub(archived, Ordering::Relaxed);
        Ok(Some((archived, superseded)))
    }

    /// Files whose archival commit was catalogued but not yet settled (a crash, or a file
    /// live again after a quarantine): `(file_id, rows not yet settled)`, oldest first. A list
    /// that does not decode is reported and skipped: that file's unsettled rows stay in warm,
    /// which is authoritative for them, so nothing is lost or served twice.
    pub(super) fn unsettled_files(&self) -> Result<Vec<(i64, SettleList)>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT file_id, settled_upto, settle FROM cold_files
                 WHERE settle IS NOT NULL AND state = 'live' ORDER BY file_id",
            )
            .map_err(sqlite_err("read unsettled files", path))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(sqlite_err("read unsettled files", path))?;
        let mut out = Vec::new();
        for row in rows {
            let (file_id, upto, blob) = row.map_err(sqlite_err("read unsettled files", path))?;
            match decode_settle(&blob) {
                Some(list) => {
                    let left: Vec<(i64, i64)> =
                        list.into_iter().filter(|&(id, _)| id > upto).collect();
                    out.push((file_id, left));
                }
                None => {
                    let detail = format!("the settle list of cold file {file_id} does not decode");
                    tracing::error!(file_id, "{detail}; its unsettled rows stay in warm");
                    self.shared.corruption.lock().get_or_insert(detail);
                }
            }
        }
        Ok(out)
    }

    /// The catalog half of a compaction, in ONE transaction: catalogue the merged file (if any
    /// row survived), drop the tombstones it consumed, move tombstones added since the merge
    /// began onto the new file (their rows are in it), and uncatalogue the replaced files.
    pub(super) fn compact(
        &mut self,
        file: Option<&NewFile>,
        replaces: &[i64],
        dropped: &[(i64, i64)],
        deletes: Option<&DeletePublish>,
    ) -> Result<CompactCommit> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        for &f in replaces {
            let live: bool = tx
                .prepare_cached(
                    "SELECT 1 FROM cold_files WHERE file_id = ?1 AND state = 'live'
                     AND settled_upto >= max_id",
                )
                .and_then(|mut s| s.exists([f]))
                .map_err(sqlite_err("check compacted file", path))?;
            if !live {
                // Quarantined, or (never planned so) still settling. Dropping the transaction
                // rolls it back: nothing changed.
                return Ok(CompactCommit::InputGone { file_id: f });
            }
        }
        let new_id = file.map(|f| insert_file(&tx, path, f)).transpose()?;
        if let (Some(n), Some(f)) = (new_id, file) {
            super::home::note_compacted(&tx, path, n, (f.min_id, f.max_id), replaces)?;
        }
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
        // The partition's delete file is replaced in the same commit: the retired ids go with
        // the rows they covered.
        let retired = match deletes {
            Some(d) => replace_delete_file(&tx, path, d)?,
            None => None,
        };
        tx.commit().map_err(sqlite_err("commit compaction", path))?;
        Ok(CompactCommit::Committed {
            file_id: new_id,
            retired,
        })
    }

    /// Apply one [`ColdStateOp`] in one transaction.
    pub(super) fn cold_state(&mut self, op: &ColdStateOp) -> Result<()> {
        let path = &self.path;
        let err = || sqlite_err("update cold object state", path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        match op {
            ColdStateOp::RecordIntents(keys) => {
                let now = now_ms();
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO cold_intents (key, created_ms) VALUES (?1, ?2)",
                    )
                    .map_err(err())?;
                for key in keys {
                    stmt.execute(params![key, now]).map_err(err())?;
                }
            }
            ColdStateOp::DropIntents(keys) => {
                let mut intent = tx
                    .prepare_cached("DELETE FROM cold_intents WHERE key = ?1")
                    .map_err(err())?;
                let mut replicas = tx
                    .prepare_cached(
                        "DELETE FROM cold_replicas WHERE key = ?1
                         AND NOT EXISTS (SELECT 1 FROM cold_files WHERE path = ?1)
                         AND NOT EXISTS (SELECT 1 FROM cold_delete_files WHERE path = ?1)",
                    )
                    .map_err(err())?;
                for key in keys {
                    intent.execute([key]).map_err(err())?;
                    replicas.execute([key]).map_err(err())?;
                }
            }
            ColdStateOp::MarkReplicated {
                replica,
                key,
                bytes,
            } => {
                tx.prepare_cached(
                    "INSERT INTO cold_replicas (key, replica, bytes, copied_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key, replica) DO UPDATE SET bytes = excluded.bytes,
                         copied_ms = excluded.copied_ms",
                )
                .and_then(|mut s| s.execute(params![key, replica, *bytes as i64, now_ms()]))
                .map_err(err())?;
            }
            ColdStateOp::UnmarkReplicated { replica, key } => {
                tx.prepare_cached("DELETE FROM cold_replicas WHERE key = ?1 AND replica = ?2")
                    .and_then(|mut s| s.execute(params![key, replica]))
                    .map_err(err())?;
            }
        }
        tx.commit().map_err(err())
    }

    pub(super) fn reserve_file_seqs(&mut self, floor: u64, count: u64) -> Result<u64> {
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

    pub(super) fn rebuild_catalog(&mut self, plan: &CatalogRebuild) -> Result<()> {
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
        // Files came and went: every partition's delete file is written afresh.
        tx.execute_batch(
            "INSERT INTO cold_delete_dirty (partition, gen)
                SELECT partition, 1 FROM (
                    SELECT substr(path, 1, instr(path, '/') - 1) AS partition FROM cold_files
                    UNION SELECT partition FROM cold_delete_files) WHERE true
                ON CONFLICT (partition) DO UPDATE SET gen = gen + 1;",
        )
        .map_err(sqlite_err("mark partitions dirty", path))?;
        tx.commit()
            .map_err(sqlite_err("commit catalog rebuild", path))
    }

    /// A delete-file publication's catalog commit, in one transaction (see
    /// [`WarmSqliteStorage::commit_deletes`]).
    pub(super) fn publish_deletes(&mut self, publish: &DeletePublish) -> Result<Option<String>> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin", path))?;
        let retired = replace_delete_file(&tx, path, publish)?;
        tx.commit()
            .map_err(sqlite_err("commit delete file", path))?;
        Ok(retired)
    }

    /// Mark a catalogued file live or quarantined.
    pub(super) fn set_file_state(&mut self, file_id: i64, state: FileState) -> Result<()> {
        self.conn
            .execute(
                "UPDATE cold_files SET state = ?2 WHERE file_id = ?1",
                params![file_id, state.as_str()],
            )
            .map(|_| ())
            .map_err(sqlite_err("set cold file state", &self.path))
    }
}

/// Whether file `file_id` is catalogued, live, serves `id` (covers it, settled through it)
/// and holds no tombstone for it.
pub(super) fn cold_copy_is_live(
    conn: &Connection,
    path: &std::path::Path,
    file_id: i64,
    id: i64,
) -> Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM cold_files WHERE file_id = ?1 AND state = 'live'
         AND min_id <= ?2 AND max_id >= ?2 AND settled_upto >= ?2
         AND NOT EXISTS (SELECT 1 FROM cold_dead WHERE file_id = ?1 AND id = ?2)",
    )
    .and_then(|mut s| s.exists([file_id, id]))
    .map_err(sqlite_err("check cold copy", path))
}

/// The `(id, rev)` list of an archived file's rows, for `cold_files.settle`: per row, the id's
/// distance from the previous id and the rev, both LEB128 varints (about 2 bytes per row:
/// ids are mostly consecutive and revs mostly 0).
pub(super) fn encode_settle(rows: &[(i64, i64)]) -> Vec<u8> {
    fn push(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::with_capacity(rows.len() * 2 + 8);
    let mut prev = 0i64;
    for &(id, rev) in rows {
        push(&mut out, id.wrapping_sub(prev) as u64);
        push(&mut out, rev as u64);
        prev = id;
    }
    out
}

/// [`encode_settle`] undone; `None` if the bytes are not such a list (ids must ascend).
pub(super) fn decode_settle(mut bytes: &[u8]) -> Option<Vec<(i64, i64)>> {
    fn next(bytes: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    let mut prev = 0i64;
    while !bytes.is_empty() {
        let step = next(&mut bytes)? as i64;
        let rev = next(&mut bytes)? as i64;
        let id = prev.wrapping_add(step);
        if !out.is_empty() && id <= prev {
            return None;
        }
        out.push((id, rev));
        prev = id;
    }
    Some(out)
}

/// Mark the copy of `id` in cold file `file_id` as no longer served.
pub(super) fn tombstone(
    conn: &Connection,
    path: &std::path::Path,
    file_id: i64,
    id: i64,
) -> Result<()> {
    let added = conn
        .prepare_cached("INSERT OR IGNORE INTO cold_dead (file_id, id) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute([file_id, id]))
        .map_err(sqlite_err("tombstone", path))?;
    if added > 0 {
        // The partition's delete file is behind now (see schema v7).
        conn.prepare_cached(
            "INSERT INTO cold_delete_dirty (partition, gen)
             SELECT substr(path, 1, instr(path, '/') - 1), 1 FROM cold_files WHERE file_id = ?1
             ON CONFLICT (partition) DO UPDATE SET gen = gen + 1",
        )
        .and_then(|mut s| s.execute([file_id]))
        .map_err(sqlite_err("mark partition dirty", path))?;
    }
    Ok(())
}

/// Catalogued delete files (of one partition, or all), by partition.
fn query_delete_files(
    conn: &Connection,
    path: &Path,
    partition: Option<&str>,
) -> Result<Vec<DeleteFileEntry>> {
    let err = || sqlite_err("read delete files", path);
    let mut stmt = conn
        .prepare_cached(
            "SELECT partition, path, row_count, bytes FROM cold_delete_files
             WHERE ?1 IS NULL OR partition = ?1 ORDER BY partition",
        )
        .map_err(err())?;
    let rows = stmt
        .query_map([partition], |r| {
            Ok(DeleteFileEntry {
                partition: r.get(0)?,
                path: r.get(1)?,
                rows: r.get::<_, i64>(2)? as u64,
                bytes: r.get::<_, i64>(3)? as u64,
            })
        })
        .map_err(err())?;
    rows.collect::<rusqlite::Result<_>>().map_err(err())
}

/// Put `publish.file` in place of its partition's delete file (inside the caller's
/// transaction) and mark the partition clean if its generation is unchanged. Returns the
/// retired file's path.
fn replace_delete_file(
    conn: &Connection,
    path: &Path,
    publish: &DeletePublish,
) -> Result<Option<String>> {
    let err = || sqlite_err("replace delete file", path);
    let old: Option<String> = conn
        .prepare_cached("DELETE FROM cold_delete_files WHERE partition = ?1 RETURNING path")
        .and_then(|mut s| s.query_row([&publish.partition], |r| r.get(0)).optional())
        .map_err(err())?;
    if let Some(f) = &publish.file {
        conn.prepare_cached(
            "INSERT INTO cold_delete_files (partition, path, row_count, bytes, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                f.partition,
                f.path,
                f.rows as i64,
                f.bytes as i64,
                now_ms()
            ])
        })
        .map_err(err())?;
    }
    conn.prepare_cached("DELETE FROM cold_delete_dirty WHERE partition = ?1 AND gen = ?2")
        .and_then(|mut s| s.execute(params![publish.partition, publish.gen]))
        .map_err(err())?;
    Ok(old)
}

fn insert_file(conn: &Connection, path: &std::path::Path, file: &NewFile) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO cold_files (path, min_id, max_id, min_ts, max_ts, row_count, bytes, state,
         created_ms, page_sums, etag, footer_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'live', ?8, ?9, ?10, ?11)",
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
            file.page_sums,
            file.etag,
            file.footer_len.map(|n| n as i64)
        ])
    })
    .map_err(sqlite_err("insert cold file", path))?;
    Ok(conn.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::StorageConfig;
    use crate::record::tests::sample;
    use crate::record::{Outcome, TransactionRecord};
    use crate::tier::StorageTier;
    use crate::warm_storage::{Lookup, WriteOp};

    fn open(dir: &Path) -> WarmSqliteStorage {
        WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir)).unwrap()
    }

    /// A published file holding the records `ids` (the catalog never opens it).
    fn new_file(ids: &[i64]) -> NewFile {
        NewFile {
            path: "2024/01/01/part-000000000001.parquet".to_owned(),
            min_id: ids[0],
            max_id: ids[ids.len() - 1],
            min_ts: 0,
            max_ts: i64::MAX,
            rows: ids.len() as u64,
            bytes: 1,
            page_sums: None,
            etag: None,
            footer_len: None,
        }
    }

    /// The warm rows an archival pass copies, with their `rev`s.
    fn copy_all(w: &WarmSqliteStorage, ids: &[i64]) -> Vec<(i64, i64)> {
        w.archive_page(i64::MAX, 0, ids[ids.len() - 1], 100)
            .unwrap()
            .iter()
            .map(|(rev, r)| (r.id.unwrap(), *rev))
            .collect()
    }

    /// A compaction whose input was quarantined after it was planned changes nothing: the
    /// commit says so (the output is then discarded) instead of failing as bad input.
    #[tokio::test]
    async fn warm_storage_compaction_commit_refuses_an_input_no_longer_live() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let ids = vec![
            w.put(&sample(0)).await.unwrap(),
            w.put(&sample(1)).await.unwrap(),
        ];
        let rows = copy_all(&w, &ids);
        let input = w
            .commit_archive(new_file(&ids), rows)
            .await
            .unwrap()
            .file_id;
        w.set_file_state(input, FileState::Quarantined)
            .await
            .unwrap();
        let before = w.entries().unwrap();
        let mut output = new_file(&ids);
        output.path = "date=1970-01-01/part-000000000099.parquet".into();
        let commit = w
            .commit_compaction(Some(output), vec![input], Vec::new(), None)
            .await
            .unwrap();
        assert_eq!(commit, CompactCommit::InputGone { file_id: input });
        assert_eq!(w.entries().unwrap(), before, "nothing changed");
    }

    /// An archival commit deletes only the rows still at the version that was copied. A row
    /// updated or removed while the file was written keeps its warm state, and its copy in the
    /// file is tombstoned, so each record is served from exactly one place.
    #[tokio::test]
    async fn warm_storage_archive_commit_deletes_only_unchanged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(w.put(&sample(n)).await.unwrap());
        }
        let rows = copy_all(&w, &ids);
        assert_eq!(rows.len(), 5);
        let mut changed = w.get(ids[1]).await.unwrap().unwrap();
        changed.actual_outcome = Outcome::Profit(1.5);
        w.write(WriteOp::Update(
            w.encode(&changed).unwrap(),
            None,
            Vec::new(),
        ))
        .await
        .unwrap();
        assert!(w.remove(ids[3]).await.unwrap());

        let ack = w.commit_archive(new_file(&ids), rows).await.unwrap();
        assert_eq!((ack.archived, ack.superseded), (3, 2), "{ack:?}");
        assert_eq!(w.len(), 1);
        match w.lookup(ids[1]).unwrap() {
            Lookup::Row(row) => assert_eq!(row.record, changed),
            Lookup::Archived(files) => panic!("the updated row left warm: {files:?}"),
        }
        for i in [0, 2, 4] {
            match w.lookup(ids[i]).unwrap() {
                Lookup::Archived(files) => assert_eq!(
                    files.iter().map(|f| f.file_id).collect::<Vec<_>>(),
                    [ack.file_id]
                ),
                Lookup::Row(_) => panic!("row {} was archived but is still in warm", ids[i]),
            }
        }
        match w.lookup(ids[3]).unwrap() {
            Lookup::Archived(files) => assert!(files.is_empty(), "{files:?}"),
            Lookup::Row(_) => panic!("a removed row came back"),
        }
        assert_eq!(
            w.dead_ids(ack.file_id, i64::MIN, i64::MAX).unwrap(),
            [ids[1], ids[3]]
        );
    }

    /// Where each of `ids` is served from, as a read-only handle sees the database: by id
    /// (`lookup`) and by a scan window (warm rows, then file rows the file serves and has not
    /// tombstoned; `ids_in_file` lists the file's rows). Each live id must be served exactly
    /// once, in its newest version, and a removed id not at all.
    fn assert_exactly_once(
        reader: &WarmSqliteStorage,
        ids_in_file: &[i64],
        live: &BTreeMap<i64, TransactionRecord>,
        when: &str,
    ) {
        let win = reader.scan_window(0, i64::MAX, i64::MIN, i64::MAX).unwrap();
        let mut served: BTreeMap<i64, u32> = BTreeMap::new();
        for r in &win.warm {
            let id = r.id.unwrap();
            *served.entry(id).or_default() += 1;
            assert_eq!(
                Some(r),
                live.get(&id),
                "{when}: warm row {id} is not the newest"
            );
        }
        for f in &win.files {
            for &id in ids_in_file {
                if f.serves(id) && !win.dead.contains(&(f.file_id, id)) {
                    *served.entry(id).or_default() += 1;
                }
            }
        }
        let expected: BTreeMap<i64, u32> = live.keys().map(|&id| (id, 1)).collect();
        assert_eq!(served, expected, "{when}: scan");
        for &id in ids_in_file {
            match (reader.lookup(id).unwrap(), live.get(&id)) {
                (Lookup::Row(row), Some(r)) => assert_eq!(&row.record, r, "{when}: id {id}"),
                (Lookup::Archived(files), Some(_)) => {
                    assert_eq!(files.len(), 1, "{when}: id {id} in {files:?}")
                }
                (Lookup::Archived(files), None) => {
                    assert!(
                        files.is_empty(),
                        "{when}: removed id {id} served by {files:?}"
                    )
                }
                (Lookup::Row(_), None) => panic!("{when}: removed id {id} in warm"),
            }
        }
    }

    /// Updates and removes of records whose file is settling, on both sides of its
    /// settled-through id, between the catalog commit and each settle step: every record is
    /// served exactly once, newest version, at every step, and the last step leaves the file
    /// serving exactly the rows that did not change.
    #[test]
    fn warm_storage_settling_serves_each_record_once_through_updates_and_removes() {
        use crate::warm_storage::writer::testing::{encode, writer};
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _shared) = writer(dir.path());
        let mut live = BTreeMap::new();
        for n in 0..8 {
            let r = sample(n);
            let ack = w
                .apply(&[&WriteOp::Put(encode(&r), Vec::new())])
                .unwrap()
                .pop()
                .unwrap()
                .unwrap();
            let mut r = r;
            r.id = Some(ack.id);
            live.insert(ack.id, r);
        }
        let ids: Vec<i64> = live.keys().copied().collect();
        let rows: Vec<(i64, i64)> = w
            .conn
            .prepare("SELECT id, rev FROM records ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut cfg = StorageConfig::default().with_data_dir(dir.path());
        cfg.read_only = true;
        let reader = WarmSqliteStorage::open(&cfg).unwrap();
        let update = |w: &mut Writer, live: &mut BTreeMap<i64, TransactionRecord>, id: i64| {
            let mut r = live[&id].clone();
            r.actual_outcome = Outcome::Profit(id as f64);
            w.apply(&[&WriteOp::Update(encode(&r), None, Vec::new())])
                .unwrap()
                .pop()
                .unwrap()
                .unwrap();
            live.insert(id, r);
        };
        let remove = |w: &mut Writer, live: &mut BTreeMap<i64, TransactionRecord>, id: i64| {
            let ack = w
                .apply(&[&WriteOp::Remove(id, None)])
                .unwrap()
                .pop()
                .unwrap()
                .unwrap();
            assert!(ack.removed);
            live.remove(&id);
        };

        let file_id = w.catalogue_archive(&new_file(&ids), &rows).unwrap();
        assert_exactly_once(&reader, &ids, &live, "catalogued");
        // Changes before the first step, below and above where it will settle through.
        update(&mut w, &mut live, ids[1]);
        remove(&mut w, &mut live, ids[2]);
        update(&mut w, &mut live, ids[5]);
        remove(&mut w, &mut live, ids[6]);
        assert_exactly_once(&reader, &ids, &live, "changed while catalogued");

        let (archived, superseded) = w.settle_step(file_id, &rows[..4], false).unwrap().unwrap();
        assert_eq!((archived, superseded), (2, 2));
        let entry = &reader.entries().unwrap()[0];
        assert_eq!((entry.settled_upto, entry.unsettled_rows), (ids[3], 4));
        assert_eq!(entry.live_rows(), 2);
        assert_exactly_once(&reader, &ids, &live, "first step");
        // Changes after it: an archived record removed (below), a warm one removed (above).
        let home = reader.locate(ids[0]).unwrap().expect("archived");
        assert_eq!(home.len(), 1);
        w.apply(&[&WriteOp::Remove(
            ids[0],
            Some(crate::warm_storage::ColdHome {
                file_id,
                sig_hash: encode(&live[&ids[0]]).sig_hash,
            }),
        )])
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
        live.remove(&ids[0]);
        remove(&mut w, &mut live, ids[7]);
        assert_exactly_once(&reader, &ids, &live, "changed after the first step");

        let (archived, superseded) = w.settle_step(file_id, &rows[4..], true).unwrap().unwrap();
        assert_eq!((archived, superseded), (1, 3));
        let entry = &reader.entries().unwrap()[0];
        assert!(entry.is_settled(), "{entry:?}");
        assert_eq!(entry.unsettled_rows, 0);
        assert_exactly_once(&reader, &ids, &live, "settled");
        assert!(w.unsettled_files().unwrap().is_empty());
    }

    #[test]
    fn warm_storage_settle_lists_round_trip_and_reject_garbage() {
        let rows = vec![(1, 0), (2, 0), (3, 7), (1000, 0), (i64::MAX, 300)];
        assert_eq!(decode_settle(&encode_settle(&rows)), Some(rows));
        assert_eq!(decode_settle(&[]), Some(Vec::new()));
        // A truncated varint, and ids that do not ascend.
        assert_eq!(decode_settle(&[0x80]), None);
        assert_eq!(decode_settle(&encode_settle(&[(5, 0)])[..1]), None);
        let mut bytes = encode_settle(&[(5, 0)]);
        bytes.extend(encode_settle(&[(0, 0)]));
        assert_eq!(decode_settle(&bytes), None);
    }

    /// Ids are never reused, even when archival took the row with the largest id and warm is
    /// empty at the reopen.
    #[tokio::test]
    async fn warm_storage_ids_are_never_reused_after_archiving_the_last_row() {
        let dir = tempfile::tempdir().unwrap();
        let last = {
            let w = open(dir.path());
            let mut ids = Vec::new();
            for n in 0..3 {
                ids.push(w.put(&sample(n)).await.unwrap());
            }
            let ack = w
                .commit_archive(new_file(&ids), copy_all(&w, &ids))
                .await
                .unwrap();
            assert_eq!(ack.archived, 3);
            assert!(w.is_empty());
            ids[2]
        };
        let w = open(dir.path());
        let next = w.put(&sample(9)).await.unwrap();
        assert!(
            next > last,
            "id {next} reused (the archived maximum was {last})"
        );
    }
}
