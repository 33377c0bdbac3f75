//! The Parquet reader: a file in, chunks out, every problem at its row
//! (counted from 1). Columns of the canonical types become the chunk's batch
//! as they are; text columns and columns with missing values go row by row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;
use strata_core::{BarBatch, Symbol, Timestamp, bar_schema};

use super::columns::ColumnMap;
use super::{Chunk, ChunkBuilder, ReadOptions, RowParts, RowProblems, adjust_row, parse_count, parse_float};

/// Reads a Parquet file (a `std::fs::File`, or anything else parquet can
/// read at offsets) in record batches of [`ReadOptions::chunk_rows`] rows.
/// Bar fields may be stored as their canonical types, as other numeric,
/// timestamp or date types (cast), or as text (parsed as CSV fields are).
/// Missing values and unparsable text are problems of their row; a file
/// that is not Parquet, lacks a column or has a column of the wrong type is
/// a whole-file problem.
pub fn parquet<T: ChunkReader + 'static>(input: T, options: &ReadOptions) -> ParquetChunks {
    read(input, options, options.symbol.clone(), false)
}

/// [`parquet()`] for a file of a Hive dataset whose path gives `symbol`:
/// a symbol column in the file is allowed, and each of its values must be
/// `symbol` (a row whose value differs is a problem of its row).
pub(super) fn parquet_with_path_symbol<T: ChunkReader + 'static>(
    input: T,
    symbol: Symbol,
    options: &ReadOptions,
) -> ParquetChunks {
    read(input, options, Some(symbol), true)
}

fn read<T: ChunkReader + 'static>(
    input: T,
    options: &ReadOptions,
    symbol: Option<Symbol>,
    from_path: bool,
) -> ParquetChunks {
    let mut chunk = ChunkBuilder::new(options);
    let opened = open(input, options, from_path);
    let (reader, map) = match opened {
        Ok((reader, map)) => {
            chunk.ignored_columns.clone_from(&map.ignored);
            (Some(reader), Some(map))
        }
        Err(message) => {
            chunk.file_problem(0, message);
            (None, None)
        }
    };
    ParquetChunks { reader, map, symbol, row_number: 0, chunk, finished: false }
}

/// The chunks of a Parquet file, from [`parquet()`].
pub struct ParquetChunks {
    /// `None` once the file is read to its end, or when it is unusable.
    reader: Option<ParquetRecordBatchReader>,
    map: Option<ColumnMap>,
    symbol: Option<Symbol>,
    /// Rows read so far.
    row_number: u64,
    chunk: ChunkBuilder,
    finished: bool,
}

impl std::fmt::Debug for ParquetChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetChunks")
            .field("map", &self.map)
            .field("row_number", &self.row_number)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Iterator for ParquetChunks {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        if let (Some(reader), Some(map)) = (&mut self.reader, &self.map) {
            match next_batch(reader) {
                Some(batch) => {
                    let columns = batch
                        .map_err(|error| format!("cannot read past row {}: {error}", self.row_number))
                        .and_then(|batch| ParquetColumns::new(&batch, map).map(|columns| (columns, batch.num_rows())));
                    match columns {
                        Ok((columns, rows)) => return Some(self.chunk_of(&columns, rows)),
                        Err(message) => {
                            self.chunk.file_problem(0, message);
                            self.reader = None;
                        }
                    }
                }
                None => self.reader = None,
            }
        }
        if self.finished {
            return None;
        }
        self.finished = true;
        self.chunk.take_unless_empty()
    }
}

/// The reader's next batch, or why there is none. The `parquet` crate panics
/// on some damaged files (`tests/corpus/parquet/`: a dictionary-encoded page
/// without its dictionary page, definition levels longer than their buffer,
/// a negative column chunk offset in the footer); such a panic is caught and
/// becomes the error of the file, and the reader, left in an unknown state,
/// is dropped by the caller.
fn next_batch(reader: &mut ParquetRecordBatchReader) -> Option<Result<RecordBatch, String>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next())) {
        Ok(batch) => batch.map(|batch| batch.map_err(|error| error.to_string())),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Some(Err(format!("the Parquet decoder failed on damaged data ({what})")))
        }
    }
}

