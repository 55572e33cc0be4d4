//! Alert thresholds.

use serde::{Deserialize, Serialize};

use super::MAX_AGE_SECS;
use crate::error::{Error, Result};

/// Default: 1 ms, the hot tier's p95 access-time target.
pub const DEFAULT_ALERT_HOT_P95_TARGET_US: u64 = 1_000;
/// Default: 10 ms, the warm tier's p95 access-time target.
pub const DEFAULT_ALERT_WARM_P95_TARGET_US: u64 = 10_000;
/// Default: 100 ms, the cold tier's p95 access-time target.
pub const DEFAULT_ALERT_COLD_P95_TARGET_US: u64 = 100_000;
/// Default: an alert when the hot tier answers fewer than 50% of recent lookups.
pub const DEFAULT_ALERT_HOT_HIT_RATE_FLOOR_PCT: f64 = 50.0;
/// Default: 200 lookups in the window before access-time, hit-rate and degradation alerts may
/// fire, so a quiet store raises no alert from a handful of reads.
pub const DEFAULT_ALERT_MIN_SAMPLES: u64 = 200;
/// Default: a warning when the hot tier is 80% full.
pub const DEFAULT_ALERT_HOT_CAPACITY_WARNING_PCT: f64 = 80.0;
/// Default: a critical alert when the hot tier is 95% full.
pub const DEFAULT_ALERT_HOT_CAPACITY_CRITICAL_PCT: f64 = 95.0;
/// Default: 1 GiB, the free-disk floor of the data directory's file system.
pub const DEFAULT_ALERT_MIN_FREE_DISK_BYTES: u64 = 1 << 30;
/// Default: 3,600 s of grace past `warm_to_cold_age` before an archival-lag alert.
pub const DEFAULT_ALERT_ARCHIVAL_GRACE_SECS: u64 = 3_600;
/// Default: a degradation alert when a tier's recent p95 is 3× its p95 since open.
pub const DEFAULT_ALERT_DEGRADATION_FACTOR: f64 = 3.0;
/// Default: 256 resolved alerts kept in the history.
pub const DEFAULT_ALERT_HISTORY_LIMIT: usize = 256;

/// Alert thresholds (see `AutoTieringCoordinator::get_alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// Hot p95 access-time target, µs. Default: [`DEFAULT_ALERT_HOT_P95_TARGET_US`].
    pub hot_p95_target_us: u64,
    /// Warm p95 access-time target, µs. Default: [`DEFAULT_ALERT_WARM_P95_TARGET_US`].
    pub warm_p95_target_us: u64,
    /// Cold p95 access-time target, µs. Default: [`DEFAULT_ALERT_COLD_P95_TARGET_US`].
    pub cold_p95_target_us: u64,
    /// Alert when hot answers fewer than this percentage of recent lookups; `None` disables.
    /// Default: [`DEFAULT_ALERT_HOT_HIT_RATE_FLOOR_PCT`].
    pub hot_hit_rate_floor_pct: Option<f64>,
    /// The same floor for warm (share of lookups that reached warm and found the record there);
    /// `None` disables. Default: none.
    pub warm_hit_rate_floor_pct: Option<f64>,
    /// Lookups in the window before access-time, hit-rate and degradation alerts may fire.
    /// Default: [`DEFAULT_ALERT_MIN_SAMPLES`].
    pub min_samples: u64,
    /// Hot fill (records / capacity) that raises a warning, percent. Default:
    /// [`DEFAULT_ALERT_HOT_CAPACITY_WARNING_PCT`].
    pub hot_capacity_warning_pct: f64,
    /// Hot fill that raises a critical alert, percent. Default:
    /// [`DEFAULT_ALERT_HOT_CAPACITY_CRITICAL_PCT`].
    pub hot_capacity_critical_pct: f64,
    /// Alert when the data directory holds more bytes than this; `None` disables. Default: none.
    pub disk_budget_bytes: Option<u64>,
    /// Alert when the data directory's file system has fewer free bytes than this; `None`
    /// disables. Default: [`DEFAULT_ALERT_MIN_FREE_DISK_BYTES`].
    pub min_free_disk_bytes: Option<u64>,
    /// Seconds past `warm_to_cold_age` a warm record may wait for archival before an alert.
    /// Default: [`DEFAULT_ALERT_ARCHIVAL_GRACE_SECS`].
    pub archival_grace_secs: u64,
    /// Alert when a tier's recent p95 is at least this multiple of its p95 since open.
    /// Default: [`DEFAULT_ALERT_DEGRADATION_FACTOR`].
    pub degradation_factor: f64,
    /// Resolved alerts kept. Default: [`DEFAULT_ALERT_HISTORY_LIMIT`].
    pub history_limit: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            hot_p95_target_us: DEFAULT_ALERT_HOT_P95_TARGET_US,
            warm_p95_target_us: DEFAULT_ALERT_WARM_P95_TARGET_US,
            cold_p95_target_us: DEFAULT_ALERT_COLD_P95_TARGET_US,
            hot_hit_rate_floor_pct: Some(DEFAULT_ALERT_HOT_HIT_RATE_FLOOR_PCT),
            warm_hit_rate_floor_pct: None,
            min_samples: DEFAULT_ALERT_MIN_SAMPLES,
            hot_capacity_warning_pct: DEFAULT_ALERT_HOT_CAPACITY_WARNING_PCT,
            hot_capacity_critical_pct: DEFAULT_ALERT_HOT_CAPACITY_CRITICAL_PCT,
            disk_budget_bytes: None,
            min_free_disk_bytes: Some(DEFAULT_ALERT_MIN_FREE_DISK_BYTES),
            archival_grace_secs: DEFAULT_ALERT_ARCHIVAL_GRACE_SECS,
            degradation_factor: DEFAULT_ALERT_DEGRADATION_FACTOR,
            history_limit: DEFAULT_ALERT_HISTORY_LIMIT,
        }
    }
}

impl AlertConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("alerts.hot_p95_target_us", self.hot_p95_target_us),
            ("alerts.warm_p95_target_us", self.warm_p95_target_us),
            ("alerts.cold_p95_target_us", self.cold_p95_target_us),
        ] {
            if v == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        for (field, v) in [
            ("alerts.hot_hit_rate_floor_pct", self.hot_hit_rate_floor_pct),
            (
                "alerts.warm_hit_rate_floor_pct",
                self.warm_hit_rate_floor_pct,
            ),
            (
                "alerts.hot_capacity_warning_pct",
                Some(self.hot_capacity_warning_pct),
            ),
            (
                "alerts.hot_capacity_critical_pct",
                Some(self.hot_capacity_critical_pct),
            ),
        ] {
            if v.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
                return Err(Error::config(field, "must be between 0 and 100"));
            }
        }
        if self.hot_capacity_warning_pct > self.hot_capacity_critical_pct {
            return Err(Error::config(
                "alerts.hot_capacity_warning_pct",
                "must not exceed alerts.hot_capacity_critical_pct",
            ));
        }
        if !(self.degradation_factor >= 1.0 && self.degradation_factor.is_finite()) {
            return Err(Error::config(
                "alerts.degradation_factor",
                "must be a finite number of at least 1.0",
            ));
        }
        if self.history_limit == 0 || self.history_limit > 1 << 20 {
            return Err(Error::config(
                "alerts.history_limit",
                "must be between 1 and 1048576",
            ));
        }
        if self.archival_grace_secs > MAX_AGE_SECS {
            return Err(Error::config(
                "alerts.archival_grace_secs",
                format!("must be at most {MAX_AGE_SECS}"),
            ));
        }
        Ok(())
    }
}
