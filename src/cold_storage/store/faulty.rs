//! A [`ColdStore`] for tests: the local store, failing a chosen call. Each rule fails the Nth
//! call (counted from when the rule is set) of one operation with EIO, ENOSPC or a short write.
//! [`install`] hands it to the next `ColdArchiveStorage::open` of its directory, so a whole
//! store (coordinator included) runs on it.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{ColdStore, Exported, LocalStore, RangeRead, StagedWrite};
use crate::error::{Error, Result};

/// An operation of the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// `stage`.
    Stage,
    /// A `write` into a staged file.
    Write,
    /// `publish`.
    Publish,
    /// `open` and `open_staged`.
    Open,
    /// A ranged read of an open file.
    Read,
    /// `len`.
    Len,
    /// `partitions` and `list`.
    List,
    /// `delete` and `discard_staged`.
    Delete,
    /// `sync` and `clear_staging`.
    Sync,
}

/// How a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// EIO.
    Eio,
    /// ENOSPC (a full disk).
    Enospc,
    /// Part of the data only: a `publish` publishes the first half of the file and succeeds, a
    /// `write` writes half its buffer and fails with ENOSPC. Other operations fail with EIO.
    ShortWrite,
}

#[derive(Debug)]
struct Rule {
    op: Op,
    /// The call (of `op`, counted over the store's life) that fails.
    call: u64,
    fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<Op, u64>,
    rules: Vec<Rule>,
    fired: Vec<(Op, Fault)>,
}

/// The local store with injected failures. Clones share their rules and counters.
#[derive(Debug, Clone)]
pub(crate) struct FaultyStore {
    inner: LocalStore,
    state: Arc<Mutex<State>>,
}

impl FaultyStore {
    /// A faulty store over the local directory `root` (created if needed).
    pub(crate) fn create(root: impl Into<PathBuf>) -> Result<Self> {
        Ok(Self {
            inner: LocalStore::create(root)?,
            state: Arc::default(),
        })
    }

    /// Fail the `nth` next call of `op` (1: the next one) with `fault`.
    pub(crate) fn fail(&self, op: Op, nth: u64, fault: Fault) {
        let mut state = self.state.lock();
        let call = state.calls.get(&op).copied().unwrap_or(0) + nth.max(1);
        state.rules.push(Rule { op, call, fault });
    }

    /// Drop every rule not fired yet.
    pub(crate) fn heal(&self) {
        self.state.lock().rules.clear();
    }

    /// The failures injected so far.
    pub(crate) fn fired(&self) -> Vec<(Op, Fault)> {
        self.state.lock().fired.clone()
    }

    /// Count a call of `op`; the fault to inject into it, if any.
    fn call(&self, op: Op) -> Option<Fault> {
        let mut state = self.state.lock();
        let n = state.calls.entry(op).or_insert(0);
        *n += 1;
        let n = *n;
        let at = state.rules.iter().position(|r| r.op == op && r.call == n)?;
        let rule = state.rules.remove(at);
        state.fired.push((op, rule.fault));
        Some(rule.fault)
    }

    /// Fail with `fault` unless it is a short write, which the caller handles.
    fn check(&self, op: Op, what: &'static str, key: &str) -> Result<Option<Fault>> {
        match self.call(op) {
            Some(Fault::ShortWrite) if matches!(op, Op::Publish | Op::Write) => {
                Ok(Some(Fault::ShortWrite))
            }
            Some(fault) => Err(Error::Io {
                op: what,
                path: self.inner.path_of(key),
                source: io_error(fault),
            }),
            None => Ok(None),
        }
    }
}

fn io_error(fault: Fault) -> std::io::Error {
    match fault {
        Fault::Enospc => rustix::io::Errno::NOSPC.into(),
        Fault::Eio | Fault::ShortWrite => rustix::io::Errno::IO.into(),
    }
}

impl ColdStore for FaultyStore {
    fn root(&self) -> &Path {
        self.inner.root()
    }

