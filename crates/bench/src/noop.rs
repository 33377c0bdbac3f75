//! The coordination cost alone: a run of no-op tasks, and a worker that
//! leases them 32 at a time and completes each batch with the next lease, as the GA and the
//! PostgreSQL sections both measure it.

use std::time::Duration;

use anyhow::Result;
use strata_core::EvolutionStore;
use strata_core::evolution::{
    Completion, CompletionStatus, LeaseRequest, NewTask, RunId, RunSpec, TaskOutcome, WorkerId,
};

/// Tasks per lease.
pub(crate) const LEASE_BATCH: u32 = 32;

/// Creates run `run` with `tasks` no-op tasks in generation 0.
pub(crate) async fn create_noop_run(store: &dyn EvolutionStore, run: &RunId, tasks: u32) -> Result<()> {
    let spec = RunSpec {
        id: run.clone(),
        strategy: "noop".into(),
        seed: 0,
        population_size: tasks,
        generations: 1,
        config: "{}".into(),
    };
    store.create_run(spec).await?;
    let new_tasks = (0..tasks).map(|individual| NewTask { individual, payload: "{}".into() }).collect();
    store.enqueue_tasks(run, 0, new_tasks, 3).await?;
    Ok(())
}

/// Leases and completes tasks of `run` as `worker` until a lease comes back
/// empty, as a worker does: each round completes the last batch and leases
/// the next in one call (`complete_and_lease`); returns how many it completed.
pub(crate) async fn lease_and_complete(store: &dyn EvolutionStore, run: &RunId, worker: &WorkerId) -> Result<u64> {
    let request = || LeaseRequest {
        worker: worker.clone(),
        run: Some(run.clone()),
        max_tasks: LEASE_BATCH,
        ttl: Duration::from_secs(30),
    };
    let mut done = 0u64;
    let mut leases = store.lease_tasks(request()).await?;
    while !leases.is_empty() {
        let completions: Vec<Completion> = leases
            .into_iter()
            .map(|lease| Completion {
                key: lease.key,
                token: lease.token,
                outcome: TaskOutcome::Succeeded { fitness: 0.0, result: "{}".into() },
                cache_key: None,
            })
            .collect();
        done += completions.len() as u64;
        let (statuses, next) = store.complete_and_lease(worker, completions, request()).await?;
        anyhow::ensure!(
            statuses.iter().all(|status| *status == CompletionStatus::Recorded),
            "a no-op completion was not recorded: {statuses:?}"
        );
        leases = next?;
    }
    Ok(done)
}
