//! The cross-backend conformance suite (`strata-tests`) against `DuckDbStore`:
//! every case gets a fresh DuckDB file in its own temporary directory, which
//! outlives the store.

use std::sync::Arc;

use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};

strata_tests::conformance_suite!(|| async {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = DuckDbConfig::new(directory.path().join("conformance.duckdb")).with_threads(2);
    let store = DuckDbStore::open(config).await.expect("opening a fresh DuckDB file");
    (Arc::new(store), directory)
});

/// The durable parts of the evolution port that the shared suite (a fresh
/// store per case) cannot see: what survives closing and reopening the file.
mod reopened {
    use std::sync::Arc;
    use std::time::Duration;

    use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
    use strata_core::EvolutionStore;
    use strata_core::evolution::{
        CachedFitness, Completion, CompletionStatus, LeaseRequest, NewTask, RunId, RunSpec, TaskOutcome, WorkerId,
    };

    async fn open(path: &std::path::Path) -> Arc<DuckDbStore> {
        Arc::new(DuckDbStore::open(DuckDbConfig::new(path).with_threads(2)).await.expect("opening the DuckDB file"))
    }

    /// Creates run `id` with one task, leases it and completes it with `fitness` under `cache_key`.
    async fn evaluate(store: &DuckDbStore, id: &str, cache_key: &str, fitness: f64) {
        let spec = RunSpec {
            id: RunId::new(id).expect("run id"),
            strategy: "sma_crossover".into(),
            seed: 1,
            population_size: 1,
            generations: 1,
            config: "{}".into(),
        };
        store.create_run(spec.clone()).await.expect("create_run");
        let task = NewTask { individual: 0, payload: "{}".into() };
        store.enqueue_tasks(&spec.id, 0, vec![task], 3).await.expect("enqueue_tasks");
        let worker = WorkerId::new("w1").expect("worker id");
        let request =
            LeaseRequest { worker: worker.clone(), run: Some(spec.id), max_tasks: 1, ttl: Duration::from_secs(600) };
        let lease = store.lease_tasks(request).await.expect("lease_tasks").remove(0);
        let completion = Completion {
            key: lease.key,
            token: lease.token,
            outcome: TaskOutcome::Succeeded { fitness, result: format!("{{\"sharpe\":{fitness}}}") },
            cache_key: Some(cache_key.to_string()),
        };
        let statuses = store.complete_tasks(&worker, vec![completion]).await.expect("complete_tasks");
        assert_eq!(statuses, [CompletionStatus::Recorded]);
    }

    fn entry(key: &str, fitness: f64) -> Option<CachedFitness> {
        Some(CachedFitness { key: key.to_string(), fitness, result: format!("{{\"sharpe\":{fitness}}}") })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fitness_cache_survives_a_reopen() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("cache.duckdb");
        let store = open(&path).await;
        evaluate(&store, "run-a", "genome-a", 0.125).await;
        drop(store);
        let store = open(&path).await;
        let keys = ["genome-a".to_string(), "genome-b".to_string()];
        assert_eq!(store.cached_fitness(&keys).await.expect("cached_fitness"), [entry("genome-a", 0.125), None]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_2_file_gains_the_fitness_cache() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("v2.duckdb");
        let store = open(&path).await;
        evaluate(&store, "run-a", "genome-a", 1.0).await;
        drop(store);
        {
            // Back to version 2, as an older build left the file.
            let connection = duckdb::Connection::open(&path).expect("opening the file directly");
            connection
                .execute_batch("DROP TABLE fitness_cache; DELETE FROM schema_version WHERE version = 3;")
                .expect("the version-2 state");
        }
        let store = open(&path).await;
        let runs = store.list_runs().await.expect("list_runs");
        assert_eq!(runs.len(), 1, "the run is kept");
        assert_eq!(store.cached_fitness(&["genome-a".to_string()]).await.expect("cached_fitness"), [None]);
        evaluate(&store, "run-b", "genome-a", 2.0).await;
        assert_eq!(
            store.cached_fitness(&["genome-a".to_string()]).await.expect("cached_fitness"),
            [entry("genome-a", 2.0)]
        );
    }
}
