//! [`ObjectColdStore`]: cold files in an object store (S3 through `object_store`, or its
//! in-process `InMemory` store for tests), behind the same [`ColdStore`] seam as the local
//! directory. The layout in the bucket is the layout on disk: `<prefix>/<key>`.
//!
//! - **Staging.** A file is written to `<data_dir>/cold-staging/<key>.tmp` (the same code as
//!   [`LocalStore`]'s staged files), checksummed there, then [`publish`](ColdStore::publish)
//!   uploads it under its key with a create-only conditional PUT (`PutMode::Create`, S3's
//!   `If-None-Match: *`): a key is written once, and a second writer gets a typed error
//!   instead of replacing it. The caller then checks the size and takes the ETag with one
//!   HEAD ([`stat`](ColdStore::stat)).
//!
//!   *Single PUT, not multipart.* object_store 0.14 has no create-only multipart upload:
//!   `PutMultipartOptions` carries no `PutMode`, and the `If-None-Match` on
//!   CompleteMultipartUpload is used only inside its copy-if-not-exists. A multipart upload
//!   would overwrite an existing object, so files go up in one create-only PUT (S3 allows
//!   5 GiB; larger files are refused, and the cold target size is 128 MiB).
//! - **Reads.** The catalog knows each file's length and ETag, so
//!   [`open_known`](ColdStore::open_known) costs no request; [`ObjectRead::read_ranges`]
//!   fetches the ranges a lookup needs in as few ranged GETs as object_store's coalescing
//!   gives ([`ObjectColdStore::read_object_ranges`]: the range cache and replica failover plug
//!   in there).
//! - **Requests** run on a small runtime of the store's own ([`bridge`]), each bounded by
//!   `cold.s3_timeout_secs`; transient errors (5xx, timeouts, connection resets) are retried
//!   by object_store's `RetryConfig` (`cold.s3_max_retries`, exponential backoff).
//! - **Errors.** A missing object is [`super::missing`]; every other failure is
//!   [`Error::Io`] naming the request and `s3://bucket/key`. Nothing formats a secret.
//! - **Deletes** are not durable-by-sync (an object store has no directory to fsync):
//!   [`sync`](ColdStore::sync) does nothing. Moves never delete a replaced object at once;
//!   the intent sweep does, after a grace period (`cold_storage/sweep.rs`).
//! - **Listing** is per prefix with a delimiter, used only by tools (`rebuild_cold_catalog`),
//!   never by open or reads.
//! - **Replicas** (`cold.replicas`, [`replicas`]): reads fail over to them, deletes reach
//!   them, sync mode uploads to them before the commit; `failing.rs` is the switch tests use
//!   to take a `memory://` store down.

mod bridge;
pub(crate) mod cache;
mod client;
mod failing;
mod replicas;

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;

use super::{ColdStore, Exported, LocalStore, ObjectStat, RangeRead, StagedWrite};
use crate::cold_storage::deletes::DELETES_DIR;
use crate::config::ColdConfig;
use crate::error::{Error, Result};

pub(crate) use bridge::Bridge;
use cache::{BlockCache, CachedObject};
pub(crate) use client::{build, Built, StoreSpec};
pub use client::{drop_memory_store, memory_store};
pub use failing::set_memory_store_failing;
pub(crate) use replicas::PutDone;

/// Directory of the range cache inside the data directory, unless `cold.cache_dir` says.
const CACHE_DIR: &str = "cold-cache";
/// Directory of staged files inside the data directory.
pub const STAGING_DIR: &str = "cold-staging";

/// The largest object one create-only PUT may upload (S3's single-PUT limit).
const MAX_SINGLE_PUT: u64 = 5 << 30;

/// Uploads and downloads get `s3_timeout_secs` per this many bytes (at least once).
const TIMEOUT_BYTES: u64 = 64 << 20;

