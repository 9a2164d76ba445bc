//! The local Cosmos-compatible store (`@vercel/cosmosdb-server`), really started.
//!
//! Needs `npm ci` at the repository root (or `ACR_WEBHOOK_COSMOSDB_SERVER_CLI` pointing at
//! `@vercel/cosmosdb-server/lib/cli.js`).

mod common;

use std::time::{Duration, Instant, SystemTime};

use acr_webhook_testkit::{http, port_is_open, CosmosStore};
use common::{alive, gone_within};
use serde_json::json;

fn cosmos_headers() -> Vec<(String, String)> {
    vec![
        (
            "x-ms-date".into(),
            httpdate::fmt_http_date(SystemTime::now()),
        ),
        (
            "authorization".into(),
            "type%3Dmaster%26ver%3D1.0%26sig%3Dgarbage".into(),
        ),
        ("x-ms-version".into(), "2018-12-31".into()),
        ("content-type".into(), "application/json".into()),
    ]
}

fn send(method: &str, url: &str, body: Option<&[u8]>) -> http::HttpResponse {
    let h = cosmos_headers();
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    http::request(method, url, &h, body).unwrap()
}

#[test]
fn start_create_database_stop_and_restart_on_the_same_port() {
    let t0 = Instant::now();
    let mut store = CosmosStore::start();
    let started_in = t0.elapsed();
    let endpoint = store.endpoint();
    assert_eq!(endpoint, format!("http://127.0.0.1:{}", store.port()));
    assert!(store.is_running());

    let r = send("POST", &format!("{endpoint}/dbs"), Some(br#"{"id":"t"}"#));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json().unwrap()["id"], "t");
    assert_eq!(r.header("connection"), Some("close"));
    let r = send("GET", &format!("{endpoint}/dbs/t"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send("POST", &format!("{endpoint}/dbs"), Some(br#"{"id":"t"}"#));
    assert_eq!(r.status, 409, "a second create conflicts");

    let port = store.port();
    store.stop();
    assert!(!store.is_running());
    assert!(!port_is_open(store.addr()), "stopped: connections refused");
    assert!(http::request("GET", &format!("{endpoint}/"), &[], None).is_err());
    store.stop(); // idempotent

    let t1 = Instant::now();
    store.restart();
    let restarted_in = t1.elapsed();
    assert_eq!(store.port(), port, "same port after restart");
    assert_eq!(store.endpoint(), endpoint);
    let r = send("GET", &format!("{endpoint}/dbs/t"), None);
    assert_eq!(
        r.status,
        404,
        "in memory: empty after restart: {}",
        r.text()
    );
    let r = send("POST", &format!("{endpoint}/dbs"), Some(br#"{"id":"t"}"#));
    assert_eq!(r.status, 201);

    // Restart while running works too.
    store.restart();
    assert_eq!(store.port(), port);
    assert_eq!(send("GET", &format!("{endpoint}/dbs/t"), None).status, 404);

    let log = std::fs::read_to_string(store.log_path()).unwrap();
    assert!(
        log.matches("Ready to accept HTTP connections").count() >= 3,
        "log keeps every run: {log}"
    );
    eprintln!("cosmosdb-server: start {started_in:?}, restart {restarted_in:?}");
}

#[test]
fn helpers_create_containers_and_read_documents() {
    let store = CosmosStore::start();
    store.create_database("registry");
    store.create_container("registry", "events", "/repository");
    let coll = send(
        "GET",
        &format!("{}/dbs/registry/colls/events", store.endpoint()),
        None,
    );
    assert_eq!(coll.json().unwrap()["partitionKey"]["kind"], "Hash");
    assert!(store.list_documents("registry", "events").is_empty());

    let doc = json!({ "id": "team~app~sha256-1", "repository": "team/app", "n": 1 });
    let r = store.request(
        "POST",
        "/dbs/registry/colls/events/docs",
        &[("x-ms-documentdb-partitionkey", r#"["team/app"]"#)],
        Some(&doc),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    let docs = store.list_documents("registry", "events");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["n"], 1);
    let got = store
        .get_document(
            "registry",
            "events",
            "team~app~sha256-1",
            &json!("team/app"),
        )
        .expect("present");
    assert_eq!(got["repository"], "team/app");
    assert!(store
        .get_document("registry", "events", "missing", &json!("team/app"))
        .is_none());
}

#[test]
fn drop_kills_the_server() {
    let store = CosmosStore::start();
    let addr = store.addr();
    let log = store.log_path();
    let pid = find_pid(store.port()).expect("server process");
    assert!(alive(pid));
    drop(store);
    assert!(gone_within(pid, Duration::from_secs(2)));
    assert!(!port_is_open(addr));
    assert!(!log.exists(), "temp dir removed");
}

/// The pid of the `node` process started with `-p PORT`.
fn find_pid(port: u16) -> Option<u32> {
    let needle = format!("-p\0{port}\0");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.contains("cosmosdb-server") && cmdline.contains(&needle)).then_some(pid)
    })
}
