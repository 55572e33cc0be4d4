//! Reading pages ahead of the Parquet decoder, so that a read costs one round trip per row
//! group rather than one per page: on an object store every `read` is a request.
//!
//! The decoder asks [`CheckedFile`](crate::cold_storage::checksum::CheckedFile) for one page at a
//! time. A [`ReadAhead`] knows beforehand which pages a read will ask for (from the offset
//! index: the dictionary page and the data pages that overlap the selected rows of each
//! projected column), grouped by row group in the order the decoder visits them. The first
//! page asked of a group loads the whole group in ONE [`RangeRead::read_ranges`] call (the store
//! coalesces the ranges), checking every page against its checksum, and starts loading the
//! next group on a thread of its own, so a scan decodes one group while the next is in flight.
//! A scan hands each page out once and drops it (the decoder reads each page once), so it
//! holds the pages of the group being decoded and of the next one, at most; a point read
//! keeps its pages (its two phases read the id page twice).
//!
//! A page it does not hold (not planned, dropped, or a load that failed) is read directly by
//! the caller, so a wrong plan costs requests, never correctness.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;

use crate::cold_storage::checksum::PageSums;
use crate::cold_storage::store::RangeRead;

/// Where a group's pages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Waiting,
    InFlight,
    Done,
    Failed,
}

#[derive(Debug)]
struct State {
    /// Loaded pages not handed out yet (or kept), by offset.
    pages: BTreeMap<u64, Bytes>,
    loads: Vec<Load>,
}

/// The pages a read will ask for, loaded a row group at a time (see the module doc).
pub(crate) struct ReadAhead {
    file: Arc<dyn RangeRead>,
    sums: Option<Arc<PageSums>>,
    /// Page ranges of each group, in the decoder's order.
    groups: Vec<Vec<Range<u64>>>,
    /// Byte span of each group (ascending, disjoint).
    spans: Vec<Range<u64>>,
    /// Keep pages once handed out (a point read), or drop them (a scan).
    keep: bool,
    /// Load the next group in the background when one is asked for.
    prefetch: bool,
    state: Mutex<State>,
    loaded: Condvar,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("groups", &self.groups.len())
            .field("keep", &self.keep)
            .finish()
    }
}

/// The pages of leaf `leaf` in row group `rg` that hold any row of `rows` (ascending row
/// ranges within the group): its dictionary page, if any, and those data pages. `None`
/// without an offset index.
pub(crate) fn leaf_pages(
    md: &ParquetMetaData,
    rg: usize,
    leaf: usize,
    rows: &[Range<usize>],
) -> Option<Vec<Range<u64>>> {
    let locations = md.page_index()?.page_locations(rg, leaf)?;
    let total = usize::try_from(md.row_group(rg).num_rows()).ok()?;
    let (start, _) = md.row_group(rg).columns().get(leaf)?.byte_range();
    let mut out = Vec::new();
    let first = locations.first()?;
    let first_offset = u64::try_from(first.offset).ok()?;
    if first_offset > start {
        out.push(start..first_offset);
    }
    for (i, page) in locations.iter().enumerate() {
        let from = usize::try_from(page.first_row_index).ok()?;
        let to = match locations.get(i + 1) {
            Some(next) => usize::try_from(next.first_row_index).ok()?,
            None => total,
        };
        if rows.iter().any(|r| r.start < to && from < r.end) {
            let offset = u64::try_from(page.offset).ok()?;
            let len = u64::try_from(page.compressed_page_size).ok()?;
            out.push(offset..offset + len);
        }
    }
    Some(out)
}

/// The pages of row group `rg` a read of `rows` through `mask` asks for, ascending; `None`
/// without an offset index.
pub(crate) fn group_pages(
    md: &ParquetMetaData,
    rg: usize,
    mask: Option<&ProjectionMask>,
    rows: &[Range<usize>],
) -> Option<Vec<Range<u64>>> {
    let leaves = md.row_group(rg).num_columns();
    let mut out = Vec::new();
    for leaf in (0..leaves).filter(|&l| mask.is_none_or(|m| m.leaf_included(l))) {
        out.extend(leaf_pages(md, rg, leaf, rows)?);
    }
    out.sort_unstable_by_key(|r| r.start);
    Some(out)
}

