//! Projected reads across all tiers: Arrow batches holding only the asked columns of the cold
//! schema, with the same one-snapshot-per-window rule as [`RecordCursor`](super::RecordCursor).
//!
//! A window of ids is read from ONE warm snapshot: its warm rows (decoded, converted with
//! `R::to_cold_batch`, projected), the live files overlapping it and their tombstones. Cold
//! files are read through a Parquet projection, so only the asked columns (plus `id` and the
//! timestamp, which bound the rows, and the columns the equality filters need) are read and
//! decoded, with the same row-group and page pruning as a record scan. A file's rows above its
//! settled-through id and its tombstoned rows are dropped; a file that vanishes before it is
//! opened makes the window be read again from a fresh snapshot.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema, SchemaRef};

use super::scan::ScanRange;
use crate::blocking::PoolHandle;
use crate::catalog::{CatalogEntry, FileState};
use crate::cold_storage::file::{ColdBatchScan, ScanBounds};
use crate::cold_storage::ColdArchiveStorage;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::warm_storage::WarmSqliteStorage;

/// Windows read again because a file vanished before it was opened, before giving up.
const VANISHED_RETRIES: usize = 16;

/// Ids per window of a scan that does not need small batches (aggregates).
pub(crate) const WIDE_WINDOW: usize = 65_536;

/// The root column indices (in `R::cold_schema()`) of `names`, or [`Error::InvalidQuery`]
/// naming the first unknown one and the valid names.
pub(crate) fn column_indices<R: Record>(names: &[&str]) -> Result<Vec<usize>> {
    let schema = R::cold_schema();
    names
        .iter()
        .map(|name| {
            schema.index_of(name).map_err(|_| Error::InvalidQuery {
                message: format!(
                    "unknown column `{name}`; the columns are: {}",
                    column_names(&schema)
                ),
            })
        })
        .collect()
}

fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The root column and value of each of `range`'s equality filters, or
/// [`Error::InvalidQuery`] for a filter on a column that does not exist or is not text.
pub(crate) fn check_filters<R: Record>(range: &ScanRange) -> Result<Vec<(usize, String)>> {
    let full = R::cold_schema();
    range
        .equals
        .iter()
        .map(|(name, value)| {
            let root = full.index_of(name).map_err(|_| {
                Error::invalid_query(format!(
                    "cannot filter on `{name}`: not a column; the columns are: {}",
                    column_names(&full)
                ))
            })?;
            let ty = full.field(root).data_type();
            if ty != &DataType::Utf8 {
                return Err(Error::invalid_query(format!(
                    "cannot filter on `{name}`: equality filters compare text columns, and it is {ty}"
                )));
            }
            Ok((root, value.clone()))
        })
        .collect()
}

/// A blocking, windowed scan over warm and cold yielding projected Arrow batches. Not a
/// snapshot across windows (as [`RecordCursor`](super::RecordCursor)): each window reads its
/// rows as they are then, each record once.
pub(crate) struct BatchScan<R: Record> {
    warm: WarmSqliteStorage<R>,
    cold: ColdArchiveStorage<R>,
    range: ScanRange,
    /// Ids per window.
    window: i64,
    /// Root columns of `R::cold_schema()` read: ascending, with 0 (id) and 1 (timestamp), the
    /// asked columns and the filtered ones.
    roots: Vec<usize>,
    /// `R::cold_schema()` projected to `roots`: the schema of every batch this scan yields.
    schema: SchemaRef,
    /// `(position in roots, value)` of each equality filter.
    filters: Vec<(usize, String)>,
    /// Every id at or below this has been read; `None` before the first window.
    after: Option<i64>,
    done: bool,
    scanners: HashMap<i64, FileCursor>,
    /// Root columns cold files yield as `Dictionary(Int32, Utf8)` (see
    /// [`read_as_dictionaries`](Self::read_as_dictionaries)).
    dictionary: Vec<usize>,
    /// The schema of cold batches: [`schema`](Self::schema) with the dictionary columns'
    /// types.
    cold_schema: SchemaRef,
}

struct FileCursor {
    /// The file's catalogued path: with the id, what identifies the file.
    path: String,
    scan: ColdBatchScan,
    buffer: VecDeque<RecordBatch>,
}

