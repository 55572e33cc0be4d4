//! The `tiered-storage` binary on a data directory, run as a process: every command's output in
//! each format, exit codes, the interface contracts other tools rely on, and one-line errors.

mod common;

use std::fs::File;

use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use tiered_storage::{Record, StorageConfig, TransactionRecord};

#[test]
fn import_then_read_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // A line with an id and a line with a null id are both stored as new records.
    let mut with_id = serde_json::to_value(record(1)).unwrap();
    with_id["id"] = Value::from(5);
    let mut null_id = serde_json::to_value(record(2)).unwrap();
    null_id["id"] = Value::Null;
    let mut text = format!("{with_id}\n\n{null_id}\n");
    for n in 3..=10 {
        text.push_str(&serde_json::to_string(&record(n)).unwrap());
        text.push('\n');
    }
    let file = tmp.path().join("in.jsonl");
    std::fs::write(&file, text).unwrap();
    let out = run_in(&dir, &["import", file.to_str().unwrap()]);
    let stdout = out.assert_ok();
    assert!(
        stdout.contains("imported 10 records (ids 1..10)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("new ids"),
        "says ids are reassigned: {stdout}"
    );

    // get --format json: one record; the line with id 5 got id 1, and record 5 got id 5.
    let got: TransactionRecord = serde_json::from_str(
        run_in(&dir, &["get", "1", "--format", "json"])
            .assert_ok()
            .trim(),
    )
    .unwrap();
    assert_eq!(got.id, Some(1));
    assert_eq!(got.transaction_signature, record(1).transaction_signature);
    let five: TransactionRecord = serde_json::from_str(
        run_in(&dir, &["--format", "json", "get", "5"])
            .assert_ok()
            .trim(),
    )
    .unwrap();
    let mut expected = record(5);
    expected.id = Some(5);
    assert_eq!(five, expected, "stored exactly as given");
    assert_eq!(
        run_in(&dir, &["get", "5", "--format", "json"])
            .stdout
            .lines()
            .count(),
        1
    );
    // table: indented JSON of the record; csv: header and one row.
    let table = run_in(&dir, &["get", "5"]).assert_ok().to_owned();
    assert_eq!(
        serde_json::from_str::<TransactionRecord>(&table).unwrap(),
        expected
    );
    let csv = run_in(&dir, &["get", "5", "--format", "csv"])
        .assert_ok()
        .to_owned();
    assert!(csv.starts_with("id,timestamp_decision_made,transaction_signature,"));
    assert_eq!(
        csv::Reader::from_reader(csv.as_bytes()).records().count(),
        1,
        "{csv}"
    );

    // get of a missing id: exit 1, one line.
    let missing = run_in(&dir, &["get", "999", "--format", "json"]);
    assert!(missing.stdout.is_empty());
    let line = missing.assert_one_error_line(1);
    assert!(line.contains("999"), "{line}");

    // sig in all three formats; a missing signature is exit 1.
    let sig = record(7).transaction_signature.unwrap();
    let by_sig: TransactionRecord = serde_json::from_str(
        run_in(&dir, &["sig", &sig, "--format", "json"])
            .assert_ok()
            .trim(),
    )
    .unwrap();
    assert_eq!(by_sig.id, Some(7));
    assert!(run_in(&dir, &["sig", &sig]).assert_ok().contains(&sig));
    assert!(run_in(&dir, &["sig", &sig, "--format", "csv"])
        .assert_ok()
        .contains(&sig));
    run_in(&dir, &["sig", "no/such/../sig"]).assert_one_error_line(1);

    // scan --limit N --format json: one record per line, in id order.
    let lines = run_in(&dir, &["scan", "--limit", "4", "--format", "json"]);
    let records = parse_lines(lines.assert_ok());
    assert_eq!(
        records.iter().map(|r| r.id.unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // Filters: program, outcome, mint, time.
    let odd = parse_lines(
        run_in(&dir, &["scan", "--program", "ProgOdd", "--format", "json"]).assert_ok(),
    );
    assert_eq!(odd.len(), 5);
    assert!(odd
        .iter()
        .all(|r| r.scored_candidate.base.program == "ProgOdd"));
    let profit =
        parse_lines(run_in(&dir, &["scan", "--outcome", "Profit", "--format", "json"]).assert_ok());
    assert_eq!(
        profit.iter().map(|r| r.id.unwrap()).collect::<Vec<_>>(),
        [4, 8]
    );
    let mint = record(3).scored_candidate.base.mint;
    assert_eq!(
        parse_lines(run_in(&dir, &["scan", "--mint", &mint, "--format", "json"]).assert_ok()).len(),
        1
    );
    // Records 3..=5 by RFC 3339 bounds (record n's time is 1_700_000_000_000 + n s).
    let window = run_in(
        &dir,
        &[
            "scan",
            "--since",
            "2023-11-14T22:13:23Z",
            "--until",
            "2023-11-14T22:13:25Z",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        parse_lines(window.assert_ok())
            .iter()
            .map(|r| r.id.unwrap())
            .collect::<Vec<_>>(),
        [3, 4, 5]
    );
    // Relative: everything is older than an hour, nothing newer than a minute.
    assert_eq!(
        parse_lines(run_in(&dir, &["scan", "--until", "1h", "--format", "json"]).assert_ok()).len(),
        10
    );
    assert!(run_in(&dir, &["scan", "--since", "1m", "--format", "json"])
        .assert_ok()
        .is_empty());
    // csv: header + rows with the archive's columns; table: header + rows.
    let csv = run_in(&dir, &["scan", "--limit", "3", "--format", "csv"])
        .assert_ok()
        .to_owned();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let schema = TransactionRecord::cold_schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(header, columns);
    assert_eq!(reader.records().count(), 3);
    let table = run_in(&dir, &["scan", "--limit", "2"])
        .assert_ok()
        .to_owned();
    assert_eq!(
        table.lines().count(),
        3,
        "a header and one line per record: {table}"
    );
    assert!(table.starts_with("ID "));
    // A bad time is a usage error.
    let bad = run_in(&dir, &["scan", "--since", "yesterday"]);
    assert!(bad.assert_one_error_line(2).contains("--since"));
    // So is an outcome kind that does not exist (not an empty answer).
    let bad = run_in(&dir, &["scan", "--outcome", "Los"]);
    assert!(bad.assert_one_error_line(2).contains("Loss"));

    // stats --format json: one object; hot, warm and cold each hold record_count.
    let stats = run_in(&dir, &["stats", "--format", "json"]);
    let text = stats.assert_ok();
    assert_eq!(text.lines().count(), 1);
    let v: Value = serde_json::from_str(text).unwrap();
    for tier in ["hot", "warm", "cold"] {
        assert!(v[tier]["record_count"].is_u64(), "{tier}: {v}");
    }
    assert_eq!(v["warm"]["record_count"], 10);
    assert_eq!(v["total_records"], 10);
    let table = run_in(&dir, &["stats"]).assert_ok().to_owned();
    for needle in ["TIER", "hot", "warm", "cold", "archival: lag", "alerts:"] {
        assert!(table.contains(needle), "`{needle}` in {table}");
    }
    let csv = run_in(&dir, &["--format", "csv", "stats"])
        .assert_ok()
        .to_owned();
    assert!(csv.starts_with("tier,record_count,"), "{csv}");
    assert_eq!(csv.lines().count(), 4);

    // Importing the same file again stores nothing new and says why, per line.
    let again = run_in(&dir, &["import", file.to_str().unwrap()]);
    assert!(
        again.assert_ok().contains("imported 0 records"),
        "{again:?}"
    );
    assert!(
        again.stderr.contains(":1: already stored as id 1"),
        "{again:?}"
    );
    assert!(
        again.stderr.contains(":11: already stored as id 10"),
        "{again:?}"
    );
}

#[test]
fn import_reports_every_bad_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let good = |n| serde_json::to_string(&record(n)).unwrap();
    let mut unknown = serde_json::to_value(record(3)).unwrap();
    unknown["scored_candidate"]["base"]["mintt"] = Value::from("typo");
    let mut empty_sig = serde_json::to_value(record(5)).unwrap();
    empty_sig["transaction_signature"] = Value::from("");
    let lines = [
        good(1),
        "{not json".to_owned(),
        good(2),
        unknown.to_string(),
        empty_sig.to_string(),
        good(1), // the same signature as line 1
        r#"{"id": 1, "timestamp_decision_made": "soon"}"#.to_owned(),
        good(6),
    ];
    let file = tmp.path().join("bad.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run_in(&dir, &["import", file.to_str().unwrap()]);
    let last = out.assert_one_error_line(1);
    assert!(
        last.contains("5 bad lines") && last.contains("nothing was written"),
        "{last}"
    );
    for (line, what) in [
        (2, "not a record"),
        (4, "mintt"),
        (5, "empty"),
        (6, "line 1"),
        (7, "invalid type"),
    ] {
        let needle = format!("bad.jsonl:{line}: ");
        let reported = out
            .stderr
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("line {line} not reported: {}", out.stderr));
        assert!(reported.contains(what), "line {line}: {reported}");
    }
    for good_line in [1, 3, 8] {
        assert!(
            !out.stderr.contains(&format!("bad.jsonl:{good_line}: ")),
            "{}",
            out.stderr
        );
    }
    // Nothing was written.
    let stats: Value =
        serde_json::from_str(run_in(&dir, &["stats", "--format", "json"]).assert_ok()).unwrap();
    assert_eq!(stats["total_records"], 0, "{stats}");

    // A CSV with a bad cell is reported with its line number too.
    let csv_file = tmp.path().join("bad.csv");
    // Build the rows through the CLI's own export so the good rows are exactly its format.
    let src = tmp.path().join("src");
    load(&src, 3);
    let exported = tmp.path().join("three.csv");
    run_in(&src, &["export", "--to", exported.to_str().unwrap()]).assert_ok();
    let mut text = std::fs::read_to_string(&exported).unwrap();
    text = text.replacen(",250000002,", ",not-a-slot,", 1);
    std::fs::write(&csv_file, text).unwrap();
    let out = run_in(&dir, &["import", csv_file.to_str().unwrap()]);
    out.assert_one_error_line(1);
    // Record 2's row starts on line 4: the header, then record 1 spans two lines (its reason
    // has a newline in it).
    assert!(
        out.stderr.contains("bad.csv:4: column `slot`"),
        "{}",
        out.stderr
    );
    let stats: Value =
        serde_json::from_str(run_in(&dir, &["stats", "--format", "json"]).assert_ok()).unwrap();
    assert_eq!(stats["total_records"], 0);
}

#[test]
fn export_round_trips_through_jsonl_csv_and_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    load(&src, 25);
    let all = parse_lines(run_in(&src, &["scan", "--format", "json"]).assert_ok());
    assert_eq!(all.len(), 25);

    // jsonl: export, import into a fresh store, same records.
    let jsonl = tmp.path().join("out.jsonl");
    let out = run_in(&src, &["export", "--to", jsonl.to_str().unwrap()]);
    assert!(out.assert_ok().contains("exported 25 records"), "{out:?}");
    let copy = tmp.path().join("copy");
    run_in(&copy, &["import", jsonl.to_str().unwrap()]).assert_ok();
    let back = parse_lines(run_in(&copy, &["scan", "--format", "json"]).assert_ok());
    assert_eq!(without_ids(back), without_ids(all.clone()));

    // csv: the same round trip.
    let csv = tmp.path().join("out.csv");
    run_in(&src, &["export", "--to", csv.to_str().unwrap()]).assert_ok();
    let copy_csv = tmp.path().join("copy-csv");
    run_in(&copy_csv, &["import", csv.to_str().unwrap()]).assert_ok();
    let back = parse_lines(run_in(&copy_csv, &["scan", "--format", "json"]).assert_ok());
    assert_eq!(without_ids(back), without_ids(all.clone()));

    // parquet with a filter: readable by the parquet crate, the archive's columns.
    let pq = tmp.path().join("odd.parquet");
    run_in(
        &src,
        &[
            "export",
            "--program",
            "ProgOdd",
            "--to",
            pq.to_str().unwrap(),
        ],
    )
    .assert_ok();
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&pq).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let archive = TransactionRecord::cold_schema();
        let expected: Vec<&str> = archive.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, expected);
        rows.extend(TransactionRecord::from_cold_batch(&batch).unwrap());
    }
    let odd: Vec<TransactionRecord> = all
        .iter()
        .filter(|r| r.scored_candidate.base.program == "ProgOdd")
        .cloned()
        .collect();
    assert_eq!(rows, odd);

    // The export has an ordinary file's mode (not a temporary file's 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&jsonl).unwrap().permissions().mode();
        assert_ne!(
            mode & 0o044,
            0,
            "readable by group or others under a usual umask: {mode:o}"
        );
    }

    // No temporary file is left beside the targets.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failed_export_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    load(&src, 5);
    // The target is a non-empty directory: the final rename fails after the data was written.
    let target = tmp.path().join("taken.jsonl");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "x").unwrap();
    let out = run_in(&src, &["export", "--to", target.to_str().unwrap()]);
    assert!(out.assert_one_error_line(5).contains("taken.jsonl"));
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    // An unknown extension is a usage error; a missing directory a file error; no file appears.
    run_in(
        &src,
        &["export", "--to", tmp.path().join("x.txt").to_str().unwrap()],
    )
    .assert_one_error_line(2);
    let nowhere = tmp.path().join("no/such/dir/x.csv");
    run_in(&src, &["export", "--to", nowhere.to_str().unwrap()]).assert_one_error_line(5);
    assert!(!nowhere.exists());
}

