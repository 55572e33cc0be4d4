//! Maintenance benchmark: foreground latency while an archival backlog drains.
//!
//! One store, one run, three phases, each under the same paced foreground load (gets of random
//! recent ids, 10% of them by signature, plus puts of new records):
//!
//! - **unthrottled**: `archive_now()` drains a backlog of old records at full speed;
//! - **idle** (baseline): the backlog is refilled to the same size, then nothing archives for as
//!   long as the unthrottled phase took (at least `BENCH_IDLE_SECS`);
//! - **maintenance**: `run_maintenance_step()` in a loop drains that backlog at
//!   `maintenance.archive_records_per_sec`, at most `archive_max_records_per_step` per step.
//!
//! The idle phase runs second (so its length is known) on the same warm contents the archival
//! phases start from; the tables list it first. After each archival phase warm must hold only the
//! recent records, cold every old one, and sampled old records must read back intact.
//!
//! Run: `cargo bench --bench maintenance`. Env: `BENCH_BACKLOG` (old records per archival phase,
//! default 1500000), `BENCH_RECENT` (recent records read by the foreground, default 200000),
//! `BENCH_GET_RATE` (foreground gets/s, default 20000), `BENCH_PUT_RATE` (foreground puts/s,
//! default 1000), `BENCH_IDLE_SECS` (shortest idle phase, default 10), `BENCH_ARCHIVE_RATE`
//! (`maintenance.archive_records_per_sec`, default the config default).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tiered_storage::{
    AutoTieringCoordinator, MaintenanceStepReport, Record, StorageConfig, StorageStats,
};

mod common;
use common::{env_u64, hist, record_at, us, WRITERS};

const DAY_MS: i64 = 86_400_000;
/// The foreground load wakes this often and issues what is due.
const TICK: Duration = Duration::from_millis(1);
/// Old records re-read after each archival phase.
const CHECK_SAMPLES: usize = 1000;
/// Of which also read by signature.
const CHECK_SIG_SAMPLES: usize = 200;
/// Signatures of recent records kept for the by-signature reads.
const SIG_POOL: usize = 50_000;
/// Foreground puts number their records from here, far above the fills' numbers (numbers, hence
/// signatures, must be distinct).
const FOREGROUND_FIRST_N: u64 = 1 << 40;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// splitmix64: a small, fast, deterministic generator for picking ids.
fn next_rand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

type Store = Arc<AutoTieringCoordinator>;