impl<R: Record> BatchScan<R> {
    /// A scan of `range` reading the root columns `columns` of `R::cold_schema()` (any order;
    /// id, timestamp and filtered columns are added), `window` ids per window.
    ///
    /// [`Error::InvalidQuery`] for a filter on an unknown or non-text column.
    pub(crate) fn new(
        warm: WarmSqliteStorage<R>,
        cold: ColdArchiveStorage<R>,
        range: ScanRange,
        columns: &[usize],
        window: usize,
    ) -> Result<Self> {
        let full = R::cold_schema();
        let mut roots: Vec<usize> = vec![0, 1];
        roots.extend(columns.iter().copied().filter(|&c| c < full.fields().len()));
        let filter_roots = check_filters::<R>(&range)?;
        roots.extend(filter_roots.iter().map(|(root, _)| *root));
        roots.sort_unstable();
        roots.dedup();
        let schema = Arc::new(full.project(&roots).map_err(|e| Error::InvalidQuery {
            message: format!("cannot project the columns: {e}"),
        })?);
        let filters = filter_roots
            .into_iter()
            .map(|(root, value)| (roots.binary_search(&root).expect("added above"), value))
            .collect();
        Ok(Self {
            warm,
            cold,
            range,
            window: i64::try_from(window.max(1)).unwrap_or(i64::MAX),
            roots,
            cold_schema: Arc::clone(&schema),
            schema,
            filters,
            after: None,
            done: false,
            scanners: HashMap::new(),
            dictionary: Vec::new(),
        })
    }

