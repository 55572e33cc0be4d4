//! Protects replication of an object-store cold tier to a second store (`cold.replicas`), on
//! in-process `memory://` stores: the background replicator catches up (lag gauge back to 0)
//! and resumes after a restart from the catalog's state, within its rate limit; sync mode puts
//! every object on the replica before its commit (and a replica that cannot take it fails the
//! move, warm kept); compaction's deletes reach the replica through the intent sweep (a
//! replica down keeps the intents for the next sweep); `verify_cold` finds a
//! missing or damaged replica copy and `repair_replicas` restores it; reads fail over to the
//! replica when the primary fails (counted, alerted, cleared once it is back); the lag alert is
//! raised while the replica is down and cleared once it has caught up.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cold_config, record, runtime};
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tiered_storage::config::ReplicaConfig;
use tiered_storage::{
    memory_store, set_memory_store_failing, AlertKind, AutoTieringCoordinator, ReplicaProblemKind,
    StorageConfig, TransactionRecord,
};

type Store = AutoTieringCoordinator<TransactionRecord>;
type Model = BTreeMap<i64, TransactionRecord>;

/// The replica's name in metrics, alerts and the catalog.
const REPLICA: &str = "r";

/// Fresh `memory://` store names for one test: `(primary, replica)`.
fn names() -> (String, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = std::process::id();
    (format!("p-{id}-{n}"), format!("r-{id}-{n}"))
}

/// A store in `memory://primary` with one replica in `memory://replica`; no range cache (so
/// reads reach the stores), orphans swept at once.
fn config(dir: &std::path::Path, primary: &str, replica: &str) -> StorageConfig {
    let mut c = cold_config(dir);
    c.cold.store = format!("memory://{primary}");
    c.cold.replicas = vec![ReplicaConfig {
        name: Some(REPLICA.to_owned()),
        store: format!("memory://{replica}"),
        ..ReplicaConfig::default()
    }];
    c.cold.cache_max_bytes = 0;
    c.cold.orphan_grace_secs = 0;
    c.cold.s3_timeout_secs = 5;
    c.tiering.maintenance_interval = 3600;
    c
}

/// Puts records `from..to` (three old days: all due for archival).
async fn fill(store: &Store, model: &mut Model, from: u64, to: u64) {
    for i in from..to {
        let mut r = record(i, "repl");
        let id = store.put(&r).await.unwrap();
        r.id = Some(id);
        model.insert(id, r);
    }
}

/// Every object of a memory store: key → bytes.
async fn objects(name: &str) -> BTreeMap<String, u64> {
    let store = memory_store(name);
    let mut out = BTreeMap::new();
    let mut list = store.list(None);
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        out.insert(meta.location.to_string(), meta.size);
    }
    out
}

/// Bytes of `key` in a memory store.
async fn bytes_of(name: &str, key: &str) -> Vec<u8> {
    let store = memory_store(name);
    let got = store.get(&ObjPath::from(key)).await.unwrap();
    got.bytes().await.unwrap().to_vec()
}

/// Every catalogued object, data and delete files: key → bytes.
fn catalogued(store: &Store) -> BTreeMap<String, u64> {
    let cold = store.cold_tier();
    let mut out: BTreeMap<String, u64> = cold
        .files()
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.bytes))
        .collect();
    out.extend(
        cold.delete_files()
            .unwrap()
            .into_iter()
            .map(|d| (d.path, d.bytes)),
    );
    out
}

/// The replica's lag `(objects, bytes, seconds)` from `collect_metrics`.
async fn lag(store: &Store) -> (u64, u64, u64) {
    let m = store.collect_metrics().await.unwrap();
    assert_eq!(m.replication.len(), 1, "{:?}", m.replication);
    let l = &m.replication[0];
    assert_eq!(l.replica, REPLICA);
    (l.objects, l.bytes, l.seconds)
}

/// Every record of the model is readable by id, from whichever tier holds it.
async fn check(store: &Store, model: &Model, when: &str) {
    store.hot_tier().clear();
    for (id, r) in model {
        assert_eq!(
            store.get(*id).await.unwrap().as_ref(),
            Some(r),
            "{when}: id {id}"
        );
    }
}

