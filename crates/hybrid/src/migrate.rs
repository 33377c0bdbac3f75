//! Copy and verify between any two market-data stores, proved by (symbol, day) digests.
//!
//! This is the engine of `strata verify A B [--repair]` and `strata copy A B`.
//! Both stores are plain [`MarketDataStore`]s, so any pair of backends works
//! (DuckDB to PostgreSQL, EFS to DuckDB, a hybrid stack to its primary, ...):
//! the only thing compared is the [`DayDigest`] of every (symbol, UTC day),
//! which every backend computes identically for equal data
//! ([`strata_core::digest`]).
//!
//! - [`compare`] asks both stores for their digests of a [`Selection`] at once
//!   and merge-walks the two sorted lists into a [`Comparison`].
//! - [`repair`] copies exactly the days a comparison found different from the
//!   source to the target, then compares again.
//! - [`copy`] is [`compare`] then [`repair`]: it copies only the days that
//!   differ, so a second run over equal stores copies nothing and a rerun
//!   after a kill does only what is left.
//!
//! # What a copy does to the target
//!
//! The target is made equal to the source *inside the selection*: a day the
//! target holds and the source lacks (`ExtraInTarget`) is deleted from the
//! target, like `rsync --delete`. Copying a small store over a larger one
//! without a selection therefore removes the larger one's other symbols and
//! days; use a selection to copy a part.
//!
//! # Chunks
//!
//! Differing days are copied in chunks: consecutive differing days of one
//! symbol (no equal day between them), at most [`CHUNK_ROWS`] source rows by
//! the digest counts and at most [`CHUNK_DAYS`] days. A chunk whose days the
//! target holds any rows of is first deleted from the target
//! (`delete_bars(symbol, [first day 00:00 UTC, day after the last 00:00 UTC))`,
//! clamped to the selection); then the source's rows of that range are
//! streamed (`query_bars`, ascending) and each batch is written with
//! `write_bars`.
//!
//! # Not atomic, but resumable
//!
//! A chunk is not one transaction. A kill (or an error) between the delete
//! and the last write of a chunk leaves those days missing or partial in the
//! target; a reader of the target may see that gap until a rerun, whose
//! digest comparison finds the days and copies them again. A kill loses at
//! most one chunk of work; every earlier chunk is in the target and compares
//! equal on the rerun.
//!
//! # Journaled writes
//!
//! A target that acknowledges a batch as [`Durability::Journaled`] (a hybrid
//! store whose primary is down) has not stored it where its digest looks yet.
//! Such rows count as copied (and also in [`CopyReport::rows_journaled`]),
//! but the verification after the copy compares what the target really
//! holds, so those days still differ and the report is not verified: rerun
//! the copy once the journal has been replayed.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::NaiveDate;
use futures::StreamExt as _;
use serde::Serialize;
use strata_core::{
    BarQuery, DayDigest, DigestQuery, Durability, MarketDataStore, Order, Result, Symbol, TimeRange, Timestamp,
};

/// A chunk holds at most this many source rows (by the digest counts), unless one day alone has more.
pub const CHUNK_ROWS: u64 = 200_000;

/// A chunk spans at most this many differing days.
pub const CHUNK_DAYS: usize = 366;

/// What to compare or copy: some symbols (empty = every symbol) and an
/// optional half-open time range `[start, end)`.
///
/// A bound inside a day cuts that day: only its bars inside the range are
/// compared, deleted and copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// Symbols to include; empty means every symbol of either store.
    pub symbols: Vec<Symbol>,
    /// Inclusive lower bound.
    pub start: Option<Timestamp>,
    /// Exclusive upper bound.
    pub end: Option<Timestamp>,
}

/// One (symbol, day) whose digests differ between the two stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DayDifference {
    /// The source has the day, the target has no rows on it.
    MissingInTarget {
        /// The source's digest.
        source: DayDigest,
    },
    /// The target has rows on a day the source has none on.
    ExtraInTarget {
        /// The target's digest.
        target: DayDigest,
    },
    /// Both have the day, with different rows or values.
    Differs {
        /// The source's digest.
        source: DayDigest,
        /// The target's digest.
        target: DayDigest,
    },
}

