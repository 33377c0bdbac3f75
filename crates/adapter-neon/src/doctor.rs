//! `strata doctor` on PostgreSQL/Neon: the readiness checks that need SQL,
//! run on one connection of their own (the store is never opened, so
//! nothing is migrated or created). Whatever touches Strata's tables runs
//! in a transaction with the doctor's own `SET LOCAL` timeouts, and every
//! check has a deadline, so a held lock or a stalled server fails a check
//! instead of hanging it.
//!
//! Checks and ids (see [`strata_core::doctor::CATALOG`]): `pg.reachable`
//! (and the real cause of a failure: refused, DNS, TLS, authentication,
//! unknown database, timeout), `pg.tls`, `pg.pooler`, `pg.timeouts`,
//! `pg.version`, `pg.timescaledb`, `pg.max_connections`, `pg.migrations`,
//! `pg.round_trip`, `pg.clock_skew`. Every statement is unnamed and none
//! relies on session state, so the checks work through a transaction-mode
//! pooler too.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection as _, Executor as _, PgConnection};
use strata_core::doctor::{self, Check, Plan, Severity};

use crate::config::{NeonConfig, is_neon_host, ssl_mode_name};
use crate::error::{ConnectFailure, connect_failure_verdict, is_local_or_private_host};
use crate::redact::{Redacted, redact_text};
use crate::schema::{self, BarLayout, TimescaleFacts};

/// The oldest PostgreSQL major version Strata supports.
pub const MIN_SERVER_VERSION: i32 = 13;

/// Major versions past their end of life (no more security fixes from the PostgreSQL project).
const END_OF_LIFE: [(i32, &str); 2] = [(13, "November 2025"), (14, "November 2026")];

/// The PostgreSQL checks, in catalog order, for `config` held against `plan`.
/// When no connection can be made, `pg.reachable` says why and the others are skipped.
pub async fn diagnose(config: &NeonConfig, plan: &Plan) -> Vec<Check> {
    let options = match config.connect_options() {
        Ok(options) => options,
        Err(error) => {
            let reachable = Check::fail(
                &doctor::PG_REACHABLE,
                format!("DATABASE_URL cannot be used: {error}"),
                "fix DATABASE_URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=verify-full",
            )
            .with_fact("cause", "configuration");
            return with_rest_skipped(reachable, "DATABASE_URL is not usable (pg.reachable)");
        }
    };
    let started = Instant::now();
    let mut connection = match connect(config, &options, plan).await {
        Ok(connection) => connection,
        Err(failed) => return with_rest_skipped(failed, "no connection (pg.reachable failed)"),
    };
    let connect_ms = millis(started.elapsed());
    let target = describe_target(&options);
    let mut checks = vec![
        Check::pass(&doctor::PG_REACHABLE, format!("connected to {target} in {connect_ms:.1} ms"))
            .with_fact("connect_ms", format!("{connect_ms:.1}")),
    ];
    let mut session = Session { connection: &mut connection, config, plan, broken: None };
    checks.push(session.tls().await);
    checks.push(session.pooler().await);
    checks.push(session.timeouts().await);
    checks.push(session.version().await);
    checks.push(session.timescaledb().await);
    checks.push(session.max_connections().await);
    checks.push(session.migrations().await);
    checks.push(session.round_trip().await);
    checks.push(session.clock_skew().await);
    let stalled = session.broken.is_some();
    if !stalled {
        let _ = tokio::time::timeout(Duration::from_secs(2), connection.close()).await;
    }
    checks
}

/// `first` (a `pg.reachable` outcome) followed by every other PostgreSQL
/// check skipped for `reason`: what is reported when no connection can be tried.
pub fn with_rest_skipped(first: Check, reason: &str) -> Vec<Check> {
    let rest = [
        &doctor::PG_TLS,
        &doctor::PG_POOLER,
        &doctor::PG_TIMEOUTS,
        &doctor::PG_VERSION,
        &doctor::PG_TIMESCALEDB,
        &doctor::PG_MAX_CONNECTIONS,
        &doctor::PG_MIGRATIONS,
        &doctor::PG_ROUND_TRIP,
        &doctor::PG_CLOCK_SKEW,
    ];
    std::iter::once(first).chain(rest.into_iter().map(|kind| Check::skip(kind, reason))).collect()
}

fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

/// `user@host:port/database`, without a password.
fn describe_target(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or("postgres");
    match options.get_socket() {
        Some(socket) => format!("{}@{}/{database}", options.get_username(), socket.display()),
        None => format!("{}@{}/{database}", options.get_username(), address(options.get_host(), options.get_port())),
    }
}

fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// One connection attempt within the check timeout; a failure is the
/// `pg.reachable` check naming its cause (fact `cause`: `refused`, `dns`,
/// `tls`, `authentication`, `database`, `too_many_connections`, `timeout`,
/// `other`).
async fn connect(
    config: &NeonConfig,
    options: &PgConnectOptions,
    plan: &Plan,
) -> std::result::Result<PgConnection, Check> {
    let host = options.get_socket().map_or_else(|| options.get_host().to_string(), |s| s.display().to_string());
    let port = options.get_port();
    let target = address(&host, port);
    let error = match tokio::time::timeout(plan.check_timeout, PgConnection::connect_with(options)).await {
        Ok(Ok(connection)) => return Ok(connection),
        Ok(Err(error)) => error,
        Err(_) => {
            return Err(Check::fail(
                &doctor::PG_REACHABLE,
                format!(
                    "no answer from {target} within {} s (packets dropped by a firewall or security group, or \
                     a server that stopped responding)",
                    plan.check_timeout.as_secs()
                ),
                format!(
                    "check that {target} is reachable from this machine (nc -vz {host} {port}) and the server is up"
                ),
            )
            .with_fact("cause", "timeout"));
        }
    };
    let text = Redacted::from(&error).to_string();
    let fail = |cause: &str, finding: String, fix: String| {
        Err(Check::fail(&doctor::PG_REACHABLE, finding, fix).with_fact("cause", cause))
    };
    if let sqlx::Error::Database(db) = &error {
        let code = db.code().map(|code| code.into_owned()).unwrap_or_default();
        let user = options.get_username();
        let database = options.get_database().unwrap_or("postgres");
        return match code.as_str() {
            "28P01" | "28000" => fail(
                "authentication",
                format!("{target} refused the login of {user}: {text}"),
                "check the user and password in DATABASE_URL (for Neon, `strata neon connection-uri` prints a \
                 working URL); a password with special characters must be percent-encoded"
                    .to_string(),
            ),
            "3D000" => fail(
                "database",
                format!("{target} has no database {database}: {text}"),
                format!("create it (createdb {database}) or fix the database name in DATABASE_URL"),
            ),
            "53300" => fail(
                "too_many_connections",
                format!("{target} has no connection slot left: {text}"),
                "close idle sessions, raise max_connections, or connect through a pooler (Neon: the -pooler host)"
                    .to_string(),
            ),
            "57P03" => fail(
                "starting",
                format!("{target} is starting up or shutting down: {text}"),
                "wait for the server to finish starting, then run strata doctor again".to_string(),
            ),
            _ => fail("other", format!("{target} refused the connection: {text}"), fix_for_other(config)),
        };
    }
    let failure = ConnectFailure::of(&error);
    let verdict = connect_failure_verdict(&host, port, failure);
    match (failure, verdict) {
        (ConnectFailure::Refused, verdict) => fail(
            "refused",
            verdict.unwrap_or_else(|| format!("connection refused by {target}")),
            format!("start PostgreSQL on {target}, or correct the host and port in DATABASE_URL"),
        ),
        (ConnectFailure::NameNotResolved, verdict) => fail(
            "dns",
            verdict.unwrap_or_else(|| format!("host name {host} does not resolve")),
            format!("check the host name {host} in DATABASE_URL (a typo, or a deleted Neon endpoint)"),
        ),
        (ConnectFailure::CertificateRejected, verdict) => fail(
            "tls",
            verdict.unwrap_or_else(|| format!("the TLS certificate of {target} was refused")),
            tls_fix(config),
        ),
        _ if matches!(error, sqlx::Error::Tls(_)) => {
            fail("tls", format!("TLS with {target} failed: {text}"), tls_fix(config))
        }
        _ => fail("other", format!("cannot connect to {target}: {text}"), fix_for_other(config)),
    }
}

fn tls_fix(config: &NeonConfig) -> String {
    format!(
        "with sslmode={} the server certificate must chain to sslrootcert (or the platform roots) and name the \
         host; set sslrootcert=CA.pem in DATABASE_URL, or enable TLS on the server",
        ssl_mode_name(config.ssl_mode())
    )
}

fn fix_for_other(config: &NeonConfig) -> String {
    format!("check DATABASE_URL ({}) and that the server accepts connections from this machine", config.redacted_url())
}

/// The doctor's connection and what it is checked against.
struct Session<'a> {
    connection: &'a mut PgConnection,
    config: &'a NeonConfig,
    plan: &'a Plan,
    /// Set when a check stalled: the connection is in an unknown state and later checks are skipped.
    broken: Option<&'static str>,
}

/// A failed statement inside a check.
type SqlResult<T> = std::result::Result<T, sqlx::Error>;

/// `BEGIN` with the doctor's statement and lock timeouts.
async fn begin(connection: &mut PgConnection, plan: &Plan) -> SqlResult<()> {
    // PostgreSQL takes at most 2^31 - 1 ms; an hour is plenty for one check's statement.
    let statement = plan
        .check_timeout
        .saturating_sub(Duration::from_secs(1))
        .clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let sql = format!(
        "BEGIN; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        statement.as_millis(),
        plan.lock_wait.as_millis().clamp(1, 3_600_000)
    );
    (&mut *connection).execute(sqlx::raw_sql(&sql)).await.map(|_| ())
}

/// `COMMIT` when the body succeeded, else `ROLLBACK`.
async fn finish<T>(connection: &mut PgConnection, outcome: SqlResult<T>) -> SqlResult<T> {
    let end = if outcome.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = (&mut *connection).execute(sqlx::raw_sql(end)).await;
    let value = outcome?;
    ended?;
    Ok(value)
}

/// `body` in a transaction with the doctor's timeouts (a table locked by
/// another session fails after the lock wait instead of hanging the check).
async fn transaction<T>(
    connection: &mut PgConnection,
    plan: &Plan,
    body: impl AsyncFnOnce(&mut PgConnection) -> SqlResult<T>,
) -> SqlResult<T> {
    begin(connection, plan).await?;
    let outcome = body(&mut *connection).await;
    finish(connection, outcome).await
}

