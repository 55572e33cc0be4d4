//! The `records` table's columns, and their values read straight out of Arrow arrays.
//!
//! One column per column of `R::cold_schema()`, then `ts_ms` (the record timestamp, INTEGER
//! Unix ms), `date` (its UTC day, TEXT `YYYY-MM-DD`: the archive's hive partition column, as
//! DuckDB and Polars see it) and `pnl` (REAL, from `outcome_kind` + `outcome_value`, when the
//! schema has both).
//! Integers, timestamps (as Unix ms) and booleans (0/1) are INTEGER; floats REAL; strings TEXT;
//! binary BLOB; maps, lists and structs JSON TEXT.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use crate::error::{Error, Result};

/// Name of the extra column holding the record timestamp in Unix ms.
pub(super) const TS_MS: &str = "ts_ms";
/// Name of the extra column holding the record's UTC day, `YYYY-MM-DD`.
pub(super) const DATE: &str = "date";
/// Name of the extra column holding the signed PnL.
pub(super) const PNL: &str = "pnl";
/// Milliseconds in a UTC day.
const DAY_MS: i64 = 86_400_000;
/// Cold-schema columns that carry the record's signature, in the order they are looked for.
const SIGNATURE_COLUMNS: [&str; 2] = ["transaction_signature", "signature"];

/// What a column of the virtual table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Column `i` of the cold schema.
    Cold(usize),
    /// `ts_ms`: the cold schema's column 1 (the record timestamp) as Unix ms.
    TsMs,
    /// `date`: the UTC day of the record timestamp, `YYYY-MM-DD`.
    Date,
    /// `pnl`: Profit → value, Loss → -|value|, Neutral → 0, other kinds NULL.
    Pnl { kind: usize, value: usize },
}

/// The virtual table's columns, from the record type's cold schema.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub schema: SchemaRef,
    pub names: Vec<String>,
    pub sources: Vec<Source>,
    /// The virtual-table column holding the signature (its equality is pushed down).
    pub signature: Option<usize>,
}

impl Layout {
    pub fn new(schema: SchemaRef) -> Self {
        let fields = schema.fields();
        let mut names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        let mut sources: Vec<Source> = (0..fields.len()).map(Source::Cold).collect();
        let has = |name: &str| fields.iter().any(|f| f.name() == name);
        if !has(TS_MS) {
            names.push(TS_MS.to_owned());
            sources.push(Source::TsMs);
        }
        if !has(DATE) {
            names.push(DATE.to_owned());
            sources.push(Source::Date);
        }
        let kind = schema.index_of("outcome_kind").ok();
        let value = schema.index_of("outcome_value").ok();
        if let (Some(kind), Some(value), false) = (kind, value, has(PNL)) {
            if fields[kind].data_type() == &DataType::Utf8
                && fields[value].data_type() == &DataType::Float64
            {
                names.push(PNL.to_owned());
                sources.push(Source::Pnl { kind, value });
            }
        }
        let signature = SIGNATURE_COLUMNS.iter().find_map(|name| {
            let i = schema.index_of(name).ok()?;
            (fields[i].data_type() == &DataType::Utf8).then_some(i)
        });
        Self {
            schema,
            names,
            sources,
            signature,
        }
    }

    /// The `CREATE TABLE` statement declaring the columns to SQLite.
    pub fn declaration(&self) -> String {
        let mut sql = String::from("CREATE TABLE x(");
        for (i, (name, source)) in self.names.iter().zip(&self.sources).enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let declared = match source {
                Source::Cold(c) => declared_type(self.schema.field(*c).data_type()),
                Source::TsMs => "INTEGER",
                Source::Date => "TEXT",
                Source::Pnl { .. } => "REAL",
            };
            let _ = write!(sql, "\"{}\" {declared}", name.replace('"', "\"\""));
        }
        sql.push(')');
        sql
    }

    /// Whether virtual-table column `i` is a view of the record timestamp (cold column 1 or
    /// `ts_ms`).
    pub fn is_timestamp(&self, i: usize) -> bool {
        matches!(self.sources.get(i), Some(Source::TsMs | Source::Cold(1)))
    }

    /// The name of virtual-table column `i` if it is a text (Utf8) column of the cold schema
    /// other than the signature: its equalities are pushed down as scan filters.
    pub fn text_column(&self, i: usize) -> Option<&str> {
        match self.sources.get(i)? {
            Source::Cold(c) if Some(i) != self.signature => {
                let field = self.schema.field(*c);
                (field.data_type() == &DataType::Utf8).then(|| field.name().as_str())
            }
            _ => None,
        }
    }

    /// The cold columns the virtual-table columns in `used` read (`col_used`: bit `i` for
    /// column `i`, bit 63 for every column from 63 on), always with `id` and the timestamp.
    pub fn cold_columns(&self, used: u64) -> Vec<usize> {
        let mut cold = vec![0, 1];
        for (i, source) in self.sources.iter().enumerate() {
            if used & (1u64 << i.min(63)) == 0 {
                continue;
            }
            match *source {
                Source::Cold(c) => cold.push(c),
                Source::TsMs | Source::Date => {}
                Source::Pnl { kind, value } => cold.extend([kind, value]),
            }
        }
        cold.sort_unstable();
        cold.dedup();
        cold
    }
}

