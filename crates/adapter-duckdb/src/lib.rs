//! Strata's embedded backend: market data and evolution state in one DuckDB
//! file (`STRATA_DUCKDB_PATH`, default `./strata.duckdb`).
//!
//! [`DuckDbStore`] implements both [`strata_core::MarketDataStore`] and
//! [`strata_core::EvolutionStore`] (`name() == "duckdb"`), and serves as the
//! hybrid store's local cache.
//!
//! # Invariants
//!
//! - Every DuckDB call runs on tokio's blocking pool; the async methods never block.
//! - One writer connection behind a mutex performs every write, each in one
//!   transaction; reads use cloned connections and see committed data only.
//! - A bar batch is validated before anything is written, then upserted in
//!   one transaction (Arrow appender into a `TEMP` staging table, then the
//!   staged keys deleted and the staged rows inserted; the single writer keeps
//!   (symbol, ts) unique without an index): after a crash, DuckDB's WAL holds
//!   either the whole batch or none of it.
//! - Floats are stored as `DOUBLE` and timestamps as `TIMESTAMPTZ`
//!   (microseconds UTC), so bars come back bit-exactly.
//! - The (symbol, day) digest is computed inside DuckDB and equals
//!   [`strata_core::digest::digest_bars`] for equal data.
//! - Values always reach SQL as bound parameters.
//! - Errors map to [`strata_core::StoreError`] kinds in `error.rs` only; a file held by
//!   another process is `Unavailable`, with the path and what to do.
//! - The schema is versioned (`schema_version` table) and created on first open.
//! - Only a DuckDB database is ever opened: an existing file without DuckDB's
//!   header (a CSV or Parquet file, say) is refused and left unchanged, and
//!   only [`OpenMode::Create`] creates a missing file. A file this user
//!   cannot write is opened read-only in [`OpenMode::Read`] and refused in
//!   the writing modes.
//!
//! # Example
//!
//! ```
//! use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
//! use strata_core::{Bar, BarBatch, BarQuery, MarketDataStore, MarketDataStoreExt, Symbol, Timestamp};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> strata_core::Result<()> {
//! # let directory = tempfile::tempdir().unwrap();
//! # let path = directory.path().join("strata.duckdb");
//! let store = DuckDbStore::open(DuckDbConfig::new(&path)).await?;
//! let bar = Bar {
//!     symbol: "^GSPC".into(),
//!     timestamp: Timestamp::parse("1999-01-04").unwrap(),
//!     open: 1229.22998, high: 1248.810059, low: 1219.099976, close: 1228.099976,
//!     volume: 877_000_000.0, vwap: None, trade_count: None,
//! };
//! store.write_bars(BarBatch::from_bars(&[bar.clone()])).await?;
//! let stored = store.collect_bars(BarQuery::symbol(Symbol::new("^GSPC")?)).await?;
//! assert_eq!(stored, vec![bar]);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod doctor;
mod error;
mod evolution;
mod file;
mod market;
mod schema;
pub mod seeds;
mod store;

pub use config::{DuckDbConfig, IN_MEMORY, OpenMode};
pub use error::is_locked;
pub use store::DuckDbStore;
