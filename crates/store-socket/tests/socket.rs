//! The socket's own behaviour: stale and live sockets, file mode, a server
//! that goes away mid-call, version mismatches, abandoned streams.
#![allow(clippy::unwrap_used)]

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use strata_adapter_mock::MemoryStore;
use strata_core::synthetic::SyntheticSpec;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, EvolutionStore, HealthReport, MarketDataStore,
    MarketDataStoreExt, MarketSummary, Result, StoreError, Symbol, TimeRange, WriteReport,
};
use strata_store_socket::{PROTOCOL_VERSION, SocketServer, SocketStore, socket_path_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATIENCE: Duration = Duration::from_secs(10);

async fn serve(path: &Path) -> (SocketServer, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let server = SocketServer::bind(path, store.clone(), store.clone()).await.unwrap();
    (server, store)
}

fn assert_went_away(error: &StoreError, path: &Path) {
    assert_eq!(error.kind(), "unavailable", "{error}");
    let expected = format!("the strata process serving {} went away", path.display());
    assert!(error.to_string().contains(&expected), "{error}");
    assert!(!error.retries_exhausted() && error.should_retry(), "a transport failure is a fresh Unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0600_and_removed_on_drop() {
    let directory = tempfile::tempdir().unwrap();
    let path = socket_path_for(&directory.path().join("strata.duckdb"));
    assert!(path.ends_with("strata.duckdb.sock"));
    let (server, _) = serve(&path).await;
    assert_eq!(server.path(), path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may connect: {mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(directory.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "nothing but the socket is left beside it: {leftovers:?}");
    drop(server);
    assert!(!path.exists(), "dropping the server removes its socket");

    let (server, _) = serve(&path).await;
    server.shutdown().await;
    assert!(!path.exists(), "shutdown removes the socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("s.sock");
    // A socket file nobody listens on, as a crashed process leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (server, store) = serve(&path).await;
    let client = SocketStore::connect(&path).await.unwrap();
    assert_eq!(client.summary().await.unwrap(), store.summary().await.unwrap());

    let other = Arc::new(MemoryStore::new());
    let refused = SocketServer::bind(&path, other.clone(), other).await.unwrap_err();
    assert_eq!(refused.kind(), "unavailable");
    assert!(refused.to_string().contains("another strata process already serves"), "{refused}");
    client.health().await.expect("the live server still serves after a refused bind");
    drop(server);

    let file = directory.path().join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let other = Arc::new(MemoryStore::new());
    let refused = SocketServer::bind(&file, other.clone(), other).await.unwrap_err();
    assert!(refused.to_string().contains("is not a socket"), "{refused}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data", "a file that is not a socket is never replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_where_nobody_serves_is_unavailable() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nobody.sock");
    let error = SocketStore::connect(&path).await.unwrap_err();
    assert_eq!(error.kind(), "unavailable");
    assert!(error.to_string().contains("no strata process serves"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_capabilities_and_health_come_from_the_served_store() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("s.sock");
    let (_server, store) = serve(&path).await;
    let client = SocketStore::connect(&path).await.unwrap();
    assert_eq!(client.to_string(), "socket(memory)");
    assert_eq!(MarketDataStore::capabilities(&client), MarketDataStore::capabilities(store.as_ref()));
    assert_eq!(EvolutionStore::capabilities(&client), EvolutionStore::capabilities(store.as_ref()));
    let health = client.health().await.unwrap();
    assert_eq!(health.backend, "socket(memory)");
    assert_eq!(health.components[0].backend, "memory");
}

/// A market store whose queries yield one batch and then wait forever, and
/// whose summary never answers: calls that are in flight when the server goes.
/// `streams_dropped` counts the query streams the server has let go of.
#[derive(Debug, Default)]
struct Stalling(MemoryStore, Arc<AtomicUsize>);

/// Counts a drop.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl fmt::Display for Stalling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stalling")
    }
}

#[async_trait::async_trait]
impl MarketDataStore for Stalling {
    fn capabilities(&self) -> Capabilities {
        MarketDataStore::capabilities(&self.0)
    }
    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        self.0.write_bars(batch).await
    }
    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        let guard = DropCount(self.1.clone());
        let stalled = self.0.query_bars(query).take(1).chain(futures::stream::pending());
        stalled
            .map(move |item| {
                let _ = &guard;
                item
            })
            .boxed()
    }
    async fn summary(&self) -> Result<MarketSummary> {
        futures::future::pending().await
    }
    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        self.0.digest(query).await
    }
    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        self.0.delete_bars(symbol, range).await
    }
    async fn health(&self) -> Result<HealthReport> {
        self.0.health().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_going_away_mid_call_is_unavailable_not_a_hang() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("s.sock");
    let market = Arc::new(Stalling::default());
    let server = SocketServer::bind(&path, market.clone(), Arc::new(MemoryStore::new())).await.unwrap();
    let client = Arc::new(SocketStore::connect(&path).await.unwrap());
    assert_eq!(client.to_string(), "socket(stalling, memory)");
    let bars = SyntheticSpec::minutes(1, 100, 7).batches(100).next().unwrap();
    client.write_bars(bars).await.unwrap();

    let mut stream = client.query_bars(BarQuery::default());
    let first = tokio::time::timeout(PATIENCE, stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.len(), 100);
    let summary = tokio::spawn({
        let client = client.clone();
        async move { client.summary().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!summary.is_finished(), "the served summary never answers");

    drop(server);
    let error = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("the stream ends instead of hanging")
        .expect("the stream yields the failure")
        .unwrap_err();
    assert_went_away(&error, &path);
    assert!(tokio::time::timeout(PATIENCE, stream.next()).await.unwrap().is_none(), "the stream ends after its error");
    let error = tokio::time::timeout(PATIENCE, summary).await.expect("no hang").unwrap().unwrap_err();
    assert_went_away(&error, &path);
    let error = client.list_runs().await.unwrap_err();
    assert_went_away(&error, &path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_a_query_whose_client_left() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("s.sock");
    let market = Arc::new(Stalling::default());
    let _server = SocketServer::bind(&path, market.clone(), Arc::new(MemoryStore::new())).await.unwrap();
    let client = SocketStore::connect(&path).await.unwrap();
    client.write_bars(SyntheticSpec::minutes(1, 10, 3).batches(10).next().unwrap()).await.unwrap();
    let mut stream = client.query_bars(BarQuery::default());
    stream.next().await.unwrap().unwrap();
    assert_eq!(market.1.load(Ordering::SeqCst), 0, "the served query still waits for its next batch");
    drop(stream);
    let deadline = Instant::now() + PATIENCE;
    while market.1.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the server keeps a stream whose client left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.digest(DigestQuery::default()).await.expect("other calls go on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_does_not_wedge_the_client() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("s.sock");
    let (_server, _) = serve(&path).await;
    let client = SocketStore::connect(&path).await.unwrap();
    for batch in SyntheticSpec::minutes(4, 50_000, 11).batches(50_000) {
        client.write_bars(batch).await.unwrap();
    }
    for _ in 0..20 {
        let mut stream = client.query_bars(BarQuery::default());
        stream.next().await.unwrap().unwrap();
        drop(stream);
        assert_eq!(client.summary().await.unwrap().total_rows(), 200_000);
    }
    let started = Instant::now();
    let rows: usize = client.collect_batches(BarQuery::default()).await.unwrap().iter().map(BarBatch::len).sum();
    assert_eq!(rows, 200_000);
    eprintln!("200,000 bars streamed through the socket in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_version_is_refused_with_a_message() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("s.sock");
    let (_server, _) = serve(&path).await;
    let mut raw = tokio::net::UnixStream::connect(&path).await.unwrap();
    let other = PROTOCOL_VERSION + 1;
    let hello = format!(r#"{{"strata_socket": {other}}}"#).into_bytes();
    let hello = hello.as_slice();
    raw.write_all(&(hello.len() as u32).to_be_bytes()).await.unwrap();
    raw.write_all(hello).await.unwrap();
    let length = raw.read_u32().await.unwrap();
    let mut answer = vec![0; length as usize];
    raw.read_exact(&mut answer).await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["strata_socket"], PROTOCOL_VERSION);
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("version {PROTOCOL_VERSION}")) && message.contains(&format!("version {other}")),
        "{message}"
    );
    assert_eq!(raw.read(&mut [0; 1]).await.unwrap(), 0, "the server closes the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_another_version_is_refused_with_a_message() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("future.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let length = stream.read_u32().await.unwrap();
        let mut hello = vec![0; length as usize];
        stream.read_exact(&mut hello).await.unwrap();
        let answer = format!(r#"{{"strata_socket": {}, "stores": "in a format of the future"}}"#, PROTOCOL_VERSION + 1);
        stream.write_all(&(answer.len() as u32).to_be_bytes()).await.unwrap();
        stream.write_all(answer.as_bytes()).await.unwrap();
        hello
    });
    let error = SocketStore::connect(&path).await.unwrap_err();
    let message = error.to_string();
    let (ours, theirs) = (PROTOCOL_VERSION, PROTOCOL_VERSION + 1);
    assert!(
        message.contains(&format!("speaks socket protocol version {theirs}"))
            && message.contains(&format!("version {ours}")),
        "{message}"
    );
    assert!(message.contains("use the same strata build"), "{message}");
    let hello: serde_json::Value = serde_json::from_slice(&fake.await.unwrap()).unwrap();
    assert_eq!(hello, serde_json::json!({ "strata_socket": PROTOCOL_VERSION }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_errors_keep_their_kind_and_report() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("s.sock");
    let (_server, _) = serve(&path).await;
    let client = SocketStore::connect(&path).await.unwrap();
    let mut bars = SyntheticSpec::minutes(1, 3, 5).batches(3).next().unwrap().to_bars();
    bars[1].high = bars[1].low / 2.0;
    bars[2].open = f64::NAN;
    let error = client.write_bars(BarBatch::from_bars(&bars)).await.unwrap_err();
    let local = BarBatch::from_bars(&bars).validate().unwrap_err();
    assert_eq!(error.validation_report(), Some(&local), "the row report crosses intact");
    let missing = strata_core::evolution::RunId::new("missing").unwrap();
    let error = client.get_run(&missing).await.unwrap_err();
    let expected = MemoryStore::new().get_run(&missing).await.unwrap_err();
    assert_eq!((error.kind(), error.to_string()), (expected.kind(), expected.to_string()));
}
