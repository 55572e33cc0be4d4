//! [`ColdStore`]: the one seam every byte of the cold tier passes through.
//!
//! A cold file is named by its key, a `/`-separated path relative to the store's root:
//! `date=YYYY-MM-DD/part-<seq>.parquet`. The seam is shaped so that an object store fits
//! beside the local filesystem:
//! - a writer fills a *staged* file, which [`publish`](ColdStore::publish) makes visible under
//!   its key in one step (locally: fsync, rename, fsync of the directory; an object store
//!   would upload). Where a staged file lives is the implementation's concern;
//! - reads are ranged and return [`Bytes`] ([`RangeRead`]); nothing on the read path renames,
//!   lists or probes for existence;
//! - listing is per day partition (one prefix);
//! - a file gone from under a read (deleted by compaction, or never there) is an
//!   [`Error::ColdFile`] that [`is_missing`] recognises; any other failure of the system is an
//!   [`Error::Io`], which never gets a sound file quarantined.
//!
//! [`LocalStore`] is the local implementation (the tests also wrap it in a failing one);
//! `object::ObjectColdStore` (feature `s3`) puts the files in an object store.

#[cfg(test)]
pub(crate) mod faulty;
mod local;
#[cfg(feature = "s3")]
pub(crate) mod object;

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};

#[cfg(test)]
pub(crate) use local::{create_file, publish_path};
pub(crate) use local::{fsync_dir, LocalStore};

/// Prefix of the reason of an [`Error::ColdFile`] for a file that does not exist.
const MISSING: &str = "missing: ";

/// The error for a cold file that does not exist (deleted, or never there).
pub(crate) fn missing(path: impl Into<PathBuf>, detail: impl fmt::Display) -> Error {
    Error::cold_file(path, format!("{MISSING}{detail}"))
}

/// Whether `e` says a cold file does not exist, as opposed to being damaged or the system
/// failing: a read that gets this for a catalogued file raced its compaction (or the file is
/// really gone, which the catalog check tells apart).
pub(crate) fn is_missing(e: &Error) -> bool {
    matches!(e, Error::ColdFile { reason, .. } if reason.starts_with(MISSING))
}

/// One cold file opened for ranged reads. Reads may run concurrently.
pub(crate) trait RangeRead: Send + Sync + fmt::Debug {
    /// The file's length in bytes.
    fn len(&self) -> Result<u64>;

    /// Bytes `range` of the file; a range past the end is an error.
    fn read(&self, range: Range<u64>) -> Result<Bytes>;

    /// Bytes of each of `ranges`, in order. An object store coalesces nearby ranges into as
    /// few requests as it can (a point read asks for one page per column at once); the
    /// default reads them one by one.
    fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        ranges.iter().map(|r| self.read(r.clone())).collect()
    }
}

/// What a store knows of a published object: its length and, for object stores, its ETag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ObjectStat {
    /// Bytes.
    pub len: u64,
    /// The object's ETag, if the store has one.
    pub etag: Option<String>,
}

/// A file being written before it is published. Dropping it without publishing leaves the
/// staged file for [`ColdStore::discard_staged`] (or the next open's cleanup).
pub(crate) trait StagedWrite: Write + Send + fmt::Debug {
    /// Make everything written durable and return the file's length.
    fn sync(&mut self) -> Result<u64>;
}

/// What [`ColdStore::export`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exported {
    /// Bytes of the file.
    pub bytes: u64,
    /// The copy shares the file's storage (a hard link) rather than duplicating it.
    pub linked: bool,
}

