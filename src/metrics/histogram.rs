//! A lock-free log-linear latency histogram (HDR-style, ~3% relative precision).
//!
//! Values are nanoseconds. Each power of two is split into 32 linear sub-buckets, so a recorded
//! value is reported within 1/32 of itself. Recording is two relaxed atomic adds and a max: no
//! lock, safe on the hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below `SUB` get exact buckets; then 59 binades of `SUB` buckets each cover u64.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Concurrent latency histogram.
pub struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.snapshot().count())
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

#[inline]
fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = msb - SUB_BITS;
    let sub = ((v >> shift) as usize) & (SUB - 1);
    SUB + (shift as usize) * SUB + sub
}

/// Highest value that falls in bucket `b` (reporting the upper edge never under-states).
fn bucket_high(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let shift = ((b - SUB) / SUB) as u32;
    let sub = ((b - SUB) % SUB) as u64;
    let low = (SUB as u64 + sub) << shift;
    low + ((1u64 << shift) - 1)
}

impl LatencyHistogram {
    /// Record one duration.
    #[inline]
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        // A load first: the maximum rarely moves, and a plain load keeps the line shared.
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// Move every count into `into` and zero them here (concurrent records may land on
    /// either side).
    fn drain_into(&self, into: &LatencyHistogram) {
        for (c, dst) in self.counts.iter().zip(into.counts.iter()) {
            let n = c.swap(0, Ordering::Relaxed);
            if n != 0 {
                dst.fetch_add(n, Ordering::Relaxed);
            }
        }
        into.sum_ns
            .fetch_add(self.sum_ns.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        into.max_ns
            .fetch_max(self.max_ns.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Add this histogram's counts into `into`.
    fn add_to(&self, into: &mut HistogramSnapshot) {
        for (dst, c) in into.counts.iter_mut().zip(self.counts.iter()) {
            *dst += c.load(Ordering::Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
        into.max_ns = into.max_ns.max(self.max_ns.load(Ordering::Relaxed));
    }

    /// A consistent-enough copy for computing quantiles.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            max_ns: self.max_ns.load(Ordering::Relaxed),
        }
    }
}

/// Slots of a [`RecentHistogram`]: the window covers the current slot and the `SLOTS - 1`
/// before it.
const SLOTS: usize = 6;

struct Slot {
    /// Which slot period (`now_ms / slot_ms`) the counts belong to.
    epoch: AtomicI64,
    latency: LatencyHistogram,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Latencies and hit/miss counts over a sliding window of wall time, as a ring of
/// [`LatencyHistogram`]s, one per slot (a sixth of the window), plus every latency since
/// creation. Recording is lock-free: it picks the slot of `now_ms`, and the first recorder of
/// a new period claims the slot with a compare-and-swap and moves its old latencies into the
/// since-creation histogram (a few records racing that move may land in the new period, or
/// their hit/miss count may be lost, at slot boundaries only). Reading merges the slots of the
/// last window. One record costs one histogram's atomics, not two.
pub struct RecentHistogram {
    slot_ms: i64,
    slots: Box<[Slot]>,
    /// Latencies of periods that left the ring.
    retired: LatencyHistogram,
}

impl std::fmt::Debug for RecentHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentHistogram")
            .field("window_ms", &(self.slot_ms * SLOTS as i64))
            .finish()
    }
}

impl RecentHistogram {
    /// A window of `window` (rounded to whole milliseconds per slot, at least 1 ms each).
    pub fn new(window: Duration) -> Self {
        let slot_ms = (window.as_millis() as i64 / SLOTS as i64).max(1);
        Self {
            slot_ms,
            slots: (0..SLOTS)
                .map(|_| Slot {
                    epoch: AtomicI64::new(i64::MIN),
                    latency: LatencyHistogram::default(),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                })
                .collect(),
            retired: LatencyHistogram::default(),
        }
    }

    /// Every latency recorded since creation.
    pub fn snapshot_all(&self) -> HistogramSnapshot {
        let mut out = self.retired.snapshot();
        for slot in self.slots.iter() {
            slot.latency.add_to(&mut out);
        }
        out
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        Duration::from_millis((self.slot_ms * SLOTS as i64) as u64)
    }

    /// Record one access that ended at `now_ms`.
    #[inline]
    pub fn record(&self, hit: bool, elapsed: Duration, now_ms: i64) {
        let epoch = now_ms.div_euclid(self.slot_ms);
        let slot = &self.slots[epoch.rem_euclid(SLOTS as i64) as usize];
        let seen = slot.epoch.load(Ordering::Acquire);
        if seen < epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.latency.drain_into(&self.retired);
            slot.hits.store(0, Ordering::Relaxed);
            slot.misses.store(0, Ordering::Relaxed);
        }
        // A slot of a later period (the clock stepped back) takes the record too: close enough.
        let counter = if hit { &slot.hits } else { &slot.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        slot.latency.record(elapsed);
    }

    /// Latencies, hits and misses recorded in the window ending at `now_ms`.
    pub fn snapshot(&self, now_ms: i64) -> RecentSnapshot {
        let current = now_ms.div_euclid(self.slot_ms);
        let mut out = RecentSnapshot {
            latency: HistogramSnapshot {
                counts: vec![0; BUCKETS],
                sum_ns: 0,
                max_ns: 0,
            },
            hits: 0,
            misses: 0,
        };
        for slot in self.slots.iter() {
            let epoch = slot.epoch.load(Ordering::Acquire);
            if epoch > current - SLOTS as i64 && epoch <= current {
                slot.latency.add_to(&mut out.latency);
                out.hits += slot.hits.load(Ordering::Relaxed);
                out.misses += slot.misses.load(Ordering::Relaxed);
            }
        }
        out
    }
}

/// What a [`RecentHistogram`] held over its window.
#[derive(Debug, Clone)]
pub struct RecentSnapshot {
    /// Access times.
    pub latency: HistogramSnapshot,
    /// Accesses that found their record.
    pub hits: u64,
    /// Accesses that did not.
    pub misses: u64,
}

/// A point-in-time copy of a [`LatencyHistogram`].
#[derive(Debug, Clone)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
    sum_ns: u64,
    max_ns: u64,
}

impl HistogramSnapshot {
    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean, ns (0 when empty).
    pub fn mean_ns(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_ns as f64 / n as f64
        }
    }

