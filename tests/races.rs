//! Races found in review, kept as regression tests: a late put insert, a cancelled update or
//! remove, and a signature read racing a rename must never make a read return a stale or
//! deleted record.

use std::sync::Arc;
use std::time::Duration;
use tiered_storage::{
    AutoTieringCoordinator, Outcome, StorageConfig, StorageTier, TransactionRecord,
};

type Store = AutoTieringCoordinator<TransactionRecord>;

fn record(sig: &str) -> TransactionRecord {
    TransactionRecord {
        transaction_signature: Some(sig.into()),
        timestamp_decision_made: 1,
        ..Default::default()
    }
}

async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) {
    tokio::select! { biased; _ = f => panic!("resolved on first poll"), _ = std::future::ready(()) => {} }
}

/// A second task learns the new id through get_by_signature and removes it before the putting
/// task runs its hot insert: that insert must not cache the deleted record.
#[tokio::test(flavor = "current_thread")]
async fn races_a_late_put_insert_cannot_resurrect_a_removed_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StorageConfig::default().with_data_dir(dir.path()))
        .await
        .unwrap();
    let r = record("sigA");
    // Hold the writer off while the put is queued, so its first poll cannot complete it.
    let ext = lock_db(dir.path());
    let mut put = Box::pin(store.put(&r));
    poll_once(&mut put).await;
    ext.execute_batch("ROLLBACK").unwrap();
    let found = loop {
        if let Some(f) = store.get_by_signature("sigA").await.unwrap() {
            break f;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let id = found.id.unwrap();
    store.remove(id).await.unwrap();
    assert!(store.get(id).await.unwrap().is_none());
    assert_eq!(put.await.unwrap(), id);
    assert!(
        store.warm_tier().get(id).await.unwrap().is_none(),
        "warm has no row"
    );
    let got = store.get(id).await.unwrap();
    assert!(got.is_none(), "removed record served from hot: {got:?}");
}

/// Same race with an update: the put's (older) version must not end up cached.
#[tokio::test(flavor = "current_thread")]
async fn races_a_late_put_insert_cannot_shadow_a_later_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StorageConfig::default().with_data_dir(dir.path()))
        .await
        .unwrap();
    let r = record("sigB");
    // Hold the writer off while the put is queued, so its first poll cannot complete it.
    let ext = lock_db(dir.path());
    let mut put = Box::pin(store.put(&r));
    poll_once(&mut put).await;
    ext.execute_batch("ROLLBACK").unwrap();
    let mut found = loop {
        if let Some(f) = store.get_by_signature("sigB").await.unwrap() {
            break f;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    found.actual_outcome = Outcome::Profit(1.0);
    store.update(&found).await.unwrap();
    let id = put.await.unwrap();
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        got.actual_outcome,
        Outcome::Profit(1.0),
        "stale version served after update returned"
    );
}

fn lock_db(dir: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join("warm.sqlite3")).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c
}

/// An update whose future is dropped (e.g. by tokio::time::timeout) still commits later; reads
/// in between must not re-fill hot with the old version for good.
#[tokio::test(flavor = "current_thread")]
async fn races_a_cancelled_update_that_commits_leaves_no_stale_hot_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StorageConfig::default().with_data_dir(dir.path()))
        .await
        .unwrap();
    let id = store.put(&record("sigC")).await.unwrap();
    let mut v2 = store.get(id).await.unwrap().unwrap();
    v2.actual_outcome = Outcome::Profit(2.0);
    let ext = lock_db(dir.path());
    {
        let mut up = Box::pin(store.update(&v2));
        poll_once(&mut up).await; // queued; the writer is blocked on the external lock
    } // dropped: the caller gave up (timeout)
    store.get(id).await.unwrap();
    store.get(id).await.unwrap(); // a 2nd miss would promote, but a write is still pending
    assert!(
        !store.hot_tier().contains_id(id),
        "no fill while the write is pending"
    );
    ext.execute_batch("ROLLBACK").unwrap();
    for _ in 0..500 {
        if store
            .warm_tier()
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .actual_outcome
            == Outcome::Profit(2.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // yields: the write's task must run
    }
    assert_eq!(
        store
            .warm_tier()
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .actual_outcome,
        Outcome::Profit(2.0),
        "update committed"
    );
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        got.actual_outcome,
        Outcome::Profit(2.0),
        "hot serves the replaced version"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn races_a_cancelled_remove_that_commits_leaves_no_deleted_record_in_hot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StorageConfig::default().with_data_dir(dir.path()))
        .await
        .unwrap();
    let id = store.put(&record("sigD")).await.unwrap();
    let ext = lock_db(dir.path());
    {
        let mut rm = Box::pin(store.remove(id));
        poll_once(&mut rm).await;
    }
    store.get(id).await.unwrap();
    store.get(id).await.unwrap();
    assert!(
        !store.hot_tier().contains_id(id),
        "no fill while the remove is pending"
    );
    ext.execute_batch("ROLLBACK").unwrap();
    for _ in 0..500 {
        if store.warm_tier().get(id).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // yields: the write's task must run
    }
    assert!(
        store.warm_tier().get(id).await.unwrap().is_none(),
        "remove committed"
    );
    let got = store.get(id).await.unwrap();
    assert!(
        got.is_none(),
        "deleted record served from hot: {:?}",
        got.map(|r| r.id)
    );
}

/// Warm only: after a read by id has returned the version carrying signature S, a later read by
/// S (with the row unchanged in between) must not miss (the signature delta gains new entries
/// before COMMIT).
#[test]
fn races_a_signature_visible_by_id_is_never_missed_by_signature() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(StorageConfig::default().with_data_dir(dir.path()))
                .await
                .unwrap(),
        );
        let id = store.put(&record("ren-0")).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut v = 0i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    v += 1;
                    let mut r = record(&format!("ren-{v}"));
                    r.id = Some(id);
                    r.timestamp_outcome_evaluated = Some(v);
                    store.update(&r).await.unwrap();
                }
                v
            })
        };
        let warm = store.warm_tier().clone();
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                let start = std::time::Instant::now();
                let mut misses = 0u64;
                let mut tries = 0u64;
                while start.elapsed() < Duration::from_secs(4) {
                    tries += 1;
                    let r1 = warm.get(id).await.unwrap().unwrap();
                    let sig = r1.transaction_signature.clone().unwrap();
                    let by_sig = warm.get_by_signature(&sig).await.unwrap();
                    if by_sig.is_none() {
                        let r2 = warm.get(id).await.unwrap().unwrap();
                        if r2.timestamp_outcome_evaluated == r1.timestamp_outcome_evaluated {
                            misses += 1;
                        }
                    }
                }
                (tries, misses)
            })
        });
        let (tries, misses) = tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let updates = w.await.unwrap();
        eprintln!("tries {tries} updates {updates} linearizability misses {misses}");
        assert_eq!(misses, 0);
    });
}
