//! Online backup: `backup_to` copies a running store (8 writers, archival and compaction going
//! on) into a directory that opens as a store holding exactly the state of one snapshot taken
//! during the backup.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tiered_storage::{AutoTieringCoordinator, Error, ScanRange, StorageConfig, TransactionRecord};

mod common;
use common::{runtime, DAY, T0};

type Store = AutoTieringCoordinator<TransactionRecord>;

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 100;
    c.cold.target_file_mib = 1;
    c.tiering.auto_promote_on_access = false;
    c
}

/// One acknowledged write: what, and when it was acknowledged.
#[derive(Debug, Clone)]
enum Ack {
    Put(Box<TransactionRecord>, Instant),
    Removed(Instant),
}

#[test]
fn backup_of_a_busy_store_opens_as_one_consistent_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let copy = backup.path().join("copy");
    let rt = runtime();
    rt.block_on(async {
        let store = Arc::new(Store::open(config(dir.path())).await.unwrap());
        let acks: Arc<Mutex<BTreeMap<i64, Ack>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        // Eight writers: puts of old records (so archival has work), and removes of some.
        let mut writers = Vec::new();
        for w in 0..8u64 {
            let (store, acks, stop) = (store.clone(), acks.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    let mut r = common::record(n, "backupsig");
                    r.timestamp_decision_made = T0 + (n % 3) as i64 * DAY + n as i64;
                    let id = store.put(&r).await.unwrap();
                    r.id = Some(id);
                    acks.lock()
                        .insert(id, Ack::Put(Box::new(r), Instant::now()));
                    if n % 11 == 0 {
                        store.remove(id).await.unwrap();
                        acks.lock().insert(id, Ack::Removed(Instant::now()));
                    }
                    n += 8;
                }
            }));
        }
        // Archival and compaction keep moving records meanwhile.
        let mover = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut moves = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    store.archive_older_than(T0 + 10 * DAY).await.unwrap();
                    store.compact_now().await.unwrap();
                    moves += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                moves
            })
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let started = Instant::now();
        let report = store.backup_to(&copy).await.unwrap();
        let ended = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        let moves = mover.await.unwrap();
        assert!(moves >= 2, "{moves} moves");
        assert!(report.cold_files > 0, "{report:?}");

        // A second backup into a non-empty directory is refused, and touches nothing there.
        let err = store.backup_to(&copy).await.unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");

        let acks = acks.lock().clone();
        let restored = Store::open(config(&copy)).await.unwrap();
        assert!(restored.verify().await.unwrap().is_clean());
        let mut before = 0;
        let mut after = 0;
        for (&id, ack) in &acks {
            let got = restored.get(id).await.unwrap();
            match ack {
                // Acknowledged before the backup began: in the copy as acknowledged.
                Ack::Put(r, at) if *at < started => {
                    assert_eq!(got.as_ref(), Some(&**r), "{id}");
                    before += 1;
                }
                Ack::Removed(at) if *at < started => {
                    assert!(got.is_none(), "removed {id} is back");
                }
                // Acknowledged after it ended: not in the snapshot.
                Ack::Put(_, at) if *at > ended => {
                    assert!(got.is_none(), "{id} put after the backup");
                    after += 1;
                }
                // In between, or removed after: either, but never altered.
                Ack::Put(r, _) => assert!(got.is_none() || got.as_ref() == Some(&**r), "{id}"),
                Ack::Removed(_) => {
                    if let Some(got) = got {
                        assert_eq!(got.id, Some(id));
                    }
                }
            }
        }
        assert!(before > 100 && after > 10, "{before} before, {after} after");
        // The copy serves each record once in a full scan, and is a store of its own.
        let mut cursor = restored.scan(ScanRange::default(), 500).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(page) = cursor.next_page().await.unwrap() {
            for r in page {
                assert!(seen.insert(r.id.unwrap()), "{:?} twice", r.id);
            }
        }
        let stats = restored.get_stats().await.unwrap();
        assert_eq!(stats.total_records, seen.len() as u64);
        restored
            .put(&common::record(1 << 40, "aftercopy"))
            .await
            .unwrap();
        // The original is untouched by all of it.
        assert!(store.verify().await.unwrap().is_clean());
    });
}
