//! Integrity: telling "removed" from "hidden by damage" after a miss, SQLite's `quick_check`,
//! the corruption alert, and the online backup.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::Connection;

use super::schema::{self, sqlite_err};
use super::WarmSqliteStorage;
use crate::error::{Error, Result};
use crate::record::Record;

impl<R: Record> WarmSqliteStorage<R> {
    /// Ids below this were all committed once, as of now: each is live or removed. Read it
    /// before a lookup, and pass it to [`confirm_absent`](Self::confirm_absent) after a miss.
    pub(crate) fn assigned_below(&self) -> i64 {
        if self.inner.read_only {
            // The owner's counter is in its memory; the committed state bounds it.
            return self
                .query_value(
                    "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'next_id'), 1),
                                coalesce((SELECT max(id) FROM records), 0) + 1,
                                coalesce((SELECT max(max_id) FROM cold_files), 0) + 1)",
                    [],
                    "read next id",
                )
                .ok()
                .flatten()
                .unwrap_or(0);
        }
        self.inner.shared.next_id.load(Ordering::Acquire)
    }

    /// After no tier found `id`: `Ok` if that is the truth (never assigned as of
    /// `assigned_below`, removed, or from before removals were tracked), else
    /// [`Error::Corrupt`]: a committed, unremoved record that cannot be found was hidden by
    /// damage, and must not read as "not found".
    pub(crate) fn confirm_absent(&self, id: i64, assigned_below: i64) -> Result<()> {
        if id < 1 || id >= assigned_below {
            return Ok(());
        }
        let path = &self.inner.path;
        let (tracked_from, removed): (i64, bool) = self.inner.with_reader(|conn| {
            conn.prepare_cached(
                "SELECT coalesce((SELECT value FROM meta WHERE key = 'removed_tracked_from'), 0),
                        EXISTS (SELECT 1 FROM removed WHERE id = ?1)",
            )
            .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(sqlite_err("check a removal", path))
        })?;
        if removed || id < tracked_from {
            return Ok(());
        }
        self.inner.noted(Err(Error::Corrupt {
            path: path.clone(),
            detail: format!(
                "record {id} was stored and never removed, but no tier can find it (a damaged \
                 index or page hides it)"
            ),
        }))
    }

    /// SQLite's `quick_check` of the whole database (blocking; reads every page). Returns its
    /// complaints, empty when the database is sound; a sound check clears the corruption alert.
    pub fn quick_check(&self) -> Result<Vec<String>> {
        let path = &self.inner.path;
        let found = self.inner.with_reader(|conn| {
            let mut stmt = conn
                .prepare("PRAGMA quick_check")
                .map_err(sqlite_err("quick_check", path))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sqlite_err("quick_check", path))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(sqlite_err("quick_check", path))
        });
        // Damage bad enough stops the check itself: that is its finding.
        let found = match found {
            Err(Error::Corrupt { detail, .. }) => vec![detail],
            other => other?,
        };
        let problems: Vec<String> = found.into_iter().filter(|m| m != "ok").collect();
        let mut seen = self.inner.shared.corruption.lock();
        match problems.first() {
            Some(first) => {
                seen.get_or_insert_with(|| format!("quick_check: {first}"));
            }
            None => *seen = None,
        }
        Ok(problems)
    }

    /// Copy the database into `dest` (a new file) through SQLite's online backup API, in one
    /// step: one snapshot, taken as a reader, so the writer is never blocked. Fsyncs the copy
    /// and returns its size. Blocking.
    pub(crate) fn backup_into(&self, dest: &Path) -> Result<u64> {
        use rusqlite::backup::{Backup, StepResult};
        let path = &self.inner.path;
        // Its own connection: the backup holds it for as long as the copy takes.
        let src = self
            .inner
            .noted(schema::open_reader(path, &self.inner.cfg))?;
        let mut dst = Connection::open(dest).map_err(sqlite_err("create backup copy", dest))?;
        let mut attempts = 0;
        loop {
            let backup = Backup::new(&src, &mut dst).map_err(sqlite_err("start backup", path))?;
            let step = self.inner.noted(
                backup
                    .step(-1)
                    .map_err(sqlite_err("back up the warm database", path)),
            )?;
            match step {
                StepResult::Done => break,
                // Locked or busy for a moment (a checkpoint): try again.
                _ if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => {
                    return Err(Error::Io {
                        op: "back up the warm database (it stayed busy)",
                        path: path.clone(),
                        source: std::io::Error::other(format!("{other:?}")),
                    })
                }
            }
        }
        drop(dst);
        let io = |op: &'static str| {
            let path = dest.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        let file = std::fs::File::open(dest).map_err(io("open backup copy"))?;
        file.sync_all().map_err(io("fsync backup copy"))?;
        Ok(file.metadata().map_err(io("stat backup copy"))?.len())
    }

    /// The first corruption SQLite reported since open (or since a clean `quick_check`).
    pub fn corruption(&self) -> Option<String> {
        self.inner.shared.corruption.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::record::TransactionRecord;
    use crate::warm_storage::WriteOp;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_storage_quick_check_of_a_sound_database_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let warm: WarmSqliteStorage =
            WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir.path())).unwrap();
        for n in 0..500 {
            let r = TransactionRecord {
                transaction_signature: Some(format!("qc-{n}")),
                ..TransactionRecord::default()
            };
            warm.write(WriteOp::Put(warm.encode(&r).unwrap(), Vec::new()))
                .await
                .unwrap();
        }
        let w = warm.clone();
        let problems = crate::blocking::run_blocking(move || w.quick_check())
            .await
            .unwrap()
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(warm.corruption().is_none());
    }
}