/// The replica holds exactly the catalogued objects, byte for byte as the primary.
async fn assert_replica_matches(store: &Store, primary: &str, replica: &str, when: &str) {
    let want = catalogued(store);
    let on_replica = objects(replica).await;
    assert_eq!(on_replica, want, "{when}: replica vs catalog");
    for key in want.keys() {
        assert_eq!(
            bytes_of(replica, key).await,
            bytes_of(primary, key).await,
            "{when}: {key}"
        );
    }
}

#[test]
fn replication_loop_catches_up_and_the_lag_gauge_returns_to_zero() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let store = Arc::new(
            Store::open(config(dir.path(), &primary, &replica))
                .await
                .unwrap(),
        );
        let mut model = Model::new();
        fill(&store, &mut model, 0, 300).await;
        store.archive_now().await.unwrap();
        let want = catalogued(&store);
        assert!(want.len() >= 3, "{want:?}");

        // Nothing copied yet: the gauge counts every catalogued object, in Prometheus too.
        let (objects_behind, bytes_behind, _) = lag(&store).await;
        assert_eq!(objects_behind, want.len() as u64);
        assert_eq!(bytes_behind, want.values().sum::<u64>());
        let text = store.export_prometheus().await.unwrap();
        assert!(
            text.contains(&format!(
                "cold_replication_lag_objects{{replica=\"{REPLICA}\"}} {objects_behind}"
            )),
            "{text}"
        );

        // The loop started with maintenance copies everything, without waiting for the
        // maintenance interval (an hour).
        let maintenance = tokio::spawn(Arc::clone(&store).start_maintenance_loop());
        let started = Instant::now();
        while lag(&store).await.0 > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "replication did not catch up: {:?}",
                lag(&store).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(lag(&store).await, (0, 0, 0));
        assert_replica_matches(&store, &primary, &replica, "caught up").await;
        let text = store.export_prometheus().await.unwrap();
        assert!(
            text.contains(&format!(
                "cold_replication_lag_seconds{{replica=\"{REPLICA}\"}} 0"
            )),
            "{text}"
        );

        // New files are copied too.
        fill(&store, &mut model, 300, 400).await;
        store.archive_now().await.unwrap();
        let started = Instant::now();
        while lag(&store).await.0 > 0 {
            assert!(started.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_replica_matches(&store, &primary, &replica, "second pass").await;
        check(&store, &model, "after replication").await;
        store.shutdown().await.unwrap();
        maintenance.await.unwrap();
    });
}

#[test]
fn replication_resumes_after_a_restart_from_the_catalog_state() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let cfg = config(dir.path(), &primary, &replica);
        let mut model = Model::new();
        let first = {
            let store = Store::open(cfg.clone()).await.unwrap();
            fill(&store, &mut model, 0, 200).await;
            store.archive_now().await.unwrap();
            let report = store.replicate_now().await.unwrap();
            let first = catalogued(&store).len() as u64;
            assert_eq!(report.copied, first, "{report:?}");
            // More files, not replicated before the restart.
            fill(&store, &mut model, 200, 400).await;
            store.archive_now().await.unwrap();
            assert!(lag(&store).await.0 > 0);
            store.shutdown().await.unwrap();
            first
        };
        let store = Store::open(cfg).await.unwrap();
        let pending = lag(&store).await.0;
        let total = catalogued(&store).len() as u64;
        assert!(
            pending > 0 && pending <= total - first + 3,
            "{pending} of {total}"
        );
        // Only what was pending is copied: what the first run copied is not asked again.
        let report = store.replicate_now().await.unwrap();
        assert_eq!(
            report.copied + report.already_present,
            pending,
            "{report:?}"
        );
        assert!(report.failures.is_empty(), "{report:?}");
        assert_eq!(lag(&store).await, (0, 0, 0));
        assert_replica_matches(&store, &primary, &replica, "resumed").await;
        check(&store, &model, "after the restart").await;
    });
}

