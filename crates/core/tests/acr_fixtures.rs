//! Every ACR fixture through the whole flow (key, body, parse, document, signed request),
//! with the expected document written out by hand for each.

mod common;

use acr_webhook_core::{handle, respond, Failure, Success};
use common::*;
use serde_json::{json, Value};

const PUSH_DIGEST: &str = "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d";
const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const ACR_HOST: &str = "myregistry.azurecr.io";

fn post(
    fixture_path: &str,
    store: &MemoryStore,
) -> (Result<Success, Failure>, http::Response<Vec<u8>>) {
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let h = head(
        "POST",
        "/acr",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
    );
    let outcome = block_on(handle(
        &h,
        fixture(fixture_path),
        Ok(config(&[])),
        store,
        now(),
    ));
    let response = respond(&outcome);
    (outcome, response)
}

/// Checks the listed fields; `null` means "absent from the document".
fn assert_document(doc: &Value, expected: &Value) {
    for (field, want) in expected.as_object().unwrap() {
        let got = doc.get(field).unwrap_or(&Value::Null);
        assert_eq!(got, want, "field `{field}` of {doc:#}");
    }
    assert_eq!(doc["source"], "acr");
    assert_eq!(doc["receivedAt"], "2023-11-14T22:13:20.123Z");
}

#[test]
fn every_storable_fixture_becomes_the_right_document() {
    let table: Vec<(&str, Value)> = vec![
        (
            "acr/push.json",
            json!({
            "id": "cb8c3971-9adc-488b-bdd8-43cbb4974ff5", "eventId": null, "action": "push",
            "timestamp": "2023-11-17T16:52:01.343145347Z", "loginServer": ACR_HOST,
            "image": "hello-world", "tag": "v1", "digest": PUSH_DIGEST, "mediaType": DOCKER_V2,
            "size": 524, "requestId": "3cbb6949-7549-4fa1-86cd-a6d5451dffc7",
            "requestMethod": "PUT", "name": null, "version": null }),
        ),
        (
            "acr/delete.json",
            json!({
            "id": "afc359ce-df7f-4e32-bdde-1ff8aa80927b", "action": "delete",
            "timestamp": "2023-11-17T16:54:53.657764628Z", "loginServer": ACR_HOST,
            "image": "hello-world", "tag": null, "digest": PUSH_DIGEST, "mediaType": DOCKER_V2,
            "size": null, "requestId": "3d78b540-ab61-4f75-807f-7ca9ecf559b3",
            "requestMethod": "DELETE", "userAgent": "python-requests/2.18.4" }),
        ),
        (
            "acr/quarantine.json",
            json!({
            "id": "0d799b14-404b-4859-b2f6-50c5ee2a2c3a", "action": "quarantine",
            "timestamp": "2018-02-28T00:42:54.4509516Z", "image": "helloworld", "tag": "1",
            "size": 1791, "mediaType": null, "userAgent": null,
            "requestId": "978fc988-2c4e-4b7a-8d13-4f6e331d1591" }),
        ),
        (
            "acr/chart_push.json",
            json!({
            "id": "6356e9e0-627f-4fed-9b1e-d9059b5143ac", "action": "chart_push",
            "image": "repo", "tag": "wordpress-5.4.0.tgz", "name": "wordpress",
            "version": "5.4.0.tgz", "mediaType": "application/vnd.acr.helm.chart", "size": 25265,
            "loginServer": null, "requestId": null }),
        ),
        (
            "acr/chart_delete.json",
            json!({
            "id": "338a3ef7-ad68-4128-a4c2-fdd3af8e8f67", "action": "chart_delete",
            "image": "repo", "name": "wordpress", "version": "5.4.0.tgz", "loginServer": null }),
        ),
        (
            "acr/push_digest_only.json",
            json!({
            "id": "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e", "action": "push", "tag": null,
            "digest": PUSH_DIGEST, "image": "hello-world" }),
        ),
        (
            "acr/push_minimal_request.json",
            json!({
            "id": "ea889308-3834-4a1d-a631-cadc572dab91", "timestamp": "2026-06-01T12:22:07.0958813Z",
            "tag": "test-v1", "userAgent": null, "loginServer": ACR_HOST }),
        ),
        (
            "acr/push_oci_helm.json",
            json!({
            "id": "4b8f2d6a-1c3e-4f5a-9b7d-0e2c4a6f8b1d", "image": "helm/wordpress", "tag": "5.4.0",
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 741 }),
        ),
        (
            "acr/push_unknown_fields.json",
            json!({
            "id": "9f8e7d6c-5b4a-4392-a1b0-c9d8e7f6a5b4", "image": "hello-world", "tag": "v2" }),
        ),
        (
            "acr/push_id_with_slashes.json",
            json!({
            "id": "evt%2F2024%5C01%3Fkind=push%23frag", "eventId": "evt/2024\\01?kind=push#frag",
            "tag": "slashes" }),
        ),
    ];
    for (path, expected) in table {
        let store = MemoryStore::new();
        let (outcome, response) = post(path, &store);
        let id = expected["id"].as_str().unwrap();
        assert_eq!(
            outcome,
            Ok(Success::Stored {
                id: id.into(),
                unknown_action: None,
                conflicts_with: None
            }),
            "{path}"
        );
        assert_eq!(response.status(), 201, "{path}");
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["id"], id);
        assert_document(&store.document(id), &expected);

        // The request that carried it: signed create on the container, partition key = /id.
        let requests = store.requests.borrow();
        let req = &requests[0];
        assert_eq!(req.uri(), "http://127.0.0.1:8081/dbs/acr/colls/events/docs");
        assert_eq!(
            req.headers()["x-ms-documentdb-partitionkey"],
            serde_json::to_string(&[id]).unwrap().as_str()
        );
        assert!(req.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("type%3Dmaster%26ver%3D1.0%26sig%3D"));
    }
}

