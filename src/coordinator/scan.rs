//! Scans across all tiers: `list_since` and range scans, merged in id order with no duplicates.
//!
//! A scan walks the id space in windows. Each window reads, from ONE warm database snapshot,
//! the warm rows in the window, the live cold files that overlap it and their tombstones; in one
//! snapshot a record is in warm or live in exactly one file, so a window holds each record once
//! however records move meanwhile. Cold rows come from one streaming scan per file, opened when
//! the file first overlaps a window and kept across windows, so each file is read sequentially
//! once. Memory is about two pages: a window spans one page's worth of ids, and ids are dense.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::RangeInclusive;

use crate::blocking::PoolHandle;
use crate::catalog::FileState;
use crate::cold_storage::file::{ColdFileScan, ScanBounds};
use crate::cold_storage::ColdArchiveStorage;
use crate::error::{Error, Result};
use crate::record::{OutcomeKind, Record, TransactionRecord};
use crate::warm_storage::WarmSqliteStorage;

/// What a scan selects: an id range, a time range (`timestamp_ms()`, Unix ms) and field
/// equality filters. Everything is inclusive; the default selects everything.
///
/// ```
/// use tiered_storage::{OutcomeKind, ScanRange};
/// let range = ScanRange::default()
///     .with_time(1_700_000_000_000..=1_700_086_399_999)
///     .with_outcome(OutcomeKind::Profit)
///     .with_program("6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P");
/// # let _ = range;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRange {
    /// Smallest id.
    pub min_id: i64,
    /// Largest id.
    pub max_id: i64,
    /// Earliest timestamp.
    pub min_ts: i64,
    /// Latest timestamp.
    pub max_ts: i64,
    /// `(field, value)` pairs a record must all match (see [`Record::field`]).
    pub equals: Vec<(String, String)>,
}

impl Default for ScanRange {
    fn default() -> Self {
        Self {
            min_id: i64::MIN,
            max_id: i64::MAX,
            min_ts: i64::MIN,
            max_ts: i64::MAX,
            equals: Vec::new(),
        }
    }
}

impl ScanRange {
    /// Only ids in `ids`.
    pub fn with_ids(mut self, ids: RangeInclusive<i64>) -> Self {
        (self.min_id, self.max_id) = ids.into_inner();
        self
    }

    /// Only timestamps in `ts` (Unix ms).
    pub fn with_time(mut self, ts: RangeInclusive<i64>) -> Self {
        (self.min_ts, self.max_ts) = ts.into_inner();
        self
    }

    /// Only records whose field `name` equals `value`.
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.equals.push((name.into(), value.into()));
        self
    }

    /// Only this outcome kind (the `outcome_kind` field). From text, parse it first:
    /// `"Loss".parse::<OutcomeKind>()?` is [`Error::InvalidQuery`] for a name that is not a
    /// kind, where a raw [`with_field`](Self::with_field) would match nothing.
    pub fn with_outcome(self, kind: OutcomeKind) -> Self {
        self.with_field("outcome_kind", kind.as_str())
    }

    /// Only this token mint.
    pub fn with_mint(self, mint: impl Into<String>) -> Self {
        self.with_field("mint", mint)
    }

    /// Only this launch program.
    pub fn with_program(self, program: impl Into<String>) -> Self {
        self.with_field("program", program)
    }

    /// Every filtered field must be a column of the record type's cold files (so it can be
    /// pushed down) and answered by [`Record::field`], and an `outcome_kind` filter must name
    /// an [`OutcomeKind`]; otherwise [`Error::InvalidQuery`].
    pub(crate) fn validate<R: Record>(&self) -> Result<()> {
        let schema = R::cold_schema();
        for (name, value) in &self.equals {
            if schema.field_with_name(name).is_err() {
                return Err(Error::invalid_query(format!(
                    "cannot filter on `{name}`: it is not a field of this record type"
                )));
            }
            if name == "outcome_kind" {
                value.parse::<OutcomeKind>()?;
            }
        }
        Ok(())
    }

    fn matches<R: Record>(&self, r: &R) -> bool {
        self.equals
            .iter()
            .all(|(name, value)| r.field(name).as_deref() == Some(value.as_str()))
    }
}

