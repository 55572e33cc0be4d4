//! The `records` virtual table: xBestIndex pushes id, time and signature constraints down,
//! xFilter reads the tiers window by window (or one record by signature), xColumn reads the
//! values straight out of Arrow arrays.

use std::os::raw::c_int;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use rusqlite::types::ValueRef;
use rusqlite::vtab::{
    Context, IndexConstraintOp, IndexInfo, VTab, VTabConnection, VTabCursor, Values,
};

use super::columns::{Layout, Rows, Value};
use super::Shared;
use crate::coordinator::columns::{BatchScan, WIDE_WINDOW};
use crate::coordinator::scan::ScanRange;
use crate::error::{Error, Result};
use crate::record::Record;

/// Ids per window of the tier scan behind a query that reads many columns (a window's rows
/// are in memory at once); narrow queries use [`WIDE_WINDOW`].
const NARROW_WINDOW: usize = 8192;
/// Cold columns up to which a query counts as narrow.
const NARROW_COLUMNS: usize = 8;

/// What xFilter is asked to read, from the pushed-down constraints.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    /// `col_used`: the columns the statement reads.
    pub used: u64,
    pub min_id: i64,
    pub max_id: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub signature: Option<String>,
    /// `(column, value)` equalities on text columns: they prune row groups and filter rows.
    pub equals: Vec<(String, String)>,
}

