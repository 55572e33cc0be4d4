//! Access statistics: reads sample them into a shared map without writing; the writer thread
//! takes them into a backlog and upserts them into `access` a chunk at a time.
//!
//! One warm read in `warm.access_sample_every` (per thread) is noted, counting for that many
//! reads, so the statistics cost a read a thread-local countdown, and the writer one upsert
//! per sampled id and flush. Reads never wake the writer, except to hand over a full map
//! (`access_flush_threshold` ids); otherwise the writer takes the map when it is awake for
//! writes and `access_flush_interval_ms` has passed, and warm upkeep writes it all.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::schema::sqlite_err;
use super::writer::{now_ms, Command, Writer};
use super::{Inner, WarmSqliteStorage};
use crate::error::{Error, Result};
use crate::record::Record;

/// Access-statistic upserts per transaction of a periodic flush (a few ms of work).
pub(super) const ACCESS_FLUSH_CHUNK: usize = 512;

thread_local! {
    /// Warm reads this thread makes before it notes the next one.
    static UNTIL_SAMPLE: Cell<u32> = const { Cell::new(0) };
}

impl Inner {
    /// Count one warm read for the access statistics: every `access_sample_every`-th read on
    /// this thread is queued, weighted by that; never writes on the read path.
    pub(super) fn note_access(&self, id: i64) {
        if self.read_only {
            return;
        }
        let every = self.cfg.access_sample_every;
        let sampled = UNTIL_SAMPLE.with(|left| match left.get() {
            0 => {
                left.set(every - 1);
                true
            }
            n => {
                left.set(n - 1);
                false
            }
        });
        if !sampled {
            return;
        }
        let now = now_ms();
        let pending = {
            let mut map = self.shared.access.lock();
            // Bounded: if the writer is far behind, drop statistics rather than grow.
            if map.len() < 2 * self.cfg.access_flush_threshold || map.contains_key(&id) {
                let e = map.entry(id).or_insert((0, now));
                e.0 = e.0.saturating_add(every);
                e.1 = now;
            }
            map.len()
        };
        // Only a full map wakes the writer; time-based flushes wait until it is awake anyway.
        if pending >= self.cfg.access_flush_threshold
            && !self.shared.flush_requested.swap(true, Ordering::Relaxed)
        {
            if let Some(tx) = &self.tx {
                if tx.try_send(Command::FlushAccess { reply: None }).is_err() {
                    self.shared.flush_requested.store(false, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<R: Record> WarmSqliteStorage<R> {
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
}

impl Writer {
    /// Between write batches (the writer is awake anyway): take the pending statistics once
    /// `access_flush_interval_ms` has passed since the last take.
    pub(super) fn take_access_if_due(&mut self) {
        let last = self.shared.last_flush_ms.load(Ordering::Relaxed) as i64;
        if now_ms() - last >= self.cfg.access_flush_interval_ms as i64 {
            self.take_access(true);
        }
    }

    /// Move the pending access statistics into the backlog (in id order, so consecutive
    /// upserts land on the same `access` pages). `bounded`: not while the backlog is already
    /// `access_flush_threshold` long (invariant 4: new statistics then wait in the shared map,
    /// which is capped and drops new ids beyond its cap).
    pub(super) fn take_access(&mut self, bounded: bool) {
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
    pub(super) fn flush_access(&mut self) -> Result<usize> {
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

    pub(super) fn flush_access_chunk_logged(&mut self) {
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::*;
    use crate::config::StorageConfig;
    use crate::record::tests::sample;
    use crate::tier::StorageTier;

    /// Every read noted (no sampling), so counts are exact.
    fn open(dir: &std::path::Path) -> WarmSqliteStorage {
        let mut c = StorageConfig::default().with_data_dir(dir);
        c.warm.access_sample_every = 1;
        WarmSqliteStorage::open(&c).unwrap()
    }

    /// One read in `every` per thread is noted, weighted by `every`: the persisted count of
    /// reads on one thread is exact at multiples of `every`, and only sampled ids are queued.
    #[tokio::test]
    async fn warm_storage_access_stats_are_sampled() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StorageConfig::default().with_data_dir(dir.path());
        c.warm.access_sample_every = 4;
        let w: WarmSqliteStorage = WarmSqliteStorage::open(&c).unwrap();
        let a = w.put(&sample(1)).await.unwrap();
        let b = w.put(&sample(2)).await.unwrap();
        // A fresh thread: its first read is sampled.
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..40 {
                    assert!(matches!(w.lookup(a).unwrap(), super::super::Lookup::Row(_)));
                }
                // Three more reads of b: the first is sampled (read 41), the next two are not.
                for _ in 0..3 {
                    assert!(matches!(w.lookup(b).unwrap(), super::super::Lookup::Row(_)));
                }
            });
        });
        assert_eq!(w.inner.shared.access.lock().len(), 2);
        w.flush_access_stats().await.unwrap();
        assert_eq!(w.access_stats(a).unwrap().unwrap().0, 40);
        assert_eq!(w.access_stats(b).unwrap().unwrap().0, 4);
    }

    /// Reads alone never wake the writer until the pending map is full; then it is handed over
    /// and persisted without an explicit flush, and the map never holds more than twice the
    /// threshold.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_access_stats_persist_when_full_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StorageConfig::default().with_data_dir(dir.path());
        c.warm.access_sample_every = 1;
        c.warm.access_flush_threshold = 64;
        c.warm.access_flush_interval_ms = 1;
        let w: WarmSqliteStorage = WarmSqliteStorage::open(&c).unwrap();
        let mut ids = Vec::new();
        for i in 0..200 {
            ids.push(w.put(&sample(i)).await.unwrap());
        }
        // Let the writer finish its loop after the last put (it takes due statistics there).
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Fewer ids than the threshold, well past the interval: nothing is written.
        for &id in &ids[..63] {
            w.get(id).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(w.inner.shared.access.lock().len(), 63);
        assert!(
            ids[..63]
                .iter()
                .all(|&id| w.access_stats(id).unwrap().unwrap().0 == 0),
            "reads below the threshold woke the writer"
        );
        // The 64th id fills the map: the writer takes it and writes it on its own.
        w.get(ids[63]).await.unwrap();
        let mut waited = 0;
        while ids[..64]
            .iter()
            .any(|&id| w.access_stats(id).unwrap().unwrap().0 != 1)
        {
            assert!(waited < 500, "a full map was never persisted");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        // However many ids are read, the map stays within twice the threshold.
        for &id in &ids {
            w.get(id).await.unwrap();
            assert!(w.inner.shared.access.lock().len() <= 128);
        }
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
        c.warm.access_sample_every = 1;
        let w = WarmSqliteStorage::open(&c).unwrap();
        let n = 3 * ACCESS_FLUSH_CHUNK + 17;
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(w.put(&sample(i as u64)).await.unwrap());
        }
        // Reads queue statistics; with a 1 ms interval, the writer takes them after each write
        // batch, and puts keep arriving while the chunks are written.
        for (k, &id) in ids.iter().enumerate() {
            w.get(id).await.unwrap();
            if k % 1000 == 0 {
                w.put(&sample(1_000_000 + k as u64)).await.unwrap();
            }
        }
        // One more read, then a put past the interval: the writer takes the last reads.
        w.get(ids[0]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        w.put(&sample(2_000_000)).await.unwrap();
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
            n as u64 + (n as u64).div_ceil(1000) + 1
        );
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
}
