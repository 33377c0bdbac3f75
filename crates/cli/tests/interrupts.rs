//! Ctrl-C and SIGTERM in `strata evolve` and `strata worker`, with real
//! signals: the command stops at a safe point with exit code 130, says what
//! was kept and how to continue, an interrupted run is marked `interrupted`
//! (so no worker leases its tasks) and `--resume` finishes it; flags that
//! `--resume` would ignore are refused.
#![allow(clippy::unwrap_used)]
#![cfg_attr(not(feature = "duckdb"), allow(dead_code))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{DropSchema, sample_arg};

/// Sends `signal` (`TERM`, `INT`) to the child.
fn send(child: &Child, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Reads the child's stderr until a line contains `needle`; returns every line read.
fn wait_for_line(child: &mut Child, needle: &str) -> (BufReader<std::process::ChildStderr>, Vec<String>) {
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).unwrap();
        assert!(read > 0, "the process ended before printing {needle:?}:\n{}", lines.join(""));
        lines.push(line.clone());
        if line.contains(needle) {
            return (reader, lines);
        }
    }
}

/// The rest of stderr and the exit code.
fn finish(
    mut child: Child,
    mut reader: BufReader<std::process::ChildStderr>,
    mut lines: Vec<String>,
) -> (Option<i32>, String) {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    lines.push(rest);
    (child.wait().unwrap().code(), lines.join(""))
}

#[test]
fn resume_refuses_the_run_arguments_it_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let refused = common::strata_in(dir.path(), &[], &["evolve", "--resume", "some-run", "--population", "100"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("--population"), "names the refused flag:\n{}", refused.stderr);
}

#[cfg(feature = "duckdb")]
#[test]
fn sigterm_stops_evolve_on_duckdb_and_marks_the_run_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("STRATA_DUCKDB_PATH", "store.duckdb")];
    common::strata_in(dir.path(), &env, &["ingest", &sample_arg("quandl_wiki_stocks_daily.csv")]).success();
    // Far more work than can finish between the header line and the signal.
    let mut child = common::command(&env)
        .current_dir(dir.path())
        .args(["evolve", "--symbols", "AAPL", "MSFT", "--population", "400", "--generations", "40", "--workers", "1"])
        .args(["--run-id", "interrupted-run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (reader, lines) = wait_for_line(&mut child, "evolving run interrupted-run");
    send(&child, "TERM");
    let (code, stderr) = finish(child, reader, lines);
    assert_eq!(code, Some(130), "SIGTERM exits 130:\n{stderr}");
    assert!(stderr.contains("stopped: SIGTERM: run interrupted-run stopped and marked interrupted"), "{stderr}");
    assert!(stderr.contains("strata evolve --resume interrupted-run"), "says how to continue:\n{stderr}");

    let listed = common::strata_in(dir.path(), &env, &["runs", "show", "interrupted-run", "--json"]).success().json();
    assert_eq!(listed["status"], "interrupted", "{listed}");
}

#[cfg(feature = "neon")]
#[test]
fn an_interrupted_coordinator_marks_its_run_and_resume_finishes_it() {
    let Some(url) = common::database_url() else { return };
    let schema = common::unique_schema("interrupts");
    let _cleanup = DropSchema::new(&url, &schema);
    let env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];
    common::strata(&env, &["ingest", &sample_arg("quandl_wiki_stocks_daily.csv")]).success();
    let run_arguments =
        ["evolve", "--symbols", "AAPL", "--start", "2004-01-01", "--end", "2006-01-01", "--population", "6"];
    // Coordinator only: nothing is evaluated until a worker comes, so the
    // state at the signal is known (generation 0 saved, nothing evaluated).
    let mut child = common::command(&env)
        .args(run_arguments)
        .args(["--generations", "2", "--run-id", "paused", "--workers", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let enqueued = format!("SELECT count(*) FROM {schema}.tasks WHERE run_id = 'paused'");
    while common::psql(&url, &enqueued).parse::<u64>().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the coordinator never enqueued generation 0");
        std::thread::sleep(Duration::from_millis(100));
    }
    send(&child, "INT");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "Ctrl-C exits 130:\n{stderr}");
    assert!(stderr.contains("stopped: Ctrl-C: run paused stopped and marked interrupted"), "{stderr}");
    assert!(stderr.contains("no generation was evaluated yet"), "{stderr}");

    let status = format!("SELECT status FROM {schema}.runs WHERE id = 'paused'");
    assert_eq!(common::psql(&url, &status), "interrupted");
    // A worker leases nothing of an interrupted run.
    let idle = common::strata(&env, &["worker", "--exit-when-idle", "1"]).success();
    assert!(idle.stderr.contains("0 recorded"), "{}", idle.stderr);

    let resumed = common::strata(&env, &["evolve", "--resume", "paused", "--workers", "2", "--json"]).success().json();
    assert_eq!(resumed["status"], "completed", "{resumed}");
    assert_eq!(resumed["generation_stats"].as_array().unwrap().len(), 2, "{resumed}");
}

#[cfg(feature = "duckdb")]
#[test]
fn sigterm_stops_ingest_between_batches_and_the_same_ingest_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("STRATA_DUCKDB_PATH", "store.duckdb")];
    common::strata_in(dir.path(), &env, &["generate", "-o", "big.parquet", "--symbols", "4", "--bars", "500000"])
        .success();
    let mut child = common::command(&env)
        .current_dir(dir.path())
        .args(["ingest", "big.parquet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The store is created after the signal handlers are installed, and before the first batch.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.path().join("store.duckdb").exists() {
        assert!(Instant::now() < deadline, "ingest never opened the store");
        std::thread::sleep(Duration::from_millis(5));
    }
    send(&child, "TERM");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "stopped between batches:\n{stderr}");
    assert!(stderr.contains("stopped: SIGTERM: ingest stopped after"), "{stderr}");
    assert!(stderr.contains("running the same ingest again completes it"), "{stderr}");
    let partial = common::strata_in(dir.path(), &env, &["summary", "--json"]).success().json();
    assert!(partial["total_rows"].as_u64().unwrap_or(0) < 2_000_000, "{partial}");
    common::strata_in(dir.path(), &env, &["ingest", "big.parquet"]).success();
    let complete = common::strata_in(dir.path(), &env, &["summary", "--json"]).success().json();
    assert_eq!(complete["total_rows"], 2_000_000, "{complete}");
}

#[cfg(feature = "duckdb")]
#[test]
fn sigterm_stops_a_worker_and_says_what_happens_to_its_leases() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("STRATA_DUCKDB_PATH", "store.duckdb")];
    common::strata_in(dir.path(), &env, &["generate", "--ingest", "--symbols", "1", "--bars", "10"]).success();
    let mut child = common::command(&env)
        .current_dir(dir.path())
        .args(["worker", "--ttl", "7"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (reader, lines) = wait_for_line(&mut child, "leasing evaluations");
    send(&child, "TERM");
    let (code, stderr) = finish(child, reader, lines);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("stopped: SIGTERM: worker"), "{stderr}");
    assert!(stderr.contains("the leases it held were handed back for other workers"), "{stderr}");
    assert!(stderr.contains("0 handed back"), "it held none: {stderr}");
}
