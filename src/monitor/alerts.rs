//! Alerts: conditions evaluated from a metrics snapshot (thresholds in `AlertConfig`), plus
//! maintenance failures and cold-file problems, kept in a book that deduplicates repeats,
//! clears an alert once its cause is gone and keeps a bounded history of resolved ones.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::TieredMetrics;
use crate::cold_storage::ColdFileProblem;
use crate::config::AlertConfig;
use crate::metrics::TierMetrics;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AlertSeverity {
    /// Worth knowing; no action needed yet.
    Info,
    /// Performance or capacity is drifting from its target.
    Warning,
    /// Data movement stopped, data is unreadable, or a resource is nearly exhausted.
    Critical,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AlertKind {
    /// A tier's recent p95 access time is over its target.
    AccessTimeOverTarget,
    /// A tier answers fewer lookups than its configured floor.
    HitRateBelowFloor,
    /// The hot tier is nearly full.
    HotCapacity,
    /// The data directory holds more than its budget.
    DiskBudget,
    /// The data directory's file system is nearly full.
    LowFreeDisk,
    /// Warm holds records past `warm_to_cold_age` plus the grace period.
    ArchivalLag,
    /// A tier's recent p95 is a multiple of its usual p95.
    Degradation,
    /// A maintenance task failed (the loop goes on and retries it next step).
    MaintenanceFailure,
    /// A cold file is missing, truncated or corrupt.
    ColdFileCorruption,
    /// SQLite found the warm database damaged, or a stored record could not be found.
    WarmCorruption,
    /// A replica of the object-store cold tier is behind: its oldest missing object is older
    /// than `cold.replication_lag_alert_secs` (one alert per replica; clears when it catches
    /// up).
    ColdReplicationLag,
    /// A store of the object-store cold tier (the primary or a replica) failed
    /// `cold.failover_alert_after` reads in a row (one alert per store; clears at its next
    /// successful read).
    ColdStoreFailing,
}

/// One alert (`severity`, `tier_name`, `message`, what it is about), with when it was
/// first and last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent it is (the highest seen while it was active is not kept: this is the latest).
    pub severity: AlertSeverity,
    /// `"hot"`, `"warm"`, `"cold"`, or `"store"` for the store as a whole.
    pub tier_name: String,
    /// What distinguishes alerts of one kind and tier: the maintenance task, the cold file.
    /// Empty when there is only one.
    pub subject: String,
    /// What is wrong, with the figures, and what to do when that is known.
    pub message: String,
    /// First evaluation that found the condition, Unix ms (by the store's clock).
    pub first_seen_ms: i64,
    /// Latest evaluation that found it, Unix ms.
    pub last_seen_ms: i64,
    /// Evaluations that found it while it stayed active.
    pub occurrences: u64,
    /// When it cleared, Unix ms; `None` while active.
    pub resolved_ms: Option<i64>,
}

/// A condition found by one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub kind: AlertKind,
    pub severity: AlertSeverity,
    pub tier: &'static str,
    pub subject: String,
    pub message: String,
}

impl Finding {
    pub fn new(
        kind: AlertKind,
        severity: AlertSeverity,
        tier: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            severity,
            tier,
            subject: String::new(),
            message: message.into(),
        }
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    fn key(&self) -> Key {
        (self.kind, self.tier.to_owned(), self.subject.clone())
    }
}

type Key = (AlertKind, String, String);

/// Disk figures of the data directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiskFigures {
    /// Bytes of every file under the data directory; `None` when not measured (the walk runs
    /// only when `disk_budget_bytes` is set).
    pub data_dir_bytes: Option<u64>,
    /// Bytes free for this user on its file system, when the platform reports it.
    pub free_bytes: Option<u64>,
}

/// The inputs of one evaluation of the threshold alerts.
pub(crate) struct Inputs<'a> {
    pub metrics: &'a TieredMetrics,
    pub disk: DiskFigures,
    pub cold_problems: &'a [ColdFileProblem],
    /// The first corruption the warm database reported, until a clean `verify`.
    pub warm_corruption: Option<&'a str>,
    /// `cold.replication_lag_alert_secs`.
    pub replication_lag_alert_secs: u64,
    /// `cold.failover_alert_after` (0: never).
    pub failover_alert_after: u64,
}

/// The alert kinds [`evaluate`] decides (maintenance failures are raised and cleared by the
/// maintenance loop itself).
pub(crate) const EVALUATED: [AlertKind; 11] = [
    AlertKind::AccessTimeOverTarget,
    AlertKind::HitRateBelowFloor,
    AlertKind::HotCapacity,
    AlertKind::DiskBudget,
    AlertKind::LowFreeDisk,
    AlertKind::ArchivalLag,
    AlertKind::Degradation,
    AlertKind::ColdFileCorruption,
    AlertKind::WarmCorruption,
    AlertKind::ColdReplicationLag,
    AlertKind::ColdStoreFailing,
];

