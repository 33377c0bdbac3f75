//! The dataset's names: the Hive dataset under `bars/` (partition
//! directories `symbol=<encoded>/year=<YYYY>`, data files
//! `part-<position>.parquet`) and Strata's own `_strata/` directory (staging
//! files, batch markers).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Datelike, NaiveDate};
use strata_core::Timestamp;
use strata_formats::read::hive;

/// Under the root: the Hive dataset, nothing but partition directories and
/// published data files (what pyarrow, pandas, polars and DuckDB read).
pub(crate) const DATA_DIR: &str = "bars";
/// Under the root: Strata's own bookkeeping, outside the dataset.
pub(crate) const META_DIR: &str = "_strata";
/// Under [`META_DIR`]: one marker per multi-partition batch (`committed` or `aborted`).
pub(crate) const BATCHES_DIR: &str = "batches";
/// Under [`META_DIR`]: files being written (or left by a crashed writer),
/// published into the dataset by `link` (same filesystem, so atomic).
pub(crate) const STAGING_DIR: &str = "staging";
/// Prefix of every staging name. Staging files live in [`STAGING_DIR`];
/// data directories of the previous layout may still hold some, which
/// readers skip and compaction removes once stale.
pub(crate) const STAGING_PREFIX: &str = ".strata-stage-";
/// Suffix of staging names.
pub(crate) const STAGING_SUFFIX: &str = ".tmp";

/// The Hive path value of a symbol: percent-encoded exactly as pyarrow and
/// DuckDB encode partition values (`strata_formats::read::hive`).
pub(crate) fn encode_symbol(symbol: &str) -> String {
    hive::encode_value(symbol)
}

/// The symbol of a Hive path value (percent-decoding); `None` when it is not
/// well-formed UTF-8 after decoding.
pub(crate) fn decode_symbol(value: &str) -> Option<String> {
    hive::decode_value(value)
}

/// The Hive dataset's directory under the root.
pub(crate) fn data_root(root: &Path) -> PathBuf {
    root.join(DATA_DIR)
}

/// The staging directory under the root.
pub(crate) fn staging_dir(root: &Path) -> PathBuf {
    root.join(META_DIR).join(STAGING_DIR)
}

/// The directory of `symbol`'s partitions.
pub(crate) fn symbol_dir(root: &Path, symbol: &str) -> PathBuf {
    data_root(root).join(hive::symbol_dir_name(symbol))
}

/// The partition directory of `symbol`'s bars of `year`.
pub(crate) fn partition_dir(root: &Path, symbol: &str, year: i32) -> PathBuf {
    symbol_dir(root, symbol).join(format!("year={year:04}"))
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
    fn partitions_live_under_bars_with_encoded_symbols() {
        let root = Path::new("/mnt/efs/strata");
        assert_eq!(partition_dir(root, "^GSPC", 2024), Path::new("/mnt/efs/strata/bars/symbol=%5EGSPC/year=2024"));
        assert_eq!(staging_dir(root), Path::new("/mnt/efs/strata/_strata/staging"));
        assert_eq!(decode_symbol(&encode_symbol("EURUSD=X")).as_deref(), Some("EURUSD=X"));
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
