//! End-to-end tests of `strata evolve` and `strata runs` on a temporary DuckDB
//! file loaded with the shipped sample data.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "duckdb")]

use std::path::Path;

mod common;

use common::{Run, sample};

/// Runs `strata` in `directory` against its `store.duckdb`.
fn strata(directory: &Path, arguments: &[&str]) -> Run {
    common::strata_in(directory, &[("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "store.duckdb")], arguments)
}

const EVOLVE: &[&str] = &[
    "evolve",
    "--strategy",
    "ma-crossover",
    "--symbols",
    "AAPL",
    "MSFT",
    "--start",
    "2003-01-01",
    "--end",
    "2008-01-01",
    "--test-end",
    "2010-01-01",
    "--population",
    "8",
    "--generations",
    "3",
    "--seed",
    "5",
    "--workers",
    "2",
];

#[test]
fn evolve_prints_the_best_genomes_and_runs_show_lists_the_generations() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample("quandl_wiki_stocks_daily.csv");
    strata(dir.path(), &["ingest", data.to_str().unwrap()]).success();

    let first = strata(dir.path(), &[EVOLVE, &["--json"]].concat()).success().json();
    assert_eq!(first["status"], "completed", "{first}");
    let run = first["run"].as_str().unwrap().to_string();
    assert!(run.starts_with("ma-crossover-"), "{run}");
    assert_eq!(first["generation_stats"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(first["population_hashes"].as_array().unwrap().len(), 3, "{first}");
    let best = first["best"].as_array().unwrap();
    assert!(!best.is_empty() && best.len() <= 5, "{first}");
    assert!(best[0]["genome"]["fast"].is_i64(), "{first}");
    assert!(best[0]["metrics"]["sharpe"].is_number(), "{first}");
    assert!(best[0]["out_of_sample"]["metrics"]["trades"].is_u64(), "walk-forward metrics: {first}");
    let fitness: Vec<f64> = best.iter().map(|b| b["fitness"].as_f64().unwrap()).collect();
    assert!(fitness.windows(2).all(|pair| pair[0] >= pair[1]), "ranked best first: {fitness:?}");

    // The same command again finds the completed run and prints the same result.
    let again = strata(dir.path(), EVOLVE).success();
    assert!(again.stdout.contains(&format!("run {run}: completed")), "{}", again.stdout);
    assert!(again.stdout.contains("best genomes of generation 3"), "{}", again.stdout);
    assert!(again.stdout.contains("(out of sample)"), "{}", again.stdout);

    let listed = strata(dir.path(), &["runs", "list"]).success();
    assert!(listed.stdout.contains(&run) && listed.stdout.contains("completed"), "{}", listed.stdout);
    let listed_json = strata(dir.path(), &["runs", "list", "--json"]).success().stdout;
    let names: Vec<String> = listed_json
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["run"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&run), "{names:?}");
    assert!(!names.iter().any(|name| name.starts_with("coord:")), "no companion run is stored: {names:?}");

    let shown = strata(dir.path(), &["runs", "show", &run]).success();
    for generation in 1..=3 {
        assert!(shown.stdout.contains(&format!("generation   {generation}/3: best")), "{}", shown.stdout);
    }
    let shown_json = strata(dir.path(), &["runs", "show", &run, "--json"]).success().json();
    assert_eq!(shown_json["population_hashes"], first["population_hashes"]);
    assert_eq!(shown_json["generation_stats"], first["generation_stats"]);
    // Text and JSON number generations the same way (from 1), with the same best fitness.
    for stats in shown_json["generation_stats"].as_array().unwrap() {
        let (number, best) = (stats["generation"].as_u64().unwrap(), stats["best"].as_f64().unwrap());
        let line = format!("generation {number:>3}/3: best {best:>8.4}");
        assert!(shown.stdout.contains(&line), "{line:?} missing from:\n{}", shown.stdout);
    }
    assert!(listed.stdout.contains("3/3 done"), "runs list says how many generations are done:\n{}", listed.stdout);

    // The same seed in a new run (other id, one worker) gives the same populations.
    let one_worker = [&EVOLVE[..EVOLVE.len() - 2], &["--workers", "1", "--run-id", "same-seed", "--json"]].concat();
    let other = strata(dir.path(), &one_worker);
    let other = other.success().json();
    assert_eq!(other["population_hashes"], first["population_hashes"]);

    // A completed run cannot be cancelled; a missing symbol fails with a hint.
    let cancel = strata(dir.path(), &["runs", "cancel", &run]);
    assert_eq!(cancel.code, Some(2), "{cancel:?}");
    let missing = strata(dir.path(), &["evolve", "--symbols", "NOPE", "--population", "4", "--generations", "1"]);
    assert_ne!(missing.code, Some(0), "{missing:?}");
    assert!(
        missing.stderr.contains("NOPE") && missing.stderr.contains("AAPL"),
        "names it and what exists: {missing:?}"
    );

    // Coordinator only (--workers 0) needs workers in other processes, which an in-memory store cannot have.
    let alone = [&EVOLVE[..EVOLVE.len() - 2], &["--workers", "0", "--run-id", "alone"]].concat();
    let alone = common::strata_in(dir.path(), &[("STORAGE_BACKEND", "memory")], &alone).exits(2);
    assert!(alone.stderr.contains("--workers 0") && alone.stderr.contains("neon"), "{alone:?}");
    let listed = strata(dir.path(), &["runs", "list"]).success();
    assert!(!listed.stdout.contains("alone"), "nothing was written: {}", listed.stdout);
}
