//! The cold tier in an S3 bucket (s3s-fs on 127.0.0.1) against the local-disk cold tier, in
//! one run, on the same records (issue 14's targets):
//!
//! - archival end to end, records/s, to the bucket and to local disk;
//! - cold get by id with the range cache warm (p95), against local disk;
//! - cold get by id with an empty cache and the metadata cached: HTTP GETs per lookup and p95;
//! - cold get by signature with an empty cache: GETs per lookup and p95;
//! - resident memory of the cold indexes and metadata (the metadata cache) per archived record;
//! - replication of the archive to the second server: the time until the replica holds every
//!   object (lag 0) against the upload time.
//!
//! Requests are counted by a counting proxy in front of the server (`CountingProxy`: every
//! HTTP request the store's S3 client sends passes through it and is counted by method), so the
//! count is what the server saw, retries and coalesced ranges included. The empty-cache runs
//! use `cold.cache_max_bytes = 0` (no range cache: every lookup goes to the bucket) after one
//! lookup per file has loaded every file's metadata. Latency is measured on the direct
//! endpoint, the counts through the proxy.
//!
//! Run: `bash scripts/bench_s3.sh` (starts two s3s-fs instances; 2.5M records), or
//! `BENCH_S3_RECORDS=200000 bash scripts/bench_s3.sh` for a quicker run. Env:
//! `BENCH_S3_RECORDS` (default 2500000), `BENCH_S3_LOOKUPS` (default 2000 per kind), and the
//! servers' `TIERED_STORAGE_S3_ENDPOINT`,
//! `TIERED_STORAGE_S3_ENDPOINT_2`, `TIERED_STORAGE_S3_BUCKET`, `TIERED_STORAGE_S3_ROOT_2`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (set by the script). `cargo test --features s3
//! --bench s3` runs it in a debug build (scripts/test.sh does, with tiny sizes, to keep it
//! working; its figures mean nothing).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tiered_storage::{AutoTieringCoordinator, Record, StorageConfig, TieringConfig};

mod common;
use common::{env_u64, hist, pick, print_rows, put_concurrently, record_at, us, Row, WRITERS};

/// Records stamped 480 ms apart: 2.5M records span about 14 days (14 day partitions).
const STEP_MS: i64 = 480;
const BASE_MS: i64 = 1_750_000_000_000;

type Store = AutoTieringCoordinator;

// ---------------------------------------------------------------------------------------------
// A counting proxy: 127.0.0.1:<port> → the S3 server, counting each HTTP/1.1 request by method.

#[derive(Default)]
struct Counts {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    other: AtomicU64,
}

struct CountingProxy {
    port: u16,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(upstream: &str) -> Result<Self> {
        let upstream = upstream
            .strip_prefix("http://")
            .context("the proxy forwards plain http only")?
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&counts), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c, cl2, sv2) = (Arc::clone(&c), client.try_clone(), server.try_clone());
                let (Ok(cl2), Ok(sv2)) = (cl2, sv2) else {
                    continue;
                };
                // Responses: copied as they come.
                std::thread::spawn(move || {
                    let (mut from, mut to) = (sv2, cl2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
                // Requests: parsed, counted, forwarded.
                std::thread::spawn(move || {
                    let _ = forward_requests(client, server, &c);
                });
            }
        });
        Ok(Self { port, counts, stop })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn gets(&self) -> u64 {
        self.counts.get.load(Ordering::Relaxed)
    }

    fn requests(&self) -> u64 {
        let c = &self.counts;
        c.get.load(Ordering::Relaxed)
            + c.head.load(Ordering::Relaxed)
            + c.put.load(Ordering::Relaxed)
            + c.other.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Read requests from `client`, count each, and forward them (head and body) to `server`.
fn forward_requests(client: TcpStream, mut server: TcpStream, counts: &Counts) -> Result<()> {
    let mut reader = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        let mut line = String::new();
        let mut content_length = 0u64;
        let mut chunked = false;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                let _ = server.shutdown(Shutdown::Write);
                return Ok(());
            }
            head.extend_from_slice(line.as_bytes());
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if line == "\r\n" && head.len() > 2 {
                break;
            }
        }
        let method = head.split(|&b| b == b' ').next().unwrap_or(b"");
        match method {
            b"GET" => &counts.get,
            b"HEAD" => &counts.head,
            b"PUT" => &counts.put,
            _ => &counts.other,
        }
        .fetch_add(1, Ordering::Relaxed);
        server.write_all(&head)?;
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                server.write_all(line.as_bytes())?;
                let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)?;
                let mut chunk = (&mut reader).take(size + 2);
                std::io::copy(&mut chunk, &mut server)?;
                if size == 0 {
                    break;
                }
            }
        } else if content_length > 0 {
            let mut body = (&mut reader).take(content_length);
            std::io::copy(&mut body, &mut server)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------

struct Servers {
    endpoint: String,
    endpoint_2: Option<String>,
    bucket: String,
    root_2: Option<PathBuf>,
}

fn servers() -> Result<Servers> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    Ok(Servers {
        endpoint: var("TIERED_STORAGE_S3_ENDPOINT").context(
            "TIERED_STORAGE_S3_ENDPOINT is unset: run scripts/bench_s3.sh, which starts the S3 servers",
        )?,
        endpoint_2: var("TIERED_STORAGE_S3_ENDPOINT_2"),
        bucket: var("TIERED_STORAGE_S3_BUCKET").context("TIERED_STORAGE_S3_BUCKET is unset")?,
        root_2: var("TIERED_STORAGE_S3_ROOT_2").map(PathBuf::from),
    })
}

