//! What a report shows, read from the stores and recomputed: the run's
//! summary and configuration, its final population, and, by backtesting the
//! best genomes again on the run's windows (the backtest is deterministic),
//! their equity curves, drawdowns and trades next to buy and hold.

use strata_core::evolution::{GenerationStats, RunId, RunRecord};
use strata_core::{EvolutionStore, MarketDataStore, Timestamp};
use strata_ga_coord::backtest::{PriceSeries, trace};
use strata_ga_coord::eval::{evaluate, load_window};
use strata_ga_coord::genome::fnv1a;
use strata_ga_coord::{
    DataWindow, Evaluation, GaResult, Genome, GenomeSpec, RankedIndividual, RunConfig, RunProgress, StrategyRegistry,
    summarize,
};

/// What to put in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOptions {
    /// Best genomes in the table.
    pub top: usize,
    /// Best genomes whose equity curves are drawn (at most `top`).
    pub curves: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { top: 10, curves: 3 }
    }
}

/// The bars of one symbol that a window held when the report was made.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolCoverage {
    /// Symbol.
    pub symbol: String,
    /// Bars in the window.
    pub bars: usize,
    /// First bar.
    pub first: Option<Timestamp>,
    /// Last bar.
    pub last: Option<Timestamp>,
}

/// One genome's (or buy and hold's) path through a window: the equal-weighted
/// basket of the window's symbols, on the union of their timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// `genome-1`, `genome-2`, ... or `buy-and-hold`.
    pub name: String,
    /// What the legend says.
    pub label: String,
    /// Equity (1 at the start) at each of [`WindowView::timestamps`].
    pub equity: Vec<f64>,
}

impl Curve {
    /// The drawdown at each point: equity over its running peak, minus 1 (0 or below).
    pub fn drawdown(&self) -> Vec<f64> {
        let mut peak = f64::NEG_INFINITY;
        self.equity
            .iter()
            .map(|&equity| {
                peak = peak.max(equity);
                if peak > 0.0 { equity / peak - 1.0 } else { 0.0 }
            })
            .collect()
    }
}

/// A window as the report shows it: what it held and the curves on it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowView {
    /// The window.
    pub window: DataWindow,
    /// Per symbol, the bars it held.
    pub coverage: Vec<SymbolCoverage>,
    /// FNV-1a of every bar read (timestamps and prices, bit for bit): the
    /// same number means the same data.
    pub fingerprint: u64,
    /// The x axis: every timestamp of any symbol, ascending.
    pub timestamps: Vec<i64>,
    /// The best genomes' curves, best first, then buy and hold.
    pub curves: Vec<Curve>,
    /// The best genomes' metrics on this window (out of sample: recomputed here).
    pub evaluations: Vec<Option<Evaluation>>,
}

/// What happened to a position at a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeKind {
    /// Into a position (long or short) from flat, or reversing.
    Entry,
    /// Back to flat.
    Exit,
}

/// One trade on the price chart.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeMark {
    /// When (the bar's close).
    pub timestamp: i64,
    /// The close it traded at.
    pub price: f64,
    /// The position before.
    pub from: f64,
    /// The position after.
    pub to: f64,
    /// Entry or exit.
    pub kind: TradeKind,
}

/// The best genome's trades over one symbol's prices.
#[derive(Debug, Clone, PartialEq)]
pub struct TradesView {
    /// The symbol (the window's first).
    pub symbol: String,
    /// The genome traded.
    pub genome: String,
    /// Timestamps of the bars.
    pub timestamps: Vec<i64>,
    /// Closes of the bars.
    pub close: Vec<f64>,
    /// The trades, in order.
    pub trades: Vec<TradeMark>,
}

/// How one gene spread across the final population.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneView {
    /// The gene's name.
    pub name: String,
    /// Its bounds or options, as text.
    pub bounds: String,
    /// Bins: label, count, tooltip.
    pub bins: Vec<(String, u64, String)>,
    /// The bin of the best genome's value.
    pub best_bin: Option<usize>,
}

/// Everything a run's report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The run and its status.
    pub record: RunRecord,
    /// Where it stands (generation, tasks).
    pub progress: Option<RunProgress>,
    /// Its configuration, when it parses.
    pub config: Option<RunConfig>,
    /// Statistics per evaluated generation.
    pub stats: Vec<GenerationStats>,
    /// The best genomes of the latest evaluated generation, best first.
    pub best: Vec<RankedIndividual>,
    /// The training window.
    pub in_sample: Option<WindowView>,
    /// The out-of-sample window, when the run has one.
    pub out_of_sample: Option<WindowView>,
    /// The best genome's trades on the first symbol.
    pub trades: Option<TradesView>,
    /// Gene distributions of the latest evaluated generation.
    pub genes: Vec<GeneView>,
    /// Individuals in that generation.
    pub population: usize,
    /// What could not be shown, and why.
    pub notes: Vec<String>,
    /// When the report was made.
    pub generated_at: Timestamp,
}

