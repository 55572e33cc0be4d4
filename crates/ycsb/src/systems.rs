//! The systems compared: this store with its defaults, and the stores a bot developer would
//! otherwise write — rusqlite by hand, the same behind a moka cache, redb, and sqlx-sqlite.
//!
//! Every peer keeps the record as a postcard blob (the encoding this store uses too) beside
//! the columns it is looked up by: `id INTEGER PRIMARY KEY`, `signature` (unique index) and
//! `ts`. Durability matches this store's default (`Durability::Normal`: WAL with
//! `synchronous = NORMAL`, an acknowledged write survives a process crash but not a power
//! loss): SQLite peers run WAL + NORMAL, redb commits with `Durability::Eventual` (written to
//! the OS at commit, fsynced later).

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use parking_lot::{Mutex, MutexGuard};
use redb::{ReadableTable, ReadableTableMetadata};
use rusqlite::{params, OptionalExtension};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tiered_storage::{AutoTieringCoordinator, HotConfig, StorageConfig, TransactionRecord};

pub type Ours = AutoTieringCoordinator<TransactionRecord>;

/// Rows per transaction when a peer is bulk-loaded.
const LOAD_BATCH: u64 = 10_000;
/// Read connections of the hand-written SQLite store (the machine has 2 cores, the runtime
/// 2 workers: more would only idle).
const LITE_READERS: usize = 4;
/// Connections of the sqlx pool.
const SQLX_CONNECTIONS: u32 = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Kind {
    Ours,
    Sqlite,
    MokaSqlite,
    Redb,
    Sqlx,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Ours,
        Kind::Sqlite,
        Kind::MokaSqlite,
        Kind::Redb,
        Kind::Sqlx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "tiered",
            Kind::Sqlite => "rusqlite",
            Kind::MokaSqlite => "moka+rusqlite",
            Kind::Redb => "redb",
            Kind::Sqlx => "sqlx",
        }
    }

    /// Directory under the harness's data dir.
    pub fn dir_name(self) -> &'static str {
        match self {
            Kind::Ours => "tiered",
            Kind::Sqlite => "rusqlite",
            Kind::MokaSqlite => "moka-rusqlite",
            Kind::Redb => "redb",
            Kind::Sqlx => "sqlx",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        Ok(match s {
            "tiered" | "ours" => Kind::Ours,
            "rusqlite" | "sqlite" => Kind::Sqlite,
            "moka" | "moka+rusqlite" | "moka-rusqlite" => Kind::MokaSqlite,
            "redb" => Kind::Redb,
            "sqlx" => Kind::Sqlx,
            _ => bail!("unknown system {s:?} (tiered, rusqlite, moka, redb, sqlx)"),
        })
    }
}

pub fn encode(rec: &TransactionRecord) -> Vec<u8> {
    postcard::to_allocvec(rec).expect("a TransactionRecord always encodes")
}

fn decode(id: i64, body: &[u8]) -> Result<TransactionRecord> {
    let mut rec: TransactionRecord = postcard::from_bytes(body).context("corrupt record blob")?;
    rec.id = Some(id);
    Ok(rec)
}

fn sig(rec: &TransactionRecord) -> &str {
    rec.transaction_signature
        .as_deref()
        .expect("harness records are signed")
}

/// The open store of one system.
#[derive(Clone)]
pub enum Sys {
    Ours(Arc<Ours>),
    Sqlite(Arc<Lite>),
    MokaSqlite(Arc<MokaLite>),
    Redb(Arc<RedbStore>),
    Sqlx(Arc<SqlxStore>),
}

impl Sys {
    pub async fn open(kind: Kind, dir: &Path) -> Result<Sys> {
        Ok(match kind {
            Kind::Ours => Sys::Ours(Arc::new(open_ours(dir).await?)),
            Kind::Sqlite => Sys::Sqlite(Arc::new(Lite::open(dir)?)),
            Kind::MokaSqlite => Sys::MokaSqlite(Arc::new(MokaLite::open(dir)?)),
            Kind::Redb => Sys::Redb(Arc::new(RedbStore::open(dir)?)),
            Kind::Sqlx => Sys::Sqlx(Arc::new(SqlxStore::open(dir).await?)),
        })
    }

