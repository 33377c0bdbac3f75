//! A Strata store over HTTP: Prometheus metrics, health, and a read-only
//! API for dashboards, notebooks and serverless functions that cannot hold
//! a PostgreSQL connection (`strata serve`), plus a metrics-only listener
//! for long jobs (`strata worker --metrics-listen`).
//!
//! It uses the [`MarketDataStore`] port (any backend, any decorator stack)
//! and, for the runs pages, the `EvolutionStore` port, and never names an adapter. The binary builds the store, reads
//! `STRATA_API_TOKEN` and the flags into a [`ServeConfig`], installs the
//! exporter ([`telemetry::install_prometheus`]) and calls [`serve`].
//!
//! # Routes
//!
//! Every route is `GET` (and `HEAD`); errors are JSON `{"error": "..."}`.
//!
//! | route | answer |
//! |---|---|
//! | `/metrics` | the Prometheus text exposition (`text/plain; version=0.0.4`); 404 when the server has no [`MetricsSource`] |
//! | `/health` | the store's health report as JSON ([`health_json`], as `strata health --json`): 200 when healthy, 503 when degraded or down; 503 with `{"ok": false, "status": "down", "error"}` when the check fails or takes longer than [`ServeConfig::health_timeout`] (5 s) |
//! | `/v1/bars` | bars, as `strata query`: `symbols=AAPL,MSFT` (required; `symbols=`/`symbol=` may repeat), `start`, `end` (RFC 3339 or a date, the window `[start, end)`), `limit` (per symbol), `order=asc\|desc`, `format` |
//! | `/v1/summary` | `strata summary --json`'s document ([`summary_json`]) |
//! | `/v1/digest` | a JSON array of `strata digest --json`'s objects ([`digest_json`]); `symbols` (none = all), `start`, `end` |
//! | `/` | HTML: every GA run with its status and progress (redrawn from `/runs.json` every second, no reload) and the stored data's coverage per symbol; 404 without [`Sources::with_runs`] |
//! | `/runs.json` | `{"runs": [...]}`: each run's status, generation, tasks by state, best and mean fitness ([`strata_report::runs_json`]) |
//! | `/runs/{run}` | HTML: the run's self-contained report, as `strata report` writes it ([`strata_report`]) |
//!
//! Unknown paths get 404, other methods 405, unknown or repeated parameters
//! 400. Bad values get 400 with the CLI's message (`invalid value 'x' for
//! 'start': ...`, `start ... is after end ...; the window is [start, end)`).
//! Store errors keep their message and map by kind: unavailable and timeout
//! 503, unsupported 501, invalid input 400, not found 404, others 500.
//!
//! # Formats of `/v1/bars`
//!
//! Chosen by `format=` if given, else by `Accept` ([`BarFormat::negotiate`]):
//!
//! | `Accept` | `format=` | body |
//! |---|---|---|
//! | `application/json`, `*/*` or none | `json` | one JSON array of bar objects, one per line |
//! | `application/x-ndjson` | `ndjson` | JSON Lines, byte for byte `strata query --format json` |
//! | `text/csv` | `csv` | CSV with a header, byte for byte `strata query --format csv` |
//! | `application/vnd.apache.arrow.stream` | `arrow` | an Arrow IPC stream in the canonical bar schema |
//!
//! Anything else gets 406 listing these. From Python:
//! `pyarrow.ipc.open_stream(urllib.request.urlopen(url))`,
//! `polars.read_ipc_stream(url + "&format=arrow")`, `pandas.read_csv(url + "&format=csv")`.
//!
//! # Streaming and bounded memory
//!
//! `/v1/bars` streams: each batch of `MarketDataStore::query_bars` is
//! encoded (text [`format::TEXT_ROWS`] rows at a time, Arrow without a copy)
//! and handed to the connection before the next is read, so a request for
//! millions of rows holds about one batch. The status is sent after the
//! first rows are read, so an error before any row is a proper status. **An
//! error after that** (the store fails mid-stream) **aborts the transfer**:
//! the connection is closed without the chunked body's terminator, so the
//! client sees a failed download, never a short success; the server logs it
//! and counts it in `strata_http_responses_aborted_total`.
//!
//! # Limits
//!
//! [`Limits`]: at most 128 requests in flight (a streaming response counts
//! until its last byte; beyond, 503 with `Retry-After: 1`; `/metrics` is not
//! counted), 1,000 symbols per request and an 8 KiB query string (beyond,
//! 400; a request target over 64 KiB is refused by the HTTP parser itself
//! with 414). `/health` gives up after 5 s. After the shutdown signal the server
//! stops accepting, lets requests in flight finish for up to
//! [`ServeConfig::shutdown_grace`] (10 s), then returns.
//!
//! # Authentication
//!
//! With a token ([`ServeConfig::token`]) every route, `/health` and
//! `/metrics` included, requires `Authorization: Bearer <token>`; without
//! or with a wrong one: 401 with `WWW-Authenticate: Bearer`. The token is
//! compared in constant time (SHA-256 digests, [`subtle`]), kept only as a
//! digest, and never logged: logs carry method, path, route, status and
//! duration, never a header. [`ServeConfig::validate`] refuses a non-loopback
//! address without a token.
//!
//! # Metrics
//!
//! Requests are counted and timed through the `metrics` facade by route
//! template (see [`telemetry`]); the binary's exporter renders them with
//! everything else the process records.
//!
//! ```no_run
//! use std::sync::Arc;
//! use strata_core::MarketDataStore;
//! use strata_serve::{ServeConfig, Sources};
//!
//! async fn run(
//!     store: Arc<dyn MarketDataStore>,
//!     sigterm: impl Future<Output = ()> + Send + 'static,
//! ) -> Result<(), strata_serve::ServeError> {
//!     let metrics = strata_serve::telemetry::install_prometheus(env!("CARGO_PKG_VERSION"))?;
//!     let config = ServeConfig::new("127.0.0.1:8080".parse().unwrap());
//!     let sources = Sources::new(store).with_metrics(metrics);
//!     strata_serve::serve(config, sources, sigterm).await
//! }
//! ```

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

