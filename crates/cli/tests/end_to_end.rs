//! End to end through the network: the real component (`.wasm`) on `acr-webhook up`
//! (wasmtime), the Cosmos-compatible store, and a real Distribution registry. Documents are
//! read back from the store over signed REST.

mod support;

use std::time::Duration;

use acr_webhook_testkit::{CaptureServer, NotifyEndpoint, Registry};
use serde_json::Value;
use support::*;

crate::on_every_host!(
    every_fixture_action_is_answered_and_stored_right,
    the_same_event_twice_is_one_document,
    refusals_write_nothing,
    ping_and_writes_follow_the_store_down_and_back,
    healthz_answers_without_the_store,
    a_real_registry_push_is_stored_with_its_real_digest,
);

/// The document for an ACR event, field by field from the event itself.
fn assert_document_matches_event(doc: &Value, event: &Value) {
    let target = &event["target"];
    let request = &event["request"];
    let present = |v: &Value| match v {
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    };
    let expected = [
        ("id", present(&event["id"])),
        ("action", present(&event["action"])),
        ("timestamp", present(&event["timestamp"])),
        ("loginServer", present(&request["host"])),
        ("image", present(&target["repository"])),
        ("tag", present(&target["tag"])),
        ("digest", present(&target["digest"])),
        ("mediaType", present(&target["mediaType"])),
        ("size", present(&target["size"])),
        ("name", present(&target["name"])),
        ("version", present(&target["version"])),
        ("requestId", present(&request["id"])),
        ("requestMethod", present(&request["method"])),
        ("userAgent", present(&request["useragent"])),
        ("source", Value::from("acr")),
    ];
    for (field, want) in expected {
        assert_eq!(
            doc.get(field).unwrap_or(&Value::Null),
            &want,
            "field {field} of {doc:#}"
        );
    }
    let received = doc["receivedAt"].as_str().unwrap();
    assert!(
        received.ends_with('Z') && received.len() == 24,
        "{received}"
    );
}

fn every_fixture_action_is_answered_and_stored_right(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    for name in [
        "push",
        "delete",
        "quarantine",
        "chart_push",
        "chart_delete",
        "push_digest_only",
        "push_oci_helm",
    ] {
        let path = format!("acr/{name}.json");
        let response = stack.post_acr(&fixture(&path));
        assert_eq!(response.status, 201, "{name}: {}", response.text());
        let event = fixture_json(&path);
        assert_eq!(json(&response)["id"], event["id"]);
        let doc = stack
            .document(event["id"].as_str().unwrap())
            .expect("stored");
        assert_document_matches_event(&doc, &event);
    }
    for ping in ["acr/ping.json", "acr/ping_minimal.json"] {
        let response = stack.post_acr(&fixture(ping));
        assert_eq!(response.status, 204, "{ping}: {}", response.text());
        assert!(response.body.is_empty());
    }
    assert_eq!(stack.count(), 7);
    // One log line per request, without query strings or keys.
    let log = stack.app_log();
    assert!(log.contains("POST /acr 201"), "{log}");
    assert!(!log.contains(TEST_KEY), "{log}");
}

fn the_same_event_twice_is_one_document(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    let first = stack.post_acr(&fixture("acr/push.json"));
    let second = stack.post_acr(&fixture("acr/push.json"));
    assert_eq!((first.status, second.status), (201, 200));
    assert_eq!(json(&second)["status"], "already_stored");
    assert_eq!(stack.count(), 1);
    // Ids Cosmos would refuse, and events without one, are stable too.
    for name in ["push_id_with_slashes", "push_long_id", "push_no_id"] {
        let body = fixture(&format!("acr/{name}.json"));
        let a = stack.post_acr(&body);
        let b = stack.post_acr(&body);
        assert_eq!((a.status, b.status), (201, 200), "{name}: {}", a.text());
        assert_eq!(json(&a)["id"], json(&b)["id"]);
    }
    assert_eq!(stack.count(), 4);
}

