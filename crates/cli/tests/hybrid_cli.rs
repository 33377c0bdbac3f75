//! `STORAGE_BACKEND=hybrid` end to end, as the README shows it: ingest,
//! query, health, evolve and sync with the primary (PostgreSQL) down, then
//! up; `strata verify` of primary against cache at the end.

mod common;

use common::{DropSchema, database_url, sample_arg, strata_in, unique_schema};

/// Nothing listens on port 1: a primary that is down.
const DOWN: &str = "postgres://postgres@127.0.0.1:1/test";

#[test]
fn hybrid_works_with_its_primary_down_and_catches_up_when_it_returns() {
    let Some(url) = database_url() else { return };
    let schema = unique_schema("hycli");
    let _guard = DropSchema::new(&url, &schema);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let down = [("STORAGE_BACKEND", "hybrid"), ("DATABASE_URL", DOWN), ("STRATA_PG_SCHEMA", schema.as_str())];
    let up = [("STORAGE_BACKEND", "hybrid"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];

    // Down: the ingest is acknowledged as journaled, not as committed.
    let ingest = strata_in(dir.path(), &down, &["ingest", "--adjust", &sample_arg("quandl_wiki_stocks_daily_adj.csv")])
        .success();
    assert!(ingest.stdout.contains("journaled, not yet in the primary store"), "{}", ingest.stdout);
    assert!(!ingest.stdout.starts_with("ingested"), "{}", ingest.stdout);
    assert!(ingest.stderr.contains("unavailable"), "the outage is said: {}", ingest.stderr);

    // Reads come from the cache; health says degraded with the journal's depth.
    let query = strata_in(dir.path(), &down, &["query", "AAPL", "--limit", "2", "--format", "csv"]).success();
    assert_eq!(query.stdout.lines().count(), 3, "{}", query.stdout);
    let health = strata_in(dir.path(), &down, &["health", "--json"]).exits(1);
    let report = health.json();
    assert_eq!(report["status"], "degraded", "{report}");
    let text = report.to_string();
    assert!(text.contains("\"mode\":\"degraded\""), "{text}");
    assert!(text.contains("\"journal_depth\""), "{text}");

    // A short evolution runs on the cache, its state in the DuckDB file.
    let evolve = [
        "evolve",
        "--strategy",
        "ma-crossover",
        "--symbols",
        "AAPL",
        "MSFT",
        "--start",
        "2004-01-01",
        "--end",
        "2008-01-01",
        "--population",
        "8",
        "--generations",
        "2",
        "--seed",
        "7",
        "--json",
    ];
    let run = strata_in(dir.path(), &down, &evolve).success();
    let document = run.json();
    assert_eq!(document["status"], "completed", "{document}");
    assert_eq!(document["generation_stats"].as_array().map(Vec::len), Some(2), "{document}");

    // sync with the primary still down: nothing replayed, exit 1, the journal kept.
    let sync = strata_in(dir.path(), &down, &["sync", "--json"]).exits(1);
    assert_eq!(sync.json()["applied"], 0);
    assert!(sync.json()["remaining"].as_u64().is_some_and(|n| n > 0), "{}", sync.stdout);

    // Up: sync replays everything, in order, and the primary equals the cache.
    let sync = strata_in(dir.path(), &up, &["sync", "--json"]).success();
    let replayed = sync.json();
    assert_eq!(replayed["remaining"], 0, "{replayed}");
    assert!(replayed["rows"].as_u64().is_some_and(|rows| rows > 10_000), "{replayed}");
    let health = strata_in(dir.path(), &up, &["health", "--json"]).success();
    assert_eq!(health.json()["status"], "healthy", "{}", health.stdout);
    let cache = format!("duckdb:{}", dir.path().join("strata.duckdb").display());
    let verify = strata_in(dir.path(), &up, &["verify", &url, &cache, "--pg-schema", &schema]).success();
    assert!(verify.stdout.contains("equal") || verify.stdout.contains("0 of"), "{}", verify.stdout);

    // Normal mode: a new write is committed at once.
    let csv = dir.path().join("one.csv");
    std::fs::write(&csv, "symbol,timestamp,open,high,low,close,volume\nONE,2011-01-03,1,2,1,2,10\n").expect("a csv");
    let ingest = strata_in(dir.path(), &up, &["ingest", csv.to_str().expect("utf-8")]).success();
    assert!(ingest.stdout.starts_with("ingested 1 row"), "{}", ingest.stdout);
    let rows = common::psql(&url, &format!("SELECT count(*) FROM {schema}.ohlcv_bars WHERE symbol = 'ONE'"));
    assert_eq!(rows, "1");
}

#[test]
fn hybrid_on_efs_journals_while_the_share_is_missing_and_replays_when_it_is_back() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let share = dir.path().join("share");
    let share_text = share.to_str().expect("utf-8").to_string();
    let env =
        [("STORAGE_BACKEND", "hybrid"), ("STRATA_HYBRID_PRIMARY", "efs"), ("STRATA_EFS_ROOT", share_text.as_str())];

    // The share is not mounted (the directory does not exist): writes are journaled.
    let ingest = strata_in(dir.path(), &env, &["ingest", &sample_arg("sp500_daily.csv")]).success();
    assert!(ingest.stdout.contains("journaled"), "{}", ingest.stdout);
    assert!(!share.exists(), "an unmounted share is never created");
    strata_in(dir.path(), &env, &["sync"]).exits(1);

    // Mounted again: sync replays, and the dataset holds every row.
    std::fs::create_dir(&share).expect("the share");
    let sync = strata_in(dir.path(), &env, &["sync", "--json"]).success();
    assert_eq!(sync.json()["rows"], 5031, "{}", sync.stdout);
    let efs = [("STORAGE_BACKEND", "efs"), ("STRATA_EFS_ROOT", share_text.as_str())];
    let summary = strata_in(dir.path(), &efs, &["summary", "--json"]).success();
    assert_eq!(summary.json()["total_rows"], 5031, "{}", summary.stdout);
    let efs_url = format!("efs:{share_text}");
    let cache = format!("duckdb:{}", dir.path().join("strata.duckdb").display());
    strata_in(dir.path(), &[], &["verify", &efs_url, &cache]).success();
    let health = strata_in(dir.path(), &env, &["health", "--json"]).success();
    assert_eq!(health.json()["status"], "healthy", "{}", health.stdout);
}
