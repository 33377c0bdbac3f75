//! The coordinator: creates or resumes a run and drives it generation by
//! generation through the store, every step idempotent.
//!
//! For the latest stored generation g it enqueues g's evaluations (a no-op
//! when they exist), waits until none is pending or leased, records g's
//! statistics (an upsert), then breeds g+1 from g's stored genomes and
//! fitness and saves it with compare-and-set on g. Killed at any point and
//! started again, it redoes at most the step it was in, with the same result,
//! because generation g+1 depends only on generation g, the seed and g+1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use strata_core::evolution::{
    Generation, GenerationStats, Individual, NewTask, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskState,
    WorkerId,
};
use strata_core::{EvolutionStore, MarketDataStore, StoreError};

use crate::backtest::Metrics;
use crate::config::{EvalPayload, RunConfig};
use crate::error::{GaError, GaResult};
use crate::eval::{Evaluation, evaluate, load_window};
use crate::genome::{Genome, GenomeSpec, fnv1a};
use crate::lease::CoordinatorRole;
use crate::ops::{breed, diversity, initial_population, ranking};
use crate::strategy::StrategyRegistry;
use crate::telemetry;

/// Something that happened in a coordinator, for progress display and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum CoordinatorEvent {
    /// The coordinator role was taken.
    LeaseAcquired {
        /// The run.
        run: RunId,
    },
    /// A generation is stored (just now, or found stored on resume).
    GenerationSaved {
        /// Generation number.
        generation: u32,
        /// Individuals.
        size: u32,
    },
    /// A generation's evaluations are enqueued.
    TasksEnqueued {
        /// Generation number.
        generation: u32,
        /// Tasks newly added (0 on resume).
        added: u64,
    },
    /// Task counts while waiting.
    Progress {
        /// Generation number.
        generation: u32,
        /// The counts.
        counts: TaskCounts,
    },
    /// A generation is evaluated and its statistics recorded.
    GenerationDone(GenerationStats),
}

/// Receives [`CoordinatorEvent`]s, synchronously, from the coordinator's task.
pub trait Observer: Send + Sync + 'static {
    /// Called for each event; keep it quick.
    fn event(&self, event: &CoordinatorEvent);
}

/// Settings of a coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Unique id of this coordinator (the lease holder).
    pub holder: WorkerId,
    /// Coordinator lease duration; a dead coordinator is replaced after this.
    pub lease_ttl: Duration,
    /// How long to wait for the role when another coordinator holds it
    /// (zero: fail at once with [`GaError::CoordinatorBusy`]).
    pub takeover_wait: Duration,
    /// Interval of polling task counts while a generation is evaluated.
    pub poll: Duration,
    /// In-process workers' wake-ups (set by [`evolve_local`](crate::evolve_local)):
    /// a poll ends early when they record results, and enqueueing wakes them.
    pub nudges: Option<crate::local::Nudges>,
}

impl CoordinatorConfig {
    /// Defaults: lease 10 s, no waiting for the role, polling every 100 ms.
    pub fn new(holder: WorkerId) -> Self {
        CoordinatorConfig {
            holder,
            lease_ttl: Duration::from_secs(10),
            takeover_wait: Duration::ZERO,
            poll: Duration::from_millis(100),
            nudges: None,
        }
    }
}

/// One individual of a final population, ranked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedIndividual {
    /// Index in the population.
    pub index: u32,
    /// Canonical genome text.
    pub genome: String,
    /// Fitness (`None` when its evaluation was parked).
    pub fitness: Option<f64>,
    /// In-sample metrics.
    pub metrics: Option<Metrics>,
    /// Out-of-sample metrics on the run's test window (walk-forward), when configured.
    pub out_of_sample: Option<Evaluation>,
}

