//! [`SocketStore`]: both ports of a store another process serves on a Unix socket.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use strata_core::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Lease, LeaseRequest,
    NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskRecord, WorkerId, WorkerInfo,
    WorkerRecord,
};
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, EvolutionStore, HealthReport, MarketDataStore,
    MarketSummary, Result, StoreError, Symbol, TimeRange, WriteReport,
};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::frame::{decode_batch, encode_batch, read_frame, read_json, write_frame, write_json};
use crate::wire::{Hello, PROTOCOL_VERSION, Request, Response, StoreInfo, Welcome};

/// How long the server may take to answer the hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept for reuse; more concurrent calls open more and close the surplus.
const MAX_IDLE: usize = 16;

/// The market-data and evolution ports of a store that another `strata`
/// process holds and serves with [`crate::SocketServer`].
///
/// Every call goes to the serving process; errors come back with their kind,
/// message and retry marker. When that process is gone, calls fail with
/// `Unavailable`: "the strata process serving `<path>` went away" (never
/// retried here: the outcome of a call in flight is unknown).
///
/// Unary calls reuse a small pool of connections, one call at a time each.
/// A query holds a connection of its own while it streams; dropping the
/// stream early closes that connection (the server stops producing), so it
/// never wedges another call.
///
/// Connections belong to the Tokio runtime that opened them: use a
/// `SocketStore` from one runtime (the usual case of one `#[tokio::main]`).
#[derive(Debug, Clone)]
pub struct SocketStore {
    client: Arc<Client>,
}

#[derive(Debug)]
struct Client {
    path: PathBuf,
    display: String,
    market: Capabilities,
    evolution: Capabilities,
    idle: Mutex<Vec<Connection>>,
}

#[derive(Debug)]
struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
}

impl fmt::Display for SocketStore {
    /// `socket(duckdb)`, or `socket(<market>, <evolution>)` when the server
    /// serves two different stores.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.client.display)
    }
}

impl SocketStore {
    /// Connects to the server at `path`, checks that it speaks this
    /// protocol version, and learns the served stores' descriptions and
    /// capabilities.
    ///
    /// Errors: `Unavailable` when nobody serves `path` (no socket, or a stale
    /// one); `Internal` when the server speaks another protocol version or
    /// refuses the connection (the message says why).
    pub async fn connect(path: impl AsRef<Path>) -> Result<SocketStore> {
        let path = path.as_ref().to_path_buf();
        let (connection, welcome) = Connection::open(&path).await.map_err(|error| match error {
            OpenError::Io(error) => StoreError::unavailable(
                "socket",
                format!("no strata process serves {}: {error}", path.display()),
                Some(Box::new(error)),
            ),
            OpenError::Refused(error) => error,
        })?;
        let (Some(market), Some(evolution)) = (welcome.market, welcome.evolution) else {
            return Err(StoreError::internal(
                "socket",
                format!("the strata process serving {} did not describe its stores", path.display()),
            ));
        };
        let display = describe(&market, &evolution);
        let client = Client {
            path,
            display,
            market: market.capabilities,
            evolution: evolution.capabilities,
            idle: Mutex::new(vec![connection]),
        };
        Ok(SocketStore { client: Arc::new(client) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.client.path
    }
}

fn describe(market: &StoreInfo, evolution: &StoreInfo) -> String {
    if market.display == evolution.display {
        format!("socket({})", market.display)
    } else {
        format!("socket({}, {})", market.display, evolution.display)
    }
}

/// Why a connection could not be opened.
enum OpenError {
    /// Nobody answered, or the server closed the connection.
    Io(io::Error),
    /// The server answered and refused (or speaks another version).
    Refused(StoreError),
}

impl From<io::Error> for OpenError {
    fn from(error: io::Error) -> Self {
        OpenError::Io(error)
    }
}

impl Connection {
    /// Connects and shakes hands.
    async fn open(path: &Path) -> Result<(Connection, Welcome), OpenError> {
        let stream = UnixStream::connect(path).await?;
        let (reader, writer) = stream.into_split();
        let mut connection = Connection { reader: BufReader::new(reader), writer: BufWriter::new(writer) };
        write_json(&mut connection.writer, &Hello { strata_socket: PROTOCOL_VERSION }).await?;
        connection.writer.flush().await?;
        let answer: serde_json::Value = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_json(&mut connection.reader))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the server did not answer the handshake"))??;
        let version = answer.get("strata_socket").and_then(serde_json::Value::as_u64);
        if version != Some(PROTOCOL_VERSION) {
            let theirs = version.map_or_else(|| "no version".to_string(), |version| format!("version {version}"));
            return Err(OpenError::Refused(StoreError::internal(
                "socket",
                format!(
                    "the strata process serving {} speaks socket protocol {theirs}, this one speaks version \
                     {PROTOCOL_VERSION}: use the same strata build on both sides",
                    path.display()
                ),
            )));
        }
        let welcome: Welcome = serde_json::from_value(answer)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, format!("a malformed handshake: {error}")))?;
        if let Some(error) = &welcome.error {
            return Err(OpenError::Refused(StoreError::internal(
                "socket",
                format!("the strata process serving {} refused the connection: {error}", path.display()),
            )));
        }
        Ok((connection, welcome))
    }

    /// True when the server has not closed this idle connection (nothing to read yet).
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        self.reader.buffer().is_empty()
            && matches!(self.reader.get_ref().try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends one request (and the batch that follows `WriteBars`).
    async fn send(&mut self, request: &Request, body: Option<&[u8]>) -> io::Result<()> {
        write_json(&mut self.writer, request).await?;
        if let Some(body) = body {
            write_frame(&mut self.writer, body).await?;
        }
        self.writer.flush().await
    }

    async fn receive(&mut self) -> io::Result<Response> {
        read_json(&mut self.reader).await
    }
}

