//! A tiered record store for a Solana trading bot: microsecond reads of recent trades from an
//! in-memory cache, durable group-committed writes to SQLite, and compressed Parquet history
//! that DuckDB, Polars and Spark read directly.
//!
//! ```text
//! put/update/remove ──► warm (SQLite WAL, group commit) ──ack──► hot cache refreshed
//! get(id|signature) ──► hot (moka) ─miss─► warm ─miss─► cold    (promote on the Nth read)
//! maintenance step  ──► warm upkeep · archival of old records ──► cold/date=YYYY-MM-DD/*.parquet
//!                       · compaction · alerts
//! ```
//!
//! Hot is only a cache: every record in it is also in warm or cold, so losing it loses nothing.
//! A write returns after its SQLite transaction commits (see [`Durability`] for what survives
//! what). A record lives in warm or in exactly one live cold file; every move between them
//! commits in one SQLite transaction.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tiered_storage::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! use tiered_storage::{AutoTieringCoordinator, Outcome, StorageConfig, TransactionRecord};
//!
//! let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
//!
//! let mut trade = TransactionRecord {
//!     transaction_signature: Some("5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnb".into()),
//!     timestamp_decision_made: 1_764_480_000_000, // Unix ms: the record's time for ageing
//!     ..Default::default()
//! };
//! let id = store.put(&trade).await?;
//!
//! trade.id = Some(id);
//! trade.actual_outcome = Outcome::Profit(0.076);
//! store.update(&trade).await?;
//!
//! let by_signature = store.get_by_signature("5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnb").await?;
//! assert_eq!(by_signature.map(|t| t.actual_outcome), Some(Outcome::Profit(0.076)));
//! store.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Where to read on
//!
//! - The user's guide is the crate's `README.md`: a complete program that opens the store from
//!   TOML, the fields of [`TransactionRecord`] and their Parquet columns, the contracts (one
//!   owner per data directory, units and signs, draining a [`RecordCursor`]), operations
//!   (maintenance, metrics, alerts, backup), the configuration reference and the errors. Its
//!   examples run as doc tests.
//! - [`AutoTieringCoordinator`] is the store; its methods' docs have examples.
//! - [`StorageConfig`] holds every setting and loads from TOML.
//! - [`Record`] is the trait the store is generic over, for a record type of your own;
//!   [`StorageTier`] is the trait each tier implements.
//! - `ARCHITECTURE.md` describes the design and the invariants; `BENCHMARKS.md` the
//!   measurements.

#![warn(missing_docs)]

/// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod blocking;
mod catalog;
mod clock;
mod cold_storage;
pub mod config;
mod coordinator;
mod dir_lock;
mod error;
mod failpoint;
/// Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature; not an API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hot_storage;
mod metrics;
mod monitor;
mod record;
mod tier;
mod warm_storage;

pub use catalog::{CatalogEntry, DeleteFileEntry, FileState};
pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "s3")]
pub use cold_storage::store::object::{
    drop_memory_store, memory_store, set_memory_store_failing, ObjectCacheMetrics,
    ObjectStoreCounters, ObjectStoreMetrics,
};
pub use cold_storage::{
    ColdArchiveStorage, ColdFileProblem, ColdStats, ProblemKind, ReplicaLagMetrics, ReplicaProblem,
    ReplicaProblemKind, ReplicationReport, StoreFailureMetrics, SweepReport, VerifyReport,
};
pub use config::{
    AlertConfig, ColdConfig, Durability, HotConfig, MaintenanceConfig, MetricsConfig,
    QueryCacheConfig, SqlConfig, StorageConfig, TieringConfig, WarmConfig,
};
pub use coordinator::{
    Aggregate, AggregateRow, ArchiveProgress, ArchiveReport, AutoTieringCoordinator, BackupReport,
    BatchCursor, CompactionProgress, CompactionReport, ExportFormat, ExportReport, GroupBy,
    GroupKey, IntegrityReport, MaintenanceStatus, MaintenanceStepReport, Measure, PublishReport,
    RebuildReport, RecordCursor, ScanOrder, ScanRange,
};
#[cfg(feature = "sql")]
pub use coordinator::{SqlRows, SqlValue};
pub use error::{Error, Result};
/// The crash points of the crash tests (the `failpoints` feature; not an API).
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub use failpoint::{CRASH_AT_ENV, CRASH_POINTS};
pub use hot_storage::HotMemoryStorage;
pub use metrics::TierMetrics;
pub use monitor::alerts::{Alert, AlertKind, AlertSeverity};
pub use monitor::{QueryCacheMetrics, StorageStats, TieredMetrics};
pub use record::{
    Outcome, OutcomeKind, PremintCandidate, Record, ScoredCandidate, TransactionRecord,
};
pub use tier::StorageTier;
/// Content type of [`AutoTieringCoordinator::export_prometheus`]'s text, for an HTTP response.
pub const PROMETHEUS_CONTENT_TYPE: &str = monitor::prometheus::CONTENT_TYPE;

pub use warm_storage::{WarmSqliteStorage, WarmUpkeepReport};
