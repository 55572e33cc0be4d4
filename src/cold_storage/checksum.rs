//! Page checksums of cold files.
//!
//! parquet-rs writes no page CRCs (its `crc` feature only verifies CRCs that other writers put
//! in page headers), and Parquet compresses and encodes with no integrity check of its own: a
//! flipped byte inside a page decodes to different values. So every file gets a CRC-32 of each
//! page (header included) and of its footer, computed once the file is written and fsynced, and
//! stored in its catalog row (`cold_files.page_sums`). The catalog commit that publishes a file
//! is therefore also the commit of its checksums.
//!
//! Reads go through [`CheckedFile`], a [`ChunkReader`] that checks every page it hands to the
//! Parquet decoder. With the page index loaded, the decoder asks for exactly one page (or a
//! column chunk's dictionary page) per call, so each read checks what it reads and nothing
//! more: a point lookup still reads one page per column. A read of a range that is not a run of
//! whole known pages is refused, so offsets changed by a damaged footer cannot bypass the check.
//!
//! The blob: the footer's CRC-32 (`u32` LE), the CRC-32 of the leading magic and the page index
//! (`u32` LE), the page count (`u32` LE), then one CRC-32 per page in file order. Offsets and lengths are not stored: they come from the footer (whose own CRC
//! is checked first) — a dictionary page spans from its column chunk's start to the first data
//! page, and data pages are listed by the offset index.

use std::io::Read;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use super::file::ReadAhead;
use super::store::{FileRef, RangeRead};
use crate::error::{Error, Result};

/// Bytes per read of an unchecked streaming read.
const STREAM_CHUNK: u64 = 64 * 1024;
/// Bytes of pages per request of [`PageSums::check_all`].
const CHECK_BATCH: u64 = 8 << 20;
/// The magic a Parquet file starts and ends with.
const MAGIC: &[u8; 4] = b"PAR1";

/// `len` bytes at `offset`, or why not.
fn read_at(file: &dyn RangeRead, offset: u64, len: u64, what: &str) -> Result<Bytes, String> {
    file.read(offset..offset + len)
        .map_err(|e| format!("cannot read {what}: {e}"))
}

/// A file's page checksums, with the page ranges its footer gives.
#[derive(Debug)]
pub(crate) struct PageSums {
    /// `(offset, length, crc)` of every page, ascending by offset.
    pages: Vec<(u64, u32, u32)>,
}