#[test]
fn archive_takes_durations_and_cold_records_stay_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    load(&dir, 12);
    // The records are from 2023: `7d` moves all 12, then `90m` and `0s` find nothing left.
    for (age, moved) in [("7d", 12), ("90m", 0), ("0s", 0)] {
        let out = run_in(&dir, &["archive", "--older-than", age, "--format", "json"]);
        let v: Value = serde_json::from_str(out.assert_ok().trim()).unwrap();
        assert_eq!(v["archived"], moved, "{age}: {v}");
    }
    let stats: Value =
        serde_json::from_str(run_in(&dir, &["stats", "--format", "json"]).assert_ok()).unwrap();
    assert_eq!(stats["cold"]["record_count"], 12, "{stats}");
    assert_eq!(stats["warm"]["record_count"], 0, "{stats}");
    let table = run_in(&dir, &["stats"]).assert_ok().to_owned();
    assert!(table.contains("2023-11-14"), "cold files by day: {table}");
    // get still finds a record, now from cold.
    let got: TransactionRecord = serde_json::from_str(
        run_in(&dir, &["get", "4", "--format", "json"])
            .assert_ok()
            .trim(),
    )
    .unwrap();
    let mut expected = record(4);
    expected.id = Some(4);
    assert_eq!(got, expected);
    // More records, archived with --older-than 0s; a bad duration is a usage error.
    let more = tmp.path().join("more.jsonl");
    write_jsonl(&more, &(13..=15).map(record).collect::<Vec<_>>());
    run_in(&dir, &["import", more.to_str().unwrap()]).assert_ok();
    let out = run_in(&dir, &["archive", "--older-than", "0s"]);
    assert!(out.assert_ok().starts_with("archived 3 records"), "{out:?}");
    run_in(&dir, &["get", "14"]).assert_ok();
    let bad = run_in(&dir, &["archive", "--older-than", "7"]);
    assert!(bad.assert_one_error_line(2).contains("--older-than"));
    // compact merges the small files; everything stays readable.
    let out = run_in(&dir, &["compact", "--format", "json"]);
    let v: Value = serde_json::from_str(out.assert_ok().trim()).unwrap();
    assert!(v["files_in"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(
        parse_lines(run_in(&dir, &["scan", "--format", "json"]).assert_ok()).len(),
        15
    );
}

#[test]
fn verify_exits_non_zero_on_a_damaged_cold_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    load(&dir, 50);
    run_in(&dir, &["archive", "--older-than", "0s"]).assert_ok();
    let out = run_in(&dir, &["verify"]);
    assert!(out.assert_ok().contains("no problem found"), "{out:?}");
    let v: Value = serde_json::from_str(
        run_in(&dir, &["verify", "--format", "json"])
            .assert_ok()
            .trim(),
    )
    .unwrap();
    assert_eq!(v["clean"], true);

    // Flip one byte in the middle of the cold file (a data file: not under `_deletes/`).
    let day = std::fs::read_dir(dir.join("cold"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("date=")
        })
        .unwrap();
    let file = std::fs::read_dir(&day)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let out = run_in(&dir, &["verify"]);
    out.assert_one_error_line(1);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(out.stdout.contains(&name), "the file is listed: {out:?}");
    let json = run_in(&dir, &["verify", "--format", "json"]);
    assert_eq!(json.code, 1);
    let v: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["clean"], false);
}

