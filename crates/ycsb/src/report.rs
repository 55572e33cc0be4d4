//! The markdown report: per-cell figures, ratios against the best other system, and the
//! issue's targets.

use std::fmt::Write;

use tiered_storage::{HotConfig, WarmConfig};

use crate::bench::{CellResult, Workload};
use crate::systems::Kind;
use crate::{Args, RunReport};

const MIB: f64 = 1024.0 * 1024.0;

fn cell<'a>(rep: &'a RunReport, w: &str, k: usize, system: &str) -> Option<&'a CellResult> {
    rep.cells
        .iter()
        .find(|c| c.workload == w && c.k == k && c.system == system)
}

/// This store's cell and the best other system's (by throughput) for one workload and K.
fn versus<'a>(rep: &'a RunReport, w: &str, k: usize) -> Option<(&'a CellResult, &'a CellResult)> {
    let ours = cell(rep, w, k, Kind::Ours.name())?;
    let best = rep
        .cells
        .iter()
        .filter(|c| c.workload == w && c.k == k && c.system != Kind::Ours.name())
        .max_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec))?;
    Some((ours, best))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

pub fn markdown(rep: &RunReport, args: &Args) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n## YCSB: {} records, {} s per cell, 2 runtime workers, {} in total\n",
        rep.records,
        rep.seconds_per_cell,
        fmt_secs(rep.total_secs)
    );

    let _ = writeln!(o, "### Load (child process per system)\n");
    let _ = writeln!(
        o,
        "| system | how | records | seconds | records/s | RSS growth MiB |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|");
    for l in &rep.loads {
        let how = if l.system == Kind::Ours.name() {
            "64 concurrent puts"
        } else if l.copied_from.is_some() {
            "copy of the rusqlite file (RSS: its loader's)"
        } else if l.reused {
            "batched (reused dir)"
        } else {
            "batched transactions"
        };
        let rate = if l.copied_from.is_some() {
            "–".to_owned()
        } else {
            format!("{:.0}", l.records as f64 / l.secs)
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.1} | {} | {:.1} |",
            l.system,
            how,
            l.records,
            l.secs,
            rate,
            l.growth() as f64 / MIB
        );
    }

    let _ = writeln!(o, "\n### Cells\n");
    let _ = writeln!(
        o,
        "| workload | K | system | ops/s | read p50 µs | read p99 µs | write p50 µs | write p99 µs | tiered / best other |"
    );
    let _ = writeln!(o, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for c in &rep.cells {
        let ratio = if c.system == Kind::Ours.name() {
            versus(rep, &c.workload, c.k)
                .map(|(ours, best)| {
                    format!(
                        "{:.2} ({})",
                        ours.ops_per_sec / best.ops_per_sec,
                        best.system
                    )
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            c.workload,
            c.k,
            c.system,
            c.ops_per_sec,
            lat(c.reads, c.read_p50_us),
            lat(c.reads, c.read_p99_us),
            lat(c.writes, c.write_p50_us),
            lat(c.writes, c.write_p99_us),
            ratio
        );
    }

    let ycsb: Vec<Workload> = args
        .workloads
        .iter()
        .copied()
        .filter(|w| Workload::YCSB.contains(w))
        .collect();
    let _ = writeln!(
        o,
        "\n### Throughput ratio, tiered / best other system (> 1: tiered faster)\n"
    );
    let _ = write!(o, "| workload |");
    for k in &args.ks {
        let _ = write!(o, " K={k} |");
    }
    let _ = write!(o, "\n|---|");
    for _ in &args.ks {
        let _ = write!(o, "---:|");
    }
    let _ = writeln!(o);
    let row = |o: &mut String, w: &str, label: &str, ks: &[usize]| {
        let _ = write!(o, "| {label} |");
        for &k in ks {
            match versus(rep, w, k) {
                Some((ours, best)) => {
                    let _ = write!(o, " {:.2} |", ours.ops_per_sec / best.ops_per_sec);
                }
                None => {
                    let _ = write!(o, " |");
                }
            }
        }
        let _ = writeln!(o);
    };
    for w in &ycsb {
        row(
            &mut o,
            w.name(),
            &format!("{} {}", w.name(), w.describe()),
            &args.ks[..],
        );
    }
    if versus(rep, "load", 64).is_some() {
        row(
            &mut o,
            "load",
            "load: 64 writers, 1 durable write each (K=64)",
            &[64],
        );
    }
    if versus(rep, "history", 1).is_some() {
        row(
            &mut o,
            "history",
            "history: uniform reads, 80% archived (K=1, 16)",
            &[1, 16],
        );
    }

    // The targets.
    let _ = writeln!(o, "\n### Targets (issue 11)\n");
    let _ = writeln!(o, "| measure | target | measured | verdict |");
    let _ = writeln!(o, "|---|---|---|---|");
    let mut ratios = Vec::new();
    for w in &ycsb {
        for &k in &args.ks {
            if let Some((ours, best)) = versus(rep, w.name(), k) {
                ratios.push((ours.ops_per_sec / best.ops_per_sec, w.name(), k));
            }
        }
    }
    if !ratios.is_empty() {
        let met = ratios.iter().filter(|r| r.0 >= 1.5).count();
        let min = ratios
            .iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("non-empty");
        let _ = writeln!(
            o,
            "| YCSB cells | ≥ 1.5× best other | {met} of {} cells; lowest {:.2} ({} K={}) | {} |",
            ratios.len(),
            min.0,
            min.1,
            min.2,
            verdict(met == ratios.len())
        );
    }
    for w in ["B", "D"] {
        let Some(ours) = cell(rep, w, 64, Kind::Ours.name()) else {
            continue;
        };
        let best = rep
            .cells
            .iter()
            .filter(|c| {
                c.workload == w && c.k == 64 && c.system != Kind::Ours.name() && c.writes > 0
            })
            .min_by(|a, b| a.write_p99_us.total_cmp(&b.write_p99_us));
        if let Some(best) = best {
            let _ = writeln!(
                o,
                "| write p99, {w} K=64 | ≤ best other's | {:.0} µs vs {:.0} µs ({}) | {} |",
                ours.write_p99_us,
                best.write_p99_us,
                best.system,
                verdict(ours.write_p99_us <= best.write_p99_us)
            );
        }
    }
    if let (Some(&k1), Some(&kmax)) = (args.ks.iter().min(), args.ks.iter().max()) {
        let mut worst: Option<(f64, &str, usize)> = None;
        for w in &ycsb {
            let Some(base) = cell(rep, w.name(), k1, Kind::Ours.name()) else {
                continue;
            };
            for &k in args.ks.iter().filter(|&&k| k > k1) {
                if let Some(c) = cell(rep, w.name(), k, Kind::Ours.name()) {
                    let r = c.ops_per_sec / base.ops_per_sec;
                    if worst.is_none_or(|x| r < x.0) {
                        worst = Some((r, w.name(), k));
                    }
                }
            }
        }
        if let Some((r, w, k)) = worst {
            let _ = writeln!(
                o,
                "| throughput K={k1} → K={kmax} | never falls > 20% | worst {w}: K={k} at {:.2}× K={k1} | {} |",
                r,
                verdict(r >= 0.8)
            );
        }
    }
    for k in [1, 16] {
        if let Some((ours, best)) = versus(rep, "history", k) {
            let r = ours.ops_per_sec / best.ops_per_sec;
            let _ = writeln!(
                o,
                "| history K={k} | ≥ 0.5× plain SQLite | {:.2}× ({:.0} vs {:.0} reads/s; p99 {:.0} vs {:.0} µs) | {} |",
                r,
                ours.ops_per_sec,
                best.ops_per_sec,
                ours.read_p99_us,
                best.read_p99_us,
                verdict(r >= 0.5)
            );
        }
    }
    if let Some(d) = &rep.disk {
        let last = *d.ours_bytes.last().expect("measured");
        let per_ours = last as f64 / d.ours_records.max(1) as f64;
        let per_lite = d.sqlite_bytes as f64 / d.sqlite_records.max(1) as f64;
        let r = per_ours / per_lite;
        let _ = writeln!(
            o,
            "| disk after archiving 80% | ≤ 0.4× plain SQLite | {:.2}× per record: {:.1} MiB for {} records (was {:.1} MiB before {} warm upkeeps) vs {:.1} MiB for {} | {} |",
            r,
            last as f64 / MIB,
            d.ours_records,
            d.ours_bytes[0] as f64 / MIB,
            d.upkeep_runs,
            d.sqlite_bytes as f64 / MIB,
            d.sqlite_records,
            verdict(r <= 0.4)
        );
    }
    let load_of = |k: Kind| rep.loads.iter().find(|l| l.system == k.name());
    if let (Some(ours), Some(lite)) = (load_of(Kind::Ours), load_of(Kind::Sqlite)) {
        let hot = HotConfig::default().capacity as f64 * 1024.0;
        let warm = WarmConfig::default().cache_mib as f64 * MIB;
        let allowed = 2.0 * lite.growth() as f64 + hot + warm;
        let _ = writeln!(
            o,
            "| RSS growth after loading | ≤ 2× hand-written + caches | {:.1} MiB vs 2 × {:.1} MiB + {:.1} MiB (hot: {} records × 1 KiB; warm writer page cache {} MiB) | {} |",
            ours.growth() as f64 / MIB,
            lite.growth() as f64 / MIB,
            (hot + warm) / MIB,
            HotConfig::default().capacity,
            WarmConfig::default().cache_mib,
            verdict(ours.growth() as f64 <= allowed)
        );
    }
    if let Some((ours, best)) = versus(rep, "load", 64) {
        let _ = writeln!(
            o,
            "| load, 64 writers | (ratio) | {:.0} vs {:.0} records/s ({}): {:.2}× | |",
            ours.ops_per_sec,
            best.ops_per_sec,
            best.system,
            ours.ops_per_sec / best.ops_per_sec
        );
    }
    if let Some(b) = &rep.backlog {
        let _ = writeln!(
            o,
            "| put p99 while a backlog is archived | ≤ 5 ms | p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({} puts; {} of {} due records archived in {:.0} s) | {} |",
            b.put_p50_us,
            b.put_p99_us,
            b.put_max_us,
            b.puts,
            b.archived_during,
            b.backlog_records,
            b.secs,
            verdict(b.put_p99_us <= 5000.0)
        );
    }
    if !rep.failures.is_empty() {
        let _ = writeln!(o, "\n### Failures\n");
        for f in &rep.failures {
            let _ = writeln!(o, "- {f}");
        }
    }
    o
}

fn lat(count: u64, v: f64) -> String {
    if count == 0 {
        "–".into()
    } else {
        format!("{v:.0}")
    }
}

fn fmt_secs(s: f64) -> String {
    format!("{:.0} s", s)
}
