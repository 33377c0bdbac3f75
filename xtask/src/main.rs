//! `cargo xtask`: the project's automation, in Rust rather than shell scripts.
//!
//! - `cargo xtask test`  formatting check, clippy with `-D warnings`, tidy, every test.
//! - `cargo xtask bench` ingest and query throughput of every backend, printed as a table.
//! - `cargo xtask tidy`  repository rules (file headers, dependency direction, lockfile).
//!
//! Every cargo invocation here selects the whole workspace (`--workspace
//! --all-targets`): a narrower selection can resolve different features for
//! build-time dependencies, which re-runs the bundled DuckDB build script and
//! recompiles DuckDB's C++ (tens of minutes on two cores).

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
  bench [--rows N] [--symbols N] [--repeat N]
        builds the workspace and runs `strata bench`: ingest and query
        throughput (rows/s) of every backend on generated data, each next to a
        baseline measured in the same run. Defaults: 1,000,000 rows, 10 symbols.
  tidy  checks repository rules: every .rs file opens with a //! line, core
        depends only on its allowed crates, internal crates are referenced
        through [workspace.dependencies], one version of arrow in Cargo.lock.

Environment:
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
        Some("tidy") => {
            tidy::check(&root)?;
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

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
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
        println!("xtask: tidy ok ({:.1} s)", tidy_started.elapsed().as_secs_f64());
    }
    let mut test_args = vec!["test", "--workspace", "--all-targets"];
    if !passthrough.is_empty() {
        test_args.push("--");
        test_args.extend(passthrough.iter().map(String::as_str));
    }
    let services = [("STRATA_REQUIRE_SERVICES", "1")];
    step(root, "tests", &test_args, &services)?;
    if passthrough.is_empty() {
        step(root, "doc tests", &["test", "--workspace", "--doc"], &services)?;
    }
    println!("xtask: all checks passed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn bench(root: &Path, args: &[String]) -> Result<()> {
    step(root, "build", &["build", "--workspace", "--all-targets"], &[])?;
    let binary = target_dir(root)?.join("debug").join("strata");
    println!("xtask: running {} bench {}", binary.display(), args.join(" "));
    let status = Command::new(&binary)
        .arg("bench")
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    if !status.success() {
        bail!("strata bench failed ({status})");
    }
    Ok(())
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

/// The cargo target directory (honours CARGO_TARGET_DIR and config).
fn target_dir(root: &Path) -> Result<PathBuf> {
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8(output.stdout).context("cargo metadata printed non-UTF-8")?;
    json_string_field(&text, "target_directory").map(PathBuf::from).context("cargo metadata has no target_directory")
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
    fn reads_target_directory_from_metadata_json() {
        let json = r#"{"packages":[],"target_directory":"/tmp/a \"b\"/target","version":1}"#;
        assert_eq!(json_string_field(json, "target_directory").as_deref(), Some("/tmp/a \"b\"/target"));
        assert_eq!(json_string_field(json, "missing"), None);
    }
}
