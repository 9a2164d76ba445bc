//! No configured key, account key or signature appears in any answer, log line, error or
//! Debug output, whatever happens.

mod common;

use acr_webhook_core::cosmos::{signature, x_ms_date, SigningScope};
use acr_webhook_core::{handle, log_line, respond};
use common::*;

#[test]
fn secrets_never_leak() {
    let cfg = config(&[(
        "webhook_keys",
        &format!("{TEST_WEBHOOK_KEY},{TEST_WEBHOOK_KEY_2}"),
    )]);
    let date = x_ms_date(now());
    let acr_webhook_core::cosmos::CosmosAuth::Key(key) = &cfg.store.auth else {
        panic!("the test configuration signs with the account key")
    };
    let sig = signature(
        key,
        &SigningScope {
            verb: "POST",
            resource_type: "docs",
            resource_link: "dbs/acr/colls/events",
            date: &date,
        },
    );
    let secrets = [
        TEST_WEBHOOK_KEY,
        TEST_WEBHOOK_KEY_2,
        TEST_READ_KEY,
        TEST_COSMOS_KEY,
        sig.as_str(),
    ];

    let mut seen = vec![format!("{cfg:?}")];
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let code_uri = format!("/acr?code={TEST_WEBHOOK_KEY_2}");
    let behaviours = [
        Behaviour::Normal,
        Behaviour::Unreachable,
        Behaviour::Status(401, None),
        Behaviour::Status(429, Some("10")),
        Behaviour::Status(500, None),
    ];
    for behaviour in behaviours {
        for (uri, headers, body) in [
            (
                "/acr",
                vec![("authorization", bearer.as_str())],
                fixture("acr/push.json"),
            ),
            (
                "/acr",
                vec![("authorization", bearer.as_str())],
                fixture("acr/ping.json"),
            ),
            (code_uri.as_str(), vec![], fixture("acr/delete.json")),
            (code_uri.as_str(), vec![], b"{".to_vec()),
            (
                "/acr",
                vec![("authorization", "Bearer wrong")],
                fixture("acr/push.json"),
            ),
        ] {
            let store = MemoryStore::new();
            *store.behaviour.borrow_mut() = behaviour.clone();
            let h = head("POST", uri, &headers);
            let outcome = block_on(handle(&h, body, Ok(cfg.clone()), &store, now()));
            seen.push(format!("{outcome:?}"));
            if let Err(e) = &outcome {
                seen.push(e.to_string());
            }
            seen.push(log_line(&h.method, h.uri.path(), &outcome));
            let response = respond(&outcome);
            seen.push(format!("{response:?}"));
            seen.push(String::from_utf8_lossy(response.body()).into_owned());
        }
    }
    for text in &seen {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
        }
    }
}
