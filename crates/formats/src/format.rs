//! `BarFileFormat`: the file formats bars are read from and written to.

use std::fmt;
use std::path::Path;

/// A file format for bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarFileFormat {
    /// CSV with a header line: read ([`crate::read::csv`]) and written ([`crate::write::CsvWriter`]).
    Csv,
    /// Apache Parquet: read ([`crate::read::parquet`]) and written in the
    /// canonical schema with zstd ([`crate::write::ParquetWriter`]).
    Parquet,
    /// JSON Lines, one object per bar: written only ([`crate::write::JsonLinesWriter`]).
    JsonLines,
}

impl BarFileFormat {
    /// The format a file name implies, ignoring case: `.csv`; `.parquet` or
    /// `.pq`; `.json`, `.jsonl` or `.ndjson`. `None` for anything else.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(BarFileFormat::Csv),
            "parquet" | "pq" => Some(BarFileFormat::Parquet),
            "json" | "jsonl" | "ndjson" => Some(BarFileFormat::JsonLines),
            _ => None,
        }
    }

    /// Whether [`crate::read`] has a reader for the format (CSV and Parquet).
    pub fn is_readable(self) -> bool {
        matches!(self, BarFileFormat::Csv | BarFileFormat::Parquet)
    }

    /// Whether a [`crate::Location`] number in a file of this format is a
    /// line (CSV, JSON Lines) rather than a row (Parquet).
    pub fn counts_lines(self) -> bool {
        !matches!(self, BarFileFormat::Parquet)
    }
}

impl fmt::Display for BarFileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BarFileFormat::Csv => "CSV",
            BarFileFormat::Parquet => "Parquet",
            BarFileFormat::JsonLines => "JSON Lines",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_extensions() {
        let check = |name: &str, expected| assert_eq!(BarFileFormat::from_path(Path::new(name)), expected, "{name}");
        check("a.CSV", Some(BarFileFormat::Csv));
        check("dir.d/a.csv", Some(BarFileFormat::Csv));
        check("a.parquet", Some(BarFileFormat::Parquet));
        check("a.Pq", Some(BarFileFormat::Parquet));
        check("a.json", Some(BarFileFormat::JsonLines));
        check("a.jsonl", Some(BarFileFormat::JsonLines));
        check("a.ndjson", Some(BarFileFormat::JsonLines));
        check("a.txt", None);
        check("csv", None);
    }

    #[test]
    fn only_csv_and_parquet_are_readable() {
        assert!(BarFileFormat::Csv.is_readable());
        assert!(BarFileFormat::Parquet.is_readable());
        assert!(!BarFileFormat::JsonLines.is_readable());
    }
}
