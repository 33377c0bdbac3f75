//! Where a row or a problem is: [`Location`] (file index + line or row) and
//! [`Locator`], which prints one as `data/a.csv:17` or `data/b.parquet:row 17`.

use std::path::PathBuf;

use crate::format::BarFileFormat;

/// A place in the input: a line of a CSV file (the header is line 1) or a
/// row of a Parquet file (the first row is row 1). `number == 0` means the
/// file as a whole. `file` is the index the reader was given in
/// [`crate::ReadOptions::file`], usually the file's position in a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file's index.
    pub file: u32,
    /// The line (CSV) or row (Parquet) from 1; 0 for the whole file.
    pub number: u64,
}

impl Location {
    /// Packs into one `u64` for the duplicate-key index: the file in the top
    /// 16 bits, the number in the low 48.
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.file) << 48) | (self.number & ((1 << 48) - 1))
    }

    /// The inverse of [`Location::pack`].
    pub(crate) fn unpack(packed: u64) -> Self {
        Location { file: (packed >> 48) as u32, number: packed & ((1 << 48) - 1) }
    }
}

/// The files of one read, by index, to turn a [`Location`] into text.
#[derive(Debug, Clone, Default)]
pub struct Locator {
    files: Vec<(PathBuf, BarFileFormat)>,
}

impl Locator {
    /// A locator for files numbered 0, 1, ... in the given order.
    pub fn new(files: impl IntoIterator<Item = (PathBuf, BarFileFormat)>) -> Self {
        Locator { files: files.into_iter().collect() }
    }

    /// `data/a.csv:17` (a line), `data/b.parquet:row 17` (a row), or
    /// `data/a.csv` (the whole file). A file index the locator does not
    /// know is printed as `file #N`.
    pub fn describe(&self, location: Location) -> String {
        let Some((path, format)) = self.files.get(location.file as usize) else {
            return match location.number {
                0 => format!("file #{}", location.file),
                number => format!("file #{}:{number}", location.file),
            };
        };
        match location.number {
            0 => path.display().to_string(),
            number if format.counts_lines() => format!("{}:{number}", path.display()),
            number => format!("{}:row {number}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_pack_losslessly() {
        let location = Location { file: 7, number: 123_456_789_012 };
        assert_eq!(Location::unpack(location.pack()), location);
    }

    #[test]
    fn locations_read_as_lines_or_rows() {
        let locator = Locator::new([
            (PathBuf::from("data/a.csv"), BarFileFormat::Csv),
            (PathBuf::from("data/b.parquet"), BarFileFormat::Parquet),
        ]);
        assert_eq!(locator.describe(Location { file: 0, number: 17 }), "data/a.csv:17");
        assert_eq!(locator.describe(Location { file: 1, number: 17 }), "data/b.parquet:row 17");
        assert_eq!(locator.describe(Location { file: 1, number: 0 }), "data/b.parquet");
        assert_eq!(locator.describe(Location { file: 2, number: 3 }), "file #2:3");
    }
}
