//! `EvolutionStore` over DuckDB: runs, generations, leased evaluation tasks
//! with fencing tokens, workers and statistics. Every operation that touches
//! more than one row runs in one transaction on the writer connection; the
//! store clock is this process's `Timestamp::now()` (one file has one
//! process writing it, so every caller shares that clock). The coordinator
//! role of a run is one row of `coordinator_leases`, read and written in one
//! transaction; release clears the holder rather than deleting the row. The
//! fitness cache is `fitness_cache`, upserted in the transaction of the
//! completions that produce its rows.

use std::collections::HashMap;
use std::time::Duration;

use duckdb::types::Value;
use duckdb::{Connection, OptionalExt, params, params_from_iter};
use strata_core::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Individual, Lease,
    LeaseRequest, NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskOutcome,
    TaskRecord, TaskState, WorkerId, WorkerInfo, WorkerRecord, check_cache_key, check_cache_keys,
};
use strata_core::policy::expiry_micros;
use strata_core::{EvolutionStore, Result, StoreError, Timestamp};

use crate::error::{BACKEND, ResultExt};
use crate::schema::{ACTIVE_RUN, RUN_COLUMNS, TASK_COLUMNS};
use crate::store::DuckDbStore;

#[async_trait::async_trait]
impl EvolutionStore for DuckDbStore {
    fn capabilities(&self) -> strata_core::Capabilities {
        crate::store::CAPABILITIES
    }

