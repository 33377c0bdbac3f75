//! The market conformance suite through the hybrid stack whose primary
//! cannot be reached (nothing listens on its port): writes are journaled and
//! every read is answered by the cache. Every case but `health_is_ok` (such a
//! store is rightly degraded; `tests/hybrid.rs` checks its health). A binary
//! of its own: the suite's write helper expects journaled writes here.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use strata_hybrid::cached::Routing;

macro_rules! primary_down_cases {
    ($($case:ident),* $(,)?) => {
        mod primary_down {
            use super::*;
            $(
                #[test]
                fn $case() {
                    strata_tests::fixtures::expect_journaled_writes();
                    runtime().block_on(async {
                        let fixture = stack_with_primary_down(Routing::default()).await;
                        strata_tests::market::$case(fixture.stack.store.as_ref()).await;
                        // Nothing reached a primary: whatever the case wrote waits in the journal.
                        let stats = fixture.stack.failover.journal().stats().unwrap();
                        assert_eq!(stats.parked, 0);
                    });
                }
            )*
        }
    };
}

// Every market case but `health_is_ok` (a stack whose primary is down is degraded, as it should be).
primary_down_cases!(
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
);
