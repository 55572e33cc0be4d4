//! One owner per data directory (invariant 7): a second read-write open, from this process or
//! another, fails with `Error::AlreadyOpen` naming the holder and touches nothing; the lock goes
//! with shutdown, drop and process death; a read-only open in another process reads while the
//! owner writes, archives and compacts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiered_storage::{AutoTieringCoordinator, Error, ScanRange, StorageConfig, TransactionRecord};

mod common;
use common::{runtime, DAY, T0};

/// The data directory's ownership lock file.
const LOCK_FILE: &str = "LOCK";

type Store = AutoTieringCoordinator<TransactionRecord>;

const OWNER_ENV: &str = "TIERED_STORAGE_OWNERSHIP_OWNER_DIR";

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 64;
    // Small files (each pass writes a few hundred rows), so compaction always has work.
    c.cold.target_file_mib = 1;
    c
}

fn record(n: u64) -> TransactionRecord {
    common::record(n, "ownersig")
}

/// Archival moves the records of the first three days.
const CUTOFF: i64 = T0 + 3 * DAY;

/// Start this test binary as the owner process, running `test` with the owner's role.
fn spawn_owner(test: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(OWNER_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The owner's workload: puts (printing `PUT id n` once acknowledged), updates of the buy
/// price (printing `UPD id n price`), archival and compaction, until killed.
fn owner(dir: &Path) {
    runtime().block_on(async {
        let store = Arc::new(Store::open(config(dir)).await.unwrap());
        emit("OPEN");
        let mut n = 0u64;
        loop {
            for _ in 0..200 {
                let id = store.put(&record(n)).await.unwrap();
                emit(&format!("PUT {id} {n}"));
                if n.is_multiple_of(5) {
                    let mut r = record(n);
                    r.id = Some(id);
                    r.buy_price_sol = Some(n as f64 + 0.5);
                    store.update(&r).await.unwrap();
                    emit(&format!("UPD {id} {n}"));
                }
                n += 1;
            }
            store.archive_older_than(CUTOFF).await.unwrap();
            store.compact_now().await.unwrap();
            emit("MOVED");
        }
    });
}

/// Acknowledged writes read from the owner's stdout: id -> (n, updated).
struct Acks {
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    acked: BTreeMap<i64, (u64, bool)>,
    moves: u64,
}

impl Acks {
    fn new(child: &mut Child) -> Self {
        Self {
            lines: BufReader::new(child.stdout.take().unwrap()).lines(),
            acked: BTreeMap::new(),
            moves: 0,
        }
    }

    /// Read lines until `stop` says enough; false if the owner exited.
    fn read_until(&mut self, mut stop: impl FnMut(&Self) -> bool) -> bool {
        while !stop(self) {
            let Some(Ok(line)) = self.lines.next() else {
                return false;
            };
            // libtest prints `test <name> ... ` with no newline, so a line may start with it.
            for word in ["PUT ", "UPD ", "MOVED", "OPEN"] {
                if let Some(at) = line.find(word) {
                    let mut parts = line[at..].split_whitespace();
                    match parts.next() {
                        Some("PUT") | Some("UPD") => {
                            let id: i64 = parts.next().unwrap().parse().unwrap();
                            let n: u64 = parts.next().unwrap().parse().unwrap();
                            let e = self.acked.entry(id).or_insert((n, false));
                            e.1 |= word == "UPD ";
                        }
                        Some("MOVED") => self.moves += 1,
                        _ => {}
                    }
                    break;
                }
            }
        }
        true
    }
}

fn expected(n: u64, updated: bool) -> TransactionRecord {
    let mut r = record(n);
    if updated {
        r.buy_price_sol = Some(n as f64 + 0.5);
    }
    r
}

/// The same record as written, id aside.
fn same(got: &TransactionRecord, want: &TransactionRecord) -> bool {
    let mut got = got.clone();
    got.id = None;
    &got == want
}

#[test]
fn ownership_second_open_in_this_process_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let first = Store::open(config(dir.path())).await.unwrap();
        let id = first.put(&record(1)).await.unwrap();
        let before: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        for _ in 0..3 {
            let err = Store::open(config(dir.path())).await.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::AlreadyOpen { .. }), "{err:?}");
            assert!(
                text.contains(&format!("pid {}", std::process::id())),
                "names the holder: {text}"
            );
            assert!(text.contains("open_read_only"), "says what to do: {text}");
        }
        let after: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after, "a refused open touches nothing");
        // The first handle is unaffected.
        assert!(first.get(id).await.unwrap().is_some());
        first.put(&record(2)).await.unwrap();

        // Shutdown releases the lock; the old handle still reads.
        first.shutdown().await.unwrap();
        let second = Store::open(config(dir.path())).await.unwrap();
        assert!(first.get(id).await.unwrap().is_some());
        assert_eq!(second.get_stats().await.unwrap().total_records, 2);
        assert!(matches!(first.put(&record(3)).await, Err(Error::Closed)));
        // Regression: `run_warm_upkeep` answered `Ok` after shutdown, unlike
        // `run_maintenance_step`.
        assert!(matches!(first.run_warm_upkeep().await, Err(Error::Closed)));
        assert!(matches!(
            first.run_maintenance_step().await,
            Err(Error::Closed)
        ));
        drop(second);
        drop(first);
        // Drop releases it too.
        let third = Store::open(config(dir.path())).await.unwrap();
        assert_eq!(third.get_stats().await.unwrap().total_records, 2);
    });
}

