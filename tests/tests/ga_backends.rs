//! The reusable GA checks of `strata_ga_coord::testkit` against every backend
//! that keeps evolution state across processes: the same per-generation
//! population hashes with 1, 2 and 8 workers, a worker killed mid-lease, the
//! coordinator crashed at each kill point and resumed; takeover; cancel; a
//! repeated run served by the durable fitness cache; a stopped worker's hand-back. (The
//! in-memory store runs them in `strata-ga-coord`'s own tests.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use strata_core::{EvolutionStore, MarketDataStore};
use strata_ga_coord::testkit;

async fn run_every_check(evolution: Arc<dyn EvolutionStore>, market: Arc<dyn MarketDataStore>) {
    let report = testkit::check_determinism(evolution.clone(), market.clone()).await.unwrap();
    assert_eq!(report.scenarios.len(), 5, "{report:?}");
    assert!(report.killed_tasks >= 1, "{report:?}");
    testkit::check_takeover(evolution.clone(), market.clone()).await.unwrap();
    let cancel = testkit::check_cancel(evolution.clone(), market.clone()).await.unwrap();
    assert!(cancel.evaluations < cancel.population, "{cancel:?}");
    let cache = testkit::check_durable_cache(evolution.clone(), market.clone()).await.unwrap();
    assert_eq!(cache.second_backtests, 0, "{cache:?}");
    let handed_back = testkit::check_handback(evolution, market).await.unwrap();
    assert!(handed_back > 0);
}

/// One DuckDB file shared by the coordinator and in-process workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ga_checks_pass_on_duckdb() {
    use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
    let directory = tempfile::tempdir().unwrap();
    let store = Arc::new(DuckDbStore::open(DuckDbConfig::new(directory.path().join("ga.duckdb"))).await.unwrap());
    run_every_check(store.clone(), store).await;
}

/// PostgreSQL at `DATABASE_URL` (`cargo xtask test` starts one), in a fresh schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ga_checks_pass_on_postgres() {
    use strata_adapter_neon::{NeonConfig, NeonStore};
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(std::env::var("STRATA_REQUIRE_SERVICES").is_err(), "DATABASE_URL is required");
        return eprintln!("DATABASE_URL is not set: skipped");
    };
    let schema = format!("ga_{}", std::process::id());
    let _cleanup = strata_testpg::TempSchema::new(&url, &schema);
    let config = NeonConfig::from_url(&url).unwrap().with_schema(schema).unwrap();
    let store = Arc::new(NeonStore::open(config).await.unwrap());
    run_every_check(store.clone(), store).await;
}
