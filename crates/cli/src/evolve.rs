//! `strata evolve`, `strata worker` and `strata runs`: GA evolution of trading
//! strategies on the configured store, with in-process workers for a single
//! machine and `strata worker` processes for many.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_compose::snapshot::Snapshots;
use strata_core::evolution::{RunId, RunStatus, WorkerId};
use strata_core::{MarketDataStore, StoreError, Symbol, Timestamp};
use strata_ga_coord::{
    CoordinatorConfig, CoordinatorEvent, DataPin, DataWindow, GaError, LocalOptions, Objective, Observer, RunConfig,
    RunProgress, RunSummary, SnapshotSource, StrategyRegistry, Worker, WorkerConfig, data_digest, estimate_run,
    evolve_local, interrupt_run, run_json, runs_table, stats_line, summarize,
};
use tokio::sync::watch;

use crate::backend::{Access, StorageConfig, build_stores};
use crate::exit::UsageError;

/// Shown after `strata evolve --help`.
pub(crate) const EVOLVE_AFTER_HELP: &str = include_str!("../help/evolve-examples.txt");

/// `strata evolve`.
#[derive(Debug, Args)]
pub(crate) struct EvolveArgs {
    /// Strategy to evolve.
    #[arg(long, default_value = "ma-crossover", value_name = "STRATEGY", value_parser = strategy_names())]
    pub(crate) strategy: String,
    /// Symbols to train on (each backtested separately, equal weights).
    #[arg(long, num_args = 1.., value_name = "SYMBOL", default_values_t = [String::from("^GSPC")])]
    pub(crate) symbols: Vec<String>,
    /// First instant of the training window (RFC 3339 or a date).
    #[arg(long, value_name = "TIME")]
    pub(crate) start: Option<Timestamp>,
    /// End of the training window (excluded).
    #[arg(long, value_name = "TIME")]
    pub(crate) end: Option<Timestamp>,
    /// Walk-forward: also report the best genomes on [--end, --test-end), never trained on.
    #[arg(long, value_name = "TIME", requires = "end")]
    pub(crate) test_end: Option<Timestamp>,
    /// Individuals per generation (2 to 100,000). A run estimated to take
    /// over a minute says how long, and how much memory its bars take, first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub(crate) population: u32,
    /// Generations to evolve (1 to 100,000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) generations: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// In-process workers (default: the number of cores). 0 runs the
    /// coordinator only and leaves every evaluation to `strata worker`
    /// processes: on other machines with `neon`, on this one with a DuckDB file.
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<u32>,
    /// Trading cost in basis points of the traded amount.
    #[arg(long, default_value_t = 5.0, value_name = "BPS", value_parser = finite_bps)]
    pub(crate) cost_bps: f64,
    /// What the fitness rewards.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Sharpe)]
    pub(crate) objective: ObjectiveArg,
    /// Fewer trades than this are penalised.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(crate) min_trades: u32,
    /// Run id (default: derived from the arguments).
    #[arg(long, value_name = "ID")]
    pub(crate) run_id: Option<RunId>,
    /// Continue a stored run by id, with the settings it was created with (giving
    /// --strategy, --symbols, --start, ... too is refused: the run keeps its own); waits
    /// for a crashed coordinator's lease to expire, then takes over.
    #[arg(long, value_name = "ID", conflicts_with_all = [
        "run_id", "strategy", "symbols", "start", "end", "test_end", "population", "generations", "seed",
        "cost_bps", "objective", "min_trades", "snapshot",
    ])]
    pub(crate) resume: Option<RunId>,
    /// Pin the run to a snapshot of its data, so its result can be reproduced after the
    /// data changes: a Neon branch `evolution-<run>` of the project's default branch as of
    /// now (STORAGE_BACKEND=neon, with NEON_API_KEY and NEON_PROJECT_ID), which every worker
    /// of the run reads its bars from, a resume too. `strata runs show` prints it and
    /// `strata runs delete` deletes it with the run. Without it, a run records the digest
    /// of its data instead, and a resume on changed data is refused.
    #[arg(long)]
    pub(crate) snapshot: bool,
    /// Go on although the bars of the run's window changed since it was created (its
    /// recorded digest differs): the results so far were computed on the old bars.
    #[arg(long)]
    pub(crate) allow_data_change: bool,
    /// Best genomes to print.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub(crate) top: usize,
    /// One JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) metrics: crate::serve::MetricsArgs,
}

/// `--cost-bps`: a finite number. NaN and the infinities (`1e309` too) have no JSON form, so a run
/// stored with one could never be read back.
fn finite_bps(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|bps| bps.is_finite())
        .ok_or_else(|| "expected a finite number of basis points".to_string())
}