/// The outcome of [`compare`]: how many (symbol, day)s were compared, how
/// many are equal, and every one that differs, in (symbol, day) order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// What was compared.
    pub selection: Selection,
    /// (symbol, day)s present in either store (the union).
    pub days: usize,
    /// (symbol, day)s with equal digests in both stores.
    pub equal: usize,
    /// The (symbol, day)s that differ, ordered by (symbol, day).
    pub differences: Vec<DayDifference>,
    /// Rows of the source inside the selection.
    pub source_rows: u64,
    /// Rows of the target inside the selection.
    pub target_rows: u64,
    /// Symbols of the selection the source has no rows of inside it
    /// (nothing to copy; not an error).
    pub missing_symbols: Vec<Symbol>,
    /// For each difference, whether it directly follows the previous one:
    /// same symbol and no equal day between them. Copy chunks never span a
    /// break, so an equal day is never deleted and rewritten.
    #[serde(skip)]
    follows_previous: Vec<bool>,
}

/// Where a copy stands, reported after each chunk (and once before the first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CopyProgress {
    /// Differing days handled so far.
    pub days_done: usize,
    /// Differing days to handle in all.
    pub days_total: usize,
    /// Rows written to the target so far.
    pub rows_copied: u64,
}

/// The outcome of [`copy`] or [`repair`]: the comparison before, what was
/// done, and the comparison after, which is the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// The comparison the copy worked from.
    pub before: Comparison,
    /// Differing days handled (copied, or deleted when the source has none of their rows).
    pub days_copied: usize,
    /// Chunks handled (each one delete and one source query at most).
    pub chunks: usize,
    /// Rows the target acknowledged, committed or journaled.
    pub rows_copied: u64,
    /// Of `rows_copied`, those the target only journaled: they are not in
    /// the target yet, so `after` still shows their days as different.
    pub rows_journaled: u64,
    /// Rows deleted from the target before copying (replaced or extra rows).
    pub rows_deleted: u64,
    /// A fresh comparison of the same selection after the copy.
    pub after: Comparison,
}

/// Compares the (symbol, day) digests of `source` and `target` inside `selection`.
///
/// Both digests are computed concurrently; the lists (sorted by (symbol,
/// day) by the port's contract, sorted here again if a store did not) are
/// merge-walked, so the cost is one digest per store and linear time.
pub async fn compare(
    source: &dyn MarketDataStore,
    target: &dyn MarketDataStore,
    selection: &Selection,
) -> Result<Comparison> {
    let (source_digests, target_digests) =
        futures::future::join(source.digest(selection.digest_query()), target.digest(selection.digest_query())).await;
    Ok(Comparison::of_digests(selection.clone(), sorted(source_digests?), sorted(target_digests?)))
}

/// Copies from `source` to `target` every (symbol, day) of `selection` whose
/// digest differs, then compares again.
///
/// Returns `Ok` with the report whether or not the stores ended equal:
/// [`CopyReport::is_verified`] is the verdict (a journaled target or a
/// concurrent writer can leave days different). An error of either store
/// stops the copy where it is; a rerun continues from there.
pub async fn copy(
    source: &dyn MarketDataStore,
    target: &dyn MarketDataStore,
    selection: &Selection,
    progress: &(dyn Fn(CopyProgress) + Send + Sync),
) -> Result<CopyReport> {
    let before = compare(source, target, selection).await?;
    repair(source, target, &before, progress).await
}

