//! The crate's one error type: every failure names what the caller can act on.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
///
/// Variants carry the path, id or field involved. Where the caller can fix the problem, the
/// message says how.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid. Nothing was opened.
    #[error("invalid config `{field}`: {message}")]
    Config {
        /// The offending field, e.g. `hot.capacity`.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// A config file could not be read or parsed.
    #[error("cannot load config from {path}: {message}")]
    ConfigFile {
        /// The file that failed.
        path: PathBuf,
        /// The read or parse error.
        message: String,
    },

    /// Another record already carries this signature. Nothing was written.
    #[error("signature {signature:?} already belongs to record {existing_id}; use `update` to change that record")]
    DuplicateSignature {
        /// The duplicated signature.
        signature: String,
        /// The record that owns it.
        existing_id: i64,
    },

    /// The record's signature is `Some("")`. Use `None` for "not sent yet". Nothing was written.
    #[error("empty transaction signature: use `None` for a record that has no signature yet")]
    EmptySignature,

    /// The encoded record exceeds the configured maximum. Nothing was written.
    #[error("record encodes to {size} bytes, over the limit of {max} (raise `max_record_bytes` to allow it)")]
    RecordTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The configured `max_record_bytes`.
        max: usize,
    },

    /// No record with this id exists (in any tier).
    #[error("no record with id {id}")]
    NotFound {
        /// The id that was looked up.
        id: i64,
    },

    /// The record cannot be stored as given (e.g. `put` of a record that already has an id).
    #[error("invalid record: {reason}")]
    InvalidRecord {
        /// Why the record was refused.
        reason: String,
    },

    /// The store cannot answer a query as asked: an outcome kind that does not exist, a
    /// field or column the record type does not have, a limit that means nothing. Nothing was
    /// read or written; fix the query.
    #[error("invalid query: {message}")]
    InvalidQuery {
        /// What is wrong with the query, and what is accepted.
        message: String,
    },

    /// An SQL query ran longer than `sql.timeout_ms` and was stopped. Nothing was written;
    /// narrow the query (a time range on `ts_ms`, an id range) or raise the limit.
    #[error("query stopped after {timeout_ms} ms (the `sql.timeout_ms` limit); narrow it, e.g. with a `ts_ms` range, or raise the limit")]
    SqlTimeout {
        /// The limit that was reached, in milliseconds.
        timeout_ms: u64,
    },

    /// An SQL query would return more than `sql.max_rows` rows. Nothing is returned;
    /// aggregate, add a `LIMIT`, or raise the limit.
    #[error("query returns more than {max_rows} rows (the `sql.max_rows` limit); aggregate, add a LIMIT, or raise the limit")]
    SqlRowLimit {
        /// The limit that was passed.
        max_rows: usize,
    },

    /// The record kept moving between warm and cold (archival, compaction, an update of an
    /// archived copy) while this call followed it. Nothing was written; retrying is safe and
    /// almost always succeeds.
    #[error("record {id} kept moving between warm and cold while being accessed; retry")]
    Conflict {
        /// The record.
        id: i64,
    },

    /// The operation is not supported by this tier or handle (e.g. a direct write into the
    /// cold tier, which only archival writes). Nothing was written.
    #[error("not supported: {op}")]
    Unsupported {
        /// The operation, and what to use instead.
        op: &'static str,
    },

    /// The data directory cannot be created or written.
    #[error("data directory {path} is not usable: {source} (check that it exists and is writable, or set `data_dir`)")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"open"`.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// SQLite reported an error.
    #[error("sqlite {op} on {path}: {source}")]
    Sqlite {
        /// What was being done, e.g. `"insert"`.
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// SQLite found the warm database damaged (or a record it must hold is missing). The read
    /// or write failed; an alert is raised. Nothing damaged is ever returned as data or as "not
    /// found".
    #[error("database {path} is corrupt: {detail} (run `verify`; restore from a copy made with `backup_to`)")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported, and where.
        detail: String,
    },

    /// The database was written by a newer version of this library.
    #[error("database {path} has schema version {found}, newer than the {supported} this build supports; upgrade tiered-storage")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The `user_version` found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// A stored record could not be decoded, or a record could not be encoded.
    #[error("cannot {op} record{}: {message}", id.map(|i| format!(" {i}")).unwrap_or_default())]
    Codec {
        /// `"encode"` or `"decode"`.
        op: &'static str,
        /// The record's id, when known.
        id: Option<i64>,
        /// The codec's message.
        message: String,
    },

    /// A cold (Parquet) file is missing, truncated, unreadable or not one of ours. The file is
    /// quarantined: reads of records it holds fail with this error, everything else is served.
    #[error("cold file {path}: {reason} (run `verify_cold` / `rebuild_cold_catalog`, or restore the file from a backup)")]
    ColdFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The store has been shut down or its writer thread has stopped.
    #[error("the store is closed")]
    Closed,

    /// Another opener owns the data directory (one read-write owner per directory). Nothing
    /// was opened or touched.
    #[error("data directory {path} is already open by {holder}; stop that process (or close the other handle), or open this one read-only with `open_read_only`")]
    AlreadyOpen {
        /// The data directory.
        path: std::path::PathBuf,
        /// Who holds it: pid, host and since when, from the lock file.
        holder: String,
    },

    /// The store was opened read-only: writes, moves and maintenance are refused. Nothing was
    /// written.
    #[error("the store at {path} is open read-only; {op} needs the read-write owner")]
    ReadOnly {
        /// The data directory.
        path: std::path::PathBuf,
        /// The refused operation, e.g. `"put"`.
        op: &'static str,
    },
}

