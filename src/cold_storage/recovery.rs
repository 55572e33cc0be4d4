//! Keeping the cold directory and its catalog in agreement: the check on open, `verify` (every
//! file against its catalog row) and the catalog rebuild from Parquet footers alone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::file::{ColdFile, FileSummary, ScanBounds};
use super::store::{is_missing, partition_of, ColdStore, FileRef};
use super::ColdArchiveStorage;
use crate::catalog::{CatalogEntry, CatalogRebuild, FileState, NewFile};
use crate::error::{Error, Result};
use crate::record::Record;

/// What is wrong with a cold file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProblemKind {
    /// A catalogued file is not on disk.
    Missing,
    /// A catalogued file's size differs from the catalog's (truncated or overwritten).
    SizeMismatch,
    /// The file's footer or data cannot be read.
    Unreadable,
    /// The footer disagrees with the catalog row (rows, id range or time range).
    CatalogMismatch,
    /// Parquet files were found that this store's catalog never reserved (the catalog was lost
    /// or replaced): nothing was deleted; run `rebuild_cold_catalog` to register them.
    Uncatalogued,
}

/// One problem found with a cold file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdFileProblem {
    /// The catalog id, if the file is catalogued.
    pub file_id: Option<i64>,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: ProblemKind,
    /// Details.
    pub detail: String,
}

impl ColdFileProblem {
    pub(crate) fn new(
        file_id: Option<i64>,
        path: PathBuf,
        kind: ProblemKind,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            file_id,
            path,
            kind,
            detail: detail.into(),
        }
    }
}

/// The result of [`verify_cold`](crate::AutoTieringCoordinator::verify_cold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Catalogued files checked.
    pub files_checked: u64,
    /// Rows in files that matched their catalog row.
    pub rows_verified: u64,
    /// Files that did not match (now quarantined).
    pub problems: Vec<ColdFileProblem>,
    /// Quarantined files found sound again (now live).
    pub revived: Vec<i64>,
    /// Replica copies (`cold.replicas`) found missing, of the wrong size, or unreachable.
    pub replica_problems: Vec<super::ReplicaProblem>,
}

/// What the check on open did and what must be quarantined.
#[derive(Debug, Default)]
pub(crate) struct OpenCheck {
    pub temp_removed: usize,
    pub orphans_removed: usize,
    pub quarantine: Vec<i64>,
    /// Partitions whose catalogued delete file is missing (to publish again).
    pub deletes_missing: Vec<String>,
    /// Parquet files the catalog never reserved were found (it was lost or replaced): nothing
    /// may reserve file numbers before `rebuild_cold_catalog` registers them.
    pub uncatalogued: bool,
}

