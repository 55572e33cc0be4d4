//! Metrics settings: the window behind recent percentiles and hit rates.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default: 60 s of recent accesses behind the access-time percentiles and recent hit rates.
pub const DEFAULT_METRICS_WINDOW_SECS: u64 = 60;

/// Metrics settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Seconds of recent accesses behind access-time percentiles and recent hit rates.
    /// Default: [`DEFAULT_METRICS_WINDOW_SECS`].
    pub window_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            window_secs: DEFAULT_METRICS_WINDOW_SECS,
        }
    }
}

impl MetricsConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        // Six slots of at least a second each.
        if !(6..=86_400 * 7).contains(&self.window_secs) {
            return Err(Error::config(
                "metrics.window_secs",
                "must be between 6 and 604800",
            ));
        }
        Ok(())
    }
}
