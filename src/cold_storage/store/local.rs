//! [`LocalStore`]: cold files in a local directory, `<root>/date=YYYY-MM-DD/part-<seq>.parquet`.
//!
//! A file is staged at `<key>.tmp` beside its final path, then published by rename. The order
//! that makes a move crash-safe: the partition directory is created (and its parent fsynced)
//! when it is new, the staged file is written and fsynced, renamed into place, and the
//! partition directory fsynced. A staged file left by a crash is removed by
//! [`clear_staging`](ColdStore::clear_staging) at the next open.
//!
//! Errors keep the operating system's `io::Error` ([`Error::Io`], so a full disk stays
//! recognisable) except a file that really is not there, which is [`super::missing`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{ColdStore, Exported, RangeRead, StagedWrite};
use crate::cold_storage::deletes::DELETES_DIR;
use crate::error::{Error, Result};

/// Suffix of a staged file's name.
const STAGED_SUFFIX: &str = ".tmp";

/// Cold files in a local directory.
#[derive(Debug, Clone)]
pub(crate) struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// The store rooted at `root` (no I/O: the directory may not exist).
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store rooted at `root`, creating the directory if needed.
    pub(crate) fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| Error::Io {
            op: "create cold directory",
            path: root.clone(),
            source,
        })?;
        Ok(Self { root })
    }

    fn staged_path(&self, key: &str) -> PathBuf {
        let mut name = self.root.join(key).into_os_string();
        name.push(STAGED_SUFFIX);
        PathBuf::from(name)
    }

    fn partition_dir(&self, partition: &str) -> PathBuf {
        if partition.is_empty() {
            self.root.clone()
        } else {
            self.root.join(partition)
        }
    }

    /// Cut the staged file of `key` to `len` bytes (a test's short write).
    #[cfg(test)]
    pub(crate) fn truncate_staged(&self, key: &str, len: u64) -> Result<()> {
        let path = self.staged_path(key);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len))
            .map_err(|source| Error::Io {
                op: "truncate",
                path,
                source,
            })
    }

    /// Names in `dir`, as `(name, is_dir)`.
    fn entries(dir: &Path, op: &'static str) -> Result<Vec<(String, bool)>> {
        let io = |source| Error::Io {
            op,
            path: dir.to_path_buf(),
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let is_dir = entry.file_type().map_err(io)?.is_dir();
            out.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
        }
        Ok(out)
    }
}

impl ColdStore for LocalStore {
    fn root(&self) -> &Path {
        &self.root
    }

    fn stage(&self, key: &str) -> Result<Box<dyn StagedWrite>> {
        let path = self.staged_path(key);
        create_dirs(parent_dir(&path))?;
        create_file(&path)
    }

    fn open_staged(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
        open_local(&self.staged_path(key))
    }

    fn publish(&self, key: &str) -> Result<()> {
        publish_path(&self.staged_path(key), &self.root.join(key))
    }

