//! Shared test support: the repository's fixtures and an in-memory stand-in for the store's
//! REST answers (the real store is exercised end to end in crates/cli/tests).
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use acr_webhook_core::{Config, Host, TransportError};
use http::{Request, Response, StatusCode};

/// The Cosmos emulator's well-known key, for tests only.
pub const TEST_COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
/// Webhook keys used in tests only.
pub const TEST_WEBHOOK_KEY: &str = "test-webhook-key-0f1e2d3c4b5a";
pub const TEST_WEBHOOK_KEY_2: &str = "test-webhook-key-rotated-in-9988";
/// The read key [`config`] sets (reading is opt-in), for tests only.
pub const TEST_READ_KEY: &str = "test-read-key-7a6b5c4d3e2f";

/// The checkout's root, from the package directory cargo gives at run time (the one compiled
/// in can be another checkout's when two share a target directory: cargo does not rebuild a
/// workspace that moved).
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

pub fn fixture(path: &str) -> Vec<u8> {
    let full = repo_root().join("tests/fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

pub fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("cosmos_endpoint", "http://127.0.0.1:8081"),
        ("cosmos_key", TEST_COSMOS_KEY),
        ("webhook_keys", TEST_WEBHOOK_KEY),
        ("read_keys", TEST_READ_KEY),
    ]);
    vars.extend(extra.iter().copied());
    Config::from_lookup(|n| vars.get(n).map(|v| v.to_string())).unwrap()
}

/// 2023-11-14T22:13:20.123Z
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

/// What the in-memory store does with one request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer like Cosmos: 201, 409 on a repeated id, 200 on container reads.
    Normal,
    /// Answer with this status (and optional x-ms-retry-after-ms); nothing stored.
    Status(u16, Option<&'static str>),
    /// Refuse the connection.
    Unreachable,
    /// Never answer: the attempt's whole timeout passes; nothing stored.
    Stall,
    /// Store the document, then lose the answer after the timeout.
    LostAnswer,
}