#[test]
fn rebuild_catalog_asks_and_refuses_without_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    load(&dir, 5);
    run_in(&dir, &["archive", "--older-than", "0s"]).assert_ok();
    // stdin is not a terminal and there is no --yes.
    let out = run_in(&dir, &["rebuild-catalog"]);
    assert!(out.assert_one_error_line(2).contains("--yes"), "{out:?}");
    let out = run_in(&dir, &["rebuild-catalog", "--yes"]);
    assert!(out.assert_ok().contains("catalog rebuilt"), "{out:?}");
    assert_eq!(
        parse_lines(run_in(&dir, &["scan", "--format", "json"]).assert_ok()).len(),
        5
    );
}

#[test]
fn config_default_passes_config_check_and_equals_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["config", "default"]);
    let text = out.assert_ok().to_owned();
    assert!(
        text.lines().filter(|l| l.starts_with('#')).count() > 40,
        "commented: {text}"
    );
    let file = tmp.path().join("store.toml");
    std::fs::write(&file, &text).unwrap();
    let check = run(&["config", "check", file.to_str().unwrap()]);
    assert!(check.assert_ok().contains("valid"), "{check:?}");
    let parsed = StorageConfig::from_toml_file(&file).unwrap();
    // The environment may set data_dir; the file does not.
    let expected = StorageConfig {
        data_dir: parsed.data_dir.clone(),
        ..StorageConfig::default()
    };
    assert_eq!(parsed, expected);

    // An invalid value: exit 1, naming the field.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[hot]\ncapacity = 0\n").unwrap();
    let out = run(&["config", "check", bad.to_str().unwrap()]);
    assert!(
        out.assert_one_error_line(1).contains("hot.capacity"),
        "{out:?}"
    );
    // An unknown key, and a missing file.
    std::fs::write(&bad, "[hot]\ncapacityy = 1\n").unwrap();
    assert!(run(&["config", "check", bad.to_str().unwrap()])
        .assert_one_error_line(1)
        .contains("capacityy"));
    run(&[
        "config",
        "check",
        tmp.path().join("none.toml").to_str().unwrap(),
    ])
    .assert_one_error_line(1);

    // --config picks the data directory; --data-dir overrides it.
    let with_dir = tmp.path().join("with-dir.toml");
    std::fs::write(&with_dir, "data_dir = \"from-config\"\n").unwrap();
    let load_file = tmp.path().join("one.jsonl");
    write_jsonl(&load_file, &[record(1)]);
    run(&[
        "--config",
        with_dir.to_str().unwrap(),
        "import",
        load_file.to_str().unwrap(),
    ])
    .assert_ok();
    assert!(tmp.path().join("from-config/warm.sqlite3").exists());
    let other = tmp.path().join("other");
    run(&[
        "--config",
        with_dir.to_str().unwrap(),
        "--data-dir",
        other.to_str().unwrap(),
        "import",
        load_file.to_str().unwrap(),
    ])
    .assert_ok();
    assert!(other.join("warm.sqlite3").exists());
    // A bad --config is exit 4.
    run(&["--config", bad.to_str().unwrap(), "stats"]).assert_one_error_line(4);
}

