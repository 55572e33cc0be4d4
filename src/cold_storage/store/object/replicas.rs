//! The replicas of an object-store cold tier (`cold.replicas`): each one a [`Remote`] built
//! from its [`ReplicaConfig`] by the same client builder as the primary, named by
//! [`ReplicaConfig::display_name`].
//!
//! - Failover reads ([`ObjectColdStore::read_with_failover`]): a read the primary fails (an
//!   error, a timeout, or a missing object) is tried on each replica in order; one a replica
//!   serves counts as a failover of the primary. Each store counts its failed reads
//!   (`Remote`'s counters) and its reads failed in a row, reset by a success, which raise the
//!   `ColdStoreFailing` alert at `cold.failover_alert_after`. From then on reads go to the
//!   replicas first, and the primary is asked again every [`PRIMARY_PROBE_AFTER`]: a primary
//!   that is down costs its timeout and retries once per period, not once per read.
//! - The requests the replicator (`cold_storage/replicate.rs`) and `verify_cold` make: HEAD,
//!   create-only or overwriting PUT, DELETE.
//! - Deletes ([`ObjectColdStore::delete_from_replicas`], from `delete_everywhere`): every
//!   replica is asked; one that fails fails the call, so the intent sweep keeps the intent.
//! - Sync mode (`cold.replication_sync`): [`ObjectColdStore::publish_to_replicas`] copies a
//!   freshly uploaded object to every replica before its catalog commit.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::{PutMode, PutOptions, PutPayload};
use parking_lot::Mutex;

use super::{
    scaled, Failure, ObjectColdStore, ObjectStoreCounters, Remote, StoreCounters, StoreSpec,
};
use crate::cold_storage::replicate::TokenBucket;
use crate::cold_storage::store::is_missing;
use crate::config::{ColdConfig, ReplicaConfig};
use crate::error::Result;

/// How long reads skip a primary that failed `cold.failover_alert_after` reads in a row,
/// before one is sent to it again.
pub(crate) const PRIMARY_PROBE_AFTER: Duration = Duration::from_secs(2);

/// One replica: its client and counters, and what replication keeps for it.
#[derive(Debug)]
struct Replica {
    remote: Remote,
    /// Reads failed in a row.
    consecutive: AtomicU64,
    /// Replication's rate limit to this replica.
    bucket: Mutex<TokenBucket>,
    /// Keys a sync-mode upload put on this replica that the catalog does not mark yet.
    synced: Mutex<HashSet<String>>,
}

/// The replicas, and the primary's reads failed in a row.
#[derive(Debug, Default)]
pub(crate) struct Replicas {
    list: Vec<Replica>,
    primary_consecutive: AtomicU64,
    /// Reads go to the replicas first until then (the primary kept failing).
    skip_primary_until: Mutex<Option<Instant>>,
    /// `cold.failover_alert_after`: failures in a row after which the primary is skipped
    /// (0: never).
    trip_after: u64,
    /// `cold.replication_sync`.
    sync: bool,
}

impl Replicas {
    /// The replicas of `cfg` (no request is made).
    pub(crate) fn new(cfg: &ColdConfig) -> Result<Self> {
        let list = cfg
            .replicas
            .iter()
            .map(|rc: &ReplicaConfig| {
                Ok(Replica {
                    remote: Remote::build(&rc.display_name(), &StoreSpec::replica(cfg, rc))?,
                    consecutive: AtomicU64::new(0),
                    bucket: Mutex::new(TokenBucket::new(cfg.replication_max_bytes_per_sec)),
                    synced: Mutex::new(HashSet::new()),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            list,
            primary_consecutive: AtomicU64::new(0),
            skip_primary_until: Mutex::new(None),
            trip_after: cfg.failover_alert_after,
            sync: cfg.replication_sync,
        })
    }
}

fn failed(consecutive: &AtomicU64) {
    consecutive.fetch_add(1, Ordering::Relaxed);
}

fn succeeded(consecutive: &AtomicU64) {
    // Only write what is set: a store on every successful read would bounce the cache line.
    if consecutive.load(Ordering::Relaxed) != 0 {
        consecutive.store(0, Ordering::Relaxed);
    }
}

/// Whether a PUT wrote the object or found one there (create-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutDone {
    Written,
    Exists,
}

impl ObjectColdStore {
    fn replicas(&self) -> &Replicas {
        &self.inner.replicas
    }

    fn replica(&self, r: usize) -> &Remote {
        &self.replicas().list[r].remote
    }

    /// How many replicas there are.
    pub(crate) fn replica_count(&self) -> usize {
        self.replicas().list.len()
    }

    /// The name of replica `r`.
    pub(crate) fn replica_name(&self, r: usize) -> &str {
        &self.replica(r).name
    }

