//! Tier moves: archival (warm → cold), compaction (cold → cold) and the catalog tools. Each
//! move writes its file(s) first (temp, fsync, rename, fsync of the directory), then commits the
//! catalog change and the delete of the source in warm (compaction in one transaction;
//! archival as a catalog row, then settle steps that delete the warm rows a chunk at a time
//! between write batches, the file serving only what is settled), then removes what is no
//! longer referenced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::deletes::{compact_group, prepare_partition, GroupOutcome};
use super::AutoTieringCoordinator;
use crate::blocking::{join_error, run_blocking};
use crate::catalog::FileState;
use crate::cold_storage::{
    discard_path, ArchiveBuilder, ColdArchiveStorage, FinishedFile, VerifyReport,
};
use crate::error::{Error, Result};
use crate::failpoint::crash_point;
use crate::record::Record;
use crate::warm_storage::{ArchiveAck, WarmSqliteStorage};

/// What one archival pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArchiveReport {
    /// Parquet files written and catalogued.
    pub files: u64,
    /// Records moved from warm to cold.
    pub archived: u64,
    /// Records copied but changed or removed before the commit: warm keeps them and their
    /// copies are tombstoned.
    pub superseded: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Wall time of the pass.
    pub elapsed: Duration,
    /// Reading and decoding warm rows (on a reader thread, overlapping the rest).
    pub read_time: Duration,
    /// Encoding, compressing and publishing Parquet files.
    pub write_time: Duration,
    /// Catalog commits (catalogue the file, delete the warm rows), from start to end; they
    /// overlap the reading and writing of the next file.
    pub commit_time: Duration,
    /// The pass stopped at its record budget or because the store is shutting down, so
    /// records older than the cut-off may remain in warm for the next pass.
    pub cut_short: bool,
}

/// Bounds of one archival pass.
#[derive(Clone)]
pub(crate) struct ArchiveLimits {
    /// Most records to read from warm.
    pub max_records: u64,
    /// Most records per second to read (the reader waits between pages).
    pub records_per_sec: Option<u64>,
    /// Most rows per file (a file's warm rows are deleted in settle steps of
    /// `warm.settle_chunk_rows`, so this no longer bounds how long a put waits).
    pub max_file_rows: Option<u64>,
    /// Set when the store shuts down: the pass ends at the next page and publishes and
    /// commits what it has.
    pub stop: Arc<AtomicBool>,
    /// Called after each file's commit with the pass's totals so far.
    pub progress: Option<ProgressFn<ArchiveProgress>>,
}

/// A progress callback of a move.
pub(crate) type ProgressFn<P> = Arc<dyn Fn(&P) + Send + Sync>;

/// How far an archival pass has got, given to
/// [`archive_older_than_with_progress`](AutoTieringCoordinator::archive_older_than_with_progress)'s
/// callback after each file's commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ArchiveProgress {
    /// Records moved to cold so far.
    pub records_archived: u64,
    /// Files written and catalogued so far.
    pub files_written: u64,
    /// Bytes of those files.
    pub bytes_written: u64,
}

/// How far a compaction pass has got, given to
/// [`compact_now_with_progress`](AutoTieringCoordinator::compact_now_with_progress)'s callback
/// once when the pass is planned and after each group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CompactionProgress {
    /// Groups rewritten (or skipped because an input was quarantined) so far.
    pub groups_done: u64,
    /// Groups this pass will rewrite.
    pub groups_total: u64,
    /// Input files replaced so far.
    pub files_in: u64,
    /// Output files written so far.
    pub files_out: u64,
}

/// One keyset page of warm rows to archive: `(rev, record)`.
type ArchivePage<R> = Vec<(i64, R)>;

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionReport {
    /// Input files replaced.
    pub files_in: u64,
    /// Output files written.
    pub files_out: u64,
    /// Rows written to output files.
    pub rows_written: u64,
    /// Tombstoned rows dropped.
    pub rows_dropped: u64,
    /// Bytes of the inputs.
    pub bytes_in: u64,
    /// Bytes of the outputs.
    pub bytes_out: u64,
    /// Groups planned but left for a later pass (a maintenance step rewrites a bounded
    /// number).
    pub groups_left: u64,
}

