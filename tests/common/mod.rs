//! Helpers shared by the cold-tier integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use tiered_storage::{
    Outcome, PremintCandidate, ScoredCandidate, StorageConfig, TransactionRecord,
};

pub const DAY: i64 = 86_400_000;
/// 2023-11-14T22:13:20Z.
pub const T0: i64 = 1_700_000_000_000;

/// Small Parquet row groups and pages, so a few hundred records make several of each.
pub fn cold_config(dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::default()
        .with_data_dir(dir)
        .with_hot_capacity(1000);
    c.cold.row_group_rows = 1024;
    c.cold.data_page_rows = 64;
    c
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
