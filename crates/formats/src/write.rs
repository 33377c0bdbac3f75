//! Writers: [`BarBatch`]es out as CSV, JSON Lines or Parquet, to any `impl Write`.
//!
//! CSV and JSON Lines print floats with Rust's shortest round-trip `Display`
//! (`877000000`, `0.08388999999999999`) and timestamps as RFC 3339 UTC, so
//! what they write reads back bit for bit. Parquet is written in the
//! canonical bar schema with zstd. Each writer takes its destination as is:
//! wrap files and stdout in a `BufWriter`. `finish` flushes (Parquet: writes
//! the footer) and gives the destination back.

use std::fmt;
use std::io::Write;

use arrow::array::Array;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use strata_core::schema::COLUMNS;
use strata_core::{BarBatch, Timestamp, bar_schema};

use crate::error::FormatError;
use crate::format::BarFileFormat;

/// CSV with the header `symbol,timestamp,open,high,low,close,volume,vwap,trade_count`
/// (written at once, so even no bars give a header), one line per bar,
/// empty fields for missing vwap and trade_count.
pub struct CsvWriter<W: Write> {
    out: W,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header to `out`.
    pub fn new(mut out: W) -> Result<Self, FormatError> {
        writeln!(out, "{}", COLUMNS.join(","))?;
        Ok(CsvWriter { out })
    }

    /// Writes every row of `batch`.
    pub fn write(&mut self, batch: &BarBatch) -> Result<(), FormatError> {
        let columns = batch.columns();
        let out = &mut self.out;
        for row in 0..batch.len() {
            write_csv_text(out, columns.symbol.value(row))?;
            write!(
                out,
                ",{},{},{},{},{},{},",
                Timestamp(columns.timestamp.value(row)),
                columns.open.value(row),
                columns.high.value(row),
                columns.low.value(row),
                columns.close.value(row),
                columns.volume.value(row)
            )?;
            if columns.vwap.is_valid(row) {
                write!(out, "{}", columns.vwap.value(row))?;
            }
            out.write_all(b",")?;
            if columns.trade_count.is_valid(row) {
                write!(out, "{}", columns.trade_count.value(row))?;
            }
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flushes and returns the destination.
    pub fn finish(mut self) -> Result<W, FormatError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a CSV field, quoted only when it has to be. Valid symbols never
/// need quotes (they cannot contain commas, quotes or line breaks).
fn write_csv_text(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    if !text.contains([',', '"', '\n', '\r']) {
        return out.write_all(text.as_bytes());
    }
    out.write_all(b"\"")?;
    out.write_all(text.replace('"', "\"\"").as_bytes())?;
    out.write_all(b"\"")
}

/// JSON Lines: one object per bar, keys in the order of the canonical
/// columns, `null` for a missing vwap or trade_count and for any float that
/// is not finite.
pub struct JsonLinesWriter<W: Write> {
    out: W,
}

impl<W: Write> JsonLinesWriter<W> {
    /// A writer to `out` (JSON Lines has no header).
    pub fn new(out: W) -> Result<Self, FormatError> {
        Ok(JsonLinesWriter { out })
    }

    /// Writes every row of `batch`.
    pub fn write(&mut self, batch: &BarBatch) -> Result<(), FormatError> {
        let columns = batch.columns();
        let out = &mut self.out;
        for row in 0..batch.len() {
            out.write_all(b"{\"symbol\":")?;
            write_json_string(out, columns.symbol.value(row))?;
            write!(out, ",\"timestamp\":\"{}\"", Timestamp(columns.timestamp.value(row)))?;
            let values = [
                ("open", columns.open.value(row)),
                ("high", columns.high.value(row)),
                ("low", columns.low.value(row)),
                ("close", columns.close.value(row)),
                ("volume", columns.volume.value(row)),
            ];
            for (name, value) in values {
                write!(out, ",\"{name}\":")?;
                write_json_number(out, value)?;
            }
            out.write_all(b",\"vwap\":")?;
            if columns.vwap.is_valid(row) {
                write_json_number(out, columns.vwap.value(row))?;
            } else {
                out.write_all(b"null")?;
            }
            out.write_all(b",\"trade_count\":")?;
            if columns.trade_count.is_valid(row) {
                write!(out, "{}", columns.trade_count.value(row))?;
            } else {
                out.write_all(b"null")?;
            }
            out.write_all(b"}\n")?;
        }
        Ok(())
    }

    /// Flushes and returns the destination.
    pub fn finish(mut self) -> Result<W, FormatError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a float as a JSON number (shortest round trip), or `null` if it is not finite.
fn write_json_number(out: &mut impl Write, value: f64) -> std::io::Result<()> {
    if value.is_finite() { write!(out, "{value}") } else { out.write_all(b"null") }
}

/// Writes a JSON string with the escapes `serde_json` uses: `\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00xx` for other control characters.
fn write_json_string(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(b"\"")?;
    let bytes = text.as_bytes();
    let mut start = 0;
    for (index, byte) in bytes.iter().copied().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.write_all(&bytes[start..index])?;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.write_all(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]])?;
        } else {
            out.write_all(escape)?;
        }
        start = index + 1;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

/// The properties [`ParquetWriter::new`] writes with: zstd at the default
/// level, dictionary encoding for the symbol column only, and parquet's
/// defaults for the rest (page-level statistics, so the column and offset
/// indexes are written). Prices, volumes and timestamps rarely repeat, so a
/// dictionary for them costs more than half of the write (measured by
/// `cargo xtask bench`'s efs section: 2.6x slower encoding) and makes files
/// larger (56.8 MB instead of 45.2 MB for 1M bars).
pub fn parquet_properties() -> parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from("symbol"), true)
}

