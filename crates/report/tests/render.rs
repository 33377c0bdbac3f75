//! A real run evolved on the in-memory store (daily synthetic bars, a
//! training and an out-of-sample window), reported: the charts the run
//! implies, with as many points as it has generations and bars; the runs
//! index and its JSON; an unknown run is `NotFound`. The page is kept in
//! `$CARGO_TARGET_TMPDIR/report-memory.html` to look at. The browser test of
//! the same pages is `crates/cli/tests/report_browser.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use strata_adapter_mock::MemoryStore;
use strata_core::evolution::{RunId, WorkerId};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{MarketDataStore as _, MarketSummary, StoreError, Timestamp};
use strata_ga_coord::{DataWindow, GaError, LocalOptions, RunConfig, StrategyRegistry, evolve_local};
use strata_report::{RenderOptions, ReportOptions, build_report, read_runs, render_index, render_report, runs_json};

const DAY: i64 = Timestamp::MICROS_PER_DAY;

/// The number of `needle`s in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Every series of chart `chart`: its name and `data-points`, in order.
fn series(html: &str, chart: &str) -> Vec<(String, usize)> {
    let start = html.find(&format!(r#"data-chart="{chart}""#)).unwrap_or_else(|| panic!("no chart {chart}"));
    let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
    let attribute = |text: &str, name: &str| {
        let value = text.split(&format!(r#"{name}=""#)).nth(1).unwrap();
        value[..value.find('"').unwrap()].to_string()
    };
    svg.split(r#" data-series=""#)
        .skip(1)
        .map(|rest| (rest[..rest.find('"').unwrap()].to_string(), attribute(rest, "data-points").parse().unwrap()))
        .collect()
}

/// The `data-points` of series `name` of chart `chart`.
fn points(html: &str, chart: &str, name: &str) -> usize {
    let all = series(html, chart);
    all.iter().find(|(found, _)| found == name).unwrap_or_else(|| panic!("no series {name} in {chart}: {all:?}")).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_reported_with_every_chart_it_implies() {
    let store = Arc::new(MemoryStore::new());
    let synthetic = SyntheticSpec {
        symbols: vec!["SYN000".into(), "SYN001".into()],
        start: "2015-01-01".parse().unwrap(),
        interval_micros: DAY,
        bars_per_symbol: 1_500,
        seed: 11,
    };
    for batch in synthetic.batches(500) {
        store.write_bars(batch).await.unwrap();
    }
    let split = synthetic.start.0 + 1_000 * DAY;
    let symbols = synthetic.symbols.clone();
    let mut config = RunConfig::new(DataWindow {
        symbols: symbols.clone(),
        start: None,
        end: Some(split),
        snapshot: None,
        digest: None,
    });
    config.test_window = Some(DataWindow { symbols, start: Some(split), end: None, snapshot: None, digest: None });
    let (population, generations) = (10, 3);
    let spec = config.spec(None, "ma-crossover", 5, population, generations).unwrap();
    let run = spec.id.clone();
    let registry = Arc::new(StrategyRegistry::default());
    let options = LocalOptions::new(WorkerId::new("report-test").unwrap(), 2);
    let outcome = evolve_local(store.clone(), store.clone(), registry.clone(), spec, options, None).await.unwrap();
    outcome.result.unwrap();

    let report = build_report(store.as_ref(), store.as_ref(), &registry, &run, ReportOptions::default()).await.unwrap();
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert_eq!(report.stats.len(), generations as usize);
    assert_eq!(report.population, population as usize);
    let in_sample = report.in_sample.as_ref().unwrap();
    assert_eq!(in_sample.timestamps.len(), 1_000, "two symbols on the same days");
    assert_eq!(in_sample.curves.len(), report.best.len().min(3) + 1);
    assert_eq!(report.out_of_sample.as_ref().unwrap().timestamps.len(), 500);
    for curve in &in_sample.curves {
        assert_eq!(curve.equity[0], 1.0, "{} starts at 1", curve.name);
    }
    // The curve of the best genome ends where its stored metrics say (the basket is the mean of the symbols).
    let best = report.best[0].metrics.unwrap();
    let last = in_sample.curves[0].equity.last().copied().unwrap();
    assert!((last - (1.0 + best.total_return)).abs() < 1e-9, "{last} vs {}", best.total_return);

    let html = render_report(&report, &RenderOptions::default());
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-memory.html"), &html).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("NaN") && !html.contains("inf,"), "every drawn number is finite");
    for remote in ["http://", "https://", "src=", "<link rel=\"stylesheet\""] {
        assert!(!html.contains(remote), "nothing outside the page: {remote}");
    }
    assert_eq!(count(&html, "<svg class=\"chart"), 7 + 3, "7 charts and one per gene of ma-crossover");
    for series in ["best", "mean", "spread"] {
        assert_eq!(points(&html, "fitness", series), generations as usize);
    }
    assert_eq!(points(&html, "diversity", "diversity"), generations as usize);
    assert_eq!(points(&html, "equity-in-sample", "buy-and-hold"), 1_000);
    assert_eq!(points(&html, "equity-out-of-sample", "genome-1"), 500);
    assert_eq!(points(&html, "drawdown-in-sample", "genome-1"), 1_000);
    assert_eq!(points(&html, "trades", "price"), 1_000);
    let trades = report.trades.as_ref().unwrap();
    let drawn = series(&html, "trades");
    assert_eq!(drawn[0], ("price".to_string(), 1_000));
    assert!(drawn[1..].iter().all(|(name, _)| ["long", "short", "flat"].contains(&name.as_str())), "{drawn:?}");
    assert_eq!(drawn[1..].iter().map(|(_, count)| count).sum::<usize>(), trades.trades.len());
    let longs = trades.trades.iter().filter(|trade| trade.to > 0.0).count();
    assert_eq!(drawn.iter().find(|(name, _)| name == "long").map_or(0, |(_, count)| *count), longs);
    assert_eq!(count(&html, r#"<tr data-rank="#), report.best.len());
    assert_eq!(count(&html, r#"<tr class="oos">"#), report.best.len());
    assert!(html.contains("data fingerprint"));
    assert!(!html.contains("data-live"), "a written report polls nothing");

    // Served: live while running only, with a link back.
    let served =
        render_report(&report, &RenderOptions { live_url: Some("../runs.json".into()), index_url: Some("../".into()) });
    assert!(served.contains(r#"href="../">all runs</a>"#));
    assert!(!served.contains("data-live"), "a completed run is not polled");

    // The index and its JSON.
    let rows = read_runs(store.as_ref()).await.unwrap();
    assert_eq!(rows.len(), 1);
    let document = runs_json(&rows);
    let listed = &document["runs"][0];
    assert_eq!(listed["run"], run.as_str());
    assert_eq!(listed["status"], "completed");
    assert_eq!(listed["evaluated"], 3);
    assert_eq!(listed["generations"], 3);
    assert!(listed["best"].as_f64().unwrap() >= listed["mean"].as_f64().unwrap());
    let summary = store.summary().await.unwrap();
    let index = render_index(&rows, Ok(&summary), "memory");
    assert!(index.contains(&format!(r#"<a href="runs/{0}">{0}</a>"#, run.as_str())));
    assert_eq!(count(&index, "<tr data-symbol="), 2);
    assert!(index.contains("1,500"), "bars per symbol");
    let empty = render_index(&[], Ok(&MarketSummary::default()), "memory");
    assert!(empty.contains("No runs yet") && empty.contains("holds no bars yet"));
    let failed = render_index(&[], Err("down <for now>".into()), "memory");
    assert!(failed.contains("down &lt;for now&gt;"), "errors are shown, escaped");

    // An unknown run is NotFound, for the CLI's exit 2 and the server's 404.
    let missing = RunId::new("no-such-run").unwrap();
    let error = build_report(store.as_ref(), store.as_ref(), &registry, &missing, ReportOptions::default()).await;
    assert!(matches!(error, Err(GaError::Store(StoreError::NotFound { .. }))), "{error:?}");
}
