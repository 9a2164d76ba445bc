//! The bound on the client connections `acr-webhook up` keeps open (`--max-connections`).
//!
//! Request slots count requests, not connections: a client that opens connections and sends
//! half a request head takes no slot, yet holds a file descriptor until the header read
//! timeout closes it. Without a bound, about a thousand such connections exhaust the usual
//! 1,024 open files: `accept` fails, and so do the component's connections to the store.
//!
//! [`Connections`] counts the open connections. At the bound, before the next one is
//! accepted, it closes the connection that has waited longest for a request head (a
//! connection idle between two requests waits for its next head too), so that a sender with
//! a whole request to send still gets in. A connection whose request is being handled is
//! never closed to make room: when every open connection is handling one, the next is
//! accepted once one of them closes or finishes its request, and waits in the listen
//! backlog meanwhile.
//!
//! The default bound is derived from the open-file limit ([`default_max_connections`]),
//! which `up` first raises to its hard limit ([`raise_open_files_limit`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::log::{self, Level};

/// The most connections the default bound allows, whatever the open-file limit: each costs
/// hyper's buffers and the kernel's socket buffers (a few KiB to tens of KiB), and a webhook
/// receiver needs tens.
pub const DEFAULT_MAX_CONNECTIONS_CAP: usize = 4096;

/// The least the default bound allows, even when the open-file limit leaves less room (a
/// warning then says so).
pub const MIN_DEFAULT_CONNECTIONS: usize = 32;

/// Descriptors kept for the process itself: standard streams, the listener, the epoch and
/// signal machinery, wasmtime's mappings and the compile child's pipes, log files.
pub const RESERVED_FOR_PROCESS: u64 = 64;

/// Outbound connections one read request may have open at once (the core's fan-out over
/// partition key ranges); a write has one.
pub const OUTBOUND_PER_READ: u64 = acr_webhook_core::event_reads::FAN_OUT as u64;

/// At most one warning about connections closed for room per this period (with a count).
const WARNING_PERIOD: Duration = Duration::from_secs(60);

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard one and returns the soft
/// limit now in force (`None` when it cannot be read, or on systems without one).
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit with a valid, initialised struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Descriptors the component's outbound work may take while every slot is busy: one per
/// write, [`OUTBOUND_PER_READ`] per read, plus the idle connections the pool keeps.
pub fn outbound_descriptors(max_requests: usize, max_reads: usize, idle_kept: usize) -> u64 {
    let reads = max_reads.min(max_requests) as u64;
    let writes = max_requests as u64 - reads;
    writes + reads * OUTBOUND_PER_READ + idle_kept as u64
}

/// The default `--max-connections` for `open_files` descriptors: what is left after
/// [`RESERVED_FOR_PROCESS`] and `outbound` (see [`outbound_descriptors`]), at most
/// [`DEFAULT_MAX_CONNECTIONS_CAP`] and at least [`MIN_DEFAULT_CONNECTIONS`]. `None` for the
/// open-file limit means none is known: the cap.
pub fn default_max_connections(open_files: Option<u64>, outbound: u64) -> usize {
    let Some(open_files) = open_files else {
        return DEFAULT_MAX_CONNECTIONS_CAP;
    };
    let left = open_files.saturating_sub(RESERVED_FOR_PROCESS + outbound);
    (left.min(DEFAULT_MAX_CONNECTIONS_CAP as u64) as usize).max(MIN_DEFAULT_CONNECTIONS)
}

/// The bound for `up`: `requested` (`--max-connections`) or the default for `open_files`,
/// with a warning when the open-file limit leaves less room than that (then `accept` or the
/// outbound connections may fail with "too many open files" before the bound is reached).
pub fn connection_bound(
    requested: Option<usize>,
    open_files: Option<u64>,
    outbound: u64,
) -> (usize, Option<String>) {
    let bound = requested.unwrap_or_else(|| default_max_connections(open_files, outbound));
    let warning = open_files.and_then(|files| {
        let room = files.saturating_sub(RESERVED_FOR_PROCESS + outbound);
        (bound as u64 > room).then(|| {
            format!(
                "the open-file limit ({files}) leaves room for {room} client connections beside \
                 the outbound ones, fewer than --max-connections ({bound}): raise the limit \
                 (ulimit -n, LimitNOFILE=) or lower --max-connections or \
                 --max-concurrent-requests"
            )
        })
    });
    (bound, warning)
}

