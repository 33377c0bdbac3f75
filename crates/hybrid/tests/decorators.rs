//! The four small decorators (`RetryStore`, `TimeoutStore`, `MeteredStore`,
//! `LazyStore`): the whole market conformance suite through each over the
//! in-memory store, then their own behaviour over a `FlakyStore` that injects
//! failures and latency on a schedule.
//!
//! Tokio's paused clock is not available here (`test-util` is not enabled in
//! this crate, and `strata_store_kit::retry` measures its budget on the
//! system clock), so the timing tests use real time with wide margins: a
//! deadline the test waits past is always passed; a call that must come
//! before a deadline has hundreds of milliseconds to spare.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use strata_adapter_mock::MemoryStore;
use strata_core::policy::Backoff;
use strata_core::{
    Bar, BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, HealthStatus, MarketDataStore,
    MarketDataStoreExt as _, MarketSummary, Result, StoreError, Symbol, TimeRange, WriteReport,
};
use strata_hybrid::lazy::LazyStore;
use strata_hybrid::metered::MeteredStore;
use strata_hybrid::retry::RetryStore;
use strata_hybrid::timeout::TimeoutStore;
use strata_tests::fixtures::{BASE, minutes, symbol};

/// Short waits and a budget long enough for any test's few retries.
fn quick_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(5), Duration::from_secs(10))
}

fn memory() -> Arc<dyn MarketDataStore> {
    Arc::new(MemoryStore::new())
}

/// What the capabilities of a lazily opened memory store are said to be.
const MEMORY_CAPABILITIES: Capabilities = Capabilities {
    durable: false,
    shared_across_hosts: false,
    server_side_digest: true,
    cheap_delete: true,
    transactions: true,
};

/// What a [`LazyStore`]'s opener returns.
type Opening = BoxFuture<'static, Result<Arc<dyn MarketDataStore>>>;

/// An opener that opens a fresh memory store.
fn open_memory() -> Opening {
    Box::pin(async { Ok(memory()) })
}

mod retry_conformance {
    use super::*;

    strata_tests::market_conformance!(|| async { Arc::new(RetryStore::new(memory(), quick_backoff())) });
}

mod timeout_conformance {
    use super::*;

    strata_tests::market_conformance!(|| async { Arc::new(TimeoutStore::new(memory(), Duration::from_secs(120))) });
}

mod metered_conformance {
    use super::*;

    strata_tests::market_conformance!(|| async { Arc::new(MeteredStore::new(memory(), "conformance")) });
}

mod lazy_conformance {
    use super::*;

    strata_tests::market_conformance!(|| async {
        Arc::new(LazyStore::new("memory", MEMORY_CAPABILITIES, Duration::from_secs(1), open_memory))
    });
}

mod stacked_conformance {
    use super::*;

    // The order of the hybrid stack's primary: metered(timeout(retry(lazy(primary)))).
    strata_tests::market_conformance!(|| async {
        let lazy: Arc<dyn MarketDataStore> =
            Arc::new(LazyStore::new("memory", MEMORY_CAPABILITIES, Duration::from_secs(1), open_memory));
        let retry: Arc<dyn MarketDataStore> = Arc::new(RetryStore::new(lazy, quick_backoff()));
        let timeout: Arc<dyn MarketDataStore> = Arc::new(TimeoutStore::new(retry, Duration::from_secs(120)));
        Arc::new(MeteredStore::new(timeout, "stacked"))
    });
}

// ---------------------------------------------------------------------------
// A store that fails or stalls on a schedule.

/// What [`FlakyStore`] does to one call (taken from its schedule in call order).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Fail with `Unavailable` that nobody retried yet.
    Unavailable,
    /// Fail with `Unavailable` already marked `retries_exhausted`.
    UnavailableAfterRetries,
    /// Fail with `InvalidInput`.
    Invalid,
    /// Sleep this long, then forward.
    Sleep(Duration),
    /// `query_bars`: yield the first batch, then fail with `Unavailable`.
    FailAfterFirstBatch,
    /// `query_bars`: yield the first batch, then never yield again.
    StallAfterFirstBatch,
    /// `query_bars`: never yield anything.
    StallBeforeFirstBatch,
    /// `query_bars`: yield each batch of the inner store after this pause
    /// (the inner batches are split into batches of one row).
    SlowRows(Duration),
}

