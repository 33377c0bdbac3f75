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
//!
//! Errors by kind are `strata_store_operations_total` with an `outcome`
//! other than `ok`; no separate error counter repeats them.
//!
//! Every metric has HELP text: [`describe`] registers it with the recorder
//! installed at the time, and the first recording calls it once. A binary
//! that installs its exporter after something was recorded calls
//! [`describe`] itself.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Once};
use std::time::Instant;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use metrics::{SharedString, Unit};
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

/// Registers the unit and HELP text of the four metrics with the recorder
/// installed now. Harmless to repeat.
pub fn describe() {
    metrics::describe_counter!(
        OPERATIONS_TOTAL,
        Unit::Count,
        "Market-data store calls that ended, by store, operation and outcome (ok, or the error's kind)."
    );
    metrics::describe_histogram!(
        OPERATION_SECONDS,
        Unit::Seconds,
        "Duration of one market-data store call, by store and operation (a query from its first poll to its end)."
    );
    metrics::describe_counter!(
        ROWS_WRITTEN_TOTAL,
        Unit::Count,
        "Bars written by successful market-data store writes, by store and durability (committed, journaled)."
    );
    metrics::describe_counter!(ROWS_READ_TOTAL, Unit::Count, "Bars yielded by market-data store queries, by store.");
}

/// [`describe`], once per process, on the first recording.
fn describe_once() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe);
}

/// A [`MarketDataStore`] that records the metrics of the module docs for
/// every call to its inner store. Built with [`MeteredStore::new`] it prints
/// itself as `metered(<inner>)` and its health report wraps the inner one;
/// built with [`MeteredStore::transparent`] it prints and reports as its
/// inner store.
#[derive(Debug, Clone)]
pub struct MeteredStore {
    inner: Arc<dyn MarketDataStore>,
    label: SharedString,
    /// Prints and reports health as the inner store.
    transparent: bool,
}

impl MeteredStore {
    /// Meters `inner` under the `store` label `label` (`"hybrid"`, or an
    /// owned `String`), as a visible layer: `metered(<inner>)`.
    pub fn new(inner: Arc<dyn MarketDataStore>, label: impl Into<Cow<'static, str>>) -> Self {
        MeteredStore { inner, label: SharedString::from(label.into()), transparent: false }
    }

    /// Meters `inner` under the `store` label `label` without showing: it
    /// prints itself as `inner` does and returns `inner`'s health report
    /// unchanged (the health call is still metered). For a composition root
    /// that meters a plain backend without changing what users see.
    pub fn transparent(inner: Arc<dyn MarketDataStore>, label: impl Into<Cow<'static, str>>) -> Self {
        MeteredStore { inner, label: SharedString::from(label.into()), transparent: true }
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
    /// `metered(<inner>)`, or `<inner>` when transparent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.transparent { fmt::Display::fmt(&self.inner, f) } else { write!(f, "metered({})", self.inner) }
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
        describe_once();
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
        if self.transparent {
            return Ok(inner);
        }
        Ok(HealthReport::new(self.to_string(), inner.status).with_component(inner))
    }
}

#[cfg(test)]
mod tests {
    use strata_adapter_mock::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn a_transparent_meter_prints_and_reports_health_as_its_inner_store() {
        let memory: Arc<dyn MarketDataStore> = Arc::new(MemoryStore::new());
        let transparent = MeteredStore::transparent(memory.clone(), "memory");
        assert_eq!(transparent.to_string(), memory.to_string());
        assert_eq!(transparent.health().await.unwrap(), memory.health().await.unwrap());
        assert_eq!(transparent.label(), "memory");

        let visible = MeteredStore::new(memory.clone(), "memory");
        assert_eq!(visible.to_string(), format!("metered({memory})"));
        let health = visible.health().await.unwrap();
        assert_eq!(health.backend, visible.to_string());
        assert_eq!(health.components, [memory.health().await.unwrap()]);
    }
}
