//! The canonical Arrow schema of bars and `BarBatch`, the unit bulk data moves in.
//!
//! | column | Arrow type | nullable |
//! |---|---|---|
//! | symbol | Utf8 | no |
//! | timestamp | Timestamp(Microsecond, "UTC") | no |
//! | open, high, low, close, volume | Float64 | no |
//! | vwap | Float64 | yes |
//! | trade_count | Int64 | yes |

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{ArrayBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::bar::{Bar, Timestamp};
use crate::error::{Result, StoreError};
use crate::validate::{ValidationReport, null_errors, validate_columns};

/// Column names in canonical order.
pub const COLUMNS: [&str; 9] = ["symbol", "timestamp", "open", "high", "low", "close", "volume", "vwap", "trade_count"];

/// The canonical bar schema, shared by every adapter.
pub fn bar_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let price = |name: &str| Field::new(name, DataType::Float64, false);
            Arc::new(Schema::new(vec![
                Field::new("symbol", DataType::Utf8, false),
                Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
                price("open"),
                price("high"),
                price("low"),
                price("close"),
                price("volume"),
                Field::new("vwap", DataType::Float64, true),
                Field::new("trade_count", DataType::Int64, true),
            ]))
        })
        .clone()
}

/// A `RecordBatch` known to have the canonical schema. Not yet validated:
/// call [`BarBatch::validate`] (every adapter does before writing).
#[derive(Debug, Clone, PartialEq)]
pub struct BarBatch {
    batch: RecordBatch,
}

impl BarBatch {
    /// Checks `batch` against the canonical schema and normalises it: columns
    /// are matched by name (any order), `vwap` and `trade_count` may be
    /// missing (filled with nulls), a timestamp without a zone or in another
    /// unit is converted to microseconds UTC, and integer volumes are widened
    /// to Float64. Unknown columns or wrong types are refused with a message.
    pub fn try_new(batch: RecordBatch) -> Result<Self> {
        let rows = batch.num_rows();
        let schema = batch.schema();
        if let Some(extra) = schema.fields().iter().find(|f| !COLUMNS.contains(&f.name().as_str())) {
            return Err(StoreError::invalid(format!(
                "unknown column {:?}; the bar columns are {}",
                extra.name(),
                COLUMNS.join(", ")
            )));
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(COLUMNS.len());
        let mut missing_values = Vec::new();
        for (field, name) in bar_schema().fields().iter().zip(COLUMNS) {
            let column = match batch.column_by_name(name) {
                Some(column) => normalise_column(name, column.clone())?,
                None if field.is_nullable() => arrow_array::new_null_array(field.data_type(), rows),
                None => return Err(StoreError::invalid(format!("missing column {name:?}"))),
            };
            if !field.is_nullable() {
                null_errors(name, column.as_ref(), &mut missing_values);
            }
            columns.push(column);
        }
        if !missing_values.is_empty() {
            missing_values.sort_by_key(|error| error.row);
            return Err(ValidationReport { total_rows: rows, errors: missing_values }.into());
        }
        let batch = RecordBatch::try_new(bar_schema(), columns)
            .map_err(|error| StoreError::invalid(format!("batch does not fit the bar schema: {error}")))?;
        Ok(BarBatch { batch })
    }

    /// Builds a batch from rows.
    pub fn from_bars(bars: &[Bar]) -> Self {
        let mut builder = BarBatchBuilder::with_capacity(bars.len());
        for bar in bars {
            builder.push(bar);
        }
        builder.finish()
    }

    /// An empty batch.
    pub fn empty() -> Self {
        BarBatch { batch: RecordBatch::new_empty(bar_schema()) }
    }

    /// Validates every row (see [`crate::validate`]); the report lists every bad row.
    pub fn validate(&self) -> Result<(), ValidationReport> {
        validate_columns(&self.columns())
    }

    /// Typed access to the columns.
    pub fn columns(&self) -> BarColumns<'_> {
        let column = |i: usize| self.batch.column(i);
        BarColumns {
            symbol: column(0).as_string::<i32>(),
            timestamp: column(1).as_primitive::<TimestampMicrosecondType>(),
            open: column(2).as_primitive::<Float64Type>(),
            high: column(3).as_primitive::<Float64Type>(),
            low: column(4).as_primitive::<Float64Type>(),
            close: column(5).as_primitive::<Float64Type>(),
            volume: column(6).as_primitive::<Float64Type>(),
            vwap: column(7).as_primitive::<Float64Type>(),
            trade_count: column(8).as_primitive::<Int64Type>(),
        }
    }

