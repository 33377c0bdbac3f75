//! `strata-bench` (run by `cargo xtask bench`): ingest and query throughput
//! of every backend on generated data, each figure next to a baseline
//! measured in the same run, then the efs (Parquet dataset) section, the
//! PostgreSQL section (when `DATABASE_URL` is set), the GA section, the serve
//! section ([`serve`]: HTTP against in-process reads) and the
//! hybrid section ([`hybrid`]: its own throwaway PostgreSQL cluster). Not shipped: this crate may
//! name adapters and drivers and hold SQL; the `strata` binary does neither.
//!
//! Baselines:
//! - `validate`: `strata-core` validation alone, the floor every backend pays;
//! - `duckdb raw append` / `duckdb raw range query`: the DuckDB engine doing
//!   the same load and read with no validation, no key, no upsert and no
//!   conversion to the canonical schema, through the same duckdb-rs build
//!   ([`baseline`]);
//! - PostgreSQL: `psql \copy` and `psql -c "COPY (SELECT ...) TO STDOUT"` of
//!   the same rows ([`postgres`]);
//! - efs: pyarrow's `pq.write_to_dataset` and dataset scan of the same rows,
//!   run by the Python in `STRATA_PYTHON` ([`efs`]; medians of `--repeat` runs).
//!
//! Ratios are "this operation's rows/s divided by its baseline's rows/s", so
//! they survive a slower or busier machine better than absolute numbers.

mod anchors;
mod baseline;
mod efs;
mod ga;
mod hybrid;
mod noop;
mod postgres;
mod python;
mod serve;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser as _;
use strata_core::display::group_thousands;
use strata_core::synthetic::SyntheticSpec;
use strata_core::{BarBatch, BarQuery, MarketDataStore, MarketDataStoreExt, Symbol, Timestamp};

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("strata-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("strata-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Options of `cargo xtask bench` (`strata-bench`).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "strata-bench", about = "Throughput of every Strata backend against same-run baselines")]
struct BenchArgs {
    /// Total rows to generate.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Symbols the rows are spread over.
    #[arg(long, default_value_t = 10)]
    symbols: usize,
    /// Rows per write batch.
    #[arg(long, default_value_t = 100_000)]
    batch_rows: usize,
    /// Query repetitions (the figure is the total over all repetitions).
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Print the sections' tables as JSON lines instead (the anchors table stays a table; see --json).
    #[arg(long)]
    json_lines: bool,
    /// Write the anchors table (every figure with its runs, ratio, goal and verdict) as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<std::path::PathBuf>,
    /// Exit non-zero when a figure misses its goal by more than its run-to-run noise.
    #[arg(long)]
    check: bool,
    /// Runs of every anchors figure (the figure is their median; the spread is the noise).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Rows of the anchors section's peak-memory figures (0 skips them).
    #[arg(long, default_value_t = 10_000_000)]
    memory_rows: usize,
    /// Skip the anchors section (Strata against asyncpg, duckdb-python, pyarrow and psql).
    #[arg(long)]
    skip_anchors: bool,
    /// Run only the anchors section.
    #[arg(long, conflicts_with = "skip_anchors")]
    only_anchors: bool,
    /// Row counts of the PostgreSQL ingest benchmark (runs when DATABASE_URL is set).
    #[arg(long, value_delimiter = ',', default_value = "1000000,5000000")]
    pg_rows: Vec<usize>,
    /// Row counts of the efs section (write a fresh dataset, read one symbol, each
    /// against pyarrow with STRATA_PYTHON) [default: --rows and 5 x --rows].
    #[arg(long, value_delimiter = ',')]
    efs_rows: Vec<usize>,
    /// Skip the efs section.
    #[arg(long)]
    skip_efs: bool,
    /// Skip the PostgreSQL section even when DATABASE_URL is set.
    #[arg(long)]
    skip_pg: bool,
    /// Skip the GA section (evaluations per second, coordination cost per task).
    #[arg(long)]
    skip_ga: bool,
    /// Run only the GA section.
    #[arg(long, conflicts_with = "skip_ga")]
    only_ga: bool,
    /// Skip the hybrid section (it starts its own PostgreSQL cluster).
    #[arg(long)]
    skip_hybrid: bool,
    /// Run only the hybrid section.
    #[arg(long, conflicts_with = "skip_hybrid")]
    only_hybrid: bool,
    /// Skip the serve section (HTTP reads against in-process reads).
    #[arg(long)]
    skip_serve: bool,
    /// Run only the serve section.
    #[arg(long, conflicts_with = "skip_serve")]
    only_serve: bool,
    /// Bars (10 symbols) of the hybrid section's verify figure.
    #[arg(long, default_value_t = 5_000_000)]
    verify_rows: usize,
}

