//! The composition root: the only place that reads the storage settings
//! (`STORAGE_BACKEND`, `STRATA_DUCKDB_PATH`, ... through clap), names concrete
//! adapters and hands out the stores as `Arc<dyn Port>`.
//!
//! Each adapter sits behind a cargo feature of this crate (`duckdb`,
//! `memory`). A backend that is compiled out still parses, so the error says
//! "not in this build" instead of "unknown backend".

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use strata_core::{EvolutionStore, MarketDataStore};

use crate::cli::StorageArgs;

/// The environment variable that selects the backend.
pub(crate) const BACKEND_VARIABLE: &str = "STORAGE_BACKEND";

/// The default DuckDB file.
pub(crate) const DEFAULT_DUCKDB_PATH: &str = "./strata.duckdb";

/// Backends named in the design that this build does not have yet.
const PLANNED_BACKENDS: [&str; 2] = ["efs", "hybrid"];

/// A storage backend this binary knows how to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum StorageBackend {
    /// One embedded DuckDB file (the default).
    #[default]
    DuckDb,
    /// The in-memory store of `strata-adapter-mock`; gone when the process exits.
    Memory,
    /// PostgreSQL / Neon at `DATABASE_URL`.
    Neon,
}

impl StorageBackend {
    /// Every variant, in the order they are listed to users.
    pub(crate) const ALL: [StorageBackend; 3] = [StorageBackend::DuckDb, StorageBackend::Memory, StorageBackend::Neon];

    /// The name accepted in `STORAGE_BACKEND`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StorageBackend::DuckDb => "duckdb",
            StorageBackend::Memory => "memory",
            StorageBackend::Neon => "neon",
        }
    }

    /// The cargo feature that compiles the backend in.
    fn feature(self) -> &'static str {
        match self {
            StorageBackend::DuckDb => "duckdb",
            StorageBackend::Memory => "memory",
            StorageBackend::Neon => "neon",
        }
    }

    /// Other names accepted for the backend in `STORAGE_BACKEND` / `--backend`.
    pub(crate) fn aliases(self) -> &'static [&'static str] {
        match self {
            StorageBackend::DuckDb | StorageBackend::Memory => &[],
            StorageBackend::Neon => &["postgres", "postgresql", "pg"],
        }
    }

    /// Whether this build contains the backend's adapter.
    pub(crate) fn is_compiled_in(self) -> bool {
        match self {
            StorageBackend::DuckDb => cfg!(feature = "duckdb"),
            StorageBackend::Memory => cfg!(feature = "memory"),
            StorageBackend::Neon => cfg!(feature = "neon"),
        }
    }
}

impl fmt::Display for StorageBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StorageBackend {
    type Err = ConfigError;

    /// Case-insensitive; surrounding whitespace is ignored; aliases (`postgres` for `neon`) are accepted.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        StorageBackend::ALL
            .into_iter()
            .find(|backend| backend.name() == wanted || backend.aliases().contains(&wanted.as_str()))
            .ok_or_else(|| ConfigError::UnknownBackend { value: text.to_string() })
    }
}