/// Copies exactly the days `comparison` found different from `source` to
/// `target` (deleting the target's rows of those days first), then compares
/// the comparison's selection again.
///
/// `progress` is called once before the first chunk and after each chunk.
pub async fn repair(
    source: &dyn MarketDataStore,
    target: &dyn MarketDataStore,
    comparison: &Comparison,
    progress: &(dyn Fn(CopyProgress) + Send + Sync),
) -> Result<CopyReport> {
    let chunks = plan_chunks(comparison, ChunkLimits { rows: CHUNK_ROWS, days: CHUNK_DAYS });
    let mut state = CopyProgress { days_done: 0, days_total: comparison.differences.len(), rows_copied: 0 };
    let (mut rows_deleted, mut rows_journaled) = (0u64, 0u64);
    progress(state);
    for chunk in &chunks {
        let symbol = Symbol::new(chunk.symbol.as_str())?;
        let range = comparison
            .selection
            .clamp(day_start(chunk.first), day_start(chunk.last).plus_micros(Timestamp::MICROS_PER_DAY))?;
        if chunk.target_rows > 0 {
            rows_deleted += target.delete_bars(&symbol, range).await?;
        }
        if chunk.source_rows > 0 {
            let query = BarQuery {
                symbols: vec![symbol],
                start: Some(range.start),
                end: Some(range.end),
                limit: None,
                order: Order::Ascending,
            };
            let mut batches = source.query_bars(query);
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                if batch.is_empty() {
                    continue;
                }
                let report = target.write_bars(batch).await?;
                state.rows_copied += report.rows;
                if report.durability == Durability::Journaled {
                    rows_journaled += report.rows;
                }
            }
        }
        state.days_done += chunk.days;
        tracing::debug!(
            symbol = %chunk.symbol, first = %chunk.first, last = %chunk.last, days = chunk.days,
            done = state.days_done, total = state.days_total, "copied a chunk"
        );
        progress(state);
    }
    let after = compare(source, target, &comparison.selection).await?;
    Ok(CopyReport {
        before: comparison.clone(),
        days_copied: state.days_done,
        chunks: chunks.len(),
        rows_copied: state.rows_copied,
        rows_journaled,
        rows_deleted,
        after,
    })
}

impl Selection {
    /// Every symbol, all time.
    pub fn all() -> Self {
        Selection::default()
    }

    /// The digest query of this selection.
    pub fn digest_query(&self) -> DigestQuery {
        DigestQuery { symbols: self.symbols.clone(), start: self.start, end: self.end }
    }

    /// The bar query of this selection (every bar, ascending).
    pub fn bar_query(&self) -> BarQuery {
        BarQuery { symbols: self.symbols.clone(), start: self.start, end: self.end, ..BarQuery::default() }
    }

    /// `[start, end)` cut to this selection's bounds.
    fn clamp(&self, start: Timestamp, end: Timestamp) -> Result<TimeRange> {
        let start = self.start.map_or(start, |bound| bound.max(start));
        let end = self.end.map_or(end, |bound| bound.min(end));
        TimeRange::new(start, end.max(start))
    }
}

impl DayDifference {
    /// The symbol of the day.
    pub fn symbol(&self) -> &str {
        &self.any_digest().symbol
    }

    /// The UTC day.
    pub fn day(&self) -> NaiveDate {
        self.any_digest().day
    }

    /// The source's digest of the day, when the source has rows on it.
    pub fn source(&self) -> Option<&DayDigest> {
        match self {
            DayDifference::MissingInTarget { source } | DayDifference::Differs { source, .. } => Some(source),
            DayDifference::ExtraInTarget { .. } => None,
        }
    }

    /// The target's digest of the day, when the target has rows on it.
    pub fn target(&self) -> Option<&DayDigest> {
        match self {
            DayDifference::ExtraInTarget { target } | DayDifference::Differs { target, .. } => Some(target),
            DayDifference::MissingInTarget { .. } => None,
        }
    }

    /// `missing_in_target`, `extra_in_target` or `differs` (as in the JSON).
    pub fn kind(&self) -> &'static str {
        match self {
            DayDifference::MissingInTarget { .. } => "missing_in_target",
            DayDifference::ExtraInTarget { .. } => "extra_in_target",
            DayDifference::Differs { .. } => "differs",
        }
    }

    /// One line: `AAPL 2024-01-02: 390 rows (hash 0123456789abcdef) in source, 389 rows (hash ...) in target`.
    pub fn to_text(&self) -> String {
        fn side(digest: Option<&DayDigest>, name: &str) -> String {
            match digest {
                Some(digest) => format!("{} rows (hash {}) in {name}", digest.rows, digest.hash_hex()),
                None => format!("no rows in {name}"),
            }
        }
        format!(
            "{} {}: {}, {}",
            self.symbol(),
            self.day(),
            side(self.source(), "source"),
            side(self.target(), "target")
        )
    }

    /// Whichever digest the difference has (both name the same symbol and day).
    fn any_digest(&self) -> &DayDigest {
        match self {
            DayDifference::MissingInTarget { source } | DayDifference::Differs { source, .. } => source,
            DayDifference::ExtraInTarget { target } => target,
        }
    }
}

