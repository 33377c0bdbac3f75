//! `EvolutionStore` for [`MemoryStore`]: runs, generations, leased tasks, workers and statistics.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_core::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Lease, LeaseRequest,
    NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskOutcome, TaskRecord, TaskState,
    WorkerId, WorkerInfo, WorkerRecord, check_cache_key, check_cache_keys,
};
use strata_core::{EvolutionStore, Result, StoreError, Timestamp};

use crate::{MemoryStore, lock};

/// All evolution state, guarded by one lock so every call is one transaction.
#[derive(Debug, Default)]
pub(crate) struct EvolutionState {
    /// Runs with their creation sequence number (the tie-break of `list_runs`).
    runs: BTreeMap<RunId, (u64, RunRecord)>,
    /// Runs created so far.
    created: u64,
    generations: BTreeMap<(RunId, u32), Generation>,
    tasks: BTreeMap<TaskKey, TaskRecord>,
    /// The last fencing token granted, for every task of every run.
    last_token: u64,
    workers: BTreeMap<WorkerId, WorkerRecord>,
    stats: BTreeMap<(RunId, u32), GenerationStats>,
    /// The coordinator role of each run that has a holder (released roles are removed).
    coordinators: BTreeMap<RunId, RoleLease>,
    /// The last coordinator token granted, for every run (so tokens grow per run too).
    last_role_token: u64,
    /// The fitness cache: cache key to (fitness, result).
    fitness_cache: BTreeMap<String, (f64, String)>,
}

impl EvolutionState {
    fn run(&self, run: &RunId) -> Result<&RunRecord> {
        self.runs.get(run).map(|(_, record)| record).ok_or_else(|| StoreError::not_found(format!("run {run}")))
    }

    fn touch_worker(&mut self, worker: &WorkerId, now: Timestamp) {
        if let Some(record) = self.workers.get_mut(worker) {
            record.last_seen = now;
        }
    }

    fn generation_tasks<'a>(&'a self, run: &'a RunId, generation: u32) -> impl Iterator<Item = &'a TaskRecord> + 'a {
        let first = TaskKey { run: run.clone(), generation, individual: 0 };
        self.tasks
            .range(first..)
            .map(|(_, task)| task)
            .take_while(move |task| task.key.run == *run && task.key.generation == generation)
    }
}

/// `now + ttl`, saturating.
fn expiry(now: Timestamp, ttl: Duration) -> Timestamp {
    Timestamp(strata_core::policy::expiry_micros(now.micros(), ttl))
}

/// Whether a leased task's lease has run out at `now`.
fn is_expired(task: &TaskRecord, now: Timestamp) -> bool {
    task.state == TaskState::Leased && task.lease_expires_at.is_none_or(|expires| expires <= now)
}

/// Releases the lease fields of a task that is no longer leased.
fn release(task: &mut TaskRecord, state: TaskState) {
    task.state = state;
    task.worker = None;
    task.lease_expires_at = None;
}

#[async_trait::async_trait]
impl EvolutionStore for MemoryStore {
    fn capabilities(&self) -> strata_core::Capabilities {
        crate::CAPABILITIES
    }

    async fn create_run(&self, spec: RunSpec) -> Result<RunRecord> {
        let mut state = lock(&self.evolution)?;
        if let Some((_, existing)) = state.runs.get(&spec.id) {
            if existing.spec == spec {
                return Ok(existing.clone());
            }
            return Err(StoreError::conflict(format!("run {} already exists with a different spec", spec.id)));
        }
        let now = Timestamp::now();
        let record = RunRecord { spec, status: RunStatus::Pending, created_at: now, updated_at: now };
        state.created += 1;
        let sequence = state.created;
        state.runs.insert(record.spec.id.clone(), (sequence, record.clone()));
        Ok(record)
    }

