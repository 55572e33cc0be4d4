//! [`BlockCache`]: a local disk cache of the bytes of immutable cold objects, in fixed-size
//! blocks, so that a restarted process or a repeated read does not pay a round trip.
//!
//! - An object is named by its key, its length and its ETag ([`CachedObject`]): another length
//!   or ETag is another object (cold objects are immutable, so a key that changed content is a
//!   different object). A block is [`BLOCK`] bytes of one object (the last one shorter), in its
//!   own file `blocks/<object id>-<block index>`, the object id being the xxh3-128 of that name.
//! - A block file is written to `tmp/` and renamed into place: a crash never leaves a partial
//!   block under a block name. It carries a header (magic, object id, block index, length, the
//!   xxh3-64 of each [`PIECE`] of data, and the header's own xxh3-64); every read checks the
//!   header and the pieces it reads. A block that fails is counted (`corrupt_blocks`), deleted
//!   and fetched again; its bytes are never served.
//! - Bounded by bytes on disk (headers included), least recently used evicted first. At open
//!   the index is rebuilt from `blocks/` (oldest written first; hits before a restart are not
//!   remembered) and `tmp/` is emptied.
//! - Any I/O error of the cache, a full disk included, is a miss and a counted error, never a
//!   failed read; a directory that cannot be used at all gives a cache that always misses.
//! - Blocks fetched by a read are written by a background thread (bounded by
//!   [`MAX_PENDING_BYTES`] queued; beyond that a block is simply not cached), so a cold read
//!   does not wait for the disk. Two readers missing the same block both fetch it; neither can
//!   see a block before its rename.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::error::Result;

/// Bytes per block (the last block of an object is shorter).
pub(crate) const BLOCK: u64 = 1 << 20;
/// Bytes per checksummed piece of a block: a read checks only the pieces it touches.
const PIECE: usize = 16 << 10;
/// Bytes of a block file's header (data starts there).
const HEADER: usize = 1024;
/// First bytes of a block file.
const MAGIC: &[u8; 8] = b"TSBLOCK1";
/// Bytes of fetched blocks that may wait for the background writer.
const MAX_PENDING_BYTES: u64 = 64 << 20;

/// How [`BlockCache::read`] gets the bytes it lacks: the store's ranged read, one call for
/// all of them.
pub(crate) type Fetch<'a> = dyn FnMut(&[Range<u64>]) -> Result<Vec<Bytes>> + 'a;

/// One immutable object, as the cache names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachedObject<'a> {
    /// The object's key in its store.
    pub key: &'a str,
    /// Its length in bytes.
    pub len: u64,
    /// Its ETag, when the store gave one.
    pub etag: Option<&'a str>,
}

impl CachedObject<'_> {
    /// The object's id: xxh3-128 of its key, length and ETag.
    fn id(&self) -> u128 {
        let mut name = Vec::with_capacity(self.key.len() + 32);
        name.extend_from_slice(self.key.as_bytes());
        name.push(0);
        name.extend_from_slice(&self.len.to_le_bytes());
        match self.etag {
            Some(etag) => {
                name.push(1);
                name.extend_from_slice(etag.as_bytes());
            }
            None => name.push(0),
        }
        xxh3_128(&name)
    }

    /// Bytes of block `index`.
    fn block_len(&self, index: u64) -> usize {
        (self.len - index * BLOCK).min(BLOCK) as usize
    }
}

/// Counters and sizes of a [`BlockCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheStats {
    /// Blocks served from the cache.
    pub hits: u64,
    /// Blocks fetched from the store.
    pub misses: u64,
    /// Bytes of the block files held (headers included).
    pub bytes: u64,
    /// Block files held.
    pub blocks: u64,
    /// I/O errors of the cache (each was a miss or a block left uncached, never a failed read).
    pub errors: u64,
    /// Blocks whose checksum failed (deleted and fetched again).
    pub corrupt_blocks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BlockId {
    object: u128,
    index: u64,
}

impl BlockId {
    fn file_name(&self) -> String {
        format!("{:032x}-{:x}", self.object, self.index)
    }

    fn parse(name: &str) -> Option<Self> {
        let (object, index) = name.split_once('-')?;
        if object.len() != 32 {
            return None;
        }
        Some(Self {
            object: u128::from_str_radix(object, 16).ok()?,
            index: u64::from_str_radix(index, 16).ok()?,
        })
    }
}

