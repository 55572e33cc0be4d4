//! A switch that makes a `memory://name` store fail every request, as an unreachable server
//! would: how tests take the primary or a replica down ([`set_memory_store_failing`]). The
//! client builder wraps each memory store in a [`Switchable`]; S3 stores are never wrapped.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use parking_lot::Mutex;

/// The switch of each memory store name, process-wide.
fn switches() -> &'static Mutex<HashMap<String, Arc<AtomicBool>>> {
    static SWITCHES: OnceLock<Mutex<HashMap<String, Arc<AtomicBool>>>> = OnceLock::new();
    SWITCHES.get_or_init(Default::default)
}

fn switch(name: &str) -> Arc<AtomicBool> {
    Arc::clone(switches().lock().entry(name.to_owned()).or_default())
}

/// Make every request to the `memory://name` store fail (`true`), as an unreachable server
/// would, or serve again (`false`). For tests of failover and replication; the objects stay.
#[doc(hidden)]
pub fn set_memory_store_failing(name: &str, failing: bool) {
    switch(name).store(failing, Ordering::Release);
}

/// A store whose requests fail while its name's switch is on.
#[derive(Debug)]
pub(crate) struct Switchable {
    name: String,
    inner: Arc<dyn ObjectStore>,
    failing: Arc<AtomicBool>,
}

impl Switchable {
    /// Wrap the memory store `name`.
    pub(crate) fn wrap(name: &str, inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(Self {
            name: name.to_owned(),
            inner,
            failing: switch(name),
        })
    }

    fn check(&self) -> Result<()> {
        if self.failing.load(Ordering::Acquire) {
            Err(object_store::Error::Generic {
                store: "memory",
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!("memory://{} is switched off", self.name),
                )),
            })
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for Switchable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Switchable(memory://{})", self.name)
    }
}

#[async_trait]
impl ObjectStore for Switchable {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check()?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        match self.check() {
            Ok(()) => self.inner.delete_stream(locations),
            Err(_) => {
                let name = self.name.clone();
                locations
                    .map(move |_| {
                        Err(object_store::Error::Generic {
                            store: "memory",
                            source: format!("memory://{name} is switched off").into(),
                        })
                    })
                    .boxed()
            }
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.check() {
            Ok(()) => self.inner.list(prefix),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check()?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.check()?;
        self.inner.rename_opts(from, to, options).await
    }
}
