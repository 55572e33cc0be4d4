//! One immutable cold Parquet file: its writer (temp path → fsync → publish) and its reader.
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

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{
    KeyValue, PageIndexPolicy, ParquetMetaData, RowGroupMetaData, SortingColumn,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;

use super::checksum::{self, CheckedFile, PageSums};
use crate::error::{Error, Result};
use crate::record::arrow::DICTIONARY_HINT_KEY;
use crate::record::Record;

/// Version of the file layout this build writes and reads.
pub(crate) const FORMAT_VERSION: &str = "1";
/// Footer key-value metadata key holding [`FORMAT_VERSION`].
pub(crate) const FORMAT_VERSION_KEY: &str = "tiered_storage.format_version";
/// Footer key-value metadata key holding the Rust type name of the records (informational).
pub(crate) const RECORD_TYPE_KEY: &str = "tiered_storage.record_type";

/// Heap bytes counted per Arrow field of an open file's schema (name, type, metadata, `Arc`).
const SCHEMA_FIELD_BYTES: usize = 160;
/// Rows per batch of [`ColdFile::ids`].
const IDS_BATCH_ROWS: usize = 8192;
/// Rows per batch of a [`ScanBounds::default`] scan.
pub(crate) const DEFAULT_SCAN_BATCH_ROWS: usize = 8192;

/// How a cold file is written (from `ColdConfig`, whose defaults explain the choices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriterOptions {
    /// ZSTD level (1–22) of string and binary columns.
    pub zstd_level: i32,
    /// Rows per row group. Barely matters for lookups by id; bounds a scan's memory.
    pub row_group_rows: usize,
    /// Rows per data page (best effort: checked every `data_page_rows` rows written). Decides
    /// lookup speed: a lookup reads one page per column.
    pub data_page_rows: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        use crate::config::{
            DEFAULT_COLD_DATA_PAGE_ROWS, DEFAULT_COLD_ROW_GROUP_ROWS, DEFAULT_COLD_ZSTD_LEVEL,
        };
        Self {
            zstd_level: DEFAULT_COLD_ZSTD_LEVEL,
            row_group_rows: DEFAULT_COLD_ROW_GROUP_ROWS,
            data_page_rows: DEFAULT_COLD_DATA_PAGE_ROWS,
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

// ---------------------------------------------------------------------------------------------
// Writing

/// Writes one cold file at a temporary path. Rows must arrive in strictly ascending id order
/// across all [`append`](Self::append) calls. [`finish`](Self::finish) closes and fsyncs it;
/// [`publish`] then moves it into place.
pub(crate) struct ColdFileWriter<R> {
    writer: ArrowWriter<File>,
    path: PathBuf,
    schema: arrow_schema::SchemaRef,
    rows: u64,
    /// `(min_id, max_id, min_ts, max_ts)` of the rows appended so far.
    bounds: Option<(i64, i64, i64, i64)>,
    /// Set when a write failed part-way: the file's content is then unknown.
    poisoned: bool,
    _record: PhantomData<fn(&R)>,
}

impl<R> std::fmt::Debug for ColdFileWriter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdFileWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl<R: Record> ColdFileWriter<R> {
    /// Create `tmp_path` (which must not exist) and start a file of `R::cold_schema()`.
    pub fn create(tmp_path: &Path, opts: &WriterOptions) -> Result<Self> {
        let schema = R::cold_schema();
        check_key_columns(&schema).map_err(|reason| Error::Codec {
            op: "encode",
            id: None,
            message: format!(
                "cold schema of {} is unusable: {reason}",
                std::any::type_name::<R>()
            ),
        })?;
        let props = writer_properties::<R>(&schema, opts)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp_path)
            .map_err(|source| Error::Io {
                op: "create",
                path: tmp_path.to_owned(),
                source,
            })?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| Error::cold_file(tmp_path, format!("cannot start Parquet writer: {e}")))?;
        Ok(Self {
            writer,
            path: tmp_path.to_owned(),
            schema,
            rows: 0,
            bounds: None,
            poisoned: false,
            _record: PhantomData,
        })
    }

    /// Append records. Ids must be set and strictly ascending, also relative to earlier calls;
    /// otherwise nothing is appended and the error says why.
    pub fn append(&mut self, records: &[R]) -> Result<()> {
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut last = self.bounds.map(|b| b.1);
        let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
        for r in records {
            let id = r.id().ok_or_else(|| Error::Codec {
                op: "encode",
                id: None,
                message: "record has no id: only stored records go to the cold tier".into(),
            })?;
            if let Some(prev) = last {
                if id <= prev {
                    return Err(Error::invalid(format!(
                        "cold file {}: id {id} after id {prev}; ids must be strictly ascending",
                        self.path.display()
                    )));
                }
            }
            last = Some(id);
            min_ts = min_ts.min(r.timestamp_ms());
            max_ts = max_ts.max(r.timestamp_ms());
        }
        let batch = R::to_cold_batch(records)?;
        self.check_batch(&batch, records)?;

        if let Err(e) = self.writer.write(&batch) {
            self.poisoned = true;
            return Err(write_error(&self.path, "write", e));
        }
        let first = records[0].id().unwrap_or_default();
        let last = last.unwrap_or_default();
        self.bounds = Some(match self.bounds {
            None => (first, last, min_ts, max_ts),
            Some((lo, _, lo_ts, hi_ts)) => (lo, last, lo_ts.min(min_ts), hi_ts.max(max_ts)),
        });
        self.rows += records.len() as u64;
        Ok(())
    }

    /// The Arrow writer trusts the batch's layout (a mismatch can panic inside it), so check
    /// the batch against the file schema and the records it came from.
    fn check_batch(&self, batch: &RecordBatch, records: &[R]) -> Result<()> {
        let bad = |message: String| Error::Codec {
            op: "encode",
            id: None,
            message: format!(
                "{}::to_cold_batch does not match its cold_schema: {message}",
                std::any::type_name::<R>()
            ),
        };
        if batch.num_rows() != records.len() {
            return Err(bad(format!(
                "{} rows for {} records",
                batch.num_rows(),
                records.len()
            )));
        }
        if let Err(reason) = compatible_fields(self.schema.fields(), batch.schema().fields()) {
            return Err(bad(reason));
        }
        let ids = i64_values(batch.column(0)).ok_or_else(|| bad("column 0 is not Int64".into()))?;
        if ids.iter().zip(records).any(|(&id, r)| r.id() != Some(id)) {
            return Err(bad("column 0 differs from the records' ids".into()));
        }
        Ok(())
    }

    fn poisoned_error(&self) -> Error {
        Error::cold_file(&self.path, "an earlier write failed; discard this file")
    }

    /// Rows appended so far.
    #[allow(dead_code)] // part of the file API; used by tests so far
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes written plus the estimated encoded size of the open row group.
    pub fn estimated_bytes(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// Write the footer, fsync the file and return its summary. The file stays at its temporary
    /// path: [`publish`] moves it. An empty writer is refused (the temp file is left for the
    /// caller to remove).
    pub fn finish(mut self) -> Result<FileSummary> {
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        let Some((min_id, max_id, min_ts, max_ts)) = self.bounds else {
            return Err(Error::invalid(format!(
                "cold file {}: no records appended; an empty cold file is never written",
                self.path.display()
            )));
        };
        self.writer
            .finish()
            .map_err(|e| write_error(&self.path, "write footer", e))?;
        let file = self.writer.inner();
        let io = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { op, path, source }
        };
        file.sync_all().map_err(io("fsync", &self.path))?;
        let bytes = file.metadata().map_err(io("stat", &self.path))?.len();
        Ok(FileSummary {
            rows: self.rows,
            min_id,
            max_id,
            min_ts,
            max_ts,
            bytes,
        })
    }
}

