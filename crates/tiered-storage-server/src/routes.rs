//! The request handlers: one function per route, each parsing its input itself so that every
//! refusal is a JSON error with a stable code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tiered_storage::{AutoTieringCoordinator, Record, ScanRange, TransactionRecord};

use crate::api::{
    parse_record, ArchiveRequest, BatchLineError, BatchResponse, IdResponse, RecentRecords,
    RecordPage, SqlRequest, SqlResponse,
};
use crate::error::ApiError;
use crate::server::AppState;
use crate::stats::{stats_view, AlertView};
use crate::time::{parse_duration, parse_since};

/// Records a page of `GET /v1/records` returns when `limit` is absent.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Most records one page returns; a larger `limit` is clamped to this.
pub const MAX_PAGE_LIMIT: usize = 1000;
/// Records `GET /v1/records/recent` returns when `limit` is absent.
pub const DEFAULT_RECENT_LIMIT: usize = 50;
/// Lines of a batch put with one `put_many` (one group commit, bounded memory).
pub const BATCH_CHUNK_LINES: usize = 4096;

/// The outcome kinds an `outcome=` filter (and the CLI's `--outcome`) accepts: the names
/// `Outcome::kind` gives, which parse to an `OutcomeKind`. Anything else is refused (400
/// `invalid_query`), not answered with nothing.
pub const OUTCOME_KINDS: &[&str] = &tiered_storage::Outcome::KINDS;

type Store = Arc<AutoTieringCoordinator>;

/// A JSON response.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    // A record is about 1 KiB of JSON: one allocation instead of growing from 128 bytes.
    let mut bytes = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => {
            let mut response = (status, bytes).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            ApiError::new("internal", format!("cannot encode the response: {e}")).into_response()
        }
    }
}

fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("record id {text:?} is not a whole number")))
}

/// A serde_json error on one line, its position given as a column of the one-line document.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&position) {
        Some(message) if e.line() <= 1 => {
            format!("invalid record JSON: {message} (column {})", e.column())
        }
        _ => format!("invalid record JSON: {text}"),
    }
}

fn record_from_body(body: &[u8]) -> Result<TransactionRecord, ApiError> {
    parse_record(body).map_err(|e| ApiError::bad_request(json_error(&e)))
}

/// `GET /v1/records/{id}`.
pub async fn get_record(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    match state.store().get_shared(id).await? {
        Some(record) => Ok(json(StatusCode::OK, &*record)),
        None => Err(ApiError::new(
            "not_found",
            format!("no record with id {id}"),
        )),
    }
}

/// `GET /v1/records/by-signature/{sig}`.
pub async fn get_by_signature(
    State(state): State<AppState>,
    Path(signature): Path<String>,
) -> Result<Response, ApiError> {
    match state.store().get_by_signature_shared(&signature).await? {
        Some(record) => Ok(json(StatusCode::OK, &*record)),
        None => Err(ApiError::new(
            "not_found",
            format!("no record with signature {signature:?}"),
        )),
    }
}

/// `POST /v1/records`: 201 `{"id": N}`.
pub async fn put_record(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let record = record_from_body(&body)?;
    if let Some(id) = record.id {
        return Err(ApiError::bad_request(format!(
            "a new record has no id (this one has {id}); use PUT /v1/records/{id} to update"
        )));
    }
    let id = state.store().put(&record).await?;
    Ok(json(StatusCode::CREATED, &IdResponse { id }))
}

/// `PUT /v1/records/{id}`: 200 `{"id": N}`.
pub async fn update_record(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut record = record_from_body(&body)?;
    match record.id {
        Some(body_id) if body_id != id => {
            return Err(ApiError::bad_request(format!(
                "the body's id {body_id} differs from the path's id {id}"
            )))
        }
        _ => record.set_id(id),
    }
    state.store().update(&record).await?;
    Ok(json(StatusCode::OK, &IdResponse { id }))
}

