//! Protects the operations layer: maintenance steps age records by an injected clock, the loop
//! survives failures (alerting on them), shutdown loses no acknowledged write, and metrics and
//! alerts report what the store really holds.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{cold_config, record, runtime, DAY, T0};
use tiered_storage::{
    AlertKind, AlertSeverity, AutoTieringCoordinator, Error, ManualClock, StorageConfig,
    TransactionRecord,
};

/// The warm database's file name in the data directory.
const WARM_DB_FILE: &str = "warm.sqlite3";

/// The store's clock starts 30 days after the test records' timestamps.
const NOW: i64 = T0 + 30 * DAY;

fn config(dir: &std::path::Path, clock: &ManualClock) -> StorageConfig {
    let mut c = cold_config(dir).with_clock(clock.clone());
    c.tiering.maintenance_interval = 1;
    c.maintenance.backlog_interval_secs = 1;
    c
}

/// Puts `n` records whose timestamp is `at_ms` (ids in order).
async fn put_at(
    store: &AutoTieringCoordinator,
    n: u64,
    at_ms: i64,
    tag: &str,
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut r = record(i, tag);
        r.timestamp_decision_made = at_ms;
        ids.push(store.put(&r).await?);
    }
    Ok(ids)
}

#[test]
fn maintenance_step_ages_records_by_the_injected_clock() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let store = AutoTieringCoordinator::new(config(dir.path(), &clock)).await?;
        let age = store.config().tiering.warm_to_cold_age as i64 * 1000;
        // Written "now": not due for archival for 7 days.
        let ids = put_at(&store, 50, NOW, "a").await?;

        let step = store.run_maintenance_step().await?;
        assert_eq!(step.archive.as_ref().unwrap().archived, 0);
        assert!(step.failures.is_empty(), "{:?}", step.failures);
        let m = store.collect_metrics().await?;
        assert_eq!(m.warm.as_ref().unwrap().archival_lag_secs, 0);

        // One second short of the age: still warm. Then due: archived by the next step.
        clock.set(NOW + age - 1000);
        assert_eq!(
            store
                .run_maintenance_step()
                .await?
                .archive
                .unwrap()
                .archived,
            0
        );
        clock.set(NOW + age + 10_000);
        let m = store.collect_metrics().await?;
        assert_eq!(m.warm.as_ref().unwrap().archival_lag_secs, 10);
        let step = store.run_maintenance_step().await?;
        assert_eq!(step.archive.as_ref().unwrap().archived, 50);
        assert!(!step.backlog);
        let m = store.collect_metrics().await?;
        let (warm, cold) = (m.warm.unwrap(), m.cold.unwrap());
        assert_eq!((warm.record_count, warm.archival_lag_secs), (0, 0));
        assert_eq!((cold.record_count, cold.records_archived), (50, 50));
        assert!(cold.file_count >= 1);
        for (i, id) in ids.iter().enumerate() {
            let r = store.get(*id).await?.expect("archived record readable");
            assert_eq!(
                r.transaction_signature,
                record(i as u64, "a").transaction_signature
            );
        }
        assert_eq!(store.maintenance_status().steps, 3);
        Ok(())
    })
}

#[test]
fn maintenance_hot_ttl_follows_the_injected_clock() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let store = AutoTieringCoordinator::new(config(dir.path(), &clock)).await?;
        let ttl = Duration::from_secs(store.config().tiering.hot_to_warm_age);
        let id = put_at(&store, 1, NOW, "ttl").await?[0];
        assert!(store.hot_tier().contains_id(id));
        assert!(store.get(id).await?.is_some());
        assert_eq!(store.collect_metrics().await?.hot.unwrap().hits, 1);

        clock.advance(ttl - Duration::from_millis(1));
        assert!(store.get(id).await?.is_some());
        let hot = store.collect_metrics().await?.hot.unwrap();
        assert_eq!((hot.hits, hot.expirations), (2, 0));

        // Its time in hot is up: the read misses hot, is answered by warm, and counts an
        // expiration.
        clock.advance(Duration::from_millis(1));
        let r = store.get(id).await?.expect("still stored in warm");
        assert_eq!(r.id, Some(id));
        let m = store.collect_metrics().await?;
        let hot = m.hot.unwrap();
        assert_eq!((hot.hits, hot.misses, hot.expirations), (2, 1, 1));
        assert_eq!(m.warm.unwrap().hits, 1);
        assert!(!store.hot_tier().contains_id(id));
        Ok(())
    })
}

