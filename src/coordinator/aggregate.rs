//! Aggregates over all tiers — count, sum, min, max and average of a measure, grouped by UTC
//! day or hour or by a text column — computed on projected Arrow arrays.
//!
//! The scan under an aggregate is the projected batch scan ([`BatchScan`]): cold files are read
//! through a Parquet projection of the involved columns only (the measure's, the grouping's,
//! the filters', and `id` and the timestamp), with row groups and pages skipped by their id,
//! time and equality statistics. No record is ever built for a cold row; warm rows are
//! converted to the cold layout first, so both tiers go through the same arithmetic.

use std::collections::HashMap;

use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrowPrimitiveType, DictionaryArray, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_schema::DataType;

use super::columns::{check_filters, column_indices, BatchScan, WIDE_WINDOW};
use super::scan::ScanRange;
use crate::cold_storage::ColdArchiveStorage;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::warm_storage::WarmSqliteStorage;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Fewest ids in a slice of an aggregate run on its own thread.
const MIN_SLICE_IDS: i64 = 256;

/// An aggregate query: a [`Measure`] over the records of a [`ScanRange`], grouped by
/// [`GroupBy`]. Asked with [`aggregate`](crate::AutoTieringCoordinator::aggregate).
///
/// ```
/// use tiered_storage::{Aggregate, GroupBy, Measure, ScanRange};
/// // PnL per UTC day over a week of pump.fun trades.
/// let week = 1_700_000_000_000..=1_700_604_799_999;
/// let query = Aggregate::new(Measure::Pnl)
///     .over(ScanRange::default().with_time(week).with_program("6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P"))
///     .group_by(GroupBy::Day);
/// # let _ = query;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    range: ScanRange,
    measure: Measure,
    group_by: GroupBy,
}

impl Aggregate {
    /// `measure` over every record, in one group.
    pub fn new(measure: Measure) -> Self {
        Self {
            range: ScanRange::default(),
            measure,
            group_by: GroupBy::None,
        }
    }

    /// Only the records `range` selects (its id and time bounds and field filters).
    pub fn over(mut self, range: ScanRange) -> Self {
        self.range = range;
        self
    }

    /// One result row per group.
    pub fn group_by(mut self, group_by: GroupBy) -> Self {
        self.group_by = group_by;
        self
    }

    /// The records aggregated.
    pub fn range(&self) -> &ScanRange {
        &self.range
    }

    /// What is aggregated.
    pub fn measure(&self) -> &Measure {
        &self.measure
    }

    /// How the records are grouped.
    pub fn grouping(&self) -> &GroupBy {
        &self.group_by
    }
}

/// What an [`Aggregate`] counts, sums and ranges over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Measure {
    /// The number of records: `count` is the number of records in the group, `sum` the same
    /// number as a float, `min`, `max` and `avg` are `None`.
    Count,
    /// The trade's profit or loss in SOL, from its outcome, by the sign convention of
    /// [`Outcome::Loss`](crate::Outcome::Loss): `Profit(v)` counts `v`, `Loss(v)` counts
    /// `-|v|`, `Neutral` counts 0, and records of any other outcome have no PnL and are not
    /// counted. Needs the `outcome_kind` and `outcome_value` columns.
    Pnl,
    /// A numeric cold column (integers or floats), e.g. `"initial_sol_spent"`. Records whose
    /// value is null are not counted. Another type is [`Error::InvalidQuery`].
    Column(String),
}

impl Measure {
    /// SOL spent on the buy: `Column("initial_sol_spent")`.
    pub fn sol_spent() -> Self {
        Self::Column("initial_sol_spent".into())
    }

    /// SOL received from the sell: `Column("final_sol_received")`.
    pub fn sol_received() -> Self {
        Self::Column("final_sol_received".into())
    }

    /// Buy price, SOL per token: `Column("buy_price_sol")`.
    pub fn buy_price() -> Self {
        Self::Column("buy_price_sol".into())
    }

    /// Sell price, SOL per token: `Column("sell_price_sol")`.
    pub fn sell_price() -> Self {
        Self::Column("sell_price_sol".into())
    }
}

/// How an [`Aggregate`] groups records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum GroupBy {
    /// One group of everything ([`GroupKey::All`]); no row when nothing is counted.
    #[default]
    None,
    /// By UTC day of the record's timestamp ([`GroupKey::Day`]).
    Day,
    /// By UTC hour of the record's timestamp ([`GroupKey::Hour`]).
    Hour,
    /// By the `mint` column ([`GroupKey::Text`]).
    Mint,
    /// By the `program` column.
    Program,
    /// By the `outcome_kind` column (the [`Outcome`](crate::Outcome) kind's name).
    Outcome,
    /// By any text column of the cold schema; records whose value is null are not counted.
    /// Another type is [`Error::InvalidQuery`].
    Column(String),
}

