//! The cross-backend conformance suite: one `pub async fn` per behaviour of a port, run against every backend.
//!
//! Each case in [`market`] takes `&dyn MarketDataStore`, each case in
//! [`evolution`] takes `&dyn EvolutionStore`; a case panics with a message
//! naming the broken rule. A backend is done when every case passes against it.
//!
//! # Plugging a new backend in
//!
//! Add `strata-tests` to the adapter's `[dev-dependencies]` and write
//! `tests/conformance.rs` with one line per port:
//!
//! ```no_run
//! strata_tests::market_conformance!(|| async { std::sync::Arc::new(strata_adapter_mock::MemoryStore::new()) });
//! strata_tests::evolution_conformance!(|| async { std::sync::Arc::new(strata_adapter_mock::MemoryStore::new()) });
//! # fn main() {}
//! ```
//!
//! or, for a store that implements both ports, one line: `strata_tests::conformance_suite!(factory);`.
//!
//! Each macro expands to a module (`market_conformance`, `evolution_conformance`)
//! with one `#[test]` per case. Every test builds a multi-thread Tokio runtime
//! with 4 workers (what `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]`
//! would, without the adapter needing `tokio`'s macros), calls the factory
//! once, and runs the case against that FRESH store.
//!
//! The factory is any `Fn() -> impl Future` (usually `|| async { ... }`) whose
//! output is one of (see [`MarketFixture`] and [`EvolutionFixture`]):
//! - `Arc<S>` or `Arc<dyn Port>`: just the store;
//! - `(Arc<S>, guard)`: the store plus anything that must outlive it, such as the
//!   `tempfile::TempDir` holding a DuckDB file; the tuple drops the store first;
//! - `Option<…>` of either: `None` skips the case (print why from the factory,
//!   e.g. "DATABASE_URL is not set"); under `STRATA_REQUIRE_SERVICES=1` a skip fails.
//!
//! ```text
//! strata_tests::conformance_suite!(|| async {
//!     let directory = tempfile::tempdir().expect("a temporary directory");
//!     let store = DuckDbStore::open(DuckDbConfig::new(directory.path().join("t.duckdb"))).await.expect("open");
//!     (std::sync::Arc::new(store), directory)
//! });
//! ```
//!
//! Cases that exercise concurrency run work on several OS threads at once
//! (see [`fixtures::in_parallel`]), so they need a multi-thread runtime: the
//! macros provide one.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;

use strata_core::{EvolutionStore, MarketDataStore};

pub mod evolution;
pub mod fixtures;
pub mod market;
pub mod passthrough;

/// What a conformance factory may return for the market-data suite.
pub trait MarketFixture {
    /// The store under test, or `None` to skip the case.
    fn market_store(&self) -> Option<&dyn MarketDataStore>;
}

/// What a conformance factory may return for the evolution suite.
pub trait EvolutionFixture {
    /// The store under test, or `None` to skip the case.
    fn evolution_store(&self) -> Option<&dyn EvolutionStore>;
}

impl<S: MarketDataStore> MarketFixture for Arc<S> {
    fn market_store(&self) -> Option<&dyn MarketDataStore> {
        Some(self.as_ref())
    }
}

impl MarketFixture for Arc<dyn MarketDataStore> {
    fn market_store(&self) -> Option<&dyn MarketDataStore> {
        Some(self.as_ref())
    }
}

impl<S: MarketDataStore, Guard> MarketFixture for (Arc<S>, Guard) {
    fn market_store(&self) -> Option<&dyn MarketDataStore> {
        Some(self.0.as_ref())
    }
}

impl<Guard> MarketFixture for (Arc<dyn MarketDataStore>, Guard) {
    fn market_store(&self) -> Option<&dyn MarketDataStore> {
        Some(self.0.as_ref())
    }
}

impl<F: MarketFixture> MarketFixture for Option<F> {
    fn market_store(&self) -> Option<&dyn MarketDataStore> {
        self.as_ref().and_then(MarketFixture::market_store)
    }
}

impl<S: EvolutionStore> EvolutionFixture for Arc<S> {
    fn evolution_store(&self) -> Option<&dyn EvolutionStore> {
        Some(self.as_ref())
    }
}

impl EvolutionFixture for Arc<dyn EvolutionStore> {
    fn evolution_store(&self) -> Option<&dyn EvolutionStore> {
        Some(self.as_ref())
    }
}

impl<S: EvolutionStore, Guard> EvolutionFixture for (Arc<S>, Guard) {
    fn evolution_store(&self) -> Option<&dyn EvolutionStore> {
        Some(self.0.as_ref())
    }
}