/// Blocks archival of `day`'s partition by putting a regular file where its directory goes.
fn block_partition(dir: &std::path::Path, day_ms: i64) -> std::path::PathBuf {
    let secs = day_ms / 1000;
    let days = secs / 86_400;
    // civil date of `days` since the epoch (the tests' records are in 2023-11).
    let date = time_date(days);
    let path = dir.join("cold").join(format!("date={date}"));
    std::fs::create_dir_all(dir.join("cold")).unwrap();
    std::fs::write(&path, b"not a directory").unwrap();
    path
}

fn time_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Polls `cond` every 20 ms for up to 60 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn maintenance_loop_goes_on_after_a_failure_and_alerts() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let store = Arc::new(AutoTieringCoordinator::new(config(dir.path(), &clock)).await?);
        let ids = put_at(&store, 40, T0, "fail").await?;
        let blocker = block_partition(dir.path(), T0);

        let looping = tokio::spawn(store.clone().start_maintenance_loop());
        wait_for("two failed steps", || {
            store.maintenance_status().failed_steps >= 2
        })
        .await;
        assert!(store.maintenance_status().loop_running);
        let alerts = store.get_alerts().await;
        let failure = alerts
            .iter()
            .find(|a| a.kind == AlertKind::MaintenanceFailure)
            .unwrap_or_else(|| panic!("no failure alert in {alerts:?}"));
        assert_eq!(failure.severity, AlertSeverity::Critical);
        assert_eq!(
            (failure.tier_name.as_str(), failure.subject.as_str()),
            ("store", "archive")
        );
        assert!(
            failure.message.contains("create cold partition"),
            "{}",
            failure.message
        );
        // Deduplicated: one alert, seen by every failed step.
        assert_eq!(
            alerts
                .iter()
                .filter(|a| a.kind == AlertKind::MaintenanceFailure)
                .count(),
            1
        );
        // Every record is still served while archival fails.
        assert!(store.get(ids[7]).await?.is_some());

        // The cause goes away: the loop, still running, archives and the alert clears.
        std::fs::remove_file(&blocker)?;
        wait_for("archival after the failure", || {
            store
                .cold_tier()
                .cold_stats()
                .map(|s| s.archived_since_open == 40)
                .unwrap_or(false)
        })
        .await;
        wait_for("the failure alert to clear", || {
            store
                .alert_history()
                .iter()
                .any(|a| a.kind == AlertKind::MaintenanceFailure)
        })
        .await;
        let resolved = store
            .alert_history()
            .into_iter()
            .find(|a| a.kind == AlertKind::MaintenanceFailure)
            .unwrap();
        assert!(resolved.occurrences >= 2, "{resolved:?}");
        assert!(resolved.resolved_ms.is_some());
        assert!(!store
            .get_alerts()
            .await
            .iter()
            .any(|a| a.kind == AlertKind::MaintenanceFailure));

        store.shutdown().await?;
        tokio::time::timeout(Duration::from_secs(30), looping).await??;
        assert!(!store.maintenance_status().loop_running);
        Ok(())
    })
}

