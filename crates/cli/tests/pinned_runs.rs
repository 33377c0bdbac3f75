//! Evolutions held to their data, end to end (issue 13 item 3).
//!
//! - On PostgreSQL through `strata neon fake-server --postgres
//!   --branch-databases`: `strata evolve --snapshot` makes the run's branch
//!   through the Neon API and records its id and LSN; the fake hands out a
//!   second database on the real server as that branch, which the test makes
//!   as a copy of the data (what a Neon branch is). The data is then changed
//!   while the run waits for workers, and a `strata worker` process still
//!   evaluates it on the snapshot: the result is that of an unpinned run made
//!   before the change, and an unpinned run after the change differs.
//!   `strata runs delete` deletes the branch with the run.
//! - On DuckDB: every run records the digest of its window's bars; a re-run or
//!   a resume on changed bars is refused unless `--allow-data-change`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{DropDatabaseAndRole, FakeNeon, Served, admin_url, sample_arg, url_of};
use serde_json::Value;

/// The run's settings shared by every evolution of these tests (small and quick).
const SETTINGS: &[&str] = &[
    "--strategy",
    "ma-crossover",
    "--symbols",
    "^GSPC",
    "--start",
    "2000-01-01",
    "--end",
    "2006-01-01",
    "--test-end",
    "2008-01-01",
    "--population",
    "12",
    "--generations",
    "3",
    "--seed",
    "7",
];

/// What must be equal between two runs on the same bars: each generation's
/// statistics and the best genomes with their in- and out-of-sample metrics.
fn result(document: &Value) -> (Value, Value) {
    (document["generation_stats"].clone(), document["best"].clone())
}

