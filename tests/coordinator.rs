//! Protects the coordinator's public contract: reads by id and signature, promotion on the Nth
//! read, newest-version visibility after update/remove, `list_since` paging, and typed errors
//! that leave the store unchanged (invariant 6).

use std::path::Path;

use tiered_storage::{AutoTieringCoordinator, Error, Outcome, StorageConfig, TransactionRecord};

/// The warm database schema this build writes (SQLite `user_version`).
const SCHEMA_VERSION: i64 = 8;
/// The warm database's file name in the data directory.
const WARM_DB_FILE: &str = "warm.sqlite3";

type Store = AutoTieringCoordinator<TransactionRecord>;

fn config(dir: &Path) -> StorageConfig {
    StorageConfig::default()
        .with_data_dir(dir)
        .with_hot_capacity(1000)
}

async fn open(config: StorageConfig) -> Store {
    AutoTieringCoordinator::open(config)
        .await
        .expect("open store")
}

fn record(sig: &str, ts: i64) -> TransactionRecord {
    TransactionRecord {
        transaction_signature: Some(sig.to_owned()),
        timestamp_decision_made: ts,
        buy_price_sol: Some(0.001),
        ..TransactionRecord::default()
    }
}

/// Every record in the store, in id order, via a full scan.
async fn scan(store: &Store) -> Vec<TransactionRecord> {
    let mut cursor = store.list_since(i64::MIN);
    let mut out = Vec::new();
    while let Some(r) = cursor.next().await.expect("scan") {
        out.push(r);
    }
    out
}

/// Everything a caller can observe about the store's contents.
async fn snapshot(store: &Store) -> (Vec<TransactionRecord>, u64) {
    let stats = store.get_stats().await.expect("stats");
    assert_eq!(stats.total_records, stats.warm_records);
    (scan(store).await, stats.total_records)
}

fn with_id(mut r: TransactionRecord, id: i64) -> TransactionRecord {
    r.id = Some(id);
    r
}

#[tokio::test]
async fn coordinator_put_then_get_by_id_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let a = record("sig-a", 1_000);
    let b = record("sig-b", 2_000);
    let id_a = store.put(&a).await.unwrap();
    let id_b = store.put(&b).await.unwrap();
    assert_ne!(id_a, id_b);

    assert_eq!(
        store.get(id_a).await.unwrap(),
        Some(with_id(a.clone(), id_a))
    );
    assert_eq!(
        store.get(id_b).await.unwrap(),
        Some(with_id(b.clone(), id_b))
    );
    assert_eq!(
        store.get_by_signature("sig-a").await.unwrap(),
        Some(with_id(a.clone(), id_a))
    );
    assert_eq!(
        store.get_by_signature("sig-b").await.unwrap(),
        Some(with_id(b.clone(), id_b))
    );
    assert_eq!(store.get(id_b + 100).await.unwrap(), None);
    assert_eq!(store.get_by_signature("sig-c").await.unwrap(), None);

    // The same reads answered by warm once hot is gone.
    store.hot_tier().clear();
    assert_eq!(store.hot_tier().len(), 0);
    assert_eq!(store.get(id_a).await.unwrap(), Some(with_id(a, id_a)));
    assert_eq!(
        store.get_by_signature("sig-b").await.unwrap(),
        Some(with_id(b, id_b))
    );
    let stats = store.get_stats().await.unwrap();
    assert_eq!(stats.total_records, 2);
    assert!(stats.warm_hits >= 2, "{stats:?}");
}

#[tokio::test]
async fn coordinator_records_without_signature_are_stored_and_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let r = TransactionRecord {
        timestamp_decision_made: 5,
        ..TransactionRecord::default()
    };
    let a = store.put(&r).await.unwrap();
    let b = store.put(&r).await.unwrap();
    assert_ne!(a, b);
    store.hot_tier().clear();
    assert_eq!(store.get(a).await.unwrap(), Some(with_id(r.clone(), a)));
    assert_eq!(store.get(b).await.unwrap(), Some(with_id(r, b)));
    assert_eq!(store.get_stats().await.unwrap().total_records, 2);
}

