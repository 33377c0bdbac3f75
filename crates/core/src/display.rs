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

#[cfg(test)]
mod tests {
    use super::group_thousands;

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
