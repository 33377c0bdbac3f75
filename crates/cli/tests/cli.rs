//! End-to-end tests of the `strata` binary: each runs the built executable
//! against real files (the shipped sample data) in its own temporary directory.

#![allow(clippy::unwrap_used)]
#![cfg_attr(not(all(feature = "duckdb", feature = "memory")), allow(dead_code))]

#[cfg(feature = "duckdb")]
use std::collections::HashMap;
use std::path::Path;

mod common;

use common::{Run, sample, strata_in as strata};

/// Runs `strata` against the DuckDB file `store.duckdb` in `directory`.
#[cfg(feature = "duckdb")]
fn duckdb(directory: &Path, arguments: &[&str]) -> Run {
    strata(directory, &[("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "store.duckdb")], arguments)
}

/// CSV rows keyed by (symbol, timestamp text) with every other field as text.
#[cfg(feature = "duckdb")]
fn csv_rows(text: &str) -> HashMap<(String, String), HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .map(|line| {
            let fields: HashMap<String, String> =
                header.iter().zip(line.split(',')).map(|(name, value)| (name.to_string(), value.to_string())).collect();
            ((fields["symbol"].clone(), fields["timestamp"].clone()), fields)
        })
        .collect()
}

fn json_line(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[test]
fn help_teaches_the_environment_and_exit_codes() {
    let directory = tempfile::tempdir().unwrap();
    let help = strata(directory.path(), &[], &["--help"]).success();
    for needle in ["STORAGE_BACKEND", "STRATA_DUCKDB_PATH", "RUST_LOG", "Exit codes", "ingest", "query", "digest"] {
        assert!(help.stdout.contains(needle), "{needle:?} missing from --help:\n{}", help.stdout);
    }
    let ingest_help = strata(directory.path(), &[], &["ingest", "--help"]).success();
    assert!(ingest_help.stdout.contains("FILE:LINE"), "{}", ingest_help.stdout);
    assert!(ingest_help.stdout.contains("strata ingest data/*.csv"), "{}", ingest_help.stdout);
}

#[test]
fn unknown_storage_backend_lists_the_accepted_values() {
    let directory = tempfile::tempdir().unwrap();
    let run = strata(directory.path(), &[("STORAGE_BACKEND", "mongodb")], &["summary"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    for needle in
        ["STORAGE_BACKEND", "\"mongodb\"", "duckdb", "memory", "neon (or postgres, postgresql, pg)", "efs", "hybrid"]
    {
        assert!(run.stderr.contains(needle), "{needle:?} missing from: {}", run.stderr);
    }
    // hybrid without its primary's URL says what it needs, and creates no cache.
    let hybrid = strata(directory.path(), &[], &["--backend", "hybrid", "health"]);
    assert_eq!(hybrid.code, Some(2), "{hybrid:?}");
    assert!(hybrid.stdout.contains("hybrid") && hybrid.stdout.contains("DATABASE_URL"), "{hybrid:?}");
    // neon without a URL names the variable it needs.
    let neon = strata(directory.path(), &[], &["--backend", "neon", "health"]);
    assert!(neon.stderr.contains("DATABASE_URL") || neon.stdout.contains("DATABASE_URL"), "{neon:?}");
    assert_ne!(neon.code, Some(0), "{neon:?}");
    assert!(!directory.path().join("strata.duckdb").exists(), "a bad backend must not create a store");
}

#[cfg(feature = "neon")]
#[test]
fn postgres_is_another_name_for_the_neon_backend() {
    let directory = tempfile::tempdir().unwrap();
    for name in ["postgres", "PostgreSQL", "pg"] {
        let run = strata(directory.path(), &[("STORAGE_BACKEND", name)], &["summary"]);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("DATABASE_URL"), "STORAGE_BACKEND={name} was not taken as neon: {run:?}");
        assert!(!run.stderr.contains("not a storage backend"), "{run:?}");
    }
    let flag = strata(directory.path(), &[], &["summary", "--backend", "postgres"]);
    assert!(flag.stderr.contains("DATABASE_URL"), "{flag:?}");
    assert!(!directory.path().join("strata.duckdb").exists(), "a neon run must not create a DuckDB store");
}

#[cfg(feature = "neon-api")]
#[test]
fn storage_options_are_shown_and_accepted_only_where_a_store_is_opened() {
    let directory = tempfile::tempdir().unwrap();
    let neon_help = strata(directory.path(), &[], &["neon", "branch", "list", "--help"]).success();
    for absent in ["--duckdb-path", "--pg-schema", "--backend", "DuckDB options", "PostgreSQL/Neon options"] {
        assert!(!neon_help.stdout.contains(absent), "{absent:?} in `neon branch list --help`:\n{}", neon_help.stdout);
    }
    let query_help = strata(directory.path(), &[], &["query", "--help"]).success();
    for present in ["--duckdb-path", "--pg-schema", "--backend", "DuckDB options:", "PostgreSQL/Neon options:"] {
        assert!(query_help.stdout.contains(present), "{present:?} missing from `query --help`:\n{}", query_help.stdout);
    }
    let refused = strata(directory.path(), &[], &["neon", "branch", "list", "--duckdb-path", "x.duckdb"]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(refused.stderr.contains("--duckdb-path"), "{refused:?}");
}

#[test]
fn every_subcommand_help_has_examples() {
    let directory = tempfile::tempdir().unwrap();
    let mut subcommands = vec![
        "ingest",
        "query",
        "summary",
        "migrate",
        "health",
        "generate",
        "digest",
        "evolve",
        "worker",
        "runs",
        "runs list",
        "runs show",
        "runs cancel",
        "runs resume",
    ];
    if cfg!(feature = "neon-api") {
        subcommands.extend([
            "neon",
            "neon projects",
            "neon projects list",
            "neon branch",
            "neon branch create",
            "neon branch list",
            "neon branch delete",
            "neon connection-uri",
            "neon operations",
            "neon operations wait",
            "neon fake-server",
        ]);
    }
    for subcommand in subcommands {
        let mut arguments: Vec<&str> = subcommand.split(' ').collect();
        arguments.push("--help");
        let help = strata(directory.path(), &[], &arguments).success();
        assert!(
            help.stdout.contains("\nExamples:\n"),
            "`strata {subcommand} --help` has no examples:\n{}",
            help.stdout
        );
    }
    let evolve = strata(directory.path(), &[], &["evolve", "--help"]).success();
    for strategy in ["ma-crossover", "rsi-reversion", "bollinger-breakout", "donchian"] {
        assert!(evolve.stdout.contains(strategy), "--strategy does not list {strategy}:\n{}", evolve.stdout);
    }
}

#[cfg(feature = "memory")]
#[test]
fn memory_backend_serves_a_single_process() {
    let directory = tempfile::tempdir().unwrap();
    let sp500 = sample("sp500_daily.csv");
    let run =
        strata(directory.path(), &[("STORAGE_BACKEND", "memory")], &["ingest", sp500.to_str().unwrap(), "--summary"])
            .success();
    assert!(run.stdout.contains("ingested 5,031 rows (1 symbol)"), "{}", run.stdout);
    assert!(run.stdout.contains("into memory"), "{}", run.stdout);
    let gspc = run.stdout.lines().find(|line| line.starts_with("^GSPC")).expect("a ^GSPC line");
    assert!(gspc.contains("1999-01-04T00:00:00Z") && gspc.contains("2018-12-31T00:00:00Z") && gspc.ends_with("5,031"));

    let generated = strata(
        directory.path(),
        &[("STORAGE_BACKEND", "memory")],
        &["generate", "--symbols", "3", "--bars", "7", "--seed", "5", "--ingest", "--summary"],
    )
    .success();
    assert!(
        generated.stdout.lines().any(|line| line.starts_with("total") && line.ends_with(" 21")),
        "{}",
        generated.stdout
    );
    let health = strata(directory.path(), &[("STORAGE_BACKEND", "memory")], &["health", "--json"]).success();
    let health = json_line(&health.stdout);
    assert_eq!(health["ok"], true);
    // Counts are JSON numbers, not strings.
    assert_eq!(health["details"]["rows"], 0, "{health}");
    assert_eq!(health["details"]["symbols"], 0, "{health}");
    assert!(!directory.path().join("strata.duckdb").exists());
}

#[cfg(feature = "duckdb")]
#[test]
fn sample_csv_round_trips_bit_for_bit_through_duckdb() {
    let directory = tempfile::tempdir().unwrap();
    let files = [sample("sp500_daily.csv"), sample("quandl_wiki_stocks_daily.csv")];
    let mut arguments = vec!["ingest"];
    arguments.extend(files.iter().map(|file| file.to_str().unwrap()));
    let ingest = duckdb(directory.path(), &arguments).success();
    assert!(
        ingest.stdout.contains("ingested 17,185 rows (6 symbols) from 2 files into duckdb store.duckdb"),
        "{}",
        ingest.stdout
    );

    let source: HashMap<_, _> =
        files.iter().flat_map(|file| csv_rows(&std::fs::read_to_string(file).unwrap())).collect();
    let query =
        duckdb(directory.path(), &["query", "^GSPC", "AAPL", "FB", "GOOG", "IBM", "MSFT", "--format", "csv"]).success();
    let stored = csv_rows(&query.stdout);
    assert_eq!(stored.len(), 17_185);
    assert_eq!(source.len(), 17_185);
    for (key, expected) in &source {
        let actual = stored.get(key).unwrap_or_else(|| panic!("{key:?} was not returned"));
        for column in ["open", "high", "low", "close", "volume"] {
            let want: f64 = expected[column].parse().unwrap();
            let got: f64 = actual[column].parse().unwrap();
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{key:?} {column}: {} became {}",
                expected[column],
                actual[column]
            );
        }
        assert_eq!(actual["vwap"], "");
        assert_eq!(actual["trade_count"], "");
    }
    // The quirks of the real data come back as text too: 17-digit noise, volumes above 2^31.
    let first = &stored[&("^GSPC".to_string(), "1999-01-04T00:00:00Z".to_string())];
    assert_eq!((first["open"].as_str(), first["volume"].as_str()), ("1229.22998", "877000000"));
    let biggest = &stored[&("^GSPC".to_string(), "2008-10-10T00:00:00Z".to_string())];
    assert_eq!(biggest["volume"], "11456230000");

    // Re-ingesting the CSV output into a second store is lossless: equal digests.
    std::fs::write(directory.path().join("export.csv"), &query.stdout).unwrap();
    let copy = [("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "copy.duckdb")];
    strata(directory.path(), &copy, &["ingest", "export.csv"]).success();
    let original_digest = duckdb(directory.path(), &["digest"]).success().stdout;
    let copy_digest = strata(directory.path(), &copy, &["digest"]).success().stdout;
    assert!(original_digest.lines().count() > 17_000, "one digest per symbol and day");
    assert_eq!(original_digest, copy_digest);
}

#[cfg(feature = "duckdb")]
#[test]
fn bad_rows_exit_2_list_every_line_and_write_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let quandl = sample("quandl_wiki_stocks_daily.csv");
    duckdb(directory.path(), &["ingest", quandl.to_str().unwrap()]).success();
    let before = duckdb(directory.path(), &["summary", "--json"]).success().stdout;
    assert_eq!(json_line(&before)["total_rows"], 12_154);

    // A copy of the S&P 500 file with line 10 (a price that is not a number)
    // and line 2000 (high below open) broken.
    let text = std::fs::read_to_string(sample("sp500_daily.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let break_field = |line: &mut String, index: usize, value: &str| {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields[index] = value;
        *line = fields.join(",");
    };
    break_field(&mut lines[9], 2, "12x4.5");
    break_field(&mut lines[1999], 3, "1.5");
    std::fs::write(directory.path().join("broken.csv"), lines.join("\n") + "\n").unwrap();

    let run = duckdb(directory.path(), &["ingest", quandl.to_str().unwrap(), "broken.csv"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("broken.csv:10: column open: \"12x4.5\" is not a number"), "{}", run.stderr);
    assert!(run.stderr.contains("broken.csv:2000: column high:"), "{}", run.stderr);
    assert!(run.stderr.contains("2 of 17,185 rows are invalid"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let after = duckdb(directory.path(), &["summary", "--json"]).success().stdout;
    assert_eq!(before, after, "a rejected ingest must leave the store unchanged");

    // The same key in two files is refused too, naming both places.
    let duplicate = "symbol,date,open,high,low,close,volume\nAAPL,2000-03-01,1,2,0.5,1,0\n";
    std::fs::write(directory.path().join("duplicate.csv"), duplicate).unwrap();
    let run = duckdb(directory.path(), &["ingest", quandl.to_str().unwrap(), "duplicate.csv"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("duplicate.csv:2: column timestamp: (AAPL, 2000-03-01T00:00:00Z) appears twice; first at")
    );
    assert_eq!(duckdb(directory.path(), &["summary", "--json"]).success().stdout, before);
}

#[cfg(feature = "duckdb")]
#[test]
fn generated_parquet_ingests_and_matches_generated_csv() {
    let directory = tempfile::tempdir().unwrap();
    let spec = ["--symbols", "4", "--bars", "2500", "--seed", "11", "--interval", "1h"];
    let mut to_parquet = vec!["generate", "--output", "bars.parquet"];
    to_parquet.extend(spec);
    strata(directory.path(), &[], &to_parquet).success();
    let mut to_csv = vec!["generate", "--output", "bars.csv"];
    to_csv.extend(spec);
    strata(directory.path(), &[], &to_csv).success();
    assert!(!directory.path().join("bars.parquet.partial").exists());

    let ingest = duckdb(directory.path(), &["ingest", "bars.parquet", "--summary"]).success();
    assert!(ingest.stdout.contains("ingested 10,000 rows (4 symbols) from bars.parquet"), "{}", ingest.stdout);
    let summary = json_line(&duckdb(directory.path(), &["summary", "--json"]).success().stdout);
    assert_eq!(summary["total_rows"], 10_000);
    assert_eq!(summary["symbols"][0]["symbol"], "SYN000");
    assert_eq!(summary["symbols"][0]["first"], "2020-01-01T00:00:00Z");

    let from_csv = [("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "from-csv.duckdb")];
    strata(directory.path(), &from_csv, &["ingest", "bars.csv"]).success();
    let parquet_digest = duckdb(directory.path(), &["digest", "--json"]).success().stdout;
    let csv_digest = strata(directory.path(), &from_csv, &["digest", "--json"]).success().stdout;
    assert_eq!(parquet_digest, csv_digest, "the same bars through CSV and through Parquet");
    assert_eq!(json_line(parquet_digest.lines().next().unwrap())["rows"], 24);

    // Query back to Parquet and ingest that into a third store: same digests.
    duckdb(directory.path(), &["query", "SYN000", "SYN001", "SYN002", "SYN003", "--output", "out.parquet"]).success();
    let third = [("STORAGE_BACKEND", "duckdb"), ("STRATA_DUCKDB_PATH", "third.duckdb")];
    strata(directory.path(), &third, &["ingest", "out.parquet"]).success();
    assert_eq!(strata(directory.path(), &third, &["digest", "--json"]).success().stdout, parquet_digest);
}

#[cfg(feature = "duckdb")]
#[test]
fn query_honours_range_limit_order_and_json_lines() {
    let directory = tempfile::tempdir().unwrap();
    duckdb(directory.path(), &["ingest", sample("sp500_daily.csv").to_str().unwrap()]).success();
    let october = duckdb(
        directory.path(),
        &["query", "^GSPC", "--start", "2008-10-01", "--end", "2008-11-01", "--format", "json"],
    )
    .success();
    let bars: Vec<serde_json::Value> = october.stdout.lines().map(json_line).collect();
    assert_eq!(bars.len(), 23, "October 2008 had 23 trading days");
    assert_eq!(bars[0]["timestamp"], "2008-10-01T00:00:00Z");
    assert_eq!(bars[22]["timestamp"], "2008-10-31T00:00:00Z");
    let crash = bars.iter().find(|bar| bar["timestamp"] == "2008-10-10T00:00:00Z").unwrap();
    assert_eq!(crash["volume"].as_u64(), Some(11_456_230_000));
    assert!(crash["vwap"].is_null());

    let latest = duckdb(directory.path(), &["query", "^GSPC", "--desc", "--limit", "2", "--format", "csv"]).success();
    let timestamps: Vec<&str> = latest.stdout.lines().skip(1).map(|line| line.split(',').nth(1).unwrap()).collect();
    assert_eq!(timestamps, vec!["2018-12-31T00:00:00Z", "2018-12-28T00:00:00Z"]);

    let table = duckdb(directory.path(), &["query", "^GSPC", "--limit", "1"]).success();
    assert!(table.stdout.starts_with("symbol"), "{}", table.stdout);
    assert!(table.stdout.contains("1229.22998") && table.stdout.contains("(1 row)"), "{}", table.stdout);
    assert!(!table.stdout.contains("vwap"), "empty optional columns are left out:\n{}", table.stdout);

    let health = duckdb(directory.path(), &["health"]).success();
    assert!(health.stdout.contains("duckdb") && health.stdout.contains("true"), "{}", health.stdout);
}

#[cfg(feature = "duckdb")]
#[test]
fn dry_run_validates_without_creating_a_store() {
    let directory = tempfile::tempdir().unwrap();
    let run = duckdb(directory.path(), &["ingest", sample("sp500_daily.csv").to_str().unwrap(), "--dry-run"]).success();
    assert!(run.stdout.contains("validated 5,031 rows (1 symbol)"), "{}", run.stdout);
    assert!(!directory.path().join("store.duckdb").exists());
}

#[cfg(feature = "memory")]
#[test]
fn parquet_problems_are_reported_by_row_number() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let directory = tempfile::tempdir().unwrap();
    let price = |values: Vec<f64>| Arc::new(Float64Array::from(values)) as ArrayRef;
    let schema = Arc::new(Schema::new(vec![
        Field::new("Date", DataType::Utf8, false),
        Field::new("Open", DataType::Float64, false),
        Field::new("High", DataType::Float64, false),
        Field::new("Low", DataType::Float64, false),
        Field::new("Close", DataType::Float64, false),
        Field::new("Volume", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["2020-01-01", "2020-01-02", "2020-01-03", "someday"])),
            price(vec![10.0, 10.0, 10.0, 10.0]),
            price(vec![11.0, 11.0, 9.0, 11.0]),
            price(vec![9.0, 9.0, 8.0, 9.0]),
            price(vec![10.5, 10.5, 8.5, 10.5]),
            price(vec![100.0, 0.0, 5.0, 1.0]),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(directory.path().join("bad.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let run = strata(
        directory.path(),
        &[("STORAGE_BACKEND", "memory")],
        &["ingest", "bad.parquet", "--symbol", "XYZ", "--dry-run"],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("bad.parquet:row 3: column high:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("bad.parquet:row 4: column timestamp: \"someday\" is not a timestamp"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("row 2:"), "zero volume is valid: {}", run.stderr);
}

#[cfg(feature = "duckdb")]
#[test]
fn a_window_that_ends_before_it_starts_is_an_input_error_before_any_work() {
    let directory = tempfile::tempdir().unwrap();
    duckdb(directory.path(), &["ingest", sample("sp500_daily.csv").to_str().unwrap()]).success();
    let backwards = ["--start", "2010-01-01", "--end", "2009-01-01"];
    for command in [&["query", "^GSPC"][..], &["digest"][..]] {
        let run = duckdb(directory.path(), &[command, &backwards].concat());
        assert_eq!(run.code, Some(2), "{command:?}: {run:?}");
        assert!(run.stderr.contains("is after --end"), "{command:?}: {}", run.stderr);
    }
    let evolve = ["evolve", "--symbols", "^GSPC", "--population", "4", "--generations", "1"];
    let run = duckdb(directory.path(), &[&evolve[..], &backwards].concat());
    assert_eq!(run.code, Some(2), "{run:?}");
    let test_before_end = ["--start", "2005-01-01", "--end", "2010-01-01", "--test-end", "2008-01-01"];
    let run = duckdb(directory.path(), &[&evolve[..], &test_before_end].concat());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--test-end"), "{}", run.stderr);
    let runs = duckdb(directory.path(), &["runs", "list", "--json"]).success();
    assert!(!runs.stdout.contains("ma-crossover"), "no run was created: {}", runs.stdout);
}
