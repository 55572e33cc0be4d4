//! Disk figures for alerts: bytes under the data directory (measured by walking it) and free
//! bytes on its file system (`statvfs`).

use std::path::Path;

use super::alerts::DiskFigures;

/// Measure `dir`: the sum of the sizes of the files under it, and the bytes its file system
/// has free for unprivileged users. Unreadable entries are skipped (they cannot be counted);
/// a missing directory measures 0.
pub(crate) fn measure(dir: &Path) -> DiskFigures {
    DiskFigures {
        data_dir_bytes: dir_bytes(dir),
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

    #[test]
    fn metrics_disk_counts_every_file_under_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir_all(dir.path().join("x/y")).unwrap();
        std::fs::write(dir.path().join("x/y/b"), vec![0u8; 234]).unwrap();
        let figures = measure(dir.path());
        assert_eq!(figures.data_dir_bytes, 1234);
        if cfg!(unix) {
            assert!(figures.free_bytes.unwrap() > 0);
        }
        assert_eq!(measure(&dir.path().join("missing")).data_dir_bytes, 0);
    }
}