/// Put records `start..start + count` (record `n` stamped `ts(n)`) with `WRITERS` concurrent
/// writers; returns `(id, n)` of every record put.
async fn fill(
    store: &Store,
    start: u64,
    count: u64,
    ts: impl Fn(u64) -> i64 + Copy + Send + 'static,
) -> anyhow::Result<Vec<(i64, u64)>> {
    let mut tasks = Vec::new();
    for w in 0..WRITERS as u64 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in (start + w..start + count).step_by(WRITERS) {
                let id = store.put(&record_at(n, ts(n))).await?;
                ids.push((id, n));
            }
            anyhow::Ok(ids)
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

/// The foreground load's inputs, shared by every phase.
struct Load {
    store: Store,
    /// Ids of the recent records (what the reader reads).
    recent: Arc<Vec<i64>>,
    /// Signatures of a sample of them.
    sigs: Arc<Vec<String>>,
    get_rate: u64,
    put_rate: u64,
    /// Next record number (numbers, hence signatures, are unique across the run).
    next_n: Arc<AtomicU64>,
    /// Foreground puts acknowledged so far, over every phase.
    puts_done: Arc<AtomicU64>,
}

/// What the foreground saw during one phase.
struct Foreground {
    get: Histogram<u64>,
    get_sig: Histogram<u64>,
    /// How late the reader woke after the first get it owed (tokio worker starvation shows here).
    lag: Histogram<u64>,
    put: Histogram<u64>,
    gets: u64,
    sig_gets: u64,
    puts: u64,
}

/// One phase's results.
struct Phase {
    name: &'static str,
    secs: f64,
    archived: u64,
    steps: Option<usize>,
    fg: Foreground,
    /// Read routing over the phase (stats deltas): hot, warm, cold hits.
    hits: (u64, u64, u64),
}

struct ReaderOut {
    get: Histogram<u64>,
    get_sig: Histogram<u64>,
    lag: Histogram<u64>,
    gets: u64,
    sig_gets: u64,
}

/// Gets of uniformly random recent ids (every tenth by signature), `rate` per second on a
/// schedule: wake every `TICK`, issue what is due. Latency is per call.
async fn reader(
    store: Store,
    ids: Arc<Vec<i64>>,
    sigs: Arc<Vec<String>>,
    rate: u64,
    stop: Arc<AtomicBool>,
    mut rng: u64,
) -> anyhow::Result<ReaderOut> {
    let mut out = ReaderOut {
        get: hist(),
        get_sig: hist(),
        lag: hist(),
        gets: 0,
        sig_gets: 0,
    };
    // At most this many gets per wake-up, so `stop` is seen even if the reader falls behind.
    let max_batch = (rate / 100).max(1);
    let start = tokio::time::Instant::now();
    let mut issued = 0u64;
    let mut next = start;
    while !stop.load(Ordering::Acquire) {
        let now = tokio::time::Instant::now();
        let due = (now.duration_since(start).as_secs_f64() * rate as f64) as u64;
        if due > issued {
            let owed_since = start + Duration::from_secs_f64(issued as f64 / rate as f64);
            out.lag
                .record(now.saturating_duration_since(owed_since).as_nanos().max(1) as u64)?;
        }
        let until = due.min(issued + max_batch);
        while issued < until {
            let r = next_rand(&mut rng);
            if r.is_multiple_of(10) {
                let sig = &sigs[(r / 10 % sigs.len() as u64) as usize];
                let t = Instant::now();
                let got = store.get_by_signature(sig).await?;
                out.get_sig.record(t.elapsed().as_nanos().max(1) as u64)?;
                anyhow::ensure!(got.is_some(), "foreground: signature {sig} not found");
                out.sig_gets += 1;
            } else {
                let id = ids[(r / 10 % ids.len() as u64) as usize];
                let t = Instant::now();
                let got = store.get(id).await?;
                out.get.record(t.elapsed().as_nanos().max(1) as u64)?;
                anyhow::ensure!(
                    got.is_some_and(|g| g.id == Some(id)),
                    "foreground: id {id} not found"
                );
                out.gets += 1;
            }
            issued += 1;
        }
        next += TICK;
        let now = tokio::time::Instant::now();
        if next <= now {
            // Behind schedule: catch up without sleeping, but let other tasks run.
            next = now;
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep_until(next).await;
        }
    }
    Ok(out)
}

/// Puts of new recent records, `rate` per second on a schedule. Each put is its own task, so a
/// slow put does not delay the ones scheduled after it (open loop). Returns the latency
/// histogram and the number of puts.
async fn writer(
    store: Store,
    rate: u64,
    stop: Arc<AtomicBool>,
    next_n: Arc<AtomicU64>,
    puts_done: Arc<AtomicU64>,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let h = Arc::new(Mutex::new(hist()));
    let mut tasks = Vec::new();
    let start = tokio::time::Instant::now();
    let mut issued = 0u64;
    let mut next = start;
    while !stop.load(Ordering::Acquire) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while issued < due {
            let n = next_n.fetch_add(1, Ordering::Relaxed);
            let record = record_at(n, now_ms());
            let (store, h, done) = (Arc::clone(&store), Arc::clone(&h), Arc::clone(&puts_done));
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                store.put(&record).await?;
                let ns = t.elapsed().as_nanos().max(1) as u64;
                h.lock().expect("histogram lock").record(ns)?;
                done.fetch_add(1, Ordering::Relaxed);
                anyhow::Ok(())
            }));
            issued += 1;
        }
        next = (next + TICK).max(tokio::time::Instant::now());
        tokio::time::sleep_until(next).await;
    }
    for t in tasks {
        t.await??;
    }
    let h = Arc::try_unwrap(h)
        .map_err(|_| anyhow::anyhow!("put histogram still shared"))?
        .into_inner()
        .expect("histogram lock");
    Ok((h, issued))
}

