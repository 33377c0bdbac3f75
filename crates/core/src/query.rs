//! Queries, summaries, write and health reports of the market-data port.

use crate::bar::{Symbol, Timestamp};
use crate::error::{Result, StoreError};

/// Row order within each symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WriteReport {
    /// Rows in the batch (inserted or replaced).
    pub rows: u64,
    /// Where those rows are now.
    pub durability: Durability,
}

impl WriteReport {
    /// `rows` rows committed in the store.
    pub fn committed(rows: u64) -> Self {
        WriteReport { rows, durability: Durability::Committed }
    }

    /// `rows` rows accepted into a durable write journal, not yet in the primary store.
    pub fn journaled(rows: u64) -> Self {
        WriteReport { rows, durability: Durability::Journaled }
    }
}

/// Where acknowledged rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Durability {
    /// In the store itself: a query sees them now.
    #[default]
    Committed,
    /// In a durable journal that a later replay writes to the primary store
    /// (a hybrid store whose primary is down). Nothing is lost, but a query
    /// of the primary does not see them yet.
    Journaled,
}

impl Durability {
    /// `committed` or `journaled`, for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Committed => "committed",
            Durability::Journaled => "journaled",
        }
    }
}

/// How a store, or one part of a composed store, is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum HealthStatus {
    /// Answers and is complete.
    #[default]
    Healthy,
    /// Answers, but something is off (an old schema, a failed-over part, a
    /// write queue that is not empty): usable, with a reason in the details.
    Degraded,
    /// Does not answer, or must not be relied on.
    Down,
}

impl HealthStatus {
    /// `healthy`, `degraded` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Down => "down",
        }
    }
}

/// How a store is doing: a status, backend facts, and for a composed store
/// one report per part (`components`), so an operator sees which part is down
/// and how deep a write queue is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HealthReport {
    /// The store's description (its `Display`: `duckdb`, `memory`, `retry(neon)`).
    pub backend: String,
    /// Healthy, degraded or down.
    pub status: HealthStatus,
    /// Backend-specific facts as ordered key/value pairs (path, version, sizes, ...).
    pub details: Vec<(String, String)>,
    /// The parts of a composed store, each with its own report; empty for a plain backend.
    pub components: Vec<HealthReport>,
}

impl HealthReport {
    /// A report for `backend` with `status` and no details yet.
    pub fn new(backend: impl Into<String>, status: HealthStatus) -> Self {
        HealthReport { backend: backend.into(), status, details: Vec::new(), components: Vec::new() }
    }

    /// Adds a detail.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.push((key.into(), value.into()));
        self
    }

    /// Adds a component's report. The composing store sets its own status
    /// (a hybrid store with its primary down is degraded, not down);
    /// [`Self::worst`] tells the worst part.
    pub fn with_component(mut self, component: HealthReport) -> Self {
        self.components.push(component);
        self
    }

    /// The report of a store made of `parts` (each already reported): its
    /// status is the worst part's, its details name each part under
    /// `labels` (`market_data: efs`, `evolution_state: duckdb`), and the
    /// parts are its components.
    pub fn of_parts(backend: impl Into<String>, parts: Vec<(&str, HealthReport)>) -> Self {
        let status = parts.iter().map(|(_, part)| part.status).fold(HealthStatus::Healthy, HealthStatus::max);
        let mut report = HealthReport::new(backend, status);
        for (label, part) in parts {
            report = report.with_detail(label, part.backend.clone()).with_component(part);
        }
        report
    }

    /// True when the store is healthy (the caller may rely on it fully).
    pub fn ok(&self) -> bool {
        self.status == HealthStatus::Healthy
    }

    /// The worst status among this report and all its components.
    pub fn worst(&self) -> HealthStatus {
        self.components.iter().map(HealthReport::worst).fold(self.status, HealthStatus::max)
    }
}

/// A time range `[start, end)` used by deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

    #[test]
    fn a_store_of_parts_is_as_healthy_as_its_worst_part() {
        let efs = HealthReport::new("efs", HealthStatus::Healthy);
        let duckdb = HealthReport::new("duckdb", HealthStatus::Down);
        let report = HealthReport::of_parts("efs+duckdb", vec![("market_data", efs), ("evolution_state", duckdb)]);
        assert_eq!(report.status, HealthStatus::Down);
        assert_eq!(
            report.details,
            vec![("market_data".into(), "efs".into()), ("evolution_state".into(), "duckdb".into())]
        );
        assert_eq!(report.components.len(), 2);
        assert_eq!(HealthReport::of_parts("none", Vec::new()).status, HealthStatus::Healthy);
    }

    #[test]
    fn a_composed_report_shows_its_worst_part() {
        let cache = HealthReport::new("duckdb", HealthStatus::Healthy).with_detail("path", "/tmp/x.duckdb");
        let primary = HealthReport::new("neon", HealthStatus::Down);
        let hybrid = HealthReport::new("hybrid(neon, duckdb)", HealthStatus::Degraded)
            .with_detail("queue_depth", "12")
            .with_component(primary)
            .with_component(cache);
        assert!(!hybrid.ok());
        assert_eq!(hybrid.worst(), HealthStatus::Down);
        assert_eq!(hybrid.components.len(), 2);
        assert!(HealthReport::new("memory", HealthStatus::Healthy).ok());
        assert_eq!(WriteReport::default(), WriteReport::committed(0));
        assert_eq!(WriteReport::journaled(3).durability.as_str(), "journaled");
    }
}
