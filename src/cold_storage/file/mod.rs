//! One immutable cold Parquet file: its writer, its reader and its scans.
//!
//! - `writer.rs` writes a file into a store's staging ([`ColdFileWriter`]);
//! - `reader.rs` opens it ([`ColdFile`]: footer, page index, checksums) and reads records by id;
//! - `scan.rs` streams the records within id and time bounds ([`ColdFileScan`]).
//!
//! Every byte goes through the store's seam ([`super::store`]): a file is read by ranges of
//! the one handle each read opens.
//!
//! Layout rules, shared by every record type:
//! - column 0 is `id` (Int64, not null), column 1 the record's timestamp (Timestamp(ms) or Int64,
//!   not null); rows are sorted by id, strictly ascending;
//! - chunk statistics on every column, page statistics (column index) on `id` and the
//!   timestamp; an offset index on every column, so a lookup reads one page per column;
//! - dictionary encoding only on leaves whose Arrow field carries [`DICTIONARY_HINT_KEY`]: a
//!   dictionary page is read on every point lookup, so unique strings and measurements go plain;
//! - ZSTD only on string/binary leaves that are not dictionary-encoded; integer and timestamp
//!   leaves are delta-encoded, floats and booleans plain. A compressed column costs a lookup
//!   far more than its bytes (see `cold_storage_bench_get_latency`).
//! - footer key-value metadata: [`FORMAT_VERSION_KEY`] and [`RECORD_TYPE_KEY`].
//!
//! Every file-level failure (missing, truncated, corrupt, foreign) is [`Error::ColdFile`] naming
//! the file; no input makes this module panic (the Parquet reader is additionally fenced with
//! `catch_unwind`).
//!
//! [`DICTIONARY_HINT_KEY`]: crate::record::arrow::DICTIONARY_HINT_KEY

mod ahead;
mod reader;
mod scan;
mod writer;

#[cfg(test)]
pub(crate) use super::store::publish_path as publish;
pub(crate) use ahead::ReadAhead;
pub(crate) use reader::ColdFile;
pub(crate) use scan::{ColdBatchScan, ColdFileScan, ScanBounds};
pub(crate) use writer::ColdFileWriter;

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use arrow_array::{Array, Int64Array, TimestampMillisecondArray};
use arrow_schema::{DataType, Schema, TimeUnit};
use parquet::arrow::arrow_reader::RowSelector;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};

/// Version of the file layout this build writes and reads.
pub(crate) const FORMAT_VERSION: &str = "1";
/// Footer key-value metadata key holding [`FORMAT_VERSION`].
pub(crate) const FORMAT_VERSION_KEY: &str = "tiered_storage.format_version";
/// Footer key-value metadata key holding the Rust type name of the records (informational).
pub(crate) const RECORD_TYPE_KEY: &str = "tiered_storage.record_type";

/// How a cold file is written (from `ColdConfig`, whose defaults explain the choices).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WriterOptions {
    /// ZSTD level (1–22) of string and binary columns.
    pub zstd_level: i32,
    /// Rows per row group. Barely matters for lookups by id; bounds a scan's memory.
    pub row_group_rows: usize,
    /// Rows per data page (best effort: checked every `data_page_rows` rows written). Decides
    /// lookup speed: a lookup reads one page per column.
    pub data_page_rows: usize,
    /// Rows per data page of the ZSTD-compressed byte-array columns: a point read decompresses
    /// one whole page of each. At most `data_page_rows`.
    pub string_page_rows: usize,
    /// Top-level columns that get a bloom filter per row group, at this false-positive rate.
    pub bloom_columns: Vec<String>,
    pub bloom_fpp: f64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        use crate::config::{
            DEFAULT_COLD_DATA_PAGE_ROWS, DEFAULT_COLD_ROW_GROUP_ROWS,
            DEFAULT_COLD_STRING_PAGE_ROWS, DEFAULT_COLD_ZSTD_LEVEL,
        };
        Self {
            zstd_level: DEFAULT_COLD_ZSTD_LEVEL,
            row_group_rows: DEFAULT_COLD_ROW_GROUP_ROWS,
            data_page_rows: DEFAULT_COLD_DATA_PAGE_ROWS,
            string_page_rows: DEFAULT_COLD_STRING_PAGE_ROWS,
            bloom_columns: Vec::new(),
            bloom_fpp: 0.01,
        }
    }
}

