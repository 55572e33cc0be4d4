//! Crash torture (DESIGN invariants 1–3): cycle after cycle, a child process runs mixed puts,
//! updates (some renaming the signature), removes and reads from several tasks while a mover
//! task archives, compacts and runs maintenance; the child is then killed — SIGKILL after a
//! random number of results or a random delay, or an abort at a random crash point of
//! archival or compaction — and the parent reopens the store and checks the acknowledged model
//! (see `tests/common/workload.rs`): every acknowledged write present in exactly its newest
//! version, by id, by signature and in a full scan; nothing removed back; each record once;
//! `verify_cold` clean; no temp or uncatalogued file.
//!
//! Cycles run in epochs: each epoch starts from an empty directory and runs its cycles on it,
//! so later cycles recover stores that earlier crashes left, and mutate (and archive, and
//! compact) records written by earlier cycles.
//!
//! Crash points exist only with the `failpoints` feature, so this file is built only with it
//! (`required-features` in Cargo.toml):
//! - `cargo test --features failpoints --test torture`: 30 cycles (3 epochs of 10).
//! - `TIERED_STORAGE_TORTURE_CYCLES=1000 cargo test --release --features failpoints --test
//!   torture -- --nocapture`: the long run.
//! - A failing epoch prints its seed; `TIERED_STORAGE_TORTURE_SEED=<seed>` replays that epoch
//!   alone (same operations, kill points and crash points; the exact thread interleaving at a
//!   SIGKILL is up to the scheduler).
//! - `TIERED_STORAGE_TORTURE_EPOCH` (cycles per directory, default 10) and
//!   `TIERED_STORAGE_TORTURE_OPS` (operations per writer task per cycle, default 60) size it.

#[path = "common/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use tiered_storage::CRASH_POINTS;
use workload::{env_u64, fresh_seed, CycleOpts, Harness, Kill, Rng, Totals};

const TEST_NAME: &str = "torture_crash_cycles";

fn opts_for(epoch_seed: u64, cycle: u64, ops: u64) -> CycleOpts {
    let mut rng = Rng::new(epoch_seed ^ cycle.wrapping_mul(0xA24B_AED4_963E_E407));
    let writers = 3;
    let total = writers * ops;
    let roll = rng.below(100);
    let (kill, crash_point) = if roll < 40 {
        (Kill::AfterResults(1 + rng.below(total)), None)
    } else if roll < 65 {
        (Kill::AfterMillis(rng.below(1500)), None)
    } else {
        (Kill::Never, Some(*rng.pick(CRASH_POINTS)))
    };
    CycleOpts {
        seed: rng.next_u64(),
        writers,
        ops_per_writer: ops,
        kill,
        crash_point,
        fiu: Vec::new(),
        timeout: Duration::from_secs(120),
    }
}

/// Run one epoch; returns its harness (figures and findings).
fn epoch(rt: &tokio::runtime::Runtime, epoch_seed: u64, cycles: u64, ops: u64) -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::new(tmp.path(), TEST_NAME);
    h.expect_no_errors = true;
    for cycle in 0..cycles {
        let opts = opts_for(epoch_seed, cycle, ops);
        h.context = format!("epoch seed {epoch_seed} cycle {cycle} {opts:?}");
        let before = h.findings.len();
        let how = h.cycle(rt, &opts);
        if std::env::var_os("TIERED_STORAGE_TORTURE_VERBOSE").is_some() {
            eprintln!("epoch {epoch_seed} cycle {cycle}: {how} ({:?})", opts.kill);
        }
        if h.findings.len() > before {
            eprintln!(
                "torture: epoch seed {epoch_seed}, cycle {cycle} ({how}, kill {:?}, crash point {:?}) failed; replay with TIERED_STORAGE_TORTURE_SEED={epoch_seed} TIERED_STORAGE_TORTURE_EPOCH={}",
                opts.kill,
                opts.crash_point,
                cycle + 1
            );
            // The model took what it read as certain, so the epoch could go on; stop it here
            // so the report points at the first bad cycle.
            break;
        }
    }
    h
}

