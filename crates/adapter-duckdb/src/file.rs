//! What is at a DuckDB path before DuckDB sees it: nothing, a DuckDB
//! database (whose header has the bytes `DUCK` at offset 8), or something
//! else that must not be opened; and whether this user may write it.
//!
//! DuckDB itself opens a `.csv`, `.parquet` or `.json` file as a throwaway
//! in-memory database with a view over the file, so writes to it vanish, and
//! creating a new file deletes a leftover write-ahead log (`FILE.wal`). Both
//! are refused here with `InvalidInput` before DuckDB is called.
//!
//! Never run these checks on a file this process already has open in DuckDB:
//! DuckDB locks the file with POSIX record locks (`fcntl`), which the kernel
//! drops when the process closes *any* descriptor of that file, including
//! the short-lived ones opened here.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use strata_core::{Result, StoreError};

/// DuckDB's magic bytes, at [`MAGIC_OFFSET`] of every database file
/// (`MainHeader::MAGIC_BYTES` after the 8-byte checksum of the first block
/// in DuckDB's `storage_info.hpp`).
pub(crate) const MAGIC: &[u8; 4] = b"DUCK";
/// Where [`MAGIC`] starts in the file.
pub(crate) const MAGIC_OFFSET: usize = 8;

/// Bytes of the header read to recognise a file: enough for a CSV header line.
const HEAD_BYTES: u64 = 4096;

/// Suffixes DuckDB gives the write-ahead logs beside a database file.
const WAL_SUFFIXES: [&str; 3] = [".wal", ".wal.checkpoint", ".wal.recovery"];

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing (and no write-ahead log either).
    Missing,
    /// A DuckDB database.
    Database {
        /// Whether this user may write it (and its write-ahead log, if any).
        writable: bool,
    },
}

/// Looks at `path` without changing anything: `Missing`, a DuckDB
/// `Database`, or `InvalidInput` naming what else is there.
pub(crate) fn inspect(path: &Path) -> Result<Found> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == ErrorKind::NotFound => return missing(path),
        Err(error) => return Err(StoreError::invalid(format!("cannot look at {}: {error}", path.display()))),
    };
    if metadata.is_dir() {
        return Err(StoreError::invalid(format!(
            "{} is a directory, not a DuckDB database; name a file in it, such as {}",
            path.display(),
            path.join("strata.duckdb").display()
        )));
    }
    if !metadata.is_file() {
        return Err(StoreError::invalid(format!("{} is not a regular file, so not a DuckDB database", path.display())));
    }
    if metadata.len() == 0 {
        return Err(StoreError::invalid(format!(
            "{} is an empty file, not a DuckDB database (DuckDB refuses it too); remove it, and a command \
             that writes creates a new store there",
            path.display()
        )));
    }
    let head = read_head(path)?;
    if !is_duckdb_header(&head) {
        return Err(StoreError::invalid(format!(
            "{} is not a DuckDB database: it looks like {}; refusing to open it, the file is unchanged",
            path.display(),
            looks_like(path, &head)
        )));
    }
    let wal = wal_path(path);
    let wal_writable = match fs::metadata(&wal) {
        Ok(wal_metadata) => writable(&wal, &wal_metadata),
        Err(_) => true,
    };
    Ok(Found::Database { writable: writable(path, &metadata) && wal_writable })
}

/// Whether `head` (the first bytes of a file) is a DuckDB database header.
pub(crate) fn is_duckdb_header(head: &[u8]) -> bool {
    head.get(MAGIC_OFFSET..MAGIC_OFFSET + MAGIC.len()) == Some(MAGIC.as_slice())
}

/// Refuses to create `path` in a directory whose permission bits let nobody
/// write it (DuckDB would fail later, or at the first write, with less to say).
pub(crate) fn check_can_create(path: &Path) -> Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    match fs::metadata(directory) {
        Ok(metadata) if metadata.permissions().readonly() => Err(StoreError::invalid(format!(
            "cannot create the DuckDB store {}: its directory {} is read-only",
            path.display(),
            directory.display()
        ))),
        _ => Ok(()),
    }
}

/// The error for opening a file this user cannot write in a writing mode.
pub(crate) fn read_only_error(path: &Path) -> StoreError {
    // Appending nothing changes nothing; its error tells a read-only mount from file permissions.
    let mount_is_read_only = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .is_err_and(|error| error.kind() == std::io::ErrorKind::ReadOnlyFilesystem);
    if mount_is_read_only {
        return StoreError::invalid(format!(
            "the DuckDB store {} is on a filesystem mounted read-only, and this opens it for writing; remount \
             it read-write or use a store on a writable disk (reading works as is)",
            path.display()
        ));
    }
    StoreError::invalid(format!(
        "the DuckDB store {} is read-only for this user, and this opens it for writing; make it writable \
         (chmod u+w {}, and its .wal if there is one) or use a store you can write (reading works as is)",
        path.display(),
        path.display()
    ))
}

/// `FILE.wal`, DuckDB's write-ahead log of `FILE`.
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".wal");
    PathBuf::from(name)
}

