//! Same id, different content (issue 15, item 2): a 409 is compared with what is stored
//! before it is answered "already stored"; a different event that reuses an id is stored
//! beside the one holding it, under a derived id, and a redelivery of either is a 200.

mod common;

use acr_webhook_core::{handle, log_line, respond, Failure, Success};
use common::*;
use serde_json::{json, Value};

fn post(
    store: &MemoryStore,
    path: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> (Result<Success, Failure>, u16, Value) {
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let h = head("POST", path, &[("authorization", &bearer)]);
    let outcome = block_on(handle(
        &h,
        serde_json::to_vec(body).unwrap(),
        Ok(config(extra)),
        store,
        now(),
    ));
    let response = respond(&outcome);
    let answer = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (outcome, response.status().as_u16(), answer)
}

fn push(id: &str, digest: &str) -> Value {
    json!({
        "id": id, "timestamp": "2024-05-01T10:00:00.1234567Z", "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "repository": "team/app", "tag": "v1", "digest": digest},
        "request": {"id": "r", "host": "reg.azurecr.io", "method": "PUT", "useragent": "t"}
    })
}

#[test]
fn a_different_event_with_a_taken_id_is_stored_beside_it() {
    let store = MemoryStore::new();
    let (_, status, _) = post(&store, "/acr", &push("e1", "sha256:1"), &[]);
    assert_eq!(status, 201);
    let first = store.document("e1");
    assert_eq!(first["contentHash"].as_str().unwrap().len(), 64);

    // Same id, another digest: a second document, 201, naming the first.
    let (outcome, status, answer) = post(&store, "/acr", &push("e1", "sha256:2"), &[]);
    assert_eq!(status, 201, "{outcome:?}");
    let beside = answer["id"].as_str().unwrap().to_owned();
    assert!(beside.starts_with("e1~conflict-"), "{beside}");
    assert_eq!(answer["conflictsWith"], "e1");
    assert_eq!(store.documents.borrow().len(), 2);
    let second = store.document(&beside);
    assert_eq!(second["eventId"], "e1");
    assert_eq!(second["conflictsWith"], "e1");
    assert_eq!(second["digest"], "sha256:2");
    assert_ne!(second["contentHash"], first["contentHash"]);
    assert_eq!(store.document("e1"), first, "the first is left as it was");
    let line = log_line(&http::Method::POST, "/acr", &outcome);
    assert!(
        line.contains("warning: id e1 holds a different event") && line.contains(&beside),
        "{line}"
    );

    // Redeliveries of either: 200, nothing new.
    let (_, status, answer) = post(&store, "/acr", &push("e1", "sha256:2"), &[]);
    assert_eq!(
        (status, answer["id"].as_str()),
        (200, Some(beside.as_str()))
    );
    assert_eq!(answer["status"], "already_stored");
    assert_eq!(answer["conflictsWith"], "e1");
    let (_, status, answer) = post(&store, "/acr", &push("e1", "sha256:1"), &[]);
    assert_eq!((status, answer["id"].as_str()), (200, Some("e1")));
    assert!(answer.get("conflictsWith").is_none());
    // A third content gets a third document.
    let (_, status, answer) = post(&store, "/acr", &push("e1", "sha256:3"), &[]);
    assert_eq!(status, 201);
    assert_ne!(answer["id"].as_str(), Some(beside.as_str()));
    assert_eq!(store.documents.borrow().len(), 3);
}

#[test]
fn the_same_content_written_otherwise_is_a_redelivery() {
    let store = MemoryStore::new();
    let (_, status, _) = post(&store, "/acr", &push("e1", "sha256:1"), &[]);
    assert_eq!(status, 201);
    // The same instant with an offset and more digits, and the action in capitals.
    let mut again = push("e1", "sha256:1");
    again["timestamp"] = "2024-05-01T12:00:00.123456700+02:00".into();
    again["action"] = "PUSH".into();
    let (_, status, answer) = post(&store, "/acr", &again, &[]);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("already_stored"))
    );
    assert_eq!(store.documents.borrow().len(), 1);
}