    fn discard_staged(&self, key: &str) -> Result<()> {
        let path = self.staged_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io {
                op: "remove temp file",
                path,
                source,
            }),
        }
    }

    fn clear_staging(&self) -> Result<usize> {
        let mut removed = 0;
        for partition in self.partitions()?.into_iter().chain([String::new()]) {
            let dir = self.partition_dir(&partition);
            let mut here = 0;
            for (name, is_dir) in Self::entries(&dir, "list cold partition")? {
                if is_dir || !name.ends_with(STAGED_SUFFIX) {
                    continue;
                }
                let path = dir.join(&name);
                std::fs::remove_file(&path).map_err(|source| Error::Io {
                    op: "remove temp file",
                    path,
                    source,
                })?;
                here += 1;
            }
            if here > 0 {
                fsync_dir(&dir)?;
            }
            removed += here;
        }
        if removed > 0 {
            fsync_dir(&self.root)?;
        }
        Ok(removed)
    }

    fn open(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
        open_local(&self.root.join(key))
    }

    fn len(&self, key: &str) -> Result<Option<u64>> {
        let path = self.root.join(key);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                op: "stat cold file",
                path,
                source,
            }),
        }
    }

    fn partitions(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for (name, is_dir) in Self::entries(&self.root, "list cold directory")? {
            if !is_dir {
                continue;
            }
            if name == DELETES_DIR {
                // The delete files' partitions: `_deletes/date=YYYY-MM-DD`.
                let dir = self.root.join(&name);
                for (sub, sub_dir) in Self::entries(&dir, "list cold delete files")? {
                    if sub_dir {
                        out.push(format!("{name}/{sub}"));
                    }
                }
            } else {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn list(&self, partition: &str) -> Result<Vec<String>> {
        let dir = self.partition_dir(partition);
        let mut out: Vec<String> = Self::entries(&dir, "list cold partition")?
            .into_iter()
            .filter(|(name, is_dir)| !is_dir && !name.ends_with(STAGED_SUFFIX))
            .map(|(name, _)| {
                if partition.is_empty() {
                    name
                } else {
                    format!("{partition}/{name}")
                }
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.root.join(key);
        std::fs::remove_file(&path).map_err(|source| Error::Io {
            op: "remove cold file",
            path,
            source,
        })
    }

    fn sync(&self, partition: &str) -> Result<()> {
        fsync_dir(&self.partition_dir(partition))
    }

    fn export(&self, key: &str, to: &Path) -> Result<Exported> {
        let from = self.root.join(key);
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        let parent = parent_dir(to);
        std::fs::create_dir_all(parent).map_err(io("create backup partition", parent))?;
        let bytes = std::fs::metadata(&from)
            .map_err(io("stat cold file for backup", &from))?
            .len();
        // Cold files are immutable, so a link is as good as a copy.
        if std::fs::hard_link(&from, to).is_ok() {
            return Ok(Exported {
                bytes,
                linked: true,
            });
        }
        std::fs::copy(&from, to).map_err(io("copy cold file for backup", &from))?;
        File::open(to)
            .and_then(|f| f.sync_all())
            .map_err(io("fsync backup copy", to))?;
        Ok(Exported {
            bytes,
            linked: false,
        })
    }
}

/// Create the local file `path` (which must not exist) for writing a cold file into.
pub(crate) fn create_file(path: &Path) -> Result<Box<dyn StagedWrite>> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| Error::Io {
            op: "create",
            path: path.to_owned(),
            source,
        })?;
    Ok(Box::new(LocalStaged {
        file,
        path: path.to_owned(),
    }))
}

/// A staged local file.
#[derive(Debug)]
struct LocalStaged {
    file: File,
    path: PathBuf,
}

impl Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl StagedWrite for LocalStaged {
    fn sync(&mut self) -> Result<u64> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { op, path, source }
        };
        self.file.sync_all().map_err(io("fsync", &self.path))?;
        Ok(self.file.metadata().map_err(io("stat", &self.path))?.len())
    }
}

/// A local file opened for ranged reads (positioned reads: concurrent reads share no offset).
#[derive(Debug)]
struct LocalFile {
    file: File,
    path: PathBuf,
}

fn open_local(path: &Path) -> Result<Arc<dyn RangeRead>> {
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    Ok(Arc::new(LocalFile {
        file,
        path: path.to_owned(),
    }))
}

impl RangeRead for LocalFile {
    fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|source| Error::Io {
                op: "stat cold file",
                path: self.path.clone(),
                source,
            })
    }

    fn read(&self, range: Range<u64>) -> Result<Bytes> {
        let len = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| Error::cold_file(&self.path, format!("read of {range:?} is too large")))?;
        let mut buf = vec![0u8; len];
        read_exact_at(&self.file, &mut buf, range.start).map_err(|source| Error::Io {
            op: "read cold file",
            path: self.path.clone(),
            source,
        })?;
        Ok(Bytes::from(buf))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// A failure to open a cold file. A missing file is a problem of the file
/// ([`super::missing`]); any other failure (EIO, EMFILE, ENOMEM, EACCES, or ENOENT for a file
/// that is there) is the system's, typed [`Error::Io`], and never gets a sound file
/// quarantined.
fn open_error(path: &Path, e: std::io::Error) -> Error {
    // "Not found" for a path that exists is the system failing (an injected fault, a racing
    // rename), not a missing file.
    if e.kind() == std::io::ErrorKind::NotFound && !path.exists() {
        super::missing(path, format!("cannot open: {e}"))
    } else {
        Error::Io {
            op: "open cold file",
            path: path.to_owned(),
            source: e,
        }
    }
}

/// Create `dir` and any missing ancestors, fsyncing the directory each new one was created in
/// (top-down: each new directory's entry lives in its parent).
fn create_dirs(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut d = dir;
    // Not `exists()`: a file in a directory's place must fail here, naming the directory.
    while !d.as_os_str().is_empty() && !d.is_dir() {
        missing.push(d.to_owned());
        d = parent_dir(d);
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        op: "create cold partition",
        path: dir.to_owned(),
        source,
    })?;
    for created in missing.iter().rev() {
        fsync_dir(parent_dir(created))?;
    }
    Ok(())
}