/// Writer properties for files of `R` (see the module doc).
fn writer_properties<R: Record>(schema: &Schema, opts: &WriterOptions) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(opts.zstd_level)
        .map_err(|e| Error::config("cold.zstd_level", format!("{e}; accepted: 1 to 22")))?;
    if opts.row_group_rows == 0 {
        return Err(Error::config("cold.row_group_rows", "must be at least 1"));
    }
    if opts.data_page_rows == 0 {
        return Err(Error::config("cold.data_page_rows", "must be at least 1"));
    }
    let descr = ArrowSchemaConverter::new()
        .convert(schema)
        .map_err(|e| Error::Codec {
            op: "encode",
            id: None,
            message: format!(
                "cold schema of {} cannot be stored as Parquet: {e}",
                std::any::type_name::<R>()
            ),
        })?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_data_page_row_count_limit(opts.data_page_rows)
        // The page row limit is only checked between write batches.
        .set_write_batch_size(opts.data_page_rows)
        .set_max_row_group_row_count(Some(opts.row_group_rows))
        .set_offset_index_disabled(false)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(FORMAT_VERSION_KEY.to_owned(), FORMAT_VERSION.to_owned()),
            KeyValue::new(
                RECORD_TYPE_KEY.to_owned(),
                std::any::type_name::<R>().to_owned(),
            ),
        ]));
    // Columns 0 and 1 are top-level primitives, so they are leaves 0 and 1.
    for leaf in [0, 1] {
        builder = builder.set_column_statistics_enabled(
            descr.column(leaf).path().clone(),
            EnabledStatistics::Page,
        );
    }
    let leaves = leaf_plans(schema);
    if leaves.len() != descr.num_columns() {
        tracing::warn!(
            record_type = std::any::type_name::<R>(),
            "cold schema leaves do not map 1:1 to Parquet columns; per-column choices skipped"
        );
        return Ok(builder.build());
    }
    for (i, leaf) in leaves.iter().enumerate() {
        let path = descr.column(i).path().clone();
        if leaf.dictionary {
            // Dictionary pages are small and data pages are run-length indices: nothing left
            // for ZSTD to gain.
            builder = builder
                .set_column_dictionary_enabled(path.clone(), true)
                .set_column_compression(path, Compression::UNCOMPRESSED);
        } else if is_byte_array(&leaf.data_type) {
            // Strings and blobs: the only leaves where ZSTD pays (base58 alone saves ~25%).
        } else if is_integer_like(&leaf.data_type) {
            // Ids, timestamps, slots: deltas are small, so delta encoding alone is compact.
            builder = builder
                .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED)
                .set_column_compression(path, Compression::UNCOMPRESSED);
        } else {
            // Floats and booleans: ZSTD gains little on measurements.
            builder = builder.set_column_compression(path, Compression::UNCOMPRESSED);
        }
    }
    Ok(builder.build())
}

