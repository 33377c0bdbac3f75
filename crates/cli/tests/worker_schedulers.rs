//! `strata worker` as schedulers start it (issue "workers at scale"): a
//! SIGTERMed worker hands its leases back at once, so another worker
//! completes them long before the TTL; `--exit-when-done RUN` exits 0 only
//! once the run completed and 1 when it was cancelled; `strata runs status
//! --json` gives the counts a scaler reads; and the durable fitness cache
//! makes a repeated run backtest nothing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{DropSchema, sample_arg};

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill").args([name, &pid.to_string()]).status().expect("kill(1)");
    assert!(status.success(), "kill {name} {pid}");
}

fn spawn(env: &[(&str, &str)], arguments: &[&str]) -> Child {
    common::command(env)
        .env("RUST_LOG", "error")
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting strata")
}

/// Waits for `child` at most `limit`; `None` if it is still running then.
fn wait_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("child status") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn output_of(child: Child) -> (Option<i32>, String) {
    let output = child.wait_with_output().expect("child output");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_sigtermed_worker_hands_its_leases_back_and_another_finishes_the_run_long_before_the_ttl() {
    let Some(url) = common::database_url() else { return };
    let schema = common::unique_schema("handback");
    let _cleanup = DropSchema::new(&url, &schema);
    let env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];
    // Minute bars make each backtest take milliseconds, so the worker is
    // caught with leases it has not evaluated yet.
    let generated = ["generate", "--symbols", "3", "--bars", "150000", "--interval", "1m", "--seed", "3", "--ingest"];
    common::strata(&env, &generated).success();
    let run = "handback";
    let mut coordinator = spawn(
        &env,
        &[
            "evolve",
            "--symbols",
            "SYN000",
            "SYN001",
            "SYN002",
            "--population",
            "48",
            "--generations",
            "2",
            "--seed",
            "5",
            "--workers",
            "0",
            "--run-id",
            run,
            "--json",
        ],
    );
    // The only worker, with a TTL far longer than the test may take: its
    // leases come back early only if it hands them back.
    let ttl = 600;
    let mut first =
        spawn(&env, &["worker", "--id", "first", "--ttl", &ttl.to_string(), "--batch", "64", "--grace", "20"]);
    let holding = format!("SELECT count(*) FROM {schema}.tasks WHERE worker = 'first' AND state = 'leased'");
    let mut held = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        assert!(coordinator.try_wait().unwrap().is_none(), "the coordinator ended before the worker held a lease");
        if common::psql(&url, &holding).parse::<u64>().unwrap_or(0) > 0 {
            // Frozen while it holds leases, then told to stop.
            signal("-STOP", first.id());
            held = common::psql(&url, &holding).parse().unwrap_or(0);
            if held > 0 {
                break;
            }
            signal("-CONT", first.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(held > 0, "the first worker was never caught holding a lease");
    let stopped_at = Instant::now();
    signal("-TERM", first.id());
    signal("-CONT", first.id());
    let status = wait_within(&mut first, Duration::from_secs(25)).expect("the worker exits within its grace period");
    let (code, stderr) = output_of(first);
    assert_eq!(code, Some(130), "a stopped worker exits 130\n{stderr}");
    assert!(!status.success());
    assert!(stderr.contains("handed back"), "{stderr}");
    assert_eq!(common::psql(&url, &holding), "0", "the stopped worker still holds leases\n{stderr}");
    eprintln!("first worker: held {held} leases when stopped; {}", stderr.trim());

    let progress = common::strata(&env, &["runs", "status", run, "--json"]).success().json();
    assert_eq!(progress["run"], run);
    assert_eq!(progress["leased"], 0, "{progress}");
    assert_eq!(progress["finished"], false, "{progress}");
    assert_eq!(progress["generations"], 2, "{progress}");

    let mut second = spawn(&env, &["worker", "--id", "second", "--ttl", "30", "--exit-when-done", run]);
    let coordinator_done = wait_within(&mut coordinator, Duration::from_secs(240)).expect("the run finishes");
    assert!(coordinator_done.success(), "{}", output_of(coordinator).1);
    let finished_in = stopped_at.elapsed();
    assert!(
        finished_in < Duration::from_secs(ttl / 2),
        "the run took {finished_in:?} after the stop: the leases waited for their TTL"
    );
    let second_done = wait_within(&mut second, Duration::from_secs(60)).expect("--exit-when-done exits after the run");
    let (code, stderr) = output_of(second);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(second_done.success());
    let progress = common::strata(&env, &["runs", "status", run, "--json"]).success().json();
    assert_eq!(progress["status"], "completed", "{progress}");
    assert_eq!(progress["finished"], true, "{progress}");
    assert_eq!(progress["generation"], 2, "{progress}");
    assert_eq!((progress["pending"].as_u64(), progress["leased"].as_u64()), (Some(0), Some(0)), "{progress}");
    let attempts = common::psql(&url, &format!("SELECT max(attempts) FROM {schema}.tasks WHERE run_id = '{run}'"));
    assert_eq!(attempts, "1", "a handed-back lease counted as an attempt");
}

#[test]
fn exit_when_done_exits_one_for_a_cancelled_run_and_status_refuses_an_unknown_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.duckdb");
    let path = path.to_str().unwrap();
    let env = [("STRATA_DUCKDB_PATH", path)];
    common::strata(&env, &["ingest", &sample_arg("sp500_daily.csv")]).success();
    let mut coordinator = spawn(
        &env,
        &["evolve", "--population", "10", "--generations", "50", "--workers", "0", "--run-id", "doomed", "--json"],
    );
    // Polled only once the coordinator serves the file: a command that opens
    // it first would hold DuckDB's lock while the coordinator starts. Cancelled
    // only once the coordinator has marked the run running: before that, its
    // unconditional `set_run_status(Running)` can overwrite the cancel (a known
    // race in ga-coord's `Coordinator::evolve`, see the stop-13 note).
    let socket = format!("{path}.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = || {
        let status = common::strata(&env, &["runs", "status", "doomed", "--json"]);
        status.code == Some(0) && status.stdout.contains("\"status\":\"running\"")
    };
    while !std::path::Path::new(&socket).exists() || !running() {
        assert!(Instant::now() < deadline, "the run was never created");
        std::thread::sleep(Duration::from_millis(50));
    }
    common::strata(&env, &["runs", "cancel", "doomed"]).success();
    let _ = wait_within(&mut coordinator, Duration::from_secs(30));
    let _ = coordinator.kill();
    let worker = common::strata(&env, &["worker", "--exit-when-done", "doomed", "--ttl", "5"]);
    assert_eq!(worker.code, Some(1), "{}", worker.stderr);
    assert!(worker.stderr.contains("run doomed ended cancelled"), "{}", worker.stderr);
    let unknown = common::strata(&env, &["runs", "status", "nope", "--json"]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
}

#[test]
fn a_repeated_run_takes_every_fitness_from_the_durable_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.duckdb");
    let path = path.to_str().unwrap();
    let env = [("STRATA_DUCKDB_PATH", path)];
    common::strata(&env, &["ingest", "--adjust", &sample_arg("quandl_wiki_stocks_daily_adj.csv")]).success();
    let evolve = |run_id: &str| {
        let arguments = [
            "evolve",
            "--symbols",
            "AAPL",
            "MSFT",
            "--start",
            "2003-01-01",
            "--end",
            "2008-01-01",
            "--population",
            "24",
            "--generations",
            "3",
            "--seed",
            "11",
            "--workers",
            "2",
            "--run-id",
            run_id,
            "--json",
        ];
        common::strata(&env, &arguments).success().json()
    };
    let first = evolve("first");
    let backtests = first["backtests"].as_u64().unwrap();
    assert!(backtests > 0, "{first}");
    // A new process (no in-memory cache), a new run, the same genomes.
    let second = evolve("second");
    assert_eq!(second["backtests"], 0, "the repeated run backtested again: {second}");
    assert!(second["cached"].as_u64().unwrap() > 0, "{second}");
    assert_eq!(second["population_hashes"], first["population_hashes"]);
    assert_eq!(second["best"], first["best"], "results from the cache are the results");
    eprintln!("first run: {backtests} backtests; second run: 0 backtests, {} cached", second["cached"]);
}
