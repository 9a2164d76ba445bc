//! Shared support for the acr-webhook fuzz targets: the document-id invariants, an in-memory
//! Cosmos DB stand-in with a virtual clock (answers 201/409 to creates, 200 to reads and
//! queries), the fixed configuration, a `block_on`, and the structured request input of the
//! `request_parser` target.
//!
//! Nothing here is part of the root workspace or its tests; see docs/fuzzing.md.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use acr_webhook_core::document::{safe_id, EventDocument, EventSource, MAX_ID_LEN};
use acr_webhook_core::{Config, Host, TransportError};
use arbitrary::Arbitrary;
use http::{Request, Response};

// ---------------------------------------------------------------------------------------
// Document invariants

/// The wall-clock time every target passes as `now` (2023-11-14T22:13:20.123Z).
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

/// Another wall-clock time: the document id must not depend on it.
pub fn later() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_800_000_000_456)
}

/// The bound on any parse error's message (bytes): the messages promise to name the problem
/// and never echo the body, and the longest piece of input they quote is 200 characters.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// A stored document's id: non-empty, at most 255 bytes, none of `/ \ ? #`, no control
/// character.
pub fn check_id(id: &str) {
    assert!(!id.is_empty(), "empty document id");
    assert!(
        id.len() <= MAX_ID_LEN,
        "document id of {} bytes: {id:?}",
        id.len()
    );
    assert!(
        !id.contains(['/', '\\', '?', '#']),
        "document id with a character Cosmos forbids: {id:?}"
    );
    assert!(
        !id.chars().any(char::is_control),
        "document id with a control character: {id:?}"
    );
}

/// True for a string `safe_id` must return unchanged: no `%`, `/ \ ? #` or control character,
/// at most 255 bytes.
pub fn is_plainly_safe(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
        && !id
            .chars()
            .any(|c| matches!(c, '%' | '/' | '\\' | '?' | '#') || c.is_control())
}

/// `safe_id` on an untrusted id: deterministic, obeys [`check_id`] (for a non-empty id),
/// returns safe ids unchanged, and its `%`-free results are fixed points.
pub fn check_safe_id(raw: &str) -> String {
    let once = safe_id(raw);
    assert_eq!(
        once,
        safe_id(raw),
        "safe_id is not deterministic on {raw:?}"
    );
    if raw.is_empty() {
        assert!(once.is_empty(), "safe_id(\"\") = {once:?}");
        return once;
    }
    check_id(&once);
    if is_plainly_safe(raw) {
        assert_eq!(once, raw, "safe_id changed an id that was already safe");
    }
    if !once.contains('%') {
        assert_eq!(
            safe_id(&once),
            once,
            "safe_id is not idempotent on {once:?}"
        );
    }
    once
}

