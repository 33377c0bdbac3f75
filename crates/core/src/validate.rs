//! Row validation run by every adapter before it writes.
//!
//! A batch is written whole or not at all: any invalid row rejects the batch,
//! and the report lists every bad row (index, column, reason), not just the first.
//!
//! Rules: symbol per [`crate::bar::check_symbol`]; timestamp in
//! [1900-01-01, 2200-01-01); open, high, low, close finite and > 0;
//! low <= min(open, close); high >= max(open, close); volume finite and >= 0
//! (zero-volume bars are real); floats normal (no subnormals, so the digest's
//! bit encoding is simple in SQL); vwap, when present, finite and within
//! [low, high]; trade_count, when present, >= 0; no (symbol, timestamp) twice
//! in one batch (the winner would be ambiguous).

use std::collections::HashMap;
use std::fmt;

use arrow_array::Array;

use crate::bar::{MAX_TIMESTAMP, MIN_TIMESTAMP, Timestamp, check_symbol};
use crate::schema::BarColumns;

/// How many row errors `Display` prints before summarising the rest.
const DISPLAY_LIMIT: usize = 20;

/// One reason one row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Zero-based row index within the batch.
    pub row: usize,
    /// The column at fault.
    pub column: &'static str,
    /// Why, in words.
    pub reason: String,
    /// For a duplicate key, the row where the key first appeared.
    pub first_row: Option<usize>,
}

/// Every problem found in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationReport {
    /// Rows in the batch.
    pub total_rows: usize,
    /// Every error, ordered by row.
    pub errors: Vec<RowError>,
}

impl ValidationReport {
    /// Distinct bad row indices, ascending.
    pub fn bad_rows(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = self.errors.iter().map(|e| e.row).collect();
        rows.dedup();
        rows
    }

