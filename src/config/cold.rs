//! Cold tier (Parquet) settings.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default: ZSTD level 1 for the string columns of cold files. Measured here on 2.5M records:
/// level 1 gave 159.3 bytes/record and 261k records/s of archival, level 3 158.0 bytes/record
/// and 241k records/s (the signatures, most of the bytes, do not compress).
pub const DEFAULT_COLD_ZSTD_LEVEL: i32 = 1;
/// Default: 128 MiB, the size at which an archival or compaction output file is closed.
pub const DEFAULT_COLD_TARGET_FILE_MIB: u64 = 128;
/// Default: 131,072 rows per Parquet row group.
pub const DEFAULT_COLD_ROW_GROUP_ROWS: usize = 131_072;
/// Default: 1,024 rows per data page (small pages make point reads fast: measured 0.7 ms p95 at
/// 10M rows against 2.5 ms for 8k-row pages).
pub const DEFAULT_COLD_DATA_PAGE_ROWS: usize = 1024;
/// Default: 128 rows per data page of the ZSTD-compressed string columns (signatures,
/// mints, creators, messages). A point read decompresses one whole page of each: at 1,024
/// rows that was ~90 KiB for the signatures alone. The other columns keep
/// [`DEFAULT_COLD_DATA_PAGE_ROWS`]: they decode cheaply, and every page costs an entry in the
/// resident page index.
pub const DEFAULT_COLD_STRING_PAGE_ROWS: usize = 128;
/// Default: no Parquet bloom filters. Our own lookups never read them (ids go through the
/// page index, signatures through `sig_index`); they only help outside readers such as DuckDB.
pub const DEFAULT_COLD_BLOOM_FILTER_COLUMNS: &[&str] = &[];
/// False-positive rate of the bloom filters of `cold.bloom_filter_columns`.
const BLOOM_FILTER_FPP: f64 = 0.01;
/// Default: 8,192 warm rows read per archival step (keyset pagination by id).
pub const DEFAULT_COLD_ARCHIVE_BATCH_ROWS: usize = 8192;
/// Default: 4 day partitions written at once by one archival pass.
pub const DEFAULT_COLD_MAX_OPEN_PARTITIONS: usize = 4;
/// Default: 64 MiB of cached Parquet footers and page indexes.
pub const DEFAULT_COLD_METADATA_CACHE_MIB: u64 = 64;
/// Default threads running cold reads and scan pages.
pub const DEFAULT_COLD_READ_THREADS: usize = 4;
/// Default: a file below 1/4 of the target size is small and is merged by compaction.
pub const DEFAULT_COLD_COMPACT_SMALL_FRACTION: f64 = 0.25;
/// Default: a file whose rows are 20% superseded or deleted is rewritten by compaction.
pub const DEFAULT_COLD_COMPACT_DEAD_FRACTION: f64 = 0.2;
/// Default: 1 GiB of cold bytes cached on local disk when the cold tier is in object storage.
pub const DEFAULT_COLD_CACHE_MAX_BYTES: u64 = 1 << 30;
/// Default: an uploaded object without a catalog row, or a replaced one, is deleted by the
/// intent sweep 60 s after its intent was recorded. The store's own readers need no grace (a
/// read that finds its file gone locates the record again); the grace is for readers of the
/// bucket that are mid-query. It is short because until the sweep, a glob over the bucket
/// sees a compaction's inputs beside its output.
pub const DEFAULT_COLD_ORPHAN_GRACE_SECS: u64 = 60;
/// Default: 64 MiB/s of replication per replica (0: unlimited).
pub const DEFAULT_COLD_REPLICATION_MAX_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;
/// Default: the replication-lag alert fires when a replica's oldest missing object is older
/// than 300 s.
pub const DEFAULT_COLD_REPLICATION_LAG_ALERT_SECS: u64 = 300;
/// Default: 5 retries of a transient object-store error (timeout, 5xx, connection reset).
pub const DEFAULT_COLD_S3_MAX_RETRIES: usize = 5;
/// Default: a request (with its retries) to one object store gives up after 30 s.
pub const DEFAULT_COLD_S3_TIMEOUT_SECS: u64 = 30;
/// Default: a store that failed this many reads in a row raises the failover alert.
pub const DEFAULT_COLD_FAILOVER_ALERT_AFTER: u64 = 3;

