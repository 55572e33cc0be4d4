//! The read commands: get, sig, scan, latest, tail and stats, on the files (read-only) or via
//! --url.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use tiered_storage::{ScanRange, TransactionRecord};

use super::{scan_range, Ctx};
use crate::cli::{Format, ScanArgs, TailArgs};
use crate::error::{CliError, CliResult};
use crate::output::{self, print_csv, print_json, RecordPrinter};
use crate::remote::path_segment;
use crate::stats;

/// Records per page when scanning the files.
const PAGE: usize = 1024;
/// Records per page asked of the service (its cap).
const REMOTE_PAGE: u64 = 1000;

pub async fn get(ctx: &Ctx, id: i64) -> CliResult<()> {
    let record = match ctx.remote()? {
        Some(remote) => remote.record(&format!("/v1/records/{id}"))?,
        None => {
            let store = ctx.store.open_read_only().await?;
            store
                .get(id)
                .await
                .map_err(|e| CliError::store(&format!("get {id}"), e))?
        }
    };
    let record = record.ok_or_else(|| CliError::failed(format!("no record with id {id}")))?;
    RecordPrinter::new(std::io::stdout().lock(), ctx.format).single(&record)
}

pub async fn sig(ctx: &Ctx, signature: &str) -> CliResult<()> {
    if signature.is_empty() {
        return Err(CliError::usage("the signature is empty"));
    }
    let record = match ctx.remote()? {
        Some(remote) => remote.record(&format!(
            "/v1/records/by-signature/{}",
            path_segment(signature)
        ))?,
        None => {
            let store = ctx.store.open_read_only().await?;
            store
                .get_by_signature(signature)
                .await
                .map_err(|e| CliError::store("sig", e))?
        }
    };
    let record =
        record.ok_or_else(|| CliError::failed(format!("no record with signature {signature}")))?;
    RecordPrinter::new(std::io::stdout().lock(), ctx.format).single(&record)
}

pub async fn scan(ctx: &Ctx, args: &ScanArgs) -> CliResult<()> {
    // Parsed here for both modes, so a bad --since is a usage error before any I/O.
    let range = scan_range(&args.filters)?;
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut printer = RecordPrinter::new(std::io::stdout().lock(), ctx.format);
    match ctx.remote()? {
        Some(remote) => {
            let mut query: Vec<(&str, String)> = Vec::new();
            let f = &args.filters;
            for (key, value) in [
                ("since", &f.since),
                ("until", &f.until),
                ("mint", &f.mint),
                ("program", &f.program),
                ("outcome", &f.outcome),
            ] {
                if let Some(v) = value {
                    query.push((key, v.clone()));
                }
            }
            let mut after: Option<String> = None;
            while printer.printed() < limit {
                let mut q = query.clone();
                q.push((
                    "limit",
                    (limit - printer.printed()).min(REMOTE_PAGE).to_string(),
                ));
                if let Some(a) = &after {
                    q.push(("after", a.clone()));
                }
                let (records, next) = remote.records_page(&q)?;
                for r in &records {
                    if printer.printed() >= limit {
                        break;
                    }
                    printer.record(r)?;
                }
                match next {
                    Some(n) if !records.is_empty() => after = Some(n),
                    _ => break,
                }
            }
        }
        None => {
            let store = ctx.store.open_read_only().await?;
            let mut cursor = store
                .scan(range, PAGE)
                .map_err(|e| CliError::store("scan", e))?;
            'pages: while let Some(page) = cursor
                .next_page()
                .await
                .map_err(|e| CliError::store("scan", e))?
            {
                for r in &page {
                    if printer.printed() >= limit {
                        break 'pages;
                    }
                    printer.record(r)?;
                }
            }
        }
    }
    finish_stream(printer, ctx.format)
}

/// `latest N`: the N newest records by timestamp, newest first (`latest` on the files;
/// `GET /v1/records?newest_first=true&limit=N` through --url, one page of at most 1,000).
pub async fn latest(ctx: &Ctx, n: u64) -> CliResult<()> {
    let records = match ctx.remote()? {
        Some(remote) => {
            if n > REMOTE_PAGE {
                return Err(CliError::usage(format!(
                    "latest {n}: at most {REMOTE_PAGE} through --url (the service's page limit)"
                )));
            }
            let q = [
                ("newest_first", "true".to_owned()),
                ("limit", n.to_string()),
            ];
            remote.records_page(&q)?.0
        }
        None => {
            let store = ctx.store.open_read_only().await?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            store
                .latest(n)
                .await
                .map_err(|e| CliError::store("latest", e))?
        }
    };
    let mut printer = RecordPrinter::new(std::io::stdout().lock(), ctx.format);
    for r in &records {
        printer.record(r)?;
    }
    finish_stream(printer, ctx.format)
}