    /// Read record `id` and apply `f` to it, borrowed (this store's `get_shared` and the moka
    /// store hand out an `Arc`).
    pub async fn read_with<T>(
        &self,
        id: i64,
        f: impl FnOnce(&TransactionRecord) -> T,
    ) -> Result<Option<T>> {
        Ok(match self {
            Sys::Ours(s) => s.get_shared(id).await?.as_deref().map(f),
            Sys::Sqlite(s) => s.get(id)?.as_ref().map(f),
            Sys::MokaSqlite(s) => s.get(id)?.as_deref().map(f),
            Sys::Redb(s) => s.get(id)?.as_ref().map(f),
            Sys::Sqlx(s) => s.get(id).await?.as_ref().map(f),
        })
    }

    /// Read record `id` as an owned value to modify (read-modify-write).
    pub async fn read_owned(&self, id: i64) -> Result<Option<TransactionRecord>> {
        Ok(match self {
            Sys::Ours(s) => s.get(id).await?,
            Sys::Sqlite(s) => s.get(id)?,
            Sys::MokaSqlite(s) => s.get(id)?.map(|r| (*r).clone()),
            Sys::Redb(s) => s.get(id)?,
            Sys::Sqlx(s) => s.get(id).await?,
        })
    }

    pub async fn read_by_signature_with<T>(
        &self,
        signature: &str,
        f: impl FnOnce(&TransactionRecord) -> T,
    ) -> Result<Option<T>> {
        Ok(match self {
            Sys::Ours(s) => s
                .get_by_signature_shared(signature)
                .await?
                .as_deref()
                .map(f),
            Sys::Sqlite(s) => s.get_by_signature(signature)?.as_ref().map(f),
            Sys::MokaSqlite(s) => s.get_by_signature(signature)?.as_deref().map(f),
            Sys::Redb(s) => s.get_by_signature(signature)?.as_ref().map(f),
            Sys::Sqlx(s) => s.get_by_signature(signature).await?.as_ref().map(f),
        })
    }

    /// Overwrite record `rec.id`.
    pub async fn update(&self, rec: &TransactionRecord) -> Result<()> {
        match self {
            Sys::Ours(s) => s.update(rec).await?,
            Sys::Sqlite(s) => s.update(rec)?,
            Sys::MokaSqlite(s) => s.update(rec)?,
            Sys::Redb(s) => s.update(rec)?,
            Sys::Sqlx(s) => s.update(rec).await?,
        }
        Ok(())
    }

    /// Insert a new record (its `id` is ignored); returns the id it got. Peers number their
    /// rows themselves, as `INTEGER PRIMARY KEY` would.
    pub async fn insert(&self, mut rec: TransactionRecord) -> Result<i64> {
        Ok(match self {
            Sys::Ours(s) => s.put(&rec).await?,
            Sys::Sqlite(s) => {
                let id = s.next_id();
                rec.id = Some(id);
                s.insert(&rec)?;
                id
            }
            Sys::MokaSqlite(s) => {
                let id = s.lite.next_id();
                rec.id = Some(id);
                s.insert(rec)?;
                id
            }
            Sys::Redb(s) => {
                let id = s.next_id.fetch_add(1, Ordering::Relaxed);
                rec.id = Some(id);
                s.insert(&rec)?;
                id
            }
            Sys::Sqlx(s) => {
                let id = s.next_id.fetch_add(1, Ordering::Relaxed);
                rec.id = Some(id);
                s.insert(&rec).await?;
                id
            }
        })
    }

    /// Records stored.
    pub async fn count(&self) -> Result<u64> {
        Ok(match self {
            Sys::Ours(s) => s.get_stats().await?.total_records,
            Sys::Sqlite(s) => s.count()?,
            Sys::MokaSqlite(s) => s.lite.count()?,
            Sys::Redb(s) => s.count()?,
            Sys::Sqlx(s) => s.count().await?,
        })
    }

    /// Close (our store: shut down, so the directory can be reopened).
    pub async fn close(self) -> Result<()> {
        match self {
            Sys::Ours(s) => s.shutdown().await?,
            Sys::Sqlx(s) => s.pool.close().await,
            _ => {}
        }
        Ok(())
    }
}

/// This store with its defaults, in `dir/store`.
pub async fn open_ours(dir: &Path) -> Result<Ours> {
    Ok(Ours::new(StorageConfig::default().with_data_dir(dir.join("store"))).await?)
}

