//! Protects the SQL tests' reach: `tests/sql.rs` needs the `sql` cargo feature, so a plain
//! `cargo test` of the library alone does not build it. Without the feature this file says so
//! on every `cargo test`; with it, it checks that the SQL types are exported. `scripts/test.sh`
//! (CI) runs it with the feature: `cargo test --workspace` turns `sql` on, because the CLI and
//! the service enable it.

/// The command that runs the SQL tests.
#[cfg(not(feature = "sql"))]
const RUN_THEM: &str = "cargo test --features sql --test sql";

#[cfg(not(feature = "sql"))]
#[test]
fn sql_tests_skipped_without_the_sql_feature() {
    use std::io::Write;
    // Straight to stderr: the test harness captures `eprintln!` of passing tests, and this
    // notice is for the person reading a plain `cargo test`.
    let _ = writeln!(
        std::io::stderr(),
        "\nnote: tests/sql.rs was skipped: it needs the `sql` feature. Run it with \
         `{RUN_THEM}`, or the whole suite with `bash scripts/test.sh`.\n"
    );
}

#[cfg(feature = "sql")]
#[test]
fn sql_types_are_exported_with_the_sql_feature() {
    let rows = tiered_storage::SqlRows {
        columns: vec!["n".into()],
        rows: vec![vec![tiered_storage::SqlValue::Integer(1)]],
    };
    assert_eq!(rows.rows[0][0], tiered_storage::SqlValue::Integer(1));
    assert_eq!(
        tiered_storage::StorageConfig::default().sql.max_rows,
        tiered_storage::config::DEFAULT_SQL_MAX_ROWS
    );
}