#[test]
fn errors_are_one_line_with_documented_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("none");
    // No store there: read commands do not create one.
    let out = run_in(&nowhere, &["stats"]);
    assert!(out.assert_one_error_line(7).contains("no store"), "{out:?}");
    assert!(!nowhere.exists());
    // Usage errors are clap's (exit 2), without backtraces.
    let out = run(&["get", "not-a-number"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!out.stderr.contains("panicked"));
    assert_eq!(run(&["--format", "xml", "stats"]).code, 2);
    assert_eq!(run(&["frobnicate"]).code, 2);
    // A file that cannot be read: exit 5.
    run_in(
        &nowhere,
        &["import", tmp.path().join("missing.jsonl").to_str().unwrap()],
    )
    .assert_one_error_line(5);
    // --url only for read commands; a bad URL is a usage error.
    run(&["--url", "http://127.0.0.1:1", "archive"]).assert_one_error_line(2);
    run(&["--url", "https://example.invalid", "stats"]).assert_one_error_line(2);
    // An unreachable service: exit 6.
    run(&["--url", "http://127.0.0.1:1", "get", "1"]).assert_one_error_line(6);
    // --help documents the exit codes.
    let help = run(&["--help"]);
    assert!(help.assert_ok().contains("Exit codes:"), "{help:?}");
    assert!(help.stdout.contains("read-only"), "{help:?}");
}

