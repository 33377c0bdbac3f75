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
use strata_core::{HealthReport, HealthStatus, Result, StoreError};

use crate::config::{DEFAULT_CHUNK_INTERVAL, NeonConfig, describe_chunk_interval, ssl_mode_name};
use crate::error::{BACKEND, Failure, Transience};
use crate::schema::{self, BarLayout, LayoutChoice, TimescaleFacts};
use crate::telemetry;

/// Whether an operation may be repeated after an unknown outcome: leases
/// and completions are `NotIdempotent` (retried only when nothing reached
/// the server), everything else `Idempotent`.
pub(crate) use strata_core::policy::Idempotency;

/// The PostgreSQL/Neon store: market data and evolution state on one pool.
#[derive(Clone)]
pub struct NeonStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) config: NeonConfig,
    pub(crate) layout: BarLayout,
    /// Why the bar table has its layout (recorded when it was created).
    pub(crate) layout_reason: String,
    /// The hypertable's chunk interval (`None` for native partitions, or when it cannot be read).
    pub(crate) chunk_interval: Option<Duration>,
    /// Partitions known to exist (period starts, epoch microseconds).
    pub(crate) partitions: Mutex<Option<HashSet<i64>>>,
    /// `SET LOCAL` statements run at the start of every transaction.
    pub(crate) set_local: String,
    /// The `store` label of this pool's metrics ([`telemetry`]).
    pub(crate) metrics_label: &'static str,
}

/// What a PostgreSQL store can do: durable, shared by every host that can
/// reach the server, digests and deletes inside the server.
pub(crate) const CAPABILITIES: strata_core::Capabilities = strata_core::Capabilities {
    durable: true,
    shared_across_hosts: true,
    server_side_digest: true,
    cheap_delete: true,
    transactions: true,
};

