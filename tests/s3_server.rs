//! Protects the cold tier in a real S3 bucket (issue 14, section 5), against s3s-fs servers
//! started by `scripts/s3_server.sh` (`scripts/test.sh` starts two, `primary` and `replica`,
//! and exports where they are), through the public API and the config keys `cold.store =
//! "s3://BUCKET/PREFIX"`, `cold.s3_endpoint`, `cold.s3_region`, `cold.s3_allow_http` with
//! credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`:
//!
//! - archival, reads by id and by signature, scans, updates and removes of archived records,
//!   compaction, `verify_cold` and reopen, all on the bucket, whose directory on the server's
//!   disk holds exactly the catalogued objects as `<prefix>/date=YYYY-MM-DD/part-N.parquet`;
//! - the server stopped before an upload, and stopped while an archival uploads, then
//!   restarted: the archival fails with a typed error, warm keeps every record, the
//!   maintenance-failure alert is raised, the next step succeeds and nothing is lost; the
//!   orphans of the failed uploads are swept (`orphan_grace_secs = 0`);
//! - the primary stopped: reads fail over to the replica and the failing store's alert is raised;
//! - the replica stopped, then restarted: the replication-lag alert is raised, then the replica
//!   catches up (lag 0, the same objects on its disk), and compaction's deletes reach it;
//! - the range cache: a reopened store reads archived records with the server stopped (the
//!   cache survived), and corrupted cache blocks are detected and fetched again.
//!
//! Tests that stop a server start instances of their own (`Server`), so the shared ones stay
//! up for the others. Without a server every test prints `SKIPPED` and the reason; with
//! `TIERED_STORAGE_S3_REQUIRED=1` (scripts/test.sh) that is a failure.
//!
//! Run: `bash scripts/test.sh --test s3_server`, or with servers of your own:
//! `cargo test --features s3 --test s3_server` after `eval "$(bash scripts/s3_server.sh env)"`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use tiered_storage::{
    AutoTieringCoordinator, Error, Outcome, ScanRange, StorageConfig, StorageTier,
    TransactionRecord,
};

mod common;
#[path = "common/s3.rs"]
mod s3;

use common::{runtime, DAY, T0};
use s3::{add_replica, parquet_files, put_cold_in_s3, S3Env, Server};

type Store = AutoTieringCoordinator<TransactionRecord>;

/// Small files and row groups, so a few hundred records make several objects per day.
fn base_config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 100;
    c.cold.target_file_mib = 1;
    c.cold.max_open_partitions = 2;
    // Few retries: a stopped server (connection refused) fails a request at once; the
    // timeout leaves room for a loaded machine.
    c.cold.s3_max_retries = 2;
    c.cold.s3_timeout_secs = 15;
    // Orphans (failed or crashed uploads, compacted inputs) go at the next sweep.
    c.cold.orphan_grace_secs = 0;
    c
}

fn config(dir: &Path, endpoint: &str, bucket: &str, prefix: &str) -> StorageConfig {
    let mut c = base_config(dir);
    put_cold_in_s3(&mut c, endpoint, bucket, prefix);
    c
}

async fn open(config: &StorageConfig) -> Store {
    AutoTieringCoordinator::open(config.clone())
        .await
        .expect("open a store with its cold tier in S3")
}

/// What must be readable, and what must not.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<i64, TransactionRecord>,
    removed: Vec<i64>,
    stale_signatures: Vec<String>,
}

impl Model {
    async fn put(&mut self, store: &Store, mut r: TransactionRecord) {
        let id = store.put(&r).await.unwrap();
        r.id = Some(id);
        self.live.insert(id, r);
    }

    async fn fill(&mut self, store: &Store, range: std::ops::Range<u64>, tag: &str) {
        for n in range {
            self.put(store, common::record(n, tag)).await;
        }
    }

    async fn update(&mut self, store: &Store, id: i64, rename: bool) {
        let mut r = self.live[&id].clone();
        r.final_sol_received = Some(id as f64 / 7.0);
        r.actual_outcome = Outcome::Profit(id as f64);
        if rename {
            self.stale_signatures
                .push(r.transaction_signature.clone().unwrap());
            r.transaction_signature = Some(format!("renamed-{id:0>70}-in-the-bucket"));
        }
        store.update(&r).await.unwrap();
        self.live.insert(id, r);
    }

