//! PostgreSQL's binary COPY format for the nine bar columns: an encoder that
//! turns a validated Arrow batch into COPY data (bulk writes) and an
//! incremental decoder that turns `COPY ... TO STDOUT (FORMAT binary)` chunks
//! into bounded Arrow batches (reads), without an intermediate row struct.
//!
//! Format (PostgreSQL docs, "COPY", binary format): an 11-byte signature,
//! a 32-bit flags word and a 32-bit header-extension length; then per tuple a
//! 16-bit field count and per field a 32-bit length (-1 = NULL) and the
//! value in the type's binary send format (text: UTF-8 bytes; float8: IEEE
//! big-endian; int8: big-endian; timestamptz: microseconds since
//! 2000-01-01 UTC); a 16-bit -1 ends the data.

use arrow::array::Array as _;
use strata_core::{BarBatch, BarBatchBuilder, StoreError, Timestamp};

use crate::error::BACKEND;

/// The binary COPY signature.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
pub(crate) const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Number of columns of a bar tuple.
const FIELDS: i16 = 9;

/// The COPY header (signature, flags, extension length).
pub(crate) fn header() -> Vec<u8> {
    let mut out = Vec::with_capacity(19);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out
}

/// The COPY trailer.
pub(crate) fn trailer() -> [u8; 2] {
    (-1i16).to_be_bytes()
}

/// Appends rows `[from, to)` of `batch` as COPY tuples to `out`.
pub(crate) fn encode_rows(batch: &BarBatch, from: usize, to: usize, out: &mut Vec<u8>) {
    let c = batch.columns();
    for row in from..to {
        out.extend_from_slice(&FIELDS.to_be_bytes());
        let symbol = c.symbol.value(row).as_bytes();
        out.extend_from_slice(&(symbol.len() as i32).to_be_bytes());
        out.extend_from_slice(symbol);
        push_i64(out, c.timestamp.value(row) - PG_EPOCH_OFFSET_MICROS);
        push_f64(out, c.open.value(row));
        push_f64(out, c.high.value(row));
        push_f64(out, c.low.value(row));
        push_f64(out, c.close.value(row));
        push_f64(out, c.volume.value(row));
        if c.vwap.is_null(row) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            push_f64(out, c.vwap.value(row));
        }
        if c.trade_count.is_null(row) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            push_i64(out, c.trade_count.value(row));
        }
    }
}

fn push_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
}

fn push_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&value.to_bits().to_be_bytes());
}

/// Incremental decoder of binary COPY output with the nine bar columns in order.
#[derive(Debug)]
pub(crate) struct CopyDecoder {
    pending: Vec<u8>,
    header_done: bool,
    finished: bool,
    builder: BarBatchBuilder,
    batch_rows: usize,
}

impl CopyDecoder {
    /// A decoder yielding batches of at most `batch_rows` rows.
    pub(crate) fn new(batch_rows: usize) -> Self {
        let batch_rows = batch_rows.max(1);
        CopyDecoder {
            pending: Vec::new(),
            header_done: false,
            finished: false,
            builder: BarBatchBuilder::with_capacity(batch_rows.min(65_536)),
            batch_rows,
        }
    }

    /// Feeds one chunk; full batches are pushed to `ready`.
    pub(crate) fn feed(&mut self, chunk: &[u8], ready: &mut Vec<BarBatch>) -> Result<(), StoreError> {
        // Decode straight from the chunk when nothing is pending; keep only a partial tuple.
        let owned;
        let data: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(chunk);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        let mut at = 0;
        if !self.header_done {
            if data.len() < 19 {
                self.pending = data.to_vec();
                return Ok(());
            }
            if &data[..11] != SIGNATURE {
                return Err(corrupt("the COPY output does not start with the binary signature"));
            }
            let extension = usize::try_from(read_i32(data, 15))
                .map_err(|_| corrupt("the COPY header extension length is negative"))?;
            at = 19 + extension;
            if data.len() < at {
                self.pending = data.to_vec();
                return Ok(());
            }
            self.header_done = true;
        }
        while at < data.len() {
            match self.decode_tuple(&data[at..])? {
                Some(used) => at += used,
                None => break,
            }
            if self.finished {
                at = data.len();
                break;
            }
            if self.builder.len() >= self.batch_rows {
                let full = std::mem::replace(&mut self.builder, BarBatchBuilder::with_capacity(self.batch_rows));
                ready.push(full.finish());
            }
        }
        self.pending = data[at..].to_vec();
        Ok(())
    }

    /// Ends the input; returns the last partial batch. Fails if the data was cut short.
    pub(crate) fn finish(self) -> Result<Option<BarBatch>, StoreError> {
        if !self.finished || !self.pending.is_empty() {
            return Err(corrupt("the COPY output ended in the middle of a row"));
        }
        Ok(if self.builder.is_empty() { None } else { Some(self.builder.finish()) })
    }