#[test]
fn torture_crash_cycles() {
    if workload::is_child() {
        workload::child_main();
        return;
    }
    let started = Instant::now();
    let rt = workload::runtime();
    let epoch_len = env_u64("TIERED_STORAGE_TORTURE_EPOCH").unwrap_or(10).max(1);
    let ops = env_u64("TIERED_STORAGE_TORTURE_OPS").unwrap_or(60).max(1);
    let replay = env_u64("TIERED_STORAGE_TORTURE_SEED");
    let (seeds, cycles_per): (Vec<u64>, u64) = match replay {
        Some(seed) => (vec![seed], epoch_len),
        None => {
            let cycles = env_u64("TIERED_STORAGE_TORTURE_CYCLES").unwrap_or(30);
            let master = env_u64("TIERED_STORAGE_TORTURE_MASTER_SEED").unwrap_or_else(fresh_seed);
            eprintln!("torture: {cycles} cycles, master seed {master} (TIERED_STORAGE_TORTURE_MASTER_SEED)");
            let mut rng = Rng::new(master);
            let epochs = cycles.div_ceil(epoch_len);
            (
                (0..epochs).map(|_| rng.next_u64() >> 12).collect(),
                epoch_len,
            )
        }
    };
    let cycles_wanted = env_u64("TIERED_STORAGE_TORTURE_CYCLES").unwrap_or(30);
    let mut total = Totals::default();
    let mut failed: Vec<(u64, Harness)> = Vec::new();
    let mut run = 0;
    for (i, &seed) in seeds.iter().enumerate() {
        let n = if replay.is_some() {
            cycles_per
        } else {
            cycles_per.min(cycles_wanted - run)
        };
        run += n;
        let h = epoch(&rt, seed, n, ops);
        eprintln!(
            "torture: epoch {}/{} seed {seed}: {} — {:.0?} so far",
            i + 1,
            seeds.len(),
            h.totals.summary(),
            started.elapsed()
        );
        total.add(&h.totals);
        if !h.findings.is_empty() {
            failed.push((seed, h));
        }
    }
    println!(
        "torture figures: {} — wall time {:.1?}",
        total.summary(),
        started.elapsed()
    );
    if let Some((seed, h)) = failed.first() {
        h.assert_clean(&format!(
            "TIERED_STORAGE_TORTURE_SEED={seed} TIERED_STORAGE_TORTURE_EPOCH={epoch_len} TIERED_STORAGE_TORTURE_OPS={ops} cargo test --test torture -- --nocapture ({} failing epochs: {:?})",
            failed.len(),
            failed.iter().map(|(s, _)| *s).collect::<Vec<_>>()
        ));
    }
    assert!(total.zeros(), "{}", total.summary());
}

/// Set in the child of `crash_before_the_first_archival_commit_leaves_an_orphan`: the data
/// directory.
const ORPHAN_CHILD_ENV: &str = "TIERED_STORAGE_ORPHAN_CHILD_DIR";

/// Found by the torture: a crash between publishing and committing the FIRST archival file
/// (catalog still empty) leaves a Parquet file that open never removes, because an empty
/// catalog with files on disk is treated as a lost catalog. A later `rebuild_cold_catalog`
/// (the remedy the `ColdFile` errors suggest) registers it, and a record removed since the
/// crash comes back. Noted by default; `TIERED_STORAGE_STRICT_EMPTY_CATALOG_ORPHANS=1` makes
/// it fail.
#[test]
fn crash_before_the_first_archival_commit_leaves_an_orphan() {
    if let Some(dir) = std::env::var_os(ORPHAN_CHILD_ENV) {
        workload::runtime().block_on(async {
            let store = workload::Store::open(workload::config(std::path::Path::new(&dir)))
                .await
                .unwrap();
            store.archive_now().await.unwrap();
        });
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rt = workload::runtime();
    let ids: Vec<i64> = rt.block_on(async {
        let store = workload::Store::open(workload::config(dir)).await.unwrap();
        let mut ids = Vec::new();
        for key in 0..40u64 {
            // Keys 0..=6 mod 10: days due for archival.
            let key = key / 7 * 10 + key % 7;
            ids.push(store.put(&workload::record(key, 0, 0)).await.unwrap());
        }
        ids
    });
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_before_the_first_archival_commit_leaves_an_orphan",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ORPHAN_CHILD_ENV, dir)
        .env(tiered_storage::CRASH_AT_ENV, "archive:published")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("crash point archive:published reached"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (orphans, resurrected) = rt.block_on(async {
        let store = workload::Store::open(workload::config(dir)).await.unwrap();
        let catalogued = store.cold_tier().files().unwrap().len();
        // (Delete files are catalogued separately: only data files count.)
        let orphans: Vec<_> = workload::walk(&dir.join("cold"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .filter(|p| !p.to_string_lossy().contains("/_deletes/"))
            .collect();
        assert_eq!(catalogued, 0);
        // Acknowledged remove, then the catalog rebuild the error messages recommend.
        store.remove(ids[0]).await.unwrap();
        store.rebuild_cold_catalog().await.unwrap();
        store.hot_tier().clear();
        let back = store.get(ids[0]).await.unwrap();
        (orphans, back.is_some())
    });
    let strict = workload::strict(workload::STRICT_EMPTY_CATALOG_ORPHANS_ENV);
    if orphans.is_empty() && !resurrected {
        return;
    }
    let msg = format!(
        "a crash at archive:published with an empty catalog left {} uncatalogued file(s) after open: {orphans:?}; after remove({}) and rebuild_cold_catalog the removed record is {}",
        orphans.len(),
        ids[0],
        if resurrected { "BACK (resurrected)" } else { "still gone" }
    );
    assert!(!strict, "{msg}");
    eprintln!(
        "KNOWN ISSUE {msg} ({}=0 tolerates it)",
        workload::STRICT_EMPTY_CATALOG_ORPHANS_ENV
    );
}
