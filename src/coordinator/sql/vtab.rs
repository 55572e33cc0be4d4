//! The `records` virtual table: xBestIndex pushes id, time and signature constraints down,
//! xFilter reads the tiers window by window (or one record by signature), xColumn reads the
//! values straight out of Arrow arrays.

use std::os::raw::c_int;
use std::sync::Arc;

use arrow_array::RecordBatch;
use rusqlite::types::ValueRef;
use rusqlite::vtab::{
    Context, IndexConstraintOp, IndexInfo, VTab, VTabConnection, VTabCursor, Values,
};

use super::columns::{Rows, Value};
use super::Shared;
use crate::coordinator::scan::{ScanRange, ScanState};
use crate::error::{Error, Result};
use crate::record::Record;

/// Records per page of the tier scan behind a query (one warm window each).
const SCAN_PAGE_RECORDS: usize = 4096;

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
        }
    }

    fn is_empty(&self) -> bool {
        self.min_id > self.max_id || self.min_ts > self.max_ts
    }

    /// Narrow the plan by `column op value`. SQLite checks every constraint again on the rows
    /// returned (none is omitted), so the plan only has to be a superset: a value that is
    /// not a number (or not text, for the signature) narrows nothing. A NULL matches nothing.
    fn narrow(&mut self, token: &str, value: ValueRef<'_>) {
        let (kind, op) = token.split_at(1);
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
    fn decode(idx_str: Option<&str>, args: &Values<'_>) -> rusqlite::Result<Self> {
        let bad = || rusqlite::Error::ModuleError("bad records plan".into());
        let idx_str = idx_str.ok_or_else(bad)?;
        let (used, tokens) = idx_str.split_once(';').ok_or_else(bad)?;
        let mut plan = Self::everything(u64::from_str_radix(used, 16).map_err(|_| bad())?);
        for (i, token) in tokens.split(',').filter(|t| !t.is_empty()).enumerate() {
            let value = args.iter().nth(i).ok_or_else(bad)?;
            plan.narrow(token, value);
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
            if kind == 's' && op != "=" {
                continue;
            }
            pushed.push((i, format!("{kind}{op}")));
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
            let rows = 10_000_000.0 / 8f64.powi(bounds);
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
            columns: Vec::new(),
            rows: None,
            row: 0,
        })
    }
}

/// Where a cursor's batches come from.
enum Source<R: Record> {
    /// The tiers, window by window (each window from one warm snapshot).
    Scan(Box<ScanState<R>>),
    /// One batch already read (a record found by signature).
    One(Option<RecordBatch>),
    Done,
}

/// A cursor over the rows of one xFilter.
#[repr(C)]
pub(super) struct RecordsCursor<R: Record> {
    /// Base class; must be first.
    base: rusqlite::vtab::sqlite3_vtab_cursor,
    shared: Arc<Shared<R>>,
    source: Source<R>,
    /// The cold-schema columns the statement uses (batches are projected to them).
    columns: Vec<usize>,
    rows: Option<Rows>,
    row: usize,
}

impl<R: Record> RecordsCursor<R> {
    /// Start reading `plan`.
    fn start(&mut self, plan: &Plan) -> Result<()> {
        self.rows = None;
        self.row = 0;
        self.columns = self.shared.layout.cold_columns(plan.used);
        self.source = if plan.is_empty() {
            Source::Done
        } else if let Some(signature) = &plan.signature {
            let batch = match self.shared.by_signature(signature)? {
                Some(record) => Some(R::to_cold_batch(std::slice::from_ref(&record))?),
                None => None,
            };
            Source::One(batch)
        } else {
            let range = ScanRange::default()
                .with_ids(plan.min_id..=plan.max_id)
                .with_time(plan.min_ts..=plan.max_ts);
            Source::Scan(Box::new(ScanState::new(
                self.shared.warm.clone(),
                self.shared.cold.clone(),
                range,
                SCAN_PAGE_RECORDS,
            )))
        };
        self.fill()
    }

    /// Make `rows[row]` the current row, reading batches until one has rows or the source
    /// ends.
    fn fill(&mut self) -> Result<()> {
        loop {
            if self.rows.as_ref().is_some_and(|r| self.row < r.len()) {
                return Ok(());
            }
            self.rows = None;
            self.row = 0;
            self.shared.check_deadline()?;
            let batch = match &mut self.source {
                Source::Done => return Ok(()),
                Source::One(batch) => {
                    let batch = batch.take();
                    if batch.is_none() {
                        self.source = Source::Done;
                    }
                    batch
                }
                Source::Scan(state) => {
                    let page = state.next_page()?;
                    if page.is_empty() {
                        self.source = Source::Done;
                        None
                    } else {
                        Some(R::to_cold_batch(&page)?)
                    }
                }
            };
            if let Some(batch) = batch {
                let batch = batch
                    .project(&self.columns)
                    .map_err(|e| Error::InvalidQuery {
                        message: format!("cannot project a batch: {e}"),
                    })?;
                self.rows = Some(Rows::new(&self.shared.layout, batch));
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
        let plan = Plan::decode(idx_str, args)?;
        self.start(&plan).map_err(|e| self.fail(e))
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.row += 1;
        self.fill().map_err(|e| self.fail(e))
    }

    fn eof(&self) -> bool {
        self.rows.is_none()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let rows = self
            .rows
            .as_ref()
            .ok_or_else(|| rusqlite::Error::ModuleError("records: no current row".into()))?;
        let col = usize::try_from(i).unwrap_or(usize::MAX);
        match rows.value(col, self.row).map_err(|e| self.fail(e))? {
            Value::Null => ctx.set_result(&rusqlite::types::Null),
            Value::Integer(v) => ctx.set_result(&v),
            Value::Real(v) => ctx.set_result(&v),
            Value::Text(v) => ctx.set_result(&v),
            Value::Blob(v) => ctx.set_result(&v),
            Value::Json(v) => ctx.set_result(&v),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        self.rows
            .as_ref()
            .and_then(|r| r.id(self.row))
            .ok_or_else(|| rusqlite::Error::ModuleError("records: no current row".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrowed(steps: &[(&str, ValueRef<'_>)]) -> Plan {
        let mut plan = Plan::everything(0);
        for (token, value) in steps {
            plan.narrow(token, *value);
        }
        plan
    }

    #[test]
    fn coordinator_sql_plans_are_supersets_of_the_constraints() {
        let p = narrowed(&[("i>", ValueRef::Integer(10)), ("i<=", ValueRef::Integer(20))]);
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
            narrowed(&[("s=", ValueRef::Text(b"abc"))]).signature.as_deref(),
            Some("abc")
        );
        assert!(narrowed(&[("i>", ValueRef::Integer(5)), ("i<", ValueRef::Integer(6))]).is_empty());
    }
}
