//! The service's lifecycle over a real socket: every write answered 2xx before or during a
//! shutdown is in the store after a restart; a second owner of the data directory is refused;
//! a non-loopback address needs a token; readiness and new requests during shutdown.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use tiered_storage::{AutoTieringCoordinator, Error, StorageConfig};
use tiered_storage_server::{serve_on, serve_with_shutdown, AppState, ServeError, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_requests_in_flight_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::default().with_data_dir(dir.path().join("store"));
    let store = Arc::new(AutoTieringCoordinator::new(config.clone()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, triggered) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        listener,
        store.clone(),
        ServerConfig::default(),
        async move {
            let _ = triggered.await;
        },
    ));

    // While serving, the directory has its owner.
    match AutoTieringCoordinator::new(config.clone()).await {
        Err(e @ Error::AlreadyOpen { .. }) => {
            let message = e.to_string();
            assert!(
                !message.contains('\n') && message.contains("already open"),
                "{message}"
            );
        }
        other => panic!("a second owner opened the directory: {other:?}"),
    }

    let acked = Arc::new(parking_lot::Mutex::new(Vec::<(String, i64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..32 {
        let acked = acked.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await.unwrap();
            let (mut refused, mut dropped) = (0u32, 0u32);
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let signature = format!("c{c}-{n}");
                let body = json_line(&record(Some(&signature), 0)).into_bytes();
                match conn.request(Method::POST, "/v1/records", None, body).await {
                    Ok((status, body)) if status.is_success() => {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        acked.lock().push((signature, v["id"].as_i64().unwrap()));
                    }
                    Ok((status, body)) => {
                        assert_eq!(
                            status,
                            StatusCode::SERVICE_UNAVAILABLE,
                            "{}",
                            String::from_utf8_lossy(&body)
                        );
                        refused += 1;
                        break;
                    }
                    Err(_) => {
                        // The connection closed with shutdown: reconnect, which fails once
                        // the listener is gone.
                        dropped += 1;
                        match Conn::open(addr).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (refused, dropped)
        }));
    }
    while acked.lock().len() < 600 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    trigger.send(()).unwrap();
    let served = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .unwrap()
        .unwrap();
    served.unwrap();
    stop.store(true, Ordering::Relaxed);
    let (mut refused, mut dropped) = (0, 0);
    for client in clients {
        let (r, d) = tokio::time::timeout(Duration::from_secs(30), client)
            .await
            .unwrap()
            .unwrap();
        refused += r;
        dropped += d;
    }
    let acked = acked.lock().clone();
    eprintln!(
        "{} writes acknowledged; {refused} refused with 503, {dropped} connections closed",
        acked.len()
    );
    assert!(acked.len() >= 600);
    // The clients were still writing when shutdown began.
    assert!(refused + dropped >= 1, "{refused} + {dropped}");
    drop(store);

    // Restart: every acknowledged write is there, under the id it was acknowledged with.
    let reopened = AutoTieringCoordinator::new(config).await.unwrap();
    for (signature, id) in &acked {
        let r = reopened
            .get(*id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{signature} (id {id}) lost"));
        assert_eq!(r.transaction_signature.as_deref(), Some(signature.as_str()));
    }
    reopened.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_public_address_without_a_token_is_refused_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path()))
            .await
            .unwrap(),
    );
    let config = ServerConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let err = serve_with_shutdown(store.clone(), config, async {})
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::InsecureListen { .. }), "{err}");
    assert!(err.to_string().contains("token"));
    // An address in use is a typed error too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = ServerConfig {
        listen: taken.local_addr().unwrap(),
        ..ServerConfig::default()
    };
    let err = serve_with_shutdown(store.clone(), config, async {})
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }), "{err}");
    // The store was not touched: it still takes writes.
    store.put(&record(None, 0)).await.unwrap();
}

#[tokio::test]
async fn while_shutting_down_readiness_and_new_requests_get_503() {
    let h = harness(ServerConfig::default()).await;
    let state = AppState::new(h.store.clone(), &ServerConfig::default());
    let app = tiered_storage_server::router(state.clone());
    assert_eq!(get(&app, "/readyz").await.status, StatusCode::OK);
    state.begin_shutdown();
    let r = get(&app, "/readyz").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    );
    let r = post(&app, "/v1/records", json_line(&record(None, 0))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    );
    let r = call(&app, Method::GET, "/v1/records/1", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(h.store.get_stats().await.unwrap().total_records, 0);
}

#[tokio::test]
async fn a_closed_store_answers_503_closed() {
    let h = harness(ServerConfig::default()).await;
    h.store.shutdown().await.unwrap();
    let r = post(&h.app, "/v1/records", json_line(&record(None, 0))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "closed")
    );
    let v = post(&h.app, "/v1/records:batch", json_line(&record(None, 0)))
        .await
        .json();
    assert_eq!(v["errors"][0]["code"], "closed");
    assert_eq!(v["ids"], serde_json::json!([null]));
}

#[test]
fn serving_is_a_send_future() {
    fn is_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path()))
                .await
                .unwrap(),
        );
        let future = tiered_storage_server::serve(store, ServerConfig::default());
        is_send(&future);
    });
}
