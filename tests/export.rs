//! Protects `export`/`export_as`: a range from all three tiers (hot, warm and archived cold
//! rows, updated and removed ones included) lands once per record, newest version, as Parquet
//! with the archive's columns or as CSV with a header; a failed export leaves no file.

use std::fs::File;
use std::path::Path;

use arrow_array::Int64Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tiered_storage::{
    AutoTieringCoordinator, Error, ExportFormat, Outcome, Record, ScanRange, TransactionRecord,
};

type Store = AutoTieringCoordinator<TransactionRecord>;

mod common;
use common::{DAY, T0};

async fn store_with_three_tiers(dir: &Path) -> (Store, Vec<i64>) {
    let store = Store::open(common::cold_config(dir)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(store.put(&common::record(i, "exp")).await.unwrap());
    }
    store.archive_older_than(T0 + DAY).await.unwrap();
    // An archived record updated, one removed: warm wins, the removed one is gone.
    let mut r = store.get(ids[0]).await.unwrap().unwrap();
    r.actual_outcome = Outcome::Profit(7.0);
    store.update(&r).await.unwrap();
    store.remove(ids[3]).await.unwrap();
    (store, ids)
}

fn parquet_ids(path: &Path) -> (Vec<i64>, arrow_schema::SchemaRef) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    let mut ids = Vec::new();
    for b in builder.build().unwrap() {
        let b = b.unwrap();
        let col = b.column_by_name("id").unwrap();
        ids.extend(
            col.as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .iter(),
        );
    }
    (ids, schema)
}

#[tokio::test]
async fn export_parquet_holds_every_tier_once_with_the_archive_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with_three_tiers(dir.path()).await;
    let out = dir.path().join("out.parquet");
    let report = store.export(ScanRange::default(), &out).await.unwrap();
    assert_eq!(report.records, 299);
    assert_eq!(report.format, ExportFormat::Parquet);
    let (got, schema) = parquet_ids(&out);
    let want: Vec<i64> = ids.iter().copied().filter(|&id| id != ids[3]).collect();
    assert_eq!(got, want);
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    let cold_schema = TransactionRecord::cold_schema();
    let cold: Vec<&String> = cold_schema.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, cold);
    // The updated record's new outcome is what was exported.
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap()).unwrap();
    let batch = builder.build().unwrap().next().unwrap().unwrap();
    let back = TransactionRecord::from_cold_batch(&batch).unwrap();
    assert_eq!(back[0].actual_outcome, Outcome::Profit(7.0));
    assert_eq!(report.bytes, std::fs::metadata(&out).unwrap().len());
}

#[tokio::test]
async fn export_csv_of_a_time_range_has_a_header_and_one_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_three_tiers(dir.path()).await;
    let range = ScanRange::default().with_time(T0..=T0 + DAY);
    let want = store.query_len(range.clone()).await;
    let out = dir.path().join("day.csv");
    let report = store
        .export_as(range, &out, ExportFormat::Csv)
        .await
        .unwrap();
    assert_eq!(report.records, want);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("id,"));
    assert_eq!(lines.count() as u64, want);
}

#[tokio::test]
async fn export_failures_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_three_tiers(dir.path()).await;
    let bad = dir.path().join("out.txt");
    assert!(matches!(
        store.export(ScanRange::default(), &bad).await,
        Err(Error::InvalidRecord { .. })
    ));
    assert!(!bad.exists());
    let missing_dir = dir.path().join("nope/out.parquet");
    assert!(store
        .export(ScanRange::default(), &missing_dir)
        .await
        .is_err());
    assert!(!missing_dir.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".tiered-storage-export-")
        })
        .collect();
    assert!(leftovers.is_empty());
}

trait QueryLen {
    async fn query_len(&self, range: ScanRange) -> u64;
}

impl QueryLen for Store {
    async fn query_len(&self, range: ScanRange) -> u64 {
        let mut cursor = self.scan(range, 1000).unwrap();
        let mut n = 0;
        while let Some(p) = cursor.next_page().await.unwrap() {
            n += p.len() as u64;
        }
        n
    }
}
