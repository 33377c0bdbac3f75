//! Stores made of stores. Every layer here is a [`MarketDataStore`] that
//! wraps other `Arc<dyn MarketDataStore>`s; none names an adapter (the
//! composition root picks the backends and hands them in).
//!
//! # The hybrid stack, outermost first
//!
//! ```text
//! metered                    counts and times every call (the `metrics` facade)
//!  └ cached                  routes reads by the age of the data, fills the cache on the way through,
//!     │                      writes to the cache after the primary (or the journal) took the batch
//!     ├ failover             writes to the primary, or to the durable journal when it is down or
//!     │  │                   while the journal is not empty (order); reads fail over to the cache
//!     │  └ timeout           bounds every call to the primary
//!     │     └ retry          only for a primary that does not retry itself (not PostgreSQL)
//!     │        └ lazy        opens the primary on first use, so the stack starts with it down
//!     │           └ primary  neon or efs
//!     └ cache                the DuckDB file
//! ```
//!
//! [`stack::HybridStack`] builds it, in this order, once. The replayer
//! ([`replay`]) drains the journal into the primary in the background and on
//! `strata sync`. [`migrate`] copies and verifies between any two stores by
//! (symbol, day) digests.

pub mod cached;
pub mod coverage;
pub mod failover;
pub mod journal;
pub mod lazy;
pub mod metered;
pub mod migrate;
pub mod replay;
pub mod retry;
pub mod stack;
pub mod timeout;

pub use strata_core::MarketDataStore;
