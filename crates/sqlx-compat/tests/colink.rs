//! sqlx (sqlite) and tiered-storage in one test binary, doing real work with both.

use sqlx::Row;
use tiered_storage::{AutoTieringCoordinator, StorageConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_on_sqlx_keeps_its_trades_in_tiered_storage() {
    let dir = tempfile::tempdir().unwrap();
    let s = sqlx_compat::run(dir.path(), 400).await.unwrap();
    assert_eq!(s.trades, 400);
    assert_eq!(s.closed, 200);
    assert_eq!(s.open_positions, 200);
    assert_eq!(s.archived, 200);
    // 100 wins of 0.05 and 100 losses of 0.03.
    assert!((s.realized_sol - 2.0).abs() < 1e-9, "{}", s.realized_sol);
    assert!(s.sqlite_version.starts_with("3."), "{}", s.sqlite_version);

    // Both stores reopen what the session wrote, side by side in this process.
    let store: AutoTieringCoordinator = AutoTieringCoordinator::new(
        StorageConfig::default().with_data_dir(dir.path().join("trades")),
    )
    .await
    .unwrap();
    let stats = store.get_stats().await.unwrap();
    assert_eq!((stats.total_records, stats.cold_records), (400, 200));
    let db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("bot.db").display()))
            .await
            .unwrap();
    let open: i64 = sqlx::query("SELECT count(*) FROM positions")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 200);
    store.shutdown().await.unwrap();
    db.close().await;
}
