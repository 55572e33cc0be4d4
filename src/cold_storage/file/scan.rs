//! Scanning one cold file: the records within id and time bounds, in id order, a batch at a
//! time, reading only the row groups and pages that can match.

use std::marker::PhantomData;
use std::ops::Range;
use std::path::PathBuf;

use arrow_array::RecordBatch;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;

use super::ahead::{group_pages, ReadAhead};
use super::{
    chunk_excludes, guard, i64_values, intersect, overlaps, page_ranges, push_selectors, whole,
    ColdFile,
};
use crate::error::{Error, Result};
use crate::record::Record;

/// Rows per batch of a [`ScanBounds::default`] scan.
pub(crate) const DEFAULT_SCAN_BATCH_ROWS: usize = 8192;

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

impl<R: Record> ColdFile<R> {
    /// Records within `filter`'s id and timestamp bounds, in ascending id order, one batch at a
    /// time. Row groups (and, through the page index, pages of `id` and the timestamp) that
    /// cannot match are never read.
    pub fn scan(&self, filter: &ScanBounds) -> Result<ColdFileScan<R>> {
        let (reader, row_groups_selected) = self.pruned_reader(filter, None, None)?;
        Ok(ColdFileScan {
            reader,
            path: self.path.clone(),
            bounds: (filter.min_id, filter.max_id, filter.min_ts, filter.max_ts),
            row_groups_selected,
            done: false,
            _record: PhantomData,
        })
    }

    /// Like [`scan`](Self::scan), with the same row-group and page pruning, but reading and
    /// decoding only the top-level columns `roots` (indices into the file's schema, ascending,
    /// and holding 0 and 1: id and timestamp bound the rows). Yields Arrow batches of those
    /// columns, in schema order, holding only rows within the id and time bounds.
    ///
    /// Root columns in `dictionary` that are Utf8 are read as `Dictionary(Int32, Utf8)`: a
    /// dictionary-encoded column's pages are then not expanded into one string per row.
    pub fn scan_batches(
        &self,
        filter: &ScanBounds,
        roots: &[usize],
        dictionary: &[usize],
    ) -> Result<ColdBatchScan> {
        let fields = self.meta.schema().fields().len();
        if roots.len() < 2
            || roots[0] != 0
            || roots[1] != 1
            || roots.windows(2).any(|w| w[0] >= w[1])
            || roots.last().is_some_and(|&r| r >= fields)
        {
            return Err(Error::cold_file(
                &self.path,
                format!("bad projection {roots:?} of {fields} columns"),
            ));
        }
        let mask = ProjectionMask::roots(self.meta.parquet_schema(), roots.iter().copied());
        let meta = self.dictionary_meta(dictionary)?;
        let (reader, row_groups_selected) = self.pruned_reader(filter, Some(mask), meta)?;
        Ok(ColdBatchScan {
            reader,
            path: self.path.clone(),
            bounds: (filter.min_id, filter.max_id, filter.min_ts, filter.max_ts),
            row_groups_selected,
            done: false,
        })
    }