    /// The length of replica `r`'s copy of `key` (HEAD); `None` when it holds none.
    pub(crate) fn replica_len(&self, r: usize, key: &str) -> Result<Option<u64>> {
        Ok(self
            .replica(r)
            .head(self.bridge(), key, self.timeout())?
            .map(|s| s.len))
    }

    /// Write `data` as replica `r`'s copy of `key`: create-only (`create`), or overwriting.
    pub(crate) fn replica_put(
        &self,
        r: usize,
        key: &str,
        data: Bytes,
        create: bool,
    ) -> Result<PutDone> {
        let remote = self.replica(r);
        let len = data.len() as u64;
        StoreCounters::add(&remote.counters.puts, 1);
        let (store, loc) = (Arc::clone(&remote.store), remote.location(key));
        let opts = PutOptions {
            mode: if create {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            ..PutOptions::default()
        };
        let op = if create { "PUT (create)" } else { "PUT" };
        let done = remote.call(
            self.bridge(),
            op,
            key,
            scaled(self.timeout(), len),
            async move {
                match store.put_opts(&loc, PutPayload::from(data), opts).await {
                    Ok(_) => Ok(PutDone::Written),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(PutDone::Exists),
                    Err(e) => Err(Failure::Store(e)),
                }
            },
        )?;
        if done == PutDone::Written {
            StoreCounters::add(&remote.counters.put_bytes, len);
        }
        Ok(done)
    }

    /// Delete replica `r`'s copy of `key`; one that is not there is fine.
    pub(crate) fn replica_delete(&self, r: usize, key: &str) -> Result<()> {
        self.replica(r).delete(self.bridge(), key, self.timeout())
    }

    /// Delete `key` from every replica (the intent sweep, after the primary's delete). Every
    /// replica is asked; the first error is returned, so the sweep keeps the intent and the
    /// next sweep tries again.
    pub(crate) fn delete_from_replicas(&self, key: &str) -> Result<()> {
        let mut first = Ok(());
        for r in 0..self.replica_count() {
            if let Err(e) = self.replica_delete(r, key) {
                tracing::warn!(replica = %self.replica_name(r), key, error = %e, "could not delete an object from a replica; its intent is kept for the next sweep");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Read `ranges` of `key` with `primary` (the primary's ranged GET), failing over: a
    /// success resets the primary's failures in a row; a failure (an error, a timeout, or a
    /// missing object) is tried on each replica in order. A read a replica serves is a
    /// failover of the primary. When no replica serves it, the primary's error is returned
    /// (so a missing object stays [`is_missing`] for the reader's compaction check). While the
    /// primary is skipped (it kept failing), the replicas are asked first.
    pub(crate) fn read_with_failover(
        &self,
        key: &str,
        ranges: &[Range<u64>],
        primary: impl FnOnce() -> Result<Vec<Bytes>>,
    ) -> Result<Vec<Bytes>> {
        let replicas = self.replicas();
        if replicas.list.is_empty() {
            return primary();
        }
        if self.primary_skipped() {
            if let Some(v) = self.read_replicas(key, ranges, None) {
                return Ok(v);
            }
            // Every replica failed too: the primary is the last hope.
            return primary()
                .inspect(|_| self.primary_succeeded())
                .inspect_err(|e| self.primary_failed(e));
        }
        let err = match primary() {
            Ok(v) => {
                self.primary_succeeded();
                return Ok(v);
            }
            Err(e) => e,
        };
        self.primary_failed(&err);
        self.read_replicas(key, ranges, Some(&err)).ok_or(err)
    }

    /// Whether reads skip the primary now.
    fn primary_skipped(&self) -> bool {
        let mut until = self.replicas().skip_primary_until.lock();
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                // Time to ask it again (one read probes it; a failure skips it once more).
                *until = None;
                false
            }
            None => false,
        }
    }

    fn primary_succeeded(&self) {
        succeeded(&self.replicas().primary_consecutive);
    }

    /// Count a failed primary read; past `cold.failover_alert_after` in a row, skip the
    /// primary for [`PRIMARY_PROBE_AFTER`]. A missing object is not the store failing
    /// (compaction's race, or a lost object the replicas may still hold).
    fn primary_failed(&self, err: &crate::error::Error) {
        if is_missing(err) {
            return;
        }
        let replicas = self.replicas();
        failed(&replicas.primary_consecutive);
        let in_a_row = replicas.primary_consecutive.load(Ordering::Relaxed);
        if replicas.trip_after > 0 && in_a_row >= replicas.trip_after {
            let mut until = replicas.skip_primary_until.lock();
            if until.is_none() {
                tracing::warn!(
                    in_a_row,
                    probe_after_secs = PRIMARY_PROBE_AFTER.as_secs(),
                    "the primary cold store keeps failing; reads go to the replicas first"
                );
            }
            *until = Some(Instant::now() + PRIMARY_PROBE_AFTER);
        }
    }

    /// `ranges` of `key` from the first replica that serves them, counted as a failover of
    /// the primary (which failed with `primary_err`, or is skipped); `None` when none does.
    fn read_replicas(
        &self,
        key: &str,
        ranges: &[Range<u64>],
        primary_err: Option<&crate::error::Error>,
    ) -> Option<Vec<Bytes>> {
        for replica in &self.replicas().list {
            match replica
                .remote
                .get_ranges(self.bridge(), key, ranges, self.timeout())
            {
                Ok(v) => {
                    succeeded(&replica.consecutive);
                    StoreCounters::add(&self.primary().counters.failovers, 1);
                    match primary_err {
                        Some(err) => {
                            tracing::warn!(key, replica = %replica.remote.name, primary_error = %err, "cold read failed over to a replica")
                        }
                        None => {
                            tracing::debug!(key, replica = %replica.remote.name, "cold read served by a replica (the primary is skipped)")
                        }
                    }
                    return Some(v);
                }
                Err(e) => {
                    if !is_missing(&e) {
                        failed(&replica.consecutive);
                    }
                    tracing::warn!(key, replica = %replica.remote.name, error = %e, "cold read failed on a replica");
                }
            }
        }
        None
    }

    /// The whole of `key`, `bytes` long as catalogued, for a copy to a replica: through the
    /// read path (range cache, primary, then the replicas), its length checked against the
    /// primary's (whose ETag keys the cache).
    pub(crate) fn read_for_copy(&self, key: &str, bytes: u64) -> Result<Bytes> {
        use crate::cold_storage::store::{ColdStore, ObjectStat};
        let stat = match self.stat(key) {
            Ok(Some(stat)) if stat.len == bytes => stat,
            Ok(Some(stat)) => {
                return Err(crate::cold_storage::replicate::size_error(
                    self.path_of(key),
                    stat.len,
                    bytes,
                ))
            }
            Ok(None) => {
                return Err(crate::cold_storage::store::missing(
                    self.path_of(key),
                    "not on the primary",
                ))
            }
            // The primary is down: the read fails over.
            Err(_) => ObjectStat {
                len: bytes,
                etag: None,
            },
        };
        let whole = 0..bytes;
        let whole = std::slice::from_ref(&whole);
        let mut got = self.read_object_ranges(key, &stat, whole)?;
        Ok(got.pop().unwrap_or_default())
    }

    /// Sync mode: copy the object just uploaded under `key` (`data`, its bytes) to every
    /// replica before its catalog commit. A copy already there of the right size is fine; a
    /// wrong-size one is overwritten (and logged). Any failure fails the publish, so the move
    /// fails and warm keeps its rows (the intent recorded before the upload gets the object
    /// swept from every store). Does nothing unless `cold.replication_sync` is set.
    pub(crate) fn publish_to_replicas(&self, key: &str, data: &Bytes) -> Result<()> {
        if !self.replicas().sync {
            return Ok(());
        }
        let len = data.len() as u64;
        for r in 0..self.replica_count() {
            if self.replica_put(r, key, data.clone(), true)? == PutDone::Exists {
                match self.replica_len(r, key)? {
                    Some(found) if found == len => {}
                    found => {
                        tracing::warn!(replica = %self.replica_name(r), key, ?found, expected = len, "replica copy has the wrong size; overwriting it");
                        self.replica_put(r, key, data.clone(), false)?;
                    }
                }
            }
            self.replicas().list[r].synced.lock().insert(key.to_owned());
        }
        Ok(())
    }

    /// Whether a sync-mode upload put `key` on replica `r` (forgotten once asked: the caller
    /// marks it in the catalog).
    pub(crate) fn take_synced(&self, r: usize, key: &str) -> bool {
        self.replicas().list[r].synced.lock().remove(key)
    }

    /// How long replication to replica `r` must wait for its rate limit.
    pub(crate) fn replica_bucket_wait(&self, r: usize) -> Duration {
        self.replicas().list[r].bucket.lock().wait()
    }

    /// Charge a copy of `bytes` to replica `r`'s rate limit.
    pub(crate) fn replica_bucket_take(&self, r: usize, bytes: u64) {
        self.replicas().list[r].bucket.lock().take(bytes);
    }

    /// The replicas' request counters, in config order, each with its reads failed in a row.
    pub(crate) fn replica_counters(&self) -> Vec<ObjectStoreCounters> {
        self.replicas()
            .list
            .iter()
            .map(|r| {
                let mut c = r.remote.counters.snapshot(&r.remote.name);
                c.consecutive_failures = r.consecutive.load(Ordering::Relaxed);
                c
            })
            .collect()
    }

    /// The primary's reads failed in a row.
    pub(crate) fn primary_consecutive_failures(&self) -> u64 {
        self.replicas().primary_consecutive.load(Ordering::Relaxed)
    }
}
