//! Reusable end-to-end checks that run against any pair of stores: the
//! in-memory store in this crate's tests, DuckDB in the CLI's, PostgreSQL in
//! the Neon adapter's.
//!
//! Each check writes its own synthetic symbols (an idempotent upsert) and uses
//! fresh run ids, so checks can share a store and run in parallel. They return
//! `Err` with a description when a property does not hold.
//!
//! - [`check_determinism`]: the same seed gives the same population in every
//!   generation with 1, 2 and 8 workers, with a worker killed while holding
//!   leases, and with the coordinator killed at several points and resumed;
//!   the killed worker's tasks are completed by others exactly once and its
//!   late results are refused.
//! - [`check_takeover`]: a second coordinator is refused while the first holds
//!   the role and takes over once the first dies.
//! - [`check_cancel`]: cancelling a run stops its workers within a heartbeat.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use strata_core::evolution::{
    Completion, CompletionStatus, LeaseRequest, NewTask, RunId, RunSpec, RunStatus, TaskOutcome, TaskState, WorkerId,
};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{EvolutionStore, MarketDataStore, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::backtest::PriceSeries;
use crate::config::{DataWindow, EvalPayload, RunConfig};
use crate::coordinator::{Coordinator, CoordinatorConfig, CoordinatorEvent, Observer, population_hash};
use crate::error::{GaError, GaResult};
use crate::eval::Evaluator;
use crate::genome::{Genome, GenomeSpec};
use crate::local::{LocalOptions, evolve_local};
use crate::strategy::{Strategy, StrategyRegistry};
use crate::worker::{Worker, WorkerConfig, WorkerReport};

/// Population fingerprints of one scenario, by generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioHashes {
    /// What was done.
    pub scenario: String,
    /// [`population_hash`] of each generation.
    pub hashes: Vec<u64>,
}

/// What [`check_determinism`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeterminismReport {
    /// Every scenario's fingerprints (all equal when the check passes).
    pub scenarios: Vec<ScenarioHashes>,
    /// Tasks the killed worker held when it died, all later completed by others.
    pub killed_tasks: usize,
    /// Coordinator kills survived.
    pub coordinator_kills: usize,
}

fn fail(message: String) -> GaError {
    GaError::Config(format!("testkit: {message}"))
}

/// A short unique prefix for run ids of one check.
fn nonce() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("tk{:x}{:x}{count}", Timestamp::now().micros() & 0xff_ffff_ffff, std::process::id() & 0xffff)
}

fn id<T: std::str::FromStr<Err = strata_core::StoreError>>(text: String) -> GaResult<T> {
    Ok(text.parse()?)
}

/// Writes the checks' synthetic daily bars (two symbols, 400 days) and returns their window.
pub async fn seed_market(market: &dyn MarketDataStore) -> GaResult<DataWindow> {
    let spec = SyntheticSpec {
        symbols: vec!["GATK_A".into(), "GATK_B".into()],
        start: Timestamp(1_420_070_400_000_000), // 2015-01-01
        interval_micros: Timestamp::MICROS_PER_DAY,
        bars_per_symbol: 400,
        seed: 20_261_128,
    };
    for batch in spec.batches(400) {
        market.write_bars(batch).await?;
    }
    Ok(DataWindow { symbols: spec.symbols.clone(), start: None, end: None, snapshot: None, digest: None })
}

fn small_spec(window: &DataWindow, run: &str, population: u32, generations: u32) -> GaResult<RunSpec> {
    let mut config = RunConfig::new(window.clone());
    config.backtest.min_trades = 4;
    config.spec(Some(id(run.to_string())?), "ma-crossover", 7, population, generations)
}

fn fast_options(holder: &str, workers: u32) -> GaResult<LocalOptions> {
    let mut options = LocalOptions::new(id(holder.to_string())?, workers);
    options.coordinator.poll = Duration::from_millis(5);
    options.max_batch = 3;
    // Every scenario evaluates for itself: the populations are compared, so
    // the fitness of one must not come from another's cache.
    options.durable_cache = false;
    Ok(options)
}

