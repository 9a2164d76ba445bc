//! Which requests `acr-webhook up` runs at once: the request slots
//! (`--max-concurrent-requests`), of which reads may take at most a share
//! (`--max-concurrent-reads`), so that a burst of reads never leaves a write without a slot;
//! and the liveness probe, which needs none (the host answers it).

use std::sync::Arc;

use acr_webhook_core::read_api::{EVENTS_ROUTE, EVENT_ROUTE_PREFIX};
use acr_webhook_core::webhook::HEALTH_ROUTE;
use http::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests handled at once by default; beyond, 503 with `Retry-After` at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;

/// The default share of the request slots reads may take: a quarter (at least one, and
/// always fewer than the slots).
pub fn default_max_reads(max_requests: usize) -> usize {
    (max_requests / 4).clamp(1, max_requests.saturating_sub(1).max(1))
}

/// Whether a request is a read of the trail: `GET /events`, `/events/{id}`,
/// `/events/summary` (any method: the component answers the others 405 at once). The page's
/// own files are not reads.
pub fn is_read(path: &str) -> bool {
    path == EVENTS_ROUTE || path.starts_with(EVENT_ROUTE_PREFIX)
}

/// Whether a request is a liveness probe the host answers itself, without a slot:
/// `GET` or `HEAD /healthz`.
pub fn is_health_probe(method: &Method, path: &str) -> bool {
    path == HEALTH_ROUTE && (method == Method::GET || method == Method::HEAD)
}

/// Every slot of a kind is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The request slots, `--max-concurrent-requests` of them.
    Requests(usize),
    /// The share of reads, `--max-concurrent-reads`.
    Reads(usize),
}

impl Busy {
    /// What is taken, for the 503's message: `every request slot (256,
    /// --max-concurrent-requests)`.
    pub fn describe(self) -> String {
        match self {
            Busy::Requests(n) => format!("every request slot ({n}, --max-concurrent-requests)"),
            Busy::Reads(n) => {
                format!("every slot reads may take ({n}, --max-concurrent-reads)")
            }
        }
    }
}

/// What one request holds until its guest is done and its answer written.
pub struct RequestSlot {
    _request: OwnedSemaphorePermit,
    _read: Option<OwnedSemaphorePermit>,
}

/// The request slots and the reads' share of them.
pub struct Slots {
    requests: Arc<Semaphore>,
    reads: Arc<Semaphore>,
    max_requests: usize,
    max_reads: usize,
}

impl Slots {
    /// `max_requests` slots, of which reads may take `max_reads` (both at least 1).
    pub fn new(max_requests: usize, max_reads: usize) -> Self {
        let max_requests = max_requests.max(1);
        let max_reads = max_reads.max(1);
        Self {
            requests: Arc::new(Semaphore::new(max_requests)),
            reads: Arc::new(Semaphore::new(max_reads)),
            max_requests,
            max_reads,
        }
    }

    /// A slot for a request to `path`, at once or not at all: a read takes one of the reads'
    /// share as well.
    pub fn take(&self, path: &str) -> Result<RequestSlot, Busy> {
        let read = if is_read(path) {
            Some(
                self.reads
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| Busy::Reads(self.max_reads))?,
            )
        } else {
            None
        };
        let request = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Requests(self.max_requests))?;
        Ok(RequestSlot {
            _request: request,
            _read: read,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_take_at_most_their_share_and_writes_still_find_a_slot() {
        let slots = Slots::new(3, 1);
        let read = slots.take("/events").unwrap();
        assert_eq!(
            slots.take("/events/summary").err(),
            Some(Busy::Reads(1)),
            "the reads' share is taken"
        );
        let write = slots.take("/acr").unwrap();
        let page = slots.take("/ui/app.js").unwrap();
        assert_eq!(slots.take("/acr").err(), Some(Busy::Requests(3)));
        drop(read);
        // A read waits for both: its share is free, a request slot is too.
        let _again = slots.take("/events/abc").unwrap();
        drop((write, page));
    }

    #[test]
    fn a_read_refused_for_want_of_a_request_slot_gives_its_share_back() {
        let slots = Slots::new(2, 1);
        let _a = slots.take("/acr").unwrap();
        let _b = slots.take("/distribution").unwrap();
        assert_eq!(slots.take("/events").err(), Some(Busy::Requests(2)));
        drop(_a);
        assert!(slots.take("/events").is_ok());
    }

    #[test]
    fn reads_are_the_trails_routes_only() {
        assert!(is_read("/events"));
        assert!(is_read("/events/summary"));
        assert!(is_read("/events/some-id"));
        for other in ["/", "/ui/app.js", "/acr", "/eventsx", "/healthz", "/event"] {
            assert!(!is_read(other), "{other}");
        }
    }

    #[test]
    fn the_health_probe_is_get_or_head_of_healthz() {
        assert!(is_health_probe(&Method::GET, "/healthz"));
        assert!(is_health_probe(&Method::HEAD, "/healthz"));
        assert!(!is_health_probe(&Method::POST, "/healthz"));
        assert!(!is_health_probe(&Method::GET, "/healthz/"));
        assert!(!is_health_probe(&Method::GET, "/events"));
    }

    #[test]
    fn the_default_share_is_a_quarter_and_below_the_slots() {
        assert_eq!(default_max_reads(256), 64);
        assert_eq!(default_max_reads(8), 2);
        assert_eq!(default_max_reads(3), 1);
        assert_eq!(default_max_reads(2), 1);
    }
}
