//! Helpers of the hybrid tests: the primary as the composition root builds it
//! (lazy, short retry budget), a DuckDB cache, stacks on fresh schemas.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
use strata_adapter_neon::{NeonConfig, NeonStore};
use strata_core::MarketDataStore;
use strata_hybrid::cached::Routing;
use strata_hybrid::lazy::LazyStore;
use strata_hybrid::stack::{HybridConfig, HybridStack};
use strata_testpg::{Cluster, ClusterOptions, TempSchema};

pub fn required() -> bool {
    std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

pub fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(!required(), "DATABASE_URL is not set");
            eprintln!("DATABASE_URL is not set: hybrid PostgreSQL tests skipped (`cargo xtask test` sets it)");
            None
        }
    }
}

pub fn own_cluster() -> Option<Cluster> {
    match Cluster::start(&ClusterOptions::default()) {
        Ok(cluster) => Some(cluster),
        Err(error) if !required() => {
            eprintln!("skipped: cannot start a throwaway PostgreSQL cluster: {error}");
            None
        }
        Err(error) => panic!("cannot start a throwaway PostgreSQL cluster: {error}"),
    }
}

pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos % 100_000)
}

/// The primary's settings as the composition root makes them for hybrid: a
/// short retry budget, so an outage turns into journaled writes quickly.
pub fn primary_config(url: &str, schema: &str) -> NeonConfig {
    let mut config = NeonConfig::from_url(url).unwrap().with_schema(schema).unwrap();
    config.max_connections = 4;
    config.retry_budget = Duration::from_millis(500);
    config.retry_base_delay = Duration::from_millis(20);
    config.acquire_timeout = Duration::from_millis(750);
    config
}

/// The primary behind a lazy opener, as the composition root builds it.
pub fn lazy_primary(config: NeonConfig) -> Arc<dyn MarketDataStore> {
    Arc::new(LazyStore::new("neon", NeonStore::CAPABILITIES, Duration::from_millis(200), move || {
        let config = config.clone();
        Box::pin(async move { Ok(Arc::new(NeonStore::open(config).await?) as Arc<dyn MarketDataStore>) })
    }))
}

pub async fn duckdb_cache(dir: &Path) -> Arc<dyn MarketDataStore> {
    Arc::new(DuckDbStore::open(DuckDbConfig::new(dir.join("cache.duckdb"))).await.unwrap())
}

pub fn everything_cacheable() -> Routing {
    let century = Duration::from_secs(100 * 365 * 86_400);
    Routing { hot: century, warm: century }
}

/// What a conformance case gets: the stack's store, the guards of its schema and files.
pub struct Fixture {
    pub stack: HybridStack,
    pub _dir: tempfile::TempDir,
    pub _schema: Option<TempSchema>,
}

impl strata_tests::MarketFixture for Fixture {
    fn market_store(&self) -> Option<&dyn MarketDataStore> {
        Some(self.stack.store.as_ref())
    }
}

pub async fn stack_on(url: &str, routing: Routing) -> Fixture {
    let schema = unique("hy");
    let guard = TempSchema::new(url, &schema);
    let dir = tempfile::tempdir().unwrap();
    let mut config = HybridConfig::new(dir.path().join("state"));
    config.routing = routing;
    let stack = HybridStack::build(lazy_primary(primary_config(url, &schema)), duckdb_cache(dir.path()).await, &config)
        .unwrap();
    Fixture { stack, _dir: dir, _schema: Some(guard) }
}

/// A stack whose primary cannot be reached at all (nothing listens on its port).
pub async fn stack_with_primary_down(routing: Routing) -> Fixture {
    let port = strata_testpg::free_port().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let dir = tempfile::tempdir().unwrap();
    let mut config = HybridConfig::new(dir.path().join("state"));
    config.routing = routing;
    let stack =
        HybridStack::build(lazy_primary(primary_config(&url, "public")), duckdb_cache(dir.path()).await, &config)
            .unwrap();
    Fixture { stack, _dir: dir, _schema: None }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}
