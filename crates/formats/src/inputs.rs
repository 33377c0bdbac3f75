//! The inputs of one load: files and Hive-dataset directories resolved into
//! numbered [`InputFile`]s, each read as chunks, and a [`Tally`] of what a
//! validation pass found (counts, the first problems located as text, notes).
//!
//! The numbering is the file index of every [`crate::Location`], so a
//! problem names its file: `data/a.csv:17`, `data/b.parquet:row 17`.

use std::path::{Path, PathBuf};

use crate::read::hive::{self, DatasetFile};
use crate::read::{self, Chunk, FileChunks, ReadOptions};
use crate::{BarFileFormat, CrossFileKeys, FormatError, Locator};

/// The most files one load reads: a location keeps 16 bits for the file.
pub const MAX_FILES: usize = 1 << 16;

/// One input file and how to read it.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Position in the list of files (arguments, datasets expanded), used in locations.
    pub index: u32,
    /// The file.
    pub path: PathBuf,
    /// How it is read.
    pub format: BarFileFormat,
    /// A file of a Hive dataset: its symbol (from its path) and the dataset's directory.
    pub dataset: Option<(DatasetFile, PathBuf)>,
}

/// Why the inputs of a load cannot be resolved; nothing was read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// No format was forced and the extension names no readable one.
    #[error(
        "cannot tell the format of {} from its extension; name it .csv or .parquet, or pass --format csv|parquet",
        .0.display()
    )]
    UnknownFormat(PathBuf),
    /// A directory with a format other than Parquet forced.
    #[error("{} is a directory, read as a Parquet dataset; drop --format or pass --format parquet", .0.display())]
    DatasetNotParquet(PathBuf),
    /// A directory with a fixed symbol: a dataset's symbols come from its paths.
    #[error(
        "--symbol does not apply to the dataset {}: each file's symbol comes from its symbol=... directory; \
         drop --symbol",
        .0.display()
    )]
    SymbolForDataset(PathBuf),
    /// A directory without any `symbol=.../*.parquet` file.
    #[error(
        "{} holds no *.parquet file inside a symbol=... directory; a directory is read as a Hive dataset \
         partitioned by symbol (DIR/symbol=AAPL/....parquet, as pandas' to_parquet(DIR, \
         partition_cols=[\"symbol\"]) writes it); pass CSV or Parquet files otherwise",
        .0.display()
    )]
    EmptyDataset(PathBuf),
    /// More than [`MAX_FILES`] files.
    #[error(
        "{} files to read; one ingest reads at most {}: split the load",
        strata_core::display::group_thousands(*.0 as u64),
        strata_core::display::group_thousands(MAX_FILES as u64)
    )]
    TooManyFiles(usize),
    /// A directory that cannot be listed.
    #[error("cannot list {}", .0.display())]
    List(PathBuf, #[source] std::io::Error),
}

impl InputError {
    /// Whether the error is in the arguments (exit code 2) rather than the filesystem.
    pub fn is_usage(&self) -> bool {
        !matches!(self, InputError::List(..))
    }
}

/// Picks each file's format from `forced` or its extension, and expands each
/// directory (a Hive dataset partitioned by symbol) into its files, numbered
/// in order. `fixed_symbol` says the caller gives every file one symbol,
/// which a dataset refuses.
pub fn resolve(
    paths: &[PathBuf],
    forced: Option<BarFileFormat>,
    fixed_symbol: bool,
) -> Result<Vec<InputFile>, InputError> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        if path.is_dir() {
            files.extend(dataset_inputs(path, forced, fixed_symbol, files.len())?);
        } else {
            let from_extension = || BarFileFormat::from_path(path).filter(|format| format.is_readable());
            let format = forced.or_else(from_extension).ok_or_else(|| InputError::UnknownFormat(path.clone()))?;
            files.push(InputFile { index: index(files.len())?, path: path.clone(), format, dataset: None });
        }
    }
    Ok(files)
}

fn index(position: usize) -> Result<u32, InputError> {
    u32::try_from(position).ok().filter(|_| position < MAX_FILES).ok_or(InputError::TooManyFiles(position + 1))
}

