//! A bot on sqlx that adopts tiered-storage: both link into one binary (one `libsqlite3-sys`,
//! 0.30.1, shared by sqlx-sqlite 0.8.x and the store's rusqlite 0.32).
//!
//! The bot keeps its own tables in sqlx (a watch list of mints and its open positions) and its
//! trades in tiered-storage. [`run`] plays a session: watch mints, open a trade per mint (a
//! `put` and a position row), close every other trade (an `update` and the position's
//! removal), archive the oldest trades to cold, then reconcile the two stores.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::Row;
use tiered_storage::{
    AutoTieringCoordinator, Outcome, PremintCandidate, ScanRange, ScoredCandidate, StorageConfig,
    TransactionRecord,
};

/// What a session did, as both stores report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The SQLite library both sides run (`sqlite_version()` through sqlx).
    pub sqlite_version: String,
    pub trades: u64,
    pub open_positions: u64,
    pub closed: u64,
    /// Realized profit minus losses, SOL, from tiered-storage's scan.
    pub realized_sol: f64,
    /// Trades that tiered-storage archived to cold.
    pub archived: u64,
}

fn signature(n: u64) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..88)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn trade(n: u64, mint: &str, ts: i64) -> TransactionRecord {
    TransactionRecord {
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                mint: mint.to_owned(),
                creator: format!("{:0>44}", n * 104_729),
                program: "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P".into(),
                slot: 300_000_000 + n,
                timestamp: ts,
                ..Default::default()
            },
            predicted_score: (n % 101) as u8,
            reason: "liquidity spike".into(),
            timestamp: ts,
            ..Default::default()
        },
        transaction_signature: Some(signature(n)),
        buy_price_sol: Some(0.000_002 * (1 + n % 50) as f64),
        amount_bought_tokens: Some(100_000.0),
        initial_sol_spent: Some(0.2),
        timestamp_decision_made: ts,
        timestamp_transaction_sent: Some(ts + 40),
        ..Default::default()
    }
}

/// Play a session of `trades` trades with the bot's sqlx database and the store both in `dir`.
pub async fn run(dir: &Path, trades: u64) -> Result<Summary> {
    // The bot's own database, through sqlx.
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("bot.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let db = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS watchlist (mint TEXT PRIMARY KEY, score INTEGER NOT NULL)",
    )
    .execute(&db)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS positions (
            trade_id INTEGER PRIMARY KEY, mint TEXT NOT NULL, tokens REAL NOT NULL, cost_sol REAL NOT NULL)",
    )
    .execute(&db)
    .await?;
    let sqlite_version: String = sqlx::query("SELECT sqlite_version()")
        .fetch_one(&db)
        .await?
        .try_get(0)?;

    // The trades, in tiered-storage.
    let store: AutoTieringCoordinator =
        AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.join("trades")))
            .await?;

    // Watch a mint per trade, then open a trade on each: the trade in the store, the
    // position in the bot's table.
    let base_ts = 1_750_000_000_000i64;
    let mut ids = Vec::new();
    for n in 0..trades {
        let mint = format!("{:0>44}", n * 7919);
        sqlx::query("INSERT INTO watchlist (mint, score) VALUES (?, ?)")
            .bind(&mint)
            .bind((n % 101) as i64)
            .execute(&db)
            .await?;
        let t = trade(n, &mint, base_ts + n as i64 * 1000);
        let id = store.put(&t).await?;
        sqlx::query("INSERT INTO positions (trade_id, mint, tokens, cost_sol) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(&mint)
            .bind(t.amount_bought_tokens)
            .bind(t.initial_sol_spent)
            .execute(&db)
            .await?;
        ids.push(id);
    }

    // Close every other trade: find the trade by its signature, record the outcome, drop the
    // position.
    let mut expected_sol = 0.0;
    let mut closed = 0;
    for (n, &id) in ids.iter().enumerate().step_by(2) {
        let mut t = store
            .get_by_signature(&signature(n as u64))
            .await?
            .with_context(|| format!("trade {n} not found by signature"))?;
        ensure!(t.id == Some(id), "trade {n}: id {:?}, expected {id}", t.id);
        let pnl = if n % 4 == 0 { 0.05 } else { -0.03 };
        t.actual_outcome = if pnl > 0.0 {
            Outcome::Profit(pnl)
        } else {
            Outcome::Loss(-pnl)
        };
        t.sell_price_sol = Some(0.000_003);
        t.final_sol_received = Some(0.2 + pnl);
        store.update(&t).await?;
        let gone = sqlx::query("DELETE FROM positions WHERE trade_id = ?")
            .bind(id)
            .execute(&db)
            .await?;
        ensure!(gone.rows_affected() == 1, "no position for trade {id}");
        expected_sol += pnl;
        closed += 1;
    }

    // Archive the older half of the trades to Parquet; reads still find them.
    let cutoff = base_ts + (trades / 2) as i64 * 1000;
    let archived = store.archive_older_than(cutoff).await?.archived;
    ensure!(
        archived == trades / 2,
        "archived {archived} of {}",
        trades / 2
    );

    // Reconcile: realized P&L from the store's scan, open positions from sqlx, every open
    // position's trade readable (from warm or cold) and still pending.
    let mut realized = 0.0;
    let mut by_outcome: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut cursor = store.scan(ScanRange::default(), 256)?;
    while let Some(t) = cursor.next().await? {
        *by_outcome.entry(t.actual_outcome.kind()).or_default() += 1;
        match t.actual_outcome {
            Outcome::Profit(s) => realized += s,
            Outcome::Loss(s) => realized -= s,
            _ => {}
        }
    }
    ensure!(
        (realized - expected_sol).abs() < 1e-9,
        "realized {realized} SOL, expected {expected_sol}"
    );
    let open: Vec<(i64, String)> =
        sqlx::query("SELECT trade_id, mint FROM positions ORDER BY trade_id")
            .fetch_all(&db)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_>>()?;
    for (id, mint) in &open {
        let t = store
            .get(*id)
            .await?
            .with_context(|| format!("open trade {id} missing"))?;
        ensure!(
            &t.scored_candidate.base.mint == mint,
            "trade {id}: mint differs"
        );
        ensure!(
            t.actual_outcome == Outcome::PendingConfirmation,
            "trade {id} is not open"
        );
    }
    let watched: i64 = sqlx::query("SELECT count(*) FROM watchlist")
        .fetch_one(&db)
        .await?
        .try_get(0)?;
    ensure!(watched as u64 == trades, "watch list holds {watched}");
    ensure!(
        by_outcome.get("PendingConfirmation").copied().unwrap_or(0) == open.len() as u64,
        "pending trades {by_outcome:?} vs {} open positions",
        open.len()
    );

    store.shutdown().await?;
    db.close().await;
    Ok(Summary {
        sqlite_version,
        trades,
        open_positions: open.len() as u64,
        closed,
        realized_sol: realized,
        archived,
    })
}