/// One measured line.
#[derive(Debug, Clone)]
struct Measurement {
    operation: String,
    backend: &'static str,
    rows: usize,
    elapsed: Duration,
    /// Index of the baseline line this one is compared with.
    baseline: Option<usize>,
}

impl Measurement {
    fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the benchmark and prints the table.
async fn run(args: &BenchArgs) -> Result<()> {
    let anchors = anchors::Options {
        runs: args.runs,
        rows: args.rows,
        batch_rows: args.batch_rows,
        pg_rows: args.pg_rows.clone(),
        pg: !args.skip_pg,
        memory_rows: args.memory_rows,
        json: args.json.clone(),
        check: args.check,
    };
    if args.only_anchors {
        return anchors::run(&anchors).await;
    }
    if args.only_ga {
        return ga::run(args.json_lines, !args.skip_pg).await;
    }
    if args.only_hybrid {
        return hybrid::run(args.json_lines, args.repeat, args.verify_rows).await;
    }
    if args.only_serve {
        return serve::run(args.json_lines, args.repeat).await;
    }
    let symbols = args.symbols.max(1);
    let per_symbol = (args.rows / symbols).max(1);
    let spec = SyntheticSpec::minutes(symbols, per_symbol, 7);
    eprintln!(
        "strata-bench: generating {} rows ({symbols} symbols x {per_symbol} one-minute bars), batches of {}",
        spec.total_rows(),
        args.batch_rows
    );
    let batches: Vec<BarBatch> = spec.batches(args.batch_rows).collect();
    let total: usize = batches.iter().map(BarBatch::len).sum();
    let range = middle_half(&spec);
    let mut table: Vec<Measurement> = Vec::new();

    let started = Instant::now();
    for batch in &batches {
        batch.validate().map_err(|report| anyhow::anyhow!("generated data failed validation: {report}"))?;
    }
    table.push(Measurement {
        operation: "validate (baseline)".into(),
        backend: "core",
        rows: total,
        elapsed: started.elapsed(),
        baseline: None,
    });
    let validate_line = Some(0);

    {
        let store: Arc<dyn MarketDataStore> = Arc::new(strata_adapter_mock::MemoryStore::new());
        measure_store(&store, "memory", &batches, &spec, range, args.repeat, validate_line, None, &mut table).await?;
    }

    {
        let dir = tempfile::tempdir().context("creating a temporary directory for the DuckDB files")?;
        let raw_path = dir.path().join("baseline.duckdb");
        let record_batches: Vec<_> = batches.iter().map(|b| b.record_batch().clone()).collect();
        let raw_append = {
            let path = raw_path.clone();
            tokio::task::spawn_blocking(move || baseline::raw_append(&path, &record_batches)).await??
        };
        table.push(Measurement {
            operation: "raw append (baseline)".into(),
            backend: "duckdb",
            rows: total,
            elapsed: raw_append,
            baseline: None,
        });
        let append_line = Some(table.len() - 1);
        let mut raw_rows = 0;
        let mut raw_elapsed = Duration::ZERO;
        for i in 0..args.repeat {
            let path = raw_path.clone();
            let symbol = spec.symbols[i % spec.symbols.len()].clone();
            let (rows, elapsed) = tokio::task::spawn_blocking(move || {
                baseline::raw_range_query(&path, &symbol, range.0.micros(), range.1.micros())
            })
            .await??;
            raw_rows += rows;
            raw_elapsed += elapsed;
        }
        table.push(Measurement {
            operation: "raw range query (baseline)".into(),
            backend: "duckdb",
            rows: raw_rows,
            elapsed: raw_elapsed,
            baseline: None,
        });
        let query_line = Some(table.len() - 1);
        let config = strata_adapter_duckdb::DuckDbConfig::new(dir.path().join("strata.duckdb"));
        let store: Arc<dyn MarketDataStore> = Arc::new(strata_adapter_duckdb::DuckDbStore::open(config).await?);
        measure_store(&store, "duckdb", &batches, &spec, range, args.repeat, append_line, query_line, &mut table)
            .await?;
    }

    if args.skip_efs {
        eprintln!("strata-bench: efs section skipped (--skip-efs)");
    } else {
        let efs_rows = if args.efs_rows.is_empty() { vec![args.rows, 5 * args.rows] } else { args.efs_rows.clone() };
        efs::run(&efs_rows, symbols, args.batch_rows, args.repeat, &mut table).await?;
    }

    print_table(&table, args.json_lines);

    match std::env::var("DATABASE_URL") {
        Ok(url) if !args.skip_pg && !url.trim().is_empty() => {
            postgres::run(&url, &args.pg_rows, args.batch_rows, 3, args.json_lines).await?;
        }
        _ => eprintln!("strata-bench: PostgreSQL section skipped (DATABASE_URL unset or --skip-pg)"),
    }

    if !args.skip_ga {
        ga::run(args.json_lines, !args.skip_pg).await?;
    }
    if args.skip_serve {
        eprintln!("strata-bench: serve section skipped (--skip-serve)");
    } else {
        serve::run(args.json_lines, args.repeat).await?;
    }
    if args.skip_hybrid || args.skip_pg {
        eprintln!("strata-bench: hybrid section skipped (--skip-hybrid or --skip-pg)");
    } else {
        hybrid::run(args.json_lines, args.repeat, args.verify_rows).await?;
    }
    if args.skip_anchors {
        eprintln!("strata-bench: anchors section skipped (--skip-anchors)");
        Ok(())
    } else {
        anchors::run(&anchors).await
    }
}

/// `[start, end)` covering the middle half of every generated series.
fn middle_half(spec: &SyntheticSpec) -> (Timestamp, Timestamp) {
    let quarter = spec.bars_per_symbol as i64 / 4;
    let start = spec.start.plus_micros(quarter * spec.interval_micros);
    let end = spec.start.plus_micros(3 * quarter * spec.interval_micros);
    (start, end)
}

#[allow(clippy::too_many_arguments)]
async fn measure_store(
    store: &Arc<dyn MarketDataStore>,
    backend: &'static str,
    batches: &[BarBatch],
    spec: &SyntheticSpec,
    range: (Timestamp, Timestamp),
    repeat: usize,
    ingest_baseline: Option<usize>,
    query_baseline: Option<usize>,
    table: &mut Vec<Measurement>,
) -> Result<()> {
    let total: usize = batches.iter().map(BarBatch::len).sum();
    let write_all = |operation: &'static str| async move {
        let started = Instant::now();
        for batch in batches {
            store.write_bars(batch.clone()).await.with_context(|| format!("{backend}: {operation}"))?;
        }
        anyhow::Ok(Measurement {
            operation: operation.into(),
            backend,
            rows: total,
            elapsed: started.elapsed(),
            baseline: ingest_baseline,
        })
    };
    table.push(write_all("ingest (new keys)").await?);
    measure_queries(store, backend, spec, range, repeat, query_baseline, "", table).await?;
    table.push(write_all("upsert (existing keys)").await?);
    let summary = store.summary().await?;
    anyhow::ensure!(
        summary.total_rows() == total as u64,
        "{backend}: stored {} rows after writing {total} twice",
        summary.total_rows()
    );
    measure_queries(store, backend, spec, range, repeat, query_baseline, " after upsert", table).await
}

