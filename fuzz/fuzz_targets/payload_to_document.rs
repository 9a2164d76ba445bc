//! Arbitrary bytes as a body, through every parser that turns a body into stored documents:
//! ACR (`parse_event` → `EventDocument::from_acr`), Distribution (`parse_envelope`), Event Grid
//! (`parse_delivery`, content type chosen by the first byte) and the replay file reader
//! (`parse_list_events`, each recorded body then as an ACR event). Every document must obey
//! the id invariants (see `check_document`) and serialise and re-parse; nothing may panic;
//! parsing is deterministic; error messages stay bounded.
#![no_main]

use acr_webhook_core::acr::{parse_event, AcrAction, Action};
use acr_webhook_core::document::{EventDocument, EventSource};
use acr_webhook_core::{distribution, eventgrid, replay};
use acr_webhook_fuzz::{check_document, check_id, check_safe_id, now, MAX_MESSAGE_LEN};
use libfuzzer_sys::fuzz_target;

/// Content types for the Distribution and Event Grid parsers, chosen by the first byte.
const CONTENT_TYPES: [Option<&str>; 10] = [
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/vnd.docker.distribution.events.v1+json"),
    Some("application/vnd.docker.distribution.events.v2+json"),
    Some("application/cloudevents+json; charset=utf-8"),
    Some("application/cloudevents-batch+json"),
    Some("application/json; charset=latin1"),
    Some("text/plain"),
    Some("application/JSON ; Charset=\"UTF-8\""),
];

