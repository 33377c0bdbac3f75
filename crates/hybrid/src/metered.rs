//! [`MeteredStore`]: counts and times every call to the store it wraps,
//! through the [`metrics`] facade (this crate installs no exporter; the
//! binary does, and without one every metric is a no-op).
//!
//! # Metrics
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `strata_store_operations_total` | counter | `store`, `operation`, `outcome` | calls that ended |
//! | `strata_store_operation_seconds` | histogram | `store`, `operation` | how long each call took, in seconds |
//! | `strata_store_rows_written_total` | counter | `store`, `durability` | rows of successful `write_bars` calls |
//! | `strata_store_rows_read_total` | counter | `store` | rows streamed by `query_bars` |
//!
//! - `store` is the label given to [`MeteredStore::new`] (`hybrid`, `primary`, ...).
//! - `operation` is the port method: `write_bars`, `query_bars`, `summary`,
//!   `digest`, `delete_bars`, `health` (`capabilities` is not metered).
//! - `outcome` is `ok`, or the [`StoreError::kind`] of the error
//!   (`unavailable`, `timeout`, `invalid_input`, ...), or `cancelled` when the
//!   caller dropped the call (or the query stream) before it ended.
//! - `durability` is the [`WriteReport`]'s: `committed` or `journaled`.
//!
//! A `query_bars` call is timed from the first poll of its stream to its end
//! (the last batch, its error, or the caller dropping it); its rows are
//! counted batch by batch as they are yielded, so a read that fails halfway
//! counts the rows it delivered.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use metrics::SharedString;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary, Result,
    StoreError, Symbol, TimeRange, WriteReport,
};

/// Calls that ended, by `store`, `operation` and `outcome`.
pub const OPERATIONS_TOTAL: &str = "strata_store_operations_total";
/// Duration of each call in seconds, by `store` and `operation`.
pub const OPERATION_SECONDS: &str = "strata_store_operation_seconds";
/// Rows of successful writes, by `store` and `durability`.
pub const ROWS_WRITTEN_TOTAL: &str = "strata_store_rows_written_total";
/// Rows yielded by `query_bars`, by `store`.
pub const ROWS_READ_TOTAL: &str = "strata_store_rows_read_total";

/// A [`MarketDataStore`] that records the metrics of the module docs for
/// every call to its inner store. Prints itself as `metered(<inner>)`.
#[derive(Debug, Clone)]
pub struct MeteredStore {
    inner: Arc<dyn MarketDataStore>,
    label: SharedString,
}

impl MeteredStore {
    /// Meters `inner` under the `store` label `label` (`"hybrid"`, or an
    /// owned `String`).
    pub fn new(inner: Arc<dyn MarketDataStore>, label: impl Into<Cow<'static, str>>) -> Self {
        MeteredStore { inner, label: SharedString::from(label.into()) }
    }

    /// The store this one wraps.
    pub fn inner(&self) -> &Arc<dyn MarketDataStore> {
        &self.inner
    }

    /// The `store` label of this store's metrics.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Starts timing one call of `operation`.
    fn start(&self, operation: &'static str) -> Call {
        Call::new(self.label.clone(), operation)
    }
}

impl fmt::Display for MeteredStore {
    /// `metered(<inner>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metered({})", self.inner)
    }
}

/// One call being measured: records its outcome and duration once, when it
/// ends ([`Call::finish`]) or, as `cancelled`, when it is dropped unfinished.
struct Call {
    store: SharedString,
    operation: &'static str,
    started: Instant,
    finished: bool,
}

impl Call {
    fn new(store: SharedString, operation: &'static str) -> Self {
        Call { store, operation, started: Instant::now(), finished: false }
    }

    /// Records `outcome` (`ok` or an error kind) and the time since the start.
    fn finish(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let (store, operation) = (self.store.clone(), self.operation);
        metrics::counter!(OPERATIONS_TOTAL, "store" => store.clone(), "operation" => operation, "outcome" => outcome)
            .increment(1);
        metrics::histogram!(OPERATION_SECONDS, "store" => store, "operation" => operation)
            .record(self.started.elapsed().as_secs_f64());
    }

    /// Records the outcome of `result` and passes it on.
    fn result<T>(mut self, result: Result<T>) -> Result<T> {
        self.finish(outcome(&result));
        result
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish("cancelled");
    }
}

/// `ok`, or the error's kind.
fn outcome<T>(result: &Result<T>) -> &'static str {
    result.as_ref().map_or_else(StoreError::kind, |_| "ok")
}

/// Where a metered query is: not polled yet, streaming (timed since the
/// first poll), or done.
struct MeteredQuery {
    store: SharedString,
    stream: BoxStream<'static, Result<BarBatch>>,
    call: Option<Call>,
    done: bool,
}

/// `stream`, counting the rows it yields and recording its outcome and
/// duration when it ends (or is dropped).
fn metered_query(
    store: SharedString,
    stream: BoxStream<'static, Result<BarBatch>>,
) -> BoxStream<'static, Result<BarBatch>> {
    let start = MeteredQuery { store, stream, call: None, done: false };
    futures::stream::unfold(start, |mut state| async move {
        if state.done {
            return None;
        }
        let call = state.call.get_or_insert_with(|| Call::new(state.store.clone(), "query_bars"));
        match state.stream.next().await {
            Some(Ok(batch)) => {
                metrics::counter!(ROWS_READ_TOTAL, "store" => state.store.clone()).increment(batch.len() as u64);
                Some((Ok(batch), state))
            }
            Some(Err(error)) => {
                call.finish(error.kind());
                state.done = true;
                Some((Err(error), state))
            }
            None => {
                call.finish("ok");
                None
            }
        }
    })
    .boxed()
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl MarketDataStore for MeteredStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        let call = self.start("write_bars");
        let result = self.inner.write_bars(batch).await;
        if let Ok(report) = &result {
            metrics::counter!(
                ROWS_WRITTEN_TOTAL,
                "store" => self.label.clone(),
                "durability" => report.durability.as_str()
            )
            .increment(report.rows);
        }
        call.result(result)
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        metered_query(self.label.clone(), self.inner.query_bars(query))
    }

    async fn summary(&self) -> Result<MarketSummary> {
        let call = self.start("summary");
        call.result(self.inner.summary().await)
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        let call = self.start("digest");
        call.result(self.inner.digest(query).await)
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        let call = self.start("delete_bars");
        call.result(self.inner.delete_bars(symbol, range).await)
    }

    async fn health(&self) -> Result<HealthReport> {
        let call = self.start("health");
        let inner = call.result(self.inner.health().await)?;
        Ok(HealthReport::new(self.to_string(), inner.status).with_component(inner))
    }
}
