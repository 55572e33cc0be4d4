//! Protects crash-safe tier moves (DESIGN invariants 2 and 3): a process that aborts at any step
//! of an archival or a compaction (every name in `CRASH_POINTS`) leaves a store that, once
//! reopened, serves every record exactly once in its newest version (by id, by signature, in
//! scans), keeps no temp or uncatalogued file, verifies clean, and finishes the interrupted move
//! when it is run again.
//!
//! Each test prepares a store in the parent (records over several days, archived in several
//! passes so partitions hold several small files, some archived records updated or removed so
//! files hold dead rows), then re-runs this test binary as a child process with
//! `TIERED_STORAGE_CRASH_AT=<point>`; the child runs the move and aborts at the point. The parent
//! then inspects the directory, reopens the store and checks it against its model.
//!
//! With the `s3` feature, every crash test runs a second time with the cold tier in a bucket
//! of the S3 test server (`on_s3::*`, feature `s3`; `scripts/test.sh` starts the server, and
//! without it they print `SKIPPED`, or fail under `TIERED_STORAGE_S3_REQUIRED=1`): the
//! objects are files on the server's disk, checked the same way as the local cold directory,
//! and the uploads a crash left uncatalogued are gone after the reopen (their intents are
//! swept with `orphan_grace_secs = 0`). The data directory then holds `s3-target.txt`
//! (endpoint, bucket, prefix, objects directory), which the child reads too.
//!
//! Crash points exist only with the `failpoints` feature, so this file is built only with it
//! (`required-features` in Cargo.toml): `cargo test --features failpoints --test cold_crash`
//! (`--features failpoints,s3` for the S3 variants).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use tiered_storage::{
    AutoTieringCoordinator, FileState, Outcome, ScanRange, StorageConfig, StorageTier,
    TransactionRecord, CRASH_AT_ENV, CRASH_POINTS,
};

type Store = AutoTieringCoordinator<TransactionRecord>;

/// Set in the child process: the data directory prepared by the parent.
const CHILD_DIR_ENV: &str = "TIERED_STORAGE_COLD_CRASH_CHILD_DIR";

mod common;
#[cfg(feature = "s3")]
#[path = "common/s3.rs"]
mod s3env;
use common::{runtime, DAY, T0};

/// In a data directory: where its cold tier is in S3 (see the module doc).
const S3_TARGET_FILE: &str = "s3-target.txt";

/// The S3 bucket of a store under test: `endpoint`, `bucket`, `prefix`, and the directory of
/// its objects on the server's disk.
#[derive(Debug, Clone)]
struct S3Target {
    endpoint: String,
    bucket: String,
    prefix: String,
    objects: PathBuf,
}

fn s3_target(dir: &Path) -> Option<S3Target> {
    let text = std::fs::read_to_string(dir.join(S3_TARGET_FILE)).ok()?;
    let mut lines = text.lines().map(str::to_owned);
    Some(S3Target {
        endpoint: lines.next()?,
        bucket: lines.next()?,
        prefix: lines.next()?,
        objects: PathBuf::from(lines.next()?),
    })
}

/// Where the cold files of the store in `dir` are on disk: its cold directory, or its
/// objects on the S3 server's disk.
fn cold_root(dir: &Path) -> PathBuf {
    s3_target(dir).map_or_else(|| dir.join("cold"), |t| t.objects)
}

/// Files a move writes before it publishes them: `*.tmp` beside the cold files, and for an
/// object store the staged files in `<data_dir>/cold-staging`.
fn temp_files(dir: &Path) -> BTreeSet<String> {
    let mut out = cold_files_on_disk(dir, ".tmp");
    if s3_target(dir).is_some() {
        out.extend(
            walk(&dir.join("cold-staging"))
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned()),
        );
    }
    out
}
/// The child's archival moves every record of the first three days.
const ARCHIVE_CUTOFF: i64 = T0 + 3 * DAY;

