//! `strata serve` over HTTP (the `strata-serve` crate, in process, on a
//! loopback port) against the same store called directly, on a DuckDB file
//! holding 10 symbols of one-minute bars. Medians of `repeat` runs:
//!
//! - one symbol, 100,000 bars as an Arrow IPC stream over HTTP, decoded into
//!   record batches by the client, against `query_bars` of the same bars in
//!   process (goal: within 1.5x);
//! - latest-100 (`limit=100&order=desc`) requests per second, 8 clients at
//!   once, against the same query called in process by 8 tasks at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{BarBatch, BarQuery, MarketDataStore, MarketDataStoreExt, Order, Symbol};
use strata_serve::{ServeConfig, Server, Sources};

/// Bars of the symbol read whole.
const READ_ROWS: usize = 100_000;
/// Concurrent clients of the latest-100 figure.
const CLIENTS: usize = 8;
/// How long each latest-100 measurement runs.
const LATEST_WINDOW: Duration = Duration::from_secs(3);

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn print(json: bool, operation: &str, served: String, direct: String, ratio: f64, goal: &str) {
    if json {
        let line = serde_json::json!({
            "section": "serve", "operation": operation, "value": served, "baseline": direct,
            "ratio": ratio, "goal": goal,
        });
        println!("{line}");
    } else {
        println!("{operation:<40} {served:>16}  {direct:>16}  {ratio:>6.2}x  {goal}");
    }
}

/// Reads `url` as an Arrow IPC stream; returns the rows decoded.
async fn read_arrow(client: &reqwest::Client, url: &str) -> Result<usize> {
    let response = client.get(url).header("Accept", "application/vnd.apache.arrow.stream").send().await?;
    anyhow::ensure!(response.status().is_success(), "GET {url}: {}", response.status());
    let body = response.bytes().await?;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)?;
    let mut rows = 0;
    for batch in reader {
        rows += batch?.num_rows();
    }
    Ok(rows)
}

/// Runs the serve section.
pub(crate) async fn run(json: bool, repeat: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn MarketDataStore> =
        Arc::new(DuckDbStore::open(DuckDbConfig::new(dir.path().join("serve.duckdb"))).await?);
    let spec = SyntheticSpec::minutes(10, READ_ROWS, 11);
    for batch in spec.batches(100_000) {
        store.write_bars(batch).await.context("loading the serve section's bars")?;
    }
    let symbol = Symbol::new(spec.symbols[3].clone())?;
    let server =
        Server::bind(ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))), Sources::new(store.clone())).await?;
    let address = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build()?;
    let repeat = repeat.clamp(3, 15);
    if !json {
        println!(
            "\nserve (HTTP on loopback, DuckDB store of 10 x {READ_ROWS} one-minute bars); medians of {repeat} runs"
        );
        println!("{:<40} {:>16}  {:>16}  {:>7}  goal", "operation", "over HTTP", "in process", "ratio");
    }

    // One symbol whole: Arrow over HTTP vs query_bars in process.
    let url = format!("http://{address}/v1/bars?symbols={}", symbol.as_str());
    let (mut http, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let started = Instant::now();
        let rows = read_arrow(&client, &url).await?;
        http.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(rows == READ_ROWS, "HTTP read {rows} rows, expected {READ_ROWS}");
        let started = Instant::now();
        let batches = store.collect_batches(BarQuery::symbol(symbol.clone())).await?;
        direct.push(started.elapsed().as_secs_f64());
        let rows: usize = batches.iter().map(BarBatch::len).sum();
        anyhow::ensure!(rows == READ_ROWS, "query_bars read {rows} rows, expected {READ_ROWS}");
    }
    let (http, direct) = (median(http), median(direct));
    print(
        json,
        "1 symbol, 100k bars, Arrow IPC",
        format!("{:.1} ms", http * 1e3),
        format!("{:.1} ms", direct * 1e3),
        http / direct,
        "<= 1.5x",
    );

    // Latest 100, 8 at once: requests/s over HTTP vs calls/s in process.
    let latest_url = format!("{url}&limit=100&order=desc&format=arrow");
    let latest = BarQuery { limit: Some(100), order: Order::Descending, ..BarQuery::symbol(symbol.clone()) };
    let (mut http_rates, mut direct_rates) = (Vec::new(), Vec::new());
    for _ in 0..repeat.min(5) {
        let deadline = Instant::now() + LATEST_WINDOW;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (client, url) = (client.clone(), latest_url.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    anyhow::ensure!(read_arrow(&client, &url).await? == 100, "latest-100 over HTTP");
                    done += 1;
                }
                anyhow::Ok(done)
            }));
        }
        let mut done = 0;
        for task in tasks {
            done += task.await??;
        }
        http_rates.push(done as f64 / LATEST_WINDOW.as_secs_f64());

        let deadline = Instant::now() + LATEST_WINDOW;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (store, query) = (store.clone(), latest.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let batches = store.collect_batches(query.clone()).await?;
                    anyhow::ensure!(batches.iter().map(BarBatch::len).sum::<usize>() == 100, "latest-100");
                    done += 1;
                }
                anyhow::Ok(done)
            }));
        }
        let mut done = 0;
        for task in tasks {
            done += task.await??;
        }
        direct_rates.push(done as f64 / LATEST_WINDOW.as_secs_f64());
    }
    let (http_rate, direct_rate) = (median(http_rates), median(direct_rates));
    print(
        json,
        &format!("latest 100, {CLIENTS} clients"),
        format!("{http_rate:.0} req/s"),
        format!("{direct_rate:.0} calls/s"),
        direct_rate / http_rate,
        "(time per request ratio)",
    );
    let _ = stop.send(());
    serving.await.context("the server task")??;
    Ok(())
}