/// Runs a check's future within `limit`; a stall marks the connection broken
/// (`broken`), and a broken connection skips the check.
async fn guarded<T>(
    broken: &mut Option<&'static str>,
    limit: Duration,
    kind: &'static doctor::CheckKind,
    work: impl std::future::Future<Output = T>,
) -> std::result::Result<T, Check> {
    if let Some(earlier) = *broken {
        return Err(Check::skip(kind, format!("the connection stalled during {earlier}")));
    }
    match tokio::time::timeout(limit, work).await {
        Ok(value) => Ok(value),
        Err(_) => {
            *broken = Some(kind.id);
            Err(Check::fail(
                kind,
                format!("no answer within {} s: the server or the network stalled", limit.as_secs()),
                "check the server's load and the network path, then run strata doctor again",
            ))
        }
    }
}

impl Session<'_> {
    /// A check that could not read what it needs: the statement's error, masked.
    fn unreadable(kind: &doctor::CheckKind, what: &str, error: &sqlx::Error) -> Check {
        Check::fail(
            kind,
            format!("cannot read {what}: {}", Redacted::from(error)),
            "grant this role read access to the PostgreSQL settings and statistics views, or check the server log",
        )
    }

    async fn tls(&mut self) -> Check {
        let kind = &doctor::PG_TLS;
        let mode = self.config.ssl_mode();
        let host = self.config.host().to_string();
        let encrypted =
            match guarded(&mut self.broken, self.plan.check_timeout, kind, read_encrypted(self.connection)).await {
                Ok(encrypted) => encrypted,
                Err(check) => return check,
            };
        let mode_name = ssl_mode_name(mode);
        let session = match encrypted {
            Some(true) => "the session is encrypted",
            Some(false) => "the session is not encrypted",
            None => "encryption not visible to this role",
        };
        let check = if matches!(mode, PgSslMode::VerifyFull) {
            Check::pass(kind, format!("sslmode=verify-full: certificate and host name of {host} verified; {session}"))
        } else if is_neon_host(&host) {
            Check::fail(
                kind,
                format!("sslmode={mode_name} to the Neon host {host}: the server's certificate is not fully verified"),
                "remove sslmode from DATABASE_URL (strata uses verify-full for Neon hosts) or set sslmode=verify-full",
            )
        } else if is_local_or_private_host(&host) {
            Check::pass(kind, format!("sslmode={mode_name} to {host}, a local or private address; {session}"))
        } else {
            Check::fail(
                kind,
                format!(
                    "sslmode={mode_name} to the public host {host}: {}; a machine in between could read the password",
                    if matches!(mode, PgSslMode::Require) {
                        "encrypted but the certificate is not verified"
                    } else {
                        session
                    }
                ),
                "set sslmode=verify-full (and sslrootcert=CA.pem unless the certificate chains to the platform roots)",
            )
            .with_severity(Severity::Warning)
        };
        check.with_fact("sslmode", mode_name).with_fact("encrypted", encrypted.map_or("unknown", bool_text))
    }

    async fn pooler(&mut self) -> Check {
        let kind = &doctor::PG_POOLER;
        let host = self.config.host().to_string();
        // PgBouncer answers `SHOW pool_mode` on some setups; PostgreSQL refuses it (unknown setting).
        let pool_mode =
            match guarded(&mut self.broken, self.plan.check_timeout, kind, show_pool_mode(self.connection)).await {
                Ok(mode) => mode,
                Err(check) => return check,
            };
        let implies = "every strata statement runs in its own transaction; no session advisory locks, LISTEN or \
                       named prepared statements survive one; use the direct host for pg_dump and psql sessions";
        let check = match (self.config.pooler, pool_mode.as_deref()) {
            (true, mode) => Check::pass(
                kind,
                format!("{host} is a pooler (PgBouncer, {} mode): {implies}", mode.unwrap_or("transaction")),
            ),
            (false, Some(mode @ ("transaction" | "statement"))) => Check::fail(
                kind,
                format!(
                    "a PgBouncer in {mode} mode answers at {host}, but strata treats it as a direct connection: \
                     named prepared statements will fail"
                ),
                "set STRATA_PG_POOLER=1 for this DATABASE_URL",
            )
            .with_severity(Severity::Critical),
            (false, _) => Check::pass(
                kind,
                format!(
                    "direct connection to {host} (no pooler): each strata process holds up to {} connections",
                    self.config.max_connections
                ),
            ),
        };
        check.with_fact("pooler", bool_text(self.config.pooler)).with_fact("pool_mode", pool_mode.unwrap_or_default())
    }

    async fn timeouts(&mut self) -> Check {
        let kind = &doctor::PG_TIMEOUTS;
        let config = self.config;
        let outcome = match guarded(
            &mut self.broken,
            self.plan.check_timeout,
            kind,
            read_timeouts(self.connection, config),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(check) => return check,
        };
        let timeouts = match outcome {
            Ok(timeouts) => timeouts,
            Err(error) => return Session::unreadable(kind, "the timeouts", &error),
        };
        let statement = config.statement_timeout.as_millis().max(1) as i64;
        let lock = config.lock_timeout.as_millis().max(1) as i64;
        let [in_statement, in_lock, default_statement, default_lock, idle] = &timeouts;
        let finding = format!(
            "in each strata transaction statement_timeout {}, lock_timeout {} (server defaults: statement_timeout \
             {}, lock_timeout {}, idle_in_transaction_session_timeout {})",
            in_statement.0, in_lock.0, default_statement.0, default_lock.0, idle.0
        );
        let check = if in_statement.1 != statement || in_lock.1 != lock {
            Check::fail(
                kind,
                format!("{finding}, not the {statement} ms and {lock} ms strata set: something overrides SET LOCAL"),
                "look for a pooler or proxy that rewrites settings; connect to the server directly to compare",
            )
        } else if lock >= statement {
            Check::fail(
                kind,
                format!("{finding}: a statement times out before its lock wait can"),
                "set STRATA_PG_STATEMENT_TIMEOUT above the lock timeout (30 s)",
            )
        } else {
            Check::pass(kind, finding)
        };
        check.with_fact("statement_timeout_ms", in_statement.1).with_fact("lock_timeout_ms", in_lock.1)
    }

    async fn version(&mut self) -> Check {
        let kind = &doctor::PG_VERSION;
        let outcome =
            match guarded(&mut self.broken, self.plan.check_timeout, kind, read_version(self.connection)).await {
                Ok(outcome) => outcome,
                Err(check) => return check,
            };
        let (number, text) = match outcome {
            Ok(version) => version,
            Err(error) => return Session::unreadable(kind, "server_version", &error),
        };
        let major = number / 10_000;
        let check = if major < MIN_SERVER_VERSION {
            Check::fail(
                kind,
                format!("PostgreSQL {text}: strata needs {MIN_SERVER_VERSION} or newer"),
                "upgrade the server (Neon projects run 14 to 17; choose the newest)",
            )
        } else if let Some((_, ended)) = END_OF_LIFE.iter().find(|(version, _)| *version == major) {
            Check::fail(
                kind,
                format!("PostgreSQL {text} works, but its support ended in {ended} (no more security fixes)"),
                "upgrade to PostgreSQL 16 or newer (pg_upgrade, or a new Neon project and `strata copy`)",
            )
            .with_severity(Severity::Warning)
        } else {
            Check::pass(kind, format!("PostgreSQL {text}"))
        };
        check.with_fact("server_version_num", number)
    }

    async fn timescaledb(&mut self) -> Check {
        let kind = &doctor::PG_TIMESCALEDB;
        let schema_name = self.config.schema.clone();
        let outcome = match guarded(
            &mut self.broken,
            self.plan.check_timeout,
            kind,
            transaction(self.connection, self.plan, async |c: &mut PgConnection| {
                read_layout_facts(c, &schema_name).await
            }),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(check) => return check,
        };
        let (facts, recorded) = match outcome {
            Ok(read) => read,
            Err(error) => return Session::unreadable(kind, "what the server offers of TimescaleDB", &error),
        };
        let offered = facts.describe();
        let check = match recorded.as_deref().and_then(BarLayout::from_meta) {
            Some(BarLayout::Hypertable) if facts.installed_version.is_none() || facts.preloaded() == Some(false) => {
                Check::fail(
                    kind,
                    format!(
                        "the bars of schema {schema_name} are a TimescaleDB hypertable, but timescaledb is {offered}"
                    ),
                    "preload timescaledb (shared_preload_libraries = 'timescaledb', restart) and install it in this \
                     database, or move the bars to a schema with native partitions (`strata copy`)",
                )
                .with_severity(Severity::Critical)
            }
            Some(layout) => Check::pass(kind, format!("bars: {} (timescaledb: {offered})", layout.describe())),
            None => {
                let choice = schema::choose_layout(self.config.use_timescaledb, &facts, self.config.partition_interval);
                Check::pass(
                    kind,
                    format!(
                        "no bar table yet; `strata migrate` would make {} ({})",
                        choice.layout.describe(),
                        choice.reason
                    ),
                )
            }
        };
        check.with_fact("timescaledb", offered)
    }

    async fn max_connections(&mut self) -> Check {
        let kind = &doctor::PG_MAX_CONNECTIONS;
        let outcome =
            match guarded(&mut self.broken, self.plan.check_timeout, kind, read_connections(self.connection)).await {
                Ok(outcome) => outcome,
                Err(check) => return check,
            };
        let slots = match outcome {
            Ok(slots) => slots,
            Err(error) => return Session::unreadable(kind, "max_connections", &error),
        };
        let pool = i64::from(self.config.max_connections.max(1));
        let planned = self.plan.workers.map_or(1, i64::from);
        let reserved = slots.superuser_reserved + slots.reserved;
        // This check's own connection goes away when the doctor ends.
        let free = slots.max - reserved - slots.used + 1;
        let facts = |check: Check| {
            check
                .with_fact("max_connections", slots.max)
                .with_fact("reserved", reserved)
                .with_fact("in_use", slots.used)
                .with_fact("free", free)
                .with_fact("workers", planned)
                .with_fact("pool_per_process", pool)
        };
        let accounting = format!(
            "max_connections {}: {reserved} reserved, {} in use (this check included), {free} free",
            slots.max, slots.used
        );
        let plan = match self.plan.workers {
            Some(workers) => format!("{workers} worker{}", if workers == 1 { "" } else { "s" }),
            None => "one process (pass --workers N for the planned workers)".to_string(),
        };
        if self.config.pooler {
            return facts(Check::pass(
                kind,
                format!("{accounting}; the pooler shares them among its clients, so {plan} fit"),
            ));
        }
        // A worker needs one connection at least, and up to its pool; the coordinator one more.
        let least = planned + 1;
        let most = planned * pool + 1;
        facts(if free < least {
            Check::fail(
                kind,
                format!("{accounting}; {plan} and a coordinator need at least {least}"),
                format!(
                    "raise max_connections to at least {} (ALTER SYSTEM SET max_connections = ...; restart), \
                     connect through a pooler (Neon: the -pooler host), or plan fewer workers",
                    slots.max + least - free
                ),
            )
        } else if free < most {
            Check::fail(
                kind,
                format!(
                    "{accounting}; {plan} with pools of {pool} may need {most}, so some will wait for a connection"
                ),
                format!(
                    "set STRATA_PG_MAX_CONNECTIONS={} per process, raise max_connections, or use a pooler",
                    ((free - 1) / planned).max(1)
                ),
            )
            .with_severity(Severity::Warning)
        } else {
            Check::pass(kind, format!("{accounting}; {plan} with pools of {pool} need at most {most}"))
        })
    }

    async fn migrations(&mut self) -> Check {
        let kind = &doctor::PG_MIGRATIONS;
        let schema_name = self.config.schema.clone();
        let outcome = match guarded(
            &mut self.broken,
            self.plan.check_timeout,
            kind,
            transaction(self.connection, self.plan, async |c: &mut PgConnection| {
                read_migrations(c, &schema_name).await
            }),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(check) => return check,
        };
        let latest = schema::latest_version();
        let applied = match outcome {
            Ok(Some(applied)) => applied,
            Ok(None) => {
                return Check::fail(
                    kind,
                    format!(
                        "schema {schema_name} has no Strata tables (no migration applied; this build has {latest})"
                    ),
                    "run `strata migrate` with the same DATABASE_URL and STRATA_PG_SCHEMA",
                )
                .with_fact("version", 0)
                .with_fact("latest", latest);
            }
            Err(error) => return Session::unreadable(kind, "the applied migrations", &error),
        };
        let current = applied.iter().map(|(version, _)| *version).max().unwrap_or(0);
        let edited = applied.iter().find_map(|(version, recorded)| {
            let migration = schema::MIGRATIONS.iter().find(|m| m.version == *version)?;
            (schema::checksum(migration) != *recorded).then_some(migration)
        });
        let pending: Vec<String> = schema::MIGRATIONS
            .iter()
            .filter(|m| !applied.iter().any(|(version, _)| *version == m.version))
            .map(|m| format!("{} ({})", m.version, m.name))
            .collect();
        let check = if current > latest {
            Check::fail(
                kind,
                format!("schema {schema_name} is at migration {current}, newer than this build's {latest}"),
                "upgrade strata on this machine to the version that migrated the schema",
            )
        } else if let Some(migration) = edited {
            Check::fail(
                kind,
                format!(
                    "migration {} ({}) of schema {schema_name} was applied with another checksum than this build's",
                    migration.version, migration.name
                ),
                "use the strata build that applied it; an edited migration is a bug to report",
            )
        } else if !pending.is_empty() {
            Check::fail(
                kind,
                format!("schema {schema_name} is at migration {current} of {latest}; pending: {}", pending.join(", ")),
                "run `strata migrate` with the same DATABASE_URL and STRATA_PG_SCHEMA",
            )
        } else {
            Check::pass(kind, format!("schema {schema_name} is at migration {current} of {latest}"))
        };
        check.with_fact("version", current).with_fact("latest", latest)
    }

    async fn round_trip(&mut self) -> Check {
        let kind = &doctor::PG_ROUND_TRIP;
        let schema_name = self.config.schema.clone();
        let outcome = match guarded(
            &mut self.broken,
            self.plan.check_timeout,
            kind,
            round_trip(self.connection, self.plan, &schema_name),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(check) => return check,
        };
        let baseline = millis(self.plan.round_trip_baseline);
        match outcome {
            Ok(trip) => {
                let locked = if trip.locked.is_empty() {
                    "no strata tables to lock yet".to_string()
                } else {
                    format!("writers can lock {}", trip.locked.join(", "))
                };
                let finding = format!(
                    "insert, read and delete in {} committed in {:.1} ms (network round trip {:.2} ms; baseline \
                     {baseline:.0} ms); {locked}",
                    trip.table, trip.total_ms, trip.ping_ms,
                );
                let check = if trip.total_ms > baseline {
                    Check::fail(
                        kind,
                        finding,
                        "a busy, small or distant server: compare with `strata health`, check the compute size \
                         (neon.autoscaling) and that this machine runs in the database's region",
                    )
                } else {
                    Check::pass(kind, finding)
                };
                check.with_fact("round_trip_ms", format!("{:.2}", trip.total_ms)).with_fact("ping_ms", format!("{:.2}", trip.ping_ms))
            }
            Err(RoundTripError::Lock { table, holders }) => Check::fail(
                kind,
                format!(
                    "waited {:.1} s for a lock on {table} and gave up: {holders}; strata's reads and writes of it wait too",
                    self.plan.lock_wait.as_secs_f64()
                ),
                "end or finish the session holding it (SELECT pg_terminate_backend(PID)); look for long \
                 transactions in pg_stat_activity",
            )
            .with_severity(Severity::Critical)
            .with_fact("cause", "lock")
            .with_fact("table", table),
            Err(RoundTripError::Sql(error)) => Check::fail(
                kind,
                format!("the round trip failed: {}", Redacted::from(&error)),
                "check this role's rights on the schema (INSERT, SELECT, DELETE) and the server log",
            )
            .with_severity(Severity::Critical),
            Err(RoundTripError::Mismatch(what)) => Check::fail(
                kind,
                format!("the round trip read back something else: {what}"),
                "check for triggers or rules on strata_meta, and the server log",
            )
            .with_severity(Severity::Critical),
        }
    }

    async fn clock_skew(&mut self) -> Check {
        let kind = &doctor::PG_CLOCK_SKEW;
        let outcome =
            match guarded(&mut self.broken, self.plan.check_timeout, kind, measure_skew(self.connection)).await {
                Ok(outcome) => outcome,
                Err(check) => return check,
            };
        let (skew, uncertainty) = match outcome {
            Ok(measured) => measured,
            Err(error) => return Session::unreadable(kind, "the server's clock", &error),
        };
        let direction = if skew >= 0.0 { "ahead of" } else { "behind" };
        let finding = format!(
            "the server's clock is {} {direction} this machine's (± {})",
            describe_seconds(skew.abs()),
            describe_seconds(uncertainty)
        );
        let allowed = self.plan.max_clock_skew.as_secs_f64();
        let check = if skew.abs() - uncertainty > allowed {
            Check::fail(
                kind,
                format!("{finding}, more than the {} allowed", describe_seconds(allowed)),
                "sync this machine's clock (chrony or systemd-timesyncd); leases use the server's clock, but \
                 logs, default windows and the hybrid cache's hot/warm ages use this machine's",
            )
        } else {
            Check::pass(kind, finding)
        };
        check
            .with_fact("skew_ms", format!("{:.3}", skew * 1e3))
            .with_fact("uncertainty_ms", format!("{:.3}", uncertainty * 1e3))
    }
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// `3.2 ms`, `1.5 s`.
fn describe_seconds(seconds: f64) -> String {
    if seconds < 1.0 { format!("{:.1} ms", seconds * 1e3) } else { format!("{seconds:.1} s") }
}

