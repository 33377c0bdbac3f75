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
    /// The Neon branch the bars are read from, for a run pinned to a data
    /// snapshot (`strata evolve --snapshot`); `None` reads the store in use.
    /// Part of every payload's fitness-cache key, so results on a snapshot
    /// are never mixed with results on live data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The digest of the run's bars when it was created ([`DataPin::Digest`]), for a run
    /// that reads the store in use: part of every payload's fitness-cache key, so a
    /// result computed on other bars is never taken from the durable cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl DataWindow {
    /// A short description: `AAPL,MSFT [2003-01-01T00:00:00Z, 2010-01-01T00:00:00Z)`.
    pub fn describe(&self) -> String {
        let bound = |t: Option<i64>| t.map_or_else(|| "..".to_string(), |t| Timestamp(t).to_string());
        let pinned = self.snapshot.as_ref().map_or_else(String::new, |branch| format!(" on snapshot {branch}"));
        format!("{} [{}, {}){pinned}", self.symbols.join(","), bound(self.start), bound(self.end))
    }
}

/// What data a run is held to, recorded in [`RunConfig::data`] when it is
/// created, so that a result can be reproduced later or a change of the
/// data be seen before a resume mixes two versions of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataPin {
    /// Every worker reads the run's bars from a Neon branch made when the
    /// run was created (the windows name it in [`DataWindow::snapshot`]).
    Snapshot {
        /// Branch name (`evolution-<run>`).
        branch: String,
        /// Branch id (`br-...`).
        branch_id: String,
        /// The write-ahead-log position of the parent the branch starts at, when Neon tells it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lsn: Option<String>,
    },
    /// The digest of the bars of the run's windows as they were when it was
    /// created ([`data_digest`](crate::eval::data_digest)); a resume on
    /// other bars is refused unless the caller allows it.
    Digest {
        /// `sha256:` and 64 hex digits.
        digest: String,
        /// Bars hashed.
        bars: u64,
    },
}

