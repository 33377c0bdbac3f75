//! mockall mocks of the three ports, for tests that check call patterns.
//!
//! Prefer [`crate::MemoryStore`] when a test needs a working store; use a
//! mock when the point is *how* a port is called (once, with this query,
//! never after an error, ...).

use std::fmt;
use std::time::Duration;

use futures::stream::BoxStream;
use mockall::mock;
use strata_core::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Lease, LeaseRequest,
    NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskRecord, WorkerId, WorkerInfo,
    WorkerRecord,
};
use strata_core::ports::provision::{BranchInfo, BranchSpec, Pooling};
use strata_core::{
    BarBatch, BarQuery, DayDigest, DigestQuery, EvolutionStore, HealthReport, MarketDataStore, MarketSummary,
    Provisioner, Result, Secret, Symbol, TimeRange, WriteReport,
};

mock! {
    /// A mock [`MarketDataStore`].
    #[derive(Debug)]
    pub MarketDataStore {}

    #[async_trait::async_trait]
    impl MarketDataStore for MarketDataStore {
        fn capabilities(&self) -> strata_core::Capabilities;
        async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport>;
        fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>>;
        async fn summary(&self) -> Result<MarketSummary>;
        async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>>;
        async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64>;
        async fn health(&self) -> Result<HealthReport>;
    }
}

mock! {
    /// A mock [`EvolutionStore`].
    #[derive(Debug)]
    pub EvolutionStore {}

    #[async_trait::async_trait]
    impl EvolutionStore for EvolutionStore {
        fn capabilities(&self) -> strata_core::Capabilities;
        async fn create_run(&self, spec: RunSpec) -> Result<RunRecord>;
        async fn get_run(&self, run: &RunId) -> Result<RunRecord>;
        async fn list_runs(&self) -> Result<Vec<RunRecord>>;
        async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<RunRecord>;
        async fn transition_run(&self, run: &RunId, from: &[RunStatus], to: RunStatus) -> Result<RunRecord>;
        async fn delete_run(&self, run: &RunId) -> Result<bool>;
        async fn save_generation(&self, generation: Generation, expected_latest: Option<u32>) -> Result<()>;
        async fn load_generation(&self, run: &RunId, number: u32) -> Result<Generation>;
        async fn latest_generation(&self, run: &RunId) -> Result<Option<Generation>>;
        async fn enqueue_tasks(
            &self,
            run: &RunId,
            generation: u32,
            tasks: Vec<NewTask>,
            max_attempts: u32,
        ) -> Result<u64>;
        async fn lease_tasks(&self, request: LeaseRequest) -> Result<Vec<Lease>>;
        async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<u64>;
        async fn complete_tasks(
            &self,
            worker: &WorkerId,
            completions: Vec<Completion>,
        ) -> Result<Vec<CompletionStatus>>;
        async fn release_tasks(
            &self,
            worker: &WorkerId,
            leases: Vec<(TaskKey, FencingToken)>,
        ) -> Result<Vec<CompletionStatus>>;
        async fn requeue_expired(&self) -> Result<u64>;
        async fn requeue_parked(&self, run: &RunId) -> Result<u64>;
        async fn task_counts(&self, run: &RunId, generation: u32) -> Result<TaskCounts>;
        async fn list_tasks(&self, run: &RunId, generation: u32) -> Result<Vec<TaskRecord>>;
        async fn register_worker(&self, worker: WorkerInfo) -> Result<()>;
        async fn list_workers(&self) -> Result<Vec<WorkerRecord>>;
        async fn record_generation_stats(&self, stats: GenerationStats) -> Result<()>;
        async fn generation_stats(&self, run: &RunId) -> Result<Vec<GenerationStats>>;
        async fn cached_fitness(&self, keys: &[String]) -> Result<Vec<Option<CachedFitness>>>;
        async fn acquire_coordinator(
            &self,
            run: &RunId,
            holder: &WorkerId,
            ttl: Duration,
        ) -> Result<Option<RoleLease>>;
        async fn renew_coordinator(&self, lease: &RoleLease, ttl: Duration) -> Result<bool>;
        async fn release_coordinator(&self, lease: &RoleLease) -> Result<()>;
    }
}

