//! The S3 servers of the object-store tests: the two instances `scripts/test.sh` starts
//! (through `scripts/s3_server.sh`, which exports where they are), and instances a test starts,
//! stops and restarts itself.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use tiered_storage::StorageConfig;

/// What `scripts/s3_server.sh env` exports.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// `http://127.0.0.1:PORT` of the primary.
    pub endpoint: String,
    /// The replica's endpoint, when a second instance runs.
    pub endpoint_2: Option<String>,
    pub bucket: String,
    /// The primary's root directory: the bucket is `root/bucket`, an object is a file.
    pub root: PathBuf,
    pub root_2: Option<PathBuf>,
    /// `scripts/s3_server.sh`, to start instances of a test's own.
    pub script: PathBuf,
    /// The script's state directory.
    pub state: Option<PathBuf>,
}

/// `TIERED_STORAGE_S3_REQUIRED=1` (set by `scripts/test.sh`): a missing server fails.
pub const REQUIRED_ENV: &str = "TIERED_STORAGE_S3_REQUIRED";

impl S3Env {
    /// The servers, or `None` after printing why the test skips (a panic when they are
    /// required).
    pub fn get(test: &str) -> Option<Self> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let missing: Vec<&str> = [
            "TIERED_STORAGE_S3_ENDPOINT",
            "TIERED_STORAGE_S3_BUCKET",
            "TIERED_STORAGE_S3_ROOT",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]
        .into_iter()
        .filter(|n| var(n).is_none())
        .collect();
        if !missing.is_empty() {
            let why = format!(
                "no S3 server ({} unset); scripts/test.sh starts two s3s-fs instances and runs \
                 this test, or run `eval \"$(bash scripts/s3_server.sh start primary >/dev/null; \
                 bash scripts/s3_server.sh start replica >/dev/null; bash scripts/s3_server.sh env)\"` first",
                missing.join(", ")
            );
            if std::env::var(REQUIRED_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: {why} ({REQUIRED_ENV}=1)");
            }
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
        let script = var("TIERED_STORAGE_S3_SCRIPT").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3_server.sh"),
            PathBuf::from,
        );
        Some(Self {
            endpoint: var("TIERED_STORAGE_S3_ENDPOINT").unwrap(),
            endpoint_2: var("TIERED_STORAGE_S3_ENDPOINT_2"),
            bucket: var("TIERED_STORAGE_S3_BUCKET").unwrap(),
            root: PathBuf::from(var("TIERED_STORAGE_S3_ROOT").unwrap()),
            root_2: var("TIERED_STORAGE_S3_ROOT_2").map(PathBuf::from),
            script,
            state: var("TIERED_STORAGE_S3_STATE").map(PathBuf::from),
        })
    }

    /// A prefix no other test (or run) uses: `<tag>-<pid>-<n>`.
    pub fn unique_prefix(tag: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!(
            "{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The directory that holds the objects under `prefix` in the primary's bucket.
    pub fn objects_dir(&self, prefix: &str) -> PathBuf {
        self.root.join(&self.bucket).join(prefix)
    }
}

/// `config` with its cold tier in `s3://bucket/prefix` on the server at `endpoint`
/// (credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
pub fn put_cold_in_s3(config: &mut StorageConfig, endpoint: &str, bucket: &str, prefix: &str) {
    config.cold.store = format!("s3://{bucket}/{prefix}");
    config.cold.s3_endpoint = Some(endpoint.to_owned());
    config.cold.s3_region = Some("us-east-1".to_owned());
    config.cold.s3_allow_http = true;
}

/// Add a replica in `s3://bucket/prefix` on the server at `endpoint` (`[[cold.replicas]]`,
/// written as TOML so this needs no public name for the replica type).
pub fn add_replica(
    config: &mut StorageConfig,
    name: &str,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) {
    let toml = format!(
        "name = {name:?}\nstore = \"s3://{bucket}/{prefix}\"\ns3_endpoint = {endpoint:?}\n\
         s3_region = \"us-east-1\"\ns3_allow_http = true\n"
    );
    config
        .cold
        .replicas
        .push(toml::from_str(&toml).expect("replica TOML"));
}

/// Every `.parquet` file under `dir`, as `/`-separated paths relative to it.
pub fn parquet_files(dir: &Path) -> std::collections::BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let rel = p.strip_prefix(base).unwrap();
                out.insert(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// An s3s-fs instance of a test's own (`scripts/s3_server.sh start NAME`), which it may stop
/// and restart on the same port and root; removed (stopped, root deleted) when dropped.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub port: u16,
    pub root: PathBuf,
    script: PathBuf,
}

impl Server {
    /// Start an instance named `<tag>-<pid>-<n>`.
    pub fn start(env: &S3Env, tag: &str) -> Self {
        let name = S3Env::unique_prefix(tag);
        let out = run_script(&env.script, "start", &name);
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in `s3_server.sh start {name}`: {out}"))
                .to_owned()
        };
        Self {
            port: field("PORT=").parse().unwrap(),
            root: PathBuf::from(field("ROOT=")),
            name,
            script: env.script.clone(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory of the objects under `prefix` in `bucket`.
    pub fn objects_dir(&self, bucket: &str, prefix: &str) -> PathBuf {
        self.root.join(bucket).join(prefix)
    }

    /// Kill the server (its port then refuses connections); the objects stay.
    pub fn stop(&self) {
        run_script(&self.script, "stop", &self.name);
    }

    /// Start it again on the same port and root.
    pub fn restart(&self) {
        let out = run_script(&self.script, "start", &self.name);
        assert!(
            out.contains(&format!("PORT={}", self.port)),
            "restarted on another port: {out}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .args(["remove", &self.name])
            .output();
    }
}

fn run_script(script: &Path, cmd: &str, name: &str) -> String {
    let out = Command::new("bash")
        .arg(script)
        .args([cmd, name])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{} {cmd} {name}` failed: {}\n{stdout}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