#[test]
fn a_pinned_evolution_keeps_its_snapshot_when_the_data_changes() {
    let Some(admin) = admin_url() else { return };
    let server = url_of(&admin).server().to_owned();
    let name = format!("strata_pin_{}", std::process::id());
    let branch_database = format!("{name}_evolution_pinned");
    let _main = DropDatabaseAndRole { admin: admin.clone(), database: name.clone(), role: name.clone() };
    let _branch = DropDatabaseAndRole { admin: admin.clone(), database: branch_database.clone(), role: name.clone() };

    let postgres = format!("postgres://{server}/?sslmode=disable");
    let fake = FakeNeon::start(&[
        "--postgres",
        &postgres,
        "--branch-databases",
        "--seed-database",
        &name,
        "--seed-role",
        &name,
    ]);
    let uri = fake
        .strata(&[], &["neon", "connection-uri", "--database", &name, "--role", &name, "--direct"])
        .success()
        .stdout
        .trim()
        .to_owned();
    let password = uri.split_once("://").unwrap().1.split_once('@').unwrap().0.split_once(':').unwrap().1.to_owned();
    let admin_sql = |sql: String| {
        let status = std::process::Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", &admin, "-c", &sql])
            .status()
            .unwrap();
        assert!(status.success(), "{sql}");
    };
    admin_sql(format!("CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"));
    admin_sql(format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""));

    let neon = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", uri.as_str())];
    fake.strata(&neon, &["ingest", &sample_arg("sp500_daily.csv")]).success();
    // The branch's copy of the data as of now (a Neon branch is a copy-on-write snapshot).
    admin_sql(format!("CREATE DATABASE \"{branch_database}\" TEMPLATE \"{name}\" OWNER \"{name}\""));

    // Before the change: an unpinned run.
    let before =
        fake.strata(&neon, &[&["evolve", "--run-id", "before", "--workers", "1", "--json"], SETTINGS].concat());
    let before = before.success().json();

    // The pinned run's coordinator makes the branch and waits for workers.
    let mut environment: Vec<(&str, &str)> = neon.to_vec();
    environment.extend(fake.environment.iter().map(|(key, value)| (key.as_str(), value.as_str())));
    let directory = tempfile::tempdir().unwrap();
    let mut coordinator = Served::start(
        directory.path(),
        &environment,
        &[&["evolve", "--snapshot", "--run-id", "pinned", "--workers", "0"], SETTINGS].concat(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = fake.strata(&neon, &["runs", "status", "pinned", "--json"]);
        if status.code == Some(0) && status.json()["pending"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the pinned run enqueued nothing within 60 s: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let busy = fake.strata(&neon, &["runs", "delete", "pinned"]).exits(2);
    assert!(busy.stderr.contains("cancel it first"), "a running run is not deleted: {}", busy.stderr);

    // The data changes under the run: closes of 2003 and 2007 (training and test windows) move.
    let changed = common::psql(
        &uri,
        "WITH moved AS (UPDATE ohlcv_bars SET close = close * (1 + 0.02 * (extract(doy FROM ts)::int % 5 - 2)) \
         WHERE ts >= '2003-01-01' AND ts < '2004-01-01' OR ts >= '2007-01-01' AND ts < '2008-01-01' RETURNING 1) \
         SELECT count(*) FROM moved",
    );
    assert!(changed.parse::<u64>().unwrap() > 400, "bars of two years changed: {changed}");

    // A worker process evaluates the pinned run on its snapshot.
    fake.strata(&neon, &["worker", "--exit-when-done", "pinned", "--batch", "8"]).success();
    assert_eq!(coordinator.wait(Duration::from_secs(60)), Some(0), "{}", coordinator.seen.join("\n"));
    let seen = coordinator.seen.join("\n");
    assert!(seen.contains("pinned to the Neon branch evolution-pinned (br-"), "{seen}");

    let pinned = fake.strata(&neon, &["runs", "show", "pinned", "--json"]).success().json();
    assert_eq!(pinned["status"], "completed", "{pinned}");
    assert_eq!(result(&pinned), result(&before), "the pinned run is the run on the data as it was");
    let data = &pinned["data"];
    assert_eq!(
        (data["kind"].as_str(), data["branch"].as_str()),
        (Some("snapshot"), Some("evolution-pinned")),
        "{data}"
    );
    assert!(data["branch_id"].as_str().unwrap().starts_with("br-"), "{data}");
    assert!(data["lsn"].as_str().unwrap().contains('/'), "an LSN: {data}");
    let text = fake.strata(&neon, &["runs", "show", "pinned"]).success().stdout;
    assert!(text.contains("data Neon branch evolution-pinned (br-") && text.contains(" at LSN "), "{text}");

    // After the change, an unpinned run differs: the change matters.
    let after = fake.strata(&neon, &[&["evolve", "--run-id", "after", "--workers", "1", "--json"], SETTINGS].concat());
    let after = after.success().json();
    assert_ne!(result(&after), result(&before), "the changed bars give another result");
    // The unpinned run of before is refused on the changed bars.
    let refused = fake.strata(&neon, &[&["evolve", "--run-id", "before", "--workers", "1"], SETTINGS].concat());
    let refused = refused.exits(2);
    assert!(refused.stderr.contains("changed since it was created"), "{}", refused.stderr);

    // Resuming the pinned run reads the same snapshot: nothing to do, the same result.
    let resumed = fake.strata(&neon, &["evolve", "--resume", "pinned", "--workers", "1", "--json"]).success().json();
    assert_eq!(result(&resumed), result(&before), "resumed on the snapshot");

    // Deleting the run deletes its branch; the data stays.
    let running = fake.strata(&neon, &["runs", "delete", "pinned"]).success();
    assert!(running.stdout.contains("deleted run pinned and its snapshot branch evolution-pinned"), "{running:?}");
    let branches = fake.strata(&[], &["neon", "branch", "list"]).success().stdout;
    assert!(!branches.contains("evolution-pinned"), "{branches}");
    assert_ne!(fake.strata(&neon, &["runs", "show", "pinned"]).code, Some(0), "the run is gone");
    let gone = fake.strata(&neon, &["runs", "delete", "pinned"]).exits(2);
    assert!(gone.stderr.contains("no run pinned"), "{gone:?}");
    assert!(fake.strata(&neon, &["runs", "show", "before", "--json"]).code == Some(0), "other runs stay");
}

#[test]
fn a_run_on_changed_bars_is_refused_unless_allowed() {
    let directory = tempfile::tempdir().unwrap();
    let store = directory.path().join("strata.duckdb");
    let store = store.to_str().unwrap();
    let env = [("STRATA_DUCKDB_PATH", store)];
    let strata = |arguments: &[&str]| common::strata_in(directory.path(), &env, arguments);
    strata(&["ingest", &sample_arg("sp500_daily.csv")]).success();

    let evolve = [&["evolve", "--workers", "1", "--json"], SETTINGS].concat();
    let first = strata(&evolve).success().json();
    let run = first["run"].as_str().unwrap().to_owned();
    assert_eq!(first["config"]["data"]["kind"], "digest", "{first}");
    assert!(first["config"]["data"]["digest"].as_str().unwrap().starts_with("sha256:"), "{first}");
    let shown = strata(&["runs", "show", &run]).success().stdout;
    assert!(shown.contains("bars with digest sha256:"), "{shown}");
    // The same command on the same bars is the same run, and goes on.
    assert_eq!(result(&strata(&evolve).success().json()), result(&first));

    // A bar outside the windows changes nothing the run reads.
    let outside = directory.path().join("outside.csv");
    std::fs::write(
        &outside,
        "symbol,timestamp,open,high,low,close,volume\n^GSPC,2012-06-01T00:00:00Z,1,2,0.5,1.5,10\n",
    )
    .unwrap();
    strata(&["ingest", outside.to_str().unwrap()]).success();
    strata(&evolve).success();

    // One bar inside the training window changes.
    let inside = directory.path().join("inside.csv");
    std::fs::write(
        &inside,
        "symbol,timestamp,open,high,low,close,volume\n^GSPC,2003-06-02T00:00:00Z,960,1000,950,999,10\n",
    )
    .unwrap();
    strata(&["ingest", inside.to_str().unwrap()]).success();
    for arguments in [evolve.clone(), vec!["evolve", "--resume", &run, "--workers", "1"], vec!["runs", "resume", &run]]
    {
        let refused = strata(&arguments).exits(2);
        assert!(
            refused.stderr.contains("changed since it was created") && refused.stderr.contains("--allow-data-change"),
            "{arguments:?}: {}",
            refused.stderr
        );
    }
    let allowed = strata(&[evolve.as_slice(), &["--allow-data-change"]].concat()).success();
    assert!(allowed.stderr.contains("warning: the bars of run"), "{}", allowed.stderr);
    strata(&["runs", "resume", &run, "--allow-data-change", "--workers", "1"]).success();

    // --snapshot needs a Neon branch.
    let refused = strata(&[evolve.as_slice(), &["--snapshot"]].concat()).exits(2);
    assert!(refused.stderr.contains("needs STORAGE_BACKEND=neon"), "{}", refused.stderr);

    // Deleting: the run goes, other commands then say there is none.
    let deleted = strata(&["runs", "delete", &run, "--json"]).success().json();
    assert_eq!((deleted["deleted"].as_bool(), deleted["branch"].is_null()), (Some(true), true), "{deleted}");
    assert_eq!(strata(&["runs", "list", "--json"]).success().stdout.trim(), "", "no run is left");
    strata(&["runs", "delete", &run]).exits(2);
}
