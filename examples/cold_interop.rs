//! Fixture for the DuckDB interoperability test (`scripts/duckdb_interop.sh`): archives a few
//! thousand varied trades to cold Parquet files and writes what a foreign reader must find in
//! them to `<dir>/expected.json`.
//!
//! Run: `cargo run --release --example cold_interop -- <output directory>`
//!
//! The store lives in `<dir>` (cold files under `<dir>/cold/date=YYYY-MM-DD/part-N.parquet`).
//! Small row groups and pages give every file several of each; records span several days and
//! some arrive late, so several day partitions are written at once and a day can have more than
//! one file. Updates and removes happen before archival only: a change to an archived record is
//! a tombstone in the warm catalog, which a reader of the bare files cannot know about.
//!
//! `expected.json` holds the catalogued files (path relative to the cold directory, rows), the
//! total row count, and for every archived record its id, signature, outcome (kind, value,
//! message), timestamps (Unix ms), buy price, mint and market context map. The record list is
//! read back through the store's own scan and must equal what was written; non-finite floats
//! are written as `NaN` / `Infinity` / `-Infinity`, which Python's `json` module reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use tiered_storage::{
    AutoTieringCoordinator, Outcome, PremintCandidate, ScanRange, ScoredCandidate, StorageConfig,
    TransactionRecord,
};

/// Trades stored.
const RECORDS: usize = 10_000;
/// Concurrent writer tasks.
const WRITERS: usize = 8;
/// Days the decisions span.
const DAYS: i64 = 4;
const DAY_MS: i64 = 86_400_000;
/// 2024-03-01T00:00:00Z.
const START_MS: i64 = 1_709_251_200_000;
/// Rows per row group and per data page of the cold files (the configured minimums are 1024
/// and 64): a day's file has several of each.
const ROW_GROUP_ROWS: usize = 1024;
const DATA_PAGE_ROWS: usize = 64;
/// Day partitions written at once: late records reopen a day whose file was closed early, so
/// some days get more than one file.
const MAX_OPEN_PARTITIONS: usize = 2;
/// Warm rows read per archival step: the pass takes several.
const ARCHIVE_BATCH_ROWS: usize = 4000;
/// Records updated, then removed, before archival.
const UPDATES: usize = 60;
const REMOVES: usize = 40;

/// pump.fun's program id, and another launch program.
const PUMP_FUN: &str = "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P";
const OTHER_PROGRAM: &str = "LanMV9sAd7wArD4vJFi2qDdfnVhFxYSUg6eADduJ3uj";
const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const MARKET_KEYS: [&str; 6] = [
    "sol_usd",
    "pool_liquidity_sol",
    "volatility_1m",
    "bonding_curve_progress",
    "priority_fee_lamports",
    "slot_lag",
];
const ERRORS: [&str; 4] = [
    "rpc: blockhash not found",
    "simulation failed: custom program error: 0x1771",
    "send: connection reset by peer",
    "jito: bundle dropped \"tip too low\"",
];

