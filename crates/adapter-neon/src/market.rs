//! `MarketDataStore` over PostgreSQL: validated batches go by binary COPY
//! into a transaction-scoped staging table, then one
//! `INSERT ... ON CONFLICT DO UPDATE` into `ohlcv_bars`, all in one
//! transaction; reads stream `COPY (SELECT ...) TO STDOUT (FORMAT binary)`
//! straight into bounded Arrow batches; the digest is computed in SQL.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::Executor as _;
use sqlx::{PgConnection, Row as _};
use strata_core::bar::{MAX_TIMESTAMP, MIN_TIMESTAMP};
use strata_core::{
    BarBatch, BarQuery, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary, Result, StoreError,
    Symbol, SymbolSummary, TimeRange, Timestamp, WriteReport,
};
use tokio::sync::mpsc;

use crate::config::PartitionInterval;
use crate::copy::{CopyDecoder, encode_rows, header, trailer};
use crate::error::{BACKEND, Failure, Transience, classify};
use crate::schema::{self, BarLayout};
use crate::store::{Idempotency, NeonStore, transact};

/// Batches buffered between the reading task and the consumer.
const QUERY_CHANNEL_DEPTH: usize = 2;

/// SQLSTATE of "no partition of relation found for row".
const NO_PARTITION: &str = "23514";

#[async_trait::async_trait]
impl MarketDataStore for NeonStore {
    fn capabilities(&self) -> strata_core::Capabilities {
        crate::store::CAPABILITIES
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(WriteReport::committed(0));
        }
        let rows = batch.len() as u64;
        self.check_write_span(&batch).await?;
        if let BarLayout::Partitioned(interval) = self.inner.layout {
            self.ensure_partitions(interval, &batch).await?;
        }
        match self.write_validated(&batch).await {
            Err(error) if crate::error::sqlstate(&error) == Some(NO_PARTITION) => {
                // Someone dropped a partition we believed in: forget what we know and try once more.
                *self.inner.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                if let BarLayout::Partitioned(interval) = self.inner.layout {
                    self.ensure_partitions(interval, &batch).await?;
                }
                self.write_validated(&batch).await?;
            }
            other => {
                other?;
            }
        }
        Ok(WriteReport::committed(rows))
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        if query.is_trivially_empty() {
            return futures::stream::empty().boxed();
        }
        let store = self.clone();
        // The reader starts on the first poll, so building the stream needs no runtime.
        strata_store_kit::lazy_producer(QUERY_CHANNEL_DEPTH, move |sender| async move {
            store.stream_query(&query, &sender).await
        })
    }

    async fn summary(&self) -> Result<MarketSummary> {
        let sql = format!(
            "SELECT symbol::text, (extract(epoch FROM min(ts)) * 1000000)::bigint,
                    (extract(epoch FROM max(ts)) * 1000000)::bigint, count(*)::bigint
             FROM {} GROUP BY symbol ORDER BY symbol",
            self.table("ohlcv_bars")
        );
        let persistent = self.persistent();
        let rows = transact!(self.inner, "summarising bars", Idempotency::Idempotent, |c| {
            let rows: Vec<(String, i64, i64, i64)> =
                sqlx::query_as(&sql).persistent(persistent).fetch_all(&mut *c).await?;
            Ok(rows)
        })?;
        let symbols = rows
            .into_iter()
            .map(|(symbol, first, last, count)| SymbolSummary {
                symbol,
                first: Timestamp(first),
                last: Timestamp(last),
                rows: count as u64,
            })
            .collect();
        Ok(MarketSummary { symbols })
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        if matches!((query.start, query.end), (Some(start), Some(end)) if start >= end) {
            return Ok(Vec::new());
        }
        let sql = schema::digest_sql(&self.inner.config.schema, &query);
        let rows = transact!(self.inner, "computing digests", Idempotency::Idempotent, |c| {
            // Spliced literals make every digest text different: never cache it.
            let rows = sqlx::query(&sql).persistent(false).fetch_all(&mut *c).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let symbol: String = row.try_get(0)?;
                let day: NaiveDate = row.try_get(1)?;
                let count: i64 = row.try_get(2)?;
                let hash: String = row.try_get(3)?;
                out.push((symbol, day, count, hash));
            }
            Ok(out)
        })?;
        rows.into_iter()
            .map(|(symbol, day, count, hash)| {
                let hash = hash
                    .parse::<u64>()
                    .map_err(|_| StoreError::internal(BACKEND, format!("the digest SQL returned {hash:?}")))?;
                Ok(DayDigest { symbol, day, rows: count as u64, hash })
            })
            .collect()
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        if range.start >= range.end {
            return Ok(0);
        }
        let clamp = |t: Timestamp| Timestamp(t.micros().clamp(MIN_TIMESTAMP.micros(), MAX_TIMESTAMP.micros()));
        let (start, end) = (clamp(range.start), clamp(range.end));
        let (Some(start), Some(end)) = (start.to_datetime(), end.to_datetime()) else {
            return Err(StoreError::invalid(format!("range {} to {} is not representable", range.start, range.end)));
        };
        let sql = format!("DELETE FROM {} WHERE symbol = $1 AND ts >= $2 AND ts < $3", self.table("ohlcv_bars"));
        let symbol = symbol.as_str().to_string();
        let persistent = self.persistent();
        transact!(self.inner, "deleting bars", Idempotency::Idempotent, |c| {
            let done =
                sqlx::query(&sql).bind(&symbol).bind(start).bind(end).persistent(persistent).execute(&mut *c).await?;
            Ok(done.rows_affected())
        })
    }

    async fn health(&self) -> Result<HealthReport> {
        self.health_report().await
    }
}

