//! Printing records: JSON (the HTTP shape), CSV (the archive's flat columns) and aligned tables.

use std::collections::BTreeMap;
use std::io::Write;

use tiered_storage::{Outcome, PremintCandidate, ScoredCandidate, TransactionRecord};

use crate::cli::Format;
use crate::error::{CliError, CliResult, Kind};

/// The flat columns of a record, in the order and with the names of the archive's Parquet
/// columns. Maps are JSON objects in one cell; timestamps are Unix milliseconds.
pub const COLUMNS: [&str; 28] = [
    "id",
    "timestamp_decision_made",
    "transaction_signature",
    "mint",
    "creator",
    "program",
    "slot",
    "candidate_timestamp",
    "instruction_summary",
    "is_jito_bundle",
    "predicted_score",
    "feature_scores",
    "reason",
    "calculation_time_us",
    "anomaly_detected",
    "scored_timestamp",
    "buy_price_sol",
    "sell_price_sol",
    "amount_bought_tokens",
    "amount_sold_tokens",
    "initial_sol_spent",
    "final_sol_received",
    "timestamp_transaction_sent",
    "timestamp_outcome_evaluated",
    "outcome_kind",
    "outcome_value",
    "outcome_message",
    "market_context_snapshot",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn map_json(map: &BTreeMap<String, f64>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

/// The record as one row of [`COLUMNS`]; an empty cell is null.
pub fn flat_row(r: &TransactionRecord) -> Vec<String> {
    let base = &r.scored_candidate.base;
    let sc = &r.scored_candidate;
    let (outcome_value, outcome_message) = match &r.actual_outcome {
        Outcome::Profit(v) | Outcome::Loss(v) => (v.to_string(), String::new()),
        Outcome::ExecutionError(m) | Outcome::VerificationFailed(m) => (String::new(), m.clone()),
        _ => (String::new(), String::new()),
    };
    vec![
        opt(&r.id),
        r.timestamp_decision_made.to_string(),
        opt(&r.transaction_signature),
        base.mint.clone(),
        base.creator.clone(),
        base.program.clone(),
        base.slot.to_string(),
        base.timestamp.to_string(),
        opt(&base.instruction_summary),
        opt(&base.is_jito_bundle),
        sc.predicted_score.to_string(),
        map_json(&sc.feature_scores),
        sc.reason.clone(),
        sc.calculation_time_us.to_string(),
        sc.anomaly_detected.to_string(),
        sc.timestamp.to_string(),
        opt(&r.buy_price_sol),
        opt(&r.sell_price_sol),
        opt(&r.amount_bought_tokens),
        opt(&r.amount_sold_tokens),
        opt(&r.initial_sol_spent),
        opt(&r.final_sol_received),
        opt(&r.timestamp_transaction_sent),
        opt(&r.timestamp_outcome_evaluated),
        r.actual_outcome.kind().to_owned(),
        outcome_value,
        outcome_message,
        map_json(&r.market_context_snapshot),
    ]
}

/// Build a record from a CSV row with the given header (any column order; every column of
/// [`COLUMNS`] must be present, no other). The `id` cell is read but not kept: imported
/// records get new ids.
pub fn from_flat_row(
    header: &[String],
    row: &csv::StringRecord,
) -> Result<TransactionRecord, String> {
    if row.len() != header.len() {
        return Err(format!(
            "{} cells, the header has {} columns",
            row.len(),
            header.len()
        ));
    }
    let mut cells: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in header.iter().zip(row.iter()) {
        cells.insert(name.as_str(), value);
    }
    let get = |name: &str| -> &str { cells.get(name).copied().unwrap_or("") };
    let req = |name: &str| -> Result<&str, String> {
        let v = get(name);
        if v.is_empty() {
            Err(format!("column `{name}` is empty"))
        } else {
            Ok(v)
        }
    };
    fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        v.trim()
            .parse()
            .map_err(|e| format!("column `{name}`: `{v}` is not a valid value ({e})"))
    }
    let opt_num = |name: &str| -> Result<Option<f64>, String> {
        match get(name) {
            "" => Ok(None),
            v => num(name, v).map(Some),
        }
    };
    let opt_i64 = |name: &str| -> Result<Option<i64>, String> {
        match get(name) {
            "" => Ok(None),
            v => num(name, v).map(Some),
        }
    };
    let opt_str = |name: &str| -> Option<String> {
        match get(name) {
            "" => None,
            v => Some(v.to_owned()),
        }
    };
    let map = |name: &str| -> Result<BTreeMap<String, f64>, String> {
        match get(name) {
            "" => Ok(BTreeMap::new()),
            v => serde_json::from_str(v)
                .map_err(|e| format!("column `{name}`: not a JSON object of numbers ({e})")),
        }
    };
    let value = opt_num("outcome_value")?;
    let message = opt_str("outcome_message");
    let kind = req("outcome_kind")?;
    let need_value =
        |v: Option<f64>| v.ok_or_else(|| format!("outcome `{kind}` needs `outcome_value`"));
    let need_message =
        |m: Option<String>| m.ok_or_else(|| format!("outcome `{kind}` needs `outcome_message`"));
    let actual_outcome = match kind {
        "Profit" => Outcome::Profit(need_value(value)?),
        "Loss" => Outcome::Loss(need_value(value)?),
        "Neutral" => Outcome::Neutral,
        "PendingConfirmation" => Outcome::PendingConfirmation,
        "FailedExecution" => Outcome::FailedExecution,
        "NotExecuted" => Outcome::NotExecuted,
        "ConfirmationTimeout" => Outcome::ConfirmationTimeout,
        "ExecutionError" => Outcome::ExecutionError(need_message(message)?),
        "VerificationFailed" => Outcome::VerificationFailed(need_message(message)?),
        other => return Err(format!("column `outcome_kind`: unknown outcome `{other}`")),
    };
    let opt_bool = |name: &str| -> Result<Option<bool>, String> {
        match get(name) {
            "" => Ok(None),
            v => num(name, v).map(Some),
        }
    };
    Ok(TransactionRecord {
        id: None,
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                mint: get("mint").to_owned(),
                creator: get("creator").to_owned(),
                program: get("program").to_owned(),
                slot: num("slot", req("slot")?)?,
                timestamp: num("candidate_timestamp", req("candidate_timestamp")?)?,
                instruction_summary: opt_str("instruction_summary"),
                is_jito_bundle: opt_bool("is_jito_bundle")?,
            },
            predicted_score: num("predicted_score", req("predicted_score")?)?,
            feature_scores: map("feature_scores")?,
            reason: get("reason").to_owned(),
            calculation_time_us: num("calculation_time_us", req("calculation_time_us")?)?,
            anomaly_detected: num("anomaly_detected", req("anomaly_detected")?)?,
            timestamp: num("scored_timestamp", req("scored_timestamp")?)?,
        },
        transaction_signature: opt_str("transaction_signature"),
        buy_price_sol: opt_num("buy_price_sol")?,
        sell_price_sol: opt_num("sell_price_sol")?,
        amount_bought_tokens: opt_num("amount_bought_tokens")?,
        amount_sold_tokens: opt_num("amount_sold_tokens")?,
        initial_sol_spent: opt_num("initial_sol_spent")?,
        final_sol_received: opt_num("final_sol_received")?,
        timestamp_decision_made: num("timestamp_decision_made", req("timestamp_decision_made")?)?,
        timestamp_transaction_sent: opt_i64("timestamp_transaction_sent")?,
        timestamp_outcome_evaluated: opt_i64("timestamp_outcome_evaluated")?,
        actual_outcome,
        market_context_snapshot: map("market_context_snapshot")?,
    })
}

