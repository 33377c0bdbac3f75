//! The efs section of `cargo xtask bench`: the Parquet dataset store
//! (`strata-adapter-efs`) against pyarrow doing the same work on the same
//! rows in the same run.
//!
//! For each row count (`--efs-rows`, default `--rows` and 5x `--rows`, i.e.
//! 1M and 5M), over `--symbols` symbols of core's synthetic one-minute bars:
//!
//! - **write**: `write_bars` of the rows in batches of `--batch-rows` into a
//!   fresh, empty dataset directory, vs `pq.write_to_dataset(table, dir,
//!   partition_cols=["symbol"], compression="zstd")` of the same rows into a
//!   fresh directory;
//! - **read one symbol into Arrow**: `query_bars` of one symbol over its
//!   whole range, the stream of batches consumed, vs
//!   `ds.dataset(dir, partitioning="hive").to_table(filter=ds.field("symbol") == X)`
//!   on the dataset pyarrow wrote. The Strata dataset is the last one written,
//!   compacted first (`EfsStore::compact`) so that both sides read one file
//!   per partition, as pyarrow's `write_to_dataset` leaves them.
//!
//! Each figure is the median of `--repeat` runs (writes: at most
//! [`MAX_WRITE_RUNS`], so that a full run stays about a minute); Strata and pyarrow runs
//! alternate (which goes first alternates too), so a noisy neighbour hits
//! both sides alike. The rows reach Python through one Parquet file written
//! before any timing; Python loads it once, then times only its own
//! `write_to_dataset` or scan with `time.perf_counter` and answers in JSON,
//! so interpreter start-up and the input read are never measured.
//!
//! The baseline runs under the Python named by `STRATA_PYTHON` (pyarrow
//! needed); when it is unset, or cannot start, the section says why and
//! prints Strata's figures alone.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use chrono::Datelike as _;
use strata_adapter_efs::{EfsConfig, EfsStore};
use strata_core::display::group_thousands;
use strata_core::synthetic::SyntheticSpec;
use strata_core::{BarBatch, BarQuery, MarketDataStore, MarketDataStoreExt, Symbol};
use strata_formats::write::ParquetWriter;

use crate::Measurement;
use crate::python::{PythonServer, Side, median_duration, order};

/// The most write runs per row count: a 5M-row write takes seconds on each side.
const MAX_WRITE_RUNS: usize = 5;

/// The environment variable naming the Python that runs the pyarrow baseline.
const PYTHON_VAR: &str = "STRATA_PYTHON";

/// The pyarrow side: loads the input file once, then serves one JSON request
/// per stdin line (`{"op": "write", "dir": ...}` or `{"op": "scan", "dir":
/// ..., "symbol": ...}`) with one JSON line `{"seconds": ..., "rows": ...}`
/// timing only the pyarrow call.
const PYARROW_SERVER: &str = r#"
import json, sys, time
import pyarrow.dataset as ds
import pyarrow.parquet as pq

