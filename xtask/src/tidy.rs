//! Repository rules checked by `cargo xtask tidy`, by `cargo xtask test`, and as a unit test.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The only crates `strata-core` may depend on: no I/O, no runtime, no drivers.
const CORE_ALLOWED: &[&str] =
    &["arrow-array", "arrow-schema", "async-trait", "thiserror", "futures-core", "chrono", "serde"];

/// Runs every rule and reports all violations at once.
pub(crate) fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
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
    let lock = read(&root.join("Cargo.lock"))?;
    let arrow_versions = lock.matches("name = \"arrow-array\"").count();
    if arrow_versions > 1 {
        problems.push(format!("Cargo.lock has {arrow_versions} versions of arrow-array; keep one major version"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "))
    }
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
    let mut pending: Vec<PathBuf> = ["crates", "xtask", "tests"].iter().map(|d| root.join(d)).collect();
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

    #[test]
    fn section_keys_reads_dotted_and_table_keys() {
        let toml = "[package]\nname = \"x\"\n[dependencies]\nfoo = \"1\"\nbar.workspace = true\n# c = 1\n[dev-dependencies]\nbaz = \"1\"\n";
        assert_eq!(section_keys(toml, "dependencies"), ["foo", "bar"]);
    }
}