/// A store over a memory store that applies a schedule of [`Fault`]s, one
/// per call (any method), then forwards; it counts calls and numbers its
/// errors (`down (call 3)`), so a test can tell which attempt an error came from.
#[derive(Debug)]
struct FlakyStore {
    inner: Arc<dyn MarketDataStore>,
    schedule: Mutex<VecDeque<Fault>>,
    /// Faults applied once the schedule is empty (`None`: forward).
    forever: Option<Fault>,
    calls: AtomicU32,
    journaled: bool,
}

impl FlakyStore {
    fn new(schedule: impl IntoIterator<Item = Fault>) -> Arc<Self> {
        Arc::new(FlakyStore {
            inner: memory(),
            schedule: Mutex::new(schedule.into_iter().collect()),
            forever: None,
            calls: AtomicU32::new(0),
            journaled: false,
        })
    }

    /// A store that applies `fault` to every call.
    fn always(fault: Fault) -> Arc<Self> {
        Arc::new(FlakyStore {
            inner: memory(),
            schedule: Mutex::new(VecDeque::new()),
            forever: Some(fault),
            calls: AtomicU32::new(0),
            journaled: false,
        })
    }

    /// A store whose writes report `Journaled` rows instead of `Committed`.
    fn journaling() -> Arc<Self> {
        Arc::new(FlakyStore {
            inner: memory(),
            schedule: Mutex::new(VecDeque::new()),
            forever: None,
            calls: AtomicU32::new(0),
            journaled: true,
        })
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call and returns its number and fault.
    fn next(&self) -> (u32, Option<Fault>) {
        let number = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = self.schedule.lock().unwrap().pop_front().or(self.forever);
        (number, fault)
    }

    /// Applies the fault of the next call (errors and sleeps); stream faults are left to `query_bars`.
    async fn enter(&self) -> Result<()> {
        let (number, fault) = self.next();
        match fault {
            Some(fault) => apply(number, fault).await,
            None => Ok(()),
        }
    }
}

/// The error or pause of a call-level fault.
async fn apply(number: u32, fault: Fault) -> Result<()> {
    match fault {
        Fault::Unavailable => Err(down(number)),
        Fault::UnavailableAfterRetries => Err(down(number).after_retries()),
        Fault::Invalid => Err(StoreError::invalid(format!("bad argument (call {number})"))),
        Fault::Sleep(pause) => {
            tokio::time::sleep(pause).await;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn down(number: u32) -> StoreError {
    StoreError::unavailable("flaky", format!("down (call {number})"), None)
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flaky")
    }
}

#[async_trait::async_trait]
impl MarketDataStore for FlakyStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities { durable: true, ..Capabilities::default() }
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        self.enter().await?;
        let report = self.inner.write_bars(batch).await?;
        Ok(if self.journaled { WriteReport::journaled(report.rows) } else { report })
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        let (number, fault) = self.next();
        let inner = self.inner.query_bars(query);
        match fault {
            None => inner,
            Some(Fault::FailAfterFirstBatch) => {
                inner.take(1).chain(futures::stream::once(async move { Err(down(number)) })).boxed()
            }
            Some(Fault::StallAfterFirstBatch) => inner.take(1).chain(futures::stream::pending()).boxed(),
            Some(Fault::StallBeforeFirstBatch) => futures::stream::pending().boxed(),
            Some(Fault::SlowRows(pause)) => inner
                .flat_map(|batch| {
                    let rows: Vec<Result<BarBatch>> = match batch {
                        Ok(batch) => batch
                            .to_bars()
                            .iter()
                            .map(|bar| Ok(BarBatch::from_bars(std::slice::from_ref(bar))))
                            .collect(),
                        Err(error) => vec![Err(error)],
                    };
                    futures::stream::iter(rows)
                })
                .then(move |item| async move {
                    tokio::time::sleep(pause).await;
                    item
                })
                .boxed(),
            Some(fault) => futures::stream::once(async move {
                match apply(number, fault).await {
                    Ok(()) => inner,
                    Err(error) => futures::stream::iter([Err(error)]).boxed(),
                }
            })
            .flatten()
            .boxed(),
        }
    }

    async fn summary(&self) -> Result<MarketSummary> {
        self.enter().await?;
        self.inner.summary().await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        self.enter().await?;
        self.inner.digest(query).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        self.enter().await?;
        self.inner.delete_bars(symbol, range).await
    }

    async fn health(&self) -> Result<HealthReport> {
        self.enter().await?;
        Ok(HealthReport::new("flaky", HealthStatus::Healthy))
    }
}

/// Every item of `stream`, errors included, until it ends.
async fn items(mut stream: BoxStream<'static, Result<BarBatch>>) -> Vec<Result<BarBatch>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

/// `work`'s output, or a failure (instead of a hang) when it takes 10 s.
async fn within_10s<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), work).await.expect("finished within 10 s")
}

