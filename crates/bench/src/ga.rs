//! The GA section of `cargo xtask bench`: evaluations per second of a
//! 200-individual generation on 10 years of daily bars and on 1 year of
//! minute bars, with 1 and 2 in-process workers, next to the same
//! backtests run back to back without any coordination (the baseline); and
//! the coordination cost alone (lease 32 + complete 32 with a no-op fitness)
//! per store. Evaluation lines keep the state in the in-memory store (what
//! the engine costs); the `N duckdb` lines keep it, and read the bars, in one
//! DuckDB file (what `strata evolve` on the default backend costs), and the
//! `N pg` lines in PostgreSQL at `DATABASE_URL` (a throwaway schema) when set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use strata_core::evolution::{RunId, WorkerId};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{EvolutionStore, MarketDataStore, Timestamp};
use strata_ga_coord::genome::GenomeSpec;
use strata_ga_coord::ops::initial_population;
use strata_ga_coord::{DataWindow, LocalOptions, RunConfig, StrategyRegistry, evolve_local};

/// A store measured: its name, and its two ports.
type StoreUnderTest = (&'static str, Arc<dyn MarketDataStore>, Arc<dyn EvolutionStore>);

/// Individuals per measured generation.
const POPULATION: u32 = 200;

/// One line of the GA table.
#[derive(Debug, Clone)]
struct GaLine {
    data: &'static str,
    strategy: &'static str,
    workers: String,
    evaluations: usize,
    elapsed: Duration,
    baseline_rate: Option<f64>,
}

impl GaLine {
    fn rate(&self) -> f64 {
        self.evaluations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn unique(text: &str) -> String {
    format!("{text}-{:x}", Timestamp::now().micros() & 0xffff_ffff)
}

/// Runs the GA benchmark on fresh in-memory stores and prints its tables.
pub(crate) async fn run(as_json: bool, pg: bool) -> Result<()> {
    let cases: [(&'static str, SyntheticSpec); 2] = [
        (
            "10y daily",
            SyntheticSpec {
                symbols: vec!["GA_DAILY".into()],
                start: Timestamp(1_262_304_000_000_000),
                interval_micros: Timestamp::MICROS_PER_DAY,
                bars_per_symbol: 2_520,
                seed: 11,
            },
        ),
        (
            "1y minute",
            SyntheticSpec {
                symbols: vec!["GA_MINUTE".into()],
                start: Timestamp(1_577_836_800_000_000),
                interval_micros: 60_000_000,
                bars_per_symbol: 252 * 390,
                seed: 12,
            },
        ),
    ];
    let registry = Arc::new(StrategyRegistry::default());
    let mut lines = Vec::new();
    eprintln!("strata-bench (GA): generations of {POPULATION} individuals, fresh caches for every line");
    for (data, spec) in &cases {
        let store = Arc::new(strata_adapter_mock::MemoryStore::new());
        let market: Arc<dyn MarketDataStore> = store.clone();
        let evolution: Arc<dyn EvolutionStore> = store;
        for batch in spec.batches(100_000) {
            market.write_bars(batch).await?;
        }
        let window = DataWindow { symbols: spec.symbols.clone(), start: None, end: None, snapshot: None, digest: None };
        let series = Arc::new(strata_ga_coord::eval::load_window(market.as_ref(), &window).await?);
        for strategy_name in ["ma-crossover", "rsi-reversion", "bollinger-breakout", "donchian"] {
            let strategy = registry.get(strategy_name)?;
            let genome_spec: GenomeSpec = strategy.genome_spec();
            let config = RunConfig::new(window.clone());
            // Baseline: the generation's backtests back to back on one thread, no store, no cache.
            let genomes: Vec<String> =
                initial_population(&genome_spec, 1, POPULATION).iter().map(|g| genome_spec.to_text(g)).collect();
            let baseline = {
                let (strategy, series, backtest) = (strategy.clone(), series.clone(), config.backtest.clone());
                tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    for genome in &genomes {
                        strata_ga_coord::eval::evaluate(strategy.as_ref(), genome, &series, &backtest)?;
                    }
                    anyhow::Ok(started.elapsed())
                })
                .await??
            };
            let baseline_line = GaLine {
                data,
                strategy: static_name(strategy_name),
                workers: "baseline".into(),
                evaluations: POPULATION as usize,
                elapsed: baseline,
                baseline_rate: None,
            };
            let baseline_rate = baseline_line.rate();
            lines.push(baseline_line);
            for workers in [1u32, 2] {
                let run = RunId::new(unique(&format!("bench-{workers}")))?;
                let spec = config.spec(Some(run), strategy_name, 1, POPULATION, 1)?;
                let elapsed = time_one_generation(&evolution, &market, &registry, spec, workers)
                    .await
                    .with_context(|| format!("GA bench run of {strategy_name} on {data}"))?;
                lines.push(GaLine {
                    data,
                    strategy: static_name(strategy_name),
                    workers: workers.to_string(),
                    evaluations: POPULATION as usize,
                    elapsed,
                    baseline_rate: Some(baseline_rate),
                });
            }
        }
    }
    // The same generations with the state and the bars in one DuckDB file,
    // and in PostgreSQL (DATABASE_URL, a throwaway schema) when it is set.
    let dir = tempfile::tempdir().context("creating a temporary directory for the DuckDB file")?;
    let duckdb = strata_adapter_duckdb::DuckDbConfig::new(dir.path().join("ga-eval.duckdb"));
    let duckdb = Arc::new(strata_adapter_duckdb::DuckDbStore::open(duckdb).await?);
    let mut stores: Vec<StoreUnderTest> = vec![("duckdb", duckdb.clone(), duckdb)];
    let pg_url = std::env::var("DATABASE_URL").ok().filter(|url| !url.trim().is_empty() && pg);
    let schema = format!("bench_ga_{}", std::process::id());
    let _dropped_at_the_end = pg_url.as_deref().map(|url| strata_testpg::TempSchema::new(url, &schema));
    if let Some(url) = &pg_url {
        let config = strata_adapter_neon::NeonConfig::from_url(url)?.with_schema(schema.clone())?;
        let store = Arc::new(strata_adapter_neon::NeonStore::open(config).await?);
        stores.push(("pg", store.clone(), store));
    }
    for (store_name, market, evolution) in &stores {
        for (data, spec) in &cases {
            for batch in spec.batches(100_000) {
                market.write_bars(batch).await?;
            }
            let window =
                DataWindow { symbols: spec.symbols.clone(), start: None, end: None, snapshot: None, digest: None };
            let baseline_rate = lines
                .iter()
                .find(|line| line.data == *data && line.strategy == "ma-crossover" && line.workers == "baseline")
                .map(GaLine::rate);
            for workers in [1u32, 2] {
                let run = RunId::new(unique(&format!("bench-{store_name}-{workers}")))?;
                let spec = RunConfig::new(window.clone()).spec(Some(run), "ma-crossover", 1, POPULATION, 1)?;
                let elapsed = time_one_generation(evolution, market, &registry, spec, workers)
                    .await
                    .with_context(|| format!("GA bench run on {store_name}, {data}"))?;
                lines.push(GaLine {
                    data,
                    strategy: "ma-crossover",
                    workers: format!("{workers} {store_name}"),
                    evaluations: POPULATION as usize,
                    elapsed,
                    baseline_rate,
                });
            }
        }
    }
    print_lines(&lines, as_json);
    main_job(pg_url.as_deref()).await?;
    noop_coordination(as_json).await
}

/// The README's main job: ma-crossover on AAPL, MSFT and IBM (adjusted daily
/// bars, 2003-2010), 40 individuals, 8 generations, seed 42.
const MAIN_JOB: (&str, [&str; 3], &str, &str, u32, u32, u64) =
    ("ma-crossover", ["AAPL", "MSFT", "IBM"], "2003-01-01", "2010-01-01", 40, 8, 42);

/// Runs of each main-job line (the figure is their median).
const MAIN_JOB_RUNS: usize = 3;

/// The README's main job as `strata evolve` runs it (`evolve_local` with the
/// CLI's defaults: 100 ms coordinator poll, durable fitness cache on, a fresh
/// store per run) with 1 and 2 in-process workers on DuckDB and, when
/// `pg_url` is set, PostgreSQL; against the same backtests (each distinct
/// genome of every generation, as the run's cache evaluates them) back to
/// back on one thread with no store. Prints evaluations per second and the
/// ratios (goals of issue 14: 0.9x with one worker, 1.7x with two).
async fn main_job(pg_url: Option<&str>) -> Result<()> {
    let (strategy_name, symbols, start, end, population, generations, seed) = MAIN_JOB;
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/quandl_wiki_stocks_daily_adj.csv");
    let files = strata_formats::inputs::resolve(std::slice::from_ref(&data), None, false)
        .with_context(|| format!("reading {}", data.display()))?;
    let options = strata_formats::ReadOptions { file: 0, symbol: None, chunk_rows: 100_000, adjust: true };
    let mut bars = Vec::new();
    for file in &files {
        for chunk in file.read(&options)? {
            anyhow::ensure!(chunk.problems.is_empty(), "{}: {:?}", data.display(), chunk.problems.first());
            bars.push(chunk.batch);
        }
    }
    let window = DataWindow {
        symbols: symbols.iter().map(|symbol| symbol.to_string()).collect(),
        start: Some(Timestamp::parse(start).map_err(anyhow::Error::msg)?.0),
        end: Some(Timestamp::parse(end).map_err(anyhow::Error::msg)?.0),
        snapshot: None,
        digest: None,
    };
    let registry = Arc::new(StrategyRegistry::default());
    let strategy = registry.get(strategy_name)?;
    let config = RunConfig::new(window.clone());
    eprintln!(
        "strata-bench (GA): the README's main job ({strategy_name}, {}, {population} x {generations} generations),          medians of {MAIN_JOB_RUNS} runs, a fresh store each",
        symbols.join(" ")
    );
    let mut table: Vec<(String, u32, f64, f64, usize)> = Vec::new();
    let dir = tempfile::tempdir().context("creating a temporary directory for the DuckDB files")?;
    let backends: Vec<&str> = if pg_url.is_some() { vec!["duckdb", "pg"] } else { vec!["duckdb"] };
    for backend in backends {
        for workers in [1u32, 2] {
            let mut strata_seconds = Vec::new();
            let mut baseline_seconds = Vec::new();
            let mut evaluations = 0;
            for round in 0..MAIN_JOB_RUNS {
                let tag = format!("{backend}-{workers}-{round}");
                let (market, evolution, _schema): (Arc<dyn MarketDataStore>, Arc<dyn EvolutionStore>, _) =
                    match (backend, pg_url) {
                        ("pg", Some(url)) => {
                            let schema = format!("bench_job_{}_{}", std::process::id(), tag.replace('-', "_"));
                            let dropped = strata_testpg::TempSchema::new(url, &schema);
                            let config = strata_adapter_neon::NeonConfig::from_url(url)?.with_schema(schema)?;
                            let store = Arc::new(strata_adapter_neon::NeonStore::open(config).await?);
                            (store.clone(), store, Some(dropped))
                        }
                        _ => {
                            let path = dir.path().join(format!("job-{tag}.duckdb"));
                            let config = strata_adapter_duckdb::DuckDbConfig::new(path);
                            let store = Arc::new(strata_adapter_duckdb::DuckDbStore::open(config).await?);
                            (store.clone(), store, None)
                        }
                    };
                for batch in &bars {
                    market.write_bars(batch.clone()).await?;
                }
                let spec = config.spec(None, strategy_name, seed, population, generations)?;
                let run = spec.id.clone();
                let options = LocalOptions::new(WorkerId::new(unique("job"))?, workers);
                let started = Instant::now();
                let outcome =
                    evolve_local(evolution.clone(), market.clone(), registry.clone(), spec, options, None).await?;
                let elapsed = started.elapsed();
                outcome.result.with_context(|| format!("the main job on {backend} with {workers} workers"))?;
                strata_seconds.push(elapsed.as_secs_f64());
                // The same backtests with no store: every distinct genome of every generation.
                let mut genomes: Vec<String> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for number in 0..generations {
                    for individual in evolution.load_generation(&run, number).await?.individuals {
                        if seen.insert(individual.genome.clone()) {
                            genomes.push(individual.genome);
                        }
                    }
                }
                evaluations = genomes.len();
                let series = Arc::new(strata_ga_coord::eval::load_window(market.as_ref(), &window).await?);
                let (strategy, backtest) = (strategy.clone(), config.backtest.clone());
                let baseline = tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    for genome in &genomes {
                        strata_ga_coord::eval::evaluate(strategy.as_ref(), genome, &series, &backtest)?;
                    }
                    anyhow::Ok(started.elapsed())
                })
                .await??;
                baseline_seconds.push(baseline.as_secs_f64());
            }
            let strata = crate::python::median(&strata_seconds);
            let baseline = crate::python::median(&baseline_seconds);
            table.push((backend.to_string(), workers, strata, baseline, evaluations));
        }
    }
    println!();
    println!("The README's main job (distinct evaluations per second; medians of {MAIN_JOB_RUNS} runs)");
    println!(
        "{:<8} {:>8} {:>6} {:>10} {:>11} {:>12} {:>13} {:>6}",
        "store", "workers", "evals", "strata s", "strata e/s", "no-store s", "no-store e/s", "ratio"
    );
    for (backend, workers, strata, baseline, evaluations) in &table {
        let rate = |seconds: f64| *evaluations as f64 / seconds.max(1e-9);
        println!(
            "{backend:<8} {workers:>8} {evaluations:>6} {strata:>10.3} {:>11.0} {baseline:>12.3} {:>13.0} {:>5.2}x",
            rate(*strata),
            rate(*baseline),
            baseline / strata.max(1e-9)
        );
    }
    Ok(())
}

