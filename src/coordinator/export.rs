//! `export`: the records of a range, from all three tiers, to one Parquet (the archive's
//! columns) or CSV file, written under a temporary name beside the target, fsynced and renamed
//! into place, so a failed export leaves no file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int64Type, TimestampMillisecondType, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use super::{AutoTieringCoordinator, ScanRange};
use crate::error::{Error, Result};
use crate::record::Record;

/// Records fetched per page of the export's scan.
const EXPORT_PAGE: usize = 8192;
/// Rows per row group of an exported Parquet file.
const EXPORT_ROW_GROUP_ROWS: usize = 128 * 1024;

/// The file format of [`AutoTieringCoordinator::export_as`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExportFormat {
    /// Parquet with the archive's columns (`R::cold_schema()`), ZSTD.
    Parquet,
    /// CSV with a header line of the archive's column names; timestamps as Unix ms, maps as
    /// JSON objects.
    Csv,
}

impl ExportFormat {
    /// The format an extension names (`parquet`, `csv`; any case).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "parquet" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// The file written.
    pub path: PathBuf,
    /// Its format.
    pub format: ExportFormat,
    /// Records written.
    pub records: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

impl<R: Record> AutoTieringCoordinator<R> {
    /// Write the records `range` selects, from hot, warm and cold (the newest version of each,
    /// once, in id order), to `path`: Parquet for `.parquet`, CSV for `.csv`. See
    /// [`export_as`](Self::export_as).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, ScanRange, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// for t in 0..10 {
    ///     store.put(&TransactionRecord { timestamp_decision_made: t, ..Default::default() }).await?;
    /// }
    /// store.archive_older_than(5).await?; // half in cold, half in warm
    /// let report = store.export(ScanRange::default(), dir.path().join("all.parquet")).await?;
    /// assert_eq!(report.records, 10);
    /// # Ok(()) }
    /// ```
    pub async fn export(&self, range: ScanRange, path: impl AsRef<Path>) -> Result<ExportReport> {
        let path = path.as_ref();
        let format = ExportFormat::from_path(path).ok_or_else(|| {
            Error::invalid(format!(
                "export to {}: the extension picks the format: .parquet or .csv",
                path.display()
            ))
        })?;
        self.export_as(range, path, format).await
    }

    /// Write the records `range` selects to `path` in `format`. The file is written under a
    /// temporary name in the target's directory, fsynced and renamed over the target (then
    /// the directory is fsynced): a failed export leaves no file, and the target never holds a
    /// partial one. The records are read with the store's cross-tier scan (each window of ids
    /// from one snapshot of the catalog and warm; a record archived or compacted meanwhile is
    /// still read exactly once, in its newest version).
    pub async fn export_as(
        &self,
        range: ScanRange,
        path: impl AsRef<Path>,
        format: ExportFormat,
    ) -> Result<ExportReport> {
        range.validate::<R>()?;
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| Error::Io {
                op,
                path: p,
                source,
            }
        };
        let temp = TempFile::create(&dir)?;
        let file = temp
            .file
            .try_clone()
            .map_err(io("open export file", &temp.path))?;
        let schema = R::cold_schema();
        let sink = Sink::new(format, file, &path, schema.clone())?;
        // Every column, as Arrow batches in id order: cold rows go from the file's pages to the
        // export without becoming records (the archive's layout is the export's).
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut cursor = self.scan_columns(range, &names, EXPORT_PAGE)?;
        // Encoding and compression run on a thread of their own while the scan reads the next
        // batch on the read pool: the two halves overlap.
        let (batches, results) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let target = path.clone();
        std::thread::Builder::new()
            .name("tiered-storage-export".into())
            .spawn(move || {
                let mut sink = sink;
                let written = (|| {
                    for batch in results {
                        sink.write(&batch, &target)?;
                    }
                    sink.finish(&target)
                })();
                let _ = done_tx.send(written);
            })
            .map_err(io("start export writer", &path))?;
        let mut records = 0u64;
        let mut read_error = None;
        loop {
            match cursor.next_batch().await {
                Ok(Some(batch)) if batch.num_rows() == 0 => {}
                Ok(Some(batch)) => {
                    records += batch.num_rows() as u64;
                    let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                        .map_err(|e| write_err(&path, e))?;
                    if batches.send(batch).is_err() {
                        break; // the writer failed: its error is awaited below
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(batches);
        let written = done_rx.await.unwrap_or_else(|_| {
            Err(write_err(
                &path,
                "the export writer thread ended without an answer",
            ))
        });
        if let Some(e) = read_error {
            return Err(e);
        }
        written?;
        temp.persist(&path)?;
        super::backup::fsync_dir(&dir)?;
        let bytes = std::fs::metadata(&path)
            .map_err(io("stat export", &path))?
            .len();
        Ok(ExportReport {
            path,
            format,
            records,
            bytes,
        })
    }
}

/// The export's temporary file beside the target; removed unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    kept: bool,
}

impl TempFile {
    fn create(dir: &Path) -> Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = dir.join(format!(
            ".tiered-storage-export-{}-{nanos}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| Error::Io {
                op: "create export file",
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            file,
            kept: false,
        })
    }

    fn persist(mut self, to: &Path) -> Result<()> {
        std::fs::rename(&self.path, to).map_err(|source| Error::Io {
            op: "rename export into place",
            path: to.to_path_buf(),
            source,
        })?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

enum Sink {
    Parquet(Box<ArrowWriter<File>>),
    Csv { out: BufWriter<File>, header: bool },
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        op: "write export",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Sink {
    fn new(
        format: ExportFormat,
        file: File,
        path: &Path,
        schema: arrow_schema::SchemaRef,
    ) -> Result<Self> {
        Ok(match format {
            ExportFormat::Parquet => Sink::Parquet(Box::new(Self::parquet(file, path, schema)?)),
            ExportFormat::Csv => Sink::Csv {
                out: BufWriter::with_capacity(1 << 20, file),
                header: false,
            },
        })
    }

    fn parquet(
        file: File,
        path: &Path,
        schema: arrow_schema::SchemaRef,
    ) -> Result<ArrowWriter<File>> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).expect("valid zstd level"),
            ))
            .set_dictionary_enabled(false)
            // The writer buffers a row group's encoded pages: 128k rows keep that to tens of MB.
            .set_max_row_group_row_count(Some(EXPORT_ROW_GROUP_ROWS))
            .build();
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| write_err(path, e))
    }