impl fmt::Display for NeonStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BACKEND)
    }
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
    /// What every PostgreSQL store can do (known before a connection is made,
    /// for a composition that opens the store later).
    pub const CAPABILITIES: strata_core::Capabilities = CAPABILITIES;

    /// Connects (waiting out transient failures within the retry budget),
    /// applies pending migrations unless `migrate_on_start` is off, and
    /// reads the bar layout.
    pub async fn open(config: NeonConfig) -> Result<Self> {
        let mut inner = connect(config).await?;
        let state =
            if inner.config.migrate_on_start { migrate_inner(&inner).await? } else { read_layout(&inner).await? };
        inner.layout = state.layout;
        inner.layout_reason = state.reason;
        inner.chunk_interval = state.chunk_interval;
        inner.partitions = Mutex::new(None);
        let inner = Arc::new(inner);
        telemetry::sample_pool(&inner);
        Ok(NeonStore { inner })
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

    /// Why the bar table has its layout, e.g. `disabled by STRATA_PG_TIMESCALEDB=false`.
    pub fn layout_reason(&self) -> &str {
        &self.inner.layout_reason
    }

    /// The hypertable's chunk interval (`None` with native partitions).
    pub fn chunk_interval(&self) -> Option<Duration> {
        self.inner.chunk_interval
    }

    /// The layout with its chunk interval and reason, for `strata migrate` and
    /// `strata health`: `native range partitions, one per month (timescaledb
    /// is not available on this server)`.
    pub fn layout_description(&self) -> String {
        let chunks = match (self.inner.layout, self.inner.chunk_interval) {
            (BarLayout::Hypertable, Some(interval)) => format!(", {} chunks", describe_chunk_interval(interval)),
            _ => String::new(),
        };
        format!("{}{chunks} ({})", self.inner.layout.describe(), self.inner.layout_reason)
    }

    /// The chunk interval that bounds a write's span (the configured or default one when unknown).
    pub(crate) fn chunk_interval_for_writes(&self) -> Duration {
        self.inner.chunk_interval.or(self.inner.config.chunk_interval).unwrap_or(DEFAULT_CHUNK_INTERVAL)
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

    /// The health details about the bar table: its layout and why, how many
    /// partitions or chunks it has, how far one write may reach, what the
    /// server offers of TimescaleDB, and a note when that would now give a
    /// new table another layout than this one's.
    fn layout_details(&self, facts: &TimescaleFacts, children: i64) -> Vec<(String, String)> {
        let layout = self.inner.layout;
        let config = &self.inner.config;
        let mut details = vec![("bars_layout".to_string(), self.layout_description())];
        let most = schema::max_periods_per_write(layout);
        match layout {
            BarLayout::Partitioned(interval) => {
                details.push(("bars_partitions".to_string(), children.to_string()));
                details.push((
                    "bars_write_span".to_string(),
                    format!(
                        "at most {most} partitions (one per {interval}) per write, to stay within {} of the \
                         {} lock slots of a server with default settings",
                        schema::WRITE_LOCK_BUDGET,
                        schema::DEFAULT_LOCK_TABLE
                    ),
                ));
            }
            BarLayout::Hypertable => {
                details.push(("bars_chunks".to_string(), children.to_string()));
                details.push((
                    "bars_write_span".to_string(),
                    format!(
                        "at most {most} chunks of {} per write, to stay within {} of the {} lock slots of a \
                         server with default settings",
                        describe_chunk_interval(self.chunk_interval_for_writes()),
                        schema::WRITE_LOCK_BUDGET,
                        schema::DEFAULT_LOCK_TABLE
                    ),
                ));
            }
        }
        details.push(("timescaledb".to_string(), facts.describe()));
        let now = schema::choose_layout(config.use_timescaledb, facts, config.partition_interval);
        let note = match (layout, now.layout) {
            (BarLayout::Partitioned(_), BarLayout::Hypertable) => {
                Some(format!("a new schema would get a hypertable now ({}); this table keeps its layout", now.reason))
            }
            (BarLayout::Hypertable, BarLayout::Partitioned(_)) if facts.installed_version.is_none() => Some(
                "the timescaledb extension is not installed in this database, so the hypertable cannot be used"
                    .to_string(),
            ),
            (BarLayout::Hypertable, BarLayout::Partitioned(_)) if facts.preloaded() == Some(false) => Some(
                "timescaledb is no longer in shared_preload_libraries: preload it again to use this hypertable"
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(note) = note {
            details.push(("bars_layout_note".to_string(), note));
        }
        details
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
                                current_database()",
            )
            .persistent(persistent)
            .fetch_one(&mut *connection)
            .await?;
            let facts = read_timescale_facts(connection, persistent).await?;
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
            Ok((latency, row, facts, version, partitions))
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
        self.inner.record_pool();
        match outcome {
            Ok((latency, row, facts, version, partitions)) => {
                let server: String = row.try_get(0).unwrap_or_default();
                let size: i64 = row.try_get(1).unwrap_or_default();
                let database: String = row.try_get(2).unwrap_or_default();
                telemetry::database_size(self.inner.metrics_label, size);
                details.insert(0, ("round_trip_ms".to_string(), format!("{:.2}", latency.as_secs_f64() * 1e3)));
                details.push(("server_version".to_string(), server));
                details.push(("database".to_string(), database));
                details.push(("database_bytes".to_string(), size.to_string()));
                details.extend(self.layout_details(&facts, partitions));
                let current = version.unwrap_or(0);
                details.push((
                    "migration_version".to_string(),
                    format!("{current} (this build: {})", schema::latest_version()),
                ));
                details.push(("check_ms".to_string(), format!("{:.1}", started.elapsed().as_secs_f64() * 1e3)));
                // Answers, but with another schema than this build's: usable by
                // nothing until `strata migrate` runs.
                let status =
                    if current == schema::latest_version() { HealthStatus::Healthy } else { HealthStatus::Degraded };
                Ok(HealthReport { backend: BACKEND.to_string(), status, details, components: Vec::new() })
            }
            Err(error) => {
                details.push(("error".to_string(), crate::error::describe(&error)));
                Ok(HealthReport {
                    backend: BACKEND.to_string(),
                    status: HealthStatus::Down,
                    details,
                    components: Vec::new(),
                })
            }
        }
    }
}

/// Connects as `config` says: TLS notice, a probe that waits out transient
/// failures within the retry budget, and the lazily connecting pool with the
/// `SET LOCAL` timeouts of every transaction. The bar layout is a
/// placeholder until the caller reads or migrates the schema (the seeds
/// source never does: it reads another table).
pub(crate) async fn connect(config: NeonConfig) -> Result<Inner> {
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
    Ok(Inner {
        pool,
        config,
        layout: BarLayout::Partitioned(Default::default()),
        layout_reason: String::new(),
        chunk_interval: None,
        partitions: Mutex::new(None),
        set_local,
        metrics_label: telemetry::STORE_LABEL,
    })
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
    ($inner:expr, $what:expr, $idempotency:expr, |$c:ident| $body:block) => {
        $crate::store::transact!($inner, $what, $idempotency, statements = 2, |$c| $body)
    };
    // A body of more statements (a write in chunks) gets a longer stall deadline.
    ($inner:expr, $what:expr, $idempotency:expr, statements = $statements:expr, |$c:ident| $body:block) => {{
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
                    let mut transaction =
                        inner.begin_attempt().await.map_err(|error| ($crate::error::Failure::Db(error), false))?;
                    let value = {
                        let $c: &mut ::sqlx::PgConnection = transaction.connection();
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
                            transaction.rollback().await;
                            Err((failure, false))
                        }
                    }
                });
            // A connection that stops answering (a black-holed network, a dead
            // NAT entry) would otherwise hang the call until TCP gives up,
            // hours later: each attempt has a deadline (see `attempt_deadline`).
            let deadline = inner.attempt_deadline($statements);
            let outcome = match ::tokio::time::timeout(deadline, outcome).await {
                Ok(outcome) => outcome,
                Err(_) => Err(($crate::store::stalled(deadline), true)),
            };
            match outcome {
                Ok(value) => break Ok(value),
                Err((failure, reached_server)) => {
                    match inner.retry_delay(&failure, reached_server, $idempotency, attempt, started, $what) {
                        Some(delay) => ::tokio::time::sleep(delay).await,
                        // Transient failures were retried within the budget (or
                        // were not safe to repeat): no layer above retries again.
                        None => break Err(failure.into_store($what).after_retries()),
                    }
                }
            }
        }
    }};
}
pub(crate) use transact;

