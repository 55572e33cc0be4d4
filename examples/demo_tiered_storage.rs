//! A tour of the tiered store: store a few thousand trades, read them from the hot and warm
//! tiers, watch a record get promoted, fill in a trade's outcome, remove one, stream a range,
//! archive week-old trades to Parquet and read them back from the cold tier, print per-tier
//! metrics and alerts (and the Prometheus exposition), with the maintenance loop running in the
//! background, and shut down gracefully.
//!
//! Run: `cargo run --release --example demo_tiered_storage`
//!
//! It uses the library's default data directory, `tiered_storage_data/` in the working
//! directory (or `$TIERED_STORAGE_DATA_DIR`), so it needs no setup. It is also a smoke test: every
//! fact it prints about routing and contents is asserted, and a failure exits non-zero.
//!
//! Re-running in the same directory is safe. Earlier runs' records stay where they are; every
//! check below compares against counts taken at the start of this run. Each run draws its
//! 88-character signatures from a generator seeded with a run nonce (the wall clock in
//! nanoseconds and the process id), so a new run never repeats an earlier run's signature and
//! never hits `Error::DuplicateSignature`. We do not delete earlier records to start clean,
//! because the default directory may also hold data that is not the demo's.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use tiered_storage::{
    AlertKind, AutoTieringCoordinator, Error, Outcome, OutcomeKind, PremintCandidate, ScanRange,
    ScoredCandidate, StorageStats, StorageTier, TierMetrics, TransactionRecord,
};

/// Trades stored by one run. Below the default hot capacity (10,000), so all of them are
/// cached after `put`.
const RECORDS: usize = 5_000;
/// Concurrent writer tasks; their puts share group-commit transactions.
const WRITERS: usize = 16;
/// Reads per latency measurement.
const SAMPLES: usize = 2_000;
/// Week-old trades stored then archived to the cold tier by one run.
const OLD_RECORDS: usize = 3_000;
const DAY_MS: i64 = 86_400_000;

