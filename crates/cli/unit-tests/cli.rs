//! Unit tests of `src/cli.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn definitions_are_consistent() {
    command().debug_assert();
}

#[test]
fn intervals_parse() {
    assert_eq!(parse_interval("1m"), Ok(IntervalMicros(60_000_000)));
    assert_eq!(parse_interval("1h"), Ok(IntervalMicros(3_600_000_000)));
    assert_eq!(parse_interval("1d"), Ok(IntervalMicros(86_400_000_000)));
    assert_eq!(parse_interval("30s"), Ok(IntervalMicros(30_000_000)));
    assert_eq!(parse_interval("90"), Ok(IntervalMicros(90_000_000)));
    assert!(parse_interval("0").is_err());
    assert!(parse_interval("-1m").is_err());
    assert!(parse_interval("fast").is_err());
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::from_arg_matches(&command().try_get_matches_from(args)?)
}

#[test]
fn storage_options_work_after_the_subcommand() {
    let cli = parse(&["strata", "summary", "--backend", "memory"]).unwrap();
    assert_eq!(cli.storage.backend.as_deref(), Some("memory"));
}

#[test]
fn storage_options_work_before_the_subcommand() {
    let cli = parse(&["strata", "--duckdb-path", "a.duckdb", "digest"]).unwrap();
    assert_eq!(cli.storage.duckdb.path, Some(PathBuf::from("a.duckdb")));
    let cli = parse(&["strata", "query", "--pg-schema", "research", "AAPL"]).unwrap();
    assert_eq!(cli.storage.pg.schema.as_deref(), Some("research"));
}

#[cfg(feature = "neon-api")]
#[test]
fn store_less_subcommands_refuse_storage_options() {
    let error = parse(&["strata", "neon", "branch", "list", "--duckdb-path", "a.duckdb"]).unwrap_err();
    assert!(error.to_string().contains("only to the commands that open a store"), "{error}");
    assert!(parse(&["strata", "neon", "projects", "list", "--json"]).is_ok());
}

/// Every subcommand below `command`, nested ones included, with its full name.
fn subcommands(command: &clap::Command, prefix: &str) -> Vec<(String, clap::Command)> {
    let mut found = Vec::new();
    for subcommand in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix} {}", subcommand.get_name());
        found.extend(subcommands(subcommand, &name));
        found.push((name, subcommand.clone()));
    }
    found
}

#[test]
fn every_subcommand_has_examples_that_fit_the_help_width() {
    let command = command();
    let mut all = subcommands(&command, "strata");
    all.push(("strata".to_string(), command));
    for (name, subcommand) in all {
        let after_help = subcommand.get_after_help().map(ToString::to_string).unwrap_or_default();
        let Some((_, examples)) = after_help.split_once("Examples:\n") else {
            panic!("`{name} --help` has no examples");
        };
        // Help is wrapped at 100 columns when stdout is not a terminal; an example must not be.
        for line in examples.lines().filter(|line| line.starts_with("  ")) {
            assert!(line.chars().count() <= 98, "`{name} --help`: example too wide: {line}");
            assert!(!line.ends_with('\\'), "`{name} --help`: example continues on the next line: {line}");
        }
    }
}
