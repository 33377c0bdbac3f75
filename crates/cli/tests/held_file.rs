//! While one `strata` process holds the DuckDB file (DuckDB allows one), the
//! others reach its stores through the socket it serves beside the file:
//! `summary`, `query`, `ingest`, `runs list/show/cancel` and even a second
//! `evolve` work instead of failing with a lock error; `strata worker`
//! processes on the same machine can evaluate a `--workers 0` run; a socket
//! left by a killed process is ignored.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "duckdb")]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Run, sample_arg};

fn strata(directory: &Path, arguments: &[&str]) -> Run {
    common::strata_in(directory, &[("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "held.duckdb")], arguments)
}

fn spawn(directory: &Path, arguments: &[&str]) -> Child {
    common::command(&[("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "held.duckdb")])
        .current_dir(directory)
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `done` holds, failing after `seconds`.
fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const EVOLVE: &[&str] = &[
    "evolve",
    "--symbols",
    "AAPL",
    "--start",
    "2004-01-01",
    "--end",
    "2006-01-01",
    "--population",
    "6",
    "--seed",
    "3",
];

#[test]
fn other_commands_go_through_the_process_that_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    strata(dir.path(), &["ingest", &sample_arg("quandl_wiki_stocks_daily.csv")]).success();
    let before = strata(dir.path(), &["summary", "--json"]).success().json();

    // A worker holds the file until it is killed, and serves it.
    let mut holder = spawn(dir.path(), &["worker", "--exit-when-idle", "600"]);
    let socket = dir.path().join("held.duckdb.sock");
    wait_for("the worker's socket", 60, || socket.exists());

    let summary = strata(dir.path(), &["summary", "--json"]).success().json();
    assert_eq!(summary, before, "the same summary through the holder");
    let query = strata(dir.path(), &["query", "AAPL", "--desc", "--limit", "1", "--format", "csv"]).success();
    assert_eq!(query.stdout.lines().count(), 2, "{}", query.stdout);
    let ingest = strata(dir.path(), &["ingest", &sample_arg("sp500_daily.csv")]).success();
    assert!(ingest.stdout.contains("through the strata process that holds it"), "{}", ingest.stdout);
    let after = strata(dir.path(), &["summary", "--json"]).success().json();
    assert!(after["total_rows"].as_u64() > before["total_rows"].as_u64(), "written through the holder: {after}");

    // A coordinator in another process evolves a run; the holding worker evaluates it.
    let run = strata(dir.path(), &[EVOLVE, &["--generations", "2", "--workers", "1", "--json"]].concat()).success();
    let run = run.json();
    assert_eq!(run["status"], "completed", "{run}");
    let id = run["run"].as_str().unwrap();
    let shown = strata(dir.path(), &["runs", "show", id, "--json"]).success().json();
    assert_eq!(shown["population_hashes"], run["population_hashes"]);

    // Coordinator only: the run waits for workers, and `runs cancel` stops it.
    let mut coordinator =
        spawn(dir.path(), &[EVOLVE, &["--generations", "500", "--workers", "0", "--run-id", "endless"]].concat());
    wait_for("the endless run", 60, || strata(dir.path(), &["runs", "list"]).stdout.contains("endless"));
    strata(dir.path(), &["runs", "cancel", "endless"]).success();
    let deadline = Instant::now() + Duration::from_secs(60);
    while coordinator.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the cancelled coordinator never stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed = strata(dir.path(), &["runs", "list", "--json"]).success().stdout;
    assert!(listed.lines().any(|line| line.contains("\"endless\"") && line.contains("cancelled")), "{listed}");

    // Killed, the holder leaves a stale socket: the next command opens the file itself.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(socket.exists(), "SIGKILL leaves the socket file behind");
    let alone = strata(dir.path(), &["summary", "--json"]).success().json();
    assert_eq!(alone, after);
    let writer = strata(dir.path(), &["ingest", &sample_arg("sp500_daily.csv")]).success();
    assert!(!writer.stdout.contains("through the strata process"), "{}", writer.stdout);
    assert!(!socket.exists(), "a writer that ends removes its own socket (and replaced the stale one)");
}