/// Where cold files live. Keys are `/`-separated and relative (see the module doc).
pub(crate) trait ColdStore: Send + Sync + fmt::Debug + 'static {
    /// Where the files are, for messages (locally: the cold directory).
    fn root(&self) -> &Path;

    /// The file of `key`, for messages and problem reports (locally: its path).
    fn path_of(&self, key: &str) -> PathBuf {
        self.root().join(key)
    }

    /// Start writing the file of `key` (which must not exist yet, staged or published).
    fn stage(&self, key: &str) -> Result<Box<dyn StagedWrite>>;

    /// Open the staged file of `key` for reading (its checksums are computed before publish).
    fn open_staged(&self, key: &str) -> Result<Arc<dyn RangeRead>>;

    /// Make the synced staged file of `key` visible under `key`, durably. Refuses to replace a
    /// published file: cold files are immutable.
    fn publish(&self, key: &str) -> Result<()>;

    /// Remove the staged file of `key`, if any.
    fn discard_staged(&self, key: &str) -> Result<()>;

    /// Remove every staged file (the leftovers of writes a crash interrupted), durably.
    /// Returns how many were removed. Only the owner of the store, at open, calls it.
    fn clear_staging(&self) -> Result<usize>;

    /// Open the published file of `key` for ranged reads. A missing file is [`is_missing`].
    fn open(&self, key: &str) -> Result<Arc<dyn RangeRead>>;

    /// The length of the published file of `key`; `None` when there is none.
    fn len(&self, key: &str) -> Result<Option<u64>>;

    /// The day partitions (`date=YYYY-MM-DD`) that hold files, and those of the delete files
    /// (`_deletes/date=YYYY-MM-DD`).
    fn partitions(&self) -> Result<Vec<String>>;

    /// The keys of the published files of one partition (staged files are not listed); the
    /// empty partition lists the files outside any partition.
    fn list(&self, partition: &str) -> Result<Vec<String>>;

    /// Delete the published file of `key`. Durable once [`sync`](Self::sync) of its
    /// partition returns.
    fn delete(&self, key: &str) -> Result<()>;

    /// Make the deletes in `partition` durable.
    fn sync(&self, partition: &str) -> Result<()>;

    /// Copy the published file of `key` to the local path `to` (whose directory is created),
    /// durably: for backups. A local store hard-links when it can.
    fn export(&self, key: &str, to: &Path) -> Result<Exported>;

    /// Whether the files live in an object store: moves then record intents before uploads
    /// and before uncataloguing (`cold_intents`), replaced files are deleted by the intent
    /// sweep after a grace period rather than at once, and the check on open never lists the
    /// store.
    fn is_remote(&self) -> bool {
        false
    }

    /// The length and ETag of the published file of `key`; `None` when there is none.
    fn stat(&self, key: &str) -> Result<Option<ObjectStat>> {
        Ok(self.len(key)?.map(|len| ObjectStat { len, etag: None }))
    }

    /// [`open`](Self::open) a file whose length and ETag the catalog knows: an object store
    /// then needs no request to open it.
    fn open_known(&self, key: &str, known: &ObjectStat) -> Result<Arc<dyn RangeRead>> {
        let _ = known;
        self.open(key)
    }

    /// The object store behind this store, for what only object stores do (replicas, the
    /// range cache, request counts).
    #[cfg(feature = "s3")]
    fn object(&self) -> Option<&object::ObjectColdStore> {
        None
    }
}

/// The partition (`date=...`, or `_deletes/date=...` for a delete file) of a key; empty for a
/// key outside any partition.
pub(crate) fn partition_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// One cold file to read: published or staged, in a store.
#[derive(Clone)]
pub(crate) struct FileRef {
    store: Arc<dyn ColdStore>,
    key: String,
    staged: bool,
    /// Length and ETag from the catalog: an object store opens it with no request.
    known: Option<ObjectStat>,
}

impl fmt::Debug for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRef")
            .field("key", &self.key)
            .field("staged", &self.staged)
            .finish()
    }
}

impl FileRef {
    /// The published file of `key`.
    pub(crate) fn published(store: &Arc<dyn ColdStore>, key: &str) -> Self {
        Self {
            store: Arc::clone(store),
            key: key.to_owned(),
            staged: false,
            known: None,
        }
    }

    /// The published file of `key`, whose length and ETag the catalog knows: an object store
    /// opens it without a request ([`ColdStore::open_known`]).
    pub(crate) fn published_known(
        store: &Arc<dyn ColdStore>,
        key: &str,
        known: ObjectStat,
    ) -> Self {
        Self {
            known: Some(known),
            ..Self::published(store, key)
        }
    }

    /// Whether each read is a request to an object store (staged files are local).
    pub(crate) fn is_remote(&self) -> bool {
        !self.staged && self.store.is_remote()
    }

    /// The staged file of `key`.
    pub(crate) fn staged(store: &Arc<dyn ColdStore>, key: &str) -> Self {
        Self {
            staged: true,
            ..Self::published(store, key)
        }
    }

    /// A local file outside any store (tools and tests that read a file by its path).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn local(path: &Path) -> Self {
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => (dir, name.to_string_lossy().into_owned()),
            _ => (Path::new(""), path.to_string_lossy().into_owned()),
        };
        let store: Arc<dyn ColdStore> = Arc::new(LocalStore::new(dir));
        Self::published(&store, &name)
    }

    /// The file, for messages.
    pub(crate) fn path(&self) -> PathBuf {
        self.store.path_of(&self.key)
    }

    /// Open it for reading.
    pub(crate) fn open(&self) -> Result<Arc<dyn RangeRead>> {
        match (&self.known, self.staged) {
            (_, true) => self.store.open_staged(&self.key),
            (Some(known), false) => self.store.open_known(&self.key, known),
            (None, false) => self.store.open(&self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_storage_store_keys_partitions_and_missing_errors() {
        assert_eq!(
            partition_of("date=2024-01-02/part-1.parquet"),
            "date=2024-01-02"
        );
        assert_eq!(partition_of("x.parquet"), "");
        assert!(is_missing(&missing("/x", "cannot open")));
        assert!(!is_missing(&Error::cold_file("/x", "truncated")));
        let io = Error::Io {
            op: "open cold file",
            path: "/x".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert!(!is_missing(&io));
    }
}
