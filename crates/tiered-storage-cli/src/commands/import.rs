//! import: records from a JSON-lines or CSV file, in two passes.
//!
//! Pass 1 reads the whole file and checks every line (shape, unknown fields, empty signature,
//! size, a signature twice in the file). Every bad line is reported with its line number; if
//! there is one, nothing is written. Pass 2 reads the file again and writes the records with
//! batched puts (`put_many`). A record whose signature is already stored is reported with its
//! line and skipped, so an import can be run again. Ids in the file are not kept: each record
//! gets a new id.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

use serde_json::json;
use tiered_storage::{Error as StoreError, Record, TransactionRecord};
use tiered_storage_server::api::parse_record;

use super::Ctx;
use crate::cli::Format;
use crate::error::{CliError, CliResult};
use crate::output::{check_csv_header, from_flat_row, print_csv, print_json, stdout_err};
use crate::progress;
use crate::store::{close, Store};

/// The input's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputFormat {
    Jsonl,
    Csv,
}

/// One line of the input: its number and the record, or why it is bad. `had_id` says the line
/// carried a non-null id (dropped: the record gets a new one).
struct Line {
    number: u64,
    parsed: Result<TransactionRecord, String>,
    had_id: bool,
}

/// Reads the input line by line (JSON lines) or record by record (CSV).
enum Lines {
    Jsonl {
        reader: BufReader<File>,
        number: u64,
    },
    Csv {
        records: csv::StringRecordsIntoIter<File>,
        header: Vec<String>,
    },
}

impl Lines {
    fn open(path: &Path, format: InputFormat) -> CliResult<Self> {
        let file = File::open(path).map_err(|e| CliError::file("read", path, e))?;
        match format {
            InputFormat::Jsonl => Ok(Lines::Jsonl {
                reader: BufReader::new(file),
                number: 0,
            }),
            InputFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
                let header: Vec<String> = reader
                    .headers()
                    .map_err(|e| CliError::file("read", path, e))?
                    .iter()
                    .map(|h| h.trim().to_owned())
                    .collect();
                check_csv_header(&header).map_err(|e| {
                    CliError::failed(format!(
                        "{} line 1 (header): {e}; nothing was written",
                        path.display()
                    ))
                })?;
                Ok(Lines::Csv {
                    records: reader.into_records(),
                    header,
                })
            }
        }
    }

    /// The next non-blank line, or `None` at the end. An I/O error ends the import.
    fn next_line(&mut self, path: &Path) -> CliResult<Option<Line>> {
        match self {
            Lines::Jsonl { reader, number } => loop {
                let mut buf = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| CliError::file("read", path, e))?;
                if n == 0 {
                    return Ok(None);
                }
                *number += 1;
                let text = match std::str::from_utf8(&buf) {
                    Ok(t) => t,
                    Err(e) => {
                        return Ok(Some(Line {
                            number: *number,
                            parsed: Err(format!("not UTF-8 ({e})")),
                            had_id: false,
                        }))
                    }
                };
                if text.trim().is_empty() {
                    continue;
                }
                let (parsed, had_id) = parse_json_record(text);
                return Ok(Some(Line {
                    number: *number,
                    parsed,
                    had_id,
                }));
            },
            Lines::Csv { records, header } => match records.next() {
                None => Ok(None),
                Some(Ok(row)) => {
                    let number = row.position().map_or(0, |p| p.line());
                    let had_id = row
                        .iter()
                        .zip(header.iter())
                        .any(|(v, h)| h == "id" && !v.trim().is_empty());
                    Ok(Some(Line {
                        number,
                        parsed: from_flat_row(header, &row),
                        had_id,
                    }))
                }
                Some(Err(e)) => {
                    let number = e.position().map_or(0, |p| p.line());
                    match e.kind() {
                        csv::ErrorKind::Io(_) => Err(CliError::file("read", path, e)),
                        _ => Ok(Some(Line {
                            number,
                            parsed: Err(e.to_string()),
                            had_id: false,
                        })),
                    }
                }
            },
        }
    }
}

/// Parse one JSON line as the HTTP API does (unknown fields refused at every level), then
/// clear its id. Returns whether the line carried an id.
fn parse_json_record(text: &str) -> (Result<TransactionRecord, String>, bool) {
    match parse_record(text.as_bytes()) {
        Ok(mut r) => {
            let had_id = r.id.is_some();
            r.id = None;
            (Ok(r), had_id)
        }
        Err(e) => (Err(format!("not a record: {e}")), false),
    }
}

/// What pass 1 decided about the file.
#[derive(Default)]
struct Plan {
    /// Good records to write.
    good: u64,
    /// Bad lines found.
    bad: u64,
    /// Lines that carried an id.
    had_id: u64,
}