/// What a finished file holds, as the catalog records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileSummary {
    pub rows: u64,
    pub min_id: i64,
    pub max_id: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// File length in bytes.
    pub bytes: u64,
}

/// Row-group bounds read from the footer's statistics (`None` when a statistic is missing).
#[derive(Debug, Clone, Copy)]
struct GroupBounds {
    rows: usize,
    id: Option<(i64, i64)>,
    ts: Option<(i64, i64)>,
}

fn overlaps(range: Option<(i64, i64)>, lo: i64, hi: i64) -> bool {
    range.is_none_or(|(min, max)| min <= hi && max >= lo)
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Run `f`, turning a panic inside the Parquet reader into [`Error::ColdFile`].
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Error::cold_file(
            path,
            format!("Parquet reader failed: {message}"),
        ))
    })
}

/// Same column names, nullability and types (nested field names and metadata aside).
fn compatible_fields(
    expected: &arrow_schema::Fields,
    found: &arrow_schema::Fields,
) -> Result<(), String> {
    if expected.len() != found.len() {
        return Err(format!(
            "{} columns, expected {}",
            found.len(),
            expected.len()
        ));
    }
    for (i, (e, f)) in expected.iter().zip(found).enumerate() {
        if e.name() != f.name()
            || e.is_nullable() != f.is_nullable()
            || !e.data_type().equals_datatype(f.data_type())
        {
            return Err(format!(
                "column {i} is `{}` {}{}, expected `{}` {}{}",
                f.name(),
                f.data_type(),
                if f.is_nullable() { " (nullable)" } else { "" },
                e.name(),
                e.data_type(),
                if e.is_nullable() { " (nullable)" } else { "" },
            ));
        }
    }
    Ok(())
}

/// Column 0 `id` Int64 not null; column 1 Int64 or Timestamp(ms) not null.
fn check_key_columns(schema: &Schema) -> Result<(), String> {
    let fields = schema.fields();
    match fields.first() {
        Some(f) if f.name() == "id" && f.data_type() == &DataType::Int64 && !f.is_nullable() => {}
        _ => return Err("column 0 must be `id` Int64, not null".into()),
    }
    match fields.get(1) {
        Some(f)
            if !f.is_nullable()
                && matches!(
                    f.data_type(),
                    DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _)
                ) => {}
        _ => return Err("column 1 must be the timestamp: Int64 or Timestamp(ms), not null".into()),
    }
    Ok(())
}

