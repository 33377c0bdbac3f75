//! The crate's error type: store errors plus what the engine itself can get wrong.

use strata_core::StoreError;

/// Result alias of this crate.
pub type GaResult<T, E = GaError> = std::result::Result<T, E>;

/// What went wrong in the GA engine, a coordinator or a worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GaError {
    /// A store call failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A genome text does not fit its strategy's genes.
    #[error("bad genome: {0}")]
    Genome(String),
    /// The run configuration is unusable (unknown strategy, empty window, ...).
    #[error("bad run configuration: {0}")]
    Config(String),
    /// The data window holds no usable bars.
    #[error("no data: {0}")]
    NoData(String),
    /// Another coordinator holds the run's coordinator lease.
    #[error("run {run} is coordinated by another process (its lease is held); retry after it expires")]
    CoordinatorBusy {
        /// The run.
        run: String,
    },
    /// This coordinator lost its lease to another one.
    #[error("lost the coordinator lease of run {run} to another process")]
    LostLease {
        /// The run.
        run: String,
    },
    /// The run was cancelled.
    #[error("run {run} was cancelled")]
    Cancelled {
        /// The run.
        run: String,
    },
    /// Every evaluation of a generation failed (and was parked); the run is marked failed.
    #[error("every evaluation of generation {generation} of run {run} failed; the first error: {cause}")]
    Evaluation {
        /// The run.
        run: String,
        /// The generation.
        generation: u32,
        /// The first stored error.
        cause: String,
    },
    /// The run is in a state that does not allow this (failed, ...).
    #[error("run {run} is {status}")]
    RunState {
        /// The run.
        run: String,
        /// Its status.
        status: String,
    },
}
