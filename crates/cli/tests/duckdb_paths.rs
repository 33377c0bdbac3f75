//! End-to-end tests of where `--duckdb-path` (`STRATA_DUCKDB_PATH`) may
//! point: a file that is not a DuckDB database is refused and left as it
//! was, only commands that write create a store (and say so), commands that
//! only read create nothing at a misspelled path, and a store this user
//! cannot write is still readable.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "duckdb")]

use std::path::Path;

mod common;

use common::{Run, sample_arg, strata_in};

/// Runs `strata` in `directory` with the storage settings on the command line only.
fn strata(directory: &Path, arguments: &[&str]) -> Run {
    strata_in(directory, &[], arguments)
}

/// The names in `directory`, sorted.
fn names(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_csv_or_parquet_file_given_as_the_store_is_refused_and_left_unchanged() {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    std::fs::copy(common::sample("quandl_wiki_stocks_daily.csv"), dir.join("s.csv")).unwrap();
    strata(dir, &["generate", "--symbols", "2", "--bars", "50", "--seed", "3", "--output", "s.parquet"]).success();
    let csv_before = std::fs::read(dir.join("s.csv")).unwrap();
    let parquet_before = std::fs::read(dir.join("s.parquet")).unwrap();
    let listing = names(dir);

    let sp500 = sample_arg("sp500_daily.csv");
    for (store, kind) in [("s.csv", "a CSV file"), ("s.parquet", "a Parquet file")] {
        let ingest = strata(dir, &["ingest", &sp500, "--duckdb-path", store]).exits(2);
        assert!(!ingest.stdout.contains("ingested"), "{ingest:?}");
        for needle in [
            "is not a DuckDB database",
            kind,
            "the file is unchanged",
            "--duckdb-path",
            &format!("strata ingest {store}"),
        ] {
            assert!(ingest.stderr.contains(needle), "{needle:?} missing from:\n{}", ingest.stderr);
        }
        // Commands that read refuse it the same way, and so does the environment variable.
        strata(dir, &["--duckdb-path", store, "query", "AAPL"]).exits(2);
        strata_in(dir, &[("STRATA_DUCKDB_PATH", store)], &["summary"]).exits(2);
        strata_in(dir, &[("STRATA_DUCKDB_PATH", store)], &["evolve", "--symbols", "AAPL"]).exits(2);
    }
    assert_eq!(std::fs::read(dir.join("s.csv")).unwrap(), csv_before, "the CSV changed");
    assert_eq!(std::fs::read(dir.join("s.parquet")).unwrap(), parquet_before, "the Parquet file changed");
    assert_eq!(names(dir), listing, "no store, write-ahead log or other file may appear");
}

#[test]
fn commands_that_only_read_create_nothing_at_a_misspelled_path() {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    let reads: [&[&str]; 6] =
        [&["query", "AAPL"], &["summary"], &["digest"], &["health"], &["runs", "list"], &["runs", "show", "some-run"]];
    let existing: [&[&str]; 3] =
        [&["runs", "cancel", "some-run"], &["runs", "resume", "some-run"], &["evolve", "--resume", "some-run"]];
    for path in ["strata.duckbd", "missing/folder/strata.duckdb"] {
        for arguments in reads.iter().chain(&existing) {
            let run = strata(dir, &[&["--duckdb-path", path], *arguments].concat()).exits(2);
            for needle in ["does not exist", "nothing was created", "Only commands that write create a store"] {
                let printed = format!("{}{}", run.stdout, run.stderr);
                assert!(printed.contains(needle), "{arguments:?} at {path}: {needle:?} missing from:\n{printed}");
            }
            assert_eq!(names(dir), Vec::<String>::new(), "{arguments:?} at {path} created something");
        }
    }
    // The default path too: a read in an empty folder does not create ./strata.duckdb.
    strata(dir, &["summary"]).exits(2);
    assert_eq!(names(dir), Vec::<String>::new());
}

#[test]
fn commands_that_write_create_a_new_store_once_and_say_so() {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    let sp500 = sample_arg("sp500_daily.csv");
    let ingest = strata(dir, &["ingest", &sp500, "--duckdb-path", "new/folder/bars.duckdb"]).success();
    let created = dir.canonicalize().unwrap().join("new/folder/bars.duckdb");
    let note = format!("note: created a new DuckDB store at {}", created.display());
    assert_eq!(ingest.stderr.matches(&note).count(), 1, "{}", ingest.stderr);
    assert!(ingest.stdout.contains("ingested 5,031 rows"), "{}", ingest.stdout);

    let again = strata(dir, &["ingest", &sp500, "--duckdb-path", "new/folder/bars.duckdb"]).success();
    assert!(!again.stderr.contains("created"), "{}", again.stderr);
    let summary = strata(dir, &["summary", "--json", "--duckdb-path", "new/folder/bars.duckdb"]).success();
    assert_eq!(summary.json()["total_rows"], 5_031);
    assert!(summary.stderr.is_empty(), "{}", summary.stderr);

    let generate =
        strata(dir, &["generate", "--symbols", "1", "--bars", "5", "--ingest", "--duckdb-path", "generated.duckdb"])
            .success();
    assert!(generate.stderr.contains("created a new DuckDB store at"), "{}", generate.stderr);
}

/// The README's main job, from an empty folder: the first command creates
/// `./strata.duckdb` and says so, the second adds the split-adjusted stocks
/// (no split note), the third evolves on them.
#[test]
fn the_readmes_two_commands_still_work() {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    let (sp500, quandl) = (sample_arg("sp500_daily.csv"), sample_arg("quandl_wiki_stocks_daily_adj.csv"));
    let ingest = strata(dir, &["ingest", &sp500]).success();
    assert!(ingest.stderr.contains("note: created a new DuckDB store at"), "{}", ingest.stderr);
    assert!(ingest.stdout.contains("ingested 5,031 rows (1 symbol)"), "{}", ingest.stdout);
    let ingest = strata(dir, &["ingest", "--adjust", &quandl, "--summary"]).success();
    assert!(ingest.stdout.contains("ingested 12,154 rows (5 symbols)"), "{}", ingest.stdout);
    assert!(!ingest.stderr.contains("unadjusted"), "{}", ingest.stderr);
    #[rustfmt::skip]
    let evolve = strata(dir, &[
        "evolve", "--strategy", "ma-crossover", "--symbols", "AAPL", "MSFT", "IBM",
        "--start", "2003-01-01", "--end", "2010-01-01", "--test-end", "2013-01-01",
        "--population", "40", "--generations", "8", "--seed", "42",
    ])
    .success();
    assert!(!evolve.stderr.contains("note: created"), "{}", evolve.stderr);
    assert!(evolve.stdout.contains("out of sample"), "{}", evolve.stdout);
    assert!(dir.join("strata.duckdb").is_file());
}

/// Tests run as root in CI, and root may write any file; the store counts a
/// file without any write permission bit (`chmod a-w`) as read-only for
/// everyone, so this test means the same for root and for other users.
#[test]
fn a_store_this_user_cannot_write_is_read_read_only_and_writes_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;

    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    let store = ["--duckdb-path", "store.duckdb"];
    strata(dir, &[&["ingest", &sample_arg("sp500_daily.csv")], &store[..]].concat()).success();
    let path = dir.join("store.duckdb");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let listing = names(dir);

    let summary = strata(dir, &[&["summary", "--json"], &store[..]].concat()).success();
    assert_eq!(summary.json()["total_rows"], 5_031);
    assert!(summary.stderr.contains("is read-only for this user, so it was opened read-only"), "{}", summary.stderr);
    let query = strata(dir, &[&["query", "^GSPC", "--desc", "--limit", "1", "--format", "csv"], &store[..]].concat());
    assert!(query.success().stdout.contains("^GSPC,2018-12-31"));
    strata(dir, &[&["digest", "^GSPC"], &store[..]].concat()).success();
    strata(dir, &[&["runs", "list"], &store[..]].concat()).success();
    let health = strata(dir, &[&["health", "--json"], &store[..]].concat()).success();
    assert_eq!(health.json()["ok"], true);

    let ingest = strata(dir, &[&["ingest", &sample_arg("quandl_wiki_stocks_daily.csv")], &store[..]].concat());
    let ingest = ingest.exits(2);
    assert!(ingest.stderr.contains("read-only for this user"), "{}", ingest.stderr);
    assert!(!ingest.stdout.contains("ingested"), "{}", ingest.stdout);
    strata(dir, &[&["migrate"], &store[..]].concat()).exits(2);

    assert_eq!(std::fs::read(&path).unwrap(), before, "the read-only store changed");
    assert_eq!(names(dir), listing, "a write-ahead log or other file appeared");
}
