//! The bearer token: compared in constant time, required for writes and admin routes, and for
//! reads too when `token_for_reads` is set.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::server::AppState;

/// Whether `given` equals `expected`, in a time that depends only on `expected`'s length (not
/// on where the first difference is), so a client cannot find the token byte by byte.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    // Non-zero when the lengths differ; every byte of `expected` is compared either way.
    let mut diff = (given.len() ^ expected.len()) as u64;
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!*e);
        diff |= u64::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

/// Routes that stay open whatever the settings: liveness, readiness and the dashboard's own
/// files (the page asks for the token and sends it with its API calls).
fn is_open_route(path: &str) -> bool {
    path == "/healthz" || path == "/readyz" || path == "/" || path.starts_with("/assets/")
}

/// Writes are every method but GET and HEAD (admin routes are POSTs).
fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The middleware: 401 `unauthorized` when the route needs the token and the request does not
/// carry `Authorization: Bearer <token>`.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.token() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let needs = if is_read(request.method()) {
        state.token_for_reads() && !is_open_route(path)
    } else {
        true
    };
    if !needs {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match given {
        Some(given) if constant_time_eq(given, token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::new("unauthorized", "wrong bearer token").into_response(),
        None => ApiError::new(
            "unauthorized",
            "this route needs `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
        // A missing byte never matches, even when the expected byte is 0 or 0xff.
        assert!(!constant_time_eq(b"a", b"a\0"));
        assert!(!constant_time_eq(b"a", b"a\xff"));
    }
}
