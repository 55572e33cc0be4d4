//! [`StatsView`]: the store's figures in one object, for `GET /v1/stats` and the CLI's
//! `stats --format json` (built from the store locally, or read back from a service).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tiered_storage::{Alert, AutoTieringCoordinator, CatalogEntry, Result, TierMetrics};

/// Every figure the `stats` command and the dashboard show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsView {
    /// When the figures were taken, Unix ms by the store's clock.
    pub generated_ms: i64,
    /// The in-memory cache.
    pub hot: TierView,
    /// SQLite.
    pub warm: TierView,
    /// Parquet files.
    pub cold: ColdTierView,
    /// Distinct records stored: warm plus cold (hot caches some of them).
    pub total_records: u64,
    /// Archival progress.
    pub archival: ArchivalView,
    /// Compaction since open.
    pub compaction: CompactionView,
    /// The maintenance loop.
    pub maintenance: MaintenanceView,
    /// Cold files per day partition, oldest day first.
    pub cold_days: Vec<ColdDay>,
    /// Active alerts, most severe first.
    pub alerts: Vec<AlertView>,
}

/// One tier's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TierView {
    /// Records held now.
    pub record_count: u64,
    /// Bytes held now (hot: encoded records; warm: database plus WAL; cold: Parquet files).
    pub bytes: u64,
    /// Most records the tier holds; null when unbounded.
    pub capacity: Option<u64>,
    /// Hit rate since open, percent (0–100).
    pub hit_rate: f64,
    /// Hit rate over the recent window, percent; null when nothing was looked up in it.
    pub recent_hit_rate: Option<f64>,
    /// Lookups answered since open.
    pub hits: u64,
    /// Lookups not answered since open.
    pub misses: u64,
    /// Median lookup time over the recent window, µs.
    pub p50_us: u64,
    /// 95th percentile lookup time over the recent window, µs.
    pub p95_us: u64,
    /// 99th percentile lookup time over the recent window, µs.
    pub p99_us: u64,
    /// Committed write operations since open (warm; 0 for the others).
    pub writes: u64,
}

/// The cold tier's figures: a [`TierView`] plus its files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColdTierView {
    /// The figures every tier has.
    #[serde(flatten)]
    pub tier: TierView,
    /// Catalogued files, quarantined included.
    pub file_count: u64,
    /// Quarantined files.
    pub quarantined_files: u64,
}

/// Archival: how far behind it is and what it moved since open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivalView {
    /// How far the oldest warm record is past its archival age, seconds (0: none overdue).
    pub lag_secs: u64,
    /// Records archived since open.
    pub records_archived: u64,
    /// Files written by archival since open.
    pub archive_files: u64,
    /// When the last archival ended, Unix ms (0: none yet).
    pub last_archive_ms: i64,
}

/// Compaction since open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionView {
    /// Groups of files rewritten.
    pub groups: u64,
    /// Input files replaced.
    pub files_in: u64,
    /// Output files written.
    pub files_out: u64,
    /// Bytes of the inputs.
    pub bytes_in: u64,
    /// Bytes of the outputs.
    pub bytes_out: u64,
    /// When the last compaction ended, Unix ms (0: none yet).
    pub last_compaction_ms: i64,
}

/// The maintenance loop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceView {
    /// Whether the loop runs.
    pub loop_running: bool,
    /// Steps since open.
    pub steps: u64,
    /// Steps in which a task failed.
    pub failed_steps: u64,
    /// When the last step ended, Unix ms (0: none yet).
    pub last_step_ms: i64,
}

/// The cold files of one UTC day partition (`date=YYYY-MM-DD`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Files.
    pub files: u64,
    /// Bytes of the files.
    pub bytes: u64,
    /// Rows written to the files.
    pub rows: u64,
    /// Rows still served from them.
    pub live_rows: u64,
}

/// An alert, in the library's `Alert` serde shape (kind and severity as their variant names),
/// readable back by a client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// e.g. `ArchivalLag`.
    pub kind: String,
    /// `Info`, `Warning` or `Critical`.
    pub severity: String,
    /// `hot`, `warm`, `cold` or `store`.
    pub tier_name: String,
    /// What distinguishes alerts of one kind and tier; empty when there is only one.
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// First seen, Unix ms.
    pub first_seen_ms: i64,
    /// Last seen, Unix ms.
    pub last_seen_ms: i64,
    /// Evaluations that found it.
    pub occurrences: u64,
    /// When it cleared, Unix ms; null while active.
    pub resolved_ms: Option<i64>,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        // The serde name of a unit variant is its Rust name, which Debug prints too.
        AlertView {
            kind: format!("{:?}", a.kind),
            severity: format!("{:?}", a.severity),
            tier_name: a.tier_name.clone(),
            subject: a.subject.clone(),
            message: a.message.clone(),
            first_seen_ms: a.first_seen_ms,
            last_seen_ms: a.last_seen_ms,
            occurrences: a.occurrences,
            resolved_ms: a.resolved_ms,
        }
    }
}

