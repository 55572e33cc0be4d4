//! The WAL checkpointer: copies committed WAL frames back into the database on a thread of its
//! own, so that no group commit waits for that copy and its two fsyncs.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses `wal_autocheckpoint`: the
//! writer thread (and every caller in its batch) waited for up to 1,000 frames of 16 KiB to be
//! written back and synced. Here the writer only says "committed"; this thread runs a PASSIVE
//! checkpoint (it never blocks the writer or readers) at most every [`CHECKPOINT_INTERVAL`].
//! A PASSIVE checkpoint cannot reset the WAL while commits keep arriving, so the writer keeps
//! an automatic checkpoint at [`WRITER_AUTOCHECKPOINT_FRAMES`]: by then this thread has copied
//! nearly every frame, the writer's own pass copies only the last few, and the WAL restarts.
//! Checkpoints move committed data only: an acknowledged write is durable in the WAL first
//! (invariant 1), whichever connection copies it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};

use super::schema::sqlite_err;
use crate::config::WarmConfig;
use crate::error::{Error, Result};

/// The shortest time between two background checkpoints while commits arrive.
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(25);

/// The writer connection's own automatic checkpoint, in WAL frames: the backstop that lets the
/// WAL restart under a steady stream of commits (see the module doc).
pub(crate) const WRITER_AUTOCHECKPOINT_FRAMES: i64 = 4096;

#[derive(Default)]
struct State {
    /// A commit happened since the last checkpoint started.
    dirty: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Background checkpoints run.
    runs: AtomicU64,
}

/// The checkpointer thread; stopped and joined on drop.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Open a connection of its own to `path` and start the thread.
    pub(crate) fn start(path: &Path, cfg: &WarmConfig) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(sqlite_err("open checkpoint connection", path))?;
        conn.busy_timeout(cfg.busy_timeout())
            .map_err(sqlite_err("set busy_timeout", path))?;
        // Its own page cache stays small: a checkpoint copies frames, it reads no tree.
        conn.pragma_update(None, "cache_size", -1024i64)
            .map_err(sqlite_err("set cache_size", path))?;
        let shared = Arc::new(Shared::default());
        let handle = std::thread::Builder::new()
            .name("tiered-storage-warm-checkpoint".into())
            .spawn({
                let shared = Arc::clone(&shared);
                let path = path.to_path_buf();
                move || run(conn, path, shared)
            })
            .map_err(|source| Error::Io {
                op: "spawn warm checkpoint thread for",
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            shared,
            handle: Some(handle),
        })
    }

    /// A transaction committed: a checkpoint is due (within [`CHECKPOINT_INTERVAL`]).
    pub(crate) fn committed(&self) {
        let mut state = self.shared.state.lock();
        if !state.dirty {
            state.dirty = true;
            self.shared.wake.notify_one();
        }
    }

    /// Background checkpoints run so far.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> u64 {
        self.shared.runs.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::error!("warm checkpoint thread panicked");
            }
        }
    }
}

fn run(conn: Connection, path: PathBuf, shared: Arc<Shared>) {
    let mut last = Instant::now();
    loop {
        {
            let mut state = shared.state.lock();
            while !state.dirty && !state.stop {
                shared.wake.wait(&mut state);
            }
            // Let commits accumulate: one checkpoint per interval at most.
            let due = last + CHECKPOINT_INTERVAL;
            while !state.stop && Instant::now() < due {
                shared.wake.wait_until(&mut state, due);
            }
            if state.stop {
                return;
            }
            state.dirty = false;
        }
        last = Instant::now();
        match checkpoint(&conn, &path) {
            Ok(()) => {
                shared.runs.fetch_add(1, Ordering::Relaxed);
            }
            // The next commit asks again; the writer's own checkpoint is the backstop.
            Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
        }
    }
}

/// One PASSIVE checkpoint.
fn checkpoint(conn: &Connection, path: &Path) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(sqlite_err("background wal_checkpoint", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a commit, the background thread copies the WAL into the database without the
    /// writing connection checkpointing at all.
    #[test]
    fn warm_storage_checkpointer_copies_the_wal_after_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite3");
        let writer = Connection::open(&path).unwrap();
        writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x BLOB); INSERT INTO t VALUES (zeroblob(100000));")
            .unwrap();
        let checkpointer = Checkpointer::start(&path, &WarmConfig::default()).unwrap();
        checkpointer.committed();
        let started = Instant::now();
        while checkpointer.runs() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no checkpoint ran"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(checkpointer);
        // The database file alone (no WAL beside it) now holds the commit.
        let copy = dir.path().join("copy.sqlite3");
        std::fs::copy(&path, &copy).unwrap();
        let blob: i64 = Connection::open(&copy)
            .unwrap()
            .query_row("SELECT length(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blob, 100_000);
    }
}