/// What the cache holds: block files with their size and last use.
#[derive(Default)]
struct Index {
    entries: HashMap<BlockId, (u64, u64)>,
    /// Last use -> block, oldest first.
    lru: BTreeMap<u64, BlockId>,
    bytes: u64,
    tick: u64,
}

impl Index {
    fn touch(&mut self, id: BlockId) -> bool {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get_mut(&id) {
            Some(e) => {
                self.lru.remove(&e.1);
                e.1 = tick;
                self.lru.insert(tick, id);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, id: BlockId, size: u64) {
        self.remove(id);
        self.tick += 1;
        self.entries.insert(id, (size, self.tick));
        self.lru.insert(self.tick, id);
        self.bytes += size;
    }

    fn remove(&mut self, id: BlockId) -> bool {
        match self.entries.remove(&id) {
            Some((size, tick)) => {
                self.lru.remove(&tick);
                self.bytes -= size;
                true
            }
            None => false,
        }
    }

    /// Drop least recently used entries until `bytes <= max`; returns them.
    fn evict(&mut self, max: u64) -> Vec<BlockId> {
        let mut out = Vec::new();
        while self.bytes > max {
            let Some((_, id)) = self.lru.pop_first() else {
                break;
            };
            if let Some((size, _)) = self.entries.remove(&id) {
                self.bytes -= size;
            }
            out.push(id);
        }
        out
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    corrupt_blocks: AtomicU64,
}

struct Inner {
    blocks: PathBuf,
    tmp: PathBuf,
    max_bytes: u64,
    /// The directory could be set up; otherwise every read misses.
    enabled: bool,
    index: Mutex<Index>,
    counters: Counters,
    /// Temp file numbers.
    seq: AtomicU64,
    /// Bytes queued for the writer.
    pending: AtomicU64,
}

enum Msg {
    Write(BlockId, Bytes),
    Flush(mpsc::SyncSender<()>),
}

/// A local disk cache of blocks of immutable objects (see the module doc).
pub(crate) struct BlockCache {
    inner: Arc<Inner>,
    writer: Option<(mpsc::Sender<Msg>, JoinHandle<()>)>,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("dir", &self.inner.blocks)
            .field("max_bytes", &self.inner.max_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Why a cached block could not be served.
enum Unusable {
    /// No such file (evicted meanwhile, or removed from outside).
    Absent,
    /// Its header or a piece failed its checksum, or it is short.
    Corrupt(String),
    /// The file system failed.
    Io(io::Error),
}

impl From<io::Error> for Unusable {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Self::Absent,
            io::ErrorKind::UnexpectedEof => Self::Corrupt("short block file".into()),
            _ => Self::Io(e),
        }
    }
}

impl BlockCache {
    /// The cache in `dir` (created if needed), holding at most `max_bytes`. Never fails: a
    /// directory that cannot be used gives a cache that always misses, with a warning.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> BlockCache {
        let blocks = dir.join("blocks");
        let tmp = dir.join("tmp");
        let mut index = Index::default();
        let mut errors = 0;
        let enabled = match setup(&blocks, &tmp, &mut index) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "the cold range cache cannot use its directory: every read misses");
                errors = 1;
                false
            }
        };
        let inner = Arc::new(Inner {
            blocks,
            tmp,
            max_bytes,
            enabled,
            index: Mutex::new(index),
            counters: Counters {
                errors: AtomicU64::new(errors),
                ..Counters::default()
            },
            seq: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        });
        inner.evict();
        let writer = enabled.then(|| {
            let (tx, rx) = mpsc::channel::<Msg>();
            let worker = Arc::clone(&inner);
            let handle = std::thread::Builder::new()
                .name("cold-cache-writer".into())
                .spawn(move || {
                    for msg in rx {
                        match msg {
                            Msg::Write(id, data) => {
                                worker.store(id, &data);
                                worker
                                    .pending
                                    .fetch_sub(data.len() as u64, Ordering::Relaxed);
                            }
                            Msg::Flush(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                })
                .expect("spawn the cold cache writer");
            (tx, handle)
        });
        BlockCache { inner, writer }
    }

    /// Bytes `ranges` of `obj`: what the cache holds is read from disk, and the missing blocks
    /// are fetched in ONE call to `fetch` (block-aligned ranges, adjacent blocks merged), kept,
    /// and sliced. Only `fetch` can fail the read. Ranges outside the object go to `fetch`
    /// as asked (it reports the error).
    pub(crate) fn read(
        &self,
        obj: &CachedObject<'_>,
        ranges: &[Range<u64>],
        fetch: &mut Fetch<'_>,
    ) -> Result<Vec<Bytes>> {
        let inner = &*self.inner;
        if ranges.iter().any(|r| r.start > r.end || r.end > obj.len) {
            return fetch(ranges);
        }
        // The parts of each block the ranges need: block -> sorted sub-ranges within it.
        let mut wanted: BTreeMap<u64, Vec<Range<usize>>> = BTreeMap::new();
        for r in ranges.iter().filter(|r| r.start < r.end) {
            for b in r.start / BLOCK..=(r.end - 1) / BLOCK {
                let base = b * BLOCK;
                let sub =
                    (r.start.max(base) - base) as usize..(r.end.min(base + BLOCK) - base) as usize;
                wanted.entry(b).or_default().push(sub);
            }
        }
        if !inner.enabled {
            inner
                .counters
                .misses
                .fetch_add(wanted.len() as u64, Ordering::Relaxed);
            return fetch(ranges);
        }
        let object = obj.id();
        // Served parts, keyed by (block, sub-range).
        let mut parts: HashMap<(u64, usize, usize), Bytes> = HashMap::new();
        let mut missing: Vec<u64> = Vec::new();
        for (&b, subs) in &wanted {
            let id = BlockId { object, index: b };
            if !inner.index.lock().touch(id) {
                missing.push(b);
                continue;
            }
            match inner.read_block(id, obj.block_len(b), subs) {
                Ok(bytes) => {
                    inner.counters.hits.fetch_add(1, Ordering::Relaxed);
                    for (sub, bytes) in subs.iter().zip(bytes) {
                        parts.insert((b, sub.start, sub.end), bytes);
                    }
                }
                Err(why) => {
                    inner.drop_block(id, why);
                    missing.push(b);
                }
            }
        }
        // One fetch for every missing block: runs of adjacent blocks.
        let mut fetched: HashMap<u64, Bytes> = HashMap::new();
        if !missing.is_empty() {
            inner
                .counters
                .misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let mut runs: Vec<Range<u64>> = Vec::new();
            for &b in &missing {
                match runs.last_mut() {
                    Some(run) if run.end == b => run.end = b + 1,
                    _ => runs.push(b..b + 1),
                }
            }
            let byte_runs: Vec<Range<u64>> = runs
                .iter()
                .map(|r| r.start * BLOCK..(r.end * BLOCK).min(obj.len))
                .collect();
            let got = fetch(&byte_runs)?;
            if got.len() != byte_runs.len()
                || got
                    .iter()
                    .zip(&byte_runs)
                    .any(|(g, r)| g.len() as u64 != r.end - r.start)
            {
                // The store answered something else than asked: serve nothing of it.
                return Err(crate::error::Error::cold_file(
                    obj.key,
                    "the store returned ranges of the wrong length",
                ));
            }
            for (run, bytes) in runs.iter().zip(got) {
                for b in run.clone() {
                    let at = ((b - run.start) * BLOCK) as usize;
                    let block = bytes.slice(at..at + obj.block_len(b));
                    self.queue(BlockId { object, index: b }, block.clone());
                    fetched.insert(b, block);
                }
            }
        }
        // Assemble the asked ranges.
        let part = |b: u64, sub: &Range<usize>| -> Bytes {
            match fetched.get(&b) {
                Some(block) => block.slice(sub.clone()),
                None => parts[&(b, sub.start, sub.end)].clone(),
            }
        };
        Ok(ranges
            .iter()
            .map(|r| {
                if r.start == r.end {
                    return Bytes::new();
                }
                let (first, last) = (r.start / BLOCK, (r.end - 1) / BLOCK);
                let sub = |b: u64| {
                    let base = b * BLOCK;
                    (r.start.max(base) - base) as usize..(r.end.min(base + BLOCK) - base) as usize
                };
                if first == last {
                    return part(first, &sub(first));
                }
                let mut out = BytesMut::with_capacity((r.end - r.start) as usize);
                for b in first..=last {
                    out.extend_from_slice(&part(b, &sub(b)));
                }
                out.freeze()
            })
            .collect())
    }

    /// Write `data`, the whole content of `obj` (a freshly uploaded file), into the cache
    /// (best effort: a failure is counted and leaves the blocks uncached).
    pub(crate) fn insert(&self, obj: &CachedObject<'_>, data: &[u8]) {
        let inner = &*self.inner;
        if !inner.enabled {
            return;
        }
        if data.len() as u64 != obj.len {
            inner.counters.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let object = obj.id();
        for (b, block) in data.chunks(BLOCK as usize).enumerate() {
            inner.store(
                BlockId {
                    object,
                    index: b as u64,
                },
                block,
            );
        }
    }

    /// Write the freshly uploaded local file `path`, the content of `obj`, into the cache
    /// (best effort: a failure is counted and leaves the blocks uncached).
    #[allow(dead_code)] // for an upload that streams its file rather than holding it
    pub(crate) fn insert_file(&self, obj: &CachedObject<'_>, path: &Path) {
        let inner = &*self.inner;
        if !inner.enabled {
            return;
        }
        let object = obj.id();
        let result = (|| -> io::Result<()> {
            let mut file = File::open(path)?;
            let len = file.metadata()?.len();
            if len != obj.len {
                return Err(io::Error::other(format!(
                    "the file holds {len} bytes, the object {}",
                    obj.len
                )));
            }
            let blocks = obj.len.div_ceil(BLOCK);
            for b in 0..blocks {
                let mut data = vec![0u8; obj.block_len(b)];
                file.read_exact(&mut data)?;
                inner.store(BlockId { object, index: b }, &data);
            }
            Ok(())
        })();
        if let Err(e) = result {
            inner.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %path.display(), error = %e, "cannot write an uploaded file through to the cold range cache");
        }
    }

    /// Counters and sizes.
    pub(crate) fn stats(&self) -> CacheStats {
        let inner = &*self.inner;
        let (bytes, blocks) = {
            let index = inner.index.lock();
            (index.bytes, index.entries.len() as u64)
        };
        CacheStats {
            hits: inner.counters.hits.load(Ordering::Relaxed),
            misses: inner.counters.misses.load(Ordering::Relaxed),
            bytes,
            blocks,
            errors: inner.counters.errors.load(Ordering::Relaxed),
            corrupt_blocks: inner.counters.corrupt_blocks.load(Ordering::Relaxed),
        }
    }

    /// Wait until every fetched block queued so far is written (or failed).
    #[allow(dead_code)] // tests, and callers that need a block on disk now
    pub(crate) fn flush(&self) {
        if let Some((tx, _)) = &self.writer {
            let (done, wait) = mpsc::sync_channel(1);
            if tx.send(Msg::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Hand a fetched block to the writer, unless too much is queued already.
    fn queue(&self, id: BlockId, data: Bytes) {
        let Some((tx, _)) = &self.writer else {
            return;
        };
        let len = data.len() as u64;
        let inner = &*self.inner;
        if len + HEADER as u64 > inner.max_bytes
            || inner.pending.fetch_add(len, Ordering::Relaxed) + len > MAX_PENDING_BYTES
        {
            inner.pending.fetch_sub(len, Ordering::Relaxed);
            return;
        }
        if tx.send(Msg::Write(id, data)).is_err() {
            inner.pending.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

impl Drop for BlockCache {
    /// Write what is queued, then stop the writer.
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.writer.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// Create the directories, empty `tmp`, and index the block files of `blocks`.
fn setup(blocks: &Path, tmp: &Path, index: &mut Index) -> io::Result<()> {
    fs::create_dir_all(blocks)?;
    fs::create_dir_all(tmp)?;
    for entry in fs::read_dir(tmp)? {
        let _ = fs::remove_file(entry?.path());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(blocks)? {
        let entry = entry?;
        let name = entry.file_name();
        let id = name.to_str().and_then(BlockId::parse);
        let meta = entry.metadata()?;
        match id {
            Some(id) if meta.is_file() && meta.len() > HEADER as u64 => {
                let written = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                found.push((written, id, meta.len()));
            }
            _ => {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    found.sort_by_key(|f| f.0);
    for (_, id, size) in found {
        index.insert(id, size);
    }
    Ok(())
}

/// The header of a block of `data`.
fn header(id: BlockId, data: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&id.object.to_le_bytes());
    h.extend_from_slice(&id.index.to_le_bytes());
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    for piece in data.chunks(PIECE) {
        h.extend_from_slice(&xxh3_64(piece).to_le_bytes());
    }
    let sum = xxh3_64(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    h.resize(HEADER, 0);
    h
}

/// Offset of the piece sums in a header.
const SUMS_AT: usize = 8 + 16 + 8 + 4;

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

impl Inner {
    fn path(&self, id: BlockId) -> PathBuf {
        self.blocks.join(id.file_name())
    }

    /// Sub-ranges `subs` of cached block `id` (of `len` bytes), each checked against its
    /// pieces' checksums.
    fn read_block(
        &self,
        id: BlockId,
        len: usize,
        subs: &[Range<usize>],
    ) -> Result<Vec<Bytes>, Unusable> {
        let file = File::open(self.path(id))?;
        let mut h = [0u8; HEADER];
        read_exact_at(&file, &mut h, 0)?;
        let pieces = len.div_ceil(PIECE);
        let end = SUMS_AT + 8 * pieces;
        let stored = u64::from_le_bytes(h[end..end + 8].try_into().expect("8 bytes"));
        if &h[..8] != MAGIC
            || h[8..24] != id.object.to_le_bytes()
            || h[24..32] != id.index.to_le_bytes()
            || h[32..36] != (len as u32).to_le_bytes()
            || xxh3_64(&h[..end]) != stored
        {
            return Err(Unusable::Corrupt("block header does not match".into()));
        }
        let sum = |p: usize| {
            u64::from_le_bytes(
                h[SUMS_AT + 8 * p..SUMS_AT + 8 * p + 8]
                    .try_into()
                    .expect("8 bytes"),
            )
        };
        // Runs of pieces: subs whose pieces touch share one read (a column's consecutive
        // pages), and each piece is checked once.
        let pieces = |sub: &Range<usize>| (sub.start / PIECE, (sub.end - 1) / PIECE);
        let mut order: Vec<usize> = (0..subs.len()).collect();
        order.sort_by_key(|&i| subs[i].start);
        let mut out: Vec<Bytes> = vec![Bytes::new(); subs.len()];
        let mut i = 0;
        while i < order.len() {
            let (p0, mut p1) = pieces(&subs[order[i]]);
            let mut j = i + 1;
            while j < order.len() && pieces(&subs[order[j]]).0 <= p1 + 1 {
                p1 = p1.max(pieces(&subs[order[j]]).1);
                j += 1;
            }
            let start = p0 * PIECE;
            let stop = ((p1 + 1) * PIECE).min(len);
            let mut buf = vec![0u8; stop - start];
            read_exact_at(&file, &mut buf, (HEADER + start) as u64)?;
            for (k, piece) in buf.chunks(PIECE).enumerate() {
                if xxh3_64(piece) != sum(p0 + k) {
                    return Err(Unusable::Corrupt(format!(
                        "piece {} of the block fails its checksum",
                        p0 + k
                    )));
                }
            }
            let buf = Bytes::from(buf);
            for &k in &order[i..j] {
                out[k] = buf.slice(subs[k].start - start..subs[k].end - start);
            }
            i = j;
        }
        Ok(out)
    }

    /// Forget a block that could not be served (deleting its file unless it is gone).
    fn drop_block(&self, id: BlockId, why: Unusable) {
        self.index.lock().remove(id);
        match why {
            Unusable::Absent => {}
            Unusable::Corrupt(reason) => {
                self.counters.corrupt_blocks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(block = %self.path(id).display(), %reason, "corrupt block in the cold range cache: fetched again");
                let _ = fs::remove_file(self.path(id));
            }
            Unusable::Io(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(block = %self.path(id).display(), error = %e, "cannot read the cold range cache: fetched again");
                let _ = fs::remove_file(self.path(id));
            }
        }
    }

    /// Write block `id` (temp file, then rename) and index it, evicting what no longer fits.
    fn store(&self, id: BlockId, data: &[u8]) {
        let size = (HEADER + data.len()) as u64;
        if size > self.max_bytes || self.index.lock().entries.contains_key(&id) {
            return;
        }
        let tmp = self.tmp.join(format!(
            "{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| -> io::Result<()> {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(&header(id, data))?;
            file.write_all(data)?;
            drop(file);
            fs::rename(&tmp, self.path(id))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "cannot write a block of the cold range cache");
            return;
        }
        self.index.lock().insert(id, size);
        self.evict();
    }

    /// Delete least recently used blocks until the cache fits its bound.
    fn evict(&self) {
        let victims = self.index.lock().evict(self.max_bytes);
        for id in victims {
            if let Err(e) = fs::remove_file(self.path(id)) {
                if e.kind() != io::ErrorKind::NotFound {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-range reads are what these tests ask
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Deterministic bytes of a test object.
    fn content(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
            .collect()
    }

    /// A fake store: serves `data`, records each call's ranges.
    struct Source {
        data: Bytes,
        calls: Vec<Vec<Range<u64>>>,
    }

    impl Source {
        fn new(data: Vec<u8>) -> Self {
            Self {
                data: Bytes::from(data),
                calls: Vec::new(),
            }
        }

        fn fetch(&mut self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
            self.calls.push(ranges.to_vec());
            Ok(ranges
                .iter()
                .map(|r| self.data.slice(r.start as usize..r.end as usize))
                .collect())
        }

        fn read(
            &mut self,
            cache: &BlockCache,
            obj: &CachedObject<'_>,
            ranges: &[Range<u64>],
        ) -> Vec<Bytes> {
            let got = cache.read(obj, ranges, &mut |r| self.fetch(r)).unwrap();
            for (r, g) in ranges.iter().zip(&got) {
                assert_eq!(
                    &g[..],
                    &self.data[r.start as usize..r.end as usize],
                    "{r:?}"
                );
            }
            got
        }
    }

    const MIB: u64 = BLOCK;

    fn obj(len: u64) -> CachedObject<'static> {
        CachedObject {
            key: "date=2024-01-01/part-1.parquet",
            len,
            etag: Some("\"abc\""),
        }
    }

    fn block_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir.join("blocks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn cold_storage_cache_hits_misses_and_one_fetch_per_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::open(dir.path(), 64 * MIB);
        let len = 3 * MIB + MIB / 2;
        let o = obj(len);
        let mut src = Source::new(content(len as usize, 1));
        // Blocks 0, 1 and 2, in one fetch of the three adjacent blocks.
        src.read(
            &cache,
            &o,
            &[100..200, MIB + MIB / 2..2 * MIB + MIB / 2, 7..7],
        );
        assert_eq!(src.calls, vec![vec![0..3 * MIB]]);
        cache.flush();
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.blocks), (0, 3, 3));
        assert_eq!(s.bytes, 3 * (MIB + HEADER as u64));
        // All held now.
        src.read(&cache, &o, &[0..10, MIB - 5..MIB + 5, 2 * MIB..3 * MIB]);
        assert_eq!(src.calls.len(), 1);
        assert_eq!(cache.stats().hits, 3);
        // Block 3 (the short last one) is fetched alone; blocks held are not fetched again.
        src.read(&cache, &o, &[10..20, 3 * MIB + 1..len]);
        assert_eq!(src.calls[1], vec![3 * MIB..len]);
        // Non-adjacent missing blocks: one call, one range per run.
        let o2 = obj(len + 1);
        let mut src2 = Source::new(content(len as usize + 1, 2));
        src2.read(&cache, &o2, &[5..6, 2 * MIB + 3..3 * MIB + 4]);
        assert_eq!(src2.calls, vec![vec![0..MIB, 2 * MIB..len + 1]]);
        // A range outside the object goes to the store as asked.
        let err = cache.read(&o, &[0..len + 1], &mut |r| {
            assert_eq!(r, &[0..len + 1]);
            Err(crate::error::Error::cold_file("x", "past the end"))
        });
        assert!(err.is_err());
        assert_eq!(cache.stats().errors, 0);
    }

    #[test]
    fn cold_storage_cache_another_etag_or_length_is_another_object() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::open(dir.path(), 64 * MIB);
        let mut src = Source::new(content(2 * MIB as usize, 3));
        let o = obj(2 * MIB);
        src.read(&cache, &o, &[0..100]);
        cache.flush();
        src.read(&cache, &o, &[0..100]);
        assert_eq!(src.calls.len(), 1);
        let other = CachedObject {
            etag: Some("\"def\""),
            ..o
        };
        src.read(&cache, &other, &[0..100]);
        let none = CachedObject { etag: None, ..o };
        src.read(&cache, &none, &[0..100]);
        let shorter = CachedObject {
            len: 2 * MIB - 1,
            ..o
        };
        src.read(&cache, &shorter, &[0..100]);
        let renamed = CachedObject {
            key: "date=2024-01-01/part-2.parquet",
            ..o
        };
        src.read(&cache, &renamed, &[0..100]);
        assert_eq!(src.calls.len(), 5);
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn cold_storage_cache_is_bounded_in_bytes_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let block = MIB + HEADER as u64;
        let cache = BlockCache::open(dir.path(), 3 * block + 100);
        let len = 6 * MIB;
        let o = obj(len);
        let mut src = Source::new(content(len as usize, 4));
        for b in 0..6u64 {
            src.read(&cache, &o, &[b * MIB..b * MIB + 10]);
            cache.flush();
            // Keep block 0 in use.
            src.read(&cache, &o, &[0..10]);
            let s = cache.stats();
            assert!(s.bytes <= 3 * block + 100, "{s:?}");
        }
        let s = cache.stats();
        assert_eq!((s.blocks, s.bytes), (3, 3 * block));
        assert_eq!(block_files(dir.path()).len(), 3);
        let calls = src.calls.len();
        // Held: 0 (in use), 4 and 5 (newest); 1..3 were evicted.
        src.read(
            &cache,
            &o,
            &[5..6, 4 * MIB..4 * MIB + 1, 5 * MIB..5 * MIB + 1],
        );
        assert_eq!(src.calls.len(), calls);
        src.read(&cache, &o, &[MIB..MIB + 1]);
        assert_eq!(src.calls.len(), calls + 1);
    }

    #[test]
    fn cold_storage_cache_survives_a_restart_and_never_serves_a_partial_write() {
        let dir = tempfile::tempdir().unwrap();
        let len = 2 * MIB + 77;
        let o = obj(len);
        let mut src = Source::new(content(len as usize, 5));
        {
            let cache = BlockCache::open(dir.path(), 64 * MIB);
            src.read(&cache, &o, &[0..len]);
            // Dropping the cache writes what is queued.
        }
        // A crash mid-write leaves a temp file, never a block name; junk names are dropped.
        fs::write(dir.path().join("tmp").join("123-0"), b"half a block").unwrap();
        fs::write(dir.path().join("blocks").join("junk"), b"x").unwrap();
        let cache = BlockCache::open(dir.path(), 64 * MIB);
        let s = cache.stats();
        assert_eq!((s.blocks, s.bytes), (3, len + 3 * HEADER as u64));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(!dir.path().join("blocks").join("junk").exists());
        src.read(&cache, &o, &[0..len, 5..MIB + 5]);
        assert_eq!(src.calls.len(), 1);
        assert_eq!(cache.stats().hits, 3);
        // A smaller bound at the next open evicts the oldest down to it.
        drop(cache);
        let cache = BlockCache::open(dir.path(), 2 * (MIB + HEADER as u64));
        assert_eq!(cache.stats().blocks, 2);
        assert_eq!(block_files(dir.path()).len(), 2);
    }

    #[test]
    fn cold_storage_cache_corrupt_block_is_detected_deleted_and_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::open(dir.path(), 64 * MIB);
        let len = MIB + 5000;
        let o = obj(len);
        let mut src = Source::new(content(len as usize, 6));
        src.read(&cache, &o, &[0..len]);
        cache.flush();
        let files = block_files(dir.path());
        assert_eq!(files.len(), 2);
        // A flipped data byte in block 0 (at offset 40_000 of the object), a damaged header in
        // block 1, and a truncated copy: each is caught, never served.
        let mut bytes = fs::read(&files[0]).unwrap();
        bytes[HEADER + 40_000] ^= 0x10;
        fs::write(&files[0], &bytes).unwrap();
        let mut bytes = fs::read(&files[1]).unwrap();
        bytes[40] ^= 0x01;
        fs::write(&files[1], &bytes).unwrap();
        src.read(&cache, &o, &[39_990..40_010, MIB + 1..MIB + 2]);
        assert_eq!(src.calls.len(), 2);
        assert_eq!(src.calls[1], vec![0..len]);
        let s = cache.stats();
        assert_eq!((s.corrupt_blocks, s.errors), (2, 0));
        cache.flush();
        // Written again and served.
        src.read(&cache, &o, &[39_990..40_010, MIB + 1..MIB + 2]);
        assert_eq!(src.calls.len(), 2);
        // A piece the read does not touch is not checked; the one it touches is.
        let files = block_files(dir.path());
        let bytes = fs::read(&files[0]).unwrap();
        fs::write(&files[0], &bytes[..HEADER + 100_000]).unwrap();
        src.read(&cache, &o, &[10..20]);
        assert_eq!(src.calls.len(), 2);
        src.read(&cache, &o, &[200_000..200_001]);
        assert_eq!(src.calls.len(), 3);
        assert_eq!(cache.stats().corrupt_blocks, 3);
    }

    #[test]
    fn cold_storage_cache_unusable_directory_is_a_miss_never_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let len = 2 * MIB;
        let o = obj(len);
        let mut src = Source::new(content(len as usize, 7));
        // A path under a regular file cannot be created (even by root).
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let cache = BlockCache::open(&file.join("cache"), 64 * MIB);
        src.read(&cache, &o, &[0..10, MIB..MIB + 10]);
        src.read(&cache, &o, &[0..10]);
        assert_eq!(src.calls.len(), 2);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.blocks), (0, 3, 0));
        assert!(s.errors >= 1);
        cache.insert_file(&o, &file);

        // A directory removed while in use: writes fail, reads miss.
        let gone = dir.path().join("gone");
        let cache = BlockCache::open(&gone, 64 * MIB);
        src.read(&cache, &o, &[0..10]);
        cache.flush();
        assert_eq!(cache.stats().blocks, 1);
        fs::remove_dir_all(&gone).unwrap();
        src.read(&cache, &o, &[0..10, MIB..MIB + 1]);
        cache.flush();
        src.read(&cache, &o, &[0..10]);
        let s = cache.stats();
        assert!(s.errors >= 1, "{s:?}");
        assert_eq!(s.corrupt_blocks, 0);
        let path = dir.path().join("upload");
        fs::write(&path, &src.data).unwrap();
        cache.insert_file(&o, &path);
    }

    /// As root with `TIERED_STORAGE_TMPFS=1`: a cache on a 2 MiB tmpfs that fills up. Every
    /// read is still served; the failed writes are counted errors.
    #[test]
    fn cold_storage_cache_full_disk_is_a_miss_never_an_error() {
        if std::env::var("TIERED_STORAGE_TMPFS").as_deref() != Ok("1") {
            eprintln!("skipped: set TIERED_STORAGE_TMPFS=1 (as root) to mount a full tmpfs");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("tmpfs");
        fs::create_dir(&mount).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&mount)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed (needs root)");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.0)
                    .status();
            }
        }
        let _unmount = Unmount(mount.clone());
        let cache = BlockCache::open(&mount, 64 * MIB);
        let len = 8 * MIB;
        let o = obj(len);
        let mut src = Source::new(content(len as usize, 8));
        src.read(&cache, &o, &[0..len]);
        cache.flush();
        src.read(&cache, &o, &[0..len]);
        cache.flush();
        let path = dir.path().join("upload");
        fs::write(&path, &src.data).unwrap();
        let uploaded = obj(len);
        cache.insert_file(
            &CachedObject {
                key: "other",
                ..uploaded
            },
            &path,
        );
        let s = cache.stats();
        assert!(s.errors >= 1, "{s:?}");
        assert!(s.bytes <= 2 * MIB, "{s:?}");
        assert_eq!(s.corrupt_blocks, 0);
    }

    #[test]
    fn cold_storage_cache_write_through_and_concurrent_readers() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::open(dir.path(), 64 * MIB);
        let len = 3 * MIB + 3;
        let o = obj(len);
        let data = content(len as usize, 9);
        let path = dir.path().join("upload");
        fs::write(&path, &data).unwrap();
        cache.insert_file(&o, &path);
        assert_eq!(cache.stats().blocks, 4);
        let mut never = |_: &[Range<u64>]| -> Result<Vec<Bytes>> { panic!("fetched") };
        let got = cache.read(&o, &[0..len], &mut never).unwrap();
        assert_eq!(&got[0][..], &data[..]);

        // Many readers of another object at once: every answer is right, and only whole
        // blocks are ever visible.
        let o2 = obj(len - 1);
        let fetches = AtomicUsize::new(0);
        let data2 = Bytes::from(content(len as usize - 1, 10));
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (cache, data2, fetches) = (&cache, &data2, &fetches);
                s.spawn(move || {
                    for i in 0..40u64 {
                        let at = (i * 997_331 + t * 31) % (len - 200);
                        let ranges = [at..at + 100, (at / 2)..(at / 2 + 50_000).min(len - 1)];
                        let got = cache
                            .read(&o2, &ranges, &mut |r| {
                                fetches.fetch_add(1, Ordering::Relaxed);
                                Ok(r.iter()
                                    .map(|r| data2.slice(r.start as usize..r.end as usize))
                                    .collect())
                            })
                            .unwrap();
                        for (r, g) in ranges.iter().zip(got) {
                            assert_eq!(&g[..], &data2[r.start as usize..r.end as usize]);
                        }
                    }
                });
            }
        });
        cache.flush();
        assert!(fetches.load(Ordering::Relaxed) >= 1);
        assert_eq!(cache.stats().corrupt_blocks, 0);
        assert_eq!(cache.stats().errors, 0);
    }
}
