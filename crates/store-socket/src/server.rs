//! [`SocketServer`]: serves two ports over a Unix socket, one task per connection.

use std::fmt;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use strata_core::{BarQuery, EvolutionStore, MarketDataStore, Result, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::frame::{decode_batch, encode_batch, read_frame, read_json, write_frame, write_json};
use crate::wire::{PROTOCOL_VERSION, Request, Response, StoreInfo, Welcome, WireError};

/// How long a new connection may take to say hello, and how long `bind`
/// waits for an existing socket to answer before calling it live.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves a [`MarketDataStore`] and an [`EvolutionStore`] on a Unix socket
/// until dropped (or [`SocketServer::shutdown`]).
///
/// The socket file is created with mode 0600, so only the user running this
/// process (and root) can connect; a peer whose uid differs from the
/// socket's owner is refused as well. Dropping the server stops accepting,
/// closes every open connection (their clients get "went away") and removes
/// the socket file, if it is still the one this server created.
pub struct SocketServer {
    path: PathBuf,
    /// Device and inode of the socket file this server placed at `path`.
    identity: (u64, u64),
    accept: Option<JoinHandle<()>>,
    served: String,
}

impl fmt::Debug for SocketServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketServer").field("path", &self.path).field("serves", &self.served).finish()
    }
}

/// What every connection task shares.
#[derive(Debug)]
struct Served {
    market: Arc<dyn MarketDataStore>,
    evolution: Arc<dyn EvolutionStore>,
    welcome: (StoreInfo, StoreInfo),
    owner_uid: u32,
}

impl SocketServer {
    /// Creates the socket at `path` (mode 0600) and serves `market` and
    /// `evolution` on it from tasks of the current Tokio runtime.
    ///
    /// A socket file nobody listens on (left by a process that crashed) is
    /// replaced. A socket a live server answers on is refused with
    /// `Unavailable` ("another strata process already serves ..."), and so is
    /// any other kind of file at `path`. Must be called inside a Tokio
    /// runtime with I/O enabled; the server runs on that runtime.
    pub async fn bind(
        path: impl AsRef<Path>,
        market: Arc<dyn MarketDataStore>,
        evolution: Arc<dyn EvolutionStore>,
    ) -> Result<SocketServer> {
        let path = path.as_ref().to_path_buf();
        let fail = |what: String, source: io::Error| StoreError::unavailable("socket", what, Some(Box::new(source)));
        check_existing(&path).await?;
        let listener = bind_private(&path)
            .map_err(|error| fail(format!("cannot create the socket {}: {error}", path.display()), error))?;
        let metadata = std::fs::metadata(&path)
            .map_err(|error| fail(format!("cannot read back the socket {}: {error}", path.display()), error))?;
        let served = if market.to_string() == evolution.to_string() {
            market.to_string()
        } else {
            format!("{market}, {evolution}")
        };
        let welcome = (
            StoreInfo { display: market.to_string(), capabilities: market.capabilities() },
            StoreInfo { display: evolution.to_string(), capabilities: evolution.capabilities() },
        );
        let shared = Arc::new(Served { market, evolution, welcome, owner_uid: metadata.uid() });
        let accept = tokio::spawn(accept_loop(listener, shared, path.clone()));
        tracing::info!(socket = %path.display(), serves = %served, "serving the stores on a Unix socket");
        Ok(SocketServer { path, identity: (metadata.dev(), metadata.ino()), accept: Some(accept), served })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, closes every connection (calls in flight are
    /// abandoned: their clients get "went away") and removes the socket file.
    pub async fn shutdown(mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        self.remove_socket_file();
    }

    /// Removes the socket file if it is still the one this server created
    /// (a successor may have replaced it).
    fn remove_socket_file(&self) {
        if let Ok(metadata) = std::fs::symlink_metadata(&self.path)
            && (metadata.dev(), metadata.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            // Dropping the accept task drops its JoinSet, which aborts every connection task.
            accept.abort();
        }
        self.remove_socket_file();
    }
}

/// Refuses a live server or a non-socket at `path`; removes a stale socket.
async fn check_existing(path: &Path) -> Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(StoreError::unavailable(
                "socket",
                format!("cannot inspect {}: {error}", path.display()),
                Some(Box::new(error)),
            ));
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(StoreError::unavailable(
            "socket",
            format!("{} exists and is not a socket; refusing to replace it", path.display()),
            None,
        ));
    }
    match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        Err(_) | Ok(Ok(_)) => Err(StoreError::unavailable(
            "socket",
            format!("another strata process already serves {}", path.display()),
            None,
        )),
        Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "replacing a stale socket nobody listens on");
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(StoreError::unavailable(
                    "socket",
                    format!("cannot remove the stale socket {}: {error}", path.display()),
                    Some(Box::new(error)),
                )),
            }
        }
        Ok(Err(error)) => Err(StoreError::unavailable(
            "socket",
            format!("cannot tell whether a strata process serves {}: {error}", path.display()),
            Some(Box::new(error)),
        )),
    }
}