#[tokio::main]
async fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .context("usage: cold_interop <output directory>")?,
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;

    let mut config = StorageConfig::default().with_data_dir(&dir);
    config.cold.row_group_rows = ROW_GROUP_ROWS;
    config.cold.data_page_rows = DATA_PAGE_ROWS;
    config.cold.max_open_partitions = MAX_OPEN_PARTITIONS;
    config.cold.archive_batch_rows = ARCHIVE_BATCH_ROWS;
    let store = Arc::new(AutoTieringCoordinator::new(config).await?);
    ensure!(
        store.get_stats().await?.total_records == 0,
        "{} already holds a store: use an empty directory",
        dir.display()
    );

    // Store.
    let mut rng = Rng(0x5EED_C01D);
    let mut model: Vec<TransactionRecord> = (0..RECORDS).map(|i| trade(&mut rng, i)).collect();
    let shared = Arc::new(model.clone());
    let mut tasks = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let (store, records) = (Arc::clone(&store), Arc::clone(&shared));
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..RECORDS).step_by(WRITERS) {
                ids.push((i, store.put(&records[i]).await?));
            }
            anyhow::Ok(ids)
        }));
    }
    for task in tasks {
        for (i, id) in task.await.context("writer task panicked")?? {
            model[i].id = Some(id);
        }
    }

    // Update some trades (fill in outcomes, sign a record that had no signature), then remove
    // others, all while they are still in warm.
    for k in 0..UPDATES {
        let i = (k * 61 + 7) % RECORDS;
        let r = &mut model[i];
        if r.transaction_signature.is_none() {
            r.transaction_signature = Some(rng.base58(88));
        }
        let pnl = rng.range(-0.4, 0.9);
        r.actual_outcome = if pnl >= 0.0 {
            Outcome::Profit(pnl)
        } else {
            Outcome::Loss(-pnl)
        };
        r.sell_price_sol = Some(rng.range(1.0e-8, 1.2e-7));
        r.final_sol_received = Some(0.5 + pnl);
        r.timestamp_outcome_evaluated = Some(r.timestamp_decision_made + 90_000);
        r.market_context_snapshot.insert(
            "exit_slippage_bps".to_owned(),
            rng.range(0.0, 300.0).round(),
        );
        store.update(r).await?;
    }
    let mut removed = Vec::new();
    for k in 0..REMOVES {
        let i = (k * 97 + 3) % RECORDS;
        let id = model[i].id.expect("stored");
        if !removed.contains(&i) {
            store.remove(id).await?;
            removed.push(i);
        }
    }
    removed.sort_unstable();
    for &i in removed.iter().rev() {
        model.remove(i);
    }
    model.sort_by_key(|r| r.id);

    // Archive everything; nothing is changed afterwards, so the files alone are the truth.
    let report = store.archive_older_than(i64::MAX).await?;
    let stats = store.get_stats().await?;
    ensure!(
        stats.warm_records == 0,
        "everything is archived, but warm holds {}",
        stats.warm_records
    );
    ensure!(
        report.archived == model.len() as u64 && report.superseded == 0,
        "archival report {report:?}, expected {} records archived",
        model.len()
    );
    let cold = store.cold_tier();
    let cold_stats = cold.cold_stats()?;
    ensure!(cold_stats.dead_rows == 0, "no tombstones: {cold_stats:?}");
    ensure!(cold_stats.rows == model.len() as u64, "{cold_stats:?}");
    let files = cold.files()?;
    ensure!(
        files.len() as u64 == report.files,
        "{report:?} vs {files:?}"
    );
    ensure!(
        files.iter().any(|f| f.rows > ROW_GROUP_ROWS as u64),
        "no file has more than one row group; the fixture is meant to exercise several: {files:?}"
    );

    // Read everything back through the store: all of it comes from cold.
    let mut scanned = Vec::with_capacity(model.len());
    let mut cursor = store.scan(ScanRange::default(), 1000)?;
    while let Some(page) = cursor.next_page().await? {
        scanned.extend(page);
    }
    ensure!(
        scanned.len() == model.len(),
        "scan returned {}",
        scanned.len()
    );
    for (got, want) in scanned.iter().zip(&model) {
        ensure!(
            same(got, want),
            "record {:?} read back differs:\n{got:?}\n!=\n{want:?}",
            want.id
        );
    }

    let expected = expected_json(&files, &scanned);
    let path = dir.join("expected.json");
    std::fs::write(&path, expected).with_context(|| format!("write {}", path.display()))?;
    let days: std::collections::BTreeSet<&str> = files
        .iter()
        .filter_map(|f| f.path.split('/').next())
        .collect();
    println!(
        "cold_interop: {} records ({} updated, {} removed before archival) in {} files over {} \
         day partitions; {} bytes of Parquet",
        scanned.len(),
        UPDATES,
        removed.len(),
        files.len(),
        days.len(),
        cold_stats.bytes
    );
    println!("{}", cold.root().display());
    deletes_phase(&dir.join("deletes"), &mut rng).await
}

