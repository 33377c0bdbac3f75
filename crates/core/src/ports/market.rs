//! The market-data port.

use std::sync::Arc;

use futures_core::stream::BoxStream;

use crate::bar::{Bar, Symbol};
use crate::digest::{DayDigest, DigestQuery};
use crate::error::Result;
use crate::ports::Capabilities;
use crate::query::{BarQuery, HealthReport, MarketSummary, TimeRange, WriteReport};
use crate::schema::BarBatch;

/// Storage of OHLCV bars keyed by (symbol, timestamp).
///
/// Contract (checked by the conformance suite in `strata-tests`):
/// - `write_bars` validates the batch with [`BarBatch::validate`] first; an
///   invalid batch returns `InvalidInput` with the row report and writes
///   nothing. A valid batch is upserted atomically: after success every row
///   is stored (last write of a key wins); after a failure or a crash, either
///   all rows of the batch are stored or none. Writing the same batch twice
///   leaves the store as after one write. An empty batch is a no-op.
/// - `query_bars` follows [`BarQuery`]'s contract and returns every column
///   bit-exactly as written (floats compared by bits, absent optionals as
///   nulls). The stream yields bounded batches in order and ends after the
///   first error. A query that matches nothing yields no rows (an empty
///   stream or only empty batches), never `NotFound`.
/// - `summary` lists every stored symbol with first/last timestamp and count.
/// - `digest` computes [`crate::digest`]'s (symbol, day) digests inside the
///   backend; equal data gives equal digests in every backend.
/// - `delete_bars` removes `[start, end)` of one symbol and returns how many rows went.
/// - `health` makes a real round trip; it returns `Ok` with a `Degraded`
///   status rather than an error when the backend answers but is degraded,
///   and `backend` equal to the store's `Display`. A composed store lists its
///   parts' reports as components.
/// - `Display` describes the store for logs and errors: a backend prints its
///   short name (`duckdb`, `memory`, `neon`), a decorator prints itself around
///   what it wraps (`failover(neon, duckdb)`).
/// - `capabilities` is constant for the life of the store; an operation the
///   store cannot do returns `Unsupported`.
/// - Safe to call from many tasks at once; writers on different symbols do not block each other
///   longer than one batch.
///
/// # Retrying (what a decorator may repeat after an error whose outcome is unknown)
///
/// | method | [`Idempotency`](crate::policy::Idempotency) | a retry is safe because |
/// |---|---|---|
/// | `write_bars` | `Idempotent` | an upsert by (symbol, timestamp): a replay leaves the same rows |
/// | `query_bars` | `Safe` | a read; but a stream that already yielded batches must be restarted whole, never resumed |
/// | `summary`, `digest`, `health` | `Safe` | reads |
/// | `delete_bars` | `Idempotent` | deleting a deleted range deletes nothing (the count may then be 0) |
///
/// Adapters that retry inside themselves (PostgreSQL retries connection
/// faults within its retry budget) return `Unavailable` or `Timeout` only
/// once that budget is spent: an outer retry layer must not be stacked on
/// such an adapter.
#[async_trait::async_trait]
pub trait MarketDataStore: Send + Sync + std::fmt::Debug + std::fmt::Display + 'static {
    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Upserts a batch atomically after validating it.
    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport>;

    /// Streams the bars matching `query`.
    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>>;

    /// Per-symbol coverage.
    async fn summary(&self) -> Result<MarketSummary>;

    /// Per-(symbol, day) digests, ordered by (symbol, day).
    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>>;

    /// Deletes one symbol's bars in `[range.start, range.end)`.
    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64>;

    /// A round trip and backend facts.
    async fn health(&self) -> Result<HealthReport>;
}

/// Helpers over [`MarketDataStore`] (a blanket impl; wrappers cannot override them).
#[async_trait::async_trait]
pub trait MarketDataStoreExt: MarketDataStore {
    /// Runs `query` and gathers every non-empty batch.
    async fn collect_batches(&self, query: BarQuery) -> Result<Vec<BarBatch>> {
        let mut stream = self.query_bars(query);
        let mut batches = Vec::new();
        while let Some(batch) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            let batch = batch?;
            if !batch.is_empty() {
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    /// Runs `query` and returns the rows (for small results and tests).
    async fn collect_bars(&self, query: BarQuery) -> Result<Vec<Bar>> {
        Ok(self.collect_batches(query).await?.iter().flat_map(BarBatch::to_bars).collect())
    }
}

impl<T: MarketDataStore + ?Sized> MarketDataStoreExt for T {}

const _: fn() = || {
    fn assert_object_safe_and_shareable<T: ?Sized + Send + Sync>() {}
    assert_object_safe_and_shareable::<Arc<dyn MarketDataStore>>();
};
