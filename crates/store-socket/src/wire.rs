//! The messages on the socket: the handshake, one request variant per port
//! method, the responses, and the wire forms of the types that do not
//! serialize as they are (errors, and records holding floats that may be NaN).

use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_core::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Lease, LeaseRequest,
    NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskOutcome, TaskRecord, TaskState,
    WorkerId, WorkerInfo, WorkerRecord,
};
use strata_core::{
    BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, InvalidInput, MarketSummary, RowError, StoreError,
    Symbol, TimeRange, ValidationReport, WriteReport,
};

/// The protocol version this build speaks (the `strata_socket` field of the handshake; 3 added
/// `complete_and_lease`, 4 `delete_run`).
pub const PROTOCOL_VERSION: u64 = 4;

/// The client's first frame: `{"strata_socket": 1}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) strata_socket: u64,
}

/// The server's answer to [`Hello`]: its version, and either the stores it
/// serves or why it refuses.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Welcome {
    pub(crate) strata_socket: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) market: Option<StoreInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) evolution: Option<StoreInfo>,
}

/// What a client learns about a served store at connect time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoreInfo {
    pub(crate) display: String,
    pub(crate) capabilities: Capabilities,
}

/// One call of a port method. `WriteBars` is followed by one binary frame
/// holding the batch as an Arrow IPC stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    WriteBars,
    QueryBars { query: BarQuery },
    Summary,
    Digest { query: DigestQuery },
    DeleteBars { symbol: Symbol, range: TimeRange },
    Health,
    CreateRun { spec: RunSpec },
    GetRun { run: RunId },
    ListRuns,
    SetRunStatus { run: RunId, status: RunStatus },
    TransitionRun { run: RunId, from: Vec<RunStatus>, to: RunStatus },
    DeleteRun { run: RunId },
    SaveGeneration { generation: Generation, expected_latest: Option<u32> },
    LoadGeneration { run: RunId, number: u32 },
    LatestGeneration { run: RunId },
    EnqueueTasks { run: RunId, generation: u32, tasks: Vec<NewTask>, max_attempts: u32 },
    LeaseTasks { request: LeaseRequest },
    Heartbeat { worker: WorkerId, ttl: Duration },
    CompleteTasks { worker: WorkerId, completions: Vec<WireCompletion> },
    CompleteAndLease { worker: WorkerId, completions: Vec<WireCompletion>, next: LeaseRequest },
    ReleaseTasks { worker: WorkerId, leases: Vec<(TaskKey, FencingToken)> },
    RequeueExpired,
    RequeueParked { run: RunId },
    TaskCounts { run: RunId, generation: u32 },
    ListTasks { run: RunId, generation: u32 },
    RegisterWorker { worker: WorkerInfo },
    ListWorkers,
    RecordGenerationStats { stats: WireStats },
    GenerationStats { run: RunId },
    CachedFitness { keys: Vec<String> },
    AcquireCoordinator { run: RunId, holder: WorkerId, ttl: Duration },
    RenewCoordinator { lease: RoleLease, ttl: Duration },
    ReleaseCoordinator { lease: RoleLease },
}

impl Request {
    /// The port method, for logs.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Request::WriteBars => "write_bars",
            Request::QueryBars { .. } => "query_bars",
            Request::Summary => "summary",
            Request::Digest { .. } => "digest",
            Request::DeleteBars { .. } => "delete_bars",
            Request::Health => "health",
            Request::CreateRun { .. } => "create_run",
            Request::GetRun { .. } => "get_run",
            Request::ListRuns => "list_runs",
            Request::SetRunStatus { .. } => "set_run_status",
            Request::TransitionRun { .. } => "transition_run",
            Request::DeleteRun { .. } => "delete_run",
            Request::SaveGeneration { .. } => "save_generation",
            Request::LoadGeneration { .. } => "load_generation",
            Request::LatestGeneration { .. } => "latest_generation",
            Request::EnqueueTasks { .. } => "enqueue_tasks",
            Request::LeaseTasks { .. } => "lease_tasks",
            Request::Heartbeat { .. } => "heartbeat",
            Request::CompleteTasks { .. } => "complete_tasks",
            Request::CompleteAndLease { .. } => "complete_and_lease",
            Request::ReleaseTasks { .. } => "release_tasks",
            Request::RequeueExpired => "requeue_expired",
            Request::RequeueParked { .. } => "requeue_parked",
            Request::TaskCounts { .. } => "task_counts",
            Request::ListTasks { .. } => "list_tasks",
            Request::RegisterWorker { .. } => "register_worker",
            Request::ListWorkers => "list_workers",
            Request::RecordGenerationStats { .. } => "record_generation_stats",
            Request::GenerationStats { .. } => "generation_stats",
            Request::CachedFitness { .. } => "cached_fitness",
            Request::AcquireCoordinator { .. } => "acquire_coordinator",
            Request::RenewCoordinator { .. } => "renew_coordinator",
            Request::ReleaseCoordinator { .. } => "release_coordinator",
        }
    }
}