    /// A reader of the row groups and pages of this file that can hold rows within `filter`
    /// (`None` when none can), and how many row groups it reads.
    fn pruned_reader(
        &self,
        filter: &ScanBounds,
        projection: Option<ProjectionMask>,
        meta: Option<ArrowReaderMetadata>,
    ) -> Result<(Option<ParquetRecordBatchReader>, usize)> {
        let md = self.meta.metadata();
        let equals = self.equality_leaves(&filter.equals);
        let mut row_groups = Vec::new();
        let mut planned = Vec::new();
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
            planned.push(ranges);
        }
        let row_groups_selected = row_groups.len();
        if row_groups.is_empty() {
            return Ok((None, 0));
        }
        let mut file = self.open_data()?;
        if self.source.is_remote() {
            // Each read is a request: read each row group's pages in one, the next group
            // while this one is decoded.
            let groups: Option<Vec<Vec<Range<u64>>>> = row_groups
                .iter()
                .zip(&planned)
                .map(|(&rg, rows)| group_pages(md, rg, projection.as_ref(), rows))
                .collect();
            if let Some(groups) = groups {
                let ahead = ReadAhead::new(
                    Arc::clone(file.handle()),
                    file.sums().cloned(),
                    groups,
                    false,
                );
                file = file.with_ahead(ahead);
            }
        }
        let builder = match meta {
            Some(meta) => ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta),
            None => self.builder(file),
        };
        let mut builder = builder
            .with_row_groups(row_groups)
            .with_batch_size(filter.batch_rows.max(1));
        if let Some(mask) = projection {
            builder = builder.with_projection(mask);
        }
        if partial {
            builder = builder.with_row_selection(RowSelection::from(selectors));
        }
        let reader = builder
            .build()
            .map_err(|e| Error::cold_file(&self.path, format!("cannot start scan: {e}")))?;
        Ok((Some(reader), row_groups_selected))
    }

    /// The file's reader metadata with the Utf8 root columns of `dictionary` typed
    /// `Dictionary(Int32, Utf8)`; `None` when there are none (the cached metadata is used).
    fn dictionary_meta(&self, dictionary: &[usize]) -> Result<Option<ArrowReaderMetadata>> {
        let schema = self.meta.schema();
        let as_dictionary =
            |i: usize| dictionary.contains(&i) && schema.field(i).data_type() == &DataType::Utf8;
        if !(0..schema.fields().len()).any(as_dictionary) {
            return Ok(None);
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let f = f.as_ref().clone();
                if as_dictionary(i) {
                    let ty =
                        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                    f.with_data_type(ty)
                } else {
                    f
                }
            })
            .collect();
        let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let options = ArrowReaderOptions::new().with_schema(hinted);
        ArrowReaderMetadata::try_new(self.meta.metadata().clone(), options)
            .map(Some)
            .map_err(|e| {
                Error::cold_file(
                    &self.path,
                    format!("cannot read columns as dictionaries: {e}"),
                )
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

/// Arrow batches of a [`ColdFile::scan_batches`]: the projected columns of the rows within the
/// bounds, in ascending id order; empty batches are skipped. A batch is a zero-copy slice of
/// what the Parquet reader decoded (one per run of in-bounds rows).
pub(crate) struct ColdBatchScan {
    reader: Option<ParquetRecordBatchReader>,
    path: PathBuf,
    /// `(min_id, max_id, min_ts, max_ts)`, inclusive.
    bounds: (i64, i64, i64, i64),
    row_groups_selected: usize,
    done: bool,
}

impl std::fmt::Debug for ColdBatchScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdBatchScan")
            .field("path", &self.path)
            .field("bounds", &self.bounds)
            .field("row_groups_selected", &self.row_groups_selected)
            .field("done", &self.done)
            .finish()
    }
}

impl ColdBatchScan {
    /// How many row groups survived pruning and are read.
    #[allow(dead_code)] // part of the file API; used by tests so far
    pub fn row_groups_selected(&self) -> usize {
        self.row_groups_selected
    }

