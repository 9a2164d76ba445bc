//! End to end, through the real component on `acr-webhook up` and the real local store: a
//! container the receiver did not create (made through the store's REST API, the way `az
//! cosmosdb sql container create` without `--idx` makes one) has no composite index for the
//! read API's order. Writes and `ping` work (the ping with a warning), `GET /events` answers
//! `index_missing` naming the index and the fix, `acr-webhook init` adds the index (keeping a
//! user's own indexes), reads then work without restarting the receiver, and a second `init`
//! changes nothing.
//!
//! The local store drops a container's documents when the container is replaced (`PUT`), which
//! Cosmos DB does not do (it builds the new index online); the expected pages below are
//! therefore computed from what the store holds, and the core's gateway stand-in
//! (`crates/core/tests/indexing_policy.rs`) checks that the events written before the change
//! are listed after it.

mod support;

use acr_webhook_testkit::{http, CosmosStore};
use serde_json::{json, Value};
use support::*;

/// The read key of these tests (reads are opt-in, with keys of their own).
const READ_KEY: &str = "e2e-read-key-index-16a";

fn get(stack: &Stack, path: &str) -> http::HttpResponse {
    let auth = bearer(READ_KEY);
    http::request("GET", &stack.url(path), &[("authorization", &auth)], None).unwrap()
}