impl Plan {
    fn everything(used: u64) -> Self {
        Self {
            used,
            min_id: i64::MIN,
            max_id: i64::MAX,
            min_ts: i64::MIN,
            max_ts: i64::MAX,
            signature: None,
            equals: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.min_id > self.max_id || self.min_ts > self.max_ts
    }

    /// Narrow the plan by `column op value`. SQLite checks every constraint again on the rows
    /// returned (none is omitted), so the plan only has to be a superset: a value that is
    /// not a number (or not text, for the signature) narrows nothing. A NULL matches nothing.
    fn narrow(&mut self, layout: &Layout, token: &str, value: ValueRef<'_>) {
        let (kind, op) = token.split_at(1);
        if kind == "e" {
            // `e<column>=`: an equality on a text column, pushed down only for a text value.
            let name = op
                .strip_suffix('=')
                .and_then(|c| c.parse::<usize>().ok())
                .and_then(|c| layout.text_column(c));
            if let (Some(name), ValueRef::Text(t)) = (name, value) {
                match std::str::from_utf8(t) {
                    Ok(v) => self.equals.push((name.to_owned(), v.to_owned())),
                    Err(_) => (self.min_id, self.max_id) = (i64::MAX, i64::MIN),
                }
            }
            return;
        }
        if kind == "s" {
            if let ValueRef::Text(t) = value {
                match std::str::from_utf8(t) {
                    Ok(s) => self.signature = Some(s.to_owned()),
                    // Not UTF-8: no stored signature equals it.
                    Err(_) => (self.min_id, self.max_id) = (i64::MAX, i64::MIN),
                }
            }
            return;
        }
        let (lo, hi) = match (op, value) {
            (_, ValueRef::Null) => (i64::MAX, i64::MIN),
            (_, ValueRef::Integer(v)) => match op {
                "=" => (v, v),
                ">" => (v.saturating_add(1), i64::MAX),
                ">=" => (v, i64::MAX),
                "<" => (i64::MIN, v.saturating_sub(1)),
                _ => (i64::MIN, v),
            },
            (_, ValueRef::Real(f)) => {
                let whole = f.fract() == 0.0;
                // `as` saturates: bounds beyond i64 clamp, which only widens the plan.
                match op {
                    "=" if whole => (f as i64, f as i64),
                    "=" => (i64::MAX, i64::MIN),
                    ">" if whole => ((f as i64).saturating_add(1), i64::MAX),
                    ">" | ">=" => (f.ceil() as i64, i64::MAX),
                    "<" if whole => (i64::MIN, (f as i64).saturating_sub(1)),
                    _ => (i64::MIN, f.floor() as i64),
                }
            }
            _ => return,
        };
        let (min, max) = if kind == "i" {
            (&mut self.min_id, &mut self.max_id)
        } else {
            (&mut self.min_ts, &mut self.max_ts)
        };
        *min = (*min).max(lo);
        *max = (*max).min(hi);
    }

    /// The plan xBestIndex encoded in `idx_str`, with xFilter's arguments.
    fn decode(layout: &Layout, idx_str: Option<&str>, args: &Values<'_>) -> rusqlite::Result<Self> {
        let bad = || rusqlite::Error::ModuleError("bad records plan".into());
        let idx_str = idx_str.ok_or_else(bad)?;
        let (used, tokens) = idx_str.split_once(';').ok_or_else(bad)?;
        let mut plan = Self::everything(u64::from_str_radix(used, 16).map_err(|_| bad())?);
        for (i, token) in tokens.split(',').filter(|t| !t.is_empty()).enumerate() {
            let value = args.iter().nth(i).ok_or_else(bad)?;
            plan.narrow(layout, token, value);
        }
        Ok(plan)
    }
}

/// An instance of the `records` table (one per query connection).
#[repr(C)]
pub(super) struct RecordsTab<R: Record> {
    /// Base class; must be first.
    base: rusqlite::vtab::sqlite3_vtab,
    shared: Arc<Shared<R>>,
}

unsafe impl<'vtab, R: Record> VTab<'vtab> for RecordsTab<R> {
    type Aux = Arc<Shared<R>>;
    type Cursor = RecordsCursor<R>;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Self::Aux>,
        _args: &[&[u8]],
    ) -> rusqlite::Result<(String, Self)> {
        let shared = aux
            .cloned()
            .ok_or_else(|| rusqlite::Error::ModuleError("records: no store".into()))?;
        Ok((
            shared.layout.declaration(),
            Self {
                base: rusqlite::vtab::sqlite3_vtab::default(),
                shared,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let layout = &self.shared.layout;
        let mut pushed: Vec<(usize, String)> = Vec::new();
        for (i, c) in info.constraints().enumerate() {
            if !c.is_usable() {
                continue;
            }
            let col = c.column();
            let kind = match usize::try_from(col) {
                // -1 is the rowid, which is the id.
                Err(_) | Ok(0) => 'i',
                Ok(col) if layout.is_timestamp(col) => 't',
                Ok(col) if layout.signature == Some(col) => 's',
                Ok(col) if layout.text_column(col).is_some() => 'e',
                Ok(_) => continue,
            };
            let op = match c.operator() {
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ => "=",
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GT => ">",
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GE => ">=",
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LT => "<",
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LE => "<=",
                _ => continue,
            };
            if matches!(kind, 's' | 'e') && (op != "=" || info.collation(i).ok() != Some("BINARY"))
            {
                continue;
            }
            pushed.push((
                i,
                match kind {
                    'e' => format!("e{col}="),
                    _ => format!("{kind}{op}"),
                },
            ));
        }
        for (n, (i, _)) in pushed.iter().enumerate() {
            // Not omitted: SQLite checks each row again, so pushdown never changes an answer.
            info.constraint_usage(*i).set_argv_index(n as c_int + 1);
        }
        let point = pushed.iter().any(|(_, t)| t == "s=" || t == "i=");
        let (rows, cost) = if point {
            (1, 10.0)
        } else {
            let bounds = pushed.len() as i32;
            let rows = 10_000_000.0 / 4f64.powi(bounds);
            (rows as i64, rows)
        };
        info.set_estimated_rows(rows.max(1));
        info.set_estimated_cost(cost);
        // A scan yields ascending ids: ORDER BY id needs no sort. (With an equality the
        // table may be filtered once per IN value, so leave the order to SQLite then.)
        let by_id = {
            let mut order = info.order_bys();
            match (order.next(), order.next()) {
                (Some(o), None) => o.column() <= 0 && !o.is_order_by_desc(),
                _ => false,
            }
        };
        if by_id && !point {
            info.set_order_by_consumed(true);
        }
        let tokens: Vec<&str> = pushed.iter().map(|(_, t)| t.as_str()).collect();
        info.set_idx_str(&format!("{:x};{}", info.col_used(), tokens.join(",")));
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<RecordsCursor<R>> {
        Ok(RecordsCursor {
            base: rusqlite::vtab::sqlite3_vtab_cursor::default(),
            shared: Arc::clone(&self.shared),
            source: Source::Done,
            parts: Vec::new(),
            current: None,
        })
    }
}

/// Where a cursor's batches come from.
enum Source<R: Record> {
    /// The tiers, window by window (each window from one warm snapshot), projected to the
    /// columns the statement uses.
    Scan(Box<BatchScan<R>>),
    /// One batch already read (a record found by signature).
    One(Option<RecordBatch>),
    Done,
}

/// One id-ordered batch of the current window, and the next row to return from it.
struct Part {
    rows: Rows,
    ids: Int64Array,
    next: usize,
}

impl Part {
    fn new(layout: &Layout, batch: RecordBatch) -> Result<Self> {
        let ids = batch
            .column(0)
            .as_primitive_opt::<Int64Type>()
            .cloned()
            .ok_or_else(|| Error::InvalidQuery {
                message: "the first column of a scanned batch is not the Int64 id".into(),
            })?;
        Ok(Self {
            rows: Rows::new(layout, batch),
            ids,
            next: 0,
        })
    }
}

/// A cursor over the rows of one xFilter, in ascending id order.
#[repr(C)]
pub(super) struct RecordsCursor<R: Record> {
    /// Base class; must be first.
    base: rusqlite::vtab::sqlite3_vtab_cursor,
    shared: Arc<Shared<R>>,
    source: Source<R>,
    /// The current window: warm's rows and each file's, each in id order. Merged by id, so
    /// the whole scan is in id order.
    parts: Vec<Part>,
    /// The part holding the current row; `None` at the end.
    current: Option<usize>,
}

impl<R: Record> RecordsCursor<R> {
    /// Start reading `plan`.
    fn start(&mut self, plan: Plan) -> Result<()> {
        self.parts.clear();
        self.current = None;
        self.source = if plan.is_empty() {
            Source::Done
        } else if let Some(signature) = &plan.signature {
            let batch = match self.shared.by_signature(signature)? {
                Some(record) => Some(R::to_cold_batch(std::slice::from_ref(&record))?),
                None => None,
            };
            Source::One(batch)
        } else {
            let columns = self.shared.layout.cold_columns(plan.used);
            let window = if columns.len() <= NARROW_COLUMNS {
                WIDE_WINDOW
            } else {
                NARROW_WINDOW
            };
            let mut range = ScanRange::default()
                .with_ids(plan.min_id..=plan.max_id)
                .with_time(plan.min_ts..=plan.max_ts);
            range.equals = plan.equals;
            Source::Scan(Box::new(BatchScan::new(
                self.shared.warm.clone(),
                self.shared.cold.clone(),
                range,
                &columns,
                window,
            )?))
        };
        self.pick()
    }

    /// Make the row with the smallest id not yet returned the current one, reading the next
    /// window when this one is used up.
    fn pick(&mut self) -> Result<()> {
        loop {
            self.current = self
                .parts
                .iter()
                .enumerate()
                .filter(|(_, p)| p.next < p.ids.len())
                .min_by_key(|(_, p)| p.ids.value(p.next))
                .map(|(i, _)| i);
            if self.current.is_some() {
                return Ok(());
            }
            self.parts.clear();
            self.shared.check_deadline()?;
            let batches = match &mut self.source {
                Source::Done => return Ok(()),
                Source::One(batch) => match batch.take() {
                    Some(batch) => vec![batch],
                    None => {
                        self.source = Source::Done;
                        return Ok(());
                    }
                },
                Source::Scan(scan) => match scan.next_parts()? {
                    Some(parts) => parts,
                    None => {
                        self.source = Source::Done;
                        return Ok(());
                    }
                },
            };
            for batch in batches {
                self.parts.push(Part::new(&self.shared.layout, batch)?);
            }
        }
    }

    /// Hand a store error to SQLite, keeping the typed error for the caller.
    fn fail(&self, e: Error) -> rusqlite::Error {
        self.shared.fail(e)
    }
}

unsafe impl<R: Record> VTabCursor for RecordsCursor<R> {
    fn filter(
        &mut self,
        _idx_num: c_int,
        idx_str: Option<&str>,
        args: &Values<'_>,
    ) -> rusqlite::Result<()> {
        let plan = Plan::decode(&self.shared.layout, idx_str, args)?;
        self.start(plan).map_err(|e| self.fail(e))
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        if let Some(p) = self.current {
            self.parts[p].next += 1;
        }
        self.pick().map_err(|e| self.fail(e))
    }

    fn eof(&self) -> bool {
        self.current.is_none()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let part = self
            .current
            .map(|p| &self.parts[p])
            .ok_or_else(|| rusqlite::Error::ModuleError("records: no current row".into()))?;
        let col = usize::try_from(i).unwrap_or(usize::MAX);
        match part.rows.value(col, part.next).map_err(|e| self.fail(e))? {
            Value::Null => ctx.set_result(&rusqlite::types::Null),
            Value::Integer(v) => ctx.set_result(&v),
            Value::Real(v) => ctx.set_result(&v),
            Value::Text(v) => ctx.set_result(&v),
            Value::Blob(v) => ctx.set_result(&v),
            Value::Json(v) => ctx.set_result(&v),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        self.current
            .map(|p| {
                let part = &self.parts[p];
                part.ids.value(part.next)
            })
            .ok_or_else(|| rusqlite::Error::ModuleError("records: no current row".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrowed(steps: &[(&str, ValueRef<'_>)]) -> Plan {
        let layout = Layout::new(crate::record::TransactionRecord::cold_schema());
        let mut plan = Plan::everything(0);
        for (token, value) in steps {
            plan.narrow(&layout, token, *value);
        }
        plan
    }

    #[test]
    fn coordinator_sql_plans_are_supersets_of_the_constraints() {
        let p = narrowed(&[
            ("i>", ValueRef::Integer(10)),
            ("i<=", ValueRef::Integer(20)),
        ]);
        assert_eq!((p.min_id, p.max_id), (11, 20));
        let p = narrowed(&[("t>=", ValueRef::Real(1.5)), ("t<", ValueRef::Real(9.0))]);
        assert_eq!((p.min_ts, p.max_ts), (2, 8));
        let p = narrowed(&[("t>", ValueRef::Real(2.0)), ("t<=", ValueRef::Real(7.5))]);
        assert_eq!((p.min_ts, p.max_ts), (3, 7));
        assert!(narrowed(&[("i=", ValueRef::Real(2.5))]).is_empty());
        assert!(narrowed(&[("i>", ValueRef::Null)]).is_empty());
        // Text compared with an INTEGER column: SQLite decides; the plan does not narrow.
        assert_eq!(
            narrowed(&[("i<", ValueRef::Text(b"12"))]),
            Plan::everything(0)
        );
        assert_eq!(
            narrowed(&[("s=", ValueRef::Text(b"abc"))])
                .signature
                .as_deref(),
            Some("abc")
        );
        assert!(narrowed(&[("i>", ValueRef::Integer(5)), ("i<", ValueRef::Integer(6))]).is_empty());
        // Column 3 is `mint`, a text column; column 6 (`slot`) is not.
        assert_eq!(
            narrowed(&[
                ("e3=", ValueRef::Text(b"m1")),
                ("e6=", ValueRef::Text(b"7"))
            ])
            .equals,
            [("mint".to_owned(), "m1".to_owned())]
        );
        assert!(narrowed(&[("e3=", ValueRef::Integer(1))]).equals.is_empty());
    }
}
