//! `NeonStore`: the pool, the one way every operation reaches the database
//! (an explicit transaction with `SET LOCAL` timeouts, retried with backoff
//! and jitter within a budget when the failure is transient), migrations at
//! open, and the health report.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Executor as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Row as _};
use strata_core::{HealthReport, Result, StoreError};

use crate::config::{NeonConfig, ssl_mode_name};
use crate::error::{BACKEND, Failure, Transience};
use crate::schema::{self, BarLayout};

/// Whether an operation may be repeated after an unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Repeating it leaves the same state (upserts, reads, compare-and-set).
    Idempotent,
    /// Repeating it could do it twice (leasing): retried only when nothing reached the server.
    NotIdempotent,
}

/// The PostgreSQL/Neon store: market data and evolution state on one pool.
#[derive(Clone)]
pub struct NeonStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) config: NeonConfig,
    pub(crate) layout: BarLayout,
    /// Partitions known to exist (period starts, epoch microseconds).
    pub(crate) partitions: Mutex<Option<HashSet<i64>>>,
    /// `SET LOCAL` statements run at the start of every transaction.
    pub(crate) set_local: String,
}

impl fmt::Debug for NeonStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeonStore")
            .field("url", &self.inner.config.redacted_url())
            .field("schema", &self.inner.config.schema)
            .field("layout", &self.inner.layout)
            .field("pooler", &self.inner.config.pooler)
            .finish()
    }
}

impl NeonStore {
    /// Connects (waiting out transient failures within the retry budget),
    /// applies pending migrations unless `migrate_on_start` is off, and
    /// reads the bar layout.
    pub async fn open(config: NeonConfig) -> Result<Self> {
        if let Some(notice) = config.tls_notice() {
            tracing::warn!("{notice}");
        }
        let options = config.connect_options()?;
        probe(&config, &options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(Some(config.idle_timeout))
            .max_lifetime(Some(config.max_lifetime))
            .test_before_acquire(true)
            .connect_lazy_with(options);
        let set_local = format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
            config.statement_timeout.as_millis().max(1),
            config.lock_timeout.as_millis().max(1)
        );
        let mut inner = Inner {
            pool,
            config,
            layout: BarLayout::Partitioned(Default::default()),
            partitions: Mutex::new(None),
            set_local,
        };
        let layout =
            if inner.config.migrate_on_start { migrate_inner(&inner).await? } else { read_layout(&inner).await? };
        inner.layout = layout;
        inner.partitions = Mutex::new(None);
        Ok(NeonStore { inner: Arc::new(inner) })
    }

    /// Applies pending migrations (what `strata migrate` runs); returns the
    /// schema version after it.
    pub async fn migrate(&self) -> Result<i32> {
        migrate_inner(&self.inner).await?;
        Ok(schema::latest_version())
    }

    /// The bar layout in use.
    pub fn layout(&self) -> BarLayout {
        self.inner.layout
    }

    /// The configuration (password redacted in `Debug`).
    pub fn config(&self) -> &NeonConfig {
        &self.inner.config
    }

