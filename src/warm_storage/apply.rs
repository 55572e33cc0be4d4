//! Applying a batch of writes in one transaction: ids, the duplicate-signature check, the
//! signature index, and writes to archived records (the new version comes back to warm and the
//! cold copy is tombstoned).

use std::sync::atomic::Ordering;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::catalog::{cold_copy_is_live, tombstone};
use super::schema::sqlite_err;
use super::sig_index::{DeltaChange, SignatureDelta};
use super::writer::{Command, Writer};
use super::WarmSqliteStorage;
use crate::error::{Error, Result};
use crate::record::{EncodedRecord, Record};

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

/// The answer to a queued write, sent by the writer thread after its commit.
pub(crate) type PendingWrite = oneshot::Receiver<Result<WriteAck>>;

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

impl<R: Record> WarmSqliteStorage<R> {
    /// Send one write to the writer thread and wait for its commit.
    pub(crate) async fn write(&self, op: WriteOp) -> Result<WriteAck> {
        let rx = self.send_write(op).await?;
        self.write_answer(rx.await)
    }

    /// Queue one write; the receiver gets its answer once it has committed (or failed).
    /// Cancel-safe: dropped before it resolves, the write was not queued.
    pub(crate) async fn send_write(&self, op: WriteOp) -> Result<PendingWrite> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .sender()?
            .send(Command::Write { op, reply })
            .await
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }

    /// The outcome of a write from what its [`PendingWrite`] received.
    pub(crate) fn write_answer(
        &self,
        received: Result<Result<WriteAck>, oneshot::error::RecvError>,
    ) -> Result<WriteAck> {
        self.inner.noted(received.map_err(|_| Error::Closed)?)
    }

    /// Validate and encode on the caller's thread (keeps the writer thread on SQL only).
    pub(crate) fn encode(&self, record: &R) -> Result<EncodedRecord> {
        EncodedRecord::new(record, self.inner.max_record_bytes)
    }
}

impl Writer {
    /// Apply `ops` in one transaction. The outer error means SQLite failed and nothing was
    /// committed; inner errors are per-write validation failures (nothing written for them).
    pub(super) fn apply(&mut self, ops: &[&WriteOp]) -> Result<Vec<Result<WriteAck>>> {
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
        // Timestamp spans (inclusive) of the days each applied write touched, bumped after
        // the commit, before the callers are answered.
        let mut touched: Vec<(i64, i64)> = Vec::new();
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
                        touched.push((rec.timestamp_ms, rec.timestamp_ms));
                        Ok(WriteAck::new(id, seq))
                    }
                }
                WriteOp::Update(rec, home, distinct) => {
                    let id = rec.id.expect("update carries an id");
                    match current_row(&tx, path, id, rec)? {
                        Some(current) => {
                            // A record keeping its own signature cannot collide: signatures
                            // are unique, and this row holds it (skip the index probe).
                            let refused = if current.same_signature {
                                None
                            } else {
                                index.refuse(rec, Some(id), &changes, distinct, seq)?
                            };
                            if let Some(refused) = refused {
                                refused
                            } else {
                                if current.same_signature && current.ts == rec.timestamp_ms {
                                    // Assign only the payload: a column assigned in SET has its
                                    // index entries rewritten even when unchanged, which would
                                    // dirty a `records_ts` page (one more WAL frame) per update.
                                    tx.prepare_cached(
                                        "UPDATE records SET payload = ?2, rev = rev + 1
                                         WHERE id = ?1",
                                    )
                                    .and_then(|mut s| s.execute(params![id, rec.payload]))
                                } else {
                                    write_row(
                                        &tx,
                                        "UPDATE records SET sig_hash = ?2, signature = ?3,
                                         ts = ?4, payload = ?5, rev = rev + 1 WHERE id = ?1",
                                        id,
                                        rec,
                                    )
                                }
                                .map_err(sqlite_err("update", path))?;
                                if current.sig_hash != rec.sig_hash {
                                    index.rekey(
                                        id,
                                        current.sig_hash,
                                        rec.sig_hash,
                                        &mut changes,
                                    )?;
                                }
                                touched.push((current.ts, current.ts));
                                touched.push((rec.timestamp_ms, rec.timestamp_ms));
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
                                    touched.push(file_span(&tx, path, home.file_id)?);
                                    touched.push((rec.timestamp_ms, rec.timestamp_ms));
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
                        let ts: i64 = tx
                            .prepare_cached("DELETE FROM records WHERE id = ?1 RETURNING ts")
                            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
                            .map_err(sqlite_err("delete", path))?;
                        touched.push((ts, ts));
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
                            touched.push(file_span(&tx, path, home.file_id)?);
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
        self.shared.generations.bump(&touched);
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
}

/// The `(min_ts, max_ts)` of a catalogued cold file: the days a write to one of its archived
/// records may change.
fn file_span(conn: &Connection, path: &std::path::Path, file_id: i64) -> Result<(i64, i64)> {
    conn.prepare_cached("SELECT min_ts, max_ts FROM cold_files WHERE file_id = ?1")
        .and_then(|mut s| s.query_row([file_id], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(sqlite_err("read the file's time range", path))
}

/// What an update needs to know of the row it replaces.
struct CurrentRow {
    sig_hash: Option<i64>,
    /// The row carries the update's signature text already (both may be `None`).
    same_signature: bool,
    ts: i64,
}

/// The warm row `id` as an update of it to `rec` sees it; `None` if warm has no such row.
fn current_row(
    conn: &Connection,
    path: &std::path::Path,
    id: i64,
    rec: &EncodedRecord,
) -> Result<Option<CurrentRow>> {
    conn.prepare_cached("SELECT sig_hash, signature IS ?2, ts FROM records WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![id, rec.signature], |r| {
                Ok(CurrentRow {
                    sig_hash: r.get(0)?,
                    same_signature: r.get(1)?,
                    ts: r.get(2)?,
                })
            })
            .optional()
        })
        .map_err(sqlite_err("read the row to update", path))
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
                None if i < indexed_len && !distinct.contains(&id) => {
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
                // An archived record above the watermark was indexed in `sig_index` by the
                // archival step that deleted its warm row (and left the delta).
                if !self.delta.contains(h, id) {
                    self.conn
                        .prepare_cached("DELETE FROM sig_index WHERE sig_hash = ?1 AND id = ?2")
                        .and_then(|mut s| s.execute([h, id]))
                        .map_err(sqlite_err("update signature index", self.path))?;
                }
                changes.push(DeltaChange::Remove(h, id));
            }
            if let Some(h) = new {
                changes.push(DeltaChange::Add(h, id));
            }
        }
        Ok(())
    }
}