impl ReadAhead {
    /// Pages `groups` of `file` (each group's pages ascending; groups in the order they will
    /// be read, ascending in the file), checked against `sums`.
    pub(crate) fn new(
        file: Arc<dyn RangeRead>,
        sums: Option<Arc<PageSums>>,
        groups: Vec<Vec<Range<u64>>>,
        keep: bool,
    ) -> Arc<Self> {
        let spans: Vec<Range<u64>> = groups
            .iter()
            .map(|pages| {
                let start = pages.iter().map(|p| p.start).min().unwrap_or(0);
                let end = pages.iter().map(|p| p.end).max().unwrap_or(0);
                start..end
            })
            .collect();
        let ordered = spans.windows(2).all(|w| w[0].end <= w[1].start);
        let loads = vec![Load::Waiting; groups.len()];
        Arc::new(Self {
            file,
            sums,
            // Unordered spans cannot say which group a page is in: one group of all.
            groups: if ordered {
                groups
            } else {
                vec![groups.into_iter().flatten().collect()]
            },
            spans: if ordered {
                spans
            } else {
                std::iter::once(0..u64::MAX).collect()
            },
            keep,
            prefetch: !keep,
            state: Mutex::new(State {
                pages: BTreeMap::new(),
                loads: if ordered { loads } else { vec![Load::Waiting] },
            }),
            loaded: Condvar::new(),
        })
    }

    /// Page `start..start + len`, if it was planned and its group loads; `None` tells the
    /// caller to read it directly.
    pub(crate) fn get(self: &Arc<Self>, start: u64, len: usize) -> Option<Bytes> {
        let g = self.spans.partition_point(|s| s.end <= start);
        if g >= self.spans.len() || self.spans[g].start > start {
            return None;
        }
        if self.prefetch && g + 1 < self.groups.len() {
            self.start_background(g + 1);
        }
        self.ensure(g);
        let mut state = self.state.lock();
        let page = state.pages.get(&start)?;
        if page.len() != len {
            return None;
        }
        if self.keep {
            Some(page.clone())
        } else {
            state.pages.remove(&start)
        }
    }

    /// Wait until group `g` is loaded (loading it here if nobody is).
    fn ensure(self: &Arc<Self>, g: usize) {
        let mut state = self.state.lock();
        loop {
            match state.loads[g] {
                Load::Done | Load::Failed => return,
                Load::InFlight => self.loaded.wait(&mut state),
                Load::Waiting => {
                    state.loads[g] = Load::InFlight;
                    drop(state);
                    self.load(g);
                    return;
                }
            }
        }
    }

    fn start_background(self: &Arc<Self>, g: usize) {
        {
            let mut state = self.state.lock();
            if state.loads[g] != Load::Waiting {
                return;
            }
            state.loads[g] = Load::InFlight;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("cold-read-ahead".into())
            .spawn(move || me.load(g));
        if spawned.is_err() {
            self.load(g);
        }
    }

    /// Load group `g` (marked in flight by the caller).
    fn load(&self, g: usize) {
        let got = self.fetch(&self.groups[g]);
        let mut state = self.state.lock();
        state.loads[g] = match got {
            Some(pages) => {
                state.pages.extend(pages);
                Load::Done
            }
            None => Load::Failed,
        };
        self.loaded.notify_all();
    }

    /// `ranges` in one request, each checked; `None` if anything fails (the caller's direct
    /// reads then report it).
    fn fetch(&self, ranges: &[Range<u64>]) -> Option<Vec<(u64, Bytes)>> {
        if ranges.is_empty() {
            return Some(Vec::new());
        }
        let got = match self.file.read_ranges(ranges) {
            Ok(got) if got.len() == ranges.len() => got,
            Ok(_) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "read-ahead failed; pages are read one by one");
                return None;
            }
        };
        let mut out = Vec::with_capacity(ranges.len());
        for (r, bytes) in ranges.iter().zip(got) {
            if bytes.len() as u64 != r.end - r.start {
                return None;
            }
            if let Some(sums) = &self.sums {
                // A damaged page is left out: its direct read reports it.
                if sums.check(r.start, &bytes).is_err() {
                    continue;
                }
            }
            out.push((r.start, bytes));
        }
        Some(out)
    }
}
