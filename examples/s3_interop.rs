//! Fixture for the Polars-over-S3 check (`scripts/polars_s3.sh`): fills a store whose cold
//! tier is in an S3 bucket, archives it, updates and removes some archived records (so the
//! bucket holds delete files that matter), archives again, and writes what an outside reader
//! of the bucket must find to `<dir>/expected.json`: the live archived rows' ids and
//! signatures (`null` for a record without one), read back through the store.
//!
//! Run (feature `s3`, with an S3 server, e.g. `eval "$(bash scripts/s3_server.sh env)"`):
//! `cargo run --features s3 --example s3_interop -- <dir> <prefix>`
//!
//! The server comes from `TIERED_STORAGE_S3_ENDPOINT` and `TIERED_STORAGE_S3_BUCKET`, the
//! credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; the store's data directory
//! is `<dir>/store`, its cold tier `s3://<bucket>/<prefix>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use tiered_storage::{
    AutoTieringCoordinator, Outcome, ScanRange, StorageConfig, StorageTier, TransactionRecord,
};

/// Trades stored.
const RECORDS: u64 = 6_000;
/// Days the decisions span.
const DAYS: i64 = 4;
const DAY_MS: i64 = 86_400_000;
/// 2024-03-01T00:00:00Z.
const START_MS: i64 = 1_709_251_200_000;

fn trade(n: u64) -> TransactionRecord {
    let mut r = TransactionRecord {
        timestamp_decision_made: START_MS + (n as i64 % DAYS) * DAY_MS + n as i64 * 1000,
        buy_price_sol: Some(1e-7 * (1 + n % 97) as f64),
        initial_sol_spent: Some(0.25),
        actual_outcome: match n % 3 {
            0 => Outcome::Profit(n as f64 / 1000.0),
            1 => Outcome::Loss(0.1),
            _ => Outcome::PendingConfirmation,
        },
        ..TransactionRecord::default()
    };
    // One record in 50 was never sent: no signature.
    if n % 50 != 7 {
        r.transaction_signature = Some(format!("{n:0>80}s3interop"));
    }
    r.scored_candidate.base.mint = format!("mint{}", n % 13);
    r
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: s3_interop <output directory> <prefix>";
    let dir = PathBuf::from(args.next().context(usage)?);
    let prefix = args.next().context(usage)?.to_string_lossy().into_owned();
    let endpoint = std::env::var("TIERED_STORAGE_S3_ENDPOINT")
        .context("TIERED_STORAGE_S3_ENDPOINT is unset: start a server (scripts/s3_server.sh)")?;
    let bucket =
        std::env::var("TIERED_STORAGE_S3_BUCKET").context("TIERED_STORAGE_S3_BUCKET is unset")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;

    let mut config = StorageConfig::default().with_data_dir(dir.join("store"));
    config.cold.store = format!("s3://{bucket}/{prefix}");
    config.cold.s3_endpoint = Some(endpoint);
    config.cold.s3_region = Some("us-east-1".to_owned());
    config.cold.s3_allow_http = true;
    config.cold.row_group_rows = 1024;
    config.cold.data_page_rows = 64;
    config.cold.max_open_partitions = 2;
    // Objects replaced by the second archival (rewritten files, retired delete files) stay in
    // the bucket until the intent sweep deletes them, `orphan_grace_secs` later: until then an
    // outside reader of the glob sees the old and the new files side by side. No grace here:
    // the maintenance step below sweeps them.
    config.cold.orphan_grace_secs = 0;
    let store = AutoTieringCoordinator::new(config).await?;
    ensure!(
        store.get_stats().await?.total_records == 0,
        "{} already holds a store: use an empty directory",
        dir.display()
    );

    let mut ids = Vec::new();
    for n in 0..RECORDS {
        ids.push(store.put(&trade(n)).await?);
    }
    let report = store.archive_older_than(i64::MAX).await?;
    ensure!(report.archived == RECORDS, "{report:?}");

    // Changes to archived records: updates (some renamed) and removes, then a second archival
    // of the updated versions. The bucket's delete files hide the old copies.
    for (k, &id) in ids.iter().enumerate().step_by(37) {
        if k % 2 == 0 {
            store.remove(id).await?;
        } else {
            let mut r = store.get(id).await?.context("stored")?;
            r.actual_outcome = Outcome::Profit(1.5);
            r.final_sol_received = Some(1.75);
            if k % 3 == 0 {
                r.transaction_signature = Some(format!("{id:0>78}renamed"));
            }
            store.update(&r).await?;
        }
    }
    store.archive_older_than(i64::MAX).await?;
    store.publish_deletes().await?;
    let step = store.run_maintenance_step().await?;
    ensure!(
        step.failures.is_empty(),
        "maintenance step: {:?}",
        step.failures
    );
    ensure!(
        store.cold_tier().cold_stats()?.dead_rows > 0,
        "no dead rows: the delete files would hide nothing"
    );
    ensure!(store.get_stats().await?.warm_records == 0, "warm not empty");

    // What the store serves, all from cold.
    let mut live: BTreeMap<i64, Option<String>> = BTreeMap::new();
    let mut cursor = store.scan(ScanRange::default(), 1000)?;
    while let Some(page) = cursor.next_page().await? {
        for r in page {
            let id = r.id.context("scanned record without an id")?;
            ensure!(!store.warm_tier().contains(id).await?, "{id} in warm");
            live.insert(id, r.transaction_signature);
        }
    }
    store.shutdown().await?;

    let mut json = String::from("{\"rows\": ");
    write!(json, "{}, \"records\": [", live.len())?;
    for (i, (id, sig)) in live.iter().enumerate() {
        if i > 0 {
            json.push_str(", ");
        }
        match sig {
            Some(s) => write!(json, "[{id}, \"{s}\"]")?,
            None => write!(json, "[{id}, null]")?,
        }
    }
    json.push_str("]}\n");
    let path = dir.join("expected.json");
    std::fs::write(&path, json).with_context(|| format!("write {}", path.display()))?;
    println!(
        "s3_interop: {} live archived records in s3://{bucket}/{prefix}; expected in {}",
        live.len(),
        path.display()
    );
    Ok(())
}
