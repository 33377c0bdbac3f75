//! Evolution state: runs, generations, evaluation tasks, workers and statistics.
//!
//! A run evolves a population over generations. The coordinator saves each
//! generation's population, enqueues one evaluation task per individual, and
//! workers lease tasks, evaluate them and complete them with the fencing token
//! they were given. See [`crate::ports::evolution::EvolutionStore`] for the contract.

use std::fmt;
use std::str::FromStr;

use crate::bar::Timestamp;
use crate::error::{Result, StoreError};

fn check_id(kind: &str, text: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if text.is_empty() || text.len() > 64 || !text.chars().all(ok_char) {
        return Err(StoreError::invalid(format!(
            "{kind} {text:?} must be 1 to 64 characters of ASCII letters, digits and - _ . :"
        )));
    }
    Ok(())
}

macro_rules! id_type {
    ($name:ident, $kind:literal) => {
        #[doc = concat!("A validated ", $kind, " (1 to 64 characters of ASCII letters, digits and `- _ . :`).")]
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
        pub struct $name(String);

        /// Deserializing validates, as `new` does.
        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                $name::new(text).map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            #[doc = concat!("Validates and wraps a ", $kind, ".")]
            pub fn new(text: impl Into<String>) -> Result<Self> {
                let text = text.into();
                check_id($kind, &text)?;
                Ok($name(text))
            }

            /// The id text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(text: &str) -> Result<Self> {
                $name::new(text)
            }
        }
    };
}

id_type!(RunId, "run id");
id_type!(WorkerId, "worker id");

/// Lifecycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RunStatus {
    /// Created, no generation evaluated yet.
    Pending,
    /// Being evolved.
    Running,
    /// All generations done.
    Completed,
    /// Stopped by an error.
    Failed,
    /// Stopped on request; its tasks are no longer leased.
    Cancelled,
    /// Its coordinator was interrupted (Ctrl-C, SIGTERM) and said so before
    /// exiting; nothing is leased until `strata evolve --resume` runs it again.
    Interrupted,
}

impl RunStatus {
    /// Every status, for parsing and docs.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether tasks of a run in this status may be leased.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Self> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            StoreError::invalid(format!(
                "unknown run status {text:?}; expected pending, running, completed, failed, cancelled or interrupted"
            ))
        })
    }
}

/// What defines a run. Creating the same spec twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunSpec {
    /// Run id, chosen by the caller.
    pub id: RunId,
    /// Strategy name.
    pub strategy: String,
    /// Seed every random choice derives from.
    pub seed: u64,
    /// Individuals per generation.
    pub population_size: u32,
    /// Generations to evolve.
    pub generations: u32,
    /// Opaque configuration (JSON text): symbols, window, operators.
    pub config: String,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunRecord {
    /// The spec it was created with.
    pub spec: RunSpec,
    /// Current status.
    pub status: RunStatus,
    /// Creation time (store clock).
    pub created_at: Timestamp,
    /// Last status change (store clock).
    pub updated_at: Timestamp,
}

/// One member of a population.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Individual {
    /// Position in the population, 0-based.
    pub index: u32,
    /// Genome, opaque to the store (JSON text).
    pub genome: String,
}

/// A whole population of one generation.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Generation {
    /// Run.
    pub run: RunId,
    /// Generation number, 0-based.
    pub number: u32,
    /// Individuals, by index.
    pub individuals: Vec<Individual>,
}

impl Generation {
    /// Sorts the individuals by index and refuses an index listed twice
    /// (`InvalidInput`). Adapters call this before saving, so populations are
    /// compared and returned ordered by index whatever order they came in.
    pub fn normalized(mut self) -> Result<Self> {
        self.individuals.sort_by_key(|individual| individual.index);
        if let Some(pair) = self.individuals.windows(2).find(|pair| pair[0].index == pair[1].index) {
            return Err(StoreError::invalid(format!(
                "generation {} of run {} lists individual {} twice",
                self.number, self.run, pair[0].index
            )));
        }
        Ok(self)
    }
}

/// Identifies an evaluation task: one individual of one generation of one run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TaskKey {
    /// Run.
    pub run: RunId,
    /// Generation number.
    pub generation: u32,
    /// Individual index.
    pub individual: u32,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.run, self.generation, self.individual)
    }
}

