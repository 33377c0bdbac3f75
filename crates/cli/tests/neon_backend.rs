//! End-to-end tests of `strata` with `STORAGE_BACKEND=neon` against the
//! PostgreSQL at `DATABASE_URL` (`cargo xtask test` starts one): migrate,
//! ingest, query, summary, digest and health, each run in its own schema;
//! the digests must equal the in-memory store's for the same files.
#![cfg(feature = "neon")]
#![allow(clippy::unwrap_used)]

use std::process::Command;

mod common;

use common::{DropSchema, sample};

/// Runs `strata` with `env`; returns (exit code, stdout, stderr).
fn strata(env: &[(&str, &str)], arguments: &[&str]) -> (Option<i32>, String, String) {
    let run = common::strata(env, arguments);
    (run.code, run.stdout, run.stderr)
}

#[test]
fn neon_backend_ingests_queries_and_reports_health_like_the_others() {
    let Some(url) = common::database_url() else { return };
    let schema = format!("cli_{}", std::process::id());
    let _cleanup = DropSchema::new(&url, &schema);
    let env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];
    let files = [sample("sp500_daily.csv"), sample("quandl_wiki_stocks_daily.csv")];
    let files: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();

    let (code, out, err) = strata(&env, &["migrate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // The layout this server offers, with its reason: a hypertable where TimescaleDB is
    // preloaded, native partitions otherwise.
    assert!(out.contains("migration_version  3"), "{out}");
    let preload_sql = "SELECT coalesce((SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'), '')";
    let preload = Command::new("psql").args(["-X", "-tA", "-d", &url, "-c", preload_sql]).output().unwrap();
    let preloaded = String::from_utf8_lossy(&preload.stdout)
        .split(',')
        .any(|library| library.trim().trim_matches('"').trim_end_matches(".so").ends_with("timescaledb"));
    let offered = if preloaded { "TimescaleDB hypertable" } else { "native range partitions" };
    assert!(out.contains(offered), "expected {offered}: {out}");
    assert!(out.to_ascii_lowercase().contains("timescaledb"), "the layout says why: {out}");

    let mut ingest = vec!["ingest"];
    ingest.extend(&files);
    let (code, out, err) = strata(&env, &ingest);
    assert_eq!(code, Some(0), "{out}{err}");
    // Again: an upsert, nothing doubles.
    let (code, _, err) = strata(&env, &ingest);
    assert_eq!(code, Some(0), "{err}");

    let (code, out, err) = strata(&env, &["summary", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["total_rows"], 17_185, "{out}");

    let (code, out, _) = strata(&env, &["query", "^GSPC", "--desc", "--limit", "2", "--format", "csv"]);
    assert_eq!(code, Some(0));
    assert!(out.lines().nth(1).unwrap().starts_with("^GSPC,2018-12-31"), "{out}");

    // Same per-(symbol, day) digests as DuckDB given the same files.
    let (code, neon_digest, _) = strata(&env, &["digest"]);
    assert_eq!(code, Some(0));
    #[cfg(feature = "duckdb")]
    {
        let directory = std::env::temp_dir().join(format!("strata-neon-cli-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("same.duckdb");
        let duck = [("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", path.to_str().unwrap())];
        let (code, _, err) = strata(&duck, &ingest);
        assert_eq!(code, Some(0), "{err}");
        let (code, duck_digest, _) = strata(&duck, &["digest"]);
        assert_eq!(code, Some(0));
        let _ = std::fs::remove_dir_all(&directory);
        assert_eq!(neon_digest, duck_digest, "neon and duckdb digests differ for the same files");
    }
    let (code, out, err) = strata(&env, &["health", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let health: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(health["ok"], true, "{out}");
    assert!(health["details"]["round_trip_ms"].is_f64(), "durations are numbers: {out}");
    assert!(health["details"]["database_bytes"].is_u64(), "sizes are numbers: {out}");
    assert!(health["details"]["server_version"].is_string(), "a version stays text: {out}");
    assert!(neon_digest.lines().count() > 17_000, "one digest line per (symbol, day)");

    // A bad value names the variable and what it accepts; nothing is opened.
    let bad = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_PARTITION", "fortnight")];
    let (code, _, err) = strata(&bad, &["summary"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("STRATA_PG_PARTITION") && err.contains("month"), "{err}");
}

/// `strata worker` processes on the same PostgreSQL as `strata evolve`, one
/// of them SIGKILLed while the run is going: the run ends with exactly the
/// per-generation population hashes of a single-process run with the same seed.
#[test]
fn worker_processes_killed_mid_run_change_nothing() {
    let Some(url) = common::database_url() else { return };
    let schema = format!("gaproc_{}", std::process::id());
    let _cleanup = DropSchema::new(&url, &schema);
    let env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];
    let files = [sample("sp500_daily.csv"), sample("quandl_wiki_stocks_daily.csv")];
    let mut ingest = vec!["ingest"];
    ingest.extend(files.iter().map(|p| p.to_str().unwrap()));
    let (code, _, err) = strata(&env, &ingest);
    assert_eq!(code, Some(0), "{err}");
    let run_args = |id: &'static str, workers: &'static str| {
        vec![
            "evolve",
            "--strategy",
            "donchian",
            "--symbols",
            "AAPL",
            "MSFT",
            "IBM",
            "GOOG",
            "--start",
            "2005-01-01",
            "--end",
            "2013-01-01",
            "--population",
            "120",
            "--generations",
            "4",
            "--seed",
            "9",
            "--workers",
            workers,
            "--run-id",
            id,
            "--json",
        ]
    };
    let hashes = |json: &str| -> Vec<String> {
        let document: serde_json::Value = serde_json::from_str(json.trim()).expect("evolve --json output");
        assert_eq!(document["status"], "completed", "{json}");
        document["population_hashes"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
    };
    // The reference run lives in a schema of its own: in the same schema its
    // results would fill the durable fitness cache, and the distributed run
    // would complete every task from there before the doomed worker held one.
    let reference_schema = format!("{schema}_ref");
    let _reference_cleanup = DropSchema::new(&url, &reference_schema);
    let reference_env =
        [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", reference_schema.as_str())];
    let (code, _, err) = strata(&reference_env, &ingest);
    assert_eq!(code, Some(0), "{err}");
    let (code, reference, err) = strata(&reference_env, &run_args("reference", "2"));
    assert_eq!(code, Some(0), "{err}");
    let reference = hashes(&reference);
    assert_eq!(reference.len(), 4);

    // Deterministic by construction: the coordinator runs no worker of its
    // own and the doomed worker is the only one, so the run cannot move until
    // the doomed worker takes leases; it is frozen (SIGSTOP) once the store
    // shows it holding some, so it cannot complete them before the SIGKILL;
    // only then does the survivor start.
    let spawn_worker = |id: &str, batch: &str| {
        common::command(&env)
            .env("RUST_LOG", "error")
            .args(["worker", "--id", id, "--ttl", "1", "--batch", batch, "--exit-when-idle", "20"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting a worker process")
    };
    let mut coordinator = common::command(&env)
        .env("RUST_LOG", "error")
        .args(run_args("distributed", "0"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the coordinator");
    let mut doomed = spawn_worker("doomed", "16");
    let psql = |sql: &str| common::psql(&url, sql);
    let holding = format!(
        "SELECT count(*) FROM {schema}.tasks WHERE run_id = 'distributed' AND worker = 'doomed' AND state = 'leased'"
    );
    let signal = |name: &str, pid: u32| {
        let status = Command::new("kill").args([name, &pid.to_string()]).status().expect("kill(1)");
        assert!(status.success(), "kill {name} {pid}");
    };
    // Wait for the state "the doomed worker holds leases of the run", freeze
    // it, and check again: a worker that completed its batch in between is
    // let go on and caught at its next lease. Nothing else can finish the run.
    let mut frozen_holding = 0;
    for _ in 0..10_000 {
        if let Some(status) = coordinator.try_wait().expect("coordinator status") {
            panic!("the coordinator ended ({status}) before the doomed worker was caught holding leases");
        }
        if psql(&holding).parse::<u64>().unwrap_or(0) > 0 {
            signal("-STOP", doomed.id());
            frozen_holding = psql(&holding).parse::<u64>().unwrap_or(0);
            if frozen_holding > 0 {
                break;
            }
            signal("-CONT", doomed.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(frozen_holding > 0, "the doomed worker was never caught holding a lease");
    doomed.kill().expect("SIGKILL a worker mid-lease");
    let _ = doomed.wait();
    let mut survivor = spawn_worker("survivor", "4");
    let output = coordinator.wait_with_output().expect("the coordinator finishes");
    let _ = survivor.kill();
    let _ = survivor.wait();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(hashes(&String::from_utf8_lossy(&output.stdout)), reference, "populations differ");
    let doomed_seen = psql(&format!("SELECT count(*) FROM {schema}.workers WHERE id = 'doomed'"));
    assert_eq!(doomed_seen, "1", "the killed worker took part in the run");
    let retried = psql(&format!("SELECT count(*) FROM {schema}.tasks WHERE run_id = 'distributed' AND attempts > 1"));
    assert!(retried.parse::<u64>().unwrap_or(0) >= 1, "the killed worker's leases were re-leased ({retried})");
}