    async fn remove(&mut self, store: &Store, id: i64) {
        store.remove(id).await.unwrap();
        let r = self.live.remove(&id).unwrap();
        self.removed.push(id);
        self.stale_signatures.push(r.transaction_signature.unwrap());
    }

    async fn archived_ids(&self, store: &Store) -> Vec<i64> {
        let mut out = Vec::new();
        for &id in self.live.keys() {
            if !store.warm_tier().contains(id).await.unwrap() {
                out.push(id);
            }
        }
        out
    }
}

/// Every live record by id, by signature and in scans; removed ids and stale signatures
/// resolve to nothing; the counts agree.
async fn check_reads(store: &Store, m: &Model) {
    store.hot_tier().clear();
    for (id, r) in &m.live {
        assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(r), "id {id}");
        let sig = r.transaction_signature.as_deref().unwrap();
        assert_eq!(
            store.get_by_signature(sig).await.unwrap().as_ref(),
            Some(r),
            "signature of {id}"
        );
    }
    for id in &m.removed {
        assert_eq!(store.get(*id).await.unwrap(), None, "removed id {id}");
    }
    for sig in &m.stale_signatures {
        assert_eq!(store.get_by_signature(sig).await.unwrap(), None, "{sig}");
    }
    let expected: Vec<TransactionRecord> = m.live.values().cloned().collect();
    for page in [7, 1000] {
        let mut cursor = store.scan(ScanRange::default(), page).unwrap();
        let mut all = Vec::new();
        while let Some(p) = cursor.next_page().await.unwrap() {
            all.extend(p);
        }
        assert_eq!(all, expected, "full scan, page {page}");
    }
    let stats = store.get_stats().await.unwrap();
    assert_eq!(stats.total_records, m.live.len() as u64, "{stats:?}");
}

/// The catalogued keys: data files and delete files.
fn catalogued(store: &Store) -> (BTreeSet<String>, BTreeSet<String>) {
    let data = store
        .cold_tier()
        .files()
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    let deletes = store
        .cold_tier()
        .delete_files()
        .unwrap()
        .into_iter()
        .map(|d| d.path)
        .collect();
    (data, deletes)
}

/// `date=YYYY-MM-DD/part-N.parquet` (under `_deletes/` for a delete file).
fn is_layout_key(key: &str) -> bool {
    let key = key.strip_prefix("_deletes/").unwrap_or(key);
    let Some((day, file)) = key.split_once('/') else {
        return false;
    };
    let day_ok = day.strip_prefix("date=").is_some_and(|d| {
        d.len() == 10
            && d.char_indices().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
    });
    let file_ok = file
        .strip_prefix("part-")
        .and_then(|f| f.strip_suffix(".parquet"))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    day_ok && file_ok
}

/// After the intent sweep, the bucket's directory on the server's disk
/// holds exactly the catalogued objects, in the on-disk layout; nothing is left in the local cold directory; an outside reader of the
/// bucket (data glob minus delete files) sees exactly the store's cold tier.
async fn check_bucket(store: &Store, objects: &Path, data_dir: &Path) {
    // Replaced objects (compacted inputs, retired delete files) stay until the intent sweep
    // (grace 0 here), which runs at open, in maintenance, and on demand.
    store.sweep_cold_intents().await.unwrap();
    let (data, deletes) = catalogued(store);
    assert!(!data.is_empty(), "nothing catalogued");
    for k in data.iter().chain(&deletes) {
        assert!(
            is_layout_key(k),
            "key {k} is not <date=YYYY-MM-DD/part-N.parquet>"
        );
    }
    let mut want = data.clone();
    want.extend(deletes);
    assert_eq!(
        parquet_files(objects),
        want,
        "objects in {} vs the catalog",
        objects.display()
    );
    assert_eq!(
        parquet_files(&data_dir.join("cold")),
        BTreeSet::new(),
        "Parquet files in the local cold directory"
    );
    assert_eq!(
        outside_view(objects),
        common::store_cold_view(store).await,
        "the bucket read from outside (data minus delete files) vs the store's cold tier"
    );
}

/// An outside reader's view of the objects under `dir`: every data row whose (day, id) is in
/// no delete file, id → times seen.
fn outside_view(dir: &Path) -> BTreeMap<i64, usize> {
    let mut dead = BTreeSet::new();
    for (part, f) in common::glob(&dir.join("_deletes")) {
        for id in common::ids_of(&f) {
            dead.insert((part.clone(), id));
        }
    }
    let mut view = BTreeMap::new();
    for (part, f) in common::glob(dir) {
        for id in common::ids_of(&f) {
            if !dead.contains(&(part.clone(), id)) {
                *view.entry(id).or_insert(0) += 1;
            }
        }
    }
    view
}