#[test]
fn maintenance_shutdown_racing_puts_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(NOW);
    let acked: Vec<(i64, String)> = runtime().block_on(async {
        let store = Arc::new(AutoTieringCoordinator::new(config(dir.path(), &clock)).await?);
        // A backlog, so shutdown also races a running archival.
        put_at(&store, 3000, T0, "old").await?;
        let looping = tokio::spawn(store.clone().start_maintenance_loop());
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for i in 0.. {
                        let mut r = record(w * 1_000_000 + i, "race");
                        r.timestamp_decision_made = NOW;
                        let sig = r.transaction_signature.clone().unwrap();
                        match store.put(&r).await {
                            Ok(id) => acked.push((id, sig)),
                            Err(Error::Closed) => return acked,
                            Err(e) => panic!("put failed: {e}"),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.shutdown().await?;
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await?);
        }
        tokio::time::timeout(Duration::from_secs(30), looping).await??;
        assert!(acked.len() > 100, "writers made progress: {}", acked.len());
        // After shutdown every write is refused and nothing is written.
        let before = store.get_stats().await?.total_records;
        let late = record(99, "late");
        assert!(matches!(store.put(&late).await, Err(Error::Closed)));
        assert!(matches!(store.remove(acked[0].0).await, Err(Error::Closed)));
        assert!(matches!(store.archive_now().await, Err(Error::Closed)));
        assert!(matches!(
            store.run_maintenance_step().await,
            Err(Error::Closed)
        ));
        assert_eq!(store.get_stats().await?.total_records, before);
        // Reads still work, and a second shutdown is a no-op.
        assert!(store.get(acked[0].0).await?.is_some());
        store.shutdown().await?;
        Ok::<_, anyhow::Error>(acked)
    })?;

    // Reopen: every acknowledged write is there, and nothing else was added.
    runtime().block_on(async {
        let store =
            AutoTieringCoordinator::<TransactionRecord>::open(config(dir.path(), &clock)).await?;
        for (id, sig) in &acked {
            let r = store
                .get(*id)
                .await?
                .unwrap_or_else(|| panic!("acked {id} lost"));
            assert_eq!(r.transaction_signature.as_deref(), Some(sig.as_str()));
        }
        let stats = store.get_stats().await?;
        assert_eq!(stats.total_records, 3000 + acked.len() as u64);
        Ok(())
    })
}

#[test]
fn maintenance_alerts_for_archival_lag_and_corrupt_cold_files() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let store = AutoTieringCoordinator::new(config(dir.path(), &clock)).await?;
        let age = store.config().tiering.warm_to_cold_age as i64 * 1000;
        let grace = store.config().alerts.archival_grace_secs as i64 * 1000;
        let ids = put_at(&store, 20, NOW - age - grace + 5_000, "lag").await?;
        assert!(store.get_alerts().await.is_empty());

        // Ten seconds later the oldest warm record is 5 s past its grace period.
        clock.advance(Duration::from_secs(10));
        let alerts = store.get_alerts().await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].kind, alerts[0].tier_name.as_str()),
            (AlertKind::ArchivalLag, "warm")
        );
        assert_eq!(alerts[0].first_seen_ms, NOW + 10_000);
        clock.advance(Duration::from_secs(1));
        let again = store.get_alerts().await;
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].first_seen_ms, again[0].last_seen_ms),
            (NOW + 10_000, NOW + 11_000)
        );

        // A maintenance step archives them: the lag alert clears.
        let step = store.run_maintenance_step().await?;
        assert_eq!(step.archive.unwrap().archived, 20);
        assert!(store.get_alerts().await.is_empty());
        let history = store.alert_history();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].resolved_ms, Some(NOW + 11_000));

        // Damage a cold file: reading it fails loudly and raises a critical alert.
        let file = store.cold_tier().files()?.remove(0);
        let path = store.cold_tier().file_path(&file.path);
        let original = std::fs::read(&path)?;
        std::fs::write(&path, &original[..original.len() / 2])?;
        store.hot_tier().clear();
        assert!(store.get(ids[0]).await.is_err());
        let alerts = store.get_alerts().await;
        let corrupt: Vec<_> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::ColdFileCorruption)
            .collect();
        assert_eq!(corrupt.len(), 1, "{alerts:?}");
        assert_eq!(corrupt[0].severity, AlertSeverity::Critical);
        assert_eq!(corrupt[0].tier_name, "cold");
        assert_eq!(corrupt[0].subject, path.display().to_string());

        // Restored and verified: the alert clears.
        std::fs::write(&path, &original)?;
        let verify = store.verify_cold().await?;
        assert!(verify.problems.is_empty(), "{:?}", verify.problems);
        assert!(store.get_alerts().await.is_empty());
        assert!(store.get(ids[0]).await?.is_some());
        Ok(())
    })
}

