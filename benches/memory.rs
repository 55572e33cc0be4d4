//! Memory and threads benchmark: a 64-task mixed load with maintenance running, sampled once a
//! second from `/proc/self`.
//!
//! One store, opened the way a bot opens it: a multi-thread tokio runtime with the default
//! worker count and blocking pool, the default caches, and the maintenance loop running. So that
//! archival and compaction really happen during the run, records age in seconds rather than days
//! (`warm_to_cold_age` 30 s, maintenance every 5 s) and cold files are small (1 MiB target), so
//! they are made in numbers, the case that blew the cold metadata cache. Phases:
//!
//! - **preload**: old records stamped over the last 30 days (archived by the first maintenance
//!   steps into many small day files) and recent ones stamped now;
//! - **load**: `TS_MEM_TASKS` tasks (default 64), each a paced loop of puts, gets of recent ids
//!   (mostly hot or warm) and of old ids (mostly cold), gets by signature of both, updates of
//!   recent and old records (an update of an archived record tombstones its cold copy), and a
//!   few scans; `TS_MEM_SECS` seconds (default 180);
//! - **read-back**: `list_since(0)` over every tier, counting every record once.
//!
//! A sampler thread reads, once a second: `VmRSS`, `VmHWM`, `RssAnon`/`RssFile` and the thread
//! count from `/proc/self/status`; the threads by name from `/proc/self/task/*/comm` (the runtime
//! names its first `worker_threads` threads `tokio-worker`, every later one is a blocking-pool
//! thread, `tokio-blocking`; names do not change behaviour); the open files from `/proc/self/fd`
//! (the warm database, its `-wal` and `-shm`, Parquet files); SQLite's own heap
//! (`sqlite3_status64(MEMORY_USED)`, page caches included); the live Rust heap (a counting
//! global allocator); glibc's free-but-held bytes (`mallinfo2`); the data directory's size; the
//! cold metadata cache's bytes. A calibration at start checks what an fd on `warm.sqlite3` says
//! about open connections (see `calibrate_sqlite_fds`).
//!
//! The report: a timeline, per-phase peaks, threads by name, the configured caches and the
//! target bound `2 × (configured caches + 64 MiB)`, and a verdict per target. The configured
//! caches are the config's own limits on anonymous memory: hot capacity × a measured in-memory
//! record size, the frequency sketch, `warm.cache_mib` × (`read_connections` + 1 writer), the
//! signature delta, the access-statistics map, the write queue and `cold.metadata_cache_mib`.
//! The warm mmap is file-backed and per connection, so it is reported beside them (RssFile
//! against `mmap_mib` × connections), not in the sum. SQLite connections are judged by the fds on
//! `warm.sqlite3`, which the calibration shows to be the most connections open at once so far,
//! and by the fds on its `-wal`, the connections open at the sample.
//!
//! Run: `cargo bench --bench memory` (3 minutes of load, about 4 minutes in all). Smoke:
//! `TS_MEM_SECS=20 cargo bench --bench memory`. Env:
//! - `TS_MEM_SECS` (load seconds, default 180), `TS_MEM_TASKS` (default 64), `TS_MEM_RATE`
//!   (operations/s over all tasks, default 10000; 0: unpaced, every task as fast as it goes);
//! - `TS_MEM_PRELOAD_OLD` (default 200000), `TS_MEM_PRELOAD_RECENT` (default 50000);
//! - `TS_MEM_WORKERS` (tokio workers; default the runtime's default, one per core);
//! - `TS_MEM_CONFIG`: a TOML file, or TOML text, merged over the bench's config (any
//!   `StorageConfig` field, e.g. `"[warm]\nread_connections = 4"` or `"[cold]\ntarget_file_mib
//!   = 128"`), so the same bench runs on code with new fields;
//! - `TS_MEM_MAX_THREADS` (the threads target; default workers + writer + read_connections + 2
//!   blocking + the bench's main and sampler threads);
//! - `TS_MEM_DIR` (data directory, kept; default a temp dir, removed), `TS_MEM_CSV` (write every
//!   sample to this CSV file).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tiered_storage::{
    AutoTieringCoordinator, ColdStats, Outcome, ScanRange, StorageConfig, StorageStats,
    TransactionRecord,
};

mod common;
use common::{env_u64, record_at};

/// The cold tier's directory in the data directory.
const COLD_DIR: &str = "cold";
/// The warm database's file name in the data directory.
const WARM_DB_FILE: &str = "warm.sqlite3";

// ---------------------------------------------------------------------------------------------
// Live Rust heap: a counting global allocator (one relaxed atomic add per allocation).

struct Counting;

static LIVE_HEAP: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE_HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE_HEAP.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_heap() -> u64 {
    LIVE_HEAP.load(Ordering::Relaxed).max(0) as u64
}

// ---------------------------------------------------------------------------------------------
// glibc: bytes malloc holds free (fragmentation, per-thread arenas).

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    #[repr(C)]
    struct MallInfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    extern "C" {
        fn mallinfo2() -> MallInfo2;
    }
    /// `(in use, free but held, mmapped chunks)` bytes over every arena.
    pub fn malloc_bytes() -> Option<(u64, u64, u64)> {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct (glibc >= 2.33).
        let m = unsafe { mallinfo2() };
        Some((m.uordblks as u64, m.fordblks as u64, m.hblkhd as u64))
    }
}
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub fn malloc_bytes() -> Option<(u64, u64, u64)> {
        None
    }
}

/// SQLite's own heap, process-wide (page caches, statements, schema): `(now, high water)`.
fn sqlite_memory() -> (u64, u64) {
    let (mut cur, mut high) = (0i64, 0i64);

    // SAFETY: plain out-pointers to locals; SQLITE_STATUS_MEMORY_USED is a valid op.
    unsafe {
        rusqlite::ffi::sqlite3_status64(
            rusqlite::ffi::SQLITE_STATUS_MEMORY_USED,
            &mut cur,
            &mut high,
            0,
        );
    }
    (cur.max(0) as u64, high.max(0) as u64)
}