/// What a catalog rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Catalog rows dropped because their file is gone.
    pub removed: u64,
    /// Files registered from their footers.
    pub added: u64,
    /// Rows of registered files tombstoned because a newer copy exists.
    pub tombstoned: u64,
}

/// What [`AutoTieringCoordinator::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntegrityReport {
    /// SQLite `quick_check` complaints about the warm database; empty when it is sound.
    pub warm_problems: Vec<String>,
    /// The cold files' check.
    pub cold: VerifyReport,
}

impl IntegrityReport {
    /// Whether nothing is wrong (replica copies included).
    pub fn is_clean(&self) -> bool {
        self.warm_problems.is_empty()
            && self.cold.problems.is_empty()
            && self.cold.replica_problems.iter().all(|p| p.repaired)
    }
}

impl<R: Record> AutoTieringCoordinator<R> {
    /// Archive every warm record older than `warm_to_cold_age` (by its timestamp) now.
    /// Unthrottled: the maintenance loop archives at a bounded rate instead.
    pub async fn archive_now(&self) -> Result<ArchiveReport> {
        self.archive_older_than(self.archive_cutoff_ms()).await
    }

    /// Records with a timestamp before this (by the store's clock) are due for archival.
    pub(crate) fn archive_cutoff_ms(&self) -> i64 {
        let age_ms = i64::try_from(self.config.tiering.warm_to_cold_age)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        self.config.clock.now_ms().saturating_sub(age_ms)
    }

    /// Archive every warm record with `timestamp_ms() < cutoff_ms`, in bounded batches: warm
    /// is read a keyset page at a time and each day partition's file is closed at the target
    /// size, so memory holds one page plus the open files' row-group buffers.
    pub async fn archive_older_than(&self, cutoff_ms: i64) -> Result<ArchiveReport> {
        let limits = ArchiveLimits {
            max_records: u64::MAX,
            records_per_sec: None,
            max_file_rows: None,
            stop: self.stopping.clone(),
            progress: None,
        };
        self.archive_with(cutoff_ms, limits).await
    }

    /// [`archive_older_than`](Self::archive_older_than), calling `progress` after each file's
    /// commit with the totals so far (for a progress bar; [`count_due_for_archival`] gives the
    /// total to expect). The callback runs on the pass's thread: keep it short.
    ///
    /// [`count_due_for_archival`]: Self::count_due_for_archival
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::sync::{Arc, Mutex};
    /// use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for t in 0..10 {
    ///     store.put(&TransactionRecord { timestamp_decision_made: t, ..Default::default() }).await?;
    /// }
    /// assert_eq!(store.count_due_for_archival(5).await?, 5);
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let report = store
    ///     .archive_older_than_with_progress(5, move |p| log.lock().unwrap().push(p.records_archived))
    ///     .await?;
    /// assert_eq!(report.archived, 5);
    /// assert_eq!(seen.lock().unwrap().last(), Some(&5));
    /// # Ok(()) }
    /// ```
    pub async fn archive_older_than_with_progress(
        &self,
        cutoff_ms: i64,
        progress: impl Fn(&ArchiveProgress) + Send + Sync + 'static,
    ) -> Result<ArchiveReport> {
        let limits = ArchiveLimits {
            max_records: u64::MAX,
            records_per_sec: None,
            max_file_rows: None,
            stop: self.stopping.clone(),
            progress: Some(Arc::new(progress)),
        };
        self.archive_with(cutoff_ms, limits).await
    }

    /// How many warm records have `timestamp_ms() < cutoff_ms`: what
    /// [`archive_older_than`](Self::archive_older_than) would move now (one count over the
    /// timestamp index).
    pub async fn count_due_for_archival(&self, cutoff_ms: i64) -> Result<u64> {
        let warm = self.warm.clone();
        run_blocking(move || warm.count_due(cutoff_ms)).await?
    }