impl ParquetChunks {
    /// The chunk of the `rows` rows of `columns`: taken as one batch when no
    /// row can have a problem, else row by row.
    fn chunk_of(&mut self, columns: &ParquetColumns, rows: usize) -> Chunk {
        let first = self.row_number + 1;
        self.row_number += rows as u64;
        if let Some(batch) = columns.whole_batch(rows, self.symbol.as_ref()) {
            return self.chunk.take_with(batch, first);
        }
        for (row, number) in (first..=self.row_number).enumerate() {
            self.chunk.push(number, columns.row(row, self.symbol.as_ref()));
        }
        self.chunk.take()
    }
}

/// Opens the file and maps its columns, or says why it cannot be used.
/// With `from_path` the symbol comes from the file's path, and a symbol
/// column is allowed too (its values are checked against the path's).
fn open<T: ChunkReader + 'static>(
    input: T,
    options: &ReadOptions,
    from_path: bool,
) -> Result<(ParquetRecordBatchReader, ColumnMap), String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(input)
        .map_err(|error| format!("not a readable Parquet file: {error}"))?;
    let schema = builder.schema().clone();
    let names = || schema.fields().iter().map(|f| f.name().as_str());
    let fixed_symbol = if from_path {
        !names().any(|name| super::columns::canonical_column(name) == Some("symbol"))
    } else {
        options.symbol.is_some()
    };
    let map = ColumnMap::from_names(names(), fixed_symbol, options.adjust)?;
    check_types(&schema, &map)?;
    let reader =
        builder.with_batch_size(options.chunk_rows.max(1)).build().map_err(|error| format!("cannot read: {error}"))?;
    Ok((reader, map))
}

/// Refuses column types that cannot hold the field.
fn check_types(schema: &Schema, map: &ColumnMap) -> Result<(), String> {
    let check = |index: Option<usize>, field: &str, accepts: fn(&DataType) -> bool, expected: &str| {
        let Some(index) = index else { return Ok(()) };
        let column = schema.field(index);
        if accepts(column.data_type()) {
            Ok(())
        } else {
            Err(format!(
                "column {:?} (the {field}) has type {}; expected {expected}",
                column.name(),
                column.data_type()
            ))
        }
    };
    check(map.symbol, "symbol", is_text, "a string")?;
    check(
        Some(map.timestamp),
        "timestamp",
        |t| is_text(t) || matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64),
        "a timestamp, a date or a string",
    )?;
    for (index, field) in [
        (Some(map.open), "open"),
        (Some(map.high), "high"),
        (Some(map.low), "low"),
        (Some(map.close), "close"),
        (Some(map.volume), "volume"),
        (map.vwap, "vwap"),
        (map.adj_close, "adjusted close"),
    ] {
        check(index, field, |t| is_text(t) || is_number(t), "a number or a string")?;
    }
    check(map.trade_count, "trade_count", |t| is_text(t) || t.is_integer(), "an integer or a string")
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

fn is_number(data_type: &DataType) -> bool {
    data_type.is_numeric() && !matches!(data_type, DataType::Float16)
}

/// One column of floats: numbers, or text to parse per row.
enum FloatColumn {
    Numbers(Float64Array),
    Text(StringArray),
}

enum TimestampColumn {
    Micros(TimestampMicrosecondArray),
    Text(StringArray),
}

enum CountColumn {
    Numbers(Int64Array),
    Text(StringArray),
}

/// A Parquet batch's columns, cast to what the bar fields need.
struct ParquetColumns {
    symbol: Option<StringArray>,
    timestamp: TimestampColumn,
    prices: [FloatColumn; 5],
    vwap: Option<FloatColumn>,
    trade_count: Option<CountColumn>,
    /// The adjusted close, only when adjusting.
    adj_close: Option<FloatColumn>,
}

fn cast_text(batch: &RecordBatch, index: usize) -> Result<StringArray, String> {
    let column = cast(batch.column(index), &DataType::Utf8).map_err(|error| error.to_string())?;
    Ok(column.as_string::<i32>().clone())
}

