//! The bearer token: compared in constant time, required for writes and admin routes, and for
//! reads too when `token_for_reads` is set.

use axum::extract::Request;
use axum::http::{header, Method};

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

/// Writes are every method but GET and HEAD (admin routes are POSTs), except `POST /v1/sql`,
/// a read-only query sent as a body.
fn is_read(method: &Method, path: &str) -> bool {
    method == Method::GET || method == Method::HEAD || (method == Method::POST && path == SQL_PATH)
}

/// The SQL route: a POST with the token rules of a read.
pub(crate) const SQL_PATH: &str = "/v1/sql";

/// Refuse (401 `unauthorized`) a request to a guarded route (`/v1/...`, `/metrics`) that needs
/// the token and does not carry `Authorization: Bearer <token>`: every write, and reads too
/// with `token_for_reads`. The probes and the dashboard's files are never guarded.
pub(crate) fn check(state: &AppState, request: &Request) -> Result<(), ApiError> {
    let Some(token) = state.token() else {
        return Ok(());
    };
    if is_read(request.method(), request.uri().path()) && !state.token_for_reads() {
        return Ok(());
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match given {
        Some(given) if constant_time_eq(given, token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new("unauthorized", "wrong bearer token")),
        None => Err(ApiError::new(
            "unauthorized",
            "this route needs `Authorization: Bearer <token>`",
        )),
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
