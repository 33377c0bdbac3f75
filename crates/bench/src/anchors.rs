//! The anchors section of `cargo xtask bench`: Strata against what its users
//! would write instead (the seeds' stack: asyncpg, duckdb's Python client,
//! pyarrow, pandas), on the same generated rows, in the same run, each figure
//! the median of `--runs` runs with Strata and the anchor alternating; one
//! table of ratios with the goals of issue 15, also as JSON (`--json PATH`),
//! and `--check` to fail when a ratio falls below its goal by more than the
//! run-to-run noise measured.
//!
//! The anchors run in `python/anchors.py` under the Python named by
//! `STRATA_BENCH_PYTHON` (`cargo xtask bench` makes a virtual environment
//! from `python/requirements.txt` once, outside the clone); without it the
//! section prints Strata's figures alone and says why. In-process figures
//! time only the operation on both sides; "end to end" figures time a whole
//! `strata` process against the Python code from reading the file to the
//! commit (the interpreter's start and imports excluded, Strata's process
//! start included).
//!
//! Ratios are "how many times faster Strata is": rows/s over rows/s, or the
//! anchor's latency over Strata's. Memory figures are peak resident sizes of
//! a whole `strata` process (`ru_maxrss` from `wait4`, read by the system
//! `python3`), with absolute goals.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
use strata_adapter_neon::NeonStore;
use strata_core::display::group_thousands;
use strata_core::evolution::{RunId, WorkerId};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{BarBatch, BarQuery, EvolutionStore, MarketDataStore, MarketDataStoreExt, Symbol, Timestamp};
use strata_testpg::TempSchema;

use crate::python::{PythonServer, Side, median, order};

/// The environment variable naming the anchors' Python.
const PYTHON_VAR: &str = "STRATA_BENCH_PYTHON";

/// Repetitions of a latency inside one run (the run's figure is their median).
const LATENCY_REPEATS: usize = 30;

/// Repetitions of a bulk read inside one run.
const READ_REPEATS: usize = 5;

/// No-op tasks of a coordination figure.
const DUCKDB_TASKS: u32 = 4_000;
const PG_TASKS: u32 = 10_000;

/// Options of the section.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) runs: usize,
    pub(crate) rows: usize,
    pub(crate) batch_rows: usize,
    pub(crate) pg_rows: Vec<usize>,
    pub(crate) pg: bool,
    pub(crate) memory_rows: usize,
    pub(crate) json: Option<PathBuf>,
    pub(crate) check: bool,
}

/// What a figure's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    RowsPerSecond,
    /// Seconds per operation (lower is better).
    Latency,
    TasksPerSecond,
    /// Peak resident bytes (lower is better).
    Bytes,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::RowsPerSecond => "rows/s",
            Unit::Latency => "seconds",
            Unit::TasksPerSecond => "tasks/s",
            Unit::Bytes => "bytes",
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(self, Unit::RowsPerSecond | Unit::TasksPerSecond)
    }

    fn show(self, value: f64) -> String {
        match self {
            Unit::RowsPerSecond => format!("{} rows/s", compact(value)),
            Unit::TasksPerSecond => format!("{} tasks/s", group_thousands(value.round() as u64)),
            Unit::Latency if value < 0.01 => format!("{:.2} ms", value * 1e3),
            Unit::Latency if value < 1.0 => format!("{:.1} ms", value * 1e3),
            Unit::Latency => format!("{value:.2} s"),
            Unit::Bytes => format!("{:.0} MiB", value / (1024.0 * 1024.0)),
        }
    }
}

/// `1.23M`, `456k`: a rate short enough for the table.
fn compact(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// What a figure must reach.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// Strata at least this many times faster than the anchor.
    Ratio(f64),
    /// Strata's value at least this (a rate).
    AtLeast(f64),
    /// Strata's value at most this (bytes).
    AtMost(f64),
}

/// One line of the table: per-run values of both sides.
#[derive(Debug, Clone)]
struct Figure {
    group: &'static str,
    operation: String,
    anchor: String,
    unit: Unit,
    strata: Vec<f64>,
    anchor_values: Vec<f64>,
    goal: Option<Goal>,
}

/// How a figure stands against its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    /// Below the goal, by no more than the run-to-run noise.
    WithinNoise,
    Missed,
    NoGoal,
    /// The anchor did not run, so a ratio goal cannot be judged.
    NoAnchor,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::WithinNoise => "within noise",
            Verdict::Missed => "MISSED",
            Verdict::NoGoal => "",
            Verdict::NoAnchor => "no anchor",
        }
    }
}

impl Figure {
    /// Per-run speed ratios (Strata faster when above 1), for runs where both sides ran.
    fn ratios(&self) -> Vec<f64> {
        self.strata
            .iter()
            .zip(&self.anchor_values)
            .map(
                |(&strata, &anchor)| {
                    if self.unit.higher_is_better() { strata / anchor.max(1e-12) } else { anchor / strata.max(1e-12) }
                },
            )
            .collect()
    }

    /// The median ratio and the noise (half the range of the per-run ratios).
    fn ratio(&self) -> Option<(f64, f64, f64, f64)> {
        let ratios = self.ratios();
        if ratios.is_empty() {
            return None;
        }
        let (min, max) = min_max(&ratios);
        Some((median(&ratios), min, max, (max - min) / 2.0))
    }

