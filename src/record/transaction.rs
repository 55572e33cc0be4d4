//! The bot's `TransactionRecord` and the types it is built from: the store's default record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Record;
use crate::error::{Error, Result};

/// What happened to a trade. Mirrors the bot's `Outcome`.
///
/// **Sign convention.** `Profit` and `Loss` both hold a SOL amount: `Profit(v)` gained `v`,
/// `Loss(v)` lost `v`. [`pnl`](Self::pnl) turns either into a signed profit-and-loss, and the
/// store's aggregates, SQL `pnl` column and the DuckDB/Polars recipes all use the same rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Closed with this profit, SOL (positive).
    Profit(f64),
    /// Closed with this loss, SOL, as a positive amount: `Loss(0.12)` is 0.12 SOL lost, a PnL
    /// of -0.12. `outcome_value` in cold files holds the amount as given; a negative amount
    /// (`Loss(-0.12)`, as some bots write it) is read as the same loss: PnL is `-|v|`.
    Loss(f64),
    /// Closed flat.
    Neutral,
    /// Sent; waiting for confirmation.
    #[default]
    PendingConfirmation,
    /// The transaction failed on chain.
    FailedExecution,
    /// The bot decided not to trade.
    NotExecuted,
    /// No confirmation arrived in time.
    ConfirmationTimeout,
    /// Sending failed with this error.
    ExecutionError(String),
    /// Post-trade verification failed with this reason.
    VerificationFailed(String),
}

impl Outcome {
    /// Every variant's name, in declaration order: the values [`kind`](Self::kind) gives and the
    /// `outcome_kind` column of cold files holds (what an outcome filter may name).
    ///
    /// ```
    /// use tiered_storage::Outcome;
    /// let all = [Outcome::Profit(1.0), Outcome::Loss(1.0), Outcome::Neutral,
    ///     Outcome::PendingConfirmation, Outcome::FailedExecution, Outcome::NotExecuted,
    ///     Outcome::ConfirmationTimeout, Outcome::ExecutionError("e".into()),
    ///     Outcome::VerificationFailed("v".into())];
    /// assert_eq!(all.map(|o| o.kind()), Outcome::KINDS);
    /// ```
    pub const KINDS: [&'static str; 9] = [
        "Profit",
        "Loss",
        "Neutral",
        "PendingConfirmation",
        "FailedExecution",
        "NotExecuted",
        "ConfirmationTimeout",
        "ExecutionError",
        "VerificationFailed",
    ];

    /// The variant's name, e.g. `"Profit"`: the `outcome_kind` column of cold files.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Profit(_) => "Profit",
            Outcome::Loss(_) => "Loss",
            Outcome::Neutral => "Neutral",
            Outcome::PendingConfirmation => "PendingConfirmation",
            Outcome::FailedExecution => "FailedExecution",
            Outcome::NotExecuted => "NotExecuted",
            Outcome::ConfirmationTimeout => "ConfirmationTimeout",
            Outcome::ExecutionError(_) => "ExecutionError",
            Outcome::VerificationFailed(_) => "VerificationFailed",
        }
    }

    /// The variant as an [`OutcomeKind`], e.g. for an outcome filter.
    ///
    /// ```
    /// use tiered_storage::{Outcome, OutcomeKind};
    /// assert_eq!(Outcome::Loss(0.2).outcome_kind(), OutcomeKind::Loss);
    /// ```
    pub fn outcome_kind(&self) -> OutcomeKind {
        match self {
            Outcome::Profit(_) => OutcomeKind::Profit,
            Outcome::Loss(_) => OutcomeKind::Loss,
            Outcome::Neutral => OutcomeKind::Neutral,
            Outcome::PendingConfirmation => OutcomeKind::PendingConfirmation,
            Outcome::FailedExecution => OutcomeKind::FailedExecution,
            Outcome::NotExecuted => OutcomeKind::NotExecuted,
            Outcome::ConfirmationTimeout => OutcomeKind::ConfirmationTimeout,
            Outcome::ExecutionError(_) => OutcomeKind::ExecutionError,
            Outcome::VerificationFailed(_) => OutcomeKind::VerificationFailed,
        }
    }

    /// The trade's signed profit and loss in SOL: `Profit(v)` → `v`, `Loss(v)` → `-|v|` (a loss
    /// is stored as the amount lost; a negative amount is read as the same loss), `Neutral` →
    /// `0.0`, every other kind → `None` (the trade did not close, so it has no PnL).
    ///
    /// In SQL over the archive's columns:
    /// `CASE outcome_kind WHEN 'Profit' THEN outcome_value WHEN 'Loss' THEN -abs(outcome_value)
    /// WHEN 'Neutral' THEN 0.0 END`.
    ///
    /// ```
    /// use tiered_storage::Outcome;
    /// assert_eq!(Outcome::Profit(0.3).pnl(), Some(0.3));
    /// assert_eq!(Outcome::Loss(0.2).pnl(), Some(-0.2));
    /// assert_eq!(Outcome::Loss(-0.2).pnl(), Some(-0.2));
    /// assert_eq!(Outcome::Neutral.pnl(), Some(0.0));
    /// assert_eq!(Outcome::ConfirmationTimeout.pnl(), None);
    /// ```
    pub fn pnl(&self) -> Option<f64> {
        match self {
            Outcome::Profit(v) => Some(*v),
            Outcome::Loss(v) => Some(-v.abs()),
            Outcome::Neutral => Some(0.0),
            _ => None,
        }
    }
}

