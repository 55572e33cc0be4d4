//! Protects the store's observable behaviour as a whole: random sequences of put / update /
//! remove / reads / hot clears / reopens must match a `BTreeMap` model, errors included.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tiered_storage::{AutoTieringCoordinator, Error, Outcome, StorageConfig, TransactionRecord};

type Store = AutoTieringCoordinator<TransactionRecord>;

/// A signature choice: `None` = no signature, `Some(0)` = the empty string (always refused),
/// `Some(k)` = one of a small pool, so duplicates are common.
type Sig = Option<u8>;

const SIG_POOL: u8 = 6;

fn sig_text(sig: Sig) -> Option<String> {
    match sig {
        None => None,
        Some(0) => Some(String::new()),
        Some(k) => Some(format!("pool-signature-{k}")),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put { sig: Sig, ts: i64 },
    Update { target: usize, sig: Sig, ts: i64 },
    Remove { target: usize },
    Get { target: usize },
    GetBySignature { sig: Sig },
    ClearHot,
    Reopen,
}

fn sig_strategy() -> impl Strategy<Value = Sig> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(0)),
        10 => (1..=SIG_POOL).prop_map(Some),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let ts = (0i64..5).prop_map(|t| t * 100);
    prop_oneof![
        6 => (sig_strategy(), ts.clone()).prop_map(|(sig, ts)| Op::Put { sig, ts }),
        5 => (any::<usize>(), sig_strategy(), ts)
            .prop_map(|(target, sig, ts)| Op::Update { target, sig, ts }),
        3 => any::<usize>().prop_map(|target| Op::Remove { target }),
        5 => any::<usize>().prop_map(|target| Op::Get { target }),
        4 => sig_strategy().prop_map(|sig| Op::GetBySignature { sig }),
        1 => Just(Op::ClearHot),
        1 => Just(Op::Reopen),
    ]
}

struct Model {
    records: BTreeMap<i64, TransactionRecord>,
    /// Every id a put ever returned, removed ones included.
    assigned: Vec<i64>,
}

impl Model {
    /// Ids an op can target: every id ever assigned, one never assigned, and 0.
    fn target(&self, pick: usize) -> i64 {
        let never = self.assigned.iter().max().copied().unwrap_or(0) + 1;
        let n = self.assigned.len() + 2;
        match pick % n {
            i if i < self.assigned.len() => self.assigned[i],
            i if i == self.assigned.len() => never,
            _ => 0,
        }
    }

    fn owner_of(&self, sig: &str) -> Option<i64> {
        self.records
            .iter()
            .find(|(_, r)| r.transaction_signature.as_deref() == Some(sig))
            .map(|(id, _)| *id)
    }
}

fn config(dir: &Path, min_access: u64, auto_promote: bool) -> StorageConfig {
    let mut c = StorageConfig::default()
        .with_data_dir(dir)
        .with_hot_capacity(8);
    c.tiering.min_hot_access_count = min_access;
    c.tiering.auto_promote_on_access = auto_promote;
    // Small batches and few idle readers exercise more code paths per op.
    c.warm.read_connections = 2;
    c
}

fn err_name(e: &Error) -> String {
    format!("{e:?}")
}

async fn scan(store: &Store, since: i64, page: usize) -> Result<Vec<TransactionRecord>, Error> {
    let mut cursor = store.list_since_with_page_size(since, page);
    let mut out = Vec::new();
    while let Some(r) = cursor.next().await? {
        out.push(r);
    }
    Ok(out)
}

