//! Protects the local range cache of an object-store cold tier (`cold.cache_dir`), through the
//! coordinator on a `memory://` bucket: a restart keeps the cache warm (a reopened store reads
//! the blocks it cached with no GET), a damaged cache block is detected, fetched again and
//! never served, and a cache directory that cannot be written (or a full one) is never an
//! error. GETs are counted by the store's own metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tiered_storage::{
    drop_memory_store, AutoTieringCoordinator, ObjectStoreMetrics, StorageConfig, TransactionRecord,
};

type Store = AutoTieringCoordinator<TransactionRecord>;

mod common;

/// The cold tier in `memory://<bucket>`, its cache in `cache_dir`.
fn config(dir: &Path, bucket: &str, cache_dir: &Path) -> StorageConfig {
    let mut c = common::cold_config(dir);
    c.cold.archive_batch_rows = 100;
    c.cold.store = format!("memory://{bucket}/cold");
    c.cold.cache_dir = Some(cache_dir.to_path_buf());
    c.cold.cache_max_bytes = 64 << 20;
    c
}

async fn open(config: StorageConfig) -> Store {
    AutoTieringCoordinator::open(config).await.expect("open")
}

/// Put records `range`, archive them all; returns them by id.
async fn archived(store: &Store, range: std::ops::Range<u64>) -> BTreeMap<i64, TransactionRecord> {
    let mut model = BTreeMap::new();
    for i in range {
        let mut r = common::record(i, "cachesig");
        let id = store.put(&r).await.unwrap();
        r.id = Some(id);
        model.insert(id, r);
    }
    store.archive_older_than(i64::MAX).await.unwrap();
    assert!(store.cold_tier().files().unwrap().len() >= 2);
    model
}

/// Read every record of `model` from cold (the hot tier emptied first).
async fn read_all(store: &Store, model: &BTreeMap<i64, TransactionRecord>) {
    store.hot_tier().clear();
    for (id, r) in model {
        assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(r), "id {id}");
    }
}

fn metrics(store: &Store) -> ObjectStoreMetrics {
    store.cold_tier().object_metrics().expect("an object store")
}

fn gets(store: &Store) -> u64 {
    metrics(store).stores[0].gets
}

async fn close(store: Store) {
    store.shutdown().await.unwrap();
    drop(store);
}

fn block_files(cache_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache_dir.join("blocks")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_cache_restart_keeps_it_warm_and_a_corrupt_block_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("range-cache");
    let bucket = "object-cache-restart";
    let store = open(config(dir.path(), bucket, &cache)).await;
    let model = archived(&store, 0..400).await;
    // Archival wrote every new file through to the cache: reading it costs no GET.
    read_all(&store, &model).await;
    assert_eq!(gets(&store), 0, "{:?}", metrics(&store));
    assert!(metrics(&store).cache.unwrap().hits > 0);
    close(store).await;

    // An empty cache: the reads fetch, and keep what they fetched.
    std::fs::remove_dir_all(&cache).unwrap();
    let store = open(config(dir.path(), bucket, &cache)).await;
    read_all(&store, &model).await;
    let cold = metrics(&store);
    assert!(cold.stores[0].gets > 0, "{cold:?}");
    assert!(cold.cache.as_ref().unwrap().misses > 0);
    close(store).await;
    assert!(!block_files(&cache).is_empty());

    // After a restart the same reads make no GET at all.
    let store = open(config(dir.path(), bucket, &cache)).await;
    read_all(&store, &model).await;
    let warm = metrics(&store);
    assert_eq!(warm.stores[0].gets, 0, "{warm:?}");
    let c = warm.cache.unwrap();
    assert!(c.hits > 0 && c.misses == 0 && c.bytes > 0, "{c:?}");
    assert_eq!(c.blocks as usize, block_files(&cache).len());
    close(store).await;

    // A flipped byte in every cached block: each is caught, fetched again, and every record
    // read is still right.
    for file in block_files(&cache) {
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.len() - 1;
        bytes[at] ^= 0x20;
        std::fs::write(&file, &bytes).unwrap();
    }
    let store = open(config(dir.path(), bucket, &cache)).await;
    read_all(&store, &model).await;
    let m = metrics(&store);
    let c = m.cache.unwrap();
    assert!(c.corrupt_blocks > 0, "{c:?}");
    assert_eq!(c.errors, 0, "{c:?}");
    assert!(m.stores[0].gets > 0);
    close(store).await;
    drop_memory_store(bucket);
}

