//! The storage settings: one clap group per backend, each under its own
//! `--help` heading, accepted before or after the subcommand and merged with
//! the environment (`STORAGE_BACKEND`, `STRATA_DUCKDB_PATH`, ...).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap::builder::BoolishValueParser;

/// Help heading of the duckdb backend's options.
const DUCKDB_OPTIONS: &str = "DuckDB options";

/// Help heading of the neon backend's options.
const PG_OPTIONS: &str = "PostgreSQL/Neon options";

/// Options that choose and configure the store; accepted before or after the subcommand, by the
/// subcommands that open a store (`strata neon` neither shows nor accepts them).
/// Each backend's options are one group, under its own heading in `--help`.
#[derive(Debug, Clone, Default, Args)]
pub struct StorageArgs {
    /// Storage backend: duckdb (default), memory, neon (also postgres, postgresql, pg) or efs
    /// (market data as Parquet under --efs-root; evolution state in PostgreSQL when DATABASE_URL is
    /// set, else in the DuckDB file).
    #[arg(long, global = true, env = "STORAGE_BACKEND", value_name = "BACKEND")]
    pub backend: Option<String>,
    /// The duckdb backend's options.
    #[command(flatten)]
    pub duckdb: DuckDbArgs,
    /// The neon backend's options.
    #[command(flatten)]
    pub pg: PgArgs,
    /// The efs backend's options.
    #[command(flatten)]
    pub efs: EfsArgs,
    /// The hybrid backend's options.
    #[command(flatten)]
    pub hybrid: HybridArgs,
}

/// Options of the hybrid backend: a primary (neon or efs), the DuckDB file as
/// its local cache, and a write journal that keeps writes while the primary is down.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Hybrid options")]
pub struct HybridArgs {
    /// The hybrid backend's primary store: neon (default; DATABASE_URL) or efs (--efs-root).
    #[arg(long = "hybrid-primary", global = true, env = "STRATA_HYBRID_PRIMARY", value_name = "BACKEND")]
    pub primary: Option<String>,
    /// Bars younger than this many days are hot: read from the cache when it holds them (default 7).
    #[arg(long = "hybrid-hot-days", global = true, env = "STRATA_HYBRID_HOT_DAYS", value_name = "DAYS")]
    pub hot_days: Option<u64>,
    /// Bars older than this many days are cold: read from the primary only (default 30).
    #[arg(long = "hybrid-warm-days", global = true, env = "STRATA_HYBRID_WARM_DAYS", value_name = "DAYS")]
    pub warm_days: Option<u64>,
    /// Directory of the write journal and the cache's coverage record (default: the DuckDB file's
    /// path with `.hybrid` appended). Keep it on local disk.
    #[arg(long = "hybrid-state-dir", global = true, env = "STRATA_HYBRID_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Seconds any one call to the primary may take before the write is journaled (default 60).
    #[arg(long = "hybrid-timeout", global = true, env = "STRATA_HYBRID_TIMEOUT", value_name = "SECONDS", value_parser = seconds("STRATA_HYBRID_TIMEOUT", true))]
    pub primary_timeout: Option<Duration>,
}

/// Options of the efs backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "EFS options")]
pub struct EfsArgs {
    /// Root directory of the efs backend's Parquet dataset (on a shared filesystem for many
    /// machines). It must exist: an unmounted share is refused, never created.
    #[arg(long = "efs-root", global = true, env = "STRATA_EFS_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Options of the duckdb backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = DUCKDB_OPTIONS)]
pub struct DuckDbArgs {
    /// DuckDB database file of the duckdb backend (default ./strata.duckdb).
    ///
    /// It must be a DuckDB database: any other existing file (a CSV or Parquet file, say) is refused
    /// and left unchanged; load such files with `strata ingest FILE`. Only commands that write
    /// (ingest, generate --ingest, evolve, migrate) create a missing store, and say so on stderr;
    /// the others fail with exit code 2 and create nothing, not even a folder. Commands that only
    /// read open a file you cannot write read-only.
    #[arg(long = "duckdb-path", global = true, env = "STRATA_DUCKDB_PATH", value_name = "FILE")]
    pub path: Option<PathBuf>,
    /// Seconds to wait for a DuckDB file that another process holds before giving up.
    #[arg(long, global = true, env = "STRATA_DUCKDB_LOCK_WAIT", value_name = "SECONDS", value_parser = seconds("STRATA_DUCKDB_LOCK_WAIT", false))]
    pub lock_wait: Option<Duration>,
    /// DuckDB worker threads (default: DuckDB's choice).
    #[arg(long = "duckdb-threads", global = true, env = "STRATA_DUCKDB_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Memory DuckDB may hold (its cache of the file, sorts, joins) before it evicts or spills
    /// to <file>.tmp/, e.g. 512MB or 2GiB (default: 256MB for commands that only read, such as
    /// query and summary; DuckDB's own, 80% of this machine's memory, for the others).
    #[arg(long = "duckdb-memory-limit", global = true, env = "STRATA_DUCKDB_MEMORY_LIMIT", value_name = "SIZE",
          value_parser = memory_size)]
    pub memory_limit: Option<String>,
}