/// The answer to one request. A query answers with any number of `Batch`
/// (each followed by one binary frame) and then `End` or `Error`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Error(WireError),
    Written(WriteReport),
    Batch,
    End,
    Summary(MarketSummary),
    Digests(Vec<DayDigest>),
    Count(u64),
    Health(HealthReport),
    Run(RunRecord),
    Runs(Vec<RunRecord>),
    Done,
    Generation(Generation),
    MaybeGeneration(Option<Generation>),
    Leases(Vec<Lease>),
    Statuses(Vec<CompletionStatus>),
    /// `complete_and_lease`: the statuses, and the lease or the lease's own error.
    CompletedAndLeased(Vec<CompletionStatus>, std::result::Result<Vec<Lease>, WireError>),
    TaskCounts(TaskCounts),
    Tasks(Vec<WireTaskRecord>),
    Workers(Vec<WorkerRecord>),
    Stats(Vec<WireStats>),
    Cached(Vec<Option<WireCachedFitness>>),
    MaybeRole(Option<RoleLease>),
    Flag(bool),
}

impl Response {
    /// The variant's name, for a protocol error message.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Response::Error(_) => "Error",
            Response::Written(_) => "Written",
            Response::Batch => "Batch",
            Response::End => "End",
            Response::Summary(_) => "Summary",
            Response::Digests(_) => "Digests",
            Response::Count(_) => "Count",
            Response::Health(_) => "Health",
            Response::Run(_) => "Run",
            Response::Runs(_) => "Runs",
            Response::Done => "Done",
            Response::Generation(_) => "Generation",
            Response::MaybeGeneration(_) => "MaybeGeneration",
            Response::Leases(_) => "Leases",
            Response::Statuses(_) => "Statuses",
            Response::CompletedAndLeased(..) => "CompletedAndLeased",
            Response::TaskCounts(_) => "TaskCounts",
            Response::Tasks(_) => "Tasks",
            Response::Workers(_) => "Workers",
            Response::Stats(_) => "Stats",
            Response::Cached(_) => "Cached",
            Response::MaybeRole(_) => "MaybeRole",
            Response::Flag(_) => "Flag",
        }
    }
}

// ---- Floats ----
//
// JSON has no NaN or infinity (serde_json writes them as `null` and cannot
// read them back), and a GA's statistics are NaN when nothing was evaluated.
// Floats of evolution records therefore travel as their IEEE-754 bit
// patterns: exact, NaN included. (Bars travel as Arrow, bit-exact too.)

/// A float as its bit pattern.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Bits(u64);

impl From<f64> for Bits {
    fn from(value: f64) -> Self {
        Bits(value.to_bits())
    }
}

impl From<Bits> for f64 {
    fn from(bits: Bits) -> Self {
        f64::from_bits(bits.0)
    }
}

/// [`Completion`] with its fitness as bits. A frame without `cache_key` (from
/// a build before the fitness cache) reads as `None`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireCompletion {
    key: TaskKey,
    token: FencingToken,
    outcome: WireOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
enum WireOutcome {
    Succeeded { fitness: Bits, result: String },
    Failed { error: String },
}

impl From<Completion> for WireCompletion {
    fn from(completion: Completion) -> Self {
        let outcome = match completion.outcome {
            TaskOutcome::Succeeded { fitness, result } => WireOutcome::Succeeded { fitness: fitness.into(), result },
            TaskOutcome::Failed { error } => WireOutcome::Failed { error },
        };
        WireCompletion { key: completion.key, token: completion.token, outcome, cache_key: completion.cache_key }
    }
}

impl From<WireCompletion> for Completion {
    fn from(wire: WireCompletion) -> Self {
        let outcome = match wire.outcome {
            WireOutcome::Succeeded { fitness, result } => TaskOutcome::Succeeded { fitness: fitness.into(), result },
            WireOutcome::Failed { error } => TaskOutcome::Failed { error },
        };
        Completion { key: wire.key, token: wire.token, outcome, cache_key: wire.cache_key }
    }
}

