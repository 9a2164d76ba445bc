//! Same id, different content: a 409 is compared with what is stored
//! before it is answered "already stored"; a different event that reuses an id is stored
//! beside the one holding it, under a derived id, and a redelivery of either is a 200. When
//! the derived ids are taken too the event is kept aside, and one event never blocks the rest
//! of its batch.

mod common;

use acr_webhook_core::document::{EventDocument, EventSource};
use acr_webhook_core::store::{candidates, MAX_CONFLICTS};
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

/// A Distribution event of `team/app` with this id and digest.
fn dist_event(id: &str, digest: &str) -> Value {
    json!({"id": id, "action": "push", "timestamp": "2024-05-01T10:00:00Z",
           "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "repository": "team/app", "digest": digest}})
}

fn envelope(events: &[Value]) -> Value {
    json!({ "events": events })
}

/// The documents `/distribution` may store `event` as, in order ([`candidates`]).
fn candidates_of(event: &Value) -> Vec<EventDocument> {
    let body = serde_json::to_vec(&envelope(std::slice::from_ref(event))).unwrap();
    let parsed = acr_webhook_core::distribution::parse_envelope(None, &body).unwrap();
    let document = EventDocument::from_event(
        &parsed[0].event,
        &parsed[0].action_name().unwrap(),
        EventSource::Distribution,
        now(),
    );
    candidates(&config(&[]), &document)
}

/// What the store was asked since `from`: (queries, creates, point reads).
fn asked_since(store: &MemoryStore, from: usize) -> (usize, usize, usize) {
    let requests = store.requests.borrow();
    let mut counts = (0, 0, 0);
    for r in &requests[from..] {
        if r.headers().contains_key("x-ms-documentdb-isquery") {
            counts.0 += 1;
        } else if r.method() == http::Method::POST {
            counts.1 += 1;
        } else if r.method() == http::Method::GET {
            counts.2 += 1;
        }
    }
    counts
}

/// A redelivered event stored beside another is found by the batch pre-check (which looks up
/// derived ids too), not by a create and a point read per id every time.
#[test]
fn a_redelivered_event_stored_beside_another_costs_no_write() {
    let store = MemoryStore::new();
    let (_, status, _) = post(
        &store,
        "/distribution",
        &envelope(&[dist_event("d1", "sha256:1"), dist_event("d2", "sha256:1")]),
        &[],
    );
    assert_eq!(status, 201);
    let batch = envelope(&[dist_event("d1", "sha256:1"), dist_event("d2", "sha256:2")]);
    let (_, status, answer) = post(&store, "/distribution", &batch, &[]);
    assert_eq!(status, 201);
    let beside = answer["stored"][0].as_str().unwrap().to_owned();
    assert_eq!(beside, candidates_of(&dist_event("d2", "sha256:2"))[1].id);

    let from = store.requests.borrow().len();
    let (outcome, status, answer) = post(&store, "/distribution", &batch, &[]);
    assert_eq!(status, 200, "{outcome:?}");
    assert_eq!(answer["alreadyStored"], json!(["d1", beside]));
    // The own ids, then the derived ids of d2: two queries, no create, no point read.
    assert_eq!(asked_since(&store, from), (2, 0, 0));
    assert_eq!(store.documents.borrow().len(), 3);
}

/// The pre-check reads every page of its cross-partition query: Cosmos DB answers one a
/// partition key range at a time, so the first page may hold only some of the stored events.
#[test]
fn the_batch_pre_check_follows_the_continuation() {
    let store = MemoryStore::new();
    store.query_page_size.set(Some(1));
    let batch = envelope(&[
        dist_event("p1", "sha256:1"),
        dist_event("p2", "sha256:1"),
        dist_event("p3", "sha256:1"),
    ]);
    let (_, status, _) = post(&store, "/distribution", &batch, &[]);
    assert_eq!(status, 201);
    let from = store.requests.borrow().len();
    let (outcome, status, answer) = post(&store, "/distribution", &batch, &[]);
    assert_eq!(status, 200, "{outcome:?}");
    assert_eq!(answer["alreadyStored"], json!(["p1", "p2", "p3"]));
    // Three pages of one document each (the last without a continuation), nothing written.
    assert_eq!(asked_since(&store, from), (3, 0, 0));
    let requests = store.requests.borrow();
    let continuations: Vec<Option<&str>> = requests[from..]
        .iter()
        .map(|r| {
            r.headers()
                .get("x-ms-continuation")
                .map(|v| v.to_str().unwrap())
        })
        .collect();
    assert_eq!(continuations, [None, Some("1"), Some("2")]);
}

/// Takes every id an event may be stored under but its kept-aside one, with other events, as
/// a key holder claiming ids could: its own id, and the derived ids (which anyone knowing the
/// event's content can compute), each sent as the id of another event.
fn claim_derived_ids(store: &MemoryStore, chain: &[EventDocument]) {
    for (i, claimed) in chain[..=MAX_CONFLICTS].iter().enumerate() {
        let (outcome, status, answer) = post(
            store,
            "/acr",
            &push(&claimed.id, &format!("sha256:claim-{i}")),
            &[],
        );
        assert_eq!(
            (status, answer["id"].as_str()),
            (201, Some(claimed.id.as_str())),
            "{outcome:?}"
        );
    }
}

/// An event whose id and every id derived from it hold other events is kept aside, under an
/// id no sender can compute, with a marker; the events after it in its batch are stored, and
/// a redelivery of the batch is 200 with nothing written. Before, the whole batch answered
/// 503 on every redelivery and the events after it were never stored.
#[test]
fn an_event_whose_derived_ids_are_taken_is_kept_aside_without_blocking_its_batch() {
    let store = MemoryStore::new();
    let poison = dist_event("d1", "sha256:2");
    let chain = candidates_of(&poison);
    assert_eq!(chain.len(), MAX_CONFLICTS + 2);
    claim_derived_ids(&store, &chain);
    let kept = &chain[MAX_CONFLICTS + 1];
    assert!(kept.id.starts_with("d1~kept-"), "{}", kept.id);

    let batch = envelope(&[
        dist_event("d0", "sha256:0"),
        poison,
        dist_event("d2", "sha256:0"),
    ]);
    let (outcome, status, answer) = post(&store, "/distribution", &batch, &[]);
    assert_eq!(status, 201, "{outcome:?}");
    assert_eq!(answer["stored"], json!(["d0", kept.id, "d2"]));
    let document = store.document(&kept.id);
    assert_eq!(document["conflictIdsExhausted"], true);
    assert_eq!(document["conflictsWith"], "d1");
    assert_eq!(document["eventId"], "d1");
    assert_eq!(document["digest"], "sha256:2");
    let line = log_line(&http::Method::POST, "/distribution", &outcome);
    assert!(
        line.contains("warning: id d1 holds a different event"),
        "{line}"
    );

    let from = store.requests.borrow().len();
    let (_, status, answer) = post(&store, "/distribution", &batch, &[]);
    assert_eq!(status, 200);
    assert_eq!(answer["alreadyStored"], json!(["d0", kept.id, "d2"]));
    assert_eq!(asked_since(&store, from), (2, 0, 0));

    // Without the pre-check (a batch of one), the write walks the same ids to the same
    // document.
    let (_, status, answer) = post(
        &store,
        "/distribution",
        &envelope(&batch["events"].as_array().unwrap()[1..2]),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(answer["alreadyStored"], json!([kept.id]));
}

/// Keeping aside fails only when the kept-aside id holds another event too (which takes
/// writing to the container without this receiver, or its account key): then that event is
/// refused on its own, named in the answer and the log line, and the rest of its batch is
/// stored; alone on `/acr` it is a 409. Nothing is dropped without a word.
#[test]
fn an_event_with_every_id_taken_is_refused_on_its_own() {
    let store = MemoryStore::new();
    let poison = dist_event("d1", "sha256:2");
    let chain = candidates_of(&poison);
    claim_derived_ids(&store, &chain);
    let kept = &chain[MAX_CONFLICTS + 1];
    let (_, status, _) = post(&store, "/acr", &push(&kept.id, "sha256:claim-kept"), &[]);
    assert_eq!(status, 201);

    let batch = envelope(&[
        dist_event("d0", "sha256:0"),
        poison.clone(),
        dist_event("d2", "sha256:0"),
    ]);
    for round in 0..2 {
        let (outcome, status, answer) = post(&store, "/distribution", &batch, &[]);
        assert_eq!(status, if round == 0 { 201 } else { 200 }, "{outcome:?}");
        let done = if round == 0 {
            "stored"
        } else {
            "alreadyStored"
        };
        assert_eq!(answer[done], json!(["d0", "d2"]), "{answer}");
        assert_eq!(answer["refused"][0]["id"], "d1", "{answer}");
        assert_eq!(answer["refused"][0]["error"], "conflict_ids_taken");
        assert!(
            answer["refused"][0]["message"]
                .as_str()
                .unwrap()
                .contains("`d1`"),
            "{answer}"
        );
        let line = log_line(&http::Method::POST, "/distribution", &outcome);
        assert!(
            line.contains("error: event d1 refused, not stored: conflict_ids_taken"),
            "{line}"
        );
    }
    assert_eq!(store.documents.borrow().len(), chain.len() + 2);

    // One event alone on /acr: 409, not a 503 that invites a retry that cannot help.
    let store = MemoryStore::new();
    let event = push("a1", "sha256:a");
    let chain = {
        let parsed =
            acr_webhook_core::acr::parse_event(&serde_json::to_vec(&event).unwrap()).unwrap();
        candidates(&config(&[]), &EventDocument::from_acr(&parsed, now()))
    };
    claim_derived_ids(&store, &chain);
    let (_, status, _) = post(
        &store,
        "/acr",
        &push(&chain[MAX_CONFLICTS + 1].id, "sha256:x"),
        &[],
    );
    assert_eq!(status, 201);
    let (_, status, answer) = post(&store, "/acr", &event, &[]);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("conflict_ids_taken"))
    );
}

/// The write path (creates, the point read after a 409, the batch pre-check) keeps Cosmos
/// DB's default (high) priority: only reads ask for low priority.
#[test]
fn writes_keep_the_default_priority() {
    let store = MemoryStore::new();
    let batch = envelope(&[dist_event("w1", "sha256:1"), dist_event("w2", "sha256:1")]);
    assert_eq!(post(&store, "/distribution", &batch, &[]).1, 201);
    let again = envelope(&[dist_event("w1", "sha256:1"), dist_event("w2", "sha256:2")]);
    assert_eq!(post(&store, "/distribution", &again, &[]).1, 201);
    assert_eq!(post(&store, "/acr", &push("w1", "sha256:3"), &[]).1, 201);
    let requests = store.requests.borrow();
    let (queries, creates, reads) = asked_since(&store, 0);
    assert!(
        queries >= 2 && creates >= 5 && reads >= 1,
        "{queries} {creates} {reads}"
    );
    for request in requests.iter() {
        assert!(
            request
                .headers()
                .get("x-ms-cosmos-priority-level")
                .is_none(),
            "{} {}",
            request.method(),
            request.uri()
        );
    }
}