/// Archived trades corrected and removed after archival, then a second archival: the archive
/// read through its delete files (`scripts/duckdb_deletes.sql`, `scripts/polars_deletes.py`)
/// must give the store's answer. Writes `<dir>/expected.json`: per UTC day the row count and
/// PnL (Profit v → v, Loss v → -|v|, Neutral → 0, other kinds no PnL), and every id.
async fn deletes_phase(dir: &std::path::Path, rng: &mut Rng) -> Result<()> {
    const TRADES: usize = 3_000;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut config = StorageConfig::default().with_data_dir(dir);
    config.cold.row_group_rows = ROW_GROUP_ROWS;
    config.cold.data_page_rows = DATA_PAGE_ROWS;
    config.cold.archive_batch_rows = ARCHIVE_BATCH_ROWS;
    let store = AutoTieringCoordinator::new(config).await?;
    let mut ids = Vec::with_capacity(TRADES);
    for i in 0..TRADES {
        ids.push(store.put(&trade(rng, i)).await?);
    }
    store.archive_older_than(i64::MAX).await?;
    // Correct 10 archived trades and remove 5. Eight corrections move to the next day, so
    // their dead copies stay listed in their old partition's delete file; two stay on the
    // store's last day, so archival must first rewrite that partition's file (a partition
    // never holds a dead and a live copy of one id). The removes are on other days.
    let mut days_of = Vec::with_capacity(ids.len());
    for &id in &ids {
        let r = store.get(id).await?.context("archived trade")?;
        days_of.push(utc_day(r.timestamp_decision_made));
    }
    let last_day = days_of.iter().max().context("trades")?.clone();
    let same_day: Vec<i64> = ids
        .iter()
        .zip(&days_of)
        .filter(|(_, d)| **d == last_day)
        .map(|(&id, _)| id)
        .step_by(53)
        .take(2)
        .collect();
    let moved: Vec<i64> = ids
        .iter()
        .zip(&days_of)
        .filter(|(_, d)| **d != last_day)
        .map(|(&id, _)| id)
        .step_by(97)
        .take(8)
        .collect();
    for (n, &id) in moved.iter().chain(&same_day).enumerate() {
        let mut r = store.get(id).await?.context("archived trade")?;
        r.actual_outcome = Outcome::Profit(100.0 + n as f64);
        if n < moved.len() {
            r.timestamp_decision_made += 86_400_000;
        }
        store.update(&r).await?;
    }
    let removable: Vec<i64> = ids
        .iter()
        .zip(&days_of)
        .filter(|(id, d)| **d != last_day && !moved.contains(id))
        .map(|(&id, _)| id)
        .skip(5)
        .step_by(211)
        .take(5)
        .collect();
    for &id in &removable {
        store.remove(id).await?;
    }
    // Readers see the corrections before the second archival lands the new versions.
    store.publish_deletes().await?;
    store.archive_older_than(i64::MAX).await?;
    store.shutdown().await?;
    ensure!(store.get_stats().await?.warm_records == 0, "all archived");

    // The store's own answer over the cold tier (everything is in cold now).
    let mut days: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut all_ids = Vec::new();
    let mut cursor = store.scan(ScanRange::default(), 1000)?;
    while let Some(page) = cursor.next_page().await? {
        for r in page {
            all_ids.push(r.id.context("stored id")?);
            let day = utc_day(r.timestamp_decision_made);
            let e = days.entry(day).or_default();
            e.0 += 1;
            e.1 += match &r.actual_outcome {
                Outcome::Profit(v) => *v,
                Outcome::Loss(v) => -v.abs(),
                _ => 0.0,
            };
        }
    }
    let mut out = String::from("{\n\"days\": {");
    for (n, (day, (count, pnl))) in days.iter().enumerate() {
        let sep = if n == 0 { "" } else { ", " };
        let _ = write!(
            out,
            "{sep}\"{day}\": {{\"rows\": {count}, \"pnl\": {pnl:?}}}"
        );
    }
    let _ = write!(out, "}},\n\"ids\": {all_ids:?}\n}}\n");
    let path = dir.join("expected.json");
    std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))?;
    println!(
        "cold_interop: deletes phase: {} records over {} days after 10 corrections and 5 removes of archived trades",
        all_ids.len(),
        days.len()
    );
    Ok(())
}

