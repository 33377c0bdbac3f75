//! Command-line definitions (clap derive): global storage options, the
//! subcommands, and the long help that teaches them by example.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use strata_core::{Symbol, Timestamp};
use strata_formats::BarFileFormat;

use crate::output::OutputFormat;

/// Shown after the top-level `--help`: environment, exit codes and a quick tour.
const TOP_LEVEL_AFTER_HELP: &str = include_str!("../help/top-level.txt");

/// `strata`: storage for genetic-algorithm trading research.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Load, query and check OHLCV market bars in a Strata store.",
    long_about = "Load, query and check OHLCV market bars in a Strata store.\n\n\
        The store is chosen by STORAGE_BACKEND (or --backend): an embedded DuckDB file by \
        default, PostgreSQL/Neon at DATABASE_URL (neon), or an in-memory store that lives only \
        as long as one command.",
    after_help = TOP_LEVEL_AFTER_HELP
)]
pub(crate) struct Cli {
    /// Where the bars are stored.
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Subcommands that open no store: they neither show nor accept the storage options.
const STORELESS_SUBCOMMANDS: [&str; 1] = ["neon"];

/// The command line: [`Cli`]'s definition, with the storage options kept out of the subcommands
/// that open no store.
///
/// The storage options are global, so they work before or after the subcommand
/// (`strata --duckdb-path a.duckdb digest`, `strata query --duckdb-path a.duckdb AAPL`). clap copies
/// a global option into every subcommand that has no option of that id, with its help; so each
/// store-less subcommand first gets its own hidden copy that reads no environment variable and
/// refuses any value given after the subcommand.
pub(crate) fn command() -> clap::Command {
    let mut command = Cli::command();
    let refusals: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| {
            arg.clone().hide(true).env(None::<&str>).default_value(None::<&str>).value_parser(
                |_: &str| -> Result<String, String> {
                    Err(format!(
                        "storage options apply only to the commands that open a store, not to `strata {}`",
                        STORELESS_SUBCOMMANDS.join("`, `strata ")
                    ))
                },
            )
        })
        .collect();
    for name in STORELESS_SUBCOMMANDS {
        if command.find_subcommand(name).is_some() {
            command = command.mut_subcommand(name, |subcommand| subcommand.args(refusals.iter().cloned()));
        }
    }
    command
}

/// Parses the process's arguments with [`command`]; prints help or an error and exits when asked.
pub(crate) fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command()).exit())
}

/// Help heading of the duckdb backend's options.
const DUCKDB_OPTIONS: &str = "DuckDB options";

/// Help heading of the neon backend's options.
const PG_OPTIONS: &str = "PostgreSQL/Neon options";

/// Options that choose and configure the store; accepted before or after the subcommand, by the
/// subcommands that open a store (see [`command`]: `strata neon` neither shows nor accepts them).
/// Each backend's options are one group, under its own heading in `--help`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct StorageArgs {
    /// Storage backend: duckdb (default), memory, neon (also postgres, postgresql, pg) or efs
    /// (market data as Parquet under --efs-root; evolution state in PostgreSQL when DATABASE_URL is
    /// set, else in the DuckDB file).
    #[arg(long, global = true, env = "STORAGE_BACKEND", value_name = "BACKEND")]
    pub(crate) backend: Option<String>,
    /// The duckdb backend's options.
    #[command(flatten)]
    pub(crate) duckdb: DuckDbArgs,
    /// The neon backend's options.
    #[command(flatten)]
    pub(crate) pg: PgArgs,
    /// The efs backend's options.
    #[command(flatten)]
    pub(crate) efs: EfsArgs,
}

/// Options of the efs backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "EFS options")]
pub(crate) struct EfsArgs {
    /// Root directory of the efs backend's Parquet dataset (on a shared filesystem for many
    /// machines). It must exist: an unmounted share is refused, never created.
    #[arg(long = "efs-root", global = true, env = "STRATA_EFS_ROOT", value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
}