    fn write(&mut self, batch: &RecordBatch, path: &Path) -> Result<()> {
        match self {
            Sink::Parquet(w) => w.write(batch).map_err(|e| write_err(path, e)),
            Sink::Csv { out, header } => {
                if !*header {
                    let names: Vec<String> = batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| csv_field(f.name()))
                        .collect();
                    writeln!(out, "{}", names.join(",")).map_err(|e| write_err(path, e))?;
                    *header = true;
                }
                let mut line = String::new();
                for row in 0..batch.num_rows() {
                    line.clear();
                    for (c, col) in batch.columns().iter().enumerate() {
                        if c > 0 {
                            line.push(',');
                        }
                        line.push_str(&csv_field(&cell(col.as_ref(), row)));
                    }
                    line.push('\n');
                    out.write_all(line.as_bytes())
                        .map_err(|e| write_err(path, e))?;
                }
                Ok(())
            }
        }
    }

    fn finish(self, path: &Path) -> Result<()> {
        let file = match self {
            Sink::Parquet(w) => w.into_inner().map_err(|e| write_err(path, e))?,
            Sink::Csv { out, .. } => out.into_inner().map_err(|e| write_err(path, e))?,
        };
        file.sync_all().map_err(|e| Error::Io {
            op: "fsync export",
            path: path.to_path_buf(),
            source: e,
        })
    }
}

/// A CSV field: quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One cell as text: empty for null, numbers as Rust prints them, timestamps as Unix ms,
/// maps as JSON objects.
fn cell(col: &dyn Array, row: usize) -> String {
    if col.is_null(row) {
        return String::new();
    }
    match col.data_type() {
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::Float64 => col.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Boolean => col.as_boolean().value(row).to_string(),
        DataType::Utf8 => col.as_string::<i32>().value(row).to_owned(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(row).to_owned(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => col
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .to_string(),
        DataType::Map(_, _) => {
            let entries = col.as_map().value(row);
            let mut obj = String::from("{");
            for i in 0..entries.len() {
                if i > 0 {
                    obj.push(',');
                }
                json_string(&mut obj, &cell(entries.column(0).as_ref(), i));
                obj.push(':');
                let v = cell(entries.column(1).as_ref(), i);
                match v.parse::<f64>() {
                    Ok(f) if f.is_finite() => obj.push_str(&v),
                    _ => json_string(&mut obj, &v),
                }
            }
            obj.push('}');
            obj
        }
        other => format!("<{other}>"),
    }
}

/// Append `s` as a JSON string.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
