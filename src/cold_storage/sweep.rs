//! The intent sweep of an object-store cold tier: deleting exactly the objects nothing
//! catalogues, without listing the bucket.
//!
//! Before an upload (an archival or compaction output, a delete file) and before a commit
//! that uncatalogues objects (compaction inputs, a retired delete file), the key is recorded
//! in `cold_intents`. An object store never deletes a replaced object at once: readers that
//! opened it before the catalog switch may still be reading it. The sweep, run at open and
//! as the maintenance task `sweep_intents`, takes each intent:
//! - the key is catalogued: the upload committed, or the uncataloguing commit never came
//!   (a crash); the intent is dropped and the object stays;
//! - it is not catalogued and the intent is older than `cold.orphan_grace_secs`: the object
//!   (an upload whose commit never came, or a replaced file) is deleted from the primary and
//!   every replica, then the intent is dropped;
//! - it is not catalogued and younger: it waits for a later sweep.
//!
//! The caller holds the moves lock (or is the open, before any move), so no intent is
//! between its record and its commit while the sweep looks at it.

use serde::Serialize;

use super::ColdArchiveStorage;
use crate::error::Result;
use crate::record::Record;

/// What one intent sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Uncatalogued objects deleted (past the grace period).
    pub deleted: u64,
    /// Intents of catalogued objects, dropped (the objects stay).
    pub kept: u64,
    /// Intents of uncatalogued objects still inside the grace period.
    pub waiting: u64,
    /// Objects whose delete failed; their intents stay for the next sweep.
    pub failed: u64,
}

impl<R: Record> ColdArchiveStorage<R> {
    /// Record `keys` as intents (blocking), on an object store only: before an upload, or
    /// before a commit that uncatalogues them.
    pub(crate) fn record_intents(&self, keys: &[String]) -> Result<()> {
        if self.store().is_remote() && !keys.is_empty() {
            self.catalog().record_intents(keys)?;
        }
        Ok(())
    }

    /// Whether the files live in an object store.
    pub(crate) fn is_remote(&self) -> bool {
        self.store().is_remote()
    }

    /// [`sweep_intents`](Self::sweep_intents) now (by the wall clock, which stamps the
    /// intents), with `cold.orphan_grace_secs`.
    pub(crate) fn sweep_intents_now(&self) -> Result<SweepReport> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let grace_ms =
            i64::try_from(self.config().orphan_grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.sweep_intents(now_ms, grace_ms)
    }

    /// Delete `key` from the primary and every replica.
    fn delete_everywhere(&self, key: &str) -> Result<()> {
        #[cfg(feature = "s3")]
        if let Some(object) = self.store().object() {
            return object.delete_everywhere(key);
        }
        self.store().delete(key)
    }

    /// Sweep the intents (blocking; see the module doc): delete every uncatalogued intent
    /// key recorded before `now_ms - grace_ms` (wall-clock Unix ms, as intents are stamped),
    /// drop the intents of catalogued keys. Nothing to do on a local store.
    pub(crate) fn sweep_intents(&self, now_ms: i64, grace_ms: i64) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        if !self.is_remote() {
            return Ok(report);
        }
        let mut done = Vec::new();
        for (key, created_ms) in self.catalog().intents()? {
            if self.catalog().is_catalogued(&key)? {
                report.kept += 1;
                done.push(key);
                continue;
            }
            if created_ms > now_ms.saturating_sub(grace_ms) {
                report.waiting += 1;
                continue;
            }
            match self.delete_everywhere(&key) {
                Ok(()) => {
                    tracing::info!(
                        key,
                        "deleted an uncatalogued cold object past its grace period"
                    );
                    report.deleted += 1;
                    done.push(key);
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "could not delete an uncatalogued cold object; the next sweep tries again");
                    report.failed += 1;
                }
            }
        }
        self.catalog().drop_intents(&done)?;
        Ok(report)
    }
}