/// Whether this session is encrypted (`pg_stat_ssl`), `None` when not visible.
async fn read_encrypted(connection: &mut PgConnection) -> Option<bool> {
    sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .persistent(false)
        .fetch_optional(&mut *connection)
        .await
        .ok()
        .flatten()
}

/// PgBouncer's `pool_mode` when the server in front answers `SHOW pool_mode`.
async fn show_pool_mode(connection: &mut PgConnection) -> Option<String> {
    // A simple query outside any transaction: the error PostgreSQL answers leaves nothing behind.
    let rows = sqlx::raw_sql("SHOW pool_mode").fetch_all(&mut *connection).await.ok()?;
    let row = rows.first()?;
    sqlx::Row::try_get::<String, _>(row, 0).ok()
}

/// (text, milliseconds) of statement_timeout and lock_timeout inside a
/// strata transaction, then the server's defaults of those and of
/// idle_in_transaction_session_timeout.
async fn read_timeouts(connection: &mut PgConnection, config: &NeonConfig) -> SqlResult<[(String, i64); 5]> {
    const READ: &str = "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),
                (SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'),
                (SELECT setting::bigint FROM pg_settings WHERE name = 'lock_timeout')";
    let defaults: (String, String, i64, i64) =
        sqlx::query_as(READ).persistent(false).fetch_one(&mut *connection).await?;
    let idle: (String, i64) = sqlx::query_as(
        "SELECT current_setting('idle_in_transaction_session_timeout'),
                (SELECT setting::bigint FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout')",
    )
    .persistent(false)
    .fetch_one(&mut *connection)
    .await?;
    // Exactly what the store runs at the start of each transaction.
    let begin = format!(
        "BEGIN; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        config.statement_timeout.as_millis().max(1),
        config.lock_timeout.as_millis().max(1)
    );
    (&mut *connection).execute(sqlx::raw_sql(&begin)).await?;
    let inside: SqlResult<(String, String, i64, i64)> =
        sqlx::query_as(READ).persistent(false).fetch_one(&mut *connection).await;
    let ended = (&mut *connection).execute(sqlx::raw_sql("ROLLBACK")).await;
    let inside = inside?;
    ended?;
    Ok([
        (inside.0, inside.2),
        (inside.1, inside.3),
        (defaults.0, defaults.2),
        (defaults.1, defaults.3),
        (idle.0, idle.1),
    ])
}

/// `server_version_num` and `server_version`.
async fn read_version(connection: &mut PgConnection) -> SqlResult<(i32, String)> {
    let (number, text): (String, String) =
        sqlx::query_as("SELECT current_setting('server_version_num'), current_setting('server_version')")
            .persistent(false)
            .fetch_one(&mut *connection)
            .await?;
    Ok((number.trim().parse().unwrap_or(0), text))
}

/// What the server offers of TimescaleDB, and the layout recorded in the schema (if it has one).
async fn read_layout_facts(
    connection: &mut PgConnection,
    schema_name: &str,
) -> SqlResult<(TimescaleFacts, Option<String>)> {
    let (preload_libraries, installed_version, available): (Option<String>, Option<String>, bool) =
        sqlx::query_as(schema::TIMESCALE_FACTS_SQL).persistent(false).fetch_one(&mut *connection).await?;
    let facts = TimescaleFacts { preload_libraries, installed_version, available };
    let meta = format!("{schema_name}.strata_meta");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&meta)
        .persistent(false)
        .fetch_one(&mut *connection)
        .await?;
    if !exists {
        return Ok((facts, None));
    }
    let recorded: Option<String> = sqlx::query_scalar(&format!("SELECT value FROM {meta} WHERE key = 'bars_layout'"))
        .persistent(false)
        .fetch_optional(&mut *connection)
        .await?;
    Ok((facts, recorded))
}

/// Connection slots as the server counts them.
struct Slots {
    max: i64,
    superuser_reserved: i64,
    /// `reserved_connections` (PostgreSQL 16+, for `pg_use_reserved_connections`).
    reserved: i64,
    /// Client backends connected now, this one included.
    used: i64,
}

async fn read_connections(connection: &mut PgConnection) -> SqlResult<Slots> {
    let (max, superuser_reserved, reserved, used): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT current_setting('max_connections')::bigint,
                current_setting('superuser_reserved_connections')::bigint,
                coalesce(current_setting('reserved_connections', true), '0')::bigint,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
    )
    .persistent(false)
    .fetch_one(&mut *connection)
    .await?;
    Ok(Slots { max, superuser_reserved, reserved, used })
}

