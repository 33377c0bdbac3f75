//! Bar files: CSV and Parquet in, CSV, JSON Lines and Parquet out, always as
//! [`BarBatch`](strata_core::BarBatch)es in the canonical schema of `strata-core`.
//!
//! This crate is plain synchronous I/O over `std::io` and `parquet`: no
//! runtime, no command line, no store. The `strata` binary builds `ingest`,
//! `query --format` and `generate --output` on it; `adapter-efs` keeps its
//! Parquet files with it.
//!
//! - [`BarFileFormat`]: the one format enum, with [`BarFileFormat::from_path`].
//! - [`read`]: [`read::csv`] (any `impl Read`), [`read::parquet`] (a file) and
//!   [`read::file`] (a path) yield [`Chunk`]s: a batch built with
//!   [`strata_core::BarBatchBuilder`], the line or row of each of its rows, and
//!   every [`Problem`] with its [`Location`]. Readers never fail: a file that
//!   cannot be opened or has no usable header arrives as a whole-file problem.
//! - [`read::hive`]: Hive datasets partitioned by symbol (pandas
//!   `partition_cols`, pyarrow `write_to_dataset`, polars `partition_by`, and
//!   `adapter-efs`): the symbol from the path ([`read::hive::symbol_from_path`]),
//!   the dataset's files ([`read::hive::dataset_files`]) read as chunks
//!   ([`read::hive::file`]).
//! - [`ReadOptions::adjust`]: the vendor's adjusted close applied while
//!   reading (OHLC and vwap scaled by adj_close / close, volume divided).
//! - [`inputs`]: the files and dataset directories of one load as numbered
//!   [`inputs::InputFile`]s, and the [`inputs::Tally`] of a validation pass.
//! - [`splits::SplitScan`]: overnight moves that look like unadjusted splits
//!   ([`splits::split_guess`]), for a note while loading.
//! - [`validate::CrossFileKeys`]: duplicate (symbol, timestamp) keys across
//!   chunks and files, plus `BarBatch::validate`, with locations.
//! - [`write`](mod@write): [`write::CsvWriter`], [`write::JsonLinesWriter`] and
//!   [`write::ParquetWriter`] (zstd), or [`write::BarFileWriter`] for any of them.
//!
//! Invariants: what the CSV and JSON Lines writers print reads back bit for
//! bit (floats in Rust's shortest round-trip form, timestamps as RFC 3339
//! UTC); numbers are parsed exactly as `str::parse::<f64>` does; locations
//! count CSV lines from 1 with the header as line 1, and Parquet rows from 1.
//!
//! ```
//! use strata_formats::read::{self, ReadOptions};
//! use strata_formats::write::CsvWriter;
//!
//! let text = "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,2,0.5,x,10\n";
//! let options = ReadOptions { symbol: Some("AAPL".parse().unwrap()), ..ReadOptions::default() };
//! let chunks: Vec<_> = read::csv(text.as_bytes(), &options).collect();
//! assert_eq!(chunks[0].batch.len(), 1);
//! assert_eq!(chunks[0].problems[0].location.number, 3); // line 3, column close
//!
//! let mut writer = CsvWriter::new(Vec::new()).unwrap();
//! writer.write(&chunks[0].batch).unwrap();
//! let written = String::from_utf8(writer.finish().unwrap()).unwrap();
//! assert_eq!(written.lines().nth(1), Some("AAPL,2020-01-02T00:00:00Z,1,2,0.5,1.5,10,,"));
//! ```

pub mod atomic;
pub mod error;
pub mod format;
pub mod inputs;
pub mod location;
pub mod read;
pub mod splits;
pub mod validate;
pub mod write;

pub use atomic::AtomicFile;
pub use error::FormatError;
pub use format::BarFileFormat;
pub use location::{Location, Locator};
pub use read::{Chunk, Problem, ReadOptions};
pub use splits::{SplitScan, SuspectedSplit};
pub use validate::CrossFileKeys;
