//! Conformance cases of `EvolutionStore`: one `pub async fn` per behaviour of the port's contract.

use std::collections::HashSet;
use std::time::Duration;

use strata_core::evolution::{
    CachedFitness, CompletionStatus, FencingToken, GenerationStats, Lease, LeaseRequest, MAX_CACHE_KEY_BYTES,
    RoleLease, RunStatus, TaskCounts, TaskOutcome, TaskState,
};
use strata_core::{EvolutionStore, StoreError};

use crate::fixtures::{
    cached_success, create_run, failure, generation, in_parallel, lease, lease_request, new_tasks, run_id, run_spec,
    run_with_tasks, success, task_key, worker_id, worker_info,
};

/// A lease that outlives any case.
const LONG: Duration = Duration::from_secs(600);
/// A lease meant to expire during a case.
const SHORT: Duration = Duration::from_millis(300);
/// Long enough for a [`SHORT`] lease to have expired.
const PAST_SHORT: Duration = Duration::from_millis(700);

fn is_not_found(error: &StoreError) -> bool {
    matches!(error, StoreError::NotFound { .. })
}

fn is_conflict(error: &StoreError) -> bool {
    matches!(error, StoreError::Conflict { .. })
}

/// Completes `completions` as `worker`, panicking on error.
async fn complete(
    store: &dyn EvolutionStore,
    worker: &str,
    completions: Vec<strata_core::evolution::Completion>,
    context: &str,
) -> Vec<CompletionStatus> {
    store
        .complete_tasks(&worker_id(worker), completions)
        .await
        .unwrap_or_else(|error| panic!("{context}: complete_tasks failed: {error}"))
}

/// One generation's task counts, panicking on error.
async fn counts(store: &dyn EvolutionStore, run: &strata_core::evolution::RunId, generation: u32) -> TaskCounts {
    store.task_counts(run, generation).await.unwrap_or_else(|error| panic!("task_counts failed: {error}"))
}

/// `requeue_expired`, panicking on error.
async fn requeue(store: &dyn EvolutionStore) -> u64 {
    store.requeue_expired().await.unwrap_or_else(|error| panic!("requeue_expired failed: {error}"))
}

/// `heartbeat`, panicking on error.
async fn heartbeat(store: &dyn EvolutionStore, worker: &str, ttl: Duration) -> u64 {
    store.heartbeat(&worker_id(worker), ttl).await.unwrap_or_else(|error| panic!("heartbeat failed: {error}"))
}

/// Creating a run twice with the same spec returns the same pending run.
pub async fn create_run_is_idempotent_and_starts_pending(store: &dyn EvolutionStore) {
    let spec = run_spec("run-a", 7);
    let first = store.create_run(spec.clone()).await.unwrap_or_else(|e| panic!("create_run: {e}"));
    assert_eq!(first.spec, spec, "the stored spec is the one given");
    assert_eq!(first.status, RunStatus::Pending, "a new run is pending");
    let again = store.create_run(spec.clone()).await.unwrap_or_else(|e| panic!("identical create_run: {e}"));
    assert_eq!(again, first, "creating the same spec again returns the stored run");
    assert_eq!(store.get_run(&spec.id).await.unwrap_or_else(|e| panic!("get_run: {e}")), first, "get_run");
    assert_eq!(store.list_runs().await.unwrap_or_else(|e| panic!("list_runs: {e}")).len(), 1, "still one run");
}

/// A different spec under an existing id is a `Conflict` and leaves the run as it was.
pub async fn different_spec_under_the_same_id_is_a_conflict(store: &dyn EvolutionStore) {
    let original = store.create_run(run_spec("run-a", 7)).await.unwrap_or_else(|e| panic!("create_run: {e}"));
    let error = store.create_run(run_spec("run-a", 8)).await.expect_err("a different seed under the same id");
    assert!(is_conflict(&error), "expected Conflict, got {error:?}");
    let stored = store.get_run(&run_id("run-a")).await.unwrap_or_else(|e| panic!("get_run: {e}"));
    assert_eq!(stored, original, "the conflicting create changed nothing");
}

/// Operations on an unknown run, or an absent generation, are `NotFound`.
pub async fn unknown_run_is_not_found(store: &dyn EvolutionStore) {
    let ghost = run_id("ghost");
    let error = store.get_run(&ghost).await.expect_err("get_run of an unknown run");
    assert!(is_not_found(&error), "get_run: expected NotFound, got {error:?}");
    let error = store.set_run_status(&ghost, RunStatus::Running).await.expect_err("set_run_status of an unknown run");
    assert!(is_not_found(&error), "set_run_status: expected NotFound, got {error:?}");
    let error = store.save_generation(generation(&ghost, 0, 2, "g"), None).await.expect_err("save to an unknown run");
    assert!(is_not_found(&error), "save_generation: expected NotFound, got {error:?}");
    let error = store.enqueue_tasks(&ghost, 0, new_tasks(2), 1).await.expect_err("enqueue to an unknown run");
    assert!(is_not_found(&error), "enqueue_tasks: expected NotFound, got {error:?}");
    let run = create_run(store, "real").await;
    let error = store.load_generation(&run, 3).await.expect_err("load of an absent generation");
    assert!(is_not_found(&error), "load_generation: expected NotFound, got {error:?}");
}

