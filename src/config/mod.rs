//! Configuration: the tiering policy (`TieringConfig`) inside the full `StorageConfig`.
//!
//! `TieringConfig` keeps exactly its five policy fields, so a struct literal naming all five
//! keeps compiling. Everything else (data directory, hot capacity, SQLite settings, limits)
//! lives in `StorageConfig`, which embeds a `TieringConfig` and is what a TOML file describes.
//!
//! Each section of `StorageConfig` has its own file and its own `validate`: `hot`, `warm`,
//! `cold`, `maintenance`, `metrics`, `alerts`, `query_cache` and `sql`. Their types and `DEFAULT_*` constants are
//! re-exported here, so every path stays `config::…`.

mod alerts;
mod cold;
mod hot;
mod maintenance;
mod metrics;
mod query_cache;
mod sql;
mod warm;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{Error, Result};

pub use alerts::{
    AlertConfig, DEFAULT_ALERT_ARCHIVAL_GRACE_SECS, DEFAULT_ALERT_COLD_P95_TARGET_US,
    DEFAULT_ALERT_DEGRADATION_FACTOR, DEFAULT_ALERT_HISTORY_LIMIT,
    DEFAULT_ALERT_HOT_CAPACITY_CRITICAL_PCT, DEFAULT_ALERT_HOT_CAPACITY_WARNING_PCT,
    DEFAULT_ALERT_HOT_HIT_RATE_FLOOR_PCT, DEFAULT_ALERT_HOT_P95_TARGET_US,
    DEFAULT_ALERT_MIN_FREE_DISK_BYTES, DEFAULT_ALERT_MIN_SAMPLES, DEFAULT_ALERT_WARM_P95_TARGET_US,
};
pub use cold::{
    ColdConfig, ReplicaConfig, Secret, DEFAULT_COLD_ARCHIVE_BATCH_ROWS,
    DEFAULT_COLD_BLOOM_FILTER_COLUMNS, DEFAULT_COLD_CACHE_MAX_BYTES,
    DEFAULT_COLD_COMPACT_DEAD_FRACTION, DEFAULT_COLD_COMPACT_SMALL_FRACTION,
    DEFAULT_COLD_DATA_PAGE_ROWS, DEFAULT_COLD_FAILOVER_ALERT_AFTER,
    DEFAULT_COLD_MAX_OPEN_PARTITIONS, DEFAULT_COLD_METADATA_CACHE_MIB,
    DEFAULT_COLD_ORPHAN_GRACE_SECS, DEFAULT_COLD_READ_THREADS,
    DEFAULT_COLD_REPLICATION_LAG_ALERT_SECS, DEFAULT_COLD_REPLICATION_MAX_BYTES_PER_SEC,
    DEFAULT_COLD_ROW_GROUP_ROWS, DEFAULT_COLD_S3_MAX_RETRIES, DEFAULT_COLD_S3_TIMEOUT_SECS,
    DEFAULT_COLD_STRING_PAGE_ROWS, DEFAULT_COLD_TARGET_FILE_MIB, DEFAULT_COLD_ZSTD_LEVEL,
};
pub use hot::{HotConfig, DEFAULT_HOT_CAPACITY, DEFAULT_HOT_FREQUENCY_COUNTERS};
pub use maintenance::{
    MaintenanceConfig, DEFAULT_MAINTENANCE_ARCHIVE_COMMIT_ROWS,
    DEFAULT_MAINTENANCE_ARCHIVE_MAX_RECORDS_PER_STEP, DEFAULT_MAINTENANCE_ARCHIVE_RECORDS_PER_SEC,
    DEFAULT_MAINTENANCE_BACKLOG_INTERVAL_SECS, DEFAULT_MAINTENANCE_COMPACT,
};
pub use metrics::{MetricsConfig, DEFAULT_METRICS_WINDOW_SECS};
pub use query_cache::{QueryCacheConfig, DEFAULT_QUERY_CACHE_MAX_BYTES};
pub use sql::{SqlConfig, DEFAULT_SQL_MAX_ROWS, DEFAULT_SQL_TIMEOUT_MS};
pub use warm::{
    Durability, WarmConfig, DEFAULT_WARM_ACCESS_FLUSH_INTERVAL_MS,
    DEFAULT_WARM_ACCESS_FLUSH_THRESHOLD, DEFAULT_WARM_ACCESS_SAMPLE_EVERY,
    DEFAULT_WARM_BUSY_TIMEOUT_MS, DEFAULT_WARM_CACHE_MIB, DEFAULT_WARM_GROUP_COMMIT_WINDOW_US,
    DEFAULT_WARM_MAX_BATCH, DEFAULT_WARM_MMAP_MIB, DEFAULT_WARM_QUEUE_DEPTH,
    DEFAULT_WARM_READ_CONNECTIONS, DEFAULT_WARM_SIGNATURE_MERGE_THRESHOLD,
    DEFAULT_WARM_VACUUM_PAGES,
};