#[test]
fn ownership_second_open_from_another_process_is_refused_and_loses_nothing() {
    const TEST: &str = "ownership_second_open_from_another_process_is_refused_and_loses_nothing";
    if let Some(dir) = std::env::var_os(OWNER_ENV) {
        owner(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_owner(TEST, dir.path());
    let mut acks = Acks::new(&mut child);
    assert!(acks.read_until(|a| a.moves >= 1), "owner exited early");
    let rt = runtime();
    // The measured failure: a second opener every few ms while the owner archives. Every try
    // must fail with the typed error, and destroy nothing.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tries = 0;
    while Instant::now() < deadline {
        let err = rt
            .block_on(Store::open(config(dir.path())))
            .expect_err("a second owner");
        assert!(matches!(err, Error::AlreadyOpen { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&format!("pid {}", child.id())),
            "{err}"
        );
        tries += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let moves = acks.moves;
    assert!(acks.read_until(|a| a.moves >= moves + 2), "owner failed");
    child.kill().unwrap(); // SIGKILL: the lock file stays behind, the lock does not
    child.wait().unwrap();
    acks.read_until(|_| false);
    assert!(tries > 50, "{tries} tries");
    assert!(dir.path().join(LOCK_FILE).exists());

    rt.block_on(async {
        let store = Store::open(config(dir.path()))
            .await
            .expect("restart after a kill");
        for (&id, &(n, updated)) in &acks.acked {
            let got = store.get(id).await.unwrap();
            let got = got.unwrap_or_else(|| panic!("acknowledged {id} lost"));
            // An update in flight at the kill may or may not have landed.
            assert!(
                same(&got, &expected(n, updated)) || same(&got, &expected(n, true)),
                "record {id} changed"
            );
        }
        let v = store.verify_cold().await.unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    });
}

#[test]
fn ownership_read_only_open_reads_while_another_process_writes_archives_and_compacts() {
    const TEST: &str =
        "ownership_read_only_open_reads_while_another_process_writes_archives_and_compacts";
    if let Some(dir) = std::env::var_os(OWNER_ENV) {
        owner(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_owner(TEST, dir.path());
    let mut acks = Acks::new(&mut child);
    assert!(acks.read_until(|a| a.moves >= 1), "owner exited early");
    let rt = runtime();
    let reader = rt
        .block_on(Store::open_read_only(config(dir.path())))
        .expect("read-only open beside the owner");
    let mut reads = 0u64;
    let mut scans = 0u64;
    // Four rounds, each after another archival and compaction by the owner.
    for _ in 0..4 {
        let moves = acks.moves;
        assert!(acks.read_until(|a| a.moves > moves), "owner failed");
        let known = acks.acked.clone();
        rt.block_on(async {
            // Every acknowledged record, by id and by signature, in an acknowledged version.
            for (&id, &(n, updated)) in known.iter().rev().take(300) {
                let got = reader.get(id).await.unwrap();
                let got = got.unwrap_or_else(|| panic!("acknowledged {id} not found"));
                assert!(
                    same(&got, &expected(n, updated)) || same(&got, &expected(n, true)),
                    "record {id}: {got:?}"
                );
                let sig = record(n).transaction_signature.unwrap();
                let by_sig = reader.get_by_signature(&sig).await.unwrap();
                assert_eq!(by_sig.and_then(|r| r.id), Some(id), "by signature");
                reads += 2;
            }
            // A full scan: each record once, every acknowledged one present.
            let mut cursor = reader.scan(ScanRange::default(), 256).unwrap();
            let mut seen = BTreeSet::new();
            while let Some(page) = cursor.next_page().await.unwrap() {
                for r in page {
                    assert!(seen.insert(r.id.unwrap()), "{:?} twice", r.id);
                }
            }
            let missing: Vec<_> = known.keys().filter(|id| !seen.contains(id)).collect();
            assert!(missing.is_empty(), "scan missed {missing:?}");
            scans += 1;
        });
    }
    rt.block_on(async {
        let err = reader.put(&record(u64::MAX)).await.unwrap_err();
        assert!(matches!(err, Error::ReadOnly { op: "put", .. }), "{err:?}");
        assert!(matches!(
            reader.archive_now().await,
            Err(Error::ReadOnly { .. })
        ));
        assert!(matches!(
            reader.run_maintenance_step().await,
            Err(Error::ReadOnly { .. })
        ));
        assert!(reader.verify_cold().await.unwrap().problems.is_empty());
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acks.moves >= 5, "owner moved {} times", acks.moves);
    assert_eq!(scans, 4);
    assert!(reads >= 4 * 2 * 200, "{reads} reads");
}

#[test]
fn ownership_read_only_open_of_a_missing_store_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let err = runtime()
        .block_on(Store::open_read_only(config(&missing)))
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(!missing.exists(), "a read-only open creates nothing");
}
