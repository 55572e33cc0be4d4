//! Scans across all tiers: `list_since` and range scans, merged in id order or in time order
//! (`(timestamp_ms, id)`, either direction) with no duplicates, optionally limited.
//!
//! An id-ordered scan walks the id space in windows. Each window reads, from ONE warm database snapshot,
//! the warm rows in the window, the live cold files that overlap it and their tombstones; in one
//! snapshot a record is in warm or live in exactly one file, so a window holds each record once
//! however records move meanwhile. Cold rows come from one streaming scan per file, opened when
//! the file first overlaps a window and kept across windows, so each file is read sequentially
//! once. Memory is about two pages: a window spans one page's worth of ids, and ids are dense.
//!
//! A time-ordered scan walks `(ts, id)` keys in windows of at most `m` records (`m`: the page,
//! or what is left of the limit). Each window is read from ONE warm snapshot: the first `m` warm
//! rows after the last key emitted (an index walk of `records_ts`), the live files whose time
//! range overlaps the window and the tombstones of the rows read from them. When no file
//! overlaps, that one statement and a catalog check are the whole window (`latest(n)` with
//! everything in warm). Otherwise the window is narrowed to the time span the catalog says
//! holds about `m` cold rows; the files are read first (row groups and pages pruned by their
//! ts statistics), keeping the best `m` rows in a bounded heap, then the snapshot is taken with
//! the tombstones of exactly those ids. A file the snapshot names that was not read (a new
//! archival or compaction output) is read and the snapshot taken again; a file that vanished
//! before it was read must be absent from the snapshot. The window ends at the earliest of:
//! its time bound, the `m`-th warm row, the `m`-th cold candidate; everything up to that key
//! is complete, so windows partition the key space and each record is returned once.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::blocking::PoolHandle;
use crate::catalog::{CatalogEntry, FileState};
use crate::cold_storage::file::{ColdFileScan, ScanBounds};
use crate::cold_storage::ColdArchiveStorage;
use crate::error::{Error, Result};
use crate::record::{OutcomeKind, Record, TransactionRecord};
use crate::warm_storage::{TimeQuery, WarmSqliteStorage};

/// What a scan selects: an id range, a time range (`timestamp_ms()`, Unix ms) and field
/// equality filters, in which order, and how many at most. Everything is inclusive; the
/// default selects everything, in id order.
///
/// ```
/// use tiered_storage::{OutcomeKind, ScanRange};
/// let range = ScanRange::default()
///     .with_time(1_700_000_000_000..=1_700_086_399_999)
///     .with_outcome(OutcomeKind::Profit)
///     .with_program("6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P");
/// # let _ = range;
///
/// // The 20 newest losses of the last hour, newest first.
/// let losses = ScanRange::default()
///     .with_time(1_700_000_000_000 - 3_600_000..=1_700_000_000_000)
///     .with_outcome(OutcomeKind::Loss)
///     .newest_first()
///     .limit(20);
/// # let _ = losses;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// The order records come in.
    pub order: ScanOrder,
    /// At most this many records (the first ones in `order`); `None`: all.
    pub limit: Option<usize>,
}

/// The order of a scan's records.
///
/// Time orders sort by `(timestamp_ms, id)`: records with the same timestamp come in id order,
/// ascending for [`OldestFirst`](Self::OldestFirst), descending for
/// [`NewestFirst`](Self::NewestFirst).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ScanOrder {
    /// Ascending id: put order. Each page is a window of ids.
    #[default]
    IdAscending,
    /// Oldest timestamp first.
    OldestFirst,
    /// Newest timestamp first.
    NewestFirst,
}

