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

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use crate::error::{Error, Result};

/// A file's page checksums, with the page ranges its footer gives.
#[derive(Debug)]
pub(crate) struct PageSums {
    /// `(offset, length, crc)` of every page, ascending by offset.
    pages: Vec<(u64, u32, u32)>,
}

impl PageSums {
    /// Pair `blob`'s checksums with `md`'s page ranges, after checking the footer's CRC
    /// against the file's tail.
    pub(crate) fn load(file: &File, md: &ParquetMetaData, blob: &[u8]) -> Result<Self, String> {
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
        let found = index_crc(file, &ranges)?;
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

    /// Check every page of `file` against its checksum, reading it once (for `verify`).
    pub(crate) fn check_all(&self, file: &File) -> Result<(), String> {
        let mut buf = Vec::new();
        for &(offset, len, _) in &self.pages {
            buf.resize(len as usize, 0);
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| format!("cannot read page at {offset}: {e}"))?;
            self.check(offset, &buf)?;
        }
        Ok(())
    }

    /// Heap bytes held.
    pub(crate) fn memory_size(&self) -> usize {
        self.pages.capacity() * std::mem::size_of::<(u64, u32, u32)>()
    }

    /// Check `bytes`, read at `start`: they must be a run of whole known pages, each matching
    /// its checksum.
    fn check(&self, start: u64, bytes: &[u8]) -> Result<(), String> {
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
pub(crate) fn compute(path: &Path, md: &ParquetMetaData) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::cold_file(path, reason);
    let file = File::open(path).map_err(|e| super::file::open_error(path, e))?;
    let ranges = page_ranges(md).map_err(bad)?;
    let mut blob = Vec::with_capacity(12 + 4 * ranges.len());
    blob.extend_from_slice(&footer_crc(&file).map_err(bad)?.to_le_bytes());
    blob.extend_from_slice(&index_crc(&file, &ranges).map_err(bad)?.to_le_bytes());
    blob.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    let mut buf = Vec::new();
    for (offset, len) in ranges {
        buf.resize(len as usize, 0);
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| bad(format!("cannot read page at {offset}: {e}")))?;
        blob.extend_from_slice(&crc32fast::hash(&buf).to_le_bytes());
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

/// CRC-32 of what lies outside the pages and the footer: the leading magic and the page index
/// (column and offset indexes, between the last page and the footer). A damaged column index
/// could otherwise make a lookup skip the page holding its record.
fn index_crc(file: &File, ranges: &[(u64, u32)]) -> Result<u32, String> {
    let (_, footer_start) = footer_bounds(file)?;
    let pages_end = ranges
        .iter()
        .map(|&(offset, len)| offset + u64::from(len))
        .max()
        .unwrap_or(4);
    if pages_end > footer_start || pages_end < 4 {
        return Err("pages overlap the footer".into());
    }
    let mut bytes = vec![0u8; 4 + (footer_start - pages_end) as usize];
    file.read_exact_at(&mut bytes[..4], 0)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    file.read_exact_at(&mut bytes[4..], pages_end)
        .map_err(|e| format!("cannot read the page index: {e}"))?;
    Ok(crc32fast::hash(&bytes))
}

/// `(file length, footer start)`: the footer is its thrift bytes, its length word and the
/// closing magic.
fn footer_bounds(file: &File) -> Result<(u64, u64), String> {
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    let mut tail = [0u8; 8];
    if len < 12 {
        return Err("shorter than a Parquet file".into());
    }
    file.read_exact_at(&mut tail, len - 8)
        .map_err(|e| format!("cannot read the footer: {e}"))?;
    let footer_len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    if footer_len + 12 > len {
        return Err("footer length exceeds the file".into());
    }
    Ok((len, len - 8 - footer_len))
}

/// CRC-32 of the footer: its thrift bytes, its length word and the closing magic.
fn footer_crc(file: &File) -> Result<u32, String> {
    let (len, start) = footer_bounds(file)?;
    let mut footer = vec![0u8; (len - start) as usize];
    file.read_exact_at(&mut footer, start)
        .map_err(|e| format!("cannot read the footer: {e}"))?;
    Ok(crc32fast::hash(&footer))
}

/// A cold file opened for reading, checking every page against its checksums when it has them
/// (files catalogued before checksums existed have none).
pub(crate) struct CheckedFile {
    file: File,
    sums: Option<Arc<PageSums>>,
}

impl CheckedFile {
    pub(crate) fn new(file: File, sums: Option<Arc<PageSums>>) -> Self {
        Self { file, sums }
    }

    /// A second handle to the same file, checked against the same sums.
    pub(crate) fn try_clone(&self) -> std::io::Result<Self> {
        Ok(Self {
            file: self.file.try_clone()?,
            sums: self.sums.clone(),
        })
    }
}

impl Length for CheckedFile {
    fn len(&self) -> u64 {
        Length::len(&self.file)
    }
}

impl ChunkReader for CheckedFile {
    type T = <File as ChunkReader>::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        if self.sums.is_some() {
            // Streaming reads walk page headers without the offset index; every read of a
            // checked file goes through the index instead.
            return Err(ParquetError::General(format!(
                "unchecked streaming read at offset {start} of a checksummed file"
            )));
        }
        self.file.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let bytes = self.file.get_bytes(start, length)?;
        if let Some(sums) = &self.sums {
            sums.check(start, &bytes).map_err(ParquetError::General)?;
        }
        Ok(bytes)
    }
}
