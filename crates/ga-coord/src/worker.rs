//! The worker loop: lease evaluations in batches with a TTL, keep them alive
//! with one heartbeat per worker, evaluate off the async runtime, and
//! complete them in one batch with their fencing tokens, sent with the next
//! lease in one call (`complete_and_lease`: one commit per round where the
//! store can).
//!
//! Batches are sized to about [`WorkerConfig::target_batch`] of work from a
//! moving average of the evaluation time. A worker that dies stops
//! heartbeating, so its leases expire after the TTL (about three heartbeat
//! intervals) and other workers take them over; results it sends later are
//! refused as stale. A run that is cancelled aborts the batch in progress at
//! the next heartbeat.
//!
//! Before evaluating, a batch's fitness-cache keys are looked up in the
//! store's durable cache (one query); what was evaluated before, by any run
//! or worker, is completed from there without a backtest, and what is
//! backtested is cached in the same transaction as its completion.
//!
//! A worker asked to stop (SIGTERM, Ctrl-C) stops evaluating after the
//! current genome, completes what it finished and hands the rest of its
//! leases back at once (`release_tasks`, no attempt counted), so other
//! workers take them without waiting for the TTL.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_core::evolution::{
    Completion, CompletionStatus, FencingToken, Lease, LeaseRequest, RunId, TaskKey, TaskOutcome, WorkerId, WorkerInfo,
};
use strata_core::{EvolutionStore, StoreError};
use tokio::sync::watch;

use crate::config::EvalPayload;
use crate::error::{GaError, GaResult};
use crate::eval::Evaluator;
use crate::telemetry::{self, PublishedReport};

/// Settings of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique id (also the lease holder).
    pub id: WorkerId,
    /// Only this run's tasks, or every active run's.
    pub run: Option<RunId>,
    /// Lease duration; a dead worker's tasks come back after this.
    pub ttl: Duration,
    /// Heartbeat interval (a third of the TTL by default).
    pub heartbeat: Duration,
    /// Most tasks per lease.
    pub max_batch: u32,
    /// Aim for batches of about this much work.
    pub target_batch: Duration,
    /// With `run` set: lease at most 1/`tail_share` of the tasks still pending
    /// in the generation (one extra count query per lease), so batches shrink
    /// near the end of a generation.
    pub tail_share: u32,
    /// Pause after a lease that returned nothing.
    pub idle_wait: Duration,
    /// With `run` set: stop once the run is completed, failed or cancelled.
    pub stop_when_run_ends: bool,
    /// Stop after this long without work (`None`: never).
    pub exit_when_idle: Option<Duration>,
    /// The machine's name, recorded with the worker (the caller finds it:
    /// this crate reads no environment).
    pub hostname: String,
    /// Wake-ups shared with an in-process coordinator ([`evolve_local`](crate::evolve_local)).
    pub nudges: Option<crate::local::Nudges>,
    /// Look results up in the store's durable fitness cache before
    /// evaluating, and cache what is evaluated (on by default; off only for
    /// checks that must see every evaluation run).
    pub durable_cache: bool,
}

impl WorkerConfig {
    /// Defaults: TTL 30 s, heartbeat 10 s, batches of up to 64 tasks and about 2 s.
    pub fn new(id: WorkerId) -> Self {
        WorkerConfig {
            id,
            run: None,
            ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            max_batch: 64,
            tail_share: 4,
            target_batch: Duration::from_secs(2),
            idle_wait: Duration::from_millis(200),
            stop_when_run_ends: false,
            exit_when_idle: None,
            hostname: "localhost".to_string(),
            durable_cache: true,
            nudges: None,
        }
    }

    /// Sets the TTL and a heartbeat of a third of it.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self.heartbeat = ttl / 3;
        self
    }
}

