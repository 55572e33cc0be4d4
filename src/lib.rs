//! A tiered record store for a Solana trading bot: microsecond reads of recent trades from an
//! in-memory cache, durable group-committed writes to SQLite, and compressed Parquet history
//! that DuckDB, Polars and Spark read directly.
//!
//! ```text
//! put/update/remove ──► warm (SQLite WAL, group commit) ──ack──► hot cache refreshed
//! get(id|signature) ──► hot (moka) ─miss─► warm ─miss─► cold    (promote on the Nth read)
//! archive_now       ──► warm rows older than warm_to_cold_age ──► cold/date=YYYY-MM-DD/*.parquet
//! maintenance step  ──► warm upkeep · rate-limited archival · compaction · metrics · alerts
//! ```
//!
//! Hot is only a cache: every record in it is also in warm or cold, so losing it loses nothing.
//! A write returns after its SQLite transaction commits (see [`Durability`] for what survives
//! what). A record lives in warm or in exactly one live cold file; every move between them
//! commits in one SQLite transaction.
//!
//! # Basic example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tiered_storage::Result<()> {
//! # let _dir = tempfile::tempdir().unwrap();
//! # std::env::set_var(tiered_storage::config::DATA_DIR_ENV, _dir.path());
//! # let mut transaction_record = tiered_storage::TransactionRecord::default();
//! # transaction_record.transaction_signature = Some("tx_sig_123".into());
//! use tiered_storage::{AutoTieringCoordinator, TieringConfig};
//!
//! // Create coordinator with default settings
//! let coordinator = AutoTieringCoordinator::with_defaults().await?;
//!
//! // Store a record
//! let id = coordinator.put(&transaction_record).await?;
//!
//! // Retrieve by ID (checks all tiers, hot → warm → cold)
//! let record = coordinator.get(id).await?;
//!
//! // Retrieve by signature
//! let record = coordinator.get_by_signature("tx_sig_123").await?;
//! # assert_eq!(record.unwrap().id, Some(id));
//! # Ok(()) }
//! ```
//!
//! # Custom configuration
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tiered_storage::Result<()> {
//! # let _dir = tempfile::tempdir().unwrap();
//! # std::env::set_var(tiered_storage::config::DATA_DIR_ENV, _dir.path());
//! use tiered_storage::{AutoTieringCoordinator, TieringConfig};
//!
//! // Create custom configuration
//! let config = TieringConfig {
//!     hot_to_warm_age: 300,        // 5 minutes
//!     warm_to_cold_age: 3600,      // 1 hour
//!     maintenance_interval: 60,     // 1 minute
//!     auto_promote_on_access: true,
//!     min_hot_access_count: 2,
//! };
//!
//! let coordinator = AutoTieringCoordinator::new(config).await?;
//! # assert_eq!(coordinator.config().tiering.hot_to_warm_age, 300);
//! # Ok(()) }
//! ```
//!
//! Everything beyond the seed's five policy fields (data directory, hot capacity, SQLite
//! settings, limits) is in [`StorageConfig`], which `new` also accepts and which loads from TOML.
//!
//! # Direct tier access
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tiered_storage::Result<()> {
//! # let _dir = tempfile::tempdir().unwrap();
//! # std::env::set_var(tiered_storage::config::DATA_DIR_ENV, _dir.path());
//! # use tiered_storage::{AutoTieringCoordinator, StorageTier};
//! # let coordinator = AutoTieringCoordinator::with_defaults().await?;
//! # let record = tiered_storage::TransactionRecord::default();
//! # let id = coordinator.put(&record).await?;
//! // Access individual tiers for advanced use cases
//! let hot_tier = coordinator.hot_tier();
//! let warm_tier = coordinator.warm_tier();
//! let cold_tier = coordinator.cold_tier();
//! # let _ = cold_tier;
//!
//! // Store directly in specific tier
//! warm_tier.put(&record).await?;
//!
//! // Check if record exists in hot tier
//! if hot_tier.contains(id).await? {
//!     println!("Record is in hot tier");
//! }
//! # assert!(hot_tier.contains(id).await?);
//! # Ok(()) }
//! ```
//!
//! # The cold tier
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tiered_storage::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let coordinator = tiered_storage::AutoTieringCoordinator::new(
//! #     tiered_storage::StorageConfig::default().with_data_dir(dir.path())).await?;
//! # let mut old = tiered_storage::TransactionRecord::default();
//! # old.transaction_signature = Some("sig-of-an-old-trade".into());
//! # old.actual_outcome = tiered_storage::Outcome::Profit(0.1);
//! # old.scored_candidate.base.program = "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P".into();
//! # let id = coordinator.put(&old).await?; // timestamp 0: older than warm_to_cold_age
//! # let (day_start_ms, day_end_ms) = (0, 86_399_999);
//! use tiered_storage::ScanRange;
//!
//! // Move warm records older than warm_to_cold_age to cold/date=YYYY-MM-DD/part-N.parquet.
//! let report = coordinator.archive_now().await?;
//! println!("{} records archived into {} files", report.archived, report.files);
//!
//! // Archived records read back exactly as before: by id, by signature, in scans.
//! let record = coordinator.get(id).await?;
//! # assert_eq!(report.archived, 1);
//! # assert_eq!(record.unwrap().transaction_signature, old.transaction_signature);
//!
//! // A range scan over every tier: time range, id range, and filters on outcome, mint and program.
//! // Cold files and row groups whose statistics exclude the range are skipped.
//! let range = ScanRange::default()
//!     .with_time(day_start_ms..=day_end_ms)
//!     .with_outcome("Profit")
//!     .with_program("6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P");
//! let mut cursor = coordinator.scan(range, 512)?;
//! while let Some(page) = cursor.next_page().await? {
//!     // ...
//! #   assert_eq!(page.len(), 1);
//! }
//!
//! // Merge small files and drop rows superseded by updates or deleted (tombstones).
//! let compaction = coordinator.compact_now().await?;
//!
//! // Check every file's footer against the catalog; files that do not match are quarantined.
//! let verify = coordinator.verify_cold().await?;
//! assert!(verify.problems.is_empty());
//! # let _ = compaction;
//! # Ok(()) }
//! ```
//!
//! # Metrics & monitoring
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tiered_storage::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let coordinator = tiered_storage::AutoTieringCoordinator::new(
//! #     tiered_storage::StorageConfig::default().with_data_dir(dir.path())).await?;
//! # coordinator.put(&tiered_storage::TransactionRecord::default()).await?;
//! // Collect metrics from all tiers
//! let metrics = coordinator.collect_metrics().await?;
//!
//! if let Some(hot) = metrics.hot {
//!     println!("Hot tier: {} records, {:.2}% hit rate",
//!         hot.record_count, hot.hit_rate());
//!     println!("P95 access time: {}µs", hot.p95_access_time_us);
//! #   assert_eq!(hot.record_count, 1);
//! }
//!
//! // Check for alerts
//! let alerts = coordinator.get_alerts().await;
//! for alert in alerts {
//!     println!("[{:?}] {}: {}",
//!         alert.severity, alert.tier_name, alert.message);
//! }
//!
//! // The same figures and the active alerts, as Prometheus text for a /metrics endpoint.
//! let text = coordinator.export_prometheus().await?;
//! # assert!(text.contains("hot_records 1"));
//! # Ok(()) }
//! ```
//!
//! # Background maintenance
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tiered_storage::Result<()> {
//! # let _dir = tempfile::tempdir().unwrap();
//! # std::env::set_var(tiered_storage::config::DATA_DIR_ENV, _dir.path());
//! # use tiered_storage::AutoTieringCoordinator;
//! use std::sync::Arc;
//!
//! let coordinator = Arc::new(AutoTieringCoordinator::with_defaults().await?);
//!
//! // Start automatic maintenance loop (runs in background)
//! let coordinator_clone = coordinator.clone();
//! tokio::spawn(async move {
//!     coordinator_clone.start_maintenance_loop().await;
//! });
//!
//! // On the way out: finish the current step, stop the loop, let writes in flight complete,
//! // flush access statistics. Later writes fail with `Error::Closed`.
//! coordinator.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Tests and simulations give the store a [`ManualClock`]
//! (`StorageConfig::default().with_clock(clock.clone())`): ageing, hot-tier TTL, the metrics
//! window and alert times then move only when the test moves the clock.
//!
//! # Custom storage tiers
//!
//! Implement [`StorageTier`] (with `#[async_trait]`, as in the seed):
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use parking_lot::Mutex;
//! use tiered_storage::{Record, Result, StorageTier, TierMetrics, TransactionRecord};
//!
//! #[derive(Default)]
//! struct MyCustomTier {
//!     records: Mutex<BTreeMap<i64, TransactionRecord>>,
//! }
//!
//! #[async_trait]
//! impl StorageTier for MyCustomTier {
//!     async fn get(&self, id: i64) -> Result<Option<TransactionRecord>> {
//!         Ok(self.records.lock().get(&id).cloned())
//!     }
//!     async fn get_by_signature(&self, sig: &str) -> Result<Option<TransactionRecord>> {
//!         Ok(self.records.lock().values().find(|r| r.signature() == Some(sig)).cloned())
//!     }
//!     async fn put(&self, record: &TransactionRecord) -> Result<i64> {
//!         let mut map = self.records.lock();
//!         let id = record.id.unwrap_or_else(|| map.keys().last().map_or(1, |k| k + 1));
//!         let mut r = record.clone();
//!         r.id = Some(id);
//!         map.insert(id, r);
//!         Ok(id)
//!     }
//!     async fn remove(&self, id: i64) -> Result<bool> {
//!         Ok(self.records.lock().remove(&id).is_some())
//!     }
//!     async fn list_since(&self, since_ms: i64, after: Option<i64>, limit: usize)
//!         -> Result<Vec<TransactionRecord>> {
//!         let map = self.records.lock();
//!         Ok(map
//!             .range(after.map_or(i64::MIN, |a| a + 1)..)
//!             .map(|(_, r)| r)
//!             .filter(|r| r.timestamp_ms() >= since_ms)
//!             .take(limit)
//!             .cloned()
//!             .collect())
//!     }
//!     async fn count(&self) -> Result<u64> {
//!         Ok(self.records.lock().len() as u64)
//!     }
//!     async fn get_metrics(&self) -> Result<TierMetrics> {
//!         Ok(TierMetrics { tier_name: "custom".into(), record_count: self.count().await?, ..Default::default() })
//!     }
//!     fn tier_name(&self) -> &'static str { "custom" }
//!     fn target_access_time(&self) -> Duration { Duration::from_millis(1) }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! # let tier = MyCustomTier::default();
//! # let id = tier.put(&TransactionRecord::default()).await?;
//! # assert!(tier.contains(id).await?);
//! # Ok(()) }
//! ```
//!
//! # Your own record type
//!
//! The store is generic over [`Record`]; `TransactionRecord` is the default. Open a store of
//! another type with [`AutoTieringCoordinator::open`].

#![warn(missing_docs)]

mod blocking;
mod catalog;
mod clock;
mod cold_storage;
mod columnar;
pub mod config;
mod coordinator;
mod dir_lock;
mod error;
mod failpoint;
#[doc(hidden)]
pub mod fuzzing;
mod hot_storage;
mod metrics;
mod record;
mod tier;
mod warm_storage;

pub use catalog::{CatalogEntry, FileState};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cold_storage::{
    ColdArchiveStorage, ColdFileProblem, ColdStats, ProblemKind, VerifyReport, COLD_DIR,
    COLD_TARGET_ACCESS_TIME,
};
pub use config::{
    AlertConfig, ClockHandle, ColdConfig, Durability, HotConfig, MaintenanceConfig, MetricsConfig,
    StorageConfig, TieringConfig, WarmConfig,
};
pub use coordinator::{
    ArchiveReport, AutoTieringCoordinator, BackupReport, CompactionReport, IntegrityReport,
    MaintenanceStatus, MaintenanceStepReport, RebuildReport, RecordCursor, ScanRange, StorageStats,
    TieredMetrics, DEFAULT_LIST_PAGE_SIZE,
};
pub use dir_lock::LOCK_FILE;
pub use error::{Error, Result};
pub use failpoint::{CRASH_AT_ENV, CRASH_POINTS};
pub use hot_storage::{HotMemoryStorage, HOT_TARGET_ACCESS_TIME};
pub use metrics::alerts::{Alert, AlertKind, AlertSeverity};
pub use metrics::{
    HistogramSnapshot, LatencyHistogram, RecentHistogram, RecentSnapshot, TierMetrics,
};
pub use record::{Outcome, PremintCandidate, Record, ScoredCandidate, TransactionRecord};
pub use tier::StorageTier;
/// Content type of [`AutoTieringCoordinator::export_prometheus`]'s text, for an HTTP response.
pub const PROMETHEUS_CONTENT_TYPE: &str = metrics::prometheus::CONTENT_TYPE;

pub use warm_storage::{
    WarmSqliteStorage, WarmUpkeepReport, SCHEMA_VERSION, WARM_DB_FILE, WARM_TARGET_ACCESS_TIME,
};
