//! Connection settings: the database URL (never printed with its password),
//! pool sizing and timeouts, TLS policy, pooler detection and the retry budget.
//!
//! Neon specifics handled here:
//! - A host whose first label ends in `-pooler` is PgBouncer in transaction
//!   mode: no session state survives a transaction there, so the store runs
//!   every statement inside an explicit transaction, uses unnamed statements
//!   only, sends no startup `options`, and sets timeouts with `SET LOCAL`.
//! - Neon requires TLS. sqlx's `sslmode=require` encrypts but does not check
//!   the certificate, so for Neon hosts (`*.neon.tech`, `*.neon.build`) the
//!   default is raised to `verify-full` against the platform's roots; an
//!   explicit `sslrootcert` is honoured.
//! - Neon's connection strings carry `channel_binding=require`, which sqlx
//!   does not implement. It is removed from the URL and a single warning
//!   says what is enforced instead (verify-full TLS), never silently.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use strata_core::{Result, StoreError};
use url::Url;

use crate::redact::{redact_connection_string, redact_text, redact_url};

/// How `ohlcv_bars` is split by time when TimescaleDB is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartitionInterval {
    /// One partition per UTC day.
    Day,
    /// One partition per ISO week (Monday to Monday, UTC).
    Week,
    /// One partition per calendar month (the default: a year of minute bars
    /// for ten symbols is ~4.4M rows per partition; daily bars since 1950
    /// make under 1,000 partitions).
    #[default]
    Month,
    /// One partition per calendar year.
    Year,
}

impl PartitionInterval {
    /// Every value, for messages.
    pub const ALL: [PartitionInterval; 4] =
        [PartitionInterval::Day, PartitionInterval::Week, PartitionInterval::Month, PartitionInterval::Year];

    /// The accepted name.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionInterval::Day => "day",
            PartitionInterval::Week => "week",
            PartitionInterval::Month => "month",
            PartitionInterval::Year => "year",
        }
    }
}

impl fmt::Display for PartitionInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PartitionInterval {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Self> {
        let wanted = text.trim().to_ascii_lowercase();
        PartitionInterval::ALL.into_iter().find(|interval| interval.as_str() == wanted).ok_or_else(|| {
            StoreError::invalid(format!("partition interval {text:?} is not one of day, week, month, year"))
        })
    }
}

/// The chunk interval of a new TimescaleDB hypertable when none is
/// configured: 90 days. [`crate::schema`] explains the choice.
pub const DEFAULT_CHUNK_INTERVAL: Duration = Duration::from_secs(90 * 86_400);

/// The shortest chunk interval accepted (one minute).
const MIN_CHUNK_INTERVAL: Duration = Duration::from_secs(60);

/// The longest chunk interval accepted (100 years of 365 days).
const MAX_CHUNK_INTERVAL: Duration = Duration::from_secs(36_500 * 86_400);

/// Parses a chunk interval (`STRATA_PG_CHUNK_INTERVAL`): a whole number and
/// a unit, `90d`, `90 days`, `2w`, `12h`, `30min`, `3600s`. Months and
/// years are refused because their length varies (TimescaleDB's chunks
/// have a fixed length): write `365d`.
pub fn parse_chunk_interval(text: &str) -> Result<Duration> {
    let refuse = |why: &str| {
        StoreError::invalid(format!(
            "chunk interval {text:?} {why}; write a whole number and a unit: 90d, 2w, 12h, 30min or 3600s"
        ))
    };
    let trimmed = text.trim().to_ascii_lowercase();
    let digits = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let count: u64 = number.parse().map_err(|_| refuse("does not start with a number"))?;
    let unit_seconds: u64 = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        "mon" | "month" | "months" | "y" | "year" | "years" => {
            return Err(refuse("uses a unit of varying length (write days, e.g. 365d)"));
        }
        "" => return Err(refuse("has no unit")),
        _ => return Err(refuse("has an unknown unit")),
    };
    let interval = Duration::from_secs(count.saturating_mul(unit_seconds));
    if interval < MIN_CHUNK_INTERVAL || interval > MAX_CHUNK_INTERVAL {
        return Err(refuse("is outside 1 minute to 36500 days"));
    }
    Ok(interval)
}

