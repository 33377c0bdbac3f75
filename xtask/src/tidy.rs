//! Repository rules checked by `cargo xtask tidy`, by `cargo xtask test`, and as a unit test.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The only crates `strata-core` may depend on: no I/O, no runtime, no drivers.
const CORE_ALLOWED: &[&str] =
    &["arrow-array", "arrow-schema", "async-trait", "thiserror", "futures-core", "chrono", "serde"];

/// Internal crates that `strata-ga-coord` and the decorators (`strata-hybrid`)
/// may depend on: they talk to ports only, so they never see an adapter.
const PORT_ONLY_ALLOWED: &[&str] = &["strata-core", "strata-store-kit"];

/// Crates (directory names under `crates/`) that only talk to ports.
const PORT_ONLY_CRATES: &[&str] = &["ga-coord", "hybrid"];

/// Crates that may name concrete adapters: the composition root and the
/// benchmarks (not shipped).
const MAY_NAME_ADAPTERS: &[&str] = &["compose", "cli", "bench"];

/// Crates whose `src` may hold SQL text besides the adapters: the benchmarks
/// (baselines) and the throwaway-cluster helper.
const MAY_HOLD_SQL: &[&str] = &["bench", "testpg"];

/// Upper-case SQL that no Rust outside adapters has a reason to contain.
const SQL_MARKERS: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "DELETE FROM",
    "UPDATE ",
    "CREATE TABLE",
    "CREATE SCHEMA",
    "CREATE INDEX",
    "CREATE EXTENSION",
    "DROP TABLE",
    "DROP SCHEMA",
    "ALTER TABLE",
    "ON CONFLICT",
    "COPY (",
];

