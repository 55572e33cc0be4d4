//! Replication of an object-store cold tier to its replicas (`cold.replicas`), driven by the
//! catalog: each catalogued object (data and delete files) that has no `cold_replicas` row for
//! a replica is copied to it, then marked. The state is in the catalog, so a restart resumes
//! where the last run stopped, and nothing is ever listed.
//!
//! - The primary is authoritative. A copy is read through the primary's read path (range
//!   cache, then the primary, then the other replicas) and written with a create-only PUT; a
//!   replica that already holds an object of the right size (a sync-mode upload, a copy whose
//!   mark was lost to a crash) is only marked; a wrong-size one is overwritten, and logged.
//! - Rate: `cold.replication_max_bytes_per_sec` per replica, a token bucket kept across steps
//!   (a copy may take the bucket into debt; the next copy waits until it is paid).
//! - `verify_replicas` checks every catalogued object on every replica (HEAD: presence and
//!   size) and, asked to repair, copies a missing or damaged copy from a healthy store.
//!
//! Every function here blocks (catalog calls and requests): run them on blocking threads.

//!
//! The report and metric types are built without the `s3` feature too (they are fields of
//! `VerifyReport` and `TieredMetrics`, empty without replicas).

#[cfg(feature = "s3")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "s3")]
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[cfg(feature = "s3")]
use super::store::object::{ObjectColdStore, PutDone};
#[cfg(feature = "s3")]
use super::ColdArchiveStorage;
#[cfg(feature = "s3")]
use crate::error::{Error, Result};
#[cfg(feature = "s3")]
use crate::record::Record;

/// What one replication step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplicationReport {
    /// Objects copied to a replica.
    pub copied: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Objects a replica already held (right size): only marked.
    pub already_present: u64,
    /// Wrong-size copies overwritten.
    pub replaced: u64,
    /// Replicas that failed during the step, with the error (the step goes on with the others;
    /// the objects stay pending and the next step tries again).
    pub failures: Vec<(String, String)>,
}

/// How far one replica is behind the primary, in [`collect_metrics`] and Prometheus
/// (`cold_replication_lag_objects`, `_bytes`, `_seconds`).
///
/// [`collect_metrics`]: crate::AutoTieringCoordinator::collect_metrics
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaLagMetrics {
    /// The replica's name (`ReplicaConfig::display_name`).
    pub replica: String,
    /// Catalogued objects the replica holds no copy of.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Seconds since the oldest of them was created (0 when caught up).
    pub seconds: u64,
}

/// What is wrong with one replica's copy of a catalogued object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ReplicaProblemKind {
    /// The replica holds no copy.
    Missing,
    /// The replica's copy has another size than the catalog's.
    SizeMismatch,
    /// The replica could not be asked (down, refused, timed out).
    Unreachable,
}

/// One problem `verify_cold` found with a replica's copy of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaProblem {
    /// The replica's name.
    pub replica: String,
    /// The object's key (`date=YYYY-MM-DD/part-N.parquet`, or a delete file's).
    pub key: String,
    /// What is wrong.
    pub kind: ReplicaProblemKind,
    /// Details.
    pub detail: String,
    /// Whether a repair copied a sound copy to the replica.
    pub repaired: bool,
}

/// The read-failure figures of one store of an object-store cold tier (the primary or a
/// replica), in [`collect_metrics`](crate::AutoTieringCoordinator::collect_metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreFailureMetrics {
    /// `"primary"`, or the replica's name.
    pub store: String,
    /// Reads that failed on the store (an error or a timeout; not an object it did not hold).
    pub failed_reads: u64,
    /// Reads it failed that a replica then served.
    pub failovers: u64,
    /// Reads failed in a row (0 after a success): `cold.failover_alert_after` of them raise
    /// the `ColdStoreFailing` alert.
    pub consecutive_failures: u64,
}

/// A token bucket in bytes per second: a copy may start whenever the bucket is not in debt,
/// and takes its bytes from it (so a large object waits for nothing before it, but the next
/// copy waits until it is paid for). Capacity: one second of rate.
#[cfg(feature = "s3")]
#[derive(Debug)]
pub(crate) struct TokenBucket {
    /// Bytes per second; 0 is unlimited.
    rate: u64,
    tokens: f64,
    last: Instant,
}

#[cfg(feature = "s3")]
impl TokenBucket {
    pub(crate) fn new(rate: u64) -> Self {
        Self {
            rate,
            tokens: rate as f64,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.rate as f64);
    }

