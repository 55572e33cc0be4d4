//! Protects correctness under concurrency: unique ids, read-your-writes and newest-version reads
//! while many tasks write at once, and no stale or resurrected versions while a writer races
//! readers through the hot cache's fill path.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tiered_storage::{AutoTieringCoordinator, Outcome, StorageConfig, TransactionRecord};

type Store = AutoTieringCoordinator<TransactionRecord>;

async fn open(dir: &Path, hot_capacity: u64, min_access: u64) -> Arc<Store> {
    open_with(dir, hot_capacity, min_access, true).await
}

async fn open_with(dir: &Path, hot_capacity: u64, min_access: u64, promote: bool) -> Arc<Store> {
    let mut cfg = StorageConfig::default()
        .with_data_dir(dir)
        .with_hot_capacity(hot_capacity);
    cfg.tiering.min_hot_access_count = min_access;
    cfg.tiering.auto_promote_on_access = promote;
    Arc::new(AutoTieringCoordinator::open(cfg).await.expect("open store"))
}

fn record(sig: String, ts: i64) -> TransactionRecord {
    TransactionRecord {
        transaction_signature: Some(sig),
        timestamp_decision_made: ts,
        ..TransactionRecord::default()
    }
}

/// The version a test stamped into a record.
fn version(r: &TransactionRecord) -> u64 {
    r.timestamp_outcome_evaluated.expect("versioned record") as u64
}

const TASKS: usize = 32;
const ITERATIONS: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_many_tasks_read_their_writes_and_ids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    // Small hot tier: most reads of older records go to warm, and promotions churn the cache.
    let store = open(dir.path(), 64, 2).await;

    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            // What this task acknowledged: id → newest version (None once removed).
            let mut mine: BTreeMap<i64, Option<TransactionRecord>> = BTreeMap::new();
            let mut order = Vec::new();
            for i in 0..ITERATIONS {
                let mut r = record(format!("t{task}-r{i}"), (task * 1000 + i) as i64);
                r.timestamp_outcome_evaluated = Some(0);
                let id = store.put(&r).await.expect("put");
                r.id = Some(id);
                assert_eq!(
                    store.get(id).await.unwrap().as_ref(),
                    Some(&r),
                    "read own put"
                );
                mine.insert(id, Some(r));
                order.push(id);

                if i % 3 == 2 {
                    // Update an older record of this task, often changing its signature.
                    let target = order[(i * 7) % order.len()];
                    if let Some(Some(mut r)) = mine.get(&target).cloned() {
                        let v = version(&r) + 1;
                        r.timestamp_outcome_evaluated = Some(v as i64);
                        r.actual_outcome = Outcome::Profit(v as f64);
                        let old_sig = r.transaction_signature.clone().unwrap();
                        if i % 2 == 0 {
                            r.transaction_signature = Some(format!("t{task}-r{i}-renamed"));
                        }
                        store.update(&r).await.expect("update");
                        assert_eq!(store.get(target).await.unwrap().as_ref(), Some(&r));
                        let sig = r.transaction_signature.clone().unwrap();
                        assert_eq!(
                            store.get_by_signature(&sig).await.unwrap().as_ref(),
                            Some(&r),
                            "signature read after update"
                        );
                        if sig != old_sig {
                            assert_eq!(store.get_by_signature(&old_sig).await.unwrap(), None);
                        }
                        mine.insert(target, Some(r));
                    }
                }
                if i % 10 == 9 {
                    let target = order[(i * 13) % order.len()];
                    if let Some(Some(r)) = mine.get(&target).cloned() {
                        store.remove(target).await.expect("remove");
                        assert_eq!(store.get(target).await.unwrap(), None);
                        let sig = r.transaction_signature.unwrap();
                        assert_eq!(store.get_by_signature(&sig).await.unwrap(), None);
                        mine.insert(target, None);
                    }
                }
                if i % 5 == 0 {
                    // Re-read a random older record of this task by signature.
                    let target = order[(i * 31) % order.len()];
                    if let Some(Some(r)) = mine.get(&target) {
                        let sig = r.transaction_signature.as_deref().unwrap();
                        assert_eq!(store.get_by_signature(sig).await.unwrap().as_ref(), Some(r));
                    }
                }
            }
            mine
        }));
    }

    let mut all: BTreeMap<i64, Option<TransactionRecord>> = BTreeMap::new();
    let mut puts = 0;
    for h in handles {
        let mine = h.await.expect("task panicked");
        puts += mine.len();
        for (id, r) in mine {
            assert!(all.insert(id, r).is_none(), "id {id} returned to two tasks");
        }
    }
    assert_eq!(puts, TASKS * ITERATIONS);
    let unique: HashSet<i64> = all.keys().copied().collect();
    assert_eq!(unique.len(), TASKS * ITERATIONS, "every put got its own id");

    let live: Vec<&TransactionRecord> = all.values().flatten().collect();
    let stats = store.get_stats().await.unwrap();
    assert_eq!(stats.total_records, live.len() as u64, "{stats:?}");

    // Every acknowledged record reads back in its newest version, through hot and then warm.
    for pass in 0..2 {
        for (id, r) in &all {
            assert_eq!(
                store.get(*id).await.unwrap().as_ref(),
                r.as_ref(),
                "pass {pass} id {id}"
            );
        }
        for r in &live {
            let sig = r.transaction_signature.as_deref().unwrap();
            assert_eq!(
                store.get_by_signature(sig).await.unwrap().as_ref(),
                Some(*r),
                "pass {pass} signature {sig}"
            );
        }
        store.hot_tier().clear();
    }

    let mut cursor = store.list_since(i64::MIN);
    let mut scanned = Vec::new();
    while let Some(r) = cursor.next().await.unwrap() {
        scanned.push(r);
    }
    let want: Vec<TransactionRecord> = live.into_iter().cloned().collect();
    assert_eq!(
        scanned, want,
        "full scan equals every live acknowledged record, in id order"
    );
}

