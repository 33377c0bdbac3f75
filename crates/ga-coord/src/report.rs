//! A run as machine-readable JSON (`strata evolve --json`, `strata runs show
//! --json`, `strata runs list --json`, and the HTTP API to come) and as the
//! text a terminal shows ([`stats_line`], [`RunSummary::to_text`],
//! [`runs_table`], [`RunEstimate::note`]), and what to do when an operator
//! interrupts a run.
//!
//! Generation numbers in these documents count from 1, as every line a human
//! reads does ("generation 3/10"); the store numbers them from 0.

use std::time::Duration;

use serde_json::{Value, json};
use strata_core::evolution::{GenerationStats, RunId, RunRecord, RunStatus, WorkerId};
use strata_core::{EvolutionStore, Result};

use crate::coordinator::RunSummary;

/// A float, or `null` when it is not finite (JSON has no NaN or infinity).
fn number(value: f64) -> Value {
    if value.is_finite() { json!(value) } else { Value::Null }
}

/// One generation's statistics; `generation` counts from 1.
pub fn stats_json(stats: &GenerationStats) -> Value {
    json!({
        "generation": stats.generation + 1,
        "best": number(stats.best),
        "mean": number(stats.mean),
        "std": number(stats.std),
        "diversity": number(stats.diversity),
        "evaluated": stats.evaluated,
    })
}

/// A run's settings and status, without its results (one line of `runs list --json`).
pub fn run_json(record: &RunRecord) -> Value {
    let spec = &record.spec;
    json!({
        "run": spec.id.as_str(),
        "status": record.status.as_str(),
        "strategy": spec.strategy,
        "seed": spec.seed,
        "population": spec.population_size,
        "generations": spec.generations,
        "created_at": record.created_at.to_string(),
        "updated_at": record.updated_at.to_string(),
    })
}

impl RunSummary {
    /// The whole summary: [`run_json`]'s fields, the run's configuration, the
    /// statistics of every evaluated generation, the population fingerprints
    /// and the best genomes of the last generation.
    pub fn to_json(&self) -> Value {
        let best: Vec<Value> = self
            .best
            .iter()
            .map(|individual| {
                json!({
                    "index": individual.index,
                    "genome": serde_json::from_str::<Value>(&individual.genome).unwrap_or(Value::Null),
                    "fitness": individual.fitness.map_or(Value::Null, number),
                    "metrics": individual.metrics,
                    "out_of_sample": individual.out_of_sample,
                })
            })
            .collect();
        let mut document = run_json(&self.record);
        if let Some(fields) = document.as_object_mut() {
            fields.insert("config".into(), serde_json::from_str(&self.record.spec.config).unwrap_or(Value::Null));
            fields.insert("generation_stats".into(), self.stats.iter().map(stats_json).collect());
            fields.insert(
                "population_hashes".into(),
                self.population_hashes.iter().map(|hash| json!(format!("{hash:016x}"))).collect(),
            );
            fields.insert("best".into(), Value::Array(best));
        }
        document
    }
}

/// What [`interrupt_run`] did.
#[derive(Debug)]
pub struct Interruption {
    /// The run's status afterwards (`Interrupted`, or the status it had
    /// already reached: completed, failed, cancelled), or why it could not be set.
    pub status: Result<RunStatus>,
    /// Generations whose evaluations are stored, or why they could not be counted.
    pub generations_kept: Result<usize>,
}

