//! Serve a store over HTTP:
//! `serve DATA_DIR [LISTEN] [--token-file FILE] [--token-for-reads] [--sample-interval SECS]`.
//!
//! Opens (or creates) the store at `DATA_DIR`, listens on `LISTEN` (default 127.0.0.1:8080;
//! port 0 picks a free one), prints `listening on http://ADDR` once it accepts connections,
//! and serves until SIGTERM or Ctrl-C, then shuts the store down and exits 0. Used by
//! `scripts/python_client.sh` and `scripts/browser_test.sh` (which requires the token for reads
//! too, and samples the metrics history every second so its charts fill quickly).

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use tiered_storage::{AutoTieringCoordinator, StorageConfig};
use tiered_storage_server::{serve_on, ServerConfig};

#[tokio::main]
async fn main() {
    tiered_storage_server::trim_freed_memory_while_serving();
    if let Err(e) = run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut token = None;
    let mut token_for_reads = false;
    let mut sample_interval = ServerConfig::default().sample_interval;
    while let Some(arg) = args.next() {
        if arg == "--token-file" {
            let path = args.next().context("--token-file needs a file")?;
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
            token = Some(text.trim().to_owned());
        } else if arg == "--token-for-reads" {
            token_for_reads = true;
        } else if arg == "--sample-interval" {
            let secs = args.next().context("--sample-interval needs seconds")?;
            let secs: f64 = secs
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .with_context(|| format!("bad --sample-interval {secs:?}: seconds > 0 expected"))?;
            sample_interval = std::time::Duration::from_secs_f64(secs);
        } else {
            positional.push(arg);
        }
    }
    let data_dir = positional
        .first()
        .context("usage: serve DATA_DIR [LISTEN] [--token-file FILE] [--token-for-reads] [--sample-interval SECS]")?;
    let listen = match positional.get(1) {
        Some(addr) => addr
            .parse()
            .with_context(|| format!("bad listen address {addr:?}"))?,
        None => tiered_storage_server::DEFAULT_LISTEN,
    };
    let config = ServerConfig {
        listen,
        token,
        token_for_reads,
        sample_interval,
        ..ServerConfig::default()
    };
    tiered_storage_server::check_listen(listen, config.token.as_deref())?;
    let store =
        AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(data_dir)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    serve_on(listener, Arc::new(store), config, std::future::pending()).await?;
    println!("stopped");
    Ok(())
}
