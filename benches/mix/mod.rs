//! The update mix (`BENCH_MIX=1`): K = 1, 16 and 64 tasks on the benchmark's runtime, each
//! doing 50% `get` and 50% `update` on zipfian ids over the warm rows, against a hand-written
//! rusqlite store holding the same records, the systems alternated cell by cell.
//!
//! The peer is what a bot developer would write: one table `(id, ts, payload)` with an index on
//! `ts`, WAL with `synchronous = NORMAL`, one write connection behind a mutex and one read
//! connection per worker thread, all used inline on the calling task; records as postcard.
//!
//! Env: `BENCH_MIX_SECS` (per cell, default 3), `BENCH_MIX_ROUNDS` (default 2),
//! `BENCH_MIX_KS` (default `1,16,64`), `BENCH_MIX_READS` (percent gets, default 50).

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};

use crate::common::{deal, env_u64, hist, put_concurrently, record, us};

const PEER_FILE: &str = "peer.sqlite3";
const WARM_DB_FILE: &str = "warm.sqlite3";

/// YCSB's scrambled zipfian generator (theta 0.99) over `0..n`.
struct Zipf {
    n: u64,
    zetan: f64,
    alpha: f64,
    eta: f64,
    half_pow: f64,
}

const THETA: f64 = 0.99;