/// A range query and a "latest 100" query of one symbol, `repeat` times each
/// (rotating over the symbols); `suffix` labels the store's state.
#[allow(clippy::too_many_arguments)]
async fn measure_queries(
    store: &Arc<dyn MarketDataStore>,
    backend: &'static str,
    spec: &SyntheticSpec,
    range: (Timestamp, Timestamp),
    repeat: usize,
    query_baseline: Option<usize>,
    suffix: &str,
    table: &mut Vec<Measurement>,
) -> Result<()> {
    let mut rows = 0;
    let started = Instant::now();
    for i in 0..repeat {
        let symbol = Symbol::new(spec.symbols[i % spec.symbols.len()].clone())?;
        let batches = store.collect_batches(BarQuery::symbol(symbol).between(range.0, range.1)).await?;
        rows += batches.iter().map(BarBatch::len).sum::<usize>();
    }
    table.push(Measurement {
        operation: format!("range query, 1 symbol{suffix}"),
        backend,
        rows,
        elapsed: started.elapsed(),
        baseline: query_baseline,
    });
    let mut rows = 0;
    let started = Instant::now();
    for i in 0..repeat {
        let symbol = Symbol::new(spec.symbols[i % spec.symbols.len()].clone())?;
        rows += store.collect_bars(BarQuery::latest(symbol, 100)).await?.len();
    }
    table.push(Measurement {
        operation: format!("latest 100, 1 symbol{suffix}"),
        backend,
        rows,
        elapsed: started.elapsed(),
        baseline: None,
    });
    Ok(())
}