    /// Cold files yield the Utf8 root columns `roots` as `Dictionary(Int32, Utf8)` arrays
    /// (dictionary-encoded pages are not expanded to a string per row); warm rows keep Utf8. For
    /// readers that take either type (aggregates); the batches then differ from
    /// [`schema`](Self::schema) in those columns, so `next_sorted` must not be used.
    pub(crate) fn read_as_dictionaries(mut self, roots: &[usize]) -> Self {
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let fields: Vec<arrow_schema::Field> = self
            .schema
            .fields()
            .iter()
            .zip(&self.roots)
            .map(|(f, root)| {
                let f = f.as_ref().clone();
                if roots.contains(root) && f.data_type() == &DataType::Utf8 {
                    f.with_data_type(dictionary.clone())
                } else {
                    f
                }
            })
            .collect();
        self.cold_schema = Arc::new(Schema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        ));
        self.dictionary = roots.to_vec();
        self
    }

    /// The schema of the batches this scan yields (`R::cold_schema()` projected).
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The position in [`schema`](Self::schema) of root column `root` of `R::cold_schema()`.
    pub(crate) fn position(&self, root: usize) -> Option<usize> {
        self.roots.binary_search(&root).ok()
    }

    /// The warm storage, for the storage handle's pool.
    pub(crate) fn cold(&self) -> &ColdArchiveStorage<R> {
        &self.cold
    }

    /// Whether every window has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Where the scan starts: the range's first id, moved up to the first id that can match
    /// the time range (warm's ts index, and the catalog's time ranges).
    fn start(&self) -> Result<Option<i64>> {
        super::scan::first_id_window_start(&self.warm, &self.cold, &self.range)
    }

    /// Open a projected scan (from id `lo + 1`) for each file of the window that has none.
    /// `false` if a file vanished since the snapshot that listed it.
    fn open_scanners(&mut self, files: &[CatalogEntry], lo: i64) -> Result<bool> {
        for entry in files {
            if entry.state == FileState::Quarantined {
                return Err(Error::cold_file(
                    self.cold.file_path(&entry.path),
                    format!("quarantined; ids above {lo} cannot be scanned completely"),
                ));
            }
            if self.scanners.contains_key(&entry.file_id) {
                continue;
            }
            let bounds = ScanBounds {
                min_id: lo.saturating_add(1).max(self.range.min_id),
                max_id: self.range.max_id,
                min_ts: self.range.min_ts,
                max_ts: self.range.max_ts,
                equals: self.range.equals.clone(),
                batch_rows: usize::try_from(self.window)
                    .unwrap_or(usize::MAX)
                    .clamp(1024, 8192),
            };
            let scan =
                match self
                    .cold
                    .scan_file_batches(entry, &bounds, &self.roots, &self.dictionary)
                {
                    Ok(scan) => scan,
                    Err(e) if crate::cold_storage::is_missing(&e) => {
                        self.cold.forget(&[entry.file_id]);
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                };
            self.scanners.insert(
                entry.file_id,
                FileCursor {
                    path: entry.path.clone(),
                    scan,
                    buffer: VecDeque::new(),
                },
            );
        }
        Ok(true)
    }

    /// The rows of the next window that holds any, as batches of [`schema`](Self::schema):
    /// each batch is in id order, the batches are not ordered among themselves (warm's first),
    /// and together they hold each matching record of the window once. `None` at the end.
    pub(crate) fn next_parts(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        loop {
            match self.next_window()? {
                None => return Ok(None),
                Some(parts) if parts.is_empty() => continue,
                Some(parts) => return Ok(Some(parts)),
            }
        }
    }

    /// One window's matching rows (possibly none); `None` at the end.
    fn next_window(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        if self.after.is_none() && !self.done {
            match self.start()? {
                Some(a) => self.after = Some(a),
                None => self.done = true,
            }
        }
        let mut vanished = 0;
        loop {
            if self.done {
                return Ok(None);
            }
            let lo = self.after.expect("started");
            if lo >= self.range.max_id {
                self.done = true;
                return Ok(None);
            }
            let hi = lo.saturating_add(self.window).min(self.range.max_id);
            let win = self
                .warm
                .scan_window(lo, hi, self.range.min_ts, self.range.max_ts)?;
            let in_view: HashSet<(i64, &str)> = win
                .files
                .iter()
                .map(|e| (e.file_id, e.path.as_str()))
                .collect();
            // Files that left the catalog (compacted away) are done with; their live rows are
            // in the files that replaced them, which are in view.
            self.scanners
                .retain(|f, c| in_view.contains(&(*f, c.path.as_str())));
            // Open every file in view before taking any row of the window: a file unlinked
            // before it is opened makes the window be read again, with nothing consumed yet.
            if !self.open_scanners(&win.files, lo)? {
                vanished += 1;
                if vanished > VANISHED_RETRIES {
                    return Err(Error::cold_file(
                        self.cold.root().to_path_buf(),
                        format!("cold files kept vanishing while ids {lo}..={hi} were scanned"),
                    ));
                }
                continue;
            }
            let mut dead: HashMap<i64, HashSet<i64>> = HashMap::new();
            for (file_id, id) in &win.dead {
                dead.entry(*file_id).or_default().insert(*id);
            }
            let mut parts = Vec::new();
            if !win.warm.is_empty() {
                let batch = R::to_cold_batch(&win.warm)?;
                let batch = batch.project(&self.roots).map_err(|e| Error::Codec {
                    op: "encode",
                    id: None,
                    message: format!("cannot project warm rows: {e}"),
                })?;
                parts.push(conform(&self.schema, batch, "warm rows")?);
            }
            for entry in &win.files {
                let cursor = self.scanners.get_mut(&entry.file_id).expect("opened");
                let file_dead = dead.get(&entry.file_id);
                let path = self.cold.file_path(&entry.path);
                let mut taken = Vec::new();
                'file: loop {
                    while let Some(batch) = cursor.buffer.pop_front() {
                        let ids = crate::cold_storage::file::i64_values(batch.column(0))
                            .ok_or_else(|| Error::cold_file(&path, "id is not an i64 column"))?;
                        let n = ids.partition_point(|&id| id <= hi);
                        if n < batch.num_rows() {
                            cursor
                                .buffer
                                .push_front(batch.slice(n, batch.num_rows() - n));
                        }
                        // Above its settled-through id a file's rows are not served: the
                        // window's warm rows (or their absence) are authoritative there.
                        let served = ids[..n].partition_point(|&id| entry.serves(id));
                        if served > 0 {
                            let part = batch.slice(0, served);
                            let part = match file_dead {
                                Some(d) => drop_dead(&part, d)?,
                                None => part,
                            };
                            if part.num_rows() > 0 {
                                taken.push(part);
                            }
                        }
                        if n < batch.num_rows() {
                            break 'file;
                        }
                    }
                    match cursor.scan.next() {
                        Some(runs) => cursor.buffer.extend(runs?),
                        None => break,
                    }
                }
                for part in taken {
                    parts.push(conform(&self.cold_schema, part, "cold rows")?);
                }
            }
            let mut filtered = Vec::with_capacity(parts.len());
            for part in parts {
                let part = self.apply_filters(part)?;
                if part.num_rows() > 0 {
                    filtered.push(part);
                }
            }
            self.after = Some(hi);
            match win.next {
                None => self.done = true,
                Some(n) if n > hi.saturating_add(1) => self.after = Some(n - 1),
                Some(_) => {}
            }
            if hi >= self.range.max_id {
                self.done = true;
            }
            return Ok(Some(filtered));
        }
    }

    /// The rows of `batch` matching every equality filter.
    fn apply_filters(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.filters.is_empty() {
            return Ok(batch);
        }
        let mut keep = vec![true; batch.num_rows()];
        for (position, value) in &self.filters {
            let column = batch
                .column(*position)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::Codec {
                    op: "decode",
                    id: None,
                    message: format!("filtered column {position} is not a string column"),
                })?;
            for (i, k) in keep.iter_mut().enumerate() {
                *k = *k && column.is_valid(i) && column.value(i) == value;
            }
        }
        filter_rows(&batch, keep)
    }

    /// The rows of the next windows, merged in id order, at most `max_rows` rows (whole windows
    /// are read until that many rows are found; what does not fit waits in `pending`).
    pub(crate) fn next_sorted(
        &mut self,
        pending: &mut Option<RecordBatch>,
        max_rows: usize,
    ) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.max(1);
        let mut parts: Vec<RecordBatch> = pending.take().into_iter().collect();
        let mut rows: usize = parts.iter().map(RecordBatch::num_rows).sum();
        while rows < max_rows {
            match self.next_parts()? {
                Some(window) => {
                    rows += window.iter().map(RecordBatch::num_rows).sum::<usize>();
                    parts.push(sort_window(&self.schema, window)?);
                }
                None => break,
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let all = arrow_select::concat::concat_batches(&self.schema, &parts)
            .map_err(|e| arrow_err("concatenate", e))?;
        if all.num_rows() > max_rows {
            *pending = Some(all.slice(max_rows, all.num_rows() - max_rows));
            return Ok(Some(all.slice(0, max_rows)));
        }
        Ok((all.num_rows() > 0).then_some(all))
    }
}

