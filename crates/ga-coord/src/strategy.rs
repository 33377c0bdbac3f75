//! Trading strategies: the open [`Strategy`] trait, the four built-ins
//! (moving-average crossover, RSI mean reversion, Bollinger-band breakout,
//! Donchian channel) and the [`StrategyRegistry`] workers look names up in.
//!
//! A strategy maps a genome and a price series to one position per bar
//! (1 long, 0 flat, -1 short). The position at bar t may use bars 0..=t only;
//! the backtest applies it to the return from t to t+1.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::backtest::PriceSeries;
use crate::error::{GaError, GaResult};
use crate::genome::{Gene, GeneSpec, Genome, GenomeSpec};

/// A trading strategy whose parameters are a genome.
///
/// Implement it to add your own and register it in a [`StrategyRegistry`].
pub trait Strategy: Send + Sync + std::fmt::Debug + 'static {
    /// Unique name (used in run specs and task payloads).
    fn name(&self) -> &str;
    /// One line for `--help` and listings.
    fn description(&self) -> &str;
    /// The genes and their bounds.
    fn genome_spec(&self) -> GenomeSpec;
    /// One position per bar of `series`; entry t may depend on bars 0..=t only.
    fn positions(&self, genome: &Genome, series: &PriceSeries) -> GaResult<Vec<f64>>;
}

/// Strategies by name. [`StrategyRegistry::default`] holds the four built-ins.
#[derive(Debug, Clone)]
pub struct StrategyRegistry {
    strategies: BTreeMap<String, Arc<dyn Strategy>>,
}

impl StrategyRegistry {
    /// A registry without any strategy.
    pub fn empty() -> Self {
        StrategyRegistry { strategies: BTreeMap::new() }
    }

    /// Adds (or replaces) a strategy under its name.
    pub fn register(&mut self, strategy: Arc<dyn Strategy>) {
        self.strategies.insert(strategy.name().to_string(), strategy);
    }

    /// The strategy called `name`.
    pub fn get(&self, name: &str) -> GaResult<Arc<dyn Strategy>> {
        self.strategies
            .get(name)
            .cloned()
            .ok_or_else(|| GaError::Config(format!("unknown strategy {name:?}; known: {}", self.names().join(", "))))
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.strategies.keys().cloned().collect()
    }

    /// Every strategy, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Strategy>> {
        self.strategies.values()
    }
}

impl Default for StrategyRegistry {
    fn default() -> Self {
        let mut registry = StrategyRegistry::empty();
        registry.register(Arc::new(MovingAverageCrossover));
        registry.register(Arc::new(RsiMeanReversion));
        registry.register(Arc::new(BollingerBreakout));
        registry.register(Arc::new(DonchianChannel));
        registry
    }
}

fn int(genome: &Genome, index: usize) -> GaResult<i64> {
    match genome.genes.get(index) {
        Some(Gene::Int(v)) => Ok(*v),
        other => Err(GaError::Genome(format!("gene {index} should be an integer, got {other:?}"))),
    }
}

fn float(genome: &Genome, index: usize) -> GaResult<f64> {
    match genome.genes.get(index) {
        Some(Gene::Float(v)) => Ok(*v),
        other => Err(GaError::Genome(format!("gene {index} should be a float, got {other:?}"))),
    }
}

fn choice(genome: &Genome, index: usize) -> GaResult<u32> {
    match genome.genes.get(index) {
        Some(Gene::Choice(v)) => Ok(*v),
        other => Err(GaError::Genome(format!("gene {index} should be a choice, got {other:?}"))),
    }
}

/// The value a short signal maps to: -1 when shorting is allowed, else flat.
fn short_value(side: u32) -> f64 {
    if side == 1 { -1.0 } else { 0.0 }
}

/// Prefix sums of `values - anchor` and their squares (anchoring keeps the
/// squares small so rolling variances stay accurate).
struct Prefix {
    anchor: f64,
    sum: Vec<f64>,
    squares: Vec<f64>,
}

impl Prefix {
    fn new(values: &[f64]) -> Self {
        let anchor = values.first().copied().unwrap_or(0.0);
        let mut sum = Vec::with_capacity(values.len() + 1);
        let mut squares = Vec::with_capacity(values.len() + 1);
        sum.push(0.0);
        squares.push(0.0);
        for value in values {
            let d = value - anchor;
            sum.push(sum[sum.len() - 1] + d);
            squares.push(squares[squares.len() - 1] + d * d);
        }
        Prefix { anchor, sum, squares }
    }

    /// Mean of the `window` values ending at `t` (inclusive); needs `t + 1 >= window`.
    fn mean(&self, t: usize, window: usize) -> f64 {
        self.anchor + (self.sum[t + 1] - self.sum[t + 1 - window]) / window as f64
    }

    /// Population standard deviation of the `window` values ending at `t`.
    fn std(&self, t: usize, window: usize) -> f64 {
        let n = window as f64;
        let mean = (self.sum[t + 1] - self.sum[t + 1 - window]) / n;
        let squares = (self.squares[t + 1] - self.squares[t + 1 - window]) / n;
        (squares - mean * mean).max(0.0).sqrt()
    }
}

