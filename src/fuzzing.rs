//! Entry points for the fuzz targets in `fuzz/` (hidden, not a stable API).
//!
//! Each function takes untrusted input and must return a `Result`, never panic. The fuzz crate
//! calls them; nothing in the store does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::cold_storage::file::{ColdFile, ScanBounds};
use crate::error::{Error, Result};
use crate::record::{Record, TransactionRecord};

/// Most point lookups one input makes (each reads a page per column).
const MAX_GETS: usize = 8;

/// What [`cold_file_path`] read from a file that opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColdFileReport {
    /// `"transaction"` or `"generic"`: the layout whose schema the file matched.
    pub layout: &'static str,
    /// Ids read from the id column.
    pub ids: usize,
    /// Lookups that found their record.
    pub found: usize,
    /// Records returned by the full scan.
    pub scanned: usize,
}

/// A record type on the generic cold layout (`id`, `ts`, `signature`, `payload`), so that the
/// fuzz target also reaches the payload decoding of user-defined record types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenericRecord {
    /// Assigned by the store.
    pub id: Option<i64>,
    /// Optional unique signature.
    pub sig: Option<String>,
    /// Timestamp, Unix ms.
    pub at_ms: i64,
    /// Opaque body.
    pub body: Vec<u8>,
}

impl Record for GenericRecord {
    fn id(&self) -> Option<i64> {
        self.id
    }
    fn set_id(&mut self, id: i64) {
        self.id = Some(id);
    }
    fn signature(&self) -> Option<&str> {
        self.sig.as_deref()
    }
    fn timestamp_ms(&self) -> i64 {
        self.at_ms
    }
}

/// Write `bytes` to a fresh temporary file, run [`cold_file_path`] on it, remove it.
pub fn cold_file_bytes(bytes: &[u8]) -> Result<ColdFileReport> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "tiered-storage-fuzz-{}-{}.parquet",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).map_err(|source| Error::Io {
        op: "write",
        path: path.clone(),
        source,
    })?;
    let result = cold_file_path(&path);
    let _ = std::fs::remove_file(&path);
    result
}

/// Open the file at `path` as a cold file of [`TransactionRecord`]s, else of [`GenericRecord`]s,
/// and read it the ways the store does: footer summary, every id, point lookups (ids from the
/// file and arbitrary ones), a full scan and a pruned scan. The first error is returned.
pub fn cold_file_path(path: &Path) -> Result<ColdFileReport> {
    match ColdFile::<TransactionRecord>::open(path) {
        Ok(file) => exercise(&file, "transaction"),
        Err(first) => match ColdFile::<GenericRecord>::open(path) {
            Ok(file) => exercise(&file, "generic"),
            Err(_) => Err(first),
        },
    }
}