    /// The pool, for tests and tools in this crate's family.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// The fully qualified name of a table.
    pub(crate) fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.inner.config.schema)
    }

    /// Whether queries should use named (cached) prepared statements.
    pub(crate) fn persistent(&self) -> bool {
        !self.inner.config.pooler
    }

    pub(crate) async fn health_report(&self) -> Result<HealthReport> {
        let started = Instant::now();
        let schema_name = self.inner.config.schema.clone();
        let persistent = self.persistent();
        let outcome = transact!(self.inner, "checking health", Idempotency::Idempotent, |connection| {
            let round_trip = Instant::now();
            sqlx::query("SELECT 1").persistent(persistent).execute(&mut *connection).await?;
            let latency = round_trip.elapsed();
            let row = sqlx::query(
                "SELECT current_setting('server_version'), pg_database_size(current_database()),
                                current_database(),
                                EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
                                EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
            )
            .persistent(persistent)
            .fetch_one(&mut *connection)
            .await?;
            let version: Option<i32> =
                sqlx::query_scalar(&format!("SELECT max(version) FROM {schema_name}.strata_migrations"))
                    .persistent(persistent)
                    .fetch_one(&mut *connection)
                    .await?;
            let partitions: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                         JOIN pg_namespace n ON n.oid = p.relnamespace
                         WHERE n.nspname = $1 AND p.relname = 'ohlcv_bars'",
            )
            .bind(&schema_name)
            .persistent(persistent)
            .fetch_one(&mut *connection)
            .await?;
            Ok((latency, row, version, partitions))
        });
        let config = &self.inner.config;
        let mut details = vec![
            ("url".to_string(), config.redacted_url()),
            ("schema".to_string(), config.schema.clone()),
            ("pooler".to_string(), if config.pooler { "yes (transaction mode rules)".into() } else { "no".into() }),
            ("tls".to_string(), ssl_mode_name(config.ssl_mode()).to_string()),
            ("pool_size".to_string(), self.inner.pool.size().to_string()),
            ("pool_idle".to_string(), self.inner.pool.num_idle().to_string()),
            (
                "pool_in_use".to_string(),
                (self.inner.pool.size() as usize).saturating_sub(self.inner.pool.num_idle()).to_string(),
            ),
            ("pool_max".to_string(), config.max_connections.to_string()),
        ];
        match outcome {
            Ok((latency, row, version, partitions)) => {
                let server: String = row.try_get(0).unwrap_or_default();
                let size: i64 = row.try_get(1).unwrap_or_default();
                let database: String = row.try_get(2).unwrap_or_default();
                let timescale_installed: bool = row.try_get(3).unwrap_or_default();
                let timescale_available: bool = row.try_get(4).unwrap_or_default();
                details.insert(0, ("round_trip_ms".to_string(), format!("{:.2}", latency.as_secs_f64() * 1e3)));
                details.push(("server_version".to_string(), server));
                details.push(("database".to_string(), database));
                details.push(("database_bytes".to_string(), size.to_string()));
                details.push(("bars_layout".to_string(), self.inner.layout.describe()));
                if let BarLayout::Partitioned(_) = self.inner.layout {
                    details.push(("bars_partitions".to_string(), partitions.to_string()));
                }
                details.push((
                    "timescaledb".to_string(),
                    match (timescale_installed, timescale_available) {
                        (true, _) => "installed".to_string(),
                        (false, true) => "available, not installed".to_string(),
                        (false, false) => "not available on this server".to_string(),
                    },
                ));
                let current = version.unwrap_or(0);
                details.push((
                    "migration_version".to_string(),
                    format!("{current} (this build: {})", schema::latest_version()),
                ));
                details.push(("check_ms".to_string(), format!("{:.1}", started.elapsed().as_secs_f64() * 1e3)));
                Ok(HealthReport { backend: BACKEND, ok: current == schema::latest_version(), details })
            }
            Err(error) => {
                details.push(("error".to_string(), error.to_string()));
                Ok(HealthReport { backend: BACKEND, ok: false, details })
            }
        }
    }
}

/// Runs a body in one transaction, retrying transient failures within the
/// retry budget: `transact!(inner, "what", Idempotency::X, |c| { ... Ok(value) })`
/// where `inner` is a `&Inner` (or `Arc<Inner>`), `c` is bound to the
/// transaction's `&mut PgConnection` and the body is an async block body
/// returning `Result<T, Failure>`. Each attempt is acquire, `BEGIN`,
/// `SET LOCAL` timeouts, body, `COMMIT`; a failed body rolls back, so only a
/// failure of the `COMMIT` itself leaves the outcome unknown, and that is
/// retried only for idempotent operations.
///
/// A macro rather than a function taking a closure: a closure over
/// `&mut PgConnection` needs a higher-ranked lifetime, and rustc cannot prove
/// such futures `Send` around sqlx's `Executor` impls.
macro_rules! transact {
    ($inner:expr, $what:expr, $idempotency:expr, |$c:ident| $body:block) => {{
        let inner: &$crate::store::Inner = &$inner;
        let started = ::std::time::Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            // Both futures are boxed as `dyn Future + Send` where they are made: the
            // Send proof then sees concrete lifetimes (rustc cannot prove it later
            // for nested async blocks holding sqlx executors).
            let outcome: ::futures::future::BoxFuture<'_, ::std::result::Result<_, ($crate::error::Failure, bool)>> =
                ::std::boxed::Box::pin(async {
                    let mut transaction = inner.begin_attempt().await.map_err(|failure| (failure, false))?;
                    let value = {
                        let $c: &mut ::sqlx::PgConnection = &mut *transaction;
                        let body: ::futures::future::BoxFuture<'_, ::std::result::Result<_, $crate::error::Failure>> =
                            ::std::boxed::Box::pin($crate::store::typed_body(async { $body }));
                        body.await
                    };
                    match value {
                        Ok(value) => match transaction.commit().await {
                            Ok(()) => Ok(value),
                            Err(error) => Err(($crate::error::Failure::Db(error), true)),
                        },
                        Err(failure) => {
                            let _ = transaction.rollback().await;
                            Err((failure, false))
                        }
                    }
                });
            match outcome.await {
                Ok(value) => break Ok(value),
                Err((failure, reached_server)) => {
                    match inner.retry_delay(&failure, reached_server, $idempotency, attempt, started, $what) {
                        Some(delay) => ::tokio::time::sleep(delay).await,
                        None => break Err(failure.into_store($what)),
                    }
                }
            }
        }
    }};
}
pub(crate) use transact;