fn refusals_write_nothing(host: Runtime) {
    let stack = Stack::start_on(
        host,
        &[("webhook_keys", &format!("{TEST_KEY},{TEST_KEY_2}"))],
    );
    let push = fixture("acr/push.json");
    let before = stack.count();
    let partial = bearer(&TEST_KEY[..TEST_KEY.len() - 2]);
    let wrong = bearer("not-the-key");
    let empty = bearer("");
    let unauthorized: [(&str, Vec<(&str, &str)>); 6] = [
        ("/acr", vec![]),
        ("/acr", vec![("authorization", &wrong)]),
        ("/acr", vec![("authorization", &partial)]),
        ("/acr", vec![("authorization", &empty)]),
        ("/acr", vec![("x-api-key", TEST_KEY)]),
        ("/acr?code=wrong", vec![]),
    ];
    for (path, headers) in unauthorized {
        let response = stack.post(path, &headers, &push);
        assert_eq!(response.status, 401, "{path} {headers:?}");
        assert_eq!(json(&response)["error"], "unauthorized");
    }
    let auth = bearer(TEST_KEY);
    let invalid = stack.post(
        "/acr",
        &[("authorization", &auth)],
        b"{\"action\": \"push\",",
    );
    assert_eq!(
        (invalid.status, json(&invalid)["error"].as_str()),
        (400, Some("invalid_json"))
    );
    let not_event = stack.post("/acr", &[("authorization", &auth)], b"[1,2]");
    assert_eq!(
        (not_event.status, json(&not_event)["error"].as_str()),
        (400, Some("invalid_event"))
    );
    let big = vec![b' '; 2 << 20];
    let too_big = stack.post("/acr", &[("authorization", &auth)], &big);
    assert_eq!(
        (too_big.status, json(&too_big)["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    let get = acr_webhook_testkit::http::request(
        "GET",
        &stack.url("/acr"),
        &[("authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    assert_eq!(stack.count(), before, "nothing was written");

    // Every configured key works, in every accepted form.
    let code = format!("/acr?code={TEST_KEY_2}");
    assert_eq!(stack.post(&code, &[], &push).status, 201);
    let fx = fixture("acr/delete.json");
    assert_eq!(
        stack
            .post("/acr", &[("x-functions-key", TEST_KEY)], &fx)
            .status,
        201
    );
    assert!(!stack.app_log().contains(TEST_KEY_2), "no key in the log");
}

fn ping_and_writes_follow_the_store_down_and_back(host: Runtime) {
    let mut stack = Stack::start_on(host, &[("write_budget_ms", "1500")]);
    assert_eq!(stack.post_acr(&fixture("acr/ping.json")).status, 204);

    stack.store.stop();
    let ping = stack.post_acr(&fixture("acr/ping.json"));
    assert_eq!(ping.status, 503, "{}", ping.text());
    assert_eq!(json(&ping)["error"], "store_check_failed");
    let push = stack.post_acr(&fixture("acr/push.json"));
    assert_eq!(push.status, 503, "{}", push.text());
    assert_eq!(json(&push)["error"], "store_unavailable");
    assert!(push.header("retry-after").is_some());

    // The store comes back (empty: it keeps nothing in memory), the sender retries.
    stack.store.restart();
    stack.init();
    let again = stack.post_acr(&fixture("acr/push.json"));
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(stack.post_acr(&fixture("acr/push.json")).status, 200);
    assert_eq!(stack.count(), 1);
}

fn healthz_answers_without_the_store(host: Runtime) {
    let mut stack = Stack::start_on(host, &[]);
    stack.store.stop();
    let r = acr_webhook_testkit::http::request("GET", &stack.url("/healthz"), &[], None).unwrap();
    assert_eq!(r.status, 200);
}

fn a_real_registry_push_is_stored_with_its_real_digest(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    let hook = CaptureServer::start(200);
    let registry = Registry::start(Some(NotifyEndpoint::new(hook.url())));
    let image = registry.push_image("team/app", "v1");
    let envelope_event = hook.wait_for_event(
        |e| e["action"] == "push" && e["target"]["tag"] == "v1",
        Duration::from_secs(20),
    );
    // ACR sends one bare event per request: unwrap the envelope, event by event.
    let response = stack.post_acr(&serde_json::to_vec(&envelope_event).unwrap());
    assert_eq!(response.status, 201, "{}", response.text());
    let doc = stack
        .document(envelope_event["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(doc["digest"], image.digest.as_str());
    assert_eq!(doc["image"], "team/app");
    assert_eq!(doc["tag"], "v1");
    assert_eq!(doc["mediaType"], image.manifest_media_type.as_str());
}