/// The built-in strategies' names, as in [`StrategyRegistry::default`] (a test checks).
const STRATEGIES: [&str; 4] = ["ma-crossover", "rsi-reversion", "bollinger-breakout", "donchian"];

/// `--strategy` values, with each strategy's description for `--help`.
fn strategy_names() -> clap::builder::PossibleValuesParser {
    let registry = StrategyRegistry::default();
    clap::builder::PossibleValuesParser::new(STRATEGIES.map(|name| {
        let value = clap::builder::PossibleValue::new(name);
        match registry.get(name) {
            Ok(strategy) => value.help(strategy.description().to_string()),
            Err(_) => value,
        }
    }))
}

/// Fitness objectives on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ObjectiveArg {
    /// Annualised Sharpe ratio.
    Sharpe,
    /// Total return.
    TotalReturn,
    /// Annualised return over maximum drawdown.
    Calmar,
}

/// `strata worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Only this run's evaluations, exiting when the run ends (default: every active run's, until killed).
    #[arg(long, value_name = "ID")]
    pub(crate) run: Option<RunId>,
    /// Worker id (default: worker-<host>-<pid>).
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<WorkerId>,
    /// Lease TTL in seconds; a killed worker's tasks return to the queue after it.
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = crate::cli::positive_seconds)]
    pub(crate) ttl: Duration,
    /// Most evaluations per lease.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub(crate) batch: u32,
    /// Exit after this many seconds without work (default: run until killed).
    #[arg(long, value_name = "SECONDS", value_parser = crate::cli::positive_seconds)]
    pub(crate) exit_when_idle: Option<Duration>,
    /// Work on this run only and exit when it has ended: 0 once it is completed (nothing
    /// pending or leased), 1 when it was cancelled or failed. For schedulers that start
    /// workers per run (a Kubernetes Job in work-queue mode, a Ray task).
    #[arg(long, value_name = "RUN", conflicts_with = "run")]
    pub(crate) exit_when_done: Option<RunId>,
    /// After SIGTERM or Ctrl-C: seconds to finish the evaluation in progress, complete what
    /// is done and hand the other leases back (no attempt counted) before exiting anyway.
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = crate::cli::positive_seconds)]
    pub(crate) grace: Duration,
    #[command(flatten)]
    pub(crate) metrics: crate::serve::MetricsArgs,
}

/// `strata runs`.
#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) action: RunsAction,
}

/// `strata runs ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsAction {
    /// Every run, newest first.
    #[command(after_help = "Examples:\n  strata runs list\n  strata runs list --json | jq -r .run")]
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One run: its settings, per-generation statistics and best genomes.
    #[command(
        after_help = "Examples:\n  strata runs show RUN_ID\n  strata runs show RUN_ID --chart\n  strata runs show RUN_ID --top 10 --json\n  strata report RUN_ID                  the same run as an HTML page with charts"
    )]
    Show {
        /// Run id.
        run: RunId,
        /// Best genomes to print.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also draw best and mean fitness per generation as a text chart.
        #[arg(long, conflicts_with = "json")]
        chart: bool,
    },
    /// Where a run stands: its status, current generation and that generation's tasks by
    /// state (for schedulers, scalers and scripts).
    #[command(after_help = "Examples:\n  strata runs status RUN_ID\n  strata runs status RUN_ID --json | jq .pending")]
    Status {
        /// Run id.
        run: RunId,
        /// One JSON object: run, status, generation, generations, pending, leased, done,
        /// parked, active, finished.
        #[arg(long)]
        json: bool,
    },
    /// Stop a run: workers drop its evaluations and its coordinator exits.
    #[command(after_help = "Examples:\n  strata runs cancel RUN_ID\n  STORAGE_BACKEND=neon strata runs cancel RUN_ID")]
    Cancel {
        /// Run id.
        run: RunId,
    },
    /// Continue a run with in-process workers (as `strata evolve --resume`).
    #[command(after_help = "Examples:\n  strata runs resume RUN_ID\n  \
            strata runs resume RUN_ID --workers 0     coordinator only, for `strata worker` processes\n  \
            strata runs resume RUN_ID --retry-parked  evaluate the parked (failed) genomes again")]
    Resume {
        /// Run id.
        run: RunId,
        /// In-process workers (default: the number of cores; 0: coordinator
        /// only, for `strata worker` processes on a shared store).
        #[arg(long)]
        workers: Option<u32>,
        /// First return the run's parked evaluations (failed too often) to the queue with
        /// their attempts reset, so the resumed run evaluates them again.
        #[arg(long)]
        retry_parked: bool,
        /// Go on although the bars of the run's window changed since it was created.
        #[arg(long)]
        allow_data_change: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a run with its generations, evaluations and statistics, and its snapshot
    /// branch when it has one (`strata evolve --snapshot`). A run still running is
    /// refused: cancel it first.
    #[command(after_help = "Examples:\n  strata runs delete RUN_ID\n  \
            strata runs cancel RUN_ID && strata runs delete RUN_ID\n  \
            strata runs delete RUN_ID --keep-branch   keep the run's Neon snapshot branch")]
    Delete {
        /// Run id.
        run: RunId,
        /// Leave the run's snapshot branch in the Neon project (deleted by default).
        #[arg(long)]
        keep_branch: bool,
        /// One JSON object: run, deleted, branch, branch_deleted.
        #[arg(long)]
        json: bool,
    },
}

