//! Conformance cases of `MarketDataStore`: one `pub async fn` per behaviour of the port's contract.

use futures::StreamExt;
use strata_core::digest::{DigestAccumulator, digest_bars};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{
    Bar, BarBatch, BarQuery, DigestQuery, MarketDataStore, Order, SymbolSummary, TimeRange, Timestamp, bar_schema,
};

use crate::fixtures::{
    BASE, DAY, MINUTE, assert_same_bars, bar, digest, in_parallel, keys, minutes, read, read_symbol, series, snapshot,
    summary, symbol, ts, write, write_invalid,
};

/// Bars that stress exact storage: float noise, huge and fractional volumes,
/// flat and tiny bars, optional columns absent and present, old and sub-second timestamps.
fn tricky_bars() -> Vec<Bar> {
    let plain = |symbol: &str, timestamp: &str, prices: [f64; 4], volume: f64| Bar {
        symbol: symbol.into(),
        timestamp: ts(timestamp),
        open: prices[0],
        high: prices[1],
        low: prices[2],
        close: prices[3],
        volume,
        vwap: None,
        trade_count: None,
    };
    vec![
        plain("^GSPC", "1999-01-04", [1229.22998, 1248.810059, 1219.099976, 1228.099976], 877_000_000.0),
        Bar {
            vwap: Some(1236.529999999999),
            trade_count: Some(9_007_199_254_740_993),
            ..plain("^GSPC", "1999-01-05", [1228.099976, 1246.109985, 1228.099976, 1244.780029], 11_456_230_000.0)
        },
        Bar {
            vwap: Some(0.08401),
            trade_count: Some(0),
            ..plain(
                "DOGE-USD",
                "2021-05-08T12:00:00Z",
                [0.08388999999999999, 0.0845, 0.08388999999999999, 0.0841],
                2012.25343589,
            )
        },
        Bar { trade_count: Some(0), ..plain("PENNY", "2020-03-09T14:30:00.123456Z", [0.0672; 4], 0.0) },
        Bar { vwap: Some(0.0672), ..plain("PENNY", "2020-03-09T14:30:00.123457Z", [0.0672; 4], 1e-3) },
        plain("^DJI", "1928-10-01", [240.01, 240.01, 240.01, 240.01], 0.0),
        Bar {
            vwap: Some(99.99999999999999),
            ..plain(
                "^DJI",
                "1969-12-31T23:59:59.999999Z",
                [100.0, 100.00000000000001, 99.99999999999999, 100.0],
                3.5e15,
            )
        },
        plain("^DJI", "1970-01-01T00:00:00.000001Z", [1.0e-3, 2.0e300, 1.0e-300, 7.0e-3], f64::MAX),
    ]
}

/// `bars` sorted the way an unfiltered ascending query returns them.
fn sorted(mut bars: Vec<Bar>) -> Vec<Bar> {
    bars.sort_by(|a, b| (a.symbol.as_bytes(), a.timestamp).cmp(&(b.symbol.as_bytes(), b.timestamp)));
    bars
}

/// Every column of every bar comes back bit for bit, absent optionals as absent.
pub async fn round_trip_preserves_every_column_bit_exactly(store: &dyn MarketDataStore) {
    let bars = tricky_bars();
    write(store, &bars, "round trip").await;
    let everything = read(store, BarQuery::default(), "round trip, all symbols").await;
    assert_same_bars(&everything, &sorted(bars.clone()), "round trip, all symbols");
    for name in ["^GSPC", "DOGE-USD", "PENNY", "^DJI"] {
        let expected: Vec<Bar> = sorted(bars.iter().filter(|bar| bar.symbol == name).cloned().collect());
        assert_same_bars(&read_symbol(store, name, name).await, &expected, &format!("round trip of {name}"));
    }
}

