//! End-to-end tests of `strata ingest --adjust` and of the note on overnight
//! moves that look like unadjusted splits, on the shipped Quandl WIKI stocks:
//! raw (`quandl_wiki_stocks_daily.csv`, AAPL 2:1 on 2000-06-21 and
//! 2005-02-28, MSFT 2:1 on 2003-02-18) and with the vendor's adjusted close
//! (`quandl_wiki_stocks_daily_adj.csv`).

#![allow(clippy::unwrap_used)]
#![cfg(feature = "duckdb")]

use std::path::Path;

mod common;

use common::{Run, sample_arg, strata_in};

/// Runs `strata` in `directory` against the DuckDB file `store.duckdb` there.
fn strata(directory: &Path, arguments: &[&str]) -> Run {
    strata_in(directory, &[("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "store.duckdb")], arguments)
}

/// (timestamp, open, close) of each row of `query --format csv` output.
fn open_close(csv: &str) -> Vec<(String, f64, f64)> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = |name: &str| header.iter().position(|field| *field == name).unwrap();
    let (timestamp, open, close) = (column("timestamp"), column("open"), column("close"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[timestamp].to_string(), fields[open].parse().unwrap(), fields[close].parse().unwrap())
        })
        .collect()
}

const AAPL_2005_NOTE: &str = "note: AAPL 2005-02-28 opens at 0.50x the previous close: an unadjusted 2:1 split? use \
                              --adjust with a file that has an adjusted close";

#[test]
fn adjusted_prices_have_no_split_gaps_and_raw_ones_are_noted() {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();

    // Raw prices: each split inside the window is noted, the real 52% fall of
    // AAPL on 2000-09-29 (0.53x) is not.
    let raw = strata(dir, &["ingest", "--dry-run", &sample_arg("quandl_wiki_stocks_daily.csv")]).success();
    assert!(raw.stderr.contains(AAPL_2005_NOTE), "{}", raw.stderr);
    assert!(raw.stderr.contains("note: AAPL 2000-06-21 opens at 0.50x"), "{}", raw.stderr);
    assert!(raw.stderr.contains("note: MSFT 2003-02-18 opens at 0.51x"), "{}", raw.stderr);
    assert_eq!(raw.stderr.matches("an unadjusted").count(), 3, "{}", raw.stderr);
    // The file with the adjusted close, read without --adjust: raw prices too,
    // and the ignored column says what would use it.
    let unused = strata(dir, &["ingest", "--dry-run", &sample_arg("quandl_wiki_stocks_daily_adj.csv")]).success();
    assert!(unused.stderr.contains(AAPL_2005_NOTE), "{}", unused.stderr);
    assert!(
        unused.stderr.contains("ignoring column \"adj_close\" (--adjust applies an adjusted close)"),
        "{}",
        unused.stderr
    );
    assert!(!dir.join("store.duckdb").exists(), "a dry run created a store");

    // Adjusted: written, no note, and the adjusted column is not "ignored".
    let adjusted = strata(dir, &["ingest", "--adjust", &sample_arg("quandl_wiki_stocks_daily_adj.csv")]).success();
    assert!(adjusted.stdout.contains("ingested 12,154 rows (5 symbols)"), "{}", adjusted.stdout);
    assert!(!adjusted.stderr.contains("unadjusted"), "{}", adjusted.stderr);
    assert!(!adjusted.stderr.contains("ignoring column"), "{}", adjusted.stderr);

    let query = strata(dir, &["query", "AAPL", "--start", "2005-02-01", "--end", "2005-03-15", "--format", "csv"]);
    let bars = open_close(&query.success().stdout);
    assert!(bars.len() > 20, "{bars:?}");
    let split_day = bars.iter().position(|bar| bar.0 == "2005-02-28T00:00:00Z").unwrap();
    // The close is the vendor's adjusted close, to the bit.
    assert_eq!(bars[split_day].2, 5.7651352430039);
    for pair in bars.windows(2) {
        let ratio = pair[1].1 / pair[0].2;
        assert!((0.8..1.25).contains(&ratio), "{} opens at {ratio}x the previous close", pair[1].0);
    }
    let whole = strata(dir, &["query", "AAPL", "MSFT", "--format", "csv"]).success();
    assert_eq!(whole.stdout.lines().count(), 1 + 2 * 3_270);
}

#[test]
fn adjust_without_an_adjusted_close_exits_2_and_writes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    let sp500 = sample_arg("sp500_daily.csv");

    let refused = strata(dir, &["ingest", "--adjust", &sp500]).exits(2);
    assert!(refused.stderr.contains("sp500_daily.csv"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--adjust needs an adjusted close column"), "{}", refused.stderr);
    assert!(refused.stderr.contains("adj_close, adj close"), "{}", refused.stderr);
    assert!(!refused.stdout.contains("ingested"), "{}", refused.stdout);
    assert!(!dir.join("store.duckdb").exists(), "a store was created");

    // With a store in place, nothing is added to it either, even when another
    // file of the same command has the column.
    strata(dir, &["ingest", "--adjust", &sample_arg("quandl_wiki_stocks_daily_adj.csv")]).success();
    strata(dir, &["ingest", "--adjust", &sample_arg("quandl_wiki_stocks_daily_adj.csv"), &sp500]).exits(2);
    let summary = strata(dir, &["summary", "--json"]).success();
    assert_eq!(summary.json()["total_rows"], 12_154);
}
