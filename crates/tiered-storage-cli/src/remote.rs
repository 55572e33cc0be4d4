//! The read commands against a running service (`--url`): a small blocking HTTP client.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tiered_storage::TransactionRecord;

use crate::error::{CliError, CliResult};

/// A service base URL and its bearer token.
pub struct Remote {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// Read a token file: its content trimmed, which must not be empty.
pub fn read_token(path: &Path) -> CliResult<String> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::file("read", path, e))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::new(
            crate::error::Kind::File,
            format!("token file {} is empty", path.display()),
        ));
    }
    Ok(token.to_owned())
}

impl Remote {
    pub fn new(url: &str, token: Option<String>) -> CliResult<Self> {
        let base = url.trim_end_matches('/');
        let rest = base.strip_prefix("http://").ok_or_else(|| {
            CliError::usage(format!(
                "--url {url}: expected http://HOST:PORT (this client speaks plain HTTP; put TLS in a proxy in front of it)"
            ))
        })?;
        if rest.is_empty() {
            return Err(CliError::usage(format!("--url {url}: no host")));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Self {
            agent,
            base: base.to_owned(),
            token,
        })
    }

    /// GET a JSON document. `Ok(None)` for a 404 whose code is `not_found`; any other error
    /// status is an error carrying the service's code and message.
    pub fn get_json(&self, path_and_query: &str) -> CliResult<Option<Value>> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request
            .call()
            .map_err(|e| CliError::remote(format!("GET {url}: {e}")))?;
        answer("GET", &url, response)
    }

    /// POST `body` as JSON and read the JSON answer (errors as in [`get_json`](Self::get_json)).
    pub fn post_json(&self, path: &str, body: &Value) -> CliResult<Option<Value>> {
        let url = format!("{}{}", self.base, path);
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request
            .send(body.to_string())
            .map_err(|e| CliError::remote(format!("POST {url}: {e}")))?;
        answer("POST", &url, response)
    }

    pub fn record(&self, path: &str) -> CliResult<Option<TransactionRecord>> {
        match self.get_json(path)? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| CliError::remote(format!("GET {path}: not a record: {e}"))),
        }
    }

    /// One page of `GET /v1/records`: the records and the `next` cursor.
    pub fn records_page(
        &self,
        query: &[(&str, String)],
    ) -> CliResult<(Vec<TransactionRecord>, Option<String>)> {
        let path = format!("/v1/records{}", query_string(query));
        let value = self
            .get_json(&path)?
            .ok_or_else(|| CliError::remote(format!("GET {path}: not found")))?;
        let records = records_of(&value, &path)?;
        let next = value.get("next").and_then(|n| match n {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ok((records, next))
    }

    /// `GET /v1/records/recent?limit=N`: newest first.
    pub fn recent(&self, limit: usize) -> CliResult<Vec<TransactionRecord>> {
        let path = format!("/v1/records/recent?limit={limit}");
        let value = self
            .get_json(&path)?
            .ok_or_else(|| CliError::remote(format!("GET {path}: not found")))?;
        records_of(&value, &path)
    }
}

/// A response's JSON: the document on success; `None` for a 404 `not_found`; otherwise an
/// error naming the status, the service's code and its message.
fn answer(
    method: &str,
    url: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> CliResult<Option<Value>> {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| CliError::remote(format!("{method} {url}: reading the answer: {e}")))?;
    let value: Option<Value> = serde_json::from_str(&body).ok();
    if (200..300).contains(&status) {
        return value
            .map(Some)
            .ok_or_else(|| CliError::remote(format!("{method} {url}: the answer is not JSON")));
    }
    let code = value
        .as_ref()
        .and_then(|v| v.pointer("/error/code"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let message = value
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.chars().take(200).collect());
    if status == 404 && code == "not_found" {
        return Ok(None);
    }
    let hint = if status == 401 {
        " (pass --token-file with the service's token)"
    } else {
        ""
    };
    Err(CliError::remote(format!(
        "{method} {url}: HTTP {status} {code}: {message}{hint}"
    )))
}

fn records_of(value: &Value, path: &str) -> CliResult<Vec<TransactionRecord>> {
    let list = value
        .get("records")
        .cloned()
        .ok_or_else(|| CliError::remote(format!("GET {path}: no `records` in the answer")))?;
    serde_json::from_value(list)
        .map_err(|e| CliError::remote(format!("GET {path}: not a list of records: {e}")))
}

/// `?a=1&b=x` with every value percent-encoded; empty for no pairs.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

/// A path segment: as [`percent_encode`], and dots too, so `.` and `..` stay a segment's
/// text and are never resolved as relative path steps on the way.
pub fn path_segment(s: &str) -> String {
    percent_encode(s).replace('.', "%2E")
}

/// Percent-encode everything but RFC 3986's unreserved characters, so a value is one query
/// value or one path segment whatever it holds (`/`, `?`, `%`, spaces).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(percent_encode("a/b ..%2F"), "a%2Fb%20..%252F");
        assert_eq!(
            query_string(&[
                ("since", "2026-11-30T00:00:00+01:00".into()),
                ("limit", "5".into())
            ]),
            "?since=2026-11-30T00%3A00%3A00%2B01%3A00&limit=5"
        );
        assert_eq!(query_string(&[]), "");
        assert_eq!(path_segment(".."), "%2E%2E");
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        assert!(Remote::new("https://x", None).is_err());
        assert!(Remote::new("http://", None).is_err());
        assert!(Remote::new("http://127.0.0.1:1/", None).is_ok());
    }
}