/// Long when the fast simple moving average of closes is above the slow one;
/// short (or flat when long-only) when below.
#[derive(Debug, Clone, Copy, Default)]
pub struct MovingAverageCrossover;

impl Strategy for MovingAverageCrossover {
    fn name(&self) -> &str {
        "ma-crossover"
    }

    fn description(&self) -> &str {
        "moving-average crossover: long while SMA(fast) > SMA(slow)"
    }

    fn genome_spec(&self) -> GenomeSpec {
        GenomeSpec::new(vec![
            GeneSpec::int("fast", 2, 50),
            GeneSpec::int("slow", 10, 250),
            GeneSpec::choice("side", &["long_only", "long_short"]),
        ])
    }

    fn positions(&self, genome: &Genome, series: &PriceSeries) -> GaResult<Vec<f64>> {
        let (a, b, side) = (int(genome, 0)? as usize, int(genome, 1)? as usize, choice(genome, 2)?);
        let (fast, slow) = (a.min(b).max(1), a.max(b).max(1));
        let prefix = Prefix::new(&series.close);
        let mut positions = vec![0.0; series.len()];
        for (t, position) in positions.iter_mut().enumerate().skip(slow - 1) {
            let (f, s) = (prefix.mean(t, fast), prefix.mean(t, slow));
            *position = if f > s {
                1.0
            } else if f < s {
                short_value(side)
            } else {
                0.0
            };
        }
        Ok(positions)
    }
}

/// Buys when Wilder's RSI falls below `lower`, sells when it rises above `upper`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RsiMeanReversion;

impl Strategy for RsiMeanReversion {
    fn name(&self) -> &str {
        "rsi-reversion"
    }

    fn description(&self) -> &str {
        "RSI mean reversion: enter long when RSI(period) < lower, exit when > upper"
    }

    fn genome_spec(&self) -> GenomeSpec {
        GenomeSpec::new(vec![
            GeneSpec::int("period", 2, 30),
            GeneSpec::float("lower", 10.0, 45.0),
            GeneSpec::float("upper", 55.0, 90.0),
        ])
    }

    #[allow(clippy::needless_range_loop)] // Indexing by bar keeps the timing visible.
    fn positions(&self, genome: &Genome, series: &PriceSeries) -> GaResult<Vec<f64>> {
        let period = int(genome, 0)?.max(1) as usize;
        let (lower, upper) = (float(genome, 1)?, float(genome, 2)?);
        let mut positions = vec![0.0; series.len()];
        let (mut gain, mut loss) = (0.0f64, 0.0f64);
        let mut holding = false;
        for t in 1..series.len() {
            let change = series.close[t] - series.close[t - 1];
            let (up, down) = (change.max(0.0), (-change).max(0.0));
            if t <= period {
                gain += up / period as f64;
                loss += down / period as f64;
                if t < period {
                    continue;
                }
            } else {
                gain = (gain * (period as f64 - 1.0) + up) / period as f64;
                loss = (loss * (period as f64 - 1.0) + down) / period as f64;
            }
            let rsi =
                if loss == 0.0 { if gain == 0.0 { 50.0 } else { 100.0 } } else { 100.0 - 100.0 / (1.0 + gain / loss) };
            if !holding && rsi < lower {
                holding = true;
            } else if holding && rsi > upper {
                holding = false;
            }
            positions[t] = if holding { 1.0 } else { 0.0 };
        }
        Ok(positions)
    }
}

/// Long on a close above the upper Bollinger band, out again below the
/// middle band; with `long_short`, the mirror image on the lower band.
#[derive(Debug, Clone, Copy, Default)]
pub struct BollingerBreakout;

impl Strategy for BollingerBreakout {
    fn name(&self) -> &str {
        "bollinger-breakout"
    }

    fn description(&self) -> &str {
        "Bollinger breakout: long above SMA + width x std, exit below the SMA"
    }

    fn genome_spec(&self) -> GenomeSpec {
        GenomeSpec::new(vec![
            GeneSpec::int("period", 5, 100),
            GeneSpec::float("width", 0.5, 3.5),
            GeneSpec::choice("side", &["long_only", "long_short"]),
        ])
    }

    #[allow(clippy::needless_range_loop)] // Indexing by bar keeps the timing visible.
    fn positions(&self, genome: &Genome, series: &PriceSeries) -> GaResult<Vec<f64>> {
        let (period, width, side) = (int(genome, 0)?.max(2) as usize, float(genome, 1)?, choice(genome, 2)?);
        let prefix = Prefix::new(&series.close);
        let mut positions = vec![0.0; series.len()];
        let mut state = 0.0f64;
        for t in period.saturating_sub(1)..series.len() {
            let (mean, std) = (prefix.mean(t, period), prefix.std(t, period));
            let close = series.close[t];
            if close > mean + width * std {
                state = 1.0;
            } else if close < mean - width * std {
                state = short_value(side);
            } else if (state > 0.0 && close < mean) || (state < 0.0 && close > mean) {
                state = 0.0;
            }
            positions[t] = state;
        }
        Ok(positions)
    }
}