    /// [`archive_older_than`](Self::archive_older_than) within `limits`.
    #[tracing::instrument(level = "debug", skip(self, limits), fields(max_records = limits.max_records))]
    pub(crate) async fn archive_with(
        &self,
        cutoff_ms: i64,
        limits: ArchiveLimits,
    ) -> Result<ArchiveReport> {
        let _move = self.moves.lock().await;
        self.check_open("archive")?;
        let started = Instant::now();
        // Outside readers see every tombstone before new versions of updated records land in
        // cold (`deletes.rs`).
        self.publish_locked(Vec::new()).await?;
        let warm = self.warm.clone();
        let cold = self.cold.clone();
        let handle = tokio::runtime::Handle::current();
        let mut report = run_blocking(move || {
            let mut report = ArchiveReport::default();
            let cut_short = AtomicBool::new(false);
            // Nothing due: no pass (and no scan of the young records).
            let Some(upto_id) = warm.max_due_id(cutoff_ms)? else {
                return Ok(report);
            };
            let max_file_rows = limits
                .max_file_rows
                .map_or(usize::MAX, |r| usize::try_from(r).unwrap_or(usize::MAX));
            let new_builder = || {
                let (h, w, c) = (handle.clone(), warm.clone(), cold.clone());
                ArchiveBuilder::new(cold.clone())
                    .with_max_file_rows(max_file_rows)
                    .with_before_publish(Box::new(move |partition, rows| {
                        prepare_partition(&h, &w, &c, partition, rows)
                    }))
            };
            let mut builder = new_builder();
            let mut commits = Commits {
                progress: limits.progress.clone(),
                ..Commits::default()
            };
            let batch = cold.config().archive_batch_rows;
            // Three stages overlap: a reader thread pages through warm, this thread encodes and
            // publishes files, the warm writer commits them.
            let result = std::thread::scope(|scope| {
                let (tx, rx) =
                    std::sync::mpsc::sync_channel::<Result<(ArchivePage<R>, Duration)>>(2);
                let reader = warm.clone();
                let cut_short = &cut_short;
                scope.spawn(move || {
                    let mut after = i64::MIN;
                    let mut read = 0u64;
                    loop {
                        // Ending here closes the channel: the consumer publishes and commits
                        // what it has, so a cut-short pass leaves nothing half-done.
                        if read >= limits.max_records || limits.stop.load(Ordering::Acquire) {
                            cut_short.store(true, Ordering::Relaxed);
                            return;
                        }
                        if let Some(rate) = limits.records_per_sec {
                            if !pace(started, read, rate, &limits.stop) {
                                cut_short.store(true, Ordering::Relaxed);
                                return;
                            }
                        }
                        // A page never exceeds a file's row cap, so no file (and no commit)
                        // passes the cap by more than one page's rows.
                        let want = batch
                            .min((limits.max_records - read) as usize)
                            .min(max_file_rows);
                        let t = Instant::now();
                        let page = reader.archive_page(cutoff_ms, after, upto_id, want);
                        let last = match &page {
                            Ok(p) => p
                                .last()
                                .map(|(_, r)| r.id().expect("warm rows carry their id")),
                            Err(_) => None,
                        };
                        read += page.as_ref().map_or(0, |p| p.len() as u64);
                        // Stop at the end, on an error, or when the consumer has gone.
                        if tx.send(page.map(|p| (p, t.elapsed()))).is_err() {
                            return;
                        }
                        match last {
                            Some(id) => after = id,
                            None => return,
                        }
                    }
                });
                (|| {
                    for msg in &rx {
                        let (page, read) = msg?;
                        report.read_time += read;
                        if page.is_empty() {
                            break;
                        }
                        let t = Instant::now();
                        let finished = builder.add_page(page)?;
                        report.write_time += t.elapsed();
                        commits.start_all(&handle, &warm, finished, &cold, &mut report)?;
                    }
                    let t = Instant::now();
                    let finished = std::mem::replace(&mut builder, new_builder()).finish()?;
                    report.write_time += t.elapsed();
                    commits.start_all(&handle, &warm, finished, &cold, &mut report)?;
                    Ok::<_, Error>(())
                })()
            });
            // Every commit started is awaited, even after an error, so none is left running
            // when the pass returns.
            let drained = commits.drain(&handle, &cold, &mut report);
            // Published files whose commit never ran or was rolled back are not catalogued:
            // remove them now rather than leave them to the next open.
            for relative in &commits.orphans {
                discard_path(&cold, relative);
            }
            report.cut_short = cut_short.load(Ordering::Relaxed);
            result.and(drained).map(|()| report)
        })
        .await??;
        report.elapsed = started.elapsed();
        self.maintenance
            .note_archive(&report, self.config.clock.now_ms());
        if report.files > 0 {
            self.wake_replication();
            tracing::info!(
                files = report.files,
                archived = report.archived,
                superseded = report.superseded,
                elapsed_ms = report.elapsed.as_millis() as u64,
                "archival pass"
            );
        }
        Ok(report)
    }

