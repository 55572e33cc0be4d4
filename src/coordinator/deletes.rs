//! Publishing tombstones as delete files (`cold_storage/deletes.rs`), and the compaction
//! step both compaction and publication share.
//!
//! When outside readers see a change to an archived record (an update or remove tombstones
//! its cold copy): at the next publication of its partition, which runs
//! - at every maintenance step (after archival and compaction),
//! - at the start of every archival pass, before new versions of updated records land in
//!   cold, and before each archival file is published into a partition with unpublished
//!   tombstones,
//! - in every compaction commit (the partition's list is rewritten with the rows retired),
//! - at shutdown, and on [`AutoTieringCoordinator::publish_deletes`].
//!
//! Id-only membership: a partition never holds a tombstoned copy of an id beside a live one.
//! Before an archival file holding id X is published into partition P, every file of P with a
//! tombstoned copy of X is rewritten without its dead rows (a compaction of that file, whose
//! commit also rewrites P's delete file), so P's delete files never list an id that one of
//! its files holds live.

use std::collections::BTreeSet;

use serde::Serialize;

use super::AutoTieringCoordinator;
use crate::blocking::run_blocking;
use crate::catalog::{DeletePublish, FileState};
use crate::cold_storage::{discard_path, ColdArchiveStorage, CompactionGroup, FinishedFile};
use crate::error::{Error, Result};
use crate::failpoint::crash_point;
use crate::record::Record;
use crate::warm_storage::{CompactCommit, WarmSqliteStorage};

/// What [`AutoTieringCoordinator::publish_deletes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PublishReport {
    /// Partitions whose delete file was written afresh.
    pub partitions: u64,
    /// Delete files written (one per partition; empty when it has no tombstone left).
    pub files: u64,
    /// Ids listed in them.
    pub ids: u64,
}

/// What one compaction of a group did (see [`compact_group`]).
pub(crate) enum GroupOutcome {
    /// An input was quarantined or still settling: nothing changed.
    Skipped { file_id: i64 },
    /// The output replaced the inputs.
    Done {
        output: Option<FinishedFile>,
        dropped: u64,
    },
}

impl<R: Record> AutoTieringCoordinator<R> {
    /// Publish every tombstone not yet published: each day partition whose tombstones changed
    /// since its delete file was written gets a new one (`cold/_deletes/date=YYYY-MM-DD/`),
    /// and the old one is removed. Afterwards an outside reader that applies the delete files
    /// (see the README, "Reading the archive from DuckDB and Polars") sees exactly the
    /// archived records the store serves from cold. The store also publishes on its own (see
    /// the module docs of `coordinator/deletes.rs`): call this when an outside reader must see
    /// a change now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tiered_storage::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tiered_storage::{AutoTieringCoordinator, StorageConfig, TransactionRecord};
    ///
    /// let store = AutoTieringCoordinator::new(StorageConfig::default().with_data_dir(dir.path())).await?;
    /// let id = store.put(&TransactionRecord { timestamp_decision_made: 1_000, ..Default::default() }).await?;
    /// store.archive_older_than(2_000).await?;
    /// store.remove(id).await?;
    /// let report = store.publish_deletes().await?;
    /// assert_eq!((report.files, report.ids), (1, 1));
    /// assert!(dir.path().join("cold/_deletes/date=1970-01-01").is_dir());
    /// # Ok(()) }
    /// ```
    pub async fn publish_deletes(&self) -> Result<PublishReport> {
        let _move = self.moves.lock().await;
        self.check_open("publish deletes")?;
        self.publish_locked(Vec::new()).await
    }

    /// Publish the dirty partitions and `extra` (the caller holds the moves lock).
    pub(crate) async fn publish_locked(&self, extra: Vec<String>) -> Result<PublishReport> {
        let warm = self.warm.clone();
        let cold = self.cold.clone();
        let handle = tokio::runtime::Handle::current();
        run_blocking(move || {
            let mut partitions: BTreeSet<String> =
                cold.catalog().dirty_partitions()?.into_iter().collect();
            partitions.extend(extra);
            let mut report = PublishReport::default();
            for p in partitions {
                if let Some(ids) = publish_partition(&handle, &warm, &cold, &p, true)? {
                    report.partitions += 1;
                    report.files += 1;
                    report.ids += ids;
                }
            }
            Ok(report)
        })
        .await?
    }
}