/// Run `work` under the foreground load; the load starts with it and stops when it ends, so the
/// histograms cover exactly this phase. Returns the work's result, the load's and the wall time.
async fn under_load<T: Send + 'static>(
    load: &Load,
    seed: u64,
    work: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<(T, Foreground, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let r = tokio::spawn(reader(
        Arc::clone(&load.store),
        Arc::clone(&load.recent),
        Arc::clone(&load.sigs),
        load.get_rate,
        Arc::clone(&stop),
        seed,
    ));
    let w = tokio::spawn(writer(
        Arc::clone(&load.store),
        load.put_rate,
        Arc::clone(&stop),
        Arc::clone(&load.next_n),
        Arc::clone(&load.puts_done),
    ));
    let t = Instant::now();
    // The work runs as a task on the same two workers, as a maintenance loop would.
    let result = tokio::spawn(work).await;
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let read = r.await??;
    let (put, puts) = w.await??;
    let value = result??;
    Ok((
        value,
        Foreground {
            get: read.get,
            get_sig: read.get_sig,
            lag: read.lag,
            put,
            gets: read.gets,
            sig_gets: read.sig_gets,
            puts,
        },
        secs,
    ))
}

fn hits_delta(before: &StorageStats, after: &StorageStats) -> (u64, u64, u64) {
    (
        after.hot_hits - before.hot_hits,
        after.warm_hits - before.warm_hits,
        after.cold_hits - before.cold_hits,
    )
}

/// After an archival phase: warm holds exactly the recent records, cold every old one, and
/// sampled old records (`old`: `(id, n)`, stamped `old_ts(n)`) read back intact by id and by
/// signature.
async fn check_archived(
    store: &Store,
    recent_total: u64,
    cold_total: u64,
    old: &[(i64, u64)],
    old_ts: impl Fn(u64) -> i64,
    seed: u64,
) -> anyhow::Result<()> {
    let stats = store.get_stats().await?;
    anyhow::ensure!(
        stats.warm_records == recent_total,
        "warm holds {} records, expected only the {recent_total} recent ones",
        stats.warm_records
    );
    anyhow::ensure!(
        stats.cold_records == cold_total,
        "cold holds {} records, expected {cold_total}",
        stats.cold_records
    );
    let mut rng = seed;
    for i in 0..CHECK_SAMPLES {
        let (id, n) = old[(next_rand(&mut rng) % old.len() as u64) as usize];
        let mut want = record_at(n, old_ts(n));
        want.id = Some(id);
        let got = store.get(id).await?;
        anyhow::ensure!(
            got.as_ref() == Some(&want),
            "old record {id} reads back as {got:?}"
        );
        if i < CHECK_SIG_SAMPLES {
            let sig = want.signature().expect("generated records are signed");
            let got = store.get_by_signature(sig).await?;
            anyhow::ensure!(
                got.as_ref().and_then(|r| r.id) == Some(id),
                "old record {id}: its signature reads back as {got:?}"
            );
        }
    }
    Ok(())
}

fn ratio(x: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}x", x / base)
    } else {
        "-".into()
    }
}

