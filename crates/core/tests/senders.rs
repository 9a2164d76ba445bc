//! Distribution notifications and Event Grid deliveries through the whole flow: the same
//! registry event lands as the same document whichever way it came.

mod common;

use acr_webhook_core::{handle, respond, Success};
use common::*;
use serde_json::Value;

fn post(
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    store: &MemoryStore,
    extra: &[(&str, &str)],
) -> (
    Result<Success, acr_webhook_core::Failure>,
    http::Response<Vec<u8>>,
) {
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let h = head(
        "POST",
        path,
        &[("authorization", &bearer), ("content-type", content_type)],
    );
    let cfg = config(extra);
    let outcome = block_on(handle(&h, body, Ok(cfg), store, now()));
    let response = respond(&outcome);
    (outcome, response)
}

const DISTRIBUTION_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

#[test]
fn distribution_push_is_stored_and_pulls_and_blobs_are_skipped() {
    let store = MemoryStore::new();
    let (_, response) = post(
        "/distribution",
        DISTRIBUTION_TYPE,
        fixture("distribution/push.json"),
        &store,
        &[],
    );
    assert_eq!(response.status(), 201);
    let docs = store.documents.borrow();
    assert_eq!(docs.len(), 1);
    let doc = docs.values().next().unwrap();
    assert_eq!(doc["source"], "distribution");
    assert_eq!(doc["action"], "push");
    let original: Value = serde_json::from_slice(&fixture("distribution/push.json")).unwrap();
    assert_eq!(doc["digest"], original["events"][0]["target"]["digest"]);
    assert_eq!(doc["id"], original["events"][0]["id"]);
    drop(docs);

    for skipped in ["distribution/pull.json", "distribution/push_blob.json"] {
        let store = MemoryStore::new();
        let (outcome, response) = post(
            "/distribution",
            DISTRIBUTION_TYPE,
            fixture(skipped),
            &store,
            &[],
        );
        assert_eq!(response.status(), 202, "{skipped}: {outcome:?}");
        assert!(store.documents.borrow().is_empty());
        let store = MemoryStore::new();
        let (_, response) = post(
            "/distribution",
            DISTRIBUTION_TYPE,
            fixture(skipped),
            &store,
            &[("keep_pulls_and_blobs", "true")],
        );
        assert_eq!(response.status(), 201, "{skipped} kept");
    }
}

#[test]
fn a_redelivered_envelope_stores_nothing_twice() {
    let store = MemoryStore::new();
    let body = fixture("distribution/delete_tag.json");
    let (_, first) = post(
        "/distribution",
        DISTRIBUTION_TYPE,
        body.clone(),
        &store,
        &[],
    );
    let (_, again) = post("/distribution", DISTRIBUTION_TYPE, body, &store, &[]);
    assert_eq!(first.status(), 201);
    assert_eq!(again.status(), 200);
    let count = store.documents.borrow().len();
    assert!(count >= 1);
    let answer: Value = serde_json::from_slice(again.body()).unwrap();
    assert_eq!(answer["alreadyStored"].as_array().unwrap().len(), count);
}

#[test]
fn a_partial_failure_answers_non_2xx_and_a_retry_completes_it() {
    // The known-ids query, the first write, then a refusal.
    let store = MemoryStore::scripted(&[
        Behaviour::Normal,
        Behaviour::Normal,
        Behaviour::Status(400, None),
    ]);
    let mut envelope: Value = serde_json::from_slice(&fixture("distribution/push.json")).unwrap();
    let mut second = envelope["events"][0].clone();
    second["id"] = "second-event".into();
    envelope["events"].as_array_mut().unwrap().push(second);
    let body = serde_json::to_vec(&envelope).unwrap();
    let (_, response) = post(
        "/distribution",
        DISTRIBUTION_TYPE,
        body.clone(),
        &store,
        &[],
    );
    assert_eq!(response.status(), 502);
    assert_eq!(store.documents.borrow().len(), 1);
    let (_, response) = post("/distribution", DISTRIBUTION_TYPE, body, &store, &[]);
    assert_eq!(response.status(), 201);
    assert_eq!(store.documents.borrow().len(), 2);
}

