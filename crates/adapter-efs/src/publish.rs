//! The publish primitives of the protocol: staged files, fsync of files and
//! directories, no-replace publication by hard link, and batch markers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use strata_core::Result;

use crate::error::io_error;
use crate::layout::{self, BATCHES_DIR, META_DIR};

/// Flushes a directory's entries (a new or removed name) to stable storage.
/// On NFS the client sends COMMIT; on a local filesystem it orders the rename
/// or link before the acknowledgement.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|handle| handle.sync_all()).map_err(|error| io_error("syncing directory", dir, error))
}

/// Creates `dir` (and missing parents below `root`), syncing each parent
/// whose entries changed so that a published file's directory survives a crash.
pub(crate) fn ensure_dir(root: &Path, dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut current = dir;
    while !current.is_dir() && current != root {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    for path in missing.iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => {}
            // Another writer created it first: fine.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error("creating directory", path, error)),
        }
        if let Some(parent) = path.parent() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// Writes a new staging file in `dir` (the staging directory,
/// `_strata/staging/`, outside the dataset) with `write`, flushes and fsyncs
/// it, and returns its path.
pub(crate) fn write_staged(
    dir: &Path,
    tag: &str,
    write: impl FnOnce(BufWriter<File>, &Path) -> Result<BufWriter<File>>,
) -> Result<PathBuf> {
    let path = dir.join(layout::staging_name(tag));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|error| io_error("creating staging file", &path, error))?;
    let outcome = write(BufWriter::with_capacity(1 << 20, file), &path).and_then(|mut out| {
        out.flush().map_err(|error| io_error("writing", &path, error))?;
        let file = out.into_inner().map_err(|error| io_error("writing", &path, error.into_error()))?;
        file.sync_all().map_err(|error| io_error("syncing", &path, error))
    });
    if let Err(error) = outcome {
        let _ = fs::remove_file(&path);
        return Err(error);
    }
    Ok(path)
}

/// What a no-replace publish found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// `target` now names the staged file.
    Ours,
    /// `target` already named another file; nothing changed.
    Taken,
}

/// Publishes `staged` under `target` with `link(2)`, which never replaces an
/// existing name (atomic on local filesystems and on NFS, where LINK is one
/// server operation). An `EEXIST` whose target is the staged file itself (a
/// retransmitted LINK after a server failover, without a reply cache) is
/// success: the inode is compared.
pub(crate) fn publish_no_replace(staged: &Path, target: &Path) -> Result<Published> {
    match fs::hard_link(staged, target) {
        Ok(()) => Ok(Published::Ours),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            if same_file(staged, target)? {
                Ok(Published::Ours)
            } else {
                Ok(Published::Taken)
            }
        }
        Err(error) => Err(io_error("publishing", target, error)),
    }
}

/// Whether two names are one inode (a vanished name is not).
pub(crate) fn same_file(a: &Path, b: &Path) -> Result<bool> {
    let metadata = |path: &Path| match fs::metadata(path) {
        Ok(metadata) => Ok(Some((metadata.dev(), metadata.ino()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("inspecting", path, error)),
    };
    Ok(matches!((metadata(a)?, metadata(b)?), (Some(x), Some(y)) if x == y))
}

/// Removes a name, treating "already gone" as done.
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("removing", path, error)),
    }
}

/// The fate of a multi-partition batch, decided once by its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchState {
    /// Every file of the batch counts.
    Committed,
    /// No file of the batch counts; its files are garbage.
    Aborted,
    /// No marker yet: a writer is still publishing, or crashed.
    Pending,
}

const COMMITTED: &str = "committed\n";
const ABORTED: &str = "aborted\n";

/// The directory of batch markers.
pub(crate) fn batches_dir(root: &Path) -> PathBuf {
    root.join(META_DIR).join(BATCHES_DIR)
}

/// Reads the marker of `batch`: `Pending` when there is none.
pub(crate) fn read_marker(root: &Path, batch: &str) -> Result<BatchState> {
    let path = batches_dir(root).join(batch);
    let mut text = String::new();
    match File::open(&path).and_then(|mut file| file.read_to_string(&mut text)) {
        Ok(_) if text == COMMITTED => Ok(BatchState::Committed),
        Ok(_) if text == ABORTED => Ok(BatchState::Aborted),
        Ok(_) => Err(crate::error::corrupt(&path, format!("unexpected batch marker {text:?}"))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(BatchState::Pending),
        Err(error) => Err(io_error("reading batch marker", &path, error)),
    }
}

/// Decides `batch` as `wanted` (`Committed` by its writer, `Aborted` by a
/// compactor or a delete) unless it is decided already; returns the decision
/// that stands. Exactly one of a commit and an abort wins: both publish the
/// same name with no-replace `link`.
pub(crate) fn decide_batch(root: &Path, batch: &str, wanted: BatchState) -> Result<BatchState> {
    let dir = batches_dir(root);
    let staging = layout::staging_dir(root);
    let text = match wanted {
        BatchState::Committed => COMMITTED,
        BatchState::Aborted => ABORTED,
        BatchState::Pending => return read_marker(root, batch),
    };
    ensure_dir(root, &staging)?;
    let staged = write_staged(&staging, "marker", |mut out, path| {
        out.write_all(text.as_bytes()).map_err(|error| io_error("writing", path, error))?;
        Ok(out)
    })?;
    let target = dir.join(batch);
    let published = publish_no_replace(&staged, &target);
    remove_if_present(&staged)?;
    match published? {
        Published::Ours => {
            fsync_dir(&dir)?;
            Ok(wanted)
        }
        Published::Taken => read_marker(root, batch),
    }
}
