//! `cargo xtask`: the project's automation, in Rust rather than shell scripts.
//!
//! - `cargo xtask test`  formatting check, clippy with `-D warnings`, tidy, every test.
//! - `cargo xtask bench` ingest and query throughput of every backend, printed as a table.
//! - `cargo xtask chaos` the fault matrix (scenario x backend) with many rounds, printed as a table.
//! - `cargo xtask tidy`  repository rules (file headers, dependency direction, lockfile).
//!
//! Every cargo invocation here selects the whole workspace (`--workspace
//! --all-targets`): a narrower selection can resolve different features for
//! build-time dependencies, which re-runs the bundled DuckDB build script and
//! recompiles DuckDB's C++ (tens of minutes on two cores).

mod pg;
mod policy;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  test [--no-lint] [-- <test args>]
        cargo fmt --check, cargo clippy --workspace --all-targets -D warnings,
        tidy, then every test (unit, conformance, end-to-end, doc tests) with
        STRATA_REQUIRE_SERVICES=1 so a test that cannot find a service fails
        instead of skipping. This is what CI runs (.ci/run).
  bench [--rows N] [--symbols N] [--repeat N] [--runs N] [--json PATH] [--check] [--only-anchors]
        builds the workspace and runs `strata-bench` (crates/bench, not
        shipped): ingest and query throughput (rows/s) of every backend on
        generated data, each next to a baseline measured in the same run, the
        efs section against pyarrow, the PostgreSQL section against psql, the
        GA section, and last the anchors table: Strata against the Python a
        team would write instead (asyncpg, duckdb, pyarrow, pandas) and psql,
        on the same rows, medians of --runs runs, ratios with their goals;
        --json PATH writes it, --check fails on a goal missed by more than
        the run-to-run noise. The anchors' Python is a virtual environment
        made once from crates/bench/python/requirements.txt (needs the PyPI
        registry the first time; without it the anchors are skipped, said so).
        Defaults: 1,000,000 rows, 10 symbols; `-- --help` lists every option.
  chaos [--rounds N] [--backends LIST] [--scenarios LIST] [--seed N] [--report FILE]
        the chaos matrix (crates/compose/tests/chaos.rs): named faults (writer
        SIGKILLed, writes cancelled, PostgreSQL restarted, PgBouncer killed,
        connections cut or stalled by a TCP proxy, a full disk, a read-only
        directory, a locked store, clocks 3 hours off) against memory, duckdb,
        efs, neon and hybrid, with a table of acknowledged rows, rows found
        and verdict. `cargo xtask test` runs the short form (4 rounds).
        Defaults: 25 rounds, every backend and scenario, a random seed (it is
        printed; pass it back to replay), the JSON report in
        $CARGO_TARGET_DIR/chaos.json.
  pg start|stop|url
        a PostgreSQL cluster for manual use (initdb + pg_ctl on a free
        loopback port); `start` prints its DATABASE_URL.
  tidy  checks repository rules: every .rs file opens with a //! line, core
        depends only on its allowed crates, internal crates are referenced
        through [workspace.dependencies]; and the dependency policy: one
        version of arrow, one major version of parquet, tokio and hyper in
        Cargo.lock, and only permissive licences in what `strata` links
        (xtask/src/policy.rs).

Environment:
  DATABASE_URL       PostgreSQL for the tests and benchmarks; when unset,
                     `test` and `bench` start a throwaway cluster with the
                     system's initdb/pg_ctl and remove it afterwards.
  STRATA_PGBOUNCER_URL  PgBouncer (transaction mode) for the pooler suite;
                     when unset, one is started in front of a local server.
  STRATA_PYTHON      a Python with pyarrow for the efs benchmark's baseline
                     (`pq.write_to_dataset`, dataset scan); when unset, the
                     efs section prints Strata's figures alone.
  STRATA_BENCH_VENV  where `bench` keeps the anchors' virtual environment
                     (default ~/.cache/strata/bench-venv).
  CARGO_TARGET_DIR   where builds go; .ci/run keeps it outside the clone so
                     the bundled DuckDB build is reused between runs.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("bench") => bench(&root, &args[1..]),
        Some("chaos") => chaos(&root, &args[1..]),
        Some("pg") => pg::command(&args[1..]),
        Some("tidy") => {
            tidy::check(&root)?;
            policy::enforce(&root)?;
            println!("tidy: ok");
            Ok(())
        }
        Some("-h" | "--help" | "help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{HELP}"),
    }
}