impl DataPin {
    /// One line for `strata runs show`.
    pub fn describe(&self) -> String {
        match self {
            DataPin::Snapshot { branch, branch_id, lsn } => format!(
                "Neon branch {branch} ({branch_id}){}",
                lsn.as_ref().map_or_else(String::new, |lsn| format!(" at LSN {lsn}"))
            ),
            DataPin::Digest { digest, bars } => format!("{bars} bars with digest {digest}"),
        }
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
    /// The data the run is held to (`None` for runs made before pinning existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataPin>,
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
            data: None,
        }
    }

    /// Pins the run to `pin`: every window (training and test) names the
    /// snapshot branch it reads, or the digest of the bars it read.
    pub fn pin(&mut self, pin: DataPin) {
        for window in self.windows_mut() {
            (window.snapshot, window.digest) = match &pin {
                DataPin::Snapshot { branch, .. } => (Some(branch.clone()), None),
                DataPin::Digest { digest, .. } => (None, Some(digest.clone())),
            };
        }
        self.data = Some(pin);
    }

    /// The pin of `stored` (another configuration of the same run), on this one.
    pub fn pin_as(&mut self, stored: &RunConfig) {
        match stored.data.clone() {
            Some(pin) => self.pin(pin),
            None => self.unpin(),
        }
    }

    /// Removes the pin: no snapshot, no digest.
    pub fn unpin(&mut self) {
        self.data = None;
        for window in self.windows_mut() {
            (window.snapshot, window.digest) = (None, None);
        }
    }

    /// The windows the run reads: training, then test when there is one.
    pub fn windows(&self) -> impl Iterator<Item = &DataWindow> {
        std::iter::once(&self.window).chain(self.test_window.as_ref())
    }

    fn windows_mut(&mut self) -> impl Iterator<Item = &mut DataWindow> {
        std::iter::once(&mut self.window).chain(self.test_window.as_mut())
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
    /// from everything else ([`RunConfig::derived_id`]), so running the same
    /// command twice resumes the same run.
    pub fn spec(
        &self,
        id: Option<RunId>,
        strategy: &str,
        seed: u64,
        population_size: u32,
        generations: u32,
    ) -> GaResult<RunSpec> {
        let id = match id {
            Some(id) => id,
            None => {
                let snapshot = self.windows().any(|window| window.snapshot.is_some());
                self.derived_id(strategy, seed, population_size, generations, snapshot)?
            }
        };
        let config = self.to_text();
        Ok(RunSpec { id, strategy: strategy.to_string(), seed, population_size, generations, config })
    }

    /// The id of a run of this configuration: `<strategy>-<16 hex digits>`
    /// of everything that defines it. What the run is pinned to is left out
    /// but for whether it reads a snapshot, so the same command on changed
    /// data names the same run (and is told the data changed), and a pinned
    /// run is never the unpinned run of the same settings.
    pub fn derived_id(
        &self,
        strategy: &str,
        seed: u64,
        population_size: u32,
        generations: u32,
        snapshot: bool,
    ) -> GaResult<RunId> {
        let mut unpinned = self.clone();
        unpinned.unpin();
        let mut key = format!("{strategy}|{seed}|{population_size}|{generations}|{}", unpinned.to_text());
        if snapshot {
            key.push_str("|snapshot");
        }
        Ok(RunId::new(format!("{strategy}-{:016x}", fnv1a(key.as_bytes())))?)
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

    fn training() -> RunConfig {
        let window = DataWindow {
            symbols: vec!["AAPL".into()],
            start: Some(0),
            end: Some(86_400_000_000),
            snapshot: None,
            digest: None,
        };
        let mut config = RunConfig::new(window.clone());
        config.test_window = Some(DataWindow { start: window.end, end: Some(2 * 86_400_000_000), ..window });
        config
    }

    #[test]
    fn a_pin_reaches_every_window_and_the_cache_keys_but_not_the_derived_id() {
        let plain = training();
        let id = |config: &RunConfig| config.spec(None, "ma-crossover", 1, 10, 2).unwrap().id;
        let mut digested = plain.clone();
        digested.pin(DataPin::Digest { digest: "sha256:ab".into(), bars: 3 });
        assert!(digested.windows().all(|window| window.digest.as_deref() == Some("sha256:ab")), "{digested:?}");
        assert_eq!(id(&digested), id(&plain), "the same command on other bars names the same run");
        let payload = |window: &DataWindow| EvalPayload {
            strategy: "ma-crossover".into(),
            genome: "{}".into(),
            window: window.clone(),
            backtest: BacktestConfig::default(),
        };
        assert_ne!(payload(&digested.window).cache_key(), payload(&plain.window).cache_key(), "bars are in the key");

        let mut pinned = plain.clone();
        pinned.pin(DataPin::Snapshot { branch: "evolution-r".into(), branch_id: "br-1".into(), lsn: None });
        assert!(pinned.windows().all(|window| window.snapshot.as_deref() == Some("evolution-r")));
        assert_ne!(id(&pinned), id(&plain), "a pinned run is not the unpinned run of the same settings");
        assert_eq!(
            pinned.derived_id("ma-crossover", 1, 10, 2, true).unwrap(),
            plain.derived_id("ma-crossover", 1, 10, 2, true).unwrap(),
            "the id of a snapshot run is known before its branch is made"
        );
        assert!(pinned.window.describe().ends_with(" on snapshot evolution-r"), "{}", pinned.window.describe());

        // A stored run's pin carries over to the same settings, and the text round-trips.
        let mut again = plain.clone();
        again.pin_as(&pinned);
        assert_eq!(again, pinned);
        assert_eq!(RunConfig::parse(&pinned.to_text()).unwrap(), pinned);
        again.pin_as(&plain);
        assert_eq!(again, plain, "an unpinned run stays unpinned");
        assert!(!plain.to_text().contains("snapshot") && !plain.to_text().contains("digest"), "old runs' text");
    }

    #[test]
    fn cache_keys_are_versioned_hashes_of_everything_that_makes_the_fitness() {
        let window = DataWindow { symbols: vec!["AAPL".into()], start: None, end: None, snapshot: None, digest: None };
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
