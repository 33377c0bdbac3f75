//! The backtest: turns a strategy's positions into returns and metrics, and
//! metrics into a fitness.
//!
//! Timing rule (no look-ahead): the position decided at the close of bar t
//! (from bars 0..=t only) earns the return from close t to close t+1. Costs
//! of a change of position are charged on that same period, in basis points
//! of the traded amount (`|new - old|`).

use serde::{Deserialize, Serialize};

/// One symbol's bars as columns, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriceSeries {
    /// Symbol.
    pub symbol: String,
    /// Timestamps (microseconds UTC).
    pub timestamps: Vec<i64>,
    /// Highs.
    pub high: Vec<f64>,
    /// Lows.
    pub low: Vec<f64>,
    /// Closes.
    pub close: Vec<f64>,
}

impl PriceSeries {
    /// A series of closes only (highs and lows equal the close); for tests and examples.
    pub fn from_closes(symbol: &str, closes: &[f64]) -> Self {
        PriceSeries {
            symbol: symbol.to_string(),
            timestamps: (0..closes.len() as i64).map(|day| day * 86_400_000_000).collect(),
            high: closes.to_vec(),
            low: closes.to_vec(),
            close: closes.to_vec(),
        }
    }

    /// Bars in the series.
    pub fn len(&self) -> usize {
        self.close.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    /// Return periods per year implied by the median spacing of bars: 252 for
    /// daily bars (spacing of 12 hours to 4 days, weekends included), else
    /// calendar time divided by the spacing.
    pub fn periods_per_year(&self) -> f64 {
        let mut gaps: Vec<i64> = self.timestamps.windows(2).map(|w| w[1] - w[0]).filter(|gap| *gap > 0).collect();
        if gaps.is_empty() {
            return 252.0;
        }
        let middle = gaps.len() / 2;
        let (_, median, _) = gaps.select_nth_unstable(middle);
        let seconds = *median as f64 / 1e6;
        if (43_200.0..=345_600.0).contains(&seconds) { 252.0 } else { 365.25 * 86_400.0 / seconds }
    }
}

/// What the fitness rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Annualised Sharpe ratio.
    Sharpe,
    /// Total return.
    TotalReturn,
    /// Annualised return over maximum drawdown.
    Calmar,
}

/// Settings of the backtest and the fitness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BacktestConfig {
    /// Cost of trading, in basis points of the traded amount.
    pub cost_bps: f64,
    /// Return periods per year for annualising; `None` = from the bar spacing.
    pub periods_per_year: Option<f64>,
    /// What the fitness rewards.
    pub objective: Objective,
    /// Fewer trades than this (summed over symbols) are penalised.
    pub min_trades: u32,
    /// Penalty when no trade at all; scaled down linearly up to `min_trades`.
    pub trade_penalty: f64,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            cost_bps: 5.0,
            periods_per_year: None,
            objective: Objective::Sharpe,
            min_trades: 10,
            trade_penalty: 1.0,
        }
    }
}

/// Performance of a strategy on one or more series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    /// Compounded return over the window (0.1 = +10 %).
    pub total_return: f64,
    /// Annualised Sharpe ratio (mean / sample std of period returns x sqrt(periods per year)), 0 without variance.
    pub sharpe: f64,
    /// Largest fall of equity from a previous peak, 0 to 1.
    pub max_drawdown: f64,
    /// Annualised compounded return.
    pub annual_return: f64,
    /// Changes of position (entering, leaving or reversing counts one each).
    pub trades: u32,
    /// Fraction of return periods with a position.
    pub exposure: f64,
    /// Return periods.
    pub periods: u32,
}