/// The stream yields every row once in canonical batches, even when a symbol is listed twice.
pub async fn query_stream_yields_each_row_once(store: &dyn MarketDataStore) {
    write(store, &minutes("A", 5), "schema").await;
    let mut stream = store.query_bars(BarQuery::symbol(symbol("A")));
    let mut rows = 0;
    while let Some(next) = stream.next().await {
        let next = next.unwrap_or_else(|error| panic!("schema: query stream failed: {error}"));
        assert_eq!(next.record_batch().schema(), bar_schema(), "every batch uses the canonical bar schema");
        rows += next.len();
    }
    assert_eq!(rows, 5, "schema: the stream yields every row");
    let twice = BarQuery { symbols: vec![symbol("A"), symbol("A")], ..BarQuery::default() };
    assert_eq!(read(store, twice, "repeated symbol").await.len(), 5, "a symbol listed twice returns its rows once");
}

/// An empty batch succeeds, reports zero rows and changes nothing.
pub async fn empty_batch_is_a_no_op(store: &dyn MarketDataStore) {
    write(store, &minutes("A", 3), "setup").await;
    let before = snapshot(store, "before the empty batch").await;
    let report = store.write_bars(BarBatch::empty()).await.unwrap_or_else(|e| panic!("empty batch failed: {e}"));
    assert_eq!(report.rows, 0, "an empty batch writes no rows");
    assert_eq!(snapshot(store, "after the empty batch").await, before, "an empty batch changes nothing");
}

/// Writing a batch twice leaves the rows, summary and digest as after one write.
pub async fn writing_the_same_batch_twice_changes_nothing(store: &dyn MarketDataStore) {
    let mut bars = minutes("A", 50);
    bars.extend(tricky_bars());
    write(store, &bars, "first write").await;
    let (summary_once, digest_once) = snapshot(store, "after one write").await;
    let rows_once = read(store, BarQuery::default(), "after one write").await;
    write(store, &bars, "second write").await;
    let (summary_twice, digest_twice) = snapshot(store, "after two writes").await;
    assert_eq!(summary_twice, summary_once, "the summary is the same after writing the batch again");
    assert_eq!(digest_twice, digest_once, "the digest is the same after writing the batch again");
    assert_eq!(summary_twice.total_rows(), bars.len() as u64, "no row is duplicated");
    assert_same_bars(&read(store, BarQuery::default(), "after two writes").await, &rows_once, "rows after two writes");
}

/// Rewriting a key replaces every column of the row, including optionals becoming absent.
pub async fn last_write_of_a_key_wins(store: &dyn MarketDataStore) {
    let mut bars = minutes("A", 10);
    write(store, &bars, "first version").await;
    let changed = Bar {
        close: bars[3].close + 0.0625,
        high: bars[3].high + 1.0,
        vwap: None,
        trade_count: None,
        ..bars[3].clone()
    };
    let also_changed = Bar { volume: 11_456_230_000.0, trade_count: Some(12_345), ..bars[7].clone() };
    write(store, &[changed.clone(), also_changed.clone()], "second version").await;
    bars[3] = changed;
    bars[7] = also_changed;
    assert_same_bars(&read_symbol(store, "A", "after rewrite").await, &bars, "the last write of each key wins");
    let (summary, digests) = snapshot(store, "after rewrite").await;
    assert_eq!(summary.total_rows(), 10, "rewriting keys adds no rows");
    assert_eq!(digests, digest_bars(&bars), "the digest reflects the last write");
}

/// Ascending is oldest first and descending newest first, whatever the write order.
pub async fn orders_ascending_and_descending(store: &dyn MarketDataStore) {
    let bars = minutes("A", 20);
    let shuffled: Vec<Bar> = (0..20).map(|i| bars[(i * 7) % 20].clone()).collect();
    write(store, &shuffled[..10], "first half").await;
    write(store, &shuffled[10..], "second half").await;
    let ascending = read(store, BarQuery::symbol(symbol("A")), "ascending").await;
    assert_same_bars(&ascending, &bars, "ascending is oldest first");
    let descending_query = BarQuery { order: Order::Descending, ..BarQuery::symbol(symbol("A")) };
    let descending = read(store, descending_query, "descending").await;
    let reversed: Vec<Bar> = bars.iter().rev().cloned().collect();
    assert_same_bars(&descending, &reversed, "descending is newest first");
}

