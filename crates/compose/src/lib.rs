//! The composition root: the only crate that reads the storage settings
//! (`STORAGE_BACKEND`, `STRATA_DUCKDB_PATH`, ... through clap), names concrete
//! adapters and hands out the stores as `Arc<dyn Port>`.
//!
//! Each adapter sits behind a cargo feature of this crate (`duckdb`,
//! `memory`). A backend that is compiled out still parses, so the error says
//! "not in this build" instead of "unknown backend".
//!
//! The market store of every plain backend (duckdb, memory, neon, efs, and
//! the read-only seeds sources of `strata copy`) is handed out inside a
//! transparent `MeteredStore` labelled with the backend's name, so every
//! backend records `strata_store_*` metrics; the hybrid stack meters itself.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use strata_core::{EvolutionStore, MarketDataStore};

pub mod args;
pub mod doctor;
pub mod snapshot;

use crate::args::StorageArgs;

/// The environment variable that selects the backend.
pub const BACKEND_VARIABLE: &str = "STORAGE_BACKEND";

/// DuckDB's memory limit for commands that only read, unless `--duckdb-memory-limit` says otherwise.
pub const READ_MEMORY_LIMIT: &str = "256MB";

/// The default DuckDB file.
pub const DEFAULT_DUCKDB_PATH: &str = "./strata.duckdb";

/// Backends named in the design that this build does not have yet.
const PLANNED_BACKENDS: [&str; 0] = [];

/// A storage backend this binary knows how to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageBackend {
    /// One embedded DuckDB file (the default).
    #[default]
    DuckDb,
    /// The in-memory store of `strata-adapter-mock`; gone when the process exits.
    Memory,
    /// PostgreSQL / Neon at `DATABASE_URL`.
    Neon,
    /// A Hive-partitioned Parquet dataset under `STRATA_EFS_ROOT` (market
    /// data only: evolution state comes from PostgreSQL when `DATABASE_URL`
    /// is set, else from the DuckDB file).
    Efs,
    /// A primary (neon, or efs: `STRATA_HYBRID_PRIMARY`) with the DuckDB file
    /// as its local cache and a durable write journal beside it.
    Hybrid,
}

impl StorageBackend {
    /// Every variant, in the order they are listed to users.
    pub const ALL: [StorageBackend; 5] = [
        StorageBackend::DuckDb,
        StorageBackend::Memory,
        StorageBackend::Neon,
        StorageBackend::Efs,
        StorageBackend::Hybrid,
    ];

