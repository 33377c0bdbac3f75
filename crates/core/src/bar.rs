//! The `Bar` row type, symbols and UTC microsecond timestamps.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::error::StoreError;

/// The longest symbol accepted.
pub const MAX_SYMBOL_LEN: usize = 32;

/// Whether `c` may appear in a symbol: ASCII letters and digits, and `^ . _ - =`.
///
/// Real tickers need the caret (`^GSPC`), the dot (`BRK.B`), the dash
/// (`BTC-USD`) and the equals sign (`EURUSD=X`). Slash, quote, whitespace,
/// backslash and `%` are refused so a symbol is safe as a SQL literal, in a
/// file path segment (`symbol=^GSPC`) and in a URL.
pub fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '^' | '.' | '_' | '-' | '=')
}

/// Checks a symbol and returns why it is refused, if it is.
pub fn check_symbol(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("symbol is empty".into());
    }
    if text.len() > MAX_SYMBOL_LEN {
        return Err(format!("symbol is {} characters long; at most {MAX_SYMBOL_LEN} are allowed", text.len()));
    }
    if let Some(bad) = text.chars().find(|c| !is_symbol_char(*c)) {
        return Err(format!("symbol {text:?} contains {bad:?}; allowed are ASCII letters, digits and ^ . _ - ="));
    }
    if text.starts_with('.') {
        return Err(format!("symbol {text:?} starts with '.'"));
    }
    Ok(())
}

/// A validated instrument symbol (1 to 32 characters of [`is_symbol_char`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Symbol(String);

/// Deserializing validates, as [`Symbol::new`] does: a symbol read from the
/// outside is as safe as one built in process.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        Symbol::new(text).map_err(serde::de::Error::custom)
    }
}

impl Symbol {
    /// Validates and wraps `text`.
    pub fn new(text: impl Into<String>) -> Result<Self, StoreError> {
        let text = text.into();
        check_symbol(&text).map_err(StoreError::invalid)?;
        Ok(Symbol(text))
    }

    /// The symbol text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Symbol {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Symbol::new(text)
    }
}

/// Earliest timestamp accepted by validation: 1900-01-01T00:00:00Z.
pub const MIN_TIMESTAMP: Timestamp = Timestamp(-2_208_988_800_000_000);
/// Latest timestamp accepted by validation (exclusive): 2200-01-01T00:00:00Z.
pub const MAX_TIMESTAMP: Timestamp = Timestamp(7_258_118_400_000_000);

/// A UTC instant in microseconds since the Unix epoch (Arrow's
/// `Timestamp(Microsecond, "UTC")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Microseconds in one day.
    pub const MICROS_PER_DAY: i64 = 86_400_000_000;

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// The current time.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// Midnight UTC of `date`.
    pub fn from_date(date: NaiveDate) -> Self {
        Timestamp(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or_default())
    }

    /// The UTC calendar day this instant falls on.
    pub fn day(self) -> NaiveDate {
        let days = self.0.div_euclid(Self::MICROS_PER_DAY);
        NaiveDate::from_num_days_from_ce_opt(719_163 + days as i32).unwrap_or_default()
    }

    /// As a chrono value, when representable.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }

    /// Adds a signed number of microseconds, saturating.
    pub fn plus_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// Parses the forms found in market data files:
    /// RFC 3339 (`2020-01-02T00:00:00Z`, offsets, fractional seconds),
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` taken as UTC, and a bare date
    /// `YYYY-MM-DD` meaning midnight UTC.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
            return Ok(Timestamp(parsed.timestamp_micros()));
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.fZ"] {
            if let Ok(parsed) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(Timestamp(parsed.and_utc().timestamp_micros()));
            }
        }
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Timestamp::from_date(date));
        }
        Err(format!("{text:?} is not a timestamp; use RFC 3339 (2020-01-02T15:04:05Z) or a date (2020-01-02)"))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with a `Z`, with microseconds only when non-zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(datetime) if self.0 % 1_000_000 == 0 => {
                write!(f, "{}", datetime.format("%Y-%m-%dT%H:%M:%SZ"))
            }
            Some(datetime) => write!(f, "{}", datetime.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
            None => write!(f, "{}us", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(text).map_err(StoreError::invalid)
    }
}

/// One OHLCV bar. Key: (symbol, timestamp).
///
/// `volume` is a float because index volumes exceed 2^31 and crypto volumes
/// are fractional; `vwap` and `trade_count` are optional because most vendor
/// files do not have them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Bar {
    /// Instrument symbol (validated when the batch is validated).
    pub symbol: String,
    /// Bar timestamp (UTC).
    pub timestamp: Timestamp,
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing price.
    pub close: f64,
    /// Traded volume (may be zero or fractional).
    pub volume: f64,
    /// Volume-weighted average price, when the source has it.
    pub vwap: Option<f64>,
    /// Number of trades, when the source has it.
    pub trade_count: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_allow_real_tickers_and_refuse_tricks() {
        for good in ["^GSPC", "BRK.B", "BTC-USD", "EURUSD=X", "A", "ES_F"] {
            assert!(Symbol::new(good).is_ok(), "{good}");
        }
        for bad in
            ["", "a'b", "x; DROP TABLE ohlcv_bars", "../etc", "a/b", "a b", "..", "%", "ab\\c", "Ä", &"X".repeat(33)]
        {
            assert!(Symbol::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_parse_common_forms() {
        let midnight = Timestamp::parse("1999-01-04T00:00:00Z").unwrap();
        assert_eq!(midnight, Timestamp::parse("1999-01-04").unwrap());
        assert_eq!(midnight, Timestamp::parse("1999-01-04 00:00:00").unwrap());
        assert_eq!(midnight.micros(), 915_408_000_000_000);
        assert_eq!(Timestamp::parse("1999-01-04T01:00:00+01:00").unwrap(), midnight);
        assert_eq!(Timestamp::parse("1999-01-04T00:00:00.000001Z").unwrap().micros(), 915_408_000_000_001);
        assert!(Timestamp::parse("04/01/1999").is_err());
    }

    #[test]
    fn timestamps_display_round_trips() {
        for text in ["1999-01-04T00:00:00Z", "1969-12-31T23:59:59.999999Z", "2020-02-29T12:34:56.000100Z"] {
            assert_eq!(Timestamp::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn day_handles_times_before_the_epoch() {
        let before = Timestamp::parse("1969-12-31T23:59:59Z").unwrap();
        assert_eq!(before.day(), NaiveDate::from_ymd_opt(1969, 12, 31).unwrap());
        assert_eq!(Timestamp(0).day(), NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
        assert_eq!(MIN_TIMESTAMP, Timestamp::from_date(NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()));
        assert_eq!(MAX_TIMESTAMP, Timestamp::from_date(NaiveDate::from_ymd_opt(2200, 1, 1).unwrap()));
    }
}
