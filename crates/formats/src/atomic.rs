//! A file that appears complete or not at all: written under a temporary
//! name beside its destination (`FILE.partial`), renamed into place by
//! [`AtomicFile::commit`], and removed if it is dropped uncommitted (the
//! writer failed), so a reader never finds half a Parquet file or a CSV cut
//! in the middle of a line.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// See the [module docs](self).
#[derive(Debug)]
pub struct AtomicFile {
    writer: Option<BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates `PATH.partial` (truncating a leftover of an earlier failure).
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial)
            .map_err(|error| io::Error::new(error.kind(), format!("cannot create {}: {error}", partial.display())))?;
        Ok(AtomicFile { writer: Some(BufWriter::with_capacity(1 << 16, file)), partial, path })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs the data to disk and renames the file into place; on
    /// failure (the path is a directory, say) `PATH.partial` is removed.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(writer) = self.writer.take() else { return Ok(()) };
        let committed = sync_and_rename(writer, &self.partial, &self.path);
        if committed.is_err() {
            let _ = std::fs::remove_file(&self.partial);
        }
        committed
    }
}

/// Flushes and syncs `writer`, the file at `partial`, and renames it to `path`.
fn sync_and_rename(writer: BufWriter<File>, partial: &Path, path: &Path) -> io::Result<()> {
    let file = writer.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    std::fs::rename(partial, path).map_err(|error| {
        let (from, to) = (partial.display(), path.display());
        io::Error::new(error.kind(), format!("cannot rename {from} to {to}: {error}"))
    })
}

impl Write for AtomicFile {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().map_or(Ok(0), |writer| writer.write(buffer))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl Drop for AtomicFile {
    /// An uncommitted file is removed.
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_when_committed() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("bars.csv");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"symbol\n").unwrap();
        assert!(!path.exists(), "nothing at the destination before commit");
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"symbol\n");
        assert!(!directory.path().join("bars.csv.partial").exists());

        let mut failed = AtomicFile::create(directory.path().join("failed.csv")).unwrap();
        failed.write_all(b"half a li").unwrap();
        drop(failed);
        let names: Vec<_> = std::fs::read_dir(directory.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["bars.csv"], "a dropped file leaves nothing behind");
    }
}
