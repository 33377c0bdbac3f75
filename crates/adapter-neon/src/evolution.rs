//! `EvolutionStore` over PostgreSQL: runs, generations, leased evaluation
//! tasks with fencing tokens, workers and statistics, shared by any number
//! of workers on any number of machines.
//!
//! - Time is the server's (`now()`), so workers with skewed clocks agree.
//! - Leasing is one statement: candidates are chosen with
//!   `FOR UPDATE SKIP LOCKED` (two workers never wait for or receive the same
//!   task) and updated with a fresh `nextval` fencing token each.
//! - A completion is applied only if the task is leased by this worker under
//!   exactly this token (`UPDATE ... WHERE token = $n`), so a late result
//!   from an expired lease changes nothing.
//! - The coordinator role of a run is one row of `coordinator_leases`, taken
//!   with one upsert that only overwrites an expired lease or the holder's
//!   own; a grant to a new holder draws its token from `coordinator_tokens`,
//!   renewal and release are fenced by that token.
//! - Releasing leases is one fenced `UPDATE` of the same shape, which gives
//!   the attempt back.
//! - Requeueing a run's parked tasks is one `UPDATE` (in a statement that
//!   also tells an unknown run from one with nothing parked).
//! - The fitness cache is `fitness_cache`, upserted by the completion
//!   statement itself (a data-modifying CTE over the rows it recorded), so a
//!   result and its cache entry commit together or not at all.
//! - Liveness is by time only: no LISTEN/NOTIFY, no session advisory locks,
//!   so it all works through Neon's pooler (PgBouncer, transaction mode).

use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row as _};
use strata_core::evolution::{
    CachedFitness, Completion, CompletionStatus, FencingToken, Generation, GenerationStats, Individual, Lease,
    LeaseRequest, NewTask, RoleLease, RunId, RunRecord, RunSpec, RunStatus, TaskCounts, TaskKey, TaskOutcome,
    TaskRecord, TaskState, WorkerId, WorkerInfo, WorkerRecord, check_cache_key, check_cache_keys,
};
use strata_core::{EvolutionStore, Result, StoreError, Timestamp};

use crate::error::{BACKEND, Failure};
use crate::store::{Idempotency, NeonStore, transact};

/// Epoch microseconds of a `timestamptz` expression, as SQL.
fn micros(expression: &str) -> String {
    format!("(extract(epoch FROM {expression}) * 1000000)::bigint")
}

fn run_columns() -> String {
    format!(
        "id, strategy, seed, population_size, generations, config, status, {}, {}",
        micros("created_at"),
        micros("updated_at")
    )
}

fn task_columns() -> String {
    format!(
        "run_id, generation, individual, payload, state, attempts, max_attempts, token, worker, {}, fitness, result, error",
        micros("lease_expires_at")
    )
}

fn run_from_row(row: &PgRow) -> Result<RunRecord> {
    let get = |e: sqlx::Error| StoreError::internal(BACKEND, format!("reading a run: {e}"));
    let status: String = row.try_get(6).map_err(get)?;
    Ok(RunRecord {
        spec: RunSpec {
            id: RunId::new(row.try_get::<String, _>(0).map_err(get)?)?,
            strategy: row.try_get(1).map_err(get)?,
            seed: row.try_get::<i64, _>(2).map_err(get)? as u64,
            population_size: row.try_get::<i32, _>(3).map_err(get)? as u32,
            generations: row.try_get::<i32, _>(4).map_err(get)? as u32,
            config: row.try_get(5).map_err(get)?,
        },
        status: status.parse()?,
        created_at: Timestamp(row.try_get(7).map_err(get)?),
        updated_at: Timestamp(row.try_get(8).map_err(get)?),
    })
}

fn task_from_row(row: &PgRow) -> Result<TaskRecord> {
    let get = |e: sqlx::Error| StoreError::internal(BACKEND, format!("reading a task: {e}"));
    let state: String = row.try_get(4).map_err(get)?;
    let worker: Option<String> = row.try_get(8).map_err(get)?;
    Ok(TaskRecord {
        key: TaskKey {
            run: RunId::new(row.try_get::<String, _>(0).map_err(get)?)?,
            generation: row.try_get::<i32, _>(1).map_err(get)? as u32,
            individual: row.try_get::<i32, _>(2).map_err(get)? as u32,
        },
        payload: row.try_get(3).map_err(get)?,
        state: state.parse()?,
        attempts: row.try_get::<i32, _>(5).map_err(get)? as u32,
        max_attempts: row.try_get::<i32, _>(6).map_err(get)? as u32,
        token: FencingToken(row.try_get::<i64, _>(7).map_err(get)? as u64),
        worker: worker.map(WorkerId::new).transpose()?,
        lease_expires_at: row.try_get::<Option<i64>, _>(9).map_err(get)?.map(Timestamp),
        fitness: row.try_get(10).map_err(get)?,
        result: row.try_get(11).map_err(get)?,
        error: row.try_get(12).map_err(get)?,
    })
}

/// A TTL as a whole number of microseconds for `make_interval`-free SQL arithmetic.
fn ttl_micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

fn missing_run(run: &RunId) -> StoreError {
    StoreError::not_found(format!("run {run}"))
}

/// A u32 as the `integer` column type (every value we store fits: indexes and counts).
fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl NeonStore {
    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.inner.config.schema)
    }
}