/// `list_runs` returns every run, newest first.
pub async fn list_runs_is_newest_first(store: &dyn EvolutionStore) {
    assert!(store.list_runs().await.unwrap_or_else(|e| panic!("list_runs: {e}")).is_empty(), "no runs yet");
    for id in ["run-b", "run-c", "run-a"] {
        create_run(store, id).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let runs = store.list_runs().await.unwrap_or_else(|e| panic!("list_runs: {e}"));
    let ids: Vec<&str> = runs.iter().map(|run| run.spec.id.as_str()).collect();
    assert_eq!(ids, vec!["run-a", "run-c", "run-b"], "newest first");
}

/// `set_run_status` changes the status, returns the record and keeps the spec.
pub async fn set_run_status_changes_the_status(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    for status in [RunStatus::Running, RunStatus::Completed, RunStatus::Failed, RunStatus::Cancelled] {
        let record = store.set_run_status(&run, status).await.unwrap_or_else(|e| panic!("set {status}: {e}"));
        assert_eq!(record.status, status, "the returned record has the new status");
        assert_eq!(record.spec, run_spec("run-a", 42), "the spec is unchanged");
        assert!(record.updated_at >= record.created_at, "updated_at is not before created_at");
        let stored = store.get_run(&run).await.unwrap_or_else(|e| panic!("get_run: {e}"));
        assert_eq!(stored.status, status, "get_run sees {status}");
    }
}

/// `transition_run` sets the status only from one of the listed ones and returns the run as stored.
pub async fn transition_run_is_a_compare_and_set(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let start = [RunStatus::Pending, RunStatus::Failed, RunStatus::Interrupted];
    let record = store.transition_run(&run, &start, RunStatus::Running).await.unwrap_or_else(|e| panic!("start: {e}"));
    assert_eq!(record.status, RunStatus::Running, "pending is in `from`: the run starts");
    assert_eq!(record.spec, run_spec("run-a", 42), "the spec is unchanged");
    let record = store.transition_run(&run, &start, RunStatus::Running).await.unwrap_or_else(|e| panic!("again: {e}"));
    assert_eq!(record.status, RunStatus::Running, "a repeat finds it running (idempotent)");
    store.set_run_status(&run, RunStatus::Cancelled).await.unwrap_or_else(|e| panic!("cancel: {e}"));
    let record = store.transition_run(&run, &start, RunStatus::Running).await.unwrap_or_else(|e| panic!("late: {e}"));
    assert_eq!(record.status, RunStatus::Cancelled, "cancelled is not in `from`: the cancel stands");
    let stored = store.get_run(&run).await.unwrap_or_else(|e| panic!("get_run: {e}"));
    assert_eq!(stored.status, RunStatus::Cancelled, "get_run sees the cancel");
    let record = store.transition_run(&run, &[], RunStatus::Completed).await.unwrap_or_else(|e| panic!("empty: {e}"));
    assert_eq!(record.status, RunStatus::Cancelled, "an empty `from` changes nothing");
    let error = store
        .transition_run(&run_id("ghost"), &start, RunStatus::Running)
        .await
        .expect_err("transition of an unknown run");
    assert!(is_not_found(&error), "transition_run: expected NotFound, got {error:?}");
}

/// Of many callers moving a run out of `pending` at once, to different statuses, exactly one wins.
pub async fn concurrent_transitions_have_one_winner(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let targets = [RunStatus::Running, RunStatus::Cancelled, RunStatus::Failed, RunStatus::Interrupted];
    let run = &run;
    let outcomes = in_parallel(8, |caller| async move {
        let to = targets[caller % targets.len()];
        let record = store
            .transition_run(run, &[RunStatus::Pending], to)
            .await
            .unwrap_or_else(|e| panic!("caller {caller}: {e}"));
        (to, record.status)
    });
    let stored = store.get_run(run).await.unwrap_or_else(|e| panic!("get_run: {e}")).status;
    assert_ne!(stored, RunStatus::Pending, "someone moved the run");
    for (to, seen) in &outcomes {
        assert_eq!(*seen, stored, "a caller aiming at {to} saw {seen}, but the run is {stored}: two winners");
    }
}

/// Saving a new generation requires `expected_latest` to match the latest stored one.
pub async fn save_generation_is_a_compare_and_set(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let save = |number, expected, tag| store.save_generation(generation(&run, number, 4, tag), expected);
    save(0, None, "g0").await.unwrap_or_else(|e| panic!("g0 on an empty run: {e}"));
    let error = save(1, None, "g1").await.expect_err("g1 expecting no generation");
    assert!(is_conflict(&error), "a stale expected_latest is a Conflict, got {error:?}");
    save(1, Some(0), "g1").await.unwrap_or_else(|e| panic!("g1 after g0: {e}"));
    let error = save(2, Some(0), "g2").await.expect_err("g2 expecting g0");
    assert!(is_conflict(&error), "expected_latest 0 after g1 is a Conflict, got {error:?}");
    save(2, Some(1), "coordinator-1").await.unwrap_or_else(|e| panic!("g2 after g1: {e}"));
    let error = save(2, Some(1), "coordinator-2").await.expect_err("a second coordinator's g2");
    assert!(is_conflict(&error), "the losing coordinator gets a Conflict, got {error:?}");
    let latest = store.latest_generation(&run).await.unwrap_or_else(|e| panic!("latest_generation: {e}"));
    assert_eq!(latest, Some(generation(&run, 2, 4, "coordinator-1")), "the winner's population is stored");
}

/// Re-saving a stored generation is accepted when identical and a `Conflict` when different.
pub async fn resaving_a_generation_is_idempotent_only_when_identical(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let g0 = generation(&run, 0, 5, "first");
    store.save_generation(g0.clone(), None).await.unwrap_or_else(|e| panic!("g0: {e}"));
    store.save_generation(g0.clone(), None).await.unwrap_or_else(|e| panic!("identical retry of g0: {e}"));
    store.save_generation(generation(&run, 1, 5, "g1"), Some(0)).await.unwrap_or_else(|e| panic!("g1: {e}"));
    store.save_generation(g0.clone(), None).await.unwrap_or_else(|e| panic!("identical g0 after g1: {e}"));
    let error = store.save_generation(generation(&run, 0, 5, "other"), None).await.expect_err("a different g0");
    assert!(is_conflict(&error), "a different population for a stored generation is a Conflict, got {error:?}");
    let loaded = store.load_generation(&run, 0).await.unwrap_or_else(|e| panic!("load g0: {e}"));
    assert_eq!(loaded, g0, "the original population is kept");
}

/// Populations come back ordered by index whatever order they were saved in,
/// and an index listed twice is refused with nothing stored.
pub async fn populations_are_ordered_by_index_and_unique(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let mut shuffled = generation(&run, 0, 6, "shuffled");
    shuffled.individuals.reverse();
    store.save_generation(shuffled.clone(), None).await.unwrap_or_else(|e| panic!("reversed g0: {e}"));
    let loaded = store.load_generation(&run, 0).await.unwrap_or_else(|e| panic!("load g0: {e}"));
    let indexes: Vec<u32> = loaded.individuals.iter().map(|i| i.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5], "individuals are returned ordered by index");
    store.save_generation(shuffled, None).await.unwrap_or_else(|e| panic!("the same population in another order: {e}"));
    let mut twice = generation(&run, 1, 3, "twice");
    twice.individuals[2].index = 0;
    let error = store.save_generation(twice, Some(0)).await.expect_err("an index listed twice");
    assert!(matches!(error, StoreError::InvalidInput(_)), "a repeated index is InvalidInput, got {error:?}");
    let latest = store.latest_generation(&run).await.unwrap_or_else(|e| panic!("latest_generation: {e}"));
    assert_eq!(latest.map(|g| g.number), Some(0), "the refused generation was not stored");
}

/// `load_generation` returns a stored population as saved; `latest_generation` the highest number.
pub async fn load_and_latest_generation(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let none = store.latest_generation(&run).await.unwrap_or_else(|e| panic!("latest_generation: {e}"));
    assert_eq!(none, None, "a new run has no generation");
    let (g0, g1) = (generation(&run, 0, 30, "zero"), generation(&run, 1, 30, "one"));
    store.save_generation(g0.clone(), None).await.unwrap_or_else(|e| panic!("g0: {e}"));
    store.save_generation(g1.clone(), Some(0)).await.unwrap_or_else(|e| panic!("g1: {e}"));
    assert_eq!(store.load_generation(&run, 0).await.unwrap_or_else(|e| panic!("load g0: {e}")), g0, "g0 as saved");
    assert_eq!(store.load_generation(&run, 1).await.unwrap_or_else(|e| panic!("load g1: {e}")), g1, "g1 as saved");
    let latest = store.latest_generation(&run).await.unwrap_or_else(|e| panic!("latest_generation: {e}"));
    assert_eq!(latest, Some(g1), "the latest generation is the highest-numbered");
}

/// Enqueueing existing tasks leaves them untouched; the count is of new tasks only.
pub async fn enqueue_is_idempotent_and_counts_new_tasks(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 5, 3).await;
    let enqueue = |tasks, max_attempts| store.enqueue_tasks(&run, 0, tasks, max_attempts);
    assert_eq!(enqueue(new_tasks(5), 3).await.unwrap_or_else(|e| panic!("{e}")), 0, "the same tasks again add none");
    let leased = lease(store, lease_request("w1", 1, LONG), "lease one").await;
    assert_eq!(leased.len(), 1, "one task leased");
    let mut changed = new_tasks(8);
    for task in &mut changed {
        task.payload = "changed".into();
    }
    assert_eq!(enqueue(changed, 9).await.unwrap_or_else(|e| panic!("{e}")), 3, "only individuals 5..8 are new");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 7, leased: 1, done: 0, parked: 0 }, "counts");
    let tasks = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    for task in &tasks[..5] {
        assert_ne!(task.payload, "changed", "{}: an existing task keeps its payload", task.key);
        assert_eq!(task.max_attempts, 3, "{}: an existing task keeps its max_attempts", task.key);
    }
    assert_eq!(tasks[0].state, TaskState::Leased, "re-enqueueing does not reset a leased task");
    assert_eq!(tasks[7].max_attempts, 9, "a new task gets the given max_attempts");
}

/// A lease grants at most `max_tasks`, with attempt 1 and fencing tokens larger than any before, across runs.
pub async fn lease_grants_up_to_max_tasks_with_increasing_tokens(store: &dyn EvolutionStore) {
    let run_a = run_with_tasks(store, "run-a", 5, 3).await;
    let nothing = lease(store, lease_request("w1", 0, LONG), "max 0").await;
    assert!(nothing.is_empty(), "max_tasks 0 grants nothing");
    let mut all: Vec<Lease> = Vec::new();
    for (max, expected) in [(3, 3), (3, 2), (3, 0)] {
        let granted = lease(store, lease_request("w1", max, LONG), "lease").await;
        assert_eq!(granted.len(), expected, "asking for {max} with {} left", 5 - all.len());
        all.extend(granted);
    }
    run_with_tasks(store, "run-b", 2, 3).await;
    all.extend(lease(store, lease_request("w2", 5, LONG), "second run").await);
    assert_eq!(all.len(), 7, "every task of both runs was leased once");
    for pair in all.windows(2) {
        assert!(pair[1].token > pair[0].token, "tokens strictly increase: {} then {}", pair[0].token, pair[1].token);
    }
    for granted in &all {
        assert_eq!(granted.attempt, 1, "{}: a first lease is attempt 1", granted.key);
        let expected_payload = format!(r#"{{"individual":{}}}"#, granted.key.individual);
        assert_eq!(granted.payload, expected_payload, "{}: the lease carries the payload", granted.key);
    }
    assert_eq!(counts(store, &run_a, 0).await.leased, 5, "run-a's tasks are all leased");
}

/// Leases go to the oldest generation first, then the lowest individual index.
pub async fn lease_takes_oldest_generation_and_lowest_index_first(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let mut reversed = new_tasks(3);
    reversed.reverse();
    store.enqueue_tasks(&run, 1, reversed.clone(), 1).await.unwrap_or_else(|e| panic!("enqueue g1: {e}"));
    store.enqueue_tasks(&run, 0, reversed, 1).await.unwrap_or_else(|e| panic!("enqueue g0: {e}"));
    let mut order = Vec::new();
    for _ in 0..6 {
        let granted = lease(store, lease_request("w1", 1, LONG), "one at a time").await;
        order.extend(granted.iter().map(|lease| (lease.key.generation, lease.key.individual)));
    }
    assert_eq!(order, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)], "oldest generation, lowest index first");
}

