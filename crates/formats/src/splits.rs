//! Overnight moves that look like unadjusted stock splits.
//!
//! A vendor's raw prices drop to half at a 2:1 split; a series that is not
//! adjusted for it shows a 50% "crash" that a strategy then trades on.
//! [`split_guess`] is the test for one overnight move (the open over the
//! previous bar's close), [`SplitScan`] runs it over the chunks of a read,
//! per symbol, in the order the rows come.
//!
//! The test: the ratio is within [`SPLIT_TOLERANCE`] of a common split ratio
//! (`M/N` for an `N:M` split: 1/2 for 2:1, 2/3 for 3:2, 2 for a 1:2 reverse
//! split, ...) and the move is big (the larger of ratio and 1/ratio at least
//! [`MIN_SPLIT_MOVE`]). Real gaps of that size are rare, and the note is only
//! a note: nothing is refused.

use std::collections::HashMap;
use std::fmt;

use strata_core::{BarBatch, Timestamp};

/// How close (relative) an overnight ratio must be to a split ratio.
pub const SPLIT_TOLERANCE: f64 = 0.05;

/// The smallest move that can be a split: `max(ratio, 1 / ratio)`, so a 40%
/// jump up or a fall to 1/1.4 of the previous close.
pub const MIN_SPLIT_MOVE: f64 = 1.4;

/// Common splits as (new shares, old shares): N:M multiplies the share count
/// by N/M and the price by M/N. Reverse splits are listed as 1:N and 2:3.
const SPLITS: [(u32, u32); 18] = [
    (2, 1),
    (3, 1),
    (3, 2),
    (4, 1),
    (5, 1),
    (5, 2),
    (7, 1),
    (8, 1),
    (10, 1),
    (20, 1),
    (1, 2),
    (1, 3),
    (2, 3),
    (1, 4),
    (1, 5),
    (1, 8),
    (1, 10),
    (1, 20),
];

/// A split an overnight move matches: `new`:`old` shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitRatio {
    /// Shares after the split, per `old` shares before it.
    pub new: u32,
    /// Shares before the split.
    pub old: u32,
}

impl SplitRatio {
    /// The price ratio the split causes: `old / new`.
    pub fn price_ratio(self) -> f64 {
        f64::from(self.old) / f64::from(self.new)
    }

    /// A reverse split (fewer shares, higher price).
    pub fn is_reverse(self) -> bool {
        self.new < self.old
    }
}

impl fmt::Display for SplitRatio {
    /// `2:1 split` or `1:10 reverse split`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_reverse() { "reverse split" } else { "split" };
        write!(f, "{}:{} {kind}", self.new, self.old)
    }
}

/// The split that an overnight move from `previous_close` to `open` looks
/// like, if any (see the module docs). Non-positive or non-finite prices
/// give `None`.
pub fn split_guess(previous_close: f64, open: f64) -> Option<SplitRatio> {
    if !(previous_close > 0.0 && open > 0.0 && previous_close.is_finite() && open.is_finite()) {
        return None;
    }
    let ratio = open / previous_close;
    if ratio.max(1.0 / ratio) < MIN_SPLIT_MOVE {
        return None;
    }
    SPLITS
        .iter()
        .map(|&(new, old)| SplitRatio { new, old })
        .map(|split| (split, (ratio / split.price_ratio() - 1.0).abs()))
        .filter(|&(_, distance)| distance <= SPLIT_TOLERANCE)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(split, _)| split)
}

/// One overnight move that looks like an unadjusted split.
#[derive(Debug, Clone, PartialEq)]
pub struct SuspectedSplit {
    /// The symbol.
    pub symbol: String,
    /// The bar whose open made the move.
    pub timestamp: Timestamp,
    /// Its open over the previous bar's close.
    pub ratio: f64,
    /// The split it looks like.
    pub split: SplitRatio,
}

impl fmt::Display for SuspectedSplit {
    /// `AAPL 2005-02-28 opens at 0.50x the previous close: an unadjusted 2:1 split?`
    /// (the date alone for a bar stamped at midnight UTC).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = if self.timestamp.micros().rem_euclid(Timestamp::MICROS_PER_DAY) == 0 {
            self.timestamp.day().to_string()
        } else {
            self.timestamp.to_string()
        };
        write!(
            f,
            "{} {when} opens at {:.2}x the previous close: an unadjusted {}?",
            self.symbol, self.ratio, self.split
        )
    }
}

/// Runs [`split_guess`] over every symbol's consecutive bars, batch after
/// batch. Rows are taken in the order given; a bar not later than the
/// previous one of its symbol restarts that symbol's series (files sorted
/// by time within each symbol, as vendors write them, are checked fully).
/// Memory: one close per symbol.
#[derive(Debug, Clone, Default)]
pub struct SplitScan {
    /// Per symbol: the last bar's timestamp and close.
    last: HashMap<String, (i64, f64)>,
    found: Vec<SuspectedSplit>,
}