/// The kind of an [`Outcome`], without its value: what outcome filters take
/// ([`ScanRange::with_outcome`](crate::ScanRange::with_outcome)). One variant per `Outcome`
/// variant, same names and order as [`Outcome::KINDS`]; the name is the `outcome_kind` column
/// of cold files.
///
/// Parsing a name that is not a kind is [`Error::InvalidQuery`] naming the valid ones:
///
/// ```
/// use tiered_storage::{Error, OutcomeKind};
/// let kind: OutcomeKind = "Loss".parse()?;
/// assert_eq!(kind, OutcomeKind::Loss);
/// assert_eq!(kind.to_string(), "Loss");
/// assert!(matches!("Los".parse::<OutcomeKind>(), Err(Error::InvalidQuery { .. })));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OutcomeKind {
    /// [`Outcome::Profit`].
    Profit,
    /// [`Outcome::Loss`].
    Loss,
    /// [`Outcome::Neutral`].
    Neutral,
    /// [`Outcome::PendingConfirmation`].
    PendingConfirmation,
    /// [`Outcome::FailedExecution`].
    FailedExecution,
    /// [`Outcome::NotExecuted`].
    NotExecuted,
    /// [`Outcome::ConfirmationTimeout`].
    ConfirmationTimeout,
    /// [`Outcome::ExecutionError`].
    ExecutionError,
    /// [`Outcome::VerificationFailed`].
    VerificationFailed,
}

impl OutcomeKind {
    /// Every kind, in the order of [`Outcome::KINDS`].
    pub const ALL: [OutcomeKind; 9] = [
        OutcomeKind::Profit,
        OutcomeKind::Loss,
        OutcomeKind::Neutral,
        OutcomeKind::PendingConfirmation,
        OutcomeKind::FailedExecution,
        OutcomeKind::NotExecuted,
        OutcomeKind::ConfirmationTimeout,
        OutcomeKind::ExecutionError,
        OutcomeKind::VerificationFailed,
    ];

    /// The kind's name, e.g. `"Loss"` (the `outcome_kind` column's value).
    pub fn as_str(self) -> &'static str {
        Outcome::KINDS[self as usize]
    }

    /// Whether outcomes of this kind have a PnL (see [`Outcome::pnl`]): `Profit`, `Loss` and
    /// `Neutral`.
    pub fn has_pnl(self) -> bool {
        matches!(
            self,
            OutcomeKind::Profit | OutcomeKind::Loss | OutcomeKind::Neutral
        )
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OutcomeKind {
    type Err = Error;

    /// The kind with exactly this name (case-sensitive, as stored).
    fn from_str(s: &str) -> Result<Self> {
        OutcomeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidQuery {
                message: format!(
                    "`{s}` is not an outcome kind; use one of {}",
                    Outcome::KINDS.join(", ")
                ),
            })
    }
}