    /// Re-labels row indices, e.g. to file line numbers: `map(row)` gives the new index.
    pub fn map_rows(mut self, map: impl Fn(usize) -> usize) -> Self {
        for error in &mut self.errors {
            error.row = map(error.row);
            error.first_row = error.first_row.map(&map);
        }
        self
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bad = self.bad_rows().len();
        write!(f, "{bad} of {} rows are invalid; nothing was written", self.total_rows)?;
        for error in self.errors.iter().take(DISPLAY_LIMIT) {
            write!(f, "\n  row {}, column {}: {}", error.row, error.column, error.reason)?;
            if let Some(first) = error.first_row {
                write!(f, " (first in row {first})")?;
            }
        }
        if self.errors.len() > DISPLAY_LIMIT {
            write!(f, "\n  ... and {} more", self.errors.len() - DISPLAY_LIMIT)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationReport {}

/// Reports nulls in required columns (used while building a batch).
pub(crate) fn null_errors(column: &'static str, array: &dyn Array, errors: &mut Vec<RowError>) {
    if array.null_count() == 0 {
        return;
    }
    for row in (0..array.len()).filter(|i| array.is_null(*i)) {
        errors.push(RowError { row, column, reason: "value is missing".into(), first_row: None });
    }
}

/// Validates every row of the columns; `Ok` when all are valid.
pub fn validate_columns(c: &BarColumns<'_>) -> Result<(), ValidationReport> {
    let rows = c.symbol.len();
    let mut errors = Vec::new();
    // Keys strictly increasing in (symbol, timestamp) order, as files and
    // generators give them, are unique: no map of every key is needed (it
    // was a fifth of an efs write).
    let key = |row: usize| (c.symbol.value(row), c.timestamp.value(row));
    let increasing = (1..rows).all(|row| key(row - 1) < key(row));
    let mut seen: HashMap<(&str, i64), usize> = HashMap::with_capacity(if increasing { 0 } else { rows });
    for row in 0..rows {
        let symbol = c.symbol.value(row);
        let timestamp = Timestamp(c.timestamp.value(row));
        let first = if increasing { row } else { *seen.entry((symbol, timestamp.micros())).or_insert(row) };
        if first != row {
            let reason = format!("({symbol}, {timestamp}) appears more than once");
            errors.push(RowError { row, column: "timestamp", reason, first_row: Some(first) });
        }
        let mut fail =
            |column: &'static str, reason: String| errors.push(RowError { row, column, reason, first_row: None });
        if let Err(reason) = check_symbol(symbol) {
            fail("symbol", reason);
        }
        if timestamp < MIN_TIMESTAMP || timestamp >= MAX_TIMESTAMP {
            fail("timestamp", format!("{timestamp} is outside [{MIN_TIMESTAMP}, {MAX_TIMESTAMP})"));
        }
        let (open, high, low, close) = (c.open.value(row), c.high.value(row), c.low.value(row), c.close.value(row));
        let mut prices_ok = true;
        for (column, value) in [("open", open), ("high", high), ("low", low), ("close", close)] {
            if !value.is_finite() {
                fail(column, format!("{value} is not a finite number"));
                prices_ok = false;
            } else if value <= 0.0 {
                fail(column, format!("price {value} must be > 0"));
                prices_ok = false;
            } else if !value.is_normal() {
                fail(column, format!("price {value:e} is too small to be a price"));
                prices_ok = false;
            }
        }
        if prices_ok {
            if low > open.min(close) {
                fail("low", format!("low {low} is above min(open, close) {}", open.min(close)));
            }
            if high < open.max(close) {
                fail("high", format!("high {high} is below max(open, close) {}", open.max(close)));
            }
        }
        let volume = c.volume.value(row);
        if !volume.is_finite() {
            fail("volume", format!("{volume} is not a finite number"));
        } else if volume < 0.0 {
            fail("volume", format!("volume {volume} must be >= 0"));
        } else if volume != 0.0 && !volume.is_normal() {
            fail("volume", format!("volume {volume:e} is too small; use 0"));
        }
        if c.vwap.is_valid(row) {
            let vwap = c.vwap.value(row);
            if !vwap.is_finite() {
                fail("vwap", format!("{vwap} is not a finite number"));
            } else if prices_ok && (vwap < low || vwap > high) {
                fail("vwap", format!("vwap {vwap} is outside [low {low}, high {high}]"));
            }
        }
        if c.trade_count.is_valid(row) && c.trade_count.value(row) < 0 {
            fail("trade_count", format!("trade_count {} must be >= 0", c.trade_count.value(row)));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ValidationReport { total_rows: rows, errors }) }
}

/// How many refused bars a [`SourceCheck`] message lists.
pub const SHOWN_PROBLEMS: usize = 20;

/// Checks bars read from a foreign source (the Python system's `ohlcv_bars`)
/// as a write to Strata would ([`crate::BarBatch::validate`]), and that no
/// (symbol, timestamp) repeats across batches (results are ordered by key, so
/// a repeat is adjacent). A refused bar is named by symbol and timestamp:
/// row numbers of a result mean nothing to the user.
#[derive(Debug)]
pub struct SourceCheck {
    /// How messages name the source table.
    table: String,
    /// The key of the last row passed.
    last_key: Option<(String, i64)>,
}

impl SourceCheck {
    /// A check of rows read from `table`.
    pub fn new(table: impl Into<String>) -> Self {
        SourceCheck { table: table.into(), last_key: None }
    }

    /// `batch` when every row may be stored in Strata, else `InvalidInput`
    /// listing the refused bars.
    pub fn check(&mut self, batch: crate::BarBatch) -> crate::Result<crate::BarBatch> {
        if batch.is_empty() {
            return Ok(batch);
        }
        let columns = batch.columns();
        let key = |row: usize| (columns.symbol.value(row), Timestamp(columns.timestamp.value(row)));
        let mut problems = Vec::new();
        if let Some((symbol, micros)) = &self.last_key
            && key(0) == (symbol.as_str(), Timestamp(*micros))
        {
            problems.push(format!("{symbol} at {}: timestamp: the key appears more than once", Timestamp(*micros)));
        }
        if let Err(report) = batch.validate() {
            problems.extend(report.errors.iter().map(|error| {
                let (symbol, timestamp) = key(error.row);
                format!("{symbol} at {timestamp}: {}: {}", error.column, error.reason)
            }));
        }
        if !problems.is_empty() {
            return Err(crate::StoreError::invalid(source_refusal(&self.table, &problems)));
        }
        let (symbol, timestamp) = key(batch.len() - 1);
        self.last_key = Some((symbol.to_string(), timestamp.0));
        Ok(batch)
    }
}

/// The message listing refused bars of `table` (at most [`SHOWN_PROBLEMS`]).
pub fn source_refusal(table: &str, problems: &[String]) -> String {
    let mut message = format!(
        "{table} holds bars Strata refuses to store, so they cannot be read from it; fix or delete them in \
         the source and try again:"
    );
    for problem in problems.iter().take(SHOWN_PROBLEMS) {
        message.push_str("\n  ");
        message.push_str(problem);
    }
    if problems.len() > SHOWN_PROBLEMS {
        message.push_str(&format!("\n  ... and {} more", problems.len() - SHOWN_PROBLEMS));
    }
    message
}

#[cfg(test)]
mod tests {
    use crate::bar::{Bar, Timestamp};
    use crate::schema::BarBatch;

    fn good(micros: i64) -> Bar {
        Bar {
            symbol: "^GSPC".into(),
            timestamp: Timestamp(946_684_800_000_000 + micros),
            open: 10.0,
            high: 12.0,
            low: 9.0,
            close: 11.0,
            volume: 0.0,
            vwap: Some(10.5),
            trade_count: Some(0),
        }
    }

    fn check(mutate: impl Fn(&mut Bar), column: &str) {
        let mut bad = good(1);
        mutate(&mut bad);
        let report = BarBatch::from_bars(&[good(0), bad, good(2)]).validate().unwrap_err();
        assert_eq!(report.bad_rows(), vec![1], "{report}");
        assert_eq!(report.errors[0].column, column, "{report}");
    }

    #[test]
    fn good_rows_pass_including_flat_and_zero_volume_bars() {
        let flat = Bar { open: 0.0672, high: 0.0672, low: 0.0672, close: 0.0672, vwap: None, ..good(3) };
        assert!(BarBatch::from_bars(&[good(0), good(1), flat]).validate().is_ok());
    }

    #[test]
    fn each_rule_names_its_column() {
        check(|b| b.symbol = "x'; DROP TABLE t; --".into(), "symbol");
        check(|b| b.timestamp = Timestamp(i64::MAX), "timestamp");
        check(|b| b.open = f64::NAN, "open");
        check(|b| b.close = -1.0, "close");
        check(|b| b.high = 10.5, "high");
        check(|b| b.low = 10.5, "low");
        check(|b| b.volume = -0.5, "volume");
        check(|b| b.volume = f64::INFINITY, "volume");
        check(|b| b.vwap = Some(13.0), "vwap");
        check(|b| b.trade_count = Some(-1), "trade_count");
        check(|b| b.timestamp = good(0).timestamp, "timestamp");
    }

    #[test]
    fn duplicate_keys_point_at_the_first_row_even_after_relabelling() {
        let report = BarBatch::from_bars(&[good(0), good(1), good(0)]).validate().unwrap_err();
        assert_eq!(report.errors[0].row, 2);
        assert_eq!(report.errors[0].first_row, Some(0));
        let lines = report.map_rows(|row| row + 2);
        assert_eq!((lines.errors[0].row, lines.errors[0].first_row), (4, Some(2)));
        assert!(lines.to_string().contains("(first in row 2)"), "{lines}");
    }

    #[test]
    fn sorted_keys_skip_the_map_and_a_repeat_in_order_is_still_found() {
        assert!(BarBatch::from_bars(&[good(0), good(1), good(2)]).validate().is_ok());
        let report = BarBatch::from_bars(&[good(0), good(1), good(1), good(2)]).validate().unwrap_err();
        assert_eq!((report.errors[0].row, report.errors[0].first_row), (2, Some(1)));
    }

    #[test]
    fn every_bad_row_is_reported() {
        let bars: Vec<Bar> =
            (0..100).map(|i| if i % 10 == 3 { Bar { low: 100.0, ..good(i) } } else { good(i) }).collect();
        let report = BarBatch::from_bars(&bars).validate().unwrap_err();
        assert_eq!(report.bad_rows(), vec![3, 13, 23, 33, 43, 53, 63, 73, 83, 93]);
        assert!(report.to_string().starts_with("10 of 100 rows are invalid"));
    }
}
