//! [`PassThrough`]: the smallest decorator, a store that forwards every
//! method of both ports to the stores it wraps (`Arc<dyn …>` in, `Arc<dyn …>`
//! out). Running the whole conformance suite through it proves that a
//! decorator sees every method of a port: the impls deny
//! `clippy::missing_trait_methods`, so a method added to a port with a default
//! body cannot slip past a wrapper unforwarded.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use strata_core::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Lease, LeaseRequest,
    NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskRecord, WorkerId, WorkerInfo,
    WorkerRecord,
};
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, EvolutionStore, HealthReport, MarketDataStore,
    MarketSummary, Result, Symbol, TimeRange, WriteReport,
};

impl fmt::Display for PassThrough {
    /// `passthrough(duckdb)`, or `passthrough(neon, duckdb)` over two stores.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (market, evolution) = (self.market.to_string(), self.evolution.to_string());
        if market == evolution {
            write!(f, "passthrough({market})")
        } else {
            write!(f, "passthrough({market}, {evolution})")
        }
    }
}

/// Forwards every call to `market` or `evolution`, unchanged.
#[derive(Debug, Clone)]
pub struct PassThrough {
    market: Arc<dyn MarketDataStore>,
    evolution: Arc<dyn EvolutionStore>,
}

impl PassThrough {
    /// Wraps one store that implements both ports.
    pub fn new<S: MarketDataStore + EvolutionStore>(store: Arc<S>) -> Self {
        PassThrough { market: store.clone(), evolution: store }
    }

    /// Wraps two stores, one per port.
    pub fn of(market: Arc<dyn MarketDataStore>, evolution: Arc<dyn EvolutionStore>) -> Self {
        PassThrough { market, evolution }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl MarketDataStore for PassThrough {
    fn capabilities(&self) -> Capabilities {
        self.market.capabilities()
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        self.market.write_bars(batch).await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        self.market.query_bars(query)
    }

    async fn summary(&self) -> Result<MarketSummary> {
        self.market.summary().await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        self.market.digest(query).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        self.market.delete_bars(symbol, range).await
    }

    async fn health(&self) -> Result<HealthReport> {
        // A decorator reports itself, with what it wraps as a component.
        let inner = self.market.health().await?;
        Ok(HealthReport::new(self.to_string(), inner.status).with_component(inner))
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl EvolutionStore for PassThrough {
    fn capabilities(&self) -> Capabilities {
        self.evolution.capabilities()
    }

    async fn create_run(&self, spec: RunSpec) -> Result<RunRecord> {
        self.evolution.create_run(spec).await
    }

    async fn get_run(&self, run: &RunId) -> Result<RunRecord> {
        self.evolution.get_run(run).await
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>> {
        self.evolution.list_runs().await
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<RunRecord> {
        self.evolution.set_run_status(run, status).await
    }

    async fn transition_run(&self, run: &RunId, from: &[RunStatus], to: RunStatus) -> Result<RunRecord> {
        self.evolution.transition_run(run, from, to).await
    }

    async fn delete_run(&self, run: &RunId) -> Result<bool> {
        self.evolution.delete_run(run).await
    }

    async fn save_generation(&self, generation: Generation, expected_latest: Option<u32>) -> Result<()> {
        self.evolution.save_generation(generation, expected_latest).await
    }

    async fn load_generation(&self, run: &RunId, number: u32) -> Result<Generation> {
        self.evolution.load_generation(run, number).await
    }

    async fn latest_generation(&self, run: &RunId) -> Result<Option<Generation>> {
        self.evolution.latest_generation(run).await
    }

    async fn enqueue_tasks(&self, run: &RunId, generation: u32, tasks: Vec<NewTask>, max_attempts: u32) -> Result<u64> {
        self.evolution.enqueue_tasks(run, generation, tasks, max_attempts).await
    }

    async fn lease_tasks(&self, request: LeaseRequest) -> Result<Vec<Lease>> {
        self.evolution.lease_tasks(request).await
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<u64> {
        self.evolution.heartbeat(worker, ttl).await
    }

    async fn complete_tasks(&self, worker: &WorkerId, completions: Vec<Completion>) -> Result<Vec<CompletionStatus>> {
        self.evolution.complete_tasks(worker, completions).await
    }

    async fn complete_and_lease(
        &self,
        worker: &WorkerId,
        completions: Vec<Completion>,
        next: LeaseRequest,
    ) -> Result<(Vec<CompletionStatus>, Result<Vec<Lease>>)> {
        self.evolution.complete_and_lease(worker, completions, next).await
    }

    async fn release_tasks(
        &self,
        worker: &WorkerId,
        leases: Vec<(TaskKey, FencingToken)>,
    ) -> Result<Vec<CompletionStatus>> {
        self.evolution.release_tasks(worker, leases).await
    }

    async fn requeue_expired(&self) -> Result<u64> {
        self.evolution.requeue_expired().await
    }

    async fn requeue_parked(&self, run: &RunId) -> Result<u64> {
        self.evolution.requeue_parked(run).await
    }

    async fn task_counts(&self, run: &RunId, generation: u32) -> Result<TaskCounts> {
        self.evolution.task_counts(run, generation).await
    }

    async fn list_tasks(&self, run: &RunId, generation: u32) -> Result<Vec<TaskRecord>> {
        self.evolution.list_tasks(run, generation).await
    }

    async fn register_worker(&self, worker: WorkerInfo) -> Result<()> {
        self.evolution.register_worker(worker).await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        self.evolution.list_workers().await
    }

    async fn record_generation_stats(&self, stats: GenerationStats) -> Result<()> {
        self.evolution.record_generation_stats(stats).await
    }

    async fn generation_stats(&self, run: &RunId) -> Result<Vec<GenerationStats>> {
        self.evolution.generation_stats(run).await
    }

    async fn cached_fitness(&self, keys: &[String]) -> Result<Vec<Option<CachedFitness>>> {
        self.evolution.cached_fitness(keys).await
    }

    async fn acquire_coordinator(&self, run: &RunId, holder: &WorkerId, ttl: Duration) -> Result<Option<RoleLease>> {
        self.evolution.acquire_coordinator(run, holder, ttl).await
    }

    async fn renew_coordinator(&self, lease: &RoleLease, ttl: Duration) -> Result<bool> {
        self.evolution.renew_coordinator(lease, ttl).await
    }

    async fn release_coordinator(&self, lease: &RoleLease) -> Result<()> {
        self.evolution.release_coordinator(lease).await
    }
}
