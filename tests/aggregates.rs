//! Protects projections, aggregates and the query-result cache: projected batches hold exactly
//! the asked columns with the values of the full records, from every tier; aggregates equal a
//! model computed from the records (every grouping and measure, time ranges and filters, hot,
//! warm and archived records, updated and removed archived records); bad queries are typed
//! errors; the cache serves equal answers and counts hits, misses and invalidations.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use tiered_storage::{
    Aggregate, AggregateRow, AutoTieringCoordinator, Error, GroupBy, GroupKey, Measure, Outcome,
    ScanRange, StorageConfig, TransactionRecord,
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
    for (k, id) in live
        .keys()
        .copied()
        .step_by(7)
        .enumerate()
        .collect::<Vec<_>>()
    {
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
    let a = batch
        .column(i)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
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
    (0..a.len())
        .map(|r| a.is_valid(r).then(|| a.value(r)))
        .collect()
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
            (
                ScanRange::default().with_time(T0 + DAY..=T0 + 2 * DAY + 300),
                64,
            ),
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
                assert!(
                    batch.num_rows() > 0 && batch.num_rows() <= page,
                    "{range:?}"
                );
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

/// The model's answer: `measure` over the live records `range` selects, by `group`.
fn model(
    live: &BTreeMap<i64, TransactionRecord>,
    query: &Aggregate,
) -> Vec<(GroupKey, u64, f64, Option<f64>, Option<f64>)> {
    let range = query.range();
    let mut groups: BTreeMap<GroupKey, Vec<f64>> = BTreeMap::new();
    for r in live.values() {
        let (id, ts) = (r.id.unwrap(), r.timestamp_decision_made);
        let base = &r.scored_candidate.base;
        let field = |name: &str| -> Option<String> {
            Some(match name {
                "mint" => base.mint.clone(),
                "program" => base.program.clone(),
                "creator" => base.creator.clone(),
                "outcome_kind" => r.actual_outcome.kind().to_owned(),
                "transaction_signature" => r.transaction_signature.clone()?,
                other => panic!("model has no field {other}"),
            })
        };
        if !(range.min_id..=range.max_id).contains(&id)
            || !(range.min_ts..=range.max_ts).contains(&ts)
            || !range
                .equals
                .iter()
                .all(|(f, v)| field(f).as_deref() == Some(v.as_str()))
        {
            continue;
        }
        let value = match query.measure() {
            Measure::Count => Some(1.0),
            Measure::Pnl => match r.actual_outcome {
                Outcome::Profit(v) => Some(v),
                Outcome::Loss(v) => Some(-v.abs()),
                Outcome::Neutral => Some(0.0),
                _ => None,
            },
            Measure::Column(c) => match c.as_str() {
                "initial_sol_spent" => r.initial_sol_spent,
                "buy_price_sol" => r.buy_price_sol,
                "slot" => Some(base.slot as f64),
                other => panic!("model has no column {other}"),
            },
        };
        let key = match query.grouping() {
            GroupBy::None => Some(GroupKey::All),
            GroupBy::Day => Some(GroupKey::Day(ts.div_euclid(DAY) * DAY)),
            GroupBy::Hour => Some(GroupKey::Hour(ts.div_euclid(3_600_000) * 3_600_000)),
            GroupBy::Mint => field("mint").map(GroupKey::Text),
            GroupBy::Program => field("program").map(GroupKey::Text),
            GroupBy::Outcome => field("outcome_kind").map(GroupKey::Text),
            GroupBy::Column(c) => field(c).map(GroupKey::Text),
        };
        if let (Some(v), Some(k)) = (value, key) {
            groups.entry(k).or_default().push(v);
        }
    }
    let counting = matches!(query.measure(), Measure::Count);
    groups
        .into_iter()
        .map(|(k, vs)| {
            let sum: f64 = vs.iter().sum();
            let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let n = vs.len() as u64;
            if counting {
                (k, n, sum, None, None)
            } else {
                (k, n, sum, Some(min), Some(max))
            }
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_matches_model(
    got: &[AggregateRow],
    want: &[(GroupKey, u64, f64, Option<f64>, Option<f64>)],
    what: &str,
) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, (k, n, sum, min, max)) in got.iter().zip(want) {
        assert_eq!(&g.group, k, "{what}");
        assert_eq!(g.count, *n, "{what} {k:?}");
        assert!(close(g.sum, *sum), "{what} {k:?}: sum {} vs {sum}", g.sum);
        assert_eq!(g.min, *min, "{what} {k:?}");
        assert_eq!(g.max, *max, "{what} {k:?}");
        match (g.avg, min) {
            (Some(avg), Some(_)) => assert!(close(avg, sum / *n as f64), "{what} {k:?}"),
            (None, None) => {}
            other => panic!("{what} {k:?}: avg {other:?}"),
        }
    }
}

fn queries() -> Vec<Aggregate> {
    let measures = [
        Measure::Count,
        Measure::Pnl,
        Measure::sol_spent(),
        Measure::buy_price(),
        Measure::Column("slot".into()),
    ];
    let groupings = [
        GroupBy::None,
        GroupBy::Day,
        GroupBy::Hour,
        GroupBy::Mint,
        GroupBy::Program,
        GroupBy::Outcome,
        GroupBy::Column("creator".into()),
    ];
    let ranges = [
        ScanRange::default(),
        ScanRange::default().with_time(T0 + DAY / 2..=T0 + 2 * DAY + 200),
        ScanRange::default().with_program("raydium"),
        ScanRange::default()
            .with_mint("mint4")
            .with_time(T0..=T0 + 3 * DAY)
            .with_ids(50..=500),
        ScanRange::default().with_time(T0 + 10 * DAY..=T0 + 11 * DAY),
    ];
    let mut out = Vec::new();
    for m in &measures {
        for g in &groupings {
            for r in &ranges {
                out.push(
                    Aggregate::new(m.clone())
                        .group_by(g.clone())
                        .over(r.clone()),
                );
            }
        }
    }
    out
}

#[test]
fn aggregates_equal_the_model_over_every_tier() {
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(config(dir.path())).await;
        let live = mixed_store(&store).await;
        for query in queries() {
            let got = store.aggregate(&query).await.unwrap();
            assert_matches_model(&got, &model(&live, &query), &format!("{query:?}"));
        }
        // Everything archived (the updated records too), then compacted: the same answers.
        store.archive_older_than(i64::MAX).await.unwrap();
        store.compact_now().await.unwrap();
        let day = Aggregate::new(Measure::Pnl).group_by(GroupBy::Day);
        assert_matches_model(
            &store.aggregate(&day).await.unwrap(),
            &model(&live, &day),
            "all cold",
        );
    });
}

#[test]
fn aggregate_errors_are_invalid_queries() {
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(config(dir.path())).await;
        store.put(&record(1)).await.unwrap();
        let bad = [
            Aggregate::new(Measure::Column("no_such".into())),
            Aggregate::new(Measure::Column("mint".into())),
            Aggregate::new(Measure::Column("is_jito_bundle".into())),
            Aggregate::new(Measure::Count).group_by(GroupBy::Column("slot".into())),
            Aggregate::new(Measure::Count).group_by(GroupBy::Column("nope".into())),
            Aggregate::new(Measure::Count).over(ScanRange::default().with_field("nope", "x")),
            Aggregate::new(Measure::Count).over(ScanRange::default().with_field("slot", "1")),
        ];
        for query in bad {
            let err = store.aggregate(&query).await.unwrap_err();
            assert!(
                matches!(err, Error::InvalidQuery { .. }),
                "{query:?}: {err:?}"
            );
        }
    });
}