/// A token launch seen before it trades. Mirrors the bot's `PremintCandidate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PremintCandidate {
    /// Token mint address.
    pub mint: String,
    /// Creator wallet.
    pub creator: String,
    /// Launch program id.
    pub program: String,
    /// Slot the launch was seen in.
    pub slot: u64,
    /// When it was discovered, Unix ms.
    pub timestamp: i64,
    /// Decoded instruction summary, if any.
    pub instruction_summary: Option<String>,
    /// Whether it arrived in a Jito bundle.
    pub is_jito_bundle: Option<bool>,
}

/// A candidate after scoring. Mirrors the bot's `ScoredCandidate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoredCandidate {
    /// The candidate.
    pub base: PremintCandidate,
    /// Predicted score, 0–100.
    pub predicted_score: u8,
    /// Per-feature scores.
    pub feature_scores: BTreeMap<String, f64>,
    /// Human-readable reason for the score.
    pub reason: String,
    /// Scoring time, µs.
    pub calculation_time_us: u64,
    /// Whether the scorer flagged an anomaly.
    pub anomaly_detected: bool,
    /// When it was scored, Unix ms.
    pub timestamp: i64,
}

/// One trading decision and its result: the built-in record type. Mirrors the bot's
/// `TransactionRecord`; timestamps are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TransactionRecord {
    /// Assigned by `put`.
    pub id: Option<i64>,
    /// The scored candidate the decision was made on.
    pub scored_candidate: ScoredCandidate,
    /// The on-chain signature, once sent. Unique across the store.
    pub transaction_signature: Option<String>,
    /// Buy price, SOL per token.
    pub buy_price_sol: Option<f64>,
    /// Sell price, SOL per token.
    pub sell_price_sol: Option<f64>,
    /// Tokens bought.
    pub amount_bought_tokens: Option<f64>,
    /// Tokens sold.
    pub amount_sold_tokens: Option<f64>,
    /// SOL spent on the buy.
    pub initial_sol_spent: Option<f64>,
    /// SOL received from the sell.
    pub final_sol_received: Option<f64>,
    /// When the decision was made, Unix ms. This is the record's timestamp for ageing.
    pub timestamp_decision_made: i64,
    /// When the transaction was sent, Unix ms.
    pub timestamp_transaction_sent: Option<i64>,
    /// When the outcome was evaluated, Unix ms.
    pub timestamp_outcome_evaluated: Option<i64>,
    /// The result.
    pub actual_outcome: Outcome,
    /// Market context at decision time.
    pub market_context_snapshot: BTreeMap<String, f64>,
}

