//! The hot tier as a [`StorageTier`]: direct access to the cache.

use std::time::Duration;

use async_trait::async_trait;

use super::{HotMemoryStorage, HOT_TARGET_ACCESS_TIME};
use crate::error::{Error, Result};
use crate::metrics::TierMetrics;
use crate::record::Record;
use crate::tier::StorageTier;

#[async_trait]
impl<R: Record> StorageTier<R> for HotMemoryStorage<R> {
    async fn get(&self, id: i64) -> Result<Option<R>> {
        Ok(self.lookup(id))
    }

    async fn get_by_signature(&self, signature: &str) -> Result<Option<R>> {
        Ok(self.lookup_signature(signature))
    }

    /// Cache a record that already has an id (the hot tier cannot assign ids). Overwrites any
    /// cached copy.
    async fn put(&self, record: &R) -> Result<i64> {
        let id = record.id().ok_or_else(|| {
            Error::invalid("the hot tier caches stored records only: the record needs an id")
        })?;
        let mut buf = Vec::new();
        record.encode(&mut buf)?;
        if buf.len() > self.inner.max_record_bytes {
            return Err(Error::RecordTooLarge {
                size: buf.len(),
                max: self.inner.max_record_bytes,
            });
        }
        // Sequence 0: a direct cache write orders no puts.
        self.begin_write(id)
            .finish(record.clone(), buf.len(), 0, true);
        Ok(id)
    }

    async fn remove(&self, id: i64) -> Result<bool> {
        let was = self.inner.cache.contains_key(&id);
        self.invalidate(id);
        Ok(was)
    }

    /// Scans the cache (it is bounded by its capacity) and returns one sorted page.
    async fn list_since(
        &self,
        since_ms: i64,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let after = after_id.unwrap_or(i64::MIN);
        let mut ids: Vec<i64> = self
            .inner
            .cache
            .iter()
            .filter(|(id, e)| **id > after && e.record.timestamp_ms() >= since_ms)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        Ok(ids
            .into_iter()
            .filter_map(|id| self.inner.cache.get(&id).map(|e| R::clone(&e.record)))
            .take(limit)
            .collect())
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.len())
    }

    async fn contains(&self, id: i64) -> Result<bool> {
        Ok(self.contains_id(id))
    }

    async fn get_metrics(&self) -> Result<TierMetrics> {
        Ok(self.metrics())
    }

    async fn maintenance(&self) -> Result<()> {
        self.inner.cache.run_pending_tasks();
        Ok(())
    }

    fn tier_name(&self) -> &'static str {
        "hot"
    }

    fn target_access_time(&self) -> Duration {
        HOT_TARGET_ACCESS_TIME
    }
}
