//! Nothing lost, end to end through the real component (`.wasm`) on
//! `acr-webhook up` and the Cosmos-compatible store: future actions are stored, a different
//! event that reuses an id is stored beside the one holding it, and a batch's duplicate
//! check is per partition.

mod support;

use acr_webhook_testkit::http::HttpResponse;
use serde_json::{json, Value};
use support::*;

fn push(id: &str, image: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "timestamp": "2024-05-01T10:00:00.1234567Z", "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "repository": image, "tag": "v1", "digest": digest},
        "request": {"id": "r", "host": "reg.azurecr.io", "method": "PUT", "useragent": "t"}
    }))
    .unwrap()
}

fn post_distribution(stack: &Stack, events: Value) -> HttpResponse {
    let auth = bearer(TEST_KEY);
    stack.post(
        "/distribution",
        &[
            ("authorization", &auth),
            (
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            ),
        ],
        &serde_json::to_vec(&json!({ "events": events })).unwrap(),
    )
}

fn manifest_event(id: &str, image: &str, action: &str) -> Value {
    json!({"id": id, "action": action, "timestamp": "2024-05-01T10:00:00Z",
           "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "repository": image, "digest": "sha256:1"}})
}

#[test]
fn an_action_this_receiver_does_not_know_is_stored_and_logged() {
    let stack = Stack::start();
    let body = br#"{"id":"future-1","action":"Image.Retag","target":{"repository":"team/app","tag":"v2"}}"#;
    let response = stack.post_acr(body);
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(stack.document("future-1").unwrap()["action"], "image.retag");
    let response = stack.post_acr(br#"{"id":"caps-1","action":"PUSH"}"#);
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(stack.document("caps-1").unwrap()["action"], "push");
    let response = stack.post_acr(br#"{"id":"bad-1","action":"re tag"}"#);
    assert_eq!(response.status, 400);
    assert_eq!(json(&response)["error"], "unsupported_action");
    // Distribution: stored too (a manifest target).
    let response = post_distribution(&stack, json!([manifest_event("d-1", "team/app", "retag")]));
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(stack.document("d-1").unwrap()["action"], "retag");
    assert_eq!(stack.count(), 3);
    let log = stack.app_log();
    assert!(
        log.contains("action `image.retag` is not one this receiver knows"),
        "{log}"
    );
}

#[test]
fn a_different_event_reusing_an_id_is_stored_beside_it() {
    let stack = Stack::start();
    let first = stack.post_acr(&push("e1", "team/app", "sha256:1"));
    assert_eq!(first.status, 201, "{}", first.text());
    let second = stack.post_acr(&push("e1", "team/app", "sha256:2"));
    assert_eq!(second.status, 201, "{}", second.text());
    let answer = json(&second);
    assert_eq!(answer["conflictsWith"], "e1");
    let beside = answer["id"].as_str().unwrap().to_owned();
    assert!(beside.starts_with("e1~conflict-"), "{beside}");
    let doc = stack.document(&beside).expect("stored beside");
    assert_eq!(
        (&doc["eventId"], &doc["conflictsWith"], &doc["digest"]),
        (&json!("e1"), &json!("e1"), &json!("sha256:2"))
    );
    assert_eq!(stack.document("e1").unwrap()["digest"], "sha256:1");
    // Redeliveries of either: 200, nothing new.
    let again = stack.post_acr(&push("e1", "team/app", "sha256:2"));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(json(&again)["id"], beside.as_str());
    let again = stack.post_acr(&push("e1", "team/app", "sha256:1"));
    assert_eq!(again.status, 200);
    assert_eq!(json(&again)["id"], "e1");
    assert_eq!(stack.count(), 2);
    let log = stack.app_log();
    assert!(
        log.contains("warning: id e1 holds a different event"),
        "{log}"
    );
}

#[test]
fn with_partition_key_image_batches_check_duplicates_per_partition() {
    let stack = Stack::start_with(&[("partition_key_path", "/image")]);
    let events = |image: &str| {
        json!([
            manifest_event("p-1", image, "push"),
            manifest_event("p-2", image, "push")
        ])
    };
    let first = post_distribution(&stack, events("team/a"));
    assert_eq!(first.status, 201, "{}", first.text());
    // The same ids under another image are other documents in Cosmos DB: stored.
    let second = post_distribution(&stack, events("team/b"));
    assert_eq!(second.status, 201, "{}", second.text());
    assert_eq!(json(&second)["stored"], json!(["p-1", "p-2"]));
    assert_eq!(stack.count(), 4);
    let again = post_distribution(&stack, events("team/b"));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(json(&again)["alreadyStored"], json!(["p-1", "p-2"]));
    assert_eq!(stack.count(), 4);
    // A conflict's point read goes to the document's partition.
    let first = stack.post_acr(&push("e9", "team/c", "sha256:1"));
    assert_eq!(first.status, 201, "{}", first.text());
    let second = stack.post_acr(&push("e9", "team/c", "sha256:2"));
    assert_eq!(second.status, 201, "{}", second.text());
    assert_eq!(json(&second)["conflictsWith"], "e9");
    assert_eq!(
        stack.post_acr(&push("e9", "team/c", "sha256:2")).status,
        200
    );
    assert_eq!(stack.count(), 6);
}