// ---------------------------------------------------------------------------------------------
// /proc/self.

const MIB: f64 = 1024.0 * 1024.0;

fn mib(b: u64) -> f64 {
    b as f64 / MIB
}

#[derive(Debug, Clone, Copy, Default)]
struct Status {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
    threads: u64,
}

fn proc_status() -> Status {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let n: u64 = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        match key {
            "VmRSS" => s.rss = n * 1024,
            "VmHWM" => s.hwm = n * 1024,
            "RssAnon" => s.anon = n * 1024,
            "RssFile" => s.file = n * 1024,
            "Threads" => s.threads = n,
            _ => {}
        }
    }
    s
}

/// CPU time of this process (user + system), in clock ticks, and the system's 1-minute load.
fn cpu_ticks_and_load() -> (u64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    let cpu = ticks(11) + ticks(12);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);
    (cpu, load)
}

/// Threads by name (`comm`); the main thread (tid = pid) is `main (bench)`.
fn threads_by_name() -> BTreeMap<String, u64> {
    let pid = std::process::id().to_string();
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let tid = e.file_name().to_string_lossy().into_owned();
        let name = if tid == pid {
            "main (bench)".to_owned()
        } else {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            match comm.trim() {
                // comm holds 15 bytes.
                "tiered-storage-" => "tiered-storage-warm-writer".to_owned(),
                other => other.to_owned(),
            }
        };
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fds {
    total: u64,
    db: u64,
    wal: u64,
    shm: u64,
    parquet: u64,
}

/// Open files of this process naming `db` (and its `-wal`, `-shm`) or a Parquet file.
fn count_fds(db: &Path) -> Fds {
    let db = db.to_string_lossy().into_owned();
    let (wal, shm) = (format!("{db}-wal"), format!("{db}-shm"));
    let mut f = Fds::default();
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return f;
    };
    for e in dir.flatten() {
        f.total += 1;
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        let t = t.strip_suffix(" (deleted)").unwrap_or(&t);
        if t == db {
            f.db += 1;
        } else if t == wal {
            f.wal += 1;
        } else if t == shm {
            f.shm += 1;
        } else if t.ends_with(".parquet") {
            f.parquet += 1;
        }
    }
    f
}

/// Bytes under `dir`: `(warm database + WAL + shm, cold files)`.
fn data_bytes(dir: &Path) -> (u64, u64) {
    fn walk(p: &Path, total: &mut u64) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path(), total),
                Ok(m) => *total += m.len(),
                Err(_) => {}
            }
        }
    }
    let mut warm = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(WARM_DB_FILE) {
                warm += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    let mut cold = 0;
    walk(&dir.join(COLD_DIR), &mut cold);
    (warm, cold)
}

// ---------------------------------------------------------------------------------------------
// Calibration: what the fds on a database file say about its connections.

/// Opens connections to a scratch WAL database the way the warm tier does (one read-write
/// writer, read-only readers) and counts fds after each step. SQLite's unix VFS keeps the fd of
/// a closed connection open while another connection of the process holds a lock on the file
/// (closing it would drop that lock), and in WAL mode every open connection holds a shared lock
/// on the database file: so `db` fds count the connections open now plus closed ones whose fd
/// is parked for reuse, and the `-wal` fds count the open connections that have read.
fn calibrate_sqlite_fds() -> anyhow::Result<Vec<(String, Fds)>> {
    use rusqlite::{Connection, OpenFlags};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("calibrate.sqlite3");
    let mut steps = Vec::new();
    let writer = Connection::open(&path)?;
    writer.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    writer.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")?;
    steps.push(("writer open".to_owned(), count_fds(&path)));
    let open_reader = || -> anyhow::Result<Connection> {
        let c = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?;
        Ok(c)
    };
    let mut readers = (0..4)
        .map(|_| open_reader())
        .collect::<Result<Vec<_>, _>>()?;
    steps.push(("writer + 4 readers".to_owned(), count_fds(&path)));
    readers.truncate(1);
    steps.push((
        "3 readers closed (writer + 1 open)".to_owned(),
        count_fds(&path),
    ));
    readers.push(open_reader()?);
    steps.push((
        "1 reader opened again (writer + 2 open)".to_owned(),
        count_fds(&path),
    ));
    drop(readers);
    drop(writer);
    steps.push(("all closed".to_owned(), count_fds(&path)));
    Ok(steps)
}

// ---------------------------------------------------------------------------------------------
// Samples.

const PHASES: [&str; 4] = ["preload", "load", "read-back", "shutdown"];

/// What the store reports, refreshed every 2 s by a task on the runtime (as a metrics scrape).
#[derive(Debug, Clone, Default)]
struct StoreSnap {
    stats: StorageStats,
    cold: ColdStats,
    hot_bytes: u64,
    maintenance_steps: u64,
}

#[derive(Debug, Clone, Default)]
struct Sample {
    t: f64,
    phase: u8,
    status: Status,
    threads: BTreeMap<String, u64>,
    fds: Fds,
    sqlite_mem: u64,
    rust_heap: u64,
    malloc: Option<(u64, u64, u64)>,
    warm_bytes: u64,
    cold_bytes: u64,
    meta_cache: u64,
    ops: u64,
    /// Process CPU ticks so far (100 per second of CPU), and the system's 1-minute load.
    cpu_ticks: u64,
    loadavg: f64,
    store: StoreSnap,
}

