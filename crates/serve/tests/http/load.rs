//! Concurrency and streaming: 64 clients at once get correct rows, a full
//! server answers 503 with `Retry-After`, a store error mid-stream aborts the
//! transfer, a huge result streams in bounded memory and stops when the
//! client goes away, and shutdown does not wait forever for a stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use strata_core::synthetic::SyntheticSpec;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary,
    Result as StoreResult, Symbol, TimeRange, WriteReport,
};
use strata_serve::{MetricsSource, Sources};
use tokio::sync::Semaphore;

use crate::support::{
    BARS_PER_SYMBOL, Fault, Faulty, SYMBOLS, assert_same, check_json, client, expected, filled_store, from_arrow,
    from_csv, start, window,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_reading_for_three_seconds_get_correct_rows() {
    let store = filled_store().await;
    let server = Arc::new(start(Sources::new(store.clone()), |_| {}).await);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut clients = Vec::new();
    for client_number in 0..64usize {
        let (server, store) = (server.clone(), store.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut requests = 0usize;
            let mut rows = 0usize;
            while Instant::now() < deadline || requests == 0 {
                let offset = ((requests * 137 + client_number * 53) % (BARS_PER_SYMBOL - 3_000)) as i64;
                let (query_string, query) = window((client_number + requests) % SYMBOLS, offset, offset + 2_500);
                let want = expected(store.as_ref(), query).await;
                let format = ["arrow", "csv", "json", "ndjson"][(client_number + requests) % 4];
                let response = http
                    .get(server.url(&format!("/v1/bars?{query_string}&format={format}")))
                    .send()
                    .await
                    .expect("the server answers");
                assert_eq!(response.status(), StatusCode::OK, "client {client_number}");
                let body = response.bytes().await.expect("a complete body");
                let context = format!("client {client_number}, {format}, {query_string}");
                match format {
                    "arrow" => assert_same(&from_arrow(&body), &want, &context),
                    "csv" => assert_same(&from_csv(&body), &want, &context),
                    "json" => check_json(&body, &want, true, &context),
                    _ => check_json(&body, &want, false, &context),
                }
                assert_eq!(want.len(), 2_500, "{context}");
                rows += want.len();
                requests += 1;
            }
            (requests, rows)
        }));
    }
    let mut total_requests = 0;
    let mut total_rows = 0;
    for handle in clients {
        let (requests, rows) = handle.await.expect("no client failed");
        total_requests += requests;
        total_rows += rows;
    }
    eprintln!("64 clients: {total_requests} requests, {total_rows} rows, all correct");
    assert!(total_requests >= 64);
}

#[tokio::test]
async fn a_full_server_answers_503_with_retry_after_and_recovers() {
    let gate = Arc::new(Semaphore::new(0));
    let store = Arc::new(Faulty { inner: filled_store().await, fault: Fault::StreamWaits(gate.clone()) });
    let sources = Sources::new(store.clone()).with_metrics(MetricsSource::new(|| "# metrics\n".into()));
    let server = start(sources, |config| config.limits.max_concurrent_requests = 2).await;
    let (query_string, query) = window(0, 0, 70_000);
    let url = server.url(&format!("/v1/bars?{query_string}&format=arrow"));
    // Two streams held open: each has sent its first batch and waits for the gate.
    let first = client().get(&url).send().await.unwrap();
    let second = client().get(&url).send().await.unwrap();
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let refused = server.get("/v1/summary", None).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[RETRY_AFTER], "1");
    let error: Value = refused.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("busy"), "{error}");
    assert_eq!(server.get("/metrics", None).await.status(), StatusCode::OK, "/metrics is not counted");

    gate.add_permits(1);
    let want = expected(store.inner.as_ref(), query).await;
    assert_eq!(from_arrow(&first.bytes().await.unwrap()), want);
    assert_eq!(from_arrow(&second.bytes().await.unwrap()), want);
    assert_eq!(server.get("/v1/summary", None).await.status(), StatusCode::OK, "slots come back with the bodies");
}