/// One attempt's transaction on a pooled connection. Its connection goes
/// back to the pool only after a `COMMIT` or `ROLLBACK` that the server
/// answered; an attempt that does not get there (its future dropped by a
/// caller's timeout or a cancelled task, a failed `COMMIT`) closes it instead.
/// sqlx cannot always bring such a connection back in step with the server:
/// a `COPY` cut off mid-stream leaves it reading the wrong answers, and the
/// next operation on it fails ("unexpected connection status after
/// attempting to begin transaction"), as the chaos matrix's `write-cancelled`
/// scenario showed.
pub(crate) struct Attempt {
    connection: sqlx::pool::PoolConnection<sqlx::Postgres>,
    finished: bool,
}

impl Attempt {
    /// The connection, inside the transaction.
    pub(crate) fn connection(&mut self) -> &mut PgConnection {
        &mut self.connection
    }

    /// `COMMIT`; on an error the outcome is unknown and the connection is closed.
    pub(crate) async fn commit(mut self) -> std::result::Result<(), sqlx::Error> {
        self.connection().execute(sqlx::raw_sql("COMMIT")).await?;
        self.finished = true;
        Ok(())
    }

    /// `ROLLBACK`; the connection is closed when that fails too.
    pub(crate) async fn rollback(mut self) {
        self.finished = self.connection().execute(sqlx::raw_sql("ROLLBACK")).await.is_ok();
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.finished {
            self.connection.close_on_drop();
        }
    }
}

/// The failure of an attempt that got no answer before its deadline. The
/// server may have committed it: only idempotent operations are repeated.
pub(crate) fn stalled(deadline: Duration) -> Failure {
    Failure::Db(stalled_error(deadline))
}

/// The driver-level error of [`stalled`].
pub(crate) fn stalled_error(deadline: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer from the server within {} s: the connection stalled (a network that drops packets \
             silently, or a server that stopped responding)",
            deadline.as_secs()
        ),
    ))
}

/// Pins a transaction body's type so `?` inside it converts to [`Failure`].
pub(crate) fn typed_body<T, F>(body: F) -> F
where
    F: std::future::Future<Output = std::result::Result<T, Failure>>,
{
    body
}

impl Inner {
    /// Sets the pool gauges ([`telemetry`]) from the pool as it is now.
    pub(crate) fn record_pool(&self) {
        telemetry::pool(self.metrics_label, &self.pool, self.config.max_connections.max(1));
    }

