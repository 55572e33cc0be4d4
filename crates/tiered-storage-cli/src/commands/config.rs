//! `config default` (a commented TOML of every default) and `config check FILE`.
//!
//! The values printed come from serializing `StorageConfig::default()`, so they cannot drift
//! from the library; the comments come from `DOCS`, and a test checks that every key has one.

use std::io::Write;
use std::path::Path;

use tiered_storage::StorageConfig;

use super::Ctx;
use crate::cli::Format;
use crate::error::{CliError, CliResult, Kind};
use crate::output::{print_json, stdout_err};

/// One comment per key (`section.key`, or `key` at the top level). Keys whose default is
/// "none" (absent from the serialized default) carry an example value and print commented out.
const DOCS: &[(&str, &str, Option<&str>)] = &[
    ("data_dir", "Directory holding LOCK, warm.sqlite3 and cold/. Relative: against this file's directory. Unset: tiered_storage_data in the working directory, or $TIERED_STORAGE_DATA_DIR.", Some("\"tiered_storage_data\"")),
    ("max_record_bytes", "Largest encoded record accepted, bytes (64 to 268435456).", None),
    ("read_only", "Open without owning the directory: no writes, no lock, no recovery.", None),
    ("tiering.hot_to_warm_age", "Seconds a record stays in hot after it was cached (the hot TTL).", None),
    ("tiering.warm_to_cold_age", "Seconds after its timestamp_decision_made before a record is archived to cold.", None),
    ("tiering.maintenance_interval", "Seconds between background maintenance steps.", None),
    ("tiering.auto_promote_on_access", "Promote records read often into hot.", None),
    ("tiering.min_hot_access_count", "Reads that missed hot before a record is promoted (1 to 255).", None),
    ("hot.capacity", "Maximum records cached in hot.", None),
    ("hot.max_bytes", "Optional bound on the encoded bytes cached, together with capacity. Default: none.", Some("268435456")),
    ("hot.frequency_counters", "Counters per row of the promotion frequency sketch (64 to 2^26).", None),
    ("warm.durability", "\"normal\": survives a process crash; \"full\": also a power loss (fsync per group commit).", None),
    ("warm.max_batch", "Most writes in one group-commit transaction (1 to 100000).", None),
    ("warm.queue_depth", "Writes queued for the writer before put waits (back-pressure).", None),
    ("warm.read_connections", "Read-only SQLite connections, at most.", None),
    ("warm.cache_mib", "SQLite page cache per connection, MiB.", None),
    ("warm.mmap_mib", "MiB of the database memory-mapped for reads (0 disables).", None),
    ("warm.busy_timeout_ms", "SQLite busy timeout, ms.", None),
    ("warm.access_flush_threshold", "Ids with pending access statistics that make a read hand them to the writer.", None),
    ("warm.access_flush_interval_ms", "Least time between two takes of the pending access statistics, ms.", None),
    ("warm.access_sample_every", "One warm read in this many is noted in the access statistics.", None),
    ("warm.vacuum_pages", "Free pages returned to the file system per incremental-vacuum step.", None),
    ("warm.signature_merge_threshold", "Recent signatures kept in memory before a merge into the on-disk index.", None),
    ("warm.group_commit_window_us", "Longest a group commit waits for more concurrent writes, us (0 disables).", None),
    ("warm.settle_chunk_rows", "Warm rows an archival deletes per transaction after its file is catalogued.", None),
    ("warm.quick_check_on_open", "Run SQLite's quick_check at open and refuse a damaged database.", None),
    ("cold.zstd_level", "ZSTD level of the string columns (1 to 22).", None),
    ("cold.target_file_mib", "Archival and compaction close an output file at about this size, MiB.", None),
    ("cold.row_group_rows", "Rows per Parquet row group.", None),
    ("cold.data_page_rows", "Rows per data page: small pages make point reads fast.", None),
    ("cold.string_page_rows", "Rows per data page of the ZSTD string columns.", None),
    ("cold.bloom_filter_columns", "Columns that get a Parquet bloom filter per row group, e.g. [\"transaction_signature\"].", None),
    ("cold.archive_batch_rows", "Warm rows read per archival step.", None),
    ("cold.max_open_partitions", "Day partitions one archival pass writes at once.", None),
    ("cold.metadata_cache_mib", "Parquet footers, page indexes and checksums kept in memory, MiB.", None),
    ("cold.read_threads", "The store's threads for cold reads and scan pages (1 to 256).", None),
    ("cold.compact_small_fraction", "Files below this fraction of the target size are merged by compaction.", None),
    ("cold.compact_dead_fraction", "Files with at least this fraction of dead rows are rewritten.", None),
    ("cold.store", "Where cold files live: \"\" for <data_dir>/cold on local disk, \"s3://bucket/prefix\" for S3 (feature s3), \"memory://name\" for an in-process store (tests). Same layout everywhere: <prefix>/date=YYYY-MM-DD/part-N.parquet.", None),
    ("cold.s3_endpoint", "Endpoint of an S3-compatible server (path-style requests). Default: AWS, or $AWS_ENDPOINT.", Some("\"http://127.0.0.1:9000\"")),
    ("cold.s3_region", "S3 region. Default: $AWS_REGION, else us-east-1.", Some("\"us-east-1\"")),
    ("cold.s3_allow_http", "Allow plain HTTP to the S3 endpoint.", None),
    ("cold.s3_access_key_id", "S3 access key id. Default: $AWS_ACCESS_KEY_ID.", Some("\"AKIA...\"")),
    ("cold.s3_secret_access_key", "S3 secret key (never printed or logged). Default: $AWS_SECRET_ACCESS_KEY; prefer the environment to a file.", Some("\"...\"")),
    ("cold.s3_max_retries", "Retries of a transient object-store error (timeout, 5xx, connection reset), with exponential backoff.", None),
    ("cold.s3_timeout_secs", "Seconds one object-store request may take with its retries (uploads and downloads: per 64 MiB).", None),
    ("cold.cache_dir", "Directory of the local range cache of an object-store cold tier. Default: <data_dir>/cold-cache.", Some("\"/var/cache/tiered-storage\"")),
    ("cold.cache_max_bytes", "Bytes the local range cache may hold; 0 turns it off.", None),
    ("cold.orphan_grace_secs", "Seconds after its intent before an uncatalogued object (an upload a crash left, a compacted input) is deleted from the object store.", None),
    ("cold.replicas", "Secondary object stores with a copy of every cold object: [[cold.replicas]] tables with name, store, and s3_endpoint, s3_region, s3_allow_http, s3_access_key_id, s3_secret_access_key of their own.", None),
    ("cold.replication_sync", "Archival and compaction commits wait until every replica holds each new object.", None),
    ("cold.replication_max_bytes_per_sec", "Bytes per second copied to each replica; 0 is unlimited.", None),
    ("cold.replication_lag_alert_secs", "A replica whose oldest missing object is older than this raises the replication-lag alert, seconds.", None),
    ("cold.failover_alert_after", "Reads a store fails in a row before the store-failing alert.", None),
    ("maintenance.archive_records_per_sec", "Most records per second background archival moves.", None),
    ("maintenance.archive_max_records_per_step", "Most records one maintenance step archives.", None),
    ("maintenance.archive_commit_rows", "Most records one background archival commit moves.", None),
    ("maintenance.backlog_interval_secs", "Seconds between steps while an archival backlog remains.", None),
    ("maintenance.compact", "Steps compact the cold tier once no backlog remains.", None),
    ("metrics.window_secs", "Window of the access-time percentiles and recent hit rates, seconds.", None),
    ("alerts.hot_p95_target_us", "Hot p95 access-time target, us.", None),
    ("alerts.warm_p95_target_us", "Warm p95 access-time target, us.", None),
    ("alerts.cold_p95_target_us", "Cold p95 access-time target, us.", None),
    ("alerts.hot_hit_rate_floor_pct", "Recent hot hit-rate floor, percent.", Some("50.0")),
    ("alerts.warm_hit_rate_floor_pct", "Recent warm hit-rate floor, percent. Default: none.", Some("10.0")),
    ("alerts.min_samples", "Lookups in the window before access-time, hit-rate and degradation alerts may fire.", None),
    ("alerts.hot_capacity_warning_pct", "Hot fill that raises a warning, percent.", None),
    ("alerts.hot_capacity_critical_pct", "Hot fill that raises a critical alert, percent.", None),
    ("alerts.disk_budget_bytes", "Data-directory size that raises an alert. Default: none.", Some("107374182400")),
    ("alerts.min_free_disk_bytes", "Free-disk floor of the data directory's file system, bytes.", Some("1073741824")),
    ("alerts.archival_grace_secs", "Grace past warm_to_cold_age before an archival-lag alert, seconds.", None),
    ("alerts.degradation_factor", "Recent p95 over the p95 since open that raises a degradation alert.", None),
    ("alerts.history_limit", "Resolved alerts kept.", None),
    ("query_cache.max_bytes", "Bytes of query answers (aggregates, queries, latest) kept; 0 turns the cache off.", None),
    ("sql.max_rows", "Most rows one SQL query may return (`sql`, POST /v1/sql); more is an error.", None),
    ("sql.timeout_ms", "Longest one SQL query may run, ms; longer is an error.", None),
];