/// Every invariant of one document built from `event` by `from_event`/`from_acr`.
pub fn check_document(
    document: &EventDocument,
    event: &acr_webhook_core::acr::AcrEvent,
    action: &str,
    source: EventSource,
) {
    check_id(&document.id);
    let sent = event.id.as_deref().filter(|id| !id.is_empty());
    match sent {
        Some(sent) => {
            assert_eq!(
                document.id,
                check_safe_id(sent),
                "id is not safe_id(event id)"
            );
            if document.id == sent {
                assert_eq!(document.event_id, None);
            } else {
                assert_eq!(document.event_id.as_deref(), Some(sent), "original id lost");
            }
        }
        None => {
            assert!(
                document.id.starts_with("sha256-"),
                "derived id {:?}",
                document.id
            );
            assert_eq!(document.id.len(), "sha256-".len() + 64);
            assert_eq!(document.event_id, None);
        }
    }
    assert_eq!(document.action, action);
    assert_eq!(document.source, source);
    // The id does not depend on when the event was received.
    let again = EventDocument::from_event(event, action, source, later());
    assert_eq!(again.id, document.id, "document id depends on receivedAt");

    // Serialises, and re-parses to the same JSON.
    let value = serde_json::to_value(document).expect("a document serialises to a value");
    let bytes = serde_json::to_vec(document).expect("a document serialises to bytes");
    let reparsed: serde_json::Value =
        serde_json::from_slice(&bytes).expect("a serialised document parses again");
    assert_eq!(reparsed, value, "document JSON does not round-trip");
    assert_eq!(value["id"].as_str(), Some(document.id.as_str()));
    assert!(value["receivedAt"].is_string());
    // No empty strings are written (absent fields are left out).
    if let serde_json::Value::Object(map) = &value {
        for (name, field) in map {
            assert!(field.as_str() != Some(""), "empty string in field {name}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration and secrets

/// The Cosmos emulator's well-known key (public; tests only).
pub const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
/// The two webhook keys of the fixed configuration (one "rotated in").
pub const WEBHOOK_KEY: &str = "fuzz-webhook-key-0f1e2d3c4b5a";
/// The second webhook key.
pub const WEBHOOK_KEY_2: &str = "fuzz-webhook-key-rotated-9988";
/// The read API's own key (so the webhook keys do not open `GET /events`).
pub const READ_KEY: &str = "fuzz-read-key-77aa66bb55cc";
/// Every secret of the configuration: none may appear in an answer or a log line unless the
/// request put it somewhere that is echoed (the body, the path, a non-key parameter).
pub const SECRETS: [&str; 4] = [WEBHOOK_KEY, WEBHOOK_KEY_2, READ_KEY, COSMOS_KEY];

/// The fixed configuration: two webhook keys, a separate read key, an exclude pattern so
/// the filter is exercised, a 4 s budget.
pub fn config() -> Config {
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("cosmos_endpoint", "http://127.0.0.1:8081".to_owned()),
        ("cosmos_key", COSMOS_KEY.to_owned()),
        ("webhook_keys", format!("{WEBHOOK_KEY}, {WEBHOOK_KEY_2}")),
        ("read_keys", READ_KEY.to_owned()),
        ("exclude", "scratch/*:* *:tmp-*".to_owned()),
        ("write_budget_ms", "4000".to_owned()),
    ]);
    Config::from_lookup(|name| vars.get(name).cloned()).expect("the fuzz configuration is valid")
}

// ---------------------------------------------------------------------------------------
// In-memory store

/// The virtual time one store round trip takes. Small enough that the largest Event Grid
/// batch (5,000 events, each one create) fits in the 4 s budget, so with this store the
/// budget is never exhausted and no 503 is expected.
pub const STORE_LATENCY: Duration = Duration::from_micros(500);

/// One request the host was asked to send, as seen by the store.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `POST …/docs` that is not a query: a document create.
    pub is_write: bool,
    /// The `authorization` header (the Cosmos signature): must never reach the answer.
    pub authorization: Option<String>,
}

/// An in-memory stand-in for Cosmos DB with a virtual clock. Creates answer 201 (new id) or
/// 409 (known id); container reads answer 200; queries answer 200 with `Documents` (by
/// `@id` when the query has that parameter, else a page of everything, with
/// `x-ms-continuation` when more follow). Anything else answers 400, which the target treats
/// as a bug in the request (the store is never expected to see it).
pub struct MemoryStore {
    /// Documents by id (ordered, so answers are deterministic).
    pub documents: RefCell<BTreeMap<String, serde_json::Value>>,
    /// Every request sent.
    pub sent: RefCell<Vec<Sent>>,
    /// Documents created by this request (not the seeded ones).
    pub created: RefCell<Vec<serde_json::Value>>,
    /// Requests the store did not understand.
    pub unexpected: RefCell<Vec<String>>,
    /// Virtual time each round trip takes ([`STORE_LATENCY`] unless changed).
    pub latency: Cell<Duration>,
    clock: Cell<Duration>,
    seed: Cell<u64>,
}

/// Ids of the documents the store holds before each request: the ids of fixtures in the
/// corpus, so their redelivery answers 409.
pub const SEEDED_IDS: [&str; 3] = [
    "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
    "c25fdb80-ebbd-4dd0-a29c-a7349e6388f6",
    "38ef5387-9675-4f83-9c14-4ec81385675e",
];

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store holding the [`SEEDED_IDS`] documents.
    pub fn new() -> Self {
        let documents = SEEDED_IDS
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    (*id).to_owned(),
                    serde_json::json!({
                        "id": id, "action": "push", "source": "acr",
                        "receivedAt": format!("2023-11-14T22:13:2{i}.000Z"),
                        "image": "hello-world", "tag": "v1",
                        "_rid": "x", "_ts": 1, "_etag": "\"e\"", "_self": "s", "_attachments": "a"
                    }),
                )
            })
            .collect();
        Self {
            documents: RefCell::new(documents),
            sent: RefCell::default(),
            created: RefCell::default(),
            unexpected: RefCell::default(),
            latency: Cell::new(STORE_LATENCY),
            clock: Cell::new(Duration::ZERO),
            seed: Cell::new(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Starts the virtual clock again (a new request to the same store).
    pub fn new_request(&self) {
        self.clock.set(Duration::ZERO);
        self.sent.borrow_mut().clear();
        self.created.borrow_mut().clear();
    }

    fn answer(&self, request: &Request<Vec<u8>>) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
        let path = request.uri().path();
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let is_query = header("x-ms-documentdb-isquery").as_deref() == Some("True");
        if request.method() == http::Method::POST && path.ends_with("/docs") && !is_query {
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(request.body()) else {
                self.unexpected
                    .borrow_mut()
                    .push("a create whose body is not JSON".into());
                return (400, vec![], b"{}".to_vec());
            };
            let Some(id) = doc["id"].as_str().map(str::to_owned) else {
                self.unexpected
                    .borrow_mut()
                    .push("a create without a string id".into());
                return (400, vec![], b"{}".to_vec());
            };
            let mut documents = self.documents.borrow_mut();
            if documents.contains_key(&id) {
                return (
                    409,
                    vec![],
                    br#"{"code":"Conflict","message":"exists"}"#.to_vec(),
                );
            }
            documents.insert(id, doc.clone());
            self.created.borrow_mut().push(doc);
            (201, vec![], b"{}".to_vec())
        } else if request.method() == http::Method::POST && path.ends_with("/docs") {
            let Ok(query) = serde_json::from_slice::<serde_json::Value>(request.body()) else {
                self.unexpected
                    .borrow_mut()
                    .push("a query whose body is not JSON".into());
                return (400, vec![], b"{}".to_vec());
            };
            let by_id = query["parameters"].as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| p["name"] == "@id")
                    .and_then(|p| p["value"].as_str())
                    .map(str::to_owned)
            });
            let documents = self.documents.borrow();
            let (page, next): (Vec<serde_json::Value>, Option<String>) = match by_id {
                Some(id) => (documents.get(&id).cloned().into_iter().collect(), None),
                None => {
                    let limit: usize = header("x-ms-max-item-count")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(100);
                    let offset: usize = header("x-ms-continuation")
                        .and_then(|v| v.strip_prefix("offset:").and_then(|n| n.parse().ok()))
                        .unwrap_or(0);
                    let page: Vec<_> = documents
                        .values()
                        .skip(offset)
                        .take(limit)
                        .cloned()
                        .collect();
                    let end = offset + page.len();
                    (
                        page,
                        (end < documents.len()).then(|| format!("offset:{end}")),
                    )
                }
            };
            let body = serde_json::json!({ "_rid": "r", "Documents": page, "_count": page.len() });
            let headers = next
                .map(|n| vec![("x-ms-continuation", n)])
                .unwrap_or_default();
            (200, headers, body.to_string().into_bytes())
        } else if request.method() == http::Method::GET && path.contains("/colls/") {
            (200, vec![], br#"{"id":"events"}"#.to_vec())
        } else {
            self.unexpected
                .borrow_mut()
                .push(format!("{} {path}", request.method()));
            (400, vec![], b"{}".to_vec())
        }
    }
}

