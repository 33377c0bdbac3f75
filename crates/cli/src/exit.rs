//! Exit codes and how an error maps to one: 0 success, 1 failure,
//! 2 invalid input (bad rows, bad arguments, bad storage settings),
//! 130 stopped by Ctrl-C or SIGTERM at a safe point.

use std::fmt;
use std::process::ExitCode;

use strata_core::{StoreError, Timestamp};

use crate::backend::ConfigError;

/// Something failed: the store, I/O, a health check.
pub(crate) const FAILURE: u8 = 1;
/// The input or the arguments are wrong; nothing was written.
pub(crate) const INVALID_INPUT: u8 = 2;

/// Stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub(crate) const INTERRUPTED: u8 = 130;

/// A command stopped by Ctrl-C or SIGTERM at a safe point (exit code 130).
/// The message says what was kept and how to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interrupted(pub(crate) String);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Invalid input or arguments (exit code 2), from the CLI or the composition root.
pub(crate) use strata_compose::UsageError;

/// The exit code for `error`: 2 when anything in its chain is invalid input
/// (a [`UsageError`], a [`ConfigError`], or a `StoreError::InvalidInput` with
/// its row report), else 1.
pub(crate) fn code_for(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<Interrupted>()) {
        return INTERRUPTED;
    }
    let invalid = error.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<ConfigError>()
            || matches!(cause.downcast_ref::<StoreError>(), Some(StoreError::InvalidInput(_)))
    });
    if invalid { INVALID_INPUT } else { FAILURE }
}

/// True when the error is a closed stdout (`strata query ... | head`), which is not a failure.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Refuses a window whose `--start` is after its `--end` (exit 2) before
/// any work is done: such a window selects nothing, which is a typo, not a
/// query. An equal start and end (an empty half-open window) is allowed.
pub(crate) fn check_window(start: Option<Timestamp>, end: Option<Timestamp>) -> Result<(), UsageError> {
    match (start, end) {
        (Some(start), Some(end)) if start > end => {
            Err(UsageError(format!("--start {start} is after --end {end}; the window is [--start, --end)")))
        }
        _ => Ok(()),
    }
}

/// True for the panic message of `print!`/`println!` when stdout is closed.
pub(crate) fn is_closed_stdout_panic(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}

/// Prints `error` to stderr and returns its exit code.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    // Masked again here: no path to stderr may print a password.
    let label = if error.chain().any(|cause| cause.is::<Interrupted>()) { "stopped" } else { "error" };
    eprintln!("{label}: {}", crate::backend::redacted(&format!("{error:#}")));
    ExitCode::from(code_for(error))
}

#[cfg(test)]
#[path = "../unit-tests/exit.rs"]
mod tests;
