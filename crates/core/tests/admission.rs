//! What is refused before anything is written: routes, methods, keys, sizes, bodies, config.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use acr_webhook_core::{
    handle, known_header, log_line, respond, ConfigError, Failure, Success, VariableSource,
    REQUEST_HEADERS,
};
use common::*;

fn run(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, serde_json::Value, MemoryStore) {
    let store = MemoryStore::new();
    let h = head(method, uri, headers);
    let outcome = block_on(handle(&h, body, Ok(config(&[])), &store, now()));
    let response = respond(&outcome);
    let json = if response.body().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(response.body()).unwrap()
    };
    (response.status().as_u16(), json, store)
}

fn bearer() -> String {
    format!("Bearer {TEST_WEBHOOK_KEY}")
}

#[test]
fn routes_and_methods() {
    assert_eq!(run("GET", "/healthz", &[], vec![]).0, 200);
    assert_eq!(run("HEAD", "/healthz", &[], vec![]).0, 200);
    assert_eq!(run("POST", "/healthz", &[], vec![]).0, 405);
    assert_eq!(run("GET", "/nope", &[], vec![]).0, 404);
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let (status, body, store) = run(
            method,
            "/acr",
            &[("authorization", &bearer())],
            fixture("acr/push.json"),
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (405, Some("method_not_allowed"))
        );
        assert!(store.requests.borrow().is_empty());
    }
    // Spin hands the component an absolute URI; routing reads the path only.
    let (status, _, _) = run(
        "POST",
        "http://127.0.0.1:3000/acr",
        &[("authorization", &bearer())],
        fixture("acr/push.json"),
    );
    assert_eq!(status, 201);
}

#[test]
fn every_key_form_and_its_failures() {
    let fx = [("x-functions-key", TEST_WEBHOOK_KEY)];
    assert_eq!(run("POST", "/acr", &fx, fixture("acr/push.json")).0, 201);
    let uri = format!("/acr?code={TEST_WEBHOOK_KEY}");
    assert_eq!(run("POST", &uri, &[], fixture("acr/push.json")).0, 201);

    let prefix = format!("Bearer {}", &TEST_WEBHOOK_KEY[..10]);
    let rotated_out = "Bearer test-webhook-key-retired";
    for headers in [
        vec![],
        vec![("authorization", "Bearer ")],
        vec![("authorization", prefix.as_str())],
        vec![("authorization", rotated_out)],
        vec![("authorization", TEST_WEBHOOK_KEY)],
        vec![("x-api-key", TEST_WEBHOOK_KEY)],
    ] {
        let (status, body, store) = run("POST", "/acr", &headers, fixture("acr/push.json"));
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(body["error"], "unauthorized");
        assert!(
            store.requests.borrow().is_empty(),
            "nothing sent to the store"
        );
    }
}

#[test]
fn the_key_is_checked_before_the_body_is_read() {
    // A body that is not JSON and too large: without a key, the answer is still 401.
    let (status, ..) = run("POST", "/acr", &[], vec![b'x'; 2 << 20]);
    assert_eq!(status, 401);
}

#[test]
fn sizes() {
    let big = vec![b' '; (1 << 20) + 1];
    let (status, body, store) = run("POST", "/acr", &[("authorization", &bearer())], big);
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert!(store.requests.borrow().is_empty());
    let declared = [
        ("authorization", bearer()),
        ("content-length", "2097152".to_string()),
    ];
    let declared: Vec<(&str, &str)> = declared.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(run("POST", "/acr", &declared, vec![]).0, 413);
}