impl Record for TransactionRecord {
    fn id(&self) -> Option<i64> {
        self.id
    }
    fn set_id(&mut self, id: i64) {
        self.id = Some(id);
    }
    fn signature(&self) -> Option<&str> {
        self.transaction_signature.as_deref()
    }
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_decision_made
    }
    fn field(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let base = &self.scored_candidate.base;
        Some(std::borrow::Cow::Borrowed(match name {
            "mint" => &base.mint,
            "creator" => &base.creator,
            "program" => &base.program,
            "outcome_kind" => self.actual_outcome.kind(),
            "transaction_signature" => self.transaction_signature.as_deref()?,
            _ => return None,
        }))
    }
    fn cold_schema() -> arrow_schema::SchemaRef {
        super::arrow::transaction_schema()
    }
    fn to_cold_batch(records: &[Self]) -> Result<arrow_array::RecordBatch> {
        super::arrow::transaction_to_batch(records)
    }
    fn from_cold_batch(batch: &arrow_array::RecordBatch) -> Result<Vec<Self>> {
        super::arrow::transaction_from_batch(batch)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A realistic record with an 88-character signature, for tests across the crate.
    pub(crate) fn sample(n: u64) -> TransactionRecord {
        let mut features = BTreeMap::new();
        features.insert("liquidity".to_owned(), 0.5 + (n % 7) as f64 / 10.0);
        features.insert("holder_spread".to_owned(), (n % 13) as f64 / 13.0);
        let mut market = BTreeMap::new();
        market.insert("sol_usd".to_owned(), 150.0 + (n % 50) as f64);
        TransactionRecord {
            id: None,
            scored_candidate: ScoredCandidate {
                base: PremintCandidate {
                    mint: format!("Mint{n:040}"),
                    creator: format!("Creator{n:037}"),
                    program: "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P".to_owned(),
                    slot: 250_000_000 + n,
                    timestamp: 1_700_000_000_000 + n as i64,
                    instruction_summary: Some("create+buy".to_owned()),
                    is_jito_bundle: Some(n.is_multiple_of(2)),
                },
                predicted_score: (n % 101) as u8,
                feature_scores: features,
                reason: "strong early liquidity".to_owned(),
                calculation_time_us: 40 + n % 100,
                anomaly_detected: n.is_multiple_of(17),
                timestamp: 1_700_000_000_000 + n as i64,
            },
            transaction_signature: Some(format!("{n:0>88}")),
            buy_price_sol: Some(0.000_001 * (1 + n % 1000) as f64),
            sell_price_sol: None,
            amount_bought_tokens: Some(1_000_000.0),
            amount_sold_tokens: None,
            initial_sol_spent: Some(0.5),
            final_sol_received: None,
            timestamp_decision_made: 1_700_000_000_000 + n as i64,
            timestamp_transaction_sent: Some(1_700_000_000_050 + n as i64),
            timestamp_outcome_evaluated: None,
            actual_outcome: Outcome::PendingConfirmation,
            market_context_snapshot: market,
        }
    }

    #[test]
    fn transaction_fields_answer_scan_filters() {
        let mut r = sample(3);
        r.actual_outcome = Outcome::Loss(-0.25);
        assert_eq!(r.timestamp_ms(), r.timestamp_decision_made);
        assert_eq!(
            r.field("program").as_deref(),
            Some(r.scored_candidate.base.program.as_str())
        );
        assert_eq!(r.field("outcome_kind").as_deref(), Some("Loss"));
        assert_eq!(r.field("transaction_signature").as_deref(), r.signature());
        assert_eq!(r.field("no_such_field"), None);
        r.transaction_signature = None;
        assert_eq!(r.field("transaction_signature"), None);
    }

    #[test]
    fn outcome_kinds_match_outcomes_and_parse_back() {
        let all = [
            Outcome::Profit(1.0),
            Outcome::Loss(1.0),
            Outcome::Neutral,
            Outcome::PendingConfirmation,
            Outcome::FailedExecution,
            Outcome::NotExecuted,
            Outcome::ConfirmationTimeout,
            Outcome::ExecutionError("e".into()),
            Outcome::VerificationFailed("v".into()),
        ];
        for (i, o) in all.iter().enumerate() {
            let kind = o.outcome_kind();
            assert_eq!(kind, OutcomeKind::ALL[i]);
            assert_eq!(kind.as_str(), o.kind());
            assert_eq!(kind.to_string().parse::<OutcomeKind>().unwrap(), kind);
            assert_eq!(kind.has_pnl(), o.pnl().is_some());
        }
        for bad in ["Los", "loss", "", " Loss", "Profit(1)"] {
            let err = bad.parse::<OutcomeKind>().unwrap_err();
            assert_eq!(err.code(), "invalid_query");
            assert!(err.to_string().contains("VerificationFailed"), "{err}");
        }
    }

    #[test]
    fn pnl_follows_the_sign_convention() {
        assert_eq!(Outcome::Profit(0.5).pnl(), Some(0.5));
        assert_eq!(Outcome::Loss(0.25).pnl(), Some(-0.25));
        assert_eq!(Outcome::Loss(-0.25).pnl(), Some(-0.25));
        assert_eq!(Outcome::Neutral.pnl(), Some(0.0));
        assert_eq!(Outcome::ExecutionError("x".into()).pnl(), None);
        assert_eq!(Outcome::PendingConfirmation.pnl(), None);
    }
}
