//! The read-through cache in front of the failover store, routing reads by
//! the age of the data.
//!
//! | age of the bars (from now) | read from |
//! |---|---|
//! | hot (default: the last 7 days) and warm (7 to 30 days) | the cache where it holds the range completely ([`Coverage`]); the gaps from the primary, which fill the cache on the way through |
//! | cold (older than the warm limit) | the primary only |
//!
//! Hot and warm are read the same way; they differ in how likely the cache
//! holds them (every write through this store reaches the cache, so recent
//! data normally is covered). A query whose range spans ages is cut at the
//! boundaries and each piece read from its source, in the requested order,
//! with the per-symbol limit applied across the pieces.
//!
//! While the primary does not answer (the failover store is degraded),
//! every read comes from the cache: what was written through this store,
//! and what earlier reads brought in. That may be incomplete for data never
//! cached; a warning says so.
//!
//! Writes go to the failover store (the primary or its journal) first, then
//! to the cache; a cache write that fails forgets the coverage of what it
//! would have written, so the cache is never trusted for rows it missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, Durability, HealthReport, HealthStatus, MarketDataStore,
    MarketSummary, Order, Result, Symbol, TimeRange, Timestamp, WriteReport,
};
use tokio::sync::mpsc;

use crate::coverage::{Coverage, Interval};
use crate::failover::{FailoverStore, is_outage};

const DAY_MICROS: i64 = 86_400_000_000;

/// Where reads of each age go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// Bars younger than this are hot.
    pub hot: Duration,
    /// Bars younger than this (and not hot) are warm; older ones are cold.
    pub warm: Duration,
}

impl Default for Routing {
    /// The seeds' defaults: hot 7 days, warm 30 days.
    fn default() -> Self {
        Routing { hot: Duration::from_secs(7 * 86_400), warm: Duration::from_secs(30 * 86_400) }
    }
}

impl Routing {
    /// The first timestamp that is not cold at `now`.
    fn cache_from(&self, now: Timestamp) -> i64 {
        now.0.saturating_sub(i64::try_from(self.warm.as_micros()).unwrap_or(i64::MAX))
    }

    /// Days, for reports.
    pub fn describe(&self) -> String {
        format!(
            "hot < {} days, warm < {} days, older from the primary",
            i64::try_from(self.hot.as_micros()).unwrap_or(i64::MAX) / DAY_MICROS,
            i64::try_from(self.warm.as_micros()).unwrap_or(i64::MAX) / DAY_MICROS
        )
    }
}

/// The failover store with a read-through cache in front.
#[derive(Debug)]
pub struct CachedStore {
    inner: Arc<FailoverStore>,
    cache: Arc<dyn MarketDataStore>,
    coverage: Arc<Coverage>,
    routing: Routing,
    /// Per-symbol count of writes through this store, so a fill that read the
    /// primary before a write landed does not put the older rows in the cache.
    epochs: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    /// The last time (micros) a read tried the primary while it was down.
    last_probe: AtomicI64,
    /// Whether this store has said that reads come from the cache.
    warned: Arc<AtomicBool>,
}

/// Says once per store that reads come from the cache while the primary is down.
fn warn_once(warned: &AtomicBool, inner: &FailoverStore) {
    if !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "{} does not answer: reads come from the cache, which holds what was written or read through it",
            inner.primary()
        );
    }
}

/// Where one piece of a symbol's range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Cache,
    /// The primary; `fill` when what it returns is to be cached.
    Primary {
        fill: bool,
    },
}

impl CachedStore {
    /// Reads through `cache` in front of `inner`, with `coverage` recording what the cache holds.
    pub fn new(
        inner: Arc<FailoverStore>,
        cache: Arc<dyn MarketDataStore>,
        coverage: Coverage,
        routing: Routing,
    ) -> Self {
        CachedStore {
            inner,
            cache,
            coverage: Arc::new(coverage),
            routing,
            epochs: Arc::default(),
            last_probe: AtomicI64::new(0),
            warned: Arc::default(),
        }
    }

    /// The routing in force.
    pub fn routing(&self) -> Routing {
        self.routing
    }