/// A task to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NewTask {
    /// Individual index.
    pub individual: u32,
    /// Work description, opaque to the store (JSON text).
    pub payload: String,
}

/// A fencing token: strictly increases every time any task is leased, so a
/// newer lease always carries a larger token than an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A request for work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LeaseRequest {
    /// Who asks.
    pub worker: WorkerId,
    /// Only tasks of this run, or of any active run.
    pub run: Option<RunId>,
    /// At most this many tasks.
    pub max_tasks: u32,
    /// Lease duration.
    pub ttl: std::time::Duration,
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Lease {
    /// Which task.
    pub key: TaskKey,
    /// Its payload.
    pub payload: String,
    /// Present this when completing.
    pub token: FencingToken,
    /// 1 for the first lease of the task, 2 for the second, ...
    pub attempt: u32,
    /// When the lease lapses unless extended by a heartbeat (store clock).
    pub expires_at: Timestamp,
}

/// A held coordinator role of one run: at most one holder at a time, fenced
/// by its token (see the "Coordinator role" section of
/// [`crate::ports::evolution::EvolutionStore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RoleLease {
    /// The run this role coordinates.
    pub run: RunId,
    /// Who holds it.
    pub holder: WorkerId,
    /// Present this to renew or release: a later grant to another holder
    /// always carries a larger token.
    pub token: FencingToken,
    /// When the role lapses unless renewed (store clock).
    pub expires_at: Timestamp,
}

/// What a worker reports for a task.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TaskOutcome {
    /// Evaluated.
    Succeeded {
        /// The fitness.
        fitness: f64,
        /// Metrics or other result detail (JSON text).
        result: String,
    },
    /// The evaluation failed; the task is retried until its attempts are used up, then parked.
    Failed {
        /// Why.
        error: String,
    },
}

/// One completion in a batch.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Completion {
    /// Which task.
    pub key: TaskKey,
    /// The token of the lease that did the work.
    pub token: FencingToken,
    /// The result.
    pub outcome: TaskOutcome,
    /// The fitness-cache key of what was evaluated (opaque text the caller
    /// computes, at most [`MAX_CACHE_KEY_BYTES`] bytes). When the completion
    /// is recorded as a success, its fitness and result are cached under
    /// this key in the same transaction (see [`CachedFitness`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub cache_key: Option<String>,
}

/// The longest fitness-cache key a store accepts, in bytes (a hex SHA-256
/// is 64).
pub const MAX_CACHE_KEY_BYTES: usize = 128;

/// Refuses a fitness-cache key longer than [`MAX_CACHE_KEY_BYTES`] bytes
/// (`InvalidInput`). Stores call it before reading or writing the cache.
pub fn check_cache_key(key: &str) -> Result<()> {
    if key.len() > MAX_CACHE_KEY_BYTES {
        let start: String = key.chars().take(16).collect();
        return Err(StoreError::invalid(format!(
            "fitness-cache key {start:?}... is {} bytes long; at most {MAX_CACHE_KEY_BYTES} are allowed",
            key.len()
        )));
    }
    Ok(())
}

/// [`check_cache_key`] of every completion's cache key: the check that refuses
/// a whole `complete_tasks` (or `complete_and_lease`) call before anything changes.
pub fn check_cache_keys(completions: &[Completion]) -> Result<()> {
    completions.iter().filter_map(|completion| completion.cache_key.as_deref()).try_for_each(check_cache_key)
}

/// A cached evaluation: the fitness and result a successful completion
/// stored under its cache key.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CachedFitness {
    /// The cache key it was stored under.
    pub key: String,
    /// The fitness.
    pub fitness: f64,
    /// Metrics or other result detail (JSON text), as completed.
    pub result: String,
}

/// What happened to one completion (or, for `release_tasks`, one handed-back lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CompletionStatus {
    /// The result was recorded; the task is done.
    Recorded,
    /// The failure was recorded and the task went back to the queue.
    Requeued,
    /// The failure used up the task's attempts; it is parked with its error.
    Parked,
    /// Refused: the token is not the task's current lease (it expired and was
    /// leased again, was requeued, or the task is already done).
    Stale,
    /// The lease was handed back (`release_tasks`): the task is pending
    /// again and the attempt it used is not counted.
    Released,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TaskState {
    /// Waiting for a worker.
    Pending,
    /// Held by a worker.
    Leased,
    /// Completed successfully.
    Done,
    /// Failed too often; not retried.
    Parked,
}

