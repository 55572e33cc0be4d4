//! Hot tier (L1): a moka cache by id, a signature side map, and a frequency sketch for promotion.
//!
//! The hot tier is only a cache: every record in it is also in a lower tier, so losing it loses
//! nothing. These rules keep it from ever serving a version older than one a reader could
//! already have seen (reads stay linearizable):
//! - A write to an existing id starts with [`HotMemoryStorage::begin_write`]: it marks the id's
//!   stripe as having a write in flight, bumps the stripe's sequence and evicts the id, all
//!   *before* the lower tier commits. Until the write finishes, reads of the id miss and go to
//!   the lower tier, which is the single source of truth.
//! - A read that missed hot takes a `FillTicket` before reading the lower tier. Its fill lands
//!   only if no write is in flight on the stripe and the stripe's sequence has not moved, so a
//!   read that raced a write cannot re-insert the version it replaced.
//! - After its commit, a write re-caches the record only if no other write began or ended on
//!   the stripe meanwhile; otherwise it leaves the id uncached (a miss is always correct).
//! - A put caches its record only if the id is not cached yet, no update or remove of it is in
//!   flight, and none finished with a later commit sequence (`last_write` per stripe), so a
//!   put answered late cannot shadow a write that followed it.
//! - A write ends when its commit is known, not when its caller stops waiting: the coordinator
//!   hands the owned [`WriteGuard`] to a task that awaits the commit, so a cancelled update or
//!   remove that still commits cannot let an old version back in.
//!
//! The signature map holds `sig_hash → (id, stamp)`. It is written inside the key-locked compute
//! before the entry lands, and the eviction listener removes a mapping only if its stamp matches
//! the evicted entry, so a late listener can never drop a newer mapping. Lookups still check
//! the cached record's signature text, so a stale or colliding mapping can only cause a miss.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::clock::SharedClock;
use crate::config::StorageConfig;
use crate::metrics::{AccessStats, TierMetrics};
use crate::record::{signature_hash, Record, TransactionRecord};

mod hash;
mod sketch;
mod tier;
mod weight;

pub(crate) use hash::IdHashBuilder;
use sketch::FrequencySketch;
use weight::WeightScale;

/// Target access time of the hot tier: 1 ms.
pub const HOT_TARGET_ACCESS_TIME: Duration = Duration::from_millis(1);

const FILL_STRIPES: usize = 16_384;

#[derive(Clone)]
struct HotEntry<R> {
    record: Arc<R>,
    /// Unique per insertion; ties the signature mapping to this exact entry.
    stamp: u64,
    sig_hash: Option<i64>,
    bytes: u32,
    weight: u32,
    /// When the entry's time in hot (`hot_to_warm_age`) is up, by the store's clock. Moka's
    /// own TTL reclaims memory on real time; this makes reads agree with an injected clock.
    expires_ms: i64,
}

/// Proof that a read of a lower tier started before any write it could have missed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FillTicket {
    stripe: usize,
    seen: u64,
}

/// A write to an existing id in flight; see [`HotMemoryStorage::begin_write`]. It owns its
/// share of the hot tier, so it can outlive the caller's future: the coordinator finishes it
/// from a task that waits for the commit even if the caller is cancelled. Dropped without
/// [`finish`](WriteGuard::finish), it leaves the id uncached.
pub(crate) struct WriteGuard<R: Record> {
    inner: Arc<HotInner<R>>,
    id: i64,
    stripe: usize,
    seen: u64,
    was_cached: bool,
    /// Commit sequence of the write, once known.
    committed: Option<u64>,
}

impl<R: Record> WriteGuard<R> {
    /// Whether the id was cached when the write began (only then does `finish` re-cache it,
    /// unless told `always`).
    pub(crate) fn was_cached(&self) -> bool {
        self.was_cached
    }

    /// The write committed with sequence `seq`; puts committed before it must not cache.
    pub(crate) fn committed(&mut self, seq: u64) {
        self.committed = Some(seq);
    }

    /// The write committed `record` with sequence `seq`: re-cache it if it was cached before
    /// (or `always`) and no other write began or ended on the stripe meanwhile.
    pub(crate) fn finish(mut self, record: R, bytes: usize, seq: u64, always: bool) {
        self.committed = Some(seq);
        if !(self.was_cached || always) {
            return;
        }
        let inner = &*self.inner;
        let new = inner.make_entry(Arc::new(record), bytes);
        inner.cache.entry(self.id).and_compute_with(|current| {
            if current.is_some() || inner.stripes[self.stripe].load(Ordering::Acquire) != self.seen
            {
                return Op::Nop;
            }
            inner.remap(self.id, None, &new);
            Op::Put(new)
        });
    }
}