/// Turtle-style channel breakout: long when the close exceeds the highest high
/// of the previous `entry` bars, out when it falls below the lowest low of the
/// previous `exit` bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct DonchianChannel;

impl Strategy for DonchianChannel {
    fn name(&self) -> &str {
        "donchian"
    }

    fn description(&self) -> &str {
        "Donchian channel: long above the previous entry-bar high, exit below the previous exit-bar low"
    }

    fn genome_spec(&self) -> GenomeSpec {
        GenomeSpec::new(vec![GeneSpec::int("entry", 5, 120), GeneSpec::int("exit", 3, 60)])
    }

    fn positions(&self, genome: &Genome, series: &PriceSeries) -> GaResult<Vec<f64>> {
        let (entry, exit) = (int(genome, 0)?.max(1) as usize, int(genome, 1)?.max(1) as usize);
        let highest = rolling_extreme(&series.high, entry, |a, b| a >= b);
        let lowest = rolling_extreme(&series.low, exit, |a, b| a <= b);
        let mut positions = vec![0.0; series.len()];
        let mut holding = false;
        for t in 1..series.len() {
            // The channel of bars t-n..t-1 is the rolling extreme ending at t-1.
            let close = series.close[t];
            if !holding && t >= entry && close > highest[t - 1] {
                holding = true;
            } else if holding && t >= exit && close < lowest[t - 1] {
                holding = false;
            }
            positions[t] = if holding { 1.0 } else { 0.0 };
        }
        Ok(positions)
    }
}

/// For each t, the extreme (by `keeps`: true when the first argument wins) of
/// `values[t+1-window..=t]`, with a monotonic deque in O(n).
fn rolling_extreme(values: &[f64], window: usize, keeps: fn(f64, f64) -> bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut deque: VecDeque<usize> = VecDeque::new();
    for (t, value) in values.iter().enumerate() {
        while deque.back().is_some_and(|back| keeps(*value, values[*back])) {
            deque.pop_back();
        }
        deque.push_back(t);
        while deque.front().is_some_and(|front| *front + window <= t) {
            deque.pop_front();
        }
        out.push(deque.front().map_or(*value, |front| values[*front]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genome::Purpose;
    use crate::ops::random_genome;

    fn wavy(n: usize) -> PriceSeries {
        let closes: Vec<f64> = (0..n)
            .map(|i| 100.0 + 10.0 * (i as f64 / 7.0).sin() + 0.05 * i as f64 + 3.0 * (i as f64 / 2.3).cos())
            .collect();
        let mut series = PriceSeries::from_closes("W", &closes);
        series.high = closes.iter().map(|c| c + 0.5).collect();
        series.low = closes.iter().map(|c| c - 0.5).collect();
        series
    }

    #[test]
    fn no_strategy_looks_ahead() {
        let series = wavy(300);
        let registry = StrategyRegistry::default();
        for strategy in registry.iter() {
            let spec = strategy.genome_spec();
            for individual in 0..20 {
                let genome = random_genome(&spec, &mut crate::genome::stream(5, 0, individual, Purpose::Initialise));
                let base = strategy.positions(&genome, &series).unwrap();
                assert_eq!(base.len(), series.len());
                for t in [40usize, 120, 250] {
                    // Changing bar t+1 (and everything after it) must not change any decision up to t.
                    let mut changed = series.clone();
                    for later in t + 1..changed.len() {
                        changed.close[later] *= 1.5;
                        changed.high[later] *= 1.6;
                        changed.low[later] *= 1.4;
                    }
                    let moved = strategy.positions(&genome, &changed).unwrap();
                    assert_eq!(
                        base[..=t],
                        moved[..=t],
                        "{} {} looked ahead at {t}",
                        strategy.name(),
                        spec.to_text(&genome)
                    );
                }
            }
        }
    }

    #[test]
    fn moving_average_crossover_by_hand() {
        let series = PriceSeries::from_closes("T", &[1.0, 2.0, 3.0, 2.0, 1.0, 1.0]);
        let genome = Genome { genes: vec![Gene::Int(1), Gene::Int(3), Gene::Choice(1)] };
        // SMA3 from t=2: 2, 7/3, 2, 4/3; closes 3, 2, 1, 1.
        let positions = MovingAverageCrossover.positions(&genome, &series).unwrap();
        assert_eq!(positions, vec![0.0, 0.0, 1.0, -1.0, -1.0, -1.0]);
    }

    #[test]
    fn donchian_by_hand() {
        let series = PriceSeries::from_closes("T", &[5.0, 4.0, 6.0, 7.0, 3.0, 2.0]);
        let genome = Genome { genes: vec![Gene::Int(2), Gene::Int(1)] };
        // t=2: 6 > max(5,4) enter; t=3: hold; t=4: 3 < low[3]=7 exit.
        assert_eq!(DonchianChannel.positions(&genome, &series).unwrap(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn registry_lists_the_built_ins() {
        let registry = StrategyRegistry::default();
        assert_eq!(registry.names(), ["bollinger-breakout", "donchian", "ma-crossover", "rsi-reversion"]);
        assert!(matches!(registry.get("nope"), Err(GaError::Config(_))));
    }
}