/// Move a finished file from `tmp_path` to `final_path`: create missing parent directories
/// (fsyncing the directory each was created in), rename, fsync the parent. Refuses to replace
/// an existing file: cold files are immutable.
pub(crate) fn publish_path(tmp_path: &Path, final_path: &Path) -> Result<()> {
    let parent = parent_dir(final_path);
    create_dirs(parent)?;
    if final_path.exists() {
        return Err(Error::cold_file(
            final_path,
            "already exists; cold files are immutable and are never replaced",
        ));
    }
    std::fs::rename(tmp_path, final_path).map_err(|source| Error::Io {
        op: "rename",
        path: tmp_path.to_owned(),
        source,
    })?;
    fsync_dir(parent)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Make a directory's entries (new files, renames, removals) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let io = |op, source| Error::Io {
        op,
        path: dir.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        File::open(dir)
            .map_err(|e| io("open directory", e))?
            .sync_all()
            .map_err(|e| io("fsync directory", e))
    }
    #[cfg(not(unix))]
    {
        // Directory handles cannot be fsynced here; metadata is journaled by the filesystem.
        let _ = io;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold_storage::store::is_missing;

    #[test]
    fn cold_storage_publish_creates_directories_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("x.tmp");
        std::fs::write(&tmp, b"x").unwrap();
        let target = dir.path().join("cold/date=2024-02-03/x.parquet");
        publish_path(&tmp, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        std::fs::write(&tmp, b"y").unwrap();
        let err = publish_path(&tmp, &target).unwrap_err();
        assert!(matches!(err, Error::ColdFile { .. }), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        let err = publish_path(
            &dir.path().join("absent.tmp"),
            &dir.path().join("y.parquet"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Io { op: "rename", .. }), "{err}");
        fsync_dir(dir.path()).unwrap();
        assert!(matches!(
            fsync_dir(&dir.path().join("nope")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn cold_storage_local_store_stages_publishes_lists_reads_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::create(dir.path().join("cold")).unwrap();
        let key = "date=2024-01-01/part-000000000001.parquet";
        let mut staged = store.stage(key).unwrap();
        staged.write_all(b"hello world").unwrap();
        assert_eq!(staged.sync().unwrap(), 11);
        drop(staged);
        // Staged files are neither listed nor readable as published.
        assert_eq!(store.partitions().unwrap(), vec!["date=2024-01-01"]);
        assert!(store.list("date=2024-01-01").unwrap().is_empty());
        assert!(is_missing(&store.open(key).unwrap_err()));
        assert_eq!(store.len(key).unwrap(), None);
        let staged = store.open_staged(key).unwrap();
        assert_eq!(&staged.read(6..11).unwrap()[..], b"world");
        assert!(matches!(
            store.stage(key).unwrap_err(),
            Error::Io { op: "create", .. }
        ));
        store.publish(key).unwrap();
        assert_eq!(store.list("date=2024-01-01").unwrap(), vec![key]);
        assert_eq!(store.len(key).unwrap(), Some(11));
        let file = store.open(key).unwrap();
        assert_eq!(file.len().unwrap(), 11);
        assert_eq!(&file.read(0..5).unwrap()[..], b"hello");
        assert!(matches!(file.read(8..20), Err(Error::Io { .. })));

        let out = dir.path().join("backup/date=2024-01-01/x.parquet");
        let exported = store.export(key, &out).unwrap();
        assert_eq!(exported.bytes, 11);
        assert_eq!(std::fs::read(&out).unwrap(), b"hello world");

        // A second staged file, left behind by a "crash", is cleared.
        let other = "date=2024-01-02/part-000000000002.parquet";
        store.stage(other).unwrap();
        assert_eq!(store.clear_staging().unwrap(), 1);
        assert_eq!(store.clear_staging().unwrap(), 0);
        store.discard_staged(other).unwrap();

        store.delete(key).unwrap();
        store.sync("date=2024-01-01").unwrap();
        assert!(is_missing(&file_error(&store, key)));
        assert!(matches!(store.delete(key), Err(Error::Io { .. })));
    }

    fn file_error(store: &LocalStore, key: &str) -> Error {
        store.open(key).unwrap_err()
    }
}
