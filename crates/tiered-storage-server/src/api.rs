//! Wire types of the HTTP API (shared with the CLI's `--format json` and `--url` mode): the
//! record as it is read from a request body (unknown fields refused), and the response bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tiered_storage::{
    Outcome, PremintCandidate, ScoredCandidate, SqlRows, SqlValue, TransactionRecord,
};

/// Parse one record from JSON in `TransactionRecord`'s serde shape, refusing unknown fields at
/// every level (the library type itself accepts them, so a misspelt field would otherwise be
/// dropped silently). `id` may be absent or null. A field left out takes its value in
/// `TransactionRecord::default()` (0, empty, `null`, `"PendingConfirmation"`), so
/// `{"transaction_signature": "5VER…", "timestamp_decision_made": 1764460800000}` is a record.
pub fn parse_record(json: &[u8]) -> Result<TransactionRecord, serde_json::Error> {
    // serde reads a struct from an array too, and with every field defaulted `[]` would be a
    // record: only an object is one.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(serde::de::Error::custom("a record is a JSON object"));
    }
    serde_json::from_slice::<RecordIn>(json).map(Into::into)
}

/// [`TransactionRecord`] with `deny_unknown_fields`. The conversion names every field, so a
/// field added to the library type fails to compile here until it is mirrored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RecordIn {
    id: Option<i64>,
    scored_candidate: ScoredCandidateIn,
    transaction_signature: Option<String>,
    buy_price_sol: Option<f64>,
    sell_price_sol: Option<f64>,
    amount_bought_tokens: Option<f64>,
    amount_sold_tokens: Option<f64>,
    initial_sol_spent: Option<f64>,
    final_sol_received: Option<f64>,
    timestamp_decision_made: i64,
    timestamp_transaction_sent: Option<i64>,
    timestamp_outcome_evaluated: Option<i64>,
    actual_outcome: Outcome,
    market_context_snapshot: BTreeMap<String, f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ScoredCandidateIn {
    base: PremintCandidateIn,
    predicted_score: u8,
    feature_scores: BTreeMap<String, f64>,
    reason: String,
    calculation_time_us: u64,
    anomaly_detected: bool,
    timestamp: i64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PremintCandidateIn {
    mint: String,
    creator: String,
    program: String,
    slot: u64,
    timestamp: i64,
    instruction_summary: Option<String>,
    is_jito_bundle: Option<bool>,
}

impl From<RecordIn> for TransactionRecord {
    fn from(r: RecordIn) -> Self {
        let RecordIn {
            id,
            scored_candidate,
            transaction_signature,
            buy_price_sol,
            sell_price_sol,
            amount_bought_tokens,
            amount_sold_tokens,
            initial_sol_spent,
            final_sol_received,
            timestamp_decision_made,
            timestamp_transaction_sent,
            timestamp_outcome_evaluated,
            actual_outcome,
            market_context_snapshot,
        } = r;
        let ScoredCandidateIn {
            base,
            predicted_score,
            feature_scores,
            reason,
            calculation_time_us,
            anomaly_detected,
            timestamp,
        } = scored_candidate;
        let PremintCandidateIn {
            mint,
            creator,
            program,
            slot,
            timestamp: base_timestamp,
            instruction_summary,
            is_jito_bundle,
        } = base;
        TransactionRecord {
            id,
            scored_candidate: ScoredCandidate {
                base: PremintCandidate {
                    mint,
                    creator,
                    program,
                    slot,
                    timestamp: base_timestamp,
                    instruction_summary,
                    is_jito_bundle,
                },
                predicted_score,
                feature_scores,
                reason,
                calculation_time_us,
                anomaly_detected,
                timestamp,
            },
            transaction_signature,
            buy_price_sol,
            sell_price_sol,
            amount_bought_tokens,
            amount_sold_tokens,
            initial_sol_spent,
            final_sol_received,
            timestamp_decision_made,
            timestamp_transaction_sent,
            timestamp_outcome_evaluated,
            actual_outcome,
            market_context_snapshot,
        }
    }
}

/// `{"id": N}`: the answer to a put or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    /// The record's id.
    pub id: i64,
}

/// The answer to `POST /v1/records:batch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// One entry per line of the body: the new record's id, or null for a blank or bad line.
    pub ids: Vec<Option<i64>>,
    /// The bad lines, in line order.
    pub errors: Vec<BatchLineError>,
}

/// One bad line of a batch: nothing was written for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLineError {
    /// 1-based line number.
    pub line: u64,
    /// Stable error code (see [`ErrorBody`]).
    pub code: String,
    /// One line saying what is wrong.
    pub message: String,
}

/// A page of `GET /v1/records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordPage {
    /// Matching records in id order.
    pub records: Vec<TransactionRecord>,
    /// The `after` value of the next page; null on the last page.
    pub next: Option<String>,
}

/// `GET /v1/records/recent`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentRecords {
    /// The most recently put records still stored, highest id first.
    pub records: Vec<TransactionRecord>,
}