/// The group of an [`AggregateRow`]. Ordered: by time for days and hours, by text otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    /// Everything ([`GroupBy::None`]).
    All,
    /// The UTC day starting at this Unix ms.
    Day(i64),
    /// The UTC hour starting at this Unix ms.
    Hour(i64),
    /// A text column's value.
    Text(String),
}

/// One group's result of an [`Aggregate`]. Groups where nothing was counted are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    /// The group.
    pub group: GroupKey,
    /// How many values were counted.
    pub count: u64,
    /// Their sum (for [`Measure::Count`], `count` as a float).
    pub sum: f64,
    /// The smallest value (`None` for [`Measure::Count`]).
    pub min: Option<f64>,
    /// The largest value.
    pub max: Option<f64>,
    /// `sum / count`.
    pub avg: Option<f64>,
}

/// Running count, sum, min and max of one group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Acc {
    #[inline]
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
    }

    fn row(&self, group: GroupKey, counting: bool) -> AggregateRow {
        let ranged = !counting && self.count > 0;
        AggregateRow {
            group,
            count: self.count,
            sum: self.sum,
            min: ranged.then_some(self.min),
            max: ranged.then_some(self.max),
            avg: ranged.then(|| self.sum / self.count as f64),
        }
    }
}

/// What to read per row: the measure.
#[derive(Debug, Clone, Copy)]
enum Value {
    Count,
    /// Roots of `outcome_kind` and `outcome_value`.
    Pnl(usize, usize),
    /// Root of a numeric column.
    Column(usize),
}

/// The key per row.
#[derive(Debug, Clone, Copy)]
enum Key {
    All,
    /// Bucket width in ms of the timestamp (column 1).
    Time(i64),
    /// Root of a text column.
    Text(usize),
}

/// A validated aggregate: the columns it reads and how.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    value: Value,
    key: Key,
    roots: Vec<usize>,
}

fn invalid(message: String) -> Error {
    Error::InvalidQuery { message }
}

impl Plan {
    /// Check `query` against `R`'s cold schema: [`Error::InvalidQuery`] for an unknown column,
    /// a measure that is not numeric, a grouping that is not text, or PnL of a record type with
    /// no outcome columns.
    pub(crate) fn new<R: Record>(query: &Aggregate) -> Result<Self> {
        let schema = R::cold_schema();
        let mut roots = Vec::new();
        let value = match &query.measure {
            Measure::Count => Value::Count,
            Measure::Pnl => {
                let cols = column_indices::<R>(&["outcome_kind", "outcome_value"]).map_err(|_| {
                    invalid("PnL needs the `outcome_kind` and `outcome_value` columns, which this record type does not have".into())
                })?;
                if schema.field(cols[0]).data_type() != &DataType::Utf8
                    || schema.field(cols[1]).data_type() != &DataType::Float64
                {
                    return Err(invalid(
                        "PnL needs `outcome_kind` text and `outcome_value` Float64 columns".into(),
                    ));
                }
                roots.extend_from_slice(&cols);
                Value::Pnl(cols[0], cols[1])
            }
            Measure::Column(name) => {
                let root = column_indices::<R>(&[name.as_str()])?[0];
                let ty = schema.field(root).data_type();
                if !is_numeric(ty) {
                    return Err(invalid(format!(
                        "cannot aggregate `{name}`: it is {ty}, not a numeric column"
                    )));
                }
                roots.push(root);
                Value::Column(root)
            }
        };
        let text = |name: &str| -> Result<Key> {
            let root = column_indices::<R>(&[name])?[0];
            let ty = schema.field(root).data_type();
            if ty != &DataType::Utf8 {
                return Err(invalid(format!(
                    "cannot group by `{name}`: it is {ty}, not a text column"
                )));
            }
            Ok(Key::Text(root))
        };
        let key = match &query.group_by {
            GroupBy::None => Key::All,
            GroupBy::Day => Key::Time(DAY_MS),
            GroupBy::Hour => Key::Time(HOUR_MS),
            GroupBy::Mint => text("mint")?,
            GroupBy::Program => text("program")?,
            GroupBy::Outcome => text("outcome_kind")?,
            GroupBy::Column(name) => text(name)?,
        };
        if let Key::Text(root) = key {
            roots.push(root);
        }
        query.range.validate::<R>()?;
        if query.range.limit.is_some() {
            return Err(invalid(
                "an aggregate covers every record the range selects; leave the limit out".into(),
            ));
        }
        // Filters compare text columns (checked here, before anything is read).
        check_filters::<R>(&query.range)?;
        Ok(Self { value, key, roots })
    }

