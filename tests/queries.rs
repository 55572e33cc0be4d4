//! Time-ordered scans, `latest`, `query`, `collect`, the `Stream` cursor and typed outcome
//! filters: answers equal a model's across hot, warm and cold while records move, each record
//! comes once per scan, and `latest(n)` reads about `n` records.

use std::collections::{BTreeMap, HashSet};
use std::future::poll_fn;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_core::Stream;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use tiered_storage::{
    AutoTieringCoordinator, Error, Outcome, OutcomeKind, Record, ScanOrder, ScanRange,
    StorageConfig, TransactionRecord,
};

mod common;
use common::{runtime, DAY, T0};

type Store = AutoTieringCoordinator<TransactionRecord>;

/// Small files and pages (64 rows), so a few hundred records make several files and pages;
/// compaction merges every partition's files.
fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir).with_hot_capacity(32);
    c.cold.archive_batch_rows = 16;
    c.cold.target_file_mib = 1;
    c.cold.compact_small_fraction = 0.5;
    c.cold.compact_dead_fraction = 0.2;
    c.warm.read_connections = 2;
    c
}

fn trade(ts: i64, outcome: Outcome) -> TransactionRecord {
    TransactionRecord {
        timestamp_decision_made: ts,
        actual_outcome: outcome,
        ..TransactionRecord::default()
    }
}

fn key(r: &TransactionRecord) -> (i64, i64) {
    (r.timestamp_decision_made, r.id.unwrap())
}

/// What `range` selects from the model, in its order, cut at its limit.
fn expected(model: &BTreeMap<i64, TransactionRecord>, range: &ScanRange) -> Vec<TransactionRecord> {
    let mut out: Vec<TransactionRecord> = model
        .values()
        .filter(|r| {
            (range.min_ts..=range.max_ts).contains(&r.timestamp_decision_made)
                && (range.min_id..=range.max_id).contains(&r.id.unwrap())
                && range
                    .equals
                    .iter()
                    .all(|(f, v)| r.field(f).as_deref() == Some(v.as_str()))
        })
        .cloned()
        .collect();
    match range.order {
        ScanOrder::IdAscending => {}
        ScanOrder::OldestFirst => out.sort_by_key(key),
        ScanOrder::NewestFirst => out.sort_by_key(|r| std::cmp::Reverse(key(r))),
    }
    out.truncate(range.limit.unwrap_or(usize::MAX));
    out
}

async fn drain_pages(
    store: &Store,
    range: ScanRange,
    page: usize,
) -> Result<Vec<TransactionRecord>, Error> {
    let mut cursor = store.scan(range, page)?;
    let mut out = Vec::new();
    while let Some(p) = cursor.next_page().await? {
        assert!(!p.is_empty() && p.len() <= page, "page of {}", p.len());
        out.extend(p);
    }
    Ok(out)
}