    /// The longest one attempt of `statements` statements may take before it
    /// counts as stalled: getting a connection, each statement up to
    /// `statement_timeout` (the server cancels longer ones itself, so a
    /// healthy server always answers sooner), and a margin for the round trips.
    pub(crate) fn attempt_deadline(&self, statements: u32) -> Duration {
        self.config.acquire_timeout + self.config.statement_timeout * statements.max(1) + Duration::from_secs(5)
    }

    /// Starts one attempt: a pooled connection, `BEGIN`, the `SET LOCAL` timeouts.
    pub(crate) async fn begin_attempt(&self) -> std::result::Result<Attempt, sqlx::Error> {
        let mut attempt = Attempt { connection: self.pool.acquire().await?, finished: false };
        // One round trip: BEGIN and the SET LOCAL timeouts as one simple query.
        let begin = format!("BEGIN; {}", self.set_local);
        attempt.connection().execute(sqlx::raw_sql(&begin)).await?;
        Ok(attempt)
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
            Transience::Always => idempotency.may_repeat() || !reached_server,
            Transience::IfIdempotent => idempotency.may_repeat(),
            Transience::Never => false,
        };
        if !retry {
            return None;
        }
        let Some(delay) = self.config.backoff().next_delay(attempt, started.elapsed()) else {
            tracing::warn!(attempts = attempt, "{what}: giving up: the retry budget is spent");
            return None;
        };
        tracing::info!(attempt, delay_ms = delay.as_millis() as u64, "{what}: transient failure, retrying");
        Some(delay)
    }
}

/// Connects once outside the pool so that a failure reports its real cause
/// (refused, authentication, TLS, unknown database) instead of the pool's
/// "timed out"; transient failures are retried within the retry budget, so
/// a Neon compute that is waking up is waited for. A name that does not
/// resolve, and a refusal from this machine or a private address, fail at
/// once (see [`crate::error::connect_failure_verdict`]). Each attempt is
/// bounded by `acquire_timeout` (`connect_timeout` in the URL sets it).
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
        let host = match options.get_socket() {
            Some(socket) => socket.to_string_lossy().into_owned(),
            None => options.get_host().to_string(),
        };
        let failure = crate::error::ConnectFailure::of(&error);
        if let Some(why) = crate::error::connect_failure_verdict(&host, options.get_port(), failure) {
            // Retrying a refused loopback port or an unknown name cannot help.
            let what = format!("connecting to {}: {why}", config.redacted_url());
            return Err(StoreError::unavailable(BACKEND, what, None).after_retries());
        }
        let transient = crate::error::transience(&error) == Transience::Always;
        let delay = config.backoff().next_delay(attempt, started.elapsed());
        let Some(delay) = delay.filter(|_| transient) else {
            return Err(
                crate::error::classify(error, &format!("connecting to {}", config.redacted_url())).after_retries()
            );
        };
        if attempt == 1 {
            tracing::warn!(
                "cannot connect to {} yet ({}); retrying for up to {:?} (a Neon compute may be waking up)",
                config.redacted_url(),
                crate::redact::redact_text(&error.to_string()),
                config.retry_budget
            );
        }
        tokio::time::sleep(delay).await;
    }
}

/// What the store knows about its bar table once it is open.
#[derive(Debug, Clone)]
pub(crate) struct LayoutState {
    /// The layout recorded in `strata_meta`.
    pub(crate) layout: BarLayout,
    /// Why (recorded with it).
    pub(crate) reason: String,
    /// The hypertable's chunk interval.
    pub(crate) chunk_interval: Option<Duration>,
}

/// Stands in for the reason of a layout recorded before reasons were.
const UNRECORDED_REASON: &str = "recorded by an earlier version of strata, which did not record why";

/// Reads [`TimescaleFacts`] from the server.
async fn read_timescale_facts(
    connection: &mut PgConnection,
    persistent: bool,
) -> std::result::Result<TimescaleFacts, Failure> {
    let (preload_libraries, installed_version, available): (Option<String>, Option<String>, bool) =
        sqlx::query_as(schema::TIMESCALE_FACTS_SQL).persistent(persistent).fetch_one(&mut *connection).await?;
    Ok(TimescaleFacts { preload_libraries, installed_version, available })
}