fn rows_of(items: &[Result<BarBatch>]) -> usize {
    items.iter().filter_map(|item| item.as_ref().ok()).map(BarBatch::len).sum()
}

fn bars(count: usize) -> Vec<Bar> {
    minutes("AAA", count)
}

async fn seed(store: &dyn MarketDataStore, count: usize) {
    store.write_bars(BarBatch::from_bars(&bars(count))).await.unwrap();
}

fn everything() -> TimeRange {
    TimeRange { start: BASE, end: BASE.plus_micros(1_000 * 86_400_000_000) }
}

// ---------------------------------------------------------------------------
// RetryStore

#[tokio::test]
async fn retry_succeeds_after_transient_failures() {
    let flaky = FlakyStore::new([Fault::Unavailable, Fault::Unavailable]);
    let store = RetryStore::new(flaky.clone(), quick_backoff());
    let report = store.write_bars(BarBatch::from_bars(&bars(5))).await.unwrap();
    assert_eq!(report, WriteReport::committed(5));
    assert_eq!(flaky.calls(), 3, "two failures, then the write that landed");
    assert_eq!(flaky.inner.summary().await.unwrap().total_rows(), 5);

    // Every method goes through the same loop.
    let flaky = FlakyStore::new([Fault::Unavailable, Fault::Unavailable, Fault::Unavailable]);
    let store = RetryStore::new(flaky.clone(), quick_backoff());
    assert!(store.summary().await.unwrap().symbols.is_empty());
    assert_eq!(flaky.calls(), 4);
    let flaky = FlakyStore::new([Fault::Unavailable]);
    let store = RetryStore::new(flaky.clone(), quick_backoff());
    assert_eq!(store.delete_bars(&symbol("AAA"), everything()).await.unwrap(), 0);
    assert!(store.digest(DigestQuery::default()).await.unwrap().is_empty());
    let health = store.health().await.unwrap();
    assert_eq!(flaky.calls(), 4, "delete twice, then digest, then health");
    assert_eq!((health.backend.as_str(), health.components[0].backend.as_str()), ("retry(flaky)", "flaky"));
}

#[tokio::test]
async fn retry_gives_up_after_its_budget_with_the_last_error() {
    let flaky = FlakyStore::always(Fault::Unavailable);
    let budget = Backoff::new(Duration::from_millis(2), Duration::from_millis(5), Duration::from_millis(100));
    let store = RetryStore::new(flaky.clone(), budget);
    let started = Instant::now();
    let error = store.write_bars(BarBatch::from_bars(&bars(2))).await.unwrap_err();
    let calls = flaky.calls();
    assert!(calls >= 3, "a 100 ms budget of 1-5 ms waits allows several attempts, made {calls}");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(error.retries_exhausted(), "the error says the retries are spent, so nobody above retries: {error:?}");
    assert!(error.to_string().contains(&format!("down (call {calls})")), "the last attempt's error: {error}");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped at the budget: {:?}", started.elapsed());
}

#[tokio::test]
async fn retry_returns_invalid_input_and_exhausted_errors_at_once() {
    for fault in [Fault::Invalid, Fault::UnavailableAfterRetries] {
        let flaky = FlakyStore::always(fault);
        let store = RetryStore::new(flaky.clone(), quick_backoff());
        let error = store.write_bars(BarBatch::from_bars(&bars(2))).await.unwrap_err();
        assert_eq!(flaky.calls(), 1, "{fault:?} is not retried: {error}");
        let error = store.summary().await.unwrap_err();
        assert_eq!(flaky.calls(), 2, "{fault:?} is not retried: {error}");
        let expected = if fault == Fault::Invalid { "invalid_input" } else { "unavailable" };
        assert_eq!(error.kind(), expected);
    }
    // A real validation failure of the inner store is not retried either.
    let flaky = FlakyStore::new([]);
    let store = RetryStore::new(flaky.clone(), quick_backoff());
    let mut bad = bars(3);
    bad[1].high = -1.0;
    let error = store.write_bars(BarBatch::from_bars(&bad)).await.unwrap_err();
    assert!(error.validation_report().is_some(), "{error:?}");
    assert_eq!(flaky.calls(), 1);
}

