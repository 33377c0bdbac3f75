//! `strata ... | head`: a reader that goes away early ends the command
//! quietly (exit 0, nothing on stderr), never with a panic (exit 101), for
//! every output format and for the human tables.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "duckdb")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// Runs `strata arguments`, reads one line of its stdout, closes the pipe and
/// returns (exit code, stderr).
fn read_one_line_then_close(directory: &std::path::Path, arguments: &[&str]) -> (Option<i32>, String) {
    let mut child = common::command(&[("STRATA_DUCKDB_PATH", "store.duckdb")])
        .current_dir(directory)
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "{arguments:?} printed nothing");
    // The reader (and with it the pipe's only read end) is dropped here.
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_closed_stdout_ends_every_format_quietly() {
    let directory = tempfile::tempdir().unwrap();
    let files = [common::sample_arg("sp500_daily.csv"), common::sample_arg("quandl_wiki_stocks_daily.csv")];
    common::strata_in(directory.path(), &[("STRATA_DUCKDB_PATH", "store.duckdb")], &["ingest", &files[0], &files[1]])
        .success();
    // 17,185 rows are far more than a pipe buffer holds, so the writer meets the closed pipe.
    let symbols = ["^GSPC", "AAPL", "MSFT", "IBM", "GOOG", "FB"];
    for format in ["csv", "json", "table"] {
        let mut arguments = vec!["query"];
        arguments.extend(symbols);
        arguments.extend(["--format", format]);
        let (code, stderr) = read_one_line_then_close(directory.path(), &arguments);
        assert_eq!(code, Some(0), "query --format {format}: {stderr}");
        assert!(stderr.is_empty(), "query --format {format} said: {stderr}");
    }
    let (code, stderr) = read_one_line_then_close(directory.path(), &["digest"]);
    assert_eq!(code, Some(0), "digest: {stderr}");
    assert!(stderr.is_empty(), "digest said: {stderr}");
}