/// A storage setting that is wrong. Always an exit code 2.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConfigError {
    /// `STORAGE_BACKEND` / `--backend` names no backend.
    UnknownBackend {
        /// The value received.
        value: String,
    },
    /// The backend exists but its adapter was compiled out.
    NotCompiledIn(StorageBackend),
    /// `--lock-wait` / `STRATA_DUCKDB_LOCK_WAIT` is negative or not finite.
    LockWait(f64),
    /// A PostgreSQL setting is wrong: (variable, value, what is accepted).
    Postgres(&'static str, String, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownBackend { value } => {
                let trimmed = value.trim().to_ascii_lowercase();
                write!(f, "{BACKEND_VARIABLE} (or --backend) is {value:?}, which is not a storage backend")?;
                if PLANNED_BACKENDS.contains(&trimmed.as_str()) {
                    write!(f, " in this build: {trimmed} is planned but not implemented yet")?;
                }
                write!(f, "; accepted values: {}", accepted_values())?;
                write!(f, " ({} are planned but not in this build)", PLANNED_BACKENDS.join(", "))
            }
            ConfigError::NotCompiledIn(backend) => {
                let available: Vec<&str> =
                    StorageBackend::ALL.into_iter().filter(|b| b.is_compiled_in()).map(StorageBackend::name).collect();
                write!(
                    f,
                    "{BACKEND_VARIABLE} is \"{backend}\", but this build of strata was compiled without the \
                     {backend} backend (cargo feature `{}`); rebuild with it or choose one of: {}",
                    backend.feature(),
                    if available.is_empty() {
                        "none (no backend is compiled in)".to_string()
                    } else {
                        available.join(", ")
                    }
                )
            }
            ConfigError::LockWait(value) => {
                write!(f, "--lock-wait (STRATA_DUCKDB_LOCK_WAIT) is {value}; expected a number of seconds >= 0")
            }
            ConfigError::Postgres(variable, value, accepted) => {
                write!(f, "{variable} is {value:?}; {accepted}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The accepted backend names, marking the ones compiled out of this build.
fn accepted_values() -> String {
    StorageBackend::ALL
        .into_iter()
        .map(|backend| {
            let mut value = backend.name().to_string();
            if !backend.aliases().is_empty() {
                value = format!("{value} (or {})", backend.aliases().join(", "));
            }
            if !backend.is_compiled_in() {
                value.push_str(" (not compiled in)");
            }
            value
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Settings of the duckdb backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DuckDbSettings {
    /// The database file.
    pub(crate) path: PathBuf,
    /// How long to wait for a file another process holds; `None` = the adapter's default.
    pub(crate) lock_wait: Option<Duration>,
    /// DuckDB threads; `None` = DuckDB's default.
    pub(crate) threads: Option<usize>,
}

/// Settings of the neon backend (PostgreSQL at `DATABASE_URL`); the URL itself is read when the store opens.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct NeonSettings {
    /// Schema for every table (`STRATA_PG_SCHEMA`, default `public`).
    pub(crate) schema: Option<String>,
    /// Pool size (`STRATA_PG_MAX_CONNECTIONS`, default 10).
    pub(crate) max_connections: Option<u32>,
    /// Statement timeout (`STRATA_PG_STATEMENT_TIMEOUT`, seconds, default 300).
    pub(crate) statement_timeout: Option<Duration>,
    /// Retry budget of transient failures (`STRATA_PG_RETRY_BUDGET`, seconds, default 30).
    pub(crate) retry_budget: Option<Duration>,
    /// Apply migrations when opening (`STRATA_PG_MIGRATE`, default true).
    pub(crate) migrate_on_start: bool,
    /// Partition interval without TimescaleDB (`STRATA_PG_PARTITION`, default month).
    pub(crate) partition: Option<String>,
    /// TimescaleDB chunk interval (`STRATA_PG_CHUNK_INTERVAL`, default 90 days for a new hypertable).
    pub(crate) chunk_interval: Option<String>,
    /// Use TimescaleDB when the server can load it (`STRATA_PG_TIMESCALEDB`, default true).
    pub(crate) timescaledb: bool,
}

/// Which store to build and how.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageConfig {
    /// The backend.
    pub(crate) backend: StorageBackend,
    /// Used when `backend` is `DuckDb`.
    pub(crate) duckdb: DuckDbSettings,
    /// Used when `backend` is `Neon`.
    pub(crate) neon: NeonSettings,
}

impl StorageConfig {
    /// Reads the settings. Clap has already merged the environment
    /// (`STORAGE_BACKEND`, `STRATA_DUCKDB_PATH`, `STRATA_DUCKDB_LOCK_WAIT`,
    /// `STRATA_DUCKDB_THREADS`) with the flags, flags winning; this applies
    /// the defaults and checks the values.
    pub(crate) fn from_env_and_flags(args: &StorageArgs) -> Result<Self, ConfigError> {
        let backend = match args.backend.as_deref() {
            None => StorageBackend::default(),
            Some(text) => text.parse()?,
        };
        let lock_wait = match args.lock_wait {
            None => None,
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => Some(Duration::from_secs_f64(seconds)),
            Some(seconds) => return Err(ConfigError::LockWait(seconds)),
        };
        let path = args.duckdb_path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DUCKDB_PATH));
        let statement_timeout = match args.pg_statement_timeout {
            None => None,
            Some(seconds) if seconds.is_finite() && seconds > 0.0 => Some(Duration::from_secs_f64(seconds)),
            Some(seconds) => {
                return Err(ConfigError::Postgres(
                    "STRATA_PG_STATEMENT_TIMEOUT (--pg-statement-timeout)",
                    seconds.to_string(),
                    "expected a number of seconds > 0".to_string(),
                ));
            }
        };
        let retry_budget = match args.pg_retry_budget {
            None => None,
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => Some(Duration::from_secs_f64(seconds)),
            Some(seconds) => {
                return Err(ConfigError::Postgres(
                    "STRATA_PG_RETRY_BUDGET (--pg-retry-budget)",
                    seconds.to_string(),
                    "expected a number of seconds >= 0".to_string(),
                ));
            }
        };
        let migrate_on_start = match args.pg_migrate.as_deref().map(str::trim) {
            None | Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(other) => {
                return Err(ConfigError::Postgres(
                    "STRATA_PG_MIGRATE (--pg-migrate)",
                    other.to_string(),
                    "expected true or false".to_string(),
                ));
            }
        };
        let neon = NeonSettings {
            schema: args.pg_schema.clone(),
            max_connections: args.pg_max_connections,
            statement_timeout,
            retry_budget,
            migrate_on_start,
            partition: args.pg_partition.clone(),
            chunk_interval: args.pg_chunk_interval.clone(),
            timescaledb: parse_switch("STRATA_PG_TIMESCALEDB (--pg-timescaledb)", args.pg_timescaledb.as_deref())?,
        };
        Ok(StorageConfig { backend, duckdb: DuckDbSettings { path, lock_wait, threads: args.duckdb_threads }, neon })
    }

    /// Fails early when the chosen backend is not in this build.
    pub(crate) fn check_compiled_in(&self) -> Result<(), ConfigError> {
        if self.backend.is_compiled_in() { Ok(()) } else { Err(ConfigError::NotCompiledIn(self.backend)) }
    }

    /// A short description for messages: `duckdb ./strata.duckdb`, `memory`.
    #[cfg_attr(not(any(feature = "duckdb", feature = "memory")), allow(dead_code))]
    pub(crate) fn describe(&self) -> String {
        match self.backend {
            StorageBackend::DuckDb => format!("duckdb {}", self.duckdb.path.display()),
            StorageBackend::Memory => "memory".to_string(),
            StorageBackend::Neon => {
                format!("neon (schema {})", self.neon.schema.as_deref().unwrap_or("public"))
            }
        }
    }
}

/// Reads an on/off setting (unset means on): true/false, 1/0, yes/no, on/off.
fn parse_switch(name: &'static str, value: Option<&str>) -> Result<bool, ConfigError> {
    match value.map(str::trim) {
        None => Ok(true),
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Postgres(name, text.to_string(), "expected true or false".to_string())),
        },
    }
}

