//! `strata copy` and `strata verify` between every ordered pair of duckdb,
//! neon (PostgreSQL, two schemas of one server named by `?schema=`) and efs stores, from the Python system's DuckDB file and
//! PostgreSQL table, and `verify --repair` fixing exactly the day that differs.

mod common;

use common::{DropSchema, database_url, psql, strata_in, unique_schema};

/// Writes `bars` hourly bars of 3 symbols into a DuckDB file and returns its URL.
fn generated_duckdb(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    let path_text = path.to_str().expect("utf-8");
    strata_in(
        dir,
        &[],
        &[
            "--duckdb-path",
            path_text,
            "generate",
            "--symbols",
            "3",
            "--bars",
            "600",
            "--interval",
            "1h",
            "--seed",
            "11",
            "--ingest",
        ],
    )
    .success();
    format!("duckdb:{path_text}")
}

#[test]
fn every_ordered_pair_of_duckdb_neon_and_efs_copies_and_verifies() {
    let Some(url) = database_url() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let source = generated_duckdb(dir.path(), "source.duckdb");
    let mut guards = Vec::new();
    // Each kind of store, created by a copy from the generated source.
    let mut stores: Vec<(String, Vec<String>)> = Vec::new();
    for kind in ["duckdb", "neon", "efs"] {
        for copy in 0..2 {
            let (store, flags) = match kind {
                "duckdb" => (format!("duckdb:{}", dir.path().join(format!("d{copy}.duckdb")).display()), vec![]),
                "efs" => {
                    let root = dir.path().join(format!("efs{copy}"));
                    std::fs::create_dir(&root).expect("an efs root");
                    (format!("efs:{}", root.display()), vec![])
                }
                _ => {
                    let schema = format!("{}_{copy}", unique_schema("pairs"));
                    guards.push(DropSchema::new(&url, &schema));
                    (format!("{url}{}schema={schema}", if url.contains('?') { "&" } else { "?" }), vec![])
                }
            };
            stores.push((store, flags));
        }
    }
    // Fill the first store of each kind from the source.
    for (store, flags) in stores.iter().step_by(2) {
        let mut arguments = vec!["copy", &source, store, "--json"];
        arguments.extend(flags.iter().map(String::as_str));
        let copied = strata_in(dir.path(), &[], &arguments).success().json();
        assert_eq!(copied["rows_copied"], 1800, "{store}: {copied}");
        assert_eq!(copied["after"]["differences"].as_array().map(Vec::len), Some(0), "{copied}");
    }
    // Every ordered pair (first of kind A) -> (second of kind B): copy, verify both ways, copy again copies nothing.
    for (a, a_flags) in stores.iter().step_by(2) {
        for (b, b_flags) in stores.iter().skip(1).step_by(2) {
            let flags: Vec<&str> = a_flags.iter().chain(b_flags).map(String::as_str).collect();
            let run = |command: &[&str]| {
                let mut arguments: Vec<&str> = command.to_vec();
                arguments.extend(&flags);
                strata_in(dir.path(), &[], &arguments)
            };
            // B may hold what an earlier pair copied: make it differ first by copying a different selection.
            let copied = run(&["copy", a, b, "--json"]).success().json();
            assert_eq!(copied["after"]["differences"].as_array().map(Vec::len), Some(0), "{a} -> {b}: {copied}");
            run(&["verify", a, b]).success();
            run(&["verify", b, a]).success();
            let again = run(&["copy", a, b, "--json"]).success().json();
            assert_eq!(again["rows_copied"], 0, "{a} -> {b} again: {again}");
        }
    }
}

