//! Protects the three-tier store's observable behaviour as a whole: random sequences of puts,
//! updates, removes, reads, archival passes, compactions, hot clears, reopens and filtered scans
//! must match a `BTreeMap` model, errors included, with records spread over several day
//! partitions and several small Parquet files per partition. Also pins down a scan cursor that
//! stays open while records move between tiers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use tiered_storage::{
    AutoTieringCoordinator, Error, FileState, Outcome, OutcomeKind, ScanRange, StorageConfig,
    TransactionRecord,
};

type Store = AutoTieringCoordinator<TransactionRecord>;

mod common;
use common::{runtime, DAY, T0};
/// Day choices for timestamps: days 0..DAYS after T0.
const DAYS: u8 = 5;

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir).with_hot_capacity(16);
    c.cold.archive_batch_rows = 4;
    c.cold.target_file_mib = 1;
    c.cold.max_open_partitions = 2;
    // Every file here is far below half of 1 MiB: compaction merges all files of a partition.
    c.cold.compact_small_fraction = 0.5;
    c.cold.compact_dead_fraction = 0.2;
    c.tiering.min_hot_access_count = 2;
    c.warm.read_connections = 2;
    c
}

async fn scan_all(
    store: &Store,
    range: ScanRange,
    page: usize,
) -> Result<Vec<TransactionRecord>, Error> {
    let mut cursor = store.scan(range, page)?;
    let mut out = Vec::new();
    while let Some(p) = cursor.next_page().await? {
        out.extend(p);
    }
    Ok(out)
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A scan cursor left open while records move between tiers.

/// A cursor is read a page at a time, possibly long after it was opened. Records that exist,
/// unchanged, for the whole life of the cursor must each be returned exactly once, whichever
/// tier they move to meanwhile, and a record removed before the cursor reached its id must not
/// come back from a file that no longer exists.
///
/// Here a file is compacted away entirely (every row removed) while the cursor has it open,
/// then archival writes a new file over the same id range. The catalog's `file_id` is an
/// `INTEGER PRIMARY KEY` without `AUTOINCREMENT`, so the new file gets the freed id, and the
/// cursor, which keys its open file scans by `file_id`, keeps reading the deleted file in its
/// place.
#[test]
fn cold_model_open_cursor_sees_records_that_never_changed_exactly_once() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Store = AutoTieringCoordinator::open(config(dir.path()))
            .await
            .unwrap();
        // Odd records are old (archived now), even records are recent (stay in warm).
        let mut odd = Vec::new();
        let mut even = BTreeMap::new();
        for n in 1..=300u64 {
            let old = n % 2 == 1;
            let r = TransactionRecord {
                transaction_signature: Some(format!("cursor-{n:0>80}")),
                timestamp_decision_made: if old { T0 } else { T0 + 4 * DAY } + n as i64,
                ..TransactionRecord::default()
            };
            let id = store.put(&r).await.unwrap();
            if old {
                odd.push(id);
            } else {
                let mut r = r;
                r.id = Some(id);
                even.insert(id, r);
            }
        }
        store.archive_older_than(T0 + DAY).await.unwrap();
        let files = store.cold_tier().files().unwrap();
        assert_eq!(files.len(), 1);
        let old_file = files[0].clone();

        let mut cursor = store.scan(ScanRange::default(), 10).unwrap();
        let mut seen: Vec<TransactionRecord> = cursor.next_page().await.unwrap().unwrap();
        let first_page_end = seen.last().unwrap().id.unwrap();

        // While the cursor is open: every old record is removed, compaction drops their file,
        // and archival moves the recent records (which never change) into a new file.
        for id in &odd {
            store.remove(*id).await.unwrap();
        }
        let compacted = store.compact_now().await.unwrap();
        assert_eq!((compacted.files_in, compacted.files_out), (1, 0));
        assert!(store.cold_tier().files().unwrap().is_empty());
        store.archive_older_than(i64::MAX).await.unwrap();
        assert_eq!(store.get_stats().await.unwrap().cold_records, 150);
        let new_files = store.cold_tier().files().unwrap();

        while let Some(page) = cursor.next_page().await.unwrap() {
            seen.extend(page);
        }
        let seen_ids: Vec<i64> = seen.iter().map(|r| r.id.unwrap()).collect();
        let mut sorted = seen_ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, seen_ids, "ids strictly increase, no duplicates");
        // Removed before the cursor reached them: they must not come back.
        let resurrected: Vec<i64> = odd
            .iter()
            .copied()
            .filter(|id| *id > first_page_end + 64 && seen_ids.contains(id))
            .collect();
        // Present, unchanged, for the cursor's whole life: each must be returned.
        let missing: Vec<i64> = even
            .keys()
            .copied()
            .filter(|id| !seen_ids.contains(id))
            .collect();
        assert!(
            resurrected.is_empty() && missing.is_empty(),
            "open cursor across compaction + archival: {} removed records returned from a \
             deleted file (e.g. {:?}), {} never-changed records missing (e.g. {:?}); \
             file the cursor opened: id {} {}, files now: {:?}",
            resurrected.len(),
            &resurrected[..resurrected.len().min(5)],
            missing.len(),
            &missing[..missing.len().min(5)],
            old_file.file_id,
            old_file.path,
            new_files
                .iter()
                .map(|e| (e.file_id, e.path.as_str()))
                .collect::<Vec<_>>(),
        );
        for r in seen.iter().filter(|r| even.contains_key(&r.id.unwrap())) {
            assert_eq!(Some(r), even.get(&r.id.unwrap()));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The property test.

/// A signature choice: `None` = no signature, `Some(0)` = the empty string (always refused),
/// `Some(k)` = one of a small pool, so duplicates are common.
type Sig = Option<u8>;

const SIG_POOL: u8 = 12;

fn sig_text(sig: Sig) -> Option<String> {
    match sig {
        None => None,
        Some(0) => Some(String::new()),
        // Full-length (88 characters) like real signatures.
        Some(k) => Some(format!("{k:0>80}poolsig1")),
    }
}

fn outcome(pick: u8, step: usize) -> Outcome {
    match pick % 5 {
        0 => Outcome::Profit(step as f64 + 0.25),
        1 => Outcome::Loss(step as f64 / 8.0),
        2 => Outcome::Neutral,
        3 => Outcome::PendingConfirmation,
        _ => Outcome::ExecutionError(format!("error at step {step}")),
    }
}

const OUTCOME_KINDS: [OutcomeKind; 5] = [
    OutcomeKind::Profit,
    OutcomeKind::Loss,
    OutcomeKind::Neutral,
    OutcomeKind::PendingConfirmation,
    OutcomeKind::ExecutionError,
];

/// Timestamp of a record written at `step` on `day` (0..DAYS after T0). Two extra choices test
/// the edges: `DAYS` is before the Unix epoch, `DAYS + 1` is at the end of time (never old
/// enough to archive).
fn ts(day: u8, step: usize) -> i64 {
    match day {
        d if d < DAYS => T0 + i64::from(d) * DAY + step as i64 * 1000,
        d if d == DAYS => -1 - step as i64 * 1000,
        _ => i64::MAX - step as i64,
    }
}

fn day_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![
        20 => 0..DAYS,
        1 => Just(DAYS),
        1 => Just(DAYS + 1),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        sig: Sig,
        day: u8,
        outcome: u8,
    },
    /// `n` records with unique signatures (or none), so files span several data pages.
    PutMany {
        n: usize,
        day: u8,
    },
    Update {
        target: usize,
        /// `None` keeps the record's signature.
        sig: Option<Sig>,
        /// `None` keeps the record's timestamp (and so its partition).
        day: Option<u8>,
        outcome: u8,
    },
    Remove {
        target: usize,
    },
    Get {
        target: usize,
    },
    GetBySignature {
        sig: Sig,
    },
    /// `archive_older_than(T0 + k * DAY)` for `k` in `1..=DAYS`, `i64::MAX` for `DAYS + 1`,
    /// and `archive_now()` (every choice of time but the end of time is long past) for
    /// `DAYS + 2`.
    Archive {
        cutoff: u8,
    },
    Compact,
    ClearHot,
    Reopen,
    Scan {
        ids: Option<(usize, usize)>,
        days: Option<(u8, u8)>,
        outcome: Option<u8>,
        page: usize,
    },
}