/// A paginated scan over every tier, from [`list_since`] or [`scan`]. Holds about one page in
/// memory; pages are read off the async worker threads.
///
/// [`list_since`]: crate::AutoTieringCoordinator::list_since
/// [`scan`]: crate::AutoTieringCoordinator::scan
pub struct RecordCursor<R: Record = TransactionRecord> {
    state: Option<Box<ScanState<R>>>,
    /// The page being read, with the state it reads from. Kept across a cancelled
    /// `next_page`, so the next call takes up the same page and the cursor is never lost.
    inflight: Option<PoolHandle<PageRead<R>>>,
    buffer: VecDeque<R>,
}

/// A page read on a pool thread: the state it read from, and the page.
type PageRead<R> = (Box<ScanState<R>>, Result<Vec<R>>);

struct ScanState<R: Record> {
    warm: WarmSqliteStorage<R>,
    cold: ColdArchiveStorage<R>,
    range: ScanRange,
    page_size: usize,
    /// Every id at or below this has been emitted; `None` before the first page.
    after: Option<i64>,
    done: bool,
    scanners: HashMap<i64, FileCursor<R>>,
    /// Matching rows read past the last page's end (at most one window's worth).
    pending: VecDeque<R>,
}

/// Windows read again because a file vanished before it was opened, before giving up.
const VANISHED_RETRIES: usize = 16;

struct FileCursor<R: Record> {
    /// The file's catalogued path: with the id, what identifies the file.
    path: String,
    scan: ColdFileScan<R>,
    buffer: VecDeque<R>,
}

impl<R: Record> RecordCursor<R> {
    pub(crate) fn new(
        warm: WarmSqliteStorage<R>,
        cold: ColdArchiveStorage<R>,
        range: ScanRange,
        page_size: usize,
    ) -> Self {
        Self {
            state: Some(Box::new(ScanState {
                warm,
                cold,
                range,
                page_size: page_size.max(1),
                after: None,
                done: false,
                scanners: HashMap::new(),
                pending: VecDeque::new(),
            })),
            inflight: None,
            buffer: VecDeque::new(),
        }
    }

    /// The next page, or `None` at the end. Cancel-safe: if the future is dropped, the page
    /// it was reading is returned by the next call.
    pub async fn next_page(&mut self) -> Result<Option<Vec<R>>> {
        if !self.buffer.is_empty() {
            return Ok(Some(self.buffer.drain(..).collect()));
        }
        if self.inflight.is_none() {
            let Some(mut state) = self.state.take() else {
                return Err(Error::Closed);
            };
            if state.done && state.pending.is_empty() {
                self.state = Some(state);
                return Ok(None);
            }
            let cold = state.cold.clone();
            self.inflight = Some(cold.pool().start(move || {
                let page = state.next_page();
                (state, page)
            }));
        }
        let inflight = self.inflight.as_mut().expect("started above");
        let done = inflight.await;
        self.inflight = None;
        let (state, page) = done?;
        self.state = Some(state);
        let page = page?;
        Ok((!page.is_empty()).then_some(page))
    }

    /// The next record, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<R>> {
        if self.buffer.is_empty() {
            match self.next_page().await? {
                Some(page) => self.buffer.extend(page),
                None => return Ok(None),
            }
        }
        Ok(self.buffer.pop_front())
    }
}

