//! Protects the delete files outside readers apply: after updates and removes of archived
//! records, re-archival into the same day partition, compaction and reopen, the archive read
//! the way DuckDB or Polars read it (data glob `cold/date=*/*.parquet` anti-joined on
//! (date, id) with `cold/_deletes/date=*/*.parquet`) equals the store's own cold tier.

use std::path::Path;

use tiered_storage::{AutoTieringCoordinator, Outcome, StorageConfig, TransactionRecord};

type Store = AutoTieringCoordinator<TransactionRecord>;

mod common;
use common::{glob, ids_of, outside_view, store_cold_view, DAY, T0};

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 50;
    c
}

async fn assert_views_agree(store: &Store, dir: &Path, when: &str) {
    let outside = outside_view(dir);
    let inside = store_cold_view(store).await;
    assert_eq!(outside, inside, "{when}: outside view != store's cold tier");
}

async fn fill(store: &Store, n: u64) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(store.put(&common::record(i, "del")).await.unwrap());
    }
    ids
}

#[tokio::test]
async fn deletes_removes_and_updates_of_archived_records_reach_outside_readers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let ids = fill(&store, 300).await;
    store.archive_older_than(T0 + 10 * DAY).await.unwrap();
    assert_views_agree(&store, dir.path(), "after archival").await;
    // Every partition archival wrote to has a delete file, empty for now.
    let deletes = glob(&dir.path().join("cold/_deletes"));
    let partitions: std::collections::BTreeSet<String> = glob(&dir.path().join("cold"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        deletes
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<std::collections::BTreeSet<_>>(),
        partitions
    );
    assert!(deletes.iter().all(|(_, f)| ids_of(f).is_empty()));

    // Remove 5 and update 10 archived records: they leave cold.
    for &id in &ids[..5] {
        store.remove(id).await.unwrap();
    }
    for &id in &ids[10..20] {
        let mut r = store.get(id).await.unwrap().unwrap();
        r.actual_outcome = Outcome::Profit(100.0);
        store.update(&r).await.unwrap();
    }
    let report = store.publish_deletes().await.unwrap();
    assert_eq!(report.ids, 15, "{report:?}");
    assert_views_agree(&store, dir.path(), "after publish").await;
    let outside = outside_view(dir.path());
    assert!(ids[..5].iter().all(|id| !outside.contains_key(id)));
    assert!(ids[10..20].iter().all(|id| !outside.contains_key(id)));

    // A second publication with nothing new writes nothing.
    assert_eq!(store.publish_deletes().await.unwrap().partitions, 0);

    // The updated records are archived again into the same day partitions: the dead copies
    // are purged first, so the new live copies are seen exactly once.
    store.archive_older_than(T0 + 10 * DAY).await.unwrap();
    assert_views_agree(&store, dir.path(), "after re-archival").await;
    let outside = outside_view(dir.path());
    for &id in &ids[10..20] {
        assert_eq!(outside.get(&id), Some(&1), "updated id {id} seen once");
    }
    assert!(ids[..5].iter().all(|id| !outside.contains_key(id)));

    // Compaction retires the delete entries with the rows they covered.
    store.compact_now().await.unwrap();
    assert_views_agree(&store, dir.path(), "after compaction").await;
    for (_, f) in glob(&dir.path().join("cold/_deletes")) {
        assert!(
            ids_of(&f).iter().all(|id| !ids[..20].contains(id)),
            "compaction left stale ids in {}",
            f.display()
        );
    }
    store.shutdown().await.unwrap();
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_views_agree(&store, dir.path(), "after reopen").await;
}

#[tokio::test]
async fn deletes_update_then_rearchive_in_one_partition_without_publishing_in_between() {
    // No publication between the update and the next archival's files: the archival's own
    // checks must keep the partition from holding a dead and a live copy of the id.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let ids = fill(&store, 90).await;
    store.archive_older_than(T0 + 10 * DAY).await.unwrap();
    let target = ids[7];
    let mut r = store.get(target).await.unwrap().unwrap();
    r.buy_price_sol = Some(42.0);
    store.update(&r).await.unwrap();
    store.archive_older_than(T0 + 10 * DAY).await.unwrap();
    assert_views_agree(&store, dir.path(), "re-archived").await;
    assert_eq!(outside_view(dir.path()).get(&target), Some(&1));
    // Updated again and again: each round stays exact.
    for round in 0..3 {
        let mut r = store.get(target).await.unwrap().unwrap();
        r.buy_price_sol = Some(43.0 + round as f64);
        store.update(&r).await.unwrap();
        store.publish_deletes().await.unwrap();
        assert_views_agree(&store, dir.path(), "published").await;
        store.archive_older_than(T0 + 10 * DAY).await.unwrap();
        assert_views_agree(&store, dir.path(), "re-archived again").await;
    }
}

#[tokio::test]
async fn deletes_maintenance_step_and_shutdown_publish() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.maintenance.compact = false;
    let store = Store::open(c.clone()).await.unwrap();
    let ids = fill(&store, 60).await;
    store.archive_older_than(T0 + 10 * DAY).await.unwrap();
    store.remove(ids[3]).await.unwrap();
    let step = store.run_maintenance_step().await.unwrap();
    assert!(step.failures.is_empty(), "{:?}", step.failures);
    // The step's archival published it first; the step's own publication found nothing new.
    assert!(step.deletes.is_some());
    assert!(!outside_view(dir.path()).contains_key(&ids[3]));
    store.remove(ids[4]).await.unwrap();
    store.shutdown().await.unwrap();
    assert!(
        !outside_view(dir.path()).contains_key(&ids[4]),
        "shutdown publishes"
    );
}

#[tokio::test]
async fn deletes_a_missing_delete_file_is_written_again_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let ids = fill(&store, 60).await;
    store.archive_older_than(T0 + 10 * DAY).await.unwrap();
    store.remove(ids[0]).await.unwrap();
    store.publish_deletes().await.unwrap();
    store.shutdown().await.unwrap();
    drop(store);
    // The catalogued file listing the removed id goes missing (a partial restore): open
    // writes it again.
    let deletes = glob(&dir.path().join("cold/_deletes"));
    let listing: Vec<_> = deletes
        .iter()
        .filter(|(_, f)| ids_of(f) == [ids[0]])
        .collect();
    assert_eq!(listing.len(), 1, "{deletes:?}");
    std::fs::remove_file(&listing[0].1).unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_views_agree(&store, dir.path(), "rewritten on open").await;
    assert!(!outside_view(dir.path()).contains_key(&ids[0]));
}
