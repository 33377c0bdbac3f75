//! Queries, summaries, write and health reports of the market-data port.

use crate::bar::{Symbol, Timestamp};
use crate::error::{Result, StoreError};

/// Row order within each symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    #[default]
    Ascending,
    /// Newest first ("latest N" is `Descending` with a limit).
    Descending,
}

/// A bar query.
///
/// Contract every adapter follows:
/// - `symbols`: the symbols to return; empty means every symbol.
/// - `start`/`end`: half-open range `[start, end)` on the timestamp; either may be open.
///   `start >= end` is an empty result, not an error.
/// - `limit`: at most this many bars *per symbol*, taken in `order` (so
///   `Descending` + `limit = 5` is the latest five bars of each symbol).
///   `Some(0)` returns nothing.
/// - Results are grouped by symbol in ascending byte order of the symbol
///   (`^GSPC` < `_` < `a`; SQL backends need a binary collation), and within a
///   symbol ordered by timestamp in `order`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BarQuery {
    /// Symbols to read; empty = all.
    pub symbols: Vec<Symbol>,
    /// Inclusive lower bound.
    pub start: Option<Timestamp>,
    /// Exclusive upper bound.
    pub end: Option<Timestamp>,
    /// Maximum bars per symbol.
    pub limit: Option<usize>,
    /// Timestamp order within a symbol.
    pub order: Order,
}

impl BarQuery {
    /// All bars of one symbol, oldest first.
    pub fn symbol(symbol: Symbol) -> Self {
        BarQuery { symbols: vec![symbol], ..Default::default() }
    }

    /// The latest `n` bars of one symbol, newest first.
    pub fn latest(symbol: Symbol, n: usize) -> Self {
        BarQuery { symbols: vec![symbol], limit: Some(n), order: Order::Descending, ..Default::default() }
    }

    /// Restricts to `[start, end)`.
    pub fn between(mut self, start: Timestamp, end: Timestamp) -> Self {
        self.start = Some(start);
        self.end = Some(end);
        self
    }

    /// True when the range is empty (`start >= end`) or the limit is zero.
    pub fn is_trivially_empty(&self) -> bool {
        matches!((self.start, self.end), (Some(start), Some(end)) if start >= end) || self.limit == Some(0)
    }

    /// Whether `timestamp` falls in `[start, end)`.
    pub fn contains(&self, timestamp: Timestamp) -> bool {
        self.start.is_none_or(|start| timestamp >= start) && self.end.is_none_or(|end| timestamp < end)
    }
}

/// One symbol's coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSummary {
    /// Symbol.
    pub symbol: String,
    /// Earliest bar.
    pub first: Timestamp,
    /// Latest bar.
    pub last: Timestamp,
    /// Number of bars.
    pub rows: u64,
}

/// What a store holds: one entry per symbol, ordered by symbol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MarketSummary {
    /// Per-symbol coverage, ascending by symbol.
    pub symbols: Vec<SymbolSummary>,
}

impl MarketSummary {
    /// Total bars across symbols.
    pub fn total_rows(&self) -> u64 {
        self.symbols.iter().map(|s| s.rows).sum()
    }
}

/// The outcome of a successful write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteReport {
    /// Rows in the batch, all of which are now stored (inserted or replaced).
    pub rows: u64,
}

/// How a store is doing. `ok = false` means the caller should not rely on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Backend name (`duckdb`, `memory`, ...).
    pub backend: &'static str,
    /// Whether the store answered a round trip.
    pub ok: bool,
    /// Backend-specific facts as ordered key/value pairs (path, version, sizes, ...).
    pub details: Vec<(String, String)>,
}

/// A time range `[start, end)` used by deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive lower bound.
    pub start: Timestamp,
    /// Exclusive upper bound.
    pub end: Timestamp,
}

impl TimeRange {
    /// A range; refuses `start > end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self> {
        if start > end {
            return Err(StoreError::invalid(format!("range start {start} is after its end {end}")));
        }
        Ok(TimeRange { start, end })
    }

    /// Every representable instant. Adapters clamp it to what their
    /// timestamp type holds (validation keeps stored bars within
    /// [1900, 2200), so clamping loses nothing).
    pub fn all() -> Self {
        TimeRange { start: Timestamp(i64::MIN), end: Timestamp(i64::MAX) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_open_range() {
        let query = BarQuery::default().between(Timestamp(10), Timestamp(20));
        assert!(query.contains(Timestamp(10)));
        assert!(query.contains(Timestamp(19)));
        assert!(!query.contains(Timestamp(20)));
        assert!(!query.contains(Timestamp(9)));
        assert!(BarQuery::default().between(Timestamp(5), Timestamp(5)).is_trivially_empty());
        assert!(TimeRange::new(Timestamp(2), Timestamp(1)).is_err());
    }
}