/// Pins a transaction body's type so `?` inside it converts to [`Failure`].
pub(crate) fn typed_body<T, F>(body: F) -> F
where
    F: std::future::Future<Output = std::result::Result<T, Failure>>,
{
    body
}

impl Inner {
    /// Starts one attempt: a pooled connection, `BEGIN`, the `SET LOCAL` timeouts.
    pub(crate) async fn begin_attempt(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, Failure> {
        // One round trip: BEGIN and the SET LOCAL timeouts as one simple query.
        Ok(self.pool.begin_with(format!("BEGIN; {}", self.set_local)).await?)
    }

    /// After a failed attempt: how long to wait before the next one, or
    /// `None` to give up (not transient, not safe to repeat, or over budget).
    pub(crate) fn retry_delay(
        &self,
        failure: &Failure,
        reached_server: bool,
        idempotency: Idempotency,
        attempt: u32,
        started: Instant,
        what: &str,
    ) -> Option<Duration> {
        let retry = match failure.transience() {
            Transience::Always => idempotency == Idempotency::Idempotent || !reached_server,
            Transience::IfIdempotent => idempotency == Idempotency::Idempotent,
            Transience::Never => false,
        };
        if !retry {
            return None;
        }
        let delay = backoff_delay(self.config.retry_base_delay, attempt);
        if started.elapsed() + delay > self.config.retry_budget {
            tracing::warn!(attempts = attempt, "{what}: giving up: the retry budget is spent");
            return None;
        }
        tracing::info!(attempt, delay_ms = delay.as_millis() as u64, "{what}: transient failure, retrying");
        Some(delay)
    }
}

/// Exponential backoff with full jitter: a random delay in [base·2^(n-1)/2, base·2^(n-1)], capped at 5 s.
fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    let cap = Duration::from_secs(5);
    let exponential = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(cap);
    // Full jitter in [0.5, 1.0): a SplitMix64 draw seeded by the clock is plenty for spreading retries.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let jitter = 0.5 + 0.5 * strata_core::synthetic::SplitMix64(seed ^ u64::from(attempt)).unit();
    exponential.mul_f64(jitter)
}

/// Connects once outside the pool so that a failure reports its real cause
/// (refused, authentication, TLS, unknown database) instead of the pool's
/// "timed out"; transient failures are retried within the retry budget, so
/// a Neon compute that is waking up is waited for.
async fn probe(config: &NeonConfig, options: &sqlx::postgres::PgConnectOptions) -> Result<()> {
    use sqlx::Connection as _;

    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match tokio::time::timeout(config.acquire_timeout, sqlx::PgConnection::connect_with(options)).await
        {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                return Ok(());
            }
            Ok(Err(error)) => error,
            Err(_) => sqlx::Error::PoolTimedOut,
        };
        let delay = backoff_delay(config.retry_base_delay, attempt);
        let transient = crate::error::transience(&error) == Transience::Always;
        if !transient || started.elapsed() + delay > config.retry_budget {
            return Err(crate::error::classify(error, &format!("connecting to {}", config.redacted_url())));
        }
        if attempt == 1 {
            tracing::warn!(
                "cannot connect to {} yet ({}); retrying for up to {:?} (a Neon compute may be waking up)",
                config.redacted_url(),
                crate::config::redact_text(&error.to_string()),
                config.retry_budget
            );
        }
        tokio::time::sleep(delay).await;
    }
}