fn default_workers() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u32)
}

/// This machine's name: the kernel's (Linux), else `/etc/hostname`, else
/// `$HOSTNAME` (which shells set but do not export), else `localhost`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn holder_id(role: &str) -> Result<WorkerId> {
    let host: String = host_name().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(24).collect();
    let nonce = Timestamp::now().micros() % 1_000_000;
    Ok(WorkerId::new(format!("{role}-{host}-{}-{nonce}", std::process::id()))?)
}

/// Runs `strata evolve`.
pub(crate) async fn evolve(args: &EvolveArgs, storage: &StorageConfig) -> Result<ExitCode> {
    crate::exit::check_window(args.start, args.end)?;
    if let (Some(end), Some(test_end)) = (args.end, args.test_end)
        && test_end <= end
    {
        return Err(UsageError(format!(
            "--test-end {test_end} is not after --end {end}; the out-of-sample window is [--end, --test-end)"
        ))
        .into());
    }
    let _metrics = crate::serve::metrics_endpoint(&args.metrics).await?;
    // A new run may start a new store; a resumed run must be in an existing one.
    let access = if args.resume.is_some() { Access::WriteExisting } else { Access::Write };
    let stores = build_stores(storage, access).await?;
    refuse_unreachable_workers(args.workers.unwrap_or_else(default_workers), &stores)?;
    let registry = Arc::new(StrategyRegistry::default());
    let spec = match &args.resume {
        Some(run) => {
            let record = stores.evolution.get_run(run).await.with_context(|| format!("cannot resume run {run}"))?;
            check_data(&stores, &record.spec, args.allow_data_change).await?;
            record.spec
        }
        None => {
            registry.get(&args.strategy).map_err(|e| UsageError(e.to_string()))?;
            let symbols: Vec<String> = args
                .symbols
                .iter()
                .map(|s| Symbol::new(s.clone()).map(|s| s.as_str().to_string()))
                .collect::<Result<_, _>>()?;
            let window = DataWindow {
                symbols: symbols.clone(),
                start: args.start.map(|t| t.0),
                end: args.end.map(|t| t.0),
                snapshot: None,
                digest: None,
            };
            let mut config = RunConfig::new(window);
            config.test_window = args.test_end.map(|test_end| DataWindow {
                symbols,
                start: args.end.map(|t| t.0),
                end: Some(test_end.0),
                snapshot: None,
                digest: None,
            });
            config.backtest.cost_bps = args.cost_bps;
            config.backtest.min_trades = args.min_trades;
            config.backtest.objective = match args.objective {
                ObjectiveArg::Sharpe => Objective::Sharpe,
                ObjectiveArg::TotalReturn => Objective::TotalReturn,
                ObjectiveArg::Calmar => Objective::Calmar,
            };
            // Fail early, with a hint, when the training window holds no bars.
            let series = strata_ga_coord::eval::load_window(stores.market.as_ref(), &config.window)
                .await
                .map_err(|error| UsageError(error.to_string()))?;
            if !args.json {
                let strategy = registry.get(&args.strategy).map_err(|e| UsageError(e.to_string()))?;
                let estimate = estimate_run(
                    strategy.as_ref(),
                    &series,
                    &config.backtest,
                    args.population,
                    args.generations,
                    args.seed,
                )?;
                if let Some(note) =
                    estimate.with_workers(args.workers.unwrap_or_else(default_workers)).note(ESTIMATE_ABOVE)
                {
                    eprintln!("{note}");
                }
            }
            let id = match &args.run_id {
                Some(id) => id.clone(),
                None => {
                    config.derived_id(&args.strategy, args.seed, args.population, args.generations, args.snapshot)?
                }
            };
            match stores.evolution.get_run(&id).await {
                // The same run again: its own pin, after checking its data.
                Ok(existing) => {
                    check_data(&stores, &existing.spec, args.allow_data_change).await?;
                    let pinned = RunConfig::parse(&existing.spec.config)?;
                    if args.snapshot && !matches!(pinned.data, Some(DataPin::Snapshot { .. })) {
                        return Err(UsageError(format!(
                            "run {id} exists and is not pinned to a snapshot; start a pinned run under another id                              (--run-id)"
                        ))
                        .into());
                    }
                    config.pin_as(&pinned);
                }
                Err(StoreError::NotFound { .. }) => {
                    pin(&mut config, &id, args.snapshot, storage, &stores, args.json).await?
                }
                Err(error) => return Err(anyhow::Error::new(error).context(format!("cannot read run {id}"))),
            }
            // Differs from a stored run of this id only in settings: `create_run` refuses it.
            config.spec(Some(id), &args.strategy, args.seed, args.population, args.generations)?
        }
    };
    drive(stores, storage, registry, spec, args.workers, args.resume.is_some(), args.top, args.json).await?;
    Ok(ExitCode::SUCCESS)
}

