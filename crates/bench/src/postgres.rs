//! The PostgreSQL section of `cargo xtask bench` (when `DATABASE_URL` is set; `cargo
//! xtask bench` starts a throwaway durable cluster): the neon store against
//! `psql` doing the same work in the same run.
//!
//! - ingest of N generated bars into an empty table: `write_bars` in
//!   batches vs `psql \copy` of the same rows from a CSV file into a table of
//!   the same schema (same partitions, same primary key);
//! - the same ingest again into the full table (every row an upsert), vs
//!   the same `\copy` baseline (COPY cannot upsert: the ratio shows what the
//!   upsert costs over a plain load);
//! - range reads of one symbol into Arrow vs
//!   `psql -c "COPY (SELECT ...) TO STDOUT"` of the same rows;
//! - lease-and-complete cycles per second (batches of 32, no-op work) with
//!   1, 2 and 8 concurrent workers on one pool.
//!
//! Every figure is a best of `repeat` runs for reads, one run for loads.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use strata_adapter_neon::{NeonConfig, NeonStore};
use strata_core::evolution::{RunId, WorkerId};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{
    BarBatch, BarQuery, EvolutionStore, MarketDataStore, MarketDataStoreExt, Symbol, TimeRange, Timestamp,
};

use strata_core::display::group_thousands;
use strata_formats::write::CsvWriter;
use strata_testpg::TempSchema;

/// One line of the PostgreSQL table.
#[derive(Debug)]
struct Line {
    operation: String,
    rows: usize,
    strata: Duration,
    baseline: Option<(String, Duration)>,
}

/// Runs the PostgreSQL benchmark against `url` for each row count in `row_counts`.
pub(crate) async fn run(url: &str, row_counts: &[usize], batch_rows: usize, repeat: usize, json: bool) -> Result<()> {
    let psql = which_psql().context("the PostgreSQL benchmark compares with psql, which is not installed")?;
    let schema = format!("strata_bench_{}", std::process::id());
    let baseline_schema = format!("{schema}_psql");
    let _dropped_at_the_end = (TempSchema::new(url, &schema), TempSchema::new(url, &baseline_schema));
    let mut lines = Vec::new();
    let outcome = async {
        for &rows in row_counts {
            bench_bars(url, &psql, &schema, &baseline_schema, rows, batch_rows, repeat, &mut lines).await?;
        }
        bench_leases(url, &schema, &mut lines).await
    }
    .await;
    outcome?;
    print_lines(&lines, json);
    Ok(())
}

pub(crate) fn which_psql() -> Option<String> {
    Command::new("psql").arg("--version").output().ok().filter(|o| o.status.success()).map(|_| "psql".to_string())
}

pub(crate) fn store_config(url: &str, schema: &str) -> Result<NeonConfig> {
    let mut config = NeonConfig::from_url(url)?.with_schema(schema)?;
    config.max_connections = 10;
    Ok(config)
}

/// Creates the partitions `bars` need in `store` without leaving rows behind.
pub(crate) async fn prepare_partitions(store: &NeonStore, spec: &SyntheticSpec, bars: &[BarBatch]) -> Result<()> {
    let first: Vec<_> = bars.iter().flat_map(BarBatch::to_bars).step_by(10_000).collect();
    store.write_bars(BarBatch::from_bars(&first)).await?;
    for symbol in &spec.symbols {
        store.delete_bars(&Symbol::new(symbol.clone())?, TimeRange::all()).await?;
    }
    Ok(())
}

/// The rows as the CSV `strata query --format csv` writes (header included).
pub(crate) fn write_csv(path: &Path, batches: &[BarBatch]) -> Result<()> {
    let mut writer = CsvWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?.flush()?;
    Ok(())
}

pub(crate) fn psql_timed(psql: &str, url: &str, command: &str) -> Result<Duration> {
    let started = Instant::now();
    let output = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running psql")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(elapsed)
}