fn config(dir: &Path) -> StorageConfig {
    // Reads must reach cold: no promotion into hot.
    let tiering = TieringConfig {
        auto_promote_on_access: false,
        ..TieringConfig::default()
    };
    StorageConfig::default()
        .with_data_dir(dir)
        .with_tiering(tiering)
}

fn s3_config(dir: &Path, endpoint: &str, bucket: &str, prefix: &str) -> StorageConfig {
    let mut c = config(dir);
    c.cold.store = format!("s3://{bucket}/{prefix}");
    c.cold.s3_endpoint = Some(endpoint.to_owned());
    c.cold.s3_region = Some("us-east-1".to_owned());
    c.cold.s3_allow_http = true;
    c
}

/// Fill `store` with records `0..n` (64 writers) and archive everything; the archival's
/// records/s.
fn fill_and_archive(
    rt: &tokio::runtime::Runtime,
    store: &Arc<Store>,
    n: u64,
    what: &str,
) -> Result<f64> {
    let dealt: Vec<Vec<_>> = (0..WRITERS as u64)
        .map(|w| {
            (w..n)
                .step_by(WRITERS)
                .map(|i| record_at(i, BASE_MS + i as i64 * STEP_MS))
                .collect()
        })
        .collect();
    let t = Instant::now();
    rt.block_on(put_concurrently(store, dealt))?;
    rt.block_on(store.run_warm_upkeep())?;
    let put_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = rt.block_on(store.archive_older_than(i64::MAX))?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(
        report.archived == n,
        "{what}: archived {} of {n}",
        report.archived
    );
    let rate = n as f64 / secs;
    println!(
        "{what}: put {n} in {put_secs:.1} s; archived in {secs:.2} s = {rate:.0} records/s ({} files; read {:.2} s, write {:.2} s, commit {:.2} s)",
        report.files,
        report.read_time.as_secs_f64(),
        report.write_time.as_secs_f64(),
        report.commit_time.as_secs_f64(),
    );
    Ok(rate)
}

/// Time each lookup of `ids` by id.
fn time_gets(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    ids: &[i64],
) -> Result<hdrhistogram::Histogram<u64>> {
    let mut h = hist();
    for &id in ids {
        let t = Instant::now();
        let r = rt.block_on(store.get(id))?;
        h.record(t.elapsed().as_nanos() as u64)?;
        ensure!(r.is_some_and(|r| r.id == Some(id)), "id {id} not found");
    }
    Ok(h)
}

fn time_sigs(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    sigs: &[String],
) -> Result<hdrhistogram::Histogram<u64>> {
    let mut h = hist();
    for sig in sigs {
        let t = Instant::now();
        let r = rt.block_on(store.get_by_signature(sig))?;
        h.record(t.elapsed().as_nanos() as u64)?;
        ensure!(
            r.is_some_and(|r| r.signature() == Some(sig.as_str())),
            "signature {sig} not found"
        );
    }
    Ok(h)
}

/// One lookup by id in every file (its `min_id`): every file's metadata is then cached.
fn load_all_metadata(rt: &tokio::runtime::Runtime, store: &Store) -> Result<()> {
    for f in store.cold_tier().files()? {
        rt.block_on(store.get(f.min_id))?;
    }
    Ok(())
}