/// Why a call failed below the store: a transport failure or a protocol error.
enum CallError {
    Gone(io::Error),
    Store(StoreError),
}

impl Client {
    fn went_away(&self, error: io::Error) -> StoreError {
        StoreError::unavailable(
            self.display.clone(),
            format!("the strata process serving {} went away", self.path.display()),
            Some(Box::new(error)),
        )
    }

    fn fail(&self, error: CallError) -> StoreError {
        match error {
            CallError::Gone(error) => self.went_away(error),
            CallError::Store(error) => error,
        }
    }

    fn unexpected(&self, method: &str, response: &Response) -> StoreError {
        StoreError::internal(
            self.display.clone(),
            format!("the server answered {method} with {}: a protocol error", response.name()),
        )
    }

    /// An idle connection that is still open, or a new one.
    async fn checkout(&self) -> Result<Connection, CallError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
            match idle {
                Some(connection) if connection.is_open() => return Ok(connection),
                Some(_) => continue,
                None => break,
            }
        }
        match Connection::open(&self.path).await {
            Ok((connection, _)) => Ok(connection),
            Err(OpenError::Io(error)) => Err(CallError::Gone(error)),
            Err(OpenError::Refused(error)) => Err(CallError::Store(error)),
        }
    }

    fn checkin(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }

    /// One request, one response; a store error comes back as `Err`.
    async fn call(&self, request: Request, body: Option<Vec<u8>>) -> Result<Response> {
        let method = request.method();
        let mut connection = self.checkout().await.map_err(|error| self.fail(error))?;
        connection.send(&request, body.as_deref()).await.map_err(|error| self.went_away(error))?;
        let response = connection.receive().await.map_err(|error| self.went_away(error))?;
        self.checkin(connection);
        match response {
            Response::Error(error) => Err(error.into()),
            Response::Batch | Response::End => Err(self.unexpected(method, &response)),
            response => Ok(response),
        }
    }
}

/// Unwraps the expected response variant, or reports a protocol error.
macro_rules! expect {
    ($client:expr, $request:expr, $variant:ident) => {{
        let client = &$client;
        let request = $request;
        let method = request.method();
        match client.call(request, None).await? {
            Response::$variant(value) => Ok(value),
            other => Err(client.unexpected(method, &other)),
        }
    }};
    ($client:expr, $request:expr, $variant:ident, pair) => {{
        let client = &$client;
        let request = $request;
        let method = request.method();
        match client.call(request, None).await? {
            Response::$variant(first, second) => Ok((first, second)),
            other => Err(client.unexpected(method, &other)),
        }
    }};
    ($client:expr, $request:expr, $variant:ident, unit) => {{
        let client = &$client;
        let request = $request;
        let method = request.method();
        match client.call(request, None).await? {
            Response::$variant => Ok(()),
            other => Err(client.unexpected(method, &other)),
        }
    }};
}

/// Where a query stream is.
enum QueryState {
    Start(Arc<Client>, BarQuery),
    Streaming(Arc<Client>, Connection),
    Finished,
}