/// The container's properties, read from the store directly.
fn container(store: &CosmosStore, id: &str) -> Value {
    let answer = store.request("GET", &format!("/dbs/acr/colls/{id}"), &[], None);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json().unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeded(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "init failed:\n{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

/// The ids `GET /events` lists, in order, and the ids the store holds, newest first.
fn listed_and_stored(stack: &Stack) -> (Vec<String>, Vec<String>) {
    let answer = get(stack, "/events?limit=100");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let listed = json(&answer)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let mut stored = stack.documents();
    stored.sort_by(|a, b| {
        let key = |d: &Value| {
            (
                d["receivedAt"].as_str().unwrap_or("").to_owned(),
                d["id"].as_str().unwrap().to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });
    let stored = stored
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    (listed, stored)
}

fn push_event(tag: &str) -> Vec<u8> {
    let mut event = fixture_json("acr/push.json");
    event["id"] = json!(format!("index-test-{tag}"));
    event["target"]["tag"] = json!(tag);
    serde_json::to_vec(&event).unwrap()
}

#[test]
fn a_container_made_without_the_policy_is_mended_by_init_while_the_receiver_runs() {
    let stack = Stack::start_prepared(&[("read_keys", READ_KEY)], |store| {
        store.create_database("acr");
        store.create_container("acr", "events", "/id");
    });
    assert!(
        container(&stack.store, "events")["indexingPolicy"]
            .get("compositeIndexes")
            .is_none(),
        "the store made the container without a composite index"
    );

    // Writes work.
    let stored = stack.post_acr(&push_event("v1"));
    assert_eq!(stored.status, 201, "{}", stored.text());

    // A ping works, and says that reads will not.
    let ping = stack.post_acr(&fixture("acr/ping.json"));
    assert_eq!(ping.status, 204, "{}", ping.text());
    let warning = ping.header("warning").expect("a Warning header").to_owned();
    assert!(warning.starts_with("199 acr-webhook \""), "{warning}");
    for needed in [
        "GET /events will fail",
        "(/receivedAt DESC, /id DESC)",
        "`acr-webhook init`",
        "--idx @deploy/cosmos-indexing-policy.json",
    ] {
        assert!(warning.contains(needed), "{needed:?} not in {warning}");
    }

    // A read names the missing index and the fix, and is logged once.
    let refused = get(&stack, "/events?limit=5");
    assert_eq!(refused.status, 500, "{}", refused.text());
    let body = json(&refused);
    assert_eq!(body["error"], "index_missing", "{body}");
    let message = body["message"].as_str().unwrap();
    for needed in [
        "(/receivedAt DESC, /id DESC)",
        "container `events` of database `acr`",
        "`acr-webhook init`",
        "az cosmosdb sql container update -g <resource-group> -a <account> -d acr -n events \
         --idx @deploy/cosmos-indexing-policy.json",
        // The store's own words.
        "The order by query does not have a corresponding composite index that it can be \
         served from.",
    ] {
        assert!(message.contains(needed), "{needed:?} not in {message}");
    }
    // With filters that do not fix the partition key, the same (one query per range).
    let filtered = get(&stack, "/events?image=hello-world&action=push");
    assert_eq!(json(&filtered)["error"], "index_missing");
    // The page's chart reads counts with a projection that orders nothing: it works; the
    // page's list is the `GET /events` above, and shows that error's code and message.
    let summary = get(&stack, "/events/summary");
    assert_eq!(summary.status, 200, "{}", summary.text());
    assert_eq!(json(&summary)["total"], 1);
    // A read by id orders nothing, and works.
    let one = get(&stack, "/events/index-test-v1");
    assert_eq!(one.status, 200, "{}", one.text());

    let log = stack.app_log_all();
    let lines: Vec<&str> = log
        .lines()
        // The component's own line (the host adds an access line of its own).
        .filter(|l| l.starts_with("acr-webhook: GET /events 500"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per refused read:\n{log}");
    assert!(
        lines[0].contains("index_missing: Cosmos DB refused the read query")
            && lines[0].contains("`acr-webhook init`"),
        "{}",
        lines[0]
    );
    assert!(
        log.lines().any(|l| l.contains(
            "POST /acr 204 ping ok, with a warning: writes work, but GET /events will fail"
        )),
        "{log}"
    );

    // --dry-run prints the change and makes none.
    let etag_before = container(&stack.store, "events")["_etag"].clone();
    let dry = succeeded(stack.init_with(&["--dry-run"]));
    assert!(
        dry.contains(
            "would add to the indexing policy of dbs/acr/colls/events: the composite index \
             (/receivedAt DESC, /id DESC)"
        ),
        "{dry}"
    );
    assert!(dry.contains("\"path\": \"/receivedAt\""), "{dry}");
    assert!(dry.contains("nothing was changed"), "{dry}");
    assert_eq!(container(&stack.store, "events")["_etag"], etag_before);
    assert_eq!(get(&stack, "/events").status, 500);

    // init mends it, and says what it changed.
    let mended = succeeded(stack.init_with(&[]));
    assert!(
        mended.contains("container events exists already"),
        "{mended}"
    );
    assert!(
        mended.contains(
            "indexing policy of dbs/acr/colls/events: added the composite index \
             (/receivedAt DESC, /id DESC) that GET /events orders by, and kept its 0 included \
             paths, 0 excluded paths and 0 other composite indexes as they were"
        ),
        "{mended}"
    );
    assert!(mended.contains("ready: dbs/acr/colls/events"), "{mended}");
    let policy = &container(&stack.store, "events")["indexingPolicy"];
    assert_eq!(
        policy["compositeIndexes"],
        json!([[{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "descending"}]])
    );

    // Reads work now, without restarting the receiver.
    let (listed, stored) = listed_and_stored(&stack);
    assert_eq!(listed, stored);
    for tag in ["v2", "v3"] {
        assert_eq!(stack.post_acr(&push_event(tag)).status, 201);
    }
    let (listed, stored) = listed_and_stored(&stack);
    assert_eq!(listed, stored);
    assert!(listed.len() >= 2, "{listed:?}");
    assert!(listed.contains(&"index-test-v3".to_owned()), "{listed:?}");

    // The ping has nothing to warn about any more.
    let ping = stack.post_acr(&fixture("acr/ping.json"));
    assert_eq!(ping.status, 204);
    assert_eq!(ping.header("warning"), None);

    // A second init changes nothing.
    let etag = container(&stack.store, "events")["_etag"].clone();
    let again = succeeded(stack.init_with(&[]));
    assert!(
        again.contains(
            "indexing policy of dbs/acr/colls/events: has the composite index \
             (/receivedAt DESC, /id DESC) that GET /events orders by; nothing to change"
        ),
        "{again}"
    );
    assert!(!again.contains("added"), "{again}");
    assert_eq!(container(&stack.store, "events")["_etag"], etag, "no PUT");
}

#[test]
fn a_users_own_indexes_and_settings_stay_after_init() {
    let user_policy = json!({
        "indexingMode": "consistent",
        "automatic": true,
        "includedPaths": [{"path": "/*"}],
        "excludedPaths": [{"path": "/digest/?"}, {"path": "/\"_etag\"/?"}],
        "compositeIndexes": [[
            {"path": "/image", "order": "ascending"},
            {"path": "/receivedAt", "order": "descending"}
        ]]
    });
    let body = json!({
        "id": "audit",
        "partitionKey": {"paths": ["/image"], "kind": "Hash", "version": 2},
        "defaultTtl": -1,
        "indexingPolicy": user_policy,
    });
    let stack = Stack::start_prepared(
        &[
            ("read_keys", READ_KEY),
            ("cosmos_container", "audit"),
            ("partition_key_path", "/image"),
        ],
        |store| {
            store.create_database("acr");
            let made = store.request("POST", "/dbs/acr/colls", &[], Some(&body));
            assert_eq!(made.status, 201, "{}", made.text());
        },
    );
    assert_eq!(stack.post_acr(&push_event("u1")).status, 201);
    let refused = get(&stack, "/events");
    assert_eq!(json(&refused)["error"], "index_missing");
    assert!(
        json(&refused)["message"]
            .as_str()
            .unwrap()
            .contains("container `audit` of database `acr`"),
        "{}",
        refused.text()
    );

    let mended = succeeded(stack.init_with(&[]));
    assert!(
        mended.contains(
            "kept its 1 included path, 2 excluded paths and 1 other composite index as they were"
        ),
        "{mended}"
    );
    let after = container(&stack.store, "audit");
    let policy = &after["indexingPolicy"];
    assert_eq!(policy["includedPaths"], user_policy["includedPaths"]);
    assert_eq!(policy["excludedPaths"], user_policy["excludedPaths"]);
    assert_eq!(policy["automatic"], true);
    assert_eq!(policy["indexingMode"], "consistent");
    let composite = policy["compositeIndexes"].as_array().unwrap();
    assert_eq!(composite.len(), 2, "{policy}");
    assert_eq!(composite[0], user_policy["compositeIndexes"][0]);
    assert_eq!(
        composite[1],
        json!([{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "descending"}])
    );
    assert_eq!(after["defaultTtl"], -1);
    assert_eq!(after["partitionKey"]["paths"], json!(["/image"]));

    assert_eq!(stack.post_acr(&push_event("u2")).status, 201);
    let (listed, stored) = listed_and_stored(&stack);
    assert_eq!(listed, stored);
    assert!(listed.contains(&"index-test-u2".to_owned()));
    // A query that fixes the partition key (one partition) works too.
    let one_partition = get(&stack, "/events?image=hello-world");
    assert_eq!(one_partition.status, 200, "{}", one_partition.text());

    let again = succeeded(stack.init_with(&[]));
    assert!(again.contains("nothing to change"), "{again}");
    assert_eq!(container(&stack.store, "audit")["indexingPolicy"], *policy);
}

#[test]
fn dry_run_on_an_empty_account_creates_nothing_and_mode_none_is_left_to_the_user() {
    let stack = Stack::start_prepared(&[("read_keys", READ_KEY)], |_| {});
    let dry = succeeded(stack.init_with(&["--dry-run"]));
    assert!(dry.contains("would create database acr"), "{dry}");
    assert!(
        dry.contains(
            "would create container events (partition key /id) with the indexing policy of \
             deploy/cosmos-indexing-policy.json"
        ),
        "{dry}"
    );
    assert_eq!(
        stack.store.request("GET", "/dbs/acr", &[], None).status,
        404
    );

    // A container whose indexing mode is `none`: init explains and changes nothing.
    stack.store.create_database("acr");
    let body = json!({
        "id": "events",
        "partitionKey": {"paths": ["/id"], "kind": "Hash", "version": 2},
        "indexingPolicy": {"indexingMode": "none", "automatic": false},
    });
    let made = stack
        .store
        .request("POST", "/dbs/acr/colls", &[], Some(&body));
    assert_eq!(made.status, 201, "{}", made.text());
    let etag = container(&stack.store, "events")["_etag"].clone();
    let refused = stack.init_with(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr
            .contains("dbs/acr/colls/events cannot serve GET /events, and init did not change it")
            && stderr.contains("`none`"),
        "{stderr}"
    );
    assert_eq!(container(&stack.store, "events")["_etag"], etag);
}