/// A secret (an S3 secret key) that `Debug`, `Display` and serialization never print
/// (a serialized config, e.g. `config check --json`, shows `***`; it is read from TOML as is).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl Secret {
    /// Wrap `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (the S3 client).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A second object store that holds a copy of every cold object (`[[cold.replicas]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Name of the replica in metrics, alerts and the catalog's replica state. Default: its
    /// `store` URL, with the endpoint when one is set.
    pub name: Option<String>,
    /// `s3://bucket/prefix` (or `memory://name`).
    pub store: String,
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`.
    pub s3_endpoint: Option<String>,
    /// Region. Default: `AWS_REGION`, else `us-east-1`.
    pub s3_region: Option<String>,
    /// Allow plain HTTP to the endpoint.
    pub s3_allow_http: bool,
    /// Access key id. Default: `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// Secret access key. Default: `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<Secret>,
}

impl ReplicaConfig {
    /// The replica's name (see [`ReplicaConfig::name`]).
    pub fn display_name(&self) -> String {
        match (&self.name, &self.s3_endpoint) {
            (Some(n), _) => n.clone(),
            (None, Some(e)) => format!("{} at {e}", self.store),
            (None, None) => self.store.clone(),
        }
    }
}

/// Cold tier (Parquet) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdConfig {
    /// ZSTD compression level, 1–22. Default: [`DEFAULT_COLD_ZSTD_LEVEL`].
    pub zstd_level: i32,
    /// Output files are closed at about this size, MiB. Default: [`DEFAULT_COLD_TARGET_FILE_MIB`].
    pub target_file_mib: u64,
    /// Rows per row group. Default: [`DEFAULT_COLD_ROW_GROUP_ROWS`].
    pub row_group_rows: usize,
    /// Rows per data page. Default: [`DEFAULT_COLD_DATA_PAGE_ROWS`].
    pub data_page_rows: usize,
    /// Rows per data page of the ZSTD-compressed string and binary columns (capped at
    /// `data_page_rows`). Default: [`DEFAULT_COLD_STRING_PAGE_ROWS`].
    pub string_page_rows: usize,
    /// Top-level columns that get a Parquet bloom filter per row group (sized for the row
    /// group's rows at a 1% false-positive rate), for outside readers' equality filters, e.g.
    /// `["transaction_signature"]`. Default: none ([`DEFAULT_COLD_BLOOM_FILTER_COLUMNS`]).
    pub bloom_filter_columns: Vec<String>,
    /// Warm rows read per archival step. Default: [`DEFAULT_COLD_ARCHIVE_BATCH_ROWS`].
    pub archive_batch_rows: usize,
    /// Day partitions one archival pass writes at once; more days close the fullest file
    /// early. Default: [`DEFAULT_COLD_MAX_OPEN_PARTITIONS`].
    pub max_open_partitions: usize,
    /// Bytes of Parquet metadata (footers, page indexes) kept in memory, MiB.
    /// Default: [`DEFAULT_COLD_METADATA_CACHE_MIB`].
    pub metadata_cache_mib: u64,
    /// Threads that run cold reads and scan pages (the store's own, so the thread count stays
    /// fixed however many tasks read; a read waits for a free one). Default:
    /// [`DEFAULT_COLD_READ_THREADS`].
    pub read_threads: usize,
    /// Files smaller than this fraction of the target size are merged by compaction.
    /// Default: [`DEFAULT_COLD_COMPACT_SMALL_FRACTION`].
    pub compact_small_fraction: f64,
    /// Files with at least this fraction of superseded or deleted rows are rewritten by
    /// compaction. Default: [`DEFAULT_COLD_COMPACT_DEAD_FRACTION`].
    pub compact_dead_fraction: f64,
    /// Where cold files live: empty (the default) for `<data_dir>/cold` on local disk,
    /// `s3://bucket/prefix` for an S3 bucket (feature `s3`), or `memory://name` for an object
    /// store inside this process (tests). The layout is the same everywhere:
    /// `<prefix>/date=YYYY-MM-DD/part-N.parquet`.
    pub store: String,
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`. Default: AWS
    /// (or `AWS_ENDPOINT`).
    pub s3_endpoint: Option<String>,
    /// Region. Default: `AWS_REGION`, else `us-east-1`.
    pub s3_region: Option<String>,
    /// Allow plain HTTP to the endpoint.
    pub s3_allow_http: bool,
    /// Access key id. Default: `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// Secret access key, never printed by `Debug`. Default: `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<Secret>,
    /// Retries of a transient object-store error. Default: [`DEFAULT_COLD_S3_MAX_RETRIES`].
    pub s3_max_retries: usize,
    /// Seconds one object-store request may take with its retries before it fails (and a
    /// read fails over to the next store). Default: [`DEFAULT_COLD_S3_TIMEOUT_SECS`].
    pub s3_timeout_secs: u64,
    /// Local directory of the range cache of an object-store cold tier. Default:
    /// `<data_dir>/cold-cache`.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Bytes the range cache may hold on disk; 0 turns it off. Default:
    /// [`DEFAULT_COLD_CACHE_MAX_BYTES`].
    pub cache_max_bytes: u64,
    /// Seconds after its intent was recorded that an uncatalogued object (a crashed upload,
    /// a compacted input) is deleted. Default: [`DEFAULT_COLD_ORPHAN_GRACE_SECS`].
    pub orphan_grace_secs: u64,
    /// Secondary object stores that get a copy of every cold object. Default: none.
    pub replicas: Vec<ReplicaConfig>,
    /// Archival and compaction commits wait until every replica holds each new object.
    /// Default: false (a background replicator copies them after the commit).
    pub replication_sync: bool,
    /// Bytes per second the replicator copies to each replica; 0 is unlimited. Default:
    /// [`DEFAULT_COLD_REPLICATION_MAX_BYTES_PER_SEC`].
    pub replication_max_bytes_per_sec: u64,
    /// The replication-lag alert fires when a replica's oldest missing object is older than
    /// this. Default: [`DEFAULT_COLD_REPLICATION_LAG_ALERT_SECS`].
    pub replication_lag_alert_secs: u64,
    /// A store whose reads failed this many times in a row raises the failover alert.
    /// Default: [`DEFAULT_COLD_FAILOVER_ALERT_AFTER`].
    pub failover_alert_after: u64,
}

