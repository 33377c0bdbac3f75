//! A Python child serving timed requests, one JSON line each way (the efs
//! section's pyarrow baseline and the anchors section's asyncpg, duckdb and
//! pyarrow scripts), and the statistics every paired figure uses.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

/// A running Python program that answers one JSON line per JSON request line.
pub(crate) struct PythonServer {
    /// What it is, for messages ("pyarrow", "the anchors").
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PythonServer {
    /// Starts `python` with `args` (a script path or `-c CODE`, then its
    /// arguments) and returns it with its first line (the script's "ready").
    pub(crate) fn start(name: &'static str, python: &str, args: &[&std::ffi::OsStr]) -> Result<(Self, Value)> {
        let mut child = Command::new(python)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {python} for {name}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("{python}: no pipes to the child");
        };
        let mut server = PythonServer { name, child, stdin, stdout: BufReader::new(stdout) };
        let ready = server.answer().with_context(|| format!("{python} could not start {name}"))?;
        Ok((server, ready))
    }

    /// Sends `request` and returns the answer; an answer with an `error` field is an error.
    pub(crate) fn request(&mut self, request: &Value) -> Result<Value> {
        let answer = tokio::task::block_in_place(|| {
            writeln!(self.stdin, "{request}")?;
            self.stdin.flush()?;
            self.answer()
        })
        .with_context(|| format!("{} request {request}", self.name))?;
        if let Some(error) = answer.get("error") {
            bail!("{} failed {request}: {}", self.name, error.as_str().unwrap_or("?"));
        }
        Ok(answer)
    }

    /// The next JSON line from the child.
    fn answer(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the {} process exited (its error is above)", self.name);
        }
        serde_json::from_str(&line).with_context(|| format!("{} answered {line:?}", self.name))
    }

    /// Closes the child's input and waits for it to exit.
    pub(crate) fn finish(mut self) -> Result<()> {
        drop(self.stdin);
        let status = self.child.wait().with_context(|| format!("waiting for the {} process", self.name))?;
        ensure!(status.success(), "the {} process failed ({status})", self.name);
        Ok(())
    }
}

/// Which side runs first in run `run`: they alternate, so that a noisy
/// neighbour or a warming cache hits both alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Strata,
    Anchor,
}

pub(crate) fn order(run: usize) -> [Side; 2] {
    if run.is_multiple_of(2) { [Side::Strata, Side::Anchor] } else { [Side::Anchor, Side::Strata] }
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The median of `times`.
pub(crate) fn median_duration(times: &[Duration]) -> Duration {
    let seconds: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(median(&seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let ms = Duration::from_millis;
        assert_eq!(median_duration(&[ms(4), ms(1), ms(2), ms(3)]), Duration::from_micros(2500));
    }

    #[test]
    fn sides_alternate() {
        assert_eq!(order(0), [Side::Strata, Side::Anchor]);
        assert_eq!(order(1), [Side::Anchor, Side::Strata]);
    }
}
