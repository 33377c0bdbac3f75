//! `FormatError`: why writing bars, or starting a read, failed.
//!
//! Problems with the content of an input (a bad row, a missing column, a file
//! that cannot be opened) are not errors: readers report them as
//! [`crate::Problem`]s with their location, so one pass finds all of them.

use crate::format::BarFileFormat;

/// Why a writer failed, or why a read could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The destination refused the bytes (disk full, closed pipe, ...).
    #[error("I/O failed")]
    Io(#[from] std::io::Error),
    /// The Parquet encoder failed, or the destination under it did.
    #[error("Parquet encoding failed")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// There is no reader for this format (see [`BarFileFormat::is_readable`]).
    #[error("{format} files cannot be read; the readable formats are CSV and Parquet")]
    Unreadable {
        /// The format asked for.
        format: BarFileFormat,
    },
}