/// Pass 1: check every line; report each bad one on stderr. A signature already in the store
/// is not a bad line: pass 2's put reports it and skips the record.
fn check(max_bytes: usize, path: &Path, format: InputFormat) -> CliResult<Plan> {
    let mut lines = Lines::open(path, format)?;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut plan = Plan::default();
    let mut buf = Vec::new();
    let bar = progress::bar(None, "checking", "lines");
    let mut checked = 0u64;
    while let Some(line) = lines.next_line(path)? {
        checked += 1;
        if checked.is_multiple_of(1024) {
            progress::update(&bar, checked, "");
        }
        plan.had_id += u64::from(line.had_id);
        let problem = match line.parsed {
            Err(e) => Some(e),
            Ok(record) => {
                buf.clear();
                match record.signature() {
                    Some("") => Some(
                        "transaction_signature is empty (use null for a trade not sent yet)"
                            .to_owned(),
                    ),
                    _ if record.encode(&mut buf).is_err() => Some("cannot be encoded".to_owned()),
                    _ if buf.len() > max_bytes => Some(format!(
                        "the record is {} bytes encoded, over max_record_bytes ({max_bytes})",
                        buf.len()
                    )),
                    Some(sig) => match seen.get(sig) {
                        Some(first) => Some(format!(
                            "transaction_signature {sig} is also on line {first}"
                        )),
                        None => {
                            seen.insert(sig.to_owned(), line.number);
                            plan.good += 1;
                            None
                        }
                    },
                    None => {
                        plan.good += 1;
                        None
                    }
                }
            }
        };
        if let Some(problem) = problem {
            plan.bad += 1;
            let text = format!(
                "{}:{}: {}",
                path.display(),
                line.number,
                crate::error::one_line(&problem)
            );
            bar.suspend(|| eprintln!("{text}"));
        }
    }
    bar.finish_and_clear();
    Ok(plan)
}

/// What pass 2 wrote.
#[derive(Default)]
struct Written {
    imported: u64,
    first_id: Option<i64>,
    last_id: Option<i64>,
    failed: u64,
    existing: u64,
}

/// Pass 2: write the good records in batches of `batch`.
/// One batch of pass 2: the records and, beside them, their line numbers; and whether the
/// file ended.
struct Batch {
    records: Vec<TransactionRecord>,
    numbers: Vec<u64>,
    done: bool,
}

/// Read up to `size` records of pass 2.
fn read_batch(lines: &mut Lines, path: &Path, size: usize, written: u64) -> CliResult<Batch> {
    let mut batch = Batch {
        records: Vec::with_capacity(size),
        numbers: Vec::with_capacity(size),
        done: false,
    };
    while batch.records.len() < size {
        let Some(line) = lines.next_line(path)? else {
            batch.done = true;
            break;
        };
        match line.parsed {
            Ok(r) => {
                batch.records.push(r);
                batch.numbers.push(line.number);
            }
            Err(e) => {
                // The file changed since pass 1.
                return Err(CliError::failed(format!(
                    "{}:{}: {e} (the file changed during the import; {written} records were written)",
                    path.display(),
                    line.number,
                )));
            }
        }
    }
    Ok(batch)
}

/// Pass 2: write the records through `put_many`, a batch at a time. The next batch is read and
/// parsed while the writer commits the current one.
async fn write(
    store: &Store,
    path: &Path,
    format: InputFormat,
    plan: &Plan,
    batch: usize,
) -> CliResult<Written> {
    let mut lines = Lines::open(path, format)?;
    let mut out = Written::default();
    let bar = progress::bar(Some(plan.good), "importing", "records");
    let mut current = read_batch(&mut lines, path, batch, 0)?;
    while !current.records.is_empty() {
        let written = out.imported;
        let more = !current.done;
        let (results, next) = tokio::join!(store.put_many(&current.records), async {
            if more {
                read_batch(&mut lines, path, batch, written)
            } else {
                Ok(Batch {
                    records: Vec::new(),
                    numbers: Vec::new(),
                    done: true,
                })
            }
        });
        let results = results.map_err(|e| {
            CliError::store(
                &format!("import (after {} records were written)", out.imported),
                e,
            )
        })?;
        for (number, result) in current.numbers.iter().zip(results) {
            match result {
                Ok(id) => {
                    out.imported += 1;
                    out.first_id = Some(out.first_id.map_or(id, |f| f.min(id)));
                    out.last_id = Some(out.last_id.map_or(id, |l| l.max(id)));
                }
                Err(StoreError::DuplicateSignature { existing_id, .. }) => {
                    out.existing += 1;
                    let text = format!(
                        "{}:{number}: already stored as id {existing_id}; skipped",
                        path.display()
                    );
                    bar.suspend(|| eprintln!("{text}"));
                }
                Err(e) => {
                    out.failed += 1;
                    let text = format!(
                        "{}:{number}: {}",
                        path.display(),
                        crate::error::one_line(&e.to_string())
                    );
                    bar.suspend(|| eprintln!("{text}"));
                }
            }
        }
        let skipped = format!("{} already stored", out.existing);
        progress::update(&bar, out.imported + out.existing + out.failed, &skipped);
        current = next?;
    }
    bar.finish_and_clear();
    Ok(out)
}