    async fn get_run(&self, run: &RunId) -> Result<RunRecord> {
        lock(&self.evolution)?.run(run).cloned()
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>> {
        let state = lock(&self.evolution)?;
        let mut runs: Vec<&(u64, RunRecord)> = state.runs.values().collect();
        runs.sort_by(|(a_sequence, a), (b_sequence, b)| {
            b.created_at.cmp(&a.created_at).then(b_sequence.cmp(a_sequence))
        });
        Ok(runs.into_iter().map(|(_, record)| record.clone()).collect())
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<RunRecord> {
        let mut state = lock(&self.evolution)?;
        let (_, record) = state.runs.get_mut(run).ok_or_else(|| StoreError::not_found(format!("run {run}")))?;
        record.status = status;
        record.updated_at = Timestamp::now();
        Ok(record.clone())
    }

    async fn transition_run(&self, run: &RunId, from: &[RunStatus], to: RunStatus) -> Result<RunRecord> {
        let mut state = lock(&self.evolution)?;
        let (_, record) = state.runs.get_mut(run).ok_or_else(|| StoreError::not_found(format!("run {run}")))?;
        if from.contains(&record.status) {
            record.status = to;
            record.updated_at = Timestamp::now();
        }
        Ok(record.clone())
    }

    async fn delete_run(&self, run: &RunId) -> Result<bool> {
        let mut state = lock(&self.evolution)?;
        if state.runs.remove(run).is_none() {
            return Ok(false);
        }
        state.generations.retain(|(owner, _), _| owner != run);
        state.tasks.retain(|key, _| key.run != *run);
        state.stats.retain(|(owner, _), _| owner != run);
        // The last tokens granted stay: a later run of the same id gets larger ones.
        state.coordinators.remove(run);
        Ok(true)
    }

    async fn save_generation(&self, generation: Generation, expected_latest: Option<u32>) -> Result<()> {
        let generation = generation.normalized()?;
        let mut state = lock(&self.evolution)?;
        state.run(&generation.run)?;
        let key = (generation.run.clone(), generation.number);
        if let Some(stored) = state.generations.get(&key) {
            if *stored == generation {
                return Ok(());
            }
            return Err(StoreError::conflict(format!(
                "generation {} of run {} is already stored with a different population",
                generation.number, generation.run
            )));
        }
        let latest = state
            .generations
            .range((generation.run.clone(), 0)..=(generation.run.clone(), u32::MAX))
            .next_back()
            .map(|((_, number), _)| *number);
        if latest != expected_latest {
            return Err(StoreError::conflict(format!(
                "run {} expected latest generation {expected_latest:?} but found {latest:?}",
                generation.run
            )));
        }
        state.generations.insert(key, generation);
        Ok(())
    }

    async fn load_generation(&self, run: &RunId, number: u32) -> Result<Generation> {
        let state = lock(&self.evolution)?;
        state
            .generations
            .get(&(run.clone(), number))
            .cloned()
            .ok_or_else(|| StoreError::not_found(format!("generation {number} of run {run}")))
    }

    async fn latest_generation(&self, run: &RunId) -> Result<Option<Generation>> {
        let state = lock(&self.evolution)?;
        Ok(state.generations.range((run.clone(), 0)..=(run.clone(), u32::MAX)).next_back().map(|(_, g)| g.clone()))
    }

    async fn enqueue_tasks(&self, run: &RunId, generation: u32, tasks: Vec<NewTask>, max_attempts: u32) -> Result<u64> {
        let mut state = lock(&self.evolution)?;
        state.run(run)?;
        let mut added = 0;
        for task in tasks {
            let key = TaskKey { run: run.clone(), generation, individual: task.individual };
            if state.tasks.contains_key(&key) {
                continue;
            }
            let record = TaskRecord {
                key: key.clone(),
                payload: task.payload,
                state: TaskState::Pending,
                attempts: 0,
                max_attempts: max_attempts.max(1),
                token: FencingToken(0),
                worker: None,
                lease_expires_at: None,
                fitness: None,
                result: None,
                error: None,
            };
            state.tasks.insert(key, record);
            added += 1;
        }
        Ok(added)
    }

    async fn lease_tasks(&self, request: LeaseRequest) -> Result<Vec<Lease>> {
        let mut state = lock(&self.evolution)?;
        let now = Timestamp::now();
        state.touch_worker(&request.worker, now);
        let state = &mut *state;
        let runs = &state.runs;
        let mut candidates: Vec<&mut TaskRecord> = state
            .tasks
            .values_mut()
            .filter(|task| request.run.as_ref().is_none_or(|run| task.key.run == *run))
            .filter(|task| runs.get(&task.key.run).is_some_and(|(_, run)| run.status.is_active()))
            .filter(|task| task.state == TaskState::Pending || is_expired(task, now))
            .collect();
        candidates.sort_by_key(|task| (task.key.generation, task.key.individual));
        let mut leases = Vec::new();
        for task in candidates {
            if leases.len() >= request.max_tasks as usize {
                break;
            }
            if task.attempts >= task.max_attempts {
                if task.error.is_none() {
                    task.error = Some(format!("lease expired; all {} attempts used", task.max_attempts));
                }
                release(task, TaskState::Parked);
                continue;
            }
            state.last_token += 1;
            task.state = TaskState::Leased;
            task.attempts += 1;
            task.token = FencingToken(state.last_token);
            task.worker = Some(request.worker.clone());
            task.lease_expires_at = Some(expiry(now, request.ttl));
            leases.push(Lease {
                key: task.key.clone(),
                payload: task.payload.clone(),
                token: task.token,
                attempt: task.attempts,
                expires_at: expiry(now, request.ttl),
            });
        }
        Ok(leases)
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<u64> {
        let mut state = lock(&self.evolution)?;
        let now = Timestamp::now();
        state.touch_worker(worker, now);
        let mut extended = 0;
        for task in state.tasks.values_mut() {
            if task.state == TaskState::Leased && task.worker.as_ref() == Some(worker) {
                task.lease_expires_at = Some(expiry(now, ttl));
                extended += 1;
            }
        }
        Ok(extended)
    }

    async fn complete_tasks(&self, worker: &WorkerId, completions: Vec<Completion>) -> Result<Vec<CompletionStatus>> {
        check_cache_keys(&completions)?;
        let mut state = lock(&self.evolution)?;
        state.touch_worker(worker, Timestamp::now());
        let state = &mut *state;
        let mut statuses = Vec::with_capacity(completions.len());
        for completion in completions {
            let task = state.tasks.get_mut(&completion.key).filter(|task| {
                task.state == TaskState::Leased
                    && task.worker.as_ref() == Some(worker)
                    && task.token == completion.token
            });
            let Some(task) = task else {
                statuses.push(CompletionStatus::Stale);
                continue;
            };
            let status = match completion.outcome {
                TaskOutcome::Succeeded { fitness, result } => {
                    if let Some(key) = completion.cache_key {
                        state.fitness_cache.insert(key, (fitness, result.clone()));
                    }
                    task.fitness = Some(fitness);
                    task.result = Some(result);
                    release(task, TaskState::Done);
                    CompletionStatus::Recorded
                }
                TaskOutcome::Failed { error } => {
                    task.error = Some(error);
                    if task.attempts >= task.max_attempts {
                        release(task, TaskState::Parked);
                        CompletionStatus::Parked
                    } else {
                        release(task, TaskState::Pending);
                        CompletionStatus::Requeued
                    }
                }
            };
            statuses.push(status);
        }
        Ok(statuses)
    }

    async fn release_tasks(
        &self,
        worker: &WorkerId,
        leases: Vec<(TaskKey, FencingToken)>,
    ) -> Result<Vec<CompletionStatus>> {
        let mut state = lock(&self.evolution)?;
        state.touch_worker(worker, Timestamp::now());
        let mut statuses = Vec::with_capacity(leases.len());
        for (key, token) in leases {
            let task = state.tasks.get_mut(&key).filter(|task| {
                task.state == TaskState::Leased && task.worker.as_ref() == Some(worker) && task.token == token
            });
            let Some(task) = task else {
                statuses.push(CompletionStatus::Stale);
                continue;
            };
            task.attempts = task.attempts.saturating_sub(1);
            release(task, TaskState::Pending);
            statuses.push(CompletionStatus::Released);
        }
        Ok(statuses)
    }

    async fn requeue_expired(&self) -> Result<u64> {
        let mut state = lock(&self.evolution)?;
        let now = Timestamp::now();
        let mut requeued = 0;
        for task in state.tasks.values_mut().filter(|task| is_expired(task, now)) {
            release(task, TaskState::Pending);
            requeued += 1;
        }
        Ok(requeued)
    }

    async fn requeue_parked(&self, run: &RunId) -> Result<u64> {
        let mut state = lock(&self.evolution)?;
        state.run(run)?;
        let mut requeued = 0;
        let first = TaskKey { run: run.clone(), generation: 0, individual: 0 };
        for (_, task) in state.tasks.range_mut(first..).take_while(|(key, _)| key.run == *run) {
            if task.state == TaskState::Parked {
                task.attempts = 0;
                task.error = None;
                release(task, TaskState::Pending);
                requeued += 1;
            }
        }
        Ok(requeued)
    }

    async fn task_counts(&self, run: &RunId, generation: u32) -> Result<TaskCounts> {
        let state = lock(&self.evolution)?;
        let mut counts = TaskCounts::default();
        for task in state.generation_tasks(run, generation) {
            match task.state {
                TaskState::Pending => counts.pending += 1,
                TaskState::Leased => counts.leased += 1,
                TaskState::Done => counts.done += 1,
                TaskState::Parked => counts.parked += 1,
            }
        }
        Ok(counts)
    }

    async fn list_tasks(&self, run: &RunId, generation: u32) -> Result<Vec<TaskRecord>> {
        let state = lock(&self.evolution)?;
        Ok(state.generation_tasks(run, generation).cloned().collect())
    }

    async fn register_worker(&self, worker: WorkerInfo) -> Result<()> {
        let mut state = lock(&self.evolution)?;
        let now = Timestamp::now();
        let registered_at = state.workers.get(&worker.id).map_or(now, |existing| existing.registered_at);
        state.workers.insert(worker.id.clone(), WorkerRecord { info: worker, registered_at, last_seen: now });
        Ok(())
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        Ok(lock(&self.evolution)?.workers.values().cloned().collect())
    }

    async fn record_generation_stats(&self, stats: GenerationStats) -> Result<()> {
        let mut state = lock(&self.evolution)?;
        state.run(&stats.run)?;
        state.stats.insert((stats.run.clone(), stats.generation), stats);
        Ok(())
    }

    async fn generation_stats(&self, run: &RunId) -> Result<Vec<GenerationStats>> {
        let state = lock(&self.evolution)?;
        Ok(state.stats.range((run.clone(), 0)..=(run.clone(), u32::MAX)).map(|(_, stats)| stats.clone()).collect())
    }

    async fn cached_fitness(&self, keys: &[String]) -> Result<Vec<Option<CachedFitness>>> {
        for key in keys {
            check_cache_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let state = lock(&self.evolution)?;
        Ok(keys
            .iter()
            .map(|key| {
                state.fitness_cache.get(key).map(|(fitness, result)| CachedFitness {
                    key: key.clone(),
                    fitness: *fitness,
                    result: result.clone(),
                })
            })
            .collect())
    }

    async fn acquire_coordinator(&self, run: &RunId, holder: &WorkerId, ttl: Duration) -> Result<Option<RoleLease>> {
        let mut state = lock(&self.evolution)?;
        let state = &mut *state;
        state.run(run)?;
        let now = Timestamp::now();
        let token = match state.coordinators.get(run) {
            // Re-acquiring one's own live lease renews it under the same token.
            Some(current) if current.expires_at > now && current.holder == *holder => current.token,
            Some(current) if current.expires_at > now => return Ok(None),
            _ => {
                state.last_role_token += 1;
                FencingToken(state.last_role_token)
            }
        };
        let lease = RoleLease { run: run.clone(), holder: holder.clone(), token, expires_at: expiry(now, ttl) };
        state.coordinators.insert(run.clone(), lease.clone());
        Ok(Some(lease))
    }

    async fn renew_coordinator(&self, lease: &RoleLease, ttl: Duration) -> Result<bool> {
        let mut state = lock(&self.evolution)?;
        let Some(current) = state.coordinators.get_mut(&lease.run) else { return Ok(false) };
        if current.token != lease.token || current.holder != lease.holder {
            return Ok(false);
        }
        current.expires_at = expiry(Timestamp::now(), ttl);
        Ok(true)
    }

    async fn release_coordinator(&self, lease: &RoleLease) -> Result<()> {
        let mut state = lock(&self.evolution)?;
        if state
            .coordinators
            .get(&lease.run)
            .is_some_and(|current| current.token == lease.token && current.holder == lease.holder)
        {
            state.coordinators.remove(&lease.run);
        }
        Ok(())
    }
}