impl Sample {
    fn thread(&self, name: &str) -> u64 {
        self.threads.get(name).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// The load.

const DAY_MS: i64 = 86_400_000;
/// Id samples kept for the load's reads (bounded, so the bench's own memory stays small).
const SAMPLE_CAP: usize = 65_536;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn next_rand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stored record the load knows: id, record number (its signature) and timestamp.
type Known = (i64, u64, i64);

/// Bounded samples of stored records: the latest puts (a ring) and a uniform reservoir of all.
#[derive(Default)]
struct Known2 {
    recent: VecDeque<Known>,
    all: Vec<Known>,
    seen: u64,
}

struct Ids {
    inner: Mutex<Known2>,
}

impl Ids {
    fn add(&self, k: Known, rng: &mut u64) {
        let mut g = self.inner.lock().expect("ids lock");
        if g.recent.len() == SAMPLE_CAP {
            g.recent.pop_front();
        }
        g.recent.push_back(k);
        g.seen += 1;
        if g.all.len() < SAMPLE_CAP {
            g.all.push(k);
        } else {
            let j = (next_rand(rng) % g.seen) as usize;
            if j < SAMPLE_CAP {
                g.all[j] = k;
            }
        }
    }

    fn pick(&self, recent: bool, rng: &mut u64) -> Option<Known> {
        let g = self.inner.lock().expect("ids lock");
        let r = next_rand(rng) as usize;
        if recent {
            (!g.recent.is_empty()).then(|| g.recent[r % g.recent.len()])
        } else {
            (!g.all.is_empty()).then(|| g.all[r % g.all.len()])
        }
    }
}

/// Operation kinds, with their share of the mix in per mille.
const OPS: [(&str, u64); 9] = [
    ("put", 150),
    ("get recent id", 400),
    ("get old id", 120),
    ("get_by_signature recent", 120),
    ("get_by_signature old", 50),
    ("update recent", 105),
    ("update old", 45),
    ("list_since last 5 s (≤ 2 pages)", 5),
    ("scan an old hour (≤ 2 pages)", 5),
];

struct Counters {
    ops: [AtomicU64; OPS.len()],
    /// Latency per operation kind, µs (2 significant digits: small, shared by every task).
    lat: Mutex<Vec<Histogram<u64>>>,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    total: AtomicU64,
}

impl Counters {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut e = self.first_errors.lock().expect("errors lock");
        if e.len() < 8 {
            e.push(what);
        }
    }
}

type Store = Arc<AutoTieringCoordinator>;

struct Load {
    store: Store,
    ids: Arc<Ids>,
    next_n: Arc<AtomicU64>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Operations per second per task; 0: unpaced.
    task_rate: f64,
    old_from_ms: i64,
    old_span_ms: i64,
}

fn updated(k: Known, rng: &mut u64) -> TransactionRecord {
    let mut r = record_at(k.1, k.2);
    r.id = Some(k.0);
    r.actual_outcome = Outcome::Profit((next_rand(rng) % 1000) as f64 / 1000.0);
    r.timestamp_outcome_evaluated = Some(now_ms());
    r
}

async fn drain_pages(mut cursor: tiered_storage::RecordCursor, pages: usize) -> anyhow::Result<()> {
    for _ in 0..pages {
        if cursor.next_page().await?.is_none() {
            break;
        }
    }
    Ok(())
}

/// One op; `Ok(false)`: a read did not find what it must have found.
async fn one_op(l: &Load, op: usize, rng: &mut u64) -> anyhow::Result<bool> {
    let s = &l.store;
    Ok(match op {
        0 => {
            let n = l.next_n.fetch_add(1, Ordering::Relaxed);
            let ts = now_ms();
            let id = s.put(&record_at(n, ts)).await?;
            l.ids.add((id, n, ts), rng);
            true
        }
        1 | 2 => match l.ids.pick(op == 1, rng) {
            Some((id, _, _)) => s.get(id).await?.is_some_and(|r| r.id == Some(id)),
            None => true,
        },
        3 | 4 => match l.ids.pick(op == 3, rng) {
            Some((id, n, _)) => {
                let sig = record_at(n, 0).transaction_signature.expect("signed");
                s.get_by_signature(&sig)
                    .await?
                    .is_some_and(|r| r.id == Some(id))
            }
            None => true,
        },
        5 | 6 => {
            if let Some(k) = l.ids.pick(op == 5, rng) {
                s.update(&updated(k, rng)).await?;
            }
            true
        }
        7 => {
            drain_pages(s.list_since_with_page_size(now_ms() - 5_000, 256), 2).await?;
            true
        }
        _ => {
            let from = l.old_from_ms + (next_rand(rng) % l.old_span_ms.max(1) as u64) as i64;
            let range = ScanRange::default().with_time(from..=from + 3_600_000);
            drain_pages(s.scan(range, 256)?, 2).await?;
            true
        }
    })
}

async fn load_task(l: Arc<Load>, seed: u64) {
    let mut rng = seed;
    let period = (l.task_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / l.task_rate));
    // Spread the tasks' first ticks over one period.
    let mut next = tokio::time::Instant::now()
        + period.map_or(Duration::ZERO, |p| p.mul_f64((seed % 1000) as f64 / 1000.0));
    while !l.stop.load(Ordering::Relaxed) {
        if let Some(p) = period {
            tokio::time::sleep_until(next).await;
            next = (next + p).max(tokio::time::Instant::now());
        }
        let mut r = next_rand(&mut rng) % 1000;
        let mut op = 0;
        while r >= OPS[op].1 {
            r -= OPS[op].1;
            op += 1;
        }
        let t = Instant::now();
        let res = one_op(&l, op, &mut rng).await;
        let us = t.elapsed().as_micros().max(1) as u64;
        if let Some(h) = l.counters.lat.lock().expect("latency lock").get_mut(op) {
            h.saturating_record(us);
        }
        match res {
            Ok(true) => {}
            Ok(false) => l.counters.error(format!("{}: not found", OPS[op].0)),
            Err(e) => l.counters.error(format!("{}: {e:#}", OPS[op].0)),
        }
        l.counters.ops[op].fetch_add(1, Ordering::Relaxed);
        l.counters.total.fetch_add(1, Ordering::Relaxed);
        if period.is_none() {
            tokio::task::yield_now().await;
        }
    }
}

