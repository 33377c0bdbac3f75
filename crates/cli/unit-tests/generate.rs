//! Unit tests of `src/generate.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::cli::{Cli, Command};
use clap::Parser;

fn generate_args(arguments: &[&str]) -> GenerateArgs {
    let mut full = vec!["strata", "generate"];
    full.extend_from_slice(arguments);
    match Cli::try_parse_from(full).unwrap().command {
        Command::Generate(args) => args,
        other => panic!("parsed {other:?}"),
    }
}

#[test]
fn spec_follows_the_flags() {
    let args = generate_args(&[
        "--symbols",
        "2",
        "--bars",
        "3",
        "--seed",
        "9",
        "--interval",
        "1d",
        "--start",
        "2010-01-04",
        "--ingest",
    ]);
    let spec = spec_for(&args).unwrap();
    assert_eq!(spec.symbols, vec!["SYN000", "SYN001"]);
    assert_eq!(spec.interval_micros, 86_400_000_000);
    assert_eq!(spec.start.to_string(), "2010-01-04T00:00:00Z");
    assert_eq!(spec.seed, 9);
}

#[test]
fn timestamps_past_the_valid_range_are_refused() {
    let args =
        generate_args(&["--symbols", "1", "--bars", "100000", "--interval", "1d", "--start", "2190-01-01", "--ingest"]);
    assert!(spec_for(&args).is_err());
}
