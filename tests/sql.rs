//! Protects `AutoTieringCoordinator::sql` (feature `sql`): the `records` virtual table returns
//! every record once, in its newest version, across warm and cold (updated and removed
//! archived records included); id, time and signature constraints limit what is read; only
//! one read-only statement runs; the time and row limits and SQL errors are typed errors.

use std::collections::BTreeMap;
use std::path::Path;

use tiered_storage::{
    AutoTieringCoordinator, Error, Outcome, SqlValue, StorageConfig, TransactionRecord,
};

mod common;
use common::{DAY, T0};

type Store = AutoTieringCoordinator<TransactionRecord>;

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 100;
    c
}

async fn open(config: StorageConfig) -> Store {
    AutoTieringCoordinator::open(config).await.expect("open")
}

/// Put `records` and return them by id.
async fn fill(
    store: &Store,
    records: impl IntoIterator<Item = TransactionRecord>,
) -> BTreeMap<i64, TransactionRecord> {
    let mut model = BTreeMap::new();
    for mut r in records {
        let id = store.put(&r).await.unwrap();
        r.id = Some(id);
        model.insert(id, r);
    }
    model
}

fn int(v: i64) -> SqlValue {
    SqlValue::Integer(v)
}

fn text(v: &str) -> SqlValue {
    SqlValue::Text(v.to_owned())
}

fn real_or_null(v: Option<f64>) -> SqlValue {
    v.map_or(SqlValue::Null, SqlValue::Real)
}

/// The signed PnL of the contract: Profit v, Loss -|v|, Neutral 0, otherwise none.
fn pnl(o: &Outcome) -> Option<f64> {
    match o {
        Outcome::Profit(v) => Some(*v),
        Outcome::Loss(v) => Some(-v.abs()),
        Outcome::Neutral => Some(0.0),
        _ => None,
    }
}

fn outcome_value(o: &Outcome) -> Option<f64> {
    match o {
        Outcome::Profit(v) | Outcome::Loss(v) => Some(*v),
        _ => None,
    }
}

const ROW_SQL: &str = "SELECT id, transaction_signature, ts_ms, timestamp_decision_made, mint, \
                       outcome_kind, outcome_value, pnl FROM records ORDER BY id";

/// The rows `ROW_SQL` must return for `model`.
fn expected_rows(model: &BTreeMap<i64, TransactionRecord>) -> Vec<Vec<SqlValue>> {
    model
        .iter()
        .map(|(id, r)| {
            vec![
                int(*id),
                text(r.transaction_signature.as_deref().unwrap()),
                int(r.timestamp_decision_made),
                int(r.timestamp_decision_made),
                text(&r.scored_candidate.base.mint),
                text(r.actual_outcome.kind()),
                real_or_null(outcome_value(&r.actual_outcome)),
                real_or_null(pnl(&r.actual_outcome)),
            ]
        })
        .collect()
}