    /// The name accepted in `STORAGE_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            StorageBackend::DuckDb => "duckdb",
            StorageBackend::Memory => "memory",
            StorageBackend::Neon => "neon",
            StorageBackend::Efs => "efs",
            StorageBackend::Hybrid => "hybrid",
        }
    }

    /// The cargo feature that compiles the backend in.
    fn feature(self) -> &'static str {
        self.name()
    }

    /// Other names accepted for the backend in `STORAGE_BACKEND` / `--backend`.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            StorageBackend::DuckDb | StorageBackend::Memory | StorageBackend::Efs | StorageBackend::Hybrid => &[],
            StorageBackend::Neon => &["postgres", "postgresql", "pg"],
        }
    }

    /// Whether this build contains the backend's adapter.
    pub fn is_compiled_in(self) -> bool {
        match self {
            StorageBackend::DuckDb => cfg!(feature = "duckdb"),
            StorageBackend::Memory => cfg!(feature = "memory"),
            StorageBackend::Neon => cfg!(feature = "neon"),
            StorageBackend::Efs => cfg!(feature = "efs"),
            StorageBackend::Hybrid => cfg!(feature = "hybrid"),
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
pub enum ConfigError {
    /// `STORAGE_BACKEND` / `--backend` names no backend.
    UnknownBackend {
        /// The value received.
        value: String,
    },
    /// The backend exists but its adapter was compiled out.
    NotCompiledIn(StorageBackend),
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
                if !PLANNED_BACKENDS.is_empty() {
                    write!(f, " (planned, not in this build: {})", PLANNED_BACKENDS.join(", "))?;
                }
                Ok(())
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

/// Which stores to build and how: the backends, and the storage options as
/// clap read and checked them (flags merged with the environment).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The market-data backend (`STORAGE_BACKEND`).
    pub backend: StorageBackend,
    /// The evolution-state backend: `backend`, except for efs (market data
    /// only), which pairs with PostgreSQL when `DATABASE_URL` is set (many
    /// machines), else with the DuckDB file (one machine).
    pub evolution: StorageBackend,
    /// Every backend's options.
    pub args: StorageArgs,
    /// A PostgreSQL URL given on the command line (a store URL of `strata
    /// copy`), used instead of `DATABASE_URL`.
    pub database_url: Option<String>,
    /// Whether a hybrid store opened for writing replays its journal in the
    /// background (off for `strata sync`, which drains in the foreground).
    pub background_replay: bool,
}

impl StorageConfig {
    /// Chooses the backends; clap has already merged the environment with the
    /// flags (flags winning) and checked each value.
    pub fn from_env_and_flags(args: &StorageArgs) -> Result<Self, ConfigError> {
        let backend = match args.backend.as_deref() {
            None => StorageBackend::default(),
            Some(text) => text.parse()?,
        };
        let evolution = match backend {
            StorageBackend::Efs if database_url().is_some() => StorageBackend::Neon,
            StorageBackend::Efs => StorageBackend::DuckDb,
            other => other,
        };
        Ok(StorageConfig { backend, evolution, args: args.clone(), database_url: None, background_replay: true })
    }

    /// The DuckDB file (`--duckdb-path`, default `./strata.duckdb`).
    pub fn duckdb_path(&self) -> PathBuf {
        self.args.duckdb.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DUCKDB_PATH))
    }

    /// Fails early when a chosen backend is not in this build.
    pub fn check_compiled_in(&self) -> Result<(), ConfigError> {
        for backend in [self.backend, self.evolution] {
            if !backend.is_compiled_in() {
                return Err(ConfigError::NotCompiledIn(backend));
            }
        }
        Ok(())
    }

    /// A short description for messages: `duckdb ./strata.duckdb`, `memory`.
    #[cfg_attr(not(any(feature = "duckdb", feature = "memory")), allow(dead_code))]
    pub fn describe(&self) -> String {
        match self.backend {
            StorageBackend::DuckDb => format!("duckdb {}", self.duckdb_path().display()),
            StorageBackend::Memory => "memory".to_string(),
            StorageBackend::Neon => format!("neon (schema {})", self.args.pg.schema.as_deref().unwrap_or("public")),
            StorageBackend::Efs => match &self.args.efs.root {
                Some(root) => format!("efs {}", root.display()),
                None => "efs (no root)".to_string(),
            },
            StorageBackend::Hybrid => format!("hybrid (cache {})", self.duckdb_path().display()),
        }
    }
}

/// The stores a command works with.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Market data.
    pub market: Arc<dyn MarketDataStore>,
    /// Evolution state (unused by today's commands; built so the stack is complete).
    pub evolution: Arc<dyn EvolutionStore>,
    /// What was built, e.g. `duckdb ./strata.duckdb`.
    pub description: String,
    /// When the evolution state lives in another backend than the market
    /// data (efs with DuckDB or PostgreSQL), that backend as a market-data
    /// store, so `strata health` reports both parts.
    pub evolution_part: Option<Arc<dyn MarketDataStore>>,
    /// Serves the stores to other processes while the command runs.
    _serving: Vec<Arc<dyn std::fmt::Debug + Send + Sync>>,
    /// Other processes on this machine reach the evolution state.
    local_reach: bool,
    /// The hybrid stack, when the backend is hybrid.
    pub hybrid: Option<Arc<HybridHandle>>,
}

impl Stores {
    /// The health of every part: the market store's report, or, when the
    /// evolution state is elsewhere, a report with both as components.
    pub async fn health(&self) -> strata_core::Result<strata_core::HealthReport> {
        use strata_core::{HealthReport, HealthStatus};

        let market = self.market.health().await?;
        let Some(part) = &self.evolution_part else { return Ok(market) };
        let evolution = part.health().await.unwrap_or_else(|error| {
            HealthReport::new(part.to_string(), HealthStatus::Down).with_detail("error", error.to_string())
        });
        let parts = vec![("market_data", market), ("evolution_state", evolution)];
        Ok(HealthReport::of_parts(format!("{}+{}", self.market, part), parts))
    }

    /// Whether `strata worker` processes can reach the evolution state: from
    /// any host (PostgreSQL), or from this one through the socket this
    /// process serves a DuckDB file on; not an in-memory store.
    pub fn shared(&self) -> bool {
        self.evolution.capabilities().shared_across_hosts || self.local_reach
    }
}

/// What a command does with the store, which decides how a DuckDB file is
/// opened (the other backends ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
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