/// Binds the socket inside a fresh 0700 directory beside `path`, makes it
/// 0600 and renames it into place: no other user can ever connect to it,
/// not even in the instant between bind and chmod.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let private =
        parent.join(format!(".strata-socket-{}-{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed)));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let temporary = private.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&temporary);
    let _ = std::fs::remove_dir(&private);
    bound
}

async fn accept_loop(listener: UnixListener, served: Arc<Served>, path: PathBuf) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, served.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(socket = %path.display(), %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection: the handshake, then requests one at a time.
async fn serve_connection(stream: UnixStream, served: Arc<Served>) {
    match stream.peer_cred() {
        Ok(credentials) if credentials.uid() == served.owner_uid => {}
        Ok(credentials) => {
            tracing::warn!(uid = credentials.uid(), "refusing a connection from another user");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "refusing a connection whose peer is unknown");
            return;
        }
    }
    let (reader, writer) = stream.into_split();
    let mut connection = Connection { reader: BufReader::new(reader), writer: BufWriter::new(writer), served };
    if let Err(error) = connection.run().await {
        tracing::debug!(%error, "a socket connection ended");
    }
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    served: Arc<Served>,
}

impl Connection {
    async fn run(&mut self) -> io::Result<()> {
        if !self.handshake().await? {
            return Ok(());
        }
        while let Some(frame) = read_frame(&mut self.reader).await? {
            let request: Request = match serde_json::from_slice(&frame) {
                Ok(request) => request,
                Err(error) => {
                    let error = StoreError::internal("socket", format!("malformed request: {error}"));
                    self.respond(&Response::Error(WireError::from(&error))).await?;
                    return Ok(());
                }
            };
            tracing::trace!(method = request.method(), "socket request");
            match request {
                Request::QueryBars { query } => self.stream_query(query).await?,
                Request::WriteBars => {
                    let bytes = read_frame(&mut self.reader).await?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    let response = match decode_batch(&bytes) {
                        Ok(batch) => into_response(self.served.market.write_bars(batch).await, Response::Written),
                        Err(error) => Response::Error(WireError::from(&error)),
                    };
                    self.respond(&response).await?;
                }
                other => {
                    let response = dispatch(&self.served, other).await;
                    self.respond(&response).await?;
                }
            }
        }
        Ok(())
    }

    /// Reads the hello; answers with the stores, or refuses a version it
    /// does not speak. False when the connection must close.
    async fn handshake(&mut self) -> io::Result<bool> {
        let hello: serde_json::Value = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_json(&mut self.reader))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no hello within the handshake timeout"))??;
        let version = hello.get("strata_socket").and_then(serde_json::Value::as_u64);
        let welcome = if version == Some(PROTOCOL_VERSION) {
            Welcome {
                strata_socket: PROTOCOL_VERSION,
                error: None,
                market: Some(self.served.welcome.0.clone()),
                evolution: Some(self.served.welcome.1.clone()),
            }
        } else {
            let theirs = version.map_or_else(|| "no version".to_string(), |version| format!("version {version}"));
            Welcome {
                strata_socket: PROTOCOL_VERSION,
                error: Some(format!(
                    "this strata process speaks socket protocol version {PROTOCOL_VERSION} and the client sent \
                     {theirs}: use the same strata build on both sides"
                )),
                market: None,
                evolution: None,
            }
        };
        let accepted = welcome.error.is_none();
        self.respond(&welcome).await?;
        Ok(accepted)
    }

    async fn respond<T: serde::Serialize>(&mut self, message: &T) -> io::Result<()> {
        write_json(&mut self.writer, message).await?;
        self.writer.flush().await
    }

    /// Sends the query's batches as they come, then `End` (or the first
    /// error). Stops as soon as the client closes the connection.
    async fn stream_query(&mut self, query: BarQuery) -> io::Result<()> {
        let mut stream = self.served.market.query_bars(query);
        let mut probe = [0u8; 1];
        loop {
            let next = tokio::select! {
                biased;
                // The client sends nothing while a stream runs: readable means it left.
                _ = self.reader.read(&mut probe) => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the client left mid-stream"));
                }
                next = stream.next() => next,
            };
            match next {
                Some(Ok(batch)) if batch.is_empty() => {}
                Some(Ok(batch)) => match encode_batch(&batch) {
                    Ok(bytes) => {
                        write_json(&mut self.writer, &Response::Batch).await?;
                        write_frame(&mut self.writer, &bytes).await?;
                        self.writer.flush().await?;
                    }
                    Err(error) => return self.respond(&Response::Error(WireError::from(&error))).await,
                },
                Some(Err(error)) => return self.respond(&Response::Error(WireError::from(&error))).await,
                None => return self.respond(&Response::End).await,
            }
        }
    }
}

