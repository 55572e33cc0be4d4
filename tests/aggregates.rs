//! Protects projections, aggregates and the query-result cache: projected batches hold exactly
//! the asked columns with the values of the full records, from every tier; aggregates equal a
//! model computed from the records (every grouping and measure, time ranges and filters, hot,
//! warm and archived records, updated and removed archived records); bad queries are typed
//! errors; the cache serves equal answers and counts hits, misses and invalidations.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
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
    r.initial_sol_spent = (!n.is_multiple_of(5)).then_some(n as f64 / 10.0);
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

/// A model's result row: group, count, sum, min, max.
type ModelRow = (GroupKey, u64, f64, Option<f64>, Option<f64>);

/// The model's answer: `measure` over the live records `range` selects, by `group`.
fn model(live: &BTreeMap<i64, TransactionRecord>, query: &Aggregate) -> Vec<ModelRow> {
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

fn assert_matches_model(got: &[AggregateRow], want: &[ModelRow], what: &str) {
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

fn cached_config(dir: &Path) -> StorageConfig {
    let mut c = config(dir);
    c.query_cache.max_bytes = 1 << 20;
    c
}

async fn cache_counts(store: &Store) -> (u64, u64, u64) {
    let m = store.collect_metrics().await.unwrap().query_cache.unwrap();
    (m.hits, m.misses, m.invalidations)
}

/// A record of day `day` (from T0) with this PnL.
fn on_day(day: i64, pnl: f64) -> TransactionRecord {
    let mut r = record(day as u64);
    r.timestamp_decision_made = T0 + day * DAY + 1_000;
    r.transaction_signature = None;
    r.actual_outcome = if pnl >= 0.0 {
        Outcome::Profit(pnl)
    } else {
        Outcome::Loss(-pnl)
    };
    r
}

#[test]
fn query_cache_hits_and_invalidates_exactly_the_written_days() {
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(cached_config(dir.path())).await;
        let mut ids = Vec::new();
        for day in 0..3 {
            for k in 0..4 {
                ids.push(store.put(&on_day(day, k as f64)).await.unwrap());
            }
        }
        let day0 = Aggregate::new(Measure::Pnl)
            .over(ScanRange::default().with_time(T0..=T0 + DAY - 1))
            .group_by(GroupBy::Day);
        let all = Aggregate::new(Measure::Pnl).group_by(GroupBy::Day);
        let first = store.aggregate(&day0).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].sum, 6.0);
        assert_eq!(cache_counts(&store).await, (0, 1, 0));
        assert_eq!(store.aggregate(&day0).await.unwrap(), first);
        assert_eq!(cache_counts(&store).await, (1, 1, 0));
        // The same query written differently is the same key.
        let day0_again = Aggregate::new(Measure::Pnl)
            .group_by(GroupBy::Day)
            .over(ScanRange::default().with_time(T0..=T0 + DAY - 1));
        assert_eq!(store.aggregate(&day0_again).await.unwrap(), first);
        assert_eq!(cache_counts(&store).await, (2, 1, 0));
        store.aggregate(&all).await.unwrap();
        assert_eq!(cache_counts(&store).await, (2, 2, 0));

        // A put on day 2: day 0's answer holds, the whole range's does not.
        store.put(&on_day(2, 10.0)).await.unwrap();
        assert_eq!(store.aggregate(&day0).await.unwrap(), first);
        assert_eq!(cache_counts(&store).await, (3, 2, 0));
        let everything = store.aggregate(&all).await.unwrap();
        assert_eq!(everything[2].sum, 16.0);
        assert_eq!(cache_counts(&store).await, (3, 3, 1));
        // A put on a new day inside the range.
        store.put(&on_day(5, 1.0)).await.unwrap();
        assert_eq!(store.aggregate(&all).await.unwrap().len(), 4);
        assert_eq!(cache_counts(&store).await, (3, 4, 2));

        // Archival and compaction change no answer: both stay cached.
        store.aggregate(&all).await.unwrap();
        let (hits, misses, inv) = cache_counts(&store).await;
        let report = store.archive_older_than(T0 + 3 * DAY).await.unwrap();
        assert_eq!(report.archived, 13);
        store.compact_now().await.unwrap();
        assert_eq!(store.aggregate(&day0).await.unwrap(), first);
        let again = store.aggregate(&all).await.unwrap();
        assert_eq!(cache_counts(&store).await, (hits + 2, misses, inv));

        // An update of an archived day-1 record that moves it to day 0: both days change.
        let mut moved = store.get(ids[5]).await.unwrap().unwrap();
        moved.timestamp_decision_made = T0 + 5;
        moved.actual_outcome = Outcome::Loss(100.0);
        store.update(&moved).await.unwrap();
        let day0_now = store.aggregate(&day0).await.unwrap();
        assert_eq!(day0_now[0].sum, 6.0 - 100.0);
        assert_eq!(cache_counts(&store).await, (hits + 2, misses + 1, inv + 1));
        let all_now = store.aggregate(&all).await.unwrap();
        assert_ne!(all_now, again);
        assert_eq!(all_now[1].sum, 6.0 - 1.0);
        // The removal of an archived record invalidates its file's days.
        let day2 = Aggregate::new(Measure::Count)
            .over(ScanRange::default().with_time(T0 + 2 * DAY..=T0 + 3 * DAY - 1));
        assert_eq!(store.aggregate(&day2).await.unwrap()[0].count, 5);
        store.remove(ids[8]).await.unwrap();
        assert_eq!(store.aggregate(&day2).await.unwrap()[0].count, 4);
        let answers = [
            store.aggregate(&day0).await.unwrap(),
            store.aggregate(&all).await.unwrap(),
            store.aggregate(&day2).await.unwrap(),
        ];
        assert_eq!(answers[1][2].count, 4);
        // The answers equal a fresh computation by a store without a cache.
        store.shutdown().await.unwrap();
        let plain = open(config(dir.path())).await;
        assert!(plain.collect_metrics().await.unwrap().query_cache.is_none());
        for (q, cached) in [&day0, &all, &day2].into_iter().zip(&answers) {
            assert_eq!(&plain.aggregate(q).await.unwrap(), cached);
        }
    });
}