/// Requests of one object store, counted since open.
#[derive(Debug, Default)]
pub(crate) struct StoreCounters {
    pub gets: AtomicU64,
    pub get_bytes: AtomicU64,
    pub puts: AtomicU64,
    pub put_bytes: AtomicU64,
    pub deletes: AtomicU64,
    pub heads: AtomicU64,
    pub lists: AtomicU64,
    /// Reads (ranged GETs of a lookup or scan) that failed on this store.
    pub failed_reads: AtomicU64,
    /// Requests of any kind that failed (after their retries) or timed out.
    pub failed_requests: AtomicU64,
    /// Reads this store failed that another store then answered (replicas, workstream C).
    pub failovers: AtomicU64,
}

impl StoreCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot, named `name`.
    pub(crate) fn snapshot(&self, name: &str) -> ObjectStoreCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ObjectStoreCounters {
            name: name.to_owned(),
            gets: get(&self.gets),
            get_bytes: get(&self.get_bytes),
            puts: get(&self.puts),
            put_bytes: get(&self.put_bytes),
            deletes: get(&self.deletes),
            heads: get(&self.heads),
            lists: get(&self.lists),
            failed_reads: get(&self.failed_reads),
            failed_requests: get(&self.failed_requests),
            failovers: get(&self.failovers),
            consecutive_failures: 0,
        }
    }
}

/// What the object-store cold tier did since open, from
/// `ColdArchiveStorage::object_metrics` / `ObjectColdStore::metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ObjectStoreMetrics {
    /// Requests per store: the primary first, then each replica in config order.
    pub stores: Vec<ObjectStoreCounters>,
    /// The local range cache (`cold.cache_dir`); `None` when it is off. Filled by the cache.
    pub cache: Option<ObjectCacheMetrics>,
    /// Replication lag per replica, in config order. Filled by the replicator.
    pub replicas: Vec<ReplicaLagMetrics>,
}

/// Requests of one object store since open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ObjectStoreCounters {
    /// `primary`, or the replica's name.
    pub name: String,
    /// Ranged and whole GET requests.
    pub gets: u64,
    /// Bytes those GETs returned.
    pub get_bytes: u64,
    /// PUT requests (uploads and replica copies).
    pub puts: u64,
    /// Bytes uploaded.
    pub put_bytes: u64,
    /// DELETE requests.
    pub deletes: u64,
    /// HEAD requests.
    pub heads: u64,
    /// LIST requests (tools only).
    pub lists: u64,
    /// Reads that failed on this store (after retries, or timed out).
    pub failed_reads: u64,
    /// Requests of any kind that failed after their retries, or timed out.
    pub failed_requests: u64,
    /// Reads this store failed that the next store answered.
    pub failovers: u64,
    /// Reads this store failed in a row (0 after a success; filled by `replicas.rs`):
    /// `cold.failover_alert_after` of them raise the `ColdStoreFailing` alert.
    pub consecutive_failures: u64,
}

/// The local range cache's counters since open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ObjectCacheMetrics {
    /// Block reads the cache answered.
    pub hits: u64,
    /// Block reads it did not (fetched from a store).
    pub misses: u64,
    /// Bytes the cache holds now.
    pub bytes: u64,
    /// Blocks (of 1 MiB, the last of an object shorter) the cache holds now.
    pub blocks: u64,
    /// Cache I/O errors (each served as a miss).
    pub errors: u64,
    /// Blocks found damaged and fetched again.
    pub corrupt_blocks: u64,
}

/// How far one replica is behind the primary (defined beside the replicator, so that
/// `TieredMetrics` has it without the `s3` feature).
pub use crate::cold_storage::replicate::ReplicaLagMetrics;

/// One object store: a client, the key prefix in it, and its request counters. The primary
/// is one; replicas (workstream C) are more of the same.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// `primary`, or the replica's name.
    pub name: String,
    /// `s3://bucket/prefix`, for messages.
    pub url: String,
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix inside the store, without slashes at either end.
    pub prefix: String,
    pub counters: Arc<StoreCounters>,
}

/// What an object-store request returned, or why it did not.
enum Failure {
    Store(object_store::Error),
    Io(std::io::Error),
    TimedOut,
}

