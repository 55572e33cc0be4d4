//! The replicas of an object-store cold tier (`cold.replicas`): each one a store built from its
//! [`ReplicaConfig`] by the same client builder as the primary, named by
//! [`ReplicaConfig::display_name`].
//!
//! - Failover reads: a read the primary fails (an error, a timeout, or a missing object) is
//!   tried on each replica in order; one a replica serves counts as a failover of the primary.
//!   Each store counts its failed reads and its consecutive failures (reset by a success),
//!   which raise the `ColdStoreFailing` alert at `cold.failover_alert_after`.
//! - The requests the replicator (`cold_storage/replicate.rs`) and `verify_cold` make: HEAD,
//!   create-only or overwriting PUT, DELETE.
//! - Sync mode (`cold.replication_sync`): [`ObjectColdStore::publish_to_replicas`] copies a
//!   freshly uploaded object to every replica before its catalog commit.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::Mutex;

use super::ObjectColdStore;
use crate::cold_storage::replicate::{StoreFailureMetrics, TokenBucket};
use crate::cold_storage::store::{is_missing, missing};
use crate::config::{ColdConfig, ReplicaConfig};
use crate::error::{Error, Result};

/// Read-failure counters of one store (the primary or a replica).
#[derive(Debug, Default)]
pub(crate) struct StoreCounters {
    /// Reads that failed on this store (not counting objects it did not hold).
    failed_reads: AtomicU64,
    /// Reads it failed that another store then served.
    failovers: AtomicU64,
    /// Reads failed in a row; a success resets it.
    consecutive: AtomicU64,
}

impl StoreCounters {
    fn failed(&self) {
        self.failed_reads.fetch_add(1, Ordering::Relaxed);
        self.consecutive.fetch_add(1, Ordering::Relaxed);
    }

    fn succeeded(&self) {
        // A plain store of 0 on every successful read would bounce the cache line; only reset
        // what is set.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }
}

/// One replica.
pub(crate) struct ReplicaStore {
    name: String,
    /// `s3://bucket/prefix` (or `memory://name`), for messages.
    url: String,
    client: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    counters: StoreCounters,
    /// Replication's rate limit to this replica.
    bucket: Mutex<TokenBucket>,
    /// Keys a sync-mode upload put on this replica that the catalog does not mark yet.
    synced: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for ReplicaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaStore")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The replicas, and the primary's read-failure counters.
#[derive(Debug, Default)]
pub(crate) struct Replicas {
    list: Vec<ReplicaStore>,
    primary: StoreCounters,
    /// `cold.replication_sync`.
    sync: bool,
}

/// A store built from a config: its client, its key prefix, and its URL for messages.
pub(crate) type BuiltStore = (Arc<dyn ObjectStore>, ObjPath, String);

impl Replicas {
    /// The replicas of `cfg`, each built by `build`.
    pub(crate) fn new(
        cfg: &ColdConfig,
        build: impl Fn(&ReplicaConfig) -> Result<BuiltStore>,
    ) -> Result<Self> {
        let mut list = Vec::with_capacity(cfg.replicas.len());
        for rc in &cfg.replicas {
            let (client, prefix, url) = build(rc)?;
            list.push(ReplicaStore {
                name: rc.display_name(),
                url,
                client,
                prefix,
                counters: StoreCounters::default(),
                bucket: Mutex::new(TokenBucket::new(cfg.replication_max_bytes_per_sec)),
                synced: Mutex::new(HashSet::new()),
            });
        }
        Ok(Self {
            list,
            primary: StoreCounters::default(),
            sync: cfg.replication_sync,
        })
    }
}

/// Whether a PUT wrote the object or found one there (create-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutDone {
    Written,
    Exists,
}

impl ReplicaStore {
    fn location(&self, key: &str) -> ObjPath {
        let mut p = self.prefix.clone();
        for part in key.split('/') {
            p = p.clone().join(part);
        }
        p
    }

    /// `url/key`, for messages.
    fn path_of(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("{}/{key}", self.url.trim_end_matches('/')))
    }

