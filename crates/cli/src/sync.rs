//! `strata sync`, `strata copy` and `strata verify`: the hybrid journal's
//! replay, and copying and comparing any two stores by (symbol, day) digests
//! (the engine and its text are `strata_hybrid::migrate`).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_core::{Symbol, Timestamp};
use strata_hybrid::migrate::{self, CopyProgress, Selection};

use crate::backend::{Access, StorageConfig, build_market, open_url};
use crate::exit::{FAILURE, check_window};

/// Store URLs, as `--help` explains them.
const STORE_URLS: &str = "Stores are URLs: duckdb:PATH (a Strata DuckDB file, or the Python system's file with \
    an ohlcv_bars table), postgres://... or postgresql://... (a Strata schema, or the Python system's ohlcv_bars \
    table; --pg-schema picks the schema, or ?schema=NAME in the URL for that store alone), efs:DIR (a Parquet dataset) or memory: (empty, for trying things).";

/// `strata sync`.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `strata copy` and `strata verify`: two stores and a selection.
#[derive(Debug, Args)]
#[command(after_help = STORE_URLS)]
pub(crate) struct CompareArgs {
    /// The source store (A).
    #[arg(value_name = "A")]
    pub(crate) source: String,
    /// The target store (B).
    #[arg(value_name = "B")]
    pub(crate) target: String,
    /// Only these symbols (default: every symbol of A and B).
    #[arg(long, value_name = "SYMBOL", num_args = 1..)]
    pub(crate) symbols: Vec<Symbol>,
    /// Only bars at or after this time (a date or RFC 3339 time).
    #[arg(long, value_name = "TIME")]
    pub(crate) start: Option<Timestamp>,
    /// Only bars before this time.
    #[arg(long, value_name = "TIME")]
    pub(crate) end: Option<Timestamp>,
    /// (verify) Copy the days that differ from A to B, then verify again.
    #[arg(long)]
    pub(crate) repair: bool,
    /// How many differing days to list (default 20).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) show: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Replays the hybrid journal into the primary now.
pub(crate) async fn sync(args: &SyncArgs, storage: &StorageConfig) -> Result<ExitCode> {
    // No background replay: this command drains in the foreground and reports what it did.
    let mut storage = storage.clone();
    storage.background_replay = false;
    let stores = build_market(&storage, Access::Write).await?;
    let Some(hybrid) = &stores.hybrid else {
        let said = format!("nothing to sync: the {} backend writes to its store directly", storage.backend);
        if args.json {
            println!("{}", serde_json::json!({ "backend": storage.backend.name(), "journal": null, "note": said }));
        } else {
            println!("{said}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let started = Instant::now();
    let report = hybrid.stack.sync().await?;
    let stats = hybrid.stack.failover.journal().stats()?;
    if args.json {
        let document = serde_json::json!({
            "applied": report.applied,
            "rows": report.rows,
            "parked_now": report.parked,
            "remaining": report.remaining,
            "parked_total": stats.parked,
            "stopped": report.stopped,
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{document}");
    } else {
        let primary = hybrid.stack.failover.primary();
        println!(
            "replayed {} journaled batches ({} rows) into {primary} in {:.1} s; {} remain",
            report.applied,
            report.rows,
            started.elapsed().as_secs_f64(),
            report.remaining
        );
        for (seq, reason) in &report.parked {
            println!("parked entry {seq}: {reason}");
        }
        if stats.parked > 0 {
            println!(
                "{} parked entries in {} (the primary refused them; fix and re-ingest their rows)",
                stats.parked,
                hybrid.stack.failover.journal().dir().join("parked").display()
            );
        }
        if let Some(stopped) = &report.stopped {
            println!("stopped: {stopped}; run `strata sync` again when the primary answers");
        }
    }
    Ok(if report.remaining == 0 { ExitCode::SUCCESS } else { ExitCode::from(FAILURE) })
}

/// `strata copy A B` (`repair` false) and `strata verify A B [--repair]`.
pub(crate) async fn compare(args: &CompareArgs, storage: &StorageConfig, copy: bool) -> Result<ExitCode> {
    check_window(args.start, args.end)?;
    // Named as in the usage line: an error inside a PostgreSQL URL (`?schema=`, a port) says not which store.
    let source = open_url(&args.source, Access::Read, storage).await.context("cannot open the source store <A>")?;
    let writes = copy || args.repair;
    let target = open_url(&args.target, if writes { Access::Write } else { Access::Read }, storage)
        .await
        .context("cannot open the target store <B>")?;
    let selection = Selection { symbols: args.symbols.clone(), start: args.start, end: args.end };
    let started = Instant::now();
    let bar = day_bar();
    let progress = |progress: CopyProgress| {
        bar.set_length(progress.days_total as u64);
        bar.set_position(progress.days_done as u64);
        bar.set_message(format!("{} rows", progress.rows_copied));
    };
    let (source, target) = (source.market.as_ref(), target.market.as_ref());
    let (equal, text, document) = if copy {
        let report = migrate::copy(source, target, &selection, &progress).await?;
        (report.after.is_equal(), report.to_text(), serde_json::to_value(&report)?)
    } else {
        let comparison = migrate::compare(source, target, &selection).await?;
        if args.repair && !comparison.is_equal() {
            let report = migrate::repair(source, target, &comparison, &progress).await?;
            (report.after.is_equal(), report.to_text(), serde_json::to_value(&report)?)
        } else {
            (comparison.is_equal(), comparison.to_text(args.show), serde_json::to_value(&comparison)?)
        }
    };
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{document}")?;
    } else {
        write!(out, "{text}")?;
        writeln!(out, "({:.1} s)", started.elapsed().as_secs_f64())?;
    }
    Ok(if equal { ExitCode::SUCCESS } else { ExitCode::from(FAILURE) })
}

/// A progress bar of days on stderr, shown only when stderr is a terminal.
fn day_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("copying [{wide_bar}] {pos}/{len} days, {msg}, {eta} left") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
