//! Nanoseconds per Cosmos DB master-key token, natively (divan).
//!
//! `cargo bench --profile host -p acr-webhook-core --bench signing` (the `host` profile is
//! opt-level 3; the component itself is built with opt-level z). `make bench` runs it and
//! puts its medians in the benchmark table.
//!
//! - `authorization`: the whole `Authorization` header value for a document create
//!   (string to sign, HMAC-SHA256 under the decoded key, base64, URL-encoding): the goal's
//!   figure;
//! - `signature`: the same without the URL-encoding;
//! - `create_document_request`: the whole signed create request (URL, headers, body moved);
//! - `x_ms_date`: the RFC 1123 date every request signs;
//! - `hmac_keyed_per_token`: the signature as it was built before `MasterKey` kept a keyed
//!   HMAC (the key schedule computed for every token), for comparison with `signature_only`
//!   (same output, checked below);
//! - `document_body_one_pass`: the create body and partition key as `store::write_document`
//!   builds them (`serde_json::to_vec`, the key read from the document's field), for the ACR
//!   push fixture; `document_body_two_passes`: the way it was built before (document →
//!   `serde_json::Value` → string, the partition key read from the `Value`).

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use acr_webhook_core::acr::parse_event;
use acr_webhook_core::cosmos::Container;
use acr_webhook_core::cosmos::{authorization, signature, x_ms_date, MasterKey, SigningScope};
use acr_webhook_core::document::EventDocument;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The Cosmos emulator's well-known public key.
const KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
const DATE: &str = "Tue, 25 Nov 2026 15:40:00 GMT";

fn scope() -> SigningScope<'static> {
    SigningScope {
        verb: "POST",
        resource_type: "docs",
        resource_link: "dbs/acr/colls/events",
        date: DATE,
    }
}

fn store() -> Container {
    acr_webhook_core::config::container_from_lookup(|name| match name {
        "cosmos_endpoint" => Some("https://myaccount.documents.azure.com:443".into()),
        "cosmos_key" => Some(KEY.into()),
        _ => None,
    })
    .expect("a valid configuration")
}

fn main() {
    // The variant keyed per token must sign exactly as the crate does.
    let key = MasterKey::from_base64(KEY).unwrap();
    assert_eq!(
        signature_keyed_per_token(&BASE64.decode(KEY).unwrap(), &scope()),
        signature(&key, &scope())
    );
    // Both ways of building the body give the same document and partition key.
    let store = store();
    let document = push_document();
    let (one_body, one_key) = body_one_pass(&store, &document);
    let (two_body, two_key) = body_two_passes(&store, &document);
    assert_eq!(one_key, two_key);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&one_body).unwrap(),
        serde_json::from_slice::<serde_json::Value>(&two_body).unwrap()
    );
    divan::main();
}

#[divan::bench]
fn authorization_header(bencher: divan::Bencher) {
    let key = MasterKey::from_base64(KEY).unwrap();
    let scope = scope();
    bencher.bench_local(|| authorization(black_box(&key), black_box(&scope)));
}

#[divan::bench]
fn signature_only(bencher: divan::Bencher) {
    let key = MasterKey::from_base64(KEY).unwrap();
    let scope = scope();
    bencher.bench_local(|| signature(black_box(&key), black_box(&scope)));
}

#[divan::bench]
fn create_document_request(bencher: divan::Bencher) {
    let store = store();
    let body = include_bytes!("../../../tests/fixtures/acr/push.json").to_vec();
    bencher.bench_local(|| {
        store.create_document_request(
            black_box(body.clone()),
            black_box(r#"["cb8c3971-9adc-488b-bdd8-43cbb4974ff5"]"#),
            black_box(DATE),
        )
    });
}

#[divan::bench]
fn date_header(bencher: divan::Bencher) {
    let now = UNIX_EPOCH + Duration::from_secs(1_795_624_800);
    bencher.bench_local(|| x_ms_date(black_box(now)));
}

fn signature_keyed_per_token(decoded_key: &[u8], scope: &SigningScope<'_>) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(decoded_key).unwrap();
    mac.update(scope.string_to_sign().as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

#[divan::bench]
fn hmac_keyed_per_token(bencher: divan::Bencher) {
    let decoded = BASE64.decode(KEY).unwrap();
    let scope = scope();
    bencher.bench_local(|| signature_keyed_per_token(black_box(&decoded), black_box(&scope)));
}

fn push_document() -> EventDocument {
    let parsed = parse_event(include_bytes!("../../../tests/fixtures/acr/push.json")).unwrap();
    EventDocument::from_acr(&parsed, UNIX_EPOCH + Duration::from_secs(1_795_624_800))
}

/// What `store::write_document` does before sending.
fn body_one_pass(store: &Container, document: &EventDocument) -> (Vec<u8>, String) {
    acr_webhook_core::store::create_body(document, &store.partition_key_path)
}

/// What it did before.
fn body_two_passes(store: &Container, document: &EventDocument) -> (Vec<u8>, String) {
    let value = serde_json::to_value(document).unwrap();
    let partition_key = store.partition_key_path.header_for(&value);
    (value.to_string().into_bytes(), partition_key)
}

#[divan::bench]
fn document_body_two_passes(bencher: divan::Bencher) {
    let store = store();
    let document = push_document();
    bencher.bench_local(|| body_two_passes(black_box(&store), black_box(&document)));
}

#[divan::bench]
fn document_body_one_pass(bencher: divan::Bencher) {
    let store = store();
    let document = push_document();
    bencher.bench_local(|| body_one_pass(black_box(&store), black_box(&document)));
}
