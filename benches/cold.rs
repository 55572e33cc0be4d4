//! Cold-tier benchmark: archival throughput warm → cold end to end, bytes per record, cold
//! point reads by id and by signature through the coordinator, and the resident size of the
//! cold index (cached Parquet metadata). DuckDB is measured on the same files in the same run
//! when `BENCH_PYTHON` names a Python with the `duckdb` package (`scripts/bench_cold.sh` sets
//! that up).
//!
//! Run: `bash scripts/bench_cold.sh` (or `cargo bench --bench cold`). Env: `BENCH_COLD_ROWS`
//! (default 10000000), `BENCH_DIR` (default a fresh temp dir, removed afterwards; an existing
//! directory that already holds the archive is reused and the fill and archival are skipped),
//! `BENCH_LOOKUPS` (default 2000 per kind), `BENCH_ARCHIVE_BACKLOG` (records put before each
//! archival pass, default 2500000), `BENCH_ZSTD_LEVEL` (`cold.zstd_level`, default 3),
//! `BENCH_BLOOM` (set: archive with a bloom filter on `transaction_signature`),
//! `BENCH_STRING_PAGE_ROWS` (`cold.string_page_rows` when archiving).
//! `BENCH_HISTORY=1` runs the history case instead (see `benches/cold/history.rs`).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use tiered_storage::{AutoTieringCoordinator, Record, StorageConfig, TieringConfig};

mod common;
#[path = "cold/history.rs"]
mod history;
use common::{env_u64, hist, pick, print_rows, put_concurrently, record_at, us, Row, WRITERS};

/// Records are stamped 120 ms apart: 10M records span about 14 days (14 day partitions).
const STEP_MS: i64 = 120;
const BASE_MS: i64 = 1_750_000_000_000;
/// Records put per round, then archived in one pass: an archival backlog of this size.
/// `BENCH_ARCHIVE_BACKLOG` overrides it.
const CHUNK: u64 = 2_500_000;

