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
    /// How long to wait for a connection (including connecting). Default 30 s,
    /// enough for a suspended Neon compute to wake up.
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
    /// Chunk interval of the hypertable with TimescaleDB. Default 1 day (as in the seeds).
    pub chunk_interval: Duration,
    /// Rows per COPY chunk and per streamed query batch. Default 65,536.
    pub batch_rows: usize,
    /// Whether the host is a transaction-mode pooler (PgBouncer). Detected
    /// from a `-pooler` host; `STRATA_PG_POOLER=1` forces it.
    pub pooler: bool,
    /// Use TimescaleDB when the extension is available. Default true.
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
fn is_neon_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host.ends_with(".neon.tech") || host.ends_with(".neon.build")
}

/// Whether `host` is a Neon pooler endpoint (`ep-...-pooler.region.aws.neon.tech`).
fn is_pooler_host(host: &str) -> bool {
    host.split('.').next().is_some_and(|label| label.to_ascii_lowercase().ends_with("-pooler"))
}

impl NeonConfig {
    /// Parses a `postgres://` or `postgresql://` URL. The error never repeats the password.
    pub fn from_url(text: &str) -> Result<Self> {
        let mut url = Url::parse(text.trim()).map_err(|error| {
            StoreError::invalid(format!("DATABASE_URL is not a valid URL ({error}): {}", redact_text(text)))
        })?;
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
                _ => kept.push((key.into_owned(), value.into_owned())),
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
        let pooler = is_pooler_host(&host) || std::env::var("STRATA_PG_POOLER").is_ok_and(|v| v == "1" || v == "true");
        Ok(NeonConfig {
            url,
            schema: "public".to_string(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(240),
            max_lifetime: Duration::from_secs(1800),
            statement_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(30),
            application_name: "strata".to_string(),
            retry_budget: Duration::from_secs(30),
            retry_base_delay: Duration::from_millis(100),
            migrate_on_start: true,
            partition_interval: PartitionInterval::default(),
            chunk_interval: Duration::from_secs(86_400),
            batch_rows: 65_536,
            pooler,
            use_timescaledb: true,
            ssl_mode,
            ssl_root_cert,
            dropped_channel_binding,
        })
    }

    /// Reads `DATABASE_URL`, else `NEON_DATABASE_URL`.
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("DATABASE_URL")
            .or_else(|_| std::env::var("NEON_DATABASE_URL"))
            .map_err(|_| StoreError::invalid("STORAGE_BACKEND=neon needs DATABASE_URL (or NEON_DATABASE_URL)"))?;
        NeonConfig::from_url(&url)
    }

    /// Uses `schema` for every table (a valid SQL identifier of lowercase letters, digits and `_`).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Result<Self> {
        let schema = schema.into();
        check_identifier(&schema)?;
        self.schema = schema;
        Ok(self)
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

    /// The database name (`postgres` when the URL has none).
    pub fn database(&self) -> String {
        let path = self.url.path().trim_start_matches('/');
        if path.is_empty() { "postgres".to_string() } else { path.to_string() }
    }

    /// The URL with its password replaced by `***`, safe to print.
    pub fn redacted_url(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        url.to_string()
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

/// Replaces anything that looks like the password part of a URL (`user:secret@`) with `***`.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ', '"', '\'']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let config = NeonConfig::from_url("postgres://alice:hunter2@db.example.com:5432/app?sslmode=require").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(config.redacted_url().contains("alice:***@db.example.com"));
        let error = NeonConfig::from_url("postgres://alice:hunter2@db.example.com:99999/app").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert_eq!(
            redact_text("failed: postgres://u:p4ss@h/db and postgres://x@y/z"),
            "failed: postgres://u:***@h/db and postgres://x@y/z"
        );
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
}