    fn stage(&self, key: &str) -> Result<Box<dyn StagedWrite>> {
        self.check(Op::Stage, "create", key)?;
        Ok(Box::new(FaultyStaged {
            inner: self.inner.stage(key)?,
            store: self.clone(),
            key: key.to_owned(),
        }))
    }

    fn open_staged(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
        self.check(Op::Open, "open cold file", key)?;
        Ok(Arc::new(FaultyRead {
            inner: self.inner.open_staged(key)?,
            store: self.clone(),
            key: key.to_owned(),
        }))
    }

    fn publish(&self, key: &str) -> Result<()> {
        if self.check(Op::Publish, "rename", key)? == Some(Fault::ShortWrite) {
            let staged = self.inner.open_staged(key)?;
            self.inner.truncate_staged(key, staged.len()? / 2)?;
        }
        self.inner.publish(key)
    }

    fn discard_staged(&self, key: &str) -> Result<()> {
        self.check(Op::Delete, "remove temp file", key)?;
        self.inner.discard_staged(key)
    }

    fn clear_staging(&self) -> Result<usize> {
        self.check(Op::Sync, "remove temp file", "")?;
        self.inner.clear_staging()
    }

    fn open(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
        self.check(Op::Open, "open cold file", key)?;
        Ok(Arc::new(FaultyRead {
            inner: self.inner.open(key)?,
            store: self.clone(),
            key: key.to_owned(),
        }))
    }

    fn len(&self, key: &str) -> Result<Option<u64>> {
        self.check(Op::Len, "stat cold file", key)?;
        self.inner.len(key)
    }

    fn partitions(&self) -> Result<Vec<String>> {
        self.check(Op::List, "list cold directory", "")?;
        self.inner.partitions()
    }

    fn list(&self, partition: &str) -> Result<Vec<String>> {
        self.check(Op::List, "list cold partition", partition)?;
        self.inner.list(partition)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.check(Op::Delete, "remove cold file", key)?;
        self.inner.delete(key)
    }

    fn sync(&self, partition: &str) -> Result<()> {
        self.check(Op::Sync, "fsync directory", partition)?;
        self.inner.sync(partition)
    }

    fn export(&self, key: &str, to: &Path) -> Result<Exported> {
        self.check(Op::Open, "copy cold file for backup", key)?;
        self.inner.export(key, to)
    }
}

#[derive(Debug)]
struct FaultyStaged {
    inner: Box<dyn StagedWrite>,
    store: FaultyStore,
    key: String,
}

impl Write for FaultyStaged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.store.call(Op::Write) {
            None => self.inner.write(buf),
            Some(Fault::ShortWrite) => {
                self.inner.write_all(&buf[..buf.len() / 2])?;
                Err(io_error(Fault::Enospc))
            }
            Some(fault) => Err(io_error(fault)),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl StagedWrite for FaultyStaged {
    fn sync(&mut self) -> Result<u64> {
        self.store.check(Op::Sync, "fsync", &self.key)?;
        self.inner.sync()
    }
}

#[derive(Debug)]
struct FaultyRead {
    inner: Arc<dyn RangeRead>,
    store: FaultyStore,
    key: String,
}

impl RangeRead for FaultyRead {
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store.check(Op::Read, "read cold file", &self.key)?;
        self.inner.read(range)
    }
}

/// Stores handed to the next open of their directory.
static INSTALLED: Mutex<Vec<(PathBuf, Arc<dyn ColdStore>)>> = Mutex::new(Vec::new());

/// Hand `store` to the next `ColdArchiveStorage::open` whose cold directory is its root.
pub(crate) fn install(store: Arc<dyn ColdStore>) {
    INSTALLED.lock().push((store.root().to_path_buf(), store));
}

/// The store installed for `root`, if any (taken: the open after uses the local store again
/// unless another is installed).
pub(crate) fn take_installed(root: &Path) -> Option<Arc<dyn ColdStore>> {
    let mut installed = INSTALLED.lock();
    let at = installed.iter().position(|(r, _)| r == root)?;
    Some(installed.remove(at).1)
}