/// `batch` with `schema` (a cold file's own schema may differ in metadata).
fn conform(schema: &SchemaRef, batch: RecordBatch, what: &str) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec()).map_err(|e| Error::Codec {
        op: "decode",
        id: None,
        message: format!("{what} do not match the cold schema: {e}"),
    })
}

fn arrow_err(op: &str, e: arrow_schema::ArrowError) -> Error {
    Error::Codec {
        op: "decode",
        id: None,
        message: format!("cannot {op} scan batches: {e}"),
    }
}

/// `batch` without the rows whose id is in `dead`.
fn drop_dead(batch: &RecordBatch, dead: &HashSet<i64>) -> Result<RecordBatch> {
    let ids = crate::cold_storage::file::i64_values(batch.column(0)).unwrap_or(&[]);
    if !ids.iter().any(|id| dead.contains(id)) {
        return Ok(batch.clone());
    }
    filter_rows(batch, ids.iter().map(|id| !dead.contains(id)).collect())
}

fn filter_rows(batch: &RecordBatch, keep: Vec<bool>) -> Result<RecordBatch> {
    if keep.iter().all(|&k| k) {
        return Ok(batch.clone());
    }
    let mask = BooleanArray::from(keep);
    arrow_select::filter::filter_record_batch(batch, &mask).map_err(|e| arrow_err("filter", e))
}

/// One window's parts as one batch in id order; should a record appear twice, the first part
/// (warm's) wins.
fn sort_window(schema: &SchemaRef, parts: Vec<RecordBatch>) -> Result<RecordBatch> {
    let all = if parts.len() == 1 {
        parts.into_iter().next().expect("one")
    } else {
        arrow_select::concat::concat_batches(schema, &parts)
            .map_err(|e| arrow_err("concatenate", e))?
    };
    let ids = crate::cold_storage::file::i64_values(all.column(0)).unwrap_or(&[]);
    if ids.windows(2).all(|w| w[0] < w[1]) {
        return Ok(all);
    }
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| ids[i as usize]);
    order.dedup_by_key(|i| ids[*i as usize]);
    let indices = arrow_array::UInt32Array::from(order);
    let columns: Vec<ArrayRef> = all
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| arrow_err("sort", e))?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| arrow_err("sort", e))
}