/// What one opened backend serves: a DuckDB file or a PostgreSQL pool serves
/// both ports; a backend with market data only (Parquet on EFS) has no
/// evolution store.
#[derive(Debug, Clone)]
struct Opened {
    market: Option<Arc<dyn MarketDataStore>>,
    evolution: Option<Arc<dyn EvolutionStore>>,
    description: String,
    /// Kept alive while the command runs: what serves this process's stores
    /// to other `strata` processes (a DuckDB file's socket).
    serving: Option<Arc<dyn std::fmt::Debug + Send + Sync>>,
    /// Whether other processes on this machine reach the same stores (this
    /// one serves them, or goes through the process that does).
    local_reach: bool,
    /// The hybrid stack, for `strata sync` (it also holds the background replayer).
    hybrid: Option<Arc<HybridHandle>>,
}

/// The hybrid stack's parts a command may need, kept alive with the stores.
#[derive(Debug)]
pub struct HybridHandle {
    /// The built stack (its replayer runs while this lives).
    pub stack: strata_hybrid::stack::HybridStack,
}

/// The backends opened so far, so that the two ports built from one backend
/// share one file handle or connection pool.
#[derive(Debug, Default)]
struct OpenBackends(Vec<(StorageBackend, Opened)>);

impl OpenBackends {
    /// Opens `backend` once; later calls return the same stores.
    async fn open(
        &mut self,
        backend: StorageBackend,
        config: &StorageConfig,
        access: Access,
    ) -> anyhow::Result<Opened> {
        if let Some((_, opened)) = self.0.iter().find(|(open, _)| *open == backend) {
            return Ok(opened.clone());
        }
        let opened = match backend {
            #[cfg(feature = "duckdb")]
            StorageBackend::DuckDb => duckdb_stores(config, access).await?,
            #[cfg(feature = "memory")]
            StorageBackend::Memory => memory_stores(config),
            #[cfg(feature = "neon")]
            StorageBackend::Neon => neon_stores(config).await?,
            #[cfg(feature = "efs")]
            StorageBackend::Efs => efs_stores(config).await?,
            #[cfg(feature = "hybrid")]
            StorageBackend::Hybrid => Box::pin(hybrid_stores(config, access, self)).await?,
            #[allow(unreachable_patterns)]
            _ => return Err(ConfigError::NotCompiledIn(backend).into()),
        };
        self.0.push((backend, opened.clone()));
        Ok(opened)
    }
}

/// Builds the market-data store of `config.backend`.
async fn build_market_store(
    config: &StorageConfig,
    access: Access,
    open: &mut OpenBackends,
) -> anyhow::Result<(Arc<dyn MarketDataStore>, String)> {
    let opened = open.open(config.backend, config, access).await?;
    let market = opened.market.ok_or_else(|| anyhow::anyhow!("the {} backend holds no market data", config.backend))?;
    Ok((metered(config.backend, market), opened.description))
}

/// The market store of a plain backend, metered under the backend's name
/// (`strata_store_*{store="duckdb"}`: operation durations, rows written and
/// read, errors by kind). Transparent: it prints and reports health as the
/// store it wraps, so messages, `strata health` and its JSON stay as they
/// were. The hybrid stack is returned as it is: it meters itself (`hybrid`).
fn metered(backend: StorageBackend, market: Arc<dyn MarketDataStore>) -> Arc<dyn MarketDataStore> {
    match backend {
        StorageBackend::Hybrid => market,
        StorageBackend::DuckDb | StorageBackend::Memory | StorageBackend::Neon | StorageBackend::Efs => {
            metered_as(backend.name(), market)
        }
    }
}

/// `market` metered (transparently) under the `store` label `label`.
fn metered_as(label: &'static str, market: Arc<dyn MarketDataStore>) -> Arc<dyn MarketDataStore> {
    Arc::new(strata_hybrid::metered::MeteredStore::transparent(market, label))
}

/// Builds the evolution store of `config.evolution`.
async fn build_evolution_store(
    config: &StorageConfig,
    access: Access,
    open: &mut OpenBackends,
) -> anyhow::Result<(Arc<dyn EvolutionStore>, String)> {
    let opened = open.open(config.evolution, config, access).await?;
    let evolution = opened.evolution.ok_or_else(|| {
        anyhow::anyhow!("the {} backend holds no evolution state; pair it with duckdb or neon", config.evolution)
    })?;
    Ok((evolution, opened.description))
}

/// The market-data store alone, for the commands that touch no evolution
/// state (ingest, query, summary, digest, generate): an efs dataset is read
/// without opening, or creating, the DuckDB file of its evolution state.
#[derive(Debug, Clone)]
pub struct MarketStores {
    /// Market data.
    pub market: Arc<dyn MarketDataStore>,
    /// What was built, e.g. `duckdb ./strata.duckdb`.
    pub description: String,
    /// Serves the store to other processes while the command runs.
    _serving: Option<Arc<dyn std::fmt::Debug + Send + Sync>>,
    /// The hybrid stack, when the backend is hybrid (its replayer runs while this lives).
    pub hybrid: Option<Arc<HybridHandle>>,
}

