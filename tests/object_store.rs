//! Protects the cold tier on an object store (`cold.store = "memory://…"`, object_store's
//! in-process store behind the same client code as S3): archival, reads by id and signature,
//! scans, aggregates, updates and removes of archived records, compaction, delete files,
//! `verify_cold`, backups and the catalog rebuild all work on the bucket with nothing under
//! `<data_dir>/cold`; a reopen sees everything; replaced and orphaned objects leave only by
//! their intents, after the grace period; a failed upload leaves warm untouched and raises the
//! maintenance-failure alert; no secret reaches a `Debug` or an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tiered_storage::{
    drop_memory_store, memory_store, Aggregate, AlertKind, AutoTieringCoordinator, Measure,
    ScanRange, StorageConfig, TransactionRecord,
};

mod common;
use common::{record, DAY, T0};

type Store = AutoTieringCoordinator<TransactionRecord>;
type Model = BTreeMap<i64, TransactionRecord>;

/// A store name no other test (or test process) uses.
fn unique(name: &str) -> String {
    format!("ostest-{}-{name}", std::process::id())
}

/// Small files: a few hundred records make many, over three days.
fn config(dir: &Path, bucket: &str) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.store = format!("memory://{bucket}/archive/v1");
    c.cold.archive_batch_rows = 50;
    c.cold.max_open_partitions = 1;
    c
}

/// Every object key under the store's prefix, relative to it.
async fn objects(bucket: &str) -> BTreeSet<String> {
    let store = memory_store(bucket);
    let prefix = ObjectPath::from("archive/v1");
    let listed: Vec<_> = store.list(Some(&prefix)).collect().await;
    listed
        .into_iter()
        .map(|m| {
            let full = m.unwrap().location.to_string();
            full.strip_prefix("archive/v1/").unwrap().to_owned()
        })
        .collect()
}

/// Catalogued keys: data and delete files.
fn catalogued(store: &Store) -> BTreeSet<String> {
    let cold = store.cold_tier();
    let mut keys: BTreeSet<String> = cold.files().unwrap().into_iter().map(|e| e.path).collect();
    keys.extend(cold.delete_files().unwrap().into_iter().map(|d| d.path));
    keys
}

async fn fill(store: &Store, n: u64) -> Model {
    let mut model = Model::new();
    for i in 0..n {
        let mut r = record(i, "os");
        let id = store.put(&r).await.unwrap();
        r.id = Some(id);
        model.insert(id, r);
    }
    model
}

