//! Hive-partitioned Parquet datasets: `DIR/symbol=<value>/[.../]<name>.parquet`,
//! as pandas (`df.to_parquet(dir, partition_cols=["symbol"])`), pyarrow
//! (`pq.write_to_dataset`), polars (`df.write_parquet(dir, partition_by="symbol")`)
//! and `adapter-efs` write them. The one home of "the symbol is in the path":
//!
//! - [`encode_value`] / [`decode_value`]: partition values percent-encoded
//!   the way pyarrow and DuckDB write them (polars writes most symbols
//!   as they are, which decodes to itself);
//! - [`symbol_from_path`]: the symbol of a file or partition directory;
//! - [`with_path_symbol`]: a batch of the other bar columns (a file of such a
//!   dataset) completed with the path's symbol, in the canonical schema;
//! - [`dataset_files`] and [`file`]: list a dataset and read one of its
//!   files as [`Chunk`](super::Chunk)s, every problem located at its file and row.
//!
//! Files may hold a symbol column too (polars keeps it, older Strata
//! datasets have it): [`file`] then checks each row's value against the
//! path's (a row that disagrees is a problem of its row);
//! [`with_path_symbol`] ignores it. Other partition directories (`year=2020`)
//! carry nothing Strata needs and are ignored. Timestamps are converted as
//! [`super::parquet`] converts them: any unit (nanoseconds are truncated to
//! the microsecond), a time zone kept as the instant, a timestamp without a
//! zone (pandas' naive `datetime64[ns]`) taken as UTC.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use strata_core::{Symbol, bar_schema};

use super::parquet_reader::parquet_with_path_symbol;
use super::{ChunkBuilder, FileChunks, Inner, ReadOptions};

/// The partition key Strata's datasets use (`symbol=<value>` directories).
pub const SYMBOL_KEY: &str = "symbol";