fn config(dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 40;
    c.cold.target_file_mib = 1;
    // Three days per pass but two open files: a third day closes the fullest file early, so
    // one pass writes several files per partition.
    c.cold.max_open_partitions = 2;
    // Files hold more rows than a settle step, so an archival's settling takes several steps
    // and `archive:settling` is reached mid-file.
    c.warm.settle_chunk_rows = 16;
    if let Some(t) = s3_target(dir) {
        c.cold.store = format!("s3://{}/{}", t.bucket, t.prefix);
        c.cold.s3_endpoint = Some(t.endpoint);
        c.cold.s3_region = Some("us-east-1".to_owned());
        c.cold.s3_allow_http = true;
        // A crash's uploads without a catalog row are swept at the next open.
        c.cold.orphan_grace_secs = 0;
    }
    c
}

async fn open(dir: &Path) -> Store {
    AutoTieringCoordinator::open(config(dir))
        .await
        .expect("open")
}

fn record(n: u64) -> TransactionRecord {
    common::record(n, "crashsig")
}

/// What must (and must not) be readable after the crash.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<i64, TransactionRecord>,
    /// Removed ids: never readable again.
    removed: Vec<i64>,
    /// Signatures that were renamed away or removed: no longer resolve to anything.
    stale_signatures: Vec<String>,
}

impl Model {
    async fn put(&mut self, store: &Store, mut r: TransactionRecord) {
        let id = store.put(&r).await.unwrap();
        r.id = Some(id);
        self.live.insert(id, r);
    }

    async fn fill(&mut self, store: &Store, range: std::ops::Range<u64>) {
        for n in range {
            self.put(store, record(n)).await;
        }
    }

    /// Update `id` (same day, so its partition does not change); `rename` changes its
    /// signature too.
    async fn update(&mut self, store: &Store, id: i64, rename: bool) {
        let mut r = self.live[&id].clone();
        r.final_sol_received = Some(id as f64 / 7.0);
        r.actual_outcome = Outcome::Profit(id as f64);
        r.timestamp_decision_made += 1;
        if rename {
            self.stale_signatures
                .push(r.transaction_signature.clone().unwrap());
            r.transaction_signature = Some(format!("renamed-{id:0>70}-after-archival"));
        }
        store.update(&r).await.unwrap();
        self.live.insert(id, r);
    }

    async fn remove(&mut self, store: &Store, id: i64) {
        store.remove(id).await.unwrap();
        let r = self.live.remove(&id).unwrap();
        self.removed.push(id);
        self.stale_signatures.push(r.transaction_signature.unwrap());
    }

    /// Live ids that warm does not hold: archived.
    async fn archived_ids(&self, store: &Store) -> Vec<i64> {
        let mut out = Vec::new();
        for &id in self.live.keys() {
            if !store.warm_tier().contains(id).await.unwrap() {
                out.push(id);
            }
        }
        out
    }
}