pub async fn import(ctx: &Ctx, path: &Path, batch: u64) -> CliResult<()> {
    ctx.local_only("import")?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("jsonl" | "ndjson") => InputFormat::Jsonl,
        Some("csv") => InputFormat::Csv,
        _ => {
            return Err(CliError::usage(format!(
                "{}: the extension picks the format: .jsonl (or .ndjson) or .csv",
                path.display()
            )))
        }
    };
    if !path.is_file() {
        return Err(CliError::file("read", path, "no such file"));
    }
    let store = ctx.store.open_read_write().await?;
    let started = Instant::now();
    let result = async {
        let plan = check(store.config().max_record_bytes, path, format)?;
        if plan.bad > 0 {
            return Err(CliError::failed(format!(
                "{}: {} bad lines (listed above); nothing was written",
                path.display(),
                plan.bad
            )));
        }
        let written = write(&store, path, format, &plan, batch as usize).await?;
        Ok((plan, written))
    }
    .await;
    close(store).await?;
    let (plan, w) = result?;
    let elapsed = started.elapsed();
    let skipped = w.existing;
    let mut out = std::io::stdout().lock();
    let ids = match (w.first_id, w.last_id) {
        (Some(a), Some(b)) if a == b => format!(" (id {a})"),
        (Some(a), Some(b)) => format!(" (ids {a}..{b})"),
        _ => String::new(),
    };
    match ctx.format {
        Format::Json => print_json(
            &mut out,
            &json!({
                "imported": w.imported,
                "first_id": w.first_id,
                "last_id": w.last_id,
                "skipped_existing": skipped,
                "failed": w.failed,
                "ids_reassigned": plan.had_id,
                "elapsed_ms": elapsed.as_millis() as u64,
            }),
        )?,
        Format::Csv => print_csv(
            &mut out,
            &[
                [
                    "imported",
                    "first_id",
                    "last_id",
                    "skipped_existing",
                    "failed",
                    "ids_reassigned",
                ]
                .map(str::to_owned)
                .to_vec(),
                vec![
                    w.imported.to_string(),
                    w.first_id.map(|i| i.to_string()).unwrap_or_default(),
                    w.last_id.map(|i| i.to_string()).unwrap_or_default(),
                    skipped.to_string(),
                    w.failed.to_string(),
                    plan.had_id.to_string(),
                ],
            ],
        )?,
        Format::Table => {
            writeln!(
                out,
                "imported {} record{}{ids} from {} in {:.1} s ({} records/s); {} already stored, skipped",
                w.imported,
                if w.imported == 1 { "" } else { "s" },
                path.display(),
                elapsed.as_secs_f64(),
                progress::rate(w.imported, elapsed),
                skipped
            )
            .map_err(stdout_err)?;
            if plan.had_id > 0 {
                writeln!(
                    out,
                    "note: {} {} an id; ids are assigned by the store, so those records have new ids",
                    plan.had_id,
                    if plan.had_id == 1 { "line carried" } else { "lines carried" }
                )
                .map_err(stdout_err)?;
            }
        }
    }
    if w.failed > 0 {
        return Err(CliError::new(
            crate::error::Kind::Store,
            format!("{} records could not be written (listed above)", w.failed),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn unknown_fields_are_refused_at_any_depth_but_not_in_maps() {
        let mut r = serde_json::to_value(TransactionRecord::default()).unwrap();
        r["scored_candidate"]["feature_scores"]["anything"] = json!(1.0);
        r["market_context_snapshot"]["sol_usd"] = json!(2.0);
        let (parsed, _) = parse_json_record(&r.to_string());
        assert!(parsed.is_ok(), "{parsed:?}");
        r["scored_candidate"]["base"]["mintt"] = json!("x");
        let (parsed, _) = parse_json_record(&r.to_string());
        let err = parsed.unwrap_err();
        assert!(err.contains("mintt"), "{err}");
    }

    #[test]
    fn ids_in_the_input_are_dropped_and_noted() {
        let mut r = serde_json::to_value(TransactionRecord::default()).unwrap();
        r["id"] = json!(5);
        let (parsed, had_id) = parse_json_record(&r.to_string());
        assert!(had_id);
        assert_eq!(parsed.unwrap().id, None);
        r["id"] = Value::Null;
        let (parsed, had_id) = parse_json_record(&r.to_string());
        assert!(!had_id);
        assert!(parsed.is_ok());
    }
}
