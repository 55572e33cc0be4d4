//! What page checksums cost on a cold get, measured in one run against the same files read
//! without them.
//!
//! One store archives `BENCH_CRC_ROWS` records (default 1,000,000). A copy of its directory then
//! has the checksums removed from its catalog (`cold_files.page_sums = NULL`, as for files
//! catalogued before checksums existed), so its reads skip the check. Both stores serve the
//! same cold gets by id, alternating in rounds so that machine noise falls on both alike;
//! promotion is off so every get reads Parquet.
//!
//! Run: `cargo bench --bench checksums`. Env: `BENCH_CRC_ROWS`, `BENCH_LOOKUPS` (default
//! 20,000 per store).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tiered_storage::{AutoTieringCoordinator, StorageConfig, TieringConfig};

mod common;
use common::{env_u64, hist, pick, print_rows, put_concurrently, record_at, Row, WRITERS};

/// The data directory's ownership lock file.
const LOCK_FILE: &str = "LOCK";
/// The warm database's file name in the data directory.
const WARM_DB_FILE: &str = "warm.sqlite3";

const BASE_MS: i64 = 1_750_000_000_000;
const STEP_MS: i64 = 120;

fn config(dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::default()
        .with_data_dir(dir)
        .with_tiering(TieringConfig {
            auto_promote_on_access: false,
            ..TieringConfig::default()
        });
    c.hot.capacity = 1000;
    c
}

fn copy_store(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in walk(from)? {
        let rel = entry.strip_prefix(from)?;
        if rel.as_os_str() == LOCK_FILE {
            continue;
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("a file has a parent"))?;
        std::fs::copy(&entry, &dest)?;
    }
    Ok(())
}

fn walk(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let rows = env_u64("BENCH_CRC_ROWS", 1_000_000)?;
    let lookups = env_u64("BENCH_LOOKUPS", 20_000)? as usize;
    let tmp = tempfile::tempdir()?;
    let checked_dir = tmp.path().join("checked");
    let plain_dir = tmp.path().join("plain");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Arc::new(AutoTieringCoordinator::new(config(&checked_dir)).await?);
        let dealt: Vec<Vec<_>> = (0..WRITERS as u64)
            .map(|w| {
                (w..rows)
                    .step_by(WRITERS)
                    .map(|n| record_at(n, BASE_MS + n as i64 * STEP_MS))
                    .collect()
            })
            .collect();
        put_concurrently(&store, dealt).await?;
        let t = Instant::now();
        let report = store.archive_older_than(i64::MAX).await?;
        println!(
            "archived {} records into {} files in {:.1} s (checksums computed before publish)",
            report.archived,
            report.files,
            t.elapsed().as_secs_f64()
        );
        store.shutdown().await?;
        anyhow::Ok(())
    })?;
    copy_store(&checked_dir, &plain_dir)?;
    {
        let db = rusqlite::Connection::open(plain_dir.join(WARM_DB_FILE))?;
        let n = db.execute("UPDATE cold_files SET page_sums = NULL", [])?;
        println!("{n} files in the copy lose their checksums");
    }
    let (checked, plain) = rt.block_on(async {
        let checked = AutoTieringCoordinator::new(config(&checked_dir)).await?;
        let plain = AutoTieringCoordinator::new(config(&plain_dir)).await?;
        let mut h_checked = hist();
        let mut h_plain = hist();
        // Warm both metadata caches.
        for i in 0..2000 {
            let id = 1 + pick(i, rows as usize) as i64;
            checked.get(id).await?;
            plain.get(id).await?;
        }
        for round in 0..10 {
            for i in 0..lookups / 10 {
                let id = 1 + pick(round * lookups + i + 7, rows as usize) as i64;
                let t = Instant::now();
                let a = checked.get(id).await?;
                h_checked.record(t.elapsed().as_nanos() as u64)?;
                let t = Instant::now();
                let b = plain.get(id).await?;
                h_plain.record(t.elapsed().as_nanos() as u64)?;
                anyhow::ensure!(a.is_some() && a == b, "record {id} differs");
            }
        }
        anyhow::Ok((h_checked, h_plain))
    })?;
    println!("\ncold get by id, {rows} archived records, {lookups} gets each, same files:");
    let table = [
        Row {
            name: "cold get, page checksums unchecked".into(),
            h: plain,
        },
        Row {
            name: "cold get, every page checked (CRC-32)".into(),
            h: checked,
        },
    ];
    print_rows(&table, &|name| name.contains("checked (").then_some(0));
    Ok(())
}
