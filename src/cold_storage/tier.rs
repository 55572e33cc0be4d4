//! The cold tier as a [`StorageTier`]: direct access, reading the catalog on its own. The
//! store's reads go through the coordinator instead.

use std::time::Duration;

use async_trait::async_trait;

use super::file::ScanBounds;
use super::{ColdArchiveStorage, ColdRead, COLD_TARGET_ACCESS_TIME, RELOCATE_ATTEMPTS};
use crate::catalog::CatalogEntry;
use crate::error::{Error, Result};
use crate::metrics::TierMetrics;
use crate::record::{signature_hash, Record};
use crate::tier::StorageTier;

#[async_trait]
impl<R: Record> StorageTier<R> for ColdArchiveStorage<R> {
    /// Reads the archived copy of `id`, if a live file holds one. Alone, the cold tier does
    /// not know whether warm holds a newer version: the coordinator's `get` does.
    async fn get(&self, id: i64) -> Result<Option<R>> {
        let this = self.clone();
        self.pool().run(move || this.read_alone(id)).await?
    }

    /// Reads the archived record carrying `signature`, if a live file holds one (see `get`).
    async fn get_by_signature(&self, signature: &str) -> Result<Option<R>> {
        let this = self.clone();
        let sig = signature.to_owned();
        self.pool()
            .run(move || {
                let ids = this.inner.catalog.archived_ids(signature_hash(&sig))?;
                for id in ids {
                    if let Some(r) = this.read_alone(id)? {
                        if r.signature() == Some(sig.as_str()) {
                            return Ok(Some(r));
                        }
                    }
                }
                Ok(None)
            })
            .await?
    }

    /// Refused: the cold tier is written by archival, whose catalog change must commit with
    /// the warm delete. Use `AutoTieringCoordinator::archive_now`.
    async fn put(&self, _record: &R) -> Result<i64> {
        Err(Error::Unsupported {
            op: "put into the cold tier (it is written only by archival: put through the coordinator, and AutoTieringCoordinator::archive_now moves records here)",
        })
    }

    /// Refused: a cold delete is a tombstone committed by the warm writer. Use
    /// `AutoTieringCoordinator::remove`.
    async fn remove(&self, _id: i64) -> Result<bool> {
        Err(Error::Unsupported {
            op: "remove from the cold tier (archived records are removed through AutoTieringCoordinator::remove, which tombstones them)",
        })
    }

    async fn list_since(
        &self,
        since_ms: i64,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let this = self.clone();
        self.pool()
            .run(move || this.page_since(since_ms, after_id, limit))
            .await?
    }

    async fn count(&self) -> Result<u64> {
        Ok(self
            .inner
            .catalog
            .entries()?
            .iter()
            .map(CatalogEntry::live_rows)
            .sum())
    }

    async fn get_metrics(&self) -> Result<TierMetrics> {
        Ok(self.metrics())
    }

    fn tier_name(&self) -> &'static str {
        "cold"
    }

    fn target_access_time(&self) -> Duration {
        COLD_TARGET_ACCESS_TIME
    }
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Direct tier access: read `id` from the files the catalog says cover it, following a
    /// file that compaction replaced meanwhile.
    fn read_alone(&self, id: i64) -> Result<Option<R>> {
        let mut vanished = None;
        for _ in 0..RELOCATE_ATTEMPTS {
            let files = self.inner.catalog.covering(id)?;
            match self.read(id, &files)? {
                ColdRead::Found { record, .. } => return Ok(Some(record)),
                ColdRead::Absent => return Ok(None),
                ColdRead::Vanished { file_id, error } => {
                    self.check_vanished(&mut vanished, file_id, error)?
                }
            }
        }
        Err(Error::Conflict { id })
    }

    /// One page of live archived records with `timestamp_ms() >= since_ms` and id above
    /// `after_id`, in id order, file by file (blocking).
    fn page_since(&self, since_ms: i64, after_id: Option<i64>, limit: usize) -> Result<Vec<R>> {
        let after = after_id.unwrap_or(i64::MIN);
        let mut entries: Vec<CatalogEntry> = self
            .inner
            .catalog
            .entries()?
            .into_iter()
            .filter(|e| e.max_id > after && e.max_ts >= since_ms)
            .collect();
        entries.sort_by_key(|e| e.min_id);
        let mut out: Vec<R> = Vec::new();
        let bounds = ScanBounds {
            min_id: after.saturating_add(1),
            max_id: i64::MAX,
            min_ts: since_ms,
            max_ts: i64::MAX,
            equals: Vec::new(),
            batch_rows: limit.clamp(1, 8192),
        };
        for entry in &entries {
            // Files are sorted by min_id; once the page is full and the next file starts past
            // its last id, no later file can contribute a smaller id.
            if out.len() >= limit && out.last().and_then(Record::id) < Some(entry.min_id) {
                break;
            }
            let dead = self
                .inner
                .catalog
                .dead_ids(entry.file_id, bounds.min_id, entry.max_id)?;
            for batch in self.scan_file(entry, &bounds)? {
                for r in batch? {
                    let id = r.id().expect("cold rows carry their id");
                    // Rows of a file still settling above its settled-through id are
                    // served by warm.
                    if entry.serves(id) && dead.binary_search(&id).is_err() {
                        out.push(r);
                    }
                }
                if out.len() >= limit {
                    break;
                }
            }
            out.sort_by_key(|r| r.id());
            out.truncate(limit);
        }
        Ok(out)
    }
}
