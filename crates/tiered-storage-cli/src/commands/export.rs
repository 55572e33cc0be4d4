//! export: matching records to a Parquet (the archive's columns), CSV or JSON-lines file.
//!
//! The file is written under a temporary name in the target's directory, synced, then renamed
//! over the target, so a failed or interrupted export never leaves a partial file under the
//! target's name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use serde_json::json;
use tiered_storage::TransactionRecord;

use super::{scan_range, Ctx};
use crate::cli::{ExportArgs, Format};
use crate::error::{CliError, CliResult, Kind};
use crate::output::{flat_row, print_json, stdout_err, COLUMNS};
use crate::progress;
use crate::stats::human_bytes;

const PAGE: usize = 4096;

/// An export file format, from the target's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    Csv,
    Jsonl,
}

impl FileFormat {
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            _ => None,
        }
    }
}

/// The CSV and JSON-lines writers (Parquet goes through the library's `export_as`).
enum Sink {
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Jsonl(BufWriter<File>),
}

impl Sink {
    fn new(format: FileFormat, file: File) -> Result<Self, String> {
        Ok(match format {
            FileFormat::Parquet => return Err("Parquet is written by the library".to_owned()),
            FileFormat::Csv => {
                let mut w = csv::Writer::from_writer(BufWriter::new(file));
                w.write_record(COLUMNS).map_err(|e| e.to_string())?;
                Sink::Csv(Box::new(w))
            }
            FileFormat::Jsonl => Sink::Jsonl(BufWriter::new(file)),
        })
    }

    fn write(&mut self, page: &[TransactionRecord]) -> Result<(), String> {
        match self {
            Sink::Csv(w) => {
                for r in page {
                    w.write_record(flat_row(r)).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Sink::Jsonl(w) => {
                for r in page {
                    serde_json::to_writer(&mut *w, r).map_err(|e| e.to_string())?;
                    w.write_all(b"\n").map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// Flush everything to the file and sync it.
    fn finish(self) -> Result<(), String> {
        let file = match self {
            Sink::Csv(w) => w
                .into_inner()
                .map_err(|e| e.to_string())?
                .into_inner()
                .map_err(|e| e.to_string())?,
            Sink::Jsonl(w) => w.into_inner().map_err(|e| e.to_string())?,
        };
        file.sync_all().map_err(|e| e.to_string())
    }
}

pub async fn export(ctx: &Ctx, args: &ExportArgs) -> CliResult<()> {
    ctx.local_only("export")?;
    let target = &args.to;
    let format = FileFormat::of(target).ok_or_else(|| {
        CliError::usage(format!(
            "--to {}: the extension picks the format: .parquet, .csv or .jsonl",
            target.display()
        ))
    })?;
    let range = scan_range(&args.filters)?;
    let store = ctx.store.open_read_only().await?;
    if format == FileFormat::Parquet {
        // The library's export: the archive's columns, temp file, fsync, rename.
        let started = Instant::now();
        let report = store
            .export_as(range, target, tiered_storage::ExportFormat::Parquet)
            .await
            .map_err(|e| match e {
                tiered_storage::Error::Io { op, path, source } => CliError::file(op, &path, source),
                e => CliError::store("export", e),
            })?;
        return print_report(ctx, report.records, target, report.bytes, started.elapsed());
    }
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tiered-storage-export-").suffix(".tmp");
    // A temporary file is private (0600); the export gets the mode any new file gets (0666
    // less the umask), as if it had been created under its own name.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let temp = builder
        .tempfile_in(&dir)
        .map_err(|e| CliError::file("create a file in", &dir, e))?;
    let file = temp
        .as_file()
        .try_clone()
        .map_err(|e| CliError::file("write", temp.path(), e))?;
    let write_err = |e: String| CliError::file("write", target, e);
    let mut sink = Sink::new(format, file).map_err(write_err)?;
    let started = Instant::now();
    let bar = progress::bar(None, "exporting", "records");
    let mut cursor = store
        .scan(range, PAGE)
        .map_err(|e| CliError::store("export", e))?;
    let mut count = 0u64;
    let outcome: CliResult<()> = async {
        while let Some(page) = cursor
            .next_page()
            .await
            .map_err(|e| CliError::store("export", e))?
        {
            sink.write(&page).map_err(write_err)?;
            count += page.len() as u64;
            progress::update(&bar, count, "");
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    // On error the temporary file is removed when `temp` drops; the target is untouched.
    outcome?;
    sink.finish().map_err(write_err)?;
    temp.persist(target).map_err(|e| {
        CliError::new(
            Kind::File,
            format!(
                "cannot rename the export to {}: {}",
                target.display(),
                e.error
            ),
        )
    })?;
    let bytes = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
    print_report(ctx, count, target, bytes, started.elapsed())
}

fn print_report(
    ctx: &Ctx,
    count: u64,
    target: &Path,
    bytes: u64,
    elapsed: std::time::Duration,
) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Json => print_json(
            &mut out,
            &json!({"exported": count, "file": target.display().to_string(), "bytes": bytes,
                    "elapsed_ms": elapsed.as_millis() as u64}),
        ),
        Format::Csv => crate::output::print_csv(
            &mut out,
            &[
                vec!["exported".into(), "file".into(), "bytes".into()],
                vec![
                    count.to_string(),
                    target.display().to_string(),
                    bytes.to_string(),
                ],
            ],
        ),
        Format::Table => writeln!(
            out,
            "exported {count} records to {} ({}) in {:.1} s ({} records/s)",
            target.display(),
            human_bytes(bytes),
            elapsed.as_secs_f64(),
            progress::rate(count, elapsed)
        )
        .map_err(stdout_err),
    }
}
