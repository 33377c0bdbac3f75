//! Output: one [`BarSink`] for `query` and `generate` over the table for
//! people and the `strata_formats` writers (CSV, JSON Lines, Parquet), files
//! written atomically, and number formatting for people.
//!
//! CSV and JSON print floats with Rust's shortest round-trip `Display`
//! (`877000000`, `0.08388999999999999`) and timestamps as RFC 3339 UTC, so
//! what `query --format csv` prints ingests back bit for bit.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use strata_core::BarBatch;
use strata_formats::write::{BarFileWriter, TableWriter};
use strata_formats::{AtomicFile, BarFileFormat, FormatError};

/// How bars are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// An aligned table for people (buffers the whole result).
    Table,
    /// CSV with a header, readable by `strata ingest`.
    Csv,
    /// JSON Lines: one object per bar.
    Json,
    /// Apache Parquet in the canonical bar schema (zstd).
    Parquet,
}

impl OutputFormat {
    /// The file format written, `None` for the table.
    pub(crate) fn file_format(self) -> Option<BarFileFormat> {
        match self {
            OutputFormat::Table => None,
            OutputFormat::Csv => Some(BarFileFormat::Csv),
            OutputFormat::Json => Some(BarFileFormat::JsonLines),
            OutputFormat::Parquet => Some(BarFileFormat::Parquet),
        }
    }
}

impl From<BarFileFormat> for OutputFormat {
    fn from(format: BarFileFormat) -> Self {
        match format {
            BarFileFormat::Csv => OutputFormat::Csv,
            BarFileFormat::JsonLines => OutputFormat::Json,
            BarFileFormat::Parquet => OutputFormat::Parquet,
        }
    }
}

/// Something that receives bars batch by batch.
pub(crate) trait BarSink {
    /// Writes every row of `batch`.
    fn write_batch(&mut self, batch: &BarBatch) -> Result<()>;
    /// Flushes and closes; a file destination is renamed into place only here.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Where output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// Standard output.
    Stdout,
    /// A file, written to `FILE.partial` and renamed when complete.
    File(PathBuf),
}

impl Destination {
    /// `--output` if given, else stdout.
    pub(crate) fn from_option(output: Option<&Path>) -> Self {
        output.map_or(Destination::Stdout, |path| Destination::File(path.to_path_buf()))
    }
}

/// A byte destination: stdout, or an [`AtomicFile`] that appears on `commit`.
#[derive(Debug)]
pub(crate) enum OutputTarget {
    /// Standard output, buffered.
    Stdout(BufWriter<io::Stdout>),
    /// A file, renamed into place on `commit`.
    File(AtomicFile),
}

impl OutputTarget {
    /// Opens `destination` for writing.
    pub(crate) fn open(destination: &Destination) -> Result<Self> {
        Ok(match destination {
            Destination::Stdout => OutputTarget::Stdout(BufWriter::with_capacity(1 << 16, io::stdout())),
            Destination::File(path) => OutputTarget::File(AtomicFile::create(path)?),
        })
    }

    /// Flushes and, for a file, renames it into place.
    pub(crate) fn commit(self) -> Result<()> {
        match self {
            OutputTarget::Stdout(mut stdout) => stdout.flush()?,
            OutputTarget::File(file) => file.commit()?,
        }
        Ok(())
    }
}

impl Write for OutputTarget {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            OutputTarget::Stdout(stdout) => stdout.write(buf),
            OutputTarget::File(file) => file.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            OutputTarget::Stdout(stdout) => stdout.flush(),
            OutputTarget::File(file) => file.flush(),
        }
    }
}

/// Whether stdout is a terminal (binary output is refused there).
pub(crate) fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

/// A sink for `format` writing to `destination`.
pub(crate) fn open_sink(format: OutputFormat, destination: &Destination) -> Result<Box<dyn BarSink>> {
    match format.file_format() {
        Some(format) => open_file_sink(format, destination),
        None => Ok(Box::new(TableWriter::new(OutputTarget::open(destination)?))),
    }
}

/// A sink writing `format` with its `strata_formats` writer to `destination`.
pub(crate) fn open_file_sink(format: BarFileFormat, destination: &Destination) -> Result<Box<dyn BarSink>> {
    let target = OutputTarget::open(destination)?;
    Ok(Box::new(BarFileWriter::new(format, target).map_err(writer_error)?))
}

impl BarSink for BarFileWriter<OutputTarget> {
    fn write_batch(&mut self, batch: &BarBatch) -> Result<()> {
        self.write(batch).map_err(writer_error)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        BarFileWriter::finish(*self).map_err(writer_error)?.commit()
    }
}

/// A writer's error as the cause itself (the `io::Error` or Parquet error),
/// so messages read as they always have and a closed stdout is recognised.
fn writer_error(error: FormatError) -> anyhow::Error {
    match error {
        FormatError::Io(error) => error.into(),
        FormatError::Parquet(error) => error.into(),
        other => other.into(),
    }
}

impl BarSink for TableWriter<OutputTarget> {
    fn write_batch(&mut self, batch: &BarBatch) -> Result<()> {
        self.write(batch);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        if self.rows() == 0 {
            eprintln!("no bars matched");
        }
        TableWriter::finish(*self).map_err(writer_error)?.commit()
    }
}

pub(crate) use strata_core::display::group_thousands;

/// `in 0.41 s (41,912 rows/s)`.
pub(crate) fn elapsed_and_rate(rows: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { (rows as f64 / seconds).round() as u64 } else { rows };
    format!("in {seconds:.2} s ({} rows/s)", group_thousands(rate))
}

/// `1 file`, `2 files`.
pub(crate) fn plural(count: usize, singular: &str, plural: &str) -> String {
    format!("{} {}", group_thousands(count as u64), if count == 1 { singular } else { plural })
}

#[cfg(test)]
#[path = "../unit-tests/output.rs"]
mod tests;