async fn verify_clean(store: &Store) {
    let report = store.verify_cold().await.unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    let (data, _) = catalogued(store);
    assert_eq!(report.files_checked, data.len() as u64, "{report:?}");
    assert!(
        store.cold_tier().problems().is_empty(),
        "{:?}",
        store.cold_tier().problems()
    );
}

/// Whether an active alert's kind is named `kind` (by name, so this file builds before the
/// object-store alert kinds exist).
async fn has_alert(store: &Store, kind: &str) -> bool {
    store
        .get_alerts()
        .await
        .iter()
        .any(|a| format!("{:?}", a.kind) == kind)
}

async fn alerts_text(store: &Store) -> String {
    store
        .get_alerts()
        .await
        .iter()
        .map(|a| format!("{:?} {}: {}", a.kind, a.subject, a.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sum of the samples of the Prometheus family `name` (over its labels); `None` when the
/// store exports no such family.
async fn prometheus_sum(store: &Store, name: &str) -> Option<f64> {
    let text = store.export_prometheus().await.unwrap();
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') || line.split(['{', ' ']).next() != Some(name) {
            continue;
        }
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *found.get_or_insert(0.0) += v;
    }
    found
}

/// The replication lag in objects, over every replica (`cold_replication_lag_objects`).
async fn replication_lag_objects(store: &Store) -> Option<f64> {
    prometheus_sum(store, "cold_replication_lag_objects").await
}

/// Poll `f` every 100 ms until it is true, for at most `secs`.
async fn wait_until<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn s3_bucket_holds_the_archive_and_serves_every_read() {
    const TEST: &str = "s3_bucket_holds_the_archive_and_serves_every_read";
    let Some(env) = S3Env::get(TEST) else { return };
    let prefix = S3Env::unique_prefix("archive");
    let objects = env.objects_dir(&prefix);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &env.endpoint, &env.bucket, &prefix);
    runtime().block_on(async {
        let store = open(&cfg).await;
        let mut m = Model::default();
        m.fill(&store, 0..600, "s3archive").await;
        let report = store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        assert_eq!(report.archived, 600, "{report:?}");
        assert!(report.files >= 3, "{report:?}");
        let stats = store.get_stats().await.unwrap();
        assert_eq!((stats.warm_records, stats.cold_records), (0, 600));
        for e in store.cold_tier().files().unwrap() {
            assert!(e.etag.is_some(), "no ETag catalogued: {e:?}");
            assert!(
                e.footer_len.is_some_and(|l| l > 0),
                "no footer length: {e:?}"
            );
        }
        check_reads(&store, &m).await;
        check_bucket(&store, &objects, tmp.path()).await;

        // Updates (some renamed) and removes of archived records, then a second archival.
        let archived = m.archived_ids(&store).await;
        for (i, &id) in archived.iter().enumerate().step_by(6) {
            match i % 3 {
                0 => m.update(&store, id, false).await,
                1 => m.update(&store, id, true).await,
                _ => m.remove(&store, id).await,
            }
        }
        check_reads(&store, &m).await;
        m.fill(&store, 600..900, "s3archive").await;
        store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        store.publish_deletes().await.unwrap();
        check_reads(&store, &m).await;
        check_bucket(&store, &objects, tmp.path()).await;

        // Compaction on the bucket: merged, dead rows gone, the inputs deleted (grace 0: by
        // the sweep that follows the switch, at the latest at the next open).
        let before = store.cold_tier().cold_stats().unwrap();
        let report = store.compact_now().await.unwrap();
        assert!(report.files_in > 0, "{report:?}");
        let after = store.cold_tier().cold_stats().unwrap();
        assert_eq!(after.dead_rows, 0, "{after:?}");
        assert!(after.files < before.files, "{before:?} -> {after:?}");
        check_reads(&store, &m).await;
        verify_clean(&store).await;
        store.shutdown().await.unwrap();
        drop(store);

        // Reopen: the sweep removed the compacted inputs; everything reads back.
        let store = open(&cfg).await;
        check_reads(&store, &m).await;
        check_bucket(&store, &objects, tmp.path()).await;
        verify_clean(&store).await;
        store.shutdown().await.unwrap();
        drop(store);

        // Reopen with an empty range cache: every byte comes from the bucket.
        let _ = std::fs::remove_dir_all(tmp.path().join("cold-cache"));
        let store = open(&cfg).await;
        check_reads(&store, &m).await;
        verify_clean(&store).await;
    });
}

/// The archival's error when the server is down: typed, naming the request and the object,
/// never the secret.
fn check_upload_error(e: &Error) {
    let text = format!("{e} {e:?}");
    assert!(matches!(e, Error::Io { .. }), "not an Error::Io: {text}");
    assert!(text.contains("s3://"), "the error names no object: {text}");
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    assert!(
        !text.contains(&secret),
        "the secret is in the error: {text}"
    );
}

#[test]
fn s3_server_stopped_before_an_upload_then_restarted_loses_nothing() {
    const TEST: &str = "s3_server_stopped_before_an_upload_then_restarted_loses_nothing";
    let Some(env) = S3Env::get(TEST) else { return };
    let server = Server::start(&env, "down-before");
    let prefix = "archive";
    let objects = server.objects_dir(&env.bucket, prefix);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &server.endpoint(), &env.bucket, prefix);
    runtime().block_on(async {
        let store = open(&cfg).await;
        let mut m = Model::default();
        m.fill(&store, 0..300, "s3down").await;
        // One archival that succeeds, so the store has objects to read while the server is
        // down later.
        store.archive_older_than(T0 + DAY).await.unwrap();
        let cold_before = store.get_stats().await.unwrap().cold_records;
        assert!(cold_before > 0);

        server.stop();
        let e = store
            .archive_older_than(T0 + 3 * DAY)
            .await
            .expect_err("an archival with the server down must fail");
        eprintln!("archival with the server down: {e}");
        check_upload_error(&e);
        let stats = store.get_stats().await.unwrap();
        assert_eq!(stats.cold_records, cold_before, "{stats:?}");
        assert_eq!(stats.total_records, 300, "{stats:?}");
        // Warm records still read (no cold read needed for them).
        for (id, r) in &m.live {
            if store.warm_tier().contains(*id).await.unwrap() {
                assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(r));
            }
        }
        // The maintenance step's archival fails too, and raises the alert.
        let step = store.run_maintenance_step().await.unwrap();
        assert!(!step.failures.is_empty(), "{step:?}");
        assert!(
            has_alert(&store, "MaintenanceFailure").await,
            "no maintenance-failure alert:\n{}",
            alerts_text(&store).await
        );

        server.restart();
        // The next step succeeds and archives everything that is due.
        let step = store.run_maintenance_step().await.unwrap();
        assert!(step.failures.is_empty(), "{step:?}");
        let stats = store.get_stats().await.unwrap();
        assert_eq!(
            (stats.warm_records, stats.cold_records),
            (0, 300),
            "{stats:?}"
        );
        check_reads(&store, &m).await;
        verify_clean(&store).await;
        store.shutdown().await.unwrap();
        drop(store);
        let store = open(&cfg).await;
        check_reads(&store, &m).await;
        check_bucket(&store, &objects, tmp.path()).await;
    });
}