#[test]
fn query_cache_metrics_reach_prometheus_and_read_only_opens_have_no_cache() {
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(cached_config(dir.path())).await;
        store.put(&on_day(0, 1.0)).await.unwrap();
        let q = Aggregate::new(Measure::Count).group_by(GroupBy::Mint);
        store.aggregate(&q).await.unwrap();
        store.aggregate(&q).await.unwrap();
        let m = store.collect_metrics().await.unwrap().query_cache.unwrap();
        assert_eq!((m.hits, m.misses, m.entries), (1, 1, 1));
        assert!(m.bytes > 0);
        let text = store.export_prometheus().await.unwrap();
        for line in [
            "query_cache_hits_total 1",
            "query_cache_misses_total 1",
            "query_cache_invalidations_total 0",
            "query_cache_entries 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.lines().any(|l| l.starts_with("query_cache_bytes ")));

        let reader = Store::open_read_only(cached_config(dir.path()))
            .await
            .unwrap();
        assert_eq!(reader.aggregate(&q).await.unwrap()[0].count, 1);
        assert!(reader
            .collect_metrics()
            .await
            .unwrap()
            .query_cache
            .is_none());
        assert!(!reader
            .export_prometheus()
            .await
            .unwrap()
            .contains("query_cache"));
    });
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        day: i64,
        pnl: i8,
    },
    Update {
        pick: usize,
        day: Option<i64>,
        pnl: i8,
    },
    Remove {
        pick: usize,
    },
    Archive {
        cutoff_day: i64,
    },
    Compact,
    Ask {
        query: usize,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..6i64, any::<i8>()).prop_map(|(day, pnl)| Op::Put { day, pnl }),
        4 => (any::<usize>(), proptest::option::of(0..6i64), any::<i8>())
            .prop_map(|(pick, day, pnl)| Op::Update { pick, day, pnl }),
        2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        2 => (0..7i64).prop_map(|cutoff_day| Op::Archive { cutoff_day }),
        1 => Just(Op::Compact),
        8 => any::<usize>().prop_map(|query| Op::Ask { query }),
    ]
}

