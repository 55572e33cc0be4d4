//! Core-store benchmark: coordinator hot/warm gets against raw moka and raw rusqlite on the same
//! data, and durable put throughput with 1 and 64 writers into a warm tier of >= 1M rows.
//!
//! Run: `cargo bench --bench core` (env: `BENCH_ROWS`, default 1000000; `BENCH_DIR`, default a
//! fresh directory under the system temp dir, removed afterwards).
//!
//! `BENCH_MIX=1` instead runs the update mix (see `mix`): K = 1, 16 and 64 tasks doing 50% gets
//! and 50% updates on zipfian ids, against a hand-written rusqlite store in the same run.

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
    let mut config = StorageConfig::default().with_data_dir(&dir);
    // Measure warm reads as warm reads: no promotion during the benchmark.
    config.tiering.auto_promote_on_access = false;
    config.hot.capacity = HOT_SET as u64;
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
