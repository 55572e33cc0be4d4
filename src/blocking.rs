//! Where blocking work runs, with one policy for panics: a panic in the work is re-raised in
//! the task that awaits it, and work the runtime dropped while shutting down is
//! [`Error::Closed`].
//!
//! - [`BlockingPool`]: the store's own threads for blocking reads (cold lookups, scan pages).
//! - [`run_blocking`]: tokio's blocking pool, for the rest (open, moves, backup, verify,
//!   maintenance's file checks). Every `spawn_blocking` of the crate goes through it.
//!
//! `spawn_blocking` would hand them to tokio's blocking pool, which grows to 512 threads: under
//! 64 concurrent readers it was measured at 301 threads, and glibc's per-thread arenas held
//! 288 MiB of freed memory among them. A fixed set of `cold.read_threads` threads bounds both;
//! a read waits for a free thread instead of starting another.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of named threads. Dropping the last handle lets them exit once the queue is
/// empty.
pub(crate) struct BlockingPool {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool").finish_non_exhaustive()
    }
}

impl BlockingPool {
    /// Start `threads` threads named `<name>-<n>`.
    pub(crate) fn new(name: &str, threads: usize) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || loop {
                    // One thread waits on the queue at a time; the others wait for the lock.
                    let job = rx.lock().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                })
                .map_err(|source| Error::Io {
                    op: "spawn read thread",
                    path: std::path::PathBuf::from(name),
                    source,
                })?;
        }
        Ok(Self { tx })
    }

    /// Run `f` on a pool thread and wait for it without blocking the async worker. A panic in
    /// `f` is re-raised here; [`Error::Closed`] if the pool has stopped.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.start(f).await
    }

    /// Start `f` on a pool thread; the returned handle yields its result. Dropping the handle
    /// does not stop `f`.
    pub(crate) fn start<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> PoolHandle<T> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(catch_unwind(AssertUnwindSafe(f)));
        });
        let sent = self.tx.send(job).is_ok();
        PoolHandle { rx, sent }
    }
}

/// The result of a job started with [`BlockingPool::start`]. Awaiting it again after a
/// cancelled await resumes the wait for the same job.
pub(crate) struct PoolHandle<T> {
    rx: oneshot::Receiver<std::thread::Result<T>>,
    sent: bool,
}

impl<T> std::future::Future for PoolHandle<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if !self.sent {
            return std::task::Poll::Ready(Err(Error::Closed));
        }
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|r| match r {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::Closed),
        })
    }
}

/// Run blocking `f` on tokio's blocking pool and await it. A panic in `f` is re-raised here;
/// a runtime shutting down (the work never ran or was dropped) is [`Error::Closed`].
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(join_error)
}

/// A task's end, as the store reports it: a panic is re-raised in the awaiting task; a task
/// cancelled by runtime shutdown means the store is going away.
pub(crate) fn join_error(e: tokio::task::JoinError) -> Error {
    match e.try_into_panic() {
        Ok(payload) => std::panic::resume_unwind(payload),
        Err(_) => Error::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_pool_runs_everything_on_its_own_threads() {
        let pool = Arc::new(BlockingPool::new("ts-test-pool", 3).unwrap());
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let pool = Arc::clone(&pool);
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    (i, std::thread::current().name().unwrap().to_owned())
                })
                .await
                .unwrap()
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let (got, name) = t.await.unwrap();
            assert_eq!(got, i as u64);
            assert!(name.starts_with("ts-test-pool-"), "{name}");
        }
        assert_eq!(threads_named("ts-test-pool"), 3);
    }

    #[tokio::test]
    async fn blocking_pool_reraises_a_panic() {
        let pool = BlockingPool::new("ts-panic-pool", 1).unwrap();
        let caught = tokio::spawn(async move { pool.run(|| panic!("boom")).await })
            .await
            .unwrap_err();
        assert!(caught.is_panic());
    }
}