/// Pins a new run's configuration to its data: a snapshot branch made now
/// (`--snapshot`), else the digest of its windows' bars.
async fn pin(
    config: &mut RunConfig,
    run: &RunId,
    snapshot: bool,
    storage: &StorageConfig,
    stores: &crate::backend::Stores,
    quiet: bool,
) -> Result<()> {
    if !snapshot {
        let digest = data_digest(stores.market.as_ref(), config.windows())
            .await
            .with_context(|| format!("cannot read the digest of the data of run {run}"))?;
        config.pin(digest);
        return Ok(());
    }
    let snapshots = Snapshots::required(storage)?;
    let branch = snapshots.create(run.as_str()).await?;
    if !quiet {
        eprintln!(
            "run {run} is pinned to the Neon branch {} ({}{}): its workers read their bars there",
            branch.name,
            branch.id,
            branch.lsn.as_ref().map_or_else(String::new, |lsn| format!(", at LSN {lsn}"))
        );
    }
    config.pin(DataPin::Snapshot { branch: branch.name, branch_id: branch.id, lsn: branch.lsn });
    Ok(())
}

/// Before a stored run goes on: a run pinned to a digest of its data is
/// refused when the bars of its windows changed since (unless `allow`); a
/// run pinned to a snapshot needs the Neon API to read it.
async fn check_data(
    stores: &crate::backend::Stores,
    spec: &strata_core::evolution::RunSpec,
    allow: bool,
) -> Result<()> {
    let config = RunConfig::parse(&spec.config)?;
    let run = &spec.id;
    let Some(DataPin::Digest { digest, bars }) = &config.data else { return Ok(()) };
    let now = data_digest(stores.market.as_ref(), config.windows())
        .await
        .with_context(|| format!("cannot read the digest of the data of run {run}"))?;
    let DataPin::Digest { digest: now_digest, bars: now_bars } = &now else { return Ok(()) };
    if now_digest == digest {
        return Ok(());
    }
    let what = format!(
        "the bars of run {run}'s window ({}) changed since it was created: {bars} bars with digest {digest} then,          {now_bars} bars with digest {now_digest} now",
        config.window.describe()
    );
    if !allow {
        return Err(UsageError(format!(
            "{what}. Its results so far were computed on the old bars. Go on anyway with --allow-data-change, or              start a new run (--run-id); runs pinned with --snapshot (neon) read their own copy of the data"
        ))
        .into());
    }
    // On stderr also with --json: the results will mix two versions of the data.
    eprintln!("warning: {what}; going on as --allow-data-change asks");
    Ok(())
}

/// The CLI's [`SnapshotSource`]: a pinned run's bars from its Neon branch.
#[derive(Debug)]
struct BranchBars(Snapshots);

#[async_trait::async_trait]
impl SnapshotSource for BranchBars {
    async fn open(&self, branch: &str) -> strata_ga_coord::GaResult<Arc<dyn MarketDataStore>> {
        self.0.open(branch).await.map_err(|error| StoreError::unavailable("neon", format!("{error:#}"), None).into())
    }
}

/// The bars a run's summary backtests its test window on: its snapshot's
/// (`None`, so no out-of-sample figures, when the snapshot cannot be read
/// here), or the store's.
async fn run_market(
    stores: &crate::backend::Stores,
    snapshots: Option<&Arc<dyn SnapshotSource>>,
    snapshot: Option<&str>,
) -> Option<Arc<dyn MarketDataStore>> {
    let Some(branch) = snapshot else { return Some(stores.market.clone()) };
    match snapshots {
        Some(source) => match source.open(branch).await {
            Ok(market) => Some(market),
            Err(error) => {
                eprintln!("note: the snapshot branch {branch} cannot be read ({error}): no out-of-sample figures");
                None
            }
        },
        None => None,
    }
}

