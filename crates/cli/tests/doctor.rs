//! `strata doctor` end to end, through the binary: every PostgreSQL check
//! passes against the healthy test server, and setups broken for the test
//! each fail with the expected id and cause (a wrong password on a cluster
//! that checks passwords, a port nobody listens on, a schema never
//! migrated, a cluster with a tiny `max_connections`, a session holding
//! `ACCESS EXCLUSIVE` on the bars: failed within seconds, the holder named);
//! DuckDB files (writable, locked by another process, held by a strata
//! process that serves it, in a read-only folder); an efs root on a local
//! filesystem; the Neon checks against `strata neon fake-server`, before
//! and after its compute is given the seeds' settings, with a wrong
//! project and a refused key.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Run;
use serde_json::Value;
use strata_testpg::{Cluster, ClusterOptions};

/// Neon settings a test must not inherit from the shell (the Neon checks would run for real).
const NEON_VARIABLES: [&str; 3] = ["NEON_API_KEY", "NEON_PROJECT_ID", "NEON_API_BASE_URL"];

/// `strata doctor --json arguments` with `env` and no Neon settings but those in `env`.
fn doctor(env: &[(&str, &str)], arguments: &[&str]) -> Run {
    let mut command = common::command(&[]);
    for variable in NEON_VARIABLES {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    common::run(command.args(["doctor", "--json"]).args(arguments))
}

/// The check `id` of a `--json` report.
#[track_caller]
fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|check| check["id"] == id).unwrap_or_else(|| {
        panic!("no check {id} in {report:#}");
    })
}

/// Asserts that check `id` has `status` (and, for a failure, a fix).
#[track_caller]
fn assert_status(report: &Value, id: &str, status: &str) {
    let found = check(report, id);
    assert_eq!(found["status"], status, "{id}: {found:#}");
    let has_fix = found["fix"].as_str().is_some_and(|fix| !fix.is_empty());
    assert_eq!(has_fix, status == "fail", "a fix for every failure, none otherwise: {found:#}");
    assert!(!found["finding"].as_str().unwrap_or_default().is_empty(), "{found:#}");
}

/// The ids of the PostgreSQL checks.
const PG_CHECKS: [&str; 10] = [
    "pg.reachable",
    "pg.tls",
    "pg.pooler",
    "pg.timeouts",
    "pg.version",
    "pg.timescaledb",
    "pg.max_connections",
    "pg.migrations",
    "pg.round_trip",
    "pg.clock_skew",
];

fn neon_env<'a>(url: &'a str, schema: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url), ("STRATA_PG_SCHEMA", schema)]
}

/// A throwaway cluster, or `None` (skipped) when PostgreSQL's server
/// binaries are missing and services are not required.
fn cluster(options: &ClusterOptions) -> Option<Cluster> {
    match Cluster::start(options) {
        Ok(cluster) => Some(cluster),
        Err(error) => {
            assert!(std::env::var_os("STRATA_REQUIRE_SERVICES").is_none(), "cannot start a cluster: {error}");
            eprintln!("skipped: cannot start a PostgreSQL cluster: {error}");
            None
        }
    }
}