mock! {
    /// A mock [`Provisioner`].
    #[derive(Debug)]
    pub Provisioner {}

    #[async_trait::async_trait]
    impl Provisioner for Provisioner {
        async fn ensure_branch(&self, spec: BranchSpec) -> Result<BranchInfo>;
        async fn delete_branch(&self, name: &str) -> Result<bool>;
        async fn ensure_database(&self, branch: &str, database: &str, owner: &str) -> Result<()>;
        async fn drop_database(&self, branch: &str, database: &str) -> Result<bool>;
        async fn ensure_role(&self, branch: &str, role: &str) -> Result<Option<Secret>>;
        async fn connection_uri(&self, branch: &str, database: &str, role: &str, pooling: Pooling) -> Result<Secret>;
    }
}

impl fmt::Display for MockMarketDataStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock")
    }
}

impl fmt::Display for MockEvolutionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::StreamExt;
    use mockall::predicate::eq;
    use strata_core::{Bar, MarketDataStoreExt, StoreError, Timestamp};

    use super::*;

    /// A caller that reads the latest close of a symbol through the port.
    async fn latest_close(store: &dyn MarketDataStore, symbol: Symbol) -> Result<Option<f64>> {
        let bars = store.collect_bars(BarQuery::latest(symbol, 1)).await?;
        Ok(bars.first().map(|bar| bar.close))
    }

    /// A caller that stops a run and leases nothing more for it.
    async fn cancel_run(store: &dyn EvolutionStore, run: &RunId) -> Result<RunStatus> {
        Ok(store.set_run_status(run, RunStatus::Cancelled).await?.status)
    }

    /// A caller that provisions a database and returns its pooled URI.
    async fn provision(provisioner: &dyn Provisioner, branch: &str) -> Result<Secret> {
        provisioner.ensure_database(branch, "strata", "strata_owner").await?;
        provisioner.connection_uri(branch, "strata", "strata_owner", Pooling::Pooled).await
    }

    #[test]
    fn market_mock_checks_the_query_and_the_call_count() {
        let symbol = Symbol::new("^GSPC").unwrap();
        let bar = Bar {
            symbol: "^GSPC".into(),
            timestamp: Timestamp(915_408_000_000_000),
            open: 1229.22998,
            high: 1248.810059,
            low: 1219.099976,
            close: 1228.099976,
            volume: 877_000_000.0,
            vwap: None,
            trade_count: None,
        };
        let mut store = MockMarketDataStore::new();
        store
            .expect_query_bars()
            .with(eq(BarQuery::latest(symbol.clone(), 1)))
            .times(1)
            .returning(move |_| futures::stream::iter([Ok(BarBatch::from_bars(std::slice::from_ref(&bar)))]).boxed());
        let close = futures::executor::block_on(latest_close(&store, symbol)).unwrap();
        assert_eq!(close, Some(1228.099976));
    }

    #[test]
    fn evolution_mock_checks_the_status_change() {
        let run = RunId::new("run-1").unwrap();
        let mut store = MockEvolutionStore::new();
        let expected_run = run.clone();
        store
            .expect_set_run_status()
            .withf(move |run, status| *run == expected_run && *status == RunStatus::Cancelled)
            .times(1)
            .returning(|run, status| {
                let spec = RunSpec {
                    id: run.clone(),
                    strategy: "sma".into(),
                    seed: 7,
                    population_size: 10,
                    generations: 5,
                    config: "{}".into(),
                };
                Ok(RunRecord { spec, status, created_at: Timestamp(0), updated_at: Timestamp(1) })
            });
        store.expect_lease_tasks().never();
        let status = futures::executor::block_on(cancel_run(&store, &run)).unwrap();
        assert_eq!(status, RunStatus::Cancelled);
    }

    #[test]
    fn provisioner_mock_checks_the_order_and_stops_after_an_error() {
        let mut sequence = mockall::Sequence::new();
        let mut provisioner = MockProvisioner::new();
        provisioner
            .expect_ensure_database()
            .with(eq("ci-42"), eq("strata"), eq("strata_owner"))
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _, _| Ok(()));
        provisioner
            .expect_connection_uri()
            .withf(|branch, database, role, pooling| {
                (branch, database, role, *pooling) == ("ci-42", "strata", "strata_owner", Pooling::Pooled)
            })
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _, _, _| Ok(Secret::new("postgres://strata_owner:pw@ep-1-pooler/strata")));
        let uri = futures::executor::block_on(provision(&provisioner, "ci-42")).unwrap();
        assert!(uri.expose().contains("-pooler"));

        let mut failing = MockProvisioner::new();
        failing.expect_ensure_database().times(1).returning(|_, _, _| Err(StoreError::conflict("database exists")));
        failing.expect_connection_uri().never();
        let error = futures::executor::block_on(provision(&failing, "ci-42")).unwrap_err();
        assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    }
}