    /// The rows of `batch` within the bounds, as slices. Sets `done` once ids pass `max_id`.
    fn filter(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let (min_id, max_id, min_ts, max_ts) = self.bounds;
        let bad = |what: &str| Error::cold_file(&self.path, format!("{what} is not an i64 column"));
        let ids = i64_values(batch.column(0)).ok_or_else(|| bad("column 0"))?;
        let ts = i64_values(batch.column(1)).ok_or_else(|| bad("column 1"))?;
        if ids.last().is_some_and(|&last| last >= max_id) {
            self.done = true;
        }
        let mut start = None;
        for i in 0..=ids.len() {
            let keep = i < ids.len()
                && (min_id..=max_id).contains(&ids[i])
                && (min_ts..=max_ts).contains(&ts[i]);
            match (keep, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    out.push(if s == 0 && i == ids.len() {
                        batch.clone()
                    } else {
                        batch.slice(s, i - s)
                    });
                    start = None;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Iterator for ColdBatchScan {
    type Item = Result<Vec<RecordBatch>>;

    /// The in-bounds runs of the next decoded batch that has any.
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
            let mut runs = Vec::new();
            match self.filter(batch, &mut runs) {
                Ok(()) if runs.is_empty() => continue,
                Ok(()) => return Some(Ok(runs)),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;
    use crate::record::TransactionRecord;

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
    fn cold_storage_scan_batches_decode_only_the_projected_columns() {
        use arrow_array::{Array, Float64Array, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let (path, _, recs) = fixture(dir.path());
        let file = ColdFile::<TransactionRecord>::open(&path).unwrap();
        let schema = TransactionRecord::cold_schema();
        let kind = schema.index_of("outcome_kind").unwrap();
        let value = schema.index_of("outcome_value").unwrap();
        let bounds = ScanBounds {
            min_id: recs[2_100].id.unwrap(),
            max_id: recs[5_600].id.unwrap(),
            min_ts: recs[2_500].timestamp_decision_made,
            max_ts: i64::MAX,
            equals: Vec::new(),
            batch_rows: 300,
        };
        let scan = file
            .scan_batches(&bounds, &[0, 1, kind, value], &[])
            .unwrap();
        // The same row groups as a record scan of the same bounds.
        assert_eq!(
            scan.row_groups_selected(),
            file.scan(&bounds).unwrap().row_groups_selected()
        );
        let mut got = Vec::new();
        for runs in scan {
            for batch in runs.unwrap() {
                assert_eq!(batch.num_columns(), 4);
                let names: Vec<&str> = batch
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                assert_eq!(
                    names,
                    [
                        "id",
                        "timestamp_decision_made",
                        "outcome_kind",
                        "outcome_value"
                    ]
                );
                let ids = i64_values(batch.column(0)).unwrap();
                let kinds = batch
                    .column(2)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                let values = batch
                    .column(3)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap();
                for (i, &id) in ids.iter().enumerate() {
                    got.push((
                        id,
                        kinds.value(i).to_owned(),
                        values.is_valid(i).then(|| values.value(i)),
                    ));
                }
            }
        }
        let want: Vec<(i64, String, Option<f64>)> = scan_all(file.scan(&bounds).unwrap())
            .iter()
            .map(|r| {
                let v = match r.actual_outcome {
                    crate::record::Outcome::Profit(v) | crate::record::Outcome::Loss(v) => Some(v),
                    _ => None,
                };
                (r.id.unwrap(), r.actual_outcome.kind().to_owned(), v)
            })
            .collect();
        assert!(want.len() > 1000);
        assert_eq!(got, want);
        // Read as a dictionary, the kinds are the same values, without a string per row.
        let mut dict_kinds = Vec::new();
        for runs in file
            .scan_batches(&bounds, &[0, 1, kind, value], &[kind])
            .unwrap()
        {
            for batch in runs.unwrap() {
                let dict = batch
                    .column(2)
                    .as_any()
                    .downcast_ref::<arrow_array::DictionaryArray<arrow_array::types::Int32Type>>()
                    .expect("outcome_kind read as a dictionary");
                let names = dict
                    .values()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                assert!(names.len() <= crate::record::Outcome::KINDS.len());
                for key in dict.keys().iter() {
                    dict_kinds.push(names.value(key.unwrap() as usize).to_owned());
                }
            }
        }
        let kinds: Vec<String> = want.iter().map(|w| w.1.clone()).collect();
        assert_eq!(dict_kinds, kinds);
        // A projection must lead with id and the timestamp, ascending, within the schema.
        for bad in [&[0, 2][..], &[0, 1, 5, 3], &[0, 1, 99], &[1, 2]] {
            assert!(
                is_cold_file_error(file.scan_batches(&bounds, bad, &[])),
                "{bad:?}"
            );
        }
    }
}