#[tokio::test]
async fn retry_reopens_a_query_that_failed_before_its_first_batch() {
    let flaky = FlakyStore::new([]);
    seed(flaky.as_ref(), 10).await;
    flaky.schedule.lock().unwrap().extend([Fault::Unavailable, Fault::Unavailable]);
    let store = RetryStore::new(flaky.clone(), quick_backoff());
    let items = items(store.query_bars(BarQuery::default())).await;
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert_eq!(rows_of(&items), 10);
    assert_eq!(flaky.calls(), 1 + 3, "the seed, two failed opens, one that streamed");
}

#[tokio::test]
async fn retry_never_resumes_a_query_that_failed_after_its_first_batch() {
    let flaky = FlakyStore::new([]);
    seed(flaky.as_ref(), 10).await;
    flaky.schedule.lock().unwrap().push_back(Fault::FailAfterFirstBatch);
    let store = RetryStore::new(flaky.clone(), quick_backoff());
    let items = items(store.query_bars(BarQuery::default())).await;
    assert_eq!(items.len(), 2, "the first batch, then the error ends the stream: {items:?}");
    assert_eq!(rows_of(&items[..1]), 10);
    let error = items[1].as_ref().unwrap_err();
    assert!(error.to_string().contains("down (call 2)"), "{error}");
    assert_eq!(flaky.calls(), 2, "the seed and one query: nothing was reopened");
}

#[tokio::test]
async fn retry_query_gives_up_like_any_call() {
    let flaky = FlakyStore::always(Fault::UnavailableAfterRetries);
    let store = RetryStore::new(flaky.clone(), quick_backoff());
    let items = items(store.query_bars(BarQuery::default())).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].as_ref().is_err_and(StoreError::retries_exhausted));
    assert_eq!(flaky.calls(), 1);
}

// ---------------------------------------------------------------------------
// TimeoutStore

#[tokio::test]
async fn timeout_fires_on_a_slow_write() {
    let flaky = FlakyStore::new([Fault::Sleep(Duration::from_secs(30))]);
    let store = TimeoutStore::new(flaky.clone(), Duration::from_millis(100));
    let started = Instant::now();
    let error = store.write_bars(BarBatch::from_bars(&bars(3))).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "gave up long before the write: {:?}", started.elapsed());
    assert!(matches!(error, StoreError::Timeout { retries_exhausted: false, .. }), "{error:?}");
    assert_eq!(error.backend(), Some("flaky"));
    assert_eq!(error.to_string(), "flaky timed out: write_bars took longer than 100ms");
    assert_eq!(flaky.inner.summary().await.unwrap().total_rows(), 0, "the write was cancelled before it ran");

    // A call within the limit passes.
    let report = store.write_bars(BarBatch::from_bars(&bars(3))).await.unwrap();
    assert_eq!(report.rows, 3);
}