impl NeonStore {
    /// COPY into staging + one upsert, in one transaction (retried as a whole: it is idempotent).
    async fn write_validated(&self, batch: &BarBatch) -> Result<()> {
        let schema_name = self.inner.config.schema.clone();
        let chunk_rows = self.inner.config.batch_rows.max(1);
        // The overlap probe and a savepoint, then a COPY and an upsert per chunk.
        let statements = u32::try_from(batch.len().div_ceil(chunk_rows) * 2 + 2).unwrap_or(u32::MAX);
        transact!(self.inner, "writing bars", Idempotency::Idempotent, statements = statements, |c| {
            copy_and_upsert(c, &schema_name, batch, chunk_rows).await
        })
    }

    /// Refuses a batch whose write would lock more relations than one
    /// transaction may (see [`schema::write_span_problem`]), before anything
    /// is written: the partitions or chunks holding its rows, plus the
    /// existing ones its time span passes (the overlap probe locks those too;
    /// for a hypertable every chunk in the span is assumed to exist).
    async fn check_write_span(&self, batch: &BarBatch) -> Result<()> {
        let layout = self.inner.layout;
        let chunk_interval = self.chunk_interval_for_writes();
        let chunk_micros = i64::try_from(chunk_interval.as_micros()).unwrap_or(i64::MAX);
        let stamps = batch.columns().timestamp.values();
        let (low, high) = stamps.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        let spanned = schema::periods_spanned(layout, chunk_micros, low, high);
        let dense = schema::WriteReach { with_rows: spanned, passed: 0 };
        if schema::write_locks(layout, dense) <= schema::WRITE_LOCK_BUDGET {
            // Even a row in every period of the span fits: the common case, decided without more work.
            return Ok(());
        }
        let mut with_rows = BTreeSet::new();
        let mut last_key = None;
        for &t in stamps.iter() {
            let key = schema::period_key(layout, chunk_micros, t);
            if last_key != Some(key) {
                with_rows.insert(key);
                last_key = Some(key);
            }
        }
        let passed = match layout {
            BarLayout::Hypertable => spanned.saturating_sub(with_rows.len() as u64),
            BarLayout::Partitioned(_) => {
                let first = schema::period_key(layout, chunk_micros, low);
                let known = self.known_partitions().await?;
                known.iter().filter(|start| first <= **start && **start <= high && !with_rows.contains(start)).count()
                    as u64
            }
        };
        let reach = schema::WriteReach { with_rows: with_rows.len() as u64, passed };
        match schema::write_span_problem(layout, chunk_interval, low, high, reach) {
            Some(problem) => Err(StoreError::invalid(problem)),
            None => Ok(()),
        }
    }

    /// The partitions known to exist (period starts), listed from the server once.
    async fn known_partitions(&self) -> Result<std::collections::HashSet<i64>> {
        if let Some(known) = self.partitions_snapshot() {
            return Ok(known);
        }
        let names = self.list_partitions().await?;
        let known: std::collections::HashSet<i64> =
            names.iter().filter_map(|name| schema::partition_start(name)).collect();
        *self.inner.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(known.clone());
        Ok(known)
    }

