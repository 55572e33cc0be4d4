//! Prometheus exposition of a metrics snapshot and the active alerts.
//!
//! Built on the `prometheus-client` crate: each scrape registers the snapshot's values as
//! constant metrics in a fresh [`Registry`] (one sub-registry per tier prefix, `hot`, `warm`,
//! `cold`, plus `store` for alerts) and encodes it with the library's Prometheus text encoder.
//! The output is the Prometheus **text format 0.0.4** (not OpenMetrics: there is no `# EOF`
//! line), served with [`CONTENT_TYPE`].
//!
//! Families (`<tier>` is each tier present in the snapshot; an absent tier emits nothing):
//!
//! | family | type | value |
//! | --- | --- | --- |
//! | `<tier>_hit_total`, `<tier>_miss_total` | counter | lookups answered / not answered since open |
//! | `<tier>_records` | gauge | records held |
//! | `<tier>_bytes` | gauge | bytes stored |
//! | `<tier>_capacity_records` | gauge | most records held (only when bounded) |
//! | `<tier>_capacity_bytes` | gauge | most encoded bytes held (only when bounded) |
//! | `<tier>_eviction_total`, `<tier>_expiration_total`, `<tier>_promotion_total` | counter | |
//! | `<tier>_access_seconds{quantile}` | gauge | 0.5 / 0.95 / 0.99 lookup time, recent window |
//! | `<tier>_access_seconds_max`, `<tier>_access_seconds_avg` | gauge | recent window |
//! | `<tier>_access_baseline_seconds{quantile="0.95"}` | gauge | p95 since open |
//! | `<tier>_access_window_seconds` | gauge | length of the recent window |
//! | `<tier>_recent_hit_ratio` | gauge | 0..1, only when the window saw lookups |
//! | `warm_archival_lag_seconds` | gauge | warm only |
//! | `cold_archived_total` | counter | cold only |
//! | `cold_files`, `cold_quarantined_files` | gauge | cold only |
//! | `query_cache_hits_total`, `query_cache_misses_total`, `query_cache_invalidations_total` | counter | query-result cache, only when it is on |
//! | `query_cache_entries`, `query_cache_bytes` | gauge | answers held, estimated bytes |
//! | `cold_replication_lag_objects{replica}`, `cold_replication_lag_bytes{replica}` | gauge | what a replica (`cold.replicas`) lacks |
//! | `cold_replication_lag_seconds{replica}` | gauge | age of the oldest object a replica lacks (0: caught up) |
//! | `cold_store_failed_reads_total{store}`, `cold_store_failovers_total{store}` | counter | reads a store (`primary` or a replica) failed; of them, served by a replica |
//! | `cold_store_consecutive_failures{store}` | gauge | reads failed in a row |
//! | `store_alerts{severity}` | gauge | active alerts per severity (all three, 0 when none) |
//! | `store_alert_active{kind,tier,severity,subject}` | gauge | 1 per active alert |
//!
//! The access-time quantiles are gauges with a `quantile` label rather than a summary: the
//! library has no summary type, and the quantiles cover a sliding window, so the `_sum` and
//! `_count` a summary carries would not be monotonic anyway.

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeGaugeValue, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::alerts::{Alert, AlertSeverity};
use super::{QueryCacheMetrics, TieredMetrics};
use crate::cold_storage::{ReplicaLagMetrics, StoreFailureMetrics};
use crate::metrics::TierMetrics;

/// `Content-Type` of what [`render`] produces: the Prometheus text format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Severities `store_alerts` always reports, in this order.
const SEVERITIES: [AlertSeverity; 3] = [
    AlertSeverity::Info,
    AlertSeverity::Warning,
    AlertSeverity::Critical,
];