/// Without the cache, a lookup is one GET once the file's metadata is cached, and opening a
/// file (footer and page index, with the catalog's footer length) is one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_cache_off_a_point_read_is_one_get() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = "object-cache-off";
    let mut c = config(dir.path(), bucket, &dir.path().join("unused"));
    c.cold.cache_max_bytes = 0;
    let store = open(c.clone()).await;
    let model = archived(&store, 0..400).await;
    close(store).await;
    let store = open(c).await;
    assert!(metrics(&store).cache.is_none());
    let files = store.cold_tier().files().unwrap();
    assert!(files.iter().all(|f| f.footer_len.is_some()));
    store.hot_tier().clear();
    let start = gets(&store);
    for (id, r) in &model {
        let before = gets(&store);
        assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(r), "id {id}");
        // The files are small: a lookup's pages share one coalesced GET, and the first
        // lookup in a file reads its tail in one more.
        let spent = gets(&store) - before;
        assert!((1..=2).contains(&spent), "id {id}: {spent} GETs");
    }
    // Each file's tail was read once (its metadata stays cached), each lookup one GET.
    assert_eq!(
        gets(&store) - start,
        model.len() as u64 + files.len() as u64,
        "{:?}",
        metrics(&store)
    );
    close(store).await;
    drop_memory_store(bucket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_cache_that_cannot_be_written_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // A cache directory under a regular file cannot be created (not even by root).
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let bucket = "object-cache-unwritable";
    let store = open(config(dir.path(), bucket, &file.join("cache"))).await;
    let model = archived(&store, 0..300).await;
    read_all(&store, &model).await;
    let m = metrics(&store);
    let c = m.cache.unwrap();
    assert!(c.errors >= 1 && c.hits == 0 && c.bytes == 0, "{c:?}");
    assert!(m.stores[0].gets > 0);
    close(store).await;

    // A cache directory removed under a running store: reads still succeed.
    let cache = dir.path().join("removed-cache");
    let store = open(config(dir.path(), bucket, &cache)).await;
    read_all(&store, &model).await;
    std::fs::remove_dir_all(&cache).unwrap();
    let more = archived(&store, 300..450).await;
    read_all(&store, &model).await;
    read_all(&store, &more).await;
    assert!(metrics(&store).cache.unwrap().errors >= 1);
    close(store).await;
    drop_memory_store(bucket);
}

/// As root with `TIERED_STORAGE_TMPFS=1`: the cache on a 2 MiB tmpfs that fills up. Archival
/// and reads succeed; the failed cache writes are counted errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_cache_on_a_full_disk_is_not_an_error() {
    if std::env::var("TIERED_STORAGE_TMPFS").as_deref() != Ok("1") {
        eprintln!("skipped: set TIERED_STORAGE_TMPFS=1 (as root) to mount a full tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("tmpfs");
    std::fs::create_dir(&mount).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(status.success(), "mount -t tmpfs failed (needs root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mount.clone());
    // Fill the disk first (a partial last write is fine).
    let _ = std::fs::write(mount.join("ballast"), vec![0u8; 2 << 20]);
    let bucket = "object-cache-full";
    let store = open(config(dir.path(), bucket, &mount)).await;
    let model = archived(&store, 0..600).await;
    read_all(&store, &model).await;
    let c = metrics(&store).cache.unwrap();
    assert!(c.errors >= 1, "{c:?}");
    close(store).await;
    drop_memory_store(bucket);
}
