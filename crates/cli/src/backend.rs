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
const PLANNED_BACKENDS: [&str; 3] = ["neon", "efs", "hybrid"];

/// A storage backend this binary knows how to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum StorageBackend {
    /// One embedded DuckDB file (the default).
    #[default]
    DuckDb,
    /// The in-memory store of `strata-adapter-mock`; gone when the process exits.
    Memory,
}

impl StorageBackend {
    /// Every variant, in the order they are listed to users.
    pub(crate) const ALL: [StorageBackend; 2] = [StorageBackend::DuckDb, StorageBackend::Memory];

    /// The name accepted in `STORAGE_BACKEND`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StorageBackend::DuckDb => "duckdb",
            StorageBackend::Memory => "memory",
        }
    }

    /// The cargo feature that compiles the backend in.
    fn feature(self) -> &'static str {
        match self {
            StorageBackend::DuckDb => "duckdb",
            StorageBackend::Memory => "memory",
        }
    }

    /// Whether this build contains the backend's adapter.
    pub(crate) fn is_compiled_in(self) -> bool {
        match self {
            StorageBackend::DuckDb => cfg!(feature = "duckdb"),
            StorageBackend::Memory => cfg!(feature = "memory"),
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

    /// Case-insensitive; surrounding whitespace is ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        StorageBackend::ALL
            .into_iter()
            .find(|backend| backend.name() == wanted)
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
        }
    }
}

impl std::error::Error for ConfigError {}

/// The accepted backend names, marking the ones compiled out of this build.
fn accepted_values() -> String {
    StorageBackend::ALL
        .into_iter()
        .map(|backend| {
            if backend.is_compiled_in() {
                backend.name().to_string()
            } else {
                format!("{} (not compiled in)", backend.name())
            }
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

/// Which store to build and how.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageConfig {
    /// The backend.
    pub(crate) backend: StorageBackend,
    /// Used when `backend` is `DuckDb`.
    pub(crate) duckdb: DuckDbSettings,
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
        Ok(StorageConfig { backend, duckdb: DuckDbSettings { path, lock_wait, threads: args.duckdb_threads } })
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
        }
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
}

/// Builds the stores for `config`. The only function that names adapters.
pub(crate) async fn build_stores(config: &StorageConfig) -> anyhow::Result<Stores> {
    config.check_compiled_in()?;
    let stores = match config.backend {
        StorageBackend::DuckDb => duckdb_stores(config).await?,
        StorageBackend::Memory => memory_stores(config)?,
    };
    tracing::info!(market = ?stores.market, evolution = ?stores.evolution, "storage: {}", stores.description);
    Ok(stores)
}

#[cfg(feature = "duckdb")]
async fn duckdb_stores(config: &StorageConfig) -> anyhow::Result<Stores> {
    use anyhow::Context as _;
    use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};

    let settings = &config.duckdb;
    let mut duckdb_config = DuckDbConfig::new(settings.path.clone());
    if let Some(lock_wait) = settings.lock_wait {
        duckdb_config.lock_wait = lock_wait;
    }
    if settings.threads.is_some() {
        duckdb_config.threads = settings.threads;
    }
    let store = match DuckDbStore::open(duckdb_config).await {
        Ok(store) => store,
        Err(error) => {
            let hint = match (&error, settings.lock_wait) {
                (strata_core::StoreError::Unavailable { .. }, None) => {
                    " (--lock-wait SECONDS or STRATA_DUCKDB_LOCK_WAIT waits for another process to let go)"
                }
                _ => "",
            };
            return Err(anyhow::Error::new(error))
                .with_context(|| format!("cannot open the DuckDB store {}{hint}", settings.path.display()));
        }
    };
    let store = Arc::new(store);
    Ok(Stores { market: store.clone(), evolution: store, description: config.describe() })
}

#[cfg(not(feature = "duckdb"))]
async fn duckdb_stores(_config: &StorageConfig) -> anyhow::Result<Stores> {
    Err(ConfigError::NotCompiledIn(StorageBackend::DuckDb).into())
}

#[cfg(feature = "memory")]
fn memory_stores(config: &StorageConfig) -> anyhow::Result<Stores> {
    let store = Arc::new(strata_adapter_mock::MemoryStore::new());
    Ok(Stores { market: store.clone(), evolution: store, description: config.describe() })
}

#[cfg(not(feature = "memory"))]
fn memory_stores(_config: &StorageConfig) -> anyhow::Result<Stores> {
    Err(ConfigError::NotCompiledIn(StorageBackend::Memory).into())
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
        let message = "postgres".parse::<StorageBackend>().unwrap_err().to_string();
        for needle in ["STORAGE_BACKEND", "\"postgres\"", "duckdb", "memory", "neon, efs, hybrid", "not in this build"]
        {
            assert!(message.contains(needle), "{needle:?} missing from: {message}");
        }
        let planned = "Neon".parse::<StorageBackend>().unwrap_err().to_string();
        assert!(planned.contains("neon is planned"), "{planned}");
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

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn memory_backend_builds_both_ports() {
        let config = StorageConfig::from_env_and_flags(&args(Some("memory"))).unwrap();
        let stores = build_stores(&config).await.unwrap();
        assert_eq!(stores.market.name(), "memory");
        assert_eq!(stores.evolution.name(), "memory");
    }
}