impl Default for ScanRange {
    fn default() -> Self {
        Self {
            min_id: i64::MIN,
            max_id: i64::MAX,
            min_ts: i64::MIN,
            max_ts: i64::MAX,
            equals: Vec::new(),
            order: ScanOrder::IdAscending,
            limit: None,
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

    /// In time order, oldest first (ties by ascending id).
    pub fn oldest_first(mut self) -> Self {
        self.order = ScanOrder::OldestFirst;
        self
    }

    /// In time order, newest first (ties by descending id). With [`limit`](Self::limit), the
    /// scan reads about that many records, whatever the store holds:
    /// `ScanRange::default().newest_first().limit(20)` is "the 20 most recent trades".
    pub fn newest_first(mut self) -> Self {
        self.order = ScanOrder::NewestFirst;
        self
    }

    /// At most `n` records, the first ones in the scan's order. `limit(0)` is
    /// [`Error::InvalidQuery`] when the scan starts.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
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
        if self.limit == Some(0) {
            return Err(Error::invalid_query(
                "a scan limit of 0 selects nothing; leave the limit out to read everything",
            ));
        }
        if self.equals.is_empty() {
            return Ok(());
        }
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

    fn is_time_ordered(&self) -> bool {
        self.order != ScanOrder::IdAscending
    }

    fn matches<R: Record>(&self, r: &R) -> bool {
        self.equals
            .iter()
            .all(|(name, value)| r.field(name).as_deref() == Some(value.as_str()))
    }
}

/// A paginated scan over every tier, from [`list_since`] or [`scan`]. Holds about one page in
/// memory; pages are read off the async worker threads (a time-ordered scan's first page, when
/// warm alone answers it, is read inline: one short SQLite read).
///
/// Drain it a page at a time ([`next_page`](Self::next_page)), a record at a time
/// ([`next`](Self::next)), as a [`Stream`](futures_core::Stream) of `Result<R>`, or into a
/// `Vec` with [`collect`](Self::collect):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tiered_storage::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use tiered_storage::{AutoTieringCoordinator, ScanRange, StorageConfig, TransactionRecord};
///
/// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
/// for ts in [3_000, 1_000, 2_000] {
///     store.put(&TransactionRecord { timestamp_decision_made: ts, ..Default::default() }).await?;
/// }
/// let oldest_two = store.scan(ScanRange::default().oldest_first(), 100)?.collect(2).await?;
/// let times: Vec<i64> = oldest_two.iter().map(|t| t.timestamp_decision_made).collect();
/// assert_eq!(times, [1_000, 2_000]);
/// # Ok(()) }
/// ```
///
/// [`list_since`]: crate::AutoTieringCoordinator::list_since
/// [`scan`]: crate::AutoTieringCoordinator::scan
pub struct RecordCursor<R: Record = TransactionRecord> {
    state: Option<Box<ScanState<R>>>,
    /// The page being read, with the state it reads from. Kept across a cancelled
    /// `next_page`, so the next call takes up the same page and the cursor is never lost.
    inflight: Option<PoolHandle<PageRead<R>>>,
    buffer: VecDeque<R>,
    /// Whether the next page may be tried inline (a time-ordered scan's first page).
    inline_first: bool,
    rows_read: Arc<AtomicU64>,
}

// The cursor is never pinned in place: its fields are moved freely (`Stream` only needs
// `&mut self`).
impl<R: Record> Unpin for RecordCursor<R> {}

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
    /// Records the scan may still return (`range.limit`, less what it returned).
    remaining: usize,
    /// The position of a time-ordered scan.
    time: TimeScan,
    rows_read: Arc<AtomicU64>,
}

/// Windows read again because a file vanished before it was opened, before giving up.
const VANISHED_RETRIES: usize = 16;

/// Inline windows a time-ordered scan's first page may take (each one short SQLite read)
/// before it moves to a read thread (filters that reject many warm rows).
const INLINE_WINDOWS: usize = 4;

/// Records per time window at most (a window is held in memory whole).
pub(super) const MAX_WINDOW_ROWS: usize = 8192;

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
        let rows_read = Arc::new(AtomicU64::new(0));
        let remaining = range.limit.unwrap_or(usize::MAX);
        let time = TimeScan {
            descending: range.order == ScanOrder::NewestFirst,
            after: None,
            boost: 1,
        };
        Self {
            inline_first: range.is_time_ordered(),
            state: Some(Box::new(ScanState {
                warm,
                cold,
                range,
                page_size: page_size.max(1),
                after: None,
                done: false,
                scanners: HashMap::new(),
                pending: VecDeque::new(),
                remaining,
                time,
                rows_read: Arc::clone(&rows_read),
            })),
            inflight: None,
            buffer: VecDeque::new(),
            rows_read,
        }
    }

    /// The next page, or `None` at the end. Pages hold at most the page size, in the range's
    /// order. Cancel-safe: if the future is dropped, the page it was reading is returned by
    /// the next call.
    pub async fn next_page(&mut self) -> Result<Option<Vec<R>>> {
        if self.inline_first && self.inflight.is_none() && self.buffer.is_empty() {
            // The inline read does not yield: spend budget as a point read does.
            tokio::task::consume_budget().await;
        }
        std::future::poll_fn(|cx| self.poll_page(cx)).await
    }

    fn poll_page(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Vec<R>>>> {
        if !self.buffer.is_empty() {
            return Poll::Ready(Ok(Some(self.buffer.drain(..).collect())));
        }
        if self.inflight.is_none() {
            let Some(mut state) = self.state.take() else {
                return Poll::Ready(Err(Error::Closed));
            };
            if state.finished() {
                self.state = Some(state);
                return Poll::Ready(Ok(None));
            }
            if std::mem::take(&mut self.inline_first) {
                let inline = state.inline_page();
                self.state = Some(state);
                match inline {
                    Ok(Some(page)) => return Poll::Ready(Ok((!page.is_empty()).then_some(page))),
                    Ok(None) => state = self.state.take().expect("just put back"),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let cold = state.cold.clone();
            self.inflight = Some(cold.pool().start(move || {
                let page = state.next_page();
                (state, page)
            }));
        }
        let inflight = self.inflight.as_mut().expect("started above");
        let done = match std::future::Future::poll(Pin::new(inflight), cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(done) => done,
        };
        self.inflight = None;
        let (state, page) = done?;
        self.state = Some(state);
        let page = page?;
        Poll::Ready(Ok((!page.is_empty()).then_some(page)))
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

    /// Up to `limit` records, in the scan's order: the cursor drained into one `Vec`. The scan
    /// reads no further than it needs (a time-ordered scan sizes its windows to what is
    /// left). Memory is the result.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, ScanRange, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for _ in 0..10 {
    ///     store.put(&TransactionRecord::default()).await?;
    /// }
    /// let all = store.scan(ScanRange::default(), 4)?.collect(usize::MAX).await?;
    /// assert_eq!(all.len(), 10);
    /// let three = store.scan(ScanRange::default(), 4)?.collect(3).await?;
    /// assert_eq!(three, all[..3]);
    /// # Ok(()) }
    /// ```
    pub async fn collect(mut self, limit: usize) -> Result<Vec<R>> {
        let mut out = Vec::new();
        while out.len() < limit {
            let wanted = limit - out.len();
            if let Some(state) = self.state.as_mut() {
                state.remaining = state
                    .remaining
                    .min(wanted.saturating_sub(self.buffer.len()));
            }
            match self.next_page().await? {
                Some(page) => out.extend(page.into_iter().take(wanted)),
                None => break,
            }
        }
        Ok(out)
    }

    /// Records decoded so far, from warm rows and cold files together: the work the scan has
    /// done (a time-ordered scan with a limit reads about that many, not a time window).
    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }
}

/// Records one at a time; an error is an item (the scan can be polled again after it, like
/// [`next_page`](RecordCursor::next_page)). Cancel-safe as `next_page`: dropping a pending
/// `next()` of a stream combinator loses nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tiered_storage::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
/// use tiered_storage::{AutoTieringCoordinator, ScanRange, StorageConfig, TransactionRecord};
///
/// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
/// store.put(&TransactionRecord::default()).await?;
/// let mut cursor = store.scan(ScanRange::default().newest_first(), 64)?;
/// // With `futures::StreamExt`, `cursor.next().await` or `cursor.try_collect()`.
/// let first = poll_fn(|cx| Pin::new(&mut cursor).poll_next(cx)).await;
/// assert!(matches!(first, Some(Ok(_))));
/// assert!(poll_fn(|cx| Pin::new(&mut cursor).poll_next(cx)).await.is_none());
/// # Ok(()) }
/// ```
impl<R: Record> futures_core::Stream for RecordCursor<R> {
    type Item = Result<R>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<R>>> {
        let this = self.get_mut();
        if let Some(r) = this.buffer.pop_front() {
            return Poll::Ready(Some(Ok(r)));
        }
        match this.poll_page(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(page))) => {
                this.buffer.extend(page);
                Poll::Ready(this.buffer.pop_front().map(Ok))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.buffer.len(), None)
    }
}

/// Where a time-ordered scan stands.
struct TimeScan {
    descending: bool,
    /// Every key `(ts, id)` at or before this one in scan order has been returned; `None`
    /// before the first window. A window that ends on a time bound ends at `(t, i64::MAX)`
    /// (ascending) or `(t, i64::MIN)` (descending): no id is either.
    after: Option<(i64, i64)>,
    /// Multiplies the catalog's estimate of a cold window's rows after windows that held
    /// far fewer rows than it said (records unevenly spread over a file's time range).
    boost: u64,
}

impl TimeScan {
    /// A key's rank: scan order is ascending rank. `!x` reverses i64 order without overflow.
    fn rank(&self, (ts, id): (i64, i64)) -> (i64, i64) {
        if self.descending {
            (!ts, !id)
        } else {
            (ts, id)
        }
    }

    /// The key a window ends at when it reaches time `t` (everything at `t` included).
    fn time_end(&self, t: i64) -> (i64, i64) {
        if self.descending {
            (t, i64::MIN)
        } else {
            (t, i64::MAX)
        }
    }
}

/// A cold row of a window.
struct Candidate<R> {
    file_id: i64,
    id: i64,
    record: R,
}

/// The cold rows of a window with the `cap` lowest ranks, in bounded memory. Rows of equal
/// rank (copies of one record in several files: a superseded copy, or a compaction input and
/// its output) are kept or dropped together, so whichever copy the snapshot says is live is
/// there.
struct Best<R> {
    cap: usize,
    rows: BTreeMap<(i64, i64), Vec<Candidate<R>>>,
    /// The lowest rank dropped: only ranks below it are complete.
    dropped: Option<(i64, i64)>,
}

impl<R> Best<R> {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            rows: BTreeMap::new(),
            dropped: None,
        }
    }

    fn push(&mut self, rank: (i64, i64), c: Candidate<R>) {
        if self.dropped.is_some_and(|d| rank >= d) {
            return;
        }
        self.rows.entry(rank).or_default().push(c);
        if self.rows.len() > self.cap {
            let (last, _) = self.rows.pop_last().expect("over the cap");
            self.dropped = Some(last);
        }
    }

    /// The last rank up to which the kept rows are complete, when rows were dropped. At
    /// least the lowest kept rank: a window always moves on.
    fn complete_through(&self) -> Option<(i64, i64)> {
        // Ranks hold ids (or their complement), never i64::MIN: the predecessor exists.
        self.dropped.map(|(a, b)| (a, b - 1))
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    /// Per file, the ascending ids kept.
    fn ids_by_file(&self) -> Vec<(i64, Vec<i64>)> {
        let mut by_file: HashMap<i64, Vec<i64>> = HashMap::new();
        for c in self.rows.values().flatten() {
            by_file.entry(c.file_id).or_default().push(c.id);
        }
        by_file
            .into_iter()
            .map(|(f, mut ids)| {
                ids.sort_unstable();
                ids.dedup();
                (f, ids)
            })
            .collect()
    }
}