/// The queries the property test asks (each several times, so the cache answers).
fn cache_queries() -> Vec<Aggregate> {
    let day = |d: i64| ScanRange::default().with_time(T0 + d * DAY..=T0 + (d + 1) * DAY - 1);
    vec![
        Aggregate::new(Measure::Pnl).group_by(GroupBy::Day),
        Aggregate::new(Measure::Pnl).over(day(1)),
        Aggregate::new(Measure::Count)
            .over(day(3))
            .group_by(GroupBy::Outcome),
        Aggregate::new(Measure::sol_spent())
            .over(ScanRange::default().with_time(T0 + DAY..=T0 + 4 * DAY - 1))
            .group_by(GroupBy::Hour),
        Aggregate::new(Measure::Count).over(ScanRange::default().with_program("pump")),
        Aggregate::new(Measure::Pnl)
            .over(ScanRange::default().with_ids(1..=20))
            .group_by(GroupBy::Mint),
    ]
}

/// The live records `range` selects, in id order.
fn selected(live: &BTreeMap<i64, TransactionRecord>, range: &ScanRange) -> Vec<TransactionRecord> {
    live.values()
        .filter(|r| {
            (range.min_id..=range.max_id).contains(&r.id.unwrap())
                && (range.min_ts..=range.max_ts).contains(&r.timestamp_decision_made)
                && range.equals.iter().all(|(f, v)| match f.as_str() {
                    "program" => r.scored_candidate.base.program == *v,
                    "mint" => r.scored_candidate.base.mint == *v,
                    other => panic!("model has no field {other}"),
                })
        })
        .cloned()
        .collect()
}

/// The `k` newest live records by (timestamp, id), newest first.
fn newest(live: &BTreeMap<i64, TransactionRecord>, k: usize) -> Vec<TransactionRecord> {
    let mut all: Vec<TransactionRecord> = live.values().cloned().collect();
    all.sort_by_key(|r| std::cmp::Reverse((r.timestamp_decision_made, r.id)));
    all.truncate(k);
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random puts, updates and removes of warm and archived records, archival and compaction,
    /// interleaved with cached aggregates: every answer equals the model's.
    #[test]
    fn query_cache_answers_equal_uncached_answers(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        common::runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = open(cached_config(dir.path())).await;
            let queries = cache_queries();
            let mut live: BTreeMap<i64, TransactionRecord> = BTreeMap::new();
            let mut n = 0u64;
            for op in ops {
                match op {
                    Op::Put { day, pnl } => {
                        n += 1;
                        let mut r = on_day(day, f64::from(pnl) / 4.0);
                        r.timestamp_decision_made += n as i64 * 60_000;
                        r.transaction_signature = Some(format!("sig-{n}"));
                        r.id = Some(store.put(&r).await.unwrap());
                        live.insert(r.id.unwrap(), r);
                    }
                    Op::Update { pick, day, pnl } if !live.is_empty() => {
                        let id = *live.keys().nth(pick % live.len()).unwrap();
                        let r = live.get_mut(&id).unwrap();
                        if let Some(day) = day {
                            r.timestamp_decision_made = T0 + day * DAY + 7;
                        }
                        r.actual_outcome = Outcome::Loss(f64::from(pnl));
                        store.update(r).await.unwrap();
                    }
                    Op::Remove { pick } if !live.is_empty() => {
                        let id = *live.keys().nth(pick % live.len()).unwrap();
                        store.remove(id).await.unwrap();
                        live.remove(&id);
                    }
                    Op::Archive { cutoff_day } => {
                        store.archive_older_than(T0 + cutoff_day * DAY).await.unwrap();
                    }
                    Op::Compact => {
                        store.compact_now().await.unwrap();
                    }
                    Op::Ask { query } => {
                        let q = &queries[query % queries.len()];
                        let got = store.aggregate(q).await.unwrap();
                        assert_matches_model(&got, &model(&live, q), &format!("{q:?}"));
                        // The records of the same range, and the newest few.
                        let records = store.query(q.range().clone()).await.unwrap();
                        assert_eq!(records, selected(&live, q.range()), "{q:?}");
                        let k = 1 + query % 4;
                        assert_eq!(store.latest(k).await.unwrap(), newest(&live, k));
                    }
                    _ => {}
                }
            }
            for q in &queries {
                let got = store.aggregate(q).await.unwrap();
                assert_matches_model(&got, &model(&live, q), &format!("{q:?}"));
            }
            let m = store.collect_metrics().await.unwrap().query_cache.unwrap();
            assert!(m.hits + m.misses > 0);
            assert!(m.entries > 0 && m.bytes > 0);
        });
    }
}

