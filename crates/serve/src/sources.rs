//! What a server reads from: the market-data store, the health check
//! behind `/health`, the metrics exposition behind `/metrics`, and the
//! evolution store behind the runs pages (`/`, `/runs.json`, `/runs/RUN`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use strata_core::{EvolutionStore, HealthReport, MarketDataStore};
use strata_report::StrategyRegistry;

use crate::telemetry::PrometheusHandle;

/// The store a server reads, how it checks health, and its metrics.
#[derive(Clone)]
pub struct Sources {
    pub(crate) store: Arc<dyn MarketDataStore>,
    pub(crate) health: HealthCheck,
    pub(crate) metrics: Option<MetricsSource>,
    pub(crate) runs: Option<RunsSource>,
}

/// The GA runs a server shows: their store and the strategies to backtest them with.
#[derive(Clone)]
pub(crate) struct RunsSource {
    pub(crate) evolution: Arc<dyn EvolutionStore>,
    pub(crate) registry: Arc<StrategyRegistry>,
}

impl Sources {
    /// Serves `store`; `/health` reports `store.health()`; no metrics (`/metrics` answers 404).
    pub fn new(store: Arc<dyn MarketDataStore>) -> Self {
        let checked = store.clone();
        let health = HealthCheck::new(move || {
            let store = checked.clone();
            async move { store.health().await }
        });
        Sources { store, health, metrics: None, runs: None }
    }

    /// `/health` reports what `check` returns instead: for example the
    /// health of every store the process opened (market data and evolution
    /// state), or a check that opens the store first. An error is reported
    /// as `{"ok": false, "status": "down", "error": "<error:#>"}` with 503.
    pub fn with_health_check<F, Fut, E>(mut self, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HealthReport, E>> + Send + 'static,
        E: fmt::Display,
    {
        self.health = HealthCheck::new(check);
        self
    }

    /// `/` lists the runs of `evolution` (with the market store's coverage
    /// per symbol), `/runs.json` gives their progress and `/runs/RUN` each
    /// run's report, backtested with the built-in strategies; without it
    /// those routes answer 404.
    pub fn with_runs(mut self, evolution: Arc<dyn EvolutionStore>) -> Self {
        self.runs = Some(RunsSource { evolution, registry: Arc::new(StrategyRegistry::default()) });
        self
    }

    /// `/metrics` serves this exposition (a [`PrometheusHandle`] from
    /// [`crate::telemetry::install_prometheus`], or any renderer).
    pub fn with_metrics(mut self, metrics: impl Into<MetricsSource>) -> Self {
        self.metrics = Some(metrics.into());
        self
    }
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("store", &self.store.to_string())
            .field("metrics", &self.metrics.is_some())
            .field("runs", &self.runs.as_ref().map(|runs| runs.evolution.to_string()))
            .finish_non_exhaustive()
    }
}

/// A health check: a future per call that yields a report or a message.
#[derive(Clone)]
pub(crate) struct HealthCheck(Arc<dyn Fn() -> BoxFuture<'static, Result<HealthReport, String>> + Send + Sync>);

impl HealthCheck {
    fn new<F, Fut, E>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HealthReport, E>> + Send + 'static,
        E: fmt::Display,
    {
        HealthCheck(Arc::new(move || check().map(|outcome| outcome.map_err(|error| format!("{error:#}"))).boxed()))
    }

    pub(crate) fn check(&self) -> BoxFuture<'static, Result<HealthReport, String>> {
        (self.0)()
    }
}

/// Renders the Prometheus text exposition for `/metrics`.
#[derive(Clone)]
pub struct MetricsSource(Arc<dyn Fn() -> String + Send + Sync>);

impl MetricsSource {
    /// A source that calls `render` on every scrape.
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        MetricsSource(Arc::new(render))
    }

    /// The exposition now.
    pub fn render(&self) -> String {
        (self.0)()
    }
}

impl From<PrometheusHandle> for MetricsSource {
    fn from(handle: PrometheusHandle) -> Self {
        MetricsSource::new(move || handle.render())
    }
}

impl fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsSource")
    }
}
