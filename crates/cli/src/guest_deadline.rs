//! The guest deadline of `acr-webhook up` (`--request-deadline-ms`), which does not count the
//! time a client takes to read the answer.
//!
//! A guest writes its answer's body through a channel of two chunks: once the client stops
//! reading, the socket's buffers fill, hyper stops taking chunks, and the guest waits. That
//! wait is the client's, not the guest's: the write timeout (`--write-timeout-secs`) governs
//! it (a client that reads nothing for that long is disconnected, and the guest's next write
//! then fails). So a [`StallClock`] per connection adds up the time its writes are stalled
//! (a write to the socket pending), and a [`GuestDeadline`] moves by the stalls since its
//! request began. A guest that spins, or waits on anything else, is stopped as before.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The time one connection's writes have been stalled (pending on a full socket), in all.
#[derive(Debug, Default)]
pub struct StallClock {
    state: Mutex<Stalls>,
}

#[derive(Debug, Default)]
struct Stalls {
    /// Stalls that have ended, added up.
    ended: Duration,
    /// When the current stall began, if a write is stalled now.
    since: Option<Instant>,
}

impl StallClock {
    fn stalls(&self) -> std::sync::MutexGuard<'_, Stalls> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A write is pending (the stall began now unless it had begun already).
    pub fn stalled(&self) {
        let mut stalls = self.stalls();
        if stalls.since.is_none() {
            stalls.since = Some(Instant::now());
        }
    }

    /// A write made progress, failed or was given up: the current stall, if any, ends.
    pub fn progressed(&self) {
        let mut stalls = self.stalls();
        if let Some(since) = stalls.since.take() {
            stalls.ended += since.elapsed();
        }
    }

    /// The time stalled in all up to `now`, the current stall included.
    pub fn total(&self, now: Instant) -> Duration {
        let stalls = self.stalls();
        stalls.ended
            + stalls
                .since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

/// When one request's guest must have finished: its start plus the deadline, plus the time
/// the client's connection was stalled since the start.
#[derive(Debug, Clone)]
pub struct GuestDeadline {
    at: Instant,
    stalls: Option<(Arc<StallClock>, Duration)>,
}

impl GuestDeadline {
    /// `limit` from now, moved by the stalls of `clock` from now on (none without a clock).
    pub fn new(limit: Duration, clock: Option<Arc<StallClock>>) -> Self {
        let now = Instant::now();
        Self {
            at: now + limit,
            stalls: clock.map(|clock| {
                let before = clock.total(now);
                (clock, before)
            }),
        }
    }

    /// The deadline as it stands at `now`.
    pub fn at(&self, now: Instant) -> Instant {
        match &self.stalls {
            Some((clock, before)) => self.at + clock.total(now).saturating_sub(*before),
            None => self.at,
        }
    }

    /// Whether it has passed at `now`.
    pub fn passed(&self, now: Instant) -> bool {
        now >= self.at(now)
    }

    /// Resolves once the deadline, plus `grace`, has passed.
    pub async fn passed_by(&self, grace: Duration) {
        loop {
            let now = Instant::now();
            let until = self.at(now) + grace;
            if now >= until {
                return;
            }
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_stalls_the_deadline_stays() {
        let clock = Arc::new(StallClock::default());
        let deadline = GuestDeadline::new(Duration::from_millis(100), Some(clock.clone()));
        let at = deadline.at(Instant::now());
        clock.progressed();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(deadline.at(Instant::now()), at);
    }

    #[test]
    fn a_stall_moves_the_deadline_while_it_lasts_and_by_its_length_after() {
        let clock = Arc::new(StallClock::default());
        let deadline = GuestDeadline::new(Duration::from_millis(50), Some(clock.clone()));
        let first = deadline.at(Instant::now());
        clock.stalled();
        std::thread::sleep(Duration::from_millis(80));
        // Past the first deadline, but stalled all along: not passed.
        let now = Instant::now();
        assert!(now > first);
        assert!(!deadline.passed(now));
        // A second `stalled` does not restart the stall.
        clock.stalled();
        clock.progressed();
        let moved = deadline.at(Instant::now()) - first;
        assert!(moved >= Duration::from_millis(80), "{moved:?}");
        // Once the stall is over, time counts again.
        std::thread::sleep(Duration::from_millis(60));
        assert!(deadline.passed(Instant::now()));
    }

    #[test]
    fn stalls_before_the_request_do_not_count() {
        let clock = Arc::new(StallClock::default());
        clock.stalled();
        std::thread::sleep(Duration::from_millis(30));
        clock.progressed();
        let deadline = GuestDeadline::new(Duration::from_millis(20), Some(clock));
        std::thread::sleep(Duration::from_millis(30));
        assert!(deadline.passed(Instant::now()));
    }

    #[tokio::test]
    async fn passed_by_waits_out_a_stall() {
        let clock = Arc::new(StallClock::default());
        let deadline = GuestDeadline::new(Duration::from_millis(20), Some(clock.clone()));
        clock.stalled();
        let waiting = tokio::spawn({
            let deadline = deadline.clone();
            async move { deadline.passed_by(Duration::ZERO).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        clock.progressed();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the deadline passes once the stall is over")
            .unwrap();
    }
}
