//! One cell: K tasks running a workload against one system for a fixed time.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::data::{self, is_record};
use crate::keys::{Rng, ScrambledZipf, Zipf};
use crate::systems::{Kind, Sys};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Workload {
    /// 50% read / 50% update, zipfian.
    A,
    /// 95% read / 5% update, zipfian.
    B,
    /// 100% read, zipfian.
    C,
    /// 95% read of the latest records / 5% insert.
    D,
    /// B, reading by signature.
    BSig,
    /// 50% read / 50% read-modify-write, zipfian.
    F,
    /// 100% insert (each task one write at a time).
    Load,
    /// 100% read, uniform over the loaded records (after 80% were archived).
    History,
}

impl Workload {
    pub const YCSB: [Workload; 6] = [
        Workload::A,
        Workload::B,
        Workload::C,
        Workload::D,
        Workload::BSig,
        Workload::F,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::A => "A",
            Workload::B => "B",
            Workload::C => "C",
            Workload::D => "D",
            Workload::BSig => "B-sig",
            Workload::F => "F",
            Workload::Load => "load",
            Workload::History => "history",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Workload::A => "50% read / 50% update",
            Workload::B => "95% read / 5% update",
            Workload::C => "100% read",
            Workload::D => "read-latest + 5% insert",
            Workload::BSig => "B by signature",
            Workload::F => "read-modify-write",
            Workload::Load => "insert, 1 durable write per task at a time",
            Workload::History => "uniform reads, 80% of records archived",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Workload> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "a" => Workload::A,
            "b" => Workload::B,
            "c" => Workload::C,
            "d" => Workload::D,
            "b-sig" | "bsig" | "b-by-signature" => Workload::BSig,
            "f" => Workload::F,
            "load" => Workload::Load,
            "history" => Workload::History,
            _ => anyhow::bail!("unknown workload {s:?} (a, b, c, d, bsig, f, load, history)"),
        })
    }
}

/// What a cell's tasks share about one system.
pub struct Target {
    pub kind: Kind,
    pub sys: Sys,
    /// The id loaded record `i` got (peers: `i + 1`; this store: whatever `put` returned).
    pub ids: Option<Arc<Vec<i64>>>,
    /// Highest id inserted so far (read-latest counts back from it).
    pub latest: AtomicI64,
    /// Record numbers of inserted records.
    pub next_n: AtomicU64,
}

impl Target {
    pub fn id_of(&self, i: u64) -> i64 {
        match &self.ids {
            Some(ids) => ids[i as usize],
            None => i as i64 + 1,
        }
    }
}

/// Settings shared by every cell of a run.
pub struct Shared {
    pub n: u64,
    pub zipf: ScrambledZipf,
    pub latest: Zipf,
    /// Salt of the inserted records' signatures (unique per run).
    pub salt: u64,
    /// Also compare signatures on every read.
    pub full_check: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub workload: String,
    pub k: usize,
    pub system: String,
    pub ops: u64,
    pub secs: f64,
    pub ops_per_sec: f64,
    pub read_p50_us: f64,
    pub read_p99_us: f64,
    pub write_p50_us: f64,
    pub write_p99_us: f64,
    pub write_max_us: f64,
    pub reads: u64,
    pub writes: u64,
    /// Operations that returned an error.
    pub errors: u64,
    /// Reads that found nothing or the wrong record.
    pub bad_reads: u64,
    pub first_error: Option<String>,
}

pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram bounds")
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

struct TaskOut {
    read: Histogram<u64>,
    write: Histogram<u64>,
    errors: u64,
    bad: u64,
    first_error: Option<String>,
}

impl TaskOut {
    fn error(&mut self, e: anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{e:#}"));
        }
    }

    /// Account a read's outcome: found and right, found wrong or missing, or an error.
    fn read_done(&mut self, t0: Instant, r: anyhow::Result<Option<bool>>) {
        self.read.saturating_record(t0.elapsed().as_nanos() as u64);
        match r {
            Ok(Some(true)) => {}
            Ok(_) => self.bad += 1,
            Err(e) => self.error(e),
        }
    }

    fn write_done(&mut self, t0: Instant, r: anyhow::Result<()>) {
        self.write.saturating_record(t0.elapsed().as_nanos() as u64);
        if let Err(e) = r {
            self.error(e);
        }
    }
}

