//! SQL settings: the limits of `AutoTieringCoordinator::sql` (feature `sql`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default: 100,000 result rows at most; a query that would return more fails with
/// `Error::SqlRowLimit` (aggregate in SQL, or add a `LIMIT`).
pub const DEFAULT_SQL_MAX_ROWS: usize = 100_000;
/// Default: 30,000 ms (30 s) for one query; a slower one fails with `Error::SqlTimeout`.
pub const DEFAULT_SQL_TIMEOUT_MS: u64 = 30_000;

/// Limits of SQL queries (`[sql]` in TOML). The section exists with or without the `sql`
/// feature, so one config file serves both builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Most rows one query may return; more is an error, not a truncated answer.
    /// Default: [`DEFAULT_SQL_MAX_ROWS`].
    pub max_rows: usize,
    /// Longest one query may run, in milliseconds, including the reads of the tiers it
    /// needs. Default: [`DEFAULT_SQL_TIMEOUT_MS`].
    pub timeout_ms: u64,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_SQL_MAX_ROWS,
            timeout_ms: DEFAULT_SQL_TIMEOUT_MS,
        }
    }
}

impl SqlConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_rows == 0 || self.max_rows > 100_000_000 {
            return Err(Error::config(
                "sql.max_rows",
                "must be between 1 and 100000000",
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 86_400_000 {
            return Err(Error::config(
                "sql.timeout_ms",
                "must be between 1 and 86400000 (one day)",
            ));
        }
        Ok(())
    }
}
