//! `strata doctor` on a DuckDB file: `duckdb.writable` (the file, or the
//! folder that will hold it and always holds its write-ahead log, writable
//! by this user) and `duckdb.unlocked` (no other process holds the file's
//! lock, tried the way a writer opens it). Nothing is created or migrated.
//!
//! Run it only in a process that does not have the file open in DuckDB:
//! DuckDB's locks are POSIX record locks, which the kernel drops when a
//! process closes any descriptor of the file (see `file.rs`).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use strata_core::doctor::{self, Check};

use crate::error::{holder_description, holder_pid, is_lock_conflict};
use crate::file::{self, Found};
use crate::store::{open_connection, run_blocking};

/// The DuckDB checks for the store at `path`, in catalog order.
pub async fn diagnose(path: &Path) -> Vec<Check> {
    let path = path.to_path_buf();
    let shown = path.display().to_string();
    run_blocking("checking the DuckDB file", move || Ok(diagnose_blocking(&path))).await.unwrap_or_else(|error| {
        vec![
            Check::fail(&doctor::DUCKDB_WRITABLE, format!("cannot check {shown}: {error}"), "run strata doctor again"),
            Check::skip(&doctor::DUCKDB_UNLOCKED, "the file could not be checked"),
        ]
    })
}

fn diagnose_blocking(path: &Path) -> Vec<Check> {
    if path.as_os_str() == crate::IN_MEMORY {
        let reason = "the store is in memory (:memory:), not in a file";
        return vec![Check::skip(&doctor::DUCKDB_WRITABLE, reason), Check::skip(&doctor::DUCKDB_UNLOCKED, reason)];
    }
    let found = file::inspect(path);
    let writable = writable_check(path, &found);
    let unlocked = match found {
        Ok(Found::Database { writable: file_writable }) => unlocked_check(path, file_writable),
        Ok(Found::Missing) => Check::skip(&doctor::DUCKDB_UNLOCKED, format!("no store at {} yet", path.display())),
        Err(_) => Check::skip(&doctor::DUCKDB_UNLOCKED, format!("{} is not a DuckDB database", path.display())),
    };
    vec![writable, unlocked]
}

/// The folder of `path` (`.` for a bare name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether this user may create files in `folder`: its permission bits allow
/// writing (checked first, so that root, who may write anyway, is told about
/// a folder made read-only on purpose) and a probe file can be created and removed.
fn folder_writable(folder: &Path) -> Result<(), String> {
    let metadata = fs::metadata(folder).map_err(|error| format!("cannot look at {}: {error}", folder.display()))?;
    if metadata.permissions().readonly() {
        return Err(format!("{} is read-only (no write permission bit)", folder.display()));
    }
    let probe = folder.join(format!(".strata-doctor-{}.tmp", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|error| format!("cannot create a file in {}: {error}", folder.display()))?;
    fs::remove_file(&probe).map_err(|error| format!("cannot remove {}: {error}", probe.display()))
}

/// The nearest folder of `path` that exists (where a writer would create the rest).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut folder = folder_of(path);
    while !folder.is_dir() {
        match folder.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => folder = parent.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    folder
}

fn writable_check(path: &Path, found: &strata_core::Result<Found>) -> Check {
    let kind = &doctor::DUCKDB_WRITABLE;
    let shown = path.display();
    match found {
        Err(error) => Check::fail(
            kind,
            error.to_string(),
            "point --duckdb-path (STRATA_DUCKDB_PATH) at the store's DuckDB file, such as ./strata.duckdb",
        ),
        Ok(Found::Missing) => {
            let folder = existing_ancestor(path);
            match folder_writable(&folder) {
                Ok(()) => Check::pass(
                    kind,
                    format!(
                        "no store at {shown} yet; the first command that writes creates it ({} is writable)",
                        folder.display()
                    ),
                ),
                Err(why) => Check::fail(
                    kind,
                    format!("no store at {shown}, and none can be created there: {why}"),
                    format!("make {} writable (chmod u+w) or choose another --duckdb-path", folder.display()),
                ),
            }
            .with_fact("exists", "false")
        }
        Ok(Found::Database { writable: false }) => Check::fail(
            kind,
            format!("{shown} is read-only for this user: commands that write fail (reading works)"),
            format!("chmod u+w {shown} (and its .wal if there is one), or use a store you can write"),
        )
        .with_fact("exists", "true"),
        Ok(Found::Database { writable: true }) => {
            let folder = folder_of(path);
            match folder_writable(&folder) {
                Ok(()) => Check::pass(kind, format!("{shown} and its folder are writable")),
                Err(why) => Check::fail(
                    kind,
                    format!("{shown} is writable, but its folder is not ({why}): DuckDB cannot create its write-ahead log there"),
                    format!("make {} writable (chmod u+w), or move the store to a writable folder", folder.display()),
                ),
            }
            .with_fact("exists", "true")
        }
    }
}

/// Opens the file as a writer would (read-only when this user cannot
/// write it) and closes it at once: another process's lock is named with
/// its PID.
fn unlocked_check(path: &Path, file_writable: bool) -> Check {
    let kind = &doctor::DUCKDB_UNLOCKED;
    let shown = path.display();
    match open_connection(path, Some(1), None, !file_writable) {
        Ok(connection) => {
            drop(connection);
            Check::pass(kind, format!("no other process holds {shown}"))
        }
        Err(error) if is_lock_conflict(&error) => {
            let message = error.to_string();
            let holder = holder_description(&message).unwrap_or_else(|| "another process".to_string());
            let pid = holder_pid(&message);
            let stop = match pid {
                Some(pid) => format!("stop process {pid} (or wait for it to finish)"),
                None => "close the other program using it".to_string(),
            };
            let check = Check::fail(
                kind,
                format!("{shown} is locked by {holder}: strata cannot open it while that process runs"),
                format!("{stop}, or point STRATA_DUCKDB_PATH at another file"),
            )
            .with_fact("cause", "locked");
            match pid {
                Some(pid) => check.with_fact("holder_pid", pid),
                None => check,
            }
        }
        Err(error) => Check::fail(
            kind,
            format!("DuckDB cannot open {shown}: {error}"),
            "check the file (a damaged or newer-format file) and the disk under it",
        )
        .with_fact("cause", "open"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_core::doctor::Status;

    #[test]
    fn a_missing_store_in_a_writable_folder_passes_and_nothing_is_created() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("deeper/strata.duckdb");
        let checks = diagnose_blocking(&path);
        assert_eq!(checks[0].status, Status::Pass, "{checks:?}");
        assert_eq!(checks[1].status, Status::Skip, "{checks:?}");
        assert!(!directory.path().join("deeper").exists(), "the doctor creates nothing");
        assert_eq!(fs::read_dir(directory.path()).unwrap().count(), 0, "the probe file is gone");
    }

    #[test]
    fn a_file_that_is_not_a_database_fails_writable() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("bars.csv");
        fs::write(&path, "symbol,timestamp\n").unwrap();
        let checks = diagnose_blocking(&path);
        assert_eq!((checks[0].id, checks[0].status), ("duckdb.writable", Status::Fail), "{checks:?}");
        assert!(checks[0].finding.contains("not a DuckDB database"), "{}", checks[0].finding);
    }
}