    /// Creates the partitions this batch needs that are not known to exist,
    /// [`schema::PARTITIONS_PER_TRANSACTION`] per transaction so that no
    /// transaction holds many locks (each is idempotent DDL, committed before
    /// the write's own transaction).
    async fn ensure_partitions(&self, interval: PartitionInterval, batch: &BarBatch) -> Result<()> {
        let mut needed = BTreeSet::new();
        let mut current: Option<(i64, i64)> = None;
        for &t in batch.columns().timestamp.values().iter() {
            if current.is_some_and(|(start, end)| start <= t && t < end) {
                continue;
            }
            let start = schema::period_start(interval, t);
            needed.insert(start);
            current = Some((start, schema::period_end(interval, start)));
        }
        let known = self.known_partitions().await?;
        let missing: Vec<i64> = needed.into_iter().filter(|start| !known.contains(start)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let schema_name = self.inner.config.schema.clone();
        let lock = schema::partition_lock_key(&schema_name);
        for group in missing.chunks(schema::PARTITIONS_PER_TRANSACTION) {
            let statements: Vec<String> =
                group.iter().map(|&start| schema::create_partition_sql(&schema_name, interval, start)).collect();
            transact!(self.inner, "creating partitions", Idempotency::Idempotent, |c| {
                // Serialise partition DDL across processes; IF NOT EXISTS makes it idempotent.
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock).persistent(false).execute(&mut *c).await?;
                for statement in &statements {
                    (&mut *c).execute(sqlx::raw_sql(statement)).await?;
                }
                Ok(())
            })?;
            tracing::debug!(created = group.len(), "created bar partitions");
            let mut guard = self.inner.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.get_or_insert_with(Default::default).extend(group.iter().copied());
        }
        Ok(())
    }