/// Reads `strata_meta`'s `bars_layout` and `bars_layout_reason`.
async fn read_recorded_layout(
    connection: &mut PgConnection,
    schema_name: &str,
) -> std::result::Result<(Option<BarLayout>, Option<String>), Failure> {
    let rows: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT key, value FROM {schema_name}.strata_meta WHERE key IN ('bars_layout', 'bars_layout_reason')"
    ))
    .persistent(false)
    .fetch_all(&mut *connection)
    .await?;
    let value = |wanted: &str| rows.iter().find(|(key, _)| key == wanted).map(|(_, value)| value.clone());
    Ok((value("bars_layout").as_deref().and_then(BarLayout::from_meta), value("bars_layout_reason")))
}

/// The hypertable's chunk interval, read from TimescaleDB's catalog views.
async fn read_chunk_interval(
    connection: &mut PgConnection,
    schema_name: &str,
) -> std::result::Result<Option<Duration>, Failure> {
    let micros: Option<Option<i64>> = sqlx::query_scalar(schema::CHUNK_INTERVAL_SQL)
        .bind(schema_name)
        .persistent(false)
        .fetch_optional(&mut *connection)
        .await?;
    Ok(micros.flatten().and_then(|m| u64::try_from(m).ok()).map(Duration::from_micros))
}

/// SQLSTATE `undefined_table`.
const UNDEFINED_TABLE: &str = "42P01";
/// SQLSTATE `invalid_schema_name`.
const UNDEFINED_SCHEMA: &str = "3F000";

/// Reads the layout recorded by the migrations (for `migrate_on_start = false`).
async fn read_layout(inner: &Inner) -> Result<LayoutState> {
    let schema_name = inner.config.schema.clone();
    let recorded = transact!(inner, "reading the schema", Idempotency::Idempotent, |c| {
        let (layout, reason) = read_recorded_layout(c, &schema_name).await?;
        let chunk_interval = match layout {
            Some(BarLayout::Hypertable) => read_chunk_interval(c, &schema_name).await?,
            _ => None,
        };
        Ok((layout, reason, chunk_interval))
    })
    .map_err(|error| {
        let no_schema = matches!(crate::error::sqlstate(&error), Some(UNDEFINED_TABLE | UNDEFINED_SCHEMA));
        match error {
            // The schema or its bookkeeping table is not there: nothing to read until `strata migrate` runs.
            StoreError::Internal { what, source, .. } if no_schema => {
                let what = format!("{what} (the database has no Strata schema yet: run `strata migrate`)");
                StoreError::unavailable(BACKEND, what, source).after_retries()
            }
            other => other,
        }
    })?;
    match recorded {
        (Some(layout), reason, chunk_interval) => {
            Ok(LayoutState { layout, reason: reason.unwrap_or_else(|| UNRECORDED_REASON.to_string()), chunk_interval })
        }
        (None, _, _) => Err(StoreError::internal(
            BACKEND,
            "strata_meta has no usable bars_layout; run `strata migrate` on this database",
        )),
    }
}

/// Applies every pending migration in one transaction under advisory locks.
async fn migrate_inner(inner: &Inner) -> Result<LayoutState> {
    transact!(inner, "migrating the schema", Idempotency::Idempotent, |connection| {
        migrate_in_transaction(connection, &inner.config).await
    })
}

