//! What a run stores in `RunSpec::config` and each task in its payload, as JSON.
//!
//! A task payload is self-contained (strategy, genome, data window, backtest
//! settings), so a worker needs nothing but the payload and a market store.

use serde::{Deserialize, Serialize};
use strata_core::Timestamp;
use strata_core::evolution::{RunId, RunSpec};

use crate::backtest::BacktestConfig;
use crate::error::{GaError, GaResult};
use crate::genome::fnv1a;
use crate::ops::OperatorConfig;

/// The bars a strategy trains (or is tested) on: symbols and a half-open time range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataWindow {
    /// Symbols, each backtested separately and averaged (equal weights).
    pub symbols: Vec<String>,
    /// First instant included (microseconds UTC), or from the first bar.
    pub start: Option<i64>,
    /// First instant excluded, or to the last bar.
    pub end: Option<i64>,
}

impl DataWindow {
    /// A short description: `AAPL,MSFT [2003-01-01T00:00:00Z, 2010-01-01T00:00:00Z)`.
    pub fn describe(&self) -> String {
        let bound = |t: Option<i64>| t.map_or_else(|| "..".to_string(), |t| Timestamp(t).to_string());
        format!("{} [{}, {})", self.symbols.join(","), bound(self.start), bound(self.end))
    }
}

/// The configuration of a run, kept as JSON text in `RunSpec::config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The training window.
    pub window: DataWindow,
    /// Optional out-of-sample window (walk-forward): the best genomes of the
    /// final generation are backtested on it and reported, never trained on.
    #[serde(default)]
    pub test_window: Option<DataWindow>,
    /// Backtest and fitness settings.
    #[serde(default)]
    pub backtest: BacktestConfig,
    /// Genetic operator settings.
    #[serde(default)]
    pub operators: OperatorConfig,
    /// Leases a task may get before it is parked.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_max_attempts() -> u32 {
    3
}

impl RunConfig {
    /// A configuration with default backtest and operator settings.
    pub fn new(window: DataWindow) -> Self {
        RunConfig {
            window,
            test_window: None,
            backtest: BacktestConfig::default(),
            operators: OperatorConfig::default(),
            max_attempts: default_max_attempts(),
        }
    }

    /// The JSON text stored in the run spec.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a run spec's configuration.
    pub fn parse(text: &str) -> GaResult<Self> {
        serde_json::from_str(text).map_err(|e| GaError::Config(format!("run configuration is not valid: {e}")))
    }

    /// A run spec for this configuration. With `id` `None`, the id is derived
    /// from everything else (`<strategy>-<16 hex digits>`), so running the same
    /// command twice resumes the same run.
    pub fn spec(
        &self,
        id: Option<RunId>,
        strategy: &str,
        seed: u64,
        population_size: u32,
        generations: u32,
    ) -> GaResult<RunSpec> {
        let config = self.to_text();
        let id = match id {
            Some(id) => id,
            None => {
                let key = format!("{strategy}|{seed}|{population_size}|{generations}|{config}");
                RunId::new(format!("{strategy}-{:016x}", fnv1a(key.as_bytes())))?
            }
        };
        Ok(RunSpec { id, strategy: strategy.to_string(), seed, population_size, generations, config })
    }
}

/// The payload of one evaluation task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPayload {
    /// Strategy name.
    pub strategy: String,
    /// Canonical genome text.
    pub genome: String,
    /// Data window.
    pub window: DataWindow,
    /// Backtest and fitness settings.
    pub backtest: BacktestConfig,
}

/// The version of what a fitness means: bump it with any change to the
/// backtest, the fitness objectives or a strategy that changes the fitness of
/// a genome, so results computed by older code miss the durable cache
/// instead of being reused.
pub const FITNESS_VERSION: u32 = 1;

impl EvalPayload {
    /// The durable fitness-cache key of this evaluation: the hex SHA-256 of
    /// [`FITNESS_VERSION`] and the payload's canonical text (strategy, genome,
    /// data window and backtest settings), `f1-` and 64 hex digits.
    pub fn cache_key(&self) -> String {
        Self::cache_key_of(&self.to_text())
    }

    /// [`EvalPayload::cache_key`] of a payload's canonical text, as a task
    /// carries it (a worker hashes the text it leased instead of writing it again).
    pub fn cache_key_of(text: &str) -> String {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(FITNESS_VERSION.to_le_bytes());
        hasher.update(text.as_bytes());
        let mut key = String::with_capacity(67);
        key.push_str("f1-");
        for byte in hasher.finalize() {
            key.push_str(&format!("{byte:02x}"));
        }
        key
    }

    /// The JSON text of the task.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a task payload.
    pub fn parse(text: &str) -> GaResult<Self> {
        serde_json::from_str(text).map_err(|e| GaError::Config(format!("task payload is not valid: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_versioned_hashes_of_everything_that_makes_the_fitness() {
        let window = DataWindow { symbols: vec!["AAPL".into()], start: None, end: None };
        let payload = EvalPayload {
            strategy: "ma-crossover".into(),
            genome: r#"{"fast":5}"#.into(),
            window: window.clone(),
            backtest: BacktestConfig::default(),
        };
        let key = payload.cache_key();
        assert_eq!(key, EvalPayload::cache_key_of(&payload.to_text()), "a worker hashes the leased text");
        assert!(key.starts_with("f1-") && key.len() == 67, "{key}");
        assert!(key[3..].bytes().all(|byte| byte.is_ascii_hexdigit()), "{key}");
        let mut costlier = payload.clone();
        costlier.backtest.cost_bps += 1.0;
        assert_ne!(costlier.cache_key(), key, "backtest settings are part of the key");
        let other_genome = EvalPayload { genome: r#"{"fast":6}"#.into(), ..payload };
        assert_ne!(other_genome.cache_key(), key);
    }
}
