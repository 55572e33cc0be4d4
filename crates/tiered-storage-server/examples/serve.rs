//! Serve a store over HTTP: `serve DATA_DIR [LISTEN] [--token-file FILE]`.
//!
//! Opens (or creates) the store at `DATA_DIR`, listens on `LISTEN` (default 127.0.0.1:8080;
//! port 0 picks a free one), prints `listening on http://ADDR` once it accepts connections,
//! and serves until SIGTERM or Ctrl-C, then shuts the store down and exits 0. Used by
//! `scripts/python_client.sh`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use tiered_storage::{AutoTieringCoordinator, StorageConfig};
use tiered_storage_server::{serve_on, ServerConfig};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut token = None;
    while let Some(arg) = args.next() {
        if arg == "--token-file" {
            let path = args.next().context("--token-file needs a file")?;
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
            token = Some(text.trim().to_owned());
        } else {
            positional.push(arg);
        }
    }
    let data_dir = positional
        .first()
        .context("usage: serve DATA_DIR [LISTEN] [--token-file FILE]")?;
    let listen = match positional.get(1) {
        Some(addr) => addr.parse().with_context(|| format!("bad listen address {addr:?}"))?,
        None => tiered_storage_server::DEFAULT_LISTEN,
    };
    let config = ServerConfig {
        listen,
        token,
        ..ServerConfig::default()
    };
    tiered_storage_server::check_listen(listen, config.token.as_deref())?;
    let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(data_dir)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    serve_on(listener, Arc::new(store), config, std::future::pending()).await?;
    println!("stopped");
    Ok(())
}