async fn run(ops: Vec<Op>, min_access: u64, auto_promote: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let cfg = config(dir.path(), min_access, auto_promote);
    let mut store: Store = AutoTieringCoordinator::open(cfg.clone())
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model {
        records: BTreeMap::new(),
        assigned: Vec::new(),
    };

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put { sig, ts } => {
                let text = sig_text(sig);
                let r = TransactionRecord {
                    transaction_signature: text.clone(),
                    timestamp_decision_made: ts,
                    final_sol_received: Some(step as f64),
                    ..TransactionRecord::default()
                };
                let got = store.put(&r).await;
                match text.as_deref() {
                    Some("") => prop_assert!(
                        matches!(got, Err(Error::EmptySignature)),
                        "step {step}: put with empty signature gave {got:?}"
                    ),
                    Some(s) if model.owner_of(s).is_some() => {
                        let owner = model.owner_of(s).unwrap();
                        prop_assert!(
                            matches!(&got, Err(Error::DuplicateSignature { existing_id, .. }) if *existing_id == owner),
                            "step {step}: put of taken {s} (owner {owner}) gave {got:?}"
                        );
                    }
                    _ => {
                        let id = got.map_err(|e| {
                            TestCaseError::fail(format!(
                                "step {step}: put failed: {}",
                                err_name(&e)
                            ))
                        })?;
                        prop_assert!(
                            model.assigned.iter().all(|a| *a < id),
                            "step {step}: id {id} not above every earlier id {:?}",
                            model.assigned
                        );
                        let mut stored = r;
                        stored.id = Some(id);
                        model.records.insert(id, stored);
                        model.assigned.push(id);
                    }
                }
            }
            Op::Update { target, sig, ts } => {
                let id = model.target(target);
                let text = sig_text(sig);
                let mut r = model.records.get(&id).cloned().unwrap_or_default();
                r.id = Some(id);
                r.transaction_signature = text.clone();
                r.timestamp_decision_made = ts;
                r.actual_outcome = Outcome::Profit(step as f64);
                let got = store.update(&r).await;
                let exists = model.records.contains_key(&id);
                let owner = text
                    .as_deref()
                    .and_then(|s| model.owner_of(s))
                    .filter(|o| *o != id);
                match (text.as_deref(), owner, exists) {
                    (Some(""), _, _) => prop_assert!(
                        matches!(got, Err(Error::EmptySignature)),
                        "step {step}: update with empty signature gave {got:?}"
                    ),
                    (_, Some(owner), true) => prop_assert!(
                        matches!(&got, Err(Error::DuplicateSignature { existing_id, .. }) if *existing_id == owner),
                        "step {step}: update {id} onto signature of {owner} gave {got:?}"
                    ),
                    // Both wrong: either error is a faithful answer.
                    (_, Some(owner), false) => prop_assert!(
                        matches!(&got, Err(Error::NotFound { id: i }) if *i == id)
                            || matches!(&got, Err(Error::DuplicateSignature { existing_id, .. }) if *existing_id == owner),
                        "step {step}: update of unknown {id} onto a taken signature gave {got:?}"
                    ),
                    (_, None, false) => prop_assert!(
                        matches!(&got, Err(Error::NotFound { id: i }) if *i == id),
                        "step {step}: update of unknown {id} gave {got:?}"
                    ),
                    (_, None, true) => {
                        prop_assert!(got.is_ok(), "step {step}: update {id} failed: {got:?}");
                        model.records.insert(id, r);
                    }
                }
            }
            Op::Remove { target } => {
                let id = model.target(target);
                let got = store.remove(id).await;
                if model.records.remove(&id).is_some() {
                    prop_assert!(got.is_ok(), "step {step}: remove {id} failed: {got:?}");
                } else {
                    prop_assert!(
                        matches!(&got, Err(Error::NotFound { id: i }) if *i == id),
                        "step {step}: remove of absent {id} gave {got:?}"
                    );
                }
            }
            Op::Get { target } => {
                let id = model.target(target);
                let got = store
                    .get(id)
                    .await
                    .map_err(|e| TestCaseError::fail(err_name(&e)))?;
                prop_assert_eq!(
                    got.as_ref(),
                    model.records.get(&id),
                    "step {}: get {}",
                    step,
                    id
                );
            }
            Op::GetBySignature { sig } => {
                // `None` asks for a signature no record ever has.
                let text = sig_text(sig).unwrap_or_else(|| "never-used".to_owned());
                let got = store.get_by_signature(&text).await;
                if text.is_empty() {
                    prop_assert!(
                        matches!(got, Err(Error::EmptySignature)),
                        "step {step}: get_by_signature(\"\") gave {got:?}"
                    );
                } else {
                    let got = got.map_err(|e| TestCaseError::fail(err_name(&e)))?;
                    let want = model.owner_of(&text).map(|id| &model.records[&id]);
                    prop_assert_eq!(
                        got.as_ref(),
                        want,
                        "step {}: get_by_signature {}",
                        step,
                        text
                    );
                }
            }
            Op::ClearHot => {
                store.hot_tier().clear();
                prop_assert_eq!(store.hot_tier().len(), 0);
            }
            Op::Reopen => {
                drop(store);
                store = AutoTieringCoordinator::open(cfg.clone())
                    .await
                    .map_err(|e| TestCaseError::fail(format!("step {step}: reopen: {e}")))?;
            }
        }
        let stats = store
            .get_stats()
            .await
            .map_err(|e| TestCaseError::fail(err_name(&e)))?;
        prop_assert_eq!(
            stats.total_records,
            model.records.len() as u64,
            "step {}: record count",
            step
        );
        prop_assert!(
            stats.hot_records <= 8,
            "step {step}: hot over capacity: {stats:?}"
        );
    }

    // Full scans, straight and filtered, against the model.
    let all = scan(&store, i64::MIN, 5)
        .await
        .map_err(|e| TestCaseError::fail(err_name(&e)))?;
    let want: Vec<TransactionRecord> = model.records.values().cloned().collect();
    prop_assert_eq!(&all, &want, "final scan");
    for since in [100, 300, 400] {
        let got = scan(&store, since, 3)
            .await
            .map_err(|e| TestCaseError::fail(err_name(&e)))?;
        let want: Vec<TransactionRecord> = model
            .records
            .values()
            .filter(|r| r.timestamp_decision_made >= since)
            .cloned()
            .collect();
        prop_assert_eq!(got, want, "final scan since {}", since);
    }
    // Every record reads back by id and signature, from whichever tier holds it.
    for (id, r) in &model.records {
        let got = store
            .get(*id)
            .await
            .map_err(|e| TestCaseError::fail(err_name(&e)))?;
        prop_assert_eq!(got.as_ref(), Some(r));
        if let Some(sig) = &r.transaction_signature {
            let got = store
                .get_by_signature(sig)
                .await
                .map_err(|e| TestCaseError::fail(err_name(&e)))?;
            prop_assert_eq!(got.as_ref(), Some(r));
        }
    }
    Ok(())
}

proptest! {
    // 32 cases keep the default run to a few seconds; set PROPTEST_CASES for a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_random_operations_match_a_btreemap(
        ops in proptest::collection::vec(op_strategy(), 1..60),
        min_access in 1u64..=3,
        auto_promote in proptest::bool::weighted(0.8),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops, min_access, auto_promote))?;
    }
}
