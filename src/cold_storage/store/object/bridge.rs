//! [`Bridge`]: the object store's own small tokio runtime, so that the synchronous
//! [`ColdStore`](super::super::ColdStore) seam can run async requests.
//!
//! The cold tier's I/O runs on the store's read pool, on tokio's blocking threads and on plain
//! threads, some of them inside another runtime. `Handle::block_on` from inside a runtime
//! panics, and a `block_on` on a caller's runtime would tie requests to that runtime's
//! lifetime. So each request is spawned on this runtime and the caller waits on a std channel:
//! that works from any thread. A caller on an async worker would block that worker for the
//! request, as any blocking I/O does; the cold tier never calls it there.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// Worker threads of the bridge runtime: requests mostly wait on the network.
const WORKERS: usize = 2;

/// A small multi-thread runtime that runs object-store requests for synchronous callers.
#[derive(Debug)]
pub(crate) struct Bridge {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    /// Start the runtime (threads named `tiered-storage-s3`).
    pub(crate) fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("tiered-storage-s3")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                op: "start the object-store runtime",
                path: "tiered-storage-s3".into(),
                source,
            })?;
        Ok(Self { rt: Some(rt) })
    }

    /// Run `fut` on the bridge runtime and wait for it from this (synchronous) thread, at
    /// most `timeout`. `None`: it timed out (the request is cancelled), or the runtime is
    /// gone.
    pub(crate) fn run<F, T>(&self, timeout: Duration, fut: F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let rt = self.rt.as_ref()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            if let Ok(out) = tokio::time::timeout(timeout, fut).await {
                let _ = tx.send(out);
            }
        });
        // The sender is dropped without a value on a timeout (or when the runtime shuts down).
        rx.recv().ok()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // The store may be dropped on an async worker, where dropping a runtime (which waits
        // for its threads) panics: let the threads end on their own.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_storage_bridge_runs_from_plain_threads_and_inside_a_runtime() {
        let bridge = std::sync::Arc::new(Bridge::new().unwrap());
        assert_eq!(bridge.run(Duration::from_secs(5), async { 7 }), Some(7));
        // A request that takes too long is abandoned.
        let slow = bridge.run(Duration::from_millis(20), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        assert_eq!(slow, None);
        // From a blocking thread of another runtime, and dropped on its async worker.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let b = std::sync::Arc::clone(&bridge);
            let got =
                tokio::task::spawn_blocking(move || b.run(Duration::from_secs(5), async { 8 }))
                    .await
                    .unwrap();
            assert_eq!(got, Some(8));
            drop(bridge);
        });
    }
}
