//! A sliding-window rate limiter: one window over all requests and one per route.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimitPolicy;
use crate::telemetry;

/// Waits until a request fits under both the global and the per-route window.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    policy: RateLimitPolicy,
    state: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    global: VecDeque<Instant>,
    routes: HashMap<String, VecDeque<Instant>>,
}

/// How long until a window of `limit` requests per `window` has room, `None` if it has room now.
fn wait_needed(times: &mut VecDeque<Instant>, limit: u32, window: Duration, now: Instant) -> Option<Duration> {
    while times.front().is_some_and(|first| now.duration_since(*first) >= window) {
        times.pop_front();
    }
    if limit == 0 || times.len() < limit as usize {
        return None;
    }
    times.front().map(|first| window.saturating_sub(now.duration_since(*first)))
}

impl RateLimiter {
    pub(crate) fn new(policy: RateLimitPolicy) -> Self {
        RateLimiter { policy, state: Mutex::new(Windows::default()) }
    }

    /// Waits for a slot on `route` and takes it. Returns the time waited
    /// (and records it as a metric when there was a wait).
    pub(crate) async fn acquire(&self, route: &str) -> Duration {
        let started = Instant::now();
        let mut waited = false;
        loop {
            let wait = {
                let mut windows = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let now = Instant::now();
                let global = wait_needed(&mut windows.global, self.policy.global_limit, self.policy.global_window, now);
                let route_times = windows.routes.entry(route.to_owned()).or_default();
                let per_route = wait_needed(route_times, self.policy.route_limit, self.policy.route_window, now);
                match global.max(per_route) {
                    None => {
                        route_times.push_back(now);
                        windows.global.push_back(now);
                        let elapsed = started.elapsed();
                        if waited {
                            telemetry::rate_limit_wait(elapsed);
                        }
                        return elapsed;
                    }
                    Some(wait) => wait,
                }
            };
            tracing::debug!(route, wait_ms = wait.as_millis() as u64, "client-side rate limit: waiting");
            waited = true;
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(global: u32, route: u32) -> RateLimitPolicy {
        RateLimitPolicy {
            global_limit: global,
            global_window: Duration::from_secs(60),
            route_limit: route,
            route_window: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_route_bursts_are_spread_over_windows() {
        let limiter = RateLimiter::new(policy(700, 40));
        let start = Instant::now();
        for _ in 0..40 {
            limiter.acquire("GET /projects").await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the first 40 requests of a second go at once");
        limiter.acquire("GET /projects").await;
        assert!(start.elapsed() >= Duration::from_secs(1), "the 41st waits for the window");
        // Another route is not held back by the first one's window.
        let other = Instant::now();
        limiter.acquire("POST /projects").await;
        assert_eq!(other.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_window_caps_requests_per_minute() {
        let limiter = RateLimiter::new(policy(5, 40));
        let start = Instant::now();
        for index in 0..6 {
            limiter.acquire(&format!("GET /route/{index}")).await;
        }
        assert!(start.elapsed() >= Duration::from_secs(60), "the 6th request waits a minute: {:?}", start.elapsed());
    }
}
