//! The one place DuckDB errors become [`StoreError`] kinds.
//!
//! DuckDB reports almost everything through one error code with a message
//! that starts with the error class (`IO Error: ...`, `Constraint Error: ...`),
//! so the mapping reads the class from the message:
//!
//! | DuckDB says | kind |
//! |---|---|
//! | `Could not set lock on file` (another process holds the file) | `Unavailable`, naming the file and the holder |
//! | an OS error of the disk, in any class (`No space left on device`, `File too large`, `Permission denied`, `Read-only file system`, `Disk quota exceeded`) | `Unavailable` saying what the operator must fix, marked as not worth retrying |
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

/// Whether `error` (a store error from this adapter) is another process
/// holding the file: the only case where waiting (`--lock-wait`) helps.
pub fn is_locked(error: &StoreError) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<duckdb::Error>().is_some_and(is_lock_conflict) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// OS errors of the disk under the file, as DuckDB quotes them, with what the
/// operator has to do. Retrying does not help until they do it.
const DISK_ERRORS: [(&str, &str); 5] = [
    ("No space left on device", "the disk holding the store is full; free space"),
    ("File too large", "the file size limit (ulimit -f, or the file system's) is reached; raise it"),
    ("Disk quota exceeded", "the disk quota is exhausted; free space or raise the quota"),
    ("Permission denied", "permission denied; check the permissions of the store's file and folder"),
    ("Read-only file system", "the file system is read-only; use a writable path"),
];

/// The remedy for a disk error quoted in `message`, if it quotes one.
fn disk_error(message: &str) -> Option<(&'static str, &'static str)> {
    DISK_ERRORS.iter().copied().find(|(quoted, _)| message.contains(quoted))
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
        backend: BACKEND.into(),
        what: format!(
            "database file {} is locked by {holder}{waited}; {remedy}, or point STRATA_DUCKDB_PATH at another file",
            path.display()
        ),
        source: Some(Box::new(error)),
        // The open already waited out its lock budget.
        retries_exhausted: !waited.is_empty(),
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
    if let Some((quoted, remedy)) = disk_error(&message) {
        // In any class: DuckDB reports a failed commit as a TransactionContext
        // error, which is not a write-write conflict when the disk is full.
        let what = format!("{what}: {remedy} ({quoted}); nothing of the failed write was kept");
        return StoreError::unavailable(BACKEND, what, Some(Box::new(error))).after_retries();
    }
    match class {
        _ if message.contains(LOCK_CONFLICT) => StoreError::unavailable(
            BACKEND,
            format!("{what}: the database file is locked by another process"),
            Some(Box::new(error)),
        ),
        "IO" | "Out of Memory" => StoreError::unavailable(BACKEND, what, Some(Box::new(error))),
        "Constraint" | "TransactionContext" => StoreError::Conflict { what: format!("{what}: {message}") },
        "Interrupt" => StoreError::timeout(BACKEND, what),
        _ => internal(what, error),
    }
}

/// An `Internal` error with `error` as its source.
pub(crate) fn internal(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Internal { backend: BACKEND.into(), what: what.to_string(), source: Some(Box::new(error)) }
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
pub(crate) fn holder_pid(message: &str) -> Option<u32> {
    let start = message.find("PID ")? + "PID ".len();
    let digits: String = message[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// DuckDB's description of the holder: `/usr/bin/strata (PID 1234) by user me`.
pub(crate) fn holder_description(message: &str) -> Option<String> {
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

    #[test]
    fn disk_errors_are_not_conflicts_and_say_what_to_fix() {
        for (message, remedy) in [
            (
                "TransactionContext Error: Failed to commit: could not write file \"/d/s.duckdb.wal\": No space left on device",
                "disk holding the store is full",
            ),
            ("IO Error: Could not write file \"/d/s.duckdb\": File too large", "file size limit"),
            ("TransactionContext Error: Failed to commit: Permission denied", "check the permissions"),
            ("IO Error: Cannot open file \"/ro/s.duckdb\": Read-only file system", "read-only"),
        ] {
            let error = map("writing bars", failure(message));
            assert_eq!(error.kind(), "unavailable", "{message}");
            assert!(error.retries_exhausted(), "retrying cannot help until the operator acts: {error:?}");
            assert!(error.to_string().contains(remedy), "{error} lacks {remedy:?}");
            assert!(!is_locked(&error), "not a lock: {error:?}");
        }
        let locked = map("opening", failure(LOCKED));
        assert!(is_locked(&locked));
        assert!(!is_locked(&StoreError::unavailable(BACKEND, "down", None)));
    }
}