async fn drain_stream(
    store: &Store,
    range: ScanRange,
    page: usize,
) -> Result<Vec<TransactionRecord>, Error> {
    let mut cursor = store.scan(range, page)?;
    let mut out = Vec::new();
    while let Some(r) = poll_fn(|cx| Pin::new(&mut cursor).poll_next(cx)).await {
        out.push(r?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The property test.

#[derive(Debug, Clone)]
enum Op {
    /// A trade at day `d` (0..4) plus `t` ms (few values, so timestamps tie).
    Put {
        d: u8,
        t: u8,
        o: u8,
    },
    /// Update the `k`-th live record (modulo) to a new time and outcome.
    Update {
        k: u16,
        d: u8,
        t: u8,
        o: u8,
    },
    Remove {
        k: u16,
    },
    /// Archive everything older than day `d`.
    Archive {
        d: u8,
    },
    Compact,
    Scan {
        desc: bool,
        limit: Option<u8>,
        days: Option<(u8, u8)>,
        o: Option<u8>,
        page: u8,
        stream: bool,
    },
}

fn ts_of(d: u8, t: u8) -> i64 {
    T0 + i64::from(d % 4) * DAY + i64::from(t % 6) * 1000
}

fn outcome_of(o: u8, n: usize) -> Outcome {
    match o % 4 {
        0 => Outcome::Profit(n as f64 / 4.0),
        1 => Outcome::Loss(n as f64 / 8.0),
        2 => Outcome::Neutral,
        _ => Outcome::ExecutionError(format!("e{n}")),
    }
}

/// The kinds `outcome_of` makes, and one it never makes.
const KINDS: [OutcomeKind; 5] = [
    OutcomeKind::Profit,
    OutcomeKind::Loss,
    OutcomeKind::Neutral,
    OutcomeKind::ExecutionError,
    OutcomeKind::NotExecuted,
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(d, t, o)| Op::Put { d, t, o }),
        3 => (any::<u16>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(k, d, t, o)| Op::Update { k, d, t, o }),
        2 => any::<u16>().prop_map(|k| Op::Remove { k }),
        2 => (0u8..5).prop_map(|d| Op::Archive { d }),
        1 => Just(Op::Compact),
        4 => (
            any::<bool>(),
            proptest::option::of(1u8..40),
            proptest::option::of((0u8..4, 0u8..4)),
            proptest::option::of(any::<u8>()),
            1u8..16,
            any::<bool>()
        )
            .prop_map(|(desc, limit, days, o, page, stream)| Op::Scan {
                desc,
                limit,
                days,
                o,
                page,
                stream
            }),
    ]
}

async fn run_ops(dir: &Path, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = Store::open(config(dir)).await.unwrap();
    let mut model: BTreeMap<i64, TransactionRecord> = BTreeMap::new();
    let fail = |step: usize, what: &str, e: Error| {
        TestCaseError::fail(format!("step {step}: {what}: {e}"))
    };
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Put { d, t, o } => {
                let mut r = trade(ts_of(*d, *t), outcome_of(*o, step));
                let id = store.put(&r).await.map_err(|e| fail(step, "put", e))?;
                r.id = Some(id);
                model.insert(id, r);
            }
            Op::Update { k, d, t, o } => {
                let Some(id) = model
                    .keys()
                    .nth(usize::from(*k) % model.len().max(1))
                    .copied()
                else {
                    continue;
                };
                let mut r = trade(ts_of(*d, *t), outcome_of(*o, step));
                r.id = Some(id);
                store
                    .update(&r)
                    .await
                    .map_err(|e| fail(step, "update", e))?;
                model.insert(id, r);
            }
            Op::Remove { k } => {
                let Some(id) = model
                    .keys()
                    .nth(usize::from(*k) % model.len().max(1))
                    .copied()
                else {
                    continue;
                };
                store
                    .remove(id)
                    .await
                    .map_err(|e| fail(step, "remove", e))?;
                model.remove(&id);
            }
            Op::Archive { d } => {
                store
                    .archive_older_than(T0 + i64::from(*d) * DAY)
                    .await
                    .map_err(|e| fail(step, "archive", e))?;
            }
            Op::Compact => {
                store
                    .compact_now()
                    .await
                    .map_err(|e| fail(step, "compact", e))?;
            }
            Op::Scan {
                desc,
                limit,
                days,
                o,
                page,
                stream,
            } => {
                let mut range = ScanRange::default();
                range = if *desc {
                    range.newest_first()
                } else {
                    range.oldest_first()
                };
                if let Some(n) = limit {
                    range = range.limit(usize::from(*n));
                }
                if let Some((a, b)) = days {
                    let (a, b) = (i64::from(*a.min(b)), i64::from(*a.max(b)));
                    // Bounds inside a day too, so windows start and end between records.
                    range = range.with_time(T0 + a * DAY + 1500..=T0 + b * DAY + 3500);
                }
                if let Some(o) = o {
                    range = range.with_outcome(KINDS[usize::from(*o) % KINDS.len()]);
                }
                let want = expected(&model, &range);
                let page = usize::from(*page);
                let got = if *stream {
                    drain_stream(&store, range.clone(), page).await
                } else {
                    drain_pages(&store, range.clone(), page).await
                }
                .map_err(|e| fail(step, "scan", e))?;
                prop_assert_eq!(&got, &want, "step {}: {:?}", step, range);
                let queried = store
                    .query(range.clone())
                    .await
                    .map_err(|e| fail(step, "query", e))?;
                prop_assert_eq!(&queried, &want, "step {}: query {:?}", step, range);
            }
        }
    }
    // Finally every order over everything, and latest.
    for range in [
        ScanRange::default(),
        ScanRange::default().oldest_first(),
        ScanRange::default().newest_first(),
    ] {
        let got = drain_pages(&store, range.clone(), 7)
            .await
            .map_err(|e| fail(ops.len(), "scan", e))?;
        prop_assert_eq!(got, expected(&model, &range), "final {:?}", range);
    }
    let latest = store
        .latest(5)
        .await
        .map_err(|e| fail(ops.len(), "latest", e))?;
    prop_assert_eq!(
        latest,
        expected(&model, &ScanRange::default().newest_first().limit(5))
    );
    store.shutdown().await.unwrap();
    Ok(())
}

