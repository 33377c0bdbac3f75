//! Dependency policy (issue 16), checked by `cargo xtask tidy`: no copyleft
//! licence in what the `strata` binary links, and one major version of the
//! crates whose duplicates would cost the most (arrow, parquet, tokio, hyper).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// SPDX identifiers a linked crate may be used under: permissive licences only.
/// Copyleft (GPL, LGPL, AGPL, MPL, EPL, EUPL, CDDL, SSPL, ...) is refused, as is
/// anything not listed, until someone reviews it and adds it here.
const ALLOWED_LICENCES: &[&str] = &[
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "0BSD",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "BSL-1.0",
    "CC0-1.0",
];

/// Crates of which Cargo.lock may hold one semver-compatible version only.
const ONE_MAJOR: &[&str] = &["arrow-array", "parquet", "tokio", "hyper"];

/// Fails listing every policy problem of the workspace at `root`.
pub(crate) fn enforce(root: &Path) -> Result<()> {
    let problems = check(root)?;
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("dependency policy: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))
    }
}

/// Every policy problem of the workspace at `root`.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    // Arrow: one version, not only one major (duckdb's Arrow and ours must be one `RecordBatch` type).
    let arrow = versions(&lock, "arrow-array");
    if arrow.len() > 1 {
        problems.push(format!(
            "Cargo.lock has {} versions of arrow-array ({}); keep the one duckdb uses",
            arrow.len(),
            arrow.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    for (name, majors) in duplicate_majors(&lock, ONE_MAJOR) {
        problems.push(format!(
            "Cargo.lock has {} major versions of {name} ({}); keep one",
            majors.len(),
            majors.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    for (package, licence) in linked_packages(root)? {
        if let Err(why) = permitted(&licence) {
            problems.push(format!("{package} is linked into `strata` under `{licence}`: {why}"));
        }
    }
    Ok(problems)
}

/// `(package, licence)` of every crate the `strata` binary links on this
/// platform (normal dependencies of strata-cli, all features it enables).
fn linked_packages(root: &Path) -> Result<BTreeSet<(String, String)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["tree", "--locked", "--offline", "-p", "strata-cli", "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}\t{l}"])
        .output()
        .context("running cargo tree")?;
    if !output.status.success() {
        bail!("cargo tree failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let text = String::from_utf8(output.stdout).context("cargo tree printed non-UTF-8")?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(package, licence)| {
            let package = package.trim_end_matches(" (*)").to_string();
            (package, licence.trim_end_matches(" (*)").trim().to_string())
        })
        .collect())
}

/// Whether an SPDX expression (with the old `/` for OR) can be satisfied
/// with allowed licences only; the error says why not.
fn permitted(expression: &str) -> std::result::Result<(), String> {
    if expression.trim().is_empty() {
        return Err("no licence declared".into());
    }
    let normalized = expression.replace('/', " OR ").replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = normalized.split_whitespace().collect();
    let mut parser = Parser { tokens: &tokens, at: 0 };
    let satisfied = parser.or()?;
    if parser.at != tokens.len() {
        return Err(format!("cannot read the licence expression past `{}`", tokens[parser.at]));
    }
    if satisfied { Ok(()) } else { Err("no alternative is a permissive licence listed in xtask/src/policy.rs".into()) }
}

/// A recursive-descent reader of SPDX expressions: OR of ANDs of terms; a term
/// is `( expr )` or `ID [WITH EXCEPTION]` (an exception never adds obligations).
struct Parser<'a> {
    tokens: &'a [&'a str],
    at: usize,
}

impl Parser<'_> {
    fn or(&mut self) -> std::result::Result<bool, String> {
        let mut any = self.and()?;
        while self.tokens.get(self.at).is_some_and(|t| t.eq_ignore_ascii_case("OR")) {
            self.at += 1;
            any |= self.and()?;
        }
        Ok(any)
    }

    fn and(&mut self) -> std::result::Result<bool, String> {
        let mut all = self.term()?;
        while self.tokens.get(self.at).is_some_and(|t| t.eq_ignore_ascii_case("AND")) {
            self.at += 1;
            all &= self.term()?;
        }
        Ok(all)
    }

    fn term(&mut self) -> std::result::Result<bool, String> {
        let Some(token) = self.tokens.get(self.at) else {
            return Err("the licence expression ends early".into());
        };
        self.at += 1;
        if *token == "(" {
            let inner = self.or()?;
            if self.tokens.get(self.at) != Some(&")") {
                return Err("unbalanced parentheses in the licence expression".into());
            }
            self.at += 1;
            return Ok(inner);
        }
        if self.tokens.get(self.at).is_some_and(|t| t.eq_ignore_ascii_case("WITH")) {
            self.at += 2;
        }
        Ok(ALLOWED_LICENCES.contains(&token.trim_end_matches('+')))
    }
}