/// What a worker did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Lease round trips that returned work.
    pub batches: u64,
    /// Tasks leased.
    pub leased: u64,
    /// Results recorded.
    pub recorded: u64,
    /// Failures reported (requeued or parked).
    pub failed: u64,
    /// Completions refused as stale.
    pub stale: u64,
    /// Tasks abandoned because the run ended or the worker stopped.
    pub abandoned: u64,
    /// Leases handed back when the worker was asked to stop.
    pub released: u64,
    /// Backtests run (results from a cache are not counted).
    pub backtests: u64,
    /// Results taken from the store's durable fitness cache instead of a backtest.
    pub cached: u64,
}

/// Shared between the lease loop and the heartbeat loop.
#[derive(Debug, Default)]
struct Held {
    runs: BTreeSet<RunId>,
    abort: Option<Arc<AtomicBool>>,
}

/// A worker: leases tasks from an [`EvolutionStore`] and evaluates them with an [`Evaluator`].
#[derive(Debug, Clone)]
pub struct Worker {
    evolution: Arc<dyn EvolutionStore>,
    evaluator: Evaluator,
    config: WorkerConfig,
}

impl Worker {
    /// A worker; nothing happens until [`Worker::run`].
    pub fn new(evolution: Arc<dyn EvolutionStore>, evaluator: Evaluator, config: WorkerConfig) -> Self {
        Worker { evolution, evaluator, config }
    }