impl From<object_store::Error> for Failure {
    fn from(e: object_store::Error) -> Self {
        Failure::Store(e)
    }
}

impl Remote {
    /// Build the client of `spec`, named `name`.
    pub(crate) fn build(name: &str, spec: &StoreSpec) -> Result<Self> {
        let Built { store, prefix, url } = build(spec)?;
        Ok(Self {
            name: name.to_owned(),
            url,
            store,
            prefix,
            counters: Arc::new(StoreCounters::default()),
        })
    }

    /// The object of `key`.
    pub(crate) fn location(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// `key` of an object of this store (`None`: outside the prefix).
    fn key_of(&self, location: &ObjectPath) -> Option<String> {
        let full = location.as_ref();
        if self.prefix.is_empty() {
            return Some(full.to_owned());
        }
        full.strip_prefix(&self.prefix)?
            .strip_prefix('/')
            .map(str::to_owned)
    }

    /// `s3://bucket/prefix/key`, for messages.
    pub(crate) fn path_of(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("{}/{key}", self.url))
    }

    /// The error of request `op` on `key`.
    fn error(&self, op: &'static str, key: &str, failure: Failure, timeout: Duration) -> Error {
        let path = self.path_of(key);
        match failure {
            Failure::Store(object_store::Error::NotFound { .. }) => {
                super::missing(path, format!("{op}: no such object"))
            }
            Failure::Store(e) => Error::Io {
                op,
                path,
                source: std::io::Error::other(e.to_string()),
            },
            Failure::Io(source) => Error::Io { op, path, source },
            Failure::TimedOut => Error::Io {
                op,
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer within {} s (cold.s3_timeout_secs)",
                        timeout.as_secs()
                    ),
                ),
            },
        }
    }

    /// Run request `op` on `key` on the bridge, within `timeout`.
    fn call<T, Fut>(
        &self,
        bridge: &Bridge,
        op: &'static str,
        key: &str,
        timeout: Duration,
        fut: Fut,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, Failure>> + Send + 'static,
        T: Send + 'static,
    {
        let out = bridge.run(timeout, fut).unwrap_or(Err(Failure::TimedOut));
        out.map_err(|f| {
            if !matches!(&f, Failure::Store(object_store::Error::NotFound { .. })) {
                StoreCounters::add(&self.counters.failed_requests, 1);
            }
            self.error(op, key, f, timeout)
        })
    }

    /// HEAD `key`: its length and ETag, `None` when there is no such object.
    pub(crate) fn head(
        &self,
        bridge: &Bridge,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<ObjectStat>> {
        StoreCounters::add(&self.counters.heads, 1);
        let (store, loc) = (Arc::clone(&self.store), self.location(key));
        let found = self.call(bridge, "HEAD", key, timeout, async move {
            Ok(store.head(&loc).await?)
        });
        match found {
            Ok(meta) => Ok(Some(ObjectStat {
                len: meta.size,
                etag: meta.e_tag,
            })),
            Err(e) if super::is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create `key` holding `body`, only if no object has that key (`PutMode::Create`).
    /// Returns the ETag the store gave. An existing key is [`Error::ColdFile`].
    pub(crate) fn put_create(
        &self,
        bridge: &Bridge,
        key: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Option<String>> {
        let len = body.len() as u64;
        if len > MAX_SINGLE_PUT {
            return Err(Error::Io {
                op: "PUT",
                path: self.path_of(key),
                source: std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    format!("{len} bytes: a create-only upload is one PUT, at most 5 GiB; lower cold.target_file_mib"),
                ),
            });
        }
        StoreCounters::add(&self.counters.puts, 1);
        let (store, loc) = (Arc::clone(&self.store), self.location(key));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let put = self.call(bridge, "PUT", key, scaled(timeout, len), async move {
            match store.put_opts(&loc, PutPayload::from(body), opts).await {
                Ok(r) => Ok(Ok(r.e_tag)),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(Err(())),
                Err(e) => Err(Failure::Store(e)),
            }
        })?;
        match put {
            Ok(etag) => {
                StoreCounters::add(&self.counters.put_bytes, len);
                Ok(etag)
            }
            Err(()) => Err(Error::cold_file(
                self.path_of(key),
                "already exists; cold files are immutable and are never replaced",
            )),
        }
    }

    /// Bytes of each of `ranges` of `key`, in as few ranged GETs as coalescing gives (ranges
    /// less than 1 MiB apart share one GET).
    pub(crate) fn get_ranges(
        &self,
        bridge: &Bridge,
        key: &str,
        ranges: &[Range<u64>],
        timeout: Duration,
    ) -> Result<Vec<Bytes>> {
        let (store, loc) = (Arc::clone(&self.store), self.location(key));
        let counters = Arc::clone(&self.counters);
        let owned = ranges.to_vec();
        let got = self.call(bridge, "GET", key, timeout, async move {
            let fetch = |r: Range<u64>| {
                let (store, loc, counters) =
                    (Arc::clone(&store), loc.clone(), Arc::clone(&counters));
                async move {
                    StoreCounters::add(&counters.gets, 1);
                    let b = store.get_range(&loc, r).await?;
                    StoreCounters::add(&counters.get_bytes, b.len() as u64);
                    Ok::<_, object_store::Error>(b)
                }
            };
            Ok(object_store::coalesce_ranges(
                &owned,
                fetch,
                object_store::OBJECT_STORE_COALESCE_DEFAULT,
            )
            .await?)
        });
        let got = got.inspect_err(|_| StoreCounters::add(&self.counters.failed_reads, 1))?;
        for (r, b) in ranges.iter().zip(&got) {
            if b.len() as u64 != r.end.saturating_sub(r.start) {
                StoreCounters::add(&self.counters.failed_reads, 1);
                return Err(Error::Io {
                    op: "GET",
                    path: self.path_of(key),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} bytes of range {r:?}", b.len()),
                    ),
                });
            }
        }
        Ok(got)
    }

    /// Delete `key`; an object already gone is not an error.
    pub(crate) fn delete(&self, bridge: &Bridge, key: &str, timeout: Duration) -> Result<()> {
        StoreCounters::add(&self.counters.deletes, 1);
        let (store, loc) = (Arc::clone(&self.store), self.location(key));
        match self.call(bridge, "DELETE", key, timeout, async move {
            Ok(store.delete(&loc).await?)
        }) {
            Err(e) if super::is_missing(&e) => Ok(()),
            other => other,
        }
    }

    /// The sub-prefixes (relative, without a trailing `/`) and the object keys directly under
    /// `dir` (relative to the store's prefix; empty for the prefix itself).
    pub(crate) fn list_dir(
        &self,
        bridge: &Bridge,
        dir: &str,
        timeout: Duration,
    ) -> Result<(Vec<String>, Vec<String>)> {
        StoreCounters::add(&self.counters.lists, 1);
        let store = Arc::clone(&self.store);
        let at = match (self.prefix.is_empty(), dir.is_empty()) {
            (true, true) => None,
            (false, true) => Some(ObjectPath::from(self.prefix.as_str())),
            _ => Some(self.location(dir)),
        };
        let listed = self.call(bridge, "LIST", dir, timeout, async move {
            Ok(store.list_with_delimiter(at.as_ref()).await?)
        })?;
        let dirs = listed
            .common_prefixes
            .iter()
            .filter_map(|p| self.key_of(p))
            .collect();
        let objects = listed
            .objects
            .iter()
            .filter_map(|o| self.key_of(&o.location))
            .collect();
        Ok((dirs, objects))
    }

    /// Download `key` to the local file `to`, durably (fsynced). Returns its bytes.
    pub(crate) fn download(
        &self,
        bridge: &Bridge,
        key: &str,
        to: &Path,
        timeout: Duration,
    ) -> Result<u64> {
        let len = self
            .head(bridge, key, timeout)?
            .ok_or_else(|| super::missing(self.path_of(key), "GET: no such object"))?
            .len;
        StoreCounters::add(&self.counters.gets, 1);
        let (store, loc) = (Arc::clone(&self.store), self.location(key));
        let counters = Arc::clone(&self.counters);
        let target = to.to_path_buf();
        self.call(bridge, "GET", key, scaled(timeout, len), async move {
            let mut file = std::fs::File::create(&target).map_err(Failure::Io)?;
            let mut stream = store.get(&loc).await?.into_stream();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                bytes += chunk.len() as u64;
                file.write_all(&chunk).map_err(Failure::Io)?;
            }
            file.sync_all().map_err(Failure::Io)?;
            StoreCounters::add(&counters.get_bytes, bytes);
            Ok(bytes)
        })
    }
}

