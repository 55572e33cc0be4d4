//! `cargo run -p sqlx-compat [DIR]`: one session of a bot that keeps its own tables in sqlx
//! and its trades in tiered-storage, in one binary. DIR defaults to a fresh temporary directory.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, temporary) = match std::env::args().nth(1) {
        Some(d) => (std::path::PathBuf::from(d), false),
        None => (
            std::env::temp_dir().join(format!("sqlx-compat-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    let summary = sqlx_compat::run(&dir, 1_000).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("{:#?}", summary?);
    Ok(())
}
