//! The calls the operator tools (the `tiered-storage` CLI and the HTTP service) are built on:
//! `put_many`, `recently_put`, the progress callbacks of the moves, `count_due_for_archival`,
//! the maintenance status's move counters and `Error::code`. Each is checked against what the
//! store holds afterwards, reopened where it matters.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{cold_config, record, runtime, DAY, T0};
use tiered_storage::{AutoTieringCoordinator, Error, StorageConfig, TransactionRecord};

type Store = AutoTieringCoordinator<TransactionRecord>;

#[test]
fn put_many_stores_each_good_record_once_and_refuses_only_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = Store::new(cold_config(dir.path())).await.unwrap();
        let taken = store.put(&record(1_000, "taken")).await.unwrap();
        let mut batch: Vec<TransactionRecord> = (0..300).map(|n| record(n, "batch")).collect();
        // Line 10 has an id, line 20 an empty signature, line 30 repeats line 5's signature,
        // line 40 reuses a signature already stored, line 50 is too large.
        batch[10].id = Some(77);
        batch[20].transaction_signature = Some(String::new());
        batch[30].transaction_signature = batch[5].transaction_signature.clone();
        batch[40].transaction_signature = record(1_000, "taken").transaction_signature;
        batch[50]
            .market_context_snapshot
            .extend((0..200_000).map(|i| (format!("k{i}"), i as f64)));
        let results = store.put_many(&batch).await.unwrap();
        assert_eq!(results.len(), batch.len());
        let code = |i: usize| results[i].as_ref().err().map(Error::code);
        assert_eq!(code(10), Some("invalid_record"));
        assert_eq!(code(20), Some("empty_signature"));
        assert_eq!(code(30), Some("duplicate_signature"));
        assert!(matches!(
            results[40],
            Err(Error::DuplicateSignature { existing_id, .. }) if existing_id == taken
        ));
        assert_eq!(code(50), Some("record_too_large"));
        let bad = [10, 20, 30, 40, 50];
        let mut stored = BTreeMap::new();
        for (i, r) in results.iter().enumerate() {
            if bad.contains(&i) {
                continue;
            }
            let id = *r.as_ref().unwrap_or_else(|e| panic!("line {i}: {e}"));
            assert!(stored.insert(id, i).is_none(), "id {id} given twice");
        }
        store.shutdown().await.unwrap();
        drop(store);

        // After a reopen: every acknowledged record, exactly as given; nothing else.
        let store = Store::new(cold_config(dir.path())).await.unwrap();
        for (&id, &i) in &stored {
            let mut want = batch[i].clone();
            want.id = Some(id);
            assert_eq!(store.get(id).await.unwrap(), Some(want));
        }
        assert_eq!(
            store.get_stats().await.unwrap().total_records,
            stored.len() as u64 + 1
        );
        store.shutdown().await.unwrap();
    });
}

#[test]
fn put_many_on_a_read_only_or_closed_store_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let config = StorageConfig::default().with_data_dir(dir.path());
        let owner = Store::new(config.clone()).await.unwrap();
        let reader = Store::open_read_only(config).await.unwrap();
        let batch = [record(1, "a"), record(2, "a")];
        assert!(matches!(
            reader.put_many(&batch).await,
            Err(Error::ReadOnly { .. })
        ));
        owner.shutdown().await.unwrap();
        assert!(matches!(owner.put_many(&batch).await, Err(Error::Closed)));
        assert_eq!(owner.get_stats().await.unwrap().total_records, 0);
    });
}

