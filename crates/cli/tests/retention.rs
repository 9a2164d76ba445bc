//! `acr-webhook init --retention-days` against the real local store: what init prints, what it
//! sends (a replace of the container with `defaultTtl` set or left out, everything else kept)
//! and what the store gives back when the container is read again; `--dry-run` changes
//! nothing; a container init did not create keeps its own settings.
//!
//! The local store keeps `defaultTtl` as sent on a replace and returns it on a read, but
//! deletes nothing when it expires (docs/local-store.md): expiry itself is Cosmos DB's, and
//! not tested here.

mod support;

use acr_webhook_testkit::CosmosStore;
use serde_json::{json, Value};
use support::*;

/// The container's properties, read from the store directly.
fn container(store: &CosmosStore) -> Value {
    let answer = store.request("GET", "/dbs/acr/colls/events", &[], None);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json().unwrap()
}

/// What a replace must leave as it was: the container without its system properties and
/// without `defaultTtl`.
fn kept(container: &Value) -> Value {
    let mut kept = container.clone();
    kept.as_object_mut()
        .unwrap()
        .retain(|name, _| !name.starts_with('_') && name != "defaultTtl");
    kept
}

fn output(output: std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn succeeded(out: std::process::Output) -> String {
    let (ok, text) = output(out);
    assert!(ok, "init failed:\n{text}");
    text
}

#[test]
fn init_sets_shows_and_removes_the_retention() {
    let stack = Stack::start_store_only(&[]);
    let created = container(&stack.store);
    assert!(created.get("defaultTtl").is_none(), "{created}");

    // Without the flag: the time to live is printed and left alone.
    let shown = succeeded(stack.init_with(&[]));
    assert!(
        shown.contains(
            "time to live of dbs/acr/colls/events: off (no defaultTtl): events are kept until \
             someone deletes them (unchanged; set it with --retention-days DAYS|off)"
        ),
        "{shown}"
    );
    assert_eq!(container(&stack.store)["_etag"], created["_etag"]);

    // A dry run says what would change and changes nothing.
    let dry = succeeded(stack.init_with(&["--dry-run", "--retention-days", "90"]));
    assert!(
        dry.contains(
            "would change the time to live of dbs/acr/colls/events: from off (no defaultTtl)"
        ) && dry.contains("to 90 days (defaultTtl 7776000 s)"),
        "{dry}"
    );
    assert_eq!(container(&stack.store)["_etag"], created["_etag"]);
    assert!(container(&stack.store).get("defaultTtl").is_none());

    // Set: 90 days in seconds, and nothing else changed.
    let set = succeeded(stack.init_with(&["--retention-days", "90"]));
    assert!(
        set.contains("time to live of dbs/acr/colls/events: was off (no defaultTtl)")
            && set.contains("now 90 days (defaultTtl 7776000 s)"),
        "{set}"
    );
    let after = container(&stack.store);
    assert_eq!(after["defaultTtl"], 7_776_000, "{after}");
    assert_eq!(kept(&after), kept(&created));
    assert_ne!(
        after["_etag"], created["_etag"],
        "the container was replaced"
    );

    // Again: nothing to change, nothing sent.
    let again = succeeded(stack.init_with(&["--retention-days", "90"]));
    assert!(
        again.contains("time to live of dbs/acr/colls/events: 90 days (defaultTtl 7776000 s)")
            && again.contains("nothing to change"),
        "{again}"
    );
    assert_eq!(container(&stack.store)["_etag"], after["_etag"]);

    // Without the flag the 90 days stay, and are shown.
    let shown = succeeded(stack.init_with(&[]));
    assert!(
        shown.contains("time to live of dbs/acr/colls/events: 90 days")
            && shown.contains("(unchanged"),
        "{shown}"
    );
    assert_eq!(container(&stack.store)["defaultTtl"], 7_776_000);

    // A value init refuses changes nothing.
    for wrong in ["0", "24856", "ninety", "-1"] {
        let (ok, text) = output(stack.init_with(&["--retention-days", wrong]));
        assert!(!ok, "--retention-days {wrong} was accepted:\n{text}");
        assert!(text.contains("expected a whole number of days"), "{text}");
    }
    assert_eq!(container(&stack.store)["_etag"], after["_etag"]);

    // Off: the property is gone (not -1).
    let off = succeeded(stack.init_with(&["--retention-days", "off"]));
    assert!(
        off.contains("was 90 days") && off.contains("now off (no defaultTtl)"),
        "{off}"
    );
    let off = container(&stack.store);
    assert!(off.get("defaultTtl").is_none(), "{off}");
    assert_eq!(kept(&off), kept(&created));
}

#[test]
fn a_container_init_did_not_create_keeps_its_own_settings() {
    let stack = Stack::start_store_only(&[]);
    // Replaced by one made elsewhere: time to live on without a default (`-1`), a user's own
    // indexing policy, the composite index the read API needs among them.
    let gone = stack
        .store
        .request("DELETE", "/dbs/acr/colls/events", &[], None);
    assert_eq!(gone.status, 204, "{}", gone.text());
    let user_policy = json!({
        "indexingMode": "consistent",
        "automatic": true,
        "includedPaths": [{"path": "/*"}],
        "excludedPaths": [{"path": "/digest/?"}, {"path": "/\"_etag\"/?"}],
        "compositeIndexes": [
            [{"path": "/image", "order": "ascending"}, {"path": "/receivedAt", "order": "descending"}],
            [{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "descending"}]
        ]
    });
    let body = json!({
        "id": "events",
        "partitionKey": {"paths": ["/id"], "kind": "Hash", "version": 2},
        "indexingPolicy": user_policy,
        "defaultTtl": -1,
    });
    let made = stack
        .store
        .request("POST", "/dbs/acr/colls", &[], Some(&body));
    assert_eq!(made.status, 201, "{}", made.text());
    let before = container(&stack.store);

    let shown = succeeded(stack.init_with(&["--dry-run"]));
    assert!(
        shown
            .contains("time to live of dbs/acr/colls/events: on without a default (defaultTtl -1)")
            && shown.contains("(would be left as it is)"),
        "{shown}"
    );

    let set = succeeded(stack.init_with(&["--retention-days", "30"]));
    assert!(
        set.contains("was on without a default (defaultTtl -1)")
            && set.contains("now 30 days (defaultTtl 2592000 s)"),
        "{set}"
    );
    let after = container(&stack.store);
    assert_eq!(after["defaultTtl"], 2_592_000);
    assert_eq!(kept(&after), kept(&before), "only defaultTtl changed");
    assert_eq!(
        after["indexingPolicy"]["compositeIndexes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Off removes `-1` too: only then can no document expire.
    let body = {
        let mut b = kept(&after);
        b["defaultTtl"] = json!(-1);
        b
    };
    let replaced = stack
        .store
        .request("PUT", "/dbs/acr/colls/events", &[], Some(&body));
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    succeeded(stack.init_with(&["--retention-days", "off"]));
    let off = container(&stack.store);
    assert!(off.get("defaultTtl").is_none(), "{off}");
    assert_eq!(kept(&off), kept(&before));
}