async fn migrate_in_transaction(
    connection: &mut PgConnection,
    config: &NeonConfig,
) -> std::result::Result<LayoutState, Failure> {
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
    let done: HashSet<i32> = applied.iter().map(|(version, _)| *version).collect();
    let pending: Vec<&schema::Migration> = schema::MIGRATIONS.iter().filter(|m| !done.contains(&m.version)).collect();
    let (stored_layout, stored_reason) = read_recorded_layout(connection, schema_name).await?;
    if !pending.is_empty() || stored_layout.is_none() {
        // Database-wide steps (CREATE EXTENSION) follow: serialise them with every
        // other schema's migrations. Always after the schema lock (see the schema module).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(schema::database_migration_lock_key())
            .persistent(false)
            .execute(&mut *connection)
            .await?;
    }
    let (layout, reason) = match stored_layout {
        Some(layout) => (layout, stored_reason.unwrap_or_else(|| UNRECORDED_REASON.to_string())),
        None => {
            let facts = read_timescale_facts(connection, false).await?;
            let mut choice = schema::choose_layout(config.use_timescaledb, &facts, config.partition_interval);
            if choice.create_extension
                && let Err(refusal) = create_timescaledb(connection).await?
            {
                choice = LayoutChoice {
                    layout: BarLayout::Partitioned(config.partition_interval),
                    reason: format!(
                        "timescaledb is preloaded, but CREATE EXTENSION timescaledb failed: {refusal}; \
                         create it as a privileged role, or set STRATA_PG_TIMESCALEDB=false"
                    ),
                    create_extension: false,
                };
            }
            tracing::info!(layout = %choice.layout.describe(), reason = %choice.reason, "chose the bar layout");
            sqlx::query(&format!(
                "INSERT INTO {schema_name}.strata_meta (key, value) VALUES ('bars_layout', $1), ('bars_layout_reason', $2)
                 ON CONFLICT (key) DO NOTHING"
            ))
            .bind(choice.layout.as_meta())
            .bind(&choice.reason)
            .persistent(false)
            .execute(&mut *connection)
            .await?;
            (choice.layout, choice.reason)
        }
    };
    let new_chunk_interval = config.chunk_interval.unwrap_or(DEFAULT_CHUNK_INTERVAL);
    for migration in pending {
        let sql = schema::migration_sql(migration, schema_name, layout, new_chunk_interval.as_secs().max(1));
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
    let chunk_interval = match layout {
        BarLayout::Partitioned(_) => None,
        BarLayout::Hypertable => {
            let current = read_chunk_interval(connection, schema_name).await?;
            match config.chunk_interval {
                // Told otherwise: chunks created from now on get the configured interval.
                Some(wanted) if current != Some(wanted) => {
                    tracing::info!(
                        from = ?current,
                        to = ?wanted,
                        "setting the hypertable's chunk interval (STRATA_PG_CHUNK_INTERVAL)"
                    );
                    let sql = schema::set_chunk_interval_sql(schema_name, wanted.as_secs().max(1));
                    sqlx::query(&sql).persistent(false).execute(&mut *connection).await?;
                    Some(wanted)
                }
                _ => current,
            }
        }
    };
    Ok(LayoutState { layout, reason, chunk_interval })
}

/// `CREATE EXTENSION timescaledb` inside a savepoint, so that a refusal
/// (no privilege, say) leaves the transaction usable: `Ok(Err(message))`.
/// A unique violation means another session created it concurrently and has
/// committed (Strata's own first starts are serialised by the database-wide
/// lock; other tools are not), so `IF NOT EXISTS` is tried again and now sees
/// it. Never called unless the library is preloaded: creating it otherwise is
/// a FATAL error that drops the connection.
async fn create_timescaledb(
    connection: &mut PgConnection,
) -> std::result::Result<std::result::Result<(), String>, Failure> {
    const ATTEMPTS: u32 = 3;
    for attempt in 1..=ATTEMPTS {
        (&mut *connection).execute(sqlx::raw_sql("SAVEPOINT strata_extension")).await?;
        match (&mut *connection).execute(sqlx::raw_sql(schema::CREATE_TIMESCALEDB_SQL)).await {
            Ok(_) => {
                (&mut *connection).execute(sqlx::raw_sql("RELEASE SAVEPOINT strata_extension")).await?;
                return Ok(Ok(()));
            }
            Err(sqlx::Error::Database(error)) => {
                (&mut *connection).execute(sqlx::raw_sql("ROLLBACK TO SAVEPOINT strata_extension")).await?;
                if error.code().as_deref() == Some("23505") && attempt < ATTEMPTS {
                    tracing::info!("another session created timescaledb at the same time; checking again");
                    continue;
                }
                let code = error.code().map(|code| format!(" ({code})")).unwrap_or_default();
                return Ok(Err(format!("{}{code}", error.message())));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Err("another session kept creating it at the same time".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_the_configured_base_within_the_budget() {
        let config = NeonConfig::from_url("postgres://u@h/db").expect("url");
        let backoff = config.backoff();
        assert_eq!(
            (backoff.base, backoff.cap, backoff.budget),
            (config.retry_base_delay, Duration::from_secs(5), config.retry_budget)
        );
        assert!(backoff.next_delay(1, config.retry_budget).is_none(), "a spent budget allows no retry");
    }
}