impl Host for MemoryStore {
    async fn send(
        &self,
        request: Request<Vec<u8>>,
        _timeout: Duration,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        self.clock.set(self.clock.get() + self.latency.get());
        let is_query = request.headers().contains_key("x-ms-documentdb-isquery");
        self.sent.borrow_mut().push(Sent {
            is_write: request.method() == http::Method::POST
                && request.uri().path().ends_with("/docs")
                && !is_query,
            authorization: request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        let (status, headers, body) = self.answer(&request);
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        Ok(builder.body(body).expect("a valid answer"))
    }

    async fn sleep(&self, duration: Duration) {
        self.clock.set(self.clock.get() + duration);
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
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = std::pin::pin!(future);
    for _ in 0..1_000_000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the request future did not finish (it waits on something the store never wakes)");
}

// ---------------------------------------------------------------------------------------
// Structured request input

/// The method of the request.
#[derive(Arbitrary, Debug, Clone)]
pub enum MethodChoice {
    /// POST (first, so an all-zero header is a POST).
    Post,
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// OPTIONS.
    Options,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// Any token (the http crate may refuse it; such inputs are skipped).
    Other(String),
}

/// The path of the request.
#[derive(Arbitrary, Debug, Clone)]
pub enum RouteChoice {
    /// `/acr` (first, so an all-zero header targets the ACR route).
    Acr,
    /// `/distribution`.
    Distribution,
    /// `/eventgrid`.
    EventGrid,
    /// `/healthz`.
    Health,
    /// `/events`.
    Events,
    /// `/events/{segment}`.
    Event(String),
    /// Anything (the http crate may refuse it; such inputs are skipped).
    Raw(String),
}

/// How (and whether) a key is presented.
#[derive(Arbitrary, Debug, Clone)]
pub enum AuthChoice {
    /// `Authorization: Bearer <webhook key>` (first: an all-zero header authenticates).
    Bearer,
    /// `Authorization: Bearer <second webhook key>`.
    BearerRotated,
    /// `x-functions-key: <webhook key>`.
    FunctionsKey,
    /// `?code=<webhook key>` appended to the query.
    Code,
    /// `Authorization: Bearer <read key>`.
    ReadKey,
    /// `?code=<read key>` (refused with 401: read keys travel in headers only).
    ReadKeyCode,
    /// No key.
    None,
    /// `Authorization: <anything>`.
    RawAuthorization(Vec<u8>),
    /// `x-functions-key: <anything>`.
    RawFunctionsKey(Vec<u8>),
}

/// The `Content-Type` header.
#[derive(Arbitrary, Debug, Clone)]
pub enum ContentTypeChoice {
    /// `application/json` (first).
    Json,
    /// None.
    Absent,
    /// `application/json; charset=utf-8`.
    JsonUtf8,
    /// Distribution v1 events.
    DistributionV1,
    /// Distribution v2 events.
    DistributionV2,
    /// One CloudEvent.
    CloudEvents,
    /// A CloudEvents batch.
    CloudEventsBatch,
    /// Anything.
    Raw(Vec<u8>),
}

/// The `Content-Length` header.
#[derive(Arbitrary, Debug, Clone)]
pub enum ContentLengthChoice {
    /// None (first).
    Absent,
    /// The body's real length.
    Actual,
    /// A number.
    Number(u64),
    /// Anything.
    Raw(Vec<u8>),
}

/// A body: as the last field of an input, every remaining byte as it is (`Vec<u8>` would put a
/// continuation byte before each byte), so a corpus file ends with the body verbatim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Body {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self(<&[u8]>::arbitrary(u)?.to_vec()))
    }

    fn arbitrary_take_rest(u: arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self(u.take_rest().to_vec()))
    }
}