    /// How long to wait before the next copy may start (zero when not in debt).
    pub(crate) fn wait(&mut self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        self.refill();
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }

    /// Take `bytes` (after [`wait`](Self::wait) returned zero).
    pub(crate) fn take(&mut self, bytes: u64) {
        if self.rate > 0 {
            self.tokens -= bytes as f64;
        }
    }
}

#[cfg(feature = "s3")]
/// Sleep `d` in short slices; false if `stop` was set meanwhile.
fn sleep_unless(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

#[cfg(feature = "s3")]
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(feature = "s3")]
impl<R: Record> ColdArchiveStorage<R> {
    /// The object store of the cold tier when it has replicas.
    fn replicated(&self) -> Option<&ObjectColdStore> {
        self.store().object().filter(|o| o.replica_count() > 0)
    }

    /// Whether the cold tier has replicas to keep up to date.
    pub(crate) fn has_replicas(&self) -> bool {
        self.replicated().is_some()
    }

    /// One replication step (blocking): for each replica, up to `max_objects` catalogued
    /// objects it holds no copy of are copied (or found already there) and marked, within the
    /// rate limit. Stops early when `stop` is set. A replica that fails is reported and left
    /// for the next step; the others go on.
    pub(crate) fn replicate_step(
        &self,
        max_objects: usize,
        stop: &AtomicBool,
    ) -> Result<ReplicationReport> {
        let mut report = ReplicationReport::default();
        let Some(obj) = self.replicated() else {
            return Ok(report);
        };
        for r in 0..obj.replica_count() {
            let name = obj.replica_name(r).to_owned();
            let pending = self.catalog().replica_pending(&name, max_objects)?;
            let mut source_failures = 0;
            for (key, bytes) in pending {
                if stop.load(Ordering::Acquire) {
                    return Ok(report);
                }
                match self.replicate_one(obj, r, &key, bytes, stop) {
                    Ok(Some(done)) => {
                        match done {
                            Copied::Present => report.already_present += 1,
                            Copied::Written => {
                                report.copied += 1;
                                report.bytes += bytes;
                            }
                            Copied::Replaced => {
                                report.copied += 1;
                                report.replaced += 1;
                                report.bytes += bytes;
                            }
                        }
                        // Uncatalogued meanwhile (compacted away): its intent's sweep may already
                        // have run, so the copy just made would stay an orphan. Remove it.
                        if !self.catalog().is_catalogued(&key)? {
                            if let Err(e) = obj.replica_delete(r, &key) {
                                tracing::warn!(replica = %name, key = %key, error = %e, "could not remove a copy of an object compacted away meanwhile");
                            }
                            continue;
                        }
                        self.catalog().mark_replicated(&name, &key, bytes)?;
                    }
                    // Stopped while waiting for the rate limit.
                    Ok(None) => return Ok(report),
                    // The object left the catalog meanwhile (compacted away): nothing to do.
                    Err(Failed::Source(e))
                        if super::is_missing(&e) && !self.catalog().is_catalogued(&key)? => {}
                    // This object could not be read (the primary down, or the object lost):
                    // the others may still be copied, but not past a few such failures.
                    Err(Failed::Source(e)) => {
                        tracing::warn!(replica = %name, key = %key, error = %e, "could not read an object to replicate; the next step tries again");
                        report
                            .failures
                            .push((name.clone(), format!("reading {key}: {e}")));
                        source_failures += 1;
                        if source_failures >= MAX_SOURCE_FAILURES {
                            break;
                        }
                    }
                    // The replica failed: the next step tries again.
                    Err(Failed::Replica(e)) => {
                        tracing::warn!(replica = %name, key = %key, error = %e, "replication to a replica failed; the next step tries again");
                        report.failures.push((name.clone(), e.to_string()));
                        break;
                    }
                }
            }
        }
        if report.copied > 0 || report.already_present > 0 {
            tracing::debug!(?report, "replication step");
        }
        Ok(report)
    }

