//! Read-only SQL over all three tiers (feature `sql`): a private in-memory SQLite connection
//! per query, with the `records` virtual table over warm and cold.
//!
//! - `columns.rs`: the table's columns (the cold schema's, `ts_ms`, `pnl`) and their values,
//!   read out of Arrow arrays.
//! - `vtab.rs`: the virtual table: pushdown of id, time and signature constraints, the scan.
//!
//! Hot is not read: every record it holds is also in warm or cold (hot is a cache), and warm
//! and cold together hold the newest version of every record exactly once per scan window.

mod columns;
mod vtab;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Batch, Connection, ErrorCode};

use self::columns::Layout;
use self::vtab::RecordsTab;
use super::{AutoTieringCoordinator, MOVE_RETRIES};
use crate::blocking::run_blocking;
use crate::cold_storage::{ColdArchiveStorage, ColdRead};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::warm_storage::{SignatureLookup, WarmSqliteStorage};

/// SQLite virtual-machine steps between two checks of a query's deadline.
const PROGRESS_STEPS: std::os::raw::c_int = 1000;

/// The answer to [`AutoTieringCoordinator::sql`]: column names and rows, in the order SQLite
/// returned them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqlRows {
    /// The result's column names (an `AS` alias, else the expression's text).
    pub columns: Vec<String>,
    /// The rows; each holds one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

/// One SQL value, as SQLite types it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// Text (UTF-8; invalid bytes replaced).
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for SqlValue {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }
}

impl<R: Record> AutoTieringCoordinator<R> {
    /// Run one read-only SQL statement over every record of the store (feature `sql`).
    ///
    /// The statement reads the table `records`: one column per column of the record type's
    /// Parquet schema ([`Record::cold_schema`]; for [`TransactionRecord`](crate::TransactionRecord)
    /// `id`, `timestamp_decision_made`, `transaction_signature`, `mint`, `outcome_kind`,
    /// `outcome_value`, ...), plus `ts_ms` (the record timestamp, INTEGER Unix ms) and `pnl`
    /// (REAL: Profit → the value, Loss → minus its absolute value, Neutral → 0, other kinds
    /// NULL; present when the schema has `outcome_kind` and `outcome_value`). Timestamps are
    /// INTEGER Unix ms, booleans 0/1, maps and lists JSON text. Each record appears once, in
    /// its newest version, wherever it lives (warm or cold).
    ///
    /// - **Pushdown.** Constraints on `id` (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`), on
    ///   `ts_ms` or the timestamp column, and `transaction_signature = '...'` are handed to the
    ///   scan: a day's query reads only that day's warm rows and cold files (and row groups
    ///   and pages), a signature reads one record through the signature index. The cold tier
    ///   decodes only the columns the statement uses.
    /// - **Read-only.** One statement; anything that is not a query (`INSERT`, `CREATE`,
    ///   `ATTACH`, `PRAGMA` other than `table_info`, transactions, ...) is
    ///   [`Error::InvalidQuery`], as is a syntax error or an unknown column.
    /// - **Limits.** [`SqlConfig`](crate::SqlConfig): more than `max_rows` result rows is
    ///   [`Error::SqlRowLimit`]; running past `timeout_ms` is [`Error::SqlTimeout`].
    /// - Runs on tokio's blocking pool, on a private in-memory SQLite connection.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, Outcome, SqlValue, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for (i, outcome) in [Outcome::Profit(2.0), Outcome::Loss(0.5), Outcome::NotExecuted].into_iter().enumerate() {
    ///     store.put(&TransactionRecord {
    ///         transaction_signature: Some(format!("sig-{i}")),
    ///         timestamp_decision_made: 1_764_460_800_000 + i as i64, // 2025-11-30, Unix ms
    ///         actual_outcome: outcome,
    ///         ..Default::default()
    ///     }).await?;
    /// }
    /// let pnl_by_day = store
    ///     .sql("SELECT date(ts_ms / 1000, 'unixepoch') AS day, sum(pnl) AS pnl, count(*) AS n
    ///           FROM records WHERE ts_ms >= 1764460800000 GROUP BY day")
    ///     .await?;
    /// assert_eq!(pnl_by_day.columns, ["day", "pnl", "n"]);
    /// assert_eq!(
    ///     pnl_by_day.rows,
    ///     [[SqlValue::Text("2025-11-30".into()), SqlValue::Real(1.5), SqlValue::Integer(3)]]
    /// );
    /// # Ok(()) }
    /// ```
    pub async fn sql(&self, query: &str) -> Result<SqlRows> {
        let limits = &self.config.sql;
        let shared = Arc::new(Shared {
            warm: self.warm.clone(),
            cold: self.cold.clone(),
            layout: Layout::new(R::cold_schema()),
            deadline: Instant::now() + Duration::from_millis(limits.timeout_ms),
            timeout_ms: limits.timeout_ms,
            failure: Mutex::new(None),
            timed_out: AtomicBool::new(false),
        });
        let max_rows = limits.max_rows;
        let query = query.to_owned();
        run_blocking(move || execute(shared, &query, max_rows)).await?
    }
}

/// What a query's virtual table reads from, and what it reports back.
pub(super) struct Shared<R: Record> {
    warm: WarmSqliteStorage<R>,
    cold: ColdArchiveStorage<R>,
    layout: Layout,
    deadline: Instant,
    timeout_ms: u64,
    /// The first store error a virtual-table call hit (SQLite only carries its text).
    failure: Mutex<Option<Error>>,
    timed_out: AtomicBool,
}

