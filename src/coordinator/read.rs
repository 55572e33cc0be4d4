//! Point reads: hot, then one warm snapshot naming the row or the cold files that may hold
//! it, then only those files; promotion into hot on the Nth read.

use std::sync::Arc;

use super::{AutoTieringCoordinator, MOVE_RETRIES};
use crate::cold_storage::{ColdArchiveStorage, ColdRead};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::warm_storage::{Lookup, SignatureLookup};

impl<R: Record> AutoTieringCoordinator<R> {
    /// Read by id: hot, then warm, then cold. A hot hit never leaves the calling thread; a
    /// warm read runs on it too (a few µs, no thread hop); a cold read (about one Parquet page
    /// per column) runs on a blocking thread.
    ///
    /// The record is the caller's own copy; [`get_shared`](Self::get_shared) hands out the
    /// cached one without copying it.
    pub async fn get(&self, id: i64) -> Result<Option<R>> {
        Ok(self.read_by_id(id).await?.map(Read::into_owned))
    }

    /// Read by id like [`get`](Self::get), sharing the record: a hot hit returns the cached
    /// record itself (a reference-count increment, no copy of its strings and maps). The
    /// cheaper read for a caller that only looks at the record.
    pub async fn get_shared(&self, id: i64) -> Result<Option<Arc<R>>> {
        Ok(self.read_by_id(id).await?.map(Read::into_shared))
    }

    async fn read_by_id(&self, id: i64) -> Result<Option<Read<R>>> {
        // Hot and warm hits never wait, so a task reading in a loop would never give its worker
        // back: spend one unit of tokio's cooperative budget per read, and yield when it runs
        // out (every 128 reads), so timers, I/O and writes' replies on the same worker run.
        tokio::task::consume_budget().await;
        if let Some(r) = self.hot.lookup_shared(id) {
            return Ok(Some(Read::Shared(r)));
        }
        let ticket = self.hot.fill_ticket(id);
        let Some(found) = self.read_lower(id).await? else {
            return Ok(None);
        };
        if self.should_promote(id) {
            let bytes = found.bytes();
            let record = Arc::new(found.record);
            self.hot.fill(Arc::clone(&record), bytes, ticket);
            return Ok(Some(Read::Shared(record)));
        }
        Ok(Some(Read::Owned(found.record)))
    }

    /// Read by id below hot: warm answers from one snapshot with the row or the cold files that
    /// may hold it, and cold reads only those. A file compaction removed since the snapshot
    /// makes the read start again; nothing else does.
    async fn read_lower(&self, id: i64) -> Result<Option<LowerHit<R>>> {
        // Read before the lookup: an id below it committed before the lookup began, so the
        // lookup must find it unless it was removed. (A read-only handle reads the committed
        // bound only on a miss.)
        let assigned = (!self.config.read_only).then(|| self.warm.assigned_below());
        let mut vanished = None;
        for _ in 0..MOVE_RETRIES {
            let files = match self.warm.lookup(id)? {
                Lookup::Row(row) => {
                    return Ok(Some(LowerHit {
                        record: row.record,
                        bytes: Some(row.bytes),
                    }))
                }
                Lookup::Archived(files) => files,
            };
            let read = if files.is_empty() {
                self.cold.count_miss(std::time::Instant::now());
                ColdRead::Absent
            } else {
                self.cold_read(move |cold| cold.read(id, &files)).await?
            };
            match read {
                ColdRead::Found { record, .. } => {
                    return Ok(Some(LowerHit {
                        record,
                        bytes: None,
                    }))
                }
                ColdRead::Absent => {
                    // Corruption never reads as "not found".
                    let assigned = assigned.unwrap_or_else(|| self.warm.assigned_below());
                    self.warm.confirm_absent(id, assigned)?;
                    return Ok(None);
                }
                ColdRead::Vanished { file_id, error } => {
                    self.cold.check_vanished(&mut vanished, file_id, error)?
                }
            }
        }
        Err(Error::Conflict { id })
    }