    async fn create_run(&self, spec: RunSpec) -> Result<RunRecord> {
        self.with_writer("creating a run", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            if let Some(existing) = load_run(&transaction, &spec.id)? {
                if existing.spec == spec {
                    return Ok(existing);
                }
                return Err(StoreError::conflict(format!("run {} already exists with a different spec", spec.id)));
            }
            let now = Timestamp::now().micros();
            transaction
                .execute(
                    "INSERT INTO runs (id, strategy, seed, population_size, generations, config, status,
                                       created_order, created_at_us, updated_at_us)
                     VALUES (?, ?, ?, ?, ?, ?, ?, nextval('run_order'), ?, ?)",
                    params![
                        spec.id.as_str(),
                        spec.strategy,
                        spec.seed,
                        spec.population_size,
                        spec.generations,
                        spec.config,
                        RunStatus::Pending.as_str(),
                        now,
                        now
                    ],
                )
                .during("inserting a run")?;
            let record = load_run(&transaction, &spec.id)?.ok_or_else(|| missing_run(&spec.id))?;
            transaction.commit().during("committing a run")?;
            Ok(record)
        })
        .await
    }

    async fn get_run(&self, run: &RunId) -> Result<RunRecord> {
        let run = run.clone();
        self.with_reader("reading a run", move |connection| {
            load_run(connection, &run)?.ok_or_else(|| missing_run(&run))
        })
        .await
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>> {
        self.with_reader("listing runs", |connection| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY created_order DESC");
            let mut statement = connection.prepare(&sql).during("listing runs")?;
            let rows = statement.query_map([], RawRun::read).during("listing runs")?;
            let raw = rows.collect::<duckdb::Result<Vec<_>>>().during("listing runs")?;
            raw.into_iter().map(RawRun::into_record).collect()
        })
        .await
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<RunRecord> {
        let run = run.clone();
        self.with_writer("setting a run's status", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            let changed = transaction
                .execute(
                    "UPDATE runs SET status = ?, updated_at_us = ? WHERE id = ?",
                    params![status.as_str(), Timestamp::now().micros(), run.as_str()],
                )
                .during("updating a run's status")?;
            if changed == 0 {
                return Err(missing_run(&run));
            }
            let record = load_run(&transaction, &run)?.ok_or_else(|| missing_run(&run))?;
            transaction.commit().during("committing a run's status")?;
            Ok(record)
        })
        .await
    }

    async fn transition_run(&self, run: &RunId, from: &[RunStatus], to: RunStatus) -> Result<RunRecord> {
        let (run, from) = (run.clone(), from.to_vec());
        self.with_writer("changing a run's status", move |connection| {
            // One writer connection serialises this read and update; the transaction makes them one step.
            let transaction = connection.transaction().during("starting a transaction")?;
            let record = load_run(&transaction, &run)?.ok_or_else(|| missing_run(&run))?;
            if !from.contains(&record.status) {
                return Ok(record);
            }
            transaction
                .execute(
                    "UPDATE runs SET status = ?, updated_at_us = ? WHERE id = ?",
                    params![to.as_str(), Timestamp::now().micros(), run.as_str()],
                )
                .during("updating a run's status")?;
            let record = load_run(&transaction, &run)?.ok_or_else(|| missing_run(&run))?;
            transaction.commit().during("committing a run's status")?;
            Ok(record)
        })
        .await
    }

    async fn delete_run(&self, run: &RunId) -> Result<bool> {
        let run = run.clone();
        self.with_writer("deleting a run", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            // Children first, the run row last (DuckDB has no cascading foreign keys here).
            for table in ["coordinator_leases", "generation_stats", "tasks", "individuals", "generations"] {
                transaction
                    .execute(&format!("DELETE FROM {table} WHERE run_id = ?"), params![run.as_str()])
                    .during("deleting a run")?;
            }
            let deleted =
                transaction.execute("DELETE FROM runs WHERE id = ?", params![run.as_str()]).during("deleting a run")?;
            transaction.commit().during("committing a run's deletion")?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn save_generation(&self, generation: Generation, expected_latest: Option<u32>) -> Result<()> {
        let Generation { run, number, individuals } = generation.normalized()?;
        self.with_writer("saving a generation", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            require_run(&transaction, &run)?;
            if let Some(stored) = load_individuals(&transaction, &run, number)? {
                if stored == individuals {
                    return Ok(());
                }
                return Err(StoreError::conflict(format!(
                    "generation {number} of run {run} is already stored with a different population"
                )));
            }
            let latest = latest_number(&transaction, &run)?;
            if latest != expected_latest {
                return Err(StoreError::conflict(format!(
                    "run {run}: the latest stored generation is {}, not {}",
                    describe_generation(latest),
                    describe_generation(expected_latest)
                )));
            }
            let size = u32::try_from(individuals.len()).unwrap_or(u32::MAX);
            transaction
                .execute(
                    "INSERT INTO generations (run_id, generation, size, saved_at_us) VALUES (?, ?, ?, ?)",
                    params![run.as_str(), number, size, Timestamp::now().micros()],
                )
                .during("inserting a generation")?;
            {
                let mut appender = transaction.appender("individuals").during("opening the individuals appender")?;
                for individual in &individuals {
                    appender
                        .append_row(params![run.as_str(), number, individual.index, individual.genome])
                        .during("appending an individual")?;
                }
                appender.flush().during("flushing individuals")?;
            }
            transaction.commit().during("committing a generation")
        })
        .await
    }

    async fn load_generation(&self, run: &RunId, number: u32) -> Result<Generation> {
        let run = run.clone();
        self.with_reader("loading a generation", move |connection| {
            let individuals = load_individuals(connection, &run, number)?
                .ok_or_else(|| StoreError::not_found(format!("generation {number} of run {run}")))?;
            Ok(Generation { run, number, individuals })
        })
        .await
    }

    async fn latest_generation(&self, run: &RunId) -> Result<Option<Generation>> {
        let run = run.clone();
        self.with_reader("loading the latest generation", move |connection| {
            let Some(number) = latest_number(connection, &run)? else { return Ok(None) };
            let individuals = load_individuals(connection, &run, number)?.unwrap_or_default();
            Ok(Some(Generation { run, number, individuals }))
        })
        .await
    }

    async fn enqueue_tasks(&self, run: &RunId, generation: u32, tasks: Vec<NewTask>, max_attempts: u32) -> Result<u64> {
        let run = run.clone();
        let max_attempts = max_attempts.max(1);
        self.with_writer("enqueueing tasks", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            require_run(&transaction, &run)?;
            // One statement for the whole generation (a prepared INSERT run once per task was
            // re-planned each time: a third of a GA run's CPU). A repeated individual keeps its
            // first payload, as one insert per task would.
            let mut seen = std::collections::HashSet::with_capacity(tasks.len());
            let unique: Vec<&NewTask> = tasks.iter().filter(|task| seen.insert(task.individual)).collect();
            let added = if unique.is_empty() {
                0
            } else {
                let params = [
                    Value::Text(run.as_str().to_string()),
                    Value::UInt(generation),
                    Value::UInt(max_attempts),
                    list(unique.iter().map(|task| Value::UInt(task.individual))),
                    list(unique.iter().map(|task| Value::Text(task.payload.clone()))),
                ];
                transaction
                    .prepare_cached(&format!(
                        "INSERT INTO tasks (run_id, generation, individual, payload, state, attempts, max_attempts, token)
                         SELECT CAST(? AS VARCHAR), CAST(? AS UINTEGER), new.individual, new.payload, 'pending', 0,
                                CAST(? AS UINTEGER), 0
                         FROM ({}) AS new
                         ON CONFLICT (run_id, generation, individual) DO NOTHING",
                        unnest_rows(&[("individual", "UINTEGER"), ("payload", "VARCHAR")])
                    ))
                    .and_then(|mut statement| statement.execute(params_from_iter(params.iter())))
                    .during("inserting tasks")? as u64
            };
            transaction.commit().during("committing tasks")?;
            Ok(added)
        })
        .await
    }

    async fn lease_tasks(&self, request: LeaseRequest) -> Result<Vec<Lease>> {
        self.with_writer("leasing tasks", move |connection| {
            let now = Timestamp::now();
            let transaction = connection.transaction().during("starting a transaction")?;
            mark_seen(&transaction, &request.worker, now)?;
            let leases = lease_in(&transaction, request, now)?;
            transaction.commit().during("committing leases")?;
            Ok(leases)
        })
        .await
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<u64> {
        let worker = worker.clone();
        self.with_writer("extending leases", move |connection| {
            let now = Timestamp::now();
            let transaction = connection.transaction().during("starting a transaction")?;
            let extended = transaction
                .execute(
                    "UPDATE tasks SET lease_expires_at_us = ? WHERE state = 'leased' AND worker = ?",
                    params![expiry_micros(now.micros(), ttl), worker.as_str()],
                )
                .during("extending leases")?;
            mark_seen(&transaction, &worker, now)?;
            transaction.commit().during("committing a heartbeat")?;
            Ok(extended as u64)
        })
        .await
    }

    async fn complete_tasks(&self, worker: &WorkerId, completions: Vec<Completion>) -> Result<Vec<CompletionStatus>> {
        check_cache_keys(&completions)?;
        let worker = worker.clone();
        self.with_writer("completing tasks", move |connection| {
            let now = Timestamp::now();
            let transaction = connection.transaction().during("starting a transaction")?;
            mark_seen(&transaction, &worker, now)?;
            let statuses = complete_all(&transaction, &worker, &completions)?;
            cache_recorded(&transaction, &completions, &statuses, now)?;
            transaction.commit().during("committing completions")?;
            Ok(statuses)
        })
        .await
    }

    /// One transaction, one commit: the completions, then the next lease.
    async fn complete_and_lease(
        &self,
        worker: &WorkerId,
        completions: Vec<Completion>,
        next: LeaseRequest,
    ) -> Result<(Vec<CompletionStatus>, Result<Vec<Lease>>)> {
        check_cache_keys(&completions)?;
        let worker = worker.clone();
        self.with_writer("completing tasks and leasing more", move |connection| {
            let now = Timestamp::now();
            let transaction = connection.transaction().during("starting a transaction")?;
            mark_seen(&transaction, &worker, now)?;
            if next.worker != worker {
                mark_seen(&transaction, &next.worker, now)?;
            }
            let statuses = complete_all(&transaction, &worker, &completions)?;
            cache_recorded(&transaction, &completions, &statuses, now)?;
            let leases = lease_in(&transaction, next, now)?;
            transaction.commit().during("committing completions and leases")?;
            Ok((statuses, Ok(leases)))
        })
        .await
    }

    async fn release_tasks(
        &self,
        worker: &WorkerId,
        leases: Vec<(TaskKey, FencingToken)>,
    ) -> Result<Vec<CompletionStatus>> {
        let worker = worker.clone();
        self.with_writer("releasing leases", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            mark_seen(&transaction, &worker, Timestamp::now())?;
            let statuses = release_all(&transaction, &worker, &leases)?;
            transaction.commit().during("committing released leases")?;
            Ok(statuses)
        })
        .await
    }

    async fn requeue_expired(&self) -> Result<u64> {
        self.with_writer("requeueing expired leases", |connection| {
            let requeued = connection
                .execute(
                    "UPDATE tasks SET state = 'pending', worker = NULL, lease_expires_at_us = NULL
                     WHERE state = 'leased' AND lease_expires_at_us <= ?",
                    params![Timestamp::now().micros()],
                )
                .during("requeueing expired leases")?;
            Ok(requeued as u64)
        })
        .await
    }

    async fn requeue_parked(&self, run: &RunId) -> Result<u64> {
        let run = run.clone();
        self.with_writer("requeueing parked tasks", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            require_run(&transaction, &run)?;
            let requeued = transaction
                .execute(
                    "UPDATE tasks SET state = 'pending', attempts = 0, error = NULL, worker = NULL,
                            lease_expires_at_us = NULL
                     WHERE run_id = ? AND state = 'parked'",
                    params![run.as_str()],
                )
                .during("requeueing parked tasks")?;
            transaction.commit().during("committing requeued parked tasks")?;
            Ok(requeued as u64)
        })
        .await
    }

    async fn task_counts(&self, run: &RunId, generation: u32) -> Result<TaskCounts> {
        let run = run.clone();
        self.with_reader("counting tasks", move |connection| {
            let mut statement = connection
                .prepare("SELECT state, count(*) FROM tasks WHERE run_id = ? AND generation = ? GROUP BY state")
                .during("counting tasks")?;
            let rows = statement
                .query_map(params![run.as_str(), generation], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
                })
                .during("counting tasks")?;
            let mut counts = TaskCounts::default();
            for row in rows {
                let (state, count) = row.during("counting tasks")?;
                match parse_state(&state)? {
                    TaskState::Pending => counts.pending = count,
                    TaskState::Leased => counts.leased = count,
                    TaskState::Done => counts.done = count,
                    TaskState::Parked => counts.parked = count,
                }
            }
            Ok(counts)
        })
        .await
    }

    async fn list_tasks(&self, run: &RunId, generation: u32) -> Result<Vec<TaskRecord>> {
        let run = run.clone();
        self.with_reader("listing tasks", move |connection| {
            let sql =
                format!("SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ? AND generation = ? ORDER BY individual");
            let mut statement = connection.prepare(&sql).during("listing tasks")?;
            let rows = statement.query_map(params![run.as_str(), generation], RawTask::read).during("listing tasks")?;
            let raw = rows.collect::<duckdb::Result<Vec<_>>>().during("listing tasks")?;
            raw.into_iter().map(RawTask::into_record).collect()
        })
        .await
    }

    async fn register_worker(&self, worker: WorkerInfo) -> Result<()> {
        self.with_writer("registering a worker", move |connection| {
            let now = Timestamp::now().micros();
            connection
                .execute(
                    "INSERT INTO workers (id, hostname, pid, registered_at_us, last_seen_us) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (id) DO UPDATE SET
                         hostname = excluded.hostname, pid = excluded.pid, last_seen_us = excluded.last_seen_us",
                    params![worker.id.as_str(), worker.hostname, worker.pid, now, now],
                )
                .during("registering a worker")?;
            Ok(())
        })
        .await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        self.with_reader("listing workers", |connection| {
            let mut statement = connection
                .prepare("SELECT id, hostname, pid, registered_at_us, last_seen_us FROM workers ORDER BY id")
                .during("listing workers")?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, u32>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                    ))
                })
                .during("listing workers")?;
            let raw = rows.collect::<duckdb::Result<Vec<_>>>().during("listing workers")?;
            raw.into_iter()
                .map(|(id, hostname, pid, registered_at, last_seen)| {
                    Ok(WorkerRecord {
                        info: WorkerInfo { id: WorkerId::new(id)?, hostname, pid },
                        registered_at: Timestamp(registered_at),
                        last_seen: Timestamp(last_seen),
                    })
                })
                .collect()
        })
        .await
    }

    async fn record_generation_stats(&self, stats: GenerationStats) -> Result<()> {
        self.with_writer("recording generation statistics", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            require_run(&transaction, &stats.run)?;
            transaction
                .execute(
                    "INSERT INTO generation_stats (run_id, generation, best, mean, std, diversity, evaluated)
                     VALUES (?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (run_id, generation) DO UPDATE SET
                         best = excluded.best, mean = excluded.mean, std = excluded.std,
                         diversity = excluded.diversity, evaluated = excluded.evaluated",
                    params![
                        stats.run.as_str(),
                        stats.generation,
                        stats.best,
                        stats.mean,
                        stats.std,
                        stats.diversity,
                        stats.evaluated
                    ],
                )
                .during("recording generation statistics")?;
            transaction.commit().during("committing generation statistics")
        })
        .await
    }

    async fn generation_stats(&self, run: &RunId) -> Result<Vec<GenerationStats>> {
        let run = run.clone();
        self.with_reader("reading generation statistics", move |connection| {
            let mut statement = connection
                .prepare(
                    "SELECT generation, best, mean, std, diversity, evaluated FROM generation_stats
                     WHERE run_id = ? ORDER BY generation",
                )
                .during("reading generation statistics")?;
            let rows = statement
                .query_map(params![run.as_str()], |row| {
                    Ok(GenerationStats {
                        run: run.clone(),
                        generation: row.get(0)?,
                        best: row.get(1)?,
                        mean: row.get(2)?,
                        std: row.get(3)?,
                        diversity: row.get(4)?,
                        evaluated: row.get(5)?,
                    })
                })
                .during("reading generation statistics")?;
            rows.collect::<duckdb::Result<Vec<_>>>().during("reading generation statistics")
        })
        .await
    }

    async fn cached_fitness(&self, keys: &[String]) -> Result<Vec<Option<CachedFitness>>> {
        for key in keys {
            check_cache_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        self.with_reader("reading the fitness cache", move |connection| {
            let mut found: HashMap<String, (f64, String)> = HashMap::with_capacity(keys.len());
            {
                let mut statement = connection
                    .prepare_cached("SELECT key, fitness, result FROM fitness_cache WHERE key IN (SELECT unnest(CAST(? AS VARCHAR[])))")
                    .during("reading the fitness cache")?;
                let wanted = [list(keys.iter().map(|key| Value::Text(key.clone())))];
                let rows = statement
                    .query_map(params_from_iter(wanted.iter()), |row| {
                        Ok((row.get::<_, String>(0)?, (row.get::<_, f64>(1)?, row.get::<_, String>(2)?)))
                    })
                    .during("reading the fitness cache")?;
                for row in rows {
                    let (key, entry) = row.during("reading the fitness cache")?;
                    found.insert(key, entry);
                }
            }
            Ok(keys
                .into_iter()
                .map(|key| {
                    let (fitness, result) = found.get(&key)?.clone();
                    Some(CachedFitness { key, fitness, result })
                })
                .collect())
        })
        .await
    }

    async fn acquire_coordinator(&self, run: &RunId, holder: &WorkerId, ttl: Duration) -> Result<Option<RoleLease>> {
        let (run, holder) = (run.clone(), holder.clone());
        self.with_writer("acquiring the coordinator role", move |connection| {
            let transaction = connection.transaction().during("starting a transaction")?;
            require_run(&transaction, &run)?;
            let now = Timestamp::now().micros();
            let current: Option<(Option<String>, u64, i64)> = transaction
                .query_row(
                    "SELECT holder, token, expires_at_us FROM coordinator_leases WHERE run_id = ?",
                    params![run.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .during("reading the coordinator role")?;
            let live = current.as_ref().filter(|(_, _, expires_at)| *expires_at > now);
            let token = match live {
                Some((current_holder, _, _)) if current_holder.as_deref() != Some(holder.as_str()) => return Ok(None),
                // The holder's own live lease: renewed under the same token.
                Some((_, token, _)) => *token,
                None => {
                    let token: i64 = transaction
                        .query_row("SELECT nextval('coordinator_tokens')", [], |row| row.get(0))
                        .during("drawing a coordinator token")?;
                    u64::try_from(token).unwrap_or_default()
                }
            };
            let expires_at = expiry_micros(now, ttl);
            // A run's row is only ever updated, never deleted (release clears its holder):
            // DuckDB may refuse to re-insert a key deleted while an older transaction runs.
            let sql = if current.is_some() {
                "UPDATE coordinator_leases SET holder = ?, token = ?, expires_at_us = ? WHERE run_id = ?"
            } else {
                "INSERT INTO coordinator_leases (holder, token, expires_at_us, run_id) VALUES (?, ?, ?, ?)"
            };
            transaction
                .execute(sql, params![holder.as_str(), token, expires_at, run.as_str()])
                .during("granting the coordinator role")?;
            transaction.commit().during("committing the coordinator role")?;
            Ok(Some(RoleLease { run, holder, token: FencingToken(token), expires_at: Timestamp(expires_at) }))
        })
        .await
    }

    async fn renew_coordinator(&self, lease: &RoleLease, ttl: Duration) -> Result<bool> {
        let lease = lease.clone();
        self.with_writer("renewing the coordinator role", move |connection| {
            let renewed = connection
                .execute(
                    "UPDATE coordinator_leases SET expires_at_us = ? WHERE run_id = ? AND holder = ? AND token = ?",
                    params![
                        expiry_micros(Timestamp::now().micros(), ttl),
                        lease.run.as_str(),
                        lease.holder.as_str(),
                        lease.token.0
                    ],
                )
                .during("renewing the coordinator role")?;
            Ok(renewed == 1)
        })
        .await
    }

    async fn release_coordinator(&self, lease: &RoleLease) -> Result<()> {
        let lease = lease.clone();
        self.with_writer("releasing the coordinator role", move |connection| {
            connection
                .execute(
                    "UPDATE coordinator_leases SET holder = NULL, expires_at_us = 0
                     WHERE run_id = ? AND holder = ? AND token = ?",
                    params![lease.run.as_str(), lease.holder.as_str(), lease.token.0],
                )
                .during("releasing the coordinator role")?;
            Ok(())
        })
        .await
    }
}

/// A task chosen for a lease: run, generation, individual, payload, attempts so far.
type ChosenTask = (String, u32, u32, String, u32);

/// Leases as `lease_tasks` does, inside the caller's transaction (the caller records the worker as seen).
fn lease_in(transaction: &Connection, request: LeaseRequest, now: Timestamp) -> Result<Vec<Lease>> {
    let LeaseRequest { worker, run, max_tasks, ttl } = request;
    let expires_at = Timestamp(expiry_micros(now.micros(), ttl));
    let (run_filter, run_param) = match &run {
        Some(run) => (" AND run_id = ?", vec![Value::Text(run.as_str().to_string())]),
        None => ("", Vec::new()),
    };
    // Tasks that could be leased but have used up their attempts are parked instead. The
    // lease never picks them (`attempts < max_attempts`), so they are parked only when the
    // lease comes back short of `max_tasks`: a scan of the tasks saved on every other lease.
    let park = format!(
        "UPDATE tasks SET state = 'parked', worker = NULL, lease_expires_at_us = NULL,
                error = coalesce(error, 'attempts used up: the last lease expired')
         WHERE attempts >= max_attempts
           AND (state = 'pending' OR (state = 'leased' AND lease_expires_at_us <= ?))
           AND run_id IN (SELECT id FROM runs WHERE {ACTIVE_RUN}){run_filter}"
    );

    // The chosen tasks, each with a freshly drawn token. The tokens are
    // drawn in no particular order, so they are sorted and handed out in
    // lease order: each is still larger than any granted before.
    let candidates = format!(
        "SELECT run_id, generation, individual, payload, attempts, nextval('fencing_tokens') FROM (
             SELECT run_id, generation, individual, payload, attempts FROM tasks
             WHERE (state = 'pending' OR (state = 'leased' AND lease_expires_at_us <= ?))
               AND attempts < max_attempts
               AND run_id IN (SELECT id FROM runs WHERE {ACTIVE_RUN}){run_filter}
             ORDER BY generation, individual, run_id
             LIMIT {max_tasks}
         ) AS chosen"
    );
    let mut candidate_params = vec![Value::BigInt(now.micros())];
    candidate_params.extend(run_param.iter().cloned());
    let (mut chosen, mut tokens): (Vec<ChosenTask>, Vec<i64>) = {
        let mut statement = transaction.prepare_cached(&candidates).during("choosing tasks")?;
        let rows = statement
            .query_map(params_from_iter(candidate_params.iter()), |row| {
                Ok(((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?), row.get::<_, i64>(5)?))
            })
            .during("choosing tasks")?;
        rows.collect::<duckdb::Result<Vec<_>>>().during("choosing tasks")?.into_iter().unzip()
    };
    chosen.sort_by(|a, b| (a.1, a.2, &a.0).cmp(&(b.1, b.2, &b.0)));
    tokens.sort_unstable();

    let mut leases = Vec::with_capacity(chosen.len());
    for ((run_id, generation, individual, payload, attempts), token) in chosen.into_iter().zip(tokens) {
        let token = u64::try_from(token).map_err(|_| StoreError::internal(BACKEND, "negative fencing token"))?;
        leases.push(Lease {
            key: TaskKey { run: RunId::new(run_id)?, generation, individual },
            payload,
            token: FencingToken(token),
            attempt: attempts + 1,
            expires_at,
        });
    }
    if leases.len() < max_tasks as usize {
        let mut park_params = vec![Value::BigInt(now.micros())];
        park_params.extend(run_param.iter().cloned());
        transaction
            .prepare_cached(&park)
            .and_then(|mut statement| statement.execute(params_from_iter(park_params.iter())))
            .during("parking exhausted tasks")?;
    }
    if !leases.is_empty() {
        let sql = format!(
            "UPDATE tasks SET state = 'leased', attempts = tasks.attempts + 1, token = granted.token,
                    worker = ?, lease_expires_at_us = ?
             FROM ({}) AS granted
             WHERE tasks.run_id = granted.run_id AND tasks.generation = granted.generation
               AND tasks.individual = granted.individual",
            unnest_rows(&TASK_KEY_AND_TOKEN)
        );
        let lease_params = [
            Value::Text(worker.as_str().to_string()),
            Value::BigInt(expires_at.micros()),
            list(leases.iter().map(|lease| Value::Text(lease.key.run.as_str().to_string()))),
            list(leases.iter().map(|lease| Value::UInt(lease.key.generation))),
            list(leases.iter().map(|lease| Value::UInt(lease.key.individual))),
            list(leases.iter().map(|lease| Value::UBigInt(lease.token.0))),
        ];
        let mut statement = transaction.prepare_cached(&sql).during("leasing tasks")?;
        let leased = statement.execute(params_from_iter(lease_params.iter())).during("leasing tasks")?;
        if leased != leases.len() {
            return Err(StoreError::internal(BACKEND, format!("leased {leased} of {} chosen tasks", leases.len())));
        }
    }
    Ok(leases)
}

/// The columns of a batch of task keys with their tokens, as [`unnest_rows`] takes them.
const TASK_KEY_AND_TOKEN: [(&str, &str); 4] =
    [("run_id", "VARCHAR"), ("generation", "UINTEGER"), ("individual", "UINTEGER"), ("token", "UBIGINT")];

/// `SELECT unnest(CAST(? AS t1[])) AS c1, ...`: rows made of one bound list per column, zipped.
/// One statement text for any number of rows, so it is prepared once and cached (a
/// `VALUES` list of `?` placeholders per row was re-planned for every batch size, and
/// cost about twice as much to run).
fn unnest_rows(columns: &[(&str, &str)]) -> String {
    let columns: Vec<String> =
        columns.iter().map(|(name, kind)| format!("unnest(CAST(? AS {kind}[])) AS {name}")).collect();
    format!("SELECT {}", columns.join(", "))
}

/// A list parameter for [`unnest_rows`].
fn list(values: impl Iterator<Item = Value>) -> Value {
    Value::List(values.collect())
}

/// Applies completions inside the caller's transaction with one set-based
/// update; the statuses are those of
/// applying them one by one, in order.
///
/// A completion only applies to a task leased by `worker` under its token, and
/// applying it ends the lease, so of the completions naming one task at most
/// the first that carries the current token applies: later copies of the same
/// (task, token) are dropped before the update and stay `Stale`, and
/// completions with another token never match.
fn complete_all(
    connection: &Connection,
    worker: &WorkerId,
    completions: &[Completion],
) -> Result<Vec<CompletionStatus>> {
    let mut statuses = vec![CompletionStatus::Stale; completions.len()];
    let unique = strata_core::policy::first_completions(completions);
    let first: HashMap<(&TaskKey, u64), usize> =
        unique.iter().map(|&index| ((&completions[index].key, completions[index].token.0), index)).collect();
    if unique.is_empty() {
        return Ok(statuses);
    }
    let sql = format!(
        "UPDATE tasks SET
             state = CASE WHEN NOT done.failed THEN 'done'
                          WHEN tasks.attempts >= tasks.max_attempts THEN 'parked'
                          ELSE 'pending' END,
             fitness = CASE WHEN done.failed THEN tasks.fitness ELSE done.fitness END,
             result = CASE WHEN done.failed THEN tasks.result ELSE done.result END,
             error = CASE WHEN done.failed THEN done.error ELSE tasks.error END,
             worker = NULL, lease_expires_at_us = NULL
         FROM ({}) AS done
         WHERE tasks.run_id = done.run_id AND tasks.generation = done.generation
           AND tasks.individual = done.individual AND tasks.token = done.token
           AND tasks.state = 'leased' AND tasks.worker = ?
         RETURNING tasks.run_id, tasks.generation, tasks.individual, tasks.token, tasks.state",
        unnest_rows(&[
            ("run_id", "VARCHAR"),
            ("generation", "UINTEGER"),
            ("individual", "UINTEGER"),
            ("token", "UBIGINT"),
            ("failed", "BOOLEAN"),
            ("fitness", "DOUBLE"),
            ("result", "VARCHAR"),
            ("error", "VARCHAR"),
        ])
    );
    let chosen = || unique.iter().map(|&index| &completions[index]);
    let succeeded = |completion: &Completion| match &completion.outcome {
        TaskOutcome::Succeeded { fitness, result } => Some((*fitness, result.clone())),
        TaskOutcome::Failed { .. } => None,
    };
    let params = [
        list(chosen().map(|c| Value::Text(c.key.run.as_str().to_string()))),
        list(chosen().map(|c| Value::UInt(c.key.generation))),
        list(chosen().map(|c| Value::UInt(c.key.individual))),
        list(chosen().map(|c| Value::UBigInt(c.token.0))),
        list(chosen().map(|c| Value::Boolean(succeeded(c).is_none()))),
        list(chosen().map(|c| succeeded(c).map_or(Value::Null, |(fitness, _)| Value::Double(fitness)))),
        list(chosen().map(|c| succeeded(c).map_or(Value::Null, |(_, result)| Value::Text(result)))),
        list(chosen().map(|c| match &c.outcome {
            TaskOutcome::Failed { error } => Value::Text(error.clone()),
            TaskOutcome::Succeeded { .. } => Value::Null,
        })),
        Value::Text(worker.as_str().to_string()),
    ];
    {
        let applied: Vec<(String, u32, u32, u64, String)> = {
            let mut statement = connection.prepare_cached(&sql).during("completing tasks")?;
            let rows = statement
                .query_map(params_from_iter(params.iter()), |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                })
                .during("completing tasks")?;
            rows.collect::<duckdb::Result<Vec<_>>>().during("completing tasks")?
        };
        for (run_id, generation, individual, token, state) in applied {
            let key = TaskKey { run: RunId::new(run_id)?, generation, individual };
            let index = *first.get(&(&key, token)).ok_or_else(|| {
                StoreError::internal(BACKEND, format!("completed task {key:?} that no completion named"))
            })?;
            statuses[index] = match parse_state(&state)? {
                TaskState::Done => CompletionStatus::Recorded,
                TaskState::Pending => CompletionStatus::Requeued,
                TaskState::Parked => CompletionStatus::Parked,
                TaskState::Leased => {
                    return Err(StoreError::internal(BACKEND, "a completed task is still leased"));
                }
            };
        }
    }
    Ok(statuses)
}

