//! `MarketDataStore` for [`MemoryStore`]: bars in ordered maps keyed by symbol, then timestamp.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, StreamExt};
use strata_core::digest::DigestAccumulator;
use strata_core::{
    Bar, BarBatch, BarBatchBuilder, BarQuery, DayDigest, DigestQuery, HealthReport, HealthStatus, MarketDataStore,
    MarketSummary, Order, Result, Symbol, SymbolSummary, TimeRange, Timestamp, WriteReport,
};

use crate::{BACKEND, MemoryStore, lock};

/// The most rows one batch of a query stream holds.
pub const QUERY_BATCH_ROWS: usize = 65_536;

/// Every stored bar: symbol -> timestamp (microseconds) -> values.
#[derive(Debug, Default)]
pub(crate) struct MarketState {
    symbols: BTreeMap<String, BTreeMap<i64, StoredBar>>,
}

/// The non-key columns of one bar, exactly as written.
#[derive(Debug, Clone, Copy)]
struct StoredBar {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    vwap: Option<f64>,
    trade_count: Option<i64>,
}

impl StoredBar {
    fn to_bar(self, symbol: &str, timestamp: i64) -> Bar {
        Bar {
            symbol: symbol.to_string(),
            timestamp: Timestamp(timestamp),
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            vwap: self.vwap,
            trade_count: self.trade_count,
        }
    }
}

/// Where a query stream is: the symbols still to read and the position within the first.
struct Cursor {
    state: Arc<Mutex<MarketState>>,
    query: BarQuery,
    /// Symbols not yet finished, ascending; resolved on the first poll.
    symbols: Option<std::collections::VecDeque<String>>,
    /// Timestamp of the last row returned for the current symbol.
    last: Option<i64>,
    /// Rows returned for the current symbol.
    returned: usize,
    /// Set after an error so the stream ends.
    failed: bool,
}

impl Cursor {
    /// The next non-empty batch, `None` at the end.
    fn next_batch(&mut self) -> Result<Option<BarBatch>> {
        let state = lock(&self.state)?;
        let symbols = self.symbols.get_or_insert_with(|| {
            if self.query.symbols.is_empty() {
                state.symbols.keys().cloned().collect()
            } else {
                let mut wanted: Vec<String> = self.query.symbols.iter().map(|s| s.as_str().to_string()).collect();
                wanted.sort();
                wanted.dedup();
                wanted.into()
            }
        });
        while let Some(symbol) = symbols.front() {
            let limit = self.query.limit.unwrap_or(usize::MAX);
            let wanted = QUERY_BATCH_ROWS.min(limit - self.returned);
            let rows: Vec<(i64, StoredBar)> = match state.symbols.get(symbol) {
                Some(series) => rows_after(series, &self.query, self.last, wanted),
                None => Vec::new(),
            };
            self.returned += rows.len();
            self.last = rows.last().map(|(timestamp, _)| *timestamp);
            let batch = (!rows.is_empty()).then(|| build_batch(symbol, &rows));
            if rows.len() < wanted || self.returned >= limit {
                symbols.pop_front();
                self.last = None;
                self.returned = 0;
            }
            if batch.is_some() {
                return Ok(batch);
            }
        }
        Ok(None)
    }
}

/// Up to `wanted` rows of `series` in the query's range and order, after `last`.
fn rows_after(
    series: &BTreeMap<i64, StoredBar>,
    query: &BarQuery,
    last: Option<i64>,
    wanted: usize,
) -> Vec<(i64, StoredBar)> {
    let start = query.start.map_or(Bound::Unbounded, |start| Bound::Included(start.micros()));
    let end = query.end.map_or(Bound::Unbounded, |end| Bound::Excluded(end.micros()));
    let (lower, upper) = match (query.order, last) {
        (_, None) => (start, end),
        (Order::Ascending, Some(last)) => (Bound::Excluded(last), end),
        (Order::Descending, Some(last)) => (start, Bound::Excluded(last)),
    };
    if is_empty_range(lower, upper) {
        return Vec::new();
    }
    let range = series.range((lower, upper)).map(|(timestamp, bar)| (*timestamp, *bar));
    match query.order {
        Order::Ascending => range.take(wanted).collect(),
        Order::Descending => range.rev().take(wanted).collect(),
    }
}

/// True when no key lies between the bounds (also where `BTreeMap::range` would panic).
fn is_empty_range(lower: Bound<i64>, upper: Bound<i64>) -> bool {
    match (lower, upper) {
        (Bound::Included(low), Bound::Excluded(high))
        | (Bound::Excluded(low), Bound::Included(high))
        | (Bound::Excluded(low), Bound::Excluded(high)) => low >= high,
        (Bound::Included(low), Bound::Included(high)) => low > high,
        _ => false,
    }
}

/// One batch of one symbol's rows in the canonical schema.
fn build_batch(symbol: &str, rows: &[(i64, StoredBar)]) -> BarBatch {
    let mut builder = BarBatchBuilder::with_capacity(rows.len());
    for (timestamp, bar) in rows {
        let values = [bar.open, bar.high, bar.low, bar.close, bar.volume];
        builder.push_parts(symbol, Timestamp(*timestamp), values, bar.vwap, bar.trade_count);
    }
    builder.finish()
}

/// Whether `symbol` is selected by a list where empty means every symbol.
fn selected(symbols: &[Symbol], symbol: &str) -> bool {
    symbols.is_empty() || symbols.iter().any(|wanted| wanted.as_str() == symbol)
}

