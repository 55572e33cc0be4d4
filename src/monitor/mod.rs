//! Monitoring above the tiers: the store-wide snapshots (`TieredMetrics`, `StorageStats`), the
//! alerts evaluated from them, their Prometheus exposition, and the data directory's disk figures.
//!
//! Every import points down: to `metrics` (the per-tier snapshots), `config`, and the cold
//! tier's problem types. No tier imports this module; the coordinator does.

pub(crate) mod alerts;
pub(crate) mod disk;
pub(crate) mod prometheus;

use serde::Serialize;

use crate::cold_storage::{ReplicaLagMetrics, StoreFailureMetrics};
use crate::metrics::TierMetrics;

/// Record counts and read routing counters, from
/// [`AutoTieringCoordinator::get_stats`](crate::AutoTieringCoordinator::get_stats).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageStats {
    /// Records cached in hot.
    pub hot_records: u64,
    /// Records stored in warm.
    pub warm_records: u64,
    /// Live records archived in cold.
    pub cold_records: u64,
    /// Distinct records stored: warm plus cold (hot is a cache over them).
    pub total_records: u64,
    /// Reads answered by hot.
    pub hot_hits: u64,
    /// Reads answered by warm.
    pub warm_hits: u64,
    /// Reads answered by cold.
    pub cold_hits: u64,
    /// Reads no tier could answer.
    pub misses: u64,
    /// Records promoted into hot by reads.
    pub promotions: u64,
    /// Records evicted from hot for capacity.
    pub hot_evictions: u64,
}

impl StorageStats {
    /// The counts and routing counters of the three tiers' snapshots. A read that no tier
    /// answers is a cold miss (cold is asked last), so cold's misses are the store's.
    pub(crate) fn from_tiers(hot: &TierMetrics, warm: &TierMetrics, cold: &TierMetrics) -> Self {
        Self {
            hot_records: hot.record_count,
            warm_records: warm.record_count,
            cold_records: cold.record_count,
            total_records: warm.record_count + cold.record_count,
            hot_hits: hot.hits,
            warm_hits: warm.hits,
            cold_hits: cold.hits,
            misses: cold.misses,
            promotions: hot.promotions,
            hot_evictions: hot.evictions,
        }
    }
}

/// Per-tier metrics, from
/// [`AutoTieringCoordinator::collect_metrics`](crate::AutoTieringCoordinator::collect_metrics).
/// A tier that is not configured is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TieredMetrics {
    /// Hot tier.
    pub hot: Option<TierMetrics>,
    /// Warm tier.
    pub warm: Option<TierMetrics>,
    /// Cold tier.
    pub cold: Option<TierMetrics>,
    /// The query-result cache; `None` when it is off (`query_cache.max_bytes = 0`, or a
    /// read-only open).
    pub query_cache: Option<QueryCacheMetrics>,
    /// How far each replica of an object-store cold tier is behind (empty without
    /// `cold.replicas`).
    pub replication: Vec<ReplicaLagMetrics>,
    /// Read failures and failovers of each store of an object-store cold tier with replicas
    /// (the primary first; empty without `cold.replicas`).
    pub cold_stores: Vec<StoreFailureMetrics>,
}

/// Counters of the query-result cache (see [`QueryCacheConfig`](crate::QueryCacheConfig)),
/// since the store opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueryCacheMetrics {
    /// Answers served from the cache.
    pub hits: u64,
    /// Answers computed because the cache held none for the query (including stale ones).
    pub misses: u64,
    /// Cached answers found stale (a day they cover was written since) and dropped.
    pub invalidations: u64,
    /// Answers held.
    pub entries: u64,
    /// Estimated bytes held.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_stats_take_counts_from_each_tier_and_misses_from_cold() {
        let hot = TierMetrics {
            record_count: 5,
            hits: 40,
            misses: 12,
            promotions: 3,
            evictions: 2,
            ..Default::default()
        };
        let warm = TierMetrics {
            record_count: 100,
            hits: 9,
            misses: 3,
            ..Default::default()
        };
        let cold = TierMetrics {
            record_count: 1000,
            hits: 2,
            misses: 1,
            ..Default::default()
        };
        assert_eq!(
            StorageStats::from_tiers(&hot, &warm, &cold),
            StorageStats {
                hot_records: 5,
                warm_records: 100,
                cold_records: 1000,
                total_records: 1100,
                hot_hits: 40,
                warm_hits: 9,
                cold_hits: 2,
                misses: 1,
                promotions: 3,
                hot_evictions: 2,
            }
        );
    }
}
