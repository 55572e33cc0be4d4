//! Per-tier counters and latency histograms, and the `TierMetrics` snapshot they produce: the
//! primitives the tiers record into. Imports nothing above the tiers; the store-wide snapshots,
//! alerts and their exposition are in `monitor`.

mod histogram;

pub(crate) use histogram::RecentHistogram;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::SharedClock;

use serde::Serialize;

/// A snapshot of one tier's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TierMetrics {
    /// `"hot"`, `"warm"` or `"cold"`.
    pub tier_name: String,
    /// Records held by the tier now.
    pub record_count: u64,
    /// Bytes the tier holds now, measured: encoded payloads of the cached records (hot), the
    /// database file plus its WAL (warm), the catalogued Parquet files (cold).
    pub bytes_stored: u64,
    /// Most records the tier holds (hot), `None` when unbounded.
    pub capacity: Option<u64>,
    /// Most encoded bytes the tier holds (hot, when `hot.max_bytes` is set).
    pub capacity_bytes: Option<u64>,
    /// Lookups answered by this tier since the store opened.
    pub hits: u64,
    /// Lookups this tier could not answer since the store opened.
    pub misses: u64,
    /// Lookups answered by this tier in the recent window.
    pub recent_hits: u64,
    /// Lookups this tier could not answer in the recent window.
    pub recent_misses: u64,
    /// Records evicted for capacity.
    pub evictions: u64,
    /// Records expired by TTL (`hot_to_warm_age` for hot).
    pub expirations: u64,
    /// Records promoted into this tier by reads.
    pub promotions: u64,
    /// Writes (puts, updates, removes) the tier's transactions carried since the store opened,
    /// a refused one (a duplicate signature) included (warm; 0 for the other tiers, which
    /// writes do not go to).
    pub writes: u64,
    /// Records moved into this tier by archival since the store opened (cold).
    pub records_archived: u64,
    /// How far the oldest record held is past its move to the next tier, seconds (warm: its
    /// age minus `warm_to_cold_age`; 0 when nothing is overdue).
    pub archival_lag_secs: u64,
    /// Data files (cold: catalogued Parquet files, quarantined included).
    pub file_count: u64,
    /// Files quarantined as missing or corrupt (cold).
    pub quarantined_files: u64,
    /// Length of the recent window the access times below cover, seconds.
    pub window_secs: u64,
    /// Mean lookup time over the recent window, µs.
    pub avg_access_time_us: f64,
    /// Median lookup time over the recent window, µs.
    pub p50_access_time_us: u64,
    /// 95th percentile lookup time over the recent window, µs.
    pub p95_access_time_us: u64,
    /// 99th percentile lookup time over the recent window, µs.
    pub p99_access_time_us: u64,
    /// Slowest lookup in the recent window, µs.
    pub max_access_time_us: u64,
    /// 95th percentile lookup time since the store opened, µs: the baseline that degradation
    /// alerts compare the recent window with.
    pub baseline_p95_access_time_us: u64,
    /// Lookups timed since the store opened (the baseline's sample count).
    pub baseline_samples: u64,
}

impl TierMetrics {
    /// Hit rate in percent (0–100). 0 when nothing was looked up.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / total as f64
        }
    }

    /// Hit rate over the recent window, in percent; `None` when nothing was looked up in it.
    pub fn recent_hit_rate(&self) -> Option<f64> {
        let total = self.recent_hits + self.recent_misses;
        (total > 0).then(|| self.recent_hits as f64 * 100.0 / total as f64)
    }
}

/// Hit/miss counters and access times of one tier, since open and over a recent window;
/// shared by all tiers. Recording is lock-free.
#[derive(Debug)]
pub(crate) struct AccessStats {
    clock: SharedClock,
    hits: AtomicU64,
    misses: AtomicU64,
    recent: RecentHistogram,
}

impl AccessStats {
    pub fn new(clock: SharedClock, window: Duration) -> Self {
        Self {
            clock,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            recent: RecentHistogram::new(window),
        }
    }

    /// Record an access that began at `start` and ends now.
    #[inline]
    pub fn record(&self, hit: bool, start: Instant) {
        let end = Instant::now();
        self.record_at(hit, end - start, self.clock.ms_at(end));
    }

    /// Record an access that began at `start`, whose wall time (by the store's clock) the
    /// caller already read as `start_ms`: saves a second clock reading on the hot path.
    #[inline]
    pub fn record_since(&self, hit: bool, start: Instant, start_ms: i64) {
        self.record_at(hit, start.elapsed(), start_ms);
    }

    /// Record an access of `elapsed` that ended at `now_ms` (tests inject latencies this way).
    #[inline]
    pub fn record_at(&self, hit: bool, elapsed: Duration, now_ms: i64) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        self.recent.record(hit, elapsed, now_ms);
    }

    /// Fill the access fields of `m` from these counters.
    pub fn fill(&self, m: &mut TierMetrics) {
        m.hits = self.hits.load(Ordering::Relaxed);
        m.misses = self.misses.load(Ordering::Relaxed);
        // The same time base as the recording (`ms_at`), so a suspend or a wall-clock step
        // cannot push every sample out of the window.
        let recent = self.recent.snapshot(self.clock.ms_at(Instant::now()));
        m.recent_hits = recent.hits;
        m.recent_misses = recent.misses;
        m.window_secs = self.recent.window().as_secs();
        let s = &recent.latency;
        m.avg_access_time_us = s.mean_ns() / 1000.0;
        m.p50_access_time_us = s.quantile_ns(0.50) / 1000;
        m.p95_access_time_us = s.quantile_ns(0.95) / 1000;
        m.p99_access_time_us = s.quantile_ns(0.99) / 1000;
        m.max_access_time_us = s.max_ns() / 1000;
        let all = self.recent.snapshot_all();
        m.baseline_p95_access_time_us = all.quantile_ns(0.95) / 1000;
        m.baseline_samples = all.count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use std::sync::Arc;

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
        let clock = crate::clock::ManualClock::new(1_000_000);
        let s = AccessStats::new(Arc::new(clock.clone()), Duration::from_secs(60));
        for us in 1..=100u64 {
            s.record_at(us % 4 != 0, Duration::from_micros(us), clock.now_ms());
        }
        let mut m = TierMetrics::default();
        s.fill(&mut m);
        assert_eq!((m.hits, m.misses), (75, 25));
        assert_eq!((m.recent_hits, m.recent_misses), (75, 25));
        assert_eq!(m.recent_hit_rate(), Some(75.0));
        assert!((94..=97).contains(&m.p95_access_time_us), "{m:?}");
        assert!((49..=51).contains(&m.p50_access_time_us), "{m:?}");
        assert_eq!(m.max_access_time_us, 100);
        assert_eq!(m.window_secs, 60);

        // A minute later the window is empty; the totals and the baseline remain.
        clock.advance(Duration::from_secs(61));
        let mut m = TierMetrics::default();
        s.fill(&mut m);
        assert_eq!((m.hits, m.recent_hits, m.p95_access_time_us), (75, 0, 0));
        assert_eq!(m.recent_hit_rate(), None);
        assert!((94..=97).contains(&m.baseline_p95_access_time_us), "{m:?}");
        assert_eq!(m.baseline_samples, 100);
    }
}
