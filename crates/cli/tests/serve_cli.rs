//! End-to-end: `strata serve` and `--metrics-listen` through the binary, on
//! the embedded default (DuckDB) with the shipped data.
//!
//! - pyarrow reads `/v1/bars` as an Arrow stream straight from the URL and
//!   gets the same table as `strata query --format parquet` of the same query;
//! - `promtool check metrics` accepts `/metrics` after a workload of reads,
//!   and accepts a worker's `/metrics` after it evaluated a whole run;
//! - a token is required off loopback (exit 2, nothing opened), enforced
//!   (401 without, 200 with) and absent from the logs at trace level;
//! - SIGTERM stops the server with exit 0.
//!
//! promtool and the Python readers are optional locally and required under
//! `STRATA_REQUIRE_SERVICES` (CI installs both).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{Served, http_get as get, sample_arg, strata_in};

/// Whether a missing tool fails the test instead of skipping its part.
fn required() -> bool {
    std::env::var_os("STRATA_REQUIRE_SERVICES").is_some()
}

/// A directory holding a DuckDB store with the shipped S&P 500 and stock files.
fn loaded_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    strata_in(dir.path(), &[], &["ingest", &sample_arg("sp500_daily.csv")]).success();
    strata_in(dir.path(), &[], &["ingest", "--adjust", &sample_arg("quandl_wiki_stocks_daily_adj.csv")]).success();
    dir
}

/// `promtool check metrics` on `exposition`: `None` when promtool is absent (and not required).
fn promtool_check(exposition: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            assert!(!required(), "promtool is required (Debian's prometheus package): {error}");
            eprintln!("promtool not found: its check is skipped");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Some((output.status.success(), said))
}

