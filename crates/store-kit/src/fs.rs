//! Durable files: write a file aside, fsync it, publish it under its final
//! name with `link(2)` (never replacing a name), and fsync the directories
//! whose entries changed, so a name that a caller acknowledged survives a
//! crash or a power cut.
//!
//! The protocol, for a file that must appear whole or not at all:
//!
//! 1. [`write_staged`] writes it under a staging name and fsyncs the file
//!    (its data and inode).
//! 2. [`publish_no_replace`] links it under the final name; `link(2)` fails
//!    when the name exists, so two writers can never overwrite each other.
//! 3. [`fsync_dir`] on the final name's directory makes the new name durable.
//!    Only then may the staging name go ([`remove_if_present`]): removing it
//!    first could leave, after a crash, an inode with no durable name.
//!
//! Every function returns the operating system's `io::Error` as it came
//! (its `kind` tells a full disk from a permission problem); the caller
//! names the operation and path in its own error type. A failed `fsync` is
//! returned and never retried here: after a failed write-back Linux may drop
//! the dirty pages and report the failure once, so a second `fsync` can
//! succeed without the data ("fsyncgate"). A caller treats the file as not
//! written.
//!
//! All calls block; async callers run them on `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// What a no-replace publish found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// `target` now names the staged file.
    Ours,
    /// `target` already named another file; nothing changed.
    Taken,
}

/// Flushes a directory's entries (a created, linked, renamed or removed name)
/// to stable storage by fsyncing the directory itself. On NFS the client
/// sends COMMIT; on a local filesystem it makes the link or rename durable
/// before the caller acknowledges it.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|handle| handle.sync_all())
}

/// Creates `dir` and its missing parents up to `root` (or up to the first
/// ancestor that exists), fsyncing each parent whose entries changed (the
/// parent of every directory created), so that a file later published in
/// `dir` does not vanish with its directory in a crash. A directory another
/// process creates at the same time is fine (its parent is fsynced all the
/// same, since that process may not have got there yet). Does nothing when
/// `dir` exists already. A failure on any of the directories is returned as
/// it came; the caller names `dir`.
pub fn ensure_dir(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut current = dir;
    while !current.is_dir() && current != root && !current.as_os_str().is_empty() {
        missing.push(current);
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    for path in missing.iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => {}
            // Another process created it first; a file in the way is an error.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(error) => return Err(error),
        }
        fsync_dir(parent_of(path))?;
    }
    Ok(())
}

/// Creates the staging file `path` (which must not exist: `create_new`),
/// lets `write` fill it through a 1 MiB buffer, flushes the buffer and
/// fsyncs the file (`sync_all`: data and inode), so that once published its
/// content is on stable storage. `path` should be in a staging directory on
/// the same filesystem as the final name (a hard link cannot cross
/// filesystems), under a name no other writer uses.
///
/// On any failure the staging file is removed (best effort) and the error
/// returned: `write`'s own error as it is, a file-system error through
/// `io_error(operation, error)`, with `operation` one of "creating staging
/// file", "writing" and "syncing". A failed sync is never retried (see the
/// module doc): the file is discarded.
pub fn write_staged<E>(
    path: &Path,
    write: impl FnOnce(BufWriter<File>) -> Result<BufWriter<File>, E>,
    io_error: impl Fn(&'static str, io::Error) -> E,
) -> Result<(), E> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| io_error("creating staging file", error))?;
    let outcome = write(BufWriter::with_capacity(1 << 20, file)).and_then(|mut out| {
        out.flush().map_err(|error| io_error("writing", error))?;
        let file = out.into_inner().map_err(|error| io_error("writing", error.into_error()))?;
        file.sync_all().map_err(|error| io_error("syncing", error))
    });
    if outcome.is_err() {
        let _ = fs::remove_file(path);
    }
    outcome
}

