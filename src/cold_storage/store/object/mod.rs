//! [`ObjectColdStore`]: cold files in an object store (S3 through `object_store`, or its
//! in-process `InMemory` store for tests). Built by the `s3` workstream; see
//! `cold_storage/store/mod.rs` for the seam it implements.
//!
//! (Workstream C's stand-in until the `s3core` branch is merged: only what `replicas.rs`
//! needs.)

mod failing;
mod replicas;

pub use failing::set_memory_store_failing;

pub(crate) use replicas::PutDone;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;

/// Cold files in an object store.
#[derive(Debug)]
pub(crate) struct ObjectColdStore {
    replicas: replicas::Replicas,
    timeout: Duration,
}

impl ObjectColdStore {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run_timed<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let _ = fut;
        None
    }

    fn read_whole(&self, key: &str, bytes: u64) -> Result<Bytes> {
        let _ = (key, bytes);
        Ok(Bytes::new())
    }

    fn path_of_key(&self, key: &str) -> PathBuf {
        PathBuf::from(key)
    }
}