#[test]
fn recently_put_is_newest_first_across_tiers_and_skips_removed_records() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = Store::new(cold_config(dir.path())).await.unwrap();
        let mut ids = Vec::new();
        for n in 0..500 {
            ids.push(store.put(&record(n, "recent")).await.unwrap());
        }
        // Everything but the last 100 to cold; then remove a run at the top and some below.
        let report = store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        assert_eq!(report.archived, 500);
        for n in 0..100 {
            store.put(&record(1_000 + n, "young")).await.unwrap();
        }
        let mut all: Vec<i64> = ids.clone();
        for n in 0..100 {
            all.push(ids[499] + 1 + n);
        }
        for &gone in &all[560..600] {
            store.remove(gone).await.unwrap();
        }
        for &gone in &all[100..450] {
            store.remove(gone).await.unwrap();
        }
        let live: Vec<i64> = all
            .iter()
            .copied()
            .filter(|&id| !(all[560..600].contains(&id) || all[100..450].contains(&id)))
            .rev()
            .collect();
        for n in [0, 1, 5, 30, 64, 100, 150, 250, 10_000] {
            let got: Vec<i64> = store
                .recently_put(n)
                .await
                .unwrap()
                .iter()
                .map(|r| r.id.unwrap())
                .collect();
            assert_eq!(got, live[..n.min(live.len())], "n = {n}");
        }
        // The same from a read-only handle beside the owner.
        let reader = Store::open_read_only(cold_config(dir.path()))
            .await
            .unwrap();
        let got: Vec<i64> = reader
            .recently_put(120)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id.unwrap())
            .collect();
        assert_eq!(got, live[..120]);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn archive_and_compaction_progress_reach_the_reports_totals_and_the_status_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = Store::new(cold_config(dir.path())).await.unwrap();
        for n in 0..900 {
            store.put(&record(n, "progress")).await.unwrap();
        }
        // The first day's records are due before T0 + DAY; all three days' before T0 + 3 days
        // (one file per day partition).
        assert_eq!(store.count_due_for_archival(T0 + DAY).await.unwrap(), 300);
        let cutoff = T0 + 3 * DAY;
        assert_eq!(store.count_due_for_archival(cutoff).await.unwrap(), 900);
        assert_eq!(store.count_due_for_archival(i64::MIN).await.unwrap(), 0);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let report = store
            .archive_older_than_with_progress(cutoff, move |p| log.lock().unwrap().push(p.clone()))
            .await
            .unwrap();
        assert_eq!((report.archived, report.files), (900, 3));
        assert_eq!(store.count_due_for_archival(cutoff).await.unwrap(), 0);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len() as u64, report.files, "one call per file");
        assert!(seen
            .windows(2)
            .all(|w| w[0].records_archived < w[1].records_archived));
        let last = seen.last().unwrap();
        assert_eq!(
            (
                last.records_archived,
                last.files_written,
                last.bytes_written
            ),
            (report.archived, report.files, report.bytes)
        );

        // Remove most rows, so compaction rewrites the (small, mostly dead) files.
        let gone = |id: i64| id % 10 != 0;
        for id in (1..=900).filter(|&id| gone(id)) {
            store.remove(id).await.unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let compaction = store
            .compact_now_with_progress(move |p| log.lock().unwrap().push(p.clone()))
            .await
            .unwrap();
        assert!(compaction.files_in > 0, "{compaction:?}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0].groups_done, 0, "the plan is shown first");
        let last = seen.last().unwrap();
        assert_eq!(last.groups_done, last.groups_total);
        assert_eq!(
            (last.files_in, last.files_out),
            (compaction.files_in, compaction.files_out)
        );

        let status = store.maintenance_status();
        assert_eq!(status.records_archived, 900);
        assert_eq!(status.archive_files, report.files);
        assert!(status.last_archive_ms > 0);
        assert_eq!(status.compaction_files_in, compaction.files_in);
        assert_eq!(status.compaction_files_out, compaction.files_out);
        assert_eq!(status.compaction_bytes_in, compaction.bytes_in);
        assert_eq!(status.compaction_bytes_out, compaction.bytes_out);
        assert!(status.compaction_groups > 0 && status.last_compaction_ms > 0);

        // Every record not removed is still served, from whichever tier.
        for id in 1..=900i64 {
            assert_eq!(store.get(id).await.unwrap().is_none(), gone(id), "id {id}");
        }
        let warm = store.collect_metrics().await.unwrap().warm.unwrap();
        assert!(warm.writes >= 900, "{}", warm.writes);
        store.shutdown().await.unwrap();
    });
}