#[test]
fn a_document_stored_before_hashes_counts_as_the_same_content() {
    let store = MemoryStore::new();
    let (_, status, _) = post(&store, "/acr", &push("e1", "sha256:1"), &[]);
    assert_eq!(status, 201);
    for doc in store.documents.borrow_mut().values_mut() {
        doc.as_object_mut().unwrap().remove("contentHash");
    }
    let (_, status, answer) = post(&store, "/acr", &push("e1", "sha256:other"), &[]);
    assert_eq!((status, answer["id"].as_str()), (200, Some("e1")));
    assert_eq!(store.documents.borrow().len(), 1);
}

/// The point read after a 409 goes to the document's own partition, and is retried like any
/// request inside the budget.
#[test]
fn the_stored_document_is_read_in_its_partition_with_retries() {
    let store = MemoryStore::new();
    let by_image = [("partition_key_path", "/image")];
    let (_, status, _) = post(&store, "/acr", &push("e1", "sha256:1"), &by_image);
    assert_eq!(status, 201);
    // The create (409), then the read throttled once, then answered.
    store.script.borrow_mut().extend([
        Behaviour::Normal,
        Behaviour::Status(429, Some("20")),
        Behaviour::Normal,
    ]);
    let before = store.requests.borrow().len();
    let (outcome, status, _) = post(&store, "/acr", &push("e1", "sha256:2"), &by_image);
    assert_eq!(status, 201, "{outcome:?}");
    let requests = store.requests.borrow();
    let reads: Vec<_> = requests[before..]
        .iter()
        .filter(|r| r.method() == http::Method::GET)
        .collect();
    assert_eq!(reads.len(), 2, "one throttled read, one answered");
    for read in reads {
        assert!(read.uri().path().ends_with("/docs/e1"), "{}", read.uri());
        assert_eq!(
            read.headers()["x-ms-documentdb-partitionkey"],
            r#"["team/app"]"#
        );
    }
    drop(requests);
    // A store that cannot answer the read: 503 inside the budget, nothing answered 2xx.
    let store = MemoryStore::new();
    let (_, status, _) = post(&store, "/acr", &push("e1", "sha256:1"), &[]);
    assert_eq!(status, 201);
    store.script.borrow_mut().push_back(Behaviour::Normal);
    *store.behaviour.borrow_mut() = Behaviour::Status(503, None);
    let start = store.clock.get();
    let (_, status, answer) = post(&store, "/acr", &push("e1", "sha256:2"), &[]);
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("store_unavailable"))
    );
    assert!(store.clock.get() - start <= std::time::Duration::from_secs(5));
}

#[test]
fn batches_compare_content_too() {
    let store = MemoryStore::new();
    let envelope = |events: Vec<Value>| json!({ "events": events });
    let event = |id: &str, digest: &str| {
        json!({"id": id, "action": "push", "timestamp": "2024-05-01T10:00:00Z",
               "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "repository": "team/app", "digest": digest}})
    };
    let (_, status, _) = post(
        &store,
        "/distribution",
        &envelope(vec![event("d1", "sha256:1"), event("d2", "sha256:1")]),
        &[],
    );
    assert_eq!(status, 201);
    // d1 again (same), d2 with another content: the pre-check lets d2 through to the write,
    // which stores it beside.
    let (outcome, status, answer) = post(
        &store,
        "/distribution",
        &envelope(vec![event("d1", "sha256:1"), event("d2", "sha256:2")]),
        &[],
    );
    assert_eq!(status, 201, "{outcome:?}");
    assert_eq!(answer["alreadyStored"], json!(["d1"]));
    let beside = answer["stored"][0].as_str().unwrap().to_owned();
    assert!(beside.starts_with("d2~conflict-"), "{beside}");
    assert_eq!(store.document(&beside)["conflictsWith"], "d2");
    let line = log_line(&http::Method::POST, "/distribution", &outcome);
    assert!(
        line.contains("warning: id d2 holds a different event"),
        "{line}"
    );
    // The whole delivery again: 200, everything stored before.
    let (_, status, answer) = post(
        &store,
        "/distribution",
        &envelope(vec![event("d1", "sha256:1"), event("d2", "sha256:2")]),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(answer["alreadyStored"], json!(["d1", beside]));
    assert_eq!(store.documents.borrow().len(), 3);
}