/// The next item of a query stream and the state after it.
async fn next_batch(state: QueryState) -> Option<(Result<BarBatch>, QueryState)> {
    let (client, mut connection) = match state {
        QueryState::Finished => return None,
        QueryState::Streaming(client, connection) => (client, connection),
        QueryState::Start(client, query) => {
            let mut connection = match client.checkout().await {
                Ok(connection) => connection,
                Err(error) => return Some((Err(client.fail(error)), QueryState::Finished)),
            };
            if let Err(error) = connection.send(&Request::QueryBars { query }, None).await {
                return Some((Err(client.went_away(error)), QueryState::Finished));
            }
            (client, connection)
        }
    };
    loop {
        let response = match connection.receive().await {
            Ok(response) => response,
            Err(error) => return Some((Err(client.went_away(error)), QueryState::Finished)),
        };
        match response {
            Response::Batch => {
                let bytes = match read_frame(&mut connection.reader).await {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => {
                        return Some((
                            Err(client.went_away(io::ErrorKind::UnexpectedEof.into())),
                            QueryState::Finished,
                        ));
                    }
                    Err(error) => return Some((Err(client.went_away(error)), QueryState::Finished)),
                };
                return match decode_batch(&bytes) {
                    Ok(batch) if batch.is_empty() => continue,
                    Ok(batch) => Some((Ok(batch), QueryState::Streaming(client, connection))),
                    // The connection is at a frame boundary, but this stream ends here.
                    Err(error) => Some((Err(error), QueryState::Finished)),
                };
            }
            Response::End => {
                client.checkin(connection);
                return None;
            }
            Response::Error(error) => {
                client.checkin(connection);
                return Some((Err(error.into()), QueryState::Finished));
            }
            other => return Some((Err(client.unexpected("query_bars", &other)), QueryState::Finished)),
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl MarketDataStore for SocketStore {
    fn capabilities(&self) -> Capabilities {
        self.client.market
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        let bytes = encode_batch(&batch)?;
        drop(batch);
        match self.client.call(Request::WriteBars, Some(bytes)).await? {
            Response::Written(report) => Ok(report),
            other => Err(self.client.unexpected("write_bars", &other)),
        }
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        futures::stream::unfold(QueryState::Start(self.client.clone(), query), next_batch).boxed()
    }

    async fn summary(&self) -> Result<MarketSummary> {
        expect!(self.client, Request::Summary, Summary)
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        expect!(self.client, Request::Digest { query }, Digests)
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        expect!(self.client, Request::DeleteBars { symbol: symbol.clone(), range }, Count)
    }

    async fn health(&self) -> Result<HealthReport> {
        let inner: HealthReport = expect!(self.client, Request::Health, Health)?;
        Ok(HealthReport::new(self.to_string(), inner.status)
            .with_detail("socket", self.client.path.display().to_string())
            .with_component(inner))
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl EvolutionStore for SocketStore {
    fn capabilities(&self) -> Capabilities {
        self.client.evolution
    }

    async fn create_run(&self, spec: RunSpec) -> Result<RunRecord> {
        expect!(self.client, Request::CreateRun { spec }, Run)
    }

    async fn get_run(&self, run: &RunId) -> Result<RunRecord> {
        expect!(self.client, Request::GetRun { run: run.clone() }, Run)
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>> {
        expect!(self.client, Request::ListRuns, Runs)
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<RunRecord> {
        expect!(self.client, Request::SetRunStatus { run: run.clone(), status }, Run)
    }

    async fn transition_run(&self, run: &RunId, from: &[RunStatus], to: RunStatus) -> Result<RunRecord> {
        expect!(self.client, Request::TransitionRun { run: run.clone(), from: from.to_vec(), to }, Run)
    }

    async fn delete_run(&self, run: &RunId) -> Result<bool> {
        expect!(self.client, Request::DeleteRun { run: run.clone() }, Flag)
    }

    async fn save_generation(&self, generation: Generation, expected_latest: Option<u32>) -> Result<()> {
        expect!(self.client, Request::SaveGeneration { generation, expected_latest }, Done, unit)
    }

    async fn load_generation(&self, run: &RunId, number: u32) -> Result<Generation> {
        expect!(self.client, Request::LoadGeneration { run: run.clone(), number }, Generation)
    }

    async fn latest_generation(&self, run: &RunId) -> Result<Option<Generation>> {
        expect!(self.client, Request::LatestGeneration { run: run.clone() }, MaybeGeneration)
    }

    async fn enqueue_tasks(&self, run: &RunId, generation: u32, tasks: Vec<NewTask>, max_attempts: u32) -> Result<u64> {
        expect!(self.client, Request::EnqueueTasks { run: run.clone(), generation, tasks, max_attempts }, Count)
    }

    async fn lease_tasks(&self, request: LeaseRequest) -> Result<Vec<Lease>> {
        expect!(self.client, Request::LeaseTasks { request }, Leases)
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<u64> {
        expect!(self.client, Request::Heartbeat { worker: worker.clone(), ttl }, Count)
    }

    async fn complete_tasks(&self, worker: &WorkerId, completions: Vec<Completion>) -> Result<Vec<CompletionStatus>> {
        let completions = completions.into_iter().map(Into::into).collect();
        expect!(self.client, Request::CompleteTasks { worker: worker.clone(), completions }, Statuses)
    }

    async fn complete_and_lease(
        &self,
        worker: &WorkerId,
        completions: Vec<Completion>,
        next: LeaseRequest,
    ) -> Result<(Vec<CompletionStatus>, Result<Vec<Lease>>)> {
        let completions = completions.into_iter().map(Into::into).collect();
        let (statuses, leases) = expect!(
            self.client,
            Request::CompleteAndLease { worker: worker.clone(), completions, next },
            CompletedAndLeased,
            pair
        )?;
        Ok((statuses, leases.map_err(StoreError::from)))
    }

    async fn release_tasks(
        &self,
        worker: &WorkerId,
        leases: Vec<(TaskKey, FencingToken)>,
    ) -> Result<Vec<CompletionStatus>> {
        expect!(self.client, Request::ReleaseTasks { worker: worker.clone(), leases }, Statuses)
    }

    async fn requeue_expired(&self) -> Result<u64> {
        expect!(self.client, Request::RequeueExpired, Count)
    }

    async fn requeue_parked(&self, run: &RunId) -> Result<u64> {
        expect!(self.client, Request::RequeueParked { run: run.clone() }, Count)
    }

    async fn task_counts(&self, run: &RunId, generation: u32) -> Result<TaskCounts> {
        expect!(self.client, Request::TaskCounts { run: run.clone(), generation }, TaskCounts)
    }

    async fn list_tasks(&self, run: &RunId, generation: u32) -> Result<Vec<TaskRecord>> {
        let tasks: Vec<_> = expect!(self.client, Request::ListTasks { run: run.clone(), generation }, Tasks)?;
        Ok(tasks.into_iter().map(Into::into).collect())
    }

    async fn register_worker(&self, worker: WorkerInfo) -> Result<()> {
        expect!(self.client, Request::RegisterWorker { worker }, Done, unit)
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        expect!(self.client, Request::ListWorkers, Workers)
    }

    async fn record_generation_stats(&self, stats: GenerationStats) -> Result<()> {
        expect!(self.client, Request::RecordGenerationStats { stats: stats.into() }, Done, unit)
    }

    async fn generation_stats(&self, run: &RunId) -> Result<Vec<GenerationStats>> {
        let stats: Vec<_> = expect!(self.client, Request::GenerationStats { run: run.clone() }, Stats)?;
        Ok(stats.into_iter().map(Into::into).collect())
    }

    async fn cached_fitness(&self, keys: &[String]) -> Result<Vec<Option<CachedFitness>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let cached: Vec<Option<_>> = expect!(self.client, Request::CachedFitness { keys: keys.to_vec() }, Cached)?;
        Ok(cached.into_iter().map(|entry| entry.map(Into::into)).collect())
    }

    async fn acquire_coordinator(&self, run: &RunId, holder: &WorkerId, ttl: Duration) -> Result<Option<RoleLease>> {
        expect!(self.client, Request::AcquireCoordinator { run: run.clone(), holder: holder.clone(), ttl }, MaybeRole)
    }

    async fn renew_coordinator(&self, lease: &RoleLease, ttl: Duration) -> Result<bool> {
        expect!(self.client, Request::RenewCoordinator { lease: lease.clone(), ttl }, Flag)
    }

    async fn release_coordinator(&self, lease: &RoleLease) -> Result<()> {
        expect!(self.client, Request::ReleaseCoordinator { lease: lease.clone() }, Done, unit)
    }
}