/// One request, decoded from the fuzzer's bytes with `arbitrary`. The body is the last field,
/// so it takes every byte after the header fields: a corpus file is a short header followed by
/// the body as sent (`fuzz/examples/make_corpus.rs` writes the seeds).
#[derive(Arbitrary, Debug, Clone)]
pub struct RequestInput {
    /// Method.
    pub method: MethodChoice,
    /// Path.
    pub route: RouteChoice,
    /// Query string (without `?`), when present.
    pub query: Option<String>,
    /// Key.
    pub auth: AuthChoice,
    /// `Content-Type`.
    pub content_type: ContentTypeChoice,
    /// `Content-Length`.
    pub content_length: ContentLengthChoice,
    /// `WebHook-Request-Origin` (Event Grid's OPTIONS handshake), when present.
    pub origin: Option<String>,
    /// A few more headers (any name and value the http crate accepts).
    pub extra_headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Body,
}

/// What the request echoes legitimately: the method, the body, the path, the query without key
/// values, and the extra headers. A secret found in the answer must come from one of these.
pub struct Built {
    /// The request head.
    pub head: http::request::Parts,
    /// Where the request's own text is (for the secret check).
    pub echoable: Vec<u8>,
}

impl RequestInput {
    /// Builds the request head, or `None` when the http crate refuses the method, path,
    /// a header name or value (such a request never reaches the handler).
    pub fn build(&self) -> Option<Built> {
        let method = match &self.method {
            MethodChoice::Post => "POST",
            MethodChoice::Get => "GET",
            MethodChoice::Head => "HEAD",
            MethodChoice::Options => "OPTIONS",
            MethodChoice::Put => "PUT",
            MethodChoice::Delete => "DELETE",
            MethodChoice::Other(m) => m.as_str(),
        };
        let path = match &self.route {
            RouteChoice::Acr => "/acr".to_owned(),
            RouteChoice::Distribution => "/distribution".to_owned(),
            RouteChoice::EventGrid => "/eventgrid".to_owned(),
            RouteChoice::Health => "/healthz".to_owned(),
            RouteChoice::Events => "/events".to_owned(),
            RouteChoice::Event(segment) => format!("/events/{segment}"),
            RouteChoice::Raw(path) => path.clone(),
        };
        let mut query = self.query.clone();
        let mut echoable: Vec<u8> = method.as_bytes().to_vec(); // the log line names it
        echoable.extend_from_slice(&self.body.0);
        echoable.extend_from_slice(path.as_bytes());
        if let Some(q) = &query {
            // The values of `code` are keys; everything else in the query may be echoed.
            for pair in q.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                echoable.extend_from_slice(k.as_bytes());
                if !k.contains("code") && !k.contains('%') {
                    echoable.extend_from_slice(v.as_bytes());
                }
            }
        }
        let add_code = |query: &mut Option<String>, key: &str| {
            *query = Some(match query.take() {
                Some(q) if !q.is_empty() => format!("{q}&code={key}"),
                _ => format!("code={key}"),
            });
        };
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        match &self.auth {
            AuthChoice::Bearer => headers.push((
                "authorization".into(),
                format!("Bearer {WEBHOOK_KEY}").into(),
            )),
            AuthChoice::BearerRotated => headers.push((
                "authorization".into(),
                format!("Bearer {WEBHOOK_KEY_2}").into(),
            )),
            AuthChoice::FunctionsKey => {
                headers.push(("x-functions-key".into(), WEBHOOK_KEY.into()))
            }
            AuthChoice::Code => add_code(&mut query, WEBHOOK_KEY),
            AuthChoice::ReadKey => {
                headers.push(("authorization".into(), format!("Bearer {READ_KEY}").into()))
            }
            AuthChoice::ReadKeyCode => add_code(&mut query, READ_KEY),
            AuthChoice::None => {}
            AuthChoice::RawAuthorization(v) => headers.push(("authorization".into(), v.clone())),
            AuthChoice::RawFunctionsKey(v) => headers.push(("x-functions-key".into(), v.clone())),
        }
        let content_type: Option<Vec<u8>> = match &self.content_type {
            ContentTypeChoice::Json => Some(b"application/json".to_vec()),
            ContentTypeChoice::Absent => None,
            ContentTypeChoice::JsonUtf8 => Some(b"application/json; charset=utf-8".to_vec()),
            ContentTypeChoice::DistributionV1 => {
                Some(b"application/vnd.docker.distribution.events.v1+json".to_vec())
            }
            ContentTypeChoice::DistributionV2 => {
                Some(b"application/vnd.docker.distribution.events.v2+json".to_vec())
            }
            ContentTypeChoice::CloudEvents => {
                Some(b"application/cloudevents+json; charset=utf-8".to_vec())
            }
            ContentTypeChoice::CloudEventsBatch => {
                Some(b"application/cloudevents-batch+json".to_vec())
            }
            ContentTypeChoice::Raw(v) => Some(v.clone()),
        };
        if let Some(ct) = content_type {
            echoable.extend_from_slice(&ct);
            headers.push(("content-type".into(), ct));
        }
        match &self.content_length {
            ContentLengthChoice::Absent => {}
            ContentLengthChoice::Actual => headers.push((
                "content-length".into(),
                self.body.0.len().to_string().into_bytes(),
            )),
            ContentLengthChoice::Number(n) => {
                headers.push(("content-length".into(), n.to_string().into_bytes()))
            }
            ContentLengthChoice::Raw(v) => headers.push(("content-length".into(), v.clone())),
        }
        if let Some(origin) = &self.origin {
            echoable.extend_from_slice(origin.as_bytes());
            headers.push(("webhook-request-origin".into(), origin.clone().into_bytes()));
        }
        for (name, value) in self.extra_headers.iter().take(4) {
            echoable.extend_from_slice(name.as_bytes());
            echoable.extend_from_slice(value);
            headers.push((name.clone(), value.clone()));
        }
        // Raw key headers are echoable too (they are not configured secrets unless equal).
        if let AuthChoice::RawAuthorization(v) | AuthChoice::RawFunctionsKey(v) = &self.auth {
            echoable.extend_from_slice(v);
        }

