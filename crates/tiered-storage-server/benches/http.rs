//! Load generator for the HTTP service, over loopback with keep-alive connections.
//!
//! `cargo bench -p tiered-storage-server --bench http`
//!
//! The service runs in a child process (this binary, re-executed), next to a raw axum
//! baseline on a second port that answers a constant body of the same size as a record's
//! JSON, so the figures can be read as ratios to what axum and hyper cost by themselves on
//! this machine. The client is hand-rolled HTTP/1.1 over plain sockets, to keep its own cost
//! low: it shares the machine's cores with the service.
//!
//! 1. `GET /v1/records/{id}` on hot records, closed loop: requests/s (and the baseline's).
//! 2. The same at a fixed rate, open loop: each request has a scheduled send time, and its
//!    latency counts from that time (so a stalled service is not hidden by a stalled client).
//! 3. `POST /v1/records:batch` ingest: records/s (and the baseline: the same bodies posted to a
//!    route that only reads them).
//! 4. RSS of a fresh service process after ingesting `HTTP_BENCH_RSS_RECORDS` (1M) records
//!    into warm and idling.
//!
//! Environment: `HTTP_BENCH_SMOKE=1` runs each part briefly with small counts;
//! `HTTP_BENCH_RSS_RECORDS=N`, `HTTP_BENCH_SECS=S`, `HTTP_BENCH_CONNECTIONS=C`,
//! `HTTP_BENCH_RATE=R`, `HTTP_BENCH_SAMPLE_SECS=S` (the metrics sampler's interval) override
//! the defaults.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROLE_ENV: &str = "HTTP_BENCH_ROLE";
const DIR_ENV: &str = "HTTP_BENCH_DIR";
/// Hot records the GET runs read (under the hot tier's default capacity of 10,000).
const HOT_RECORDS: usize = 5_000;
/// Records per batch body.
const BATCH_LINES: usize = 10_000;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn smoke() -> bool {
    std::env::var("HTTP_BENCH_SMOKE").is_ok_and(|v| v != "0")
}