/// What the writer needs to know about one Parquet leaf column.
struct LeafPlan {
    /// The leaf's Arrow field, or an ancestor, carries [`DICTIONARY_HINT_KEY`] = `"true"`.
    dictionary: bool,
    /// The leaf's Arrow type.
    data_type: DataType,
}

/// One [`LeafPlan`] per Parquet leaf column, in schema order (depth first, as Parquet lays
/// nested Arrow types out).
fn leaf_plans(schema: &Schema) -> Vec<LeafPlan> {
    fn walk(field: &Field, inherited: bool, out: &mut Vec<LeafPlan>) {
        let on = inherited
            || field
                .metadata()
                .get(DICTIONARY_HINT_KEY)
                .is_some_and(|v| v == "true");
        match field.data_type() {
            DataType::Struct(children) => children.iter().for_each(|c| walk(c, on, out)),
            DataType::Map(entries, _) => walk(entries, on, out),
            DataType::List(child)
            | DataType::LargeList(child)
            | DataType::FixedSizeList(child, _)
            | DataType::ListView(child)
            | DataType::LargeListView(child) => walk(child, on, out),
            other => out.push(LeafPlan {
                dictionary: on,
                data_type: other.clone(),
            }),
        }
    }
    let mut out = Vec::new();
    for field in schema.fields() {
        walk(field, false, &mut out);
    }
    out
}

fn is_byte_array(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

fn is_integer_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Duration(_)
    )
}

/// Move a finished file from `tmp_path` to `final_path`: create missing parent directories
/// (fsyncing the directory each was created in), rename, fsync the parent. Refuses to replace
/// an existing file: cold files are immutable.
pub(crate) fn publish(tmp_path: &Path, final_path: &Path) -> Result<()> {
    let parent = parent_dir(final_path);
    let mut missing = Vec::new();
    let mut dir = parent;
    while !dir.as_os_str().is_empty() && !dir.exists() {
        missing.push(dir.to_owned());
        dir = parent_dir(dir);
    }
    if !missing.is_empty() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            op: "create directory",
            path: parent.to_owned(),
            source,
        })?;
        // Top-down: each new directory's entry lives in its parent.
        for created in missing.iter().rev() {
            fsync_dir(parent_dir(created))?;
        }
    }
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

/// Make a directory's entries (new files, renames) durable.
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

// ---------------------------------------------------------------------------------------------
// Reading

/// Inclusive bounds of a [`ColdFile::scan`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScanBounds {
    pub min_id: i64,
    pub max_id: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// `(column, value)` pairs used only to prune row groups by their statistics (for Utf8
    /// columns that exist); rows are not filtered by them here.
    pub equals: Vec<(String, String)>,
    /// Rows per Parquet read batch (a yielded batch holds at most this many records).
    pub batch_rows: usize,
}

