//! Point reads that answer for the whole store from ONE warm snapshot: the row, or the live
//! cold files that may hold it (the catalog lives in this database). The coordinator hands
//! those files to the cold tier, which reads only them and never asks warm again.

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension};

use super::home::candidates;
use super::schema::sqlite_err;
use super::{WarmRow, WarmSqliteStorage};
use crate::catalog::{ArchivedCopy, CatalogEntry};
use crate::error::Result;
use crate::record::{signature_hash, Record};

/// Catalogued files that serve `?1` and hold no tombstone for it (every file whose id range
/// covers it: the fallback of [`candidates`](super::home::candidates) for unmapped files and
/// overlong chains). A file serves an id it covers once it is settled through it: above its
/// settled-through id an archival has not yet decided between the copy and the warm row, and
/// the warm row (or its absence: a remove) is authoritative.
pub(super) const COVERING: &str = "WHERE f.min_id <= ?1 AND f.max_id >= ?1
     AND f.settled_upto >= ?1 AND NOT EXISTS
     (SELECT 1 FROM cold_dead d WHERE d.file_id = f.file_id AND d.id = ?1)";

/// Where a record is, as one snapshot of the warm database sees it.
pub(crate) enum Lookup<R> {
    /// Its warm row.
    Row(WarmRow<R>),
    /// Not in warm: the catalogued files (live or quarantined) that cover the id with no
    /// tombstone for it. The record is in at most one of them; an empty list means no tier
    /// holds it.
    Archived(Vec<CatalogEntry>),
}

/// Where a signature's record is, as one snapshot of the warm database sees it.
pub(crate) enum SignatureLookup<R> {
    /// The warm row carrying the signature (its text confirmed).
    Row(WarmRow<R>),
    /// No warm row carries it: the archived records whose signature hash matches, each with
    /// the files that may hold it. Their texts are unconfirmed (a 64-bit hash may collide); an
    /// empty list means no tier holds the signature.
    Archived(Vec<ArchivedCopy>),
}

impl<R: Record> WarmSqliteStorage<R> {
    /// Read `id` on the calling thread: its row, or the cold files that may hold it, from one
    /// snapshot. Counts a warm hit or miss and queues the row's access statistics.
    pub(crate) fn lookup(&self, id: i64) -> Result<Lookup<R>> {
        let start = Instant::now();
        let path = &self.inner.path;
        let found = self.inner.with_reader(|conn| {
            // One statement is one snapshot: a warm hit needs nothing else.
            if let Some(p) = select_payload(conn, path, id)? {
                return Ok(Ok(p));
            }
            // Missed: read the row again with the catalog in one snapshot, so a record that
            // moved in between is seen in exactly one place.
            let tx = conn
                .unchecked_transaction()
                .map_err(sqlite_err("begin lookup", path))?;
            let out = match select_payload(&tx, path, id)? {
                Some(p) => Ok(p),
                None => Err(candidates(&tx, path, id)?),
            };
            tx.commit().map_err(sqlite_err("end lookup", path))?;
            Ok(out)
        })?;
        match found {
            Ok(payload) => Ok(Lookup::Row(
                self.finish_read(Some((id, payload)), start)?
                    .expect("a found row decodes or fails"),
            )),
            Err(files) => {
                self.inner.stats.record(false, start);
                Ok(Lookup::Archived(files))
            }
        }
    }

