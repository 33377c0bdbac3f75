//! Strata's domain core: OHLCV bars and their canonical Arrow schema,
//! validation, queries, the (symbol, day) digest, evolution state, the one
//! error type, and the three ports adapters implement.
//!
//! This crate does no I/O and needs no async runtime. Adapters depend on it;
//! it depends on no adapter.
//!
//! - Market data: [`Bar`], [`BarBatch`] (an Arrow `RecordBatch` in the schema
//!   of [`bar_schema`]), [`BarQuery`], [`MarketSummary`], [`DayDigest`],
//!   validated by [`validate`] and stored through [`MarketDataStore`].
//! - Evolution: runs, generations, leased evaluation tasks with fencing
//!   tokens, workers and statistics ([`evolution`]) through [`EvolutionStore`].
//! - Provisioning of database branches and roles through [`Provisioner`].
//!
//! ```
//! use strata_core::{Bar, BarBatch, Timestamp};
//!
//! let bar = Bar {
//!     symbol: "^GSPC".into(),
//!     timestamp: Timestamp::parse("1999-01-04").unwrap(),
//!     open: 1229.22998, high: 1248.810059, low: 1219.099976, close: 1228.099976,
//!     volume: 877_000_000.0, vwap: None, trade_count: None,
//! };
//! let batch = BarBatch::from_bars(&[bar]);
//! assert!(batch.validate().is_ok());
//! ```

pub mod bar;
pub mod digest;
pub mod display;
pub mod doctor;
pub mod error;
pub mod evolution;
pub mod policy;
pub mod ports;
pub mod query;
pub mod schema;
pub mod suggest;
pub mod synthetic;
pub mod validate;

pub use bar::{Bar, Symbol, Timestamp};
pub use digest::{DayDigest, DigestQuery};
pub use error::{BackendName, BoxError, InvalidInput, Result, StoreError};
pub use ports::Capabilities;
pub use ports::evolution::EvolutionStore;
pub use ports::market::{MarketDataStore, MarketDataStoreExt};
pub use ports::provision::{Provisioner, Secret};
pub use query::{
    BarQuery, Durability, HealthReport, HealthStatus, MarketSummary, Order, SymbolSummary, TimeRange, WriteReport,
};
pub use schema::{BarBatch, BarBatchBuilder, bar_schema};
pub use validate::{RowError, ValidationReport};