mod config;
mod error;
pub mod format;
mod gate;
mod json;
mod params;
mod routes;
mod sources;
pub mod telemetry;

pub use config::{ApiToken, ConfigError, Limits, MIN_TOKEN_LEN, ServeConfig, is_loopback};
pub use error::ServeError;
pub use format::BarFormat;
pub use json::{digest_json, health_json, summary_json};
pub use routes::PROMETHEUS_CONTENT_TYPE;
pub use sources::{MetricsSource, Sources};
#[doc(no_inline)]
pub use strata_core::MarketDataStore;

/// Serves `sources` as configured until `shutdown` completes (then drains,
/// see [`ServeConfig::shutdown_grace`]). Validates the configuration first.
pub async fn serve(
    config: ServeConfig,
    sources: Sources,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(config, sources).await?.run(shutdown).await
}

/// Serves only `/metrics` (and a `/health` that answers `ok`) at `listen`
/// until `shutdown` completes: for `strata worker --metrics-listen ADDR`.
/// No token: it exposes no market data, and Prometheus scrapes from other hosts.
pub async fn serve_metrics_only(
    listen: SocketAddr,
    metrics: impl Into<MetricsSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind_metrics_only(listen, metrics).await?.run(shutdown).await
}

/// A bound server, not yet serving: [`Server::local_addr`] tells the port
/// when the configuration asked for port 0.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    shutdown_grace: Duration,
}

impl Server {
    /// Validates `config` and binds its address.
    pub async fn bind(config: ServeConfig, sources: Sources) -> Result<Self, ServeError> {
        config.validate()?;
        let gate = gate::Gate::new(config.token.clone(), config.limits);
        let router = routes::api(sources, gate, config.limits, config.health_timeout);
        Server::bind_router(config.listen, router, config.shutdown_grace).await
    }

    /// Binds `listen` for [`serve_metrics_only`].
    pub async fn bind_metrics_only(listen: SocketAddr, metrics: impl Into<MetricsSource>) -> Result<Self, ServeError> {
        Server::bind_router(listen, routes::metrics_only(metrics.into()), Duration::from_secs(5)).await
    }

    async fn bind_router(listen: SocketAddr, router: Router, shutdown_grace: Duration) -> Result<Self, ServeError> {
        let listener =
            TcpListener::bind(listen).await.map_err(|source| ServeError::Bind { address: listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind { address: listen, source })?;
        Ok(Server { listener, router, local_addr, shutdown_grace })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// requests in flight finish within the grace period, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let Server { listener, router, local_addr, shutdown_grace } = self;
        // Small responses (latest-N queries) go out at once, not after a delayed ACK.
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {error}");
            }
        });
        let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = signalled.send(());
        };
        tracing::info!(address = %local_addr, "serving HTTP");
        let server = axum::serve(listener, router).with_graceful_shutdown(signal).into_future();
        tokio::pin!(server);
        tokio::select! {
            outcome = &mut server => return outcome.map_err(ServeError::Io),
            Ok(()) = on_signal => {}
        }
        tracing::info!(address = %local_addr, "shutting down: waiting up to {shutdown_grace:?} for requests in flight");
        match tokio::time::timeout(shutdown_grace, server).await {
            Ok(outcome) => outcome.map_err(ServeError::Io),
            Err(_) => {
                tracing::warn!("requests still in flight after {shutdown_grace:?}; stopping without them");
                Ok(())
            }
        }
    }
}
