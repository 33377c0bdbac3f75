//! [`RetryStore`]: repeats a market-data call that failed with a transient
//! error, as the port's retry table allows, with jittered backoff within a
//! time budget ([`strata_store_kit::retry`]).
//!
//! Every method of [`MarketDataStore`] may be repeated after an unknown
//! outcome (`write_bars` and `delete_bars` are `Idempotent`, the reads are
//! `Safe`), so every method is retried, but only for errors whose
//! [`StoreError::should_retry`] is true: `Unavailable` or `Timeout` that no
//! inner layer already retried. `InvalidInput`, `Conflict`, `Unsupported`,
//! ... are returned at once, and so is an error marked `retries_exhausted`.
//! When the budget runs out, the last error is returned marked
//! `retries_exhausted`, so no layer above retries it again.
//!
//! `query_bars` is retried only while it opens: until the inner stream has
//! yielded its first item, a retryable error starts the query again from
//! scratch; once a batch went to the caller, an error ends the stream (a
//! stream is never resumed in the middle, and restarting it would repeat the
//! rows already yielded).
//!
//! Stack this only over a primary that does not retry inside itself: the
//! PostgreSQL adapter already retries within its own budget (one retry layer
//! per stack).

use std::fmt;
use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use strata_core::policy::{Backoff, Idempotency};
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary, Result,
    Symbol, TimeRange, WriteReport,
};

/// A [`MarketDataStore`] that retries its inner store's transient failures
/// (see the module docs). Prints itself as `retry(<inner>)`.
#[derive(Debug, Clone)]
pub struct RetryStore {
    inner: Arc<dyn MarketDataStore>,
    backoff: Backoff,
}

impl RetryStore {
    /// Retries the calls of `inner` with `backoff` (base delay, cap, and the
    /// total budget of one call, first attempt included).
    pub fn new(inner: Arc<dyn MarketDataStore>, backoff: Backoff) -> Self {
        RetryStore { inner, backoff }
    }

    /// The store this one wraps.
    pub fn inner(&self) -> &Arc<dyn MarketDataStore> {
        &self.inner
    }

    /// The backoff and budget of each call.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// What a log line names: `neon write_bars`.
    fn what(&self, operation: &str) -> String {
        format!("{} {operation}", self.inner)
    }
}

impl fmt::Display for RetryStore {
    /// `retry(<inner>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "retry({})", self.inner)
    }
}

/// Where a retried query is: still opening (nothing yielded yet, so a
/// retryable error may start it again), forwarding the inner stream, or done.
enum QueryState {
    Opening { inner: Arc<dyn MarketDataStore>, query: BarQuery, backoff: Backoff },
    Streaming(BoxStream<'static, Result<BarBatch>>),
    Done,
}

/// Opens `query` on `inner` until its first item arrives (retrying as
/// `backoff` allows), then forwards the rest; the first error ends it.
fn retried_query(
    inner: Arc<dyn MarketDataStore>,
    query: BarQuery,
    backoff: Backoff,
) -> BoxStream<'static, Result<BarBatch>> {
    let start = QueryState::Opening { inner, query, backoff };
    futures::stream::unfold(start, |state| async move {
        match state {
            QueryState::Opening { inner, query, backoff } => {
                let what = format!("{inner} query_bars");
                let (inner, query) = (&inner, &query);
                let opened = strata_store_kit::retry(&what, Idempotency::Safe, &backoff, || async move {
                    let mut stream = inner.query_bars(query.clone());
                    match stream.next().await {
                        Some(Ok(batch)) => Ok(Some((batch, stream))),
                        Some(Err(error)) => Err(error),
                        None => Ok(None),
                    }
                })
                .await;
                match opened {
                    Ok(Some((batch, stream))) => Some((Ok(batch), QueryState::Streaming(stream))),
                    Ok(None) => None,
                    Err(error) => Some((Err(error), QueryState::Done)),
                }
            }
            QueryState::Streaming(mut stream) => match stream.next().await {
                Some(Ok(batch)) => Some((Ok(batch), QueryState::Streaming(stream))),
                Some(Err(error)) => Some((Err(error), QueryState::Done)),
                None => None,
            },
            QueryState::Done => None,
        }
    })
    .boxed()
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl MarketDataStore for RetryStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        // Cloning a batch clones the Arcs of its Arrow columns, not the rows.
        let batch = &batch;
        strata_store_kit::retry(&self.what("write_bars"), Idempotency::Idempotent, &self.backoff, || {
            self.inner.write_bars(batch.clone())
        })
        .await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        retried_query(self.inner.clone(), query, self.backoff)
    }

    async fn summary(&self) -> Result<MarketSummary> {
        strata_store_kit::retry(&self.what("summary"), Idempotency::Safe, &self.backoff, || self.inner.summary()).await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        let query = &query;
        strata_store_kit::retry(&self.what("digest"), Idempotency::Safe, &self.backoff, || {
            self.inner.digest(query.clone())
        })
        .await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        strata_store_kit::retry(&self.what("delete_bars"), Idempotency::Idempotent, &self.backoff, || {
            self.inner.delete_bars(symbol, range)
        })
        .await
    }

    async fn health(&self) -> Result<HealthReport> {
        let inner =
            strata_store_kit::retry(&self.what("health"), Idempotency::Safe, &self.backoff, || self.inner.health())
                .await?;
        Ok(HealthReport::new(self.to_string(), inner.status).with_component(inner))
    }
}
