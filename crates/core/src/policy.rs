//! Pure policies every store and client shares, so that each mechanism lives
//! once: when to retry and how long to wait ([`Backoff`], [`Idempotency`]),
//! which of several completions or releases of one lease counts
//! ([`first_completions`], [`first_releases`]), and when a lease ends
//! ([`expiry_micros`]). No I/O and no runtime: the tokio glue that sleeps and
//! loops is `strata-store-kit`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::evolution::{Completion, FencingToken, TaskKey};
use crate::synthetic::SplitMix64;

/// Whether an operation may be repeated after an unknown outcome (the
/// request may or may not have reached the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// A read: repeating it changes nothing.
    Safe,
    /// A write whose repetition leaves the same state (an upsert, a
    /// compare-and-set, a delete, a fenced completion).
    Idempotent,
    /// Repeating it could do it twice (granting leases, creating a named
    /// resource): retried only when nothing reached the server.
    NotIdempotent,
}

impl Idempotency {
    /// Whether a failure whose outcome is unknown may be retried.
    pub fn may_repeat(self) -> bool {
        !matches!(self, Idempotency::NotIdempotent)
    }
}

/// Capped exponential backoff with jitter inside a time budget: attempt `n`
/// (1-based) waits a random time in `[d/2, d]` where
/// `d = min(cap, base * 2^(n-1))`, and no retry starts once the budget
/// would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, before jitter.
    pub base: Duration,
    /// The largest delay.
    pub cap: Duration,
    /// Total time (first attempt included) after which nothing is retried.
    pub budget: Duration,
}

impl Backoff {
    /// `base`, capped at `cap`, within `budget`.
    pub fn new(base: Duration, cap: Duration, budget: Duration) -> Self {
        Backoff { base, cap, budget }
    }

    /// The delay before retry `attempt` (1 = after the first failure), with
    /// `random` as the jitter source (any 64 bits).
    pub fn delay_with(&self, attempt: u32, random: u64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        let half = full / 2;
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
        (half + (full - half).mul_f64(unit)).min(self.cap)
    }

    /// [`Backoff::delay_with`] with a fresh random draw.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, jitter())
    }

    /// The delay before retry `attempt` when `elapsed` has already passed
    /// since the first attempt, or `None` when the budget does not allow it.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        let delay = self.delay(attempt);
        (elapsed + delay <= self.budget).then_some(delay)
    }

    /// Like [`Backoff::next_delay`], but uses the whole budget: the last
    /// delay is shortened so that a final attempt starts exactly when the
    /// budget ends (a user who says "wait 5 seconds" gets 5, not 4.2).
    /// `None` once `elapsed` reaches the budget.
    pub fn delay_until_budget(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        let left = self.budget.checked_sub(elapsed).filter(|left| !left.is_zero())?;
        Some(self.delay(attempt).min(left))
    }
}

/// 64 random bits for jitter: SplitMix64 over a clock-seeded counter (good
/// enough to spread retries; not for anything that needs real randomness).
pub fn jitter() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    SplitMix64(STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) ^ nanos).next()
}

/// Indexes of the completions that count, in order: for each (task, token)
/// only the first. Later duplicates in the same call are `Duplicate`s of the
/// first, and a store applies the counted ones under its fencing rule.
pub fn first_completions(completions: &[Completion]) -> Vec<usize> {
    first_per_lease(completions.iter().map(|completion| (&completion.key, completion.token)))
}

/// Indexes of the leases of a `release_tasks` call that count, in order: for
/// each (task, token) only the first (releasing it ends the lease, so a
/// later copy is `Stale`), as [`first_completions`] does for completions.
pub fn first_releases(leases: &[(TaskKey, FencingToken)]) -> Vec<usize> {
    first_per_lease(leases.iter().map(|(key, token)| (key, *token)))
}

