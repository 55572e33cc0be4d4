//! Corruption is detected and reported, never served as data and never as "not found"
//! (invariant 6): flipped bytes anywhere in a cold file, garbage in the warm database.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tiered_storage::{AutoTieringCoordinator, Error, FileState, StorageConfig, TransactionRecord};

mod common;
use common::runtime;

type Store = AutoTieringCoordinator<TransactionRecord>;

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    // Every read goes to the tier under test.
    c.tiering.auto_promote_on_access = false;
    c
}

fn flip(path: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
}

async fn fill(store: &Store, n: u64) -> BTreeMap<i64, TransactionRecord> {
    let mut model = BTreeMap::new();
    for i in 0..n {
        let mut r = common::record(i, "integrity");
        let id = store.put(&r).await.unwrap();
        r.id = Some(id);
        model.insert(id, r);
    }
    model
}

/// Flip one byte at each of many offsets of a real cold file (pages, page index, footer):
/// every flip is found by `verify_cold`, which quarantines the file; every read of a record in a
/// damaged page fails with `ColdFile`; no read returns different content or "absent"; restoring
/// the byte makes the file sound again.
#[test]
fn integrity_flipped_bytes_in_a_cold_file_are_detected_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = Store::open(config(dir.path())).await.unwrap();
        let model = fill(&store, 600).await;
        store.archive_older_than(i64::MAX).await.unwrap();
        // Reopen: puts cached every record in hot.
        drop(store);
        let store = Store::open(config(dir.path())).await.unwrap();
        let files = store.cold_tier().files().unwrap();
        let victim = files.iter().max_by_key(|e| e.bytes).unwrap().clone();
        let path: PathBuf = store.cold_tier().file_path(&victim.path);
        let len = std::fs::metadata(&path).unwrap().len();
        // Records held by the victim: archived ids of its day.
        let day = victim.min_ts.div_euclid(common::DAY);
        let held: Vec<(i64, &TransactionRecord)> = model
            .iter()
            .filter(|(_, r)| r.timestamp_decision_made.div_euclid(common::DAY) == day)
            .map(|(&id, r)| (id, r))
            .collect();
        assert_eq!(held.len() as u64, victim.rows);

        // About 160 offsets spread over the file, past the leading magic, plus the last bytes.
        let mut offsets: Vec<u64> = (0..160).map(|i| 4 + i * (len - 12) / 160).collect();
        offsets.extend([len - 9, len - 20]);
        let mut read_failures = 0u64;
        let mut flips_seen_by_reads = 0u64;
        for (n, &offset) in offsets.iter().enumerate() {
            flip(&path, offset);
            let report = store.verify_cold().await.unwrap();
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.file_id == Some(victim.file_id)),
                "flip at {offset} of {len} not detected by verify_cold: {report:?}"
            );
            // Reads: every record is its own content or a ColdFile error.
            let mut failed_here = 0;
            for &(id, r) in held.iter().skip(n % 7).step_by(7) {
                match store.get(id).await {
                    Ok(Some(got)) => assert_eq!(&got, r, "flip at {offset}: wrong data"),
                    Ok(None) => panic!("flip at {offset}: record {id} read as absent"),
                    Err(Error::ColdFile { .. }) => failed_here += 1,
                    Err(e) => panic!("flip at {offset}: {e}"),
                }
            }
            read_failures += failed_here;
            flips_seen_by_reads += u64::from(failed_here > 0);
            flip(&path, offset); // restore
            let report = store.verify_cold().await.unwrap();
            assert!(report.problems.is_empty(), "restored: {report:?}");
            assert_eq!(report.revived, vec![victim.file_id]);
        }
        // Reads touch one page per column of the rows they read, so many flips are seen by
        // reads too; every one of them failed loudly rather than answering wrongly.
        assert!(
            read_failures > 0 && flips_seen_by_reads > 10,
            "{flips_seen_by_reads}"
        );
        for (id, r) in &model {
            assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(r));
        }
    });
}

/// A flipped byte in a data page is found by the read that touches it, reported as a cold-file
/// problem, and quarantined by the next maintenance step; everything else is still served.
#[test]
fn integrity_a_damaged_page_found_by_a_read_is_quarantined_by_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = Store::open(config(dir.path())).await.unwrap();
        let model = fill(&store, 300).await;
        store.archive_older_than(i64::MAX).await.unwrap();
        drop(store);
        let store = Store::open(config(dir.path())).await.unwrap();
        let victim = store.cold_tier().files().unwrap()[0].clone();
        let path = store.cold_tier().file_path(&victim.path);
        // The middle of the file is inside some data page.
        let len = std::fs::metadata(&path).unwrap().len();
        flip(&path, len / 3);
        let mut failed = 0;
        for (id, r) in &model {
            match store.get(*id).await {
                Ok(got) => assert_eq!(got.as_ref(), Some(r)),
                Err(Error::ColdFile { .. }) => failed += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(failed > 0, "the damaged page was read by someone");
        assert!(store
            .cold_tier()
            .problems()
            .iter()
            .any(|p| p.file_id == Some(victim.file_id)));
        store.run_maintenance_step().await.unwrap();
        let state = store
            .cold_tier()
            .files()
            .unwrap()
            .into_iter()
            .find(|e| e.file_id == victim.file_id)
            .unwrap()
            .state;
        assert_eq!(state, FileState::Quarantined);
        assert!(store
            .get_alerts()
            .await
            .iter()
            .any(|a| a.subject.contains(&victim.path)));
    });
}