/// A lease request naming a run gets only that run's tasks.
pub async fn lease_can_be_restricted_to_one_run(store: &dyn EvolutionStore) {
    run_with_tasks(store, "run-a", 3, 1).await;
    let run_b = run_with_tasks(store, "run-b", 3, 1).await;
    let request = LeaseRequest { run: Some(run_b.clone()), ..lease_request("w1", 10, LONG) };
    let granted = lease(store, request, "run-b only").await;
    assert_eq!(granted.len(), 3, "all of run-b's tasks");
    assert!(granted.iter().all(|lease| lease.key.run == run_b), "only run-b's tasks: {granted:?}");
}

/// Eight workers leasing three at a time never receive the same task, and every task is leased.
pub async fn concurrent_workers_never_share_a_task(store: &dyn EvolutionStore) {
    const TASKS: u32 = 200;
    let run = run_with_tasks(store, "run-a", TASKS, 3).await;
    let per_worker = in_parallel(8, |worker| async move {
        let name = format!("w{worker}");
        let mut mine = Vec::new();
        loop {
            let granted = lease(store, lease_request(&name, 3, LONG), &name).await;
            if granted.is_empty() {
                break mine;
            }
            let completions = granted.iter().map(|lease| success(lease, f64::from(lease.key.individual))).collect();
            let statuses = complete(store, &name, completions, &name).await;
            assert!(statuses.iter().all(|s| *s == CompletionStatus::Recorded), "{name}: completions {statuses:?}");
            mine.extend(granted);
        }
    });
    let all: Vec<&Lease> = per_worker.iter().flatten().collect();
    let keys: HashSet<_> = all.iter().map(|lease| &lease.key).collect();
    assert_eq!(keys.len(), all.len(), "no task was granted twice while its lease was live");
    assert_eq!(all.len(), TASKS as usize, "every task was leased exactly once");
    let tokens: HashSet<FencingToken> = all.iter().map(|lease| lease.token).collect();
    assert_eq!(tokens.len(), all.len(), "every grant has its own fencing token");
    assert_eq!(counts(store, &run, 0).await.done, u64::from(TASKS), "every task is done");
}

/// `requeue_expired` returns an expired lease to the queue; the old holder's completion is then `Stale`.
pub async fn expired_lease_is_requeued_and_its_late_completion_is_stale(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 1, 3).await;
    let first = lease(store, lease_request("w1", 1, SHORT), "w1").await.remove(0);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(requeue(store).await, 1, "the expired lease is requeued");
    assert_eq!(counts(store, &run, 0).await.pending, 1, "the task is pending again");
    let late = complete(store, "w1", vec![success(&first, 1.0)], "late after requeue").await;
    assert_eq!(late, vec![CompletionStatus::Stale], "a completion under a requeued lease is stale");
    let second = lease(store, lease_request("w2", 1, LONG), "w2").await.remove(0);
    assert_eq!(second.key, first.key, "the same task is leased again");
    assert_eq!(second.attempt, 2, "the second lease is attempt 2");
    assert!(second.token > first.token, "the new lease has a larger token");
    let late = complete(store, "w1", vec![success(&first, 1.0)], "late after re-lease").await;
    assert_eq!(late, vec![CompletionStatus::Stale], "the old holder is still refused");
    let current = complete(store, "w2", vec![success(&second, 2.0)], "new holder").await;
    assert_eq!(current, vec![CompletionStatus::Recorded], "the new holder's completion is recorded");
    let task = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}")).remove(0);
    assert_eq!(task.fitness, Some(2.0), "the stale completion did not overwrite the result");
    assert_eq!(requeue(store).await, 0, "nothing is left to requeue");
}

/// An expired lease can be granted again directly; the previous holder is then stale.
pub async fn expired_lease_can_be_leased_again_without_requeue(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 1, 3).await;
    let first = lease(store, lease_request("w1", 1, SHORT), "w1").await.remove(0);
    tokio::time::sleep(PAST_SHORT).await;
    let second = lease(store, lease_request("w2", 1, LONG), "w2").await;
    assert_eq!(second.len(), 1, "the expired lease is granted to w2");
    assert_eq!((second[0].key.clone(), second[0].attempt), (first.key.clone(), 2), "same task, attempt 2");
    assert_eq!(heartbeat(store, "w1", LONG).await, 0, "w1 no longer holds a lease");
    let late = complete(store, "w1", vec![success(&first, 1.0)], "w1 late").await;
    assert_eq!(late, vec![CompletionStatus::Stale], "the previous holder's completion is stale");
    let current = complete(store, "w2", vec![success(&second[0], 2.0)], "w2").await;
    assert_eq!(current, vec![CompletionStatus::Recorded], "the current holder's completion is recorded");
    assert_eq!(counts(store, &run, 0).await.done, 1);
}

/// A heartbeat extends every lease of the worker, so they outlive the original TTL.
pub async fn heartbeat_extends_leases(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 3, 3).await;
    let held = lease(store, lease_request("w1", 2, Duration::from_millis(400)), "w1").await;
    assert_eq!(heartbeat(store, "w2", LONG).await, 0, "a worker without leases extends nothing");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(heartbeat(store, "w1", LONG).await, 2, "both leases are extended");
    let tasks = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    for (lease, task) in held.iter().zip(&tasks) {
        let extended = task.lease_expires_at.unwrap_or_else(|| panic!("{}: a leased task has an expiry", task.key));
        assert!(extended > lease.expires_at, "{}: the heartbeat moved the expiry later", task.key);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let others = lease(store, lease_request("w2", 3, LONG), "w2").await;
    assert_eq!(others.len(), 1, "only the never-leased task is granted after the original TTL: {others:?}");
    assert_eq!(requeue(store).await, 0, "extended leases are not expired");
    let statuses = complete(store, "w1", held.iter().map(|lease| success(lease, 1.0)).collect(), "w1").await;
    assert_eq!(statuses, vec![CompletionStatus::Recorded; 2], "the extended leases are still w1's");
}

/// A lease that expired but was not granted to anyone else is still held, and a heartbeat revives it.
pub async fn heartbeat_keeps_an_expired_lease_nobody_took(store: &dyn EvolutionStore) {
    run_with_tasks(store, "run-a", 1, 3).await;
    let held = lease(store, lease_request("w1", 1, SHORT), "w1").await.remove(0);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(heartbeat(store, "w1", LONG).await, 1, "the expired, unclaimed lease is extended");
    assert!(lease(store, lease_request("w2", 1, LONG), "w2").await.is_empty(), "the revived lease is not granted");
    assert_eq!(requeue(store).await, 0, "the revived lease is not expired");
    let statuses = complete(store, "w1", vec![success(&held, 1.0)], "w1").await;
    assert_eq!(statuses, vec![CompletionStatus::Recorded], "w1 completes its revived lease");
}

/// A completion counts only from the holder with the exact token; statuses come back in order.
pub async fn completion_needs_the_same_worker_and_token(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 2, 3).await;
    let held = lease(store, lease_request("w1", 2, LONG), "w1").await;
    let stolen = complete(store, "w2", vec![success(&held[0], 9.0)], "another worker").await;
    assert_eq!(stolen, vec![CompletionStatus::Stale], "another worker cannot complete w1's lease");
    let forged =
        strata_core::evolution::Completion { token: FencingToken(held[0].token.0 + 1000), ..success(&held[0], 9.0) };
    let unknown = strata_core::evolution::Completion { key: task_key(&run, 0, 99), ..success(&held[0], 9.0) };
    let statuses = complete(store, "w1", vec![forged, success(&held[0], 1.0), unknown], "mixed").await;
    assert_eq!(
        statuses,
        vec![CompletionStatus::Stale, CompletionStatus::Recorded, CompletionStatus::Stale],
        "in order"
    );
    let again = complete(store, "w1", vec![success(&held[0], 5.0)], "done already").await;
    assert_eq!(again, vec![CompletionStatus::Stale], "a done task cannot be completed again");
    let task = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}")).remove(0);
    assert_eq!(task.fitness, Some(1.0), "only the valid completion was recorded");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 0, leased: 1, done: 1, parked: 0 });
}

