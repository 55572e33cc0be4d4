//! An HTTP/JSON service over a tiered-storage store, for processes that are not Rust (a Python
//! analytics job, a dashboard) and for operators: records by id and by signature, puts and
//! NDJSON batch ingest, keyset-paginated scans, stats, alerts, a metrics history, Prometheus
//! text, admin tasks, health probes, and an embedded dashboard at `/`.
//!
//! ```text
//! client ──HTTP/1.1──► trace · JSON errors · 503 when shutting down
//!                      └─ /v1, /metrics: concurrency limit (503 overloaded) · bearer token
//!                         · timeout · body limits ──► handler ──► AutoTieringCoordinator
//! sampler task (every 5 s) ──► collect_metrics ──► history ring (1 h) ──► GET /v1/history
//! maintenance loop (the store's) runs inside the service
//! ```
//!
//! - Wire format: [`api`] (a record is `TransactionRecord`'s serde JSON; unknown fields are
//!   refused), errors `{"error": {"code", "message"}}` with stable codes ([`error`]).
//! - Safe by default: [`ServerConfig::listen`] is 127.0.0.1:8080; a non-loopback address needs
//!   a token; the token (compared in constant time) guards writes and admin routes, and reads
//!   with [`ServerConfig::token_for_reads`] (the dashboard's files and the probes stay open).
//! - Lifecycle: [`serve`] runs until SIGTERM or Ctrl-C, then stops accepting, lets in-flight
//!   requests finish, and shuts the store down so every acknowledged write is durable.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tiered_storage::{AutoTieringCoordinator, StorageConfig};
//! use tiered_storage_server::{serve, ServerConfig};
//!
//! let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir("store")).await?;
//! serve(Arc::new(store), ServerConfig::default()).await?; // until SIGTERM / Ctrl-C
//! # Ok(()) }
//! ```
//!
//! The routes, limits and error codes are listed in the crate's `README.md`.

#![warn(missing_docs)]

mod alloc;
pub mod api;
pub mod assets;
mod auth;
pub mod error;
pub mod history;
mod routes;
mod server;
pub mod stats;
pub mod time;

pub use alloc::trim_freed_memory_while_serving;
pub use auth::constant_time_eq;
pub use routes::{
    AlertsResponse, BATCH_CHUNK_LINES, DEFAULT_PAGE_LIMIT, DEFAULT_RECENT_LIMIT, MAX_PAGE_LIMIT,
    OUTCOME_KINDS,
};
pub use server::{
    check_listen, router, serve, serve_on, serve_with_shutdown, AppState, ServeError, ServerConfig,
    DEFAULT_CONCURRENCY_LIMIT, DEFAULT_LISTEN, DEFAULT_MAX_BATCH_BYTES, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SAMPLE_INTERVAL, JSON_BYTES_PER_RECORD_BYTE,
};
