//! Cosmos DB with Microsoft Entra ID, end to end through the real component: the app signs
//! with tokens from a fake Entra ID (testkit's `FakeEntra`: IMDS and the v2 token endpoint,
//! issuing signed JWTs) against a front that behaves like an account with local
//! authentication disabled (testkit's `LockedStore`: master keys 401/5202, control-plane
//! writes 403/5300, data-plane requests only with a valid token of an accepted audience),
//! before the local store. `init` and the test's own reads go to the store directly, with the
//! account key.

mod support;

use acr_webhook_testkit::{FakeEntra, FederatedTokenFile, LockedStore, Outage};
use support::*;

/// A secret that must never appear in an answer or a log line.
const WRONG_SECRET: &str = "wrong-client-secret-value-0123456789";

/// The stack, the fake Entra ID and the locked front the app writes through.
struct EntraStack {
    stack: Stack,
    entra: FakeEntra,
    locked: LockedStore,
    /// Workload identity's federated token file (the fake's cluster issuer signs it).
    token_file: Option<FederatedTokenFile>,
}

/// The audience the locked front accepts for its account (`testkit`): set explicitly, so
/// that one token request is one token (the fallback has its own test).
const AUDIENCE: &str = "https://testkit.documents.azure.com";

/// Store + init (with the key, against the store), then the app on `host` with
/// `cosmos_auth=entra` and `source`'s variables, against the locked front. `cosmos_key` is
/// not given to the app at all.
fn start(host: Runtime, source: &str, extra: &[(&str, &str)]) -> EntraStack {
    let mut stack = Stack::start_store_only(&[]);
    stack.host = host;
    let entra = FakeEntra::start();
    let locked = LockedStore::start(stack.store.addr(), entra.validator());
    let app = entra.app();
    let secret = entra.client_secret();
    let authority = entra.authority_host().trim_end_matches('/').to_owned();
    let endpoint = entra.endpoint();
    stack.unset_variable("cosmos_key");
    for (name, value) in [
        ("cosmos_auth", "entra"),
        ("entra_token_source", source),
        ("entra_tenant_id", entra.tenant_id()),
        ("entra_client_id", app.client_id.as_str()),
        ("entra_client_secret", secret.as_str()),
        ("entra_authority_host", authority.as_str()),
        ("entra_imds_endpoint", endpoint.as_str()),
        ("entra_audience", AUDIENCE),
    ] {
        stack.set_variable(name, value);
    }
    if source == "managed-identity" {
        stack.unset_variable("entra_client_id");
    }
    let token_file = (source == "workload-identity").then(|| entra.federated_token_file());
    if let Some(file) = &token_file {
        stack.set_variable(
            "entra_federated_token_file",
            &file.path().display().to_string(),
        );
    }
    for (name, value) in extra {
        if value.is_empty() {
            stack.unset_variable(name);
        } else {
            stack.set_variable(name, value);
        }
    }
    stack.start_app_against(&locked.endpoint());
    EntraStack {
        stack,
        entra,
        locked,
        token_file,
    }
}

impl EntraStack {
    /// Posts a push with event id `id` and checks that it was stored (201), showing the answer
    /// and the app's log when it was not.
    fn assert_stored(&self, id: &str) {
        let answer = self.stack.post_acr(&push(id));
        assert_eq!(
            answer.status,
            201,
            "{}\n{}",
            answer.text(),
            self.stack.app_log()
        );
    }
}

fn push(id: &str) -> Vec<u8> {
    String::from_utf8(fixture("acr/push.json"))
        .unwrap()
        .replace("cb8c3971-9adc-488b-bdd8-43cbb4974ff5", id)
        .into_bytes()
}

fn read(stack: &Stack, path: &str) -> acr_webhook_testkit::http::HttpResponse {
    let auth = bearer(TEST_READ_KEY);
    acr_webhook_testkit::http::request("GET", &stack.url(path), &[("authorization", &auth)], None)
        .unwrap()
}

/// No token (every JWT starts `eyJ`), no client secret, in anything the app said.
fn assert_no_credentials(e: &EntraStack, answers: &[String]) {
    let log = e.stack.app_log_all();
    let secret = e.entra.client_secret();
    for text in answers.iter().chain([&log]) {
        assert!(!text.contains("eyJ"), "a token leaked: {text}");
        assert!(!text.contains(&secret), "the client secret leaked");
        assert!(!text.contains(WRONG_SECRET), "the client secret leaked");
    }
}