impl<R: Record> Drop for WriteGuard<R> {
    fn drop(&mut self) {
        let inner = &*self.inner;
        if let Some(seq) = self.committed {
            // Before `in_flight` drops: a put that sees no write in flight must see this.
            inner.last_write[self.stripe].fetch_max(seq, Ordering::AcqRel);
        }
        inner.stripes[self.stripe].fetch_add(1, Ordering::AcqRel);
        inner.in_flight[self.stripe].fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct Counters {
    evictions: AtomicU64,
    expirations: AtomicU64,
    promotions: AtomicU64,
    bytes: AtomicU64,
}

/// The in-memory hot tier. Cheap to clone: clones share one cache.
pub struct HotMemoryStorage<R: Record = TransactionRecord> {
    inner: Arc<HotInner<R>>,
}

impl<R: Record> Clone for HotMemoryStorage<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct HotInner<R: Record> {
    cache: Cache<i64, HotEntry<R>, IdHashBuilder>,
    sigs: Arc<DashMap<i64, (i64, u64), IdHashBuilder>>,
    counters: Arc<Counters>,
    /// Per-stripe sequence, bumped when a write begins and when it ends.
    stripes: Box<[AtomicU64]>,
    /// Per-stripe count of writes in flight.
    in_flight: Box<[AtomicU32]>,
    /// Per-stripe highest commit sequence of a finished update or remove: a put committed
    /// before it must not cache its (older) version.
    last_write: Box<[AtomicU64]>,
    stamps: AtomicU64,
    freq: FrequencySketch,
    stats: AccessStats,
    clock: SharedClock,
    ttl_ms: i64,
    /// Set when a byte bound is configured.
    weights: Option<WeightScale>,
    max_record_bytes: usize,
}

impl<R: Record> HotInner<R> {
    fn make_entry(&self, record: Arc<R>, bytes: usize) -> HotEntry<R> {
        let bytes = bytes.min(u32::MAX as usize) as u32;
        let weight = self.weights.as_ref().map_or(1, |w| w.weight(bytes));
        HotEntry {
            sig_hash: record.signature().map(signature_hash),
            record,
            stamp: self.stamps.fetch_add(1, Ordering::Relaxed),
            bytes,
            weight,
            // `ms_at`, the base reads check against: consistent even if the wall clock steps.
            expires_ms: self.clock.ms_at(Instant::now()).saturating_add(self.ttl_ms),
        }
    }

    /// Whether `e` is still within its time in hot at `now_ms`; if not, remove it (unless it
    /// was replaced meanwhile) and count an expiration.
    #[inline]
    fn live(&self, id: i64, e: &HotEntry<R>, now_ms: i64) -> bool {
        if e.expires_ms > now_ms {
            return true;
        }
        let stamp = e.stamp;
        let mut expired = false;
        self.cache
            .entry(id)
            .and_compute_with(|current| match current {
                Some(c) if c.value().stamp == stamp => {
                    expired = true;
                    Op::Remove
                }
                _ => Op::Nop,
            });
        if expired {
            self.counters.expirations.fetch_add(1, Ordering::Relaxed);
        }
        false
    }

    /// Move the signature mapping from `old` (if any) to `new`, inside the key lock.
    fn remap(&self, id: i64, old: Option<&HotEntry<R>>, new: &HotEntry<R>) {
        if let Some(old) = old {
            if let Some(h) = old.sig_hash.filter(|h| Some(*h) != new.sig_hash) {
                self.sigs.remove_if(&h, |_, (_, stamp)| *stamp == old.stamp);
            }
        }
        if let Some(h) = new.sig_hash {
            self.sigs.insert(h, (id, new.stamp));
        }
        self.counters
            .bytes
            .fetch_add(u64::from(new.bytes), Ordering::Relaxed);
    }
}

impl<R: Record> std::fmt::Debug for HotMemoryStorage<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotMemoryStorage")
            .field("entries", &self.inner.cache.entry_count())
            .finish()
    }
}