#[tokio::test]
async fn coordinator_promotes_on_the_second_read_by_default_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.auto_promote_on_access = true;
    cfg.tiering.min_hot_access_count = 2;
    let store = open(cfg).await;
    let id = store.put(&record("promote-2", 1)).await.unwrap();
    assert!(store.hot_tier().contains_id(id), "a put is cached");
    store.hot_tier().clear();
    assert!(!store.hot_tier().contains_id(id));

    assert!(store.get(id).await.unwrap().is_some());
    assert!(
        !store.hot_tier().contains_id(id),
        "promoted on the 1st read with min_hot_access_count = 2"
    );
    assert!(store.get(id).await.unwrap().is_some());
    assert!(
        store.hot_tier().contains_id(id),
        "not promoted on the 2nd read"
    );
    assert_eq!(store.hot_tier().metrics().promotions, 1);
    // Now served by hot.
    let hits_before = store.get_stats().await.unwrap().hot_hits;
    assert!(store.get(id).await.unwrap().is_some());
    assert_eq!(store.get_stats().await.unwrap().hot_hits, hits_before + 1);
}

#[tokio::test]
async fn coordinator_promotes_on_the_second_signature_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.min_hot_access_count = 2;
    let store = open(cfg).await;
    let r = record("promote-by-sig", 1);
    let id = store.put(&r).await.unwrap();
    store.hot_tier().clear();
    assert_eq!(
        store.get_by_signature("promote-by-sig").await.unwrap(),
        Some(with_id(r.clone(), id))
    );
    assert!(!store.hot_tier().contains_id(id));
    assert_eq!(
        store.get_by_signature("promote-by-sig").await.unwrap(),
        Some(with_id(r, id))
    );
    assert!(store.hot_tier().contains_id(id));
}

#[tokio::test]
async fn coordinator_never_promotes_when_auto_promote_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.auto_promote_on_access = false;
    cfg.tiering.min_hot_access_count = 1;
    let store = open(cfg).await;
    let r = record("no-promote", 1);
    let id = store.put(&r).await.unwrap();
    store.hot_tier().clear();
    for _ in 0..10 {
        assert_eq!(store.get(id).await.unwrap(), Some(with_id(r.clone(), id)));
        assert!(store
            .get_by_signature("no-promote")
            .await
            .unwrap()
            .is_some());
        assert!(!store.hot_tier().contains_id(id));
    }
    assert_eq!(store.hot_tier().metrics().promotions, 0);
    assert_eq!(store.hot_tier().len(), 0);
}

#[tokio::test]
async fn coordinator_promotes_on_the_first_read_with_min_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.min_hot_access_count = 1;
    let store = open(cfg).await;
    let id = store.put(&record("promote-1", 1)).await.unwrap();
    store.hot_tier().clear();
    assert!(store.get(id).await.unwrap().is_some());
    assert!(store.hot_tier().contains_id(id));

    let id2 = store.put(&record("promote-1-sig", 1)).await.unwrap();
    store.hot_tier().clear();
    assert!(store
        .get_by_signature("promote-1-sig")
        .await
        .unwrap()
        .is_some());
    assert!(store.hot_tier().contains_id(id2));
}

