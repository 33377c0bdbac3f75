//! [`TimeoutStore`]: bounds every call to the store it wraps.
//!
//! Each method runs under [`tokio::time::timeout`]; when the limit passes,
//! the inner call is dropped (cancelled) and the caller gets
//! `StoreError::Timeout` naming the inner store and the operation
//! (`neon timed out: write_bars took longer than 60s`). The operation may or
//! may not have taken effect, which the port's retry table allows for.
//!
//! `query_bars` bounds the wait for each batch, the first and every next
//! one, not the whole stream: a long read that keeps yielding runs as long
//! as it needs, and a stalled one ends with a `Timeout` error (the inner
//! stream is dropped).
//!
//! The error is not marked `retries_exhausted`: placed inside a retry layer,
//! each attempt gets its own deadline and a timed-out attempt is retried.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary, Result,
    StoreError, Symbol, TimeRange, WriteReport,
};

/// A [`MarketDataStore`] whose every call to the inner store is bounded by
/// one limit (see the module docs). Prints itself as `timeout(<inner>)`.
#[derive(Debug, Clone)]
pub struct TimeoutStore {
    inner: Arc<dyn MarketDataStore>,
    limit: Duration,
}

impl TimeoutStore {
    /// Bounds each call of `inner` (and each batch of a query) by `limit`.
    pub fn new(inner: Arc<dyn MarketDataStore>, limit: Duration) -> Self {
        TimeoutStore { inner, limit }
    }

    /// The store this one wraps.
    pub fn inner(&self) -> &Arc<dyn MarketDataStore> {
        &self.inner
    }

    /// The bound of one call.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Runs `call` within the limit, or returns a `Timeout` for `operation`.
    async fn bounded<T>(&self, operation: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(expired(&self.inner, operation, self.limit)),
        }
    }
}

/// The error of a call to `inner` that took longer than `limit`.
fn expired(inner: &Arc<dyn MarketDataStore>, operation: &str, limit: Duration) -> StoreError {
    StoreError::timeout(inner.to_string(), format!("{operation} took longer than {limit:?}"))
}

impl fmt::Display for TimeoutStore {
    /// `timeout(<inner>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeout({})", self.inner)
    }
}

/// Where a bounded query is: waiting for its first batch, for a next one, or done.
struct BoundedQuery {
    inner: Arc<dyn MarketDataStore>,
    stream: Option<BoxStream<'static, Result<BarBatch>>>,
    first: bool,
    limit: Duration,
}

/// `stream`, each of whose items must arrive within `limit`; the first
/// error (its own or a timeout) ends it.
fn bounded_query(
    inner: Arc<dyn MarketDataStore>,
    stream: BoxStream<'static, Result<BarBatch>>,
    limit: Duration,
) -> BoxStream<'static, Result<BarBatch>> {
    let start = BoundedQuery { inner, stream: Some(stream), first: true, limit };
    futures::stream::unfold(start, |mut state| async move {
        let mut stream = state.stream.take()?;
        match tokio::time::timeout(state.limit, stream.next()).await {
            Ok(Some(Ok(batch))) => {
                state.first = false;
                state.stream = Some(stream);
                Some((Ok(batch), state))
            }
            Ok(Some(Err(error))) => Some((Err(error), state)),
            Ok(None) => None,
            Err(_elapsed) => {
                drop(stream);
                let which = if state.first { "the first batch" } else { "the next batch" };
                let operation = format!("query_bars (waiting for {which})");
                Some((Err(expired(&state.inner, &operation, state.limit)), state))
            }
        }
    })
    .boxed()
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl MarketDataStore for TimeoutStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        self.bounded("write_bars", self.inner.write_bars(batch)).await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        bounded_query(self.inner.clone(), self.inner.query_bars(query), self.limit)
    }

    async fn summary(&self) -> Result<MarketSummary> {
        self.bounded("summary", self.inner.summary()).await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        self.bounded("digest", self.inner.digest(query)).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        self.bounded("delete_bars", self.inner.delete_bars(symbol, range)).await
    }

    async fn health(&self) -> Result<HealthReport> {
        let inner = self.bounded("health", self.inner.health()).await?;
        Ok(HealthReport::new(self.to_string(), inner.status).with_component(inner))
    }
}
