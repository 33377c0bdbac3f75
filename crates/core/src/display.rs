//! Small formatting helpers shared by the programs that print figures for
//! people (the `strata` binary and the benchmarks).

/// `1234567` as `1,234,567`.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Lays out a table for a terminal: a header line then one line per row,
/// columns two spaces apart, the first `left_aligned` columns padded on the
/// right and the rest (numbers) on the left, trailing blanks trimmed.
pub fn aligned_table<R: AsRef<[String]>>(header: &[&str], rows: &[R], left_aligned: usize) -> Vec<String> {
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            let cells = rows.iter().filter_map(|row| row.as_ref().get(column)).map(String::len);
            cells.chain([header[column].len()]).max().unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (column, (cell, width)) in cells.zip(&widths).enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            let padded = if column < left_aligned { format!("{cell:<width$}") } else { format!("{cell:>width$}") };
            line.push_str(&padded);
        }
        line.trim_end().to_string()
    };
    let mut lines = vec![line(&mut header.iter().copied())];
    lines.extend(rows.iter().map(|row| line(&mut row.as_ref().iter().map(String::as_str))));
    lines
}

#[cfg(test)]
mod tests {
    use super::{aligned_table, group_thousands};

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let rows = vec![vec!["AAPL".to_string(), "1,234".to_string()], vec!["^GSPC".to_string(), "5".to_string()]];
        assert_eq!(aligned_table(&["symbol", "rows"], &rows, 1), ["symbol   rows", "AAPL    1,234", "^GSPC       5"]);
        assert_eq!(aligned_table::<Vec<String>>(&["a", "b"], &[], 1), ["a  b"]);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(17_185), "17,185");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(11_456_230_000), "11,456,230,000");
    }
}
