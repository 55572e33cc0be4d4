//! `stats`: the service's StatsView, built locally or fetched, printed as tables or CSV.
//!
//! The view is handled as JSON so the local and `--url` paths print exactly the same thing.

use std::io::Write;

use serde_json::Value;

use crate::error::{CliError, CliResult, Kind};
use crate::output::{format_ms, print_table, stdout_err};
use crate::store::Store;

/// The StatsView of a local store, as JSON.
pub async fn local_view(store: &Store) -> CliResult<Value> {
    let view = tiered_storage_server::stats::stats_view(store)
        .await
        .map_err(|e| CliError::store("stats", e))?;
    serde_json::to_value(&view)
        .map_err(|e| CliError::new(Kind::Store, format!("encoding stats: {e}")))
}

const TIER_KEYS: [&str; 11] = [
    "record_count",
    "bytes",
    "capacity",
    "hit_rate",
    "recent_hit_rate",
    "hits",
    "misses",
    "p50_us",
    "p95_us",
    "p99_us",
    "writes",
];

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Per-tier rows for CSV: a header, then hot, warm and cold.
pub fn tier_rows(view: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![std::iter::once("tier")
        .chain(TIER_KEYS)
        .map(str::to_owned)
        .collect::<Vec<_>>()];
    for tier in ["hot", "warm", "cold"] {
        let t = view.get(tier);
        let mut row = vec![tier.to_owned()];
        row.extend(TIER_KEYS.iter().map(|k| cell(t.and_then(|t| t.get(*k)))));
        rows.push(row);
    }
    rows
}

/// Bytes as B/KiB/MiB/GiB with one decimal.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn when(ms: i64) -> String {
    if ms <= 0 {
        "never".to_owned()
    } else {
        format_ms(ms)
    }
}

fn pct(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(f) => format!("{f:.1}%"),
        None => "-".to_owned(),
    }
}