#[tokio::test]
async fn coordinator_update_is_visible_immediately_via_hot_and_warm() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let v1 = record("upd", 10);
    let id = store.put(&v1).await.unwrap();
    assert!(store.hot_tier().contains_id(id));

    // Cached copy replaced.
    let mut v2 = with_id(v1.clone(), id);
    v2.actual_outcome = Outcome::Profit(0.25);
    v2.final_sol_received = Some(1.5);
    store.update(&v2).await.unwrap();
    assert_eq!(store.get(id).await.unwrap(), Some(v2.clone()));
    assert_eq!(
        store.get_by_signature("upd").await.unwrap(),
        Some(v2.clone())
    );

    // Not cached: warm answers with the new version and a later promotion caches it.
    store.hot_tier().clear();
    let mut v3 = v2.clone();
    v3.actual_outcome = Outcome::Loss(0.1);
    store.update(&v3).await.unwrap();
    for _ in 0..3 {
        assert_eq!(store.get(id).await.unwrap(), Some(v3.clone()));
        assert_eq!(
            store.get_by_signature("upd").await.unwrap(),
            Some(v3.clone())
        );
    }
    assert!(store.hot_tier().contains_id(id));
    store.hot_tier().clear();
    assert_eq!(store.get(id).await.unwrap(), Some(v3));
}

#[tokio::test]
async fn coordinator_update_that_changes_signature_moves_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let id = store.put(&record("old-sig", 10)).await.unwrap();
    // Make sure the old signature is resolvable from hot before the change.
    assert!(store.get_by_signature("old-sig").await.unwrap().is_some());
    assert!(store.hot_tier().contains_id(id));

    let mut renamed = with_id(record("new-sig", 11), id);
    renamed.sell_price_sol = Some(0.002);
    store.update(&renamed).await.unwrap();

    // Via hot.
    assert!(store.hot_tier().contains_id(id));
    assert_eq!(store.get_by_signature("old-sig").await.unwrap(), None);
    assert_eq!(
        store.get_by_signature("new-sig").await.unwrap(),
        Some(renamed.clone())
    );
    assert_eq!(store.get(id).await.unwrap(), Some(renamed.clone()));

    // Via warm.
    store.hot_tier().clear();
    assert_eq!(store.get_by_signature("old-sig").await.unwrap(), None);
    assert_eq!(
        store.get_by_signature("new-sig").await.unwrap(),
        Some(renamed.clone())
    );
    assert_eq!(store.get(id).await.unwrap(), Some(renamed.clone()));

    // The freed signature can be taken by a new record; the renamed one keeps its own.
    let other = store.put(&record("old-sig", 12)).await.unwrap();
    assert_ne!(other, id);
    assert_eq!(
        store.get_by_signature("old-sig").await.unwrap().unwrap().id,
        Some(other)
    );
    assert_eq!(
        store.get_by_signature("new-sig").await.unwrap(),
        Some(renamed)
    );
}

#[tokio::test]
async fn coordinator_update_while_uncached_then_signature_read_through_hot() {
    // Signature changed while the record was not cached; a stale hot mapping must not survive.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.min_hot_access_count = 1;
    let store = open(cfg).await;
    let id = store.put(&record("s1", 1)).await.unwrap();
    store.hot_tier().clear();
    let v2 = with_id(record("s2", 2), id);
    store.update(&v2).await.unwrap();
    assert_eq!(store.get_by_signature("s1").await.unwrap(), None);
    assert_eq!(
        store.get_by_signature("s2").await.unwrap(),
        Some(v2.clone())
    );
    assert!(store.hot_tier().contains_id(id));
    let v3 = with_id(record("s3", 3), id);
    store.update(&v3).await.unwrap();
    assert_eq!(store.get_by_signature("s2").await.unwrap(), None);
    assert_eq!(store.get_by_signature("s1").await.unwrap(), None);
    assert_eq!(store.get_by_signature("s3").await.unwrap(), Some(v3));
}

#[tokio::test]
async fn coordinator_update_to_no_signature_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let id = store.put(&record("temp-sig", 1)).await.unwrap();
    let mut unsigned = with_id(record("x", 1), id);
    unsigned.transaction_signature = None;
    store.update(&unsigned).await.unwrap();
    assert_eq!(store.get_by_signature("temp-sig").await.unwrap(), None);
    assert_eq!(store.get(id).await.unwrap(), Some(unsigned.clone()));
    store.hot_tier().clear();
    assert_eq!(store.get_by_signature("temp-sig").await.unwrap(), None);
    assert_eq!(store.get(id).await.unwrap(), Some(unsigned));
}