    /// Merge small cold files and rewrite files with many superseded or deleted rows. Each
    /// group's output is published before its catalog switch; the inputs are removed after it.
    pub async fn compact_now(&self) -> Result<CompactionReport> {
        self.compact_groups(usize::MAX, None).await
    }

    /// [`compact_now`](Self::compact_now), calling `progress` once the pass is planned and
    /// after each group (for a progress bar). The callback runs on the caller's task: keep it
    /// short.
    pub async fn compact_now_with_progress(
        &self,
        progress: impl Fn(&CompactionProgress) + Send + Sync + 'static,
    ) -> Result<CompactionReport> {
        self.compact_groups(usize::MAX, Some(Arc::new(progress)))
            .await
    }

    /// [`compact_now`](Self::compact_now), rewriting at most `max_groups` groups (each at
    /// most one target-size output file).
    #[tracing::instrument(level = "debug", skip(self, progress))]
    pub(crate) async fn compact_groups(
        &self,
        max_groups: usize,
        progress: Option<ProgressFn<CompactionProgress>>,
    ) -> Result<CompactionReport> {
        let _move = self.moves.lock().await;
        self.check_open("compact")?;
        let mut report = CompactionReport::default();
        let entries = self.cold.files()?;
        let groups = self.cold.plan_compaction(&entries);
        let planned = groups.len();
        report.groups_left = planned.saturating_sub(max_groups) as u64;
        let mut shown = CompactionProgress {
            groups_total: planned.min(max_groups) as u64,
            ..Default::default()
        };
        let show = |shown: &CompactionProgress| {
            if let Some(f) = &progress {
                f(shown);
            }
        };
        show(&shown);
        for (done, group) in groups.into_iter().take(max_groups).enumerate() {
            // Shutdown waits for the group being rewritten, not for the rest.
            if self.stopping.load(Ordering::Acquire) {
                report.groups_left = (planned - done) as u64;
                break;
            }
            let (warm, cold) = (self.warm.clone(), self.cold.clone());
            let handle = tokio::runtime::Handle::current();
            let g = group.clone();
            let outcome = run_blocking(move || compact_group(&handle, &warm, &cold, &g)).await??;
            let (output, dropped) = match outcome {
                GroupOutcome::Skipped { file_id } => {
                    tracing::info!(
                        file_id,
                        "compaction group skipped: an input was quarantined meanwhile"
                    );
                    shown.groups_done += 1;
                    show(&shown);
                    continue;
                }
                GroupOutcome::Done { output, dropped } => (output, dropped),
            };
            report.files_in += group.inputs.len() as u64;
            report.bytes_in += group.inputs.iter().map(|e| e.bytes).sum::<u64>();
            report.rows_dropped += dropped;
            let new_file_bytes = output.as_ref().map(|f| f.file.bytes);
            if let Some(f) = &output {
                report.files_out += 1;
                report.rows_written += f.file.rows;
                report.bytes_out += f.file.bytes;
            }
            self.maintenance
                .note_compaction(&group, new_file_bytes, self.config.clock.now_ms());
            self.wake_replication();
            shown.groups_done += 1;
            shown.files_in += group.inputs.len() as u64;
            shown.files_out += u64::from(new_file_bytes.is_some());
            show(&shown);
        }
        Ok(report)
    }

