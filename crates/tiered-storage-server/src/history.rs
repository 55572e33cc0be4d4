//! The metrics history: a bounded ring of samples of `collect_metrics` and the maintenance
//! counters, taken every `sample_interval` by a task of the service, with rates computed from
//! the counters' deltas. Served by `GET /v1/history` for the dashboard's charts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tiered_storage::{AutoTieringCoordinator, MaintenanceStatus, TierMetrics, TieredMetrics};

/// How much history the ring keeps.
pub const HISTORY_SPAN: Duration = Duration::from_secs(3600);

/// One tier in one sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TierSample {
    /// Records held.
    pub record_count: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Hit rate since open, percent.
    pub hit_rate: f64,
    /// Median lookup time over the recent window, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Lookups (hits and misses) per second since the previous sample.
    pub reads_per_sec: f64,
    /// Committed writes per second since the previous sample.
    pub writes_per_sec: f64,
}

/// One sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken, Unix ms by the store's clock.
    pub t_ms: i64,
    /// The hot tier.
    pub hot: TierSample,
    /// The warm tier.
    pub warm: TierSample,
    /// The cold tier.
    pub cold: TierSample,
    /// Records archived per second since the previous sample.
    pub records_archived_per_sec: f64,
    /// How far archival is behind, seconds.
    pub archival_lag_secs: u64,
    /// Compaction input files since open.
    pub compaction_files_in: u64,
}

/// `GET /v1/history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// Seconds between samples.
    pub interval_secs: f64,
    /// Oldest first.
    pub samples: Vec<Sample>,
}

/// The counters a sample's rates are computed from.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    t_ms: i64,
    reads: [u64; 3],
    writes: [u64; 3],
    archived: u64,
}

#[derive(Debug, Default)]
struct Ring {
    samples: VecDeque<Sample>,
    last: Option<Counters>,
}

/// The bounded ring of samples, shared by the sampler task and the handlers.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    ring: Mutex<Ring>,
}

impl History {
    /// A ring holding [`HISTORY_SPAN`] worth of samples taken every `interval` (720 at 5 s).
    pub fn new(interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(10));
        let capacity = (HISTORY_SPAN.as_millis() / interval.as_millis()).clamp(1, 100_000) as usize;
        Self {
            interval,
            capacity,
            ring: Mutex::new(Ring::default()),
        }
    }

    /// Time between samples.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Most samples kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Add a sample of these figures, taken at `t_ms`; the oldest falls out when full.
    pub fn record(&self, t_ms: i64, metrics: &TieredMetrics, status: &MaintenanceStatus) {
        let tiers =
            [&metrics.hot, &metrics.warm, &metrics.cold].map(|t| t.clone().unwrap_or_default());
        let now = Counters {
            t_ms,
            reads: tiers.each_ref().map(|t| t.hits + t.misses),
            writes: tiers.each_ref().map(|t| t.writes),
            archived: status.records_archived,
        };
        let mut ring = self.ring.lock();
        let rate = |now: u64, before: u64, secs: f64| {
            if secs > 0.0 {
                now.saturating_sub(before) as f64 / secs
            } else {
                0.0
            }
        };
        let (secs, before) = match ring.last {
            Some(before) if t_ms > before.t_ms => ((t_ms - before.t_ms) as f64 / 1000.0, before),
            _ => (0.0, now),
        };
        let tier = |i: usize, m: &TierMetrics| TierSample {
            record_count: m.record_count,
            bytes: m.bytes_stored,
            hit_rate: m.hit_rate(),
            p50_us: m.p50_access_time_us,
            p95_us: m.p95_access_time_us,
            p99_us: m.p99_access_time_us,
            reads_per_sec: rate(now.reads[i], before.reads[i], secs),
            writes_per_sec: rate(now.writes[i], before.writes[i], secs),
        };
        let sample = Sample {
            t_ms,
            hot: tier(0, &tiers[0]),
            warm: tier(1, &tiers[1]),
            cold: tier(2, &tiers[2]),
            records_archived_per_sec: rate(now.archived, before.archived, secs),
            archival_lag_secs: tiers[1].archival_lag_secs,
            compaction_files_in: status.compaction_files_in,
        };
        if ring.samples.len() == self.capacity {
            ring.samples.pop_front();
        }
        ring.samples.push_back(sample);
        ring.last = Some(now);
    }

    /// The samples of the last `window` before `now_ms`, oldest first.
    pub fn window(&self, window: Duration, now_ms: i64) -> HistoryResponse {
        let from = now_ms.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let ring = self.ring.lock();
        HistoryResponse {
            interval_secs: self.interval.as_secs_f64(),
            samples: ring
                .samples
                .iter()
                .filter(|s| s.t_ms >= from)
                .cloned()
                .collect(),
        }
    }

    /// Take one sample of the store now.
    pub async fn sample(&self, store: &AutoTieringCoordinator) {
        match store.collect_metrics().await {
            Ok(metrics) => {
                let status = store.maintenance_status();
                self.record(store.config().clock.now_ms(), &metrics, &status);
            }
            Err(e) => tracing::warn!(error = %e, "metrics sample failed"),
        }
    }

    /// Sample the store every interval, starting now, until `stop` turns true.
    pub async fn run_sampler(
        self: Arc<Self>,
        store: Arc<AutoTieringCoordinator>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
            self.sample(&store).await;
            // Off the async workers: it takes the allocator's locks.
            let _ = tokio::task::spawn_blocking(crate::alloc::trim_if_asked).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(hot_hits: u64, warm_writes: u64) -> TieredMetrics {
        TieredMetrics {
            hot: Some(TierMetrics {
                hits: hot_hits,
                record_count: 3,
                ..TierMetrics::default()
            }),
            warm: Some(TierMetrics {
                writes: warm_writes,
                archival_lag_secs: 9,
                ..TierMetrics::default()
            }),
            cold: None,
            query_cache: None,
            ..TieredMetrics::default()
        }
    }

    #[test]
    fn rates_come_from_deltas_and_the_first_sample_has_none() {
        let h = History::new(Duration::from_secs(5));
        assert_eq!(h.capacity(), 720);
        let status = MaintenanceStatus::default();
        h.record(10_000, &metrics(100, 50), &status);
        h.record(15_000, &metrics(600, 60), &status);
        let r = h.window(Duration::from_secs(3600), 15_000);
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.samples[0].hot.reads_per_sec, 0.0);
        assert_eq!(r.samples[1].hot.reads_per_sec, 100.0);
        assert_eq!(r.samples[1].warm.writes_per_sec, 2.0);
        assert_eq!(r.samples[1].archival_lag_secs, 9);
        assert_eq!(r.interval_secs, 5.0);
    }

    #[test]
    fn the_ring_is_bounded_and_windows_cut_by_time() {
        let h = History::new(Duration::from_secs(600));
        assert_eq!(h.capacity(), 6);
        let status = MaintenanceStatus::default();
        for i in 0..10 {
            h.record(i * 600_000, &metrics(i as u64, 0), &status);
        }
        let all = h.window(Duration::from_secs(100_000), 9 * 600_000);
        assert_eq!(all.samples.len(), 6);
        assert_eq!(all.samples[0].t_ms, 4 * 600_000);
        let recent = h.window(Duration::from_secs(900), 9 * 600_000);
        assert_eq!(recent.samples.len(), 2);
    }
}