    /// Aggregate the records of `range` on the calling thread (blocking): the partial result
    /// of one slice of the id space, to [`merge`](Groups::merge) with the others and
    /// [`finish`](Self::finish).
    pub(crate) fn run<R: Record>(
        &self,
        warm: WarmSqliteStorage<R>,
        cold: ColdArchiveStorage<R>,
        range: ScanRange,
    ) -> Result<Groups> {
        // PnL's outcome kinds are read as dictionary keys from cold files (a handful of values;
        // expanding each row's string was a sixth of the time), unless the same column is
        // also the grouping key or a filter, which read it as text.
        let filtered: Vec<usize> = check_filters::<R>(&range)?
            .into_iter()
            .map(|(root, _)| root)
            .collect();
        let dictionary: Vec<usize> = match (self.value, self.key) {
            (Value::Pnl(kind, _), Key::Text(text)) if text == kind => Vec::new(),
            (Value::Pnl(kind, _), _) if !filtered.contains(&kind) => vec![kind],
            _ => Vec::new(),
        };
        let mut scan = BatchScan::new(warm, cold, range, &self.roots, WIDE_WINDOW)?
            .read_as_dictionaries(&dictionary);
        let pos = |root: usize| scan.position(root).expect("plan columns are read");
        let value = match self.value {
            Value::Count => Value::Count,
            Value::Pnl(k, v) => Value::Pnl(pos(k), pos(v)),
            Value::Column(c) => Value::Column(pos(c)),
        };
        let key = match self.key {
            Key::Text(c) => Key::Text(pos(c)),
            other => other,
        };
        let mut groups = Groups::default();
        while let Some(parts) = scan.next_parts()? {
            for batch in &parts {
                add_batch(batch, value, key, &mut groups)?;
            }
        }
        Ok(groups)
    }

    /// The rows of the merged partial results.
    pub(crate) fn finish(&self, groups: Groups) -> Vec<AggregateRow> {
        groups.rows(matches!(self.value, Value::Count))
    }
}

/// `range` cut into at most `parts` slices of its id range `[first, last]` (the ids that can
/// exist), each aggregated on its own thread. The first slice keeps the range's lower bound and
/// the last its upper bound, so together they select what `range` selects.
pub(crate) fn split(range: &ScanRange, first: i64, last: i64, parts: usize) -> Vec<ScanRange> {
    let (lo, hi) = (range.min_id.max(first), range.max_id.min(last));
    let span = i128::from(hi) - i128::from(lo) + 1;
    let parts = (parts.max(1) as i128)
        .min(span / MIN_SLICE_IDS as i128)
        .max(1);
    if parts == 1 {
        return vec![range.clone()];
    }
    let mut out = Vec::with_capacity(parts as usize);
    let mut start = range.min_id;
    for k in 1..=parts {
        let end = if k == parts {
            range.max_id
        } else {
            (i128::from(lo) + span * k / parts - 1) as i64
        };
        out.push(range.clone().with_ids(start..=end));
        start = end.saturating_add(1);
    }
    out
}

fn is_numeric(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
    )
}

/// The accumulators of every group seen.
#[derive(Default)]
pub(crate) struct Groups {
    all: Acc,
    /// By bucket start (Unix ms); `last` caches the previous row's bucket, since rows in id
    /// order mostly share one.
    time: HashMap<i64, Acc>,
    text: HashMap<String, Acc>,
    width: i64,
}

impl Groups {
    /// Add `other`'s accumulators to these.
    pub(crate) fn merge(&mut self, other: Groups) {
        merge(&mut self.all, &other.all);
        if other.width != 0 {
            self.width = other.width;
        }
        for (k, acc) in other.time {
            merge(self.time.entry(k).or_default(), &acc);
        }
        for (k, acc) in other.text {
            merge(self.text.entry(k).or_default(), &acc);
        }
    }

