//! Serve the store's metrics to Prometheus: open a store, write and read a few trades so the
//! counters move, run the maintenance loop, and answer `GET /metrics` over plain HTTP/1.1.
//!
//! Run: `cargo run --release --example metrics_server`
//! then: `curl http://127.0.0.1:9898/metrics`
//!
//! Options: `--port N` (or `$METRICS_PORT`; default 9898), `--once` (serve one request, then
//! exit), `--self-test` (bind a free port, fetch `/metrics` from itself, check it, print it,
//! exit; for CI). Data goes to `$TIERED_STORAGE_DATA_DIR` when set, otherwise to a fresh
//! directory under the system temp directory, removed at exit. Ctrl-C stops the server and
//! shuts the store down cleanly.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use tiered_storage::config::DATA_DIR_ENV;
use tiered_storage::{
    AutoTieringCoordinator, StorageConfig, TransactionRecord, PROMETHEUS_CONTENT_TYPE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Store = AutoTieringCoordinator<TransactionRecord>;

const DEFAULT_PORT: u16 = 9898;
const TRADES: usize = 200;

#[tokio::main]
async fn main() -> Result<()> {
    let (port, once, self_test) = parse_args()?;

    let mut config = StorageConfig::default();
    let temp_dir = std::env::var_os(DATA_DIR_ENV).is_none().then(|| {
        std::env::temp_dir().join(format!("tiered_storage_metrics_{}", std::process::id()))
    });
    if let Some(dir) = &temp_dir {
        config.data_dir = dir.clone();
    }
    println!("data directory {}", config.data_dir.display());
    let store = Arc::new(Store::open(config).await.context("opening the store")?);
    let maintenance = tokio::spawn(store.clone().start_maintenance_loop());

    let result = async {
        seed(&store).await?;
        let listener = TcpListener::bind(("127.0.0.1", if self_test { 0 } else { port })).await?;
        let url = format!("http://{}/metrics", listener.local_addr()?);
        println!("serving {url}");
        if self_test {
            let server = tokio::spawn(serve(listener, store.clone(), true));
            let body = tokio::task::spawn_blocking(move || fetch(&url)).await??;
            server.await??;
            println!("{body}");
            println!("self-test passed");
            Ok(())
        } else {
            serve(listener, store.clone(), once).await
        }
    }
    .await;

    let shutdown = store.shutdown().await.context("shutting the store down");
    let _ = tokio::time::timeout(Duration::from_secs(10), maintenance).await;
    drop(store);
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result.and(shutdown)
}

/// `(port, once, self_test)` from the command line and `$METRICS_PORT`.
fn parse_args() -> Result<(u16, bool, bool)> {
    let mut port = match std::env::var("METRICS_PORT") {
        Ok(p) => p
            .parse()
            .with_context(|| format!("METRICS_PORT={p:?} is not a port"))?,
        Err(_) => DEFAULT_PORT,
    };
    let (mut once, mut self_test) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let p = args.next().context("--port needs a number")?;
                port = p
                    .parse()
                    .with_context(|| format!("--port {p:?} is not a port"))?;
            }
            "--once" => once = true,
            "--self-test" => self_test = true,
            other => bail!("unknown argument {other:?} (expected --port N, --once, --self-test)"),
        }
    }
    Ok((port, once, self_test))
}

/// Write some trades and read them back (hits) plus some ids that do not exist (misses).
async fn seed(store: &Store) -> Result<()> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let mut ids = Vec::with_capacity(TRADES);
    for i in 0..TRADES {
        let trade = TransactionRecord {
            transaction_signature: Some(format!("metrics-example-{nonce}-{i}")),
            timestamp_decision_made: now_ms - i as i64,
            initial_sol_spent: Some(0.25),
            ..Default::default()
        };
        ids.push(store.put(&trade).await?);
    }
    for id in &ids {
        ensure!(
            store.get(*id).await?.is_some(),
            "trade {id} was just stored but is not found"
        );
    }
    let last = *ids.iter().max().unwrap_or(&0);
    for id in last + 1..=last + 20 {
        store.get(id).await?;
    }
    println!("stored {TRADES} trades, read them back, and looked up 20 missing ids");
    Ok(())
}

/// Accept connections until Ctrl-C (or after one, with `once`).
async fn serve(listener: TcpListener, store: Arc<Store>, once: bool) -> Result<()> {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                if once {
                    return respond(stream, &store).await;
                }
                let store = store.clone();
                tokio::spawn(async move {
                    if let Err(e) = respond(stream, &store).await {
                        eprintln!("request failed: {e:#}");
                    }
                });
            }
            _ = &mut ctrl_c => {
                println!("Ctrl-C: stopping");
                return Ok(());
            }
        }
    }
}

/// Read one request head and answer it: `GET /metrics` → 200, other paths → 404.
async fn respond(mut stream: TcpStream, store: &Store) -> Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
        ensure!(
            n > 0 && head.len() < 16 * 1024,
            "incomplete or oversized request"
        );
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");

    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => match store.export_prometheus().await {
            Ok(text) => ("200 OK", PROMETHEUS_CONTENT_TYPE, text),
            Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
        },
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "text/plain",
            "use GET\n".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "not found; try /metrics\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Fetch `url` with a blocking std `TcpStream`, check the answer, return its body.
fn fetch(url: &str) -> Result<String> {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers")?;
    let status = head.lines().next().unwrap_or("");
    ensure!(status == "HTTP/1.1 200 OK", "status line {status:?}");
    ensure!(
        head.lines()
            .any(|l| l == format!("Content-Type: {PROMETHEUS_CONTENT_TYPE}")),
        "wrong content type in {head:?}"
    );
    ensure!(
        body.contains("hot_hit_total"),
        "no hot_hit_total in the body:\n{body}"
    );
    Ok(body.to_owned())
}