/// The stores a command works with.
#[derive(Debug, Clone)]
pub(crate) struct Stores {
    /// Market data.
    pub(crate) market: Arc<dyn MarketDataStore>,
    /// Evolution state (unused by today's commands; built so the stack is complete).
    pub(crate) evolution: Arc<dyn EvolutionStore>,
    /// What was built, e.g. `duckdb ./strata.duckdb`.
    pub(crate) description: String,
    /// Whether `strata worker` processes elsewhere can reach the evolution
    /// state (PostgreSQL), or only this process can (a DuckDB file, memory).
    pub(crate) shared: bool,
}

/// What a command does with the store, which decides how a DuckDB file is
/// opened (the other backends ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Only reads: the store must exist (a missing one is an input error and
    /// nothing is created, not even a folder), and a file this user cannot
    /// write is opened read-only.
    Read,
    /// Writes to a store that must exist already (a run in it is resumed,
    /// cancelled or worked on).
    WriteExisting,
    /// Writes, creating the store when it is missing and saying so on stderr.
    Write,
}

/// Builds the stores for `config`, opened for `access`. The only function that names adapters.
pub(crate) async fn build_stores(config: &StorageConfig, access: Access) -> anyhow::Result<Stores> {
    config.check_compiled_in()?;
    let stores = match config.backend {
        StorageBackend::DuckDb => duckdb_stores(config, access).await?,
        StorageBackend::Memory => memory_stores(config)?,
        StorageBackend::Neon => neon_stores(config).await?,
    };
    tracing::info!(market = ?stores.market, evolution = ?stores.evolution, "storage: {}", stores.description);
    Ok(stores)
}