#[test]
fn s3_server_stopped_during_an_upload_then_restarted_loses_nothing() {
    const TEST: &str = "s3_server_stopped_during_an_upload_then_restarted_loses_nothing";
    let Some(env) = S3Env::get(TEST) else { return };
    let server = Server::start(&env, "down-during");
    let prefix = "archive";
    let objects = server.objects_dir(&env.bucket, prefix);
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &server.endpoint(), &env.bucket, prefix);
    // One day per file and a small step: the archival makes one upload per day, one after
    // another, for long enough to stop the server between them.
    cfg.cold.max_open_partitions = 1;
    cfg.cold.archive_batch_rows = 50;
    let rt = runtime();
    rt.block_on(async {
        let store = std::sync::Arc::new(open(&cfg).await);
        let mut m = Model::default();
        const DAYS: i64 = 20;
        for n in 0..DAYS as u64 * 30 {
            let mut r = common::record(n, "s3during");
            r.timestamp_decision_made = T0 + (n as i64 % DAYS) * DAY + n as i64;
            m.put(&store, r).await;
        }
        let s = std::sync::Arc::clone(&store);
        let archival = tokio::spawn(async move { s.archive_older_than(T0 + DAYS * DAY).await });
        // Stop the server as soon as the first object is in the bucket.
        let deadline = Instant::now() + Duration::from_secs(60);
        while parquet_files(&objects).is_empty() {
            assert!(Instant::now() < deadline, "no upload within 60 s");
            assert!(
                !archival.is_finished(),
                "the archival ended before its first upload"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.stop();
        let result = archival.await.unwrap();
        let uploaded = parquet_files(&objects).len();
        match &result {
            Err(e) => {
                eprintln!("archival with the server stopped during it: {e} ({uploaded} objects)");
                check_upload_error(e);
            }
            Ok(r) => panic!(
                "the archival finished before the server was stopped ({r:?}): make it longer"
            ),
        }
        let stats = store.get_stats().await.unwrap();
        assert_eq!(stats.total_records, m.live.len() as u64, "{stats:?}");
        assert!(stats.warm_records > 0, "{stats:?}");

        server.restart();
        let t = Instant::now();
        let step = store.run_maintenance_step().await.unwrap();
        assert!(step.failures.is_empty(), "{step:?}");
        store.archive_older_than(T0 + DAYS * DAY).await.unwrap();
        eprintln!("restarted; archived the rest in {:?}", t.elapsed());
        let stats = store.get_stats().await.unwrap();
        assert_eq!(stats.warm_records, 0, "{stats:?}");
        check_reads(&store, &m).await;
        verify_clean(&store).await;
        store.shutdown().await.unwrap();
        drop(store);
        // Reopen: the objects of the failed uploads (intents, grace 0) are swept.
        let store = open(&cfg).await;
        check_reads(&store, &m).await;
        check_bucket(&store, &objects, tmp.path()).await;
    });
}

#[test]
fn s3_primary_stopped_reads_fail_over_to_the_replica() {
    const TEST: &str = "s3_primary_stopped_reads_fail_over_to_the_replica";
    let Some(env) = S3Env::get(TEST) else { return };
    let primary = Server::start(&env, "failover-primary");
    let replica = Server::start(&env, "failover-replica");
    let prefix = "archive";
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &primary.endpoint(), &env.bucket, prefix);
    add_replica(
        &mut cfg,
        "region-2",
        &replica.endpoint(),
        &env.bucket,
        prefix,
    );
    // The archival commit waits for the replica; reads must reach the stores (no cache).
    cfg.cold.replication_sync = true;
    cfg.cold.cache_max_bytes = 0;
    cfg.cold.failover_alert_after = 2;
    // A refused connection is not retried: each read goes to the replica at once.
    cfg.cold.s3_max_retries = 0;
    runtime().block_on(async {
        let store = open(&cfg).await;
        let mut m = Model::default();
        m.fill(&store, 0..300, "s3failover").await;
        store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        let (data, _) = catalogued(&store);
        let on_replica = parquet_files(&replica.objects_dir(&env.bucket, prefix));
        assert!(
            data.is_subset(&on_replica),
            "synchronous replication: {data:?} not all on the replica ({on_replica:?})"
        );

        primary.stop();
        // Every archived record still reads, from the replica.
        check_reads(&store, &m).await;
        assert!(
            has_alert(&store, "ColdStoreFailing").await,
            "no alert for the failing primary:\n{}",
            alerts_text(&store).await
        );
        let failovers = prometheus_sum(&store, "cold_store_failovers_total").await;
        assert!(
            failovers.is_some_and(|n| n > 0.0),
            "no failover counted in Prometheus (cold_store_failovers_total): {failovers:?}"
        );

        primary.restart();
        check_reads(&store, &m).await;
    });
}