impl<R: Record> HotMemoryStorage<R> {
    /// Build from the store config: capacity, optional byte bound, TTL = `hot_to_warm_age`.
    pub fn new(config: &StorageConfig) -> Self {
        let counters = Arc::new(Counters::default());
        let sigs: Arc<DashMap<i64, (i64, u64), IdHashBuilder>> =
            Arc::new(DashMap::with_hasher(IdHashBuilder::default()));
        let listener = {
            let counters = Arc::clone(&counters);
            let sigs = Arc::clone(&sigs);
            move |_id: Arc<i64>, entry: HotEntry<R>, cause: RemovalCause| {
                counters
                    .bytes
                    .fetch_sub(u64::from(entry.bytes), Ordering::Relaxed);
                match cause {
                    RemovalCause::Size => {
                        counters.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                    RemovalCause::Expired => {
                        counters.expirations.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                // A replaced entry's mapping was already moved by the compute that replaced it.
                if cause != RemovalCause::Replaced {
                    if let Some(h) = entry.sig_hash {
                        sigs.remove_if(&h, |_, (_, stamp)| *stamp == entry.stamp);
                    }
                }
            }
        };
        let hot = &config.hot;
        let weights = hot
            .max_bytes
            .map(|max_bytes| WeightScale::new(hot.capacity, max_bytes, config.max_record_bytes));
        // Moka keeps its TinyLFU admission on top of our promotion sketch: with
        // `EvictionPolicy::lru()` instead, C (zipfian reads over 1M records) hit hot 58.6%
        // of the time instead of 61.2%, and was no faster (issue 11).
        let mut builder = Cache::builder()
            .time_to_live(Duration::from_secs(config.tiering.hot_to_warm_age))
            .eviction_listener(listener);
        builder = match &weights {
            Some(w) => builder
                .max_capacity(w.units())
                .weigher(|_k: &i64, e: &HotEntry<R>| e.weight),
            None => builder.max_capacity(hot.capacity),
        };
        let stripes = || (0..FILL_STRIPES).map(|_| AtomicU64::new(0)).collect();
        Self {
            inner: Arc::new(HotInner {
                cache: builder.build_with_hasher(IdHashBuilder::default()),
                sigs,
                counters,
                stripes: stripes(),
                in_flight: (0..FILL_STRIPES).map(|_| AtomicU32::new(0)).collect(),
                last_write: stripes(),
                stamps: AtomicU64::new(1),
                freq: FrequencySketch::new(hot.frequency_counters),
                stats: AccessStats::new(
                    config.clock.get(),
                    Duration::from_secs(config.metrics.window_secs),
                ),
                clock: config.clock.get(),
                ttl_ms: i64::try_from(config.tiering.hot_to_warm_age)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
                weights,
                max_record_bytes: config.max_record_bytes,
            }),
        }
    }

    fn stripe(id: i64) -> usize {
        (xxhash_rust::xxh3::xxh3_64(&id.to_le_bytes()) as usize) & (FILL_STRIPES - 1)
    }

    /// Look up by id, counting a hit or miss. Never leaves the calling thread.
    #[inline]
    pub(crate) fn lookup(&self, id: i64) -> Option<R> {
        self.lookup_shared(id).map(|r| R::clone(&r))
    }

    /// Look up by id and share the cached record (no copy), counting a hit or miss.
    #[inline]
    pub(crate) fn lookup_shared(&self, id: i64) -> Option<Arc<R>> {
        let start = Instant::now();
        let inner = &*self.inner;
        let now_ms = inner.clock.ms_at(start);
        let found = inner
            .cache
            .get(&id)
            .filter(|e| inner.live(id, e, now_ms))
            .map(|e| e.record);
        inner.stats.record_since(found.is_some(), start, now_ms);
        found
    }

    /// Look up by signature, counting a hit or miss.
    pub(crate) fn lookup_signature(&self, signature: &str) -> Option<R> {
        self.lookup_signature_shared(signature)
            .map(|r| R::clone(&r))
    }

    /// Look up by signature and share the cached record, counting a hit or miss.
    pub(crate) fn lookup_signature_shared(&self, signature: &str) -> Option<Arc<R>> {
        let start = Instant::now();
        let now_ms = self.inner.clock.ms_at(start);
        let found = self.peek_signature(signature, now_ms);
        self.inner
            .stats
            .record_since(found.is_some(), start, now_ms);
        found
    }

    fn peek_signature(&self, signature: &str, now_ms: i64) -> Option<Arc<R>> {
        let inner = &*self.inner;
        let h = signature_hash(signature);
        let (id, stamp) = *inner.sigs.get(&h)?;
        let e = inner.cache.get(&id)?;
        (e.stamp == stamp && e.record.signature() == Some(signature) && inner.live(id, &e, now_ms))
            .then_some(e.record)
    }

    /// Take a ticket before reading a lower tier for `id`.
    #[inline]
    pub(crate) fn fill_ticket(&self, id: i64) -> FillTicket {
        let stripe = Self::stripe(id);
        FillTicket {
            stripe,
            seen: self.inner.stripes[stripe].load(Ordering::Acquire),
        }
    }

    /// Start a write to the existing record `id`: evict it and hold off fills until the
    /// returned guard is finished or dropped. Call before sending the write to the lower tier.
    pub(crate) fn begin_write(&self, id: i64) -> WriteGuard<R> {
        let stripe = Self::stripe(id);
        self.inner.in_flight[stripe].fetch_add(1, Ordering::AcqRel);
        let seen = self.inner.stripes[stripe].fetch_add(1, Ordering::AcqRel) + 1;
        let mut was_cached = false;
        self.inner
            .cache
            .entry(id)
            .and_compute_with(|current| match current {
                Some(_) => {
                    was_cached = true;
                    Op::Remove
                }
                None => Op::Nop,
            });
        WriteGuard {
            inner: Arc::clone(&self.inner),
            id,
            stripe,
            seen,
            was_cached,
            committed: None,
        }
    }

    /// Cache a record that was just put with commit sequence `version`, unless an update or
    /// remove of its id is in flight or has finished since (it would be newer), or the id is
    /// already cached (a fill taken after the put's commit is at least as new).
    pub(crate) fn insert_put(&self, record: R, bytes: usize, version: u64) {
        let Some(id) = record.id() else { return };
        let stripe = Self::stripe(id);
        let inner = &*self.inner;
        let new = inner.make_entry(Arc::new(record), bytes);
        inner.cache.entry(id).and_compute_with(|current| {
            if current.is_some()
                || inner.in_flight[stripe].load(Ordering::Acquire) != 0
                || inner.last_write[stripe].load(Ordering::Acquire) > version
            {
                return Op::Nop;
            }
            inner.remap(id, None, &new);
            Op::Put(new)
        });
    }

    /// Evict `id` outside of any write (e.g. a direct tier call); in-flight fills are refused.
    pub(crate) fn invalidate(&self, id: i64) {
        drop(self.begin_write(id));
    }

    /// Cache a record read from a lower tier, unless a write to its stripe began, ended or is
    /// still in flight since `ticket` was taken. Returns whether it was inserted. The cache
    /// shares `record` with the caller (no copy).
    pub(crate) fn fill(&self, record: Arc<R>, bytes: usize, ticket: FillTicket) -> bool {
        let Some(id) = record.id() else { return false };
        let new = self.inner.make_entry(record, bytes);
        let mut inserted = false;
        self.inner.cache.entry(id).and_compute_with(|current| {
            let s = ticket.stripe;
            if current.is_some()
                || self.inner.in_flight[s].load(Ordering::Acquire) != 0
                || self.inner.stripes[s].load(Ordering::Acquire) != ticket.seen
            {
                return Op::Nop;
            }
            self.inner.remap(id, None, &new);
            inserted = true;
            Op::Put(new)
        });
        if inserted {
            self.inner
                .counters
                .promotions
                .fetch_add(1, Ordering::Relaxed);
        }
        inserted
    }

    /// Count one read of `id` that missed hot; returns the (approximate, saturating) count.
    pub(crate) fn touch(&self, id: i64) -> u8 {
        self.inner.freq.increment(id)
    }

    /// Whether `id` is cached (no hit/miss counted).
    pub fn contains_id(&self, id: i64) -> bool {
        self.inner.cache.contains_key(&id)
    }

    /// Number of cached records (after applying pending evictions).
    pub fn len(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.entry_count()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Configured record capacity.
    pub fn capacity(&self) -> u64 {
        match &self.inner.weights {
            Some(w) => w.capacity,
            None => self.inner.cache.policy().max_capacity().unwrap_or(u64::MAX),
        }
    }

    /// Drop every cached record. Lower tiers are untouched.
    pub fn clear(&self) {
        for stripe in self.inner.stripes.iter() {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
        self.inner.cache.invalidate_all();
        self.inner.cache.run_pending_tasks();
    }

    /// Counters snapshot (synchronous).
    pub fn metrics(&self) -> TierMetrics {
        self.inner.cache.run_pending_tasks();
        let mut m = TierMetrics {
            tier_name: "hot".to_owned(),
            record_count: self.inner.cache.entry_count(),
            capacity: Some(self.capacity()),
            capacity_bytes: self.inner.weights.as_ref().map(|w| w.max_bytes),
            bytes_stored: self.inner.counters.bytes.load(Ordering::Relaxed),
            evictions: self.inner.counters.evictions.load(Ordering::Relaxed),
            expirations: self.inner.counters.expirations.load(Ordering::Relaxed),
            promotions: self.inner.counters.promotions.load(Ordering::Relaxed),
            ..TierMetrics::default()
        };
        self.inner.stats.fill(&mut m);
        m
    }

    /// Apply moka's pending evictions and expirations now.
    pub(crate) fn run_pending_tasks(&self) {
        self.inner.cache.run_pending_tasks();
    }

    /// Size of the signature side map (equals the number of cached records with a signature
    /// once pending evictions have run).
    pub fn signature_map_len(&self) -> usize {
        self.inner.cache.run_pending_tasks();
        self.inner.sigs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::record::tests::sample;
    use crate::tier::StorageTier;

    fn hot(capacity: u64) -> HotMemoryStorage {
        HotMemoryStorage::new(&StorageConfig::default().with_hot_capacity(capacity))
    }

    fn stored(n: u64) -> TransactionRecord {
        let mut r = sample(n);
        r.id = Some(n as i64);
        r
    }

    #[test]
    fn hot_storage_lookup_by_id_and_signature() {
        let h = hot(100);
        h.insert_put(stored(1), 300, 1);
        assert_eq!(h.lookup(1).unwrap(), stored(1));
        let sig = stored(1).transaction_signature.unwrap();
        assert_eq!(h.lookup_signature(&sig).unwrap().id, Some(1));
        assert!(h.lookup(2).is_none());
        assert!(h.lookup_signature("nope").is_none());
        let m = h.metrics();
        assert_eq!((m.hits, m.misses, m.record_count), (2, 2, 1));
        assert_eq!(m.bytes_stored, 300);
    }

    #[test]
    fn hot_storage_newer_version_wins() {
        let h = hot(100);
        let mut v2 = stored(1);
        v2.actual_outcome = crate::record::Outcome::Profit(1.5);
        h.insert_put(v2.clone(), 300, 2);
        h.insert_put(stored(1), 300, 1); // an older commit arriving late
        assert_eq!(h.lookup(1).unwrap(), v2);
    }

    #[test]
    fn hot_storage_signature_change_moves_the_side_map() {
        let h = hot(100);
        h.insert_put(stored(1), 300, 1);
        let old_sig = stored(1).transaction_signature.unwrap();
        let mut changed = stored(1);
        changed.transaction_signature = Some("new-signature".into());
        h.begin_write(1).finish(changed, 300, 2, false);
        assert!(h.lookup_signature(&old_sig).is_none());
        assert_eq!(h.lookup_signature("new-signature").unwrap().id, Some(1));
        assert_eq!(h.signature_map_len(), 1);
    }

    #[test]
    fn hot_storage_fill_loses_to_a_racing_write() {
        let h = hot(100);
        let ticket = h.fill_ticket(1);
        h.invalidate(1); // a remove commits while the reader was in the warm tier
        assert!(!h.fill(Arc::new(stored(1)), 300, ticket));
        assert!(h.lookup(1).is_none());
        // A ticket taken while a write is in flight is refused during and after the write.
        let guard = h.begin_write(1);
        let during = h.fill_ticket(1);
        assert!(!h.fill(Arc::new(stored(1)), 300, during));
        drop(guard);
        assert!(!h.fill(Arc::new(stored(1)), 300, during));
        let ticket = h.fill_ticket(1);
        assert!(h.fill(Arc::new(stored(1)), 300, ticket));
        assert_eq!(h.metrics().promotions, 1);
    }

    #[test]
    fn hot_storage_write_evicts_before_commit_and_overlapping_writes_leave_it_uncached() {
        let h = hot(100);
        h.insert_put(stored(1), 300, 1);
        let g = h.begin_write(1);
        assert!(
            h.lookup(1).is_none(),
            "evicted while the write is in flight"
        );
        let mut v2 = stored(1);
        v2.actual_outcome = crate::record::Outcome::Neutral;
        g.finish(v2.clone(), 300, 2, false);
        assert_eq!(h.lookup(1).unwrap(), v2, "re-cached after a lone write");
        // Two overlapping writes: neither may re-cache (the later commit could lose).
        let g1 = h.begin_write(1);
        let g2 = h.begin_write(1);
        g1.finish(stored(1), 300, 3, true);
        g2.finish(v2, 300, 4, true);
        assert!(h.lookup(1).is_none());
    }

    /// A put's late cache insert loses to an update or remove of the same id that is in flight
    /// or finished after the put committed, and never replaces an existing entry.
    #[test]
    fn hot_storage_put_insert_loses_to_later_writes() {
        let h = hot(100);
        // An update of id 1 is in flight when the put (seq 5) gets to its cache insert.
        let mut g = h.begin_write(1);
        h.insert_put(stored(1), 300, 5);
        assert!(h.lookup(1).is_none(), "refused while a write is in flight");
        // The update committed at seq 6 and finished without re-caching.
        g.committed(6);
        drop(g);
        h.insert_put(stored(1), 300, 5);
        assert!(
            h.lookup(1).is_none(),
            "refused after a newer write finished"
        );
        // A put newer than every finished write on the stripe is cached.
        h.insert_put(stored(1), 300, 7);
        assert_eq!(h.lookup(1).unwrap().id, Some(1));
        // And an existing entry is never replaced by a put.
        let mut other = stored(1);
        other.actual_outcome = crate::record::Outcome::Neutral;
        h.insert_put(other, 300, 8);
        assert_eq!(h.lookup(1).unwrap(), stored(1));
    }

    #[test]
    fn hot_storage_evicts_to_capacity_and_keeps_side_map_consistent() {
        let h = hot(50);
        for n in 0..500 {
            h.insert_put(stored(n), 300, n + 1);
        }
        let len = h.len();
        assert!(len <= 50, "len {len}");
        assert_eq!(h.signature_map_len() as u64, len);
        let m = h.metrics();
        assert!(m.evictions >= 450, "{m:?}");
        assert_eq!(m.bytes_stored, len * 300);
        // Every mapping resolves to a cached record with that signature.
        for n in 0..500 {
            let sig = stored(n).transaction_signature.unwrap();
            if let Some(r) = h.lookup_signature(&sig) {
                assert_eq!(r.id, Some(n as i64));
            }
        }
    }

    #[test]
    fn hot_storage_byte_bound_and_count_bound_both_hold() {
        let mut config = StorageConfig::default().with_hot_capacity(1000);
        config.hot.max_bytes = Some(30_000);
        let h: HotMemoryStorage = HotMemoryStorage::new(&config);
        for n in 0..1000 {
            h.insert_put(stored(n), 1000, n + 1);
        }
        let m = h.metrics();
        assert!(m.bytes_stored <= 30_000, "{m:?}");
        assert!(
            m.record_count >= 20,
            "byte bound should allow ~30 records: {m:?}"
        );
        // Small records: the count bound binds.
        let h: HotMemoryStorage = HotMemoryStorage::new(&config);
        for n in 0..2000 {
            h.insert_put(stored(n), 10, n + 1);
        }
        assert!(h.len() <= 1000, "{}", h.len());
    }

    #[test]
    fn hot_storage_id_hasher_spreads_sequential_ids() {
        use std::hash::BuildHasher;
        let b = IdHashBuilder::default();
        let mut buckets = [0u32; 64];
        for id in 0..64_000i64 {
            buckets[(b.hash_one(id) % 64) as usize] += 1;
        }
        // 1000 expected per bucket; a poor mix of sequential keys piles them up.
        assert!(
            buckets.iter().all(|&n| (800..1200).contains(&n)),
            "{buckets:?}"
        );
        assert_eq!(b.hash_one(42i64), b.clone().hash_one(42i64));
    }

    #[test]
    fn hot_storage_frequency_sketch_counts_and_ages() {
        let s = FrequencySketch::new(64);
        assert_eq!(s.increment(7), 1);
        assert_eq!(s.increment(7), 2);
        assert_eq!(s.increment(7), 3);
        // 64 counters reset after 640 additions: the count saturates at 255, then halves.
        let counts: Vec<u8> = (3..700).map(|_| s.increment(7)).collect();
        assert_eq!(counts[300], 255, "saturates instead of wrapping");
        let last = *counts.last().unwrap();
        assert!(
            (127..255).contains(&last),
            "halving must age old counts: {last}"
        );
    }

    #[tokio::test]
    async fn hot_storage_trait_put_needs_an_id() {
        let h = hot(10);
        let err = StorageTier::put(&h, &sample(1)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRecord { .. }));
        assert_eq!(StorageTier::put(&h, &stored(3)).await.unwrap(), 3);
        assert!(h.contains(3).await.unwrap());
        assert!(h.remove(3).await.unwrap());
        assert!(!h.contains(3).await.unwrap());
    }
}
