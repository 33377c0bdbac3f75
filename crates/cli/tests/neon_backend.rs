//! End-to-end tests of `strata` with `STORAGE_BACKEND=neon` against the
//! PostgreSQL at `DATABASE_URL` (`cargo xtask test` starts one): migrate,
//! ingest, query, summary, digest and health, each run in its own schema;
//! the digests must equal the in-memory store's for the same files.
#![cfg(feature = "neon")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data").join(name)
}

/// Runs `strata` with `env`; returns (exit code, stdout, stderr).
fn strata(env: &[(&str, &str)], arguments: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.env_remove("STORAGE_BACKEND").env_remove("STRATA_PG_SCHEMA").env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.args(arguments).output().expect("the strata binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

struct DropSchema(String, String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1);
        let _ = Command::new("psql").args(["-X", "-q", "-d", &self.0, "-c", &sql]).output();
    }
}

#[test]
fn neon_backend_ingests_queries_and_reports_health_like_the_others() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(std::env::var("STRATA_REQUIRE_SERVICES").is_err(), "DATABASE_URL is required");
        return eprintln!("DATABASE_URL is not set: skipped");
    };
    let schema = format!("cli_{}", std::process::id());
    let _cleanup = DropSchema(url.clone(), schema.clone());
    let env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];
    let files = [sample("sp500_daily.csv"), sample("quandl_wiki_stocks_daily.csv")];
    let files: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();

    let (code, out, err) = strata(&env, &["migrate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("migration_version  1") && out.contains("partitions"), "{out}");

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
    assert!(neon_digest.lines().count() > 17_000, "one digest line per (symbol, day)");

    // A bad value names the variable and what it accepts; nothing is opened.
    let (code, _, err) = strata(&[("STORAGE_BACKEND", "neon"), ("STRATA_PG_PARTITION", "fortnight")], &["summary"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("STRATA_PG_PARTITION") && err.contains("month"), "{err}");
}

/// The reusable GA checks of `strata_ga_coord::testkit` against PostgreSQL:
/// same per-generation population hashes with 1, 2 and 8 workers, a worker
/// killed mid-lease, the coordinator crashed and resumed; takeover; cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ga_checks_pass_on_postgres() {
    use std::sync::Arc;
    use strata_adapter_neon::{NeonConfig, NeonStore};
    use strata_ga_coord::testkit;

    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(std::env::var("STRATA_REQUIRE_SERVICES").is_err(), "DATABASE_URL is required");
        return eprintln!("DATABASE_URL is not set: skipped");
    };
    let schema = format!("ga_{}", std::process::id());
    let _cleanup = DropSchema(url.clone(), schema.clone());
    let config = NeonConfig::from_url(&url).unwrap().with_schema(schema).unwrap();
    let store = Arc::new(NeonStore::open(config).await.unwrap());
    let report = testkit::check_determinism(store.clone(), store.clone()).await.unwrap();
    assert_eq!(report.scenarios.len(), 5, "{report:?}");
    assert!(report.killed_tasks >= 1, "{report:?}");
    testkit::check_takeover(store.clone(), store.clone()).await.unwrap();
    let cancel = testkit::check_cancel(store.clone(), store).await.unwrap();
    assert!(cancel.evaluations < cancel.population, "{cancel:?}");
}

/// `strata worker` processes on the same PostgreSQL as `strata evolve`, one
/// of them SIGKILLed while the run is going: the run ends with exactly the
/// per-generation population hashes of a single-process run with the same seed.
#[test]
fn worker_processes_killed_mid_run_change_nothing() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(std::env::var("STRATA_REQUIRE_SERVICES").is_err(), "DATABASE_URL is required");
        return eprintln!("DATABASE_URL is not set: skipped");
    };
    let schema = format!("gaproc_{}", std::process::id());
    let _cleanup = DropSchema(url.clone(), schema.clone());
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
    let (code, reference, err) = strata(&env, &run_args("reference", "2"));
    assert_eq!(code, Some(0), "{err}");
    let reference = hashes(&reference);
    assert_eq!(reference.len(), 4);

    // Two external workers with a short TTL, then the coordinator (with one in-process worker).
    let spawn_worker = |id: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command.env_remove("STRATA_PG_SCHEMA").env("RUST_LOG", "error");
        for (key, value) in env {
            command.env(key, value);
        }
        command
            .args(["worker", "--id", id, "--ttl", "1", "--batch", "4", "--exit-when-idle", "20"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting a worker process")
    };
    let mut doomed = spawn_worker("doomed");
    let mut survivor = spawn_worker("survivor");
    let mut coordinator = Command::new(env!("CARGO_BIN_EXE_strata"));
    coordinator.env_remove("STRATA_PG_SCHEMA").env("RUST_LOG", "error");
    for (key, value) in env {
        coordinator.env(key, value);
    }
    let coordinator = coordinator
        .args(run_args("distributed", "1"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the coordinator");
    let psql = |sql: &str| {
        let out = Command::new("psql").args(["-X", "-At", "-d", &url, "-c", sql]).output().expect("psql");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Kill the doomed worker while it holds leases of the distributed run.
    let holding = format!(
        "SELECT count(*) FROM {schema}.tasks WHERE run_id = 'distributed' AND worker = 'doomed' AND state = 'leased'"
    );
    let started = std::time::Instant::now();
    while psql(&holding).parse::<u64>().unwrap_or(0) == 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the doomed worker never held a lease");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    doomed.kill().expect("SIGKILL a worker mid-lease");
    let _ = doomed.wait();
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