async fn load_run(
    c: &mut PgConnection,
    schema: &str,
    run: &str,
    persistent: bool,
) -> Result<Option<RunRecord>, Failure> {
    let sql = format!("SELECT {} FROM {schema}.runs WHERE id = $1", run_columns());
    let row = sqlx::query(&sql).bind(run).persistent(persistent).fetch_optional(&mut *c).await?;
    Ok(row.as_ref().map(run_from_row).transpose()?)
}

async fn require_run(c: &mut PgConnection, schema: &str, run: &RunId, persistent: bool) -> Result<(), Failure> {
    let sql = format!("SELECT 1 FROM {schema}.runs WHERE id = $1");
    let found: Option<i32> =
        sqlx::query_scalar(&sql).bind(run.as_str()).persistent(persistent).fetch_optional(&mut *c).await?;
    if found.is_none() {
        return Err(missing_run(run).into());
    }
    Ok(())
}

async fn load_individuals(
    c: &mut PgConnection,
    schema: &str,
    run: &RunId,
    number: u32,
    persistent: bool,
) -> Result<Option<Vec<Individual>>, Failure> {
    let exists: Option<i32> =
        sqlx::query_scalar(&format!("SELECT size FROM {schema}.generations WHERE run_id = $1 AND generation = $2"))
            .bind(run.as_str())
            .bind(int(number))
            .persistent(persistent)
            .fetch_optional(&mut *c)
            .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let rows: Vec<(i32, String)> = sqlx::query_as(&format!(
        "SELECT individual, genome FROM {schema}.individuals WHERE run_id = $1 AND generation = $2 ORDER BY individual"
    ))
    .bind(run.as_str())
    .bind(int(number))
    .persistent(persistent)
    .fetch_all(&mut *c)
    .await?;
    Ok(Some(rows.into_iter().map(|(index, genome)| Individual { index: index as u32, genome }).collect()))
}

async fn latest_number(
    c: &mut PgConnection,
    schema: &str,
    run: &RunId,
    persistent: bool,
) -> Result<Option<u32>, Failure> {
    let latest: Option<i32> =
        sqlx::query_scalar(&format!("SELECT max(generation) FROM {schema}.generations WHERE run_id = $1"))
            .bind(run.as_str())
            .persistent(persistent)
            .fetch_one(&mut *c)
            .await?;
    Ok(latest.map(|n| n as u32))
}

async fn mark_seen(c: &mut PgConnection, schema: &str, worker: &WorkerId, persistent: bool) -> Result<(), Failure> {
    sqlx::query(&format!("UPDATE {schema}.workers SET last_seen = now() WHERE id = $1"))
        .bind(worker.as_str())
        .persistent(persistent)
        .execute(&mut *c)
        .await?;
    Ok(())
}

fn describe_generation(number: Option<u32>) -> String {
    number.map_or_else(|| "none".to_string(), |n| n.to_string())
}

#[async_trait::async_trait]
impl EvolutionStore for NeonStore {
    fn capabilities(&self) -> strata_core::Capabilities {
        crate::store::CAPABILITIES
    }

    async fn create_run(&self, spec: RunSpec) -> Result<RunRecord> {
        let (schema, persistent) = (self.inner.config.schema.clone(), self.persistent());
        transact!(self.inner, "creating a run", Idempotency::Idempotent, |c| {
            let inserted = sqlx::query(&format!(
                "INSERT INTO {schema}.runs (id, strategy, seed, population_size, generations, config, status)
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT (id) DO NOTHING"
            ))
            .bind(spec.id.as_str())
            .bind(&spec.strategy)
            .bind(spec.seed as i64)
            .bind(int(spec.population_size))
            .bind(int(spec.generations))
            .bind(&spec.config)
            .persistent(persistent)
            .execute(&mut *c)
            .await?;
            let record =
                load_run(c, &schema, spec.id.as_str(), persistent).await?.ok_or_else(|| missing_run(&spec.id))?;
            if inserted.rows_affected() == 0 && record.spec != spec {
                return Err(
                    StoreError::conflict(format!("run {} already exists with a different spec", spec.id)).into()
                );
            }
            Ok(record)
        })
    }