/// Every threshold alert that holds for `inputs`.
pub(crate) fn evaluate(cfg: &AlertConfig, inputs: &Inputs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let m = inputs.metrics;
    let tiers = [
        (
            &m.hot,
            "hot",
            cfg.hot_p95_target_us,
            cfg.hot_hit_rate_floor_pct,
        ),
        (
            &m.warm,
            "warm",
            cfg.warm_p95_target_us,
            cfg.warm_hit_rate_floor_pct,
        ),
        (&m.cold, "cold", cfg.cold_p95_target_us, None),
    ];
    for (metrics, tier, target_us, floor) in tiers {
        if let Some(t) = metrics {
            access_findings(cfg, t, tier, target_us, floor, &mut out);
        }
    }
    if let Some(hot) = &m.hot {
        // Full by records or by bytes, whichever is fuller.
        let by_records = hot.capacity.filter(|c| *c > 0).map(|c| {
            (
                hot.record_count as f64 * 100.0 / c as f64,
                format!("{} of {c} records", hot.record_count),
            )
        });
        let by_bytes = hot.capacity_bytes.filter(|c| *c > 0).map(|c| {
            (
                hot.bytes_stored as f64 * 100.0 / c as f64,
                format!("{} of {c} bytes", hot.bytes_stored),
            )
        });
        let fullest = by_records
            .into_iter()
            .chain(by_bytes)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((used, what)) = fullest {
            let severity = if used >= cfg.hot_capacity_critical_pct {
                Some(AlertSeverity::Critical)
            } else if used >= cfg.hot_capacity_warning_pct {
                Some(AlertSeverity::Warning)
            } else {
                None
            };
            if let Some(severity) = severity {
                out.push(Finding::new(
                    AlertKind::HotCapacity,
                    severity,
                    "hot",
                    format!(
                        "hot tier {used:.1}% full ({what}): the least recently used records \
                         are being evicted; raise hot.capacity (or hot.max_bytes) if reads miss"
                    ),
                ));
            }
        }
    }
    if let Some(warm) = &m.warm {
        if warm.archival_lag_secs > cfg.archival_grace_secs {
            out.push(Finding::new(
                AlertKind::ArchivalLag,
                AlertSeverity::Warning,
                "warm",
                format!(
                    "warm holds records {} s past warm_to_cold_age (grace {} s): archival is \
                     behind; check that the maintenance loop runs and that archival succeeds",
                    warm.archival_lag_secs, cfg.archival_grace_secs
                ),
            ));
        }
    }
    if let (Some(budget), Some(used)) = (cfg.disk_budget_bytes, inputs.disk.data_dir_bytes) {
        if used > budget {
            out.push(Finding::new(
                AlertKind::DiskBudget,
                AlertSeverity::Warning,
                "store",
                format!("data directory holds {used} bytes, over its budget of {budget} bytes"),
            ));
        }
    }
    if let (Some(floor), Some(free)) = (cfg.min_free_disk_bytes, inputs.disk.free_bytes) {
        if free < floor {
            out.push(Finding::new(
                AlertKind::LowFreeDisk,
                AlertSeverity::Critical,
                "store",
                format!(
                    "{free} bytes free on the data directory's file system, under the floor of \
                     {floor} bytes: writes will fail when it is full"
                ),
            ));
        }
    }
    for p in inputs.cold_problems {
        out.push(
            Finding::new(
                AlertKind::ColdFileCorruption,
                AlertSeverity::Critical,
                "cold",
                format!(
                    "cold file {} is {:?}: {}. Its records fail to read; restore the file and \
                     run verify_cold, or rebuild_cold_catalog",
                    p.path.display(),
                    p.kind,
                    p.detail
                ),
            )
            .subject(p.path.display().to_string()),
        );
    }
    if let Some(detail) = inputs.warm_corruption {
        out.push(Finding::new(
            AlertKind::WarmCorruption,
            AlertSeverity::Critical,
            "warm",
            format!(
                "the warm database is damaged ({detail}): reads and writes that touch the damage \
                 fail. Run verify; restore from a copy made with backup_to"
            ),
        ));
    }
    for lag in &m.replication {
        if lag.objects > 0 && lag.seconds > inputs.replication_lag_alert_secs {
            out.push(
                Finding::new(
                    AlertKind::ColdReplicationLag,
                    AlertSeverity::Warning,
                    "cold",
                    format!(
                        "replica {} is {} s behind (over {} s): {} objects, {} bytes not copied \
                         yet; check that the replica is reachable",
                        lag.replica,
                        lag.seconds,
                        inputs.replication_lag_alert_secs,
                        lag.objects,
                        lag.bytes
                    ),
                )
                .subject(lag.replica.clone()),
            );
        }
    }
    if inputs.failover_alert_after > 0 {
        for s in &m.cold_stores {
            if s.consecutive_failures >= inputs.failover_alert_after {
                out.push(
                    Finding::new(
                        AlertKind::ColdStoreFailing,
                        AlertSeverity::Critical,
                        "cold",
                        format!(
                            "cold store {} failed its last {} reads ({} failed, {} served by a \
                             replica since open): check the store's endpoint and credentials",
                            s.store, s.consecutive_failures, s.failed_reads, s.failovers
                        ),
                    )
                    .subject(s.store.clone()),
                );
            }
        }
    }
    // One finding per alert (a file can have two problems on record): the first wins.
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(f.key()));
    out
}

