//! Writes: `put`, `update` and `remove`, durable in warm before hot is refreshed, and the
//! look-ups a write of an archived record needs (its cold home, the text of archived
//! signatures whose hash matches).

use std::sync::Arc;

use super::{AutoTieringCoordinator, MOVE_RETRIES};
use crate::cold_storage::{ColdArchiveStorage, ColdRead};
use crate::error::{Error, Result};
use crate::hot_storage::WriteGuard;
use crate::record::{signature_hash, Record};
use crate::warm_storage::{ColdHome, PendingWrite, WarmSqliteStorage, WriteAck, WriteOp};

impl<R: Record> AutoTieringCoordinator<R> {
    /// Store a new record durably and return its id. The record's id must be unset.
    ///
    /// Returns after the warm transaction holding it has committed; the record is then cached
    /// in hot. If the future is dropped before it resolves, the write may still commit.
    ///
    /// [`Error::InvalidRecord`] if the record already has an id, [`Error::DuplicateSignature`]
    /// if another record carries its signature, [`Error::EmptySignature`] for `Some("")`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, Error, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let trade = TransactionRecord {
    ///     transaction_signature: Some("sig-1".into()),
    ///     timestamp_decision_made: 1_764_480_000_000, // Unix ms
    ///     ..Default::default()
    /// };
    /// let id = store.put(&trade).await?; // durable when it returns
    /// assert_eq!(store.get(id).await?.and_then(|t| t.id), Some(id));
    ///
    /// // Signatures are unique across the store.
    /// let again = store.put(&trade).await;
    /// assert!(matches!(again, Err(Error::DuplicateSignature { existing_id, .. }) if existing_id == id));
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, record: &R) -> Result<i64> {
        if record.id().is_some() {
            return Err(Error::invalid(
                "put assigns ids: the record already has one (use update to change a stored record)",
            ));
        }
        let encoded = self.warm.encode(record)?;
        let bytes = encoded.payload.len();
        let permit = self.write_permit("put").await?;
        let ack = self.warm.write(WriteOp::Put(encoded, Vec::new())).await;
        let id = self.finish_put(record, bytes, ack).await?;
        drop(permit);
        Ok(id)
    }

    /// Store many new records durably, each as its own [`put`](Self::put), and return each
    /// one's id or error in input order. All of them are queued before the first answer is
    /// awaited, so the writer group-commits them together: a bulk load from one task runs at
    /// the speed of many concurrent writers.
    ///
    /// One record's error (a duplicate signature, a record that is too large, one that already
    /// has an id) writes nothing for it and does not stop the others; two records of the batch
    /// with the same signature store the first. The outer error is only for a store that
    /// cannot write at all ([`Error::ReadOnly`], [`Error::Closed`]); a store that closes
    /// part-way answers [`Error::Closed`] for the records it did not take.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, Error, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let trade = |sig: &str| TransactionRecord {
    ///     transaction_signature: Some(sig.into()),
    ///     ..Default::default()
    /// };
    /// let results = store.put_many(&[trade("a"), trade("b"), trade("a")]).await?;
    /// assert!(results[0].is_ok() && results[1].is_ok());
    /// assert!(matches!(results[2], Err(Error::DuplicateSignature { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn put_many(&self, records: &[R]) -> Result<Vec<Result<i64>>> {
        let permit = self.write_permit("put").await?;
        let mut queued = Vec::with_capacity(records.len());
        for record in records {
            let sent = async {
                if record.id().is_some() {
                    return Err(Error::invalid(
                        "put assigns ids: the record already has one (use update to change a stored record)",
                    ));
                }
                let encoded = self.warm.encode(record)?;
                let bytes = encoded.payload.len();
                let rx = self
                    .warm
                    .send_write(WriteOp::Put(encoded, Vec::new()))
                    .await?;
                Ok((bytes, rx))
            };
            queued.push(sent.await);
        }
        let mut results = Vec::with_capacity(records.len());
        for (record, sent) in records.iter().zip(queued) {
            results.push(match sent {
                Ok((bytes, rx)) => {
                    let ack = self.warm.write_answer(rx.await);
                    self.finish_put(record, bytes, ack).await
                }
                Err(e) => Err(e),
            });
        }
        drop(permit);
        Ok(results)
    }

    /// The rest of a put whose first write answered `ack`: when its signature's hash matched
    /// archived records (rare), confirm they differ and write again; then cache the record.
    async fn finish_put(&self, record: &R, bytes: usize, ack: Result<WriteAck>) -> Result<i64> {
        let mut ack = ack?;
        while !ack.unconfirmed.is_empty() {
            // Confirm, then encode again for the second try rather than copy every put's
            // encoding for it.
            let distinct =
                confirm_distinct(&self.warm, &self.cold, record.signature(), ack.unconfirmed)
                    .await?;
            let encoded = self.warm.encode(record)?;
            ack = self.warm.write(WriteOp::Put(encoded, distinct)).await?;
        }
        let mut cached = record.clone();
        cached.set_id(ack.id);
        self.hot.insert_put(cached, bytes, ack.seq);
        Ok(ack.id)
    }

    /// Replace a stored record (matched by its id) durably. Typical use: filling in a trade's
    /// outcome. Reads are linearizable: once any read has seen the new version (and certainly
    /// once this returns), no read sees the old one.
    ///
    /// The record may be in any tier: an archived record updated goes back to warm.
    /// [`Error::NotFound`] if no tier holds the id, [`Error::InvalidRecord`] if the record has
    /// no id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, Outcome, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let mut trade = TransactionRecord { initial_sol_spent: Some(0.5), ..Default::default() };
    /// let id = store.put(&trade).await?;
    ///
    /// // The trade closed: fill in its outcome. Profit and Loss carry an amount of SOL.
    /// trade.id = Some(id); // update finds the record by its id
    /// trade.final_sol_received = Some(0.42);
    /// trade.actual_outcome = Outcome::Loss(0.08);
    /// trade.timestamp_outcome_evaluated = Some(1_764_480_090_000); // Unix ms
    /// store.update(&trade).await?;
    /// assert_eq!(store.get(id).await?.unwrap().actual_outcome, Outcome::Loss(0.08));
    /// # Ok(()) }
    /// ```
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
        // The guard ends only when the commit is known: if this future is dropped while a
        // write is queued, `InFlight` hands the guard to a task that waits for the answer, so
        // a cancelled update that still commits cannot leave hot stale.
        let guard = self.hot.begin_write(id);
        // Only a record that was cached is re-cached: skip the clone otherwise.
        let recache = guard.was_cached().then(|| record.clone());
        let mut flight = InFlight::new(guard, permit);
        let mut home = None;
        let mut distinct = Vec::new();
        for _ in 0..MOVE_RETRIES {
            let op = WriteOp::Update(encoded.clone(), home, std::mem::take(&mut distinct));
            match flight.write(&self.warm, op).await {
                Ok(ack) if !ack.unconfirmed.is_empty() => {
                    distinct = confirm_distinct(
                        &self.warm,
                        &self.cold,
                        encoded.signature.as_deref(),
                        ack.unconfirmed,
                    )
                    .await?;
                    continue;
                }
                Ok(ack) if !ack.moved => {
                    let (mut guard, _permit) = flight.finish();
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
            home = locate_home(&self.warm, &self.cold, id)
                .await?
                .ok_or(Error::NotFound { id })?;
        }
        Err(Error::Conflict { id })
    }

    /// Delete a record from every tier. [`Error::NotFound`] if no tier holds it.
    pub async fn remove(&self, id: i64) -> Result<()> {
        let permit = self.write_permit("remove").await?;
        // As in `update`: the guard outlives a cancelled caller until the commit is known.
        let mut flight = InFlight::new(self.hot.begin_write(id), permit);
        let mut home = None;
        for _ in 0..MOVE_RETRIES {
            let ack = flight.write(&self.warm, WriteOp::Remove(id, home)).await?;
            if ack.removed {
                let (mut guard, _permit) = flight.finish();
                guard.committed(ack.seq);
                return Ok(());
            }
            // Not in warm, or the cold copy named moved: find it and write again.
            match locate_home(&self.warm, &self.cold, id).await? {
                None => return Err(Error::NotFound { id }),
                Some(h) => home = h,
            }
        }
        Err(Error::Conflict { id })
    }

    /// Permission to write: held until the write's commit is known, so shutdown (which takes
    /// the gate exclusively) waits for it. [`Error::Closed`] once shutdown has begun.
    async fn write_permit(&self, op: &'static str) -> Result<WritePermit> {
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
}

type WritePermit = tokio::sync::OwnedRwLockReadGuard<bool>;

/// An update or remove under way: its hot write guard and its write permit, and the answer of
/// the write it has queued, if any. Dropped (the caller was cancelled) while a queued write
/// is unanswered, it hands all three to a task that waits for the answer and only then ends
/// the guard: a write that commits after its caller left must not let a read re-cache the
/// version it replaced (see `hot_storage`), and shutdown (which takes the gate) must wait
/// for it. The common path, a caller that waits, spawns nothing.
struct InFlight<R: Record> {
    guard: Option<WriteGuard<R>>,
    permit: Option<WritePermit>,
    pending: Option<PendingWrite>,
}

impl<R: Record> InFlight<R> {
    fn new(guard: WriteGuard<R>, permit: WritePermit) -> Self {
        Self {
            guard: Some(guard),
            permit: Some(permit),
            pending: None,
        }
    }

    /// Queue `op` and wait for its answer.
    async fn write(&mut self, warm: &WarmSqliteStorage<R>, op: WriteOp) -> Result<WriteAck> {
        let rx = self.pending.insert(warm.send_write(op).await?);
        let received = rx.await;
        self.pending = None;
        warm.write_answer(received)
    }

    /// The guard and the permit, once the write's outcome is known.
    fn finish(mut self) -> (WriteGuard<R>, WritePermit) {
        debug_assert!(self.pending.is_none());
        let guard = self.guard.take().expect("taken once");
        (guard, self.permit.take().expect("taken once"))
    }
}

impl<R: Record> Drop for InFlight<R> {
    fn drop(&mut self) {
        let Some(rx) = self.pending.take() else {
            return; // nothing queued: nothing can commit after this
        };
        let (mut guard, permit) = (self.guard.take(), self.permit.take());
        let finish = move |received: Result<Result<WriteAck>, _>| {
            if let (Some(g), Ok(Ok(ack))) = (guard.as_mut(), received) {
                g.committed(ack.seq);
            }
            drop(guard);
            drop(permit);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { finish(rx.await) })),
            // Dropped outside a runtime: wait on a thread of its own.
            Err(_) => drop(std::thread::spawn(move || finish(rx.blocking_recv()))),
        }
    }
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
    let mut vanished = None;
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
            ColdRead::Vanished { file_id, error } => {
                cold.check_vanished(&mut vanished, file_id, error)?
            }
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
    signature: Option<&str>,
    ids: Vec<i64>,
) -> Result<Vec<i64>> {
    let signature = signature.unwrap_or_default();
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