/// Fingerprints of every stored generation of `run`.
pub async fn generation_hashes(evolution: &dyn EvolutionStore, run: &RunId) -> GaResult<Vec<u64>> {
    let latest = evolution.latest_generation(run).await?.map_or(0, |g| g.number + 1);
    let mut hashes = Vec::new();
    for number in 0..latest {
        hashes.push(population_hash(&evolution.load_generation(run, number).await?));
    }
    Ok(hashes)
}

/// Checks that every generation's population is the same with 1, 2 and 8
/// in-process workers, with a worker killed mid-lease (TTL 200 ms), and with
/// the coordinator killed at several points and resumed by another one.
pub async fn check_determinism(
    evolution: Arc<dyn EvolutionStore>,
    market: Arc<dyn MarketDataStore>,
) -> GaResult<DeterminismReport> {
    let window = seed_market(market.as_ref()).await?;
    let prefix = nonce();
    let registry = Arc::new(StrategyRegistry::default());
    let (population, generations) = (10, 4);
    let mut scenarios = Vec::new();
    for workers in [1u32, 2, 8] {
        let run = format!("{prefix}-w{workers}");
        let spec = small_spec(&window, &run, population, generations)?;
        let outcome = patiently(
            "a local run",
            evolve_local(
                evolution.clone(),
                market.clone(),
                registry.clone(),
                spec.clone(),
                fast_options(&format!("{run}-c"), workers)?,
                None,
            ),
        )
        .await??;
        let record = outcome.result?;
        if record.status != RunStatus::Completed {
            return Err(fail(format!("run {run} ended {}", record.status)));
        }
        scenarios.push(ScenarioHashes {
            scenario: format!("{workers} workers"),
            hashes: generation_hashes(evolution.as_ref(), &spec.id).await?,
        });
    }
    let killed_tasks = killed_worker_scenario(&evolution, &market, &registry, &window, &prefix, &mut scenarios).await?;
    let coordinator_kills =
        killed_coordinator_scenario(&evolution, &market, &registry, &window, &prefix, &mut scenarios).await?;
    let reference = &scenarios[0];
    if reference.hashes.len() != generations as usize {
        return Err(fail(format!("expected {generations} generations, found {}", reference.hashes.len())));
    }
    for other in &scenarios[1..] {
        if other.hashes != reference.hashes {
            return Err(fail(format!(
                "populations differ: {} gave {:x?}, {} gave {:x?}",
                reference.scenario, reference.hashes, other.scenario, other.hashes
            )));
        }
    }
    Ok(DeterminismReport { scenarios, killed_tasks, coordinator_kills })
}

/// A gate that blocks evaluations until opened (a worker "hangs" inside it until killed).
#[derive(Debug, Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so a blocked evaluation thread never outlives a failed check.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Wraps a strategy: waits at the gate, counts evaluations, optionally sleeps, then delegates.
#[derive(Debug)]
struct Instrumented {
    inner: Arc<dyn Strategy>,
    gate: Option<Arc<Gate>>,
    calls: Arc<AtomicUsize>,
    pause: Duration,
}

impl Strategy for Instrumented {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn description(&self) -> &str {
        self.inner.description()
    }

    fn genome_spec(&self) -> GenomeSpec {
        self.inner.genome_spec()
    }

