//! Unit tests of `src/exit.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn a_window_that_ends_before_it_starts_is_refused() {
    let (early, late) = (Timestamp(1), Timestamp(2));
    assert!(check_window(Some(late), Some(early)).unwrap_err().0.contains("is after --end"));
    assert!(check_window(Some(early), Some(late)).is_ok());
    assert!(check_window(Some(early), Some(early)).is_ok());
    assert!(check_window(None, Some(early)).is_ok() && check_window(Some(late), None).is_ok());
}

#[test]
fn the_closed_stdout_panic_is_recognised() {
    assert!(is_closed_stdout_panic("failed printing to stdout: Broken pipe (os error 32)"));
    assert!(!is_closed_stdout_panic("failed printing to stdout: No space left on device (os error 28)"));
    assert!(!is_closed_stdout_panic("index out of bounds"));
}
use anyhow::Context as _;

#[test]
fn invalid_input_anywhere_in_the_chain_is_exit_code_2() {
    let store: anyhow::Error = StoreError::invalid("bad symbol").into();
    assert_eq!(code_for(&store.context("query failed")), INVALID_INPUT);
    let usage: anyhow::Error = UsageError("no".into()).into();
    assert_eq!(code_for(&usage), INVALID_INPUT);
    let config: anyhow::Error = "x".parse::<crate::backend::StorageBackend>().unwrap_err().into();
    assert_eq!(code_for(&config), INVALID_INPUT);
    let unavailable: anyhow::Error = StoreError::unavailable("duckdb", "locked", None).into();
    assert_eq!(code_for(&unavailable), FAILURE);
    let io = Err::<(), _>(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("writing").unwrap_err();
    assert!(is_broken_pipe(&io));
}