/// Builds the market-data store of `config`, opened for `access`.
pub async fn build_market(config: &StorageConfig, access: Access) -> anyhow::Result<MarketStores> {
    if !config.backend.is_compiled_in() {
        return Err(ConfigError::NotCompiledIn(config.backend).into());
    }
    let mut open = OpenBackends::default();
    let (market, description) = build_market_store(config, access, &mut open).await?;
    tracing::info!(market = %market, "storage: {description}");
    let hybrid = open.0.iter().find_map(|(_, opened)| opened.hybrid.clone());
    let serving = open.0.into_iter().find_map(|(_, opened)| opened.serving);
    Ok(MarketStores { market, description, _serving: serving, hybrid })
}

/// Builds the stores for `config`, opened for `access`: the market-data
/// store and the evolution store, each from its own backend (the same one
/// today). The only function that names adapters.
pub async fn build_stores(config: &StorageConfig, access: Access) -> anyhow::Result<Stores> {
    config.check_compiled_in()?;
    let mut open = OpenBackends::default();
    let (market, market_description) = build_market_store(config, access, &mut open).await?;
    let (evolution, evolution_description) = build_evolution_store(config, access, &mut open).await?;
    let (description, evolution_part) = if config.evolution == config.backend {
        (market_description, None)
    } else {
        // Already open: the evolution backend's own market face, for `health`.
        let part = open.open(config.evolution, config, access).await?.market;
        (format!("{market_description} (evolution state: {evolution_description})"), part)
    };
    let local_reach = open.0.iter().any(|(backend, opened)| *backend == config.evolution && opened.local_reach);
    let hybrid = open.0.iter().find_map(|(_, opened)| opened.hybrid.clone());
    let serving = open.0.into_iter().filter_map(|(_, opened)| opened.serving).collect();
    let stores = Stores { market, evolution, description, evolution_part, _serving: serving, local_reach, hybrid };
    tracing::info!(market = %stores.market, evolution = %stores.evolution, "storage: {}", stores.description);
    Ok(stores)
}