    fn positions(&self, genome: &Genome, series: &PriceSeries) -> GaResult<Vec<f64>> {
        if let Some(gate) = &self.gate {
            gate.wait();
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        self.inner.positions(genome, series)
    }
}

fn instrumented_registry(gate: Option<Arc<Gate>>, calls: Arc<AtomicUsize>, pause: Duration) -> Arc<StrategyRegistry> {
    let mut registry = StrategyRegistry::empty();
    for strategy in StrategyRegistry::default().iter() {
        registry.register(Arc::new(Instrumented {
            inner: strategy.clone(),
            gate: gate.clone(),
            calls: calls.clone(),
            pause,
        }));
    }
    Arc::new(registry)
}

fn spawn_worker(
    evolution: &Arc<dyn EvolutionStore>,
    evaluator: Evaluator,
    worker_id: String,
    run: &RunId,
    ttl: Duration,
    stopped: watch::Receiver<bool>,
) -> GaResult<JoinHandle<GaResult<WorkerReport>>> {
    let mut config = WorkerConfig::new(id(worker_id)?).with_ttl(ttl);
    config.run = Some(run.clone());
    config.max_batch = 3;
    config.idle_wait = Duration::from_millis(5);
    config.stop_when_run_ends = true;
    config.durable_cache = false;
    let worker = Worker::new(evolution.clone(), evaluator, config);
    Ok(tokio::spawn(async move { worker.run(stopped).await }))
}

/// Longest a check waits for a coordinator before failing instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

async fn patiently<T>(what: &str, future: impl std::future::Future<Output = T>) -> GaResult<T> {
    tokio::time::timeout(PATIENCE, future).await.map_err(|_| fail(format!("{what} did not finish within {PATIENCE:?}")))
}

async fn poll_until<F, Fut>(mut condition: F) -> GaResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = GaResult<bool>>,
{
    for _ in 0..20_000 {
        if condition().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(fail("a condition did not come true within about a minute".into()))
}

async fn killed_worker_scenario(
    evolution: &Arc<dyn EvolutionStore>,
    market: &Arc<dyn MarketDataStore>,
    registry: &Arc<StrategyRegistry>,
    window: &DataWindow,
    prefix: &str,
    scenarios: &mut Vec<ScenarioHashes>,
) -> GaResult<usize> {
    let run = format!("{prefix}-killed-worker");
    let spec = small_spec(window, &run, 10, 4)?;
    let run_id = spec.id.clone();
    let mut config = CoordinatorConfig::new(id(format!("{run}-c"))?);
    config.poll = Duration::from_millis(5);
    let coordinator = Coordinator::new(evolution.clone(), registry.clone(), config);
    let coordinating = tokio::spawn({
        let spec = spec.clone();
        async move { coordinator.run(spec).await }
    });
    let (stop, stopped) = watch::channel(false);
    poll_until(|| async { Ok(evolution.task_counts(&run_id, 0).await?.total() > 0) }).await?;

    // A worker that leases tasks and then hangs inside the backtest until it is killed.
    let gate = Arc::new(Gate::default());
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let hanging =
        Evaluator::new(market.clone(), instrumented_registry(Some(gate.clone()), Arc::default(), Duration::ZERO));
    let doomed_id = format!("{run}-doomed");
    let doomed =
        spawn_worker(evolution, hanging, doomed_id.clone(), &run_id, Duration::from_millis(200), stopped.clone())?;
    let doomed_worker: WorkerId = id(doomed_id)?;
    poll_until(|| async {
        let tasks = evolution.list_tasks(&run_id, 0).await?;
        Ok(tasks.iter().any(|t| t.state == TaskState::Leased && t.worker.as_ref() == Some(&doomed_worker)))
    })
    .await?;
    doomed.abort();
    let _ = doomed.await;
    let held: Vec<_> = evolution
        .list_tasks(&run_id, 0)
        .await?
        .into_iter()
        .filter(|t| t.state == TaskState::Leased && t.worker.as_ref() == Some(&doomed_worker))
        .collect();

    let evaluator = Evaluator::new(market.clone(), registry.clone());
    let mut workers = Vec::new();
    for index in 0..2 {
        let worker_id = format!("{run}-w{index}");
        workers.push(spawn_worker(
            evolution,
            evaluator.clone(),
            worker_id,
            &run_id,
            Duration::from_secs(5),
            stopped.clone(),
        )?);
    }
    let record =
        patiently("the coordinator", coordinating).await?.map_err(|e| fail(format!("coordinator task: {e}")))??;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    if record.status != RunStatus::Completed {
        return Err(fail(format!("run {run} ended {}", record.status)));
    }
    // Every task the killed worker held was completed once, by someone else, and its late results are refused.
    let after = evolution.list_tasks(&run_id, 0).await?;
    let mut late = Vec::new();
    for task in &held {
        let now =
            after.iter().find(|t| t.key == task.key).ok_or_else(|| fail(format!("task {} vanished", task.key)))?;
        if now.state != TaskState::Done || now.attempts < 2 || now.token <= task.token {
            return Err(fail(format!(
                "killed worker's task {} is {:?} after {} attempts",
                task.key, now.state, now.attempts
            )));
        }
        late.push(Completion {
            key: task.key.clone(),
            token: task.token,
            outcome: TaskOutcome::Succeeded { fitness: 1e9, result: "{}".into() },
            cache_key: None,
        });
    }
    let statuses = evolution.complete_tasks(&doomed_worker, late).await?;
    if statuses.iter().any(|s| *s != CompletionStatus::Stale) {
        return Err(fail(format!("a late result of the killed worker was accepted: {statuses:?}")));
    }
    let unchanged = evolution.list_tasks(&run_id, 0).await?;
    if unchanged != after {
        return Err(fail("a refused late result changed the stored tasks".into()));
    }
    if held.is_empty() {
        return Err(fail("the killed worker held no lease".into()));
    }
    scenarios.push(ScenarioHashes {
        scenario: format!("worker killed holding {} leases", held.len()),
        hashes: generation_hashes(evolution.as_ref(), &run_id).await?,
    });
    Ok(held.len())
}

/// Crashes the coordinator exactly at the first matching event: it panics
/// inside the coordinator's task, which ends that task on the spot without
/// releasing anything, as a killed process would. (The panic message is
/// printed; it is expected.)
struct CrashAt {
    when: Arc<dyn Fn(&CoordinatorEvent) -> bool + Send + Sync>,
}

impl Observer for CrashAt {
    fn event(&self, event: &CoordinatorEvent) {
        if (self.when)(event) {
            std::panic::panic_any(format!("testkit: coordinator killed on purpose at {event:?}"));
        }
    }
}

/// Sends one message when an event matches.
struct KillSwitch {
    when: Box<dyn Fn(&CoordinatorEvent) -> bool + Send + Sync>,
    fired: mpsc::UnboundedSender<()>,
}

impl Observer for KillSwitch {
    fn event(&self, event: &CoordinatorEvent) {
        if (self.when)(event) {
            let _ = self.fired.send(());
        }
    }
}

async fn killed_coordinator_scenario(
    evolution: &Arc<dyn EvolutionStore>,
    market: &Arc<dyn MarketDataStore>,
    registry: &Arc<StrategyRegistry>,
    window: &DataWindow,
    prefix: &str,
    scenarios: &mut Vec<ScenarioHashes>,
) -> GaResult<usize> {
    let run = format!("{prefix}-killed-coord");
    let spec = small_spec(window, &run, 10, 4)?;
    let (stop, stopped) = watch::channel(false);
    let evaluator = Evaluator::new(market.clone(), registry.clone());
    let mut workers = Vec::new();
    for index in 0..2 {
        let worker_id = format!("{run}-w{index}");
        workers.push(spawn_worker(
            evolution,
            evaluator.clone(),
            worker_id,
            &spec.id,
            Duration::from_secs(5),
            stopped.clone(),
        )?);
    }
    type Matcher = Arc<dyn Fn(&CoordinatorEvent) -> bool + Send + Sync>;
    let kill_points: Vec<Matcher> = vec![
        Arc::new(|e| matches!(e, CoordinatorEvent::LeaseAcquired { .. })),
        Arc::new(|e| matches!(e, CoordinatorEvent::GenerationSaved { generation: 0, .. })),
        Arc::new(|e| matches!(e, CoordinatorEvent::TasksEnqueued { generation: 1, .. })),
        Arc::new(|e| matches!(e, CoordinatorEvent::Progress { generation: 1, counts } if counts.done > 0)),
        Arc::new(|e| matches!(e, CoordinatorEvent::GenerationDone(stats) if stats.generation == 2)),
        Arc::new(|e| matches!(e, CoordinatorEvent::GenerationSaved { generation: 3, .. })),
    ];
    let mut kills = 0;
    for (index, when) in kill_points.into_iter().enumerate() {
        // A short role lease so that each takeover after a kill is quick. On a
        // loaded machine a living coordinator can miss a renewal and lose the
        // role (`LostLease`, which is how it must behave); the next one then
        // takes over and the same kill point is tried again.
        for attempt in 0.. {
            let mut config = CoordinatorConfig::new(id(format!("{run}-c{index}-{attempt}"))?);
            config.poll = Duration::from_millis(5);
            config.lease_ttl = Duration::from_millis(300);
            config.takeover_wait = Duration::from_secs(30);
            let crash = Arc::new(CrashAt { when: when.clone() });
            let coordinator = Coordinator::new(evolution.clone(), registry.clone(), config).with_observer(crash);
            let spec = spec.clone();
            let handle = tokio::spawn(async move { coordinator.run(spec).await });
            match patiently("a coordinator", handle).await? {
                Err(join) if join.is_panic() => {
                    kills += 1;
                    break;
                }
                Err(join) => return Err(fail(format!("coordinator task: {join}"))),
                Ok(Err(GaError::LostLease { .. })) if attempt < 20 => continue,
                Ok(result) => {
                    result?;
                    break;
                }
            }
        }
    }
    let mut config = CoordinatorConfig::new(id(format!("{run}-final"))?);
    config.poll = Duration::from_millis(5);
    config.takeover_wait = Duration::from_secs(30);
    let record = patiently(
        "the last coordinator",
        Coordinator::new(evolution.clone(), registry.clone(), config).run(spec.clone()),
    )
    .await??;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    if record.status != RunStatus::Completed {
        return Err(fail(format!("run {run} ended {}", record.status)));
    }
    let stats = evolution.generation_stats(&spec.id).await?;
    if stats.len() != 4 {
        return Err(fail(format!("expected statistics of 4 generations, found {}", stats.len())));
    }
    scenarios.push(ScenarioHashes {
        scenario: format!("coordinator killed {kills} times and resumed"),
        hashes: generation_hashes(evolution.as_ref(), &spec.id).await?,
    });
    Ok(kills)
}

/// Checks that a second coordinator is refused while the first holds the
/// role, and takes over (and finishes the run) once the first is killed.
pub async fn check_takeover(evolution: Arc<dyn EvolutionStore>, market: Arc<dyn MarketDataStore>) -> GaResult<()> {
    let window = seed_market(market.as_ref()).await?;
    let run = format!("{}-takeover", nonce());
    let spec = small_spec(&window, &run, 6, 2)?;
    let registry = Arc::new(StrategyRegistry::default());
    // The first coordinator holds the role (lease 1 s) while no worker runs, so it waits in generation 0.
    let mut first = CoordinatorConfig::new(id(format!("{run}-first"))?);
    first.lease_ttl = Duration::from_secs(1);
    first.poll = Duration::from_millis(5);
    let (fired, mut on_fire) = mpsc::unbounded_channel();
    let switch = KillSwitch { when: Box::new(|e| matches!(e, CoordinatorEvent::TasksEnqueued { .. })), fired };
    let first = Coordinator::new(evolution.clone(), registry.clone(), first).with_observer(Arc::new(switch));
    let first_handle = tokio::spawn({
        let spec = spec.clone();
        async move { first.run(spec).await }
    });
    on_fire.recv().await.ok_or_else(|| fail("the first coordinator never enqueued".into()))?;

    let mut second = CoordinatorConfig::new(id(format!("{run}-second"))?);
    second.poll = Duration::from_millis(5);
    let impatient = Coordinator::new(evolution.clone(), registry.clone(), second.clone());
    match impatient.run(spec.clone()).await {
        Err(GaError::CoordinatorBusy { .. }) => {}
        other => return Err(fail(format!("a second coordinator was not refused: {other:?}"))),
    }
    first_handle.abort();
    let _ = first_handle.await;
    second.takeover_wait = Duration::from_secs(30);
    let (stop, stopped) = watch::channel(false);
    let evaluator = Evaluator::new(market.clone(), registry.clone());
    let worker = spawn_worker(&evolution, evaluator, format!("{run}-w"), &spec.id, Duration::from_secs(5), stopped)?;
    let record =
        patiently("the second coordinator", Coordinator::new(evolution.clone(), registry, second).run(spec.clone()))
            .await??;
    let _ = stop.send(true);
    let _ = worker.await;
    if record.status != RunStatus::Completed {
        return Err(fail(format!("the second coordinator left the run {}", record.status)));
    }
    Ok(())
}

/// What [`check_cancel`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelReport {
    /// Evaluations started before the workers stopped.
    pub evaluations: usize,
    /// Individuals in the generation.
    pub population: usize,
}

/// Cancels a run whose evaluations are slow (20 ms each) while a worker holds
/// a large batch, and checks that the run ends `Cancelled`, the coordinator
/// returns [`GaError::Cancelled`], and the worker stops well before the
/// generation is done.
pub async fn check_cancel(
    evolution: Arc<dyn EvolutionStore>,
    market: Arc<dyn MarketDataStore>,
) -> GaResult<CancelReport> {
    let window = seed_market(market.as_ref()).await?;
    let run = format!("{}-cancel", nonce());
    let population = 60;
    let spec = small_spec(&window, &run, population, 3)?;
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = instrumented_registry(None, calls.clone(), Duration::from_millis(20));
    let mut options = fast_options(&format!("{run}-c"), 1)?;
    options.max_batch = 100;
    options.worker_ttl = Duration::from_millis(150);
    let running = tokio::spawn({
        let (evolution, market, spec) = (evolution.clone(), market.clone(), spec.clone());
        async move { evolve_local(evolution, market, registry, spec, options, None).await }
    });
    poll_until(|| async { Ok(calls.load(Ordering::Relaxed) >= 6) }).await?;
    evolution.set_run_status(&spec.id, RunStatus::Cancelled).await?;
    let outcome = patiently("the cancelled run", running).await?.map_err(|e| fail(format!("evolve task: {e}")))??;
    if !matches!(outcome.result, Err(GaError::Cancelled { .. })) {
        return Err(fail(format!("the coordinator did not stop as cancelled: {:?}", outcome.result)));
    }
    for report in outcome.workers {
        report?;
    }
    let evaluations = calls.load(Ordering::Relaxed);
    if evaluations >= population as usize {
        return Err(fail(format!("the worker kept evaluating after the cancel ({evaluations} evaluations)")));
    }
    let status = evolution.get_run(&spec.id).await?.status;
    if status != RunStatus::Cancelled {
        return Err(fail(format!("the run is {status} after the cancel")));
    }
    Ok(CancelReport { evaluations, population: population as usize })
}

/// What [`check_durable_cache`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheReport {
    /// Backtests of the first run.
    pub first_backtests: u64,
    /// Backtests of the identical second run (0 when the check passes).
    pub second_backtests: u64,
    /// Results the second run took from the store's cache.
    pub second_cached: u64,
}

