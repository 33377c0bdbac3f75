//! Strata's GA engine: genomes and operators, trading strategies, a backtest
//! fitness, and the coordinator and worker loops that evolve a run through
//! the [`EvolutionStore`] and [`MarketDataStore`] ports.
//!
//! This crate depends on `strata-core` only; stores are injected as
//! `Arc<dyn EvolutionStore>` / `Arc<dyn MarketDataStore>`, so the same code
//! runs on DuckDB, PostgreSQL or the in-memory store.
//!
//! Invariants:
//! - every random choice comes from a ChaCha stream derived from (run seed,
//!   generation, individual index, purpose) ([`genome::stream`]), so generation
//!   g depends only on generation g-1, the seed and g: the result is the same
//!   whatever the number of workers, their speed, or crashes along the way;
//! - a generation is saved (compare-and-set on the previous one) before its
//!   evaluations are enqueued; every coordinator step is idempotent;
//! - the position a strategy decides at bar t earns the return from t to t+1
//!   (no look-ahead);
//! - float genes are rounded to six decimals so genome texts survive the
//!   store bit for bit;
//! - the coordinator role is a fenced, expiring lease in the store ([`lease`]).
//!
//! The coordinator and workers record leases, evaluations, backtest times and
//! generations through the `metrics` facade ([`telemetry`] lists them).
//!
//! `testkit` (feature `testkit`, for test suites) holds the end-to-end checks (determinism with 1, 2 and 8
//! workers, a worker and coordinators killed on purpose, takeover, cancel)
//! as plain `async fn`s over `Arc<dyn EvolutionStore>` and
//! `Arc<dyn MarketDataStore>`, so every backend runs the same checks.
//!
//! ```no_run
//! use std::sync::Arc;
//! use strata_core::evolution::WorkerId;
//! use strata_ga_coord::{DataWindow, LocalOptions, RunConfig, StrategyRegistry, evolve_local};
//! # async fn example(
//! #     evolution: Arc<dyn strata_core::EvolutionStore>,
//! #     market: Arc<dyn strata_core::MarketDataStore>,
//! # ) -> strata_ga_coord::GaResult<()> {
//! let window = DataWindow { symbols: vec!["AAPL".into()], start: None, end: None, snapshot: None, digest: None };
//! let spec = RunConfig::new(window).spec(None, "ma-crossover", 42, 40, 10)?;
//! let options = LocalOptions::new(WorkerId::new("laptop-1").unwrap(), 2);
//! let registry = Arc::new(StrategyRegistry::default());
//! let outcome = evolve_local(evolution, market, registry, spec, options, None).await?;
//! println!("{:?}", outcome.result?.status);
//! # Ok(()) }
//! ```

pub mod backtest;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod eval;
pub mod genome;
pub mod lease;
pub mod local;
pub mod ops;
pub mod report;
pub mod strategy;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod worker;

pub use backtest::{BacktestConfig, Metrics, Objective, PriceSeries};
pub use config::{DataPin, DataWindow, EvalPayload, RunConfig};
pub use coordinator::{
    Coordinator, CoordinatorConfig, CoordinatorEvent, Observer, RankedIndividual, RunSummary, population_hash,
    summarize,
};
pub use error::{GaError, GaResult};
pub use eval::{Evaluation, Evaluator, SnapshotSource, data_digest};
pub use genome::{Gene, GeneKind, GeneSpec, Genome, GenomeSpec};
pub use lease::CoordinatorRole;
pub use local::{LocalOptions, LocalOutcome, evolve_local};
pub use ops::{Crossover, OperatorConfig};
pub use report::{
    Interruption, RunEstimate, RunProgress, estimate_run, human_duration, interrupt_run, run_json, runs_table,
    stats_json, stats_line,
};
pub use strategy::{Strategy, StrategyRegistry};
pub use worker::{Worker, WorkerConfig, WorkerReport};

#[doc(no_inline)]
pub use strata_core::{EvolutionStore, MarketDataStore};