/// Publishes `staged` under `target` with `link(2)`, which never replaces
/// an existing name (atomic on local filesystems and on NFS, where LINK is
/// one server operation): `Taken` when `target` names another file. An
/// `EEXIST` whose target is the staged file itself (a retransmitted LINK
/// after an NFS server failover, without a reply cache) is success: the
/// inodes are compared. Fsyncs nothing: the caller fsyncs `target`'s
/// directory ([`fsync_dir`]) before it relies on the name, and removes the
/// staging name after that.
pub fn publish_no_replace(staged: &Path, target: &Path) -> io::Result<Published> {
    match fs::hard_link(staged, target) {
        Ok(()) => Ok(Published::Ours),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            if same_file(staged, target)? {
                Ok(Published::Ours)
            } else {
                Ok(Published::Taken)
            }
        }
        Err(error) => Err(error),
    }
}

/// Whether two names are one inode (same device and inode number); a name
/// that does not exist is nobody's. Fsyncs nothing.
pub fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    let identity = |path: &Path| match fs::metadata(path) {
        Ok(metadata) => Ok(Some((metadata.dev(), metadata.ino()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    };
    Ok(matches!((identity(a)?, identity(b)?), (Some(x), Some(y)) if x == y))
}

/// Removes a name, treating "already gone" as done. Fsyncs nothing: a
/// caller for whom the removal must survive a crash fsyncs the directory.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// The directory holding `path` (`.` for a bare relative name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn write_text(path: &Path, text: &str) -> io::Result<()> {
        write_staged(
            path,
            |mut out| {
                out.write_all(text.as_bytes())?;
                Ok(out)
            },
            |_, error| error,
        )
    }

    #[test]
    fn ensure_dir_creates_every_missing_level_and_tolerates_existing_ones() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a").join("b").join("c");
        ensure_dir(root.path(), &deep).unwrap();
        assert!(deep.is_dir());
        ensure_dir(root.path(), &deep).unwrap();
        ensure_dir(root.path(), &root.path().join("a").join("d")).unwrap();
        assert!(root.path().join("a").join("d").is_dir());
        let file = root.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(ensure_dir(root.path(), &file).is_err(), "a file is not a directory");
        assert!(ensure_dir(root.path(), &file.join("below")).is_err());
    }

    #[test]
    fn a_staged_file_publishes_once_and_never_replaces() {
        let root = tempfile::tempdir().unwrap();
        let (first, second, target) =
            (root.path().join("one.tmp"), root.path().join("two.tmp"), root.path().join("final"));
        write_text(&first, "first").unwrap();
        write_text(&second, "second").unwrap();
        assert!(write_text(&first, "again").is_err(), "a staging name is created new");
        assert_eq!(publish_no_replace(&first, &target).unwrap(), Published::Ours);
        assert_eq!(publish_no_replace(&first, &target).unwrap(), Published::Ours, "a repeated link is ours");
        assert_eq!(publish_no_replace(&second, &target).unwrap(), Published::Taken);
        fsync_dir(root.path()).unwrap();
        assert!(same_file(&first, &target).unwrap());
        assert!(!same_file(&second, &target).unwrap());
        remove_if_present(&first).unwrap();
        remove_if_present(&first).unwrap();
        assert!(!same_file(&first, &target).unwrap(), "a vanished name is nobody's");
        assert_eq!(fs::read_to_string(&target).unwrap(), "first");
    }

    #[test]
    fn a_failed_write_leaves_no_staging_file() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("torn.tmp");
        let outcome: Result<(), String> = write_staged(
            &path,
            |mut out| {
                out.write_all(b"half").map_err(|error| error.to_string())?;
                Err("the encoder failed".to_string())
            },
            |operation, error| format!("{operation}: {error}"),
        );
        assert_eq!(outcome.unwrap_err(), "the encoder failed");
        assert!(!path.exists());
        let missing = root.path().join("no-such-dir").join("x.tmp");
        let error = write_text(&missing, "x").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