/// `timeout` for a transfer of `len` bytes: one per [`TIMEOUT_BYTES`] begun.
fn scaled(timeout: Duration, len: u64) -> Duration {
    timeout.saturating_mul(u32::try_from(1 + len / TIMEOUT_BYTES).unwrap_or(u32::MAX))
}

/// Cold files in an object store. Cheap to clone; clones share the client, the runtime and
/// the counters.
#[derive(Clone)]
pub(crate) struct ObjectColdStore {
    inner: Arc<Shared>,
}

struct Shared {
    primary: Remote,
    /// `s3://bucket/prefix`, as a path (for [`ColdStore::root`]).
    root: PathBuf,
    /// Staged files, `<data_dir>/cold-staging`.
    staging: LocalStore,
    bridge: Bridge,
    timeout: Duration,
    /// `cold.replicas` (`replicas.rs`).
    replicas: replicas::Replicas,
    /// The local range cache (`cold.cache_dir`); `None` when `cold.cache_max_bytes` is 0 or
    /// the store is opened read-only (a tool beside the owner must not share its cache).
    cache: Option<BlockCache>,
}

impl std::fmt::Debug for ObjectColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectColdStore")
            .field("url", &self.inner.primary.url)
            .field("staging", &self.inner.staging.root())
            .finish()
    }
}

