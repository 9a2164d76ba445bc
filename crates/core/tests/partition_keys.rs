//! The `x-ms-documentdb-partitionkey` header of every create is the value Cosmos DB reads from
//! the body at the configured path: for each property a document has (read from the
//! document's field), and for nested paths and properties documents lack (read from the
//! serialized body), whichever sender delivered the event.

mod common;

use acr_webhook_core::cosmos::PartitionKeyPath;
use acr_webhook_core::handle;
use common::*;

fn stored_create(path: &str, route: &str, fixture_path: &str) -> (String, serde_json::Value) {
    let store = MemoryStore::new();
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let h = head("POST", route, &[("authorization", &bearer)]);
    let cfg = config(&[("partition_key_path", path)]);
    let outcome = block_on(handle(&h, fixture(fixture_path), Ok(cfg), &store, now()));
    assert!(outcome.is_ok(), "{path} {fixture_path}: {outcome:?}");
    let requests = store.requests.borrow();
    let create = requests
        .iter()
        .find(|r| r.headers().contains_key("x-ms-documentdb-partitionkey"))
        .expect("a create was sent");
    let header = create.headers()["x-ms-documentdb-partitionkey"]
        .to_str()
        .unwrap()
        .to_owned();
    (header, serde_json::from_slice(create.body()).unwrap())
}

#[test]
fn the_header_is_the_value_at_the_path_in_the_body() {
    for (route, fixture_path) in [
        ("/acr", "acr/push.json"),
        ("/acr", "acr/push_oci_helm.json"),
        ("/acr", "acr/delete.json"),
        ("/acr", "acr/chart_push.json"),
        ("/acr", "acr/push_id_with_slashes.json"),
    ] {
        let (_, body) = stored_create("/id", route, fixture_path);
        let mut paths: Vec<String> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("/{k}"))
            .collect();
        assert!(paths.len() >= 8, "{fixture_path}: {body}");
        paths.extend(
            [
                "/target/repository",
                "/image/name",
                "/repository",
                "/tag/x",
                "/Image",
            ]
            .map(String::from),
        );
        for path in paths {
            let (header, body) = stored_create(&path, route, fixture_path);
            let want = PartitionKeyPath::parse(&path).unwrap().header_for(&body);
            assert_eq!(header, want, "{path} {fixture_path}");
        }
    }
    let (header, _) = stored_create("/target/repository", "/acr", "acr/push.json");
    assert_eq!(header, "[{}]");
    let (header, _) = stored_create("/size", "/acr", "acr/push.json");
    assert!(header.starts_with('[') && header[1..].starts_with(|c: char| c.is_ascii_digit()));
}
