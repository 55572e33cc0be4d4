//! The command's errors: one line of text and the exit code it maps to (see `EXIT_CODES_HELP`).

use std::fmt;
use std::path::Path;

use tiered_storage::Error as StoreError;

/// What went wrong, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No such record, or a check found problems: exit 1.
    Failed,
    /// A usage problem clap cannot see (such as a missing --yes without a terminal): exit 2.
    Usage,
    /// Another process owns the data directory: exit 3.
    Busy,
    /// The configuration is invalid: exit 4.
    Config,
    /// A file named on the command line cannot be read or written: exit 5.
    File,
    /// The service behind --url failed: exit 6.
    Remote,
    /// The store failed: exit 7.
    Store,
    /// stdout was closed by its reader (`| head`): the output is complete for it, exit 0.
    PipeClosed,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Busy => 3,
            Kind::Config => 4,
            Kind::File => 5,
            Kind::Remote => 6,
            Kind::Store => 7,
            Kind::PipeClosed => 0,
        }
    }
}

/// A failed command: printed as `error: <message>` on one line.
#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    message: String,
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: one_line(&message.into()),
        }
    }

    /// A check or lookup that failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// A file named by the user that cannot be read or written.
    pub fn file(op: &str, path: &Path, err: impl fmt::Display) -> Self {
        Self::new(Kind::File, format!("cannot {op} {}: {err}", path.display()))
    }

    pub fn remote(message: impl Into<String>) -> Self {
        Self::new(Kind::Remote, message)
    }

    /// A store error with what the command was doing.
    pub fn store(context: &str, err: StoreError) -> Self {
        let kind = match &err {
            StoreError::AlreadyOpen { .. } => Kind::Busy,
            StoreError::Config { .. } | StoreError::ConfigFile { .. } => Kind::Config,
            StoreError::InvalidQuery { .. } => Kind::Usage,
            _ => Kind::Store,
        };
        let text = match &err {
            StoreError::AlreadyOpen { path, holder } => format!(
                "data directory {} is owned by another process ({holder}); stop it first \
                 (read commands work beside it, or use --url against its service)",
                path.display()
            ),
            other => other.to_string(),
        };
        Self::new(kind, format!("{context}: {text}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Collapse a message onto one line: the user sees exactly one line per error.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\n  b\n\nc"), "a; b; c");
        let e = CliError::failed("first\nsecond");
        assert_eq!(e.to_string(), "first; second");
    }

    #[test]
    fn store_errors_map_to_their_exit_codes() {
        let e = CliError::store(
            "opening",
            StoreError::Config {
                field: "hot.capacity",
                message: "must be > 0".into(),
            },
        );
        assert_eq!(e.kind.exit_code(), 4);
        assert!(e.to_string().contains("hot.capacity"));
        let e = CliError::store("get", StoreError::Closed);
        assert_eq!(e.kind.exit_code(), 7);
    }
}