/// Every sender and the read API, signed with Entra ID tokens. On `acr-webhook up` the token
/// is cached (key-value store `default`): one token for the whole test. Stock `wasmtime
/// serve` keeps nothing between requests: one token per request that reaches the store.
fn every_sender_and_the_read_api(host: Runtime) {
    let e = start(host, "client-secret", &[]);
    let s = &e.stack;
    let mut answers = Vec::new();
    let mut store_requests = 0;
    let mut expect = |response: acr_webhook_testkit::http::HttpResponse, status: u16| {
        assert_eq!(
            response.status,
            status,
            "{}\n{}",
            response.text(),
            s.app_log()
        );
        answers.push(response.text());
        store_requests += 1;
    };
    expect(s.post_acr(&push("entra-acr-1")), 201);
    expect(s.post_acr(&push("entra-acr-1")), 200);
    expect(s.post_acr(&fixture("acr/delete.json")), 201);
    let auth = bearer(TEST_KEY);
    expect(
        s.post(
            "/distribution",
            &[
                ("authorization", &auth),
                (
                    "content-type",
                    "application/vnd.docker.distribution.events.v1+json",
                ),
            ],
            &fixture("distribution/push.json"),
        ),
        201,
    );
    expect(
        s.post(
            "/eventgrid",
            &[
                ("authorization", &auth),
                (
                    "content-type",
                    "application/cloudevents+json; charset=utf-8",
                ),
                ("aeg-event-type", "Notification"),
            ],
            &fixture("eventgrid/cloudevents/image_pushed.json"),
        ),
        201,
    );
    let page = read(s, "/events?limit=2");
    assert_eq!(page.status, 200, "{}", page.text());
    let body = json(&page);
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    let continuation = body["continuation"]
        .as_str()
        .expect("a next page")
        .to_owned();
    answers.push(page.text());
    let rest = read(s, &format!("/events?limit=10&continuation={continuation}"));
    assert_eq!(rest.status, 200, "{}", rest.text());
    assert_eq!(json(&rest)["events"].as_array().unwrap().len(), 2);
    let one = read(s, "/events/entra-acr-1");
    assert_eq!(one.status, 200, "{}", one.text());
    let summary = read(s, "/events/summary");
    assert_eq!(summary.status, 200, "{}", summary.text());
    answers.extend([rest.text(), one.text(), summary.text()]);
    store_requests += 4;
    assert_eq!(s.count(), 4);

    let issued = e.entra.stats().total_issued();
    match host {
        Runtime::Up => assert_eq!(
            issued, 1,
            "one token, cached, for {store_requests} requests"
        ),
        _ => assert_eq!(issued, store_requests, "no cache: one token per request"),
    }
    // Every request reached the store with a token, none with a key.
    let stats = e.locked.stats();
    assert_eq!(stats.local_auth_refused, 0);
    assert_eq!(stats.token_refused, 0);
    assert!(stats.forwarded >= store_requests, "{stats:?}");
    assert_no_credentials(&e, &answers);
}

/// Credentials Entra refuses: 500 `configuration_error` naming the variable and Entra's code,
/// never the secret; nothing written.
fn a_wrong_secret_names_the_variable_and_entra_s_code(host: Runtime) {
    let e = start(
        host,
        "client-secret",
        &[("entra_client_secret", WRONG_SECRET)],
    );
    let answer = e.stack.post_acr(&push("never-stored"));
    assert_eq!(answer.status, 500, "{}", answer.text());
    let body = json(&answer);
    assert_eq!(body["error"], "configuration_error");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("entra_client_secret"), "{message}");
    assert!(message.contains("AADSTS7000215"), "{message}");
    assert_eq!(e.stack.count(), 0);
    assert_no_credentials(&e, &[answer.text()]);
}

on_every_host!(
    every_sender_and_the_read_api,
    a_wrong_secret_names_the_variable_and_entra_s_code
);

/// A token Cosmos DB refuses (revoked) is replaced once, and the event stored.
#[test]
fn a_revoked_token_is_refreshed_once_and_the_event_stored() {
    let e = start(Runtime::Up, "client-secret", &[]);
    assert_eq!(e.stack.post_acr(&push("before-revocation")).status, 201);
    e.entra.revoke_all();
    let answer = e.stack.post_acr(&push("after-revocation"));
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(e.entra.stats().total_issued(), 2);
    assert_eq!(e.locked.stats().token_refused, 1);
    // The refreshed token replaced the cached one.
    assert_eq!(e.stack.post_acr(&push("after-refresh")).status, 201);
    assert_eq!(e.entra.stats().total_issued(), 2);
    assert_eq!(e.stack.count(), 3);
}