impl Comparison {
    /// True when every compared (symbol, day) has equal digests in both stores.
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }

    /// How many differences are of each kind: (missing in target, extra in target, differing).
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |kind: &str| self.differences.iter().filter(|difference| difference.kind() == kind).count();
        (count("missing_in_target"), count("extra_in_target"), count("differs"))
    }

    /// The differing days (up to `limit` of them, then how many more), a
    /// summary line, and the selected symbols the source lacks.
    pub fn to_text(&self, limit: usize) -> String {
        let mut text = String::new();
        for difference in self.differences.iter().take(limit) {
            let _ = writeln!(text, "{}", difference.to_text());
        }
        if self.differences.len() > limit {
            let more = self.differences.len() - limit;
            let _ = writeln!(text, "... and {more} more differing {}", if more == 1 { "day" } else { "days" });
        }
        if self.is_equal() {
            let _ = writeln!(text, "equal: {} days, {} rows in both", self.days, self.source_rows);
        } else {
            let (missing, extra, differs) = self.counts();
            let _ = writeln!(
                text,
                "{} of {} days differ ({missing} missing in target, {extra} only in target, {differs} different); \
                 {} rows in source, {} rows in target",
                self.differences.len(),
                self.days,
                self.source_rows,
                self.target_rows
            );
        }
        if !self.missing_symbols.is_empty() {
            let names: Vec<&str> = self.missing_symbols.iter().map(Symbol::as_str).collect();
            let _ = writeln!(text, "not in source (nothing to copy): {}", names.join(", "));
        }
        text
    }

    /// Merge-walks two digest lists sorted by (symbol, day).
    fn of_digests(selection: Selection, source: Vec<DayDigest>, target: Vec<DayDigest>) -> Comparison {
        let source_symbols: BTreeSet<&str> = source.iter().map(|digest| digest.symbol.as_str()).collect();
        let missing_symbols =
            selection.symbols.iter().filter(|symbol| !source_symbols.contains(symbol.as_str())).cloned().collect();
        let mut comparison = Comparison {
            source_rows: source.iter().map(|digest| digest.rows).sum(),
            target_rows: target.iter().map(|digest| digest.rows).sum(),
            missing_symbols,
            selection,
            ..Comparison::default()
        };
        // Whether the last (symbol, day) walked differed, and its symbol.
        let mut previous: Option<(String, bool)> = None;
        let mut source = source.into_iter().peekable();
        let mut target = target.into_iter().peekable();
        loop {
            let order = match (source.peek(), target.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(left), Some(right)) => (&left.symbol, left.day).cmp(&(&right.symbol, right.day)),
            };
            let difference = match order {
                Ordering::Less => source.next().map(|source| DayDifference::MissingInTarget { source }),
                Ordering::Greater => target.next().map(|target| DayDifference::ExtraInTarget { target }),
                Ordering::Equal => match (source.next(), target.next()) {
                    (Some(source), Some(target)) if source.rows == target.rows && source.hash == target.hash => {
                        comparison.days += 1;
                        comparison.equal += 1;
                        previous = Some((source.symbol, false));
                        continue;
                    }
                    (Some(source), Some(target)) => Some(DayDifference::Differs { source, target }),
                    _ => None,
                },
            };
            let Some(difference) = difference else { break };
            comparison.days += 1;
            let follows = matches!(&previous, Some((symbol, true)) if symbol == difference.symbol());
            previous = Some((difference.symbol().to_string(), true));
            comparison.follows_previous.push(follows);
            comparison.differences.push(difference);
        }
        comparison
    }
}

impl CopyReport {
    /// True when the comparison after the copy found every day equal: the proof a copy succeeded.
    pub fn is_verified(&self) -> bool {
        self.after.is_equal()
    }

