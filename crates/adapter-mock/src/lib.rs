//! In-memory Strata stores for tests and examples, plus mockall mocks of every port.
//!
//! [`MemoryStore`] implements both [`MarketDataStore`] and [`EvolutionStore`]
//! entirely in memory and passes the whole conformance suite in
//! `strata-tests`, so it is the fake to use wherever a test needs a store
//! (ga-coord, hybrid, the CLI). Prefer it to the mocks; keep the mocks
//! ([`MockMarketDataStore`], [`MockEvolutionStore`], [`MockProvisioner`]) for
//! checking call patterns.
//!
//! Invariants of [`MemoryStore`]:
//! - every batch is validated with [`strata_core::BarBatch::validate`] before
//!   anything is written, and a valid batch is applied under one lock, so it
//!   lands whole or not at all;
//! - floats are stored as written, bit for bit; digests come from
//!   [`strata_core::digest::DigestAccumulator`], the reference implementation;
//! - queries stream batches of at most [`QUERY_BATCH_ROWS`] rows and re-take
//!   the lock per batch, so a large read never holds it for long;
//! - the store's clock is the local system clock; fencing tokens come from one
//!   counter shared by every run.
//!
//! Nothing is persisted: dropping the store drops the data.
//!
//! ```
//! use std::sync::Arc;
//! use strata_adapter_mock::MemoryStore;
//! use strata_core::{EvolutionStore, MarketDataStore};
//!
//! let store = Arc::new(MemoryStore::new());
//! let market: Arc<dyn MarketDataStore> = store.clone();
//! let evolution: Arc<dyn EvolutionStore> = store;
//! assert_eq!(market.to_string(), "memory");
//! assert_eq!(evolution.to_string(), "memory");
//! assert!(!market.capabilities().durable);
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use strata_core::StoreError;

mod evolution;
mod market;
pub mod mocks;

pub use market::QUERY_BATCH_ROWS;
pub use mocks::{MockEvolutionStore, MockMarketDataStore, MockProvisioner};
#[doc(no_inline)]
pub use strata_core::{EvolutionStore, MarketDataStore};

/// The backend name reported by [`MemoryStore`].
const BACKEND: &str = "memory";

/// A market-data and evolution store held entirely in memory.
///
/// Cheap to create; each instance is independent. Share one through
/// `Arc<MemoryStore>` (or `Arc<dyn MarketDataStore>` / `Arc<dyn EvolutionStore>`).
pub struct MemoryStore {
    /// Bars, shared with the query streams (which must be `'static`).
    market: Arc<Mutex<market::MarketState>>,
    /// Runs, generations, tasks, workers and statistics.
    evolution: Mutex<evolution::EvolutionState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            market: Arc::new(Mutex::new(market::MarketState::default())),
            evolution: Mutex::new(evolution::EvolutionState::default()),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BACKEND)
    }
}

/// What a memory store can do: everything in one process, nothing durable.
const CAPABILITIES: strata_core::Capabilities = strata_core::Capabilities {
    durable: false,
    shared_across_hosts: false,
    server_side_digest: true,
    cheap_delete: true,
    transactions: true,
};

impl fmt::Debug for MemoryStore {
    /// Prints the name only: the contents may be millions of rows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryStore")
    }
}

/// Locks `mutex`, turning poisoning (a panic while it was held) into `Internal`.
fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    mutex.lock().map_err(|_| StoreError::internal(BACKEND, "a thread panicked while holding the store's lock"))
}