    async fn get_run(&self, run: &RunId) -> Result<RunRecord> {
        let (schema, persistent, run) = (self.inner.config.schema.clone(), self.persistent(), run.clone());
        transact!(self.inner, "reading a run", Idempotency::Idempotent, |c| {
            Ok(load_run(c, &schema, run.as_str(), persistent).await?.ok_or_else(|| missing_run(&run))?)
        })
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>> {
        let sql = self.sql(&format!("SELECT {} FROM {{s}}.runs ORDER BY created_order DESC", run_columns()));
        let persistent = self.persistent();
        transact!(self.inner, "listing runs", Idempotency::Idempotent, |c| {
            let rows = sqlx::query(&sql).persistent(persistent).fetch_all(&mut *c).await?;
            Ok(rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?)
        })
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<RunRecord> {
        let (schema, persistent, run) = (self.inner.config.schema.clone(), self.persistent(), run.clone());
        transact!(self.inner, "setting a run's status", Idempotency::Idempotent, |c| {
            let sql = format!("UPDATE {schema}.runs SET status = $1, updated_at = now() WHERE id = $2");
            let done = sqlx::query(&sql)
                .bind(status.as_str())
                .bind(run.as_str())
                .persistent(persistent)
                .execute(&mut *c)
                .await?;
            if done.rows_affected() == 0 {
                return Err(missing_run(&run).into());
            }
            Ok(load_run(c, &schema, run.as_str(), persistent).await?.ok_or_else(|| missing_run(&run))?)
        })
    }

    async fn transition_run(&self, run: &RunId, from: &[RunStatus], to: RunStatus) -> Result<RunRecord> {
        let (schema, persistent, run) = (self.inner.config.schema.clone(), self.persistent(), run.clone());
        let from: Vec<String> = from.iter().map(|status| status.as_str().to_string()).collect();
        transact!(self.inner, "changing a run's status", Idempotency::Idempotent, |c| {
            // One statement: the row's status is compared and set under its row lock.
            let sql =
                format!("UPDATE {schema}.runs SET status = $1, updated_at = now() WHERE id = $2 AND status = ANY($3)");
            sqlx::query(&sql)
                .bind(to.as_str())
                .bind(run.as_str())
                .bind(&from)
                .persistent(persistent)
                .execute(&mut *c)
                .await?;
            Ok(load_run(c, &schema, run.as_str(), persistent).await?.ok_or_else(|| missing_run(&run))?)
        })
    }

    async fn delete_run(&self, run: &RunId) -> Result<bool> {
        let (schema, persistent, run) = (self.inner.config.schema.clone(), self.persistent(), run.clone());
        transact!(self.inner, "deleting a run", Idempotency::Idempotent, |c| {
            // Generations, individuals, tasks, statistics and the coordinator role cascade.
            let deleted = sqlx::query(&format!("DELETE FROM {schema}.runs WHERE id = $1"))
                .bind(run.as_str())
                .persistent(persistent)
                .execute(&mut *c)
                .await?;
            Ok(deleted.rows_affected() > 0)
        })
    }

    async fn save_generation(&self, generation: Generation, expected_latest: Option<u32>) -> Result<()> {
        let Generation { run, number, individuals } = generation.normalized()?;
        let (schema, persistent) = (self.inner.config.schema.clone(), self.persistent());
        transact!(self.inner, "saving a generation", Idempotency::Idempotent, |c| {
            // Lock the run row: concurrent savers of one run are serialised here.
            let locked: Option<i32> =
                sqlx::query_scalar(&format!("SELECT 1 FROM {schema}.runs WHERE id = $1 FOR UPDATE"))
                    .bind(run.as_str())
                    .persistent(persistent)
                    .fetch_optional(&mut *c)
                    .await?;
            if locked.is_none() {
                return Err(missing_run(&run).into());
            }
            if let Some(stored) = load_individuals(c, &schema, &run, number, persistent).await? {
                if stored == individuals {
                    return Ok(());
                }
                return Err(StoreError::conflict(format!(
                    "generation {number} of run {run} is already stored with a different population"
                ))
                .into());
            }
            let latest = latest_number(c, &schema, &run, persistent).await?;
            if latest != expected_latest {
                return Err(StoreError::conflict(format!(
                    "run {run}: the latest stored generation is {}, not {}",
                    describe_generation(latest),
                    describe_generation(expected_latest)
                ))
                .into());
            }
            sqlx::query(&format!("INSERT INTO {schema}.generations (run_id, generation, size) VALUES ($1, $2, $3)"))
                .bind(run.as_str())
                .bind(int(number))
                .bind(i32::try_from(individuals.len()).unwrap_or(i32::MAX))
                .persistent(persistent)
                .execute(&mut *c)
                .await?;
            let indexes: Vec<i32> = individuals.iter().map(|i| int(i.index)).collect();
            let genomes: Vec<String> = individuals.iter().map(|i| i.genome.clone()).collect();
            sqlx::query(&format!(
                "INSERT INTO {schema}.individuals (run_id, generation, individual, genome)
                     SELECT $1, $2, i, g FROM unnest($3::integer[], $4::text[]) AS t(i, g)"
            ))
            .bind(run.as_str())
            .bind(int(number))
            .bind(indexes)
            .bind(genomes)
            .persistent(persistent)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    async fn load_generation(&self, run: &RunId, number: u32) -> Result<Generation> {
        let (schema, persistent, run) = (self.inner.config.schema.clone(), self.persistent(), run.clone());
        transact!(self.inner, "loading a generation", Idempotency::Idempotent, |c| {
            let individuals = load_individuals(c, &schema, &run, number, persistent)
                .await?
                .ok_or_else(|| StoreError::not_found(format!("generation {number} of run {run}")))?;
            Ok(Generation { run: run.clone(), number, individuals })
        })
    }

    async fn latest_generation(&self, run: &RunId) -> Result<Option<Generation>> {
        let (schema, persistent, run) = (self.inner.config.schema.clone(), self.persistent(), run.clone());
        transact!(self.inner, "loading the latest generation", Idempotency::Idempotent, |c| {
            let Some(number) = latest_number(c, &schema, &run, persistent).await? else { return Ok(None) };
            let individuals = load_individuals(c, &schema, &run, number, persistent).await?.unwrap_or_default();
            Ok(Some(Generation { run: run.clone(), number, individuals }))
        })
    }

    async fn enqueue_tasks(&self, run: &RunId, generation: u32, tasks: Vec<NewTask>, max_attempts: u32) -> Result<u64> {
        let (schema, persistent, run) = (self.inner.config.schema.clone(), self.persistent(), run.clone());
        let max_attempts = int(max_attempts.max(1));
        let individuals: Vec<i32> = tasks.iter().map(|t| int(t.individual)).collect();
        let payloads: Vec<String> = tasks.into_iter().map(|t| t.payload).collect();
        transact!(self.inner, "enqueueing tasks", Idempotency::Idempotent, |c| {
            require_run(c, &schema, &run, persistent).await?;
            let done = sqlx::query(&format!(
                "INSERT INTO {schema}.tasks (run_id, generation, individual, payload, state, max_attempts)
                     SELECT $1, $2, i, p, 'pending', $5 FROM unnest($3::integer[], $4::text[]) AS t(i, p)
                     ON CONFLICT (run_id, generation, individual) DO NOTHING"
            ))
            .bind(run.as_str())
            .bind(int(generation))
            .bind(&individuals)
            .bind(&payloads)
            .bind(max_attempts)
            .persistent(persistent)
            .execute(&mut *c)
            .await?;
            Ok(done.rows_affected())
        })
    }

    async fn lease_tasks(&self, request: LeaseRequest) -> Result<Vec<Lease>> {
        if request.max_tasks == 0 {
            return Ok(Vec::new());
        }
        let (schema, persistent) = (self.inner.config.schema.clone(), self.persistent());
        // Leasing twice is not harmless (the first grant would sit until it expires), so a
        // failure after the statement reached the server is not retried.
        transact!(self.inner, "leasing tasks", Idempotency::NotIdempotent, |c| {
            lease_batch(c, &schema, &request, persistent).await
        })
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<u64> {
        let (schema, persistent, worker) = (self.inner.config.schema.clone(), self.persistent(), worker.clone());
        let ttl = ttl_micros(ttl);
        transact!(self.inner, "extending leases", Idempotency::Idempotent, |c| {
            let done = sqlx::query(&format!(
                "UPDATE {schema}.tasks SET lease_expires_at = now() + $2 * interval '1 microsecond'
                     WHERE state = 'leased' AND worker = $1"
            ))
            .bind(worker.as_str())
            .bind(ttl)
            .persistent(persistent)
            .execute(&mut *c)
            .await?;
            mark_seen(c, &schema, &worker, persistent).await?;
            Ok(done.rows_affected())
        })
    }

    async fn complete_tasks(&self, worker: &WorkerId, completions: Vec<Completion>) -> Result<Vec<CompletionStatus>> {
        check_cache_keys(&completions)?;
        let (schema, persistent, worker) = (self.inner.config.schema.clone(), self.persistent(), worker.clone());
        // Of several completions of one (task, token) only the first can apply (applying it
        // ends the lease): the later copies never reach the statement and stay `Stale`.
        let first = strata_core::policy::first_completions(&completions);
        let unique: Vec<Completion> = first.iter().map(|&index| completions[index].clone()).collect();
        // Not retried once the statement may have reached the server: a replay would find the
        // tokens already used and report them stale, losing the first attempt's statuses.
        let applied = transact!(self.inner, "completing tasks", Idempotency::NotIdempotent, |c| {
            complete_batch(c, &schema, &worker, &unique, persistent).await
        })?;
        Ok(statuses_in_order(completions.len(), first, applied))
    }

    /// One transaction, one commit: the completions, then the next lease.
    async fn complete_and_lease(
        &self,
        worker: &WorkerId,
        completions: Vec<Completion>,
        next: LeaseRequest,
    ) -> Result<(Vec<CompletionStatus>, Result<Vec<Lease>>)> {
        check_cache_keys(&completions)?;
        let (schema, persistent, worker) = (self.inner.config.schema.clone(), self.persistent(), worker.clone());
        let first = strata_core::policy::first_completions(&completions);
        let unique: Vec<Completion> = first.iter().map(|&index| completions[index].clone()).collect();
        // Neither part may be repeated once it may have reached the server (see the two calls).
        let (applied, leases) = transact!(
            self.inner,
            "completing tasks and leasing more",
            Idempotency::NotIdempotent,
            statements = 4,
            |c| {
                let applied = complete_batch(c, &schema, &worker, &unique, persistent).await?;
                let leases =
                    if next.max_tasks == 0 { Vec::new() } else { lease_batch(c, &schema, &next, persistent).await? };
                Ok((applied, leases))
            }
        )?;
        Ok((statuses_in_order(completions.len(), first, applied), Ok(leases)))
    }

    async fn release_tasks(
        &self,
        worker: &WorkerId,
        leases: Vec<(TaskKey, FencingToken)>,
    ) -> Result<Vec<CompletionStatus>> {
        // Of several copies of one (task, token) only the first can apply (releasing ends the lease).
        let first = strata_core::policy::first_releases(&leases);
        let mut runs = Vec::with_capacity(first.len());
        let mut generations = Vec::with_capacity(first.len());
        let mut individuals = Vec::with_capacity(first.len());
        let mut tokens = Vec::with_capacity(first.len());
        for &index in &first {
            let (key, token) = &leases[index];
            runs.push(key.run.as_str().to_string());
            generations.push(int(key.generation));
            individuals.push(int(key.individual));
            tokens.push(i64::try_from(token.0).unwrap_or(-1));
        }
        let sql = self.sql(
            "WITH seen AS (UPDATE {s}.workers SET last_seen = now() WHERE id = $1),
             input AS (
                SELECT * FROM unnest($2::text[], $3::integer[], $4::integer[], $5::bigint[])
                       AS i(run_id, generation, individual, token)
             )
             UPDATE {s}.tasks t
             SET state = 'pending', attempts = greatest(t.attempts - 1, 0), worker = NULL, lease_expires_at = NULL
             FROM input i
             WHERE t.run_id = i.run_id AND t.generation = i.generation AND t.individual = i.individual
               AND t.state = 'leased' AND t.worker = $1 AND t.token = i.token
             RETURNING t.run_id, t.generation, t.individual, t.token",
        );
        let (persistent, worker) = (self.persistent(), worker.clone());
        // Fenced: a repeat finds the tasks no longer leased under these tokens and changes nothing.
        let rows: Vec<(String, i32, i32, i64)> =
            transact!(self.inner, "releasing leases", Idempotency::Idempotent, |c| {
                Ok(sqlx::query_as(&sql)
                    .bind(worker.as_str())
                    .bind(&runs)
                    .bind(&generations)
                    .bind(&individuals)
                    .bind(&tokens)
                    .persistent(persistent)
                    .fetch_all(&mut *c)
                    .await?)
            })?;
        let released: std::collections::HashSet<(String, i32, i32, i64)> = rows.into_iter().collect();
        let mut statuses = vec![CompletionStatus::Stale; leases.len()];
        for (position, index) in first.into_iter().enumerate() {
            let row = (runs[position].clone(), generations[position], individuals[position], tokens[position]);
            if released.contains(&row) {
                statuses[index] = CompletionStatus::Released;
            }
        }
        Ok(statuses)
    }

    async fn requeue_expired(&self) -> Result<u64> {
        let sql = self.sql(
            "UPDATE {s}.tasks SET state = 'pending', worker = NULL, lease_expires_at = NULL
             WHERE state = 'leased' AND lease_expires_at <= now()",
        );
        let persistent = self.persistent();
        transact!(self.inner, "requeueing expired leases", Idempotency::Idempotent, |c| {
            Ok(sqlx::query(&sql).persistent(persistent).execute(&mut *c).await?.rows_affected())
        })
    }

    async fn requeue_parked(&self, run: &RunId) -> Result<u64> {
        // One statement: the update and the run's existence, read in the same snapshot.
        let sql = self.sql(
            "WITH requeued AS (
                UPDATE {s}.tasks SET state = 'pending', attempts = 0, error = NULL, worker = NULL,
                                     lease_expires_at = NULL
                WHERE run_id = $1 AND state = 'parked'
                RETURNING 1
             )
             SELECT EXISTS (SELECT 1 FROM {s}.runs WHERE id = $1), (SELECT count(*) FROM requeued)::bigint",
        );
        let (persistent, run) = (self.persistent(), run.clone());
        // A repeat finds nothing parked (unless tasks were parked again meanwhile) and returns 0.
        transact!(self.inner, "requeueing parked tasks", Idempotency::Idempotent, |c| {
            let (exists, requeued): (bool, i64) =
                sqlx::query_as(&sql).bind(run.as_str()).persistent(persistent).fetch_one(&mut *c).await?;
            if !exists {
                return Err(missing_run(&run).into());
            }
            Ok(requeued as u64)
        })
    }

    async fn task_counts(&self, run: &RunId, generation: u32) -> Result<TaskCounts> {
        let sql = self
            .sql("SELECT state, count(*)::bigint FROM {s}.tasks WHERE run_id = $1 AND generation = $2 GROUP BY state");
        let (persistent, run) = (self.persistent(), run.clone());
        let rows: Vec<(String, i64)> = transact!(self.inner, "counting tasks", Idempotency::Idempotent, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(run.as_str())
                .bind(int(generation))
                .persistent(persistent)
                .fetch_all(&mut *c)
                .await?)
        })?;
        let mut counts = TaskCounts::default();
        for (state, count) in rows {
            let count = count as u64;
            match state.parse::<TaskState>()? {
                TaskState::Pending => counts.pending = count,
                TaskState::Leased => counts.leased = count,
                TaskState::Done => counts.done = count,
                TaskState::Parked => counts.parked = count,
            }
        }
        Ok(counts)
    }

    async fn list_tasks(&self, run: &RunId, generation: u32) -> Result<Vec<TaskRecord>> {
        let sql = self.sql(&format!(
            "SELECT {} FROM {{s}}.tasks WHERE run_id = $1 AND generation = $2 ORDER BY individual",
            task_columns()
        ));
        let (persistent, run) = (self.persistent(), run.clone());
        transact!(self.inner, "listing tasks", Idempotency::Idempotent, |c| {
            let rows = sqlx::query(&sql)
                .bind(run.as_str())
                .bind(int(generation))
                .persistent(persistent)
                .fetch_all(&mut *c)
                .await?;
            Ok(rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?)
        })
    }

    async fn register_worker(&self, worker: WorkerInfo) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO {s}.workers (id, hostname, pid) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, last_seen = now()",
        );
        let persistent = self.persistent();
        transact!(self.inner, "registering a worker", Idempotency::Idempotent, |c| {
            sqlx::query(&sql)
                .bind(worker.id.as_str())
                .bind(&worker.hostname)
                .bind(i64::from(worker.pid))
                .persistent(persistent)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        let sql = self.sql(&format!(
            "SELECT id, hostname, pid, {}, {} FROM {{s}}.workers ORDER BY id",
            micros("registered_at"),
            micros("last_seen")
        ));
        let persistent = self.persistent();
        let rows: Vec<(String, String, i64, i64, i64)> =
            transact!(self.inner, "listing workers", Idempotency::Idempotent, |c| {
                Ok(sqlx::query_as(&sql).persistent(persistent).fetch_all(&mut *c).await?)
            })?;
        rows.into_iter()
            .map(|(id, hostname, pid, registered_at, last_seen)| {
                Ok(WorkerRecord {
                    info: WorkerInfo { id: WorkerId::new(id)?, hostname, pid: pid as u32 },
                    registered_at: Timestamp(registered_at),
                    last_seen: Timestamp(last_seen),
                })
            })
            .collect()
    }

    async fn record_generation_stats(&self, stats: GenerationStats) -> Result<()> {
        let (schema, persistent) = (self.inner.config.schema.clone(), self.persistent());
        transact!(self.inner, "recording generation statistics", Idempotency::Idempotent, |c| {
            require_run(c, &schema, &stats.run, persistent).await?;
            sqlx::query(&format!(
                "INSERT INTO {schema}.generation_stats (run_id, generation, best, mean, std, diversity, evaluated)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (run_id, generation) DO UPDATE SET
                         best = EXCLUDED.best, mean = EXCLUDED.mean, std = EXCLUDED.std,
                         diversity = EXCLUDED.diversity, evaluated = EXCLUDED.evaluated"
            ))
            .bind(stats.run.as_str())
            .bind(int(stats.generation))
            .bind(stats.best)
            .bind(stats.mean)
            .bind(stats.std)
            .bind(stats.diversity)
            .bind(int(stats.evaluated))
            .persistent(persistent)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    async fn generation_stats(&self, run: &RunId) -> Result<Vec<GenerationStats>> {
        let sql = self.sql(
            "SELECT generation, best, mean, std, diversity, evaluated FROM {s}.generation_stats
             WHERE run_id = $1 ORDER BY generation",
        );
        let (persistent, run) = (self.persistent(), run.clone());
        let rows: Vec<(i32, f64, f64, f64, f64, i32)> = {
            let run = run.clone();
            transact!(self.inner, "reading generation statistics", Idempotency::Idempotent, |c| {
                Ok(sqlx::query_as(&sql).bind(run.as_str()).persistent(persistent).fetch_all(&mut *c).await?)
            })?
        };
        Ok(rows
            .into_iter()
            .map(|(generation, best, mean, std, diversity, evaluated)| GenerationStats {
                run: run.clone(),
                generation: generation as u32,
                best,
                mean,
                std,
                diversity,
                evaluated: evaluated as u32,
            })
            .collect())
    }

    async fn cached_fitness(&self, keys: &[String]) -> Result<Vec<Option<CachedFitness>>> {
        for key in keys {
            check_cache_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.sql("SELECT key, fitness, result FROM {s}.fitness_cache WHERE key = ANY($1::text[])");
        let (persistent, wanted) = (self.persistent(), keys.to_vec());
        let rows: Vec<(String, f64, String)> =
            transact!(self.inner, "reading the fitness cache", Idempotency::Safe, |c| {
                Ok(sqlx::query_as(&sql).bind(&wanted).persistent(persistent).fetch_all(&mut *c).await?)
            })?;
        let found: std::collections::HashMap<String, (f64, String)> =
            rows.into_iter().map(|(key, fitness, result)| (key, (fitness, result))).collect();
        Ok(keys
            .iter()
            .map(|key| {
                found.get(key).map(|(fitness, result)| CachedFitness {
                    key: key.clone(),
                    fitness: *fitness,
                    result: result.clone(),
                })
            })
            .collect())
    }

    async fn acquire_coordinator(&self, run: &RunId, holder: &WorkerId, ttl: Duration) -> Result<Option<RoleLease>> {
        let (schema, persistent) = (self.inner.config.schema.clone(), self.persistent());
        let (run, holder, ttl_us) = (run.clone(), holder.clone(), ttl_micros(ttl));
        // One upsert decides under the row lock: a live lease of another holder is
        // left alone (no row comes back); the holder's own live lease keeps its
        // token; anything else (no row, expired, released) takes a fresh token.
        let sql = format!(
            "INSERT INTO {schema}.coordinator_leases AS l (run_id, holder, token, expires_at)
             VALUES ($1, $2, nextval('{schema}.coordinator_tokens'), now() + $3 * interval '1 microsecond')
             ON CONFLICT (run_id) DO UPDATE
             SET holder = EXCLUDED.holder,
                 token = CASE WHEN l.expires_at > now() THEN l.token ELSE EXCLUDED.token END,
                 expires_at = EXCLUDED.expires_at
             WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
             RETURNING l.token, {}",
            micros("l.expires_at")
        );
        // A repeat by the same holder finds its own live lease: idempotent.
        transact!(self.inner, "acquiring the coordinator role", Idempotency::Idempotent, |c| {
            require_run(c, &schema, &run, persistent).await?;
            let row: Option<(i64, i64)> = sqlx::query_as(&sql)
                .bind(run.as_str())
                .bind(holder.as_str())
                .bind(ttl_us)
                .persistent(persistent)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.map(|(token, expires_at)| RoleLease {
                run: run.clone(),
                holder: holder.clone(),
                token: FencingToken(token as u64),
                expires_at: Timestamp(expires_at),
            }))
        })
    }

    async fn renew_coordinator(&self, lease: &RoleLease, ttl: Duration) -> Result<bool> {
        let sql = self.sql(
            "UPDATE {s}.coordinator_leases SET expires_at = now() + $4 * interval '1 microsecond'
             WHERE run_id = $1 AND holder = $2 AND token = $3",
        );
        let (persistent, lease, ttl_us) = (self.persistent(), lease.clone(), ttl_micros(ttl));
        transact!(self.inner, "renewing the coordinator role", Idempotency::Idempotent, |c| {
            let done = sqlx::query(&sql)
                .bind(lease.run.as_str())
                .bind(lease.holder.as_str())
                .bind(i64::try_from(lease.token.0).unwrap_or(-1))
                .bind(ttl_us)
                .persistent(persistent)
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn release_coordinator(&self, lease: &RoleLease) -> Result<()> {
        let sql = self.sql("DELETE FROM {s}.coordinator_leases WHERE run_id = $1 AND holder = $2 AND token = $3");
        let (persistent, lease) = (self.persistent(), lease.clone());
        transact!(self.inner, "releasing the coordinator role", Idempotency::Idempotent, |c| {
            sqlx::query(&sql)
                .bind(lease.run.as_str())
                .bind(lease.holder.as_str())
                .bind(i64::try_from(lease.token.0).unwrap_or(-1))
                .persistent(persistent)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }
}

/// Applies a batch of completions (distinct (task, token) pairs) in ONE
/// statement: the fencing check is the join condition, so a completion whose
/// token is not the task's current lease by this worker matches nothing and
/// is reported `Stale`. The worker's `last_seen` is updated, and the fitness
/// of every recorded success with a cache key is upserted into
/// `fitness_cache` (the last completion of a key in the batch wins: `ON
/// CONFLICT DO UPDATE` may touch a row once per statement), in the same
/// statement.
/// The status of each of `total` completions, in order: `applied[i]` for the completion at
/// `first[i]` (the ones sent), `Stale` for the later copies that were not.
fn statuses_in_order(total: usize, first: Vec<usize>, applied: Vec<CompletionStatus>) -> Vec<CompletionStatus> {
    let mut statuses = vec![CompletionStatus::Stale; total];
    for (index, status) in first.into_iter().zip(applied) {
        statuses[index] = status;
    }
    statuses
}

/// Leases as `lease_tasks` does, inside the caller's transaction, and records the worker as seen.
async fn lease_batch(
    c: &mut PgConnection,
    schema: &str,
    request: &LeaseRequest,
    persistent: bool,
) -> Result<Vec<Lease>, Failure> {
    let (worker, run, max_tasks, ttl) = (&request.worker, &request.run, request.max_tasks, ttl_micros(request.ttl));
    let run_filter = if run.is_some() { " AND t.run_id = $2" } else { " AND $2::text IS NULL" };
    // Tasks that could be leased but have used up their attempts are parked instead.
    let park_filter = if run.is_some() { " AND t.run_id = $1" } else { " AND $1::text IS NULL" };
    sqlx::query(&format!(
        "UPDATE {schema}.tasks t SET state = 'parked', worker = NULL, lease_expires_at = NULL,
                    error = coalesce(t.error, 'attempts used up: the last lease expired')
             FROM {schema}.runs r
             WHERE r.id = t.run_id AND r.status IN ('pending', 'running')
               AND t.attempts >= t.max_attempts
               AND (t.state = 'pending' OR (t.state = 'leased' AND t.lease_expires_at <= now())){park_filter}"
    ))
    .bind(run.as_ref().map(RunId::as_str))
    .persistent(persistent)
    .execute(&mut *c)
    .await?;
    let sql = format!(
        "WITH chosen AS (
                SELECT t.run_id, t.generation, t.individual
                FROM {schema}.tasks t JOIN {schema}.runs r ON r.id = t.run_id
                WHERE t.state IN ('pending', 'leased')
                  AND (t.state = 'pending' OR t.lease_expires_at <= now())
                  AND t.attempts < t.max_attempts
                  AND r.status IN ('pending', 'running'){run_filter}
                ORDER BY t.generation, t.individual, t.run_id
                LIMIT $1
                FOR UPDATE OF t SKIP LOCKED
             )
             UPDATE {schema}.tasks t
             SET state = 'leased', attempts = t.attempts + 1, token = nextval('{schema}.fencing_tokens'),
                 worker = $3, lease_expires_at = now() + $4 * interval '1 microsecond'
             FROM chosen
             WHERE t.run_id = chosen.run_id AND t.generation = chosen.generation
               AND t.individual = chosen.individual
             RETURNING t.run_id, t.generation, t.individual, t.payload, t.token, t.attempts,
                       {}",
        micros("t.lease_expires_at")
    );
    let rows = sqlx::query(&sql)
        .bind(i64::from(max_tasks))
        .bind(run.as_ref().map(RunId::as_str))
        .bind(worker.as_str())
        .bind(ttl)
        .persistent(persistent)
        .fetch_all(&mut *c)
        .await?;
    let mut leases = Vec::with_capacity(rows.len());
    for row in &rows {
        leases.push(Lease {
            key: TaskKey {
                run: RunId::new(row.try_get::<String, _>(0)?)?,
                generation: row.try_get::<i32, _>(1)? as u32,
                individual: row.try_get::<i32, _>(2)? as u32,
            },
            payload: row.try_get(3)?,
            token: FencingToken(row.try_get::<i64, _>(4)? as u64),
            attempt: row.try_get::<i32, _>(5)? as u32,
            expires_at: Timestamp(row.try_get(6)?),
        });
    }
    leases.sort_by(|a, b| {
        (a.key.generation, a.key.individual, &a.key.run).cmp(&(b.key.generation, b.key.individual, &b.key.run))
    });
    mark_seen(c, schema, worker, persistent).await?;
    Ok(leases)
}

async fn complete_batch(
    c: &mut PgConnection,
    schema: &str,
    worker: &WorkerId,
    completions: &[Completion],
    persistent: bool,
) -> Result<Vec<CompletionStatus>, Failure> {
    let mut runs = Vec::with_capacity(completions.len());
    let mut generations = Vec::with_capacity(completions.len());
    let mut individuals = Vec::with_capacity(completions.len());
    let mut tokens = Vec::with_capacity(completions.len());
    let mut succeeded = Vec::with_capacity(completions.len());
    let mut fitnesses: Vec<Option<f64>> = Vec::with_capacity(completions.len());
    let mut results: Vec<Option<String>> = Vec::with_capacity(completions.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(completions.len());
    let mut cache_keys: Vec<Option<String>> = Vec::with_capacity(completions.len());
    for completion in completions {
        cache_keys.push(completion.cache_key.clone());
        runs.push(completion.key.run.as_str().to_string());
        generations.push(int(completion.key.generation));
        individuals.push(int(completion.key.individual));
        tokens.push(i64::try_from(completion.token.0).unwrap_or(-1));
        match &completion.outcome {
            TaskOutcome::Succeeded { fitness, result } => {
                succeeded.push(true);
                fitnesses.push(Some(*fitness));
                results.push(Some(result.clone()));
                errors.push(None);
            }
            TaskOutcome::Failed { error } => {
                succeeded.push(false);
                fitnesses.push(None);
                results.push(None);
                errors.push(Some(error.clone()));
            }
        }
    }
    let sql = format!(
        "WITH seen AS (UPDATE {schema}.workers SET last_seen = now() WHERE id = $1),
         input AS (
            SELECT * FROM unnest($2::text[], $3::integer[], $4::integer[], $5::bigint[], $6::boolean[],
                                 $7::double precision[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY
                   AS i(run_id, generation, individual, token, ok, fitness, result, error, cache_key, ordinal)
         ),
         applied AS (
            UPDATE {schema}.tasks t
            SET state = CASE WHEN i.ok THEN 'done' WHEN t.attempts >= t.max_attempts THEN 'parked' ELSE 'pending' END,
                fitness = CASE WHEN i.ok THEN i.fitness ELSE t.fitness END,
                result = CASE WHEN i.ok THEN i.result ELSE t.result END,
                error = CASE WHEN i.ok THEN t.error ELSE i.error END,
                worker = NULL, lease_expires_at = NULL
            FROM input i
            WHERE t.run_id = i.run_id AND t.generation = i.generation AND t.individual = i.individual
              AND t.state = 'leased' AND t.worker = $1 AND t.token = i.token
            RETURNING t.run_id, t.generation, t.individual, t.token, t.state,
                      i.ok, i.fitness, i.result, i.cache_key, i.ordinal
         ),
         cached AS (
            INSERT INTO {schema}.fitness_cache (key, fitness, result)
            SELECT DISTINCT ON (a.cache_key) a.cache_key, a.fitness, a.result FROM applied a
            WHERE a.ok AND a.cache_key IS NOT NULL
            ORDER BY a.cache_key, a.ordinal DESC
            ON CONFLICT (key) DO UPDATE SET fitness = EXCLUDED.fitness, result = EXCLUDED.result
         )
         SELECT run_id, generation, individual, token, state FROM applied"
    );
    let rows: Vec<(String, i32, i32, i64, String)> = sqlx::query_as(&sql)
        .bind(worker.as_str())
        .bind(&runs)
        .bind(&generations)
        .bind(&individuals)
        .bind(&tokens)
        .bind(&succeeded)
        .bind(&fitnesses)
        .bind(&results)
        .bind(&errors)
        .bind(&cache_keys)
        .persistent(persistent)
        .fetch_all(&mut *c)
        .await?;
    let applied: std::collections::HashMap<(String, i32, i32, i64), String> = rows
        .into_iter()
        .map(|(run, generation, individual, token, state)| ((run, generation, individual, token), state))
        .collect();
    Ok((0..completions.len())
        .map(|i| match applied.get(&(runs[i].clone(), generations[i], individuals[i], tokens[i])).map(String::as_str) {
            None => CompletionStatus::Stale,
            Some("done") => CompletionStatus::Recorded,
            Some("parked") => CompletionStatus::Parked,
            Some(_) => CompletionStatus::Requeued,
        })
        .collect())
}