    /// Check the whole store: SQLite's `quick_check` of the warm database (every page), then
    /// [`verify_cold`](Self::verify_cold). A damaged warm database is reported (and alerted),
    /// not fixed: restore it from a copy made with `backup_to`. A clean check clears the
    /// warm-corruption alert.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn verify(&self) -> Result<IntegrityReport> {
        let warm = self.warm.clone();
        let warm_problems = run_blocking(move || warm.quick_check()).await??;
        let cold = self.verify_cold().await?;
        Ok(IntegrityReport {
            warm_problems,
            cold,
        })
    }

    /// Open every cold file afresh and check its footer (row count, id and time ranges, size)
    /// against the catalog. Files that do not match are quarantined and reported; quarantined
    /// files found sound again are served again. With `cold.replicas`, every replica's copy of
    /// every catalogued object is checked too (presence and size): a missing or damaged copy
    /// is in `replica_problems` and is copied again by the replicator
    /// ([`repair_replicas`](Self::repair_replicas) copies it at once).
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn verify_cold(&self) -> Result<VerifyReport> {
        let _move = self.moves.lock().await;
        self.check_open_or_read_only()?;
        let cold = self.cold.clone();
        let read_only = self.config.read_only;
        let report = run_blocking(move || {
            let mut report = cold.verify()?;
            // Every replica's copy of every catalogued object: present, and of the right size.
            report.replica_problems = cold.verify_replicas(false, read_only)?;
            Ok::<_, Error>(report)
        })
        .await??;
        if self.config.read_only {
            // A read-only handle reports; the owner's next verify or step quarantines.
            return Ok(report);
        }
        let entries = self.cold.files()?;
        for p in &report.problems {
            if let Some(file_id) = p.file_id {
                if entries
                    .iter()
                    .any(|e| e.file_id == file_id && e.state == FileState::Live)
                {
                    self.warm
                        .set_file_state(file_id, FileState::Quarantined)
                        .await?;
                }
            }
        }
        for &file_id in &report.revived {
            self.warm.set_file_state(file_id, FileState::Live).await?;
        }
        Ok(report)
    }

    /// Delete the uncatalogued objects of an object-store cold tier whose intent is older
    /// than `cold.orphan_grace_secs` (uploads whose commit never came, files replaced by
    /// compaction or a delete-file publication), from the primary and every replica, and
    /// drop the intents of catalogued ones. Runs at open and in every maintenance step; it
    /// never lists the bucket. Does nothing on a local cold tier.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sweep_cold_intents(&self) -> Result<crate::cold_storage::SweepReport> {
        let _move = self.moves.lock().await;
        self.check_open("sweep_cold_intents")?;
        let cold = self.cold.clone();
        run_blocking(move || cold.sweep_intents_now()).await?
    }

    /// Rebuild the cold catalog from the Parquet footers alone: drop rows of files that are
    /// gone and register files that have no row, tombstoning any of their records that exist
    /// in warm or in a newer file, so every record is still served exactly once. For a lost
    /// or damaged catalog.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn rebuild_cold_catalog(&self) -> Result<RebuildReport> {
        let _move = self.moves.lock().await;
        self.check_open("rebuild_cold_catalog")?;
        let cold = self.cold.clone();
        let plan = run_blocking(move || cold.rebuild_plan()).await??;
        let report = RebuildReport {
            removed: plan.remove.len() as u64,
            added: plan.add.len() as u64,
            tombstoned: plan.add.iter().map(|(_, d)| d.len() as u64).sum(),
        };
        self.cold.forget(&plan.remove);
        let removed = plan.remove.clone();
        self.warm.rebuild_catalog(plan).await?;
        // A rebuilt catalog may serve other rows: no cached answer holds any more.
        self.warm.generations().bump_all();
        // Files now catalogued, or dropped from the catalog, no longer need an alert.
        self.cold.clear_problems(|p| {
            p.kind == crate::ProblemKind::Uncatalogued
                || p.file_id.is_some_and(|f| removed.contains(&f))
        });
        Ok(report)
    }
}

/// Wait until reading `read` records since `started` keeps under `rate` per second. Returns
/// false if `stop` was set meanwhile.
fn pace(started: Instant, read: u64, rate: u64, stop: &AtomicBool) -> bool {
    let due = Duration::from_secs_f64(read as f64 / rate as f64);
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let elapsed = started.elapsed();
        if elapsed >= due {
            return true;
        }
        std::thread::sleep((due - elapsed).min(Duration::from_millis(20)));
    }
}

