//! The cold-file catalog's types: stored by the warm tier (in its SQLite database, as in
//! DuckLake), read by the cold tier through [`ColdCatalog`].

use serde::Serialize;

use crate::error::Result;

/// Whether a cold file is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FileState {
    /// Readable and served.
    Live,
    /// Missing, truncated or unreadable: reads of the records it holds fail with
    /// [`Error::ColdFile`](crate::Error::ColdFile) until it is restored or the catalog rebuilt.
    Quarantined,
}

impl FileState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileState::Live => "live",
            FileState::Quarantined => "quarantined",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        if s == "live" {
            FileState::Live
        } else {
            FileState::Quarantined
        }
    }
}

/// One cold file as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// Catalog key.
    pub file_id: i64,
    /// Path relative to the cold directory, `/`-separated: `date=YYYY-MM-DD/part-N.parquet`.
    pub path: String,
    /// Smallest record id in the file.
    pub min_id: i64,
    /// Largest record id in the file.
    pub max_id: i64,
    /// Earliest record timestamp, Unix ms.
    pub min_ts: i64,
    /// Latest record timestamp, Unix ms.
    pub max_ts: i64,
    /// Rows written to the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Rows superseded by a newer version or deleted since (tombstones).
    pub dead_rows: u64,
    /// Whether the file is served.
    pub state: FileState,
    /// The file's settled-through id: rows with a larger id are not served from it yet (an
    /// archival commits the catalog row first, then deletes the warm rows in small steps; until
    /// a row's step, its warm row is authoritative). `i64::MAX` once the file is settled.
    pub settled_upto: i64,
    /// Rows above `settled_upto` (not served from the file yet).
    pub unsettled_rows: u64,
    /// The object's ETag, when the store gave one at upload (object stores).
    pub etag: Option<String>,
    /// Length of the file's tail, when known: its page index and footer (metadata plus the
    /// 8-byte tail), all an open reads (`ColdFile::footer_len`), so that an uncached open is
    /// one suffix read. A shorter value (the footer alone) is still correct, at the cost of
    /// a second read for the page index.
    pub footer_len: Option<u64>,
}

impl CatalogEntry {
    /// Rows still live in the file.
    pub fn live_rows(&self) -> u64 {
        self.rows
            .saturating_sub(self.dead_rows)
            .saturating_sub(self.unsettled_rows)
    }

    /// Whether every row of the file is settled (its warm rows deleted or its copies
    /// tombstoned): only such a file may be compacted.
    pub fn is_settled(&self) -> bool {
        self.settled_upto >= self.max_id
    }

    /// Whether the file serves its copy of `id` (it may still be tombstoned).
    pub fn serves(&self, id: i64) -> bool {
        id <= self.settled_upto
    }
}

/// A file ready to be catalogued: its path and what its footer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewFile {
    pub path: String,
    pub min_id: i64,
    pub max_id: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub rows: u64,
    pub bytes: u64,
    /// Checksums of the file's pages and footer (see `cold_storage::checksum`).
    pub page_sums: Option<Vec<u8>>,
    /// The object's ETag, when the store gave one at upload (object stores).
    pub etag: Option<String>,
    /// Length of the file's tail, when known: its page index and footer (metadata plus the
    /// 8-byte tail), all an open reads (`ColdFile::footer_len`), so that an uncached open is
    /// one suffix read. A shorter value (the footer alone) is still correct, at the cost of
    /// a second read for the page index.
    pub footer_len: Option<u64>,
}

/// An archived record that may carry a looked-up signature (its hash matches), with the
/// catalogued files that may hold it, as one snapshot saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchivedCopy {
    /// The record's id.
    pub id: i64,
    /// Files covering the id with no tombstone for it; the record is in at most one.
    pub files: Vec<CatalogEntry>,
}