/// What readers observed that they must not have.
#[derive(Debug, Default)]
struct Violations {
    /// Broke the documented contract: a version older than one already acknowledged, a version
    /// never written, a removed record read after its remove returned, or a wrong final state.
    contract: Vec<String>,
    /// A reader saw a version older than one it had already seen (or a removed record come
    /// back): reads are not monotonic, though each was within its update's window.
    stale: Vec<String>,
}

/// How hard the race pushes reads off hot.
#[derive(Debug, Clone, Copy)]
enum Pressure {
    /// Hot holds 4 records, a churn task keeps evicting, and every warm read promotes: reads
    /// keep missing hot, reading warm and filling hot while writes commit.
    EvictAndPromote,
    /// Hot is large and nothing is promoted or evicted: a and b stay cached throughout, so a
    /// read only reaches warm if hot fails to answer for a record it holds.
    AlwaysCached,
}

/// One writer updates records a and b in sequence (so "last" is well defined), then removes b,
/// while readers hammer both, alternating by id and by signature.
async fn race_readers_against_one_writer(pressure: Pressure) -> Violations {
    const UPDATES: u64 = 300;
    const READERS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let store = match pressure {
        Pressure::EvictAndPromote => open_with(dir.path(), 4, 1, true).await,
        Pressure::AlwaysCached => open_with(dir.path(), 10_000, 1, false).await,
    };
    let churning = matches!(pressure, Pressure::EvictAndPromote);

    let mut a = record("hammered-a".into(), 1);
    a.timestamp_outcome_evaluated = Some(0);
    let id_a = store.put(&a).await.unwrap();
    a.id = Some(id_a);
    let mut b = record("hammered-b".into(), 1);
    b.timestamp_outcome_evaluated = Some(0);
    let id_b = store.put(&b).await.unwrap();
    b.id = Some(id_b);

    // `acked`: newest version whose update returned. `attempted`: newest version sent.
    let acked = Arc::new(AtomicU64::new(0));
    let attempted = Arc::new(AtomicU64::new(0));
    let b_removed = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let (store, acked, attempted, b_removed) = (
            Arc::clone(&store),
            Arc::clone(&acked),
            Arc::clone(&attempted),
            Arc::clone(&b_removed),
        );
        let (mut a, mut b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            for v in 1..=UPDATES {
                a.timestamp_outcome_evaluated = Some(v as i64);
                a.final_sol_received = Some(v as f64);
                b.timestamp_outcome_evaluated = Some(v as i64);
                attempted.store(v, Ordering::SeqCst);
                store.update(&a).await.expect("update a");
                store.update(&b).await.expect("update b");
                acked.store(v, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
            store.remove(id_b).await.expect("remove b");
            b_removed.store(true, Ordering::SeqCst);
            a
        })
    };

    let churn = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut n = 0u64;
            while churning && !done.load(Ordering::SeqCst) {
                let id = store
                    .put(&record(format!("churn-{n}"), 2))
                    .await
                    .expect("churn put");
                ids.push(id);
                for id in ids.iter().rev().take(8) {
                    let _ = store.get(*id).await.expect("churn get");
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };

    let mut readers = Vec::new();
    for reader in 0..READERS {
        let (store, acked, attempted, b_removed, done) = (
            Arc::clone(&store),
            Arc::clone(&acked),
            Arc::clone(&attempted),
            Arc::clone(&b_removed),
            Arc::clone(&done),
        );
        readers.push(tokio::spawn(async move {
            let mut found = Violations::default();
            let mut seen_a = 0u64;
            let mut seen_b = 0u64;
            let mut b_gone = false;
            let mut reads = 0u64;
            while !done.load(Ordering::SeqCst) {
                let how = if reads.is_multiple_of(2) { "get" } else { "get_by_signature" };
                let floor = acked.load(Ordering::SeqCst);
                let removed_before = b_removed.load(Ordering::SeqCst);
                let got = if reads.is_multiple_of(2) {
                    store.get(id_a).await.unwrap()
                } else {
                    store.get_by_signature("hammered-a").await.unwrap()
                };
                let ceiling = attempted.load(Ordering::SeqCst);
                match got.as_ref().map(version) {
                    None => found.contract.push(format!("reader {reader}: a vanished ({how})")),
                    Some(v) => {
                        if v < floor {
                            found.contract.push(format!(
                                "reader {reader}: {how} saw a v{v} after v{floor} was acknowledged"
                            ));
                        }
                        if v > ceiling {
                            found
                                .contract
                                .push(format!("reader {reader}: {how} saw a v{v}, never written"));
                        }
                        if v < seen_a {
                            found.stale.push(format!(
                                "reader {reader}: {how} saw a v{v} after already seeing v{seen_a}"
                            ));
                        }
                        seen_a = seen_a.max(v);
                    }
                }

                let got_b = if reads.is_multiple_of(2) {
                    store.get(id_b).await.unwrap()
                } else {
                    store.get_by_signature("hammered-b").await.unwrap()
                };
                match got_b.as_ref().map(version) {
                    Some(v) => {
                        if removed_before {
                            found.contract.push(format!(
                                "reader {reader}: {how} saw b v{v} after its remove returned"
                            ));
                        }
                        if b_gone {
                            found.stale.push(format!(
                                "reader {reader}: {how} saw b v{v} come back after it read as removed"
                            ));
                        }
                        if v < seen_b {
                            found.stale.push(format!(
                                "reader {reader}: {how} saw b v{v} after already seeing v{seen_b}"
                            ));
                        }
                        seen_b = seen_b.max(v);
                    }
                    None => b_gone = true,
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            assert!(reads > 0, "reader {reader} never ran");
            found
        }));
    }

    let last_a = writer.await.expect("writer panicked");
    done.store(true, Ordering::SeqCst);
    let mut all = Violations::default();
    for r in readers {
        let found = r.await.expect("reader panicked");
        all.contract.extend(found.contract);
        all.stale.extend(found.stale);
    }
    assert!(churn.await.expect("churn panicked") > 0 || !churning);

    // After everything completed: exactly the last acknowledged write, and b stays removed.
    let mut final_state = Vec::new();
    for pass in 0..3 {
        final_state.push((
            pass,
            store.get(id_a).await.unwrap(),
            store.get_by_signature("hammered-a").await.unwrap(),
            store.get(id_b).await.unwrap(),
            store.get_by_signature("hammered-b").await.unwrap(),
        ));
        store.hot_tier().clear();
    }
    for (pass, a, a_sig, b, b_sig) in final_state {
        if a.as_ref() != Some(&last_a) || a_sig.as_ref() != Some(&last_a) {
            all.contract.push(format!(
                "final read pass {pass}: a is {:?}/{:?}, want v{UPDATES}",
                a.as_ref().map(version),
                a_sig.as_ref().map(version)
            ));
        }
        if b.is_some() || b_sig.is_some() {
            all.contract
                .push(format!("final read pass {pass}: removed b is readable"));
        }
    }
    all
}

/// The documented guarantee: no read that starts after an update (or remove) returned sees an
/// older version (or the removed record), and the final state is the last acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_reads_never_predate_an_acknowledged_write() {
    let found = race_readers_against_one_writer(Pressure::EvictAndPromote).await;
    assert!(
        found.contract.is_empty(),
        "{} violations, first: {:#?}",
        found.contract.len(),
        &found.contract[..found.contract.len().min(5)]
    );
}

/// Per-reader monotonic reads: once a reader has seen version v (or seen a record removed), it
/// never sees an older version (or the record again). Repeated a few times because the race it
/// guards against needs a read-fill to land inside another write's commit→cache window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_reads_are_monotonic_per_reader() {
    assert_monotonic_reads(Pressure::EvictAndPromote).await;
}

/// Monotonic reads with no eviction and no promotion: a and b are cached from their put to the
/// end, so every read is answered by hot unless hot misses a record it holds. A by-signature
/// miss falls through to warm, which may already have a commit that hot has not been refreshed
/// with yet; the next by-id read then returns the older cached version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_reads_are_monotonic_while_the_record_stays_cached() {
    assert_monotonic_reads(Pressure::AlwaysCached).await;
}