/// End a record stream: CSV prints its header even for no rows; a table says "no records".
fn finish_stream<W: Write>(mut printer: RecordPrinter<W>, format: Format) -> CliResult<()> {
    if printer.printed() == 0 {
        match format {
            Format::Csv => {
                let header: Vec<String> = output::COLUMNS.iter().map(|c| c.to_string()).collect();
                let mut out = std::io::stdout().lock();
                print_csv(&mut out, &[header])?;
            }
            Format::Table => eprintln!("no matching records"),
            Format::Json => {}
        }
    }
    printer.flush()
}

pub async fn tail(ctx: &Ctx, args: &TailArgs) -> CliResult<()> {
    let interval = Duration::from_millis(args.interval_ms);
    let mut printer = RecordPrinter::new(std::io::stdout().lock(), ctx.format);
    // Installed now, so a Ctrl-C that comes while the store opens still ends tail with 0.
    let stop = super::stop_signal()?;
    tokio::pin!(stop);
    match ctx.remote()? {
        Some(remote) => {
            let remote = std::sync::Arc::new(remote);
            let lines = args.lines.max(1);
            let r = remote.clone();
            let recent = tokio::select! {
                res = tokio::task::spawn_blocking(move || r.recent(lines)) => joined(res)?,
                _ = &mut stop => return printer.flush(),
            };
            let mut last = recent.iter().filter_map(|r| r.id).max().unwrap_or(0);
            print_newest_first(&mut printer, &recent, args.lines)?;
            loop {
                let r = remote.clone();
                let after = last;
                let fetch = tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    let mut cursor = after;
                    loop {
                        let q = [
                            ("after", cursor.to_string()),
                            ("limit", REMOTE_PAGE.to_string()),
                        ];
                        let (records, next) = r.records_page(&q)?;
                        let max = records.iter().filter_map(|r| r.id).max();
                        let full = records.len() as u64 >= REMOTE_PAGE;
                        out.extend(records);
                        match max {
                            Some(m) if full && next.is_some() => cursor = m,
                            _ => return Ok(out),
                        }
                    }
                });
                let records: Vec<TransactionRecord> = tokio::select! {
                    res = fetch => joined(res)?,
                    _ = &mut stop => return printer.flush(),
                };
                for r in &records {
                    printer.record(r)?;
                    last = last.max(r.id.unwrap_or(last));
                }
                printer.flush()?;
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = &mut stop => return printer.flush(),
                }
            }
        }
        None => {
            let store = ctx.store.open_read_only().await?;
            let recent = store
                .recently_put(args.lines.max(1))
                .await
                .map_err(|e| CliError::store("tail", e))?;
            let mut last = recent.iter().filter_map(|r| r.id).max().unwrap_or(0);
            print_newest_first(&mut printer, &recent, args.lines)?;
            loop {
                let range = ScanRange::default().with_ids(last.saturating_add(1)..=i64::MAX);
                let mut cursor = store
                    .scan(range, PAGE)
                    .map_err(|e| CliError::store("tail", e))?;
                loop {
                    let page = tokio::select! {
                        page = cursor.next_page() => page.map_err(|e| CliError::store("tail", e))?,
                        _ = &mut stop => return printer.flush(),
                    };
                    let Some(page) = page else { break };
                    for r in &page {
                        printer.record(r)?;
                        last = last.max(r.id.unwrap_or(last));
                    }
                }
                printer.flush()?;
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = &mut stop => return printer.flush(),
                }
            }
        }
    }
}

/// Print the last `n` of `recent` (newest first) oldest first, as `tail` does.
fn print_newest_first<W: Write>(
    printer: &mut RecordPrinter<W>,
    recent: &[TransactionRecord],
    n: usize,
) -> CliResult<()> {
    for r in recent.iter().take(n).rev() {
        printer.record(r)?;
    }
    printer.flush()
}

fn joined<T>(res: Result<CliResult<T>, tokio::task::JoinError>) -> CliResult<T> {
    res.map_err(|e| CliError::remote(format!("request task failed: {e}")))?
}

pub async fn stats_cmd(ctx: &Ctx) -> CliResult<()> {
    let view: Value = match ctx.remote()? {
        Some(remote) => remote
            .get_json("/v1/stats")?
            .ok_or_else(|| CliError::remote("GET /v1/stats: not found"))?,
        None => {
            let store = ctx.store.open_read_only().await?;
            stats::local_view(&store).await?
        }
    };
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Json => print_json(&mut out, &view),
        Format::Csv => print_csv(&mut out, &stats::tier_rows(&view)),
        Format::Table => stats::print_table_view(&mut out, &view),
    }?;
    out.flush().map_err(output::stdout_err)
}
