//! Columnar (Arrow) form of records, used by the cold tier's Parquet files.
//!
//! Two layouts:
//! - **generic** (the [`Record`] default): `id`, `ts`, `signature` and the record's own encoding
//!   as a `payload` binary column;
//! - **transaction** ([`TransactionRecord`]): one column per field, flattened, so DuckDB, Polars
//!   and Spark read the history with no code of ours.
//!
//! Both put `id` (Int64, not null) in column 0 and the record's timestamp (Timestamp(ms, UTC),
//! not null) in column 1: the cold tier prunes and looks up by those two. Decoding looks columns
//! up by name and checks every type, so a batch with a missing or mistyped column is a typed
//! [`Error::Codec`], never a panic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, MapBuilder, MapFieldNames,
    StringBuilder, TimestampMillisecondBuilder, UInt64Builder, UInt8Builder,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, MapArray, RecordBatch,
    StringArray, TimestampMillisecondArray, UInt64Array, UInt8Array,
};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

use super::{Outcome, PremintCandidate, Record, ScoredCandidate, TransactionRecord};
use crate::error::{Error, Result};

/// Field metadata key marking a leaf column whose values repeat enough for Parquet dictionary
/// encoding to pay. The cold writer turns dictionaries on for these leaves only: a dictionary
/// page is read on every point lookup, so it must stay small.
pub(crate) const DICTIONARY_HINT_KEY: &str = "tiered_storage.dictionary";

/// Time zone of every timestamp column.
const UTC: &str = "UTC";

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()))
}

fn dictionary_hint(field: Field) -> Field {
    field.with_metadata(HashMap::from([(
        DICTIONARY_HINT_KEY.to_owned(),
        "true".to_owned(),
    )]))
}

/// The key and value fields of a `Map<Utf8, Float64>` column. Keys are feature / market names
/// drawn from a small set, so they carry the dictionary hint; values are measurements.
fn map_key_value_fields() -> (FieldRef, FieldRef) {
    (
        Arc::new(dictionary_hint(Field::new("key", DataType::Utf8, false))),
        Arc::new(Field::new("value", DataType::Float64, false)),
    )
}

fn map_type() -> DataType {
    let (key, value) = map_key_value_fields();
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(vec![key, value].into()),
            false,
        )),
        false,
    )
}

fn encode_err(id: Option<i64>, message: impl Into<String>) -> Error {
    Error::Codec {
        op: "encode",
        id,
        message: message.into(),
    }
}

fn decode_err(id: Option<i64>, message: impl Into<String>) -> Error {
    Error::Codec {
        op: "decode",
        id,
        message: message.into(),
    }
}

fn arrow_encode_err(e: arrow_schema::ArrowError) -> Error {
    encode_err(None, format!("cannot build the cold batch: {e}"))
}

/// The record's id, which the cold tier requires.
fn stored_id<R: Record>(record: &R) -> Result<i64> {
    record.id().ok_or_else(|| {
        encode_err(
            None,
            "record has no id: only stored records (ids assigned) go to the cold tier",
        )
    })
}

/// Column `name` of `batch`, downcast to `A`.
fn column<'a, A: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a A> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| decode_err(None, format!("cold batch has no column `{name}`")))?;
    col.as_any().downcast_ref::<A>().ok_or_else(|| {
        decode_err(
            None,
            format!(
                "cold column `{name}` has type {}, expected {}",
                col.data_type(),
                std::any::type_name::<A>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("?")
            ),
        )
    })
}

/// Like [`column()`], for a column that must not hold nulls.
fn required<'a, A: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a A> {
    let col = column::<A>(batch, name)?;
    if col.null_count() > 0 {
        return Err(decode_err(
            None,
            format!("cold column `{name}` holds nulls but the field is not optional"),
        ));
    }
    Ok(col)
}

macro_rules! opt {
    ($array:expr, $row:expr) => {
        $array.is_valid($row).then(|| $array.value($row))
    };
}

// ---------------------------------------------------------------------------------------------
// Generic layout