    /// Read by transaction signature: hot, then warm, then cold. Warm answers from one
    /// snapshot with the row, or the archived records whose signature hash matches and the
    /// files that may hold them; cold reads only those and confirms the text.
    /// `Ok(None)` if no record carries it; [`Error::EmptySignature`] for `""`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let sig = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnb";
    /// let trade = TransactionRecord { transaction_signature: Some(sig.into()), ..Default::default() };
    /// let id = store.put(&trade).await?;
    ///
    /// let found = store.get_by_signature(sig).await?;
    /// assert_eq!(found.and_then(|t| t.id), Some(id));
    /// assert!(store.get_by_signature("never-sent").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn get_by_signature(&self, signature: &str) -> Result<Option<R>> {
        Ok(self
            .read_by_signature(signature)
            .await?
            .map(Read::into_owned))
    }

    /// Read by signature like [`get_by_signature`](Self::get_by_signature), sharing the
    /// record: a hot hit returns the cached record itself, without a copy.
    pub async fn get_by_signature_shared(&self, signature: &str) -> Result<Option<Arc<R>>> {
        Ok(self
            .read_by_signature(signature)
            .await?
            .map(Read::into_shared))
    }

    async fn read_by_signature(&self, signature: &str) -> Result<Option<Read<R>>> {
        if signature.is_empty() {
            return Err(Error::EmptySignature);
        }
        // See `get`: a read loop yields its worker once its cooperative budget is spent.
        tokio::task::consume_budget().await;
        if let Some(r) = self.hot.lookup_signature_shared(signature) {
            return Ok(Some(Read::Shared(r)));
        }
        let mut last = None;
        let mut vanished = None;
        for _ in 0..MOVE_RETRIES {
            let copies = match self.warm.lookup_signature(signature)? {
                SignatureLookup::Row(row) => {
                    return self.promote_by_signature(row.record, None, signature).await
                }
                SignatureLookup::Archived(copies) => copies,
            };
            let Some(first) = copies.first() else {
                self.cold.count_miss(std::time::Instant::now());
                return Ok(None);
            };
            last = Some(first.id);
            let sig = signature.to_owned();
            match self
                .cold_read(move |cold| cold.read_signature(&sig, &copies))
                .await?
            {
                ColdRead::Found { record, file_id } => {
                    return self
                        .promote_by_signature(record, Some(file_id), signature)
                        .await
                }
                ColdRead::Absent => return Ok(None),
                ColdRead::Vanished { file_id, error } => {
                    self.cold.check_vanished(&mut vanished, file_id, error)?
                }
            }
        }
        Err(Error::Conflict {
            id: last.unwrap_or_default(),
        })
    }

    /// After a lower-tier hit by signature: promote on the Nth read. A fill ticket must predate
    /// the read it guards, and the id was unknown before this read. For a copy read from cold
    /// file `from_file`, the ticket is taken now and the file confirmed still to be the
    /// record's home (every update or remove of an archived record moves or tombstones it, so
    /// the copy read is current; a later write is caught by the ticket). Otherwise (a warm hit,
    /// or the record moved), the record is read again by id under the ticket; the re-read is at
    /// least as new as the first, so it is the one returned.
    async fn promote_by_signature(
        &self,
        record: R,
        from_file: Option<i64>,
        signature: &str,
    ) -> Result<Option<Read<R>>> {
        let id = record.id().expect("stored records carry their id");
        if !self.should_promote(id) {
            return Ok(Some(Read::Owned(record)));
        }
        let ticket = self.hot.fill_ticket(id);
        if let Some(file_id) = from_file {
            if self.warm.cold_copy_is_current(id, file_id)? {
                let bytes = encoded_len(&record);
                let record = Arc::new(record);
                self.hot.fill(Arc::clone(&record), bytes, ticket);
                return Ok(Some(Read::Shared(record)));
            }
        }
        match self.read_lower(id).await? {
            Some(fresh) if fresh.record.signature() == Some(signature) => {
                let bytes = fresh.bytes();
                let record = Arc::new(fresh.record);
                self.hot.fill(Arc::clone(&record), bytes, ticket);
                Ok(Some(Read::Shared(record)))
            }
            // Renamed or removed since the first read.
            _ => Ok(None),
        }
    }

    /// Run a blocking cold read off the async worker threads.
    async fn cold_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ColdArchiveStorage<R>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cold = self.cold.clone();
        self.cold.pool().run(move || f(&cold)).await?
    }

    fn should_promote(&self, id: i64) -> bool {
        // A read-only handle caches nothing: the owner's writes would leave it stale.
        !self.config.read_only
            && self.config.tiering.auto_promote_on_access
            && u64::from(self.hot.touch(id)) >= self.config.tiering.min_hot_access_count
    }
}

/// A record read for a caller: its own, or shared with the hot tier.
enum Read<R> {
    Owned(R),
    Shared(Arc<R>),
}

impl<R: Record> Read<R> {
    /// The caller's own record: a copy only if the hot tier holds it too.
    fn into_owned(self) -> R {
        match self {
            Read::Owned(r) => r,
            Read::Shared(r) => Arc::try_unwrap(r).unwrap_or_else(|r| R::clone(&r)),
        }
    }

    fn into_shared(self) -> Arc<R> {
        match self {
            Read::Owned(r) => Arc::new(r),
            Read::Shared(r) => r,
        }
    }
}

/// A record read from warm or cold, with its encoded size when warm knew it.
struct LowerHit<R> {
    record: R,
    bytes: Option<usize>,
}

impl<R: Record> LowerHit<R> {
    /// Encoded size, for the hot tier's byte bound (encoded now for a cold hit).
    fn bytes(&self) -> usize {
        self.bytes.unwrap_or_else(|| encoded_len(&self.record))
    }
}

/// Encoded size of a record, for the hot tier's byte bound.
fn encoded_len<R: Record>(record: &R) -> usize {
    let mut buf = Vec::new();
    match record.encode(&mut buf) {
        Ok(()) => buf.len(),
        Err(_) => 0,
    }
}
