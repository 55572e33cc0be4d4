//! The query-result cache: answers of aggregates and queries keyed by the normalised query,
//! each stored with the [`Fingerprint`] of the days its time range covers, read BEFORE the
//! answer was computed. An answer is served only while that fingerprint is current: the warm
//! writer bumps a day's generation after every commit touching it (before the writer answers),
//! so any write the answer may not include changes the fingerprint. Bounded by estimated
//! bytes (moka with a weigher).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::aggregate::{Aggregate, AggregateRow, GroupKey};
use super::scan::ScanRange;
use crate::monitor::QueryCacheMetrics;
use crate::record::Record;
use crate::warm_storage::Fingerprint;

/// Bytes counted per entry beyond its rows and key (moka's node, the `Arc`s).
const ENTRY_OVERHEAD: usize = 128;

/// A cached answer.
#[derive(Clone)]
pub(crate) enum Answer {
    Rows(Arc<Vec<AggregateRow>>),
    /// A `Vec<R>` of the store's record type (`query`, `latest`).
    Records(Arc<dyn Any + Send + Sync>),
}

struct Entry {
    fingerprint: Fingerprint,
    answer: Answer,
    bytes: u32,
}

/// The cache and its counters.
pub(crate) struct QueryCache {
    entries: moka::sync::Cache<String, Arc<Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl QueryCache {
    /// A cache of at most `max_bytes` estimated bytes.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                u32::try_from(key.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(entry.bytes)
            })
            .build();
        Self {
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The answer cached for `key` if it was computed against `current`; a stale one is
    /// dropped (an invalidation).
    pub(crate) fn get(&self, key: &str, current: Fingerprint) -> Option<Answer> {
        match self.entries.get(key) {
            Some(entry) if entry.fingerprint == current => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.answer.clone())
            }
            Some(_) => {
                // A newer answer racing in is dropped too: at worst one more miss.
                self.entries.invalidate(key);
                self.invalidations.fetch_add(1, Ordering::Relaxed);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Cache `answer`, computed after `fingerprint` was read.
    pub(crate) fn insert(
        &self,
        key: String,
        fingerprint: Fingerprint,
        answer: Answer,
        bytes: usize,
    ) {
        let bytes = u32::try_from(bytes.saturating_add(ENTRY_OVERHEAD)).unwrap_or(u32::MAX);
        self.entries.insert(
            key,
            Arc::new(Entry {
                fingerprint,
                answer,
                bytes,
            }),
        );
    }

    pub(crate) fn metrics(&self) -> QueryCacheMetrics {
        self.entries.run_pending_tasks();
        QueryCacheMetrics {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
        }
    }
}

/// The normalised form of a range: filters sorted and deduplicated, an empty range as one key.
pub(crate) fn range_key(range: &ScanRange) -> String {
    if range.min_id > range.max_id || range.min_ts > range.max_ts {
        return "empty".to_owned();
    }
    let mut equals: Vec<&(String, String)> = range.equals.iter().collect();
    equals.sort();
    equals.dedup();
    format!(
        "id={}..={};ts={}..={};eq={:?}",
        range.min_id, range.max_id, range.min_ts, range.max_ts, equals
    )
}

/// The cache key of an aggregate.
pub(crate) fn aggregate_key(query: &Aggregate) -> String {
    format!(
        "aggregate;{};{:?};{:?}",
        range_key(query.range()),
        query.measure(),
        query.grouping()
    )
}

/// The cache key of a `query` (and so of `latest`).
pub(crate) fn query_key(range: &ScanRange) -> String {
    format!(
        "query;{};order={:?};limit={:?}",
        range_key(range),
        range.order,
        range.limit
    )
}

/// Estimated bytes of records: their encoded size (a lower bound of their heap size) and the
/// struct itself.
pub(crate) fn records_bytes<R: Record>(records: &[R]) -> usize {
    let mut buf = Vec::with_capacity(512);
    records
        .iter()
        .map(|r| {
            buf.clear();
            let encoded = r.encode(&mut buf).map_or(256, |()| buf.len());
            std::mem::size_of::<R>() + encoded
        })
        .sum()
}

/// Estimated heap bytes of aggregate rows.
pub(crate) fn rows_bytes(rows: &[AggregateRow]) -> usize {
    rows.iter()
        .map(|r| {
            std::mem::size_of::<AggregateRow>()
                + match &r.group {
                    GroupKey::Text(t) => t.len(),
                    _ => 0,
                }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::aggregate::{GroupBy, Measure};
    use crate::warm_storage::DayGenerations;

    #[test]
    fn coordinator_cache_keys_are_normalised() {
        let a = ScanRange::default().with_mint("m").with_program("p");
        let b = ScanRange::default()
            .with_program("p")
            .with_mint("m")
            .with_mint("m");
        assert_eq!(range_key(&a), range_key(&b));
        assert_ne!(range_key(&a), range_key(&ScanRange::default()));
        let (mut no_ids, mut no_time) = (ScanRange::default(), ScanRange::default());
        (no_ids.min_id, no_ids.max_id) = (5, 1);
        (no_time.min_ts, no_time.max_ts) = (9, 2);
        assert_eq!(range_key(&no_ids), range_key(&no_time));
        let q = |g| aggregate_key(&Aggregate::new(Measure::Pnl).group_by(g).over(a.clone()));
        assert_ne!(q(GroupBy::Day), q(GroupBy::Hour));
    }

    #[test]
    fn coordinator_cache_serves_only_current_answers() {
        let gens = DayGenerations::default();
        let cache = QueryCache::new(1 << 20);
        let fp = gens.fingerprint(0, 86_400_000 - 1);
        let rows = Arc::new(Vec::new());
        cache.insert("k".into(), fp, Answer::Rows(rows), 0);
        assert!(cache
            .get("k", gens.fingerprint(0, 86_400_000 - 1))
            .is_some());
        gens.bump(&[(10, 10)]);
        assert!(cache
            .get("k", gens.fingerprint(0, 86_400_000 - 1))
            .is_none());
        assert!(cache
            .get("k", gens.fingerprint(0, 86_400_000 - 1))
            .is_none());
        let m = cache.metrics();
        assert_eq!((m.hits, m.misses, m.invalidations, m.entries), (1, 2, 1, 0));
    }
}