/// `5M`, `100k` or `1,234`: a row count short enough for an operation's name.
fn short(rows: usize) -> String {
    if rows >= 1_000_000 && rows.is_multiple_of(1_000_000) {
        format!("{}M", rows / 1_000_000)
    } else if rows >= 1000 && rows.is_multiple_of(1000) {
        format!("{}k", rows / 1000)
    } else {
        group_thousands(rows as u64)
    }
}

fn print_table(table: &[Measurement], json: bool) {
    let ratio = |m: &Measurement| m.baseline.map(|b| m.rows_per_second() / table[b].rows_per_second());
    if json {
        for m in table {
            let baseline = m.baseline.map(|b| table[b].operation.as_str());
            println!(
                "{}",
                serde_json::json!({
                    "operation": m.operation, "backend": m.backend, "rows": m.rows,
                    "seconds": m.elapsed.as_secs_f64(), "rows_per_second": m.rows_per_second(),
                    "baseline": baseline, "ratio_to_baseline": ratio(m),
                })
            );
        }
        return;
    }
    println!("{:<36} {:<8} {:>11} {:>9} {:>13}  vs baseline", "operation", "backend", "rows", "seconds", "rows/s");
    for m in table {
        let versus = match (m.baseline, ratio(m)) {
            (Some(b), Some(r)) => {
                format!("{r:.2}x {} {}", table[b].backend, table[b].operation.trim_end_matches(" (baseline)"))
            }
            _ => String::new(),
        };
        println!(
            "{:<36} {:<8} {:>11} {:>9.3} {:>13}  {versus}",
            m.operation,
            m.backend,
            group_thousands(m.rows as u64),
            m.elapsed.as_secs_f64(),
            group_thousands(m.rows_per_second() as u64)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn middle_half_is_half_of_each_series() {
        let spec = SyntheticSpec::minutes(1, 1000, 1);
        let (start, end) = middle_half(&spec);
        let inside = spec.bars().iter().filter(|b| b.timestamp >= start && b.timestamp < end).count();
        assert_eq!(inside, 500);
    }
}
