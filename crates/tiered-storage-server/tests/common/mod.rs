//! Helpers shared by the service's tests: a store in a temporary directory, records, and
//! one-shot requests through the router.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
use tiered_storage_server::{router, AppState, ServerConfig};
use tower::ServiceExt;

pub const TOKEN: &str = "s3cret-token";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Arc<AutoTieringCoordinator>,
    pub app: axum::Router,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub async fn harness(config: ServerConfig) -> Harness {
    harness_with(config, |c| c).await
}

pub async fn harness_with(
    config: ServerConfig,
    store_config: impl FnOnce(StorageConfig) -> StorageConfig,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        AutoTieringCoordinator::new(store_config(
            StorageConfig::default().with_data_dir(dir.path().join("store")),
        ))
        .await
        .unwrap(),
    );
    let app = router(AppState::new(store.clone(), &config));
    Harness { dir, store, app }
}

pub fn with_token(for_reads: bool) -> ServerConfig {
    ServerConfig {
        token: Some(TOKEN.into()),
        token_for_reads: for_reads,
        ..ServerConfig::default()
    }
}

/// A record decided `age_ms` ago, with this signature.
pub fn record(signature: Option<&str>, age_ms: i64) -> TransactionRecord {
    let mut r = TransactionRecord {
        transaction_signature: signature.map(str::to_owned),
        timestamp_decision_made: now_ms() - age_ms,
        ..TransactionRecord::default()
    };
    r.scored_candidate.base.mint = "MintA".into();
    r.scored_candidate.base.program = "ProgA".into();
    r
}

pub fn json_line(r: &TransactionRecord) -> String {
    serde_json::to_string(r).unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of a JSON error body (and checks its shape).
    pub fn code(&self) -> String {
        let v = self.json();
        let message = v["error"]["message"].as_str().expect("error.message");
        assert!(!message.contains('\n'), "multi-line message: {message}");
        v["error"]["code"].as_str().expect("error.code").to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    call_with_headers(app, method, uri, &headers, body).await
}

pub async fn call_with_headers(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &axum::Router, uri: &str) -> Reply {
    call(app, Method::GET, uri, None, Body::empty()).await
}

pub async fn post(app: &axum::Router, uri: &str, body: impl Into<Body>) -> Reply {
    call(app, Method::POST, uri, None, body).await
}

/// A keep-alive HTTP/1.1 connection to a real socket (hyper's client, no pool).
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
}

impl Conn {
    pub async fn open(addr: std::net::SocketAddr) -> std::io::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// One request; an error when the connection is gone.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), hyper::Error> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .unwrap();
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }
}