/// The workspace root of the checkout being worked on. `cargo run` sets
/// `CARGO_MANIFEST_DIR` at run time; the compile-time value is only a
/// fallback, because `target/debug/xtask` is shared by every checkout that
/// uses the same target directory and may have been built from another one.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or(manifest_dir)
}

fn test(root: &Path, args: &[String]) -> Result<()> {
    let (options, passthrough) = split_passthrough(args);
    let lint = !options.iter().any(|a| a == "--no-lint");
    if let Some(unknown) = options.iter().find(|a| *a != "--no-lint") {
        bail!("unknown option {unknown:?} for `cargo xtask test`");
    }
    let started = Instant::now();
    if lint {
        step(root, "format", &["fmt", "--all", "--", "--check"], &[])?;
        step(root, "clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
        let tidy_started = Instant::now();
        tidy::check(root)?;
        policy::enforce(root)?;
        println!("xtask: tidy ok ({:.1} s)", tidy_started.elapsed().as_secs_f64());
    }
    let mut test_args = vec!["test", "--workspace", "--all-targets", "--no-fail-fast"];
    if !passthrough.is_empty() {
        test_args.push("--");
        test_args.extend(passthrough.iter().map(String::as_str));
    }
    let postgres = pg::services(false, true)?;
    let mut services: Vec<(&str, String)> = vec![("STRATA_REQUIRE_SERVICES", "1".to_string())];
    services.extend(postgres.env());
    let services: Vec<(&str, &str)> = services.iter().map(|(k, v)| (*k, v.as_str())).collect();
    step(root, "tests", &test_args, &services)?;
    if passthrough.is_empty() {
        step(root, "doc tests", &["test", "--workspace", "--doc"], &services)?;
    }
    drop(postgres);
    println!("xtask: all checks passed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn chaos(root: &Path, args: &[String]) -> Result<()> {
    let mut env: Vec<(&str, String)> =
        vec![("STRATA_REQUIRE_SERVICES", "1".into()), ("STRATA_CHAOS_ROUNDS", "25".into())];
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let mut report = target.join("chaos.json");
    let mut rest = args.iter();
    while let Some(option) = rest.next() {
        let variable = match option.as_str() {
            "--rounds" => "STRATA_CHAOS_ROUNDS",
            "--backends" => "STRATA_CHAOS_BACKENDS",
            "--scenarios" => "STRATA_CHAOS_SCENARIOS",
            "--seed" => "STRATA_CHAOS_SEED",
            "--report" => "STRATA_CHAOS_REPORT",
            other => bail!("unknown option {other:?} for `cargo xtask chaos`\n\n{HELP}"),
        };
        let value = rest.next().with_context(|| format!("{option} needs a value"))?;
        if variable == "STRATA_CHAOS_REPORT" {
            report = PathBuf::from(value);
        } else {
            env.retain(|(name, _)| *name != variable);
            env.push((variable, value.clone()));
        }
    }
    env.push(("STRATA_CHAOS_REPORT", report.display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    step(
        root,
        "chaos",
        &["test", "--workspace", "--test", "chaos", "--", "chaos_matrix", "--exact", "--nocapture"],
        &env,
    )?;
    println!("xtask: chaos report {}", report.display());
    Ok(())
}

fn bench(root: &Path, args: &[String]) -> Result<()> {
    // `cargo xtask bench --rows 1000` and `cargo xtask bench -- --rows 1000` both work.
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    let binary = build_executable(root, "strata-bench")?;
    println!("xtask: running {} {}", binary.display(), args.join(" "));
    let postgres = pg::services(true, false)?;
    let mut command = Command::new(&binary);
    match bench_python(root) {
        Ok(python) => {
            command.env("STRATA_BENCH_PYTHON", python);
        }
        Err(error) => eprintln!("xtask: bench: the Python anchors will be skipped: {error:#}"),
    }
    let status = command
        .args(args)
        .envs(postgres.env())
        .current_dir(root)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    if !status.success() {
        bail!("strata-bench failed ({status})");
    }
    Ok(())
}

/// The anchors' virtual environment: made from `crates/bench/python/requirements.txt`
/// into `STRATA_BENCH_VENV` (default `~/.cache/strata/bench-venv`) once, and again only
/// when that file changes (its sha256 is kept in the environment). Returns its Python.
fn bench_python(root: &Path) -> Result<PathBuf> {
    let requirements = root.join("crates/bench/python/requirements.txt");
    let pins = std::fs::read(&requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let venv = match std::env::var_os("STRATA_BENCH_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is unset")?).join(".cache/strata/bench-venv"),
    };
    let python = venv.join("bin/python");
    let stamp = venv.join(".strata-bench.pins");
    let pins_text = String::from_utf8_lossy(&pins).into_owned();
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|stamp| stamp == pins_text) {
        return Ok(python);
    }
    println!("xtask: bench: installing the Python anchors into {} (once)", venv.display());
    if venv.exists() && !venv.join("pyvenv.cfg").is_file() {
        bail!("{} exists and is not a virtual environment; set STRATA_BENCH_VENV elsewhere", venv.display());
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing the old {}", venv.display()))?;
    }
    let system_python = ["python3.11", "python3"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()))
        .context("no python3 on PATH")?;
    let created =
        Command::new(system_python).args(["-m", "venv"]).arg(&venv).status().context("running python3 -m venv")?;
    if !created.success() {
        bail!("python3 -m venv {} failed ({created})", venv.display());
    }
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:", "-r"])
        .arg(&requirements)
        .status()
        .context("running pip")?;
    if !installed.success() {
        bail!("pip could not install {} ({installed}); is the PyPI registry reachable?", requirements.display());
    }
    std::fs::write(&stamp, pins_text).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

/// Builds the workspace and returns the executable of the binary `name` as
/// cargo reports it (honours `CARGO_TARGET_DIR` and cargo config).
fn build_executable(root: &Path, name: &str) -> Result<PathBuf> {
    println!("xtask: build: cargo build --workspace --all-targets");
    let output = Command::new(cargo())
        .args(["build", "--workspace", "--all-targets", "--message-format=json-render-diagnostics"])
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting cargo build")?;
    if !output.status.success() {
        bail!("cargo build failed ({})", output.status);
    }
    let messages = String::from_utf8_lossy(&output.stdout);
    executable(&messages, name).with_context(|| format!("cargo build reported no `{name}` executable"))
}

/// Finds the executable of the binary `name` in cargo's JSON build messages.
fn executable(messages: &str, name: &str) -> Option<PathBuf> {
    let name_field = format!("\"name\":\"{name}\"");
    messages
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\"") && line.contains("\"kind\":[\"bin\"]"))
        .filter(|line| line.contains(&name_field))
        // `--all-targets` also builds the binary's unit-test harness, a "bin" artifact of the
        // same name; its profile says `"test":true` (the target object has a `test` flag too).
        .filter(|line| profile_of(line).is_some_and(|profile| profile.contains("\"test\":false")))
        .find_map(|line| json_string_field(line, "executable"))
        .map(PathBuf::from)
}