/// `limit` caps each symbol, not the whole result.
pub async fn limit_applies_per_symbol(store: &dyn MarketDataStore) {
    let (a, b, c) = (minutes("A", 10), minutes("B", 3), minutes("C", 7));
    write(store, &[a.clone(), b.clone(), c.clone()].concat(), "setup").await;
    let query =
        BarQuery { symbols: vec![symbol("C"), symbol("A"), symbol("B")], limit: Some(5), ..BarQuery::default() };
    let expected = [&a[..5], &b[..], &c[..5]].concat();
    assert_same_bars(&read(store, query, "limit 5").await, &expected, "limit 5 per symbol, oldest first");
}

/// "Latest N" is descending with a limit, per symbol, and respects the range.
pub async fn latest_n_is_descending_with_a_limit(store: &dyn MarketDataStore) {
    let (a, b) = (minutes("A", 10), minutes("B", 2));
    write(store, &[a.clone(), b.clone()].concat(), "setup").await;
    let latest = read(store, BarQuery::latest(symbol("A"), 3), "latest 3").await;
    assert_same_bars(&latest, &[a[9].clone(), a[8].clone(), a[7].clone()], "latest 3 of A, newest first");
    let before = BarQuery::latest(symbol("A"), 2).between(BASE, a[5].timestamp);
    assert_same_bars(
        &read(store, before, "latest before").await,
        &[a[4].clone(), a[3].clone()],
        "latest 2 before a[5]",
    );
    let both = BarQuery { symbols: vec![symbol("B"), symbol("A")], ..BarQuery::latest(symbol("A"), 3) };
    let expected = [a[9].clone(), a[8].clone(), a[7].clone(), b[1].clone(), b[0].clone()];
    assert_same_bars(&read(store, both, "latest of two").await, &expected, "latest 3 of each symbol");
}

/// Rows of several symbols come grouped by symbol (byte order ascending), each in timestamp order.
pub async fn results_are_grouped_by_symbol_ascending(store: &dyn MarketDataStore) {
    let names = ["b", "A", "^X", "a", "B-1", "A.B"];
    let mut interleaved = Vec::new();
    for i in 0..4 {
        for (n, name) in names.iter().enumerate() {
            let minute = (5 * i + 3 * n as i64) % 17;
            interleaved.push(bar(name, BASE.plus_micros(MINUTE * minute), i as u32));
        }
    }
    write(store, &interleaved, "interleaved").await;
    let query = BarQuery { symbols: names.iter().map(|name| symbol(name)).collect(), ..BarQuery::default() };
    let expected = sorted(interleaved.clone());
    assert_eq!(
        keys(&read(store, query.clone(), "ascending").await),
        keys(&expected),
        "grouped by symbol, oldest first"
    );
    let mut descending_expected = expected.clone();
    descending_expected.sort_by(|x, y| (x.symbol.as_bytes(), y.timestamp).cmp(&(y.symbol.as_bytes(), x.timestamp)));
    let descending = read(store, BarQuery { order: Order::Descending, ..query }, "descending").await;
    assert_eq!(keys(&descending), keys(&descending_expected), "grouped by symbol ascending, newest first within");
}

/// A query with no symbols returns every symbol.
pub async fn empty_symbol_list_means_every_symbol(store: &dyn MarketDataStore) {
    let bars = [minutes("Z", 3), minutes("M", 2), minutes("^A", 4)].concat();
    write(store, &bars, "setup").await;
    assert_same_bars(
        &read(store, BarQuery::default(), "all").await,
        &sorted(bars),
        "every symbol, grouped and ordered",
    );
}

/// `[start, end)`: the start is included, the end excluded, in both orders.
pub async fn ranges_are_half_open(store: &dyn MarketDataStore) {
    let bars = minutes("A", 10);
    write(store, &bars, "setup").await;
    let at = |i: usize| bars[i].timestamp;
    let check = |start: Option<Timestamp>, end: Option<Timestamp>, expected: &[usize]| {
        let wanted: Vec<Bar> = expected.iter().map(|i| bars[*i].clone()).collect();
        (BarQuery { start, end, ..BarQuery::symbol(symbol("A")) }, wanted)
    };
    let cases = [
        check(Some(at(2)), Some(at(5)), &[2, 3, 4]),
        check(Some(at(8)), None, &[8, 9]),
        check(None, Some(at(1)), &[0]),
        check(Some(at(2).plus_micros(1)), Some(at(4).plus_micros(1)), &[3, 4]),
        check(Some(at(9)), Some(at(9).plus_micros(1)), &[9]),
        check(Some(at(0).plus_micros(-1)), Some(at(0)), &[]),
    ];
    for (query, expected) in cases {
        let context = format!("range [{:?}, {:?})", query.start, query.end);
        assert_same_bars(&read(store, query.clone(), &context).await, &expected, &context);
        let reversed: Vec<Bar> = expected.iter().rev().cloned().collect();
        let descending = read(store, BarQuery { order: Order::Descending, ..query }, &context).await;
        assert_same_bars(&descending, &reversed, &format!("{context}, descending"));
    }
}