/// Parquet in the canonical bar schema, zstd-compressed at the default level.
pub struct ParquetWriter<W: Write + Send> {
    /// Boxed: the encoder state is a few hundred bytes, the other writers a pointer.
    writer: Box<ArrowWriter<W>>,
    /// Whether the symbol column is left out (a file of a Hive partition).
    without_symbol: bool,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// Starts a Parquet file on `out`.
    pub fn new(out: W) -> Result<Self, FormatError> {
        Self::with_properties(out, parquet_properties().build())
    }

    /// Starts a Parquet file on `out` with `properties`, usually
    /// [`parquet_properties`] plus a caller's row-group size or key-value
    /// metadata (as `adapter-efs` does for its dataset files).
    pub fn with_properties(out: W, properties: WriterProperties) -> Result<Self, FormatError> {
        let writer = ArrowWriter::try_new(out, bar_schema(), Some(properties))?;
        Ok(ParquetWriter { writer: Box::new(writer), without_symbol: false })
    }

    /// Starts a Parquet file of one `symbol=` partition of a Hive dataset:
    /// the canonical schema without its symbol column
    /// ([`crate::read::hive::partition_schema`]), since the path holds the
    /// symbol (as pyarrow's `write_to_dataset` and pandas' `partition_cols`
    /// write). [`crate::read::hive::with_path_symbol`] restores the column.
    pub fn without_symbol(out: W, properties: WriterProperties) -> Result<Self, FormatError> {
        let writer = ArrowWriter::try_new(out, crate::read::hive::partition_schema(), Some(properties))?;
        Ok(ParquetWriter { writer: Box::new(writer), without_symbol: true })
    }

    /// Writes every row of `batch` (buffered into row groups).
    pub fn write(&mut self, batch: &BarBatch) -> Result<(), FormatError> {
        if self.without_symbol {
            let columns: Vec<usize> = (1..COLUMNS.len()).collect();
            self.writer.write(&batch.record_batch().project(&columns).map_err(parquet::errors::ParquetError::from)?)?;
        } else {
            self.writer.write(batch.record_batch())?;
        }
        Ok(())
    }

    /// Writes the remaining rows and the footer, and returns the destination.
    pub fn finish(self) -> Result<W, FormatError> {
        Ok(self.writer.into_inner()?)
    }
}

/// A writer for any [`BarFileFormat`].
pub enum BarFileWriter<W: Write + Send> {
    /// See [`CsvWriter`].
    Csv(CsvWriter<W>),
    /// See [`JsonLinesWriter`].
    JsonLines(JsonLinesWriter<W>),
    /// See [`ParquetWriter`].
    Parquet(ParquetWriter<W>),
}

impl<W: Write + Send> BarFileWriter<W> {
    /// A writer of `format` to `out`.
    pub fn new(format: BarFileFormat, out: W) -> Result<Self, FormatError> {
        Ok(match format {
            BarFileFormat::Csv => BarFileWriter::Csv(CsvWriter::new(out)?),
            BarFileFormat::JsonLines => BarFileWriter::JsonLines(JsonLinesWriter::new(out)?),
            BarFileFormat::Parquet => BarFileWriter::Parquet(ParquetWriter::new(out)?),
        })
    }

