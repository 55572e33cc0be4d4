//! Per-UTC-day generation counters: the warm writer bumps, after each commit and before it
//! answers the callers, the counter of every day a put, update or remove touched; the query
//! cache reads them to tell whether a cached answer still holds.

use std::collections::BTreeMap;

use parking_lot::RwLock;

/// A UTC day, in ms.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Days a span may cover before it bumps the epoch (every answer) instead of each day: a
/// file whose time range spans years is rare, and bumping day by day would not be bounded.
const MAX_SPAN_DAYS: i64 = 1024;

/// The generation counters. Counters only grow and days are never forgotten, so the
/// [`Fingerprint`] of a day range changes exactly when a day in it was bumped.
#[derive(Debug, Default)]
pub(crate) struct DayGenerations {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Day number (Unix ms / `DAY_MS`, floored) → times bumped.
    days: BTreeMap<i64, u64>,
    /// Bumped when every answer must be dropped (the catalog was rebuilt).
    epoch: u64,
}

/// What a cached answer was computed against: the days of its range that have been bumped,
/// how often in total, and the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    days: u64,
    bumps: u64,
    epoch: u64,
}

impl DayGenerations {
    /// Bump every day of each inclusive `(first_ms, last_ms)` timestamp span.
    pub(crate) fn bump(&self, spans: &[(i64, i64)]) {
        if spans.is_empty() {
            return;
        }
        let mut inner = self.inner.write();
        for &(first, last) in spans {
            let (lo, hi) = (first.div_euclid(DAY_MS), last.div_euclid(DAY_MS));
            if hi.saturating_sub(lo) >= MAX_SPAN_DAYS {
                inner.epoch += 1;
                continue;
            }
            for day in lo..=hi {
                *inner.days.entry(day).or_insert(0) += 1;
            }
        }
    }

    /// Drop every answer computed so far.
    pub(crate) fn bump_all(&self) {
        self.inner.write().epoch += 1;
    }

    /// The fingerprint of the days the timestamps `min_ts..=max_ts` fall in.
    pub(crate) fn fingerprint(&self, min_ts: i64, max_ts: i64) -> Fingerprint {
        let inner = self.inner.read();
        let (lo, hi) = (min_ts.div_euclid(DAY_MS), max_ts.div_euclid(DAY_MS));
        let (mut days, mut bumps) = (0, 0);
        if min_ts <= max_ts {
            for (_, n) in inner.days.range(lo..=hi) {
                days += 1;
                bumps += n;
            }
        }
        Fingerprint {
            days,
            bumps,
            epoch: inner.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_storage_generations_change_exactly_for_bumped_days() {
        let g = DayGenerations::default();
        let all = g.fingerprint(i64::MIN, i64::MAX);
        let day2 = g.fingerprint(2 * DAY_MS, 3 * DAY_MS - 1);
        g.bump(&[(5 * DAY_MS + 7, 5 * DAY_MS + 9)]);
        assert_ne!(g.fingerprint(i64::MIN, i64::MAX), all);
        assert_eq!(g.fingerprint(2 * DAY_MS, 3 * DAY_MS - 1), day2);
        let day5 = g.fingerprint(5 * DAY_MS, 5 * DAY_MS);
        g.bump(&[(-1, 0)]); // days -1 and 0
        assert_eq!(g.fingerprint(5 * DAY_MS, 6 * DAY_MS), day5);
        assert_eq!(g.fingerprint(-DAY_MS, -1).days, 1);
        assert_eq!(g.fingerprint(-DAY_MS, DAY_MS - 1).days, 2);
        let before = g.fingerprint(0, 0);
        g.bump_all();
        assert_ne!(g.fingerprint(0, 0), before);
        // A span of years bumps the epoch: every answer goes, and nothing grows per day.
        let wide = g.fingerprint(0, 0);
        g.bump(&[(i64::MIN, i64::MAX)]);
        assert_ne!(g.fingerprint(0, 0), wide);
        assert_eq!(g.inner.read().days.len(), 3);
        // An empty range covers no day.
        assert_eq!(g.fingerprint(5, 1).days, 0);
    }
}