/// Check a CSV header: every column of [`COLUMNS`] exactly once, nothing else.
pub fn check_csv_header(header: &[String]) -> Result<(), String> {
    for name in header {
        if !COLUMNS.contains(&name.as_str()) {
            return Err(format!(
                "unknown column `{name}` (expected the export's columns: {})",
                COLUMNS.join(",")
            ));
        }
        if header.iter().filter(|h| *h == name).count() > 1 {
            return Err(format!("column `{name}` appears twice"));
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| !header.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing columns: {}", missing.join(", ")));
    }
    Ok(())
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds, e.g. `2026-11-30T12:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Writes a stream of records in one format to stdout (or any writer).
pub struct RecordPrinter<W: Write> {
    out: W,
    format: Format,
    printed: u64,
}

const TABLE_HEADER: [(&str, usize); 8] = [
    ("ID", 10),
    ("DECISION TIME (UTC)", 24),
    ("OUTCOME", 20),
    ("SCORE", 5),
    ("SPENT SOL", 12),
    ("MINT", 44),
    ("PROGRAM", 44),
    ("SIGNATURE", 0),
];

impl<W: Write> RecordPrinter<W> {
    pub fn new(out: W, format: Format) -> Self {
        Self {
            out,
            format,
            printed: 0,
        }
    }

    pub fn printed(&self) -> u64 {
        self.printed
    }

    /// Print one record of a stream: a JSON line, a CSV row (after the header) or a table row
    /// (after the header).
    pub fn record(&mut self, r: &TransactionRecord) -> CliResult<()> {
        match self.format {
            Format::Json => {
                let line = serde_json::to_string(r)
                    .map_err(|e| CliError::new(Kind::Store, format!("encoding JSON: {e}")))?;
                writeln!(self.out, "{line}").map_err(stdout_err)?;
            }
            Format::Csv => {
                if self.printed == 0 {
                    self.csv_row(COLUMNS.iter().map(|c| c.to_string()).collect())?;
                }
                self.csv_row(flat_row(r))?;
            }
            Format::Table => {
                if self.printed == 0 {
                    let cells: Vec<String> =
                        TABLE_HEADER.iter().map(|(h, _)| h.to_string()).collect();
                    self.table_row(&cells)?;
                }
                let outcome = match &r.actual_outcome {
                    Outcome::Profit(v) => format!("Profit {v}"),
                    Outcome::Loss(v) => format!("Loss {v}"),
                    other => other.kind().to_owned(),
                };
                let base = &r.scored_candidate.base;
                let cells = vec![
                    opt(&r.id),
                    format_ms(r.timestamp_decision_made),
                    outcome,
                    r.scored_candidate.predicted_score.to_string(),
                    opt(&r.initial_sol_spent),
                    base.mint.clone(),
                    base.program.clone(),
                    r.transaction_signature
                        .clone()
                        .unwrap_or_else(|| "-".into()),
                ];
                self.table_row(&cells)?;
            }
        }
        self.printed += 1;
        Ok(())
    }

    /// Print one record on its own (get, sig): table format is indented JSON.
    pub fn single(&mut self, r: &TransactionRecord) -> CliResult<()> {
        if self.format == Format::Table {
            let text = serde_json::to_string_pretty(r)
                .map_err(|e| CliError::new(Kind::Store, format!("encoding JSON: {e}")))?;
            writeln!(self.out, "{text}").map_err(stdout_err)?;
            self.printed += 1;
            return self.flush();
        }
        self.record(r)?;
        self.flush()
    }

    fn table_row(&mut self, cells: &[String]) -> CliResult<()> {
        let mut line = String::new();
        for (cell, (_, width)) in cells.iter().zip(TABLE_HEADER) {
            if width == 0 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(self.out, "{}", line.trim_end()).map_err(stdout_err)
    }

    fn csv_row(&mut self, cells: Vec<String>) -> CliResult<()> {
        print_csv(&mut self.out, &[cells])
    }

    pub fn flush(&mut self) -> CliResult<()> {
        self.out.flush().map_err(stdout_err)
    }
}

/// Writing to stdout failed. A pipe closed by its reader (`| head`) ends the command quietly.
pub fn stdout_err(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::new(Kind::PipeClosed, "stdout closed");
    }
    CliError::new(Kind::File, format!("cannot write to stdout: {e}"))
}

/// Print rows as an aligned table (first row is the header).
pub fn print_table(out: &mut impl Write, rows: &[Vec<String>]) -> CliResult<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            // Numbers right-aligned, text left-aligned.
            if i > 0 && looks_numeric(cell) {
                line.push_str(&format!("{cell:>w$}  "));
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end()).map_err(stdout_err)?;
    }
    Ok(())
}

fn looks_numeric(cell: &str) -> bool {
    !cell.is_empty()
        && cell
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '%' | ','))
}

/// Print rows as CSV (first row is the header).
pub fn print_csv(out: &mut impl Write, rows: &[Vec<String>]) -> CliResult<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.write_record(row)
            .map_err(|e| CliError::new(Kind::Store, format!("writing CSV: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CliError::new(Kind::Store, format!("writing CSV: {e}")))?;
    out.write_all(&bytes).map_err(stdout_err)
}

/// Print one JSON value on one line.
pub fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> CliResult<()> {
    let line = serde_json::to_string(value)
        .map_err(|e| CliError::new(Kind::Store, format!("encoding JSON: {e}")))?;
    writeln!(out, "{line}").map_err(stdout_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiered_storage::Record;

    fn sample() -> TransactionRecord {
        TransactionRecord {
            id: Some(7),
            scored_candidate: ScoredCandidate {
                base: PremintCandidate {
                    mint: "M".into(),
                    creator: "C".into(),
                    program: "P".into(),
                    slot: 9,
                    timestamp: 1_000,
                    instruction_summary: Some("a,\"b\"".into()),
                    is_jito_bundle: Some(true),
                },
                predicted_score: 87,
                feature_scores: BTreeMap::from([("liq".to_owned(), 0.1 + 0.2)]),
                reason: "multi\nline".into(),
                calculation_time_us: 42,
                anomaly_detected: false,
                timestamp: 1_001,
            },
            transaction_signature: Some("sig".into()),
            buy_price_sol: Some(3e-8),
            initial_sol_spent: Some(0.5),
            timestamp_decision_made: 1_764_504_000_123,
            actual_outcome: Outcome::ExecutionError("boom, again".into()),
            market_context_snapshot: BTreeMap::from([("sol_usd".to_owned(), 236.4)]),
            ..Default::default()
        }
    }

    #[test]
    fn columns_are_the_archive_columns() {
        let schema = TransactionRecord::cold_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, COLUMNS);
    }

    #[test]
    fn csv_row_round_trips_through_the_parser() {
        for outcome in [
            Outcome::Profit(0.1 + 0.2),
            Outcome::Loss(1e-9),
            Outcome::NotExecuted,
            Outcome::VerificationFailed(String::new() + "x"),
            Outcome::ExecutionError("boom, again".into()),
        ] {
            let mut r = sample();
            r.actual_outcome = outcome;
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(COLUMNS).unwrap();
            w.write_record(flat_row(&r)).unwrap();
            let bytes = w.into_inner().unwrap();
            let mut rd = csv::Reader::from_reader(bytes.as_slice());
            let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
            check_csv_header(&header).unwrap();
            let row = rd.records().next().unwrap().unwrap();
            let back = from_flat_row(&header, &row).unwrap();
            let mut expected = r.clone();
            expected.id = None;
            assert_eq!(back, expected);
        }
    }

    #[test]
    fn bad_csv_cells_name_their_column() {
        let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        let mut cells = flat_row(&sample());
        cells[6] = "not-a-slot".into();
        let err = from_flat_row(&header, &csv::StringRecord::from(cells)).unwrap_err();
        assert!(err.contains("`slot`"), "{err}");
        assert!(check_csv_header(&header[1..]).unwrap_err().contains("id"));
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_764_504_000_123), "2025-11-30T12:00:00.123Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
