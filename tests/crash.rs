//! Durable acks under a real crash: every put and update acknowledged before a SIGKILL is
//! readable, in its acknowledged version, after reopening the store.
//!
//! The test re-runs its own binary as a child process that writes from many tasks and prints
//! one line per acknowledged write; the parent kills it mid-stream with SIGKILL (no destructors,
//! no clean shutdown) and then checks the store against what was acknowledged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use tiered_storage::{AutoTieringCoordinator, Outcome, StorageConfig, TransactionRecord};

const CHILD_ENV: &str = "TIERED_STORAGE_CRASH_CHILD_DIR";
const TASKS: u64 = 16;
/// Acknowledgements to collect before the kill.
const KILL_AFTER: usize = 3000;

fn record(n: u64) -> TransactionRecord {
    TransactionRecord {
        transaction_signature: Some(format!("crash-sig-{n:08}-{}", "x".repeat(60))),
        timestamp_decision_made: 1_760_000_000_000 + n as i64,
        buy_price_sol: Some(n as f64 * 1e-9),
        actual_outcome: Outcome::PendingConfirmation,
        ..TransactionRecord::default()
    }
}

/// The child: write forever from `TASKS` tasks, printing `PUT <id> <n>` after each put and
/// `UPD <id> <n>` after each update is acknowledged.
fn child(dir: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = std::sync::Arc::new(
            AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir))
                .await
                .unwrap(),
        );
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut n = t;
                    loop {
                        let mut r = record(n);
                        let id = store.put(&r).await.unwrap();
                        ack("PUT", id, n);
                        if n % 3 == 0 {
                            r.id = Some(id);
                            r.actual_outcome = Outcome::Profit(n as f64);
                            store.update(&r).await.unwrap();
                            ack("UPD", id, n);
                        }
                        n += TASKS;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn ack(kind: &str, id: i64, n: u64) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{kind} {id} {n}").unwrap();
    out.flush().unwrap();
}

#[test]
fn crash_acknowledged_writes_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_acknowledged_writes_survive_sigkill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // id -> (n, updated?) for every acknowledged write.
    let mut acked: BTreeMap<i64, (u64, bool)> = BTreeMap::new();
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    let mut seen = 0;
    while seen < KILL_AFTER {
        let Some(line) = lines.next() else {
            panic!("child exited after {seen} acknowledgements");
        };
        let line = line.unwrap();
        // libtest prints `test <name> ... ` with no newline, so an ack may follow it on a line.
        let Some(at) = line.find("PUT ").or_else(|| line.find("UPD ")) else {
            continue;
        };
        let mut parts = line[at..].split_whitespace();
        let (Some(kind), Some(id), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(id), Ok(n)) = (id.parse::<i64>(), n.parse::<u64>()) else {
            continue;
        };
        match kind {
            "PUT" => {
                acked.insert(id, (n, false));
            }
            "UPD" => {
                acked.get_mut(&id).expect("update after its put").1 = true;
            }
            _ => continue,
        }
        seen += 1;
    }
    proc.kill().unwrap(); // SIGKILL: no destructors, no final flush, writes in flight
    proc.wait().unwrap();
    drop(lines);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path()))
            .await
            .unwrap();
        for (&id, &(n, updated)) in &acked {
            let got = store
                .get(id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged put {id} (n={n}) lost"));
            let expected = record(n);
            assert_eq!(got.transaction_signature, expected.transaction_signature);
            if updated {
                assert_eq!(
                    got.actual_outcome,
                    Outcome::Profit(n as f64),
                    "update of {id} lost"
                );
            }
            let by_sig = store
                .get_by_signature(expected.transaction_signature.as_deref().unwrap())
                .await
                .unwrap();
            assert_eq!(by_sig.and_then(|r| r.id), Some(id));
        }
        // Writes in flight at the kill may or may not have committed, but each stored record is
        // whole and appears once.
        let stats = store.get_stats().await.unwrap();
        assert!(stats.total_records >= acked.len() as u64);
        let mut cursor = store.list_since(i64::MIN);
        let mut scanned = 0u64;
        let mut last = 0;
        while let Some(r) = cursor.next().await.unwrap() {
            let id = r.id.unwrap();
            assert!(id > last, "ids strictly increase in a scan");
            last = id;
            scanned += 1;
        }
        assert_eq!(scanned, stats.total_records);
        // The store still takes writes after the crash, with fresh ids.
        let new_id = store.put(&record(10_000_000)).await.unwrap();
        assert!(new_id > last);
    });
}