/// Runs the backtest of precomputed positions on one series.
///
/// `positions[t]` is the position held from close t to close t+1 (decided
/// with data up to t); the last entry is never used because no return follows it.
#[allow(clippy::needless_range_loop)] // Indexing by bar keeps the t -> t+1 timing visible.
pub fn backtest(series: &PriceSeries, positions: &[f64], config: &BacktestConfig) -> Metrics {
    let n = series.len().min(positions.len());
    if n < 2 {
        return Metrics::default();
    }
    let cost = config.cost_bps / 10_000.0;
    let mut equity = 1.0f64;
    let mut peak = 1.0f64;
    let mut max_drawdown = 0.0f64;
    let mut trades = 0u32;
    let mut exposed = 0u32;
    let mut previous = 0.0f64;
    let (mut sum, mut sum_squares) = (0.0f64, 0.0f64);
    let periods = n - 1;
    for t in 0..periods {
        let position = positions[t];
        let change = (position - previous).abs();
        if change > 0.0 {
            trades += 1;
        }
        if position != 0.0 {
            exposed += 1;
        }
        let market = series.close[t + 1] / series.close[t] - 1.0;
        let period_return = position * market - cost * change;
        previous = position;
        sum += period_return;
        sum_squares += period_return * period_return;
        equity *= 1.0 + period_return;
        peak = peak.max(equity);
        max_drawdown = max_drawdown.max(1.0 - equity / peak);
    }
    let count = periods as f64;
    let mean = sum / count;
    let variance = if periods > 1 { ((sum_squares - sum * mean) / (count - 1.0)).max(0.0) } else { 0.0 };
    let per_year = config.periods_per_year.unwrap_or_else(|| series.periods_per_year());
    let std = variance.sqrt();
    let sharpe = if std > 1e-12 { mean / std * per_year.sqrt() } else { 0.0 };
    let years = count / per_year;
    let annual_return = if equity > 0.0 && years > 0.0 { equity.powf(1.0 / years) - 1.0 } else { -1.0 };
    Metrics {
        total_return: equity - 1.0,
        sharpe,
        max_drawdown,
        annual_return,
        trades,
        exposure: exposed as f64 / count,
        periods: periods as u32,
    }
}

/// One change of position in a [`Trace`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trade {
    /// The bar at whose close the position changes (it earns from this close on).
    pub bar: usize,
    /// The position held before.
    pub from: f64,
    /// The position held after.
    pub to: f64,
}

/// What [`backtest`] computes along the way, bar by bar: for the report's
/// equity curves, drawdowns and trade markers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// Equity at the close of each bar, 1 at the first (costs included, as in [`backtest`]).
    pub equity: Vec<f64>,
    /// Every change of position, in order ([`Metrics::trades`] of them).
    pub trades: Vec<Trade>,
}

/// The bar-by-bar path of [`backtest`]: the same timing rule and costs, so
/// the last equity is `1 + total_return` and the trades are as many as
/// [`Metrics::trades`]. Slower than [`backtest`] (it keeps every value): for
/// reports, not for the fitness.
pub fn trace(series: &PriceSeries, positions: &[f64], config: &BacktestConfig) -> Trace {
    let n = series.len().min(positions.len());
    let cost = config.cost_bps / 10_000.0;
    let mut equity = Vec::with_capacity(n);
    let mut trades = Vec::new();
    let mut previous = 0.0f64;
    if n > 0 {
        equity.push(1.0);
    }
    for t in 0..n.saturating_sub(1) {
        let position = positions[t];
        let change = (position - previous).abs();
        if change > 0.0 {
            trades.push(Trade { bar: t, from: previous, to: position });
        }
        let market = series.close[t + 1] / series.close[t] - 1.0;
        let last = equity[t];
        equity.push(last * (1.0 + position * market - cost * change));
        previous = position;
    }
    Trace { equity, trades }
}

/// Combines per-symbol metrics of an equal-weighted basket: returns, ratios
/// and exposure are averaged, the drawdown is the worst, trades and periods add up.
pub fn combine(per_symbol: &[Metrics]) -> Metrics {
    if per_symbol.is_empty() {
        return Metrics::default();
    }
    let count = per_symbol.len() as f64;
    let mean = |f: fn(&Metrics) -> f64| per_symbol.iter().map(f).sum::<f64>() / count;
    Metrics {
        total_return: mean(|m| m.total_return),
        sharpe: mean(|m| m.sharpe),
        max_drawdown: per_symbol.iter().map(|m| m.max_drawdown).fold(0.0, f64::max),
        annual_return: mean(|m| m.annual_return),
        trades: per_symbol.iter().map(|m| m.trades).sum(),
        exposure: mean(|m| m.exposure),
        periods: per_symbol.iter().map(|m| m.periods).sum(),
    }
}

