//! Crash points for crash tests, compiled in only with the `failpoints` cargo feature.
//!
//! With the feature, a process started with `TIERED_STORAGE_CRASH_AT=<name>` aborts (no
//! destructors, no flushes, like SIGKILL) when it reaches the point of that name; when the
//! variable is unset, a point costs one load of a `OnceLock`. Without the feature (the default,
//! and what a release build of the store ships), [`crash_point`] is an empty inline function and
//! the environment variable is never read.
//!
//! The points sit between the steps of every tier move (archival and compaction), so a test can
//! stop a move at each step, reopen the store and check that nothing was lost or duplicated.

/// The environment variable naming the crash point to stop at.
#[cfg(feature = "failpoints")]
pub const CRASH_AT_ENV: &str = "TIERED_STORAGE_CRASH_AT";

/// Every crash point, in the order a move reaches them.
#[cfg(feature = "failpoints")]
pub const CRASH_POINTS: &[&str] = &[
    "archive:temp_written",
    "archive:published",
    "archive:catalogued",
    "archive:settling",
    "archive:committed",
    "compact:temp_written",
    "compact:published",
    "compact:committed",
    "compact:old_removed",
    "deletes:temp_written",
    "deletes:published",
    "deletes:catalogued",
    "deletes:retired",
];

/// Abort the process if [`CRASH_AT_ENV`] names this point.
#[cfg(feature = "failpoints")]
pub(crate) fn crash_point(name: &str) {
    static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if target.as_deref() == Some(name) {
        eprintln!("tiered-storage: crash point {name} reached, aborting");
        std::process::abort();
    }
}

/// A crash point in a build without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// The crash point `<step>` of the move named `prefix` (`archive` or `compact`): the name is
/// built only in a build with the `failpoints` feature.
#[inline(always)]
pub(crate) fn crash_point_of(prefix: &str, step: &str) {
    #[cfg(feature = "failpoints")]
    crash_point(&format!("{prefix}:{step}"));
    #[cfg(not(feature = "failpoints"))]
    let _ = (prefix, step);
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::*;

    #[test]
    fn failpoint_names_are_unique_and_name_their_move() {
        let unique: std::collections::BTreeSet<_> = CRASH_POINTS.iter().collect();
        assert_eq!(unique.len(), CRASH_POINTS.len());
        for p in CRASH_POINTS {
            assert!(
                p.starts_with("archive:") || p.starts_with("compact:") || p.starts_with("deletes:"),
                "{p}"
            );
        }
    }
}