/// `DELETE /v1/records/{id}`: 204.
pub async fn delete_record(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    state.store().remove(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A chunk of a batch being stored, and which lines its records came from.
struct Pending {
    /// 0-based line of each record.
    lines: Vec<usize>,
    task: tokio::task::JoinHandle<tiered_storage::Result<Vec<tiered_storage::Result<i64>>>>,
}

type ChunkOutcome =
    Result<tiered_storage::Result<Vec<tiered_storage::Result<i64>>>, tokio::task::JoinError>;

fn start_chunk(
    store: &Store,
    records: &mut Vec<TransactionRecord>,
    lines: &mut Vec<usize>,
) -> Pending {
    let records = std::mem::take(records);
    let store = store.clone();
    Pending {
        lines: std::mem::take(lines),
        // Spawned: a client that goes away does not cancel a chunk halfway through.
        task: tokio::spawn(async move { store.put_many(&records).await }),
    }
}

fn settle(lines: Vec<usize>, outcome: ChunkOutcome, response: &mut BatchResponse) {
    let line_error = |line: usize, code: &str, message: String| BatchLineError {
        line: line as u64 + 1,
        code: code.to_owned(),
        message: crate::error::one_line(&message),
    };
    match outcome {
        Ok(Ok(results)) => {
            for (line, result) in lines.into_iter().zip(results) {
                match result {
                    Ok(id) => response.ids[line] = Some(id),
                    Err(e) => response
                        .errors
                        .push(line_error(line, e.code(), e.to_string())),
                }
            }
        }
        Ok(Err(e)) => {
            for line in lines {
                response
                    .errors
                    .push(line_error(line, e.code(), e.to_string()));
            }
        }
        Err(join) => {
            for line in lines {
                response.errors.push(line_error(
                    line,
                    "internal",
                    format!("the put task failed: {join}"),
                ));
            }
        }
    }
}

/// `POST /v1/records:batch`: NDJSON, one record per line. Lines are stored `BATCH_CHUNK_LINES`
/// at a time with `put_many` (one group commit each), the next chunk parsed while the previous
/// one commits. A line's `id` (set or null) is ignored: every line is a new record. `ids` has
/// one entry per line (null for a blank or bad line); a bad line writes nothing.
pub async fn put_batch(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let store = state.store().clone();
    let line_limit = state.record_body_limit();
    let mut response = BatchResponse::default();
    let mut in_flight: Option<Pending> = None;
    let mut records: Vec<TransactionRecord> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();

    let mut rest: &[u8] = &body;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = next;
        let index = response.ids.len();
        response.ids.push(None);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() > line_limit {
            response.errors.push(BatchLineError {
                line: index as u64 + 1,
                code: "payload_too_large".into(),
                message: format!(
                    "the line is {} bytes, over the limit of {line_limit}",
                    line.len()
                ),
            });
            continue;
        }
        match parse_record(line) {
            Ok(mut record) => {
                record.id = None;
                records.push(record);
                lines.push(index);
            }
            Err(e) => response.errors.push(BatchLineError {
                line: index as u64 + 1,
                code: "bad_request".into(),
                message: json_error(&e),
            }),
        }
        if records.len() == BATCH_CHUNK_LINES {
            // Ids follow line order: a chunk starts once the previous one has committed.
            if let Some(Pending { lines, task }) = in_flight.take() {
                settle(lines, task.await, &mut response);
            }
            in_flight = Some(start_chunk(&store, &mut records, &mut lines));
        }
    }
    if let Some(Pending { lines, task }) = in_flight.take() {
        settle(lines, task.await, &mut response);
    }
    if !records.is_empty() {
        let Pending { lines, task } = start_chunk(&store, &mut records, &mut lines);
        settle(lines, task.await, &mut response);
    }
    response.errors.sort_by_key(|e| e.line);
    Ok(json(StatusCode::OK, &response))
}

/// `GET /v1/records`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanQuery {
    since: Option<String>,
    until: Option<String>,
    mint: Option<String>,
    program: Option<String>,
    outcome: Option<String>,
    limit: Option<String>,
    after: Option<String>,
    newest_first: Option<String>,
}

fn query<T: Default>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    match q {
        Ok(Query(q)) => Ok(q),
        Err(e) => Err(ApiError::bad_request(format!(
            "bad query string: {}",
            e.body_text()
        ))),
    }
}

/// A `limit`: absent → `default`; above `max` (even past i64) → `max`; 0, negative or not a
/// number → 400.
fn parse_limit(text: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "limit {text:?} must be a whole number from 1 (larger values mean {max})"
        ))
    };
    match text.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(max).min(max)),
        Ok(_) => Err(bad()),
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Ok(max),
        Err(_) => Err(bad()),
    }
}

