//! Strata's ports on PostgreSQL/Neon via sqlx: market data
//! ([`strata_core::MarketDataStore`]) and evolution state with work leases
//! ([`strata_core::EvolutionStore`]) on one connection pool.
//!
//! ```no_run
//! # async fn example() -> strata_core::Result<()> {
//! use strata_adapter_neon::{NeonConfig, NeonStore};
//! let config = NeonConfig::from_url("postgres://app@127.0.0.1:5432/test")?.with_schema("strata")?;
//! let store = NeonStore::open(config).await?; // applies pending migrations
//! # let _ = store; Ok(()) }
//! ```
//!
//! - Bulk writes: validation, binary `COPY` into a transaction-scoped staging
//!   table, one `INSERT ... ON CONFLICT DO UPDATE`, one transaction per batch.
//! - Reads: `COPY (SELECT ...) TO STDOUT (FORMAT binary)` decoded straight
//!   into bounded Arrow batches.
//! - Layout: a TimescaleDB hypertable (90-day chunks by default) when the
//!   server can load the extension (preloaded, or already installed),
//!   otherwise native range partitions created on demand by writes; the
//!   reason is recorded and reported. One write never spans more partitions
//!   or chunks than a quarter of the default lock table can hold.
//! - Neon: pooler-safe (every statement in an explicit transaction, unnamed
//!   statements, `SET LOCAL` timeouts, no session state), verify-full TLS by
//!   default for Neon hosts, transient failures retried with backoff and
//!   jitter within a budget, passwords never printed (see [`redact`]).
//!
//! See [`config`] for every setting, [`schema`] for the tables and
//! [`telemetry`] for the metrics (pool connections, database size).

pub mod config;
mod copy;
pub mod doctor;
mod error;
mod evolution;
mod market;
pub mod redact;
pub mod schema;
pub mod seeds;
mod store;
pub mod telemetry;

pub use config::{NeonConfig, PartitionInterval};
pub use redact::{Redacted, redact_connection_string, redact_text};
pub use schema::BarLayout;
pub use sqlx::postgres::PgSslMode;
pub use store::NeonStore;