/// `YYYY-MM-DD` (UTC) of a Unix-ms timestamp.
fn utc_day(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Equality with NaN equal to itself (records are compared by their encoding).
fn same(a: &TransactionRecord, b: &TransactionRecord) -> bool {
    use tiered_storage::Record;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.encode(&mut x).is_ok() && b.encode(&mut y).is_ok() && x == y
}

fn expected_json(files: &[tiered_storage::CatalogEntry], records: &[TransactionRecord]) -> String {
    let mut out = String::with_capacity(records.len() * 512);
    out.push_str("{\n\"total_rows\": ");
    let _ = write!(out, "{},\n\"files\": [", records.len());
    for (n, f) in files.iter().enumerate() {
        let sep = if n == 0 { "\n" } else { ",\n" };
        let _ = write!(
            out,
            "{sep}  {{\"path\": {}, \"rows\": {}, \"min_id\": {}, \"max_id\": {}}}",
            json_str(&f.path),
            f.rows,
            f.min_id,
            f.max_id
        );
    }
    out.push_str("\n],\n\"records\": [");
    for (n, r) in records.iter().enumerate() {
        let (value, message) = match &r.actual_outcome {
            Outcome::Profit(v) | Outcome::Loss(v) => (Some(*v), None),
            Outcome::ExecutionError(m) | Outcome::VerificationFailed(m) => (None, Some(m.as_str())),
            _ => (None, None),
        };
        let sep = if n == 0 { "\n" } else { ",\n" };
        let _ = write!(
            out,
            "{sep}  {{\"id\": {}, \"signature\": {}, \"outcome_kind\": {}, \"outcome_value\": {}, \
             \"outcome_message\": {}, \"timestamp_decision_made\": {}, \
             \"timestamp_transaction_sent\": {}, \"buy_price_sol\": {}, \"mint\": {}, \
             \"market_context_snapshot\": {}}}",
            r.id.expect("stored records carry their id"),
            opt(r.transaction_signature.as_deref(), json_str),
            json_str(r.actual_outcome.kind()),
            opt(value, json_f64),
            opt(message, json_str),
            r.timestamp_decision_made,
            opt(r.timestamp_transaction_sent, |t| t.to_string()),
            opt(r.buy_price_sol, json_f64),
            json_str(&r.scored_candidate.base.mint),
            json_map(&r.market_context_snapshot),
        );
    }
    out.push_str("\n]\n}\n");
    out
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| "null".to_owned(), f)
}

/// A JSON number; the shortest representation that reads back as the same f64.
fn json_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "Infinity".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".to_owned()
    } else {
        format!("{v:?}")
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_map(map: &BTreeMap<String, f64>) -> String {
    let entries: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_f64(*v)))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// splitmix64: deterministic, so every run writes the same data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn base58(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| BASE58[self.below(BASE58.len() as u64) as usize] as char)
            .collect()
    }
}

/// When trade `i` was decided: evenly over [`DAYS`] days, with some decisions exactly on a
/// midnight (or a millisecond before it) and some arriving hours late, into an earlier day.
fn decided_ms(rng: &mut Rng, i: usize) -> i64 {
    let step = DAYS * DAY_MS / RECORDS as i64;
    let t = START_MS + i as i64 * step + rng.below(step as u64) as i64;
    match i % 250 {
        0 => START_MS + (t - START_MS) / DAY_MS * DAY_MS,
        1 => START_MS + (t - START_MS) / DAY_MS * DAY_MS - 1,
        _ if i % 37 == 5 => (t - rng.below(30 * 3_600_000) as i64).max(START_MS),
        _ => t,
    }
}