impl TaskState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Leased => "leased",
            TaskState::Done => "done",
            TaskState::Parked => "parked",
        }
    }
}

impl FromStr for TaskState {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Self> {
        [TaskState::Pending, TaskState::Leased, TaskState::Done, TaskState::Parked]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| StoreError::invalid(format!("unknown task state {text:?}")))
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TaskRecord {
    /// Which task.
    pub key: TaskKey,
    /// Payload.
    pub payload: String,
    /// State.
    pub state: TaskState,
    /// Leases granted so far.
    pub attempts: u32,
    /// Attempts allowed before parking.
    pub max_attempts: u32,
    /// Token of the latest lease (0 before the first).
    pub token: FencingToken,
    /// Holder while leased.
    pub worker: Option<WorkerId>,
    /// Lease expiry while leased.
    pub lease_expires_at: Option<Timestamp>,
    /// Fitness once done.
    pub fitness: Option<f64>,
    /// Result detail once done.
    pub result: Option<String>,
    /// Last failure message.
    pub error: Option<String>,
}

/// Task counts of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TaskCounts {
    /// Waiting.
    pub pending: u64,
    /// Held by workers (expired leases included until requeued or re-leased).
    pub leased: u64,
    /// Completed.
    pub done: u64,
    /// Parked after too many failures.
    pub parked: u64,
}

impl TaskCounts {
    /// All tasks.
    pub fn total(&self) -> u64 {
        self.pending + self.leased + self.done + self.parked
    }

    /// True when nothing is pending or leased.
    pub fn is_finished(&self) -> bool {
        self.pending == 0 && self.leased == 0
    }
}

/// A worker announcing itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WorkerInfo {
    /// Worker id.
    pub id: WorkerId,
    /// Host it runs on.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WorkerRecord {
    /// What it announced.
    pub info: WorkerInfo,
    /// First registration (store clock).
    pub registered_at: Timestamp,
    /// Last registration, lease or heartbeat (store clock).
    pub last_seen: Timestamp,
}

/// Statistics of one evaluated generation.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GenerationStats {
    /// Run.
    pub run: RunId,
    /// Generation number.
    pub generation: u32,
    /// Best fitness.
    pub best: f64,
    /// Mean fitness.
    pub mean: f64,
    /// Standard deviation of fitness.
    pub std: f64,
    /// Genome diversity, 0 to 1.
    pub diversity: f64,
    /// Individuals evaluated.
    pub evaluated: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(RunId::new("run-2026-11-22_a").is_ok());
        assert!(RunId::new("").is_err());
        assert!(RunId::new("a b").is_err());
        assert!(WorkerId::new("host:1234").is_ok());
        assert!(WorkerId::new("x".repeat(65)).is_err());
    }

    #[test]
    fn generations_normalize_by_index_and_refuse_duplicates() {
        let run = RunId::new("r").unwrap();
        let individual = |index: u32| Individual { index, genome: format!("g{index}") };
        let shuffled =
            Generation { run: run.clone(), number: 0, individuals: vec![individual(2), individual(0), individual(1)] };
        let indexes: Vec<u32> = shuffled.normalized().unwrap().individuals.iter().map(|i| i.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        let twice = Generation { run, number: 0, individuals: vec![individual(1), individual(1)] };
        assert!(matches!(twice.normalized(), Err(StoreError::InvalidInput(_))));
    }

    #[test]
    fn cache_keys_are_limited_to_128_bytes() {
        assert!(check_cache_key(&"a".repeat(64)).is_ok(), "a hex SHA-256");
        assert!(check_cache_key(&"a".repeat(MAX_CACHE_KEY_BYTES)).is_ok());
        assert!(check_cache_key("").is_ok(), "opaque text, checked for length only");
        let error = check_cache_key(&"é".repeat(65)).unwrap_err();
        assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
        assert!(error.to_string().contains("130 bytes"), "{error}");
    }

    #[test]
    fn statuses_parse_back() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
        }
        assert!("paused".parse::<RunStatus>().is_err());
    }
}
