//! Single-machine runs: one coordinator plus in-process workers sharing one
//! evaluator (and so one bar cache and one fitness cache), all through the
//! same stores a distributed run would use, waking each other with
//! [`Nudges`] instead of waiting out polling intervals.

use std::sync::Arc;
use std::time::Duration;

use strata_core::evolution::{RunRecord, RunSpec, WorkerId};
use strata_core::{EvolutionStore, MarketDataStore};
use tokio::sync::{Notify, watch};

use crate::coordinator::{Coordinator, CoordinatorConfig, Observer};
use crate::error::{GaError, GaResult};
use crate::eval::{Evaluator, SnapshotSource};
use crate::strategy::StrategyRegistry;
use crate::worker::{Worker, WorkerConfig, WorkerReport};

/// Wake-ups between a coordinator and the workers of its own process, so that
/// neither waits out a polling interval for the other: workers nudge the
/// coordinator when they have recorded results, the coordinator nudges idle
/// workers when it has enqueued a generation. The store stays the only source
/// of truth (a nudge only cuts a wait short; a missed one costs one interval),
/// and workers in other processes still poll.
#[derive(Debug, Clone, Default)]
pub struct Nudges {
    results: Arc<Notify>,
    work: Arc<Notify>,
}

impl Nudges {
    /// Results were recorded: the coordinator's next wait ends at once.
    pub fn results_recorded(&self) {
        self.results.notify_one();
    }

    /// Tasks were enqueued: workers waiting now wake up.
    pub fn work_enqueued(&self) {
        self.work.notify_waiters();
    }

    /// Waits `limit`, or until results are recorded.
    pub async fn results_or(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.results.notified()).await;
    }

    /// Waits `limit`, or until work is enqueued.
    pub async fn work_or(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.work.notified()).await;
    }
}

/// Settings of a single-machine run.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// In-process workers (each evaluates on tokio's blocking pool; use the
    /// number of cores). 0 runs the coordinator only: the evaluations are
    /// left to `strata worker` processes that share the store.
    pub workers: u32,
    /// The coordinator's settings (its holder id also prefixes the workers' ids).
    pub coordinator: CoordinatorConfig,
    /// Lease TTL of the workers.
    pub worker_ttl: Duration,
    /// Most tasks per worker lease.
    pub max_batch: u32,
    /// The machine's name, recorded with each worker.
    pub hostname: String,
    /// Whether the workers use the store's durable fitness cache ([`WorkerConfig::durable_cache`]).
    pub durable_cache: bool,
    /// Where the workers read a pinned run's bars ([`SnapshotSource`]); `None` refuses pinned runs.
    pub snapshots: Option<Arc<dyn SnapshotSource>>,
}

impl LocalOptions {
    /// `workers` in-process workers; leases of 10 s (a crashed process's
    /// evaluations come back within 10 s for the next `--resume`).
    pub fn new(holder: WorkerId, workers: u32) -> Self {
        LocalOptions {
            workers,
            coordinator: CoordinatorConfig::new(holder),
            worker_ttl: Duration::from_secs(10),
            max_batch: 64,
            hostname: "localhost".to_string(),
            durable_cache: true,
            snapshots: None,
        }
    }
}

/// The outcome of [`evolve_local`].
#[derive(Debug)]
pub struct LocalOutcome {
    /// The run as it ended (or the coordinator's error).
    pub result: GaResult<RunRecord>,
    /// What each worker did.
    pub workers: Vec<GaResult<WorkerReport>>,
}

/// Creates or resumes `spec` and evolves it with a coordinator and
/// `options.workers` in-process workers; returns when the coordinator stops.
pub async fn evolve_local(
    evolution: Arc<dyn EvolutionStore>,
    market: Arc<dyn MarketDataStore>,
    registry: Arc<StrategyRegistry>,
    spec: RunSpec,
    options: LocalOptions,
    observer: Option<Arc<dyn Observer>>,
) -> GaResult<LocalOutcome> {
    let evaluator = Evaluator::new(market, registry.clone()).with_snapshots(options.snapshots.clone());
    let (stop, stopped) = watch::channel(false);
    let nudges = Nudges::default();
    let mut options = options;
    options.coordinator.nudges = Some(nudges.clone());
    let mut handles = Vec::new();
    for index in 0..options.workers {
        let id = WorkerId::new(format!("{}-w{index}", options.coordinator.holder))
            .map_err(|e| GaError::Config(format!("worker id: {e}")))?;
        let mut config = WorkerConfig::new(id).with_ttl(options.worker_ttl);
        config.run = Some(spec.id.clone());
        config.max_batch = options.max_batch;
        config.hostname = options.hostname.clone();
        config.durable_cache = options.durable_cache;
        // Stopped below when the coordinator ends, not by the run's status: a
        // resumed run is still `interrupted` or `failed` until the coordinator
        // marks it running, and workers that looked first would leave at once.
        config.stop_when_run_ends = false;
        config.idle_wait = (options.coordinator.poll / 2).max(Duration::from_millis(5));
        config.nudges = Some(nudges.clone());
        let worker = Worker::new(evolution.clone(), evaluator.clone(), config);
        let stopped = stopped.clone();
        handles.push(tokio::spawn(async move { worker.run(stopped).await }));
    }
    let mut coordinator = Coordinator::new(evolution, registry, options.coordinator);
    if let Some(observer) = observer {
        coordinator = coordinator.with_observer(observer);
    }
    let result = coordinator.run(spec).await;
    let _ = stop.send(true);
    let mut workers = Vec::new();
    for handle in handles {
        workers.push(handle.await.unwrap_or_else(|join| Err(GaError::Config(format!("worker task failed: {join}")))));
    }
    Ok(LocalOutcome { result, workers })
}
