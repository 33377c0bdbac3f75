//! The store's PostgreSQL metrics, recorded through the [`metrics`] facade:
//! this crate installs no exporter (the binary does; without one every
//! metric is a no-op).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `strata_pool_connections` | gauge | `store`, `state` | the pool's open connections: `idle`, or `used` by an operation |
//! | `strata_pool_max_connections` | gauge | `store` | the most connections the pool opens |
//! | `strata_database_size_bytes` | gauge | `store` | `pg_database_size(current_database())` at the last health check |
//!
//! - `store` is `neon` for a [`NeonStore`](crate::NeonStore) and
//!   `neon-seeds` for a [`SeedsPgSource`](crate::seeds::SeedsPgSource): the
//!   backend, never a URL, schema or database name. (Two stores of one kind
//!   in one process, as `strata copy` between two schemas opens, share the
//!   label; the gauges then show whichever was sampled last.)
//! - The pool gauges are sampled every [`POOL_SAMPLE_INTERVAL`] by a task
//!   that ends when the store is dropped or closed, and at each health
//!   check; the database size only at a health check (one `health()` call,
//!   such as a `/health` request, refreshes it).
//!
//! Operation durations, rows and errors by kind are not recorded here: the
//! composition root wraps every market store in the metered decorator of
//! `strata-hybrid`, so errors by kind are `strata_store_operations_total`
//! with `store="neon"` and `outcome` other than `ok` (the outcome is the
//! error's `StoreError::kind`).
//!
//! Every metric has HELP text: [`describe`] registers it with the recorder
//! installed at the time, and the recording helpers call it once, on first
//! use. A binary that installs its exporter after something was recorded
//! calls [`describe`] itself.

use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use metrics::Unit;
use sqlx::PgPool;

use crate::store::Inner;

/// The pool's open connections, by `store` and `state` (`idle`, `used`).
pub const POOL_CONNECTIONS: &str = "strata_pool_connections";
/// The most connections the pool opens, by `store`.
pub const POOL_MAX_CONNECTIONS: &str = "strata_pool_max_connections";
/// The database's size in bytes at the last health check, by `store`.
pub const DATABASE_SIZE_BYTES: &str = "strata_database_size_bytes";

/// How often the pool gauges are sampled.
pub const POOL_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// The `store` label of a [`NeonStore`](crate::NeonStore).
pub(crate) const STORE_LABEL: &str = "neon";
/// The `store` label of a [`SeedsPgSource`](crate::seeds::SeedsPgSource).
pub(crate) const SEEDS_LABEL: &str = "neon-seeds";

/// Registers the unit and HELP text of every metric of this module with the
/// recorder installed now. Harmless to repeat.
pub fn describe() {
    metrics::describe_gauge!(
        POOL_CONNECTIONS,
        Unit::Count,
        "Open connections of a PostgreSQL store's pool, by state (idle, used)."
    );
    metrics::describe_gauge!(
        POOL_MAX_CONNECTIONS,
        Unit::Count,
        "The most connections a PostgreSQL store's pool opens."
    );
    metrics::describe_gauge!(
        DATABASE_SIZE_BYTES,
        Unit::Bytes,
        "Size of a PostgreSQL store's database (pg_database_size) at its last health check."
    );
}

/// [`describe`], once per process, on the first recording.
fn describe_once() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe);
}

/// Sets the pool gauges of `store` from `pool` and its configured maximum.
pub(crate) fn pool(store: &'static str, pool: &PgPool, max_connections: u32) {
    describe_once();
    let size = pool.size() as usize;
    let idle = pool.num_idle().min(size);
    metrics::gauge!(POOL_CONNECTIONS, "store" => store, "state" => "idle").set(idle as f64);
    metrics::gauge!(POOL_CONNECTIONS, "store" => store, "state" => "used").set((size - idle) as f64);
    metrics::gauge!(POOL_MAX_CONNECTIONS, "store" => store).set(f64::from(max_connections));
}

/// Sets the database size of `store`.
pub(crate) fn database_size(store: &'static str, bytes: i64) {
    describe_once();
    metrics::gauge!(DATABASE_SIZE_BYTES, "store" => store).set(bytes as f64);
}

/// Samples the pool gauges of `inner` now and every [`POOL_SAMPLE_INTERVAL`]
/// until the store is dropped or its pool closed (outside a tokio runtime,
/// only now). The task holds no strong reference: it never keeps a pool open.
pub(crate) fn sample_pool(inner: &Arc<Inner>) {
    inner.record_pool();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let weak: Weak<Inner> = Arc::downgrade(inner);
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(POOL_SAMPLE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match weak.upgrade() {
                Some(inner) if !inner.pool.is_closed() => inner.record_pool(),
                _ => return,
            }
        }
    });
}