/// Bytes a partition value keeps as is: RFC 3986 "unreserved" characters, the
/// set pyarrow (`uriparser`) and DuckDB (`HivePartitioning::Escape`) leave
/// alone when they write Hive paths; every other byte becomes `%XX`.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// The Hive path value of `value`: percent-encoded exactly as pyarrow and
/// DuckDB encode partition values (`^GSPC` -> `%5EGSPC`, `EURUSD=X` ->
/// `EURUSD%3DX`, `BTC/USD` -> `BTC%2FUSD`), so URI-decoding readers give the
/// value back and no path value contains `/` or a second `=`.
pub fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for byte in value.bytes() {
        if is_unreserved(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The value of a Hive path value (percent-decoding; a `%` not followed by
/// two hex digits stays as it is, so polars' unencoded values decode to
/// themselves); `None` when the result is not UTF-8.
pub fn decode_value(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%' && index + 3 <= bytes.len())
            .then(|| std::str::from_utf8(&bytes[index + 1..index + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The directory name of `symbol`'s partition: `symbol=<encoded>`.
pub fn symbol_dir_name(symbol: &str) -> String {
    format!("{SYMBOL_KEY}={}", encode_value(symbol))
}

/// The symbol of a path inside a Hive dataset: the value of its last
/// `symbol=<value>` component (the key in any case), percent-decoded and
/// validated. `None` when no component is a symbol partition; `Some(Err)`
/// says why the value is not a symbol.
pub fn symbol_from_path(path: &Path) -> Option<Result<Symbol, String>> {
    let value = path.components().rev().find_map(|component| {
        let name = component.as_os_str().to_str()?;
        let (key, value) = name.split_once('=')?;
        key.eq_ignore_ascii_case(SYMBOL_KEY).then_some(value)
    })?;
    Some(match decode_value(value) {
        None => Err(format!("the partition value {value:?} is not UTF-8 once percent-decoded")),
        Some(text) => Symbol::new(text.as_str())
            .map_err(|error| format!("the partition value {value:?} is not a symbol: {error}")),
    })
}

/// The canonical bar schema without its `symbol` column: the schema of a
/// file in a dataset partitioned by symbol (`adapter-efs` writes it).
pub fn partition_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<_> =
                bar_schema().fields().iter().filter(|field| field.name() != SYMBOL_KEY).cloned().collect();
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// `batch` (the other bar columns of a partition's file, by name, in the
/// canonical types; `vwap` and `trade_count` may be absent) as a batch of the
/// canonical schema whose symbol is `symbol` on every row. A symbol column
/// in `batch` is ignored: the path decides. Errors name the column at fault.
pub fn with_path_symbol(batch: &RecordBatch, symbol: &str) -> Result<RecordBatch, String> {
    let rows = batch.num_rows();
    let schema = bar_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = if field.name() == SYMBOL_KEY {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(symbol, rows))) as ArrayRef
        } else {
            match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => column.clone(),
                Some(column) => {
                    return Err(format!(
                        "column {:?} has type {}; expected {}",
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ));
                }
                None if field.is_nullable() => new_null_array(field.data_type(), rows),
                None => return Err(format!("missing column {:?}", field.name())),
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema, columns).map_err(|error| error.to_string())
}

/// One data file of a dataset and the symbol its path gives (or why it gives none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFile {
    /// The file.
    pub path: PathBuf,
    /// The symbol of its `symbol=` directory, or why there is none.
    pub symbol: Result<Symbol, String>,
}

/// The `*.parquet` files of the dataset under `dir`, in path order, each with
/// the symbol of its path. Names starting with `.` or `_` are skipped, as
/// pyarrow skips them (staging files, `_SUCCESS`, `_strata/`). A file not
/// inside a `symbol=` directory is listed with an `Err` symbol (reading it
/// gives a whole-file problem). Only a directory that cannot be listed is an
/// error; a dataset with no file is an empty list.
pub fn dataset_files(dir: &Path) -> io::Result<Vec<DatasetFile>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() || (entry.file_type()?.is_symlink() && path.is_dir()) {
                pending.push(path);
            } else if name.to_ascii_lowercase().ends_with(".parquet") {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                let symbol = symbol_from_path(relative).unwrap_or_else(|| {
                    Err(format!("not inside a {SYMBOL_KEY}=... directory of {}, so it has no symbol", dir.display()))
                });
                out.push(DatasetFile { path, symbol });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Whether `dir` holds a Hive dataset partitioned by symbol: at least one
/// `*.parquet` file inside a `symbol=` directory.
pub fn is_dataset(dir: &Path) -> io::Result<bool> {
    Ok(dataset_files(dir)?.iter().any(|file| file.symbol.is_ok()))
}

/// Reads one file of a dataset as [`super::parquet`] reads a file with
/// [`ReadOptions::symbol`] set to the path's symbol ([`ReadOptions::symbol`]
/// itself is not used), except that a symbol column in the file is allowed:
/// each of its values must equal the path's. A file without a symbol in its
/// path, or that cannot be opened, is one whole-file problem.
pub fn file(file: &DatasetFile, options: &ReadOptions) -> FileChunks {
    let inner = match (&file.symbol, File::open(&file.path)) {
        (Err(message), _) => Inner::Failed(Some(ChunkBuilder::failed(options, 0, message.clone()))),
        (Ok(_), Err(error)) => Inner::Failed(Some(ChunkBuilder::failed(options, 0, format!("cannot open: {error}")))),
        (Ok(symbol), Ok(handle)) => Inner::Parquet(parquet_with_path_symbol(handle, symbol.clone(), options)),
    };
    FileChunks { inner }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{Float64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field};
    use parquet::arrow::ArrowWriter;
    use strata_core::{Bar, BarBatch, Timestamp};

    use super::*;

    #[test]
    fn values_encode_like_pyarrow_and_duckdb_and_decode_back() {
        let cases = [
            ("AAPL", "AAPL"),
            ("BRK.B", "BRK.B"),
            ("^GSPC", "%5EGSPC"),
            ("EURUSD=X", "EURUSD%3DX"),
            ("BTC/USD", "BTC%2FUSD"),
            ("BTC-USD", "BTC-USD"),
            ("7203", "7203"),
            ("_", "_"),
            ("a%b", "a%25b"),
        ];
        for (symbol, encoded) in cases {
            assert_eq!(encode_value(symbol), encoded, "{symbol}");
            assert_eq!(decode_value(encoded).as_deref(), Some(symbol), "{encoded}");
        }
        assert_eq!(decode_value("%5"), Some("%5".into()), "a stray percent stays");
        assert_eq!(decode_value("^GSPC"), Some("^GSPC".into()), "polars' unencoded values decode to themselves");
        assert_eq!(decode_value("%FF"), None);
        assert_eq!(symbol_dir_name("^GSPC"), "symbol=%5EGSPC");
    }

    #[test]
    fn the_symbol_is_the_last_symbol_component() {
        let symbol = |path: &str| symbol_from_path(Path::new(path)).map(|s| s.map(|s| s.to_string()));
        assert_eq!(symbol("/data/bars/symbol=%5EGSPC/year=2024/part-1.parquet"), Some(Ok("^GSPC".into())));
        assert_eq!(symbol("symbol=EURUSD=X/a.parquet"), Some(Ok("EURUSD=X".into())), "polars leaves '=' as is");
        assert_eq!(symbol("Symbol=BRK.B"), Some(Ok("BRK.B".into())));
        assert_eq!(symbol("symbol=A/x/symbol=B/f.parquet"), Some(Ok("B".into())));
        assert_eq!(symbol("/data/year=2024/f.parquet"), None);
        let bad = symbol("symbol=a%20b/f.parquet").unwrap().unwrap_err();
        assert!(bad.contains("\"a%20b\" is not a symbol"), "{bad}");
    }

    #[test]
    fn a_path_symbol_completes_a_partition_batch_and_overrides_a_file_column() {
        let bar = Bar {
            symbol: "OLD".into(),
            timestamp: Timestamp(1_577_836_800_000_000),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 10.0,
            vwap: None,
            trade_count: Some(3),
        };
        let canonical = BarBatch::from_bars(std::slice::from_ref(&bar));
        let without = canonical.record_batch().project(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(without.schema(), partition_schema());
        for input in [&without, canonical.record_batch()] {
            let batch = with_path_symbol(input, "^GSPC").unwrap();
            let bars = BarBatch::try_new(batch).unwrap().to_bars();
            assert_eq!(bars, vec![Bar { symbol: "^GSPC".into(), ..bar.clone() }]);
        }
        let no_optional = without.project(&[0, 1, 2, 3, 4, 5]).unwrap();
        let bars = BarBatch::try_new(with_path_symbol(&no_optional, "A").unwrap()).unwrap().to_bars();
        assert_eq!((bars[0].vwap, bars[0].trade_count), (None, None));
        let error = with_path_symbol(&without.project(&[0, 1]).unwrap(), "A").unwrap_err();
        assert_eq!(error, "missing column \"high\"");
    }

    fn write(path: &Path, batch: &RecordBatch) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn a_dataset_lists_its_files_and_reads_with_the_path_symbol() {
        let directory = std::env::temp_dir().join(format!("strata-formats-hive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        let schema = Arc::new(Schema::new(vec![
            Field::new("timestamp", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None), false),
            Field::new("open", DataType::Float64, false),
            Field::new("high", DataType::Float64, false),
            Field::new("low", DataType::Float64, false),
            Field::new("close", DataType::Float64, false),
            Field::new("volume", DataType::Float64, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(vec![0, 86_400_000_000])),
            Arc::new(Float64Array::from(vec![1.0, 1.0])),
            Arc::new(Float64Array::from(vec![2.0, 2.0])),
            Arc::new(Float64Array::from(vec![0.5, 0.5])),
            Arc::new(Float64Array::from(vec![1.5, 1.5])),
            Arc::new(Float64Array::from(vec![10.0, 10.0])),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        write(&directory.join("symbol=%5EGSPC/year=1970/a.parquet"), &batch);
        write(&directory.join("symbol=BRK.B/b.parquet"), &batch);
        write(&directory.join("stray.parquet"), &batch);
        std::fs::write(directory.join("symbol=BRK.B/.part.tmp"), "x").unwrap();
        std::fs::create_dir_all(directory.join("_strata/batches")).unwrap();
        std::fs::write(directory.join("_strata/batches/id"), "committed\n").unwrap();
        std::fs::write(directory.join("_SUCCESS"), "").unwrap();
        let files = dataset_files(&directory).unwrap();
        let listed: Vec<(String, Result<String, bool>)> = files
            .iter()
            .map(|file| {
                let name = file.path.strip_prefix(&directory).unwrap().display().to_string();
                (name, file.symbol.as_ref().map(|s| s.to_string()).map_err(|_| false))
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                ("stray.parquet".to_string(), Err(false)),
                ("symbol=%5EGSPC/year=1970/a.parquet".to_string(), Ok("^GSPC".to_string())),
                ("symbol=BRK.B/b.parquet".to_string(), Ok("BRK.B".to_string())),
            ]
        );
        assert!(is_dataset(&directory).unwrap());
        assert!(!is_dataset(&directory.join("_strata")).unwrap());
        let chunks: Vec<_> = file(&files[1], &ReadOptions { file: 4, ..ReadOptions::default() }).collect();
        assert!(chunks[0].problems.is_empty(), "{:?}", chunks[0].problems);
        let bars = chunks[0].batch.to_bars();
        assert_eq!(bars.iter().map(|bar| bar.symbol.as_str()).collect::<Vec<_>>(), ["^GSPC", "^GSPC"]);
        assert_eq!(bars[1].timestamp.to_string(), "1970-01-02T00:00:00Z", "no zone: UTC");
        assert_eq!(chunks[0].file, 4);
        let stray: Vec<_> = file(&files[0], &ReadOptions::default()).collect();
        assert!(stray[0].problems[0].whole_file);
        assert!(stray[0].problems[0].message.starts_with("not inside a symbol=... directory"), "{:?}", stray[0]);
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn a_symbol_column_must_agree_with_the_path() {
        let directory = std::env::temp_dir().join(format!("strata-formats-hive-column-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        let bars: Vec<Bar> = ["A", "B", "A"]
            .iter()
            .enumerate()
            .map(|(day, symbol)| Bar {
                symbol: (*symbol).into(),
                timestamp: Timestamp(day as i64 * 86_400_000_000),
                open: 1.0,
                high: 2.0,
                low: 0.5,
                close: 1.5,
                volume: 10.0,
                vwap: None,
                trade_count: None,
            })
            .collect();
        let path = directory.join("symbol=A/f.parquet");
        write(&path, BarBatch::from_bars(&bars).record_batch());
        let dataset = DatasetFile { path, symbol: Ok(Symbol::new("A").unwrap()) };
        let chunks: Vec<_> = file(&dataset, &ReadOptions::default()).collect();
        let problems: Vec<(u64, Option<&str>, &str)> =
            chunks[0].problems.iter().map(|p| (p.location.number, p.column, p.message.as_str())).collect();
        assert_eq!(problems, vec![(2, Some("symbol"), "the symbol column says \"B\" but the path says symbol=A")]);
        assert_eq!(chunks[0].numbers, vec![1, 3]);
        assert!(chunks[0].ignored_columns.is_empty());
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