/// Options of the duckdb backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = DUCKDB_OPTIONS)]
pub(crate) struct DuckDbArgs {
    /// DuckDB database file of the duckdb backend (default ./strata.duckdb).
    ///
    /// It must be a DuckDB database: any other existing file (a CSV or Parquet file, say) is refused
    /// and left unchanged; load such files with `strata ingest FILE`. Only commands that write
    /// (ingest, generate --ingest, evolve, migrate) create a missing store, and say so on stderr;
    /// the others fail with exit code 2 and create nothing, not even a folder. Commands that only
    /// read open a file you cannot write read-only.
    #[arg(long = "duckdb-path", global = true, env = "STRATA_DUCKDB_PATH", value_name = "FILE")]
    pub(crate) path: Option<PathBuf>,
    /// Seconds to wait for a DuckDB file that another process holds before giving up.
    #[arg(long, global = true, env = "STRATA_DUCKDB_LOCK_WAIT", value_name = "SECONDS", value_parser = seconds("STRATA_DUCKDB_LOCK_WAIT", false))]
    pub(crate) lock_wait: Option<Duration>,
    /// DuckDB worker threads (default: DuckDB's choice).
    #[arg(long = "duckdb-threads", global = true, env = "STRATA_DUCKDB_THREADS", value_name = "N")]
    pub(crate) threads: Option<usize>,
}

/// Options of the neon backend (PostgreSQL at `DATABASE_URL`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = PG_OPTIONS)]
pub(crate) struct PgArgs {
    /// PostgreSQL schema holding Strata's tables, created if missing (neon backend; default public).
    #[arg(long = "pg-schema", global = true, env = "STRATA_PG_SCHEMA", value_name = "NAME")]
    pub(crate) schema: Option<String>,
    /// Largest connection pool (neon backend; default 10).
    #[arg(long = "pg-max-connections", global = true, env = "STRATA_PG_MAX_CONNECTIONS", value_name = "N")]
    pub(crate) max_connections: Option<u32>,
    /// Statement timeout in seconds, set per transaction (neon backend; default 300).
    #[arg(
        long = "pg-statement-timeout",
        global = true,
        env = "STRATA_PG_STATEMENT_TIMEOUT",
        value_name = "SECONDS",
        value_parser = seconds("STRATA_PG_STATEMENT_TIMEOUT", true)
    )]
    pub(crate) statement_timeout: Option<Duration>,
    /// Seconds to keep retrying transient failures (a Neon compute waking up, a dropped
    /// connection) of one operation, opening the store included (neon backend; default 30).
    #[arg(
        long = "pg-retry-budget",
        global = true,
        env = "STRATA_PG_RETRY_BUDGET",
        value_name = "SECONDS",
        value_parser = seconds("STRATA_PG_RETRY_BUDGET", false)
    )]
    pub(crate) retry_budget: Option<Duration>,
    /// Apply pending migrations when the store opens: true (default) or false.
    #[arg(
        long = "pg-migrate",
        global = true,
        env = "STRATA_PG_MIGRATE",
        value_name = "BOOL",
        value_parser = BoolishValueParser::new()
    )]
    pub(crate) migrate: Option<bool>,
    /// Partition interval of ohlcv_bars without TimescaleDB: day, week, month (default) or year.
    #[arg(long = "pg-partition", global = true, env = "STRATA_PG_PARTITION", value_name = "INTERVAL")]
    pub(crate) partition: Option<String>,
    /// TimescaleDB chunk interval, e.g. 90d (default for a new hypertable), 7d, 12h; when set, an
    /// existing hypertable's new chunks get it too.
    #[arg(long = "pg-chunk-interval", global = true, env = "STRATA_PG_CHUNK_INTERVAL", value_name = "INTERVAL")]
    pub(crate) chunk_interval: Option<String>,
    /// Use TimescaleDB for a new schema when the server can load it: true (default) or false.
    #[arg(
        long = "pg-timescaledb",
        global = true,
        env = "STRATA_PG_TIMESCALEDB",
        value_name = "BOOL",
        value_parser = BoolishValueParser::new()
    )]
    pub(crate) timescaledb: Option<bool>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Load bars from CSV or Parquet files or Hive datasets (all-or-nothing).
    #[command(long_about = INGEST_LONG_ABOUT, after_help = INGEST_AFTER_HELP)]
    Ingest(IngestArgs),
    /// Print bars of one or more symbols as a table, CSV, JSON Lines or Parquet.
    #[command(long_about = QUERY_LONG_ABOUT, after_help = QUERY_AFTER_HELP)]
    Query(QueryArgs),
    /// List every symbol with its first and last bar and row count.
    #[command(after_help = "Examples:\n  strata summary\n  strata summary --json | jq .total_rows")]
    Summary(SummaryArgs),
    /// Apply pending schema migrations (neon: versioned, safe to run from several processes at once).
    #[command(long_about = MIGRATE_LONG_ABOUT, after_help = "Examples:\n  STORAGE_BACKEND=neon DATABASE_URL=postgres://app@db/prod strata migrate\n  STORAGE_BACKEND=neon STRATA_PG_MIGRATE=false strata health   # opens without migrating")]
    Migrate(MigrateArgs),
    /// Merge each partition's Parquet files into one (efs backend).
    #[command(after_help = "Examples:\n  STORAGE_BACKEND=efs STRATA_EFS_ROOT=/mnt/efs/bars strata compact")]
    Compact(CompactArgs),
    /// Check that the store answers; exit code 1 when it does not.
    #[command(after_help = "Examples:\n  strata health\n  STORAGE_BACKEND=memory strata health --json")]
    Health(HealthArgs),
    /// Write deterministic synthetic bars to a file or straight into the store.
    #[command(long_about = GENERATE_LONG_ABOUT, after_help = GENERATE_AFTER_HELP)]
    Generate(GenerateArgs),
    /// Print per-(symbol, day) digests (row count + order-independent hash).
    #[command(long_about = DIGEST_LONG_ABOUT, after_help = DIGEST_AFTER_HELP)]
    Digest(DigestArgs),
    /// Evolve a trading strategy with a genetic algorithm on stored bars (the main job).
    #[command(after_help = crate::evolve::EVOLVE_AFTER_HELP)]
    Evolve(crate::evolve::EvolveArgs),
    /// Evaluate GA tasks leased from the store until killed (one per core, on any machine).
    #[command(
        after_help = "Examples:\n  STORAGE_BACKEND=neon strata worker\n  strata worker --run RUN_ID --exit-when-idle 30"
    )]
    Worker(crate::evolve::WorkerArgs),
    /// List, show, cancel or resume GA runs.
    #[command(
        after_help = "Examples:\n  strata runs list\n  strata runs show RUN_ID --json\n  strata runs status RUN_ID --json\n  strata runs cancel RUN_ID\n  strata runs resume RUN_ID"
    )]
    Runs(crate::evolve::RunsArgs),
    /// Manage Neon projects, branches and connection URIs; run a fake Neon API.
    #[cfg(feature = "neon-api")]
    Neon(strata_neon_cli::NeonArgs),
}