impl<Guard> EvolutionFixture for (Arc<dyn EvolutionStore>, Guard) {
    fn evolution_store(&self) -> Option<&dyn EvolutionStore> {
        Some(self.0.as_ref())
    }
}

impl<F: EvolutionFixture> EvolutionFixture for Option<F> {
    fn evolution_store(&self) -> Option<&dyn EvolutionStore> {
        self.as_ref().and_then(EvolutionFixture::evolution_store)
    }
}

/// Runs one case's future on a fresh multi-thread runtime (4 workers, time and I/O enabled).
#[doc(hidden)]
pub fn run_case(case: impl Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("building the Tokio runtime of a conformance case");
    runtime.block_on(case);
}

/// Reports a case whose factory returned no store: a message on stderr, or a
/// failure when `STRATA_REQUIRE_SERVICES=1`.
#[doc(hidden)]
pub fn skip(case: &str) {
    if std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|value| value == "1") {
        panic!("{case}: the factory returned no store, and STRATA_REQUIRE_SERVICES=1 forbids skipping");
    }
    eprintln!("{case}: skipped (the factory returned no store)");
}

/// The Python interpreter of the readers' virtual environment
/// (`STRATA_PYTHON`, which `.ci/run` sets: pyarrow, pandas, polars and
/// DuckDB), or `None` after a notice naming `test`; under
/// `STRATA_REQUIRE_SERVICES=1` (as `cargo xtask test` sets) a missing one
/// fails the test instead.
pub fn python(test: &str) -> Option<std::path::PathBuf> {
    if let Some(python) = std::env::var_os("STRATA_PYTHON").filter(|value| !value.is_empty()) {
        return Some(python.into());
    }
    let message = format!(
        "{test}: STRATA_PYTHON is not set (.ci/run sets it to a virtual environment with pyarrow, pandas, polars and duckdb)"
    );
    assert!(!std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|value| value == "1"), "{message}");
    eprintln!("{message}: skipped");
    None
}

/// The market-data cases, in one place: calls `$crate::$action!{ $args [case, ...] }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __market_cases {
    ($action:ident $args:tt) => {
        $crate::$action! { $args [
            round_trip_preserves_every_column_bit_exactly,
            query_stream_yields_each_row_once,
            empty_batch_is_a_no_op,
            writing_the_same_batch_twice_changes_nothing,
            last_write_of_a_key_wins,
            orders_ascending_and_descending,
            limit_applies_per_symbol,
            latest_n_is_descending_with_a_limit,
            results_are_grouped_by_symbol_ascending,
            empty_symbol_list_means_every_symbol,
            ranges_are_half_open,
            start_at_or_after_end_is_empty,
            unknown_symbol_is_empty_not_an_error,
            limit_zero_is_empty,
            one_bad_row_rejects_the_whole_batch,
            every_bad_row_is_reported,
            scary_but_valid_symbols_round_trip_in_isolation,
            unsafe_symbols_are_refused_and_nothing_is_written,
            summary_lists_each_symbol_in_order,
            digest_matches_the_reference,
            digest_filters_by_symbol_and_half_open_range,
            delete_removes_a_half_open_range_of_one_symbol,
            million_bar_batch_round_trips,
            parallel_writers_on_different_symbols_all_land,
            health_is_ok,
        ] }
    };
}

/// The evolution cases, in one place: calls `$crate::$action!{ $args [case, ...] }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __evolution_cases {
    ($action:ident $args:tt) => {
        $crate::$action! { $args [
            create_run_is_idempotent_and_starts_pending,
            different_spec_under_the_same_id_is_a_conflict,
            unknown_run_is_not_found,
            list_runs_is_newest_first,
            set_run_status_changes_the_status,
            transition_run_is_a_compare_and_set,
            concurrent_transitions_have_one_winner,
            save_generation_is_a_compare_and_set,
            resaving_a_generation_is_idempotent_only_when_identical,
            populations_are_ordered_by_index_and_unique,
            load_and_latest_generation,
            enqueue_is_idempotent_and_counts_new_tasks,
            lease_grants_up_to_max_tasks_with_increasing_tokens,
            lease_takes_oldest_generation_and_lowest_index_first,
            lease_can_be_restricted_to_one_run,
            concurrent_workers_never_share_a_task,
            expired_lease_is_requeued_and_its_late_completion_is_stale,
            expired_lease_can_be_leased_again_without_requeue,
            heartbeat_extends_leases,
            heartbeat_keeps_an_expired_lease_nobody_took,
            completion_needs_the_same_worker_and_token,
            success_records_fitness_and_result,
            failures_requeue_then_park_with_the_error,
            expired_attempts_count_towards_parking,
            inactive_runs_are_not_leased,
            workers_register_and_list,
            generation_stats_upsert_and_list_by_generation,
            task_counts_and_list_tasks_describe_one_generation,
            coordinator_role_is_exclusive,
            expired_coordinator_role_goes_to_another_holder,
            coordinator_tokens_increase_across_holders,
            renewing_a_lost_coordinator_role_is_false,
            releasing_the_coordinator_role_frees_it_at_once,
            a_stale_release_leaves_the_new_holder_alone,
            complete_and_lease_completes_then_leases,
            release_returns_the_task_to_pending_without_using_an_attempt,
            release_needs_the_same_worker_and_token,
            an_expired_lease_nobody_took_can_still_be_released,
            a_recorded_success_fills_the_fitness_cache,
            stale_and_failed_completions_write_nothing_to_the_cache,
            cached_fitness_keeps_order_and_misses_are_none,
            over_long_cache_keys_are_invalid_input,
            requeue_parked_returns_every_parked_task_of_the_run_to_pending,
            requeue_parked_leaves_other_tasks_and_runs_alone,
            requeue_parked_is_idempotent_and_an_unknown_run_is_not_found,
            delete_run_removes_the_run_and_nothing_else,
        ] }
    };
}

