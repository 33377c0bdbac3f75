//! The publish protocol as the dataset uses it: the durable-file primitives
//! of `strata_store_kit::fs` (staged files, fsync of files and directories,
//! no-replace publication by hard link) with this adapter's error mapping,
//! and batch markers.

use std::fs::File;
use std::io::{self, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use strata_core::Result;
use strata_store_kit::fs;
pub(crate) use strata_store_kit::fs::Published;

use crate::error::io_error;
use crate::layout::{self, BATCHES_DIR, META_DIR};

/// Flushes a directory's entries (a new or removed name) to stable storage
/// ([`fs::fsync_dir`]).
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    fs::fsync_dir(dir).map_err(|error| io_error("syncing directory", dir, error))
}

/// Creates `dir` (and missing parents below `root`), syncing each parent
/// whose entries changed so that a published file's directory survives a
/// crash ([`fs::ensure_dir`]).
pub(crate) fn ensure_dir(root: &Path, dir: &Path) -> Result<()> {
    fs::ensure_dir(root, dir).map_err(|error| io_error("creating directory", dir, error))
}

/// Writes a new staging file in `dir` (the staging directory,
/// `_strata/staging/`, outside the dataset) with `write`, flushes and fsyncs
/// it, and returns its path ([`fs::write_staged`]).
pub(crate) fn write_staged(
    dir: &Path,
    tag: &str,
    write: impl FnOnce(BufWriter<File>, &Path) -> Result<BufWriter<File>>,
) -> Result<PathBuf> {
    let path = dir.join(layout::staging_name(tag));
    fs::write_staged(&path, |out| write(out, &path), |operation, error| io_error(operation, &path, error))?;
    Ok(path)
}

/// Publishes `staged` under `target` with `link(2)`, which never replaces an
/// existing name ([`fs::publish_no_replace`]).
pub(crate) fn publish_no_replace(staged: &Path, target: &Path) -> Result<Published> {
    fs::publish_no_replace(staged, target).map_err(|error| io_error("publishing", target, error))
}

/// Whether two names are one inode (a vanished name is not).
pub(crate) fn same_file(a: &Path, b: &Path) -> Result<bool> {
    fs::same_file(a, b).map_err(|error| io_error("inspecting", a, error))
}

/// Removes a name, treating "already gone" as done.
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    fs::remove_if_present(path).map_err(|error| io_error("removing", path, error))
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
