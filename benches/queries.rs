//! Query benchmark (the targets of the trader-queries work), each measured against its baseline
//! in the same run:
//!
//! | measure | baseline in the same run | target |
//! |---|---|---|
//! | `latest(20)`, all in warm | raw SQLite on the same database (`ORDER BY ts DESC LIMIT 20` + decode) | p95 ≤ 200 µs |
//! | PnL by day over 14 archived days, uncached | scanning the full records; DuckDB on the same files | ≥ 10× / ≥ 2× faster |
//! | the same, cached | — | p95 ≤ 50 µs |
//! | SQL `GROUP BY` day over one archived day | the native aggregate over that day | within 2× |
//! | Parquet export of 1M records | — | ≥ 200,000 records/s |
//!
//! Run: `bash scripts/bench_queries.sh` (sets up DuckDB in the venv), or
//! `cargo bench --bench queries --features sql`. Env: `BENCH_QUERY_ROWS` (archived records,
//! default 2500000, over 14 UTC days), `BENCH_WARM_ROWS` (records of the all-warm store,
//! default 200000), `BENCH_EXPORT_ROWS` (default 1000000), `BENCH_DIR` (a directory to keep
//! the stores in and reuse; default a fresh temp dir), `BENCH_PYTHON` (a Python with `duckdb`:
//! the DuckDB baseline).

use std::sync::Arc;
use std::time::Instant;

use tiered_storage::{
    Aggregate, AutoTieringCoordinator, GroupBy, GroupKey, Measure, Outcome, Record, ScanRange,
    StorageConfig, TieringConfig, TransactionRecord,
};

mod common;
use common::{env_u64, hist, put_concurrently, record_at, us, WRITERS};

const DAY_MS: i64 = 86_400_000;
/// 2025-06-16T00:00:00Z: a UTC midnight, so 14 days are 14 whole partitions.
const BASE_MS: i64 = 1_750_032_000_000;
const DAYS: i64 = 14;

/// Record `n` with a closed outcome: 2/5 profits, 2/5 losses, 1/5 neutral.
fn trade(n: u64, ts: i64) -> TransactionRecord {
    let mut r = record_at(n, ts);
    let amount = 0.001 * (1 + n % 97) as f64;
    r.actual_outcome = match n % 5 {
        0 | 1 => Outcome::Profit(amount),
        2 | 3 => Outcome::Loss(amount),
        _ => Outcome::Neutral,
    };
    r.final_sol_received = r
        .initial_sol_spent
        .zip(r.actual_outcome.pnl())
        .map(|(s, p)| s + p);
    r
}

fn deal(start: u64, count: u64, step_ms: i64) -> Vec<Vec<TransactionRecord>> {
    (0..WRITERS as u64)
        .map(|w| {
            (start + w..start + count)
                .step_by(WRITERS)
                .map(|i| trade(i, BASE_MS + i as i64 * step_ms))
                .collect()
        })
        .collect()
}

fn config(dir: &std::path::Path) -> StorageConfig {
    // Records are old: maintenance is not started, archival is called explicitly.
    let mut config = StorageConfig::default()
        .with_data_dir(dir)
        .with_tiering(TieringConfig {
            auto_promote_on_access: false,
            ..TieringConfig::default()
        });
    // The SQL floor measure copies a whole day's rows out (~180k at 2.5M records).
    config.sql.max_rows = 10_000_000;
    config
}

async fn fill(
    store: &Arc<AutoTieringCoordinator>,
    rows: u64,
    step_ms: i64,
    archive: bool,
) -> anyhow::Result<()> {
    let have = store.get_stats().await?.total_records;
    let chunk = 500_000;
    let mut next = have;
    while next < rows {
        let n = chunk.min(rows - next);
        let t = Instant::now();
        put_concurrently(store, deal(next, n, step_ms)).await?;
        store.run_warm_upkeep().await?;
        let put = t.elapsed();
        let t = Instant::now();
        if archive {
            store.archive_older_than(i64::MAX).await?;
        }
        next += n;
        println!(
            "  filled {next}/{rows}: put {:.1} s, archived {:.1} s",
            put.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn timed<T>(
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, T)> {
    let mut h = hist();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f()?;
        h.record((t.elapsed().as_nanos() as u64).max(1))?;
        last = Some(v);
    }
    Ok((h, last.expect("runs > 0")))
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    us(h, q) / 1000.0
}

/// PnL by UTC day, as (day start ms, sum), sorted.
type ByDay = Vec<(i64, f64)>;

fn close(a: &ByDay, b: &ByDay) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((da, sa), (db, sb))| da == db && (sa - sb).abs() <= 1e-6 * sa.abs().max(1.0))
}