/// Reads the layout recorded by the migrations (for `migrate_on_start = false`).
async fn read_layout(inner: &Inner) -> Result<BarLayout> {
    let sql = format!("SELECT value FROM {}.strata_meta WHERE key = 'bars_layout'", inner.config.schema);
    let value: Option<String> = transact!(inner, "reading the schema", Idempotency::Idempotent, |c| {
        Ok(sqlx::query_scalar(&sql).persistent(false).fetch_optional(&mut *c).await?)
    })
    .map_err(|error| match error {
        StoreError::Internal { what, .. } => StoreError::Unavailable {
            backend: BACKEND,
            what: format!("{what} (the database has no Strata schema yet: run `strata migrate`)"),
            source: None,
        },
        other => other,
    })?;
    value.as_deref().and_then(BarLayout::from_meta).ok_or_else(|| {
        StoreError::internal(BACKEND, "strata_meta has no usable bars_layout; run `strata migrate` on this database")
    })
}

/// Applies every pending migration in one transaction under an advisory lock.
async fn migrate_inner(inner: &Inner) -> Result<BarLayout> {
    transact!(inner, "migrating the schema", Idempotency::Idempotent, |connection| {
        migrate_in_transaction(connection, &inner.config).await
    })
}

async fn migrate_in_transaction(
    connection: &mut PgConnection,
    config: &NeonConfig,
) -> std::result::Result<BarLayout, Failure> {
    let schema_name = &config.schema;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(schema::migration_lock_key(schema_name))
        .persistent(false)
        .execute(&mut *connection)
        .await?;
    (&mut *connection).execute(sqlx::raw_sql(&schema::bookkeeping_ddl(schema_name))).await?;
    let applied: Vec<(i32, String)> =
        sqlx::query_as(&format!("SELECT version, checksum FROM {schema_name}.strata_migrations ORDER BY version"))
            .persistent(false)
            .fetch_all(&mut *connection)
            .await?;
    let latest = schema::latest_version();
    if let Some((newest, _)) = applied.last()
        && *newest > latest
    {
        return Err(StoreError::internal(
            BACKEND,
            format!(
                "schema {schema_name} is at migration version {newest}, newer than this build's {latest}; \
                 upgrade strata before using this database"
            ),
        )
        .into());
    }
    for (version, recorded) in &applied {
        if let Some(migration) = schema::MIGRATIONS.iter().find(|m| m.version == *version) {
            let expected = schema::checksum(migration);
            if *recorded != expected {
                return Err(StoreError::internal(
                    BACKEND,
                    format!(
                        "migration {version} ({}) was applied with checksum {recorded}, but this build's is \
                         {expected}: the migration was edited after it shipped",
                        migration.name
                    ),
                )
                .into());
            }
        }
    }
    let stored_layout: Option<String> =
        sqlx::query_scalar(&format!("SELECT value FROM {schema_name}.strata_meta WHERE key = 'bars_layout'"))
            .persistent(false)
            .fetch_optional(&mut *connection)
            .await?;
    let layout = match stored_layout.as_deref().and_then(BarLayout::from_meta) {
        Some(layout) => layout,
        None => {
            let timescale: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')")
                    .persistent(false)
                    .fetch_one(&mut *connection)
                    .await?;
            let layout = if timescale && config.use_timescaledb {
                BarLayout::Hypertable
            } else {
                BarLayout::Partitioned(config.partition_interval)
            };
            sqlx::query(&format!(
                "INSERT INTO {schema_name}.strata_meta (key, value) VALUES ('bars_layout', $1)
                 ON CONFLICT (key) DO NOTHING"
            ))
            .bind(layout.as_meta())
            .persistent(false)
            .execute(&mut *connection)
            .await?;
            layout
        }
    };
    let done: HashSet<i32> = applied.iter().map(|(version, _)| *version).collect();
    for migration in schema::MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let sql = schema::migration_sql(migration, schema_name, layout, config.chunk_interval.as_secs().max(1));
        tracing::info!(version = migration.version, name = migration.name, "applying migration");
        (&mut *connection).execute(sqlx::raw_sql(&sql)).await?;
        sqlx::query(&format!(
            "INSERT INTO {schema_name}.strata_migrations (version, name, checksum) VALUES ($1, $2, $3)"
        ))
        .bind(migration.version)
        .bind(migration.name)
        .bind(schema::checksum(migration))
        .persistent(false)
        .execute(&mut *connection)
        .await?;
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        for attempt in 1..30 {
            let delay = backoff_delay(base, attempt);
            let ceiling = base.saturating_mul(1 << (attempt - 1).min(16)).min(Duration::from_secs(5));
            assert!(delay <= ceiling && delay >= ceiling / 2, "attempt {attempt}: {delay:?}");
        }
    }
}