    fn rows(self, counting: bool) -> Vec<AggregateRow> {
        let mut rows: Vec<AggregateRow> = Vec::new();
        if self.all.count > 0 {
            rows.push(self.all.row(GroupKey::All, counting));
        }
        for (start, acc) in self.time {
            if acc.count > 0 {
                let key = if self.width == DAY_MS {
                    GroupKey::Day(start)
                } else {
                    GroupKey::Hour(start)
                };
                rows.push(acc.row(key, counting));
            }
        }
        for (text, acc) in self.text {
            if acc.count > 0 {
                rows.push(acc.row(GroupKey::Text(text), counting));
            }
        }
        rows.sort_by(|a, b| a.group.cmp(&b.group));
        rows
    }
}

fn bad_column(i: usize, what: &str) -> Error {
    Error::Codec {
        op: "decode",
        id: None,
        message: format!("aggregate column {i} is not {what}"),
    }
}

/// Per-row values of the measure of one batch: `None` rows are not counted.
enum Values<'a> {
    Count,
    Pnl(&'a StringArray, &'a PrimitiveArray<Float64Type>),
    /// PnL with the kinds as dictionary keys, and the [`PnlClass`] of each dictionary value.
    PnlKeys(
        &'a PrimitiveArray<Int32Type>,
        Vec<PnlClass>,
        &'a PrimitiveArray<Float64Type>,
    ),
    F64(&'a PrimitiveArray<Float64Type>),
    Other(Vec<Option<f64>>),
}

impl Values<'_> {
    #[inline]
    fn get(&self, i: usize) -> Option<f64> {
        match self {
            Values::Count => Some(1.0),
            Values::Pnl(kind, value) => pnl(kind, value, i),
            Values::PnlKeys(keys, classes, value) => {
                if keys.is_null(i) {
                    return None;
                }
                let class = classes.get(keys.value(i) as usize).copied()?;
                class.pnl(value, i)
            }
            Values::F64(a) => a.is_valid(i).then(|| a.value(i)),
            Values::Other(v) => v[i],
        }
    }
}

/// How an outcome kind counts in PnL, by the sign convention of `Outcome::Loss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PnlClass {
    Profit,
    Loss,
    Neutral,
    /// A kind with no PnL.
    None,
}

impl PnlClass {
    fn of(kind: &[u8]) -> Self {
        match kind {
            b"Profit" => PnlClass::Profit,
            b"Loss" => PnlClass::Loss,
            b"Neutral" => PnlClass::Neutral,
            _ => PnlClass::None,
        }
    }

    #[inline]
    fn pnl(self, value: &PrimitiveArray<Float64Type>, i: usize) -> Option<f64> {
        match self {
            PnlClass::Profit => value.is_valid(i).then(|| value.value(i)),
            PnlClass::Loss => value.is_valid(i).then(|| -value.value(i).abs()),
            PnlClass::Neutral => Some(0.0),
            PnlClass::None => None,
        }
    }
}

/// The PnL of row `i` by the sign convention of `Outcome::Loss`.
#[inline]
fn pnl(kind: &StringArray, value: &PrimitiveArray<Float64Type>, i: usize) -> Option<f64> {
    if kind.is_null(i) {
        return None;
    }
    PnlClass::of(kind.value(i).as_bytes()).pnl(value, i)
}

fn to_f64<T: ArrowPrimitiveType>(array: &dyn Array) -> Option<Vec<Option<f64>>>
where
    T::Native: Into<f64>,
{
    let a = array.as_any().downcast_ref::<PrimitiveArray<T>>()?;
    Some(a.iter().map(|v| v.map(Into::into)).collect())
}

fn values_of<'a>(batch: &'a RecordBatch, value: Value) -> Result<Values<'a>> {
    Ok(match value {
        Value::Count => Values::Count,
        Value::Pnl(k, v) => {
            let value = batch
                .column(v)
                .as_any()
                .downcast_ref()
                .ok_or_else(|| bad_column(v, "Float64"))?;
            let kind = batch.column(k).as_ref();
            match kind.as_any().downcast_ref::<DictionaryArray<Int32Type>>() {
                Some(dict) => {
                    let names = dict
                        .values()
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| bad_column(k, "a dictionary of text"))?;
                    let classes = (0..names.len())
                        .map(|j| {
                            if names.is_null(j) {
                                PnlClass::None
                            } else {
                                PnlClass::of(names.value(j).as_bytes())
                            }
                        })
                        .collect();
                    Values::PnlKeys(dict.keys(), classes, value)
                }
                None => Values::Pnl(
                    kind.as_any()
                        .downcast_ref()
                        .ok_or_else(|| bad_column(k, "text"))?,
                    value,
                ),
            }
        }
        Value::Column(c) => {
            let a = batch.column(c).as_ref();
            if let Some(f) = a.as_any().downcast_ref::<PrimitiveArray<Float64Type>>() {
                Values::F64(f)
            } else {
                let converted = match a.data_type() {
                    DataType::Float32 => to_f64::<Float32Type>(a),
                    DataType::Int8 => to_f64::<Int8Type>(a),
                    DataType::Int16 => to_f64::<Int16Type>(a),
                    DataType::Int32 => to_f64::<Int32Type>(a),
                    DataType::UInt8 => to_f64::<UInt8Type>(a),
                    DataType::UInt16 => to_f64::<UInt16Type>(a),
                    DataType::UInt32 => to_f64::<UInt32Type>(a),
                    DataType::Int64 => a
                        .as_any()
                        .downcast_ref::<PrimitiveArray<Int64Type>>()
                        .map(|a| a.iter().map(|v| v.map(|v| v as f64)).collect()),
                    DataType::UInt64 => a
                        .as_any()
                        .downcast_ref::<PrimitiveArray<UInt64Type>>()
                        .map(|a| a.iter().map(|v| v.map(|v| v as f64)).collect()),
                    _ => None,
                };
                Values::Other(converted.ok_or_else(|| bad_column(c, "numeric"))?)
            }
        }
    })
}