/// Reads a run from the stores and recomputes what its report shows.
///
/// Only the run itself must be readable: a strategy this build does not
/// know, or market data no longer in the store, leaves those charts out
/// with a note saying why.
pub async fn build_report(
    evolution: &dyn EvolutionStore,
    market: &dyn MarketDataStore,
    registry: &StrategyRegistry,
    run: &RunId,
    options: ReportOptions,
) -> GaResult<RunReport> {
    let summary = summarize(evolution, registry, None, run, options.top.max(1)).await?;
    let progress = RunProgress::read(evolution, run).await.ok();
    let mut notes = Vec::new();
    let config = match RunConfig::parse(&summary.record.spec.config) {
        Ok(config) => Some(config),
        Err(error) => {
            notes.push(format!("the run's configuration cannot be read ({error}): no data window to show"));
            None
        }
    };
    let strategy = match registry.get(&summary.record.spec.strategy) {
        Ok(strategy) => Some(strategy),
        Err(error) => {
            notes.push(format!("no equity curves, trades or gene charts: {error}"));
            None
        }
    };
    let final_population = match summary.stats.last() {
        Some(last) => evolution.load_generation(run, last.generation).await.ok(),
        None => None,
    };
    let mut report = RunReport {
        record: summary.record.clone(),
        progress,
        config: config.clone(),
        stats: summary.stats.clone(),
        best: summary.best.clone(),
        in_sample: None,
        out_of_sample: None,
        trades: None,
        genes: Vec::new(),
        population: final_population.as_ref().map_or(0, |g| g.individuals.len()),
        notes: Vec::new(),
        generated_at: Timestamp::now(),
    };
    let (Some(config), Some(strategy)) = (config, strategy) else {
        report.notes = notes;
        return Ok(report);
    };
    let spec = strategy.genome_spec();
    if let Some(generation) = &final_population {
        let genomes: Vec<Genome> =
            generation.individuals.iter().filter_map(|individual| spec.parse(&individual.genome).ok()).collect();
        let best = summary.best.first().and_then(|b| spec.parse(&b.genome).ok());
        report.genes = gene_views(&spec, &genomes, best.as_ref());
    }
    if summary.best.is_empty() {
        notes.push("no generation has been evaluated yet: no equity curves or trades".to_string());
    }
    match load_window(market, &config.window).await {
        Ok(series) => {
            report.trades = summary.best.first().and_then(|best| {
                trades_view(strategy.as_ref(), &spec, &best.genome, &series[0], &config)
                    .map_err(|error| notes.push(format!("the best genome's trades cannot be shown: {error}")))
                    .ok()
            });
            report.in_sample =
                Some(window_view(strategy.as_ref(), &config, &config.window, &series, &summary.best, options.curves));
        }
        Err(error) => notes.push(format!("the training window's bars cannot be read now: {error}")),
    }
    if let Some(test_window) = &config.test_window {
        match load_window(market, test_window).await {
            Ok(series) => {
                report.out_of_sample =
                    Some(window_view(strategy.as_ref(), &config, test_window, &series, &summary.best, options.curves))
            }
            Err(error) => notes.push(format!("the out-of-sample window's bars cannot be read now: {error}")),
        }
    }
    report.notes = notes;
    Ok(report)
}