fn exercise<R: Record>(file: &ColdFile<R>, layout: &'static str) -> Result<ColdFileReport> {
    let mut report = ColdFileReport {
        layout,
        ..ColdFileReport::default()
    };
    let _ = file.memory_size();
    let summary = file.summary();

    // Candidate ids: the footer's bounds, the first ids of the id column, and fixed ones.
    let mut probes = vec![0, 1, -1, i64::MIN, i64::MAX];
    if let Ok(s) = &summary {
        probes.extend([s.min_id, s.max_id, s.min_id / 2 + s.max_id / 2]);
    }
    let mut ids_result = Ok(());
    match file.ids() {
        Ok(batches) => {
            for batch in batches {
                match batch {
                    Ok(ids) => {
                        report.ids += ids.len();
                        probes.extend(ids.iter().take(MAX_GETS).copied());
                    }
                    Err(e) => {
                        ids_result = Err(e);
                        break;
                    }
                }
            }
        }
        Err(e) => ids_result = Err(e),
    }
    probes.sort_unstable();
    probes.dedup();
    // Keep the fixed extremes and a spread of the rest.
    let step = probes.len().div_ceil(MAX_GETS).max(1);
    let mut first_error = None;
    for &id in probes.iter().step_by(step) {
        match file.get(id) {
            Ok(Some(_)) => report.found += 1,
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }

    // A full scan, then one pruned by id, time and a column value.
    for bounds in scan_bounds(summary.as_ref().ok()) {
        let full = bounds == ScanBounds::default();
        match file.scan(&bounds) {
            Ok(scan) => {
                for batch in scan {
                    match batch {
                        Ok(records) if full => report.scanned += records.len(),
                        Ok(_) => {}
                        Err(e) => {
                            first_error.get_or_insert(e);
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }

    summary?;
    ids_result?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn scan_bounds(summary: Option<&crate::cold_storage::file::FileSummary>) -> Vec<ScanBounds> {
    let full = ScanBounds::default();
    let (lo, hi, lo_ts, hi_ts) = summary.map_or((0, 1000, 0, 1000), |s| {
        (s.min_id, s.max_id, s.min_ts, s.max_ts)
    });
    let pruned = ScanBounds {
        min_id: lo / 2 + hi / 4,
        max_id: hi,
        min_ts: lo_ts,
        max_ts: lo_ts / 2 + hi_ts / 2,
        equals: vec![
            ("program".to_owned(), "pump".to_owned()),
            ("outcome_kind".to_owned(), "Profit".to_owned()),
            ("signature".to_owned(), "x".to_owned()),
        ],
        batch_rows: 7,
    };
    vec![full, pruned]
}

/// `TransactionRecord::decode` (the warm tier's and the generic cold layout's codec).
pub fn decode_record(bytes: &[u8]) -> Result<TransactionRecord> {
    TransactionRecord::decode(bytes)
}

/// Decode a stored record and give it `id`, as warm reads do.
pub fn decode_record_with_id(id: i64, bytes: &[u8]) -> Result<TransactionRecord> {
    crate::record::decode_with_id(id, bytes)
}

/// The encoding of `record` (`Record::encode`).
pub fn encode_record(record: &TransactionRecord) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    record.encode(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    //! The committed seed corpora of `fuzz/corpus/` must stay valid inputs: real cold files
    //! that read back whole, records that decode, configs that load. `write_fuzz_seeds`
    //! (ignored) regenerates them: `cargo test --lib fuzzing -- --ignored`.

    use super::*;
    use crate::cold_storage::file::{publish, ColdFileWriter, WriterOptions};
    use crate::config::StorageConfig;
    use crate::coordinator::AutoTieringCoordinator;
    use crate::record::tests::sample;
    use crate::record::Outcome;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_700_000_000_000;

    fn corpus(target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target)
    }

    /// The committed seeds of `target` (files named `seed-*`).
    fn seeds(target: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(corpus(target))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("seed-"))
            })
            .collect();
        out.sort();
        out
    }

    fn outcome(n: u64) -> Outcome {
        match n % 9 {
            0 => Outcome::Profit(n as f64 / 7.0),
            1 => Outcome::Loss(0.5),
            2 => Outcome::Neutral,
            3 => Outcome::PendingConfirmation,
            4 => Outcome::FailedExecution,
            5 => Outcome::NotExecuted,
            6 => Outcome::ConfirmationTimeout,
            7 => Outcome::ExecutionError(format!("err {n}")),
            _ => Outcome::VerificationFailed("slippage".into()),
        }
    }

    /// Record `n` over three old days, every outcome, some optional fields unset.
    fn record(n: u64) -> TransactionRecord {
        let mut r = sample(n);
        r.timestamp_decision_made = T0 + (n % 3) as i64 * DAY + n as i64;
        r.actual_outcome = outcome(n);
        r.scored_candidate.base.program = if n.is_multiple_of(2) {
            "pump"
        } else {
            "raydium"
        }
        .into();
        if n.is_multiple_of(5) {
            r.transaction_signature = None;
            r.scored_candidate.base.instruction_summary = None;
            r.scored_candidate.feature_scores.clear();
        }
        r
    }

    fn small_config(dir: &Path) -> StorageConfig {
        let mut c = StorageConfig::default().with_data_dir(dir);
        c.cold.row_group_rows = 1024;
        c.cold.data_page_rows = 64;
        c
    }

    /// Put `records`, archive them all, return the cold files written.
    async fn archive<R: Record>(dir: &Path, records: Vec<R>) -> Vec<PathBuf> {
        let store = AutoTieringCoordinator::<R>::open(small_config(dir))
            .await
            .unwrap();
        for r in &records {
            store.put(r).await.unwrap();
        }
        let report = store.archive_now().await.unwrap();
        assert_eq!(report.archived, records.len() as u64);
        store.shutdown().await.unwrap();
        let mut files = Vec::new();
        for day in std::fs::read_dir(dir.join(crate::cold_storage::COLD_DIR)).unwrap() {
            for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
                files.push(f.unwrap().path());
            }
        }
        files.sort();
        files
    }

    #[test]
    #[ignore = "writes the seed corpora into fuzz/corpus; run by hand"]
    fn write_fuzz_seeds() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let put = |target: &str, name: &str, bytes: &[u8]| {
            std::fs::create_dir_all(corpus(target)).unwrap();
            std::fs::write(corpus(target).join(format!("seed-{name}")), bytes).unwrap();
        };

        // cold_file: the store's own archival output, both layouts (one file per day).
        let tx = rt.block_on(archive(
            &dir.path().join("tx"),
            (0..300).map(record).collect(),
        ));
        for (i, f) in tx.iter().take(2).enumerate() {
            put(
                "cold_file",
                &format!("tx-day{i}.parquet"),
                &std::fs::read(f).unwrap(),
            );
        }
        let generic = (0..150)
            .map(|n| GenericRecord {
                id: None,
                sig: (n % 4 != 0).then(|| format!("sig{n:0>40}")),
                at_ms: T0 + n,
                body: vec![n as u8; (n % 23) as usize],
            })
            .collect();
        let generic = rt.block_on(archive(&dir.path().join("generic"), generic));
        put(
            "cold_file",
            "generic.parquet",
            &std::fs::read(&generic[0]).unwrap(),
        );
        // Several row groups and pages per group, from the same writer with smaller limits.
        let tmp = dir.path().join("groups.tmp");
        let opts = WriterOptions {
            zstd_level: 1,
            row_group_rows: 40,
            data_page_rows: 8,
            string_page_rows: 8,
            ..WriterOptions::default()
        };
        let mut w = ColdFileWriter::<TransactionRecord>::create(&tmp, &opts).unwrap();
        let recs: Vec<TransactionRecord> = (0..120)
            .map(|n| {
                let mut r = record(n);
                r.id = Some(3 * n as i64 + 1);
                r
            })
            .collect();
        w.append(&recs).unwrap();
        w.finish().unwrap();
        let final_path = dir.path().join("groups.parquet");
        publish(&tmp, &final_path).unwrap();
        put(
            "cold_file",
            "tx-row-groups.parquet",
            &std::fs::read(&final_path).unwrap(),
        );

        // record_decode: encodings of every outcome and of the default record.
        for n in 0..9 {
            let mut r = record(n);
            r.id = (n % 2 == 0).then_some(n as i64);
            put(
                "record_decode",
                &format!("outcome{n}"),
                &encode_record(&r).unwrap(),
            );
        }
        put(
            "record_decode",
            "default",
            &encode_record(&TransactionRecord::default()).unwrap(),
        );

        // config_toml: the README's example, every key with its default, every key changed.
        let readme = "data_dir = \"/var/lib/bot/store\"\n\n[tiering]\nhot_to_warm_age = 300\n\n\
                      [hot]\ncapacity = 50000\n\n[warm]\ndurability = \"full\"\n";
        put("config_toml", "readme.toml", readme.as_bytes());
        let defaults = StorageConfig::default().with_data_dir("/var/lib/bot/store");
        put(
            "config_toml",
            "defaults.toml",
            toml::to_string(&defaults).unwrap().as_bytes(),
        );
        let mut all = defaults.clone();
        all.tiering.min_hot_access_count = 3;
        all.hot.max_bytes = Some(1 << 28);
        all.warm.durability = crate::Durability::Full;
        all.cold.compact_small_fraction = 0.5;
        all.alerts.warm_hit_rate_floor_pct = Some(25.5);
        all.alerts.disk_budget_bytes = Some(1 << 40);
        all.alerts.min_free_disk_bytes = None;
        all.maintenance.compact = false;
        all.metrics.window_secs = 120;
        put(
            "config_toml",
            "all-keys.toml",
            toml::to_string(&all).unwrap().as_bytes(),
        );
    }

    #[test]
    fn committed_cold_seeds_read_back_whole() {
        let files = seeds("cold_file");
        assert!(files.len() >= 3, "{files:?}");
        let mut layouts = Vec::new();
        for f in &files {
            let len = std::fs::metadata(f).unwrap().len();
            assert!(len < 50_000, "{} is {len} bytes", f.display());
            let report = cold_file_path(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert!(
                report.scanned > 0 && report.scanned == report.ids,
                "{report:?}"
            );
            assert!(report.found >= 3, "{}: {report:?}", f.display());
            layouts.push(report.layout);
        }
        assert!(layouts.contains(&"transaction") && layouts.contains(&"generic"));
    }

    #[test]
    fn committed_record_and_config_seeds_decode() {
        let records = seeds("record_decode");
        assert!(records.len() >= 5);
        for f in records {
            let bytes = std::fs::read(&f).unwrap();
            let r = decode_record(&bytes).unwrap();
            assert_eq!(encode_record(&r).unwrap(), bytes, "{}", f.display());
            assert_eq!(decode_record_with_id(9, &bytes).unwrap().id, Some(9));
        }
        let configs = seeds("config_toml");
        assert!(configs.len() >= 3);
        for f in configs {
            let text = std::fs::read_to_string(&f).unwrap();
            StorageConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
    }

    #[test]
    fn damaged_cold_files_are_errors() {
        let seed = std::fs::read(&seeds("cold_file")[0]).unwrap();
        for bytes in [
            &b""[..],
            b"PAR1",
            b"PAR1\0\0\0\0PAR1",
            &seed[..seed.len() / 2],
            &seed[seed.len() / 2..],
        ] {
            assert!(
                matches!(cold_file_bytes(bytes), Err(Error::ColdFile { .. })),
                "{} bytes",
                bytes.len()
            );
        }
        assert!(cold_file_bytes(&seed).is_ok());
    }
}