/// Projected batches of a scan over every tier, in id order, from
/// [`scan_columns`](crate::AutoTieringCoordinator::scan_columns). Holds about one batch in
/// memory; batches are read off the async worker threads.
pub struct BatchCursor {
    state: Option<Box<dyn BatchSource>>,
    /// The batch being read, with the state it reads from; kept across a cancelled
    /// `next_batch`, so the next call takes up the same batch.
    inflight: Option<PoolHandle<BatchRead>>,
    /// Positions, in the read batches, of the asked columns, in the asked order.
    output: Vec<usize>,
    schema: SchemaRef,
    /// Rows still to yield (the range's limit).
    remaining: usize,
}

type BatchRead = (Box<dyn BatchSource>, Result<Option<RecordBatch>>);

/// What a [`BatchCursor`] reads from, erased over the record type.
trait BatchSource: Send {
    fn next(&mut self) -> Result<Option<RecordBatch>>;
    fn start(self: Box<Self>) -> PoolHandle<BatchRead>;
    fn finished(&self) -> bool;
}

struct SortedScan<R: Record> {
    scan: BatchScan<R>,
    pending: Option<RecordBatch>,
    batch_rows: usize,
}

impl<R: Record> BatchSource for SortedScan<R> {
    fn next(&mut self) -> Result<Option<RecordBatch>> {
        self.scan.next_sorted(&mut self.pending, self.batch_rows)
    }

    fn start(mut self: Box<Self>) -> PoolHandle<BatchRead> {
        let cold = self.scan.cold().clone();
        cold.pool().start(move || {
            let batch = self.next();
            (self as Box<dyn BatchSource>, batch)
        })
    }

    fn finished(&self) -> bool {
        self.scan.is_done() && self.pending.is_none()
    }
}

impl std::fmt::Debug for BatchCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCursor")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl BatchCursor {
    /// A cursor over `scan`, yielding at most `batch_rows` rows per batch and `limit` rows in
    /// all, holding the root columns `columns` in that order.
    pub(crate) fn new<R: Record>(
        scan: BatchScan<R>,
        columns: &[usize],
        batch_rows: usize,
        limit: Option<usize>,
    ) -> Self {
        let output: Vec<usize> = columns
            .iter()
            .map(|&c| scan.position(c).expect("asked columns are read"))
            .collect();
        let schema = Arc::new(
            scan.schema()
                .project(&output)
                .expect("positions come from the schema"),
        );
        Self {
            state: Some(Box::new(SortedScan {
                scan,
                pending: None,
                batch_rows: batch_rows.max(1),
            })),
            inflight: None,
            output,
            schema,
            remaining: limit.unwrap_or(usize::MAX),
        }
    }

    /// The schema of the batches: the asked columns of the cold schema, in the asked order.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The next batch (at most the page size's rows, in id order), or `None` at the end.
    /// Cancel-safe: if the future is dropped, the batch it was reading is returned by the next
    /// call.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        if self.inflight.is_none() {
            let Some(state) = self.state.take() else {
                return Err(Error::Closed);
            };
            if state.finished() {
                self.state = Some(state);
                return Ok(None);
            }
            self.inflight = Some(state.start());
        }
        let inflight = self.inflight.as_mut().expect("started above");
        let done = inflight.await;
        self.inflight = None;
        let (state, batch) = done?;
        self.state = Some(state);
        match batch? {
            Some(batch) => {
                let rows = batch.num_rows().min(self.remaining);
                self.remaining -= rows;
                Ok(Some(self.project(&batch.slice(0, rows))?))
            }
            None => Ok(None),
        }
    }

    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .output
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| arrow_err("project", e))
    }
}

impl futures_core::Stream for BatchCursor {
    type Item = Result<RecordBatch>;

    /// The batches of [`next_batch`](BatchCursor::next_batch); an error ends nothing (the next
    /// poll reads on, as `next_batch` would).
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.next_batch();
        let mut next = std::pin::pin!(next);
        next.as_mut().poll(cx).map(Result::transpose)
    }
}
