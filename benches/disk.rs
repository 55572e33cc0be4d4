//! Disk benchmark: the whole store's bytes after archival, against a plain SQLite file.
//!
//! Loads `BENCH_N` records (64 writers), `BENCH_OLD_PCT`% of them stamped 30 days ago, then
//! runs `run_maintenance_step()` at most `BENCH_STEPS` times (each step stands for one
//! maintenance interval; between steps the writer returns free pages in the background, and the
//! bench waits until the warm file stops shrinking, at most `BENCH_SETTLE_SECS`). After each
//! step it prints the warm database, its WAL and the cold files. At the end it shuts the store
//! down, prints what each warm table and index takes (SQLite's `dbstat`), and builds a plain
//! SQLite file of the same records (`id INTEGER PRIMARY KEY`, the signature as TEXT with an
//! index on it, the timestamp, the record's postcard bytes; 10k rows per transaction, WAL,
//! checkpointed) to compare with.
//!
//! Run: `cargo bench --bench disk`. Env: `BENCH_N` (default 1000000), `BENCH_OLD_PCT` (default
//! 80), `BENCH_STEPS` (default 10), `BENCH_SETTLE_SECS` (default 30).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};

mod common;
use common::{env_u64, put_concurrently, record_at, WRITERS};

const DAY_MS: i64 = 86_400_000;
const MIB: f64 = 1024.0 * 1024.0;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// `(warm db, warm WAL + shm, cold files)` bytes.
fn store_bytes(dir: &Path) -> (u64, u64, u64) {
    let db = dir.join("warm.sqlite3");
    (
        file_len(&db),
        file_len(&dir.join("warm.sqlite3-wal")) + file_len(&dir.join("warm.sqlite3-shm")),
        dir_bytes(&dir.join("cold")),
    )
}

/// The records of the run: the first `old` stamped 30 days ago (1 ms apart), the rest now.
fn records(n: u64, old: u64, now: i64) -> Vec<Vec<TransactionRecord>> {
    let mut dealt: Vec<Vec<TransactionRecord>> = vec![Vec::new(); WRITERS];
    for i in 0..n {
        let ts = if i < old {
            now - 30 * DAY_MS + i as i64
        } else {
            now + (i - old) as i64
        };
        dealt[(i % WRITERS as u64) as usize].push(record_at(i, ts));
    }
    dealt
}

/// A hand-written SQLite store of the same records; returns its bytes after a checkpoint.
fn plain_sqlite(path: &Path, n: u64, old: u64, now: i64) -> anyhow::Result<u64> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE records (id INTEGER PRIMARY KEY, signature TEXT, ts INTEGER NOT NULL,
         payload BLOB NOT NULL);
         CREATE UNIQUE INDEX records_signature ON records(signature);",
    )?;
    let mut i = 0u64;
    while i < n {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO records (id, signature, ts, payload) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for k in i..(i + 10_000).min(n) {
                let ts = if k < old {
                    now - 30 * DAY_MS + k as i64
                } else {
                    now + (k - old) as i64
                };
                let mut r = record_at(k, ts);
                r.id = Some(k as i64 + 1);
                let payload = postcard::to_allocvec(&r)?;
                stmt.execute(rusqlite::params![
                    k as i64 + 1,
                    r.transaction_signature,
                    ts,
                    payload
                ])?;
            }
        }
        tx.commit()?;
        i += 10_000;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    Ok(file_len(path) + file_len(&path.with_extension("sqlite3-wal")))
}

fn main() -> anyhow::Result<()> {
    let n = env_u64("BENCH_N", 1_000_000)?.max(1);
    let old_pct = env_u64("BENCH_OLD_PCT", 80)?.min(100);
    let steps = env_u64("BENCH_STEPS", 10)?.max(1);
    let settle_secs = env_u64("BENCH_SETTLE_SECS", 30)?;
    let old = n * old_pct / 100;
    println!(
        "command: BENCH_N={n} BENCH_OLD_PCT={old_pct} BENCH_STEPS={steps} BENCH_SETTLE_SECS={settle_secs} cargo bench --bench disk"
    );
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let now = now_ms();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Arc::new(
            AutoTieringCoordinator::open(StorageConfig::default().with_data_dir(&dir)).await?,
        );
        let t = Instant::now();
        let put = put_concurrently(&store, records(n, old, now)).await?;
        let (w, wal, c) = store_bytes(&dir);
        println!(
            "loaded {put} records in {:.1} s: warm {:.1} MiB, WAL {:.1} MiB, cold {:.1} MiB",
            t.elapsed().as_secs_f64(),
            w as f64 / MIB,
            wal as f64 / MIB,
            c as f64 / MIB
        );
        println!(
            "| step | archived | step s | warm MiB | WAL MiB | cold MiB | total MiB | wait s |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for step in 1..=steps {
            let t = Instant::now();
            let report = store.run_maintenance_step().await?;
            let step_s = t.elapsed().as_secs_f64();
            // The writer returns free pages between batches after the step: wait until the
            // warm file stops shrinking (as the next interval would).
            let t = Instant::now();
            let mut last = store_bytes(&dir);
            while t.elapsed() < Duration::from_secs(settle_secs) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = store_bytes(&dir);
                if now == last {
                    break;
                }
                last = now;
            }
            let (w, wal, c) = last;
            println!(
                "| {step} | {} | {step_s:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                report.archive.as_ref().map_or(0, |a| a.archived),
                w as f64 / MIB,
                wal as f64 / MIB,
                c as f64 / MIB,
                (w + wal + c) as f64 / MIB,
                t.elapsed().as_secs_f64()
            );
            if !report.backlog && store.get_stats().await?.warm_records <= n - old {
                break;
            }
        }
        let stats = store.get_stats().await?;
        println!(
            "warm records {}, cold records {}",
            stats.warm_records, stats.cold_records
        );
        store.shutdown().await?;
        anyhow::Ok(())
    })?;
    let (w, wal, c) = store_bytes(&dir);
    let total = w + wal + c;
    println!(
        "after shutdown: warm {:.1} MiB, WAL {:.1} MiB, cold {:.1} MiB, total {:.1} MiB ({:.1} B/record)",
        w as f64 / MIB,
        wal as f64 / MIB,
        c as f64 / MIB,
        total as f64 / MIB,
        total as f64 / n as f64
    );
    {
        let conn = rusqlite::Connection::open_with_flags(
            dir.join("warm.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut stmt = conn.prepare(
            "SELECT name, sum(pgsize), count(*) FROM dbstat GROUP BY name ORDER BY 2 DESC",
        )?;
        println!("| warm table/index | MiB | pages | B per record (of {n}) |");
        println!("|---|---:|---:|---:|");
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (name, bytes, pages) = row?;
            println!(
                "| {name} | {:.1} | {pages} | {:.1} |",
                bytes as f64 / MIB,
                bytes as f64 / n as f64
            );
        }
        let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        println!("free pages left in warm: {free}");
    }
    let plain = plain_sqlite(&tmp.path().join("plain.sqlite3"), n, old, now)?;
    println!(
        "plain SQLite file of the same records: {:.1} MiB ({:.1} B/record)",
        plain as f64 / MIB,
        plain as f64 / n as f64
    );
    println!(
        "store after archiving {old_pct}% / plain SQLite = {:.3} (target <= 0.4)",
        total as f64 / plain as f64
    );
    Ok(())
}