fn sig_strategy() -> impl Strategy<Value = Sig> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(0)),
        12 => (1..=SIG_POOL).prop_map(Some),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (sig_strategy(), day_strategy(), any::<u8>())
            .prop_map(|(sig, day, outcome)| Op::Put { sig, day, outcome }),
        1 => (20..150usize, day_strategy()).prop_map(|(n, day)| Op::PutMany { n, day }),
        6 => (
            any::<usize>(),
            proptest::option::weighted(0.4, sig_strategy()),
            proptest::option::weighted(0.4, day_strategy()),
            any::<u8>(),
        )
            .prop_map(|(target, sig, day, outcome)| Op::Update { target, sig, day, outcome }),
        3 => any::<usize>().prop_map(|target| Op::Remove { target }),
        3 => any::<usize>().prop_map(|target| Op::Get { target }),
        2 => sig_strategy().prop_map(|sig| Op::GetBySignature { sig }),
        6 => (1..=DAYS + 2).prop_map(|cutoff| Op::Archive { cutoff }),
        3 => Just(Op::Compact),
        1 => Just(Op::ClearHot),
        1 => Just(Op::Reopen),
        3 => (
            proptest::option::weighted(0.5, (any::<usize>(), any::<usize>())),
            proptest::option::weighted(0.5, (0..DAYS, 0..DAYS)),
            proptest::option::weighted(0.4, any::<u8>()),
            prop_oneof![Just(1usize), Just(2), Just(5), Just(64)],
        )
            .prop_map(|(ids, days, outcome, page)| Op::Scan { ids, days, outcome, page }),
    ]
}