impl<R: Record> ScanState<R> {
    /// Where the scan starts: the range's first id, moved up to the first id that can match
    /// the time range (warm's ts index, and the catalog's time ranges).
    fn start(&self) -> Result<Option<i64>> {
        first_id_window_start(&self.warm, &self.cold, &self.range)
    }

    /// Open a scan (from id `lo + 1`) for each file of the window that has none. `false` if a
    /// file vanished since the snapshot that listed it.
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

    /// Whether the scan has nothing more to return.
    fn finished(&self) -> bool {
        self.remaining == 0 || (self.done && self.pending.is_empty())
    }

    /// The next page, in the range's order, at most what the limit leaves.
    fn next_page(&mut self) -> Result<Vec<R>> {
        let want = self.page_size.min(self.remaining);
        if want == 0 {
            return Ok(Vec::new());
        }
        if self.range.is_time_ordered() {
            while self.pending.len() < want && !self.done {
                self.time_window(false)?;
            }
        } else {
            self.fill_id_windows(want)?;
        }
        let n = self.pending.len().min(want);
        self.remaining -= n;
        Ok(self.pending.drain(..n).collect())
    }

    /// A time-ordered page read on the caller's thread, if warm alone answers it (no cold file
    /// overlaps its windows): `None` sends the page to a read thread, nothing consumed.
    fn inline_page(&mut self) -> Result<Option<Vec<R>>> {
        let want = self.page_size.min(self.remaining);
        for _ in 0..INLINE_WINDOWS {
            if self.pending.len() >= want || self.done {
                break;
            }
            if !self.time_window(true)? {
                return Ok(None);
            }
        }
        if self.pending.len() < want && !self.done {
            return Ok(None);
        }
        let n = self.pending.len().min(want);
        self.remaining -= n;
        Ok(Some(self.pending.drain(..n).collect()))
    }

