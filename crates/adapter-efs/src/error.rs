//! Maps `std::io`, Parquet and Arrow errors to `StoreError` kinds a caller can act on.

use std::io;
use std::path::Path;

use strata_core::StoreError;

use crate::BACKEND;

/// An I/O failure of `operation` on `path` as a `StoreError`:
/// - a missing root, permission problems, a full disk or quota, a stale NFS
///   handle, an interrupted or reset connection: `Unavailable`, with a remedy;
/// - a timed-out call (a `soft` mount gives up): `Timeout`;
/// - anything else: `Unavailable` too, since on a network filesystem most
///   failures are the server or the link, and a retry of an idempotent
///   operation is the right reaction.
pub(crate) fn io_error(operation: &str, path: &Path, error: io::Error) -> StoreError {
    let shown = path.display();
    let remedy = match error.kind() {
        io::ErrorKind::NotFound => "it does not exist: check that the share is mounted and the path is right",
        io::ErrorKind::PermissionDenied => {
            "permission denied: this user needs read and write access to the dataset root (check the mount's uid/gid and mode, and that it is not mounted read-only)"
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            "the filesystem is mounted read-only: remount it read-write to write (reading works as is)"
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "the filesystem is full or over quota: free space or raise the quota, then retry"
        }
        io::ErrorKind::TimedOut => return StoreError::timeout(BACKEND, format!("{operation} {shown}: {error}")),
        io::ErrorKind::StaleNetworkFileHandle => "stale NFS file handle: the file was replaced on the server; retry",
        _ => "the filesystem failed; retry, and check the mount if it persists",
    };
    StoreError::unavailable(BACKEND, format!("{operation} {shown}: {remedy}"), Some(Box::new(error)))
}

/// A file of the dataset that cannot be decoded: corruption or a bug.
pub(crate) fn corrupt(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::internal(BACKEND, format!("{}: {what}", path.display()))
}

/// A Parquet error while reading or writing `path`. An I/O error underneath
/// keeps its kind; anything else is corruption.
pub(crate) fn parquet_error(operation: &str, path: &Path, error: parquet::errors::ParquetError) -> StoreError {
    match error {
        parquet::errors::ParquetError::External(source) => match source.downcast::<io::Error>() {
            Ok(io) => io_error(operation, path, *io),
            Err(other) => corrupt(path, format!("{operation}: {other}")),
        },
        other => corrupt(path, format!("{operation}: {other}")),
    }
}

/// A formats-crate writer error while writing `path`.
pub(crate) fn format_error(path: &Path, error: strata_formats::FormatError) -> StoreError {
    match error {
        strata_formats::FormatError::Io(io) => io_error("writing", path, io),
        strata_formats::FormatError::Parquet(parquet) => parquet_error("writing", path, parquet),
        other => corrupt(path, format!("writing: {other}")),
    }
}

/// An Arrow compute error (a bug: the inputs are canonical batches).
pub(crate) fn arrow_error(what: &str, error: arrow::error::ArrowError) -> StoreError {
    StoreError::Internal { backend: BACKEND.into(), what: what.to_string(), source: Some(Box::new(error)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_map_to_actionable_errors() {
        let path = Path::new("/mnt/efs/strata");
        let missing = io_error("opening", path, io::Error::from(io::ErrorKind::NotFound));
        assert!(matches!(missing, StoreError::Unavailable { .. }), "{missing:?}");
        assert!(missing.to_string().contains("mounted"), "{missing}");
        let full = io_error("writing", path, io::Error::from(io::ErrorKind::StorageFull));
        assert!(full.to_string().contains("full"), "{full}");
        let denied = io_error("writing", path, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(denied.to_string().contains("permission"), "{denied}");
        assert!(matches!(io_error("x", path, io::Error::from(io::ErrorKind::TimedOut)), StoreError::Timeout { .. }));
    }
}
