//! Disk figures for alerts: bytes under the data directory (measured by walking it, only when a
//! disk budget is configured) and free bytes on its file system (`statvfs`).

use std::path::Path;

use super::alerts::DiskFigures;
use crate::config::AlertConfig;

/// Measure `dir` for the alerts `cfg` enables: the sum of the sizes of the files under it, and
/// the bytes its file system has free for unprivileged users.
///
/// The size needs a walk of the whole tree (every partition, every file), so it is measured
/// only when `cfg.disk_budget_bytes` is set, the one alert that reads it; otherwise it is
/// `None`. Free space is one `statvfs` call and is always measured. Unreadable entries are
/// skipped (they cannot be counted); a missing directory measures 0.
pub(crate) fn measure(dir: &Path, cfg: &AlertConfig) -> DiskFigures {
    DiskFigures {
        data_dir_bytes: cfg.disk_budget_bytes.map(|_| dir_bytes(dir)),
        free_bytes: free_bytes(dir),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    match rustix::fs::statvfs(dir) {
        Ok(s) => Some(s.f_bavail.saturating_mul(s.f_frsize)),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "statvfs failed");
            None
        }
    }
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::{evaluate, AlertKind, Inputs};

    fn budget(bytes: Option<u64>) -> AlertConfig {
        AlertConfig {
            disk_budget_bytes: bytes,
            ..AlertConfig::default()
        }
    }

    #[test]
    fn metrics_disk_counts_every_file_under_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir_all(dir.path().join("x/y")).unwrap();
        std::fs::write(dir.path().join("x/y/b"), vec![0u8; 234]).unwrap();
        let cfg = budget(Some(1));
        let figures = measure(dir.path(), &cfg);
        assert_eq!(figures.data_dir_bytes, Some(1234));
        if cfg!(unix) {
            assert!(figures.free_bytes.unwrap() > 0);
        }
        assert_eq!(
            measure(&dir.path().join("missing"), &cfg).data_dir_bytes,
            Some(0)
        );
    }

    #[test]
    fn monitor_disk_walks_only_when_a_budget_is_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cold/date=2026-01-01")).unwrap();
        std::fs::write(
            dir.path().join("cold/date=2026-01-01/part.parquet"),
            vec![0u8; 4096],
        )
        .unwrap();
        // No budget (the default): the tree is not walked, free space is still measured.
        let unbudgeted = measure(dir.path(), &AlertConfig::default());
        assert_eq!(unbudgeted.data_dir_bytes, None);
        if cfg!(unix) {
            assert!(unbudgeted.free_bytes.unwrap() > 0);
        }
        // A budget: walked, and the alert fires once the directory holds more.
        let cfg = budget(Some(4095));
        let budgeted = measure(dir.path(), &cfg);
        assert_eq!(budgeted.data_dir_bytes, Some(4096));
        let findings = evaluate(
            &cfg,
            &Inputs {
                metrics: &Default::default(),
                disk: budgeted,
                cold_problems: &[],
                warm_corruption: None,
                replication_lag_alert_secs: 300,
                failover_alert_after: 3,
            },
        );
        assert!(
            findings.iter().any(|f| f.kind == AlertKind::DiskBudget),
            "{findings:?}"
        );
    }
}