impl ObjectColdStore {
    /// The store of `cfg.store`, staging under `<data_dir>/cold-staging` (created unless
    /// `read_only`). No request is made.
    pub(crate) fn open(cfg: &ColdConfig, data_dir: &Path, read_only: bool) -> Result<Self> {
        let spec = StoreSpec::primary(cfg);
        let primary = Remote::build("primary", &spec)?;
        let staging_dir = data_dir.join(STAGING_DIR);
        let staging = if read_only {
            LocalStore::new(staging_dir)
        } else {
            LocalStore::create(staging_dir)?
        };
        let cache = (!read_only && cfg.cache_max_bytes > 0).then(|| {
            let dir = match &cfg.cache_dir {
                Some(dir) => data_dir.join(dir),
                None => data_dir.join(CACHE_DIR),
            };
            BlockCache::open(&dir, cfg.cache_max_bytes)
        });
        Ok(Self {
            inner: Arc::new(Shared {
                root: PathBuf::from(&primary.url),
                primary,
                staging,
                bridge: Bridge::new()?,
                timeout: spec.timeout,
                replicas: replicas::Replicas::new(cfg)?,
                cache,
            }),
        })
    }

    /// The primary store.
    pub(crate) fn primary(&self) -> &Remote {
        &self.inner.primary
    }

    /// The runtime requests run on.
    pub(crate) fn bridge(&self) -> &Bridge {
        &self.inner.bridge
    }

    /// The bound on one request (`cold.s3_timeout_secs`).
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Bytes of each of `ranges` of the published object `key`, whose length and ETag are
    /// `stat`: the one path every cold read of an object takes. Ranges past the end are an
    /// error.
    // Workstream B puts the range cache in front of the primary here, and C the replicas
    // behind it.
    pub(crate) fn read_object_ranges(
        &self,
        key: &str,
        stat: &ObjectStat,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>> {
        if let Some(r) = ranges.iter().find(|r| r.end > stat.len || r.start > r.end) {
            return Err(Error::Io {
                op: "GET",
                path: self.path_of(key),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("range {r:?} of a {}-byte object", stat.len),
                ),
            });
        }
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        let mut fetch = |ranges: &[Range<u64>]| {
            // A failed or timed-out read goes to each replica in order (`replicas.rs`).
            self.read_with_failover(key, ranges, || {
                inner
                    .primary
                    .get_ranges(&inner.bridge, key, ranges, inner.timeout)
            })
        };
        match &inner.cache {
            // What the cache holds costs no request; the blocks it lacks come in one fetch.
            Some(cache) => cache.read(
                &CachedObject {
                    key,
                    len: stat.len,
                    etag: stat.etag.as_deref(),
                },
                ranges,
                &mut fetch,
            ),
            None => fetch(ranges),
        }
    }