/// After a coordinator was stopped by an operator (Ctrl-C, SIGTERM) at an
/// await point: marks the run interrupted, so no worker leases its tasks
/// until it is resumed (a run that already ended keeps its status), and gives
/// the coordinator role back at once, so a resume need not wait for it to
/// expire (the same holder re-acquiring gets its own live lease, which it
/// releases). Every step the coordinator took is already stored.
pub async fn interrupt_run(
    evolution: &dyn EvolutionStore,
    run: &RunId,
    holder: &WorkerId,
    role_ttl: Duration,
) -> Interruption {
    // Only an active run becomes interrupted; a cancel or completion stored meanwhile stands.
    let status = evolution
        .transition_run(run, &[RunStatus::Pending, RunStatus::Running], RunStatus::Interrupted)
        .await
        .map(|record| record.status);
    if let Ok(Some(lease)) = evolution.acquire_coordinator(run, holder, role_ttl).await {
        let _ = evolution.release_coordinator(&lease).await;
    }
    let generations_kept = evolution.generation_stats(run).await.map(|stats| stats.len());
    Interruption { status, generations_kept }
}

/// Where a run stands, for schedulers and scripts (`strata runs status
/// --json`): its status, its current generation (counting from 1; 0 before
/// the first) and that generation's tasks by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProgress {
    /// The run.
    pub record: RunRecord,
    /// The latest stored generation, counting from 1 (0: none yet).
    pub generation: u32,
    /// That generation's tasks by state.
    pub counts: strata_core::evolution::TaskCounts,
}

impl RunProgress {
    /// Reads a run's progress: its record, latest generation and that generation's task counts.
    pub async fn read(evolution: &dyn EvolutionStore, run: &RunId) -> Result<Self> {
        let record = evolution.get_run(run).await?;
        let latest = evolution.latest_generation(run).await?.map(|generation| generation.number);
        let counts = match latest {
            Some(number) => evolution.task_counts(run, number).await?,
            None => strata_core::evolution::TaskCounts::default(),
        };
        Ok(RunProgress { record, generation: latest.map_or(0, |number| number + 1), counts })
    }

    /// Whether the run is over: completed, failed or cancelled.
    pub fn finished(&self) -> bool {
        matches!(self.record.status, RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled)
    }

    /// The progress as one JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "run": self.record.spec.id.as_str(),
            "status": self.record.status.as_str(),
            "generation": self.generation,
            "generations": self.record.spec.generations,
            "pending": self.counts.pending,
            "leased": self.counts.leased,
            "done": self.counts.done,
            "parked": self.counts.parked,
            "active": self.record.status.is_active(),
            "finished": self.finished(),
        })
    }
}

/// `generation   3/10: best   0.4210  mean ...`: one generation as the terminal shows it.
pub fn stats_line(stats: &GenerationStats, generations: u32) -> String {
    format!(
        "generation {:>3}/{generations}: best {:>8.4}  mean {:>8.4}  std {:>7.4}  diversity {:.3}  ({} evaluated)",
        stats.generation + 1,
        stats.best,
        stats.mean,
        stats.std,
        stats.diversity,
        stats.evaluated
    )
}

/// One row of metrics: `fitness return sharpe max_dd trades exposure`.
fn metrics_columns(fitness: &str, m: &crate::backtest::Metrics) -> String {
    format!(
        "{fitness:>9} {:>8.2}% {:>8.3} {:>7.2}% {:>7} {:>7.1}%",
        m.total_return * 100.0,
        m.sharpe,
        m.max_drawdown * 100.0,
        m.trades,
        m.exposure * 100.0
    )
}

