//! Command-line definitions (clap derive): global storage options, the
//! subcommands, and the long help that teaches them by example.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use strata_core::{Symbol, Timestamp};
use strata_formats::BarFileFormat;

use crate::output::OutputFormat;
pub(crate) use strata_compose::args::{StorageArgs, positive_seconds};

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
    let matches = command().try_get_matches().unwrap_or_else(|error| with_source(error).exit());
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command()).exit())
}

/// `error` with a tip naming where the bad input came from when clap's message does not: the
/// environment variable behind a flag's rejected value (clap names only the flag), or the argument
/// or variable that is not UTF-8 (clap names none).
fn with_source(mut error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};

    fn variables(command: &clap::Command, found: &mut Vec<(String, String)>) {
        for arg in command.get_arguments() {
            if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env().and_then(|env| env.to_str())) {
                found.push((format!("--{long}"), env.to_string()));
            }
        }
        command.get_subcommands().for_each(|subcommand| variables(subcommand, found));
    }
    let mut found = Vec::new();
    variables(&command(), &mut found);
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut tips = Vec::new();
    if error.kind() == ErrorKind::InvalidUtf8 {
        for (position, arg) in args.iter().enumerate().skip(1).filter(|(_, arg)| arg.to_str().is_none()) {
            tips.push(format!("argument {position}, {:?}, is not valid UTF-8", arg.to_string_lossy()));
        }
        for (_, variable) in &found {
            if std::env::var_os(variable).is_some_and(|value| value.to_str().is_none()) {
                tips.push(format!("the environment variable {variable} is not valid UTF-8"));
            }
        }
        tips.dedup();
    } else if let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) {
        let flag = invalid.split([' ', '=']).next().unwrap_or_default();
        let given = args
            .iter()
            .filter_map(|arg| arg.to_str())
            .any(|arg| arg.strip_prefix(flag).is_some_and(|rest| rest.is_empty() || rest.starts_with('=')));
        if let Some((_, variable)) = found.iter().find(|(long, _)| long == flag)
            && !given
            && std::env::var_os(variable).is_some()
            && !error.to_string().contains(variable.as_str())
        {
            tips.push(format!("the value comes from the environment variable {variable}"));
        }
    }
    if !tips.is_empty() {
        let mut all = match error.get(ContextKind::Suggested) {
            Some(ContextValue::StyledStrs(existing)) => existing.clone(),
            _ => Vec::new(),
        };
        all.extend(tips.into_iter().map(clap::builder::StyledStr::from));
        error.insert(ContextKind::Suggested, ContextValue::StyledStrs(all));
    }
    error
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
    /// Check the storage is ready for production (ids, severities, fixes); exit 1 on a critical failure.
    #[command(long_about = crate::doctor::DOCTOR_LONG_ABOUT, after_help = crate::doctor::DOCTOR_AFTER_HELP)]
    Doctor(crate::doctor::DoctorArgs),
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
    /// Write a GA run's report: one self-contained HTML file with its charts and best genomes.
    #[command(after_help = crate::report::REPORT_AFTER_HELP)]
    Report(crate::report::ReportArgs),
    /// Serve the store over HTTP: Prometheus metrics, health, and bars as JSON, CSV or Arrow.
    #[command(long_about = SERVE_LONG_ABOUT, after_help = SERVE_AFTER_HELP)]
    Serve(crate::serve::ServeArgs),
    /// Replay the hybrid backend's write journal into its primary now, and report.
    #[command(
        after_help = "Examples:\n  STORAGE_BACKEND=hybrid strata sync\n  STORAGE_BACKEND=hybrid strata sync --json"
    )]
    Sync(crate::sync::SyncArgs),
    /// Copy bars from store A to store B by (symbol, day), proved equal by digest; rerun to finish.
    #[command(
        after_help = "Examples:\n  strata copy duckdb:old.duckdb postgres://app@db/research\n  strata copy duckdb:strata.duckdb efs:/mnt/efs/bars --symbols AAPL MSFT --start 2020-01-01"
    )]
    Copy(crate::sync::CompareArgs),
    /// Compare two stores by (symbol, day) digests; exit 0 only when equal. --repair copies A's days to B.
    #[command(
        after_help = "Examples:\n  strata verify postgres://app@db/research duckdb:strata.duckdb\n  strata verify duckdb:a.duckdb duckdb:b.duckdb --repair --json"
    )]
    Verify(crate::sync::CompareArgs),
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

const SERVE_LONG_ABOUT: &str = include_str!("../help/serve.txt");

const SERVE_AFTER_HELP: &str = include_str!("../help/serve-examples.txt");

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
    /// Number of symbols (SYN000, SYN001, ...), at most 1,000,000.
    // Bounded: the names are made up front, so 18446744073709551615 was a capacity-overflow panic.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(..=1_000_000).map(|n| n as usize))]
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