impl Default for ColdConfig {
    fn default() -> Self {
        Self {
            zstd_level: DEFAULT_COLD_ZSTD_LEVEL,
            target_file_mib: DEFAULT_COLD_TARGET_FILE_MIB,
            row_group_rows: DEFAULT_COLD_ROW_GROUP_ROWS,
            data_page_rows: DEFAULT_COLD_DATA_PAGE_ROWS,
            string_page_rows: DEFAULT_COLD_STRING_PAGE_ROWS,
            bloom_filter_columns: DEFAULT_COLD_BLOOM_FILTER_COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            archive_batch_rows: DEFAULT_COLD_ARCHIVE_BATCH_ROWS,
            max_open_partitions: DEFAULT_COLD_MAX_OPEN_PARTITIONS,
            metadata_cache_mib: DEFAULT_COLD_METADATA_CACHE_MIB,
            read_threads: DEFAULT_COLD_READ_THREADS,
            compact_small_fraction: DEFAULT_COLD_COMPACT_SMALL_FRACTION,
            compact_dead_fraction: DEFAULT_COLD_COMPACT_DEAD_FRACTION,
            store: String::new(),
            s3_endpoint: None,
            s3_region: None,
            s3_allow_http: false,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_max_retries: DEFAULT_COLD_S3_MAX_RETRIES,
            s3_timeout_secs: DEFAULT_COLD_S3_TIMEOUT_SECS,
            cache_dir: None,
            cache_max_bytes: DEFAULT_COLD_CACHE_MAX_BYTES,
            orphan_grace_secs: DEFAULT_COLD_ORPHAN_GRACE_SECS,
            replicas: Vec::new(),
            replication_sync: false,
            replication_max_bytes_per_sec: DEFAULT_COLD_REPLICATION_MAX_BYTES_PER_SEC,
            replication_lag_alert_secs: DEFAULT_COLD_REPLICATION_LAG_ALERT_SECS,
            failover_alert_after: DEFAULT_COLD_FAILOVER_ALERT_AFTER,
        }
    }
}