/// Random puts, updates (which move timestamps), removes, archival and compaction, then
/// time-ordered scans in both directions with random limits, time ranges, outcome filters and
/// page sizes, through pages, the `Stream` and `query`: always the model's answer, sorted by
/// `(timestamp, id)`.
#[test]
fn queries_time_ordered_scans_match_the_model() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let rt = runtime();
    runner
        .run(&proptest::collection::vec(op(), 10..70), |ops| {
            let dir = tempfile::tempdir().unwrap();
            rt.block_on(run_ops(dir.path(), &ops))
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// latest(n) reads about n records.

/// `latest(20)` over 20,000 warm records reads about 20 of them (one SQLite read), with or
/// without an archive of older records; with the newest records archived it reads a few cold
/// pages, not the store.
#[test]
fn queries_latest_reads_about_n_records() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        let n = 20_000u64;
        // Timestamps out of id order: id k gets a time from a permutation of 0..n.
        let batch: Vec<TransactionRecord> = (0..n)
            .map(|k| {
                trade(
                    T0 + ((k * 7919) % n) as i64 * 10,
                    outcome_of(k as u8, k as usize),
                )
            })
            .collect();
        let mut model = BTreeMap::new();
        for (r, id) in batch.iter().zip(store.put_many(&batch).await.unwrap()) {
            let mut r = r.clone();
            r.id = Some(id.unwrap());
            model.insert(r.id.unwrap(), r);
        }
        let want = expected(&model, &ScanRange::default().newest_first().limit(20));

        let check = |label: &'static str, max_read: u64| {
            let store = &store;
            let want = want.clone();
            async move {
                let mut cursor = store
                    .scan(ScanRange::default().newest_first().limit(20), 20)
                    .unwrap();
                let mut got = Vec::new();
                while let Some(p) = cursor.next_page().await.unwrap() {
                    got.extend(p);
                }
                assert_eq!(got, want, "{label}");
                assert!(
                    cursor.rows_read() <= max_read,
                    "{label}: read {} records",
                    cursor.rows_read()
                );
                assert_eq!(store.latest(20).await.unwrap(), want, "{label}");
            }
        };
        check("all in warm", 20).await;

        // The older half archived: the newest 20 are still in warm, no file can hold one.
        store
            .archive_older_than(T0 + (n as i64 / 2) * 10)
            .await
            .unwrap();
        assert!(!store.cold_tier().files().unwrap().is_empty());
        check("old half archived", 20).await;

        // Everything archived: a few pages of the newest day's files are read, not the store.
        store.archive_older_than(i64::MAX).await.unwrap();
        assert_eq!(store.get_stats().await.unwrap().warm_records, 0);
        check("all archived", 2_000).await;
        store.shutdown().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Scans racing archival and compaction.

/// Time-ordered scans (both directions, small pages) run while archival moves records to cold
/// a day at a time and removes and compaction rewrite files. Records that never change must
/// each come exactly once, in order; removed ones at most once.
#[test]
fn queries_time_scans_racing_moves_return_each_record_once() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(config(dir.path())).await.unwrap());
        let days = 6i64;
        let mut stable = BTreeMap::new();
        let mut churn = Vec::new();
        for k in 0..1_200i64 {
            let r = trade(T0 + (k % days) * DAY + k, Outcome::Profit(k as f64));
            let id = store.put(&r).await.unwrap();
            if k % 5 == 0 {
                churn.push(id);
            } else {
                let mut r = r;
                r.id = Some(id);
                stable.insert(id, r);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mover = {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut d = 1;
                let mut churn = churn.into_iter();
                while !stop.load(Ordering::Relaxed) {
                    store.archive_older_than(T0 + d * DAY).await.unwrap();
                    for id in churn.by_ref().take(30) {
                        store.remove(id).await.unwrap();
                    }
                    store.compact_now().await.unwrap();
                    d = d % (days + 1) + 1;
                    tokio::task::yield_now().await;
                }
            })
        };
        for round in 0..12 {
            let desc = round % 2 == 1;
            let range = if desc {
                ScanRange::default().newest_first()
            } else {
                ScanRange::default().oldest_first()
            };
            let got = drain_pages(&store, range, 3 + round).await.unwrap();
            let keys: Vec<(i64, i64)> = got.iter().map(key).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            if desc {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "round {round}: out of order");
            let ids: HashSet<i64> = got.iter().map(|r| r.id.unwrap()).collect();
            assert_eq!(ids.len(), got.len(), "round {round}: a record came twice");
            for (id, r) in &stable {
                assert!(ids.contains(id), "round {round}: record {id} missing");
                assert_eq!(got.iter().find(|g| g.id == Some(*id)), Some(r));
            }
        }
        stop.store(true, Ordering::Relaxed);
        mover.await.unwrap();
        assert!(store.get_stats().await.unwrap().cold_records > 0);
    });
}

