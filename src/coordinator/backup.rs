//! Online backup: a consistent copy of a running store that opens as a store of its own.
//!
//! 1. The warm database is copied through SQLite's online backup API in one step, so the copy is
//!    one snapshot of the database (catalog included) while writers go on: in WAL mode the
//!    backup is a reader, and readers never block the writer.
//! 2. Exactly the cold files that snapshot's catalog references are then hard-linked (or copied,
//!    across file systems) into the copy. Tier moves wait meanwhile (the moves lock), so no file
//!    the snapshot references is compacted away before it is taken; puts, updates, removes and
//!    reads carry on. Cold files are immutable, so a link is as good as a copy.
//! 3. Everything is fsynced. Restoring is opening the copy.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::AutoTieringCoordinator;
use crate::blocking::run_blocking;
use crate::cold_storage::{ColdArchiveStorage, COLD_DIR};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::warm_storage::WARM_DB_FILE;

/// What [`AutoTieringCoordinator::backup_to`] copied.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackupReport {
    /// The backup directory.
    pub dir: PathBuf,
    /// Bytes of the warm database copy.
    pub warm_bytes: u64,
    /// Cold files taken (every file the snapshot's catalog references).
    pub cold_files: u64,
    /// Bytes of those files.
    pub cold_bytes: u64,
    /// Of them, files hard-linked rather than copied.
    pub linked: u64,
    /// How long the backup took.
    pub elapsed: Duration,
}

impl<R: Record> AutoTieringCoordinator<R> {
    /// Take a consistent copy of the running store into `dir`, which must not exist or be
    /// empty. The copy holds the warm database as of one snapshot and exactly the cold files
    /// that snapshot's catalog references; open it like any store to restore it.
    ///
    /// Writes and reads go on during the backup; archival and compaction wait for it. On a
    /// failure the partial copy is removed.
    #[tracing::instrument(level = "info", skip(self, dir), fields(dir = %dir.as_ref().display()))]
    pub async fn backup_to(&self, dir: impl AsRef<Path>) -> Result<BackupReport> {
        let dir = dir.as_ref().to_path_buf();
        self.check_open_or_read_only()?;
        let _move = self.moves.lock().await;
        let started = Instant::now();
        let warm = self.warm.clone();
        let cold = self.cold.clone();
        let target = dir.clone();
        let mut report = run_blocking(move || {
            prepare_target(&target)?;
            let taken = (|| {
                let warm_bytes = warm.backup_into(&target.join(WARM_DB_FILE))?;
                let mut report = copy_cold_files(&cold, &target)?;
                report.warm_bytes = warm_bytes;
                fsync_dir(&target)?;
                Ok(report)
            })();
            if taken.is_err() {
                let _ = std::fs::remove_dir_all(&target);
            }
            taken
        })
        .await??;
        report.dir = dir;
        report.elapsed = started.elapsed();
        tracing::info!(
            warm_bytes = report.warm_bytes,
            cold_files = report.cold_files,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "backup taken"
        );
        Ok(report)
    }
}

/// Create `dir`, or accept it if it exists and is empty.
fn prepare_target(dir: &Path) -> Result<()> {
    let io = |op: &'static str| {
        let path = dir.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io("list backup directory"))?;
        if entries.next().is_some() {
            return Err(Error::Io {
                op: "back up into (it is not empty; choose a new directory)",
                path: dir.to_path_buf(),
                source: std::io::ErrorKind::AlreadyExists.into(),
            });
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io("create backup directory"))
}

/// Make a directory's entries durable (the backup directory; an export's target directory).
pub(super) fn fsync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::Io {
                op: "fsync directory",
                path: dir.to_path_buf(),
                source,
            })
    }
    #[cfg(not(unix))]
    {
        // Directory handles cannot be fsynced here; metadata is journaled by the filesystem.
        let _ = dir;
        Ok(())
    }
}

/// Link (or copy) every cold file the copied catalog references.
fn copy_cold_files<R: Record>(cold: &ColdArchiveStorage<R>, target: &Path) -> Result<BackupReport> {
    let db = target.join(WARM_DB_FILE);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| Error::Sqlite {
                op: "open backup copy",
                path: db.clone(),
                source,
            })?;
    let paths: Vec<String> = conn
        .prepare("SELECT path FROM cold_files UNION ALL SELECT path FROM cold_delete_files")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|source| Error::Sqlite {
            op: "read the copy's catalog",
            path: db.clone(),
            source,
        })?;
    drop(conn);
    let exported = cold.export_to(&paths, &target.join(COLD_DIR))?;
    Ok(BackupReport {
        cold_files: exported.files,
        cold_bytes: exported.bytes,
        linked: exported.linked,
        ..BackupReport::default()
    })
}