/// Schema of the generic layout: `id`, `ts`, `signature`, `payload` (the [`Record::encode`]d
/// record).
pub(crate) fn generic_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("ts", timestamp_type(), false),
                Field::new("signature", DataType::Utf8, true),
                Field::new("payload", DataType::Binary, false),
            ]))
        })
        .clone()
}

/// Records (ids set) to one batch of [`generic_schema`].
pub(crate) fn generic_to_batch<R: Record>(records: &[R]) -> Result<RecordBatch> {
    let n = records.len();
    let mut ids = Int64Builder::with_capacity(n);
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone(UTC);
    let mut sigs = StringBuilder::with_capacity(n, n * 88);
    let mut payloads = BinaryBuilder::with_capacity(n, n * 256);
    let mut buf = Vec::with_capacity(512);
    for r in records {
        ids.append_value(stored_id(r)?);
        ts.append_value(r.timestamp_ms());
        sigs.append_option(r.signature());
        buf.clear();
        r.encode(&mut buf)?;
        payloads.append_value(&buf);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(ts.finish()),
        Arc::new(sigs.finish()),
        Arc::new(payloads.finish()),
    ];
    RecordBatch::try_new(generic_schema(), columns).map_err(arrow_encode_err)
}

/// A batch of [`generic_schema`] back to records: decodes `payload` and sets the id from `id`.
pub(crate) fn generic_from_batch<R: Record>(batch: &RecordBatch) -> Result<Vec<R>> {
    let ids = required::<Int64Array>(batch, "id")?;
    let payloads = required::<BinaryArray>(batch, "payload")?;
    (0..batch.num_rows())
        .map(|row| super::decode_with_id(ids.value(row), payloads.value(row)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// TransactionRecord layout

/// Names of the [`Outcome`] variants, as stored in `outcome_kind`.
const OUTCOME_KINDS: [&str; 9] = Outcome::KINDS;

/// `(outcome_kind, outcome_value, outcome_message)`.
fn outcome_columns(outcome: &Outcome) -> (&'static str, Option<f64>, Option<&str>) {
    match outcome {
        Outcome::Profit(v) => (OUTCOME_KINDS[0], Some(*v), None),
        Outcome::Loss(v) => (OUTCOME_KINDS[1], Some(*v), None),
        Outcome::Neutral => (OUTCOME_KINDS[2], None, None),
        Outcome::PendingConfirmation => (OUTCOME_KINDS[3], None, None),
        Outcome::FailedExecution => (OUTCOME_KINDS[4], None, None),
        Outcome::NotExecuted => (OUTCOME_KINDS[5], None, None),
        Outcome::ConfirmationTimeout => (OUTCOME_KINDS[6], None, None),
        Outcome::ExecutionError(m) => (OUTCOME_KINDS[7], None, Some(m)),
        Outcome::VerificationFailed(m) => (OUTCOME_KINDS[8], None, Some(m)),
    }
}

fn outcome_from_columns(
    id: i64,
    kind: &str,
    value: Option<f64>,
    message: Option<&str>,
) -> Result<Outcome> {
    let bad = |what: &str| {
        decode_err(
            Some(id),
            format!("outcome_kind `{kind}` with {what} outcome_value/outcome_message"),
        )
    };
    Ok(match (kind, value, message) {
        ("Profit", Some(v), None) => Outcome::Profit(v),
        ("Loss", Some(v), None) => Outcome::Loss(v),
        ("Neutral", None, None) => Outcome::Neutral,
        ("PendingConfirmation", None, None) => Outcome::PendingConfirmation,
        ("FailedExecution", None, None) => Outcome::FailedExecution,
        ("NotExecuted", None, None) => Outcome::NotExecuted,
        ("ConfirmationTimeout", None, None) => Outcome::ConfirmationTimeout,
        ("ExecutionError", None, Some(m)) => Outcome::ExecutionError(m.to_owned()),
        ("VerificationFailed", None, Some(m)) => Outcome::VerificationFailed(m.to_owned()),
        (k, _, _) if OUTCOME_KINDS.contains(&k) => return Err(bad("unexpected")),
        _ => {
            return Err(decode_err(
                Some(id),
                format!("unknown outcome_kind `{kind}`"),
            ))
        }
    })
}

/// Schema of the [`TransactionRecord`] layout: one column per field, flattened.
pub(crate) fn transaction_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = timestamp_type;
            let f64_opt = |name: &str| Field::new(name, DataType::Float64, true);
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("timestamp_decision_made", ts(), false),
                Field::new("transaction_signature", DataType::Utf8, true),
                Field::new("mint", DataType::Utf8, false),
                Field::new("creator", DataType::Utf8, false),
                dictionary_hint(Field::new("program", DataType::Utf8, false)),
                Field::new("slot", DataType::UInt64, false),
                Field::new("candidate_timestamp", ts(), false),
                dictionary_hint(Field::new("instruction_summary", DataType::Utf8, true)),
                Field::new("is_jito_bundle", DataType::Boolean, true),
                Field::new("predicted_score", DataType::UInt8, false),
                Field::new("feature_scores", map_type(), false),
                dictionary_hint(Field::new("reason", DataType::Utf8, false)),
                Field::new("calculation_time_us", DataType::UInt64, false),
                Field::new("anomaly_detected", DataType::Boolean, false),
                Field::new("scored_timestamp", ts(), false),
                f64_opt("buy_price_sol"),
                f64_opt("sell_price_sol"),
                f64_opt("amount_bought_tokens"),
                f64_opt("amount_sold_tokens"),
                f64_opt("initial_sol_spent"),
                f64_opt("final_sol_received"),
                Field::new("timestamp_transaction_sent", ts(), true),
                Field::new("timestamp_outcome_evaluated", ts(), true),
                dictionary_hint(Field::new("outcome_kind", DataType::Utf8, false)),
                Field::new("outcome_value", DataType::Float64, true),
                Field::new("outcome_message", DataType::Utf8, true),
                Field::new("market_context_snapshot", map_type(), false),
            ]))
        })
        .clone()
}