/// Indexes of the first occurrence of each (task, token), in order.
fn first_per_lease<'a>(leases: impl ExactSizeIterator<Item = (&'a TaskKey, FencingToken)>) -> Vec<usize> {
    let mut seen: HashSet<(&TaskKey, FencingToken)> = HashSet::with_capacity(leases.len());
    leases.enumerate().filter(|(_, lease)| seen.insert(*lease)).map(|(index, _)| index).collect()
}

/// The expiry, in microseconds since the epoch, of a lease granted at
/// `now_micros` for `ttl` (saturating).
pub fn expiry_micros(now_micros: i64, ttl: Duration) -> i64 {
    let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    now_micros.saturating_add(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::{RunId, TaskOutcome};

    #[test]
    fn the_last_delay_lands_on_the_end_of_the_budget() {
        let backoff = Backoff::new(Duration::from_millis(400), Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(backoff.delay_until_budget(9, Duration::from_millis(4_900)), Some(Duration::from_millis(100)));
        assert_eq!(backoff.delay_until_budget(9, Duration::from_secs(5)), None);
        assert_eq!(backoff.delay_until_budget(1, Duration::from_secs(6)), None);
        let early = backoff.delay_until_budget(1, Duration::ZERO).unwrap();
        assert!(early >= Duration::from_millis(200) && early <= Duration::from_millis(400), "{early:?}");
        // Summed, the delays reach the budget exactly.
        let (mut elapsed, mut attempt) = (Duration::ZERO, 1);
        while let Some(delay) = backoff.delay_until_budget(attempt, elapsed) {
            elapsed += delay;
            attempt += 1;
        }
        assert_eq!(elapsed, backoff.budget);
    }

    #[test]
    fn delays_grow_stay_in_their_band_and_respect_the_cap() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), Duration::from_secs(30));
        for attempt in 1..40 {
            let full = Duration::from_millis(100).saturating_mul(1u32 << (attempt - 1).min(30)).min(backoff.cap);
            for random in [0, u64::MAX, 0x1234_5678_9abc_def0, jitter()] {
                let delay = backoff.delay_with(attempt, random);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "attempt {attempt}: {delay:?} outside [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
        assert_eq!(backoff.delay_with(1, 0), Duration::from_millis(50));
        assert_eq!(backoff.delay_with(40, u64::MAX).max(backoff.cap), backoff.cap);
    }

    #[test]
    fn the_budget_stops_retries() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), Duration::from_secs(2));
        assert!(backoff.next_delay(1, Duration::ZERO).is_some());
        assert!(backoff.next_delay(5, Duration::from_millis(1999)).is_none());
    }

    #[test]
    fn only_not_idempotent_operations_refuse_a_blind_repeat() {
        assert!(Idempotency::Safe.may_repeat());
        assert!(Idempotency::Idempotent.may_repeat());
        assert!(!Idempotency::NotIdempotent.may_repeat());
    }

    #[test]
    fn the_first_completion_per_task_and_token_counts() {
        let run = RunId::new("r").unwrap_or_else(|e| panic!("{e}"));
        let key = |individual| TaskKey { run: run.clone(), generation: 0, individual };
        let completion = |individual, token| Completion {
            key: key(individual),
            token: FencingToken(token),
            outcome: TaskOutcome::Succeeded { fitness: 1.0, result: "{}".into() },
            cache_key: None,
        };
        let completions =
            vec![completion(1, 7), completion(2, 8), completion(1, 7), completion(1, 9), completion(2, 8)];
        assert_eq!(first_completions(&completions), [0, 1, 3]);
        assert!(first_completions(&[]).is_empty());
        let releases: Vec<(TaskKey, FencingToken)> =
            completions.iter().map(|completion| (completion.key.clone(), completion.token)).collect();
        assert_eq!(first_releases(&releases), [0, 1, 3]);
    }

    #[test]
    fn expiry_saturates() {
        assert_eq!(expiry_micros(1_000, Duration::from_millis(2)), 3_000);
        assert_eq!(expiry_micros(i64::MAX - 1, Duration::from_secs(10)), i64::MAX);
    }
}