    /// The format being written.
    pub fn format(&self) -> BarFileFormat {
        match self {
            BarFileWriter::Csv(_) => BarFileFormat::Csv,
            BarFileWriter::JsonLines(_) => BarFileFormat::JsonLines,
            BarFileWriter::Parquet(_) => BarFileFormat::Parquet,
        }
    }

    /// Writes every row of `batch`.
    pub fn write(&mut self, batch: &BarBatch) -> Result<(), FormatError> {
        match self {
            BarFileWriter::Csv(writer) => writer.write(batch),
            BarFileWriter::JsonLines(writer) => writer.write(batch),
            BarFileWriter::Parquet(writer) => writer.write(batch),
        }
    }

    /// Finishes the file and returns the destination.
    pub fn finish(self) -> Result<W, FormatError> {
        match self {
            BarFileWriter::Csv(writer) => writer.finish(),
            BarFileWriter::JsonLines(writer) => writer.finish(),
            BarFileWriter::Parquet(writer) => writer.finish(),
        }
    }
}

/// An aligned text table for people: buffers every row as text and prints
/// it on [`TableWriter::finish`], then `(N rows)`. Optional columns (vwap,
/// trade_count) that are empty in every row are left out.
pub struct TableWriter<W: Write> {
    out: W,
    rows: Vec<[String; 9]>,
}

impl<W: Write> TableWriter<W> {
    /// A table that will be printed to `out`.
    pub fn new(out: W) -> Self {
        TableWriter { out, rows: Vec::new() }
    }

    /// Buffers every row of `batch`.
    pub fn write(&mut self, batch: &BarBatch) {
        let c = batch.columns();
        let optional = |valid: bool, text: String| if valid { text } else { String::new() };
        self.rows.extend((0..batch.len()).map(|row| {
            [
                c.symbol.value(row).to_string(),
                Timestamp(c.timestamp.value(row)).to_string(),
                c.open.value(row).to_string(),
                c.high.value(row).to_string(),
                c.low.value(row).to_string(),
                c.close.value(row).to_string(),
                c.volume.value(row).to_string(),
                optional(c.vwap.is_valid(row), c.vwap.value(row).to_string()),
                optional(c.trade_count.is_valid(row), c.trade_count.value(row).to_string()),
            ]
        }));
    }

    /// Rows buffered so far.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Prints the table (nothing when there are no rows) and returns the destination.
    pub fn finish(mut self) -> Result<W, FormatError> {
        if self.rows.is_empty() {
            return Ok(self.out);
        }
        let columns = COLUMNS;
        let shown: Vec<usize> =
            (0..columns.len()).filter(|i| *i < 7 || self.rows.iter().any(|r| !r[*i].is_empty())).collect();
        let header: Vec<&str> = shown.iter().map(|i| columns[*i]).collect();
        let cells: Vec<Vec<String>> =
            self.rows.iter().map(|row| shown.iter().map(|i| row[*i].clone()).collect()).collect();
        for line in strata_core::display::aligned_table(&header, &cells, 2) {
            writeln!(self.out, "{line}")?;
        }
        let count = self.rows.len() as u64;
        let noun = if count == 1 { "row" } else { "rows" };
        writeln!(self.out, "({} {noun})", strata_core::display::group_thousands(count))?;
        Ok(self.out)
    }
}

impl<W: Write> fmt::Debug for TableWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableWriter").field("rows", &self.rows.len()).finish_non_exhaustive()
    }
}

impl<W: Write> fmt::Debug for CsvWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvWriter").finish_non_exhaustive()
    }
}

impl<W: Write> fmt::Debug for JsonLinesWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesWriter").finish_non_exhaustive()
    }
}

impl<W: Write + Send> fmt::Debug for ParquetWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParquetWriter").finish_non_exhaustive()
    }
}