/// Copy every file of `from` into a fresh directory.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
    }
    to
}

/// Garbage in a page of the warm database, at several pages and in two shapes (a whole page,
/// and the content area behind an intact page header): every read by id returns the record or
/// `Error::Corrupt`, never another record's content and never "not found"; reads by signature
/// never return wrong content; a detected corruption raises a critical alert; `verify` finds
/// the damage every time.
#[test]
fn integrity_a_damaged_warm_page_is_an_error_and_an_alert_never_not_found() {
    let pristine = tempfile::tempdir().unwrap();
    let rt = runtime();
    let model = rt.block_on(async {
        let store = Store::open(config(pristine.path())).await.unwrap();
        let model = fill(&store, 3000).await;
        // Removed records must stay "not found", damage or not.
        for id in model.keys().step_by(10) {
            store.remove(*id).await.unwrap();
        }
        store.shutdown().await.unwrap();
        model
    });
    let removed: Vec<i64> = model.keys().step_by(10).copied().collect();
    {
        let db = rusqlite::Connection::open(pristine.path().join("warm.sqlite3")).unwrap();
        db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    {
        let db = rusqlite::Connection::open(pristine.path().join("warm.sqlite3")).unwrap();
        let qc: String = db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(qc, "ok", "the pristine copy");
    }
    rt.block_on(async {
        let mut c = config(pristine.path());
        c.warm.quick_check_on_open = true;
        let store = Store::open(c).await.unwrap();
        assert!(store.verify().await.unwrap().is_clean());
    });
    let db_len = std::fs::metadata(pristine.path().join("warm.sqlite3"))
        .unwrap()
        .len();
    let page = 16_384u64;
    let pages = db_len / page;
    assert!(pages > 20, "{pages} pages");
    let mut detected_by_reads = 0;
    for victim in [pages / 4, pages / 3, pages / 2, 2 * pages / 3, pages - 3] {
        for whole in [true, false] {
            let dir = copy_dir(pristine.path());
            let db = dir.path().join("warm.sqlite3");

            let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
            let (start, len) = if whole {
                (victim * page, page)
            } else {
                (victim * page + page / 2, page / 2)
            };
            let garbage: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            f.write_all_at(&garbage, start).unwrap();
            drop(f);
            rt.block_on(async {
                let store = match Store::open(config(dir.path())).await {
                    Ok(s) => s,
                    // Damage to what open reads is refused at open, typed.
                    Err(Error::Corrupt { .. }) => return,
                    Err(e) => panic!("page {victim}: open: {e}"),
                };
                let mut errors = 0;
                for (id, r) in &model {
                    let gone = removed.contains(id);
                    match store.get(*id).await {
                        Ok(Some(got)) => {
                            assert!(!gone, "page {victim}: removed {id} came back");
                            assert_eq!(&got, r, "page {victim}: wrong content");
                        }
                        Ok(None) => assert!(gone, "page {victim} whole={whole}: {id} not found"),
                        Err(Error::Corrupt { .. }) => errors += 1,
                        Err(e) => panic!("page {victim}: untyped corruption: {e:?}"),
                    }
                    let sig = r.transaction_signature.as_deref().unwrap();
                    match store.get_by_signature(sig).await {
                        Ok(Some(got)) => assert_eq!(got.id, Some(*id), "page {victim}"),
                        Ok(None) | Err(Error::Corrupt { .. }) => {}
                        Err(e) => panic!("page {victim}: untyped corruption: {e:?}"),
                    }
                }
                if errors > 0 {
                    detected_by_reads += 1;
                    let alerts = store.get_alerts().await;
                    assert!(
                        alerts
                            .iter()
                            .any(|a| a.kind == tiered_storage::AlertKind::WarmCorruption),
                        "{alerts:?}"
                    );
                }
                let report = store.verify().await.unwrap();
                assert!(
                    !report.warm_problems.is_empty(),
                    "page {victim} whole={whole}: quick_check found nothing"
                );
            });
        }
    }
    assert!(detected_by_reads > 0);
    // A sound database verifies clean, and the option at open passes it.
    rt.block_on(async {
        let mut c = config(pristine.path());
        c.warm.quick_check_on_open = true;
        let store = Store::open(c).await.unwrap();
        assert!(store.verify().await.unwrap().is_clean());
    });
}