/// The applied migrations (version, checksum), or `None` when the schema has none.
async fn read_migrations(connection: &mut PgConnection, schema_name: &str) -> SqlResult<Option<Vec<(i32, String)>>> {
    let table = format!("{schema_name}.strata_migrations");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .persistent(false)
        .fetch_one(&mut *connection)
        .await?;
    if !exists {
        return Ok(None);
    }
    let applied: Vec<(i32, String)> =
        sqlx::query_as(&format!("SELECT version, checksum FROM {table} ORDER BY version"))
            .persistent(false)
            .fetch_all(&mut *connection)
            .await?;
    Ok(if applied.is_empty() { None } else { Some(applied) })
}

/// What a round trip measured.
struct Trip {
    table: String,
    total_ms: f64,
    ping_ms: f64,
    /// The strata tables a writer could lock.
    locked: Vec<String>,
}

enum RoundTripError {
    /// `lock_timeout` on `table`; who holds it.
    Lock {
        table: String,
        holders: String,
    },
    Sql(sqlx::Error),
    Mismatch(String),
}

impl From<sqlx::Error> for RoundTripError {
    fn from(error: sqlx::Error) -> Self {
        RoundTripError::Sql(error)
    }
}

/// The tables a writer locks `ROW EXCLUSIVE`: bars, and the evolution tables workers write.
const WRITTEN_TABLES: [&str; 4] = ["ohlcv_bars", "runs", "generations", "tasks"];