/// The `"profile":{...}` object of one cargo JSON message.
fn profile_of(line: &str) -> Option<&str> {
    let start = line.find("\"profile\":{")?;
    let end = line[start..].find('}')?;
    Some(&line[start..start + end + 1])
}

/// Splits `a b -- c d` into (`[a, b]`, `[c, d]`).
fn split_passthrough(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(at) => (&args[..at], &args[at + 1..]),
        None => (args, &[]),
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn step(root: &Path, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let started = Instant::now();
    println!("xtask: {name}: cargo {}", args.join(" "));
    let status = Command::new(cargo())
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("starting cargo for {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status}); command: cargo {}", args.join(" "));
    }
    println!("xtask: {name} ok ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Extracts a top-level string field from cargo's JSON without a JSON dependency.
fn json_string_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\":\"");
    let start = json.find(&key)? + key.len();
    let mut value = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_split() {
        let args: Vec<String> = ["--no-lint", "--", "digest"].iter().map(|s| s.to_string()).collect();
        let (options, rest) = split_passthrough(&args);
        assert_eq!(options, ["--no-lint"]);
        assert_eq!(rest, ["digest"]);
    }

    #[test]
    fn finds_an_executable_in_build_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"strata_core"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"xtask"},"executable":"/t/debug/deps/xtask-1"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"strata"},"profile":{"test":true},"executable":"/t/debug/deps/strata-9"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"strata"},"profile":{"test":false},"executable":"/t/debug/deps/strata-2"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(executable(messages, "strata"), Some(PathBuf::from("/t/debug/deps/strata-2")));
        assert_eq!(executable(messages, "strata-bench"), None);
        assert_eq!(executable("{\"reason\":\"build-finished\"}", "strata"), None);
    }

    #[test]
    fn reads_string_fields_with_escapes() {
        let json = r#"{"packages":[],"target_directory":"/tmp/a \"b\"/target","version":1}"#;
        assert_eq!(json_string_field(json, "target_directory").as_deref(), Some("/tmp/a \"b\"/target"));
        assert_eq!(json_string_field(json, "missing"), None);
    }
}