/// A success stores the fitness bit for bit and the result, and marks the task done.
pub async fn success_records_fitness_and_result(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 1, 3).await;
    let held = lease(store, lease_request("w1", 1, LONG), "w1").await.remove(0);
    let fitness = 1.234_567_890_123_456_7_f64;
    let statuses = complete(store, "w1", vec![success(&held, fitness)], "w1").await;
    assert_eq!(statuses, vec![CompletionStatus::Recorded]);
    let task = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}")).remove(0);
    assert_eq!(task.state, TaskState::Done, "the task is done");
    assert_eq!(task.fitness.map(f64::to_bits), Some(fitness.to_bits()), "the fitness is stored bit for bit");
    let TaskOutcome::Succeeded { result, .. } = success(&held, fitness).outcome else { unreachable!() };
    assert_eq!(task.result, Some(result), "the result text is stored");
    assert_eq!((task.attempts, task.token), (1, held.token), "attempts and token of the lease that did it");
    assert!(lease(store, lease_request("w2", 1, LONG), "after done").await.is_empty(), "a done task is not leased");
}

/// A failure requeues the task until its attempts are used up, then parks it with the last error.
pub async fn failures_requeue_then_park_with_the_error(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 1, 3).await;
    let expected = [CompletionStatus::Requeued, CompletionStatus::Requeued, CompletionStatus::Parked];
    for (attempt, status) in (1..=3).zip(expected) {
        let held = lease(store, lease_request("w1", 1, LONG), "w1").await;
        assert_eq!(held.len(), 1, "attempt {attempt}: the failed task is leased again");
        assert_eq!(held[0].attempt, attempt, "attempt numbers count up");
        let outcome = complete(store, "w1", vec![failure(&held[0], &format!("boom {attempt}"))], "failure").await;
        assert_eq!(outcome, vec![status], "attempt {attempt} of 3");
    }
    assert!(lease(store, lease_request("w1", 1, LONG), "parked").await.is_empty(), "a parked task is not leased");
    let task = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}")).remove(0);
    assert_eq!((task.state, task.attempts), (TaskState::Parked, 3), "parked after 3 attempts");
    assert_eq!(task.error.as_deref(), Some("boom 3"), "the last error is kept");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 0, leased: 0, done: 0, parked: 1 });
}

/// Leases that expire use up attempts too: the task is parked instead of leased again.
pub async fn expired_attempts_count_towards_parking(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 1, 1).await;
    assert_eq!(lease(store, lease_request("w1", 1, SHORT), "w1").await.len(), 1, "the only attempt");
    tokio::time::sleep(PAST_SHORT).await;
    requeue(store).await;
    assert!(lease(store, lease_request("w2", 1, LONG), "w2").await.is_empty(), "no attempt is left to grant");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 0, leased: 0, done: 0, parked: 1 }, "parked");
}

/// Only tasks of pending or running runs are leased.
pub async fn inactive_runs_are_not_leased(store: &dyn EvolutionStore) {
    let mut inactive = Vec::new();
    for (id, status) in
        [("cancelled", RunStatus::Cancelled), ("done", RunStatus::Completed), ("broke", RunStatus::Failed)]
    {
        let run = run_with_tasks(store, id, 2, 3).await;
        store.set_run_status(&run, status).await.unwrap_or_else(|e| panic!("set {status}: {e}"));
        inactive.push(run);
    }
    let running = run_with_tasks(store, "running", 2, 3).await;
    store.set_run_status(&running, RunStatus::Running).await.unwrap_or_else(|e| panic!("set running: {e}"));
    let pending = run_with_tasks(store, "pending", 2, 3).await;
    let granted = lease(store, lease_request("w1", 100, LONG), "w1").await;
    let runs: HashSet<&str> = granted.iter().map(|lease| lease.key.run.as_str()).collect();
    assert_eq!(runs, HashSet::from([running.as_str(), pending.as_str()]), "only active runs are leased");
    assert_eq!(granted.len(), 4, "both active runs' tasks");
    store.set_run_status(&inactive[0], RunStatus::Running).await.unwrap_or_else(|e| panic!("resume: {e}"));
    let resumed = lease(store, lease_request("w1", 100, LONG), "resumed").await;
    assert_eq!(resumed.len(), 2, "a resumed run's tasks are leased again");
}

/// Workers upsert by id and list by id; leases mark them as seen.
pub async fn workers_register_and_list(store: &dyn EvolutionStore) {
    store.register_worker(worker_info("w2", 2)).await.unwrap_or_else(|e| panic!("register w2: {e}"));
    store.register_worker(worker_info("w1", 1)).await.unwrap_or_else(|e| panic!("register w1: {e}"));
    let list = |context: &'static str| async move {
        store.list_workers().await.unwrap_or_else(|e| panic!("{context}: list_workers: {e}"))
    };
    let first = list("after registering").await;
    let ids: Vec<&str> = first.iter().map(|w| w.info.id.as_str()).collect();
    assert_eq!(ids, vec!["w1", "w2"], "workers are listed by id");
    assert_eq!(first[0].info, worker_info("w1", 1), "the announced info is stored");
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.register_worker(worker_info("w1", 11)).await.unwrap_or_else(|e| panic!("re-register w1: {e}"));
    let second = list("after re-registering").await;
    assert_eq!(second.len(), 2, "re-registering does not add a worker");
    assert_eq!(second[0].info.pid, 11, "re-registering updates the info");
    assert_eq!(second[0].registered_at, first[0].registered_at, "registered_at is the first registration");
    assert!(second[0].last_seen > first[0].last_seen, "re-registering updates last_seen");
    run_with_tasks(store, "run-a", 1, 1).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    lease(store, lease_request("w2", 1, LONG), "w2").await;
    let third = list("after a lease").await;
    assert!(third[1].last_seen > second[1].last_seen, "a lease marks the worker as seen");
}

/// Statistics upsert per (run, generation) and list by generation, per run.
pub async fn generation_stats_upsert_and_list_by_generation(store: &dyn EvolutionStore) {
    let (run_a, run_b) = (create_run(store, "run-a").await, create_run(store, "run-b").await);
    let stats = |run: &strata_core::evolution::RunId, generation: u32, best: f64| GenerationStats {
        run: run.clone(),
        generation,
        best,
        mean: best / 2.0,
        std: 0.1 + f64::from(generation),
        diversity: 0.75,
        evaluated: 40,
    };
    for (generation, best) in [(2, 2.5), (0, 0.5), (1, 1.5)] {
        store.record_generation_stats(stats(&run_a, generation, best)).await.unwrap_or_else(|e| panic!("{e}"));
    }
    store.record_generation_stats(stats(&run_b, 0, 9.0)).await.unwrap_or_else(|e| panic!("{e}"));
    store.record_generation_stats(stats(&run_a, 1, 1.0000000000000002)).await.unwrap_or_else(|e| panic!("{e}"));
    let listed = store.generation_stats(&run_a).await.unwrap_or_else(|e| panic!("generation_stats: {e}"));
    let expected = vec![stats(&run_a, 0, 0.5), stats(&run_a, 1, 1.0000000000000002), stats(&run_a, 2, 2.5)];
    assert_eq!(listed, expected, "by generation, the last write of generation 1 wins, other runs excluded");
    assert_eq!(listed[1].best.to_bits(), 1.0000000000000002f64.to_bits(), "floats are stored bit for bit");
}