    /// Largest recorded value, ns.
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// The value at quantile `q` (0..=1), ns: the upper edge of its bucket, capped at the max.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(b).min(self.max_ns);
            }
        }
        self.max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket order at {v}");
            last = b;
            let hi = bucket_high(b);
            assert!(hi >= v, "{v} above its bucket's edge {hi}");
            assert!(hi - v <= v / 32 + 1, "bucket of {v} too wide: {hi}");
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let h = LatencyHistogram::default();
        for ns in 1..=10_000u64 {
            h.record(Duration::from_nanos(ns));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 10_000);
        let p95 = s.quantile_ns(0.95);
        assert!((9500..=9500 + 9500 / 32).contains(&p95), "p95 {p95}");
        assert_eq!(s.quantile_ns(1.0), 10_000);
        assert!((s.mean_ns() - 5000.5).abs() < 1e-6);
        assert_eq!(LatencyHistogram::default().snapshot().quantile_ns(0.5), 0);
    }

    #[test]
    fn recent_window_forgets_old_slots() {
        let w = RecentHistogram::new(Duration::from_secs(60)); // 10 s slots
        let t0 = 1_700_000_000_000;
        for _ in 0..100 {
            w.record(true, Duration::from_millis(50), t0);
        }
        w.record(false, Duration::from_micros(10), t0 + 30_000);
        let s = w.snapshot(t0 + 30_000);
        assert_eq!((s.hits, s.misses), (100, 1));
        assert!(s.latency.quantile_ns(0.95) >= 50_000_000);
        // 60 s after the first records, their slot has left the window.
        let s = w.snapshot(t0 + 60_000);
        assert_eq!((s.hits, s.misses), (0, 1));
        assert!(s.latency.quantile_ns(0.95) <= 11_000);
        // The slot is reused by a later period: its old counts are cleared first.
        w.record(true, Duration::from_micros(20), t0 + 120_000);
        let s = w.snapshot(t0 + 120_000);
        assert_eq!((s.hits, s.misses, s.latency.count()), (1, 0, 1));
        assert_eq!(w.window(), Duration::from_secs(60));
        // Nothing is lost from the since-creation view, retired or not.
        let all = w.snapshot_all();
        assert_eq!(all.count(), 102);
        assert_eq!(all.max_ns(), 50_000_000);
        assert!(all.quantile_ns(0.5) >= 50_000_000);
    }

    #[test]
    fn recent_window_records_from_many_threads() {
        let w = std::sync::Arc::new(RecentHistogram::new(Duration::from_secs(60)));
        // Claim the slot first: records racing the claim's clear may be lost by design.
        w.record(true, Duration::from_nanos(1), 5_000);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        w.record(i % 2 == 0, Duration::from_nanos(i), 5_000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = w.snapshot(5_000);
        // All records share one claimed period: none is lost.
        assert_eq!(s.hits + s.misses, 40_001);
        assert_eq!(s.latency.count(), 40_001);
    }

    use proptest::prelude::*;

    /// One step of [`metrics_recent_histogram_matches_a_window_model`]: the clock advances by
    /// `advance_ms`, then a record or a snapshot happens at the new time.
    #[derive(Debug, Clone)]
    enum WindowOp {
        Record { hit: bool, ns: u64, advance_ms: i64 },
        Snapshot { advance_ms: i64 },
    }

    fn advance_ms() -> impl Strategy<Value = i64> {
        // Often none or little, so several records share a slot; sometimes whole slots.
        prop_oneof![Just(0i64), 0i64..2_000, 0i64..30_000]
    }

    fn window_op() -> impl Strategy<Value = WindowOp> {
        // Exact buckets (< 32), small binades, and the whole 0..10 s range.
        let ns = prop_oneof![0u64..64, 0u64..100_000, 0u64..10_000_000_000];
        prop_oneof![
            3 => (any::<bool>(), ns, advance_ms())
                .prop_map(|(hit, ns, advance_ms)| WindowOp::Record { hit, ns, advance_ms }),
            1 => advance_ms().prop_map(|advance_ms| WindowOp::Snapshot { advance_ms }),
        ]
    }

    /// The exact value at quantile `q` of `sorted`, by `quantile_ns`'s rank: the
    /// `max(1, ceil(q * n))`-th smallest (0 when empty).
    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// `s` against the exact figures of `values`: same count, max and mean, and each quantile
    /// at or above the exact one and at most 1/32 (+1 ns) over it.
    fn check_latencies(
        s: &HistogramSnapshot,
        values: &[u64],
        what: &str,
    ) -> Result<(), TestCaseError> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        prop_assert_eq!(s.count(), sorted.len() as u64, "{} count", what);
        prop_assert_eq!(
            s.max_ns(),
            sorted.last().copied().unwrap_or(0),
            "{} max",
            what
        );
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sum as f64 / sorted.len() as f64
        };
        prop_assert!(
            (s.mean_ns() - mean).abs() <= mean * 1e-12,
            "{} mean {} vs {}",
            what,
            s.mean_ns(),
            mean
        );
        for q in [0.5, 0.95, 0.99] {
            let want = exact_quantile(&sorted, q);
            let got = s.quantile_ns(q);
            prop_assert!(
                got >= want && u128::from(got) * 32 <= u128::from(want) * 33 + 32,
                "{} q{}: got {}, exact {} (n = {})",
                what,
                q,
                got,
                want,
                sorted.len()
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Single-threaded, with a clock that only advances, a 60 s `RecentHistogram` (six 10 s
        /// slots) against a list of every record. The window at `now` is the records whose
        /// period (`t.div_euclid(10 s)`) is in `(now_period - 6, now_period]`: a record of
        /// period P sits in slot `P mod 6` until a record of a later period `P + 6k` claims
        /// that slot (which, time being monotonic, means `now_period >= P + 6`), and a slot
        /// whose epoch is out of the window is skipped at snapshot, so the ring holds exactly
        /// that set. The since-creation view holds every record.
        #[test]
        fn metrics_recent_histogram_matches_a_window_model(
            start in prop_oneof![
                Just(0i64),
                -100_000i64..100_000,
                1_700_000_000_000i64..1_700_000_060_000,
            ],
            ops in proptest::collection::vec(window_op(), 1..200),
        ) {
            const SLOT_MS: i64 = 10_000;
            let h = RecentHistogram::new(Duration::from_secs(60));
            prop_assert_eq!(h.window(), Duration::from_secs(60));
            // (time, hit, latency) of every record, in order.
            let mut model: Vec<(i64, bool, u64)> = Vec::new();
            let check = |model: &[(i64, bool, u64)], now: i64| -> Result<(), TestCaseError> {
                let current = now.div_euclid(SLOT_MS);
                let in_window: Vec<&(i64, bool, u64)> = model
                    .iter()
                    .filter(|(t, _, _)| {
                        let p = t.div_euclid(SLOT_MS);
                        p > current - 6 && p <= current
                    })
                    .collect();
                let hits = in_window.iter().filter(|r| r.1).count() as u64;
                let misses = in_window.len() as u64 - hits;
                let s = h.snapshot(now);
                prop_assert_eq!((s.hits, s.misses), (hits, misses), "hits, misses at {}", now);
                let recent: Vec<u64> = in_window.iter().map(|r| r.2).collect();
                check_latencies(&s.latency, &recent, "window")?;
                let all: Vec<u64> = model.iter().map(|r| r.2).collect();
                check_latencies(&h.snapshot_all(), &all, "since creation")?;
                Ok(())
            };
            let mut now = start;
            for op in ops {
                match op {
                    WindowOp::Record { hit, ns, advance_ms } => {
                        now += advance_ms;
                        h.record(hit, Duration::from_nanos(ns), now);
                        model.push((now, hit, ns));
                    }
                    WindowOp::Snapshot { advance_ms } => {
                        now += advance_ms;
                        check(&model, now)?;
                    }
                }
            }
            check(&model, now)?;
            // And once everything has left the window.
            check(&model, now + 60_000)?;
        }
    }
}