fn float_column(batch: &RecordBatch, index: usize) -> Result<FloatColumn, String> {
    if is_text(batch.column(index).data_type()) {
        return cast_text(batch, index).map(FloatColumn::Text);
    }
    let column = cast(batch.column(index), &DataType::Float64).map_err(|error| error.to_string())?;
    Ok(FloatColumn::Numbers(column.as_primitive::<Float64Type>().clone()))
}

impl ParquetColumns {
    fn new(batch: &RecordBatch, map: &ColumnMap) -> Result<Self, String> {
        let timestamp = if is_text(batch.column(map.timestamp).data_type()) {
            TimestampColumn::Text(cast_text(batch, map.timestamp)?)
        } else {
            // Cast without a zone and label the result UTC: a cast *to* a named
            // zone needs arrow's chrono-tz feature, even for "UTC". Instants
            // with a zone keep their value; times without one are taken as UTC.
            let target = DataType::Timestamp(TimeUnit::Microsecond, None);
            let column = cast(batch.column(map.timestamp), &target).map_err(|error| error.to_string())?;
            TimestampColumn::Micros(column.as_primitive::<TimestampMicrosecondType>().clone().with_timezone("UTC"))
        };
        let trade_count = match map.trade_count {
            None => None,
            Some(index) if is_text(batch.column(index).data_type()) => {
                Some(CountColumn::Text(cast_text(batch, index)?))
            }
            Some(index) => {
                let column = cast(batch.column(index), &DataType::Int64).map_err(|error| error.to_string())?;
                Some(CountColumn::Numbers(column.as_primitive::<Int64Type>().clone()))
            }
        };
        Ok(ParquetColumns {
            symbol: map.symbol.map(|index| cast_text(batch, index)).transpose()?,
            timestamp,
            prices: [
                float_column(batch, map.open)?,
                float_column(batch, map.high)?,
                float_column(batch, map.low)?,
                float_column(batch, map.close)?,
                float_column(batch, map.volume)?,
            ],
            vwap: map.vwap.map(|index| float_column(batch, index)).transpose()?,
            trade_count,
            adj_close: map.adj_close.map(|index| float_column(batch, index)).transpose()?,
        })
    }