    fn partitions_snapshot(&self) -> Option<std::collections::HashSet<i64>> {
        self.inner.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    async fn list_partitions(&self) -> Result<Vec<String>> {
        let schema_name = self.inner.config.schema.clone();
        transact!(self.inner, "listing partitions", Idempotency::Idempotent, |c| {
            let names: Vec<String> = sqlx::query_scalar(schema::LIST_PARTITIONS)
                .bind(&schema_name)
                .persistent(false)
                .fetch_all(&mut *c)
                .await?;
            Ok(names)
        })
    }

    /// Streams one query through binary COPY; retries a transient failure
    /// only while nothing has been delivered yet.
    async fn stream_query(&self, query: &BarQuery, sender: &mpsc::Sender<Result<BarBatch>>) -> Result<()> {
        self.stream_copy(&schema::query_copy_sql(&self.inner.config.schema, query), sender).await
    }

    /// Streams `sql` (a `COPY (SELECT ...) TO STDOUT (FORMAT binary)` of the
    /// nine bar columns in canonical order and types); retries a transient
    /// failure only while nothing has been delivered yet.
    pub(crate) async fn stream_copy(&self, sql: &str, sender: &mpsc::Sender<Result<BarBatch>>) -> Result<()> {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut delivered = false;
            // The server ends the COPY within statement_timeout: a stream that
            // outlives that (and the connect timeout, and a margin) is stalled.
            let deadline = self.inner.attempt_deadline(1);
            let outcome = tokio::time::timeout(deadline, self.stream_once(sql, sender, &mut delivered))
                .await
                .unwrap_or_else(|_| Err(crate::store::stalled_error(deadline)));
            match outcome {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let transient = transience_of(&error) == Transience::Always;
                    let delay = self.inner.config.backoff().next_delay(attempt, started.elapsed());
                    let Some(delay) = delay.filter(|_| transient && !delivered) else {
                        return Err(classify(error, "reading bars"));
                    };
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn stream_once(
        &self,
        sql: &str,
        sender: &mpsc::Sender<Result<BarBatch>>,
        delivered: &mut bool,
    ) -> std::result::Result<(), sqlx::Error> {
        // An attempt whose COPY is abandoned half-read (the consumer went away,
        // the future was dropped, a decode error) closes its connection
        // instead of returning it to the pool out of step with the server.
        let mut transaction = self.inner.begin_attempt().await?;
        let mut consumer_gone = false;
        {
            let mut decoder = CopyDecoder::new(self.inner.config.batch_rows);
            let mut ready = Vec::new();
            {
                let mut chunks = transaction.connection().copy_out_raw(sql).await?;
                'read: while let Some(chunk) = chunks.next().await {
                    let chunk = chunk?;
                    if let Err(error) = decoder.feed(&chunk, &mut ready) {
                        return Err(sqlx::Error::Decode(Box::new(error)));
                    }
                    for batch in ready.drain(..) {
                        if sender.send(Ok(batch)).await.is_err() {
                            consumer_gone = true;
                            break 'read;
                        }
                        *delivered = true;
                    }
                }
            }
            if !consumer_gone {
                match decoder.finish() {
                    Ok(Some(last)) => {
                        if sender.send(Ok(last)).await.is_ok() {
                            *delivered = true;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => return Err(sqlx::Error::Decode(Box::new(error))),
                }
                transaction.commit().await?;
            }
        }
        Ok(())
    }
}

fn transience_of(error: &sqlx::Error) -> Transience {
    crate::error::transience(error)
}

/// The write transaction's body.
///
/// Fast path: when no stored row of the batch's symbols falls inside its
/// time span (a fresh load, the common case), the rows are COPYed straight
/// into `ohlcv_bars` under a savepoint. If a concurrent writer inserted an
/// overlapping key meanwhile, the COPY fails on the primary key, the
/// savepoint is rolled back and the general path runs.
///
/// General path: a `TEMP ... ON COMMIT DROP` staging table (nothing survives
/// into a pooled server connection), binary COPY into it, one upsert. Rows
/// whose values are unchanged are not rewritten (`WHERE ... IS DISTINCT
/// FROM`), so replaying a batch costs index probes, not new row versions.
/// (SQL equality treats `-0.0` and `0.0` as equal; validation admits both
/// and the digest encodes them alike, so that replay keeps the stored zero.)
async fn copy_and_upsert(
    connection: &mut PgConnection,
    schema_name: &str,
    batch: &BarBatch,
    chunk_rows: usize,
) -> std::result::Result<(), Failure> {
    let columns = batch.columns();
    let mut symbols: Vec<String> = Vec::new();
    for row in 0..batch.len() {
        let symbol = columns.symbol.value(row);
        if symbols.last().is_none_or(|last| last != symbol) && !symbols.iter().any(|s| s == symbol) {
            symbols.push(symbol.to_string());
        }
    }
    let stamps = columns.timestamp.values();
    let (low, high) = stamps.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    let (Some(low), Some(high)) = (Timestamp(low).to_datetime(), Timestamp(high).to_datetime()) else {
        return Err(StoreError::invalid("a timestamp is out of range").into());
    };
    let overlap: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {schema_name}.ohlcv_bars WHERE symbol = ANY($1) AND ts >= $2 AND ts <= $3)"
    ))
    .bind(&symbols)
    .bind(low)
    .bind(high)
    .persistent(false)
    .fetch_one(&mut *connection)
    .await?;
    if !overlap {
        (&mut *connection).execute(sqlx::raw_sql("SAVEPOINT strata_direct")).await?;
        let direct = format!(
            "COPY {schema_name}.ohlcv_bars (symbol, ts, open, high, low, close, volume, vwap, trade_count) \
             FROM STDIN (FORMAT binary)"
        );
        match copy_rows(connection, &direct, batch, chunk_rows).await {
            Ok(()) => return Ok(()),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
                (&mut *connection).execute(sqlx::raw_sql("ROLLBACK TO SAVEPOINT strata_direct")).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    (&mut *connection)
        .execute(sqlx::raw_sql(&format!(
            "CREATE TEMP TABLE strata_stage (LIKE {schema_name}.ohlcv_bars INCLUDING DEFAULTS) ON COMMIT DROP"
        )))
        .await?;
    copy_rows(
        connection,
        "COPY strata_stage (symbol, ts, open, high, low, close, volume, vwap, trade_count) FROM STDIN (FORMAT binary)",
        batch,
        chunk_rows,
    )
    .await?;
    (&mut *connection)
        .execute(sqlx::raw_sql(&format!(
            "INSERT INTO {schema_name}.ohlcv_bars AS b (symbol, ts, open, high, low, close, volume, vwap, trade_count)
             SELECT symbol, ts, open, high, low, close, volume, vwap, trade_count FROM strata_stage
             ON CONFLICT (symbol, ts) DO UPDATE SET
                 open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                 volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, trade_count = EXCLUDED.trade_count
             WHERE (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
                   IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
                                     EXCLUDED.volume, EXCLUDED.vwap, EXCLUDED.trade_count)"
        )))
        .await?;
    Ok(())
}

/// Sends `batch` through `COPY ... FROM STDIN (FORMAT binary)` in chunks of `chunk_rows`.
async fn copy_rows(
    connection: &mut PgConnection,
    statement: &str,
    batch: &BarBatch,
    chunk_rows: usize,
) -> std::result::Result<(), sqlx::Error> {
    let mut copy = connection.copy_in_raw(statement).await?;
    let mut buffer = header();
    let mut from = 0;
    while from < batch.len() {
        let to = (from + chunk_rows).min(batch.len());
        encode_rows(batch, from, to, &mut buffer);
        copy.send(buffer.as_slice()).await?;
        buffer.clear();
        from = to;
    }
    copy.send(trailer().as_slice()).await?;
    copy.finish().await?;
    Ok(())
}
