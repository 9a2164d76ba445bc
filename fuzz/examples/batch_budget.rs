//! Not a fuzz target: a check written while building the request_parser store. A delivery of
//! many events is stored one create after the other within one request budget, and events
//! stored by an earlier attempt still cost a round trip (409) on the next; so when
//! `events × store latency` exceeds the budget, does a redelivery ever get further?
//!
//! `cargo run --release --manifest-path fuzz/Cargo.toml --example batch_budget -- [EVENTS] [LATENCY_MS]`

use std::time::Duration;

use acr_webhook_core::{handle, log_line};
use acr_webhook_fuzz::{block_on, config, now, MemoryStore};

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(1000, |a| a.parse().unwrap());
    let latency_ms: u64 = args.next().map_or(5, |a| a.parse().unwrap());
    let body = serde_json::json!({
        "events": (0..events).map(|i| serde_json::json!({
            "id": format!("evt-{i:05}"),
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{i:064x}"),
                "repository": "app",
                "tag": format!("v{i}")
            }
        })).collect::<Vec<_>>()
    })
    .to_string()
    .into_bytes();
    println!(
        "{events} events, {} bytes, {latency_ms} ms per store round trip, 4 s budget",
        body.len()
    );
    let store = MemoryStore::new();
    store.latency.set(Duration::from_millis(latency_ms));
    let seeded = store.documents.borrow().len();
    for attempt in 1..=5 {
        store.new_request();
        let head = http::Request::post("/distribution")
            .header(
                "authorization",
                format!("Bearer {}", acr_webhook_fuzz::WEBHOOK_KEY),
            )
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let outcome = block_on(handle(&head, body.clone(), Ok(config()), &store, now()));
        println!(
            "delivery {attempt}: {} | creates sent {}, stored in total {}",
            log_line(&head.method, "/distribution", &outcome),
            store.sent.borrow().len(),
            store.documents.borrow().len() - seeded
        );
    }
}
