//! Error responses: a stable code, the status it maps to, and a one-line message, rendered as
//! `{"error": {"code", "message"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::{ErrorBody, ErrorDetail};

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// One line.
    pub message: String,
}

impl ApiError {
    /// An error with this code, its status taken from [`status_of`].
    pub fn new(code: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            status: status_of(code),
            code,
            message: one_line(&message.to_string()),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new("bad_request", message)
    }
}

/// The status of a code: 400 invalid input (an invalid SQL query too), 404 unknown record or
/// route, 409 duplicate or conflict, 413 too large, 422 an SQL answer over the row limit, 401
/// unauthorized, 405 wrong method, 503 closed or shutting down or overloaded, 408 timeout (the
/// request's, or an SQL query's time limit), 500 everything else.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "invalid_record" | "invalid_query" | "empty_signature" | "bad_request" | "config" => {
            StatusCode::BAD_REQUEST
        }
        // An SQL answer over `sql.max_rows` rows: the query must change, not be retried.
        "sql_row_limit" => StatusCode::UNPROCESSABLE_ENTITY,
        "not_found" | "route_not_found" => StatusCode::NOT_FOUND,
        "duplicate_signature" | "conflict" => StatusCode::CONFLICT,
        "record_too_large" | "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "closed" | "shutting_down" | "overloaded" => StatusCode::SERVICE_UNAVAILABLE,
        "timeout" | "sql_timeout" => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<tiered_storage::Error> for ApiError {
    fn from(e: tiered_storage::Error) -> Self {
        if e.code() == "corrupt" || e.code() == "sqlite" || e.code() == "io" {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(e.code(), e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The message on one line: line breaks (from a nested error's text) become spaces.
pub fn one_line(message: &str) -> String {
    if message.contains(['\n', '\r']) {
        message
            .split(['\n', '\r'])
            .filter(|s| !s.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\nb\r\n  c"), "a b c");
        assert_eq!(ApiError::bad_request("x\ny").message, "x y");
    }

    #[test]
    fn library_codes_map_to_the_contract_statuses() {
        use tiered_storage::Error;
        let cases = [
            (Error::EmptySignature, 400),
            (Error::InvalidRecord { reason: "r".into() }, 400),
            (
                Error::InvalidQuery {
                    message: "m".into(),
                },
                400,
            ),
            (Error::SqlTimeout { timeout_ms: 1 }, 408),
            (Error::SqlRowLimit { max_rows: 1 }, 422),
            (Error::NotFound { id: 1 }, 404),
            (
                Error::DuplicateSignature {
                    signature: "s".into(),
                    existing_id: 1,
                },
                409,
            ),
            (Error::Conflict { id: 1 }, 409),
            (Error::RecordTooLarge { size: 2, max: 1 }, 413),
            (Error::Closed, 503),
            (Error::Unsupported { op: "x" }, 500),
        ];
        for (e, status) in cases {
            let api = ApiError::from(e);
            assert_eq!(api.status.as_u16(), status, "{}", api.code);
        }
    }
}