/// Every record of the model by id, by signature and in a full scan.
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
    let all = store.query(ScanRange::default()).await.unwrap();
    let scanned: Vec<i64> = all.iter().map(|r| r.id.unwrap()).collect();
    assert_eq!(
        scanned,
        model.keys().copied().collect::<Vec<_>>(),
        "{when}: scan"
    );
    let count = store
        .aggregate(&Aggregate::new(Measure::Count))
        .await
        .unwrap();
    assert_eq!(count[0].count, model.len() as u64, "{when}: count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_cold_tier_works_end_to_end_and_reopens() {
    let bucket = unique("e2e");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), &bucket)).await.unwrap();
    let mut model = fill(&store, 300).await;

    let report = store.archive_now().await.unwrap();
    assert_eq!(report.archived, 300, "{report:?}");
    assert!(report.files > 3, "{report:?}");
    assert_eq!(store.get_stats().await.unwrap().warm_records, 0);
    // Nothing of the cold tier is on local disk; the bucket holds exactly the catalog.
    assert!(!dir.path().join("cold").exists());
    assert!(common::walk_files(&dir.path().join("cold-staging")).is_empty());
    assert_eq!(objects(&bucket).await, catalogued(&store));
    let files = store.cold_tier().files().unwrap();
    assert!(
        files
            .iter()
            .all(|e| e.etag.is_some() && e.footer_len.is_some()),
        "{files:?}"
    );
    check(&store, &model, "archived").await;
    let m = store.cold_tier().object_metrics().unwrap();
    assert_eq!(m.stores[0].name, "primary");
    assert!(
        // Reads are served by GETs or by the range cache (archival writes each upload
        // through to it).
        m.stores[0].puts >= report.files
            && m.stores[0].gets + m.cache.as_ref().map_or(0, |c| c.hits) > 0,
        "{m:?}"
    );

    // Updates and removes of archived records.
    let ids: Vec<i64> = model.keys().copied().collect();
    for &id in ids.iter().step_by(7) {
        let mut r = model[&id].clone();
        r.initial_sol_spent = Some(r.initial_sol_spent.unwrap_or(0.0) + 1.0);
        store.update(&r).await.unwrap();
        model.insert(id, r);
    }
    for &id in ids.iter().skip(3).step_by(5) {
        store.remove(id).await.unwrap();
        model.remove(&id);
    }
    check(&store, &model, "updated and removed").await;
    store.archive_now().await.unwrap();
    store.publish_deletes().await.unwrap();
    check(&store, &model, "re-archived").await;

    // Compaction: the replaced inputs stay in the bucket until the sweep (default grace).
    let before = store.cold_tier().files().unwrap().len();
    let compacted = store.compact_now().await.unwrap();
    assert!(compacted.files_in > 1, "{compacted:?}");
    assert!(store.cold_tier().files().unwrap().len() < before);
    check(&store, &model, "compacted").await;
    let leftover: BTreeSet<String> = objects(&bucket)
        .await
        .difference(&catalogued(&store))
        .cloned()
        .collect();
    assert!(
        leftover.len() >= compacted.files_in as usize,
        "{leftover:?}"
    );
    let swept = store.sweep_cold_intents().await.unwrap();
    assert_eq!(swept.deleted, 0, "inside the grace period: {swept:?}");

    let verify = store.verify_cold().await.unwrap();
    assert!(verify.problems.is_empty(), "{verify:?}");
    assert!(verify.files_checked > 0);

    // A backup downloads exactly the catalogued files.
    let backup = tempfile::tempdir().unwrap();
    let target = backup.path().join("copy");
    let b = store.backup_to(&target).await.unwrap();
    assert_eq!(
        b.cold_files as usize,
        store.cold_tier().files().unwrap().len() + store.cold_tier().delete_files().unwrap().len()
    );
    for key in catalogued(&store) {
        assert!(target.join("cold").join(&key).is_file(), "{key}");
    }

    // The rebuild lists the bucket per partition; leftovers of moves are not registered.
    let rebuilt = store.rebuild_cold_catalog().await.unwrap();
    assert_eq!((rebuilt.added, rebuilt.removed), (0, 0), "{rebuilt:?}");

    // Reopened (the store dropped, the bucket kept) with no grace: the replaced objects go,
    // everything else is still served.
    store.shutdown().await.unwrap();
    drop(store);
    let mut c = config(dir.path(), &bucket);
    c.cold.orphan_grace_secs = 0;
    let store = Store::open(c.clone()).await.unwrap();
    // The catalog knows every file's length and ETag: reads open them with no HEAD.
    let heads = store.cold_tier().object_metrics().unwrap().stores[0].heads;
    check(&store, &model, "reopened").await;
    assert_eq!(
        store.cold_tier().object_metrics().unwrap().stores[0].heads,
        heads
    );
    assert_eq!(objects(&bucket).await, catalogued(&store));
    let verify = store.verify_cold().await.unwrap();
    assert!(verify.problems.is_empty(), "{verify:?}");
    // A maintenance step runs the sweep as its own task.
    let step = store.run_maintenance_step().await.unwrap();
    assert!(step.failures.is_empty(), "{step:?}");
    assert!(step.sweep.is_some(), "{step:?}");
    store.shutdown().await.unwrap();
    drop(store);

    // A read-only open reads the bucket too.
    let reader = Store::open_read_only(c).await.unwrap();
    check(&reader, &model, "read-only").await;
    drop(reader);
    drop_memory_store(&bucket);
}