impl PageSums {
    /// Pair `blob`'s checksums with `md`'s page ranges, after checking the footer's CRC
    /// against the file's tail.
    pub(crate) fn load(
        file: &dyn RangeRead,
        md: &ParquetMetaData,
        blob: &[u8],
    ) -> Result<Self, String> {
        let word = |i: usize| -> Option<u32> {
            blob.get(4 * i..4 * i + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        let (Some(footer), Some(index), Some(count)) = (word(0), word(1), word(2)) else {
            return Err("its page checksums in the catalog are truncated".into());
        };
        if blob.len() != 12 + 4 * count as usize {
            return Err(format!(
                "its page checksums in the catalog hold {} bytes for {count} pages",
                blob.len()
            ));
        }
        let found = footer_crc(file)?;
        if found != footer {
            return Err(format!(
                "footer checksum mismatch (catalog {footer:08x}, file {found:08x}): the footer is damaged"
            ));
        }
        let ranges = page_ranges(md)?;
        let found = index_crc(file, &ranges, false)?;
        if found != index {
            return Err(format!(
                "page index checksum mismatch (catalog {index:08x}, file {found:08x}): the page index is damaged"
            ));
        }
        if ranges.len() != count as usize {
            return Err(format!(
                "the footer lists {} pages, the catalog has checksums for {count}",
                ranges.len()
            ));
        }
        let pages = ranges
            .into_iter()
            .enumerate()
            .map(|(i, (offset, len))| (offset, len, word(3 + i).expect("length checked")))
            .collect();
        Ok(Self { pages })
    }

    /// Check every page of `file` against its checksum, and its leading magic, reading it
    /// once (for `verify`). Pages are asked for [`CHECK_BATCH`] bytes at a time in one
    /// [`RangeRead::read_ranges`] call each (a request per page would be slow on an object
    /// store).
    pub(crate) fn check_all(&self, file: &dyn RangeRead) -> Result<(), String> {
        if &read_at(file, 0, 4, "the header")?[..] != MAGIC {
            return Err("the leading magic is damaged".into());
        }
        let mut batch: Vec<std::ops::Range<u64>> = Vec::new();
        let mut bytes = 0u64;
        let flush = |batch: &mut Vec<std::ops::Range<u64>>| -> Result<(), String> {
            if batch.is_empty() {
                return Ok(());
            }
            let pages = file
                .read_ranges(batch)
                .map_err(|e| format!("cannot read pages at {}: {e}", batch[0].start))?;
            for (r, page) in batch.iter().zip(pages) {
                self.check(r.start, &page)?;
            }
            batch.clear();
            Ok(())
        };
        for &(offset, len, _) in &self.pages {
            batch.push(offset..offset + u64::from(len));
            bytes += u64::from(len);
            if bytes >= CHECK_BATCH {
                flush(&mut batch)?;
                bytes = 0;
            }
        }
        flush(&mut batch)
    }

    /// Heap bytes held.
    pub(crate) fn memory_size(&self) -> usize {
        self.pages.capacity() * std::mem::size_of::<(u64, u32, u32)>()
    }

    /// Check `bytes`, read at `start`: they must be a run of whole known pages, each matching
    /// its checksum.
    pub(crate) fn check(&self, start: u64, bytes: &[u8]) -> Result<(), String> {
        let mut i = self
            .pages
            .binary_search_by_key(&start, |p| p.0)
            .map_err(|_| format!("read at offset {start} does not start a known page"))?;
        let mut at = 0usize;
        while at < bytes.len() {
            let Some(&(offset, len, crc)) = self.pages.get(i) else {
                return Err(format!("read at offset {start} runs past the last page"));
            };
            let len = len as usize;
            if offset != start + at as u64 || at + len > bytes.len() {
                return Err(format!(
                    "read of {} bytes at offset {start} is not a run of whole pages",
                    bytes.len()
                ));
            }
            let found = crc32fast::hash(&bytes[at..at + len]);
            if found != crc {
                return Err(format!(
                    "page checksum mismatch at offset {offset} ({len} bytes): the page is damaged"
                ));
            }
            at += len;
            i += 1;
        }
        Ok(())
    }
}

/// Compute the checksum blob of a finished file (blocking; reads the file once).
pub(crate) fn compute(source: &FileRef, md: &ParquetMetaData) -> Result<Vec<u8>> {
    let path = source.path();
    let bad = |reason: String| Error::cold_file(&path, reason);
    let file = source.open()?;
    let file = &*file;
    let ranges = page_ranges(md).map_err(bad)?;
    let mut blob = Vec::with_capacity(12 + 4 * ranges.len());
    blob.extend_from_slice(&footer_crc(file).map_err(bad)?.to_le_bytes());
    blob.extend_from_slice(&index_crc(file, &ranges, true).map_err(bad)?.to_le_bytes());
    blob.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    for (offset, len) in ranges {
        let page =
            read_at(file, offset, u64::from(len), &format!("page at {offset}")).map_err(bad)?;
        blob.extend_from_slice(&crc32fast::hash(&page).to_le_bytes());
    }
    Ok(blob)
}

/// Every page's `(offset, length)` in file order: per column chunk, its dictionary page (from
/// the chunk's start to its first data page, when there is a gap) and its data pages from the
/// offset index.
fn page_ranges(md: &ParquetMetaData) -> Result<Vec<(u64, u32)>, String> {
    let Some(index) = md.page_index() else {
        return Err("no page index: pages cannot be checked".into());
    };
    let mut out = Vec::new();
    for (g, rg) in md.row_groups().iter().enumerate() {
        for (c, chunk) in rg.columns().iter().enumerate() {
            let (start, _) = chunk.byte_range();
            let locations = index
                .page_locations(g, c)
                .ok_or_else(|| format!("no offset index for column {c} of row group {g}"))?;
            let first = locations
                .first()
                .ok_or_else(|| "a column chunk with no pages".to_owned())?;
            let first_offset = u64::try_from(first.offset).map_err(|_| "negative page offset")?;
            if first_offset > start {
                let len =
                    u32::try_from(first_offset - start).map_err(|_| "dictionary too large")?;
                out.push((start, len));
            }
            for p in locations {
                let offset = u64::try_from(p.offset).map_err(|_| "negative page offset")?;
                let len = u32::try_from(p.compressed_page_size).map_err(|_| "bad page size")?;
                out.push((offset, len));
            }
        }
    }
    out.sort_unstable();
    for pair in out.windows(2) {
        if pair[0].0 + u64::from(pair[0].1) > pair[1].0 {
            return Err(format!("pages at {} and {} overlap", pair[0].0, pair[1].0));
        }
    }
    Ok(out)
}

/// Where the pages of a file end: its tail (page index and footer) starts there. `None`
/// without a page index.
pub(crate) fn pages_end(md: &ParquetMetaData) -> Option<u64> {
    let ranges = page_ranges(md).ok()?;
    Some(
        ranges
            .iter()
            .map(|&(offset, len)| offset + u64::from(len))
            .max()
            .unwrap_or(4),
    )
}

/// CRC-32 of what lies outside the pages and the footer: the leading magic and the page index
/// (column and offset indexes, between the last page and the footer). A damaged column index
/// could otherwise make a lookup skip the page holding its record.
///
/// With `read_magic` false the magic is taken to be `PAR1` rather than read: an open then reads
/// only the file's tail (one request on an object store). No read depends on those four bytes;
/// [`PageSums::check_all`] checks them.
fn index_crc(file: &dyn RangeRead, ranges: &[(u64, u32)], read_magic: bool) -> Result<u32, String> {
    let (_, footer_start) = footer_bounds(file)?;
    let pages_end = ranges
        .iter()
        .map(|&(offset, len)| offset + u64::from(len))
        .max()
        .unwrap_or(4);
    if pages_end > footer_start || pages_end < 4 {
        return Err("pages overlap the footer".into());
    }
    let mut hasher = crc32fast::Hasher::new();
    if read_magic {
        hasher.update(&read_at(file, 0, 4, "the header")?);
    } else {
        hasher.update(MAGIC);
    }
    hasher.update(&read_at(
        file,
        pages_end,
        footer_start - pages_end,
        "the page index",
    )?);
    Ok(hasher.finalize())
}

/// `(file length, footer start)`: the footer is its thrift bytes, its length word and the
/// closing magic.
fn footer_bounds(file: &dyn RangeRead) -> Result<(u64, u64), String> {
    let len = file.len().map_err(|e| format!("cannot stat: {e}"))?;
    if len < 12 {
        return Err("shorter than a Parquet file".into());
    }
    let tail = read_at(file, len - 8, 8, "the footer")?;
    let footer_len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    if footer_len + 12 > len {
        return Err("footer length exceeds the file".into());
    }
    Ok((len, len - 8 - footer_len))
}

/// CRC-32 of the footer: its thrift bytes, its length word and the closing magic.
fn footer_crc(file: &dyn RangeRead) -> Result<u32, String> {
    let (len, start) = footer_bounds(file)?;
    let footer = read_at(file, start, len - start, "the footer")?;
    Ok(crc32fast::hash(&footer))
}

/// A cold file opened for reading, checking every page against its checksums when it has them
/// (files catalogued before checksums existed have none). Reads go through the store's ranged
/// reads; clones share the open file.
#[derive(Clone)]
pub(crate) struct CheckedFile {
    file: Arc<dyn RangeRead>,
    sums: Option<Arc<PageSums>>,
    /// The file's length, read once.
    len: u64,
    /// Pages read ahead (already checked), if the read planned them.
    ahead: Option<Arc<ReadAhead>>,
}

impl CheckedFile {
    /// `file`, of `len` bytes (known from its open), checked against `sums` if any.
    pub(crate) fn new(file: Arc<dyn RangeRead>, sums: Option<Arc<PageSums>>, len: u64) -> Self {
        Self {
            file,
            sums,
            len,
            ahead: None,
        }
    }

    /// Serve the pages `ahead` holds from it (see [`ReadAhead`]).
    pub(crate) fn with_ahead(mut self, ahead: Arc<ReadAhead>) -> Self {
        self.ahead = Some(ahead);
        self
    }

    /// The open file, shared.
    pub(crate) fn handle(&self) -> &Arc<dyn RangeRead> {
        &self.file
    }

    /// The page checksums, if any.
    pub(crate) fn sums(&self) -> Option<&Arc<PageSums>> {
        self.sums.as_ref()
    }

    /// The open file.
    pub(crate) fn file(&self) -> &dyn RangeRead {
        &*self.file
    }
}

impl Length for CheckedFile {
    fn len(&self) -> u64 {
        self.len
    }
}

fn external(e: Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl ChunkReader for CheckedFile {
    type T = StreamRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        if self.sums.is_some() {
            // Streaming reads walk page headers without the offset index; every read of a
            // checked file goes through the index instead.
            return Err(ParquetError::General(format!(
                "unchecked streaming read at offset {start} of a checksummed file"
            )));
        }
        Ok(StreamRead {
            file: Arc::clone(&self.file),
            next: start,
            len: self.len,
            buffer: Bytes::new(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start + length as u64;
        if end > self.len {
            return Err(ParquetError::EOF(format!(
                "read of {length} bytes at {start} runs past the end ({} bytes)",
                self.len
            )));
        }
        if let Some(page) = self.ahead.as_ref().and_then(|a| a.get(start, length)) {
            return Ok(page);
        }
        let bytes = self.file.read(start..end).map_err(external)?;
        if let Some(sums) = &self.sums {
            sums.check(start, &bytes).map_err(ParquetError::General)?;
        }
        Ok(bytes)
    }
}

/// A sequential read of an unchecked file, a chunk of ranged reads at a time.
pub(crate) struct StreamRead {
    file: Arc<dyn RangeRead>,
    /// Offset of the next chunk.
    next: u64,
    len: u64,
    buffer: Bytes,
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.buffer.is_empty() {
            if self.next >= self.len {
                return Ok(0);
            }
            let end = (self.next + STREAM_CHUNK).min(self.len);
            self.buffer = self
                .file
                .read(self.next..end)
                .map_err(std::io::Error::other)?;
            self.next = end;
        }
        let n = buf.len().min(self.buffer.len());
        self.buffer.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// A file whose tail was read at open (the catalog knew its length): reads within the tail
/// are served from memory, so opening the footer and page index costs one request.
#[derive(Debug)]
pub(crate) struct Preloaded {
    file: Arc<dyn RangeRead>,
    /// Offset of `tail` in the file.
    start: u64,
    tail: Bytes,
}

impl Preloaded {
    /// `file`, whose bytes from `start` to its end are `tail`.
    pub(crate) fn new(file: Arc<dyn RangeRead>, start: u64, tail: Bytes) -> Self {
        Self { file, start, tail }
    }
}

impl RangeRead for Preloaded {
    fn len(&self) -> Result<u64> {
        Ok(self.start + self.tail.len() as u64)
    }

    fn read(&self, range: std::ops::Range<u64>) -> Result<Bytes> {
        let end = self.start + self.tail.len() as u64;
        if range.start >= self.start && range.start <= range.end && range.end <= end {
            let at = (range.start - self.start) as usize;
            return Ok(self.tail.slice(at..at + (range.end - range.start) as usize));
        }
        self.file.read(range)
    }
}
