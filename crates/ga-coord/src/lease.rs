//! The coordinator role as an expiring lease, built on the task leases of
//! `EvolutionStore` (the port has no dedicated primitive).
//!
//! Convention: run `R` has a companion run `coord:R` (see [`coordinator_run_id`])
//! holding one task, generation 0, individual 0, whose payload is
//! [`COORDINATOR_PAYLOAD`]. Holding that task's lease *is* holding the
//! coordinator role: `lease_tasks` grants it to one caller at a time, the
//! coordinator's heartbeat keeps it (liveness by time only, so it works
//! through a transaction pooler), and when the holder dies the lease expires
//! and the next `strata evolve --resume` gets it. Releasing completes the
//! task as failed, which requeues it at once.
//!
//! The companion run keeps the lease task out of the evaluation queue of `R`.
//! A worker that leases from every run may still receive it; it gives it back
//! at once (see [`is_coordinator_payload`]). Listings hide companion runs
//! ([`is_coordinator_run`]).
//!
//! Correctness does not depend on this lease: generations are deterministic
//! and saved with compare-and-set, so two coordinators racing would write
//! identical populations. The lease avoids duplicated work and lets a second
//! coordinator know when to take over.

use std::time::Duration;

use strata_core::EvolutionStore;
use strata_core::evolution::{
    Completion, FencingToken, LeaseRequest, NewTask, RunId, RunSpec, RunStatus, TaskKey, TaskOutcome, WorkerId,
};

use crate::error::GaResult;
use crate::genome::fnv1a;

/// Prefix of companion runs that hold coordinator leases.
pub const COORDINATOR_RUN_PREFIX: &str = "coord:";

/// Payload of the coordinator-lease task.
pub const COORDINATOR_PAYLOAD: &str = r#"{"kind":"coordinator-lease"}"#;

/// How many times the role may be granted over a run's life (the port parks a
/// task after its attempts; this is effectively unlimited and fits a 32-bit column).
const LEASE_GRANTS: u32 = 1_000_000_000;

/// The companion run of `run` (`coord:<run>`, or `coord:<hash>` when that is too long).
pub fn coordinator_run_id(run: &RunId) -> GaResult<RunId> {
    let direct = format!("{COORDINATOR_RUN_PREFIX}{run}");
    if direct.len() <= 64 {
        return Ok(RunId::new(direct)?);
    }
    Ok(RunId::new(format!("{COORDINATOR_RUN_PREFIX}{:016x}", fnv1a(run.as_str().as_bytes())))?)
}

/// Whether `run` is a companion run holding a coordinator lease.
pub fn is_coordinator_run(run: &RunId) -> bool {
    run.as_str().starts_with(COORDINATOR_RUN_PREFIX)
}

/// Whether a leased task is a coordinator lease rather than an evaluation.
pub fn is_coordinator_payload(payload: &str) -> bool {
    payload == COORDINATOR_PAYLOAD
}

/// A held coordinator role.
#[derive(Debug, Clone)]
pub struct CoordinatorLease {
    holder: WorkerId,
    key: TaskKey,
    token: FencingToken,
    ttl: Duration,
}

impl CoordinatorLease {
    /// Tries once to take the coordinator role of `run` for `holder`; `None`
    /// when someone else holds it. `holder` must be unique to this
    /// coordinator: a heartbeat extends every lease of its holder.
    pub async fn try_acquire(
        store: &dyn EvolutionStore,
        run: &RunId,
        holder: &WorkerId,
        ttl: Duration,
    ) -> GaResult<Option<Self>> {
        let companion = coordinator_run_id(run)?;
        let spec = RunSpec {
            id: companion.clone(),
            strategy: "coordinator-lease".into(),
            seed: 0,
            population_size: 1,
            generations: 1,
            config: format!(r#"{{"coordinates":"{run}"}}"#),
        };
        let record = store.create_run(spec).await?;
        if !record.status.is_active() {
            store.set_run_status(&companion, RunStatus::Running).await?;
        }
        let task = NewTask { individual: 0, payload: COORDINATOR_PAYLOAD.to_string() };
        store.enqueue_tasks(&companion, 0, vec![task], LEASE_GRANTS).await?;
        let request = LeaseRequest { worker: holder.clone(), run: Some(companion), max_tasks: 1, ttl };
        let lease = store.lease_tasks(request).await?.into_iter().next();
        Ok(lease.map(|lease| CoordinatorLease { holder: holder.clone(), key: lease.key, token: lease.token, ttl }))
    }

    /// Extends the lease; false when it was lost (expired and granted to another).
    pub async fn renew(&self, store: &dyn EvolutionStore) -> GaResult<bool> {
        Ok(store.heartbeat(&self.holder, self.ttl).await? > 0)
    }

    /// Gives the role back (the next coordinator need not wait for the expiry)
    /// and marks the companion run with `status` so idle workers stop seeing it.
    pub async fn release(self, store: &dyn EvolutionStore, status: RunStatus) -> GaResult<()> {
        let completion = Completion {
            key: self.key.clone(),
            token: self.token,
            outcome: TaskOutcome::Failed { error: "coordinator released the role".into() },
        };
        store.complete_tasks(&self.holder, vec![completion]).await?;
        if !status.is_active() {
            store.set_run_status(&self.key.run, status).await?;
        }
        Ok(())
    }

    /// The holder's id.
    pub fn holder(&self) -> &WorkerId {
        &self.holder
    }

    /// The lease duration.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