/// Whether this user may write the file: not when no write permission bit
/// is set at all (`chmod a-w`; this also holds for root, who could write
/// it anyway), nor when opening it for writing, without creating or
/// truncating anything, is refused (permissions, a read-only file system).
fn writable(path: &Path, metadata: &Metadata) -> bool {
    if metadata.permissions().readonly() {
        return false;
    }
    match OpenOptions::new().write(true).open(path) {
        Ok(_) => true,
        Err(error) => !matches!(error.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem),
    }
}

/// `Missing`, unless a dangling symbolic link or an orphaned write-ahead log
/// is there (DuckDB would write through the link, or delete the log).
fn missing(path: &Path) -> Result<Found> {
    if let Ok(target) = fs::read_link(path) {
        return Err(StoreError::invalid(format!(
            "{} is a symbolic link to {}, which does not exist; fix or remove the link",
            path.display(),
            target.display()
        )));
    }
    let wal = wal_path(path);
    if fs::symlink_metadata(&wal).is_ok() {
        return Err(StoreError::invalid(format!(
            "the DuckDB file {} does not exist but its write-ahead log {} does: the database was moved or \
             deleted without its log, and opening would delete the log; restore the database file, or move \
             the log away to start a new store",
            path.display(),
            wal.display()
        )));
    }
    Ok(Found::Missing)
}

/// The first bytes of the file.
fn read_head(path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    File::open(path)
        .and_then(|file| file.take(HEAD_BYTES).read_to_end(&mut head))
        .map_err(|error| StoreError::invalid(format!("cannot read {}: {error}", path.display())))?;
    Ok(head)
}

/// What a file that is not a DuckDB database looks like, for the message:
/// "a CSV file", "a Parquet file", ...
fn looks_like(path: &Path, head: &[u8]) -> String {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(suffix) = WAL_SUFFIXES.iter().find(|suffix| name.ends_with(*suffix)) {
        let database = path.to_string_lossy();
        let database = database.strip_suffix(suffix).unwrap_or(&database);
        return format!("a DuckDB write-ahead log (the database it belongs to is {database})");
    }
    let kind = match head {
        [b'P', b'A', b'R', b'1', ..] => "a Parquet file",
        _ if head.starts_with(b"SQLite format 3\0") => "an SQLite database",
        _ if head.starts_with(b"ARROW1") => "an Arrow IPC file",
        [0x1f, 0x8b, ..] => "a gzip-compressed file",
        [b'P', b'K', 3, 4, ..] => "a zip archive",
        _ => return text_kind(head).to_string(),
    };
    kind.to_string()
}

/// "a CSV file", "a JSON file", ... for text; "a file in an unknown format" otherwise.
fn text_kind(head: &[u8]) -> &'static str {
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // A multi-byte character cut at the end of the head is still text.
        Err(error) if error.error_len().is_none() => std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or(""),
        Err(_) => return UNKNOWN,
    };
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return UNKNOWN;
    }
    let first_line = text.lines().next().unwrap_or("");
    match text.trim_start().chars().next() {
        Some('{' | '[') => "a JSON file",
        _ if first_line.contains(',') => "a CSV file",
        _ if first_line.contains('\t') => "a tab-separated text file",
        _ => "a text file",
    }
}

/// The description of bytes that are neither a known format nor text.
const UNKNOWN: &str = "a file in an unknown format (DuckDB databases have the bytes DUCK at offset 8)";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_from_their_first_bytes() {
        let check = |name: &str, head: &[u8], expected: &str| {
            assert_eq!(looks_like(Path::new(name), head), expected, "{name}");
        };
        check("s.csv", b"symbol,date,open,high,low,close,volume\nAAPL,2000-01-03,1,2,0.5,1,0\n", "a CSV file");
        check("s.parquet", b"PAR1\x15\x04\x15\x80", "a Parquet file");
        check("s.db", b"SQLite format 3\0\x10\0", "an SQLite database");
        check("s.arrow", b"ARROW1\0\0", "an Arrow IPC file");
        check("s.csv.gz", &[0x1f, 0x8b, 8, 0], "a gzip-compressed file");
        check("s.zip", b"PK\x03\x04rest", "a zip archive");
        check("s.json", b"  {\"symbol\": \"AAPL\"}", "a JSON file");
        check("s.tsv", b"symbol\tdate\n", "a tab-separated text file");
        check("notes", "na\u{ef}ve notes\n".as_bytes(), "a text file");
        check("cut", &"\u{e9}t\u{e9}".as_bytes()[..4], "a text file");
        check("random", &[0x00, 0x9f, 0x92, 0x96, 0xff, 0x01, 0x02, 0x03], UNKNOWN);
        check(
            "/data/strata.duckdb.wal",
            b"\x01\x00\x00\x00",
            "a DuckDB write-ahead log (the database it belongs to is /data/strata.duckdb)",
        );
    }

    #[test]
    fn the_header_check_reads_offset_8() {
        assert!(is_duckdb_header(b"\x01\x02\x03\x04\x05\x06\x07\x08DUCK\x40\0\0\0"));
        assert!(is_duckdb_header(b"\0\0\0\0\0\0\0\0DUCK"));
        assert!(!is_duckdb_header(b"DUCK\0\0\0\0\0\0\0\0"));
        assert!(!is_duckdb_header(b"\0\0\0\0\0\0\0\0DUC"));
        assert!(!is_duckdb_header(b""));
    }
}