/// Runs every rule and reports all violations at once.
pub(crate) fn check(root: &Path) -> Result<()> {
    let mut problems = architecture(root)?;
    for file in rust_files(root)? {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        if !text.trim_start().starts_with("//!") {
            problems
                .push(format!("{}: must open with a `//!` line saying what the module is for", relative(root, &file)));
        }
    }
    let core_manifest = read(&root.join("crates/core/Cargo.toml"))?;
    for dependency in section_keys(&core_manifest, "dependencies") {
        if !CORE_ALLOWED.contains(&dependency.as_str()) {
            problems.push(format!(
                "crates/core/Cargo.toml: `{dependency}` is not allowed in core (allowed: {})",
                CORE_ALLOWED.join(", ")
            ));
        }
    }
    for manifest in member_manifests(root)? {
        let text = read(&manifest)?;
        for line in text.lines().filter(|l| l.contains("path =") || l.contains("path=")) {
            if !line.trim_start().starts_with("path") {
                problems.push(format!(
                    "{}: `{}`: refer to internal crates through [workspace.dependencies] (`name.workspace = true`)",
                    relative(root, &manifest),
                    line.trim()
                ));
            }
        }
        if !text.contains("[lints]\nworkspace = true") {
            problems.push(format!("{}: needs `[lints] workspace = true`", relative(root, &manifest)));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "))
    }
}

/// The dependency directions and what each kind of crate may contain
/// (ARCHITECTURE.md, "Invariants"):
/// - an adapter never depends on another adapter (dependencies of any kind);
/// - `ga-coord` and `hybrid` depend on no internal crate but core and the
///   small shared crate;
/// - only the composition root (`cli`) and `bench` name a concrete adapter in
///   their sources (an adapter may name itself; tests directories are free);
/// - SQL text appears only in adapters, `bench` and `testpg` sources;
/// - an adapter reads no environment variable outside its tests (the
///   composition root reads the environment and passes settings in).
///
/// Source checks skip comments and everything from a line starting with
/// `#[cfg(test)]` on, the convention for unit-test modules here.
fn architecture(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut crates: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).context("reading crates/")? {
        let path = entry?.path();
        if path.join("Cargo.toml").exists()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            crates.push(name.to_string());
        }
    }
    crates.sort();
    let is_adapter = |name: &str| name.starts_with("adapter-");
    for name in &crates {
        let manifest_path = root.join("crates").join(name).join("Cargo.toml");
        let manifest = read(&manifest_path)?;
        let shown = relative(root, &manifest_path);
        let runtime = section_keys(&manifest, "dependencies");
        let mut all = runtime.clone();
        all.extend(section_keys(&manifest, "dev-dependencies"));
        if is_adapter(name) {
            for dependency in all.iter().filter(|d| d.starts_with("strata-adapter-")) {
                problems.push(format!("{shown}: `{dependency}`: an adapter never depends on another adapter"));
            }
        }
        if PORT_ONLY_CRATES.contains(&name.as_str()) {
            for dependency in runtime.iter().filter(|d| d.starts_with("strata-")) {
                if !PORT_ONLY_ALLOWED.contains(&dependency.as_str()) {
                    problems.push(format!(
                        "{shown}: `{dependency}`: {name} talks to ports only (allowed: {})",
                        PORT_ONLY_ALLOWED.join(", ")
                    ));
                }
            }
        }
        let own = format!("strata_{}", name.replace('-', "_"));
        for file in rust_files_under(&root.join("crates").join(name).join("src"))? {
            let text = read(&file)?;
            let shown = relative(root, &file);
            for (number, line) in production_lines(&text) {
                let at = format!("{shown}:{number}");
                if !MAY_NAME_ADAPTERS.contains(&name.as_str())
                    && let Some(named) = adapter_named(line)
                    && named != own
                {
                    problems.push(format!(
                        "{at}: names the adapter `{named}`; only the composition root (crates/cli) and bench do"
                    ));
                }
                if !is_adapter(name)
                    && !MAY_HOLD_SQL.contains(&name.as_str())
                    && let Some(marker) = SQL_MARKERS.iter().find(|m| in_string_literal(line, m))
                {
                    problems.push(format!("{at}: SQL (`{}`) outside an adapter", marker.trim()));
                }
                if is_adapter(name) && (line.contains("env::var") || line.contains("env::vars")) {
                    problems.push(format!(
                        "{at}: an adapter reads the environment; take the setting from the composition root"
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// Numbered lines of `text` that are code: no comments, nothing from the
/// first `#[cfg(test)]` at the start of a line on.
fn production_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, line)| !line.starts_with("#[cfg(test)]"))
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(index, line)| (index + 1, line))
}

/// The first `strata_adapter_*` crate a line names, if any.
fn adapter_named(line: &str) -> Option<String> {
    let at = line.find("strata_adapter_")?;
    let name: String = line[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    Some(name)
}

/// Whether `marker` occurs inside a `"..."` string literal of `line` (a
/// line-local approximation: enough for SQL, which is never a lone word).
fn in_string_literal(line: &str, marker: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for (index, character) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if inside && line[index..].starts_with(marker) {
            return true;
        }
        match character {
            '\\' if inside => escaped = true,
            '"' => inside = !inside,
            _ => {}
        }
    }
    false
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// Keys of a `[section]` in a TOML file (enough for Cargo manifests).
fn section_keys(toml: &str, section: &str) -> Vec<String> {
    let header = format!("[{section}]");
    let mut inside = false;
    let mut keys = Vec::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
            continue;
        }
        if inside && let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && !key.starts_with('#') {
                keys.push(key.split('.').next().unwrap_or(key).to_string());
            }
        }
    }
    keys
}

fn member_manifests(root: &Path) -> Result<Vec<PathBuf>> {
    let mut manifests = vec![root.join("xtask/Cargo.toml"), root.join("tests/Cargo.toml")];
    for entry in std::fs::read_dir(root.join("crates")).context("reading crates/")? {
        let manifest = entry?.path().join("Cargo.toml");
        if manifest.exists() {
            manifests.push(manifest);
        }
    }
    Ok(manifests)
}

fn rust_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for directory in ["crates", "xtask", "tests"] {
        files.extend(rust_files_under(&root.join(directory))?);
    }
    files.sort();
    Ok(files)
}

