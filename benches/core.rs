//! Core-store benchmark: coordinator hot/warm gets against raw moka and raw rusqlite on the same
//! data, and durable put throughput with 1 and 64 writers into a warm tier of >= 1M rows.
//!
//! Run: `cargo bench --bench core` (env: `BENCH_ROWS`, default 1000000; `BENCH_DIR`, default a
//! fresh directory under the system temp dir, removed afterwards).
//!
//! `BENCH_MIX=1` instead runs the update mix (see `mix`): K = 1, 16 and 64 tasks doing 50% gets
//! and 50% updates on zipfian ids, against a hand-written rusqlite store in the same run.
//!
//! `BENCH_READS=1`: instead, read scaling. With the store's default config, K = 1, 16 and 64
//! tasks on the runtime (`BENCH_WORKERS`, default 2) read scrambled-zipfian ids (YCSB C,
//! theta 0.99) over the prefilled rows for `BENCH_READ_SECS` (default 5) each, in
//! `BENCH_READ_ROUNDS` rounds (default 2), beside a moka cache in front of rusqlite on the same
//! database; prints ops/s. `BENCH_CONFIG`: TOML merged over the default config.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};

mod common;
mod mix;
use common::{deal, hist, pick, print_rows, put_concurrently, record, us, Row, WRITERS};

/// The warm database's file name in the data directory.
const WARM_DB_FILE: &str = "warm.sqlite3";

const HOT_SET: usize = 10_000;
const GET_SAMPLES: usize = 200_000;
const SINGLE_WRITER_PUTS: usize = 20_000;
const CONCURRENT_PUTS: usize = 256_000;

fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::var("BENCH_ROWS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let (dir, _guard) = match std::env::var_os("BENCH_DIR") {
        Some(d) => (std::path::PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tiered-storage-bench-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("BENCH_WORKERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()?;
    // `BENCH_PAGE_SIZE`: create a new warm database with this page size instead of the
    // store's default (set before the first table exists; an existing database keeps its own).
    if let Some(page_size) = std::env::var_os("BENCH_PAGE_SIZE") {
        let page_size: i64 = page_size.to_string_lossy().parse()?;
        let path = dir.join(WARM_DB_FILE);
        if !path.exists() {
            std::fs::create_dir_all(&dir)?;
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "page_size", page_size)?;
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
            conn.execute_batch("CREATE TABLE page_size_probe (x); DROP TABLE page_size_probe;")?;
        }
    }
    if std::env::var_os("BENCH_MIX").is_some() {
        return mix::run(&rt, &dir, rows);
    }
    let reads_mode = std::env::var_os("BENCH_READS").is_some();
    let mut config = match std::env::var("BENCH_CONFIG") {
        // TOML over the defaults (`\n` for newlines), e.g. "[warm]\nmmap_mib = 0".
        Ok(text) => StorageConfig::from_toml_str(&text.replace("\\n", "\n"))?,
        Err(_) => StorageConfig::default(),
    }
    .with_data_dir(&dir);
    if !reads_mode {
        // Measure warm reads as warm reads: no promotion during the benchmark.
        config.tiering.auto_promote_on_access = false;
        config.hot.capacity = HOT_SET as u64;
    }
    let store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config))?);
    println!(
        "tiered-storage core benchmark: {rows} warm rows, data dir {}",
        dir.display()
    );

    // --- Prefill to `rows` with 64 concurrent writers (reported, but the target is below).
    let already = store.warm_tier().len();
    let t0 = Instant::now();
    let mut filled = 0;
    // In chunks, so the prefill never holds a million records in memory at once.
    for chunk in (already..rows).step_by(65_536) {
        let dealt = deal(chunk, (rows - chunk).min(65_536));
        filled += rt.block_on(put_concurrently(&store, dealt))?;
    }
    let fill_rate = filled as f64 / t0.elapsed().as_secs_f64();
    println!(
        "prefill: {filled} puts in {:.1} s ({fill_rate:.0} records/s)",
        t0.elapsed().as_secs_f64()
    );

    if reads_mode {
        return read_scaling(&rt, store, &dir, rows);
    }

    // --- Durable put throughput, 64 writers, warm already >= rows.
    let base = store.warm_tier().len().max(rows);
    let dealt = deal(base, CONCURRENT_PUTS as u64);
    let (b0, w0) = store.warm_tier().group_commit_counts();
    let t0 = Instant::now();
    let n = rt.block_on(put_concurrently(&store, dealt))?;
    let secs = t0.elapsed().as_secs_f64();
    let concurrent_rate = n as f64 / secs;
    let (b1, w1) = store.warm_tier().group_commit_counts();
    let mean_batch = (w1 - w0) as f64 / (b1 - b0).max(1) as f64;

    // --- Single-writer put latency.
    let base = base + CONCURRENT_PUTS as u64;
    let mut single = hist();
    let singles: Vec<TransactionRecord> = (0..SINGLE_WRITER_PUTS as u64)
        .map(|i| record(base + i))
        .collect();
    let t0 = Instant::now();
    rt.block_on(async {
        for r in &singles {
            let s = Instant::now();
            store.put(r).await?;
            single.record(s.elapsed().as_nanos() as u64)?;
        }
        anyhow::Ok(())
    })?;
    let single_rate = SINGLE_WRITER_PUTS as f64 / t0.elapsed().as_secs_f64();
    let total = store.warm_tier().len();
    if std::env::var_os("BENCH_PUTS_ONLY").is_some() {
        println!("durable puts, {WRITERS} writers: {concurrent_rate:.0} records/s; 1 writer p95 {:.1} µs", us(&single, 0.95));
        return Ok(());
    }
    // Merge the signature delta and checkpoint the WAL, so raw and coordinator reads use the
    // same on-disk structures.
    let report = rt.block_on(store.run_warm_upkeep())?;
    println!("maintenance before reads: {report:?}");

    // --- Hot set: the most recently put records still cached.
    let hot_ids: Vec<i64> = (1..=total as i64)
        .rev()
        .filter(|id| store.hot_tier().contains_id(*id))
        .take(HOT_SET)
        .collect();
    let hot_records: Vec<TransactionRecord> = rt.block_on(async {
        let mut v = Vec::new();
        for id in &hot_ids {
            v.push(store.get(*id).await?.expect("hot id present"));
        }
        anyhow::Ok(v)
    })?;
    let raw_moka: moka::sync::Cache<i64, Arc<TransactionRecord>> =
        moka::sync::Cache::new(HOT_SET as u64 * 2);
    for r in &hot_records {
        raw_moka.insert(r.id.unwrap(), Arc::new(r.clone()));
    }

    let raw_moka_ttl: moka::sync::Cache<i64, Arc<TransactionRecord>> = moka::sync::Cache::builder()
        .max_capacity(HOT_SET as u64 * 2)
        .time_to_live(std::time::Duration::from_secs(3600))
        .build();
    for r in &hot_records {
        raw_moka_ttl.insert(r.id.unwrap(), Arc::new(r.clone()));
    }
    let mut results: Vec<Row> = Vec::new();
    // Raw moka, returning an owned record like the coordinator does.
    let mut h = hist();
    for i in 0..GET_SAMPLES {
        let id = hot_ids[pick(i, hot_ids.len())];
        let s = Instant::now();
        let r = raw_moka.get(&id).map(|a| TransactionRecord::clone(&a));
        h.record(s.elapsed().as_nanos() as u64)?;
        assert!(r.is_some());
    }
    results.push(Row {
        name: "raw moka get + clone".into(),
        h,
    });
    let mut h = hist();
    for i in 0..GET_SAMPLES {
        let id = hot_ids[pick(i, hot_ids.len())];
        let s = Instant::now();
        let r = raw_moka_ttl.get(&id).map(|a| TransactionRecord::clone(&a));
        h.record(s.elapsed().as_nanos() as u64)?;
        assert!(r.is_some());
    }
    results.push(Row {
        name: "raw moka (1 h TTL) get + clone".into(),
        h,
    });
    let mut h = hist();
    rt.block_on(async {
        for i in 0..GET_SAMPLES {
            let id = hot_ids[pick(i, hot_ids.len())];
            let s = Instant::now();
            let r = store.get(id).await?;
            h.record(s.elapsed().as_nanos() as u64)?;
            assert!(r.is_some());
        }
        anyhow::Ok(())
    })?;
    results.push(Row {
        name: "coordinator get (hot hit)".into(),
        h,
    });

    // --- Warm: ids not cached, spread over the whole table.
    let warm_ids: Vec<i64> = (0..GET_SAMPLES)
        .map(|i| 1 + pick(i + 7, total as usize) as i64)
        .filter(|id| !store.hot_tier().contains_id(*id))
        .collect();
    let raw = Connection::open_with_flags(
        dir.join(WARM_DB_FILE),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    raw.pragma_update(None, "mmap_size", 256i64 << 20)?;
    raw.pragma_update(None, "cache_size", -(64i64 << 10))?;
    let warm_sigs: Vec<String> = warm_ids
        .iter()
        .map(|id| {
            raw.prepare_cached("SELECT signature FROM records WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
        })
        .collect::<Result<_, _>>()?;
    // Warm both paths' caches once, identically.
    for id in warm_ids.iter().take(20_000) {
        let _: Option<Vec<u8>> = raw
            .prepare_cached("SELECT payload FROM records WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
    }

    let mut h = hist();
    for id in &warm_ids {
        let s = Instant::now();
        let p: Option<Vec<u8>> = raw
            .prepare_cached("SELECT payload FROM records WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        h.record(s.elapsed().as_nanos() as u64)?;
        assert!(p.is_some());
    }
    results.push(Row {
        name: "raw rusqlite read by id".into(),
        h,
    });
    let mut h = hist();
    rt.block_on(async {
        for id in &warm_ids {
            let s = Instant::now();
            let r = store.get(*id).await?;
            h.record(s.elapsed().as_nanos() as u64)?;
            assert!(r.is_some());
        }
        anyhow::Ok(())
    })?;
    results.push(Row {
        name: "coordinator get (warm hit)".into(),
        h,
    });

    let mut h = hist();
    for sig in &warm_sigs {
        let s = Instant::now();
        let hash = xxhash_rust::xxh3::xxh3_64(sig.as_bytes()) as i64;
        let mut stmt = raw.prepare_cached(
            "SELECT r.id, r.signature, r.payload FROM sig_index s
             JOIN records r ON r.id = s.id WHERE s.sig_hash = ?1",
        )?;
        let mut found = None;
        let mut q = stmt.query([hash])?;
        while let Some(row) = q.next()? {
            if row.get_ref(1)?.as_str()? == sig {
                found = Some(row.get::<_, Vec<u8>>(2)?);
                break;
            }
        }
        h.record(s.elapsed().as_nanos() as u64)?;
        assert!(found.is_some());
    }
    results.push(Row {
        name: "raw rusqlite read via sig_index".into(),
        h,
    });
    let mut h = hist();
    rt.block_on(async {
        for sig in &warm_sigs {
            let s = Instant::now();
            let r = store.get_by_signature(sig).await?;
            h.record(s.elapsed().as_nanos() as u64)?;
            assert!(r.is_some());
        }
        anyhow::Ok(())
    })?;
    results.push(Row {
        name: "coordinator get_by_signature (warm hit)".into(),
        h,
    });

    println!();
    print_rows(&results, &|name| match name {
        "coordinator get (hot hit)" => Some(0),
        "coordinator get (warm hit)" => Some(3),
        "coordinator get_by_signature (warm hit)" => Some(5),
        _ => None,
    });
    println!();
    println!(
        "durable puts, {WRITERS} writers, warm >= {rows} rows: {concurrent_rate:.0} records/s ({n} in {secs:.2} s, {mean_batch:.1} writes per commit)"
    );
    println!(
        "durable puts, 1 writer: {single_rate:.0} records/s; latency p50 {:.1} µs, p95 {:.1} µs, p99 {:.1} µs",
        us(&single, 0.5),
        us(&single, 0.95),
        us(&single, 0.99)
    );
    println!(
        "warm rows at end: {total}; database {:.0} MiB",
        store.warm_tier().bytes_on_disk() as f64 / (1 << 20) as f64
    );
    drop(store);
    drop(rt);
    Ok(())
}

/// YCSB's scrambled zipfian generator (Gray et al.), theta 0.99, over `0..n`.
struct Zipf {
    n: u64,
    zetan: f64,
    alpha: f64,
    eta: f64,
    half_pow_theta: f64,
}

const THETA: f64 = 0.99;

impl Zipf {
    fn new(n: u64) -> Self {
        let zetan: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(THETA)).sum();
        let zeta2 = 1.0 + 0.5f64.powf(THETA);
        Self {
            n,
            zetan,
            alpha: 1.0 / (1.0 - THETA),
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - THETA)) / (1.0 - zeta2 / zetan),
            half_pow_theta: 0.5f64.powf(THETA),
        }
    }

    /// The item for the uniform draw `u` in [0, 1), scrambled so hot items spread over the ids.
    fn item(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        let rank = if uz < 1.0 {
            0
        } else if uz < 1.0 + self.half_pow_theta {
            1
        } else {
            ((self.n as f64) * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64
        };
        // FNV-1a of the rank, as YCSB scrambles.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in rank.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % self.n
    }
}

/// splitmix64: a per-task generator of uniform draws.
fn next_u(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The peer: a moka cache (the store's default hot capacity) in front of rusqlite reading the
/// same warm database, one read connection per thread.
struct MokaSqlite {
    cache: moka::sync::Cache<i64, Arc<TransactionRecord>>,
    path: std::path::PathBuf,
}

thread_local! {
    static PEER_CONN: std::cell::RefCell<Option<Connection>> = const { std::cell::RefCell::new(None) };
}

impl MokaSqlite {
    fn get(&self, id: i64) -> anyhow::Result<Option<TransactionRecord>> {
        use tiered_storage::Record;
        if let Some(r) = self.cache.get(&id) {
            return Ok(Some(TransactionRecord::clone(&r)));
        }
        let payload: Option<Vec<u8>> = PEER_CONN.with(|c| -> anyhow::Result<_> {
            let mut c = c.borrow_mut();
            if c.is_none() {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                *c = Some(conn);
            }
            let found = c
                .as_ref()
                .expect("opened above")
                .prepare_cached("SELECT payload FROM records WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            Ok(found)
        })?;
        let Some(p) = payload else { return Ok(None) };
        let mut r = TransactionRecord::decode(&p)?;
        r.set_id(id);
        self.cache.insert(id, Arc::new(r.clone()));
        Ok(Some(r))
    }
}

/// `BENCH_READS`: YCSB C (100% zipfian reads) at K = 1, 16 and 64 tasks, store and peer
/// alternating.
fn read_scaling(
    rt: &tokio::runtime::Runtime,
    store: Arc<AutoTieringCoordinator<TransactionRecord>>,
    dir: &std::path::Path,
    rows: u64,
) -> anyhow::Result<()> {
    let secs = common::env_u64("BENCH_READ_SECS", 5)?;
    let rounds = common::env_u64("BENCH_READ_ROUNDS", 2)?;
    let report = rt.block_on(store.run_warm_upkeep())?;
    println!("maintenance before reads: {report:?}");
    let n = store.warm_tier().len().min(rows).max(1);
    let zipf = Arc::new(Zipf::new(n));
    let peer = Arc::new(MokaSqlite {
        cache: moka::sync::Cache::new(tiered_storage::StorageConfig::default().hot.capacity),
        path: dir.join(WARM_DB_FILE),
    });
    let run = |system: &str, k: usize, secs: u64| -> anyhow::Result<f64> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..k)
            .map(|t| {
                let (store, peer, zipf, stop) =
                    (store.clone(), peer.clone(), zipf.clone(), stop.clone());
                let system = system.to_owned();
                rt.spawn(async move {
                    let mut state = 0x1234_5678 ^ (t as u64).wrapping_mul(0x9E37_79B9);
                    let mut ops = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = 1 + zipf.item(next_u(&mut state)) as i64;
                        let found = if system == "store" {
                            store.get(id).await?.is_some()
                        } else {
                            let found = peer.get(id)?.is_some();
                            // The peer never yields on its own; give the worker back as
                            // often as the store's cooperative budget does.
                            if ops % 128 == 127 {
                                tokio::task::yield_now().await;
                            }
                            found
                        };
                        anyhow::ensure!(found, "id {id} missing");
                        ops += 1;
                    }
                    anyhow::Ok(ops)
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_secs(secs));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = 0;
        for t in tasks {
            total += rt.block_on(t)??;
        }
        Ok(total as f64 / t0.elapsed().as_secs_f64())
    };
    // Warm both caches once.
    run("store", 16, 2)?;
    run("peer", 16, 2)?;
    println!("YCSB C (100% read, zipfian 0.99) over {n} records, {secs} s per cell, ops/s");
    println!(
        "{:<6} {:>4} {:>12} {:>12} {:>7}",
        "round", "K", "store", "moka+sqlite", "ratio"
    );
    for round in 0..rounds {
        for k in [1usize, 16, 64] {
            let s = run("store", k, secs)?;
            let p = run("peer", k, secs)?;
            println!("{round:<6} {k:>4} {s:>12.0} {p:>12.0} {:>7.2}", s / p);
        }
    }
    let hot = store.hot_tier().metrics();
    println!(
        "store hot tier: {} records, hit rate {:.1}%",
        hot.record_count,
        hot.hit_rate()
    );
    drop(store);
    Ok(())
}
