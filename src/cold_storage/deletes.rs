//! Delete files: the tombstones of a day partition, published beside the data for outside
//! readers (DuckDB, Polars, Spark), as DuckLake does.
//!
//! - A partition `date=YYYY-MM-DD` has at most one catalogued delete file,
//!   `_deletes/date=YYYY-MM-DD/part-<seq>.parquet`, with one column `id` (BIGINT, ascending):
//!   the ids of every tombstone of the partition's files when it was written (possibly none:
//!   archival gives every partition it writes to a delete file). An archived row
//!   is live exactly when its id is in no delete file of its partition. The directory starts
//!   with `_`, so the data glob `cold/date=*/*.parquet` never reads it.
//! - A delete file is written like a data file (stage, fsync, publish, catalog commit, then
//!   the file it replaced is unlinked); its number is reserved first, so recovery removes an
//!   uncatalogued one like an orphan data file.
//! - A delete file is a snapshot: each publication writes the partition's whole list afresh
//!   and retires the previous file. Compaction writes the partition's new list in its own
//!   commit, so retired ids leave with the rows they covered.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::store::partition_of;
use super::ColdArchiveStorage;
use crate::catalog::DeleteFileEntry;
use crate::error::{Error, Result};
use crate::failpoint::crash_point;
use crate::record::Record;

/// Directory of the delete files inside the cold directory.
pub const DELETES_DIR: &str = "_deletes";

/// Ids per Arrow batch written to a delete file.
const BATCH_IDS: usize = 65_536;

/// The schema of a delete file: one non-null BIGINT column `id`.
pub(crate) fn delete_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Write and publish the delete file of `partition` listing `ids` (ascending, unique):
    /// staged, fsynced, published (renamed into place, directory fsynced). Not catalogued yet.
    /// Blocking. With no ids the file is empty: every partition keeps a delete file, so the
    /// delete glob always matches something (DuckDB refuses a glob that matches nothing).
    pub(crate) fn write_delete_file(
        &self,
        partition: &str,
        ids: &[i64],
    ) -> Result<DeleteFileEntry> {
        let key = format!(
            "{DELETES_DIR}/{partition}/part-{:012}.parquet",
            self.next_seq()?
        );
        let store = Arc::clone(self.store());
        let path = store.path_of(&key);
        let write = || -> Result<u64> {
            let staged = store.stage(&key)?;
            let level = ZstdLevel::try_new(3).expect("valid zstd level");
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(level))
                .set_dictionary_enabled(false)
                .build();
            let io = |e: parquet::errors::ParquetError| {
                Error::cold_file(&path, format!("cannot write delete file: {e}"))
            };
            let mut writer =
                ArrowWriter::try_new(staged, delete_schema(), Some(props)).map_err(io)?;
            // An empty file still has the schema (a footer with no row group).
            for chunk in ids.chunks(BATCH_IDS) {
                let col: ArrayRef = Arc::new(Int64Array::from(chunk.to_vec()));
                let batch = RecordBatch::try_new(delete_schema(), vec![col])
                    .map_err(|e| Error::cold_file(&path, format!("delete batch: {e}")))?;
                writer.write(&batch).map_err(io)?;
            }
            writer.finish().map_err(io)?;
            let bytes = writer.inner_mut().sync()?;
            crash_point("deletes:temp_written");
            if store.is_remote() {
                // An upload whose commit never comes is found by its intent, not by a LIST.
                self.catalog().record_intents(std::slice::from_ref(&key))?;
            }
            store.publish(&key)?;
            // A short write or a cut-off upload must not get catalogued: outside readers
            // would fail on it (or miss its ids).
            match store.len(&key) {
                Ok(Some(n)) if n == bytes => Ok(bytes),
                found => {
                    if let Err(e) = store.delete(&key) {
                        tracing::warn!(key, error = %e, "could not remove a short delete file; the next open will");
                    }
                    Err(match found {
                        Err(e) => e,
                        Ok(n) => Error::Io {
                            op: "publish delete file",
                            path: path.clone(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::WriteZero,
                                format!("{} of {bytes} bytes published", n.unwrap_or(0)),
                            ),
                        },
                    })
                }
            }
        };
        match write() {
            Ok(bytes) => {
                crash_point("deletes:published");
                Ok(DeleteFileEntry {
                    partition: partition.to_owned(),
                    path: key,
                    rows: ids.len() as u64,
                    bytes,
                })
            }
            Err(e) => {
                if let Err(d) = store.discard_staged(&key) {
                    tracing::warn!(key, error = %d, "could not remove a staged delete file; the next open will");
                }
                Err(e)
            }
        }
    }

    /// Unlink a delete file the catalog no longer references (retired by a publication or a
    /// compaction), durably. A file that cannot be removed is only logged: it is
    /// uncatalogued, and the next open removes it.
    pub(crate) fn remove_delete_file(&self, key: &str) -> Result<()> {
        if self.store().is_remote() {
            // Its intent was recorded before the commit that retired it: the sweep deletes
            // it after the grace period (an outside reader may still be reading it).
            return Ok(());
        }
        match self.store().delete(key) {
            Ok(()) => self.store().sync(partition_of(key)),
            Err(e) => {
                tracing::warn!(key, error = %e, "could not remove a retired delete file; the next open will");
                Ok(())
            }
        }
    }
}