/// The files of the Hive dataset in `dir`, numbered from `first`.
fn dataset_inputs(
    dir: &Path,
    forced: Option<BarFileFormat>,
    fixed_symbol: bool,
    first: usize,
) -> Result<Vec<InputFile>, InputError> {
    if forced.is_some_and(|format| format != BarFileFormat::Parquet) {
        return Err(InputError::DatasetNotParquet(dir.to_path_buf()));
    }
    if fixed_symbol {
        return Err(InputError::SymbolForDataset(dir.to_path_buf()));
    }
    let listed = hive::dataset_files(dir).map_err(|error| InputError::List(dir.to_path_buf(), error))?;
    if !listed.iter().any(|file| file.symbol.is_ok()) {
        return Err(InputError::EmptyDataset(dir.to_path_buf()));
    }
    if first + listed.len() > MAX_FILES {
        return Err(InputError::TooManyFiles(first + listed.len()));
    }
    listed
        .into_iter()
        .enumerate()
        .map(|(offset, file)| {
            let (path, dataset) = (file.path.clone(), Some((file, dir.to_path_buf())));
            Ok(InputFile { index: index(first + offset)?, path, format: BarFileFormat::Parquet, dataset })
        })
        .collect()
}

impl InputFile {
    /// Reads the file chunk by chunk, its locations numbered with its index.
    /// Problems of the whole file (cannot open, no usable header) arrive as
    /// chunk problems too.
    pub fn read(&self, options: &ReadOptions) -> Result<FileChunks, FormatError> {
        let options = ReadOptions { file: self.index, ..options.clone() };
        match &self.dataset {
            Some((dataset_file, _)) => Ok(hive::file(dataset_file, &options)),
            None => read::file(&self.path, self.format, &options),
        }
    }

    /// The path notes name: a dataset's directory for its files (one note for all of them).
    pub fn note_path(&self) -> &Path {
        self.dataset.as_ref().map_or(&self.path, |(_, dir)| dir)
    }
}

/// Names the files in locations: `data/a.csv:17`, `data/b.parquet:row 17`.
pub fn locator(files: &[InputFile]) -> Locator {
    Locator::new(files.iter().map(|file| (file.path.clone(), file.format)))
}

/// What a validation pass over every chunk found: [`CrossFileKeys`] checks,
/// counts of bad rows and unusable files, the first `shown_limit` problems
/// as located text (`data/a.csv:17: column close: ...`), and one note per
/// file (or dataset) with ignored columns.
#[derive(Debug)]
pub struct Tally {
    /// The key checks, with the rows and symbols seen so far.
    pub keys: CrossFileKeys,
    locator: Locator,
    note_paths: Vec<PathBuf>,
    shown_limit: usize,
    /// Problems found.
    pub problems: usize,
    /// Rows with at least one problem.
    pub bad_rows: u64,
    /// Files that cannot be used at all.
    pub bad_files: usize,
    /// The first problems, located.
    pub shown: Vec<String>,
    /// Ignored columns, one note per file or dataset.
    pub notes: Vec<String>,
}