/// The coverage and fingerprint of `series` (the bars of `window`), the
/// metrics of every `best` genome on it and the curves of the first `curves`.
fn window_view(
    strategy: &dyn strata_ga_coord::Strategy,
    config: &RunConfig,
    window: &DataWindow,
    series: &[PriceSeries],
    best: &[RankedIndividual],
    curves_drawn: usize,
) -> WindowView {
    let coverage = series
        .iter()
        .map(|one| SymbolCoverage {
            symbol: one.symbol.clone(),
            bars: one.len(),
            first: one.timestamps.first().map(|t| Timestamp(*t)),
            last: one.timestamps.last().map(|t| Timestamp(*t)),
        })
        .collect();
    let mut bytes = Vec::with_capacity(series.iter().map(|s| s.len() * 32 + s.symbol.len()).sum());
    for one in series {
        bytes.extend_from_slice(one.symbol.as_bytes());
        let prices = one.high.iter().zip(&one.low).zip(&one.close);
        for (timestamp, ((high, low), close)) in one.timestamps.iter().zip(prices) {
            bytes.extend_from_slice(&timestamp.to_le_bytes());
            for price in [high, low, close] {
                bytes.extend_from_slice(&price.to_bits().to_le_bytes());
            }
        }
    }
    let mut timestamps: Vec<i64> = series.iter().flat_map(|s| s.timestamps.iter().copied()).collect();
    timestamps.sort_unstable();
    timestamps.dedup();
    let spec = strategy.genome_spec();
    let mut curves = Vec::new();
    let mut evaluations = Vec::new();
    for (rank, individual) in best.iter().enumerate().take(curves_drawn) {
        let per_symbol: Option<Vec<Vec<f64>>> = spec.parse(&individual.genome).ok().and_then(|genome| {
            series
                .iter()
                .map(|one| strategy.positions(&genome, one).ok().map(|p| trace(one, &p, &config.backtest).equity))
                .collect()
        });
        if let Some(per_symbol) = per_symbol {
            curves.push(Curve {
                name: format!("genome-{}", rank + 1),
                label: format!("#{} {}", rank + 1, individual.genome),
                equity: basket(&timestamps, series, &per_symbol),
            });
        }
    }
    for individual in best {
        evaluations.push(evaluate(strategy, &individual.genome, series, &config.backtest).ok());
    }
    let held: Vec<Vec<f64>> =
        series.iter().map(|one| one.close.iter().map(|close| close / one.close[0]).collect()).collect();
    curves.push(Curve {
        name: "buy-and-hold".to_string(),
        label: "buy and hold".to_string(),
        equity: basket(&timestamps, series, &held),
    });
    WindowView { window: window.clone(), coverage, fingerprint: fnv1a(&bytes), timestamps, curves, evaluations }
}

/// The equal-weighted basket of per-symbol equity curves on `timestamps`:
/// each symbol's equity carried forward between its bars (1 before its first).
fn basket(timestamps: &[i64], series: &[PriceSeries], per_symbol: &[Vec<f64>]) -> Vec<f64> {
    let mut total = vec![0.0; timestamps.len()];
    for (one, equity) in series.iter().zip(per_symbol) {
        let mut next = 0;
        let mut current = 1.0;
        for (slot, at) in timestamps.iter().enumerate() {
            while next < one.timestamps.len().min(equity.len()) && one.timestamps[next] <= *at {
                current = equity[next];
                next += 1;
            }
            total[slot] += current;
        }
    }
    let count = per_symbol.len().max(1) as f64;
    total.iter().map(|sum| sum / count).collect()
}

/// The trades of `genome` on `series`.
fn trades_view(
    strategy: &dyn strata_ga_coord::Strategy,
    spec: &GenomeSpec,
    genome_text: &str,
    series: &PriceSeries,
    config: &RunConfig,
) -> GaResult<TradesView> {
    let genome = spec.parse(genome_text)?;
    let positions = strategy.positions(&genome, series)?;
    let path = trace(series, &positions, &config.backtest);
    let trades = path
        .trades
        .iter()
        .map(|trade| TradeMark {
            timestamp: series.timestamps[trade.bar],
            price: series.close[trade.bar],
            from: trade.from,
            to: trade.to,
            kind: if trade.to == 0.0 { TradeKind::Exit } else { TradeKind::Entry },
        })
        .collect();
    Ok(TradesView {
        symbol: series.symbol.clone(),
        genome: genome_text.to_string(),
        timestamps: series.timestamps.clone(),
        close: series.close.clone(),
        trades,
    })
}

/// Bins of a numeric gene: at most this many.
const GENE_BINS: usize = 12;

