//! End-to-end tests of `STORAGE_BACKEND=efs`: the shipped sample data
//! ingested into a Parquet dataset gives the same digest as the DuckDB store;
//! `health` reports the dataset and the DuckDB file that holds the evolution
//! state; `evolve` runs with its state in the DuckDB file; `compact` merges
//! partitions; a missing root is refused and never created.
#![cfg(all(feature = "efs", feature = "duckdb"))]
#![allow(clippy::unwrap_used)]

mod common;

use common::{sample_arg, strata_in};

#[test]
fn efs_ingests_digests_like_duckdb_and_reports_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dataset");
    std::fs::create_dir(&root).unwrap();
    let root_arg = root.to_str().unwrap();
    let efs = [("STORAGE_BACKEND", "efs"), ("STRATA_EFS_ROOT", root_arg), ("STRATA_DUCKDB_PATH", "state.duckdb")];
    let duckdb = [("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "only.duckdb")];
    let files = [sample_arg("sp500_daily.csv"), sample_arg("quandl_wiki_stocks_daily.csv")];
    for env in [&efs[..], &duckdb[..]] {
        strata_in(dir.path(), env, &["ingest", &files[0], &files[1]]).success();
    }
    let efs_digest = strata_in(dir.path(), &efs, &["digest", "--json"]).success().stdout;
    let duckdb_digest = strata_in(dir.path(), &duckdb, &["digest", "--json"]).success().stdout;
    assert_eq!(efs_digest.lines().count(), duckdb_digest.lines().count());
    assert!(efs_digest == duckdb_digest, "efs and duckdb digests differ for the same files");

    let summary = strata_in(dir.path(), &efs, &["summary", "--json"]).success().json();
    assert_eq!(summary["total_rows"], 5_031 + 12_154, "{summary}");
    let files_written = walk(&root).into_iter().filter(|path| path.ends_with(".parquet")).count();
    assert!(files_written > 0, "the dataset holds Parquet files");
    assert!(!dir.path().join("state.duckdb").exists(), "market-data commands open no evolution state");

    let evolve = [
        "evolve",
        "--symbols",
        "AAPL",
        "--start",
        "2004-01-01",
        "--end",
        "2006-01-01",
        "--population",
        "6",
        "--generations",
        "2",
        "--workers",
        "2",
        "--json",
    ];
    let run = strata_in(dir.path(), &efs, &evolve).success().json();
    assert_eq!(run["status"], "completed", "{run}");
    assert!(dir.path().join("state.duckdb").exists(), "the evolution state is in the DuckDB file");
    let health = strata_in(dir.path(), &efs, &["health", "--json"]).success().json();
    assert_eq!(health["status"], "healthy", "{health}");
    let parts: Vec<&str> =
        health["components"].as_array().unwrap().iter().map(|c| c["backend"].as_str().unwrap()).collect();
    assert_eq!(parts, ["efs", "duckdb"], "market data and evolution state: {health}");

    strata_in(dir.path(), &efs, &["compact"]).success();
    let after = strata_in(dir.path(), &efs, &["digest", "--json"]).success().stdout;
    assert!(after == efs_digest, "compaction changes no row");
}

#[test]
fn a_missing_efs_root_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-mounted");
    let env = [("STORAGE_BACKEND", "efs"), ("STRATA_EFS_ROOT", missing.to_str().unwrap())];
    let run = strata_in(dir.path(), &env, &["ingest", &sample_arg("sp500_daily.csv")]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("not-mounted"), "names the root:\n{}", run.stderr);
    assert!(!missing.exists(), "an unmounted share must not become a local folder");
    let no_root = strata_in(dir.path(), &[("STORAGE_BACKEND", "efs")], &["summary"]);
    assert_eq!(no_root.code, Some(2), "{}", no_root.stderr);
    assert!(no_root.stderr.contains("STRATA_EFS_ROOT"), "{}", no_root.stderr);
}

/// Every file under `root`, as strings.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.to_string_lossy().into_owned());
        }
    }
    found
}