/// The state of a run as read back from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run.
    pub record: RunRecord,
    /// Statistics per evaluated generation.
    pub stats: Vec<GenerationStats>,
    /// Fingerprint of each stored generation's population, by generation.
    pub population_hashes: Vec<u64>,
    /// The best individuals of the latest evaluated generation, best first.
    pub best: Vec<RankedIndividual>,
}

/// Fingerprint of a population: FNV-1a over each individual's index and genome text.
pub fn population_hash(generation: &Generation) -> u64 {
    let mut text = String::new();
    for individual in &generation.individuals {
        text.push_str(&individual.index.to_string());
        text.push('=');
        text.push_str(&individual.genome);
        text.push('\n');
    }
    fnv1a(text.as_bytes())
}

/// Drives runs through an [`EvolutionStore`].
#[derive(Clone)]
pub struct Coordinator {
    evolution: Arc<dyn EvolutionStore>,
    registry: Arc<StrategyRegistry>,
    config: CoordinatorConfig,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("evolution", &self.evolution).field("config", &self.config).finish()
    }
}

impl Coordinator {
    /// A coordinator over `evolution` using the strategies of `registry`.
    pub fn new(evolution: Arc<dyn EvolutionStore>, registry: Arc<StrategyRegistry>, config: CoordinatorConfig) -> Self {
        Coordinator { evolution, registry, config, observer: None }
    }

