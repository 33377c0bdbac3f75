//! The coordinator role of a run, held through the fenced role lease of
//! [`EvolutionStore`] (`acquire_coordinator`, `renew_coordinator`,
//! `release_coordinator`).
//!
//! One coordinator at a time drives a run: it takes the role, renews it
//! while it works (liveness by time only, so it works through a transaction
//! pooler), and gives it back when it stops; when the holder dies the lease
//! expires and the next `strata evolve --resume` gets it. Renewal is fenced
//! by the lease's token, so a coordinator that lost the role learns it at
//! its next renewal and stops.
//!
//! Correctness does not depend on this lease: generations are deterministic
//! and saved with compare-and-set, so two coordinators racing would write
//! identical populations. The lease avoids duplicated work and lets a second
//! coordinator know when to take over.

use std::time::Duration;

use strata_core::EvolutionStore;
use strata_core::evolution::{RoleLease, RunId, WorkerId};

use crate::error::GaResult;

/// A held coordinator role, with the TTL it is renewed for.
#[derive(Debug, Clone)]
pub struct CoordinatorRole {
    lease: RoleLease,
    ttl: Duration,
}

impl CoordinatorRole {
    /// Tries once to take the coordinator role of `run` for `holder`; `None`
    /// when someone else holds it.
    pub async fn try_acquire(
        store: &dyn EvolutionStore,
        run: &RunId,
        holder: &WorkerId,
        ttl: Duration,
    ) -> GaResult<Option<Self>> {
        let lease = store.acquire_coordinator(run, holder, ttl).await?;
        Ok(lease.map(|lease| CoordinatorRole { lease, ttl }))
    }

    /// Extends the role by its TTL; false when it was lost (taken over after it expired).
    pub async fn renew(&self, store: &dyn EvolutionStore) -> GaResult<bool> {
        Ok(store.renew_coordinator(&self.lease, self.ttl).await?)
    }

    /// Gives the role back, so the next coordinator need not wait for the expiry.
    pub async fn release(self, store: &dyn EvolutionStore) -> GaResult<()> {
        Ok(store.release_coordinator(&self.lease).await?)
    }

    /// The lease as granted.
    pub fn lease(&self) -> &RoleLease {
        &self.lease
    }

    /// The lease duration.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
