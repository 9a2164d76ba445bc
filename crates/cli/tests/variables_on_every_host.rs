//! Configuration on every host: `acr-webhook up` (Spin variables), and stock `wasmtime serve`
//! with the composed component, its variables from the environment adapter and from the
//! wasi:config adapter. A variable set but empty, or malformed, gets the same answer on each:
//! `500 configuration_error` naming the variable. A required variable not given at all, and
//! keys the component would refuse on every request, stop `acr-webhook up` naming the variable
//! (a missing one stops `spin up` too); `wasmtime serve` has no start-up step a component could
//! refuse in, so there every request gets the `configuration_error` answer naming it.

mod support;

use acr_webhook_testkit::http::HttpResponse;
use serde_json::Value;
use support::*;

const HOSTS: [Runtime; 3] = [Runtime::Up, Runtime::Wasmtime, Runtime::WasmtimeConfig];

/// A push with the right key: it needs the whole configuration.
fn push(stack: &Stack) -> HttpResponse {
    stack.post_acr(&fixture("acr/push.json"))
}

/// Status and JSON body.
fn answer(response: &HttpResponse) -> (u16, Value) {
    (response.status, json(response))
}

/// Variable `name` set to `Some(value)` or left out.
type Change<'a> = (&'a str, Option<&'a str>);

/// Status and body of the answer, or the log of an app that did not start.
type Answer = Result<(u16, Value), String>;

/// Starts the app on each host in turn with one variable changed (the store and `init` ran
/// with a working configuration), and returns each answer to a push, or the log of an app
/// that did not start.
fn answers_with((name, value): Change) -> Vec<(Runtime, Answer)> {
    let mut stack = Stack::start_store_only(&[]);
    match value {
        Some(value) => stack.set_variable(name, value),
        None => stack.unset_variable(name),
    }
    let mut answers = Vec::new();
    for host in HOSTS {
        stack.host = host;
        let started = stack.try_start_app();
        answers.push((host, started.map(|()| answer(&push(&stack)))));
    }
    answers
}

fn assert_configuration_error(answer: &(u16, Value), variable: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 500, "{body}");
    assert_eq!(body["error"], "configuration_error", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("`{variable}`")), "{body}");
}

#[test]
fn an_empty_or_malformed_variable_gets_the_same_answer_on_every_host() {
    let cases: [(&str, &str); 4] = [
        ("cosmos_key", "not base64!"),
        ("cosmos_key", ""),
        ("write_budget_ms", "soon"),
        // Plain http to another machine (issue 15, item 7).
        ("cosmos_endpoint", "http://192.0.2.1:8081"),
    ];
    for (variable, value) in cases {
        let answers = answers_with((variable, Some(value)));
        let (_, on_up) = &answers[0];
        let on_up = on_up.as_ref().expect("acr-webhook up starts");
        assert_configuration_error(on_up, variable);
        for (host, answer) in &answers[1..] {
            let answer = answer.as_ref().unwrap_or_else(|e| panic!("{host:?}: {e}"));
            assert_eq!(answer, on_up, "{variable}={value:?} on {host:?}");
        }
    }
}

/// Keys the component would refuse on every request (empty, under 16 characters): `acr-webhook
/// up` refuses to start, naming the variable and never the value (issue 15, item 6);
/// `wasmtime serve` cannot refuse to start a component, so there every request gets the
/// same `configuration_error` naming the variable, from either adapter.
#[test]
fn unusable_keys_stop_up_and_are_named_on_every_request_elsewhere() {
    let weak = "fifteen-chars-k";
    for (variable, value) in [
        ("webhook_keys", ""),
        ("webhook_keys", weak),
        ("read_keys", weak),
    ] {
        let answers = answers_with((variable, Some(value)));
        let (_, on_up) = &answers[0];
        let log = on_up.as_ref().expect_err("acr-webhook up refuses to start");
        assert!(log.contains("refusing to start"), "{log}");
        assert!(log.contains(&format!("`{variable}`")), "{log}");
        assert!(!log.contains(weak), "{log}");
        let (_, first) = &answers[1];
        let first = first.as_ref().unwrap_or_else(|e| panic!("wasmtime: {e}"));
        assert_configuration_error(first, variable);
        assert!(!first.1.to_string().contains(weak), "{}", first.1);
        for (host, answer) in &answers[2..] {
            let answer = answer.as_ref().unwrap_or_else(|e| panic!("{host:?}: {e}"));
            assert_eq!(answer, first, "{variable}={value:?} on {host:?}");
        }
    }
}

#[test]
fn a_missing_required_variable_is_named_on_every_host() {
    let variable = "webhook_keys";
    let answers = answers_with((variable, None));
    // `acr-webhook up`, like `spin up`, does not start without it.
    let (_, on_up) = &answers[0];
    let log = on_up.as_ref().expect_err("acr-webhook up refuses to start");
    assert!(
        log.contains(&format!("missing required variable {variable}")),
        "{log}"
    );
    // On `wasmtime serve` (both adapters): the answer `up` gives for the variable set but
    // empty (where `up` starts with it), naming the variable.
    let (_, first) = &answers[1];
    let first = first.as_ref().unwrap_or_else(|e| panic!("wasmtime: {e}"));
    assert_configuration_error(first, variable);
    for (host, answer) in &answers[2..] {
        let answer = answer.as_ref().unwrap_or_else(|e| panic!("{host:?}: {e}"));
        assert_eq!(answer, first, "{variable} unset on {host:?}");
    }
}

/// `cosmos_key` is not required (with `cosmos_auth = "entra"` there is none; spin.toml's
/// default is empty): left out with the account key in use, every host starts and every
/// request gets the answer an empty key gets, naming it.
#[test]
fn cosmos_key_left_out_is_named_on_every_request_on_every_host() {
    let variable = "cosmos_key";
    let left_out = answers_with((variable, None));
    let empty = answers_with((variable, Some("")));
    for ((host, left_out), (_, empty)) in left_out.iter().zip(&empty) {
        let left_out = left_out
            .as_ref()
            .unwrap_or_else(|e| panic!("{host:?} starts: {e}"));
        assert_configuration_error(left_out, variable);
        let empty = empty.as_ref().unwrap_or_else(|e| panic!("{host:?}: {e}"));
        assert_eq!(left_out, empty, "{variable} left out and empty on {host:?}");
    }
}

#[test]
fn the_config_adapter_serves_writes_and_reads_with_spin_toml_defaults() {
    // No cosmos_database or cosmos_container given: spin.toml's defaults ("acr", "events"),
    // which `init` created, come from the adapter.
    let stack = Stack::start_on(
        Runtime::WasmtimeConfig,
        &[("read_keys", "config-adapter-read-key-0042")],
    );
    let response = push(&stack);
    assert_eq!(response.status, 201, "{}", stack.app_log());
    let id = fixture_json("acr/push.json")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stack.document(&id).is_some());
    let read = acr_webhook_testkit::http::request(
        "GET",
        &stack.url(&format!("/events/{id}")),
        &[("authorization", &bearer("config-adapter-read-key-0042"))],
        None,
    )
    .unwrap();
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(json(&read)["id"], id.as_str());
    assert_eq!(stack.post_acr(&fixture("acr/ping.json")).status, 204);
}