fn access_findings(
    cfg: &AlertConfig,
    t: &TierMetrics,
    tier: &'static str,
    target_us: u64,
    floor: Option<f64>,
    out: &mut Vec<Finding>,
) {
    let recent = t.recent_hits + t.recent_misses;
    if recent < cfg.min_samples {
        return;
    }
    if t.p95_access_time_us > target_us {
        let severity = if t.p95_access_time_us >= target_us.saturating_mul(10) {
            AlertSeverity::Critical
        } else {
            AlertSeverity::Warning
        };
        out.push(Finding::new(
            AlertKind::AccessTimeOverTarget,
            severity,
            tier,
            format!(
                "{tier} p95 access time {} µs over the last {} s is over its target of \
                 {target_us} µs ({recent} lookups)",
                t.p95_access_time_us, t.window_secs
            ),
        ));
    }
    if let (Some(floor), Some(rate)) = (floor, t.recent_hit_rate()) {
        if rate < floor {
            out.push(Finding::new(
                AlertKind::HitRateBelowFloor,
                AlertSeverity::Warning,
                tier,
                format!(
                    "{tier} hit rate {rate:.1}% over the last {} s is below its floor of \
                     {floor:.1}% ({recent} lookups)",
                    t.window_secs
                ),
            ));
        }
    }
    // A tenth of the target as a floor: a hot p95 going from 1 µs to 3 µs is noise, not news.
    let baseline = t.baseline_p95_access_time_us;
    if t.baseline_samples >= cfg.min_samples
        && t.p95_access_time_us * 10 >= target_us
        && t.p95_access_time_us as f64 >= cfg.degradation_factor * baseline.max(1) as f64
    {
        out.push(Finding::new(
            AlertKind::Degradation,
            AlertSeverity::Warning,
            tier,
            format!(
                "{tier} p95 access time {} µs over the last {} s is {:.1}× its usual {} µs",
                t.p95_access_time_us,
                t.window_secs,
                t.p95_access_time_us as f64 / baseline.max(1) as f64,
                baseline
            ),
        ));
    }
}

/// Active alerts by key, and resolved ones, oldest first, at most `limit`.
#[derive(Debug)]
pub(crate) struct AlertBook {
    active: BTreeMap<Key, Alert>,
    history: VecDeque<Alert>,
    limit: usize,
}

impl AlertBook {
    pub fn new(limit: usize) -> Self {
        Self {
            active: BTreeMap::new(),
            history: VecDeque::new(),
            limit,
        }
    }

    /// Raise `finding`, or refresh it (last seen, occurrences, severity, message) if active.
    pub fn raise(&mut self, finding: Finding, now_ms: i64) {
        match self.active.get_mut(&finding.key()) {
            Some(a) => {
                a.last_seen_ms = now_ms;
                a.occurrences += 1;
                if a.severity != finding.severity {
                    tracing::warn!(kind = ?a.kind, tier = %a.tier_name, severity = ?finding.severity, message = %finding.message, "alert severity changed");
                }
                a.severity = finding.severity;
                a.message = finding.message;
            }
            None => {
                tracing::warn!(kind = ?finding.kind, tier = finding.tier, severity = ?finding.severity, message = %finding.message, "alert raised");
                let key = finding.key();
                self.active.insert(
                    key,
                    Alert {
                        kind: finding.kind,
                        severity: finding.severity,
                        tier_name: finding.tier.to_owned(),
                        subject: finding.subject,
                        message: finding.message,
                        first_seen_ms: now_ms,
                        last_seen_ms: now_ms,
                        occurrences: 1,
                        resolved_ms: None,
                    },
                );
            }
        }
    }

