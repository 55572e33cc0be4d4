//! Building the config from --config / --data-dir and opening the store read-only or read-write.

use std::path::PathBuf;

use tiered_storage::{AutoTieringCoordinator, StorageConfig};

use crate::error::{CliError, CliResult, Kind};

pub type Store = AutoTieringCoordinator;

/// The store options of the command line.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

impl StoreOptions {
    /// The config file's settings (or the defaults), with --data-dir applied.
    pub fn config(&self) -> CliResult<StorageConfig> {
        let mut config = match &self.config {
            Some(path) => StorageConfig::from_toml_file(path)
                .map_err(|e| CliError::store("reading the config", e))?,
            None => StorageConfig::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        config
            .validate()
            .map_err(|e| CliError::store("checking the config", e))?;
        Ok(config)
    }

    /// Open read-only: works beside the owning process, writes nothing, takes no lock.
    pub async fn open_read_only(&self) -> CliResult<Store> {
        let config = self.config()?;
        let warm = config.data_dir.join("warm.sqlite3");
        if !warm.exists() {
            return Err(CliError::new(
                Kind::Store,
                format!(
                    "no store at {} (no warm.sqlite3): pass --data-dir or --config, or --url for a service",
                    config.data_dir.display()
                ),
            ));
        }
        Store::open_read_only(config)
            .await
            .map_err(|e| CliError::store("opening the store read-only", e))
    }

    /// Open read-write (the directory's one owner); creates the store if it does not exist.
    pub async fn open_read_write(&self) -> CliResult<Store> {
        let config = self.config()?;
        Store::open(config)
            .await
            .map_err(|e| CliError::store("opening the store", e))
    }
}

/// Release a read-write store: writes in flight finish and the directory lock is released.
pub async fn close(store: Store) -> CliResult<()> {
    store
        .shutdown()
        .await
        .map_err(|e| CliError::store("closing the store", e))
}
