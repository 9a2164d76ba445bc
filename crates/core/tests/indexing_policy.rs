//! A container without the read API's composite index, against a stand-in that answers the way
//! Cosmos DB's gateway does: an `ORDER BY` on two properties without a composite index that
//! serves it is refused (400, the documented sentence inside the gateway's `Message:
//! {"Errors":[...]}` envelope); a `PUT` of the container replaces its indexing policy, is
//! conditional on `If-Match`, and keeps every document (the index is built online), which the
//! local store does not do (it empties a replaced container; see crates/cli/tests/
//! indexing_policy.rs for the same flow against it).
//!
//! The flow is the one `acr-webhook init` runs, with the core's own plan and request.

mod common;

use std::cell::RefCell;
use std::time::Duration;

use acr_webhook_core::indexing::{self, PolicyPlan};
use acr_webhook_core::{handle, respond, Config, Host, TransportError};
use common::{block_on, config, fixture, head, now, TEST_WEBHOOK_KEY};
use http::{Request, Response};
use serde_json::{json, Value};

const READ_KEY: &str = "test-read-key-index-6b5a";

/// The stand-in gateway: one container, two partition key ranges.
struct Gateway {
    container: RefCell<Value>,
    documents: Vec<Value>,
    etags: RefCell<u32>,
    requests: RefCell<Vec<(http::Method, String)>>,
}

/// The gateway's rule, written here independently of the core: a composite index on exactly
/// `/receivedAt`, `/id`, in the query's orders or in their exact reverse.
fn gateway_serves(policy: &Value) -> bool {
    let order = |e: &Value| e["order"].as_str().unwrap_or("ascending").to_owned();
    policy["compositeIndexes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|index| {
            let Some(paths) = index.as_array() else {
                return false;
            };
            paths.len() == 2
                && paths[0]["path"] == "/receivedAt"
                && paths[1]["path"] == "/id"
                && order(&paths[0]) == order(&paths[1])
        })
}

impl Gateway {
    fn new(policy: Value, documents: Vec<Value>) -> Self {
        Self {
            container: RefCell::new(json!({
                "id": "events",
                "indexingPolicy": policy,
                "partitionKey": {"paths": ["/id"], "kind": "Hash", "version": 2},
                "conflictResolutionPolicy": {"mode": "LastWriterWins", "conflictResolutionPath": "/_ts"},
                "geospatialConfig": {"type": "Geography"},
                "_rid": "PaAfAPqHYgE=",
                "_ts": 1_459_194_239,
                "_self": "dbs/PaAfAA==/colls/PaAfAPqHYgE=/",
                "_etag": "\"etag-0\"",
                "_docs": "docs/",
                "_sprocs": "sprocs/",
                "_triggers": "triggers/",
                "_udfs": "udfs/",
                "_conflicts": "conflicts/"
            })),
            documents,
            etags: RefCell::new(0),
            requests: RefCell::default(),
        }
    }

    fn answer(&self, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
        let path = request.uri().path();
        let reply = |status: u16, body: Value| {
            Response::builder()
                .status(status)
                .body(body.to_string().into_bytes())
                .unwrap()
        };
        match (request.method().as_str(), path) {
            ("GET", "/dbs/acr/colls/events") => reply(200, self.container.borrow().clone()),
            ("PUT", "/dbs/acr/colls/events") => {
                let body: Value = serde_json::from_slice(request.body()).unwrap();
                let mut container = self.container.borrow_mut();
                if let Some(etag) = request.headers().get("if-match") {
                    if *etag != container["_etag"].as_str().unwrap() {
                        return reply(
                            412,
                            json!({"code": "PreconditionFailed", "message": "Operation cannot be performed because one of the specified precondition is not met."}),
                        );
                    }
                }
                if body["id"] != "events" || body["partitionKey"] != container["partitionKey"] {
                    return reply(
                        400,
                        json!({"code": "BadRequest", "message": "Replace of id or partition key is not allowed"}),
                    );
                }
                for (name, value) in body.as_object().unwrap() {
                    assert!(!name.starts_with('_'), "system property {name} sent back");
                    container[name] = value.clone();
                }
                *self.etags.borrow_mut() += 1;
                container["_etag"] = json!(format!("\"etag-{}\"", self.etags.borrow()));
                reply(200, container.clone())
            }
            ("GET", "/dbs/acr/colls/events/pkranges") => reply(
                200,
                json!({"_rid": "PaAfAPqHYgE=", "PartitionKeyRanges": [
                    {"id": "0", "minInclusive": "", "maxExclusive": "7F"},
                    {"id": "1", "minInclusive": "7F", "maxExclusive": "FF"}
                ], "_count": 2}),
            ),
            ("POST", "/dbs/acr/colls/events/docs") => self.query(request),
            other => panic!("unexpected request {other:?}"),
        }
    }