/// `start >= end` is an empty result, not an error.
pub async fn start_at_or_after_end_is_empty(store: &dyn MarketDataStore) {
    let bars = minutes("A", 10);
    write(store, &bars, "setup").await;
    let (t3, t6) = (bars[3].timestamp, bars[6].timestamp);
    for (start, end) in [(t3, t3), (t6, t3)] {
        for order in [Order::Ascending, Order::Descending] {
            let query = BarQuery { order, ..BarQuery::symbol(symbol("A")).between(start, end) };
            let rows = read(store, query, &format!("[{start}, {end}) {order:?}")).await;
            assert!(rows.is_empty(), "[{start}, {end}) must be empty, got {} rows", rows.len());
        }
    }
}

/// Unknown symbols match nothing, without an error, in queries, digests and deletes.
pub async fn unknown_symbol_is_empty_not_an_error(store: &dyn MarketDataStore) {
    let bars = minutes("A", 4);
    write(store, &bars, "setup").await;
    assert!(read_symbol(store, "NOPE", "unknown").await.is_empty(), "an unknown symbol has no rows");
    let mixed = BarQuery { symbols: vec![symbol("NOPE"), symbol("A")], ..BarQuery::default() };
    assert_same_bars(&read(store, mixed, "known and unknown").await, &bars, "an unknown symbol beside a known one");
    let digests =
        digest(store, DigestQuery { symbols: vec![symbol("NOPE")], ..DigestQuery::default() }, "unknown").await;
    assert!(digests.is_empty(), "an unknown symbol has no digests");
    let deleted = store.delete_bars(&symbol("NOPE"), TimeRange::all()).await;
    assert_eq!(deleted.unwrap_or_else(|e| panic!("delete of an unknown symbol failed: {e}")), 0, "nothing to delete");
}

/// `limit = Some(0)` returns nothing.
pub async fn limit_zero_is_empty(store: &dyn MarketDataStore) {
    write(store, &[minutes("A", 4), minutes("B", 4)].concat(), "setup").await;
    for order in [Order::Ascending, Order::Descending] {
        let rows = read(store, BarQuery { limit: Some(0), order, ..BarQuery::default() }, "limit 0").await;
        assert!(rows.is_empty(), "limit 0 ({order:?}) must return nothing, got {} rows", rows.len());
    }
}

/// One invalid row rejects the batch with a report naming it, and nothing of the batch is written.
pub async fn one_bad_row_rejects_the_whole_batch(store: &dyn MarketDataStore) {
    write(store, &[minutes("A", 5), minutes("B", 5)].concat(), "setup").await;
    let before = snapshot(store, "before the bad batch").await;
    // Rows 0..5 rewrite existing keys with new values, rows 5..10 are new; row 3 has high < close.
    let mut bad: Vec<Bar> = minutes("A", 10).into_iter().map(|bar| Bar { volume: bar.volume + 1.0, ..bar }).collect();
    bad[3].high = bad[3].close - 0.01;
    let error = write_invalid(store, &bad, "high < close in row 3").await;
    let report = error.validation_report().unwrap_or_else(|| panic!("InvalidInput must carry the row report: {error}"));
    assert_eq!(report.bad_rows(), vec![3], "the report names row 3 only: {report}");
    assert_eq!(report.errors[0].column, "high", "the report names the column: {report}");
    assert_eq!(report.total_rows, 10, "the report counts the batch's rows");
    assert_eq!(snapshot(store, "after the bad batch").await, before, "a rejected batch changes nothing");
}