    /// Whether reads should try the primary: always while it is up, once
    /// every two seconds while it is down (a probe).
    fn try_primary(&self) -> bool {
        if !self.inner.primary_down() {
            return true;
        }
        let now = Timestamp::now().0;
        let last = self.last_probe.load(Ordering::Relaxed);
        now - last > 2_000_000
            && self.last_probe.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    fn bump(&self, symbols: impl IntoIterator<Item = String>) {
        if let Ok(mut epochs) = self.epochs.lock() {
            for symbol in symbols {
                *epochs.entry(symbol).or_default() += 1;
            }
        }
    }

    /// The pieces of one symbol's `[start, end)`, ascending, with their sources.
    fn plan(
        &self,
        symbol: &str,
        start: i64,
        end: i64,
        limit: Option<usize>,
        now: Timestamp,
    ) -> Result<Vec<((i64, i64), Source)>> {
        let cache_from = self.routing.cache_from(now);
        let mut pieces = Vec::new();
        if start < cache_from {
            pieces.push(((start, end.min(cache_from)), Source::Primary { fill: false }));
        }
        let from = start.max(cache_from);
        if from < end {
            let coverage = self.coverage.current()?;
            for (interval, covered) in coverage.split(symbol, from, end) {
                let source = if covered { Source::Cache } else { Source::Primary { fill: limit.is_none() } };
                pieces.push((interval, source));
            }
        }
        Ok(pieces)
    }

    /// Whether every symbol of `query` can be answered by the cache alone.
    fn all_cached(&self, query: &BarQuery, now: Timestamp) -> Result<bool> {
        if query.symbols.is_empty() {
            return Ok(false);
        }
        let (start, end) = (query.start.map_or(i64::MIN, |t| t.0), query.end.map_or(i64::MAX, |t| t.0));
        if start < self.routing.cache_from(now) {
            return Ok(false);
        }
        let coverage = self.coverage.current()?;
        Ok(query.symbols.iter().all(|symbol| coverage.covers(symbol.as_str(), start, end.min(now.0))) && end <= now.0)
    }
}

impl std::fmt::Display for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cached({}, {})", self.inner, self.cache)
    }
}

/// Everything one query's producer needs, owned.
struct Reader {
    inner: Arc<FailoverStore>,
    cache: Arc<dyn MarketDataStore>,
    coverage: Arc<Coverage>,
    epochs: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    warned: Arc<AtomicBool>,
}

impl Reader {
    fn epoch(&self, symbol: &str) -> u64 {
        self.epochs.lock().map(|epochs| epochs.get(symbol).copied().unwrap_or(0)).unwrap_or(u64::MAX)
    }

    /// Streams one piece into `sender`; returns the rows sent. A primary
    /// outage before the first batch falls back to the cache.
    #[allow(clippy::too_many_arguments)]
    async fn piece(
        &self,
        symbol: &Symbol,
        (start, end): (i64, i64),
        source: Source,
        query: &BarQuery,
        limit: Option<usize>,
        sender: &mpsc::Sender<Result<BarBatch>>,
        now: Timestamp,
    ) -> Result<Option<usize>> {
        let piece_query = BarQuery {
            symbols: vec![symbol.clone()],
            start: (start != i64::MIN).then_some(Timestamp(start)),
            end: (end != i64::MAX).then_some(Timestamp(end)),
            limit,
            order: query.order,
        };
        let fill = matches!(source, Source::Primary { fill: true });
        let epoch = self.epoch(symbol.as_str());
        let mut stream = match source {
            Source::Cache => self.cache.query_bars(piece_query.clone()),
            Source::Primary { .. } => self.inner.primary().query_bars(piece_query.clone()),
        };
        let mut sent = 0usize;
        let mut kept: Vec<BarBatch> = Vec::new();
        while let Some(item) = stream.next().await {
            let batch = match item {
                Ok(batch) => batch,
                Err(error) if sent == 0 && kept.is_empty() && source != Source::Cache && is_outage(&error) => {
                    self.inner.note_outage(&error);
                    warn_once(&self.warned, &self.inner);
                    return Box::pin(self.piece(symbol, (start, end), Source::Cache, query, limit, sender, now)).await;
                }
                Err(error) => return Err(error),
            };
            if batch.is_empty() {
                continue;
            }
            sent += batch.len();
            if fill {
                kept.push(batch.clone());
            }
            if sender.send(Ok(batch)).await.is_err() {
                return Ok(None);
            }
        }
        if fill && self.epoch(symbol.as_str()) == epoch {
            let mut filled = true;
            for batch in kept {
                if let Err(error) = self.cache.write_bars(batch).await {
                    tracing::warn!("could not fill the cache with {symbol}: {error}");
                    filled = false;
                    break;
                }
            }
            // Known complete only up to when the primary was read.
            if filled {
                self.coverage.add(symbol.as_str(), Timestamp(start), Timestamp(end.min(now.0)))?;
            }
        }
        Ok(Some(sent))
    }
}