    /// The rows as `Bar`s (for small amounts and tests).
    pub fn to_bars(&self) -> Vec<Bar> {
        let c = self.columns();
        (0..self.len())
            .map(|i| Bar {
                symbol: c.symbol.value(i).to_string(),
                timestamp: Timestamp(c.timestamp.value(i)),
                open: c.open.value(i),
                high: c.high.value(i),
                low: c.low.value(i),
                close: c.close.value(i),
                volume: c.volume.value(i),
                vwap: c.vwap.is_valid(i).then(|| c.vwap.value(i)),
                trade_count: c.trade_count.is_valid(i).then(|| c.trade_count.value(i)),
            })
            .collect()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// The underlying Arrow batch.
    pub fn record_batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// Unwraps the Arrow batch.
    pub fn into_record_batch(self) -> RecordBatch {
        self.batch
    }

    /// A zero-copy slice of `len` rows from `offset`.
    pub fn slice(&self, offset: usize, len: usize) -> Self {
        BarBatch { batch: self.batch.slice(offset, len) }
    }
}

/// Builds a [`BarBatch`] row by row, straight into Arrow builders.
#[derive(Debug)]
pub struct BarBatchBuilder {
    symbol: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    /// open, high, low, close, volume
    values: [Float64Builder; 5],
    vwap: Float64Builder,
    trade_count: Int64Builder,
}

impl BarBatchBuilder {
    /// A builder with room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        BarBatchBuilder {
            symbol: StringBuilder::with_capacity(rows, rows * 6),
            timestamp: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            values: std::array::from_fn(|_| Float64Builder::with_capacity(rows)),
            vwap: Float64Builder::with_capacity(rows),
            trade_count: Int64Builder::with_capacity(rows),
        }
    }

    /// Appends one bar.
    pub fn push(&mut self, bar: &Bar) {
        self.push_parts(
            &bar.symbol,
            bar.timestamp,
            [bar.open, bar.high, bar.low, bar.close, bar.volume],
            bar.vwap,
            bar.trade_count,
        );
    }

    /// Appends one row from its parts; `values` are open, high, low, close, volume.
    pub fn push_parts(
        &mut self,
        symbol: &str,
        timestamp: Timestamp,
        values: [f64; 5],
        vwap: Option<f64>,
        trade_count: Option<i64>,
    ) {
        self.symbol.append_value(symbol);
        self.timestamp.append_value(timestamp.micros());
        for (builder, value) in self.values.iter_mut().zip(values) {
            builder.append_value(value);
        }
        self.vwap.append_option(vwap);
        self.trade_count.append_option(trade_count);
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.symbol.len()
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The finished batch.
    pub fn finish(mut self) -> BarBatch {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.symbol.finish()), Arc::new(self.timestamp.finish())];
        columns.extend(self.values.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        columns.push(Arc::new(self.vwap.finish()));
        columns.push(Arc::new(self.trade_count.finish()));
        let batch = RecordBatch::try_new(bar_schema(), columns).expect("columns built to the bar schema");
        BarBatch { batch }
    }
}

/// Borrowed, typed columns of a [`BarBatch`].
#[derive(Debug, Clone, Copy)]
pub struct BarColumns<'a> {
    /// symbol
    pub symbol: &'a StringArray,
    /// timestamp (microseconds UTC)
    pub timestamp: &'a TimestampMicrosecondArray,
    /// open
    pub open: &'a Float64Array,
    /// high
    pub high: &'a Float64Array,
    /// low
    pub low: &'a Float64Array,
    /// close
    pub close: &'a Float64Array,
    /// volume
    pub volume: &'a Float64Array,
    /// vwap (nullable)
    pub vwap: &'a Float64Array,
    /// trade_count (nullable)
    pub trade_count: &'a Int64Array,
}

fn normalise_column(name: &str, column: ArrayRef) -> Result<ArrayRef> {
    let wrong = |expected: &str| {
        StoreError::invalid(format!("column {name:?} has type {}; expected {expected}", column.data_type()))
    };
    Ok(match (name, column.data_type()) {
        ("symbol", DataType::Utf8) => column,
        ("symbol", DataType::LargeUtf8 | DataType::Utf8View) => {
            let values: StringArray = (0..column.len())
                .map(|i| {
                    column.is_valid(i).then(|| match column.data_type() {
                        DataType::LargeUtf8 => column.as_string::<i64>().value(i),
                        _ => column.as_string_view().value(i),
                    })
                })
                .collect();
            Arc::new(values)
        }
        ("symbol", _) => return Err(wrong("Utf8")),
        ("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some(zone))) if is_utc(zone) => {
            if zone.as_ref() == "UTC" {
                column
            } else {
                Arc::new(column.as_primitive::<TimestampMicrosecondType>().clone().with_timezone("UTC"))
            }
        }
        ("timestamp", DataType::Timestamp(unit, _)) => {
            let scale = |value: i64| match unit {
                TimeUnit::Second => value.checked_mul(1_000_000),
                TimeUnit::Millisecond => value.checked_mul(1_000),
                TimeUnit::Microsecond => Some(value),
                TimeUnit::Nanosecond => Some(value.div_euclid(1_000)),
            };
            let values = match unit {
                TimeUnit::Second => column.as_primitive::<arrow_array::types::TimestampSecondType>().values().clone(),
                TimeUnit::Millisecond => {
                    column.as_primitive::<arrow_array::types::TimestampMillisecondType>().values().clone()
                }
                TimeUnit::Microsecond => column.as_primitive::<TimestampMicrosecondType>().values().clone(),
                TimeUnit::Nanosecond => {
                    column.as_primitive::<arrow_array::types::TimestampNanosecondType>().values().clone()
                }
            };
            let converted: TimestampMicrosecondArray = values
                .iter()
                .enumerate()
                .map(|(i, value)| if column.is_valid(i) { scale(*value) } else { None })
                .collect();
            Arc::new(converted.with_timezone("UTC"))
        }
        ("timestamp", _) => return Err(wrong("Timestamp(Microsecond, \"UTC\")")),
        ("trade_count", DataType::Int64) => column,
        ("trade_count", DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16)
        | ("trade_count", DataType::UInt32 | DataType::Null) => {
            arrow_cast_int64(&column).ok_or_else(|| wrong("Int64"))?
        }
        ("trade_count", _) => return Err(wrong("Int64")),
        (_, DataType::Float64) => column,
        (_, DataType::Float32 | DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64)
        | (_, DataType::Null) => arrow_cast_f64(&column).ok_or_else(|| wrong("Float64"))?,
        _ => return Err(wrong("Float64")),
    })
}