/// The crates of `names` that Cargo.lock holds in more than one
/// semver-compatible series (`0.x` counts as its own major).
fn duplicate_majors(lock: &str, names: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut duplicates = BTreeMap::new();
    for name in names {
        let majors: BTreeSet<String> = versions(lock, name)
            .into_iter()
            .map(|version| {
                let mut parts = version.split('.');
                match (parts.next(), parts.next()) {
                    (Some("0"), Some(minor)) => format!("0.{minor}"),
                    (Some(major), _) => major.to_string(),
                    _ => version.clone(),
                }
            })
            .collect();
        if majors.len() > 1 {
            duplicates.insert(name.to_string(), majors);
        }
    }
    duplicates
}

/// The versions of package `name` in Cargo.lock.
fn versions(lock: &str, name: &str) -> BTreeSet<String> {
    lock.split("[[package]]")
        .filter_map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|line| line.strip_prefix(key)).map(|value| value.trim().trim_matches('"'))
            };
            if field("name = ")? != name {
                return None;
            }
            field("version = ").map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissive_expressions_pass_and_copyleft_fails() {
        for ok in [
            "MIT",
            "MIT OR Apache-2.0",
            "MIT/Apache-2.0",
            "Apache-2.0 / MIT",
            "(MIT OR Apache-2.0) AND Unicode-3.0",
            "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT",
            "GPL-3.0-only OR MIT",
            "MPL-2.0 OR Apache-2.0",
        ] {
            assert_eq!(permitted(ok), Ok(()), "{ok}");
        }
        for refused in [
            "GPL-3.0-only",
            "LGPL-2.1-or-later",
            "MPL-2.0",
            "AGPL-3.0",
            "MIT AND GPL-2.0",
            "(MIT OR Apache-2.0) AND LGPL-3.0",
            "",
        ] {
            assert!(permitted(refused).is_err(), "{refused:?} must be refused");
        }
        assert!(permitted("(MIT OR Apache-2.0").unwrap_err().contains("unbalanced"));
        assert!(permitted("MIT OR").unwrap_err().contains("ends early"));
    }

    #[test]
    fn a_second_major_version_is_found() {
        let lock = "[[package]]\nname = \"tokio\"\nversion = \"1.40.0\"\n\n[[package]]\nname = \"tokio\"\nversion = \"1.41.2\"\n\
                    \n[[package]]\nname = \"hyper\"\nversion = \"0.14.30\"\n\n[[package]]\nname = \"hyper\"\nversion = \"1.5.0\"\n\
                    \n[[package]]\nname = \"parquet\"\nversion = \"0.59.0\"\n\n[[package]]\nname = \"parquet\"\nversion = \"0.60.1\"\n";
        let found = duplicate_majors(lock, ONE_MAJOR);
        assert_eq!(found.keys().collect::<Vec<_>>(), vec!["hyper", "parquet"], "two tokio 1.x are one major");
        assert_eq!(found["hyper"], BTreeSet::from(["0.14".to_string(), "1".to_string()]));
        assert_eq!(versions(lock, "tokio"), BTreeSet::from(["1.40.0".to_string(), "1.41.2".to_string()]));
        assert!(versions(lock, "arrow-array").is_empty());
    }

    #[test]
    fn every_linked_crate_is_permissive_and_the_lock_has_one_major_of_each() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let linked = linked_packages(root).expect("cargo tree");
        assert!(linked.iter().any(|(p, _)| p.starts_with("tokio ")), "cargo tree lists the linked crates: {linked:?}");
        assert_eq!(check(root).expect("policy"), Vec::<String>::new());
    }
}
