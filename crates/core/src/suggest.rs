//! "Did you mean ...?" for names a user typed: which known names are close to
//! an unknown one (the same letters in another case, or a small edit
//! distance), and a short listing of the known names when none is close.
//! Pure functions, used by `strata query` and the GA's data checks.
//!
//! ```
//! use strata_core::suggest::{closest, did_you_mean};
//!
//! let known = ["AAPL", "MSFT", "^GSPC"];
//! assert_eq!(closest("aapl", known), ["AAPL"]);
//! assert_eq!(closest("APPL", known), ["AAPL"]);
//! assert!(closest("ZZZZ", known).is_empty());
//! assert_eq!(did_you_mean("msft", known).as_deref(), Some("did you mean MSFT?"));
//! ```

/// How many close names [`closest`] returns at most.
pub const MAX_SUGGESTIONS: usize = 5;

/// The largest edit distance at which `wanted` still counts as close: 1 for
/// names up to 5 characters, then one more per 3 characters.
fn threshold(wanted: &str) -> usize {
    (wanted.chars().count() / 3).max(1)
}

/// The optimal-string-alignment distance of `a` and `b` (insertions,
/// deletions, substitutions and swaps of two neighbours each cost 1),
/// ignoring ASCII case.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_uppercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_uppercase()).collect();
    // rows[i][j]: distance of a[..i] and b[..j]; three rows are enough.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The names of `known` close to `wanted`, best first, at most
/// [`MAX_SUGGESTIONS`]: first those equal to it ignoring case, then those
/// within a small edit distance (1 for short names, about a third of the
/// length for long ones), ties in `known`'s order. A name exactly equal to
/// `wanted` is not a suggestion.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let limit = threshold(wanted);
    let mut scored: Vec<(usize, usize, &'a str)> = known
        .into_iter()
        .enumerate()
        .filter(|(_, name)| *name != wanted)
        .filter_map(|(position, name)| {
            if name.eq_ignore_ascii_case(wanted) {
                return Some((0, position, name));
            }
            // Lengths that differ by more than the limit cannot be within it.
            if name.chars().count().abs_diff(wanted.chars().count()) > limit {
                return None;
            }
            let distance = edit_distance(wanted, name);
            (distance <= limit).then_some((distance, position, name))
        })
        .collect();
    scored.sort_unstable();
    let mut names: Vec<&'a str> = Vec::new();
    for (_, _, name) in scored {
        if !names.contains(&name) {
            names.push(name);
        }
        if names.len() == MAX_SUGGESTIONS {
            break;
        }
    }
    names
}

/// `"did you mean AAPL?"` (or `"did you mean AAPL or AAPL.L?"`) when some
/// name of `known` is close to `wanted`, else `None`.
pub fn did_you_mean<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let names = closest(wanted, known);
    match names.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean {one}?")),
        [first @ .., last] => Some(format!("did you mean {} or {last}?", first.join(", "))),
    }
}

/// Up to `max` of `known`, comma-separated, with `"and N more"` when there
/// are more: `"AAPL, MSFT, ^GSPC and 12 more"`.
pub fn listing<'a>(known: impl IntoIterator<Item = &'a str>, max: usize) -> String {
    let all: Vec<&str> = known.into_iter().collect();
    let shown = all.iter().take(max).copied().collect::<Vec<_>>().join(", ");
    match all.len().saturating_sub(max) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// What a store says about a symbol a user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum SymbolDiagnosis<'a> {
    /// Stored: the symbol's coverage (so a range without bars can be explained).
    Stored(&'a crate::SymbolSummary),
    /// Not stored, but close to stored names: "did you mean ...?".
    Close(String),
    /// Not stored and close to nothing.
    Unknown,
}

/// Diagnoses `wanted` against what `summary` holds.
pub fn diagnose<'a>(wanted: &str, summary: &'a crate::MarketSummary) -> SymbolDiagnosis<'a> {
    if let Some(entry) = summary.symbols.iter().find(|entry| entry.symbol == wanted) {
        return SymbolDiagnosis::Stored(entry);
    }
    match did_you_mean(wanted, summary.symbols.iter().map(|entry| entry.symbol.as_str())) {
        Some(hint) => SymbolDiagnosis::Close(hint),
        None => SymbolDiagnosis::Unknown,
    }
}

/// `the store holds 12 symbol(s): A, B, ... and 2 more`.
pub fn stored_listing(summary: &crate::MarketSummary, max: usize) -> String {
    let known = summary.symbols.iter().map(|entry| entry.symbol.as_str());
    format!("the store holds {} symbol(s): {}", summary.symbols.len(), listing(known, max))
}