#[cfg(feature = "duckdb")]
async fn duckdb_stores(config: &StorageConfig, access: Access) -> anyhow::Result<Stores> {
    use anyhow::Context as _;
    use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore, OpenMode};
    use strata_core::StoreError;

    use crate::exit::UsageError;

    let settings = &config.duckdb;
    let mode = match access {
        Access::Read => OpenMode::Read,
        Access::WriteExisting => OpenMode::Existing,
        Access::Write => OpenMode::Create,
    };
    let mut duckdb_config = DuckDbConfig::new(settings.path.clone()).with_mode(mode);
    if let Some(lock_wait) = settings.lock_wait {
        duckdb_config.lock_wait = lock_wait;
    }
    if settings.threads.is_some() {
        duckdb_config.threads = settings.threads;
    }
    let store = match DuckDbStore::open(duckdb_config).await {
        Ok(store) => store,
        Err(error @ StoreError::NotFound { .. }) => {
            let given = settings.path.display();
            return Err(UsageError(format!(
                "cannot open the DuckDB store {given}: {error}. Only commands that write create a store: check \
                 the path (--duckdb-path or STRATA_DUCKDB_PATH), or create the store, e.g. \
                 `strata --duckdb-path {given} ingest FILE`"
            ))
            .into());
        }
        Err(error @ StoreError::InvalidInput(_)) => {
            let given = settings.path.display();
            let extension = settings.path.extension().map(|extension| extension.to_string_lossy().to_ascii_lowercase());
            let data_file = extension.is_some_and(|extension| {
                ["csv", "tsv", "txt", "parquet", "pq", "json", "jsonl"].contains(&extension.as_str())
            });
            let hint = if data_file {
                format!(
                    ". --duckdb-path (STRATA_DUCKDB_PATH) names the store's DuckDB database, such as \
                     {DEFAULT_DUCKDB_PATH}; to load {given} into the store, use `strata ingest {given}`"
                )
            } else {
                String::new()
            };
            return Err(UsageError(format!("cannot open the DuckDB store {given}: {error}{hint}")).into());
        }
        Err(error) => {
            let hint = match (&error, settings.lock_wait) {
                (StoreError::Unavailable { .. }, None) => {
                    " (--lock-wait SECONDS or STRATA_DUCKDB_LOCK_WAIT waits for another process to let go)"
                }
                _ => "",
            };
            return Err(anyhow::Error::new(error))
                .with_context(|| format!("cannot open the DuckDB store {}{hint}", settings.path.display()));
        }
    };
    if store.created_file() {
        eprintln!("note: created a new DuckDB store at {}", store.path().display());
    }
    if store.is_read_only() {
        eprintln!("note: {} is read-only for this user, so it was opened read-only", store.path().display());
    }
    let store = Arc::new(store);
    Ok(Stores { market: store.clone(), evolution: store, description: config.describe(), shared: false })
}

#[cfg(not(feature = "duckdb"))]
async fn duckdb_stores(_config: &StorageConfig, _access: Access) -> anyhow::Result<Stores> {
    Err(ConfigError::NotCompiledIn(StorageBackend::DuckDb).into())
}

#[cfg(feature = "memory")]
fn memory_stores(config: &StorageConfig) -> anyhow::Result<Stores> {
    let store = Arc::new(strata_adapter_mock::MemoryStore::new());
    Ok(Stores { market: store.clone(), evolution: store, description: config.describe(), shared: false })
}

#[cfg(not(feature = "memory"))]
fn memory_stores(_config: &StorageConfig) -> anyhow::Result<Stores> {
    Err(ConfigError::NotCompiledIn(StorageBackend::Memory).into())
}