/// Upserts into `fitness_cache`, inside the caller's transaction, the
/// fitness and result of every completion that was `Recorded` and carries a
/// cache key, in one statement. Of several recorded completions with one key
/// the last one wins (one row per key per statement, as `ON CONFLICT DO
/// UPDATE` requires).
fn cache_recorded(
    connection: &Connection,
    completions: &[Completion],
    statuses: &[CompletionStatus],
    now: Timestamp,
) -> Result<()> {
    let mut rows: Vec<(&str, f64, &str)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (completion, status) in completions.iter().zip(statuses) {
        let (Some(key), CompletionStatus::Recorded, TaskOutcome::Succeeded { fitness, result }) =
            (completion.cache_key.as_deref(), status, &completion.outcome)
        else {
            continue;
        };
        match position.get(key) {
            Some(&index) => rows[index] = (key, *fitness, result),
            None => {
                position.insert(key, rows.len());
                rows.push((key, *fitness, result));
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO fitness_cache (key, fitness, result, created_at_us) SELECT * FROM ({})
         ON CONFLICT (key) DO UPDATE SET fitness = excluded.fitness, result = excluded.result",
        unnest_rows(&[("key", "VARCHAR"), ("fitness", "DOUBLE"), ("result", "VARCHAR"), ("created_at_us", "BIGINT")])
    );
    let params = [
        list(rows.iter().map(|(key, _, _)| Value::Text((*key).to_string()))),
        list(rows.iter().map(|(_, fitness, _)| Value::Double(*fitness))),
        list(rows.iter().map(|(_, _, result)| Value::Text((*result).to_string()))),
        list(rows.iter().map(|_| Value::BigInt(now.micros()))),
    ];
    let mut statement = connection.prepare_cached(&sql).during("caching fitness")?;
    statement.execute(params_from_iter(params.iter())).during("caching fitness")?;
    Ok(())
}

/// Hands leases back inside the caller's transaction with one set-based
/// update: a task leased by `worker` under
/// the given token goes back to pending with one attempt fewer. Later copies
/// of one (task, token) stay `Stale`, as releasing the first ends the lease.
fn release_all(
    connection: &Connection,
    worker: &WorkerId,
    leases: &[(TaskKey, FencingToken)],
) -> Result<Vec<CompletionStatus>> {
    let mut statuses = vec![CompletionStatus::Stale; leases.len()];
    let unique = strata_core::policy::first_releases(leases);
    let first: HashMap<(&TaskKey, u64), usize> =
        unique.iter().map(|&index| ((&leases[index].0, leases[index].1.0), index)).collect();
    if unique.is_empty() {
        return Ok(statuses);
    }
    let sql = format!(
        "UPDATE tasks SET state = 'pending', attempts = greatest(tasks.attempts, 1) - 1,
             worker = NULL, lease_expires_at_us = NULL
         FROM ({}) AS released
         WHERE tasks.run_id = released.run_id AND tasks.generation = released.generation
           AND tasks.individual = released.individual AND tasks.token = released.token
           AND tasks.state = 'leased' AND tasks.worker = ?
         RETURNING tasks.run_id, tasks.generation, tasks.individual, tasks.token",
        unnest_rows(&TASK_KEY_AND_TOKEN)
    );
    let chosen = || unique.iter().map(|&index| &leases[index]);
    let params = [
        list(chosen().map(|(key, _)| Value::Text(key.run.as_str().to_string()))),
        list(chosen().map(|(key, _)| Value::UInt(key.generation))),
        list(chosen().map(|(key, _)| Value::UInt(key.individual))),
        list(chosen().map(|(_, token)| Value::UBigInt(token.0))),
        Value::Text(worker.as_str().to_string()),
    ];
    {
        let released: Vec<(String, u32, u32, u64)> = {
            let mut statement = connection.prepare_cached(&sql).during("releasing leases")?;
            let rows = statement
                .query_map(params_from_iter(params.iter()), |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .during("releasing leases")?;
            rows.collect::<duckdb::Result<Vec<_>>>().during("releasing leases")?
        };
        for (run_id, generation, individual, token) in released {
            let key = TaskKey { run: RunId::new(run_id)?, generation, individual };
            let index = *first
                .get(&(&key, token))
                .ok_or_else(|| StoreError::internal(BACKEND, format!("released task {key:?} that no lease named")))?;
            statuses[index] = CompletionStatus::Released;
        }
    }
    Ok(statuses)
}

/// A run as stored, before its values are checked.
struct RawRun {
    id: String,
    strategy: String,
    seed: u64,
    population_size: u32,
    generations: u32,
    config: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl RawRun {
    /// Reads the columns of [`RUN_COLUMNS`].
    fn read(row: &duckdb::Row<'_>) -> duckdb::Result<Self> {
        Ok(RawRun {
            id: row.get(0)?,
            strategy: row.get(1)?,
            seed: row.get(2)?,
            population_size: row.get(3)?,
            generations: row.get(4)?,
            config: row.get(5)?,
            status: row.get(6)?,
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
        })
    }

    fn into_record(self) -> Result<RunRecord> {
        Ok(RunRecord {
            spec: RunSpec {
                id: RunId::new(self.id)?,
                strategy: self.strategy,
                seed: self.seed,
                population_size: self.population_size,
                generations: self.generations,
                config: self.config,
            },
            status: self.status.parse::<RunStatus>().map_err(|error| corrupt("run status", error))?,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

/// A task as stored, before its values are checked.
struct RawTask {
    run_id: String,
    generation: u32,
    individual: u32,
    payload: String,
    state: String,
    attempts: u32,
    max_attempts: u32,
    token: u64,
    worker: Option<String>,
    lease_expires_at: Option<i64>,
    fitness: Option<f64>,
    result: Option<String>,
    error: Option<String>,
}

impl RawTask {
    /// Reads the columns of [`TASK_COLUMNS`].
    fn read(row: &duckdb::Row<'_>) -> duckdb::Result<Self> {
        Ok(RawTask {
            run_id: row.get(0)?,
            generation: row.get(1)?,
            individual: row.get(2)?,
            payload: row.get(3)?,
            state: row.get(4)?,
            attempts: row.get(5)?,
            max_attempts: row.get(6)?,
            token: row.get(7)?,
            worker: row.get(8)?,
            lease_expires_at: row.get(9)?,
            fitness: row.get(10)?,
            result: row.get(11)?,
            error: row.get(12)?,
        })
    }

    fn into_record(self) -> Result<TaskRecord> {
        Ok(TaskRecord {
            key: TaskKey { run: RunId::new(self.run_id)?, generation: self.generation, individual: self.individual },
            payload: self.payload,
            state: parse_state(&self.state)?,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            token: FencingToken(self.token),
            worker: self.worker.map(WorkerId::new).transpose()?,
            lease_expires_at: self.lease_expires_at.map(Timestamp),
            fitness: self.fitness,
            result: self.result,
            error: self.error,
        })
    }
}

fn load_run(connection: &Connection, run: &RunId) -> Result<Option<RunRecord>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?");
    let raw = connection.query_row(&sql, params![run.as_str()], RawRun::read).optional().during("reading a run")?;
    raw.map(RawRun::into_record).transpose()
}

fn require_run(connection: &Connection, run: &RunId) -> Result<()> {
    let exists = connection
        .query_row("SELECT count(*) FROM runs WHERE id = ?", params![run.as_str()], |row| row.get::<_, i64>(0))
        .during("looking up a run")?;
    if exists == 0 { Err(missing_run(run)) } else { Ok(()) }
}

/// The highest stored generation number of `run`.
fn latest_number(connection: &Connection, run: &RunId) -> Result<Option<u32>> {
    connection
        .query_row("SELECT max(generation) FROM generations WHERE run_id = ?", params![run.as_str()], |row| row.get(0))
        .during("finding the latest generation")
}

/// The individuals of a stored generation, by index; `None` when it is not stored.
fn load_individuals(connection: &Connection, run: &RunId, number: u32) -> Result<Option<Vec<Individual>>> {
    let stored: Option<u32> = connection
        .query_row(
            "SELECT size FROM generations WHERE run_id = ? AND generation = ?",
            params![run.as_str(), number],
            |row| row.get(0),
        )
        .optional()
        .during("looking up a generation")?;
    if stored.is_none() {
        return Ok(None);
    }
    let mut statement = connection
        .prepare("SELECT individual, genome FROM individuals WHERE run_id = ? AND generation = ? ORDER BY individual")
        .during("loading individuals")?;
    let rows = statement
        .query_map(params![run.as_str(), number], |row| Ok(Individual { index: row.get(0)?, genome: row.get(1)? }))
        .during("loading individuals")?;
    rows.collect::<duckdb::Result<Vec<_>>>().during("loading individuals").map(Some)
}

/// Records that `worker` was seen at `now` (registered workers only).
fn mark_seen(connection: &Connection, worker: &WorkerId, now: Timestamp) -> Result<()> {
    connection
        .prepare_cached("UPDATE workers SET last_seen_us = ? WHERE id = ?")
        .and_then(|mut statement| statement.execute(params![now.micros(), worker.as_str()]))
        .during("recording a worker as seen")?;
    Ok(())
}

fn parse_state(text: &str) -> Result<TaskState> {
    text.parse::<TaskState>().map_err(|error| corrupt("task state", error))
}

fn corrupt(what: &str, error: StoreError) -> StoreError {
    StoreError::Internal {
        backend: BACKEND.into(),
        what: format!("the stored {what} is unreadable"),
        source: Some(Box::new(error)),
    }
}

fn missing_run(run: &RunId) -> StoreError {
    StoreError::not_found(format!("run {run}"))
}

fn describe_generation(number: Option<u32>) -> String {
    number.map_or_else(|| "none".to_string(), |number| number.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::DuckDbConfig;

    fn spec(id: &str) -> RunSpec {
        RunSpec {
            id: RunId::new(id).unwrap(),
            strategy: "sma-cross".into(),
            seed: u64::MAX - 1,
            population_size: 3,
            generations: 5,
            config: r#"{"symbols":["^GSPC"]}"#.into(),
        }
    }

    fn population(run: &RunId, number: u32, genomes: &[&str]) -> Generation {
        let individuals = genomes
            .iter()
            .enumerate()
            .map(|(index, genome)| Individual { index: index as u32, genome: genome.to_string() })
            .collect();
        Generation { run: run.clone(), number, individuals }
    }

    fn worker(id: &str) -> WorkerId {
        WorkerId::new(id).unwrap()
    }

    fn lease_request(worker_id: &str, max_tasks: u32, ttl: Duration) -> LeaseRequest {
        LeaseRequest { worker: worker(worker_id), run: None, max_tasks, ttl }
    }

    #[tokio::test]
    async fn runs_and_generations_compare_and_set() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let created = store.create_run(spec("r1")).await.unwrap();
        assert_eq!(created.status, RunStatus::Pending);
        assert_eq!(created.spec.seed, u64::MAX - 1);
        assert_eq!(store.create_run(spec("r1")).await.unwrap(), created);
        let different = RunSpec { seed: 1, ..spec("r1") };
        assert!(matches!(store.create_run(different).await, Err(StoreError::Conflict { .. })));
        store.create_run(spec("r2")).await.unwrap();
        let ids: Vec<String> =
            store.list_runs().await.unwrap().into_iter().map(|r| r.spec.id.as_str().to_string()).collect();
        assert_eq!(ids, vec!["r2", "r1"]);
        let unknown = RunId::new("nope").unwrap();
        assert!(matches!(store.get_run(&unknown).await, Err(StoreError::NotFound { .. })));
        assert!(matches!(store.set_run_status(&unknown, RunStatus::Running).await, Err(StoreError::NotFound { .. })));
        assert_eq!(
            store.set_run_status(&created.spec.id, RunStatus::Running).await.unwrap().status,
            RunStatus::Running
        );

        let run = created.spec.id;
        assert_eq!(store.latest_generation(&run).await.unwrap(), None);
        store.save_generation(population(&run, 0, &["a", "b"]), None).await.unwrap();
        store.save_generation(population(&run, 0, &["a", "b"]), None).await.unwrap();
        let changed = store.save_generation(population(&run, 0, &["a", "c"]), None).await;
        assert!(matches!(changed, Err(StoreError::Conflict { .. })), "{changed:?}");
        let stale = store.save_generation(population(&run, 1, &["x"]), None).await;
        assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
        store.save_generation(population(&run, 1, &[]), Some(0)).await.unwrap();
        let latest = store.latest_generation(&run).await.unwrap().unwrap();
        assert_eq!((latest.number, latest.individuals.len()), (1, 0));
        assert_eq!(store.load_generation(&run, 0).await.unwrap(), population(&run, 0, &["a", "b"]));
        assert!(matches!(store.load_generation(&run, 7).await, Err(StoreError::NotFound { .. })));
        let missing = store.save_generation(population(&unknown, 0, &["a"]), None).await;
        assert!(matches!(missing, Err(StoreError::NotFound { .. })));
    }

    #[tokio::test]
    async fn leases_are_fenced_requeued_and_parked() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let run = store.create_run(spec("r")).await.unwrap().spec.id;
        store.register_worker(WorkerInfo { id: worker("w1"), hostname: "h".into(), pid: 7 }).await.unwrap();
        let tasks: Vec<NewTask> = (0..3).map(|i| NewTask { individual: i, payload: format!("p{i}") }).collect();
        assert_eq!(store.enqueue_tasks(&run, 0, tasks.clone(), 2).await.unwrap(), 3);
        assert_eq!(store.enqueue_tasks(&run, 0, tasks, 2).await.unwrap(), 0);

        let first = store.lease_tasks(lease_request("w1", 2, Duration::ZERO)).await.unwrap();
        assert_eq!(first.iter().map(|l| l.key.individual).collect::<Vec<_>>(), vec![0, 1]);
        assert!(first[0].token < first[1].token);
        assert_eq!(first[0].attempt, 1);
        // Zero TTL: both leases are expired at once; w2 takes them over with larger tokens.
        let second = store.lease_tasks(lease_request("w2", 5, Duration::from_secs(60))).await.unwrap();
        assert_eq!(second.iter().map(|l| l.key.individual).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(second[0].token > first[1].token);
        assert_eq!(second[0].attempt, 2);

        let late = Completion {
            key: first[0].key.clone(),
            token: first[0].token,
            outcome: TaskOutcome::Succeeded { fitness: 1.0, result: "{}".into() },
            cache_key: None,
        };
        let statuses = store.complete_tasks(&worker("w1"), vec![late]).await.unwrap();
        assert_eq!(statuses, vec![CompletionStatus::Stale]);
        assert_eq!(store.heartbeat(&worker("w2"), Duration::from_secs(120)).await.unwrap(), 3);
        let completions = vec![
            Completion {
                key: second[0].key.clone(),
                token: second[0].token,
                outcome: TaskOutcome::Succeeded { fitness: 0.5, result: r#"{"sharpe":0.5}"#.into() },
                cache_key: None,
            },
            Completion {
                key: second[1].key.clone(),
                token: second[1].token,
                outcome: TaskOutcome::Failed { error: "boom".into() },
                cache_key: None,
            },
            Completion {
                key: second[2].key.clone(),
                token: second[2].token,
                outcome: TaskOutcome::Failed { error: "bang".into() },
                cache_key: None,
            },
            Completion {
                key: second[0].key.clone(),
                token: second[0].token,
                outcome: TaskOutcome::Succeeded { fitness: 9.0, result: "again".into() },
                cache_key: None,
            },
        ];
        let statuses = store.complete_tasks(&worker("w2"), completions).await.unwrap();
        assert_eq!(
            statuses,
            vec![
                CompletionStatus::Recorded,
                CompletionStatus::Parked,
                CompletionStatus::Requeued,
                CompletionStatus::Stale
            ]
        );
        let counts = store.task_counts(&run, 0).await.unwrap();
        assert_eq!(counts, TaskCounts { pending: 1, leased: 0, done: 1, parked: 1 });
        let listed = store.list_tasks(&run, 0).await.unwrap();
        assert_eq!(listed[0].fitness, Some(0.5));
        assert_eq!(listed[0].state, TaskState::Done);
        assert_eq!(listed[1].error.as_deref(), Some("boom"));
        assert_eq!(listed[2].token, second[2].token);
        assert_eq!(listed[2].worker, None);

        // The last task's second attempt expires: requeued, then parked instead of leased a third time.
        let third = store.lease_tasks(lease_request("w1", 5, Duration::ZERO)).await.unwrap();
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].attempt, 2);
        assert_eq!(store.requeue_expired().await.unwrap(), 1);
        assert!(store.lease_tasks(lease_request("w1", 5, Duration::ZERO)).await.unwrap().is_empty());
        assert_eq!(store.task_counts(&run, 0).await.unwrap().parked, 2);
        let seen = store.list_workers().await.unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].last_seen >= seen[0].registered_at);

        // Cancelled runs lend no tasks.
        store.enqueue_tasks(&run, 1, vec![NewTask { individual: 0, payload: "x".into() }], 1).await.unwrap();
        store.set_run_status(&run, RunStatus::Cancelled).await.unwrap();
        assert!(store.lease_tasks(lease_request("w1", 5, Duration::from_secs(5))).await.unwrap().is_empty());
        let unknown = RunId::new("nope").unwrap();
        assert!(matches!(store.enqueue_tasks(&unknown, 0, Vec::new(), 1).await, Err(StoreError::NotFound { .. })));
        assert_eq!(store.task_counts(&unknown, 0).await.unwrap(), TaskCounts::default());
    }

    #[tokio::test]
    async fn batches_larger_than_one_statement_keep_one_by_one_semantics() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let runs =
            [store.create_run(spec("b")).await.unwrap().spec.id, store.create_run(spec("a")).await.unwrap().spec.id];
        let tasks: Vec<NewTask> = (0..300).map(|i| NewTask { individual: i, payload: format!("p{i}") }).collect();
        for run in &runs {
            store.enqueue_tasks(run, 0, tasks.clone(), 1).await.unwrap();
        }
        let leases = store.lease_tasks(lease_request("w", 1000, Duration::from_secs(60))).await.unwrap();
        assert_eq!(leases.len(), 600);
        let keys: Vec<(u32, u32, String)> =
            leases.iter().map(|l| (l.key.generation, l.key.individual, l.key.run.as_str().to_string())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "leases in (generation, individual, run id) order");
        assert!(leases.windows(2).all(|pair| pair[0].token < pair[1].token), "tokens increase in lease order");

        let mut completions = Vec::new();
        let mut expected = Vec::new();
        for (i, lease) in leases.iter().enumerate() {
            let fitness = i as f64;
            match i % 3 {
                0 => {
                    completions.push(Completion {
                        key: lease.key.clone(),
                        token: lease.token,
                        outcome: TaskOutcome::Succeeded { fitness, result: format!("r{i}") },
                        cache_key: None,
                    });
                    expected.push(CompletionStatus::Recorded);
                }
                1 => {
                    completions.push(Completion {
                        key: lease.key.clone(),
                        token: lease.token,
                        outcome: TaskOutcome::Failed { error: format!("e{i}") },
                        cache_key: None,
                    });
                    expected.push(CompletionStatus::Parked);
                }
                _ => {
                    completions.push(Completion {
                        key: lease.key.clone(),
                        token: FencingToken(lease.token.0 + 1_000_000),
                        outcome: TaskOutcome::Succeeded { fitness: -1.0, result: "wrong token".into() },
                        cache_key: None,
                    });
                    expected.push(CompletionStatus::Stale);
                }
            }
        }
        // Second copies: the same (task, token) again is stale; the right token after a wrong one is recorded.
        for (i, lease) in leases.iter().enumerate() {
            let outcome = TaskOutcome::Succeeded { fitness: 1000.0 + i as f64, result: format!("again{i}") };
            completions.push(Completion { key: lease.key.clone(), token: lease.token, outcome, cache_key: None });
            expected.push(if i % 3 == 2 { CompletionStatus::Recorded } else { CompletionStatus::Stale });
        }
        assert_eq!(store.complete_tasks(&worker("w"), completions).await.unwrap(), expected);
        assert_eq!(
            store.complete_tasks(&worker("w"), vec![]).await.unwrap(),
            Vec::<CompletionStatus>::new(),
            "an empty batch"
        );

        let mut recorded = 0;
        for run in &runs {
            for task in store.list_tasks(run, 0).await.unwrap() {
                let i = leases.iter().position(|l| l.key == task.key).unwrap();
                assert_eq!((task.worker, task.lease_expires_at), (None, None));
                match i % 3 {
                    0 => {
                        assert_eq!(
                            (task.state, task.fitness, task.result),
                            (TaskState::Done, Some(i as f64), Some(format!("r{i}")))
                        );
                        recorded += 1;
                    }
                    1 => assert_eq!((task.state, task.error), (TaskState::Parked, Some(format!("e{i}")))),
                    _ => {
                        let again = Some(1000.0 + i as f64);
                        assert_eq!(
                            (task.state, task.fitness, task.result),
                            (TaskState::Done, again, Some(format!("again{i}")))
                        );
                        recorded += 1;
                    }
                }
            }
        }
        assert_eq!(recorded, 400);
    }

    #[tokio::test]
    async fn state_and_tokens_survive_a_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("reopen.duckdb");
        let token = {
            let store = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
            let run = store.create_run(spec("r")).await.unwrap().spec.id;
            store.enqueue_tasks(&run, 0, vec![NewTask { individual: 0, payload: "p".into() }], 3).await.unwrap();
            let stats = GenerationStats {
                run: run.clone(),
                generation: 0,
                best: 2.0,
                mean: 1.0,
                std: 0.5,
                diversity: 0.9,
                evaluated: 1,
            };
            store.record_generation_stats(stats.clone()).await.unwrap();
            store.record_generation_stats(GenerationStats { best: 3.0, ..stats }).await.unwrap();
            store.lease_tasks(lease_request("w", 1, Duration::ZERO)).await.unwrap()[0].token
        };
        let store = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
        let run = RunId::new("r").unwrap();
        let stats = store.generation_stats(&run).await.unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].best, 3.0);
        let again = store.lease_tasks(lease_request("w", 1, Duration::ZERO)).await.unwrap();
        assert!(again[0].token > token);
        assert_eq!(again[0].attempt, 2);
    }

    #[tokio::test]
    async fn migration_2_removes_companion_runs_and_keeps_the_others() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("v1.duckdb");
        {
            // A file as a version-1 build left it, with a companion run `coord:r`.
            let connection = duckdb::Connection::open(&path).unwrap();
            connection.execute_batch(crate::schema::CREATE_VERSION_TABLE).unwrap();
            connection.execute_batch(crate::schema::MIGRATIONS[0]).unwrap();
            connection
                .execute_batch(
                    "INSERT INTO schema_version VALUES (1, 0);
                     INSERT INTO runs VALUES
                         ('coord:r', 'coordinator-lease', 0, 1, 1, '{}', 'running', nextval('run_order'), 0, 0),
                         ('r', 'sma-cross', 1, 1, 1, '{}', 'running', nextval('run_order'), 0, 0);
                     INSERT INTO generations VALUES ('coord:r', 0, 1, 0), ('r', 0, 1, 0);
                     INSERT INTO individuals VALUES ('coord:r', 0, 0, '{}'), ('r', 0, 0, '{}');
                     INSERT INTO tasks (run_id, generation, individual, payload, state, attempts, max_attempts, token)
                         VALUES ('coord:r', 0, 0, 'lease', 'pending', 0, 1000000000, 0),
                                ('r', 0, 0, '{}', 'pending', 0, 3, 0);
                     INSERT INTO generation_stats VALUES ('coord:r', 0, 1, 1, 0, 0, 1);",
                )
                .unwrap();
        }
        let store = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
        let runs: Vec<String> = store.list_runs().await.unwrap().into_iter().map(|r| r.spec.id.to_string()).collect();
        assert_eq!(runs, ["r"], "the companion run is gone, the user run stays");
        let left: i64 = store
            .with_reader("test", |connection| {
                connection
                    .query_row(
                        "SELECT (SELECT count(*) FROM generations WHERE run_id LIKE 'coord:%')
                              + (SELECT count(*) FROM individuals WHERE run_id LIKE 'coord:%')
                              + (SELECT count(*) FROM tasks WHERE run_id LIKE 'coord:%')
                              + (SELECT count(*) FROM generation_stats WHERE run_id LIKE 'coord:%')",
                        [],
                        |row| row.get(0),
                    )
                    .during("counting companion rows")
            })
            .await
            .unwrap();
        assert_eq!(left, 0, "no companion rows are left");
        let run = RunId::new("r").unwrap();
        assert_eq!(store.list_tasks(&run, 0).await.unwrap().len(), 1, "the user run keeps its task");
        let role = store.acquire_coordinator(&run, &worker("c1"), Duration::from_secs(60)).await.unwrap();
        assert!(role.is_some(), "the coordinator role is granted through the new table");
    }
}