/// SQLSTATE `lock_not_available` (lock_timeout).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Insert, read back and delete a row of `strata_meta` (a temporary table
/// when the schema has none) in one committed transaction, then take each
/// strata table's write lock (`ROW EXCLUSIVE`, the table only) within the
/// doctor's lock wait. A held lock names its holders.
async fn round_trip(
    connection: &mut PgConnection,
    plan: &Plan,
    schema_name: &str,
) -> std::result::Result<Trip, RoundTripError> {
    let ping = Instant::now();
    sqlx::query("SELECT 1").persistent(false).execute(&mut *connection).await?;
    let ping_ms = millis(ping.elapsed());
    let started = Instant::now();
    begin(connection, plan).await?;
    let body = trip_body(connection, schema_name).await;
    let ended = (&mut *connection).execute(sqlx::raw_sql(if body.is_ok() { "COMMIT" } else { "ROLLBACK" })).await;
    let total_ms = millis(started.elapsed());
    match body {
        Ok((table, locked)) => {
            ended?;
            Ok(Trip { table, total_ms, ping_ms, locked })
        }
        Err(BodyError::Lock(table)) => {
            ended?;
            let holders = lock_holders(connection, plan, &table)
                .await
                .unwrap_or_else(|error| format!("cannot tell who holds it ({})", Redacted::from(&error)));
            Err(RoundTripError::Lock { table, holders })
        }
        Err(BodyError::Sql(error)) => Err(RoundTripError::Sql(error)),
        Err(BodyError::Mismatch(what)) => Err(RoundTripError::Mismatch(what)),
    }
}