/// Known findings that a run may skip (comma-separated in `FUZZ_ALLOW_KNOWN`), so that a long
/// run keeps exploring while the lead fixes them; docs/fuzzing.md lists them. Empty by default:
/// every invariant is checked.
fn allowed(name: &str) -> bool {
    static ALLOWED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ALLOWED
        .get_or_init(|| {
            std::env::var("FUZZ_ALLOW_KNOWN")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .iter()
        .any(|a| a == name)
}

fn check_message(what: &str, message: String) {
    if what == "ACR" && allowed("acr-message-len") {
        return;
    }
    assert!(
        message.len() <= MAX_MESSAGE_LEN,
        "{what} error message of {} bytes (messages are bounded and never echo the body): {}…",
        message.len(),
        &message[..message
            .char_indices()
            .nth(120)
            .map_or(message.len(), |(i, _)| i)]
    );
}

/// The ACR path; returns the document id when the body is an event.
fn acr(data: &[u8]) -> Option<String> {
    let first = parse_event(data);
    assert_eq!(first, parse_event(data), "parse_event is not deterministic");
    match first {
        Ok(parsed) => {
            let document = EventDocument::from_acr(&parsed, now());
            check_document(
                &document,
                &parsed.event,
                parsed.action.as_str(),
                EventSource::Acr,
            );
            let again = EventDocument::from_acr(&parse_event(data).unwrap(), now());
            assert_eq!(again.id, document.id, "a second parse gives another id");
            assert_eq!(again, document);
            Some(document.id)
        }
        Err(e) => {
            check_message("ACR", e.to_string());
            None
        }
    }
}

fn distribution(content_type: Option<&str>, data: &[u8]) {
    let first = distribution::parse_envelope(content_type, data);
    assert_eq!(
        first,
        distribution::parse_envelope(content_type, data),
        "parse_envelope is not deterministic"
    );
    match first {
        Ok(events) => {
            assert!(events.len() <= distribution::MAX_EVENTS);
            for event in &events {
                // As receive_distribution builds it. An event no configuration stores (a
                // missing action, or one that is not a short token) still gets a valid id,
                // but its document is never written, so only its id is checked.
                let action = event.action_name();
                assert_eq!(
                    action.is_none(),
                    event.action == distribution::DistributionAction::Other
                );
                let action = action.as_deref().unwrap_or("unknown");
                let acr_event = &event.event;
                let document =
                    EventDocument::from_event(acr_event, action, EventSource::Distribution, now());
                let stored_somewhere = distribution::should_store(event, true);
                if distribution::should_store(event, false) {
                    assert!(stored_somewhere);
                }
                if stored_somewhere {
                    check_document(&document, acr_event, action, EventSource::Distribution);
                } else {
                    assert_eq!(event.action, distribution::DistributionAction::Other);
                    check_id(&document.id);
                }
                if let Some(parsed) = event.to_parsed() {
                    assert!(matches!(
                        parsed.action,
                        Action::Known(AcrAction::Push | AcrAction::Delete)
                    ));
                    let as_acr = EventDocument::from_acr(&parsed, now());
                    assert_eq!(as_acr.id, document.id, "the ACR view changes the id");
                }
            }
        }
        Err(e) => {
            let status = e.status().as_u16();
            assert!(
                matches!(status, 400 | 413 | 415),
                "distribution error status {status}"
            );
            check_message("Distribution", e.to_string());
        }
    }
}

fn event_grid(content_type: Option<&str>, data: &[u8]) {
    let first = eventgrid::parse_delivery(content_type, data);
    assert_eq!(
        first,
        eventgrid::parse_delivery(content_type, data),
        "parse_delivery is not deterministic"
    );
    match first {
        Ok(eventgrid::Delivery::Validation { code, .. }) => {
            let body = eventgrid::validation_response_body(&code);
            let value: serde_json::Value =
                serde_json::from_slice(&body).expect("the validation answer is JSON");
            assert_eq!(value["validationResponse"].as_str(), Some(code.as_str()));
        }
        Ok(eventgrid::Delivery::Events { events, skipped }) => {
            assert!(
                !events.is_empty(),
                "a delivery of nothing but skipped events"
            );
            assert!(events.len() + skipped.len() <= eventgrid::MAX_EVENTS);
            for e in &events {
                match e.event_type {
                    Some(event_type) => assert_eq!(e.parsed.action, event_type.action()),
                    // Another registry type: its action is data.action, a short token.
                    None => assert!(
                        acr_webhook_core::acr::action_token(e.parsed.action.as_str())
                            .is_some_and(|t| t == e.parsed.action.as_str())
                    ),
                }
                let action = e.parsed.action.as_str();
                let document = EventDocument::from_event(
                    &e.parsed.event,
                    action,
                    EventSource::EventGrid,
                    now(),
                );
                check_document(&document, &e.parsed.event, action, EventSource::EventGrid);
                match e.id_source {
                    eventgrid::IdSource::Absent => assert!(e.parsed.event.id.is_none()),
                    _ => assert!(e.parsed.event.id.as_deref().is_some_and(|i| !i.is_empty())),
                }
            }
        }
        Err(e) => {
            let status = e.status().as_u16();
            assert!(
                matches!(status, 400 | 413 | 415),
                "event grid error status {status}"
            );
            check_message("Event Grid", e.to_string());
        }
    }
}

fn replay_file(data: &[u8]) {
    match replay::parse_list_events(data) {
        Ok(deliveries) => {
            for delivery in deliveries.iter().take(64) {
                assert!(!delivery.id.is_empty());
                let _ = delivery.summary();
                if let Some(id) = acr(&delivery.body) {
                    // A recorded delivery whose body is an event keeps its id.
                    let parsed = parse_event(&delivery.body).unwrap();
                    if let Some(sent) = parsed.event.id.as_deref().filter(|i| !i.is_empty()) {
                        assert_eq!(id, check_safe_id(sent));
                    }
                }
            }
        }
        Err(e) => check_message("replay", e.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    acr(data);
    let content_type =
        CONTENT_TYPES[usize::from(data.first().copied().unwrap_or(0)) % CONTENT_TYPES.len()];
    distribution(content_type, data);
    event_grid(content_type, data);
    replay_file(data);
    // safe_id on the raw bytes as an id (lossy UTF-8), beyond what JSON strings reach.
    let _ = check_safe_id(&String::from_utf8_lossy(&data[..data.len().min(4096)]));
});