#[test]
fn an_event_without_id_gets_a_stable_derived_id() {
    let store = MemoryStore::new();
    let (first, _) = post("acr/push_no_id.json", &store);
    let Ok(Success::Stored { id, .. }) = first else {
        panic!("{first:?}")
    };
    assert!(id.starts_with("sha256-") && id.len() == 71, "{id}");
    let (again, response) = post("acr/push_no_id.json", &store);
    assert_eq!(
        again,
        Ok(Success::AlreadyStored {
            id: id.clone(),
            conflicts_with: None
        })
    );
    assert_eq!(response.status(), 200);
    assert_eq!(store.documents.borrow().len(), 1);
}

#[test]
fn a_long_id_is_shortened_deterministically() {
    let store = MemoryStore::new();
    let (outcome, _) = post("acr/push_long_id.json", &store);
    let Ok(Success::Stored { id, .. }) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(id.len(), 255);
    let original: Value = serde_json::from_slice(&fixture("acr/push_long_id.json")).unwrap();
    assert_eq!(store.document(&id)["eventId"], original["id"]);
    let (again, _) = post("acr/push_long_id.json", &store);
    assert_eq!(
        again,
        Ok(Success::AlreadyStored {
            id,
            conflicts_with: None
        })
    );
}

#[test]
fn pings_read_the_container_and_store_nothing() {
    for path in ["acr/ping.json", "acr/ping_minimal.json"] {
        let store = MemoryStore::new();
        let (outcome, response) = post(path, &store);
        assert_eq!(outcome, Ok(Success::Pong), "{path}");
        assert_eq!(response.status(), 204);
        assert!(store.documents.borrow().is_empty());
        let requests = store.requests.borrow();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method(), "GET");
        assert_eq!(
            requests[0].uri(),
            "http://127.0.0.1:8081/dbs/acr/colls/events"
        );
    }
}

#[test]
fn a_ping_with_the_store_down_or_refusing_is_503_with_the_reason() {
    for (behaviour, reason) in [
        (Behaviour::Unreachable, "could not be reached"),
        (Behaviour::Status(401, None), "401"),
        (Behaviour::Status(404, None), "does not exist"),
    ] {
        let store = MemoryStore::new();
        *store.behaviour.borrow_mut() = behaviour;
        let (outcome, response) = post("acr/ping.json", &store);
        assert_eq!(response.status(), 503);
        let message = outcome.unwrap_err().to_string();
        assert!(message.contains(reason), "{message}");
    }
}

#[test]
fn store_failures_map_to_502_and_503() {
    for (behaviour, status, retry_after) in [
        (Behaviour::Unreachable, 503, Some("1")),
        (Behaviour::Status(429, Some("2500")), 503, Some("3")),
        (Behaviour::Status(503, None), 503, Some("1")),
        (Behaviour::Status(449, None), 503, Some("1")),
        (Behaviour::Status(401, None), 502, None),
        (Behaviour::Status(403, None), 502, None),
        (Behaviour::Status(413, None), 502, None),
    ] {
        let store = MemoryStore::new();
        *store.behaviour.borrow_mut() = behaviour.clone();
        let (_, response) = post("acr/push.json", &store);
        assert_eq!(response.status(), status, "{behaviour:?}");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{behaviour:?}"
        );
    }
}

#[test]
fn the_partition_key_follows_the_configured_path() {
    let store = MemoryStore::new();
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let h = head("POST", "/acr", &[("authorization", &bearer)]);
    let cfg = config(&[("partition_key_path", "/image")]);
    let outcome = block_on(handle(
        &h,
        fixture("acr/push_oci_helm.json"),
        Ok(cfg),
        &store,
        now(),
    ));
    assert!(outcome.is_ok());
    assert_eq!(
        store.requests.borrow()[0].headers()["x-ms-documentdb-partitionkey"],
        r#"["helm/wordpress"]"#
    );
}