    /// Delete `key` from the primary and from every replica (the intent sweep's delete of an
    /// uncatalogued object). An object already gone is not an error.
    /// A replica that fails fails the call, so the sweep keeps the intent and tries again.
    pub(crate) fn delete_everywhere(&self, key: &str) -> Result<()> {
        self.inner
            .primary
            .delete(&self.inner.bridge, key, self.inner.timeout)?;
        self.delete_from_replicas(key)
    }

    /// Request counters per store since open (and, once they exist, the cache's and the
    /// replicas' figures).
    pub(crate) fn metrics(&self) -> ObjectStoreMetrics {
        let mut primary = self
            .inner
            .primary
            .counters
            .snapshot(&self.inner.primary.name);
        primary.consecutive_failures = self.primary_consecutive_failures();
        let mut stores = vec![primary];
        stores.extend(self.replica_counters());
        ObjectStoreMetrics {
            stores,
            cache: self.inner.cache.as_ref().map(|c| {
                let s = c.stats();
                ObjectCacheMetrics {
                    hits: s.hits,
                    misses: s.misses,
                    bytes: s.bytes,
                    blocks: s.blocks,
                    errors: s.errors,
                    corrupt_blocks: s.corrupt_blocks,
                }
            }),
            // The replication lag needs the catalog: `ColdArchiveStorage::object_metrics`.
            replicas: Vec::new(),
        }
    }
}

impl ColdStore for ObjectColdStore {
    fn root(&self) -> &Path {
        &self.inner.root
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.inner.primary.path_of(key)
    }

    fn stage(&self, key: &str) -> Result<Box<dyn StagedWrite>> {
        self.inner.staging.stage(key)
    }

    fn open_staged(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
        self.inner.staging.open_staged(key)
    }

    fn publish(&self, key: &str) -> Result<()> {
        let staged = self.inner.staging.open_staged(key)?;
        let len = staged.len()?;
        let body = staged.read(0..len)?;
        drop(staged);
        let etag = self.inner.primary.put_create(
            &self.inner.bridge,
            key,
            body.clone(),
            self.inner.timeout,
        )?;
        // Sync replication: on every replica before the catalog commit (`replicas.rs`).
        self.publish_to_replicas(key, &body)?;
        // The newest history is read first: it never misses the range cache.
        if let Some(cache) = &self.inner.cache {
            let obj = CachedObject {
                key,
                len,
                etag: etag.as_deref(),
            };
            cache.insert(&obj, &body);
        }
        // Uploaded: the staged copy is no longer needed (a leftover goes at the next open).
        if let Err(e) = self.inner.staging.discard_staged(key) {
            tracing::warn!(key, error = %e, "could not remove an uploaded staged file; the next open will");
        }
        Ok(())
    }

    fn discard_staged(&self, key: &str) -> Result<()> {
        self.inner.staging.discard_staged(key)
    }

    fn clear_staging(&self) -> Result<usize> {
        self.inner.staging.clear_staging()
    }

    fn open(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
        let stat = self
            .stat(key)?
            .ok_or_else(|| super::missing(self.path_of(key), "HEAD: no such object"))?;
        self.open_known(key, &stat)
    }

    fn open_known(&self, key: &str, known: &ObjectStat) -> Result<Arc<dyn RangeRead>> {
        Ok(Arc::new(ObjectRead {
            store: self.clone(),
            key: key.to_owned(),
            stat: known.clone(),
        }))
    }