/// Default: 3600 s (1 hour) before a record leaves the hot tier.
pub const DEFAULT_HOT_TO_WARM_AGE: u64 = 3600;
/// Default: 604800 s (7 days) before a record is archived to the cold tier.
pub const DEFAULT_WARM_TO_COLD_AGE: u64 = 604_800;
/// Default: 300 s between maintenance runs.
pub const DEFAULT_MAINTENANCE_INTERVAL: u64 = 300;
/// Default: `true`, reads promote frequently accessed records to the hot tier.
pub const DEFAULT_AUTO_PROMOTE_ON_ACCESS: bool = true;
/// Default: 2, a record is promoted on its 2nd read that misses hot.
pub const DEFAULT_MIN_HOT_ACCESS_COUNT: u64 = 2;

/// Default: `tiered_storage_data` in the working directory, unless the environment variable
/// [`DATA_DIR_ENV`] names another directory.
pub const DEFAULT_DATA_DIR: &str = "tiered_storage_data";
/// Environment variable that overrides [`DEFAULT_DATA_DIR`] for `StorageConfig::default()`.
pub const DATA_DIR_ENV: &str = "TIERED_STORAGE_DATA_DIR";
/// Default: 64 KiB, the largest encoded record accepted.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// The tiering policy: when records move between tiers. Ages and intervals are in seconds.
///
/// ```
/// use tiered_storage::TieringConfig;
/// let config = TieringConfig {
///     hot_to_warm_age: 300,
///     warm_to_cold_age: 3600,
///     maintenance_interval: 60,
///     auto_promote_on_access: true,
///     min_hot_access_count: 2,
/// };
/// assert_eq!(TieringConfig::default().warm_to_cold_age, 604_800);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TieringConfig {
    /// Seconds a record stays in the hot tier after it was cached (the hot TTL).
    /// Default: [`DEFAULT_HOT_TO_WARM_AGE`].
    pub hot_to_warm_age: u64,
    /// Seconds after its timestamp before a record is archived to cold.
    /// Default: [`DEFAULT_WARM_TO_COLD_AGE`].
    pub warm_to_cold_age: u64,
    /// Seconds between background maintenance runs. Default: [`DEFAULT_MAINTENANCE_INTERVAL`].
    pub maintenance_interval: u64,
    /// Promote records read often to the hot tier. Default: [`DEFAULT_AUTO_PROMOTE_ON_ACCESS`].
    pub auto_promote_on_access: bool,
    /// A record is promoted on this many reads that missed hot (1 = on the first).
    /// Default: [`DEFAULT_MIN_HOT_ACCESS_COUNT`].
    pub min_hot_access_count: u64,
}

impl Default for TieringConfig {
    fn default() -> Self {
        Self {
            hot_to_warm_age: DEFAULT_HOT_TO_WARM_AGE,
            warm_to_cold_age: DEFAULT_WARM_TO_COLD_AGE,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            auto_promote_on_access: DEFAULT_AUTO_PROMOTE_ON_ACCESS,
            min_hot_access_count: DEFAULT_MIN_HOT_ACCESS_COUNT,
        }
    }
}

/// Upper bound for every age and interval: 100 years, in seconds. Larger values would overflow
/// millisecond arithmetic and exceed what moka accepts as a TTL.
pub const MAX_AGE_SECS: u64 = 100 * 365 * 24 * 3600;

impl TieringConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("tiering.hot_to_warm_age", self.hot_to_warm_age),
            ("tiering.warm_to_cold_age", self.warm_to_cold_age),
            ("tiering.maintenance_interval", self.maintenance_interval),
        ] {
            if v > MAX_AGE_SECS {
                return Err(Error::config(
                    field,
                    format!("must be at most {MAX_AGE_SECS} seconds (100 years)"),
                ));
            }
        }
        if self.hot_to_warm_age == 0 {
            return Err(Error::config(
                "tiering.hot_to_warm_age",
                "must be at least 1 second",
            ));
        }
        if self.warm_to_cold_age == 0 {
            return Err(Error::config(
                "tiering.warm_to_cold_age",
                "must be at least 1 second",
            ));
        }
        if self.maintenance_interval == 0 {
            return Err(Error::config(
                "tiering.maintenance_interval",
                "must be at least 1 second",
            ));
        }
        if self.min_hot_access_count == 0 {
            return Err(Error::config(
                "tiering.min_hot_access_count",
                "must be at least 1 (1 promotes on the first read)",
            ));
        }
        if self.min_hot_access_count > u64::from(u8::MAX) {
            return Err(Error::config(
                "tiering.min_hot_access_count",
                format!("must be at most {}", u8::MAX),
            ));
        }
        Ok(())
    }
}

