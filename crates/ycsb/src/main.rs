//! YCSB-style comparison of tiered-storage against the stores a bot would otherwise use: a
//! hand-written rusqlite store, the same behind a moka cache, redb and sqlx-sqlite, all in one
//! process, alternating cell by cell on the same records. See the README ("YCSB harness").
//!
//! ```text
//! cargo run --release -p ycsb -- [--records N] [--seconds S] [--workloads a,b,c,d,bsig,f,load,history]
//!     [--systems tiered,rusqlite,moka,redb,sqlx] [--k 1,16,64] [--dir DIR] [--json FILE] [--smoke]
//! ```

mod bench;
mod data;
mod keys;
mod report;
mod systems;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use bench::{run_cell, CellResult, Shared, Target, Workload};
use keys::{ScrambledZipf, Zipf, THETA};
use systems::{Kind, Sys};

/// Bumped when the records or the peers' layout change, so stale loaded directories are not
/// reused.
const FORMAT: &str = "ycsb-v1";

pub struct Args {
    pub records: u64,
    pub seconds: f64,
    pub workloads: Vec<Workload>,
    pub systems: Vec<Kind>,
    pub ks: Vec<usize>,
    pub dir: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub smoke: bool,
}

fn usage() -> &'static str {
    "usage: ycsb [--records N] [--seconds S] [--workloads a,b,c,d,bsig,f,load,history] \
     [--systems tiered,rusqlite,moka,redb,sqlx] [--k 1,16,64] [--dir DIR] [--json FILE] [--smoke]"
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        records: 0,
        seconds: 0.0,
        workloads: Workload::YCSB
            .into_iter()
            .chain([Workload::Load, Workload::History])
            .collect(),
        systems: Kind::ALL.to_vec(),
        ks: vec![1, 16, 64],
        dir: None,
        json: None,
        smoke: false,
    };
    let (mut records, mut seconds) = (None, None);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--records" => records = Some(value()?.replace('_', "").parse()?),
            "--seconds" => seconds = Some(value()?.parse()?),
            "--workloads" => {
                a.workloads = value()?
                    .split(',')
                    .map(Workload::parse)
                    .collect::<Result<_>>()?
            }
            "--systems" => {
                a.systems = value()?
                    .split(',')
                    .map(Kind::parse)
                    .collect::<Result<_>>()?
            }
            "--k" => {
                a.ks = value()?
                    .split(',')
                    .map(|k| k.parse())
                    .collect::<Result<_, _>>()?
            }
            "--dir" => a.dir = Some(value()?.into()),
            "--json" => a.json = Some(value()?.into()),
            "--smoke" => a.smoke = true,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            _ => bail!("unknown argument {flag:?}\n{}", usage()),
        }
    }
    a.records = records.unwrap_or(if a.smoke { 20_000 } else { 1_000_000 });
    a.seconds = seconds.unwrap_or(if a.smoke { 0.2 } else { 2.5 });
    ensure!(a.records >= 100, "--records must be at least 100");
    ensure!(a.seconds > 0.0, "--seconds must be positive");
    ensure!(
        !a.ks.is_empty() && a.ks.iter().all(|&k| k > 0),
        "--k needs positive task counts"
    );
    a.systems.sort();
    a.systems.dedup();
    Ok(a)
}

/// What a loader child reports (and, for peers, leaves in `loaded.json` for reuse).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub format: String,
    pub system: String,
    pub records: u64,
    pub secs: f64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    /// Whether this run reused a directory loaded earlier.
    #[serde(default)]
    pub reused: bool,
    /// The system whose loaded file this one copied (moka+rusqlite: the rusqlite file, the
    /// same schema and records); its RSS figures are that system's loader's.
    #[serde(default)]
    pub copied_from: Option<String>,
}