    /// Read whole id windows until `want` records are pending or the range is done.
    fn fill_id_windows(&mut self, want: usize) -> Result<()> {
        if self.after.is_none() {
            match self.start()? {
                Some(a) => self.after = Some(a),
                None => {
                    self.done = true;
                    return Ok(());
                }
            }
        }
        let window = (self.page_size as i64).max(64);
        let mut vanished = 0;
        while self.pending.len() < want && !self.done {
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
            self.rows_read
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
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
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Time order

impl<R: Record> ScanState<R> {
    /// Records per window: what the page (and the limit) wants, more when filters may reject
    /// rows.
    fn window_rows(&self) -> usize {
        let want = self.page_size.min(self.remaining);
        let m = if self.range.equals.is_empty() {
            want
        } else {
            want.max(256)
        };
        m.clamp(1, MAX_WINDOW_ROWS)
    }

    /// The time bounds left to scan, `None` when the scan has passed the range.
    fn time_bounds(&self) -> Option<(i64, i64)> {
        let (r, t) = (&self.range, &self.time);
        let (lo, hi) = match (t.after, t.descending) {
            (None, _) => (r.min_ts, r.max_ts),
            (Some((ts, id)), false) => {
                let lo = if id == i64::MAX {
                    ts.checked_add(1)?
                } else {
                    ts
                };
                (lo.max(r.min_ts), r.max_ts)
            }
            (Some((ts, id)), true) => {
                let hi = if id == i64::MIN {
                    ts.checked_sub(1)?
                } else {
                    ts
                };
                (r.min_ts, hi.min(r.max_ts))
            }
        };
        (lo <= hi && r.min_id <= r.max_id).then_some((lo, hi))
    }

    /// Read one window into `pending`. With `probe_only`, only a window warm answers alone is
    /// read: `false` (nothing consumed) when a cold file overlaps it.
    fn time_window(&mut self, probe_only: bool) -> Result<bool> {
        let Some((lo, hi)) = self.time_bounds() else {
            self.done = true;
            return Ok(true);
        };
        let m = self.window_rows();
        let desc = self.time.descending;
        let after = self
            .time
            .after
            .unwrap_or(if desc { (hi, i64::MAX) } else { (lo, i64::MIN) });
        let (min_id, max_id) = (self.range.min_id, self.range.max_id);
        let probe = self.warm.time_window(&TimeQuery {
            after,
            min_ts: lo,
            max_ts: hi,
            min_id,
            max_id,
            descending: desc,
            limit: m,
            probe: true,
            candidates: &[],
        })?;
        self.rows_read
            .fetch_add(probe.warm.len() as u64, Ordering::Relaxed);
        if probe.files.is_empty() {
            // No cold file overlaps: this snapshot's warm rows are the window.
            let end = match (probe.warm_full, probe.warm.last()) {
                (true, Some(last)) => Some(key_of(last)),
                _ => None,
            };
            let range = &self.range;
            self.pending
                .extend(probe.warm.into_iter().filter(|r| range.matches(r)));
            match end {
                Some(end) => self.time.after = Some(end),
                None => self.done = true,
            }
            return Ok(true);
        }
        if probe_only {
            return Ok(false);
        }
        // The span worth reading: up to the m-th warm row, and no further than the catalog
        // says holds about m (times the boost) cold rows.
        let (mut lo, mut hi) = (lo, hi);
        if let (true, Some(last)) = (probe.warm_full, probe.warm.last()) {
            let t = last.timestamp_ms();
            if desc {
                lo = lo.max(t);
            } else {
                hi = hi.min(t);
            }
        }
        let target = (m as u64).saturating_mul(self.time.boost) as f64;
        if desc {
            lo = span_start(&probe.files, lo, hi, target);
        } else {
            hi = span_end(&probe.files, lo, hi, target);
        }
        let listed = probe.files;
        let bound_end = self.time.time_end(if desc { lo } else { hi });
        let at_range_end = if desc {
            lo <= self.range.min_ts
        } else {
            hi >= self.range.max_ts
        };

        let mut best = Best::new(m);
        let mut read: HashMap<i64, String> = HashMap::new();
        let mut missing: HashSet<i64> = HashSet::new();
        let mut to_read: Vec<CatalogEntry> = listed
            .into_iter()
            .filter(|e| e.max_ts >= lo && e.min_ts <= hi)
            .collect();
        let mut attempts = 0;
        let snap = loop {
            for entry in &to_read {
                if missing.contains(&entry.file_id) {
                    // A snapshot taken after the file was found missing still names it:
                    // compaction uncatalogues before it unlinks, so it is gone for good.
                    return Err(Error::cold_file(
                        self.cold.file_path(&entry.path),
                        "catalogued but missing; a scan over its time range cannot be complete",
                    ));
                }
                if !self.read_file(entry, lo, hi, after, &mut best)? {
                    missing.insert(entry.file_id);
                    continue;
                }
                read.insert(entry.file_id, entry.path.clone());
            }
            let candidates = best.ids_by_file();
            let snap = self.warm.time_window(&TimeQuery {
                after,
                min_ts: lo,
                max_ts: hi,
                min_id,
                max_id,
                descending: desc,
                limit: m,
                probe: false,
                candidates: &candidates,
            })?;
            to_read = snap
                .files
                .iter()
                .filter(|e| read.get(&e.file_id) != Some(&e.path))
                .cloned()
                .collect();
            if to_read.is_empty() {
                break snap;
            }
            attempts += 1;
            if attempts > VANISHED_RETRIES {
                return Err(Error::cold_file(
                    self.cold.root().to_path_buf(),
                    format!("cold files kept changing while times {lo}..={hi} were scanned"),
                ));
            }
        };
        self.rows_read
            .fetch_add(snap.warm.len() as u64, Ordering::Relaxed);

        // Everything up to `end` is complete in this window.
        let t = &self.time;
        let mut end = t.rank(bound_end);
        let mut hit_range_end = at_range_end;
        if let (true, Some(last)) = (snap.warm_full, snap.warm.last()) {
            let r = t.rank(key_of(last));
            if r < end {
                end = r;
                hit_range_end = false;
            }
        }
        if let Some(r) = best.complete_through() {
            if r < end {
                end = r;
                hit_range_end = false;
            }
        }
        let live: HashMap<i64, &CatalogEntry> = snap
            .files
            .iter()
            .filter(|e| read.get(&e.file_id) == Some(&e.path))
            .map(|e| (e.file_id, e))
            .collect();
        let dead: HashSet<(i64, i64)> = snap.dead.iter().copied().collect();
        let found = best.len();
        let mut rows: Vec<((i64, i64), R)> = Vec::with_capacity(found + snap.warm.len());
        let range = &self.range;
        rows.extend(
            snap.warm
                .into_iter()
                .map(|r| (t.rank(key_of(&r)), r))
                .filter(|(rank, r)| *rank <= end && range.matches(r)),
        );
        let kept = std::mem::take(&mut best.rows);
        rows.extend(
            kept.into_iter()
                .take_while(|(rank, _)| *rank <= end)
                .flat_map(|(rank, copies)| copies.into_iter().map(move |c| (rank, c)))
                .filter(|(_, c)| {
                    live.get(&c.file_id).is_some_and(|e| e.serves(c.id))
                        && !dead.contains(&(c.file_id, c.id))
                })
                .map(|(rank, c)| (rank, c.record)),
        );
        rows.sort_unstable_by_key(|(rank, _)| *rank);
        // One snapshot holds each record once; a repeated key could only be the same copy.
        rows.dedup_by_key(|(rank, _)| *rank);
        self.pending.extend(rows.into_iter().map(|(_, r)| r));
        // Adapt the estimate: a window far emptier than the catalog said reads wider next.
        if best.dropped.is_some() {
            self.time.boost = (self.time.boost / 2).max(1);
        } else if found < m / 4 {
            self.time.boost = self.time.boost.saturating_mul(2).min(1 << 20);
        }
        let desc = self.time.descending;
        self.time.after = Some(if desc { (!end.0, !end.1) } else { end });
        if hit_range_end {
            self.done = true;
        }
        Ok(true)
    }

    /// Read the rows of one file within the window into `best`. `false` if the file is
    /// missing (compacted away since it was listed).
    fn read_file(
        &mut self,
        entry: &CatalogEntry,
        lo: i64,
        hi: i64,
        after: (i64, i64),
        best: &mut Best<R>,
    ) -> Result<bool> {
        let bounds = ScanBounds {
            min_id: self.range.min_id,
            max_id: self.range.max_id,
            min_ts: lo,
            max_ts: hi,
            equals: self.range.equals.clone(),
            batch_rows: best.cap.clamp(256, 8192),
        };
        let scan = match self.cold.scan_file(entry, &bounds) {
            Ok(scan) => scan,
            Err(e) if crate::cold_storage::is_missing(&e) => {
                self.cold.forget(&[entry.file_id]);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let t = &self.time;
        let after = t.rank(after);
        let mut decoded = 0u64;
        for batch in scan {
            let batch = batch?;
            decoded += batch.len() as u64;
            for record in batch {
                let id = record.id().expect("cold rows carry their id");
                let rank = t.rank((record.timestamp_ms(), id));
                if rank > after && self.range.matches(&record) {
                    best.push(
                        rank,
                        Candidate {
                            file_id: entry.file_id,
                            id,
                            record,
                        },
                    );
                }
            }
        }
        self.rows_read.fetch_add(decoded, Ordering::Relaxed);
        Ok(true)
    }
}

/// A record's `(timestamp_ms, id)`.
fn key_of<R: Record>(r: &R) -> (i64, i64) {
    (
        r.timestamp_ms(),
        r.id().expect("stored records carry their id"),
    )
}

/// Rows the catalog expects in `[lo, hi]`: each file's live rows spread evenly over its time
/// range.
fn expected_rows(files: &[CatalogEntry], lo: i64, hi: i64) -> f64 {
    files
        .iter()
        .map(|f| {
            let (a, b) = (i128::from(f.min_ts.max(lo)), i128::from(f.max_ts.min(hi)));
            if a > b {
                return 0.0;
            }
            let span = i128::from(f.max_ts) - i128::from(f.min_ts) + 1;
            f.live_rows() as f64 * ((b - a + 1) as f64 / span as f64)
        })
        .sum()
}

/// The smallest `h` in `[lo, hi]` with about `target` rows expected in `[lo, h]` (`hi` if the
/// whole span holds fewer).
fn span_end(files: &[CatalogEntry], lo: i64, hi: i64, target: f64) -> i64 {
    if expected_rows(files, lo, hi) <= target {
        return hi;
    }
    let (mut a, mut b) = (lo, hi);
    while a < b {
        let mid = a + ((b as i128 - a as i128) / 2) as i64;
        if expected_rows(files, lo, mid) >= target {
            b = mid;
        } else {
            a = mid + 1;
        }
    }
    a
}

/// The largest `l` in `[lo, hi]` with about `target` rows expected in `[l, hi]` (`lo` if the
/// whole span holds fewer).
fn span_start(files: &[CatalogEntry], lo: i64, hi: i64, target: f64) -> i64 {
    if expected_rows(files, lo, hi) <= target {
        return lo;
    }
    let (mut a, mut b) = (lo, hi);
    while a < b {
        let mid = b - ((b as i128 - a as i128) / 2) as i64;
        if expected_rows(files, mid, hi) >= target {
            a = mid;
        } else {
            b = mid - 1;
        }
    }
    a
}

/// Where an id-ordered scan of `range` starts (every id at or below it is skipped): the range's
/// first id, moved up to the first id that can match its time range (warm's ts index, and the
/// catalog's time ranges); `None` when nothing can match. Shared by `RecordCursor` and the
/// projected `BatchScan`.
pub(crate) fn first_id_window_start<R: Record>(
    warm: &WarmSqliteStorage<R>,
    cold: &ColdArchiveStorage<R>,
    r: &ScanRange,
) -> Result<Option<i64>> {
    if r.min_ts == i64::MIN {
        return Ok(Some(r.min_id.saturating_sub(1)));
    }
    let warm_first = warm.first_id_since(r.min_ts)?;
    let cold_first = cold
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
