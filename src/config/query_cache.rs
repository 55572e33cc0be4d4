//! Query-result cache settings: how many bytes of aggregate and query answers to keep.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default: 0 bytes, the query-result cache is off.
pub const DEFAULT_QUERY_CACHE_MAX_BYTES: u64 = 0;

/// Smallest non-zero `query_cache.max_bytes`: 4 KiB.
const MIN_MAX_BYTES: u64 = 4096;
/// Largest `query_cache.max_bytes`: 1 TiB.
const MAX_MAX_BYTES: u64 = 1 << 40;

/// The query-result cache (`[query_cache]` in TOML): answers of
/// [`aggregate`](crate::AutoTieringCoordinator::aggregate), `query` and `latest`, keyed by the
/// normalised query, bounded by bytes.
///
/// Invalidation is exact: the warm writer bumps a generation counter of every UTC day a put,
/// update or remove touches, after its commit and before it answers; an answer is served only
/// while the generations of every day its time range covers are those it was computed
/// against. Archival and compaction move records without changing answers, so they invalidate
/// nothing. Off for read-only opens (the owner's writes are not seen by this process).
///
/// ```
/// use tiered_storage::StorageConfig;
/// let config = StorageConfig::from_toml_str("[query_cache]\nmax_bytes = 67108864\n").unwrap();
/// assert_eq!(config.query_cache.max_bytes, 64 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryCacheConfig {
    /// Bytes of cached answers (estimated: rows, texts, records' encoded size, keys); 0 turns
    /// the cache off. Otherwise between 4096 and 2^40. Default:
    /// [`DEFAULT_QUERY_CACHE_MAX_BYTES`] (off).
    pub max_bytes: u64,
}

impl Default for QueryCacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_QUERY_CACHE_MAX_BYTES,
        }
    }
}

impl QueryCacheConfig {
    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_bytes != 0 && !(MIN_MAX_BYTES..=MAX_MAX_BYTES).contains(&self.max_bytes) {
            return Err(Error::config(
                "query_cache.max_bytes",
                format!("must be 0 (off) or between {MIN_MAX_BYTES} and {MAX_MAX_BYTES}"),
            ));
        }
        Ok(())
    }
}