/// The neon backend's configuration from `DATABASE_URL` (or `NEON_DATABASE_URL`) and the settings.
#[cfg(feature = "neon")]
pub(crate) fn neon_config(config: &StorageConfig) -> anyhow::Result<strata_adapter_neon::NeonConfig> {
    use strata_adapter_neon::NeonConfig;

    let settings = &config.neon;
    // The composition root reads the environment; the adapter only takes settings.
    let url = std::env::var("DATABASE_URL").or_else(|_| std::env::var("NEON_DATABASE_URL")).map_err(|_| {
        strata_core::StoreError::invalid("STORAGE_BACKEND=neon needs DATABASE_URL (or NEON_DATABASE_URL)")
    })?;
    let mut neon = NeonConfig::from_url(&url)?;
    if std::env::var("STRATA_PG_POOLER").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        neon = neon.with_pooler(true);
    }
    if let Some(schema) = &settings.schema {
        neon = neon.with_schema(schema.clone()).map_err(|error| {
            ConfigError::Postgres("STRATA_PG_SCHEMA (--pg-schema)", schema.clone(), error.to_string())
        })?;
    }
    if let Some(max) = settings.max_connections {
        neon.max_connections = max.max(1);
    }
    if let Some(timeout) = settings.statement_timeout {
        neon.statement_timeout = timeout;
    }
    if let Some(budget) = settings.retry_budget {
        neon.retry_budget = budget;
    }
    if let Some(partition) = &settings.partition {
        neon.partition_interval = partition.parse().map_err(|_| {
            ConfigError::Postgres(
                "STRATA_PG_PARTITION (--pg-partition)",
                partition.clone(),
                "expected day, week, month or year".to_string(),
            )
        })?;
    }
    if let Some(interval) = &settings.chunk_interval {
        let parsed = strata_adapter_neon::config::parse_chunk_interval(interval).map_err(|_| {
            ConfigError::Postgres(
                "STRATA_PG_CHUNK_INTERVAL (--pg-chunk-interval)",
                interval.clone(),
                "expected a whole number and a unit, 1 minute to 36500 days: 90d, 2w, 12h, 30min or 3600s \
                 (no months or years: write 365d)"
                    .to_string(),
            )
        })?;
        neon.chunk_interval = Some(parsed);
    }
    neon.use_timescaledb = settings.timescaledb;
    neon.migrate_on_start = settings.migrate_on_start;
    Ok(neon)
}

#[cfg(feature = "neon")]
async fn neon_stores(config: &StorageConfig) -> anyhow::Result<Stores> {
    use anyhow::Context as _;
    use strata_adapter_neon::NeonStore;

    let neon = neon_config(config)?;
    let target = neon.redacted_url();
    let store = NeonStore::open(neon).await.with_context(|| format!("cannot open the neon store {target}"))?;
    let store = Arc::new(store);
    Ok(Stores {
        market: store.clone(),
        evolution: store,
        description: format!("{} {target}", config.describe()),
        shared: true,
    })
}

/// Applies pending schema migrations of the configured backend and describes the result.
pub(crate) async fn migrate(config: &StorageConfig) -> anyhow::Result<Vec<(String, String)>> {
    config.check_compiled_in()?;
    match config.backend {
        StorageBackend::Neon => migrate_neon(config).await,
        // DuckDB migrates every time it opens a file; memory has no schema.
        StorageBackend::DuckDb | StorageBackend::Memory => {
            let stores = build_stores(config, Access::Write).await?;
            Ok(vec![
                ("backend".to_string(), stores.description),
                ("migrations".to_string(), "applied when the store opens; nothing else to do".to_string()),
            ])
        }
    }
}

#[cfg(feature = "neon")]
async fn migrate_neon(config: &StorageConfig) -> anyhow::Result<Vec<(String, String)>> {
    use anyhow::Context as _;
    use strata_adapter_neon::NeonStore;

    let mut neon = neon_config(config)?;
    neon.migrate_on_start = true;
    let target = neon.redacted_url();
    let schema = neon.schema.clone();
    let store = NeonStore::open(neon).await.with_context(|| format!("cannot migrate {target}"))?;
    let version = store.migrate().await.with_context(|| format!("cannot migrate {target}"))?;
    Ok(vec![
        ("backend".to_string(), format!("neon {target}")),
        ("schema".to_string(), schema),
        ("migration_version".to_string(), version.to_string()),
        ("bars_layout".to_string(), store.layout_description()),
    ])
}

#[cfg(not(feature = "neon"))]
async fn migrate_neon(_config: &StorageConfig) -> anyhow::Result<Vec<(String, String)>> {
    Err(ConfigError::NotCompiledIn(StorageBackend::Neon).into())
}

#[cfg(not(feature = "neon"))]
async fn neon_stores(_config: &StorageConfig) -> anyhow::Result<Stores> {
    Err(ConfigError::NotCompiledIn(StorageBackend::Neon).into())
}