    fn query(&self, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        let sql = body["query"].as_str().unwrap();
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let mut found: Vec<Value> = match header("x-ms-documentdb-partitionkeyrangeid") {
            Some(range) => self
                .documents
                .iter()
                .filter(|d| (d["id"].as_str().unwrap().len() % 2).to_string() == range)
                .cloned()
                .collect(),
            None => self.documents.clone(),
        };
        if sql.contains("ORDER BY") {
            assert_eq!(
                sql, "SELECT * FROM c ORDER BY c.receivedAt DESC, c.id DESC",
                "the stand-in serves the unfiltered list only"
            );
            if !gateway_serves(&self.container.borrow()["indexingPolicy"]) {
                return Response::builder()
                    .status(400)
                    .body(fixture("cosmos/gateway-missing-composite-index.json"))
                    .unwrap();
            }
            found.sort_by(|a, b| {
                let key = |d: &Value| (d["receivedAt"].to_string(), d["id"].to_string());
                key(b).cmp(&key(a))
            });
        } else {
            let id = body["parameters"][0]["value"].clone();
            assert_eq!(sql, "SELECT * FROM c WHERE c.id = @id");
            found.retain(|d| d["id"] == id);
        }
        Response::builder()
            .status(200)
            .body(
                json!({"_rid": "PaAfAPqHYgE=", "Documents": found, "_count": found.len()})
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
        self.requests
            .borrow_mut()
            .push((request.method().clone(), request.uri().path().to_owned()));
        Ok(self.answer(&request))
    }
    async fn sleep(&self, _duration: Duration) {}
    fn elapsed(&self) -> Duration {
        Duration::ZERO
    }
    fn random_u64(&self) -> u64 {
        4
    }
}

fn cfg() -> Config {
    config(&[("read_keys", READ_KEY)])
}

fn documents() -> Vec<Value> {
    (0..7)
        .map(|i| {
            json!({
                "id": format!("event-{}", "x".repeat(i)),
                "action": "push",
                "image": "team/app",
                "receivedAt": format!("2026-12-04T19:0{i}:00.000Z"),
            })
        })
        .collect()
}

/// `GET {uri}` with the read key: status, body, and the whole answer.
fn get(gateway: &Gateway, uri: &str) -> (u16, Value) {
    let bearer = format!("Bearer {READ_KEY}");
    let h = head("GET", uri, &[("authorization", &bearer)]);
    let outcome = block_on(handle(&h, Vec::new(), Ok(cfg()), gateway, now()));
    let response = respond(&outcome);
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// An ACR ping: the answer's status and `Warning` header.
fn ping(gateway: &Gateway) -> (u16, Option<String>) {
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let h = head("POST", "/acr", &[("authorization", &bearer)]);
    let outcome = block_on(handle(
        &h,
        fixture("acr/ping.json"),
        Ok(cfg()),
        gateway,
        now(),
    ));
    let response = respond(&outcome);
    let warning = response
        .headers()
        .get("warning")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), warning)
}