#[derive(Default)]
struct Model {
    records: BTreeMap<i64, TransactionRecord>,
    /// Live ids that warm holds (the others are archived).
    in_warm: BTreeSet<i64>,
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

    fn scan(&self, range: &ScanRange) -> Vec<TransactionRecord> {
        self.records
            .values()
            .filter(|r| {
                let id = r.id.unwrap();
                (range.min_id..=range.max_id).contains(&id)
                    && (range.min_ts..=range.max_ts).contains(&r.timestamp_decision_made)
                    && range.equals.iter().all(|(k, v)| match k.as_str() {
                        "outcome_kind" => r.actual_outcome.kind() == v,
                        other => panic!("no model for filter {other}"),
                    })
            })
            .cloned()
            .collect()
    }
}

/// Counters over all cases, so the test cannot pass without exercising the cold tier.
#[derive(Default)]
struct Coverage {
    /// Cases in which cold held records at some point.
    cases_with_cold: AtomicU64,
    /// Records moved to cold, over all cases.
    archived: AtomicU64,
    /// Compactions that replaced files.
    compactions: AtomicU64,
    /// Reads served by cold.
    cold_hits: AtomicU64,
    /// Reopens with records in cold.
    cold_reopens: AtomicU64,
    /// Updates or removes of archived records.
    archived_writes: AtomicU64,
}

fn fail(step: usize, what: &str, e: impl std::fmt::Debug) -> TestCaseError {
    TestCaseError::fail(format!("step {step}: {what}: {e:?}"))
}