/// pump.fun's program id.
const PUMP_FUN: &str = "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P";
const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();

    // ── 1. Open ──────────────────────────────────────────────────────────────────────────────
    section("1. Open the store with every default");
    let store = Arc::new(AutoTieringCoordinator::with_defaults().await?);
    let cfg = store.config();
    let promote_on = cfg.tiering.min_hot_access_count;
    ensure!(
        cfg.tiering.auto_promote_on_access,
        "the demo expects the default policy (auto_promote_on_access = true)"
    );
    println!("data directory   {}", cfg.data_dir.display());
    println!("warm database    {}", store.warm_tier().path().display());
    println!(
        "hot tier         {} records max, TTL {} s",
        store.hot_tier().capacity(),
        cfg.tiering.hot_to_warm_age
    );
    println!("promotion        on read #{promote_on} of a record that is not in hot");
    let at_open = store.get_stats().await?;
    println!(
        "already stored   {} records (from earlier runs: {} warm, {} archived in cold)",
        at_open.total_records, at_open.warm_records, at_open.cold_records
    );
    // Background maintenance, as in the seed. Its first step runs at once (warm upkeep,
    // archival of anything an earlier run left due, alerts); the next one after
    // `maintenance_interval`. Wait for the first, so the counts below are this run's own.
    let looping = {
        let coordinator_clone = store.clone();
        tokio::spawn(async move {
            coordinator_clone.start_maintenance_loop().await;
        })
    };
    while store.maintenance_status().steps == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_open = store.get_stats().await?;
    println!(
        "maintenance loop running: every {} s, archival at most {} records/s",
        cfg.tiering.maintenance_interval, cfg.maintenance.archive_records_per_sec
    );

    // ── 2. Store ─────────────────────────────────────────────────────────────────────────────
    section(&format!(
        "2. Store {RECORDS} trades from {WRITERS} concurrent writers"
    ));
    let nonce = run_nonce();
    let run_start_ms = now_ms();
    let mut rng = Rng(nonce);
    // One decision per millisecond from the start of the run, so record i has timestamp
    // `run_start_ms + i` and `list_since` below can select the newest ones.
    let records: Vec<TransactionRecord> = (0..RECORDS)
        .map(|i| trade(&mut rng, i, run_start_ms + i as i64))
        .collect();
    let (commits_before, writes_before) = store.warm_tier().group_commit_counts();
    let t = Instant::now();
    let records = Arc::new(records);
    let mut tasks = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let (store, records) = (Arc::clone(&store), Arc::clone(&records));
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..RECORDS).step_by(WRITERS) {
                // `put` returns once the SQLite transaction holding the record has committed.
                ids.push((i, store.put(&records[i]).await?));
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = vec![0_i64; RECORDS];
    for task in tasks {
        for (i, id) in task.await.context("writer task panicked")?? {
            ids[i] = id;
        }
    }
    let elapsed = t.elapsed();
    let mut records = Arc::unwrap_or_clone(records);
    for (r, &id) in records.iter_mut().zip(&ids) {
        r.id = Some(id);
    }
    let sig = |i: usize| signature(&records[i]);
    let (commits, writes) = store.warm_tier().group_commit_counts();
    let (commits, writes) = (commits - commits_before, writes - writes_before);
    println!(
        "stored {RECORDS} records in {:.0} ms ({:.0} records/s), each acknowledged after its commit",
        ms(elapsed),
        RECORDS as f64 / elapsed.as_secs_f64()
    );
    println!(
        "group commit: {writes} writes in {commits} SQLite transactions ({:.1} writes per commit)",
        writes as f64 / commits.max(1) as f64
    );
    let stats = store.get_stats().await?;
    ensure!(stats.warm_records == at_open.warm_records + RECORDS as u64);
    ensure!(
        ids.iter().all(|&id| store.hot_tier().contains_id(id)),
        "every put is cached in hot"
    );
    println!(
        "warm now holds {} records; hot caches {}",
        stats.warm_records, stats.hot_records
    );
    println!("example: {}", describe(&records[0]));

    // ── 3. Read by id and by signature ───────────────────────────────────────────────────────
    section("3. Read by id and by signature (fresh puts are cached: hot hits)");
    let i = 42;
    let before = store.get_stats().await?;
    let by_id = store.get(ids[i]).await?.context("a stored record")?;
    let after_id = store.get_stats().await?;
    let by_sig = store
        .get_by_signature(sig(i))
        .await?
        .context("a stored signature")?;
    let after_sig = store.get_stats().await?;
    ensure!(by_id == records[i] && by_sig == records[i]);
    ensure!(
        after_sig.hot_hits == before.hot_hits + 2,
        "both were hot hits"
    );
    let by_id_call = format!("get({})", ids[i]);
    let by_sig_call = format!(
        "get_by_signature(\"{}…\")",
        sig(i).get(..10).unwrap_or_default()
    );
    println!("{by_id_call:<32} -> {}", route(&before, &after_id));
    println!("{by_sig_call:<32} -> {}", route(&after_id, &after_sig));
    println!("record: {}", describe(&by_id));

    // ── 4. Hot latency ───────────────────────────────────────────────────────────────────────
    section(&format!(
        "4. Hot tier: time {SAMPLES} gets by id and {SAMPLES} by signature"
    ));
    let before = store.get_stats().await?;
    let mut hot_by_id = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let t = Instant::now();
        let got = store.get(ids[i]).await?;
        hot_by_id.push(t.elapsed());
        ensure!(got.as_ref() == Some(&records[i]));
    }
    let mut hot_by_sig = Vec::with_capacity(SAMPLES);
    for expected in &records[SAMPLES..2 * SAMPLES] {
        let t = Instant::now();
        let got = store.get_by_signature(signature(expected)).await?;
        hot_by_sig.push(t.elapsed());
        ensure!(got.as_ref() == Some(expected));
    }
    let after = store.get_stats().await?;
    ensure!(after.hot_hits - before.hot_hits == 2 * SAMPLES as u64);
    println!("{}", latency_line("hot get by id", &mut hot_by_id));
    println!("{}", latency_line("hot get by signature", &mut hot_by_sig));

    // ── 5. Warm hits and promotion ───────────────────────────────────────────────────────────
    section(&format!(
        "5. Clear hot, then read one record {} times: promotion on read #{promote_on}",
        promote_on + 1
    ));
    // Hot is only a cache: dropping it loses nothing, the next reads come from SQLite.
    store.hot_tier().clear();
    ensure!(store.hot_tier().is_empty());
    println!("hot cleared: {} records cached", store.hot_tier().len());
    let p = 4_500;
    for read in 1..=promote_on + 1 {
        let before = store.get_stats().await?;
        let got = store.get(ids[p]).await?;
        let after = store.get_stats().await?;
        ensure!(got.as_ref() == Some(&records[p]));
        let cached = store.hot_tier().contains_id(ids[p]);
        println!(
            "read #{read}: get({}) -> {:<22} in hot afterwards: {cached}",
            ids[p],
            route(&before, &after)
        );
        if read < promote_on {
            ensure!(after.warm_hits == before.warm_hits + 1 && !cached);
        } else if read == promote_on {
            ensure!(after.warm_hits == before.warm_hits + 1);
            ensure!(after.promotions == before.promotions + 1 && cached);
        } else {
            ensure!(after.hot_hits == before.hot_hits + 1 && cached);
        }
    }

    // ── 6. Warm latency ──────────────────────────────────────────────────────────────────────
    section(&format!(
        "6. Warm tier: time {SAMPLES} gets by id and {SAMPLES} by signature (hot misses)"
    ));
    // Each record is read once, below the promotion count, so every read goes to SQLite.
    let before = store.get_stats().await?;
    let mut warm_by_id = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let t = Instant::now();
        let got = store.get(ids[i]).await?;
        warm_by_id.push(t.elapsed());
        ensure!(got.as_ref() == Some(&records[i]));
    }
    let mut warm_by_sig = Vec::with_capacity(SAMPLES);
    for expected in &records[SAMPLES..2 * SAMPLES] {
        let t = Instant::now();
        let got = store.get_by_signature(signature(expected)).await?;
        warm_by_sig.push(t.elapsed());
        ensure!(got.as_ref() == Some(expected));
    }
    let after = store.get_stats().await?;
    // `>=`: the promotion counter is an approximate frequency sketch, so a rare collision can
    // promote a record on its first read (a signature read that promotes re-reads by id).
    ensure!(after.hot_hits == before.hot_hits);
    ensure!(after.warm_hits - before.warm_hits >= 2 * SAMPLES as u64);
    println!("{}", latency_line("warm get by id", &mut warm_by_id));
    println!(
        "{}",
        latency_line("warm get by signature", &mut warm_by_sig)
    );

    // ── 7. Outcome update ────────────────────────────────────────────────────────────────────
    section("7. The trade closes: fill in its outcome with update()");
    let mut closed = store.get(ids[p]).await?.context("the promoted record")?;
    println!("before: {}", describe(&closed));
    let spent = closed.initial_sol_spent.unwrap_or(0.0);
    let bought = closed.amount_bought_tokens.unwrap_or(0.0);
    let sell_price = closed.buy_price_sol.unwrap_or(0.0) * 1.37;
    let received = bought * sell_price * 0.99; // 1% fees
    closed.sell_price_sol = Some(sell_price);
    closed.amount_sold_tokens = Some(bought);
    closed.final_sol_received = Some(received);
    closed.actual_outcome = Outcome::Profit(received - spent);
    closed.timestamp_outcome_evaluated = Some(now_ms());
    store.update(&closed).await?;
    let by_id = store.get(ids[p]).await?;
    let by_sig = store.get_by_signature(sig(p)).await?;
    ensure!(by_id.as_ref() == Some(&closed) && by_sig.as_ref() == Some(&closed));
    println!("after:  {}", describe(&closed));
    println!("read back by id and by signature: the new version, from every path");

    // ── 8. Remove, and bad input ─────────────────────────────────────────────────────────────
    section("8. Remove a record; bad input gets a typed error and writes nothing");
    let gone = 4_600;
    store.remove(ids[gone]).await?;
    ensure!(store.get(ids[gone]).await?.is_none());
    ensure!(store.get_by_signature(sig(gone)).await?.is_none());
    println!(
        "remove({}) -> ok; get and get_by_signature now return None",
        ids[gone]
    );
    let count_before = store.get_stats().await?.warm_records;
    match store.remove(ids[gone]).await {
        Err(e @ Error::NotFound { .. }) => println!("remove({}) again -> {e}", ids[gone]),
        other => bail!("expected NotFound, got {other:?}"),
    }
    let mut copy = records[10].clone();
    copy.id = None;
    match store.put(&copy).await {
        Err(e @ Error::DuplicateSignature { existing_id, .. }) if existing_id == ids[10] => {
            println!("put(copy of record {}) -> {e}", ids[10])
        }
        other => bail!("expected DuplicateSignature, got {other:?}"),
    }
    match store.get_by_signature("").await {
        Err(e @ Error::EmptySignature) => println!("get_by_signature(\"\") -> {e}"),
        other => bail!("expected EmptySignature, got {other:?}"),
    }
    ensure!(store.get_stats().await?.warm_records == count_before);

    // ── 9. list_since ────────────────────────────────────────────────────────────────────────
    section("9. Stream records by time with list_since (one page in memory at a time)");
    let newest = RECORDS - 8;
    let cutoff = records[newest].timestamp_decision_made;
    let mut cursor = store.list_since(cutoff);
    let mut streamed = Vec::new();
    while let Some(r) = cursor.next().await? {
        streamed.push(r);
    }
    println!("list_since(run start + {} ms):", cutoff - run_start_ms);
    for r in &streamed {
        println!(
            "  +{:>4} ms  {}",
            r.timestamp_decision_made - run_start_ms,
            describe(r)
        );
    }
    let streamed_ids: Vec<i64> = streamed.iter().filter_map(|r| r.id).collect();
    ensure!(streamed_ids.windows(2).all(|w| w[0] < w[1]), "id order");
    ensure!(streamed.iter().all(|r| r.timestamp_decision_made >= cutoff));
    ensure!(ids[newest..].iter().all(|id| streamed_ids.contains(id)));
    // The whole run, page by page.
    let mut cursor = store.list_since(run_start_ms);
    let (mut pages, mut seen, mut largest) = (0, HashSet::new(), 0);
    while let Some(page) = cursor.next_page().await? {
        pages += 1;
        largest = largest.max(page.len());
        seen.extend(page.into_iter().filter_map(|r| r.id));
    }
    let expected: HashSet<i64> = ids.iter().copied().filter(|&id| id != ids[gone]).collect();
    ensure!(expected.is_subset(&seen) && !seen.contains(&ids[gone]));
    let earlier = seen.difference(&expected).count();
    println!(
        "list_since(run start): {} records in {pages} pages of at most {largest} \
         ({} from this run, {earlier} from earlier runs in the same time range)",
        seen.len(),
        expected.len()
    );

    // ── 10. Archive to the cold tier ─────────────────────────────────────────────────────────
    let age_days = cfg.tiering.warm_to_cold_age as f64 / 86_400.0;
    section(&format!(
        "10. Archive trades older than warm_to_cold_age ({age_days:.0} days) to Parquet"
    ));
    // Trades decided 8 to 10 days ago, spread over three day partitions.
    let old_start = run_start_ms - 10 * DAY_MS;
    let mut old: Vec<TransactionRecord> = (0..OLD_RECORDS)
        .map(|i| {
            let at = old_start + (i as i64 * 2 * DAY_MS) / OLD_RECORDS as i64;
            trade(&mut rng, RECORDS + i, at)
        })
        .collect();
    for r in old.iter_mut() {
        r.id = Some(store.put(r).await?);
    }
    let before = store.get_stats().await?;
    let report = store.archive_now().await?;
    let after = store.get_stats().await?;
    println!(
        "archive_now: {} records moved to {} Parquet files ({:.0} bytes/record, ZSTD) in {:.0} ms",
        report.archived,
        report.files,
        report.bytes as f64 / report.archived.max(1) as f64,
        ms(report.elapsed)
    );
    // Everything this run stored 8+ days back is archived (and anything older an earlier run
    // left in warm); nothing newer is.
    ensure!(report.archived >= OLD_RECORDS as u64);
    ensure!(after.cold_records == before.cold_records + report.archived);
    ensure!(
        after.total_records == before.total_records,
        "a move neither adds nor loses"
    );
    for f in store.cold_tier().files()?.iter().rev().take(3) {
        println!(
            "  cold/{}  {} rows, ids {}..={}, {:.1} KiB",
            f.path,
            f.rows,
            f.min_id,
            f.max_id,
            f.bytes as f64 / 1024.0
        );
    }
    store.hot_tier().clear();
    let mut cold_by_id = Vec::new();
    let mut cold_by_sig = Vec::new();
    for (n, r) in old.iter().enumerate().step_by(OLD_RECORDS / 100) {
        let id = r.id.expect("stored");
        let s0 = store.get_stats().await?;
        let t = Instant::now();
        let got = store.get(id).await?;
        cold_by_id.push(t.elapsed());
        let s1 = store.get_stats().await?;
        ensure!(
            got.as_ref() == Some(r),
            "archived record {id} reads back unchanged"
        );
        if n == 0 {
            println!("get({id}): {} ({})", describe(r), route(&s0, &s1));
            ensure!(
                s1.cold_hits == s0.cold_hits + 1,
                "first read of an archived trade hits cold"
            );
        }
        let t = Instant::now();
        let got = store.get_by_signature(signature(r)).await?;
        cold_by_sig.push(t.elapsed());
        ensure!(got.as_ref().and_then(|g| g.id) == Some(id));
    }
    // The newest version wins: an archived trade's outcome is filled in (it comes back to
    // warm and its cold copy is tombstoned), another archived trade is removed.
    let mut settled = old[10].clone();
    settled.actual_outcome = Outcome::Profit(0.42);
    settled.final_sol_received = Some(0.92);
    store.update(&settled).await?;
    store.remove(old[11].id.expect("stored")).await?;
    store.hot_tier().clear();
    ensure!(store.get(settled.id.expect("stored")).await?.as_ref() == Some(&settled));
    ensure!(store.get(old[11].id.expect("stored")).await?.is_none());
    ensure!(store.get_by_signature(signature(&old[11])).await?.is_none());
    println!("update of an archived trade: newest version served; remove: gone everywhere");
    // A filtered range scan across warm and cold, merged in id order.
    let window = ScanRange::default()
        .with_time(old_start..=run_start_ms + RECORDS as i64)
        .with_outcome(OutcomeKind::Profit)
        .with_program(PUMP_FUN);
    let mut cursor = store.scan(window, 256)?;
    let mut profitable = Vec::new();
    while let Some(page) = cursor.next_page().await? {
        profitable.extend(page);
    }
    // This run's trades as the store now holds them: two were updated, two removed.
    let expected = old
        .iter()
        .chain(&records)
        .filter(|r| r.id != old[11].id && r.id != Some(ids[gone]))
        .map(|r| match r.id {
            id if id == closed.id => &closed,
            id if id == settled.id => &settled,
            _ => r,
        })
        .filter(|r| matches!(r.actual_outcome, Outcome::Profit(_)))
        .filter(|r| r.scored_candidate.base.program == PUMP_FUN)
        .count();
    let mine: HashSet<i64> = old.iter().chain(&records).filter_map(|r| r.id).collect();
    let from_run = profitable
        .iter()
        .filter(|r| r.id.is_some_and(|id| mine.contains(&id)))
        .count();
    ensure!(
        from_run == expected,
        "scan found {from_run} of this run's {expected} profitable pump.fun trades"
    );
    ensure!(profitable.windows(2).all(|w| w[0].id < w[1].id), "id order");
    println!(
        "scan(last 10 days, outcome = Profit, program = pump.fun): {} trades across warm and cold",
        profitable.len()
    );
    let compaction = store.compact_now().await?;
    let verify = store.verify_cold().await?;
    ensure!(
        verify.problems.is_empty(),
        "cold files verify: {:?}",
        verify.problems
    );
    println!(
        "compact_now: {} files merged into {}, {} dead rows dropped; verify_cold: {} files, {} rows match the catalog",
        compaction.files_in, compaction.files_out, compaction.rows_dropped, verify.files_checked, verify.rows_verified
    );
    println!("{}", latency_line("cold get by id", &mut cold_by_id));
    println!(
        "{}",
        latency_line("cold get by signature", &mut cold_by_sig)
    );

    // ── 11. Counts and latencies ─────────────────────────────────────────────────────────────
    section("11. Per-tier metrics (collect_metrics, as in the seed)");
    let stats = store.get_stats().await?;
    print_stats(&stats);
    let metrics = store.collect_metrics().await?;
    for m in [&metrics.hot, &metrics.warm, &metrics.cold]
        .into_iter()
        .flatten()
    {
        print_tier(m);
    }
    let (hot, warm, cold) = (
        metrics.hot.as_ref().context("hot metrics")?,
        metrics.warm.as_ref().context("warm metrics")?,
        metrics.cold.as_ref().context("cold metrics")?,
    );
    ensure!(hot.record_count == stats.hot_records && warm.record_count == stats.warm_records);
    ensure!(cold.record_count == stats.cold_records);
    ensure!(hot.promotions == stats.promotions && hot.evictions == stats.hot_evictions);
    ensure!(cold.records_archived >= report.archived && cold.file_count >= 1);
    ensure!(
        warm.bytes_stored >= std::fs::metadata(store.warm_tier().path())?.len(),
        "warm bytes are the database file and its WAL"
    );
    println!();
    println!("measured by this demo, through the coordinator (Instant around each call):");
    println!(
        "  {:<24} {:>6} {:>10} {:>10} {:>10}",
        "path", "reads", "p50", "p95", "target"
    );
    let hot_target = store.hot_tier().target_access_time();
    let warm_target = store.warm_tier().target_access_time();
    let cold_target = store.cold_tier().target_access_time();
    for (name, samples, target) in [
        ("hot get by id", &mut hot_by_id, hot_target),
        ("hot get by signature", &mut hot_by_sig, hot_target),
        ("warm get by id", &mut warm_by_id, warm_target),
        ("warm get by signature", &mut warm_by_sig, warm_target),
        ("cold get by id", &mut cold_by_id, cold_target),
        ("cold get by signature", &mut cold_by_sig, cold_target),
    ] {
        let (p50, p95) = percentiles(samples);
        println!(
            "  {name:<24} {:>6} {:>7.1} µs {:>7.1} µs {:>7} ms",
            samples.len(),
            p50,
            p95,
            target.as_millis()
        );
    }
    ensure!(stats.total_records == at_open.total_records + (RECORDS + OLD_RECORDS) as u64 - 2);

    // ── 12. Alerts ───────────────────────────────────────────────────────────────────────────
    section("12. Alerts (get_alerts, as in the seed) and the Prometheus exposition");
    let alerts = store.get_alerts().await;
    for alert in &alerts {
        println!(
            "[{:?}] {}: {}",
            alert.severity, alert.tier_name, alert.message
        );
    }
    if alerts.is_empty() {
        println!("no active alerts");
    }
    // Section 10's update moved an archived trade back to warm with its 8-day-old timestamp:
    // warm now holds a record past warm_to_cold_age + grace, and the lag alert says so.
    ensure!(
        alerts.iter().any(|a| a.kind == AlertKind::ArchivalLag),
        "the updated archived trade is overdue for archival"
    );
    let step = store.run_maintenance_step().await?;
    let rearchived = step.archive.as_ref().map_or(0, |a| a.archived);
    ensure!(rearchived >= 1 && step.failures.is_empty());
    ensure!(!store
        .get_alerts()
        .await
        .iter()
        .any(|a| a.kind == AlertKind::ArchivalLag));
    println!(
        "run_maintenance_step: {rearchived} overdue record archived in {:.0} ms; cleared alerts:",
        ms(step.elapsed)
    );
    for alert in store.alert_history() {
        println!(
            "  [{:?}] {}: {:?}, first seen {} ms before it cleared",
            alert.severity,
            alert.tier_name,
            alert.kind,
            alert.resolved_ms.unwrap_or(alert.last_seen_ms) - alert.first_seen_ms
        );
    }
    let a = &store.config().alerts;
    for alert in &alerts {
        ensure!(!alert.message.is_empty() && alert.first_seen_ms <= alert.last_seen_ms);
        if alert.kind == AlertKind::AccessTimeOverTarget && alert.tier_name == "hot" {
            ensure!(hot.p95_access_time_us > a.hot_p95_target_us);
        }
    }
    println!(
        "thresholds: p95 targets hot {} µs, warm {} µs, cold {} µs; hot hit-rate floor {:?}%; \
         hot capacity {}%/{}%; archival grace {} s; degradation {}× baseline",
        a.hot_p95_target_us,
        a.warm_p95_target_us,
        a.cold_p95_target_us,
        a.hot_hit_rate_floor_pct,
        a.hot_capacity_warning_pct,
        a.hot_capacity_critical_pct,
        a.archival_grace_secs,
        a.degradation_factor
    );
    let exposition = store.export_prometheus().await?;
    let families = exposition
        .lines()
        .filter(|l| l.starts_with("# TYPE"))
        .count();
    println!("export_prometheus: {families} metric families, for example:");
    for line in exposition.lines().filter(|l| {
        l.starts_with("hot_hit_total")
            || l.starts_with("warm_access_seconds{")
            || l.starts_with("cold_files")
            || l.starts_with("store_alerts")
    }) {
        println!("  {line}");
    }
    ensure!(exposition.contains(&format!("hot_hit_total {}", stats.hot_hits)));

    // ── 13. Shut down ────────────────────────────────────────────────────────────────────────
    section("13. Graceful shutdown");
    let t = Instant::now();
    store.shutdown().await?;
    looping.await.context("maintenance loop panicked")?;
    let status = store.maintenance_status();
    ensure!(!status.loop_running);
    match store
        .put(&trade(&mut rng, RECORDS + OLD_RECORDS, now_ms()))
        .await
    {
        Err(Error::Closed) => {}
        other => bail!("a put after shutdown must fail with Closed, got {other:?}"),
    }
    println!(
        "shutdown in {:.0} ms after {} maintenance steps ({} with a failure): loop stopped, \
         access statistics flushed, WAL checkpointed; later writes fail with Error::Closed",
        ms(t.elapsed()),
        status.steps,
        status.failed_steps
    );
    println!(
        "\ndone in {:.2} s; data kept in {}",
        started.elapsed().as_secs_f64(),
        cfg.data_dir.display()
    );
    Ok(())
}

