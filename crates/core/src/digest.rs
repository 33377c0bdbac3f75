//! The (symbol, day) digest: a row count plus an order-independent hash,
//! computable by any backend (in Rust here, in SQL by DuckDB and PostgreSQL),
//! so two stores can be compared without shipping rows.
//!
//! # Canonical row encoding
//!
//! Each bar is encoded as UTF-8 text, fields joined by `|`:
//!
//! ```text
//! symbol|timestamp|open|high|low|close|volume|vwap|trade_count
//! ```
//!
//! - `symbol`: the symbol text as stored.
//! - `timestamp`: microseconds since 1970-01-01T00:00:00Z, base-10 integer.
//! - each float (`open` .. `vwap`): the IEEE-754 binary64 bit pattern of
//!   `value + 0.0` (so `-0.0` encodes like `0.0`), read as a signed 64-bit
//!   integer and written in base 10. Validation keeps stored floats finite,
//!   non-negative and normal (or zero), so this is also the unsigned value;
//!   `1.0` encodes as `4607182418800017408`. Bit patterns, unlike decimal
//!   text, are exact and identical in every language and database.
//! - `vwap`, `trade_count`: the empty string when absent; `trade_count` in base 10.
//!
//! Example: `^GSPC|915408000000000|4653012309011451474|...|4741044048140050432||`
//!
//! # Row hash and day digest
//!
//! The row hash is the first 8 bytes of MD5(encoding) read as a big-endian
//! unsigned 64-bit integer (the first 16 hex digits of `md5()` in SQL). The
//! digest of a (symbol, UTC day) is the number of rows and the sum of their
//! row hashes modulo 2^64. A sum is order-independent and, unlike XOR, a
//! duplicated row changes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;

use crate::bar::{Bar, Symbol, Timestamp};
use crate::schema::BarBatch;

/// The digest of one symbol's bars on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DayDigest {
    /// Symbol.
    pub symbol: String,
    /// UTC calendar day.
    pub day: NaiveDate,
    /// Number of bars.
    pub rows: u64,
    /// Sum of row hashes modulo 2^64.
    pub hash: u64,
}

impl DayDigest {
    /// The hash as 16 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

/// Which digests to compute: symbols (empty = all) and an optional half-open
/// time range [start, end) applied to bar timestamps (use day boundaries to
/// get whole days).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DigestQuery {
    /// Symbols to include; empty means every symbol.
    pub symbols: Vec<Symbol>,
    /// Inclusive lower bound.
    pub start: Option<Timestamp>,
    /// Exclusive upper bound.
    pub end: Option<Timestamp>,
}

/// The canonical integer encoding of a float: the bit pattern of `value + 0.0`.
pub fn float_bits(value: f64) -> i64 {
    (value + 0.0).to_bits() as i64
}

/// Writes the canonical encoding of one row into `out` (cleared first).
pub fn encode_row(out: &mut String, bar: &Bar) {
    out.clear();
    let _ = write!(
        out,
        "{}|{}|{}|{}|{}|{}|{}|",
        bar.symbol,
        bar.timestamp.micros(),
        float_bits(bar.open),
        float_bits(bar.high),
        float_bits(bar.low),
        float_bits(bar.close),
        float_bits(bar.volume)
    );
    if let Some(vwap) = bar.vwap {
        let _ = write!(out, "{}", float_bits(vwap));
    }
    out.push('|');
    if let Some(count) = bar.trade_count {
        let _ = write!(out, "{count}");
    }
}

/// The row hash of one encoded row.
pub fn row_hash(encoded: &str) -> u64 {
    let digest = md5(encoded.as_bytes());
    u64::from_be_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7]])
}

/// Folds bars into per-(symbol, day) digests; the reference implementation
/// every backend must agree with.
#[derive(Debug, Default)]
pub struct DigestAccumulator {
    days: BTreeMap<(String, NaiveDate), (u64, u64)>,
    buffer: String,
}

impl DigestAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one bar.
    pub fn add(&mut self, bar: &Bar) {
        encode_row(&mut self.buffer, bar);
        let hash = row_hash(&self.buffer);
        let entry = self.days.entry((bar.symbol.clone(), bar.timestamp.day())).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.wrapping_add(hash);
    }

    /// Adds every row of a batch.
    pub fn add_batch(&mut self, batch: &BarBatch) {
        for bar in batch.to_bars() {
            self.add(&bar);
        }
    }

    /// The digests, ordered by (symbol, day).
    pub fn finish(self) -> Vec<DayDigest> {
        self.days.into_iter().map(|((symbol, day), (rows, hash))| DayDigest { symbol, day, rows, hash }).collect()
    }
}

/// Digests of `bars`, ordered by (symbol, day).
pub fn digest_bars<'a>(bars: impl IntoIterator<Item = &'a Bar>) -> Vec<DayDigest> {
    let mut accumulator = DigestAccumulator::new();
    for bar in bars {
        accumulator.add(bar);
    }
    accumulator.finish()
}

/// MD5 (RFC 1321). Used only for the digest, where it must match SQL's `md5()`;
/// not for security.
pub fn md5(input: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32), computed once rather than per row.
    static CONSTANTS: std::sync::OnceLock<[u32; 64]> = std::sync::OnceLock::new();
    let constants =
        CONSTANTS.get_or_init(|| std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32));
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut message = input.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in message.chunks_exact(64) {
        let words: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]])
        });
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a.wrapping_add(f).wrapping_add(constants[i]).wrapping_add(words[g]).rotate_left(SHIFTS[i]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        for (slot, value) in state.iter_mut().zip([a, b, c, d]) {
            *slot = slot.wrapping_add(value);
        }
    }
    let mut out = [0u8; 16];
    for (i, word) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_matches_rfc_1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(hex(&md5(input.as_bytes())), expected, "{input:?}");
        }
    }

    fn bar() -> Bar {
        Bar {
            symbol: "^GSPC".into(),
            timestamp: Timestamp(915_408_000_000_000),
            open: 1229.22998,
            high: 1248.810059,
            low: 1219.099976,
            close: 1228.099976,
            volume: 877_000_000.0,
            vwap: None,
            trade_count: None,
        }
    }

    #[test]
    fn encoding_uses_bit_patterns_and_empty_optionals() {
        let mut out = String::new();
        encode_row(&mut out, &Bar { open: 1.0, ..bar() });
        assert!(out.starts_with("^GSPC|915408000000000|4607182418800017408|"), "{out}");
        assert!(out.ends_with("||"), "{out}");
        encode_row(&mut out, &Bar { vwap: Some(1230.0), trade_count: Some(42), ..bar() });
        assert!(out.ends_with(&format!("|{}|42", float_bits(1230.0))), "{out}");
        assert_eq!(float_bits(-0.0), float_bits(0.0));
    }

    #[test]
    fn digest_is_order_independent_and_sensitive() {
        let a = bar();
        let b = Bar { timestamp: Timestamp(a.timestamp.micros() + 3_600_000_000), ..bar() };
        let next_day = Bar { timestamp: Timestamp(a.timestamp.micros() + Timestamp::MICROS_PER_DAY), ..bar() };
        let forward = digest_bars([&a, &b, &next_day]);
        assert_eq!(forward, digest_bars([&next_day, &b, &a]));
        assert_eq!(forward.len(), 2);
        assert_eq!(forward[0].rows, 2);
        let nudged = Bar { close: f64::from_bits(b.close.to_bits() + 1), ..b.clone() };
        assert_ne!(forward, digest_bars([&a, &nudged, &next_day]), "one ulp must change the digest");
    }
}
