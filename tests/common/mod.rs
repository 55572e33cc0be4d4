//! Helpers shared by the cold-tier integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use arrow_array::Int64Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use tiered_storage::{ScanRange, StorageTier};

use tiered_storage::{
    Outcome, PremintCandidate, ScoredCandidate, StorageConfig, TransactionRecord,
};

pub const DAY: i64 = 86_400_000;
/// 2023-11-14T22:13:20Z.
pub const T0: i64 = 1_700_000_000_000;

/// Small Parquet row groups and pages, so a few hundred records make several of each. With
/// `TIERED_STORAGE_TEST_COLD_STORE=memory` (and the `s3` feature) the cold tier is in an
/// in-process object store of its own (see [`test_cold_store`]).
pub fn cold_config(dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::default()
        .with_data_dir(dir)
        .with_hot_capacity(1000);
    c.cold.row_group_rows = 1024;
    c.cold.data_page_rows = 64;
    test_cold_store(&mut c);
    c
}

/// The environment switch that runs the cold-tier tests over an object store.
pub const TEST_COLD_STORE_ENV: &str = "TIERED_STORAGE_TEST_COLD_STORE";

/// Whether cold files are in `<data_dir>/cold` on local disk (not the object store of
/// [`TEST_COLD_STORE_ENV`]): tests that look at the files themselves check only then.
pub fn cold_on_local_disk() -> bool {
    std::env::var(TEST_COLD_STORE_ENV).map_or(true, |v| v.is_empty() || v == "local")
}

/// With `TIERED_STORAGE_TEST_COLD_STORE=memory`, put the cold tier of `c` in the in-process
/// object store `memory://test-<data dir>`: one per data directory, so a reopen of the same
/// directory sees the same objects and tests never share one.
pub fn test_cold_store(c: &mut StorageConfig) {
    match std::env::var(TEST_COLD_STORE_ENV).as_deref() {
        Ok("memory") => {
            let name: String = c
                .data_dir
                .to_string_lossy()
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
                .collect();
            c.cold.store = format!("memory://test{name}/cold");
        }
        Ok("") | Ok("local") | Err(_) => {}
        Ok(other) => panic!("{TEST_COLD_STORE_ENV}={other}: expected memory or local"),
    }
}

/// Every file under `dir` (none when it does not exist).
pub fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A two-worker runtime, like the machine's two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Record `n`: three days of old timestamps interleaved by id, four outcomes, ten mints, two
/// programs, and an 88-character signature ending in `tag`.
pub fn record(n: u64, tag: &str) -> TransactionRecord {
    let mut market = BTreeMap::new();
    market.insert("sol_usd".to_owned(), 150.0 + n as f64);
    TransactionRecord {
        transaction_signature: Some(format!("{n:0>width$}{tag}", width = 88 - tag.len())),
        timestamp_decision_made: T0 + (n % 3) as i64 * DAY + n as i64,
        buy_price_sol: Some(n as f64 * 1e-6),
        actual_outcome: match n % 4 {
            0 => Outcome::Profit(n as f64),
            1 => Outcome::Loss(0.5),
            2 => Outcome::ExecutionError(format!("err {n}")),
            _ => Outcome::PendingConfirmation,
        },
        market_context_snapshot: market,
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                mint: format!("mint{}", n % 10),
                program: if n.is_multiple_of(2) {
                    "pump"
                } else {
                    "raydium"
                }
                .to_owned(),
                ..Default::default()
            },
            ..Default::default()
        },
        ..TransactionRecord::default()
    }
}

// The archive as an outside reader sees it (data glob minus delete files).

/// The `id` column of a Parquet file, read with the crate's own parquet reader.
pub fn ids_of(path: &Path) -> Vec<i64> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let idx = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == "id")
        .expect("an id column");
    let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
    let mut out = Vec::new();
    for batch in builder.with_projection(mask).build().unwrap() {
        let batch = batch.unwrap();
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        out.extend(col.values().iter().copied());
    }
    out
}

/// `(partition, file path)` of every `*.parquet` under `dir/date=*/`.
pub fn glob(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    let Ok(parts) = std::fs::read_dir(dir) else {
        return out;
    };
    for p in parts {
        let p = p.unwrap();
        let name = p.file_name().to_string_lossy().into_owned();
        if !name.starts_with("date=") || !p.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(p.path()).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "parquet") {
                out.push((name.clone(), f));
            }
        }
    }
    out.sort();
    out
}

/// The outside reader's view: every data row whose (date, id) is in no delete file, as id →
/// how many times it is seen.
pub fn outside_view(dir: &Path) -> BTreeMap<i64, usize> {
    outside_view_of(&dir.join("cold"))
}

/// [`outside_view`] of the cold files under `cold` (the local cold directory, or the
/// directory of a bucket's objects on an S3 test server's disk).
pub fn outside_view_of(cold: &Path) -> BTreeMap<i64, usize> {
    let cold = cold.to_path_buf();
    let mut dead = std::collections::BTreeSet::new();
    for (part, f) in glob(&cold.join("_deletes")) {
        for id in ids_of(&f) {
            dead.insert((part.clone(), id));
        }
    }
    let mut view = BTreeMap::new();
    for (part, f) in glob(&cold) {
        for id in ids_of(&f) {
            if !dead.contains(&(part.clone(), id)) {
                *view.entry(id).or_insert(0) += 1;
            }
        }
    }
    view
}

/// The store's answer over the cold tier: every record it serves that warm does not hold.
pub async fn store_cold_view<R: tiered_storage::Record>(
    store: &tiered_storage::AutoTieringCoordinator<R>,
) -> BTreeMap<i64, usize> {
    let mut cursor = store.scan(ScanRange::default(), 500).unwrap();
    let mut out = BTreeMap::new();
    while let Some(page) = cursor.next_page().await.unwrap() {
        for r in page {
            let id = r.id().unwrap();
            if !store.warm_tier().contains(id).await.unwrap() {
                out.insert(id, 1);
            }
        }
    }
    out
}