#[test]
fn replication_keeps_to_its_rate_limit() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let cfg = config(dir.path(), &primary, &replica);
        let mut model = Model::new();
        let sizes: Vec<u64> = {
            let store = Store::open(cfg.clone()).await.unwrap();
            for pass in 0..4u64 {
                fill(&store, &mut model, pass * 60, pass * 60 + 60).await;
                store.archive_now().await.unwrap();
            }
            let sizes = catalogued(&store).into_values().collect();
            store.shutdown().await.unwrap();
            sizes
        };
        let total: u64 = sizes.iter().sum();
        let largest = *sizes.iter().max().unwrap();
        // A quarter of the archive per second: the copies cannot all start within the first
        // second's allowance; each after it waits until the previous ones are paid for.
        let rate = total / 4;
        let mut cfg = cfg;
        cfg.cold.replication_max_bytes_per_sec = rate;
        let store = Store::open(cfg).await.unwrap();
        let started = Instant::now();
        let report = store.replicate_now().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(report.copied, sizes.len() as u64, "{report:?}");
        assert_eq!(report.bytes, total);
        // The last copy starts once all but it, less the bucket's first second, are paid for.
        let floor = (total - largest).saturating_sub(rate) as f64 / rate as f64;
        assert!(
            elapsed.as_secs_f64() >= floor * 0.95,
            "{elapsed:?} for {total} bytes at {rate} B/s (floor {floor:.2} s)"
        );
        assert_eq!(lag(&store).await, (0, 0, 0));
        assert_replica_matches(&store, &primary, &replica, "rate-limited").await;
    });
}

#[test]
fn sync_mode_puts_each_object_on_the_replica_before_its_commit() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let mut cfg = config(dir.path(), &primary, &replica);
        cfg.cold.replication_sync = true;
        let store = Store::open(cfg).await.unwrap();
        let mut model = Model::new();
        fill(&store, &mut model, 0, 300).await;
        store.archive_now().await.unwrap();
        // At commit, with no replication step: every catalogued object is on the replica.
        assert_replica_matches(&store, &primary, &replica, "sync archival").await;
        // The replicator only marks them.
        let report = store.replicate_now().await.unwrap();
        assert_eq!(report.copied, 0, "{report:?}");
        assert_eq!(
            report.already_present,
            catalogued(&store).len() as u64,
            "{report:?}"
        );
        assert_eq!(lag(&store).await, (0, 0, 0));

        // A replica that cannot take the object fails the move: warm keeps its rows, and the
        // maintenance step raises its failure alert.
        fill(&store, &mut model, 300, 400).await;
        let warm_before = store.get_stats().await.unwrap().warm_records;
        set_memory_store_failing(&replica, true);
        assert!(store.archive_now().await.is_err());
        assert_eq!(store.get_stats().await.unwrap().warm_records, warm_before);
        let step = store.run_maintenance_step().await.unwrap();
        assert!(
            step.failures.iter().any(|(task, _)| task == "archive"),
            "{:?}",
            step.failures
        );
        assert!(store
            .get_alerts()
            .await
            .iter()
            .any(|a| a.kind == AlertKind::MaintenanceFailure && a.subject == "archive"));
        check(&store, &model, "failed sync move").await;

        // Back: the next pass moves them, on both stores.
        set_memory_store_failing(&replica, false);
        store.archive_now().await.unwrap();
        assert_eq!(store.get_stats().await.unwrap().warm_records, 0);
        store.replicate_now().await.unwrap();
        assert_eq!(lag(&store).await, (0, 0, 0));
        assert_replica_matches(&store, &primary, &replica, "after the replica returned").await;
        check(&store, &model, "after the replica returned").await;
    });
}