/// Put records `start..start + count` with 64 concurrent writers, stamped `ts(n)`.
async fn preload(
    store: &Store,
    ids: &Arc<Ids>,
    start: u64,
    count: u64,
    ts: impl Fn(u64) -> i64 + Copy + Send + 'static,
) -> anyhow::Result<()> {
    const WRITERS: u64 = 64;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, ids) = (Arc::clone(store), Arc::clone(ids));
        tasks.push(tokio::spawn(async move {
            let mut rng = w;
            for n in (start + w..start + count).step_by(WRITERS as usize) {
                let id = store.put(&record_at(n, ts(n))).await?;
                ids.add((id, n, ts(n)), &mut rng);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Config.

/// Merge `over` into `base`, recursively for tables.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn apply_overrides(config: StorageConfig) -> anyhow::Result<(StorageConfig, Option<String>)> {
    let Ok(text) = std::env::var("TS_MEM_CONFIG") else {
        return Ok((config, None));
    };
    let text = if Path::new(&text).is_file() {
        std::fs::read_to_string(&text)?
    } else {
        text.replace("\\n", "\n")
    };
    let over: toml::Table = toml::from_str(&text)?;
    let clock = config.clock.clone();
    let mut base = toml::Table::try_from(&config)?;
    merge(&mut base, over);
    let mut merged = StorageConfig::from_toml_str(&toml::to_string(&base)?)?;
    merged.clock = clock;
    Ok((merged, Some(text)))
}

/// One line of the configured-memory budget.
struct Budget {
    what: String,
    bytes: u64,
    how: String,
}

fn budget(config: &StorageConfig, record_mem: u64, record_encoded: u64) -> Vec<Budget> {
    let (h, w, c) = (&config.hot, &config.warm, &config.cold);
    let hot_by_count = h.capacity * record_mem;
    let hot = match h.max_bytes {
        Some(mb) => hot_by_count.min(mb * record_mem / record_encoded.max(1)),
        None => hot_by_count,
    };
    vec![
        Budget {
            what: "hot cache".into(),
            bytes: hot,
            how: format!(
                "capacity {} × {record_mem} B in memory per record (measured heap + struct + 128 B entry){}",
                h.capacity,
                h.max_bytes
                    .map_or(String::new(), |mb| format!(", max_bytes {mb} encoded"))
            ),
        },
        Budget {
            what: "hot frequency sketch".into(),
            bytes: 4 * h.frequency_counters as u64,
            how: format!("4 × {} u8 counters", h.frequency_counters),
        },
        Budget {
            what: "warm page caches".into(),
            bytes: w.cache_mib * (1 << 20) * (w.read_connections as u64 + 1),
            how: format!(
                "cache_mib {} × (read_connections {} + 1 writer)",
                w.cache_mib, w.read_connections
            ),
        },
        Budget {
            what: "warm signature delta".into(),
            bytes: w.signature_merge_threshold as u64 * 40,
            how: format!(
                "signature_merge_threshold {} × ~40 B",
                w.signature_merge_threshold
            ),
        },
        Budget {
            what: "warm access statistics".into(),
            bytes: 2 * w.access_flush_threshold as u64 * 32,
            how: format!(
                "2 × access_flush_threshold {} × ~32 B",
                w.access_flush_threshold
            ),
        },
        Budget {
            what: "warm write queue".into(),
            bytes: w.queue_depth as u64 * (record_encoded + 64),
            how: format!(
                "queue_depth {} × ({record_encoded} B encoded + 64)",
                w.queue_depth
            ),
        },
        Budget {
            what: "cold metadata cache".into(),
            bytes: c.metadata_cache_mib * (1 << 20),
            how: format!("metadata_cache_mib {}", c.metadata_cache_mib),
        },
    ]
}

// ---------------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let secs = env_u64("TS_MEM_SECS", 180)?;
    let tasks = env_u64("TS_MEM_TASKS", 64)?.max(1);
    let rate = env_u64("TS_MEM_RATE", 10_000)?;
    let preload_old = env_u64("TS_MEM_PRELOAD_OLD", 200_000)?;
    let preload_recent = env_u64("TS_MEM_PRELOAD_RECENT", 50_000)?;
    let workers = match std::env::var("TS_MEM_WORKERS") {
        Ok(v) => v.parse()?,
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let (dir_path, _tmp): (PathBuf, Option<tempfile::TempDir>) =
        match std::env::var_os("TS_MEM_DIR") {
            Some(d) => (PathBuf::from(d), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("tiered-storage-memory-bench-")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };

    // The bench's config: defaults, with ages in seconds and small cold files.
    let mut config = StorageConfig::default().with_data_dir(&dir_path);
    config.tiering.warm_to_cold_age = 30;
    config.tiering.maintenance_interval = 5;
    config.cold.target_file_mib = 1;
    let (config, overrides) = apply_overrides(config)?;
    let db_path = config.data_dir.join(WARM_DB_FILE);
    let read_connections = config.warm.read_connections as u64;

    println!(
        "command: TS_MEM_SECS={secs} TS_MEM_TASKS={tasks} TS_MEM_RATE={rate} \
         TS_MEM_PRELOAD_OLD={preload_old} TS_MEM_PRELOAD_RECENT={preload_recent} \
         TS_MEM_WORKERS={workers}{} cargo bench --bench memory",
        overrides
            .as_ref()
            .map_or(String::new(), |o| format!(" TS_MEM_CONFIG={o:?}"))
    );
    println!(
        "config: tiering {:?}; hot {:?}; warm {:?}; cold {:?}; maintenance {:?}; data dir {}",
        config.tiering,
        config.hot,
        config.warm,
        config.cold,
        config.maintenance,
        config.data_dir.display()
    );

    // Calibration, and the per-record memory estimate (before anything else allocates).
    println!();
    println!("SQLite fd calibration (scratch WAL database, the warm tier's open flags):");
    println!("| step | db fds | -wal fds | -shm fds |");
    println!("|---|---:|---:|---:|");
    for (step, f) in calibrate_sqlite_fds()? {
        println!("| {step} | {} | {} | {} |", f.db, f.wal, f.shm);
    }
    let (record_mem, record_encoded) = {
        let before = live_heap();
        let v: Vec<TransactionRecord> = (0..1000).map(|n| record_at(n, 0)).collect();
        let per = (live_heap() - before) / 1000 + 128;
        let mut buf = Vec::new();
        tiered_storage::Record::encode(&v[0], &mut buf)?;
        (per, buf.len() as u64)
    };

    let started = Instant::now();
    let thread_no = Arc::new(AtomicUsize::new(0));
    let rt = {
        let thread_no = Arc::clone(&thread_no);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            // The runtime starts its workers first, as blocking-pool threads; every later
            // thread of the pool runs spawn_blocking work.
            .thread_name_fn(move || {
                if thread_no.fetch_add(1, Ordering::Relaxed) < workers {
                    "tokio-worker".into()
                } else {
                    "tokio-blocking".into()
                }
            })
            .enable_all()
            .build()?
    };
    anyhow::ensure!(
        rt.metrics().num_workers() == workers,
        "runtime has {} workers, expected {workers}",
        rt.metrics().num_workers()
    );

    let store: Store = Arc::new(rt.block_on(AutoTieringCoordinator::new(config.clone()))?);

    // Sampler thread.
    let phase = Arc::new(AtomicU8::new(0));
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let snap = Arc::new(Mutex::new(StoreSnap::default()));
    let counters = Arc::new(Counters {
        ops: Default::default(),
        lat: Mutex::new(
            (0..OPS.len())
                .map(|_| Histogram::new_with_bounds(1, 600_000_000, 2))
                .collect::<Result<_, _>>()?,
        ),
        errors: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
        total: AtomicU64::new(0),
    });
    let sampler = {
        let (phase, stop, snap, store, counters) = (
            Arc::clone(&phase),
            Arc::clone(&stop_sampler),
            Arc::clone(&snap),
            Arc::clone(&store),
            Arc::clone(&counters),
        );
        let (db_path, data_dir) = (db_path.clone(), config.data_dir.clone());
        std::thread::Builder::new()
            .name("mem-sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                let mut next = Instant::now();
                loop {
                    let (warm_bytes, cold_bytes) = data_bytes(&data_dir);
                    let (cpu_ticks, loadavg) = cpu_ticks_and_load();
                    samples.push(Sample {
                        t: started.elapsed().as_secs_f64(),
                        phase: phase.load(Ordering::Relaxed),
                        status: proc_status(),
                        threads: threads_by_name(),
                        fds: count_fds(&db_path),
                        sqlite_mem: sqlite_memory().0,
                        rust_heap: live_heap(),
                        malloc: glibc::malloc_bytes(),
                        warm_bytes,
                        cold_bytes,
                        meta_cache: store.cold_tier().metadata_cache_bytes(),
                        ops: counters.total.load(Ordering::Relaxed),
                        cpu_ticks,
                        loadavg,
                        store: snap.lock().expect("snap lock").clone(),
                    });
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    next += Duration::from_secs(1);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                samples
            })?
    };
    // Store scrape, every 2 s, on the runtime (as a bot's metrics endpoint would).
    let scraper = {
        let (store, snap, stop) = (
            Arc::clone(&store),
            Arc::clone(&snap),
            Arc::clone(&stop_sampler),
        );
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let stats = store.get_stats().await;
                let cold = store.cold_tier().cold_stats();
                if let (Ok(stats), Ok(cold)) = (stats, cold) {
                    *snap.lock().expect("snap lock") = StoreSnap {
                        stats,
                        cold,
                        hot_bytes: store.hot_tier().metrics().bytes_stored,
                        maintenance_steps: store.maintenance_status().steps,
                    };
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };

    // --- Preload.
    let ids = Arc::new(Ids {
        inner: Mutex::new(Known2::default()),
    });
    let t = Instant::now();
    let old_from_ms = now_ms() - 30 * DAY_MS;
    let old_span_ms = 30 * DAY_MS - 3_600_000;
    let step = (old_span_ms / preload_old.max(1) as i64).max(1);
    rt.block_on(preload(&store, &ids, 0, preload_old, move |n| {
        old_from_ms + n as i64 * step
    }))?;
    let recent_ts = now_ms();
    rt.block_on(preload(
        &store,
        &ids,
        preload_old,
        preload_recent,
        move |_| recent_ts,
    ))?;
    println!();
    println!(
        "preload: {preload_old} old records (stamped over the last 30 days) + {preload_recent} \
         recent, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let hwm_before_load = proc_status().hwm;

    // --- Load, with the maintenance loop running.
    rt.spawn(Arc::clone(&store).start_maintenance_loop());
    phase.store(1, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load {
        store: Arc::clone(&store),
        ids: Arc::clone(&ids),
        next_n: Arc::new(AtomicU64::new(preload_old + preload_recent)),
        counters: Arc::clone(&counters),
        stop: Arc::clone(&stop),
        task_rate: rate as f64 / tasks as f64,
        old_from_ms,
        old_span_ms,
    });
    let load_started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|i| rt.spawn(load_task(Arc::clone(&load), 0xC0FFEE + i * 7919)))
        .collect();
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(secs)).await });
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        rt.block_on(h)?;
    }
    let load_secs = load_started.elapsed().as_secs_f64();

    // --- Read-back: every record once, through every tier.
    phase.store(2, Ordering::Relaxed);
    let t = Instant::now();
    let read_back = rt.block_on(async {
        let mut cursor = store.list_since_with_page_size(i64::MIN, 1024);
        let mut n = 0u64;
        while let Some(page) = cursor.next_page().await? {
            n += page.len() as u64;
        }
        anyhow::Ok(n)
    })?;
    let read_back_secs = t.elapsed().as_secs_f64();
    let final_stats = rt.block_on(store.get_stats())?;
    let final_cold = store.cold_tier().cold_stats()?;
    let final_status = store.maintenance_status();

    // --- Shutdown.
    phase.store(3, Ordering::Relaxed);
    rt.block_on(store.shutdown())?;
    std::thread::sleep(Duration::from_millis(1500));
    stop_sampler.store(true, Ordering::Relaxed);
    let samples = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    rt.block_on(scraper)?;
    drop(load);
    drop(store);
    drop(rt);

    report(&Report {
        config: &config,
        samples: &samples,
        counters: &counters,
        tasks,
        rate,
        load_secs,
        read_back,
        read_back_secs,
        final_stats: &final_stats,
        final_cold: &final_cold,
        maintenance_steps: final_status.steps,
        failed_steps: final_status.failed_steps,
        record_mem,
        record_encoded,
        hwm_before_load,
        workers: workers as u64,
        read_connections,
    })?;
    let errors = counters.errors.load(Ordering::Relaxed);
    anyhow::ensure!(
        read_back == final_stats.total_records,
        "read-back saw {read_back} records, the store holds {}",
        final_stats.total_records
    );
    anyhow::ensure!(errors == 0, "{errors} operations failed (see above)");
    Ok(())
}

struct Report<'a> {
    config: &'a StorageConfig,
    samples: &'a [Sample],
    counters: &'a Counters,
    tasks: u64,
    rate: u64,
    load_secs: f64,
    read_back: u64,
    read_back_secs: f64,
    final_stats: &'a StorageStats,
    final_cold: &'a ColdStats,
    maintenance_steps: u64,
    failed_steps: u64,
    record_mem: u64,
    record_encoded: u64,
    hwm_before_load: u64,
    workers: u64,
    read_connections: u64,
}