/// Evolves `spec` (one generation) with `workers` in-process workers and returns how long it took.
async fn time_one_generation(
    evolution: &Arc<dyn EvolutionStore>,
    market: &Arc<dyn MarketDataStore>,
    registry: &Arc<StrategyRegistry>,
    spec: strata_core::evolution::RunSpec,
    workers: u32,
) -> Result<Duration> {
    let mut options = LocalOptions::new(WorkerId::new(unique("bench"))?, workers);
    options.coordinator.poll = Duration::from_millis(2);
    // Every line evaluates its generation: the lines share stores and genomes,
    // and results from the durable fitness cache would measure nothing.
    options.durable_cache = false;
    let started = Instant::now();
    let outcome = evolve_local(evolution.clone(), market.clone(), registry.clone(), spec, options, None).await?;
    let elapsed = started.elapsed();
    outcome.result?;
    Ok(elapsed)
}

fn static_name(name: &str) -> &'static str {
    match name {
        "ma-crossover" => "ma-crossover",
        "rsi-reversion" => "rsi-reversion",
        "bollinger-breakout" => "bollinger-breakout",
        _ => "donchian",
    }
}

fn print_lines(lines: &[GaLine], as_json: bool) {
    if as_json {
        for line in lines {
            let document = json!({
                "section": "ga",
                "data": line.data,
                "strategy": line.strategy,
                "workers": line.workers,
                "evaluations": line.evaluations,
                "seconds": line.elapsed.as_secs_f64(),
                "evaluations_per_second": line.rate(),
                "vs_baseline": line.baseline_rate.map(|b| line.rate() / b),
            });
            println!("{document}");
        }
        return;
    }
    println!();
    println!(
        "{:<10} {:<19} {:>8} {:>6} {:>9} {:>11} {:>12}",
        "data", "strategy", "workers", "evals", "seconds", "evals/s", "vs baseline"
    );
    for line in lines {
        println!(
            "{:<10} {:<19} {:>8} {:>6} {:>9.3} {:>11.0} {:>12}",
            line.data,
            line.strategy,
            line.workers,
            line.evaluations,
            line.elapsed.as_secs_f64(),
            line.rate(),
            line.baseline_rate.map_or_else(String::new, |b| format!("{:.2}x", line.rate() / b))
        );
    }
}