#[tokio::test]
async fn coordinator_remove_hides_the_record_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let keep = store.put(&record("keep", 1)).await.unwrap();
    let cached = store.put(&record("gone-cached", 1)).await.unwrap();
    let uncached = store.put(&record("gone-uncached", 1)).await.unwrap();
    assert!(store.hot_tier().contains_id(cached));

    store.remove(cached).await.unwrap();
    assert_eq!(store.get(cached).await.unwrap(), None);
    assert_eq!(store.get_by_signature("gone-cached").await.unwrap(), None);
    assert!(!store.hot_tier().contains_id(cached));

    store.hot_tier().clear();
    store.remove(uncached).await.unwrap();
    assert_eq!(store.get(uncached).await.unwrap(), None);
    assert_eq!(store.get_by_signature("gone-uncached").await.unwrap(), None);

    for id in [cached, uncached] {
        let err = store.remove(id).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { id: i } if i == id), "{err}");
    }
    // Reads after the failed second remove still see nothing; the survivor is intact.
    assert_eq!(store.get(cached).await.unwrap(), None);
    assert!(store.get(keep).await.unwrap().is_some());
    let ids: Vec<i64> = scan(&store).await.iter().map(|r| r.id.unwrap()).collect();
    assert_eq!(ids, vec![keep]);
    assert_eq!(store.get_stats().await.unwrap().total_records, 1);

    // An update of a removed record is NotFound and does not resurrect it.
    let err = store
        .update(&with_id(record("gone-cached", 1), cached))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { id } if id == cached),
        "{err}"
    );
    assert_eq!(store.get(cached).await.unwrap(), None);
    assert_eq!(store.get_by_signature("gone-cached").await.unwrap(), None);

    // The removed signature is free again.
    let again = store.put(&record("gone-cached", 2)).await.unwrap();
    assert!(again > uncached, "ids are not reused: {again}");
}

#[tokio::test]
async fn coordinator_list_since_yields_id_order_and_filters_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let mut expected = Vec::new();
    for n in 0..40i64 {
        // Timestamps deliberately out of id order.
        let ts = if n % 3 == 0 { 100 } else { 10_000 - n * 10 };
        let r = record(&format!("list-{n}"), ts);
        let id = store.put(&r).await.unwrap();
        expected.push(with_id(r, id));
    }
    // Removals and an update that moves a record across the filter boundary.
    store.remove(expected[5].id.unwrap()).await.unwrap();
    expected.remove(5);
    let mut moved = expected[0].clone(); // ts 100 → now recent
    moved.timestamp_decision_made = 50_000;
    store.update(&moved).await.unwrap();
    expected[0] = moved;

    let all = scan(&store).await;
    assert_eq!(all, expected);
    let ids: Vec<i64> = all.iter().map(|r| r.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "id order: {ids:?}");

    for since in [i64::MIN, 0, 100, 101, 9_700, 9_800, 10_000, 50_000, 50_001] {
        let want: Vec<TransactionRecord> = expected
            .iter()
            .filter(|r| r.timestamp_decision_made >= since)
            .cloned()
            .collect();
        let mut got = Vec::new();
        let mut cursor = store.list_since(since);
        while let Some(r) = cursor.next().await.unwrap() {
            got.push(r);
        }
        assert_eq!(got, want, "since {since}");
        // The cursor stays exhausted.
        assert_eq!(cursor.next().await.unwrap(), None);
    }
}