const MIGRATE_LONG_ABOUT: &str = include_str!("../help/migrate.txt");

const INGEST_LONG_ABOUT: &str = include_str!("../help/ingest.txt");

const INGEST_AFTER_HELP: &str = include_str!("../help/ingest-examples.txt");

const QUERY_LONG_ABOUT: &str = include_str!("../help/query.txt");

const QUERY_AFTER_HELP: &str = include_str!("../help/query-examples.txt");

const GENERATE_LONG_ABOUT: &str = include_str!("../help/generate.txt");

const GENERATE_AFTER_HELP: &str = include_str!("../help/generate-examples.txt");

const DIGEST_LONG_ABOUT: &str = include_str!("../help/digest.txt");

const DIGEST_AFTER_HELP: &str = include_str!("../help/digest-examples.txt");

/// Input file formats: the readable [`BarFileFormat`]s as `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputFormat {
    /// Comma-separated text with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl From<InputFormat> for BarFileFormat {
    fn from(format: InputFormat) -> Self {
        match format {
            InputFormat::Csv => BarFileFormat::Csv,
            InputFormat::Parquet => BarFileFormat::Parquet,
        }
    }
}

/// `strata ingest`.
#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// CSV or Parquet files (by extension: .csv, .parquet, .pq; see --format), or directories
    /// holding a Hive dataset partitioned by symbol (DIR/symbol=AAPL/*.parquet, as pandas,
    /// pyarrow and polars write it).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub(crate) files: Vec<PathBuf>,
    /// Read every file as this format, whatever its extension.
    #[arg(long, value_enum)]
    pub(crate) format: Option<InputFormat>,
    /// Symbol of files that have no symbol column.
    #[arg(long, value_name = "SYMBOL")]
    pub(crate) symbol: Option<Symbol>,
    /// Validate every file and report problems, but write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the store summary after ingesting.
    #[arg(long)]
    pub(crate) summary: bool,
    /// Adjust prices for splits and dividends by each file's adjusted close
    /// column (adj_close, "Adj Close", adjusted_close): OHLC times
    /// adj_close / close, volume divided by it. Every file needs the column.
    #[arg(long)]
    pub(crate) adjust: bool,
    /// Rows per validated and written batch.
    #[arg(long, default_value_t = 100_000, value_name = "ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) batch_rows: u64,
}

