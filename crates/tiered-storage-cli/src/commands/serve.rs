//! serve: open the store read-write and run the HTTP service until SIGTERM or Ctrl-C.

use std::sync::Arc;

use tiered_storage_server::{check_listen, serve_on, ServeError, ServerConfig};

use super::Ctx;
use crate::cli::ServeArgs;
use crate::error::{CliError, CliResult, Kind};
use crate::remote::read_token;

pub async fn serve(ctx: &Ctx, args: &ServeArgs) -> CliResult<()> {
    ctx.local_only("serve")?;
    let stop = super::stop_signal()?;
    let token = ctx.token_file.as_deref().map(read_token).transpose()?;
    if args.token_for_reads && token.is_none() {
        return Err(CliError::usage("--token-for-reads needs --token-file"));
    }
    // Refused before anything is opened: a non-loopback address without a token, a bad token.
    check_listen(args.listen, token.as_deref()).map_err(|e| match e {
        ServeError::InsecureListen { .. } => {
            CliError::usage(format!("{e}; pass --token-file FILE"))
        }
        other => CliError::new(Kind::File, format!("--token-file: {other}")),
    })?;
    // Batch bodies are large allocations: give their memory back while the service idles.
    tiered_storage_server::trim_freed_memory_while_serving();
    let config = ServerConfig {
        listen: args.listen,
        token,
        token_for_reads: args.token_for_reads,
        ..ServerConfig::default()
    };
    let store = Arc::new(ctx.store.open_read_write().await?);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            let _ = store.shutdown().await;
            return Err(CliError::new(
                Kind::Store,
                format!("cannot listen on {}: {e}", args.listen),
            ));
        }
    };
    // The bound address (with --listen HOST:0, the port the system chose), for scripts.
    let addr = listener.local_addr().unwrap_or(args.listen);
    eprintln!(
        "tiered-storage: serving {} on http://{addr} (SIGTERM or Ctrl-C stops)",
        store.config().data_dir.display()
    );
    serve_on(listener, store, config, stop)
        .await
        .map_err(|e| CliError::new(Kind::Store, format!("serve: {e}")))
}