impl<W: Write + Send> fmt::Debug for BarFileWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BarFileWriter").field(&self.format()).finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs::File;

    use parquet::file::reader::{FileReader, SerializedFileReader};
    use strata_core::Bar;

    use super::*;
    use crate::read::{self, ReadOptions};

    fn bars() -> Vec<Bar> {
        vec![
            Bar {
                symbol: "^GSPC".into(),
                timestamp: Timestamp::parse("1999-01-04").unwrap(),
                open: 1229.22998,
                high: 1248.810059,
                low: 1219.099976,
                close: 1228.099976,
                volume: 877_000_000.0,
                vwap: None,
                trade_count: None,
            },
            Bar {
                symbol: "A".into(),
                timestamp: Timestamp(1_577_836_800_000_001),
                open: 0.08388999999999999,
                high: 0.09,
                low: 0.08,
                close: 0.085,
                volume: 11_456_230_000.0,
                vwap: Some(0.0672),
                trade_count: Some(12),
            },
        ]
    }

    fn written(format: BarFileFormat, bars: &[Bar]) -> Vec<u8> {
        let mut writer = BarFileWriter::new(format, Vec::new()).unwrap();
        writer.write(&BarBatch::from_bars(bars)).unwrap();
        writer.write(&BarBatch::empty()).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn csv_is_exact_and_reads_back_bit_for_bit() {
        let text = String::from_utf8(written(BarFileFormat::Csv, &bars())).unwrap();
        assert_eq!(
            text,
            "symbol,timestamp,open,high,low,close,volume,vwap,trade_count\n\
             ^GSPC,1999-01-04T00:00:00Z,1229.22998,1248.810059,1219.099976,1228.099976,877000000,,\n\
             A,2020-01-01T00:00:00.000001Z,0.08388999999999999,0.09,0.08,0.085,11456230000,0.0672,12\n"
        );
        let read: Vec<Bar> =
            read::csv(text.as_bytes(), &ReadOptions::default()).flat_map(|chunk| chunk.batch.to_bars()).collect();
        assert_eq!(read, bars());
    }

    #[test]
    fn csv_quotes_only_what_needs_quotes() {
        let mut out = Vec::new();
        for text in ["AAPL", "a,b", "say \"hi\""] {
            write_csv_text(&mut out, text).unwrap();
            out.push(b'|');
        }
        assert_eq!(String::from_utf8(out).unwrap(), "AAPL|\"a,b\"|\"say \"\"hi\"\"\"|");
    }

    #[test]
    fn an_empty_csv_still_has_its_header() {
        let text = String::from_utf8(written(BarFileFormat::Csv, &[])).unwrap();
        assert_eq!(text, "symbol,timestamp,open,high,low,close,volume,vwap,trade_count\n");
    }

    #[test]
    fn json_lines_are_exact() {
        let mut bars = bars();
        bars[1].close = f64::INFINITY;
        let text = String::from_utf8(written(BarFileFormat::JsonLines, &bars)).unwrap();
        assert_eq!(
            text,
            "{\"symbol\":\"^GSPC\",\"timestamp\":\"1999-01-04T00:00:00Z\",\"open\":1229.22998,\"high\":1248.810059,\
             \"low\":1219.099976,\"close\":1228.099976,\"volume\":877000000,\"vwap\":null,\"trade_count\":null}\n\
             {\"symbol\":\"A\",\"timestamp\":\"2020-01-01T00:00:00.000001Z\",\"open\":0.08388999999999999,\
             \"high\":0.09,\"low\":0.08,\"close\":null,\"volume\":11456230000,\"vwap\":0.0672,\"trade_count\":12}\n"
        );
    }

    #[test]
    fn json_strings_escape_like_serde_json() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é\"");
    }

    #[test]
    fn parquet_is_zstd_in_the_canonical_schema_and_reads_back() {
        let path = std::env::temp_dir().join(format!("strata-formats-{}-written.parquet", std::process::id()));
        let file = ParquetWriter::new(File::create(&path).unwrap()).unwrap();
        let mut writer = BarFileWriter::Parquet(file);
        writer.write(&BarBatch::from_bars(&bars())).unwrap();
        writer.finish().unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let compression = reader.metadata().row_group(0).column(0).compression();
        let read: Vec<Bar> = read::file(&path, BarFileFormat::Parquet, &ReadOptions::default())
            .unwrap()
            .flat_map(|chunk| chunk.batch.to_bars())
            .collect();
        let _ = std::fs::remove_file(&path);
        assert!(matches!(compression, Compression::ZSTD(_)), "{compression:?}");
        assert_eq!(read, bars());
    }
}