    /// Bring `key` (`bytes` long) to replica `r`. `None`: stopped while waiting for the rate.
    fn replicate_one(
        &self,
        obj: &ObjectColdStore,
        r: usize,
        key: &str,
        bytes: u64,
        stop: &AtomicBool,
    ) -> std::result::Result<Option<Copied>, Failed> {
        // A sync-mode upload put it there before its commit: no request needed.
        if obj.take_synced(r, key) {
            return Ok(Some(Copied::Present));
        }
        let found = obj.replica_len(r, key).map_err(Failed::Replica)?;
        if found == Some(bytes) {
            return Ok(Some(Copied::Present));
        }
        let wait = obj.replica_bucket_wait(r);
        if !wait.is_zero() && !sleep_unless(wait, stop) {
            return Ok(None);
        }
        obj.replica_bucket_take(r, bytes);
        let data = obj.read_for_copy(key, bytes).map_err(Failed::Source)?;
        write_copy(obj, r, key, bytes, found, data)
            .map(Some)
            .map_err(Failed::Replica)
    }

    /// Copy `key` to replica `r`, which holds `found` bytes of it (`None`: nothing).
    fn copy_to_replica(
        &self,
        obj: &ObjectColdStore,
        r: usize,
        key: &str,
        bytes: u64,
        found: Option<u64>,
    ) -> Result<Copied> {
        let data = obj.read_for_copy(key, bytes)?;
        write_copy(obj, r, key, bytes, found, data)
    }

    /// Read-failure figures of the primary and each replica (empty without replicas).
    pub(crate) fn store_failures(&self) -> Vec<StoreFailureMetrics> {
        let Some(obj) = self.replicated() else {
            return Vec::new();
        };
        obj.metrics()
            .stores
            .into_iter()
            .map(|c| StoreFailureMetrics {
                store: c.name,
                failed_reads: c.failed_reads,
                failovers: c.failovers,
                consecutive_failures: c.consecutive_failures,
            })
            .collect()
    }

    /// How far each replica is behind (catalog reads, blocking but short).
    pub(crate) fn replication_lag(&self) -> Result<Vec<ReplicaLagMetrics>> {
        let Some(obj) = self.replicated() else {
            return Ok(Vec::new());
        };
        let now = now_ms();
        (0..obj.replica_count())
            .map(|r| {
                let name = obj.replica_name(r).to_owned();
                let lag = self.catalog().replica_lag(&name)?;
                Ok(ReplicaLagMetrics {
                    seconds: lag
                        .oldest_ms
                        .map_or(0, |t| (now.saturating_sub(t).max(0) / 1000) as u64),
                    objects: lag.objects,
                    bytes: lag.bytes,
                    replica: name,
                })
            })
            .collect()
    }

    /// Check every catalogued object (data and delete files) on every replica: presence and
    /// size (HEAD). A missing or damaged copy loses its replica mark (so the replicator copies
    /// it again); with `repair`, it is copied now from a healthy store (the primary, else
    /// another replica) and marked again. A `read_only` handle only reports. Blocking.
    pub(crate) fn verify_replicas(
        &self,
        repair: bool,
        read_only: bool,
    ) -> Result<Vec<ReplicaProblem>> {
        let Some(obj) = self.replicated() else {
            return Ok(Vec::new());
        };
        let mut objects: Vec<(String, u64)> = self
            .catalog()
            .entries()?
            .into_iter()
            .map(|e| (e.path, e.bytes))
            .collect();
        objects.extend(
            self.catalog()
                .delete_files()?
                .into_iter()
                .map(|d| (d.path, d.bytes)),
        );
        let mut problems = Vec::new();
        for r in 0..obj.replica_count() {
            let name = obj.replica_name(r).to_owned();
            for (key, bytes) in &objects {
                let (kind, detail, found) = match obj.replica_len(r, key) {
                    Ok(Some(len)) if len == *bytes => continue,
                    Ok(Some(len)) => (
                        ReplicaProblemKind::SizeMismatch,
                        format!("{len} bytes on the replica, {bytes} catalogued"),
                        Some(len),
                    ),
                    Ok(None) => (
                        ReplicaProblemKind::Missing,
                        format!("catalogued with {bytes} bytes, not on the replica"),
                        None,
                    ),
                    Err(e) => (ReplicaProblemKind::Unreachable, e.to_string(), None),
                };
                tracing::error!(replica = %name, key = %key, ?kind, %detail, "replica copy problem");
                let mut problem = ReplicaProblem {
                    replica: name.clone(),
                    key: key.clone(),
                    kind,
                    detail,
                    repaired: false,
                };
                if kind != ReplicaProblemKind::Unreachable && !read_only {
                    self.catalog().unmark_replicated(&name, key)?;
                    if repair {
                        match self.copy_to_replica(obj, r, key, *bytes, found) {
                            Ok(_) => {
                                self.catalog().mark_replicated(&name, key, *bytes)?;
                                tracing::info!(replica = %name, key = %key, "replica copy repaired");
                                problem.repaired = true;
                            }
                            Err(e) => {
                                tracing::error!(replica = %name, key = %key, error = %e, "replica copy could not be repaired");
                                problem.detail = format!("{}; repair failed: {e}", problem.detail);
                            }
                        }
                    }
                }
                problems.push(problem);
            }
        }
        Ok(problems)
    }
}