/// A chunk interval as people write it: `90 days`, `1 day`, `12 hours`, `90 seconds`.
pub fn describe_chunk_interval(interval: Duration) -> String {
    let seconds = interval.as_secs();
    let (count, unit) = match seconds {
        s if s > 0 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s > 0 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s > 0 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// Everything the PostgreSQL/Neon store needs to connect and behave.
///
/// Built from a URL with [`NeonConfig::from_url`], then adjusted with the
/// `with_*` methods. `Debug` never shows the password.
#[derive(Clone)]
pub struct NeonConfig {
    url: Url,
    /// Schema holding every Strata table (created when missing). Default `public`.
    pub schema: String,
    /// Largest number of pooled connections. Default 10.
    pub max_connections: u32,
    /// Connections kept open while idle. Default 0 (let a Neon compute suspend).
    pub min_connections: u32,
    /// How long to wait for a connection (including connecting): bounds each
    /// connection attempt. Default 30 s, enough for a suspended Neon compute
    /// to wake up; `connect_timeout=SECONDS` in the URL sets it (as in libpq,
    /// a whole number, at least 2; 0 keeps the default).
    pub acquire_timeout: Duration,
    /// Idle connections are closed after this. Default 4 min, under Neon's
    /// 5-minute suspend so a pool never holds a connection the compute dropped.
    pub idle_timeout: Duration,
    /// Connections are recycled after this. Default 30 min.
    pub max_lifetime: Duration,
    /// `statement_timeout` set with `SET LOCAL` in every transaction. Default 5 min.
    pub statement_timeout: Duration,
    /// `lock_timeout` set with `SET LOCAL` in every transaction. Default 30 s.
    pub lock_timeout: Duration,
    /// `application_name` shown in `pg_stat_activity`. Default `strata`.
    pub application_name: String,
    /// Total time spent retrying transient failures of one operation. Default 30 s.
    pub retry_budget: Duration,
    /// First retry delay (doubles, with jitter, up to 5 s). Default 100 ms.
    pub retry_base_delay: Duration,
    /// Apply pending migrations when the store opens. Default true.
    pub migrate_on_start: bool,
    /// Partition interval of `ohlcv_bars` without TimescaleDB. Default month.
    pub partition_interval: PartitionInterval,
    /// Chunk interval of the TimescaleDB hypertable (`STRATA_PG_CHUNK_INTERVAL`).
    /// `None` (the default): a new hypertable gets [`DEFAULT_CHUNK_INTERVAL`]
    /// (90 days, see [`crate::schema`] for the arithmetic) and an existing one
    /// keeps its interval. `Some`: a new hypertable gets it, and an existing
    /// one is switched to it when migrations run (TimescaleDB applies it to
    /// chunks created from then on).
    pub chunk_interval: Option<Duration>,
    /// Rows per COPY chunk and per streamed query batch. Default 65,536.
    pub batch_rows: usize,
    /// Whether the host is a transaction-mode pooler (PgBouncer). Detected
    /// from a `-pooler` host; [`NeonConfig::with_pooler`] forces it (the
    /// `strata` binary does for `STRATA_PG_POOLER=1`).
    pub pooler: bool,
    /// Use TimescaleDB for a new schema's bar table when the server can load
    /// it (preloaded, or already installed), native partitions otherwise.
    /// `false` (`STRATA_PG_TIMESCALEDB=false`) always uses native partitions.
    /// An existing table keeps its layout either way. Default true.
    pub use_timescaledb: bool,
    ssl_mode: PgSslMode,
    ssl_root_cert: Option<PathBuf>,
    dropped_channel_binding: Option<String>,
}

impl fmt::Debug for NeonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeonConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("pooler", &self.pooler)
            .field("ssl_mode", &self.ssl_mode)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Whether `host` is one of Neon's.
pub(crate) fn is_neon_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host.ends_with(".neon.tech") || host.ends_with(".neon.build")
}

/// Whether `host` is a Neon pooler endpoint (`ep-...-pooler.region.aws.neon.tech`).
fn is_pooler_host(host: &str) -> bool {
    host.split('.').next().is_some_and(|label| label.to_ascii_lowercase().ends_with("-pooler"))
}

impl NeonConfig {
    /// Parses a `postgres://` or `postgresql://` URL. The error never repeats
    /// a password (see [`crate::redact`]). Query parameters sqlx does not read
    /// are dropped with a warning that names them without their values (sqlx
    /// would log the values, and `?PASSWORD=` or `?sslpassword=` carry secrets).
    pub fn from_url(text: &str) -> Result<Self> {
        let mut url = Url::parse(text.trim()).map_err(|error| StoreError::invalid(unparsable_url(text, error)))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(StoreError::invalid(format!(
                "DATABASE_URL must start with postgres:// or postgresql://, got {}://",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let mut ssl_mode: Option<PgSslMode> = None;
        let mut ssl_root_cert = None;
        let mut dropped_channel_binding = None;
        let mut connect_timeout = None;
        let mut kept: Vec<(String, String)> = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" | "ssl-mode" => {
                    ssl_mode = Some(value.parse().map_err(|_| {
                        StoreError::invalid(format!(
                            "sslmode={value} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        ))
                    })?);
                }
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => ssl_root_cert = Some(PathBuf::from(value.as_ref())),
                "channel_binding" => dropped_channel_binding = Some(value.into_owned()),
                // libpq's; sqlx ignores it (and would log it), so strata applies it.
                "connect_timeout" => connect_timeout = parse_connect_timeout(&value)?,
                name if SQLX_PARAMETERS.contains(&name) || name.starts_with("options[") => {
                    kept.push((key.into_owned(), value.into_owned()))
                }
                _ => warn_ignored_parameter(&key, &value),
            }
        }
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept.iter());
        }
        let neon = is_neon_host(&host);
        let ssl_mode = match ssl_mode {
            // sqlx's `require` does not verify the certificate; Neon hosts get verify-full.
            Some(PgSslMode::Require | PgSslMode::Prefer | PgSslMode::Allow) | None if neon => PgSslMode::VerifyFull,
            Some(mode) => mode,
            None => PgSslMode::Prefer,
        };
        let pooler = is_pooler_host(&host);
        Ok(NeonConfig {
            url,
            schema: "public".to_string(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: connect_timeout.unwrap_or(Duration::from_secs(30)),
            idle_timeout: Duration::from_secs(240),
            max_lifetime: Duration::from_secs(1800),
            statement_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(30),
            application_name: "strata".to_string(),
            retry_budget: Duration::from_secs(30),
            retry_base_delay: Duration::from_millis(100),
            migrate_on_start: true,
            partition_interval: PartitionInterval::default(),
            chunk_interval: None,
            batch_rows: 65_536,
            pooler,
            use_timescaledb: true,
            ssl_mode,
            ssl_root_cert,
            dropped_channel_binding,
        })
    }

    /// Uses `schema` for every table (a valid SQL identifier of lowercase letters, digits and `_`).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Result<Self> {
        let schema = schema.into();
        check_identifier(&schema)?;
        self.schema = schema;
        Ok(self)
    }

    /// How transient failures are retried: from `retry_base_delay`, doubling
    /// up to 5 s, with jitter, within `retry_budget`.
    pub fn backoff(&self) -> strata_core::policy::Backoff {
        strata_core::policy::Backoff::new(self.retry_base_delay, Duration::from_secs(5), self.retry_budget)
    }

    /// Forces pooler behaviour on or off (detected from the host otherwise).
    pub fn with_pooler(mut self, pooler: bool) -> Self {
        self.pooler = pooler;
        self
    }

    /// Overrides the TLS mode.
    pub fn with_ssl_mode(mut self, mode: PgSslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// Trusts this CA certificate (PEM) instead of the platform roots.
    pub fn with_ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// The TLS mode in force.
    pub fn ssl_mode(&self) -> PgSslMode {
        self.ssl_mode
    }

    /// The host name.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or("localhost")
    }

    /// The user name of the URL (`postgres` when it has none, as libpq's default on most servers).
    pub fn user(&self) -> String {
        let user = self.url.username();
        if user.is_empty() { "postgres".to_string() } else { user.to_string() }
    }

    /// The database name (`postgres` when the URL has none).
    pub fn database(&self) -> String {
        let path = self.url.path().trim_start_matches('/');
        if path.is_empty() { "postgres".to_string() } else { path.to_string() }
    }

    /// The URL with its password and every secret-looking query parameter
    /// replaced by `***`, safe to print.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The `channel_binding` value removed from the URL, if any.
    pub fn dropped_channel_binding(&self) -> Option<&str> {
        self.dropped_channel_binding.as_deref()
    }

    /// sqlx connect options for this configuration.
    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions> {
        let mut options = PgConnectOptions::from_str(self.url.as_str()).map_err(|error| {
            StoreError::invalid(format!(
                "DATABASE_URL {} is not usable: {}",
                self.redacted_url(),
                redact_text(&error.to_string())
            ))
        })?;
        options = options.ssl_mode(self.ssl_mode).application_name(&self.application_name);
        if let Some(cert) = &self.ssl_root_cert {
            options = options.ssl_root_cert(cert);
        }
        if self.pooler {
            // PgBouncer refuses unknown startup parameters and cannot keep
            // named statements between transactions.
            options = options.extra_float_digits(None).statement_cache_capacity(0);
        }
        Ok(options)
    }

    /// What the store says once at startup about TLS and channel binding.
    pub(crate) fn tls_notice(&self) -> Option<String> {
        self.dropped_channel_binding.as_ref().map(|value| {
            format!(
                "DATABASE_URL asks for channel_binding={value}, which sqlx cannot do; it was removed. \
                 Enforced instead: sslmode={} ({}) to {}",
                ssl_mode_name(self.ssl_mode),
                match self.ssl_mode {
                    PgSslMode::VerifyFull => "TLS with the server certificate and host name verified",
                    PgSslMode::VerifyCa => "TLS with the server certificate verified, host name not checked",
                    PgSslMode::Require => "TLS without certificate verification",
                    _ => "TLS only if the server offers it",
                },
                self.host()
            )
        })
    }
}

/// The libpq name of an SSL mode.
pub(crate) fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// Refuses anything but a plain lowercase SQL identifier, so it can be spliced into SQL.
pub(crate) fn check_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "schema {name:?} must be 1 to 48 characters of lowercase letters, digits and _, not starting with a digit"
        )))
    }
}