/// The store's clock inside [`StorageConfig`]: the system clock unless a test or simulation
/// sets another (see [`StorageConfig::with_clock`]). Not part of TOML. Two handles are equal
/// when both are the system clock or both share one clock.
#[derive(Clone, Default)]
pub struct ClockHandle(Option<SharedClock>);

impl std::fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("SystemClock"),
            Some(c) => c.fmt(f),
        }
    }
}

impl PartialEq for ClockHandle {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl ClockHandle {
    /// Now, per this clock, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.get().now_ms()
    }

    /// The clock (one process-wide system clock when none was set).
    pub(crate) fn get(&self) -> SharedClock {
        static SYSTEM: std::sync::OnceLock<SharedClock> = std::sync::OnceLock::new();
        match &self.0 {
            Some(c) => Arc::clone(c),
            None => Arc::clone(SYSTEM.get_or_init(|| Arc::new(SystemClock::default()))),
        }
    }
}

/// The whole store's configuration. Loadable from TOML:
///
/// ```
/// let config = tiered_storage::StorageConfig::from_toml_str(r#"
///     data_dir = "/var/lib/bot/store"
///     [tiering]
///     hot_to_warm_age = 300
///     [hot]
///     capacity = 50000
///     [warm]
///     durability = "full"
/// "#).unwrap();
/// assert_eq!(config.tiering.hot_to_warm_age, 300);
/// assert_eq!(config.tiering.warm_to_cold_age, 604_800); // unset fields keep their defaults
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory holding `warm.sqlite3` (and later the cold files). Default:
    /// [`DEFAULT_DATA_DIR`], or `$TIERED_STORAGE_DATA_DIR` when set.
    pub data_dir: PathBuf,
    /// The tiering policy.
    pub tiering: TieringConfig,
    /// Hot tier settings.
    pub hot: HotConfig,
    /// Warm tier settings.
    pub warm: WarmConfig,
    /// Cold tier settings.
    pub cold: ColdConfig,
    /// Background maintenance settings.
    pub maintenance: MaintenanceConfig,
    /// Metrics settings.
    pub metrics: MetricsConfig,
    /// Alert thresholds.
    pub alerts: AlertConfig,
    /// The query-result cache (off by default).
    pub query_cache: QueryCacheConfig,
    /// Limits of SQL queries ([`AutoTieringCoordinator::sql`](crate::AutoTieringCoordinator),
    /// feature `sql`).
    pub sql: SqlConfig,
    /// Largest encoded record accepted, bytes. Default: [`DEFAULT_MAX_RECORD_BYTES`].
    pub max_record_bytes: usize,
    /// Open without owning the directory: read warm through SQLite snapshots and cold through
    /// the catalog, write nothing, run no maintenance, take no lock. For a second process (a
    /// report job, a dashboard) beside the owner. Default: `false`. See
    /// [`AutoTieringCoordinator::open_read_only`](crate::AutoTieringCoordinator::open_read_only).
    pub read_only: bool,
    /// Where time comes from. Default: the system clock. Not read from TOML.
    #[serde(skip)]
    pub clock: ClockHandle,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let data_dir = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Self {
            data_dir,
            tiering: TieringConfig::default(),
            hot: HotConfig::default(),
            warm: WarmConfig::default(),
            cold: ColdConfig::default(),
            maintenance: MaintenanceConfig::default(),
            metrics: MetricsConfig::default(),
            alerts: AlertConfig::default(),
            query_cache: QueryCacheConfig::default(),
            sql: SqlConfig::default(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            read_only: false,
            clock: ClockHandle::default(),
        }
    }
}

impl From<TieringConfig> for StorageConfig {
    fn from(tiering: TieringConfig) -> Self {
        Self {
            tiering,
            ..Self::default()
        }
    }
}

impl StorageConfig {
    /// Defaults with the data directory set.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Replace the tiering policy.
    pub fn with_tiering(mut self, tiering: TieringConfig) -> Self {
        self.tiering = tiering;
        self
    }