impl Default for ScanBounds {
    /// Everything, in batches of [`DEFAULT_SCAN_BATCH_ROWS`].
    fn default() -> Self {
        Self {
            min_id: i64::MIN,
            max_id: i64::MAX,
            min_ts: i64::MIN,
            max_ts: i64::MAX,
            equals: Vec::new(),
            batch_rows: DEFAULT_SCAN_BATCH_ROWS,
        }
    }
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

/// One opened cold file. Holds the parsed footer with its page index (no file handle: each read
/// opens its own, so concurrent reads never share a file offset). Cheap to share behind an `Arc`.
pub(crate) struct ColdFile<R> {
    path: PathBuf,
    meta: ArrowReaderMetadata,
    /// Page checksums from the catalog; `None` for a file catalogued without them.
    sums: Option<Arc<PageSums>>,
    groups: Vec<GroupBounds>,
    /// Projection of column 0 alone.
    id_mask: ProjectionMask,
    bytes: u64,
    _record: PhantomData<fn() -> R>,
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
    /// Read and check the footer and page index: format version, schema against
    /// `R::cold_schema()`, id order across row groups. Any failure is [`Error::ColdFile`].
    /// Pages are read unchecked: for files with no checksums, and for computing them.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_checked(path, None)
    }

    /// [`open`](Self::open), then check the footer against `sums` (a checksum blob from the
    /// catalog) and check every page read from then on.
    pub fn open_checked(path: &Path, sums: Option<&[u8]>) -> Result<Self> {
        let bad = |reason: String| Error::cold_file(path, reason);
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        let bytes = file
            .metadata()
            .map_err(|e| bad(format!("cannot stat: {e}")))?
            .len();
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
            Some(blob) => Some(Arc::new(PageSums::load(&file, &md, blob).map_err(bad)?)),
            None => None,
        };
        Ok(Self {
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
        let file = File::open(&self.path).map_err(|e| open_error(&self.path, e))?;
        sums.check_all(&file)
            .map_err(|reason| Error::cold_file(&self.path, reason))
    }

    /// The checksum blob of this file's pages and footer, for its catalog row (reads the
    /// whole file).
    pub fn compute_sums(&self) -> Result<Vec<u8>> {
        checksum::compute(&self.path, self.meta.metadata())
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
        let file = self.open_data()?;
        let read_err = |e: &dyn std::fmt::Display| {
            Error::cold_file(&self.path, format!("cannot read row group {rg}: {e}"))
        };

        // Phase 1: the id column of the candidate pages only.
        let mut selectors = Vec::with_capacity(2 * ranges.len() + 1);
        push_selectors(&mut selectors, &ranges, rows);
        let reader = self
            .builder(file.try_clone().map_err(|e| read_err(&e))?)
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

    /// Records within `filter`'s id and timestamp bounds, in ascending id order, one batch at a
    /// time. Row groups (and, through the page index, pages of `id` and the timestamp) that
    /// cannot match are never read.
    pub fn scan(&self, filter: &ScanBounds) -> Result<ColdFileScan<R>> {
        let md = self.meta.metadata();
        let equals = self.equality_leaves(&filter.equals);
        let mut row_groups = Vec::new();
        let mut selectors = Vec::new();
        let mut partial = false;
        let empty = filter.min_id > filter.max_id || filter.min_ts > filter.max_ts;
        for (rg, g) in self.groups.iter().enumerate() {
            if empty
                || !overlaps(g.id, filter.min_id, filter.max_id)
                || !overlaps(g.ts, filter.min_ts, filter.max_ts)
                || equals
                    .iter()
                    .any(|(leaf, value)| chunk_excludes(md.row_group(rg), *leaf, value))
            {
                continue;
            }
            let by_id = page_ranges(md, rg, 0, filter.min_id, filter.max_id, g.rows);
            let by_ts = page_ranges(md, rg, 1, filter.min_ts, filter.max_ts, g.rows);
            let ranges = match (by_id, by_ts) {
                (Some(a), Some(b)) => intersect(&a, &b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => whole(g.rows),
            };
            if ranges.is_empty() {
                continue;
            }
            partial |= ranges.len() != 1 || ranges[0] != (0..g.rows);
            push_selectors(&mut selectors, &ranges, g.rows);
            row_groups.push(rg);
        }
        let row_groups_selected = row_groups.len();
        let reader = if row_groups.is_empty() {
            None
        } else {
            let file = self.open_data()?;
            let mut builder = self
                .builder(file)
                .with_row_groups(row_groups)
                .with_batch_size(filter.batch_rows.max(1));
            if partial {
                builder = builder.with_row_selection(RowSelection::from(selectors));
            }
            Some(
                builder
                    .build()
                    .map_err(|e| Error::cold_file(&self.path, format!("cannot start scan: {e}")))?,
            )
        };
        Ok(ColdFileScan {
            reader,
            path: self.path.clone(),
            bounds: (filter.min_id, filter.max_id, filter.min_ts, filter.max_ts),
            row_groups_selected,
            done: false,
            _record: PhantomData,
        })
    }

    /// Parquet leaf index and value of each `equals` pair naming a top-level Utf8 column.
    fn equality_leaves<'a>(&self, equals: &'a [(String, String)]) -> Vec<(usize, &'a [u8])> {
        let schema = self.meta.schema();
        let leaves = self.meta.parquet_schema().columns();
        equals
            .iter()
            .filter(|(name, _)| {
                schema
                    .field_with_name(name)
                    .is_ok_and(|f| f.data_type() == &DataType::Utf8)
            })
            .filter_map(|(name, value)| {
                let leaf = leaves.iter().position(|c| {
                    let parts = c.path().parts();
                    parts.len() == 1 && parts[0] == *name
                })?;
                Some((leaf, value.as_bytes()))
            })
            .collect()
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

    fn open_data(&self) -> Result<CheckedFile> {
        File::open(&self.path)
            .map(|f| CheckedFile::new(f, self.sums.clone()))
            .map_err(|e| open_error(&self.path, e))
    }

    fn builder(&self, file: CheckedFile) -> ParquetRecordBatchReaderBuilder<CheckedFile> {
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.meta.clone())
    }
}

/// Batches of a [`ColdFile::scan`], in ascending id order; empty batches are skipped.
pub(crate) struct ColdFileScan<R> {
    reader: Option<ParquetRecordBatchReader>,
    path: PathBuf,
    /// `(min_id, max_id, min_ts, max_ts)`, inclusive.
    bounds: (i64, i64, i64, i64),
    row_groups_selected: usize,
    done: bool,
    _record: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ColdFileScan<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdFileScan")
            .field("path", &self.path)
            .field("bounds", &self.bounds)
            .field("row_groups_selected", &self.row_groups_selected)
            .field("done", &self.done)
            .finish()
    }
}

impl<R: Record> ColdFileScan<R> {
    /// How many row groups survived pruning and are read.
    #[allow(dead_code)] // part of the file API; used by tests so far
    pub fn row_groups_selected(&self) -> usize {
        self.row_groups_selected
    }