/// Step 4 of archival moves (steps 1–3 ran in `finish`): catalogue each file, then settle its
/// rows (delete the warm rows still at the copied version, tombstone the others) in small
/// writer transactions between write batches; a commit is answered after its last settle step.
/// Commits run on the warm writer thread while the next file is written (at most
/// `MAX_PENDING_COMMITS` at a time), so reading and encoding overlap them.
#[derive(Default)]
struct Commits {
    /// Started commits: start time, bytes, the file's relative path, the task.
    pending: std::collections::VecDeque<(
        Instant,
        u64,
        String,
        tokio::task::JoinHandle<Result<ArchiveAck>>,
    )>,
    /// Published files that certainly will not be catalogued: their commit never started, or
    /// it failed in SQLite (rolled back).
    orphans: Vec<String>,
    /// Told the pass's totals after each commit.
    progress: Option<ProgressFn<ArchiveProgress>>,
}

const MAX_PENDING_COMMITS: usize = 2;

impl Commits {
    fn start<R: Record>(
        &mut self,
        handle: &tokio::runtime::Handle,
        warm: &WarmSqliteStorage<R>,
        file: FinishedFile,
        cold: &ColdArchiveStorage<R>,
        report: &mut ArchiveReport,
    ) -> Result<()> {
        if self.pending.len() >= MAX_PENDING_COMMITS {
            if let Err(e) = self.finish_one(handle, cold, report) {
                self.orphans.push(file.file.path);
                return Err(e);
            }
        }
        let warm = warm.clone();
        let bytes = file.file.bytes;
        let path = file.file.path.clone();
        let task = handle.spawn(async move { warm.commit_archive(file.file, file.rows).await });
        self.pending.push_back((Instant::now(), bytes, path, task));
        Ok(())
    }

    /// Start the commits of `files` in order; on an error, the files not started are orphans.
    fn start_all<R: Record>(
        &mut self,
        handle: &tokio::runtime::Handle,
        warm: &WarmSqliteStorage<R>,
        files: Vec<FinishedFile>,
        cold: &ColdArchiveStorage<R>,
        report: &mut ArchiveReport,
    ) -> Result<()> {
        let mut files = files.into_iter();
        while let Some(file) = files.next() {
            if let Err(e) = self.start(handle, warm, file, cold, report) {
                self.orphans.extend(files.map(|f| f.file.path));
                return Err(e);
            }
        }
        Ok(())
    }

    fn finish_one<R: Record>(
        &mut self,
        handle: &tokio::runtime::Handle,
        cold: &ColdArchiveStorage<R>,
        report: &mut ArchiveReport,
    ) -> Result<()> {
        let Some((started, bytes, path, task)) = self.pending.pop_front() else {
            return Ok(());
        };
        let ack = match handle.block_on(task).map_err(join_error)? {
            Ok(ack) => ack,
            Err(e) => {
                // An SQLite error rolled the transaction back; other errors (the writer gone)
                // leave the outcome unknown, and the next open sorts the file out.
                if matches!(e, Error::Sqlite { .. }) {
                    self.orphans.push(path);
                }
                return Err(e);
            }
        };
        report.commit_time += started.elapsed();
        crash_point("archive:committed");
        cold.note_archived(ack.archived);
        report.files += 1;
        report.archived += ack.archived;
        report.superseded += ack.superseded;
        report.bytes += bytes;
        if let Some(f) = &self.progress {
            f(&ArchiveProgress {
                records_archived: report.archived,
                files_written: report.files,
                bytes_written: report.bytes,
            });
        }
        Ok(())
    }

