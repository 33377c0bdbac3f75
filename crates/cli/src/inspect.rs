//! `strata summary`, `strata health` and `strata digest`: what a store
//! holds, whether it answers, and per-(symbol, day) digests to compare stores.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use strata_core::{DigestQuery, HealthReport, MarketSummary};
use strata_serve::health_json;

use crate::backend::{self, Access, StorageConfig, build_stores};
use crate::cli::{DigestArgs, HealthArgs, MigrateArgs, SummaryArgs};
use strata_core::display::{aligned_table, group_thousands};

/// Runs `strata migrate`: applies pending schema migrations and says where things stand.
pub(crate) async fn migrate(args: &MigrateArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let facts = backend::migrate(storage).await?;
    let mut out = io::stdout().lock();
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> =
            facts.into_iter().map(|(key, value)| (key, serde_json::Value::String(value))).collect();
        writeln!(out, "{}", serde_json::Value::Object(object))?;
    } else {
        let width = facts.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
        for (key, value) in facts {
            writeln!(out, "{key:<width$}  {value}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata summary`.
pub(crate) async fn summary(args: &SummaryArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let stores = backend::build_market(storage, Access::Read).await?;
    let summary = stores.market.summary().await.context("cannot read the store summary")?;
    print_summary(&summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a market summary as an aligned table or one JSON object.
pub(crate) fn print_summary(summary: &MarketSummary, as_json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    if as_json {
        let document = strata_serve::summary_json(summary);
        writeln!(out, "{document}")?;
        return Ok(());
    }
    let mut rows: Vec<[String; 4]> = summary
        .symbols
        .iter()
        .map(|entry| {
            [entry.symbol.clone(), entry.first.to_string(), entry.last.to_string(), group_thousands(entry.rows)]
        })
        .collect();
    let symbol_count = summary.symbols.len();
    rows.push([
        "total".into(),
        format!("{} symbol{}", symbol_count, if symbol_count == 1 { "" } else { "s" }),
        String::new(),
        group_thousands(summary.total_rows()),
    ]);
    write_aligned(&mut out, &["symbol", "first", "last", "rows"], &rows, 3)?;
    Ok(())
}

/// Writes an aligned table (see [`aligned_table`]).
fn write_aligned<R: AsRef<[String]>>(out: &mut impl Write, header: &[&str], rows: &[R], left: usize) -> io::Result<()> {
    aligned_table(header, rows, left).iter().try_for_each(|line| writeln!(out, "{line}"))
}

/// Runs `strata health`: exit code 0 when the store answered and is ok, 2 when
/// there is no store at the configured path, else 1. With `--timeout`, the
/// whole check (opening the store included) gives up after that long.
pub(crate) async fn health(args: &HealthArgs, storage: &StorageConfig) -> Result<ExitCode> {
    storage.check_compiled_in()?;
    let check = async {
        match build_stores(storage, Access::Read).await {
            Ok(stores) => stores.health().await.map_err(anyhow::Error::from),
            Err(error) => Err(error),
        }
    };
    let outcome = match args.timeout {
        None => check.await,
        Some(limit) => tokio::time::timeout(limit, check).await.unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "health check timed out after {} s (--timeout): the store did not answer in time",
                limit.as_secs_f64()
            ))
        }),
    };
    let ok = matches!(&outcome, Ok(report) if report.ok());
    let mut out = io::stdout().lock();
    match (&outcome, args.json) {
        (Ok(report), true) => writeln!(out, "{}", health_json(report))?,
        (Ok(report), false) => write_health(&mut out, report, "")?,
        (Err(error), true) => {
            let document = json!({
                "backend": storage.backend.name(),
                "status": "down",
                "ok": false,
                "error": format!("{error:#}"),
            });
            writeln!(out, "{document}")?;
        }
        (Err(error), false) => {
            writeln!(out, "backend  {}\nok       false\nstatus   down\nerror    {error:#}", storage.backend.name())?;
        }
    }
    // A store that is not there (or not a store) is a wrong path, not an unhealthy store.
    let wrong_path = matches!(&outcome, Err(error) if error.chain().any(|cause| cause.is::<crate::exit::UsageError>()));
    Ok(if ok {
        ExitCode::SUCCESS
    } else if wrong_path {
        ExitCode::from(crate::exit::INVALID_INPUT)
    } else {
        ExitCode::from(crate::exit::FAILURE)
    })
}

/// One report as aligned `key  value` lines, then each component's, indented.
fn write_health(out: &mut impl Write, report: &HealthReport, indent: &str) -> io::Result<()> {
    let mut rows = vec![
        ["backend".to_string(), report.backend.clone()],
        ["ok".into(), report.ok().to_string()],
        ["status".into(), report.status.as_str().to_string()],
    ];
    rows.extend(report.details.iter().map(|(key, value)| [key.clone(), value.clone()]));
    let width = rows.iter().map(|row| row[0].len()).max().unwrap_or(0);
    for [key, value] in rows {
        writeln!(out, "{indent}{key:<width$}  {value}")?;
    }
    for component in &report.components {
        writeln!(out, "{indent}component:")?;
        write_health(out, component, &format!("{indent}  "))?;
    }
    Ok(())
}

/// Runs `strata compact`.
pub(crate) async fn compact(args: &crate::cli::CompactArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let partitions = crate::backend::compact(storage).await?;
    if args.json {
        println!("{}", json!({ "compacted_partitions": partitions, "seconds": started.elapsed().as_secs_f64() }));
    } else {
        println!("compacted {partitions} partition(s) of {} in {:.1?}", storage.describe(), started.elapsed());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata digest`.
pub(crate) async fn digest(args: &DigestArgs, storage: &StorageConfig) -> Result<ExitCode> {
    crate::exit::check_window(args.start, args.end)?;
    let stores = backend::build_market(storage, Access::Read).await?;
    let query = DigestQuery { symbols: args.symbols.clone(), start: args.start, end: args.end };
    let digests = stores.market.digest(query).await.context("cannot compute digests")?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        for digest in &digests {
            writeln!(out, "{}", strata_serve::digest_json(digest))?;
        }
    } else {
        let rows: Vec<[String; 4]> = digests
            .iter()
            .map(|digest| [digest.symbol.clone(), digest.day.to_string(), digest.rows.to_string(), digest.hash_hex()])
            .collect();
        write_aligned(&mut out, &["symbol", "day", "rows", "hash"], &rows, 2)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
