//! `strata serve` (the store over HTTP: metrics, health and the read API of
//! the `strata-serve` crate) and `--metrics-listen` of `evolve` and `worker`
//! (only `/metrics`, while the command runs).
//!
//! The Prometheus exporter is installed here, by the binary, and only by the
//! commands that export: the library crates record through the `metrics`
//! facade and cost nothing when no exporter is installed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use strata_serve::telemetry::{PrometheusHandle, install_prometheus};
use strata_serve::{ApiToken, ServeConfig, Server, Sources};

use crate::backend::{Access, StorageConfig, build_stores};
use crate::exit::UsageError;

/// The environment variable holding the bearer token (never a flag: flags show in `ps`).
pub(crate) const TOKEN_VARIABLE: &str = "STRATA_API_TOKEN";

/// `strata serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Anything but loopback needs a bearer token in STRATA_API_TOKEN.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8750", env = "STRATA_LISTEN")]
    pub(crate) listen: SocketAddr,
    /// Requests served at once; more wait for none and get 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) max_requests: u32,
}

/// `--metrics-listen` of `evolve` and `worker`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while this command runs (no token: metrics
    /// hold no market data), e.g. 127.0.0.1:9464, or 0.0.0.0:9464 for a scraper on another host.
    #[arg(long, value_name = "ADDR", env = "STRATA_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
}

/// The bearer token from [`TOKEN_VARIABLE`], if set and not empty.
fn token_from_env() -> Result<Option<ApiToken>, UsageError> {
    match std::env::var(TOKEN_VARIABLE) {
        Ok(text) if !text.is_empty() => {
            ApiToken::new(&text).map(Some).map_err(|error| UsageError(format!("{TOKEN_VARIABLE}: {error}")))
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(UsageError(format!("{TOKEN_VARIABLE} is not valid UTF-8"))),
    }
}

/// Installs the process's Prometheus exporter.
fn exporter() -> Result<PrometheusHandle> {
    let handle = install_prometheus(env!("CARGO_PKG_VERSION")).context("cannot install the Prometheus exporter")?;
    // Every crate also registers its HELP text on first use; these are the ones a scrape may see first.
    strata_hybrid::metered::describe();
    strata_ga_coord::telemetry::describe();
    Ok(handle)
}

/// Runs `strata serve` until SIGTERM or Ctrl-C, then stops gracefully (exit 0).
pub(crate) async fn run(args: &ServeArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let mut config = ServeConfig::new(args.listen);
    if let Some(token) = token_from_env()? {
        config = config.with_token(token);
    }
    config.limits.max_concurrent_requests = args.max_requests as usize;
    // Refused before the store is opened: a wrong setting creates and holds nothing.
    config.validate().map_err(|error| UsageError(error.to_string()))?;
    let mut interrupts = crate::interrupt::Interrupts::listen().context("cannot listen for Ctrl-C and SIGTERM")?;
    let metrics = exporter()?;
    // It only reads, but holds the store for long: opened as a writer would, so a DuckDB file is served
    // to other strata processes (`strata ingest` while serving) instead of locking them out.
    let stores = Arc::new(build_stores(storage, Access::WriteExisting).await?);
    let checked = stores.clone();
    let sources = Sources::new(stores.market.clone())
        .with_health_check(move || {
            let stores = checked.clone();
            async move { stores.health().await }
        })
        .with_metrics(metrics)
        .with_runs(stores.evolution.clone());
    let authenticated = config.token.is_some();
    let server = Server::bind(config, sources).await?;
    let address = server.local_addr();
    eprintln!(
        "serving {} at http://{address} ({}): runs at / and /runs/RUN; /v1/bars /v1/summary /v1/digest /health \
         /metrics; Ctrl-C stops",
        stores.description,
        if authenticated { "bearer token required" } else { "no token: loopback only" }
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<&'static str>();
    let shutdown = async move {
        let signal = stopped.await.unwrap_or("shutdown");
        tracing::info!("{signal}: stopping the server");
    };
    let serving = tokio::spawn(server.run(shutdown));
    let signal = interrupts.next().await;
    eprintln!("{signal}: finishing the requests in flight, then stopping");
    let _ = stop.send(signal);
    serving.await.context("the server task failed")??;
    Ok(ExitCode::SUCCESS)
}

/// The `/metrics` endpoint of a long command; serves until dropped.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts serving `/metrics` at `--metrics-listen`, when given: installs the
/// exporter and binds now, so a taken address fails the command before it
/// does any work.
pub(crate) async fn metrics_endpoint(args: &MetricsArgs) -> Result<Option<MetricsEndpoint>> {
    let Some(listen) = args.metrics_listen else { return Ok(None) };
    let metrics = exporter()?;
    let server = Server::bind_metrics_only(listen, metrics).await.context("--metrics-listen")?;
    eprintln!("metrics at http://{}/metrics", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(error) = server
            .run(async move {
                let _ = stopped.await;
            })
            .await
        {
            tracing::warn!("the metrics endpoint stopped: {error:#}");
        }
    });
    Ok(Some(MetricsEndpoint { _stop: stop }))
}