// ── Realistic records ────────────────────────────────────────────────────────────────────────

/// splitmix64: a tiny deterministic generator, so the demo needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn base58(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| BASE58[(self.next_u64() % BASE58.len() as u64) as usize] as char)
            .collect()
    }
}

/// A scored pump.fun launch the bot bought into, waiting for confirmation of the buy.
fn trade(rng: &mut Rng, i: usize, decided_ms: i64) -> TransactionRecord {
    let discovered_ms = decided_ms - 40 - (rng.next_u64() % 200) as i64;
    let features: Vec<(String, f64)> = [
        "liquidity",
        "holder_distribution",
        "volume_growth",
        "creator_reputation",
    ]
    .iter()
    .map(|k| (k.to_string(), rng.unit()))
    .collect();
    let score = (features.iter().map(|(_, v)| v).sum::<f64>() * 25.0).round() as u8;
    let buy_price = rng.range(2.0e-8, 9.0e-8);
    let spent = [0.1, 0.25, 0.5, 1.0][(rng.next_u64() % 4) as usize];
    TransactionRecord {
        id: None,
        scored_candidate: ScoredCandidate {
            base: PremintCandidate {
                mint: format!("{}pump", rng.base58(40)),
                creator: rng.base58(44),
                program: PUMP_FUN.to_owned(),
                slot: 345_000_000 + i as u64 / 3,
                timestamp: discovered_ms,
                instruction_summary: Some("create + buy".to_owned()),
                is_jito_bundle: Some(rng.next_u64().is_multiple_of(4)),
            },
            predicted_score: score,
            feature_scores: features.into_iter().collect(),
            reason: format!("score {score}: early liquidity and holder spread"),
            calculation_time_us: 35 + rng.next_u64() % 120,
            anomaly_detected: rng.next_u64().is_multiple_of(50),
            timestamp: decided_ms - 5,
        },
        transaction_signature: Some(rng.base58(88)),
        buy_price_sol: Some(buy_price),
        sell_price_sol: None,
        amount_bought_tokens: Some((spent / buy_price).round()),
        amount_sold_tokens: None,
        initial_sol_spent: Some(spent),
        final_sol_received: None,
        timestamp_decision_made: decided_ms,
        timestamp_transaction_sent: Some(decided_ms + 3 + (rng.next_u64() % 20) as i64),
        timestamp_outcome_evaluated: None,
        actual_outcome: Outcome::PendingConfirmation,
        market_context_snapshot: [
            ("sol_usd".to_owned(), rng.range(140.0, 180.0)),
            ("network_tps".to_owned(), rng.range(2_500.0, 4_500.0)),
            ("priority_fee_lamports".to_owned(), rng.range(5e3, 2e5)),
        ]
        .into_iter()
        .collect(),
    }
}

