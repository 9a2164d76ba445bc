//! How long to wait between attempts: full-jitter exponential backoff, or exactly what the
//! store asked for (`x-ms-retry-after-ms`), always inside the request's time budget.

use std::time::Duration;

/// The shortest attempt worth making: below this the budget is considered spent.
pub const MIN_ATTEMPT: Duration = Duration::from_millis(100);
/// First backoff ceiling; doubles per attempt.
pub const BASE_DELAY: Duration = Duration::from_millis(50);
/// Largest backoff ceiling.
pub const MAX_DELAY: Duration = Duration::from_millis(800);

/// The time plan of one request's store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Everything (body, attempts and waits) must be over by then, counted from arrival.
    pub total: Duration,
}

impl RetryBudget {
    /// Time left at `elapsed`.
    pub fn remaining(&self, elapsed: Duration) -> Duration {
        self.total.saturating_sub(elapsed)
    }

    /// The timeout of an attempt starting at `elapsed`: at most a quarter of the budget (a
    /// healthy write takes milliseconds), so stalls leave room for more attempts; `None` when
    /// not even [`MIN_ATTEMPT`] is left.
    pub fn attempt_timeout(&self, elapsed: Duration) -> Option<Duration> {
        let remaining = self.remaining(elapsed);
        (remaining >= MIN_ATTEMPT).then(|| remaining.min((self.total / 4).max(MIN_ATTEMPT)))
    }

    /// How long the body may take to arrive: half the budget.
    pub fn body_timeout(&self) -> Duration {
        self.total / 2
    }

    /// The wait before attempt `attempt + 1` (0-based `attempt` just failed), or `None` when
    /// waiting would leave no room for another attempt.
    pub fn delay(
        &self,
        attempt: u32,
        requested: Option<Duration>,
        elapsed: Duration,
        random: u64,
    ) -> Option<Duration> {
        let delay = match requested {
            Some(asked) => asked,
            None => {
                let ceiling = BASE_DELAY
                    .saturating_mul(1u32 << attempt.min(16))
                    .min(MAX_DELAY);
                let nanos = ceiling.as_nanos() as u64;
                Duration::from_nanos(if nanos == 0 { 0 } else { random % (nanos + 1) })
            }
        };
        (elapsed + delay + MIN_ATTEMPT <= self.total).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn attempts_are_bounded_by_a_quarter_of_the_budget_and_what_is_left() {
        let b = RetryBudget { total: MS(4000) };
        assert_eq!(b.attempt_timeout(MS(0)), Some(MS(1000)));
        assert_eq!(b.attempt_timeout(MS(3500)), Some(MS(500)));
        assert_eq!(b.attempt_timeout(MS(3950)), None);
        assert_eq!(b.attempt_timeout(MS(9000)), None);
    }

    #[test]
    fn backoff_is_jittered_below_a_doubling_ceiling() {
        let b = RetryBudget { total: MS(4000) };
        for attempt in 0..10 {
            let ceiling = BASE_DELAY.saturating_mul(1 << attempt).min(MAX_DELAY);
            for r in [0, 1, 12345, u64::MAX] {
                let d = b.delay(attempt, None, MS(0), r).unwrap();
                assert!(d <= ceiling, "{attempt} {r} {d:?}");
            }
        }
        assert_eq!(b.delay(0, None, MS(0), 0), Some(MS(0)));
    }

    #[test]
    fn the_store_s_request_is_honoured_unless_it_overruns() {
        let b = RetryBudget { total: MS(4000) };
        assert_eq!(b.delay(0, Some(MS(250)), MS(100), 7), Some(MS(250)));
        assert_eq!(b.delay(0, Some(MS(5000)), MS(0), 7), None);
        assert_eq!(b.delay(3, None, MS(3899), 0), Some(MS(0)));
        assert_eq!(b.delay(3, None, MS(3901), 0), None);
    }
}