#[tokio::test]
async fn a_store_error_mid_stream_aborts_the_transfer() {
    let inner = filled_store().await;
    let server = start(Sources::new(Arc::new(Faulty { inner, fault: Fault::StreamBreaks })), |_| {}).await;
    for format in ["arrow", "csv", "json", "ndjson"] {
        let response = server.get(&format!("/v1/bars?symbols=SYN000,SYN001,SYN002&format={format}"), None).await;
        assert_eq!(response.status(), StatusCode::OK, "the status went out with the first batch");
        let body = response.bytes().await;
        assert!(
            body.is_err(),
            "{format}: a failed transfer, not a short success ({} bytes)",
            body.map_or(0, |b| b.len())
        );
    }
    assert_eq!(server.get("/health", None).await.status(), StatusCode::OK, "still serving");
}

/// A store whose queries never end: the same batch of 10,000 bars, forever.
#[derive(Debug)]
struct Endless {
    batch: BarBatch,
    produced: Arc<AtomicU64>,
}

impl std::fmt::Display for Endless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("endless")
    }
}

#[async_trait::async_trait]
impl MarketDataStore for Endless {
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn write_bars(&self, _batch: BarBatch) -> StoreResult<WriteReport> {
        Ok(WriteReport::committed(0))
    }

    fn query_bars(&self, _query: BarQuery) -> BoxStream<'static, StoreResult<BarBatch>> {
        let (batch, produced) = (self.batch.clone(), self.produced.clone());
        futures::stream::repeat_with(move || {
            produced.fetch_add(1, Ordering::SeqCst);
            Ok(batch.clone())
        })
        .boxed()
    }

    async fn summary(&self) -> StoreResult<MarketSummary> {
        Ok(MarketSummary::default())
    }

    async fn digest(&self, _query: DigestQuery) -> StoreResult<Vec<DayDigest>> {
        Ok(Vec::new())
    }

    async fn delete_bars(&self, _symbol: &Symbol, _range: TimeRange) -> StoreResult<u64> {
        Ok(0)
    }

    async fn health(&self) -> StoreResult<HealthReport> {
        Ok(HealthReport::new("endless", strata_core::HealthStatus::Healthy))
    }
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_result_streams_in_bounded_memory_and_stops_when_the_client_leaves() {
    let batch = SyntheticSpec::minutes(1, 10_000, 3).batches(10_000).next().unwrap();
    let produced = Arc::new(AtomicU64::new(0));
    let store = Arc::new(Endless { batch, produced: produced.clone() });
    let server = start(Sources::new(store), |_| {}).await;
    let mut response = server.get("/v1/bars?symbols=SYN000&format=arrow", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let before = resident_bytes();
    let mut received: u64 = 0;
    let target: u64 = 2 << 30;
    while received < target {
        received += response.chunk().await.expect("the stream goes on").expect("the stream never ends").len() as u64;
    }
    let after = resident_bytes();
    let rows = produced.load(Ordering::SeqCst) * 10_000;
    eprintln!("streamed {} MiB ({rows} rows); resident {before:?} -> {after:?}", received >> 20);
    if let (Some(before), Some(after)) = (before, after) {
        assert!(
            after.saturating_sub(before) < 512 << 20,
            "resident memory grew by {} MiB while 2 GiB streamed",
            (after - before) >> 20
        );
    }
    drop(response);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = produced.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(produced.load(Ordering::SeqCst), settled, "the store stream stops once the client is gone");
    assert_eq!(server.get("/health", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_stream() {
    let gate = Arc::new(Semaphore::new(0));
    let store = Arc::new(Faulty { inner: filled_store().await, fault: Fault::StreamWaits(gate.clone()) });
    let server = start(Sources::new(store), |config| config.shutdown_grace = Duration::from_millis(300)).await;
    let (query_string, _) = window(0, 0, 70_000);
    let held = server.get(&format!("/v1/bars?{query_string}&format=csv"), None).await;
    assert_eq!(held.status(), StatusCode::OK);
    let started = Instant::now();
    server.stop().await.expect("a clean return");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped after {:?}", started.elapsed());
    gate.add_permits(1);
    drop(held);
}