#[test]
fn s3_replica_stopped_then_restarted_raises_lag_then_catches_up() {
    const TEST: &str = "s3_replica_stopped_then_restarted_raises_lag_then_catches_up";
    let Some(env) = S3Env::get(TEST) else { return };
    let primary = Server::start(&env, "lag-primary");
    let replica = Server::start(&env, "lag-replica");
    let prefix = "archive";
    let on_primary = primary.objects_dir(&env.bucket, prefix);
    let on_replica = replica.objects_dir(&env.bucket, prefix);
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &primary.endpoint(), &env.bucket, prefix);
    add_replica(
        &mut cfg,
        "region-2",
        &replica.endpoint(),
        &env.bucket,
        prefix,
    );
    cfg.cold.replication_lag_alert_secs = 1;
    // The replicator runs beside the maintenance loop; the loop's own steps stay out of the
    // way (one at start, on an empty store, then hourly).
    cfg.tiering.maintenance_interval = 3600;
    runtime().block_on(async {
        let store = std::sync::Arc::new(open(&cfg).await);
        tokio::spawn(std::sync::Arc::clone(&store).start_maintenance_loop());
        let mut m = Model::default();
        m.fill(&store, 0..300, "s3lag").await;
        store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        // The replicator copies the first objects.
        wait_until(60, "the replica holds the first archival", || async {
            parquet_files(&on_replica) == parquet_files(&on_primary)
                && replication_lag_objects(&store).await == Some(0.0)
        })
        .await;

        replica.stop();
        m.fill(&store, 300..600, "s3lag").await;
        store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        wait_until(60, "the replication-lag alert", || async {
            has_alert(&store, "ColdReplicationLag").await
        })
        .await;
        let lag = replication_lag_objects(&store).await;
        assert!(lag.is_some_and(|l| l > 0.0), "lag {lag:?}");
        // Reads do not depend on the replica.
        check_reads(&store, &m).await;

        replica.restart();
        wait_until(60, "the replica catching up", || async {
            replication_lag_objects(&store).await == Some(0.0)
        })
        .await;
        // Objects replaced while the replica was down (delete files, merged inputs) are
        // deleted from it by the intent sweep, which kept their intents: the replica then
        // holds exactly the catalogued objects.
        wait_until(
            60,
            "the replica holding exactly the catalogued objects",
            || async {
                let _ = store.run_maintenance_step().await;
                let (data, deletes) = catalogued(&store);
                let mut want = data;
                want.extend(deletes);
                parquet_files(&on_replica) == want
            },
        )
        .await;
        wait_until(30, "the lag alert clearing", || async {
            !has_alert(&store, "ColdReplicationLag").await
        })
        .await;

        // Compaction's deletes reach the replica too.
        m.fill(&store, 600..700, "s3lag").await;
        let archived = m.archived_ids(&store).await;
        for &id in archived.iter().step_by(3) {
            m.remove(&store, id).await;
        }
        store.compact_now().await.unwrap();
        // The intent sweep (a maintenance task; grace 0) deletes the inputs from both stores.
        wait_until(
            60,
            "compaction replicated, inputs deleted everywhere",
            || async {
                let _ = store.run_maintenance_step().await;
                let (data, deletes) = catalogued(&store);
                let mut want = data;
                want.extend(deletes);
                parquet_files(&on_primary) == want && parquet_files(&on_replica) == want
            },
        )
        .await;
        check_reads(&store, &m).await;
        let report = store.verify_cold().await.unwrap();
        assert!(report.problems.is_empty(), "{report:?}");
    });
}

