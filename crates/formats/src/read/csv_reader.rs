//! The CSV reader: any `impl Read` with a header line in, chunks out, every
//! problem at its line (the header is line 1; a quoted field spanning lines
//! counts them all).

use std::io::{self, Read};

use strata_core::{Symbol, Timestamp};

use super::columns::ColumnMap;
use super::{Chunk, ChunkBuilder, ReadOptions, RowParts, RowProblems, adjust_row, parse_count, parse_float};

/// Reads CSV with a header line from `input` (buffer it: the reader reads in
/// small pieces). Fields are trimmed; rows with the wrong number of fields,
/// unparsable values and invalid UTF-8 are problems of their line. A header
/// without the needed columns, or text the CSV parser cannot continue past,
/// is a whole-file problem.
pub fn csv<R: Read>(input: R, options: &ReadOptions) -> CsvChunks<R> {
    let input = LfLineEnds { inner: input, after_cr: false };
    // Only the header is trimmed by the parser: its per-record trim copies every record into a
    // new allocation (20% of reading a 1M-row file); fields are trimmed where they are read.
    let mut reader = ::csv::ReaderBuilder::new().flexible(true).trim(::csv::Trim::Headers).from_reader(input);
    let mut chunk = ChunkBuilder::new(options);
    let map = match reader.headers() {
        Ok(header) => match ColumnMap::from_names(header.iter(), options.symbol.is_some(), options.adjust) {
            Ok(map) => Some(map),
            Err(message) => {
                chunk.file_problem(1, message);
                None
            }
        },
        Err(error) => {
            chunk.file_problem(1, format!("cannot read the header: {error}"));
            None
        }
    };
    if let Some(map) = &map {
        chunk.ignored_columns.clone_from(&map.ignored);
    }
    CsvChunks {
        reader,
        map,
        symbol: options.symbol.clone(),
        chunk_rows: options.chunk_rows.max(1) as u64,
        record: ::csv::StringRecord::new(),
        chunk,
        finished: false,
    }
}

/// The chunks of a CSV input, from [`csv()`].
#[derive(Debug)]
pub struct CsvChunks<R> {
    reader: ::csv::Reader<LfLineEnds<R>>,
    /// `None` when the header is unusable: the only chunk is its problem.
    map: Option<ColumnMap>,
    symbol: Option<Symbol>,
    chunk_rows: u64,
    record: ::csv::StringRecord,
    chunk: ChunkBuilder,
    finished: bool,
}

impl<R: Read> Iterator for CsvChunks<R> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        if self.finished {
            return None;
        }
        if let Some(map) = &self.map {
            loop {
                match self.reader.read_record(&mut self.record) {
                    Ok(false) => break,
                    Ok(true) => {
                        let line = self.record.position().map_or(0, ::csv::Position::line);
                        self.chunk.push(line, parse_row(&self.record, map, self.symbol.as_ref()));
                    }
                    Err(error) => {
                        let line = error.position().map_or(0, ::csv::Position::line);
                        if let ::csv::ErrorKind::Utf8 { err, .. } = error.kind() {
                            let message = format!("field {} is not valid UTF-8", err.field() + 1);
                            self.chunk.push(line, Err(vec![(None, message)]));
                        } else {
                            let line = line.max(self.reader.position().line());
                            self.chunk.file_problem(line, format!("cannot read further: {error}"));
                            break;
                        }
                    }
                }
                if self.chunk.rows >= self.chunk_rows {
                    return Some(self.chunk.take());
                }
            }
        }
        self.finished = true;
        self.chunk.take_unless_empty()
    }
}

/// `inner` with CRLF and lone CR line ends read as LF. The `csv` crate counts
/// lines by `\n` and starts the record after a CRLF before that `\n`, so
/// without this every line of a CRLF file is reported one too low and every
/// line of a CR file as line 1. (Inside a quoted field, CRLF becomes LF too.)
#[derive(Debug)]
struct LfLineEnds<R> {
    inner: R,
    /// The last byte read was a CR, already handed out as LF.
    after_cr: bool,
}

impl<R: Read> Read for LfLineEnds<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            let read = self.inner.read(buffer)?;
            if read == 0 {
                return Ok(0);
            }
            // Most files have LF line ends: no CR, nothing to change (`contains` is a memchr).
            if !self.after_cr && !buffer[..read].contains(&b'\r') {
                return Ok(read);
            }
            let mut kept = 0;
            for index in 0..read {
                let byte = buffer[index];
                let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
                if byte == b'\n' && after_cr {
                    continue;
                }
                buffer[kept] = if byte == b'\r' { b'\n' } else { byte };
                kept += 1;
            }
            // Only the LF of a CRLF split across reads: read on.
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