    /// The error of request `op` on `key`: a missing object is [`missing`], anything else an
    /// [`Error::Io`] naming the replica's URL (never a secret).
    fn error(&self, op: &'static str, key: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => {
                missing(self.path_of(key), format!("not on replica {}", self.name))
            }
            e => Error::Io {
                op,
                path: self.path_of(key),
                source: std::io::Error::other(e.to_string()),
            },
        }
    }
}

impl ObjectColdStore {
    /// How many replicas there are.
    pub(crate) fn replica_count(&self) -> usize {
        self.replicas.list.len()
    }

    /// The name of replica `r`.
    pub(crate) fn replica_name(&self, r: usize) -> &str {
        &self.replicas.list[r].name
    }

    /// Run one request to replica `r`, bounded by `cold.s3_timeout_secs`.
    fn replica_request<T: Send + 'static>(
        &self,
        r: usize,
        op: &'static str,
        key: &str,
        fut: impl std::future::Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T> {
        let replica = &self.replicas.list[r];
        match self.run_timed(fut) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(replica.error(op, key, e)),
            None => Err(Error::Io {
                op,
                path: replica.path_of(key),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", self.timeout().as_secs()),
                ),
            }),
        }
    }

    /// The length of replica `r`'s copy of `key` (HEAD); `None` when it holds none.
    pub(crate) fn replica_len(&self, r: usize, key: &str) -> Result<Option<u64>> {
        let replica = &self.replicas.list[r];
        let (client, loc) = (Arc::clone(&replica.client), replica.location(key));
        match self.replica_request(r, "head replica object", key, async move {
            client.head(&loc).await
        }) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write `data` as replica `r`'s copy of `key`: create-only (`create`), or overwriting.
    pub(crate) fn replica_put(
        &self,
        r: usize,
        key: &str,
        data: Bytes,
        create: bool,
    ) -> Result<PutDone> {
        let replica = &self.replicas.list[r];
        let (client, loc) = (Arc::clone(&replica.client), replica.location(key));
        let opts = PutOptions {
            mode: if create {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            ..PutOptions::default()
        };
        let result = self.replica_request(r, "put replica object", key, async move {
            match client.put_opts(&loc, PutPayload::from(data), opts).await {
                Ok(_) => Ok(PutDone::Written),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(PutDone::Exists),
                Err(e) => Err(e),
            }
        });
        result
    }

    /// Delete replica `r`'s copy of `key`; one that is not there is fine.
    pub(crate) fn replica_delete(&self, r: usize, key: &str) -> Result<()> {
        let replica = &self.replicas.list[r];
        let (client, loc) = (Arc::clone(&replica.client), replica.location(key));
        match self.replica_request(r, "delete replica object", key, async move {
            client.delete(&loc).await
        }) {
            Err(e) if is_missing(&e) => Ok(()),
            other => other,
        }
    }

    /// Delete `key` from every replica (the intent sweep, after the primary's delete). Every
    /// replica is tried; the first error is returned, so the sweep keeps the intent and the
    /// next sweep tries again.
    pub(crate) fn delete_from_replicas(&self, key: &str) -> Result<()> {
        let mut first = Ok(());
        for r in 0..self.replica_count() {
            if let Err(e) = self.replica_delete(r, key) {
                tracing::warn!(replica = %self.replica_name(r), key, error = %e, "could not delete an object from a replica; the intent is kept for the next sweep");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Ranges of `key` from replica `r`.
    fn replica_ranges(&self, r: usize, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let replica = &self.replicas.list[r];
        let (client, loc) = (Arc::clone(&replica.client), replica.location(key));
        let ranges = ranges.to_vec();
        self.replica_request(r, "read replica object", key, async move {
            client.get_ranges(&loc, &ranges).await
        })
    }

    /// Called with the primary's answer to a read of `ranges` of `key`: a success resets the
    /// primary's failure count; a failure (an error, a timeout or a missing object) is tried
    /// on each replica in order. A read a replica serves is a failover of the primary. When no
    /// replica serves it, the primary's error is returned (so a missing object stays
    /// [`is_missing`] for the reader's compaction check).
    pub(crate) fn fail_over(
        &self,
        key: &str,
        ranges: &[Range<u64>],
        primary: Result<Vec<Bytes>>,
    ) -> Result<Vec<Bytes>> {
        let err = match primary {
            Ok(v) => {
                self.replicas.primary.succeeded();
                return Ok(v);
            }
            Err(e) => e,
        };
        let primary_missing = is_missing(&err);
        if !primary_missing {
            self.replicas.primary.failed();
        }
        for r in 0..self.replica_count() {
            let replica = &self.replicas.list[r];
            match self.replica_ranges(r, key, ranges) {
                Ok(v) => {
                    replica.counters.succeeded();
                    self.replicas
                        .primary
                        .failovers
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(key, replica = %replica.name, primary_error = %err, "cold read failed over to a replica");
                    return Ok(v);
                }
                Err(e) => {
                    if !is_missing(&e) {
                        replica.counters.failed();
                    }
                    tracing::warn!(key, replica = %replica.name, error = %e, "cold read failed on a replica too");
                }
            }
        }
        Err(err)
    }

    /// The whole of `key` (`bytes` long, as catalogued) for a copy to replica `exclude`:
    /// through the read path (range cache, primary, the replicas), its size checked.
    pub(crate) fn read_for_copy(
        &self,
        key: &str,
        bytes: u64,
        exclude: Option<usize>,
    ) -> Result<Bytes> {
        let _ = exclude;
        let data = self.read_whole(key, bytes)?;
        if data.len() as u64 != bytes {
            return Err(crate::cold_storage::replicate::size_error(
                self.path_of_key(key),
                data.len() as u64,
                bytes,
            ));
        }
        Ok(data)
    }

    /// Sync mode: copy the object just uploaded under `key` (`data`, its bytes) to every
    /// replica before its catalog commit. A copy already there of the right size is fine; a
    /// wrong-size one is overwritten (and logged). Any failure fails the publish, so the move
    /// fails and warm keeps its rows. Does nothing unless `cold.replication_sync` is set.
    pub(crate) fn publish_to_replicas(&self, key: &str, data: &Bytes) -> Result<()> {
        if !self.replicas.sync {
            return Ok(());
        }
        let len = data.len() as u64;
        for r in 0..self.replica_count() {
            let done = self.replica_put(r, key, data.clone(), true)?;
            if done == PutDone::Exists {
                match self.replica_len(r, key)? {
                    Some(found) if found == len => {}
                    found => {
                        tracing::warn!(replica = %self.replica_name(r), key, ?found, expected = len, "replica copy has the wrong size; overwriting it");
                        self.replica_put(r, key, data.clone(), false)?;
                    }
                }
            }
            self.replicas.list[r].synced.lock().insert(key.to_owned());
        }
        Ok(())
    }

    /// Whether a sync-mode upload put `key` on replica `r` (forgotten once asked: the caller
    /// marks it in the catalog).
    pub(crate) fn take_synced(&self, r: usize, key: &str) -> bool {
        self.replicas.list[r].synced.lock().remove(key)
    }

    /// How long replication to replica `r` must wait for its rate limit.
    pub(crate) fn replica_bucket_wait(&self, r: usize) -> Duration {
        self.replicas.list[r].bucket.lock().wait()
    }

    /// Charge a copy of `bytes` to replica `r`'s rate limit.
    pub(crate) fn replica_bucket_take(&self, r: usize, bytes: u64) {
        self.replicas.list[r].bucket.lock().take(bytes);
    }

    /// Read-failure figures of the primary and of each replica.
    pub(crate) fn failure_metrics(&self) -> Vec<StoreFailureMetrics> {
        let figures = |store: String, c: &StoreCounters| StoreFailureMetrics {
            store,
            failed_reads: c.failed_reads.load(Ordering::Relaxed),
            failovers: c.failovers.load(Ordering::Relaxed),
            consecutive_failures: c.consecutive.load(Ordering::Relaxed),
        };
        std::iter::once(figures("primary".to_owned(), &self.replicas.primary))
            .chain(
                self.replicas
                    .list
                    .iter()
                    .map(|r| figures(r.name.clone(), &r.counters)),
            )
            .collect()
    }
}