/// [`CachedFitness`] with its fitness as bits.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireCachedFitness {
    key: String,
    fitness: Bits,
    result: String,
}

impl From<CachedFitness> for WireCachedFitness {
    fn from(cached: CachedFitness) -> Self {
        WireCachedFitness { key: cached.key, fitness: cached.fitness.into(), result: cached.result }
    }
}

impl From<WireCachedFitness> for CachedFitness {
    fn from(wire: WireCachedFitness) -> Self {
        CachedFitness { key: wire.key, fitness: wire.fitness.into(), result: wire.result }
    }
}

/// [`TaskRecord`] with its fitness as bits.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireTaskRecord {
    key: TaskKey,
    payload: String,
    state: TaskState,
    attempts: u32,
    max_attempts: u32,
    token: FencingToken,
    worker: Option<WorkerId>,
    lease_expires_at: Option<strata_core::Timestamp>,
    fitness: Option<Bits>,
    result: Option<String>,
    error: Option<String>,
}

impl From<TaskRecord> for WireTaskRecord {
    fn from(task: TaskRecord) -> Self {
        WireTaskRecord {
            key: task.key,
            payload: task.payload,
            state: task.state,
            attempts: task.attempts,
            max_attempts: task.max_attempts,
            token: task.token,
            worker: task.worker,
            lease_expires_at: task.lease_expires_at,
            fitness: task.fitness.map(Bits::from),
            result: task.result,
            error: task.error,
        }
    }
}

impl From<WireTaskRecord> for TaskRecord {
    fn from(wire: WireTaskRecord) -> Self {
        TaskRecord {
            key: wire.key,
            payload: wire.payload,
            state: wire.state,
            attempts: wire.attempts,
            max_attempts: wire.max_attempts,
            token: wire.token,
            worker: wire.worker,
            lease_expires_at: wire.lease_expires_at,
            fitness: wire.fitness.map(f64::from),
            result: wire.result,
            error: wire.error,
        }
    }
}

/// [`GenerationStats`] with its floats as bits.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireStats {
    run: RunId,
    generation: u32,
    best: Bits,
    mean: Bits,
    std: Bits,
    diversity: Bits,
    evaluated: u32,
}

impl From<GenerationStats> for WireStats {
    fn from(stats: GenerationStats) -> Self {
        WireStats {
            run: stats.run,
            generation: stats.generation,
            best: stats.best.into(),
            mean: stats.mean.into(),
            std: stats.std.into(),
            diversity: stats.diversity.into(),
            evaluated: stats.evaluated,
        }
    }
}

impl From<WireStats> for GenerationStats {
    fn from(wire: WireStats) -> Self {
        GenerationStats {
            run: wire.run,
            generation: wire.generation,
            best: wire.best.into(),
            mean: wire.mean.into(),
            std: wire.std.into(),
            diversity: wire.diversity.into(),
            evaluated: wire.evaluated,
        }
    }
}

// ---- Errors ----

/// A [`StoreError`] on the wire: its kind, its fields, and its source chain as text.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    InvalidRows { total_rows: usize, errors: Vec<WireRowError> },
    InvalidArgument { message: String },
    NotFound { what: String },
    Conflict { what: String },
    Unavailable { backend: String, what: String, source: Option<String>, retries_exhausted: bool },
    Timeout { backend: String, what: String, retries_exhausted: bool },
    Unsupported { backend: String, operation: String },
    Internal { backend: String, what: String, source: Option<String> },
}

/// A [`RowError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireRowError {
    row: usize,
    column: String,
    reason: String,
    first_row: Option<usize>,
}