fn map_builder(n: usize) -> MapBuilder<StringBuilder, Float64Builder> {
    let (key, value) = map_key_value_fields();
    let names = MapFieldNames {
        entry: "entries".to_owned(),
        key: "key".to_owned(),
        value: "value".to_owned(),
    };
    MapBuilder::with_capacity(
        Some(names),
        StringBuilder::with_capacity(n * 2, n * 24),
        Float64Builder::with_capacity(n * 2),
        n,
    )
    .with_keys_field(key)
    .with_values_field(value)
}

fn append_map(
    builder: &mut MapBuilder<StringBuilder, Float64Builder>,
    map: &BTreeMap<String, f64>,
) -> Result<()> {
    for (k, v) in map {
        builder.keys().append_value(k);
        builder.values().append_value(*v);
    }
    builder.append(true).map_err(arrow_encode_err)
}

fn map_at(map: &MapArray, column: &str, row: usize) -> Result<BTreeMap<String, f64>> {
    let keys = map
        .keys()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| decode_err(None, format!("cold column `{column}`: keys are not Utf8")))?;
    let values = map
        .values()
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| {
            decode_err(
                None,
                format!("cold column `{column}`: values are not Float64"),
            )
        })?;
    let offsets = map.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let mut out = BTreeMap::new();
    for i in start..end {
        if keys.is_null(i) || values.is_null(i) {
            return Err(decode_err(
                None,
                format!("cold column `{column}` holds a null key or value"),
            ));
        }
        out.insert(keys.value(i).to_owned(), values.value(i));
    }
    Ok(out)
}

