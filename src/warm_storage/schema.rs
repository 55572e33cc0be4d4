//! SQLite schema, migrations (`user_version`) and per-connection settings.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::config::{Durability, WarmConfig};
use crate::error::{Error, Result};

/// The schema version this build writes. A database with a higher `user_version` is refused.
pub const SCHEMA_VERSION: i64 = 8;

/// Page size of a new database. Existing databases keep theirs.
///
/// 4 KiB: every page an update or put dirties is written to the WAL whole (and copied back by
/// the checkpoint), and updates hit random rows. In the update mix of `benches/core.rs`
/// (`BENCH_MIX`, 1M rows, 50% get / 50% update, zipfian) 4 KiB pages gave 1.2–1.9× the
/// throughput of 16 KiB at K = 1/16/64 and update p50 70 µs instead of 103 µs. 16 KiB pages
/// made archival's bulk deletes cheaper (1.1 instead of 2.0 µs/row), which matters less than
/// every write paying four times the WAL bytes.
const WARM_PAGE_SIZE: i64 = 4096;

/// `MIGRATIONS[v]` takes a database from version `v` to `v + 1`, in one transaction.
const MIGRATIONS: &[&str] = &[
    // v1: records keyed by id. Signatures are found through `sig_index`, a 64-bit hash → id
    // table that the writer fills in bulk, sorted, from the rows above the watermark
    // `meta.sig_merged_upto` (see `SignatureIndex`). An index on a random key updated row by row
    // dirties one page per insert: measured here, it cut group-commit inserts from ~125k to
    // ~20k rows/s at 300k rows. The text is kept in `records` to confirm a hash hit.
    "CREATE TABLE records (
        id             INTEGER PRIMARY KEY,
        sig_hash       INTEGER,
        signature      TEXT,
        ts             INTEGER NOT NULL,
        payload        BLOB NOT NULL,
        access_count   INTEGER NOT NULL DEFAULT 0,
        last_access_ms INTEGER
     );
     CREATE INDEX records_ts ON records(ts);
     CREATE TABLE sig_index (
        sig_hash INTEGER NOT NULL,
        id       INTEGER NOT NULL,
        PRIMARY KEY (sig_hash, id)
     ) WITHOUT ROWID;
     CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
    // v2: access statistics move to their own narrow table. Updating counters inside `records`
    // rewrote a whole ~4 KiB page of wide rows per read record (one flush after 200k random
    // reads built a ~165 MB WAL); `access` rows are ~15 bytes, so a flush touches ~200 per page.
    "CREATE TABLE access (
        id      INTEGER PRIMARY KEY,
        reads   INTEGER NOT NULL,
        last_ms INTEGER NOT NULL
     );
     INSERT INTO access (id, reads, last_ms)
        SELECT id, access_count, coalesce(last_access_ms, 0) FROM records WHERE access_count > 0;
     ALTER TABLE records DROP COLUMN access_count;
     ALTER TABLE records DROP COLUMN last_access_ms;",
    // v3: the cold tier's catalog (as in DuckLake), kept here so that an archival move commits
    // its catalog row and the delete of its warm rows in one transaction.
    // - `records.rev` counts a row's updates: archival deletes a row only if it is still the
    //   version it copied, and otherwise tombstones the copy.
    // - `cold_files` has one row per Parquet file. Its ids are never reused (AUTOINCREMENT):
    //   caches and open scans key files by id, and a reused id would make them read a
    //   replaced file as if it were its successor; `cold_dead` holds tombstones: rows of a file
    //   that were superseded (updated back into warm) or deleted. Signatures of archived records
    //   stay in `sig_index`, which then maps to an id found in cold.
    "ALTER TABLE records ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE cold_files (
        file_id    INTEGER PRIMARY KEY AUTOINCREMENT,
        path       TEXT NOT NULL UNIQUE,
        min_id     INTEGER NOT NULL,
        max_id     INTEGER NOT NULL,
        min_ts     INTEGER NOT NULL,
        max_ts     INTEGER NOT NULL,
        row_count  INTEGER NOT NULL,
        bytes      INTEGER NOT NULL,
        state      TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'quarantined')),
        created_ms INTEGER NOT NULL
     );
     CREATE INDEX cold_files_min_id ON cold_files(min_id);
     CREATE TABLE cold_dead (
        file_id INTEGER NOT NULL,
        id      INTEGER NOT NULL,
        PRIMARY KEY (file_id, id)
     ) WITHOUT ROWID;",
    // v4: `meta.cold_next_seq`, the first cold file sequence number not yet reserved. A move
    // reserves the numbers of the files it will write (committed) before it creates them, so
    // an uncatalogued `part-<seq>` with `seq` below it is a move's own leftover (a crash
    // between publish and commit, or an unlinked compaction input) and is removed on open,
    // while a file above it is none of ours: the catalog was lost or replaced, and the file is
    // kept and reported. Existing stores start above their newest catalogued file.
    // `removed` lists removed ids (of warm rows and archived records alike). Ids are handed out
    // in order and never reused, so an id below `meta.next_id` that no tier holds and that is
    // not listed here was hidden by corruption: a read reports that, never "not found".
    // `meta.removed_tracked_from` is the first id tracked (removals before v4 were not).
    // `cold_files.page_sums` holds the CRC-32 of every page and of the footer of a file
    // (`cold_storage::checksum`); NULL for files written before it.
    "CREATE TABLE removed (id INTEGER PRIMARY KEY);
     INSERT OR IGNORE INTO meta (key, value)
        SELECT 'removed_tracked_from', max(
            coalesce((SELECT value FROM meta WHERE key = 'next_id'), 1),
            coalesce((SELECT max(id) FROM records), 0) + 1,
            coalesce((SELECT max(max_id) FROM cold_files), 0) + 1);
     ALTER TABLE cold_files ADD COLUMN page_sums BLOB;
     INSERT OR IGNORE INTO meta (key, value)
        SELECT 'cold_next_seq',
               coalesce(max(CAST(substr(path, instr(path, 'part-') + 5, 12) AS INTEGER)), 0) + 1
        FROM cold_files;",
    // v5: an archival move commits its catalog row first and deletes the warm rows afterwards,
    // in small transactions between write batches ("settling"), so puts never wait behind the
    // delete of a whole file's rows. `settled_upto` is the file's settled-through id: its rows
    // with a larger id are not served from it (their warm rows, or their absence, are
    // authoritative). `settle_left` counts those rows, and `settle` lists their `(id, rev)`
    // (see `catalog::encode_settle`) so that recovery can finish the deletes after a crash.
    // A settled file has `settled_upto` at i64::MAX, `settle_left` 0 and no `settle` list.
    "ALTER TABLE cold_files ADD COLUMN settled_upto INTEGER NOT NULL DEFAULT 9223372036854775807;
     ALTER TABLE cold_files ADD COLUMN settle_left INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE cold_files ADD COLUMN settle BLOB;",
    // v6: where archived records live, on disk (`home.rs`): `cold_home` maps an archived id to
    // the archival file it was last written to, `cold_alias` maps a compacted file to its
    // output over the output's id range, and `cold_files.mapped` says whether every row of a
    // file is reachable that way. Files catalogued before v6 are unmapped and are found by id
    // range as before; a point read of a mapped file's record reads one file, not every file
    // whose range covers the id.
    "CREATE TABLE cold_home (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL);
     CREATE TABLE cold_alias (
        file_id INTEGER NOT NULL,
        min_id  INTEGER NOT NULL,
        max_id  INTEGER NOT NULL,
        to_file INTEGER NOT NULL,
        PRIMARY KEY (file_id, min_id)
     ) WITHOUT ROWID;
     ALTER TABLE cold_files ADD COLUMN mapped INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX cold_files_unmapped ON cold_files(min_id) WHERE mapped = 0;",
    // v7: delete files, the tombstones published for outside readers (`cold_storage/deletes.rs`).
    // `cold_delete_files` catalogues the one current delete file of a day partition
    // (`_deletes/date=YYYY-MM-DD/part-<seq>.parquet`, the ids of every tombstone of that
    // partition's files when it was written). `cold_delete_dirty` lists the partitions whose
    // tombstones changed since their delete file was written: every new tombstone bumps its
    // partition's `gen`, and a publication clears the row only if `gen` is still the one it
    // read, so a tombstone is published exactly when its partition has no row here. Existing
    // stores start with every partition that has tombstones dirty.
    "CREATE TABLE cold_delete_files (
        del_id     INTEGER PRIMARY KEY AUTOINCREMENT,
        partition  TEXT NOT NULL UNIQUE,
        path       TEXT NOT NULL UNIQUE,
        row_count  INTEGER NOT NULL,
        bytes      INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
     );
     CREATE TABLE cold_delete_dirty (
        partition TEXT PRIMARY KEY,
        gen       INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT OR IGNORE INTO cold_delete_dirty (partition, gen)
        SELECT DISTINCT substr(f.path, 1, instr(f.path, '/') - 1), 1
        FROM cold_dead d JOIN cold_files f ON f.file_id = d.file_id;",
    // v8: the cold tier in object storage (`cold_storage/store/object.rs`).
    // - `cold_files.etag` is the object's ETag when the store gives one (checked against the
    //   upload, and part of the range cache's key); `footer_len` is the Parquet footer's length,
    //   so that an uncached footer is one suffix read.
    // - `cold_intents` lists keys that may exist in the store without a catalog row: a file
    //   about to be uploaded (recorded before the upload), or a file a commit is about to
    //   uncatalogue (compaction's inputs, a retired delete file). A sweep past a grace period
    //   deletes each key that is still uncatalogued, from the primary and every replica, then
    //   drops the intent; an object store is never listed to find orphans.
    // - `cold_replicas` says which replica holds a copy of which object (`key`, `bytes`): the
    //   replicator copies each catalogued object that has no row for a replica.
    "ALTER TABLE cold_files ADD COLUMN etag TEXT;
     ALTER TABLE cold_files ADD COLUMN footer_len INTEGER;
     CREATE TABLE cold_intents (
        key        TEXT PRIMARY KEY,
        created_ms INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE cold_replicas (
        key       TEXT NOT NULL,
        replica   TEXT NOT NULL,
        bytes     INTEGER NOT NULL,
        copied_ms INTEGER NOT NULL,
        PRIMARY KEY (key, replica)
     ) WITHOUT ROWID;",
];

pub(crate) fn sqlite_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(rusqlite::Error) -> Error + 'a {
    move |source| {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match source.sqlite_error_code() {
            Some(DatabaseCorrupt | NotADatabase) => Error::Corrupt {
                path: path.to_path_buf(),
                detail: format!("{op}: {source}"),
            },
            _ => Error::Sqlite {
                op,
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

fn apply_common(conn: &Connection, path: &Path, cfg: &WarmConfig) -> Result<()> {
    conn.busy_timeout(cfg.busy_timeout())
        .map_err(sqlite_err("set busy_timeout", path))?;
    let kib = i64::try_from(cfg.cache_mib * 1024).unwrap_or(i64::MAX);
    conn.pragma_update(None, "cache_size", -kib)
        .map_err(sqlite_err("set cache_size", path))?;
    conn.pragma_update(None, "mmap_size", (cfg.mmap_mib * 1024 * 1024) as i64)
        .map_err(sqlite_err("set mmap_size", path))?;
    // Check each B-tree cell's size as its page is loaded: damage inside a page's content area
    // is then reported as corruption instead of misdirecting a lookup.
    conn.pragma_update(None, "cell_size_check", true)
        .map_err(sqlite_err("set cell_size_check", path))?;
    Ok(())
}

/// The database's `user_version`; [`Error::SchemaTooNew`] if this build cannot read it.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sqlite_err("read user_version", path))?;
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// Open the single write connection: check the version, set WAL and durability, migrate.
pub(crate) fn open_writer(path: &Path, cfg: &WarmConfig) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(sqlite_err("open", path))?;
    apply_common(&conn, path, cfg)?;
    let version = schema_version(&conn, path)?;
    if version == 0 {
        // Both only take effect before the first table exists. Incremental auto-vacuum lets
        // maintenance return free pages a step at a time instead of a full VACUUM. The page
        // size: see `WARM_PAGE_SIZE`.
        conn.pragma_update(None, "page_size", WARM_PAGE_SIZE)
            .map_err(sqlite_err("set page_size", path))?;
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(sqlite_err("set auto_vacuum", path))?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite_err("set journal_mode", path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Sqlite {
            op: "set journal_mode=WAL",
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}")),
        });
    }
    let sync = match cfg.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(sqlite_err("set synchronous", path))?;
    // Keep the WAL file from growing without bound between checkpoints, and give back what a
    // burst (an archival's settling, a vacuum) grew it to once it restarts: a 64 MiB limit
    // left a 64 MiB WAL on disk beside a store shrunk by archival.
    conn.pragma_update(None, "journal_size_limit", 8 * 1024 * 1024)
        .map_err(sqlite_err("set journal_size_limit", path))?;
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn
            .transaction()
            .map_err(sqlite_err("begin migration", path))?;
        tx.execute_batch(sql).map_err(sqlite_err("migrate", path))?;
        tx.pragma_update(None, "user_version", v as i64 + 1)
            .map_err(sqlite_err("set user_version", path))?;
        tx.commit().map_err(sqlite_err("commit migration", path))?;
    }
    Ok(conn)
}

/// Check that a read-only open can read `path`: the database exists and is at this build's
/// schema version (a read-only handle cannot migrate it).
pub(crate) fn check_read_only(path: &Path, cfg: &WarmConfig) -> Result<()> {
    if !path.exists() {
        return Err(Error::Io {
            op: "open read-only (no store there)",
            path: path.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let conn = open_reader(path, cfg)?;
    let version = schema_version(&conn, path)?;
    if version < SCHEMA_VERSION {
        return Err(Error::ReadOnly {
            path: path.parent().unwrap_or(path).to_path_buf(),
            op: "migrating the database to this build's schema (open it read-write once)",
        });
    }
    Ok(())
}

/// Open one read-only connection (used on the caller's thread; no thread hop).
pub(crate) fn open_reader(path: &Path, cfg: &WarmConfig) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err("open reader", path))?;
    apply_common(&conn, path, cfg)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_storage_schema_migrates_and_refuses_newer_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite3");
        let cfg = WarmConfig::default();
        {
            let conn = open_writer(&path, &cfg).unwrap();
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
            let av: i64 = conn
                .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
                .unwrap();
            assert_eq!(av, 2, "incremental auto_vacuum");
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = open_writer(&path, &cfg).unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
    }

    /// A database written at v1 (access counters inside `records`) opens at v2 with its
    /// counters moved to `access` and the old columns gone.
    #[test]
    fn warm_storage_schema_migrates_v1_access_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "INSERT INTO records (id, ts, payload, access_count, last_access_ms)
                 VALUES (1, 10, x'00', 5, 1234), (2, 20, x'00', 0, NULL);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let conn = open_writer(&path, &WarmConfig::default()).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let rows: Vec<(i64, i64, i64)> = conn
            .prepare("SELECT id, reads, last_ms FROM access ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(1, 5, 1234)]);
        assert!(
            conn.prepare("SELECT access_count FROM records").is_err(),
            "old column dropped"
        );
        let n: i64 = conn
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "records kept");
    }

    #[test]
    fn warm_storage_rejects_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite3");
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let err = open_writer(&path, &WarmConfig::default()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}