table = pq.read_table(sys.argv[1])
print(json.dumps({"ready": table.num_rows, "pyarrow": __import__("pyarrow").__version__}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "write":
        started = time.perf_counter()
        pq.write_to_dataset(table, request["dir"], partition_cols=["symbol"], compression="zstd")
        seconds = time.perf_counter() - started
        rows = table.num_rows
    elif request["op"] == "scan":
        started = time.perf_counter()
        result = ds.dataset(request["dir"], partitioning="hive").to_table(
            filter=ds.field("symbol") == request["symbol"])
        seconds = time.perf_counter() - started
        rows = result.num_rows
    else:
        raise ValueError("unknown request " + line)
    print(json.dumps({"seconds": seconds, "rows": rows}), flush=True)
"#;

/// Runs the efs section for each row count, appending its lines to `table`.
pub(crate) async fn run(
    row_counts: &[usize],
    symbols: usize,
    batch_rows: usize,
    repeat: usize,
    table: &mut Vec<Measurement>,
) -> Result<()> {
    let mut python = std::env::var(PYTHON_VAR).ok().filter(|python| !python.trim().is_empty());
    if python.is_none() {
        eprintln!(
            "strata-bench: efs: pyarrow baseline skipped: {PYTHON_VAR} is unset (set it to a Python with pyarrow, \
             e.g. ~/.cache/strata/venv/bin/python); Strata's figures only"
        );
    }
    for &rows in row_counts {
        bench_rows(&mut python, rows, symbols, batch_rows, repeat.max(1), table).await?;
    }
    Ok(())
}

/// One row count; a Python that cannot run the baseline is forgotten (`python` set to `None`).
async fn bench_rows(
    python: &mut Option<String>,
    rows: usize,
    symbols: usize,
    batch_rows: usize,
    runs: usize,
    table: &mut Vec<Measurement>,
) -> Result<()> {
    let symbols = symbols.max(1);
    let spec = SyntheticSpec::minutes(symbols, (rows / symbols).max(1), 13);
    let batches: Vec<BarBatch> = spec.batches(batch_rows).collect();
    let total: usize = batches.iter().map(BarBatch::len).sum();
    let size = crate::short(total);
    let write_runs = runs.min(MAX_WRITE_RUNS);
    eprintln!(
        "strata-bench: efs, {} rows ({symbols} symbols), batches of {batch_rows}, medians of {write_runs} writes \
         and {runs} reads",
        group_thousands(total as u64)
    );
    let work = tempfile::tempdir().context("creating a temporary directory for the efs benchmark")?;
    let mut pyarrow = match python.as_deref() {
        Some(program) => {
            let input = work.path().join("input.parquet");
            write_parquet(&input, &batches)?;
            match Pyarrow::start(program, &input, total) {
                Ok(pyarrow) => Some(pyarrow),
                Err(error) => {
                    eprintln!("strata-bench: efs: pyarrow baseline skipped: {error:#}");
                    *python = None;
                    None
                }
            }
        }
        None => None,
    };

    // Writes: a fresh directory for every run, the previous run's removed (untimed).
    let mut strata_times = Vec::with_capacity(write_runs);
    let mut pyarrow_times = Vec::with_capacity(write_runs);
    let mut strata_dir: Option<tempfile::TempDir> = None;
    let mut pyarrow_dir: Option<PathBuf> = None;
    for run in 0..write_runs {
        for side in order(run) {
            match side {
                Side::Strata => {
                    drop(strata_dir.take());
                    let dir = tempfile::tempdir_in(work.path()).context("creating a dataset directory")?;
                    let store = EfsStore::open(EfsConfig::new(dir.path())).await?;
                    let started = Instant::now();
                    for batch in &batches {
                        store.write_bars(batch.clone()).await.context("efs: write_bars")?;
                    }
                    strata_times.push(started.elapsed());
                    strata_dir = Some(dir);
                }
                Side::Anchor => {
                    let Some(pyarrow) = pyarrow.as_mut() else { continue };
                    if let Some(old) = pyarrow_dir.take() {
                        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
                    }
                    let dir = work.path().join(format!("pyarrow-{run}"));
                    let (written, elapsed) = pyarrow.write(&dir)?;
                    ensure!(written == total, "pyarrow wrote {written} rows, expected {total}");
                    pyarrow_times.push(elapsed);
                    pyarrow_dir = Some(dir);
                }
            }
        }
    }
    let strata_dir = strata_dir.context("no efs write ran")?;
    let times = (median_duration(&strata_times), (!pyarrow_times.is_empty()).then(|| median_duration(&pyarrow_times)));
    push_pair(table, &format!("pq.write_to_dataset {size}"), &format!("ingest {size}, fresh dataset"), total, times);

    // Reads of one symbol, rotating over the symbols, from the last datasets written.
    let store = EfsStore::open(EfsConfig::new(strata_dir.path())).await?;
    let (first_year, last_year) = (spec.start.day().year(), last_timestamp_year(&spec));
    for symbol in &spec.symbols {
        let symbol = Symbol::new(symbol.clone())?;
        for year in first_year..=last_year {
            store.compact(&symbol, year).await.context("efs: compact")?;
        }
    }
    let expected = spec.bars_per_symbol;
    let mut strata_times = Vec::with_capacity(runs);
    let mut pyarrow_times = Vec::with_capacity(runs);
    for run in 0..runs {
        let symbol = &spec.symbols[run % spec.symbols.len()];
        for side in order(run) {
            match side {
                Side::Strata => {
                    let query = BarQuery::symbol(Symbol::new(symbol.clone())?);
                    let started = Instant::now();
                    let read: usize =
                        store.collect_batches(query).await.context("efs: query_bars")?.iter().map(BarBatch::len).sum();
                    strata_times.push(started.elapsed());
                    ensure!(read == expected, "efs read {read} rows of {symbol}, expected {expected}");
                }
                Side::Anchor => {
                    let (Some(pyarrow), Some(dir)) = (pyarrow.as_mut(), pyarrow_dir.as_ref()) else { continue };
                    let (read, elapsed) = pyarrow.scan(dir, symbol)?;
                    ensure!(read == expected, "pyarrow read {read} rows of {symbol}, expected {expected}");
                    pyarrow_times.push(elapsed);
                }
            }
        }
    }
    let times = (median_duration(&strata_times), (!pyarrow_times.is_empty()).then(|| median_duration(&pyarrow_times)));
    push_pair(table, &format!("ds scan 1 symbol of {size}"), &format!("read 1 symbol of {size}"), expected, times);
    if let Some(pyarrow) = pyarrow {
        pyarrow.finish()?;
    }
    Ok(())
}

/// Appends the pyarrow line (when measured) and then Strata's, compared with it.
fn push_pair(
    table: &mut Vec<Measurement>,
    baseline_operation: &str,
    operation: &str,
    rows: usize,
    (strata, pyarrow): (Duration, Option<Duration>),
) {
    let baseline = pyarrow.map(|elapsed| {
        table.push(Measurement {
            operation: format!("{baseline_operation} (baseline)"),
            backend: "pyarrow",
            rows,
            elapsed,
            baseline: None,
        });
        table.len() - 1
    });
    table.push(Measurement { operation: operation.to_string(), backend: "efs", rows, elapsed: strata, baseline });
}

/// The UTC year of the last bar of each series.
fn last_timestamp_year(spec: &SyntheticSpec) -> i32 {
    let last = spec.bars_per_symbol.saturating_sub(1) as i64;
    spec.start.plus_micros(last * spec.interval_micros).day().year()
}

/// The rows as one Parquet file in the canonical schema (pyarrow's input).
pub(crate) fn write_parquet(path: &Path, batches: &[BarBatch]) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = ParquetWriter::new(std::io::BufWriter::new(file))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?.flush()?;
    Ok(())
}

/// The pyarrow side: a [`PythonServer`] running [`PYARROW_SERVER`].
struct Pyarrow(PythonServer);

impl Pyarrow {
    /// Starts `python` on the server script and waits until it has loaded
    /// `input` (`rows` rows).
    fn start(python: &str, input: &Path, rows: usize) -> Result<Self> {
        let args = [OsStr::new("-c"), OsStr::new(PYARROW_SERVER), input.as_os_str()];
        let (server, ready) = PythonServer::start("pyarrow", python, &args)
            .with_context(|| format!("{PYTHON_VAR}={python} could not load the rows with pyarrow"))?;
        let loaded = ready["ready"].as_u64().unwrap_or_default();
        ensure!(loaded == rows as u64, "pyarrow loaded {loaded} rows, expected {rows}");
        eprintln!("strata-bench: efs: baseline is pyarrow {}", ready["pyarrow"].as_str().unwrap_or("?"));
        Ok(Pyarrow(server))
    }

    /// `pq.write_to_dataset` of every row into `dir`: (rows, seconds as Python timed them).
    fn write(&mut self, dir: &Path) -> Result<(usize, Duration)> {
        self.timed(serde_json::json!({ "op": "write", "dir": dir }))
    }

    /// A dataset scan of `symbol`'s rows under `dir`.
    fn scan(&mut self, dir: &Path, symbol: &str) -> Result<(usize, Duration)> {
        self.timed(serde_json::json!({ "op": "scan", "dir": dir, "symbol": symbol }))
    }

    fn timed(&mut self, request: serde_json::Value) -> Result<(usize, Duration)> {
        let answer = self.0.request(&request)?;
        let rows = answer["rows"].as_u64().context("pyarrow's answer has no row count")?;
        let seconds = answer["seconds"].as_f64().context("pyarrow's answer has no time")?;
        Ok((rows as usize, Duration::from_secs_f64(seconds.max(0.0))))
    }

    fn finish(self) -> Result<()> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_minute_series_years() {
        let spec = SyntheticSpec::minutes(1, 600_000, 1);
        assert_eq!(spec.start.day().year(), 2020);
        assert_eq!(last_timestamp_year(&spec), 2021);
    }
}