#[test]
fn tail_follows_new_records_and_exits_0_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    load(&dir, 5);
    let mut child = std::process::Command::new(BIN)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "tail",
            "-n",
            "2",
            "--interval-ms",
            "50",
            "--format",
            "json",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = line_reader(&mut child);
    let next = || -> TransactionRecord {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a tail line");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next().id, Some(4));
    assert_eq!(next().id, Some(5));
    // Another process writes (tail holds the store read-only, so import can own it).
    let more = tmp.path().join("more.jsonl");
    write_jsonl(&more, &[record(6), record(7)]);
    run_in(&dir, &["import", more.to_str().unwrap()]).assert_ok();
    assert_eq!(next().id, Some(6));
    assert_eq!(next().id, Some(7));
    signal(&child, "INT");
    assert_eq!(wait_exit(&mut child, std::time::Duration::from_secs(30)), 0);
}

#[test]
fn sql_prints_a_header_then_rows_over_every_tier() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    load(&dir, 12);
    run_in(&dir, &["archive", "--older-than", "7d"]).assert_ok();
    let more = tmp.path().join("more.jsonl");
    write_jsonl(&more, &(13..=15).map(record).collect::<Vec<_>>());
    run_in(&dir, &["import", more.to_str().unwrap()]).assert_ok();

    // Cold (1..=12) and warm (13..=15) records, in one statement.
    let q = "SELECT id, outcome_kind, pnl FROM records WHERE id <= 4 OR id >= 14 ORDER BY id";
    assert_eq!(
        run_in(&dir, &["sql", q, "--format", "csv"]).assert_ok(),
        "id,outcome_kind,pnl\n\
         1,PendingConfirmation,\n\
         2,Loss,-0.001\n\
         3,ExecutionError,\n\
         4,Profit,0.04\n\
         14,Loss,-0.001\n\
         15,ExecutionError,\n"
    );
    assert_eq!(
        run_in(
            &dir,
            &[
                "--format",
                "csv",
                "sql",
                "SELECT date(ts_ms/1000,'unixepoch') d, count(*) n, sum(pnl) FROM records GROUP BY d"
            ]
        )
        .assert_ok(),
        "d,n,sum(pnl)\n2023-11-14,15,0.236\n"
    );
    let json = run_in(&dir, &["sql", q, "--format", "json"])
        .assert_ok()
        .to_owned();
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(
        lines[0],
        r#"{"id":1,"outcome_kind":"PendingConfirmation","pnl":null}"#
    );
    assert_eq!(lines[1], r#"{"id":2,"outcome_kind":"Loss","pnl":-0.001}"#);
    let table = run_in(&dir, &["sql", q]).assert_ok().to_owned();
    assert!(table.starts_with("id  outcome_kind"), "{table}");
    assert!(table.lines().nth(1).unwrap().ends_with("NULL"), "{table}");
    // No rows: the header alone.
    assert_eq!(
        run_in(
            &dir,
            &[
                "sql",
                "SELECT id FROM records WHERE id > 99",
                "--format",
                "csv"
            ]
        )
        .assert_ok(),
        "id\n"
    );
    // Not a query, bad SQL, an empty statement: one error line, exit 2; nothing written.
    for bad in ["DELETE FROM records", "SELEC 1", "SELECT 1; SELECT 2", " "] {
        let out = run_in(&dir, &["sql", bad]);
        let line = out.assert_one_error_line(2);
        assert!(
            line.contains("invalid query") || line.contains("empty"),
            "{bad}: {line}"
        );
    }
    assert_eq!(
        run_in(
            &dir,
            &["sql", "SELECT count(*) FROM records", "--format", "csv"]
        )
        .assert_ok(),
        "count(*)\n15\n"
    );
}

