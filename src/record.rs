//! The `Record` trait the store is generic over, and the bot's `TransactionRecord`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What the store needs from a stored type.
///
/// Only the key accessors are required; `encode`/`decode` default to a compact binary serde
/// encoding ([postcard]). That encoding is not self-describing: serde attributes that need it
/// (`skip_serializing_if`, `untagged`, `flatten`) do not round-trip. Override both methods to use
/// another codec.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use tiered_storage::Record;
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Fill { id: Option<i64>, sig: Option<String>, at_ms: i64, qty: f64 }
///
/// impl Record for Fill {
///     fn id(&self) -> Option<i64> { self.id }
///     fn set_id(&mut self, id: i64) { self.id = Some(id) }
///     fn signature(&self) -> Option<&str> { self.sig.as_deref() }
///     fn timestamp_ms(&self) -> i64 { self.at_ms }
/// }
/// ```
///
/// [postcard]: https://docs.rs/postcard
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The store-assigned id; `None` until `put` returns.
    fn id(&self) -> Option<i64>;
    /// Called by the store with the id it assigned. Afterwards `id()` must return `Some(id)`:
    /// the store relies on it to route, cache and page records.
    fn set_id(&mut self, id: i64);
    /// The unique transaction signature, if the record has one yet.
    fn signature(&self) -> Option<&str>;
    /// The record's time, Unix milliseconds. Ageing (hot → warm → cold) is measured from it.
    fn timestamp_ms(&self) -> i64;

    /// Append the record's encoding to `buf`.
    fn encode(&self, buf: &mut Vec<u8>) -> Result<()> {
        let out = postcard::to_extend(self, std::mem::take(buf)).map_err(|e| Error::Codec {
            op: "encode",
            id: self.id(),
            message: e.to_string(),
        })?;
        *buf = out;
        Ok(())
    }

    /// Decode a record written by [`Record::encode`].
    fn decode(bytes: &[u8]) -> Result<Self> {
        postcard::from_bytes(bytes).map_err(|e| Error::Codec {
            op: "decode",
            id: None,
            message: e.to_string(),
        })
    }

    /// The Arrow schema of this type's cold (Parquet) files. Column 0 must be `id` (Int64, not
    /// null) and column 1 the record's timestamp (`Timestamp(ms)` or Int64, not null).
    ///
    /// The default stores `id`, `ts`, `signature` and the [`encode`](Record::encode)d record as
    /// a `payload` binary column: real Parquet that any reader can filter by id, time and
    /// signature. [`TransactionRecord`] overrides it with one column per field.
    fn cold_schema() -> arrow_schema::SchemaRef {
        crate::columnar::generic_schema()
    }

    /// Convert records (ids set) to one batch of [`cold_schema`](Record::cold_schema).
    fn to_cold_batch(records: &[Self]) -> Result<arrow_array::RecordBatch> {
        crate::columnar::generic_to_batch(records)
    }

    /// The value of a named field as text, for scan filters (`ScanRange::with_field`). The
    /// default has no fields. [`TransactionRecord`] answers `mint`, `creator`, `program`,
    /// `outcome_kind` and `transaction_signature`, which are also its cold column names.
    fn field(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let _ = name;
        None
    }

    /// Convert a batch of [`cold_schema`](Record::cold_schema) back to records (ids set).
    fn from_cold_batch(batch: &arrow_array::RecordBatch) -> Result<Vec<Self>> {
        crate::columnar::generic_from_batch(batch)
    }
}

/// What happened to a trade. Mirrors the bot's `Outcome`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Closed with this profit, SOL.
    Profit(f64),
    /// Closed with this loss, SOL.
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
        crate::columnar::transaction_schema()
    }
    fn to_cold_batch(records: &[Self]) -> Result<arrow_array::RecordBatch> {
        crate::columnar::transaction_to_batch(records)
    }
    fn from_cold_batch(batch: &arrow_array::RecordBatch) -> Result<Vec<Self>> {
        crate::columnar::transaction_from_batch(batch)
    }
}

/// Decode a stored record and give it its id; a codec error names the id.
pub(crate) fn decode_with_id<R: Record>(id: i64, payload: &[u8]) -> Result<R> {
    let mut record = R::decode(payload).map_err(|e| match e {
        Error::Codec { op, message, .. } => Error::Codec {
            op,
            id: Some(id),
            message,
        },
        other => other,
    })?;
    record.set_id(id);
    Ok(record)
}

/// Stable 64-bit hash of a signature, stored in SQLite as the signature index key.
/// xxh3 is fixed by its spec, so stored hashes stay valid across builds.
pub(crate) fn signature_hash(sig: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(sig.as_bytes()) as i64
}

/// A record ready for the warm tier: validated, hashed and encoded on the caller's thread.
#[derive(Debug, Clone)]
pub(crate) struct EncodedRecord {
    pub id: Option<i64>,
    pub signature: Option<String>,
    pub sig_hash: Option<i64>,
    pub timestamp_ms: i64,
    pub payload: Vec<u8>,
}

impl EncodedRecord {
    /// Validate and encode. Rejects an empty signature and records over `max_bytes`.
    pub(crate) fn new<R: Record>(record: &R, max_bytes: usize) -> Result<Self> {
        let signature = match record.signature() {
            Some("") => return Err(Error::EmptySignature),
            Some(s) => Some(s.to_owned()),
            None => None,
        };
        let mut payload = Vec::with_capacity(512);
        record.encode(&mut payload)?;
        if payload.len() > max_bytes {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                max: max_bytes,
            });
        }
        Ok(Self {
            id: record.id(),
            sig_hash: signature.as_deref().map(signature_hash),
            signature,
            timestamp_ms: record.timestamp_ms(),
            payload,
        })
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
    fn encode_decode_round_trip() {
        let mut r = sample(42);
        r.id = Some(7);
        r.actual_outcome = Outcome::VerificationFailed("slippage".into());
        let mut buf = Vec::new();
        r.encode(&mut buf).unwrap();
        assert_eq!(TransactionRecord::decode(&buf).unwrap(), r);
    }

    #[test]
    fn garbage_fails_to_decode_with_a_typed_error() {
        let err = TransactionRecord::decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, Error::Codec { op: "decode", .. }));
    }

    #[test]
    fn encoded_record_validates() {
        let mut r = sample(1);
        r.transaction_signature = Some(String::new());
        assert!(matches!(
            EncodedRecord::new(&r, 1 << 16),
            Err(Error::EmptySignature)
        ));
        let r = sample(1);
        assert!(matches!(
            EncodedRecord::new(&r, 64),
            Err(Error::RecordTooLarge { max: 64, .. })
        ));
        let e = EncodedRecord::new(&r, 1 << 16).unwrap();
        assert_eq!(e.sig_hash, Some(signature_hash(r.signature().unwrap())));
        assert_eq!(e.timestamp_ms, r.timestamp_decision_made);
    }
}