#[allow(clippy::too_many_arguments)]
async fn bench_bars(
    url: &str,
    psql: &str,
    schema: &str,
    baseline_schema: &str,
    rows: usize,
    batch_rows: usize,
    repeat: usize,
    lines: &mut Vec<Line>,
) -> Result<()> {
    let symbols = 10;
    let spec = SyntheticSpec::minutes(symbols, rows / symbols, 11);
    let batches: Vec<BarBatch> = spec.batches(batch_rows).collect();
    let total: usize = batches.iter().map(BarBatch::len).sum();
    eprintln!("strata-bench: PostgreSQL, {} rows", group_thousands(total as u64));
    let drop_both = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS {baseline_schema} CASCADE");
    psql_timed(psql, url, &drop_both)?;
    let store = NeonStore::open(store_config(url, schema)?).await?;
    let baseline = NeonStore::open(store_config(url, baseline_schema)?).await?;
    prepare_partitions(&store, &spec, &batches).await?;
    prepare_partitions(&baseline, &spec, &batches).await?;

    let directory = tempfile::tempdir()?;
    let csv = directory.path().join("bars.csv");
    write_csv(&csv, &batches)?;
    let copy = format!(
        "\\copy {baseline_schema}.ohlcv_bars (symbol, ts, open, high, low, close, volume, vwap, trade_count) \
         FROM '{}' WITH (FORMAT csv, HEADER true)",
        csv.display()
    );
    let copy_time = psql_timed(psql, url, &copy)?;
    let label = "psql \\copy CSV, empty table".to_string();

    let started = Instant::now();
    for batch in &batches {
        store.write_bars(batch.clone()).await?;
    }
    lines.push(Line {
        operation: format!("ingest {} (empty table)", crate::short(total)),
        rows: total,
        strata: started.elapsed(),
        baseline: Some((label.clone(), copy_time)),
    });
    let started = Instant::now();
    for batch in &batches {
        store.write_bars(batch.clone()).await?;
    }
    lines.push(Line {
        operation: format!("upsert {} (table holds them)", crate::short(total)),
        rows: total,
        strata: started.elapsed(),
        baseline: Some((label, copy_time)),
    });
    let stored = store.summary().await?.total_rows();
    anyhow::ensure!(stored == total as u64, "stored {stored} rows, expected {total}");
    psql_timed(psql, url, &format!("VACUUM ANALYZE {schema}.ohlcv_bars"))?;

    // Range reads of one symbol: 100k rows, and the whole symbol when it is bigger.
    let per_symbol = total / symbols;
    for wanted in [100_000usize, 500_000] {
        if wanted > per_symbol {
            continue;
        }
        let symbol = Symbol::new(spec.symbols[0].clone())?;
        let start = spec.start;
        let end = spec.start.plus_micros(wanted as i64 * spec.interval_micros);
        let query = BarQuery::symbol(symbol.clone()).between(start, end);
        let mut best_strata = Duration::MAX;
        let mut best_psql = Duration::MAX;
        let sql = format!(
            "COPY (SELECT symbol, ts, open, high, low, close, volume, vwap, trade_count FROM {schema}.ohlcv_bars \
             WHERE symbol = '{}' AND ts >= '{}' AND ts < '{}' ORDER BY ts) TO STDOUT",
            symbol.as_str(),
            iso(start)?,
            iso(end)?
        );
        for _ in 0..repeat.max(1) {
            let started = Instant::now();
            let got: usize = store.collect_batches(query.clone()).await?.iter().map(BarBatch::len).sum();
            best_strata = best_strata.min(started.elapsed());
            anyhow::ensure!(got == wanted, "read {got} rows, expected {wanted}");
            best_psql = best_psql.min(psql_timed(psql, url, &sql)?);
        }
        lines.push(Line {
            operation: format!("range read {} rows, 1 symbol", crate::short(wanted)),
            rows: wanted,
            strata: best_strata,
            baseline: Some(("psql COPY (SELECT) TO STDOUT".to_string(), best_psql)),
        });
    }
    store.close().await;
    baseline.close().await;
    Ok(())
}

fn iso(timestamp: Timestamp) -> Result<String> {
    Ok(timestamp.to_datetime().context("timestamp out of range")?.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
}

/// Lease-and-complete cycles of no-op tasks, 32 per lease, with 1, 2 and 8 workers.
async fn bench_leases(url: &str, schema: &str, lines: &mut Vec<Line>) -> Result<()> {
    let store = Arc::new(NeonStore::open(store_config(url, schema)?).await?);
    for (round, workers) in [1usize, 2, 8].into_iter().enumerate() {
        let tasks: u32 = 20_000;
        let run = RunId::new(format!("bench-leases-{round}"))?;
        crate::noop::create_noop_run(store.as_ref(), &run, tasks).await?;
        let started = Instant::now();
        let mut handles = Vec::new();
        for w in 0..workers {
            let (store, run) = (Arc::clone(&store), run.clone());
            handles.push(tokio::spawn(async move {
                let worker = WorkerId::new(format!("bench-{w}"))?;
                crate::noop::lease_and_complete(store.as_ref(), &run, &worker).await
            }));
        }
        let mut completed = 0;
        for handle in handles {
            completed += handle.await??;
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(completed == u64::from(tasks), "completed {completed} of {tasks}");
        let counts = store.task_counts(&run, 0).await?;
        anyhow::ensure!(counts.done == u64::from(tasks), "{counts:?}");
        lines.push(Line {
            operation: format!("lease+complete x32, {workers} worker{}", if workers == 1 { "" } else { "s" }),
            rows: completed as usize,
            strata: elapsed,
            baseline: None,
        });
    }
    store.close().await;
    Ok(())
}

fn print_lines(lines: &[Line], json: bool) {
    if json {
        for line in lines {
            println!(
                "{}",
                serde_json::json!({
                    "operation": line.operation, "backend": "neon", "rows": line.rows,
                    "seconds": line.strata.as_secs_f64(),
                    "rows_per_second": line.rows as f64 / line.strata.as_secs_f64().max(1e-9),
                    "baseline": line.baseline.as_ref().map(|(name, _)| name.clone()),
                    "baseline_seconds": line.baseline.as_ref().map(|(_, time)| time.as_secs_f64()),
                    "time_ratio_to_baseline": line.baseline.as_ref()
                        .map(|(_, time)| line.strata.as_secs_f64() / time.as_secs_f64().max(1e-9)),
                })
            );
        }
        return;
    }
    println!();
    println!(
        "{:<34} {:>11} {:>9} {:>13} {:>9} {:>7}  baseline",
        "PostgreSQL (neon backend)", "rows", "seconds", "rows/s", "base s", "time x"
    );
    for line in lines {
        let rate = line.rows as f64 / line.strata.as_secs_f64().max(1e-9);
        let (base, ratio, name) = match &line.baseline {
            Some((name, time)) => (
                format!("{:.3}", time.as_secs_f64()),
                format!("{:.2}x", line.strata.as_secs_f64() / time.as_secs_f64().max(1e-9)),
                name.as_str(),
            ),
            None => (String::new(), String::new(), ""),
        };
        println!(
            "{:<34} {:>11} {:>9.3} {:>13} {:>9} {:>7}  {name}",
            line.operation,
            group_thousands(line.rows as u64),
            line.strata.as_secs_f64(),
            group_thousands(rate as u64),
            base,
            ratio
        );
    }
}