    /// The rows as one batch, without a row loop, when no row can have a
    /// problem: every column numeric (not text), no required value missing
    /// and nothing to adjust. The values are the ones [`ParquetColumns::row`]
    /// would give.
    fn whole_batch(&self, rows: usize, fixed_symbol: Option<&Symbol>) -> Option<BarBatch> {
        if self.adj_close.is_some() {
            return None;
        }
        let complete = |array: &dyn Array| array.null_count() == 0;
        let symbol: ArrayRef = match (&self.symbol, fixed_symbol) {
            // A column and a path symbol (a Hive file): every value must agree.
            (Some(column), Some(symbol)) if complete(column) && column.iter().all(|v| v == Some(symbol.as_str())) => {
                Arc::new(column.clone())
            }
            (Some(column), None) if complete(column) => Arc::new(column.clone()),
            (None, Some(symbol)) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(symbol.as_str(), rows))),
            _ => return None,
        };
        let TimestampColumn::Micros(timestamp) = &self.timestamp else { return None };
        if !complete(timestamp) {
            return None;
        }
        let mut columns: Vec<ArrayRef> = vec![symbol, Arc::new(timestamp.clone())];
        for price in &self.prices {
            match price {
                FloatColumn::Numbers(values) if complete(values) => columns.push(Arc::new(values.clone())),
                _ => return None,
            }
        }
        columns.push(match &self.vwap {
            None => new_null_array(&DataType::Float64, rows),
            Some(FloatColumn::Numbers(values)) => Arc::new(values.clone()),
            Some(FloatColumn::Text(_)) => return None,
        });
        columns.push(match &self.trade_count {
            None => new_null_array(&DataType::Int64, rows),
            Some(CountColumn::Numbers(values)) => Arc::new(values.clone()),
            Some(CountColumn::Text(_)) => return None,
        });
        let batch = RecordBatch::try_new(bar_schema(), columns).ok()?;
        BarBatch::try_new(batch).ok()
    }

    /// Row `row`, or everything wrong with it.
    fn row<'a>(&'a self, row: usize, fixed_symbol: Option<&'a Symbol>) -> Result<RowParts<'a>, RowProblems> {
        let mut problems = RowProblems::new();
        let missing = || "value is missing".to_string();
        let symbol = match (&self.symbol, fixed_symbol) {
            (Some(column), Some(symbol)) if column.is_valid(row) && column.value(row) != symbol.as_str() => {
                problems.push((
                    Some("symbol"),
                    format!(
                        "the symbol column says {:?} but the path says {}",
                        column.value(row),
                        super::hive::symbol_dir_name(symbol.as_str())
                    ),
                ));
                ""
            }
            (Some(column), _) if column.is_valid(row) => column.value(row),
            // A Hive file's symbol column may leave the path's symbol implicit.
            (Some(_), Some(symbol)) => symbol.as_str(),
            (Some(_), _) => {
                problems.push((Some("symbol"), missing()));
                ""
            }
            (None, Some(symbol)) => symbol.as_str(),
            (None, None) => "",
        };
        let timestamp = match &self.timestamp {
            TimestampColumn::Micros(column) if column.is_valid(row) => Ok(Timestamp(column.value(row))),
            TimestampColumn::Text(column) if column.is_valid(row) => Timestamp::parse(column.value(row)),
            _ => Err(missing()),
        }
        .map_err(|message| problems.push((Some("timestamp"), message)))
        .ok();
        let float = |column: &FloatColumn| -> Option<Result<f64, String>> {
            match column {
                FloatColumn::Numbers(values) => values.is_valid(row).then(|| Ok(values.value(row))),
                FloatColumn::Text(values) => values.is_valid(row).then(|| parse_float(values.value(row).trim())),
            }
        };
        let mut values = [0.0; 5];
        let mut values_ok = true;
        for ((slot, column), name) in
            values.iter_mut().zip(&self.prices).zip(["open", "high", "low", "close", "volume"])
        {
            match float(column).unwrap_or_else(|| Err(missing())) {
                Ok(value) => *slot = value,
                Err(message) => {
                    problems.push((Some(name), message));
                    values_ok = false;
                }
            }
        }
        let vwap = match self.vwap.as_ref().and_then(float).transpose() {
            Ok(vwap) => vwap,
            Err(message) => {
                problems.push((Some("vwap"), message));
                None
            }
        };
        let trade_count = match &self.trade_count {
            Some(CountColumn::Numbers(values)) if values.is_valid(row) => Ok(Some(values.value(row))),
            Some(CountColumn::Text(values)) if values.is_valid(row) => parse_count(values.value(row).trim()).map(Some),
            _ => Ok(None),
        }
        .map_err(|message| problems.push((Some("trade_count"), message)))
        .ok()
        .flatten();
        let adj_close = match self.adj_close.as_ref().map(|column| float(column).unwrap_or_else(|| Err(missing()))) {
            None => None,
            Some(Ok(value)) => Some(value),
            Some(Err(message)) => {
                problems.push((Some("adj_close"), message));
                None
            }
        };
        match timestamp {
            Some(timestamp) if values_ok && problems.is_empty() => {
                let mut vwap = vwap;
                if let Some(adj_close) = adj_close {
                    adjust_row(&mut values, &mut vwap, adj_close)
                        .map_err(|(column, message)| vec![(Some(column), message)])?;
                }
                Ok(RowParts { symbol, timestamp, values, vwap, trade_count })
            }
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs::File;
    use std::path::PathBuf;

    use arrow::datatypes::Field;
    use parquet::arrow::ArrowWriter;
    use strata_core::Bar;

    use super::*;

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with_batch(name: &str, batch: &RecordBatch) -> Self {
            let path = std::env::temp_dir().join(format!("strata-formats-{}-{name}.parquet", std::process::id()));
            let mut writer = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
            writer.write(batch).unwrap();
            writer.close().unwrap();
            TempFile(path)
        }

        fn read(&self, options: &ReadOptions) -> Vec<Chunk> {
            parquet(File::open(&self.0).unwrap(), options).collect()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn bar(symbol: &str, day: i64) -> Bar {
        Bar {
            symbol: symbol.into(),
            timestamp: Timestamp(1_577_836_800_000_000 + day * 86_400_000_000),
            open: 1.0 + day as f64,
            high: 2.5 + day as f64,
            low: 0.5,
            close: 0.08388999999999999 + day as f64,
            volume: 877_000_000.0,
            vwap: (day % 2 == 0).then_some(1.25),
            trade_count: (day % 3 == 0).then_some(day),
        }
    }

    #[test]
    fn canonical_files_read_back_exactly_in_chunks_with_row_numbers() {
        let bars: Vec<Bar> = (0..5).map(|day| bar(if day < 3 { "A" } else { "B" }, day)).collect();
        let file = TempFile::with_batch("canonical", BarBatch::from_bars(&bars).record_batch());
        let chunks = file.read(&ReadOptions { chunk_rows: 2, ..ReadOptions::default() });
        assert_eq!(chunks.iter().map(|chunk| chunk.rows).collect::<Vec<_>>(), vec![2, 2, 1]);
        let numbers: Vec<u64> = chunks.iter().flat_map(|chunk| chunk.numbers.clone()).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
        let read: Vec<Bar> = chunks.iter().flat_map(|chunk| chunk.batch.to_bars()).collect();
        assert_eq!(read, bars);
        assert!(chunks.iter().all(|chunk| chunk.problems.is_empty()));
    }

    #[test]
    fn whole_batches_and_rows_give_the_same_bars() {
        let bars: Vec<Bar> = (0..4).map(|day| bar("A", day)).collect();
        let file = TempFile::with_batch("paths", BarBatch::from_bars(&bars).record_batch());
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&file.0).unwrap()).unwrap();
        let schema = builder.schema().clone();
        let map = ColumnMap::from_names(schema.fields().iter().map(|f| f.name().as_str()), false, false).unwrap();
        let batch = builder.build().unwrap().next().unwrap().unwrap();
        let columns = ParquetColumns::new(&batch, &map).unwrap();
        let whole = columns.whole_batch(4, None).unwrap();
        let mut builder = strata_core::BarBatchBuilder::with_capacity(4);
        for row in 0..4 {
            let parts = columns.row(row, None).unwrap();
            builder.push_parts(parts.symbol, parts.timestamp, parts.values, parts.vwap, parts.trade_count);
        }
        assert_eq!(whole, builder.finish());
        assert_eq!(whole.to_bars(), bars);
    }

    #[test]
    fn other_types_are_cast_and_a_fixed_symbol_fills_the_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Date", DataType::Date32, false),
            Field::new("open", DataType::Int32, false),
            Field::new("high", DataType::Float32, false),
            Field::new("low", DataType::Float64, false),
            Field::new("close", DataType::Float64, false),
            Field::new("volume", DataType::Int64, false),
            Field::new("note", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Date32Array::from(vec![18_262, 18_263])),
            Arc::new(arrow::array::Int32Array::from(vec![2, 3])),
            Arc::new(arrow::array::Float32Array::from(vec![4.5, 5.5])),
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
            Arc::new(Float64Array::from(vec![3.0, 4.0])),
            Arc::new(Int64Array::from(vec![5_000_000_000, 0])),
            Arc::new(StringArray::from(vec![Some("x"), None])),
        ];
        let file = TempFile::with_batch("cast", &RecordBatch::try_new(schema, columns).unwrap());
        let chunks = file.read(&ReadOptions { symbol: Some(Symbol::new("XYZ").unwrap()), ..ReadOptions::default() });
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].problems.is_empty(), "{:?}", chunks[0].problems);
        assert_eq!(chunks[0].ignored_columns, vec!["note".to_string()]);
        let bars = chunks[0].batch.to_bars();
        assert_eq!(bars[1].symbol, "XYZ");
        assert_eq!(bars[1].timestamp.to_string(), "2020-01-02T00:00:00Z");
        assert_eq!((bars[0].open, bars[0].high, bars[0].volume), (2.0, 4.5, 5_000_000_000.0));
        assert_eq!((bars[0].vwap, bars[0].trade_count), (None, None));
    }

    #[test]
    fn timestamps_in_other_units_and_zones_keep_their_instant() {
        let instant = 1_577_934_245_123_456i64; // 2020-01-02T03:04:05.123456Z
        let zoned = arrow::array::TimestampMillisecondArray::from(vec![instant / 1_000]).with_timezone("+02:00");
        let naive = arrow::array::TimestampNanosecondArray::from(vec![instant * 1_000]);
        for (name, column) in [("zoned", Arc::new(zoned) as ArrayRef), ("naive", Arc::new(naive) as ArrayRef)] {
            let schema = Arc::new(Schema::new(
                std::iter::once(Field::new("timestamp", column.data_type().clone(), false))
                    .chain(["open", "high", "low", "close", "volume"].map(|n| Field::new(n, DataType::Float64, false)))
                    .collect::<Vec<_>>(),
            ));
            let mut columns = vec![column];
            columns.extend((0..5).map(|_| Arc::new(Float64Array::from(vec![1.0])) as ArrayRef));
            let file = TempFile::with_batch(name, &RecordBatch::try_new(schema, columns).unwrap());
            let chunks = file.read(&ReadOptions { symbol: Some(Symbol::new("Z").unwrap()), ..ReadOptions::default() });
            assert!(chunks[0].problems.is_empty(), "{name}: {:?}", chunks[0].problems);
            let expected = if name == "zoned" { instant / 1_000 * 1_000 } else { instant };
            assert_eq!(chunks[0].batch.to_bars()[0].timestamp, Timestamp(expected), "{name}");
        }
    }

    #[test]
    fn adjust_scales_rows_and_reports_missing_adjusted_closes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Date", DataType::Utf8, false),
            Field::new("open", DataType::Float64, false),
            Field::new("high", DataType::Float64, false),
            Field::new("low", DataType::Float64, false),
            Field::new("close", DataType::Float64, false),
            Field::new("volume", DataType::Float64, false),
            Field::new("Adj Close", DataType::Float64, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["2020-01-01", "2020-01-02", "2020-01-03"])),
            Arc::new(Float64Array::from(vec![2.0; 3])),
            Arc::new(Float64Array::from(vec![4.0; 3])),
            Arc::new(Float64Array::from(vec![1.0; 3])),
            Arc::new(Float64Array::from(vec![2.0; 3])),
            Arc::new(Float64Array::from(vec![100.0; 3])),
            Arc::new(Float64Array::from(vec![Some(1.0), None, Some(0.0)])),
        ];
        let file = TempFile::with_batch("adjust", &RecordBatch::try_new(schema, columns).unwrap());
        let symbol = Some(Symbol::new("A").unwrap());
        let chunks = file.read(&ReadOptions { symbol: symbol.clone(), adjust: true, ..ReadOptions::default() });
        let problems: Vec<(u64, Option<&str>)> =
            chunks[0].problems.iter().map(|problem| (problem.location.number, problem.column)).collect();
        assert_eq!(problems, vec![(2, Some("adj_close")), (3, Some("adj_close"))]);
        let bars = chunks[0].batch.to_bars();
        assert_eq!(
            (bars[0].open, bars[0].high, bars[0].low, bars[0].close, bars[0].volume),
            (1.0, 2.0, 0.5, 1.0, 200.0)
        );
        let plain = file.read(&ReadOptions { symbol, ..ReadOptions::default() });
        assert!(plain[0].problems.is_empty(), "{:?}", plain[0].problems);
        assert_eq!(plain[0].ignored_columns, vec!["Adj Close".to_string()]);
        assert_eq!(plain[0].batch.to_bars()[0].close, 2.0);

        let no_column = TempFile::with_batch("no-adjust", BarBatch::from_bars(&[bar("A", 0)]).record_batch());
        let chunks = no_column.read(&ReadOptions { adjust: true, ..ReadOptions::default() });
        assert!(chunks[0].problems[0].whole_file);
        assert!(chunks[0].problems[0].message.starts_with("--adjust needs an adjusted close column"));
    }

    #[test]
    fn problems_are_reported_by_row_number() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("timestamp", DataType::Utf8, true),
            Field::new("open", DataType::Float64, true),
            Field::new("high", DataType::Utf8, true),
            Field::new("low", DataType::Float64, false),
            Field::new("close", DataType::Float64, false),
            Field::new("volume", DataType::Float64, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("2020-01-01"), Some("2020-01-02"), Some("someday"), None])),
            Arc::new(Float64Array::from(vec![Some(1.0), None, Some(1.0), Some(1.0)])),
            Arc::new(StringArray::from(vec![Some("2"), Some("2"), Some("2"), Some("high")])),
            Arc::new(Float64Array::from(vec![0.5; 4])),
            Arc::new(Float64Array::from(vec![1.5; 4])),
            Arc::new(Float64Array::from(vec![10.0; 4])),
        ];
        let file = TempFile::with_batch("problems", &RecordBatch::try_new(schema, columns).unwrap());
        let chunks = file.read(&ReadOptions { symbol: Some(Symbol::new("XYZ").unwrap()), ..ReadOptions::default() });
        let problems: Vec<(u64, Option<&str>, &str)> = chunks[0]
            .problems
            .iter()
            .map(|problem| (problem.location.number, problem.column, problem.message.as_str()))
            .collect();
        assert_eq!(
            problems,
            vec![
                (2, Some("open"), "value is missing"),
                (3, Some("timestamp"), problems[1].2),
                (4, Some("timestamp"), "value is missing"),
                (4, Some("high"), "\"high\" is not a number"),
            ]
        );
        assert!(problems[1].2.starts_with("\"someday\" is not a timestamp"), "{}", problems[1].2);
        assert_eq!((chunks[0].rows, chunks[0].numbers.as_slice()), (4, &[1][..]));
    }

    #[test]
    fn damaged_files_the_parquet_crate_panics_on_are_one_whole_file_problem() {
        // Each file once made the `parquet` crate panic (found by tests/no_panic.rs).
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/parquet");
        let symbol = Symbol::new("AAPL").unwrap();
        for (name, symbol) in [
            ("rows1-dictionary-page-missing", None),
            ("symbol-rows1-negative-column-chunk-offset", Some(symbol.clone())),
            ("hive-rows1-definition-levels-past-buffer", Some(symbol.clone())),
        ] {
            let file = File::open(corpus.join(format!("{name}.parquet"))).unwrap();
            let options = ReadOptions { chunk_rows: 1, ..ReadOptions::default() };
            let chunks: Vec<Chunk> = match symbol {
                // A file of a `symbol=AAPL` partition, as `hive::file` reads it.
                Some(symbol) if name.starts_with("hive-") => parquet_with_path_symbol(file, symbol, &options).collect(),
                symbol => parquet(file, &ReadOptions { symbol, ..options }).collect(),
            };
            let problem = chunks.iter().flat_map(|chunk| &chunk.problems).find(|problem| problem.whole_file);
            let message = problem.map(|problem| problem.message.as_str()).unwrap_or_default();
            assert!(message.contains("the Parquet decoder failed on damaged data"), "{name}: {message:?}");
        }
    }

    #[test]
    fn unusable_files_are_one_whole_file_problem() {
        let path = std::env::temp_dir().join(format!("strata-formats-{}-text.parquet", std::process::id()));
        std::fs::write(&path, "symbol,timestamp\n").unwrap();
        let file = TempFile(path);
        let chunks = file.read(&ReadOptions::default());
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].problems[0].whole_file);
        assert!(chunks[0].problems[0].message.starts_with("not a readable Parquet file"), "{:?}", chunks[0].problems);

        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Int64, false),
            Field::new("timestamp", DataType::Float64, false),
        ]));
        let columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1])), Arc::new(Float64Array::from(vec![1.0]))];
        let file = TempFile::with_batch("types", &RecordBatch::try_new(schema, columns).unwrap());
        let chunks = file.read(&ReadOptions::default());
        assert!(chunks[0].problems[0].message.starts_with("missing columns open"), "{:?}", chunks[0].problems);
    }
}
