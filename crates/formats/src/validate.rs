//! `CrossFileKeys`: checks chunks as a whole load would see them, so nothing
//! needs writing to find every problem: each (symbol, timestamp) key once
//! across all chunks and files, and every row valid per `BarBatch::validate`.
//!
//! Memory: about 16 bytes per distinct key plus one string per symbol.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use strata_core::Timestamp;

use crate::location::{Location, Locator};
use crate::read::{Chunk, Problem};

/// Every key seen so far, with where it was first seen.
#[derive(Debug, Clone, Default)]
pub struct CrossFileKeys {
    locator: Locator,
    /// Per symbol: timestamp (microseconds) → first location (packed).
    keys: HashMap<String, HashMap<i64, u64>>,
    rows: u64,
}

impl CrossFileKeys {
    /// An empty index; `locator` names the first location in duplicate messages.
    pub fn new(locator: Locator) -> Self {
        CrossFileKeys { locator, keys: HashMap::new(), rows: 0 }
    }

    /// Checks one chunk and remembers its keys. Returns every problem of the
    /// chunk, ordered by location: the reader's, one for each row whose key
    /// was seen before (in this chunk, an earlier chunk or an earlier file;
    /// column `timestamp`, naming the first location), and those of
    /// `BarBatch::validate` for the other rows.
    pub fn check(&mut self, chunk: &Chunk) -> Vec<Problem> {
        self.rows += chunk.rows;
        let mut problems = chunk.problems.clone();
        let columns = chunk.batch.columns();
        // Rows of the batch whose key came earlier, ascending.
        let mut repeated = Vec::new();
        for row in 0..chunk.batch.len() {
            let symbol = columns.symbol.value(row);
            let timestamp = columns.timestamp.value(row);
            let location = chunk.location(row);
            let per_symbol = match self.keys.get_mut(symbol) {
                Some(per_symbol) => per_symbol,
                None => self.keys.entry(symbol.to_string()).or_default(),
            };
            match per_symbol.entry(timestamp) {
                Entry::Occupied(first) => {
                    let first = Location::unpack(*first.get());
                    let message = format!(
                        "({symbol}, {}) appears twice; first at {}",
                        Timestamp(timestamp),
                        self.locator.describe(first)
                    );
                    problems.push(Problem { location, column: Some("timestamp"), message, whole_file: false });
                    repeated.push(row);
                }
                Entry::Vacant(slot) => {
                    slot.insert(location.pack());
                }
            }
        }
        // A repeated row is reported once, as a repeat: the batch check's own
        // duplicate finding, and anything else wrong with it, are left out.
        if let Err(report) = chunk.batch.validate() {
            problems.extend(report.errors.into_iter().filter(|error| repeated.binary_search(&error.row).is_err()).map(
                |error| Problem {
                    location: chunk.location(error.row),
                    column: Some(error.column),
                    message: error.reason,
                    whole_file: false,
                },
            ));
        }
        problems.sort_by_key(|problem| problem.location);
        problems
    }

    /// Data rows checked so far, good or bad.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Distinct symbols among the rows that parsed.
    pub fn symbols(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use strata_core::{Bar, BarBatch};

    use super::*;
    use crate::format::BarFileFormat;

    fn bar(symbol: &str, micros: i64, high: f64) -> Bar {
        Bar {
            symbol: symbol.into(),
            timestamp: Timestamp(1_577_836_800_000_000 + micros),
            open: 1.0,
            high,
            low: 1.0,
            close: 1.0,
            volume: 0.0,
            vwap: None,
            trade_count: None,
        }
    }

    fn chunk(file: u32, numbers: Vec<u64>, bars: &[Bar]) -> Chunk {
        Chunk {
            file,
            rows: bars.len() as u64,
            batch: BarBatch::from_bars(bars),
            numbers,
            problems: Vec::new(),
            ignored_columns: Vec::new(),
        }
    }

    fn keys() -> CrossFileKeys {
        CrossFileKeys::new(Locator::new([
            (PathBuf::from("a.csv"), BarFileFormat::Csv),
            (PathBuf::from("b.parquet"), BarFileFormat::Parquet),
        ]))
    }

    #[test]
    fn duplicates_across_chunks_are_reported_with_the_first_location() {
        let mut keys = keys();
        assert!(keys.check(&chunk(0, vec![2], &[bar("A", 0, 1.0)])).is_empty());
        let problems = keys.check(&chunk(0, vec![3], &[bar("A", 0, 1.0)]));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].location, Location { file: 0, number: 3 });
        assert_eq!(problems[0].column, Some("timestamp"));
        assert_eq!(problems[0].message, "(A, 2020-01-01T00:00:00Z) appears twice; first at a.csv:2");
        let problems = keys.check(&chunk(1, vec![1], &[bar("A", 0, 1.0)]));
        assert!(problems[0].message.ends_with("first at a.csv:2"), "{}", problems[0].message);
        assert_eq!((keys.rows(), keys.symbols()), (3, 1));
    }

    #[test]
    fn a_repeated_row_is_reported_once_and_other_rows_are_validated() {
        let mut keys = keys();
        let bars = [bar("A", 0, 1.0), bar("B", 0, 0.5), bar("A", 0, 0.5), bar("A", 1, 1.0)];
        let problems = keys.check(&chunk(1, vec![1, 2, 3, 4], &bars));
        let found: Vec<(u64, Option<&str>)> = problems.iter().map(|p| (p.location.number, p.column)).collect();
        assert_eq!(found, vec![(2, Some("high")), (3, Some("timestamp"))]);
        assert!(problems[1].message.ends_with("first at b.parquet:row 1"), "{}", problems[1].message);
    }

    #[test]
    fn reader_problems_are_kept_in_location_order() {
        let mut keys = keys();
        let mut with_problem = chunk(0, vec![2, 4], &[bar("A", 0, 1.0), bar("A", 1, 0.5)]);
        with_problem.rows = 3;
        with_problem.problems.push(Problem {
            location: Location { file: 0, number: 3 },
            column: Some("open"),
            message: "\"x\" is not a number".into(),
            whole_file: false,
        });
        let problems = keys.check(&with_problem);
        let numbers: Vec<u64> = problems.iter().map(|p| p.location.number).collect();
        assert_eq!(numbers, vec![3, 4]);
        assert_eq!(keys.rows(), 3);
    }
}