// ---------------------------------------------------------------------------------------------
// Typed outcomes, limits, collect.

#[test]
fn queries_refuse_unknown_outcome_kinds_and_a_zero_limit() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        store.put(&trade(T0, Outcome::Loss(0.5))).await.unwrap();
        let err = "Los".parse::<OutcomeKind>().unwrap_err();
        assert_eq!(err.code(), "invalid_query");
        assert!(err.to_string().contains("Loss"), "{err}");
        // A raw filter with a kind that does not exist is refused, not an empty answer.
        for range in [
            ScanRange::default().with_field("outcome_kind", "Los"),
            ScanRange::default().with_field("no_such_field", "x"),
            ScanRange::default().limit(0),
            ScanRange::default().newest_first().limit(0),
        ] {
            assert!(
                matches!(
                    store.scan(range.clone(), 10),
                    Err(Error::InvalidQuery { .. })
                ),
                "{range:?}"
            );
            assert!(
                matches!(
                    store.query(range.clone()).await,
                    Err(Error::InvalidQuery { .. })
                ),
                "{range:?}"
            );
        }
        let losses = store
            .query(ScanRange::default().with_outcome(OutcomeKind::Loss))
            .await
            .unwrap();
        assert_eq!(losses.len(), 1);
        assert_eq!(losses[0].actual_outcome.pnl(), Some(-0.5));
        assert!(store
            .query(ScanRange::default().with_outcome(OutcomeKind::Profit))
            .await
            .unwrap()
            .is_empty());
        assert!(store.latest(0).await.unwrap().is_empty());
    });
}

/// `collect(limit)` and id-ordered limits: the first records in order, the cursor stops there.
#[test]
fn queries_collect_and_limits_in_id_order() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        let mut ids = Vec::new();
        for k in 0..100 {
            ids.push(
                store
                    .put(&trade(T0 + (100 - k) * 1000, Outcome::Neutral))
                    .await
                    .unwrap(),
            );
        }
        store.archive_older_than(T0 + 50 * 1000).await.unwrap();
        let got: Vec<i64> = store
            .query(ScanRange::default().limit(30))
            .await
            .unwrap()
            .iter()
            .map(|r| r.id.unwrap())
            .collect();
        assert_eq!(got, ids[..30]);
        let got: Vec<i64> = store
            .scan(ScanRange::default(), 7)
            .unwrap()
            .collect(12)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id.unwrap())
            .collect();
        assert_eq!(got, ids[..12]);
        let pages = drain_pages(&store, ScanRange::default().limit(10), 4)
            .await
            .unwrap();
        assert_eq!(pages.len(), 10);
        // Oldest first is the reverse of put order here.
        let oldest: Vec<i64> = store
            .query(ScanRange::default().oldest_first().limit(5))
            .await
            .unwrap()
            .iter()
            .map(|r| r.id.unwrap())
            .collect();
        assert_eq!(
            oldest,
            ids.iter().rev().take(5).copied().collect::<Vec<_>>()
        );
    });
}

/// A time-ordered cursor whose `next_page` futures are dropped mid-read (a zero timeout) over
/// and over still returns every record once, in order: the page being read is kept.
#[test]
fn queries_time_cursor_is_cancel_safe() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        let mut model = BTreeMap::new();
        for k in 0..600i64 {
            let mut r = trade(T0 + (k * 37 % 600) * 1000 + (k % 3) * DAY, Outcome::Neutral);
            r.id = Some(store.put(&r).await.unwrap());
            model.insert(r.id.unwrap(), r);
        }
        store.archive_older_than(T0 + DAY).await.unwrap();
        for range in [
            ScanRange::default().newest_first(),
            ScanRange::default().oldest_first().limit(450),
        ] {
            let mut cursor = store.scan(range.clone(), 25).unwrap();
            let mut got = Vec::new();
            let mut cancelled = 0;
            loop {
                match tokio::time::timeout(std::time::Duration::ZERO, cursor.next_page()).await {
                    Err(_) => cancelled += 1,
                    Ok(page) => match page.unwrap() {
                        Some(p) => got.extend(p),
                        None => break,
                    },
                }
            }
            assert!(cancelled > 0, "no read was ever cancelled");
            assert_eq!(got, expected(&model, &range), "{range:?}");
        }
    });
}
