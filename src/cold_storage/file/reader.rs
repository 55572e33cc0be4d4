//! Reading one cold file: its footer and page index, checked against the catalog's checksums,
//! and point lookups by id that read one page per column.

use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::PageIndexPolicy;

use super::ahead::{group_pages, ReadAhead};
use super::{
    check_key_columns, compatible_fields, guard, i64_values, int64_chunk_bounds, overlaps,
    page_ranges, push_selectors, row_at, whole, FileSummary, GroupBounds, FORMAT_VERSION,
    FORMAT_VERSION_KEY,
};
use crate::cold_storage::checksum::{self, CheckedFile, PageSums, Preloaded};
use crate::cold_storage::store::{FileRef, RangeRead};
use crate::error::{Error, Result};
use crate::record::Record;

/// Heap bytes counted per Arrow field of an open file's schema (name, type, metadata, `Arc`).
const SCHEMA_FIELD_BYTES: usize = 160;
/// Bytes of the tail an open reads from an object store when the catalog has no footer
/// length (a request costs more than these bytes).
const REMOTE_TAIL_GUESS: u64 = 1 << 20;
/// Rows per batch of [`ColdFile::ids`].
const IDS_BATCH_ROWS: usize = 8192;

/// One opened cold file. Holds the parsed footer with its page index and where its bytes are
/// (no open handle: each read opens its own through the store, so a file deleted since is
/// found missing rather than read). Cheap to share behind an `Arc`.
pub(crate) struct ColdFile<R> {
    pub(super) source: FileRef,
    /// The file, for messages.
    pub(super) path: PathBuf,
    pub(super) meta: ArrowReaderMetadata,
    /// Page checksums from the catalog; `None` for a file catalogued without them.
    pub(super) sums: Option<Arc<PageSums>>,
    pub(super) groups: Vec<GroupBounds>,
    /// Projection of column 0 alone.
    pub(super) id_mask: ProjectionMask,
    pub(super) bytes: u64,
    pub(super) _record: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ColdFile<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdFile")
            .field("path", &self.path)
            .field("row_groups", &self.groups.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<R: Record> ColdFile<R> {
    /// [`open_at`](Self::open_at) a local file outside any store, unchecked (for tools and
    /// tests that read a file by its path).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_at(FileRef::local(path), None)
    }

    /// Read and check the footer and page index of `source`: format version, schema against
    /// `R::cold_schema()`, id order across row groups. Any failure of the file is
    /// [`Error::ColdFile`]. With `sums` (a checksum blob from the catalog), check the footer
    /// against it and every page read from then on; without, pages are read unchecked (files
    /// with no checksums, and computing them).
    pub fn open_at(source: FileRef, sums: Option<&[u8]>) -> Result<Self> {
        Self::open_with(source, sums, None)
    }

    /// [`open_at`](Self::open_at) with the length of the file's tail (page index and footer,
    /// [`footer_len`](Self::footer_len)) from the catalog: the tail is then read in ONE
    /// request, and the footer, page index and their checksums are parsed from it. A hint that
    /// is wrong only costs requests (what lies outside the tail is read as usual).
    pub fn open_with(
        source: FileRef,
        sums: Option<&[u8]>,
        footer_len: Option<u64>,
    ) -> Result<Self> {
        let path = source.path();
        let path = path.as_path();
        let bad = |reason: String| Error::cold_file(path, reason);
        let handle = source.open()?;
        let bytes = handle.len().map_err(|e| bad(format!("cannot stat: {e}")))?;
        // An object store without a hint: a guess, which saves the requests of the footer's
        // length word, the footer and the page index in most files.
        let footer_len =
            footer_len.or_else(|| source.is_remote().then(|| REMOTE_TAIL_GUESS.min(bytes)));
        let handle: Arc<dyn RangeRead> = match footer_len {
            Some(tail) if (12..=bytes).contains(&tail) => {
                let start = bytes - tail;
                let read = handle.read(start..bytes)?;
                Arc::new(Preloaded::new(handle, start, read))
            }
            _ => handle,
        };
        let file = CheckedFile::new(handle, None, bytes);
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let meta = guard(path, || {
            ArrowReaderMetadata::load(&file, options)
                .map_err(|e| bad(format!("not a readable Parquet file: {e}")))
        })?;
        let md = meta.metadata().clone();

        let version = md
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == FORMAT_VERSION_KEY))
            .map(|kv| kv.value.clone().unwrap_or_default());
        match version.as_deref() {
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(bad(format!(
                    "format version {other:?}, expected {FORMAT_VERSION:?}"
                )))
            }
            None => {
                return Err(bad(format!(
                    "no `{FORMAT_VERSION_KEY}` in the footer: not written by tiered-storage"
                )))
            }
        }

        let expected = R::cold_schema();
        compatible_fields(expected.fields(), meta.schema().fields()).map_err(|reason| {
            bad(format!(
                "schema does not match {}: {reason}",
                std::any::type_name::<R>()
            ))
        })?;
        check_key_columns(meta.schema()).map_err(bad)?;

        let groups: Vec<GroupBounds> = md
            .row_groups()
            .iter()
            .map(|rg| GroupBounds {
                rows: usize::try_from(rg.num_rows()).unwrap_or(0),
                id: int64_chunk_bounds(rg, 0),
                ts: int64_chunk_bounds(rg, 1),
            })
            .collect();
        for (i, pair) in groups.windows(2).enumerate() {
            if let (Some((_, prev_max)), Some((next_min, _))) = (pair[0].id, pair[1].id) {
                if next_min <= prev_max {
                    return Err(bad(format!(
                        "row groups {i} and {} overlap in id: rows are not sorted by id",
                        i + 1
                    )));
                }
            }
        }
        let id_mask = ProjectionMask::leaves(meta.parquet_schema(), [0]);
        let sums = match sums {
            Some(blob) => Some(Arc::new(
                PageSums::load(file.file(), &md, blob).map_err(bad)?,
            )),
            None => None,
        };
        Ok(Self {
            source,
            path: path.to_owned(),
            meta,
            sums,
            groups,
            id_mask,
            bytes,
            _record: PhantomData,
        })
    }

    /// The file's path.
    #[allow(dead_code)] // part of the file API; used by tests so far
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows and id/timestamp bounds from the footer alone; `bytes` is the file length at open.
    pub fn summary(&self) -> Result<FileSummary> {
        let rows = self.meta.metadata().file_metadata().num_rows();
        if rows <= 0 || self.groups.is_empty() {
            return Err(Error::cold_file(&self.path, "holds no rows"));
        }
        let (mut min_id, mut max_id, mut min_ts, mut max_ts) =
            (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
        for (i, g) in self.groups.iter().enumerate() {
            let (Some(id), Some(ts)) = (g.id, g.ts) else {
                return Err(Error::cold_file(
                    &self.path,
                    format!("row group {i} has no id/timestamp statistics"),
                ));
            };
            min_id = min_id.min(id.0);
            max_id = max_id.max(id.1);
            min_ts = min_ts.min(ts.0);
            max_ts = max_ts.max(ts.1);
        }
        Ok(FileSummary {
            rows: rows as u64,
            min_id,
            max_id,
            min_ts,
            max_ts,
            bytes: self.bytes,
        })
    }

    /// Heap bytes held by the parsed footer and page index.
    pub fn memory_size(&self) -> usize {
        // The parsed footer and page index, the page checksums, and an estimate of the Arrow
        // schema and this struct (the footer's estimate leaves them out).
        self.meta.metadata().memory_size()
            + self.sums.as_ref().map_or(0, |s| s.memory_size())
            + std::mem::size_of::<Self>()
            + self.meta.schema().flattened_fields().len() * SCHEMA_FIELD_BYTES
    }

    /// Check every page against its checksum, reading the whole file once (no decoding).
    /// `Ok` for a file with no checksums.
    pub fn check_pages(&self) -> Result<()> {
        let Some(sums) = &self.sums else {
            return Ok(());
        };
        let file = self.source.open()?;
        sums.check_all(&*file)
            .map_err(|reason| Error::cold_file(&self.path, reason))
    }

    /// Bytes of the file's tail: its page index and footer, which an open reads (the
    /// catalog's `footer_len`, so that an uncached open is one request). `None` without a
    /// page index.
    #[allow(dead_code)] // used by archival on object stores
    pub fn footer_len(&self) -> Option<u64> {
        checksum::pages_end(self.meta.metadata()).map(|end| self.bytes.saturating_sub(end))
    }

    /// The checksum blob of this file's pages and footer, for its catalog row (reads the
    /// whole file).
    pub fn compute_sums(&self) -> Result<Vec<u8>> {
        checksum::compute(&self.source, self.meta.metadata())
    }

    /// The record with this id, reading only the pages that can hold it: the id page(s) picked by
    /// the page index, then one row of every column.
    pub fn get(&self, id: i64) -> Result<Option<R>> {
        guard(&self.path, || {
            for (rg, g) in self.groups.iter().enumerate() {
                if !overlaps(g.id, id, id) {
                    continue;
                }
                if let Some(record) = self.get_in_group(rg, id)? {
                    return Ok(Some(record));
                }
            }
            Ok(None)
        })
    }

    /// Rows of row group `rg` whose id pages can hold `id` (the whole group without a page index).
    fn candidate_rows(&self, rg: usize, id: i64) -> Vec<Range<usize>> {
        let rows = self.groups[rg].rows;
        page_ranges(self.meta.metadata(), rg, 0, id, id, rows).unwrap_or_else(|| whole(rows))
    }

    fn get_in_group(&self, rg: usize, id: i64) -> Result<Option<R>> {
        let rows = self.groups[rg].rows;
        let ranges = self.candidate_rows(rg, id);
        let selected: usize = ranges.iter().map(ExactSizeIterator::len).sum();
        if selected == 0 {
            return Ok(None);
        }
        // The pages a lookup reads are known from the offset index, so each phase asks for
        // all of them in one `read_ranges` call. On an object store (a request per call)
        // phase 1 also takes every column's pages over the candidate rows, so that phase 2
        // needs no request at all: one round trip per lookup.
        let md = self.meta.metadata();
        let one_trip = self.source.is_remote();
        let handle = self.source.open()?;
        let phase1 = group_pages(md, rg, (!one_trip).then_some(&self.id_mask), &ranges);
        let file = self.checked(&handle, phase1, true);
        let read_err = |e: &dyn std::fmt::Display| {
            Error::cold_file(&self.path, format!("cannot read row group {rg}: {e}"))
        };

        // Phase 1: the id column of the candidate pages only.
        let mut selectors = Vec::with_capacity(2 * ranges.len() + 1);
        push_selectors(&mut selectors, &ranges, rows);
        let reader = self
            .builder(file.clone())
            .with_projection(self.id_mask.clone())
            .with_row_groups(vec![rg])
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(selected)
            .build()
            .map_err(|e| read_err(&e))?;
        let mut position = None;
        let mut seen = 0;
        for batch in reader {
            let batch = batch.map_err(|e| read_err(&e))?;
            let ids =
                i64_values(batch.column(0)).ok_or_else(|| read_err(&"id column is not Int64"))?;
            if let Some(p) = ids.iter().position(|&v| v == id) {
                position = Some(seen + p);
                break;
            }
            seen += batch.num_rows();
        }
        let Some(position) = position else {
            return Ok(None);
        };
        let row = row_at(&ranges, position).ok_or_else(|| read_err(&"page index out of range"))?;

        // Phase 2: that one row of every column (one page per column is read and decoded).
        let file = if one_trip {
            file
        } else {
            let only = row..row + 1;
            self.checked(
                &handle,
                group_pages(md, rg, None, std::slice::from_ref(&only)),
                true,
            )
        };
        let mut selectors = vec![RowSelector::skip(row), RowSelector::select(1)];
        if rows > row + 1 {
            selectors.push(RowSelector::skip(rows - row - 1));
        }
        let mut reader = self
            .builder(file)
            .with_row_groups(vec![rg])
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(1)
            .build()
            .map_err(|e| read_err(&e))?;
        let batch = match reader.next() {
            Some(batch) => batch.map_err(|e| read_err(&e))?,
            None => return Err(read_err(&format!("row {row} vanished between reads"))),
        };
        let record = R::from_cold_batch(&batch)?.pop();
        match record {
            Some(r) if r.id() == Some(id) => Ok(Some(r)),
            other => Err(read_err(&format!(
                "row {row} decoded to id {:?}, expected {id}",
                other.and_then(|r| r.id())
            ))),
        }
    }

    /// Every id in the file, in order, reading only the id column.
    pub fn ids(&self) -> Result<impl Iterator<Item = Result<Vec<i64>>>> {
        let path = self.path.clone();
        let reader = self
            .builder(self.open_data()?)
            .with_projection(self.id_mask.clone())
            .with_batch_size(IDS_BATCH_ROWS)
            .build()
            .map_err(|e| Error::cold_file(&path, format!("cannot read ids: {e}")))?;
        let mut reader = Some(reader);
        Ok(std::iter::from_fn(move || {
            let r = reader.as_mut()?;
            let next = guard(&path, || {
                Ok(r.next().map(|batch| {
                    batch
                        .map_err(|e| Error::cold_file(&path, format!("cannot read ids: {e}")))
                        .and_then(|b| {
                            i64_values(b.column(0))
                                .map(<[i64]>::to_vec)
                                .ok_or_else(|| Error::cold_file(&path, "id column is not Int64"))
                        })
                }))
            });
            let item = match next {
                Ok(item) => item,
                Err(e) => Some(Err(e)),
            };
            if !matches!(item, Some(Ok(_))) {
                reader = None;
            }
            item
        }))
    }

    /// A handle on `handle` for one read that reads `pages` ahead (one group of a point read;
    /// none when the offset index could not plan them), checking pages against the file's
    /// checksums.
    fn checked(
        &self,
        handle: &Arc<dyn RangeRead>,
        pages: Option<Vec<Range<u64>>>,
        keep: bool,
    ) -> CheckedFile {
        let file = CheckedFile::new(Arc::clone(handle), self.sums.clone(), self.bytes);
        match pages {
            Some(pages) => file.with_ahead(ReadAhead::new(
                Arc::clone(handle),
                self.sums.clone(),
                vec![pages],
                keep,
            )),
            None => file,
        }
    }

    /// A handle for one read, checking pages against the file's checksums.
    pub(super) fn open_data(&self) -> Result<CheckedFile> {
        Ok(CheckedFile::new(
            self.source.open()?,
            self.sums.clone(),
            self.bytes,
        ))
    }

    pub(super) fn builder(
        &self,
        file: CheckedFile,
    ) -> ParquetRecordBatchReaderBuilder<CheckedFile> {
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.meta.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::{ScanBounds, FORMAT_VERSION_KEY};
    use super::*;
    use crate::error::Error;
    use crate::record::TransactionRecord;
    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use std::fs::File;

    #[test]
    fn cold_storage_write_open_summary_and_get() {
        let dir = tempfile::tempdir().unwrap();
        let (path, summary, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        assert_eq!(file.path(), path);
        assert_eq!(file.summary().unwrap(), summary);
        let ts = recs.iter().map(|r| r.timestamp_decision_made);
        assert_eq!(
            summary,
            FileSummary {
                rows: 10_000,
                min_id: 10,
                max_id: 10 + 3 * 9_999,
                min_ts: ts.clone().min().unwrap(),
                max_ts: ts.max().unwrap(),
                bytes: std::fs::metadata(&path).unwrap().len(),
            }
        );
        assert_eq!(file.meta.metadata().num_row_groups(), 10_000 / GROUP_ROWS);
        assert!(file.memory_size() > 0);

        for r in recs.iter().step_by(37).chain(recs.last()) {
            assert_eq!(file.get(r.id.unwrap()).unwrap().as_ref(), Some(r));
        }
        for absent in [
            i64::MIN,
            -1,
            0,
            9,
            11,
            12,
            14,
            3_000,
            10 + 3 * 9_999 + 1,
            i64::MAX,
        ] {
            assert_eq!(file.get(absent).unwrap(), None, "id {absent}");
        }
    }

    #[test]
    fn cold_storage_get_selects_at_most_two_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        for r in recs.iter().step_by(41) {
            let id = r.id.unwrap();
            let rg = file
                .groups
                .iter()
                .position(|g| overlaps(g.id, id, id))
                .unwrap();
            let rows: usize = file
                .candidate_rows(rg, id)
                .iter()
                .map(ExactSizeIterator::len)
                .sum();
            assert!((1..=2 * PAGE_ROWS).contains(&rows), "id {id}: {rows} rows");
        }
    }

    /// Bytes this thread has read through syscalls so far (Linux per-thread I/O accounting).
    #[cfg(target_os = "linux")]
    fn thread_read_bytes() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cold_storage_get_reads_a_small_fraction_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, summary, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        let id = recs[5_555].id.unwrap();
        let before = thread_read_bytes();
        assert!(file.get(id).unwrap().is_some());
        let hit = thread_read_bytes() - before;
        let before = thread_read_bytes();
        assert!(file.get(id + 1).unwrap().is_none());
        let miss = thread_read_bytes() - before;
        let before = thread_read_bytes();
        assert_eq!(
            scan_all(file.scan(&ScanBounds::default()).unwrap()).len(),
            10_000
        );
        let full = thread_read_bytes() - before;
        // One page (100 rows) per column out of 10k rows; a miss reads only the id page.
        assert!(
            hit * 30 < summary.bytes,
            "hit read {hit} of {} bytes",
            summary.bytes
        );
        assert!(
            miss * 200 < summary.bytes,
            "miss read {miss} of {} bytes",
            summary.bytes
        );
        assert!(full > summary.bytes / 2, "full scan read {full}");
    }

    #[test]
    fn cold_storage_ids_lists_every_id_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        let ids: Vec<i64> = file.ids().unwrap().flat_map(Result::unwrap).collect();
        let want: Vec<i64> = recs.iter().map(|r| r.id.unwrap()).collect();
        assert_eq!(ids, want);
    }

    #[test]
    fn cold_storage_truncated_or_garbage_file_is_a_cold_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, summary, _) = fixture(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("half", bytes[..bytes.len() / 2].to_vec()),
            ("ten", bytes[..10].to_vec()),
            ("empty", Vec::new()),
            ("no-footer", bytes[..bytes.len() - 8].to_vec()),
            (
                "garbage",
                (0..4096u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                    .collect(),
            ),
            ("magic-only", b"PAR1\0\0\0\0PAR1".to_vec()),
        ];
        for (name, content) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            assert!(
                is_cold_file_error(ColdFile::<TransactionRecord>::open(&p)),
                "{name}"
            );
        }
        assert!(is_cold_file_error(ColdFile::<TransactionRecord>::open(
            &dir.path().join("missing.parquet")
        )));
        // A file that vanishes after open fails its reads the same way.
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(is_cold_file_error(file.get(summary.min_id)));
        assert!(is_cold_file_error(file.scan(&ScanBounds::default())));
    }

    #[test]
    fn cold_storage_corrupt_page_is_a_cold_file_error_and_the_rest_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        let md = file.meta.metadata().clone();
        let mint_leaf = md
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == "mint")
            .unwrap();
        // Row 2_150 is in row group 1, page 1 (rows 100..200 of the group).
        let target = &recs[2_150];
        let locations = md
            .page_index_for_row_group(1)
            .page_locations(mint_leaf)
            .unwrap()
            .clone();
        let page = locations
            .iter()
            .rposition(|p| p.first_row_index <= 150)
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for (i, (offset, fill)) in [(0usize, 0xffu8), (40, 0x00)].into_iter().enumerate() {
            // Variant 0 breaks the page header, variant 1 the compressed body.
            let start = locations[page].offset as usize + offset;
            let mut broken = bytes.clone();
            broken[start..start + 24].fill(fill);
            let p = dir.path().join(format!("corrupt-{i}.parquet"));
            std::fs::write(&p, &broken).unwrap();
            let f = ColdFile::<TransactionRecord>::open(&p).unwrap();
            assert!(is_cold_file_error(f.get(target.id.unwrap())), "variant {i}");
            // Other row groups are still served.
            assert_eq!(
                f.get(recs[7_000].id.unwrap()).unwrap().as_ref(),
                Some(&recs[7_000])
            );
            let results: Vec<Result<Vec<TransactionRecord>>> =
                f.scan(&ScanBounds::default()).unwrap().collect();
            assert!(
                matches!(results.last(), Some(Err(Error::ColdFile { .. }))),
                "variant {i}"
            );
        }
    }

    #[test]
    fn cold_storage_wrong_version_or_foreign_schema_is_a_cold_file_error() {
        use crate::record::arrow::{transaction_schema, transaction_to_batch};
        let dir = tempfile::tempdir().unwrap();
        let recs = records(50);
        let write_raw = |name: &str, batch: &RecordBatch, version: Option<&str>| {
            let p = dir.path().join(name);
            let kv =
                version.map(|v| vec![KeyValue::new(FORMAT_VERSION_KEY.to_owned(), v.to_owned())]);
            let props = WriterProperties::builder()
                .set_key_value_metadata(kv)
                .build();
            let mut w =
                ArrowWriter::try_new(File::create(&p).unwrap(), batch.schema(), Some(props))
                    .unwrap();
            w.write(batch).unwrap();
            w.close().unwrap();
            p
        };
        let batch = transaction_to_batch(&recs).unwrap();
        assert_eq!(batch.schema(), transaction_schema());
        let ok = write_raw("ok", &batch, Some(FORMAT_VERSION));
        assert_eq!(
            ColdFile::<TransactionRecord>::open(&ok)
                .unwrap()
                .get(10)
                .unwrap()
                .as_ref(),
            Some(&recs[0])
        );
        for (name, version) in [("v2", Some("2")), ("none", None)] {
            let p = write_raw(name, &batch, version);
            let err = ColdFile::<TransactionRecord>::open(&p).unwrap_err();
            assert!(
                matches!(&err, Error::ColdFile { reason, .. } if reason.contains("format version") || reason.contains(FORMAT_VERSION_KEY)),
                "{err}"
            );
        }
        // Same version, other columns.
        let foreign = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("ts", DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Int64Array::from(vec![5, 6])),
            ],
        )
        .unwrap();
        let p = write_raw("foreign", &foreign, Some(FORMAT_VERSION));
        let err = ColdFile::<TransactionRecord>::open(&p).unwrap_err();
        assert!(
            matches!(&err, Error::ColdFile { reason, .. } if reason.contains("schema")),
            "{err}"
        );
        // One column's type changed.
        let schema = transaction_schema();
        let mut fields: Vec<arrow_schema::FieldRef> = schema.fields().iter().cloned().collect();
        let mut columns = batch.columns().to_vec();
        let slot = schema.index_of("slot").unwrap();
        fields[slot] = Arc::new(Field::new("slot", DataType::Int64, false));
        columns[slot] = Arc::new(Int64Array::from(vec![0; recs.len()]));
        let retyped = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let p = write_raw("retyped", &retyped, Some(FORMAT_VERSION));
        assert!(is_cold_file_error(ColdFile::<TransactionRecord>::open(&p)));
    }

    #[test]
    fn cold_storage_concurrent_gets_do_not_interfere() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (file, recs) = (&file, &recs);
                s.spawn(move || {
                    for r in recs.iter().skip(t).step_by(97) {
                        assert_eq!(file.get(r.id.unwrap()).unwrap().as_ref(), Some(r));
                    }
                });
            }
        });
    }

    /// The fixture in a counting store (`remote`: each call a request), opened with its
    /// checksums; returns the file, the store's request counter and the records.
    fn counted(
        dir: &Path,
        remote: bool,
    ) -> (
        ColdFile<TransactionRecord>,
        Arc<std::sync::atomic::AtomicUsize>,
        Vec<TransactionRecord>,
        Vec<u8>,
    ) {
        let (_, _, recs) = fixture(dir);
        let (store, requests) = CountingStore::create(dir, remote);
        let source = FileRef::published(&store, "date=2024-01-01/a.parquet");
        let sums = ColdFile::<TransactionRecord>::open_at(source.clone(), None)
            .unwrap()
            .compute_sums()
            .unwrap();
        let file = ColdFile::open_at(source, Some(&sums)).unwrap();
        (file, requests, recs, sums)
    }

    fn take(requests: &std::sync::atomic::AtomicUsize) -> usize {
        requests.swap(0, std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn cold_storage_point_read_is_one_request_on_an_object_store() {
        let dir = tempfile::tempdir().unwrap();
        let (file, requests, recs, _) = counted(dir.path(), true);
        take(&requests);
        for r in recs.iter().step_by(53).chain(recs.last()) {
            assert_eq!(file.get(r.id.unwrap()).unwrap().as_ref(), Some(r));
            assert_eq!(take(&requests), 1, "id {:?}", r.id);
        }
        // An id in a row group's range but not in the file: still one request.
        assert_eq!(file.get(recs[100].id.unwrap() + 1).unwrap(), None);
        assert_eq!(take(&requests), 1);
        // Outside every row group: none.
        assert_eq!(file.get(-5).unwrap(), None);
        assert_eq!(take(&requests), 0);
    }

    #[test]
    fn cold_storage_point_read_asks_each_phase_in_one_call_locally() {
        let dir = tempfile::tempdir().unwrap();
        let (file, requests, recs, _) = counted(dir.path(), false);
        take(&requests);
        for r in recs.iter().step_by(97) {
            assert_eq!(file.get(r.id.unwrap()).unwrap().as_ref(), Some(r));
            // The id page(s), then one page of every column.
            assert_eq!(take(&requests), 2);
        }
    }

    #[test]
    fn cold_storage_open_with_a_known_footer_length_is_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let (file, requests, recs, sums) = counted(dir.path(), true);
        let footer_len = file.footer_len().unwrap();
        assert!(footer_len > 12 && footer_len < file.bytes, "{footer_len}");
        let source = file.source.clone();
        take(&requests);
        let reopened =
            ColdFile::<TransactionRecord>::open_with(source.clone(), Some(&sums), Some(footer_len))
                .unwrap();
        assert_eq!(take(&requests), 1);
        assert_eq!(reopened.summary().unwrap(), file.summary().unwrap());
        assert_eq!(
            reopened.get(recs[4321].id.unwrap()).unwrap().as_ref(),
            Some(&recs[4321])
        );
        take(&requests);
        // Without the hint, an object store guesses a tail of 1 MiB (the whole small file);
        // a local store reads the footer's length word, the footer and the page index.
        ColdFile::<TransactionRecord>::open_with(source.clone(), Some(&sums), None).unwrap();
        assert_eq!(take(&requests), 1);
        let (local, local_requests) = CountingStore::create(dir.path(), false);
        let local = FileRef::published(&local, "date=2024-01-01/a.parquet");
        ColdFile::<TransactionRecord>::open_with(local, Some(&sums), None).unwrap();
        assert!(take(&local_requests) > 1);
        // A hint too short for the page index (the footer alone) still opens, with more reads.
        let md_len = {
            let bytes = std::fs::read(dir.path().join("date=2024-01-01/a.parquet")).unwrap();
            let n = bytes.len();
            u64::from(u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap())) + 8
        };
        assert!(md_len < footer_len);
        let f = ColdFile::<TransactionRecord>::open_with(source.clone(), Some(&sums), Some(md_len))
            .unwrap();
        assert_eq!(f.summary().unwrap(), file.summary().unwrap());
        // A damaged tail is still caught by the footer checksum.
        let path = dir.path().join("date=2024-01-01/a.parquet");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 20] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert!(is_cold_file_error(
            ColdFile::<TransactionRecord>::open_with(source, Some(&sums), Some(footer_len))
        ));
    }

    #[test]
    fn cold_storage_scan_reads_one_request_per_row_group_on_an_object_store() {
        let dir = tempfile::tempdir().unwrap();
        let (file, requests, recs, _) = counted(dir.path(), true);
        take(&requests);
        assert_eq!(scan_all(file.scan(&ScanBounds::default()).unwrap()), recs);
        assert_eq!(take(&requests), 10_000 / GROUP_ROWS);
        let bounds = ScanBounds {
            min_id: recs[2_500].id.unwrap(),
            max_id: recs[5_100].id.unwrap(),
            batch_rows: 300,
            ..ScanBounds::default()
        };
        assert_eq!(
            scan_all(file.scan(&bounds).unwrap()),
            recs[2_500..=5_100].to_vec()
        );
        assert_eq!(take(&requests), 2);
        // A projected scan reads only its columns' pages, still one request per group.
        let runs: usize = file
            .scan_batches(&bounds, &[0, 1], &[])
            .unwrap()
            .map(|b| b.unwrap().iter().map(|b| b.num_rows()).sum::<usize>())
            .sum();
        assert_eq!(runs, 2_601);
        assert_eq!(take(&requests), 2);
    }

    #[test]
    fn cold_storage_read_ahead_never_serves_a_damaged_page() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _, recs, sums) = counted(dir.path(), true);
        let md = file.meta.metadata().clone();
        let mint = md
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == "mint")
            .unwrap();
        let locations = md
            .page_index_for_row_group(1)
            .page_locations(mint)
            .unwrap()
            .clone();
        let page = locations
            .iter()
            .rposition(|p| p.first_row_index <= 150)
            .unwrap();
        let path = dir.path().join("date=2024-01-01/a.parquet");
        let mut bytes = std::fs::read(&path).unwrap();
        let at = locations[page].offset as usize + 30;
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let file =
            ColdFile::<TransactionRecord>::open_at(file.source.clone(), Some(&sums)).unwrap();
        // Row 2_150 is in row group 1, page 1 of each 100-row column.
        assert!(is_cold_file_error(file.get(recs[2_150].id.unwrap())));
        assert_eq!(
            file.get(recs[7_000].id.unwrap()).unwrap().as_ref(),
            Some(&recs[7_000])
        );
        let results: Vec<Result<Vec<TransactionRecord>>> =
            file.scan(&ScanBounds::default()).unwrap().collect();
        assert!(matches!(results.last(), Some(Err(Error::ColdFile { .. }))));
    }

    /// A record type on the default (generic) cold layout.
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Fill {
        id: Option<i64>,
        sig: Option<String>,
        at_ms: i64,
        qty: f64,
    }

    impl Record for Fill {
        fn id(&self) -> Option<i64> {
            self.id
        }
        fn set_id(&mut self, id: i64) {
            self.id = Some(id);
        }
        fn signature(&self) -> Option<&str> {
            self.sig.as_deref()
        }
        fn timestamp_ms(&self) -> i64 {
            self.at_ms
        }
    }

    #[test]
    fn cold_storage_generic_layout_round_trips_and_is_not_confused_with_another_type() {
        let dir = tempfile::tempdir().unwrap();
        let fills: Vec<Fill> = (0..3_000)
            .map(|i| Fill {
                id: Some(i * 2),
                sig: (i % 3 != 0).then(|| format!("sig{i}")),
                at_ms: 1_000 + i,
                qty: i as f64 / 3.0,
            })
            .collect();
        let (path, summary) = write(dir.path(), "fills.parquet", &fills, &small_pages());
        assert_eq!((summary.min_ts, summary.max_ts), (1_000, 3_999));
        let file = ColdFile::<Fill>::open(&path).unwrap();
        for f in fills.iter().step_by(29) {
            assert_eq!(file.get(f.id.unwrap()).unwrap().as_ref(), Some(f));
        }
        assert_eq!(file.get(1).unwrap(), None);
        let bounds = ScanBounds {
            min_ts: 1_500,
            max_ts: 1_600,
            ..ScanBounds::default()
        };
        let scan = file.scan(&bounds).unwrap();
        assert_eq!(scan.row_groups_selected(), 1);
        assert_eq!(scan_all(scan), fills[500..=600].to_vec());

        let (tx_path, _, _) = fixture(dir.path());
        assert!(is_cold_file_error(ColdFile::<TransactionRecord>::open(
            &path
        )));
        assert!(is_cold_file_error(ColdFile::<Fill>::open(&tx_path)));
    }
}
