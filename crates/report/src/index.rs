//! The runs index of `strata serve` (`/`): every run with its status and
//! progress, kept current by polling [`runs_json`] (`/runs.json`), and the
//! stored data's coverage per symbol.

use std::fmt::Write as _;

use serde_json::{Value, json};
use strata_core::{EvolutionStore, MarketSummary, Result};
use strata_ga_coord::RunProgress;

use crate::html::{escape, page};

/// The index's script.
const INDEX_SCRIPT: &str = include_str!("index.js");

/// One run as the index lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Status, latest generation and its tasks.
    pub progress: RunProgress,
    /// Generations evaluated.
    pub evaluated: usize,
    /// Best fitness of the latest evaluated generation.
    pub best: Option<f64>,
    /// Mean fitness of the latest evaluated generation.
    pub mean: Option<f64>,
}

/// Every run, newest first, with its progress.
pub async fn read_runs(evolution: &dyn EvolutionStore) -> Result<Vec<RunRow>> {
    let mut rows = Vec::new();
    for record in evolution.list_runs().await? {
        let run = record.spec.id.clone();
        let progress = RunProgress::read(evolution, &run).await?;
        let stats = evolution.generation_stats(&run).await?;
        let last = stats.last();
        rows.push(RunRow {
            progress,
            evaluated: stats.len(),
            best: last.map(|s| s.best).filter(|v| v.is_finite()),
            mean: last.map(|s| s.mean).filter(|v| v.is_finite()),
        });
    }
    Ok(rows)
}

/// `/runs.json`: `{"runs": [...]}`, each run as [`RunProgress::to_json`]
/// plus `strategy`, `population`, `evaluated` (generations with
/// statistics), `best`, `mean` and `updated_at`.
pub fn runs_json(rows: &[RunRow]) -> Value {
    let runs: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut document = row.progress.to_json();
            let spec = &row.progress.record.spec;
            if let Some(fields) = document.as_object_mut() {
                fields.insert("strategy".into(), json!(spec.strategy));
                fields.insert("population".into(), json!(spec.population_size));
                fields.insert("evaluated".into(), json!(row.evaluated));
                fields.insert("best".into(), row.best.map_or(Value::Null, |v| json!(v)));
                fields.insert("mean".into(), row.mean.map_or(Value::Null, |v| json!(v)));
                fields.insert("updated_at".into(), json!(row.progress.record.updated_at.to_string()));
            }
            document
        })
        .collect();
    json!({ "runs": runs })
}

/// The index page: the runs (redrawn from `runs.json` every second) and
/// the coverage of each stored symbol (or why it could not be read).
pub fn render_index(rows: &[RunRow], coverage: std::result::Result<&MarketSummary, String>, store: &str) -> String {
    let mut html = format!(
        r#"<header class="top"><h1>Strata runs</h1><p class="sub">{} · <span id="updated">loading…</span></p></header><main><p id="poll-error" class="note" hidden></p>"#,
        escape(store)
    );
    html.push_str(
        r#"<section id="runs"><h2>Runs</h2><div class="table-wrap"><table class="runs"><thead><tr><th>run</th><th>status</th><th>strategy</th><th>progress</th><th class="num">generations</th><th class="num">tasks done</th><th class="num">best</th><th class="num">mean</th><th class="num">population</th><th>updated</th></tr></thead><tbody id="runs-body">"#,
    );
    if rows.is_empty() {
        html.push_str(r#"<tr class="empty"><td colspan="10" class="muted">No runs yet: start one with <code>strata evolve</code>.</td></tr>"#);
    }
    for row in rows {
        let record = &row.progress.record;
        let spec = &record.spec;
        let total = spec.generations.max(1) as usize;
        let evaluated = row.evaluated.min(total);
        let counts = row.progress.counts;
        let tasks = counts.total();
        let status = record.status.as_str();
        let _ = write!(
            html,
            r#"<tr data-run="{0}" data-status="{status}" data-generation="{1}" data-evaluated="{2}"><td><a href="runs/{0}">{0}</a></td><td><span class="status status-{status}">{status}</span></td><td>{3}</td><td><div class="progress"><i style="width:{4}%"></i></div></td><td class="num">{2}/{5}</td><td class="num">{6}</td><td class="num">{7}</td><td class="num">{8}</td><td class="num">{9}</td><td class="muted">{10}</td></tr>"#,
            escape(spec.id.as_str()),
            row.progress.generation,
            evaluated,
            escape(&spec.strategy),
            evaluated * 100 / total,
            spec.generations,
            if tasks > 0 { format!("{}/{tasks}", counts.done) } else { "–".to_string() },
            row.best.map_or("–".to_string(), |v| format!("{v:.4}")),
            row.mean.map_or("–".to_string(), |v| format!("{v:.4}")),
            spec.population_size,
            record.updated_at
        );
    }
    html.push_str("</tbody></table></div></section>");
    html.push_str(r#"<section id="coverage"><h2>Stored data</h2>"#);
    match coverage {
        Ok(summary) if summary.symbols.is_empty() => {
            html.push_str(r#"<p class="muted">The store holds no bars yet (<code>strata ingest FILE</code>).</p>"#);
        }
        Ok(summary) => {
            let _ = write!(
                html,
                r#"<div class="table-wrap"><table class="coverage"><thead><tr><th>symbol</th><th>first bar</th><th>last bar</th><th class="num">bars</th></tr></thead><tbody>"#
            );
            for symbol in &summary.symbols {
                let _ = write!(
                    html,
                    r#"<tr data-symbol="{0}"><td>{0}</td><td>{1}</td><td>{2}</td><td class="num">{3}</td></tr>"#,
                    escape(&symbol.symbol),
                    symbol.first,
                    symbol.last,
                    strata_core::display::group_thousands(symbol.rows)
                );
            }
            let _ = write!(
                html,
                r#"</tbody></table></div><p class="muted">{} symbols, {} bars.</p>"#,
                summary.symbols.len(),
                strata_core::display::group_thousands(summary.total_rows())
            );
        }
        Err(error) => {
            let _ = write!(html, r#"<p class="note">The store's summary cannot be read: {}</p>"#, escape(&error));
        }
    }
    html.push_str("</section></main>");
    page("Runs · strata", r#"data-page="index" data-poll-ms="1000""#, &html, INDEX_SCRIPT)
}