/// `task_counts` and `list_tasks` cover exactly one generation; unknown runs give empty answers.
pub async fn task_counts_and_list_tasks_describe_one_generation(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 5, 2).await;
    store.enqueue_tasks(&run, 1, new_tasks(3), 2).await.unwrap_or_else(|e| panic!("enqueue g1: {e}"));
    let held = lease(store, lease_request("w1", 2, LONG), "w1").await;
    complete(store, "w1", vec![success(&held[0], 1.0)], "w1").await;
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 3, leased: 1, done: 1, parked: 0 }, "g0");
    assert_eq!(counts(store, &run, 1).await, TaskCounts { pending: 3, leased: 0, done: 0, parked: 0 }, "g1");
    let tasks = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    let summary: Vec<(u32, TaskState)> = tasks.iter().map(|task| (task.key.individual, task.state)).collect();
    let expected = vec![
        (0, TaskState::Done),
        (1, TaskState::Leased),
        (2, TaskState::Pending),
        (3, TaskState::Pending),
        (4, TaskState::Pending),
    ];
    assert_eq!(summary, expected, "one generation's tasks, by individual");
    assert_eq!(tasks[1].worker, Some(worker_id("w1")), "a leased task names its holder");
    assert_eq!(tasks[1].token, held[1].token, "a leased task carries its lease's token");
    let ghost = run_id("ghost");
    assert_eq!(counts(store, &ghost, 0).await, TaskCounts::default(), "an unknown run has empty counts");
    let none = store.list_tasks(&ghost, 0).await.unwrap_or_else(|e| panic!("list_tasks of an unknown run: {e}"));
    assert!(none.is_empty(), "an unknown run has no tasks");
    assert!(store.list_tasks(&run, 7).await.unwrap_or_else(|e| panic!("{e}")).is_empty(), "nor an absent generation");
}

/// A coordinator lease short enough to expire during a case.
const ROLE_TTL: Duration = Duration::from_millis(200);
/// How long a case waits for an expired coordinator lease to be granted to
/// another holder: generous, so a loaded machine cannot make it flaky.
const ROLE_PATIENCE: Duration = Duration::from_secs(20);

/// `acquire_coordinator`, panicking on error.
async fn acquire(
    store: &dyn EvolutionStore,
    run: &strata_core::evolution::RunId,
    holder: &str,
    ttl: Duration,
) -> Option<RoleLease> {
    store
        .acquire_coordinator(run, &worker_id(holder), ttl)
        .await
        .unwrap_or_else(|error| panic!("acquire_coordinator by {holder} failed: {error}"))
}

/// Polls `acquire_coordinator` until `holder` is granted the role; panics after [`ROLE_PATIENCE`].
async fn acquire_once_expired(
    store: &dyn EvolutionStore,
    run: &strata_core::evolution::RunId,
    holder: &str,
    ttl: Duration,
) -> RoleLease {
    let deadline = tokio::time::Instant::now() + ROLE_PATIENCE;
    loop {
        if let Some(lease) = acquire(store, run, holder, ttl).await {
            return lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{holder} was not granted the role within {ROLE_PATIENCE:?} after the previous lease's TTL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `renew_coordinator`, panicking on error.
async fn renew(store: &dyn EvolutionStore, lease: &RoleLease, ttl: Duration) -> bool {
    store.renew_coordinator(lease, ttl).await.unwrap_or_else(|error| panic!("renew_coordinator failed: {error}"))
}

/// `release_coordinator`, panicking on error.
async fn release(store: &dyn EvolutionStore, lease: &RoleLease) {
    store.release_coordinator(lease).await.unwrap_or_else(|error| panic!("release_coordinator failed: {error}"));
}

/// One holder at a time: a second holder gets `None` while the first's lease
/// is live; the holder itself re-acquires under the same token. Unknown run: `NotFound`.
pub async fn coordinator_role_is_exclusive(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let other_run = create_run(store, "run-b").await;
    let first = acquire(store, &run, "c1", LONG).await.unwrap_or_else(|| panic!("nobody holds the role yet"));
    assert_eq!((&first.run, &first.holder), (&run, &worker_id("c1")), "the lease names its run and holder");
    assert!(acquire(store, &run, "c2", LONG).await.is_none(), "a second holder is refused while the first is live");
    let again = acquire(store, &run, "c1", LONG).await.unwrap_or_else(|| panic!("the holder re-acquires its role"));
    assert_eq!(again.token, first.token, "re-acquiring one's own live lease keeps its token");
    assert!(again.expires_at >= first.expires_at, "re-acquiring renews the lease");
    assert!(renew(store, &first, LONG).await, "the holder renews its role");
    assert!(acquire(store, &run, "c2", LONG).await.is_none(), "still refused after a renewal");
    let elsewhere = acquire(store, &other_run, "c2", LONG).await;
    assert!(elsewhere.is_some(), "the role of another run is separate");
    let error = store
        .acquire_coordinator(&run_id("ghost"), &worker_id("c1"), LONG)
        .await
        .expect_err("the role of an unknown run");
    assert!(is_not_found(&error), "acquire_coordinator of an unknown run: expected NotFound, got {error:?}");
}

/// Once a lease's TTL has passed, another holder is granted the role, with a larger token.
pub async fn expired_coordinator_role_goes_to_another_holder(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let first = acquire(store, &run, "c1", ROLE_TTL).await.unwrap_or_else(|| panic!("nobody holds the role yet"));
    tokio::time::sleep(ROLE_TTL).await;
    let second = acquire_once_expired(store, &run, "c2", LONG).await;
    assert_eq!(second.holder, worker_id("c2"), "the new lease is c2's");
    assert!(second.token > first.token, "the new holder's token is larger: {second:?} after {first:?}");
    assert!(acquire(store, &run, "c1", LONG).await.is_none(), "the previous holder is now refused");
}

/// Every grant to a new holder, after a release or an expiry, carries a larger token than any before.
pub async fn coordinator_tokens_increase_across_holders(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let mut previous: Option<RoleLease> = None;
    for holder in ["c1", "c2", "c1", "c3"] {
        let lease = acquire(store, &run, holder, LONG).await.unwrap_or_else(|| panic!("{holder}: the role is free"));
        if let Some(previous) = &previous {
            assert!(lease.token > previous.token, "{holder}'s token {} follows {}", lease.token, previous.token);
        }
        release(store, &lease).await;
        previous = Some(lease);
    }
    let last = previous.unwrap_or_else(|| panic!("four grants"));
    let short = acquire(store, &run, "c4", ROLE_TTL).await.unwrap_or_else(|| panic!("c4: the role is free"));
    assert!(short.token > last.token, "a grant after a release has a larger token");
    tokio::time::sleep(ROLE_TTL).await;
    let after_expiry = acquire_once_expired(store, &run, "c5", LONG).await;
    assert!(after_expiry.token > short.token, "a grant after an expiry has a larger token");
}

/// Renewing a role that another holder has taken over is false and changes
/// nothing; a lease that expired but nobody took is still held.
pub async fn renewing_a_lost_coordinator_role_is_false(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let kept = acquire(store, &run, "c1", ROLE_TTL).await.unwrap_or_else(|| panic!("nobody holds the role yet"));
    tokio::time::sleep(PAST_SHORT).await;
    assert!(renew(store, &kept, LONG).await, "an expired lease nobody took is still held and renews");
    assert!(acquire(store, &run, "c2", LONG).await.is_none(), "the renewed lease is live again");
    release(store, &kept).await;

    let lost = acquire(store, &run, "c1", ROLE_TTL).await.unwrap_or_else(|| panic!("the role was released"));
    tokio::time::sleep(ROLE_TTL).await;
    let taker = acquire_once_expired(store, &run, "c2", LONG).await;
    assert!(!renew(store, &lost, LONG).await, "the previous holder's renewal is refused once the role moved on");
    assert!(acquire(store, &run, "c3", LONG).await.is_none(), "the refused renewal did not free the role");
    assert!(renew(store, &taker, LONG).await, "the new holder still renews");
}

/// Releasing frees the role at once: another holder is granted it without
/// waiting for the TTL, and the released lease no longer renews.
pub async fn releasing_the_coordinator_role_frees_it_at_once(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let first = acquire(store, &run, "c1", LONG).await.unwrap_or_else(|| panic!("nobody holds the role yet"));
    release(store, &first).await;
    let second = acquire(store, &run, "c2", LONG).await;
    assert!(second.is_some(), "a released role is granted at once, long before its TTL");
    assert!(!renew(store, &first, LONG).await, "a released lease does not renew");
    release(store, &first).await;
}

/// A release under a stale lease (released already, or taken over) leaves the current holder's role alone.
pub async fn a_stale_release_leaves_the_new_holder_alone(store: &dyn EvolutionStore) {
    let run = create_run(store, "run-a").await;
    let first = acquire(store, &run, "c1", LONG).await.unwrap_or_else(|| panic!("nobody holds the role yet"));
    release(store, &first).await;
    let second = acquire(store, &run, "c2", LONG).await.unwrap_or_else(|| panic!("the role was released"));
    release(store, &first).await;
    assert!(acquire(store, &run, "c3", LONG).await.is_none(), "the stale release did not free c2's role");
    assert!(renew(store, &second, LONG).await, "c2 still holds the role");

    let expiring = acquire(store, &run, "c1", ROLE_TTL).await;
    assert!(expiring.is_none(), "c2 still holds the role");
    release(store, &second).await;
    let expiring = acquire(store, &run, "c1", ROLE_TTL).await.unwrap_or_else(|| panic!("the role was released"));
    tokio::time::sleep(ROLE_TTL).await;
    let taker = acquire_once_expired(store, &run, "c2", LONG).await;
    release(store, &expiring).await;
    assert!(acquire(store, &run, "c3", LONG).await.is_none(), "a release after a takeover did not free the role");
    assert!(renew(store, &taker, LONG).await, "the holder after the takeover still holds the role");
}

/// `release_tasks`, panicking on error.
async fn release_leases(store: &dyn EvolutionStore, worker: &str, leases: &[&Lease]) -> Vec<CompletionStatus> {
    let pairs = leases.iter().map(|lease| (lease.key.clone(), lease.token)).collect();
    store
        .release_tasks(&worker_id(worker), pairs)
        .await
        .unwrap_or_else(|error| panic!("release_tasks by {worker} failed: {error}"))
}

/// `cached_fitness`, panicking on error.
async fn cached(store: &dyn EvolutionStore, keys: &[&str]) -> Vec<Option<CachedFitness>> {
    let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
    store.cached_fitness(&keys).await.unwrap_or_else(|error| panic!("cached_fitness failed: {error}"))
}

/// The cache entry a successful completion from [`success`] stores under `key`.
fn entry(key: &str, fitness: f64) -> Option<CachedFitness> {
    Some(CachedFitness { key: key.to_string(), fitness, result: format!(r#"{{"sharpe":{fitness}}}"#) })
}

/// `complete_and_lease` completes as `complete_tasks` does, then leases as
/// `lease_tasks` does: statuses in order (a forged token stale, changing
/// nothing), the completed tasks never leased again, the new tokens larger,
/// the fitness cached; with nothing left, the lease part is empty.
pub async fn complete_and_lease_completes_then_leases(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 5, 3).await;
    let first = lease(store, lease_request("w1", 2, LONG), "w1").await;
    let forged = Lease { token: FencingToken(first[0].token.0 + 1000), ..first[0].clone() };
    let completions =
        vec![success(&first[0], 1.0), success(&forged, 9.0), cached_success(&first[1], 2.5, "conformance-key")];
    let (statuses, next) = store
        .complete_and_lease(&worker_id("w1"), completions, lease_request("w1", 10, LONG))
        .await
        .unwrap_or_else(|error| panic!("complete_and_lease failed: {error}"));
    assert_eq!(statuses, vec![CompletionStatus::Recorded, CompletionStatus::Stale, CompletionStatus::Recorded]);
    let next = next.unwrap_or_else(|error| panic!("the lease part failed: {error}"));
    assert_eq!(next.len(), 3, "the three tasks still pending are leased");
    assert!(next.iter().all(|lease| first.iter().all(|done| done.key != lease.key)), "completed tasks are not leased");
    assert!(next.iter().all(|lease| lease.token > first[1].token), "new leases carry larger tokens");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 0, leased: 3, done: 2, parked: 0 }, "counts");
    let tasks = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    assert_eq!(tasks[0].fitness, Some(1.0), "the first completion's fitness");
    assert_eq!(cached(store, &["conformance-key"]).await, vec![entry("conformance-key", 2.5)], "cached in the call");
    let completions: Vec<_> = next.iter().map(|lease| success(lease, 3.0)).collect();
    let (statuses, more) = store
        .complete_and_lease(&worker_id("w1"), completions, lease_request("w1", 10, LONG))
        .await
        .unwrap_or_else(|error| panic!("complete_and_lease failed: {error}"));
    assert_eq!(statuses, vec![CompletionStatus::Recorded; 3]);
    assert_eq!(more.map(|leases| leases.len()).ok(), Some(0), "nothing is left to lease");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 0, leased: 0, done: 5, parked: 0 }, "all done");
}

/// A released lease returns its task to pending at once without using up an
/// attempt: a task allowed one attempt is leased again (by another worker,
/// with a larger token) instead of being parked, and the released token is stale.
pub async fn release_returns_the_task_to_pending_without_using_an_attempt(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 1, 1).await;
    let first = lease(store, lease_request("w1", 1, LONG), "w1").await.remove(0);
    assert_eq!(release_leases(store, "w1", &[&first]).await, vec![CompletionStatus::Released], "w1 hands it back");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 1, leased: 0, done: 0, parked: 0 }, "pending");
    let task = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}")).remove(0);
    assert_eq!(task.attempts, 0, "the handed-back lease is not counted as an attempt");
    assert_eq!((task.worker, task.lease_expires_at), (None, None), "a released task has no holder and no expiry");
    let second = lease(store, lease_request("w2", 1, LONG), "w2").await;
    assert_eq!(second.len(), 1, "the released task is leased again at once, not parked (max_attempts 1)");
    assert_eq!((&second[0].key, second[0].attempt), (&first.key, 1), "same task, attempt 1 again");
    assert!(
        second[0].token > first.token,
        "the new lease has a larger token: {} after {}",
        second[0].token,
        first.token
    );
    let late = complete(store, "w1", vec![success(&first, 1.0)], "w1 after releasing").await;
    assert_eq!(late, vec![CompletionStatus::Stale], "a released lease cannot be completed");
    assert_eq!(release_leases(store, "w1", &[&first]).await, vec![CompletionStatus::Stale], "a repeat is stale");
    let done = complete(store, "w2", vec![success(&second[0], 2.0)], "w2").await;
    assert_eq!(done, vec![CompletionStatus::Recorded], "the new holder completes it");
}