/// The value of the first sample line of `name` whose labels contain every one of `labels`.
fn sample_value(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[test]
fn pyarrow_reads_the_same_bars_as_query_and_promtool_accepts_the_metrics() {
    let dir = loaded_store();
    let mut served = Served::start(dir.path(), &[], &["serve", "--listen", "127.0.0.1:0"]);
    let address = served.address("serving");

    // A workload of every route, and bad parameters answered with the CLI's messages.
    let (status, body) = get(address, "/health", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["ok"], true, "{body}");
    let (status, body) = get(address, "/v1/summary", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("AAPL") && body.contains("^GSPC"), "{body}");
    let (status, body) = get(address, "/v1/bars?symbols=AAPL&start=2009-01-01&end=2008-01-01", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is after end"), "{body}");
    let (status, body) = get(address, "/v1/bars?symbols=AAPL&start=yesterday", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid value 'yesterday' for 'start'"), "{body}");
    let (status, _) = get(address, "/v1/digest?symbols=MSFT&start=2008-01-01&end=2008-02-01", &[]);
    assert_eq!(status, 200);

    // pyarrow straight from the URL against `strata query --format parquet` of the same query.
    let python = std::env::var("STRATA_PYTHON").ok();
    match python {
        None => {
            assert!(!required(), "STRATA_PYTHON (a Python with pyarrow) is required");
            eprintln!("STRATA_PYTHON is not set: the pyarrow comparison is skipped");
        }
        Some(python) => {
            let parquet = dir.path().join("aapl_msft.parquet");
            strata_in(
                dir.path(),
                &[],
                &[
                    "query",
                    "AAPL",
                    "MSFT",
                    "--start",
                    "2004-01-01",
                    "--end",
                    "2012-01-01",
                    "--output",
                    parquet.to_str().unwrap(),
                ],
            )
            .success();
            let url = format!("http://{address}/v1/bars?symbols=AAPL,MSFT&start=2004-01-01&end=2012-01-01");
            let script = "import sys, urllib.request, pyarrow as pa, pyarrow.ipc as ipc, pyarrow.parquet as pq\n\
                request = urllib.request.Request(sys.argv[1], headers={'Accept': 'application/vnd.apache.arrow.stream'})\n\
                served = ipc.open_stream(urllib.request.urlopen(request)).read_all()\n\
                stored = pq.read_table(sys.argv[2])\n\
                assert served.num_rows == stored.num_rows > 3000, (served.num_rows, stored.num_rows)\n\
                assert served.column_names == stored.column_names, (served.column_names, stored.column_names)\n\
                assert served.cast(stored.schema).equals(stored), 'the served rows differ from strata query'\n\
                print(served.num_rows)\n";
            let output = Command::new(&python).args(["-c", script, &url, parquet.to_str().unwrap()]).output().unwrap();
            assert!(
                output.status.success(),
                "pyarrow:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    let (status, exposition) = get(address, "/metrics", &[]);
    assert_eq!(status, 200, "{exposition}");
    assert!(
        sample_value(&exposition, "strata_http_requests_total", &["route=\"/v1/bars\"", "status=\"400\""]) >= Some(2.0),
        "{exposition}"
    );
    assert!(exposition.contains("strata_build_info{version=\""), "{exposition}");
    assert!(
        exposition.contains("# TYPE strata_http_request_seconds histogram")
            && exposition.contains("strata_http_request_seconds_bucket{"),
        "{exposition}"
    );
    assert!(exposition.contains("strata_store_operations_total{"), "stores are metered:\n{exposition}");
    if let Some((ok, said)) = promtool_check(&exposition) {
        assert!(ok, "promtool check metrics failed:\n{said}\n{exposition}");
        assert!(said.trim().is_empty(), "promtool has findings:\n{said}");
    }

    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "SIGTERM stops the server cleanly:\n{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
}

#[test]
fn a_token_is_required_off_loopback_enforced_and_never_logged() {
    let dir = loaded_store();
    // Off loopback without a token: refused before anything is opened.
    let refused = strata_in(dir.path(), &[], &["serve", "--listen", "0.0.0.0:0"]).exits(2);
    assert!(refused.stderr.contains("STRATA_API_TOKEN"), "{}", refused.stderr);
    let short = strata_in(dir.path(), &[("STRATA_API_TOKEN", "short")], &["serve", "--listen", "127.0.0.1:0"]).exits(2);
    assert!(short.stderr.contains("at least"), "{}", short.stderr);

    let token = "s3cr3t-token-7f2c9a1b44e0d5c6";
    let mut served = Served::start(
        dir.path(),
        &[("STRATA_API_TOKEN", token), ("RUST_LOG", "trace")],
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let address = served.address("serving");
    let bearer = format!("Bearer {token}");
    let wrong = format!("Bearer {token}x");
    for path in ["/v1/bars?symbols=AAPL&limit=3", "/health", "/metrics", "/v1/summary"] {
        assert_eq!(get(address, path, &[]).0, 401, "{path} without a token");
        assert_eq!(get(address, path, &[("Authorization", &wrong)]).0, 401, "{path} with a wrong token");
        assert_eq!(get(address, path, &[("Authorization", &bearer)]).0, 200, "{path} with the token");
    }
    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.lines().count() > 10, "trace logging was on:\n{stderr}");
    assert!(!stderr.contains(token) && !stderr.contains("s3cr3t"), "the token was logged:\n{stderr}");
}

#[test]
fn a_worker_serves_its_metrics_while_it_works() {
    let dir = loaded_store();
    // The worker opens the store first and serves it to the coordinator; it evaluates every genome.
    let mut worker = Served::start(
        dir.path(),
        &[],
        &["worker", "--exit-when-idle", "60", "--ttl", "30", "--metrics-listen", "127.0.0.1:0"],
    );
    let address = worker.address("metrics at");
    let evolve = strata_in(
        dir.path(),
        &[],
        &[
            "evolve",
            "--symbols",
            "AAPL",
            "--start",
            "2005-01-01",
            "--end",
            "2008-01-01",
            "--population",
            "8",
            "--generations",
            "2",
            "--workers",
            "0",
            "--run-id",
            "scraped",
            "--json",
        ],
    )
    .success();
    drop(evolve);
    let status = strata_in(dir.path(), &[], &["runs", "status", "scraped", "--json"]).success().json();
    assert_eq!(status["status"], "completed", "{status}");
    let evaluated = status["done"].as_u64().unwrap();
    assert!(evaluated >= 8, "{status}");

    let (status, exposition) = get(address, "/metrics", &[]);
    assert_eq!(status, 200, "{exposition}");
    let counted: f64 = exposition
        .lines()
        .filter(|line| line.starts_with("strata_ga_evaluations_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(counted >= evaluated as f64, "{evaluated} backtests, {counted} counted:\n{exposition}");
    assert!(exposition.contains("strata_ga_evaluation_seconds_bucket{"), "{exposition}");
    if let Some((ok, said)) = promtool_check(&exposition) {
        assert!(ok, "promtool check metrics failed:\n{said}\n{exposition}");
        assert!(said.trim().is_empty(), "promtool has findings:\n{said}");
    }
    let (code, stderr) = worker.terminate();
    assert!(matches!(code, Some(0 | 130)), "{code:?}\n{stderr}");
}