impl<R: Record> Shared<R> {
    /// Keep `e` for the caller (the first one wins) and hand SQLite its text.
    fn fail(&self, e: Error) -> rusqlite::Error {
        let message = e.to_string();
        self.failure.lock().get_or_insert(e);
        rusqlite::Error::ModuleError(message)
    }

    fn check_deadline(&self) -> Result<()> {
        if Instant::now() >= self.deadline {
            self.timed_out.store(true, Ordering::Relaxed);
            return Err(Error::SqlTimeout {
                timeout_ms: self.timeout_ms,
            });
        }
        Ok(())
    }

    /// The record carrying `signature`, newest version, from warm or the cold copies warm
    /// names (the path of `get_by_signature`, blocking, without hot).
    fn by_signature(&self, signature: &str) -> Result<Option<R>> {
        if signature.is_empty() {
            return Ok(None);
        }
        let mut vanished = None;
        let mut last = 0;
        for _ in 0..MOVE_RETRIES {
            let copies = match self.warm.lookup_signature(signature)? {
                SignatureLookup::Row(row) => return Ok(Some(row.record)),
                SignatureLookup::Archived(copies) => copies,
            };
            let Some(first) = copies.first() else {
                return Ok(None);
            };
            last = first.id;
            match self.cold.read_signature(signature, &copies)? {
                ColdRead::Found { record, .. } => return Ok(Some(record)),
                ColdRead::Absent => return Ok(None),
                ColdRead::Vanished { file_id, error } => {
                    self.cold.check_vanished(&mut vanished, file_id, error)?
                }
            }
        }
        Err(Error::Conflict { id: last })
    }

    /// The error a failed step reports: the store's own error if a table read failed, the
    /// time limit, or what SQLite said about the query.
    fn step_error(&self, e: rusqlite::Error) -> Error {
        if let Some(failure) = self.failure.lock().take() {
            return failure;
        }
        if self.timed_out.load(Ordering::Relaxed) {
            return Error::SqlTimeout {
                timeout_ms: self.timeout_ms,
            };
        }
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                ErrorCode::OperationInterrupted => {
                    return Error::SqlTimeout {
                        timeout_ms: self.timeout_ms,
                    }
                }
                ErrorCode::OutOfMemory
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::InternalMalfunction => return sqlite_error("sql query", e),
                _ => {}
            }
        }
        invalid(query_message(&e))
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidQuery {
        message: message.into(),
    }
}

fn sqlite_error(op: &'static str, source: rusqlite::Error) -> Error {
    Error::Sqlite {
        op,
        path: ":memory:".into(),
        source,
    }
}

/// SQLite's own message for a failed statement.
fn query_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

/// Run `query` on a fresh connection holding the `records` table (blocking).
fn execute<R: Record>(shared: Arc<Shared<R>>, query: &str, max_rows: usize) -> Result<SqlRows> {
    let conn = Connection::open_in_memory().map_err(|e| sqlite_error("open sql connection", e))?;
    conn.create_module(
        "records",
        rusqlite::vtab::eponymous_only_module::<RecordsTab<R>>(),
        Some(Arc::clone(&shared)),
    )
    .map_err(|e| sqlite_error("register the records table", e))?;
    let denied = Arc::new(Mutex::new(None::<String>));
    {
        let denied = Arc::clone(&denied);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(ctx, &denied)));
    }
    let deadline = shared.deadline;
    conn.progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline));
    let refused = |e: rusqlite::Error| match denied.lock().take() {
        Some(what) => invalid(format!("{what} is not allowed: SQL queries are read-only")),
        None => shared.step_error(e),
    };

    let mut statements = Batch::new(&conn, query);
    let mut stmt = match statements.next() {
        Ok(Some(stmt)) => stmt,
        Ok(None) => return Err(invalid("empty query: give one SELECT statement")),
        Err(e) => return Err(refused(e)),
    };
    if !matches!(statements.next(), Ok(None)) {
        return Err(invalid(
            "one statement only: remove everything after the first `;`",
        ));
    }
    if !stmt.readonly() {
        return Err(invalid(
            "only queries (SELECT, WITH ... SELECT, VALUES) are allowed: SQL is read-only",
        ));
    }
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let width = columns.len();
    let mut rows = stmt.query([]).map_err(|e| shared.step_error(e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| shared.step_error(e))? {
        if out.len() == max_rows {
            return Err(Error::SqlRowLimit { max_rows });
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(SqlValue::from(
                row.get_ref(i).map_err(|e| shared.step_error(e))?,
            ));
        }
        out.push(values);
    }
    Ok(SqlRows { columns, rows: out })
}

/// The authorizer: queries only. Reads, functions and recursive CTEs are allowed, and the
/// `table_info` pragmas (to list the columns); everything else is refused and named.
fn authorize(ctx: AuthContext<'_>, denied: &Mutex<Option<String>>) -> Authorization {
    let what = match ctx.action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive => return Authorization::Allow,
        AuthAction::Pragma { pragma_name, .. }
            if pragma_name.eq_ignore_ascii_case("table_info")
                || pragma_name.eq_ignore_ascii_case("table_xinfo") =>
        {
            return Authorization::Allow
        }
        AuthAction::Pragma { pragma_name, .. } => format!("PRAGMA {pragma_name}"),
        AuthAction::Attach { .. } => "ATTACH".into(),
        AuthAction::Detach { .. } => "DETACH".into(),
        AuthAction::Insert { .. } => "INSERT".into(),
        AuthAction::Update { .. } => "UPDATE".into(),
        AuthAction::Delete { .. } => "DELETE".into(),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            "a transaction statement".into()
        }
        other => format!("{other:?}"),
    };
    denied.lock().get_or_insert(what);
    Authorization::Deny
}