impl From<&TierMetrics> for TierView {
    fn from(m: &TierMetrics) -> Self {
        TierView {
            record_count: m.record_count,
            bytes: m.bytes_stored,
            capacity: m.capacity,
            hit_rate: m.hit_rate(),
            recent_hit_rate: m.recent_hit_rate(),
            hits: m.hits,
            misses: m.misses,
            p50_us: m.p50_access_time_us,
            p95_us: m.p95_access_time_us,
            p99_us: m.p99_access_time_us,
            writes: m.writes,
        }
    }
}

/// Cold files grouped by their day partition (the `date=YYYY-MM-DD/` directory of the path).
pub fn cold_days(files: &[CatalogEntry]) -> Vec<ColdDay> {
    let mut days: BTreeMap<String, ColdDay> = BTreeMap::new();
    for f in files {
        let day = f
            .path
            .strip_prefix("date=")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("unknown")
            .to_owned();
        let entry = days.entry(day.clone()).or_insert_with(|| ColdDay {
            day,
            ..ColdDay::default()
        });
        entry.files += 1;
        entry.bytes += f.bytes;
        entry.rows += f.rows;
        entry.live_rows += f.live_rows();
    }
    days.into_values().collect()
}

/// Take the store's figures now: `collect_metrics`, the maintenance counters, the cold
/// catalog (one short query) and the active alerts (re-evaluated).
pub async fn stats_view(store: &AutoTieringCoordinator) -> Result<StatsView> {
    let metrics = store.collect_metrics().await?;
    let status = store.maintenance_status();
    let files = store.cold_tier().files()?;
    let alerts = store.get_alerts().await;
    let hot = metrics.hot.unwrap_or_default();
    let warm = metrics.warm.unwrap_or_default();
    let cold = metrics.cold.unwrap_or_default();
    Ok(StatsView {
        generated_ms: store.config().clock.now_ms(),
        hot: TierView::from(&hot),
        warm: TierView::from(&warm),
        cold: ColdTierView {
            tier: TierView::from(&cold),
            file_count: cold.file_count,
            quarantined_files: cold.quarantined_files,
        },
        total_records: warm.record_count + cold.record_count,
        archival: ArchivalView {
            lag_secs: warm.archival_lag_secs,
            records_archived: status.records_archived,
            archive_files: status.archive_files,
            last_archive_ms: status.last_archive_ms,
        },
        compaction: CompactionView {
            groups: status.compaction_groups,
            files_in: status.compaction_files_in,
            files_out: status.compaction_files_out,
            bytes_in: status.compaction_bytes_in,
            bytes_out: status.compaction_bytes_out,
            last_compaction_ms: status.last_compaction_ms,
        },
        maintenance: MaintenanceView {
            loop_running: status.loop_running,
            steps: status.steps,
            failed_steps: status.failed_steps,
            last_step_ms: status.last_step_ms,
        },
        cold_days: cold_days(&files),
        alerts: alerts.iter().map(AlertView::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiered_storage::FileState;

    fn entry(path: &str, rows: u64, dead: u64, bytes: u64) -> CatalogEntry {
        CatalogEntry {
            file_id: 1,
            path: path.into(),
            min_id: 1,
            max_id: 10,
            min_ts: 0,
            max_ts: 0,
            rows,
            bytes,
            dead_rows: dead,
            state: FileState::Live,
            settled_upto: i64::MAX,
            unsettled_rows: 0,
            etag: None,
            footer_len: None,
        }
    }

    #[test]
    fn cold_files_group_by_day_partition_in_day_order() {
        let days = cold_days(&[
            entry("date=2026-11-30/part-2.parquet", 10, 1, 100),
            entry("date=2026-11-29/part-1.parquet", 5, 0, 50),
            entry("date=2026-11-30/part-3.parquet", 4, 4, 40),
        ]);
        assert_eq!(
            days,
            vec![
                ColdDay {
                    day: "2026-11-29".into(),
                    files: 1,
                    bytes: 50,
                    rows: 5,
                    live_rows: 5
                },
                ColdDay {
                    day: "2026-11-30".into(),
                    files: 2,
                    bytes: 140,
                    rows: 14,
                    live_rows: 9
                },
            ]
        );
    }

    #[test]
    fn the_view_round_trips_through_json_with_the_contract_keys() {
        let view = StatsView {
            cold_days: vec![ColdDay::default()],
            alerts: vec![AlertView::default()],
            ..StatsView::default()
        };
        let json = serde_json::to_value(&view).unwrap();
        for key in [
            "record_count",
            "bytes",
            "capacity",
            "hit_rate",
            "recent_hit_rate",
            "hits",
        ] {
            assert!(json["cold"].get(key).is_some(), "cold.{key}");
        }
        assert!(json["cold"].get("file_count").is_some());
        assert!(json["hot"].get("file_count").is_none());
        let back: StatsView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }
}