/// Runs the same evolution twice under two run ids with fresh evaluators
/// (no in-memory cache, as in a new process): the second backtests nothing,
/// takes every result from the store's durable fitness cache, and ends with
/// the same populations.
pub async fn check_durable_cache(
    evolution: Arc<dyn EvolutionStore>,
    market: Arc<dyn MarketDataStore>,
) -> GaResult<CacheReport> {
    let window = seed_market(market.as_ref()).await?;
    let prefix = nonce();
    let mut totals = Vec::new();
    let mut hashes = Vec::new();
    for attempt in ["first", "second"] {
        let run = format!("{prefix}-cache-{attempt}");
        let spec = small_spec(&window, &run, 8, 3)?;
        let mut options = fast_options(&format!("{run}-c"), 2)?;
        options.durable_cache = true;
        let registry = Arc::new(StrategyRegistry::default());
        let outcome = patiently(
            "a cached run",
            evolve_local(evolution.clone(), market.clone(), registry, spec.clone(), options, None),
        )
        .await??;
        outcome.result?;
        let (mut backtests, mut cached) = (0, 0);
        for report in outcome.workers {
            let report = report?;
            backtests += report.backtests;
            cached += report.cached;
        }
        totals.push((backtests, cached));
        hashes.push(generation_hashes(evolution.as_ref(), &spec.id).await?);
    }
    let report =
        CacheReport { first_backtests: totals[0].0, second_backtests: totals[1].0, second_cached: totals[1].1 };
    if report.first_backtests == 0 || report.second_backtests != 0 || report.second_cached == 0 {
        return Err(fail(format!("the second run did not take its results from the cache: {report:?}")));
    }
    if hashes[0] != hashes[1] {
        return Err(fail(format!("cached results changed the populations: {:x?} vs {:x?}", hashes[0], hashes[1])));
    }
    Ok(report)
}