/// A release counts only from the holder with the exact token; anything else
/// is `Stale` and changes nothing. Statuses come back in order, and a second
/// copy of a released lease in the same call is `Stale`.
pub async fn release_needs_the_same_worker_and_token(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 3, 3).await;
    let held = lease(store, lease_request("w1", 3, LONG), "w1").await;
    let before = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    assert_eq!(release_leases(store, "w2", &[&held[0]]).await, vec![CompletionStatus::Stale], "another worker");
    let forged = Lease { token: FencingToken(held[0].token.0 + 1000), ..held[0].clone() };
    let unknown = Lease { key: task_key(&run, 0, 99), ..held[0].clone() };
    let statuses = release_leases(store, "w1", &[&forged, &unknown]).await;
    assert_eq!(statuses, vec![CompletionStatus::Stale; 2], "a wrong token and an unknown task are stale");
    let after = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    assert_eq!(after, before, "stale releases change nothing");
    complete(store, "w1", vec![success(&held[2], 1.0)], "w1 completes the last").await;
    let statuses = release_leases(store, "w1", &[&held[1], &held[0], &held[1], &held[2]]).await;
    let expected =
        vec![CompletionStatus::Released, CompletionStatus::Released, CompletionStatus::Stale, CompletionStatus::Stale];
    assert_eq!(statuses, expected, "in order; a second copy and a done task are stale");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 2, leased: 0, done: 1, parked: 0 }, "counts");
    let tasks = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    let attempts: Vec<u32> = tasks.iter().map(|task| task.attempts).collect();
    assert_eq!(attempts, [0, 0, 1], "each released lease gave its attempt back once");
}

/// A lease that expired but was not granted to anyone else is still held, so it can be released.
pub async fn an_expired_lease_nobody_took_can_still_be_released(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 1, 2).await;
    let held = lease(store, lease_request("w1", 1, SHORT), "w1").await.remove(0);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(release_leases(store, "w1", &[&held]).await, vec![CompletionStatus::Released], "still w1's lease");
    let task = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}")).remove(0);
    assert_eq!((task.state, task.attempts), (TaskState::Pending, 0), "pending, attempt given back");
    assert_eq!(requeue(store).await, 0, "nothing is left to requeue");
}