    fn len(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.stat(key)?.map(|s| s.len))
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectStat>> {
        self.inner
            .primary
            .head(&self.inner.bridge, key, self.inner.timeout)
    }

    fn partitions(&self) -> Result<Vec<String>> {
        let (bridge, t) = (&self.inner.bridge, self.inner.timeout);
        let mut out = Vec::new();
        for dir in self.inner.primary.list_dir(bridge, "", t)?.0 {
            if dir == DELETES_DIR {
                out.extend(self.inner.primary.list_dir(bridge, &dir, t)?.0);
            } else {
                out.push(dir);
            }
        }
        out.sort();
        Ok(out)
    }

    fn list(&self, partition: &str) -> Result<Vec<String>> {
        let mut keys = self
            .inner
            .primary
            .list_dir(&self.inner.bridge, partition, self.inner.timeout)?
            .1;
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner
            .primary
            .delete(&self.inner.bridge, key, self.inner.timeout)
    }

    fn sync(&self, _partition: &str) -> Result<()> {
        // A delete is durable once the store answered it.
        Ok(())
    }

    fn export(&self, key: &str, to: &Path) -> Result<Exported> {
        let parent = to
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            op: "create backup partition",
            path: parent.to_path_buf(),
            source,
        })?;
        let bytes = self
            .inner
            .primary
            .download(&self.inner.bridge, key, to, self.inner.timeout)?;
        Ok(Exported {
            bytes,
            linked: false,
        })
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn object(&self) -> Option<&ObjectColdStore> {
        Some(self)
    }
}

/// One published object opened for ranged reads: its length and ETag come from the catalog
/// (or one HEAD), so opening it made no request.
#[derive(Debug)]
pub(crate) struct ObjectRead {
    store: ObjectColdStore,
    key: String,
    stat: ObjectStat,
}

impl RangeRead for ObjectRead {
    fn len(&self) -> Result<u64> {
        Ok(self.stat.len)
    }

    fn read(&self, range: Range<u64>) -> Result<Bytes> {
        let mut got = self.read_ranges(std::slice::from_ref(&range))?;
        Ok(got.pop().unwrap_or_default())
    }

    fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.store.read_object_ranges(&self.key, &self.stat, ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold_storage::store::is_missing;

    fn open(name: &str, dir: &Path) -> ObjectColdStore {
        let cfg = ColdConfig {
            store: format!("memory://{name}/pre/fix"),
            // The store's own requests are counted here; the range cache has its tests.
            cache_max_bytes: 0,
            ..ColdConfig::default()
        };
        ObjectColdStore::open(&cfg, dir, false).unwrap()
    }

    fn stage(store: &ObjectColdStore, key: &str, body: &[u8]) {
        let mut w = store.stage(key).unwrap();
        w.write_all(body).unwrap();
        assert_eq!(w.sync().unwrap(), body.len() as u64);
    }

    #[test]
    fn cold_storage_object_store_stages_publishes_reads_lists_exports_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let name = "object-unit-basic";
        let store = open(name, dir.path());
        let key = "date=2024-01-01/part-000000000001.parquet";
        stage(&store, key, b"hello world");
        // Staged: readable as staged only, nothing uploaded.
        assert_eq!(
            &store.open_staged(key).unwrap().read(6..11).unwrap()[..],
            b"world"
        );
        assert_eq!(store.stat(key).unwrap(), None);
        assert!(is_missing(&store.open(key).unwrap_err()));
        store.publish(key).unwrap();
        // The staged copy is gone, the object is under the prefix.
        assert!(store.open_staged(key).is_err());
        let stat = store.stat(key).unwrap().unwrap();
        assert_eq!(stat.len, 11);
        assert!(stat.etag.is_some());
        let raw = memory_store(name);
        let bridge = Bridge::new().unwrap();
        let loc = ObjectPath::from(format!("pre/fix/{key}"));
        let head = bridge
            .run(Duration::from_secs(5), async move { raw.head(&loc).await })
            .unwrap()
            .unwrap();
        assert_eq!(head.size, 11);

        // A known stat opens with no request; ranges come back in order.
        let heads = store.metrics().stores[0].heads;
        let file = store.open_known(key, &stat).unwrap();
        assert_eq!(store.metrics().stores[0].heads, heads);
        assert_eq!(file.len().unwrap(), 11);
        let got = file.read_ranges(&[6..11, 0..5, 3..3]).unwrap();
        assert_eq!(
            (&got[0][..], &got[1][..], got[2].len()),
            (&b"world"[..], &b"hello"[..], 0)
        );
        let m = store.metrics().stores[0].clone();
        assert_eq!(m.gets, 1, "nearby ranges share one GET: {m:?}");
        assert!(matches!(file.read(8..20), Err(Error::Io { .. })));

        // Listing per prefix, delete files beside the data partitions.
        let del = "_deletes/date=2024-01-01/part-000000000002.parquet";
        stage(&store, del, b"d");
        store.publish(del).unwrap();
        assert_eq!(
            store.partitions().unwrap(),
            vec!["_deletes/date=2024-01-01", "date=2024-01-01"]
        );
        assert_eq!(store.list("date=2024-01-01").unwrap(), vec![key]);
        assert_eq!(store.list("_deletes/date=2024-01-01").unwrap(), vec![del]);

        let out = dir.path().join("backup/date=2024-01-01/x.parquet");
        assert_eq!(store.export(key, &out).unwrap().bytes, 11);
        assert_eq!(std::fs::read(&out).unwrap(), b"hello world");

        // Leftover staged files are cleared.
        stage(&store, "date=2024-01-02/part-000000000003.parquet", b"x");
        assert_eq!(store.clear_staging().unwrap(), 1);

        store.delete(key).unwrap();
        store.delete(key).unwrap();
        assert_eq!(store.len(key).unwrap(), None);
        assert!(is_missing(&file.read(0..1).unwrap_err()));
        assert!(store.metrics().stores[0].failed_reads >= 1);
        let shown = format!("{:?}", store.path_of(key));
        assert!(
            shown.contains("memory://object-unit-basic/pre/fix/date="),
            "{shown}"
        );
        drop_memory_store(name);
    }

    /// Two writers publish one key at once (`PutMode::Create` on `InMemory`, which checks it
    /// under a lock): exactly one wins, the other gets a typed error, and the object holds
    /// the winner's bytes whole.
    #[test]
    fn cold_storage_object_store_create_only_publish_race_has_one_winner() {
        let name = "object-unit-race";
        for round in 0..20 {
            let key = format!("date=2024-01-01/part-{round:012}.parquet");
            let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (a, b) = (open(name, da.path()), open(name, db.path()));
            let body_a = vec![b'a'; 1000 + round];
            let body_b = vec![b'b'; 2000 + round];
            stage(&a, &key, &body_a);
            stage(&b, &key, &body_b);
            let barrier = std::sync::Barrier::new(2);
            let (ra, rb) = std::thread::scope(|s| {
                let ta = s.spawn(|| {
                    barrier.wait();
                    a.publish(&key)
                });
                let tb = s.spawn(|| {
                    barrier.wait();
                    b.publish(&key)
                });
                (ta.join().unwrap(), tb.join().unwrap())
            });
            let (winner, loser) = match (&ra, &rb) {
                (Ok(()), Err(e)) => (&body_a, e),
                (Err(e), Ok(())) => (&body_b, e),
                other => panic!("round {round}: exactly one publish must win: {other:?}"),
            };
            assert!(
                matches!(loser, Error::ColdFile { reason, .. } if reason.contains("already exists")),
                "{loser}"
            );
            let stat = a.stat(&key).unwrap().unwrap();
            assert_eq!(stat.len, winner.len() as u64);
            let got = a
                .open_known(&key, &stat)
                .unwrap()
                .read(0..stat.len)
                .unwrap();
            assert_eq!(&got[..], &winner[..]);
        }
        drop_memory_store(name);
    }
}