#[test]
fn event_grid_and_webhook_copies_of_one_event_are_one_document() {
    let store = MemoryStore::new();
    let egrid = fixture("eventgrid/eventgrid-schema/image_pushed.json");
    let (outcome, response) = post("/eventgrid", "application/json", egrid.clone(), &store, &[]);
    assert_eq!(response.status(), 201, "{outcome:?}");
    let delivered: Value = serde_json::from_slice(&egrid).unwrap();
    let data = &delivered[0]["data"];
    let doc = &store.document(data["id"].as_str().unwrap());
    assert_eq!(doc["source"], "eventgrid");
    assert_eq!(doc["image"], data["target"]["repository"]);
    // The same content as a bare ACR webhook: already stored.
    let (outcome, _) = post(
        "/acr",
        "application/json",
        serde_json::to_vec(data).unwrap(),
        &store,
        &[],
    );
    assert!(
        matches!(outcome, Ok(Success::AlreadyStored { .. })),
        "{outcome:?}"
    );
}

#[test]
fn event_grid_validation_and_cloudevents_handshake() {
    let store = MemoryStore::new();
    let body = fixture("eventgrid/eventgrid-schema/subscription_validation.json");
    let (_, response) = post("/eventgrid", "application/json", body.clone(), &store, &[]);
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(response.body()).unwrap();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answer["validationResponse"],
        sent[0]["data"]["validationCode"]
    );

    let h = head(
        "OPTIONS",
        "/eventgrid",
        &[("webhook-request-origin", "eventgrid.azure.net")],
    );
    let outcome = block_on(handle(&h, vec![], Ok(config(&[])), &store, now()));
    let response = respond(&outcome);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["webhook-allowed-origin"],
        "eventgrid.azure.net"
    );
    assert_eq!(response.headers()["webhook-allowed-rate"], "*");
    let h = head("OPTIONS", "/eventgrid", &[]);
    let outcome = block_on(handle(&h, vec![], Ok(config(&[])), &store, now()));
    assert_eq!(respond(&outcome).status(), 400);
    assert!(store.requests.borrow().is_empty());
}

#[test]
fn filters_answer_202_and_write_nothing() {
    let store = MemoryStore::new();
    let (outcome, response) = post(
        "/acr",
        "application/json",
        fixture("acr/push.json"),
        &store,
        &[("exclude", "hello-world:*")],
    );
    assert_eq!(response.status(), 202, "{outcome:?}");
    let Ok(Success::Filtered { reason }) = outcome else {
        panic!()
    };
    assert!(reason.contains("hello-world"), "{reason}");
    assert!(store.requests.borrow().is_empty());
    let (_, response) = post(
        "/acr",
        "application/json",
        fixture("acr/push.json"),
        &store,
        &[("include", "hello-world:v1")],
    );
    assert_eq!(response.status(), 201);
}

