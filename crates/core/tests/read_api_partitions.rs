//! `GET /events` and `GET /events/{id}` against a container split into several partition key
//! ranges, answered the way Cosmos DB's gateway answers: an `ORDER BY` query across partitions
//! is refused (400, substatus 1004), a query scoped to one range is served in order, and pages
//! come back short, or empty with a continuation. Every page sequence is checked against an
//! independent oracle: all stored documents, filtered and sorted here.

mod common;

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::time::Duration;

use acr_webhook_core::{handle, respond, Host, TransportError};
use common::{block_on, config, head, now, TEST_READ_KEY};
use http::{Request, Response};
use serde_json::{json, Value};

/// What the stand-in gateway is, and how it pages.
struct Gateway {
    /// Each range's documents.
    ranges: Vec<Vec<Value>>,
    /// The partition key path: which property places a document in a range.
    partition_key: &'static str,
    /// List a range that a split replaced (id "9", the parent of every other range).
    list_split_parent: bool,
    /// At most this many ranges per `pkranges` page.
    ranges_per_page: usize,
    /// Scripted page sizes for queries (cycled): 0 is an empty page with a continuation.
    page_caps: Vec<usize>,
    /// Answer every request with this status and body instead.
    refuse_with: Option<(u16, &'static str)>,
    /// End a query page once its documents reach this many bytes (Cosmos DB ends a page at
    /// about 4 MB whatever `x-ms-max-item-count` says), always after at least one document.
    page_bytes_cap: usize,
    next_cap: Cell<usize>,
    requests: RefCell<Vec<Request<Vec<u8>>>>,
    /// Requests sent and not yet answered, and the most there ever were at once.
    in_flight: Cell<usize>,
    max_in_flight: Cell<usize>,
    /// How much the clock moves for each answer.
    latency: Duration,
}

impl Gateway {
    fn new(ranges: usize, partition_key: &'static str, documents: &[Value]) -> Self {
        let mut split = vec![Vec::new(); ranges];
        for document in documents {
            let key = document
                .get(&partition_key[1..])
                .map(Value::to_string)
                .unwrap_or_default();
            split[fnv(&key) as usize % ranges].push(document.clone());
        }
        Self {
            ranges: split,
            partition_key,
            list_split_parent: false,
            ranges_per_page: usize::MAX,
            page_caps: vec![usize::MAX],
            refuse_with: None,
            page_bytes_cap: 4_000_000,
            next_cap: Cell::new(0),
            requests: RefCell::default(),
            in_flight: Cell::new(0),
            max_in_flight: Cell::new(0),
            latency: Duration::ZERO,
        }
    }

    fn range_ids(&self) -> Vec<String> {
        (0..self.ranges.len()).map(|i| i.to_string()).collect()
    }

