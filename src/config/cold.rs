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

    /// The false-positive rate of the bloom filters.
    pub(crate) fn bloom_filter_fpp(&self) -> f64 {
        BLOOM_FILTER_FPP
    }

    /// The target file size in bytes.
    pub fn target_file_bytes(&self) -> u64 {
        self.target_file_mib * 1024 * 1024
    }
}