/// The fitness of metrics: the objective minus `trade_penalty x (missing
/// trades / min_trades)` when there were fewer than `min_trades` trades.
/// Always finite (non-finite values become -1e9).
pub fn fitness(metrics: &Metrics, config: &BacktestConfig) -> f64 {
    let objective = match config.objective {
        Objective::Sharpe => metrics.sharpe,
        Objective::TotalReturn => metrics.total_return,
        Objective::Calmar => {
            if metrics.max_drawdown > 1e-12 {
                metrics.annual_return / metrics.max_drawdown
            } else {
                metrics.annual_return
            }
        }
    };
    let missing = config.min_trades.saturating_sub(metrics.trades);
    let penalty =
        if config.min_trades > 0 { config.trade_penalty * missing as f64 / config.min_trades as f64 } else { 0.0 };
    let value = objective - penalty;
    if value.is_finite() { value } else { -1e9 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_metrics() {
        // Closes 100, 110, 99, 99, 108.9; long at bars 0 and 1, flat at 2, long at 3.
        // Period returns before costs: +10 %, -10 %, 0 (flat), +10 %.
        // Costs 10 bps per unit traded: trade at t=0 (0 -> 1), t=2 (1 -> 0), t=3 (0 -> 1).
        let series = PriceSeries::from_closes("T", &[100.0, 110.0, 99.0, 99.0, 108.9]);
        let positions = [1.0, 1.0, 0.0, 1.0, 0.0];
        let config = BacktestConfig { cost_bps: 10.0, periods_per_year: Some(252.0), ..BacktestConfig::default() };
        let metrics = backtest(&series, &positions, &config);
        let returns = [0.1 - 0.001, -0.1, -0.001, 0.1 - 0.001];
        let equity: f64 = returns.iter().map(|r| 1.0 + r).product();
        assert!(close(metrics.total_return, equity - 1.0), "{metrics:?}");
        assert_eq!(metrics.trades, 3);
        assert_eq!(metrics.periods, 4);
        assert!(close(metrics.exposure, 0.75));
        let mean = returns.iter().sum::<f64>() / 4.0;
        let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        assert!(
            close(metrics.sharpe, mean / std * 252f64.sqrt()),
            "{} vs {}",
            metrics.sharpe,
            mean / std * 252f64.sqrt()
        );
        // Peak after the first period: 1.099; trough after the third: 1.099 * 0.9 * 0.999.
        assert!(close(metrics.max_drawdown, 1.0 - 0.9 * 0.999), "{}", metrics.max_drawdown);
    }

    #[test]
    fn the_trace_follows_the_backtest_bar_by_bar() {
        let series = PriceSeries::from_closes("T", &[100.0, 110.0, 99.0, 99.0, 108.9, 120.0]);
        let positions = [1.0, 1.0, 0.0, -1.0, 1.0, 0.0];
        let config = BacktestConfig { cost_bps: 10.0, periods_per_year: Some(252.0), ..BacktestConfig::default() };
        let metrics = backtest(&series, &positions, &config);
        let path = trace(&series, &positions, &config);
        assert_eq!(path.equity.len(), series.len());
        assert_eq!(path.equity[0], 1.0);
        assert!(close(path.equity[5], 1.0 + metrics.total_return), "{path:?} vs {metrics:?}");
        assert_eq!(path.trades.len(), metrics.trades as usize);
        let bars: Vec<usize> = path.trades.iter().map(|trade| trade.bar).collect();
        assert_eq!(bars, [0, 2, 3, 4]);
        assert_eq!((path.trades[3].from, path.trades[3].to), (-1.0, 1.0), "a reversal is one trade");
        let mut peak = 0.0f64;
        let deepest = path.equity.iter().fold(0.0f64, |deepest, &equity| {
            peak = peak.max(equity);
            deepest.max(1.0 - equity / peak)
        });
        assert!(close(deepest, metrics.max_drawdown), "{deepest} vs {}", metrics.max_drawdown);
        assert_eq!(trace(&PriceSeries::default(), &[], &config), Trace::default());
    }

    #[test]
    fn flat_positions_earn_nothing_and_are_penalised() {
        let series = PriceSeries::from_closes("T", &[1.0, 2.0, 3.0]);
        let metrics = backtest(&series, &[0.0, 0.0, 0.0], &BacktestConfig::default());
        assert_eq!(metrics.total_return, 0.0);
        assert_eq!(metrics.sharpe, 0.0);
        assert_eq!(metrics.trades, 0);
        assert_eq!(fitness(&metrics, &BacktestConfig::default()), -1.0);
        let half = Metrics { trades: 5, ..metrics };
        assert_eq!(fitness(&half, &BacktestConfig::default()), -0.5);
    }

    #[test]
    fn periods_per_year_follow_the_spacing() {
        assert_eq!(PriceSeries::from_closes("T", &[1.0, 1.0, 1.0]).periods_per_year(), 252.0);
        let minutes = PriceSeries { timestamps: vec![0, 60_000_000, 120_000_000], ..PriceSeries::default() };
        assert!(close(minutes.periods_per_year(), 525_960.0));
    }
}
