//! Stores made of stores. Every layer here is a [`MarketDataStore`] that
//! wraps other `Arc<dyn MarketDataStore>`s; none names an adapter (the
//! composition root picks the backends and hands them in).
//!
//! # The hybrid stack, outermost first
//!
//! ```text
//! metered                    counts and times every call (the `metrics` facade)
//!  └ cached                  routes reads by the age of the data, fills the cache on the way through,
//!     │                      reads from the cache while the primary is down, writes to the cache
//!     │                      after the primary (or the journal) took the batch
//!     ├ failover             writes to the primary, or to the durable journal when it is down or
//!     │  │                   while the journal is not empty (order); replays the journal
//!     │  └ retry             only for a primary that does not retry itself (efs; not PostgreSQL)
//!     │     └ timeout        bounds each attempt at a call to the primary
//!     │        └ lazy        opens the primary on first use, so the stack starts with it down
//!     │           └ primary  neon or efs      (lazy and the primary come from the composition root)
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