/// What `acr-webhook init` does once the container exists: read it, plan, replace.
fn mend(gateway: &Gateway) -> Option<u16> {
    let store = cfg().store;
    let date = "Fri, 04 Dec 2026 20:00:00 GMT";
    let read = block_on(gateway.send(store.read_container_request(date), Duration::ZERO)).unwrap();
    let container: Value = serde_json::from_slice(read.body()).unwrap();
    match indexing::plan(&container).unwrap() {
        PolicyPlan::Ready => None,
        PolicyPlan::Add {
            container, etag, ..
        } => {
            let put = store.replace_container_request(&container, etag.as_deref(), date);
            Some(
                block_on(gateway.send(put, Duration::ZERO))
                    .unwrap()
                    .status()
                    .as_u16(),
            )
        }
        PolicyPlan::Blocked(reason) => panic!("{reason}"),
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_gateways_refusal_is_index_missing_and_the_planned_put_mends_it_keeping_the_events() {
    // What `az cosmosdb sql container create` without `--idx` gives: the default policy.
    let default_policy = json!({
        "indexingMode": "consistent",
        "automatic": true,
        "includedPaths": [{"path": "/*"}],
        "excludedPaths": [{"path": "/\"_etag\"/?"}]
    });
    let gateway = Gateway::new(default_policy.clone(), documents());

    let (status, body) = get(&gateway, "/events?limit=50");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "index_missing");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Cosmos DB refused the read query (The order by query does not have a corresponding \
             composite index that it can be served from. (ActivityId: \
             af78cca2-48d9-4cf2-94a9-3582e86a0b3e)): container `events` of database `acr` has \
             no composite index (/receivedAt DESC, /id DESC)"
        ),
        "{message}"
    );
    assert!(!message.contains("/apps/"), "{message}");
    // Refused at the first range: a refusal is final, nothing more is asked.
    let queries = gateway
        .requests
        .borrow()
        .iter()
        .filter(|(m, _)| m == "POST")
        .count();
    assert_eq!(queries, 1);

    let (status, warning) = ping(&gateway);
    assert_eq!(status, 204);
    assert!(
        warning
            .as_deref()
            .is_some_and(|w| w.contains("(/receivedAt DESC, /id DESC)")),
        "{warning:?}"
    );
    // The read by id orders nothing: it works without the index.
    let (status, body) = get(&gateway, "/events/event-xxx");
    assert_eq!(status, 200, "{body}");

    // A stale etag is refused, and nothing changes.
    gateway.container.borrow_mut()["_etag"] = json!("\"someone-else\"");
    let store = cfg().store;
    let mut planned = gateway.container.borrow().clone();
    let PolicyPlan::Add { container, .. } = indexing::plan(&planned).unwrap() else {
        panic!()
    };
    let put = store.replace_container_request(&container, Some("\"etag-0\""), "d");
    assert_eq!(
        block_on(gateway.send(put, Duration::ZERO))
            .unwrap()
            .status(),
        412
    );
    assert_eq!(gateway.container.borrow()["indexingPolicy"], default_policy);

    // The mend: one PUT with the current etag.
    assert_eq!(mend(&gateway), Some(200));
    planned = gateway.container.borrow().clone();
    let policy = &planned["indexingPolicy"];
    for field in [
        "indexingMode",
        "automatic",
        "includedPaths",
        "excludedPaths",
    ] {
        assert_eq!(policy[field], default_policy[field], "{field}");
    }
    assert_eq!(
        policy["compositeIndexes"],
        json!([[{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "descending"}]])
    );
    assert_eq!(
        planned["conflictResolutionPolicy"]["mode"],
        "LastWriterWins"
    );

    // Reads work at once, with every event written before the change, newest first.
    let (status, body) = get(&gateway, "/events?limit=50");
    assert_eq!(status, 200, "{body}");
    let mut expected: Vec<String> = documents()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    expected.reverse();
    assert_eq!(ids(&body), expected);
    assert_eq!(ping(&gateway), (204, None));

    // Nothing left to do.
    assert_eq!(mend(&gateway), None);
}

#[test]
fn the_exact_reverse_index_serves_the_order_and_needs_no_change() {
    let policy = json!({
        "indexingMode": "consistent",
        "compositeIndexes": [[{"path": "/receivedAt", "order": "ascending"}, {"path": "/id", "order": "ascending"}]]
    });
    let gateway = Gateway::new(policy, documents());
    let (status, body) = get(&gateway, "/events");
    assert_eq!(status, 200, "{body}");
    assert_eq!(ping(&gateway), (204, None));
    assert_eq!(mend(&gateway), None);
}

#[test]
fn a_mixed_order_index_does_not_serve_and_gets_the_right_one_beside_it() {
    let wrong = json!([{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "ascending"}]);
    let policy = json!({"indexingMode": "consistent", "compositeIndexes": [wrong.clone()]});
    let gateway = Gateway::new(policy, documents());
    assert_eq!(get(&gateway, "/events").0, 500);
    assert_eq!(ping(&gateway).0, 204);
    assert!(ping(&gateway).1.is_some());
    assert_eq!(mend(&gateway), Some(200));
    let composite = gateway.container.borrow()["indexingPolicy"]["compositeIndexes"].clone();
    assert_eq!(composite[0], wrong, "the user's index stays");
    assert_eq!(composite.as_array().unwrap().len(), 2);
    assert_eq!(get(&gateway, "/events").0, 200);
}