    fn answer(&self, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
        if let Some((status, body)) = self.refuse_with {
            return Response::builder()
                .status(status)
                .body(body.as_bytes().to_vec())
                .unwrap();
        }
        let path = request.uri().path();
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        if request.method() == http::Method::GET && path.ends_with("/pkranges") {
            return self.partition_key_ranges(header("x-ms-continuation"));
        }
        assert_eq!(header("x-ms-documentdb-isquery").as_deref(), Some("True"));
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        let sql = body["query"].as_str().unwrap();
        let range = header("x-ms-documentdb-partitionkeyrangeid");
        let partition = header("x-ms-documentdb-partitionkey");
        let across =
            header("x-ms-documentdb-query-enablecrosspartition").as_deref() == Some("True");
        if range.is_none() && partition.is_none() && sql.contains("ORDER BY") {
            // What the gateway says to a client that does not merge partitions itself.
            return Response::builder()
                .status(400)
                .header("x-ms-substatus", "1004")
                .body(br#"{"code":"BadRequest","message":"The provided cross partition query can not be directly served by the gateway."}"#.to_vec())
                .unwrap();
        }
        assert!(
            partition.is_some() || across,
            "a query without a partition key must allow cross-partition execution"
        );
        // The candidates, in the order this scope returns them.
        let mut candidates: Vec<Value> = match (&range, &partition) {
            (Some(range), None) => {
                let index: usize = range.parse().unwrap();
                assert!(
                    index < self.ranges.len(),
                    "queried range {range}, which was split"
                );
                self.ranges[index].clone()
            }
            (None, Some(pk)) => self
                .ranges
                .iter()
                .flatten()
                .filter(|d| {
                    acr_webhook_core::cosmos::partition_key_header(d.get(&self.partition_key[1..]))
                        == *pk
                })
                .cloned()
                .collect(),
            (None, None) => self.ranges.iter().flatten().cloned().collect(),
            (Some(_), Some(_)) => panic!("both a range and a partition key"),
        };
        candidates.retain(|d| matches(sql, &body["parameters"], d));
        if sql.contains("ORDER BY c.receivedAt DESC, c.id DESC") {
            candidates.sort_by(oracle_order);
        } else {
            assert!(!sql.contains("ORDER BY"), "unexpected query {sql}");
        }
        // Continuation: the offset into this scope's answer, tied to the query text.
        let start = match header("x-ms-continuation") {
            Some(token) => {
                let (offset, tied_to) = token.split_once('|').unwrap();
                assert_eq!(tied_to, fnv(&body.to_string()).to_string(), "token reused");
                offset.parse().unwrap()
            }
            None => 0,
        };
        let asked: usize = header("x-ms-max-item-count").unwrap().parse().unwrap();
        let cap = self.page_caps[self.next_cap.get() % self.page_caps.len()];
        self.next_cap.set(self.next_cap.get() + 1);
        let mut end = candidates.len().min(start + asked.min(cap));
        let mut bytes = 0;
        for (i, d) in candidates[start..end].iter().enumerate() {
            bytes += d.to_string().len();
            if bytes >= self.page_bytes_cap {
                end = start + i + 1;
                break;
            }
        }
        let mut builder = Response::builder().status(200);
        if end < candidates.len() {
            builder = builder.header(
                "x-ms-continuation",
                format!("{end}|{}", fnv(&body.to_string())),
            );
        }
        let page: Vec<Value> = candidates[start..end]
            .iter()
            .map(|d| {
                if sql.starts_with("SELECT c.receivedAt, c.action FROM c ") {
                    // A projection: only those properties, and none that is undefined.
                    let mut projected = serde_json::Map::new();
                    for name in ["receivedAt", "action"] {
                        if let Some(value) = d.get(name) {
                            projected.insert(name.to_owned(), value.clone());
                        }
                    }
                    return Value::Object(projected);
                }
                let mut d = d.clone();
                d["_rid"] = json!("rid");
                d["_ts"] = json!(1);
                d
            })
            .collect();
        builder
            .body(
                json!({"Documents": page, "_count": page.len()})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap()
    }

    fn partition_key_ranges(&self, continuation: Option<String>) -> Response<Vec<u8>> {
        let mut all: Vec<Value> = self
            .range_ids()
            .into_iter()
            .map(|id| {
                let parents = if self.list_split_parent {
                    json!(["9"])
                } else {
                    json!([])
                };
                json!({"id": id, "minInclusive": "", "maxExclusive": "FF", "parents": parents})
            })
            .collect();
        if self.list_split_parent {
            all.insert(
                0,
                json!({"id": "9", "minInclusive": "", "maxExclusive": "FF"}),
            );
        }
        let start: usize = continuation.map_or(0, |c| c.parse().unwrap());
        let end = all.len().min(start.saturating_add(self.ranges_per_page));
        let mut builder = Response::builder().status(200);
        if end < all.len() {
            builder = builder.header("x-ms-continuation", end.to_string());
        }
        builder
            .body(
                json!({"_rid": "c", "PartitionKeyRanges": &all[start..end], "_count": end - start})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap()
    }
}

impl Host for Gateway {
    async fn send(
        &self,
        request: Request<Vec<u8>>,
        _timeout: Duration,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        // In flight until polled once more: requests sent concurrently overlap here.
        self.in_flight.set(self.in_flight.get() + 1);
        self.max_in_flight
            .set(self.max_in_flight.get().max(self.in_flight.get()));
        yield_once().await;
        self.in_flight.set(self.in_flight.get() - 1);
        let answer = self.answer(&request);
        self.requests.borrow_mut().push(request);
        Ok(answer)
    }
    async fn sleep(&self, _duration: Duration) {}
    fn elapsed(&self) -> Duration {
        self.latency * u32::try_from(self.requests.borrow().len()).unwrap()
    }
    fn random_u64(&self) -> u64 {
        4
    }
}

/// Pending once, then ready: lets the caller's other futures run meanwhile.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|_| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            std::task::Poll::Pending
        }
    })
    .await
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The filter the query states, applied by the parameters' names; the SQL text must hold
/// the fragment that gives each parameter its meaning.
fn matches(sql: &str, parameters: &Value, document: &Value) -> bool {
    let text = |name: &str| document.get(name).and_then(Value::as_str);
    let mut after_received_at = None;
    let mut after_id = None;
    for p in parameters.as_array().unwrap() {
        let value = p["value"].as_str().unwrap();
        let name = p["name"].as_str().unwrap();
        let (fragment, ok) = match name {
            "@image" => ("c.image = @image", text("image") == Some(value)),
            "@tag" => ("c.tag = @tag", text("tag") == Some(value)),
            "@action" => ("c.action = @action", text("action") == Some(value)),
            "@since" => (
                "c.receivedAt >= @since",
                text("receivedAt").is_some_and(|t| t >= value),
            ),
            "@until" => (
                "c.receivedAt < @until",
                text("receivedAt").is_some_and(|t| t < value),
            ),
            "@id" => ("c.id = @id", text("id") == Some(value)),
            "@afterReceivedAt" => {
                after_received_at = Some(value);
                ("c.receivedAt < @afterReceivedAt", true)
            }
            "@afterId" => {
                after_id = Some(value);
                ("c.id < @afterId", true)
            }
            other => panic!("unknown parameter {other}"),
        };
        assert!(sql.contains(fragment), "{sql} lacks {fragment}");
        if !ok {
            return false;
        }
    }
    let id = text("id").unwrap();
    match (after_received_at, after_id) {
        (Some(t), Some(after)) => match text("receivedAt") {
            Some(r) => r < t || (r == t && id < after),
            None => true,
        },
        (None, Some(after)) => text("receivedAt").is_none() && id < after,
        (None, None) => true,
        (Some(_), None) => panic!("@afterReceivedAt without @afterId"),
    }
}

/// Newest first; documents without `receivedAt` last; ties by id; written out here again
/// rather than taken from the code under test.
fn oracle_order(a: &Value, b: &Value) -> Ordering {
    let received = |d: &Value| {
        d.get("receivedAt")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let id = |d: &Value| d["id"].as_str().unwrap().to_owned();
    match (received(a), received(b)) {
        (Some(x), Some(y)) => y.cmp(&x).then_with(|| id(b).cmp(&id(a))),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => id(b).cmp(&id(a)),
    }
}

/// 240 documents over 5 repositories, 40 distinct milliseconds (many ties), every action,
/// plus 12 left by the Azure Function this receiver replaces (no `receivedAt`).
fn documents() -> Vec<Value> {
    let mut state: u64 = 0x5eed;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let actions = ["push", "delete", "quarantine", "chart_push", "chart_delete"];
    let mut documents: Vec<Value> = (0..240)
        .map(|i| {
            json!({
                "id": format!("evt-{:04x}-{i}", next(0xffff)),
                "action": actions[next(5) as usize],
                "image": format!("team/app-{}", next(5)),
                "tag": format!("v{}", next(3)),
                "receivedAt": format!("2026-11-29T01:{:02}:00.{:03}Z", 10 + next(4), next(10)),
                "source": "acr",
            })
        })
        .collect();
    documents.extend((0..12).map(|i| {
        json!({"id": format!("legacy-{i:02}"), "action": "push", "image": "team/app-1", "tag": "v1",
               "loginServer": "old.azurecr.io", "timestamp": "2024-01-01T00:00:00Z"})
    }));
    documents
}

fn get(gateway: &Gateway, cfg: &acr_webhook_core::Config, uri: &str) -> (u16, Value) {
    let bearer = format!("Bearer {TEST_READ_KEY}");
    let h = head("GET", uri, &[("authorization", &bearer)]);
    let outcome = block_on(handle(&h, Vec::new(), Ok(cfg.clone()), gateway, now()));
    let response = respond(&outcome);
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// Pages through `GET /events?{filters}` with page sizes from `limits` (cycled) and returns
/// the ids in the order listed, checking that every page but the last is full.
fn page_through(
    gateway: &Gateway,
    cfg: &acr_webhook_core::Config,
    filters: &str,
    limits: &[u32],
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut continuation: Option<String> = None;
    for page in 0.. {
        assert!(page < 400, "paging does not end");
        let limit = limits[page % limits.len()];
        let mut uri = format!("/events?limit={limit}");
        if !filters.is_empty() {
            uri.push('&');
            uri.push_str(filters);
        }
        if let Some(token) = &continuation {
            uri.push_str("&continuation=");
            uri.push_str(token);
        }
        let (status, body) = get(gateway, cfg, &uri);
        assert_eq!(status, 200, "{uri}: {body}");
        let events = body["events"].as_array().unwrap();
        for event in events {
            assert!(event.get("_rid").is_none() && event.get("_ts").is_none());
            ids.push(event["id"].as_str().unwrap().to_owned());
        }
        match body.get("continuation").and_then(Value::as_str) {
            Some(token) => {
                assert_eq!(
                    events.len(),
                    limit as usize,
                    "a page before the last is short"
                );
                continuation = Some(token.to_owned());
            }
            None => break,
        }
    }
    ids
}

fn expected(documents: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut kept: Vec<Value> = documents.iter().filter(|d| keep(d)).cloned().collect();
    kept.sort_by(oracle_order);
    kept.iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

type Filter = (&'static str, fn(&Value) -> bool);

fn filter_cases() -> Vec<Filter> {
    fn s<'a>(d: &'a Value, k: &str) -> Option<&'a str> {
        d.get(k).and_then(Value::as_str)
    }
    vec![
        ("", |_| true),
        ("image=team%2Fapp-1", |d| {
            s(d, "image") == Some("team/app-1")
        }),
        ("tag=v2", |d| s(d, "tag") == Some("v2")),
        ("action=delete", |d| s(d, "action") == Some("delete")),
        ("since=2026-11-29T01:11:00.005Z", |d| {
            s(d, "receivedAt").is_some_and(|t| t >= "2026-11-29T01:11:00.005Z")
        }),
        ("until=2026-11-29T01:12:00Z", |d| {
            s(d, "receivedAt").is_some_and(|t| t < "2026-11-29T01:12:00.000Z")
        }),
        (
            "image=team%2Fapp-3&action=push&since=2026-11-29T01:11:00Z",
            |d| {
                s(d, "image") == Some("team/app-3")
                    && s(d, "action") == Some("push")
                    && s(d, "receivedAt").is_some_and(|t| t >= "2026-11-29T01:11:00.000Z")
            },
        ),
        ("image=team%2Fapp-0&tag=v0", |d| {
            s(d, "image") == Some("team/app-0") && s(d, "tag") == Some("v0")
        }),
        ("image=nothing-here", |_| false),
    ]
}

#[test]
fn every_event_once_in_order_across_ranges_with_short_and_empty_pages() {
    let documents = documents();
    let cfg = config(&[]);
    for ranges in [1, 3, 7] {
        let mut gateway = Gateway::new(ranges, "/id", &documents);
        gateway.page_caps = vec![usize::MAX, 2, 0, 5, 1, 0, 0, 3];
        gateway.ranges_per_page = 2;
        for (filters, keep) in filter_cases() {
            let want = expected(&documents, keep);
            for limits in [&[7][..], &[1], &[100], &[3, 50, 1, 9]] {
                let got = page_through(&gateway, &cfg, filters, limits);
                assert_eq!(
                    got, want,
                    "ranges={ranges} filters={filters:?} limits={limits:?}"
                );
            }
        }
        // Every query went to one range, with ORDER BY, never across partitions.
        for request in gateway.requests.borrow().iter() {
            if request.uri().path().ends_with("/docs") {
                assert!(request
                    .headers()
                    .contains_key("x-ms-documentdb-partitionkeyrangeid"));
            }
        }
    }
}

#[test]
fn a_split_parent_still_listed_is_not_queried() {
    let documents = documents();
    let mut gateway = Gateway::new(4, "/id", &documents);
    gateway.list_split_parent = true;
    gateway.ranges_per_page = 1;
    let got = page_through(&gateway, &config(&[]), "", &[25]);
    assert_eq!(got, expected(&documents, |_| true));
}

#[test]
fn a_query_that_fixes_the_partition_key_stays_in_its_partition() {
    let documents = documents();
    let cfg = config(&[("partition_key_path", "/image")]);
    let mut gateway = Gateway::new(5, "/image", &documents);
    gateway.page_caps = vec![3, 0, usize::MAX];
    let got = page_through(&gateway, &cfg, "image=team%2Fapp-2", &[4]);
    assert_eq!(got, expected(&documents, |d| d["image"] == "team/app-2"));
    let requests = gateway.requests.borrow();
    assert!(requests
        .iter()
        .all(|r| !r.uri().path().ends_with("/pkranges")));
    assert!(requests
        .iter()
        .all(|r| r.headers()["x-ms-documentdb-partitionkey"] == r#"["team/app-2"]"#));
    drop(requests);
    // Without the partition key: every range, merged.
    let got = page_through(&gateway, &cfg, "tag=v1", &[6]);
    assert_eq!(got, expected(&documents, |d| d["tag"] == "v1"));
}

#[test]
fn pages_survive_a_change_of_page_size_and_never_repeat() {
    let documents = documents();
    let gateway = Gateway::new(3, "/id", &documents);
    let cfg = config(&[]);
    let got = page_through(&gateway, &cfg, "", &[1, 100, 2, 33]);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len());
    assert_eq!(got.len(), documents.len());
}

#[test]
fn the_gateway_refusal_is_what_a_plain_cross_partition_order_by_gets() {
    // The stand-in's own check, so that the tests above prove something: the query a
    // single-partition client would send is refused.
    let gateway = Gateway::new(2, "/id", &documents());
    let store = config(&[]).store;
    let body =
        json!({"query": "SELECT * FROM c ORDER BY c.receivedAt DESC, c.id DESC", "parameters": []});
    let request =
        store.query_documents_request(&body, None, 10, None, "Sun, 29 Nov 2026 01:00:00 GMT");
    assert_eq!(gateway.answer(&request).status(), 400);
}

#[test]
fn one_event_is_found_across_ranges_through_empty_pages() {
    let documents = documents();
    let cfg = config(&[("partition_key_path", "/image")]);
    let mut gateway = Gateway::new(6, "/image", &documents);
    gateway.page_caps = vec![0, 0, 1];
    let id = documents[200]["id"].as_str().unwrap();
    let (status, body) = get(&gateway, &cfg, &format!("/events/{id}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, documents[200]);
    let (status, body) = get(&gateway, &cfg, "/events/no-such-event");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn every_id_opens_with_the_id_parameter_whatever_the_partition_key() {
    // Ids a path cannot name (`/events/summary` is the summary; a browser removes `.` and
    // `..` from a path, even written `%2E`) and one another tool wrote (a `%` that is not an
    // escape, which `/events/{id}` maps through safe_id).
    let awkward = ["summary", ".", "..", "100%", "a%2Fb", "é ü+1"];
    for path in ["/id", "/image"] {
        let mut documents = documents();
        for (i, id) in awkward.iter().enumerate() {
            documents.push(
                json!({"id": id, "action": "push", "image": format!("team/app-{i}"),
                "tag": "v1", "receivedAt": "2026-11-29T02:00:00.000Z", "source": "acr"}),
            );
        }
        let cfg = config(&[("partition_key_path", path)]);
        let gateway = Gateway::new(4, path, &documents);
        for (i, id) in awkward.iter().enumerate() {
            let encoded: String = id
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let (status, body) = get(&gateway, &cfg, &format!("/events?id={encoded}"));
            assert_eq!(status, 200, "{path} {id:?}: {body}");
            assert_eq!(
                body,
                documents[documents.len() - awkward.len() + i],
                "{id:?}"
            );
        }
        let (status, body) = get(&gateway, &cfg, "/events?id=no-such-event");
        assert_eq!(
            (status, &body["error"]),
            (404, &json!("event_not_found")),
            "{body}"
        );
        let (status, body) = get(&gateway, &cfg, "/events?id=summary&limit=5");
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("`id` names one event"),
            "{body}"
        );
    }
}

#[test]
fn a_store_that_only_ever_answers_empty_pages_gets_503_not_a_hang() {
    let documents = documents();
    let mut gateway = Gateway::new(2, "/id", &documents);
    gateway.page_caps = vec![0];
    let (status, body) = get(&gateway, &config(&[]), "/events?limit=5");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "read_limit_reached", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("most requests") && message.contains("2 partition key ranges"),
        "{body}"
    );
    assert!(!message.contains("unavailable"), "{body}");
    assert_eq!(
        gateway.requests.borrow().len(),
        acr_webhook_core::event_reads::round_trip_budget(2)
    );
}

#[test]
fn a_missing_container_is_a_refusal_with_its_status() {
    let mut gateway = Gateway::new(1, "/id", &[]);
    gateway.refuse_with = Some((404, r#"{"code":"NotFound","message":"Resource Not Found"}"#));
    let (status, body) = get(&gateway, &config(&[]), "/events");
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "store_refused");
    assert!(body["message"].as_str().unwrap().contains("404"), "{body}");
    assert_eq!(gateway.requests.borrow().len(), 1, "a refusal is final");
}

/// The read key of the summary tests (not the webhook key).
const SUMMARY_READ_KEY: &str = "summary-read-key-0123456789";

fn summary_get(gateway: &Gateway, cfg: &acr_webhook_core::Config, uri: &str) -> (u16, Value) {
    let bearer = format!("Bearer {SUMMARY_READ_KEY}");
    let h = head("GET", uri, &[("authorization", &bearer)]);
    let outcome = block_on(handle(&h, Vec::new(), Ok(cfg.clone()), gateway, now()));
    let response = respond(&outcome);
    (
        response.status().as_u16(),
        serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    )
}

/// Documents over three days and every hour of them, with every action (one of them an action
/// this receiver does not know yet), plus legacy ones without `receivedAt`.
fn summary_documents(n: usize) -> Vec<Value> {
    let actions = [
        "push",
        "delete",
        "quarantine",
        "chart_push",
        "chart_delete",
        "future_action",
    ];
    let mut documents: Vec<Value> = (0..n)
        .map(|i| {
            let h = fnv(&i.to_string());
            json!({
                "id": format!("sum-{h:016x}"),
                "action": actions[(h % 6) as usize],
                "image": format!("team/app-{}", (h >> 8) % 3),
                "tag": format!("v{}", (h >> 16) % 2),
                "receivedAt": format!(
                    "2026-11-{:02}T{:02}:{:02}:00.{:03}Z",
                    20 + (h >> 24) % 3,
                    (h >> 32) % 24,
                    (h >> 40) % 60,
                    (h >> 48) % 1000
                ),
                "source": "acr",
            })
        })
        .collect();
    documents
        .extend((0..5).map(
            |i| json!({"id": format!("legacy-{i}"), "action": "push", "image": "team/app-1"}),
        ));
    documents
}

/// The counts the summary must answer, computed here from the documents: per bucket start,
/// per action, within `[since, until)`.
fn summary_oracle(
    documents: &[Value],
    since: &str,
    until: &str,
    bucket: &str,
    keep: impl Fn(&Value) -> bool,
) -> Value {
    let mut buckets: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        Default::default();
    for d in documents.iter().filter(|d| keep(d)) {
        let Some(t) = d.get("receivedAt").and_then(Value::as_str) else {
            continue;
        };
        if t < since || t >= until {
            continue;
        }
        let start = match bucket {
            "hour" => format!("{}:00:00.000Z", &t[..13]),
            _ => format!("{}T00:00:00.000Z", &t[..10]),
        };
        *buckets
            .entry(start)
            .or_default()
            .entry(d["action"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    json!(buckets
        .into_iter()
        .map(|(start, counts)| json!({"start": start, "total": counts.values().sum::<u64>(), "counts": counts}))
        .collect::<Vec<_>>())
}

/// A summary case: extra filters, since, until, the bucket expected, the oracle's filter.
type SummaryCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    fn(&Value) -> bool,
);

#[test]
fn summary_counts_across_partition_key_ranges_equal_the_oracle() {
    let documents = summary_documents(600);
    let cases: Vec<SummaryCase> = vec![
        (
            "",
            "2026-11-20T00:00:00.000Z",
            "2026-11-23T00:00:00.000Z",
            "hour",
            |_| true,
        ),
        (
            "",
            "2026-11-19T00:00:00.000Z",
            "2026-11-23T00:00:00.000Z",
            "day",
            |_| true,
        ),
        (
            "",
            "2026-11-20T05:30:00.000Z",
            "2026-11-21T07:00:00.000Z",
            "hour",
            |_| true,
        ),
        (
            "&image=team%2Fapp-1",
            "2026-11-20T00:00:00.000Z",
            "2026-11-23T00:00:00.000Z",
            "hour",
            |d| d.get("image").and_then(Value::as_str) == Some("team/app-1"),
        ),
        (
            "&action=delete&tag=v1",
            "2026-11-01T00:00:00.000Z",
            "2026-12-01T00:00:00.000Z",
            "day",
            |d| d["action"] == "delete" && d.get("tag").and_then(Value::as_str) == Some("v1"),
        ),
    ];
    for (ranges, partition_key, caps) in [
        (1, "/id", vec![usize::MAX]),
        (4, "/id", vec![60, 0, 25]),
        (5, "/image", vec![80, 0]),
    ] {
        let mut gateway = Gateway::new(ranges, partition_key, &documents);
        gateway.page_caps = caps.clone();
        gateway.list_split_parent = ranges > 1;
        let cfg = config(&[
            ("read_keys", SUMMARY_READ_KEY),
            ("partition_key_path", partition_key),
        ]);
        for (filters, since, until, bucket, keep) in &cases {
            let uri = format!("/events/summary?since={since}&until={until}{filters}");
            let (status, body) = summary_get(&gateway, &cfg, &uri);
            assert_eq!(status, 200, "{uri}: {body}");
            assert_eq!(body["bucket"], *bucket, "{uri}");
            let want = summary_oracle(&documents, since, until, bucket, keep);
            assert_eq!(
                body["buckets"], want,
                "{ranges} ranges by {partition_key}: {uri}"
            );
            let total: u64 = want
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["total"].as_u64().unwrap())
                .sum();
            assert_eq!(body["total"], total, "{uri}");
            assert!(total > 0, "{uri} counts nothing");
        }
        // Every query was a projection without ORDER BY, in one range or one partition.
        for request in gateway.requests.borrow().iter() {
            if request.uri().path().ends_with("/pkranges") {
                continue;
            }
            let body: Value = serde_json::from_slice(request.body()).unwrap();
            let sql = body["query"].as_str().unwrap();
            if !sql.starts_with("SELECT c.receivedAt, c.action FROM c WHERE ") {
                continue;
            }
            assert!(!sql.contains("ORDER BY"));
            assert!(
                request
                    .headers()
                    .contains_key("x-ms-documentdb-partitionkeyrangeid")
                    || request
                        .headers()
                        .contains_key("x-ms-documentdb-partitionkey"),
                "{sql}"
            );
        }
    }
}

#[test]
fn a_summary_over_too_many_events_is_refused_clearly() {
    let max = acr_webhook_core::summary::MAX_SUMMARY_EVENTS;
    let documents = summary_documents(max + 1);
    let gateway = Gateway::new(3, "/id", &documents);
    let cfg = config(&[
        ("read_keys", SUMMARY_READ_KEY),
        ("partition_key_path", "/id"),
    ]);
    let uri = "/events/summary?since=2026-11-01T00:00:00Z&until=2026-12-01T00:00:00Z";
    let (status, body) = summary_get(&gateway, &cfg, uri);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "summary_too_large");
    assert!(body["message"].as_str().unwrap().contains(&max.to_string()));
    // The reading stopped at the cap, a page past it at most.
    let counted: usize = gateway.requests.borrow().len();
    assert!(counted <= 3 + max / 1000 + 3, "{counted} requests");
    // One event fewer in the window: counted in full.
    let uri = "/events/summary?since=2026-11-01T00:00:00Z&until=2026-12-01T00:00:00Z&action=push";
    let (status, body) = summary_get(&gateway, &cfg, uri);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["buckets"],
        summary_oracle(
            &documents,
            "2026-11-01T00:00:00.000Z",
            "2026-12-01T00:00:00.000Z",
            "day",
            |d| d["action"] == "push"
        )
    );
}

#[test]
fn a_summary_needs_the_read_key_and_refuses_paging_parameters() {
    let documents = summary_documents(20);
    let gateway = Gateway::new(2, "/id", &documents);
    let cfg = config(&[("read_keys", SUMMARY_READ_KEY)]);
    let h = head("GET", "/events/summary", &[]);
    let outcome = block_on(handle(&h, Vec::new(), Ok(cfg.clone()), &gateway, now()));
    assert_eq!(respond(&outcome).status(), 401);
    let (status, _) = get(&gateway, &cfg, "/events/summary");
    assert_eq!(status, 401, "the webhook key does not read");
    assert!(gateway.requests.borrow().is_empty());
    for bad in ["limit=5", "continuation=abc", "%6Cimit=5", "bucket=hour"] {
        let (status, body) = summary_get(&gateway, &cfg, &format!("/events/summary?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_query");
    }
}

#[test]
fn two_hundred_ranges_serve_every_page_in_order_with_bounded_concurrency() {
    let documents = documents();
    let cfg = config(&[]);
    let mut gateway = Gateway::new(200, "/id", &documents);
    gateway.ranges_per_page = 64;
    gateway.page_caps = vec![usize::MAX, 2, 0, 5, 1];
    for (filters, keep) in [filter_cases()[0], filter_cases()[3], filter_cases()[8]] {
        let want = expected(&documents, keep);
        for limits in [&[20][..], &[100], &[1, 7, 33]] {
            let got = page_through(&gateway, &cfg, filters, limits);
            assert_eq!(got, want, "filters={filters:?} limits={limits:?}");
        }
    }
    let most = gateway.max_in_flight.get();
    assert!(
        most > 1 && most <= acr_webhook_core::event_reads::FAN_OUT,
        "{most} requests in flight at once"
    );
    // Every query went to one range, never across partitions.
    for request in gateway.requests.borrow().iter() {
        if request.uri().path().ends_with("/docs") {
            assert!(request
                .headers()
                .contains_key("x-ms-documentdb-partitionkeyrangeid"));
        }
    }
}

/// `count` documents of about 1 MiB each (64 fields of 16 KiB), a millisecond apart.
fn large_documents(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let mut d = json!({
                "id": format!("big-{i:03}"),
                "action": "push",
                "image": format!("team/big-{}", i % 7),
                "tag": "v1",
                "receivedAt": format!("2026-11-29T02:00:{:02}.{:03}Z", i / 1000, i % 1000),
            });
            for f in 0..64 {
                d[format!("layer{f:02}")] = json!(format!("{i:03}{f:02}").repeat(16 * 1024 / 5));
            }
            d
        })
        .collect()
}

#[test]
fn documents_of_a_mebibyte_are_paged_within_the_byte_budget() {
    let documents = large_documents(40);
    assert!(documents[0].to_string().len() > 1 << 20);
    let cfg = config(&[]);
    let budget = acr_webhook_core::event_reads::MAX_PAGE_BYTES;
    for ranges in [1, 7, 200] {
        let gateway = Gateway::new(ranges, "/id", &documents);
        let mut ids = Vec::new();
        let mut continuation: Option<String> = None;
        for page in 0.. {
            assert!(page < 100, "paging does not end");
            let mut uri = "/events?limit=100".to_owned();
            if let Some(token) = &continuation {
                uri.push_str("&continuation=");
                uri.push_str(token);
            }
            let bearer = format!("Bearer {TEST_READ_KEY}");
            let h = head("GET", &uri, &[("authorization", &bearer)]);
            let outcome = block_on(handle(&h, Vec::new(), Ok(cfg.clone()), &gateway, now()));
            let response = respond(&outcome);
            assert_eq!(response.status(), 200, "ranges={ranges} page={page}");
            // A page holds at least one event and stays within the budget.
            assert!(
                response.body().len() <= budget,
                "a page of {} bytes",
                response.body().len()
            );
            let body: Value = serde_json::from_slice(response.body()).unwrap();
            let events = body["events"].as_array().unwrap();
            assert!(!events.is_empty(), "an empty page before the end");
            ids.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            match body["continuation"].as_str() {
                Some(token) => continuation = Some(token.to_owned()),
                None => break,
            }
        }
        assert_eq!(ids, expected(&documents, |_| true), "ranges={ranges}");
    }
}

#[test]
fn a_read_that_runs_out_of_time_says_so_and_does_not_blame_cosmos() {
    let documents = documents();
    let mut gateway = Gateway::new(200, "/id", &documents);
    gateway.latency = Duration::from_millis(50);
    let cfg = config(&[("write_budget_ms", "1000")]);
    let (status, body) = get(&gateway, &cfg, "/events?limit=100");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "read_limit_reached", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("time budget of 1000 ms (`write_budget_ms`)")
            && message.contains("across 200 partition key ranges"),
        "{body}"
    );
    // No request starts without 100 ms left: each answer moves the clock by 50 ms, so the
    // batches of queries start at 50, 450 and 850 ms after the `pkranges` read, and not at 1250.
    assert_eq!(
        gateway.requests.borrow().len(),
        1 + 3 * acr_webhook_core::event_reads::FAN_OUT,
        "{body}"
    );
}

#[test]
fn the_fan_out_drains_every_range_once_through_short_and_empty_pages() {
    use acr_webhook_core::cosmos::QueryScope;
    use acr_webhook_core::event_reads::{round_trip_budget, Reads};
    use acr_webhook_core::read_api::{query_body, EventQuery};
    let documents = documents();
    let cfg = config(&[]);
    let mut gateway = Gateway::new(200, "/id", &documents);
    gateway.page_caps = vec![usize::MAX, 0, 1];
    let reads = Reads::new(&cfg, &gateway, now());
    let ranges = block_on(reads.partition_key_ranges()).unwrap();
    assert_eq!(ranges.len(), 200);
    reads.allow_for_ranges(ranges.len());
    let targets: Vec<QueryScope<'_>> = ranges
        .iter()
        .map(|r| QueryScope::PartitionKeyRange(r))
        .collect();
    let body = query_body(&EventQuery::parse("").unwrap(), None);
    let mut seen: Vec<(usize, String)> = Vec::new();
    block_on(reads.drain(&body, &targets, 1000, |i, page| {
        seen.extend(
            page.iter()
                .map(|d| (i, d["id"].as_str().unwrap().to_owned())),
        );
        Ok(())
    }))
    .unwrap();
    let mut ids: Vec<String> = seen.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = documents
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    want.sort();
    assert_eq!(ids, want);
    // Each document came from the range that holds it.
    for (i, id) in &seen {
        assert!(gateway.ranges[*i].iter().any(|d| d["id"] == id.as_str()));
    }
    assert!(gateway.requests.borrow().len() <= round_trip_budget(200));
    assert!(gateway.max_in_flight.get() > 1);
}

/// Every request a read sends (`pkranges`, the queries of a page, of `GET /events/{id}` in one
/// partition and across partitions, of the summary) asks Cosmos DB for low priority, so that
/// a burst of reads is throttled before the writes that store events.
#[test]
fn every_read_request_is_sent_at_low_priority() {
    let documents = documents();
    let id = documents[10]["id"].as_str().unwrap().to_owned();
    for partition_key in ["/id", "/image"] {
        let gateway = Gateway::new(3, partition_key, &documents);
        let cfg = config(&[("partition_key_path", partition_key)]);
        assert_eq!(get(&gateway, &cfg, "/events?limit=5").0, 200);
        assert_eq!(get(&gateway, &cfg, "/events?image=team%2Fapp-1").0, 200);
        assert_eq!(get(&gateway, &cfg, &format!("/events/{id}")).0, 200);
        let summary_cfg = config(&[
            ("read_keys", SUMMARY_READ_KEY),
            ("partition_key_path", partition_key),
        ]);
        let uri = "/events/summary?since=2026-11-20T00:00:00Z&until=2026-11-23T00:00:00Z";
        assert_eq!(summary_get(&gateway, &summary_cfg, uri).0, 200);
        let requests = gateway.requests.borrow();
        assert!(requests
            .iter()
            .any(|r| r.uri().path().ends_with("/pkranges")));
        for request in requests.iter() {
            assert_eq!(
                request
                    .headers()
                    .get("x-ms-cosmos-priority-level")
                    .map(|v| v.to_str().unwrap()),
                Some("Low"),
                "{partition_key}: {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}