/// A varied trade: every outcome, optional fields both set and unset, maps of several sizes
/// (empty, odd keys, non-finite and negative-zero values).
fn trade(rng: &mut Rng, i: usize) -> TransactionRecord {
    let decided = decided_ms(rng, i);
    let outcome = match i % 9 {
        0 => Outcome::Profit(rng.range(0.0, 2.5)),
        1 => Outcome::Loss(rng.range(0.0, 0.5)),
        2 => Outcome::Neutral,
        3 => Outcome::PendingConfirmation,
        4 => Outcome::FailedExecution,
        5 => Outcome::NotExecuted,
        6 => Outcome::ConfirmationTimeout,
        7 => Outcome::ExecutionError(ERRORS[rng.below(ERRORS.len() as u64) as usize].to_owned()),
        _ => Outcome::VerificationFailed(if i.is_multiple_of(2) {
            String::new()
        } else {
            format!("slippage {} bps over limit", rng.below(500))
        }),
    };
    let executed = !matches!(outcome, Outcome::NotExecuted);
    // Solana signatures are 64 bytes in base58: 87 or 88 characters.
    let signature = (executed && !i.is_multiple_of(13))
        .then(|| rng.base58(if i.is_multiple_of(10) { 87 } else { 88 }));
    let mut market = BTreeMap::new();
    for key in MARKET_KEYS {
        if rng.below(3) != 0 {
            market.insert(key.to_owned(), (rng.range(0.0, 1000.0) * 1e4).round() / 1e4);
        }
    }
    match i % 101 {
        0 => market.clear(),
        1 => {
            market.insert("spread \"bid/ask\"\n".to_owned(), -0.0);
        }
        2 => {
            market.insert("momentum ✓ é".to_owned(), f64::INFINITY);
            market.insert("drawdown".to_owned(), f64::NEG_INFINITY);
        }
        3 => {
            market.insert("volatility_1m".to_owned(), f64::NAN);
        }
        4 => {
            market.insert("tiny".to_owned(), f64::MIN_POSITIVE);
            market.insert("huge".to_owned(), f64::MAX);
        }
        _ => {}
    }
    let mut features = BTreeMap::new();
    for key in ["liquidity", "holder_distribution", "volume_growth"] {
        if rng.below(4) != 0 {
            features.insert(key.to_owned(), rng.unit());
        }
    }
    let score = (rng.unit() * 100.0) as u8;
    let final_outcome = matches!(
        outcome,
        Outcome::Profit(_) | Outcome::Loss(_) | Outcome::Neutral
    );
    TransactionRecord {
        id: None,
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                // Mints repeat: several decisions about one token.
                mint: format!("{}pump", Rng(i as u64 / 3).base58(40)),
                creator: rng.base58(44),
                program: if i.is_multiple_of(17) {
                    OTHER_PROGRAM
                } else {
                    PUMP_FUN
                }
                .to_owned(),
                slot: 345_000_000 + i as u64 * 2,
                timestamp: decided - 40 - rng.below(200) as i64,
                instruction_summary: (!i.is_multiple_of(5)).then(|| "create + buy".to_owned()),
                is_jito_bundle: (!i.is_multiple_of(7)).then(|| rng.below(4) == 0),
            },
            predicted_score: score,
            feature_scores: features,
            reason: format!("score {score}: early liquidity and holder spread"),
            calculation_time_us: 35 + rng.below(120),
            anomaly_detected: rng.below(50) == 0,
            timestamp: decided - 5,
        },
        transaction_signature: signature,
        buy_price_sol: executed.then(|| rng.range(2.0e-8, 9.0e-8)),
        sell_price_sol: final_outcome.then(|| rng.range(1.0e-8, 1.2e-7)),
        amount_bought_tokens: executed.then(|| rng.range(1e6, 5e7).round()),
        amount_sold_tokens: final_outcome.then(|| rng.range(1e6, 5e7).round()),
        initial_sol_spent: executed.then(|| [0.1, 0.25, 0.5, 1.0][rng.below(4) as usize]),
        final_sol_received: final_outcome.then(|| rng.range(0.0, 3.0)),
        timestamp_decision_made: decided,
        timestamp_transaction_sent: executed.then(|| decided + 20 + rng.below(400) as i64),
        timestamp_outcome_evaluated: final_outcome.then(|| decided + 60_000),
        actual_outcome: outcome,
        market_context_snapshot: market,
    }
}