fn declared_type(t: &DataType) -> &'static str {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Boolean
        | DataType::Timestamp(..) => "INTEGER",
        DataType::Float32 | DataType::Float64 => "REAL",
        DataType::Binary | DataType::LargeBinary => "BLOB",
        _ => "TEXT",
    }
}

/// One value, borrowed from a batch, as SQLite takes it.
pub(super) enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    /// Text built for the value: JSON of a nested value, or the `date` column.
    Json(String),
}

/// A batch of rows with each virtual-table column resolved to its array.
pub(super) struct Rows {
    batch: RecordBatch,
    /// Per virtual-table column: where its values are in `batch`.
    columns: Vec<Option<Column>>,
}

#[derive(Clone, Copy)]
enum Column {
    Plain(usize),
    /// The UTC day of the timestamp column at this position.
    Date(usize),
    Pnl {
        kind: usize,
        value: usize,
    },
}

impl Rows {
    /// Resolve `layout`'s columns against `batch` by name (a projected batch holds only some).
    pub fn new(layout: &Layout, batch: RecordBatch) -> Self {
        let schema = batch.schema();
        let find = |c: usize| schema.index_of(layout.schema.field(c).name()).ok();
        let columns = layout
            .sources
            .iter()
            .map(|source| match *source {
                Source::Cold(c) => find(c).map(Column::Plain),
                Source::TsMs => find(1).map(Column::Plain),
                Source::Date => find(1).map(Column::Date),
                Source::Pnl { kind, value } => Some(Column::Pnl {
                    kind: find(kind)?,
                    value: find(value)?,
                }),
            })
            .collect();
        Self { batch, columns }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// The value of virtual-table column `col` at `row`. A column the batch does not hold
    /// (not asked for when the scan was planned) is an error, never a silent NULL.
    pub fn value(&self, col: usize, row: usize) -> Result<Value<'_>> {
        match self.columns.get(col).copied().flatten() {
            Some(Column::Plain(c)) => value_at(self.batch.column(c), row),
            Some(Column::Date(c)) => {
                let array = self.batch.column(c);
                Ok(match array.data_type() {
                    _ if array.is_null(row) => Value::Null,
                    DataType::Timestamp(unit, _) => {
                        let ms = timestamp_ms(array.as_ref(), *unit, row);
                        Value::Json(crate::cold_storage::day_string(ms.div_euclid(DAY_MS)))
                    }
                    DataType::Int64 => {
                        let ms = array.as_primitive::<Int64Type>().value(row);
                        Value::Json(crate::cold_storage::day_string(ms.div_euclid(DAY_MS)))
                    }
                    other => return Err(unsupported(other)),
                })
            }
            Some(Column::Pnl { kind, value }) => {
                let kinds = self.batch.column(kind).as_string_opt::<i32>();
                let values = self.batch.column(value).as_primitive_opt::<Float64Type>();
                let (Some(kinds), Some(values)) = (kinds, values) else {
                    return Err(Error::InvalidQuery {
                        message: "`pnl` needs a Utf8 `outcome_kind` and a Float64 `outcome_value`"
                            .into(),
                    });
                };
                if kinds.is_null(row) {
                    return Ok(Value::Null);
                }
                let v = (!values.is_null(row)).then(|| values.value(row));
                Ok(match (kinds.value(row), v) {
                    ("Profit", Some(v)) => Value::Real(v),
                    ("Loss", Some(v)) => Value::Real(-v.abs()),
                    // Neutral carries no value.
                    ("Neutral", _) => Value::Real(0.0),
                    _ => Value::Null,
                })
            }
            None => Err(Error::InvalidQuery {
                message: format!("column {col} was not read by this scan"),
            }),
        }
    }
}