/// `GET /v1/records?since=&until=&mint=&program=&outcome=&limit=&after=`: a page in id order,
/// with `next` (the last id returned) when more may follow. With `newest_first=true`: the
/// `limit` newest matching records by timestamp (ties by id), newest first, in one page
/// (`next` null; `after` refused).
pub async fn scan_records(
    State(state): State<AppState>,
    q: Result<Query<ScanQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let store = state.store();
    let now = store.config().clock.now_ms();
    let limit = parse_limit(q.limit.as_deref(), DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?;
    let since = match q.since.as_deref() {
        Some(s) => parse_since(s, now).map_err(|e| ApiError::bad_request(format!("since: {e}")))?,
        None => i64::MIN,
    };
    let until = match q.until.as_deref() {
        Some(s) => parse_since(s, now).map_err(|e| ApiError::bad_request(format!("until: {e}")))?,
        None => i64::MAX,
    };
    let newest_first = match q.newest_first.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "newest_first {other:?} must be true or false"
            )))
        }
    };
    if newest_first && q.after.is_some() {
        return Err(ApiError::bad_request(
            "after pages in id order; with newest_first=true there is one page (narrow it with until)",
        ));
    }
    let after = match q.after.as_deref() {
        Some(s) => s.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("after {s:?} is not a cursor (a record id)"))
        })?,
        None => i64::MIN,
    };
    let mut range = ScanRange::default().with_time(since..=until);
    if after == i64::MAX {
        return Ok(json(
            StatusCode::OK,
            &RecordPage {
                records: Vec::new(),
                next: None,
            },
        ));
    }
    if after != i64::MIN {
        range = range.with_ids(after + 1..=i64::MAX);
    }
    if let Some(mint) = q.mint {
        range = range.with_mint(mint);
    }
    if let Some(program) = q.program {
        range = range.with_program(program);
    }
    if let Some(outcome) = q.outcome {
        // A kind that does not exist is refused (400 `invalid_query`), not answered with
        // nothing.
        range = range.with_outcome(outcome.parse::<tiered_storage::OutcomeKind>()?);
    }
    if since > until {
        return Ok(json(
            StatusCode::OK,
            &RecordPage {
                records: Vec::new(),
                next: None,
            },
        ));
    }
    if newest_first {
        // One page, newest first (time order has no id cursor): narrow with `until` to go
        // further back.
        let records = store.query(range.newest_first().limit(limit)).await?;
        return Ok(json(
            StatusCode::OK,
            &RecordPage {
                records,
                next: None,
            },
        ));
    }
    let mut cursor = store.scan(range, limit + 1)?;
    let mut records = Vec::with_capacity(limit + 1);
    while records.len() <= limit {
        match cursor.next().await? {
            Some(r) => records.push(r),
            None => break,
        }
    }
    let next = if records.len() > limit {
        records.truncate(limit);
        records.last().and_then(|r| r.id).map(|id| id.to_string())
    } else {
        None
    };
    Ok(json(StatusCode::OK, &RecordPage { records, next }))
}

/// `GET /v1/records/recent`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentQuery {
    limit: Option<String>,
}

/// `GET /v1/records/recent?limit=N`: newest first.
pub async fn recent_records(
    State(state): State<AppState>,
    q: Result<Query<RecentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let n = parse_limit(q.limit.as_deref(), DEFAULT_RECENT_LIMIT, MAX_PAGE_LIMIT)?;
    let records = state.store().recently_put(n).await?;
    Ok(json(StatusCode::OK, &RecentRecords { records }))
}

/// `POST /v1/sql` with `{"sql": "SELECT ..."}`: one read-only statement over the table
/// `records` (every record once, newest version, across the tiers). Answers `{"columns",
/// "rows"}`; an invalid or non-read-only statement is 400 `invalid_query`, the store's time
/// limit 408 `sql_timeout`, its row limit 422 `sql_row_limit`.
pub async fn sql_query(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be {{\"sql\": \"SELECT ...\"}}: {}",
            crate::error::one_line(&e.to_string())
        ))
    })?;
    let rows = state.store().sql(&request.sql).await?;
    Ok(json(StatusCode::OK, &SqlResponse::from(rows)))
}

/// `GET /v1/stats`.
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &stats_view(state.store()).await?))
}