fn max_us(h: &Histogram<u64>) -> f64 {
    h.max() as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let backlog = env_u64("BENCH_BACKLOG", 1_500_000)?.max(1);
    let recent_n = env_u64("BENCH_RECENT", 200_000)?.max(1);
    let get_rate = env_u64("BENCH_GET_RATE", 20_000)?.max(1);
    let put_rate = env_u64("BENCH_PUT_RATE", 1_000)?.max(1);
    let idle_min = env_u64("BENCH_IDLE_SECS", 10)?;
    let dir = tempfile::Builder::new()
        .prefix("tiered-storage-maintenance-bench-")
        .tempdir()?;
    let mut config = StorageConfig::default().with_data_dir(dir.path());
    config.maintenance.archive_records_per_sec = env_u64(
        "BENCH_ARCHIVE_RATE",
        config.maintenance.archive_records_per_sec,
    )?;
    let m = config.maintenance.clone();
    println!(
        "command: BENCH_BACKLOG={backlog} BENCH_RECENT={recent_n} BENCH_GET_RATE={get_rate} \
         BENCH_PUT_RATE={put_rate} BENCH_IDLE_SECS={idle_min} BENCH_ARCHIVE_RATE={} \
         cargo bench --bench maintenance",
        m.archive_records_per_sec
    );
    println!(
        "config: backlog {backlog} old records per archival phase (stamped 30 days ago), {recent_n} recent \
         records; foreground {get_rate} gets/s (10% by signature) + {put_rate} puts/s on 2 tokio \
         workers; hot capacity {}; warm_to_cold_age {} s; maintenance.archive_records_per_sec {}, \
         archive_max_records_per_step {}, compact {}; data dir {}",
        config.hot.capacity,
        config.tiering.warm_to_cold_age,
        m.archive_records_per_sec,
        m.archive_max_records_per_step,
        m.compact,
        dir.path().display()
    );
    let run_started = Instant::now();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let store: Store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config))?);

    // Old records: 30 days ago (well past warm_to_cold_age), 1 ms apart. Recent ones: now.
    let old_base = now_ms() - 30 * DAY_MS;
    let old_ts = move |n: u64| old_base + n as i64;
    let recent_ts = now_ms();

    // Recent first, then the backlog: each archival phase starts right after old records were
    // put, with hot holding them, as the refilled one does.
    let t = Instant::now();
    let recent = rt.block_on(fill(&store, 0, recent_n, move |_| recent_ts))?;
    let old1 = rt.block_on(fill(&store, recent_n, backlog, old_ts))?;
    let upkeep = rt.block_on(store.run_warm_upkeep())?;
    println!(
        "fill: {} recent + {} old records in {:.1} s; warm upkeep: {upkeep:?}",
        recent.len(),
        old1.len(),
        t.elapsed().as_secs_f64()
    );

    let mut rng = 0x5EED_u64;
    let sigs: Vec<String> = (0..SIG_POOL.min(recent.len()))
        .map(|_| {
            let (_, n) = recent[(next_rand(&mut rng) % recent.len() as u64) as usize];
            record_at(n, 0).transaction_signature.expect("signed")
        })
        .collect();
    let load = Load {
        store: Arc::clone(&store),
        recent: Arc::new(recent.iter().map(|&(id, _)| id).collect()),
        sigs: Arc::new(sigs),
        get_rate,
        put_rate,
        next_n: Arc::new(AtomicU64::new(FOREGROUND_FIRST_N)),
        puts_done: Arc::new(AtomicU64::new(0)),
    };

    // --- Unthrottled: archive_now drains the whole backlog.
    let s0 = rt.block_on(store.get_stats())?;
    let st = Arc::clone(&store);
    let (report, fg, secs) =
        rt.block_on(under_load(
            &load,
            1,
            async move { Ok(st.archive_now().await?) },
        ))?;
    let s1 = rt.block_on(store.get_stats())?;
    println!("unthrottled archive_now: {report:?}");
    anyhow::ensure!(
        report.archived == backlog && !report.cut_short,
        "archive_now archived {} of {backlog} (cut short: {})",
        report.archived,
        report.cut_short
    );
    rt.block_on(check_archived(
        &store,
        recent_n + load.puts_done.load(Ordering::Relaxed),
        backlog,
        &old1,
        old_ts,
        2,
    ))?;
    let unthrottled_secs = secs;
    let unthrottled = Phase {
        name: "unthrottled (archive_now)",
        secs,
        archived: report.archived,
        steps: None,
        fg,
        hits: hits_delta(&s0, &s1),
    };
    drop(old1);

    // --- Refill the backlog (new records, numbers continue), upkeep, then idle.
    let t = Instant::now();
    let old2 = rt.block_on(fill(&store, recent_n + backlog, backlog, old_ts))?;
    let upkeep = rt.block_on(store.run_warm_upkeep())?;
    println!(
        "refill: {} old records in {:.1} s; warm upkeep: {upkeep:?}",
        old2.len(),
        t.elapsed().as_secs_f64()
    );
    let idle_secs = unthrottled_secs.max(idle_min as f64);
    let s0 = rt.block_on(store.get_stats())?;
    let ((), fg, secs) = rt.block_on(under_load(&load, 3, async move {
        tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
        Ok(())
    }))?;
    let s1 = rt.block_on(store.get_stats())?;
    let idle = Phase {
        name: "idle (no archival)",
        secs,
        archived: 0,
        steps: None,
        fg,
        hits: hits_delta(&s0, &s1),
    };

    // --- Maintenance: bounded, rate-limited steps until the backlog is gone.
    let s0 = rt.block_on(store.get_stats())?;
    let st = Arc::clone(&store);
    let fg_puts = Arc::clone(&load.puts_done);
    let (reports, fg, secs) = rt.block_on(under_load(&load, 4, async move {
        let mut reports: Vec<MaintenanceStepReport> = Vec::new();
        loop {
            let r = st.run_maintenance_step().await?;
            anyhow::ensure!(
                r.failures.is_empty(),
                "maintenance step failed: {:?}",
                r.failures
            );
            let archive = r
                .archive
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("maintenance step ran no archival: {r:?}"))?;
            let archived = archive.archived;
            let backlog_left = r.backlog;
            reports.push(r);
            if !backlog_left {
                let warm = st.get_stats().await?.warm_records;
                let recent = recent_n + fg_puts.load(Ordering::Relaxed);
                if archived == 0 || warm <= recent {
                    break;
                }
            }
            anyhow::ensure!(
                reports.len() < 10_000,
                "maintenance never drained the backlog"
            );
        }
        Ok(reports)
    }))?;
    let s1 = rt.block_on(store.get_stats())?;
    let archived: u64 = reports
        .iter()
        .map(|r| r.archive.as_ref().map_or(0, |a| a.archived))
        .sum();
    anyhow::ensure!(
        archived == backlog,
        "maintenance archived {archived} of {backlog}"
    );
    rt.block_on(check_archived(
        &store,
        recent_n + load.puts_done.load(Ordering::Relaxed),
        2 * backlog,
        &old2,
        old_ts,
        5,
    ))?;
    println!("maintenance: {} steps, archived {archived}", reports.len());
    println!("| step | archived | files | cut_short (backlog) | archive s | step s | compaction |");
    println!("|---:|---:|---:|---|---:|---:|---|");
    for (i, r) in reports.iter().enumerate() {
        let a = r.archive.as_ref();
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} |",
            i + 1,
            a.map_or(0, |a| a.archived),
            a.map_or(0, |a| a.files),
            a.is_some_and(|a| a.cut_short),
            a.map_or(0.0, |a| a.elapsed.as_secs_f64()),
            r.elapsed.as_secs_f64(),
            r.compaction.as_ref().map_or("-".to_string(), |c| format!(
                "{} files in, {} out, {} groups left",
                c.files_in, c.files_out, c.groups_left
            )),
        );
    }
    let steps = reports.len();
    let maint = Phase {
        name: "maintenance (rate-limited)",
        secs,
        archived,
        steps: Some(steps),
        fg,
        hits: hits_delta(&s0, &s1),
    };
    let phases = [idle, unthrottled, maint];

    let base_get = us(&phases[0].fg.get, 0.95);
    let base_sig = us(&phases[0].fg.get_sig, 0.95);
    let base_put = us(&phases[0].fg.put, 0.95);
    println!();
    println!(
        "| phase | duration s | archived | archival rate/s | steps | get p50 µs | get p95 µs | get p99 µs | get max µs | get p95 vs idle | put p50 µs | put p95 µs | put p99 µs | put max µs | put p95 vs idle |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &phases {
        let f = &p.fg;
        println!(
            "| {} | {:.1} | {} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            p.name,
            p.secs,
            p.archived,
            p.archived as f64 / p.secs,
            p.steps.map_or("-".to_string(), |s| s.to_string()),
            us(&f.get, 0.50),
            us(&f.get, 0.95),
            us(&f.get, 0.99),
            max_us(&f.get),
            ratio(us(&f.get, 0.95), base_get),
            us(&f.put, 0.50),
            us(&f.put, 0.95),
            us(&f.put, 0.99),
            max_us(&f.put),
            ratio(us(&f.put, 0.95), base_put),
        );
    }
    println!();
    println!(
        "| phase | gets by id | gets/s | by signature | sig p50 µs | sig p95 µs | sig p99 µs | sig max µs | sig p95 vs idle | reader lag p99 ms | reader lag max ms | puts | puts/s | hits hot / warm / cold |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &phases {
        let f = &p.fg;
        println!(
            "| {} | {} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {:.2} | {:.2} | {} | {:.0} | {} / {} / {} |",
            p.name,
            f.gets,
            (f.gets + f.sig_gets) as f64 / p.secs,
            f.sig_gets,
            us(&f.get_sig, 0.50),
            us(&f.get_sig, 0.95),
            us(&f.get_sig, 0.99),
            max_us(&f.get_sig),
            ratio(us(&f.get_sig, 0.95), base_sig),
            us(&f.lag, 0.99) / 1000.0,
            max_us(&f.lag) / 1000.0,
            f.puts,
            f.puts as f64 / p.secs,
            p.hits.0,
            p.hits.1,
            p.hits.2,
        );
    }
    println!();
    println!(
        "checks passed: after each archival phase warm held only the recent records, cold every old one, and {CHECK_SAMPLES} sampled old records read back intact ({CHECK_SIG_SAMPLES} also by signature)"
    );
    println!(
        "phases ran in the order unthrottled, idle, maintenance; whole run {:.1} s",
        run_started.elapsed().as_secs_f64()
    );
    rt.block_on(store.shutdown())?;
    drop(store);
    drop(load);
    drop(rt);
    Ok(())
}