/// Render `metrics` and the active ones of `alerts` (those with no `resolved_ms`) in the
/// Prometheus text format 0.0.4.
pub(crate) fn render(metrics: &TieredMetrics, alerts: &[Alert]) -> String {
    let mut registry = Registry::default();
    for (prefix, tier) in [
        ("hot", &metrics.hot),
        ("warm", &metrics.warm),
        ("cold", &metrics.cold),
    ] {
        if let Some(tier) = tier {
            register_tier(registry.sub_registry_with_prefix(prefix), prefix, tier);
        }
    }
    if let Some(cache) = &metrics.query_cache {
        register_query_cache(registry.sub_registry_with_prefix("query_cache"), cache);
    }
    if !metrics.replication.is_empty() || !metrics.cold_stores.is_empty() {
        register_replication(registry.sub_registry_with_prefix("cold"), metrics);
    }
    register_alerts(registry.sub_registry_with_prefix("store"), alerts);

    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)
        .expect("encoding constant metrics into a String cannot fail");
    out
}

fn register_tier(r: &mut Registry, prefix: &str, t: &TierMetrics) {
    let counter = |v: u64| ConstCounter::new(v);
    let gauge = |v: u64| ConstGauge::new(v);
    let secs = |us: u64| us as f64 / 1e6;

    r.register(
        "hit",
        "Lookups this tier answered since the store opened",
        counter(t.hits),
    );
    r.register(
        "miss",
        "Lookups this tier could not answer since the store opened",
        counter(t.misses),
    );
    r.register("records", "Records the tier holds", gauge(t.record_count));
    r.register("bytes", "Bytes the tier holds", gauge(t.bytes_stored));
    if let Some(capacity) = t.capacity {
        r.register(
            "capacity_records",
            "Most records the tier holds",
            gauge(capacity),
        );
    }
    if let Some(capacity) = t.capacity_bytes {
        r.register(
            "capacity_bytes",
            "Most encoded bytes the tier holds",
            gauge(capacity),
        );
    }
    r.register(
        "eviction",
        "Records evicted for capacity since the store opened",
        counter(t.evictions),
    );
    r.register(
        "expiration",
        "Records expired by age since the store opened",
        counter(t.expirations),
    );
    r.register(
        "promotion",
        "Records promoted into this tier by reads since the store opened",
        counter(t.promotions),
    );

    r.register(
        "access_seconds",
        "Lookup time quantiles over the recent window, seconds",
        GaugeFamily::new(
            [
                ("0.5", t.p50_access_time_us),
                ("0.95", t.p95_access_time_us),
                ("0.99", t.p99_access_time_us),
            ]
            .map(|(q, us)| (vec![("quantile", q.to_owned())], secs(us)))
            .to_vec(),
        ),
    );
    r.register(
        "access_seconds_max",
        "Slowest lookup over the recent window, seconds",
        ConstGauge::new(secs(t.max_access_time_us)),
    );
    let avg = t.avg_access_time_us / 1e6;
    if avg.is_finite() {
        r.register(
            "access_seconds_avg",
            "Mean lookup time over the recent window, seconds",
            ConstGauge::new(avg),
        );
    }
    r.register(
        "access_baseline_seconds",
        "Lookup time quantile since the store opened (the degradation baseline), seconds",
        GaugeFamily::new(vec![(
            vec![("quantile", "0.95".to_owned())],
            secs(t.baseline_p95_access_time_us),
        )]),
    );
    r.register(
        "access_window_seconds",
        "Length of the recent window the access times cover, seconds",
        gauge(t.window_secs),
    );
    if let Some(pct) = t.recent_hit_rate() {
        r.register(
            "recent_hit_ratio",
            "Share of lookups this tier answered over the recent window (0 to 1)",
            ConstGauge::new(pct / 100.0),
        );
    }

    match prefix {
        "warm" => {
            r.register(
                "archival_lag_seconds",
                "How far the oldest warm record is past its move to cold, seconds",
                gauge(t.archival_lag_secs),
            );
            r.register(
                "write",
                "Writes (puts, updates, removes) carried by committed transactions since the store opened",
                counter(t.writes),
            );
        }
        "cold" => {
            r.register(
                "archived",
                "Records archived into cold since the store opened",
                counter(t.records_archived),
            );
            r.register(
                "files",
                "Catalogued Parquet files, quarantined included",
                gauge(t.file_count),
            );
            r.register(
                "quarantined_files",
                "Files quarantined as missing or corrupt",
                gauge(t.quarantined_files),
            );
        }
        _ => {}
    }
}

