//! archive, compact, verify and rebuild-catalog.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use serde_json::json;

use super::{now_ms, Ctx};
use crate::cli::Format;
use crate::error::{CliError, CliResult};
use crate::output::{print_csv, print_json, stdout_err};
use crate::progress;
use crate::stats::human_bytes;
use crate::store::close;
use crate::timearg;

/// Print a command's result: a line of text (table), one JSON object, or a CSV header and row.
fn report(ctx: &Ctx, line: &str, value: serde_json::Value) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Table => writeln!(out, "{line}").map_err(stdout_err),
        Format::Json => print_json(&mut out, &value),
        Format::Csv => {
            let obj = value.as_object().cloned().unwrap_or_default();
            let header: Vec<String> = obj.keys().cloned().collect();
            let row: Vec<String> = obj
                .values()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            print_csv(&mut out, &[header, row])
        }
    }
}

pub async fn archive(ctx: &Ctx, older_than: Option<&str>) -> CliResult<()> {
    ctx.local_only("archive")?;
    let config = ctx.store.config()?;
    let age_ms = match older_than {
        Some(text) => {
            let d = timearg::duration("--older-than", text)?;
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        }
        None => i64::try_from(config.tiering.warm_to_cold_age)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000),
    };
    let cutoff_ms = now_ms().saturating_sub(age_ms);
    let store = ctx.store.open_read_write().await?;
    let result = async {
        let due = store
            .count_due_for_archival(cutoff_ms)
            .await
            .map_err(|e| CliError::store("archive", e))?;
        let bar = progress::bar(Some(due), "archiving", "records");
        let b = bar.clone();
        let started = Instant::now();
        let report = store
            .archive_older_than_with_progress(cutoff_ms, move |p| {
                let files = format!(
                    "{} files written ({})",
                    p.files_written,
                    human_bytes(p.bytes_written)
                );
                progress::update(&b, p.records_archived, &files);
            })
            .await;
        bar.finish_and_clear();
        let report = report.map_err(|e| CliError::store("archive", e))?;
        let elapsed = started.elapsed();
        Ok::<_, CliError>((report, elapsed))
    }
    .await;
    close(store).await?;
    let (r, elapsed) = result?;
    let line = format!(
        "archived {} records older than {} into {} files ({}) in {:.1} s ({} records/s){}",
        r.archived,
        crate::output::format_ms(cutoff_ms),
        r.files,
        human_bytes(r.bytes),
        elapsed.as_secs_f64(),
        progress::rate(r.archived, elapsed),
        if r.superseded > 0 {
            format!("; {} changed meanwhile and stay in warm", r.superseded)
        } else {
            String::new()
        }
    );
    report(
        ctx,
        &line,
        json!({
            "archived": r.archived,
            "files": r.files,
            "bytes": r.bytes,
            "superseded": r.superseded,
            "cutoff_ms": cutoff_ms,
            "elapsed_ms": elapsed.as_millis() as u64,
            "cut_short": r.cut_short,
        }),
    )
}

pub async fn compact(ctx: &Ctx) -> CliResult<()> {
    ctx.local_only("compact")?;
    let store = ctx.store.open_read_write().await?;
    let started = Instant::now();
    let bar = progress::bar(Some(0), "compacting", "groups");
    let b = bar.clone();
    let result = store
        .compact_now_with_progress(move |p| {
            b.set_length(p.groups_total);
            let files = format!("{} files in, {} files written", p.files_in, p.files_out);
            progress::update(&b, p.groups_done, &files);
        })
        .await;
    bar.finish_and_clear();
    close(store).await?;
    let r = result.map_err(|e| CliError::store("compact", e))?;
    let elapsed = started.elapsed();
    let line = format!(
        "compacted {} files ({}) into {} files ({}), {} rows written, {} dead rows dropped, in {:.1} s",
        r.files_in,
        human_bytes(r.bytes_in),
        r.files_out,
        human_bytes(r.bytes_out),
        r.rows_written,
        r.rows_dropped,
        elapsed.as_secs_f64()
    );
    report(
        ctx,
        &line,
        json!({
            "files_in": r.files_in,
            "files_out": r.files_out,
            "rows_written": r.rows_written,
            "rows_dropped": r.rows_dropped,
            "bytes_in": r.bytes_in,
            "bytes_out": r.bytes_out,
            "groups_left": r.groups_left,
            "elapsed_ms": elapsed.as_millis() as u64,
        }),
    )
}

