//! `MarketDataStore` over DuckDB: Arrow-appender bulk upserts in one
//! transaction (straight into the table when no stored key can collide),
//! streamed Arrow queries, and the digest computed in SQL.

use chrono::NaiveDate;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, params_from_iter};
use futures::StreamExt;
use futures::stream::BoxStream;
use strata_core::{
    BarBatch, BarQuery, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary, Result, StoreError,
    Symbol, SymbolSummary, TimeRange, Timestamp, WriteReport,
};
use tokio::sync::mpsc;

use crate::error::{self, BACKEND, ResultExt};
use crate::schema::{self, BoundSql};
use crate::store::{Database, DuckDbStore};

/// Rows per batch a query yields (DuckDB produces 2048-row chunks; a few are
/// joined so consumers see fewer, still bounded, batches).
pub(crate) const QUERY_BATCH_ROWS: usize = 8192;

/// Batches buffered between the blocking reader and the consumer.
pub(crate) const QUERY_CHANNEL_DEPTH: usize = 2;

#[async_trait::async_trait]
impl MarketDataStore for DuckDbStore {
    fn capabilities(&self) -> strata_core::Capabilities {
        crate::store::CAPABILITIES
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(WriteReport::committed(0));
        }
        let rows = batch.len() as u64;
        self.with_writer("writing bars", move |connection| write_batch(connection, batch)).await?;
        Ok(WriteReport::committed(rows))
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        if query.is_trivially_empty() {
            return futures::stream::empty().boxed();
        }
        let db = std::sync::Arc::clone(&self.db);
        // The reader starts on the first poll, so building the stream needs no runtime.
        strata_store_kit::lazy_blocking_producer(QUERY_CHANNEL_DEPTH, BACKEND, move |sender| {
            stream_query(&db, &query, sender)
        })
    }

    async fn summary(&self) -> Result<MarketSummary> {
        self.with_reader("summarising bars", |connection| {
            let mut statement = connection.prepare(schema::SUMMARY).during("summarising bars")?;
            let rows = statement
                .query_map([], |row| {
                    Ok(SymbolSummary {
                        symbol: row.get(0)?,
                        first: Timestamp(row.get(1)?),
                        last: Timestamp(row.get(2)?),
                        rows: row.get(3)?,
                    })
                })
                .during("summarising bars")?;
            let symbols = rows.collect::<duckdb::Result<Vec<_>>>().during("summarising bars")?;
            Ok(MarketSummary { symbols })
        })
        .await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        if matches!((query.start, query.end), (Some(start), Some(end)) if start >= end) {
            return Ok(Vec::new());
        }
        self.with_reader("computing digests", move |connection| digest(connection, &schema::digest_query(&query))).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        if range.start >= range.end {
            return Ok(0);
        }
        let symbol = symbol.as_str().to_string();
        let (start, end) = (schema::bound(range.start), schema::bound(range.end));
        self.with_writer("deleting bars", move |connection| {
            let deleted = connection
                .execute(schema::DELETE_RANGE, duckdb::params![symbol, start, end])
                .during("deleting bars")?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn health(&self) -> Result<HealthReport> {
        self.health_report().await
    }
}

/// Upserts one validated batch in one transaction. DuckDB's WAL makes the
/// commit all or nothing, also when the process dies half-way.
///
/// When the table holds no row of the batch's symbols inside the batch's time
/// span (a fresh load, or newer bars appended), no stored key can collide:
/// the Arrow appender writes straight into `ohlcv_bars`. Otherwise the rows go
/// through the staging table: the staged keys are deleted from `ohlcv_bars`
/// and the staged rows inserted (see `schema` for why there is no primary
/// key), and staging is cleared.
fn write_batch(connection: &mut Connection, batch: BarBatch) -> Result<()> {
    let (symbols, first, last) = key_span(&batch);
    let transaction = connection.transaction().during("starting the write transaction")?;
    let stored: i64 = transaction
        .prepare_cached(schema::COUNT_IN_SPAN)
        .and_then(|mut statement| {
            statement.query_row(duckdb::params![duckdb::types::Value::List(symbols), first, last], |row| row.get(0))
        })
        .during("looking for stored bars the batch replaces")?;
    let batch = batch.into_record_batch();
    if stored == 0 {
        let mut appender = transaction.appender(schema::BARS_TABLE).during("opening the appender")?;
        appender.append_record_batch(batch).during("appending the batch")?;
        appender.flush().during("flushing the appender")?;
    } else {
        {
            let mut appender = transaction
                .appender_to_catalog_and_db(schema::STAGING_TABLE, "temp", "main")
                .during("opening the staging appender")?;
            appender.append_record_batch(batch).during("appending the batch to staging")?;
            appender.flush().during("flushing the staging appender")?;
        }
        transaction.execute(schema::DELETE_STAGED_KEYS, []).during("replacing stored bars with staged keys")?;
        transaction.execute(schema::INSERT_STAGED, []).during("inserting staged bars")?;
        transaction.execute(schema::CLEAR_STAGING, []).during("clearing staged bars")?;
    }
    transaction.commit().during("committing bars")
}

/// The batch's distinct symbols and its first and last timestamp (microseconds).
fn key_span(batch: &BarBatch) -> (Vec<duckdb::types::Value>, i64, i64) {
    let columns = batch.columns();
    let mut symbols: Vec<&str> = Vec::new();
    for symbol in columns.symbol.iter().flatten() {
        // Batches come grouped by symbol, so a repeat is nearly always the last one seen.
        if symbols.last() != Some(&symbol) && !symbols.contains(&symbol) {
            symbols.push(symbol);
        }
    }
    let times = columns.timestamp.values();
    let first = times.iter().copied().min().unwrap_or(0);
    let last = times.iter().copied().max().unwrap_or(0);
    let symbols = symbols.into_iter().map(|symbol| duckdb::types::Value::Text(symbol.to_string())).collect();
    (symbols, schema::bound(Timestamp(first)), schema::bound(Timestamp(last)))
}

/// Runs a bar query on a read connection and sends bounded batches until the
/// result ends, an error occurs (returned to the caller to send) or the
/// consumer goes away.
///
/// A query of several symbols (or all) runs as one query per symbol, in
/// symbol order: DuckDB then sorts one symbol's bars at a time, so memory is
/// bounded by the largest symbol in the window instead of the whole result
/// (`ORDER BY symbol, ts` over 10M bars held 1.3 GiB).
fn stream_query(
    db: &std::sync::Arc<Database>,
    query: &BarQuery,
    sender: &mpsc::Sender<Result<BarBatch>>,
) -> Result<()> {
    let connection = Database::reader(db)?;
    let mut batches = Batches { pending: Vec::new(), rows: 0, sender };
    if query.symbols.len() == 1 {
        stream_one(&connection, query, &mut batches)?;
        return batches.finish();
    }
    let symbols = if query.symbols.is_empty() {
        let BoundSql { sql, params } = schema::symbols_query(query.start, query.end);
        let mut statement = connection.prepare_cached(&sql).during("listing the symbols of the bar query")?;
        let names = statement
            .query_map(params_from_iter(params.iter()), |row| row.get::<_, String>(0))
            .during("listing the symbols of the bar query")?
            .collect::<duckdb::Result<Vec<_>>>()
            .during("listing the symbols of the bar query")?;
        names.into_iter().map(Symbol::new).collect::<Result<Vec<_>>>()?
    } else {
        let mut symbols = query.symbols.clone();
        symbols.sort();
        symbols.dedup();
        symbols
    };
    for symbol in symbols {
        let one = BarQuery { symbols: vec![symbol], ..query.clone() };
        if !stream_one(&connection, &one, &mut batches)? {
            return Ok(());
        }
    }
    batches.finish()
}

/// Result chunks gathered into batches of about [`QUERY_BATCH_ROWS`] and sent.
struct Batches<'a> {
    pending: Vec<RecordBatch>,
    rows: usize,
    sender: &'a mpsc::Sender<Result<BarBatch>>,
}

impl Batches<'_> {
    /// Adds a chunk; sends a batch when enough rows are pending. `false`: the consumer went away.
    fn push(&mut self, chunk: RecordBatch) -> Result<bool> {
        if chunk.num_rows() == 0 {
            return Ok(true);
        }
        self.rows += chunk.num_rows();
        self.pending.push(chunk);
        if self.rows < QUERY_BATCH_ROWS {
            return Ok(true);
        }
        let batch = join(std::mem::take(&mut self.pending))?;
        self.rows = 0;
        Ok(self.sender.blocking_send(Ok(batch)).is_ok())
    }

    /// Sends what is left.
    fn finish(self) -> Result<()> {
        if !self.pending.is_empty() {
            let _ = self.sender.blocking_send(Ok(join(self.pending)?));
        }
        Ok(())
    }
}

