//! Range reads on the calling thread: `list_since` pages, the windows of a cross-tier scan
//! (by id, or by time on the `ts` index) and the archival scan, each keyset-paginated.

use super::catalog::{query_dead, query_entries};
use super::schema::sqlite_err;
use super::WarmSqliteStorage;
use crate::catalog::CatalogEntry;
use crate::error::Result;
use crate::record::{decode_with_id, Record};

impl<R: Record> WarmSqliteStorage<R> {
    /// One page for `list_since`, on the calling thread. Keyset-paginated by id, so each page
    /// costs the same however deep the scan is.
    pub(crate) fn read_page(
        &self,
        since_ms: i64,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let path = &self.inner.path;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner.with_reader(|conn| {
            let after = match after_id {
                Some(a) => a,
                // First page: start just below the smallest matching id, found on the ts index,
                // instead of walking every older row in id order.
                None => match conn
                    .prepare_cached("SELECT min(id) FROM records INDEXED BY records_ts WHERE ts >= ?1")
                    .and_then(|mut s| s.query_row([since_ms], |r| r.get::<_, Option<i64>>(0)))
                    .map_err(sqlite_err("list_since start", path))?
                {
                    Some(first) => first - 1,
                    None => return Ok(Vec::new()),
                },
            };
            // `+ts` keeps the planner on the primary key, which yields id order with no sort.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, payload FROM records WHERE id > ?1 AND +ts >= ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(sqlite_err("list_since", path))?;
            let mut rows = stmt
                .query(rusqlite::params![after, since_ms, limit])
                .map_err(sqlite_err("list_since", path))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err("list_since", path))? {
                let id: i64 = row.get(0).map_err(sqlite_err("list_since", path))?;
                let payload = row
                    .get_ref(1)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(sqlite_err("list_since", path))?;
                out.push(decode_with_id(id, payload)?);
            }
            Ok(out)
        })
    }

    /// One archival step: up to `limit` rows with `ts < cutoff_ms` and id in `(after_id, upto_id]`, in
    /// id order (keyset pagination), each with its `rev` so the commit can tell whether it
    /// changed meanwhile.
    pub(crate) fn archive_page(
        &self,
        cutoff_ms: i64,
        after_id: i64,
        upto_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, R)>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, rev, payload FROM records WHERE id > ?1 AND id <= ?4 AND +ts < ?2
                     ORDER BY id LIMIT ?3",
                )
                .map_err(sqlite_err("archive scan", path))?;
            let mut rows = stmt
                .query(rusqlite::params![
                    after_id,
                    cutoff_ms,
                    limit as i64,
                    upto_id
                ])
                .map_err(sqlite_err("archive scan", path))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err("archive scan", path))? {
                let id: i64 = row.get(0).map_err(sqlite_err("archive scan", path))?;
                let rev: i64 = row.get(1).map_err(sqlite_err("archive scan", path))?;
                let payload = row
                    .get_ref(2)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(sqlite_err("archive scan", path))?;
                out.push((rev, decode_with_id(id, payload)?));
            }
            Ok(out)
        })
    }

    /// One window of a cross-tier scan, from ONE snapshot: the warm records with id in
    /// `(after_id, upto_id]` and timestamp in `[min_ts, max_ts]`, the live catalogued files that
    /// overlap both ranges, and their tombstones in the id range. In one snapshot a record is
    /// either in warm or live in exactly one file.
    pub(crate) fn scan_window(
        &self,
        after_id: i64,
        upto_id: i64,
        min_ts: i64,
        max_ts: i64,
    ) -> Result<ScanWindow<R>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let tx = conn
                .unchecked_transaction()
                .map_err(sqlite_err("begin scan window", path))?;
            let mut warm = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, payload FROM records WHERE id > ?1 AND id <= ?2
                         AND +ts >= ?3 AND +ts <= ?4 ORDER BY id",
                    )
                    .map_err(sqlite_err("scan window", path))?;
                let mut rows = stmt
                    .query(rusqlite::params![after_id, upto_id, min_ts, max_ts])
                    .map_err(sqlite_err("scan window", path))?;
                while let Some(row) = rows.next().map_err(sqlite_err("scan window", path))? {
                    let id: i64 = row.get(0).map_err(sqlite_err("scan window", path))?;
                    let payload = row
                        .get_ref(1)
                        .and_then(|v| v.as_blob().map_err(Into::into))
                        .map_err(sqlite_err("scan window", path))?;
                    warm.push(decode_with_id(id, payload)?);
                }
            }
            let files = query_entries(
                &tx,
                path,
                "WHERE f.max_id > ?1 AND f.min_id <= ?2 AND f.max_ts >= ?3 AND f.min_ts <= ?4",
                rusqlite::params![after_id, upto_id, min_ts, max_ts],
            )?;
            let mut dead = Vec::new();
            for f in &files {
                dead.extend(
                    query_dead(&tx, path, f.file_id, after_id.saturating_add(1), upto_id)?
                        .into_iter()
                        .map(|id| (f.file_id, id)),
                );
            }
            // The smallest id above the window that warm or a live file may hold, so empty
            // stretches of the id space are skipped.
            let next: Option<i64> = tx
                .query_row(
                    "SELECT min(n) FROM (
                        SELECT min(id) AS n FROM records WHERE id > ?1
                        UNION ALL
                        SELECT min(max(min_id, ?1 + 1)) FROM cold_files
                        WHERE max_id > ?1 AND max_ts >= ?2 AND min_ts <= ?3)",
                    rusqlite::params![upto_id, min_ts, max_ts],
                    |r| r.get(0),
                )
                .map_err(sqlite_err("scan window", path))?;
            tx.commit().map_err(sqlite_err("end scan window", path))?;
            Ok(ScanWindow {
                warm,
                files,
                dead,
                next,
            })
        })
    }

    /// One time window of a time-ordered scan, from ONE snapshot: the first `limit` warm rows
    /// in scan order (`(ts, id)` ascending, or descending with `q.descending`) strictly after
    /// `q.after` within `[q.min_ts, q.max_ts]` and the id range; the live (or quarantined)
    /// catalogued files that may hold a row of the window (for a full warm answer, only up to
    /// its last row's timestamp), and the tombstones among `q.candidates` (the ids read from
    /// each file before the snapshot). Files with no row settled yet serve nothing and are
    /// left out.
    ///
    /// With `q.probe`, files are only listed when some overlap the window (one cheap EXISTS
    /// first): the all-in-warm case costs the warm read and that check.
    pub(crate) fn time_window(&self, q: &TimeQuery<'_>) -> Result<TimeWindow<R>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let tx = conn
                .unchecked_transaction()
                .map_err(sqlite_err("begin time window", path))?;
            let err = sqlite_err("time window", path);
            let mut warm = Vec::new();
            let mut last_ts = None;
            {
                // The ts index holds (ts, rowid): both orders are index walks, no sort.
                let sql = if q.descending {
                    "SELECT id, ts, payload FROM records INDEXED BY records_ts
                     WHERE (ts, id) < (?1, ?2) AND ts >= ?3 AND ts <= ?4 AND id >= ?5 AND id <= ?6
                     ORDER BY ts DESC, id DESC LIMIT ?7"
                } else {
                    "SELECT id, ts, payload FROM records INDEXED BY records_ts
                     WHERE (ts, id) > (?1, ?2) AND ts >= ?3 AND ts <= ?4 AND id >= ?5 AND id <= ?6
                     ORDER BY ts, id LIMIT ?7"
                };
                let mut stmt = tx
                    .prepare_cached(sql)
                    .map_err(sqlite_err("time window", path))?;
                let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
                let mut rows = stmt
                    .query(rusqlite::params![
                        q.after.0, q.after.1, q.min_ts, q.max_ts, q.min_id, q.max_id, limit
                    ])
                    .map_err(sqlite_err("time window", path))?;
                while let Some(row) = rows.next().map_err(sqlite_err("time window", path))? {
                    let id: i64 = row.get(0).map_err(sqlite_err("time window", path))?;
                    let ts: i64 = row.get(1).map_err(sqlite_err("time window", path))?;
                    let payload = row
                        .get_ref(2)
                        .and_then(|v| v.as_blob().map_err(Into::into))
                        .map_err(sqlite_err("time window", path))?;
                    warm.push(decode_with_id(id, payload)?);
                    last_ts = Some(ts);
                }
            }
            let warm_full = warm.len() >= q.limit;
            // A full warm answer ends the window at its last row: files need only reach it.
            let (lo, hi) = match (warm_full, last_ts) {
                (true, Some(t)) if q.descending => (t, q.max_ts),
                (true, Some(t)) => (q.min_ts, t),
                _ => (q.min_ts, q.max_ts),
            };
            const OVERLAP: &str = "f.max_ts >= ?1 AND f.min_ts <= ?2 AND f.max_id >= ?3
                AND f.min_id <= ?4 AND f.settled_upto >= f.min_id";
            let params = rusqlite::params![lo, hi, q.min_id, q.max_id];
            let any = !q.probe
                || tx
                    .prepare_cached(&format!(
                        "SELECT EXISTS(SELECT 1 FROM cold_files f WHERE {OVERLAP})"
                    ))
                    .and_then(|mut s| s.query_row(params, |r| r.get::<_, bool>(0)))
                    .map_err(err)?;
            let files = if any {
                query_entries(&tx, path, &format!("WHERE {OVERLAP}"), params)?
            } else {
                Vec::new()
            };
            let mut dead = Vec::new();
            for (file_id, ids) in q.candidates {
                if ids.is_empty() || !files.iter().any(|f| f.file_id == *file_id) {
                    continue;
                }
                let (lo, hi) = (ids[0], ids[ids.len() - 1]);
                let tombstones = files
                    .iter()
                    .find(|f| f.file_id == *file_id)
                    .map_or(0, |f| f.dead_rows);
                if (ids.len() as u64) < tombstones {
                    // Fewer candidates than tombstones: look each up (primary key).
                    let mut stmt = tx
                        .prepare_cached("SELECT 1 FROM cold_dead WHERE file_id = ?1 AND id = ?2")
                        .map_err(sqlite_err("read tombstones", path))?;
                    for &id in ids.iter() {
                        if stmt
                            .exists([*file_id, id])
                            .map_err(sqlite_err("read tombstones", path))?
                        {
                            dead.push((*file_id, id));
                        }
                    }
                } else {
                    dead.extend(
                        query_dead(&tx, path, *file_id, lo, hi)?
                            .into_iter()
                            .map(|id| (*file_id, id)),
                    );
                }
            }
            tx.commit().map_err(sqlite_err("end time window", path))?;
            Ok(TimeWindow {
                warm,
                warm_full,
                files,
                dead,
            })
        })
    }

    /// Smallest id with `ts >= since_ms` in warm (from the ts index), to start a scan there.
    pub(crate) fn first_id_since(&self, since_ms: i64) -> Result<Option<i64>> {
        self.query_value(
            "SELECT min(id) FROM records INDEXED BY records_ts WHERE ts >= ?1",
            [since_ms],
            "scan start",
        )
    }

    /// The largest id of a record with `ts < cutoff_ms` (a scan of the timestamp index over
    /// the due records only), `None` when none is due. Bounds an archival pass's keyset scan,
    /// so a pass never reads the young records after the last due one.
    pub(crate) fn max_due_id(&self, cutoff_ms: i64) -> Result<Option<i64>> {
        self.query_value(
            "SELECT max(id) FROM records INDEXED BY records_ts WHERE ts < ?1",
            [cutoff_ms],
            "find the last record due for archival",
        )
    }

    /// How many records have `ts < cutoff_ms` (a count over the timestamp index).
    pub(crate) fn count_due(&self, cutoff_ms: i64) -> Result<u64> {
        Ok(self
            .query_value(
                "SELECT count(*) FROM records INDEXED BY records_ts WHERE ts < ?1",
                [cutoff_ms],
                "count the records due for archival",
            )?
            .unwrap_or(0) as u64)
    }

    /// The smallest record timestamp in warm (an index lookup), `None` when warm is empty.
    pub fn oldest_timestamp_ms(&self) -> Result<Option<i64>> {
        self.query_value("SELECT min(ts) FROM records", [], "read oldest timestamp")
    }
}

