//! Shared by the HTTP tests: a filled memory store, a server on a free
//! loopback port, a store wrapper that fails on purpose, decoders of every
//! format, log capture, and the skip rule for optional tools.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use strata_adapter_mock::MemoryStore;
use strata_core::synthetic::SyntheticSpec;
use strata_core::{
    Bar, BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketDataStoreExt,
    MarketSummary, Result as StoreResult, StoreError, Symbol, TimeRange, WriteReport,
};
use strata_serve::telemetry::PrometheusHandle;
use strata_serve::{ServeConfig, Server, Sources};
use tokio::sync::{Semaphore, oneshot};

/// Symbols in the test store.
pub(crate) const SYMBOLS: usize = 3;
/// One-minute bars per symbol (the memory store streams 65,536 rows a batch).
pub(crate) const BARS_PER_SYMBOL: usize = 20_000;
/// A token for the tests that configure one.
pub(crate) const TOKEN: &str = "test-token-0123456789-abcdef";

/// A memory store holding [`SYMBOLS`] synthetic series (`SYN000`...).
pub(crate) async fn filled_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    for batch in SyntheticSpec::minutes(SYMBOLS, BARS_PER_SYMBOL, 42).batches(10_000) {
        store.write_bars(batch).await.expect("synthetic bars are valid");
    }
    store
}

/// A running server and how to reach and stop it.
pub(crate) struct Running {
    pub(crate) address: SocketAddr,
    pub(crate) client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), strata_serve::ServeError>>,
}

impl Running {
    /// `http://127.0.0.1:PORT{path_and_query}`.
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.address)
    }

    /// GET with an optional `Accept`.
    pub(crate) async fn get(&self, path_and_query: &str, accept: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path_and_query));
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        request.send().await.expect("the server answers")
    }

    /// Signals shutdown and waits for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<(), strata_serve::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("the server stops within 30 s")
            .expect("the server task does not panic")
    }
}

/// Starts a server for `sources` on 127.0.0.1:0, with `adjust` applied to the default configuration.
pub(crate) async fn start(sources: Sources, adjust: impl FnOnce(&mut ServeConfig)) -> Running {
    capture_logs();
    let mut config = ServeConfig::new("127.0.0.1:0".parse().expect("an address"));
    adjust(&mut config);
    let server = Server::bind(config, sources).await.expect("the server binds");
    let address = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running { address, client: client(), stop: Some(stop), task }
}

/// A client that never goes through a proxy.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("a client")
}

/// What the store itself returns for `query`.
pub(crate) async fn expected(store: &dyn MarketDataStore, query: BarQuery) -> Vec<Bar> {
    store.collect_bars(query).await.expect("the memory store answers")
}

/// Asserts `got == want`, showing the row count and the first difference only.
#[track_caller]
pub(crate) fn assert_same(got: &[Bar], want: &[Bar], context: &str) {
    if let Some(index) = (0..got.len().min(want.len())).find(|&index| got[index] != want[index]) {
        panic!("{context}: row {index} differs:\n got  {:?}\n want {:?}", got[index], want[index]);
    }
    assert_eq!(got.len(), want.len(), "{context}: row counts");
}

/// The bars of an Arrow IPC stream body.
pub(crate) fn from_arrow(body: &[u8]) -> Vec<Bar> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).expect("an Arrow stream");
    assert_eq!(reader.schema(), strata_core::bar_schema(), "the canonical bar schema");
    reader.flat_map(|batch| BarBatch::try_new(batch.expect("a record batch")).expect("bar schema").to_bars()).collect()
}

/// The bars of a CSV body, read back by the ingest reader.
pub(crate) fn from_csv(body: &[u8]) -> Vec<Bar> {
    let options = strata_formats::ReadOptions::default();
    strata_formats::read::csv(body, &options)
        .flat_map(|chunk| {
            assert!(chunk.problems.is_empty(), "CSV problems: {:?}", chunk.problems);
            chunk.batch.to_bars()
        })
        .collect()
}

/// Checks a JSON (`array`) or JSON Lines body against `want`: the text is
/// exactly what `strata query --format json` prints for those bars (for the
/// array, those lines joined by commas inside brackets), and it parses, with
/// each object's symbol and timestamp in order. (Floats are checked by the
/// text: `serde_json` without `float_roundtrip` may parse them 1 ulp off.)
#[track_caller]
pub(crate) fn check_json(body: &[u8], want: &[Bar], array: bool, context: &str) {
    let mut writer = strata_formats::write::JsonLinesWriter::new(Vec::new()).expect("a writer");
    writer.write(&BarBatch::from_bars(want)).expect("bars as JSON Lines");
    let lines = String::from_utf8(writer.finish().expect("finished")).expect("UTF-8");
    let expected = if !array {
        lines
    } else if want.is_empty() {
        "[]\n".to_string()
    } else {
        format!("[\n{}\n]\n", lines.lines().collect::<Vec<_>>().join(",\n"))
    };
    let text = String::from_utf8_lossy(body);
    if let Some((number, (got, wanted))) =
        text.lines().zip(expected.lines()).enumerate().find(|(_, (got, wanted))| got != wanted)
    {
        panic!("{context}: line {number} differs:\n got  {got}\n want {wanted}");
    }
    assert_eq!(text.len(), expected.len(), "{context}: body length");
    let objects: Vec<serde_json::Value> = if array {
        serde_json::from_slice::<Vec<serde_json::Value>>(body).expect("one JSON array")
    } else {
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON object per line")).collect()
    };
    assert_eq!(objects.len(), want.len(), "{context}: rows");
    for (object, bar) in objects.iter().zip(want) {
        assert_eq!(object["symbol"], serde_json::json!(bar.symbol), "{context}");
        assert_eq!(object["timestamp"], serde_json::json!(bar.timestamp.to_string()), "{context}");
        assert_eq!(object["trade_count"].as_i64(), bar.trade_count, "{context}");
    }
}