fn report(r: &Report) -> anyhow::Result<()> {
    let s = r.samples;
    let load: Vec<&Sample> = s.iter().filter(|x| x.phase == 1).collect();

    // Operations.
    println!();
    let total = r.counters.total.load(Ordering::Relaxed);
    println!(
        "load: {} tasks for {:.1} s, {} operations ({:.0}/s, asked {}/s), {} errors",
        r.tasks,
        r.load_secs,
        total,
        total as f64 / r.load_secs,
        if r.rate == 0 {
            "unpaced".to_string()
        } else {
            r.rate.to_string()
        },
        r.counters.errors.load(Ordering::Relaxed)
    );
    println!("| operation | share ‰ | done | per s | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let lat = r.counters.lat.lock().expect("latency lock");
    for (i, (name, share)) in OPS.iter().enumerate() {
        let n = r.counters.ops[i].load(Ordering::Relaxed);
        let ms = |q: f64| lat[i].value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {name} | {share} | {n} | {:.0} | {:.2} | {:.1} | {:.0} |",
            n as f64 / r.load_secs,
            ms(0.5),
            ms(0.99),
            lat[i].max() as f64 / 1000.0
        );
    }
    drop(lat);
    for e in r.counters.first_errors.lock().expect("errors lock").iter() {
        println!("error: {e}");
    }
    let st = r.final_stats;
    println!(
        "store at the end: {} records (hot {}, warm {}, cold {}); reads hot/warm/cold/miss {}/{}/{}/{}; \
         {} maintenance steps ({} failed); cold: {} files, {} rows ({} dead), {:.1} MiB, \
         {} archived in {} files since open; read-back: {} records in {:.1} s",
        st.total_records,
        st.hot_records,
        st.warm_records,
        st.cold_records,
        st.hot_hits,
        st.warm_hits,
        st.cold_hits,
        st.misses,
        r.maintenance_steps,
        r.failed_steps,
        r.final_cold.files,
        r.final_cold.rows,
        r.final_cold.dead_rows,
        mib(r.final_cold.bytes),
        r.final_cold.archived_since_open,
        r.final_cold.archive_files_since_open,
        r.read_back,
        r.read_back_secs,
    );

    // Timeline.
    println!();
    println!("timeline (every 10th sample and the last of each phase):");
    println!(
        "| t s | phase | VmRSS MiB | RssAnon | RssFile | VmHWM | threads | tokio-blocking | db fds | -wal fds | parquet fds | SQLite heap MiB | Rust heap MiB | malloc free MiB | warm MiB | cold MiB | cold files | meta cache MiB | ops/s | CPU % | load |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, x) in s.iter().enumerate() {
        let last_of_phase = s.get(i + 1).is_none_or(|n| n.phase != x.phase);
        if i % 10 != 0 && !last_of_phase {
            continue;
        }
        let (ops_s, cpu) = if i > 0 {
            let dt = x.t - s[i - 1].t;
            (
                (x.ops - s[i - 1].ops) as f64 / dt,
                (x.cpu_ticks - s[i - 1].cpu_ticks) as f64 / dt,
            )
        } else {
            (0.0, 0.0)
        };
        println!(
            "| {:.0} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {} | {:.1} | {:.0} | {:.0} | {:.1} |",
            x.t,
            PHASES[x.phase as usize],
            mib(x.status.rss),
            mib(x.status.anon),
            mib(x.status.file),
            mib(x.status.hwm),
            x.status.threads,
            x.thread("tokio-blocking"),
            x.fds.db,
            x.fds.wal,
            x.fds.parquet,
            mib(x.sqlite_mem),
            mib(x.rust_heap),
            x.malloc.map_or("-".into(), |m| format!("{:.0}", mib(m.1))),
            mib(x.warm_bytes),
            mib(x.cold_bytes),
            x.store.cold.files,
            mib(x.meta_cache),
            ops_s,
            cpu,
            x.loadavg
        );
    }
    if let Ok(path) = std::env::var("TS_MEM_CSV") {
        let mut csv = String::from(
            "t,phase,vm_rss,rss_anon,rss_file,vm_hwm,threads,tokio_worker,tokio_blocking,db_fds,wal_fds,shm_fds,parquet_fds,fds,sqlite_heap,rust_heap,malloc_in_use,malloc_free,warm_bytes,cold_bytes,cold_files,cold_rows,meta_cache_bytes,meta_cache_files,hot_records,hot_bytes,warm_records,maintenance_steps,ops,cpu_ticks,loadavg\n",
        );
        for x in s {
            let m = x.malloc.unwrap_or_default();
            csv.push_str(&format!(
                "{:.1},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                x.t,
                PHASES[x.phase as usize],
                x.status.rss,
                x.status.anon,
                x.status.file,
                x.status.hwm,
                x.status.threads,
                x.thread("tokio-worker"),
                x.thread("tokio-blocking"),
                x.fds.db,
                x.fds.wal,
                x.fds.shm,
                x.fds.parquet,
                x.fds.total,
                x.sqlite_mem,
                x.rust_heap,
                m.0,
                m.1,
                x.warm_bytes,
                x.cold_bytes,
                x.store.cold.files,
                x.store.cold.rows,
                x.meta_cache,
                x.store.cold.metadata_cache_files,
                x.store.stats.hot_records,
                x.store.hot_bytes,
                x.store.stats.warm_records,
                x.store.maintenance_steps,
                x.ops,
                x.cpu_ticks,
                x.loadavg
            ));
        }
        std::fs::write(&path, csv)?;
        println!("every sample written to {path}");
    }

    // Peaks per phase.
    println!();
    println!("peaks per phase:");
    println!(
        "| phase | samples | VmRSS MiB | RssAnon | RssFile | threads | tokio-blocking | db fds | -wal fds | parquet fds | SQLite heap MiB | Rust heap MiB | malloc free MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (p, name) in PHASES.iter().enumerate() {
        let xs: Vec<&Sample> = s.iter().filter(|x| x.phase as usize == p).collect();
        if xs.is_empty() {
            continue;
        }
        let max = |f: &dyn Fn(&Sample) -> u64| xs.iter().map(|x| f(x)).max().unwrap_or(0);
        println!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} |",
            xs.len(),
            mib(max(&|x| x.status.rss)),
            mib(max(&|x| x.status.anon)),
            mib(max(&|x| x.status.file)),
            max(&|x| x.status.threads),
            max(&|x| x.thread("tokio-blocking")),
            max(&|x| x.fds.db),
            max(&|x| x.fds.wal),
            max(&|x| x.fds.parquet),
            mib(max(&|x| x.sqlite_mem)),
            mib(max(&|x| x.rust_heap)),
            mib(max(&|x| x.malloc.map_or(0, |m| m.1))),
        );
    }
    let (_, sqlite_high) = sqlite_memory();
    let hwm = s.iter().map(|x| x.status.hwm).max().unwrap_or(0);
    println!(
        "VmHWM: {:.0} MiB at the end of the preload, {:.0} MiB over the whole run; SQLite heap high water {:.1} MiB",
        mib(r.hwm_before_load),
        mib(hwm),
        mib(sqlite_high)
    );

    // Threads by name.
    let peak = load
        .iter()
        .max_by_key(|x| x.status.threads)
        .copied()
        .or(s.last());
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    for x in s {
        for (n, c) in &x.threads {
            let e = names.entry(n.clone()).or_insert(0);
            *e = (*e).max(*c);
        }
    }
    println!();
    println!(
        "threads by name (comm; tokio-worker = the runtime's {} workers, tokio-blocking = its blocking pool):",
        r.workers
    );
    println!("| name | at the load's thread peak | most at any sample | at the end of the load |");
    println!("|---|---:|---:|---:|");
    let end_of_load = load.last().copied();
    for (n, most) in &names {
        println!(
            "| {n} | {} | {most} | {} |",
            peak.map_or(0, |p| p.thread(n)),
            end_of_load.map_or(0, |p| p.thread(n))
        );
    }

    // Data, caches, bound.
    let data = s
        .iter()
        .map(|x| x.warm_bytes + x.cold_bytes)
        .max()
        .unwrap_or(0);
    let last = s.last().cloned().unwrap_or_default();
    let lines = budget(r.config, r.record_mem, r.record_encoded);
    let caches: u64 = lines.iter().map(|b| b.bytes).sum();
    // Each SQLite connection maps the database on its own (unix VFS: one mapping per open
    // file), so file-backed RSS can reach mmap_mib (at most the file's size) per connection.
    let w = &r.config.warm;
    let mmap_allowance = w.mmap_mib * (1 << 20) * (w.read_connections as u64 + 1);
    let bound = 2 * (caches + (64 << 20));
    println!();
    println!(
        "data: {:.1} MiB at most ({:.1} MiB at the end: warm {:.1} MiB, cold {:.1} MiB in {} files); {} records",
        mib(data),
        mib(last.warm_bytes + last.cold_bytes),
        mib(last.warm_bytes),
        mib(last.cold_bytes),
        r.final_cold.files,
        r.final_stats.total_records
    );
    println!("configured caches and bounded buffers (the config's own limits, anonymous memory):");
    println!("| what | MiB | from |");
    println!("|---|---:|---|");
    for b in &lines {
        println!("| {} | {:.1} | {} |", b.what, mib(b.bytes), b.how);
    }
    println!("| **total** | **{:.1}** | |", mib(caches));
    println!(
        "not counted above: warm mmap, file-backed (in VmRSS as RssFile): up to mmap_mib {} × (read_connections {} + 1) = {:.0} MiB, each mapping at most the database's size",
        w.mmap_mib,
        w.read_connections,
        mib(mmap_allowance)
    );
    println!(
        "target bound: 2 × (configured caches {:.1} MiB + 64 MiB) = {:.1} MiB",
        mib(caches),
        mib(bound)
    );

    // Cold metadata cache per record.
    let meta_peak = s.iter().max_by_key(|x| x.meta_cache);
    let per_record = |x: &Sample| {
        let live = x.store.cold.rows.saturating_sub(x.store.cold.dead_rows);
        (live > 0).then(|| x.meta_cache as f64 / live as f64)
    };
    let worst = s
        .iter()
        .filter_map(|x| per_record(x).map(|b| (b, x)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    println!();
    println!(
        "cold metadata cache (ColdStats::metadata_cache_bytes, the cache's own accounting of parsed footers and page indexes): peak {:.1} MiB of {} MiB configured{}; at the end {:.1} MiB in {} of {} files for {} live cold records = {:.1} B/record; worst {} (budget 4 B/record)",
        meta_peak.map_or(0.0, |x| mib(x.meta_cache)),
        r.config.cold.metadata_cache_mib,
        meta_peak.map_or(String::new(), |x| format!(" (t {:.0} s, {} files open in it)", x.t, x.store.cold.metadata_cache_files)),
        mib(r.final_cold.metadata_cache_bytes),
        r.final_cold.metadata_cache_files,
        r.final_cold.files,
        r.final_cold.rows - r.final_cold.dead_rows,
        r.final_cold.metadata_cache_bytes as f64
            / (r.final_cold.rows - r.final_cold.dead_rows).max(1) as f64,
        worst.map_or("-".into(), |(b, x)| format!(
            "{b:.1} B/record at t {:.0} s ({} cold files, {} live rows)",
            x.t,
            x.store.cold.files,
            x.store.cold.rows - x.store.cold.dead_rows
        )),
    );

    // Verdicts, over the load and the read-back.
    let busy: Vec<&Sample> = s.iter().filter(|x| x.phase == 1 || x.phase == 2).collect();
    let peak_rss = busy.iter().map(|x| x.status.rss).max().unwrap_or(0);
    let peak_load_rss = load.iter().map(|x| x.status.rss).max().unwrap_or(0);
    let peak_anon = busy.iter().map(|x| x.status.anon).max().unwrap_or(0);
    let peak_file = busy.iter().map(|x| x.status.file).max().unwrap_or(0);
    let peak_db = busy.iter().map(|x| x.fds.db).max().unwrap_or(0);
    let peak_wal = busy.iter().map(|x| x.fds.wal).max().unwrap_or(0);
    let peak_threads = busy.iter().map(|x| x.status.threads).max().unwrap_or(0);
    let max_conns = r.read_connections + 2;
    let max_threads = env_u64(
        "TS_MEM_MAX_THREADS",
        2 + r.workers + 1 + r.read_connections + 2,
    )
    .unwrap_or(0);
    let ok = |b: bool| if b { "MET" } else { "NOT MET" };
    println!();
    println!("verdicts (load and read-back):");
    println!(
        "- RSS: peak VmRSS {:.0} MiB (load {:.0} MiB, read-back {:.0} MiB; VmHWM {:.0} MiB) vs bound {:.0} MiB: {}",
        mib(peak_rss),
        mib(peak_load_rss),
        mib(
            s.iter()
                .filter(|x| x.phase == 2)
                .map(|x| x.status.rss)
                .max()
                .unwrap_or(0)
        ),
        mib(hwm),
        mib(bound),
        ok(peak_rss <= bound && hwm <= bound)
    );
    println!(
        "  of which anonymous: peak RssAnon {:.0} MiB vs the same bound: {}; file-backed: peak RssFile {:.0} MiB vs the mmap allowance {:.0} MiB: {}",
        mib(peak_anon),
        ok(peak_anon <= bound),
        mib(peak_file),
        mib(mmap_allowance),
        ok(peak_file <= mmap_allowance)
    );
    println!(
        "- SQLite connections: peak {peak_db} fds on {WARM_DB_FILE} (the most connections open at once so far: a closed connection's fd stays parked while another holds the file; see the calibration), peak {peak_wal} on its -wal (connections open at a sample) vs read_connections {} + 2 = {max_conns}: {}",
        r.read_connections,
        ok(peak_db.max(peak_wal) <= max_conns)
    );
    println!(
        "- threads: peak {peak_threads} (tokio-blocking {}) vs {max_threads} (bench main + sampler, {} workers, warm writer, read_connections {}, 2 for maintenance; TS_MEM_MAX_THREADS overrides): {}",
        busy.iter()
            .map(|x| x.thread("tokio-blocking"))
            .max()
            .unwrap_or(0),
        r.workers,
        r.read_connections,
        ok(peak_threads <= max_threads)
    );
    println!(
        "- cold metadata cache: peak {:.1} MiB vs metadata_cache_mib {}: {}",
        meta_peak.map_or(0.0, |x| mib(x.meta_cache)),
        r.config.cold.metadata_cache_mib,
        ok(meta_peak.is_none_or(|x| x.meta_cache <= r.config.cold.metadata_cache_mib << 20))
    );
    Ok(())
}
