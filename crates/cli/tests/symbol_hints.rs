//! End-to-end tests of the hints for unknown or miscased symbols: `strata
//! query aapl` when the store holds `AAPL`, and `strata evolve` naming every
//! symbol of its window that has no bars. On a temporary DuckDB file.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "duckdb")]

use std::path::Path;

mod common;

use common::{Run, sample};

/// Runs `strata` in `directory` against its `store.duckdb`.
fn strata(directory: &Path, arguments: &[&str]) -> Run {
    common::strata_in(directory, &[("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "store.duckdb")], arguments)
}

#[test]
fn query_of_an_unknown_symbol_names_close_ones_or_what_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample("quandl_wiki_stocks_daily.csv");
    strata(dir.path(), &["ingest", data.to_str().unwrap()]).success();

    // Another case: the same letters.
    let lower = strata(dir.path(), &["query", "aapl"]).success();
    assert!(lower.stdout.trim().is_empty(), "{lower:?}");
    assert!(lower.stderr.contains("no bars matched"), "{lower:?}");
    assert!(lower.stderr.contains("aapl: no such symbol in the store; did you mean AAPL?"), "{lower:?}");

    // A typo, in a format without a "no bars matched" line.
    let typo = strata(dir.path(), &["query", "APPL", "--format", "csv"]).success();
    assert!(typo.stderr.contains("APPL: no such symbol in the store; did you mean AAPL?"), "{typo:?}");

    // Nothing close: the symbols the store holds.
    let unknown = strata(dir.path(), &["query", "ZZZZ"]).success();
    assert!(unknown.stderr.contains("ZZZZ: no such symbol in the store"), "{unknown:?}");
    assert!(unknown.stderr.contains("the store holds"), "{unknown:?}");
    assert!(unknown.stderr.contains("AAPL"), "{unknown:?}");

    // A known symbol outside the range: where its bars are.
    let late = strata(dir.path(), &["query", "AAPL", "--start", "2030-01-01"]).success();
    assert!(late.stderr.contains("AAPL: no bars in the requested range; the store has"), "{late:?}");
    assert!(!late.stderr.contains("did you mean"), "{late:?}");

    // Only the missing one of several is named; a query with rows says nothing more.
    let mixed = strata(dir.path(), &["query", "AAPL", "msft", "--limit", "1", "--format", "csv"]).success();
    assert!(mixed.stdout.contains("AAPL,"), "{mixed:?}");
    assert!(mixed.stderr.contains("msft: no such symbol in the store; did you mean MSFT?"), "{mixed:?}");
    assert!(!mixed.stderr.contains("AAPL:"), "{mixed:?}");
    let found = strata(dir.path(), &["query", "AAPL", "--limit", "1"]).success();
    assert!(found.stderr.trim().is_empty(), "{found:?}");
}

#[test]
fn evolve_names_every_symbol_without_bars() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample("quandl_wiki_stocks_daily.csv");
    strata(dir.path(), &["ingest", data.to_str().unwrap()]).success();
    let run = strata(
        dir.path(),
        &[
            "evolve",
            "--strategy",
            "ma-crossover",
            "--symbols",
            "AAPL",
            "APPL",
            "ZZZZ",
            "--population",
            "4",
            "--generations",
            "1",
        ],
    )
    .exits(2);
    assert!(run.stderr.contains("APPL is not in the store (did you mean AAPL?)"), "{run:?}");
    assert!(run.stderr.contains("ZZZZ is not in the store"), "{run:?}");
    assert!(!run.stderr.contains("AAPL has"), "AAPL has bars: {run:?}");
    assert!(!run.stderr.contains("ingest data first"), "the store has bars: {run:?}");
}