fn into_response<T>(result: Result<T>, wrap: impl FnOnce(T) -> Response) -> Response {
    match result {
        Ok(value) => wrap(value),
        Err(error) => Response::Error(WireError::from(&error)),
    }
}

/// Calls the port method a unary request names.
async fn dispatch(served: &Served, request: Request) -> Response {
    let (market, evolution) = (&served.market, &served.evolution);
    match request {
        Request::WriteBars | Request::QueryBars { .. } => Response::Error(WireError::from(&StoreError::internal(
            "socket",
            "write_bars and query_bars are not unary requests",
        ))),
        Request::Summary => into_response(market.summary().await, Response::Summary),
        Request::Digest { query } => into_response(market.digest(query).await, Response::Digests),
        Request::DeleteBars { symbol, range } => {
            into_response(market.delete_bars(&symbol, range).await, Response::Count)
        }
        Request::Health => into_response(market.health().await, Response::Health),
        Request::CreateRun { spec } => into_response(evolution.create_run(spec).await, Response::Run),
        Request::GetRun { run } => into_response(evolution.get_run(&run).await, Response::Run),
        Request::ListRuns => into_response(evolution.list_runs().await, Response::Runs),
        Request::SetRunStatus { run, status } => {
            into_response(evolution.set_run_status(&run, status).await, Response::Run)
        }
        Request::DeleteRun { run } => into_response(evolution.delete_run(&run).await, Response::Flag),
        Request::TransitionRun { run, from, to } => {
            into_response(evolution.transition_run(&run, &from, to).await, Response::Run)
        }
        Request::SaveGeneration { generation, expected_latest } => {
            into_response(evolution.save_generation(generation, expected_latest).await, |()| Response::Done)
        }
        Request::LoadGeneration { run, number } => {
            into_response(evolution.load_generation(&run, number).await, Response::Generation)
        }
        Request::LatestGeneration { run } => {
            into_response(evolution.latest_generation(&run).await, Response::MaybeGeneration)
        }
        Request::EnqueueTasks { run, generation, tasks, max_attempts } => {
            into_response(evolution.enqueue_tasks(&run, generation, tasks, max_attempts).await, Response::Count)
        }
        Request::LeaseTasks { request } => into_response(evolution.lease_tasks(request).await, Response::Leases),
        Request::Heartbeat { worker, ttl } => into_response(evolution.heartbeat(&worker, ttl).await, Response::Count),
        Request::CompleteTasks { worker, completions } => {
            let completions = completions.into_iter().map(Into::into).collect();
            into_response(evolution.complete_tasks(&worker, completions).await, Response::Statuses)
        }
        Request::CompleteAndLease { worker, completions, next } => {
            let completions = completions.into_iter().map(Into::into).collect();
            into_response(evolution.complete_and_lease(&worker, completions, next).await, |(statuses, leases)| {
                Response::CompletedAndLeased(statuses, leases.map_err(|error| WireError::from(&error)))
            })
        }
        Request::ReleaseTasks { worker, leases } => {
            into_response(evolution.release_tasks(&worker, leases).await, Response::Statuses)
        }
        Request::RequeueExpired => into_response(evolution.requeue_expired().await, Response::Count),
        Request::RequeueParked { run } => into_response(evolution.requeue_parked(&run).await, Response::Count),
        Request::TaskCounts { run, generation } => {
            into_response(evolution.task_counts(&run, generation).await, Response::TaskCounts)
        }
        Request::ListTasks { run, generation } => {
            into_response(evolution.list_tasks(&run, generation).await, |tasks| {
                Response::Tasks(tasks.into_iter().map(Into::into).collect())
            })
        }
        Request::RegisterWorker { worker } => {
            into_response(evolution.register_worker(worker).await, |()| Response::Done)
        }
        Request::ListWorkers => into_response(evolution.list_workers().await, Response::Workers),
        Request::RecordGenerationStats { stats } => {
            into_response(evolution.record_generation_stats(stats.into()).await, |()| Response::Done)
        }
        Request::GenerationStats { run } => into_response(evolution.generation_stats(&run).await, |stats| {
            Response::Stats(stats.into_iter().map(Into::into).collect())
        }),
        Request::CachedFitness { keys } => into_response(evolution.cached_fitness(&keys).await, |cached| {
            Response::Cached(cached.into_iter().map(|entry| entry.map(Into::into)).collect())
        }),
        Request::AcquireCoordinator { run, holder, ttl } => {
            into_response(evolution.acquire_coordinator(&run, &holder, ttl).await, Response::MaybeRole)
        }
        Request::RenewCoordinator { lease, ttl } => {
            into_response(evolution.renew_coordinator(&lease, ttl).await, Response::Flag)
        }
        Request::ReleaseCoordinator { lease } => {
            into_response(evolution.release_coordinator(&lease).await, |()| Response::Done)
        }
    }
}