/// Record that `id` was removed, so a later miss of it reads as "removed", not as corruption.
fn note_removed(conn: &Connection, path: &std::path::Path, id: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO removed (id) VALUES (?1)")
        .and_then(|mut s| s.execute([id]))
        .map(drop)
        .map_err(sqlite_err("record removal", path))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::*;
    use crate::config::StorageConfig;
    use crate::record::tests::sample;
    use crate::record::Outcome;
    use crate::tier::StorageTier;
    use crate::warm_storage::writer::testing::{encode, run_queued, writer};
    use crate::warm_storage::{Lookup, WARM_DB_FILE};

    fn open(dir: &std::path::Path) -> WarmSqliteStorage {
        WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir)).unwrap()
    }

    /// In one batch, a write that fails validation (a duplicate signature, also of an earlier
    /// write in the same batch; an unknown id) is answered alone and writes nothing, takes no
    /// id, and the other writes of that transaction commit.
    #[test]
    fn warm_storage_validation_failure_answers_only_its_caller() {
        let dir = tempfile::tempdir().unwrap();
        let (w, shared) = writer(dir.path());
        let mut ghost = sample(9);
        ghost.id = Some(999);
        let answers = run_queued(
            w,
            vec![
                WriteOp::Put(encode(&sample(1)), Vec::new()),
                WriteOp::Put(encode(&sample(1)), Vec::new()),
                WriteOp::Update(encode(&ghost), None, Vec::new()),
                WriteOp::Put(encode(&sample(2)), Vec::new()),
            ],
        );
        let first = answers[0].as_ref().unwrap().id;
        assert!(
            matches!(&answers[1], Err(Error::DuplicateSignature { existing_id, .. }) if *existing_id == first),
            "{:?}",
            answers[1]
        );
        assert!(
            matches!(&answers[2], Err(Error::NotFound { id: 999 })),
            "{:?}",
            answers[2]
        );
        let second = answers[3].as_ref().unwrap().id;
        assert_eq!(second, first + 1, "a refused put takes no id");
        assert_eq!(shared.batches.load(Ordering::Relaxed), 1);
        assert_eq!(shared.rows.load(Ordering::Relaxed), 2);
        let conn = Connection::open(dir.path().join(WARM_DB_FILE)).unwrap();
        let rows: Vec<(i64, Option<String>)> = conn
            .prepare("SELECT id, signature FROM records ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (first, sample(1).transaction_signature),
                (second, sample(2).transaction_signature)
            ]
        );
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

    /// Two puts with one signature in the same group commit: exactly one wins.
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
                w.run_upkeep().await.unwrap();
            }
        }
    }

    /// A signature hash that `sig_index` maps to an archived record (its row left warm) is
    /// never confirmed inside the write transaction: the write comes back unconfirmed with
    /// nothing written, and goes through once the caller says the archived text differs.
    #[tokio::test]
    async fn warm_storage_archived_signature_hash_is_confirmed_by_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let archived = w.put(&sample(1)).await.unwrap();
        w.run_upkeep().await.unwrap(); // merge: the pair is in `sig_index` now
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
}
