//! The service: its settings, the router with its layers (limits, timeout, concurrency, auth,
//! tracing), and the lifecycle (maintenance inside, graceful shutdown, then the store's).

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{BoxError, Router};
use tiered_storage::AutoTieringCoordinator;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::assets;
use crate::error::ApiError;
use crate::history::History;
use crate::routes;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// Default time a request may take (admin routes excepted). Default: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of requests handled at once; more are refused with 503 `overloaded`.
/// Default: 1,024.
pub const DEFAULT_CONCURRENCY_LIMIT: usize = 1024;
/// Default largest batch body. Default: 64 MiB.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Default time between metrics samples. Default: 5 s.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// A record's JSON body may be this many times the store's `max_record_bytes` (its encoded
/// size limit): JSON spells numbers and escapes in more bytes than the binary encoding.
pub const JSON_BYTES_PER_RECORD_BYTE: usize = 4;
/// How long shutdown waits for in-flight requests past the request timeout before it closes
/// the store anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The service's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen. A non-loopback address needs a `token`. Default: 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// The bearer token writes and admin routes require (and reads, with `token_for_reads`).
    /// Default: none.
    pub token: Option<String>,
    /// Require the token for reads too (the dashboard's files, `/healthz` and `/readyz` stay
    /// open). Default: false.
    pub token_for_reads: bool,
    /// Most time a request may take; then 408 `timeout`. Admin routes run to the end.
    pub request_timeout: Duration,
    /// Requests handled at once; more get 503 `overloaded` at once rather than queueing.
    pub concurrency_limit: usize,
    /// Largest body of `POST /v1/records:batch`.
    pub max_batch_bytes: usize,
    /// Time between the metrics history's samples.
    pub sample_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            token: None,
            token_for_reads: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            concurrency_limit: DEFAULT_CONCURRENCY_LIMIT,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
        }
    }
}

/// Why the service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address is reachable from other hosts and no token is set.
    #[error("refusing to listen on {addr} without a token: it is not a loopback address (configure a token, or listen on 127.0.0.1)")]
    InsecureListen {
        /// The address.
        addr: SocketAddr,
    },
    /// The token is empty or has whitespace or control characters in it.
    #[error("the token must be non-empty printable ASCII without spaces")]
    BadToken,
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The store failed to shut down (or to start).
    #[error("{0}")]
    Store(#[from] tiered_storage::Error),
}

/// What the handlers share.
#[derive(Debug)]
struct Shared {
    store: Arc<AutoTieringCoordinator>,
    token: Option<String>,
    token_for_reads: bool,
    record_body_limit: usize,
    max_batch_bytes: usize,
    request_timeout: Duration,
    concurrency_limit: usize,
    history: Arc<History>,
    shutting_down: AtomicBool,
}

/// The handlers' state: the store and the service's settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// State for serving `store` with `config`.
    pub fn new(store: Arc<AutoTieringCoordinator>, config: &ServerConfig) -> Self {
        let record_body_limit = store
            .config()
            .max_record_bytes
            .saturating_mul(JSON_BYTES_PER_RECORD_BYTE);
        AppState(Arc::new(Shared {
            store,
            token: config.token.clone(),
            token_for_reads: config.token_for_reads,
            record_body_limit,
            max_batch_bytes: config.max_batch_bytes,
            request_timeout: config.request_timeout,
            concurrency_limit: config.concurrency_limit.max(1),
            history: Arc::new(History::new(config.sample_interval)),
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// The store.
    pub fn store(&self) -> &Arc<AutoTieringCoordinator> {
        &self.0.store
    }

    /// The metrics history.
    pub fn history(&self) -> &Arc<History> {
        &self.0.history
    }

    /// The token, when one is configured.
    pub fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    /// Whether reads need the token too.
    pub fn token_for_reads(&self) -> bool {
        self.0.token_for_reads
    }

    /// Largest body of a single-record route (and line of a batch).
    pub fn record_body_limit(&self) -> usize {
        self.0.record_body_limit
    }

    /// Mark the service as shutting down: `/readyz` and new requests answer 503.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::Release);
    }

    /// Whether shutdown began.
    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::Acquire)
    }
}

/// The one middleware every request passes: 503 `shutting_down` once shutdown began (in-flight
/// requests finish; the probes still answer), the bearer token on `/v1` and `/metrics`, and a
/// JSON error body on error responses made by the layers or by axum itself (a body over its
/// limit, a timeout, a path parameter that is not UTF-8). One layer rather than three: each
/// layer costs an allocation and a service clone per request.
async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if state.is_shutting_down() && path != "/healthz" && path != "/readyz" {
        return ApiError::new(
            "shutting_down",
            "the service is shutting down; retry against its successor",
        )
        .into_response();
    }
    if path.starts_with("/v1/") || path == "/metrics" {
        if let Err(refused) = crate::auth::check(&state, &request) {
            return refused.into_response();
        }
    }
    let response = next.run(request).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        json_error_body(response).await
    } else {
        response
    }
}

/// The response as a JSON error, unless it is one already.
async fn json_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "timeout",
        StatusCode::NOT_FOUND => "route_not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::SERVICE_UNAVAILABLE => "overloaded",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match (code, text.trim()) {
        ("payload_too_large", _) => "the request body is over this route's limit".to_owned(),
        ("timeout", _) => "the request took longer than the service's request timeout".to_owned(),
        (_, "") => status.canonical_reason().unwrap_or("error").to_owned(),
        (_, t) => t.to_owned(),
    };
    let mut error = ApiError::new(code, message);
    error.status = status;
    let mut json = error.into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    json
}

