//! The `StorageTier` trait: the interface every tier (and any custom tier) implements.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::metrics::TierMetrics;
use crate::record::{Record, TransactionRecord};

/// One storage tier. The built-in tiers implement it; so can yours.
///
/// Calling a tier directly bypasses the coordinator's cross-tier bookkeeping (for example a
/// direct warm `remove` does not evict the hot copy). Prefer the coordinator unless you need
/// one tier on its own.
#[async_trait]
pub trait StorageTier<R: Record = TransactionRecord>: Send + Sync {
    /// The record with this id, if the tier holds it.
    async fn get(&self, id: i64) -> Result<Option<R>>;

    /// The record with this signature, if the tier holds it.
    async fn get_by_signature(&self, signature: &str) -> Result<Option<R>>;

    /// Store a record and return its id.
    async fn put(&self, record: &R) -> Result<i64>;

    /// Delete a record. `Ok(false)` when the tier did not hold it.
    async fn remove(&self, id: i64) -> Result<bool>;

    /// One page of records with `timestamp_ms() >= since_ms` and id greater than `after_id`,
    /// in ascending id order, at most `limit` long. Pass the last id of a page as the next
    /// `after_id`; an empty page means the end.
    async fn list_since(
        &self,
        since_ms: i64,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<R>>;

    /// Number of records held.
    async fn count(&self) -> Result<u64>;

    /// Whether the tier holds this id.
    async fn contains(&self, id: i64) -> Result<bool> {
        Ok(self.get(id).await?.is_some())
    }

    /// A snapshot of the tier's counters.
    async fn get_metrics(&self) -> Result<TierMetrics>;

    /// Periodic upkeep (statistics, vacuum, checkpoints). Default: nothing.
    async fn maintenance(&self) -> Result<()> {
        Ok(())
    }

    /// Short name: `"hot"`, `"warm"`, `"cold"`.
    fn tier_name(&self) -> &'static str;

    /// The access time this tier is expected to meet (alerts compare p95 against it).
    fn target_access_time(&self) -> Duration;
}
