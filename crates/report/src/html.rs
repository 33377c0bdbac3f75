//! A [`RunReport`] as one self-contained HTML page: styles, script and
//! charts inline, nothing fetched (a served report of a run in progress
//! polls its server for the run's progress, and works without it).

use std::fmt::Write as _;

use serde_json::Value;
use strata_core::Timestamp;
use strata_ga_coord::Metrics;

use crate::data::{GeneView, RunReport, TradesView, WindowView};
use crate::svg::{
    BENCHMARK, Band, Bin, FULL_WIDTH, HALF_WIDTH, Histogram, Line, LineChart, Markers, PALETTE, Shape, XAxis, YFormat,
};

/// The page's styles.
pub(crate) const STYLE: &str = include_str!("report.css");
/// The report's script.
const REPORT_SCRIPT: &str = include_str!("report.js");

/// Caught before any other script runs: every script error and rejected
/// promise is shown on the page (and kept in `window.strataErrors` for tests).
const ERROR_CATCHER: &str = r#"window.strataErrors = [];
function strataError(text) {
  window.strataErrors.push(String(text));
  var box = document.getElementById("script-errors");
  if (box) { box.hidden = false; box.textContent = "Script error: " + window.strataErrors.join("; "); }
}
window.addEventListener("error", function (e) { strataError(e.message || e); });
window.addEventListener("unhandledrejection", function (e) { strataError(e.reason); });"#;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A whole page: `head_title`, `<body attributes>` and content, with the
/// styles, the error catcher and `script` inline.
pub(crate) fn page(title: &str, body_attributes: &str, content: &str, script: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"strata {}\"><link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{STYLE}</style>\
         <script>{ERROR_CATCHER}</script></head>\n<body {body_attributes}>\
         <div id=\"script-errors\" role=\"alert\" hidden></div>{content}\
         <div id=\"tooltip\" hidden></div><script>{script}</script></body></html>\n",
        env!("CARGO_PKG_VERSION"),
        escape(title)
    )
}

/// How a report is rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// The URL of the runs' JSON to poll while the run is active (served reports).
    pub live_url: Option<String>,
    /// A link back to the runs index (served reports).
    pub index_url: Option<String>,
}

/// A date (`2003-01-02`) or, for bars within a day, a date and time.
fn date(timestamp: Timestamp) -> String {
    let text = timestamp.to_string();
    if timestamp.0 % Timestamp::MICROS_PER_DAY == 0 { text.get(0..10).unwrap_or(&text).to_string() } else { text }
}

fn percent(value: f64) -> String {
    // Adding 0 turns -0 into 0: a drawdown of nothing is "0.0%", not "-0.0%".
    if value.is_finite() { format!("{:.1}%", value * 100.0 + 0.0) } else { "–".to_string() }
}

fn signed_class(value: f64) -> &'static str {
    if value > 0.0 {
        "num pos"
    } else if value < 0.0 {
        "num neg"
    } else {
        "num"
    }
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".to_string(),
    }
}

/// A figure: caption, legend and chart.
fn figure(id: &str, title: &str, subtitle: &str, chart: &LineChart) -> String {
    format!(
        r#"<figure class="figure" data-figure="{}"><figcaption><b>{}</b><span>{}</span></figcaption>{}{}</figure>"#,
        escape(id),
        escape(title),
        escape(subtitle),
        chart.legend(),
        chart.to_svg()
    )
}