#[tokio::test]
async fn coordinator_list_since_pages_through_many_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let mut ids = Vec::new();
    for n in 0..250i64 {
        ids.push(
            store
                .put(&record(&format!("page-{n}"), n % 2 * 1_000))
                .await
                .unwrap(),
        );
    }
    for page_size in [1usize, 3, 7, 64, 250, 251, 1000] {
        let mut cursor = store.list_since_with_page_size(i64::MIN, page_size);
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(page) = cursor.next_page().await.unwrap() {
            assert!(!page.is_empty(), "empty page instead of None");
            assert!(page.len() <= page_size);
            pages += 1;
            seen.extend(page.into_iter().map(|r| r.id.unwrap()));
        }
        assert_eq!(seen, ids, "page size {page_size}");
        assert!(pages >= ids.len().div_ceil(page_size), "{pages} pages");
        assert_eq!(cursor.next_page().await.unwrap(), None);

        // Filtered scan with the same page size: only odd n (ts 1000).
        let mut cursor = store.list_since_with_page_size(1_000, page_size);
        let mut filtered = Vec::new();
        while let Some(r) = cursor.next().await.unwrap() {
            assert_eq!(r.timestamp_decision_made, 1_000);
            filtered.push(r.id.unwrap());
        }
        let want: Vec<i64> = ids.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(filtered, want, "filtered, page size {page_size}");
    }
    // Page size 0 is treated as 1, not an endless loop.
    let mut cursor = store.list_since_with_page_size(i64::MIN, 0);
    let first = cursor.next_page().await.unwrap().unwrap();
    assert_eq!(first.len(), 1);
    // Nothing newer than everything.
    assert_eq!(store.list_since(i64::MAX).next().await.unwrap(), None);
}

#[tokio::test]
async fn coordinator_list_since_on_an_empty_store_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    assert_eq!(store.list_since(i64::MIN).next_page().await.unwrap(), None);
    assert_eq!(store.list_since(0).next().await.unwrap(), None);
}

#[tokio::test]
async fn coordinator_duplicate_signature_is_refused_on_put_and_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let a = record("dup-a", 1);
    let b = record("dup-b", 2);
    let id_a = store.put(&a).await.unwrap();
    let id_b = store.put(&b).await.unwrap();
    let before = snapshot(&store).await;

    // Put with a taken signature, whether or not the owner is cached.
    for clear in [false, true] {
        if clear {
            store.hot_tier().clear();
        }
        let mut dup = record("dup-a", 99);
        dup.final_sol_received = Some(42.0);
        let err = store.put(&dup).await.unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateSignature { existing_id, signature }
                if *existing_id == id_a && signature == "dup-a"),
            "{err}"
        );
        assert_eq!(snapshot(&store).await, before);
        assert_eq!(
            store.get_by_signature("dup-a").await.unwrap(),
            Some(with_id(a.clone(), id_a))
        );
    }

    // Update of b onto a's signature.
    let mut steal = with_id(b.clone(), id_b);
    steal.transaction_signature = Some("dup-a".into());
    steal.final_sol_received = Some(7.0);
    let err = store.update(&steal).await.unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateSignature { existing_id, .. } if *existing_id == id_a),
        "{err}"
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        store.get(id_b).await.unwrap(),
        Some(with_id(b.clone(), id_b))
    );
    assert_eq!(
        store.get_by_signature("dup-b").await.unwrap(),
        Some(with_id(b.clone(), id_b))
    );
    assert_eq!(
        store.get_by_signature("dup-a").await.unwrap(),
        Some(with_id(a.clone(), id_a))
    );

    // Updating a record while keeping its own signature is not a duplicate.
    let mut same = with_id(b, id_b);
    same.final_sol_received = Some(3.0);
    store.update(&same).await.unwrap();
    assert_eq!(store.get(id_b).await.unwrap(), Some(same));
}

