//! The hybrid stack (`STORAGE_BACKEND=hybrid`): PostgreSQL in a throwaway
//! cluster as the primary, a DuckDB file as the cache. Each figure is the
//! median of `repeat` runs, next to what a user would use instead:
//!
//! - hot read: the last days' bars read through the stack (the cache holds
//!   them) against the same query on the cache's DuckDB store directly (goal:
//!   within 1.1x);
//! - failover: time from `pg_ctl stop -m immediate` returning to the first
//!   write acknowledged as journaled (goal: under 1 s);
//! - journal drain: rows/s replayed into PostgreSQL after an outage against
//!   plain `write_bars` of the same batches into a fresh schema;
//! - verify: `strata verify` of the same bars held in PostgreSQL and DuckDB
//!   (goal: 5M bars of 10 symbols in under 10 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
use strata_adapter_neon::{NeonConfig, NeonStore};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{BarBatch, BarQuery, Durability, MarketDataStore, MarketDataStoreExt, Symbol, Timestamp};
use strata_hybrid::lazy::LazyStore;
use strata_hybrid::migrate::{self, Selection};
use strata_hybrid::stack::{HybridConfig, HybridStack};
use strata_testpg::{Cluster, ClusterOptions};

/// The primary as the composition root configures it for hybrid.
fn primary_config(url: &str, schema: &str) -> Result<NeonConfig> {
    let mut config = NeonConfig::from_url(url)?.with_schema(schema)?;
    config.retry_budget = Duration::from_millis(500);
    config.acquire_timeout = Duration::from_millis(750);
    Ok(config)
}