/// Four rounds of [`race_readers_against_one_writer`]; any stale read or contract violation
/// fails with the first few.
async fn assert_monotonic_reads(pressure: Pressure) {
    for round in 0..4 {
        let found = race_readers_against_one_writer(pressure).await;
        assert!(
            found.stale.is_empty() && found.contract.is_empty(),
            "round {round}: {} stale reads, {} contract violations; first: {:#?}",
            found.stale.len(),
            found.contract.len(),
            found
                .stale
                .iter()
                .chain(&found.contract)
                .take(5)
                .collect::<Vec<_>>()
        );
    }
}

/// Many writers updating the same record at once: each update is acknowledged, and once all
/// have returned every read path agrees on one of them, the one that committed last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_racing_updates_of_one_id_settle_on_one_committed_version() {
    const WRITERS: u64 = 16;
    const ROUNDS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16, 1).await;
    let mut base = record("contended".into(), 1);
    base.timestamp_outcome_evaluated = Some(0);
    let id = store.put(&base).await.unwrap();
    base.id = Some(id);

    for round in 0..ROUNDS {
        let mut handles = Vec::new();
        for w in 0..WRITERS {
            let store = Arc::clone(&store);
            let mut r = base.clone();
            let v = round * WRITERS + w + 1;
            r.timestamp_outcome_evaluated = Some(v as i64);
            handles.push(tokio::spawn(async move {
                store.update(&r).await.expect("update");
                // Interleave reads so fills race the updates.
                let _ = store.get(id).await.unwrap();
                v
            }));
        }
        let mut written = HashSet::new();
        for h in handles {
            written.insert(h.await.unwrap());
        }
        let hot_view = store.get(id).await.unwrap().unwrap();
        let by_sig = store.get_by_signature("contended").await.unwrap().unwrap();
        store.hot_tier().clear();
        let warm_view = store.get(id).await.unwrap().unwrap();
        assert!(written.contains(&version(&warm_view)), "round {round}");
        assert_eq!(
            hot_view,
            warm_view,
            "round {round}: hot kept v{} but warm committed v{} last",
            version(&hot_view),
            version(&warm_view)
        );
        assert_eq!(by_sig, warm_view, "round {round}");
    }
}