/// A store of 300 records over three days (interleaved by id), the first two days archived,
/// then archived records updated and removed and new ones put (so hot, warm and cold all
/// hold some).
async fn mixed_store(dir: &Path) -> (Store, BTreeMap<i64, TransactionRecord>) {
    let store = open(config(dir)).await;
    let mut model = fill(&store, (0..300).map(|n| common::record(n, "sqlsig"))).await;
    let report = store.archive_older_than(T0 + 2 * DAY).await.unwrap();
    assert_eq!(report.archived, 200);
    let archived: Vec<i64> = model
        .iter()
        .filter(|(_, r)| r.timestamp_decision_made < T0 + 2 * DAY)
        .map(|(id, _)| *id)
        .collect();
    // Update 10 archived records (one to another day, one to a new signature) ...
    for (k, id) in archived.iter().step_by(17).take(10).enumerate() {
        let mut r = model[id].clone();
        r.actual_outcome = match k {
            5 => Outcome::Neutral,
            6 => Outcome::Profit(3.5),
            _ => Outcome::Loss(k as f64 + 0.25),
        };
        if k == 3 {
            r.timestamp_decision_made += DAY;
        }
        if k == 4 {
            r.transaction_signature = Some(format!("{:0>88}", "renamed"));
        }
        store.update(&r).await.unwrap();
        model.insert(*id, r);
    }
    // ... remove 5 others ...
    for id in archived.iter().skip(5).step_by(29).take(5) {
        store.remove(*id).await.unwrap();
        model.remove(id);
    }
    // ... and read some archived records so hot holds cold copies too.
    for id in archived.iter().skip(2).step_by(13) {
        store.get(*id).await.unwrap();
    }
    model.extend(fill(&store, (300..320).map(|n| common::record(n, "sqlnew"))).await);
    (store, model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_records_holds_every_record_once_in_its_newest_version() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = mixed_store(dir.path()).await;

    let rows = store.sql(ROW_SQL).await.unwrap();
    assert_eq!(
        rows.columns,
        [
            "id",
            "transaction_signature",
            "ts_ms",
            "timestamp_decision_made",
            "mint",
            "outcome_kind",
            "outcome_value",
            "pnl"
        ]
    );
    assert_eq!(rows.rows.len(), model.len());
    assert!(rows.rows == expected_rows(&model));

    // Aggregates agree with the model, per UTC day.
    let by_day = store
        .sql(
            "SELECT date(ts_ms / 1000, 'unixepoch') AS d, count(*), count(DISTINCT id), \
             sum(pnl) FROM records GROUP BY d ORDER BY d",
        )
        .await
        .unwrap();
    let mut want: BTreeMap<String, (i64, Option<f64>)> = BTreeMap::new();
    for r in model.values() {
        let day = (r.timestamp_decision_made / DAY) * DAY;
        let d = sql_date(day);
        let e = want.entry(d).or_insert((0, None));
        e.0 += 1;
        if let Some(p) = pnl(&r.actual_outcome) {
            e.1 = Some(e.1.unwrap_or(0.0) + p);
        }
    }
    assert_eq!(by_day.rows.len(), want.len());
    for (row, (d, (n, sum))) in by_day.rows.iter().zip(&want) {
        assert_eq!(row[0], text(d));
        assert_eq!(row[1], int(*n));
        assert_eq!(row[2], int(*n));
        match (&row[3], sum) {
            (SqlValue::Real(got), Some(want)) => assert!((got - want).abs() < 1e-9),
            (SqlValue::Null, None) => {}
            other => panic!("{other:?}"),
        }
    }

    // A time range, an id range and a signature give the model's answer, read through the
    // pushed-down paths.
    let (lo, hi) = (T0 + DAY, T0 + 2 * DAY - 1);
    let day = store
        .sql(&format!(
            "SELECT id FROM records WHERE ts_ms BETWEEN {lo} AND {hi} ORDER BY id"
        ))
        .await
        .unwrap();
    let want: Vec<Vec<SqlValue>> = model
        .iter()
        .filter(|(_, r)| (lo..=hi).contains(&r.timestamp_decision_made))
        .map(|(id, _)| vec![int(*id)])
        .collect();
    assert!(!want.is_empty());
    assert_eq!(day.rows, want);
    let ids: Vec<i64> = model.keys().copied().collect();
    let (a, b) = (ids[40], ids[90]);
    let range = store
        .sql(&format!(
            "SELECT id FROM records WHERE id > {a} AND id <= {b} AND timestamp_decision_made >= {lo}"
        ))
        .await
        .unwrap();
    let want: Vec<Vec<SqlValue>> = model
        .range(a + 1..=b)
        .filter(|(_, r)| r.timestamp_decision_made >= lo)
        .map(|(id, _)| vec![int(*id)])
        .collect();
    assert_eq!(range.rows, want);
    // Equality on a text column is pushed down as a filter; SQLite's own comparison still
    // decides (a differently cased value, NOCASE).
    for (sql, want) in [
        (
            "SELECT id FROM records WHERE mint = 'mint3' AND outcome_kind = 'Loss' ORDER BY id",
            model
                .iter()
                .filter(|(_, r)| {
                    r.scored_candidate.base.mint == "mint3" && r.actual_outcome.kind() == "Loss"
                })
                .map(|(id, _)| vec![int(*id)])
                .collect::<Vec<_>>(),
        ),
        (
            "SELECT id FROM records WHERE mint = 'MINT3' COLLATE NOCASE ORDER BY id",
            model
                .iter()
                .filter(|(_, r)| r.scored_candidate.base.mint == "mint3")
                .map(|(id, _)| vec![int(*id)])
                .collect(),
        ),
    ] {
        assert!(!want.is_empty());
        assert_eq!(store.sql(sql).await.unwrap().rows, want, "{sql}");
    }
    // The same through rowid, and id IN (...).
    let listed = store
        .sql(&format!(
            "SELECT id FROM records WHERE rowid IN ({}, {}, {}) ORDER BY id",
            ids[0], ids[150], ids[310]
        ))
        .await
        .unwrap();
    assert_eq!(
        listed.rows,
        vec![vec![int(ids[0])], vec![int(ids[150])], vec![int(ids[310])]]
    );
    for r in model.values().step_by(23) {
        let sig = r.transaction_signature.as_deref().unwrap();
        let one = store
            .sql(&format!(
                "SELECT id, outcome_kind FROM records WHERE transaction_signature = '{sig}'"
            ))
            .await
            .unwrap();
        assert_eq!(
            one.rows,
            vec![vec![int(r.id.unwrap()), text(r.actual_outcome.kind())]]
        );
    }
    // The renamed record's old signature and a removed record's signature find nothing.
    let old = common::record(
        model
            .values()
            .find(|r| {
                r.transaction_signature
                    .as_deref()
                    .unwrap()
                    .ends_with("renamed")
            })
            .map(|r| r.id.unwrap() as u64 - 1)
            .unwrap(),
        "sqlsig",
    );
    let none = store
        .sql(&format!(
            "SELECT count(*) FROM records WHERE transaction_signature = '{}'",
            old.transaction_signature.unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(none.rows, vec![vec![int(0)]]);

    // A read-only handle beside the owner, and a compacted archive, give the same answer.
    let reader = Store::open_read_only(config(dir.path())).await.unwrap();
    assert!(reader.sql(ROW_SQL).await.unwrap().rows == expected_rows(&model));
    store.compact_now().await.unwrap();
    assert!(store.sql(ROW_SQL).await.unwrap().rows == expected_rows(&model));
    store.shutdown().await.unwrap();
}

/// `YYYY-MM-DD` of a UTC day start in Unix ms (what SQLite's `date()` prints).
fn sql_date(day_ms: i64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = day_ms / DAY + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_values_are_typed_like_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let mut r = common::record(4, "types");
    r.scored_candidate.base.is_jito_bundle = Some(true);
    r.scored_candidate.base.slot = 77;
    r.buy_price_sol = None;
    let id = store.put(&r).await.unwrap();
    store.archive_older_than(i64::MAX).await.unwrap();
    let rows = store
        .sql(&format!(
            "SELECT is_jito_bundle, slot, buy_price_sol, market_context_snapshot, \
             typeof(timestamp_decision_made), json_extract(market_context_snapshot, '$.sol_usd') \
             FROM records WHERE id = {id}"
        ))
        .await
        .unwrap();
    assert_eq!(
        rows.rows,
        vec![vec![
            int(1),
            int(77),
            SqlValue::Null,
            text(r#"{"sol_usd":154.0}"#),
            text("integer"),
            SqlValue::Real(154.0),
        ]]
    );
    let info = store
        .sql("SELECT name, type FROM pragma_table_info('records') WHERE name IN ('ts_ms', 'pnl', 'id')")
        .await
        .unwrap();
    assert_eq!(
        info.rows,
        vec![
            vec![text("id"), text("INTEGER")],
            vec![text("ts_ms"), text("INTEGER")],
            vec![text("pnl"), text("REAL")],
        ]
    );
}

/// Records 0..400 put in time order, 100 per day: each day's archive file holds its own ids.
fn dated(n: u64) -> TransactionRecord {
    let mut r = common::record(n, "pushdown");
    r.timestamp_decision_made = T0 + (n / 100) as i64 * DAY + n as i64;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_pushdown_reads_only_the_files_a_query_needs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let model = fill(&store, (0..400).map(dated)).await;
    store.archive_older_than(i64::MAX).await.unwrap();
    assert_eq!(store.cold_tier().cold_stats().unwrap().files, 4);
    let ids: Vec<i64> = model.keys().copied().collect();

    // Each query on a fresh read-only handle, whose metadata cache starts empty: the files
    // it opened are the files the query read.
    let fresh = || Store::open_read_only(config(dir.path()));
    let files_opened = |s: &Store| s.cold_tier().cold_stats().unwrap().metadata_cache_files;

    let (lo, hi) = (T0 + 2 * DAY, T0 + 3 * DAY - 1);
    let reader = fresh().await.unwrap();
    let day = reader
        .sql(&format!(
            "SELECT date(ts_ms / 1000, 'unixepoch') d, count(*), sum(pnl) FROM records \
             WHERE ts_ms BETWEEN {lo} AND {hi} GROUP BY d"
        ))
        .await
        .unwrap();
    assert_eq!(day.rows.len(), 1);
    assert_eq!(day.rows[0][1], int(100));
    assert_eq!(
        files_opened(&reader),
        1,
        "a day's query reads that day's file only"
    );
    // The `date` column is the same UTC day, computed by the table (no date() per row).
    let by_column = reader
        .sql(&format!(
            "SELECT date, count(*), sum(pnl) FROM records WHERE ts_ms BETWEEN {lo} AND {hi} GROUP BY date"
        ))
        .await
        .unwrap();
    assert_eq!(by_column.rows, day.rows);
    let differ = reader
        .sql("SELECT count(*) FROM records WHERE date IS NOT date(ts_ms / 1000, 'unixepoch')")
        .await
        .unwrap();
    assert_eq!(differ.rows, vec![vec![int(0)]]);

    let reader = fresh().await.unwrap();
    let r = reader
        .sql(&format!(
            "SELECT count(*) FROM records WHERE timestamp_decision_made >= {}",
            T0 + 3 * DAY
        ))
        .await
        .unwrap();
    assert_eq!(r.rows, vec![vec![int(100)]]);
    assert_eq!(
        files_opened(&reader),
        1,
        "the timestamp column is pushed down too"
    );

    let reader = fresh().await.unwrap();
    let r = reader
        .sql(&format!(
            "SELECT count(*) FROM records WHERE id BETWEEN {} AND {}",
            ids[110], ids[160]
        ))
        .await
        .unwrap();
    assert_eq!(r.rows, vec![vec![int(51)]]);
    assert_eq!(
        files_opened(&reader),
        1,
        "an id range reads the files holding it"
    );

    let reader = fresh().await.unwrap();
    let sig = model[&ids[321]].transaction_signature.clone().unwrap();
    let r = reader
        .sql(&format!(
            "SELECT id FROM records WHERE transaction_signature = '{sig}'"
        ))
        .await
        .unwrap();
    assert_eq!(r.rows, vec![vec![int(ids[321])]]);
    assert_eq!(files_opened(&reader), 1, "a signature reads one file");
    assert_eq!(
        reader.cold_tier().metrics().hits,
        1,
        "through the signature path"
    );

    let reader = fresh().await.unwrap();
    let r = reader.sql("SELECT count(*) FROM records").await.unwrap();
    assert_eq!(r.rows, vec![vec![int(400)]]);
    assert_eq!(files_opened(&reader), 4, "no constraint: every file");

    let reader = fresh().await.unwrap();
    let r = reader
        .sql(&format!(
            "SELECT count(*) FROM records WHERE ts_ms > {}",
            T0 + 10 * DAY
        ))
        .await
        .unwrap();
    assert_eq!(r.rows, vec![vec![int(0)]]);
    assert_eq!(files_opened(&reader), 0, "nothing in range: no file");
}

fn assert_invalid(result: tiered_storage::Result<tiered_storage::SqlRows>, what: &str) -> String {
    match result {
        Err(e @ Error::InvalidQuery { .. }) => {
            assert_eq!(e.code(), "invalid_query");
            e.to_string()
        }
        other => panic!("{what}: expected InvalidQuery, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_accepts_one_read_only_statement_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let model = fill(&store, (0..10).map(|n| common::record(n, "ro"))).await;
    let attached = dir.path().join("attached.db");
    let refused = [
        "INSERT INTO records (id) VALUES (1)".to_owned(),
        "UPDATE records SET mint = 'x'".to_owned(),
        "DELETE FROM records".to_owned(),
        "CREATE TABLE t(x)".to_owned(),
        "CREATE TEMP TABLE t(x)".to_owned(),
        "CREATE VIEW v AS SELECT 1".to_owned(),
        format!("ATTACH DATABASE '{}' AS other", attached.display()),
        "DETACH DATABASE main".to_owned(),
        "PRAGMA user_version = 5".to_owned(),
        "PRAGMA journal_mode = DELETE".to_owned(),
        "PRAGMA user_version".to_owned(),
        "BEGIN".to_owned(),
        "VACUUM".to_owned(),
        format!("VACUUM INTO '{}'", attached.display()),
        "SELECT 1; SELECT 2".to_owned(),
        "SELECT 1; DELETE FROM records".to_owned(),
        "SELECT count(*) FROM records; garbage".to_owned(),
        "".to_owned(),
        "  -- nothing\n".to_owned(),
    ];
    for sql in &refused {
        assert_invalid(store.sql(sql).await, sql);
    }
    assert!(!attached.exists(), "nothing was written");
    let message = assert_invalid(
        store
            .sql(&format!("ATTACH '{}' AS x", attached.display()))
            .await,
        "attach",
    );
    assert!(message.contains("ATTACH is not allowed"), "{message}");
    // Queries, CTEs, a trailing `;` and comments are fine; the store is unchanged.
    for sql in [
        "SELECT count(*) FROM records;",
        "WITH t AS (SELECT id FROM records) SELECT count(*) FROM t -- done",
        "SELECT count(*) FROM (SELECT * FROM records ORDER BY ts_ms DESC LIMIT 100)",
    ] {
        let rows = store.sql(sql).await.unwrap();
        assert_eq!(rows.rows, vec![vec![int(model.len() as i64)]], "{sql}");
    }
    assert_eq!(store.get_stats().await.unwrap().total_records, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    fill(&store, (0..3).map(|n| common::record(n, "err"))).await;
    let m = assert_invalid(store.sql("SELEC 1").await, "syntax");
    assert!(m.contains("syntax error"), "{m}");
    let m = assert_invalid(store.sql("SELECT nope FROM records").await, "column");
    assert!(m.contains("no such column: nope"), "{m}");
    let m = assert_invalid(store.sql("SELECT * FROM missing_table").await, "table");
    assert!(m.contains("no such table"), "{m}");
    assert_invalid(
        store.sql("SELECT abs(-9223372036854775807 - 1)").await,
        "runtime error",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_time_and_row_limits_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.sql.max_rows = 5;
    c.sql.timeout_ms = 200;
    let store = open(c).await;
    fill(&store, (0..12).map(|n| common::record(n, "limits"))).await;

    let rows = store.sql("SELECT id FROM records LIMIT 5").await.unwrap();
    assert_eq!(rows.rows.len(), 5);
    match store.sql("SELECT id FROM records").await {
        Err(e @ Error::SqlRowLimit { max_rows: 5 }) => assert_eq!(e.code(), "sql_row_limit"),
        other => panic!("{other:?}"),
    }
    // Aggregating is not limited by the rows read, only those returned.
    assert_eq!(
        store
            .sql("SELECT count(*) FROM records")
            .await
            .unwrap()
            .rows,
        vec![vec![int(12)]]
    );

    let start = std::time::Instant::now();
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                   SELECT count(*) FROM c";
    match store.sql(endless).await {
        Err(e @ Error::SqlTimeout { timeout_ms: 200 }) => assert_eq!(e.code(), "sql_timeout"),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    // A cross join of the table with itself, stopped inside the table reads too.
    let heavy = "SELECT count(*) FROM records a, records b, records c, records d, records e, \
                 records f WHERE a.pnl IS NOT b.ts_ms";
    assert!(matches!(
        store.sql(heavy).await,
        Err(Error::SqlTimeout { .. })
    ));
    // The store still answers.
    assert_eq!(
        store
            .sql("SELECT count(*) FROM records")
            .await
            .unwrap()
            .rows,
        vec![vec![int(12)]]
    );
}