    /// Reports events to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn emit(&self, event: CoordinatorEvent) {
        if let Some(observer) = &self.observer {
            observer.event(&event);
        }
    }

    /// Creates the run (or finds the identical stored one) and evolves it to
    /// the end. A completed run returns at once.
    pub async fn run(&self, spec: RunSpec) -> GaResult<RunRecord> {
        let record = self.evolution.create_run(spec).await?;
        self.drive(record).await
    }

    /// Continues a stored run by id.
    pub async fn resume(&self, run: &RunId) -> GaResult<RunRecord> {
        let record = self.evolution.get_run(run).await?;
        self.drive(record).await
    }

    async fn drive(&self, record: RunRecord) -> GaResult<RunRecord> {
        let run = record.spec.id.clone();
        match record.status {
            RunStatus::Completed => return Ok(record),
            RunStatus::Cancelled => return Err(GaError::Cancelled { run: run.to_string() }),
            RunStatus::Pending | RunStatus::Running | RunStatus::Failed | RunStatus::Interrupted => {}
        }
        let strategy = self.registry.get(&record.spec.strategy)?;
        let genome_spec = strategy.genome_spec();
        let run_config = RunConfig::parse(&record.spec.config)?;
        if record.spec.population_size == 0 || record.spec.generations == 0 {
            return Err(GaError::Config("population size and generations must be at least 1".into()));
        }
        let role = self.acquire(&run).await?;
        self.emit(CoordinatorEvent::LeaseAcquired { run: run.clone() });
        let outcome = {
            let work = self.evolve(&record.spec, &genome_spec, &run_config);
            let keep_alive = self.keep_role(&run, &role);
            tokio::select! {
                outcome = work => outcome,
                lost = keep_alive => Err(lost),
            }
        };
        if matches!(outcome, Err(GaError::LostLease { .. })) {
            // Another coordinator holds the role now: there is nothing to give back.
            return outcome;
        }
        if let Err(error) = role.release(self.evolution.as_ref()).await {
            tracing::warn!(%run, %error, "could not release the coordinator role; it will expire");
        }
        outcome
    }

    async fn acquire(&self, run: &RunId) -> GaResult<CoordinatorRole> {
        let deadline = Instant::now() + self.config.takeover_wait;
        loop {
            let store = self.evolution.as_ref();
            if let Some(role) =
                CoordinatorRole::try_acquire(store, run, &self.config.holder, self.config.lease_ttl).await?
            {
                return Ok(role);
            }
            if Instant::now() >= deadline {
                return Err(GaError::CoordinatorBusy { run: run.to_string() });
            }
            // An expired role is granted to the next caller; poll a few times per TTL.
            tokio::time::sleep((self.config.lease_ttl / 4).max(Duration::from_millis(10))).await;
        }
    }

    /// Renews the role every third of its TTL; returns only when it is lost.
    async fn keep_role(&self, run: &RunId, role: &CoordinatorRole) -> GaError {
        loop {
            tokio::time::sleep(role.ttl() / 3).await;
            match role.renew(self.evolution.as_ref()).await {
                Ok(true) => {}
                Ok(false) => {
                    return GaError::LostLease { run: run.to_string() };
                }
                Err(error) => tracing::warn!(%error, "coordinator lease renewal failed; retrying"),
            }
        }
    }

    async fn evolve(&self, spec: &RunSpec, genome_spec: &GenomeSpec, run_config: &RunConfig) -> GaResult<RunRecord> {
        let run = &spec.id;
        // Compare-and-set: a cancel (or a completion) stored since `drive` read the run wins.
        let record = self
            .evolution
            .transition_run(run, &[RunStatus::Pending, RunStatus::Failed, RunStatus::Interrupted], RunStatus::Running)
            .await?;
        match record.status {
            RunStatus::Running => {}
            RunStatus::Completed => return Ok(record),
            RunStatus::Cancelled => return Err(GaError::Cancelled { run: run.to_string() }),
            other => {
                return Err(GaError::Config(format!("run {run} is {other} and cannot be started")));
            }
        }
        loop {
            let generation = match self.evolution.latest_generation(run).await? {
                Some(generation) => generation,
                None => {
                    let genomes = initial_population(genome_spec, spec.seed, spec.population_size);
                    let generation = to_generation(run, 0, genome_spec, &genomes);
                    match self.evolution.save_generation(generation.clone(), None).await {
                        Ok(()) => generation,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(error) => return Err(error.into()),
                    }
                }
            };
            let number = generation.number;
            self.emit(CoordinatorEvent::GenerationSaved {
                generation: number,
                size: generation.individuals.len() as u32,
            });
            let tasks = generation
                .individuals
                .iter()
                .map(|individual| NewTask {
                    individual: individual.index,
                    payload: EvalPayload {
                        strategy: spec.strategy.clone(),
                        genome: individual.genome.clone(),
                        window: run_config.window.clone(),
                        backtest: run_config.backtest.clone(),
                    }
                    .to_text(),
                })
                .collect();
            let added = self.evolution.enqueue_tasks(run, number, tasks, run_config.max_attempts).await?;
            if let Some(nudges) = &self.config.nudges {
                nudges.work_enqueued();
            }
            self.emit(CoordinatorEvent::TasksEnqueued { generation: number, added });
            self.wait_for(run, number).await?;
            let fitness = self.fitness_of(run, &generation).await?;
            if fitness.iter().all(|f| f.is_nan()) {
                // Every evaluation was parked: breeding on nothing would only hide the cause.
                let tasks = self.evolution.list_tasks(run, number).await?;
                let cause = tasks.iter().find_map(|t| t.error.clone()).unwrap_or_else(|| "no task succeeded".into());
                self.evolution.transition_run(run, &[RunStatus::Running], RunStatus::Failed).await?;
                return Err(GaError::Evaluation { run: run.to_string(), generation: number, cause });
            }
            let genomes = parse_all(genome_spec, &generation)?;
            let stats = statistics(run, number, genome_spec, &genomes, &fitness);
            self.evolution.record_generation_stats(stats.clone()).await?;
            telemetry::generation_done();
            self.emit(CoordinatorEvent::GenerationDone(stats));
            if number + 1 >= spec.generations {
                let record = self.evolution.transition_run(run, &[RunStatus::Running], RunStatus::Completed).await?;
                return match record.status {
                    RunStatus::Completed => Ok(record),
                    // Cancelled while its last generation was evaluated: the cancel stands.
                    _ => Err(GaError::Cancelled { run: run.to_string() }),
                };
            }
            let children = breed(
                genome_spec,
                &genomes,
                &fitness,
                &run_config.operators,
                spec.seed,
                number + 1,
                spec.population_size,
            );
            let next = to_generation(run, number + 1, genome_spec, &children);
            match self.evolution.save_generation(next, Some(number)).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Polls until no task of the generation is pending or leased, returning
    /// expired leases to the queue; fails when the run is cancelled.
    async fn wait_for(&self, run: &RunId, generation: u32) -> GaResult<()> {
        loop {
            let counts = self.evolution.task_counts(run, generation).await?;
            telemetry::task_counts(&counts);
            self.emit(CoordinatorEvent::Progress { generation, counts });
            if counts.is_finished() {
                return Ok(());
            }
            let status = self.evolution.get_run(run).await?.status;
            if status == RunStatus::Cancelled {
                return Err(GaError::Cancelled { run: run.to_string() });
            }
            if !status.is_active() {
                return Err(GaError::RunState { run: run.to_string(), status: status.to_string() });
            }
            self.evolution.requeue_expired().await?;
            match &self.config.nudges {
                Some(nudges) => nudges.results_or(self.config.poll).await,
                None => tokio::time::sleep(self.config.poll).await,
            }
        }
    }

    async fn fitness_of(&self, run: &RunId, generation: &Generation) -> GaResult<Vec<f64>> {
        let tasks = self.evolution.list_tasks(run, generation.number).await?;
        let mut fitness = vec![f64::NAN; generation.individuals.len()];
        for task in tasks {
            if task.state == TaskState::Done
                && let (Some(value), Some(slot)) = (task.fitness, fitness.get_mut(task.key.individual as usize))
            {
                *slot = value;
            }
        }
        Ok(fitness)
    }
}

fn to_generation(run: &RunId, number: u32, spec: &GenomeSpec, genomes: &[Genome]) -> Generation {
    let individuals = genomes
        .iter()
        .enumerate()
        .map(|(index, genome)| Individual { index: index as u32, genome: spec.to_text(genome) })
        .collect();
    Generation { run: run.clone(), number, individuals }
}

fn parse_all(spec: &GenomeSpec, generation: &Generation) -> GaResult<Vec<Genome>> {
    generation.individuals.iter().map(|individual| spec.parse(&individual.genome)).collect()
}

/// Best, mean and standard deviation of the fitness values that exist, and the genomes' diversity.
pub fn statistics(
    run: &RunId,
    generation: u32,
    spec: &GenomeSpec,
    genomes: &[Genome],
    fitness: &[f64],
) -> GenerationStats {
    let values: Vec<f64> = fitness.iter().copied().filter(|f| !f.is_nan()).collect();
    let count = values.len() as f64;
    let (best, mean, std) = if values.is_empty() {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let mean = values.iter().sum::<f64>() / count;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count;
        (values.iter().copied().fold(f64::NEG_INFINITY, f64::max), mean, variance.sqrt())
    };
    GenerationStats {
        run: run.clone(),
        generation,
        best,
        mean,
        std,
        diversity: diversity(spec, genomes),
        evaluated: values.len() as u32,
    }
}

/// Reads a run back: statistics, population fingerprints, and the `top` best
/// individuals of the latest evaluated generation with their metrics; with
/// `market` and a test window in the run's configuration, also their
/// out-of-sample metrics (walk-forward).
pub async fn summarize(
    evolution: &dyn EvolutionStore,
    registry: &StrategyRegistry,
    market: Option<&dyn MarketDataStore>,
    run: &RunId,
    top: usize,
) -> GaResult<RunSummary> {
    let record = evolution.get_run(run).await?;
    let stats = evolution.generation_stats(run).await?;
    let mut population_hashes = Vec::new();
    let latest = evolution.latest_generation(run).await?.map_or(0, |g| g.number + 1);
    for number in 0..latest {
        population_hashes.push(population_hash(&evolution.load_generation(run, number).await?));
    }
    let mut best = Vec::new();
    if let Some(last) = stats.last() {
        let generation = evolution.load_generation(run, last.generation).await?;
        let tasks = evolution.list_tasks(run, last.generation).await?;
        let fitness: Vec<f64> = generation
            .individuals
            .iter()
            .map(|individual| {
                tasks
                    .iter()
                    .find(|t| t.key.individual == individual.index && t.state == TaskState::Done)
                    .and_then(|t| t.fitness)
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for position in ranking(&fitness) {
            if best.len() >= top {
                break;
            }
            let individual = &generation.individuals[position];
            if !seen.insert(individual.genome.clone()) {
                continue;
            }
            let metrics = tasks
                .iter()
                .find(|t| t.key.individual == individual.index)
                .and_then(|t| t.result.as_deref())
                .and_then(|text| serde_json::from_str::<Metrics>(text).ok());
            best.push(RankedIndividual {
                index: individual.index,
                genome: individual.genome.clone(),
                fitness: Some(fitness[position]).filter(|f| !f.is_nan()),
                metrics,
                out_of_sample: None,
            });
        }
        let config = RunConfig::parse(&record.spec.config)?;
        if let (Some(market), Some(test_window)) = (market, &config.test_window) {
            let strategy = registry.get(&record.spec.strategy)?;
            let bars = load_window(market, test_window).await?;
            for individual in &mut best {
                individual.out_of_sample =
                    Some(evaluate(strategy.as_ref(), &individual.genome, &bars, &config.backtest)?);
            }
        }
    }
    Ok(RunSummary { record, stats, population_hashes, best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataWindow;
    use crate::local::{LocalOptions, evolve_local};
    use strata_adapter_mock::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_evaluations_are_parked_after_their_attempts_and_fail_the_run() {
        let store = Arc::new(MemoryStore::new());
        let window =
            DataWindow { symbols: vec!["MISSING".into()], start: None, end: None, snapshot: None, digest: None };
        let spec = RunConfig::new(window).spec(None, "donchian", 1, 4, 3).unwrap();
        let mut options = LocalOptions::new(WorkerId::new("c").unwrap(), 2);
        options.coordinator.poll = Duration::from_millis(5);
        let registry = Arc::new(StrategyRegistry::default());
        let outcome = evolve_local(store.clone(), store.clone(), registry, spec.clone(), options, None).await.unwrap();
        assert!(
            matches!(&outcome.result, Err(GaError::Evaluation { generation: 0, cause, .. }) if cause.contains("MISSING"))
        );
        assert_eq!(store.get_run(&spec.id).await.unwrap().status, RunStatus::Failed);
        let tasks = store.list_tasks(&spec.id, 0).await.unwrap();
        assert_eq!(tasks.len(), 4);
        for task in tasks {
            assert_eq!(task.state, TaskState::Parked);
            assert_eq!(task.attempts, 3);
            assert!(task.error.unwrap().contains("no data"));
        }
        let failed: u64 = outcome.workers.iter().map(|w| w.as_ref().unwrap().failed).sum();
        assert_eq!(failed, 12, "each of 4 tasks failed 3 times");
    }

    #[test]
    fn statistics_ignore_missing_fitness() {
        let spec = GenomeSpec::new(vec![crate::genome::GeneSpec::int("n", 0, 10)]);
        let genomes: Vec<Genome> =
            [0, 10, 5].iter().map(|v| Genome { genes: vec![crate::genome::Gene::Int(*v)] }).collect();
        let run = RunId::new("r").unwrap();
        let stats = statistics(&run, 2, &spec, &genomes, &[1.0, f64::NAN, 3.0]);
        assert_eq!((stats.best, stats.mean, stats.std, stats.evaluated), (3.0, 2.0, 1.0, 2));
        assert!((stats.diversity - (1.0 + 0.5 + 0.5) / 3.0).abs() < 1e-12);
    }
}