/// [`TransactionRecord`]s (ids set) to one batch of [`transaction_schema`].
pub(crate) fn transaction_to_batch(records: &[TransactionRecord]) -> Result<RecordBatch> {
    let n = records.len();
    let ts_builder = || TimestampMillisecondBuilder::with_capacity(n).with_timezone(UTC);
    let f64_builder = || Float64Builder::with_capacity(n);

    let mut id = Int64Builder::with_capacity(n);
    let mut decision_ts = ts_builder();
    let mut signature = StringBuilder::with_capacity(n, n * 88);
    let mut mint = StringBuilder::with_capacity(n, n * 44);
    let mut creator = StringBuilder::with_capacity(n, n * 44);
    let mut program = StringBuilder::with_capacity(n, n * 44);
    let mut slot = UInt64Builder::with_capacity(n);
    let mut candidate_ts = ts_builder();
    let mut summary = StringBuilder::with_capacity(n, n * 16);
    let mut jito = BooleanBuilder::with_capacity(n);
    let mut score = UInt8Builder::with_capacity(n);
    let mut features = map_builder(n);
    let mut reason = StringBuilder::with_capacity(n, n * 24);
    let mut calc_us = UInt64Builder::with_capacity(n);
    let mut anomaly = BooleanBuilder::with_capacity(n);
    let mut scored_ts = ts_builder();
    let mut buy_price = f64_builder();
    let mut sell_price = f64_builder();
    let mut bought = f64_builder();
    let mut sold = f64_builder();
    let mut spent = f64_builder();
    let mut received = f64_builder();
    let mut sent_ts = ts_builder();
    let mut evaluated_ts = ts_builder();
    let mut outcome_kind = StringBuilder::with_capacity(n, n * 20);
    let mut outcome_value = f64_builder();
    let mut outcome_message = StringBuilder::with_capacity(n, 0);
    let mut market = map_builder(n);

    for r in records {
        let sc = &r.scored_candidate;
        let base = &sc.base;
        id.append_value(stored_id(r)?);
        decision_ts.append_value(r.timestamp_decision_made);
        signature.append_option(r.transaction_signature.as_deref());
        mint.append_value(&base.mint);
        creator.append_value(&base.creator);
        program.append_value(&base.program);
        slot.append_value(base.slot);
        candidate_ts.append_value(base.timestamp);
        summary.append_option(base.instruction_summary.as_deref());
        jito.append_option(base.is_jito_bundle);
        score.append_value(sc.predicted_score);
        append_map(&mut features, &sc.feature_scores)?;
        reason.append_value(&sc.reason);
        calc_us.append_value(sc.calculation_time_us);
        anomaly.append_value(sc.anomaly_detected);
        scored_ts.append_value(sc.timestamp);
        buy_price.append_option(r.buy_price_sol);
        sell_price.append_option(r.sell_price_sol);
        bought.append_option(r.amount_bought_tokens);
        sold.append_option(r.amount_sold_tokens);
        spent.append_option(r.initial_sol_spent);
        received.append_option(r.final_sol_received);
        sent_ts.append_option(r.timestamp_transaction_sent);
        evaluated_ts.append_option(r.timestamp_outcome_evaluated);
        let (kind, value, message) = outcome_columns(&r.actual_outcome);
        outcome_kind.append_value(kind);
        outcome_value.append_option(value);
        outcome_message.append_option(message);
        append_map(&mut market, &r.market_context_snapshot)?;
    }

    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(decision_ts.finish()),
        Arc::new(signature.finish()),
        Arc::new(mint.finish()),
        Arc::new(creator.finish()),
        Arc::new(program.finish()),
        Arc::new(slot.finish()),
        Arc::new(candidate_ts.finish()),
        Arc::new(summary.finish()),
        Arc::new(jito.finish()),
        Arc::new(score.finish()),
        Arc::new(features.finish()),
        Arc::new(reason.finish()),
        Arc::new(calc_us.finish()),
        Arc::new(anomaly.finish()),
        Arc::new(scored_ts.finish()),
        Arc::new(buy_price.finish()),
        Arc::new(sell_price.finish()),
        Arc::new(bought.finish()),
        Arc::new(sold.finish()),
        Arc::new(spent.finish()),
        Arc::new(received.finish()),
        Arc::new(sent_ts.finish()),
        Arc::new(evaluated_ts.finish()),
        Arc::new(outcome_kind.finish()),
        Arc::new(outcome_value.finish()),
        Arc::new(outcome_message.finish()),
        Arc::new(market.finish()),
    ];
    RecordBatch::try_new(transaction_schema(), columns).map_err(arrow_encode_err)
}

