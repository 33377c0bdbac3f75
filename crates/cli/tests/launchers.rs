//! The launchers of `examples/`: the Kubernetes manifests are parsed (with
//! PyYAML, from the `STRATA_PYTHON` interpreter) and checked for every field a
//! launch depends on, their KEDA query run against a schema `strata migrate`
//! made; the Ray launcher finishes a run on a local Ray cluster with one
//! `strata worker` SIGKILLed mid-lease, and the run ends with the population
//! hashes of a single-process run.
//!
//! A missing `STRATA_PYTHON`, PyYAML or Ray skips a test with the reason, and
//! fails it under `STRATA_REQUIRE_SERVICES=1` (as `cargo xtask test` sets;
//! `.ci/run` installs both from `.ci/requirements-ray.txt`). Without
//! `DATABASE_URL` the manifests are still checked, the query is not run.
#![cfg(feature = "neon")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::DropSchema;

/// `examples/` of the repository.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Whether a missing prerequisite must fail the test instead of skipping it.
fn services_required() -> bool {
    std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|value| value == "1")
}

/// `STRATA_PYTHON` when it imports `module`; `None` after saying why (a
/// failure instead under `STRATA_REQUIRE_SERVICES=1`).
fn python_with(test: &str, module: &str) -> Option<PathBuf> {
    let python = strata_tests::python(test)?;
    let probe = Command::new(&python).args(["-c", &format!("import {module}")]).output();
    let reason = match probe {
        Ok(output) if output.status.success() => return Some(python),
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            format!("`import {module}` failed: {}", stderr.trim().lines().last().unwrap_or(""))
        }
        Err(error) => format!("cannot run {}: {error}", python.display()),
    };
    let message = format!(
        "{test}: STRATA_PYTHON={} has no usable `{module}` ({reason}); \
         install .ci/requirements-ray.txt into it (.ci/run does)",
        python.display()
    );
    assert!(!services_required(), "{message}");
    eprintln!("{message}: skipped");
    None
}