#[test]
fn compaction_deletes_reach_the_replica_after_the_sweep() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let store = Store::open(config(dir.path(), &primary, &replica))
            .await
            .unwrap();
        let mut model = Model::new();
        // Several small archival passes: several small files per day, for compaction to merge.
        for pass in 0..4u64 {
            fill(&store, &mut model, pass * 60, pass * 60 + 60).await;
            store.archive_now().await.unwrap();
        }
        store.replicate_now().await.unwrap();
        let before = catalogued(&store);
        assert_eq!(objects(&replica).await, before);

        let report = store.compact_now().await.unwrap();
        assert!(report.files_in > report.files_out, "{report:?}");
        // The sweep (a maintenance task; the grace is 0) with the replica down: the replaced
        // objects leave the primary, and their intents stay for the next sweep.
        set_memory_store_failing(&replica, true);
        let step = store.run_maintenance_step().await.unwrap();
        let sweep = step.sweep.expect("the sweep ran");
        assert!(sweep.failed > 0 && sweep.deleted == 0, "{sweep:?}");
        let replaced: Vec<&String> = before
            .keys()
            .filter(|k| !catalogued(&store).contains_key(*k))
            .collect();
        assert!(!replaced.is_empty());
        let on_replica = objects(&replica).await;
        assert!(replaced.iter().all(|k| on_replica.contains_key(*k)));
        // Back: the next sweep deletes them from the replica too; the replicator copies the
        // outputs.
        set_memory_store_failing(&replica, false);
        let step = store.run_maintenance_step().await.unwrap();
        let sweep = step.sweep.expect("the sweep ran");
        assert_eq!(sweep.deleted, replaced.len() as u64, "{sweep:?}");
        assert_eq!(sweep.failed, 0, "{sweep:?}");
        store.replicate_now().await.unwrap();
        let after = catalogued(&store);
        assert!(before.keys().any(|k| !after.contains_key(k)));
        assert_eq!(objects(&primary).await, after, "primary");
        assert_replica_matches(&store, &primary, &replica, "after the sweep").await;
        assert_eq!(lag(&store).await, (0, 0, 0));
        check(&store, &model, "after compaction").await;
    });
}

#[test]
fn verify_cold_finds_missing_and_damaged_replica_copies_and_repair_restores_them() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let store = Store::open(config(dir.path(), &primary, &replica))
            .await
            .unwrap();
        let mut model = Model::new();
        fill(&store, &mut model, 0, 300).await;
        store.archive_now().await.unwrap();
        store.replicate_now().await.unwrap();
        let v = store.verify_cold().await.unwrap();
        assert!(v.replica_problems.is_empty(), "{:?}", v.replica_problems);

        // Delete one copy and truncate another, behind the store's back.
        let files: Vec<String> = store
            .cold_tier()
            .files()
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        let (gone, damaged) = (&files[0], &files[1]);
        let r = memory_store(&replica);
        r.delete(&ObjPath::from(gone.as_str())).await.unwrap();
        let mut short = bytes_of(&replica, damaged).await;
        short.truncate(short.len() / 2);
        r.put(&ObjPath::from(damaged.as_str()), PutPayload::from(short))
            .await
            .unwrap();

        let v = store.verify_cold().await.unwrap();
        let mut found: Vec<(String, ReplicaProblemKind, bool)> = v
            .replica_problems
            .iter()
            .map(|p| {
                assert_eq!(p.replica, REPLICA);
                (p.key.clone(), p.kind, p.repaired)
            })
            .collect();
        found.sort();
        let mut want = vec![
            (gone.clone(), ReplicaProblemKind::Missing, false),
            (damaged.clone(), ReplicaProblemKind::SizeMismatch, false),
        ];
        want.sort();
        assert_eq!(found, want);
        // The primary's files are sound: nothing quarantined.
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        // Unmarked, so the lag shows them again.
        assert_eq!(lag(&store).await.0, 2);

        let repaired = store.repair_replicas().await.unwrap();
        assert_eq!(repaired.len(), 2, "{repaired:?}");
        assert!(repaired.iter().all(|p| p.repaired), "{repaired:?}");
        assert_eq!(lag(&store).await, (0, 0, 0));
        assert_replica_matches(&store, &primary, &replica, "repaired").await;
        let v = store.verify_cold().await.unwrap();
        assert!(v.replica_problems.is_empty(), "{:?}", v.replica_problems);
    });
}

