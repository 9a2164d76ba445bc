//! End to end, through the real component (`.wasm` on `acr-webhook up`) and the real local
//! store, for the senders other than ACR webhooks: a real CNCF Distribution registry that
//! notifies `/distribution` itself (with its `Authorization` header), across a restart of the
//! store while the registry keeps retrying; and Azure Event Grid deliveries (validation
//! handshake, CloudEvents `OPTIONS` handshake, a batch of 10, redeliveries), plus the same
//! registry event arriving by two routes, and a batch holding an event whose ids are taken.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use acr_webhook_testkit::{http, NotifyEndpoint, PushOptions, PushedImage, Registry};
use serde_json::{json, Value};
use support::*;

crate::on_every_host!(
    a_real_registry_notifies_directly_and_every_push_and_delete_is_stored_once,
    a_registry_with_a_wrong_key_is_refused_and_nothing_is_stored,
    event_grid_handshakes_a_batch_of_ten_and_redeliveries,
    one_registry_event_by_two_routes_is_one_document,
    an_event_whose_ids_are_taken_never_blocks_its_batch,
);

/// The registry's notification settings: the key as a bearer token, a timeout longer than
/// the app's write budget (so the app's 503 is what the registry sees), quick retries.
fn notify(stack: &Stack, key: &str) -> NotifyEndpoint {
    NotifyEndpoint {
        timeout: Duration::from_secs(5),
        threshold: 3,
        backoff: Duration::from_millis(200),
        ..NotifyEndpoint::new(stack.url("/distribution")).header("Authorization", bearer(key))
    }
}

/// What one registry operation must leave in the store: one document, described by its
/// action, repository, tag and digest (absent ones are `None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Expected {
    action: &'static str,
    image: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn pushed(image: &PushedImage) -> Expected {
    Expected {
        action: "push",
        image: image.repository.clone(),
        tag: Some(image.tag.clone()),
        digest: Some(image.digest.clone()),
    }
}

/// A manifest delete gives two Distribution events: the manifest (by digest) and each tag
/// that pointed at it.
fn deleted(image: &PushedImage) -> [Expected; 2] {
    [
        Expected {
            action: "delete",
            image: image.repository.clone(),
            tag: None,
            digest: Some(image.digest.clone()),
        },
        Expected {
            action: "delete",
            image: image.repository.clone(),
            tag: Some(image.tag.clone()),
            digest: None,
        },
    ]
}