/// The values of an Int64 or Timestamp(ms) array (both are physical INT64).
pub(crate) fn i64_values(array: &dyn Array) -> Option<&[i64]> {
    match array.data_type() {
        DataType::Int64 => Some(array.as_any().downcast_ref::<Int64Array>()?.values()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => Some(
            array
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()?
                .values(),
        ),
        _ => None,
    }
}

/// `(min, max)` of an INT64 leaf's chunk statistics.
fn int64_chunk_bounds(rg: &RowGroupMetaData, leaf: usize) -> Option<(i64, i64)> {
    match rg.columns().get(leaf)?.statistics()? {
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// Whether a Utf8 chunk's statistics prove that no row equals `value`.
fn chunk_excludes(rg: &RowGroupMetaData, leaf: usize, value: &[u8]) -> bool {
    let Some(chunk) = rg.columns().get(leaf) else {
        return false;
    };
    let Some(stats @ Statistics::ByteArray(_)) = chunk.statistics() else {
        return false;
    };
    match (stats.min_bytes_opt(), stats.max_bytes_opt()) {
        // Truncated statistics stay valid bounds: min is a prefix, max is rounded up.
        (Some(min), Some(max)) => value < min || value > max,
        // No min/max: the chunk is all nulls, which equal no string.
        (None, None) => stats
            .null_count_opt()
            .is_some_and(|nulls| nulls as i64 == chunk.num_values()),
        _ => false,
    }
}

/// Row ranges of row group `rg` covered by pages of INT64 leaf `leaf` whose `[min, max]`
/// overlaps `[lo, hi]`, merged and ascending. `None` when the page index cannot answer (missing,
/// or inconsistent with the footer): the caller then reads the whole row group.
fn page_ranges(
    md: &ParquetMetaData,
    rg: usize,
    leaf: usize,
    lo: i64,
    hi: i64,
    rows: usize,
) -> Option<Vec<Range<usize>>> {
    let index = md.page_index_for_row_group(rg);
    let Some(ColumnIndexMetaData::INT64(ci)) = index.column_index(leaf) else {
        return None;
    };
    let locations = index.page_locations(leaf)?;
    if locations.len() as u64 != ci.num_pages() {
        return None;
    }
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, page) in locations.iter().enumerate() {
        let start = usize::try_from(page.first_row_index).ok()?;
        let end = match locations.get(i + 1) {
            Some(next) => usize::try_from(next.first_row_index).ok()?,
            None => rows,
        };
        if start > end || end > rows {
            return None;
        }
        let (Some(&min), Some(&max)) = (ci.min_value(i), ci.max_value(i)) else {
            continue; // all-null page
        };
        if max < lo || min > hi || start == end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => out.push(start..end),
        }
    }
    Some(out)
}

/// The one range covering a whole row group of `rows` rows.
fn whole(rows: usize) -> Vec<Range<usize>> {
    std::iter::once(0..rows).collect()
}

/// Intersection of two ascending, disjoint range lists.
fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Append the selectors of one row group of `rows` rows reading exactly `ranges`.
fn push_selectors(out: &mut Vec<RowSelector>, ranges: &[Range<usize>], rows: usize) {
    let mut pos = 0;
    for r in ranges {
        if r.start > pos {
            out.push(RowSelector::skip(r.start - pos));
        }
        out.push(RowSelector::select(r.len()));
        pos = r.end;
    }
    if rows > pos {
        out.push(RowSelector::skip(rows - pos));
    }
}

/// The row (within the group) at `position` of the concatenation of `ranges`.
fn row_at(ranges: &[Range<usize>], mut position: usize) -> Option<usize> {
    for r in ranges {
        if position < r.len() {
            return Some(r.start + position);
        }
        position -= r.len();
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fixtures shared by the file tests.

    use super::*;
    use crate::cold_storage::store::{ColdStore, Exported, RangeRead, StagedWrite};
    use crate::record::tests::sample;
    use crate::record::{Outcome, Record, TransactionRecord};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    pub(crate) const BASE_TS: i64 = 1_700_000_000_000;
    pub(crate) const PAGE_ROWS: usize = 100;
    pub(crate) const GROUP_ROWS: usize = 2000;

    pub(crate) fn small_pages() -> WriterOptions {
        WriterOptions {
            zstd_level: 3,
            row_group_rows: GROUP_ROWS,
            data_page_rows: PAGE_ROWS,
            string_page_rows: PAGE_ROWS,
            ..WriterOptions::default()
        }
    }

    /// `n` records: ids 10, 13, 16, … (gaps), timestamps rising with a small jitter so they are
    /// not sorted exactly like the ids.
    pub(crate) fn records(n: usize) -> Vec<TransactionRecord> {
        (0..n)
            .map(|i| {
                let mut r = sample(i as u64);
                r.id = Some(10 + 3 * i as i64);
                r.timestamp_decision_made = BASE_TS + 10 * i as i64 + (i as i64 * 7919) % 13;
                if i % 5 == 0 {
                    r.actual_outcome = Outcome::ExecutionError(format!("err {i}"));
                    r.transaction_signature = None;
                }
                r
            })
            .collect()
    }

    /// Write `records` (in uneven chunks) to `dir/date=2024-01-01/<name>` and publish it.
    pub(crate) fn write<R: Record>(
        dir: &Path,
        name: &str,
        records: &[R],
        opts: &WriterOptions,
    ) -> (PathBuf, FileSummary) {
        let tmp = dir.join(format!("{name}.tmp"));
        let path = dir.join("date=2024-01-01").join(name);
        let mut w = ColdFileWriter::<R>::create(&tmp, opts).unwrap();
        for chunk in records.chunks(700) {
            w.append(chunk).unwrap();
        }
        assert_eq!(w.rows(), records.len() as u64);
        assert!(w.estimated_bytes() > 0);
        let summary = w.finish().unwrap();
        publish(&tmp, &path).unwrap();
        assert!(!tmp.exists());
        (path, summary)
    }

    pub(crate) fn fixture(dir: &Path) -> (PathBuf, FileSummary, Vec<TransactionRecord>) {
        let recs = records(10_000);
        let (path, summary) = write(dir, "a.parquet", &recs, &small_pages());
        (path, summary, recs)
    }

    pub(crate) fn is_cold_file_error<T: std::fmt::Debug>(result: Result<T>) -> bool {
        matches!(result, Err(Error::ColdFile { .. }))
    }

    pub(crate) fn scan_all<R: Record>(scan: ColdFileScan<R>) -> Vec<R> {
        scan.flat_map(Result::unwrap).collect()
    }

    /// A local store that counts read requests, and may pass for an object store (each call
    /// a request): the reader's round trips are what the tests count.
    #[derive(Debug)]
    pub(crate) struct CountingStore {
        inner: crate::cold_storage::store::LocalStore,
        remote: bool,
        /// `read` and `read_ranges` calls: one request each on an object store.
        requests: Arc<AtomicUsize>,
    }

    #[derive(Debug)]
    struct CountingRead {
        inner: Arc<dyn RangeRead>,
        requests: Arc<AtomicUsize>,
    }

    impl RangeRead for CountingRead {
        fn len(&self) -> Result<u64> {
            self.inner.len()
        }
        fn read(&self, range: Range<u64>) -> Result<bytes::Bytes> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            self.inner.read(range)
        }
        fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            self.inner.read_ranges(ranges)
        }
    }

    impl CountingStore {
        /// The files under `dir`, as an object store (`remote`) or a local one, and its
        /// request counter.
        pub(crate) fn create(dir: &Path, remote: bool) -> (Arc<dyn ColdStore>, Arc<AtomicUsize>) {
            let requests = Arc::new(AtomicUsize::new(0));
            let store = Arc::new(Self {
                inner: crate::cold_storage::store::LocalStore::new(dir),
                remote,
                requests: Arc::clone(&requests),
            });
            (store, requests)
        }

        fn wrap(&self, inner: Arc<dyn RangeRead>) -> Arc<dyn RangeRead> {
            Arc::new(CountingRead {
                inner,
                requests: Arc::clone(&self.requests),
            })
        }
    }

    impl ColdStore for CountingStore {
        fn root(&self) -> &Path {
            self.inner.root()
        }
        fn stage(&self, key: &str) -> Result<Box<dyn StagedWrite>> {
            self.inner.stage(key)
        }
        fn open_staged(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
            self.inner.open_staged(key)
        }
        fn publish(&self, key: &str) -> Result<()> {
            self.inner.publish(key)
        }
        fn discard_staged(&self, key: &str) -> Result<()> {
            self.inner.discard_staged(key)
        }
        fn clear_staging(&self) -> Result<usize> {
            self.inner.clear_staging()
        }
        fn open(&self, key: &str) -> Result<Arc<dyn RangeRead>> {
            Ok(self.wrap(self.inner.open(key)?))
        }
        fn len(&self, key: &str) -> Result<Option<u64>> {
            self.inner.len(key)
        }
        fn partitions(&self) -> Result<Vec<String>> {
            self.inner.partitions()
        }
        fn list(&self, partition: &str) -> Result<Vec<String>> {
            self.inner.list(partition)
        }
        fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key)
        }
        fn sync(&self, partition: &str) -> Result<()> {
            self.inner.sync(partition)
        }
        fn export(&self, key: &str, to: &Path) -> Result<Exported> {
            self.inner.export(key, to)
        }
        fn is_remote(&self) -> bool {
            self.remote
        }
    }

    #[test]
    fn cold_storage_page_range_helpers() {
        let (a, b) = (whole(10), vec![10..20, 30..40]);
        assert_eq!(
            intersect(&[0..10, 20..30], &[5..25, 28..29]),
            vec![5..10, 20..25, 28..29]
        );
        assert_eq!(intersect(&a, &b), Vec::<Range<usize>>::new());
        assert_eq!(row_at(&[5..10, 20..30], 7), Some(22));
        assert_eq!(row_at(&[5..10, 20..30], 15), None);
        let mut s = Vec::new();
        push_selectors(&mut s, &[5..10, 20..30], 40);
        assert_eq!(
            s,
            vec![
                RowSelector::skip(5),
                RowSelector::select(5),
                RowSelector::skip(10),
                RowSelector::select(10),
                RowSelector::skip(10)
            ]
        );
    }
}