/// Reads of `id` by id and (if it has one) by signature match the model.
async fn check_id(store: &Store, model: &Model, id: i64, step: usize) -> Result<(), TestCaseError> {
    let got = store.get(id).await.map_err(|e| fail(step, "get", e))?;
    prop_assert_eq!(
        got.as_ref(),
        model.records.get(&id),
        "step {}: get {}",
        step,
        id
    );
    if let Some(sig) = model
        .records
        .get(&id)
        .and_then(|r| r.transaction_signature.clone())
    {
        check_sig(store, model, &sig, step).await?;
    }
    Ok(())
}

async fn check_sig(
    store: &Store,
    model: &Model,
    sig: &str,
    step: usize,
) -> Result<(), TestCaseError> {
    let got = store.get_by_signature(sig).await;
    if sig.is_empty() {
        prop_assert!(
            matches!(got, Err(Error::EmptySignature)),
            "step {step}: get_by_signature(\"\") gave {got:?}"
        );
        return Ok(());
    }
    let got = got.map_err(|e| fail(step, "get_by_signature", e))?;
    let want = model.owner_of(sig).map(|id| &model.records[&id]);
    prop_assert_eq!(
        got.as_ref(),
        want,
        "step {}: get_by_signature {}",
        step,
        sig
    );
    Ok(())
}

/// Counts agree with the model, tier by tier.
async fn check_counts(store: &Store, model: &Model, step: usize) -> Result<(), TestCaseError> {
    let stats = store
        .get_stats()
        .await
        .map_err(|e| fail(step, "stats", e))?;
    prop_assert_eq!(
        stats.total_records,
        model.records.len() as u64,
        "step {}: total records {:?}",
        step,
        stats
    );
    prop_assert_eq!(
        stats.warm_records,
        model.in_warm.len() as u64,
        "step {}: warm records {:?}",
        step,
        stats
    );
    prop_assert!(
        stats.hot_records <= 16,
        "step {step}: hot over capacity: {stats:?}"
    );
    Ok(())
}

/// Everything: every id, every pool signature, full scans, counts, the directory against the
/// catalog, and a clean verification.
async fn check_all(
    store: &Store,
    model: &Model,
    dir: &Path,
    step: usize,
) -> Result<(), TestCaseError> {
    for &id in &model.assigned {
        check_id(store, model, id, step).await?;
    }
    for k in 1..=SIG_POOL {
        check_sig(store, model, &sig_text(Some(k)).unwrap(), step).await?;
    }
    let want: Vec<_> = model.records.values().cloned().collect();
    for page in [1, 3, 100] {
        let all = scan_all(store, ScanRange::default(), page)
            .await
            .map_err(|e| fail(step, "scan", e))?;
        prop_assert_eq!(&all, &want, "step {}: full scan, page {}", step, page);
    }
    check_counts(store, model, step).await?;
    let files = store
        .cold_tier()
        .files()
        .map_err(|e| fail(step, "files", e))?;
    let mut catalogued: BTreeSet<_> = files
        .iter()
        .map(|e| dir.join("cold").join(&e.path))
        .collect();
    // The delete files (one per partition) are catalogued too.
    catalogued.extend(
        store
            .cold_tier()
            .delete_files()
            .map_err(|e| fail(step, "delete files", e))?
            .iter()
            .map(|d| dir.join("cold").join(&d.path)),
    );
    let on_disk: BTreeSet<_> = walk(&dir.join("cold"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    // In an object store (the test switch), replaced files stay until the intent sweep.
    if common::cold_on_local_disk() {
        prop_assert_eq!(
            &on_disk,
            &catalogued,
            "step {}: Parquet files vs catalog",
            step
        );
    } else {
        prop_assert!(
            !dir.join("cold").exists(),
            "step {step}: the cold tier is in the object store, not on disk"
        );
    }
    prop_assert!(
        walk(&dir.join("cold"))
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".tmp")),
        "step {step}: temp file left"
    );
    prop_assert!(
        files.iter().all(|e| e.state == FileState::Live),
        "step {step}: {files:?}"
    );
    let verify = store
        .verify_cold()
        .await
        .map_err(|e| fail(step, "verify", e))?;
    prop_assert!(verify.problems.is_empty(), "step {step}: {verify:?}");
    prop_assert!(
        store.cold_tier().problems().is_empty(),
        "step {step}: {:?}",
        store.cold_tier().problems()
    );
    Ok(())
}