enum BodyError {
    Lock(String),
    Sql(sqlx::Error),
    Mismatch(String),
}

impl From<sqlx::Error> for BodyError {
    fn from(error: sqlx::Error) -> Self {
        BodyError::Sql(error)
    }
}

/// The round trip's statements, inside the open transaction: (the scratch table, the tables locked).
async fn trip_body(
    connection: &mut PgConnection,
    schema_name: &str,
) -> std::result::Result<(String, Vec<String>), BodyError> {
    let meta = format!("{schema_name}.strata_meta");
    let has_meta: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&meta)
        .persistent(false)
        .fetch_one(&mut *connection)
        .await?;
    let table = if has_meta {
        meta
    } else {
        (&mut *connection)
            .execute(sqlx::raw_sql(
                "CREATE TEMPORARY TABLE strata_doctor_scratch (key text PRIMARY KEY, value text NOT NULL) ON COMMIT DROP",
            ))
            .await?;
        "strata_doctor_scratch (temporary: the schema has no strata_meta yet)".to_string()
    };
    let table_name = table.split(' ').next().unwrap_or_default().to_string();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let key = format!("doctor:{}:{nanos}", std::process::id());
    let value = format!("round trip {nanos}");
    sqlx::query(&format!("INSERT INTO {table_name} (key, value) VALUES ($1, $2)"))
        .bind(&key)
        .bind(&value)
        .persistent(false)
        .execute(&mut *connection)
        .await?;
    let read: Option<String> = sqlx::query_scalar(&format!("SELECT value FROM {table_name} WHERE key = $1"))
        .bind(&key)
        .persistent(false)
        .fetch_optional(&mut *connection)
        .await?;
    if read.as_deref() != Some(value.as_str()) {
        return Err(BodyError::Mismatch(format!("{read:?} instead of {value:?}")));
    }
    let deleted = sqlx::query(&format!("DELETE FROM {table_name} WHERE key = $1"))
        .bind(&key)
        .persistent(false)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    if deleted != 1 {
        return Err(BodyError::Mismatch(format!("the delete removed {deleted} rows instead of 1")));
    }
    let mut locked = Vec::new();
    for name in WRITTEN_TABLES {
        let qualified = format!("{schema_name}.{name}");
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&qualified)
            .persistent(false)
            .fetch_one(&mut *connection)
            .await?;
        if !exists {
            continue;
        }
        let lock = format!("LOCK TABLE ONLY {qualified} IN ROW EXCLUSIVE MODE");
        match (&mut *connection).execute(sqlx::raw_sql(&lock)).await {
            Ok(_) => locked.push(qualified),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
                return Err(BodyError::Lock(qualified));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok((table, locked))
}