/// The parent's setup: several archival passes over three days, so partitions hold several
/// small files; archived records updated (back to warm, cold copy tombstoned), renamed and
/// removed, so files hold dead rows; warm rows left for the child's archival, old and new.
async fn prepare(dir: &Path) -> Model {
    let store = open(dir).await;
    let mut m = Model::default();
    m.fill(&store, 0..240).await;
    // Warm updates before any archival: rows with rev > 1.
    let ids: Vec<i64> = m.live.keys().copied().step_by(7).collect();
    for id in ids {
        m.update(&store, id, false).await;
    }
    store.archive_older_than(T0 + DAY).await.unwrap();
    m.fill(&store, 240..360).await;
    store.archive_older_than(T0 + 2 * DAY).await.unwrap();
    m.fill(&store, 360..480).await;
    store.archive_older_than(T0 + 2 * DAY).await.unwrap();
    // Dead rows in archived files: updates (some renamed) and removes of archived records.
    let archived = m.archived_ids(&store).await;
    assert!(archived.len() > 200, "{}", archived.len());
    for (i, &id) in archived.iter().enumerate().step_by(5) {
        match i % 3 {
            0 => m.update(&store, id, false).await,
            1 => m.update(&store, id, true).await,
            _ => m.remove(&store, id).await,
        }
    }
    // Re-archive the updated ones: the live copy is in a new file, the old one tombstoned.
    store.archive_older_than(T0 + 2 * DAY).await.unwrap();
    // More dead rows, and updated records waiting in warm for the child's pass.
    let archived = m.archived_ids(&store).await;
    for (i, &id) in archived.iter().enumerate().skip(2).step_by(11) {
        match i % 3 {
            0 => m.update(&store, id, true).await,
            1 => m.remove(&store, id).await,
            _ => m.update(&store, id, false).await,
        }
    }
    // Old records for the child's archival, and recent ones that stay warm.
    m.fill(&store, 480..600).await;
    for n in 600..640 {
        let mut r = record(n);
        r.timestamp_decision_made = T0 + 10 * DAY + n as i64;
        m.put(&store, r).await;
    }
    let stats = store.cold_tier().cold_stats().unwrap();
    assert!(stats.dead_rows > 10, "{stats:?}");
    assert!(stats.files >= 6, "{stats:?}");
    store.publish_deletes().await.unwrap();
    check(&store, &m, dir).await;
    drop(store);
    m
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Paths relative to the cold directory, `/`-separated, of files with this suffix.
fn cold_files_on_disk(dir: &Path, suffix: &str) -> BTreeSet<String> {
    let cold = cold_root(dir);
    walk(&cold)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .map(|p| {
            p.strip_prefix(&cold)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

/// The data files on disk (not the delete files under `_deletes/`).
fn data_files_on_disk(dir: &Path) -> BTreeSet<String> {
    cold_files_on_disk(dir, ".parquet")
        .into_iter()
        .filter(|p| !p.starts_with("_deletes/"))
        .collect()
}

fn catalog_paths(store: &Store) -> BTreeSet<String> {
    store
        .cold_tier()
        .files()
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect()
}

async fn scan_all(store: &Store, range: ScanRange, page: usize) -> Vec<TransactionRecord> {
    let mut cursor = store.scan(range, page).unwrap();
    let mut out = Vec::new();
    while let Some(p) = cursor.next_page().await.unwrap() {
        assert!(p.len() <= page, "page of {} > {page}", p.len());
        out.extend(p);
    }
    out
}

/// The whole contract after a crash: every live record exactly once, newest version, by id,
/// by signature and in scans; removed records and stale signatures gone; counts agree; the
/// directory holds exactly the catalogued files; verification is clean.
async fn check(store: &Store, m: &Model, dir: &Path) {
    if s3_target(dir).is_some() {
        // Replaced objects (compacted inputs, retired delete files) stay in the bucket until
        // the intent sweep (grace 0 here) deletes them.
        store.sweep_cold_intents().await.unwrap();
    }
    check_reads(store, m).await;
    assert_eq!(temp_files(dir), BTreeSet::new(), "temp files left");
    let mut catalogued = catalog_paths(store);
    catalogued.extend(
        store
            .cold_tier()
            .delete_files()
            .unwrap()
            .into_iter()
            .map(|d| d.path),
    );
    assert_eq!(
        cold_files_on_disk(dir, ".parquet"),
        catalogued,
        "Parquet files (data and delete files) on disk vs catalog"
    );
    let on_disk = data_files_on_disk(dir);
    // An outside reader applying the delete files sees exactly the store's cold tier.
    assert_eq!(
        common::outside_view_of(&cold_root(dir)),
        common::store_cold_view(store).await,
        "outside view (data glob minus delete files) vs the store's cold tier"
    );
    for e in store.cold_tier().files().unwrap() {
        assert_eq!(e.state, FileState::Live, "{e:?}");
    }
    let verify = store.verify_cold().await.unwrap();
    assert!(verify.problems.is_empty(), "{verify:?}");
    assert_eq!(verify.files_checked, on_disk.len() as u64, "{verify:?}");
    assert!(
        store.cold_tier().problems().is_empty(),
        "{:?}",
        store.cold_tier().problems()
    );
}

/// The read side of [`check`]: by id, by signature, in scans and in the counts. A read-only
/// open runs it on the directory exactly as the crash left it (it neither cleans up nor
/// settles), so the state between an archival's steps is checked too.
async fn check_reads(store: &Store, m: &Model) {
    store.hot_tier().clear();
    for (id, r) in &m.live {
        assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(r), "id {id}");
        let sig = r.transaction_signature.as_deref().unwrap();
        assert_eq!(
            store.get_by_signature(sig).await.unwrap().as_ref(),
            Some(r),
            "signature of {id}"
        );
    }
    for id in &m.removed {
        assert_eq!(store.get(*id).await.unwrap(), None, "removed id {id}");
    }
    for sig in &m.stale_signatures {
        assert_eq!(
            store.get_by_signature(sig).await.unwrap(),
            None,
            "stale signature {sig}"
        );
    }
    let expected: Vec<TransactionRecord> = m.live.values().cloned().collect();
    for page in [1, 7, 64, 1000] {
        let all = scan_all(store, ScanRange::default(), page).await;
        assert_eq!(all.len(), expected.len(), "full scan, page {page}");
        assert_eq!(all, expected, "full scan, page {page}");
    }
    // Scans from a later day start inside the id space and skip cold files by time.
    let since = T0 + 2 * DAY;
    let mut cursor = store.list_since_with_page_size(since, 50);
    let mut got = Vec::new();
    while let Some(r) = cursor.next().await.unwrap() {
        got.push(r);
    }
    let want: Vec<_> = m
        .live
        .values()
        .filter(|r| r.timestamp_decision_made >= since)
        .cloned()
        .collect();
    assert_eq!(got, want, "list_since({since})");

    let stats = store.get_stats().await.unwrap();
    assert_eq!(stats.total_records, m.live.len() as u64, "{stats:?}");
    assert_eq!(stats.warm_records + stats.cold_records, stats.total_records);
}

/// The child: open the prepared store and run the move that must abort at the crash point.
fn child(dir: &Path) {
    let point = std::env::var(CRASH_AT_ENV).expect("the child runs with a crash point");
    runtime().block_on(async {
        // A publication's points are reached in open, which publishes what the parent left
        // unpublished.
        let store = open(dir).await;
        if point.starts_with("deletes:") {
            let report = store.publish_deletes().await.unwrap();
            eprintln!("publication finished without reaching {point}: {report:?}");
        } else if point.starts_with("archive:") {
            let report = store.archive_older_than(ARCHIVE_CUTOFF).await.unwrap();
            eprintln!("archival finished without reaching {point}: {report:?}");
        } else {
            let report = store.compact_now().await.unwrap();
            eprintln!("compaction finished without reaching {point}: {report:?}");
        }
    });
}

/// What the parent saw before the child ran.
#[derive(Debug)]
struct Before {
    warm_records: u64,
    cold_records: u64,
    catalog: BTreeSet<String>,
    /// Delete files on disk.
    deletes: BTreeSet<String>,
    files: u64,
}

async fn snapshot(dir: &Path) -> Before {
    let store = open(dir).await;
    let stats = store.get_stats().await.unwrap();
    Before {
        warm_records: stats.warm_records,
        cold_records: stats.cold_records,
        catalog: catalog_paths(&store),
        deletes: store
            .cold_tier()
            .delete_files()
            .unwrap()
            .into_iter()
            .map(|d| d.path)
            .collect(),
        files: store.cold_tier().cold_stats().unwrap().files,
    }
}

/// Run the child at `point` and check the store afterwards; `s3`: with the cold tier in a
/// bucket of the S3 test server.
fn crash_at(test_name: &str, point: &str, s3: bool) {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        child(Path::new(&dir));
        return;
    }
    assert!(CRASH_POINTS.contains(&point), "unknown crash point {point}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    if s3 && !put_cold_in_s3(test_name, dir) {
        return;
    }
    let remote = s3_target(dir).is_some();
    let rt = runtime();
    let model = rt.block_on(prepare(dir));
    let mut model = model;
    let before = rt.block_on(snapshot(dir));
    if point.starts_with("deletes:") {
        // Changes to archived records left unpublished (no shutdown) for the child's open.
        rt.block_on(async {
            let store = open(dir).await;
            let archived = model.archived_ids(&store).await;
            for (i, &id) in archived.iter().enumerate().skip(1).step_by(13).take(6) {
                if i % 2 == 0 {
                    model.remove(&store, id).await;
                } else {
                    model.update(&store, id, false).await;
                }
            }
        });
    }
    assert!(before.warm_records > 100, "{before:?}");
    assert!(before.cold_records > 100, "{before:?}");

    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CRASH_AT_ENV, point)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child did not crash at {point}: {}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains(&format!("crash point {point}")),
        "the child failed, but not at crash point {point}: {}\nstderr:\n{stderr}",
        out.status
    );

    // The directory as the crash left it, before open reconciles it.
    let tmps = temp_files(dir);
    let parquet = data_files_on_disk(dir);
    let deletes_on_disk: BTreeSet<String> = cold_files_on_disk(dir, ".parquet")
        .into_iter()
        .filter(|p| p.starts_with("_deletes/"))
        .collect();
    let new_files: BTreeSet<String> = parquet.difference(&before.catalog).cloned().collect();
    let old_files_left = before.catalog.intersection(&parquet).count();
    if let Some(step) = point.strip_prefix("deletes:") {
        let new_deletes: BTreeSet<&String> = deletes_on_disk.difference(&before.deletes).collect();
        match step {
            "temp_written" => assert!(!tmps.is_empty(), "no temp file at {point}"),
            "published" | "catalogued" => {
                assert!(!new_deletes.is_empty(), "no new delete file at {point}")
            }
            // An object store deletes a retired delete file in the intent sweep, later.
            "retired" => assert!(
                remote || before.deletes.iter().any(|d| !deletes_on_disk.contains(d)),
                "no delete file retired at {point}"
            ),
            other => panic!("unexpected step {other}"),
        }
    }
    match point.split_once(':').unwrap().1 {
        _ if point.starts_with("deletes:") => {}
        "temp_written" => assert!(!tmps.is_empty(), "no temp file at {point}"),
        "published" | "catalogued" | "settling" | "committed" => {
            assert!(!new_files.is_empty(), "no new file at {point}: {parquet:?}")
        }
        // An object store deletes the inputs in the intent sweep, later.
        "old_removed" => assert!(
            remote || old_files_left < before.catalog.len(),
            "no compacted input removed at {point}"
        ),
        other => panic!("unexpected step {other}"),
    }
    if point == "compact:committed" {
        assert_eq!(
            old_files_left,
            before.catalog.len(),
            "inputs removed before {point}"
        );
    }

    // Between an archival's catalog commit and the end of its settling, a file's rows above
    // its settled-through id are also in warm (or were removed or updated there): a read-only
    // open sees the directory as the crash left it, and still reads each record once.
    if point == "archive:catalogued" || point == "archive:settling" {
        rt.block_on(async {
            let reader = Store::open_read_only(config(dir))
                .await
                .expect("read-only open");
            let unsettled: Vec<_> = reader
                .cold_tier()
                .files()
                .unwrap()
                .into_iter()
                .filter(|e| !e.is_settled())
                .collect();
            assert!(!unsettled.is_empty(), "no file left settling at {point}");
            if point == "archive:settling" {
                assert!(
                    unsettled.iter().any(|e| e.settled_upto >= e.min_id),
                    "no file settled part-way at {point}: {unsettled:?}"
                );
            }
            check_reads(&reader, &model).await;
        });
    }

    rt.block_on(async {
        let store = open(dir).await;
        // Open finished the interrupted settling.
        assert!(
            store
                .cold_tier()
                .files()
                .unwrap()
                .iter()
                .all(|e| e.is_settled()),
            "a file is still settling after open"
        );
        let stats = store.get_stats().await.unwrap();
        let catalog = catalog_paths(&store);
        match point {
            // Nothing committed: warm still holds the records, the catalog is unchanged, and
            // the published-but-uncommitted file was removed on open.
            // (Archival may have rewritten a file holding superseded copies of records it
            // archives again into that file's partition, before publishing: a compaction of
            // that file, so the catalog can differ from `before` by such replacements.)
            "archive:temp_written" | "archive:published" => {
                assert_eq!(stats.warm_records, before.warm_records, "{stats:?}");
                assert_eq!(stats.cold_records, before.cold_records, "{stats:?}");
            }
            // One file committed: its rows left warm in the same transaction. The next file
            // may already have been published (commits overlap writing the next file): it was
            // not committed, so open removed it.
            "archive:catalogued" | "archive:settling" | "archive:committed" => {
                assert!(stats.warm_records < before.warm_records, "{stats:?}");
                assert!(stats.cold_records > before.cold_records, "{stats:?}");
                assert!(
                    new_files.iter().any(|f| catalog.contains(f)),
                    "no new file catalogued: {new_files:?}"
                );
                for f in new_files.iter().filter(|f| !catalog.contains(*f)) {
                    assert!(
                        !cold_root(dir).join(f).exists(),
                        "uncommitted file {f} left on disk"
                    );
                }
            }
            // A publication changes no record and no data file.
            _ if point.starts_with("deletes:") => {
                assert_eq!(catalog, before.catalog);
                assert_eq!(stats.total_records, model.live.len() as u64, "{stats:?}");
            }
            "compact:temp_written" | "compact:published" => {
                assert_eq!(catalog, before.catalog);
                assert_eq!(stats.warm_records, before.warm_records, "{stats:?}");
                assert_eq!(stats.cold_records, before.cold_records, "{stats:?}");
            }
            // The catalog switch committed: the merged file replaces its inputs.
            "compact:committed" | "compact:old_removed" => {
                assert_ne!(catalog, before.catalog);
                assert!(
                    (catalog.len() as u64) < before.files,
                    "{catalog:?} vs {before:?}"
                );
                assert!(!catalog.is_superset(&before.catalog), "no input replaced");
                assert!(
                    catalog.difference(&before.catalog).count() >= 1,
                    "no merged file catalogued"
                );
                assert_eq!(stats.warm_records, before.warm_records, "{stats:?}");
                assert_eq!(stats.cold_records, before.cold_records, "{stats:?}");
            }
            _ => unreachable!(),
        }
        check(&store, &model, dir).await;

        // Finish the interrupted move: still exactly once, and it completes.
        if point.starts_with("deletes:") {
            let again = store.publish_deletes().await.unwrap();
            assert_eq!(again.partitions, 0, "open published everything: {again:?}");
        } else if point.starts_with("archive:") {
            store.archive_older_than(ARCHIVE_CUTOFF).await.unwrap();
            let stats = store.get_stats().await.unwrap();
            let recent = model
                .live
                .values()
                .filter(|r| r.timestamp_decision_made >= ARCHIVE_CUTOFF)
                .count();
            assert_eq!(stats.warm_records, recent as u64, "{stats:?}");
            let again = store.archive_older_than(ARCHIVE_CUTOFF).await.unwrap();
            assert_eq!(again.files, 0, "{again:?}");
        } else {
            store.compact_now().await.unwrap();
            let cold = store.cold_tier().cold_stats().unwrap();
            assert_eq!(cold.dead_rows, 0, "{cold:?}");
            let mut per_partition: BTreeMap<String, usize> = BTreeMap::new();
            for path in catalog_paths(&store) {
                *per_partition
                    .entry(path.rsplit_once('/').unwrap().0.to_owned())
                    .or_default() += 1;
            }
            assert!(
                per_partition.values().all(|&n| n == 1),
                "small files left unmerged: {per_partition:?}"
            );
            let again = store.compact_now().await.unwrap();
            assert_eq!(again.files_in, 0, "{again:?}");
        }
        check(&store, &model, dir).await;
        drop(store);
        let store = open(dir).await;
        check(&store, &model, dir).await;
    });
}

