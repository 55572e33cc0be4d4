//! Shared by the benchmarks: realistic records, histograms, tables and concurrent puts.
#![allow(dead_code)]

use std::sync::Arc;

use hdrhistogram::Histogram;
use tiered_storage::{
    AutoTieringCoordinator, PremintCandidate, ScoredCandidate, TransactionRecord,
};

/// The value of environment variable `name` as a number, or `default` when unset.
pub fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    Ok(std::env::var(name)
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(default))
}

/// Concurrent writers used by the throughput runs.
pub const WRITERS: usize = 64;

/// Record `n`, stamped 10 ms after record `n - 1`.
pub fn record(n: u64) -> TransactionRecord {
    record_at(n, 1_750_000_000_000 + n as i64 * 10)
}

/// Record `n` with timestamp `ts` (Unix ms).
pub fn record_at(n: u64, ts: i64) -> TransactionRecord {
    // 88 pseudo-random base58-ish characters, like a real signature (incompressible).
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let sig: String = (0..88)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect();
    TransactionRecord {
        id: None,
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                mint: format!("{:0>44}", n * 7919),
                creator: format!("{:0>44}", n * 104_729),
                program: "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P".into(),
                slot: 300_000_000 + n,
                timestamp: ts,
                instruction_summary: Some("create+buy".into()),
                is_jito_bundle: Some(n.is_multiple_of(3)),
            },
            predicted_score: (n % 101) as u8,
            feature_scores: [("liquidity", 0.7), ("momentum", 0.4), ("holders", 0.2)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v + (n % 10) as f64 / 100.0))
                .collect(),
            reason: "liquidity spike".into(),
            calculation_time_us: 50 + n % 200,
            anomaly_detected: n.is_multiple_of(97),
            timestamp: ts,
        },
        transaction_signature: Some(sig),
        buy_price_sol: Some(0.000_002 * (1 + n % 500) as f64),
        amount_bought_tokens: Some(250_000.0 + n as f64),
        initial_sol_spent: Some(0.25),
        timestamp_decision_made: ts,
        timestamp_transaction_sent: Some(ts + 40),
        market_context_snapshot: [("sol_usd", 180.0), ("volume_1m", 12_000.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..TransactionRecord::default()
    }
}

pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

pub fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub struct Row {
    pub name: String,
    pub h: Histogram<u64>,
}

pub fn print_rows(rows: &[Row], baseline_of: &dyn Fn(&str) -> Option<usize>) {
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>12}",
        "path", "p50 µs", "p95 µs", "p99 µs", "p95 vs raw"
    );
    for r in rows {
        let ratio = baseline_of(&r.name)
            .map(|b| format!("{:.2}x", us(&r.h, 0.95) / us(&rows[b].h, 0.95)))
            .unwrap_or_default();
        println!(
            "{:<44} {:>9.2} {:>9.2} {:>9.2} {:>12}",
            r.name,
            us(&r.h, 0.50),
            us(&r.h, 0.95),
            us(&r.h, 0.99),
            ratio
        );
    }
}

/// Deterministic spread of indexes over 0..n.
pub fn pick(i: usize, n: usize) -> usize {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as usize % n
}

/// Records numbered `start..start + count`, dealt to `WRITERS` writers round-robin, so concurrent
/// puts carry neighbouring timestamps, as a live bot's do (every decision is stamped "now").
pub fn deal(start: u64, count: u64) -> Vec<Vec<TransactionRecord>> {
    (0..WRITERS as u64)
        .map(|w| {
            (start + w..start + count)
                .step_by(WRITERS)
                .map(record)
                .collect()
        })
        .collect()
}

/// Put every writer's records with one task per writer; returns how many were put.
pub async fn put_concurrently(
    store: &Arc<AutoTieringCoordinator>,
    dealt: Vec<Vec<TransactionRecord>>,
) -> anyhow::Result<u64> {
    let mut tasks = Vec::new();
    for records in dealt {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            for r in &records {
                store.put(r).await?;
            }
            anyhow::Ok(records.len() as u64)
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await??;
    }
    Ok(done)
}