impl SplitScan {
    /// An empty scan.
    pub fn new() -> Self {
        SplitScan::default()
    }

    /// Checks the rows of `batch` against the bars seen before them.
    pub fn observe(&mut self, batch: &BarBatch) {
        let columns = batch.columns();
        for row in 0..batch.len() {
            let symbol = columns.symbol.value(row);
            let timestamp = columns.timestamp.value(row);
            let (open, close) = (columns.open.value(row), columns.close.value(row));
            let previous = match self.last.get_mut(symbol) {
                Some(slot) => std::mem::replace(slot, (timestamp, close)),
                None => {
                    self.last.insert(symbol.to_string(), (timestamp, close));
                    continue;
                }
            };
            if previous.0 >= timestamp {
                continue;
            }
            if let Some(split) = split_guess(previous.1, open) {
                self.found.push(SuspectedSplit {
                    symbol: symbol.to_string(),
                    timestamp: Timestamp(timestamp),
                    ratio: open / previous.1,
                    split,
                });
            }
        }
    }

    /// What was found, by symbol then time.
    pub fn finish(mut self) -> Vec<SuspectedSplit> {
        self.found.sort_by(|a, b| (&a.symbol, a.timestamp).cmp(&(&b.symbol, b.timestamp)));
        self.found
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strata_core::Bar;

    use super::*;

    fn split(new: u32, old: u32) -> Option<SplitRatio> {
        Some(SplitRatio { new, old })
    }

    #[test]
    fn common_split_ratios_are_recognised_within_five_percent() {
        // AAPL 2005-02-25 close, 2005-02-28 open; MSFT 2003-02-14 / 2003-02-18 (Quandl WIKI, raw).
        assert_eq!(split_guess(88.99, 44.68), split(2, 1));
        assert_eq!(split_guess(48.3, 24.62), split(2, 1));
        assert_eq!(split_guess(90.0, 30.5), split(3, 1));
        assert_eq!(split_guess(90.0, 60.0), split(3, 2));
        assert_eq!(split_guess(100.0, 10.2), split(10, 1));
        assert_eq!(split_guess(1.0, 2.04), split(1, 2));
        assert_eq!(split_guess(1.0, 9.8), split(1, 10));
        assert_eq!(split_guess(1.0, 1.5), split(2, 3));
    }

    #[test]
    fn ordinary_and_crash_moves_are_not_splits() {
        assert_eq!(split_guess(100.0, 101.0), None);
        assert_eq!(split_guess(100.0, 80.0), None);
        // AAPL 2000-09-29: a real 52% fall, 0.527x, just outside the 2:1 band.
        assert_eq!(split_guess(53.5, 28.19), None);
        assert_eq!(split_guess(100.0, 45.0), None);
        assert_eq!(split_guess(100.0, 58.0), None);
        assert_eq!(split_guess(1.0, 1.3), None);
        assert_eq!(split_guess(0.0, 1.0), None);
        assert_eq!(split_guess(1.0, f64::NAN), None);
        assert_eq!(split_guess(-1.0, -0.5), None);
    }

    fn bar(symbol: &str, day: i64, open: f64, close: f64) -> Bar {
        Bar {
            symbol: symbol.into(),
            timestamp: Timestamp(1_109_548_800_000_000 + day * Timestamp::MICROS_PER_DAY),
            open,
            high: open.max(close),
            low: open.min(close),
            close,
            volume: 1.0,
            vwap: None,
            trade_count: None,
        }
    }

    #[test]
    fn the_scan_follows_each_symbol_across_batches() {
        let mut scan = SplitScan::new();
        scan.observe(&BarBatch::from_bars(&[
            bar("B", 0, 10.0, 10.0),
            bar("A", -3, 89.62, 88.99),
            bar("B", 1, 20.5, 20.0),
        ]));
        scan.observe(&BarBatch::from_bars(&[bar("A", 0, 44.68, 44.86), bar("A", 1, 45.0, 45.0)]));
        // Out of order: not compared with the bar before it in the file.
        scan.observe(&BarBatch::from_bars(&[bar("A", -10, 10.0, 10.0)]));
        let found = scan.finish();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].to_string(), "A 2005-02-28 opens at 0.50x the previous close: an unadjusted 2:1 split?");
        assert_eq!(
            found[1].to_string(),
            "B 2005-03-01 opens at 2.05x the previous close: an unadjusted 1:2 reverse split?"
        );
        assert_eq!(found[1].split, SplitRatio { new: 1, old: 2 });
    }

    #[test]
    fn intraday_bars_are_named_by_their_time() {
        let suspected = SuspectedSplit {
            symbol: "X".into(),
            timestamp: Timestamp(1_109_548_800_000_000 + 3_600_000_000),
            ratio: 0.3333,
            split: SplitRatio { new: 3, old: 1 },
        };
        assert_eq!(
            suspected.to_string(),
            "X 2005-02-28T01:00:00Z opens at 0.33x the previous close: an unadjusted 3:1 split?"
        );
    }
}