/// Give the store in `dir` its cold tier in a fresh prefix of the S3 test server's bucket;
/// false (after printing why) when there is no server.
#[cfg(feature = "s3")]
fn put_cold_in_s3(test_name: &str, dir: &Path) -> bool {
    let Some(env) = s3env::S3Env::get(test_name) else {
        return false;
    };
    let prefix = s3env::S3Env::unique_prefix("crash");
    let objects = env.objects_dir(&prefix);
    std::fs::write(
        dir.join(S3_TARGET_FILE),
        format!(
            "{}\n{}\n{prefix}\n{}\n",
            env.endpoint,
            env.bucket,
            objects.display()
        ),
    )
    .unwrap();
    true
}

#[cfg(not(feature = "s3"))]
fn put_cold_in_s3(_test_name: &str, _dir: &Path) -> bool {
    unreachable!("the S3 variants are built with the `s3` feature only")
}

macro_rules! crash_tests {
    ($($name:ident => $point:literal,)*) => {
        $(
            #[test]
            fn $name() {
                crash_at(stringify!($name), $point, false);
            }
        )*

        /// The same crash tests with the cold tier in a bucket of the S3 test server.
        #[cfg(feature = "s3")]
        mod on_s3 {
            $(
                #[test]
                fn $name() {
                    super::crash_at(concat!("on_s3::", stringify!($name)), $point, true);
                }
            )*
        }

        #[test]
        fn cold_crash_tests_cover_every_crash_point() {
            let covered: BTreeSet<&str> = [$($point),*].into_iter().collect();
            let all: BTreeSet<&str> = CRASH_POINTS.iter().copied().collect();
            assert_eq!(covered, all);
        }
    };
}

