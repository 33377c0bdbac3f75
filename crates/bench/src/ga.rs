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
        let window = DataWindow { symbols: spec.symbols.clone(), start: None, end: None };
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
            let window = DataWindow { symbols: spec.symbols.clone(), start: None, end: None };
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
    noop_coordination(as_json).await
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