/// Every invalid row is listed, not just the first.
pub async fn every_bad_row_is_reported(store: &dyn MarketDataStore) {
    let mut bars = minutes("A", 10);
    bars[1].volume = -1.0;
    bars[4].vwap = Some(bars[4].high * 2.0);
    bars[7].open = f64::NAN;
    let error = write_invalid(store, &bars, "three bad rows").await;
    let report = error.validation_report().unwrap_or_else(|| panic!("InvalidInput must carry the row report: {error}"));
    assert_eq!(report.bad_rows(), vec![1, 4, 7], "every bad row is reported: {report}");
    let columns: Vec<&str> = report.errors.iter().map(|e| e.column).collect();
    assert_eq!(columns, vec!["volume", "vwap", "open"], "each error names its column: {report}");
    assert!(summary(store, "after").await.symbols.is_empty(), "nothing of a rejected batch is written");
}

/// Symbols that look like SQL or paths but are allowed round-trip and stay isolated.
pub async fn scary_but_valid_symbols_round_trip_in_isolation(store: &dyn MarketDataStore) {
    let scary = ["1=1", "--", "SELECT", "DROP", "a.b", "^GSPC", "EURUSD=X", "_", "NULL", "ohlcv_bars", "a..b", "-1"];
    let control = minutes("CONTROL", 3);
    let bars: Vec<Bar> = scary.iter().flat_map(|name| minutes(name, 3)).chain(control.clone()).collect();
    write(store, &bars, "scary symbols").await;
    for name in scary {
        assert_same_bars(&read_symbol(store, name, name).await, &minutes(name, 3), &format!("symbol {name:?}"));
    }
    let listed: Vec<String> = summary(store, "scary").await.symbols.into_iter().map(|s| s.symbol).collect();
    let mut expected: Vec<String> = scary.iter().chain(["CONTROL"].iter()).map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "the summary lists each symbol once, in byte order");
    let one = digest(store, DigestQuery { symbols: vec![symbol("1=1")], ..DigestQuery::default() }, "1=1").await;
    assert_eq!(one, digest_bars(&minutes("1=1", 3)), "a digest of \"1=1\" covers that symbol only");
    let deleted = store.delete_bars(&symbol("DROP"), TimeRange::all()).await.unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(deleted, 3, "deleting \"DROP\" removes its 3 rows");
    assert_same_bars(&read_symbol(store, "CONTROL", "control").await, &control, "other symbols are untouched");
    assert_eq!(summary(store, "after delete").await.total_rows(), 3 * scary.len() as u64, "only DROP's rows went");
}

/// Symbols that could break SQL or paths are refused in a batch, and nothing of it is written.
pub async fn unsafe_symbols_are_refused_and_nothing_is_written(store: &dyn MarketDataStore) {
    write(store, &minutes("ohlcv_bars", 2), "setup").await;
    let before = snapshot(store, "before").await;
    for name in ["x'; DROP TABLE ohlcv_bars; --", "../../etc/passwd", "a/b", "a b", "", "a\\b", "%", ".hidden"] {
        let bars = [bar("SAFE", BASE, 0), bar(name, BASE, 1)];
        let error = write_invalid(store, &bars, &format!("symbol {name:?}")).await;
        let report =
            error.validation_report().unwrap_or_else(|| panic!("{name:?}: InvalidInput needs a report: {error}"));
        assert_eq!(report.bad_rows(), vec![1], "{name:?}: row 1 is the bad one: {report}");
        assert_eq!(report.errors[0].column, "symbol", "{name:?}: the symbol column is named: {report}");
        assert_eq!(snapshot(store, name).await, before, "{name:?}: nothing was written");
    }
}