/// The query parameters sqlx 0.8 reads from a URL (it logs any other one
/// with its value at WARN); `options[NAME]` is read too.
const SQLX_PARAMETERS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Says that a query parameter of `DATABASE_URL` is not used, naming it
/// (never its value) when it reads as a parameter name.
fn warn_ignored_parameter(name: &str, value: &str) {
    let plain_name = !value.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !plain_name {
        tracing::warn!("DATABASE_URL has a query parameter strata does not use; it was ignored");
        return;
    }
    let lower = name.to_ascii_lowercase();
    let hint = if lower != name && SQLX_PARAMETERS.contains(&lower.as_str()) {
        format!(" (parameter names are lower case: {lower})")
    } else {
        String::new()
    };
    tracing::warn!("DATABASE_URL parameter {name} is not one strata uses{hint}; it was ignored");
}

/// Reads libpq's `connect_timeout` (whole seconds): `None` for 0 or less
/// (libpq waits indefinitely; strata keeps its default), at least 2 s as in libpq.
fn parse_connect_timeout(value: &str) -> Result<Option<Duration>> {
    let seconds: i64 = value.trim().parse().map_err(|_| {
        StoreError::invalid(format!(
            "DATABASE_URL parameter connect_timeout={value:?} is not a whole number of seconds"
        ))
    })?;
    Ok((seconds > 0).then(|| Duration::from_secs(seconds.max(2) as u64)))
}

