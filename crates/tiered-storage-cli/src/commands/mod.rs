//! One module per group of commands; `Ctx` carries the global options.

pub mod config;
pub mod export;
pub mod import;
pub mod moves;
pub mod read;
pub mod serve;
pub mod sql;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tiered_storage::ScanRange;

use crate::cli::{Filters, Format};
use crate::error::{CliError, CliResult, Kind};
use crate::remote::{read_token, Remote};
use crate::store::StoreOptions;
use crate::timearg;

/// The global options every command sees.
pub struct Ctx {
    pub store: StoreOptions,
    pub url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub format: Format,
}

impl Ctx {
    /// The service client when --url was given.
    pub fn remote(&self) -> CliResult<Option<Remote>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let token = self.token_file.as_deref().map(read_token).transpose()?;
        Remote::new(url, token).map(Some)
    }

    /// Refuse --url for a command that works on the files only.
    pub fn local_only(&self, command: &str) -> CliResult<()> {
        if self.url.is_some() {
            return Err(CliError::usage(format!(
                "{command} works on a data directory, not through --url (only stats, get, sig, scan, latest, tail and sql do)"
            )));
        }
        Ok(())
    }
}

/// Now, Unix milliseconds (the store's default clock).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The scan range of --since/--until/--mint/--program/--outcome.
pub fn scan_range(filters: &Filters) -> CliResult<ScanRange> {
    let now = now_ms();
    let since = filters
        .since
        .as_deref()
        .map(|s| timearg::time("--since", s, now))
        .transpose()?;
    let until = filters
        .until
        .as_deref()
        .map(|s| timearg::time("--until", s, now))
        .transpose()?;
    let mut range = ScanRange::default();
    if since.is_some() || until.is_some() {
        let (lo, hi) = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
        if lo > hi {
            return Err(CliError::usage(format!(
                "--since is after --until ({} > {})",
                crate::output::format_ms(lo),
                crate::output::format_ms(hi)
            )));
        }
        range = range.with_time(lo..=hi);
    }
    if let Some(mint) = &filters.mint {
        range = range.with_mint(mint.clone());
    }
    if let Some(program) = &filters.program {
        range = range.with_program(program.clone());
    }
    if let Some(outcome) = &filters.outcome {
        // The service refuses a kind that does not exist; so does the local path, rather than
        // answer "no matching records" for a typo.
        let kind = outcome
            .parse::<tiered_storage::OutcomeKind>()
            .map_err(|e| CliError::usage(format!("--outcome: {e}")))?;
        range = range.with_outcome(kind);
    }
    Ok(range)
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, so a signal
/// that arrives while the store opens is not lost (and does not kill the process half-open).
pub fn stop_signal() -> CliResult<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind| {
            signal(kind).map_err(|e| {
                CliError::new(Kind::Store, format!("cannot install a signal handler: {e}"))
            })
        };
        let mut term = install(SignalKind::terminate())?;
        let mut int = install(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