/// A recorded success with a cache key is readable by `cached_fitness` with
/// its fitness (bit for bit) and result; a later success under the same key
/// overwrites it, and within one call the last completion of a key wins.
pub async fn a_recorded_success_fills_the_fitness_cache(store: &dyn EvolutionStore) {
    run_with_tasks(store, "run-a", 4, 3).await;
    let held = lease(store, lease_request("w1", 4, LONG), "w1").await;
    let exact = 1.234_567_890_123_456_7_f64;
    let completions = vec![
        cached_success(&held[0], exact, "genome-a"),
        cached_success(&held[1], 2.0, "genome-b"),
        success(&held[2], 3.0),
        cached_success(&held[3], 4.0, "genome-b"),
    ];
    let statuses = complete(store, "w1", completions, "w1").await;
    assert_eq!(statuses, vec![CompletionStatus::Recorded; 4], "all recorded");
    let found = cached(store, &["genome-a", "genome-b"]).await;
    assert_eq!(found, vec![entry("genome-a", exact), entry("genome-b", 4.0)], "the last completion of a key wins");
    let bits = found[0].as_ref().map(|entry| entry.fitness.to_bits());
    assert_eq!(bits, Some(exact.to_bits()), "the cached fitness is stored bit for bit");

    // Another run evaluating the same genome overwrites the entry.
    run_with_tasks(store, "run-b", 1, 3).await;
    let again = lease(store, lease_request("w2", 1, LONG), "w2").await.remove(0);
    let statuses = complete(store, "w2", vec![cached_success(&again, 5.0, "genome-a")], "w2").await;
    assert_eq!(statuses, vec![CompletionStatus::Recorded]);
    assert_eq!(cached(store, &["genome-a"]).await, vec![entry("genome-a", 5.0)], "an upsert: the latest result");
}

/// Only recorded successes are cached: a stale completion (another worker, a
/// forged token, a task done already) or a failure with a cache key writes nothing.
pub async fn stale_and_failed_completions_write_nothing_to_the_cache(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 2, 3).await;
    let held = lease(store, lease_request("w1", 2, LONG), "w1").await;
    let stolen = complete(store, "w2", vec![cached_success(&held[0], 9.0, "stolen")], "another worker").await;
    assert_eq!(stolen, vec![CompletionStatus::Stale], "another worker's completion is stale");
    let forged = strata_core::evolution::Completion {
        token: FencingToken(held[0].token.0 + 1000),
        ..cached_success(&held[0], 9.0, "forged")
    };
    let failed =
        strata_core::evolution::Completion { cache_key: Some("failed".into()), ..failure(&held[1], "no data") };
    let statuses = complete(store, "w1", vec![forged, failed], "forged and failed").await;
    assert_eq!(statuses, vec![CompletionStatus::Stale, CompletionStatus::Requeued], "stale, then requeued");
    complete(store, "w1", vec![cached_success(&held[0], 1.0, "kept")], "w1").await;
    let late = complete(store, "w1", vec![cached_success(&held[0], 7.0, "kept")], "done already").await;
    assert_eq!(late, vec![CompletionStatus::Stale], "a done task cannot be completed again");
    let found = cached(store, &["stolen", "forged", "failed", "kept"]).await;
    assert_eq!(found, vec![None, None, None, entry("kept", 1.0)], "only the recorded success is cached");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 1, leased: 0, done: 1, parked: 0 }, "counts");
}

/// `cached_fitness` answers one entry per key in the order asked, repeats
/// included, `None` for keys never cached, and nothing for no keys; batches
/// larger than one statement keep that order.
pub async fn cached_fitness_keeps_order_and_misses_are_none(store: &dyn EvolutionStore) {
    assert!(cached(store, &[]).await.is_empty(), "no keys, no entries");
    assert_eq!(cached(store, &["never", "cached"]).await, vec![None, None], "unknown keys are None");
    const TASKS: u32 = 300;
    run_with_tasks(store, "run-a", TASKS, 3).await;
    let held = lease(store, lease_request("w1", TASKS, LONG), "w1").await;
    assert_eq!(held.len(), TASKS as usize, "every task leased");
    let completions = held
        .iter()
        .map(|lease| {
            let individual = lease.key.individual;
            cached_success(lease, f64::from(individual), &format!("key-{individual:03}"))
        })
        .collect();
    let statuses = complete(store, "w1", completions, "w1").await;
    assert!(statuses.iter().all(|status| *status == CompletionStatus::Recorded), "all recorded");
    let mut keys: Vec<String> = Vec::new();
    let mut expected = Vec::new();
    for individual in (0..TASKS).rev() {
        keys.push(format!("key-{individual:03}"));
        expected.push(entry(&format!("key-{individual:03}"), f64::from(individual)));
        if individual % 50 == 0 {
            keys.push(format!("missing-{individual}"));
            expected.push(None);
            keys.push("key-007".to_string());
            expected.push(entry("key-007", 7.0));
        }
    }
    let found = store.cached_fitness(&keys).await.unwrap_or_else(|e| panic!("cached_fitness: {e}"));
    assert_eq!(found.len(), keys.len(), "one entry per key");
    assert_eq!(found, expected, "in the order asked, repeats and misses included");
}

/// A cache key longer than 128 bytes is `InvalidInput`, for reading and for
/// completing (then nothing of the call is applied); 128 bytes are accepted.
pub async fn over_long_cache_keys_are_invalid_input(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 2, 3).await;
    let held = lease(store, lease_request("w1", 2, LONG), "w1").await;
    let longest = "k".repeat(MAX_CACHE_KEY_BYTES);
    let too_long = "é".repeat(MAX_CACHE_KEY_BYTES / 2 + 1);
    let error = store.cached_fitness(&[longest.clone(), too_long.clone()]).await.expect_err("an over-long key");
    assert!(matches!(error, StoreError::InvalidInput(_)), "cached_fitness: expected InvalidInput, got {error:?}");
    let completions = vec![cached_success(&held[0], 1.0, &longest), cached_success(&held[1], 2.0, &too_long)];
    let error = store.complete_tasks(&worker_id("w1"), completions).await.expect_err("an over-long key");
    assert!(matches!(error, StoreError::InvalidInput(_)), "complete_tasks: expected InvalidInput, got {error:?}");
    assert_eq!(counts(store, &run, 0).await.leased, 2, "the refused call completed nothing");
    assert_eq!(cached(store, &[longest.as_str()]).await, vec![None], "and cached nothing");
    let statuses = complete(store, "w1", vec![cached_success(&held[0], 1.0, &longest)], "128 bytes").await;
    assert_eq!(statuses, vec![CompletionStatus::Recorded], "a key of exactly 128 bytes is accepted");
    assert_eq!(cached(store, &[longest.as_str()]).await, vec![entry(&longest, 1.0)], "and cached");
}

/// `requeue_parked`, panicking on error.
async fn requeue_parked(store: &dyn EvolutionStore, run: &strata_core::evolution::RunId) -> u64 {
    store.requeue_parked(run).await.unwrap_or_else(|error| panic!("requeue_parked {run} failed: {error}"))
}

/// Leases every task of `run` as `worker` and fails each, parking it (the
/// tasks allow one attempt); returns the leases.
async fn park_all(store: &dyn EvolutionStore, run: &strata_core::evolution::RunId, worker: &str) -> Vec<Lease> {
    let request = LeaseRequest { run: Some(run.clone()), ..lease_request(worker, 100, LONG) };
    let held = lease(store, request, worker).await;
    let failures = held.iter().map(|lease| failure(lease, "no data")).collect();
    let statuses = complete(store, worker, failures, "failing to park").await;
    assert_eq!(statuses, vec![CompletionStatus::Parked; held.len()], "one failure parks a task allowed one attempt");
    held
}