#[tokio::test]
async fn coordinator_empty_signature_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let id = store.put(&record("nonempty", 1)).await.unwrap();
    let before = snapshot(&store).await;

    let err = store.put(&record("", 1)).await.unwrap_err();
    assert!(matches!(err, Error::EmptySignature), "{err}");
    assert_eq!(snapshot(&store).await, before);

    let err = store.update(&with_id(record("", 1), id)).await.unwrap_err();
    assert!(matches!(err, Error::EmptySignature), "{err}");
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        store.get(id).await.unwrap().unwrap().transaction_signature,
        Some("nonempty".into())
    );

    let err = store.get_by_signature("").await.unwrap_err();
    assert!(matches!(err, Error::EmptySignature), "{err}");
}

#[tokio::test]
async fn coordinator_record_too_large_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_record_bytes = 256;
    let store = open(cfg).await;
    let small = record("small", 1);
    let id = store.put(&small).await.unwrap();
    let before = snapshot(&store).await;

    let mut big = record("big", 1);
    big.scored_candidate.reason = "x".repeat(1_000);
    let err = store.put(&big).await.unwrap_err();
    assert!(
        matches!(err, Error::RecordTooLarge { size, max: 256 } if size > 256),
        "{err}"
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(store.get_by_signature("big").await.unwrap(), None);

    let mut big_update = with_id(small.clone(), id);
    big_update.scored_candidate.reason = "y".repeat(1_000);
    let err = store.update(&big_update).await.unwrap_err();
    assert!(
        matches!(err, Error::RecordTooLarge { max: 256, .. }),
        "{err}"
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        store.get(id).await.unwrap(),
        Some(with_id(small.clone(), id))
    );
    store.hot_tier().clear();
    assert_eq!(store.get(id).await.unwrap(), Some(with_id(small, id)));
}

#[tokio::test]
async fn coordinator_update_and_remove_of_unknown_id_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let id = store.put(&record("known", 1)).await.unwrap();
    let before = snapshot(&store).await;

    let ghost = id + 1_000;
    let err = store
        .update(&with_id(record("ghost", 1), ghost))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { id } if id == ghost),
        "{err}"
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(store.get(ghost).await.unwrap(), None);
    assert_eq!(store.get_by_signature("ghost").await.unwrap(), None);
    assert!(!store.hot_tier().contains_id(ghost));

    let err = store.remove(ghost).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { id } if id == ghost),
        "{err}"
    );
    for weird in [0, -1, i64::MIN, i64::MAX] {
        let err = store.remove(weird).await.unwrap_err();
        assert!(
            matches!(err, Error::NotFound { id } if id == weird),
            "{err}"
        );
        assert_eq!(store.get(weird).await.unwrap(), None);
    }
    assert_eq!(snapshot(&store).await, before);

    // The signature of the failed update was not reserved.
    store.put(&record("ghost", 1)).await.unwrap();
}

#[tokio::test]
async fn coordinator_put_with_id_and_update_without_id_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let id = store.put(&record("valid", 1)).await.unwrap();
    let before = snapshot(&store).await;

    // Put of a record that already has an id, existing or not.
    for preset in [id, id + 50] {
        let err = store
            .put(&with_id(record("preset-id", 1), preset))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidRecord { .. }), "{err}");
        assert_eq!(snapshot(&store).await, before);
    }
    assert_eq!(store.get_by_signature("preset-id").await.unwrap(), None);
    assert_eq!(
        store.get(id).await.unwrap(),
        Some(with_id(record("valid", 1), id))
    );

    let err = store.update(&record("valid", 2)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRecord { .. }), "{err}");
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        store
            .get_by_signature("valid")
            .await
            .unwrap()
            .unwrap()
            .timestamp_decision_made,
        1
    );
}