    /// Where `id` lives, for a write that must find an archived record's home: `None` when it
    /// has a warm row, else the files that may hold it. One snapshot; not counted as a read.
    pub(crate) fn locate(&self, id: i64) -> Result<Option<Vec<CatalogEntry>>> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            let tx = conn
                .unchecked_transaction()
                .map_err(sqlite_err("begin locate", path))?;
            let in_warm = tx
                .prepare_cached("SELECT 1 FROM records WHERE id = ?1")
                .and_then(|mut s| s.exists([id]))
                .map_err(sqlite_err("locate", path))?;
            let out = if in_warm {
                None
            } else {
                Some(candidates(&tx, path, id)?)
            };
            tx.commit().map_err(sqlite_err("end locate", path))?;
            Ok(out)
        })
    }

    /// Whether cold file `file_id` is still the home of `id`: no warm row, the file live and
    /// covering it with no tombstone. Every update or remove of an archived record changes
    /// this, so a copy read from the file before a `true` answer is the current version.
    pub(crate) fn cold_copy_is_current(&self, id: i64, file_id: i64) -> Result<bool> {
        let path = &self.inner.path;
        self.inner.with_reader(|conn| {
            conn.prepare_cached(
                "SELECT NOT EXISTS (SELECT 1 FROM records WHERE id = ?2)
                    AND EXISTS (SELECT 1 FROM cold_files f WHERE f.file_id = ?1
                                AND f.state = 'live' AND f.min_id <= ?2 AND f.max_id >= ?2
                                AND f.settled_upto >= ?2
                                AND NOT EXISTS (SELECT 1 FROM cold_dead d
                                                WHERE d.file_id = ?1 AND d.id = ?2))",
            )
            .and_then(|mut s| s.query_row([file_id, id], |r| r.get(0)))
            .map_err(sqlite_err("check a cold copy", path))
        })
    }

    /// Read by signature on the calling thread: the warm row carrying it, or the archived
    /// records that may, each with the files that may hold it.
    ///
    /// Candidate ids come from the in-memory delta, then from `sig_index`, each confirmed by
    /// its text. The delta is read first: a merge commits `sig_index` before it empties the
    /// delta, so a signature is always in one of the two. A warm hit is one join; anything
    /// else runs the whole lookup again in one snapshot that also names the archived candidates
    /// and their files.
    pub(crate) fn lookup_signature(&self, signature: &str) -> Result<SignatureLookup<R>> {
        let start = Instant::now();
        let hash = signature_hash(signature);
        let recent = self.inner.shared.sig_delta.ids(hash);
        let path = &self.inner.path;
        // A read-only handle has no delta (the owner keeps it in its memory): it reads
        // `sig_index` and the unmerged rows above the watermark in one snapshot instead.
        let read_only = self.inner.read_only;
        let found = self.inner.with_reader(|conn| {
            // The owner's fast path: a warm hit is one join, as cheap as a raw indexed read.
            // Anything else (a miss, or archived candidates) is answered by the full lookup
            // below, in one snapshot.
            if !read_only {
                if let SigRows::Row(id, payload) =
                    signature_in(conn, path, signature, hash, &recent, Pass::HitsOnly)?
                {
                    return Ok(Ok((id, payload)));
                }
            }
            let tx = conn
                .unchecked_transaction()
                .map_err(sqlite_err("begin signature lookup", path))?;
            let pass = if read_only {
                Pass::WithUnmerged
            } else {
                Pass::Full
            };
            let out = match signature_in(&tx, path, signature, hash, &recent, pass)? {
                SigRows::Row(id, payload) => Ok((id, payload)),
                SigRows::Archived(ids) => Err(ids
                    .into_iter()
                    .map(|id| {
                        Ok(ArchivedCopy {
                            id,
                            files: candidates(&tx, path, id)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?),
            };
            tx.commit()
                .map_err(sqlite_err("end signature lookup", path))?;
            Ok(out)
        })?;
        match found {
            Ok((id, payload)) => Ok(SignatureLookup::Row(
                self.finish_read(Some((id, payload)), start)?
                    .expect("a found row decodes or fails"),
            )),
            Err(copies) => {
                self.inner.stats.record(false, start);
                Ok(SignatureLookup::Archived(copies))
            }
        }
    }
}

/// What the signature queries of one connection state found.
enum SigRows {
    /// The warm row carrying the signature: its id and payload.
    Row(i64, Vec<u8>),
    /// No warm row: `sig_index` ids whose row left warm (archived), unconfirmed.
    Archived(Vec<i64>),
}

fn select_payload(conn: &Connection, path: &std::path::Path, id: i64) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT payload FROM records WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(sqlite_err("read by id", path))
}

/// How much of the signature lookup to run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Only look for the warm row (`Archived` then says nothing about archived records).
    HitsOnly,
    /// The warm row, or the archived ids.
    Full,
    /// [`Pass::Full`], also scanning the rows above the merge watermark (for a handle without
    /// the owner's delta).
    WithUnmerged,
}

/// The signature's warm row, or the archived ids `sig_index` maps its hash to.
fn signature_in(
    conn: &Connection,
    path: &std::path::Path,
    signature: &str,
    hash: i64,
    recent: &[i64],
    pass: Pass,
) -> Result<SigRows> {
    let err = || sqlite_err("read by signature", path);
    let matching = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Option<(i64, Vec<u8>)>> {
        let text = row.get_ref(1)?.as_str_or_null()?;
        Ok(if text == Some(signature) {
            Some((row.get(0)?, row.get(2)?))
        } else {
            None
        })
    };
    for &id in recent {
        let hit = conn
            .prepare_cached("SELECT id, signature, payload FROM records WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], matching).optional())
            .map_err(err())?;
        if let Some(Some((id, payload))) = hit {
            return Ok(SigRows::Row(id, payload));
        }
    }
    if pass == Pass::HitsOnly {
        let mut stmt = conn
            .prepare_cached(
                "SELECT r.id, r.signature, r.payload FROM sig_index s
                 JOIN records r ON r.id = s.id WHERE s.sig_hash = ?1",
            )
            .map_err(err())?;
        let mut rows = stmt.query([hash]).map_err(err())?;
        while let Some(row) = rows.next().map_err(err())? {
            if let Some((id, payload)) = matching(row).map_err(err())? {
                return Ok(SigRows::Row(id, payload));
            }
        }
        return Ok(SigRows::Archived(Vec::new()));
    }
    // One statement, so one snapshot: each indexed id is either a warm row (its text checked)
    // or archived. Two statements could see a record in neither (archived when the first ran,
    // back in warm when the second did).
    let mut archived = Vec::new();
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT s.id, r.signature, r.payload, r.id IS NULL FROM sig_index s
                 LEFT JOIN records r ON r.id = s.id WHERE s.sig_hash = ?1",
            )
            .map_err(err())?;
        let mut rows = stmt.query([hash]).map_err(err())?;
        while let Some(row) = rows.next().map_err(err())? {
            if row.get::<_, bool>(3).map_err(err())? {
                archived.push(row.get::<_, i64>(0).map_err(err())?);
            } else if let Some((id, payload)) = matching(row).map_err(err())? {
                return Ok(SigRows::Row(id, payload));
            }
        }
    }
    if pass == Pass::WithUnmerged {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, signature, payload FROM records
                 WHERE id > coalesce((SELECT value FROM meta WHERE key = 'sig_merged_upto'), 0)
                   AND sig_hash = ?1",
            )
            .map_err(err())?;
        let mut rows = stmt.query([hash]).map_err(err())?;
        while let Some(row) = rows.next().map_err(err())? {
            if let Some((id, payload)) = matching(row).map_err(err())? {
                return Ok(SigRows::Row(id, payload));
            }
        }
    }
    Ok(SigRows::Archived(archived))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::error::Error;
    use crate::record::tests::sample;
    use crate::tier::StorageTier;

    fn open(dir: &std::path::Path) -> WarmSqliteStorage {
        WarmSqliteStorage::open(&StorageConfig::default().with_data_dir(dir)).unwrap()
    }

    #[tokio::test]
    async fn warm_storage_corrupt_payload_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let id = w.put(&sample(1)).await.unwrap();
        let conn = Connection::open(w.path()).unwrap();
        conn.execute("UPDATE records SET payload = x'ffffff' WHERE id = ?1", [id])
            .unwrap();
        let err = w.get(id).await.unwrap_err();
        assert!(
            matches!(err, Error::Codec { id: Some(i), .. } if i == id),
            "{err}"
        );
    }
}