/// The source chain of an error, joined with `: `.
fn source_text(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut parts = Vec::new();
    let mut next = error.source();
    while let Some(source) = next {
        parts.push(source.to_string());
        next = source.source();
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

impl From<&StoreError> for WireError {
    fn from(error: &StoreError) -> Self {
        match error {
            StoreError::InvalidInput(InvalidInput::Rows(report)) => WireError::InvalidRows {
                total_rows: report.total_rows,
                errors: report
                    .errors
                    .iter()
                    .map(|row| WireRowError {
                        row: row.row,
                        column: row.column.to_string(),
                        reason: row.reason.clone(),
                        first_row: row.first_row,
                    })
                    .collect(),
            },
            StoreError::InvalidInput(InvalidInput::Argument(message)) => {
                WireError::InvalidArgument { message: message.clone() }
            }
            StoreError::NotFound { what } => WireError::NotFound { what: what.clone() },
            StoreError::Conflict { what } => WireError::Conflict { what: what.clone() },
            StoreError::Unavailable { backend, what, retries_exhausted, .. } => WireError::Unavailable {
                backend: backend.to_string(),
                what: what.clone(),
                source: source_text(error),
                retries_exhausted: *retries_exhausted,
            },
            StoreError::Timeout { backend, what, retries_exhausted } => WireError::Timeout {
                backend: backend.to_string(),
                what: what.clone(),
                retries_exhausted: *retries_exhausted,
            },
            StoreError::Unsupported { backend, operation } => {
                WireError::Unsupported { backend: backend.to_string(), operation: operation.to_string() }
            }
            StoreError::Internal { backend, what, .. } => {
                WireError::Internal { backend: backend.to_string(), what: what.clone(), source: source_text(error) }
            }
            // A kind added to core later: keep its message.
            other => WireError::Internal {
                backend: other.backend().unwrap_or("unknown").to_string(),
                what: other.to_string(),
                source: source_text(other),
            },
        }
    }
}

impl From<WireError> for StoreError {
    fn from(wire: WireError) -> Self {
        match wire {
            WireError::InvalidRows { total_rows, errors } => StoreError::from(ValidationReport {
                total_rows,
                errors: errors
                    .into_iter()
                    .map(|row| RowError {
                        row: row.row,
                        column: intern(row.column),
                        reason: row.reason,
                        first_row: row.first_row,
                    })
                    .collect(),
            }),
            WireError::InvalidArgument { message } => StoreError::invalid(message),
            WireError::NotFound { what } => StoreError::not_found(what),
            WireError::Conflict { what } => StoreError::conflict(what),
            WireError::Unavailable { backend, what, source, retries_exhausted } => StoreError::Unavailable {
                backend: backend.into(),
                what,
                source: source.map(|text| Box::new(RemoteSource(text)) as strata_core::BoxError),
                retries_exhausted,
            },
            WireError::Timeout { backend, what, retries_exhausted } => {
                let error = StoreError::timeout(backend, what);
                if retries_exhausted { error.after_retries() } else { error }
            }
            WireError::Unsupported { backend, operation } => StoreError::unsupported(backend, intern(operation)),
            WireError::Internal { backend, what, source } => StoreError::Internal {
                backend: backend.into(),
                what,
                source: source.map(|text| Box::new(RemoteSource(text)) as strata_core::BoxError),
            },
        }
    }
}

/// The source of a remote error, as the serving process printed it.
#[derive(Debug)]
pub(crate) struct RemoteSource(String);

impl fmt::Display for RemoteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RemoteSource {}

/// A `&'static str` for a column or operation name that came over the wire
/// (`RowError::column` and `StoreError::Unsupported::operation` are static).
/// Known names cost nothing; any other distinct name is allocated once and
/// kept, so memory is bounded by the names the server's code can produce.
fn intern(text: String) -> &'static str {
    const KNOWN: &[&str] = &[
        "write_bars",
        "query_bars",
        "summary",
        "digest",
        "delete_bars",
        "health",
        "create_run",
        "get_run",
        "list_runs",
        "set_run_status",
        "transition_run",
        "delete_run",
        "save_generation",
        "load_generation",
        "latest_generation",
        "enqueue_tasks",
        "lease_tasks",
        "heartbeat",
        "complete_tasks",
        "complete_and_lease",
        "release_tasks",
        "requeue_expired",
        "requeue_parked",
        "task_counts",
        "list_tasks",
        "register_worker",
        "list_workers",
        "record_generation_stats",
        "generation_stats",
        "cached_fitness",
        "acquire_coordinator",
        "renew_coordinator",
        "release_coordinator",
    ];
    if let Some(known) = strata_core::schema::COLUMNS.iter().chain(KNOWN).find(|known| **known == text) {
        return known;
    }
    static OTHERS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut others = OTHERS.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(seen) = others.get(text.as_str()) {
        return seen;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    others.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(error: &StoreError) -> StoreError {
        let json = serde_json::to_vec(&WireError::from(error)).unwrap();
        StoreError::from(serde_json::from_slice::<WireError>(&json).unwrap())
    }

    #[test]
    fn every_error_kind_keeps_its_kind_message_and_retry_marker() {
        let report = ValidationReport {
            total_rows: 3,
            errors: vec![
                RowError { row: 1, column: "high", reason: "below low".into(), first_row: None },
                RowError { row: 2, column: "timestamp", reason: "duplicate".into(), first_row: Some(0) },
            ],
        };
        let cases = vec![
            StoreError::from(report.clone()),
            StoreError::invalid("bad symbol"),
            StoreError::not_found("run r"),
            StoreError::conflict("generation moved on"),
            StoreError::unavailable("duckdb", "file is locked", Some("lock held by pid 7".into())),
            StoreError::unavailable("neon", "connection refused", None).after_retries(),
            StoreError::timeout("neon", "query").after_retries(),
            StoreError::timeout("neon", "query"),
            StoreError::unsupported("efs", "digest"),
            StoreError::unsupported("efs", "a future operation"),
            StoreError::internal("memory", "bug"),
        ];
        for error in cases {
            let back = round_trip(&error);
            assert_eq!(back.kind(), error.kind(), "{error}");
            assert_eq!(back.to_string(), error.to_string());
            assert_eq!(back.retries_exhausted(), error.retries_exhausted(), "{error}");
            assert_eq!(back.backend(), error.backend());
            assert_eq!(
                back.validation_report().map(ToString::to_string),
                error.validation_report().map(ToString::to_string)
            );
            assert_eq!(
                std::error::Error::source(&back).map(ToString::to_string),
                std::error::Error::source(&error).map(ToString::to_string)
            );
        }
        assert_eq!(round_trip(&StoreError::from(report.clone())).validation_report(), Some(&report));
    }

    #[test]
    fn nan_and_infinite_fitness_survive_json() {
        let stats = GenerationStats {
            run: RunId::new("r").unwrap(),
            generation: 1,
            best: f64::NEG_INFINITY,
            mean: f64::NAN,
            std: -0.0,
            diversity: 0.1 + 0.2,
            evaluated: 0,
        };
        let json = serde_json::to_string(&WireStats::from(stats.clone())).unwrap();
        let back = GenerationStats::from(serde_json::from_str::<WireStats>(&json).unwrap());
        assert_eq!(back.best, f64::NEG_INFINITY);
        assert!(back.mean.is_nan());
        assert_eq!(back.std.to_bits(), (-0.0f64).to_bits());
        assert_eq!(back.diversity, 0.1 + 0.2);
    }

    #[test]
    fn completions_without_a_cache_key_still_decode_and_cached_fitness_keeps_nan() {
        let old_frame = r#"{"key":{"run":"r","generation":0,"individual":1},"token":7,"outcome":{"Succeeded":{"fitness":4607182418800017408,"result":"{}"}}}"#;
        let completion = Completion::from(serde_json::from_str::<WireCompletion>(old_frame).unwrap());
        assert_eq!(completion.cache_key, None);
        assert_eq!(completion.outcome, TaskOutcome::Succeeded { fitness: 1.0, result: "{}".into() });
        let keyed = Completion { cache_key: Some("ab12".into()), ..completion };
        let json = serde_json::to_string(&WireCompletion::from(keyed.clone())).unwrap();
        assert_eq!(Completion::from(serde_json::from_str::<WireCompletion>(&json).unwrap()), keyed);
        let cached = CachedFitness { key: "k".into(), fitness: f64::NAN, result: "{}".into() };
        let json = serde_json::to_string(&WireCachedFitness::from(cached)).unwrap();
        assert!(CachedFitness::from(serde_json::from_str::<WireCachedFitness>(&json).unwrap()).fitness.is_nan());
    }

    #[test]
    fn ids_and_symbols_are_validated_when_read() {
        assert!(serde_json::from_str::<Symbol>("\"^GSPC\"").is_ok());
        assert!(serde_json::from_str::<Symbol>("\"x'; DROP\"").is_err());
        assert!(serde_json::from_str::<RunId>("\"a b\"").is_err());
        assert_eq!(serde_json::to_string(&WorkerId::new("host:1").unwrap()).unwrap(), "\"host:1\"");
        let request = Request::DeleteBars {
            symbol: Symbol::new("BRK.B").unwrap(),
            range: TimeRange::new(strata_core::Timestamp(1), strata_core::Timestamp(2)).unwrap(),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(matches!(serde_json::from_str::<Request>(&json).unwrap(), Request::DeleteBars { .. }));
    }
}