#[test]
fn maintenance_metrics_report_real_bytes_evictions_and_promotions() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let mut c = config(dir.path(), &clock).with_hot_capacity(10);
        c.alerts.min_free_disk_bytes = None;
        let store = AutoTieringCoordinator::new(c).await?;
        let ids = put_at(&store, 30, T0, "m").await?;
        store.archive_now().await?;
        let recent = put_at(&store, 30, NOW, "n").await?;

        // Read an archived record twice: the second read promotes it into hot.
        store.hot_tier().clear();
        store.get(ids[3]).await?;
        store.get(ids[3]).await?;
        let m = store.collect_metrics().await?;
        let (hot, warm, cold) = (m.hot.unwrap(), m.warm.unwrap(), m.cold.unwrap());
        assert_eq!(hot.promotions, 1);
        assert_eq!(hot.capacity, Some(10));
        assert!(hot.record_count <= 10);
        // 30 puts and one promotion into 10 slots: the rest were evicted.
        assert!(hot.evictions >= 20, "{hot:?}");
        assert_eq!((cold.hits, hot.hits), (2, 0));

        // Bytes are measured: the files on disk. The checkpointer and the writer's free-page
        // slices may change them at any moment, so compare a reading taken between two equal
        // readings of the disk.
        let db = dir.path().join(WARM_DB_FILE);
        let wal = db.with_extension("sqlite3-wal");
        let on_disk = || {
            std::fs::metadata(&db).unwrap().len() + std::fs::metadata(&wal).map_or(0, |m| m.len())
        };
        let mut compared = false;
        for _ in 0..100 {
            let before = on_disk();
            let measured = store.collect_metrics().await?.warm.unwrap().bytes_stored;
            if on_disk() == before {
                assert_eq!(measured, before);
                compared = true;
                break;
            }
        }
        assert!(compared, "the warm files never held still for one reading");
        let cold_bytes: u64 = store
            .cold_tier()
            .files()?
            .iter()
            .map(|e| {
                std::fs::metadata(store.cold_tier().file_path(&e.path))
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(cold.bytes_stored, cold_bytes);
        assert_eq!(
            (warm.record_count, cold.record_count),
            (recent.len() as u64, ids.len() as u64)
        );

        // The Prometheus exposition carries the same figures.
        let text = store.export_prometheus().await?;
        assert!(text.contains(&format!("cold_bytes {cold_bytes}")), "{text}");
        assert!(text.contains("hot_promotion_total 1"), "{text}");
        assert!(
            text.contains("warm_access_seconds{quantile=\"0.95\"}"),
            "{text}"
        );
        Ok(())
    })
}

#[test]
fn maintenance_steps_never_overlap_and_a_second_loop_returns_at_once() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let mut c = config(dir.path(), &clock);
        // A slow step: 3,000 due records at 2,000 records/s take about 1.5 s to archive.
        c.maintenance.archive_records_per_sec = 2_000;
        c.tiering.maintenance_interval = 3600;
        let store = Arc::new(AutoTieringCoordinator::new(c).await?);
        put_at(&store, 3000, T0, "slow").await?;

        let first = tokio::spawn(store.clone().start_maintenance_loop());
        wait_for("the first loop to start", || {
            store.maintenance_status().loop_running
        })
        .await;
        // A second loop on the same store returns at once, leaving the first running.
        tokio::time::timeout(
            Duration::from_secs(5),
            store.clone().start_maintenance_loop(),
        )
        .await?;
        assert!(store.maintenance_status().loop_running);

        // A step asked for meanwhile waits for the loop's step to end, then finds nothing left.
        let t = std::time::Instant::now();
        let step = store.run_maintenance_step().await?;
        assert!(
            t.elapsed() >= Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(step.archive.unwrap().archived, 0);
        assert_eq!(store.cold_tier().cold_stats()?.archived_since_open, 3000);
        assert_eq!(store.maintenance_status().steps, 2);

        store.shutdown().await?;
        tokio::time::timeout(Duration::from_secs(30), first).await??;
        Ok(())
    })
}

#[test]
fn maintenance_cancelled_shutdown_still_closes_the_store_to_writes() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let mut c = config(dir.path(), &clock);
        c.maintenance.archive_records_per_sec = 1_000;
        let store = Arc::new(AutoTieringCoordinator::new(c).await?);
        put_at(&store, 2000, T0, "cancel").await?;
        let looping = tokio::spawn(store.clone().start_maintenance_loop());
        wait_for("a step to start", || {
            store.maintenance_status().loop_running
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The caller gives up on shutdown before the step ends: writes are refused anyway,
        // never half-accepted.
        let gave_up = tokio::time::timeout(Duration::from_micros(1), store.shutdown()).await;
        assert!(gave_up.is_err(), "shutdown finished inside 1 µs");
        let late = record(5, "after-cancel");
        assert!(matches!(store.put(&late).await, Err(Error::Closed)));
        assert!(store
            .get_by_signature(late.transaction_signature.as_deref().unwrap())
            .await?
            .is_none());
        // A second shutdown completes it; the loop stops.
        store.shutdown().await?;
        tokio::time::timeout(Duration::from_secs(30), looping).await??;
        Ok(())
    })
}

