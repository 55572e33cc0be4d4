//! Helpers shared by the CLI's process tests: run the built binary, make records, talk HTTP.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tiered_storage::{Outcome, PremintCandidate, ScoredCandidate, TransactionRecord};

pub const BIN: &str = env!("CARGO_BIN_EXE_tiered-storage");

/// What a finished command printed and returned.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Assert the command failed with `code` and exactly one `error: ...` line on stderr, with
    /// no panic or backtrace text.
    #[track_caller]
    pub fn assert_one_error_line(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "one error line expected: {self:?}");
        assert_eq!(
            self.stderr.trim_end().lines().last(),
            Some(*errors[0]),
            "the error is the last line: {self:?}"
        );
        for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(!self.stderr.contains(bad), "`{bad}` in stderr: {self:?}");
        }
        errors[0]
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        &self.stdout
    }
}

/// Run the binary with `args`; stdin is empty (not a terminal); backtraces would be enabled.
pub fn run(args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("TIERED_STORAGE_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run tiered-storage");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run with `--data-dir dir` before the arguments.
pub fn run_in(dir: &Path, args: &[&str]) -> Out {
    let dir = dir.to_str().expect("utf-8 temp path");
    let mut all = vec!["--data-dir", dir];
    all.extend_from_slice(args);
    run(&all)
}

/// A realistic record; `n` makes it unique (signature, mint). Its decision time is in 2023, so
/// any archival cut-off moves it.
pub fn record(n: u64) -> TransactionRecord {
    TransactionRecord {
        id: None,
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                mint: format!("Mint{n:040}"),
                creator: format!("Creator{n:037}"),
                program: if n.is_multiple_of(2) {
                    "ProgEven".into()
                } else {
                    "ProgOdd".into()
                },
                slot: 250_000_000 + n,
                timestamp: 1_700_000_000_000 + n as i64,
                instruction_summary: Some("create+buy, \"quoted\"".into()),
                is_jito_bundle: if n.is_multiple_of(3) {
                    None
                } else {
                    Some(n.is_multiple_of(2))
                },
            },
            predicted_score: (n % 101) as u8,
            feature_scores: BTreeMap::from([("liquidity".to_owned(), 0.1 + n as f64 / 7.0)]),
            reason: "strong early liquidity\nsecond line".into(),
            calculation_time_us: 40 + n,
            anomaly_detected: n.is_multiple_of(5),
            timestamp: 1_700_000_000_000 + n as i64,
        },
        transaction_signature: Some(format!("{n:0>88}")),
        buy_price_sol: Some(0.000_001 * (1 + n) as f64),
        sell_price_sol: None,
        amount_bought_tokens: Some(1_000_000.0),
        amount_sold_tokens: None,
        initial_sol_spent: Some(0.5),
        final_sol_received: None,
        timestamp_decision_made: 1_700_000_000_000 + n as i64 * 1000,
        timestamp_transaction_sent: Some(1_700_000_000_050 + n as i64),
        timestamp_outcome_evaluated: None,
        actual_outcome: match n % 4 {
            0 => Outcome::Profit(0.01 * n as f64),
            1 => Outcome::PendingConfirmation,
            2 => Outcome::Loss(0.001),
            _ => Outcome::ExecutionError("rpc, timeout".into()),
        },
        market_context_snapshot: BTreeMap::from([("sol_usd".to_owned(), 150.0 + n as f64)]),
    }
}

/// Write records as JSON lines.
pub fn write_jsonl(path: &Path, records: &[TransactionRecord]) {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Import records 1..=n into `dir` through the CLI.
pub fn load(dir: &Path, n: u64) {
    let file = dir.with_extension("load.jsonl");
    write_jsonl(&file, &(1..=n).map(record).collect::<Vec<_>>());
    run_in(dir, &["import", file.to_str().unwrap()]).assert_ok();
}

/// Parse JSON lines of records.
pub fn parse_lines(text: &str) -> Vec<TransactionRecord> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a record line: {e}: {l}")))
        .collect()
}

/// Without ids, for comparing records stored under different ids.
pub fn without_ids(mut records: Vec<TransactionRecord>) -> Vec<TransactionRecord> {
    for r in &mut records {
        r.id = None;
    }
    records
}

/// Send a signal with kill(1).
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Wait for a child to exit, at most `timeout`; kill it and fail if it does not.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("child did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = match text.find("\r\n\r\n") {
        Some(i) => text[i + 4..].to_owned(),
        None => String::new(),
    };
    let chunked = text[..text.find("\r\n\r\n").unwrap_or(0)]
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(&body) } else { body })
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("\r\n") {
        let size = usize::from_str_radix(rest[..i].trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[i + 2..i + 2 + size]);
        rest = &rest[i + 2 + size + 2..];
    }
    out
}

/// A `tiered-storage serve` child process on a port the system chose.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub url: String,
}

impl Server {
    /// Start `serve --listen 127.0.0.1:0` (plus `extra`) on `dir` and wait for /healthz.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("serve printed its address");
            if let Some(rest) = line.split("http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.parse::<SocketAddr>().expect("an address");
            }
        };
        let start = Instant::now();
        loop {
            if let Ok(mut s) = TcpStream::connect(addr) {
                let _ =
                    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no /healthz");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            addr,
            url: format!("http://{addr}"),
        }
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> i32 {
        signal(&self.child, "TERM");
        wait_exit(&mut self.child, Duration::from_secs(60))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Read lines from a child's stdout on a thread; `recv_timeout` on the receiver.
pub fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