    /// Set the hot tier's record capacity.
    pub fn with_hot_capacity(mut self, capacity: u64) -> Self {
        self.hot.capacity = capacity;
        self
    }

    /// Set the warm tier's durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.warm.durability = durability;
        self
    }

    /// Take time from `clock` instead of the system clock: ageing, TTL, metric windows and
    /// alerts then move only when it does (see [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockHandle(Some(Arc::new(clock)));
        self
    }

    /// Parse a TOML document. Unknown keys are errors, so typos are caught.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| Error::ConfigFile {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Read and parse a TOML file. A relative `data_dir` in the file is resolved against the
    /// file's directory, not the working directory.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // A relative `data_dir` written in the file means "beside this file", wherever the
        // process starts: resolved against the working directory, the same file started
        // elsewhere would silently open a new, empty store.
        let in_file = toml::from_str::<toml::Table>(&text)
            .map(|t| t.contains_key("data_dir"))
            .unwrap_or(false);
        if in_file && config.data_dir.is_relative() {
            let base = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let base = std::path::absolute(base).map_err(|e| Error::ConfigFile {
                path: path.to_path_buf(),
                message: format!("cannot resolve the file's directory: {e}"),
            })?;
            config.data_dir = base.join(&config.data_dir);
        }
        config.validate()?;
        Ok(config)
    }

    /// Check every field. Called once at open; returns [`Error::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        self.tiering.validate()?;
        self.cold.validate()?;
        self.alerts.validate()?;
        self.maintenance.validate()?;
        self.metrics.validate()?;
        self.query_cache.validate()?;
        self.sql.validate()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::config("data_dir", "must not be empty"));
        }
        self.hot.validate()?;
        self.warm.validate()?;
        if self.max_record_bytes < 64 || self.max_record_bytes > 256 * 1024 * 1024 {
            return Err(Error::config(
                "max_record_bytes",
                "must be between 64 and 268435456",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_match_the_documented_policy() {
        let t = TieringConfig::default();
        assert_eq!(t.hot_to_warm_age, 3600);
        assert_eq!(t.warm_to_cold_age, 604_800);
        assert_eq!(t.maintenance_interval, 300);
        assert!(t.auto_promote_on_access);
        assert_eq!(t.min_hot_access_count, 2);
        assert_eq!(StorageConfig::default().hot.capacity, 10_000);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let mut c = StorageConfig::default();
        c.hot.capacity = 0;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                field: "hot.capacity",
                ..
            })
        ));

        let mut c = StorageConfig::default();
        c.tiering.min_hot_access_count = 0;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                field: "tiering.min_hot_access_count",
                ..
            })
        ));

        let mut c = StorageConfig::default();
        c.warm.max_batch = 0;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                field: "warm.max_batch",
                ..
            })
        ));
    }

    /// Values that would panic deep inside moka, rusqlite or tokio are refused up front.
    #[test]
    fn huge_values_are_config_errors_not_panics() {
        type Case = (&'static str, fn(&mut StorageConfig));
        let cases: [Case; 5] = [
            ("tiering.hot_to_warm_age", |c| {
                c.tiering.hot_to_warm_age = u64::MAX
            }),
            ("tiering.warm_to_cold_age", |c| {
                c.tiering.warm_to_cold_age = u64::MAX
            }),
            ("warm.busy_timeout_ms", |c| {
                c.warm.busy_timeout_ms = u64::MAX
            }),
            ("warm.queue_depth", |c| c.warm.queue_depth = usize::MAX),
            ("warm.access_flush_threshold", |c| {
                c.warm.access_flush_threshold = usize::MAX
            }),
        ];
        for (field, set) in cases {
            let mut c = StorageConfig::default();
            set(&mut c);
            match c.validate() {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut c = StorageConfig::default();
        c.tiering.hot_to_warm_age = MAX_AGE_SECS;
        c.validate().unwrap();
    }

    /// Each section checks its own fields, and its defaults pass.
    #[test]
    fn config_sections_validate_their_own_fields() {
        fn field(r: Result<()>) -> &'static str {
            match r {
                Err(Error::Config { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        }
        let c = StorageConfig::default();
        for ok in [
            c.tiering.validate(),
            c.hot.validate(),
            c.warm.validate(),
            c.cold.validate(),
            c.maintenance.validate(),
            c.metrics.validate(),
            c.alerts.validate(),
            c.query_cache.validate(),
            c.sql.validate(),
        ] {
            ok.unwrap();
        }
        let tiering = TieringConfig {
            maintenance_interval: 0,
            ..TieringConfig::default()
        };
        assert_eq!(field(tiering.validate()), "tiering.maintenance_interval");
        let hot = HotConfig {
            frequency_counters: 1,
            ..HotConfig::default()
        };
        assert_eq!(field(hot.validate()), "hot.frequency_counters");
        let warm = WarmConfig {
            mmap_mib: u64::MAX,
            ..WarmConfig::default()
        };
        assert_eq!(field(warm.validate()), "warm.mmap_mib");
        let cold = ColdConfig {
            compact_dead_fraction: 1.5,
            ..ColdConfig::default()
        };
        assert_eq!(field(cold.validate()), "cold.compact_dead_fraction");
        let maintenance = MaintenanceConfig {
            backlog_interval_secs: 0,
            ..MaintenanceConfig::default()
        };
        assert_eq!(
            field(maintenance.validate()),
            "maintenance.backlog_interval_secs"
        );
        let metrics = MetricsConfig { window_secs: 5 };
        assert_eq!(field(metrics.validate()), "metrics.window_secs");
        let alerts = AlertConfig {
            degradation_factor: f64::NAN,
            ..AlertConfig::default()
        };
        assert_eq!(field(alerts.validate()), "alerts.degradation_factor");
        for bad in [1, 4095, (1 << 40) + 1] {
            let cache = QueryCacheConfig { max_bytes: bad };
            assert_eq!(field(cache.validate()), "query_cache.max_bytes");
        }
        QueryCacheConfig { max_bytes: 4096 }.validate().unwrap();
        let sql = SqlConfig {
            max_rows: 0,
            ..SqlConfig::default()
        };
        assert_eq!(field(sql.validate()), "sql.max_rows");
        let sql = SqlConfig {
            timeout_ms: 0,
            ..SqlConfig::default()
        };
        assert_eq!(field(sql.validate()), "sql.timeout_ms");
        let c = StorageConfig::from_toml_str("[sql]\nmax_rows = 10\ntimeout_ms = 250\n").unwrap();
        assert_eq!(
            c.sql,
            SqlConfig {
                max_rows: 10,
                timeout_ms: 250
            }
        );
    }

    #[test]
    fn toml_rejects_unknown_keys_and_bad_values() {
        let err = StorageConfig::from_toml_str("[tiering]\nhot_to_warm_agee = 3\n").unwrap_err();
        assert!(matches!(err, Error::ConfigFile { .. }), "{err}");
        let err = StorageConfig::from_toml_str("[hot]\ncapacity = 0\n").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    field: "hot.capacity",
                    ..
                }
            ),
            "{err}"
        );
        let ok = StorageConfig::from_toml_str("[warm]\ndurability = \"full\"\n").unwrap();
        assert_eq!(ok.warm.durability, Durability::Full);
    }

    #[test]
    fn toml_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.toml");
        let mut c = StorageConfig::default().with_data_dir("/tmp/x");
        c.hot.max_bytes = Some(1 << 20);
        std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(StorageConfig::from_toml_file(&path).unwrap(), c);
        let missing = StorageConfig::from_toml_file(dir.path().join("nope.toml")).unwrap_err();
        assert!(matches!(missing, Error::ConfigFile { .. }));
    }

    /// Regression: a relative `data_dir` in a TOML file was resolved against the working
    /// directory, so the same file started elsewhere silently opened a new, empty store.
    #[test]
    fn config_relative_data_dir_in_a_file_resolves_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).unwrap();
        let path = conf.join("store.toml");
        std::fs::write(&path, "data_dir = \"../store-data\"\n").unwrap();
        let c = StorageConfig::from_toml_file(&path).unwrap();
        assert!(c.data_dir.is_absolute(), "{:?}", c.data_dir);
        assert_eq!(
            c.data_dir.canonicalize().ok(),
            None,
            "not created by loading"
        );
        assert_eq!(
            c.data_dir,
            std::path::absolute(&conf).unwrap().join("../store-data")
        );
        // Absolute paths are kept; a file without `data_dir` keeps the default.
        std::fs::write(&path, "data_dir = \"/var/lib/x\"\n").unwrap();
        assert_eq!(
            StorageConfig::from_toml_file(&path).unwrap().data_dir,
            PathBuf::from("/var/lib/x")
        );
        std::fs::write(&path, "max_record_bytes = 4096\n").unwrap();
        assert_eq!(
            StorageConfig::from_toml_file(&path).unwrap().data_dir,
            StorageConfig::default().data_dir
        );
    }
}