#[test]
fn s3_range_cache_survives_a_restart_and_refetches_corrupt_blocks() {
    const TEST: &str = "s3_range_cache_survives_a_restart_and_refetches_corrupt_blocks";
    let Some(env) = S3Env::get(TEST) else { return };
    let server = Server::start(&env, "cache");
    let prefix = "archive";
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &server.endpoint(), &env.bucket, prefix);
    let cache_dir = tmp.path().join("cold-cache");
    runtime().block_on(async {
        let store = open(&cfg).await;
        let mut m = Model::default();
        m.fill(&store, 0..300, "s3cache").await;
        store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        check_reads(&store, &m).await;
        store.shutdown().await.unwrap();
        drop(store);
        let cached: Vec<_> = common_walk(&cache_dir);
        assert!(
            !cached.is_empty(),
            "nothing in the cache directory {}",
            cache_dir.display()
        );

        // Reopened with the server down: the archived records are read from the cache that
        // the archival wrote through, and the reads above filled.
        let store = open(&cfg).await;
        server.stop();
        check_reads(&store, &m).await;
        server.restart();
        store.shutdown().await.unwrap();
        drop(store);

        // Every cached file damaged: detected, fetched again, the right records served.
        for f in common_walk(&cache_dir) {
            let mut bytes = std::fs::read(&f).unwrap();
            if bytes.is_empty() {
                continue;
            }
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xFF;
            bytes[0] ^= 0xFF;
            std::fs::write(&f, bytes).unwrap();
        }
        let store = open(&cfg).await;
        check_reads(&store, &m).await;
        verify_clean(&store).await;
    });
}

/// Every file under `dir`.
fn common_walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(common_walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