#[test]
fn query_and_latest_answers_are_cached_until_a_covered_day_is_written() {
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(cached_config(dir.path())).await;
        for day in 0..3 {
            store.put(&on_day(day, 1.0)).await.unwrap();
        }
        // T0 is 22:13 UTC: this range covers two UTC days, the put on day 2 a third.
        let early = ScanRange::default().with_time(T0..=T0 + DAY - 1);
        let first = store.query(early.clone()).await.unwrap();
        assert_eq!(first.len(), 1);
        let newest = store.latest(2).await.unwrap();
        assert_eq!(cache_counts(&store).await, (0, 2, 0));
        assert_eq!(store.query(early.clone()).await.unwrap(), first);
        assert_eq!(store.latest(2).await.unwrap(), newest);
        assert_eq!(cache_counts(&store).await, (2, 2, 0));
        // Another limit is another query.
        assert_eq!(store.latest(1).await.unwrap(), newest[..1]);
        assert_eq!(cache_counts(&store).await, (2, 3, 0));
        // A put on day 2: day 1's records hold; `latest` covers every day.
        let id = store.put(&on_day(2, 5.0)).await.unwrap();
        assert_eq!(store.query(early.clone()).await.unwrap(), first);
        let now = store.latest(2).await.unwrap();
        assert_eq!(now[0].id, Some(id));
        assert_eq!(cache_counts(&store).await, (3, 4, 1));
        // Bad queries are errors, never cached.
        let err = store
            .query(ScanRange::default().limit(0))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidQuery { .. }), "{err:?}");
    });
}

#[test]
fn scan_columns_honours_the_limit_and_is_a_stream() {
    use futures_core::Stream;
    common::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open(config(dir.path())).await;
        let live = mixed_store(&store).await;
        let mut cursor = store
            .scan_columns(ScanRange::default().limit(45), &["id"], 20)
            .unwrap();
        let mut ids = Vec::new();
        // Drained as a Stream (polled by hand: no futures-util in the tests).
        loop {
            let next =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut cursor).poll_next(cx)).await;
            let Some(batch) = next else { break };
            let batch = batch.unwrap();
            assert!(batch.num_rows() <= 20);
            let col = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            ids.extend(col.values().iter().copied());
        }
        let want: Vec<i64> = live.keys().copied().take(45).collect();
        assert_eq!(ids, want);
        let err = store
            .scan_columns(ScanRange::default().newest_first(), &["id"], 20)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidQuery { .. }), "{err:?}");
        let err = store
            .aggregate(&Aggregate::new(Measure::Count).over(ScanRange::default().limit(3)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidQuery { .. }), "{err:?}");
        // An aggregate ignores the order: newest first counts the same.
        let count = |r: ScanRange| {
            let store = &store;
            async move {
                store
                    .aggregate(&Aggregate::new(Measure::Count).over(r))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            count(ScanRange::default().newest_first()).await,
            count(ScanRange::default()).await
        );
    });
}