    /// What was copied and the verdict of the comparison after it (with up to ten days still differing).
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        if self.before.is_equal() {
            let _ = writeln!(text, "nothing to copy: {} days already equal", self.before.days);
        } else {
            let _ = writeln!(
                text,
                "copied {} of {} differing days in {} chunks: {} rows written, {} rows deleted first",
                self.days_copied,
                self.before.differences.len(),
                self.chunks,
                self.rows_copied,
                self.rows_deleted
            );
        }
        if self.rows_journaled > 0 {
            let _ = writeln!(
                text,
                "{} of those rows were journaled, not committed: the target holds them only after its journal is \
                 replayed (then copy again to verify)",
                self.rows_journaled
            );
        }
        if self.is_verified() {
            let _ = writeln!(text, "verified: {} days, {} rows equal in both", self.after.days, self.after.source_rows);
        } else {
            let _ = writeln!(text, "NOT verified: after the copy {} days still differ", self.after.differences.len());
            text.push_str(&self.after.to_text(10));
        }
        if self.is_verified() && !self.after.missing_symbols.is_empty() {
            let names: Vec<&str> = self.after.missing_symbols.iter().map(Symbol::as_str).collect();
            let _ = writeln!(text, "not in source (nothing to copy): {}", names.join(", "));
        }
        text
    }
}

/// The bounds of one chunk.
#[derive(Debug, Clone, Copy)]
struct ChunkLimits {
    /// Most source rows (by the digest counts) in a chunk of more than one day.
    rows: u64,
    /// Most days in a chunk.
    days: usize,
}

/// Consecutive differing days of one symbol, copied with one delete and one query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    /// The symbol of every day in the chunk.
    symbol: String,
    /// The first differing day.
    first: NaiveDate,
    /// The last differing day (the range ends at the next midnight).
    last: NaiveDate,
    /// Differing days in the chunk (days between them that neither store holds are not counted).
    days: usize,
    /// Source rows of those days, by the digests.
    source_rows: u64,
    /// Target rows of those days, by the digests: when not zero the range is deleted first.
    target_rows: u64,
}

/// Groups the differences of `comparison` into chunks: a chunk never spans
/// two symbols or an equal day, and stays within `limits`.
fn plan_chunks(comparison: &Comparison, limits: ChunkLimits) -> Vec<Chunk> {
    // A comparison whose differences were edited no longer says which ones
    // are adjacent: copy day by day then, which is slower but never touches
    // an equal day.
    let adjacency_known = comparison.follows_previous.len() == comparison.differences.len();
    let mut chunks: Vec<Chunk> = Vec::new();
    for (index, difference) in comparison.differences.iter().enumerate() {
        let follows = adjacency_known && comparison.follows_previous[index];
        let source_rows = difference.source().map_or(0, |digest| digest.rows);
        let target_rows = difference.target().map_or(0, |digest| digest.rows);
        if let Some(chunk) = chunks.last_mut() {
            let fits = chunk.days < limits.days && chunk.source_rows + source_rows <= limits.rows;
            if follows && fits && chunk.symbol == difference.symbol() && chunk.last < difference.day() {
                chunk.last = difference.day();
                chunk.days += 1;
                chunk.source_rows += source_rows;
                chunk.target_rows += target_rows;
                continue;
            }
        }
        chunks.push(Chunk {
            symbol: difference.symbol().to_string(),
            first: difference.day(),
            last: difference.day(),
            days: 1,
            source_rows,
            target_rows,
        });
    }
    chunks
}

/// Midnight UTC of `day`.
fn day_start(day: NaiveDate) -> Timestamp {
    Timestamp::from_date(day)
}