/// `strata query`.
#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// Symbols to print, e.g. ^GSPC AAPL.
    #[arg(required = true, value_name = "SYMBOL")]
    pub(crate) symbols: Vec<Symbol>,
    /// First instant included (RFC 3339 or a date = midnight UTC).
    #[arg(long, value_name = "TIME")]
    pub(crate) start: Option<Timestamp>,
    /// First instant excluded.
    #[arg(long, value_name = "TIME")]
    pub(crate) end: Option<Timestamp>,
    /// At most this many bars per symbol.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
    /// Newest first (with --limit: the latest N bars).
    #[arg(long)]
    pub(crate) desc: bool,
    /// Output format [default: from --output's extension, else table].
    #[arg(long, value_enum)]
    pub(crate) format: Option<OutputFormat>,
    /// Write to this file instead of stdout (written to FILE.partial, then renamed).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// `strata summary`.
#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    /// One JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `strata compact`.
#[derive(Debug, Args)]
pub(crate) struct CompactArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `strata health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Give up after this many seconds, opening the store included, and report unhealthy (exit 1).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub(crate) timeout: Option<Duration>,
}

/// `strata migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `strata generate`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["output", "ingest"])))]
pub(crate) struct GenerateArgs {
    /// Number of symbols (SYN000, SYN001, ...).
    #[arg(long, value_name = "N")]
    pub(crate) symbols: usize,
    /// Bars per symbol.
    #[arg(long, value_name = "N")]
    pub(crate) bars: usize,
    /// Seed of the random walk.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub(crate) seed: u64,
    /// Spacing of bars: 1m, 5m, 1h, 1d, 30s, or a number of seconds.
    #[arg(long, value_name = "INTERVAL", default_value = "1m", value_parser = parse_interval)]
    pub(crate) interval: IntervalMicros,
    /// Timestamp of the first bar (RFC 3339 or a date).
    #[arg(long, value_name = "TIME", default_value = "2020-01-01")]
    pub(crate) start: Timestamp,
    /// Write to FILE.csv or FILE.parquet.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Write into the configured store instead of a file.
    #[arg(long)]
    pub(crate) ingest: bool,
    /// With --ingest: print the store summary afterwards.
    #[arg(long, requires = "ingest")]
    pub(crate) summary: bool,
}

/// `strata digest`.
#[derive(Debug, Args)]
pub(crate) struct DigestArgs {
    /// Symbols to digest; none means every symbol.
    #[arg(value_name = "SYMBOL")]
    pub(crate) symbols: Vec<Symbol>,
    /// First instant included (RFC 3339 or a date).
    #[arg(long, value_name = "TIME")]
    pub(crate) start: Option<Timestamp>,
    /// First instant excluded.
    #[arg(long, value_name = "TIME")]
    pub(crate) end: Option<Timestamp>,
    /// JSON Lines (one object per symbol and day) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A number of seconds (fractions allowed), at least zero or, with
/// `positive`, more than zero.
fn parse_seconds(text: &str, positive: bool) -> Result<Duration, String> {
    let duration = text.trim().parse::<f64>().ok().and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
    duration
        .filter(|duration| !(positive && duration.is_zero()))
        .ok_or_else(|| format!("expected a number of seconds {}", if positive { "> 0" } else { ">= 0" }))
}

/// The value parser of a setting in seconds whose error also names
/// `variable`, the environment variable that may have given the value.
fn seconds(variable: &'static str, positive: bool) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |text| parse_seconds(text, positive).map_err(|error| format!("{error} (the flag, or {variable})"))
}

/// Seconds > 0, for a flag without an environment variable.
pub(crate) fn positive_seconds(text: &str) -> Result<Duration, String> {
    parse_seconds(text, true)
}

/// A bar spacing in microseconds (> 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntervalMicros(pub(crate) i64);

/// Parses `1m`, `5m`, `1h`, `1d`, `30s` or a plain number of seconds.
fn parse_interval(text: &str) -> Result<IntervalMicros, String> {
    let text = text.trim();
    let (number, unit_seconds) = match text.char_indices().last() {
        Some((index, 's')) => (&text[..index], 1),
        Some((index, 'm')) => (&text[..index], 60),
        Some((index, 'h')) => (&text[..index], 3_600),
        Some((index, 'd')) => (&text[..index], 86_400),
        _ => (text, 1),
    };
    let count: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not an interval; use 1m, 5m, 1h, 1d, 30s or a number of seconds"))?;
    count
        .checked_mul(unit_seconds * 1_000_000)
        .filter(|micros| *micros > 0)
        .map(IntervalMicros)
        .ok_or_else(|| format!("interval {text:?} must be positive and at most a few thousand years"))
}

#[cfg(test)]
#[path = "../unit-tests/cli.rs"]
mod tests;