impl<R: Record> ScanState<R> {
    /// Where the scan starts: the range's first id, moved up to the first id that can match
    /// the time range (warm's ts index, and the catalog's time ranges).
    fn start(&self) -> Result<Option<i64>> {
        let r = &self.range;
        if r.min_ts == i64::MIN {
            return Ok(Some(r.min_id.saturating_sub(1)));
        }
        let warm_first = self.warm.first_id_since(r.min_ts)?;
        let cold_first = self
            .cold
            .files()?
            .iter()
            .filter(|e| e.max_ts >= r.min_ts && e.min_ts <= r.max_ts)
            .map(|e| e.min_id)
            .min();
        Ok(match (warm_first, cold_first) {
            (None, None) => None,
            (a, b) => Some(
                a.unwrap_or(i64::MAX)
                    .min(b.unwrap_or(i64::MAX))
                    .max(r.min_id)
                    .saturating_sub(1),
            ),
        })
    }

    /// At most `page_size` records: whole windows are read until a page is full, and what
    /// overflows waits in `pending` for the next page.
    /// Open a scan (from id `lo + 1`) for each file of the window that has none. `false` if a
    /// file vanished since the snapshot that listed it.
    fn open_scanners(&mut self, files: &[crate::catalog::CatalogEntry], lo: i64) -> Result<bool> {
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
                batch_rows: self.page_size.clamp(256, 8192),
            };
            let scan = match self.cold.scan_file(entry, &bounds) {
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

    fn next_page(&mut self) -> Result<Vec<R>> {
        if self.after.is_none() {
            match self.start()? {
                Some(a) => self.after = Some(a),
                None => {
                    self.done = true;
                    return Ok(Vec::new());
                }
            }
        }
        let window = (self.page_size as i64).max(64);
        let mut vanished = 0;
        while self.pending.len() < self.page_size && !self.done {
            let lo = self.after.expect("started");
            if lo >= self.range.max_id {
                self.done = true;
                break;
            }
            let hi = lo.saturating_add(window).min(self.range.max_id);
            let win = self
                .warm
                .scan_window(lo, hi, self.range.min_ts, self.range.max_ts)?;
            let in_view: HashSet<(i64, &str)> = win
                .files
                .iter()
                .map(|e| (e.file_id, e.path.as_str()))
                .collect();
            // Files that left the catalog (compacted away) are done with; their rows, if
            // still live, are in the files that replaced them, which are in view.
            self.scanners
                .retain(|f, c| in_view.contains(&(*f, c.path.as_str())));
            // Open a scan for every file in view before taking any row from this window: a file
            // in the snapshot may be unlinked (compaction) before it is opened, and then the
            // window is read again from a fresh snapshot, with nothing consumed yet. An open
            // scan keeps its file handle, so a later unlink does not affect it.
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
            let dead: HashSet<(i64, i64)> = win.dead.iter().copied().collect();
            let mut rows = win.warm;
            for entry in &win.files {
                let cursor = self.scanners.get_mut(&entry.file_id).expect("opened");
                loop {
                    while let Some(r) = cursor.buffer.front() {
                        let id = r.id().expect("cold rows carry their id");
                        if id > hi {
                            break;
                        }
                        let r = cursor.buffer.pop_front().expect("front");
                        // Above its settled-through id a file's rows are not served: the
                        // window's warm rows (or their absence) are authoritative there.
                        if entry.serves(id) && !dead.contains(&(entry.file_id, id)) {
                            rows.push(r);
                        }
                    }
                    if !cursor.buffer.is_empty() {
                        break;
                    }
                    match cursor.scan.next() {
                        Some(batch) => cursor.buffer.extend(batch?),
                        None => break,
                    }
                }
            }
            // One snapshot holds each record once; the stable sort keeps warm first should a
            // copy ever appear twice, and dedup keeps that one.
            rows.sort_by_key(|r| r.id());
            rows.dedup_by_key(|r| r.id());
            let range = &self.range;
            self.pending
                .extend(rows.into_iter().filter(|r| range.matches(r)));
            self.after = Some(hi);
            match win.next {
                None => self.done = true,
                Some(n) if n > hi.saturating_add(1) => self.after = Some(n - 1),
                Some(_) => {}
            }
        }
        let n = self.pending.len().min(self.page_size);
        Ok(self.pending.drain(..n).collect())
    }
}