fn unsupported(t: &DataType) -> Error {
    Error::InvalidQuery {
        message: format!("a column of Arrow type {t} cannot be read through SQL"),
    }
}

/// Value `row` of `array`.
fn value_at(array: &ArrayRef, row: usize) -> Result<Value<'_>> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    macro_rules! int {
        ($t:ty) => {
            Value::Integer(array.as_primitive::<$t>().value(row) as i64)
        };
    }
    Ok(match array.data_type() {
        DataType::Int64 => int!(Int64Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int8 => int!(Int8Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            match i64::try_from(v) {
                Ok(v) => Value::Integer(v),
                Err(_) => Value::Real(v as f64),
            }
        }
        DataType::Float64 => Value::Real(array.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Value::Real(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Boolean => Value::Integer(i64::from(array.as_boolean().value(row))),
        DataType::Timestamp(unit, _) => Value::Integer(timestamp_ms(array, *unit, row)),
        DataType::Utf8 => Value::Text(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::Text(array.as_string::<i64>().value(row)),
        DataType::Binary => Value::Blob(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Value::Blob(array.as_binary::<i64>().value(row)),
        DataType::Map(..) | DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) => {
            let mut out = String::new();
            json(array.as_ref(), row, &mut out)?;
            Value::Json(out)
        }
        other => return Err(unsupported(other)),
    })
}

fn timestamp_ms(array: &dyn Array, unit: TimeUnit, row: usize) -> i64 {
    match unit {
        TimeUnit::Second => array
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .saturating_mul(1000),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
            .div_euclid(1000),
        TimeUnit::Nanosecond => array
            .as_primitive::<TimestampNanosecondType>()
            .value(row)
            .div_euclid(1_000_000),
    }
}

/// Append value `row` of `array` as JSON: maps with string keys as objects, lists as arrays,
/// structs as objects, non-finite floats as `null`.
fn json(array: &dyn Array, row: usize, out: &mut String) -> Result<()> {
    if array.is_null(row) {
        out.push_str("null");
        return Ok(());
    }
    macro_rules! num {
        ($t:ty) => {{
            let _ = write!(out, "{}", array.as_primitive::<$t>().value(row));
        }};
    }
    match array.data_type() {
        DataType::Int64 => num!(Int64Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int8 => num!(Int8Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row), out),
        DataType::Float32 => float(
            f64::from(array.as_primitive::<Float32Type>().value(row)),
            out,
        ),
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Timestamp(unit, _) => {
            let _ = write!(out, "{}", timestamp_ms(array, *unit, row));
        }
        DataType::Utf8 => string(array.as_string::<i32>().value(row), out),
        DataType::LargeUtf8 => string(array.as_string::<i64>().value(row), out),
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref(), out)?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref(), out)?,
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            let keys = entries.column(0);
            let values = entries.column(1);
            let text_keys = matches!(keys.data_type(), DataType::Utf8 | DataType::LargeUtf8);
            out.push(if text_keys { '{' } else { '[' });
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                if text_keys {
                    json(keys.as_ref(), i, out)?;
                    out.push(':');
                    json(values.as_ref(), i, out)?;
                } else {
                    out.push('[');
                    json(keys.as_ref(), i, out)?;
                    out.push(',');
                    json(values.as_ref(), i, out)?;
                    out.push(']');
                }
            }
            out.push(if text_keys { '}' } else { ']' });
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push('{');
            for (i, (field, column)) in fields.iter().zip(s.columns()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(field.name(), out);
                out.push(':');
                json(column.as_ref(), row, out)?;
            }
            out.push('}');
        }
        other => return Err(unsupported(other)),
    }
    Ok(())
}

fn list(items: &dyn Array, out: &mut String) -> Result<()> {
    out.push('[');
    for i in 0..items.len() {
        if i > 0 {
            out.push(',');
        }
        json(items, i, out)?;
    }
    out.push(']');
    Ok(())
}