/// `--duckdb-memory-limit`: a whole number with a unit DuckDB reads (KB, MB, GB, TB, KiB, MiB,
/// GiB, TiB), at least 16 MB; normalised to DuckDB's spelling.
fn memory_size(text: &str) -> Result<String, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let number: u64 = number.parse().map_err(|_| format!("expected a size such as 512MB or 2GiB, got {text:?}"))?;
    let bytes: u64 = match unit.to_ascii_lowercase().as_str() {
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("expected a size with a unit (KB, MB, GB, KiB, MiB, GiB, ...), got {text:?}")),
    };
    if number.saturating_mul(bytes) < 16_000_000 {
        return Err(format!("{text} is too little for DuckDB: give it at least 16MB"));
    }
    let unit = match unit.to_ascii_lowercase().as_str() {
        "kb" => "KB",
        "mb" => "MB",
        "gb" => "GB",
        "tb" => "TB",
        "kib" => "KiB",
        "mib" => "MiB",
        "gib" => "GiB",
        _ => "TiB",
    };
    Ok(format!("{number}{unit}"))
}

/// Options of the neon backend (PostgreSQL at `DATABASE_URL`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = PG_OPTIONS)]
pub struct PgArgs {
    /// PostgreSQL schema holding Strata's tables, created if missing (neon backend; default public).
    #[arg(long = "pg-schema", global = true, env = "STRATA_PG_SCHEMA", value_name = "NAME")]
    pub schema: Option<String>,
    /// Largest connection pool (neon backend; default 10).
    #[arg(long = "pg-max-connections", global = true, env = "STRATA_PG_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// Statement timeout in seconds, set per transaction (neon backend; default 300).
    #[arg(
        long = "pg-statement-timeout",
        global = true,
        env = "STRATA_PG_STATEMENT_TIMEOUT",
        value_name = "SECONDS",
        value_parser = seconds("STRATA_PG_STATEMENT_TIMEOUT", true)
    )]
    pub statement_timeout: Option<Duration>,
    /// Seconds to keep retrying transient failures (a Neon compute waking up, a dropped
    /// connection) of one operation, opening the store included (neon backend; default 30).
    #[arg(
        long = "pg-retry-budget",
        global = true,
        env = "STRATA_PG_RETRY_BUDGET",
        value_name = "SECONDS",
        value_parser = seconds("STRATA_PG_RETRY_BUDGET", false)
    )]
    pub retry_budget: Option<Duration>,
    /// Apply pending migrations when the store opens: true (default) or false.
    #[arg(
        long = "pg-migrate",
        global = true,
        env = "STRATA_PG_MIGRATE",
        value_name = "BOOL",
        value_parser = BoolishValueParser::new()
    )]
    pub migrate: Option<bool>,
    /// Partition interval of ohlcv_bars without TimescaleDB: day, week, month (default) or year.
    #[arg(long = "pg-partition", global = true, env = "STRATA_PG_PARTITION", value_name = "INTERVAL")]
    pub partition: Option<String>,
    /// TimescaleDB chunk interval, e.g. 90d (default for a new hypertable), 7d, 12h; when set, an
    /// existing hypertable's new chunks get it too.
    #[arg(long = "pg-chunk-interval", global = true, env = "STRATA_PG_CHUNK_INTERVAL", value_name = "INTERVAL")]
    pub chunk_interval: Option<String>,
    /// Use TimescaleDB for a new schema when the server can load it: true (default) or false.
    #[arg(
        long = "pg-timescaledb",
        global = true,
        env = "STRATA_PG_TIMESCALEDB",
        value_name = "BOOL",
        value_parser = BoolishValueParser::new()
    )]
    pub timescaledb: Option<bool>,
}

/// A number of seconds (fractions allowed), at least zero or, with
/// `positive`, more than zero.
pub fn parse_seconds(text: &str, positive: bool) -> Result<Duration, String> {
    let duration = text.trim().parse::<f64>().ok().and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
    duration
        .filter(|duration| !(positive && duration.is_zero()))
        .ok_or_else(|| format!("expected a number of seconds {}", if positive { "> 0" } else { ">= 0" }))
}

/// The value parser of a setting in seconds whose error also names
/// `variable`, the environment variable that may have given the value.
pub fn seconds(variable: &'static str, positive: bool) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |text| parse_seconds(text, positive).map_err(|error| format!("{error} (the flag, or {variable})"))
}

/// Seconds > 0, for a flag without an environment variable.
pub fn positive_seconds(text: &str) -> Result<Duration, String> {
    parse_seconds(text, true)
}
