//! Background maintenance: the loop, its bounded steps, alerts, and graceful shutdown.
//!
//! A step runs, in order: hot housekeeping, warm upkeep (access-statistics flush, signature
//! merge, sampled ANALYZE, one incremental-vacuum step, checkpoint), archival of records past
//! `warm_to_cold_age` (rate-limited and capped per step), compaction of a bounded number of
//! file groups once no archival backlog remains, delete-file publication, the intent sweep of
//! an object-store cold tier (`sweep_intents`), and an evaluation of every alert. Steps never
//! overlap. A failed task is logged, raised as a `MaintenanceFailure` alert (cleared by its
//! next success) and the step goes on to the next task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::Instrument;

use super::moves::ArchiveLimits;
use super::{ArchiveReport, AutoTieringCoordinator, CompactionReport};
use crate::blocking::run_blocking;
use crate::catalog::FileState;
use crate::cold_storage::ColdFileProblem;
use crate::error::{Error, Result};
use crate::monitor::alerts::{self, Alert, AlertKind, AlertSeverity, Finding};
use crate::monitor::disk;
use crate::record::Record;
use crate::warm_storage::WarmUpkeepReport;

/// Most compaction groups one maintenance step rewrites (each at most one target-size file).
const COMPACTION_GROUPS_PER_STEP: usize = 2;

/// What one maintenance step did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MaintenanceStepReport {
    /// Warm upkeep, if it succeeded.
    pub warm: Option<WarmUpkeepReport>,
    /// Archival, if it ran and succeeded.
    pub archive: Option<ArchiveReport>,
    /// Compaction, if it ran and succeeded.
    pub compaction: Option<CompactionReport>,
    /// Delete-file publication, if it succeeded.
    pub deletes: Option<super::PublishReport>,
    /// The intent sweep of an object-store cold tier, if it ran and succeeded.
    pub sweep: Option<crate::cold_storage::SweepReport>,
    /// Records due for archival may remain (the step hit its budget): the loop runs the next
    /// step after `maintenance.backlog_interval_secs` instead of the full interval.
    pub backlog: bool,
    /// Tasks that failed, with their errors (also logged and raised as alerts).
    pub failures: Vec<(String, String)>,
    /// Wall time of the step.
    pub elapsed: Duration,
}

/// Counters of the maintenance loop, from
/// [`AutoTieringCoordinator::maintenance_status`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaintenanceStatus {
    /// Whether a loop started by `start_maintenance_loop` is running.
    pub loop_running: bool,
    /// Steps run since open (by the loop or by `run_maintenance_step`).
    pub steps: u64,
    /// Steps in which at least one task failed.
    pub failed_steps: u64,
    /// When the last step ended, Unix ms by the store's clock (0: none yet).
    pub last_step_ms: i64,
    /// Records moved to cold since open, by the loop or by `archive_*` calls.
    pub records_archived: u64,
    /// Files written by archival since open.
    pub archive_files: u64,
    /// When the last archival pass that moved records ended, Unix ms (0: none yet).
    pub last_archive_ms: i64,
    /// Compaction groups committed since open.
    pub compaction_groups: u64,
    /// Cold files replaced by compaction since open.
    pub compaction_files_in: u64,
    /// Files compaction wrote since open.
    pub compaction_files_out: u64,
    /// Bytes of the files compaction replaced.
    pub compaction_bytes_in: u64,
    /// Bytes of the files compaction wrote.
    pub compaction_bytes_out: u64,
    /// When the last compaction group committed, Unix ms (0: none yet).
    pub last_compaction_ms: i64,
}

/// Shared state of the maintenance loop and shutdown.
#[derive(Debug)]
pub(crate) struct MaintenanceState {
    /// Held for the whole of a step, so steps never overlap, and by shutdown, so none starts
    /// after it.
    step: tokio::sync::Mutex<()>,
    /// Shared with the loop, which holds the store only weakly.
    running: Arc<AtomicBool>,
    /// One alert evaluation at a time, so an older one never lands after a newer one.
    evaluation: tokio::sync::Mutex<()>,
    /// Wakes the loop when shutdown begins.
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    steps: AtomicU64,
    failed_steps: AtomicU64,
    last_step_ms: std::sync::atomic::AtomicI64,
    /// What the moves did since open (the status's archival and compaction counters).
    moved: parking_lot::Mutex<MaintenanceStatus>,
    /// Wakes the replication loop (`replication.rs`) when files were committed.
    pub(super) replication_wake: Arc<tokio::sync::Notify>,
}

