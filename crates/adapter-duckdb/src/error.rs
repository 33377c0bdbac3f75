//! The one place DuckDB errors become [`StoreError`] kinds.
//!
//! DuckDB reports almost everything through one error code with a message
//! that starts with the error class (`IO Error: ...`, `Constraint Error: ...`),
//! so the mapping reads the class from the message:
//!
//! | DuckDB says | kind |
//! |---|---|
//! | `Could not set lock on file` (another process holds the file) | `Unavailable`, naming the file and the holder |
//! | `IO Error`, `Out of Memory Error` | `Unavailable` |
//! | `Constraint Error`, `TransactionContext Error` (write-write conflict) | `Conflict` |
//! | `Interrupt Error` | `Timeout` |
//! | anything else (our SQL, type conversions, a fatal error) | `Internal` |

use std::path::Path;
use std::time::Duration;

use strata_core::StoreError;

/// The backend name used in every error and report.
pub(crate) const BACKEND: &str = "duckdb";

/// The text DuckDB uses when another process holds the file.
const LOCK_CONFLICT: &str = "Could not set lock on file";

/// Whether DuckDB refused to open the file because another process holds its lock.
pub(crate) fn is_lock_conflict(error: &duckdb::Error) -> bool {
    error.to_string().contains(LOCK_CONFLICT)
}

/// Maps a failure to open `path` after waiting `waited` for its lock.
pub(crate) fn open_error(path: &Path, waited: Duration, error: duckdb::Error) -> StoreError {
    let message = error.to_string();
    if !message.contains(LOCK_CONFLICT) {
        return map(&format!("opening {}", path.display()), error);
    }
    let holder = match (holder_description(&message), holder_pid(&message)) {
        (Some(description), _) => description,
        (None, Some(pid)) => format!("process {pid}"),
        (None, None) => "another process".to_string(),
    };
    let remedy = match holder_pid(&message) {
        Some(pid) => format!("stop that process (PID {pid})"),
        None => "close the other process using it".to_string(),
    };
    let waited = if waited.is_zero() { String::new() } else { format!(" after waiting {waited:.1?}") };
    StoreError::Unavailable {
        backend: BACKEND,
        what: format!(
            "database file {} is locked by {holder}{waited}; {remedy}, or point STRATA_DUCKDB_PATH at another file",
            path.display()
        ),
        source: Some(Box::new(error)),
    }
}

/// Maps a DuckDB error raised while doing `what` (a short phrase such as
/// `"writing 1000 bars"`) to the kind a caller can act on.
pub(crate) fn map(what: &str, error: duckdb::Error) -> StoreError {
    let message = match &error {
        duckdb::Error::DuckDBFailure(_, Some(message)) => message.clone(),
        _ => return internal(what, error),
    };
    let class = message.split_once(" Error:").map(|(class, _)| class.trim()).unwrap_or("");
    match class {
        _ if message.contains(LOCK_CONFLICT) => StoreError::Unavailable {
            backend: BACKEND,
            what: format!("{what}: the database file is locked by another process"),
            source: Some(Box::new(error)),
        },
        "IO" | "Out of Memory" => {
            StoreError::Unavailable { backend: BACKEND, what: what.to_string(), source: Some(Box::new(error)) }
        }
        "Constraint" | "TransactionContext" => StoreError::Conflict { what: format!("{what}: {message}") },
        "Interrupt" => StoreError::Timeout { backend: BACKEND, what: what.to_string() },
        _ => internal(what, error),
    }
}

/// An `Internal` error with `error` as its source.
pub(crate) fn internal(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Internal { backend: BACKEND, what: what.to_string(), source: Some(Box::new(error)) }
}

/// Adds the operation to a DuckDB result's error.
pub(crate) trait ResultExt<T> {
    /// Maps the error with [`map`].
    fn during(self, what: &str) -> Result<T, StoreError>;
}

impl<T> ResultExt<T> for Result<T, duckdb::Error> {
    fn during(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|error| map(what, error))
    }
}

/// The process id DuckDB names as the lock holder (`... (PID 1234) ...`).
fn holder_pid(message: &str) -> Option<u32> {
    let start = message.find("PID ")? + "PID ".len();
    let digits: String = message[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// DuckDB's description of the holder: `/usr/bin/strata (PID 1234) by user me`.
fn holder_description(message: &str) -> Option<String> {
    let start = message.find(HELD_IN)? + HELD_IN.len();
    let rest = &message[start..];
    let description = rest.split(". ").next().unwrap_or(rest).trim_end_matches('.').trim();
    (!description.is_empty()).then(|| description.to_string())
}

/// What DuckDB writes before the holder's description.
const HELD_IN: &str = "Conflicting lock is held in ";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failure(message: &str) -> duckdb::Error {
        duckdb::Error::DuckDBFailure(duckdb::ffi::Error::new(1), Some(message.to_string()))
    }

    const LOCKED: &str = "IO Error: Could not set lock on file \"/data/strata.duckdb\": Conflicting lock is held in \
                          /usr/bin/strata (PID 4242) by user me. See also https://duckdb.org/docs/current/connect/concurrency";

    #[test]
    fn a_lock_conflict_names_the_file_the_holder_and_the_remedy() {
        let error = open_error(Path::new("/data/strata.duckdb"), Duration::from_millis(1500), failure(LOCKED));
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        let message = error.to_string();
        for expected in [
            "/data/strata.duckdb is locked by /usr/bin/strata (PID 4242) by user me after waiting 1.5s;",
            "stop that process (PID 4242)",
            "STRATA_DUCKDB_PATH",
        ] {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
        assert!(error.is_retryable());
    }

    #[test]
    fn classes_map_to_kinds() {
        let kind = |message: &str| map("doing it", failure(message)).kind();
        assert_eq!(kind(LOCKED), "unavailable");
        assert_eq!(kind("IO Error: No space left on device"), "unavailable");
        assert_eq!(kind("Constraint Error: Duplicate key \"id: a\" violates primary key constraint"), "conflict");
        assert_eq!(kind("TransactionContext Error: Catalog write-write conflict"), "conflict");
        assert_eq!(kind("Interrupt Error: Interrupted!"), "timeout");
        assert_eq!(kind("Binder Error: Referenced column \"x\" not found"), "internal");
        assert_eq!(map("reading", duckdb::Error::QueryReturnedNoRows).kind(), "internal");
    }
}
