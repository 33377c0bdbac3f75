//! Migrations on a schema an older build left behind. Migration 2: the
//! companion runs (`coord:<run>`) that used to hold the coordinator role as a
//! task are removed with their rows, other runs stay, and the role is a port
//! method. Migration 3: the fitness cache, which then survives reopening.

mod common;

use std::time::Duration;

use strata_adapter_neon::NeonStore;
use strata_core::EvolutionStore;
use strata_core::evolution::{CachedFitness, RunId, WorkerId};

/// Whether a missing service must fail the test instead of skipping it.
fn required() -> bool {
    std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

#[test]
fn migration_2_removes_companion_runs_and_keeps_the_others() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let schema = common::unique_schema("mig2");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let store = NeonStore::open(common::test_config(&url, &schema, false)).await.expect("first open");
        // Back to version 1, as an older build left it, with a companion run and a user run.
        let downgrade = format!(
            "DROP TABLE {schema}.coordinator_leases;
             DROP SEQUENCE {schema}.coordinator_tokens;
             DELETE FROM {schema}.strata_migrations WHERE version = 2;
             INSERT INTO {schema}.runs (id, strategy, seed, population_size, generations, config, status)
                 VALUES ('coord:r', 'coordinator-lease', 0, 1, 1, '{{}}', 'running'),
                        ('r', 'ma-crossover', 1, 1, 1, '{{}}', 'running');
             INSERT INTO {schema}.generations (run_id, generation, size) VALUES ('coord:r', 0, 1), ('r', 0, 1);
             INSERT INTO {schema}.individuals (run_id, generation, individual, genome)
                 VALUES ('coord:r', 0, 0, '{{}}'), ('r', 0, 0, '{{}}');
             INSERT INTO {schema}.tasks (run_id, generation, individual, payload, state, max_attempts)
                 VALUES ('coord:r', 0, 0, '{{\"kind\":\"coordinator-lease\"}}', 'pending', 1000000000),
                        ('r', 0, 0, '{{}}', 'pending', 3);"
        );
        sqlx::raw_sql(&downgrade).execute(store.pool()).await.expect("the version-1 state");
        store.close().await;

        let store = NeonStore::open(common::test_config(&url, &schema, false)).await.expect("migrating open");
        let runs: Vec<String> =
            store.list_runs().await.expect("list_runs").into_iter().map(|r| r.spec.id.to_string()).collect();
        assert_eq!(runs, ["r"], "the companion run is gone, the user run stays");
        for table in ["generations", "individuals", "tasks"] {
            let left: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.{table} WHERE run_id LIKE 'coord:%'"))
                    .fetch_one(store.pool())
                    .await
                    .expect("count");
            assert_eq!(left, 0, "no companion rows left in {table}");
        }
        let run = RunId::new("r").expect("run id");
        assert_eq!(store.list_tasks(&run, 0).await.expect("list_tasks").len(), 1, "the user run keeps its task");
        let holder = WorkerId::new("c1").expect("worker id");
        let role = store.acquire_coordinator(&run, &holder, Duration::from_secs(60)).await.expect("acquire");
        assert!(role.is_some(), "the coordinator role is granted through the new table");
        store.close().await;
    });
}

/// What `cached_fitness` answers for one key.
async fn cached(store: &NeonStore, key: &str) -> Option<CachedFitness> {
    store.cached_fitness(&[key.to_string()]).await.expect("cached_fitness").remove(0)
}

#[test]
fn migration_3_adds_the_fitness_cache_which_survives_reopening() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let schema = common::unique_schema("mig3");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let store = NeonStore::open(common::test_config(&url, &schema, false)).await.expect("first open");
        strata_tests::fixtures::evaluate_cached(&store, "run-a", "genome-a", 0.125).await;
        store.close().await;

        let store = NeonStore::open(common::test_config(&url, &schema, false)).await.expect("reopening");
        let entry = CachedFitness { key: "genome-a".into(), fitness: 0.125, result: "{\"sharpe\":0.125}".into() };
        assert_eq!(cached(&store, "genome-a").await, Some(entry), "the cache survives reopening");
        // Back to version 2, as an older build left it.
        let downgrade = format!(
            "DROP TABLE {schema}.fitness_cache;
             DELETE FROM {schema}.strata_migrations WHERE version = 3;"
        );
        sqlx::raw_sql(&downgrade).execute(store.pool()).await.expect("the version-2 state");
        store.close().await;

        let store = NeonStore::open(common::test_config(&url, &schema, false)).await.expect("migrating open");
        let versions: Vec<i32> =
            sqlx::query_scalar(&format!("SELECT version FROM {schema}.strata_migrations ORDER BY version"))
                .fetch_all(store.pool())
                .await
                .expect("applied versions");
        assert_eq!(versions, [1, 2, 3], "migration 3 was applied again");
        assert_eq!(store.list_runs().await.expect("list_runs").len(), 1, "the run stays");
        assert_eq!(cached(&store, "genome-a").await, None, "a new, empty cache");
        strata_tests::fixtures::evaluate_cached(&store, "run-b", "genome-a", 2.0).await;
        assert_eq!(cached(&store, "genome-a").await.map(|entry| entry.fitness), Some(2.0), "the new table is used");
        store.close().await;
    });
}