// ---------------------------------------------------------------------------------------------
// rusqlite, by hand

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY,
    signature TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    body BLOB NOT NULL
)";

/// The store a competent bot developer writes with rusqlite: WAL, `synchronous = NORMAL`, one
/// writer connection behind a mutex, a few read connections, cached prepared statements.
pub struct Lite {
    writer: Mutex<rusqlite::Connection>,
    readers: Vec<Mutex<rusqlite::Connection>>,
    next_reader: AtomicUsize,
    next_id: AtomicI64,
}

fn lite_connection(path: &Path) -> Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    ensure!(mode.eq_ignore_ascii_case("wal"), "journal_mode {mode}");
    c.execute_batch("PRAGMA synchronous = NORMAL")?;
    Ok(c)
}

impl Lite {
    pub fn open(dir: &Path) -> Result<Lite> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("trades.db");
        let writer = lite_connection(&path)?;
        writer.execute_batch(SCHEMA)?;
        let max: i64 =
            writer.query_row("SELECT coalesce(max(id), 0) FROM trades", [], |r| r.get(0))?;
        let readers = (0..LITE_READERS)
            .map(|_| lite_connection(&path).map(Mutex::new))
            .collect::<Result<_>>()?;
        Ok(Lite {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            next_id: AtomicI64::new(max + 1),
        })
    }

    fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn reader(&self) -> MutexGuard<'_, rusqlite::Connection> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Some(g) = self.readers[(start + i) % n].try_lock() {
                return g;
            }
        }
        self.readers[start % n].lock()
    }

    pub fn get(&self, id: i64) -> Result<Option<TransactionRecord>> {
        let c = self.reader();
        let mut st = c.prepare_cached("SELECT body FROM trades WHERE id = ?1")?;
        let body: Option<Vec<u8>> = st.query_row([id], |r| r.get(0)).optional()?;
        body.map(|b| decode(id, &b)).transpose()
    }

    pub fn get_by_signature(&self, signature: &str) -> Result<Option<TransactionRecord>> {
        let c = self.reader();
        let mut st = c.prepare_cached("SELECT id, body FROM trades WHERE signature = ?1")?;
        let row: Option<(i64, Vec<u8>)> = st
            .query_row([signature], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(id, b)| decode(id, &b)).transpose()
    }

    pub fn insert(&self, rec: &TransactionRecord) -> Result<()> {
        let body = encode(rec);
        let c = self.writer.lock();
        c.prepare_cached("INSERT INTO trades (id, signature, ts, body) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![rec.id, sig(rec), rec.timestamp_decision_made, body])?;
        Ok(())
    }

    pub fn update(&self, rec: &TransactionRecord) -> Result<()> {
        let body = encode(rec);
        let c = self.writer.lock();
        let n = c
            .prepare_cached("UPDATE trades SET ts = ?2, body = ?3 WHERE id = ?1")?
            .execute(params![rec.id, rec.timestamp_decision_made, body])?;
        ensure!(n == 1, "update of a missing row {:?}", rec.id);
        Ok(())
    }

    /// Bulk load records `0..n` as ids `1..=n`, in transactions of `LOAD_BATCH` rows.
    pub fn load(&self, n: u64) -> Result<()> {
        let mut c = self.writer.lock();
        let mut i = 0;
        while i < n {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO trades (id, signature, ts, body) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for j in i..(i + LOAD_BATCH).min(n) {
                    let mut rec = crate::data::record(j);
                    rec.id = Some(j as i64 + 1);
                    st.execute(params![
                        rec.id,
                        sig(&rec),
                        rec.timestamp_decision_made,
                        encode(&rec)
                    ])?;
                }
            }
            tx.commit()?;
            i += LOAD_BATCH;
        }
        self.next_id.fetch_max(n as i64 + 1, Ordering::Relaxed);
        Ok(())
    }

    pub fn count(&self) -> Result<u64> {
        let c = self.reader();
        Ok(c.query_row("SELECT count(*) FROM trades", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Fold the WAL into the database file and truncate it (the file at rest).
    pub fn checkpoint(&self) -> Result<()> {
        let c = self.writer.lock();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// moka in front of rusqlite

/// The hand-written store with a moka cache of `Arc`'d records in front, as large as this
/// store's hot tier by default.
pub struct MokaLite {
    pub lite: Lite,
    cache: moka::sync::Cache<i64, Arc<TransactionRecord>>,
}

impl MokaLite {
    pub fn open(dir: &Path) -> Result<MokaLite> {
        Ok(MokaLite {
            lite: Lite::open(dir)?,
            cache: moka::sync::Cache::new(HotConfig::default().capacity),
        })
    }

    pub fn get(&self, id: i64) -> Result<Option<Arc<TransactionRecord>>> {
        if let Some(r) = self.cache.get(&id) {
            return Ok(Some(r));
        }
        let Some(rec) = self.lite.get(id)? else {
            return Ok(None);
        };
        let rec = Arc::new(rec);
        self.cache.insert(id, Arc::clone(&rec));
        Ok(Some(rec))
    }

    pub fn get_by_signature(&self, signature: &str) -> Result<Option<Arc<TransactionRecord>>> {
        let Some(rec) = self.lite.get_by_signature(signature)? else {
            return Ok(None);
        };
        let rec = Arc::new(rec);
        self.cache
            .insert(rec.id.expect("read rows have ids"), Arc::clone(&rec));
        Ok(Some(rec))
    }

    pub fn update(&self, rec: &TransactionRecord) -> Result<()> {
        self.lite.update(rec)?;
        self.cache
            .insert(rec.id.expect("updates carry ids"), Arc::new(rec.clone()));
        Ok(())
    }

    pub fn insert(&self, rec: TransactionRecord) -> Result<()> {
        self.lite.insert(&rec)?;
        self.cache
            .insert(rec.id.expect("inserts carry ids"), Arc::new(rec));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// redb

const TRADES: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("trades");
const SIGS: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("signatures");

/// redb: id → blob, signature → id; every write its own transaction with
/// `Durability::Eventual` (the match of SQLite's WAL + NORMAL).
pub struct RedbStore {
    db: redb::Database,
    next_id: AtomicI64,
}

impl RedbStore {
    pub fn open(dir: &Path) -> Result<RedbStore> {
        std::fs::create_dir_all(dir)?;
        let db = redb::Database::create(dir.join("trades.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(TRADES)?;
        tx.open_table(SIGS)?;
        tx.commit()?;
        let max = {
            let tx = db.begin_read()?;
            let t = tx.open_table(TRADES)?;
            let last = t.last()?.map(|(k, _)| k.value());
            last.unwrap_or(0) as i64
        };
        Ok(RedbStore {
            db,
            next_id: AtomicI64::new(max + 1),
        })
    }

    pub fn get(&self, id: i64) -> Result<Option<TransactionRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TRADES)?;
        let v = t.get(id as u64)?;
        v.map(|v| decode(id, v.value())).transpose()
    }

    pub fn get_by_signature(&self, signature: &str) -> Result<Option<TransactionRecord>> {
        let tx = self.db.begin_read()?;
        let s = tx.open_table(SIGS)?;
        let Some(id) = s.get(signature)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let t = tx.open_table(TRADES)?;
        let v = t.get(id)?;
        v.map(|v| decode(id as i64, v.value())).transpose()
    }

    fn write_tx(&self) -> Result<redb::WriteTransaction> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Eventual);
        Ok(tx)
    }

    pub fn insert(&self, rec: &TransactionRecord) -> Result<()> {
        let body = encode(rec);
        let id = rec.id.expect("inserts carry ids") as u64;
        let tx = self.write_tx()?;
        {
            let mut t = tx.open_table(TRADES)?;
            t.insert(id, body.as_slice())?;
            let mut s = tx.open_table(SIGS)?;
            s.insert(sig(rec), id)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn update(&self, rec: &TransactionRecord) -> Result<()> {
        let body = encode(rec);
        let id = rec.id.expect("updates carry ids") as u64;
        let tx = self.write_tx()?;
        {
            let mut t = tx.open_table(TRADES)?;
            let old = t.insert(id, body.as_slice())?;
            ensure!(old.is_some(), "update of a missing row {id}");
        }
        tx.commit()?;
        Ok(())
    }

    pub fn load(&self, n: u64) -> Result<()> {
        let mut i = 0;
        while i < n {
            let mut tx = self.db.begin_write()?;
            // The last batch is fsynced, so the loaded file is whole when the loader exits.
            if i + LOAD_BATCH < n {
                tx.set_durability(redb::Durability::Eventual);
            }
            {
                let mut t = tx.open_table(TRADES)?;
                let mut s = tx.open_table(SIGS)?;
                for j in i..(i + LOAD_BATCH).min(n) {
                    let mut rec = crate::data::record(j);
                    rec.id = Some(j as i64 + 1);
                    t.insert(j + 1, encode(&rec).as_slice())?;
                    s.insert(sig(&rec), j + 1)?;
                }
            }
            tx.commit()?;
            i += LOAD_BATCH;
        }
        self.next_id.fetch_max(n as i64 + 1, Ordering::Relaxed);
        Ok(())
    }

    pub fn count(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(TRADES)?.len()?)
    }
}

// ---------------------------------------------------------------------------------------------
// sqlx

/// sqlx-sqlite: one `SqlitePool` (WAL, NORMAL), the seed bot's stack.
pub struct SqlxStore {
    pool: SqlitePool,
    next_id: AtomicI64,
}

impl SqlxStore {
    pub async fn open(dir: &Path) -> Result<SqlxStore> {
        std::fs::create_dir_all(dir)?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("trades.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLX_CONNECTIONS)
            .connect_with(opts)
            .await?;
        sqlx::query(SCHEMA).execute(&pool).await?;
        let max: i64 = sqlx::query("SELECT coalesce(max(id), 0) FROM trades")
            .fetch_one(&pool)
            .await?
            .try_get(0)?;
        Ok(SqlxStore {
            pool,
            next_id: AtomicI64::new(max + 1),
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<TransactionRecord>> {
        let row = sqlx::query("SELECT body FROM trades WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(id, r.try_get::<&[u8], _>(0)?))
            .transpose()
    }

    pub async fn get_by_signature(&self, signature: &str) -> Result<Option<TransactionRecord>> {
        let row = sqlx::query("SELECT id, body FROM trades WHERE signature = ?")
            .bind(signature)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(r.try_get(0)?, r.try_get::<&[u8], _>(1)?))
            .transpose()
    }

    pub async fn insert(&self, rec: &TransactionRecord) -> Result<()> {
        sqlx::query("INSERT INTO trades (id, signature, ts, body) VALUES (?, ?, ?, ?)")
            .bind(rec.id)
            .bind(sig(rec))
            .bind(rec.timestamp_decision_made)
            .bind(encode(rec))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update(&self, rec: &TransactionRecord) -> Result<()> {
        let done = sqlx::query("UPDATE trades SET ts = ?, body = ? WHERE id = ?")
            .bind(rec.timestamp_decision_made)
            .bind(encode(rec))
            .bind(rec.id)
            .execute(&self.pool)
            .await?;
        ensure!(
            done.rows_affected() == 1,
            "update of a missing row {:?}",
            rec.id
        );
        Ok(())
    }

    /// Bulk load in transactions of `LOAD_BATCH` rows, 200 rows per `INSERT`.
    pub async fn load(&self, n: u64) -> Result<()> {
        const ROWS: u64 = 200;
        let mut i = 0;
        while i < n {
            let mut tx = self.pool.begin().await?;
            let end = (i + LOAD_BATCH).min(n);
            let mut j = i;
            while j < end {
                let rows = (end - j).min(ROWS);
                let mut sql = String::from("INSERT INTO trades (id, signature, ts, body) VALUES ");
                for r in 0..rows {
                    sql.push_str(if r == 0 {
                        "(?, ?, ?, ?)"
                    } else {
                        ", (?, ?, ?, ?)"
                    });
                }
                let mut q = sqlx::query(&sql);
                for k in j..j + rows {
                    let mut rec = crate::data::record(k);
                    rec.id = Some(k as i64 + 1);
                    q = q
                        .bind(k as i64 + 1)
                        .bind(rec.transaction_signature.clone())
                        .bind(rec.timestamp_decision_made)
                        .bind(encode(&rec));
                }
                q.execute(&mut *tx).await?;
                j += rows;
            }
            tx.commit().await?;
            i += LOAD_BATCH;
        }
        self.next_id.fetch_max(n as i64 + 1, Ordering::Relaxed);
        Ok(())
    }

    pub async fn count(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT count(*) FROM trades")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }
}