impl Zipf {
    fn new(n: u64) -> Self {
        let zetan: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(THETA)).sum();
        let zeta2 = 1.0 + 0.5f64.powf(THETA);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - THETA)) / (1.0 - zeta2 / zetan);
        Self {
            n,
            zetan,
            alpha: 1.0 / (1.0 - THETA),
            eta,
            half_pow: 0.5f64.powf(THETA),
        }
    }

    fn next(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        let rank = if uz < 1.0 {
            0
        } else if uz < 1.0 + self.half_pow {
            1
        } else {
            ((self.n as f64) * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64
        };
        // Scramble, so the popular ranks are spread over the table.
        (rank.min(self.n - 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) % self.n
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The hand-written store.
struct Peer {
    path: std::path::PathBuf,
    writer: Mutex<Connection>,
}

thread_local! {
    static PEER_READER: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

impl Peer {
    fn open(dir: &Path, rows: &[(i64, u64)]) -> anyhow::Result<Self> {
        let path = dir.join(PEER_FILE);
        let conn = Connection::open(&path)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (
                id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, payload BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS records_ts ON records(ts);",
        )?;
        let have: i64 = conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
        if have as usize != rows.len() {
            println!("filling the rusqlite peer with {} records", rows.len());
            conn.execute("DELETE FROM records", [])?;
            for chunk in rows.chunks(50_000) {
                conn.execute_batch("BEGIN")?;
                {
                    let mut stmt =
                        conn.prepare("INSERT INTO records (id, ts, payload) VALUES (?1, ?2, ?3)")?;
                    for &(id, n) in chunk {
                        let mut r = record(n);
                        r.id = Some(id);
                        stmt.execute(rusqlite::params![
                            id,
                            r.timestamp_decision_made,
                            postcard::to_allocvec(&r)?
                        ])?;
                    }
                }
                conn.execute_batch("COMMIT")?;
            }
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        }
        Ok(Self {
            path,
            writer: Mutex::new(conn),
        })
    }

    fn get(&self, id: i64) -> anyhow::Result<Option<TransactionRecord>> {
        PEER_READER.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                *slot = Some(c);
            }
            let conn = slot.as_ref().expect("opened");
            let payload: Option<Vec<u8>> = conn
                .prepare_cached("SELECT payload FROM records WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            Ok(payload.map(|p| postcard::from_bytes(&p)).transpose()?)
        })
    }

    fn update(&self, r: &TransactionRecord) -> anyhow::Result<()> {
        let payload = postcard::to_allocvec(r)?;
        let conn = self.writer.lock().expect("peer writer");
        let n = conn
            .prepare_cached("UPDATE records SET ts = ?2, payload = ?3 WHERE id = ?1")?
            .execute(rusqlite::params![r.id, r.timestamp_decision_made, payload])?;
        anyhow::ensure!(n == 1, "peer update of a missing id");
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum System {
    Store,
    Peer,
}

struct Cell {
    ops: u64,
    secs: f64,
    update: Histogram<u64>,
    get: Histogram<u64>,
}

pub fn run(rt: &tokio::runtime::Runtime, dir: &Path, rows: u64) -> anyhow::Result<()> {
    let secs = env_u64("BENCH_MIX_SECS", 3)?;
    let rounds = env_u64("BENCH_MIX_ROUNDS", 2)?;
    let reads_pct = env_u64("BENCH_MIX_READS", 50)?;
    let ks: Vec<usize> = std::env::var("BENCH_MIX_KS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .map(|k| k.trim().parse())
        .collect::<Result<_, _>>()?;
    // The store with its defaults.
    let store = Arc::new(rt.block_on(AutoTieringCoordinator::new(
        StorageConfig::default().with_data_dir(dir),
    ))?);
    let already = store.warm_tier().len();
    for chunk in (already..rows).step_by(65_536) {
        let dealt = deal(chunk, (rows - chunk).min(65_536));
        rt.block_on(put_concurrently(&store, dealt))?;
    }
    rt.block_on(store.run_warm_upkeep())?;
    // id → record number: `record(n)` is stamped 10 ms after `record(n - 1)`.
    let ids: Vec<(i64, u64)> = {
        let conn =
            Connection::open_with_flags(dir.join(WARM_DB_FILE), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut stmt = conn.prepare("SELECT id, ts FROM records ORDER BY id LIMIT ?1")?;
        let rows = stmt.query_map([rows as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                ((r.get::<_, i64>(1)? - 1_750_000_000_000) / 10) as u64,
            ))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let peer = Arc::new(Peer::open(dir, &ids)?);
    let ids = Arc::new(ids);
    let zipf = Arc::new(Zipf::new(ids.len() as u64));
    println!(
        "update mix: {} records, {reads_pct}% get / {}% update, zipfian, {secs} s per cell, {rounds} rounds",
        ids.len(),
        100 - reads_pct
    );
    println!(
        "{:<8} {:>3} {:>10} {:>11} {:>11} {:>11} {:>11}",
        "system", "K", "ops/s", "upd p50 µs", "upd p99 µs", "get p50 µs", "get p99 µs"
    );
    let mut seed = 1u64;
    for &k in &ks {
        let mut totals = [(0u64, 0f64), (0u64, 0f64)];
        for _ in 0..rounds {
            for system in [System::Store, System::Peer] {
                seed += 1;
                let cell = rt.block_on(run_cell(
                    system,
                    k,
                    Duration::from_secs(secs),
                    reads_pct,
                    seed,
                    &store,
                    &peer,
                    &ids,
                    &zipf,
                ))?;
                let name = match system {
                    System::Store => "store",
                    System::Peer => "rusqlite",
                };
                println!(
                    "{name:<8} {k:>3} {:>10.0} {:>11.1} {:>11.1} {:>11.1} {:>11.1}",
                    cell.ops as f64 / cell.secs,
                    us(&cell.update, 0.5),
                    us(&cell.update, 0.99),
                    us(&cell.get, 0.5),
                    us(&cell.get, 0.99),
                );
                let t = &mut totals[(system == System::Peer) as usize];
                t.0 += cell.ops;
                t.1 += cell.secs;
            }
        }
        let rate = |t: (u64, f64)| t.0 as f64 / t.1;
        println!(
            "K={k}: store {:.0} ops/s, rusqlite {:.0} ops/s, ratio {:.2}",
            rate(totals[0]),
            rate(totals[1]),
            rate(totals[0]) / rate(totals[1])
        );
    }
    drop(store);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_cell(
    system: System,
    k: usize,
    length: Duration,
    reads_pct: u64,
    seed: u64,
    store: &Arc<AutoTieringCoordinator>,
    peer: &Arc<Peer>,
    ids: &Arc<Vec<(i64, u64)>>,
    zipf: &Arc<Zipf>,
) -> anyhow::Result<Cell> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..k {
        let (store, peer, ids, zipf, stop) = (
            Arc::clone(store),
            Arc::clone(peer),
            Arc::clone(ids),
            Arc::clone(zipf),
            Arc::clone(&stop),
        );
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (t as u64 + 1) << 32 | 1);
        tasks.push(tokio::spawn(async move {
            let (mut update, mut get) = (hist(), hist());
            let mut ops = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (id, n) = ids[zipf.next(&mut rng) as usize];
                if rng.next() % 100 < reads_pct {
                    let s = Instant::now();
                    let found = match system {
                        System::Store => store.get(id).await?.is_some(),
                        System::Peer => peer.get(id)?.is_some(),
                    };
                    get.record(s.elapsed().as_nanos() as u64)?;
                    anyhow::ensure!(found, "id {id} missing");
                } else {
                    let mut r = record(n);
                    r.id = Some(id);
                    r.final_sol_received = Some(rng.unit());
                    let s = Instant::now();
                    match system {
                        System::Store => store.update(&r).await?,
                        System::Peer => peer.update(&r)?,
                    }
                    update.record(s.elapsed().as_nanos() as u64)?;
                }
                ops += 1;
                // The peer never awaits: let the runtime's timer and other tasks in.
                if system == System::Peer && ops.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
            anyhow::Ok((ops, update, get))
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut cell = Cell {
        ops: 0,
        secs: 0.0,
        update: hist(),
        get: hist(),
    };
    for t in tasks {
        let (ops, u, g) = t.await??;
        cell.ops += ops;
        cell.update.add(u)?;
        cell.get.add(g)?;
    }
    cell.secs = started.elapsed().as_secs_f64();
    Ok(cell)
}
