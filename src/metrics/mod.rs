//! Per-tier counters and latency histograms, and the `TierMetrics` snapshot they produce.

mod histogram;

pub use histogram::LatencyHistogram;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// A snapshot of one tier's counters, as in the seed's metrics snippet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TierMetrics {
    /// `"hot"`, `"warm"` or `"cold"`.
    pub tier_name: String,
    /// Records held by the tier now.
    pub record_count: u64,
    /// Bytes held by the tier now (encoded payloads for hot, database file size for warm).
    pub bytes_stored: u64,
    /// Lookups answered by this tier.
    pub hits: u64,
    /// Lookups this tier could not answer.
    pub misses: u64,
    /// Records evicted for capacity.
    pub evictions: u64,
    /// Records expired by TTL.
    pub expirations: u64,
    /// Records promoted into this tier.
    pub promotions: u64,
    /// Mean lookup time, µs.
    pub avg_access_time_us: f64,
    /// Median lookup time, µs.
    pub p50_access_time_us: u64,
    /// 95th percentile lookup time, µs.
    pub p95_access_time_us: u64,
    /// 99th percentile lookup time, µs.
    pub p99_access_time_us: u64,
    /// Slowest lookup, µs.
    pub max_access_time_us: u64,
}

impl TierMetrics {
    /// Hit rate in percent (0–100), as the seed's snippet prints it. 0 when nothing was looked up.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / total as f64
        }
    }
}

/// Hit/miss counters plus a latency histogram; shared by all tiers.
#[derive(Debug, Default)]
pub(crate) struct AccessStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub latency: LatencyHistogram,
}

impl AccessStats {
    #[inline]
    pub fn record(&self, hit: bool, elapsed: Duration) {
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(elapsed);
    }

    /// Fill the access fields of `m` from these counters.
    pub fn fill(&self, m: &mut TierMetrics) {
        m.hits = self.hits.load(Ordering::Relaxed);
        m.misses = self.misses.load(Ordering::Relaxed);
        let s = self.latency.snapshot();
        m.avg_access_time_us = s.mean_ns() / 1000.0;
        m.p50_access_time_us = s.quantile_ns(0.50) / 1000;
        m.p95_access_time_us = s.quantile_ns(0.95) / 1000;
        m.p99_access_time_us = s.quantile_ns(0.99) / 1000;
        m.max_access_time_us = s.max_ns() / 1000;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_is_a_percentage() {
        let m = TierMetrics {
            hits: 3,
            misses: 1,
            ..Default::default()
        };
        assert_eq!(m.hit_rate(), 75.0);
        assert_eq!(TierMetrics::default().hit_rate(), 0.0);
    }

    #[test]
    fn access_stats_fill_metrics() {
        let s = AccessStats::default();
        for us in 1..=100u64 {
            s.record(us % 4 != 0, Duration::from_micros(us));
        }
        let mut m = TierMetrics::default();
        s.fill(&mut m);
        assert_eq!((m.hits, m.misses), (75, 25));
        assert!((94..=97).contains(&m.p95_access_time_us), "{m:?}");
        assert!((49..=51).contains(&m.p50_access_time_us), "{m:?}");
        assert_eq!(m.max_access_time_us, 100);
    }
}
