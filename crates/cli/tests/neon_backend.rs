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