/// A crash after an upload and before its commit leaves an object only its intent names:
/// the sweep at open deletes it once past the grace period, and never a catalogued one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_orphans_leave_by_their_intents_only() {
    let bucket = unique("orphans");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), &bucket)).await.unwrap();
    let model = fill(&store, 120).await;
    store.archive_now().await.unwrap();
    let kept = catalogued(&store);
    let a_catalogued = kept.iter().next().unwrap().clone();
    store.shutdown().await.unwrap();
    drop(store);

    // The crash, simulated: an intent recorded and an object uploaded, no commit; plus an
    // intent for a catalogued key (a compaction whose commit never came) and an object with
    // no intent at all (not ours to delete).
    let orphan = "date=2023-11-14/part-000000009999.parquet";
    let stranger = "date=2023-11-14/not-ours.parquet";
    let raw = memory_store(&bucket);
    for key in [orphan, stranger] {
        raw.put(
            &ObjectPath::from(format!("archive/v1/{key}")),
            PutPayload::from_static(b"PAR1 partial"),
        )
        .await
        .unwrap();
    }
    let db = rusqlite::Connection::open(dir.path().join("warm.sqlite3")).unwrap();
    let then = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 5_000;
    for key in [orphan, a_catalogued.as_str()] {
        db.execute(
            "INSERT OR REPLACE INTO cold_intents (key, created_ms) VALUES (?1, ?2)",
            rusqlite::params![key, then],
        )
        .unwrap();
    }
    drop(db);

    // Inside the grace period: nothing is deleted.
    let store = Store::open(config(dir.path(), &bucket)).await.unwrap();
    assert!(objects(&bucket).await.contains(orphan));
    store.shutdown().await.unwrap();
    drop(store);

    let mut c = config(dir.path(), &bucket);
    c.cold.orphan_grace_secs = 0;
    let store = Store::open(c).await.unwrap();
    let now = objects(&bucket).await;
    assert!(!now.contains(orphan), "{now:?}");
    assert!(now.contains(stranger), "{now:?}");
    assert!(now.is_superset(&kept), "{now:?}");
    let db = rusqlite::Connection::open(dir.path().join("warm.sqlite3")).unwrap();
    let left: i64 = db
        .query_row("SELECT count(*) FROM cold_intents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    check(&store, &model, "after the sweep").await;
    drop(store);
    drop_memory_store(&bucket);
}

/// An upload that fails (an S3 endpoint nobody answers) fails the archival step typed, with
/// no secret in the error, leaves every record in warm, and raises the maintenance-failure
/// alert. The config's `Debug` never shows the secret either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_failed_upload_leaves_warm_untouched_and_hides_the_secret() {
    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::cold_config(dir.path());
    c.cold.store = "s3://no-bucket/prefix".into();
    c.cold.s3_endpoint = Some("http://127.0.0.1:9".into());
    c.cold.s3_allow_http = true;
    c.cold.s3_access_key_id = Some("AKIDEXAMPLE".into());
    c.cold.s3_secret_access_key = Some(tiered_storage::config::Secret::new(SECRET));
    c.cold.s3_max_retries = 1;
    c.cold.s3_timeout_secs = 5;
    let shown = format!("{c:?}");
    assert!(!shown.contains(SECRET) && shown.contains("***"), "{shown}");
    let serialized = toml::to_string(&c).unwrap();
    assert!(!serialized.contains(SECRET), "{serialized}");

    let store = Store::open(c).await.unwrap();
    let model = fill(&store, 50).await;
    let err = store.archive_older_than(T0 + 10 * DAY).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");
    assert_eq!(store.get_stats().await.unwrap().warm_records, 50);
    assert!(store.cold_tier().files().unwrap().is_empty());

    let step = store.run_maintenance_step().await.unwrap();
    assert!(
        step.failures.iter().any(|(task, _)| task == "archive"),
        "{step:?}"
    );
    assert!(!format!("{step:?}").contains(SECRET));
    let alerts = store.get_alerts().await;
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == AlertKind::MaintenanceFailure && a.subject == "archive"),
        "{alerts:?}"
    );
    assert!(!format!("{alerts:?}").contains(SECRET));
    check(&store, &model, "after failed uploads").await;
    assert!(common::walk_files(&dir.path().join("cold-staging")).is_empty());
}