/// Differs between runs (and between processes started in the same nanosecond).
fn run_nonce() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn signature(r: &TransactionRecord) -> &str {
    r.transaction_signature.as_deref().unwrap_or_default()
}

// ── Printing ─────────────────────────────────────────────────────────────────────────────────

fn section(title: &str) {
    println!("\n== {title}");
}

fn describe(r: &TransactionRecord) -> String {
    let sig = r.transaction_signature.as_deref().unwrap_or("-");
    let outcome = match &r.actual_outcome {
        Outcome::Profit(sol) => format!("Profit({sol:+.4} SOL)"),
        Outcome::Loss(sol) => format!("Loss({sol:.4} SOL)"),
        other => format!("{other:?}"),
    };
    let sold = match (r.sell_price_sol, r.final_sol_received) {
        (Some(price), Some(sol)) => format!(", sold at {price:.2e} for {sol:.4} SOL"),
        _ => String::new(),
    };
    format!(
        "id {} sig {}… mint {}… score {} bought at {:.2e} for {:.2} SOL{sold} -> {outcome}",
        r.id.map_or("-".to_owned(), |id| id.to_string()),
        sig.get(..10).unwrap_or(sig),
        r.scored_candidate.base.mint.get(..8).unwrap_or("-"),
        r.scored_candidate.predicted_score,
        r.buy_price_sol.unwrap_or(0.0),
        r.initial_sol_spent.unwrap_or(0.0),
    )
}