/// The catalog queries the cold tier makes on its own: for moves, recovery, statistics and
/// direct tier access. The store's reads never use it: they hand the cold tier the files to
/// read, found in the same snapshot as the warm miss. Each call answers from one database
/// snapshot.
pub(crate) trait ColdCatalog: Send + Sync {
    /// Catalogued files that cover `id` with no tombstone for it.
    fn covering(&self, id: i64) -> Result<Vec<CatalogEntry>>;
    /// Ids that the signature index maps `sig_hash` to and that have no warm row (archived
    /// records).
    fn archived_ids(&self, sig_hash: i64) -> Result<Vec<i64>>;
    /// Every catalogued file.
    fn entries(&self) -> Result<Vec<CatalogEntry>>;
    /// Tombstoned ids of a file within `[lo, hi]`, ascending.
    fn dead_ids(&self, file_id: i64, lo: i64, hi: i64) -> Result<Vec<i64>>;
    /// Which of `ids` are in warm.
    fn in_warm(&self, ids: &[i64]) -> Result<Vec<bool>>;
    /// The page checksums of a catalogued file, if it has them.
    fn page_sums(&self, file_id: i64) -> Result<Option<Vec<u8>>>;
    /// The first cold file sequence number not yet reserved by a move: every file this store
    /// ever wrote has a lower one.
    fn reserved_file_seq(&self) -> Result<u64>;
    /// Reserve `count` file sequence numbers, at least `floor`, durably (blocking; not on an
    /// async worker). Returns the first.
    fn reserve_file_seqs(&self, floor: u64, count: u64) -> Result<u64>;
    /// Every catalogued delete file.
    fn delete_files(&self) -> Result<Vec<DeleteFileEntry>>;
    /// The partitions whose tombstones changed since their delete file was written.
    fn dirty_partitions(&self) -> Result<Vec<String>>;
    /// A partition's tombstones, dirty generation and delete file, in one snapshot.
    fn partition_dead(&self, partition: &str) -> Result<PartitionDead>;
    /// Record `keys` as intents (`cold_intents`), durably, before the objects are uploaded or
    /// uncatalogued (blocking; not on an async worker). A key already recorded keeps its time.
    fn record_intents(&self, keys: &[String]) -> Result<()>;
    /// Every intent, `(key, created_ms)`, oldest first.
    fn intents(&self) -> Result<Vec<(String, i64)>>;
    /// Whether `key` is catalogued (a data file or a delete file).
    fn is_catalogued(&self, key: &str) -> Result<bool>;
    /// Drop the intents of `keys` and their replica rows, durably (blocking): the sweep calls
    /// it once each uncatalogued key is deleted everywhere, or found catalogued.
    fn drop_intents(&self, keys: &[String]) -> Result<()>;
    /// Catalogued objects (data and delete files) that `replica` holds no copy of,
    /// `(key, bytes)`, oldest first, at most `limit`.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    fn replica_pending(&self, replica: &str, limit: usize) -> Result<Vec<(String, u64)>>;
    /// How far `replica` is behind: objects and bytes without a copy, and the creation time
    /// (Unix ms) of the oldest of them (`None` when it is caught up).
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    fn replica_lag(&self, replica: &str) -> Result<ReplicaLag>;
    /// Record that `replica` holds `key` (`bytes` long), durably (blocking).
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    fn mark_replicated(&self, replica: &str, key: &str, bytes: u64) -> Result<()>;
    /// Forget `replica`'s copy of `key` (found missing or damaged), durably (blocking).
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    fn unmark_replicated(&self, replica: &str, key: &str) -> Result<()>;
}

/// How far one replica is behind the primary ([`ColdCatalog::replica_lag`]).
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaLag {
    /// Catalogued objects the replica holds no copy of.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Creation time (Unix ms) of the oldest of them; `None` when caught up.
    pub oldest_ms: Option<i64>,
}

/// A catalog rebuilt from Parquet footers: rows to drop, files to add with their tombstones.
/// Catalogued files that are still on disk keep their rows and tombstones.
#[derive(Debug, Default)]
pub(crate) struct CatalogRebuild {
    /// Catalogued files whose file is gone.
    pub remove: Vec<i64>,
    /// Files found with no catalog row, each with the ids in it that must not be served
    /// (a newer copy exists in warm or in a newer file).
    pub add: Vec<(NewFile, Vec<i64>)>,
}

/// One catalogued delete file: the ids of a day partition's tombstones, published for outside
/// readers (`cold_storage/deletes.rs`). A partition has at most one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteFileEntry {
    /// The partition, `date=YYYY-MM-DD`.
    pub partition: String,
    /// Path relative to the cold directory: `_deletes/date=YYYY-MM-DD/part-N.parquet`.
    pub path: String,
    /// Ids listed.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// A delete-file publication for one partition, for its catalog commit: the new file (none
/// when the partition has no tombstone left) replaces the partition's current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeletePublish {
    /// The partition, `date=YYYY-MM-DD`.
    pub partition: String,
    /// The published new file, if any ids are listed.
    pub file: Option<DeleteFileEntry>,
    /// The partition's dirty generation the ids were read at (0: it was clean): the commit
    /// marks the partition clean only if no tombstone was added since.
    pub gen: i64,
}

/// A partition's tombstones, read in one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartitionDead {
    /// `(file_id, id)` of every tombstone of the partition's catalogued files.
    pub tombstones: Vec<(i64, i64)>,
    /// The partition's dirty generation (0: clean).
    pub gen: i64,
    /// The partition's current delete file.
    pub current: Option<DeleteFileEntry>,
}