fn main() {
    if std::env::var(ROLE_ENV).as_deref() == Ok("server") {
        child_server();
        return;
    }
    let smoke = smoke();
    let secs = env_num("HTTP_BENCH_SECS", if smoke { 1 } else { 5 });
    let connections = env_num("HTTP_BENCH_CONNECTIONS", 32) as usize;
    let rate = env_num("HTTP_BENCH_RATE", 10_000);
    let rss_records = env_num(
        "HTTP_BENCH_RSS_RECORDS",
        if smoke { 20_000 } else { 1_000_000 },
    );
    let ingest_records = if smoke { 20_000 } else { 200_000 };
    println!(
        "http bench: {} mode, {secs} s runs, {connections} connections, {} cores",
        if smoke { "smoke" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1-3: one service with HOT_RECORDS records.
    let mut server = Server::start();
    let record = bench_record(0, "prefill");
    let record_json_len = serde_json::to_vec(&record).unwrap().len();
    let bodies = batch_bodies(HOT_RECORDS, HOT_RECORDS, "hot");
    for body in &bodies {
        let answer = post_blocking(server.api, "/v1/records:batch", body);
        assert!(
            answer.contains("\"errors\":[]"),
            "prefill failed: {answer:.200}"
        );
    }
    let ids: Arc<Vec<i64>> = Arc::new((1..=HOT_RECORDS as i64).collect());

    let get_paths: Vec<String> = ids.iter().map(|id| format!("/v1/records/{id}")).collect();
    let get = closed_loop(
        server.api,
        &get_paths,
        connections,
        Duration::from_secs(secs),
    );
    let base = closed_loop(
        server.baseline,
        &["/const".to_owned()],
        connections,
        Duration::from_secs(secs),
    );
    println!(
        "GET /v1/records/{{id}} hot, closed loop: {:.0} req/s ({} responses of ~{} bytes); baseline axum constant body: {:.0} req/s; ratio {:.2}",
        get.rate, get.count, get.body_bytes, base.rate, get.rate / base.rate
    );
    assert!(
        get.body_bytes.abs_diff(record_json_len) < 64,
        "the GET answers records"
    );

    let open = open_loop(
        server.api,
        &get_paths,
        rate,
        Duration::from_secs(secs.max(2) * 2),
    );
    let open_base = open_loop(
        server.baseline,
        &["/const".to_owned()],
        rate,
        Duration::from_secs(secs.max(2) * 2),
    );
    println!(
        "GET /v1/records/{{id}} hot, open loop at {rate} req/s: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} sent, achieved {:.0} req/s); baseline p50 {:.3} ms, p99 {:.3} ms",
        open.p50_ms, open.p99_ms, open.p999_ms, open.max_ms, open.count, open.achieved, open_base.p50_ms, open_base.p99_ms
    );

    let bodies = batch_bodies(ingest_records, BATCH_LINES, "ingest");
    let ingest = ingest(server.api, "/v1/records:batch", &bodies);
    let sink = ingest_sink(server.baseline, &bodies);
    println!(
        "POST /v1/records:batch ingest: {:.0} records/s ({} records in {} bodies of {:.1} MB, 2 connections); baseline (bodies read and dropped): {:.0} records/s; ratio {:.2}",
        ingest_records as f64 / ingest.as_secs_f64(),
        ingest_records,
        bodies.len(),
        bodies[0].len() as f64 / 1e6,
        ingest_records as f64 / sink.as_secs_f64(),
        sink.as_secs_f64() / ingest.as_secs_f64()
    );
    let direct = ingest_in_process(&bodies);
    println!(
        "in-process floor (the same NDJSON parsed and stored with put_many, {} lines a call, no HTTP): {:.0} records/s; service/floor {:.2}",
        tiered_storage_server::BATCH_CHUNK_LINES,
        ingest_records as f64 / direct.as_secs_f64(),
        direct.as_secs_f64() / ingest.as_secs_f64()
    );
    server.stop();

    // 4: a fresh service, rss_records ingested, then idle.
    let mut server = Server::start();
    let idle_rss = server.rss_kb();
    let started = Instant::now();
    let mut sent = 0usize;
    while sent < rss_records as usize {
        let n = BATCH_LINES.min(rss_records as usize - sent);
        let body = batch_bodies(n, n, &format!("rss{sent}")).pop().unwrap();
        let answer = post_blocking(server.api, "/v1/records:batch", &body);
        assert!(
            answer.contains("\"errors\":[]"),
            "load failed: {answer:.200}"
        );
        sent += n;
    }
    let load = started.elapsed();
    let peak_during_load = server.hwm_kb();
    std::thread::sleep(Duration::from_secs(if smoke { 2 } else { 10 }));
    let warm_records = warm_records(server.api);
    let rss = server.rss_kb();
    // RSS counts the pages of the database that SQLite's read mmap has touched (file-backed,
    // shared with the page cache, dropped by the kernel under pressure) besides anonymous
    // memory: print both parts.
    let (anon, file) = (server.status_kb("RssAnon:"), server.status_kb("RssFile:"));
    println!(
        "RSS parts: {:.1} MB anonymous, {:.1} MB file-backed (mmap of the database, binary)",
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    println!(
        "RSS: {:.1} MB idle with {warm_records} records in warm (empty: {:.1} MB; peak while loading {:.1} MB; loaded in {:.1} s = {:.0} records/s)",
        rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0,
        peak_during_load as f64 / 1024.0,
        load.as_secs_f64(),
        rss_records as f64 / load.as_secs_f64()
    );
    server.stop();
}

// The child: the service and the baseline.

fn child_server() {
    // As the `tiered-storage serve` binary does.
    tiered_storage_server::trim_freed_memory_while_serving();
    let dir = std::env::var(DIR_ENV).expect("data dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = tiered_storage::AutoTieringCoordinator::new(
            tiered_storage::StorageConfig::default().with_data_dir(dir),
        )
        .await
        .unwrap();
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let baseline = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let constant: &'static [u8] =
            Vec::leak(serde_json::to_vec(&bench_record(1, "baseline")).unwrap());
        let raw = axum::Router::new()
            .route(
                "/const",
                axum::routing::get(move || async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        constant,
                    )
                }),
            )
            .route(
                "/sink",
                axum::routing::post(
                    |body: axum::body::Bytes| async move { body.len().to_string() },
                ),
            )
            .layer(axum::extract::DefaultBodyLimit::max(256 << 20));
        println!(
            "ports {} {}",
            api.local_addr().unwrap().port(),
            baseline.local_addr().unwrap().port()
        );
        std::io::stdout().flush().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(baseline, raw).await;
        });
        tiered_storage_server::serve_on(
            api,
            Arc::new(store),
            tiered_storage_server::ServerConfig {
                sample_interval: Duration::from_secs(env_num("HTTP_BENCH_SAMPLE_SECS", 5)),
                ..tiered_storage_server::ServerConfig::default()
            },
            std::future::pending(),
        )
        .await
        .unwrap();
    });
}