/// An in-memory stand-in for the store, with a virtual clock: `sleep` and stalls advance it.
pub struct MemoryStore {
    /// By (partition key header, id): Cosmos DB's ids are unique per logical partition.
    pub documents: RefCell<HashMap<(String, String), serde_json::Value>>,
    pub requests: RefCell<Vec<Request<Vec<u8>>>>,
    /// Played one per request; `behaviour` once it is empty.
    pub script: RefCell<std::collections::VecDeque<Behaviour>>,
    pub behaviour: RefCell<Behaviour>,
    pub clock: std::cell::Cell<Duration>,
    pub sleeps: RefCell<Vec<Duration>>,
    pub timeouts: RefCell<Vec<Duration>>,
    /// When set, a query answers at most this many documents per page, with an
    /// `x-ms-continuation` for the rest (as Cosmos DB pages a cross-partition query).
    pub query_page_size: std::cell::Cell<Option<usize>>,
    seed: std::cell::Cell<u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            documents: RefCell::default(),
            requests: RefCell::default(),
            script: RefCell::default(),
            behaviour: RefCell::new(Behaviour::Normal),
            clock: std::cell::Cell::new(Duration::ZERO),
            sleeps: RefCell::default(),
            timeouts: RefCell::default(),
            query_page_size: std::cell::Cell::new(None),
            seed: std::cell::Cell::new(0x9E37_79B9_7F4A_7C15),
        }
    }

    pub fn scripted(script: &[Behaviour]) -> Self {
        let store = Self::new();
        store.script.borrow_mut().extend(script.iter().cloned());
        store
    }

    fn advance(&self, by: Duration) {
        self.clock.set(self.clock.get() + by);
    }

    /// The status, body and `x-ms-continuation` of the answer to `request`.
    fn answer(&self, request: &Request<Vec<u8>>) -> (u16, Vec<u8>, Option<String>) {
        if request.headers().contains_key("x-ms-documentdb-isquery") {
            let (body, continuation) = self.query(request);
            return (200, body, continuation);
        }
        let (status, body) = self.write(request);
        (status, body, None)
    }

    fn write(&self, request: &Request<Vec<u8>>) -> (u16, Vec<u8>) {
        let path = request.uri().path();
        let partition = request
            .headers()
            .get("x-ms-documentdb-partitionkey")
            .map(|v| v.to_str().unwrap().to_owned());
        if request.method() == http::Method::POST && path.ends_with("/docs") {
            let doc: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
            let id = doc["id"].as_str().unwrap().to_owned();
            let key = (partition.expect("a create names its partition key"), id);
            match self.documents.borrow_mut().entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    (409, br#"{"code":"Conflict","message":"exists"}"#.to_vec())
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(doc);
                    (201, b"{}".to_vec())
                }
            }
        } else if let Some((_, id)) = path.split_once("/docs/") {
            // A point read: the partition key header is required, as on the real service.
            let Some(partition) = partition else {
                return (400, br#"{"code":"BadRequest"}"#.to_vec());
            };
            let id = percent_decode(id);
            match self.documents.borrow().get(&(partition, id)) {
                Some(doc) => (200, doc.to_string().into_bytes()),
                None => (404, br#"{"code":"NotFound","message":"m"}"#.to_vec()),
            }
        } else if request.method() == http::Method::GET && path.contains("/colls/") {
            (200, br#"{"id":"events"}"#.to_vec())
        } else {
            (400, b"{}".to_vec())
        }
    }
}

impl MemoryStore {
    /// Answers the queries the core makes by id (`@id`, `@ids`); anything else: every document.
    /// Paged by [`MemoryStore::query_page_size`] when it is set.
    fn query(&self, request: &Request<Vec<u8>>) -> (Vec<u8>, Option<String>) {
        let query: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
        let wanted: Option<Vec<String>> = query["parameters"].as_array().and_then(|ps| {
            ps.iter().find_map(|p| match p["name"].as_str() {
                Some("@id") => Some(vec![p["value"].as_str()?.to_owned()]),
                Some("@ids") => Some(
                    p["value"]
                        .as_array()?
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
        });
        let partition = request
            .headers()
            .get("x-ms-documentdb-partitionkey")
            .map(|v| v.to_str().unwrap().to_owned());
        let docs = self.documents.borrow();
        let mut found: Vec<(&(String, String), &serde_json::Value)> = docs
            .iter()
            .filter(|((pk, id), _)| {
                partition.as_ref().is_none_or(|p| p == pk)
                    && wanted.as_ref().is_none_or(|ids| ids.contains(id))
            })
            .collect();
        let mut continuation = None;
        if let Some(size) = self.query_page_size.get() {
            found.sort_by(|a, b| a.0.cmp(b.0));
            let from: usize = request
                .headers()
                .get("x-ms-continuation")
                .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
            found = found.into_iter().skip(from).collect();
            if found.len() > size {
                found.truncate(size);
                continuation = Some((from + size).to_string());
            }
        }
        let found: Vec<&serde_json::Value> = found.into_iter().map(|(_, doc)| doc).collect();
        let body = serde_json::json!({ "Documents": found, "_count": found.len() })
            .to_string()
            .into_bytes();
        (body, continuation)
    }
}

impl MemoryStore {
    /// The one stored document with this id, whatever its partition.
    pub fn document(&self, id: &str) -> serde_json::Value {
        let docs = self.documents.borrow();
        let found: Vec<_> = docs.iter().filter(|((_, i), _)| i == id).collect();
        assert_eq!(found.len(), 1, "documents with id {id}");
        found[0].1.clone()
    }
}

fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

impl Host for MemoryStore {
    async fn send(
        &self,
        request: Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        self.timeouts.borrow_mut().push(timeout);
        let behaviour = self
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| self.behaviour.borrow().clone());
        let answer = match behaviour {
            Behaviour::Unreachable => {
                self.advance(Duration::from_millis(1));
                Err(TransportError::not_sent("connection refused"))
            }
            Behaviour::Stall => {
                self.advance(timeout);
                Err(TransportError::outcome_unknown("timed out"))
            }
            Behaviour::LostAnswer => {
                self.answer(&request);
                self.advance(timeout);
                Err(TransportError::outcome_unknown("timed out"))
            }
            Behaviour::Status(s, r) => {
                self.advance(Duration::from_millis(5));
                let mut b = Response::builder().status(StatusCode::from_u16(s).unwrap());
                if let Some(ms) = r {
                    b = b.header("x-ms-retry-after-ms", ms);
                }
                Ok(b.body(br#"{"code":"Injected","message":"m"}"#.to_vec())
                    .unwrap())
            }
            Behaviour::Normal => {
                self.advance(Duration::from_millis(5));
                let (status, body, continuation) = self.answer(&request);
                let mut answer = Response::builder().status(status);
                if let Some(token) = continuation {
                    answer = answer.header("x-ms-continuation", token);
                }
                Ok(answer.body(body).unwrap())
            }
        };
        self.requests.borrow_mut().push(request);
        answer
    }

    async fn sleep(&self, duration: Duration) {
        self.sleeps.borrow_mut().push(duration);
        self.advance(duration);
    }

    fn elapsed(&self) -> Duration {
        self.clock.get()
    }

    fn random_u64(&self) -> u64 {
        let x = self
            .seed
            .get()
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.seed.set(x);
        x >> 11
    }
}

/// Drives a future that never waits on real I/O (the in-memory store answers at once).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A POST to `path` with the given headers.
pub fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}
