//! Writing one cold file: Arrow batches encoded to Parquet in a store's staging, fsynced and
//! summarised; the caller publishes it.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{
    check_key_columns, compatible_fields, i64_values, FileSummary, WriterOptions, FORMAT_VERSION,
    FORMAT_VERSION_KEY, RECORD_TYPE_KEY,
};
use crate::cold_storage::store::StagedWrite;
use crate::error::{Error, Result};
use crate::record::arrow::DICTIONARY_HINT_KEY;
use crate::record::Record;

/// Writes one cold file into a staged file (see [`StagedWrite`]). Rows must arrive in strictly
/// ascending id order across all [`append`](Self::append) calls. [`finish`](Self::finish)
/// closes and fsyncs it; the store's `publish` then makes it visible.
pub(crate) struct ColdFileWriter<R> {
    writer: ArrowWriter<Box<dyn StagedWrite>>,
    /// The staged file, for messages.
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
    /// Create the local file `tmp_path` (which must not exist) and start a file of
    /// `R::cold_schema()` in it.
    #[cfg(test)]
    pub fn create(tmp_path: &Path, opts: &WriterOptions) -> Result<Self> {
        Self::create_with(opts, tmp_path.to_owned(), || {
            crate::cold_storage::store::create_file(tmp_path)
        })
    }

    /// Start a file of `R::cold_schema()` in the staged file `stage` creates (called once the
    /// options are known to be good, so bad options create nothing); `path` names it in
    /// messages.
    pub fn create_with(
        opts: &WriterOptions,
        path: PathBuf,
        stage: impl FnOnce() -> Result<Box<dyn StagedWrite>>,
    ) -> Result<Self> {
        let tmp_path = path.as_path();
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
        let file = stage()?;
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

    /// Write the footer, fsync the file and return its summary. The file stays staged: the
    /// store's `publish` makes it visible. An empty writer is refused (the temp file is left for the
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
        let bytes = self.writer.inner_mut().sync()?;
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
    if opts.string_page_rows == 0 {
        return Err(Error::config("cold.string_page_rows", "must be at least 1"));
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
        // Page row limits are only checked between write batches.
        .set_write_batch_size(opts.data_page_rows.min(opts.string_page_rows))
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
    for name in &opts.bloom_columns {
        let mut found = false;
        for i in 0..descr.num_columns() {
            let path = descr.column(i).path().clone();
            if path.parts().first() == Some(name) {
                found = true;
                builder = builder
                    .set_column_bloom_filter_enabled(path.clone(), true)
                    .set_column_bloom_filter_fpp(path.clone(), opts.bloom_fpp)
                    .set_column_bloom_filter_max_ndv(path, opts.row_group_rows as u64);
            }
        }
        if !found {
            return Err(Error::config(
                "cold.bloom_filter_columns",
                format!("{} has no column {name:?}", std::any::type_name::<R>()),
            ));
        }
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
            // Strings and blobs: the only leaves where ZSTD pays (base58 alone saves ~25%). A
            // point read decompresses a whole page of each, so their pages are short.
            builder = builder.set_column_data_page_row_count_limit(path, opts.string_page_rows);
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

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::{ColdFile, ScanBounds};
    use super::*;
    use crate::record::tests::sample;
    use crate::record::{Outcome, TransactionRecord};

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

    /// `bloom_columns` gives each row group a bloom filter on that column, which outside
    /// readers can find and which holds every value; the file still checks and reads as ours.
    #[test]
    fn cold_storage_bloom_filter_on_the_signature_column() {
        use parquet::file::properties::ReaderProperties;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let dir = tempfile::tempdir().unwrap();
        let recs = records(3_000);
        let opts = WriterOptions {
            bloom_columns: vec!["transaction_signature".into()],
            ..small_pages()
        };
        let (path, _) = write(dir.path(), "bloom.parquet", &recs, &opts);
        let reader = SerializedFileReader::new_with_options(
            std::fs::File::open(&path).unwrap(),
            ReadOptionsBuilder::new()
                .with_reader_properties(
                    ReaderProperties::builder()
                        .set_read_bloom_filter(true)
                        .build(),
                )
                .build(),
        )
        .unwrap();
        let md = reader.metadata();
        let leaf = md
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == "transaction_signature")
            .unwrap();
        let mut next = 0;
        for g in 0..md.num_row_groups() {
            let rows = md.row_group(g).num_rows() as usize;
            let rg = reader.get_row_group(g).unwrap();
            let bloom = rg.get_column_bloom_filter(leaf).expect("a bloom filter");
            for sig in recs[next..next + rows]
                .iter()
                .filter_map(|r| r.transaction_signature.as_deref())
            {
                assert!(bloom.check(&sig));
            }
            next += rows;
            assert!(
                rg.get_column_bloom_filter(0).is_none(),
                "only the named column"
            );
        }
        let sums = ColdFile::<TransactionRecord>::open(&path)
            .unwrap()
            .compute_sums()
            .unwrap();
        let file = ColdFile::<TransactionRecord>::open_at(
            crate::cold_storage::store::FileRef::local(&path),
            Some(&sums),
        )
        .unwrap();
        file.check_pages().unwrap();
        assert_eq!(
            file.get(recs[1_234].id.unwrap()).unwrap().as_ref(),
            Some(&recs[1_234])
        );

        let bad = WriterOptions {
            bloom_columns: vec!["no_such_column".into()],
            ..small_pages()
        };
        let tmp = dir.path().join("bad.tmp");
        let err = ColdFileWriter::<TransactionRecord>::create(&tmp, &bad).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(!tmp.exists());
    }
}