/// Every `.rs` file below `directory` (none when it does not exist).
fn rust_files_under(directory: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !directory.is_dir() {
        return Ok(files);
    }
    let mut pending = vec![directory.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        if let Err(problems) = check(root) {
            panic!("{problems:#}");
        }
    }

    /// A copy of the workspace's manifests and sources in a scratch directory.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
            let scratch = std::env::temp_dir().join(format!("strata-tidy-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            for file in ["Cargo.toml", "Cargo.lock"] {
                copy(&root.join(file), &scratch.join(file));
            }
            for directory in ["crates", "tests", "xtask"] {
                copy_tree(&root.join(directory), &scratch.join(directory));
            }
            Scratch(scratch)
        }

        /// Inserts `line` after line `after` (1-based) of `file`.
        fn insert(&self, file: &str, after: usize, line: &str) {
            let path = self.0.join(file);
            let text = std::fs::read_to_string(&path).expect("scratch file");
            let mut lines: Vec<&str> = text.lines().collect();
            lines.insert(after, line);
            std::fs::write(&path, lines.join("\n") + "\n").expect("writing the scratch file");
        }

        /// `check` must fail with a problem containing `expected`.
        fn fails_with(&self, expected: &str) {
            let error = check(&self.0).expect_err("tidy must fail on the broken copy");
            let text = format!("{error:#}");
            assert!(text.contains(expected), "expected `{expected}` in:\n{text}");
            assert_eq!(text.matches("\n  ").count(), 1, "exactly the one planted problem:\n{text}");
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("scratch directory");
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }

    fn copy_tree(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).expect("reading a source directory") {
            let path = entry.expect("a directory entry").path();
            let target = to.join(path.file_name().expect("a name"));
            if path.is_dir() {
                copy_tree(&path, &target);
            } else {
                copy(&path, &target);
            }
        }
    }

    /// The dependency section line after which a planted dependency goes.
    fn dependencies_line(scratch: &Scratch, manifest: &str) -> usize {
        let text = std::fs::read_to_string(scratch.0.join(manifest)).expect("manifest");
        text.lines().position(|l| l.trim() == "[dependencies]").expect("a [dependencies] section") + 1
    }

    #[test]
    fn an_untouched_copy_passes() {
        let scratch = Scratch::new("clean");
        if let Err(problems) = check(&scratch.0) {
            panic!("{problems:#}");
        }
    }

    #[test]
    fn an_adapter_depending_on_another_adapter_fails() {
        let scratch = Scratch::new("adapter-dep");
        let line = dependencies_line(&scratch, "crates/adapter-neon/Cargo.toml");
        scratch.insert("crates/adapter-neon/Cargo.toml", line, "strata-adapter-mock.workspace = true");
        scratch.fails_with("an adapter never depends on another adapter");
    }

    #[test]
    fn ga_coord_depending_on_more_than_core_fails() {
        let scratch = Scratch::new("ga-dep");
        let line = dependencies_line(&scratch, "crates/ga-coord/Cargo.toml");
        scratch.insert("crates/ga-coord/Cargo.toml", line, "strata-neon-api.workspace = true");
        scratch.fails_with("ga-coord talks to ports only");
    }

    #[test]
    fn naming_an_adapter_outside_the_composition_root_fails() {
        let scratch = Scratch::new("names");
        scratch.insert("crates/ga-coord/src/lib.rs", 1, "use strata_adapter_duckdb::DuckDbStore;");
        scratch.fails_with("names the adapter `strata_adapter_duckdb`");
    }

    #[test]
    fn sql_outside_adapters_fails() {
        let scratch = Scratch::new("sql");
        scratch.insert("crates/cli/src/main.rs", 1, "const Q: &str = \"SELECT count(*) FROM ohlcv_bars\";");
        scratch.fails_with("SQL (`SELECT`) outside an adapter");
    }

    #[test]
    fn an_adapter_reading_the_environment_fails() {
        let scratch = Scratch::new("env");
        scratch.insert(
            "crates/adapter-duckdb/src/lib.rs",
            1,
            "fn path() -> Option<String> { std::env::var(\"P\").ok() }",
        );
        scratch.fails_with("an adapter reads the environment");
    }

    #[test]
    fn string_literals_are_told_from_code() {
        assert!(in_string_literal(r#"let q = "SELECT 1";"#, "SELECT "));
        assert!(!in_string_literal("// SELECT 1", "SELECT "));
        assert!(!in_string_literal(r#"let q = "a\"b"; SELECT "#, "SELECT "));
        assert_eq!(adapter_named("use strata_adapter_neon::NeonStore;").as_deref(), Some("strata_adapter_neon"));
        assert_eq!(adapter_named("use strata_core::Bar;"), None);
    }

    #[test]
    fn section_keys_reads_dotted_and_table_keys() {
        let toml = "[package]\nname = \"x\"\n[dependencies]\nfoo = \"1\"\nbar.workspace = true\n# c = 1\n[dev-dependencies]\nbaz = \"1\"\n";
        assert_eq!(section_keys(toml, "dependencies"), ["foo", "bar"]);
    }
}