/// Runs `sql` with psql in `schema` (through `search_path`, so unqualified
/// table names are Strata's); stdout trimmed, or the error.
fn psql_in(url: &str, schema: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .output()
        .map_err(|error| format!("psql: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

/// One YAML document and the file it came from.
struct Document {
    file: String,
    value: Value,
}

impl Document {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// Every document of every YAML file under `directory`, parsed by PyYAML.
fn yaml_documents(python: &Path, directory: &Path) -> Vec<Document> {
    const LOAD: &str = r#"
import json, os, sys, yaml
found = {}
for base, _, names in os.walk(sys.argv[1]):
    for name in sorted(names):
        if name.endswith((".yaml", ".yml")):
            path = os.path.join(base, name)
            with open(path) as stream:
                found[os.path.relpath(path, sys.argv[1])] = [d for d in yaml.safe_load_all(stream) if d is not None]
json.dump(found, sys.stdout)
"#;
    let output = Command::new(python).args(["-c", LOAD]).arg(directory).output().expect("python runs");
    assert!(
        output.status.success(),
        "PyYAML could not load {}: {}",
        directory.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let files: serde_json::Map<String, Value> = serde_json::from_slice(&output.stdout).expect("JSON from the loader");
    let mut documents = Vec::new();
    for (file, values) in files {
        for value in values.as_array().cloned().unwrap_or_default() {
            documents.push(Document { file: file.clone(), value });
        }
    }
    documents
}

/// The `--grace` value of a container's command line.
fn grace_of(argv: &[String]) -> Option<f64> {
    let at = argv.iter().position(|word| word == "--grace")?;
    argv.get(at + 1)?.parse().ok()
}

/// `command` followed by `args` of a container.
fn argv_of(container: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .flat_map(|key| container[*key].as_array().cloned().unwrap_or_default())
        .map(|word| word.as_str().map_or_else(|| word.to_string(), str::to_string))
        .collect()
}

/// The `env` entry `name` of a container.
fn env_entry<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"].as_array()?.iter().find(|entry| entry["name"] == name)
}

/// Checks the pod template of a workload running `strata worker`: the
/// worker's command, its environment, its CPU request and a termination grace
/// longer than the worker's own. Returns the (Secret name, key) DATABASE_URL
/// comes from.
fn check_worker_pod(document: &Document) -> (String, String) {
    let context = format!("{} {} in {}", document.kind(), document.name(), document.file);
    let pod = &document.value["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap_or_else(|| panic!("{context}: no containers"));
    let worker = containers
        .iter()
        .find(|container| argv_of(container).iter().any(|word| word == "worker"))
        .unwrap_or_else(|| panic!("{context}: no container runs `strata worker`"));
    let argv = argv_of(worker);
    assert!(argv.first().is_some_and(|program| program.ends_with("strata")), "{context}: runs {argv:?}");
    for word in &argv {
        if let Some(variable) = word.strip_prefix("$(").and_then(|rest| rest.strip_suffix(')')) {
            assert!(env_entry(worker, variable).is_some(), "{context}: {word} is not defined in the container's env");
        }
    }
    let grace = grace_of(&argv).unwrap_or_else(|| panic!("{context}: the worker gets no --grace: {argv:?}"));
    let termination = pod["terminationGracePeriodSeconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{context}: terminationGracePeriodSeconds is not set"));
    assert!(
        termination > grace,
        "{context}: terminationGracePeriodSeconds {termination} must exceed the worker's --grace {grace}, \
         or SIGKILL comes before the worker has handed back its leases"
    );
    let backend = env_entry(worker, "STORAGE_BACKEND").unwrap_or_else(|| panic!("{context}: no STORAGE_BACKEND"));
    assert_eq!(backend["value"], "neon", "{context}: STORAGE_BACKEND");
    let database = env_entry(worker, "DATABASE_URL").unwrap_or_else(|| panic!("{context}: no DATABASE_URL"));
    assert!(
        database.get("value").is_none(),
        "{context}: DATABASE_URL is written in the manifest, not read from a Secret"
    );
    let reference = &database["valueFrom"]["secretKeyRef"];
    let (secret, key) = (reference["name"].as_str(), reference["key"].as_str());
    let (Some(secret), Some(key)) = (secret, key) else {
        panic!("{context}: DATABASE_URL must come from valueFrom.secretKeyRef (name and key): {database}")
    };
    let cpu = &worker["resources"]["requests"]["cpu"];
    assert!(cpu == "1" || cpu.as_f64() == Some(1.0), "{context}: requests.cpu is {cpu}, expected 1");
    (secret.to_string(), key.to_string())
}

#[test]
fn k8s_manifests_have_what_the_launch_depends_on() {
    let test = "k8s_manifests_have_what_the_launch_depends_on";
    let Some(python) = python_with(test, "yaml") else { return };
    let documents = yaml_documents(&python, &examples().join("k8s"));
    let of_kind = |kind: &str| documents.iter().filter(|document| document.kind() == kind).collect::<Vec<_>>();

    // The Job in work-queue mode.
    let jobs = of_kind("Job");
    assert_eq!(jobs.len(), 1, "one Job under examples/k8s");
    let job = jobs[0];
    assert_eq!(job.value["apiVersion"], "batch/v1", "{}", job.file);
    let spec = &job.value["spec"];
    assert!(spec["parallelism"].as_u64().is_some_and(|n| n >= 1), "{}: parallelism must be set: {spec}", job.file);
    assert!(spec.get("completions").is_none(), "{}: work-queue mode leaves completions unset", job.file);
    let restart = spec["template"]["spec"]["restartPolicy"].as_str().unwrap_or("");
    assert!(restart == "OnFailure" || restart == "Never", "{}: restartPolicy {restart:?}", job.file);
    if restart == "Never" {
        assert!(spec["backoffLimit"].is_u64(), "{}: restartPolicy Never needs a backoffLimit", job.file);
    }
    let job_worker = spec["template"]["spec"]["containers"]
        .as_array()
        .and_then(|containers| containers.iter().find(|c| argv_of(c).iter().any(|word| word == "worker")))
        .map(argv_of)
        .unwrap_or_default();
    assert!(
        job_worker.iter().any(|word| word == "--exit-when-done"),
        "{}: each pod must exit 0 only when the whole run is done (--exit-when-done): {job_worker:?}",
        job.file
    );
    let job_secret = check_worker_pod(job);

    // The KEDA pool: the Deployment it scales, its trigger and its connection.
    let scaled = of_kind("ScaledObject");
    assert_eq!(scaled.len(), 1, "one ScaledObject under examples/k8s");
    let scaled = scaled[0];
    assert!(scaled.value["apiVersion"].as_str().is_some_and(|v| v.starts_with("keda.sh/")), "{}", scaled.file);
    let target = scaled.value["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("");
    let deployment = documents
        .iter()
        .find(|document| document.kind() == "Deployment" && document.name() == target)
        .unwrap_or_else(|| panic!("{}: scaleTargetRef {target:?} is not a Deployment of examples/k8s", scaled.file));
    let pool_secret = check_worker_pod(deployment);
    assert_eq!(pool_secret, job_secret, "the Job and the pool read DATABASE_URL from the same Secret");
    let triggers = scaled.value["spec"]["triggers"].as_array().cloned().unwrap_or_default();
    let trigger = triggers
        .iter()
        .find(|trigger| trigger["type"] == "postgresql")
        .unwrap_or_else(|| panic!("{}: no postgresql trigger: {triggers:?}", scaled.file));
    let metadata = &trigger["metadata"];
    let query = metadata["query"].as_str().unwrap_or_else(|| panic!("{}: the trigger has no query", scaled.file));
    let target_value: f64 = metadata["targetQueryValue"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    assert!(target_value > 0.0, "{}: targetQueryValue must be a positive number (a string)", scaled.file);
    if let Some(variable) = metadata["connectionFromEnv"].as_str() {
        assert_eq!(variable, "DATABASE_URL", "{}: connectionFromEnv names the workers' variable", scaled.file);
    } else {
        let name = trigger["authenticationRef"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the trigger needs connectionFromEnv or an authenticationRef", scaled.file));
        let authentication = documents
            .iter()
            .find(|document| document.kind() == "TriggerAuthentication" && document.name() == name)
            .unwrap_or_else(|| panic!("no TriggerAuthentication {name:?} under examples/k8s"));
        let references = authentication.value["spec"]["secretTargetRef"].as_array().cloned().unwrap_or_default();
        let connection = references
            .iter()
            .find(|reference| reference["parameter"] == "connection")
            .unwrap_or_else(|| panic!("{}: no secretTargetRef for the `connection` parameter", authentication.file));
        assert_eq!(
            (connection["name"].as_str().unwrap_or(""), connection["key"].as_str().unwrap_or("")),
            (job_secret.0.as_str(), job_secret.1.as_str()),
            "{}: the scaler reads the workers' Secret",
            authentication.file
        );
    }

    // The example Secret is the one the workloads read.
    let secret = documents
        .iter()
        .find(|document| document.kind() == "Secret" && document.name() == job_secret.0)
        .unwrap_or_else(|| panic!("no example Secret named {:?} under examples/k8s", job_secret.0));
    let has_key = ["stringData", "data"].iter().any(|field| secret.value[*field].get(&job_secret.1).is_some());
    assert!(has_key, "{}: no {} key", secret.file, job_secret.1);
    eprintln!(
        "{test}: {} documents; Job parallelism {}, pool {target}, query {query:?}",
        documents.len(),
        spec["parallelism"]
    );

    // The query runs against Strata's real schema and returns one integer.
    let Some(url) = common::database_url() else { return };
    let schema = common::unique_schema("k8s_keda");
    let _drop = DropSchema::new(&url, &schema);
    let env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];
    common::strata(&env, &["migrate"]).success();
    let count = |label: &str| -> i64 {
        let output = psql_in(&url, &schema, query).unwrap_or_else(|error| panic!("{label}: the query fails: {error}"));
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 1, "{label}: one row of one column expected, got {output:?}");
        lines[0].parse().unwrap_or_else(|_| panic!("{label}: not an integer: {output:?}"))
    };
    assert_eq!(count("a new schema"), 0, "nothing is open in a new schema");
    // Two open evaluations and one leased of a running run count; done ones
    // and those of a cancelled run do not.
    let fixture = "
        INSERT INTO runs (id, strategy, seed, population_size, generations, config, status) VALUES
            ('going', 'donchian', 1, 4, 1, '{}', 'running'),
            ('stopped', 'donchian', 1, 4, 1, '{}', 'cancelled');
        INSERT INTO tasks (run_id, generation, individual, payload, state, max_attempts) VALUES
            ('going', 0, 0, '{}', 'pending', 3), ('going', 0, 1, '{}', 'pending', 3),
            ('going', 0, 2, '{}', 'leased', 3), ('going', 0, 3, '{}', 'done', 3),
            ('stopped', 0, 0, '{}', 'pending', 3);";
    psql_in(&url, &schema, fixture).unwrap_or_else(|error| panic!("inserting the fixture: {error}"));
    assert_eq!(count("two pending and one leased of a running run"), 3);
}

// ---------------------------------------------------------------------------
// Ray
// ---------------------------------------------------------------------------

/// A child process stopped when the test ends, whatever happened: SIGTERM
/// first (the Ray launcher then stops its local cluster), SIGKILL after
/// `patience`.
struct Guard {
    child: Child,
    name: &'static str,
    patience: Duration,
}

impl Guard {
    fn new(child: Child, name: &'static str, patience: Duration) -> Self {
        Guard { child, name, patience }
    }

    /// Waits up to `limit` for the exit code.
    fn wait_for(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.running() {
            eprintln!("stopping the {} (pid {})", self.name, self.child.id());
            signal("-TERM", self.child.id());
            if self.wait_for(self.patience).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// `kill SIGNAL pid`; whether it was delivered.
fn signal(name: &str, pid: u32) -> bool {
    Command::new("kill").args([name, &pid.to_string()]).status().is_ok_and(|status| status.success())
}

/// Pids of the processes whose command line matches `pattern` (`pgrep -f`).
fn pgrep(pattern: &str) -> Vec<u32> {
    let output = Command::new("pgrep").args(["-f", pattern]).output().expect("pgrep runs");
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|line| line.trim().parse().ok()).collect()
}

/// `url` with `password` added when it has a user and no password, and the
/// password added, if any.
fn with_password(url: &str, password: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), None) };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user, host)) if !user.contains(':') => {
            let tail = &rest[authority_end..];
            (format!("{scheme}://{user}:{password}@{host}{tail}"), Some(password.to_string()))
        }
        _ => (url.to_string(), None),
    }
}

/// `N` from `key N` in the launcher's summary line.
fn summary_count(summary: &str, key: &str) -> Option<u64> {
    summary.split([',', ';']).find_map(|part| part.trim().strip_prefix(key)?.trim().parse().ok())
}

/// The per-generation population hashes of `run` (`strata runs show RUN --json`).
fn population_hashes(env: &[(&str, &str)], run: &str) -> Vec<String> {
    let shown = common::strata(env, &["runs", "show", run, "--json"]).success().json();
    assert_eq!(shown["status"], "completed", "{run}: {shown}");
    shown["population_hashes"].as_array().unwrap().iter().map(|hash| hash.as_str().unwrap().to_string()).collect()
}

#[test]
fn ray_launcher_finishes_a_run_with_one_worker_killed() {
    let test = "ray_launcher_finishes_a_run_with_one_worker_killed";
    let Some(url) = common::database_url() else { return };
    let Some(python) = python_with(test, "ray") else { return };
    let started = Instant::now();
    let schema = common::unique_schema("ray_launch");
    let _drop = DropSchema::new(&url, &schema);
    // A password the launcher and the workers must never print (a server that
    // takes the URL without one ignores it).
    let (url, password) = with_password(&url, "launcher-must-mask-this");
    let env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", schema.as_str())];
    // Minute bars: each backtest takes milliseconds, so the workers hold
    // leases most of the time and one is always caught holding some before
    // the run ends (with daily bars a loaded machine could finish the run
    // between two looks).
    let generated = ["generate", "--symbols", "3", "--bars", "100000", "--interval", "1m", "--seed", "7", "--ingest"];
    common::strata(&env, &generated).success();

    // The run id is the marker that finds this test's worker processes.
    let run = format!("raylaunch-{}", std::process::id());
    let reference = format!("{run}-one-process");
    let evolve = |id: &str, workers: &str| -> Vec<String> {
        [
            "evolve",
            "--strategy",
            "ma-crossover",
            "--symbols",
            "SYN000",
            "SYN001",
            "SYN002",
            "--population",
            "96",
            "--generations",
            "4",
            "--seed",
            "42",
            "--run-id",
            id,
            "--workers",
            workers,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let scratch = tempfile::tempdir().unwrap();
    let file = |name: &str| std::fs::File::create(scratch.path().join(name)).unwrap();
    let read = |name: &str| std::fs::read_to_string(scratch.path().join(name)).unwrap_or_default();

    let coordinator = common::command(&env)
        .args(evolve(&run, "0"))
        .stdout(file("coordinator.out"))
        .stderr(file("coordinator.err"))
        .spawn()
        .expect("starting the coordinator");
    let mut coordinator = Guard::new(coordinator, "coordinator", Duration::from_secs(10));

    let mut launcher = Command::new(&python);
    for variable in common::STORAGE_VARIABLES {
        launcher.env_remove(variable);
    }
    // The test's own settings are none of the workers' business (the launcher passes STRATA_* on).
    for variable in ["RAY_ADDRESS", "STRATA_PYTHON", "STRATA_TEST_BIN", "STRATA_REQUIRE_SERVICES"] {
        launcher.env_remove(variable);
    }
    launcher
        .envs(env)
        .env("RUST_LOG", "warn")
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .arg(examples().join("ray/launch_workers.py"))
        .args(["--run", &run, "--workers", "3", "--grace", "5", "--max-retries", "2", "--strata"])
        .arg(common::executable())
        .args(["--", "--ttl", "4"])
        .stdout(file("launcher.out"))
        .stderr(file("launcher.err"));
    let launcher = launcher.spawn().expect("starting the Ray launcher");
    let mut launcher = Guard::new(launcher, "Ray launcher", Duration::from_secs(40));
    let outputs = || {
        format!(
            "--- launcher stdout\n{}\n--- launcher stderr\n{}\n--- coordinator stdout\n{}\n--- coordinator stderr\n{}",
            read("launcher.out"),
            read("launcher.err"),
            read("coordinator.out"),
            read("coordinator.err")
        )
    };

    // Catch a worker holding leases of the run, freeze it (SIGSTOP) so it
    // cannot complete them, check again, then SIGKILL it: Ray must run its
    // task again, and its leases come back after their TTL.
    let marker = format!("worker --exit-when-done {run} ");
    let holding = |pid: u32| -> u64 {
        let sql = format!(
            "SELECT count(*) FROM tasks t JOIN workers w ON w.id = t.worker \
             WHERE t.run_id = '{run}' AND t.state = 'leased' AND w.pid = {pid}"
        );
        psql_in(&url, &schema, &sql).ok().and_then(|count| count.parse().ok()).unwrap_or(0)
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut killed = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while killed.is_none() && Instant::now() < deadline {
        assert!(launcher.running(), "the launcher ended before a worker was caught holding leases\n{}", outputs());
        assert!(coordinator.running(), "the run ended before a worker was caught holding leases\n{}", outputs());
        for pid in pgrep(&marker) {
            seen.insert(pid);
            if holding(pid) == 0 || !signal("-STOP", pid) {
                continue;
            }
            let held = holding(pid);
            if held > 0 {
                assert!(signal("-KILL", pid), "SIGKILL {pid}");
                killed = Some((pid, held));
                break;
            }
            signal("-CONT", pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some((killed_pid, held)) = killed else {
        panic!("no worker was caught holding leases within 120 s (saw {seen:?})\n{}", outputs());
    };
    eprintln!("{test}: SIGKILLed worker pid {killed_pid} holding {held} leases");

    let code = launcher.wait_for(Duration::from_secs(240));
    assert_eq!(code, Some(0), "the launcher must exit 0 once the run is done\n{}", outputs());
    let code = coordinator.wait_for(Duration::from_secs(60));
    assert_eq!(code, Some(0), "the coordinator finishes the run\n{}", outputs());
    let stdout = read("launcher.out");
    eprintln!("{test}: the launcher's lines:\n{}", stdout.trim_end());
    let summary = stdout.lines().find(|line| line.contains("summary:")).unwrap_or_else(|| {
        panic!("the launcher printed no summary\n{}", outputs());
    });
    let count = |key: &str| summary_count(summary, key).unwrap_or_else(|| panic!("no {key:?} count in {summary:?}"));
    let (workers, starts, kills, retries) = (count("workers"), count("started"), count("killed"), count("retried"));
    eprintln!("{test}: workers {workers}, started {starts}, killed {kills}, retried {retries} ({summary})");
    assert_eq!(workers, 3, "{summary}");
    assert!(kills >= 1 && retries >= 1 && starts >= 4, "the killed worker's task ran again: {summary}");
    assert_eq!(stdout.lines().filter(|line| line.contains("started on")).count() as u64, starts, "{stdout}");
    for name in ["launcher.out", "launcher.err"] {
        let printed = password.as_ref().is_some_and(|password| read(name).contains(password.as_str()));
        assert!(!printed, "the launcher printed the database password in {name}\n{}", outputs());
    }
    let leftovers = pgrep(&marker);
    assert!(leftovers.is_empty(), "worker processes outlived the launcher: {leftovers:?}");
    let released =
        psql_in(&url, &schema, &format!("SELECT count(*) FROM tasks WHERE run_id = '{run}' AND attempts > 1"));
    let released: u64 = released.unwrap().parse().unwrap();
    assert!(released >= 1, "the killed worker's leases were leased again ({released})");

    // The same run in one process, in a schema of its own (no fitness cached
    // by the distributed run), gives the same populations.
    let alone = common::unique_schema("ray_launch_alone");
    let _drop_alone = DropSchema::new(&url, &alone);
    let alone_env = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url.as_str()), ("STRATA_PG_SCHEMA", alone.as_str())];
    common::strata(&alone_env, &generated).success();
    let single = evolve(&reference, "1");
    let single: Vec<&str> = single.iter().map(String::as_str).collect();
    common::strata(&alone_env, &single).success();
    let (distributed, one_process) = (population_hashes(&env, &run), population_hashes(&alone_env, &reference));
    assert_eq!(distributed.len(), 4, "{distributed:?}");
    assert_eq!(distributed, one_process, "the killed worker changed the populations");
    eprintln!(
        "{test}: {} generations equal to the single-process run in {:.1} s",
        distributed.len(),
        started.elapsed().as_secs_f64()
    );
}