    /// Await every pending commit; the first error wins.
    fn drain<R: Record>(
        &mut self,
        handle: &tokio::runtime::Handle,
        cold: &ColdArchiveStorage<R>,
        report: &mut ArchiveReport,
    ) -> Result<()> {
        let mut first = Ok(());
        while !self.pending.is_empty() {
            if let Err(e) = self.finish_one(handle, cold, report) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    //! Archival and compaction on a cold store that fails a chosen call: the move returns a
    //! typed error, every acknowledged record stays readable, nothing is left that a reopen
    //! would mishandle, and running the move again succeeds.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;
    use crate::cold_storage::store::faulty::{install, Fault, FaultyStore, Op};
    use crate::cold_storage::COLD_DIR;
    use crate::config::StorageConfig;
    use crate::record::tests::sample;
    use crate::record::TransactionRecord;

    type Store = AutoTieringCoordinator<TransactionRecord>;
    type Model = BTreeMap<i64, TransactionRecord>;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_700_000_000_000;

    /// Small pages and batches, one open partition: a few hundred records make many files.
    fn config(dir: &Path) -> StorageConfig {
        let mut c = StorageConfig::default().with_data_dir(dir);
        c.cold.archive_batch_rows = 100;
        c.cold.row_group_rows = 1024;
        c.cold.data_page_rows = 64;
        c.cold.max_open_partitions = 1;
        c
    }

    /// A store whose cold files go through a [`FaultyStore`], and that store.
    async fn open_faulty(dir: &Path) -> (Store, FaultyStore) {
        let faulty = FaultyStore::create(dir.join(COLD_DIR)).unwrap();
        install(Arc::new(faulty.clone()));
        let store = Store::open(config(dir)).await.unwrap();
        (store, faulty)
    }

    /// Records over three old days, interleaved by id.
    async fn fill(store: &Store, n: u64) -> Model {
        let mut model = Model::new();
        for i in 0..n {
            let mut r = sample(i);
            r.transaction_signature = Some(format!("faultsig{i:080}"));
            r.timestamp_decision_made = T0 + (i % 3) as i64 * DAY + i as i64;
            let id = store.put(&r).await.unwrap();
            r.id = Some(id);
            model.insert(id, r);
        }
        model
    }

    /// Every record of the model is readable by id and by signature, from warm or cold.
    async fn check(store: &Store, model: &Model, when: &str) {
        store.hot_tier().clear();
        for (id, r) in model {
            assert_eq!(
                store.get(*id).await.unwrap().as_ref(),
                Some(r),
                "{when}: id {id}"
            );
            let sig = r.transaction_signature.as_deref().unwrap();
            assert_eq!(
                store.get_by_signature(sig).await.unwrap().as_ref(),
                Some(r),
                "{when}: signature of {id}"
            );
        }
        assert_eq!(
            store.get_stats().await.unwrap().total_records,
            model.len() as u64,
            "{when}"
        );
    }

    /// `(catalogued, on disk)` cold files, data and delete files; the disk side lists staged
    /// files too.
    fn files(store: &Store, dir: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut catalogued: BTreeSet<String> = store
            .cold_tier()
            .files()
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        catalogued.extend(
            store
                .cold_tier()
                .delete_files()
                .unwrap()
                .into_iter()
                .map(|d| d.path),
        );
        let mut on_disk = BTreeSet::new();
        fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let key = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                if e.path().is_dir() {
                    walk(&e.path(), &key, out);
                } else {
                    out.insert(key);
                }
            }
        }
        walk(&dir.join(COLD_DIR), "", &mut on_disk);
        (catalogued, on_disk)
    }

    /// Shut the store down, open it again, and check every record and the directory.
    async fn reopen_and_check(store: Store, dir: &Path, model: &Model, when: &str) {
        store.shutdown().await.unwrap();
        drop(store);
        let store = Store::open(config(dir)).await.unwrap();
        check(&store, model, &format!("{when}, reopened")).await;
        assert_clean(&store, dir, when);
    }

    /// No staged file and no uncatalogued file is left.
    fn assert_clean(store: &Store, dir: &Path, when: &str) {
        let (catalogued, on_disk) = files(store, dir);
        assert_eq!(catalogued, on_disk, "{when}");
    }