impl ColdConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=22).contains(&self.zstd_level) {
            return Err(Error::config("cold.zstd_level", "must be between 1 and 22"));
        }
        if self.target_file_mib == 0 || self.target_file_mib > 64 * 1024 {
            return Err(Error::config(
                "cold.target_file_mib",
                "must be between 1 and 65536",
            ));
        }
        if !(1024..=1 << 24).contains(&self.row_group_rows) {
            return Err(Error::config(
                "cold.row_group_rows",
                "must be between 1024 and 16777216",
            ));
        }
        if !(64..=1 << 20).contains(&self.data_page_rows) {
            return Err(Error::config(
                "cold.data_page_rows",
                "must be between 64 and 1048576",
            ));
        }
        if !(16..=1 << 20).contains(&self.string_page_rows) {
            return Err(Error::config(
                "cold.string_page_rows",
                "must be between 16 and 1048576",
            ));
        }
        if !(1..=1 << 20).contains(&self.archive_batch_rows) {
            return Err(Error::config(
                "cold.archive_batch_rows",
                "must be between 1 and 1048576",
            ));
        }
        if !(1..=64).contains(&self.max_open_partitions) {
            return Err(Error::config(
                "cold.max_open_partitions",
                "must be between 1 and 64",
            ));
        }
        if !(1..=256).contains(&self.read_threads) {
            return Err(Error::config(
                "cold.read_threads",
                "must be between 1 and 256",
            ));
        }
        if self.metadata_cache_mib == 0 || self.metadata_cache_mib > 1 << 20 {
            return Err(Error::config(
                "cold.metadata_cache_mib",
                "must be between 1 and 1048576",
            ));
        }
        validate_store_url("cold.store", &self.store, true)?;
        for r in &self.replicas {
            validate_store_url("cold.replicas.store", &r.store, false)?;
        }
        if !self.replicas.is_empty() && !self.is_object_store() {
            return Err(Error::config(
                "cold.replicas",
                "replicas need the cold tier in an object store (cold.store)",
            ));
        }
        if self.replication_sync && self.replicas.is_empty() {
            return Err(Error::config(
                "cold.replication_sync",
                "needs at least one entry in cold.replicas",
            ));
        }
        if self.s3_timeout_secs == 0 || self.s3_timeout_secs > 3600 {
            return Err(Error::config(
                "cold.s3_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        if self.s3_max_retries > 100 {
            return Err(Error::config("cold.s3_max_retries", "must be at most 100"));
        }
        if self.cache_max_bytes != 0 && self.cache_max_bytes < 4 << 20 {
            return Err(Error::config(
                "cold.cache_max_bytes",
                "must be 0 (off) or at least 4 MiB",
            ));
        }
        if self.failover_alert_after == 0 {
            return Err(Error::config(
                "cold.failover_alert_after",
                "must be at least 1",
            ));
        }
        for (field, v) in [
            ("cold.compact_small_fraction", self.compact_small_fraction),
            ("cold.compact_dead_fraction", self.compact_dead_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(field, "must be between 0.0 and 1.0"));
            }
        }
        Ok(())
    }

    /// Whether the cold tier is in an object store (`store` is set).
    pub fn is_object_store(&self) -> bool {
        !self.store.is_empty()
    }

    /// The false-positive rate of the bloom filters.
    pub(crate) fn bloom_filter_fpp(&self) -> f64 {
        BLOOM_FILTER_FPP
    }

    /// The target file size in bytes.
    pub fn target_file_bytes(&self) -> u64 {
        self.target_file_mib * 1024 * 1024
    }
}

/// Check a store URL: `s3://bucket[/prefix]` or `memory://name` (empty only where `empty_ok`).
fn validate_store_url(field: &'static str, url: &str, empty_ok: bool) -> Result<()> {
    if url.is_empty() {
        return if empty_ok {
            Ok(())
        } else {
            Err(Error::config(field, "must not be empty"))
        };
    }
    let rest = url
        .strip_prefix("s3://")
        .or_else(|| url.strip_prefix("memory://"))
        .ok_or_else(|| {
            Error::config(
                field,
                format!("{url:?}: expected s3://bucket/prefix or memory://name"),
            )
        })?;
    let bucket = rest.split('/').next().unwrap_or("");
    if bucket.is_empty() {
        return Err(Error::config(field, format!("{url:?} names no bucket")));
    }
    if rest.split('/').skip(1).any(|seg| seg == "." || seg == "..") {
        return Err(Error::config(
            field,
            format!("{url:?}: `.` and `..` are not allowed"),
        ));
    }
    if url.starts_with("s3://") && !cfg!(feature = "s3") {
        return Err(Error::config(
            field,
            "this build has no object-store support: build tiered-storage with the `s3` feature",
        ));
    }
    Ok(())
}