impl MaintenanceState {
    /// Count an archival pass.
    pub(crate) fn note_archive(&self, report: &ArchiveReport, now_ms: i64) {
        if report.files == 0 {
            return;
        }
        let mut m = self.moved.lock();
        m.records_archived += report.archived;
        m.archive_files += report.files;
        m.last_archive_ms = now_ms;
    }

    /// Count a committed compaction group that wrote `out_bytes` (`None`: no output, every
    /// row was dead).
    pub(crate) fn note_compaction(
        &self,
        group: &crate::cold_storage::CompactionGroup,
        out_bytes: Option<u64>,
        now_ms: i64,
    ) {
        let mut m = self.moved.lock();
        m.compaction_groups += 1;
        m.compaction_files_in += group.inputs.len() as u64;
        m.compaction_bytes_in += group.inputs.iter().map(|e| e.bytes).sum::<u64>();
        m.compaction_files_out += u64::from(out_bytes.is_some());
        m.compaction_bytes_out += out_bytes.unwrap_or(0);
        m.last_compaction_ms = now_ms;
    }
}

impl Default for MaintenanceState {
    fn default() -> Self {
        Self {
            step: tokio::sync::Mutex::new(()),
            running: Arc::new(AtomicBool::new(false)),
            evaluation: tokio::sync::Mutex::new(()),
            stop: tokio::sync::watch::channel(false).0,
            steps: AtomicU64::new(0),
            failed_steps: AtomicU64::new(0),
            last_step_ms: std::sync::atomic::AtomicI64::new(0),
            moved: parking_lot::Mutex::new(MaintenanceStatus::default()),
            replication_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// Clears `running` when the loop ends, however it ends (a panic, or the task dropped).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<R: Record> AutoTieringCoordinator<R> {
    /// Run maintenance in the background until [`shutdown`](Self::shutdown): one step now,
    /// then one every `tiering.maintenance_interval` seconds, or every
    /// `maintenance.backlog_interval_secs` while an archival backlog remains. Returns when the
    /// store shuts down (or is dropped: between steps the loop holds it only weakly, so it
    /// does not keep the store open). A second loop on the same store returns at once.
    ///
    /// ```no_run
    /// # async fn f(coordinator: tiered_storage::AutoTieringCoordinator) {
    /// use std::sync::Arc;
    ///
    /// let coordinator = Arc::new(coordinator);
    /// let coordinator_clone = coordinator.clone();
    /// tokio::spawn(async move {
    ///     coordinator_clone.start_maintenance_loop().await;
    /// });
    /// // ... serve traffic ...
    /// coordinator.shutdown().await.unwrap(); // finishes the current step, then stops the loop
    /// # }
    /// ```
    pub async fn start_maintenance_loop(self: Arc<Self>) {
        if self.config.read_only {
            tracing::warn!("the store is open read-only; no maintenance loop runs");
            return;
        }
        if self.maintenance.running.swap(true, Ordering::AcqRel) {
            tracing::warn!("maintenance loop already running; not starting another");
            return;
        }
        let _running = Running(Arc::clone(&self.maintenance.running));
        let mut stop = self.maintenance.stop.subscribe();
        // Replication to `cold.replicas` runs beside, on its own wake-ups.
        self.start_replication_loop();
        let interval = Duration::from_secs(self.config.tiering.maintenance_interval);
        let backlog_interval = Duration::from_secs(self.config.maintenance.backlog_interval_secs);
        tracing::info!(
            interval_secs = interval.as_secs(),
            "maintenance loop started"
        );
        let weak = Arc::downgrade(&self);
        drop(self);
        loop {
            let Some(store) = weak.upgrade() else { break };
            if *stop.borrow_and_update() {
                break;
            }
            let wait = match store.run_maintenance_step().await {
                Ok(report) if report.backlog => backlog_interval,
                Ok(_) => interval,
                // Closed: shutdown won the race for the next step.
                Err(_) => break,
            };
            drop(store);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // A stop, or the store dropped (the sender with it): either way, look again.
                _ = stop.changed() => {}
            }
        }
        tracing::info!("maintenance loop stopped");
    }

    /// Run one maintenance step now (waiting for a running one to end first). Task failures
    /// do not fail the step: they are in the report, logged and raised as alerts.
    /// [`Error::Closed`] after shutdown.
    pub async fn run_maintenance_step(&self) -> Result<MaintenanceStepReport> {
        let _step = self.maintenance.step.lock().await;
        self.check_open("run_maintenance_step")?;
        let n = self.maintenance.steps.fetch_add(1, Ordering::Relaxed) + 1;
        let span = tracing::info_span!("maintenance_step", step = n);
        let report = self.step_tasks().instrument(span).await;
        if !report.failures.is_empty() {
            self.maintenance
                .failed_steps
                .fetch_add(1, Ordering::Relaxed);
        }
        self.maintenance
            .last_step_ms
            .store(self.config.clock.now_ms(), Ordering::Relaxed);
        Ok(report)
    }

    async fn step_tasks(&self) -> MaintenanceStepReport {
        let started = Instant::now();
        let mut report = MaintenanceStepReport::default();
        self.hot.run_pending_tasks();

        report.warm = self
            .task("warm_upkeep", &mut report.failures, self.warm.run_upkeep())
            .await;

        self.task(
            "confirm_cold_problems",
            &mut report.failures,
            self.confirm_cold_problems(),
        )
        .await;

        let m = &self.config.maintenance;
        let limits = ArchiveLimits {
            max_records: m.archive_max_records_per_step,
            records_per_sec: Some(m.archive_records_per_sec),
            max_file_rows: Some(m.archive_commit_rows),
            stop: self.stopping.clone(),
            progress: None,
        };
        let cutoff = self.archive_cutoff_ms();
        report.archive = self
            .task(
                "archive",
                &mut report.failures,
                self.archive_with(cutoff, limits),
            )
            .await;
        report.backlog = report.archive.as_ref().is_some_and(|a| a.cut_short);

        if m.compact && !report.backlog {
            report.compaction = self
                .task(
                    "compact",
                    &mut report.failures,
                    self.compact_groups(COMPACTION_GROUPS_PER_STEP, None),
                )
                .await;
        }

        // Tombstones made since the archival's own publication (updates and removes of
        // archived records, settle steps) reach outside readers (`deletes.rs`).
        report.deletes = self
            .task(
                "publish_deletes",
                &mut report.failures,
                self.publish_deletes(),
            )
            .await;

        // Uploads a failed pass left uncommitted and files replaced past the grace period
        // leave the object store (`cold_storage/sweep.rs`).
        if self.cold.is_remote() {
            report.sweep = self
                .task(
                    "sweep_intents",
                    &mut report.failures,
                    self.sweep_cold_intents(),
                )
                .await;
        }

        self.evaluate_alerts().await;
        report.elapsed = started.elapsed();
        tracing::debug!(
            elapsed_ms = report.elapsed.as_millis() as u64,
            archived = report.archive.as_ref().map_or(0, |a| a.archived),
            backlog = report.backlog,
            failures = report.failures.len(),
            "maintenance step done"
        );
        report
    }

    /// Run one task of a step: on success clear its failure alert, on failure log it, raise
    /// the alert and record it.
    async fn task<T>(
        &self,
        name: &'static str,
        failures: &mut Vec<(String, String)>,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Option<T> {
        let now = || self.config.clock.now_ms();
        match work.await {
            Ok(v) => {
                self.alerts.lock().resolve_where(now(), |a| {
                    a.kind == AlertKind::MaintenanceFailure && a.subject == name
                });
                Some(v)
            }
            // Shutdown began during the step: the task was refused, it did not fail.
            Err(Error::Closed) if self.stopping.load(Ordering::Acquire) => None,
            Err(e) => {
                tracing::error!(task = name, error = %e, "maintenance task failed; the loop goes on");
                let finding = Finding::new(
                    AlertKind::MaintenanceFailure,
                    AlertSeverity::Critical,
                    "store",
                    format!("maintenance task {name} failed: {e}"),
                )
                .subject(name);
                self.alerts.lock().raise(finding, now());
                failures.push((name.to_owned(), e.to_string()));
                None
            }
        }
    }

    /// Confirm the problems reads reported: each live file with a problem on record is read
    /// in full. A bad one is quarantined (its records then fail fast, compaction skips it, and
    /// its alert stays until `verify_cold` finds it sound); a sound one (the read hit a
    /// transient I/O error) has its problems forgotten. Returns the files quarantined.
    pub(crate) async fn confirm_cold_problems(&self) -> Result<u64> {
        let suspects: std::collections::HashSet<i64> = self
            .cold
            .problems()
            .iter()
            .filter_map(|p| p.file_id)
            .collect();
        if suspects.is_empty() {
            return Ok(0);
        }
        let _move = self.moves.lock().await;
        self.check_open("confirm_cold_problems")?;
        let mut quarantined = 0;
        for e in self.cold.files()? {
            if e.state != FileState::Live || !suspects.contains(&e.file_id) {
                continue;
            }
            let cold = self.cold.clone();
            let (e, abs, found) = run_blocking(move || {
                let abs = cold.file_path(&e.path);
                let found = cold.check_file(&e, &abs, true);
                (e, abs, found)
            })
            .await?;
            match found {
                Some((kind, detail)) => {
                    tracing::error!(path = %abs.display(), ?kind, %detail, "cold file confirmed bad; quarantined");
                    self.cold.forget(&[e.file_id]);
                    self.cold
                        .report(ColdFileProblem::new(Some(e.file_id), abs, kind, detail));
                    self.warm
                        .set_file_state(e.file_id, FileState::Quarantined)
                        .await?;
                    quarantined += 1;
                }
                None => {
                    tracing::info!(path = %abs.display(), "cold file read back in full: sound; its problem was transient");
                    self.cold.clear_problems(|p| p.path == abs);
                }
            }
        }
        Ok(quarantined)
    }

    /// Re-evaluate every threshold alert from fresh metrics, disk figures and cold-file
    /// problems.
    pub(crate) async fn evaluate_alerts(&self) {
        let _one = self.maintenance.evaluation.lock().await;
        let metrics = match self.collect_metrics().await {
            Ok(m) => {
                self.alerts
                    .lock()
                    .resolve_where(self.config.clock.now_ms(), |a| {
                        a.kind == AlertKind::MaintenanceFailure && a.subject == "metrics"
                    });
                m
            }
            Err(e) => {
                tracing::warn!(error = %e, "alerts: metrics unavailable; threshold alerts left as they were");
                let finding = Finding::new(
                    AlertKind::MaintenanceFailure,
                    AlertSeverity::Critical,
                    "store",
                    format!("metrics could not be collected, so threshold alerts are stale: {e}"),
                )
                .subject("metrics");
                self.alerts
                    .lock()
                    .raise(finding, self.config.clock.now_ms());
                return;
            }
        };
        // Problems of files that left the catalog (compacted away, rebuilt) are over.
        if let Ok(entries) = self.cold.files() {
            let live: std::collections::HashSet<i64> = entries.iter().map(|e| e.file_id).collect();
            self.cold
                .clear_problems(|p| p.file_id.is_some_and(|f| !live.contains(&f)));
        }
        let dir = self.config.data_dir.clone();
        let cfg = self.config.alerts.clone();
        let disk = match run_blocking(move || disk::measure(&dir, &cfg)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: disk figures unavailable");
                return;
            }
        };
        let problems = self.cold.problems();
        let corruption = self.warm.corruption();
        let findings = alerts::evaluate(
            &self.config.alerts,
            &alerts::Inputs {
                metrics: &metrics,
                disk,
                cold_problems: &problems,
                warm_corruption: corruption.as_deref(),
                replication_lag_alert_secs: self.config.cold.replication_lag_alert_secs,
                failover_alert_after: self.config.cold.failover_alert_after,
            },
        );
        let now = self.config.clock.now_ms();
        self.alerts
            .lock()
            .observe(&alerts::EVALUATED, findings, now);
    }

    /// Active alerts, most severe first, re-evaluated now:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let coordinator = tiered_storage::AutoTieringCoordinator::new(
    /// #     tiered_storage::StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let alerts = coordinator.get_alerts().await;
    /// for alert in alerts {
    ///     println!("[{:?}] {}: {}", alert.severity, alert.tier_name, alert.message);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_alerts(&self) -> Vec<Alert> {
        self.evaluate_alerts().await;
        self.alerts.lock().active()
    }