/// `POST /v1/admin/archive`'s optional body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRequest {
    /// Archive warm records older than this (a duration such as `7d` or `0s`); the store's
    /// `tiering.warm_to_cold_age` when absent.
    pub older_than: Option<String>,
}

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` member of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code: the library's `Error::code()`, or one of the service's own
    /// (`bad_request`, `unauthorized`, `payload_too_large`, `route_not_found`,
    /// `method_not_allowed`, `timeout`, `shutting_down`, `overloaded`).
    pub code: String,
    /// What went wrong, on one line.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_record() -> TransactionRecord {
        TransactionRecord {
            id: Some(7),
            scored_candidate: ScoredCandidate {
                base: PremintCandidate {
                    mint: "mint".into(),
                    creator: "creator".into(),
                    program: "program".into(),
                    slot: 312_000_000,
                    timestamp: 1,
                    instruction_summary: Some("create+buy".into()),
                    is_jito_bundle: Some(true),
                },
                predicted_score: 87,
                feature_scores: BTreeMap::from([("liquidity".to_owned(), 0.82)]),
                reason: "reason".into(),
                calculation_time_us: 42,
                anomaly_detected: true,
                timestamp: 2,
            },
            transaction_signature: Some("sig".into()),
            buy_price_sol: Some(0.1),
            sell_price_sol: Some(0.2),
            amount_bought_tokens: Some(3.0),
            amount_sold_tokens: Some(4.0),
            initial_sol_spent: Some(0.5),
            final_sol_received: Some(0.6),
            timestamp_decision_made: 3,
            timestamp_transaction_sent: Some(4),
            timestamp_outcome_evaluated: Some(5),
            actual_outcome: Outcome::ExecutionError("boom".into()),
            market_context_snapshot: BTreeMap::from([("sol_usd".to_owned(), 236.4)]),
        }
    }

    #[test]
    fn the_library_serde_shape_parses_back_to_the_same_record() {
        let record = full_record();
        let json = serde_json::to_vec(&record).unwrap();
        assert_eq!(parse_record(&json).unwrap(), record);
        let default = TransactionRecord::default();
        assert_eq!(
            parse_record(&serde_json::to_vec(&default).unwrap()).unwrap(),
            default
        );
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let base = serde_json::to_value(full_record()).unwrap();
        for pointer in ["", "/scored_candidate", "/scored_candidate/base"] {
            let mut v = base.clone();
            v.pointer_mut(pointer)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("surprise".into(), 1.into());
            let err = parse_record(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(
                err.to_string().contains("unknown field `surprise`"),
                "{err}"
            );
        }
        // Map keys are data, not fields.
        let mut v = base;
        v["market_context_snapshot"]["anything"] = 1.5.into();
        assert!(parse_record(&serde_json::to_vec(&v).unwrap()).is_ok());
    }

    #[test]
    fn absent_options_and_null_id_are_accepted() {
        let mut v = serde_json::to_value(TransactionRecord::default()).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("id");
        obj.remove("buy_price_sol");
        assert_eq!(
            parse_record(&serde_json::to_vec(&v).unwrap()).unwrap(),
            TransactionRecord::default()
        );
    }

    #[test]
    fn fields_left_out_take_the_default_records_values() {
        assert_eq!(parse_record(b"{}").unwrap(), TransactionRecord::default());
        let got = parse_record(
            br#"{"transaction_signature":"s1","timestamp_decision_made":7,
                 "scored_candidate":{"base":{"mint":"M"}},"actual_outcome":{"Profit":0.5}}"#,
        )
        .unwrap();
        let mut want = TransactionRecord {
            transaction_signature: Some("s1".into()),
            timestamp_decision_made: 7,
            actual_outcome: tiered_storage::Outcome::Profit(0.5),
            ..Default::default()
        };
        want.scored_candidate.base.mint = "M".into();
        assert_eq!(got, want);
        // Left out is not the same as wrong: a field of the wrong type is still refused, and
        // so is anything but an object.
        for not_an_object in [&b"[]"[..], b" [1]", b"null", b"7", b"\"{}\"", b""] {
            assert!(parse_record(not_an_object).is_err());
        }
        assert!(parse_record(br#"{"timestamp_decision_made":"soon"}"#).is_err());
        assert!(parse_record(br#"{"scored_candidate":{"bas":{}}}"#).is_err());
    }
}

/// `POST /v1/sql`'s body: one read-only statement over the table `records`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// The statement, e.g. `SELECT count(*) FROM records WHERE ts_ms >= 1764460800000`.
    pub sql: String,
}

/// `POST /v1/sql`'s answer: the column names and the rows, each a list of values in column
/// order (see [`sql_value_json`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SqlResponse {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each one value per column.
    pub rows: Vec<Vec<serde_json::Value>>,
}

impl From<SqlRows> for SqlResponse {
    fn from(rows: SqlRows) -> Self {
        Self {
            columns: rows.columns,
            rows: rows
                .rows
                .iter()
                .map(|row| row.iter().map(sql_value_json).collect())
                .collect(),
        }
    }
}

/// One SQL value as JSON: NULL → `null`, INTEGER and REAL → numbers (a non-finite REAL →
/// `null`), TEXT → a string, BLOB → a string of lowercase hex digits. The CLI's `sql
/// --format json` prints the same.
pub fn sql_value_json(value: &SqlValue) -> serde_json::Value {
    match value {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        SqlValue::Text(t) => t.clone().into(),
        SqlValue::Blob(b) => hex(b).into(),
    }
}

/// Lowercase hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}
