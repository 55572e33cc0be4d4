//! `tiered-storage serve` as a child process, and the read commands against it with `--url`:
//! the same output as on the files, the token, one owner per directory, and a graceful SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use tiered_storage::TransactionRecord;

#[test]
fn read_commands_work_through_url_and_serve_exits_0_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    load(&dir, 12);
    // What the files say, before the service owns them.
    let local_scan = run_in(&dir, &["scan", "--outcome", "Profit", "--format", "json"])
        .assert_ok()
        .to_owned();
    let sql =
        "SELECT id, mint, pnl, is_jito_bundle FROM records WHERE id BETWEEN 2 AND 6 ORDER BY id";
    let local_latest = run_in(&dir, &["latest", "5", "--format", "json"])
        .assert_ok()
        .to_owned();
    let local_sql: Vec<String> = ["csv", "json", "table"]
        .iter()
        .map(|f| {
            run_in(&dir, &["sql", sql, "--format", f])
                .assert_ok()
                .to_owned()
        })
        .collect();

    let server = Server::start(&dir, &[]);
    let url = server.url.clone();
    let remote = |args: &[&str]| {
        let mut all = vec!["--url", url.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };

    // stats: the same JSON shape as locally.
    let v: Value =
        serde_json::from_str(remote(&["stats", "--format", "json"]).assert_ok()).unwrap();
    for tier in ["hot", "warm", "cold"] {
        assert!(v[tier]["record_count"].is_u64(), "{v}");
    }
    assert_eq!(v["total_records"], 12);
    assert!(remote(&["stats"]).assert_ok().contains("TIER"));
    assert!(remote(&["stats", "--format", "csv"])
        .assert_ok()
        .starts_with("tier,record_count"));

    // latest through GET /v1/records?newest_first=true prints what it prints on the files.
    assert_eq!(
        remote(&["latest", "5", "--format", "json"]).assert_ok(),
        local_latest
    );
    remote(&["latest", "1001"]).assert_one_error_line(2);

    // sql prints through POST /v1/sql exactly what it prints on the files.
    for (format, local) in ["csv", "json", "table"].iter().zip(&local_sql) {
        assert_eq!(
            &remote(&["sql", sql, "--format", format]).assert_ok(),
            local,
            "{format}"
        );
    }
    let refused = remote(&["sql", "DROP TABLE records"]);
    assert!(
        refused.assert_one_error_line(6).contains("invalid_query"),
        "{refused:?}"
    );

    // get / sig, and exit 1 for what is not there.
    let got: TransactionRecord =
        serde_json::from_str(remote(&["get", "3", "--format", "json"]).assert_ok().trim()).unwrap();
    let mut expected = record(3);
    expected.id = Some(3);
    assert_eq!(got, expected);
    remote(&["get", "404", "--format", "json"]).assert_one_error_line(1);
    let sig = record(9).transaction_signature.unwrap();
    let by_sig: TransactionRecord = serde_json::from_str(
        remote(&["sig", &sig, "--format", "json"])
            .assert_ok()
            .trim(),
    )
    .unwrap();
    assert_eq!(by_sig.id, Some(9));
    for weird in ["a/b", "..", "%2F", "../../etc/passwd"] {
        remote(&["sig", weird]).assert_one_error_line(1);
    }

    // scan: the same lines as on the files, filters and limits through the query string.
    assert_eq!(
        remote(&["scan", "--outcome", "Profit", "--format", "json"]).assert_ok(),
        local_scan
    );
    let limited = parse_lines(remote(&["scan", "--limit", "5", "--format", "json"]).assert_ok());
    assert_eq!(
        limited.iter().map(|r| r.id.unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let since = parse_lines(
        remote(&[
            "scan",
            "--since",
            "2023-11-14T22:13:30Z",
            "--format",
            "json",
        ])
        .assert_ok(),
    );
    assert_eq!(
        since.iter().map(|r| r.id.unwrap()).collect::<Vec<_>>(),
        [10, 11, 12]
    );
    let csv = remote(&["scan", "--format", "csv"]).assert_ok().to_owned();
    assert_eq!(
        csv::Reader::from_reader(csv.as_bytes()).records().count(),
        12
    );

    // Read commands on the files still work beside the owner (read-only open).
    let v: Value =
        serde_json::from_str(run_in(&dir, &["stats", "--format", "json"]).assert_ok()).unwrap();
    assert_eq!(v["total_records"], 12);
    run_in(&dir, &["get", "1"]).assert_ok();

    // A second read-write process is refused with one clear line.
    let out = run_in(&dir, &["archive", "--older-than", "0s"]);
    let line = out.assert_one_error_line(3);
    assert!(line.contains("owned by another process"), "{line}");
    run_in(
        &dir,
        &[
            "import",
            tmp.path().join("store.load.jsonl").to_str().unwrap(),
        ],
    )
    .assert_one_error_line(3);
    let second = Command::new(BIN)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3), "{second:?}");

    // tail --url: the newest records, then records put through the API, until Ctrl-C.
    let mut tail = Command::new(BIN)
        .args([
            "--url",
            &url,
            "tail",
            "-n",
            "1",
            "--interval-ms",
            "50",
            "--format",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = line_reader(&mut tail);
    let next = || -> TransactionRecord {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a tail line");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next().id, Some(12));
    for n in [13, 14] {
        let body = serde_json::to_string(&record(n)).unwrap();
        let (status, answer) = http(
            server.addr,
            "POST",
            "/v1/records",
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(status, 201, "{answer}");
    }
    assert_eq!(
        next().transaction_signature,
        record(13).transaction_signature
    );
    assert_eq!(
        next().transaction_signature,
        record(14).transaction_signature
    );
    signal(&tail, "INT");
    assert_eq!(wait_exit(&mut tail, Duration::from_secs(30)), 0);

    assert_eq!(server.stop(), 0, "graceful SIGTERM exits 0");
    // Everything acknowledged is on disk, and the directory is free again.
    let v: Value =
        serde_json::from_str(run_in(&dir, &["stats", "--format", "json"]).assert_ok()).unwrap();
    assert_eq!(v["total_records"], 14);
    run_in(&dir, &["archive", "--older-than", "0s"]).assert_ok();
}

#[test]
fn serve_refuses_a_public_address_without_a_token_and_guards_writes_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let out = run_in(&dir, &["serve", "--listen", "0.0.0.0:0"]);
    let line = out.assert_one_error_line(2);
    assert!(line.contains("token"), "{line}");
    assert!(!dir.exists(), "nothing was opened");
    // An empty token file is refused too.
    let empty = tmp.path().join("empty-token");
    std::fs::write(&empty, "  \n").unwrap();
    run_in(
        &dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            empty.to_str().unwrap(),
        ],
    )
    .assert_one_error_line(5);

    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let token = token_file.to_str().unwrap();
    let server = Server::start(&dir, &["--token-file", token, "--token-for-reads"]);
    let body = serde_json::to_string(&record(1)).unwrap();
    let json = ("Content-Type", "application/json");
    let (status, answer) = http(server.addr, "POST", "/v1/records", &[json], &body);
    assert_eq!(status, 401, "write without the token: {answer}");
    let (status, _) = http(
        server.addr,
        "POST",
        "/v1/records",
        &[json, ("Authorization", "Bearer wrong")],
        &body,
    );
    assert_eq!(status, 401, "write with a wrong token");
    let (status, answer) = http(
        server.addr,
        "POST",
        "/v1/records",
        &[json, ("Authorization", "Bearer s3cret-token")],
        &body,
    );
    assert_eq!(status, 201, "{answer}");

    // --url with and without --token-file (reads need it here).
    let out = run(&["--url", &server.url, "get", "1"]);
    assert!(out.assert_one_error_line(6).contains("401"), "{out:?}");
    let out = run(&[
        "--url",
        &server.url,
        "--token-file",
        token,
        "get",
        "1",
        "--format",
        "json",
    ]);
    let got: TransactionRecord = serde_json::from_str(out.assert_ok().trim()).unwrap();
    assert_eq!(got.transaction_signature, record(1).transaction_signature);
    assert_eq!(server.stop(), 0);
}

#[test]
fn serve_with_a_token_on_a_public_address_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "another-token").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("serving"), "{first}");
    // Bound on every interface, so reachable on loopback too.
    let port: u16 = first
        .rsplit(':')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, body) = http(addr, "GET", "/healthz", &[], "");
    assert_eq!(status, 200, "{body}");
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)), 0);
}