fn register_query_cache(r: &mut Registry, c: &QueryCacheMetrics) {
    r.register(
        "hits",
        "Answers the query-result cache served since the store opened",
        ConstCounter::new(c.hits),
    );
    r.register(
        "misses",
        "Answers computed because the query-result cache held none current, since the store opened",
        ConstCounter::new(c.misses),
    );
    r.register(
        "invalidations",
        "Cached answers found stale and dropped since the store opened",
        ConstCounter::new(c.invalidations),
    );
    r.register(
        "entries",
        "Answers the query-result cache holds",
        ConstGauge::new(c.entries),
    );
    r.register(
        "bytes",
        "Estimated bytes the query-result cache holds",
        ConstGauge::new(c.bytes),
    );
}

fn register_replication(r: &mut Registry, m: &TieredMetrics) {
    let by_replica = |value: fn(&ReplicaLagMetrics) -> u64| {
        GaugeFamily::new(
            m.replication
                .iter()
                .map(|l| (vec![("replica", l.replica.clone())], value(l)))
                .collect(),
        )
    };
    r.register(
        "replication_lag_objects",
        "Catalogued cold objects a replica holds no copy of yet",
        by_replica(|l| l.objects),
    );
    r.register(
        "replication_lag_bytes",
        "Bytes of the cold objects a replica holds no copy of yet",
        by_replica(|l| l.bytes),
    );
    r.register(
        "replication_lag_seconds",
        "Seconds since the oldest cold object a replica lacks was created (0 when caught up)",
        by_replica(|l| l.seconds),
    );
    let by_store = |value: fn(&StoreFailureMetrics) -> u64| {
        m.cold_stores
            .iter()
            .map(|s| (vec![("store", s.store.clone())], value(s)))
            .collect::<Vec<_>>()
    };
    r.register(
        "store_failed_reads",
        "Cold reads a store (primary or replica) failed since the store opened",
        CounterFamily::new(by_store(|s| s.failed_reads)),
    );
    r.register(
        "store_failovers",
        "Cold reads a store failed that a replica served since the store opened",
        CounterFamily::new(by_store(|s| s.failovers)),
    );
    r.register(
        "store_consecutive_failures",
        "Cold reads a store failed in a row (0 after a success)",
        GaugeFamily::new(by_store(|s| s.consecutive_failures)),
    );
}

fn register_alerts(r: &mut Registry, alerts: &[Alert]) {
    let active: Vec<&Alert> = alerts.iter().filter(|a| a.resolved_ms.is_none()).collect();

    let per_severity = SEVERITIES
        .iter()
        .map(|s| {
            let n = active.iter().filter(|a| a.severity == *s).count() as u64;
            (vec![("severity", format!("{s:?}"))], n)
        })
        .collect();
    r.register(
        "alerts",
        "Active alerts by severity",
        GaugeFamily::new(per_severity),
    );

    // The alert book keys alerts by (kind, tier, subject), so these label sets are unique;
    // summing guards the exposition against duplicate series all the same.
    let mut series: BTreeMap<[String; 4], u64> = BTreeMap::new();
    for a in active {
        let key = [
            format!("{:?}", a.kind),
            a.tier_name.clone(),
            format!("{:?}", a.severity),
            a.subject.clone(),
        ];
        *series.entry(key).or_default() += 1;
    }
    let rows = series
        .into_iter()
        .map(|([kind, tier, severity, subject], n)| {
            let labels = vec![
                ("kind", kind),
                ("tier", tier),
                ("severity", severity),
                ("subject", subject),
            ];
            (labels, n)
        })
        .collect();
    r.register(
        "alert_active",
        "1 for each active alert (kind, tier, severity, subject)",
        GaugeFamily::new(rows),
    );
}

