//! Where an archived record lives, on disk: `cold_home` maps each archived id to the archival
//! file it was last written to, and `cold_alias` maps a compacted file to its output over the
//! output's id range. A lookup follows that chain to the one catalogued file that may hold
//! the id, instead of reading every file whose id range covers it (day partitions of records
//! put out of time order all span the whole id range).
//!
//! - Archival adds one `cold_home` row per archived id ([`note_archived`]) in the settle step
//!   that deletes its warm row (`catalog.rs`, `settle_step`), so an id's home is never behind
//!   its warm delete, and the catalogue commit stays small.
//! - Compaction rewrites no `cold_home` row: it adds one `cold_alias` row per input
//!   ([`note_compacted`]) in its catalog switch. A catalogued file has no alias; an
//!   uncatalogued one has at most one (its compaction output), so the chain has one answer.
//! - Files registered without a map (written before schema v6, or by a catalog rebuild, or
//!   compacted from such a file) have `cold_files.mapped = 0` and are found by id range, as
//!   before ([`candidates`]).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::catalog::query_entries;
use super::schema::sqlite_err;
use crate::catalog::CatalogEntry;
use crate::error::Result;

/// Catalogued files without a map that serve `?1` (cover it and are settled through it, see
/// `lookup::COVERING`) and hold no tombstone for it.
const UNMAPPED_COVERING: &str = "WHERE f.mapped = 0 AND f.min_id <= ?1 AND f.max_id >= ?1
     AND f.settled_upto >= ?1 AND NOT EXISTS (SELECT 1 FROM cold_dead d WHERE d.file_id = f.file_id AND d.id = ?1)";

/// The catalogued file `?2`, if it serves `?1` and holds no tombstone for it. (A home row is
/// written in the settle step that deletes the id's warm row, so the file is settled through
/// it; the check keeps the rule in one place.)
const HOME_FILE: &str = "WHERE f.file_id = ?2 AND f.settled_upto >= ?1
     AND NOT EXISTS (SELECT 1 FROM cold_dead d WHERE d.file_id = f.file_id AND d.id = ?1)";

/// Beyond this many compactions of one record's file, the lookup falls back to the id range
/// (still correct, only slower). Each compaction at least merges or shrinks files, so real
/// chains are a few links long.
const MAX_LINKS: usize = 64;

/// The catalogued files (live or quarantined) that may hold `id` with no tombstone for it, in
/// `(min_id, file_id)` order: the end of its home chain, and any unmapped file covering it.
/// Read inside the caller's snapshot.
pub(super) fn candidates(conn: &Connection, path: &Path, id: i64) -> Result<Vec<CatalogEntry>> {
    let err = || sqlite_err("read cold home", path);
    let home: Option<i64> = conn
        .prepare_cached("SELECT file_id FROM cold_home WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(err())?;
    let mut out = query_entries(conn, path, UNMAPPED_COVERING, [id])?;
    let Some(mut file) = home else {
        return Ok(out);
    };
    for _ in 0..MAX_LINKS {
        let catalogued = conn
            .prepare_cached("SELECT 1 FROM cold_files WHERE file_id = ?1")
            .and_then(|mut s| s.exists([file]))
            .map_err(err())?;
        if catalogued {
            for entry in query_entries(conn, path, HOME_FILE, [id, file])? {
                if !out.iter().any(|e| e.file_id == entry.file_id) {
                    out.push(entry);
                    out.sort_by_key(|e| (e.min_id, e.file_id));
                }
            }
            return Ok(out);
        }
        let next: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT to_file, max_id FROM cold_alias WHERE file_id = ?1 AND min_id <= ?2
                 ORDER BY min_id DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([file, id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(err())?;
        match next {
            Some((to, max_id)) if max_id >= id => file = to,
            // Compaction dropped the row (it was tombstoned), or its file left the catalog
            // (a rebuild after it went missing): no file holds it.
            _ => return Ok(out),
        }
    }
    tracing::warn!(id, "cold home chain too long; looking the id up by range");
    query_entries(conn, path, super::lookup::COVERING, [id])
}

/// Archival: record `file_id` as the home of each of `ids`, and mark the file mapped. Called
/// in the settle step that deletes their warm rows (ids in increasing order, so the rows
/// append). Rows of a settling file without a home row are above its settled-through id, or
/// tombstoned, so they are never served from it.
pub(super) fn note_archived(
    conn: &Connection,
    path: &Path,
    file_id: i64,
    ids: impl IntoIterator<Item = i64>,
) -> Result<()> {
    let err = || sqlite_err("record cold home", path);
    let mut insert = conn
        .prepare_cached("INSERT OR REPLACE INTO cold_home (id, file_id) VALUES (?1, ?2)")
        .map_err(err())?;
    for id in ids {
        insert.execute([id, file_id]).map_err(err())?;
    }
    conn.prepare_cached("UPDATE cold_files SET mapped = 1 WHERE file_id = ?1")
        .and_then(|mut s| s.execute([file_id]))
        .map_err(err())?;
    Ok(())
}

/// Compaction: each of `replaces` now forwards ids in `min_id..=max_id` to `output`, which is
/// mapped if every input was. Called in the catalog switch, while the inputs are still
/// catalogued.
pub(super) fn note_compacted(
    conn: &Connection,
    path: &Path,
    output: i64,
    (min_id, max_id): (i64, i64),
    replaces: &[i64],
) -> Result<()> {
    let err = || sqlite_err("record cold alias", path);
    let mut mapped = true;
    for &f in replaces {
        let input_mapped: bool = conn
            .prepare_cached("SELECT mapped FROM cold_files WHERE file_id = ?1")
            .and_then(|mut s| s.query_row([f], |r| r.get(0)))
            .map_err(err())?;
        mapped &= input_mapped;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO cold_alias (file_id, min_id, max_id, to_file)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute([f, min_id, max_id, output]))
        .map_err(err())?;
    }
    conn.prepare_cached("UPDATE cold_files SET mapped = ?2 WHERE file_id = ?1")
        .and_then(|mut s| s.execute(rusqlite::params![output, mapped]))
        .map_err(err())?;
    Ok(())
}