/// The summary lists each symbol's first and last timestamps and row count, by symbol.
pub async fn summary_lists_each_symbol_in_order(store: &dyn MarketDataStore) {
    assert!(summary(store, "empty store").await.symbols.is_empty(), "an empty store has an empty summary");
    let b = series("B", ts("2020-01-02"), DAY, 5);
    let a = series("A", ts("1969-07-20T20:17:40Z"), MINUTE, 3);
    let vix = series("^VIX", ts("2024-02-29T23:59:59.999999Z"), 1, 2);
    write(store, &[b.clone(), a.clone(), vix.clone()].concat(), "setup").await;
    let expected = vec![
        SymbolSummary { symbol: "A".into(), first: a[0].timestamp, last: a[2].timestamp, rows: 3 },
        SymbolSummary { symbol: "B".into(), first: b[0].timestamp, last: b[4].timestamp, rows: 5 },
        SymbolSummary { symbol: "^VIX".into(), first: vix[0].timestamp, last: vix[1].timestamp, rows: 2 },
    ];
    let summary = summary(store, "three symbols").await;
    assert_eq!(summary.symbols, expected, "per-symbol first, last and rows, ascending by symbol");
    assert_eq!(summary.total_rows(), 10);
}

/// The store's digests equal `digest_bars` of the same data, the cross-backend reference.
pub async fn digest_matches_the_reference(store: &dyn MarketDataStore) {
    assert!(digest(store, DigestQuery::default(), "empty").await.is_empty(), "an empty store has no digests");
    let mut bars = tricky_bars();
    bars.extend(series("A", ts("2020-01-01T22:00:00Z"), 15 * MINUTE, 20));
    write(store, &bars, "setup").await;
    assert_eq!(digest(store, DigestQuery::default(), "all").await, digest_bars(&bars), "digest of everything");
    let rewritten = Bar { close: f64::from_bits(bars[9].close.to_bits() + 1), ..bars[9].clone() };
    write(store, std::slice::from_ref(&rewritten), "rewrite").await;
    bars[9] = rewritten;
    assert_eq!(digest(store, DigestQuery::default(), "after").await, digest_bars(&bars), "one ulp changes the digest");
}

/// Digest queries select symbols and a half-open `[start, end)` on bar timestamps.
pub async fn digest_filters_by_symbol_and_half_open_range(store: &dyn MarketDataStore) {
    let hour = 60 * MINUTE;
    let bars = [series("A", BASE, hour, 72), series("B", BASE, hour, 72), series("C", BASE, hour, 72)].concat();
    write(store, &bars, "setup").await;
    let (start, end) = (BASE.plus_micros(hour), BASE.plus_micros(2 * DAY));
    let query = DigestQuery { symbols: vec![symbol("C"), symbol("A")], start: Some(start), end: Some(end) };
    let selected: Vec<&Bar> =
        bars.iter().filter(|bar| bar.symbol != "B" && bar.timestamp >= start && bar.timestamp < end).collect();
    let got = digest(store, query, "A and C, [01:00 day 1, day 3)").await;
    assert_eq!(got, digest_bars(selected), "symbols and [start, end) select the rows digested");
    assert_eq!(got.iter().map(|d| d.rows).collect::<Vec<_>>(), vec![23, 24, 23, 24], "rows per (symbol, day)");
    let empty = DigestQuery { start: Some(end), end: Some(end), ..DigestQuery::default() };
    assert!(digest(store, empty, "start = end").await.is_empty(), "an empty range has no digests");
}

/// `delete_bars` removes `[start, end)` of one symbol only and returns how many rows went.
pub async fn delete_removes_a_half_open_range_of_one_symbol(store: &dyn MarketDataStore) {
    let (a, b) = (minutes("A", 10), minutes("B", 10));
    write(store, &[a.clone(), b.clone()].concat(), "setup").await;
    let delete = |range: TimeRange| async move {
        store.delete_bars(&symbol("A"), range).await.unwrap_or_else(|error| panic!("delete_bars failed: {error}"))
    };
    let range = TimeRange::new(a[2].timestamp, a[5].timestamp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delete(range).await, 3, "[a2, a5) holds 3 rows");
    assert_eq!(delete(range).await, 0, "deleting again removes nothing");
    let empty = TimeRange::new(a[7].timestamp, a[7].timestamp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delete(empty).await, 0, "an empty range removes nothing");
    let kept = [&a[..2], &a[5..]].concat();
    assert_same_bars(&read_symbol(store, "A", "after delete").await, &kept, "the rest of A is intact");
    assert_same_bars(&read_symbol(store, "B", "after delete").await, &b, "B is untouched");
    assert_eq!(delete(TimeRange::all()).await, 7, "deleting everything removes the remaining 7 rows");
    let listed: Vec<String> = summary(store, "after").await.symbols.into_iter().map(|s| s.symbol).collect();
    assert_eq!(listed, vec!["B".to_string()], "a symbol without bars leaves the summary");
}