struct Server {
    child: Child,
    api: SocketAddr,
    baseline: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE_ENV, "server")
            .env(DIR_ENV, dir.path().join("store"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: Vec<u16> = line
            .trim()
            .strip_prefix("ports ")
            .expect("ports line")
            .split(' ')
            .map(|p| p.parse().unwrap())
            .collect();
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Server {
            child,
            api: local(ports[0]),
            baseline: local(ports[1]),
            _dir: dir,
        }
    }

    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn rss_kb(&self) -> u64 {
        self.status_kb("VmRSS:")
    }

    fn hwm_kb(&self) -> u64 {
        self.status_kb("VmHWM:")
    }

    /// SIGTERM, and the service must exit 0 after its graceful shutdown.
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the service exited with {status}");
    }
}

// Records and bodies.

fn bench_record(i: usize, tag: &str) -> tiered_storage::TransactionRecord {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut r = tiered_storage::TransactionRecord::default();
    let base = &mut r.scored_candidate.base;
    base.mint = format!("{:0>44}", format!("mint{}", i % 1000));
    base.creator = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into();
    base.program = "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P".into();
    base.slot = 312_000_000 + i as u64;
    base.timestamp = now;
    base.instruction_summary = Some("create+buy".into());
    base.is_jito_bundle = Some(false);
    r.scored_candidate.predicted_score = 87;
    r.scored_candidate.feature_scores =
        [("liquidity".to_owned(), 0.82), ("holders".to_owned(), 0.4)].into();
    r.scored_candidate.reason = "strong early liquidity".into();
    r.scored_candidate.timestamp = now;
    r.transaction_signature = Some(format!("{tag}-{i:0>80}"));
    r.buy_price_sol = Some(0.000_000_03);
    r.amount_bought_tokens = Some(16_000_000.0);
    r.initial_sol_spent = Some(0.5);
    r.timestamp_decision_made = now;
    r.market_context_snapshot = [("sol_usd".to_owned(), 236.4)].into();
    r
}

fn batch_bodies(total: usize, per_body: usize, tag: &str) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    let mut body = Vec::new();
    for i in 0..total {
        serde_json::to_writer(&mut body, &bench_record(i, tag)).unwrap();
        body.push(b'\n');
        if (i + 1) % per_body == 0 {
            bodies.push(std::mem::take(&mut body));
        }
    }
    if !body.is_empty() {
        bodies.push(body);
    }
    bodies
}

// A minimal HTTP/1.1 client: requests written whole, responses read by Content-Length.

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n").into_bytes()
}

fn post_request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// `(status, header length, body length)` once the headers are in `buf`.
fn parse_head(buf: &[u8]) -> Option<(u16, usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status = head.get(9..12)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    Some((status, end, length))
}

/// One request on a blocking connection; the response's body.
fn exchange_blocking(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    stream.write_all(request).unwrap();
    buf.clear();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some((status, head, length)) = parse_head(buf) {
            if buf.len() >= head + length {
                let body = buf[head..head + length].to_vec();
                buf.drain(..head + length);
                return (status, body);
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn post_blocking(addr: SocketAddr, path: &str, body: &[u8]) -> String {
    let mut stream = connect(addr);
    let (status, body) = exchange_blocking(&mut stream, &post_request(path, body), &mut Vec::new());
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{text:.300}");
    text
}

fn warm_records(addr: SocketAddr) -> u64 {
    let mut stream = connect(addr);
    let (_, body) = exchange_blocking(&mut stream, &get_request("/v1/stats"), &mut Vec::new());
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["warm"]["record_count"].as_u64().unwrap()
}

struct Closed {
    rate: f64,
    count: u64,
    body_bytes: usize,
}

/// `connections` keep-alive connections, each sending its next request as soon as the
/// previous answer is in, on one client thread; requests cycle through `paths`.
fn closed_loop(
    addr: SocketAddr,
    paths: &[String],
    connections: usize,
    duration: Duration,
) -> Closed {
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(paths.iter().map(|p| get_request(p)).collect());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let deadline = Instant::now() + duration;
        let mut tasks = Vec::new();
        for c in 0..connections {
            let requests = requests.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut buf = Vec::with_capacity(8192);
                let mut chunk = vec![0u8; 16384];
                let (mut count, mut body_bytes) = (0u64, 0usize);
                let mut i = c * 7919;
                while Instant::now() < deadline {
                    stream
                        .write_all(&requests[i % requests.len()])
                        .await
                        .unwrap();
                    i += 1;
                    buf.clear();
                    loop {
                        if let Some((status, head, length)) = parse_head(&buf) {
                            if buf.len() >= head + length {
                                assert_eq!(status, 200);
                                body_bytes = length;
                                break;
                            }
                        }
                        let n = stream.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "connection closed");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    count += 1;
                }
                (count, body_bytes)
            }));
        }
        let started = Instant::now();
        let (mut count, mut body_bytes) = (0, 0);
        for t in tasks {
            let (c, b) = t.await.unwrap();
            count += c;
            body_bytes = b;
        }
        Closed {
            rate: count as f64 / started.elapsed().as_secs_f64(),
            count,
            body_bytes,
        }
    })
}