fn float(v: f64, out: &mut String) {
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

fn string(s: &str, out: &mut String) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Outcome, Record, TransactionRecord};

    #[test]
    fn coordinator_sql_columns_follow_the_cold_schema_plus_ts_ms_date_and_pnl() {
        let layout = Layout::new(TransactionRecord::cold_schema());
        let n = TransactionRecord::cold_schema().fields().len();
        assert_eq!(layout.names.len(), n + 3);
        assert_eq!(layout.names[n], "ts_ms");
        assert_eq!(layout.names[n + 1], "date");
        assert_eq!(layout.names[n + 2], "pnl");
        assert_eq!(
            layout.names[layout.signature.unwrap()],
            "transaction_signature"
        );
        assert!(layout.is_timestamp(1) && layout.is_timestamp(n) && !layout.is_timestamp(0));
        let decl = layout.declaration();
        assert!(
            decl.starts_with("CREATE TABLE x(\"id\" INTEGER, \"timestamp_decision_made\" INTEGER")
        );
        assert!(
            decl.ends_with("\"ts_ms\" INTEGER, \"date\" TEXT, \"pnl\" REAL)"),
            "{decl}"
        );
        // pnl reads the two outcome columns; ts_ms the timestamp; id and ts always.
        let kind = TransactionRecord::cold_schema()
            .index_of("outcome_kind")
            .unwrap();
        let value = TransactionRecord::cold_schema()
            .index_of("outcome_value")
            .unwrap();
        assert_eq!(layout.cold_columns(1 << (n + 2)), vec![0, 1, kind, value]);
        assert_eq!(layout.cold_columns(1 << n), vec![0, 1]);
        assert_eq!(layout.cold_columns(1 << (n + 1)), vec![0, 1]);
        // The generic layout has a signature column and no pnl.
        let generic = Layout::new(crate::record::arrow::generic_schema());
        assert_eq!(
            generic.names,
            ["id", "ts", "signature", "payload", "ts_ms", "date"]
        );
        assert_eq!(generic.signature, Some(2));
    }

    fn n_cols(layout: &Layout, name: &str) -> usize {
        layout.names.iter().position(|n| n == name).unwrap()
    }

    #[test]
    fn coordinator_sql_values_follow_the_sign_convention_and_json() {
        let mut records = Vec::new();
        for (i, outcome) in [
            Outcome::Profit(2.5),
            Outcome::Loss(1.5),
            Outcome::Loss(-1.5),
            Outcome::Neutral,
            Outcome::NotExecuted,
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = TransactionRecord {
                id: Some(i as i64 + 1),
                timestamp_decision_made: 1_000 + i as i64,
                actual_outcome: outcome,
                ..Default::default()
            };
            r.market_context_snapshot.insert("a\"b".into(), 0.5);
            r.market_context_snapshot.insert("c".into(), f64::INFINITY);
            records.push(r);
        }
        let layout = Layout::new(TransactionRecord::cold_schema());
        let rows = Rows::new(&layout, TransactionRecord::to_cold_batch(&records).unwrap());
        let pnl = n_cols(&layout, "pnl");
        let got: Vec<Option<f64>> = (0..rows.len())
            .map(|r| match rows.value(pnl, r).unwrap() {
                Value::Real(v) => Some(v),
                Value::Null => None,
                _ => panic!("pnl is REAL or NULL"),
            })
            .collect();
        assert_eq!(got, [Some(2.5), Some(-1.5), Some(-1.5), Some(0.0), None]);
        let ctx = layout
            .names
            .iter()
            .position(|n| n == "market_context_snapshot")
            .unwrap();
        match rows.value(ctx, 0).unwrap() {
            Value::Json(j) => assert_eq!(j, r#"{"a\"b":0.5,"c":null}"#),
            _ => panic!("maps are JSON text"),
        }
        match rows.value(n_cols(&layout, "ts_ms"), 2).unwrap() {
            Value::Integer(ts) => assert_eq!(ts, 1_002),
            _ => panic!("ts_ms is INTEGER"),
        }
        // The UTC day of the timestamp, as the archive's partition directory names it.
        let mut late = records[0].clone();
        late.timestamp_decision_made = 1_750_032_000_000 + 86_400_000 - 1; // 2025-06-16 23:59:59.999
        let rows = Rows::new(&layout, TransactionRecord::to_cold_batch(&[late]).unwrap());
        match rows.value(n_cols(&layout, "date"), 0).unwrap() {
            Value::Json(d) => assert_eq!(d, "2025-06-16"),
            _ => panic!("date is TEXT"),
        }
    }
}