#[async_trait::async_trait]
impl MarketDataStore for MemoryStore {
    fn capabilities(&self) -> strata_core::Capabilities {
        crate::CAPABILITIES
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        batch.validate()?;
        let rows = batch.len();
        if rows == 0 {
            return Ok(WriteReport::committed(0));
        }
        let columns = batch.columns();
        let mut state = lock(&self.market)?;
        for row in 0..rows {
            let stored = StoredBar {
                open: columns.open.value(row),
                high: columns.high.value(row),
                low: columns.low.value(row),
                close: columns.close.value(row),
                volume: columns.volume.value(row),
                vwap: arrow::array::Array::is_valid(columns.vwap, row).then(|| columns.vwap.value(row)),
                trade_count: arrow::array::Array::is_valid(columns.trade_count, row)
                    .then(|| columns.trade_count.value(row)),
            };
            let symbol = columns.symbol.value(row);
            let series = match state.symbols.get_mut(symbol) {
                Some(series) => series,
                None => state.symbols.entry(symbol.to_string()).or_default(),
            };
            series.insert(columns.timestamp.value(row), stored);
        }
        Ok(WriteReport::committed(rows as u64))
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        if query.is_trivially_empty() {
            return stream::empty().boxed();
        }
        let cursor =
            Cursor { state: Arc::clone(&self.market), query, symbols: None, last: None, returned: 0, failed: false };
        stream::unfold(cursor, |mut cursor| async move {
            if cursor.failed {
                return None;
            }
            match cursor.next_batch() {
                Ok(Some(batch)) => Some((Ok(batch), cursor)),
                Ok(None) => None,
                Err(error) => {
                    cursor.failed = true;
                    Some((Err(error), cursor))
                }
            }
        })
        .boxed()
    }

    async fn summary(&self) -> Result<MarketSummary> {
        let state = lock(&self.market)?;
        let symbols = state
            .symbols
            .iter()
            .filter_map(|(symbol, series)| {
                let (first, _) = series.first_key_value()?;
                let (last, _) = series.last_key_value()?;
                Some(SymbolSummary {
                    symbol: symbol.clone(),
                    first: Timestamp(*first),
                    last: Timestamp(*last),
                    rows: series.len() as u64,
                })
            })
            .collect();
        Ok(MarketSummary { symbols })
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        let range = BarQuery { start: query.start, end: query.end, ..BarQuery::default() };
        if range.is_trivially_empty() {
            return Ok(Vec::new());
        }
        let state = lock(&self.market)?;
        let mut accumulator = DigestAccumulator::new();
        for (symbol, series) in state.symbols.iter().filter(|(symbol, _)| selected(&query.symbols, symbol)) {
            for (timestamp, bar) in rows_after(series, &range, None, usize::MAX) {
                accumulator.add(&bar.to_bar(symbol, timestamp));
            }
        }
        Ok(accumulator.finish())
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        let mut state = lock(&self.market)?;
        let Some(series) = state.symbols.get_mut(symbol.as_str()) else {
            return Ok(0);
        };
        let doomed: Vec<i64> = if range.start >= range.end {
            Vec::new()
        } else {
            series.range(range.start.micros()..range.end.micros()).map(|(timestamp, _)| *timestamp).collect()
        };
        for timestamp in &doomed {
            series.remove(timestamp);
        }
        if series.is_empty() {
            state.symbols.remove(symbol.as_str());
        }
        Ok(doomed.len() as u64)
    }

    async fn health(&self) -> Result<HealthReport> {
        let state = lock(&self.market)?;
        let rows: usize = state.symbols.values().map(BTreeMap::len).sum();
        Ok(HealthReport::new(BACKEND, HealthStatus::Healthy)
            .with_detail("symbols", state.symbols.len().to_string())
            .with_detail("rows", rows.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strata_core::MarketDataStoreExt;

    use super::*;

    fn bar(micros: i64) -> Bar {
        Bar {
            symbol: "A".into(),
            timestamp: Timestamp(micros),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 0.0,
            vwap: None,
            trade_count: None,
        }
    }

    #[test]
    fn empty_ranges_never_reach_btreemap_range() {
        assert!(is_empty_range(Bound::Excluded(5), Bound::Excluded(5)));
        assert!(is_empty_range(Bound::Included(5), Bound::Excluded(5)));
        assert!(!is_empty_range(Bound::Included(5), Bound::Included(5)));
        assert!(!is_empty_range(Bound::Unbounded, Bound::Excluded(i64::MIN)));
    }

    #[test]
    fn long_results_come_in_bounded_batches_that_resume_where_they_stopped() {
        futures::executor::block_on(async {
            let store = MemoryStore::new();
            let total = QUERY_BATCH_ROWS * 2 + 3;
            let bars: Vec<Bar> = (0..total as i64).map(|i| bar(i * 1_000_000)).collect();
            store.write_bars(BarBatch::from_bars(&bars)).await.unwrap();
            for order in [Order::Ascending, Order::Descending] {
                let query = BarQuery { order, limit: Some(QUERY_BATCH_ROWS + 1), ..BarQuery::default() };
                let batches = store.collect_batches(query).await.unwrap();
                let sizes: Vec<usize> = batches.iter().map(BarBatch::len).collect();
                assert_eq!(sizes, vec![QUERY_BATCH_ROWS, 1], "{order:?}");
                let timestamps: Vec<i64> =
                    batches.iter().flat_map(BarBatch::to_bars).map(|bar| bar.timestamp.micros()).collect();
                let mut expected: Vec<i64> = bars.iter().map(|bar| bar.timestamp.micros()).collect();
                if order == Order::Descending {
                    expected.reverse();
                }
                expected.truncate(QUERY_BATCH_ROWS + 1);
                assert_eq!(timestamps, expected, "{order:?}");
            }
        });
    }
}