/// Zone names that mean UTC; any other zone is still converted, since Arrow
/// timestamps are UTC instants whatever the zone label says.
fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "+00:00" | "Z" | "Etc/UTC" | "utc")
}

fn arrow_cast_f64(column: &ArrayRef) -> Option<ArrayRef> {
    let get = |i: usize| -> Option<f64> {
        if column.is_null(i) {
            return None;
        }
        Some(match column.data_type() {
            DataType::Float32 => column.as_primitive::<arrow_array::types::Float32Type>().value(i) as f64,
            DataType::Int32 => column.as_primitive::<arrow_array::types::Int32Type>().value(i) as f64,
            DataType::Int64 => column.as_primitive::<Int64Type>().value(i) as f64,
            DataType::UInt32 => column.as_primitive::<arrow_array::types::UInt32Type>().value(i) as f64,
            DataType::UInt64 => column.as_primitive::<arrow_array::types::UInt64Type>().value(i) as f64,
            _ => return None,
        })
    };
    if !matches!(
        column.data_type(),
        DataType::Float32 | DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64 | DataType::Null
    ) {
        return None;
    }
    Some(Arc::new((0..column.len()).map(get).collect::<Float64Array>()))
}

fn arrow_cast_int64(column: &ArrayRef) -> Option<ArrayRef> {
    let get = |i: usize| -> Option<i64> {
        if column.is_null(i) {
            return None;
        }
        Some(match column.data_type() {
            DataType::Int8 => column.as_primitive::<arrow_array::types::Int8Type>().value(i).into(),
            DataType::Int16 => column.as_primitive::<arrow_array::types::Int16Type>().value(i).into(),
            DataType::Int32 => column.as_primitive::<arrow_array::types::Int32Type>().value(i).into(),
            DataType::UInt8 => column.as_primitive::<arrow_array::types::UInt8Type>().value(i).into(),
            DataType::UInt16 => column.as_primitive::<arrow_array::types::UInt16Type>().value(i).into(),
            DataType::UInt32 => column.as_primitive::<arrow_array::types::UInt32Type>().value(i).into(),
            _ => return None,
        })
    };
    Some(Arc::new((0..column.len()).map(get).collect::<Int64Array>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(symbol: &str, micros: i64) -> Bar {
        Bar {
            symbol: symbol.into(),
            timestamp: Timestamp(micros),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 11_456_230_000.0,
            vwap: None,
            trade_count: Some(7),
        }
    }

    #[test]
    fn rows_round_trip_through_a_batch() {
        let bars = vec![bar("A", 1), bar("B", 2)];
        let batch = BarBatch::from_bars(&bars);
        assert_eq!(batch.record_batch().schema(), bar_schema());
        assert_eq!(batch.to_bars(), bars);
    }

    #[test]
    fn missing_optional_columns_are_filled_and_integer_volume_widened() {
        let full = BarBatch::from_bars(&[bar("A", 1)]).into_record_batch();
        let keep = [0usize, 1, 2, 3, 4, 5];
        let mut fields: Vec<Field> = keep.iter().map(|i| full.schema().field(*i).clone()).collect();
        let mut columns: Vec<ArrayRef> = keep.iter().map(|i| full.column(*i).clone()).collect();
        fields.push(Field::new("volume", DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from(vec![5_000_000_000])));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let normalised = BarBatch::try_new(batch).unwrap().to_bars();
        assert_eq!(normalised[0].volume, 5_000_000_000.0);
        assert_eq!(normalised[0].vwap, None);
        assert_eq!(normalised[0].trade_count, None);
    }

    #[test]
    fn unknown_and_missing_columns_are_refused() {
        let full = BarBatch::from_bars(&[bar("A", 1)]).into_record_batch();
        let renamed = Schema::new(
            full.schema()
                .fields()
                .iter()
                .map(|f| if f.name() == "open" { f.as_ref().clone().with_name("opn") } else { f.as_ref().clone() })
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(Arc::new(renamed), full.columns().to_vec()).unwrap();
        let message = BarBatch::try_new(batch).unwrap_err().to_string();
        assert!(message.contains("unknown column \"opn\""), "{message}");
    }
}
