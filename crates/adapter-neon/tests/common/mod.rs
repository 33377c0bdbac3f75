//! Shared helpers of the PostgreSQL tests: a fresh schema per test on the
//! server at `DATABASE_URL` (or through the PgBouncer at
//! `STRATA_PGBOUNCER_URL`), dropped when the guard goes.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_adapter_neon::{NeonConfig, NeonStore};

/// Drops its schema (CASCADE) with `psql` when dropped.
pub use strata_testpg::TempSchema as SchemaGuard;

/// A schema name unique to this process and call.
pub fn unique_schema(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos % 100_000)
}

/// The URL to test against, or `None` (with a message) when unset.
pub fn test_url(via_bouncer: bool) -> Option<String> {
    let variable = if via_bouncer { "STRATA_PGBOUNCER_URL" } else { "DATABASE_URL" };
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("{variable} is not set: PostgreSQL tests skipped (`cargo xtask test` sets it)");
            None
        }
    }
}

/// A test configuration: small pool, short retry budget.
pub fn test_config(url: &str, schema: &str, via_bouncer: bool) -> NeonConfig {
    let mut config = NeonConfig::from_url(url).expect("a valid test URL").with_schema(schema).expect("a valid schema");
    config.max_connections = 6;
    config.retry_budget = Duration::from_secs(5);
    config.retry_base_delay = Duration::from_millis(20);
    config.acquire_timeout = Duration::from_secs(10);
    config.with_pooler(via_bouncer)
}

/// A store on a fresh schema, or `None` when there is no server to test against.
pub async fn fresh_store(via_bouncer: bool) -> Option<(Arc<NeonStore>, SchemaGuard)> {
    let url = test_url(via_bouncer)?;
    let schema = unique_schema(if via_bouncer { "tb" } else { "t" });
    let guard = SchemaGuard::new(&url, &schema);
    let store = NeonStore::open(test_config(&url, &schema, via_bouncer)).await.expect("opening the test store");
    Some((Arc::new(store), guard))
}