fn lazy_primary(config: NeonConfig) -> Arc<dyn MarketDataStore> {
    Arc::new(LazyStore::new("neon", NeonStore::CAPABILITIES, Duration::from_millis(200), move || {
        let config = config.clone();
        Box::pin(async move { Ok(Arc::new(NeonStore::open(config).await?) as Arc<dyn MarketDataStore>) })
    }))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn print(json: bool, operation: &str, value: String, baseline: &str, ratio: Option<f64>, goal: &str) {
    if json {
        let line = serde_json::json!({
            "section": "hybrid", "operation": operation, "value": value, "baseline": baseline,
            "ratio": ratio, "goal": goal,
        });
        println!("{line}");
    } else {
        let ratio = ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
        println!("{operation:<34} {value:>18}  {baseline:>26}  {ratio:>7}  {goal}");
    }
}

/// Runs the hybrid section; `verify_rows` bars (10 symbols) for the verify figure.
pub(crate) async fn run(json: bool, repeat: usize, verify_rows: usize) -> Result<()> {
    let mut cluster = Cluster::start(&ClusterOptions { no_fsync: true, ..ClusterOptions::default() })
        .context("starting a throwaway PostgreSQL cluster for the hybrid section")?;
    let url = cluster.url();
    let dir = tempfile::tempdir()?;
    let repeat = repeat.clamp(3, 15);
    if !json {
        println!("\nhybrid (PostgreSQL primary in a throwaway cluster, DuckDB cache); medians of {repeat} runs");
        println!("{:<34} {:>18}  {:>26}  {:>7}  goal", "operation", "hybrid", "baseline", "ratio");
    }

    // Hot read: 5 symbols x 4 days of minute bars ending an hour ago.
    let now = Timestamp::now();
    let minute = 60_000_000i64;
    let start = Timestamp(now.0 - 4 * 1_440 * minute - 60 * minute);
    let spec = SyntheticSpec { start, ..SyntheticSpec::minutes(5, 4 * 1_440, 3) };
    let config = HybridConfig::new(dir.path().join("hot.state"));
    let cache: Arc<dyn MarketDataStore> =
        Arc::new(DuckDbStore::open(DuckDbConfig::new(dir.path().join("hot.duckdb"))).await?);
    let stack = HybridStack::build(lazy_primary(primary_config(&url, "hot")?), cache.clone(), &config)?;
    for batch in spec.batches(50_000) {
        stack.store.write_bars(batch).await?;
    }
    let symbols: Vec<Symbol> = spec.symbols.iter().map(|s| Symbol::new(s.clone())).collect::<Result<_, _>>()?;
    let query = |symbol: &Symbol| BarQuery::symbol(symbol.clone()).between(start, Timestamp(now.0 - 30 * minute));
    // The first read fills the coverage record; the measured ones come from the cache.
    for symbol in &symbols {
        stack.store.collect_batches(query(symbol)).await?;
    }
    let (mut through, mut direct, mut rows) = (Vec::new(), Vec::new(), 0usize);
    for round in 0..repeat {
        let symbol = &symbols[round % symbols.len()];
        let started = Instant::now();
        let got: usize = stack.store.collect_batches(query(symbol)).await?.iter().map(BarBatch::len).sum();
        through.push(started.elapsed());
        let started = Instant::now();
        let expected: usize = cache.collect_batches(query(symbol)).await?.iter().map(BarBatch::len).sum();
        direct.push(started.elapsed());
        anyhow::ensure!(got == expected, "the stack read {got} rows, the cache {expected}");
        rows = got;
    }
    let (through, direct) = (median(through), median(direct));
    print(
        json,
        &format!("hot read, one symbol ({rows} rows)"),
        format!("{:.2} ms", through.as_secs_f64() * 1e3),
        &format!("duckdb direct {:.2} ms", direct.as_secs_f64() * 1e3),
        Some(through.as_secs_f64() / direct.as_secs_f64().max(1e-9)),
        "<= 1.10x (time ratio)",
    );
    drop(stack);

    // Failover latency and drain rate.
    let spec = SyntheticSpec::minutes(10, 20_000, 5);
    let batches: Vec<BarBatch> = spec.batches(2_000).collect();
    let (mut failovers, mut first_writes, mut drains, mut plains) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut drained_rows = 0usize;
    for round in 0..repeat.min(5) {
        let schema = format!("fo{round}");
        let config = HybridConfig::new(dir.path().join(format!("fo{round}.state")));
        let cache: Arc<dyn MarketDataStore> =
            Arc::new(DuckDbStore::open(DuckDbConfig::new(dir.path().join(format!("fo{round}.duckdb")))).await?);
        let stack = HybridStack::build(lazy_primary(primary_config(&url, &schema)?), cache, &config)?;
        stack.store.write_bars(batches[0].clone()).await?;
        cluster.stop(true)?;
        let stopped = Instant::now();
        let mut index = 1;
        loop {
            let started = Instant::now();
            let report = stack.store.write_bars(batches[index % batches.len()].clone()).await?;
            index += 1;
            if report.durability == Durability::Journaled {
                failovers.push(stopped.elapsed());
                first_writes.push(started.elapsed());
                break;
            }
            anyhow::ensure!(stopped.elapsed() < Duration::from_secs(60), "no write was journaled within 60 s");
        }
        // The rest of the batches while it is down, then the drain.
        for batch in &batches[index.min(batches.len())..] {
            stack.store.write_bars(batch.clone()).await?;
        }
        let journaled: u64 = stack.failover.journal().stats()?.rows;
        cluster.start_again()?;
        let started = Instant::now();
        loop {
            let report = stack.sync().await?;
            if report.remaining == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drains.push(started.elapsed());
        drained_rows = journaled as usize;
        let plain = NeonStore::open(primary_config(&url, &format!("plain{round}"))?).await?;
        let started = Instant::now();
        for batch in &batches[index.min(batches.len())..] {
            plain.write_bars(batch.clone()).await?;
        }
        plains.push(started.elapsed());
    }
    let failover = median(failovers);
    print(
        json,
        "failover: stop -> first journaled ack",
        format!("{:.0} ms", failover.as_secs_f64() * 1e3),
        &format!("that write itself {:.0} ms", median(first_writes).as_secs_f64() * 1e3),
        None,
        "< 1 s",
    );
    let (drain, plain) = (median(drains), median(plains));
    let drain_rate = drained_rows as f64 / drain.as_secs_f64().max(1e-9);
    let plain_rate = drained_rows as f64 / plain.as_secs_f64().max(1e-9);
    print(
        json,
        &format!("journal drain ({drained_rows} rows)"),
        format!("{drain_rate:.0} rows/s"),
        &format!("plain write_bars {plain_rate:.0} rows/s"),
        Some(drain_rate / plain_rate.max(1e-9)),
        "rows/s ratio",
    );

    // verify between PostgreSQL and DuckDB of the same bars.
    let per_symbol = (verify_rows / 10).max(1);
    let spec = SyntheticSpec::minutes(10, per_symbol, 9);
    let pg = NeonStore::open(primary_config(&url, "verify")?).await?;
    let duck = DuckDbStore::open(DuckDbConfig::new(dir.path().join("verify.duckdb"))).await?;
    for batch in spec.batches(250_000) {
        pg.write_bars(batch.clone()).await?;
        duck.write_bars(batch).await?;
    }
    let mut verifies = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let comparison = migrate::compare(&pg, &duck, &Selection::all()).await?;
        verifies.push(started.elapsed());
        anyhow::ensure!(comparison.is_equal(), "the two stores differ: {}", comparison.to_text(5));
    }
    // Each side alone, to see which one the comparison waits for.
    let everything = strata_core::DigestQuery::default();
    let started = Instant::now();
    pg.digest(everything.clone()).await?;
    let pg_alone = started.elapsed();
    let started = Instant::now();
    duck.digest(everything).await?;
    let duck_alone = started.elapsed();
    print(
        json,
        &format!("verify neon vs duckdb ({} bars)", spec.total_rows()),
        format!("{:.2} s", median(verifies).as_secs_f64()),
        &format!("digest alone: pg {:.2} s, duckdb {:.2} s", pg_alone.as_secs_f64(), duck_alone.as_secs_f64()),
        None,
        "< 10 s for 5M bars",
    );
    Ok(())
}