#[tokio::test]
async fn timeout_bounds_every_method() {
    let slow = Fault::Sleep(Duration::from_secs(30));
    let flaky = FlakyStore::always(slow);
    let store = TimeoutStore::new(flaky.clone(), Duration::from_millis(50));
    let errors = [
        store.summary().await.unwrap_err(),
        store.digest(DigestQuery::default()).await.unwrap_err(),
        store.delete_bars(&symbol("AAA"), everything()).await.unwrap_err(),
        store.health().await.unwrap_err(),
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for (error, operation) in errors.iter().zip(["summary", "digest", "delete_bars", "health"]) {
        assert_eq!(error.kind(), "timeout");
        assert!(error.to_string().contains(&format!("{operation} took longer than 50ms")), "{messages:?}");
    }
}

#[tokio::test]
async fn timeout_ends_a_stream_that_stalls_after_its_first_batch() {
    let flaky = FlakyStore::new([]);
    seed(flaky.as_ref(), 4).await;
    flaky.schedule.lock().unwrap().push_back(Fault::StallAfterFirstBatch);
    let store = TimeoutStore::new(flaky.clone(), Duration::from_millis(100));
    let started = Instant::now();
    let items = within_10s(items(store.query_bars(BarQuery::default()))).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(rows_of(&items[..1]), 4);
    let error = items[1].as_ref().unwrap_err();
    assert_eq!(error.kind(), "timeout");
    assert!(error.to_string().contains("query_bars (waiting for the next batch) took longer than 100ms"), "{error}");
}

#[tokio::test]
async fn timeout_ends_a_stream_that_never_yields() {
    let flaky = FlakyStore::new([Fault::StallBeforeFirstBatch]);
    let store = TimeoutStore::new(flaky.clone(), Duration::from_millis(100));
    let items = within_10s(items(store.query_bars(BarQuery::default()))).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let error = items[0].as_ref().unwrap_err();
    assert!(error.to_string().contains("query_bars (waiting for the first batch) took longer than 100ms"), "{error}");
}

#[tokio::test]
async fn timeout_bounds_each_batch_not_the_whole_stream() {
    let flaky = FlakyStore::new([]);
    seed(flaky.as_ref(), 4).await;
    // Four batches 300 ms apart: 1.2 s in all, each well within 1 s.
    flaky.schedule.lock().unwrap().push_back(Fault::SlowRows(Duration::from_millis(300)));
    let store = TimeoutStore::new(flaky.clone(), Duration::from_secs(1));
    let started = Instant::now();
    let items = items(store.query_bars(BarQuery::default())).await;
    assert!(started.elapsed() > Duration::from_secs(1), "the stream took longer than one limit");
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert_eq!((items.len(), rows_of(&items)), (4, 4));
}

// ---------------------------------------------------------------------------
// MeteredStore

/// A `metrics` recorder that sums counters and counts histogram samples per
/// `name{label=value,...}` (labels sorted).
#[derive(Debug, Default, Clone)]
struct TestRecorder {
    counters: Arc<Mutex<BTreeMap<String, u64>>>,
    histograms: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
}

/// The text key of a metric: `name{a=1,b=2}` (labels sorted).
fn key_text(key: &metrics::Key) -> String {
    let mut labels: Vec<String> = key.labels().map(|label| format!("{}={}", label.key(), label.value())).collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

#[derive(Debug)]
struct TestCounter(String, Arc<Mutex<BTreeMap<String, u64>>>);

impl metrics::CounterFn for TestCounter {
    fn increment(&self, value: u64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.1.lock().unwrap().insert(self.0.clone(), value);
    }
}

#[derive(Debug)]
struct TestHistogram(String, Arc<Mutex<BTreeMap<String, Vec<f64>>>>);

impl metrics::HistogramFn for TestHistogram {
    fn record(&self, value: f64) {
        self.1.lock().unwrap().entry(self.0.clone()).or_default().push(value);
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::new(TestCounter(key_text(key), self.counters.clone())))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(TestHistogram(key_text(key), self.histograms.clone())))
    }
}

impl TestRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.counters.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn samples(&self, key: &str) -> usize {
        self.histograms.lock().unwrap().get(key).map_or(0, Vec::len)
    }

    /// Runs `test` on a current-thread runtime with this recorder installed
    /// on the thread (so every metric the test's calls record lands here).
    fn run<F: std::future::Future<Output = ()>>(&self, test: impl FnOnce() -> F) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        metrics::with_local_recorder(self, || runtime.block_on(test()));
    }
}

fn operations(store: &str, operation: &str, outcome: &str) -> String {
    format!("strata_store_operations_total{{operation={operation},outcome={outcome},store={store}}}")
}