impl RunSummary {
    /// The summary as terminal lines: the run's status, with `with_stats`
    /// every generation's [`stats_line`], then the best genomes with their
    /// in-sample metrics and, for a walk-forward run, out-of-sample ones.
    pub fn to_text(&self, with_stats: bool) -> Vec<String> {
        let spec = &self.record.spec;
        let mut lines = vec![format!("run {}: {} ({})", spec.id, self.record.status, spec.strategy)];
        if with_stats {
            lines.extend(self.stats.iter().map(|stats| stats_line(stats, spec.generations)));
        }
        lines.push(format!("best genomes of generation {}:", self.stats.last().map_or(0, |s| s.generation + 1)));
        let columns = ["fitness", "return", "sharpe", "max_dd", "trades", "exposure"];
        lines.push(format!(
            "{:>4} {:>9} {:>9} {:>8} {:>8} {:>7} {:>8}  genome",
            "rank", columns[0], columns[1], columns[2], columns[3], columns[4], columns[5]
        ));
        if self.best.iter().any(|b| b.out_of_sample.is_some()) {
            let oos = ["oos fit", "oos ret", "oos shp", "oos dd", "trades", "exposure"];
            lines.push(format!(
                "{:>4} {:>9} {:>9} {:>8} {:>8} {:>7} {:>8}",
                "", oos[0], oos[1], oos[2], oos[3], oos[4], oos[5]
            ));
        }
        for (rank, individual) in self.best.iter().enumerate() {
            let fitness = individual.fitness.map_or_else(|| "-".to_string(), |f| format!("{f:.4}"));
            lines.push(match &individual.metrics {
                Some(m) => format!("{:>4} {}  {}", rank + 1, metrics_columns(&fitness, m), individual.genome),
                None => format!("{:>4} {:>9} {:>9}  {}", rank + 1, fitness, "-", individual.genome),
            });
            if let Some(oos) = &individual.out_of_sample {
                let fitness = format!("{:.4}", oos.fitness);
                lines.push(format!("{:>4} {}  (out of sample)", "", metrics_columns(&fitness, &oos.metrics)));
            }
        }
        lines
    }
}

/// `strata runs list` as terminal lines: one per run, with its evaluated
/// generations ("done/total") and when its record last changed.
pub fn runs_table(runs: &[(RunRecord, usize)]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<40} {:<11} {:<18} {:>10} {:>11}  last progress",
        "run", "status", "strategy", "population", "generations"
    )];
    for (record, done) in runs {
        lines.push(format!(
            "{:<40} {:<11} {:<18} {:>10} {:>11}  {}",
            record.spec.id.as_str(),
            record.status.as_str(),
            record.spec.strategy,
            record.spec.population_size,
            format!("{done}/{} done", record.spec.generations),
            record.updated_at
        ));
    }
    if runs.is_empty() {
        lines.push("(no runs yet: try `strata evolve --help`)".to_string());
    }
    lines
}

/// `45 s`, `12 min`, `3.5 h`.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7_200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3_600.0)
    }
}

/// What a run will cost, measured on this machine before it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunEstimate {
    /// Evaluations the run asks for (population x generations; the fitness
    /// cache makes the real number smaller when genomes repeat).
    pub evaluations: u64,
    /// Median time of one evaluation here, on the run's window.
    pub per_evaluation: Duration,
    /// Wall-clock time with the given number of evaluating workers.
    pub wall: Duration,
    /// Memory the window's bars take in every process that evaluates (each
    /// bar: timestamp, high, low and close, 8 bytes each).
    pub bar_bytes: u64,
}

/// Times a few evaluations of the run's first genomes on `series` and scales
/// them to `population` x `generations` on `workers` workers (at least 1).
pub fn estimate_run(
    strategy: &dyn crate::strategy::Strategy,
    series: &[crate::backtest::PriceSeries],
    backtest: &crate::backtest::BacktestConfig,
    population: u32,
    generations: u32,
    seed: u64,
) -> crate::error::GaResult<RunEstimate> {
    let genome_spec = strategy.genome_spec();
    let mut timings = Vec::new();
    for genome in crate::ops::initial_population(&genome_spec, seed, 3) {
        let started = std::time::Instant::now();
        crate::eval::evaluate(strategy, &genome_spec.to_text(&genome), series, backtest)?;
        timings.push(started.elapsed());
    }
    timings.sort();
    let per_evaluation = timings.get(timings.len() / 2).copied().unwrap_or_default();
    let evaluations = u64::from(population) * u64::from(generations);
    let bars: u64 = series.iter().map(|one| one.timestamps.len() as u64).sum();
    Ok(RunEstimate { evaluations, per_evaluation, wall: Duration::ZERO, bar_bytes: bars * 32 }.with_workers(1))
}