/// Every `.parquet` file under `dir`, relative, `/`-separated.
fn parquet_files(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                if let Ok(rel) = p.strip_prefix(base) {
                    out.insert(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn main() -> Result<()> {
    let records = env_u64("BENCH_S3_RECORDS", 2_500_000)?;
    let lookups = env_u64("BENCH_S3_LOOKUPS", 2000)? as usize;
    let s = servers()?;
    let tmp = tempfile::Builder::new()
        .prefix("tiered-storage-s3-bench-")
        .tempdir()?;
    let prefix = format!("bench-{}-{}", std::process::id(), BASE_MS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "S3 bench: {records} records, {lookups} lookups per kind; bucket s3://{}/{prefix} at {}",
        s.bucket, s.endpoint
    );

    // 1. Archival, local disk then the bucket, same records.
    let local_dir = tmp.path().join("local");
    let local = Arc::new(rt.block_on(Store::new(config(&local_dir)))?);
    let local_rate = fill_and_archive(&rt, &local, records, "local disk")?;
    let s3_dir = tmp.path().join("s3");
    let s3_cfg = s3_config(&s3_dir, &s.endpoint, &s.bucket, &prefix);
    let s3 = Arc::new(rt.block_on(Store::new(s3_cfg.clone()))?);
    let s3_rate = fill_and_archive(&rt, &s3, records, "S3 bucket")?;
    let upload_secs = records as f64 / s3_rate;

    // Lookups: the same ids (and signatures) in both stores; ids were assigned 1..=records.
    let n = records as usize;
    let ids: Vec<i64> = (0..lookups).map(|i| 1 + pick(i, n) as i64).collect();
    let mut sigs = Vec::with_capacity(lookups);
    for &id in &ids {
        let r = rt.block_on(local.get(id))?.context("id missing")?;
        sigs.push(r.signature().context("no signature")?.to_owned());
    }
    // Warm pass: metadata, the page cache of the local files, the range cache of the bucket's.
    load_all_metadata(&rt, &local)?;
    load_all_metadata(&rt, &s3)?;
    time_gets(&rt, &local, &ids)?;
    time_gets(&rt, &s3, &ids)?;
    time_sigs(&rt, &local, &sigs)?;
    time_sigs(&rt, &s3, &sigs)?;

    // 2. Block cache warm: by id and by signature against local disk.
    let local_by_id = time_gets(&rt, &local, &ids)?;
    let s3_warm_by_id = time_gets(&rt, &s3, &ids)?;
    let local_by_sig = time_sigs(&rt, &local, &sigs)?;
    let s3_warm_by_sig = time_sigs(&rt, &s3, &sigs)?;
    let meta_bytes = s3.cold_tier().metadata_cache_bytes();
    let local_meta_bytes = local.cold_tier().metadata_cache_bytes();
    rt.block_on(s3.shutdown())?;
    drop(s3);

    // 3. Empty cache (none), metadata cached: through the counting proxy for the counts, then
    // directly for the latency. Other ids than the warm pass's.
    let cold_ids: Vec<i64> = (0..lookups)
        .map(|i| 1 + pick(i + lookups, n) as i64)
        .collect();
    let mut cold_sigs = Vec::with_capacity(lookups);
    for &id in &cold_ids {
        let r = rt.block_on(local.get(id))?.context("id missing")?;
        cold_sigs.push(r.signature().context("no signature")?.to_owned());
    }
    let proxy = CountingProxy::start(&s.endpoint)?;
    let mut cfg = s3_config(&s3_dir, &proxy.endpoint(), &s.bucket, &prefix);
    cfg.cold.cache_max_bytes = 0;
    let counted = rt.block_on(Store::open(cfg))?;
    load_all_metadata(&rt, &counted)?;
    let (g0, r0) = (proxy.gets(), proxy.requests());
    let counted_by_id = time_gets(&rt, &counted, &cold_ids)?;
    let (g1, r1) = (proxy.gets(), proxy.requests());
    let counted_by_sig = time_sigs(&rt, &counted, &cold_sigs)?;
    let (g2, r2) = (proxy.gets(), proxy.requests());
    let gets_per_id = (g1 - g0) as f64 / lookups as f64;
    let gets_per_sig = (g2 - g1) as f64 / lookups as f64;
    println!(
        "requests per lookup, no cache, metadata cached: by id {gets_per_id:.2} GETs ({:.2} requests), by signature {gets_per_sig:.2} GETs ({:.2} requests)",
        (r1 - r0) as f64 / lookups as f64,
        (r2 - r1) as f64 / lookups as f64,
    );
    rt.block_on(counted.shutdown())?;
    drop(counted);
    drop(proxy);
    let mut cfg = s3_cfg.clone();
    cfg.cold.cache_max_bytes = 0;
    let direct = rt.block_on(Store::open(cfg))?;
    load_all_metadata(&rt, &direct)?;
    let cold_by_id = time_gets(&rt, &direct, &cold_ids)?;
    let cold_by_sig = time_sigs(&rt, &direct, &cold_sigs)?;
    rt.block_on(direct.shutdown())?;
    drop(direct);

    let table = vec![
        Row {
            name: "local disk: cold get by id".into(),
            h: local_by_id,
        },
        Row {
            name: "S3, cache warm: cold get by id".into(),
            h: s3_warm_by_id,
        },
        Row {
            name: "S3, no cache: cold get by id".into(),
            h: cold_by_id,
        },
        Row {
            name: "S3, no cache, via proxy: get by id".into(),
            h: counted_by_id,
        },
        Row {
            name: "local disk: cold get by signature".into(),
            h: local_by_sig,
        },
        Row {
            name: "S3, cache warm: get by signature".into(),
            h: s3_warm_by_sig,
        },
        Row {
            name: "S3, no cache: get by signature".into(),
            h: cold_by_sig,
        },
        Row {
            name: "S3, no cache, via proxy: get by sig".into(),
            h: counted_by_sig,
        },
    ];
    println!();
    print_rows(&table, &|name| {
        if name.starts_with("local") {
            None
        } else if name.contains("by id") {
            Some(0)
        } else {
            Some(4)
        }
    });
    println!();

    // 4. Replication of the archive to the second server.
    let mut repl = None;
    if let (Some(endpoint_2), Some(root_2)) = (&s.endpoint_2, &s.root_2) {
        let mut cfg = s3_cfg.clone();
        let replica = format!(
            "name = \"region-2\"\nstore = \"s3://{}/{prefix}\"\ns3_endpoint = {endpoint_2:?}\n\
             s3_region = \"us-east-1\"\ns3_allow_http = true\n",
            s.bucket
        );
        cfg.cold.replicas.push(toml::from_str(&replica)?);
        cfg.tiering.maintenance_interval = 3600;
        // The replicator runs beside the maintenance loop (whose own steps find nothing to do).
        let t = Instant::now();
        let store = Arc::new(rt.block_on(Store::open(cfg))?);
        rt.spawn(Arc::clone(&store).start_maintenance_loop());
        let (data, deletes): (BTreeSet<String>, BTreeSet<String>) = (
            store
                .cold_tier()
                .files()?
                .into_iter()
                .map(|e| e.path)
                .collect(),
            store
                .cold_tier()
                .delete_files()?
                .into_iter()
                .map(|d| d.path)
                .collect(),
        );
        let want: BTreeSet<String> = data.union(&deletes).cloned().collect();
        let on_replica = root_2.join(&s.bucket).join(&prefix);
        let limit = Duration::from_secs_f64((upload_secs * 10.0).max(120.0));
        loop {
            if parquet_files(&on_replica).is_superset(&want) {
                break;
            }
            ensure!(
                t.elapsed() < limit,
                "the replica did not catch up within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "replication: {} objects ({} records) on the second server {secs:.1} s after open = {:.2} × the upload time ({upload_secs:.1} s; target <= 2)",
            want.len(),
            records,
            secs / upload_secs
        );
        repl = Some(secs);
        rt.block_on(store.shutdown())?;
    } else {
        println!(
            "replication: skipped (no second server: TIERED_STORAGE_S3_ENDPOINT_2 / _ROOT_2 unset)"
        );
    }

    println!(
        "resident cold metadata: S3 {:.2} bytes/record, local disk {:.2} bytes/record (target <= 4)",
        meta_bytes as f64 / records as f64,
        local_meta_bytes as f64 / records as f64
    );
    println!("targets:");
    println!(
        "  archival to the bucket {s3_rate:.0} records/s (local disk {local_rate:.0}; target >= 150000)"
    );
    println!(
        "  get by id, cache warm, p95 {:.0} µs = {:.2} × local disk {:.0} µs (target <= 1.2 ×)",
        us(&table[1].h, 0.95),
        us(&table[1].h, 0.95) / us(&table[0].h, 0.95),
        us(&table[0].h, 0.95)
    );
    println!(
        "  get by id, no cache, metadata cached: {gets_per_id:.2} GETs per lookup (target <= 2), p95 {:.0} µs (target <= 3000)",
        us(&table[2].h, 0.95)
    );
    println!("  get by signature, no cache: {gets_per_sig:.2} GETs per lookup (target <= 2)");
    if let Some(secs) = repl {
        println!(
            "  replication to lag 0: {secs:.1} s = {:.2} × the upload time (target <= 2)",
            secs / upload_secs
        );
    }
    Ok(())
}
