//! The dataset's names: Hive partition directories (`symbol=<encoded>/year=<YYYY>`),
//! data files (`part-<position>.parquet`), staging names readers skip, and the
//! `_strata/` directory of batch markers.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Datelike, NaiveDate};
use strata_core::Timestamp;

/// The directory of Strata's own bookkeeping (skipped by every Hive reader: leading `_`).
pub(crate) const META_DIR: &str = "_strata";
/// Under [`META_DIR`]: one marker per multi-partition batch (`committed` or `aborted`).
pub(crate) const BATCHES_DIR: &str = "batches";
/// Prefix of every staging name: a leading `.` (pyarrow, polars and Spark skip
/// it) and no `.parquet` suffix (a DuckDB `**/*.parquet` glob never matches it).
pub(crate) const STAGING_PREFIX: &str = ".strata-stage-";
/// Suffix of staging names.
pub(crate) const STAGING_SUFFIX: &str = ".tmp";

/// Bytes a partition value keeps as is: RFC 3986 "unreserved" characters, the
/// set pyarrow (`uriparser`) and DuckDB (`HivePartitioning::Escape`) leave
/// alone when they write Hive paths; every other byte becomes `%XX`.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// The Hive path value of a symbol: percent-encoded exactly as pyarrow and
/// DuckDB encode partition values (`^GSPC` -> `%5EGSPC`, `EURUSD=X` ->
/// `EURUSD%3DX`, `BTC/USD` -> `BTC%2FUSD`), so URI-decoding readers give the
/// symbol back and no value contains `/` or a second `=`.
pub(crate) fn encode_symbol(symbol: &str) -> String {
    let mut out = String::with_capacity(symbol.len() + 4);
    for byte in symbol.bytes() {
        if is_unreserved(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The symbol of a Hive path value (percent-decoding); `None` when it is not
/// well-formed UTF-8 after decoding.
pub(crate) fn decode_symbol(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%' && index + 3 <= bytes.len())
            .then(|| std::str::from_utf8(&bytes[index + 1..index + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The partition directory of `symbol`'s bars of `year`, relative to the root.
pub(crate) fn partition_dir(root: &Path, symbol: &str, year: i32) -> PathBuf {
    root.join(format!("symbol={}", encode_symbol(symbol))).join(format!("year={year:04}"))
}

/// The UTC calendar year of a timestamp (its partition).
pub(crate) fn year_of(timestamp: i64) -> i32 {
    Timestamp(timestamp).day().year()
}

/// `[start, end)` of a year in microseconds.
pub(crate) fn year_bounds(year: i32) -> (i64, i64) {
    let start = |year: i32| {
        NaiveDate::from_ymd_opt(year, 1, 1)
            .map_or(if year < 0 { i64::MIN } else { i64::MAX }, |date| Timestamp::from_date(date).micros())
    };
    (start(year), start(year + 1))
}

/// The data file name of `position`: zero-padded so names sort like positions.
pub(crate) fn data_file_name(position: u64) -> String {
    format!("part-{position:020}.parquet")
}

/// The position of a data file name, `None` for any other name.
pub(crate) fn parse_data_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a staging name (a write in progress or a crashed one).
pub(crate) fn is_staging_name(name: &str) -> bool {
    name.starts_with(STAGING_PREFIX)
}

/// A fresh staging name in a directory.
pub(crate) fn staging_name(tag: &str) -> String {
    format!("{STAGING_PREFIX}{tag}-{}{STAGING_SUFFIX}", unique_id())
}

/// A 128-bit id, unique across processes and hosts with overwhelming
/// probability: the OS-seeded keys of two `RandomState`s hash the process id,
/// the time and a counter (no extra dependency, no environment).
pub(crate) fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let half = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(nanos);
        hasher.write_u64(count);
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_encode_like_pyarrow_and_duckdb_and_decode_back() {
        let cases = [
            ("AAPL", "AAPL"),
            ("BRK.B", "BRK.B"),
            ("^GSPC", "%5EGSPC"),
            ("EURUSD=X", "EURUSD%3DX"),
            ("BTC/USD", "BTC%2FUSD"),
            ("BTC-USD", "BTC-USD"),
            ("7203", "7203"),
            ("_", "_"),
            ("a%b", "a%25b"),
        ];
        for (symbol, encoded) in cases {
            assert_eq!(encode_symbol(symbol), encoded, "{symbol}");
            assert_eq!(decode_symbol(encoded).as_deref(), Some(symbol), "{encoded}");
        }
        assert_eq!(decode_symbol("%5"), Some("%5".into()), "a stray percent stays");
    }

    #[test]
    fn data_file_names_sort_like_positions() {
        assert_eq!(parse_data_file_name(&data_file_name(42)), Some(42));
        assert!(data_file_name(9) < data_file_name(10));
        assert_eq!(parse_data_file_name(".strata-stage-x.tmp"), None);
        assert_eq!(parse_data_file_name("part-1.parquet"), None);
        assert!(is_staging_name(&staging_name("data")));
        assert_ne!(unique_id(), unique_id());
    }

    #[test]
    fn years_partition_time() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(-1), 1969);
        let (start, end) = year_bounds(2024);
        assert_eq!(year_of(start), 2024);
        assert_eq!(year_of(end - 1), 2024);
        assert_eq!(year_of(end), 2025);
    }
}