/// The token endpoint down: 503 `store_unavailable` with `Retry-After`, nothing written; the
/// redelivery, once it is back, stores the event once.
#[test]
fn the_token_endpoint_down_gives_503_and_the_redelivery_is_stored_once() {
    let e = start(Runtime::Up, "client-secret", &[]);
    e.entra.go_down();
    let answer = e.stack.post_acr(&push("while-entra-is-down"));
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(json(&answer)["error"], "store_unavailable");
    assert!(answer.header("retry-after").is_some());
    assert_eq!(e.stack.count(), 0);
    e.entra.come_up();
    // 5xx answers of the endpoint are retried within the budget.
    e.entra.fail_next(2, Outage::Status(503));
    assert_eq!(e.stack.post_acr(&push("while-entra-is-down")).status, 201);
    assert_eq!(e.stack.post_acr(&push("while-entra-is-down")).status, 200);
    assert_eq!(e.stack.count(), 1);
}

/// Managed identity through IMDS (the system-assigned identity), `Metadata: true` and all.
#[test]
fn managed_identity_through_imds() {
    let e = start(Runtime::Up, "managed-identity", &[]);
    e.assert_stored("by-managed-identity");
    assert_eq!(
        e.entra
            .stats()
            .issued(acr_webhook_testkit::Protocol::ManagedIdentity),
        1
    );
}

/// Without `entra_audience`, the account's own audience is asked for first; a tenant that
/// does not know it (AADSTS500011) is asked for `https://cosmos.azure.com`.
#[test]
fn an_unknown_account_audience_falls_back_to_cosmos_azure_com() {
    let e = start(Runtime::Up, "client-secret", &[("entra_audience", "")]);
    e.assert_stored("after-fallback");
    let requests = e.entra.requests();
    let audiences: Vec<&str> = requests
        .iter()
        .map(|r| r.audience.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        audiences,
        ["https://127.0.0.1", "https://cosmos.azure.com"],
        "{requests:?}"
    );
}

/// The account key against an account with local authentication disabled.
#[test]
fn the_account_key_against_a_locked_account_says_set_cosmos_auth_entra() {
    let mut stack = Stack::start_store_only(&[]);
    let entra = FakeEntra::start();
    let locked = LockedStore::start(stack.store.addr(), entra.validator());
    stack.start_app_against(&locked.endpoint());
    let answer = stack.post_acr(&push("with-the-key"));
    assert_eq!(answer.status, 502, "{}", answer.text());
    let message = json(&answer)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("Local Authorization is disabled"),
        "{message}"
    );
    assert!(message.contains("set cosmos_auth=entra"), "{message}");
}

/// A valid token whose identity holds no data-plane role: 502 with Cosmos DB's words and the
/// role assignment that fixes it.
#[test]
fn a_token_without_the_data_role_names_the_role_assignment() {
    let e = start(Runtime::Up, "client-secret", &[]);
    e.locked.set_default_role(None);
    let answer = e.stack.post_acr(&push("no-role"));
    assert_eq!(answer.status, 502, "{}", answer.text());
    let message = json(&answer)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("az cosmosdb sql role assignment create"),
        "{message}"
    );
    assert!(
        message.contains("00000000-0000-0000-0000-000000000002"),
        "{message}"
    );
}

/// Workload identity: the federated token file is read again for every token request, so a
/// rotated file is used.
#[test]
fn workload_identity_reads_the_rotated_file() {
    let e = start(Runtime::Up, "workload-identity", &[]);
    e.assert_stored("by-workload-identity");
    // The kubelet rotates the file; a fetch after that must read the new token (the fake
    // refuses the old one once rotated).
    e.token_file.as_ref().expect("a token file").rotate();
    e.entra.revoke_all();
    e.assert_stored("after-rotation");
    assert_eq!(
        e.entra
            .stats()
            .issued(acr_webhook_testkit::Protocol::ClientAssertion),
        2
    );
}

/// `init` under Entra ID reads and checks: a container that exists passes (exit 0); a missing
/// one exits non-zero with the `az` commands that create it and grant the role.
#[test]
fn init_under_entra_checks_and_prints_the_az_commands() {
    let mut e = start(Runtime::Up, "client-secret", &[]);
    let endpoint = e.locked.endpoint();
    e.stack.set_variable("cosmos_endpoint", &endpoint);
    let out = e.stack.init_with(&[]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ready"), "{said}");

    e.stack.set_variable("cosmos_container", "not-created-yet");
    let out = e.stack.init_with(&[]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("az cosmosdb sql container create --account-name"),
        "{said}"
    );
    assert!(
        said.contains("--partition-key-path /id --idx @deploy/cosmos-indexing-policy.json"),
        "{said}"
    );
    assert!(
        said.contains("az cosmosdb sql role assignment create"),
        "{said}"
    );
    assert!(!said.contains("eyJ") && !said.contains(&e.entra.client_secret()));
    // Nothing was created: the front refuses control-plane requests made with a token, and
    // init made none.
    assert_eq!(e.locked.stats().control_plane_refused, 0);
}
