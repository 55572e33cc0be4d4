//! Hot tier (moka) settings.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default: 10,000 records in the hot tier.
pub const DEFAULT_HOT_CAPACITY: u64 = 10_000;
/// Default: 65,536 counters per row of the promotion frequency sketch (256 KiB in all).
pub const DEFAULT_HOT_FREQUENCY_COUNTERS: usize = 65_536;

/// Hot tier (moka) settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotConfig {
    /// Maximum records cached. Default: [`DEFAULT_HOT_CAPACITY`].
    pub capacity: u64,
    /// Optional bound on the encoded bytes cached, enforced together with `capacity`.
    /// Default: none.
    pub max_bytes: Option<u64>,
    /// Counters per row of the promotion frequency sketch. Default:
    /// [`DEFAULT_HOT_FREQUENCY_COUNTERS`].
    pub frequency_counters: usize,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_HOT_CAPACITY,
            max_bytes: None,
            frequency_counters: DEFAULT_HOT_FREQUENCY_COUNTERS,
        }
    }
}

impl HotConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(Error::config("hot.capacity", "must be at least 1"));
        }
        if self.max_bytes == Some(0) {
            return Err(Error::config(
                "hot.max_bytes",
                "must be at least 1, or unset for no byte bound",
            ));
        }
        if !(64..=1 << 26).contains(&self.frequency_counters) {
            return Err(Error::config(
                "hot.frequency_counters",
                "must be between 64 and 67108864",
            ));
        }
        Ok(())
    }
}
