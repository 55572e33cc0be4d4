//! Replication of an object-store cold tier to its replicas (`cold.replicas`): the background
//! loop beside the maintenance loop, a step on demand, and the repair of replica copies. The
//! copying itself is the cold tier's (`cold_storage/replicate.rs`).
//!
//! The loop runs its own task, not a maintenance task: it wakes every second, or at once when
//! an archival or compaction pass committed files, so replication does not wait for the
//! maintenance interval; its steps run on blocking threads (catalog calls and requests block).
//! A replica that fails is retried at the next wake-up; the replication-lag alert says when
//! one stays behind.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::AutoTieringCoordinator;
use crate::blocking::run_blocking;
use crate::cold_storage::{ReplicaProblem, ReplicationReport};
use crate::error::Result;
use crate::record::Record;

/// Objects one step of the loop takes from the catalog per replica.
const LOOP_BATCH: usize = 256;

/// How long the loop sleeps when it has nothing to do (an archival commit wakes it sooner).
const IDLE_WAKE: Duration = Duration::from_secs(1);

impl<R: Record> AutoTieringCoordinator<R> {
    /// Copy to every replica (`cold.replicas`) each catalogued cold object it holds no copy
    /// of, now, within `cold.replication_max_bytes_per_sec`. The background loop started with
    /// [`start_maintenance_loop`](Self::start_maintenance_loop) does the same continuously. A
    /// replica that fails is in the report's `failures` (its objects stay pending). Nothing
    /// to do without replicas.
    pub async fn replicate_now(&self) -> Result<ReplicationReport> {
        self.check_open("replicate_now")?;
        let mut total = ReplicationReport::default();
        loop {
            let (cold, stop) = (self.cold.clone(), self.stopping.clone());
            let step = run_blocking(move || cold.replicate_step(LOOP_BATCH, &stop)).await??;
            let progressed = step.copied + step.already_present > 0;
            total.copied += step.copied;
            total.bytes += step.bytes;
            total.already_present += step.already_present;
            total.replaced += step.replaced;
            let failed = !step.failures.is_empty();
            total.failures.extend(step.failures);
            if failed || !progressed || self.stopping.load(Ordering::Acquire) {
                return Ok(total);
            }
        }
    }

    /// Check every catalogued cold object on every replica (presence and size) and copy each
    /// missing or wrong-size copy from a healthy store (the primary, else another replica).
    /// Returns the problems found, each marked `repaired` or not (an unreachable replica is
    /// not repaired; the replicator catches it up once it is back).
    pub async fn repair_replicas(&self) -> Result<Vec<ReplicaProblem>> {
        let _move = self.moves.lock().await;
        self.check_open("repair_replicas")?;
        let cold = self.cold.clone();
        run_blocking(move || cold.verify_replicas(true, false)).await?
    }

    /// Start the replication loop (once per maintenance loop), if the cold tier has replicas.
    pub(crate) fn start_replication_loop(self: &Arc<Self>) {
        if !self.cold.has_replicas() {
            return;
        }
        let weak = Arc::downgrade(self);
        let stop = self.maintenance.stop.subscribe();
        let wake = Arc::clone(&self.maintenance.replication_wake);
        tokio::spawn(replication_loop(weak, stop, wake));
    }

    /// Wake the replication loop: files were committed.
    pub(crate) fn wake_replication(&self) {
        self.maintenance.replication_wake.notify_one();
    }
}

async fn replication_loop<R: Record>(
    weak: Weak<AutoTieringCoordinator<R>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    wake: Arc<tokio::sync::Notify>,
) {
    tracing::info!("replication loop started");
    loop {
        let Some(store) = weak.upgrade() else { break };
        if *stop.borrow_and_update() || store.stopping.load(Ordering::Acquire) {
            break;
        }
        let (cold, flag) = (store.cold.clone(), store.stopping.clone());
        drop(store);
        let busy = match run_blocking(move || cold.replicate_step(LOOP_BATCH, &flag)).await {
            Ok(Ok(report)) => {
                report.failures.is_empty() && report.copied + report.already_present > 0
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "replication step failed; retrying");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "replication step did not run; stopping");
                break;
            }
        };
        if busy {
            // More may be pending: go on at once (the rate limit paces the copies).
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE_WAKE) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!("replication loop stopped");
}