crash_tests! {
    cold_crash_at_archive_temp_written => "archive:temp_written",
    cold_crash_at_archive_published => "archive:published",
    cold_crash_at_archive_catalogued => "archive:catalogued",
    cold_crash_at_archive_settling => "archive:settling",
    cold_crash_at_archive_committed => "archive:committed",
    cold_crash_at_compact_temp_written => "compact:temp_written",
    cold_crash_at_compact_published => "compact:published",
    cold_crash_at_compact_committed => "compact:committed",
    cold_crash_at_compact_old_removed => "compact:old_removed",
    cold_crash_at_deletes_temp_written => "deletes:temp_written",
    cold_crash_at_deletes_published => "deletes:published",
    cold_crash_at_deletes_catalogued => "deletes:catalogued",
    cold_crash_at_deletes_retired => "deletes:retired",
}

/// Set in the child of the first-archival test: a fresh data directory.
const FIRST_ARCHIVAL_ENV: &str = "TIERED_STORAGE_FIRST_ARCHIVAL_CHILD_DIR";

/// Regression: a crash between publish and commit in a store's very first archival left
/// Parquet files beside an empty catalog. Open kept them and advised `rebuild_cold_catalog`,
/// which then served removed records again. Now the file's number was reserved in the catalog
/// before the file existed, so open knows it for a move's leftover: it is removed, no alert is
/// raised, and a rebuild resurrects nothing.
#[test]
fn cold_crash_in_the_first_archival_then_removes_never_resurrect() {
    const TEST: &str = "cold_crash_in_the_first_archival_then_removes_never_resurrect";
    if let Some(dir) = std::env::var_os(FIRST_ARCHIVAL_ENV) {
        runtime().block_on(async {
            let store = open(Path::new(&dir)).await;
            for n in 0..300 {
                store.put(&record(n)).await.unwrap();
            }
            store.archive_older_than(ARCHIVE_CUTOFF).await.unwrap();
        });
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(FIRST_ARCHIVAL_ENV, dir)
        .env(CRASH_AT_ENV, "archive:published")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("crash point archive:published"),
        "{}\n{stderr}",
        out.status
    );
    assert!(
        !data_files_on_disk(dir).is_empty(),
        "the crash left a published file"
    );
    runtime().block_on(async {
        let store = open(dir).await;
        assert!(
            store.cold_tier().problems().is_empty(),
            "a crash leftover is not a lost catalog: {:?}",
            store.cold_tier().problems()
        );
        assert!(
            data_files_on_disk(dir).is_empty(),
            "the uncommitted file is removed on open"
        );
        assert!(store
            .get_alerts()
            .await
            .iter()
            .all(|a| a.severity != tiered_storage::AlertSeverity::Critical));
        let ids: Vec<i64> = (1..=300).collect();
        for &id in &ids[..150] {
            store.remove(id).await.unwrap();
        }
        let report = store.rebuild_cold_catalog().await.unwrap();
        assert_eq!((report.added, report.tombstoned), (0, 0), "{report:?}");
        for &id in &ids[..150] {
            assert!(store.get(id).await.unwrap().is_none(), "{id} resurrected");
        }
        for &id in &ids[150..] {
            assert!(store.get(id).await.unwrap().is_some(), "{id} lost");
        }
        // The archival then completes, and a rebuild still changes nothing.
        store.archive_older_than(ARCHIVE_CUTOFF).await.unwrap();
        let report = store.rebuild_cold_catalog().await.unwrap();
        assert_eq!((report.added, report.removed), (0, 0), "{report:?}");
        assert_eq!(store.get_stats().await.unwrap().total_records, 150);
    });
}
