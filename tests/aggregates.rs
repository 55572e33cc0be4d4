//! Protects projections, aggregates and the query-result cache: projected batches hold exactly
//! the asked columns with the values of the full records, from every tier; aggregates equal a
//! model computed from the records (every grouping and measure, time ranges and filters, hot,
//! warm and archived records, updated and removed archived records); bad queries are typed
//! errors; the cache serves equal answers and counts hits, misses and invalidations.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use tiered_storage::{
    AutoTieringCoordinator, Error, Outcome, ScanRange, StorageConfig, TransactionRecord,
};

type Store = AutoTieringCoordinator<TransactionRecord>;

mod common;
use common::{DAY, T0};

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 100;
    c
}

async fn open(config: StorageConfig) -> Store {
    AutoTieringCoordinator::open(config).await.expect("open")
}

/// Record `n` of [`common::record`] with a spread of SOL spent.
fn record(n: u64) -> TransactionRecord {
    let mut r = common::record(n, "aggsig");
    r.initial_sol_spent = (n % 5 != 0).then_some(n as f64 / 10.0);
    r
}

/// 600 records over three days; the two older days archived; then archived and warm records
/// updated and removed. Returns the live records by id.
async fn mixed_store(store: &Store) -> BTreeMap<i64, TransactionRecord> {
    let mut live = BTreeMap::new();
    for n in 0..600 {
        let mut r = record(n);
        r.id = Some(store.put(&r).await.unwrap());
        live.insert(r.id.unwrap(), r);
    }
    let report = store.archive_older_than(T0 + 2 * DAY).await.unwrap();
    assert!(report.archived > 300, "{report:?}");
    // Updates of archived records (one moves to another day) and of warm ones.
    for (k, id) in live.keys().copied().step_by(7).enumerate().collect::<Vec<_>>() {
        let r = live.get_mut(&id).unwrap();
        r.actual_outcome = Outcome::Loss(k as f64 / 4.0);
        r.initial_sol_spent = Some(2.5);
        if k % 3 == 0 {
            r.timestamp_decision_made += DAY;
        }
        store.update(r).await.unwrap();
    }
    for id in live.keys().copied().skip(3).step_by(11).collect::<Vec<_>>() {
        store.remove(id).await.unwrap();
        live.remove(&id);
    }
    live
}

fn strings(batch: &RecordBatch, i: usize) -> Vec<Option<String>> {
    let a = batch.column(i).as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len())
        .map(|r| a.is_valid(r).then(|| a.value(r).to_owned()))
        .collect()
}

fn floats(batch: &RecordBatch, i: usize) -> Vec<Option<f64>> {
    let a = batch
        .column(i)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    (0..a.len()).map(|r| a.is_valid(r).then(|| a.value(r))).collect()
}

fn outcome_value(o: &Outcome) -> Option<f64> {
    match o {
        Outcome::Profit(v) | Outcome::Loss(v) => Some(*v),
        _ => None,
    }
}

#[test]
fn projected_batches_hold_only_the_asked_columns_with_the_records_values() {
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(config(dir.path())).await;
        let live = mixed_store(&store).await;
        let cases = [
            (ScanRange::default(), 1000),
            (ScanRange::default(), 37),
            (ScanRange::default().with_time(T0 + DAY..=T0 + 2 * DAY + 300), 64),
            (ScanRange::default().with_mint("mint3"), 50),
            (
                ScanRange::default()
                    .with_program("pump")
                    .with_ids(100..=400),
                5,
            ),
        ];
        for (range, page) in cases {
            let mut cursor = store
                .scan_columns(range.clone(), &["outcome_value", "id", "mint"], page)
                .unwrap();
            let names: Vec<String> = cursor
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(names, ["outcome_value", "id", "mint"]);
            let mut got = Vec::new();
            while let Some(batch) = cursor.next_batch().await.unwrap() {
                assert_eq!(batch.num_columns(), 3);
                assert!(batch.num_rows() > 0 && batch.num_rows() <= page, "{range:?}");
                let ids = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                let values = floats(&batch, 0);
                let mints = strings(&batch, 2);
                for i in 0..batch.num_rows() {
                    got.push((ids.value(i), values[i], mints[i].clone().unwrap()));
                }
            }
            let want: Vec<(i64, Option<f64>, String)> = live
                .values()
                .filter(|r| {
                    let id = r.id.unwrap();
                    let ts = r.timestamp_decision_made;
                    (range.min_id..=range.max_id).contains(&id)
                        && (range.min_ts..=range.max_ts).contains(&ts)
                        && range.equals.iter().all(|(f, v)| match f.as_str() {
                            "mint" => r.scored_candidate.base.mint == *v,
                            "program" => r.scored_candidate.base.program == *v,
                            _ => unreachable!(),
                        })
                })
                .map(|r| {
                    (
                        r.id.unwrap(),
                        outcome_value(&r.actual_outcome),
                        r.scored_candidate.base.mint.clone(),
                    )
                })
                .collect();
            assert!(!want.is_empty(), "{range:?}");
            assert_eq!(got, want, "{range:?}");
        }
    });
}

#[test]
fn projection_errors_are_invalid_queries() {
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(config(dir.path())).await;
        for columns in [&["id", "no_such_column"][..], &[]] {
            let err = store
                .scan_columns(ScanRange::default(), columns, 10)
                .unwrap_err();
            assert!(matches!(err, Error::InvalidQuery { .. }), "{err:?}");
            assert_eq!(err.code(), "invalid_query");
        }
        let err = store
            .scan_columns(ScanRange::default().with_field("slot", "1"), &["id"], 10)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidQuery { .. }), "{err:?}");
    });
}
