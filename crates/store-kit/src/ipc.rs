//! One [`BarBatch`] as bytes and back: an Arrow IPC stream (the schema, then
//! one record batch). Floats keep their bits, nulls stay null and the
//! timestamp keeps its unit and UTC zone, so a batch that crosses a socket
//! or waits in a journal comes back bit-exact.

use std::io;

use arrow_array::RecordBatch;
use strata_core::{BarBatch, Result, StoreError};

/// `batch` as an Arrow IPC stream. A failure (a bug: the batch has the
/// canonical schema) is an `Internal` error of `backend`, the name of the
/// store or transport that encodes (`socket`, `journal`).
pub fn encode_batch(batch: &BarBatch, backend: &'static str) -> Result<Vec<u8>> {
    let fail = |error: &dyn std::fmt::Display| {
        StoreError::internal(backend, format!("encoding a batch of {} bars as Arrow IPC: {error}", batch.len()))
    };
    let record = batch.record_batch();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(
        Vec::with_capacity(record.get_array_memory_size() + 1024),
        &record.schema(),
    )
    .map_err(|error| fail(&error))?;
    writer.write(record).map_err(|error| fail(&error))?;
    writer.finish().map_err(|error| fail(&error))?;
    writer.into_inner().map_err(|error| fail(&error))
}

/// The batch of an Arrow IPC stream written by [`encode_batch`], checked
/// against the canonical schema (`BarBatch::try_new`). Bytes that are not
/// such a stream, or hold other than exactly one record batch, are an
/// `Internal` error of `backend`.
pub fn decode_batch(bytes: &[u8], backend: &'static str) -> Result<BarBatch> {
    let fail = |error: String| StoreError::internal(backend, format!("decoding an Arrow IPC batch: {error}"));
    let reader =
        arrow_ipc::reader::StreamReader::try_new(io::Cursor::new(bytes), None).map_err(|e| fail(e.to_string()))?;
    let mut batches: Vec<RecordBatch> = Vec::with_capacity(1);
    for batch in reader {
        batches.push(batch.map_err(|e| fail(e.to_string()))?);
    }
    match batches.len() {
        1 => BarBatch::try_new(batches.remove(0)),
        count => Err(fail(format!("expected one record batch, found {count}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strata_core::{Bar, Timestamp};

    use super::*;

    #[test]
    fn a_batch_round_trips_bit_exactly() {
        let bar = |seconds: i64, close: f64, vwap: Option<f64>, trades: Option<i64>| Bar {
            symbol: "AAPL".to_string(),
            timestamp: Timestamp(seconds * 1_000_000),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: 10.0,
            vwap,
            trade_count: trades,
        };
        let batch = BarBatch::from_bars(&[
            bar(0, 0.1 + 0.2, Some(f64::from_bits(0x3FF0_0000_0000_0001)), Some(3)),
            bar(60, -0.0, None, None),
        ]);
        let decoded = decode_batch(&encode_batch(&batch, "test").unwrap(), "test").unwrap();
        assert_eq!(decoded, batch);
        let (got, want) = (decoded.to_bars(), batch.to_bars());
        assert_eq!(got[0].close.to_bits(), want[0].close.to_bits());
        assert_eq!(got[1].close.to_bits(), (-0.0f64).to_bits());
        assert_eq!(got[0].vwap.map(f64::to_bits), Some(0x3FF0_0000_0000_0001));
        assert_eq!((got[1].vwap, got[1].trade_count), (None, None));
        let empty = decode_batch(&encode_batch(&BarBatch::empty(), "test").unwrap(), "test").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn bytes_that_are_not_a_batch_are_an_internal_error_of_the_caller() {
        let error = decode_batch(b"not arrow", "journal").unwrap_err();
        assert!(matches!(error, StoreError::Internal { .. }), "{error:?}");
        assert_eq!(error.backend(), Some("journal"));
    }
}