/// Which tier answered, from the change in the routing counters around one read.
fn route(before: &StorageStats, after: &StorageStats) -> &'static str {
    let promoted = after.promotions > before.promotions;
    match (
        after.hot_hits > before.hot_hits,
        after.warm_hits > before.warm_hits,
        after.cold_hits > before.cold_hits,
    ) {
        (true, _, _) => "hot hit",
        (false, true, _) if promoted => "warm hit, promoted",
        (false, true, _) => "warm hit",
        (false, false, true) if promoted => "cold hit, promoted",
        (false, false, true) => "cold hit",
        _ => "miss",
    }
}

/// p50 and p95 in µs (sorts `samples`).
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1e6
    };
    (at(0.50), at(0.95))
}

fn latency_line(name: &str, samples: &mut [Duration]) -> String {
    let (p50, p95) = percentiles(samples);
    format!("{name:<22} p50 {p50:>6.1} µs   p95 {p95:>6.1} µs")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_stats(s: &StorageStats) {
    println!(
        "get_stats        {} records stored: warm holds {}, cold holds {}, hot caches {}",
        s.total_records, s.warm_records, s.cold_records, s.hot_records
    );
    println!(
        "reads since open hot hits {}, warm hits {}, cold hits {}, misses {}, promotions {}, hot evictions {}",
        s.hot_hits, s.warm_hits, s.cold_hits, s.misses, s.promotions, s.hot_evictions
    );
}

/// As in the seed's metrics snippet, then the rest of the tier's metrics.
fn print_tier(m: &TierMetrics) {
    let mut name = m.tier_name.clone();
    name[..1].make_ascii_uppercase();
    println!(
        "{name} tier: {} records, {:.2}% hit rate",
        m.record_count,
        m.hit_rate()
    );
    println!("P95 access time: {}µs", m.p95_access_time_us);
    println!(
        "  last {} s: avg {:.1} µs, p50 {} µs, p99 {} µs, max {} µs; {} bytes stored; \
         evictions {}, expirations {}, promotions {}",
        m.window_secs,
        m.avg_access_time_us,
        m.p50_access_time_us,
        m.p99_access_time_us,
        m.max_access_time_us,
        m.bytes_stored,
        m.evictions,
        m.expirations,
        m.promotions
    );
    match m.tier_name.as_str() {
        "hot" => println!("  capacity {} records", m.capacity.unwrap_or(0)),
        "warm" => println!("  archival lag {} s", m.archival_lag_secs),
        "cold" => println!(
            "  {} files ({} quarantined), {} records archived since open",
            m.file_count, m.quarantined_files, m.records_archived
        ),
        _ => {}
    }
}