/// Every parked task of a run, of every generation, returns to pending with
/// no attempts used and no error, whatever the run's status; it is counted,
/// leased again with attempt 1, and parked again only after all of its
/// attempts fail once more.
pub async fn requeue_parked_returns_every_parked_task_of_the_run_to_pending(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 2, 1).await;
    let added = store.enqueue_tasks(&run, 1, new_tasks(1), 1).await.unwrap_or_else(|e| panic!("enqueue_tasks: {e}"));
    assert_eq!(added, 1, "a task of generation 1");
    let parked = park_all(store, &run, "w1").await;
    assert_eq!(parked.len(), 3, "both generations' tasks are parked");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 0, leased: 0, done: 0, parked: 2 }, "parked");
    // A run that gave up is requeued all the same (resuming sets it running again).
    store.set_run_status(&run, RunStatus::Failed).await.unwrap_or_else(|e| panic!("set_run_status: {e}"));

    assert_eq!(requeue_parked(store, &run).await, 3, "every parked task of every generation is counted");
    for generation in [0, 1] {
        let counted = counts(store, &run, generation).await;
        assert_eq!((counted.pending, counted.parked), (2 - u64::from(generation), 0), "generation {generation}");
        for task in store.list_tasks(&run, generation).await.unwrap_or_else(|e| panic!("list_tasks: {e}")) {
            assert_eq!(task.state, TaskState::Pending, "{}: pending again", task.key);
            assert_eq!(task.attempts, 0, "{}: the attempt count is reset", task.key);
            assert_eq!(task.error, None, "{}: the error is cleared", task.key);
            assert_eq!((task.worker, task.lease_expires_at), (None, None), "{}: no holder, no expiry", task.key);
        }
    }

    store.set_run_status(&run, RunStatus::Running).await.unwrap_or_else(|e| panic!("set_run_status: {e}"));
    let again = lease(store, lease_request("w2", 10, LONG), "w2").await;
    assert_eq!(again.len(), 3, "every requeued task is leased again");
    assert!(again.iter().all(|lease| lease.attempt == 1), "each with attempt 1: {again:?}");
    let newest = parked.iter().map(|lease| lease.token).max().unwrap_or(FencingToken(0));
    assert!(again.iter().all(|lease| lease.token > newest), "with tokens larger than before");
    let late = complete(store, "w1", vec![success(&parked[0], 1.0)], "a lease from before parking").await;
    assert_eq!(late, vec![CompletionStatus::Stale], "a lease from before parking stays stale");
    let statuses = complete(store, "w2", vec![failure(&again[0], "still no data")], "w2 fails").await;
    assert_eq!(statuses, vec![CompletionStatus::Parked], "parked again once its one fresh attempt fails");
}

/// `requeue_parked` touches only parked tasks of its run: done, leased and
/// pending tasks keep everything (a requeued failure keeps its error), and
/// another run's parked task stays parked with its error.
pub async fn requeue_parked_leaves_other_tasks_and_runs_alone(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 4, 2).await;
    let other = run_with_tasks(store, "run-b", 1, 1).await;
    park_all(store, &other, "w9").await;
    let held = lease(store, LeaseRequest { run: Some(run.clone()), ..lease_request("w1", 4, LONG) }, "w1").await;
    // Task 0 done, task 1 failed twice (parked), task 2 failed once (pending with its error), task 3 still leased.
    let statuses = complete(
        store,
        "w1",
        vec![success(&held[0], 1.0), failure(&held[1], "first"), failure(&held[2], "first")],
        "w1",
    )
    .await;
    assert_eq!(statuses, [CompletionStatus::Recorded, CompletionStatus::Requeued, CompletionStatus::Requeued]);
    let retry = lease(store, LeaseRequest { run: Some(run.clone()), ..lease_request("w2", 1, LONG) }, "w2").await;
    assert_eq!(retry.iter().map(|lease| lease.key.individual).collect::<Vec<_>>(), [1], "task 1 is leased again");
    let statuses = complete(store, "w2", vec![failure(&retry[0], "second")], "w2").await;
    assert_eq!(statuses, [CompletionStatus::Parked], "task 1 used both attempts");
    let before = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    let other_before = store.list_tasks(&other, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));

    assert_eq!(requeue_parked(store, &run).await, 1, "only task 1 was parked");
    let after = store.list_tasks(&run, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    for (old, new) in before.iter().zip(&after) {
        if old.key.individual == 1 {
            assert_eq!((new.state, new.attempts, new.error.as_deref()), (TaskState::Pending, 0, None), "requeued");
        } else {
            assert_eq!(new, old, "{} is not parked and is left as it was", old.key);
        }
    }
    assert_eq!(after[0].fitness, Some(1.0), "the done task keeps its fitness");
    assert_eq!(after[2].error.as_deref(), Some("first"), "a pending task keeps its last error");
    assert_eq!(after[3].worker, Some(worker_id("w1")), "the leased task keeps its holder");
    let other_after = store.list_tasks(&other, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}"));
    assert_eq!(other_after, other_before, "another run's parked task is untouched");
    assert_eq!(counts(store, &other, 0).await.parked, 1, "and still counted as parked");
}

/// A repeat finds nothing parked and returns 0, as does a run that never
/// parked anything; an unknown run is `NotFound`.
pub async fn requeue_parked_is_idempotent_and_an_unknown_run_is_not_found(store: &dyn EvolutionStore) {
    let run = run_with_tasks(store, "run-a", 2, 1).await;
    assert_eq!(requeue_parked(store, &run).await, 0, "nothing is parked yet");
    park_all(store, &run, "w1").await;
    assert_eq!(requeue_parked(store, &run).await, 2, "both parked tasks");
    assert_eq!(requeue_parked(store, &run).await, 0, "a repeat finds nothing parked");
    assert_eq!(counts(store, &run, 0).await, TaskCounts { pending: 2, leased: 0, done: 0, parked: 0 }, "pending");
    let error = store.requeue_parked(&run_id("ghost")).await.expect_err("requeue_parked of an unknown run");
    assert!(is_not_found(&error), "requeue_parked: expected NotFound, got {error:?}");
}

/// `delete_run` removes a run with its generations, tasks, statistics and
/// coordinator role, leaves other runs (and the shared fitness cache) alone,
/// and is `false` for a run that is not there; the id can then be created
/// again from scratch, and its coordinator tokens still grow.
pub async fn delete_run_removes_the_run_and_nothing_else(store: &dyn EvolutionStore) {
    let doomed = run_with_tasks(store, "run-a", 3, 2).await;
    let kept = run_with_tasks(store, "run-b", 2, 2).await;
    for run in [&doomed, &kept] {
        store.save_generation(generation(run, 0, 3, "g0"), None).await.unwrap_or_else(|e| panic!("save: {e}"));
        let stats = GenerationStats {
            run: run.clone(),
            generation: 0,
            best: 1.0,
            mean: 0.5,
            std: 0.1,
            diversity: 1.0,
            evaluated: 3,
        };
        store.record_generation_stats(stats).await.unwrap_or_else(|e| panic!("stats: {e}"));
    }
    let held = lease(store, LeaseRequest { run: Some(doomed.clone()), ..lease_request("w1", 1, LONG) }, "w1").await;
    complete(store, "w1", vec![cached_success(&held[0], 4.0, "kept-key")], "w1").await;
    let role = acquire(store, &doomed, "c1", LONG).await.unwrap_or_else(|| panic!("the role of a new run is free"));

    assert!(store.delete_run(&doomed).await.unwrap_or_else(|e| panic!("delete_run: {e}")), "the run was there");
    assert!(is_not_found(&store.get_run(&doomed).await.expect_err("a deleted run is gone")), "get_run: NotFound");
    let listed = store.list_runs().await.unwrap_or_else(|e| panic!("list_runs: {e}"));
    assert_eq!(listed.iter().map(|record| &record.spec.id).collect::<Vec<_>>(), vec![&kept], "only run-b is left");
    assert!(store.generation_stats(&doomed).await.unwrap_or_else(|e| panic!("stats: {e}")).is_empty(), "stats go");
    assert!(store.list_tasks(&doomed, 0).await.unwrap_or_else(|e| panic!("list_tasks: {e}")).is_empty(), "tasks go");
    assert_eq!(counts(store, &kept, 0).await, TaskCounts { pending: 2, leased: 0, done: 0, parked: 0 }, "run-b's");
    assert_eq!(store.generation_stats(&kept).await.unwrap_or_else(|e| panic!("stats: {e}")).len(), 1, "run-b's");
    assert!(store.load_generation(&kept, 0).await.is_ok(), "run-b's generation stays");
    assert_eq!(cached(store, &["kept-key"]).await, vec![entry("kept-key", 4.0)], "the fitness cache is shared");
    assert!(!store.delete_run(&doomed).await.unwrap_or_else(|e| panic!("delete_run again: {e}")), "gone: false");

    // The id starts over: no generation, no task, a free role with a larger token.
    let again = run_with_tasks(store, "run-a", 1, 2).await;
    assert_eq!(store.latest_generation(&again).await.unwrap_or_else(|e| panic!("latest: {e}")), None, "no generation");
    assert_eq!(counts(store, &again, 0).await, TaskCounts { pending: 1, leased: 0, done: 0, parked: 0 }, "new task");
    let role_again =
        acquire(store, &again, "c2", LONG).await.unwrap_or_else(|| panic!("the old role went with the run"));
    assert!(role_again.token > role.token, "coordinator tokens keep growing across the deletion");
}