/// The ids of the tombstones of `partition`'s files, except those of `except` (files about
/// to be replaced), ascending and unique, with the partition's dirty generation and its
/// current delete file.
fn partition_ids<R: Record>(
    cold: &ColdArchiveStorage<R>,
    partition: &str,
    except: &[i64],
) -> Result<(Vec<i64>, i64, Option<String>)> {
    let snap = cold.catalog().partition_dead(partition)?;
    let mut ids: Vec<i64> = snap
        .tombstones
        .iter()
        .filter(|(f, _)| !except.contains(f))
        .map(|&(_, id)| id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok((ids, snap.gen, snap.current.map(|c| c.path)))
}

/// Write `partition`'s delete file afresh, commit it in place of the current one and remove
/// that (blocking; the caller holds the moves lock). Returns the ids listed, or `None` when
/// there was nothing to do (clean, with a delete file, and not `force`d).
pub(crate) fn publish_partition<R: Record>(
    handle: &tokio::runtime::Handle,
    warm: &WarmSqliteStorage<R>,
    cold: &ColdArchiveStorage<R>,
    partition: &str,
    force: bool,
) -> Result<Option<u64>> {
    let (ids, gen, current) = partition_ids(cold, partition, &[])?;
    if gen == 0 && current.is_some() && !force {
        return Ok(None);
    }
    let file = Some(cold.write_delete_file(partition, &ids)?);
    // The commit retires the current file: on an object store, the sweep deletes it later.
    record_uncatalogue_intents(cold, current.iter().cloned().collect())?;
    let new_path = file.as_ref().map(|f| f.path.clone());
    let publish = DeletePublish {
        partition: partition.to_owned(),
        file,
        gen,
    };
    let retired = match handle.block_on(warm.commit_deletes(publish)) {
        Ok(r) => r,
        Err(e) => {
            // Rolled back: the new file will never be catalogued.
            if let (Error::Sqlite { .. }, Some(p)) = (&e, &new_path) {
                discard_path(cold, p);
            }
            return Err(e);
        }
    };
    crash_point("deletes:catalogued");
    if let Some(old) = retired {
        cold.remove_delete_file(&old)?;
        crash_point("deletes:retired");
    }
    Ok(Some(ids.len() as u64))
}

/// Rewrite one compaction group: merge its live rows into one file, write the partition's
/// delete file without the inputs' tombstones (their rows are dropped), commit both in one
/// transaction, then remove the inputs and the retired delete file (blocking; the caller
/// holds the moves lock).
pub(crate) fn compact_group<R: Record>(
    handle: &tokio::runtime::Handle,
    warm: &WarmSqliteStorage<R>,
    cold: &ColdArchiveStorage<R>,
    group: &CompactionGroup,
) -> Result<GroupOutcome> {
    let (built, dropped) = cold.build_compaction(group)?;
    let replaces: Vec<i64> = group.inputs.iter().map(|e| e.file_id).collect();
    let partition = crate::cold_storage::partition_of(&group.inputs[0].path).to_owned();
    let discard_output = |built: &Option<FinishedFile>| {
        if let Some(f) = built {
            discard_path(cold, &f.file.path);
        }
    };
    let deletes = partition_ids(cold, &partition, &replaces).and_then(|(ids, gen, current)| {
        let file = Some(cold.write_delete_file(&partition, &ids)?);
        // The commit uncatalogues the inputs and the current delete file: on an object store
        // they are deleted by the intent sweep, after the grace period.
        let mut keys: Vec<String> = group.inputs.iter().map(|e| e.path.clone()).collect();
        keys.extend(current);
        record_uncatalogue_intents(cold, keys)?;
        Ok(DeletePublish {
            partition: partition.clone(),
            file,
            gen,
        })
    });
    let deletes = match deletes {
        Ok(d) => d,
        Err(e) => {
            discard_output(&built);
            return Err(e);
        }
    };
    let new_deletes = deletes.file.as_ref().map(|f| f.path.clone());
    let committed = handle.block_on(warm.commit_compaction(
        built.as_ref().map(|f| f.file.clone()),
        replaces.clone(),
        dropped.clone(),
        Some(deletes),
    ));
    // Rolled back in SQLite, or refused because an input was quarantined since the plan: the
    // published outputs will never be catalogued, and the inputs still serve their records.
    // Any other error leaves the outcome unknown, and the next open sorts it out.
    let discard = matches!(
        committed,
        Err(Error::Sqlite { .. }) | Ok(CompactCommit::InputGone { .. })
    );
    if discard {
        discard_output(&built);
        if let Some(p) = &new_deletes {
            discard_path(cold, p);
        }
    }
    let retired = match committed? {
        CompactCommit::InputGone { file_id } => return Ok(GroupOutcome::Skipped { file_id }),
        CompactCommit::Committed { retired, .. } => retired,
    };
    crash_point("compact:committed");
    cold.forget(&replaces);
    cold.remove_compacted(&group.inputs)?;
    crash_point("compact:old_removed");
    if let Some(old) = retired {
        cold.remove_delete_file(&old)?;
        crash_point("deletes:retired");
    }
    Ok(GroupOutcome::Done {
        output: built,
        dropped: dropped.len() as u64,
    })
}

/// Record the keys a commit is about to uncatalogue as intents, on an object store (where
/// nothing is deleted at once; see `cold_storage/sweep.rs`).
fn record_uncatalogue_intents<R: Record>(
    cold: &ColdArchiveStorage<R>,
    keys: Vec<String>,
) -> Result<()> {
    cold.record_intents(&keys)
}

/// Before an archival file holding `rows` (ascending ids) is published into `partition`:
/// rewrite every file of the partition holding a tombstoned copy of one of those ids (so the
/// partition never holds a dead and a live copy of one id), then publish the partition if it
/// has unpublished tombstones or no delete file yet (blocking; the caller holds the moves
/// lock).
pub(crate) fn prepare_partition<R: Record>(
    handle: &tokio::runtime::Handle,
    warm: &WarmSqliteStorage<R>,
    cold: &ColdArchiveStorage<R>,
    partition: &str,
    rows: &[(i64, i64)],
) -> Result<()> {
    let snap = cold.catalog().partition_dead(partition)?;
    let stale: BTreeSet<i64> = snap
        .tombstones
        .iter()
        .filter(|(_, id)| rows.binary_search_by_key(id, |r| r.0).is_ok())
        .map(|&(f, _)| f)
        .collect();
    if !stale.is_empty() {
        let entries = cold.files()?;
        for f in stale {
            let Some(entry) = entries.iter().find(|e| e.file_id == f) else {
                continue;
            };
            if entry.state != FileState::Live || !entry.is_settled() {
                return Err(Error::cold_file(
                    cold.file_path(&entry.path),
                    "holds a superseded copy of a record being archived into its partition, and cannot be rewritten now (quarantined or settling); archival of that partition waits",
                ));
            }
            tracing::info!(path = %entry.path, "rewriting a file whose superseded rows are archived again into its partition");
            let group = CompactionGroup {
                inputs: vec![entry.clone()],
            };
            if let GroupOutcome::Skipped { file_id } = compact_group(handle, warm, cold, &group)? {
                return Err(Error::cold_file(
                    cold.file_path(&entry.path),
                    format!("file {file_id} changed state during its rewrite; archival of its partition waits"),
                ));
            }
        }
        return Ok(());
    }
    // Also gives a new partition its (empty) delete file.
    publish_partition(handle, warm, cold, partition, false)?;
    Ok(())
}