/// A session holding a lock: pid, mode, application_name, state, seconds in its transaction.
type Holder = (i32, String, Option<String>, Option<String>, Option<f64>);

/// Who holds a lock on `table` that a writer waits for: `process 1234 (psql, idle in transaction for 35 s)
/// holds AccessExclusiveLock`.
async fn lock_holders(connection: &mut PgConnection, plan: &Plan, table: &str) -> SqlResult<String> {
    begin(connection, plan).await?;
    let rows: SqlResult<Vec<Holder>> = sqlx::query_as(
        "SELECT l.pid, l.mode, a.application_name, a.state,
                extract(epoch FROM now() - a.xact_start)::float8
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.relation = to_regclass($1) AND l.granted AND l.pid <> pg_backend_pid()
            AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
          ORDER BY l.pid",
    )
    .bind(table)
    .persistent(false)
    .fetch_all(&mut *connection)
    .await;
    let rows = finish(connection, rows).await?;
    if rows.is_empty() {
        return Ok("the holder let go before it could be named".to_string());
    }
    let holders: Vec<String> = rows
        .into_iter()
        .map(|(pid, mode, application, state, seconds)| {
            let application =
                application.filter(|name| !name.is_empty()).unwrap_or_else(|| "no application_name".into());
            let state = state.unwrap_or_else(|| "state not visible".into());
            let age = seconds.map(|s| format!(" for {s:.0} s")).unwrap_or_default();
            format!("process {pid} ({application}, {state}{age}) holds {mode}")
        })
        .collect();
    Ok(redact_text(&holders.join("; ")))
}

/// The server's clock minus this machine's, in seconds, and the uncertainty
/// (half the fastest of three round trips): `clock_timestamp()` is compared
/// with the middle of the round trip that read it.
async fn measure_skew(connection: &mut PgConnection) -> SqlResult<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    for _ in 0..3 {
        let before = unix_seconds();
        let server: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
            .persistent(false)
            .fetch_one(&mut *connection)
            .await?;
        let after = unix_seconds();
        let half = (after - before) / 2.0;
        let skew = server - (before + half);
        if best.is_none_or(|(_, uncertainty)| half < uncertainty) {
            best = Some((skew, half));
        }
    }
    Ok(best.unwrap_or((0.0, 0.0)))
}

fn unix_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_that_cannot_connect_skips_every_other_check() {
        let first = Check::fail(&doctor::PG_REACHABLE, "refused", "start it");
        let checks = with_rest_skipped(first, "no connection");
        let ids: Vec<&str> = checks.iter().map(|check| check.id).collect();
        let catalog: Vec<&str> =
            doctor::CATALOG.iter().map(|kind| kind.id).filter(|id| id.starts_with("pg.")).collect();
        assert_eq!(ids, catalog, "every PostgreSQL check, in catalog order");
        assert!(checks[1..].iter().all(|check| check.status == doctor::Status::Skip));
    }

    #[test]
    fn seconds_and_addresses_read_naturally() {
        assert_eq!(describe_seconds(0.0032), "3.2 ms");
        assert_eq!(describe_seconds(3.25), "3.2 s");
        assert_eq!(address("::1", 5432), "[::1]:5432");
        assert_eq!(address("db.example.com", 5432), "db.example.com:5432");
    }
}