#[test]
fn reads_fail_over_to_the_replica_when_the_primary_fails_and_the_alert_clears_after() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let mut cfg = config(dir.path(), &primary, &replica);
        cfg.cold.failover_alert_after = 3;
        let store = Store::open(cfg).await.unwrap();
        let mut model = Model::new();
        fill(&store, &mut model, 0, 300).await;
        store.archive_now().await.unwrap();
        store.replicate_now().await.unwrap();
        assert_eq!(store.get_stats().await.unwrap().warm_records, 0);

        // The primary fails every request: every record still reads, from the replica.
        set_memory_store_failing(&primary, true);
        check(&store, &model, "primary failing").await;
        let m = store.collect_metrics().await.unwrap();
        let p = m.cold_stores.iter().find(|s| s.store == "primary").unwrap();
        assert!(p.failed_reads >= 3, "{p:?}");
        assert!(p.consecutive_failures >= 3, "{p:?}");
        // After 3 failures in a row the primary is skipped: the other reads went straight to
        // the replica, still counted as failovers of the primary.
        assert!(p.failovers > p.failed_reads, "{p:?}");
        let r = m.cold_stores.iter().find(|s| s.store == REPLICA).unwrap();
        assert_eq!(r.failed_reads, 0, "{r:?}");
        let alerts = store.get_alerts().await;
        assert!(
            alerts
                .iter()
                .any(|a| a.kind == AlertKind::ColdStoreFailing && a.subject == "primary"),
            "{alerts:?}"
        );
        let text = store.export_prometheus().await.unwrap();
        assert!(
            text.contains(&format!(
                "cold_store_failovers_total{{store=\"primary\"}} {}",
                p.failovers
            )),
            "{text}"
        );

        // Back: once the skip period is over, the next read probes the primary and succeeds,
        // and the alert clears.
        set_memory_store_failing(&primary, false);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        check(&store, &model, "primary back").await;
        let m = store.collect_metrics().await.unwrap();
        let p = m.cold_stores.iter().find(|s| s.store == "primary").unwrap();
        assert_eq!(p.consecutive_failures, 0, "{p:?}");
        assert!(!store
            .get_alerts()
            .await
            .iter()
            .any(|a| a.kind == AlertKind::ColdStoreFailing));
        assert!(store
            .alert_history()
            .iter()
            .any(|a| a.kind == AlertKind::ColdStoreFailing && a.subject == "primary"));
    });
}

#[test]
fn lag_alert_is_raised_while_the_replica_is_down_and_clears_after_it_catches_up() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (primary, replica) = names();
        let mut cfg = config(dir.path(), &primary, &replica);
        cfg.cold.replication_lag_alert_secs = 1;
        let store = Store::open(cfg).await.unwrap();
        let mut model = Model::new();
        fill(&store, &mut model, 0, 200).await;

        set_memory_store_failing(&replica, true);
        store.archive_now().await.unwrap();
        let report = store.replicate_now().await.unwrap();
        assert_eq!(report.copied, 0, "{report:?}");
        assert_eq!(report.failures.len(), 1, "{report:?}");
        assert!(report.failures[0].0 == REPLICA, "{report:?}");
        // Past the threshold: the alert names the replica.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(lag(&store).await.2 >= 2);
        let alerts = store.get_alerts().await;
        assert!(
            alerts
                .iter()
                .any(|a| a.kind == AlertKind::ColdReplicationLag && a.subject == REPLICA),
            "{alerts:?}"
        );
        // Reads do not touch the replica while the primary serves them.
        check(&store, &model, "replica down").await;

        set_memory_store_failing(&replica, false);
        let report = store.replicate_now().await.unwrap();
        assert!(
            report.copied > 0 && report.failures.is_empty(),
            "{report:?}"
        );
        assert_eq!(lag(&store).await, (0, 0, 0));
        assert!(!store
            .get_alerts()
            .await
            .iter()
            .any(|a| a.kind == AlertKind::ColdReplicationLag));
        assert!(store
            .alert_history()
            .iter()
            .any(|a| a.kind == AlertKind::ColdReplicationLag && a.subject == REPLICA));
        assert_replica_matches(&store, &primary, &replica, "caught up").await;
    });
}