async fn route_not_found(request: Request) -> ApiError {
    ApiError::new(
        "route_not_found",
        format!("no route for {}", request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn overloaded(_: BoxError) -> ApiError {
    ApiError::new("overloaded", "too many requests in progress; retry shortly")
}

/// The service's routes and layers over `state`: JSON API under `/v1`, `/metrics`, health
/// probes, the dashboard at `/`. Used by [`serve`]; tests drive it with `tower::ServiceExt`.
pub fn router(state: AppState) -> Router {
    let record_limit = state.record_body_limit();
    let batch_limit = state.0.max_batch_bytes;
    let timeout = state.0.request_timeout;

    let records = Router::new()
        .route(
            "/v1/records",
            get(routes::scan_records).post(routes::put_record),
        )
        .route("/v1/records/recent", get(routes::recent_records))
        .route(
            "/v1/records/{id}",
            get(routes::get_record)
                .put(routes::update_record)
                .delete(routes::delete_record),
        )
        .route(
            "/v1/records/by-signature/{sig}",
            get(routes::get_by_signature),
        )
        .route(crate::auth::SQL_PATH, post(routes::sql_query))
        .route("/v1/stats", get(routes::stats))
        .route("/v1/alerts", get(routes::alerts))
        .route("/v1/history", get(routes::history))
        .route("/metrics", get(routes::metrics))
        .layer(DefaultBodyLimit::max(record_limit))
        .layer(RequestBodyLimitLayer::new(record_limit));
    let batch = Router::new()
        .route("/v1/records:batch", post(routes::put_batch))
        .layer(DefaultBodyLimit::max(batch_limit))
        .layer(RequestBodyLimitLayer::new(batch_limit));
    let timed = records.merge(batch).layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        timeout,
    ));
    // Admin tasks run to the end (a client going away does not stop them): no timeout.
    let admin = Router::new()
        .route("/v1/admin/archive", post(routes::admin_archive))
        .route("/v1/admin/compact", post(routes::admin_compact))
        .route("/v1/admin/verify", post(routes::admin_verify))
        .layer(DefaultBodyLimit::max(record_limit))
        .layer(RequestBodyLimitLayer::new(record_limit));
    let limited = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            state.0.concurrency_limit,
        ));
    let api = timed.merge(admin).layer(limited);
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .merge(api)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Refuse a listen address other hosts can reach unless a token guards it.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if let Some(token) = token {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServeError::BadToken);
        }
        return Ok(());
    }
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::InsecureListen { addr })
    }
}

/// Serve `store` until SIGTERM or Ctrl-C; see [`serve_with_shutdown`].
pub async fn serve(
    store: Arc<AutoTieringCoordinator>,
    config: ServerConfig,
) -> Result<(), ServeError> {
    serve_with_shutdown(store, config, std::future::pending()).await
}

/// Serve `store` on `config.listen` until `shutdown` resolves or SIGTERM/Ctrl-C arrives.
///
/// Refuses a non-loopback address without a token ([`ServeError::InsecureListen`]) before
/// binding. Runs the store's maintenance loop and the metrics sampler. On shutdown: new
/// requests get 503, the listener closes, in-flight requests finish (for at most the request
/// timeout plus a few seconds), then `store.shutdown()` makes every acknowledged write durable.
pub async fn serve_with_shutdown(
    store: Arc<AutoTieringCoordinator>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_listen(config.listen, config.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, store, config, shutdown).await
}

/// [`serve_with_shutdown`] on a listener the caller bound (e.g. to port 0, to learn the port
/// first). `config.listen` is ignored; the listener's address is checked instead.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    store: Arc<AutoTieringCoordinator>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    check_listen(addr, config.token.as_deref())?;
    let state = AppState::new(store.clone(), &config);
    let app = router(state.clone());

    let maintenance = tokio::spawn(store.clone().start_maintenance_loop());
    let (stop_sampler, sampler_stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(
        state
            .history()
            .clone()
            .run_sampler(store.clone(), sampler_stopped),
    );

    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let signal_state = state.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown => tracing::info!("shutdown requested"),
            _ = termination_signal() => tracing::info!("termination signal received"),
        }
        signal_state.begin_shutdown();
        let _ = signalled.send(());
    };
    tracing::info!(%addr, "serving");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .into_future(),
    );
    let served = tokio::select! {
        result = &mut server => result,
        _ = on_signal => {
            let drain = state.0.request_timeout + DRAIN_GRACE;
            match tokio::time::timeout(drain, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(?drain, "requests still in flight after the drain time; closing the store anyway");
                    server.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    state.begin_shutdown();
    stop_sampler.send_replace(true);
    let _ = sampler.await;
    let closed = store.shutdown().await;
    let _ = maintenance.await;
    tracing::info!("stopped");
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ServeError::Serve(e)),
        Err(e) => return Err(ServeError::Serve(std::io::Error::other(e.to_string()))),
    }
    closed?;
    Ok(())
}

/// SIGTERM or Ctrl-C (SIGINT). If a handler cannot be installed, that signal never arrives.
async fn termination_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_checks() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6_loop: SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(matches!(
            check_listen(public, None),
            Err(ServeError::InsecureListen { .. })
        ));
        assert!(check_listen(public, Some("t0ken")).is_ok());
        assert!(check_listen(DEFAULT_LISTEN, None).is_ok());
        assert!(check_listen(v6_loop, None).is_ok());
        assert!(matches!(
            check_listen(DEFAULT_LISTEN, Some("")),
            Err(ServeError::BadToken)
        ));
        assert!(matches!(
            check_listen(public, Some("a b")),
            Err(ServeError::BadToken)
        ));
        let msg = check_listen(public, None).unwrap_err().to_string();
        assert!(msg.contains("0.0.0.0:8080") && !msg.contains('\n'), "{msg}");
    }
}