#[cfg(feature = "duckdb")]
async fn duckdb_stores(config: &StorageConfig, access: Access) -> anyhow::Result<Opened> {
    use anyhow::Context as _;
    use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore, OpenMode};
    use strata_core::StoreError;

    use crate::UsageError;

    let settings = &config.args.duckdb;
    let path = config.duckdb_path();
    // DuckDB lets one process hold a file; while a strata process does, it
    // serves the file's stores on a socket beside it, and this one goes through it.
    let socket = strata_store_socket::socket_path_for(&path);
    if socket.exists()
        && let Some(opened) = through_socket(config, &socket, 1).await
    {
        return Ok(opened);
    }
    let mode = match access {
        Access::Read => OpenMode::Read,
        Access::WriteExisting => OpenMode::Existing,
        Access::Write => OpenMode::Create,
    };
    let mut duckdb_config = DuckDbConfig::new(path.clone()).with_mode(mode);
    if let Some(lock_wait) = settings.lock_wait {
        duckdb_config.lock_wait = lock_wait;
    }
    if settings.threads.is_some() {
        duckdb_config.threads = settings.threads;
    }
    // A command that only reads caps DuckDB's cache of the file (and spills a sort beyond it to
    // `<file>.tmp/`): without it, `strata query` of 10M bars kept 580 MiB resident, reading
    // every block into DuckDB's cache; with it 370 MiB, and no slower. Writers keep DuckDB's
    // default: a 256MB cap made a 10M-bar ingest 12-18% slower.
    duckdb_config.memory_limit =
        settings.memory_limit.clone().or_else(|| (access == Access::Read).then(|| READ_MEMORY_LIMIT.to_string()));
    let store = match DuckDbStore::open(duckdb_config).await {
        Ok(store) => store,
        Err(error @ StoreError::NotFound { .. }) => {
            let given = path.display();
            return Err(UsageError(format!(
                "cannot open the DuckDB store {given}: {error}. Only commands that write create a store: check \
                 the path (--duckdb-path or STRATA_DUCKDB_PATH), or create the store, e.g. \
                 `strata --duckdb-path {given} ingest FILE`"
            ))
            .into());
        }
        Err(error @ StoreError::InvalidInput(_)) => {
            let given = path.display();
            let extension = path.extension().map(|extension| extension.to_string_lossy().to_ascii_lowercase());
            let data_file = extension.is_some_and(|extension| {
                ["csv", "tsv", "txt", "parquet", "pq", "json", "jsonl"].contains(&extension.as_str())
            });
            let hint = if data_file {
                format!(
                    ". --duckdb-path (STRATA_DUCKDB_PATH) names the store's DuckDB database, such as \
                     {DEFAULT_DUCKDB_PATH}; to load {given} into the store, use `strata ingest {given}`"
                )
            } else {
                // Say where the path came from, as the not-found message above does.
                " (--duckdb-path or STRATA_DUCKDB_PATH)".to_string()
            };
            return Err(UsageError(format!("cannot open the DuckDB store {given}: {error}{hint}")).into());
        }
        Err(error) => {
            // The holder may have opened the file a moment ago and not be serving yet.
            if strata_adapter_duckdb::is_locked(&error)
                && let Some(opened) = through_socket(config, &socket, 20).await
            {
                return Ok(opened);
            }
            let hint = if strata_adapter_duckdb::is_locked(&error) && settings.lock_wait.is_none() {
                " (--lock-wait SECONDS or STRATA_DUCKDB_LOCK_WAIT waits for another process to let go)"
            } else {
                ""
            };
            return Err(anyhow::Error::new(error))
                .with_context(|| format!("cannot open the DuckDB store {}{hint}", path.display()));
        }
    };
    if store.created_file() {
        eprintln!("note: created a new DuckDB store at {}", store.path().display());
    }
    if store.is_read_only() {
        eprintln!("note: {} is read-only for this user, so it was opened read-only", store.path().display());
    }
    let store = Arc::new(store);
    // A command that writes may hold the file for long (evolve, worker, a big
    // ingest): other strata processes reach the store through it meanwhile.
    let serving = if access == Access::Read || store.is_read_only() {
        None
    } else {
        match strata_store_socket::SocketServer::bind(&socket, store.clone(), store.clone()).await {
            Ok(server) => Some(Arc::new(server) as Arc<dyn std::fmt::Debug + Send + Sync>),
            Err(error) => {
                tracing::warn!("other strata processes cannot reach {} while this one runs: {error}", path.display());
                None
            }
        }
    };
    let local_reach = serving.is_some();
    Ok(Opened {
        market: Some(store.clone()),
        evolution: Some(store),
        description: config.describe(),
        serving,
        local_reach,
        hybrid: None,
    })
}

/// The stores of a DuckDB file that another strata process holds, through
/// the socket it serves them on; `None` when no process answers there after
/// `attempts` tries 100 ms apart (a socket left by a killed process is stale).
#[cfg(feature = "duckdb")]
async fn through_socket(config: &StorageConfig, socket: &std::path::Path, attempts: u32) -> Option<Opened> {
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if let Ok(client) = strata_store_socket::SocketStore::connect(socket).await {
            let client = Arc::new(client);
            let description = format!("{} (through the strata process that holds it)", config.describe());
            let (market, evolution) = (Some(client.clone() as Arc<dyn MarketDataStore>), Some(client as _));
            return Some(Opened { market, evolution, description, serving: None, local_reach: true, hybrid: None });
        }
    }
    None
}

#[cfg(feature = "memory")]
fn memory_stores(config: &StorageConfig) -> Opened {
    let store = Arc::new(strata_adapter_mock::MemoryStore::new());
    Opened {
        market: Some(store.clone()),
        evolution: Some(store),
        description: config.describe(),
        serving: None,
        local_reach: false,
        hybrid: None,
    }
}

