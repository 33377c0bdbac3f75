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

    use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
    use strata_core::EvolutionStore;
    use strata_core::evolution::CachedFitness;

    async fn open(path: &std::path::Path) -> Arc<DuckDbStore> {
        Arc::new(DuckDbStore::open(DuckDbConfig::new(path).with_threads(2)).await.expect("opening the DuckDB file"))
    }

    fn entry(key: &str, fitness: f64) -> Option<CachedFitness> {
        Some(CachedFitness { key: key.to_string(), fitness, result: format!("{{\"sharpe\":{fitness}}}") })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fitness_cache_survives_a_reopen() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("cache.duckdb");
        let store = open(&path).await;
        strata_tests::fixtures::evaluate_cached(store.as_ref(), "run-a", "genome-a", 0.125).await;
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
        strata_tests::fixtures::evaluate_cached(store.as_ref(), "run-a", "genome-a", 1.0).await;
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
        strata_tests::fixtures::evaluate_cached(store.as_ref(), "run-b", "genome-a", 2.0).await;
        assert_eq!(
            store.cached_fitness(&["genome-a".to_string()]).await.expect("cached_fitness"),
            [entry("genome-a", 2.0)]
        );
    }
}