/// A worker asked to stop while it holds a large batch of slow evaluations
/// (20 ms each, TTL 60 s) hands the unfinished ones back at once: right
/// after it returns, none of its leases is held, and another worker leases
/// every task not done, each at its first attempt (the handed-back lease did
/// not count). Returns how many it handed back.
pub async fn check_handback(evolution: Arc<dyn EvolutionStore>, market: Arc<dyn MarketDataStore>) -> GaResult<u64> {
    let window = seed_market(market.as_ref()).await?;
    let run = format!("{}-handback", nonce());
    let spec = small_spec(&window, &run, 40, 1)?;
    evolution.create_run(spec.clone()).await?;
    let config = RunConfig::parse(&spec.config)?;
    let genome_spec = StrategyRegistry::default().get("ma-crossover")?.genome_spec();
    let tasks: Vec<NewTask> = crate::ops::initial_population(&genome_spec, 1, 40)
        .iter()
        .enumerate()
        .map(|(index, genome)| NewTask {
            individual: index as u32,
            payload: EvalPayload {
                strategy: "ma-crossover".into(),
                genome: genome_spec.to_text(genome),
                window: config.window.clone(),
                backtest: config.backtest.clone(),
            }
            .to_text(),
        })
        .collect();
    evolution.enqueue_tasks(&spec.id, 0, tasks, 3).await?;
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = Evaluator::new(market.clone(), instrumented_registry(None, calls.clone(), Duration::from_millis(20)));
    let mut config = WorkerConfig::new(id(format!("{run}-stopped"))?).with_ttl(Duration::from_secs(60));
    config.run = Some(spec.id.clone());
    config.max_batch = 40;
    config.durable_cache = false;
    let stopped_worker = config.id.clone();
    let worker = Worker::new(evolution.clone(), slow, config);
    let (stop, stopped) = watch::channel(false);
    let working = tokio::spawn(async move { worker.run(stopped).await });
    poll_until(|| async { Ok(calls.load(Ordering::Relaxed) >= 2) }).await?;
    let _ = stop.send(true);
    let report = patiently("the stopped worker", working).await?.map_err(|e| fail(format!("worker task: {e}")))??;
    let tasks = evolution.list_tasks(&spec.id, 0).await?;
    let still_held =
        tasks.iter().filter(|t| t.state == TaskState::Leased && t.worker.as_ref() == Some(&stopped_worker));
    if still_held.count() > 0 || report.released == 0 {
        return Err(fail(format!("the stopped worker kept leases or handed none back: {report:?}")));
    }
    let again = evolution
        .lease_tasks(LeaseRequest {
            worker: id(format!("{run}-next"))?,
            run: Some(spec.id.clone()),
            max_tasks: 100,
            ttl: Duration::from_secs(60),
        })
        .await?;
    let done = tasks.iter().filter(|t| t.state == TaskState::Done).count();
    if again.len() != tasks.len() - done || again.iter().any(|lease| lease.attempt != 1) {
        return Err(fail(format!(
            "{} handed back, {done} done, {} leased again, attempts {:?}",
            report.released,
            again.len(),
            again.iter().map(|lease| lease.attempt).collect::<Vec<_>>()
        )));
    }
    Ok(report.released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_adapter_mock::MemoryStore;

    fn stores() -> (Arc<dyn EvolutionStore>, Arc<dyn MarketDataStore>) {
        let store = Arc::new(MemoryStore::new());
        (store.clone(), store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_seed_same_populations_whatever_the_workers_and_crashes() {
        let (evolution, market) = stores();
        let report = check_determinism(evolution, market).await.unwrap();
        assert_eq!(report.scenarios.len(), 5, "{report:?}");
        assert!(report.killed_tasks >= 1);
        assert_eq!(report.coordinator_kills, 6, "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_coordinator_takes_over() {
        let (evolution, market) = stores();
        check_takeover(evolution, market).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repeated_run_backtests_nothing() {
        let (evolution, market) = stores();
        let report = check_durable_cache(evolution, market).await.unwrap();
        assert_eq!(report.second_backtests, 0, "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_worker_hands_its_leases_back() {
        let (evolution, market) = stores();
        assert!(check_handback(evolution, market).await.unwrap() > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_stops_workers_promptly() {
        let (evolution, market) = stores();
        let report = check_cancel(evolution, market).await.unwrap();
        assert!(report.evaluations < report.population, "{report:?}");
    }
}