/// The neon backend's configuration from `DATABASE_URL` (or `NEON_DATABASE_URL`) and the settings.
#[cfg(feature = "neon")]
pub fn neon_config(config: &StorageConfig) -> anyhow::Result<strata_adapter_neon::NeonConfig> {
    use strata_adapter_neon::NeonConfig;

    let settings = &config.args.pg;
    // The composition root reads the environment; the adapter only takes settings.
    let url = config.database_url.clone().or_else(database_url).ok_or_else(|| {
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
    neon.use_timescaledb = settings.timescaledb.unwrap_or(true);
    neon.migrate_on_start = settings.migrate.unwrap_or(true);
    Ok(neon)
}

#[cfg(feature = "neon")]
async fn neon_stores(config: &StorageConfig) -> anyhow::Result<Opened> {
    use anyhow::Context as _;
    use strata_adapter_neon::NeonStore;

    let neon = neon_config(config)?;
    let target = neon.redacted_url();
    let store = NeonStore::open(neon).await.with_context(|| format!("cannot open the neon store {target}"))?;
    let store = Arc::new(store);
    Ok(Opened {
        market: Some(store.clone()),
        evolution: Some(store),
        description: format!("{} {target}", config.describe()),
        serving: None,
        local_reach: true,
        hybrid: None,
    })
}

/// The hybrid stack: the primary (`STRATA_HYBRID_PRIMARY`: neon, the
/// default, or efs) behind a lazy opener, so the stack starts while it is
/// down; the DuckDB file as the cache; the journal and the cache's coverage
/// in `<duckdb file>.hybrid/`. Evolution state lives in the primary when it
/// is PostgreSQL and answers now; else in the DuckDB file (one machine).
#[cfg(feature = "hybrid")]
async fn hybrid_stores(config: &StorageConfig, access: Access, open: &mut OpenBackends) -> anyhow::Result<Opened> {
    use std::time::Duration;

    use strata_core::policy::Backoff;
    use strata_hybrid::lazy::LazyStore;
    use strata_hybrid::stack::{HybridConfig, HybridStack};

    let settings = &config.args.hybrid;
    let primary_kind = settings.primary.as_deref().unwrap_or("neon").trim().to_ascii_lowercase();
    // Settings are checked before anything is opened: a wrong one creates no cache file.
    #[cfg(feature = "neon")]
    if matches!(primary_kind.as_str(), "neon" | "postgres" | "postgresql" | "pg") {
        neon_config(config).map_err(|error| {
            crate::UsageError(format!("STORAGE_BACKEND=hybrid with its default primary (neon): {error:#}"))
        })?;
    }
    if primary_kind == "efs" && config.args.efs.root.is_none() {
        return Err(crate::UsageError(
            "STRATA_HYBRID_PRIMARY=efs needs the dataset's root directory: --efs-root DIR or STRATA_EFS_ROOT"
                .to_string(),
        )
        .into());
    }
    let cache = open.open(StorageBackend::DuckDb, config, Access::Write).await?;
    let (Some(cache_market), Some(cache_evolution)) = (cache.market.clone(), cache.evolution.clone()) else {
        anyhow::bail!("the hybrid cache (the DuckDB file) could not be opened");
    };
    let retry_after = Duration::from_secs(2);
    let (primary, evolution, primary_description): (Arc<dyn MarketDataStore>, Arc<dyn EvolutionStore>, String) =
        match primary_kind.as_str() {
            #[cfg(feature = "neon")]
            "neon" | "postgres" | "postgresql" | "pg" => {
                let mut neon = neon_config(config)?;
                // Fail over within a second: the journal takes the writes meanwhile.
                neon.retry_budget = config.args.pg.retry_budget.unwrap_or(Duration::from_millis(500));
                neon.acquire_timeout = neon.acquire_timeout.min(Duration::from_millis(750));
                let target = neon.redacted_url();
                let capabilities = strata_adapter_neon::NeonStore::CAPABILITIES;
                let opened = strata_adapter_neon::NeonStore::open(neon.clone()).await.map(Arc::new);
                let evolution: Arc<dyn EvolutionStore> = match &opened {
                    Ok(store) => store.clone(),
                    Err(error) => {
                        eprintln!(
                            "warning: the hybrid primary {target} is unavailable ({error}); bars are read from and \
                             journaled in the cache, and evolution state is kept in the DuckDB file on this machine"
                        );
                        cache_evolution.clone()
                    }
                };
                let first = opened.ok();
                let primary = LazyStore::new("neon", capabilities, retry_after, move || {
                    let (first, neon) = (first.clone(), neon.clone());
                    Box::pin(async move {
                        match first {
                            Some(store) => Ok(store as Arc<dyn MarketDataStore>),
                            None => Ok(Arc::new(strata_adapter_neon::NeonStore::open(neon).await?) as _),
                        }
                    })
                });
                (Arc::new(primary), evolution, format!("neon {target}"))
            }
            #[cfg(feature = "efs")]
            "efs" => {
                // Opened lazily too: an unmounted share is an outage the journal rides out.
                let root = config.args.efs.root.clone().ok_or_else(|| {
                    crate::UsageError(
                        "STRATA_HYBRID_PRIMARY=efs needs the dataset's root directory: --efs-root DIR or STRATA_EFS_ROOT"
                            .to_string(),
                    )
                })?;
                let description = format!("efs {}", root.display());
                let capabilities = strata_adapter_efs::CAPABILITIES;
                let primary = LazyStore::new("efs", capabilities, retry_after, move || {
                    let root = root.clone();
                    Box::pin(async move {
                        let config = strata_adapter_efs::EfsConfig::new(root);
                        Ok(Arc::new(strata_adapter_efs::EfsStore::open(config).await?) as Arc<dyn MarketDataStore>)
                    })
                });
                (Arc::new(primary), cache_evolution.clone(), description)
            }
            other => {
                return Err(crate::UsageError(format!(
                    "STRATA_HYBRID_PRIMARY (--hybrid-primary) is {other:?}; accepted: neon (default) or efs{}",
                    if cfg!(all(feature = "neon", feature = "efs")) { "" } else { " (when compiled in)" }
                ))
                .into());
            }
        };
    let state_dir = settings.state_dir.clone().unwrap_or_else(|| {
        let mut name = config.duckdb_path().into_os_string();
        name.push(".hybrid");
        PathBuf::from(name)
    });
    let mut hybrid = HybridConfig::new(state_dir);
    // Saturating: `--hybrid-hot-days 18446744073709551615` means "always hot", not an overflow.
    if let Some(days) = settings.hot_days {
        hybrid.routing.hot = Duration::from_secs(days.saturating_mul(86_400));
    }
    if let Some(days) = settings.warm_days {
        hybrid.routing.warm = Duration::from_secs(days.saturating_mul(86_400)).max(hybrid.routing.hot);
    }
    if let Some(timeout) = settings.primary_timeout {
        hybrid.primary_timeout = timeout;
    }
    if primary_kind == "efs" {
        // The efs adapter does not retry by itself.
        hybrid.retry = Some(Backoff::new(Duration::from_millis(100), Duration::from_secs(1), Duration::from_secs(3)));
    }
    let stack = HybridStack::build(primary, cache_market, &hybrid)?;
    if access != Access::Read && config.background_replay {
        stack.start_replayer(hybrid.replay_backoff);
    }
    let market = stack.store.clone();
    Ok(Opened {
        market: Some(market),
        evolution: Some(evolution),
        description: format!("hybrid: {primary_description}, cached in {}", config.duckdb_path().display()),
        serving: cache.serving.clone(),
        local_reach: cache.local_reach,
        hybrid: Some(Arc::new(HybridHandle { stack })),
    })
}

/// The PostgreSQL URL: `DATABASE_URL`, else `NEON_DATABASE_URL`, when set and not blank.
fn database_url() -> Option<String> {
    ["DATABASE_URL", "NEON_DATABASE_URL"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|url| !url.trim().is_empty()))
}

/// Opens the market-data store named by a store URL (`strata copy`/`verify`):
/// `duckdb:PATH`, `postgres://…`/`postgresql://…`, `efs:DIR` or `memory:`,
/// with the other storage settings as configured. A DuckDB file or a
/// PostgreSQL schema in the Python system's layout (`ohlcv_bars` with a
/// `timestamp` column) opens as a read-only source.
pub async fn open_url(text: &str, access: Access, storage: &StorageConfig) -> anyhow::Result<MarketStores> {
    use crate::UsageError;

    let mut config = storage.clone();
    let trimmed = text.trim();
    if let Some(path) = trimmed.strip_prefix("duckdb:") {
        let path = PathBuf::from(path);
        #[cfg(feature = "duckdb")]
        if path.is_file() && strata_adapter_duckdb::seeds::is_seeds_layout(&path)? {
            let source = strata_adapter_duckdb::seeds::SeedsDuckDbSource::open(&path).await?;
            let description = format!("duckdb-seeds {}", path.display());
            let market = metered_as("duckdb-seeds", Arc::new(source));
            return Ok(MarketStores { market, description, _serving: None, hybrid: None });
        }
        config.backend = StorageBackend::DuckDb;
        config.args.duckdb.path = Some(path);
    } else if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        // `?schema=NAME` picks the schema of this store alone (two schemas of one server in one command).
        let (trimmed, schema) = split_schema_parameter(trimmed);
        if let Some(schema) = schema {
            config.args.pg.schema = Some(schema);
        }
        let trimmed = trimmed.as_str();
        config.backend = StorageBackend::Neon;
        config.database_url = Some(trimmed.to_string());
        #[cfg(feature = "neon")]
        {
            let schema = config.args.pg.schema.clone().unwrap_or_else(|| "public".to_string());
            if strata_adapter_neon::seeds::detect(trimmed, &schema).await? {
                let source = strata_adapter_neon::seeds::SeedsPgSource::open(trimmed, &schema).await?;
                let description = format!("neon-seeds {} (schema {schema})", strata_adapter_neon::redact_text(trimmed));
                let market = metered_as("neon-seeds", Arc::new(source));
                return Ok(MarketStores { market, description, _serving: None, hybrid: None });
            }
        }
    } else if let Some(root) = trimmed.strip_prefix("efs:") {
        config.backend = StorageBackend::Efs;
        config.args.efs.root = Some(PathBuf::from(root));
    } else if trimmed == "memory:" {
        config.backend = StorageBackend::Memory;
    } else {
        return Err(UsageError(format!(
            "{text:?} is not a store URL; use duckdb:PATH, postgres://USER@HOST/DB (or postgresql://), efs:DIR or memory:"
        ))
        .into());
    }
    config.evolution = config.backend;
    build_market(&config, access).await
}