/// Lease 32 + complete 32 with a no-op fitness, from one worker, until 4,000 tasks are done.
async fn noop_coordination(as_json: bool) -> Result<()> {
    let mut stores: Vec<(&'static str, Arc<dyn EvolutionStore>)> =
        vec![("memory", Arc::new(strata_adapter_mock::MemoryStore::new()))];
    let _dir = {
        let dir = tempfile::tempdir().context("creating a temporary directory for the DuckDB file")?;
        let config = strata_adapter_duckdb::DuckDbConfig::new(dir.path().join("ga.duckdb"));
        stores.push(("duckdb", Arc::new(strata_adapter_duckdb::DuckDbStore::open(config).await?)));
        dir
    };
    if !as_json {
        println!();
        println!("{:<8} {:>7} {:>10} {:>12} {:>14}", "store", "tasks", "seconds", "tasks/s", "us per task");
    }
    for (name, store) in stores {
        let tasks = 4_000u32;
        let run = RunId::new(unique("bench-noop"))?;
        crate::noop::create_noop_run(store.as_ref(), &run, tasks).await?;
        let worker = WorkerId::new(unique("noop"))?;
        let started = Instant::now();
        let done = crate::noop::lease_and_complete(store.as_ref(), &run, &worker).await?;
        let elapsed = started.elapsed();
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        if as_json {
            let document = json!({
                "section": "ga-coordination",
                "store": name,
                "tasks": done,
                "seconds": elapsed.as_secs_f64(),
                "tasks_per_second": rate,
            });
            println!("{document}");
        } else {
            println!("{name:<8} {done:>7} {:>10.3} {rate:>12.0} {:>14.1}", elapsed.as_secs_f64(), 1e6 / rate.max(1e-9));
        }
    }
    Ok(())
}
