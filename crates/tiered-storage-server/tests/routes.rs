//! Every route of the service through its router: answers, error codes and statuses, auth,
//! body limits, hostile input (bad JSON, unknown fields, odd ids and signatures, huge limits),
//! pagination, batch ingest, and stats against `collect_metrics`.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use common::*;
use tiered_storage::TransactionRecord;
use tiered_storage_server::ServerConfig;

#[tokio::test]
async fn put_get_update_delete_round_trip() {
    let h = harness(ServerConfig::default()).await;
    let mut r = record(Some("sigA"), 1000);
    let put = post(&h.app, "/v1/records", json_line(&r)).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    let id = put.json()["id"].as_i64().unwrap();
    r.id = Some(id);

    let got = get(&h.app, &format!("/v1/records/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers[header::CONTENT_TYPE], "application/json");
    let back: TransactionRecord = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(back, r);

    let by_sig = get(&h.app, "/v1/records/by-signature/sigA").await;
    assert_eq!(by_sig.status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<TransactionRecord>(&by_sig.body).unwrap(),
        r
    );

    r.buy_price_sol = Some(0.25);
    let upd = call(
        &h.app,
        Method::PUT,
        &format!("/v1/records/{id}"),
        None,
        json_line(&r),
    )
    .await;
    assert_eq!(upd.status, StatusCode::OK, "{}", upd.text());
    assert_eq!(upd.json()["id"], id);
    assert_eq!(
        h.store.get(id).await.unwrap().unwrap().buy_price_sol,
        Some(0.25)
    );

    // The body's id may be absent too; a different one is refused.
    let mut no_id = serde_json::to_value(&r).unwrap();
    no_id.as_object_mut().unwrap().remove("id");
    let upd = call(
        &h.app,
        Method::PUT,
        &format!("/v1/records/{id}"),
        None,
        no_id.to_string(),
    )
    .await;
    assert_eq!(upd.status, StatusCode::OK);
    let upd = call(
        &h.app,
        Method::PUT,
        &format!("/v1/records/{}", id + 1),
        None,
        json_line(&r),
    )
    .await;
    assert_eq!(
        (upd.status, upd.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    let del = call(
        &h.app,
        Method::DELETE,
        &format!("/v1/records/{id}"),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(h.store.get(id).await.unwrap().is_none());
    let del = call(
        &h.app,
        Method::DELETE,
        &format!("/v1/records/{id}"),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(
        (del.status, del.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let got = get(&h.app, &format!("/v1/records/{id}")).await;
    assert_eq!(
        (got.status, got.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let upd = call(
        &h.app,
        Method::PUT,
        &format!("/v1/records/{id}"),
        None,
        json_line(&r),
    )
    .await;
    assert_eq!(
        (upd.status, upd.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn invalid_input_gets_400_with_a_code() {
    let h = harness(ServerConfig::default()).await;
    let good = json_line(&record(None, 0));
    // Malformed JSON, a wrong type, a record that is not an object, trailing garbage.
    for body in [
        "{".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        good.replace(
            "\"timestamp_decision_made\":",
            "\"timestamp_decision_made\":\"x\",\"_\":",
        ),
        r#"{"id": null, "actual_outcome": "Won"}"#.to_owned(),
        format!("{good} {{}}"),
        String::new(),
    ] {
        let r = post(&h.app, "/v1/records", body.clone()).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{body}"
        );
    }
    // Unknown fields at the top and nested.
    let mut v = serde_json::to_value(record(None, 0)).unwrap();
    v["scored_candidate"]["base"]["colour"] = "red".into();
    let r = post(&h.app, "/v1/records", v.to_string()).await;
    assert_eq!(r.code(), "bad_request");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let mut v = serde_json::to_value(record(None, 0)).unwrap();
    v["extra"] = 1.into();
    assert_eq!(
        post(&h.app, "/v1/records", v.to_string()).await.code(),
        "bad_request"
    );
    // A new record with an id.
    let mut with_id = record(None, 0);
    with_id.id = Some(5);
    let r = post(&h.app, "/v1/records", json_line(&with_id)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    // An empty signature: the library's code.
    let r = post(&h.app, "/v1/records", json_line(&record(Some(""), 0))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "empty_signature")
    );
    // Ids that are not i64.
    for id in ["abc", "1.5", "99999999999999999999", "-", "0x10", "%20"] {
        let r = get(&h.app, &format!("/v1/records/{id}")).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{id}"
        );
        let r = call(
            &h.app,
            Method::DELETE,
            &format!("/v1/records/{id}"),
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{id}");
    }
    assert_eq!(
        h.store.get_stats().await.unwrap().total_records,
        0,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_record_with_fields_left_out_is_stored_with_the_defaults() {
    let h = harness(ServerConfig::default()).await;
    let put = post(
        &h.app,
        "/v1/records",
        r#"{"transaction_signature":"short","timestamp_decision_made":1764460800000}"#.to_owned(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    let id = put.json()["id"].as_i64().unwrap();
    let want = TransactionRecord {
        id: Some(id),
        transaction_signature: Some("short".into()),
        timestamp_decision_made: 1_764_460_800_000,
        ..Default::default()
    };
    assert_eq!(h.store.get(id).await.unwrap(), Some(want.clone()));
    let got = get(&h.app, "/v1/records/by-signature/short").await;
    assert_eq!(
        serde_json::from_slice::<TransactionRecord>(&got.body).unwrap(),
        want
    );
}

#[tokio::test]
async fn duplicate_signature_is_409() {
    let h = harness(ServerConfig::default()).await;
    assert_eq!(
        post(&h.app, "/v1/records", json_line(&record(Some("dup"), 0)))
            .await
            .status,
        StatusCode::CREATED
    );
    let r = post(&h.app, "/v1/records", json_line(&record(Some("dup"), 0))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "duplicate_signature")
    );
}

#[tokio::test]
async fn odd_signatures_are_only_characters() {
    let h = harness(ServerConfig::default()).await;
    let weird = "a/b..%2F";
    let id = h.store.put(&record(Some(weird), 0)).await.unwrap();
    // Percent-encoded, the slash and the percent sign are part of the one segment.
    let r = get(&h.app, "/v1/records/by-signature/a%2Fb..%252F").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], id);
    for path in [
        "/v1/records/by-signature/..",
        "/v1/records/by-signature/..%2F..%2Fwarm.sqlite3",
        "/v1/records/by-signature/%2Fetc%2Fpasswd",
        "/v1/records/by-signature/a%2Fb",
        "/v1/records/by-signature/Cargo.toml",
    ] {
        let r = get(&h.app, path).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    // A raw slash ends the segment: no such route.
    for path in [
        "/v1/records/by-signature/a/b",
        "/v1/records/by-signature/../../Cargo.toml",
    ] {
        let r = get(&h.app, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
    // Asset names are looked up in the table, never on disk.
    for path in [
        "/assets/..%2FCargo.toml",
        "/assets/../Cargo.toml",
        "/assets/%2E%2E",
        "/assets/index.htm",
    ] {
        let r = get(&h.app, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn auth_guards_writes_and_admin_and_reads_when_asked() {
    let h = harness(with_token(false)).await;
    let body = json_line(&record(None, 0));
    for token in [
        None,
        Some("wrong"),
        Some("s3cret-toke"),
        Some("s3cret-token2"),
    ] {
        let r = call(&h.app, Method::POST, "/v1/records", token, body.clone()).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{token:?}"
        );
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
        for admin in ["/v1/admin/archive", "/v1/admin/compact", "/v1/admin/verify"] {
            let r = call(&h.app, Method::POST, admin, token, Body::empty()).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{admin}");
        }
        let r = call(
            &h.app,
            Method::POST,
            "/v1/records:batch",
            token,
            body.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = call(
            &h.app,
            Method::DELETE,
            "/v1/records/1",
            token,
            Body::empty(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // A lower-case scheme or a missing space is not the token either.
    for value in [
        format!("bearer {TOKEN}"),
        format!("Bearer{TOKEN}"),
        TOKEN.to_owned(),
        format!("Basic {TOKEN}"),
    ] {
        let r = call_with_headers(
            &h.app,
            Method::POST,
            "/v1/records",
            &[("authorization", &value)],
            body.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{value}");
    }
    assert_eq!(h.store.get_stats().await.unwrap().total_records, 0);

    let r = call(
        &h.app,
        Method::POST,
        "/v1/records",
        Some(TOKEN),
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        &h.app,
        Method::POST,
        "/v1/admin/verify",
        Some(TOKEN),
        Body::empty(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Reads stay open without token_for_reads.
    for path in [
        "/v1/records/1",
        "/v1/stats",
        "/metrics",
        "/v1/records",
        "/healthz",
        "/",
    ] {
        assert_eq!(get(&h.app, path).await.status, StatusCode::OK, "{path}");
    }

    let h = harness(with_token(true)).await;
    h.store.put(&record(None, 0)).await.unwrap();
    for path in [
        "/v1/records/1",
        "/v1/stats",
        "/metrics",
        "/v1/records",
        "/v1/alerts",
        "/v1/history",
        "/v1/records/recent",
        "/v1/records/by-signature/x",
    ] {
        let r = get(&h.app, path).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{path}"
        );
        let r = call(&h.app, Method::GET, path, Some("nope"), Body::empty()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        let r = call(&h.app, Method::GET, path, Some(TOKEN), Body::empty()).await;
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            r.status.is_success() || r.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status
        );
    }
    // The probes and the dashboard's files stay open (the page asks for the token).
    for path in ["/healthz", "/readyz", "/", "/assets/dashboard.js"] {
        assert_eq!(get(&h.app, path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn bodies_over_the_limits_are_413() {
    let h = harness_with(
        ServerConfig {
            max_batch_bytes: 64 * 1024,
            ..ServerConfig::default()
        },
        |c| {
            let mut c = c;
            c.max_record_bytes = 4096;
            c
        },
    )
    .await;
    // Over the JSON body limit (4 × max_record_bytes), with a Content-Length (refused before
    // reading) and without one (refused while reading).
    let mut big = record(None, 0);
    big.scored_candidate.reason = "x".repeat(20_000);
    let body = json_line(&big);
    let length = body.len().to_string();
    let r = call_with_headers(
        &h.app,
        Method::POST,
        "/v1/records",
        &[("content-length", &length)],
        body.clone(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let r = post(&h.app, "/v1/records", body).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // Under the body limit but over max_record_bytes once encoded: the library's code.
    big.scored_candidate.reason = "x".repeat(8_000);
    let r = post(&h.app, "/v1/records", json_line(&big)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "record_too_large")
    );
    let r = call(
        &h.app,
        Method::PUT,
        "/v1/records/1",
        None,
        "x".repeat(20_000),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A batch over max_batch_bytes.
    let line = json_line(&record(None, 0));
    let batch = format!("{line}\n").repeat(64 * 1024 / line.len() + 2);
    let r = post(&h.app, "/v1/records:batch", batch).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(h.store.get_stats().await.unwrap().total_records, 0);
    // The batch route takes more than a single record's limit.
    let batch = format!("{line}\n").repeat(8192 * 2 / line.len() + 2);
    assert!(batch.len() > 16 * 1024 && batch.len() < 64 * 1024);
    let r = post(&h.app, "/v1/records:batch", batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn pagination_walks_every_page_to_the_full_set() {
    let h = harness(ServerConfig::default()).await;
    let mut all = Vec::new();
    for i in 0..257 {
        let mut r = record(Some(&format!("page-{i}")), 100_000 - i * 100);
        if i % 3 == 0 {
            r.scored_candidate.base.mint = "MintB".into();
        }
        all.push(h.store.put(&r).await.unwrap());
    }
    for (query, expected) in [
        ("", all.clone()),
        (
            "&mint=MintB",
            all.iter().copied().step_by(3).collect::<Vec<_>>(),
        ),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let uri = match &after {
                Some(a) => format!("/v1/records?limit=50{query}&after={a}"),
                None => format!("/v1/records?limit=50{query}"),
            };
            let r = get(&h.app, &uri).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let v = r.json();
            let page = v["records"].as_array().unwrap();
            assert!(page.len() <= 50);
            seen.extend(page.iter().map(|r| r["id"].as_i64().unwrap()));
            pages += 1;
            match v["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{query}");
        assert_eq!(pages, expected.len().div_ceil(50).max(1), "{query}");
    }
    // The default page is 100; a huge limit is clamped to 1000.
    let r = get(&h.app, "/v1/records").await.json();
    assert_eq!(r["records"].as_array().unwrap().len(), 100);
    assert_eq!(r["next"], "100");
    for huge in ["1000000", "99999999999999999999999999"] {
        let r = get(&h.app, &format!("/v1/records?limit={huge}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["records"].as_array().unwrap().len(), 257);
        assert!(r.json()["next"].is_null());
    }
    for bad in [
        "limit=0",
        "limit=-5",
        "limit=ten",
        "after=x",
        "since=yesterday",
        "until=5",
        "colour=red",
        "limit=1&limit=2",
    ] {
        let r = get(&h.app, &format!("/v1/records?{bad}")).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
    // An outcome kind that does not exist: 400 `invalid_query`, not an empty page.
    let r = get(&h.app, "/v1/records?outcome=Win").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Loss"));
    // Time filters: relative and RFC 3339.
    let r = get(&h.app, "/v1/records?since=90s&limit=1000").await.json();
    let recent = r["records"].as_array().unwrap().len();
    assert!((1..257).contains(&recent), "{recent}");
    let r = get(&h.app, "/v1/records?until=2000-01-01T00:00:00Z")
        .await
        .json();
    assert_eq!(r["records"].as_array().unwrap().len(), 0);
    let r = get(
        &h.app,
        "/v1/records?outcome=PendingConfirmation&program=ProgA&limit=1",
    )
    .await
    .json();
    assert_eq!(r["records"][0]["id"], all[0]);
}

#[tokio::test]
async fn batch_stores_good_lines_and_reports_bad_ones_by_line() {
    let h = harness(ServerConfig::default()).await;
    let good = |sig: &str| json_line(&record(Some(sig), 0));
    let mut with_id = record(Some("b-id"), 0);
    with_id.id = Some(999);
    let mut unknown = serde_json::to_value(record(Some("b-unknown"), 0)).unwrap();
    unknown["nope"] = true.into();
    let lines = [
        good("b1"),                      // 1
        String::new(),                   // 2 blank
        "{not json".to_owned(),          // 3
        good("b2"),                      // 4
        unknown.to_string(),             // 5
        good("b1"),                      // 6 duplicate of line 1
        "   ".to_owned(),                // 7 blank
        json_line(&with_id),             // 8 id ignored: a new record
        json_line(&record(Some(""), 0)), // 9 empty signature
        good("b3"),                      // 10
    ];
    let body = lines.join("\r\n") + "\n";
    let r = post(&h.app, "/v1/records:batch", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let ids: Vec<Option<i64>> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 10);
    let stored: Vec<usize> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| id.is_some())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(stored, vec![1, 4, 8, 10]);
    let errors: Vec<(u64, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            (3, "bad_request".to_owned()),
            (5, "bad_request".to_owned()),
            (6, "duplicate_signature".to_owned()),
            (9, "empty_signature".to_owned()),
        ]
    );
    assert!(v["errors"][1]["message"].as_str().unwrap().contains("nope"));
    // Ids rise with the lines; exactly the good lines were written.
    let written: Vec<i64> = ids.iter().flatten().copied().collect();
    assert!(written.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(h.store.get_stats().await.unwrap().total_records, 4);
    assert_ne!(written[2], 999);
    assert!(h
        .store
        .get_by_signature("b-unknown")
        .await
        .unwrap()
        .is_none());

    // More lines than one chunk: every one stored, in order.
    let n = tiered_storage_server::BATCH_CHUNK_LINES * 2 + 17;
    let body: String = (0..n).map(|i| good(&format!("bulk-{i}")) + "\n").collect();
    let r = post(&h.app, "/v1/records:batch", body).await;
    let v = r.json();
    let ids: Vec<Option<i64>> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(ids.len(), n);
    assert!(ids.iter().all(Option::is_some));
    assert!(v["errors"].as_array().unwrap().is_empty());
    let last = ids[n - 1].unwrap();
    let r = h.store.get(last).await.unwrap().unwrap();
    assert_eq!(
        r.transaction_signature.as_deref(),
        Some(format!("bulk-{}", n - 1).as_str())
    );
    // An empty body is an empty answer.
    let v = post(&h.app, "/v1/records:batch", "").await.json();
    assert_eq!(v["ids"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn recent_returns_newest_first() {
    let h = harness(ServerConfig::default()).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            h.store
                .put(&record(Some(&format!("r{i}")), 0))
                .await
                .unwrap(),
        );
    }
    let v = get(&h.app, "/v1/records/recent?limit=3").await.json();
    let got: Vec<i64> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[6], ids[5], ids[4]]);
    let v = get(&h.app, "/v1/records/recent?limit=99999999999")
        .await
        .json();
    assert_eq!(v["records"].as_array().unwrap().len(), 7);
    assert_eq!(
        get(&h.app, "/v1/records/recent?limit=0").await.code(),
        "bad_request"
    );
}

#[tokio::test]
async fn stats_agree_with_collect_metrics() {
    let h = harness(ServerConfig::default()).await;
    for i in 0..20 {
        let id = h
            .store
            .put(&record(Some(&format!("s{i}")), 0))
            .await
            .unwrap();
        h.store.get(id).await.unwrap();
    }
    let r = get(&h.app, "/v1/stats").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let m = h.store.collect_metrics().await.unwrap();
    let (hot, warm, cold) = (m.hot.unwrap(), m.warm.unwrap(), m.cold.unwrap());
    assert_eq!(v["hot"]["record_count"], hot.record_count);
    assert_eq!(v["warm"]["record_count"], warm.record_count);
    assert_eq!(v["cold"]["record_count"], cold.record_count);
    assert_eq!(v["total_records"], warm.record_count + cold.record_count);
    assert_eq!(v["warm"]["record_count"], 20);
    assert_eq!(v["hot"]["hits"], hot.hits);
    assert_eq!(v["hot"]["capacity"], serde_json::json!(hot.capacity));
    assert_eq!(v["cold"]["file_count"], cold.file_count);
    for key in [
        "generated_ms",
        "archival",
        "compaction",
        "maintenance",
        "cold_days",
        "alerts",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let view: tiered_storage_server::stats::StatsView = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(view.warm.record_count, 20);
}

#[tokio::test]
async fn admin_routes_archive_compact_and_verify() {
    let h = harness(ServerConfig::default()).await;
    for i in 0..10 {
        h.store
            .put(&record(Some(&format!("old{i}")), 3 * 86_400_000))
            .await
            .unwrap();
    }
    h.store.put(&record(Some("new"), 0)).await.unwrap();
    let r = post(&h.app, "/v1/admin/archive", r#"{"older_than": "2d"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["archived"], 10);
    let v = get(&h.app, "/v1/stats").await.json();
    assert_eq!(v["cold"]["record_count"], 10);
    assert_eq!(v["cold_days"].as_array().unwrap().len(), 1);
    assert_eq!(v["cold_days"][0]["rows"], 10);
    // Archived records are still served.
    let r = get(&h.app, "/v1/records/by-signature/old3").await;
    assert_eq!(r.status, StatusCode::OK);

    let r = post(&h.app, "/v1/admin/archive", "").await;
    assert_eq!(r.status, StatusCode::OK);
    for bad in [r#"{"older_than": "soon"}"#, r#"{"age": "1d"}"#, "{"] {
        let r = post(&h.app, "/v1/admin/archive", bad).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
    let r = post(&h.app, "/v1/admin/compact", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json().get("files_in").is_some());
    let r = post(&h.app, "/v1/admin/verify", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["clean"], true);
    assert!(r.json().get("warm_problems").is_some());
    let r = get(&h.app, "/v1/admin/verify").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn alerts_history_metrics_and_probes() {
    let h = harness(ServerConfig::default()).await;
    h.store.put(&record(None, 0)).await.unwrap();
    let v = get(&h.app, "/v1/alerts").await.json();
    assert!(v["active"].is_array() && v["history"].is_array());

    let r = get(&h.app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        tiered_storage::PROMETHEUS_CONTENT_TYPE
    );
    assert!(r.text().contains("hot_records 1"), "{}", r.text());

    let v = get(&h.app, "/v1/history?window=1h").await.json();
    assert_eq!(v["interval_secs"], 5.0);
    assert!(v["samples"].is_array());
    assert_eq!(
        get(&h.app, "/v1/history?window=forever").await.code(),
        "bad_request"
    );

    let r = get(&h.app, "/healthz").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    assert_eq!(get(&h.app, "/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn dashboard_assets_have_types_and_a_strict_csp() {
    let h = harness(ServerConfig::default()).await;
    let index = get(&h.app, "/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(
        index.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let csp = index.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(index.text().contains("/assets/dashboard.js"));
    assert_eq!(index.body, get(&h.app, "/assets/index.html").await.body);
    let mut names = BTreeSet::new();
    for asset in tiered_storage_server::assets::ASSETS {
        let r = get(&h.app, &format!("/assets/{}", asset.name)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", asset.name);
        assert_eq!(r.headers[header::CONTENT_TYPE], asset.content_type);
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.body, asset.bytes);
        names.insert(asset.name);
    }
    assert!(names.contains("dashboard.js") && names.contains("dashboard.css"));
    let js = get(&h.app, "/assets/dashboard.js").await;
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let h = harness(ServerConfig::default()).await;
    let r = get(&h.app, "/v2/records/1").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    let r = call(&h.app, Method::PATCH, "/v1/records/1", None, Body::empty()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let r = call(&h.app, Method::DELETE, "/v1/stats", None, Body::empty()).await;
    assert_eq!(r.code(), "method_not_allowed");
    // A path parameter that is not UTF-8 once decoded.
    let r = get(&h.app, "/v1/records/by-signature/%FF%FE").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_excess_ones_are_shed() {
    let body: String = (0..20_000)
        .map(|i| json_line(&record(Some(&format!("t{i}")), 0)) + "\n")
        .collect();
    let h = harness(ServerConfig {
        request_timeout: std::time::Duration::from_millis(1),
        ..ServerConfig::default()
    })
    .await;
    let r = post(&h.app, "/v1/records:batch", body.clone()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::REQUEST_TIMEOUT, "timeout")
    );

    let h = harness(ServerConfig {
        concurrency_limit: 1,
        ..ServerConfig::default()
    })
    .await;
    let app = h.app.clone();
    let slow = tokio::spawn(async move { post(&app, "/v1/records:batch", body).await.status });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = get(&h.app, "/v1/stats").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    );
    // The probes are outside the limit.
    assert_eq!(get(&h.app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    assert_eq!(get(&h.app, "/v1/stats").await.status, StatusCode::OK);
}

#[tokio::test]
async fn sql_answers_columns_and_rows_and_refuses_what_is_not_a_query() {
    let h = harness_with(ServerConfig::default(), |mut c| {
        c.sql.max_rows = 3;
        c.sql.timeout_ms = 300;
        c
    })
    .await;
    let mut ids = Vec::new();
    for (i, outcome) in [
        tiered_storage::Outcome::Profit(2.0),
        tiered_storage::Outcome::Loss(0.5),
        tiered_storage::Outcome::NotExecuted,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = record(Some(&format!("q{i}")), 0);
        r.actual_outcome = outcome;
        ids.push(h.store.put(&r).await.unwrap());
    }
    let sql = |q: &str| serde_json::json!({ "sql": q }).to_string();
    let r = post(
        &h.app,
        "/v1/sql",
        sql("SELECT id, outcome_kind, pnl, x'00ff' AS b FROM records ORDER BY id"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        r.json(),
        serde_json::json!({
            "columns": ["id", "outcome_kind", "pnl", "b"],
            "rows": [
                [ids[0], "Profit", 2.0, "00ff"],
                [ids[1], "Loss", -0.5, "00ff"],
                [ids[2], "NotExecuted", null, "00ff"],
            ]
        })
    );
    let r = post(
        &h.app,
        "/v1/sql",
        sql("SELECT sum(pnl) AS pnl FROM records WHERE transaction_signature = 'q1'"),
    )
    .await;
    assert_eq!(r.json()["rows"], serde_json::json!([[-0.5]]));

    for (body, status, code) in [
        (sql("DELETE FROM records"), 400, "invalid_query"),
        (sql("ATTACH 'x.db' AS x"), 400, "invalid_query"),
        (sql("SELECT 1; SELECT 2"), 400, "invalid_query"),
        (sql("SELEC 1"), 400, "invalid_query"),
        (
            sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"),
            408,
            "sql_timeout",
        ),
        (
            sql("SELECT value FROM json_each('[1,2,3,4]')"),
            422,
            "sql_row_limit",
        ),
        ("not json".to_owned(), 400, "bad_request"),
        (r#"{"sql": "SELECT 1", "extra": 1}"#.to_owned(), 400, "bad_request"),
        ("{}".to_owned(), 400, "bad_request"),
    ] {
        let r = post(&h.app, "/v1/sql", body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code().as_str()),
            (status, code),
            "{body}: {}",
            r.text()
        );
        assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(h.store.get_stats().await.unwrap().total_records, 3);
    assert_eq!(
        get(&h.app, "/v1/sql").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn sql_follows_the_token_rules_of_reads() {
    let body = serde_json::json!({ "sql": "SELECT count(*) FROM records" }).to_string();
    // Without token_for_reads, a query needs no token (it writes nothing)...
    let h = harness(with_token(false)).await;
    let r = post(&h.app, "/v1/sql", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // ... with it, it needs the token like every read.
    let h = harness(with_token(true)).await;
    for token in [None, Some("nope")] {
        let r = call(&h.app, Method::POST, "/v1/sql", token, body.clone()).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{token:?}"
        );
    }
    let r = call(&h.app, Method::POST, "/v1/sql", Some(TOKEN), body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["rows"], serde_json::json!([[0]]));
}

#[tokio::test]
async fn records_newest_first_are_the_newest_by_time() {
    let h = harness(ServerConfig::default()).await;
    // Put out of time order: ids and times disagree.
    let mut by_time = Vec::new();
    for (i, age) in [5_000, 1_000, 9_000, 3_000, 7_000].into_iter().enumerate() {
        let mut r = record(Some(&format!("n{i}")), age);
        r.timestamp_decision_made = 1_764_460_800_000 - age;
        if i == 3 {
            r.scored_candidate.base.mint = "MintB".into();
        }
        let id = h.store.put(&r).await.unwrap();
        by_time.push((r.timestamp_decision_made, id));
    }
    by_time.sort_by(|a, b| b.cmp(a));
    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let v = get(&h.app, "/v1/records?newest_first=true&limit=3")
        .await
        .json();
    assert_eq!(
        ids(&v),
        by_time
            .iter()
            .take(3)
            .map(|(_, id)| *id)
            .collect::<Vec<_>>()
    );
    assert!(v["next"].is_null());
    // Filters apply; a huge limit is all of them.
    let v = get(
        &h.app,
        "/v1/records?newest_first=true&mint=MintA&limit=99999999999",
    )
    .await
    .json();
    assert_eq!(ids(&v).len(), 4);
    let v = get(&h.app, "/v1/records?newest_first=false&limit=2")
        .await
        .json();
    assert_eq!(ids(&v), vec![1, 2], "false is the id order");
    for bad in [
        "/v1/records?newest_first=yes",
        "/v1/records?newest_first=true&after=3",
        "/v1/records?newest_first=true&limit=0",
    ] {
        assert_eq!(get(&h.app, bad).await.code(), "bad_request", "{bad}");
    }
}