#[test]
fn latest_prints_the_newest_records_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // Ids follow the file's order; times do not (record n is at n seconds, written shuffled).
    let order = [7u64, 2, 11, 5, 1, 9, 12, 3, 8, 10, 4, 6];
    let file = tmp.path().join("in.jsonl");
    write_jsonl(&file, &order.iter().map(|&n| record(n)).collect::<Vec<_>>());
    run_in(&dir, &["import", file.to_str().unwrap()]).assert_ok();
    // Half of them archived: latest reads both tiers.
    run_in(&dir, &["archive", "--older-than", "7d"]).assert_ok();
    let more = tmp.path().join("more.jsonl");
    write_jsonl(&more, &[record(13), record(0)]);
    run_in(&dir, &["import", more.to_str().unwrap()]).assert_ok();

    let out = run_in(&dir, &["latest", "4", "--format", "json"]);
    let got = parse_lines(out.assert_ok());
    let times: Vec<i64> = got.iter().map(|r| r.timestamp_decision_made).collect();
    assert_eq!(
        times,
        [13, 12, 11, 10].map(|n| record(n).timestamp_decision_made)
    );
    // The same record shape as scan --format json.
    let id_of_12 = got[1].id.unwrap();
    let scanned = parse_lines(run_in(&dir, &["scan", "--format", "json"]).assert_ok());
    assert_eq!(
        scanned.iter().find(|r| r.id == Some(id_of_12)),
        Some(&got[1])
    );
    assert_eq!(without_ids(vec![got[1].clone()]), vec![record(12)]);
    // More than there are: all 14, newest first; csv: a header and the rows.
    let all = parse_lines(run_in(&dir, &["--format", "json", "latest", "100"]).assert_ok());
    assert_eq!(all.len(), 14);
    assert!(all
        .windows(2)
        .all(|w| w[0].timestamp_decision_made > w[1].timestamp_decision_made));
    let csv = run_in(&dir, &["latest", "2", "--format", "csv"])
        .assert_ok()
        .to_owned();
    assert_eq!(
        csv::Reader::from_reader(csv.as_bytes()).records().count(),
        2,
        "{csv}"
    );
    assert!(csv.starts_with("id,timestamp_decision_made,"));
    assert_eq!(run_in(&dir, &["latest", "0"]).code, 2, "a usage error");
}
