//! Seeing a GA run: one self-contained HTML report per run (`strata report`,
//! and `/runs/RUN` of `strata serve`), the runs index that `strata serve`
//! shows at `/` (kept current by polling `/runs.json`), and a terminal chart
//! of fitness per generation (`strata runs show --chart`).
//!
//! It uses the [`EvolutionStore`] and [`MarketDataStore`] ports only and
//! stores nothing: equity curves, drawdowns and trades are recomputed by
//! backtesting the best genomes again on the run's windows (the backtest is
//! deterministic), so they are what the run measured as long as the bars in
//! the window are unchanged (the report prints a fingerprint of them).
//!
//! Charts are inline SVG drawn here ([`svg`]): no charting dependency, no
//! network, readable without script. Every chart is an `svg.chart` with a
//! `data-chart` id whose series carry `data-series` and `data-points`, so a
//! browser test counts what was drawn from the DOM. The page's one small
//! script adds a crosshair with values and, on a served report of a run in
//! progress, its live progress; script errors are shown on the page and kept
//! in `window.strataErrors`.
//!
//! ```no_run
//! use strata_core::evolution::RunId;
//! use strata_ga_coord::StrategyRegistry;
//! use strata_report::{ReportOptions, RenderOptions, build_report, render_report};
//! # async fn example(
//! #     evolution: &dyn strata_core::EvolutionStore,
//! #     market: &dyn strata_core::MarketDataStore,
//! # ) -> strata_ga_coord::GaResult<()> {
//! let run = RunId::new("ma-crossover-0123456789abcdef")?;
//! let report = build_report(evolution, market, &StrategyRegistry::default(), &run, ReportOptions::default()).await?;
//! std::fs::write("report.html", render_report(&report, &RenderOptions::default())).ok();
//! # Ok(()) }
//! ```

pub mod data;
pub mod html;
pub mod index;
pub mod svg;
pub mod terminal;

pub use data::{ReportOptions, RunReport, build_report};
pub use html::{RenderOptions, render_report};
pub use index::{RunRow, read_runs, render_index, runs_json};
pub use terminal::fitness_chart;

#[doc(no_inline)]
pub use strata_core::{EvolutionStore, MarketDataStore};
#[doc(no_inline)]
pub use strata_ga_coord::{GaError, StrategyRegistry};