/// Renders `report` as a self-contained page.
pub fn render_report(report: &RunReport, options: &RenderOptions) -> String {
    let spec = &report.record.spec;
    let status = report.record.status.as_str();
    let mut html = String::with_capacity(256 * 1024);
    let _ = write!(
        html,
        r#"<header class="top"><h1>Run {} <span class="status status-{status}" id="run-status">{status}</span></h1><p class="sub">{} · population {} · {} generations · seed {}{}</p>"#,
        escape(spec.id.as_str()),
        escape(&spec.strategy),
        spec.population_size,
        spec.generations,
        spec.seed,
        options.index_url.as_ref().map_or(String::new(), |url| format!(r#" · <a href="{}">all runs</a>"#, escape(url)))
    );
    if options.live_url.is_some() && report.record.status.is_active() {
        html.push_str(r#"<p class="sub">in progress: <span id="live-status">…</span></p>"#);
    }
    html.push_str("</header><main>");
    for note in &report.notes {
        let _ = write!(html, r#"<p class="note">{}</p>"#, escape(note));
    }
    html.push_str(&settings_section(report));
    html.push_str(&evolution_section(report));
    html.push_str(&equity_section(report));
    html.push_str(&best_section(report));
    if let Some(trades) = &report.trades {
        html.push_str(&trades_section(trades));
    }
    html.push_str(&genes_section(report));
    html.push_str("</main>");
    let _ = write!(
        html,
        "<footer>Made by strata {} at {} from the run's store; equity curves, drawdowns and trades are the \
         backtest run again on the bars the store holds now. Self-contained: this file needs no network.</footer>",
        env!("CARGO_PKG_VERSION"),
        report.generated_at
    );
    let mut attributes = format!(
        r#"data-page="report" data-run="{}" data-generation="{}""#,
        escape(spec.id.as_str()),
        report.stats.len()
    );
    if let Some(url) = options.live_url.as_ref().filter(|_| report.record.status.is_active()) {
        let _ = write!(attributes, r#" data-live="{}""#, escape(url));
    }
    page(&format!("Run {} · strata", spec.id.as_str()), &attributes, &html, REPORT_SCRIPT)
}

/// Flattens a JSON object into `key.sub: value` rows.
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            for (key, inner) in fields {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&name, inner, rows);
            }
        }
        Value::String(text) => rows.push((prefix.to_string(), text.clone())),
        Value::Null => rows.push((prefix.to_string(), "–".to_string())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}

fn settings_section(report: &RunReport) -> String {
    let spec = &report.record.spec;
    let mut rows: Vec<(String, String)> = vec![
        ("strategy".into(), spec.strategy.clone()),
        ("seed".into(), spec.seed.to_string()),
        ("population".into(), spec.population_size.to_string()),
        ("generations".into(), spec.generations.to_string()),
        ("status".into(), report.record.status.as_str().to_string()),
        ("created".into(), report.record.created_at.to_string()),
        ("updated".into(), report.record.updated_at.to_string()),
    ];
    if let Some(progress) = &report.progress {
        rows.push((
            "progress".into(),
            format!(
                "generation {}/{}: {} done, {} leased, {} pending, {} parked",
                progress.generation,
                spec.generations,
                progress.counts.done,
                progress.counts.leased,
                progress.counts.pending,
                progress.counts.parked
            ),
        ));
    }
    if let Ok(Value::Object(mut config)) = serde_json::from_str::<Value>(&spec.config) {
        config.remove("window");
        config.remove("test_window");
        flatten("", &Value::Object(config), &mut rows);
    }
    let mut html = String::from(
        r#"<section id="settings" class="cards"><div class="card"><h2>Settings</h2><dl class="settings">"#,
    );
    for (key, value) in rows {
        let _ = write!(html, "<dt>{}</dt><dd>{}</dd>", escape(&key), escape(&value));
    }
    html.push_str(r#"</dl></div><div class="card" id="data"><h2>Data</h2>"#);
    match &report.config {
        Some(config) => {
            html.push_str(&window_table(
                "Training window (in sample)",
                &config.window.describe(),
                report.in_sample.as_ref(),
            ));
            if let Some(test) = &config.test_window {
                html.push_str(&window_table(
                    "Test window (out of sample)",
                    &test.describe(),
                    report.out_of_sample.as_ref(),
                ));
            } else {
                html.push_str(
                    r#"<p class="muted">No out-of-sample window (evolve with <code>--test-end</code> for one).</p>"#,
                );
            }
            html.push_str(
                r#"<p class="muted">The run records its window, not a snapshot of the data: the fingerprint is of the bars the store holds in the window now (the same fingerprint, the same bars).</p>"#,
            );
        }
        None => html.push_str(r#"<p class="muted">The run's configuration cannot be read.</p>"#),
    }
    html.push_str("</div></section>");
    html
}

fn window_table(title: &str, described: &str, view: Option<&WindowView>) -> String {
    let mut html = format!(r#"<h3>{}</h3><p class="mono">{}</p>"#, escape(title), escape(described));
    let Some(view) = view else { return html };
    html.push_str(r#"<table class="coverage"><thead><tr><th>symbol</th><th class="num">bars</th><th>first</th><th>last</th></tr></thead><tbody>"#);
    for symbol in &view.coverage {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&symbol.symbol),
            symbol.bars,
            symbol.first.map_or("–".to_string(), date),
            symbol.last.map_or("–".to_string(), date)
        );
    }
    let _ = write!(
        html,
        r#"</tbody></table><p class="muted">data fingerprint <span class="mono" data-fingerprint="{0:016x}">{0:016x}</span></p>"#,
        view.fingerprint
    );
    html
}

fn evolution_section(report: &RunReport) -> String {
    let mut html = String::from(r#"<section id="evolution"><h2>Evolution</h2>"#);
    if report.stats.is_empty() {
        html.push_str(r#"<p class="muted">No generation has been evaluated yet.</p></section>"#);
        return html;
    }
    let x = |s: &strata_core::evolution::GenerationStats| f64::from(s.generation + 1);
    let mut fitness = LineChart::new("fitness", XAxis::Count, YFormat::Plain, HALF_WIDTH, 280.0);
    fitness.bands.push(Band {
        name: "spread".into(),
        label: "mean ± std".into(),
        color: PALETTE[0],
        points: report.stats.iter().map(|s| (x(s), s.mean - s.std, s.mean + s.std)).collect(),
    });
    fitness.lines.push(Line {
        name: "best".into(),
        label: "best".into(),
        color: PALETTE[1],
        dashed: false,
        points: report.stats.iter().map(|s| (x(s), s.best)).collect(),
    });
    fitness.lines.push(Line {
        name: "mean".into(),
        label: "mean".into(),
        color: PALETTE[0],
        dashed: false,
        points: report.stats.iter().map(|s| (x(s), s.mean)).collect(),
    });
    let mut diversity = LineChart::new("diversity", XAxis::Count, YFormat::Plain, HALF_WIDTH, 280.0);
    diversity.include_y = Some(0.0);
    diversity.lines.push(Line {
        name: "diversity".into(),
        label: "diversity".into(),
        color: PALETTE[2],
        dashed: false,
        points: report.stats.iter().map(|s| (x(s), s.diversity)).collect(),
    });
    let objective = report
        .config
        .as_ref()
        .map(|c| serde_json::to_value(c.backtest.objective).ok().and_then(|v| v.as_str().map(str::to_string)))
        .unwrap_or_default()
        .unwrap_or_else(|| "fitness".to_string());
    let _ = write!(
        html,
        r#"<div class="grid-2">{}{}</div></section>"#,
        figure(
            "fitness",
            "Fitness per generation",
            &format!("{objective} after the trade penalty; the band is one standard deviation around the mean"),
            &fitness
        ),
        figure("diversity", "Diversity per generation", "mean normalised distance between genomes", &diversity)
    );
    html
}

fn equity_section(report: &RunReport) -> String {
    let mut html = String::from(r#"<section id="equity"><h2>Equity and drawdown</h2>"#);
    let views =
        [("in-sample", "In sample", &report.in_sample), ("out-of-sample", "Out of sample", &report.out_of_sample)];
    let mut any = false;
    html.push_str(r#"<div class="grid-2">"#);
    for (id, title, view) in views {
        let Some(view) = view else { continue };
        if view.curves.len() < 2 {
            continue;
        }
        any = true;
        let mut equity = LineChart::new(&format!("equity-{id}"), XAxis::Time, YFormat::Times, HALF_WIDTH, 280.0);
        equity.include_y = Some(1.0);
        let mut drawdown = LineChart::new(&format!("drawdown-{id}"), XAxis::Time, YFormat::Percent, HALF_WIDTH, 160.0);
        drawdown.include_y = Some(0.0);
        let genomes = view.curves.len() - 1;
        for (rank, curve) in view.curves.iter().enumerate() {
            let benchmark = rank == genomes;
            let color = if benchmark { BENCHMARK } else { PALETTE[rank % PALETTE.len()] };
            let line = |values: &[f64]| Line {
                name: curve.name.clone(),
                label: curve.label.clone(),
                color,
                dashed: benchmark,
                points: view.timestamps.iter().zip(values).map(|(t, v)| (*t as f64, *v)).collect(),
            };
            equity.lines.push(line(&curve.equity[..]));
            // Drawdowns of the best genome and of buy and hold only: more lines would hide each other.
            if rank == 0 || benchmark {
                drawdown.lines.push(line(&curve.drawdown()[..]));
            }
        }
        let symbols = view.window.symbols.join(", ");
        let basket = if view.window.symbols.len() > 1 { "equal-weighted basket of " } else { "" };
        let _ = write!(
            html,
            r#"<div>{}{}</div>"#,
            figure(
                &format!("equity-{id}"),
                &format!("{title}: equity"),
                &format!("growth of 1, {basket}{symbols}, costs included; best {genomes} genome(s) vs buy and hold"),
                &equity
            ),
            figure(&format!("drawdown-{id}"), &format!("{title}: drawdown"), "best genome vs buy and hold", &drawdown)
        );
    }
    html.push_str("</div>");
    if !any {
        html.push_str(r#"<p class="muted">No equity curves (see the notes above).</p>"#);
    }
    html.push_str("</section>");
    html
}

fn metric_cells(metrics: &Metrics) -> String {
    format!(
        r#"<td class="{}">{}</td><td class="num">{:.3}</td><td class="num neg">{}</td><td class="num">{}</td><td class="num">{}</td>"#,
        signed_class(metrics.total_return),
        percent(metrics.total_return),
        metrics.sharpe,
        percent(-metrics.max_drawdown),
        metrics.trades,
        percent(metrics.exposure)
    )
}

fn best_section(report: &RunReport) -> String {
    let generation = report.stats.last().map_or(0, |s| s.generation + 1);
    let mut html = format!(r#"<section id="best"><h2>Best genomes of generation {generation}</h2>"#);
    if report.best.is_empty() {
        html.push_str(r#"<p class="muted">None yet.</p></section>"#);
        return html;
    }
    let genes: Vec<String> = report
        .best
        .first()
        .and_then(|b| serde_json::from_str::<serde_json::Map<String, Value>>(&b.genome).ok())
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default();
    let out_of_sample = report.out_of_sample.as_ref();
    html.push_str(r#"<div class="table-wrap"><table class="best"><thead><tr><th class="num">rank</th><th>sample</th>"#);
    for gene in &genes {
        let _ = write!(html, r#"<th class="num">{}</th>"#, escape(gene));
    }
    html.push_str(r#"<th class="num">fitness</th><th class="num">return</th><th class="num">sharpe</th><th class="num">max drawdown</th><th class="num">trades</th><th class="num">exposure</th></tr></thead><tbody>"#);
    for (rank, individual) in report.best.iter().enumerate() {
        let values: serde_json::Map<String, Value> = serde_json::from_str(&individual.genome).unwrap_or_default();
        let _ = write!(html, r#"<tr data-rank="{}"><td class="num">{}</td><td>in</td>"#, rank + 1, rank + 1);
        for gene in &genes {
            let text = values.get(gene).map_or("–".to_string(), |v| match v {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            });
            let _ = write!(html, r#"<td class="num">{}</td>"#, escape(&text));
        }
        let _ = write!(html, r#"<td class="num"><b>{}</b></td>"#, fixed(individual.fitness, 4));
        match &individual.metrics {
            Some(metrics) => html.push_str(&metric_cells(metrics)),
            None => html.push_str(r#"<td class="num" colspan="5">–</td>"#),
        }
        html.push_str("</tr>");
        if let Some(Some(evaluation)) = out_of_sample.and_then(|view| view.evaluations.get(rank)) {
            html.push_str(r#"<tr class="oos"><td></td><td>out</td>"#);
            for _ in &genes {
                html.push_str("<td></td>");
            }
            let _ = write!(
                html,
                r#"<td class="num">{}</td>{}</tr>"#,
                fixed(Some(evaluation.fitness), 4),
                metric_cells(&evaluation.metrics)
            );
        }
    }
    html.push_str("</tbody></table></div></section>");
    html
}

/// A position as a word.
fn side(position: f64) -> &'static str {
    if position > 0.0 {
        "long"
    } else if position < 0.0 {
        "short"
    } else {
        "flat"
    }
}

fn trades_section(trades: &TradesView) -> String {
    let mut chart = LineChart::new("trades", XAxis::Time, YFormat::Plain, FULL_WIDTH, 360.0);
    chart.lines.push(Line {
        name: "price".into(),
        label: format!("{} close", trades.symbol),
        color: "#334155",
        dashed: false,
        points: trades.timestamps.iter().zip(&trades.close).map(|(t, c)| (*t as f64, *c)).collect(),
    });
    let describe = |from: f64, to: f64| format!("{} → {}", side(from), side(to));
    // One series per position taken: long (or reversing to long), short, flat (an exit).
    for (name, color, shape) in
        [("long", "#059669", Shape::Up), ("short", "#dc2626", Shape::Down), ("flat", "#475569", Shape::Diamond)]
    {
        let points: Vec<(f64, f64, String)> = trades
            .trades
            .iter()
            .filter(|t| side(t.to) == name)
            .map(|t| {
                let title = format!("{} {:.2}: {}", date(Timestamp(t.timestamp)), t.price, describe(t.from, t.to));
                (t.timestamp as f64, t.price, title)
            })
            .collect();
        if !points.is_empty() {
            chart.markers.push(Markers { name: name.into(), label: format!("to {name}"), color, shape, points });
        }
    }
    let counts: Vec<String> = chart.markers.iter().map(|m| format!("{} to {}", m.points.len(), m.name)).collect();
    let mut html = format!(
        r#"<section id="trades"><h2>Trades of the best genome on {}</h2>{}"#,
        escape(&trades.symbol),
        figure(
            "trades",
            &format!("{} close, training window", trades.symbol),
            &format!("{} trades ({}); genome {}", trades.trades.len(), counts.join(", "), trades.genome),
            &chart
        )
    );
    let _ = write!(
        html,
        r#"<details><summary>All {} trades</summary><div class="table-wrap"><table class="trades"><thead><tr><th>date</th><th>position</th><th class="num">close</th></tr></thead><tbody>"#,
        trades.trades.len()
    );
    for trade in &trades.trades {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{:.2}</td></tr>"#,
            date(Timestamp(trade.timestamp)),
            describe(trade.from, trade.to),
            trade.price
        );
    }
    html.push_str("</tbody></table></div></details></section>");
    html
}

fn genes_section(report: &RunReport) -> String {
    if report.genes.is_empty() {
        return String::new();
    }
    let generation = report.stats.last().map_or(0, |s| s.generation + 1);
    let mut html = format!(
        r#"<section id="genes"><h2>Gene distributions</h2><p class="muted">The {} individuals of generation {generation} over each gene's bounds; the dashed line is the best genome.</p><div class="grid-genes">"#,
        report.population
    );
    for gene in &report.genes {
        html.push_str(&gene_figure(gene));
    }
    html.push_str("</div></section>");
    html
}

fn gene_figure(gene: &GeneView) -> String {
    let histogram = Histogram {
        id: format!("gene-{}", gene.name),
        bins: gene
            .bins
            .iter()
            .map(|(label, count, title)| Bin { label: label.clone(), count: *count, title: title.clone() })
            .collect(),
        best_bin: gene.best_bin,
    };
    format!(
        r#"<figure class="figure" data-figure="gene-{0}"><figcaption><b>{0}</b><span>{1}</span></figcaption>{2}</figure>"#,
        escape(&gene.name),
        escape(&gene.bounds),
        histogram.to_svg()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn configuration_is_flattened() {
        let mut rows = Vec::new();
        flatten("", &serde_json::json!({"a": {"b": 1, "c": "x"}, "d": null}), &mut rows);
        assert_eq!(rows, [("a.b".into(), "1".into()), ("a.c".into(), "x".into()), ("d".into(), "–".into())]);
    }
}