/// Add every row of `batch` to its group.
fn add_batch(batch: &RecordBatch, value: Value, key: Key, groups: &mut Groups) -> Result<()> {
    let values = values_of(batch, value)?;
    let rows = batch.num_rows();
    match key {
        Key::All => {
            let acc = &mut groups.all;
            for i in 0..rows {
                if let Some(v) = values.get(i) {
                    acc.add(v);
                }
            }
        }
        Key::Time(width) => {
            groups.width = width;
            let ts = crate::cold_storage::file::i64_values(batch.column(1))
                .ok_or_else(|| bad_column(1, "a timestamp"))?;
            // Rows come in id order, and ids follow time closely: most rows fall in the
            // previous row's bucket, which is kept aside instead of looked up.
            let mut current: Option<(i64, Acc)> = None;
            for (i, &t) in ts.iter().enumerate().take(rows) {
                let Some(v) = values.get(i) else { continue };
                let start = t.div_euclid(width) * width;
                match &mut current {
                    Some((s, acc)) if *s == start => acc.add(v),
                    _ => {
                        if let Some((s, acc)) = current.take() {
                            merge(groups.time.entry(s).or_default(), &acc);
                        }
                        let mut acc = Acc::default();
                        acc.add(v);
                        current = Some((start, acc));
                    }
                }
            }
            if let Some((s, acc)) = current {
                merge(groups.time.entry(s).or_default(), &acc);
            }
        }
        Key::Text(c) => {
            let text = batch
                .column(c)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| bad_column(c, "text"))?;
            for i in 0..rows {
                if text.is_null(i) {
                    continue;
                }
                let Some(v) = values.get(i) else { continue };
                let k = text.value(i);
                match groups.text.get_mut(k) {
                    Some(acc) => acc.add(v),
                    None => {
                        let mut acc = Acc::default();
                        acc.add(v);
                        groups.text.insert(k.to_owned(), acc);
                    }
                }
            }
        }
    }
    Ok(())
}

fn merge(into: &mut Acc, from: &Acc) {
    into.count += from.count;
    into.sum += from.sum;
    into.min = into.min.min(from.min);
    into.max = into.max.max(from.max);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_aggregate_split_covers_the_range_once() {
        let w = MIN_SLICE_IDS;
        let all = ScanRange::default();
        assert_eq!(split(&all, 1, 10, 2), vec![all.clone()]);
        assert_eq!(split(&all, 1, 100 * w, 1), vec![all.clone()]);
        for (range, first, last, parts) in [
            (all.clone(), 1, 10 * w, 2),
            (all.clone(), 1, 10 * w + 7, 3),
            (all.clone().with_ids(5..=4 * w), 1, 10 * w, 4),
            (all.clone().with_ids(-3..=i64::MAX), 1, 3 * w, 8),
        ] {
            let slices = split(&range, first, last, parts);
            assert!(slices.len() > 1 && slices.len() <= parts, "{range:?}");
            assert_eq!(slices[0].min_id, range.min_id);
            assert_eq!(slices.last().unwrap().max_id, range.max_id);
            for pair in slices.windows(2) {
                assert_eq!(pair[0].max_id + 1, pair[1].min_id);
                assert!(pair[0].min_id <= pair[0].max_id);
            }
            assert!(slices
                .iter()
                .all(|s| s.min_ts == range.min_ts && s.equals == range.equals));
        }
    }
}