        let uri = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = http::HeaderValue::from_bytes(&value).ok()?;
            builder = builder.header(name, value);
        }
        let head = builder.body(()).ok()?.into_parts().0;
        Some(Built { head, echoable })
    }
}

/// Everything the request may legitimately see echoed, decoded as the handler might decode it:
/// [`Built::echoable`], plus the percent-decoded path and query parameters (names, and the
/// values of parameters other than `code`), plus every string (names and values) of the body
/// when it is JSON, with its escapes resolved. Only computed when a secret shows up in an
/// answer, to tell an echo of the request's own text from a leak.
pub fn decoded_echoable(input: &RequestInput, built: &Built) -> Vec<u8> {
    fn decode(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }
    fn strings(value: &serde_json::Value, out: &mut Vec<u8>) {
        match value {
            serde_json::Value::String(s) => {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    out.extend_from_slice(k.as_bytes());
                    out.push(0);
                    strings(v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = built.echoable.clone();
    out.push(0);
    out.extend(decode(built.head.uri.path()));
    out.push(0);
    if let Some(query) = &input.query {
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(k);
            out.extend_from_slice(&name);
            out.push(0);
            if name != b"code" {
                out.extend(decode(v));
                out.push(0);
            }
        }
    }
    let body = input
        .body
        .0
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&input.body.0);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        strings(&value, &mut out);
    }
    out
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
