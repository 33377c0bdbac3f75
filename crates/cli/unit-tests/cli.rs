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

/// The `strata ...` invocations in one example line: each from `strata ` up
/// to a comment (two spaces), a pipe, a redirection, `)` or ` &`.
fn example_invocations(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("strata ") {
        let starts_word = at == 0 || matches!(rest.as_bytes()[at - 1], b' ' | b'(');
        let tail = &rest[at..];
        let end =
            ["  ", "|", ">", ")", " &", "`"].iter().filter_map(|stop| tail.find(stop)).min().unwrap_or(tail.len());
        if starts_word {
            found.push(tail[..end].split_whitespace().map(str::to_string).collect());
        }
        rest = &tail[end.max(1)..];
    }
    found
}

/// Every subcommand's examples (`after_help`, from the files in `help/` or
/// inline) parse as written: no example uses a flag or value that does not
/// exist, and none is broken in the middle of a command.
#[test]
fn every_example_in_the_help_parses() {
    fn walk(command: &clap::Command, checked: &mut usize) {
        for help in [command.get_after_help(), command.get_after_long_help()].into_iter().flatten() {
            for line in help.to_string().lines() {
                for argv in example_invocations(line) {
                    let parsed = super::command().try_get_matches_from(&argv).and_then(|m| Cli::from_arg_matches(&m));
                    assert!(parsed.is_ok(), "example {line:?} of `{}` does not parse: {}", command.get_name(), {
                        parsed.err().map(|error| error.to_string()).unwrap_or_default()
                    });
                    *checked += 1;
                }
            }
        }
        for subcommand in command.get_subcommands() {
            walk(subcommand, checked);
        }
    }
    let mut checked = 0;
    walk(&command(), &mut checked);
    assert!(checked > 40, "only {checked} examples found: the extraction is broken");
    assert_eq!(example_invocations("  diff <(strata digest) <(strata --duckdb-path b.duckdb digest)").len(), 2);
    assert_eq!(
        example_invocations("  strata query AAPL --format json | jq .close"),
        [["strata", "query", "AAPL", "--format", "json"]]
    );
}