/// The human view: per-tier table, archival, compaction, maintenance, cold days, alerts.
pub fn print_table_view(out: &mut impl Write, view: &Value) -> CliResult<()> {
    let mut rows = vec![[
        "TIER",
        "RECORDS",
        "CAPACITY",
        "BYTES",
        "HIT RATE",
        "RECENT HIT",
        "P50 µs",
        "P95 µs",
        "P99 µs",
        "WRITES",
    ]
    .map(str::to_owned)
    .to_vec()];
    for tier in ["hot", "warm", "cold"] {
        let p = |k: &str| format!("/{tier}/{k}");
        let capacity = view.pointer(&p("capacity")).and_then(Value::as_u64);
        rows.push(vec![
            tier.to_owned(),
            num(view, &p("record_count")).to_string(),
            capacity.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            human_bytes(num(view, &p("bytes"))),
            pct(view.pointer(&p("hit_rate"))),
            pct(view.pointer(&p("recent_hit_rate"))),
            num(view, &p("p50_us")).to_string(),
            num(view, &p("p95_us")).to_string(),
            num(view, &p("p99_us")).to_string(),
            num(view, &p("writes")).to_string(),
        ]);
    }
    print_table(out, &rows)?;
    let w = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(stdout_err);
    w(out, String::new())?;
    w(
        out,
        format!("total records: {}", num(view, "/total_records")),
    )?;
    w(
        out,
        format!(
            "archival: lag {} s; {} records in {} files since open; last archive {}",
            num(view, "/archival/lag_secs"),
            num(view, "/archival/records_archived"),
            num(view, "/archival/archive_files"),
            when(int(view, "/archival/last_archive_ms")),
        ),
    )?;
    w(
        out,
        format!(
            "compaction: {} groups, {} files ({}) -> {} files ({}) since open; last compaction {}",
            num(view, "/compaction/groups"),
            num(view, "/compaction/files_in"),
            human_bytes(num(view, "/compaction/bytes_in")),
            num(view, "/compaction/files_out"),
            human_bytes(num(view, "/compaction/bytes_out")),
            when(int(view, "/compaction/last_compaction_ms")),
        ),
    )?;
    let running = view
        .pointer("/maintenance/loop_running")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    w(
        out,
        format!(
            "maintenance: loop {}; {} steps, {} failed; last step {}",
            if running { "running" } else { "not running" },
            num(view, "/maintenance/steps"),
            num(view, "/maintenance/failed_steps"),
            when(int(view, "/maintenance/last_step_ms")),
        ),
    )?;
    w(
        out,
        format!(
            "cold files: {} ({} quarantined)",
            num(view, "/cold/file_count"),
            num(view, "/cold/quarantined_files")
        ),
    )?;
    let days = view
        .get("cold_days")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !days.is_empty() {
        w(out, String::new())?;
        let mut rows = vec![["DAY", "FILES", "BYTES", "ROWS", "LIVE ROWS"]
            .map(str::to_owned)
            .to_vec()];
        for d in &days {
            rows.push(vec![
                cell(d.get("day")),
                num(d, "/files").to_string(),
                human_bytes(num(d, "/bytes")),
                num(d, "/rows").to_string(),
                num(d, "/live_rows").to_string(),
            ]);
        }
        print_table(out, &rows)?;
    }
    w(out, String::new())?;
    let alerts = view
        .get("alerts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if alerts.is_empty() {
        w(out, "alerts: none".to_owned())?;
    } else {
        w(out, format!("alerts: {} active", alerts.len()))?;
        let mut rows = vec![["SEVERITY", "KIND", "TIER", "SINCE", "MESSAGE"]
            .map(str::to_owned)
            .to_vec()];
        for a in &alerts {
            rows.push(vec![
                cell(a.get("severity")),
                cell(a.get("kind")),
                cell(a.get("tier_name")),
                when(int(a, "/first_seen_ms")),
                cell(a.get("message")),
            ]);
        }
        print_table(out, &rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> Value {
        serde_json::json!({
            "generated_ms": 1,
            "hot": {"record_count": 3, "bytes": 2048, "capacity": 10000, "hit_rate": 50.0,
                    "recent_hit_rate": null, "hits": 1, "misses": 1, "p50_us": 1, "p95_us": 2,
                    "p99_us": 3, "writes": 0},
            "warm": {"record_count": 5, "bytes": 4096, "capacity": null, "hit_rate": 0.0,
                     "recent_hit_rate": null, "hits": 0, "misses": 0, "p50_us": 0,
                     "p95_us": 0, "p99_us": 0, "writes": 5},
            "cold": {"record_count": 7, "bytes": 1, "capacity": null, "hit_rate": 0.0,
                     "recent_hit_rate": null, "hits": 0, "misses": 0, "p50_us": 0,
                     "p95_us": 0, "p99_us": 0, "writes": 0, "file_count": 1,
                     "quarantined_files": 0},
            "total_records": 12,
            "archival": {"lag_secs": 0, "records_archived": 7, "archive_files": 1,
                         "last_archive_ms": 0},
            "compaction": {"groups": 0, "files_in": 0, "files_out": 0, "bytes_in": 0,
                           "bytes_out": 0, "last_compaction_ms": 0},
            "maintenance": {"loop_running": false, "steps": 0, "failed_steps": 0,
                            "last_step_ms": 0},
            "cold_days": [{"day": "2026-11-30", "files": 1, "bytes": 1, "rows": 7,
                           "live_rows": 7}],
            "alerts": [{"severity": "Warning", "kind": "ArchivalLag", "tier_name": "warm",
                        "first_seen_ms": 0, "message": "behind"}]
        })
    }

    #[test]
    fn table_view_shows_tiers_days_and_alerts() {
        let mut out = Vec::new();
        print_table_view(&mut out, &view()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("10000"), "{text}");
        assert!(text.contains("2026-11-30"), "{text}");
        assert!(text.contains("ArchivalLag"), "{text}");
        assert!(text.contains("total records: 12"), "{text}");
    }

    #[test]
    fn csv_rows_have_one_row_per_tier() {
        let rows = tier_rows(&view());
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0][1], "record_count");
        assert_eq!(rows[3][0], "cold");
        assert_eq!(rows[3][1], "7");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
