//! Protects the crash tests' reach: a build without the `failpoints` cargo feature has no crash
//! points, so `tests/cold_crash.rs` and `tests/torture.rs` (which abort a child process at
//! them) are built only with the feature. Without it this file says so on every `cargo test`;
//! with it, it checks that the crash points are exported. `scripts/test.sh` (CI) enables it.

/// The command that runs the crash tests.
#[cfg(not(feature = "failpoints"))]
const RUN_THEM: &str = "cargo test --features failpoints --test cold_crash --test torture";

#[cfg(not(feature = "failpoints"))]
#[test]
fn crash_tests_skipped_without_the_failpoints_feature() {
    use std::io::Write;
    // Straight to stderr: the test harness captures `eprintln!` of passing tests, and this
    // notice is for the person reading a plain `cargo test`.
    let _ = writeln!(
        std::io::stderr(),
        "\nnote: tests/cold_crash.rs and tests/torture.rs were skipped: they need the \
         `failpoints` feature. Run them with `{RUN_THEM}`, or the whole suite with \
         `bash scripts/test.sh`.\n"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn crash_points_are_exported_with_the_failpoints_feature() {
    assert_eq!(tiered_storage::CRASH_AT_ENV, "TIERED_STORAGE_CRASH_AT");
    assert!(tiered_storage::CRASH_POINTS.contains(&"archive:published"));
    assert!(tiered_storage::CRASH_POINTS.contains(&"compact:old_removed"));
}