const SECTION_DOCS: &[(&str, &str)] = &[
    (
        "tiering",
        "The tiering policy: when records move between tiers.",
    ),
    ("hot", "Hot tier: the in-memory cache."),
    ("warm", "Warm tier: SQLite in WAL mode."),
    (
        "cold",
        "Cold tier: Parquet files, one directory per UTC day.",
    ),
    (
        "maintenance",
        "Background maintenance (serve runs the loop).",
    ),
    ("metrics", "Metrics."),
    ("alerts", "Alert thresholds."),
    ("query_cache", "The query-result cache (off by default)."),
    ("sql", "Limits of SQL queries over the table `records`."),
];

fn doc(key: &str) -> Option<&'static (&'static str, &'static str, Option<&'static str>)> {
    DOCS.iter().find(|(k, _, _)| *k == key)
}

fn comment(out: &mut String, text: &str) {
    // Wrap at about 96 columns so the file reads well.
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + word.len() + 1 > 96 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// One `key = value` line (commented out with `#` when `commented`), with its comment above.
fn entry(out: &mut String, full_key: &str, key: &str, value: &str, commented: bool) {
    if let Some((_, text, _)) = doc(full_key) {
        comment(out, text);
    }
    if commented {
        out.push_str("# ");
    }
    out.push_str(&format!("{key} = {value}\n"));
}

/// The commented default config. Parsing it gives `StorageConfig::default()` (with
/// `$TIERED_STORAGE_DATA_DIR` unset: data_dir is left commented out, so it keeps its default).
pub fn default_toml() -> Result<String, String> {
    let table = toml::Table::try_from(StorageConfig::default()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    out.push_str(
        "# tiered-storage configuration: every field, at its default.\n\
         # Remove what you do not change; unknown keys are errors. Sizes are bytes unless named,\n\
         # times are seconds unless named. Check a file with `tiered-storage config check FILE`.\n\n",
    );
    // In the order of `DOCS` (the library's field order), top-level keys first. A key with no
    // value in the default (an optional field set to none) is shown commented out with its
    // example; so is data_dir, so the default (and $TIERED_STORAGE_DATA_DIR) applies.
    let write_section = |out: &mut String, section: Option<&str>, fields: &toml::Table| {
        let prefix = section.map(|s| format!("{s}.")).unwrap_or_default();
        let mut done = Vec::new();
        for (full, _, example) in DOCS {
            let Some(key) = full.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if key.contains('.')
                || (section.is_none() && fields.get(key).is_some_and(|v| v.is_table()))
            {
                continue;
            }
            match (fields.get(key), example) {
                (Some(value), _) if *full != "data_dir" => {
                    entry(out, full, key, &value.to_string(), false)
                }
                (_, Some(example)) => entry(out, full, key, example, true),
                (None, None) => continue,
                (Some(value), None) => entry(out, full, key, &value.to_string(), true),
            }
            done.push(key);
        }
        // Defensive: a field without a comment still appears (a unit test keeps DOCS complete).
        for (key, value) in fields {
            if !value.is_table() && !done.contains(&key.as_str()) {
                entry(
                    out,
                    &format!("{prefix}{key}"),
                    key,
                    &value.to_string(),
                    false,
                );
            }
        }
    };
    write_section(&mut out, None, &table);
    for (section, text) in SECTION_DOCS {
        let Some(fields) = table.get(*section).and_then(|v| v.as_table()) else {
            continue;
        };
        out.push('\n');
        comment(&mut out, text);
        out.push_str(&format!("[{section}]\n"));
        write_section(&mut out, Some(section), fields);
    }
    for (section, value) in &table {
        if let Some(fields) = value.as_table() {
            if !SECTION_DOCS.iter().any(|(s, _)| s == section) {
                out.push_str(&format!("\n[{section}]\n"));
                write_section(&mut out, Some(section), fields);
            }
        }
    }
    Ok(out)
}

pub fn default_cmd() -> CliResult<()> {
    let text = default_toml()
        .map_err(|e| CliError::new(Kind::Config, format!("serializing the default config: {e}")))?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(stdout_err)?;
    out.flush().map_err(stdout_err)
}

pub fn check_cmd(ctx: &Ctx, path: &Path) -> CliResult<()> {
    let config = StorageConfig::from_toml_file(path)
        .map_err(|e| CliError::failed(format!("{}: {}", path.display(), e)))?;
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Json => print_json(
            &mut out,
            &serde_json::json!({"file": path.display().to_string(), "valid": true, "config": config}),
        ),
        _ => writeln!(
            out,
            "{}: valid (data_dir: {})",
            path.display(),
            config.data_dir.display()
        )
        .map_err(stdout_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            let full = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v.as_table() {
                Some(t) => keys(t, &full, out),
                None => out.push(full),
            }
        }
    }

    #[test]
    fn every_config_key_has_a_comment_and_every_comment_a_key() {
        let table = toml::Table::try_from(StorageConfig::default()).unwrap();
        let mut all = Vec::new();
        keys(&table, "", &mut all);
        for key in &all {
            assert!(doc(key).is_some(), "no comment for config key `{key}`");
        }
        for (key, _, example) in DOCS {
            assert!(
                all.iter().any(|k| k == key) || example.is_some(),
                "`{key}` is neither a default key nor an optional one with an example"
            );
        }
    }

    #[test]
    fn default_toml_parses_to_the_default_config() {
        let text = default_toml().unwrap();
        let parsed = StorageConfig::from_toml_str(&text).unwrap();
        // from_toml_str keeps the default data_dir, which reads the environment like default().
        let expected = StorageConfig {
            data_dir: parsed.data_dir.clone(),
            ..StorageConfig::default()
        };
        assert_eq!(parsed, expected);
        // Every commented example is itself valid when uncommented.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        StorageConfig::from_toml_str(&uncommented).unwrap();
    }
}
