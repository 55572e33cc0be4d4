//! The store's clock: wall time in Unix milliseconds, injectable so tests of ageing, TTL,
//! metric windows and alerts move time by hand instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall time. The store reads it for record ageing (archival cut-offs and lag),
/// hot-tier TTL, the recent-metrics window and alert times.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The time of `instant` (an `Instant` just taken by the caller), in milliseconds since the
    /// Unix epoch. The default reads [`now_ms`](Clock::now_ms); [`SystemClock`] converts the
    /// instant with arithmetic alone (monotonic time since the clock was made, added to the
    /// wall time then), so the hot path makes no extra system call. The store stamps and checks
    /// hot-tier expiry and the metrics window in this base only, so a suspend or a wall-clock
    /// step cannot put one side of a comparison in another base than the other.
    fn ms_at(&self, instant: Instant) -> i64 {
        let _ = instant;
        self.now_ms()
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: `SystemTime`, with `Instant`s mapped onto it from one reading taken at
/// creation.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    base_instant: Instant,
    base_ms: i64,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            base_instant: Instant::now(),
            base_ms: system_now_ms(),
        }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }

    #[inline]
    fn ms_at(&self, instant: Instant) -> i64 {
        let since = instant.saturating_duration_since(self.base_instant);
        self.base_ms + since.as_millis() as i64
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A clock that moves only when told to: for tests and simulations. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use tiered_storage::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_700_000_000_000);
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now_ms(), 1_700_000_060_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            now: Arc::new(AtomicI64::new(now_ms)),
        }
    }

    /// Move time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(
            i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Set the time.
    pub fn set(&self, now_ms: i64) {
        self.now.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_maps_instants_onto_wall_time() {
        let clock = SystemClock::default();
        let later = Instant::now() + Duration::from_secs(10);
        let mapped = clock.ms_at(later);
        let expected = system_now_ms() + 10_000;
        assert!((mapped - expected).abs() < 1_000, "{mapped} vs {expected}");
        // An instant before the clock was made maps to its creation time, never earlier.
        assert!(clock.ms_at(clock.base_instant) <= clock.now_ms());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(5);
        let shared = clock.clone();
        assert_eq!(clock.ms_at(Instant::now()), 5);
        shared.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_ms(), 1505);
        clock.set(-3);
        assert_eq!(shared.now_ms(), -3);
    }
}