/// Write `data` (`bytes` long) as replica `r`'s copy of `key`, which holds `found` bytes of
/// it (`None`: nothing): create-only, or overwriting a wrong-size copy (logged).
#[cfg(feature = "s3")]
fn write_copy(
    obj: &ObjectColdStore,
    r: usize,
    key: &str,
    bytes: u64,
    found: Option<u64>,
    data: bytes::Bytes,
) -> Result<Copied> {
    let name = obj.replica_name(r);
    if let Some(len) = found {
        tracing::warn!(replica = %name, key, found = len, catalogued = bytes, "replica copy has the wrong size; overwriting it");
        obj.replica_put(r, key, data, false)?;
        return Ok(Copied::Replaced);
    }
    match obj.replica_put(r, key, data.clone(), true)? {
        PutDone::Written => Ok(Copied::Written),
        // Created meanwhile (a sync upload, another copier): right size, or replace it.
        PutDone::Exists => match obj.replica_len(r, key)? {
            Some(len) if len == bytes => Ok(Copied::Present),
            other => {
                tracing::warn!(replica = %name, key, found = ?other, catalogued = bytes, "replica copy has the wrong size; overwriting it");
                obj.replica_put(r, key, data, false)?;
                Ok(Copied::Replaced)
            }
        },
    }
}

/// Why one object was not replicated: its source could not be read, or the replica failed.
#[cfg(feature = "s3")]
enum Failed {
    Source(Error),
    Replica(Error),
}

/// Objects of one replica whose source could not be read, after which a step gives up on
/// that replica (each may have cost a request timeout).
#[cfg(feature = "s3")]
const MAX_SOURCE_FAILURES: usize = 3;

#[cfg(feature = "s3")]
/// How an object reached a replica.
enum Copied {
    /// It was there already (right size).
    Present,
    /// Copied.
    Written,
    /// A wrong-size copy was overwritten.
    Replaced,
}

#[cfg(feature = "s3")]
/// The error of a copy whose source did not have the catalogued size.
pub(crate) fn size_error(path: std::path::PathBuf, got: u64, want: u64) -> Error {
    Error::cold_file(
        path,
        format!("{got} bytes read for replication, {want} catalogued"),
    )
}

#[cfg(all(test, feature = "s3"))]
mod tests {
    use super::*;

    #[test]
    fn cold_storage_replication_token_bucket_paces_after_debt() {
        let mut b = TokenBucket::new(1000);
        assert_eq!(b.wait(), Duration::ZERO);
        b.take(3000);
        let w = b.wait();
        assert!(
            w > Duration::from_millis(1500) && w <= Duration::from_secs(2),
            "{w:?}"
        );
        let mut unlimited = TokenBucket::new(0);
        unlimited.take(u64::MAX);
        assert_eq!(unlimited.wait(), Duration::ZERO);
    }
}

#[cfg(not(feature = "s3"))]
impl<R: crate::record::Record> super::ColdArchiveStorage<R> {
    /// Without the `s3` feature there are no replicas.
    pub(crate) fn has_replicas(&self) -> bool {
        false
    }

    pub(crate) fn replicate_step(
        &self,
        _max_objects: usize,
        _stop: &std::sync::atomic::AtomicBool,
    ) -> crate::error::Result<ReplicationReport> {
        Ok(ReplicationReport::default())
    }

    pub(crate) fn replication_lag(&self) -> crate::error::Result<Vec<ReplicaLagMetrics>> {
        Ok(Vec::new())
    }

    pub(crate) fn store_failures(&self) -> Vec<StoreFailureMetrics> {
        Vec::new()
    }

    pub(crate) fn verify_replicas(
        &self,
        _repair: bool,
        _read_only: bool,
    ) -> crate::error::Result<Vec<ReplicaProblem>> {
        Ok(Vec::new())
    }
}