#[test]
fn metered_counts_calls_outcomes_and_rows() {
    let recorder = TestRecorder::default();
    let flaky = FlakyStore::new([]);
    recorder.run(|| async {
        let store = MeteredStore::new(flaky.clone(), "primary");
        assert_eq!(store.to_string(), "metered(flaky)");
        store.write_bars(BarBatch::from_bars(&bars(7))).await.unwrap();
        store.write_bars(BarBatch::from_bars(&bars(3))).await.unwrap();
        let mut bad = bars(2);
        bad[0].low = f64::NAN;
        assert!(store.write_bars(BarBatch::from_bars(&bad)).await.is_err());
        assert_eq!(store.collect_bars(BarQuery::default()).await.unwrap().len(), 7);
        assert_eq!(store.collect_bars(BarQuery { limit: Some(2), ..BarQuery::default() }).await.unwrap().len(), 2);
        flaky.schedule.lock().unwrap().extend([Fault::Unavailable, Fault::Invalid]);
        assert_eq!(store.summary().await.unwrap_err().kind(), "unavailable");
        assert_eq!(store.delete_bars(&symbol("AAA"), everything()).await.unwrap_err().kind(), "invalid_input");
        assert_eq!(store.delete_bars(&symbol("AAA"), everything()).await.unwrap(), 7);
        let health = store.health().await.unwrap();
        assert_eq!(health.backend, "metered(flaky)");
        assert_eq!(health.components[0].backend, "flaky");
    });
    assert_eq!(recorder.counter(&operations("primary", "write_bars", "ok")), 2);
    assert_eq!(recorder.counter(&operations("primary", "write_bars", "invalid_input")), 1);
    assert_eq!(recorder.counter(&operations("primary", "query_bars", "ok")), 2);
    assert_eq!(recorder.counter(&operations("primary", "summary", "unavailable")), 1);
    assert_eq!(recorder.counter(&operations("primary", "summary", "ok")), 0);
    assert_eq!(recorder.counter(&operations("primary", "delete_bars", "invalid_input")), 1);
    assert_eq!(recorder.counter(&operations("primary", "delete_bars", "ok")), 1);
    assert_eq!(recorder.counter(&operations("primary", "health", "ok")), 1);
    assert_eq!(recorder.counter("strata_store_rows_written_total{durability=committed,store=primary}"), 10);
    assert_eq!(recorder.counter("strata_store_rows_written_total{durability=journaled,store=primary}"), 0);
    assert_eq!(recorder.counter("strata_store_rows_read_total{store=primary}"), 7 + 2);
    assert_eq!(recorder.samples("strata_store_operation_seconds{operation=write_bars,store=primary}"), 3);
    assert_eq!(recorder.samples("strata_store_operation_seconds{operation=query_bars,store=primary}"), 2);
    assert_eq!(recorder.samples("strata_store_operation_seconds{operation=delete_bars,store=primary}"), 2);
    let total: u64 = recorder
        .counters
        .lock()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.starts_with("strata_store_operations_total"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(total, 3 + 2 + 1 + 2 + 1, "one count per call, nothing else");
}

#[test]
fn metered_labels_journaled_rows_failed_and_dropped_streams() {
    let recorder = TestRecorder::default();
    let journaling = FlakyStore::journaling();
    let flaky = FlakyStore::new([]);
    recorder.run(|| async {
        let store = MeteredStore::new(journaling.clone(), String::from("hybrid"));
        assert_eq!(store.write_bars(BarBatch::from_bars(&bars(4))).await.unwrap(), WriteReport::journaled(4));

        let store = MeteredStore::new(flaky.clone(), "cache");
        seed(flaky.as_ref(), 6).await;
        flaky.schedule.lock().unwrap().push_back(Fault::FailAfterFirstBatch);
        let items = items(store.query_bars(BarQuery::default())).await;
        assert_eq!((items.len(), rows_of(&items)), (2, 6));
        // A stream the caller drops after its first batch.
        let mut stream = store.query_bars(BarQuery::default());
        assert!(stream.next().await.is_some_and(|item| item.is_ok()));
        drop(stream);
        // A stream never polled is no call at all.
        drop(store.query_bars(BarQuery::default()));
    });
    assert_eq!(recorder.counter("strata_store_rows_written_total{durability=journaled,store=hybrid}"), 4);
    assert_eq!(recorder.counter("strata_store_rows_written_total{durability=committed,store=hybrid}"), 0);
    assert_eq!(recorder.counter(&operations("cache", "query_bars", "unavailable")), 1);
    assert_eq!(recorder.counter(&operations("cache", "query_bars", "cancelled")), 1);
    assert_eq!(recorder.counter(&operations("cache", "query_bars", "ok")), 0);
    assert_eq!(recorder.counter("strata_store_rows_read_total{store=cache}"), 6 + 6, "rows delivered are counted");
    assert_eq!(recorder.samples("strata_store_operation_seconds{operation=query_bars,store=cache}"), 2);
}

// ---------------------------------------------------------------------------
// LazyStore

/// An opener that fails its first `failures` calls (`refused #n`), then
/// opens `store` (after `pause`), counting its calls.
fn opener(
    failures: u32,
    pause: Duration,
    store: Arc<dyn MarketDataStore>,
) -> (Arc<AtomicU32>, impl Fn() -> Opening + Send + Sync + 'static) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let open = move || -> Opening {
        let number = counted.fetch_add(1, Ordering::SeqCst) + 1;
        let store = store.clone();
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            if number <= failures {
                Err(StoreError::unavailable("pg", format!("refused #{number}"), None))
            } else {
                Ok(store)
            }
        })
    };
    (calls, open)
}