#[test]
fn a_healthy_postgres_passes_every_check() {
    let Some(url) = common::database_url() else { return };
    let schema = common::unique_schema("doctor_ok");
    let _drop = common::DropSchema::new(&url, &schema);
    let env = neon_env(&url, &schema);
    common::strata(&env, &["migrate"]).success();
    let run = doctor(&env, &["--workers", "2"]).success();
    let report = run.json();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["workers"], 2);
    for id in PG_CHECKS {
        assert_status(&report, id, "pass");
    }
    for id in ["neon.api_key", "neon.autoscaling", "neon.suspend_timeout", "neon.branches"] {
        assert_status(&report, id, "skip");
        assert!(check(&report, id)["finding"].as_str().unwrap().contains("NEON_API_KEY"), "{report:#}");
    }
    assert_eq!(report["summary"]["fail"], 0);
    let round_trip = check(&report, "pg.round_trip");
    assert!(round_trip["facts"]["round_trip_ms"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    assert!(round_trip["finding"].as_str().unwrap().contains(&format!("{schema}.ohlcv_bars")), "{round_trip:#}");
    let migrations = check(&report, "pg.migrations");
    assert_eq!(migrations["facts"]["version"], migrations["facts"]["latest"]);
    let skew: f64 = check(&report, "pg.clock_skew")["facts"]["skew_ms"].as_str().unwrap().parse().unwrap();
    assert!(skew.abs() < 1000.0, "the same machine's clock: {skew} ms");
    let connections = &check(&report, "pg.max_connections")["facts"];
    assert_eq!(connections["workers"], "2");
    assert!(connections["free"].as_str().unwrap().parse::<i64>().unwrap() >= 21, "{connections}");
    // Nothing of the round trip is left behind.
    let left = common::psql(&url, &format!("SELECT count(*) FROM {schema}.strata_meta WHERE key LIKE 'doctor:%'"));
    assert_eq!(left, "0");

    // The table for people: a line per check and the summary.
    let mut command = common::command(&env);
    for variable in NEON_VARIABLES {
        command.env_remove(variable);
    }
    let text = common::run(command.args(["doctor", "--workers", "2"])).success().stdout;
    for id in PG_CHECKS {
        assert!(text.lines().any(|line| line.starts_with("pass") && line.contains(id)), "{id}:\n{text}");
    }
    assert!(text.trim_end().ends_with("no issues found: 10 passed, 4 skipped"), "{text}");
}

#[test]
fn a_wrong_password_fails_reachable_with_its_cause() {
    let Some(cluster) = cluster(&ClusterOptions { no_fsync: true, ..ClusterOptions::default() }) else { return };
    cluster
        .psql("postgres", "SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD 'right'")
        .unwrap();
    let rules = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
    std::fs::write(cluster.dir().join("data/pg_hba.conf"), rules).unwrap();
    cluster.psql("postgres", "SELECT pg_reload_conf()").unwrap();
    let url = format!("postgres://postgres:wrong@127.0.0.1:{}/postgres", cluster.port());
    // The reload is asynchronous: wait until the wrong password is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let run = doctor(&neon_env(&url, "public"), &[]);
        let report = run.json();
        if check(&report, "pg.reachable")["status"] == "fail" {
            assert_eq!(run.code, Some(1), "{}", run.stdout);
            break report;
        }
        assert!(Instant::now() < deadline, "the cluster still accepts any password: {report:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let reachable = check(&report, "pg.reachable");
    assert_status(&report, "pg.reachable", "fail");
    assert_eq!(reachable["severity"], "critical");
    assert_eq!(reachable["facts"]["cause"], "authentication", "{reachable:#}");
    assert!(reachable["finding"].as_str().unwrap().contains("password authentication failed"), "{reachable:#}");
    assert!(reachable["fix"].as_str().unwrap().contains("password in DATABASE_URL"), "{reachable:#}");
    assert!(!report.to_string().contains("wrong@"), "the password is never printed: {report}");
    for id in &PG_CHECKS[1..] {
        assert_status(&report, id, "skip");
    }
}

#[test]
fn a_port_nobody_listens_on_is_refused_at_once() {
    let port = strata_testpg::free_port().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let started = Instant::now();
    let run = doctor(&neon_env(&url, "public"), &[]).exits(1);
    assert!(started.elapsed() < Duration::from_secs(10), "no retrying of a refused local port");
    let report = run.json();
    assert_eq!(report["ok"], false);
    let reachable = check(&report, "pg.reachable");
    assert_status(&report, "pg.reachable", "fail");
    assert_eq!(reachable["facts"]["cause"], "refused", "{reachable:#}");
    assert!(reachable["finding"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{reachable:#}");
    assert!(reachable["fix"].as_str().unwrap().starts_with("start PostgreSQL"), "{reachable:#}");
    // A huge --timeout is capped, not an overflow.
    let report = doctor(&neon_env(&url, "public"), &["--timeout", "1e15"]).exits(1).json();
    assert_eq!(check(&report, "pg.reachable")["facts"]["cause"], "refused", "{report:#}");
    // Without DATABASE_URL the same check says what to set.
    let report = doctor(&[("STORAGE_BACKEND", "neon")], &[]).exits(1).json();
    assert_eq!(check(&report, "pg.reachable")["facts"]["cause"], "configuration", "{report:#}");
    assert!(check(&report, "pg.reachable")["fix"].as_str().unwrap().contains("DATABASE_URL"));
}

#[test]
fn a_schema_never_migrated_fails_migrations() {
    let Some(url) = common::database_url() else { return };
    let schema = common::unique_schema("doctor_fresh");
    let _drop = common::DropSchema::new(&url, &schema);
    common::psql(&url, &format!("CREATE SCHEMA {schema}"));
    let mut env = neon_env(&url, &schema);
    env.push(("STRATA_PG_MIGRATE", "false"));
    let report = doctor(&env, &[]).exits(1).json();
    assert_status(&report, "pg.migrations", "fail");
    let migrations = check(&report, "pg.migrations");
    assert_eq!(migrations["severity"], "critical");
    assert!(migrations["fix"].as_str().unwrap().contains("strata migrate"), "{migrations:#}");
    assert_eq!(migrations["facts"]["version"], "0");
    // The rest still runs: the round trip uses a temporary table.
    for id in ["pg.reachable", "pg.version", "pg.timescaledb", "pg.round_trip", "pg.clock_skew"] {
        assert_status(&report, id, "pass");
    }
    assert!(check(&report, "pg.round_trip")["finding"].as_str().unwrap().contains("temporary"));
    let tables = common::psql(&url, &format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"));
    assert_eq!(tables, "0", "the doctor migrates nothing");
}

#[test]
fn a_tiny_max_connections_fails_for_the_planned_workers() {
    let settings = vec![
        ("max_connections".to_string(), "8".to_string()),
        ("superuser_reserved_connections".to_string(), "2".to_string()),
    ];
    let options = ClusterOptions { no_fsync: true, settings, ..ClusterOptions::default() };
    let Some(cluster) = cluster(&options) else { return };
    let url = cluster.url();
    let env = neon_env(&url, "public");
    let report = doctor(&env, &["--workers", "16"]).exits(1).json();
    assert_status(&report, "pg.max_connections", "fail");
    let connections = check(&report, "pg.max_connections");
    assert_eq!(connections["severity"], "critical");
    assert_eq!(connections["facts"]["max_connections"], "8");
    assert!(connections["finding"].as_str().unwrap().contains("16 workers"), "{connections:#}");
    assert!(connections["fix"].as_str().unwrap().contains("max_connections"), "{connections:#}");
    // One worker fits in the slots, but not with pools of ten: a warning, exit 0 once migrated.
    common::strata(&env, &["migrate"]).success();
    let report = doctor(&env, &["--workers", "1"]).success().json();
    let connections = check(&report, "pg.max_connections");
    assert_eq!((&connections["status"], &connections["severity"]), (&Value::from("fail"), &Value::from("warning")));
    assert!(connections["fix"].as_str().unwrap().contains("STRATA_PG_MAX_CONNECTIONS="), "{connections:#}");
}

/// A `psql` session that ran `sql` and keeps its transaction open until killed.
struct Session(Child);

impl Session {
    fn hold(url: &str, sql: &str) -> Session {
        let mut child = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        writeln!(child.stdin.as_mut().unwrap(), "{sql}").unwrap();
        child.stdin.as_mut().unwrap().flush().unwrap();
        Session(child)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_held_lock_fails_the_round_trip_quickly_and_names_the_holder() {
    let Some(url) = common::database_url() else { return };
    let schema = common::unique_schema("doctor_lock");
    let _drop = common::DropSchema::new(&url, &schema);
    let env = neon_env(&url, &schema);
    common::strata(&env, &["migrate"]).success();
    let holder = Session::hold(&url, &format!("BEGIN; LOCK TABLE {schema}.ohlcv_bars IN ACCESS EXCLUSIVE MODE;"));
    let held = format!(
        "SELECT count(*) FROM pg_locks WHERE relation = to_regclass('{schema}.ohlcv_bars') \
         AND mode = 'AccessExclusiveLock' AND granted"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::psql(&url, &held) != "1" {
        assert!(Instant::now() < deadline, "psql never took the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let run = doctor(&env, &[]).exits(1);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(20), "the doctor waited {elapsed:?} on a held lock");
    let report = run.json();
    assert_status(&report, "pg.round_trip", "fail");
    let round_trip = check(&report, "pg.round_trip");
    assert_eq!(round_trip["severity"], "critical");
    assert_eq!(round_trip["facts"]["cause"], "lock");
    let finding = round_trip["finding"].as_str().unwrap();
    assert!(finding.contains(&format!("{schema}.ohlcv_bars")), "{finding}");
    assert!(finding.contains("psql") && finding.contains("AccessExclusiveLock"), "{finding}");
    assert!(round_trip["fix"].as_str().unwrap().contains("pg_terminate_backend"), "{round_trip:#}");
    // Every other check answered.
    for id in ["pg.reachable", "pg.migrations", "pg.timescaledb", "pg.max_connections", "pg.clock_skew"] {
        assert_status(&report, id, "pass");
    }
    drop(holder);
}

/// `STORAGE_BACKEND=duckdb` with the file `path`.
fn duckdb_env(path: &Path) -> Vec<(&'static str, String)> {
    vec![("STORAGE_BACKEND", "duckdb".to_string()), ("STRATA_DUCKDB_PATH", path.to_str().unwrap().to_string())]
}

fn doctor_duckdb(path: &Path, arguments: &[&str]) -> Run {
    let env = duckdb_env(path);
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    doctor(&env, arguments)
}

fn make_store(path: &Path) {
    let env = duckdb_env(path);
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    common::strata(&env, &["generate", "--symbols", "1", "--bars", "10", "--ingest"]).success();
}

/// Spawns `program` and waits until it prints a line (its "ready").
fn spawn_until_ready(command: &mut std::process::Command) -> Child {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "the helper process printed nothing");
    child
}

#[test]
fn a_writable_duckdb_file_passes_and_a_locked_one_names_its_holder() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("strata.duckdb");
    // No store yet: it can be created.
    let report = doctor_duckdb(&path, &[]).success().json();
    assert_status(&report, "duckdb.writable", "pass");
    assert_status(&report, "duckdb.unlocked", "skip");
    assert!(!path.exists(), "the doctor creates nothing");
    make_store(&path);
    let report = doctor_duckdb(&path, &[]).success().json();
    assert_eq!(report["ok"], true);
    assert_status(&report, "duckdb.writable", "pass");
    assert_status(&report, "duckdb.unlocked", "pass");

    // Another program holds DuckDB's lock (a POSIX record lock, as DuckDB takes it).
    let python = std::env::var("STRATA_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = "import fcntl, sys, time\nf = open(sys.argv[1], 'r+b')\nfcntl.lockf(f, fcntl.LOCK_EX)\n\
                  print('held', flush=True)\ntime.sleep(600)\n";
    let mut holder =
        spawn_until_ready(std::process::Command::new(python).args(["-c", script]).arg(&path).stdin(Stdio::null()));
    let run = doctor_duckdb(&path, &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    let report = run.exits(1).json();
    assert_status(&report, "duckdb.unlocked", "fail");
    let unlocked = check(&report, "duckdb.unlocked");
    assert_eq!(unlocked["severity"], "critical");
    assert_eq!(unlocked["facts"]["holder_pid"], holder.id().to_string(), "{unlocked:#}");
    assert!(unlocked["fix"].as_str().unwrap().contains(&format!("stop process {}", holder.id())), "{unlocked:#}");
    // Let go, the file is free again.
    doctor_duckdb(&path, &[]).success();
}

#[test]
fn a_duckdb_file_held_by_a_serving_strata_process_is_a_warning() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("held.duckdb");
    make_store(&path);
    let env = duckdb_env(&path);
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let mut worker = common::command(&env)
        .args(["worker", "--exit-when-idle", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = directory.path().join("held.duckdb.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the worker never served the file");
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = doctor_duckdb(&path, &[]);
    let _ = worker.kill();
    let _ = worker.wait();
    let report = run.success().json();
    let unlocked = check(&report, "duckdb.unlocked");
    assert_eq!((&unlocked["status"], &unlocked["severity"]), (&Value::from("fail"), &Value::from("warning")));
    assert_eq!(unlocked["facts"]["served"], "true", "{unlocked:#}");
    assert!(unlocked["finding"].as_str().unwrap().contains("held.duckdb.sock"), "{unlocked:#}");
}

#[test]
fn a_duckdb_store_in_a_read_only_folder_fails_writable() {
    use std::os::unix::fs::PermissionsExt as _;
    let directory = tempfile::tempdir().unwrap();
    let folder = directory.path().join("store");
    std::fs::create_dir(&folder).unwrap();
    let path = folder.join("strata.duckdb");
    make_store(&path);
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    let existing = doctor_duckdb(&path, &[]);
    let missing = doctor_duckdb(&folder.join("new.duckdb"), &[]);
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = existing.exits(1).json();
    assert_status(&report, "duckdb.writable", "fail");
    let writable = check(&report, "duckdb.writable");
    assert!(writable["finding"].as_str().unwrap().contains("write-ahead log"), "{writable:#}");
    assert!(writable["fix"].as_str().unwrap().contains("chmod u+w"), "{writable:#}");
    let report = missing.exits(1).json();
    assert_status(&report, "duckdb.writable", "fail");
    assert!(check(&report, "duckdb.writable")["finding"].as_str().unwrap().contains("read-only"), "{report:#}");
}

#[test]
fn an_efs_root_on_a_local_disk_is_reported_from_the_mount_table() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().join("bars");
    std::fs::create_dir(&root).unwrap();
    let cache = directory.path().join("state.duckdb");
    let env = [
        ("STORAGE_BACKEND", "efs"),
        ("STRATA_EFS_ROOT", root.to_str().unwrap()),
        ("STRATA_DUCKDB_PATH", cache.to_str().unwrap()),
    ];
    let report = doctor(&env, &[]).success().json();
    let mount = check(&report, "efs.mount");
    // What the mount table says holds the root: the longest mount point above it.
    let resolved = root.canonicalize().unwrap();
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let expected = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() > 3 && resolved.starts_with(fields[1].replace("\\040", " "))).then(|| (fields[1], fields[2]))
        })
        .max_by_key(|(point, _)| Path::new(point).components().count())
        .unwrap();
    assert_eq!(mount["facts"]["mount_point"], expected.0, "{mount:#}");
    assert_eq!(mount["facts"]["fs_type"], expected.1, "{mount:#}");
    if expected.1.starts_with("nfs") {
        eprintln!("the temporary directory is on NFS: the local-disk case is not exercised here");
    } else {
        assert_status(&report, "efs.mount", "fail");
        assert_eq!(mount["severity"], "warning");
        assert!(mount["finding"].as_str().unwrap().contains("not NFS"), "{mount:#}");
        assert!(mount["fix"].as_str().unwrap().contains("nfs4"), "{mount:#}");
    }
    assert_status(&report, "efs.publish", "pass");
    assert_status(&report, "duckdb.writable", "pass");
    let left: Vec<_> = std::fs::read_dir(root.join("_strata/staging")).unwrap().collect();
    assert!(left.is_empty(), "the publish round trip leaves nothing: {left:?}");
}

/// The Neon checks against the fake server.
#[cfg(feature = "neon-api")]
mod neon {
    use std::io::Read as _;
    use std::net::{SocketAddr, TcpListener};

    use super::*;

    /// The `export NAME=value` value of the fake's `name`.
    fn fake_value<'a>(fake: &'a common::FakeNeon, name: &str) -> &'a str {
        &fake.environment.iter().find(|(key, _)| key == name).unwrap().1
    }

    /// One HTTP/1.1 request with a JSON body: the status and the body.
    fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer fake\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        (status, response.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_string()))
    }

    #[test]
    fn the_neon_checks_hold_the_project_against_the_seeds() {
        let fake = common::FakeNeon::start(&["--seed-project", "doctor"]);
        let base_url = fake_value(&fake, "NEON_API_BASE_URL").to_string();
        let project = fake_value(&fake, "NEON_PROJECT_ID").to_string();
        let memory = [("STORAGE_BACKEND", "memory")];
        let run_doctor = |env: &[(&str, &str)]| {
            let mut command = common::command(&memory);
            for (name, value) in &fake.environment {
                command.env(name, value);
            }
            command.envs(env.iter().copied());
            common::run(command.args(["doctor", "--json", "--workers", "8"]))
        };
        // The seeded compute: 0.25 CU, Neon's default suspend: warnings, exit 0.
        let report = run_doctor(&[]).success().json();
        assert_status(&report, "memory.volatile", "pass");
        assert_status(&report, "neon.api_key", "pass");
        assert!(check(&report, "neon.api_key")["finding"].as_str().unwrap().contains("doctor"), "{report:#}");
        for id in ["neon.autoscaling", "neon.suspend_timeout"] {
            assert_status(&report, id, "fail");
            assert_eq!(check(&report, id)["severity"], "warning");
        }
        let autoscaling = check(&report, "neon.autoscaling");
        assert!(autoscaling["finding"].as_str().unwrap().contains("0.25-0.25 CU"), "{autoscaling:#}");
        assert!(autoscaling["fix"].as_str().unwrap().contains("--min-cu 2 --max-cu 8"), "{autoscaling:#}");
        assert!(check(&report, "neon.suspend_timeout")["fix"].as_str().unwrap().contains("--suspend-timeout -1"));
        assert_status(&report, "neon.branches", "pass");
        let branches = &check(&report, "neon.branches")["facts"];
        assert_eq!((&branches["branches"], &branches["limit"]), (&Value::from("1"), &Value::from("5000")));

        // The compute given the seeds' settings: every Neon check passes.
        let address: SocketAddr = base_url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
        let prefix = format!("/{}", base_url.trim_start_matches("http://").split_once('/').unwrap().1);
        let (status, body) = request(address, "GET", &format!("{prefix}/projects/{project}/endpoints"), "");
        assert_eq!(status, 200, "{body}");
        let endpoints: Value = serde_json::from_str(&body).unwrap();
        let endpoint = endpoints["endpoints"][0]["id"].as_str().unwrap();
        let settings =
            r#"{"endpoint":{"autoscaling_limit_min_cu":2,"autoscaling_limit_max_cu":8,"suspend_timeout_seconds":-1}}"#;
        let (status, body) =
            request(address, "PATCH", &format!("{prefix}/projects/{project}/endpoints/{endpoint}"), settings);
        assert_eq!(status, 200, "{body}");
        let report = run_doctor(&[]).success().json();
        for id in ["neon.api_key", "neon.autoscaling", "neon.suspend_timeout", "neon.branches"] {
            assert_status(&report, id, "pass");
        }
        assert!(check(&report, "neon.suspend_timeout")["finding"].as_str().unwrap().contains("never suspends"));

        // A project the key does not see: critical, the rest skipped.
        let report = run_doctor(&[("NEON_PROJECT_ID", "no-such-project")]).exits(1).json();
        assert_status(&report, "neon.api_key", "fail");
        assert_eq!(check(&report, "neon.api_key")["facts"]["cause"], "project");
        assert_status(&report, "neon.autoscaling", "skip");

        // A refused key.
        let refusing = refusing_api();
        let report = run_doctor(&[("NEON_API_BASE_URL", &refusing), ("NEON_API_KEY", "napi_revoked")]).exits(1).json();
        let key = check(&report, "neon.api_key");
        assert_eq!(
            (&key["status"], &key["facts"]["cause"]),
            (&Value::from("fail"), &Value::from("refused")),
            "{key:#}"
        );
        assert!(key["fix"].as_str().unwrap().contains("NEON_API_KEY"), "{key:#}");
        assert!(!report.to_string().contains("napi_revoked"), "the key is never printed");
    }

    /// A server that answers every request with the API's 401; its base URL.
    fn refusing_api() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                    line.clear();
                }
                let body = r#"{"code":"","message":"authentication failed"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{address}/api/v2")
    }
}