async fn run(ops: Vec<Op>, coverage: &Coverage) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| fail(0, "tempdir", e))?;
    let cfg = config(dir.path());
    let mut store: Store = AutoTieringCoordinator::open(cfg.clone())
        .await
        .map_err(|e| fail(0, "open", e))?;
    let mut model = Model::default();
    let mut had_cold = false;

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put {
                sig,
                day,
                outcome: o,
            } => {
                let text = sig_text(sig);
                let r = TransactionRecord {
                    transaction_signature: text.clone(),
                    timestamp_decision_made: ts(day, step),
                    final_sol_received: Some(step as f64),
                    actual_outcome: outcome(o, step),
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
                            "step {step}: put of taken {s} (owner {owner}, in warm: {}) gave {got:?}",
                            model.in_warm.contains(&owner)
                        );
                    }
                    _ => {
                        let id = got.map_err(|e| fail(step, "put", e))?;
                        prop_assert!(
                            model.assigned.iter().all(|a| *a < id),
                            "step {step}: id {id} not above every earlier id"
                        );
                        let mut stored = r;
                        stored.id = Some(id);
                        model.records.insert(id, stored);
                        model.in_warm.insert(id);
                        model.assigned.push(id);
                        check_id(&store, &model, id, step).await?;
                    }
                }
            }
            Op::PutMany { n, day } => {
                for i in 0..n {
                    let r = TransactionRecord {
                        transaction_signature: (i % 7 != 0)
                            .then(|| format!("bulk-{step:04}-{i:04}-{:0>70}", "")),
                        timestamp_decision_made: ts(day, step).saturating_add(i as i64 - 500),
                        buy_price_sol: Some(i as f64),
                        actual_outcome: outcome(i as u8, step),
                        ..TransactionRecord::default()
                    };
                    let id = store.put(&r).await.map_err(|e| fail(step, "put", e))?;
                    let mut stored = r;
                    stored.id = Some(id);
                    model.records.insert(id, stored);
                    model.in_warm.insert(id);
                    model.assigned.push(id);
                }
            }
            Op::Update {
                target,
                sig,
                day,
                outcome: o,
            } => {
                let id = model.target(target);
                let old = model.records.get(&id).cloned();
                let mut r = old.clone().unwrap_or_default();
                r.id = Some(id);
                if let Some(sig) = sig {
                    r.transaction_signature = sig_text(sig);
                }
                if let Some(day) = day {
                    r.timestamp_decision_made = ts(day, step);
                }
                r.actual_outcome = outcome(o, step);
                r.final_sol_received = Some(-(step as f64));
                let text = r.transaction_signature.clone();
                let got = store.update(&r).await;
                let exists = old.is_some();
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
                        "step {step}: update {id} (in warm: {}) onto signature of {owner} (in warm: {}) gave {got:?}",
                        model.in_warm.contains(&id),
                        model.in_warm.contains(&owner)
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
                        prop_assert!(
                            got.is_ok(),
                            "step {step}: update {id} (in warm: {}) failed: {got:?}",
                            model.in_warm.contains(&id)
                        );
                        if !model.in_warm.contains(&id) {
                            coverage.archived_writes.fetch_add(1, Ordering::Relaxed);
                        }
                        model.records.insert(id, r);
                        // An updated archived record comes back to warm.
                        model.in_warm.insert(id);
                    }
                }
                check_id(&store, &model, id, step).await?;
                if let Some(old_sig) = old.and_then(|o| o.transaction_signature) {
                    check_sig(&store, &model, &old_sig, step).await?;
                }
            }
            Op::Remove { target } => {
                let id = model.target(target);
                let got = store.remove(id).await;
                match model.records.remove(&id) {
                    Some(old) => {
                        prop_assert!(
                            got.is_ok(),
                            "step {step}: remove {id} (in warm: {}) failed: {got:?}",
                            model.in_warm.contains(&id)
                        );
                        if !model.in_warm.remove(&id) {
                            coverage.archived_writes.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(sig) = old.transaction_signature {
                            check_sig(&store, &model, &sig, step).await?;
                        }
                    }
                    None => prop_assert!(
                        matches!(&got, Err(Error::NotFound { id: i }) if *i == id),
                        "step {step}: remove of absent {id} gave {got:?}"
                    ),
                }
                check_id(&store, &model, id, step).await?;
                // A second remove finds nothing, in any tier.
                let again = store.remove(id).await;
                prop_assert!(
                    matches!(&again, Err(Error::NotFound { id: i }) if *i == id),
                    "step {step}: second remove of {id} gave {again:?}"
                );
            }
            Op::Get { target } => {
                check_id(&store, &model, model.target(target), step).await?;
            }
            Op::GetBySignature { sig } => {
                // `None` asks for a signature no record ever has.
                let text = sig_text(sig).unwrap_or_else(|| "never-used".to_owned());
                check_sig(&store, &model, &text, step).await?;
            }
            Op::Archive { cutoff } => {
                let (cutoff_ms, report) = if cutoff == DAYS + 2 {
                    // No record's time is near this cutoff: days after T0 are long past, the
                    // last choice is the end of time.
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                    let age = cfg.tiering.warm_to_cold_age as i64 * 1000;
                    (now - age, store.archive_now().await)
                } else {
                    let c = if cutoff == DAYS + 1 {
                        i64::MAX
                    } else {
                        T0 + i64::from(cutoff) * DAY
                    };
                    (c, store.archive_older_than(c).await)
                };
                let report = report.map_err(|e| fail(step, "archive", e))?;
                let moving: Vec<i64> = model
                    .in_warm
                    .iter()
                    .copied()
                    .filter(|id| model.records[id].timestamp_decision_made < cutoff_ms)
                    .collect();
                prop_assert_eq!(
                    report.archived,
                    moving.len() as u64,
                    "step {}: archive report {:?}",
                    step,
                    report
                );
                prop_assert_eq!(report.superseded, 0, "step {}: {:?}", step, report);
                prop_assert_eq!(
                    report.files == 0,
                    moving.is_empty(),
                    "step {}: {:?}",
                    step,
                    report
                );
                for id in &moving {
                    model.in_warm.remove(id);
                }
                coverage
                    .archived
                    .fetch_add(report.archived, Ordering::Relaxed);
                check_all(&store, &model, dir.path(), step).await?;
            }
            Op::Compact => {
                let before = store
                    .cold_tier()
                    .cold_stats()
                    .map_err(|e| fail(step, "stats", e))?;
                let report = store
                    .compact_now()
                    .await
                    .map_err(|e| fail(step, "compact", e))?;
                let after = store
                    .cold_tier()
                    .cold_stats()
                    .map_err(|e| fail(step, "stats", e))?;
                prop_assert_eq!(
                    report.rows_dropped,
                    before.dead_rows,
                    "step {}: every tombstoned row dropped: {:?}",
                    step,
                    report
                );
                prop_assert_eq!(after.dead_rows, 0, "step {}: {:?}", step, after);
                prop_assert_eq!(
                    after.rows,
                    before.rows - before.dead_rows,
                    "step {}: {:?} -> {:?}",
                    step,
                    before,
                    after
                );
                // Every file is small: each partition is merged into at most one file.
                let files = store
                    .cold_tier()
                    .files()
                    .map_err(|e| fail(step, "files", e))?;
                let partitions: BTreeSet<&str> = files
                    .iter()
                    .map(|e| e.path.rsplit_once('/').unwrap().0)
                    .collect();
                prop_assert_eq!(partitions.len(), files.len(), "step {}: {:?}", step, files);
                if report.files_in > 0 {
                    coverage.compactions.fetch_add(1, Ordering::Relaxed);
                }
                let again = store
                    .compact_now()
                    .await
                    .map_err(|e| fail(step, "compact", e))?;
                prop_assert_eq!(again.files_in, 0, "step {}: {:?}", step, again);
                check_all(&store, &model, dir.path(), step).await?;
            }
            Op::ClearHot => {
                store.hot_tier().clear();
                prop_assert_eq!(store.hot_tier().len(), 0);
            }
            Op::Reopen => {
                if model.in_warm.len() < model.records.len() {
                    coverage.cold_reopens.fetch_add(1, Ordering::Relaxed);
                }
                drop(store);
                store = AutoTieringCoordinator::open(cfg.clone())
                    .await
                    .map_err(|e| fail(step, "reopen", e))?;
                check_all(&store, &model, dir.path(), step).await?;
            }
            Op::Scan {
                ids,
                days,
                outcome: o,
                page,
            } => {
                let mut range = ScanRange::default();
                if let Some((a, b)) = ids {
                    let (a, b) = (model.target(a), model.target(b));
                    range = range.with_ids(a.min(b)..=a.max(b));
                }
                if let Some((a, b)) = days {
                    let (a, b) = (a.min(b), a.max(b));
                    let day = |d: u8| T0 + i64::from(d) * DAY;
                    range = range.with_time(day(a)..=day(b + 1) - 1);
                }
                if let Some(o) = o {
                    range = range.with_outcome(OUTCOME_KINDS[usize::from(o) % 5]);
                }
                let got = scan_all(&store, range.clone(), page)
                    .await
                    .map_err(|e| fail(step, "scan", e))?;
                prop_assert_eq!(got, model.scan(&range), "step {}: scan {:?}", step, range);
            }
        }
        check_counts(&store, &model, step).await?;
        if model.in_warm.len() < model.records.len() {
            had_cold = true;
        }
    }

    store.hot_tier().clear();
    check_all(&store, &model, dir.path(), usize::MAX).await?;
    let stats = store
        .get_stats()
        .await
        .map_err(|e| fail(usize::MAX, "stats", e))?;
    coverage
        .cold_hits
        .fetch_add(stats.cold_hits, Ordering::Relaxed);
    if had_cold {
        coverage.cases_with_cold.fetch_add(1, Ordering::Relaxed);
    }
    drop(store);
    // And once more after a final reopen.
    let store: Store = AutoTieringCoordinator::open(cfg)
        .await
        .map_err(|e| fail(usize::MAX, "reopen", e))?;
    check_all(&store, &model, dir.path(), usize::MAX).await?;
    Ok(())
}

#[test]
fn cold_model_random_operations_across_tiers_match_a_btreemap() {
    // 40 cases keep the default run well under a minute in debug; set PROPTEST_CASES for a
    // deeper search.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let coverage = Coverage::default();
    let strategy = proptest::collection::vec(op_strategy(), 1..=40);
    let result = runner.run(&strategy, |ops| runtime().block_on(run(ops, &coverage)));
    if let Err(e) = result {
        panic!("{e}");
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let summary = format!(
        "cases with cold records {}, archived {}, compactions {}, cold hits {}, reopens with \
         cold records {}, writes to archived records {}",
        get(&coverage.cases_with_cold),
        get(&coverage.archived),
        get(&coverage.compactions),
        get(&coverage.cold_hits),
        get(&coverage.cold_reopens),
        get(&coverage.archived_writes),
    );
    eprintln!("{summary}");
    // The cold tier was really exercised (not a vacuous pass).
    assert!(
        get(&coverage.cases_with_cold) >= u64::from(cases) / 4,
        "{summary}"
    );
    assert!(get(&coverage.compactions) > 0, "{summary}");
    assert!(get(&coverage.cold_hits) > 0, "{summary}");
    assert!(get(&coverage.archived_writes) > 0, "{summary}");
}