impl Error {
    /// A stable, machine-readable name for the variant, e.g. `"duplicate_signature"`: what the
    /// HTTP service puts in an error body's `code` and what a client can match on. Codes never
    /// change meaning; a new variant gets a new code.
    ///
    /// ```
    /// use tiered_storage::Error;
    /// assert_eq!(Error::NotFound { id: 7 }.code(), "not_found");
    /// assert_eq!(Error::EmptySignature.code(), "empty_signature");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::ConfigFile { .. } => "config_file",
            Error::DuplicateSignature { .. } => "duplicate_signature",
            Error::EmptySignature => "empty_signature",
            Error::RecordTooLarge { .. } => "record_too_large",
            Error::NotFound { .. } => "not_found",
            Error::InvalidRecord { .. } => "invalid_record",
            Error::InvalidQuery { .. } => "invalid_query",
            Error::SqlTimeout { .. } => "sql_timeout",
            Error::SqlRowLimit { .. } => "sql_row_limit",
            Error::Conflict { .. } => "conflict",
            Error::Unsupported { .. } => "unsupported",
            Error::DataDir { .. } => "data_dir",
            Error::Io { .. } => "io",
            Error::Sqlite { .. } => "sqlite",
            Error::Corrupt { .. } => "corrupt",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::Codec { .. } => "codec",
            Error::ColdFile { .. } => "cold_file",
            Error::Closed => "closed",
            Error::AlreadyOpen { .. } => "already_open",
            Error::ReadOnly { .. } => "read_only",
        }
    }

    pub(crate) fn config(field: &'static str, message: impl Into<String>) -> Self {
        Error::Config {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn cold_file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::ColdFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidRecord {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_query(message: impl Into<String>) -> Self {
        Error::InvalidQuery {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_distinct_snake_case_names() {
        let io = || std::io::Error::other("x");
        let all = [
            Error::config("hot.capacity", "x"),
            Error::ConfigFile {
                path: "f".into(),
                message: "x".into(),
            },
            Error::DuplicateSignature {
                signature: "s".into(),
                existing_id: 1,
            },
            Error::EmptySignature,
            Error::RecordTooLarge { size: 2, max: 1 },
            Error::NotFound { id: 1 },
            Error::invalid("x"),
            Error::invalid_query("x"),
            Error::SqlTimeout { timeout_ms: 1 },
            Error::SqlRowLimit { max_rows: 1 },
            Error::Conflict { id: 1 },
            Error::Unsupported { op: "x" },
            Error::DataDir {
                path: "d".into(),
                source: io(),
            },
            Error::Io {
                op: "open",
                path: "p".into(),
                source: io(),
            },
            Error::Sqlite {
                op: "x",
                path: "p".into(),
                source: rusqlite::Error::InvalidQuery,
            },
            Error::Corrupt {
                path: "p".into(),
                detail: "x".into(),
            },
            Error::SchemaTooNew {
                path: "p".into(),
                found: 9,
                supported: 6,
            },
            Error::Codec {
                op: "decode",
                id: None,
                message: "x".into(),
            },
            Error::cold_file("p", "x"),
            Error::Closed,
            Error::AlreadyOpen {
                path: "d".into(),
                holder: "h".into(),
            },
            Error::ReadOnly {
                path: "d".into(),
                op: "put",
            },
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(Error::code).collect();
        assert_eq!(codes.len(), all.len(), "two variants share a code");
        for code in codes {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
    }
}