/// Why `text` is not a usable `DATABASE_URL`, quoting it with every secret masked.
fn unparsable_url(text: &str, error: url::ParseError) -> String {
    let shown = redact_connection_string(text.trim());
    if !text.contains("://") && text.contains('=') {
        format!(
            "DATABASE_URL looks like a libpq key=value string ({shown}); strata reads only URLs \
             (postgres://USER@HOST:PORT/DATABASE)"
        )
    } else {
        format!("DATABASE_URL is not a valid URL ({error}): {shown}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_intervals_parse_and_print() {
        for (text, seconds) in [
            ("90d", 90 * 86_400),
            (" 90 Days ", 90 * 86_400),
            ("2w", 14 * 86_400),
            ("12h", 43_200),
            ("30min", 1_800),
            ("1 minute", 60),
            ("3600s", 3_600),
            ("36500d", 36_500 * 86_400),
        ] {
            assert_eq!(parse_chunk_interval(text).unwrap(), Duration::from_secs(seconds), "{text}");
        }
        for (text, why) in [
            ("1 month", "varying length"),
            ("1y", "varying length"),
            ("90", "no unit"),
            ("d", "number"),
            ("-5d", "number"),
            ("5 fortnights", "unknown unit"),
            ("59s", "outside"),
            ("36501d", "outside"),
            ("99999999999999999999d", "number"),
        ] {
            let message = parse_chunk_interval(text).unwrap_err().to_string();
            assert!(message.contains(why) && message.contains("90d"), "{text}: {message}");
        }
        assert_eq!(describe_chunk_interval(DEFAULT_CHUNK_INTERVAL), "90 days");
        assert_eq!(describe_chunk_interval(Duration::from_secs(86_400)), "1 day");
        assert_eq!(describe_chunk_interval(Duration::from_secs(7_200)), "2 hours");
        assert_eq!(describe_chunk_interval(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn passwords_never_show() {
        let config = NeonConfig::from_url("postgres://alice:hunter2@db.example.com:5432/app?sslmode=require").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(config.redacted_url().contains("alice:***@db.example.com"));
        let error = NeonConfig::from_url("postgres://alice:hunter2@db.example.com:99999/app").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let config = NeonConfig::from_url(
            "postgres://alice:hunter2@h/app?password=second2&PASSWORD=third3&sslpassword=fourth4&api_token=fifth5",
        )
        .unwrap();
        let shown = format!("{config:?} {}", config.redacted_url());
        for secret in ["hunter2", "second2", "third3", "fourth4", "fifth5"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Parameters sqlx does not read never reach it (it would log their values).
        assert_eq!(config.url.query(), Some("password=second2"));
        for malformed in [
            "postgres://alice:p@ss:hunter2@h:99999/app",
            "postgres://alice:hunter2@h:port/app",
            "host=h user=alice password=hunter2 dbname=app",
            "host=h password='hunter2 x' dbname=app",
            "postgres://alice:hunter2@[::1/app",
        ] {
            let error = NeonConfig::from_url(malformed).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("DATABASE_URL"), "{error}");
        }
        let libpq = NeonConfig::from_url("host=h password=hunter2").unwrap_err().to_string();
        assert!(libpq.contains("key=value") && libpq.contains("host=h password=***"), "{libpq}");
    }

    #[test]
    fn neon_hosts_get_verify_full_and_channel_binding_is_reported() {
        let url = "postgresql://neondb_owner:pw@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb\
                   ?sslmode=require&channel_binding=require";
        let config = NeonConfig::from_url(url).unwrap();
        assert!(matches!(config.ssl_mode(), PgSslMode::VerifyFull));
        assert!(config.pooler);
        assert_eq!(config.dropped_channel_binding(), Some("require"));
        assert!(!config.redacted_url().contains("channel_binding"));
        let notice = config.tls_notice().unwrap();
        assert!(notice.contains("verify-full") && notice.contains("channel_binding=require"), "{notice}");
        let direct =
            NeonConfig::from_url("postgres://u:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/db").unwrap();
        assert!(!direct.pooler);
        assert!(matches!(direct.ssl_mode(), PgSslMode::VerifyFull));
    }

    #[test]
    fn explicit_modes_are_kept_for_other_hosts() {
        let config = NeonConfig::from_url("postgres://u@127.0.0.1/test?sslmode=disable").unwrap();
        assert!(matches!(config.ssl_mode(), PgSslMode::Disable));
        let config =
            NeonConfig::from_url("postgres://u@db.internal/test?sslmode=verify-full&sslrootcert=/etc/ca.pem").unwrap();
        assert!(matches!(config.ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(config.ssl_root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(config.database(), "test");
        assert!(NeonConfig::from_url("mysql://x@y/z").is_err());
        assert!(NeonConfig::from_url("postgres://u@h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn schema_names_are_checked() {
        let config = NeonConfig::from_url("postgres://u@h/db").unwrap();
        assert!(config.clone().with_schema("strata_ci_01").is_ok());
        assert!(config.clone().with_schema("Robert'); DROP TABLE x;--").is_err());
        assert!(config.with_schema("1abc").is_err());
        assert_eq!("Month".parse::<PartitionInterval>().unwrap(), PartitionInterval::Month);
        assert!("fortnight".parse::<PartitionInterval>().is_err());
    }

    #[test]
    fn connect_timeout_is_honoured_and_never_reaches_sqlx() {
        let config = NeonConfig::from_url("postgres://u:pw@h/db?connect_timeout=7&sslmode=disable").unwrap();
        assert_eq!(config.acquire_timeout, Duration::from_secs(7));
        assert_eq!(config.url.query(), None, "sqlx would log an unknown parameter");
        let config = NeonConfig::from_url("postgres://u@h/db?connect_timeout=1").unwrap();
        assert_eq!(config.acquire_timeout, Duration::from_secs(2), "libpq's minimum");
        let config = NeonConfig::from_url("postgres://u@h/db?connect_timeout=0").unwrap();
        assert_eq!(config.acquire_timeout, Duration::from_secs(30));
        assert_eq!(NeonConfig::from_url("postgres://u@h/db").unwrap().acquire_timeout, Duration::from_secs(30));
        let error = NeonConfig::from_url("postgres://u:hunter2@h/db?connect_timeout=soon").unwrap_err().to_string();
        assert!(error.contains("connect_timeout") && !error.contains("hunter2"), "{error}");
    }
}