/// Why `missing` (symbols a query asked for and got no row of) came back
/// empty, given what the store `described` holds: a symbol stored outside
/// the range (with its coverage), a close name (`aapl`: did you mean
/// `AAPL`?), the stored symbols (at most `max` named), or an empty store.
pub fn missing_symbol_hints(
    missing: &[&str],
    summary: &crate::MarketSummary,
    described: &str,
    max: usize,
) -> Vec<String> {
    if summary.symbols.is_empty() {
        return vec![format!(
            "the store ({described}) holds no bars; ingest some first, e.g. strata ingest data/sp500_daily.csv"
        )];
    }
    let mut lines = Vec::with_capacity(missing.len() + 1);
    let mut unmatched = false;
    for &wanted in missing {
        lines.push(match diagnose(wanted, summary) {
            SymbolDiagnosis::Stored(entry) => format!(
                "{wanted}: no bars in the requested range; the store has {} from {} to {}",
                entry.rows, entry.first, entry.last
            ),
            SymbolDiagnosis::Close(hint) => format!("{wanted}: no such symbol in the store; {hint}"),
            SymbolDiagnosis::Unknown => {
                unmatched = true;
                format!("{wanted}: no such symbol in the store")
            }
        });
    }
    if unmatched {
        lines.push(format!("{} (strata summary lists them)", stored_listing(summary, max)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_swaps_ignoring_case() {
        assert_eq!(edit_distance("AAPL", "AAPL"), 0);
        assert_eq!(edit_distance("aapl", "AAPL"), 0);
        assert_eq!(edit_distance("APPL", "AAPL"), 1);
        assert_eq!(edit_distance("AAPL", "APAL"), 1, "a swap of neighbours is one edit");
        assert_eq!(edit_distance("MSFT", "MSF"), 1);
        assert_eq!(edit_distance("", "ABC"), 3);
        assert_eq!(edit_distance("ABC", ""), 3);
        assert_eq!(edit_distance("ZZZZ", "AAPL"), 4);
        assert_eq!(edit_distance("^GSPC", "GSPC"), 1);
    }

    #[test]
    fn same_letters_in_another_case_come_first() {
        let known = ["AAPK", "AAPL", "aaPL", "MSFT"];
        assert_eq!(closest("aapl", known), ["AAPL", "aaPL", "AAPK"]);
        assert_eq!(closest("AAPL", known), ["aaPL", "AAPK"], "the exact name is not a suggestion");
    }

    #[test]
    fn typos_within_the_threshold_are_close() {
        let known = ["AAPL", "MSFT", "^GSPC", "BRK.B", "GOOGL"];
        assert_eq!(closest("APPL", known), ["AAPL"]);
        assert_eq!(closest("GSPC", known), ["^GSPC"]);
        assert_eq!(closest("GOOG", known), ["GOOGL"]);
        assert!(closest("ZZZZ", known).is_empty());
        assert!(closest("A", ["XY"]).is_empty());
        // Longer names tolerate more edits.
        assert_eq!(closest("SYNTHETIC01", ["SYNTHETIC001", "OTHER"]), ["SYNTHETIC001"]);
        assert!(closest("IBM", ["MSFT"]).is_empty());
    }

    #[test]
    fn at_most_a_few_suggestions_best_first() {
        let known: Vec<String> = (0..20).map(|i| format!("SY{i:02}")).collect();
        let names = closest("SY0", known.iter().map(String::as_str));
        assert_eq!(names.len(), MAX_SUGGESTIONS);
        assert_eq!(names[0], "SY00");
    }

    #[test]
    fn messages_read_well() {
        assert_eq!(did_you_mean("aapl", ["AAPL"]).as_deref(), Some("did you mean AAPL?"));
        assert_eq!(did_you_mean("aapl", ["AAPL", "AAPK"]).as_deref(), Some("did you mean AAPL or AAPK?"));
        assert_eq!(did_you_mean("aapl", ["AAPL", "AAPK", "AAP"]).as_deref(), Some("did you mean AAPL, AAPK or AAP?"));
        assert_eq!(did_you_mean("ZZZZ", ["AAPL"]), None);
        assert_eq!(listing(["A", "B"], 10), "A, B");
        assert_eq!(listing(["A", "B", "C"], 2), "A, B and 1 more");
        assert_eq!(listing([], 2), "");
    }

    #[test]
    fn missing_symbols_are_explained_by_what_the_store_holds() {
        let empty = crate::MarketSummary::default();
        let hints = missing_symbol_hints(&["AAPL"], &empty, "duckdb x.duckdb", 10);
        assert_eq!(hints.len(), 1);
        assert!(hints[0].starts_with("the store (duckdb x.duckdb) holds no bars"), "{hints:?}");
        let entry = |symbol: &str| crate::SymbolSummary {
            symbol: symbol.into(),
            first: crate::Timestamp(0),
            last: crate::Timestamp(86_400_000_000),
            rows: 2,
        };
        let summary = crate::MarketSummary { symbols: vec![entry("AAPL"), entry("MSFT")] };
        let hints = missing_symbol_hints(&["AAPL", "msft", "ZZZZ"], &summary, "memory", 1);
        assert!(hints[0].starts_with("AAPL: no bars in the requested range; the store has 2 from"), "{hints:?}");
        assert_eq!(hints[1], "msft: no such symbol in the store; did you mean MSFT?");
        assert_eq!(hints[2], "ZZZZ: no such symbol in the store");
        assert_eq!(hints[3], "the store holds 2 symbol(s): AAPL and 1 more (strata summary lists them)");
    }
}