    /// The worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.config.id
    }

    /// Runs until `shutdown` turns true (or, as configured, the run ends or
    /// the worker idles too long). Dropping the future kills the worker the
    /// way a crash would: its leases simply expire.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) -> GaResult<WorkerReport> {
        let info =
            WorkerInfo { id: self.config.id.clone(), hostname: self.config.hostname.clone(), pid: std::process::id() };
        self.evolution.register_worker(info).await?;
        let held = Arc::new(Mutex::new(Held::default()));
        let mut report = WorkerReport::default();
        let mut published = PublishedReport::default();
        let outcome = {
            let lease_loop = self.lease_loop(shutdown.clone(), held.clone(), &mut report, &mut published);
            let heartbeat_loop = self.heartbeat_loop(shutdown, held);
            tokio::select! {
                outcome = lease_loop => outcome,
                never = heartbeat_loop => match never {},
            }
        };
        published.publish(&report);
        outcome.map(|()| report)
    }

    /// Leases, evaluates and completes batches until told to stop, counting
    /// in `report` (published as metrics at each round and when it stops).
    async fn lease_loop(
        &self,
        mut shutdown: watch::Receiver<bool>,
        held: Arc<Mutex<Held>>,
        report: &mut WorkerReport,
        published: &mut PublishedReport,
    ) -> GaResult<()> {
        let mut seconds_per_task: Option<f64> = None;
        let mut idle_since = Instant::now();
        let mut last_generation: Option<u32> = None;
        // The last batch's completions, sent with the next lease in one call (one commit).
        let mut unsent: Vec<Completion> = Vec::new();
        loop {
            published.publish(report);
            if *shutdown.borrow() {
                return self.flush(unsent, &held, report).await;
            }
            if self.config.stop_when_run_ends
                && let Some(run) = &self.config.run
            {
                match self.evolution.get_run(run).await {
                    Ok(record) if !record.status.is_active() => return self.flush(unsent, &held, report).await,
                    // A worker may start before its run is created.
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(error) if error.is_retryable() => {}
                    Err(error) => return Err(error.into()),
                }
            }
            let batch = self.next_batch_size(seconds_per_task, last_generation).await;
            let request = LeaseRequest {
                worker: self.config.id.clone(),
                run: self.config.run.clone(),
                max_tasks: batch,
                ttl: self.config.ttl,
            };
            let claim = Instant::now();
            let leased = if unsent.is_empty() {
                self.evolution.lease_tasks(request).await
            } else {
                let completions = std::mem::take(&mut unsent);
                match self.evolution.complete_and_lease(&self.config.id, completions.clone(), request).await {
                    Ok((statuses, leased)) => {
                        self.recorded(report, &statuses);
                        clear_runs(&held);
                        leased
                    }
                    Err(error) if error.is_retryable() => {
                        // Nothing is known to have been applied: complete them on their own.
                        tracing::warn!(worker = %self.config.id, %error, "completion failed; retrying");
                        self.flush(completions, &held, report).await?;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            telemetry::lease(claim.elapsed());
            let leases = match leased {
                Ok(leases) => leases,
                Err(error) if error.is_retryable() => {
                    tracing::warn!(worker = %self.config.id, %error, "lease failed; retrying");
                    if self.idle(&mut shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if leases.is_empty() {
                if self.config.exit_when_idle.is_some_and(|limit| idle_since.elapsed() >= limit) {
                    return Ok(());
                }
                if self.idle(&mut shutdown).await {
                    return Ok(());
                }
                continue;
            }
            if *shutdown.borrow() {
                // Asked to stop while the lease was on its way: give it all back.
                let handed = leases.into_iter().map(|lease| (lease.key, lease.token)).collect();
                let statuses = self.evolution.release_tasks(&self.config.id, handed).await?;
                record(report, &statuses);
                return Ok(());
            }
            report.batches += 1;
            last_generation = leases.iter().map(|lease| lease.key.generation).max();
            report.leased += leases.len() as u64;
            let abort = Arc::new(AtomicBool::new(false));
            if let Ok(mut held) = held.lock() {
                held.runs = leases.iter().map(|lease| lease.key.run.clone()).collect();
                held.abort = Some(abort.clone());
            }
            let handed: Vec<(TaskKey, FencingToken)> = leases.iter().map(|l| (l.key.clone(), l.token)).collect();
            let completions = self.evaluate(leases, &abort, &mut seconds_per_task, report).await;
            if let Ok(mut held) = held.lock() {
                held.abort = None;
            }
            if abort.load(Ordering::Relaxed) && *shutdown.borrow() {
                // Asked to stop: keep what is done, hand the rest back now.
                let done: BTreeSet<TaskKey> = completions.iter().map(|c| c.key.clone()).collect();
                if !completions.is_empty() {
                    let statuses = self.complete_with_retry(completions).await?;
                    record(report, &statuses);
                }
                let rest: Vec<(TaskKey, FencingToken)> =
                    handed.into_iter().filter(|(key, _)| !done.contains(key)).collect();
                if !rest.is_empty() {
                    let statuses = self.evolution.release_tasks(&self.config.id, rest).await?;
                    record(report, &statuses);
                    report.abandoned -= report.released.min(report.abandoned);
                }
                return Ok(());
            }
            if abort.load(Ordering::Relaxed) {
                // The run ended or we are stopping: the results would be refused or unused.
                report.abandoned += completions.len() as u64;
                continue;
            }
            if completions.is_empty() {
                clear_runs(&held);
            }
            unsent = completions;
            idle_since = Instant::now();
        }
    }

    /// Sends `completions` on their own (retrying), before the worker stops or
    /// when sending them with a lease failed.
    async fn flush(&self, completions: Vec<Completion>, held: &Mutex<Held>, report: &mut WorkerReport) -> GaResult<()> {
        if !completions.is_empty() {
            let statuses = self.complete_with_retry(completions).await?;
            self.recorded(report, &statuses);
        }
        clear_runs(held);
        Ok(())
    }

    /// Counts what the store did with completions, and nudges an in-process coordinator.
    fn recorded(&self, report: &mut WorkerReport, statuses: &[CompletionStatus]) {
        record(report, statuses);
        if let Some(nudges) = &self.config.nudges
            && statuses.iter().any(|status| *status != CompletionStatus::Stale)
        {
            nudges.results_recorded();
        }
    }

    /// Waits [`WorkerConfig::idle_wait`] (less when an in-process coordinator
    /// enqueues work); true when shutting down.
    async fn idle(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        match &self.config.nudges {
            None => wait_or_shutdown(shutdown, self.config.idle_wait).await,
            Some(nudges) => {
                if *shutdown.borrow() {
                    return true;
                }
                tokio::select! {
                    () = nudges.work_or(self.config.idle_wait) => *shutdown.borrow(),
                    changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
                }
            }
        }
    }

    /// How many tasks to ask for: about [`WorkerConfig::target_batch`] of work
    /// at the measured `seconds_per_task`, and near the end of a generation
    /// (`last_generation`, with a run set) a share of what is still pending.
    async fn next_batch_size(&self, seconds_per_task: Option<f64>, last_generation: Option<u32>) -> u32 {
        let batch = match seconds_per_task {
            None => 4,
            Some(seconds) => (self.config.target_batch.as_secs_f64() / seconds.max(1e-6)) as u32,
        }
        .clamp(1, self.config.max_batch.max(1));
        match (&self.config.run, last_generation) {
            // Near the end of a generation, take a share of what is left so
            // the other workers are not idle while one finishes a big batch.
            // Only worth it (one count query per lease) while what is left is real work: when the
            // remaining tasks are quick, one lease takes them and saves round trips.
            (Some(run), Some(generation))
                if seconds_per_task.is_none_or(|seconds| {
                    f64::from(batch) * seconds >= self.config.target_batch.as_secs_f64() / 8.0
                }) =>
            {
                match self.evolution.task_counts(run, generation).await {
                    Ok(counts) if counts.pending > 0 => {
                        batch.min(counts.pending.div_ceil(u64::from(self.config.tail_share.max(1))) as u32).max(1)
                    }
                    _ => batch,
                }
            }
            _ => batch,
        }
    }

    /// Evaluates a batch of leases off the async runtime (stopping early when
    /// `abort` turns true) and returns one completion per lease it finished;
    /// an unreadable payload is a failure. Updates the moving average of
    /// `seconds_per_task` and counts abandoned evaluations in `report`.
    async fn evaluate(
        &self,
        leases: Vec<Lease>,
        abort: &Arc<AtomicBool>,
        seconds_per_task: &mut Option<f64>,
        report: &mut WorkerReport,
    ) -> Vec<Completion> {
        let mut completions = Vec::with_capacity(leases.len());
        let mut payloads = Vec::with_capacity(leases.len());
        let mut evaluated_leases = Vec::with_capacity(leases.len());
        for lease in leases {
            match EvalPayload::parse(&lease.payload) {
                Ok(payload) => {
                    payloads.push(payload);
                    evaluated_leases.push(lease);
                }
                Err(error) => completions.push(Completion {
                    key: lease.key,
                    token: lease.token,
                    outcome: TaskOutcome::Failed { error: error.to_string() },
                    cache_key: None,
                }),
            }
        }
        // The durable cache first: one query for the whole batch.
        let keys: Vec<Option<String>> = evaluated_leases
            .iter()
            .map(|lease| self.config.durable_cache.then(|| EvalPayload::cache_key_of(&lease.payload)))
            .collect();
        let hits = match self.config.durable_cache {
            false => vec![None; keys.len()],
            true => {
                let keys: Vec<String> = keys.iter().flatten().cloned().collect();
                self.evolution.cached_fitness(&keys).await.unwrap_or_else(|error| {
                    tracing::warn!(worker = %self.config.id, %error, "fitness cache unreadable; evaluating");
                    vec![None; keys.len()]
                })
            }
        };
        let mut misses = Vec::with_capacity(payloads.len());
        for (((lease, payload), key), hit) in evaluated_leases.into_iter().zip(payloads).zip(keys).zip(hits) {
            match hit {
                Some(hit) => {
                    report.cached += 1;
                    let outcome = TaskOutcome::Succeeded { fitness: hit.fitness, result: hit.result };
                    completions.push(Completion { key: lease.key, token: lease.token, outcome, cache_key: None });
                }
                None => misses.push((lease, payload, key)),
            }
        }
        let payloads: Vec<EvalPayload> = misses.iter().map(|(_, payload, _)| payload.clone()).collect();
        let started = Instant::now();
        let (results, backtests) = self.evaluator.evaluate_counted(&payloads, abort.clone()).await;
        report.backtests += backtests;
        let computed = results.iter().filter(|r| r.is_some()).count();
        if computed > 0 {
            let seconds = started.elapsed().as_secs_f64() / computed as f64;
            *seconds_per_task = Some(seconds_per_task.map_or(seconds, |old| 0.7 * old + 0.3 * seconds));
        }
        for ((lease, _, key), result) in misses.into_iter().zip(results) {
            let outcome = match result {
                None => {
                    report.abandoned += 1;
                    continue;
                }
                Some(Ok(evaluation)) => TaskOutcome::Succeeded {
                    fitness: evaluation.fitness,
                    result: serde_json::to_string(&evaluation.metrics).unwrap_or_default(),
                },
                Some(Err(error)) => TaskOutcome::Failed { error: error.to_string() },
            };
            completions.push(Completion { key: lease.key, token: lease.token, outcome, cache_key: key });
        }
        completions
    }

    /// Completing is idempotent under fencing (a repeat is `Stale`), so a
    /// retryable failure is retried a few times.
    async fn complete_with_retry(&self, completions: Vec<Completion>) -> GaResult<Vec<CompletionStatus>> {
        let mut attempt = 0;
        loop {
            match self.evolution.complete_tasks(&self.config.id, completions.clone()).await {
                Ok(statuses) => return Ok(statuses),
                Err(error) if error.is_retryable() && attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(worker = %self.config.id, %error, attempt, "completion failed; retrying");
                    tokio::time::sleep(self.config.idle_wait * attempt).await;
                }
                Err(error) => return Err(GaError::from(error)),
            }
        }
    }

    /// Extends every lease of this worker each interval, and aborts the batch
    /// in progress when its run stops being active or the worker is asked to stop.
    async fn heartbeat_loop(
        &self,
        mut shutdown: watch::Receiver<bool>,
        held: Arc<Mutex<Held>>,
    ) -> std::convert::Infallible {
        loop {
            let stopping = wait_or_shutdown(&mut shutdown, self.config.heartbeat).await;
            let (runs, abort) = match held.lock() {
                Ok(held) => (held.runs.clone(), held.abort.clone()),
                Err(_) => (BTreeSet::new(), None),
            };
            if stopping {
                if let Some(abort) = &abort {
                    abort.store(true, Ordering::Relaxed);
                }
                std::future::pending::<()>().await;
            }
            if let Err(error) = self.evolution.heartbeat(&self.config.id, self.config.ttl).await {
                tracing::warn!(worker = %self.config.id, %error, "heartbeat failed");
            }
            if let Some(abort) = abort {
                for run in runs {
                    let status = self.evolution.get_run(&run).await.map(|record| record.status);
                    if status.is_ok_and(|status| !status.is_active()) {
                        abort.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Forgets the runs of the batch just completed (the heartbeat checks them).
fn clear_runs(held: &Mutex<Held>) {
    if let Ok(mut held) = held.lock() {
        held.runs.clear();
    }
}

/// Counts what the store did with a batch's completions.
fn record(report: &mut WorkerReport, statuses: &[CompletionStatus]) {
    for status in statuses {
        match status {
            CompletionStatus::Recorded => report.recorded += 1,
            CompletionStatus::Requeued | CompletionStatus::Parked => report.failed += 1,
            CompletionStatus::Stale => report.stale += 1,
            CompletionStatus::Released => report.released += 1,
        }
    }
}

/// Sleeps `duration` or until shutdown; true when shutting down.
async fn wait_or_shutdown(shutdown: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => *shutdown.borrow(),
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
    }
}