    fn assert_typed(e: &Error, fault: Fault, when: &str) {
        match (e, fault) {
            (Error::Io { source, .. }, Fault::Enospc) => {
                assert_eq!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull,
                    "{when}: {e}"
                )
            }
            (Error::Io { .. }, _) => {}
            _ => panic!("{when}: not an I/O error: {e}"),
        }
    }

    /// Fail the `nth` call of `op` during archival; then heal, archive again and reopen.
    async fn archival_with_fault(op: Op, nth: u64, fault: Fault) {
        let when = format!("archival, {op:?} #{nth} {fault:?}");
        let dir = tempfile::tempdir().unwrap();
        let (store, faulty) = open_faulty(dir.path()).await;
        let model = fill(&store, 300).await;
        faulty.fail(op, nth, fault);
        let err = store.archive_now().await.unwrap_err();
        assert_eq!(faulty.fired(), vec![(op, fault)], "{when}");
        assert_typed(&err, fault, &when);
        check(&store, &model, &when).await;
        assert_clean(&store, dir.path(), &when);

        faulty.heal();
        let report = store.archive_now().await.unwrap();
        assert!(report.archived > 0, "{when}: {report:?}");
        assert_eq!(store.get_stats().await.unwrap().warm_records, 0, "{when}");
        check(&store, &model, &when).await;
        assert_clean(&store, dir.path(), &when);
        reopen_and_check(store, dir.path(), &model, &when).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_storage_archival_survives_publish_faults() {
        for fault in [Fault::Eio, Fault::Enospc, Fault::ShortWrite] {
            archival_with_fault(Op::Publish, 3, fault).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_storage_archival_survives_stage_write_open_and_len_faults() {
        archival_with_fault(Op::Stage, 2, Fault::Enospc).await;
        archival_with_fault(Op::Write, 5, Fault::ShortWrite).await;
        archival_with_fault(Op::Open, 2, Fault::Eio).await;
        archival_with_fault(Op::Len, 2, Fault::Eio).await;
    }

    /// Archive 300 records into many small files, then fail the `nth` call of `op` during
    /// compaction. `fails`: whether the fault fails the pass (a failed removal of a compacted
    /// input is only logged: the input is uncatalogued, and the next open removes it).
    async fn compaction_with_fault(op: Op, nth: u64, fault: Fault, fails: bool) {
        let when = format!("compaction, {op:?} #{nth} {fault:?}");
        let dir = tempfile::tempdir().unwrap();
        let (store, faulty) = open_faulty(dir.path()).await;
        let model = fill(&store, 300).await;
        store.archive_now().await.unwrap();
        let before = store.cold_tier().files().unwrap().len();
        assert!(before > 3, "{when}: {before} files");
        faulty.fail(op, nth, fault);
        let result = store.compact_now().await;
        assert_eq!(faulty.fired(), vec![(op, fault)], "{when}");
        match (result, fails) {
            (Err(e), true) => assert_typed(&e, fault, &when),
            (Ok(report), false) => assert!(report.files_in > 0, "{when}: {report:?}"),
            (other, _) => panic!("{when}: {other:?}"),
        }
        check(&store, &model, &when).await;
        if fails || op != Op::Delete {
            assert_clean(&store, dir.path(), &when);
        } else {
            // The input that could not be removed is left, uncatalogued, for the next open.
            let (catalogued, on_disk) = files(&store, dir.path());
            assert_eq!(on_disk.difference(&catalogued).count(), 1, "{when}");
        }

        faulty.heal();
        store.compact_now().await.unwrap();
        let after = store.cold_tier().files().unwrap().len();
        assert!(after < before, "{when}: {before} -> {after} files");
        check(&store, &model, &when).await;
        reopen_and_check(store, dir.path(), &model, &when).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_storage_compaction_survives_publish_faults() {
        for fault in [Fault::Eio, Fault::Enospc, Fault::ShortWrite] {
            compaction_with_fault(Op::Publish, 1, fault, true).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_storage_compaction_survives_open_delete_and_sync_faults() {
        compaction_with_fault(Op::Open, 1, Fault::Eio, true).await;
        compaction_with_fault(Op::Delete, 1, Fault::Eio, false).await;
        compaction_with_fault(Op::Sync, 1, Fault::Eio, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_storage_open_fails_typed_when_listing_fails_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_faulty(dir.path()).await;
        let model = fill(&store, 120).await;
        store.archive_now().await.unwrap();
        store.shutdown().await.unwrap();
        drop(store);
        for op in [Op::List, Op::Sync] {
            let faulty = FaultyStore::create(dir.path().join(COLD_DIR)).unwrap();
            faulty.fail(op, 1, Fault::Eio);
            install(Arc::new(faulty.clone()));
            let err = Store::open(config(dir.path())).await.unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{op:?}: {err}");
            assert_eq!(faulty.fired(), vec![(op, Fault::Eio)]);
        }
        let store = Store::open(config(dir.path())).await.unwrap();
        check(&store, &model, "reopened after failed opens").await;
        assert_clean(&store, dir.path(), "reopened");
    }
}