fn text(doc: &Value, field: &str) -> Option<String> {
    doc.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn described(doc: &Value) -> Expected {
    Expected {
        action: match doc["action"].as_str() {
            Some("push") => "push",
            Some("delete") => "delete",
            other => panic!("unexpected action {other:?} in {doc:#}"),
        },
        image: text(doc, "image").expect("image"),
        tag: text(doc, "tag"),
        digest: text(doc, "digest"),
    }
}

/// Waits until the store holds `want` documents (or more), up to `timeout`; returns them.
fn wait_for_documents(stack: &Stack, want: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let docs = stack.documents();
        if docs.len() >= want || Instant::now() > deadline {
            return docs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts the store holds exactly one document per expected operation, each with a
/// distinct event id, and nothing else. Returns the documents by what they describe.
fn assert_exactly_once(
    docs: &[Value],
    expected: &[Expected],
    registry: &Registry,
) -> HashMap<Expected, Value> {
    let ids: HashSet<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), docs.len(), "event ids are distinct: {docs:#?}");
    let mut by_what: HashMap<Expected, Value> = HashMap::new();
    for doc in docs {
        let what = described(doc);
        assert!(
            by_what.insert(what.clone(), doc.clone()).is_none(),
            "{what:?} stored twice: {docs:#?}"
        );
        assert_eq!(doc["source"], "distribution", "{doc:#}");
        assert_eq!(doc["loginServer"], registry.host().as_str(), "{doc:#}");
        assert!(doc.get("eventId").is_none(), "a UUID id is kept as is");
        assert_eq!(doc["id"].as_str().unwrap().len(), 36, "a UUID: {doc:#}");
    }
    let got: HashSet<&Expected> = by_what.keys().collect();
    let want: HashSet<&Expected> = expected.iter().collect();
    assert_eq!(got, want, "stored: {docs:#?}");
    by_what
}

fn assert_push_document(doc: &Value, image: &PushedImage) {
    assert_eq!(doc["digest"], image.digest.as_str());
    assert_eq!(doc["mediaType"], image.manifest_media_type.as_str());
    assert_eq!(doc["size"], image.manifest_size);
    assert_eq!(doc["requestMethod"], "PUT");
    assert!(doc["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
}

fn a_real_registry_notifies_directly_and_every_push_and_delete_is_stored_once(host: Runtime) {
    let started = Instant::now();
    // A short write budget: with the store down the app answers 503 in about a second.
    let mut stack = Stack::start_on(host, &[("write_budget_ms", "1000")]);
    let registry = Registry::start(Some(notify(&stack, TEST_KEY)));

    // First batch, everything up.
    let v1 = registry.push_image("team/app", "v1");
    let v2 = registry.push_image_with(
        "team/app",
        "v2",
        PushOptions {
            format: acr_webhook_testkit::ManifestFormat::Oci,
            ..PushOptions::default()
        },
    );
    let hello = registry.push_image("hello-world", "latest");
    registry.delete_image("team/app", "v1");
    let mut first = vec![pushed(&v1), pushed(&v2), pushed(&hello)];
    first.extend(deleted(&v1));
    let docs = wait_for_documents(&stack, first.len(), Duration::from_secs(30));
    let by_what = assert_exactly_once(&docs, &first, &registry);
    for image in [&v1, &v2, &hello] {
        assert_push_document(&by_what[&pushed(image)], image);
    }
    // Pulls (skopeo resolving the tag to delete) and blob pushes were sent too, and skipped.
    let log = stack.app_log();
    assert!(log.contains("POST /distribution 202"), "{log}");
    assert!(!log.contains(TEST_KEY), "no key in the log");

    // The store goes away (and comes back empty: it keeps nothing in memory). The registry
    // sends the second batch; the app answers 503 and the registry retries.
    stack.store.stop();
    let v3 = registry.push_image("team/app", "v3");
    let nginx = registry.push_image_with(
        "samples/nginx",
        "1.25",
        PushOptions {
            format: acr_webhook_testkit::ManifestFormat::Oci,
            ..PushOptions::default()
        },
    );
    registry.delete_image("hello-world", &hello.digest);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stack.app_log().contains("POST /distribution 503") {
        assert!(Instant::now() < deadline, "no 503: {}", stack.app_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let it retry a few more times against the dead store.
    std::thread::sleep(Duration::from_secs(3));
    let refusals = stack.app_log().matches("POST /distribution 503").count();
    assert!(refusals >= 2, "the registry retried: {}", stack.app_log());

    stack.store.restart();
    stack.init();
    let mut second = vec![pushed(&v3), pushed(&nginx)];
    second.extend(deleted(&hello));
    let docs = wait_for_documents(&stack, second.len(), Duration::from_secs(60));
    // Nothing more arrives afterwards (no duplicate, no late extra event).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stack.documents().len(), docs.len());
    let by_what = assert_exactly_once(&docs, &second, &registry);
    for image in [&v3, &nginx] {
        assert_push_document(&by_what[&pushed(image)], image);
    }
    let log = stack.app_log();
    let last_refusal = log.rfind("POST /distribution 503").unwrap();
    assert!(
        log[last_refusal..].contains("POST /distribution 201"),
        "the retries landed after the refusals: {log}"
    );
    eprintln!("registry test: {:?}", started.elapsed());
}

fn a_registry_with_a_wrong_key_is_refused_and_nothing_is_stored(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    let registry = Registry::start(Some(notify(&stack, "not-the-key")));
    registry.push_image("team/app", "v1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.app_log().contains("POST /distribution 401") {
        assert!(Instant::now() < deadline, "no 401: {}", stack.app_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stack.count(), 0);
    assert!(!stack.app_log().contains("not-the-key"));
}

fn post_eventgrid(stack: &Stack, content_type: &str, body: &[u8]) -> http::HttpResponse {
    let auth = bearer(TEST_KEY);
    stack.post(
        "/eventgrid",
        &[
            ("authorization", &auth),
            ("content-type", content_type),
            ("aeg-event-type", "Notification"),
        ],
        body,
    )
}

const CLOUDEVENTS: &str = "application/cloudevents+json; charset=utf-8";
const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json; charset=utf-8";
const EVENTGRID_JSON: &str = "application/json; charset=utf-8";

fn ids(values: &Value) -> Vec<String> {
    values
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {values}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The document of a CloudEvent or Event Grid event, compared with its `data`.
fn assert_event_grid_document(doc: &Value, event: &Value) {
    let data = &event["data"];
    let event_type = event["type"]
        .as_str()
        .or(event["eventType"].as_str())
        .unwrap();
    let action = match event_type.rsplit('.').next().unwrap() {
        "ImagePushed" => "push",
        "ImageDeleted" => "delete",
        "ChartPushed" => "chart_push",
        "ChartDeleted" => "chart_delete",
        other => panic!("{other}"),
    };
    assert_eq!(doc["id"], data["id"], "{doc:#}");
    assert_eq!(doc["action"], action);
    assert_eq!(doc["source"], "eventgrid");
    assert_eq!(doc["timestamp"], data["timestamp"]);
    let target = &data["target"];
    for (field, from) in [
        ("image", "repository"),
        ("tag", "tag"),
        ("digest", "digest"),
        ("mediaType", "mediaType"),
        ("name", "name"),
        ("version", "version"),
    ] {
        assert_eq!(
            doc.get(field).unwrap_or(&Value::Null),
            &target[from],
            "{field} of {doc:#}"
        );
    }
    assert_eq!(
        doc.get("loginServer").unwrap_or(&Value::Null),
        &data["request"]["host"]
    );
}

fn event_grid_handshakes_a_batch_of_ten_and_redeliveries(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    let auth = bearer(TEST_KEY);

    // The Event Grid schema validation handshake: the code echoed with 200, nothing written.
    let validation = fixture("eventgrid/eventgrid-schema/subscription_validation.json");
    let answer = stack.post(
        "/eventgrid",
        &[
            ("authorization", &auth),
            ("content-type", EVENTGRID_JSON),
            ("aeg-event-type", "SubscriptionValidation"),
        ],
        &validation,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        json(&answer),
        json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );
    // The key is checked before the body, the validation included (Event Grid sends the
    // configured Authorization delivery property; docs/event-grid.md §4).
    let unkeyed = stack.post(
        "/eventgrid",
        &[
            ("content-type", EVENTGRID_JSON),
            ("aeg-event-type", "SubscriptionValidation"),
        ],
        &validation,
    );
    assert_eq!(unkeyed.status, 401, "{}", unkeyed.text());

    // The CloudEvents abuse-protection handshake: no key needed, nothing written.
    let handshake = fixture_json("eventgrid/options_handshake.json");
    let origin = handshake["request"]["headers"]["WebHook-Request-Origin"]
        .as_str()
        .unwrap();
    let options = http::request(
        "OPTIONS",
        &stack.url("/eventgrid"),
        &[("WebHook-Request-Origin", origin)],
        None,
    )
    .unwrap();
    assert_eq!(options.status, 200, "{}", options.text());
    for (name, value) in handshake["response"]["headers"].as_object().unwrap() {
        assert_eq!(options.header(name), value.as_str(), "{name}");
    }
    let with_rate = http::request(
        "OPTIONS",
        &stack.url("/eventgrid"),
        &[
            ("WebHook-Request-Origin", "eventgrid.azure.net"),
            ("WebHook-Request-Rate", "120"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(with_rate.status, 200);
    assert_eq!(with_rate.header("WebHook-Allowed-Rate"), Some("*"));
    let no_origin = http::request("OPTIONS", &stack.url("/eventgrid"), &[], None).unwrap();
    assert_eq!(no_origin.status, 400, "{}", no_origin.text());
    assert_eq!(json(&no_origin)["error"], "invalid_handshake");
    assert_eq!(stack.count(), 0, "handshakes write nothing");

    // A batch of 10 CloudEvents, the first 4 of which arrived once before.
    let batch = fixture_json("eventgrid/cloudevents/batch_10.json");
    let events = batch.as_array().unwrap();
    assert_eq!(events.len(), 10);
    let all_ids: Vec<String> = events
        .iter()
        .map(|e| e["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    let head = serde_json::to_vec(&events[..4]).unwrap();
    let answer = post_eventgrid(&stack, CLOUDEVENTS_BATCH, &head);
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(ids(&json(&answer)["stored"]), all_ids[..4]);

    let body = fixture("eventgrid/cloudevents/batch_10.json");
    let answer = post_eventgrid(&stack, CLOUDEVENTS_BATCH, &body);
    assert_eq!(answer.status, 201, "{}", answer.text());
    let outcome = json(&answer);
    assert_eq!(ids(&outcome["stored"]), all_ids[4..]);
    assert_eq!(ids(&outcome["alreadyStored"]), all_ids[..4]);
    assert_eq!(
        (&outcome["skipped"], &outcome["filtered"]),
        (&json!(0), &json!(0))
    );
    let before: HashMap<String, Value> = stack
        .documents()
        .into_iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d))
        .collect();
    assert_eq!(before.len(), 10);
    for event in events {
        assert_event_grid_document(&before[event["data"]["id"].as_str().unwrap()], event);
    }

    // Event Grid redelivers the whole batch (the answer was lost): 200, nothing new, nothing
    // rewritten.
    let answer = post_eventgrid(&stack, CLOUDEVENTS_BATCH, &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let outcome = json(&answer);
    assert_eq!(outcome["stored"], json!([]));
    assert_eq!(ids(&outcome["alreadyStored"]), all_ids);
    let after = stack.documents();
    assert_eq!(after.len(), 10);
    for doc in &after {
        let id = doc["id"].as_str().unwrap();
        assert_eq!(doc, &before[id], "{id} was not rewritten");
    }

    // The Event Grid schema examples, then the same events in CloudEvents form (one
    // document each: the id is data.id).
    for name in [
        "image_pushed",
        "image_deleted",
        "chart_pushed",
        "chart_deleted",
    ] {
        let event_grid = fixture(&format!("eventgrid/eventgrid-schema/{name}.json"));
        let answer = post_eventgrid(&stack, EVENTGRID_JSON, &event_grid);
        assert_eq!(answer.status, 201, "{name}: {}", answer.text());
        let stored = ids(&json(&answer)["stored"]);
        let event = &fixture_json(&format!("eventgrid/eventgrid-schema/{name}.json"))[0];
        assert_eq!(stored, [event["data"]["id"].as_str().unwrap()]);
        assert_event_grid_document(&stack.document(&stored[0]).unwrap(), event);

        let cloud = fixture(&format!("eventgrid/cloudevents/{name}.json"));
        let answer = post_eventgrid(&stack, CLOUDEVENTS, &cloud);
        assert_eq!(answer.status, 200, "{name}: {}", answer.text());
        assert_eq!(ids(&json(&answer)["alreadyStored"]), stored);
    }
    assert_eq!(stack.count(), 14);
    assert!(!stack.app_log().contains(TEST_KEY));
}

fn one_registry_event_by_two_routes_is_one_document(host: Runtime) {
    let stack = Stack::start_on(host, &[]);

    // Event Grid first, then the same event as an ACR webhook body (the event is `data`).
    let delivery = fixture_json("eventgrid/eventgrid-schema/image_pushed.json");
    let data = &delivery[0]["data"];
    let id = data["id"].as_str().unwrap();
    let answer = post_eventgrid(
        &stack,
        EVENTGRID_JSON,
        &fixture("eventgrid/eventgrid-schema/image_pushed.json"),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let webhook = stack.post_acr(&serde_json::to_vec(data).unwrap());
    assert_eq!(webhook.status, 200, "{}", webhook.text());
    assert_eq!(
        json(&webhook),
        json!({"id": id, "status": "already_stored"})
    );
    assert_eq!(stack.document(id).unwrap()["source"], "eventgrid");

    // The ACR webhook first, then the CloudEvents delivery of the same event.
    let cloud = fixture_json("eventgrid/cloudevents/image_deleted.json");
    let id = cloud["data"]["id"].as_str().unwrap();
    let webhook = stack.post_acr(&serde_json::to_vec(&cloud["data"]).unwrap());
    assert_eq!(webhook.status, 201, "{}", webhook.text());
    let answer = post_eventgrid(
        &stack,
        CLOUDEVENTS,
        &fixture("eventgrid/cloudevents/image_deleted.json"),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(ids(&json(&answer)["alreadyStored"]), [id]);
    assert_eq!(stack.document(id).unwrap()["source"], "acr");

    // A Distribution notification, then its event as an ACR webhook body.
    let envelope = fixture_json("distribution/push.json");
    let event = &envelope["events"][0];
    let answer = stack.post(
        "/distribution",
        &[
            ("authorization", &bearer(TEST_KEY)),
            ("content-type", acr_webhook_testkit::EVENTS_MEDIA_TYPE),
        ],
        &fixture("distribution/push.json"),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let webhook = stack.post_acr(&serde_json::to_vec(event).unwrap());
    assert_eq!(webhook.status, 200, "{}", webhook.text());
    assert_eq!(json(&webhook)["id"], event["id"]);

    assert_eq!(stack.count(), 3);
}

/// A Distribution event of `team/app` with this id and digest.
fn distribution_event(id: &str, digest: &str) -> Value {
    json!({"id": id, "action": "push", "timestamp": "2026-12-01T10:00:00Z",
           "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "repository": "team/app", "digest": digest}})
}

/// A key holder takes, with other events sent to `/acr`, the id of a Distribution event and
/// the ids derived from it (anyone who knows the event can compute them). The event is then
/// kept aside under an id no sender can compute, the events after it in its batch are stored,
/// and the redelivery is 200: before, the batch answered 503 on every redelivery, and a
/// Distribution registry (which resends a batch until it is taken) never delivered the events
/// after it.
fn an_event_whose_ids_are_taken_never_blocks_its_batch(host: Runtime) {
    use acr_webhook_core::document::{EventDocument, EventSource};
    use acr_webhook_core::store::{candidates, MAX_CONFLICTS};

    let stack = Stack::start_on(host, &[]);
    let poison = distribution_event("d1", "sha256:2");
    let envelope = |events: &[Value]| serde_json::to_vec(&json!({ "events": events })).unwrap();
    let chain = {
        let parsed = acr_webhook_core::distribution::parse_envelope(
            None,
            &envelope(std::slice::from_ref(&poison)),
        )
        .unwrap();
        let document = EventDocument::from_event(
            &parsed[0].event,
            &parsed[0].action_name().unwrap(),
            EventSource::Distribution,
            SystemTime::now(),
        );
        // The component's configuration: the kept-aside id depends on the Cosmos key.
        let variables = [
            ("cosmos_endpoint", "http://127.0.0.1:1"),
            ("cosmos_key", EMULATOR_KEY),
            ("webhook_keys", TEST_KEY),
        ];
        let config = acr_webhook_core::Config::from_lookup(|name| {
            variables
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        candidates(&config, &document)
    };
    for (i, taken) in chain[..=MAX_CONFLICTS].iter().enumerate() {
        let other = json!({"id": taken.id, "action": "push",
                           "target": {"repository": "other/app", "digest": format!("sha256:claim-{i}")}});
        let answer = stack.post_acr(&serde_json::to_vec(&other).unwrap());
        assert_eq!(answer.status, 201, "{}", answer.text());
        assert_eq!(json(&answer)["id"], taken.id.as_str());
    }
    let kept = &chain[MAX_CONFLICTS + 1].id;
    let batch = envelope(&[
        distribution_event("d0", "sha256:0"),
        poison,
        distribution_event("d2", "sha256:0"),
    ]);
    let headers = [
        ("authorization", bearer(TEST_KEY)),
        (
            "content-type",
            acr_webhook_testkit::EVENTS_MEDIA_TYPE.to_string(),
        ),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = stack.post("/distribution", &headers, &batch);
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(ids(&json(&answer)["stored"]), ["d0", kept.as_str(), "d2"]);
    let document = stack.document(kept).expect("kept aside");
    assert_eq!(document["conflictIdsExhausted"], true);
    assert_eq!(document["conflictsWith"], "d1");
    assert_eq!(document["digest"], "sha256:2");
    let again = stack.post("/distribution", &headers, &batch);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        ids(&json(&again)["alreadyStored"]),
        ["d0", kept.as_str(), "d2"]
    );
    assert_eq!(stack.count(), MAX_CONFLICTS + 1 + 3);
}