/// The open client connections of one server, and its bound.
pub struct Connections {
    max: usize,
    state: Mutex<State>,
    /// Woken when a connection closes or finishes a request (room may have appeared).
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Connections open (counted until their [`Connection`] is dropped).
    open: usize,
    /// Of those, the ones told to close for room that have not closed yet.
    closing: usize,
    /// The connections waiting for a request head, by when they started waiting (a
    /// counter: smaller waited longer), with the signal that closes each.
    waiting: BTreeMap<u64, Arc<Notify>>,
    /// The next waiting position.
    next: u64,
    /// Connections closed for room since the last warning, and when that was.
    closed_for_room: u64,
    last_warning: Option<Instant>,
}

impl Connections {
    /// At most `max` connections open at once (at least 1).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            state: Mutex::new(State {
                next: 1,
                ..State::default()
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every lock (no code here panics holding it).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connections open now.
    pub fn open_now(&self) -> usize {
        self.state().open
    }

    /// Resolves when one more connection may be accepted: at once below the bound;
    /// otherwise once the connection that has waited longest for its request head (told to
    /// close here) or another one has closed. Cancel-safe.
    pub async fn room(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let warning = {
                let mut state = self.state();
                if state.open < self.max {
                    return;
                }
                // Close one more only when those already closing would not make room.
                if state.open - state.closing >= self.max {
                    match state.waiting.pop_first() {
                        Some((_, close)) => {
                            close.notify_one();
                            state.closing += 1;
                            state.closed_for_room += 1;
                            state.warning_due()
                        }
                        None => None,
                    }
                } else {
                    None
                }
            };
            if let Some(count) = warning {
                log::message(
                    Level::Warn,
                    None,
                    &format!(
                        "{} connections open (--max-connections): closed {count} that had not \
                         sent a whole request head, the longest-waiting first",
                        self.max
                    ),
                );
            }
            changed.await;
        }
    }

    /// Counts a connection just accepted; it waits for its first request head.
    pub fn open(self: &Arc<Self>) -> Arc<Connection> {
        let close = Arc::new(Notify::new());
        let connection = Arc::new(Connection {
            connections: self.clone(),
            close: close.clone(),
            waiting_at: AtomicU64::new(0),
            told_to_close: AtomicBool::new(false),
        });
        let mut state = self.state();
        state.open += 1;
        connection.wait_for_head(&mut state);
        drop(state);
        connection
    }
}

impl State {
    /// When a warning is due: the connections closed for room since the last one.
    fn warning_due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|at| now.duration_since(at) < WARNING_PERIOD)
        {
            return None;
        }
        self.last_warning = Some(now);
        Some(std::mem::take(&mut self.closed_for_room))
    }
}

/// One open client connection, counted until dropped.
pub struct Connection {
    connections: Arc<Connections>,
    /// Told when the connection must close to make room.
    close: Arc<Notify>,
    /// Its position among the connections waiting for a request head; 0 while a request is
    /// being handled (changed only under the state lock).
    waiting_at: AtomicU64,
    /// Set (under the state lock) when it was told to close.
    told_to_close: AtomicBool,
}

impl Connection {
    /// Marks the connection as waiting for a request head (it may be closed for room).
    fn wait_for_head(&self, state: &mut State) {
        if self.told_to_close.load(Ordering::Relaxed) {
            return;
        }
        let at = state.next;
        state.next += 1;
        state.waiting.insert(at, self.close.clone());
        self.waiting_at.store(at, Ordering::Relaxed);
    }

    /// Takes the connection out of the waiting ones (no-op when it is not among them).
    fn stop_waiting(&self, state: &mut State) {
        let at = self.waiting_at.swap(0, Ordering::Relaxed);
        if at != 0 && state.waiting.remove(&at).is_none() {
            // Popped by `room` a moment ago: it is being closed for room.
            self.told_to_close.store(true, Ordering::Relaxed);
        }
    }

    /// A request head has arrived: the connection is not closed for room until the
    /// returned mark (held by the answer's body) is dropped.
    pub fn request_started(self: &Arc<Self>) -> RequestInProgress {
        let mut state = self.connections.state();
        self.stop_waiting(&mut state);
        drop(state);
        RequestInProgress {
            connection: self.clone(),
        }
    }

    /// Resolves when the connection must close to make room for a new one.
    pub fn closed_for_room(&self) -> impl Future<Output = ()> + '_ {
        self.close.notified()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut state = self.connections.state();
        let at = self.waiting_at.swap(0, Ordering::Relaxed);
        let popped = at != 0 && state.waiting.remove(&at).is_none();
        if popped || self.told_to_close.load(Ordering::Relaxed) {
            state.closing = state.closing.saturating_sub(1);
        }
        state.open -= 1;
        drop(state);
        self.connections.changed.notify_waiters();
    }
}