#[test]
fn maintenance_loop_does_not_keep_a_dropped_store_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(NOW);
    runtime().block_on(async {
        let store = Arc::new(AutoTieringCoordinator::new(config(dir.path(), &clock)).await?);
        let id = put_at(&store, 1, NOW, "drop").await?[0];
        let looping = tokio::spawn(store.clone().start_maintenance_loop());
        wait_for("the first step", || store.maintenance_status().steps >= 1).await;
        let weak = Arc::downgrade(&store);
        drop(store);
        // Between steps the loop holds the store weakly: dropping the last handle ends it.
        tokio::time::timeout(Duration::from_secs(30), looping).await??;
        assert!(weak.upgrade().is_none(), "the loop kept the store alive");
        // Closed for real: the same directory opens again, with the record in it.
        let again = AutoTieringCoordinator::new(config(dir.path(), &clock)).await?;
        assert!(again.get(id).await?.is_some());
        Ok(())
    })
}

#[test]
fn maintenance_step_quarantines_a_file_a_read_found_corrupt() -> anyhow::Result<()> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new(NOW);
        let store = AutoTieringCoordinator::new(config(dir.path(), &clock)).await?;
        // Two day partitions, so two files: one is damaged, the other keeps serving.
        let a = put_at(&store, 300, T0, "qa").await?;
        let b = put_at(&store, 300, T0 + 2 * DAY, "qb").await?;
        store.archive_now().await?;
        let files = store.cold_tier().files()?;
        assert_eq!(files.len(), 2);
        let damaged = files.iter().find(|e| e.min_id == a[0]).unwrap();
        let path = store.cold_tier().file_path(&damaged.path);

        // Overwrite the data pages, keeping the size and footer: only a read of the pages
        // notices, and the footer check at open and in verify_cold does not.
        let original = std::fs::read(&path)?;
        let mut bad = original.clone();
        let (lo, hi) = (4, bad.len() * 3 / 4);
        bad[lo..hi].fill(0xA5);
        std::fs::write(&path, &bad)?;
        store.hot_tier().clear();
        assert!(
            store.get(a[10]).await.is_err(),
            "a read of a damaged page fails loudly"
        );

        let step = store.run_maintenance_step().await?;
        assert!(step.failures.is_empty(), "{:?}", step.failures);
        let state = |id| {
            store
                .cold_tier()
                .files()
                .unwrap()
                .into_iter()
                .find(|e| e.file_id == id)
                .unwrap()
                .state
        };
        assert_eq!(
            state(damaged.file_id),
            tiered_storage::FileState::Quarantined
        );
        let alerts = store.get_alerts().await;
        assert!(
            alerts
                .iter()
                .any(|a| a.kind == AlertKind::ColdFileCorruption
                    && a.subject == path.display().to_string()),
            "{alerts:?}"
        );
        // Its records fail fast; the other file's are served.
        assert!(store.get(a[20]).await.is_err());
        assert!(store.get(b[20]).await?.is_some());
        // The footer alone looks fine, so a quarantined file is read in full before it is
        // revived: still damaged, still quarantined.
        let verify = store.verify_cold().await?;
        assert_eq!(verify.problems.len(), 1, "{:?}", verify.problems);
        assert!(verify.revived.is_empty());

        // Restored: verify_cold reads it in full, revives it, and the alert clears.
        std::fs::write(&path, &original)?;
        let verify = store.verify_cold().await?;
        assert!(verify.problems.is_empty(), "{:?}", verify.problems);
        assert_eq!(verify.revived, [damaged.file_id]);
        assert_eq!(state(damaged.file_id), tiered_storage::FileState::Live);
        assert!(!store
            .get_alerts()
            .await
            .iter()
            .any(|a| a.kind == AlertKind::ColdFileCorruption));
        assert!(store.get(a[20]).await?.is_some());
        Ok(())
    })
}