impl RunEstimate {
    /// The wall-clock time with `workers` evaluating at once (0 counts as 1:
    /// the `strata worker` processes are at least one).
    pub fn with_workers(self, workers: u32) -> Self {
        let per_worker = self.evaluations.div_ceil(u64::from(workers.max(1)));
        let wall = self.per_evaluation.saturating_mul(u32::try_from(per_worker).unwrap_or(u32::MAX));
        RunEstimate { wall, ..self }
    }

    /// "note: this run asks for ... evaluations ..." when the run is
    /// estimated to take longer than `above`, else nothing.
    pub fn note(&self, above: Duration) -> Option<String> {
        (self.wall > above).then(|| {
            format!(
                "note: this run asks for {} evaluations of about {:.1} ms each here: about {} of evaluation on its \
                 workers, with {} MB of bars in each process (the fitness cache skips repeated genomes; Ctrl-C \
                 stops it, `strata evolve --resume` continues it)",
                strata_core::display::group_thousands(self.evaluations),
                self.per_evaluation.as_secs_f64() * 1e3,
                human_duration(self.wall),
                self.bar_bytes.div_ceil(1 << 20)
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backtest::{BacktestConfig, PriceSeries};
    use crate::strategy::StrategyRegistry;

    #[test]
    fn estimates_scale_with_the_run_and_the_workers() {
        let closes: Vec<f64> = (0..2_000).map(|day| 100.0 + (f64::from(day) * 0.1).sin() * 10.0).collect();
        let series = [PriceSeries::from_closes("A", &closes), PriceSeries::from_closes("B", &closes)];
        let registry = StrategyRegistry::default();
        let strategy = registry.get("ma-crossover").unwrap();
        let estimate = estimate_run(strategy.as_ref(), &series, &BacktestConfig::default(), 50, 10, 7).unwrap();
        assert_eq!(estimate.evaluations, 500);
        assert_eq!(estimate.bar_bytes, 4_000 * 32);
        assert!(estimate.per_evaluation > Duration::ZERO);
        assert_eq!(estimate.wall, estimate.per_evaluation * 500);
        let four = estimate.with_workers(4);
        assert_eq!(four.wall, estimate.per_evaluation * 125);
        assert_eq!(estimate.with_workers(0).wall, estimate.wall, "0 workers (coordinator only) counts as one");
    }

    #[test]
    fn long_runs_get_a_note_with_a_readable_duration() {
        let estimate = RunEstimate {
            evaluations: 120_000,
            per_evaluation: Duration::from_millis(3),
            wall: Duration::from_secs(360),
            bar_bytes: 3 << 20,
        };
        let note = estimate.note(Duration::from_secs(60)).unwrap();
        assert!(note.starts_with("note: this run asks for 120,000 evaluations of about 3.0 ms each"), "{note}");
        assert!(note.contains("about 6 min of evaluation") && note.contains("3 MB of bars"), "{note}");
        assert_eq!(estimate.note(Duration::from_secs(600)), None);
        assert_eq!(human_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(human_duration(Duration::from_secs(3 * 3_600 + 1_800)), "3.5 h");
    }

    #[test]
    fn the_runs_table_says_when_there_are_none() {
        let lines = runs_table(&[]);
        assert!(lines[0].starts_with("run ") && lines[0].ends_with("last progress"), "{lines:?}");
        assert_eq!(lines[1], "(no runs yet: try `strata evolve --help`)");
    }

    #[test]
    fn generations_count_from_one_in_json() {
        let stats = GenerationStats {
            run: RunId::new("r").unwrap(),
            generation: 0,
            best: 1.5,
            mean: f64::NAN,
            std: 0.0,
            diversity: 0.25,
            evaluated: 8,
        };
        let json = stats_json(&stats);
        assert_eq!(json["generation"], 1);
        assert_eq!(json["mean"], Value::Null, "NaN is not JSON");
        assert_eq!(json["best"], 1.5);
    }
}