    fn verdict(&self) -> Verdict {
        let judge = |value: f64, noise: f64, goal: f64, higher: bool| {
            let (value, goal) = if higher { (value, goal) } else { (-value, -goal) };
            if value >= goal {
                Verdict::Met
            } else if value + noise >= goal {
                Verdict::WithinNoise
            } else {
                Verdict::Missed
            }
        };
        match self.goal {
            None => Verdict::NoGoal,
            Some(Goal::Ratio(goal)) => match self.ratio() {
                Some((ratio, _, _, noise)) => judge(ratio, noise, goal, true),
                None => Verdict::NoAnchor,
            },
            Some(Goal::AtLeast(goal)) => {
                let (min, max) = min_max(&self.strata);
                judge(median(&self.strata), (max - min) / 2.0, goal, true)
            }
            Some(Goal::AtMost(goal)) => {
                let (min, max) = min_max(&self.strata);
                judge(median(&self.strata), (max - min) / 2.0, goal, false)
            }
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            None => String::new(),
            Some(Goal::Ratio(goal)) => format!(">= {goal:.1}x"),
            Some(Goal::AtLeast(goal)) => format!(">= {}", self.unit.show(goal)),
            Some(Goal::AtMost(goal)) => format!("<= {}", self.unit.show(goal)),
        }
    }

    fn to_json(&self) -> Value {
        let side = |values: &[f64]| {
            if values.is_empty() { Value::Null } else { json!({ "median": median(values), "runs": values }) }
        };
        let goal = match self.goal {
            None => Value::Null,
            Some(Goal::Ratio(value)) => json!({ "kind": "ratio_at_least", "value": value }),
            Some(Goal::AtLeast(value)) => json!({ "kind": "at_least", "value": value }),
            Some(Goal::AtMost(value)) => json!({ "kind": "at_most", "value": value }),
        };
        json!({
            "group": self.group,
            "operation": self.operation,
            "unit": self.unit.name(),
            "strata": side(&self.strata),
            "anchor_name": self.anchor,
            "anchor": side(&self.anchor_values),
            "ratio": self.ratio().map(|(median, min, max, noise)| json!({
                "median": median, "min": min, "max": max, "noise": noise, "runs": self.ratios(),
            })),
            "goal": goal,
            "verdict": self.verdict().name(),
        })
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(min, max), &v| (min.min(v), max.max(v)))
}

/// The anchors' Python, when it runs.
struct Anchors {
    server: Option<PythonServer>,
    versions: Value,
}

