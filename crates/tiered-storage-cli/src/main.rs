//! `tiered-storage`: the operator's command for a tiered-storage data directory.
//!
//! Every error is one `error: ...` line on stderr and a documented exit code (`--help`); a
//! panic is reported the same way, without a backtrace.

mod cli;
mod commands;
mod error;
mod output;
mod progress;
mod remote;
mod stats;
mod store;
mod timearg;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::commands::Ctx;
use crate::error::{one_line, CliResult, Kind};
use crate::store::StoreOptions;

/// A panic prints one line (no backtrace) and the process exits 101, Rust's panic code.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {}{place} (a bug; please report this line)",
            one_line(&message)
        );
    }));
}

async fn run(cli: Cli) -> CliResult<()> {
    let ctx = Ctx {
        store: StoreOptions {
            data_dir: cli.data_dir,
            config: cli.config,
        },
        url: cli.url,
        token_file: cli.token_file,
        format: cli.format,
    };
    match &cli.command {
        Command::Stats => commands::read::stats_cmd(&ctx).await,
        Command::Get { id } => commands::read::get(&ctx, *id).await,
        Command::Sig { signature } => commands::read::sig(&ctx, signature).await,
        Command::Scan(args) => commands::read::scan(&ctx, args).await,
        Command::Latest { n } => commands::read::latest(&ctx, *n).await,
        Command::Tail(args) => commands::read::tail(&ctx, args).await,
        Command::Sql { query } => commands::sql::sql(&ctx, query).await,
        Command::Archive { older_than } => {
            commands::moves::archive(&ctx, older_than.as_deref()).await
        }
        Command::Compact => commands::moves::compact(&ctx).await,
        Command::Verify => commands::moves::verify(&ctx).await,
        Command::RebuildCatalog { yes } => commands::moves::rebuild_catalog(&ctx, *yes).await,
        Command::Export(args) => commands::export::export(&ctx, args).await,
        Command::Import { file, batch } => commands::import::import(&ctx, file, *batch).await,
        Command::Config(ConfigCommand::Default) => commands::config::default_cmd(),
        Command::Config(ConfigCommand::Check { file }) => commands::config::check_cmd(&ctx, file),
        Command::Serve(args) => commands::serve::serve(&ctx, args).await,
    }
}

fn main() {
    install_panic_hook();
    // Usage errors print clap's message and exit 2; --help and --version exit 0.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "error: cannot start the async runtime: {}",
                one_line(&e.to_string())
            );
            std::process::exit(Kind::Store.exit_code());
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) if e.kind == Kind::PipeClosed => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.kind.exit_code()
        }
    };
    // The store's threads end with the process; everything durable was flushed by the command.
    runtime.shutdown_background();
    std::process::exit(code);
}