pub async fn verify(ctx: &Ctx) -> CliResult<()> {
    ctx.local_only("verify")?;
    let store = ctx.store.open_read_only().await?;
    let report = store
        .verify()
        .await
        .map_err(|e| CliError::store("verify", e))?;
    let mut problems: Vec<(String, String, String)> = report
        .warm_problems
        .iter()
        .map(|p| ("warm".to_owned(), "Corrupt".to_owned(), p.clone()))
        .collect();
    for p in &report.cold.problems {
        problems.push((
            p.path.display().to_string(),
            format!("{:?}", p.kind),
            p.detail.clone(),
        ));
    }
    // Replica copies (`cold.replicas`): missing, wrong size, or the replica unreachable.
    for p in &report.cold.replica_problems {
        problems.push((
            format!("replica {}: {}", p.replica, p.key),
            format!("{:?}", p.kind),
            p.detail.clone(),
        ));
    }
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Json => {
            let mut value = serde_json::to_value(&report)
                .map_err(|e| CliError::failed(format!("encoding the report: {e}")))?;
            if let Some(obj) = value.as_object_mut() {
                obj.insert("clean".into(), json!(problems.is_empty()));
            }
            print_json(&mut out, &value)?;
        }
        Format::Csv => {
            let mut rows = vec![vec![
                "where".to_owned(),
                "kind".to_owned(),
                "detail".to_owned(),
            ]];
            rows.extend(
                problems
                    .iter()
                    .map(|(a, b, c)| vec![a.clone(), b.clone(), c.clone()]),
            );
            print_csv(&mut out, &rows)?;
        }
        Format::Table => {
            for (place, kind, detail) in &problems {
                writeln!(out, "{place}: {kind}: {detail}").map_err(stdout_err)?;
            }
            writeln!(
                out,
                "checked the warm database and {} cold files ({} rows): {}",
                report.cold.files_checked,
                report.cold.rows_verified,
                if problems.is_empty() {
                    "no problem found".to_owned()
                } else {
                    format!("{} problems", problems.len())
                }
            )
            .map_err(stdout_err)?;
        }
    }
    out.flush().map_err(stdout_err)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "verify found {} problems (listed above)",
            problems.len()
        )))
    }
}

pub async fn rebuild_catalog(ctx: &Ctx, yes: bool) -> CliResult<()> {
    ctx.local_only("rebuild-catalog")?;
    let config = ctx.store.config()?;
    if !yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(CliError::usage(
                "rebuild-catalog asks for confirmation, and stdin is not a terminal: pass --yes",
            ));
        }
        eprint!(
            "Rebuild the cold catalog of {} from the Parquet files' footers? [y/N] ",
            config.data_dir.display()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::failed(format!("reading the answer: {e}")))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(CliError::failed("not confirmed; nothing was changed"));
        }
    }
    let store = ctx.store.open_read_write().await?;
    let result = store.rebuild_cold_catalog().await;
    close(store).await?;
    let r = result.map_err(|e| CliError::store("rebuild-catalog", e))?;
    let line = format!(
        "catalog rebuilt: {} files registered, {} missing files dropped, {} rows tombstoned",
        r.added, r.removed, r.tombstoned
    );
    report(
        ctx,
        &line,
        json!({"added": r.added, "removed": r.removed, "tombstoned": r.tombstoned}),
    )
}