/// A single batch of 1,000,000 bars is stored whole: count and digest match, and it streams back in bounded batches.
pub async fn million_bar_batch_round_trips(store: &dyn MarketDataStore) {
    const ROWS: usize = 1_000_000;
    let spec = SyntheticSpec::minutes(4, ROWS / 4, 20_260_101);
    let parts: Vec<_> = spec.batches(ROWS / 4).map(BarBatch::into_record_batch).collect();
    let whole = arrow::compute::concat_batches(&bar_schema(), &parts).unwrap_or_else(|e| panic!("concat: {e}"));
    let big = BarBatch::try_new(whole).unwrap_or_else(|e| panic!("the synthetic batch fits the schema: {e}"));
    drop(parts);
    assert_eq!(big.len(), ROWS);
    let mut reference = DigestAccumulator::new();
    for offset in (0..ROWS).step_by(50_000) {
        reference.add_batch(&big.slice(offset, 50_000.min(ROWS - offset)));
    }
    let reference = reference.finish();
    let report = store.write_bars(big).await.unwrap_or_else(|error| panic!("writing 1,000,000 bars failed: {error}"));
    assert_eq!(report.rows, ROWS as u64, "the write report counts every row");
    assert_eq!(summary(store, "1M").await.total_rows(), ROWS as u64, "the summary counts 1,000,000 rows");
    assert_eq!(digest(store, DigestQuery::default(), "1M").await, reference, "the store's digest equals the reference");
    let mut stream = store.query_bars(BarQuery::default());
    let (mut batches, mut streamed) = (0, DigestAccumulator::new());
    while let Some(next) = stream.next().await {
        let next = next.unwrap_or_else(|error| panic!("streaming 1,000,000 bars failed: {error}"));
        batches += 1;
        streamed.add_batch(&next);
    }
    assert!(batches > 1, "1,000,000 rows must stream in bounded batches, not one");
    assert_eq!(streamed.finish(), reference, "the streamed rows digest like the written ones");
}

/// Eight concurrent writers on different symbols, several batches each, all land.
pub async fn parallel_writers_on_different_symbols_all_land(store: &dyn MarketDataStore) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 5;
    const ROWS: usize = 2_000;
    let bars_of = |writer: usize| minutes(&format!("P{writer}"), BATCHES * ROWS);
    in_parallel(WRITERS, |writer| async move {
        let bars = bars_of(writer);
        for chunk in bars.chunks(ROWS) {
            write(store, chunk, &format!("writer {writer}")).await;
        }
    });
    let summary = summary(store, "after parallel writes").await;
    assert_eq!(summary.symbols.len(), WRITERS, "every writer's symbol is stored");
    for entry in &summary.symbols {
        assert_eq!(entry.rows, (BATCHES * ROWS) as u64, "{}: every batch landed", entry.symbol);
    }
    let everything: Vec<Bar> = (0..WRITERS).flat_map(bars_of).collect();
    assert_eq!(
        digest(store, DigestQuery::default(), "parallel").await,
        digest_bars(&everything),
        "digest of all writers"
    );
}

/// `health` answers healthy, every component too, under the store's own
/// description; the capabilities a store declares do not change.
pub async fn health_is_ok(store: &dyn MarketDataStore) {
    let health = store.health().await.unwrap_or_else(|error| panic!("health failed: {error}"));
    assert!(health.ok(), "a fresh store is healthy: {health:?}");
    assert_eq!(health.worst(), strata_core::HealthStatus::Healthy, "every part is healthy: {health:?}");
    assert_eq!(health.backend, store.to_string(), "health reports the store's description");
    assert_eq!(store.capabilities(), store.capabilities(), "capabilities are constant");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::batch;

    #[test]
    fn tricky_bars_are_valid_and_distinct() {
        let bars = tricky_bars();
        batch(&bars).validate().unwrap();
        assert_eq!(sorted(bars.clone()).len(), bars.len());
        assert!(bars.iter().any(|bar| bar.timestamp < Timestamp(0)), "includes bars before 1970");
    }
}
