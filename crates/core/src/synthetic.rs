//! A deterministic synthetic bar generator for large tests and benchmarks.
//!
//! The same [`SyntheticSpec`] always yields the same bars, bit for bit, on
//! every platform: prices follow a geometric random walk driven by a
//! SplitMix64 stream seeded from (seed, symbol), and every bar satisfies
//! validation (low <= open, close <= high, vwap within [low, high], volume > 0).

use crate::bar::{Bar, Timestamp};
use crate::schema::BarBatch;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Symbols, each an independent series.
    pub symbols: Vec<String>,
    /// First bar's timestamp.
    pub start: Timestamp,
    /// Spacing between bars in microseconds.
    pub interval_micros: i64,
    /// Bars per symbol.
    pub bars_per_symbol: usize,
    /// Seed.
    pub seed: u64,
}

impl SyntheticSpec {
    /// `symbols` names `SYN000`, `SYN001`, ... with one-minute bars from 2020-01-01.
    pub fn minutes(symbol_count: usize, bars_per_symbol: usize, seed: u64) -> Self {
        SyntheticSpec {
            symbols: (0..symbol_count).map(|i| format!("SYN{i:03}")).collect(),
            start: Timestamp(1_577_836_800_000_000),
            interval_micros: 60_000_000,
            bars_per_symbol,
            seed,
        }
    }

    /// Refuses a spec whose bars would leave the valid timestamp range
    /// ([`crate::bar::MIN_TIMESTAMP`], [`crate::bar::MAX_TIMESTAMP`]), saying what to change.
    pub fn check_range(&self) -> Result<(), String> {
        use crate::bar::{MAX_TIMESTAMP, MIN_TIMESTAMP};
        let last = i64::try_from(self.bars_per_symbol.saturating_sub(1))
            .ok()
            .and_then(|steps| steps.checked_mul(self.interval_micros))
            .and_then(|span| self.start.micros().checked_add(span));
        match last {
            Some(last) if self.start >= MIN_TIMESTAMP && last < MAX_TIMESTAMP.micros() => Ok(()),
            _ => Err(format!(
                "{} bars every {} s from {} run past {MAX_TIMESTAMP} (or start before {MIN_TIMESTAMP}); use fewer \
                 bars, a shorter --interval or an earlier --start",
                self.bars_per_symbol,
                self.interval_micros as f64 / 1e6,
                self.start
            )),
        }
    }

    /// Total rows.
    pub fn total_rows(&self) -> usize {
        self.symbols.len() * self.bars_per_symbol
    }

    /// Batches of at most `batch_rows` rows, symbol by symbol in order.
    pub fn batches(&self, batch_rows: usize) -> impl Iterator<Item = BarBatch> + '_ {
        let batch_rows = batch_rows.max(1);
        self.symbols.iter().flat_map(move |symbol| {
            let mut series = Series::new(self, symbol);
            let mut remaining = self.bars_per_symbol;
            std::iter::from_fn(move || {
                if remaining == 0 {
                    return None;
                }
                let take = remaining.min(batch_rows);
                remaining -= take;
                let bars: Vec<Bar> = (0..take).map(|_| series.next_bar()).collect();
                Some(BarBatch::from_bars(&bars))
            })
        })
    }

    /// Every bar as rows (for small specs).
    pub fn bars(&self) -> Vec<Bar> {
        self.batches(usize::MAX).flat_map(|batch| batch.to_bars()).collect()
    }
}

struct Series<'a> {
    spec: &'a SyntheticSpec,
    symbol: &'a str,
    rng: SplitMix64,
    index: usize,
    price: f64,
}

impl<'a> Series<'a> {
    fn new(spec: &'a SyntheticSpec, symbol: &'a str) -> Self {
        let symbol_hash =
            symbol.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x1000_0000_01b3));
        let mut rng = SplitMix64(spec.seed ^ symbol_hash);
        let price = 20.0 + 180.0 * rng.unit();
        Series { spec, symbol, rng, index: 0, price }
    }

    fn next_bar(&mut self) -> Bar {
        let timestamp = Timestamp(self.spec.start.micros() + self.spec.interval_micros * self.index as i64);
        self.index += 1;
        let open = self.price;
        let close = (open * (0.001 * self.rng.normal()).exp()).max(0.01);
        let high = open.max(close) * (1.0 + 0.0005 * self.rng.unit());
        let low = open.min(close) * (1.0 - 0.0005 * self.rng.unit());
        let vwap = low + (high - low) * self.rng.unit();
        let trades = 1 + (self.rng.next() % 500) as i64;
        let volume = (trades * (1 + (self.rng.next() % 200) as i64)) as f64;
        self.price = close;
        Bar {
            symbol: self.symbol.to_string(),
            timestamp,
            open,
            high,
            low,
            close,
            volume,
            vwap: Some(vwap),
            trade_count: Some(trades),
        }
    }
}

/// SplitMix64: tiny, fast, and identical everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // An infinite generator, not an `Iterator`; the name is SplitMix64's.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_valid_and_sized() {
        let spec = SyntheticSpec::minutes(3, 1000, 42);
        let first = spec.bars();
        assert_eq!(first.len(), 3000);
        assert_eq!(first, spec.bars());
        assert_ne!(first, SyntheticSpec::minutes(3, 1000, 43).bars());
        for batch in spec.batches(700) {
            assert!(batch.len() <= 700);
            batch.validate().unwrap();
        }
    }
}
