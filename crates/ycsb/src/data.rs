//! The records: the crate's `TransactionRecord` with realistic fields, numbered so a read can
//! be checked against what was written.

use tiered_storage::{Outcome, PremintCandidate, ScoredCandidate, TransactionRecord};

/// Timestamp of record 0 (Unix ms); record `n` is stamped 10 ms after record `n - 1`.
pub const BASE_TS: i64 = 1_750_000_000_000;
/// `slot` of record `n` is `BASE_SLOT + n`: what a read checks.
pub const BASE_SLOT: u64 = 300_000_000;

/// 88 pseudo-random base58 characters, like a real signature (incompressible).
pub fn signature(n: u64, salt: u64) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut x =
        (n ^ salt.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..88)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// Loaded record `n` (0-based), stamped `BASE_TS + 10 n`.
pub fn record(n: u64) -> TransactionRecord {
    build(n, 0, BASE_TS + n as i64 * 10)
}

/// A record inserted during a run (workloads D and load): its own signature space (`salt`,
/// per run) and stamped `ts` (now), so it is never due for archival.
pub fn inserted(n: u64, salt: u64, ts: i64) -> TransactionRecord {
    build(n, salt | 1, ts)
}

fn build(n: u64, salt: u64, ts: i64) -> TransactionRecord {
    let outcome = match n % 5 {
        0 => Outcome::Profit(0.01 * (n % 50) as f64),
        1 => Outcome::Loss(0.005 * (n % 40) as f64),
        2 => Outcome::Neutral,
        3 => Outcome::PendingConfirmation,
        _ => Outcome::FailedExecution,
    };
    let closed = matches!(
        outcome,
        Outcome::Profit(_) | Outcome::Loss(_) | Outcome::Neutral
    );
    TransactionRecord {
        id: None,
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                mint: format!("{:0>44}", n.wrapping_mul(7919)),
                creator: format!("{:0>44}", n.wrapping_mul(104_729)),
                program: "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P".into(),
                slot: BASE_SLOT + n,
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
        transaction_signature: Some(signature(n, salt)),
        buy_price_sol: Some(0.000_002 * (1 + n % 500) as f64),
        sell_price_sol: closed.then_some(0.000_002 * (1 + n % 700) as f64),
        amount_bought_tokens: Some(250_000.0 + n as f64),
        amount_sold_tokens: closed.then_some(250_000.0 + n as f64),
        initial_sol_spent: Some(0.25),
        final_sol_received: closed.then_some(0.25 + 0.001 * (n % 90) as f64),
        timestamp_decision_made: ts,
        timestamp_transaction_sent: Some(ts + 40),
        timestamp_outcome_evaluated: closed.then_some(ts + 30_000),
        actual_outcome: outcome,
        market_context_snapshot: [("sol_usd", 180.0), ("volume_1m", 12_000.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// What an update writes: the trade closed (outcome, sell side); signature and timestamp kept.
pub fn close(rec: &mut TransactionRecord, v: u64) {
    let sell = 0.000_001 * (1 + v % 900) as f64;
    rec.sell_price_sol = Some(sell);
    rec.amount_sold_tokens = rec.amount_bought_tokens;
    rec.final_sol_received = Some(0.2 + 0.001 * (v % 100) as f64);
    rec.timestamp_outcome_evaluated = Some(rec.timestamp_decision_made + 60_000);
    rec.actual_outcome = if v.is_multiple_of(2) {
        Outcome::Profit(0.001 * (v % 77) as f64)
    } else {
        Outcome::Loss(0.001 * (v % 55) as f64)
    };
}

/// Whether `rec` is loaded record `n` stored under `id`; `full` also compares the signature.
pub fn is_record(rec: &TransactionRecord, id: i64, n: u64, full: bool) -> bool {
    rec.id == Some(id)
        && rec.scored_candidate.base.slot == BASE_SLOT + n
        && (!full || rec.transaction_signature.as_deref() == Some(signature(n, 0).as_str()))
}