    /// The records of `batch` within the bounds. Sets `done` once ids pass `max_id`.
    fn filter(&mut self, batch: &RecordBatch) -> Result<Vec<R>> {
        let (min_id, max_id, min_ts, max_ts) = self.bounds;
        let bad = |what: &str| Error::cold_file(&self.path, format!("{what} is not an i64 column"));
        let ids = i64_values(batch.column(0)).ok_or_else(|| bad("column 0"))?;
        let ts = i64_values(batch.column(1)).ok_or_else(|| bad("column 1"))?;
        if ids.last().is_some_and(|&last| last >= max_id) {
            self.done = true;
        }
        let keep =
            |i: usize| (min_id..=max_id).contains(&ids[i]) && (min_ts..=max_ts).contains(&ts[i]);
        let mut runs: Vec<Range<usize>> = Vec::new();
        for i in (0..ids.len()).filter(|&i| keep(i)) {
            match runs.last_mut() {
                Some(run) if run.end == i => run.end = i + 1,
                _ => runs.push(i..i + 1),
            }
        }
        match runs.as_slice() {
            [] => Ok(Vec::new()),
            [run] if run.len() == batch.num_rows() => R::from_cold_batch(batch),
            _ => {
                let mut out = Vec::with_capacity(runs.iter().map(ExactSizeIterator::len).sum());
                for run in runs {
                    out.extend(R::from_cold_batch(&batch.slice(run.start, run.len()))?);
                }
                Ok(out)
            }
        }
    }
}

impl<R: Record> Iterator for ColdFileScan<R> {
    type Item = Result<Vec<R>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let path = self.path.clone();
            let reader = self.reader.as_mut()?;
            let batch = match guard(&path, || Ok(reader.next())) {
                Ok(Some(Ok(batch))) => batch,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    return Some(Err(Error::cold_file(&path, format!("scan failed: {e}"))));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            match self.filter(&batch) {
                Ok(records) if records.is_empty() => continue,
                Ok(records) => return Some(Ok(records)),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A failure to open a cold file. A missing file is a problem of the file ([`Error::ColdFile`]);
/// any other failure (EIO, EMFILE, ENOMEM, EACCES, or ENOENT for a file that is there) is the
/// system's, typed [`Error::Io`], and never gets a sound file quarantined.
pub(crate) fn open_error(path: &Path, e: std::io::Error) -> Error {
    // "Not found" for a path that exists is the system failing (an injected fault, a racing
    // rename), not a missing file.
    if e.kind() == std::io::ErrorKind::NotFound && !path.exists() {
        Error::cold_file(path, format!("cannot open: {e}"))
    } else {
        Error::Io {
            op: "open cold file",
            path: path.to_owned(),
            source: e,
        }
    }
}

/// A failure while writing a cold file: the operating system's (a full disk, EIO) keeps its
/// `io::Error`, so callers can tell `StorageFull` apart; anything else is the encoder's.
fn write_error(path: &Path, what: &'static str, e: parquet::errors::ParquetError) -> Error {
    if let parquet::errors::ParquetError::External(inner) = &e {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Error::Io {
                op: what,
                path: path.to_owned(),
                source: std::io::Error::new(io.kind(), io.to_string()),
            };
        }
    }
    Error::cold_file(path, format!("cannot {what}: {e}"))
}

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
fn i64_values(array: &dyn Array) -> Option<&[i64]> {
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
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::record::{Outcome, TransactionRecord};
    use std::sync::Arc;

    const BASE_TS: i64 = 1_700_000_000_000;
    const PAGE_ROWS: usize = 100;
    const GROUP_ROWS: usize = 2000;

    fn small_pages() -> WriterOptions {
        WriterOptions {
            zstd_level: 3,
            row_group_rows: GROUP_ROWS,
            data_page_rows: PAGE_ROWS,
        }
    }

    /// `n` records: ids 10, 13, 16, … (gaps), timestamps rising with a small jitter so they are
    /// not sorted exactly like the ids.
    fn records(n: usize) -> Vec<TransactionRecord> {
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
    fn write<R: Record>(
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

    fn fixture(dir: &Path) -> (PathBuf, FileSummary, Vec<TransactionRecord>) {
        let recs = records(10_000);
        let (path, summary) = write(dir, "a.parquet", &recs, &small_pages());
        (path, summary, recs)
    }

    fn is_cold_file_error<T: std::fmt::Debug>(result: Result<T>) -> bool {
        matches!(result, Err(Error::ColdFile { .. }))
    }

    fn scan_all<R: Record>(scan: ColdFileScan<R>) -> Vec<R> {
        scan.flat_map(Result::unwrap).collect()
    }

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
    fn cold_storage_scan_returns_exactly_the_bounded_rows_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        let id = |i: usize| recs[i].id.unwrap();
        let ts = |i: usize| recs[i].timestamp_decision_made;
        let cases = [
            // (bounds, expected row groups read)
            ((id(2_100), id(3_500), i64::MIN, i64::MAX), 1),
            ((id(1_999), id(2_000), i64::MIN, i64::MAX), 2),
            ((i64::MIN, i64::MAX, ts(4_100), ts(4_180)), 1),
            ((id(500), id(9_000), ts(3_000), ts(7_000)), 3),
            ((id(500) + 1, id(500) + 1, i64::MIN, i64::MAX), 1),
            ((i64::MIN, i64::MAX, i64::MIN, i64::MAX), 5),
            ((id(9_999) + 1, i64::MAX, i64::MIN, i64::MAX), 0),
            ((5, 1, i64::MIN, i64::MAX), 0),
        ];
        for ((min_id, max_id, min_ts, max_ts), groups) in cases {
            let bounds = ScanBounds {
                min_id,
                max_id,
                min_ts,
                max_ts,
                equals: Vec::new(),
                batch_rows: 97,
            };
            let scan = file.scan(&bounds).unwrap();
            assert_eq!(scan.row_groups_selected(), groups, "{bounds:?}");
            let batches: Vec<Vec<TransactionRecord>> = scan.map(Result::unwrap).collect();
            assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 97));
            let got: Vec<TransactionRecord> = batches.into_iter().flatten().collect();
            let want: Vec<TransactionRecord> = recs
                .iter()
                .filter(|r| {
                    (min_id..=max_id).contains(&r.id.unwrap())
                        && (min_ts..=max_ts).contains(&r.timestamp_decision_made)
                })
                .cloned()
                .collect();
            assert_eq!(got.len(), want.len(), "{bounds:?}");
            assert!(got == want, "{bounds:?}");
        }
    }

    #[test]
    fn cold_storage_scan_prunes_row_groups_by_equality_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        let with = |equals: Vec<(&str, &str)>| ScanBounds {
            equals: equals
                .into_iter()
                .map(|(c, v)| (c.to_owned(), v.to_owned()))
                .collect(),
            ..ScanBounds::default()
        };
        let mint = recs[6_001].scored_candidate.base.mint.clone();
        let scan = file.scan(&with(vec![("mint", &mint)])).unwrap();
        assert_eq!(scan.row_groups_selected(), 1);
        // Rows are not filtered by `equals`: the caller does that.
        let rows = scan_all(scan);
        assert_eq!(rows.len(), GROUP_ROWS);
        assert!(rows.iter().any(|r| r.scored_candidate.base.mint == mint));

        assert_eq!(
            file.scan(&with(vec![("mint", "zzz")]))
                .unwrap()
                .row_groups_selected(),
            0
        );
        assert_eq!(
            file.scan(&with(vec![("mint", &mint), ("program", "x")]))
                .unwrap()
                .row_groups_selected(),
            0
        );
        // Unknown and non-Utf8 columns do not prune.
        assert_eq!(
            file.scan(&with(vec![("nope", "1")]))
                .unwrap()
                .row_groups_selected(),
            5
        );
        assert_eq!(
            file.scan(&with(vec![("slot", "1")]))
                .unwrap()
                .row_groups_selected(),
            5
        );
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
    fn cold_storage_append_refuses_unordered_or_missing_ids_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("w.tmp");
        let recs = records(10);
        let mut w = ColdFileWriter::<TransactionRecord>::create(&tmp, &small_pages()).unwrap();
        w.append(&recs[..4]).unwrap();
        let unordered = [
            vec![recs[3].clone(), recs[4].clone()], // repeats the last id
            vec![recs[2].clone()],                  // goes back
            vec![recs[5].clone(), recs[5].clone()], // duplicate within a call
            vec![recs[6].clone(), recs[5].clone()], // descending within a call
        ];
        for bad in unordered {
            let err = w.append(&bad).unwrap_err();
            assert!(matches!(err, Error::InvalidRecord { .. }), "{err}");
            assert_eq!(w.rows(), 4);
        }
        let mut no_id = recs[7].clone();
        no_id.id = None;
        let err = w.append(&[recs[6].clone(), no_id]).unwrap_err();
        assert!(matches!(err, Error::Codec { op: "encode", .. }), "{err}");
        assert_eq!(w.rows(), 4);
        w.append(&recs[4..]).unwrap();
        let summary = w.finish().unwrap();
        assert_eq!((summary.rows, summary.min_id, summary.max_id), (10, 10, 37));
        let file = ColdFile::<TransactionRecord>::open(&tmp).unwrap();
        assert_eq!(scan_all(file.scan(&ScanBounds::default()).unwrap()), recs);
    }