/// One window of a cross-tier scan (see [`WarmSqliteStorage::scan_window`]).
pub(crate) struct ScanWindow<R> {
    pub warm: Vec<R>,
    pub files: Vec<CatalogEntry>,
    pub dead: Vec<(i64, i64)>,
    pub next: Option<i64>,
}

/// What [`WarmSqliteStorage::time_window`] reads.
pub(crate) struct TimeQuery<'a> {
    /// Rows strictly after this `(ts, id)` in scan order.
    pub after: (i64, i64),
    pub min_ts: i64,
    pub max_ts: i64,
    pub min_id: i64,
    pub max_id: i64,
    pub descending: bool,
    /// Warm rows to return at most (at least 1).
    pub limit: usize,
    /// Only list files when an EXISTS check finds one.
    pub probe: bool,
    /// Per file, the ascending ids read from it, whose tombstones the snapshot reports.
    pub candidates: &'a [(i64, Vec<i64>)],
}

/// One window of a time-ordered scan (see [`WarmSqliteStorage::time_window`]).
pub(crate) struct TimeWindow<R> {
    /// In scan order.
    pub warm: Vec<R>,
    /// Whether `limit` warm rows came back (the window then ends at the last one).
    pub warm_full: bool,
    pub files: Vec<CatalogEntry>,
    pub dead: Vec<(i64, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::record::tests::sample;
    use crate::tier::StorageTier;

    fn open(dir: &std::path::Path) -> WarmSqliteStorage {
        WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir)).unwrap()
    }

    #[tokio::test]
    async fn warm_storage_list_since_pages_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        for n in 0..50 {
            let mut r = sample(n);
            // Timestamps out of id order: every third record is old.
            r.timestamp_decision_made = if n % 3 == 0 { 10 } else { 1000 + n as i64 };
            w.put(&r).await.unwrap();
        }
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let page = w.list_since(1000, after, 7).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 7);
            after = page.last().unwrap().id;
            seen.extend(page.into_iter().map(|r| r.id.unwrap()));
        }
        let expected: Vec<i64> = (0..50).filter(|n| n % 3 != 0).map(|n| n + 1).collect();
        assert_eq!(seen, expected);
        assert!(w.list_since(i64::MAX, None, 10).await.unwrap().is_empty());
    }

    /// An archival pass reads only up to the last due record: young records after it are never
    /// scanned, and none is due when the oldest record is young.
    #[tokio::test]
    async fn warm_storage_archive_scan_stops_at_the_last_due_record() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let mut ids = Vec::new();
        for (n, ts) in [(1, 100), (2, 5_000), (3, 200), (4, 9_000), (5, 9_500)] {
            let mut r = sample(n);
            r.timestamp_decision_made = ts;
            ids.push(w.put(&r).await.unwrap());
        }
        assert_eq!(w.max_due_id(50).unwrap(), None);
        assert_eq!(w.max_due_id(1_000).unwrap(), Some(ids[2]));
        assert_eq!(w.max_due_id(i64::MAX).unwrap(), Some(ids[4]));
        let page: Vec<i64> = w
            .archive_page(1_000, i64::MIN, ids[2], 100)
            .unwrap()
            .iter()
            .map(|(_, r)| r.id.unwrap())
            .collect();
        assert_eq!(page, [ids[0], ids[2]]);
        assert_eq!(w.oldest_timestamp_ms().unwrap(), Some(100));
    }
}