    /// Alerts that were raised and have cleared, oldest first (at most
    /// `alerts.history_limit`).
    pub fn alert_history(&self) -> Vec<Alert> {
        self.alerts.lock().history()
    }

    /// Counters of the maintenance loop.
    pub fn maintenance_status(&self) -> MaintenanceStatus {
        let s = &self.maintenance;
        MaintenanceStatus {
            loop_running: s.running.load(Ordering::Acquire),
            steps: s.steps.load(Ordering::Relaxed),
            failed_steps: s.failed_steps.load(Ordering::Relaxed),
            last_step_ms: s.last_step_ms.load(Ordering::Relaxed),
            ..s.moved.lock().clone()
        }
    }

    /// Stop gracefully: a running archival ends at its next page and commits what it wrote,
    /// the current maintenance step finishes and the loop stops; then writes in flight
    /// complete and new ones fail with [`Error::Closed`]; then access statistics are flushed
    /// and the warm tier checkpointed. Every write acknowledged before or during shutdown is
    /// durable. Reads still work afterwards. Calling it again does nothing.
    ///
    /// Afterwards the data directory is free: another read-write open of it may start.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::sync::Arc;
    /// use tiered_storage::{AutoTieringCoordinator, Error, StorageConfig, TransactionRecord};
    ///
    /// let store = Arc::new(AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?);
    /// let maintenance = tokio::spawn(Arc::clone(&store).start_maintenance_loop());
    /// let id = store.put(&TransactionRecord::default()).await?;
    ///
    /// store.shutdown().await?;
    /// maintenance.await.unwrap(); // the loop has returned
    /// assert!(matches!(store.put(&TransactionRecord::default()).await, Err(Error::Closed)));
    /// assert!(store.get(id).await?.is_some()); // reads still work
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<()> {
        // A second call waits for the first to finish.
        let mut done = self.shutdown_done.lock().await;
        if *done {
            return Ok(());
        }
        self.stopping.store(true, Ordering::Release);
        if self.config.read_only {
            *done = true;
            return Ok(());
        }
        let span = tracing::info_span!("shutdown");
        async {
            self.maintenance.stop.send_replace(true);
            // The step in progress (if any) ends; none starts after this.
            let _step = self.maintenance.step.lock().await;
            // A tier move started outside the loop ends too.
            let _move = self.moves.lock().await;
            // Writes holding the gate finish; later ones see it closed.
            *self.gate.write().await = true;
            // Outside readers see every remove and update made before shutdown.
            if let Err(e) = self.publish_locked(Vec::new()).await {
                tracing::error!(error = %e, "publishing delete files at shutdown failed; the next open's first publication writes them");
            }
            self.warm.flush_access_stats().await?;
            let upkeep = self.warm.run_upkeep().await?;
            // The writer exits, closing its connection and releasing the directory's lock:
            // another process may open the store read-write from here on. Reads go on.
            let warm = self.warm.clone();
            run_blocking(move || warm.close_writer()).await?;
            tracing::info!(?upkeep, "store shut down");
            Ok::<_, Error>(())
        }
        .instrument(span)
        .await?;
        *done = true;
        Ok(())
    }

    /// [`Error::ReadOnly`] for a read-only handle, [`Error::Closed`] once shutdown has begun:
    /// whether `op`, which writes, may run.
    pub(crate) fn check_open(&self, op: &'static str) -> Result<()> {
        if self.config.read_only {
            return Err(Error::ReadOnly {
                path: self.config.data_dir.clone(),
                op,
            });
        }
        self.check_open_or_read_only()
    }

    /// [`Error::Closed`] once shutdown has begun, for operations a read-only handle may run.
    pub(crate) fn check_open_or_read_only(&self) -> Result<()> {
        if self.stopping.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}