#[test]
fn verify_repair_fixes_exactly_the_changed_day_and_deletes_an_extra_row() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let a = generated_duckdb(dir.path(), "a.duckdb");
    let b_path = dir.path().join("b.duckdb");
    let b = format!("duckdb:{}", b_path.display());
    strata_in(dir.path(), &[], &["copy", &a, &b]).success();
    strata_in(dir.path(), &[], &["verify", &a, &b]).success();
    // One bar of B changed, one extra bar on another day.
    let first = strata_in(
        dir.path(),
        &[],
        &["--duckdb-path", b_path.to_str().expect("utf-8"), "query", "SYN000", "--limit", "1", "--format", "json"],
    )
    .success();
    let bar: serde_json::Value = serde_json::from_str(first.stdout.lines().next().expect("a bar")).expect("json");
    let timestamp = bar["timestamp"].as_str().expect("a timestamp").to_string();
    let day = &timestamp[..10];
    let csv = dir.path().join("edit.csv");
    std::fs::write(
        &csv,
        format!("symbol,timestamp,open,high,low,close,volume\nSYN000,{timestamp},1,1000,0.5,2,7\nSYN001,2019-06-01T00:00:00Z,1,2,1,2,3\n"),
    )
    .expect("a csv");
    strata_in(
        dir.path(),
        &[],
        &["--duckdb-path", b_path.to_str().expect("utf-8"), "ingest", csv.to_str().expect("utf-8")],
    )
    .success();
    let differs = strata_in(dir.path(), &[], &["verify", &a, &b]).exits(1);
    assert!(differs.stdout.contains(&format!("SYN000 {day}")), "{}", differs.stdout);
    assert!(differs.stdout.contains("SYN001 2019-06-01"), "{}", differs.stdout);
    assert_eq!(differs.stdout.lines().filter(|line| line.starts_with("SYN")).count(), 2, "{}", differs.stdout);
    let repaired = strata_in(dir.path(), &[], &["verify", &a, &b, "--repair", "--json"]).success().json();
    assert_eq!(repaired["days_copied"], 2, "{repaired}");
    assert_eq!(repaired["rows_deleted"].as_u64().map(|n| n > 0), Some(true), "{repaired}");
    strata_in(dir.path(), &[], &["verify", &a, &b]).success();
}

#[test]
fn the_python_systems_duckdb_file_and_postgres_table_copy_in_as_they_are() {
    let Some(url) = database_url() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let schema = unique_schema("seedsrc");
    let _guard = DropSchema::new(&url, &schema);
    psql(
        &url,
        &format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.ohlcv_bars (symbol TEXT NOT NULL, \"timestamp\" TIMESTAMP NOT NULL, \
             open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL, \
             close DOUBLE PRECISION NOT NULL, volume DOUBLE PRECISION NOT NULL, vwap DOUBLE PRECISION NOT NULL, \
             trade_count INTEGER NOT NULL); \
             INSERT INTO {schema}.ohlcv_bars VALUES ('AAPL', '2024-01-02 14:30:00', 1.5, 2.25, 1.25, 0.1 + 0.2 + 1.5, 100, 1.75, 12), \
             ('AAPL', '2024-01-03 14:30:00', 2, 3, 1, 2.5, 50, 2.2, 7), ('MSFT', '2024-01-02 14:30:00', 10, 11, 9, 10.5, 5, 10.2, 3);"
        ),
    );
    let target_path = dir.path().join("strata.duckdb");
    let target = format!("duckdb:{}", target_path.display());
    let copied =
        strata_in(dir.path(), &[], &["copy", &url, &target, "--pg-schema", &schema, "--json"]).success().json();
    assert_eq!(copied["rows_copied"], 3, "{copied}");
    strata_in(dir.path(), &[], &["verify", &url, &target, "--pg-schema", &schema]).success();
    let query = strata_in(
        dir.path(),
        &[],
        &["--duckdb-path", target_path.to_str().expect("utf-8"), "query", "AAPL", "--format", "json"],
    )
    .success();
    let first: serde_json::Value = serde_json::from_str(query.stdout.lines().next().expect("a row")).expect("json");
    assert_eq!(first["close"].as_f64().map(f64::to_bits), Some((0.1f64 + 0.2 + 1.5).to_bits()), "{first}");
    assert_eq!(first["trade_count"], 12, "{first}");
    // Writing into the Python system's table is refused: it is a read-only source.
    let extra = dir.path().join("extra.csv");
    std::fs::write(&extra, "symbol,timestamp,open,high,low,close,volume\nIBM,2024-01-05,1,2,1,2,3\n").expect("a csv");
    strata_in(
        dir.path(),
        &[],
        &["--duckdb-path", target_path.to_str().expect("utf-8"), "ingest", extra.to_str().expect("utf-8")],
    )
    .success();
    let refused = strata_in(dir.path(), &[], &["copy", &target, &url, "--pg-schema", &schema]);
    assert_ne!(refused.code, Some(0), "{}", refused.stdout);
    assert!(refused.stderr.contains("read-only"), "{}", refused.stderr);
    // An unknown scheme names the accepted forms.
    let wrong = strata_in(dir.path(), &[], &["verify", "mysql://x", &target]).exits(2);
    assert!(wrong.stderr.contains("duckdb:PATH") && wrong.stderr.contains("efs:DIR"), "{}", wrong.stderr);
}