impl LoadReport {
    pub fn growth(&self) -> u64 {
        self.rss_after_bytes.saturating_sub(self.rss_before_bytes)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("load-child") {
        argv.next();
        let kind = Kind::parse(&argv.next().context("load-child SYSTEM DIR N")?)?;
        let dir = PathBuf::from(argv.next().context("load-child SYSTEM DIR N")?);
        let n: u64 = argv.next().context("load-child SYSTEM DIR N")?.parse()?;
        let report = runtime()?.block_on(load_child(kind, &dir, n))?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let args = parse_args(argv)?;
    let ok = runtime()?.block_on(run(&args))?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Resident set size of this process, from /proc/self/status.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes a directory takes on disk (allocated blocks), recursively.
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| disk_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

/// In a child process: load records `0..n` into a fresh `kind` store in `dir`, and measure
/// the RSS it added. This store: 64 concurrent `put`s (its load path); peers: batched
/// transactions.
async fn load_child(kind: Kind, dir: &Path, n: u64) -> Result<LoadReport> {
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    let rss_after;
    match kind {
        Kind::Ours => {
            let store = Arc::new(systems::open_ours(dir).await?);
            const WRITERS: u64 = 64;
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        for i in (w..n).step_by(WRITERS as usize) {
                            got.push((i, store.put(&data::record(i)).await?));
                        }
                        anyhow::Ok(got)
                    })
                })
                .collect();
            let mut ids = vec![0i64; n as usize];
            for t in tasks {
                for (i, id) in t.await?? {
                    ids[i as usize] = id;
                }
            }
            rss_after = rss_bytes();
            let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            std::fs::write(dir.join("ids.bin"), bytes)?;
            store.shutdown().await?;
        }
        Kind::Sqlite | Kind::MokaSqlite => {
            let s = systems::Lite::open(dir)?;
            s.load(n)?;
            rss_after = rss_bytes();
        }
        Kind::Redb => {
            let s = systems::RedbStore::open(dir)?;
            s.load(n)?;
            rss_after = rss_bytes();
        }
        Kind::Sqlx => {
            let s = systems::SqlxStore::open(dir).await?;
            s.load(n).await?;
            rss_after = rss_bytes();
            Sys::Sqlx(Arc::new(s)).close().await?;
        }
    }
    Ok(LoadReport {
        format: FORMAT.into(),
        system: kind.name().into(),
        records: n,
        secs: t0.elapsed().as_secs_f64(),
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        reused: false,
        copied_from: None,
    })
}