/// `GET /v1/alerts`'s body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsResponse {
    /// Active alerts, most severe first.
    pub active: Vec<AlertView>,
    /// Cleared alerts, oldest first.
    pub history: Vec<AlertView>,
}

/// `GET /v1/alerts`.
pub async fn alerts(State(state): State<AppState>) -> Response {
    let store = state.store();
    let active = store.get_alerts().await;
    let history = store.alert_history();
    json(
        StatusCode::OK,
        &AlertsResponse {
            active: active.iter().map(AlertView::from).collect(),
            history: history.iter().map(AlertView::from).collect(),
        },
    )
}

/// `GET /v1/history`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    window: Option<String>,
}

/// `GET /v1/history?window=15m|1h` (any duration; at most the hour the ring holds).
pub async fn history(
    State(state): State<AppState>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let window = match q.window.as_deref() {
        Some(w) => parse_duration(w).map_err(|e| ApiError::bad_request(format!("window: {e}")))?,
        None => std::time::Duration::from_secs(15 * 60),
    };
    let now = state.store().config().clock.now_ms();
    Ok(json(StatusCode::OK, &state.history().window(window, now)))
}

/// `GET /metrics`: the Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state.store().export_prometheus().await?;
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(tiered_storage::PROMETHEUS_CONTENT_TYPE),
    );
    Ok(response)
}

/// Run an admin task on its own task, so that a client going away does not cancel it.
async fn run_admin<T, F>(name: &str, task: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: std::future::Future<Output = tiered_storage::Result<T>> + Send + 'static,
{
    match tokio::spawn(task).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError::new("internal", format!("{name} failed: {e}"))),
    }
}

/// `POST /v1/admin/archive` with an optional `{"older_than": "7d"}`.
pub async fn admin_archive(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ArchiveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ArchiveRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid archive request: {e}")))?
    };
    let store = state.store().clone();
    let report = match request.older_than {
        Some(text) => {
            let age = parse_duration(&text)
                .map_err(|e| ApiError::bad_request(format!("older_than: {e}")))?;
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let cutoff = store.config().clock.now_ms().saturating_sub(age_ms);
            run_admin(
                "archive",
                async move { store.archive_older_than(cutoff).await },
            )
            .await?
        }
        None => run_admin("archive", async move { store.archive_now().await }).await?,
    };
    Ok(json(StatusCode::OK, &report))
}

/// `POST /v1/admin/compact`.
pub async fn admin_compact(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store().clone();
    let report = run_admin("compaction", async move { store.compact_now().await }).await?;
    Ok(json(StatusCode::OK, &report))
}

/// `POST /v1/admin/verify`: the report with `"clean"` added.
pub async fn admin_verify(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store().clone();
    let report = run_admin("verify", async move { store.verify().await }).await?;
    let clean = report.is_clean();
    let mut value = serde_json::to_value(&report)
        .map_err(|e| ApiError::new("internal", format!("cannot encode the report: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        object.insert("clean".into(), clean.into());
    }
    Ok(json(StatusCode::OK, &value))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 while serving, 503 `shutting_down` once shutdown began.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_shutting_down() {
        ApiError::new("shutting_down", "the service is shutting down").into_response()
    } else {
        "ready".into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_clamp_high_and_refuse_non_positive() {
        assert_eq!(parse_limit(None, 100, 1000).unwrap(), 100);
        assert_eq!(parse_limit(Some("5"), 100, 1000).unwrap(), 5);
        assert_eq!(parse_limit(Some("1000000"), 100, 1000).unwrap(), 1000);
        assert_eq!(
            parse_limit(Some("99999999999999999999999"), 100, 1000).unwrap(),
            1000
        );
        for bad in ["0", "-1", "", "ten", "1.5", "-99999999999999999999999"] {
            assert_eq!(
                parse_limit(Some(bad), 100, 1000).unwrap_err().code,
                "bad_request",
                "{bad}"
            );
        }
    }

    #[test]
    fn json_errors_name_the_column_on_one_line() {
        let e = parse_record(br#"{"id": null, "oops": 1}"#).unwrap_err();
        let message = json_error(&e);
        assert!(message.contains("unknown field `oops`"), "{message}");
        assert!(message.contains("column"), "{message}");
        assert!(!message.contains("line 1"), "{message}");
    }
}