/// Held while a connection's request is handled and its answer written; when dropped, the
/// connection waits for its next request head (and may be closed for room again).
pub struct RequestInProgress {
    connection: Arc<Connection>,
}

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        let connections = &self.connection.connections;
        let mut state = connections.state();
        self.connection.wait_for_head(&mut state);
        drop(state);
        connections.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `room` once: whether it resolved at once.
    fn room_now(connections: &Connections) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let room = std::pin::pin!(connections.room());
        room.poll(&mut cx).is_ready()
    }

    /// Whether `connection` has been told to close.
    fn told(connection: &Connection) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let closed = std::pin::pin!(connection.closed_for_room());
        closed.poll(&mut cx).is_ready()
    }

    #[test]
    fn below_the_bound_there_is_room() {
        let connections = Connections::new(2);
        assert!(room_now(&connections));
        let _a = connections.open();
        assert!(room_now(&connections));
        let _b = connections.open();
        assert_eq!(connections.open_now(), 2);
        assert!(!room_now(&connections));
    }

    #[test]
    fn at_the_bound_the_longest_waiting_for_a_head_is_closed_first() {
        let connections = Connections::new(3);
        let oldest = connections.open();
        let busy = connections.open();
        let newest = connections.open();
        // `busy` has sent a head: it is never closed for room, though older than `newest`.
        let request = busy.request_started();
        assert!(!room_now(&connections));
        assert!(told(&oldest));
        assert!(!told(&busy) && !told(&newest));
        // One is closing: asking again closes no other before it is gone.
        assert!(!room_now(&connections));
        assert!(!told(&newest));
        drop(oldest);
        assert_eq!(connections.open_now(), 2);
        assert!(room_now(&connections));
        // Once its request is done, `busy` waits for its next head: the newest waiter now,
        // so `newest` goes first.
        drop(request);
        let _another = connections.open();
        assert!(!room_now(&connections));
        assert!(told(&newest));
        assert!(!told(&busy));
    }

    #[test]
    fn when_every_connection_is_busy_none_is_closed() {
        let connections = Connections::new(1);
        let busy = connections.open();
        let request = busy.request_started();
        assert!(!room_now(&connections));
        assert!(!told(&busy));
        drop(request);
        // Waiting for its next head now: it is closed for room.
        assert!(!room_now(&connections));
        assert!(told(&busy));
    }

    /// A connection popped for closing while its head arrived still counts as closing until
    /// it is gone, and is not put back among the waiting.
    #[test]
    fn a_connection_told_to_close_as_its_head_arrives_stays_closing() {
        let connections = Connections::new(1);
        let racing = connections.open();
        assert!(!room_now(&connections));
        let request = racing.request_started();
        drop(request);
        assert!(connections.state().waiting.is_empty());
        assert_eq!(connections.state().closing, 1);
        drop(racing);
        assert_eq!(connections.state().closing, 0);
        assert!(room_now(&connections));
    }

    #[tokio::test]
    async fn room_resolves_once_a_connection_closes() {
        let connections = Connections::new(1);
        let only = connections.open();
        let request = only.request_started();
        let waiter = {
            let connections = connections.clone();
            tokio::spawn(async move { connections.room().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(request);
        drop(only);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("room after the close")
            .unwrap();
    }

    #[test]
    fn a_bound_beyond_what_the_open_file_limit_allows_is_warned_about() {
        let outbound = outbound_descriptors(256, 64, 64);
        assert_eq!(connection_bound(None, Some(1024), outbound), (192, None));
        assert_eq!(
            connection_bound(Some(100), Some(1024), outbound),
            (100, None)
        );
        let (bound, warning) = connection_bound(Some(1000), Some(1024), outbound);
        assert_eq!(bound, 1000);
        assert!(warning.unwrap().contains("room for 192"));
        let (bound, warning) = connection_bound(None, Some(256), outbound);
        assert_eq!(bound, MIN_DEFAULT_CONNECTIONS);
        assert!(warning.is_some());
    }

    #[test]
    fn the_default_bound_leaves_descriptors_for_outbound_work() {
        // 256 slots of which 64 reads: 192 + 64 × 8 + 64 idle = 768 outbound descriptors.
        let outbound = outbound_descriptors(256, 64, 64);
        assert_eq!(outbound, 768);
        assert_eq!(default_max_connections(Some(1024), outbound), 192);
        assert_eq!(
            default_max_connections(Some(1 << 20), outbound),
            DEFAULT_MAX_CONNECTIONS_CAP
        );
        assert_eq!(
            default_max_connections(Some(256), outbound),
            MIN_DEFAULT_CONNECTIONS
        );
        assert_eq!(
            default_max_connections(None, outbound),
            DEFAULT_MAX_CONNECTIONS_CAP
        );
    }
}