    #[test]
    fn cold_storage_writer_refuses_bad_options_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("w.tmp");
        for opts in [
            WriterOptions {
                zstd_level: 99,
                ..WriterOptions::default()
            },
            WriterOptions {
                row_group_rows: 0,
                ..WriterOptions::default()
            },
            WriterOptions {
                data_page_rows: 0,
                ..WriterOptions::default()
            },
        ] {
            let err = ColdFileWriter::<TransactionRecord>::create(&tmp, &opts).unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{err}");
            assert!(!tmp.exists());
        }
        let w =
            ColdFileWriter::<TransactionRecord>::create(&tmp, &WriterOptions::default()).unwrap();
        // The temp path must be new.
        let err = ColdFileWriter::<TransactionRecord>::create(&tmp, &WriterOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::Io { op: "create", .. }), "{err}");
        let err = w.finish().unwrap_err();
        assert!(matches!(err, Error::InvalidRecord { .. }), "{err}");
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
    fn cold_storage_layout_dictionaries_statistics_and_footer() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        let md = file.meta.metadata();
        let kv = md.file_metadata().key_value_metadata().unwrap();
        let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
        assert_eq!(get(FORMAT_VERSION_KEY).as_deref(), Some(FORMAT_VERSION));
        assert_eq!(
            get(RECORD_TYPE_KEY).as_deref(),
            Some(std::any::type_name::<TransactionRecord>())
        );
        let leaves: Vec<String> = md
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.path().string())
            .collect();
        let dictionary = [
            "program",
            "instruction_summary",
            "reason",
            "outcome_kind",
            "feature_scores.entries.key",
            "market_context_snapshot.entries.key",
        ];
        for (rg, group) in md.row_groups().iter().enumerate() {
            assert_eq!(group.sorting_columns().unwrap()[0].column_idx, 0);
            let index = md.page_index_for_row_group(rg);
            for (leaf, name) in leaves.iter().enumerate() {
                let chunk = group.column(leaf);
                let dict = chunk.dictionary_page_offset().is_some();
                assert_eq!(
                    dict,
                    dictionary.contains(&name.as_str()),
                    "{name}: dictionary"
                );
                assert!(chunk.statistics().is_some(), "{name}: chunk statistics");
                // ZSTD only where it pays: strings that are not dictionary-encoded.
                let zstd = [
                    "transaction_signature",
                    "mint",
                    "creator",
                    "outcome_message",
                ];
                assert_eq!(
                    matches!(chunk.compression(), Compression::ZSTD(_)),
                    zstd.contains(&name.as_str()),
                    "{name}: compression"
                );
                let delta = chunk
                    .encodings()
                    .any(|e| e == Encoding::DELTA_BINARY_PACKED);
                let integer = ["id", "slot", "calculation_time_us", "predicted_score"]
                    .contains(&name.as_str())
                    || name.contains("timestamp");
                assert_eq!(delta, integer, "{name}: delta encoding");
                // Offset index everywhere (a lookup reads one page per column); page
                // statistics only on id and timestamp.
                assert!(index.page_locations(leaf).is_some(), "{name}: offset index");
                assert_eq!(
                    index.column_index(leaf).is_some(),
                    leaf < 2,
                    "{name}: column index"
                );
            }
            let pages = index.page_locations(0).unwrap().len();
            assert!(pages >= GROUP_ROWS / PAGE_ROWS, "{pages} id pages");
        }
        assert!(leaves.iter().any(|l| l == "transaction_signature"));
    }

    #[test]
    fn cold_storage_round_trips_extreme_values_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let outcomes = [
            Outcome::Profit(f64::NAN),
            Outcome::Loss(f64::NEG_INFINITY),
            Outcome::Neutral,
            Outcome::PendingConfirmation,
            Outcome::FailedExecution,
            Outcome::NotExecuted,
            Outcome::ConfirmationTimeout,
            Outcome::ExecutionError(String::new()),
            Outcome::VerificationFailed("é ✓".into()),
        ];
        let recs: Vec<TransactionRecord> = outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| {
                let mut r = sample(i as u64);
                r.id = Some(
                    [
                        i64::MIN,
                        -7,
                        0,
                        1,
                        2,
                        1 << 40,
                        (1 << 62) + 1,
                        i64::MAX - 1,
                        i64::MAX,
                    ][i],
                );
                r.actual_outcome = outcome;
                r.timestamp_decision_made =
                    [i64::MAX, i64::MIN, 0, -1, 5, i64::MIN, 3, i64::MAX, 9][i];
                r.scored_candidate.base.slot =
                    [u64::MAX, 0, u64::MAX, 1, u64::MAX / 2, 0, 7, u64::MAX, 0][i];
                r.scored_candidate.calculation_time_us = u64::MAX - i as u64;
                r.scored_candidate.predicted_score = [0, 255, 1, 254, 100, 0, 255, 3, 4][i];
                r.timestamp_outcome_evaluated = (i % 2 == 0).then_some(i64::MIN + i as i64);
                r.sell_price_sol = [
                    Some(f64::NAN),
                    None,
                    Some(-0.0),
                    Some(f64::INFINITY),
                    None,
                    Some(f64::MIN_POSITIVE),
                    Some(f64::MAX),
                    None,
                    Some(-f64::NAN),
                ][i];
                if i % 3 == 0 {
                    r.scored_candidate.feature_scores.clear();
                    r.market_context_snapshot.insert("nan".into(), f64::NAN);
                    r.transaction_signature = None;
                    r.scored_candidate.base.instruction_summary = None;
                    r.scored_candidate.base.is_jito_bundle = None;
                }
                r
            })
            .collect();
        let (path, summary) = write(dir.path(), "x.parquet", &recs, &small_pages());
        assert_eq!((summary.min_id, summary.max_id), (i64::MIN, i64::MAX));
        assert_eq!((summary.min_ts, summary.max_ts), (i64::MIN, i64::MAX));
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        assert_eq!(file.summary().unwrap(), summary);
        let encoded = |r: &TransactionRecord| {
            let mut buf = Vec::new();
            r.encode(&mut buf).unwrap();
            buf
        };
        for r in &recs {
            let got = file.get(r.id.unwrap()).unwrap().unwrap();
            assert_eq!(encoded(&got), encoded(r), "{r:?}");
        }
        let all = scan_all(file.scan(&ScanBounds::default()).unwrap());
        assert_eq!(
            all.iter().map(encoded).collect::<Vec<_>>(),
            recs.iter().map(encoded).collect::<Vec<_>>()
        );
        assert_eq!(file.get(-6).unwrap(), None);
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

    #[test]
    fn cold_storage_publish_creates_directories_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("x.tmp");
        std::fs::write(&tmp, b"x").unwrap();
        let target = dir.path().join("cold/date=2024-02-03/x.parquet");
        publish(&tmp, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        std::fs::write(&tmp, b"y").unwrap();
        let err = publish(&tmp, &target).unwrap_err();
        assert!(matches!(err, Error::ColdFile { .. }), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        let err = publish(
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