/// Expands to one test per case of a port (used by the public macros).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (($module:ident, $suite:ident, $fixture:ident, $store:ident, $factory:expr) [$($case:ident),* $(,)?]) => {
        #[allow(unused_imports, clippy::unwrap_used)]
        mod $module {
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::run_case(async {
                        let factory = $factory;
                        let fixture = factory().await;
                        match $crate::$fixture::$store(&fixture) {
                            Some(store) => $crate::$suite::$case(store).await,
                            None => $crate::skip(concat!(stringify!($suite), "::", stringify!($case))),
                        }
                    });
                }
            )*
        }
    };
}

/// The names of the cases (used by the test that keeps the lists complete).
#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (() [$($case:ident),* $(,)?]) => {
        &[$(stringify!($case)),*]
    };
}

/// Runs every [`market`] case against the store built by `$factory` (see the crate docs).
#[macro_export]
macro_rules! market_conformance {
    ($factory:expr $(,)?) => {
        $crate::__market_cases! { __conformance_tests (market_conformance, market, MarketFixture, market_store, $factory) }
    };
}

/// Runs every [`evolution`] case against the store built by `$factory` (see the crate docs).
#[macro_export]
macro_rules! evolution_conformance {
    ($factory:expr $(,)?) => {
        $crate::__evolution_cases! {
            __conformance_tests (evolution_conformance, evolution, EvolutionFixture, evolution_store, $factory)
        }
    };
}

/// Runs both suites against a store that implements both ports (one factory, a fresh store per case).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr $(,)?) => {
        $crate::market_conformance!($factory);
        $crate::evolution_conformance!($factory);
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strata_adapter_mock::MemoryStore;
    use strata_core::{EvolutionStore, MarketDataStore};

    use crate::{EvolutionFixture, MarketFixture};

    #[test]
    fn every_factory_output_shape_yields_the_store_or_a_skip() {
        let store = Arc::new(MemoryStore::new());
        let market: Arc<dyn MarketDataStore> = store.clone();
        let evolution: Arc<dyn EvolutionStore> = store.clone();
        assert!(store.market_store().is_some() && store.evolution_store().is_some());
        assert!(market.market_store().is_some() && evolution.evolution_store().is_some());
        let guarded = (store.clone(), String::from("a guard such as a TempDir"));
        assert!(guarded.market_store().is_some() && guarded.evolution_store().is_some());
        assert!((market, ()).market_store().is_some() && (evolution, ()).evolution_store().is_some());
        assert!(Some(store).market_store().is_some());
        let skipped: Option<(Arc<MemoryStore>, ())> = None;
        assert!(skipped.market_store().is_none() && skipped.evolution_store().is_none());
    }

    /// The `pub async fn` names declared in a module's source.
    fn declared_cases(source: &str) -> Vec<&str> {
        source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect()
    }

    #[test]
    fn every_case_is_in_its_macro_list_and_vice_versa() {
        let market: &[&str] = crate::__market_cases!(__case_names());
        assert_eq!(market, declared_cases(include_str!("market.rs")).as_slice(), "market cases and macro list differ");
        let evolution: &[&str] = crate::__evolution_cases!(__case_names());
        assert_eq!(
            evolution,
            declared_cases(include_str!("evolution.rs")).as_slice(),
            "evolution cases and macro list differ"
        );
    }
}