#[tokio::test]
async fn coordinator_invalid_config_is_refused_before_touching_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("never-created");

    let cfg = config(&data_dir).with_hot_capacity(0);
    let err = Store::open(cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                field: "hot.capacity",
                ..
            }
        ),
        "{err}"
    );

    let mut cfg = config(&data_dir);
    cfg.tiering.min_hot_access_count = 0;
    let err = Store::open(cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                field: "tiering.min_hot_access_count",
                ..
            }
        ),
        "{err}"
    );

    let mut cfg = config(&data_dir);
    cfg.max_record_bytes = 1;
    let err = Store::open(cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                field: "max_record_bytes",
                ..
            }
        ),
        "{err}"
    );

    let mut cfg = config(&data_dir);
    cfg.warm.max_batch = 0;
    let err = Store::open(cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                field: "warm.max_batch",
                ..
            }
        ),
        "{err}"
    );

    let err = Store::open(config(Path::new(""))).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                field: "data_dir",
                ..
            }
        ),
        "{err}"
    );

    // `new` validates too.
    let err = AutoTieringCoordinator::new(config(&data_dir).with_hot_capacity(0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");

    assert!(
        !data_dir.exists(),
        "a refused config must not create the data dir"
    );
}

#[tokio::test]
async fn coordinator_unwritable_data_dir_is_a_data_dir_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-regular-file");
    std::fs::write(&file, b"not a directory").unwrap();

    // A directory under a regular file cannot be created, even as root.
    let under_file = file.join("store");
    let err = Store::open(config(&under_file)).await.unwrap_err();
    match &err {
        Error::DataDir { path, .. } => assert_eq!(path, &under_file),
        other => panic!("expected DataDir, got {other:?}"),
    }
    // The data dir itself being a regular file.
    let err = Store::open(config(&file)).await.unwrap_err();
    assert!(matches!(err, Error::DataDir { .. }), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    let msg = err.to_string();
    assert!(
        msg.contains("a-regular-file"),
        "error names the path: {msg}"
    );
}

#[tokio::test]
async fn coordinator_refuses_a_database_with_a_newer_schema() {
    // rusqlite is not a dev-dependency, so `user_version` is patched in the file header: the
    // big-endian u32 at byte 60. That needs every page in the main file, not the WAL.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(config(dir.path())).await;
        store.put(&record("from-the-future", 1)).await.unwrap();
        let report = store.run_warm_upkeep().await.unwrap();
        assert_eq!(
            report.wal_frames, report.wal_frames_checkpointed,
            "passive checkpoint with no readers must copy every frame: {report:?}"
        );
    }
    let db = dir.path().join(WARM_DB_FILE);
    // Every frame was checkpointed and the store is closed, so the WAL is redundant; removing it
    // keeps SQLite from overlaying the patched header page with the WAL's copy.
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("{}{suffix}", WARM_DB_FILE));
        if side.exists() {
            std::fs::remove_file(&side).unwrap();
        }
    }
    let mut bytes = std::fs::read(&db).unwrap();
    assert_eq!(&bytes[..16], b"SQLite format 3\0");
    let current = u32::from_be_bytes(bytes[60..64].try_into().unwrap());
    assert_eq!(i64::from(current), SCHEMA_VERSION);
    let newer = u32::try_from(SCHEMA_VERSION + 1).unwrap();
    bytes[60..64].copy_from_slice(&newer.to_be_bytes());
    std::fs::write(&db, &bytes).unwrap();

    let err = Store::open(config(dir.path())).await.unwrap_err();
    match &err {
        Error::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // Refusing did not rewrite the version or the data.
    let after = std::fs::read(&db).unwrap();
    assert_eq!(&after[60..64], &newer.to_be_bytes());

    // Restoring the version makes the data readable again.
    let mut restored = after;
    restored[60..64].copy_from_slice(&current.to_be_bytes());
    std::fs::write(&db, &restored).unwrap();
    let store = open(config(dir.path())).await;
    assert!(store
        .get_by_signature("from-the-future")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn coordinator_failed_writes_in_a_concurrent_batch_do_not_affect_neighbours() {
    // Group commit: a duplicate inside a batch fails alone; its neighbours commit.
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(config(dir.path())).await);
    let mut tasks = Vec::new();
    for n in 0..64 {
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Every pair (2k, 2k+1) shares one signature.
            let r = record(&format!("pair-{}", n / 2), n);
            (n, store.put(&r).await)
        }));
    }
    let mut ok = std::collections::BTreeMap::new();
    let mut refused = std::collections::BTreeMap::new();
    for t in tasks {
        let (n, res) = t.await.unwrap();
        match res {
            Ok(id) => {
                assert!(
                    ok.insert(n / 2, id).is_none(),
                    "both of pair {} stored",
                    n / 2
                );
            }
            Err(Error::DuplicateSignature { existing_id, .. }) => {
                assert!(refused.insert(n / 2, existing_id).is_none());
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok.len(), 32, "exactly one of each pair stored");
    assert_eq!(refused.len(), 32, "exactly one of each pair refused");
    // Each refusal names the record that won its pair.
    assert_eq!(refused, ok);
    assert_eq!(store.get_stats().await.unwrap().total_records, 32);
    for (pair, id) in ok {
        let got = store
            .get_by_signature(&format!("pair-{pair}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.id, Some(id));
    }
}

/// Regression: a `next_page` future dropped mid-read (a timeout, a `select!`) used to take the
/// cursor with it, and every later call said `Closed`. Now the next call takes up the page that
/// was being read: every record is still returned exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_a_cancelled_next_page_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let mut ids = Vec::new();
    for n in 0..1500 {
        ids.push(
            store
                .put(&record(&format!("cancel-{n}"), 1_000 + n))
                .await
                .unwrap(),
        );
    }
    let mut cursor = store.list_since_with_page_size(i64::MIN, 50);
    let mut seen = Vec::new();
    let mut cancelled = 0;
    for round in 0.. {
        // Every other call is given no time at all, so it is dropped mid-read.
        if round % 2 == 0 {
            let quick = tokio::select! {
                biased;
                page = cursor.next_page() => Some(page),
                () = std::future::ready(()) => None,
            };
            match quick {
                Some(page) => match page.unwrap() {
                    Some(page) => seen.extend(page.into_iter().map(|r| r.id.unwrap())),
                    None => break,
                },
                None => cancelled += 1,
            }
            continue;
        }
        match cursor.next_page().await.unwrap() {
            Some(page) => seen.extend(page.into_iter().map(|r| r.id.unwrap())),
            None => break,
        }
    }
    assert!(cancelled > 5, "{cancelled} calls cancelled");
    assert_eq!(seen, ids);
}

/// `get_shared` and `get_by_signature_shared` return what `get` returns, from warm and from
/// hot; a hot hit hands out the cached record itself (one allocation, never copied), while
/// `get` still returns the caller's own copy.
#[tokio::test]
async fn coordinator_shared_reads_match_get() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let id = store.put(&record("shared-1", 1_000)).await.unwrap();
    store.hot_tier().clear();
    // The first read is a warm hit (not promoted), the second promotes.
    let owned = store.get(id).await.unwrap().unwrap();
    assert!(!store.hot_tier().contains_id(id));
    let promoted = store.get_shared(id).await.unwrap().unwrap();
    assert_eq!(*promoted, owned);
    assert!(store.hot_tier().contains_id(id));
    let a = store.get_shared(id).await.unwrap().unwrap();
    let b = store.get_shared(id).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&a, &b), "a hot hit must not be copied");
    assert!(
        Arc::ptr_eq(&a, &promoted),
        "the promoted record is the one cached"
    );
    let by_sig = store
        .get_by_signature_shared("shared-1")
        .await
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&by_sig, &a));
    assert_eq!(store.get(id).await.unwrap().unwrap(), owned);
    assert_eq!(
        store.get_by_signature("shared-1").await.unwrap().unwrap(),
        owned
    );
    assert!(store.get_shared(id + 100).await.unwrap().is_none());
    assert!(store
        .get_by_signature_shared("missing")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.get_by_signature_shared("").await,
        Err(Error::EmptySignature)
    ));
}
