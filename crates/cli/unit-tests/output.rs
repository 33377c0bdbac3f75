//! Unit tests of `src/output.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn output_formats_are_the_file_formats_plus_the_table() {
    for format in [BarFileFormat::Csv, BarFileFormat::JsonLines, BarFileFormat::Parquet] {
        assert_eq!(OutputFormat::from(format).file_format(), Some(format));
    }
    assert_eq!(OutputFormat::Table.file_format(), None);
}

#[test]
fn floats_print_in_shortest_round_trip_form() {
    for text in ["877000000", "0.08388999999999999", "1229.22998", "11456230000", "0.0672"] {
        let value: f64 = text.parse().unwrap();
        assert_eq!(value.to_string(), text);
    }
}