#[test]
fn a_batch_larger_than_the_budget_completes_over_redeliveries() {
    // 1,000 events, 5 ms per write, a 4 s budget: one delivery cannot store them all, but each
    // redelivery skips what is stored (one query) and goes further, until all are stored.
    let store = MemoryStore::new();
    let template: Value = serde_json::from_slice(&fixture("distribution/push.json")).unwrap();
    let events: Vec<Value> = (0..1000)
        .map(|i| {
            let mut e = template["events"][0].clone();
            e["id"] = format!("batch-{i}").into();
            e
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        store.clock.set(std::time::Duration::ZERO);
        let (_, response) = post(
            "/distribution",
            DISTRIBUTION_TYPE,
            body.clone(),
            &store,
            &[],
        );
        statuses.push(response.status().as_u16());
        if response.status().is_success() {
            break;
        }
        let answer: Value = serde_json::from_slice(response.body()).unwrap();
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("of 1000 events"),
            "{answer}"
        );
    }
    assert_eq!(statuses.first(), Some(&503), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    assert_eq!(store.documents.borrow().len(), 1000);
}

/// Cosmos DB's ids are unique per logical partition: with `partition_key_path=/image`, an
/// event whose id is stored under another image is a new event there, and a batch's
/// pre-check must not report it stored.
#[test]
fn a_batch_pre_check_matches_ids_per_partition() {
    let store = MemoryStore::new();
    let by_image = [("partition_key_path", "/image")];
    let envelope = |image: &str, ids: &[&str]| {
        let events: Vec<Value> = ids
            .iter()
            .map(|id| {
                serde_json::json!({
                    "id": id, "action": "push",
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "repository": image, "digest": "sha256:1", "tag": "v1"
                    }
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap()
    };
    let (_, first) = post(
        "/distribution",
        DISTRIBUTION_TYPE,
        envelope("team/a", &["e1", "e2"]),
        &store,
        &by_image,
    );
    assert_eq!(first.status(), 201);
    // The same ids under another image: two new documents.
    let (outcome, second) = post(
        "/distribution",
        DISTRIBUTION_TYPE,
        envelope("team/b", &["e1", "e2"]),
        &store,
        &by_image,
    );
    assert_eq!(second.status(), 201, "{outcome:?}");
    let answer: Value = serde_json::from_slice(second.body()).unwrap();
    assert_eq!(answer["stored"], serde_json::json!(["e1", "e2"]));
    assert_eq!(answer["alreadyStored"], serde_json::json!([]));
    assert_eq!(store.documents.borrow().len(), 4);
    // A redelivery of either is stored already, found by the pre-check (one query, no write).
    let sent = store.requests.borrow().len();
    let (_, again) = post(
        "/distribution",
        DISTRIBUTION_TYPE,
        envelope("team/b", &["e1", "e2"]),
        &store,
        &by_image,
    );
    assert_eq!(again.status(), 200);
    assert_eq!(store.requests.borrow().len(), sent + 1);
    assert_eq!(store.documents.borrow().len(), 4);
}

/// An action this receiver does not know is stored as sent (lower-cased) and logged, by
/// every sender; known actions are matched ignoring case.
#[test]
fn unknown_actions_are_stored_as_sent_by_every_sender() {
    let store = MemoryStore::new();
    // ACR: a future action, and a known one in capitals.
    let (outcome, response) = post(
        "/acr",
        "application/json",
        br#"{"id":"f1","action":"Image.Retag","target":{"repository":"r","tag":"t"}}"#.to_vec(),
        &store,
        &[],
    );
    assert_eq!(response.status(), 201, "{outcome:?}");
    assert_eq!(store.document("f1")["action"], "image.retag");
    let line = acr_webhook_core::log_line(&http::Method::POST, "/acr", &outcome);
    assert!(
        line.contains("stored f1") && line.contains("`image.retag` is not one this receiver knows"),
        "{line}"
    );
    let (_, response) = post(
        "/acr",
        "application/json",
        br#"{"id":"f2","action":"PUSH","target":{"repository":"r","tag":"t"}}"#.to_vec(),
        &store,
        &[],
    );
    assert_eq!(response.status(), 201);
    assert_eq!(store.document("f2")["action"], "push");
    // Not a short token: still 400, nothing stored.
    let (_, response) = post(
        "/acr",
        "application/json",
        br#"{"id":"f3","action":"re tag"}"#.to_vec(),
        &store,
        &[],
    );
    assert_eq!(response.status(), 400);
    assert_eq!(store.documents.borrow().len(), 2);

    // Distribution: a future action on a manifest is stored; on a blob it follows
    // keep_pulls_and_blobs; one that is not a token is skipped (a 2xx: never a blocked queue).
    let envelope = br#"{"events":[
        {"id":"d1","action":"Retag","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"r","digest":"sha256:1"}},
        {"id":"d2","action":"copy","target":{"mediaType":"application/octet-stream","repository":"r","digest":"sha256:2"}},
        {"id":"d3","action":"re tag","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"r"}}]}"#;
    let (outcome, response) = post(
        "/distribution",
        DISTRIBUTION_TYPE,
        envelope.to_vec(),
        &store,
        &[],
    );
    assert_eq!(response.status(), 201, "{outcome:?}");
    let answer: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(answer["stored"], serde_json::json!(["d1"]));
    assert_eq!(answer["skipped"], 2);
    assert_eq!(store.document("d1")["action"], "retag");
    let line = acr_webhook_core::log_line(&http::Method::POST, "/distribution", &outcome);
    assert!(
        line.contains("`retag` is not one this receiver knows"),
        "{line}"
    );

    // Event Grid: a future Microsoft.ContainerRegistry.* type is stored with data.action;
    // another namespace is skipped as before.
    let delivery = serde_json::json!([
        {"id": "g1", "eventType": "Microsoft.ContainerRegistry.ImageQuarantined",
         "subject": "r:t", "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1.0",
         "data": {"id": "g1", "action": "quarantine",
                  "target": {"repository": "r", "tag": "t", "digest": "sha256:3"}}},
        {"id": "g2", "eventType": "Microsoft.ContainerRegistry.ImagePushed",
         "data": {"id": "g2", "action": "PUSH", "target": {"repository": "r", "tag": "u"}}},
        {"id": "g3", "eventType": "Microsoft.Storage.BlobCreated", "data": {}}
    ]);
    let (outcome, response) = post(
        "/eventgrid",
        "application/json",
        serde_json::to_vec(&delivery).unwrap(),
        &store,
        &[],
    );
    assert_eq!(response.status(), 201, "{outcome:?}");
    let answer: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(answer["stored"], serde_json::json!(["g1", "g2"]));
    assert_eq!(answer["skipped"], 1);
    assert_eq!(store.document("g1")["action"], "quarantine");
    assert_eq!(store.document("g2")["action"], "push");
}
