//! The command line: global options, subcommands and their flags (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, printed at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  not found (get, sig), or a check failed (verify, config check, import's bad lines,
     rebuild-catalog not confirmed)
  2  usage: unknown option, bad value, missing argument, --yes needed without a terminal,
     serve on a non-loopback address without --token-file, or an invalid or non-read-only
     SQL statement (sql)
  3  the data directory is owned by another process (stop it, or use --url for reads)
  4  invalid configuration (--config file or a value in it)
  5  a file given on the command line cannot be read or written (import, export, --token-file)
  6  the service behind --url is unreachable or answered with an error
  7  the store reported an error (I/O, SQLite, damaged file, ...)
  101 internal error (a bug: please report the line printed)

Read commands (stats, get, sig, scan, latest, tail, sql, export, verify) open the store read-only, so they
work beside a running owner such as `tiered-storage serve` or the bot. import, archive,
compact, rebuild-catalog and serve open it read-write and fail when another process owns it.";

/// Operate a tiered-storage data directory: look at it, query it, move and check its tiers,
/// load and dump records, or serve it over HTTP.
#[derive(Debug, Parser)]
#[command(name = "tiered-storage", version, after_long_help = EXIT_CODES_HELP, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The store's data directory (overrides `data_dir` of --config). Default: the config's,
    /// else `$TIERED_STORAGE_DATA_DIR`, else `tiered_storage_data`.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// A TOML config file (see `config default`); --data-dir overrides its data_dir.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Read from a running service instead of opening the files (stats, get, sig, scan,
    /// latest, tail, sql), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL", global = true)]
    pub url: Option<String>,

    /// A file holding the bearer token (trimmed): sent to the service with --url; for `serve`,
    /// the token that guards writes and admin routes (must not be empty).
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,

    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people (a single record: indented JSON).
    Table,
    /// JSON: one object, or one record per line for streams.
    Json,
    /// A header line, then flat comma-separated columns.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-tier records, bytes, hit rates and latencies, archival lag, cold files by day and
    /// active alerts. Read-only.
    Stats,
    /// Print the record with this id. Exit 1 when there is none. Read-only.
    Get {
        /// The record id.
        id: i64,
    },
    /// Print the record with this transaction signature. Exit 1 when there is none. Read-only.
    Sig {
        /// The transaction signature.
        signature: String,
    },
    /// Stream the matching records in id order. Read-only.
    Scan(ScanArgs),
    /// Print the newest records, then follow new records as they are written, until Ctrl-C or
    /// SIGTERM (exit 0). Read-only.
    Tail(TailArgs),
    /// Print the N newest records (by timestamp_decision_made, ties by id), newest first, from
    /// every tier; --format json: one JSON record per line (as scan). Read-only.
    Latest {
        /// How many records (with --url at most 1000).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
    },
    /// Run one read-only SQL statement over the table `records` (every record once, newest
    /// version, across hot, warm and cold): one column per archive column, plus `ts_ms`
    /// (Unix ms) and `pnl` (Profit v, Loss -|v|, Neutral 0, else NULL). Prints a header line,
    /// then the rows (csv, table; json: one object per row). Read-only.
    Sql {
        /// The statement, e.g. "SELECT date(ts_ms/1000,'unixepoch') d, sum(pnl) FROM records
        /// GROUP BY d".
        query: String,
    },
    /// Archive warm records older than a duration to cold Parquet files now (read-write).
    Archive {
        /// Records whose timestamp_decision_made is older than this: `0s`, `90m`, `7d`, ...
        /// Default: the config's tiering.warm_to_cold_age.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
    /// Merge small or mostly-dead cold files now (read-write).
    Compact,
    /// Check every warm page and every cold file against the catalog; exit 1 listing each
    /// problem. Read-only.
    Verify,
    /// Rebuild the cold catalog from the Parquet files' footers (read-write). Asks first.
    RebuildCatalog {
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Write matching records to FILE.parquet (the archive's columns), .csv or .jsonl.
    /// Read-only.
    Export(ExportArgs),
    /// Load records from FILE.jsonl (one record per line, the HTTP shape) or FILE.csv (the
    /// export's columns) through batched puts. Every line is checked first; if any is bad,
    /// each is reported with its line number and nothing is written. Records get new ids.
    Import {
        /// The file to load (.jsonl, .ndjson or .csv).
        file: PathBuf,
        /// Records per batched put.
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch: u64,
    },
    /// Print a commented default config, or check a config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Serve the store over HTTP (JSON API, /metrics, dashboard) until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
}

/// Filters shared by scan and export.
#[derive(Debug, Clone, Args)]
pub struct Filters {
    /// Records at or after this time: RFC 3339 (2026-11-30T12:00:00Z) or relative (1h, 7d:
    /// now minus that).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Records at or before this time: RFC 3339 or relative.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this token mint.
    #[arg(long)]
    pub mint: Option<String>,
    /// Only this launch program.
    #[arg(long)]
    pub program: Option<String>,
    /// Only this outcome kind (Profit, Loss, Neutral, PendingConfirmation, ...).
    #[arg(long)]
    pub outcome: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// Stop after this many records.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Newest records printed before following.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub lines: usize,
    /// Milliseconds between polls for new records.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub interval_ms: u64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// The output file; its extension picks the format: .parquet, .csv or .jsonl.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration as commented TOML.
    Default,
    /// Check a TOML config file; exit 1 naming the field on error.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. A non-loopback address needs --token-file (the global option,
    /// also accepted after `serve`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Require the token for reads too (needs --token-file).
    #[arg(long)]
    pub token_for_reads: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn latest_takes_a_positive_count() {
        let cli =
            Cli::try_parse_from(["tiered-storage", "latest", "20", "--format", "json"]).unwrap();
        assert!(matches!(cli.command, Command::Latest { n: 20 }));
        assert!(Cli::try_parse_from(["tiered-storage", "latest", "0"]).is_err());
        assert!(Cli::try_parse_from(["tiered-storage", "latest"]).is_err());
    }

    #[test]
    fn sql_takes_the_statement_as_one_argument() {
        let cli = Cli::try_parse_from([
            "tiered-storage",
            "sql",
            "SELECT count(*) FROM records",
            "--format",
            "csv",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Sql { ref query } if query == "SELECT count(*) FROM records")
        );
        assert_eq!(cli.format, Format::Csv);
    }

    #[test]
    fn format_is_accepted_before_and_after_the_subcommand() {
        let before = Cli::try_parse_from(["tiered-storage", "--format", "json", "stats"]).unwrap();
        assert_eq!(before.format, Format::Json);
        let after = Cli::try_parse_from(["tiered-storage", "stats", "--format", "csv"]).unwrap();
        assert_eq!(after.format, Format::Csv);
    }
}