/// A store URL without its `schema=NAME` query parameter, and that name.
fn split_schema_parameter(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_string(), None) };
    let mut schema = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("schema=") {
            Some(name) => {
                schema = Some(name.to_string());
                false
            }
            None => true,
        })
        .collect();
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    (rest, schema)
}

/// Applies pending schema migrations of the configured backend and describes the result.
pub async fn migrate(config: &StorageConfig) -> anyhow::Result<Vec<(String, String)>> {
    config.check_compiled_in()?;
    let hybrid_on_neon = config.backend == StorageBackend::Hybrid
        && config.args.hybrid.primary.as_deref().is_none_or(|primary| primary.trim().eq_ignore_ascii_case("neon"));
    match config.evolution {
        StorageBackend::Neon => migrate_neon(config).await,
        StorageBackend::Hybrid if hybrid_on_neon => migrate_neon(config).await,
        // DuckDB migrates every time it opens a file; memory and efs have no schema.
        StorageBackend::DuckDb | StorageBackend::Memory | StorageBackend::Efs | StorageBackend::Hybrid => {
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

#[cfg(feature = "efs")]
async fn efs_stores(config: &StorageConfig) -> anyhow::Result<Opened> {
    use anyhow::Context as _;
    use strata_adapter_efs::{EfsConfig, EfsStore};

    let root = config.args.efs.root.clone().ok_or_else(|| {
        crate::UsageError(
            "STORAGE_BACKEND=efs needs the dataset's root directory: --efs-root DIR or STRATA_EFS_ROOT".to_string(),
        )
    })?;
    let store = EfsStore::open(EfsConfig::new(root.clone()))
        .await
        .with_context(|| format!("cannot open the efs store {}", root.display()))?;
    Ok(Opened {
        market: Some(Arc::new(store)),
        evolution: None,
        description: config.describe(),
        serving: None,
        local_reach: false,
        hybrid: None,
    })
}

/// Merges the files of every partition of the efs dataset that has more
/// than one; returns how many partitions were compacted.
#[cfg(feature = "efs")]
pub async fn compact(config: &StorageConfig) -> anyhow::Result<usize> {
    use anyhow::Context as _;

    if config.backend != StorageBackend::Efs {
        return Err(crate::UsageError(format!(
            "strata compact merges the Parquet files of the efs backend; the {} backend has nothing to compact",
            config.backend
        ))
        .into());
    }
    let root = config.args.efs.root.clone().unwrap_or_default();
    let store = strata_adapter_efs::EfsStore::open(strata_adapter_efs::EfsConfig::new(root.clone()))
        .await
        .with_context(|| format!("cannot open the efs store {}", root.display()))?;
    Ok(store.compact_all().await?)
}

#[cfg(not(feature = "efs"))]
pub async fn compact(_config: &StorageConfig) -> anyhow::Result<usize> {
    Err(ConfigError::NotCompiledIn(StorageBackend::Efs).into())
}

#[cfg(not(feature = "neon"))]
async fn migrate_neon(_config: &StorageConfig) -> anyhow::Result<Vec<(String, String)>> {
    Err(ConfigError::NotCompiledIn(StorageBackend::Neon).into())
}

/// `text` with anything that looks like a password masked, by the neon
/// adapter's rules (`redact.rs` there), for what goes to stderr: a last line
/// of defence behind the adapter's own redaction, for messages (ours or a
/// library's) that quote a connection string.
#[cfg(feature = "neon")]
pub fn redacted(text: &str) -> String {
    strata_adapter_neon::redact_text(text)
}

/// Without the neon backend no connection string is read, so nothing needs masking.
#[cfg(not(feature = "neon"))]
pub fn redacted(text: &str) -> String {
    text.to_string()
}

/// Invalid input or arguments (exit code 2 in the binary): a store path
/// that names no store, a store URL that is not one. The message is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