/// A task reading in a loop gives its worker back. Hot and warm hits never wait, so before
/// reads spent tokio's cooperative budget, a reading task held its worker until it stopped:
/// on a one-thread runtime a 10 ms timer fired only when the loop ended, and a write's reply
/// waited as long. The loop is bounded (5 s), so the failing case ends too.
#[test]
fn concurrency_a_read_loop_does_not_starve_timers_or_writes() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // No promotion: one record is read from warm every time, the other is a hot hit.
        let store = open_with(dir.path(), 1000, 1, false).await;
        let mut warm = record("loop-warm".into(), 2);
        warm.id = Some(store.put(&warm).await.unwrap());
        store.hot_tier().clear();
        let hot = store.put(&record("loop-hot".into(), 1)).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let started = std::time::Instant::now();
        let reader = {
            let (store, stop, reads) = (store.clone(), stop.clone(), reads.clone());
            let warm_id = warm.id.unwrap();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed)
                    && started.elapsed() < std::time::Duration::from_secs(5)
                {
                    assert!(store.get(hot).await.unwrap().is_some());
                    assert!(store.get(warm_id).await.unwrap().is_some());
                    reads.fetch_add(2, Ordering::Relaxed);
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let slept = started.elapsed();
        let before_put = std::time::Instant::now();
        store.put(&record("loop-put".into(), 3)).await.unwrap();
        let put = before_put.elapsed();
        let running = !reader.is_finished();
        stop.store(true, Ordering::Relaxed);
        reader.await.unwrap();
        assert!(reads.load(Ordering::Relaxed) > 0, "the reader ran");
        assert!(
            slept < std::time::Duration::from_secs(1),
            "a 10 ms timer waited {slept:?} behind the read loop"
        );
        assert!(
            put < std::time::Duration::from_secs(1),
            "a put waited {put:?} behind the read loop"
        );
        assert!(
            running,
            "the reader was still looping while the timer and the put ran"
        );
    });
}
