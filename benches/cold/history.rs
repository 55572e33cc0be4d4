//! The history case of issue 11: uniform random reads by id through the coordinator, over a
//! store whose records were put with shuffled timestamps and 80% archived (so every day
//! partition's files span the whole id range and overlap), against the same records in one
//! plain rusqlite file read by id on per-thread connections. K = 1 and K = 16 reading tasks on
//! a 2-worker runtime, alternating the two systems cell by cell.
//!
//! Run: `BENCH_HISTORY=1 BENCH_DIR=/tmp/history-x cargo bench --bench cold`. Env:
//! `BENCH_HISTORY_ROWS` (default 1000000), `BENCH_HISTORY_DAYS` (the span of the shuffled
//! timestamps, default 60: about 48 overlapping archival files), `BENCH_HISTORY_SECS` (seconds
//! per cell, default 5), `BENCH_HISTORY_ROUNDS` (default 2), `BENCH_PAGE_ROWS` /
//! `BENCH_STRING_PAGE_ROWS` (`cold.data_page_rows` / `cold.string_page_rows` when the store is
//! built), `BENCH_HISTORY_UNMAP` (set: once built, the store is taken back to schema v4, as the
//! build before the id → file map left it, so every file is found by id range),
//! `BENCH_HISTORY_COMPACT` (set: run compaction before reading, as maintenance would),
//! `BENCH_HISTORY_PLAIN` (the plain file's path, default `BENCH_DIR/plain.sqlite3`). An existing `BENCH_DIR` that holds the store and the plain file is reused.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tiered_storage::{AutoTieringCoordinator, Record, StorageConfig, TransactionRecord};

use super::common::{env_u64, hist, put_concurrently, record_at, us, WRITERS};

const BASE_MS: i64 = 1_750_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// Position of record `i` in time: a bijection of `0..n` that scatters neighbours.
fn shuffled(i: u64, n: u64) -> u64 {
    // An odd multiplier coprime with n (n is made odd below if needed) permutes 0..n.
    const M: u64 = 2_654_435_761;
    let mut m = M % n;
    while gcd(m, n) != 1 {
        m += 1;
    }
    ((i as u128 * m as u128) % n as u128) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Tiny xorshift: each reading task draws its own uniform ids.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + (self.0 % n) as i64
    }
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| dir_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// Bytes of one table (and its indexes) in a SQLite file, if the build has `dbstat`.
fn table_bytes(db: &Path, table: &str) -> Option<u64> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row(
        "SELECT sum(pgsize) FROM dbstat WHERE name = ?1 OR name IN
           (SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1)",
        [table],
        |r| r.get::<_, Option<i64>>(0),
    )
    .ok()
    .flatten()
    .map(|b| b as u64)
}

thread_local! {
    static PLAIN: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

fn plain_get(path: &Path, id: i64) -> anyhow::Result<Option<TransactionRecord>> {
    PLAIN.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
            *c = Some(conn);
        }
        let conn = c.as_ref().expect("opened above");
        let payload: Option<Vec<u8>> = conn
            .prepare_cached("SELECT payload FROM records WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(match payload {
            Some(p) => {
                let mut r = TransactionRecord::decode(&p)?;
                r.set_id(id);
                Some(r)
            }
            None => None,
        })
    })
}

/// The plain store: every record in one rusqlite table (id, signature, ts, payload), with a
/// signature index as a hand-written store would have.
fn build_plain(path: &Path, rows: u64, step: i64) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut conn = Connection::open(&tmp)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE records (id INTEGER PRIMARY KEY, signature TEXT NOT NULL, ts INTEGER NOT NULL,
                               payload BLOB NOT NULL);",
    )?;
    let mut buf = Vec::new();
    let mut i = 0;
    while i < rows {
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO records (id, signature, ts, payload) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for j in i..(i + 10_000).min(rows) {
                let mut r = record_at(j, BASE_MS + shuffled(j, rows) as i64 * step);
                r.set_id(j as i64 + 1);
                buf.clear();
                r.encode(&mut buf)?;
                ins.execute(rusqlite::params![
                    j as i64 + 1,
                    r.signature().unwrap(),
                    r.timestamp_ms(),
                    buf
                ])?;
            }
        }
        tx.commit()?;
        i += 10_000;
    }
    conn.execute_batch(
        "CREATE UNIQUE INDEX records_signature ON records(signature);
         CREATE INDEX records_ts ON records(ts);
         PRAGMA wal_checkpoint(TRUNCATE);",
    )?;
    drop(conn);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