/// Asserts that `outcome` is the lazy store's "cannot open" error naming `reason`.
fn assert_cannot_open<T: fmt::Debug>(outcome: Result<T>, reason: &str) {
    let error = outcome.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert_eq!(error.backend(), Some("neon"));
    assert!(error.retries_exhausted(), "no layer above retries it: {error:?}");
    assert!(error.to_string().starts_with("neon unavailable: cannot open: "), "{error}");
    assert!(error.to_string().contains(reason), "expected {reason:?} in {error}");
    let source = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(source.contains(reason), "the opener's error is the source: {source:?}");
}

#[tokio::test]
async fn lazy_retries_opening_at_most_once_per_interval_then_forwards() {
    let retry_after = Duration::from_millis(800);
    let (opens, open) = opener(2, Duration::ZERO, memory());
    let store = LazyStore::new("neon", MEMORY_CAPABILITIES, retry_after, open);
    assert!(!store.is_open());
    assert_eq!(opens.load(Ordering::SeqCst), 0, "nothing is opened before the first call");
    assert_eq!(store.capabilities(), MEMORY_CAPABILITIES, "capabilities need no open store");
    assert_eq!(store.to_string(), "neon");

    // The first call tries; the calls right after fail fast with its error.
    assert_cannot_open(store.write_bars(BarBatch::from_bars(&bars(3))).await, "refused #1");
    assert_cannot_open(store.summary().await, "refused #1");
    assert_cannot_open(store.collect_bars(BarQuery::default()).await, "refused #1");
    assert_cannot_open(store.health().await, "refused #1");
    assert_cannot_open(store.delete_bars(&symbol("AAA"), everything()).await, "refused #1");
    assert_eq!(opens.load(Ordering::SeqCst), 1, "calls within retry_after do not call the opener");

    // After retry_after, one new attempt.
    tokio::time::sleep(retry_after + Duration::from_millis(100)).await;
    assert_cannot_open(store.digest(DigestQuery::default()).await, "refused #2");
    assert_cannot_open(store.write_bars(BarBatch::from_bars(&bars(3))).await, "refused #2");
    assert_eq!(opens.load(Ordering::SeqCst), 2);
    assert!(!store.is_open());

    // The third attempt opens the store; from then on every call forwards.
    tokio::time::sleep(retry_after + Duration::from_millis(100)).await;
    assert_eq!(store.write_bars(BarBatch::from_bars(&bars(3))).await.unwrap(), WriteReport::committed(3));
    assert!(store.is_open());
    assert_eq!(store.collect_bars(BarQuery::default()).await.unwrap(), bars(3));
    assert_eq!(store.summary().await.unwrap().total_rows(), 3);
    assert_eq!(store.digest(DigestQuery::default()).await.unwrap().len(), 1);
    let health = store.health().await.unwrap();
    assert_eq!(health.backend, "neon", "the store's own name");
    assert_eq!(health.components.len(), 1, "the inner store prints itself otherwise: {health:?}");
    assert_eq!(health.components[0].backend, "memory");
    assert_eq!(store.delete_bars(&symbol("AAA"), everything()).await.unwrap(), 3);
    assert_eq!(opens.load(Ordering::SeqCst), 3, "an open store is never opened again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lazy_concurrent_first_calls_open_once() {
    let (opens, open) = opener(0, Duration::from_millis(200), memory());
    let store = Arc::new(LazyStore::new("neon", MEMORY_CAPABILITIES, Duration::from_secs(60), open));
    let calls: Vec<_> = (0..16)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move {
                if index % 2 == 0 {
                    store.summary().await.map(|_| ())
                } else {
                    store.collect_bars(BarQuery::default()).await.map(|_| ())
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(opens.load(Ordering::SeqCst), 1);
    assert!(store.is_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lazy_concurrent_first_calls_share_one_failed_attempt() {
    let (opens, open) = opener(u32::MAX, Duration::from_millis(200), memory());
    let store = Arc::new(LazyStore::new("neon", MEMORY_CAPABILITIES, Duration::from_secs(60), open));
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.summary().await })
        })
        .collect();
    for call in calls {
        assert_cannot_open(call.await.unwrap(), "refused #1");
    }
    assert_eq!(opens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lazy_an_open_attempt_outlives_a_caller_that_gave_up() {
    let (opens, open) = opener(1, Duration::from_millis(200), memory());
    let store = LazyStore::new("neon", MEMORY_CAPABILITIES, Duration::from_secs(60), open);
    let gave_up = tokio::time::timeout(Duration::from_millis(20), store.summary()).await;
    assert!(gave_up.is_err(), "the caller stopped waiting");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The attempt ran to its end and its failure starts the retry_after window.
    assert_cannot_open(store.summary().await, "refused #1");
    assert_eq!(opens.load(Ordering::SeqCst), 1);

    // A successful attempt opens the store even when its only caller left.
    let (opens, open) = opener(0, Duration::from_millis(200), memory());
    let store = LazyStore::new("neon", MEMORY_CAPABILITIES, Duration::from_secs(60), open);
    assert!(tokio::time::timeout(Duration::from_millis(20), store.summary()).await.is_err());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.is_open(), "opened in the background");
    assert_eq!(store.summary().await.unwrap().total_rows(), 0);
    assert_eq!(opens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lazy_health_of_an_open_store_named_like_it_is_the_inner_report() {
    let store = LazyStore::new("memory", MEMORY_CAPABILITIES, Duration::from_secs(1), open_memory);
    store.write_bars(BarBatch::from_bars(&bars(2))).await.unwrap();
    let health = store.health().await.unwrap();
    let expected =
        HealthReport::new("memory", HealthStatus::Healthy).with_detail("symbols", "1").with_detail("rows", "2");
    assert_eq!(health, expected, "passed through, no wrapper");
}

// ---------------------------------------------------------------------------
// Composition

#[tokio::test]
async fn decorators_print_and_report_what_they_wrap() {
    let lazy: Arc<dyn MarketDataStore> =
        Arc::new(LazyStore::new("memory", MEMORY_CAPABILITIES, Duration::from_secs(1), open_memory));
    let retry: Arc<dyn MarketDataStore> = Arc::new(RetryStore::new(lazy, quick_backoff()));
    let timeout: Arc<dyn MarketDataStore> = Arc::new(TimeoutStore::new(retry, Duration::from_secs(5)));
    let store = MeteredStore::new(timeout, "primary");
    assert_eq!(store.to_string(), "metered(timeout(retry(memory)))");
    assert_eq!(store.capabilities(), MEMORY_CAPABILITIES);
    let health = store.health().await.unwrap();
    let mut names = Vec::new();
    let mut report = &health;
    loop {
        names.push(report.backend.clone());
        match report.components.as_slice() {
            [] => break,
            [only] => report = only,
            more => panic!("one component per decorator, got {more:?}"),
        }
    }
    assert_eq!(names, ["metered(timeout(retry(memory)))", "timeout(retry(memory))", "retry(memory)", "memory"]);
}

#[tokio::test]
async fn a_timeout_inside_a_retry_is_retried_per_attempt() {
    let flaky = FlakyStore::new([Fault::Sleep(Duration::from_secs(30)), Fault::Sleep(Duration::from_secs(30))]);
    let timeout: Arc<dyn MarketDataStore> = Arc::new(TimeoutStore::new(flaky.clone(), Duration::from_millis(50)));
    let store = RetryStore::new(timeout, quick_backoff());
    let started = Instant::now();
    assert_eq!(store.write_bars(BarBatch::from_bars(&bars(2))).await.unwrap().rows, 2);
    assert_eq!(flaky.calls(), 3);
    assert!(started.elapsed() < Duration::from_secs(10));
}