/// Below this many bars of the symbol in range, the latest N are read by the plain query.
const LATEST_SHORTCUT_ABOVE: u64 = 4_096;

/// The latest `limit` bars of one symbol (descending order with a limit), read
/// from a time range just wide enough: `None` when the plain query is as good.
///
/// DuckDB answers `ORDER BY ts DESC LIMIT n` with a top-N heap, and bars are
/// stored oldest first, so every bar of the symbol in a row group the scan
/// cannot skip enters the heap as a new maximum: the latest 100 of a 100k-bar
/// symbol took 7 ms when the symbol filled a row group, 2.8 ms when it
/// straddled two (measured in duckdb-python on a file `strata ingest` wrote).
/// So the symbol's count and span in range are read first (one pass over two
/// columns), the span of about `2 x limit` bars at its mean spacing is
/// queried, and that answer is kept when it holds `limit` bars: then no bar
/// before that span can be among the latest `limit`. Otherwise (irregular
/// bars) the plain query runs.
fn latest_bars(connection: &Connection, query: &BarQuery) -> Result<Option<Vec<RecordBatch>>> {
    let (Some(limit), strata_core::Order::Descending, [_]) = (query.limit, query.order, query.symbols.as_slice())
    else {
        return Ok(None);
    };
    let BoundSql { sql, params } = schema::span_query(&query.symbols, query.start, query.end);
    let mut statement = connection.prepare_cached(&sql).during("measuring the symbol's span")?;
    let (count, first, last): (u64, Option<i64>, Option<i64>) = statement
        .query_row(params_from_iter(params.iter()), |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .during("measuring the symbol's span")?;
    let (Some(first), Some(last)) = (first, last) else { return Ok(None) };
    let wanted = u64::try_from(limit).unwrap_or(u64::MAX);
    if limit == 0 || count <= LATEST_SHORTCUT_ABOVE || count <= wanted.saturating_mul(4) {
        return Ok(None);
    }
    let spacing = (last - first) / i64::try_from(count - 1).unwrap_or(i64::MAX);
    let reach = spacing.saturating_mul(i64::try_from(wanted.saturating_mul(2)).unwrap_or(i64::MAX));
    let from = Timestamp(last.saturating_sub(reach).max(first));
    let narrowed = BarQuery { start: Some(query.start.map_or(from, |start| start.max(from))), ..query.clone() };
    let BoundSql { sql, params } = schema::bar_query(&narrowed);
    let mut statement = connection.prepare_cached(&sql).during("preparing the bar query")?;
    let chunks: Vec<RecordBatch> =
        statement.query_arrow(params_from_iter(params.iter())).during("running the bar query")?.collect();
    let rows: usize = chunks.iter().map(RecordBatch::num_rows).sum();
    Ok((rows == limit).then_some(chunks))
}

/// Runs the bar query of `query` and hands its chunks to `batches`; `false`: the consumer went away.
fn stream_one(connection: &Connection, query: &BarQuery, batches: &mut Batches<'_>) -> Result<bool> {
    if let Some(chunks) = latest_bars(connection, query)? {
        for chunk in chunks {
            if !batches.push(chunk)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    let BoundSql { sql, params } = schema::bar_query(query);
    // Read connections are pooled, so a query shape planned once is reused by later queries.
    let mut statement = connection.prepare_cached(&sql).during("preparing the bar query")?;
    let chunks = statement.stream_arrow(params_from_iter(params.iter())).during("running the bar query")?;
    for chunk in chunks {
        if !batches.push(chunk.during("reading bars")?)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Joins DuckDB chunks into one canonical `BarBatch`.
pub(crate) fn join(chunks: Vec<RecordBatch>) -> Result<BarBatch> {
    let batch = match <[RecordBatch; 1]>::try_from(chunks) {
        Ok([single]) => single,
        Err(chunks) => {
            let schema = chunks[0].schema();
            duckdb::arrow::compute::concat_batches(&schema, &chunks)
                .map_err(|error| error::internal("joining result chunks", error))?
        }
    };
    BarBatch::try_new(batch).map_err(|error| {
        StoreError::internal(BACKEND, format!("DuckDB returned bars outside the canonical schema: {error}"))
    })
}

/// Runs the digest SQL and reads its rows.
pub(crate) fn digest(connection: &Connection, query: &BoundSql) -> Result<Vec<DayDigest>> {
    let mut statement = connection.prepare(&query.sql).during("preparing the digest query")?;
    let rows = statement
        .query_map(params_from_iter(query.params.iter()), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, u64>(2)?, row.get::<_, u64>(3)?))
        })
        .during("computing digests")?;
    let mut digests = Vec::new();
    for row in rows {
        let (symbol, day_number, rows, hash) = row.during("computing digests")?;
        let day = day_from_number(day_number)
            .ok_or_else(|| StoreError::internal(BACKEND, format!("digest day number {day_number} is not a date")))?;
        digests.push(DayDigest { symbol, day, rows, hash });
    }
    Ok(digests)
}

/// The date `days` days after 1970-01-01.
fn day_from_number(days: i64) -> Option<NaiveDate> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    epoch.checked_add_signed(chrono::Duration::try_days(days)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use strata_core::digest::{digest_bars, float_bits};
    use strata_core::synthetic::SyntheticSpec;
    use strata_core::{Bar, MarketDataStoreExt, Order};

    use super::*;
    use crate::DuckDbConfig;

    fn bar(symbol: &str, micros: i64, close: f64) -> Bar {
        Bar {
            symbol: symbol.into(),
            timestamp: Timestamp(micros),
            open: 10.0,
            high: close.max(12.0),
            low: close.min(9.0),
            close,
            volume: 1000.0,
            vwap: None,
            trade_count: None,
        }
    }

    /// Values whose bit patterns the SQL must reproduce.
    fn awkward_floats() -> Vec<f64> {
        let mut values = vec![
            0.0,
            -0.0,
            0.1,
            0.08388999999999999,
            1229.22998,
            11_456_230_000.0,
            2012.25343589,
            0.0672,
            1e-300,
            1e300,
            f64::MIN_POSITIVE,
            f64::MAX,
            1.0,
        ];
        for exponent in -1022..=1023 {
            let power = 2f64.powi(exponent);
            values.push(power);
            values.push(f64::from_bits(power.to_bits() + 1));
            values.push(f64::from_bits(power.to_bits() - 1));
        }
        let mut rng = strata_core::synthetic::SplitMix64(7);
        while values.len() < 10_000 {
            // Random positive normal numbers: exponent field 1..=2046, any mantissa.
            let bits = rng.next() & 0x7fff_ffff_ffff_ffff;
            let candidate = f64::from_bits(bits);
            if candidate.is_normal() {
                values.push(candidate);
            }
        }
        values.retain(|value| *value == 0.0 || value.is_normal());
        values
    }

    #[tokio::test]
    async fn float_bits_in_sql_match_the_reference() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let values = awkward_floats();
        let expected: Vec<i64> = values.iter().map(|value| float_bits(*value)).collect();
        let stages = schema::float_bits_stages("x");
        let sql = format!(
            "WITH exponents AS (SELECT *, {} FROM float_input),
                  mantissas AS (SELECT *, {} FROM exponents)
             SELECT x, {} FROM mantissas ORDER BY position",
            stages.exponent, stages.mantissa, stages.bits
        );
        let input = values.clone();
        let actual = store
            .with_writer("test", move |connection| {
                connection
                    .execute_batch("CREATE TEMP TABLE float_input (position INTEGER, x DOUBLE)")
                    .during("create")?;
                {
                    let mut appender =
                        connection.appender_to_catalog_and_db("float_input", "temp", "main").during("appender")?;
                    for (position, value) in input.iter().enumerate() {
                        appender.append_row((position as i32, *value)).during("append")?;
                    }
                    appender.flush().during("flush")?;
                }
                let mut statement = connection.prepare(&sql).during("prepare")?;
                let rows = statement
                    .query_map([], |row| Ok((row.get::<_, f64>(0)?, row.get::<_, i64>(1)?)))
                    .during("query")?;
                rows.collect::<duckdb::Result<Vec<_>>>().during("rows")
            })
            .await
            .unwrap();
        assert_eq!(actual.len(), values.len());
        for ((value, want), (echo, got)) in values.iter().zip(&expected).zip(&actual) {
            assert_eq!(value.to_bits(), echo.to_bits(), "DuckDB changed the input {value:e}");
            assert_eq!(*want, *got, "bits of {value:e}: expected {want:#x}, got {got:#x}");
        }
    }

    #[tokio::test]
    async fn digests_match_the_reference_including_days_before_1970() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let mut spec = SyntheticSpec::minutes(3, 3000, 11);
        spec.interval_micros = 17 * 60_000_000;
        let mut bars = spec.bars();
        let day = Timestamp::MICROS_PER_DAY;
        bars.extend([
            Bar { vwap: Some(10.5), trade_count: Some(0), ..bar("^GSPC", -day - 1, 11.0) },
            bar("^GSPC", -day, 11.0),
            Bar { volume: 0.0, ..bar("^GSPC", -1, 9.5) },
            Bar { volume: -0.0, vwap: Some(9.0), ..bar("^GSPC", 0, 11_456_230_000.0) },
            Bar {
                open: 1229.22998,
                high: 1248.810059,
                low: 1219.099976,
                ..bar("^GSPC", 915_408_000_000_000, 1228.099976)
            },
        ]);
        for chunk in bars.chunks(2500) {
            store.write_bars(BarBatch::from_bars(chunk)).await.unwrap();
        }
        let digests = store.digest(DigestQuery::default()).await.unwrap();
        assert_eq!(digests, digest_bars(&bars));
        let one = Symbol::new("SYN001").unwrap();
        let start = spec.start.plus_micros(day);
        let end = spec.start.plus_micros(3 * day);
        let partial =
            store.digest(DigestQuery { symbols: vec![one.clone()], start: Some(start), end: Some(end) }).await;
        let expected: Vec<&Bar> =
            bars.iter().filter(|b| b.symbol == "SYN001" && b.timestamp >= start && b.timestamp < end).collect();
        assert_eq!(partial.unwrap(), digest_bars(expected));
    }

    #[tokio::test]
    async fn writes_round_trip_bit_exactly_and_upsert() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let first = vec![
            Bar { vwap: Some(10.25), trade_count: Some(42), ..bar("B", 2, 11.0) },
            Bar { volume: -0.0, ..bar("B", 1, 0.08388999999999999) },
            bar("A", 5, 11.0),
        ];
        store.write_bars(BarBatch::from_bars(&first)).await.unwrap();
        store.write_bars(BarBatch::from_bars(&first)).await.unwrap();
        let replaced = Bar { close: 11.5, ..bar("B", 1, 11.0) };
        let report = store.write_bars(BarBatch::from_bars(std::slice::from_ref(&replaced))).await.unwrap();
        assert_eq!(report.rows, 1);
        let stored = store.collect_bars(BarQuery::default()).await.unwrap();
        assert_eq!(stored, vec![first[2].clone(), replaced, first[0].clone()]);
        let volume_bits: Vec<u64> = stored.iter().map(|b| b.volume.to_bits()).collect();
        assert_eq!(volume_bits, vec![1000f64.to_bits(); 3]);
        let empty = store.write_bars(BarBatch::empty()).await.unwrap();
        assert_eq!(empty.rows, 0);
    }

    #[tokio::test]
    async fn negative_zero_volume_survives() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        store.write_bars(BarBatch::from_bars(&[Bar { volume: -0.0, ..bar("Z", 1, 11.0) }])).await.unwrap();
        let stored = store.collect_bars(BarQuery::default()).await.unwrap();
        assert_eq!(stored[0].volume.to_bits(), (-0.0f64).to_bits());
    }

    #[tokio::test]
    async fn an_invalid_batch_writes_nothing() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let bars = vec![bar("A", 1, 11.0), Bar { low: 100.0, ..bar("A", 2, 11.0) }, bar("A", 3, 11.0)];
        let error = store.write_bars(BarBatch::from_bars(&bars)).await.unwrap_err();
        assert_eq!(error.validation_report().unwrap().bad_rows(), vec![1]);
        assert_eq!(store.summary().await.unwrap().total_rows(), 0);
    }

    #[tokio::test]
    async fn queries_follow_the_contract() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let bars: Vec<Bar> =
            ["C", "A", "B"].iter().flat_map(|s| (0..20).map(move |i| bar(s, i * 10, 10.0 + i as f64))).collect();
        store.write_bars(BarBatch::from_bars(&bars)).await.unwrap();
        let symbol = |s: &str| Symbol::new(s).unwrap();
        let query = BarQuery {
            symbols: vec![symbol("C"), symbol("A")],
            start: Some(Timestamp(30)),
            end: Some(Timestamp(150)),
            limit: Some(4),
            order: Order::Descending,
        };
        let got: Vec<(String, i64)> =
            store.collect_bars(query).await.unwrap().into_iter().map(|b| (b.symbol, b.timestamp.micros())).collect();
        let want: Vec<(String, i64)> =
            ["A", "C"].iter().flat_map(|s| [140, 130, 120, 110].map(|t| (s.to_string(), t))).collect();
        assert_eq!(got, want);
        let latest = store.collect_bars(BarQuery::latest(symbol("B"), 2)).await.unwrap();
        assert_eq!(latest.iter().map(|b| b.timestamp.micros()).collect::<Vec<_>>(), vec![190, 180]);
        let all = store.collect_bars(BarQuery::default()).await.unwrap();
        assert_eq!(all.len(), 60);
        assert!(all.windows(2).all(|w| (&w[0].symbol, w[0].timestamp) < (&w[1].symbol, w[1].timestamp)));
        let none = store.collect_bars(BarQuery::symbol(symbol("ZZZ"))).await.unwrap();
        assert!(none.is_empty());
        let reversed = store.collect_bars(BarQuery::default().between(Timestamp(50), Timestamp(50))).await.unwrap();
        assert!(reversed.is_empty());
    }

    /// The latest-N shortcut ([`latest_bars`]) gives what the plain query gives: on regular
    /// bars, on bars whose recent spacing is wider than their mean (the narrowed span holds
    /// too few and the plain query runs), within a range, and for every limit.
    #[tokio::test]
    async fn the_latest_bars_are_the_same_with_and_without_the_shortcut() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let minute = 60_000_000;
        // R: regular minutes; S: dense minutes, then a sparse recent tail (a bar a day).
        let mut bars: Vec<Bar> = (0..20_000).map(|i| bar("R", i * minute, 10.0 + (i % 7) as f64)).collect();
        bars.extend((0..20_000).map(|i| bar("S", i * minute, 20.0)));
        bars.extend((1..=300).map(|i| bar("S", 20_000 * minute + i * 1440 * minute, 30.0 + i as f64)));
        store.write_bars(BarBatch::from_bars(&bars)).await.unwrap();
        for symbol in ["R", "S"] {
            let mut stored: Vec<i64> =
                bars.iter().filter(|b| b.symbol == symbol).map(|b| b.timestamp.micros()).collect();
            stored.sort_unstable_by(|a, b| b.cmp(a));
            for limit in [1, 100, 250, 1_000, 5_000, 30_000] {
                let latest = BarQuery::latest(Symbol::new(symbol).unwrap(), limit);
                let got: Vec<i64> =
                    store.collect_bars(latest).await.unwrap().iter().map(|b| b.timestamp.micros()).collect();
                let want: Vec<i64> = stored.iter().copied().take(limit).collect();
                assert_eq!(got, want, "{symbol}: the latest {limit}");
            }
            let end = Timestamp(15_000 * minute);
            let bounded = BarQuery { end: Some(end), ..BarQuery::latest(Symbol::new(symbol).unwrap(), 100) };
            let got: Vec<i64> =
                store.collect_bars(bounded).await.unwrap().iter().map(|b| b.timestamp.micros()).collect();
            let want: Vec<i64> = stored.iter().copied().filter(|t| *t < end.micros()).take(100).collect();
            assert_eq!(got, want, "{symbol}: the latest 100 before {end}");
        }
    }

    #[tokio::test]
    async fn large_results_stream_in_bounded_batches() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let spec = SyntheticSpec::minutes(2, 20_000, 5);
        for batch in spec.batches(10_000) {
            store.write_bars(batch).await.unwrap();
        }
        let batches = store.collect_batches(BarQuery::default()).await.unwrap();
        assert!(batches.len() > 1);
        assert!(batches.iter().all(|b| b.len() <= QUERY_BATCH_ROWS + 2048));
        let rows: Vec<Bar> = batches.iter().flat_map(BarBatch::to_bars).collect();
        assert_eq!(rows, spec.bars());
    }

    #[tokio::test]
    async fn delete_summary_and_health() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let bars: Vec<Bar> = (0..10).map(|i| bar("A", i, 11.0)).chain([bar("B", 3, 11.0)]).collect();
        store.write_bars(BarBatch::from_bars(&bars)).await.unwrap();
        let a = Symbol::new("A").unwrap();
        assert_eq!(store.delete_bars(&a, TimeRange::new(Timestamp(2), Timestamp(5)).unwrap()).await.unwrap(), 3);
        let summary = store.summary().await.unwrap();
        assert_eq!(
            summary.symbols,
            vec![
                SymbolSummary { symbol: "A".into(), first: Timestamp(0), last: Timestamp(9), rows: 7 },
                SymbolSummary { symbol: "B".into(), first: Timestamp(3), last: Timestamp(3), rows: 1 },
            ]
        );
        assert_eq!(store.delete_bars(&a, TimeRange::all()).await.unwrap(), 7);
        let health = store.health().await.unwrap();
        assert!(health.ok());
        let detail = |key: &str| health.details.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(detail("bars").as_deref(), Some("1"));
        assert!(detail("duckdb_version").is_some());
        assert_eq!(detail("path"), Some(store.path().display().to_string()));
        assert!(detail("file_bytes").is_some());
    }

    #[tokio::test]
    async fn concurrent_writers_and_readers() {
        let (_directory, store) = crate::store::open_in_temp_dir().await;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for writer in 0..4u64 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let spec =
                    SyntheticSpec { symbols: vec![format!("W{writer}")], ..SyntheticSpec::minutes(1, 3000, writer) };
                for batch in spec.batches(500) {
                    store.write_bars(batch).await.unwrap();
                    store.collect_bars(BarQuery::latest(Symbol::new(format!("W{writer}")).unwrap(), 3)).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.summary().await.unwrap().total_rows(), 12_000);
    }

    /// Environment variable that turns [`crash_writer_child`] into the child of
    /// [`a_killed_writer_leaves_whole_batches`].
    const CRASH_CHILD: &str = "STRATA_DUCKDB_TEST_CRASH_CHILD";
    /// Rows per batch of the crash test.
    const CRASH_BATCH_ROWS: usize = 20_000;

    fn crash_batch(number: usize) -> BarBatch {
        let spec = SyntheticSpec {
            symbols: vec![format!("K{:03}", number % 7)],
            // Batches of one symbol follow each other without overlapping.
            start: Timestamp(1_577_836_800_000_000 + ((number / 7) * CRASH_BATCH_ROWS) as i64 * 60_000_000),
            ..SyntheticSpec::minutes(1, CRASH_BATCH_ROWS, number as u64)
        };
        spec.batches(CRASH_BATCH_ROWS).next().expect("one batch")
    }

    /// Not a test on its own: when [`CRASH_CHILD`] names a file, writes large
    /// batches to it until killed, announcing each commit on stdout.
    #[tokio::test]
    async fn crash_writer_child() {
        let Ok(path) = std::env::var(CRASH_CHILD) else { return };
        let store = DuckDbStore::open(DuckDbConfig::new(path)).await.unwrap();
        // Bounded, in case the parent died without killing this child.
        for number in 0..2000 {
            store.write_bars(crash_batch(number)).await.unwrap();
            println!("committed {number}");
        }
    }

    #[tokio::test]
    async fn a_killed_writer_leaves_whole_batches() {
        // Kill points spread over a batch's write: appending, upserting, committing.
        for fraction in [0.2, 0.5, 0.8, 0.95] {
            kill_a_writer_mid_batch(fraction).await;
        }
    }

    /// Lets a child process commit a few batches, measures how long one takes,
    /// kills it with SIGKILL `fraction` of the way into the next one, and
    /// checks that the reopened file holds whole batches with the right digest.
    async fn kill_a_writer_mid_batch(fraction: f64) {
        use std::io::BufRead;
        use std::time::Instant;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("crash.duckdb");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "market::tests::crash_writer_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD, &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut committed = 0;
        let mut commit_times = Vec::new();
        while committed < 4 {
            let line = lines.next().expect("the child died early").unwrap();
            // The test harness prints the test's name on the same line as the first one.
            if line.contains("committed ") {
                committed += 1;
                commit_times.push(Instant::now());
            }
        }
        let per_batch = commit_times[3].duration_since(commit_times[2]);
        std::thread::sleep(per_batch.mul_f64(fraction));
        child.kill().unwrap();
        child.wait().unwrap();

        let store = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
        let summary = store.summary().await.unwrap();
        let rows = summary.total_rows() as usize;
        assert!(rows >= 4 * CRASH_BATCH_ROWS, "{rows} rows");
        assert_eq!(rows % CRASH_BATCH_ROWS, 0, "{rows} rows is not a whole number of batches");
        let batches = rows / CRASH_BATCH_ROWS;
        eprintln!(
            "killed the writer {:?} into batch 5 (one takes {per_batch:?}); the reopened file holds {batches} whole batches",
            per_batch.mul_f64(fraction)
        );
        let written: Vec<Bar> = (0..batches).flat_map(|number| crash_batch(number).to_bars()).collect();
        assert_eq!(store.digest(DigestQuery::default()).await.unwrap(), digest_bars(&written));
    }
}