/// `text` with anything that looks like a password masked, by the neon
/// adapter's rules (`redact.rs` there), for what goes to stderr: a last line
/// of defence behind the adapter's own redaction, for messages (ours or a
/// library's) that quote a connection string.
#[cfg(feature = "neon")]
pub(crate) fn redacted(text: &str) -> String {
    strata_adapter_neon::redact_text(text)
}

/// Without the neon backend no connection string is read, so nothing needs masking.
#[cfg(not(feature = "neon"))]
pub(crate) fn redacted(text: &str) -> String {
    text.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(backend: Option<&str>) -> StorageArgs {
        StorageArgs { backend: backend.map(str::to_string), ..StorageArgs::default() }
    }

    #[test]
    fn backends_parse_case_insensitively() {
        assert_eq!("duckdb".parse::<StorageBackend>(), Ok(StorageBackend::DuckDb));
        assert_eq!(" DuckDB ".parse::<StorageBackend>(), Ok(StorageBackend::DuckDb));
        assert_eq!("memory".parse::<StorageBackend>(), Ok(StorageBackend::Memory));
    }

    #[test]
    fn unknown_backend_names_variable_value_and_accepted_values() {
        let message = "mongodb".parse::<StorageBackend>().unwrap_err().to_string();
        for needle in [
            "STORAGE_BACKEND",
            "\"mongodb\"",
            "duckdb",
            "memory",
            "neon (or postgres, postgresql, pg)",
            "efs, hybrid",
            "not in this build",
        ] {
            assert!(message.contains(needle), "{needle:?} missing from: {message}");
        }
        let planned = "EFS".parse::<StorageBackend>().unwrap_err().to_string();
        assert!(planned.contains("efs is planned"), "{planned}");
        assert_eq!("Neon".parse::<StorageBackend>(), Ok(StorageBackend::Neon));
        for alias in ["postgres", "PostgreSQL", " pg "] {
            assert_eq!(alias.parse::<StorageBackend>(), Ok(StorageBackend::Neon), "{alias}");
        }
    }

    #[test]
    fn defaults_and_flags() {
        let config = StorageConfig::from_env_and_flags(&args(None)).unwrap();
        assert_eq!(config.backend, StorageBackend::DuckDb);
        assert_eq!(config.duckdb.path, PathBuf::from(DEFAULT_DUCKDB_PATH));
        assert_eq!(config.describe(), "duckdb ./strata.duckdb");
        let memory = StorageConfig::from_env_and_flags(&args(Some("memory"))).unwrap();
        assert_eq!(memory.describe(), "memory");
        let waiting = StorageArgs { lock_wait: Some(2.5), ..StorageArgs::default() };
        assert_eq!(
            StorageConfig::from_env_and_flags(&waiting).unwrap().duckdb.lock_wait,
            Some(Duration::from_millis(2500))
        );
        let negative = StorageArgs { lock_wait: Some(-1.0), ..StorageArgs::default() };
        assert_eq!(StorageConfig::from_env_and_flags(&negative), Err(ConfigError::LockWait(-1.0)));
    }

    #[test]
    fn timescaledb_is_on_unless_switched_off() {
        let neon = |timescaledb: Option<&str>, chunks: Option<&str>| {
            let args = StorageArgs {
                pg_timescaledb: timescaledb.map(str::to_string),
                pg_chunk_interval: chunks.map(str::to_string),
                ..StorageArgs::default()
            };
            StorageConfig::from_env_and_flags(&args).map(|config| config.neon)
        };
        assert!(neon(None, None).unwrap().timescaledb);
        assert!(neon(Some("ON"), None).unwrap().timescaledb);
        assert!(!neon(Some(" false "), None).unwrap().timescaledb);
        assert!(!neon(Some("0"), None).unwrap().timescaledb);
        let message = neon(Some("maybe"), None).unwrap_err().to_string();
        assert!(message.contains("STRATA_PG_TIMESCALEDB") && message.contains("true or false"), "{message}");
        assert_eq!(neon(None, Some("30d")).unwrap().chunk_interval.as_deref(), Some("30d"));
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn memory_backend_builds_both_ports() {
        let config = StorageConfig::from_env_and_flags(&args(Some("memory"))).unwrap();
        let stores = build_stores(&config, Access::Read).await.unwrap();
        assert_eq!(stores.market.name(), "memory");
        assert_eq!(stores.evolution.name(), "memory");
    }
}