#[async_trait::async_trait]
impl MarketDataStore for CachedStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        if batch.is_empty() {
            return self.inner.write_bars(batch).await;
        }
        let spans = symbol_spans(&batch);
        // A crash between the primary's (or journal's) acknowledgement and the
        // cache write must not leave the cache trusted for rows it lacks: the
        // covered parts the batch touches are forgotten first (durably) and
        // restored once the cache holds the batch too.
        let covered: Vec<(String, Interval)> = {
            let map = self.coverage.current()?;
            spans
                .iter()
                .flat_map(|(symbol, (first, last))| {
                    map.split(symbol, *first, last.saturating_add(1))
                        .into_iter()
                        .filter(|(_, covered)| *covered)
                        .map(|(interval, _)| (symbol.clone(), interval))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        if !covered.is_empty() {
            self.coverage.update(|map| covered.iter().for_each(|(symbol, (s, e))| map.remove(symbol, *s, *e)))?;
        }
        let report = self.inner.write_bars(batch.clone()).await?;
        self.bump(spans.keys().cloned());
        match self.cache.write_bars(batch).await {
            Ok(_) if !covered.is_empty() => {
                self.coverage.update(|map| covered.iter().for_each(|(symbol, (s, e))| map.add(symbol, *s, *e)))?;
            }
            Ok(_) => {}
            Err(error) if report.durability == Durability::Journaled => {
                // The journal has the rows; reads while the primary is down will miss them.
                tracing::error!("journaled, but not cached: {error}");
            }
            Err(error) => tracing::warn!("written, but not cached (later reads go to the primary): {error}"),
        }
        Ok(report)
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        let now = Timestamp::now();
        let down = !self.try_primary();
        if query.is_trivially_empty() || down || matches!(self.all_cached(&query, now), Ok(true)) {
            if down {
                warn_once(&self.warned, &self.inner);
            }
            return self.cache.query_bars(query);
        }
        if query.symbols.is_empty() {
            // Every symbol: the primary knows which exist.
            let reader = self.reader();
            return strata_store_kit::lazy_producer(strata_store_kit::DEFAULT_DEPTH, move |sender| async move {
                let mut stream = reader.inner.primary().query_bars(query.clone());
                let mut sent = false;
                while let Some(item) = stream.next().await {
                    match item {
                        Err(error) if !sent && is_outage(&error) => {
                            let mut cached = reader.cache.query_bars(query.clone());
                            while let Some(item) = cached.next().await {
                                if sender.send(item).await.is_err() {
                                    return Ok(());
                                }
                            }
                            return Ok(());
                        }
                        item => {
                            sent = true;
                            if sender.send(item).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
                Ok(())
            });
        }
        let mut plans = Vec::with_capacity(query.symbols.len());
        let mut symbols = query.symbols.clone();
        symbols.sort_by(|a, b| a.as_str().as_bytes().cmp(b.as_str().as_bytes()));
        symbols.dedup();
        let (start, end) = (query.start.map_or(i64::MIN, |t| t.0), query.end.map_or(i64::MAX, |t| t.0));
        for symbol in symbols {
            match self.plan(symbol.as_str(), start, end, query.limit, now) {
                Ok(mut pieces) => {
                    if query.order == Order::Descending {
                        pieces.reverse();
                    }
                    plans.push((symbol, pieces));
                }
                Err(error) => return Box::pin(futures::stream::once(async move { Err(error) })),
            }
        }
        let reader = self.reader();
        strata_store_kit::lazy_producer(strata_store_kit::DEFAULT_DEPTH, move |sender| async move {
            for (symbol, pieces) in plans {
                let mut remaining = query.limit;
                for (interval, source) in pieces {
                    if remaining == Some(0) {
                        break;
                    }
                    match reader.piece(&symbol, interval, source, &query, remaining, &sender, now).await? {
                        None => return Ok(()),
                        Some(sent) => remaining = remaining.map(|left| left.saturating_sub(sent)),
                    }
                }
            }
            Ok(())
        })
    }

    async fn summary(&self) -> Result<MarketSummary> {
        if self.try_primary() {
            match self.inner.summary().await {
                Err(error) if is_outage(&error) => {}
                other => return other,
            }
        }
        self.cache.summary().await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        if self.try_primary() {
            match self.inner.digest(query.clone()).await {
                Err(error) if is_outage(&error) => {}
                other => return other,
            }
        }
        self.cache.digest(query).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        // As for writes: forget the coverage first, restore it once the cache agrees.
        let covered: Vec<Interval> = self
            .coverage
            .current()?
            .split(symbol.as_str(), range.start.0, range.end.0)
            .into_iter()
            .filter_map(|(interval, covered)| covered.then_some(interval))
            .collect();
        if !covered.is_empty() {
            self.coverage.update(|map| covered.iter().for_each(|(s, e)| map.remove(symbol.as_str(), *s, *e)))?;
        }
        let report = self.inner.delete_with_report(symbol, range).await?;
        self.bump([symbol.as_str().to_string()]);
        let cached = match self.cache.delete_bars(symbol, range).await {
            Ok(count) => {
                if !covered.is_empty() {
                    self.coverage.update(|map| covered.iter().for_each(|(s, e)| map.add(symbol.as_str(), *s, *e)))?;
                }
                count
            }
            Err(error) => {
                tracing::warn!("could not delete {symbol} from the cache: {error}");
                0
            }
        };
        // A journaled delete has not reached the primary: the cache's count is what is known.
        Ok(if report.durability == Durability::Journaled { cached } else { report.rows })
    }

    async fn health(&self) -> Result<HealthReport> {
        let inner = self.inner.health().await?;
        let cache = match self.cache.health().await {
            Ok(report) => report,
            Err(error) => {
                HealthReport::new(self.cache.to_string(), HealthStatus::Down).with_detail("error", error.to_string())
            }
        };
        let status =
            if cache.status == HealthStatus::Down { HealthStatus::Down } else { inner.status.max(cache.status) };
        let mut report = HealthReport::new(self.to_string(), status).with_detail("routing", self.routing.describe());
        for (key, value) in &inner.details {
            report = report.with_detail(key.clone(), value.clone());
        }
        Ok(report.with_component(inner).with_component(cache))
    }
}

/// Each symbol of `batch` with its first and last timestamp.
fn symbol_spans(batch: &BarBatch) -> HashMap<String, (i64, i64)> {
    let columns = batch.columns();
    let mut spans: HashMap<String, (i64, i64)> = HashMap::new();
    for (symbol, timestamp) in columns.symbol.iter().zip(columns.timestamp.iter()) {
        let (Some(symbol), Some(timestamp)) = (symbol, timestamp) else { continue };
        match spans.get_mut(symbol) {
            Some((first, last)) => {
                *first = (*first).min(timestamp);
                *last = (*last).max(timestamp);
            }
            None => {
                spans.insert(symbol.to_string(), (timestamp, timestamp));
            }
        }
    }
    spans
}

impl CachedStore {
    fn reader(&self) -> Reader {
        Reader {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
            coverage: self.coverage.clone(),
            epochs: self.epochs.clone(),
            warned: self.warned.clone(),
        }
    }
}
