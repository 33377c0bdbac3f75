//! The evolution-state port: runs, generations, evaluation tasks with leases,
//! workers and per-generation statistics.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Lease, LeaseRequest,
    NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskRecord, WorkerId, WorkerInfo,
    WorkerRecord,
};
use crate::ports::Capabilities;

/// Durable evolution state shared by a coordinator and its workers.
///
/// `Display` describes the store as for [`crate::MarketDataStore`].
///
/// Time is the store's clock (the database server's, for a shared database),
/// never the caller's, so workers with skewed clocks agree on expiry.
///
/// # Runs
/// - `create_run` is idempotent: creating a spec that already exists returns
///   the stored run; a *different* spec under the same id is `Conflict`.
///   A new run starts `Pending`.
/// - `get_run` / `set_run_status` / `transition_run` on an unknown id are
///   `NotFound`.
/// - `transition_run(run, from, to)` is a compare-and-set on the status: it
///   sets `to` only when the stored status is one of `from`, in one atomic
///   step, and returns the run as stored afterwards either way (the caller
///   compares its status with `to`). The coordinator starts, finishes and
///   fails runs this way, so an operator's `cancel` that lands at the same
///   moment is never overwritten.
/// - `list_runs` returns every run, newest first.
///
/// # Generations
/// - `save_generation` stores a whole population atomically, ordered by
///   individual index (see [`Generation::normalized`]; an index listed twice
///   is `InvalidInput`). If that
///   generation number is already stored, an identical population is accepted
///   (idempotent retry) and a different one is `Conflict`. Otherwise the
///   latest stored generation must equal `expected_latest` (`None` = no
///   generation yet), else `Conflict`: this compare-and-set is how two
///   coordinators avoid overwriting each other. Unknown run: `NotFound`.
/// - `latest_generation` returns the highest-numbered generation, if any
///   (`Ok(None)` for an unknown run as well).
///
/// # Tasks and leases
/// - `enqueue_tasks` adds one task per individual of a generation, each
///   allowed `max_attempts` leases (0 is treated as 1). Enqueueing a task that
///   exists already leaves it untouched (idempotent); it returns the number
///   of tasks newly added. Unknown run: `NotFound`.
/// - `lease_tasks` grants up to `max_tasks` tasks that are pending or whose
///   lease has expired, only of runs whose status is active (pending or
///   running), oldest generation, then lowest index, then run id first. Each grant gives a
///   fresh [`crate::evolution::FencingToken`] larger than any granted
///   before, increments the attempt count and sets the expiry to now + ttl.
///   Two concurrent callers never receive the same task. A task whose
///   attempts are used up is parked instead of being leased again.
///   The call also records the worker as seen (if it is registered).
/// - `heartbeat` extends every lease the worker currently holds to now + ttl,
///   records it as seen, and returns how many leases it extended. A lease
///   that expired but was not yet granted to someone else is still held.
/// - `complete_tasks` applies each completion in one transaction and returns
///   a status per completion, in order. A completion is accepted only if the
///   task is leased, by this worker, under exactly this token; otherwise it
///   is `Stale` and changes nothing. A success stores fitness and result and
///   marks the task done; a failure stores the error and requeues the task,
///   or parks it when its attempts are used up. A task that is no longer
///   leased has no worker and no expiry. A completion whose cache key is
///   longer than [`MAX_CACHE_KEY_BYTES`](crate::evolution::MAX_CACHE_KEY_BYTES)
///   refuses the whole call (`InvalidInput`) before anything changes.
/// - `release_tasks` hands leases back without counting an attempt (a worker
///   that is asked to stop gives its leases back at once instead of letting
///   them run out their TTL). For each (task, token), in order and in one
///   transaction: if the task is leased by this worker under exactly this
///   token, it returns to pending, its attempt count goes down by one (never
///   below 0), its worker and expiry are cleared, and the status is
///   `Released`; otherwise `Stale` and nothing changes (a later copy of a
///   pair in the same call is `Stale` too). A released task can be leased
///   again at once, by anyone, with a fresh, larger token. As with
///   completions, a lease that expired but was not yet granted to anyone
///   else is still held and can be released.
/// - `requeue_expired` returns every expired lease to pending (the holder's
///   token becomes stale) and returns how many it requeued.
/// - `requeue_parked` gives every parked task of a run, of any generation,
///   a fresh start (resuming a run that gave up on some evaluations): in
///   one transaction each returns to pending with its attempt count reset
///   to 0 and its error cleared, so it is leased again with attempt 1 and
///   all of `max_attempts` before it can be parked again. It returns how
///   many tasks it requeued (0 when none is parked, so a repeat returns 0);
///   other states and other runs are untouched, whatever the run's status.
///   Unknown run: `NotFound`.
/// - `task_counts` and `list_tasks` describe one generation (`list_tasks`
///   ordered by individual). Unknown run: empty counts and list.
///
/// # Fitness cache
/// A durable map from a cache key (opaque text the caller computes, such as
/// a hex SHA-256 of strategy, genome, data window and backtest settings; at
/// most [`MAX_CACHE_KEY_BYTES`](crate::evolution::MAX_CACHE_KEY_BYTES) bytes)
/// to the fitness and result of an evaluation, shared by every run and
/// worker of the store, so that nothing is backtested twice.
/// - It is written only by `complete_tasks`: a completion recorded as a
///   success (`Recorded`) that carries a `cache_key` upserts (key, fitness,
///   result) in the same transaction as the task update; when several
///   recorded completions of one call carry the same key, the last one wins.
///   A stale completion, or a failure, writes nothing to the cache.
/// - `cached_fitness` returns one entry per key, in order: the cached
///   fitness and result, or `None` for a key never cached. An empty list is
///   an empty answer without a query; a key over the limit is `InvalidInput`.
///
/// # Coordinator role
/// A run has at most one coordinator at a time; the role is a fenced lease
/// of its own, separate from the task queue (workers never see it).
/// - `acquire_coordinator` grants the role of `run` to `holder` for `ttl`
///   when nobody holds it, when the current lease has expired (whether or
///   not its holder is `holder`) or was released, or when `holder` holds it
///   already. Re-acquiring a live lease one holds renews it and keeps its
///   token; every other grant carries a fresh token, strictly larger than
///   every token granted before for that run, so a previous holder's lease
///   is fenced out. Returns `None` while another holder's lease is live.
///   Unknown run: `NotFound`.
/// - `renew_coordinator` extends the lease to now + ttl and returns true
///   only if the stored lease still has this lease's token and holder. As
///   with task leases, a lease that expired but was not yet granted to
///   anyone else is still held and can be renewed; once another holder has
///   acquired the role (or the lease was released) it returns false and
///   changes nothing.
/// - `release_coordinator` frees the role at once if the stored lease still
///   has this lease's token and holder, so the next `acquire_coordinator`
///   succeeds without waiting for the expiry; otherwise (released already,
///   or taken over) it does nothing.
///
/// # Retrying (what a decorator may repeat after an error whose outcome is unknown)
///
/// | method | [`Idempotency`](crate::policy::Idempotency) | notes |
/// |---|---|---|
/// | `get_run`, `list_runs`, `load_generation`, `latest_generation`, `task_counts`, `list_tasks`, `list_workers`, `generation_stats` | `Safe` | reads |
/// | `create_run`, `set_run_status`, `transition_run`, `delete_run`, `enqueue_tasks`, `heartbeat`, `requeue_expired`, `requeue_parked`, `register_worker`, `record_generation_stats` | `Idempotent` | a repeat leaves the same state (counts it returns may be 0 the second time) |
/// | `save_generation` | `Idempotent` | compare-and-set: a repeat of an applied save is `Conflict`; re-read to learn it applied |
/// | `lease_tasks` | `NotIdempotent` | a repeat grants more leases: never repeat once the request may have reached the store |
/// | `complete_tasks` | `NotIdempotent` | fenced, so a repeat changes no data, but applied completions then report `Stale`: repeat only when nothing reached the store |
/// | `release_tasks` | `Idempotent` | fenced: a repeat finds the task no longer leased under that token and reports `Stale` |
/// | `complete_and_lease` | `NotIdempotent` | as `complete_tasks` then `lease_tasks` |
/// | `cached_fitness` | `Safe` | a read |
/// | `acquire_coordinator` | `Idempotent` | a repeat by the same holder finds its own live lease and renews it, same token |
/// | `renew_coordinator`, `release_coordinator` | `Idempotent` | fenced by token: a repeat extends again, or finds the role already free |
///
/// # Workers and statistics
/// - `register_worker` upserts a worker; `list_workers` returns all, by id.
/// - `record_generation_stats` upserts the statistics of (run, generation)
///   (`NotFound` for an unknown run);
///   `generation_stats` lists a run's statistics by generation.
#[async_trait::async_trait]
pub trait EvolutionStore: Send + Sync + std::fmt::Debug + std::fmt::Display + 'static {
    /// What this store can do; `shared_across_hosts` says whether workers on
    /// other hosts (or other processes) can coordinate through it.
    fn capabilities(&self) -> Capabilities;

    /// Creates a run, or returns the existing identical one.
    async fn create_run(&self, spec: RunSpec) -> Result<RunRecord>;
    /// One run.
    async fn get_run(&self, run: &RunId) -> Result<RunRecord>;
    /// Every run, newest first.
    async fn list_runs(&self) -> Result<Vec<RunRecord>>;
    /// Changes a run's status.
    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<RunRecord>;
    /// Changes a run's status to `to` only if it is one of `from`, atomically;
    /// returns the run as stored afterwards (changed or not).
    async fn transition_run(&self, run: &RunId, from: &[RunStatus], to: RunStatus) -> Result<RunRecord>;
    /// Deletes a run with everything of it (generations, tasks, statistics,
    /// coordinator role) in one transaction; `false` when there was no such
    /// run. The fitness cache is shared by every run and is kept. Whether a
    /// run may be deleted (not while it runs) is the caller's decision.
    async fn delete_run(&self, run: &RunId) -> Result<bool>;

    /// Stores a population atomically with a compare-and-set on the latest generation.
    async fn save_generation(&self, generation: Generation, expected_latest: Option<u32>) -> Result<()>;
    /// One stored generation (`NotFound` if absent).
    async fn load_generation(&self, run: &RunId, number: u32) -> Result<Generation>;
    /// The latest stored generation.
    async fn latest_generation(&self, run: &RunId) -> Result<Option<Generation>>;

    /// Enqueues evaluation tasks for a generation; returns how many were new.
    async fn enqueue_tasks(&self, run: &RunId, generation: u32, tasks: Vec<NewTask>, max_attempts: u32) -> Result<u64>;
    /// Leases up to `max_tasks` tasks.
    async fn lease_tasks(&self, request: LeaseRequest) -> Result<Vec<Lease>>;
    /// Extends every lease held by `worker`.
    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<u64>;
    /// Completes tasks, refusing stale tokens; caches the fitness of recorded
    /// successes that carry a cache key, in the same transaction.
    async fn complete_tasks(&self, worker: &WorkerId, completions: Vec<Completion>) -> Result<Vec<CompletionStatus>>;
    /// A worker's round trip: completes `completions` as `complete_tasks` does,
    /// then leases as `lease_tasks(next)` does. A store that can does both in
    /// one transaction, so a worker's round costs one commit instead of two
    /// (DuckDB: one WAL sync); the default makes the two calls.
    ///
    /// An `Err` means the completions may not have been applied, as from
    /// `complete_tasks` (a store doing both in one transaction applied
    /// neither). `Ok((statuses, leases))` means the completions were applied
    /// with these statuses; `leases` is then the lease's own outcome, and an
    /// error there granted nothing.
    async fn complete_and_lease(
        &self,
        worker: &WorkerId,
        completions: Vec<Completion>,
        next: LeaseRequest,
    ) -> Result<(Vec<CompletionStatus>, Result<Vec<Lease>>)> {
        let statuses = self.complete_tasks(worker, completions).await?;
        Ok((statuses, self.lease_tasks(next).await))
    }
    /// Hands leases back without counting an attempt: `Released` or `Stale` per lease, in order.
    async fn release_tasks(
        &self,
        worker: &WorkerId,
        leases: Vec<(TaskKey, FencingToken)>,
    ) -> Result<Vec<CompletionStatus>>;
    /// Returns expired leases to the queue.
    async fn requeue_expired(&self) -> Result<u64>;
    /// Returns every parked task of `run` to the queue with its attempts
    /// reset and its error cleared; returns how many.
    async fn requeue_parked(&self, run: &RunId) -> Result<u64>;
    /// Counts of one generation's tasks by state.
    async fn task_counts(&self, run: &RunId, generation: u32) -> Result<TaskCounts>;
    /// One generation's tasks, by individual.
    async fn list_tasks(&self, run: &RunId, generation: u32) -> Result<Vec<TaskRecord>>;

    /// Registers (or re-registers) a worker.
    async fn register_worker(&self, worker: WorkerInfo) -> Result<()>;
    /// Every registered worker, by id.
    async fn list_workers(&self) -> Result<Vec<WorkerRecord>>;

    /// Upserts one generation's statistics.
    async fn record_generation_stats(&self, stats: GenerationStats) -> Result<()>;
    /// A run's statistics, by generation.
    async fn generation_stats(&self, run: &RunId) -> Result<Vec<GenerationStats>>;

    /// The cached evaluation of each key, in order (`None` for a miss).
    async fn cached_fitness(&self, keys: &[String]) -> Result<Vec<Option<CachedFitness>>>;

    /// Takes (or renews) the coordinator role of `run` for `ttl`; `None`
    /// while another holder's lease is live.
    async fn acquire_coordinator(&self, run: &RunId, holder: &WorkerId, ttl: Duration) -> Result<Option<RoleLease>>;
    /// Extends a held role to now + `ttl`; false when its token is no longer
    /// the stored one (taken over or released).
    async fn renew_coordinator(&self, lease: &RoleLease, ttl: Duration) -> Result<bool>;
    /// Frees a held role at once; a no-op when its token is no longer the stored one.
    async fn release_coordinator(&self, lease: &RoleLease) -> Result<()>;
}

const _: fn() = || {
    fn assert_object_safe_and_shareable<T: ?Sized + Send + Sync>() {}
    assert_object_safe_and_shareable::<Arc<dyn EvolutionStore>>();
};