/// A batch of [`transaction_schema`] back to [`TransactionRecord`]s. Columns are found by name;
/// a missing or mistyped column, or a null in a required one, is [`Error::Codec`] `"decode"`.
pub(crate) fn transaction_from_batch(batch: &RecordBatch) -> Result<Vec<TransactionRecord>> {
    type Ts = TimestampMillisecondArray;
    let id = required::<Int64Array>(batch, "id")?;
    let decision_ts = required::<Ts>(batch, "timestamp_decision_made")?;
    let signature = column::<StringArray>(batch, "transaction_signature")?;
    let mint = required::<StringArray>(batch, "mint")?;
    let creator = required::<StringArray>(batch, "creator")?;
    let program = required::<StringArray>(batch, "program")?;
    let slot = required::<UInt64Array>(batch, "slot")?;
    let candidate_ts = required::<Ts>(batch, "candidate_timestamp")?;
    let summary = column::<StringArray>(batch, "instruction_summary")?;
    let jito = column::<BooleanArray>(batch, "is_jito_bundle")?;
    let score = required::<UInt8Array>(batch, "predicted_score")?;
    let features = required::<MapArray>(batch, "feature_scores")?;
    let reason = required::<StringArray>(batch, "reason")?;
    let calc_us = required::<UInt64Array>(batch, "calculation_time_us")?;
    let anomaly = required::<BooleanArray>(batch, "anomaly_detected")?;
    let scored_ts = required::<Ts>(batch, "scored_timestamp")?;
    let buy_price = column::<Float64Array>(batch, "buy_price_sol")?;
    let sell_price = column::<Float64Array>(batch, "sell_price_sol")?;
    let bought = column::<Float64Array>(batch, "amount_bought_tokens")?;
    let sold = column::<Float64Array>(batch, "amount_sold_tokens")?;
    let spent = column::<Float64Array>(batch, "initial_sol_spent")?;
    let received = column::<Float64Array>(batch, "final_sol_received")?;
    let sent_ts = column::<Ts>(batch, "timestamp_transaction_sent")?;
    let evaluated_ts = column::<Ts>(batch, "timestamp_outcome_evaluated")?;
    let outcome_kind = required::<StringArray>(batch, "outcome_kind")?;
    let outcome_value = column::<Float64Array>(batch, "outcome_value")?;
    let outcome_message = column::<StringArray>(batch, "outcome_message")?;
    let market = required::<MapArray>(batch, "market_context_snapshot")?;

    (0..batch.num_rows())
        .map(|row| {
            let record_id = id.value(row);
            let with_id = |e: Error| match e {
                Error::Codec {
                    op,
                    message,
                    id: None,
                } => Error::Codec {
                    op,
                    id: Some(record_id),
                    message,
                },
                other => other,
            };
            Ok(TransactionRecord {
                id: Some(record_id),
                scored_candidate: ScoredCandidate {
                    base: PremintCandidate {
                        mint: mint.value(row).to_owned(),
                        creator: creator.value(row).to_owned(),
                        program: program.value(row).to_owned(),
                        slot: slot.value(row),
                        timestamp: candidate_ts.value(row),
                        instruction_summary: opt!(summary, row).map(str::to_owned),
                        is_jito_bundle: opt!(jito, row),
                    },
                    predicted_score: score.value(row),
                    feature_scores: map_at(features, "feature_scores", row).map_err(with_id)?,
                    reason: reason.value(row).to_owned(),
                    calculation_time_us: calc_us.value(row),
                    anomaly_detected: anomaly.value(row),
                    timestamp: scored_ts.value(row),
                },
                transaction_signature: opt!(signature, row).map(str::to_owned),
                buy_price_sol: opt!(buy_price, row),
                sell_price_sol: opt!(sell_price, row),
                amount_bought_tokens: opt!(bought, row),
                amount_sold_tokens: opt!(sold, row),
                initial_sol_spent: opt!(spent, row),
                final_sol_received: opt!(received, row),
                timestamp_decision_made: decision_ts.value(row),
                timestamp_transaction_sent: opt!(sent_ts, row),
                timestamp_outcome_evaluated: opt!(evaluated_ts, row),
                actual_outcome: outcome_from_columns(
                    record_id,
                    outcome_kind.value(row),
                    opt!(outcome_value, row),
                    opt!(outcome_message, row),
                )?,
                market_context_snapshot: map_at(market, "market_context_snapshot", row)
                    .map_err(with_id)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use proptest::prelude::*;

    fn with_id(mut r: TransactionRecord, id: i64) -> TransactionRecord {
        r.id = Some(id);
        r
    }

    /// Exact equality, NaN payloads included: compare the records' encodings.
    fn assert_same(a: &[TransactionRecord], b: &[TransactionRecord]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            let (mut ex, mut ey) = (Vec::new(), Vec::new());
            x.encode(&mut ex).unwrap();
            y.encode(&mut ey).unwrap();
            assert_eq!(ex, ey, "\n{x:?}\n!=\n{y:?}");
        }
    }

    fn all_outcomes() -> Vec<Outcome> {
        vec![
            Outcome::Profit(1.25),
            Outcome::Loss(-0.5),
            Outcome::Neutral,
            Outcome::PendingConfirmation,
            Outcome::FailedExecution,
            Outcome::NotExecuted,
            Outcome::ConfirmationTimeout,
            Outcome::ExecutionError("rpc: blockhash not found".into()),
            Outcome::VerificationFailed(String::new()),
        ]
    }

    /// Every outcome, every Option as None and as Some, empty and odd maps, special floats and
    /// extreme integers.
    fn varied() -> Vec<TransactionRecord> {
        let specials = [
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
        ];
        let mut out = Vec::new();
        for (i, outcome) in all_outcomes().into_iter().enumerate() {
            let mut r = with_id(sample(i as u64), i as i64 * 3 + 1);
            r.actual_outcome = outcome;
            if i % 2 == 1 {
                r.transaction_signature = None;
                r.buy_price_sol = None;
                r.amount_bought_tokens = None;
                r.initial_sol_spent = None;
                r.timestamp_transaction_sent = None;
                r.scored_candidate.base.instruction_summary = None;
                r.scored_candidate.base.is_jito_bundle = None;
                r.scored_candidate.feature_scores.clear();
            } else {
                r.sell_price_sol = Some(specials[i % specials.len()]);
                r.amount_sold_tokens = Some(specials[(i + 1) % specials.len()]);
                r.final_sol_received = Some(specials[(i + 2) % specials.len()]);
                r.timestamp_outcome_evaluated = Some(i64::MIN + i as i64);
                r.market_context_snapshot.insert("nan".into(), f64::NAN);
                r.market_context_snapshot
                    .insert("é ✓".into(), f64::INFINITY);
            }
            out.push(r);
        }
        let mut extreme = with_id(sample(99), i64::MAX);
        extreme.timestamp_decision_made = i64::MIN;
        extreme.scored_candidate.base.slot = u64::MAX;
        extreme.scored_candidate.base.timestamp = i64::MAX;
        extreme.scored_candidate.calculation_time_us = u64::MAX;
        extreme.scored_candidate.predicted_score = u8::MAX;
        extreme.scored_candidate.base.mint = String::new();
        extreme.actual_outcome = Outcome::Profit(f64::NAN);
        out.push(extreme);
        let mut negative = with_id(TransactionRecord::default(), -5);
        negative.actual_outcome = Outcome::Loss(f64::NEG_INFINITY);
        out.push(negative);
        out
    }

    #[test]
    fn columnar_transaction_round_trip_varied() {
        let records = varied();
        let batch = transaction_to_batch(&records).unwrap();
        assert_eq!(batch.num_rows(), records.len());
        assert_same(&transaction_from_batch(&batch).unwrap(), &records);
        // A slice decodes to the same rows (maps use the parent's offsets).
        let part = batch.slice(3, 4);
        assert_same(&transaction_from_batch(&part).unwrap(), &records[3..7]);
    }

    #[test]
    fn columnar_generic_round_trip() {
        let records = varied();
        let batch = generic_to_batch(&records).unwrap();
        assert_eq!(batch.schema(), generic_schema());
        assert_same(
            &generic_from_batch::<TransactionRecord>(&batch).unwrap(),
            &records,
        );
    }

    #[test]
    fn columnar_schemas_lead_with_id_and_timestamp() {
        for schema in [generic_schema(), transaction_schema()] {
            let id = schema.field(0);
            assert_eq!(
                (id.name().as_str(), id.data_type()),
                ("id", &DataType::Int64)
            );
            assert!(!id.is_nullable());
            assert_eq!(schema.field(1).data_type(), &timestamp_type());
            assert!(!schema.field(1).is_nullable());
        }
        let t = transaction_schema();
        assert_eq!(t.field(1).name(), "timestamp_decision_made");
        assert!(t
            .field_with_name("program")
            .unwrap()
            .metadata()
            .contains_key(DICTIONARY_HINT_KEY));
        assert!(t.field_with_name("mint").unwrap().metadata().is_empty());
        // Empty input gives an empty batch of the same schema.
        let empty = transaction_to_batch(&[]).unwrap();
        assert_eq!((empty.num_rows(), empty.schema()), (0, t));
        assert!(transaction_from_batch(&empty).unwrap().is_empty());
    }

    #[test]
    fn columnar_record_without_id_is_an_encode_error() {
        let records = [with_id(sample(1), 1), sample(2)];
        for err in [
            transaction_to_batch(&records).unwrap_err(),
            generic_to_batch(&records).unwrap_err(),
        ] {
            assert!(matches!(err, Error::Codec { op: "encode", .. }), "{err}");
        }
    }

    #[test]
    fn columnar_wrong_schema_is_a_typed_decode_error() {
        let batch = transaction_to_batch(&varied()).unwrap();
        let schema = batch.schema();
        // Each column in turn removed, then replaced by one of the wrong type.
        for i in 0..schema.fields().len() {
            let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
            let mut columns = batch.columns().to_vec();
            fields.remove(i);
            columns.remove(i);
            let missing =
                RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns.clone())
                    .unwrap();
            let err = transaction_from_batch(&missing).unwrap_err();
            assert!(matches!(err, Error::Codec { op: "decode", .. }), "{err}");

            let wrong: ArrayRef = if schema.field(i).data_type() == &DataType::Boolean {
                Arc::new(Int64Array::from(vec![0; batch.num_rows()]))
            } else {
                Arc::new(BooleanArray::from(vec![false; batch.num_rows()]))
            };
            fields.insert(
                i,
                Arc::new(Field::new(
                    schema.field(i).name(),
                    wrong.data_type().clone(),
                    false,
                )),
            );
            columns.insert(i, wrong);
            let mistyped = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
            let err = transaction_from_batch(&mistyped).unwrap_err();
            assert!(matches!(err, Error::Codec { op: "decode", .. }), "{err}");
        }
        // The generic decoder refuses the transaction layout (no payload column) and vice versa.
        let err = generic_from_batch::<TransactionRecord>(&batch).unwrap_err();
        assert!(matches!(err, Error::Codec { op: "decode", .. }), "{err}");
        let generic = generic_to_batch(&varied()).unwrap();
        let err = transaction_from_batch(&generic).unwrap_err();
        assert!(matches!(err, Error::Codec { op: "decode", .. }), "{err}");
    }

    #[test]
    fn columnar_bad_values_are_typed_decode_errors() {
        let records = vec![with_id(sample(1), 1)];
        let batch = transaction_to_batch(&records).unwrap();
        let replace = |name: &str, array: ArrayRef| {
            let schema = batch.schema();
            let i = schema.index_of(name).unwrap();
            let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
            fields[i] = Arc::new(Field::new(name, array.data_type().clone(), true));
            let mut columns = batch.columns().to_vec();
            columns[i] = array;
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
        };
        let cases = [
            replace("mint", Arc::new(StringArray::from(vec![None::<&str>]))),
            replace("outcome_kind", Arc::new(StringArray::from(vec!["Jackpot"]))),
            replace("outcome_kind", Arc::new(StringArray::from(vec!["Profit"]))),
            replace(
                "outcome_value",
                Arc::new(Float64Array::from(vec![Some(1.0)])),
            ),
        ];
        for case in cases {
            let err = transaction_from_batch(&case).unwrap_err();
            assert!(matches!(err, Error::Codec { op: "decode", .. }), "{err}");
        }
        // Undecodable payload bytes in the generic layout.
        let generic = generic_to_batch(&records).unwrap();
        let columns = vec![
            generic.column(0).clone(),
            generic.column(1).clone(),
            generic.column(2).clone(),
            Arc::new(BinaryArray::from(vec![&[0xffu8, 0xff, 0xff][..]])) as ArrayRef,
        ];
        let bad = RecordBatch::try_new(generic_schema(), columns).unwrap();
        let err = generic_from_batch::<TransactionRecord>(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Codec {
                    op: "decode",
                    id: Some(1),
                    ..
                }
            ),
            "{err}"
        );
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ]
    }

    fn any_map() -> impl Strategy<Value = BTreeMap<String, f64>> {
        proptest::collection::btree_map(".{0,12}", any_f64(), 0..5)
    }

    fn any_outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            any_f64().prop_map(Outcome::Profit),
            any_f64().prop_map(Outcome::Loss),
            Just(Outcome::Neutral),
            Just(Outcome::PendingConfirmation),
            Just(Outcome::FailedExecution),
            Just(Outcome::NotExecuted),
            Just(Outcome::ConfirmationTimeout),
            ".{0,20}".prop_map(Outcome::ExecutionError),
            ".{0,20}".prop_map(Outcome::VerificationFailed),
        ]
    }

    prop_compose! {
        fn any_record()(
            id in any::<i64>(),
            strings in proptest::collection::vec(".{0,16}", 4),
            summary in proptest::option::of(".{0,16}"),
            signature in proptest::option::of("[1-9A-Za-z]{1,88}"),
            jito in proptest::option::of(any::<bool>()),
            ints in (any::<u64>(), any::<i64>(), any::<u8>(), any::<u64>(), any::<bool>(), any::<i64>()),
            prices in proptest::collection::vec(proptest::option::of(any_f64()), 6),
            times in (any::<i64>(), proptest::option::of(any::<i64>()), proptest::option::of(any::<i64>())),
            features in any_map(),
            market in any_map(),
            outcome in any_outcome(),
        ) -> TransactionRecord {
            TransactionRecord {
                id: Some(id),
                scored_candidate: ScoredCandidate {
                    base: PremintCandidate {
                        mint: strings[0].clone(),
                        creator: strings[1].clone(),
                        program: strings[2].clone(),
                        slot: ints.0,
                        timestamp: ints.1,
                        instruction_summary: summary,
                        is_jito_bundle: jito,
                    },
                    predicted_score: ints.2,
                    feature_scores: features,
                    reason: strings[3].clone(),
                    calculation_time_us: ints.3,
                    anomaly_detected: ints.4,
                    timestamp: ints.5,
                },
                transaction_signature: signature,
                buy_price_sol: prices[0],
                sell_price_sol: prices[1],
                amount_bought_tokens: prices[2],
                amount_sold_tokens: prices[3],
                initial_sol_spent: prices[4],
                final_sol_received: prices[5],
                timestamp_decision_made: times.0,
                timestamp_transaction_sent: times.1,
                timestamp_outcome_evaluated: times.2,
                actual_outcome: outcome,
                market_context_snapshot: market,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn columnar_round_trip_proptest(records in proptest::collection::vec(any_record(), 0..20)) {
            let batch = transaction_to_batch(&records).unwrap();
            assert_same(&transaction_from_batch(&batch).unwrap(), &records);
            let batch = generic_to_batch(&records).unwrap();
            assert_same(&generic_from_batch::<TransactionRecord>(&batch).unwrap(), &records);
        }
    }
}
