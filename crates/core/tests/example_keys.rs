//! Keys copied from the examples are refused: every value of deploy/secret.example.yaml is a
//! `PLACEHOLDER-…` that passes the length check, and someone who replaces only the Cosmos key
//! would otherwise ship publicly known webhook and read keys.

mod common;

use std::collections::HashMap;

use acr_webhook_core::auth::EXAMPLE_KEYS;
use acr_webhook_core::{handle, respond, Config, VariableSource};
use common::*;

/// The value of `name:` in the example Secret's `stringData`.
fn example_value(name: &str) -> String {
    let path = repo_root().join("deploy/secret.example.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {}", path.display()));
    line[name.len() + 1..].trim().trim_matches('"').to_owned()
}

fn vars(extra: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
    let mut vars = HashMap::from([
        ("cosmos_endpoint", "http://127.0.0.1:8081".to_string()),
        ("cosmos_key", TEST_COSMOS_KEY.to_string()),
        ("webhook_keys", TEST_WEBHOOK_KEY.to_string()),
        ("read_keys", TEST_READ_KEY.to_string()),
    ]);
    for (k, v) in extra {
        vars.insert(k, v.to_string());
    }
    vars
}

#[test]
fn the_example_secrets_keys_are_configuration_errors_naming_the_variable() {
    let webhook = example_value("webhook-keys");
    let read = example_value("read-keys");
    assert!(
        webhook.len() >= 16 && read.len() >= 16,
        "they pass the length check"
    );
    let cases = [
        ("webhook_keys", webhook.clone()),
        ("webhook_keys", format!("{TEST_WEBHOOK_KEY},{webhook}")),
        ("webhook_keys", webhook.to_lowercase()),
        ("read_keys", read.clone()),
        ("read_keys", format!("{TEST_READ_KEY}, {read}")),
        ("webhook_keys", EXAMPLE_KEYS[0].to_string()),
        ("read_keys", EXAMPLE_KEYS[0].to_string()),
    ];
    for (variable, value) in cases {
        let vars = vars(&[(variable, &value)]);
        let err = Config::from_lookup(|n| vars.get(n).cloned()).unwrap_err();
        assert_eq!(err.variable(), variable, "{value}");
        let message = err.to_string();
        assert!(message.contains("example"), "{message}");
        assert!(!message.contains(&value), "{message}");
        // Every request to the variable's routes answers 500 naming it, nothing read or written.
        let (method, path, key) = if variable == "webhook_keys" {
            ("POST", "/acr", TEST_WEBHOOK_KEY)
        } else {
            ("GET", "/events", TEST_READ_KEY)
        };
        let store = MemoryStore::new();
        let h = head(method, path, &[("authorization", &format!("Bearer {key}"))]);
        let source = VariableSource::new(|n: &str| vars.get(n).cloned());
        let outcome = block_on(handle(&h, fixture("acr/push.json"), source, &store, now()));
        let response = respond(&outcome);
        assert_eq!(response.status(), 500, "{variable}");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "configuration_error");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{variable}`")),
            "{body}"
        );
        assert!(store.requests.borrow().is_empty());
    }
}