/// `strata runs delete`: the snapshot branch first (so a failure leaves the
/// run, and running the command again finishes the job), then the run.
async fn delete_run(
    stores: &crate::backend::Stores,
    storage: &StorageConfig,
    run: &RunId,
    keep_branch: bool,
    as_json: bool,
) -> Result<()> {
    let record = match stores.evolution.get_run(run).await {
        Ok(record) => record,
        Err(StoreError::NotFound { .. }) => {
            return Err(UsageError(format!("no run {run} in {} (strata runs list)", stores.description)).into());
        }
        Err(error) => return Err(anyhow::Error::new(error).context(format!("cannot read run {run}"))),
    };
    if record.status.is_active() {
        return Err(UsageError(format!(
            "run {run} is {}: cancel it first (strata runs cancel {run}), then delete it",
            record.status
        ))
        .into());
    }
    let branch = match RunConfig::parse(&record.spec.config).ok().and_then(|config| config.data) {
        Some(DataPin::Snapshot { branch, .. }) => Some(branch),
        _ => None,
    };
    let mut branch_deleted = None;
    if let (Some(branch), false) = (&branch, keep_branch) {
        let snapshots = Snapshots::from_env(storage)?.ok_or_else(|| {
            UsageError(format!(
                "run {run} is pinned to the Neon branch {branch}, which is deleted with it: set NEON_API_KEY and \
                 NEON_PROJECT_ID (with STORAGE_BACKEND=neon), or keep the branch with --keep-branch"
            ))
        })?;
        branch_deleted = Some(snapshots.delete(branch).await?);
    }
    let deleted = stores.evolution.delete_run(run).await.with_context(|| format!("cannot delete run {run}"))?;
    if as_json {
        let document = serde_json::json!({
            "run": run.as_str(),
            "deleted": deleted,
            "branch": branch,
            "branch_deleted": branch_deleted,
        });
        println!("{document}");
        return Ok(());
    }
    let what = match (&branch, branch_deleted) {
        (Some(branch), Some(true)) => format!(" and its snapshot branch {branch}"),
        (Some(branch), Some(false)) => format!(" (its snapshot branch {branch} was gone already)"),
        (Some(branch), None) => format!("; its snapshot branch {branch} is kept"),
        (None, _) => String::new(),
    };
    println!("deleted run {run}{what}");
    Ok(())
}

/// Where this process reads pinned runs' bars, when it can (neon with the Neon API settings).
fn snapshot_source(storage: &StorageConfig) -> Result<Option<Arc<dyn SnapshotSource>>> {
    Ok(Snapshots::from_env(storage)?.map(|snapshots| Arc::new(BranchBars(snapshots)) as Arc<dyn SnapshotSource>))
}

/// Columns and rows of the plot of `strata runs show --chart` (plus 11 columns of y axis).
const CHART_WIDTH: usize = 64;
const CHART_HEIGHT: usize = 12;

/// Runs shorter than this start without a word about their cost.
const ESTIMATE_ABOVE: Duration = Duration::from_secs(60);