struct Open {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    count: u64,
    achieved: f64,
}

/// Requests at `rate` per second for `duration`, spread over enough blocking connections
/// (one thread each, sleeping to each request's scheduled send time) that a connection is
/// idle when its next request is due; latency counts from the scheduled time.
fn open_loop(addr: SocketAddr, paths: &[String], rate: u64, duration: Duration) -> Open {
    let connections = 16usize;
    let per_connection = Duration::from_secs_f64(connections as f64 / rate as f64);
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(paths.iter().map(|p| get_request(p)).collect());
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                let mut stream = connect(addr);
                let mut buf = Vec::with_capacity(8192);
                let offset = per_connection.mul_f64(c as f64 / connections as f64);
                let mut n = 0u64;
                loop {
                    let index = n * connections as u64 + c as u64;
                    if index >= total {
                        break;
                    }
                    let scheduled = start + offset + per_connection.mul_f64(n as f64);
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let (status, _) = exchange_blocking(
                        &mut stream,
                        &requests[index as usize % requests.len()],
                        &mut buf,
                    );
                    assert_eq!(status, 200);
                    histogram
                        .record(scheduled.elapsed().as_micros() as u64)
                        .unwrap();
                    n += 1;
                }
                histogram
            })
        })
        .collect();
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for t in threads {
        histogram.add(t.join().unwrap()).unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ms = |us: u64| us as f64 / 1000.0;
    Open {
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
        count: histogram.len(),
        achieved: histogram.len() as f64 / elapsed,
    }
}

/// Post every body, two connections at a time; the wall time.
fn ingest(addr: SocketAddr, path: &str, bodies: &[Vec<u8>]) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for half in 0..2 {
            scope.spawn(move || {
                let mut stream = connect(addr);
                let mut buf = Vec::new();
                for body in bodies.iter().skip(half).step_by(2) {
                    let (status, answer) =
                        exchange_blocking(&mut stream, &post_request(path, body), &mut buf);
                    assert_eq!(status, 200);
                    let text = String::from_utf8_lossy(&answer);
                    assert!(
                        path == "/sink" || text.contains("\"errors\":[]"),
                        "{text:.300}"
                    );
                }
            });
        }
    });
    started.elapsed()
}

fn ingest_sink(addr: SocketAddr, bodies: &[Vec<u8>]) -> Duration {
    ingest(addr, "/sink", bodies)
}

/// The same bodies parsed and stored in this process, without HTTP: what the library and the
/// parser cost by themselves.
fn ingest_in_process(bodies: &[Vec<u8>]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = tiered_storage::AutoTieringCoordinator::new(
            tiered_storage::StorageConfig::default().with_data_dir(dir.path()),
        )
        .await
        .unwrap();
        let started = Instant::now();
        for body in bodies {
            let records: Vec<_> = body
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| tiered_storage_server::api::parse_record(l).unwrap())
                .collect();
            for chunk in records.chunks(tiered_storage_server::BATCH_CHUNK_LINES) {
                let results = store.put_many(chunk).await.unwrap();
                assert!(results.iter().all(|r| r.is_ok()));
            }
        }
        let elapsed = started.elapsed();
        store.shutdown().await.unwrap();
        elapsed
    })
}