impl Tally {
    /// A tally for `files`, keeping the first `shown_limit` problems as text.
    pub fn new(files: &[InputFile], shown_limit: usize) -> Self {
        let locator = locator(files);
        Tally {
            keys: CrossFileKeys::new(locator.clone()),
            locator,
            note_paths: files.iter().map(|file| file.note_path().to_path_buf()).collect(),
            shown_limit,
            problems: 0,
            bad_rows: 0,
            bad_files: 0,
            shown: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Checks one chunk and counts what is wrong with it.
    pub fn check(&mut self, chunk: &Chunk) {
        if !chunk.ignored_columns.is_empty() {
            let note = ignored_note(&self.note_paths[chunk.file as usize], &chunk.ignored_columns);
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
        let mut previous = None;
        for problem in self.keys.check(chunk) {
            if problem.whole_file {
                self.bad_files += 1;
            } else if previous != Some(problem.location) {
                self.bad_rows += 1;
                previous = Some(problem.location);
            }
            self.problems += 1;
            if self.shown.len() < self.shown_limit {
                let column = problem.column.map(|column| format!("column {column}: ")).unwrap_or_default();
                self.shown.push(format!("{}: {column}{}", self.locator.describe(problem.location), problem.message));
            }
        }
    }
}

/// `data/a.csv: ignoring column "note"`, and for an adjusted close
/// `data/a.csv: ignoring column "Adj Close" (--adjust applies an adjusted close)`.
fn ignored_note(path: &Path, columns: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|n| format!("{n:?}")).collect();
    let hint = if columns.iter().any(|name| read::is_adjusted_close(name)) {
        " (--adjust applies an adjusted close)"
    } else {
        ""
    };
    format!("{}: ignoring column{} {}{hint}", path.display(), if names.len() == 1 { "" } else { "s" }, names.join(", "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_flag_or_a_readable_extension() {
        let paths = [PathBuf::from("a.CSV"), PathBuf::from("b.pq")];
        let formats: Vec<BarFileFormat> = resolve(&paths, None, false).unwrap().iter().map(|f| f.format).collect();
        assert_eq!(formats, vec![BarFileFormat::Csv, BarFileFormat::Parquet]);
        let error = resolve(&[PathBuf::from("bars.json")], None, false).unwrap_err();
        assert!(error.to_string().starts_with("cannot tell the format of bars.json"), "{error}");
        assert!(error.is_usage());
        let forced = resolve(&[PathBuf::from("bars.json")], Some(BarFileFormat::Csv), false).unwrap();
        assert_eq!(forced[0].format, BarFileFormat::Csv);
    }

    #[test]
    fn files_are_numbered_in_order_and_capped() {
        let paths: Vec<PathBuf> = (0..3).map(|i| PathBuf::from(format!("f{i}.csv"))).collect();
        let indexes: Vec<u32> = resolve(&paths, None, false).unwrap().iter().map(|f| f.index).collect();
        assert_eq!(indexes, vec![0, 1, 2]);
        let many: Vec<PathBuf> = (0..=MAX_FILES).map(|i| PathBuf::from(format!("f{i}.csv"))).collect();
        let error = resolve(&many, None, false).unwrap_err();
        assert!(matches!(error, InputError::TooManyFiles(n) if n == MAX_FILES + 1), "{error}");
        assert!(error.to_string().starts_with("65,537 files to read; one ingest reads at most 65,536"), "{error}");
    }

    #[test]
    fn a_directory_is_a_hive_dataset_of_its_parquet_files() {
        let directory = tempfile::tempdir().unwrap();
        let dataset = directory.path().join("bars");
        for part in ["symbol=%5EGSPC/year=2020/a.parquet", "symbol=AAPL/b.parquet"] {
            let path = dataset.join(part);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        std::fs::write(dataset.join("_SUCCESS"), b"").unwrap();
        let csv = directory.path().join("a.csv");
        let files = resolve(&[csv.clone(), dataset.clone(), csv], None, false).unwrap();
        let listed: Vec<(u32, Option<String>)> = files
            .iter()
            .map(|f| (f.index, f.dataset.as_ref().map(|(d, _)| d.symbol.as_ref().unwrap().to_string())))
            .collect();
        assert_eq!(listed, vec![(0, None), (1, Some("^GSPC".to_string())), (2, Some("AAPL".to_string())), (3, None)]);
        assert_eq!(files[1].format, BarFileFormat::Parquet);
        assert_eq!(files[2].note_path(), dataset, "notes name the dataset");

        let error = resolve(std::slice::from_ref(&dataset), None, true).unwrap_err();
        assert!(error.to_string().starts_with("--symbol does not apply to the dataset"), "{error}");
        let error = resolve(std::slice::from_ref(&dataset), Some(BarFileFormat::Csv), false).unwrap_err();
        assert!(error.to_string().contains("is a directory, read as a Parquet dataset"), "{error}");
        let empty = directory.path().join("empty");
        std::fs::create_dir_all(empty.join("year=2020")).unwrap();
        std::fs::write(empty.join("year=2020/a.parquet"), b"").unwrap();
        let error = resolve(&[empty], None, false).unwrap_err();
        assert!(error.to_string().contains("holds no *.parquet file inside a symbol=... directory"), "{error}");
        assert!(error.is_usage());
    }

    #[test]
    fn ignored_columns_are_noted_once_per_file_with_the_adjust_hint() {
        let note = ignored_note(Path::new("a.csv"), &["note".into()]);
        assert_eq!(note, "a.csv: ignoring column \"note\"");
        let note = ignored_note(Path::new("a.csv"), &["x".into(), "Adj Close".into()]);
        assert_eq!(note, "a.csv: ignoring columns \"x\", \"Adj Close\" (--adjust applies an adjusted close)");
    }
}