/// `--workers 0` needs `strata worker` processes, which must reach the store.
fn refuse_unreachable_workers(workers: u32, stores: &crate::backend::Stores) -> Result<(), UsageError> {
    if workers == 0 && !stores.shared() {
        return Err(UsageError(format!(
            "--workers 0 leaves every evaluation to `strata worker` processes, but no other process can reach \
             the {} store; use --workers 1 or more, or a store other processes reach (duckdb, neon)",
            stores.description
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    stores: crate::backend::Stores,
    storage: &StorageConfig,
    registry: Arc<StrategyRegistry>,
    spec: strata_core::evolution::RunSpec,
    workers: Option<u32>,
    resuming: bool,
    top: usize,
    as_json: bool,
) -> Result<()> {
    let workers = workers.unwrap_or_else(default_workers);
    let run = spec.id.clone();
    refuse_unreachable_workers(workers, &stores)?;
    let holder = holder_id("evolve")?;
    let mut options = LocalOptions::new(holder.clone(), workers);
    options.hostname = host_name();
    let snapshots = snapshot_source(storage)?;
    let snapshot = RunConfig::parse(&spec.config).ok().and_then(|config| config.window.snapshot);
    if let (Some(branch), None, true) = (&snapshot, &snapshots, workers > 0) {
        return Err(UsageError(format!(
            "run {run} reads its bars from the Neon branch {branch} (it was started with --snapshot): its workers \
             need STORAGE_BACKEND=neon with NEON_API_KEY and NEON_PROJECT_ID to read them"
        ))
        .into());
    }
    options.snapshots = snapshots.clone();
    options.coordinator = CoordinatorConfig {
        takeover_wait: if resuming { Duration::from_secs(60) } else { Duration::ZERO },
        ..options.coordinator
    };
    let role_ttl = options.coordinator.lease_ttl;
    if resuming && !as_json {
        eprintln!(
            "resuming run {run}: if its last coordinator was killed, its role is taken over when it expires \
             (within {} s)",
            role_ttl.as_secs()
        );
    }
    let mut interrupts = crate::interrupt::Interrupts::listen().context("cannot listen for Ctrl-C and SIGTERM")?;
    // Created (idempotently) before the first line is printed, so a signal
    // from then on always finds a run to mark interrupted.
    stores.evolution.create_run(spec.clone()).await.with_context(|| format!("cannot create run {run}"))?;
    let show_progress = !as_json && std::io::stderr().is_terminal();
    if !as_json {
        eprintln!(
            "evolving run {run}: {} on {}, population {}, {} generations, seed {}, {workers} worker{} ({})",
            spec.strategy,
            RunConfig::parse(&spec.config).map(|c| c.window.describe()).unwrap_or_default(),
            spec.population_size,
            spec.generations,
            spec.seed,
            match workers {
                0 => "s: coordinator only, waiting for `strata worker` processes",
                1 => "",
                _ => "s",
            },
            stores.description
        );
    }
    let observer = Arc::new(ProgressObserver::new(show_progress, spec.generations));
    let evolving = evolve_local(
        stores.evolution.clone(),
        stores.market.clone(),
        registry.clone(),
        spec,
        options,
        Some(observer.clone() as Arc<dyn Observer>),
    );
    let outcome = tokio::select! {
        outcome = evolving => outcome?,
        signal = interrupts.next() => {
            observer.finish();
            return Err(interrupted(&stores, &run, &holder, role_ttl, signal).await);
        }
    };
    observer.finish();
    match outcome.result {
        Ok(_) => {}
        Err(GaError::CoordinatorBusy { run }) => {
            return Err(anyhow::anyhow!(
                "run {run} is being evolved by another process; `strata evolve --resume {run}` takes over once it stops"
            ));
        }
        Err(error @ (GaError::Config(_) | GaError::NoData(_) | GaError::Genome(_))) => {
            return Err(UsageError(error.to_string()).into());
        }
        Err(error) => return Err(anyhow::Error::new(error).context(format!("run {run} stopped"))),
    }
    let market = run_market(&stores, snapshots.as_ref(), snapshot.as_deref()).await;
    let summary = summarize(stores.evolution.as_ref(), &registry, market.as_deref(), &run, top).await?;
    // What this process's workers did: backtests run, results from the durable fitness cache.
    let reports = outcome.workers.iter().filter_map(|report| report.as_ref().ok());
    let (backtests, cached) = reports.fold((0, 0), |(b, c), report| (b + report.backtests, c + report.cached));
    if as_json {
        let mut document = summary.to_json();
        document["backtests"] = backtests.into();
        document["cached"] = cached.into();
        println!("{document}");
        return Ok(());
    }
    // Generations shown live on the terminal are not repeated.
    let shown_live = observer.lines_printed.load(std::sync::atomic::Ordering::Relaxed);
    print_summary(&summary, false, shown_live < summary.stats.len())?;
    if workers > 0 {
        eprintln!("{backtests} backtests here, {cached} results from the store's fitness cache");
    }
    Ok(())
}

/// After Ctrl-C or SIGTERM stopped `evolve`: the run is marked interrupted
/// and its role given back ([`interrupt_run`]); says what was kept and how to go on.
async fn interrupted(
    stores: &crate::backend::Stores,
    run: &RunId,
    holder: &WorkerId,
    role_ttl: Duration,
    signal: &str,
) -> anyhow::Error {
    let outcome = interrupt_run(stores.evolution.as_ref(), run, holder, role_ttl).await;
    let kept = match outcome.generations_kept {
        Ok(0) => "no generation was evaluated yet".to_string(),
        Ok(count) => format!("{count} evaluated generation(s) are kept"),
        Err(error) => format!("the kept generations could not be read ({error})"),
    };
    let status = match outcome.status {
        Ok(RunStatus::Interrupted) => "marked interrupted".to_string(),
        Ok(status) => format!("is {status}"),
        Err(error) => format!("not marked interrupted ({error})"),
    };
    crate::exit::Interrupted(format!(
        "{signal}: run {run} stopped and {status}; {kept}. Continue it with `strata evolve --resume {run}`"
    ))
    .into()
}

/// Shows one progress bar per generation and prints a line when each ends.
struct ProgressObserver {
    bars: bool,
    generations: u32,
    current: Mutex<Option<ProgressBar>>,
    lines_printed: std::sync::atomic::AtomicUsize,
}

impl ProgressObserver {
    fn new(bars: bool, generations: u32) -> Self {
        ProgressObserver { bars, generations, current: Mutex::new(None), lines_printed: Default::default() }
    }

    fn finish(&self) {
        if let Ok(mut current) = self.current.lock()
            && let Some(bar) = current.take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Observer for ProgressObserver {
    fn event(&self, event: &CoordinatorEvent) {
        let Ok(mut current) = self.current.lock() else { return };
        match event {
            CoordinatorEvent::GenerationSaved { generation, size } if self.bars => {
                if let Some(old) = current.take() {
                    old.finish_and_clear();
                }
                let bar = ProgressBar::with_draw_target(Some(u64::from(*size)), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template("{msg} [{wide_bar}] {pos}/{len} evaluated, {elapsed}") {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(format!("generation {}/{}", generation + 1, self.generations));
                bar.enable_steady_tick(Duration::from_millis(120));
                *current = Some(bar);
            }
            CoordinatorEvent::Progress { counts, .. } => {
                if let Some(bar) = current.as_ref() {
                    bar.set_position(counts.done + counts.parked);
                }
            }
            CoordinatorEvent::GenerationDone(stats) => {
                if let Some(bar) = current.take() {
                    bar.finish_and_clear();
                    eprintln!("{}", stats_line(stats, self.generations));
                    self.lines_printed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

fn print_summary(summary: &RunSummary, as_json: bool, with_stats: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", summary.to_json())?;
        return Ok(());
    }
    summary.to_text(with_stats).iter().try_for_each(|line| writeln!(out, "{line}"))?;
    Ok(())
}

/// Runs `strata worker` until killed (or idle for `--exit-when-idle`, or its
/// run ended with `--exit-when-done`).
pub(crate) async fn worker(args: &WorkerArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let _metrics = crate::serve::metrics_endpoint(&args.metrics).await?;
    // A worker on a new, empty store would have nothing to lease.
    let stores = build_stores(storage, Access::WriteExisting).await?;
    let id = match &args.id {
        Some(id) => id.clone(),
        None => holder_id("worker")?,
    };
    let run = args.exit_when_done.clone().or_else(|| args.run.clone());
    let mut config = WorkerConfig::new(id.clone()).with_ttl(args.ttl);
    config.run = run.clone();
    config.stop_when_run_ends = run.is_some();
    config.max_batch = args.batch.max(1);
    config.exit_when_idle = args.exit_when_idle;
    config.hostname = host_name();
    let market: Arc<dyn MarketDataStore> = stores.market.clone();
    let evaluator = strata_ga_coord::Evaluator::new(market, Arc::new(StrategyRegistry::default()))
        .with_snapshots(snapshot_source(storage)?);
    let mut interrupts = crate::interrupt::Interrupts::listen().context("cannot listen for Ctrl-C and SIGTERM")?;
    let target = run.as_ref().map_or("every active run".to_string(), |r| format!("run {r}"));
    eprintln!("worker {id} on {}: leasing evaluations of {target}", stores.description);
    let (stop, stopped) = watch::channel(false);
    let worker = Worker::new(stores.evolution.clone(), evaluator, config);
    let working = worker.run(stopped);
    tokio::pin!(working);
    let mut signal = None;
    let report = tokio::select! {
        report = &mut working => Some(report?),
        name = interrupts.next() => {
            // Stop leasing: the evaluation in progress finishes, finished work is
            // completed and the other leases are handed back, within the grace period.
            signal = Some(name);
            let _ = stop.send(true);
            match tokio::time::timeout(args.grace, &mut working).await {
                Ok(report) => Some(report?),
                Err(_) => None,
            }
        }
    };
    if let Some(report) = &report {
        eprintln!(
            "worker {id} stopped: {} recorded ({} backtests, {} from the fitness cache), {} failed, {} stale, {} \
             handed back, {} abandoned in {} batches",
            report.recorded,
            report.backtests,
            report.cached,
            report.failed,
            report.stale,
            report.released,
            report.abandoned,
            report.batches
        );
    }
    if let Some(signal) = signal {
        let leases = match report {
            Some(_) => "the leases it held were handed back for other workers".to_string(),
            None => format!(
                "the grace period ({} s) ran out, so the tasks it held go back to the queue within the lease TTL \
                 ({} s)",
                args.grace.as_secs_f64(),
                args.ttl.as_secs_f64()
            ),
        };
        return Err(crate::exit::Interrupted(format!(
            "{signal}: worker {id} stopped; every recorded evaluation is kept and {leases}"
        ))
        .into());
    }
    if let Some(run) = &args.exit_when_done {
        let record = stores.evolution.get_run(run).await.with_context(|| format!("cannot read run {run}"))?;
        if record.status != RunStatus::Completed {
            eprintln!("worker {id}: run {run} ended {}", record.status);
            return Ok(ExitCode::from(crate::exit::FAILURE));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata runs ...`.
pub(crate) async fn runs(args: &RunsArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let access = match &args.action {
        RunsAction::List { .. } | RunsAction::Show { .. } | RunsAction::Status { .. } => Access::Read,
        RunsAction::Cancel { .. } | RunsAction::Resume { .. } | RunsAction::Delete { .. } => Access::WriteExisting,
    };
    let stores = build_stores(storage, access).await?;
    let registry = Arc::new(StrategyRegistry::default());
    match &args.action {
        RunsAction::List { json: as_json } => {
            let runs = stores.evolution.list_runs().await?;
            let mut out = std::io::stdout().lock();
            if *as_json {
                for record in &runs {
                    writeln!(out, "{}", run_json(record))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::with_capacity(runs.len());
            for record in runs {
                let done = stores.evolution.generation_stats(&record.spec.id).await?.len();
                rows.push((record, done));
            }
            runs_table(&rows).iter().try_for_each(|line| writeln!(out, "{line}"))?;
        }
        RunsAction::Show { run, top, json: as_json, chart } => {
            let record = stores.evolution.get_run(run).await.with_context(|| format!("cannot read run {run}"))?;
            let pinned = RunConfig::parse(&record.spec.config).ok().and_then(|config| config.data);
            let snapshot = match &pinned {
                Some(DataPin::Snapshot { branch, .. }) => Some(branch.as_str()),
                _ => None,
            };
            let snapshots = if snapshot.is_some() { snapshot_source(storage)? } else { None };
            let market = run_market(&stores, snapshots.as_ref(), snapshot).await;
            let summary = summarize(stores.evolution.as_ref(), &registry, market.as_deref(), run, *top)
                .await
                .with_context(|| format!("cannot read run {run}"))?;
            if *as_json {
                let mut document = summary.to_json();
                document["data"] = serde_json::to_value(&pinned)?;
                println!("{document}");
            } else {
                let spec = &summary.record.spec;
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "seed {}, population {}, {} generations",
                    spec.seed, spec.population_size, spec.generations
                )?;
                writeln!(out, "config {}", spec.config)?;
                writeln!(out, "created {}, updated {}", summary.record.created_at, summary.record.updated_at)?;
                match &pinned {
                    Some(pin) => writeln!(out, "data {}", pin.describe())?,
                    None => writeln!(out, "data not pinned (a run made before Strata recorded what data a run used)")?,
                }
                drop(out);
                print_summary(&summary, false, true)?;
            }
            if *chart {
                let mut out = std::io::stdout().lock();
                let lines = strata_report::fitness_chart(&summary.stats, CHART_WIDTH, CHART_HEIGHT);
                if lines.is_empty() {
                    writeln!(out, "(no generation evaluated yet: nothing to chart)")?;
                }
                lines.iter().try_for_each(|line| writeln!(out, "{line}"))?;
            }
        }
        RunsAction::Status { run, json: as_json } => {
            let progress = match RunProgress::read(stores.evolution.as_ref(), run).await {
                Ok(progress) => progress,
                Err(StoreError::NotFound { .. }) => {
                    return Err(UsageError(format!("no run {run} in {} (strata runs list)", stores.description)).into());
                }
                Err(error) => return Err(anyhow::Error::new(error).context(format!("cannot read run {run}"))),
            };
            if *as_json {
                println!("{}", progress.to_json());
            } else {
                let counts = progress.counts;
                println!(
                    "run {run}: {}, generation {}/{}: {} pending, {} leased, {} done, {} parked",
                    progress.record.status,
                    progress.generation,
                    progress.record.spec.generations,
                    counts.pending,
                    counts.leased,
                    counts.done,
                    counts.parked
                );
            }
        }
        RunsAction::Cancel { run } => {
            let unfinished = [RunStatus::Pending, RunStatus::Running, RunStatus::Failed, RunStatus::Interrupted];
            let record = stores
                .evolution
                .transition_run(run, &unfinished, RunStatus::Cancelled)
                .await
                .with_context(|| format!("cannot cancel run {run}"))?;
            if record.status == RunStatus::Completed {
                return Err(UsageError(format!("run {run} is already completed")).into());
            }
            println!("run {run} cancelled: workers drop its evaluations at their next heartbeat");
        }
        RunsAction::Resume { run, workers, retry_parked, allow_data_change, json: as_json } => {
            let mut record = stores.evolution.get_run(run).await.with_context(|| format!("cannot resume run {run}"))?;
            check_data(&stores, &record.spec, *allow_data_change).await?;
            if *retry_parked {
                let requeued = stores.evolution.requeue_parked(run).await?;
                eprintln!("run {run}: {requeued} parked evaluation(s) back in the queue");
            }
            if record.status == RunStatus::Cancelled {
                record = stores.evolution.transition_run(run, &[RunStatus::Cancelled], RunStatus::Running).await?;
            }
            drive(stores, storage, registry, record.spec, *workers, true, 5, *as_json).await?;
        }
        RunsAction::Delete { run, keep_branch, json: as_json } => {
            delete_run(&stores, storage, run, *keep_branch, *as_json).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[path = "../unit-tests/evolve.rs"]
mod tests;