/// Parses one CSV record, or lists everything wrong with it.
fn parse_row<'a>(
    record: &'a ::csv::StringRecord,
    map: &ColumnMap,
    fixed_symbol: Option<&'a Symbol>,
) -> Result<RowParts<'a>, RowProblems> {
    if record.len() != map.width {
        return Err(vec![(None, format!("has {} fields; the header has {}", record.len(), map.width))]);
    }
    let mut problems = RowProblems::new();
    let field = move |index: usize| record.get(index).unwrap_or_default().trim();
    let symbol = match (map.symbol, fixed_symbol) {
        (Some(index), _) => field(index),
        (None, Some(symbol)) => symbol.as_str(),
        (None, None) => "",
    };
    let timestamp = match field(map.timestamp) {
        "" => {
            problems.push((Some("timestamp"), "value is empty".into()));
            None
        }
        text => Timestamp::parse(text).map_err(|message| problems.push((Some("timestamp"), message))).ok(),
    };
    let mut number = |column: &'static str, index: usize| -> Option<f64> {
        parse_float(field(index)).map_err(|message| problems.push((Some(column), message))).ok()
    };
    let open = number("open", map.open);
    let high = number("high", map.high);
    let low = number("low", map.low);
    let close = number("close", map.close);
    let volume = number("volume", map.volume);
    let vwap = match map.vwap.map(field) {
        None | Some("") => Some(None),
        Some(text) => parse_float(text).map(Some).map_err(|message| problems.push((Some("vwap"), message))).ok(),
    };
    let trade_count = match map.trade_count.map(field) {
        None | Some("") => Some(None),
        Some(text) => parse_count(text).map(Some).map_err(|message| problems.push((Some("trade_count"), message))).ok(),
    };
    let adj_close = match map.adj_close.map(field) {
        None => Some(None),
        Some("") => {
            problems.push((Some("adj_close"), "value is empty; --adjust needs an adjusted close on every row".into()));
            None
        }
        Some(text) => parse_float(text).map(Some).map_err(|message| problems.push((Some("adj_close"), message))).ok(),
    };
    match (timestamp, open, high, low, close, volume, vwap, trade_count, adj_close) {
        (
            Some(timestamp),
            Some(open),
            Some(high),
            Some(low),
            Some(close),
            Some(volume),
            Some(mut vwap),
            Some(trade_count),
            Some(adj_close),
        ) if problems.is_empty() => {
            let mut values = [open, high, low, close, volume];
            if let Some(adj_close) = adj_close {
                adjust_row(&mut values, &mut vwap, adj_close)
                    .map_err(|(column, message)| vec![(Some(column), message)])?;
            }
            Ok(RowParts { symbol, timestamp, values, vwap, trade_count })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strata_core::Bar;

    use super::*;

    /// What reading one CSV text produced: chunk sizes, problems as (line, column), bars.
    type ReadResult = (Vec<u64>, Vec<(u64, Option<&'static str>)>, Vec<Bar>);

    fn read_text(text: &str, symbol: Option<&str>, chunk_rows: usize) -> ReadResult {
        read_with(text, symbol, chunk_rows, false)
    }

    fn read_with(text: &str, symbol: Option<&str>, chunk_rows: usize, adjust: bool) -> ReadResult {
        let options = ReadOptions { symbol: symbol.map(|s| Symbol::new(s).unwrap()), chunk_rows, file: 0, adjust };
        let (mut sizes, mut problems, mut bars) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in csv(text.as_bytes(), &options) {
            assert_eq!(chunk.numbers.len(), chunk.batch.len());
            sizes.push(chunk.rows);
            problems.extend(chunk.problems.iter().map(|p| (p.location.number, p.column)));
            bars.extend(chunk.batch.to_bars());
        }
        (sizes, problems, bars)
    }

    #[test]
    fn csv_line_numbers_count_the_header_as_line_one() {
        let text = "symbol,timestamp,open,high,low,close,volume\n\
                    A,2020-01-01,1,2,0.5,1.5,10\n\
                    A,2020-01-02,x,2,0.5,1.5,10\n\
                    A,2020-01-03,1,2,0.5,1.5\n\
                    \"A\",\"2020-01-04\",1,2,0.5,1.5,\"1\n0\"\n\
                    A,not a date,1,2,0.5,1.5,\n";
        let (sizes, problems, bars) = read_text(text, None, 2);
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(
            problems,
            vec![(3, Some("open")), (4, None), (5, Some("volume")), (7, Some("timestamp")), (7, Some("volume"))]
        );
        assert_eq!(bars.len(), 1);
    }

    #[test]
    fn csv_numbers_parse_exactly_like_rust() {
        let text = "Date,Open,High,Low,Close,Volume,vwap,trade_count\n\
                    1999-01-04,1229.22998,1248.810059,1219.099976,1228.099976,877000000,,\n\
                    1999-01-05,0.08388999999999999,0.09,0.08,0.085,0.5,0.085,12\n";
        let (_, problems, bars) = read_text(text, Some("^GSPC"), 100);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(bars[0].symbol, "^GSPC");
        assert_eq!(bars[0].open.to_bits(), "1229.22998".parse::<f64>().unwrap().to_bits());
        assert_eq!(bars[0].volume, 877_000_000.0);
        assert_eq!((bars[0].vwap, bars[0].trade_count), (None, None));
        assert_eq!(bars[1].open.to_bits(), 0.08388999999999999f64.to_bits());
        assert_eq!((bars[1].vwap, bars[1].trade_count), (Some(0.085), Some(12)));
    }

    #[test]
    fn rows_carry_their_line_numbers_and_ignored_columns_come_first() {
        let text = "Date,Open,High,Low,Close,Adj Close,Volume\n\
                    2020-01-01,1,2,0.5,1.5,1.4,10\n\
                    2020-01-02,1,2,0.5,1.5,1.4,x\n\
                    2020-01-03,1,2,0.5,1.5,1.4,10\n";
        let options = ReadOptions { symbol: Some(Symbol::new("A").unwrap()), chunk_rows: 2, file: 4, adjust: false };
        let chunks: Vec<Chunk> = csv(text.as_bytes(), &options).collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].ignored_columns, vec!["Adj Close".to_string()]);
        assert!(chunks[1].ignored_columns.is_empty());
        assert_eq!((chunks[0].numbers.as_slice(), chunks[1].numbers.as_slice()), (&[2][..], &[4][..]));
        assert_eq!(chunks[1].location(0), crate::Location { file: 4, number: 4 });
    }

    #[test]
    fn adjust_scales_each_row_by_its_adjusted_close() {
        // AAPL around its 2:1 split of 2005-02-28, as Quandl WIKI has it.
        let text = "Ticker,Date,Open,High,Low,Close,Volume,Adj Close\n\
                    AAPL,2005-02-25,89.62,89.91,88.19,88.99,16348400,5.7182276557615\n\
                    AAPL,2005-02-28,44.68,45.14,43.96,44.86,11635900,5.7651352430039\n";
        let (_, problems, raw) = read_with(text, None, 100, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((raw[0].close, raw[1].open), (88.99, 44.68));
        let (_, problems, bars) = read_with(text, None, 100, true);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((bars[0].close, bars[1].close), (5.7182276557615, 5.7651352430039));
        let factor = 5.7651352430039 / 44.86;
        assert!((bars[1].open - 44.68 * factor).abs() < 1e-12, "{:?}", bars[1]);
        assert!((bars[1].volume - 11_635_900.0 / factor).abs() < 1e-3, "{:?}", bars[1]);
        let overnight = bars[1].open / bars[0].close;
        assert!((0.95..1.05).contains(&overnight), "{overnight}");
        assert_eq!(bars[1].trade_count, None);
    }

    #[test]
    fn adjust_needs_the_column_and_a_good_value_on_every_row() {
        let plain = "symbol,timestamp,open,high,low,close,volume\nA,2020-01-01,1,2,0.5,1.5,10\n";
        let chunks: Vec<Chunk> =
            csv(plain.as_bytes(), &ReadOptions { adjust: true, ..ReadOptions::default() }).collect();
        assert_eq!(chunks.len(), 1);
        let problem = &chunks[0].problems[0];
        assert!(problem.whole_file);
        assert_eq!(problem.location.number, 1);
        assert!(problem.message.contains("adj_close, adj close"), "{}", problem.message);
        let text = "symbol,timestamp,open,high,low,close,volume,adj_close\n\
                    A,2020-01-01,1,2,0.5,1.5,10,0.75\n\
                    A,2020-01-02,1,2,0.5,1.5,10,\n\
                    A,2020-01-03,1,2,0.5,1.5,10,-1\n\
                    A,2020-01-04,1,2,0.5,1.5,10,inf\n\
                    A,2020-01-05,1,2,0.5,1.5,10,x\n\
                    A,2020-01-06,1,2,0.5,1.5,10,0.75\n";
        let (_, problems, bars) = read_with(text, None, 100, true);
        assert_eq!(
            problems,
            vec![(3, Some("adj_close")), (4, Some("adj_close")), (5, Some("adj_close")), (6, Some("adj_close"))]
        );
        assert_eq!(bars.len(), 2);
        assert_eq!((bars[0].open, bars[0].high, bars[0].close, bars[0].volume), (0.5, 1.0, 0.75, 20.0));
        // Without --adjust the column is ignored, whatever it holds.
        let (_, problems, bars) = read_with(text, None, 100, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((bars.len(), bars[0].close), (6, 1.5));
    }

    #[test]
    fn an_unusable_header_is_one_whole_file_problem_at_line_one() {
        let chunks: Vec<Chunk> = csv("date,open\n2020-01-01,1\n".as_bytes(), &ReadOptions::default()).collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].rows, 0);
        let problem = &chunks[0].problems[0];
        assert!(problem.whole_file);
        assert_eq!(problem.location.number, 1);
        assert!(problem.message.starts_with("missing columns high, low, close, volume"), "{}", problem.message);
    }

    #[test]
    fn invalid_utf8_is_a_problem_of_its_line_only() {
        let mut text = b"symbol,timestamp,open,high,low,close,volume\nA,2020-01-01,1,2,0.5,1.5,10\n".to_vec();
        text.extend_from_slice(b"A,2020-01-02,1,2,0.5,1.5,1\xff\nA,2020-01-03,1,2,0.5,1.5,10\n");
        let chunks: Vec<Chunk> = csv(text.as_slice(), &ReadOptions::default()).collect();
        assert_eq!(chunks[0].rows, 3);
        assert_eq!(chunks[0].numbers, vec![2, 4]);
        assert_eq!(chunks[0].problems[0].message, "field 7 is not valid UTF-8");
        assert_eq!(chunks[0].problems[0].location.number, 3);
    }

    #[test]
    fn headers_and_fields_are_trimmed_quoted_or_not() {
        let tight = "symbol,timestamp,open,high,low,close,volume,vwap\nA,2020-01-02,1,2,0.5,1.5,10,\n";
        let loose =
            " symbol , timestamp,open ,high,low,close,volume, vwap \n  A ,\"2020-01-02 \",1 ,\" 2\",0.5,1.5 , 10 , \n";
        let expected = read_text(tight, None, 100);
        assert_eq!(expected.2.len(), 1, "{expected:?}");
        assert_eq!(read_text(loose, None, 100), expected);
    }

    #[test]
    fn crlf_and_cr_files_count_lines_like_lf_files() {
        let lf = "symbol,timestamp,open,high,low,close,volume\nA,2020-01-02,1,2,0.5,1.5,10\n\
                  A,2020-01-03,x,2,0.5,1.5,10\nA,2020-01-04,1,2,0.5,1.5,10\n";
        let expected = read_text(lf, None, 100);
        assert_eq!(expected.1, vec![(3, Some("open"))]);
        for newline in ["\r\n", "\r"] {
            assert_eq!(read_text(&lf.replace('\n', newline), None, 100), expected, "{newline:?}");
        }
        // A CRLF split across reads is one line end.
        struct OneByteReads<'a>(&'a [u8]);
        impl Read for OneByteReads<'_> {
            fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
                match (self.0.split_first(), buffer.first_mut()) {
                    (Some((byte, rest)), Some(slot)) => {
                        *slot = *byte;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let crlf = lf.replace('\n', "\r\n");
        let chunks: Vec<Chunk> = csv(OneByteReads(crlf.as_bytes()), &ReadOptions::default()).collect();
        assert_eq!(chunks[0].numbers, vec![2, 4]);
    }

    #[test]
    fn an_empty_input_yields_its_problem_and_a_header_only_input_nothing() {
        let empty: Vec<Chunk> = csv(&b""[..], &ReadOptions::default()).collect();
        assert!(empty[0].problems[0].message.contains("empty"), "{:?}", empty[0].problems);
        let header_only = "symbol,timestamp,open,high,low,close,volume\n";
        assert_eq!(csv(header_only.as_bytes(), &ReadOptions::default()).count(), 0);
    }
}