struct Cell {
    reads: u64,
    secs: f64,
    h: Histogram<u64>,
}

/// `k` tasks reading uniform random ids for `secs` seconds.
fn run_cell<F, Fut>(
    rt: &tokio::runtime::Runtime,
    k: usize,
    secs: u64,
    read: F,
) -> anyhow::Result<Cell>
where
    F: Fn(i64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<bool>> + Send,
{
    let read = Arc::new(read);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..k)
        .map(|t| {
            let (read, stop) = (Arc::clone(&read), Arc::clone(&stop));
            rt.spawn(async move {
                let mut rng =
                    Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
                let mut h = hist();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = rng.next(u64::MAX);
                    let t0 = Instant::now();
                    anyhow::ensure!(read(id).await?, "id {id} not found");
                    h.record(t0.elapsed().as_nanos() as u64)?;
                    n += 1;
                }
                anyhow::Ok((n, h))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut cell = Cell {
        reads: 0,
        secs: 0.0,
        h: hist(),
    };
    for t in tasks {
        let (n, h) = rt.block_on(t)??;
        cell.reads += n;
        cell.h.add(&h)?;
    }
    cell.secs = start.elapsed().as_secs_f64();
    Ok(cell)
}

pub fn run(dir: PathBuf) -> anyhow::Result<()> {
    let rows = env_u64("BENCH_HISTORY_ROWS", 1_000_000)?;
    let days = env_u64("BENCH_HISTORY_DAYS", 60)?.max(1) as i64;
    let secs = env_u64("BENCH_HISTORY_SECS", 5)?;
    let rounds = env_u64("BENCH_HISTORY_ROUNDS", 2)?;
    let step = (days * DAY_MS / rows as i64).max(1);
    std::fs::create_dir_all(&dir)?;
    let store_dir = dir.join("store");
    let plain = std::env::var_os("BENCH_HISTORY_PLAIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("plain.sqlite3"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut config = StorageConfig::default().with_data_dir(&store_dir);
    // Page sizes only matter when the store is built (archival writes the files).
    config.cold.data_page_rows =
        env_u64("BENCH_PAGE_ROWS", config.cold.data_page_rows as u64)? as usize;
    config.cold.string_page_rows = env_u64(
        "BENCH_STRING_PAGE_ROWS",
        config.cold.string_page_rows as u64,
    )? as usize;
    let mut store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config.clone()))?);
    let have = rt.block_on(store.get_stats())?.total_records;
    if have == 0 {
        let t = Instant::now();
        let dealt: Vec<Vec<_>> = (0..WRITERS as u64)
            .map(|w| {
                (w..rows)
                    .step_by(WRITERS)
                    .map(|i| record_at(i, BASE_MS + shuffled(i, rows) as i64 * step))
                    .collect()
            })
            .collect();
        rt.block_on(put_concurrently(&store, dealt))?;
        rt.block_on(store.run_warm_upkeep())?;
        println!(
            "put {rows} records with shuffled timestamps over {days} days in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        // The oldest 80% by timestamp: spread over the whole id range.
        let cutoff = BASE_MS + (rows * 8 / 10) as i64 * step;
        let t = Instant::now();
        let report = rt.block_on(store.archive_older_than(cutoff))?;
        println!(
            "archived {} records into {} files in {:.1} s",
            report.archived,
            report.files,
            t.elapsed().as_secs_f64()
        );
        for _ in 0..4 {
            rt.block_on(store.run_warm_upkeep())?;
        }
        if std::env::var_os("BENCH_HISTORY_UNMAP").is_some() {
            // The store as the build before the id → file map (schema v4) left it: every file
            // is found by id range. Reopening migrates it back to v5 with every file unmapped.
            rt.block_on(store.shutdown())?;
            drop(store);
            let conn = Connection::open(store_dir.join("warm.sqlite3"))?;
            conn.execute_batch(
                "DROP TABLE cold_home; DROP TABLE cold_alias; DROP INDEX cold_files_unmapped;
                 ALTER TABLE cold_files DROP COLUMN mapped; PRAGMA user_version = 4;",
            )?;
            drop(conn);
            store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config))?);
            println!("dropped the id → file map: every file is found by id range");
        }
    } else {
        anyhow::ensure!(
            have == rows,
            "{} holds {have} records, not {rows}",
            store_dir.display()
        );
    }
    if std::env::var_os("BENCH_HISTORY_COMPACT").is_some() {
        // Archival of records put out of time order closes a file whenever a fifth day turns
        // up (`cold.max_open_partitions`), so it leaves many small files; maintenance merges
        // them once the backlog is gone. Nothing to do on a store already compacted.
        let t = Instant::now();
        let report = rt.block_on(store.compact_now())?;
        println!(
            "compacted {} files into {} in {:.1} s",
            report.files_in,
            report.files_out,
            t.elapsed().as_secs_f64()
        );
    }
    if !plain.exists() {
        let t = Instant::now();
        build_plain(&plain, rows, step)?;
        println!("plain file built in {:.1} s", t.elapsed().as_secs_f64());
    }
    let stats = rt.block_on(store.get_stats())?;
    let cold = store.cold_tier().cold_stats()?;
    let warm_db = store_dir.join("warm.sqlite3");
    let store_bytes = dir_bytes(&store_dir);
    let plain_bytes = dir_bytes(&plain);
    println!(
        "store: {} warm + {} cold records ({} files); disk {:.1} MiB (warm file {:.1} MiB, cold {:.1} MiB); plain file {:.1} MiB; store/plain {:.2}",
        stats.warm_records,
        stats.cold_records,
        cold.files,
        store_bytes as f64 / 1048576.0,
        dir_bytes(&warm_db) as f64 / 1048576.0,
        cold.bytes as f64 / 1048576.0,
        plain_bytes as f64 / 1048576.0,
        store_bytes as f64 / plain_bytes as f64,
    );
    for table in [
        "records",
        "sig_index",
        "cold_home",
        "cold_alias",
        "cold_dead",
        "access",
    ] {
        if let Some(b) = table_bytes(&warm_db, table) {
            println!(
                "  warm table {table}: {:.1} MiB = {:.1} bytes per archived record",
                b as f64 / 1048576.0,
                b as f64 / stats.cold_records.max(1) as f64
            );
        }
    }

    let n = rows;
    println!(
        "\n{:<8} {:>4} {:>10} {:>9} {:>9} {:>9}   {:>10} {:>9} {:>9}   {:>7}",
        "round",
        "K",
        "store/s",
        "p50 µs",
        "p99 µs",
        "max µs",
        "plain/s",
        "p50 µs",
        "p99 µs",
        "ratio"
    );
    for round in 0..rounds {
        for k in [1usize, 16] {
            let s = Arc::clone(&store);
            let store_cell = run_cell(&rt, k, secs, move |id| {
                let s = Arc::clone(&s);
                let id = (id - 1).rem_euclid(n as i64) + 1;
                async move { Ok(s.get(id).await?.is_some_and(|r| r.id == Some(id))) }
            })?;
            let p = plain.clone();
            let plain_cell = run_cell(&rt, k, secs, move |id| {
                let id = (id - 1).rem_euclid(n as i64) + 1;
                let r = plain_get(&p, id);
                async move { Ok(r?.is_some_and(|r| r.id == Some(id))) }
            })?;
            let sr = store_cell.reads as f64 / store_cell.secs;
            let pr = plain_cell.reads as f64 / plain_cell.secs;
            println!(
                "{:<8} {:>4} {:>10.0} {:>9.1} {:>9.1} {:>9.1}   {:>10.0} {:>9.1} {:>9.1}   {:>7.3}",
                round + 1,
                k,
                sr,
                us(&store_cell.h, 0.5),
                us(&store_cell.h, 0.99),
                store_cell.h.max() as f64 / 1000.0,
                pr,
                us(&plain_cell.h, 0.5),
                us(&plain_cell.h, 0.99),
                sr / pr
            );
        }
    }
    let cold = store.cold_tier().cold_stats()?;
    println!(
        "cold index resident: {:.2} MiB of cached Parquet metadata = {:.2} bytes per archived record",
        cold.metadata_cache_bytes as f64 / 1048576.0,
        cold.metadata_cache_bytes as f64 / stats.cold_records.max(1) as f64
    );
    Ok(())
}