#[test]
fn bodies_that_are_not_events() {
    for (body, code) in [
        (&b"{"[..], "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff", "invalid_json"),
        (b"[]", "invalid_event"),
        (b"{}", "invalid_event"),
        (b"null", "invalid_event"),
        (br#"{"action":1}"#, "invalid_event"),
        (
            br#"{"action":"push","target":{"size":"1"}}"#,
            "invalid_event",
        ),
        (br#"{"action":"pull now"}"#, "unsupported_action"),
        (br#"{"action":""}"#, "unsupported_action"),
    ] {
        let (status, json, store) = run(
            "POST",
            "/acr",
            &[("authorization", &bearer())],
            body.to_vec(),
        );
        assert_eq!(
            (status, json["error"].as_str()),
            (400, Some(code)),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert!(store.requests.borrow().is_empty());
    }
}

#[test]
fn missing_configuration_is_500_naming_the_variable() {
    let store = MemoryStore::new();
    let h = head("POST", "/acr", &[("authorization", &bearer())]);
    let outcome = block_on(handle(
        &h,
        fixture("acr/push.json"),
        Err(ConfigError::Missing("cosmos_key")),
        &store,
        now(),
    ));
    let response = respond(&outcome);
    assert_eq!(response.status(), 500);
    let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(json["error"], "configuration_error");
    assert!(json["message"].as_str().unwrap().contains("cosmos_key"));
    // The health check does not need the configuration.
    let h = head("GET", "/healthz", &[]);
    let outcome = block_on(handle(
        &h,
        vec![],
        Err(ConfigError::Missing("cosmos_key")),
        &store,
        now(),
    ));
    assert_eq!(respond(&outcome).status(), 200);
}

#[test]
fn a_request_without_a_valid_key_reads_only_the_keys() {
    // Spin variables as the component reads them: every lookup is recorded. The Cosmos key
    // is broken, which an admitted request reports (500) and a refused one never reaches.
    let variables = |read_keys: &str| {
        HashMap::from([
            ("cosmos_endpoint", "http://127.0.0.1:8081".to_string()),
            ("cosmos_key", "not base64!".to_string()),
            ("webhook_keys", TEST_WEBHOOK_KEY.to_string()),
            ("read_keys", read_keys.to_string()),
        ])
    };
    const READER: &str = "reader-key-0123456789";
    let cases = [
        ("POST", "/acr", "", vec!["webhook_keys"]),
        ("POST", "/distribution", "", vec!["webhook_keys"]),
        ("POST", "/eventgrid", "", vec!["webhook_keys"]),
        ("GET", "/events", READER, vec!["read_keys"]),
        ("GET", "/events/some-id", READER, vec!["read_keys"]),
        ("GET", "/events/summary", READER, vec!["read_keys"]),
    ];
    for (method, path, read_keys, expected) in cases {
        let vars = variables(read_keys);
        let asked = RefCell::new(Vec::new());
        let source = VariableSource::new(|name: &str| {
            asked.borrow_mut().push(name.to_string());
            vars.get(name).cloned()
        });
        let store = MemoryStore::new();
        let h = head(method, path, &[("authorization", "Bearer wrong-key")]);
        let outcome = block_on(handle(&h, fixture("acr/push.json"), source, &store, now()));
        assert_eq!(respond(&outcome).status(), 401, "{method} {path}");
        assert_eq!(*asked.borrow(), expected, "{method} {path}");
        assert!(store.requests.borrow().is_empty());

        // The same request with the right key reads the rest and reports the broken key.
        let key = if method == "POST" {
            TEST_WEBHOOK_KEY
        } else {
            read_keys
        };
        let source = VariableSource::new(|name: &str| vars.get(name).cloned());
        let h = head(method, path, &[("authorization", &format!("Bearer {key}"))]);
        let outcome = block_on(handle(&h, fixture("acr/push.json"), source, &store, now()));
        let response = respond(&outcome);
        assert_eq!(response.status(), 500, "{method} {path}");
        let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert!(
            json["message"].as_str().unwrap().contains("cosmos_key"),
            "{json}"
        );
    }
}

/// Reading is opt-in: without `read_keys` every read route answers 403 `reads_disabled`
/// naming the variable, whatever key is presented (the webhook key included), after reading
/// only `read_keys`; with `read_keys` set, a webhook key still never reads and a read key
/// never writes.
#[test]
fn reads_need_read_keys_and_keys_keep_to_their_side() {
    for unset in [None, Some(""), Some("   ")] {
        for path in [
            "/events",
            "/events/some-id",
            "/events/summary?since=2026-01-01T00:00:00Z",
        ] {
            for key in [TEST_WEBHOOK_KEY, "wrong-key-0123456789"] {
                let mut vars = HashMap::from([
                    ("cosmos_endpoint", "http://127.0.0.1:8081".to_string()),
                    ("cosmos_key", TEST_COSMOS_KEY.to_string()),
                    ("webhook_keys", TEST_WEBHOOK_KEY.to_string()),
                ]);
                if let Some(value) = unset {
                    vars.insert("read_keys", value.to_string());
                }
                let asked = RefCell::new(Vec::new());
                let source = VariableSource::new(|name: &str| {
                    asked.borrow_mut().push(name.to_string());
                    vars.get(name).cloned()
                });
                let store = MemoryStore::new();
                let h = head("GET", path, &[("authorization", &format!("Bearer {key}"))]);
                let outcome = block_on(handle(&h, vec![], source, &store, now()));
                let response = respond(&outcome);
                assert_eq!(response.status(), 403, "{path} {unset:?}");
                let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
                assert_eq!(json["error"], "reads_disabled");
                assert!(
                    json["message"].as_str().unwrap().contains("read_keys"),
                    "{json}"
                );
                assert_eq!(*asked.borrow(), ["read_keys"]);
                assert!(store.requests.borrow().is_empty());
            }
        }
    }

    const READER: &str = "reader-key-0123456789";
    let cfg = config(&[("read_keys", READER)]);
    let store = MemoryStore::new();
    let webhook_reads = head(
        "GET",
        "/events",
        &[("authorization", &format!("Bearer {TEST_WEBHOOK_KEY}"))],
    );
    let outcome = block_on(handle(
        &webhook_reads,
        vec![],
        Ok(cfg.clone()),
        &store,
        now(),
    ));
    // The answer names the key the route takes: a read key here, a webhook key below.
    assert_unauthorized_naming(&outcome, "read key");
    let reader_writes = head(
        "POST",
        "/acr",
        &[
            ("authorization", &format!("Bearer {READER}")),
            ("content-type", "application/json"),
        ],
    );
    let outcome = block_on(handle(
        &reader_writes,
        fixture("acr/push.json"),
        Ok(cfg),
        &store,
        now(),
    ));
    assert_unauthorized_naming(&outcome, "webhook key");
    assert!(store.requests.borrow().is_empty());
}

/// A 401 whose message says which kind of key was missing or wrong.
fn assert_unauthorized_naming(outcome: &Result<Success, Failure>, kind: &str) {
    let refused = respond(outcome);
    assert_eq!(refused.status(), 401);
    let json: serde_json::Value = serde_json::from_slice(refused.body()).unwrap();
    let message = json["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("missing or wrong {kind}")),
        "{json}"
    );
}

#[test]
fn the_log_line_never_has_the_query_string() {
    let h = head("POST", "/acr?code=abc", &[]);
    let store = MemoryStore::new();
    let outcome = block_on(handle(&h, vec![], Ok(config(&[])), &store, now()));
    let line = log_line(&h.method, h.uri.path(), &outcome);
    assert_eq!(line, "POST /acr 401 unauthorized: missing or wrong webhook key (send `Authorization: Bearer <key>`)");
}

/// The component hands the core only the headers in `REQUEST_HEADERS`: every request below
/// (each route, each way of presenting a key, each content type, the Event Grid handshake,
/// sizes) must get the same answer and write the same documents with only those headers as
/// with all the headers it was sent with. A header the core read but the list missed would
/// change an answer here.
#[test]
fn the_headers_the_core_reads_are_all_in_request_headers() {
    let bearer = bearer();
    let key = TEST_WEBHOOK_KEY;
    let with_code = format!("/acr?code={key}");
    let noise = [
        ("host", "receiver.example"),
        ("user-agent", "Go-http-client/1.1"),
        ("accept-encoding", "gzip"),
        ("x-forwarded-for", "10.0.0.1"),
    ];
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/acr",
            vec![
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            fixture("acr/push.json"),
        ),
        (
            "POST",
            "/acr",
            vec![("x-functions-key", key)],
            fixture("acr/delete.json"),
        ),
        ("POST", &with_code, vec![], fixture("acr/ping.json")),
        (
            "POST",
            "/acr",
            vec![("authorization", "Bearer wrong")],
            fixture("acr/push.json"),
        ),
        (
            "POST",
            "/acr",
            vec![("authorization", &bearer), ("content-length", "2000000")],
            fixture("acr/push.json"),
        ),
        (
            "POST",
            "/distribution",
            vec![
                ("authorization", &bearer),
                (
                    "content-type",
                    "application/vnd.docker.distribution.events.v1+json",
                ),
            ],
            fixture("distribution/push.json"),
        ),
        (
            "POST",
            "/distribution",
            vec![("authorization", &bearer), ("content-type", "text/plain")],
            fixture("distribution/push.json"),
        ),
        (
            "POST",
            "/eventgrid",
            vec![
                ("authorization", &bearer),
                ("content-type", "application/json"),
                ("aeg-event-type", "Notification"),
            ],
            fixture("eventgrid/eventgrid-schema/image_pushed.json"),
        ),
        (
            "POST",
            "/eventgrid",
            vec![
                ("authorization", &bearer),
                (
                    "content-type",
                    "application/cloudevents+json; charset=utf-8",
                ),
            ],
            fixture("eventgrid/cloudevents/image_pushed.json"),
        ),
        (
            "POST",
            "/eventgrid",
            vec![
                ("authorization", &bearer),
                ("content-type", "application/json"),
                ("aeg-event-type", "SubscriptionValidation"),
            ],
            fixture("eventgrid/eventgrid-schema/subscription_validation.json"),
        ),
        (
            "OPTIONS",
            "/eventgrid",
            vec![
                ("WebHook-Request-Origin", "eventgrid.azure.net"),
                ("WebHook-Request-Rate", "10"),
            ],
            vec![],
        ),
        (
            "GET",
            "/events?limit=5",
            vec![("authorization", &bearer)],
            vec![],
        ),
        ("GET", "/events", vec![], vec![]),
        ("GET", "/healthz", vec![], vec![]),
    ];
    for (method, uri, headers, body) in cases {
        let mut all = headers.clone();
        all.extend(noise);
        let full = head(method, uri, &all);
        let mut filtered = full.clone();
        filtered.headers = full
            .headers
            .iter()
            .filter_map(|(name, value)| {
                known_header(&REQUEST_HEADERS, name.as_str()).map(|name| (name, value.clone()))
            })
            .collect();
        assert!(filtered.headers.len() < full.headers.len());

        let answer = |h: &http::request::Parts| {
            let store = MemoryStore::new();
            let outcome = block_on(handle(h, body.clone(), Ok(config(&[])), &store, now()));
            let response = respond(&outcome);
            let written = store.requests.borrow().len();
            (
                response.status(),
                response.headers().clone(),
                response.into_body(),
                written,
            )
        };
        assert_eq!(
            answer(&full),
            answer(&filtered),
            "{method} {uri} {headers:?}"
        );
    }
}

/// Read keys travel in headers only: `?code=` on a read route is refused (401, saying why),
/// even with a valid read key in a header beside it, before anything is read; a URL is kept
/// in browser and shell history and in proxy logs. Webhook routes keep `?code=`.
#[test]
fn read_keys_are_refused_in_the_url() {
    let by_header = [("x-functions-key", TEST_READ_KEY)];
    let bearer = format!("Bearer {TEST_READ_KEY}");
    for path in ["/events", "/events/some-id", "/events/summary"] {
        for (query, headers) in [
            (format!("code={TEST_READ_KEY}"), &[][..]),
            (format!("limit=1&code={TEST_READ_KEY}"), &by_header[..]),
            (
                "code=".to_string(),
                &[("authorization", bearer.as_str())][..],
            ),
        ] {
            let uri = format!("{path}?{query}");
            let (status, json, store) = run("GET", &uri, headers, vec![]);
            assert_eq!(status, 401, "{uri}: {json}");
            assert_eq!(json["error"], "unauthorized");
            let message = json["message"].as_str().unwrap();
            assert!(message.contains("never in the URL"), "{message}");
            assert!(!message.contains(TEST_READ_KEY), "{message}");
            // A log line never shows a `?` (it never carries a query string).
            let h = head("GET", &uri, headers);
            let outcome = block_on(handle(&h, vec![], Ok(config(&[])), &store, now()));
            let line = log_line(&http::Method::GET, path, &outcome);
            assert!(!line.contains('?'), "{line}");
            assert!(store.requests.borrow().is_empty(), "{uri}");
        }
    }
    // The same key in a header reads.
    let (status, json, _) = run("GET", "/events/some-id", &by_header, vec![]);
    assert_eq!(
        (status, json["error"].as_str()),
        (404, Some("event_not_found"))
    );
    let (status, _, _) = run(
        "GET",
        "/events/some-id",
        &[("authorization", &bearer)],
        vec![],
    );
    assert_eq!(status, 404);
    // A webhook key in `?code=` still writes.
    let uri = format!("/acr?code={TEST_WEBHOOK_KEY}");
    let (status, json, _) = run(
        "POST",
        &uri,
        &[("content-type", "application/json")],
        fixture("acr/push.json"),
    );
    assert_eq!(status, 201, "{json}");
}
