//! The locked store (a Cosmos DB account with local authentication disabled) in front of the
//! real local store, with tokens from the fake Entra.
//!
//! Needs `npm ci` at the repository root (or `ACR_WEBHOOK_COSMOSDB_SERVER_CLI`).

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use acr_webhook_testkit::http::{self, HttpResponse};
use acr_webhook_testkit::{
    CosmosStore, DataRole, FakeEntra, LockedStore, Outcome, Rejection, COSMOS_AUDIENCE,
    ITEMS_CREATE, READ_METADATA,
};
use common::entra_client::{
    aad_authorization, access_token, encode, imds, read_answer, with_assertion, with_secret,
};
use serde_json::json;

const COSMOS_SCOPE: &str = "https://cosmos.azure.com/.default";
const DOCS: &str = "/dbs/registry/colls/events/docs";

/// A Cosmos DB REST request to `path` with `authorization` (if any), a current `x-ms-date`.
fn cosmos(
    locked: &LockedStore,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> HttpResponse {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let mut headers = vec![
        ("x-ms-date", date.as_str()),
        ("x-ms-version", "2018-12-31"),
        ("content-type", "application/json"),
    ];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    headers.extend_from_slice(extra);
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    http::request(
        method,
        &format!("{}{path}", locked.endpoint()),
        &headers,
        body.as_deref(),
    )
    .unwrap()
}

fn create_doc(locked: &LockedStore, auth: &str, id: &str) -> HttpResponse {
    cosmos(
        locked,
        "POST",
        DOCS,
        Some(auth),
        &[("x-ms-documentdb-partitionkey", r#"["team/app"]"#)],
        Some(&json!({ "id": id, "repository": "team/app" })),
    )
}

fn store_with_container() -> CosmosStore {
    let store = CosmosStore::start();
    store.create_database("registry");
    store.create_container("registry", "events", "/repository");
    store
}

/// The `code` and `message` of a Cosmos error answer, and its substatus.
fn refusal(r: &HttpResponse) -> (u16, String, String, Option<u32>) {
    let body = r.json().unwrap_or_else(|| panic!("json: {}", r.text()));
    (
        r.status,
        body["code"].as_str().unwrap_or_default().to_string(),
        body["message"].as_str().unwrap_or_default().to_string(),
        r.header("x-ms-substatus").and_then(|s| s.parse().ok()),
    )
}

#[test]
fn tokens_from_each_protocol_reach_the_store() {
    let store = store_with_container();
    let entra = FakeEntra::start();
    let locked = LockedStore::start(store.addr(), entra.validator());
    let file = entra.federated_token_file();
    let tokens = [
        access_token(&imds(&entra, COSMOS_AUDIENCE, None)),
        access_token(&with_secret(&entra, &entra.client_secret(), COSMOS_SCOPE)),
        access_token(&with_assertion(&entra, &file.token(), COSMOS_SCOPE)),
        // The account's own audience is accepted too.
        access_token(&imds(&entra, "https://testkit.documents.azure.com", None)),
    ];
    for (i, token) in tokens.iter().enumerate() {
        let auth = aad_authorization(token);
        let r = cosmos(
            &locked,
            "GET",
            "/dbs/registry/colls/events",
            Some(&auth),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "token {i}: {}", r.text());
        assert_eq!(r.json().unwrap()["id"], "events");
        let r = create_doc(&locked, &auth, &format!("doc-{i}"));
        assert_eq!(r.status, 201, "token {i}: {}", r.text());
    }
    assert_eq!(store.list_documents("registry", "events").len(), 4);
    // Reads of databases and the account are data-plane metadata reads.
    let auth = aad_authorization(&tokens[0]);
    assert_eq!(
        cosmos(&locked, "GET", "/dbs/registry", Some(&auth), &[], None).status,
        200
    );
    assert_eq!(
        cosmos(&locked, "GET", "/", Some(&auth), &[], None).status,
        200
    );

    let stats = locked.stats();
    assert_eq!(stats.requests, 10);
    assert_eq!(stats.forwarded, 10);
    let seen = locked.requests();
    assert_eq!(
        seen[0].principal.as_deref(),
        Some(entra.system_identity().object_id.as_str())
    );
    assert_eq!(
        seen[2].principal.as_deref(),
        Some(entra.app().object_id.as_str())
    );
    assert_eq!(seen[1].outcome, Outcome::Forwarded { status: 201 });
    assert_eq!(seen[1].substatus, None);
    assert!(seen.iter().all(|r| r.authorization_encoded));
}

#[test]
fn master_keys_and_bad_headers_are_refused() {
    let store = store_with_container();
    let entra = FakeEntra::start();
    let locked = LockedStore::start(store.addr(), entra.validator());

    let master = "type%3Dmaster%26ver%3D1.0%26sig%3DaGVsbG8%3D";
    let r = create_doc(&locked, master, "with-key");
    let (status, code, message, substatus) = refusal(&r);
    assert_eq!(
        (status, code.as_str(), substatus),
        (401, "Unauthorized", Some(5202))
    );
    let (text, activity) = message
        .split_once("\r\nActivityId: ")
        .unwrap_or_else(|| panic!("{message:?}"));
    assert_eq!(
        text,
        "Local Authorization is disabled. Use an AAD token to authorize all requests."
    );
    assert!(
        activity.ends_with(", Microsoft.Azure.Documents.Common/2.14.0"),
        "{activity}"
    );
    assert_eq!(r.header("x-ms-activity-id"), activity.split(',').next());
    // Unencoded, and a resource token: local authorization too.
    let r = create_doc(
        &locked,
        "type=resource&ver=1.0&sig=abc",
        "with-resource-token",
    );
    assert_eq!(refusal(&r).3, Some(5202));

    let r = cosmos(&locked, "GET", "/dbs/registry", None, &[], None);
    assert_eq!((r.status, refusal(&r).3), (401, Some(5000)));
    let r = cosmos(
        &locked,
        "GET",
        "/dbs/registry",
        Some("Bearer x.y.z"),
        &[],
        None,
    );
    assert_eq!((r.status, refusal(&r).3), (401, Some(5001)));

    assert!(
        store.list_documents("registry", "events").is_empty(),
        "nothing reached the store"
    );
    let stats = locked.stats();
    assert_eq!(stats.local_auth_refused, 2);
    assert_eq!(stats.bad_authorization, 2);
    assert_eq!(stats.forwarded, 0);
    assert_eq!(locked.requests()[0].outcome, Outcome::LocalAuthDisabled);
}

#[test]
fn invalid_expired_revoked_and_wrong_audience_tokens_are_refused() {
    let store = store_with_container();
    let entra = FakeEntra::start();
    let locked = LockedStore::start(store.addr(), entra.validator());
    let app = entra.app();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);

    let expired = entra.issue_token(&app, COSMOS_AUDIENCE, now - 2 * hour, hour);
    let future = entra.issue_token(&app, COSMOS_AUDIENCE, now + hour, hour);
    let slash = access_token(&imds(&entra, "https://cosmos.azure.com/", None));
    let other_account = entra.issue_token(&app, "https://other.documents.azure.com", now, hour);
    let foreign = access_token(&imds(&FakeEntra::start(), COSMOS_AUDIENCE, None));
    let revoked = access_token(&imds(&entra, COSMOS_AUDIENCE, None));
    assert!(entra.revoke(&revoked));

    let cases: [(&str, &str, u32); 7] = [
        (&expired, "expired", 5006),
        (&future, "not yet valid", 5005),
        (&slash, "trailing slash", 5008),
        (&other_account, "other account", 5008),
        (&foreign, "another tenant's key", 5004),
        ("not-a-jwt", "garbage", 5003),
        (&revoked, "revoked", 5200),
    ];
    for (token, what, want) in cases {
        let r = create_doc(&locked, &aad_authorization(token), what);
        let (status, code, message, substatus) = refusal(&r);
        assert_eq!(
            (status, code.as_str()),
            (401, "Unauthorized"),
            "{what}: {message}"
        );
        assert_eq!(substatus, Some(want), "{what}: {message}");
        assert!(
            message.starts_with("Request blocked by Auth testkit : "),
            "{what}: {message}"
        );
    }
    let message = refusal(&create_doc(&locked, &aad_authorization(&expired), "x")).2;
    assert!(
        message.contains("Provided AAD token has been expired since [")
            && message.contains("(UTC)]. Current server time is [")
            && message.contains("Please refresh the AAD token."),
        "{message}"
    );
    let message = refusal(&create_doc(&locked, &aad_authorization(&slash), "x")).2;
    assert!(
        message.contains(
            "Provided AAD token is intended for [https://cosmos.azure.com/]. This database \
             account accepts tokens intended for [https://testkit.documents.azure.com, \
             https://testkit.sql.cosmos.azure.com, https://testkit.sqlx.cosmos.azure.com, \
             https://cosmos.azure.com]."
        ),
        "{message}"
    );
    assert!(store.list_documents("registry", "events").is_empty());
    assert_eq!(locked.stats().token_refused, 9);
    assert_eq!(locked.stats().forwarded, 0);
    assert!(matches!(
        locked.requests()[0].outcome,
        Outcome::TokenRejected(Rejection::Expired { .. })
    ));

    // revoke_all: a token valid a moment ago is refused; a new one is served.
    let good = aad_authorization(&access_token(&imds(&entra, COSMOS_AUDIENCE, None)));
    assert_eq!(create_doc(&locked, &good, "before").status, 201);
    entra.revoke_all();
    assert_eq!(refusal(&create_doc(&locked, &good, "after")).3, Some(5200));
    let fresh = aad_authorization(&access_token(&imds(&entra, COSMOS_AUDIENCE, None)));
    assert_eq!(create_doc(&locked, &fresh, "after").status, 201);
}

#[test]
fn control_plane_operations_are_refused_with_a_valid_token() {
    let store = store_with_container();
    let entra = FakeEntra::start();
    let locked = LockedStore::start(store.addr(), entra.validator());
    let auth = aad_authorization(&access_token(&imds(&entra, COSMOS_AUDIENCE, None)));
    let cases: [(&str, &str, serde_json::Value); 4] = [
        ("POST", "/dbs", json!({ "id": "new" })),
        (
            "POST",
            "/dbs/registry/colls",
            json!({ "id": "c", "partitionKey": { "paths": ["/a"], "kind": "Hash" } }),
        ),
        (
            "PUT",
            "/dbs/registry/colls/events",
            json!({ "id": "events" }),
        ),
        ("DELETE", "/dbs/registry", json!({})),
    ];
    for (method, path, body) in cases {
        let r = cosmos(&locked, method, path, Some(&auth), &[], Some(&body));
        let (status, code, message, substatus) = refusal(&r);
        assert_eq!(
            (status, code.as_str(), substatus),
            (403, "Forbidden", Some(5300)),
            "{message}"
        );
        assert_eq!(
            message.split("\r\n").next().unwrap(),
            format!(
                "Request blocked by Auth testkit : The given request [{method} {path}] cannot be \
                 authorized by AAD token in data plane. Learn more: \
                 https://aka.ms/cosmos-native-rbac."
            )
        );
    }
    assert_eq!(locked.stats().control_plane_refused, 4);
    assert_eq!(locked.stats().forwarded, 0);
    // The store still has the database and container (nothing was forwarded).
    assert_eq!(
        store
            .request("GET", "/dbs/registry/colls/events", &[], None)
            .status,
        200
    );
    assert_eq!(store.request("GET", "/dbs/new", &[], None).status, 404);
    // A query listing databases is a read, not a create.
    let r = cosmos(
        &locked,
        "POST",
        "/dbs",
        Some(&auth),
        &[
            ("content-type", "application/query+json"),
            ("x-ms-documentdb-isquery", "true"),
        ],
        Some(&json!({ "query": "SELECT * FROM root", "parameters": [] })),
    );
    assert_ne!(r.status, 403, "{}", r.text());
}

#[test]
fn principals_without_the_data_role_are_refused() {
    let store = store_with_container();
    let entra = FakeEntra::start();
    let locked = LockedStore::start(store.addr(), entra.validator());
    let user = entra.user_identity();
    let auth = aad_authorization(&access_token(&imds(
        &entra,
        COSMOS_AUDIENCE,
        Some(&user.client_id),
    )));
    let container = "/dbs/registry/colls/events";

    // A reader reads but does not create.
    locked.set_role(&user.object_id, Some(DataRole::Reader));
    assert_eq!(
        cosmos(&locked, "GET", container, Some(&auth), &[], None).status,
        200
    );
    let r = create_doc(&locked, &auth, "by-reader");
    let (status, _, message, substatus) = refusal(&r);
    assert_eq!((status, substatus), (403, Some(5302)));
    assert!(
        message.starts_with(&format!(
            "Request blocked by Auth testkit : Request is blocked because principal [{}] does \
             not have required RBAC permissions to perform action [{ITEMS_CREATE}] on resource \
             [dbs/registry/colls/events]. Learn more: https://aka.ms/cosmos-native-rbac.",
            user.object_id
        )),
        "{message}"
    );

    // No role: even metadata reads are refused, naming readMetadata on [/].
    locked.set_role(&user.object_id, None);
    let r = cosmos(&locked, "GET", container, Some(&auth), &[], None);
    let (status, _, message, substatus) = refusal(&r);
    assert_eq!((status, substatus), (403, Some(5301)));
    assert!(
        message.contains(&format!("perform action [{READ_METADATA}] on resource [/]")),
        "{message}"
    );

    // Only assigned principals: the app without an assignment is refused, the contributor not.
    locked.set_default_role(None);
    let app_auth = aad_authorization(&access_token(&with_secret(
        &entra,
        &entra.client_secret(),
        COSMOS_SCOPE,
    )));
    assert_eq!(
        refusal(&create_doc(&locked, &app_auth, "by-app")).3,
        Some(5302)
    );
    locked.set_role(&entra.app().object_id, Some(DataRole::Contributor));
    assert_eq!(create_doc(&locked, &app_auth, "by-app").status, 201);

    let stats = locked.stats();
    assert_eq!(stats.role_refused, 3);
    assert_eq!(stats.forwarded, 2);
    assert_eq!(
        locked.requests()[1].outcome,
        Outcome::MissingRole {
            action: ITEMS_CREATE.to_string()
        }
    );
    assert_eq!(store.list_documents("registry", "events").len(), 1);
}

#[test]
fn keep_alive_pipelining_and_a_store_that_is_down() {
    let mut store = store_with_container();
    let entra = FakeEntra::start();
    let locked = LockedStore::start(store.addr(), entra.validator());
    let auth = aad_authorization(&access_token(&imds(&entra, COSMOS_AUDIENCE, None)));
    let date = httpdate::fmt_http_date(SystemTime::now());
    let head = |method: &str, path: &str, extra: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nauthorization: {auth}\r\nx-ms-date: {date}\r\n\
             x-ms-version: 2018-12-31\r\ncontent-type: application/json\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let doc = r#"{"id":"piped","repository":"team/app"}"#;
    let batch = [
        head("GET", "/dbs/registry/colls/events", "", ""),
        head(
            "POST",
            DOCS,
            "x-ms-documentdb-partitionkey: [\"team/app\"]\r\n",
            doc,
        ),
        head("POST", "/dbs", "", r#"{"id":"x"}"#),
        head(
            "GET",
            &format!("{DOCS}/{}", encode("piped")),
            "x-ms-documentdb-partitionkey: [\"team/app\"]\r\n",
            "",
        ),
    ]
    .concat();
    let stream = TcpStream::connect(locked.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .try_clone()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    let mut r = BufReader::new(stream);
    let answers: Vec<_> = (0..4).map(|_| read_answer(&mut r)).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(
        statuses,
        [200, 201, 403, 200],
        "in order, on one connection"
    );
    let substatus = |a: &(u16, Vec<(String, String)>, Vec<u8>)| {
        a.1.iter()
            .find(|(k, _)| k == "x-ms-substatus")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(substatus(&answers[2]).as_deref(), Some("5300"));
    let read: serde_json::Value = serde_json::from_slice(&answers[3].2).unwrap();
    assert_eq!(read["id"], "piped");
    assert_eq!(locked.connections(), 1);

    // The store down: 503 from the front, counted.
    store.stop();
    let r = cosmos(&locked, "GET", "/dbs/registry", Some(&auth), &[], None);
    assert_eq!(r.status, 503);
    assert_eq!(locked.stats().upstream_errors, 1);
    assert_eq!(locked.stats().forwarded, 3);
}
