//! Whole requests through `webhook::handle`: a structured input (method, route, query, key,
//! content type and length, a few headers, body) becomes an `http::request::Parts`, runs
//! against an in-memory store with a virtual clock and the fixed configuration, and the answer
//! from `respond` and the `log_line` are checked:
//!
//! - no panic, and the flow finishes without waiting on anything;
//! - no 5xx at all: with this store 500 would need a configuration error (the configuration
//!   is fixed and valid), 502 a refused write (the store only answers 201/409/200), 503 an
//!   unreachable store or a spent budget (a round trip takes 0.5 ms of virtual time, so even
//!   5,000 creates fit in the 4 s budget);
//! - every status is one the documentation lists for that kind of request;
//! - the answer body is empty or JSON;
//! - neither the answer (body and headers) nor the log line contains a configured key, the
//!   Cosmos key or a request signature, unless the request itself put that text where it
//!   may be echoed (the body, path, non-key parameters, other headers);
//! - a 4xx never wrote to the store, and a request without a valid key never reached it;
//! - every document written obeys the id invariants;
//! - handling the same request twice (fresh store) gives the same answer.
#![no_main]

use acr_webhook_core::{handle, log_line, respond};
use acr_webhook_fuzz::{
    block_on, check_id, config, contains, decoded_echoable, now, MemoryStore, RequestInput, SECRETS,
};
use libfuzzer_sys::fuzz_target;

struct Run {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    log: String,
    store: MemoryStore,
}

fn run(head: &http::request::Parts, body: &[u8]) -> Run {
    let store = MemoryStore::new();
    let outcome = block_on(handle(head, body.to_vec(), Ok(config()), &store, now()));
    let response = respond(&outcome);
    let log = log_line(&head.method, head.uri.path(), &outcome);
    Run {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: response.body().clone(),
        log,
        store,
    }
}

fuzz_target!(|input: RequestInput| {
    let Some(built) = input.build() else {
        return; // the http crate refuses this method, URI or header
    };
    let head = &built.head;
    let r = run(head, &input.body.0);
    let path = head.uri.path();
    let status = r.status;

    // Statuses.
    assert!(
        status < 500,
        "{status} for {} {path}: {}",
        head.method,
        r.log
    );
    let allowed: &[u16] = match path {
        "/healthz" => &[200, 405],
        "/acr" => &[200, 201, 202, 204, 400, 401, 405, 408, 413],
        "/distribution" | "/eventgrid" => &[200, 201, 202, 400, 401, 405, 408, 413, 415],
        "/events" => &[200, 400, 401, 405],
        p if p.starts_with("/events/") => &[200, 400, 401, 404, 405],
        _ => &[404],
    };
    assert!(
        allowed.contains(&status),
        "status {status} is not one {path} answers: {}",
        r.log
    );

    // The body: empty or JSON.
    if !r.body.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&r.body) {
            panic!(
                "answer body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    // No secret in the answer or the log line.
    let signatures: Vec<String> = r
        .store
        .sent
        .borrow()
        .iter()
        .filter_map(|s| s.authorization.clone())
        .collect();
    let mut answer_text = r.body.clone();
    for (name, value) in &r.headers {
        answer_text.extend_from_slice(name.as_bytes());
        answer_text.push(b':');
        answer_text.extend_from_slice(value);
        answer_text.push(b'\n');
    }
    let mut decoded: Option<Vec<u8>> = None;
    for secret in SECRETS
        .iter()
        .map(|s| s.as_bytes())
        .chain(signatures.iter().map(|s| s.as_bytes()))
    {
        let in_answer = contains(&answer_text, secret);
        let in_log = contains(r.log.as_bytes(), secret);
        if !in_answer && !in_log {
            continue;
        }
        // Only a leak if the request did not carry that text itself where it may be echoed.
        let echoed = decoded.get_or_insert_with(|| decoded_echoable(&input, &built));
        if contains(echoed, secret) {
            continue;
        }
        assert!(
            !in_answer,
            "the answer contains a secret: {}",
            String::from_utf8_lossy(&answer_text)
        );
        assert!(!in_log, "the log line contains a secret: {}", r.log);
    }

    // Who reached the store.
    let sent = r.store.sent.borrow();
    let writes = sent.iter().filter(|s| s.is_write).count();
    if (400..500).contains(&status) {
        assert_eq!(
            writes, 0,
            "a {status} answer after {writes} write(s): {}",
            r.log
        );
    }
    if status == 401 || status == 404 && !path.starts_with("/events/") || status == 405 {
        assert!(
            sent.is_empty(),
            "a {status} answer after {} store request(s)",
            sent.len()
        );
    }
    assert!(
        r.store.unexpected.borrow().is_empty(),
        "the store got requests it does not know: {:?}",
        r.store.unexpected.borrow()
    );
    if status == 201 {
        assert!(
            !r.store.created.borrow().is_empty(),
            "201 without a new document"
        );
    }
    for document in r.store.created.borrow().iter() {
        let id = document["id"]
            .as_str()
            .expect("a written document has a string id");
        check_id(id);
    }

    // Deterministic: the same request again, on a fresh store, answers the same.
    let again = run(head, &input.body.0);
    assert_eq!(again.status, status, "status differs on a second run");
    assert_eq!(again.body, r.body, "answer differs on a second run");
    assert_eq!(again.log, r.log);
});
