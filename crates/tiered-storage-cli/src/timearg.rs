//! Time and duration arguments, parsed by the service's parser so the CLI and the HTTP query
//! parameters accept exactly the same text.

use std::time::Duration;

use tiered_storage_server::time::{parse_duration, parse_since};

use crate::error::{CliError, CliResult};

/// `--since`/`--until`: RFC 3339, or a duration meaning that long before `now_ms`.
pub fn time(flag: &str, text: &str, now_ms: i64) -> CliResult<i64> {
    parse_since(text, now_ms).map_err(|e| CliError::usage(format!("{flag}: {e}")))
}

/// `--older-than`: `0s`, `90m`, `7d`, ...
pub fn duration(flag: &str, text: &str) -> CliResult<Duration> {
    parse_duration(text).map_err(|e| CliError::usage(format!("{flag}: {e}")))
}