/// Load `kind` into `dir` in a child process, or reuse a peer's directory loaded earlier with
/// the same records. This store is always loaded fresh (a run archives most of it).
fn load(kind: Kind, dir: &Path, n: u64) -> Result<LoadReport> {
    let manifest = dir.join("loaded.json");
    if kind != Kind::Ours {
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if let Ok(mut r) = serde_json::from_str::<LoadReport>(&text) {
                if r.format == FORMAT && r.records == n {
                    r.reused = true;
                    return Ok(r);
                }
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let out = Command::new(std::env::current_exe()?)
        .arg("load-child")
        .arg(kind.name())
        .arg(dir)
        .arg(n.to_string())
        .output()?;
    ensure!(
        out.status.success(),
        "loading {}: {}\n{}",
        kind.name(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: LoadReport = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("loader output {:?}", String::from_utf8_lossy(&out.stdout)))?;
    if kind != Kind::Ours {
        std::fs::write(&manifest, serde_json::to_string(&report)?)?;
    }
    Ok(report)
}

/// Everything a run measured.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    pub records: u64,
    pub seconds_per_cell: f64,
    pub loads: Vec<LoadReport>,
    pub cells: Vec<CellResult>,
    pub history: Option<HistoryReport>,
    pub disk: Option<DiskReport>,
    pub backlog: Option<BacklogReport>,
    pub total_secs: f64,
    pub failures: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub archived: u64,
    pub archive_secs: f64,
    pub files: u64,
}

#[derive(Debug, Serialize)]
pub struct DiskReport {
    /// This store's directory right after archiving, then after each warm upkeep.
    pub ours_bytes: Vec<u64>,
    pub upkeep_runs: usize,
    pub ours_records: u64,
    /// The hand-written SQLite file (checkpointed), with every record.
    pub sqlite_bytes: u64,
    pub sqlite_records: u64,
}

#[derive(Debug, Serialize)]
pub struct BacklogReport {
    pub backlog_records: u64,
    pub archived_during: u64,
    pub secs: f64,
    pub puts: u64,
    pub put_p50_us: f64,
    pub put_p99_us: f64,
    pub put_max_us: f64,
    pub errors: u64,
}

async fn run(args: &Args) -> Result<bool> {
    let started = Instant::now();
    let (root, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("ycsb-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&root)?;
    let n = args.records;
    let mut rep = RunReport {
        records: n,
        seconds_per_cell: args.seconds,
        ..RunReport::default()
    };
    eprintln!(
        "ycsb: {} records, {} s per cell, systems {:?}, K {:?}, data in {}",
        n,
        args.seconds,
        args.systems.iter().map(|k| k.name()).collect::<Vec<_>>(),
        args.ks,
        root.display()
    );

    // Load each system in a child process (its RSS growth is clean there), then open it here.
    let mut targets: Vec<Arc<Target>> = Vec::new();
    for &kind in &args.systems {
        let dir = root.join(kind.dir_name());
        let lite_loaded = targets.iter().find(|t| t.kind == Kind::Sqlite);
        let r = match (kind, lite_loaded) {
            // The same file as the hand-written store's: copy it rather than load it again.
            (Kind::MokaSqlite, Some(lite)) => {
                let Sys::Sqlite(l) = &lite.sys else {
                    unreachable!()
                };
                let t0 = Instant::now();
                l.checkpoint()?;
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                std::fs::create_dir_all(&dir)?;
                let from = root.join(Kind::Sqlite.dir_name()).join("trades.db");
                std::fs::copy(from, dir.join("trades.db"))?;
                let lite_report = rep.loads.iter().find(|l| l.system == Kind::Sqlite.name());
                LoadReport {
                    system: kind.name().into(),
                    secs: t0.elapsed().as_secs_f64(),
                    reused: false,
                    copied_from: Some(Kind::Sqlite.name().into()),
                    ..lite_report.expect("loaded before").clone()
                }
            }
            _ => load(kind, &dir, n)?,
        };
        eprintln!(
            "  loaded {:<14} {:>9} records in {:>6.1} s{}{}  RSS +{:.1} MiB",
            kind.name(),
            r.records,
            r.secs,
            if r.reused { " (reused)" } else { "" },
            r.copied_from
                .as_ref()
                .map(|c| format!(" (copied from {c})"))
                .unwrap_or_default(),
            r.growth() as f64 / (1 << 20) as f64
        );
        rep.loads.push(r);
        let sys = Sys::open(kind, &dir).await?;
        let ids = if kind == Kind::Ours {
            let bytes = std::fs::read(dir.join("ids.bin"))?;
            ensure!(
                bytes.len() as u64 == n * 8,
                "ids.bin holds {} bytes",
                bytes.len()
            );
            let ids: Vec<i64> = bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Some(Arc::new(ids))
        } else {
            None
        };
        let count = sys.count().await?;
        if count < n {
            rep.failures.push(format!(
                "{}: {count} records after loading {n}",
                kind.name()
            ));
        }
        let latest = ids
            .as_ref()
            .map_or(n as i64, |ids| ids.iter().copied().max().unwrap_or(0));
        targets.push(Arc::new(Target {
            kind,
            sys,
            ids,
            latest: AtomicI64::new(latest),
            next_n: AtomicU64::new(n),
        }));
    }

    let shared = Arc::new(Shared {
        n,
        zipf: ScrambledZipf::new(n),
        latest: Zipf::new(n, THETA),
        salt: bench::now_ms() as u64,
        full_check: args.smoke,
    });

    // The YCSB cells: for each workload and K, every system once, the order rotated per cell.
    let mut cell_no = 0usize;
    let mut seed = 1u64;
    for &w in args.workloads.iter().filter(|w| Workload::YCSB.contains(w)) {
        for &k in &args.ks {
            for j in 0..targets.len() {
                let t = &targets[(cell_no + j) % targets.len()];
                seed += 1;
                let r =
                    run_cell(Arc::clone(&shared), Arc::clone(t), w, k, args.seconds, seed).await;
                progress(&r);
                rep.cells.push(r);
            }
            cell_no += 1;
        }
    }
    if args.workloads.contains(&Workload::Load) {
        for j in 0..targets.len() {
            let t = &targets[(cell_no + j) % targets.len()];
            seed += 1;
            let r = run_cell(
                Arc::clone(&shared),
                Arc::clone(t),
                Workload::Load,
                64,
                args.seconds,
                seed,
            )
            .await;
            progress(&r);
            rep.cells.push(r);
        }
        cell_no += 1;
    }

    let ours = targets.iter().find(|t| t.kind == Kind::Ours).cloned();
    let lite = targets.iter().find(|t| t.kind == Kind::Sqlite).cloned();
    if let (Some(ours), true) = (&ours, args.workloads.contains(&Workload::History)) {
        let Sys::Ours(store) = &ours.sys else {
            unreachable!()
        };
        // Archive the oldest 80% of the loaded records.
        let cutoff = data::BASE_TS + (n * 8 / 10) as i64 * 10;
        let t0 = Instant::now();
        let a = store.archive_older_than(cutoff).await?;
        let h = HistoryReport {
            archived: a.archived,
            archive_secs: t0.elapsed().as_secs_f64(),
            files: a.files,
        };
        eprintln!(
            "  archived {} records into {} files in {:.1} s",
            h.archived, h.files, h.archive_secs
        );
        if h.archived < n * 8 / 10 {
            rep.failures
                .push(format!("archived {} of {} records", h.archived, n * 8 / 10));
        }
        rep.history = Some(h);
        let mut history_targets = vec![Arc::clone(ours)];
        history_targets.extend(lite.clone());
        for k in [1, 16] {
            for j in 0..history_targets.len() {
                let t = &history_targets[(cell_no + j) % history_targets.len()];
                seed += 1;
                let r = run_cell(
                    Arc::clone(&shared),
                    Arc::clone(t),
                    Workload::History,
                    k,
                    args.seconds,
                    seed,
                )
                .await;
                progress(&r);
                rep.cells.push(r);
            }
            cell_no += 1;
        }

        // Disk: this store after archiving, through a bounded number of warm upkeeps 1 s apart, against
        // the plain SQLite file of every record at rest.
        if let Some(lite) = &lite {
            let store_dir = root.join(Kind::Ours.dir_name()).join("store");
            let mut ours_bytes = vec![disk_bytes(&store_dir)];
            const UPKEEPS: usize = 10;
            // One upkeep per "interval", then a second for the writer's background steps (it
            // returns free pages a slice at a time between batches and when idle): stricter
            // than the issue's 10 maintenance intervals, which are minutes each.
            for _ in 0..UPKEEPS {
                store.run_warm_upkeep().await?;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                ours_bytes.push(disk_bytes(&store_dir));
            }
            let Sys::Sqlite(l) = &lite.sys else {
                unreachable!()
            };
            l.checkpoint()?;
            let d = DiskReport {
                ours_bytes,
                upkeep_runs: UPKEEPS,
                ours_records: ours.sys.count().await?,
                sqlite_bytes: disk_bytes(&root.join(Kind::Sqlite.dir_name())),
                sqlite_records: lite.sys.count().await?,
            };
            eprintln!(
                "  disk: tiered {:.1} MiB → {:.1} MiB after {} upkeeps; SQLite file {:.1} MiB",
                d.ours_bytes[0] as f64 / 1048576.0,
                d.ours_bytes[UPKEEPS] as f64 / 1048576.0,
                UPKEEPS,
                d.sqlite_bytes as f64 / 1048576.0
            );
            rep.disk = Some(d);
        }

        // Puts while the maintenance loop archives the remaining backlog at the default rate.
        let due = n.saturating_sub(rep.history.as_ref().map_or(0, |h| h.archived));
        rep.backlog = Some(backlog(store, &shared, args.seconds, due).await?);
    }

    for t in &targets {
        t.sys.clone().close().await?;
    }
    drop(targets);
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
    }
    rep.total_secs = started.elapsed().as_secs_f64();

    // The smoke check: every system returned what was written, nothing failed.
    for c in &rep.cells {
        if c.errors > 0 || c.bad_reads > 0 || c.ops == 0 {
            rep.failures.push(format!(
                "{} K={} {}: {} ops, {} errors, {} bad reads{}",
                c.workload,
                c.k,
                c.system,
                c.ops,
                c.errors,
                c.bad_reads,
                c.first_error
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(b) = &rep.backlog {
        if b.errors > 0 {
            rep.failures
                .push(format!("backlog: {} put errors", b.errors));
        }
    }
    print!("{}", report::markdown(&rep, args));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rep)?)?;
    }
    if !rep.failures.is_empty() {
        eprintln!("FAILED:");
        for f in &rep.failures {
            eprintln!("  {f}");
        }
    }
    Ok(rep.failures.is_empty())
}

fn progress(r: &CellResult) {
    eprintln!(
        "  {:<7} K={:<2} {:<14} {:>9.0} ops/s  read p50/p99 {:>8.1}/{:>8.1} µs  write p50/p99 {:>8.1}/{:>8.1} µs{}",
        r.workload,
        r.k,
        r.system,
        r.ops_per_sec,
        r.read_p50_us,
        r.read_p99_us,
        r.write_p50_us,
        r.write_p99_us,
        if r.errors + r.bad_reads > 0 {
            format!("  {} errors, {} bad reads", r.errors, r.bad_reads)
        } else {
            String::new()
        }
    );
}

/// Put p50/p99/max while the maintenance loop (default settings) archives every record due:
/// the loaded records not archived by the history case. 8 writers, each putting every 1 ms.
async fn backlog(
    store: &Arc<systems::Ours>,
    shared: &Arc<Shared>,
    seconds: f64,
    due: u64,
) -> Result<BacklogReport> {
    let before = store.get_stats().await?;
    let loop_store = Arc::clone(store);
    tokio::spawn(async move { loop_store.start_maintenance_loop().await });
    let secs = (seconds * 3.0).clamp(1.0, 10.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let next_n = Arc::new(AtomicU64::new(u64::MAX / 2));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            let shared = Arc::clone(shared);
            let next_n = Arc::clone(&next_n);
            tokio::spawn(async move {
                let mut h = bench::hist();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let rec = data::inserted(
                        next_n.fetch_add(1, Ordering::Relaxed),
                        shared.salt,
                        bench::now_ms(),
                    );
                    let t0 = Instant::now();
                    if store.put(&rec).await.is_err() {
                        errors += 1;
                    }
                    h.saturating_record(t0.elapsed().as_nanos() as u64);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (h, errors)
            })
        })
        .collect();
    let mut h = bench::hist();
    let mut errors = 0;
    for t in tasks {
        let (th, e) = t.await?;
        h.add(&th).expect("same bounds");
        errors += e;
    }
    let after = store.get_stats().await?;
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let r = BacklogReport {
        // The loaded records left in warm (those inserted during the run are stamped "now").
        backlog_records: due,
        archived_during: after.cold_records.saturating_sub(before.cold_records),
        secs,
        puts: h.len(),
        put_p50_us: q(0.5),
        put_p99_us: q(0.99),
        put_max_us: h.max() as f64 / 1000.0,
        errors,
    };
    eprintln!(
        "  backlog: {} archived in {:.0} s while {} puts: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        r.archived_during, secs, r.puts, r.put_p50_us, r.put_p99_us, r.put_max_us
    );
    Ok(r)
}