/// A gauge family with fixed label sets, encoded in the given order (the library's `Family`
/// encodes in hash order). Omitted from the exposition when it has no rows.
#[derive(Debug)]
struct GaugeFamily<N> {
    rows: Vec<(Vec<(&'static str, String)>, N)>,
}

impl<N> GaugeFamily<N> {
    fn new(rows: Vec<(Vec<(&'static str, String)>, N)>) -> Self {
        Self { rows }
    }
}

impl<N: EncodeGaugeValue + fmt::Debug> EncodeMetric for GaugeFamily<N> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (labels, value) in &self.rows {
            encoder.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A counter family with fixed label sets, encoded in the given order.
#[derive(Debug)]
struct CounterFamily {
    rows: Vec<(Vec<(&'static str, String)>, u64)>,
}

impl CounterFamily {
    fn new(rows: Vec<(Vec<(&'static str, String)>, u64)>) -> Self {
        Self { rows }
    }
}

impl EncodeMetric for CounterFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (labels, value) in &self.rows {
            encoder
                .encode_family(labels)?
                .encode_counter::<Vec<(String, String)>, _, u64>(value, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::AlertKind;
    use std::collections::{HashMap, HashSet};

    fn tier(name: &str) -> TierMetrics {
        TierMetrics {
            tier_name: name.to_owned(),
            record_count: 7,
            bytes_stored: 4096,
            capacity: None,
            capacity_bytes: None,
            hits: 42,
            misses: 8,
            recent_hits: 3,
            recent_misses: 1,
            evictions: 5,
            expirations: 6,
            promotions: 9,
            writes: 31,
            records_archived: 0,
            archival_lag_secs: 0,
            file_count: 0,
            quarantined_files: 0,
            window_secs: 60,
            avg_access_time_us: 2.5,
            p50_access_time_us: 2,
            p95_access_time_us: 13,
            p99_access_time_us: 250,
            max_access_time_us: 1_500_000,
            baseline_p95_access_time_us: 10,
            baseline_samples: 50,
        }
    }

    fn full() -> TieredMetrics {
        TieredMetrics {
            hot: Some(TierMetrics {
                capacity: Some(10_000),
                ..tier("hot")
            }),
            warm: Some(TierMetrics {
                hits: 11,
                archival_lag_secs: 120,
                ..tier("warm")
            }),
            cold: Some(TierMetrics {
                records_archived: 3000,
                file_count: 4,
                quarantined_files: 1,
                recent_hits: 0,
                recent_misses: 0,
                ..tier("cold")
            }),
            query_cache: None,
            replication: vec![ReplicaLagMetrics {
                replica: "eu".into(),
                objects: 2,
                bytes: 4096,
                seconds: 7,
            }],
            cold_stores: vec![StoreFailureMetrics {
                store: "primary".into(),
                failed_reads: 5,
                failovers: 4,
                consecutive_failures: 3,
            }],
        }
    }

    fn alert(kind: AlertKind, severity: AlertSeverity, tier: &str, subject: &str) -> Alert {
        Alert {
            kind,
            severity,
            tier_name: tier.to_owned(),
            subject: subject.to_owned(),
            message: "something is off".to_owned(),
            first_seen_ms: 1,
            last_seen_ms: 2,
            occurrences: 1,
            resolved_ms: None,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    fn assert_has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }

    /// One sample line: metric name, labels in order, value.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// Parse a sample line of the text format 0.0.4 (no timestamps are emitted), strictly.
    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest.find('=').ok_or("label without =")?;
                let key = &rest[..eq];
                if !is_name(key) || key.starts_with("__") {
                    return Err(format!("bad label name {key:?}"));
                }
                let mut chars = rest[eq + 1..]
                    .strip_prefix('"')
                    .ok_or("unquoted label")?
                    .chars();
                let mut value = String::new();
                loop {
                    match chars.next().ok_or("unterminated label value")? {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("bad escape {other:?}")),
                        },
                        '\n' => return Err("raw newline in label value".into()),
                        c => value.push(c),
                    }
                }
                labels.push((key.to_owned(), value));
                rest = chars.as_str();
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else if !rest.starts_with('}') {
                    return Err(format!("expected , or }} at {rest:?}"));
                }
            }
        }
        let value = rest.strip_prefix(' ').ok_or("no space before value")?;
        let value: f64 = value
            .parse()
            .map_err(|e| format!("bad value {value:?}: {e}"))?;
        if !value.is_finite() {
            return Err(format!("non-finite value {value}"));
        }
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    /// Check the exposition's structure; return its samples.
    fn check_exposition(text: &str) -> Vec<Sample> {
        assert!(text.is_empty() || text.ends_with('\n'), "no final newline");
        let mut helps: HashMap<&str, usize> = HashMap::new();
        let mut types: HashMap<&str, usize> = HashMap::new();
        let mut current: Option<&str> = None;
        let mut series = HashSet::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                *helps.entry(name).or_default() += 1;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line with a type");
                assert!(
                    matches!(kind, "counter" | "gauge"),
                    "type {kind} in {line:?}"
                );
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter {name} without _total");
                    assert!(!name.ends_with("_total_total"), "doubled _total: {name}");
                }
                *types.entry(name).or_default() += 1;
                current = Some(name);
            } else {
                assert!(!line.starts_with('#'), "unexpected comment {line:?}");
                let sample = parse_sample(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
                assert_eq!(
                    Some(sample.name.as_str()),
                    current,
                    "sample outside its family"
                );
                assert!(
                    series.insert(line.rsplit_once(' ').unwrap().0.to_owned()),
                    "duplicate series {line}"
                );
                samples.push(sample);
            }
        }
        for (name, n) in &types {
            assert_eq!(*n, 1, "{name} has {n} TYPE lines");
            assert_eq!(
                helps.get(name),
                Some(&1),
                "{name} needs exactly one HELP line"
            );
        }
        assert_eq!(helps.len(), types.len(), "HELP without TYPE");
        for name in types.keys() {
            assert!(!name.contains("seconds_seconds"), "doubled unit in {name}");
        }
        samples
    }

    #[test]
    fn metrics_prometheus_renders_known_values_as_exact_lines() {
        let text = render(&full(), &[]);
        for line in [
            "# HELP hot_hit_total Lookups this tier answered since the store opened.",
            "# TYPE hot_hit_total counter",
            "hot_hit_total 42",
            "hot_miss_total 8",
            "hot_records 7",
            "hot_bytes 4096",
            "hot_capacity_records 10000",
            "hot_eviction_total 5",
            "hot_expiration_total 6",
            "hot_promotion_total 9",
            "# TYPE hot_access_seconds gauge",
            "hot_access_seconds{quantile=\"0.5\"} 0.000002",
            "hot_access_seconds{quantile=\"0.99\"} 0.00025",
            "hot_access_seconds_max 1.5",
            "hot_access_seconds_avg 0.0000025",
            "hot_access_baseline_seconds{quantile=\"0.95\"} 0.00001",
            "hot_access_window_seconds 60",
            "hot_recent_hit_ratio 0.75",
            "warm_hit_total 11",
            "warm_access_seconds{quantile=\"0.95\"} 0.000013",
            "warm_archival_lag_seconds 120",
            "# TYPE warm_write_total counter",
            "warm_write_total 31",
            "# TYPE cold_archived_total counter",
            "cold_archived_total 3000",
            "cold_files 4",
            "cold_quarantined_files 1",
            "# TYPE cold_replication_lag_seconds gauge",
            "cold_replication_lag_objects{replica=\"eu\"} 2",
            "cold_replication_lag_bytes{replica=\"eu\"} 4096",
            "cold_replication_lag_seconds{replica=\"eu\"} 7",
            "# TYPE cold_store_failed_reads_total counter",
            "cold_store_failed_reads_total{store=\"primary\"} 5",
            "cold_store_failovers_total{store=\"primary\"} 4",
            "cold_store_consecutive_failures{store=\"primary\"} 3",
            "store_alerts{severity=\"Info\"} 0",
            "store_alerts{severity=\"Warning\"} 0",
            "store_alerts{severity=\"Critical\"} 0",
        ] {
            assert_has(&text, line);
        }
        // The float printed for 13 µs is the one Prometheus parses back.
        let q95 = check_exposition(&text)
            .into_iter()
            .find(|s| s.name == "warm_access_seconds" && s.labels[0].1 == "0.95")
            .unwrap();
        assert_eq!(q95.value, 0.000013);
    }

    #[test]
    fn metrics_prometheus_every_sample_line_parses_with_finite_value() {
        let alerts = [alert(
            AlertKind::HotCapacity,
            AlertSeverity::Warning,
            "hot",
            "",
        )];
        let text = render(&full(), &alerts);
        let samples = check_exposition(&text);
        // 3 tiers × 15 common samples (7 counts, 3 quantiles, max, avg, baseline, window,
        // ratio) + hot capacity + warm lag and writes + 3 cold + 3 severities + 1 alert, less
        // cold's ratio (its window saw no lookups), + 3 replication lag + 3 store figures.
        assert_eq!(
            samples.len(),
            3 * 15 + 1 + 2 + 3 + 3 + 1 - 1 + 3 + 3,
            "{text}"
        );
        assert!(samples
            .iter()
            .all(|s| s.value.is_finite() && s.value >= 0.0));
    }

    #[test]
    fn metrics_prometheus_each_family_has_one_help_and_one_type_line() {
        let alerts = [
            alert(
                AlertKind::ColdFileCorruption,
                AlertSeverity::Critical,
                "cold",
                "a.parquet",
            ),
            alert(
                AlertKind::ColdFileCorruption,
                AlertSeverity::Critical,
                "cold",
                "b.parquet",
            ),
        ];
        let text = render(&full(), &alerts);
        check_exposition(&text);
        let types: Vec<&str> = lines(&text)
            .into_iter()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let unique: HashSet<&str> = types.iter().copied().collect();
        assert_eq!(unique.len(), types.len(), "{types:?}");
        assert!(unique.contains("store_alert_active gauge"));
    }

    #[test]
    fn metrics_prometheus_query_cache_families() {
        let with_cache = TieredMetrics {
            query_cache: Some(QueryCacheMetrics {
                hits: 9,
                misses: 4,
                invalidations: 2,
                entries: 3,
                bytes: 1234,
            }),
            ..full()
        };
        let text = render(&with_cache, &[]);
        check_exposition(&text);
        for line in [
            "# TYPE query_cache_hits_total counter",
            "query_cache_hits_total 9",
            "query_cache_misses_total 4",
            "query_cache_invalidations_total 2",
            "# TYPE query_cache_entries gauge",
            "query_cache_entries 3",
            "query_cache_bytes 1234",
        ] {
            assert_has(&text, line);
        }
        assert!(!render(&full(), &[]).contains("query_cache"));
    }

    #[test]
    fn metrics_prometheus_absent_tiers_produce_no_lines() {
        let only_hot = TieredMetrics {
            hot: Some(tier("hot")),
            warm: None,
            cold: None,
            query_cache: None,
            ..Default::default()
        };
        let text = render(&only_hot, &[]);
        check_exposition(&text);
        assert!(text.contains("hot_hit_total 42"));
        for line in text.lines() {
            let name = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .unwrap_or(line);
            assert!(
                name.starts_with("hot_") || name.starts_with("store_"),
                "unexpected line {line:?}"
            );
        }

        let empty = render(&TieredMetrics::default(), &[]);
        check_exposition(&empty);
        assert_eq!(
            empty,
            "# HELP store_alerts Active alerts by severity.\n\
             # TYPE store_alerts gauge\n\
             store_alerts{severity=\"Info\"} 0\n\
             store_alerts{severity=\"Warning\"} 0\n\
             store_alerts{severity=\"Critical\"} 0\n"
        );
    }

    #[test]
    fn metrics_prometheus_optional_and_tier_specific_families() {
        let text = render(&full(), &[]);
        // Capacity only where bounded, ratio only where the window saw lookups.
        assert!(!text.contains("warm_capacity_records"));
        assert!(!text.contains("cold_recent_hit_ratio"));
        assert_has(&text, "warm_recent_hit_ratio 0.75");
        // Archival and file families only where they mean something.
        for absent in [
            "hot_archived_total",
            "warm_archived_total",
            "hot_archival_lag_seconds",
            "cold_archival_lag_seconds",
            "hot_files",
            "warm_files",
            "hot_quarantined_files",
        ] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
        // No unit or suffix doubled.
        assert!(!text.contains("seconds_seconds"));
        assert!(!text.contains("_total_total"));
    }

    #[test]
    fn metrics_prometheus_alerts_count_active_by_severity_and_list_each_active() {
        let mut resolved = alert(AlertKind::ArchivalLag, AlertSeverity::Warning, "warm", "");
        resolved.resolved_ms = Some(3);
        let alerts = [
            alert(AlertKind::HotCapacity, AlertSeverity::Critical, "hot", ""),
            alert(
                AlertKind::MaintenanceFailure,
                AlertSeverity::Warning,
                "store",
                "archive",
            ),
            alert(AlertKind::Degradation, AlertSeverity::Warning, "warm", ""),
            resolved,
        ];
        let text = render(&TieredMetrics::default(), &alerts);
        check_exposition(&text);
        assert_has(&text, "store_alerts{severity=\"Info\"} 0");
        assert_has(&text, "store_alerts{severity=\"Warning\"} 2");
        assert_has(&text, "store_alerts{severity=\"Critical\"} 1");
        assert_has(
            &text,
            "store_alert_active{kind=\"HotCapacity\",tier=\"hot\",severity=\"Critical\",subject=\"\"} 1",
        );
        assert_has(
            &text,
            "store_alert_active{kind=\"MaintenanceFailure\",tier=\"store\",severity=\"Warning\",subject=\"archive\"} 1",
        );
        assert_has(
            &text,
            "store_alert_active{kind=\"Degradation\",tier=\"warm\",severity=\"Warning\",subject=\"\"} 1",
        );
        assert!(
            !text.contains("ArchivalLag"),
            "a resolved alert is not active"
        );
        assert_eq!(text.matches("store_alert_active{").count(), 3);
    }

    #[test]
    fn metrics_prometheus_label_values_are_escaped() {
        let alerts = [alert(
            AlertKind::ColdFileCorruption,
            AlertSeverity::Critical,
            "cold",
            "dir\\x\"y\"\nz.parquet",
        )];
        let text = render(&TieredMetrics::default(), &alerts);
        let samples = check_exposition(&text);
        let active = samples
            .iter()
            .find(|s| s.name == "store_alert_active")
            .unwrap();
        assert_eq!(
            active.labels[3],
            ("subject".to_owned(), "dir\\x\"y\"\nz.parquet".to_owned())
        );
    }

    #[test]
    fn metrics_prometheus_is_text_format_0_0_4_not_openmetrics() {
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
        let text = render(&full(), &[]);
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("# UNIT"));
        assert!(text.ends_with('\n'));
    }
}