/// `…/part-<seq>.parquet` → seq.
fn file_seq(key: &str) -> Option<u64> {
    key.rsplit('/')
        .next()?
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// The key of every published file, partition by partition (and any outside a partition).
fn walk(store: &dyn ColdStore) -> Result<Vec<String>> {
    let mut out = store.list("")?;
    for partition in store.partitions()? {
        out.extend(store.list(&partition)?);
    }
    Ok(out)
}

/// A found file's footer summary and the checksums of what it holds.
type Footer = (FileSummary, Vec<u8>);

fn new_file(path: String, s: &FileSummary, page_sums: Vec<u8>, footer_len: Option<u64>) -> NewFile {
    NewFile {
        page_sums: Some(page_sums),
        etag: None,
        footer_len,
        path,
        min_id: s.min_id,
        max_id: s.max_id,
        min_ts: s.min_ts,
        max_ts: s.max_ts,
        rows: s.rows,
        bytes: s.bytes,
    }
}

impl<R: Record> ColdArchiveStorage<R> {
    /// The check on open (blocking; only the owner, holding the directory lock, runs it):
    /// remove staged files and uncatalogued files whose number the catalog reserved (the
    /// leftovers of a move that crashed before its commit, or of a compaction that crashed
    /// after it), and find catalogued files that are missing or whose size changed. An
    /// uncatalogued Parquet file the catalog never reserved is not ours to delete: the catalog
    /// was lost or replaced. It is kept and reported.
    pub(crate) fn check_on_open(&self) -> Result<OpenCheck> {
        if self.store().is_remote() {
            return self.check_remote_on_open();
        }
        let entries = self.catalog().entries()?;
        let reserved = self.catalog().reserved_file_seq()?;
        let deletes = self.catalog().delete_files()?;
        let mut known: HashMap<&str, Option<&CatalogEntry>> =
            entries.iter().map(|e| (e.path.as_str(), Some(e))).collect();
        known.extend(deletes.iter().map(|d| (d.path.as_str(), None)));
        let store = self.store();
        let mut check = OpenCheck {
            temp_removed: store.clear_staging()?,
            ..OpenCheck::default()
        };
        let mut max_seq = 0;
        let files = walk(&**store)?;
        let ours = |key: &str| file_seq(key).is_some_and(|seq| seq < reserved);
        let uncatalogued = files.iter().any(|key| {
            key.ends_with(".parquet") && !known.contains_key(key.as_str()) && !ours(key)
        });
        let mut touched = BTreeSet::new();
        for key in &files {
            max_seq = max_seq.max(file_seq(key).unwrap_or(0));
            if key.ends_with(".parquet") && !known.contains_key(key.as_str()) {
                let abs = self.file_path(key);
                if !ours(key) {
                    tracing::error!(path = %abs.display(), reserved, "cold file this catalog never reserved; kept");
                    continue;
                }
                tracing::info!(path = %abs.display(), "removing cold file with no catalog row (left by an interrupted move)");
                store.delete(key)?;
                touched.insert(partition_of(key));
                check.orphans_removed += 1;
            }
        }
        check.uncatalogued = uncatalogued;
        if uncatalogued {
            self.report(ColdFileProblem::new(
                None,
                self.root().to_path_buf(),
                ProblemKind::Uncatalogued,
                "Parquet files found that this catalog never reserved (it was lost or replaced); nothing was deleted. Run rebuild_cold_catalog to register them",
            ));
        }
        // Make the removals durable before anything new is written.
        for partition in touched {
            store.sync(partition)?;
        }
        for d in &deletes {
            if store.len(&d.path)?.is_none() {
                // Outside readers miss its ids until the partition is published again.
                tracing::error!(path = %self.file_path(&d.path).display(), "catalogued delete file missing; its partition is published again");
                check.deletes_missing.push(d.partition.clone());
            }
        }
        for e in &entries {
            let abs = self.file_path(&e.path);
            let problem = match store.len(&e.path) {
                Ok(None) => Some((
                    ProblemKind::Missing,
                    format!("catalogued with {} rows, not on disk", e.rows),
                )),
                Err(err) => Some((ProblemKind::Unreadable, err.to_string())),
                Ok(Some(len)) if len != e.bytes => Some((
                    ProblemKind::SizeMismatch,
                    format!("{len} bytes on disk, {} catalogued", e.bytes),
                )),
                Ok(Some(_)) => None,
            };
            if let Some((kind, detail)) = problem {
                self.report(ColdFileProblem::new(Some(e.file_id), abs, kind, detail));
                if e.state == FileState::Live {
                    check.quarantine.push(e.file_id);
                }
            }
        }
        // The next reservation starts above every file on disk and every number reserved.
        *self.inner.seqs.lock() = ((max_seq + 1).max(reserved), 0);
        Ok(check)
    }

    /// The check on open of an object store, which never lists the bucket: clear the local
    /// staging, check every catalogued object (data and delete files) with one HEAD each,
    /// and leave orphans to the intent sweep (which the caller runs next).
    fn check_remote_on_open(&self) -> Result<OpenCheck> {
        let entries = self.catalog().entries()?;
        let reserved = self.catalog().reserved_file_seq()?;
        let deletes = self.catalog().delete_files()?;
        let store = self.store();
        let mut check = OpenCheck {
            temp_removed: store.clear_staging()?,
            ..OpenCheck::default()
        };
        for d in &deletes {
            if store.stat(&d.path)?.is_none() {
                tracing::error!(path = %self.file_path(&d.path).display(), "catalogued delete file missing; its partition is published again");
                check.deletes_missing.push(d.partition.clone());
            }
        }
        for e in &entries {
            let problem = match store.stat(&e.path) {
                Ok(None) => Some((
                    ProblemKind::Missing,
                    format!("catalogued with {} rows, not in the store", e.rows),
                )),
                // The store failing to answer says nothing about the object: not quarantined
                // (a read that fails later reports it).
                Err(err) => {
                    tracing::warn!(path = %self.file_path(&e.path).display(), error = %err, "could not check a cold object at open");
                    None
                }
                Ok(Some(s)) if s.len != e.bytes => Some((
                    ProblemKind::SizeMismatch,
                    format!("{} bytes in the store, {} catalogued", s.len, e.bytes),
                )),
                Ok(Some(s)) if e.etag.is_some() && s.etag.is_some() && s.etag != e.etag => Some((
                    ProblemKind::SizeMismatch,
                    format!(
                        "ETag {:?} in the store, {:?} catalogued (the object was replaced)",
                        s.etag, e.etag
                    ),
                )),
                Ok(Some(_)) => None,
            };
            if let Some((kind, detail)) = problem {
                let abs = self.file_path(&e.path);
                self.report(ColdFileProblem::new(Some(e.file_id), abs, kind, detail));
                if e.state == FileState::Live {
                    check.quarantine.push(e.file_id);
                }
            }
        }
        // Every object this store wrote has a number below the reservation.
        *self.inner.seqs.lock() = (reserved.max(1), 0);
        Ok(check)
    }

    /// Open every catalogued file afresh and compare its footer with its catalog row
    /// (blocking). A quarantined file is also read in full before it is served again, since
    /// it may have been quarantined for a bad page its footer does not show. Returns the
    /// report; the caller persists quarantines and revivals.
    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        let mut report = self.verify_once()?;
        if report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::Missing)
        {
            // A file gone from the catalog since the snapshot was compacted away (by the owner,
            // under a read-only handle): not a problem.
            let live: HashSet<i64> = self
                .catalog()
                .entries()?
                .into_iter()
                .map(|e| e.file_id)
                .collect();
            report.problems.retain(|p| {
                let gone =
                    p.kind == ProblemKind::Missing && p.file_id.is_some_and(|f| !live.contains(&f));
                !gone
            });
            self.clear_problems(|p| {
                p.kind == ProblemKind::Missing && p.file_id.is_some_and(|f| !live.contains(&f))
            });
        }
        Ok(report)
    }

    fn verify_once(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for e in self.catalog().entries()? {
            report.files_checked += 1;
            let abs = self.file_path(&e.path);
            let deep = e.state == FileState::Quarantined;
            match self.check_file(&e, &abs, deep) {
                Some((kind, detail)) => {
                    self.forget(&[e.file_id]);
                    let p = ColdFileProblem::new(Some(e.file_id), abs, kind, detail);
                    self.report(p.clone());
                    report.problems.push(p);
                }
                None => {
                    report.rows_verified += e.rows;
                    self.clear_problems(|p| p.path == abs);
                    if deep {
                        report.revived.push(e.file_id);
                    }
                }
            }
        }
        Ok(report)
    }

    /// What is wrong with catalogued file `e` (named `abs` in messages), if anything: its footer and page index
    /// against their checksums and the catalog row, every page against its checksum, and with
    /// `deep`, every page decoded and every row counted (about as costly
    /// as a full scan of the file). Opens the file afresh, bypassing the metadata cache.
    pub(crate) fn check_file(
        &self,
        e: &CatalogEntry,
        abs: &Path,
        deep: bool,
    ) -> Option<(ProblemKind, String)> {
        let unreadable = |err: Error| {
            // The system failing to open or read it (EIO, EMFILE, ENOMEM) says nothing about
            // the file: not a problem to quarantine it for.
            if matches!(err, Error::Io { .. }) {
                tracing::warn!(path = %abs.display(), error = %err, "cold file check failed on an I/O error; not quarantining");
                return None;
            }
            let kind = if is_missing(&err) {
                ProblemKind::Missing
            } else {
                ProblemKind::Unreadable
            };
            Some((kind, err.to_string()))
        };
        let sums = match self.catalog().page_sums(e.file_id) {
            Ok(sums) => sums,
            // The catalog could not be read (the system, not the file): nothing is known.
            Err(err) => {
                tracing::warn!(path = %abs.display(), error = %err, "cold file check could not read the catalog; not quarantining");
                return None;
            }
        };
        let source = FileRef::published(self.store(), &e.path);
        let file = match ColdFile::<R>::open_at(source, sums.as_deref()) {
            Ok(f) => f,
            Err(err) => return unreadable(err),
        };
        let s = match file.summary() {
            Ok(s) => s,
            Err(err) => return unreadable(err),
        };
        let catalogued = (e.rows, e.min_id, e.max_id, e.min_ts, e.max_ts, e.bytes);
        let found = (s.rows, s.min_id, s.max_id, s.min_ts, s.max_ts, s.bytes);
        if catalogued != found {
            return Some((
                ProblemKind::CatalogMismatch,
                format!("catalog (rows, min_id, max_id, min_ts, max_ts, bytes) = {catalogued:?}, footer = {found:?}"),
            ));
        }
        // Every page against its checksum: a flipped byte anywhere is found without decoding.
        if let Err(err) = file.check_pages() {
            return unreadable(err);
        }
        if deep {
            let mut rows = 0u64;
            let scan = match file.scan(&ScanBounds::default()) {
                Ok(scan) => scan,
                Err(err) => return unreadable(err),
            };
            for batch in scan {
                match batch {
                    Ok(records) => rows += records.len() as u64,
                    Err(err) => return unreadable(err),
                }
            }
            if rows != e.rows {
                return Some((
                    ProblemKind::CatalogMismatch,
                    format!("{rows} rows decoded, {} catalogued", e.rows),
                ));
            }
        }
        None
    }

    /// Plan a catalog rebuild from the Parquet footers alone (blocking). Catalogued files
    /// still on disk keep their rows (and tombstones). Rows whose file is gone are dropped.
    /// Every other Parquet file is added; of its ids, those in warm or in another served file
    /// (catalogued, or added with a higher sequence number: newer) are tombstoned, so every
    /// record stays readable exactly once.
    pub(crate) fn rebuild_plan(&self) -> Result<CatalogRebuild> {
        let entries = self.catalog().entries()?;
        let reserved = self.catalog().reserved_file_seq()?;
        let mut plan = CatalogRebuild::default();
        let known: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let store = self.store();
        let open = |key: &str| ColdFile::<R>::open_at(FileRef::published(store, key), None);
        for e in &entries {
            if store.len(&e.path)?.is_none() {
                plan.remove.push(e.file_id);
            }
        }
        // Found files, newest (highest sequence) first.
        let mut found: Vec<(u64, String, PathBuf, Footer)> = Vec::new();
        for rel in walk(&**store)? {
            // Delete files are never registered: publication writes them from the tombstones.
            if !rel.ends_with(".parquet")
                || known.contains(rel.as_str())
                || rel.starts_with(super::DELETES_DIR)
            {
                continue;
            }
            let abs = self.file_path(&rel);
            // A number this catalog reserved, with no row: a move's uncommitted output or a
            // compacted-away input, whose records are served elsewhere (or were removed).
            // Registering it would resurrect them; the next open deletes it.
            if file_seq(&rel).is_some_and(|seq| seq < reserved) {
                tracing::info!(path = %abs.display(), "not registering a move's leftover");
                continue;
            }
            // A file registered from its footer gets checksums of what it holds now.
            let opened = open(&rel).and_then(|f| Ok((f.summary()?, f.compute_sums()?)));
            match opened {
                Ok(s) => found.push((file_seq(&rel).unwrap_or(0), rel, abs, s)),
                Err(err) => self.report(ColdFileProblem::new(
                    None,
                    abs,
                    ProblemKind::Unreadable,
                    format!("not added to the catalog: {err}"),
                )),
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        // Served ranges: catalogued files that stay, then added files as they are accepted.
        let mut served: Vec<(i64, i64, String, Option<i64>)> = entries
            .iter()
            .filter(|e| !plan.remove.contains(&e.file_id))
            .map(|e| (e.min_id, e.max_id, e.path.clone(), Some(e.file_id)))
            .collect();
        for (_, rel, _abs, (summary, sums)) in found {
            let file = open(&rel)?;
            // Ids of served files overlapping this one (usually none), minus their tombstones.
            let mut taken: BTreeSet<i64> = BTreeSet::new();
            for (lo, hi, key, file_id) in &served {
                if *hi < summary.min_id || *lo > summary.max_id {
                    continue;
                }
                let dead: HashSet<i64> = match file_id {
                    Some(f) => self
                        .catalog()
                        .dead_ids(*f, summary.min_id, summary.max_id)?
                        .into_iter()
                        .collect(),
                    None => HashSet::new(),
                };
                for ids in open(key)?.ids()? {
                    taken.extend(
                        ids?.into_iter()
                            .filter(|id| (summary.min_id..=summary.max_id).contains(id))
                            .filter(|id| !dead.contains(id)),
                    );
                }
            }
            let mut dead = Vec::new();
            for ids in file.ids()? {
                let ids = ids?;
                let in_warm = self.catalog().in_warm(&ids)?;
                for (id, warm) in ids.into_iter().zip(in_warm) {
                    if warm || taken.contains(&id) {
                        dead.push(id);
                    }
                }
            }
            served.push((summary.min_id, summary.max_id, rel.clone(), None));
            let footer = file.footer_len().or_else(|| {
                store
                    .open(&rel)
                    .and_then(|f| {
                        super::archive::footer_len(&*f, summary.bytes, &self.file_path(&rel))
                    })
                    .ok()
            });
            plan.add.push((new_file(rel, &summary, sums, footer), dead));
        }
        Ok(plan)
    }
}