impl Anchors {
    fn start() -> Self {
        let Some(python) = std::env::var(PYTHON_VAR).ok().filter(|python| !python.trim().is_empty()) else {
            eprintln!(
                "strata-bench: anchors: the Python anchors are skipped: {PYTHON_VAR} is unset (`cargo xtask bench` \
                 sets it after making a virtual environment from crates/bench/python/requirements.txt; it could \
                 not, or you ran strata-bench directly). Strata's figures only."
            );
            return Anchors { server: None, versions: Value::Null };
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/anchors.py");
        match PythonServer::start("the Python anchors", &python, &[script.as_os_str()]) {
            Ok((server, ready)) => {
                let versions = ready["versions"].clone();
                eprintln!("strata-bench: anchors: {versions}");
                Anchors { server: Some(server), versions }
            }
            Err(error) => {
                eprintln!("strata-bench: anchors: the Python anchors are skipped: {error:#}; Strata's figures only");
                Anchors { server: None, versions: Value::Null }
            }
        }
    }

    fn running(&self) -> bool {
        self.server.is_some()
    }

    /// Sends `request`; the answer's `seconds` (one per repetition) and `rows`.
    fn run(&mut self, request: Value) -> Result<Option<(Vec<f64>, u64)>> {
        let Some(server) = self.server.as_mut() else { return Ok(None) };
        let answer = server.request(&request)?;
        let seconds: Vec<f64> =
            answer["seconds"].as_array().map(|s| s.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        Ok(Some((seconds, answer["rows"].as_u64().unwrap_or_default())))
    }
}

/// Runs the section: measures, prints the table, writes the JSON, and with
/// `--check` fails when a goal is missed by more than the noise.
pub(crate) async fn run(options: &Options) -> Result<()> {
    let mut anchors = Anchors::start();
    let work = tempfile::tempdir().context("creating a temporary directory for the anchors section")?;
    let strata = strata_binary()?;
    let mut figures = Vec::new();
    let runs = options.runs.max(1);
    eprintln!("strata-bench: anchors: {runs} runs of every figure, Strata and the anchor alternating");
    duckdb_group(options, runs, &mut anchors, work.path(), &strata, &mut figures).await?;
    match std::env::var("DATABASE_URL") {
        Ok(url) if options.pg && !url.trim().is_empty() => {
            postgres_group(options, runs, &url, &mut anchors, work.path(), &strata, &mut figures).await?;
        }
        _ => eprintln!("strata-bench: anchors: PostgreSQL figures skipped (DATABASE_URL unset or --skip-pg)"),
    }
    if options.memory_rows > 0 {
        memory_group(options.memory_rows, work.path(), &strata, &mut figures)?;
    }
    if let Some(server) = anchors.server.take() {
        server.finish()?;
    }
    print_figures(&figures);
    if let Some(path) = &options.json {
        let document = json!({
            "section": "anchors",
            "runs": runs,
            "rows": options.rows,
            "anchor_versions": anchors.versions,
            "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&document)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("strata-bench: anchors: JSON written to {}", path.display());
    }
    let missed: Vec<&Figure> = figures.iter().filter(|figure| figure.verdict() == Verdict::Missed).collect();
    if options.check && !missed.is_empty() {
        let names: Vec<String> = missed.iter().map(|figure| format!("{} {}", figure.group, figure.operation)).collect();
        bail!(
            "--check: {} goal{} missed by more than the run-to-run noise: {}",
            missed.len(),
            if missed.len() == 1 { "" } else { "s" },
            names.join("; ")
        );
    }
    Ok(())
}

/// The `strata` executable built beside this one.
fn strata_binary() -> Result<PathBuf> {
    let here = std::env::current_exe().context("finding strata-bench's own path")?;
    let strata = here.with_file_name(format!("strata{}", std::env::consts::EXE_SUFFIX));
    ensure!(strata.is_file(), "{} is missing: build the workspace first (`cargo xtask bench` does)", strata.display());
    Ok(strata)
}

/// Runs `strata args...` with `envs`, timed; fails with its stderr when it fails.
fn strata_timed(strata: &Path, args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> Result<Duration> {
    let started = Instant::now();
    let output = Command::new(strata)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .with_context(|| format!("running {}", strata.display()))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("strata {:?} failed: {}", args, String::from_utf8_lossy(&output.stderr));
    }
    Ok(elapsed)
}

/// The median of `repeats` timings of `work`.
async fn median_of<F, Fut>(repeats: usize, mut work: F) -> Result<(f64, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    let mut seconds = Vec::with_capacity(repeats);
    let mut rows = 0;
    for _ in 0..repeats {
        let started = Instant::now();
        rows = work().await?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    Ok((median(&seconds), rows))
}

async fn read_rows(store: &dyn MarketDataStore, query: BarQuery) -> Result<usize> {
    Ok(store.collect_batches(query).await?.iter().map(BarBatch::len).sum())
}

/// A one-day window (1,440 one-minute bars) in the middle of `spec`'s first series.
fn one_day(spec: &SyntheticSpec) -> (Timestamp, Timestamp) {
    let day = Timestamp::MICROS_PER_DAY;
    let middle = spec.start.plus_micros(spec.bars_per_symbol as i64 / 2 * spec.interval_micros);
    let start = Timestamp(middle.micros() - middle.micros().rem_euclid(day));
    (start, start.plus_micros(day))
}

/// Lease+complete of `tasks` no-op tasks with `workers` concurrent workers on `store`; tasks/s.
async fn strata_leases(store: Arc<dyn EvolutionStore>, tasks: u32, workers: usize, tag: &str) -> Result<f64> {
    let run = RunId::new(format!("anchor-{tag}-{:x}", Timestamp::now().micros() & 0xffff_ffff))?;
    crate::noop::create_noop_run(store.as_ref(), &run, tasks).await?;
    let started = Instant::now();
    let mut handles = Vec::new();
    for worker in 0..workers {
        let (store, run) = (Arc::clone(&store), run.clone());
        handles.push(tokio::spawn(async move {
            let worker = WorkerId::new(format!("anchor-{worker}"))?;
            crate::noop::lease_and_complete(store.as_ref(), &run, &worker).await
        }));
    }
    let mut done = 0;
    for handle in handles {
        done += handle.await??;
    }
    let elapsed = started.elapsed();
    ensure!(done == u64::from(tasks), "completed {done} of {tasks} no-op tasks");
    Ok(done as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// The embedded default against duckdb's Python client.
async fn duckdb_group(
    options: &Options,
    runs: usize,
    anchors: &mut Anchors,
    work: &Path,
    strata: &Path,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let symbols = 10;
    let spec = SyntheticSpec::minutes(symbols, (options.rows / symbols).max(1), 17);
    let batches: Vec<BarBatch> = spec.batches(options.batch_rows).collect();
    let total: usize = batches.iter().map(BarBatch::len).sum();
    let size = crate::short(total);
    eprintln!("strata-bench: anchors: DuckDB, {} rows", group_thousands(total as u64));
    let parquet = work.join("duckdb-bars.parquet");
    crate::efs::write_parquet(&parquet, &batches)?;
    anchors.run(json!({ "op": "load", "parquet": parquet }))?;

    let mut ingest = Figure {
        group: "duckdb",
        operation: format!("ingest {size}, key kept unique"),
        anchor: "duckdb-python INSERT OR REPLACE from Arrow, keyed table".into(),
        unit: Unit::RowsPerSecond,
        strata: Vec::new(),
        anchor_values: Vec::new(),
        goal: Some(Goal::Ratio(1.0)),
    };
    let mut end_to_end = Figure {
        operation: format!("ingest {size} Parquet, end to end"),
        anchor: "python: pq.read_table + duckdb INSERT OR REPLACE".into(),
        ..ingest.clone()
    };
    let mut store: Option<DuckDbStore> = None;
    let mut anchor_path: Option<PathBuf> = None;
    for run in 0..runs {
        for side in order(run) {
            match side {
                Side::Strata => {
                    drop(store.take());
                    let path = work.join(format!("strata-{run}.duckdb"));
                    let opened = DuckDbStore::open(DuckDbConfig::new(&path)).await?;
                    let started = Instant::now();
                    for batch in &batches {
                        opened.write_bars(batch.clone()).await.context("duckdb: write_bars")?;
                    }
                    ingest.strata.push(total as f64 / started.elapsed().as_secs_f64());
                    store = Some(opened);
                    let file = work.join(format!("strata-e2e-{run}.duckdb"));
                    let file = file.to_string_lossy().into_owned();
                    let elapsed = strata_timed(
                        strata,
                        &["ingest".as_ref(), parquet.as_os_str()],
                        &[("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", &file)],
                    )?;
                    end_to_end.strata.push(total as f64 / elapsed.as_secs_f64());
                    std::fs::remove_file(&file).ok();
                }
                Side::Anchor => {
                    if let Some(old) = anchor_path.take() {
                        anchors.run(json!({ "op": "duck_close", "path": old }))?;
                    }
                    let path = work.join(format!("anchor-{run}.duckdb"));
                    if let Some((seconds, rows)) =
                        anchors.run(json!({ "op": "duck_ingest", "parquet": parquet, "path": path }))?
                    {
                        ensure!(rows == total as u64, "duckdb-python stored {rows} rows, expected {total}");
                        ingest.anchor_values.push(total as f64 / seconds[0]);
                    }
                    let file = work.join(format!("anchor-e2e-{run}.duckdb"));
                    if let Some((seconds, _)) =
                        anchors.run(json!({ "op": "duck_ingest_e2e", "parquet": parquet, "path": file }))?
                    {
                        end_to_end.anchor_values.push(total as f64 / seconds[0]);
                    }
                    std::fs::remove_file(&file).ok();
                    anchor_path = Some(path);
                }
            }
        }
    }
    figures.push(ingest);
    figures.push(end_to_end);
    let store = store.context("no DuckDB ingest ran")?;
    ensure!(store.summary().await?.total_rows() == total as u64, "the DuckDB store lost rows");

    // Queries on the last files written, rotating over the symbols.
    let range_start = spec.start.plus_micros(spec.bars_per_symbol as i64 / 4 * spec.interval_micros);
    let range_end = spec.start.plus_micros(spec.bars_per_symbol as i64 * 3 / 4 * spec.interval_micros);
    let (day_start, day_end) = one_day(&spec);
    let mut range = Figure {
        group: "duckdb",
        operation: "range read, 1 symbol, to Arrow".into(),
        anchor: "duckdb-python con.sql(...).to_arrow_table()".into(),
        unit: Unit::RowsPerSecond,
        strata: Vec::new(),
        anchor_values: Vec::new(),
        goal: Some(Goal::Ratio(1.0)),
    };
    let mut latest = Figure { operation: "latest 100 bars, latency".into(), unit: Unit::Latency, ..range.clone() };
    let mut window = Figure { operation: "1-day window (1,440 bars), latency".into(), ..latest.clone() };
    for run in 0..runs {
        let symbol = spec.symbols[run % spec.symbols.len()].clone();
        let key = Symbol::new(symbol.clone())?;
        for side in order(run) {
            match side {
                Side::Strata => {
                    let query = BarQuery::symbol(key.clone()).between(range_start, range_end);
                    let (seconds, rows) = median_of(READ_REPEATS, || read_rows(&store, query.clone())).await?;
                    range.strata.push(rows as f64 / seconds);
                    let query = BarQuery::latest(key.clone(), 100);
                    let (seconds, rows) = median_of(LATENCY_REPEATS, || read_rows(&store, query.clone())).await?;
                    ensure!(rows == 100, "latest 100 returned {rows} rows");
                    latest.strata.push(seconds);
                    let query = BarQuery::symbol(key.clone()).between(day_start, day_end);
                    let (seconds, rows) = median_of(LATENCY_REPEATS, || read_rows(&store, query.clone())).await?;
                    ensure!(rows == 1440, "a 1-day window returned {rows} rows");
                    window.strata.push(seconds);
                }
                Side::Anchor => {
                    let Some(path) = &anchor_path else { continue };
                    let request = json!({ "op": "duck_range", "path": path, "symbol": symbol, "repeat": READ_REPEATS,
                        "start_us": range_start.micros(), "end_us": range_end.micros() });
                    if let Some((seconds, rows)) = anchors.run(request)? {
                        range.anchor_values.push(rows as f64 / median(&seconds));
                    }
                    let request = json!({ "op": "duck_latest", "path": path, "symbol": symbol, "limit": 100,
                        "repeat": LATENCY_REPEATS });
                    if let Some((seconds, _)) = anchors.run(request)? {
                        latest.anchor_values.push(median(&seconds));
                    }
                    let request = json!({ "op": "duck_window", "path": path, "symbol": symbol,
                        "repeat": LATENCY_REPEATS, "start_us": day_start.micros(), "end_us": day_end.micros() });
                    if let Some((seconds, rows)) = anchors.run(request)? {
                        ensure!(rows == 1440, "duckdb-python's 1-day window returned {rows} rows");
                        window.anchor_values.push(median(&seconds));
                    }
                }
            }
        }
    }
    figures.extend([range, latest, window]);
    drop(store);

    // Coordination: no-op lease (32) + complete cycles.
    for workers in [1usize, 2] {
        let mut leases = Figure {
            group: "duckdb",
            operation: format!("lease+complete x32, {workers} worker{}", if workers == 1 { "" } else { "s" }),
            anchor: "duckdb-python UPDATE ... RETURNING lease, executemany complete".into(),
            unit: Unit::TasksPerSecond,
            strata: Vec::new(),
            anchor_values: Vec::new(),
            goal: (workers == 1).then_some(Goal::AtLeast(3000.0)),
        };
        for run in 0..runs {
            for side in order(run) {
                match side {
                    Side::Strata => {
                        let path = work.join(format!("leases-{workers}-{run}.duckdb"));
                        let store: Arc<dyn EvolutionStore> =
                            Arc::new(DuckDbStore::open(DuckDbConfig::new(&path)).await?);
                        leases.strata.push(strata_leases(store, DUCKDB_TASKS, workers, "duckdb").await?);
                    }
                    Side::Anchor => {
                        let path = work.join(format!("anchor-leases-{workers}-{run}.duckdb"));
                        let request = json!({ "op": "duck_leases", "path": path, "run": format!("r{run}"),
                            "tasks": DUCKDB_TASKS, "workers": workers });
                        if let Some((seconds, done)) = anchors.run(request)? {
                            ensure!(done == u64::from(DUCKDB_TASKS), "the anchor completed {done} tasks");
                            leases.anchor_values.push(done as f64 / seconds[0]);
                        }
                        anchors.run(json!({ "op": "duck_close", "path": path }))?;
                    }
                }
            }
        }
        figures.push(leases);
    }
    if let Some(path) = anchor_path {
        anchors.run(json!({ "op": "duck_close", "path": path }))?;
    }
    Ok(())
}

/// The neon backend on PostgreSQL at `url` against asyncpg and psql.
async fn postgres_group(
    options: &Options,
    runs: usize,
    url: &str,
    anchors: &mut Anchors,
    work: &Path,
    strata: &Path,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let psql = crate::postgres::which_psql().context("the PostgreSQL anchors need psql, which is not installed")?;
    let schema = format!("strata_anchor_{}", std::process::id());
    let anchor_schema = format!("{schema}_py");
    let _dropped_at_the_end = (TempSchema::new(url, &schema), TempSchema::new(url, &anchor_schema));
    crate::postgres::psql_timed(
        &psql,
        url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS {anchor_schema} CASCADE"),
    )?;
    let store = Arc::new(NeonStore::open(crate::postgres::store_config(url, &schema)?).await?);
    let anchor_tables = NeonStore::open(crate::postgres::store_config(url, &anchor_schema)?).await?;
    let envs = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url), ("STRATA_PG_SCHEMA", schema.as_str())];
    let truncate = format!("TRUNCATE {schema}.ohlcv_bars; TRUNCATE {anchor_schema}.ohlcv_bars");
    let symbols = 10;
    let mut last: Option<SyntheticSpec> = None;
    for (index, &rows) in options.pg_rows.iter().enumerate() {
        let spec = SyntheticSpec::minutes(symbols, (rows / symbols).max(1), 19);
        let batches: Vec<BarBatch> = spec.batches(options.batch_rows).collect();
        let total: usize = batches.iter().map(BarBatch::len).sum();
        let size = crate::short(total);
        eprintln!("strata-bench: anchors: PostgreSQL, {} rows", group_thousands(total as u64));
        let parquet = work.join(format!("pg-{total}.parquet"));
        crate::efs::write_parquet(&parquet, &batches)?;
        crate::postgres::prepare_partitions(&store, &spec, &batches).await?;
        crate::postgres::prepare_partitions(&anchor_tables, &spec, &batches).await?;
        let mut ingest = Figure {
            group: "postgres",
            operation: format!("ingest {size} Parquet, end to end"),
            anchor: "asyncpg copy_records_to_table, pyarrow read".into(),
            unit: Unit::RowsPerSecond,
            strata: Vec::new(),
            anchor_values: Vec::new(),
            goal: Some(Goal::Ratio(1.5)),
        };
        for run in 0..runs {
            crate::postgres::psql_timed(&psql, url, &truncate)?;
            for side in order(run) {
                match side {
                    Side::Strata => {
                        let elapsed = strata_timed(strata, &["ingest".as_ref(), parquet.as_os_str()], &envs)?;
                        ingest.strata.push(total as f64 / elapsed.as_secs_f64());
                    }
                    Side::Anchor => {
                        let request = json!({ "op": "pg_ingest", "parquet": parquet, "dsn": url,
                            "schema": anchor_schema, "table": "ohlcv_bars" });
                        if let Some((seconds, copied)) = anchors.run(request)? {
                            ensure!(copied == total as u64, "asyncpg copied {copied} rows, expected {total}");
                            ingest.anchor_values.push(total as f64 / seconds[0]);
                        }
                    }
                }
            }
        }
        figures.push(ingest);
        let stored = store.summary().await?.total_rows();
        ensure!(stored == total as u64, "strata ingest stored {stored} rows, expected {total}");

        if index == 0 {
            // The CLI pipeline on CSV against psql's own \copy of the same file.
            let csv = work.join(format!("pg-{total}.csv"));
            crate::postgres::write_csv(&csv, &batches)?;
            let copy = format!(
                "\\copy {anchor_schema}.ohlcv_bars (symbol, ts, open, high, low, close, volume, vwap, trade_count) \
                 FROM '{}' WITH (FORMAT csv, HEADER true)",
                csv.display()
            );
            let mut csv_ingest = Figure {
                operation: format!("ingest {size} CSV, end to end"),
                anchor: "psql \\copy of the same file".into(),
                goal: Some(Goal::Ratio(1.0)),
                strata: Vec::new(),
                anchor_values: Vec::new(),
                ..figures.last().cloned().context("no ingest figure")?
            };
            for run in 0..runs {
                crate::postgres::psql_timed(&psql, url, &truncate)?;
                for side in order(run) {
                    match side {
                        Side::Strata => {
                            let elapsed = strata_timed(strata, &["ingest".as_ref(), csv.as_os_str()], &envs)?;
                            csv_ingest.strata.push(total as f64 / elapsed.as_secs_f64());
                        }
                        Side::Anchor => {
                            let elapsed = crate::postgres::psql_timed(&psql, url, &copy)?;
                            csv_ingest.anchor_values.push(total as f64 / elapsed.as_secs_f64());
                        }
                    }
                }
            }
            figures.push(csv_ingest);
            std::fs::remove_file(&csv).ok();
            // Both tables hold the rows again for what follows.
            crate::postgres::psql_timed(&psql, url, &truncate)?;
            strata_timed(strata, &["ingest".as_ref(), parquet.as_os_str()], &envs)?;
            if anchors.running() {
                let request = json!({ "op": "pg_ingest", "parquet": parquet, "dsn": url,
                    "schema": anchor_schema, "table": "ohlcv_bars" });
                anchors.run(request)?;
            }
        }
        if index + 1 == options.pg_rows.len() {
            // Upserts of 100k rows both tables hold.
            let upsert_rows: Vec<BarBatch> = spec.batches(100_000).take(1).collect();
            let upsert_file = work.join("pg-upsert.parquet");
            crate::efs::write_parquet(&upsert_file, &upsert_rows)?;
            let upsert_total: usize = upsert_rows.iter().map(BarBatch::len).sum();
            let mut upsert = Figure {
                group: "postgres",
                operation: format!("upsert {} existing bars", crate::short(upsert_total)),
                anchor: "asyncpg executemany INSERT ... ON CONFLICT DO UPDATE".into(),
                unit: Unit::RowsPerSecond,
                strata: Vec::new(),
                anchor_values: Vec::new(),
                goal: Some(Goal::Ratio(2.0)),
            };
            for run in 0..runs {
                for side in order(run) {
                    match side {
                        Side::Strata => {
                            let started = Instant::now();
                            for batch in &upsert_rows {
                                store.write_bars(batch.clone()).await?;
                            }
                            upsert.strata.push(upsert_total as f64 / started.elapsed().as_secs_f64());
                        }
                        Side::Anchor => {
                            let request = json!({ "op": "pg_upsert", "parquet": upsert_file, "dsn": url,
                                "schema": anchor_schema, "table": "ohlcv_bars" });
                            if let Some((seconds, written)) = anchors.run(request)? {
                                upsert.anchor_values.push(written as f64 / seconds[0]);
                            }
                        }
                    }
                }
            }
            figures.push(upsert);
            last = Some(spec);
        }
    }
    let spec = last.context("no PostgreSQL row count given (--pg-rows)")?;
    // One statement per psql call: `psql -c` runs several as one transaction, where VACUUM cannot run.
    for analysed in [&schema, &anchor_schema] {
        crate::postgres::psql_timed(&psql, url, &format!("VACUUM ANALYZE {analysed}.ohlcv_bars"))?;
    }
    let per_symbol = spec.bars_per_symbol;
    let mut read = Figure {
        group: "postgres",
        operation: format!("read 1 symbol ({} bars)", crate::short(per_symbol)),
        anchor: "asyncpg fetch into a pandas DataFrame".into(),
        unit: Unit::RowsPerSecond,
        strata: Vec::new(),
        anchor_values: Vec::new(),
        goal: Some(Goal::Ratio(3.0)),
    };
    let mut window = Figure {
        operation: "1-day window (1,440 bars), latency".into(),
        unit: Unit::Latency,
        goal: None,
        ..read.clone()
    };
    let (day_start, day_end) = one_day(&spec);
    let end = spec.start.plus_micros(per_symbol as i64 * spec.interval_micros);
    for run in 0..runs {
        let symbol = spec.symbols[run % spec.symbols.len()].clone();
        let key = Symbol::new(symbol.clone())?;
        for side in order(run) {
            match side {
                Side::Strata => {
                    let query = BarQuery::symbol(key.clone()).between(spec.start, end);
                    let (seconds, rows) = median_of(3, || read_rows(store.as_ref(), query.clone())).await?;
                    ensure!(rows == per_symbol, "read {rows} rows, expected {per_symbol}");
                    read.strata.push(rows as f64 / seconds);
                    let query = BarQuery::symbol(key.clone()).between(day_start, day_end);
                    let (seconds, rows) =
                        median_of(LATENCY_REPEATS, || read_rows(store.as_ref(), query.clone())).await?;
                    ensure!(rows == 1440, "a 1-day window returned {rows} rows");
                    window.strata.push(seconds);
                }
                Side::Anchor => {
                    let request = json!({ "op": "pg_read", "dsn": url, "schema": anchor_schema,
                        "table": "ohlcv_bars", "symbol": symbol, "repeat": 3,
                        "start_us": spec.start.micros(), "end_us": end.micros() });
                    if let Some((seconds, rows)) = anchors.run(request)? {
                        ensure!(rows == per_symbol as u64, "asyncpg read {rows} rows, expected {per_symbol}");
                        read.anchor_values.push(rows as f64 / median(&seconds));
                    }
                    let request = json!({ "op": "pg_window", "dsn": url, "schema": anchor_schema,
                        "table": "ohlcv_bars", "symbol": symbol, "repeat": LATENCY_REPEATS,
                        "start_us": day_start.micros(), "end_us": day_end.micros() });
                    if let Some((seconds, _)) = anchors.run(request)? {
                        window.anchor_values.push(median(&seconds));
                    }
                }
            }
        }
    }
    figures.extend([read, window]);

    for workers in [1usize, 2] {
        let mut leases = Figure {
            group: "postgres",
            operation: format!("lease+complete x32, {workers} worker{}", if workers == 1 { "" } else { "s" }),
            anchor: "asyncpg UPDATE ... SKIP LOCKED lease, executemany complete".into(),
            unit: Unit::TasksPerSecond,
            strata: Vec::new(),
            anchor_values: Vec::new(),
            goal: None,
        };
        for run in 0..runs {
            for side in order(run) {
                match side {
                    Side::Strata => {
                        let evolution: Arc<dyn EvolutionStore> = store.clone();
                        leases.strata.push(strata_leases(evolution, PG_TASKS, workers, "pg").await?);
                    }
                    Side::Anchor => {
                        let request = json!({ "op": "pg_leases", "dsn": url, "schema": anchor_schema,
                            "run": format!("r{workers}-{run}"), "tasks": PG_TASKS, "workers": workers });
                        if let Some((seconds, done)) = anchors.run(request)? {
                            ensure!(done == u64::from(PG_TASKS), "the anchor completed {done} tasks");
                            leases.anchor_values.push(done as f64 / seconds[0]);
                        }
                    }
                }
            }
        }
        figures.push(leases);
    }
    store.close().await;
    anchor_tables.close().await;
    Ok(())
}

/// Peak resident size of `strata` ingesting `rows` bars from CSV and from
/// Parquet into a fresh DuckDB file, and of `strata query` writing them all
/// to a Parquet file (once each: these take tens of seconds).
fn memory_group(rows: usize, work: &Path, strata: &Path, figures: &mut Vec<Figure>) -> Result<()> {
    let symbols = 10;
    let spec = SyntheticSpec::minutes(symbols, (rows / symbols).max(1), 23);
    let total = spec.total_rows();
    let size = crate::short(total);
    eprintln!("strata-bench: anchors: memory, {} rows", group_thousands(total as u64));
    let csv = work.join("memory.csv");
    let parquet = work.join("memory.parquet");
    {
        let batches = || spec.batches(100_000);
        let mut writer = strata_formats::write::CsvWriter::new(std::io::BufWriter::new(std::fs::File::create(&csv)?))?;
        let mut parquet_writer =
            strata_formats::write::ParquetWriter::new(std::io::BufWriter::new(std::fs::File::create(&parquet)?))?;
        for batch in batches() {
            writer.write(&batch)?;
            parquet_writer.write(&batch)?;
        }
        std::io::Write::flush(&mut writer.finish()?)?;
        std::io::Write::flush(&mut parquet_writer.finish()?)?;
    }
    let gib = 1024.0 * 1024.0 * 1024.0;
    let database = work.join("memory.duckdb");
    let database_text = database.to_string_lossy().into_owned();
    let envs = [("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", database_text.as_str())];
    for (format, file) in [("CSV", &csv), ("Parquet", &parquet)] {
        std::fs::remove_file(&database).ok();
        let peak = peak_resident(strata, &["ingest".as_ref(), file.as_os_str()], &envs)?;
        figures.push(Figure {
            group: "memory",
            operation: format!("ingest {size} {format} into DuckDB, peak RSS"),
            anchor: String::new(),
            unit: Unit::Bytes,
            strata: vec![peak],
            anchor_values: Vec::new(),
            goal: Some(Goal::AtMost(gib)),
        });
    }
    std::fs::remove_file(&csv).ok();
    let output = work.join("memory-out.parquet");
    let mut args: Vec<&std::ffi::OsStr> = vec!["query".as_ref()];
    args.extend(spec.symbols.iter().map(|symbol| std::ffi::OsStr::new(symbol.as_str())));
    args.extend(["--format".as_ref(), "parquet".as_ref(), "--output".as_ref(), output.as_os_str()]);
    let peak = peak_resident(strata, &args, &envs)?;
    figures.push(Figure {
        group: "memory",
        operation: format!("query {size} to a Parquet file, peak RSS"),
        anchor: String::new(),
        unit: Unit::Bytes,
        strata: vec![peak],
        anchor_values: Vec::new(),
        goal: Some(Goal::AtMost(gib / 2.0)),
    });
    Ok(())
}

/// Runs `strata args` under the system `python3`, which waits for it with
/// `os.wait4` and prints its peak resident size (`ru_maxrss`, KiB on Linux).
fn peak_resident(strata: &Path, args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> Result<f64> {
    const WAIT4: &str = "import os, subprocess, sys\n\
        child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
        _, status, usage = os.wait4(child.pid, 0)\n\
        print(usage.ru_maxrss)\n\
        sys.exit(os.waitstatus_to_exitcode(status))\n";
    let output = Command::new("python3")
        .arg("-c")
        .arg(WAIT4)
        .arg(strata)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .context("running python3 to measure a peak resident size")?;
    if !output.status.success() {
        bail!("strata {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let kib: f64 =
        String::from_utf8_lossy(&output.stdout).trim().parse().context("python3 printed no peak resident size")?;
    Ok(kib * 1024.0)
}

fn print_figures(figures: &[Figure]) {
    println!();
    println!("Strata against the Python anchors (median of the runs; ratio > 1: Strata faster or smaller)");
    println!(
        "{:<9} {:<40} {:>16} {:>16} {:>20} {:>10} {:>13}  anchor",
        "group", "operation", "Strata", "anchor", "ratio (min-max)", "goal", "verdict"
    );
    for figure in figures {
        let anchor = if figure.anchor_values.is_empty() {
            String::new()
        } else {
            figure.unit.show(median(&figure.anchor_values))
        };
        let ratio = figure
            .ratio()
            .map_or_else(String::new, |(median, min, max, _)| format!("{median:.2}x ({min:.2}-{max:.2})"));
        println!(
            "{:<9} {:<40} {:>16} {:>16} {:>20} {:>10} {:>13}  {}",
            figure.group,
            figure.operation,
            figure.unit.show(median(&figure.strata)),
            anchor,
            ratio,
            figure.goal_text(),
            figure.verdict().name(),
            figure.anchor
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(unit: Unit, strata: &[f64], anchor: &[f64], goal: Option<Goal>) -> Figure {
        Figure {
            group: "test",
            operation: "op".into(),
            anchor: "anchor".into(),
            unit,
            strata: strata.to_vec(),
            anchor_values: anchor.to_vec(),
            goal,
        }
    }

    #[test]
    fn ratios_say_how_many_times_faster_strata_is() {
        let rates = figure(Unit::RowsPerSecond, &[200.0, 300.0], &[100.0, 100.0], Some(Goal::Ratio(2.0)));
        assert_eq!(rates.ratios(), vec![2.0, 3.0]);
        assert_eq!(rates.verdict(), Verdict::Met);
        let latency = figure(Unit::Latency, &[0.005, 0.010], &[0.010, 0.010], Some(Goal::Ratio(1.0)));
        assert_eq!(latency.ratios(), vec![2.0, 1.0]);
        assert_eq!(latency.ratio().map(|r| r.0), Some(1.5));
    }

    #[test]
    fn a_miss_within_the_noise_is_not_a_failure_and_beyond_it_is() {
        // Ratios 0.8, 1.0, 1.1: median 1.0 meets 1.0.
        let met = figure(Unit::RowsPerSecond, &[0.8, 1.0, 1.1], &[1.0, 1.0, 1.0], Some(Goal::Ratio(1.0)));
        assert_eq!(met.verdict(), Verdict::Met);
        // Ratios 0.8, 0.9, 1.0: median 0.9, noise 0.1: within noise of 1.0.
        let close = figure(Unit::RowsPerSecond, &[0.8, 0.9, 1.0], &[1.0, 1.0, 1.0], Some(Goal::Ratio(1.0)));
        assert_eq!(close.verdict(), Verdict::WithinNoise);
        // Ratios 0.5, 0.6, 0.62: median 0.6, noise 0.06: missed.
        let missed = figure(Unit::RowsPerSecond, &[0.5, 0.6, 0.62], &[1.0, 1.0, 1.0], Some(Goal::Ratio(1.0)));
        assert_eq!(missed.verdict(), Verdict::Missed);
        let memory = figure(Unit::Bytes, &[2e9], &[], Some(Goal::AtMost(1e9)));
        assert_eq!(memory.verdict(), Verdict::Missed);
        let small = figure(Unit::Bytes, &[2e8], &[], Some(Goal::AtMost(1e9)));
        assert_eq!(small.verdict(), Verdict::Met);
        let no_anchor = figure(Unit::RowsPerSecond, &[1.0], &[], Some(Goal::Ratio(1.0)));
        assert_eq!(no_anchor.verdict(), Verdict::NoAnchor);
        let rate = figure(Unit::TasksPerSecond, &[2500.0, 2900.0, 3100.0], &[], Some(Goal::AtLeast(3000.0)));
        assert_eq!(rate.verdict(), Verdict::WithinNoise);
    }

    #[test]
    fn one_day_is_aligned_to_midnight_and_inside_the_series() {
        let spec = SyntheticSpec::minutes(1, 100_000, 1);
        let (start, end) = one_day(&spec);
        assert_eq!(start.micros().rem_euclid(Timestamp::MICROS_PER_DAY), 0);
        assert_eq!(end.micros() - start.micros(), Timestamp::MICROS_PER_DAY);
        let inside = spec.bars().iter().filter(|bar| bar.timestamp >= start && bar.timestamp < end).count();
        assert_eq!(inside, 1440);
    }

    #[test]
    fn units_show_readable_values() {
        assert_eq!(Unit::RowsPerSecond.show(1_234_567.0), "1.23M rows/s");
        assert_eq!(Unit::Latency.show(0.0058), "5.80 ms");
        assert_eq!(Unit::Bytes.show(512.0 * 1024.0 * 1024.0), "512 MiB");
    }
}