    /// Decodes one tuple at the start of `data`; `None` if it is incomplete.
    fn decode_tuple(&mut self, data: &[u8]) -> Result<Option<usize>, StoreError> {
        if data.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([data[0], data[1]]);
        if fields == -1 {
            self.finished = true;
            return Ok(Some(2));
        }
        if fields != FIELDS {
            return Err(corrupt(&format!("a COPY row has {fields} fields, expected {FIELDS}")));
        }
        let mut at = 2;
        let mut values: [Option<&[u8]>; 9] = [None; 9];
        for value in &mut values {
            if data.len() < at + 4 {
                return Ok(None);
            }
            let len = read_i32(data, at);
            at += 4;
            if len < 0 {
                continue;
            }
            let len = len as usize;
            if data.len() < at + len {
                return Ok(None);
            }
            *value = Some(&data[at..at + len]);
            at += len;
        }
        let text = values[0].ok_or_else(|| corrupt("a COPY row has a NULL symbol"))?;
        let symbol = std::str::from_utf8(text).map_err(|_| corrupt("a symbol is not UTF-8"))?;
        let required = |index: usize, name: &str| -> Result<[u8; 8], StoreError> {
            let bytes = values[index].ok_or_else(|| corrupt(&format!("a COPY row has a NULL {name}")))?;
            bytes.try_into().map_err(|_| corrupt(&format!("{name} is not 8 bytes")))
        };
        let optional = |index: usize| -> Result<Option<[u8; 8]>, StoreError> {
            values[index]
                .map(|bytes| bytes.try_into().map_err(|_| corrupt("an optional column is not 8 bytes")))
                .transpose()
        };
        let timestamp = i64::from_be_bytes(required(1, "timestamp")?)
            .checked_add(PG_EPOCH_OFFSET_MICROS)
            .ok_or_else(|| corrupt("a timestamp is out of range"))?;
        let float = |bytes: [u8; 8]| f64::from_bits(u64::from_be_bytes(bytes));
        self.builder.push_parts(
            symbol,
            Timestamp(timestamp),
            [
                float(required(2, "open")?),
                float(required(3, "high")?),
                float(required(4, "low")?),
                float(required(5, "close")?),
                float(required(6, "volume")?),
            ],
            optional(7)?.map(float),
            optional(8)?.map(i64::from_be_bytes),
        );
        Ok(Some(at))
    }
}

fn read_i32(data: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn corrupt(what: &str) -> StoreError {
    StoreError::internal(BACKEND, format!("reading bars: {what}"))
}

#[cfg(test)]
mod tests {
    use strata_core::Bar;

    use super::*;

    fn bars() -> Vec<Bar> {
        (0..1000)
            .map(|i| Bar {
                symbol: if i % 2 == 0 { "AAPL".into() } else { "^GSPC".into() },
                timestamp: Timestamp(-2_000_000_000_000_000 + i * 60_000_000),
                open: 1.0 + i as f64 / 7.0,
                high: 2.0 + i as f64 / 7.0,
                low: 0.5,
                close: 1.5 + i as f64 / 7.0,
                volume: (i as f64) * 1e9,
                vwap: (i % 3 == 0).then_some(1.25),
                trade_count: (i % 5 == 0).then_some(i * 1_000_000_000),
            })
            .collect()
    }

    #[test]
    fn corrupt_streams_that_once_overflowed_are_errors() {
        // A negative header extension length (found by property testing: `19 + extension` overflowed).
        let mut data = header();
        data[15..19].copy_from_slice(&(-1i32).to_be_bytes());
        let mut ready = Vec::new();
        let error = CopyDecoder::new(10).feed(&data, &mut ready).unwrap_err();
        assert!(error.to_string().contains("extension length is negative"), "{error}");
        // A timestamp at i64::MAX microseconds since 2000 (adding the Unix offset overflowed).
        let bars = bars();
        let batch = BarBatch::from_bars(&bars[..1]);
        let mut data = header();
        let start = data.len();
        encode_rows(&batch, 0, 1, &mut data);
        data.extend_from_slice(&trailer());
        let row = &mut data[start..];
        let symbol_len = i32::from_be_bytes(row[2..6].try_into().unwrap()) as usize;
        let timestamp_at = 6 + symbol_len + 4;
        row[timestamp_at..timestamp_at + 8].copy_from_slice(&i64::MAX.to_be_bytes());
        let mut decoder = CopyDecoder::new(10);
        let outcome = decoder.feed(&data, &mut ready).and_then(|()| decoder.finish().map(|_| ()));
        let error = outcome.unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");
    }

    #[test]
    fn encode_then_decode_in_any_chunking_is_the_identity() {
        let bars = bars();
        let batch = BarBatch::from_bars(&bars);
        let mut data = header();
        encode_rows(&batch, 0, batch.len(), &mut data);
        data.extend_from_slice(&trailer());
        for chunk_size in [1, 7, 19, 64, 1000, data.len()] {
            let mut decoder = CopyDecoder::new(300);
            let mut ready = Vec::new();
            for chunk in data.chunks(chunk_size) {
                decoder.feed(chunk, &mut ready).unwrap();
            }
            ready.extend(decoder.finish().unwrap());
            assert!(ready.iter().all(|b| b.len() <= 300));
            let decoded: Vec<Bar> = ready.iter().flat_map(BarBatch::to_bars).collect();
            assert_eq!(decoded.len(), bars.len());
            for (a, b) in decoded.iter().zip(&bars) {
                assert_eq!(a.symbol, b.symbol);
                assert_eq!(a.timestamp, b.timestamp);
                assert_eq!(a.open.to_bits(), b.open.to_bits());
                assert_eq!(a.volume.to_bits(), b.volume.to_bits());
                assert_eq!(a.vwap.map(f64::to_bits), b.vwap.map(f64::to_bits));
                assert_eq!(a.trade_count, b.trade_count);
            }
        }
    }

    #[test]
    fn truncated_output_is_an_error_not_a_short_result() {
        let batch = BarBatch::from_bars(&bars()[..3]);
        let mut data = header();
        encode_rows(&batch, 0, 3, &mut data);
        let mut decoder = CopyDecoder::new(10);
        let mut ready = Vec::new();
        decoder.feed(&data[..data.len() - 5], &mut ready).unwrap();
        assert!(decoder.finish().is_err());
        let mut bad = data.clone();
        bad[0] = b'X';
        assert!(CopyDecoder::new(10).feed(&bad, &mut Vec::new()).is_err());
    }
}