/// `digests` in (symbol, day) order (the port promises it; a merge walk must not trust a broken promise).
fn sorted(mut digests: Vec<DayDigest>) -> Vec<DayDigest> {
    if !digests.is_sorted_by(|left, right| (&left.symbol, left.day) <= (&right.symbol, right.day)) {
        digests.sort_by(|left, right| (&left.symbol, left.day).cmp(&(&right.symbol, right.day)));
    }
    digests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(symbol: &str, day: u32, rows: u64, hash: u64) -> DayDigest {
        let day = NaiveDate::from_ymd_opt(2024, 1, day).unwrap_or_default();
        DayDigest { symbol: symbol.into(), day, rows, hash }
    }

    fn chunks_of(source: Vec<DayDigest>, target: Vec<DayDigest>, rows: u64, days: usize) -> Vec<(String, u32, u32)> {
        use chrono::Datelike as _;
        let comparison = Comparison::of_digests(Selection::all(), source, target);
        plan_chunks(&comparison, ChunkLimits { rows, days })
            .into_iter()
            .map(|chunk| (chunk.symbol, chunk.first.day(), chunk.last.day()))
            .collect()
    }

    fn expect(chunks: &[(&str, u32, u32)]) -> Vec<(String, u32, u32)> {
        chunks.iter().map(|(symbol, first, last)| ((*symbol).to_string(), *first, *last)).collect()
    }

    #[test]
    fn merge_walk_classifies_every_day() {
        let source = vec![digest("A", 1, 2, 10), digest("A", 2, 2, 20), digest("B", 1, 1, 5)];
        let target = vec![digest("A", 1, 2, 10), digest("A", 2, 2, 21), digest("A", 3, 1, 7), digest("C", 1, 1, 1)];
        let comparison = Comparison::of_digests(Selection::all(), source, target);
        assert_eq!((comparison.days, comparison.equal), (5, 1));
        let kinds: Vec<(&str, &str)> =
            comparison.differences.iter().map(|difference| (difference.symbol(), difference.kind())).collect();
        assert_eq!(
            kinds,
            [("A", "differs"), ("A", "extra_in_target"), ("B", "missing_in_target"), ("C", "extra_in_target")]
        );
        assert_eq!((comparison.source_rows, comparison.target_rows), (5, 6));
        assert_eq!(comparison.follows_previous, [false, true, false, false]);
    }

    #[test]
    fn chunks_break_at_equal_days_and_symbols() {
        let source = vec![digest("A", 1, 1, 1), digest("A", 2, 1, 2), digest("A", 3, 1, 3), digest("A", 5, 1, 5)];
        let target = vec![digest("A", 2, 1, 2), digest("B", 1, 1, 1), digest("B", 2, 1, 1)];
        assert_eq!(
            chunks_of(source, target, 1_000, 100),
            expect(&[("A", 1, 1), ("A", 3, 5), ("B", 1, 2)]),
            "day 2 of A is equal, so it splits A; days 3 and 5 have no equal day between them"
        );
    }

    #[test]
    fn chunks_respect_row_and_day_limits() {
        let source: Vec<DayDigest> = (1..=7).map(|day| digest("A", day, 10, u64::from(day))).collect();
        assert_eq!(
            chunks_of(source.clone(), Vec::new(), 25, 100),
            expect(&[("A", 1, 2), ("A", 3, 4), ("A", 5, 6), ("A", 7, 7)])
        );
        assert_eq!(chunks_of(source.clone(), Vec::new(), 1_000, 3), expect(&[("A", 1, 3), ("A", 4, 6), ("A", 7, 7)]));
        assert_eq!(
            chunks_of(source, Vec::new(), 5, 100).len(),
            7,
            "a day larger than the budget is a chunk of its own"
        );
    }

    #[test]
    fn edited_differences_are_copied_day_by_day() {
        let source: Vec<DayDigest> = (1..=3).map(|day| digest("A", day, 1, u64::from(day))).collect();
        let mut comparison = Comparison::of_digests(Selection::all(), source, Vec::new());
        comparison.differences.remove(1);
        let chunks = plan_chunks(&comparison, ChunkLimits { rows: 1_000, days: 100 });
        assert_eq!(chunks.len(), 2, "{chunks:?}");
    }

    #[test]
    fn clamp_cuts_day_ranges_to_the_selection() -> Result<()> {
        let selection = Selection { start: Some(Timestamp(100)), end: Some(Timestamp(200)), ..Selection::all() };
        assert_eq!(
            selection.clamp(Timestamp(0), Timestamp(1_000))?,
            TimeRange { start: Timestamp(100), end: Timestamp(200) }
        );
        assert_eq!(
            selection.clamp(Timestamp(150), Timestamp(160))?,
            TimeRange { start: Timestamp(150), end: Timestamp(160) }
        );
        let empty = selection.clamp(Timestamp(300), Timestamp(400))?;
        assert!(empty.start >= empty.end, "{empty:?}");
        Ok(())
    }
}