/// What a [`Faulty`] store gets wrong.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// `health` returns `Unavailable`.
    HealthFails,
    /// `health` takes a minute.
    HealthHangs,
    /// `query_bars` fails before any row.
    QueryFails,
    /// `query_bars` yields its first batch, then an error.
    StreamBreaks,
    /// `query_bars` yields its first batch, then waits for a permit of the semaphore before the rest.
    StreamWaits(Arc<Semaphore>),
}

/// A memory store with one fault.
#[derive(Debug)]
pub(crate) struct Faulty {
    pub(crate) inner: Arc<MemoryStore>,
    pub(crate) fault: Fault,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "faulty({})", self.inner)
    }
}

#[async_trait::async_trait]
impl MarketDataStore for Faulty {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn write_bars(&self, batch: BarBatch) -> StoreResult<WriteReport> {
        self.inner.write_bars(batch).await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, StoreResult<BarBatch>> {
        let mut batches = self.inner.query_bars(query);
        match self.fault.clone() {
            Fault::QueryFails => {
                futures::stream::once(async { Err(StoreError::unavailable("faulty", "the disk is unplugged", None)) })
                    .boxed()
            }
            Fault::StreamBreaks => batches
                .take(1)
                .chain(futures::stream::once(async {
                    Err(StoreError::internal("faulty", "the disk caught fire mid-read"))
                }))
                .boxed(),
            Fault::StreamWaits(gate) => futures::stream::once(async move {
                let first = batches.next().await;
                (first, batches)
            })
            .flat_map(move |(first, rest)| {
                let gate = gate.clone();
                futures::stream::iter(first).chain(
                    futures::stream::once(async move {
                        drop(gate.acquire().await);
                        rest
                    })
                    .flatten(),
                )
            })
            .boxed(),
            Fault::HealthFails | Fault::HealthHangs => batches,
        }
    }

    async fn summary(&self) -> StoreResult<MarketSummary> {
        self.inner.summary().await
    }

    async fn digest(&self, query: DigestQuery) -> StoreResult<Vec<DayDigest>> {
        self.inner.digest(query).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> StoreResult<u64> {
        self.inner.delete_bars(symbol, range).await
    }

    async fn health(&self) -> StoreResult<HealthReport> {
        match self.fault {
            Fault::HealthFails => Err(StoreError::unavailable("faulty", "the server is on fire", None)),
            Fault::HealthHangs => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                self.inner.health().await
            }
            _ => self.inner.health().await,
        }
    }
}

/// Everything logged by this test process, at trace level, as text.
pub(crate) fn captured_logs() -> String {
    let buffer = capture_logs();
    let bytes = buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Installs (once) a subscriber that writes every event, at trace level, to a buffer.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = LogBuffer(buffer.clone());
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this test binary");
            buffer
        })
        .clone()
}

#[derive(Clone)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).write_all(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide Prometheus recorder (installed once for this test binary).
pub(crate) fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| strata_serve::telemetry::install_prometheus("0.0.0-test").expect("the first recorder"))
        .clone()
}

/// Whether a missing optional service must fail the test (`STRATA_REQUIRE_SERVICES=1`).
pub(crate) fn services_required() -> bool {
    std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|value| value == "1")
}

/// Skips (returns true after a message) unless services are required, in which case it fails.
pub(crate) fn skip_or_fail(reason: &str) -> bool {
    assert!(!services_required(), "STRATA_REQUIRE_SERVICES=1 but {reason}");
    eprintln!("skipped: {reason}");
    true
}

/// The bars of `store` between two offsets (in minutes) of one symbol, as a query string and a query.
pub(crate) fn window(symbol: usize, from_minute: i64, to_minute: i64) -> (String, BarQuery) {
    let spec = SyntheticSpec::minutes(SYMBOLS, BARS_PER_SYMBOL, 42);
    let start = spec.start.plus_micros(from_minute * 60_000_000);
    let end = spec.start.plus_micros(to_minute * 60_000_000);
    let name = &spec.symbols[symbol];
    let query = BarQuery {
        symbols: vec![name.parse().expect("a synthetic symbol")],
        start: Some(start),
        end: Some(end),
        ..BarQuery::default()
    };
    (format!("symbols={name}&start={start}&end={end}"), query)
}