fn main() -> anyhow::Result<()> {
    let rows = env_u64("BENCH_QUERY_ROWS", 2_500_000)?;
    let warm_rows = env_u64("BENCH_WARM_ROWS", 200_000)?;
    let export_rows = env_u64("BENCH_EXPORT_ROWS", 1_000_000)?.min(rows);
    let (dir, _guard) = match std::env::var_os("BENCH_DIR") {
        Some(d) => (std::path::PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tiered-storage-query-bench-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("data dir: {}", dir.display());
    let mut report: Vec<String> = Vec::new();

    // ---- 1. latest(20), all in warm, against raw SQLite on the same database.
    {
        let wdir = dir.join("warm-only");
        let store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config(&wdir)))?);
        println!("warm-only store: {warm_rows} records");
        // One record a second: nothing is old enough to archive, and the bench archives nothing.
        rt.block_on(fill(&store, warm_rows, 1000, false))?;
        let stats = rt.block_on(store.get_stats())?;
        anyhow::ensure!(
            stats.cold_records == 0,
            "the warm-only store has cold records"
        );
        let want: Vec<i64> = {
            let raw = rusqlite::Connection::open_with_flags(
                wdir.join("warm.sqlite3"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            let mut stmt =
                raw.prepare("SELECT id FROM records ORDER BY ts DESC, id DESC LIMIT 20")?;
            let ids = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            ids
        };
        let got: Vec<i64> = rt
            .block_on(store.latest(20))?
            .iter()
            .map(|r| r.id.unwrap())
            .collect();
        anyhow::ensure!(got == want, "latest(20) {got:?} != raw {want:?}");
        let runs = 5000;
        let (h_latest, _) = timed(runs, || Ok(rt.block_on(store.latest(20))?))?;
        let raw = rusqlite::Connection::open_with_flags(
            wdir.join("warm.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut stmt = raw
            .prepare_cached("SELECT id, payload FROM records ORDER BY ts DESC, id DESC LIMIT 20")?;
        let (h_raw, _) = timed(runs, || {
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?
                .map(|row| {
                    let (id, payload) = row?;
                    let mut rec = TransactionRecord::decode(&payload)?;
                    rec.set_id(id);
                    anyhow::Ok(rec)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(rows.len())
        })?;
        let line = format!(
            "latest(20), all {warm_rows} in warm: p50 {:.1} µs, p95 {:.1} µs, p99 {:.1} µs (target p95 <= 200 µs); raw SQLite + decode p95 {:.1} µs ({:.2}x)",
            us(&h_latest, 0.5), us(&h_latest, 0.95), us(&h_latest, 0.99), us(&h_raw, 0.95),
            us(&h_latest, 0.95) / us(&h_raw, 0.95)
        );
        println!("{line}");
        report.push(line);
        rt.block_on(store.shutdown())?;
    }

    // ---- 2. the history store: `rows` records over 14 days, all archived.
    let hdir = dir.join("history");
    let step_ms = DAYS * DAY_MS / rows as i64;
    let range = ScanRange::default().with_time(BASE_MS..=BASE_MS + DAYS * DAY_MS - 1);
    let pnl_by_day = Aggregate::new(Measure::Pnl)
        .over(range.clone())
        .group_by(GroupBy::Day);
    let as_by_day = |rows: Vec<tiered_storage::AggregateRow>| -> ByDay {
        rows.into_iter()
            .map(|r| match r.group {
                GroupKey::Day(d) => (d, r.sum),
                other => panic!("not a day: {other:?}"),
            })
            .collect()
    };
    let native: ByDay;
    {
        let store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config(&hdir)))?);
        println!("history store: {rows} records over {DAYS} days, archived");
        rt.block_on(fill(&store, rows, step_ms, true))?;
        let stats = rt.block_on(store.get_stats())?;
        anyhow::ensure!(
            stats.cold_records == rows,
            "expected {rows} archived, have {}",
            stats.cold_records
        );

        let (h_native, got) = timed(10, || Ok(rt.block_on(store.aggregate(&pnl_by_day))?))?;
        native = as_by_day(got);
        anyhow::ensure!(native.len() == DAYS as usize, "{} days", native.len());

        // Baseline 1: the full records through the store's scan, summed in Rust.
        let (h_full, full) = timed(2, || {
            rt.block_on(async {
                let mut cursor = store.scan(range.clone(), 8192)?;
                let mut by_day = std::collections::BTreeMap::<i64, f64>::new();
                while let Some(page) = cursor.next_page().await? {
                    for r in page {
                        if let Some(p) = r.actual_outcome.pnl() {
                            *by_day
                                .entry(r.timestamp_ms().div_euclid(DAY_MS) * DAY_MS)
                                .or_default() += p;
                        }
                    }
                }
                anyhow::Ok(by_day.into_iter().collect::<ByDay>())
            })
        })?;
        anyhow::ensure!(
            close(&native, &full),
            "aggregate {native:?} != full scan {full:?}"
        );

        // Baseline 2: DuckDB on the same files.
        let duck = match std::env::var_os("BENCH_PYTHON") {
            Some(python) => {
                let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("benches/duckdb_queries.py");
                let out = std::process::Command::new(python)
                    .arg(&script)
                    .arg(store.cold_tier().root())
                    .arg(BASE_MS.to_string())
                    .arg((BASE_MS + DAYS * DAY_MS - 1).to_string())
                    .output()?;
                anyhow::ensure!(
                    out.status.success(),
                    "duckdb failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = String::from_utf8(out.stdout)?;
                let mut h = hist();
                let mut days = ByDay::new();
                for line in text.lines() {
                    let mut parts = line.split_whitespace();
                    match parts.next() {
                        Some("nanos") => {
                            for v in parts {
                                h.record(v.parse::<u64>()?.max(1))?;
                            }
                        }
                        Some("day") => {
                            let d: i64 = parts.next().unwrap_or_default().parse()?;
                            let s: f64 = parts.next().unwrap_or_default().parse()?;
                            days.push((d, s));
                        }
                        _ => {}
                    }
                }
                anyhow::ensure!(
                    close(&native, &days),
                    "aggregate {native:?} != duckdb {days:?}"
                );
                Some(h)
            }
            None => {
                println!("(set BENCH_PYTHON to a Python with duckdb, or run scripts/bench_queries.sh, for the DuckDB baseline)");
                None
            }
        };
        let mut line = format!(
            "PnL by day, {DAYS} archived days ({rows} records), uncached: median {:.1} ms, p95 {:.1} ms; full-record scan median {:.0} ms ({:.1}x faster, target >= 10x)",
            ms(&h_native, 0.5), ms(&h_native, 0.95), ms(&h_full, 0.5),
            ms(&h_full, 0.5) / ms(&h_native, 0.5)
        );
        if let Some(h) = &duck {
            line += &format!(
                "; DuckDB median {:.1} ms ({:.2}x faster, target >= 2x)",
                ms(h, 0.5),
                ms(h, 0.5) / ms(&h_native, 0.5)
            );
        }
        println!("{line}");
        report.push(line);

        // ---- 4. SQL GROUP BY day over one archived day, against the native aggregate.
        #[cfg(feature = "sql")]
        {
            let day0 = BASE_MS + 6 * DAY_MS;
            let day1 = day0 + DAY_MS - 1;
            let native_day = Aggregate::new(Measure::Pnl)
                .over(ScanRange::default().with_time(day0..=day1))
                .group_by(GroupBy::Day);
            let by_function = format!(
                "SELECT date(ts_ms/1000,'unixepoch') d, sum(pnl) FROM records WHERE ts_ms BETWEEN {day0} AND {day1} GROUP BY d"
            );
            let by_column = format!(
                "SELECT date, sum(pnl) FROM records WHERE ts_ms BETWEEN {day0} AND {day1} GROUP BY date"
            );
            let (h_nat, n) = timed(20, || Ok(rt.block_on(store.aggregate(&native_day))?))?;
            anyhow::ensure!(n.len() == 1, "native: {} groups", n.len());
            let sum_of = |rows: &tiered_storage::SqlRows| -> anyhow::Result<f64> {
                anyhow::ensure!(rows.rows.len() == 1, "sql: {} rows", rows.rows.len());
                match &rows.rows[0][1] {
                    tiered_storage::SqlValue::Real(v) => Ok(*v),
                    other => anyhow::bail!("sum is {other:?}"),
                }
            };
            let mut sql_line = String::new();
            let mut ratio_column = 0.0;
            for (name, sql) in [
                ("GROUP BY date", &by_column),
                ("GROUP BY date(ts_ms/1000,'unixepoch')", &by_function),
            ] {
                let (h_sql, s) = timed(20, || Ok(rt.block_on(store.sql(sql))?))?;
                let sql_sum = sum_of(&s)?;
                anyhow::ensure!(
                    (sql_sum - n[0].sum).abs() <= 1e-6 * n[0].sum.abs().max(1.0),
                    "sql {sql_sum} != native {}",
                    n[0].sum
                );
                let ratio = ms(&h_sql, 0.5) / ms(&h_nat, 0.5);
                if ratio_column == 0.0 {
                    ratio_column = ratio;
                }
                sql_line += &format!(
                    "; {name}: median {:.1} ms ({ratio:.2}x native)",
                    ms(&h_sql, 0.5)
                );
            }
            // SQLite's own floor: the same statements over an in-memory table holding just the
            // day's (ts_ms, date, pnl) rows, in the same SQLite build.
            let floor = rusqlite::Connection::open_in_memory()?;
            floor.execute_batch("CREATE TABLE records (ts_ms INTEGER, date TEXT, pnl REAL)")?;
            let copied = rt.block_on(store.sql(&format!(
                "SELECT ts_ms, date, pnl FROM records WHERE ts_ms BETWEEN {day0} AND {day1}"
            )))?;
            {
                let tx = floor.unchecked_transaction()?;
                let mut insert = tx.prepare("INSERT INTO records VALUES (?1, ?2, ?3)")?;
                for row in &copied.rows {
                    let value = |v: &tiered_storage::SqlValue| -> rusqlite::types::Value {
                        match v {
                            tiered_storage::SqlValue::Integer(i) => (*i).into(),
                            tiered_storage::SqlValue::Real(f) => (*f).into(),
                            tiered_storage::SqlValue::Text(t) => t.clone().into(),
                            _ => rusqlite::types::Value::Null,
                        }
                    };
                    insert.execute(rusqlite::params![
                        value(&row[0]),
                        value(&row[1]),
                        value(&row[2])
                    ])?;
                }
                drop(insert);
                tx.commit()?;
            }
            let mut floor_line = String::new();
            for (name, sql) in [("GROUP BY date", &by_column), ("date()", &by_function)] {
                let (h, _) = timed(20, || {
                    let mut stmt = floor.prepare_cached(sql)?;
                    let rows: Vec<f64> = stmt
                        .query_map([], |r| r.get(1))?
                        .collect::<Result<_, _>>()?;
                    Ok(rows.len())
                })?;
                floor_line += &format!(", {name} {:.1} ms", ms(&h, 0.5));
            }
            let line = format!(
                "SQL over one archived day ({} rows): native aggregate median {:.1} ms{sql_line} (target <= 2x: {ratio_column:.2}x); SQLite alone on an in-memory table of the day's rows{floor_line}",
                copied.rows.len(),
                ms(&h_nat, 0.5),
            );
            println!("{line}");
            report.push(line);
        }
        #[cfg(not(feature = "sql"))]
        println!("(SQL measure skipped: run with --features sql)");

        // ---- 5. Parquet export of `export_rows` records.
        let out = dir.join("export.parquet");
        let export_range =
            ScanRange::default().with_time(BASE_MS..=BASE_MS + export_rows as i64 * step_ms - 1);
        let (h_export, exported) = timed(3, || {
            Ok(rt.block_on(store.export(export_range.clone(), &out))?)
        })?;
        anyhow::ensure!(
            exported.records == export_rows,
            "exported {} of {export_rows}",
            exported.records
        );
        let line = format!(
            "Parquet export of {export_rows} records: median {:.2} s = {:.0} records/s (target >= 200000), {:.1} MiB",
            ms(&h_export, 0.5) / 1000.0,
            export_rows as f64 / (ms(&h_export, 0.5) / 1000.0),
            std::fs::metadata(&out)?.len() as f64 / 1048576.0
        );
        println!("{line}");
        report.push(line);
        std::fs::remove_file(&out)?;
        rt.block_on(store.shutdown())?;
    }

    // ---- 3. the same aggregate, cached (the store reopened with the cache on).
    {
        let mut cfg = config(&hdir);
        cfg.query_cache.max_bytes = 64 << 20;
        let store = Arc::new(rt.block_on(AutoTieringCoordinator::new(cfg))?);
        let first = as_by_day(rt.block_on(store.aggregate(&pnl_by_day))?);
        anyhow::ensure!(close(&first, &native), "cached store disagrees");
        let (h_cached, again) = timed(20_000, || Ok(rt.block_on(store.aggregate(&pnl_by_day))?))?;
        anyhow::ensure!(close(&as_by_day(again), &native), "cached answer differs");
        let m = rt
            .block_on(store.collect_metrics())?
            .query_cache
            .ok_or_else(|| anyhow::anyhow!("the query cache is off"))?;
        let line = format!(
            "PnL by day, cached: p50 {:.2} µs, p95 {:.2} µs, p99 {:.2} µs (target p95 <= 50 µs); cache hits {}, misses {}",
            us(&h_cached, 0.5), us(&h_cached, 0.95), us(&h_cached, 0.99),
            m.hits, m.misses
        );
        println!("{line}");
        report.push(line);
        rt.block_on(store.shutdown())?;
    }

    println!("\nsummary:");
    for line in &report {
        println!("- {line}");
    }
    Ok(())
}