    /// Clear every active alert matching `cleared`, moving it to the history.
    pub fn resolve_where(&mut self, now_ms: i64, cleared: impl Fn(&Alert) -> bool) {
        let keys: Vec<Key> = self
            .active
            .iter()
            .filter(|(_, a)| cleared(a))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(mut a) = self.active.remove(&key) {
                tracing::info!(kind = ?a.kind, tier = %a.tier_name, subject = %a.subject, "alert cleared");
                a.resolved_ms = Some(now_ms);
                self.history.push_back(a);
            }
        }
        let excess = self.history.len().saturating_sub(self.limit);
        self.history.drain(..excess);
    }

    /// Apply one evaluation of the kinds in `scope`: raise or refresh what was found and clear
    /// the active alerts of those kinds that were not.
    pub fn observe(&mut self, scope: &[AlertKind], findings: Vec<Finding>, now_ms: i64) {
        let found: std::collections::HashSet<Key> = findings.iter().map(Finding::key).collect();
        for f in findings {
            self.raise(f, now_ms);
        }
        self.resolve_where(now_ms, |a| {
            scope.contains(&a.kind)
                && !found.contains(&(a.kind, a.tier_name.clone(), a.subject.clone()))
        });
    }

    /// Active alerts, most severe first, then oldest first.
    pub fn active(&self) -> Vec<Alert> {
        let mut out: Vec<Alert> = self.active.values().cloned().collect();
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.first_seen_ms.cmp(&b.first_seen_ms))
        });
        out
    }

    /// Resolved alerts, oldest first.
    pub fn history(&self) -> Vec<Alert> {
        self.history.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::metrics::AccessStats;

    const T0: i64 = 1_800_000_000_000;

    /// A tier's metrics after injecting `n` lookups of `latency` (hits unless `miss_every`
    /// says otherwise) at the clock's current time.
    fn inject(
        stats: &AccessStats,
        clock: &ManualClock,
        n: u64,
        latency: Duration,
        miss_every: u64,
    ) {
        for i in 0..n {
            stats.record_at(
                miss_every == 0 || i % miss_every != 0,
                latency,
                clock.now_ms(),
            );
        }
    }

    fn tier(stats: &AccessStats, name: &str) -> TierMetrics {
        let mut m = TierMetrics {
            tier_name: name.into(),
            ..Default::default()
        };
        stats.fill(&mut m);
        m
    }

    fn eval(cfg: &AlertConfig, metrics: &TieredMetrics) -> Vec<Finding> {
        evaluate(
            cfg,
            &Inputs {
                metrics,
                disk: DiskFigures::default(),
                cold_problems: &[],
                warm_corruption: None,
                replication_lag_alert_secs: 300,
                failover_alert_after: 3,
            },
        )
    }

    #[test]
    fn metrics_alert_replication_lag_and_failing_store_raise_per_subject_and_clear() {
        use crate::cold_storage::{ReplicaLagMetrics, StoreFailureMetrics};
        let cfg = AlertConfig::default();
        let mut book = AlertBook::new(cfg.history_limit);
        let lag = |seconds, objects| ReplicaLagMetrics {
            replica: "eu".into(),
            objects,
            bytes: objects * 100,
            seconds,
        };
        let store = |consecutive| StoreFailureMetrics {
            store: "primary".into(),
            failed_reads: 9,
            failovers: 9,
            consecutive_failures: consecutive,
        };
        let run = |book: &mut AlertBook, lag: ReplicaLagMetrics, store: StoreFailureMetrics| {
            let m = TieredMetrics {
                replication: vec![lag],
                cold_stores: vec![store],
                ..Default::default()
            };
            let found = evaluate(
                &cfg,
                &Inputs {
                    metrics: &m,
                    disk: DiskFigures::default(),
                    cold_problems: &[],
                    warm_corruption: None,
                    replication_lag_alert_secs: 60,
                    failover_alert_after: 3,
                },
            );
            book.observe(&EVALUATED, found, T0);
            book.active()
                .iter()
                .map(|a| (a.kind, a.subject.clone()))
                .collect::<Vec<_>>()
        };
        // Under both thresholds: nothing.
        assert!(run(&mut book, lag(60, 3), store(2)).is_empty());
        // Past both: one alert each, named by the replica and the store.
        assert_eq!(
            run(&mut book, lag(61, 3), store(3)),
            [
                (AlertKind::ColdStoreFailing, "primary".to_owned()),
                (AlertKind::ColdReplicationLag, "eu".to_owned()),
            ]
        );
        // Caught up, and a read succeeded: both clear.
        assert!(run(&mut book, lag(0, 0), store(0)).is_empty());
        assert_eq!(book.history().len(), 2);
    }

    #[test]
    fn metrics_alert_p95_raises_dedups_and_clears_with_the_window() {
        let clock = ManualClock::new(T0);
        let warm = AccessStats::new(Arc::new(clock.clone()), Duration::from_secs(60));
        let cfg = AlertConfig::default();
        let mut book = AlertBook::new(cfg.history_limit);

        // Healthy traffic: 6 µs reads. No alert.
        inject(&warm, &clock, 10_000, Duration::from_micros(6), 0);
        let m = TieredMetrics {
            warm: Some(tier(&warm, "warm")),
            ..Default::default()
        };
        book.observe(&EVALUATED, eval(&cfg, &m), clock.now_ms());
        assert!(book.active().is_empty(), "{:?}", book.active());

        // A minute of 25 ms reads: over the 10 ms target and 3× the baseline.
        clock.advance(Duration::from_secs(61));
        inject(&warm, &clock, 500, Duration::from_millis(25), 0);
        let m = TieredMetrics {
            warm: Some(tier(&warm, "warm")),
            ..Default::default()
        };
        book.observe(&EVALUATED, eval(&cfg, &m), clock.now_ms());
        let active = book.active();
        let kinds: Vec<AlertKind> = active.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [AlertKind::AccessTimeOverTarget, AlertKind::Degradation],
            "{active:?}"
        );
        assert!(active.iter().all(|a| a.tier_name == "warm"));
        assert_eq!(active[0].severity, AlertSeverity::Warning);
        assert!(active[0].message.contains("over its target of 10000 µs"));
        let first_seen = active[0].first_seen_ms;

        // Still slow 10 s later: the same alert, seen again, not a second one.
        clock.advance(Duration::from_secs(10));
        inject(&warm, &clock, 10, Duration::from_millis(25), 0);
        let m = TieredMetrics {
            warm: Some(tier(&warm, "warm")),
            ..Default::default()
        };
        book.observe(&EVALUATED, eval(&cfg, &m), clock.now_ms());
        let again = book.active();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].first_seen_ms, first_seen);
        assert_eq!(again[0].last_seen_ms, T0 + 71_000);
        assert_eq!(again[0].occurrences, 2);

        // Fast again for a whole window: both clear and move to the history.
        clock.advance(Duration::from_secs(61));
        inject(&warm, &clock, 1000, Duration::from_micros(6), 0);
        let m = TieredMetrics {
            warm: Some(tier(&warm, "warm")),
            ..Default::default()
        };
        book.observe(&EVALUATED, eval(&cfg, &m), clock.now_ms());
        assert!(book.active().is_empty());
        let history = book.history();
        assert_eq!(history.len(), 2);
        assert!(history
            .iter()
            .all(|a| a.resolved_ms == Some(T0 + 132_000) && a.first_seen_ms == first_seen));
    }

    #[test]
    fn metrics_alert_needs_enough_samples_and_escalates() {
        let clock = ManualClock::new(T0);
        let cold = AccessStats::new(Arc::new(clock.clone()), Duration::from_secs(60));
        let cfg = AlertConfig::default();
        // Slow, but too few lookups to judge.
        inject(
            &cold,
            &clock,
            cfg.min_samples - 1,
            Duration::from_secs(2),
            0,
        );
        let m = TieredMetrics {
            cold: Some(tier(&cold, "cold")),
            ..Default::default()
        };
        assert!(eval(&cfg, &m).is_empty());
        // One more: p95 of 2 s is 20× the 100 ms target, so critical.
        inject(&cold, &clock, 1, Duration::from_secs(2), 0);
        let m = TieredMetrics {
            cold: Some(tier(&cold, "cold")),
            ..Default::default()
        };
        let found = eval(&cfg, &m);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AlertKind::AccessTimeOverTarget);
        assert_eq!(found[0].severity, AlertSeverity::Critical);
        assert_eq!(found[0].tier, "cold");
    }

    #[test]
    fn metrics_alert_hit_rate_floor() {
        let clock = ManualClock::new(T0);
        let hot = AccessStats::new(Arc::new(clock.clone()), Duration::from_secs(60));
        let cfg = AlertConfig::default();
        // One hit in three: 33% under the 50% floor.
        for i in 0..300 {
            hot.record_at(i % 3 == 0, Duration::from_micros(1), clock.now_ms());
        }
        let m = TieredMetrics {
            hot: Some(tier(&hot, "hot")),
            ..Default::default()
        };
        let found = eval(&cfg, &m);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AlertKind::HitRateBelowFloor);
        assert!(
            found[0].message.contains("hot hit rate 33.3%"),
            "{}",
            found[0].message
        );
        // Disabled floor: nothing.
        let off = AlertConfig {
            hot_hit_rate_floor_pct: None,
            ..AlertConfig::default()
        };
        assert!(eval(&off, &m).is_empty());
    }

    #[test]
    fn metrics_alert_capacity_lag_disk_and_cold_files() {
        let cfg = AlertConfig {
            disk_budget_bytes: Some(1000),
            ..AlertConfig::default()
        };
        let hot = |records| TierMetrics {
            tier_name: "hot".into(),
            record_count: records,
            capacity: Some(1000),
            ..Default::default()
        };
        let warm = |lag| TierMetrics {
            tier_name: "warm".into(),
            archival_lag_secs: lag,
            ..Default::default()
        };
        let problem = ColdFileProblem {
            file_id: Some(7),
            path: "/data/cold/date=2026-01-01/part-000000000001.parquet".into(),
            kind: crate::cold_storage::ProblemKind::Unreadable,
            detail: "bad footer".into(),
        };
        let run = |hot_records, lag, disk: DiskFigures, problems: &[ColdFileProblem]| {
            let m = TieredMetrics {
                hot: Some(hot(hot_records)),
                warm: Some(warm(lag)),
                cold: None,
                query_cache: None,
                ..Default::default()
            };
            evaluate(
                &cfg,
                &Inputs {
                    metrics: &m,
                    disk,
                    cold_problems: problems,
                    warm_corruption: None,
                    replication_lag_alert_secs: 300,
                    failover_alert_after: 3,
                },
            )
            .into_iter()
            .map(|f| (f.kind, f.severity))
            .collect::<Vec<_>>()
        };
        let fine = DiskFigures {
            data_dir_bytes: Some(10),
            free_bytes: Some(u64::MAX),
        };
        assert!(run(799, cfg.archival_grace_secs, fine, &[]).is_empty());
        assert_eq!(
            run(800, 0, fine, &[]),
            [(AlertKind::HotCapacity, AlertSeverity::Warning)]
        );
        assert_eq!(
            run(950, 0, fine, &[]),
            [(AlertKind::HotCapacity, AlertSeverity::Critical)]
        );
        // Full by bytes though not by records.
        let mut by_bytes = hot(10);
        by_bytes.capacity_bytes = Some(1 << 20);
        by_bytes.bytes_stored = 1 << 20;
        let m = TieredMetrics {
            hot: Some(by_bytes),
            ..Default::default()
        };
        let found = evaluate(
            &cfg,
            &Inputs {
                metrics: &m,
                disk: fine,
                cold_problems: &[],
                warm_corruption: None,
                replication_lag_alert_secs: 300,
                failover_alert_after: 3,
            },
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, AlertSeverity::Critical);
        assert!(
            found[0].message.contains("1048576 of 1048576 bytes"),
            "{}",
            found[0].message
        );
        assert_eq!(
            run(0, cfg.archival_grace_secs + 1, fine, &[]),
            [(AlertKind::ArchivalLag, AlertSeverity::Warning)]
        );
        let full = DiskFigures {
            data_dir_bytes: Some(1001),
            free_bytes: Some(5),
        };
        assert_eq!(
            run(0, 0, full, &[]),
            [
                (AlertKind::DiskBudget, AlertSeverity::Warning),
                (AlertKind::LowFreeDisk, AlertSeverity::Critical)
            ]
        );
        assert_eq!(
            run(0, 0, fine, std::slice::from_ref(&problem)),
            [(AlertKind::ColdFileCorruption, AlertSeverity::Critical)]
        );
        // Two problems on record for one file are one alert.
        let mut second = problem.clone();
        second.kind = crate::cold_storage::ProblemKind::Missing;
        assert_eq!(
            run(0, 0, fine, &[problem.clone(), second]),
            [(AlertKind::ColdFileCorruption, AlertSeverity::Critical)]
        );
    }

    #[test]
    fn metrics_alert_capacity_severity_changes_in_place() {
        let mut book = AlertBook::new(4);
        let f = |sev| Finding::new(AlertKind::HotCapacity, sev, "hot", "full");
        book.observe(&EVALUATED, vec![f(AlertSeverity::Warning)], T0);
        book.observe(&EVALUATED, vec![f(AlertSeverity::Critical)], T0 + 1);
        let a = book.active();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].severity, AlertSeverity::Critical);
        assert_eq!((a[0].first_seen_ms, a[0].last_seen_ms), (T0, T0 + 1));
    }

    #[test]
    fn metrics_alert_history_is_bounded() {
        let mut book = AlertBook::new(3);
        for i in 0..10 {
            let f = Finding::new(
                AlertKind::MaintenanceFailure,
                AlertSeverity::Critical,
                "store",
                format!("failure {i}"),
            )
            .subject("archive");
            book.raise(f, T0 + i);
            book.resolve_where(T0 + i, |a| a.kind == AlertKind::MaintenanceFailure);
        }
        let h = book.history();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].message, "failure 7");
        assert_eq!(h[2].resolved_ms, Some(T0 + 9));
        assert!(book.active().is_empty());
    }

    #[test]
    fn metrics_alert_observe_leaves_other_kinds_alone() {
        let mut book = AlertBook::new(8);
        let failure = Finding::new(
            AlertKind::MaintenanceFailure,
            AlertSeverity::Critical,
            "store",
            "archive failed",
        )
        .subject("archive");
        book.raise(failure, T0);
        // An evaluation of the threshold kinds finding nothing does not clear it.
        book.observe(&EVALUATED, Vec::new(), T0 + 1);
        assert_eq!(book.active().len(), 1);
        // Two cold files are two alerts; one repaired clears only its own.
        let file = |p: &str| {
            Finding::new(
                AlertKind::ColdFileCorruption,
                AlertSeverity::Critical,
                "cold",
                "bad",
            )
            .subject(p)
        };
        book.observe(&EVALUATED, vec![file("a"), file("b")], T0 + 2);
        assert_eq!(book.active().len(), 3);
        book.observe(&EVALUATED, vec![file("b")], T0 + 3);
        let subjects: Vec<String> = book.active().iter().map(|a| a.subject.clone()).collect();
        assert_eq!(subjects, ["archive", "b"]);
    }

    use proptest::prelude::*;

    /// The evaluated alerts the book model plays with: (kind, tier, subject).
    const UNIVERSE: [(AlertKind, &str, &str); 6] = [
        (AlertKind::AccessTimeOverTarget, "hot", ""),
        (AlertKind::AccessTimeOverTarget, "warm", ""),
        (AlertKind::HitRateBelowFloor, "hot", ""),
        (AlertKind::Degradation, "cold", ""),
        (AlertKind::ColdFileCorruption, "cold", "a"),
        (AlertKind::ColdFileCorruption, "cold", "b"),
    ];
    /// Subjects of the maintenance failures the model raises and clears by hand.
    const TASKS: [&str; 2] = ["archive", "compact"];

    #[derive(Debug, Clone)]
    enum BookOp {
        /// One evaluation: `UNIVERSE[i]` found with severity `s` where `found[i] == Some(s)`.
        Observe(Vec<Option<AlertSeverity>>),
        /// A failure of `TASKS[i]`.
        Raise(usize, AlertSeverity),
        /// `TASKS[i]` succeeded.
        Resolve(usize),
    }

    fn severity() -> impl Strategy<Value = AlertSeverity> {
        prop_oneof![
            Just(AlertSeverity::Info),
            Just(AlertSeverity::Warning),
            Just(AlertSeverity::Critical),
        ]
    }

    fn book_op() -> impl Strategy<Value = BookOp> {
        prop_oneof![
            2 => proptest::collection::vec(proptest::option::of(severity()), UNIVERSE.len())
                .prop_map(BookOp::Observe),
            1 => (0..TASKS.len(), severity()).prop_map(|(i, s)| BookOp::Raise(i, s)),
            1 => (0..TASKS.len()).prop_map(BookOp::Resolve),
        ]
    }

    /// What the model keeps of an active alert.
    #[derive(Debug, Clone)]
    struct ModelAlert {
        first_seen_ms: i64,
        last_seen_ms: i64,
        occurrences: u64,
        severity: AlertSeverity,
        message: String,
    }

    /// Active alerts by key and a bounded list of resolved ones, oldest first. Alerts cleared
    /// at one time enter the history in key order.
    struct ModelBook {
        active: BTreeMap<Key, ModelAlert>,
        history: VecDeque<Alert>,
        limit: usize,
    }

    impl ModelBook {
        fn alert(key: &Key, m: &ModelAlert, resolved_ms: Option<i64>) -> Alert {
            Alert {
                kind: key.0,
                severity: m.severity,
                tier_name: key.1.clone(),
                subject: key.2.clone(),
                message: m.message.clone(),
                first_seen_ms: m.first_seen_ms,
                last_seen_ms: m.last_seen_ms,
                occurrences: m.occurrences,
                resolved_ms,
            }
        }

        fn upsert(&mut self, key: Key, severity: AlertSeverity, message: String, now: i64) {
            self.active
                .entry(key)
                .and_modify(|m| {
                    m.last_seen_ms = now;
                    m.occurrences += 1;
                    m.severity = severity;
                    m.message.clone_from(&message);
                })
                .or_insert_with(|| ModelAlert {
                    first_seen_ms: now,
                    last_seen_ms: now,
                    occurrences: 1,
                    severity,
                    message: message.clone(),
                });
        }

        fn resolve(&mut self, now: i64, cleared: impl Fn(&Key) -> bool) {
            let keys: Vec<Key> = self.active.keys().filter(|k| cleared(k)).cloned().collect();
            for key in keys {
                let m = self.active.remove(&key).unwrap();
                self.history.push_back(Self::alert(&key, &m, Some(now)));
                if self.history.len() > self.limit {
                    self.history.pop_front();
                }
            }
        }

        /// Active alerts in key order.
        fn active_by_key(&self) -> Vec<Alert> {
            self.active
                .iter()
                .map(|(k, m)| Self::alert(k, m, None))
                .collect()
        }
    }

    fn key_of(a: &Alert) -> Key {
        (a.kind, a.tier_name.clone(), a.subject.clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `AlertBook` against a model of active alerts by key and a bounded history, over
        /// evaluations (`observe` of `EVALUATED`) and maintenance failures raised and cleared
        /// by hand, with time advancing 0..5 s per step.
        #[test]
        fn metrics_alert_book_matches_a_model(
            limit in 1usize..8,
            ops in proptest::collection::vec((book_op(), 0i64..5_000), 1..80),
        ) {
            let mut book = AlertBook::new(limit);
            let mut model = ModelBook {
                active: BTreeMap::new(),
                history: VecDeque::new(),
                limit,
            };
            let mut now = T0;
            for (step, (op, advance)) in ops.into_iter().enumerate() {
                now += advance;
                let failures_before: Vec<Alert> = book
                    .active()
                    .into_iter()
                    .filter(|a| a.kind == AlertKind::MaintenanceFailure)
                    .collect();
                let observed = matches!(op, BookOp::Observe(_));
                match op {
                    BookOp::Observe(found) => {
                        let mut findings = Vec::new();
                        let mut keys = std::collections::HashSet::new();
                        for (i, sev) in found.iter().enumerate() {
                            if let Some(sev) = *sev {
                                let (kind, tier, subject) = UNIVERSE[i];
                                let message = format!("step {step} finding {i}");
                                findings.push(
                                    Finding::new(kind, sev, tier, message.clone()).subject(subject),
                                );
                                let key = (kind, tier.to_owned(), subject.to_owned());
                                keys.insert(key.clone());
                                model.upsert(key, sev, message, now);
                            }
                        }
                        model.resolve(now, |k| EVALUATED.contains(&k.0) && !keys.contains(k));
                        book.observe(&EVALUATED, findings, now);
                    }
                    BookOp::Raise(i, sev) => {
                        let message = format!("step {step} {} failed", TASKS[i]);
                        book.raise(
                            Finding::new(AlertKind::MaintenanceFailure, sev, "store", message.clone())
                                .subject(TASKS[i]),
                            now,
                        );
                        let key = (AlertKind::MaintenanceFailure, "store".to_owned(), TASKS[i].to_owned());
                        model.upsert(key, sev, message, now);
                    }
                    BookOp::Resolve(i) => {
                        book.resolve_where(now, |a| {
                            a.kind == AlertKind::MaintenanceFailure && a.subject == TASKS[i]
                        });
                        model.resolve(now, |k| {
                            k.0 == AlertKind::MaintenanceFailure && k.2 == TASKS[i]
                        });
                    }
                }

                // Active: the model's set, most severe first, then oldest first.
                let active = book.active();
                for pair in active.windows(2) {
                    prop_assert!(
                        pair[0].severity > pair[1].severity
                            || (pair[0].severity == pair[1].severity
                                && pair[0].first_seen_ms <= pair[1].first_seen_ms),
                        "active order at step {}: {:?}",
                        step,
                        active
                    );
                }
                let mut by_key = active.clone();
                by_key.sort_by_key(key_of);
                prop_assert_eq!(&by_key, &model.active_by_key(), "active at step {}", step);
                for a in &active {
                    prop_assert!(a.resolved_ms.is_none());
                    prop_assert!(a.first_seen_ms <= a.last_seen_ms && a.last_seen_ms <= now);
                }

                // History: the model's, bounded, oldest resolved first.
                let history = book.history();
                prop_assert!(history.len() <= limit);
                prop_assert_eq!(&history, &Vec::from(model.history.clone()), "history at step {}", step);
                for pair in history.windows(2) {
                    prop_assert!(pair[0].resolved_ms <= pair[1].resolved_ms);
                }
                for a in &history {
                    prop_assert!(a.resolved_ms.is_some_and(|r| r <= now));
                    prop_assert!(a.first_seen_ms <= a.last_seen_ms);
                    prop_assert!(a.resolved_ms >= Some(a.last_seen_ms));
                }

                // An evaluation leaves maintenance failures exactly as they were.
                if observed {
                    let failures_after: Vec<Alert> = active
                        .iter()
                        .filter(|a| a.kind == AlertKind::MaintenanceFailure)
                        .cloned()
                        .collect();
                    // (Observe cannot raise a failure, so none was cleared and raised again.)
                    prop_assert_eq!(&failures_after, &failures_before, "step {}", step);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Fewer recent lookups than `min_samples` never fire an access-time, hit-rate or
        /// degradation alert, however slow they are and however many miss, even over a large
        /// fast baseline that would make them a degradation. Once the window reaches
        /// `min_samples` the same traffic does fire them (so the silence is the gate's).
        #[test]
        fn metrics_alert_evaluate_needs_min_samples(
            (min_samples, n) in (1u64..=300).prop_flat_map(|m| (Just(m), 0..m)),
            latency_ns in prop_oneof![0u64..10_000_000, 0u64..10_000_000_000],
            miss_every in 0u64..4,
            baseline in any::<bool>(),
        ) {
            let cfg = AlertConfig {
                min_samples,
                warm_hit_rate_floor_pct: Some(50.0),
                ..AlertConfig::default()
            };
            let clock = ManualClock::new(T0);
            let stats = AccessStats::new(Arc::new(clock.clone()), Duration::from_secs(60));
            if baseline {
                // Fast lookups, all hits, out of the window by the time of the slow ones.
                inject(&stats, &clock, 20 * min_samples, Duration::from_micros(1), 0);
                clock.advance(Duration::from_secs(61));
            }
            let latency = Duration::from_nanos(latency_ns);
            inject(&stats, &clock, n, latency, miss_every);
            let all_tiers = |stats: &AccessStats| TieredMetrics {
                hot: Some(tier(stats, "hot")),
                warm: Some(tier(stats, "warm")),
                cold: Some(tier(stats, "cold")),
                query_cache: None,
                ..Default::default()
            };
            let m = all_tiers(&stats);
            let hot = m.hot.as_ref().unwrap();
            prop_assert_eq!(hot.recent_hits + hot.recent_misses, n);
            let found = eval(&cfg, &m);
            prop_assert!(found.is_empty(), "{} of {} samples: {:?}", n, min_samples, found);

            // Up to `min_samples` of the same traffic: now it is judged.
            inject(&stats, &clock, min_samples - n, latency, miss_every);
            let found = eval(&cfg, &all_tiers(&stats));
            let fired = |kind: AlertKind, tier: &str| {
                found.iter().any(|f| f.kind == kind && f.tier == tier)
            };
            // Over every target (the p95 is at least the latency).
            if latency_ns > 2 * cfg.cold_p95_target_us * 1000 {
                for t in ["hot", "warm", "cold"] {
                    prop_assert!(fired(AlertKind::AccessTimeOverTarget, t), "{:?}", found);
                    if baseline {
                        prop_assert!(fired(AlertKind::Degradation, t), "{:?}", found);
                    }
                }
            }
            // Every lookup missed: under both floors.
            if miss_every == 1 {
                prop_assert!(fired(AlertKind::HitRateBelowFloor, "hot"), "{:?}", found);
                prop_assert!(fired(AlertKind::HitRateBelowFloor, "warm"), "{:?}", found);
            }
        }
    }
}
