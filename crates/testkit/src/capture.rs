//! A tiny HTTP/1.1 server that records every request and answers a configurable status:
//! a stand-in notification endpoint for checking what the registry really sends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::http::find_header;
use crate::http_server::{Action, HttpServer, Reply, Request};

/// One request received by a [`CaptureServer`].
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// Request method, e.g. `POST`.
    pub method: String,
    /// Request target as sent, e.g. `/notify?x=1`.
    pub path: String,
    /// Headers in arrival order, names as sent (Go canonicalises them, e.g. `Content-Type`).
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: Vec<u8>,
    /// When the request was fully read.
    pub received_at: Instant,
    /// The status this server answered (or, while a response delay runs, will answer; a
    /// client whose timeout ran out first never saw it).
    pub answered_status: u16,
    /// Which TCP connection (numbered from 0 in accept order) carried the request; equal
    /// numbers mean the client reused a keep-alive connection.
    pub connection: usize,
}

impl CapturedRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as (lossy) UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, or `None`.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `events` array of a Distribution notification envelope `{"events":[...]}`
    /// (empty if the body is not one).
    pub fn events(&self) -> Vec<serde_json::Value> {
        match self.json() {
            Some(serde_json::Value::Object(mut o)) => match o.remove("events") {
                Some(serde_json::Value::Array(a)) => a,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// True if this server answered the request with a 2xx status.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered_status)
    }
}

struct Shared {
    requests: Mutex<Vec<CapturedRequest>>,
    arrived: Condvar,
    status: AtomicU16,
    delay_ms: AtomicU64,
}

/// An HTTP/1.1 server on a free 127.0.0.1 port that records every request and answers a
/// status that can be changed at any time (e.g. 500 first, then 200, to watch a client
/// retry). Keep-alive connections are supported (Go's client reuses them). Stopped on drop.
pub struct CaptureServer {
    server: HttpServer,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CaptureServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureServer")
            .field("addr", &self.addr())
            .finish()
    }
}

impl CaptureServer {
    /// Starts the server; every request is answered with `status` (with an empty body) until
    /// [`CaptureServer::set_status`] changes it. Panics if it cannot bind.
    pub fn start(status: u16) -> CaptureServer {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            status: AtomicU16::new(status),
            delay_ms: AtomicU64::new(0),
        });
        let server = {
            let shared = shared.clone();
            HttpServer::bind("capture", 0, Arc::new(move |req| answer(&shared, req)))
        };
        CaptureServer { server, shared }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT/events` — the URL to configure as a notification endpoint
    /// (any path is accepted and recorded).
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr())
    }

    /// Changes the status answered from the next request on.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// The status currently answered.
    pub fn status(&self) -> u16 {
        self.shared.status.load(Ordering::SeqCst)
    }

    /// Waits `delay` after reading each request before answering (to exercise client
    /// timeouts). Zero by default. Requests are recorded on arrival, before the delay.
    pub fn set_response_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// How many TCP connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<CapturedRequest> {
        self.lock().clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The events of every request answered with 2xx, in arrival order (a request that was
    /// answered with an error and then retried thus counts once).
    pub fn accepted_events(&self) -> Vec<serde_json::Value> {
        self.lock()
            .iter()
            .filter(|r| r.accepted())
            .flat_map(CapturedRequest::events)
            .collect()
    }

    /// Waits until `predicate` holds for the requests received so far and returns them;
    /// `None` after `timeout`.
    pub fn try_wait_for(
        &self,
        mut predicate: impl FnMut(&[CapturedRequest]) -> bool,
        timeout: Duration,
    ) -> Option<Vec<CapturedRequest>> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        loop {
            if predicate(&guard) {
                return Some(guard.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = self
                .shared
                .arrived
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Like [`CaptureServer::try_wait_for`], but panics on timeout with a summary of what
    /// did arrive.
    pub fn wait_for(
        &self,
        predicate: impl FnMut(&[CapturedRequest]) -> bool,
        timeout: Duration,
    ) -> Vec<CapturedRequest> {
        match self.try_wait_for(predicate, timeout) {
            Some(r) => r,
            None => panic!(
                "testkit: the expected requests did not reach {} within {timeout:?}; received:\n{}",
                self.addr(),
                summarize(&self.received())
            ),
        }
    }

    /// Waits until an event for which `predicate` holds arrives in a request answered 2xx,
    /// and returns that event; panics with a summary after `timeout`.
    pub fn wait_for_event(
        &self,
        mut predicate: impl FnMut(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> serde_json::Value {
        let mut found = None;
        self.wait_for(
            |reqs| {
                found = reqs
                    .iter()
                    .filter(|r| r.accepted())
                    .flat_map(CapturedRequest::events)
                    .find(|e| predicate(e));
                found.is_some()
            },
            timeout,
        );
        found.expect("found")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CapturedRequest>> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// One line per request: status answered, method, path, and one line per event.
pub fn summarize(requests: &[CapturedRequest]) -> String {
    let mut out = String::new();
    for r in requests {
        out.push_str(&format!(
            "  [{} conn {}] {} {} {} bytes\n",
            r.answered_status,
            r.connection,
            r.method,
            r.path,
            r.body.len()
        ));
        for e in r.events() {
            out.push_str(&format!("    {}\n", describe_event(&e)));
        }
    }
    out
}

/// One line describing a Distribution event: action, repository, tag, digest, media type,
/// size, request method and user agent (`-` for absent fields).
pub fn describe_event(e: &serde_json::Value) -> String {
    let t = &e["target"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    format!(
        "{} repo={} tag={} digest={} mediaType={} size={} method={} useragent={}",
        s(&e["action"]),
        s(&t["repository"]),
        s(&t["tag"]),
        s(&t["digest"]),
        s(&t["mediaType"]),
        t["size"].as_u64().map_or("-".into(), |n| n.to_string()),
        s(&e["request"]["method"]),
        s(&e["request"]["useragent"]),
    )
}

/// Records `req` on arrival (so the list is in arrival order even with a response delay),
/// with the status answered after the delay, and answers it with an empty body.
fn answer(shared: &Shared, req: &Request) -> Action {
    let status = shared.status.load(Ordering::SeqCst);
    {
        let mut reqs = shared.requests.lock().unwrap_or_else(|e| e.into_inner());
        reqs.push(CapturedRequest {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            received_at: Instant::now(),
            answered_status: status,
            connection: req.connection,
        });
        shared.arrived.notify_all();
    }
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    Action::Reply(Reply {
        status,
        headers: Vec::new(),
        body: Vec::new(),
    })
}
