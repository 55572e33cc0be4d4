//! One owner per data directory (invariant 7).
//!
//! A read-write open takes an exclusive `flock` on `<data_dir>/LOCK` before it touches anything
//! else in the directory, and writes the holder's pid, host and start time into the file. A
//! second open, from this process or another, fails at once with [`Error::AlreadyOpen`] naming
//! that holder. The lock belongs to the open file description, so it is released when the store
//! closes its writer (shutdown or drop) and by the kernel when the process dies: a lock file
//! left behind by a killed process is only a file, and never blocks a restart.
//!
//! Read-only opens take no lock: they write nothing, and tolerate the owner's moves.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// File name of the ownership lock inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// The held lock. Dropping it closes the file, which releases the `flock`.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Take the exclusive lock of `dir`, or fail with [`Error::AlreadyOpen`] naming the holder.
    pub(crate) fn acquire(dir: &Path, started_ms: i64) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let io = |op: &'static str| {
            let path = path.clone();
            move |source| Error::Io { op, path, source }
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open lock file"))?;
        if let Err(e) = try_lock(&file) {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                let mut holder = String::new();
                // The holder writes its line right after locking; an empty read means it has
                // not yet, and the message says so.
                let _ = file.read_to_string(&mut holder);
                return Err(Error::AlreadyOpen {
                    path: dir.to_path_buf(),
                    holder: describe_holder(holder.trim()),
                });
            }
            return Err(io("lock")(e));
        }
        let line = format!(
            "pid={} host={} since_ms={} since={}\n",
            std::process::id(),
            host_name(),
            started_ms,
            utc_text(started_ms),
        );
        file.set_len(0).map_err(io("truncate lock file"))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io("seek lock file"))?;
        file.write_all(line.as_bytes())
            .map_err(io("write lock file"))?;
        Ok(Self { _file: file })
    }
}

fn try_lock(file: &File) -> std::io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    flock(file, FlockOperation::NonBlockingLockExclusive).map_err(std::io::Error::from)
}

/// "pid 123 on host h since 2026-11-30 04:33:42 UTC" from the lock file's line.
fn describe_holder(line: &str) -> String {
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    match (field("pid"), field("host"), field("since_ms")) {
        (Some(pid), Some(host), Some(ms)) => {
            let since = ms
                .parse::<i64>()
                .map(utc_text)
                .unwrap_or_else(|_| ms.into());
            format!("pid {pid} on host {host} since {since}")
        }
        _ => "another opener that has not yet recorded itself".into(),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian, days-from-civil
/// inverted).
pub(crate) fn utc_text(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_matches_known_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_text(1_796_013_222_000), "2026-11-30 04:33:42 UTC");
        assert_eq!(utc_text(-1000), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn second_lock_names_the_holder_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), 1_796_013_222_000).unwrap();
        let err = DirLock::acquire(dir.path(), 0).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::AlreadyOpen { .. }), "{err:?}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("2026-11-30 04:33:42 UTC"), "{text}");
        drop(first);
        DirLock::acquire(dir.path(), 5).unwrap();
    }

    #[test]
    fn a_stale_lock_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LOCK_FILE),
            "pid=999999 host=gone since_ms=1\n",
        )
        .unwrap();
        DirLock::acquire(dir.path(), 2).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(
            text.starts_with(&format!("pid={} ", std::process::id())),
            "{text}"
        );
    }
}