/// A `/proc/self/status` field in bytes (Linux), e.g. `RssAnon`: the process's own heap, as
/// opposed to `RssFile`, which counts the memory-mapped database and the page cache.
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Hand freed heap back to the OS, so `RssAnon` shows what is live (glibc keeps freed memory
/// otherwise; the benchmark's own record vectors are large).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim has no preconditions.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Samples `RssAnon` every 20 ms until dropped; `peak()` is the largest sample.
struct PeakRss {
    stop: Arc<std::sync::atomic::AtomicBool>,
    peak: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    fn start() -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(proc_status_bytes("RssAnon")));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(proc_status_bytes("RssAnon"), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak(mut self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("BENCH_HISTORY").is_some() {
        let dir = std::env::var_os("BENCH_DIR")
            .map(std::path::PathBuf::from)
            .ok_or_else(|| anyhow::anyhow!("BENCH_HISTORY needs BENCH_DIR"))?;
        return history::run(dir);
    }
    let rows = env_u64("BENCH_COLD_ROWS", 10_000_000)?;
    let lookups = env_u64("BENCH_LOOKUPS", 2000)? as usize;
    let chunk = env_u64("BENCH_ARCHIVE_BACKLOG", CHUNK)?.max(1);
    let (dir, _guard) = match std::env::var_os("BENCH_DIR") {
        Some(d) => (std::path::PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tiered-storage-cold-bench-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Reads must reach cold: no promotion into hot.
    let tiering = TieringConfig {
        auto_promote_on_access: false,
        ..TieringConfig::default()
    };
    let mut config = StorageConfig::default()
        .with_data_dir(&dir)
        .with_tiering(tiering);
    config.cold.zstd_level = env_u64("BENCH_ZSTD_LEVEL", config.cold.zstd_level as u64)? as i32;
    config.cold.string_page_rows = env_u64(
        "BENCH_STRING_PAGE_ROWS",
        config.cold.string_page_rows as u64,
    )? as usize;
    if std::env::var_os("BENCH_BLOOM").is_some() {
        config.cold.bloom_filter_columns = vec!["transaction_signature".into()];
    }
    let store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config))?);
    println!("data dir: {}", dir.display());

    let have = rt.block_on(store.get_stats())?.total_records;
    if have < rows {
        let mut archived = 0u64;
        let mut archive_secs = 0.0;
        let mut archive_heap_growth = 0u64;
        let mut next = have;
        while next < rows {
            let n = chunk.min(rows - next);
            let start = next;
            let dealt: Vec<Vec<_>> = (0..WRITERS as u64)
                .map(|w| {
                    (start + w..start + n)
                        .step_by(WRITERS)
                        .map(|i| record_at(i, BASE_MS + i as i64 * STEP_MS))
                        .collect()
                })
                .collect();
            let t = Instant::now();
            rt.block_on(put_concurrently(&store, dealt))?;
            // Ingest upkeep (the signature-index merge) runs before archival, as it does long
            // before a record is `warm_to_cold_age` old in real use.
            rt.block_on(store.run_warm_upkeep())?;
            let put_secs = t.elapsed().as_secs_f64();
            trim_heap();
            let heap_before = proc_status_bytes("RssAnon");
            let sampler = PeakRss::start();
            let t = Instant::now();
            let report = rt.block_on(store.archive_older_than(i64::MAX))?;
            let secs = t.elapsed().as_secs_f64();
            let heap_peak = sampler.peak();
            archive_heap_growth = archive_heap_growth.max(heap_peak.saturating_sub(heap_before));
            archived += report.archived;
            archive_secs += secs;
            next += n;
            println!(
                "filled {next}/{rows}: put {n} + maintenance in {put_secs:.1} s; archived {} in {secs:.2} s ({:.0} records/s, {} files; read {:.2} s, write {:.2} s, commit {:.2} s)",
                report.archived,
                report.archived as f64 / secs,
                report.files,
                report.read_time.as_secs_f64(),
                report.write_time.as_secs_f64(),
                report.commit_time.as_secs_f64(),
            );
        }
        println!(
            "archival end to end: {archived} records in {archive_secs:.1} s = {:.0} records/s (target >= 250000)",
            archived as f64 / archive_secs
        );
        println!(
            "archival heap: peak RssAnon {:.0} MiB above its level before the pass (a {chunk}-record backlog)",
            archive_heap_growth as f64 / 1048576.0
        );
    }
    let stats = rt.block_on(store.get_stats())?;
    let cold = store.cold_tier().cold_stats()?;
    println!(
        "cold: {} files, {} rows, {:.1} MiB, {:.1} bytes/record (target <= 180)",
        cold.files,
        stats.cold_records,
        cold.bytes as f64 / 1048576.0,
        cold.bytes as f64 / cold.rows.max(1) as f64
    );
    let n = stats.cold_records as usize;
    anyhow::ensure!(n > 0, "nothing archived");

    // Sample ids and signatures. Ids were assigned 1..=rows in put order.
    let ids: Vec<i64> = (0..lookups).map(|i| 1 + pick(i, n) as i64).collect();
    let mut sigs = Vec::with_capacity(lookups);
    for &id in ids.iter().take(lookups) {
        let r = rt
            .block_on(store.get(id))?
            .ok_or_else(|| anyhow::anyhow!("id {id} missing"))?;
        sigs.push(r.signature().unwrap().to_owned());
    }
    trim_heap();
    // The signature fetch above opened every file's metadata; now measure.
    let mut by_id = hist();
    let mut by_sig = hist();
    for &id in &ids {
        let t = Instant::now();
        let r = rt.block_on(store.get(id))?;
        by_id.record(t.elapsed().as_nanos() as u64)?;
        anyhow::ensure!(r.is_some_and(|r| r.id == Some(id)));
    }
    for sig in &sigs {
        let t = Instant::now();
        let r = rt.block_on(store.get_by_signature(sig))?;
        by_sig.record(t.elapsed().as_nanos() as u64)?;
        anyhow::ensure!(r.is_some_and(|r| r.signature() == Some(sig.as_str())));
    }
    let meta = store.cold_tier().metadata_cache_bytes();
    println!(
        "cold index resident: {:.2} MiB of cached Parquet metadata = {:.2} bytes/record (target <= 4); \
         process heap (RssAnon) {:.0} MiB, file-backed (RssFile: mmap of the database) {:.0} MiB",
        meta as f64 / 1048576.0,
        meta as f64 / n as f64,
        proc_status_bytes("RssAnon") as f64 / 1048576.0,
        proc_status_bytes("RssFile") as f64 / 1048576.0,
    );

    let mut table = vec![
        Row {
            name: "cold get by id (coordinator)".into(),
            h: by_id,
        },
        Row {
            name: "cold get by signature (coordinator)".into(),
            h: by_sig,
        },
    ];
    // DuckDB on the same files, same ids and signatures.
    match std::env::var_os("BENCH_PYTHON") {
        Some(python) => {
            let sample = dir.join("bench_sample.txt");
            let mut f = std::fs::File::create(&sample)?;
            for (id, sig) in ids.iter().zip(&sigs).take(200) {
                writeln!(f, "{id} {sig}")?;
            }
            drop(f);
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_cold.py");
            let out = std::process::Command::new(python)
                .arg(&script)
                .arg(store.cold_tier().root())
                .arg(&sample)
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "duckdb baseline failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8(out.stdout)?.lines() {
                // "<name> <nanos> <nanos> ..."
                let mut parts = line.split_whitespace();
                let Some(name) = parts.next() else { continue };
                let mut h = hist();
                for v in parts {
                    h.record(v.parse::<u64>()?.max(1))?;
                }
                table.push(Row {
                    name: format!("duckdb {}", name.replace('_', " ")),
                    h,
                });
            }
        }
        None => println!("(set BENCH_PYTHON to a Python with duckdb, or run scripts/bench_cold.sh, for the DuckDB baseline)"),
    }
    println!();
    print_rows(&table, &|name| {
        if name.contains("by id") && !name.starts_with("duckdb") {
            table.iter().position(|r| r.name == "duckdb get by id")
        } else if name.contains("by signature") && !name.starts_with("duckdb") {
            table
                .iter()
                .position(|r| r.name == "duckdb get by signature")
        } else {
            None
        }
    });
    println!(
        "targets: cold get by id p95 <= 1000 µs (measured {:.0}), by signature p95 <= 2000 µs (measured {:.0})",
        us(&table[0].h, 0.95),
        us(&table[1].h, 0.95)
    );
    Ok(())
}