/// Run `w` with `k` tasks against `target` for `secs`.
pub async fn run_cell(
    shared: Arc<Shared>,
    target: Arc<Target>,
    w: Workload,
    k: usize,
    secs: f64,
    seed: u64,
) -> CellResult {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..k)
        .map(|t| {
            let shared = Arc::clone(&shared);
            let target = Arc::clone(&target);
            tokio::spawn(async move {
                task(
                    &shared,
                    &target,
                    w,
                    deadline,
                    seed.wrapping_mul(1000) + t as u64,
                )
                .await
            })
        })
        .collect();
    let mut read = hist();
    let mut write = hist();
    let (mut errors, mut bad, mut first_error) = (0, 0, None);
    for t in tasks {
        let out = t.await.expect("a benchmark task panicked");
        read.add(&out.read).expect("same bounds");
        write.add(&out.write).expect("same bounds");
        errors += out.errors;
        bad += out.bad;
        first_error = first_error.or(out.first_error);
    }
    let secs = start.elapsed().as_secs_f64();
    let ops = read.len() + write.len();
    CellResult {
        workload: w.name().into(),
        k,
        system: target.kind.name().into(),
        ops,
        secs,
        ops_per_sec: ops as f64 / secs,
        read_p50_us: us(&read, 0.5),
        read_p99_us: us(&read, 0.99),
        write_p50_us: us(&write, 0.5),
        write_p99_us: us(&write, 0.99),
        write_max_us: if write.is_empty() {
            0.0
        } else {
            write.max() as f64 / 1000.0
        },
        reads: read.len(),
        writes: write.len(),
        errors,
        bad_reads: bad,
        first_error,
    }
}

async fn task(
    shared: &Shared,
    target: &Target,
    w: Workload,
    deadline: Instant,
    seed: u64,
) -> TaskOut {
    let mut rng = Rng::new(seed);
    let mut out = TaskOut {
        read: hist(),
        write: hist(),
        errors: 0,
        bad: 0,
        first_error: None,
    };
    let sys = &target.sys;
    let full = shared.full_check;
    while Instant::now() < deadline {
        let p = rng.unit();
        match w {
            Workload::A | Workload::B | Workload::C | Workload::BSig | Workload::F => {
                let i = shared.zipf.next(&mut rng);
                let id = target.id_of(i);
                let read_fraction = match w {
                    Workload::A | Workload::F => 0.5,
                    Workload::C => 1.0,
                    _ => 0.95,
                };
                if p < read_fraction {
                    let t0 = Instant::now();
                    let r = if w == Workload::BSig {
                        let signature = data::signature(i, 0);
                        sys.read_by_signature_with(&signature, |r| is_record(r, id, i, full))
                            .await
                    } else {
                        sys.read_with(id, |r| is_record(r, id, i, full)).await
                    };
                    out.read_done(t0, r);
                } else if w == Workload::F {
                    let t0 = Instant::now();
                    let r = async {
                        let Some(mut rec) = sys.read_owned(id).await? else {
                            anyhow::bail!("read-modify-write: record {id} not found");
                        };
                        anyhow::ensure!(
                            is_record(&rec, id, i, full),
                            "record {id} is not record {i}"
                        );
                        data::close(&mut rec, rng.next_u64());
                        sys.update(&rec).await
                    }
                    .await;
                    out.write_done(t0, r);
                } else {
                    let mut rec = data::record(i);
                    rec.id = Some(id);
                    data::close(&mut rec, rng.next_u64());
                    let t0 = Instant::now();
                    let r = sys.update(&rec).await;
                    out.write_done(t0, r);
                }
            }
            Workload::D | Workload::Load => {
                if w == Workload::D && p < 0.95 {
                    // Count back from the newest id, past the inserts that may be in flight.
                    let back = shared.latest.next(&mut rng) as i64 + 64;
                    let id = (target.latest.load(Ordering::Relaxed) - back).max(1);
                    let t0 = Instant::now();
                    let r = sys.read_with(id, |r| r.id == Some(id)).await;
                    out.read_done(t0, r);
                } else {
                    let n = target.next_n.fetch_add(1, Ordering::Relaxed);
                    let rec = data::inserted(n, shared.salt, now_ms());
                    let t0 = Instant::now();
                    let r = sys.insert(rec).await;
                    let r = r.map(|id| {
                        target.latest.fetch_max(id, Ordering::Relaxed);
                    });
                    out.write_done(t0, r);
                }
            }
            Workload::History => {
                let i = rng.below(shared.n);
                let id = target.id_of(i);
                let t0 = Instant::now();
                let r = sys.read_with(id, |r| is_record(r, id, i, full)).await;
                out.read_done(t0, r);
            }
        }
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
