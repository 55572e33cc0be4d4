//! Crash points for crash tests: a process started with `TIERED_STORAGE_CRASH_AT=<name>` aborts
//! (no destructors, no flushes, like SIGKILL) when it reaches the point of that name.
//!
//! The points sit between the steps of every tier move (archival and compaction), so a test can
//! stop a move at each step, reopen the store and check that nothing was lost or duplicated.
//! When the variable is unset, a point costs one load of a `OnceLock`.

use std::sync::OnceLock;

/// The environment variable naming the crash point to stop at.
pub const CRASH_AT_ENV: &str = "TIERED_STORAGE_CRASH_AT";

/// Every crash point, in the order a move reaches them.
pub const CRASH_POINTS: &[&str] = &[
    "archive:temp_written",
    "archive:published",
    "archive:committed",
    "compact:temp_written",
    "compact:published",
    "compact:committed",
    "compact:old_removed",
];

pub(crate) fn crash_point(name: &str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if target.as_deref() == Some(name) {
        eprintln!("tiered-storage: crash point {name} reached, aborting");
        std::process::abort();
    }
}