/// Each gene's spread over `genomes`: integers and floats in up to
/// [`GENE_BINS`] equal bins over the gene's bounds, choices one bin per option.
fn gene_views(spec: &GenomeSpec, genomes: &[Genome], best: Option<&Genome>) -> Vec<GeneView> {
    use strata_ga_coord::GeneKind;
    let mut views = Vec::with_capacity(spec.genes.len());
    for (index, gene) in spec.genes.iter().enumerate() {
        let values: Vec<f64> = genomes.iter().filter_map(|g| g.genes.get(index)).map(|v| v.as_f64()).collect();
        let best_value = best.and_then(|g| g.genes.get(index)).map(|v| v.as_f64());
        let view = match &gene.kind {
            GeneKind::Choice { options } => {
                let bins = options
                    .iter()
                    .enumerate()
                    .map(|(option, name)| {
                        let count = values.iter().filter(|v| **v as usize == option).count() as u64;
                        (name.clone(), count, format!("{name}: {count}"))
                    })
                    .collect();
                GeneView {
                    name: gene.name.clone(),
                    bounds: options.join(" | "),
                    bins,
                    best_bin: best_value.map(|v| v as usize),
                }
            }
            GeneKind::Int { min, max } => {
                let span = (max - min + 1).max(1) as usize;
                let bins = span.min(GENE_BINS);
                let width = span as f64 / bins as f64;
                let bin_of = |v: f64| (((v - *min as f64) / width).floor().max(0.0) as usize).min(bins - 1);
                let edges = |b: usize| {
                    let low = *min + (b as f64 * width).ceil() as i64;
                    let high = (*min + ((b + 1) as f64 * width).ceil() as i64 - 1).max(low);
                    (low, high)
                };
                let counted = count_bins(&values, bins, bin_of);
                GeneView {
                    name: gene.name.clone(),
                    bounds: format!("{min} to {max}"),
                    bins: (0..bins)
                        .map(|b| {
                            let (low, high) = edges(b);
                            let label = format!("{low}");
                            let range = if low == high { format!("{low}") } else { format!("{low} to {high}") };
                            (label, counted[b], format!("{range}: {}", counted[b]))
                        })
                        .collect(),
                    best_bin: best_value.map(bin_of),
                }
            }
            GeneKind::Float { min, max } => {
                let width = (max - min) / GENE_BINS as f64;
                let bin_of = |v: f64| {
                    if width > 0.0 { (((v - min) / width).floor().max(0.0) as usize).min(GENE_BINS - 1) } else { 0 }
                };
                let counted = count_bins(&values, GENE_BINS, bin_of);
                let decimals = if width >= 1.0 {
                    0
                } else if width >= 0.1 {
                    1
                } else {
                    2
                };
                GeneView {
                    name: gene.name.clone(),
                    bounds: format!("{min} to {max}"),
                    bins: (0..GENE_BINS)
                        .map(|b| {
                            let low = min + b as f64 * width;
                            let label = format!("{low:.decimals$}");
                            let tip = format!("{low:.3} to {:.3}: {}", low + width, counted[b]);
                            (label, counted[b], tip)
                        })
                        .collect(),
                    best_bin: best_value.map(bin_of),
                }
            }
        };
        views.push(view);
    }
    views
}

fn count_bins(values: &[f64], bins: usize, bin_of: impl Fn(f64) -> usize) -> Vec<u64> {
    let mut counts = vec![0u64; bins];
    for value in values {
        counts[bin_of(*value)] += 1;
    }
    counts
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_ga_coord::GeneSpec;
    use strata_ga_coord::genome::Gene;

    #[test]
    fn baskets_carry_each_symbol_forward_on_the_union_of_timestamps() {
        let a = PriceSeries { symbol: "A".into(), timestamps: vec![1, 2, 4], ..PriceSeries::default() };
        let b = PriceSeries { symbol: "B".into(), timestamps: vec![2, 3], ..PriceSeries::default() };
        let equity = basket(&[1, 2, 3, 4], &[a, b], &[vec![1.0, 1.2, 1.4], vec![1.0, 0.5]]);
        assert_eq!(equity, [1.0, 1.1, 0.85, 0.95]);
        let curve = Curve { name: "c".into(), label: "c".into(), equity: vec![1.0, 1.2, 0.9, 1.3] };
        let drawdown = curve.drawdown();
        assert!((drawdown[2] + 0.25).abs() < 1e-12 && drawdown[3] == 0.0, "{drawdown:?}");
    }

    #[test]
    fn genes_are_binned_over_their_bounds() {
        let spec = GenomeSpec::new(vec![
            GeneSpec::int("fast", 2, 50),
            GeneSpec::float("width", 0.5, 3.5),
            GeneSpec::choice("side", &["long", "long-short"]),
        ]);
        let genome =
            |fast, width, side| Genome { genes: vec![Gene::Int(fast), Gene::Float(width), Gene::Choice(side)] };
        let genomes = [genome(2, 0.5, 0), genome(50, 3.5, 1), genome(10, 1.0, 1)];
        let views = gene_views(&spec, &genomes, Some(&genomes[1]));
        assert_eq!(views.len(), 3);
        assert_eq!(views[0].bins.len(), 12);
        assert_eq!(views[0].bins.iter().map(|b| b.1).sum::<u64>(), 3, "every individual in one bin");
        assert_eq!(views[0].best_bin, Some(11), "the upper bound is in the last bin");
        assert_eq!(views[0].bins[0].1, 1);
        assert_eq!(views[1].bins[11].1, 1);
        assert_eq!(views[2].bins.iter().map(|b| b.1).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(views[2].bins[1].0, "long-short");
        let narrow = gene_views(&GenomeSpec::new(vec![GeneSpec::int("n", 1, 3)]), &[], None);
        assert_eq!(narrow[0].bins.len(), 3, "one bin per value when there are few");
    }
}
