//! The request flow, host-independent: route → key → configuration → body → events → store.
//!
//! The host supplies outbound HTTP, a monotonic clock and sleep ([`Host`]), the body
//! ([`RequestBody`]), the configuration ([`ConfigSource`]) and the wall-clock time; nothing
//! here performs I/O of its own, so the whole flow runs in plain `cargo test` with a virtual
//! clock.

use std::time::SystemTime;

use http::{header, request::Parts, Method};

use crate::acr::{parse_event, AcrAction, Action};
use crate::answer::{BatchOutcome, Failure, KeyKind, Success};
use crate::auth::{has_code_parameter, is_authorized};
use crate::config::{Config, ConfigSource};
use crate::document::{EventDocument, EventSource};
use crate::filter::FilterDecision;
use crate::host::{BodyError, Host, RequestBody};
use crate::retry::RetryBudget;
use crate::signer::SigningHost;
use crate::store::{
    candidates, check_store, standing, stored_keys, write_candidates, write_document, Standing,
};
use crate::{distribution, event_reads, eventgrid, read_api, summary, ui};

/// The largest body accepted (1 MiB); larger ones are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Route: one ACR webhook event per POST.
pub const ACR_ROUTE: &str = "/acr";
/// Route: CNCF Distribution notifications (`{"events": [...]}`).
pub const DISTRIBUTION_ROUTE: &str = "/distribution";
/// Route: Azure Event Grid deliveries (Event Grid schema or CloudEvents 1.0).
pub const EVENTGRID_ROUTE: &str = "/eventgrid";
/// Route: health check, answers without touching the store.
pub const HEALTH_ROUTE: &str = "/healthz";

/// The route a request path belongs to, as a template: one of `/acr`, `/distribution`,
/// `/eventgrid`, `/healthz`, `/events`, `/events/summary`, `/events/{id}`, `/` (the page and
/// its files) or `other`; never the path itself, so that a host can count requests per route
/// without one label value per event id. Follows [`handle`]'s own dispatch.
pub fn route_template(path: &str) -> &'static str {
    match path {
        ACR_ROUTE => ACR_ROUTE,
        DISTRIBUTION_ROUTE => DISTRIBUTION_ROUTE,
        EVENTGRID_ROUTE => EVENTGRID_ROUTE,
        HEALTH_ROUTE => HEALTH_ROUTE,
        read_api::EVENTS_ROUTE => read_api::EVENTS_ROUTE,
        summary::SUMMARY_ROUTE => summary::SUMMARY_ROUTE,
        _ if path.starts_with(read_api::EVENT_ROUTE_PREFIX) => "/events/{id}",
        _ if ui::asset(path).is_some() => "/",
        _ => "other",
    }
}

/// Handles one request from start to end.
///
/// `config` is asked for the keys first and for the whole configuration only once the
/// request's key is valid. `now` is the wall-clock time (for `receivedAt` and `x-ms-date`);
/// durations come from the host's monotonic clock.
pub async fn handle<B, H>(
    head: &Parts,
    body: B,
    config: impl ConfigSource,
    host: &H,
    now: SystemTime,
) -> Result<Success, Failure>
where
    B: RequestBody,
    H: Host,
{
    let path = head.uri.path();
    let method = &head.method;
    match path {
        HEALTH_ROUTE => match *method {
            Method::GET | Method::HEAD => Ok(Success::Healthy),
            _ => Err(Failure::MethodNotAllowed { allow: "GET, HEAD" }),
        },
        ACR_ROUTE | DISTRIBUTION_ROUTE | EVENTGRID_ROUTE => {
            if path == EVENTGRID_ROUTE && *method == Method::OPTIONS {
                return allow_delivery(head);
            }
            if *method != Method::POST {
                return Err(Failure::MethodNotAllowed {
                    allow: if path == EVENTGRID_ROUTE {
                        eventgrid::ALLOW_METHODS
                    } else {
                        "POST"
                    },
                });
            }
            let keys = config.webhook_keys()?;
            if !is_authorized(&head.headers, head.uri.query(), &keys) {
                return Err(Failure::Unauthorized(KeyKind::Webhook));
            }
            let config = config.config()?;
            let body = read_body(head, body, &config).await?;
            let host = &SigningHost::new(&config, host, now).await?;
            let content_type = head
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let delivery = match path {
                ACR_ROUTE => return receive_acr_event(&config, host, &body, now).await,
                DISTRIBUTION_ROUTE => {
                    distribution_delivery(config.keep_pulls_and_blobs, content_type, &body, now)?
                }
                _ => event_grid_delivery(content_type, &body, now)?,
            };
            match delivery {
                Delivery::Answer(answer) => Ok(answer),
                Delivery::Documents(documents, batch) => {
                    store_batch(&config, host, documents, batch, now).await
                }
            }
        }
        _ if path == read_api::EVENTS_ROUTE || path.starts_with(read_api::EVENT_ROUTE_PREFIX) => {
            if !matches!(*method, Method::GET | Method::HEAD) {
                return Err(Failure::MethodNotAllowed { allow: "GET, HEAD" });
            }
            let Some(keys) = config.read_keys()? else {
                return Err(Failure::ReadsDisabled);
            };
            // Read keys travel in headers only: a URL is kept in browser and shell history and
            // in proxy logs. `?code=` is refused here even beside a valid header.
            if has_code_parameter(head.uri.query()) {
                return Err(Failure::ReadKeyInUrl);
            }
            if !is_authorized(&head.headers, None, &keys) {
                return Err(Failure::Unauthorized(KeyKind::Read));
            }
            let config = config.config()?;
            let host = &SigningHost::new(&config, host, now).await?;
            let query = head.uri.query().unwrap_or("");
            if path == summary::SUMMARY_ROUTE {
                return summary::summarize(&config, host, query, now).await;
            }
            match path.strip_prefix(read_api::EVENT_ROUTE_PREFIX) {
                Some(segment) => event_reads::read_one_event(&config, host, segment, now).await,
                None => event_reads::list_events(&config, host, query, now).await,
            }
        }
        _ => match ui::asset(path) {
            Some(asset) => ui::serve(head, asset)
                .map(Success::UiFile)
                .map_err(Failure::from),
            None => Err(Failure::NotFound),
        },
    }
}

/// Reads the body of an admitted request within [`MAX_BODY_BYTES`] and half the budget.
async fn read_body<B: RequestBody>(
    head: &Parts,
    body: B,
    config: &Config,
) -> Result<Vec<u8>, Failure> {
    let too_large = Failure::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    let budget = RetryBudget {
        total: config.write_budget,
    };
    body.read_to_end(MAX_BODY_BYTES, budget.body_timeout())
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => too_large,
            BodyError::TimedOut => Failure::BodyTimeout,
            BodyError::Io(reason) => Failure::BodyUnreadable(reason),
        })
}

/// One ACR webhook event: stored (or, for `ping`, the store checked).
pub async fn receive_acr_event<H: Host>(
    config: &Config,
    host: &H,
    body: &[u8],
    now: SystemTime,
) -> Result<Success, Failure> {
    let parsed = parse_event(body)?;
    if parsed.action == AcrAction::Ping {
        return check_store(config, host, now).await;
    }
    let document = EventDocument::from_acr(&parsed, now);
    if let FilterDecision::Skip { reason } = decide(config, &document) {
        return Ok(Success::Filtered { reason });
    }
    let unknown_action = match parsed.action {
        Action::Other(action) => Some(action),
        Action::Known(_) => None,
    };
    let written = write_document(config, host, &document, now).await?;
    Ok(if written.created {
        Success::Stored {
            id: written.id,
            unknown_action,
            conflicts_with: written.conflicts_with,
        }
    } else {
        Success::AlreadyStored {
            id: written.id,
            conflicts_with: written.conflicts_with,
        }
    })
}

/// The log's warning on an event whose id a different event holds.
fn conflict_note(id: &str, conflicts_with: &str) -> String {
    format!(
        "warning: id {conflicts_with} holds a different event: this one is stored beside it as {id}"
    )
}

/// The log's note on an event stored with an action this receiver does not know.
fn unknown_action_note(action: &str) -> String {
    format!("action `{action}` is not one this receiver knows: stored as sent")
}

fn decide(config: &Config, document: &EventDocument) -> FilterDecision {
    config
        .filter
        .decide(document.image.as_deref(), document.tag.as_deref())
}

/// What a batch delivery (Distribution, Event Grid) asks for: an answer without storing
/// anything (Event Grid's validation handshake), or documents to store.
enum Delivery {
    Answer(Success),
    Documents(Vec<EventDocument>, BatchOutcome),
}

/// A Distribution envelope's documents: every event to keep (pulls, mounts and blobs only
/// with `keep_pulls_and_blobs`); the others are counted as skipped.
fn distribution_delivery(
    keep_pulls_and_blobs: bool,
    content_type: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<Delivery, Failure> {
    let events = distribution::parse_envelope(content_type, body)?;
    let mut batch = BatchOutcome::default();
    let mut documents = Vec::new();
    for event in &events {
        if !distribution::should_store(event, keep_pulls_and_blobs) {
            batch.skipped += 1;
            continue;
        }
        let Some(action) = event.action_name() else {
            batch.skipped += 1;
            continue;
        };
        if event.action == distribution::DistributionAction::Unknown {
            batch.notes.push(unknown_action_note(&action));
        }
        documents.push(EventDocument::from_event(
            &event.event,
            &action,
            EventSource::Distribution,
            now,
        ));
    }
    Ok(Delivery::Documents(documents, batch))
}

/// An Event Grid delivery: the validation handshake's answer, or the ACR events' documents.
fn event_grid_delivery(
    content_type: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<Delivery, Failure> {
    Ok(match eventgrid::parse_delivery(content_type, body)? {
        eventgrid::Delivery::Validation { code, .. } => {
            Delivery::Answer(Success::ValidationAccepted { code })
        }
        eventgrid::Delivery::Events { events, skipped } => {
            let mut batch = BatchOutcome {
                skipped: skipped.len(),
                ..BatchOutcome::default()
            };
            let documents = events
                .iter()
                .map(|e| {
                    if let Action::Other(action) = &e.parsed.action {
                        batch.notes.push(unknown_action_note(action));
                    }
                    EventDocument::from_event(
                        &e.parsed.event,
                        e.parsed.action.as_str(),
                        EventSource::EventGrid,
                        now,
                    )
                })
                .collect();
            Delivery::Documents(documents, batch)
        }
    })
}

/// Stores documents one after the other; the first failure fails the delivery (the sender
/// sends it again, and what was stored answers 409 then), except an event whose every
/// candidate id holds another event ([`Failure::ConflictIdsTaken`]): sending it again cannot
/// store it, so it is refused on its own (listed in the answer and the log line) and the
/// others are stored.
async fn store_batch<H: Host>(
    config: &Config,
    host: &H,
    documents: Vec<EventDocument>,
    mut batch: BatchOutcome,
    now: SystemTime,
) -> Result<Success, Failure> {
    let total = documents.len();
    let path = &config.store.partition_key_path;
    let known = if total > 1 {
        stored_keys(config, host, &documents, now).await
    } else {
        Default::default()
    };
    for (done, document) in documents.iter().enumerate() {
        if let FilterDecision::Skip { reason } = decide(config, document) {
            batch.filtered.push(reason);
            continue;
        }
        // Stored with the same content (or before hashes were stored): a redelivery. When its
        // own id holds another event, the write starts at the first of its other candidates
        // not known to hold another event too.
        let (chain, start) = match standing(&known, path, std::slice::from_ref(document)) {
            Standing::Stored(_) => {
                batch.already_stored.push(document.id.clone());
                continue;
            }
            Standing::WriteFrom(_) => (None, 0),
            Standing::Taken => {
                let chain = candidates(config, document);
                match standing(&known, path, &chain) {
                    Standing::Stored(i) => {
                        batch.already_stored.push(chain[i].id.clone());
                        continue;
                    }
                    Standing::WriteFrom(i) => (Some(chain), i),
                    Standing::Taken => {
                        let last = chain.len() - 1;
                        (Some(chain), last)
                    }
                }
            }
        };
        let outcome = match &chain {
            Some(chain) => write_candidates(config, host, chain, start, now).await,
            None => write_document(config, host, document, now).await,
        };
        let written = match outcome {
            Ok(written) => written,
            Err(failure @ Failure::ConflictIdsTaken { .. }) => {
                batch.refused.push((document.id.clone(), failure));
                continue;
            }
            // Say how far the delivery got: a batch too large for the budget is answered
            // 503 again on every redelivery, so the sender must batch less.
            Err(Failure::StoreUnavailable {
                reason,
                retry_after,
            }) if done > 0 => {
                return Err(Failure::StoreUnavailable {
                    reason: format!(
                        "{reason} (after {done} of {total} events of this delivery; \
                         if this repeats, send smaller batches)"
                    ),
                    retry_after,
                })
            }
            Err(other) => return Err(other),
        };
        if let (true, Some(taken)) = (written.created, &written.conflicts_with) {
            batch.notes.push(conflict_note(&written.id, taken));
        }
        if written.created {
            batch.stored.push(written.id);
        } else {
            batch.already_stored.push(written.id);
        }
    }
    Ok(Success::Batch(batch))
}

/// The CloudEvents abuse-protection handshake (no key: it grants nothing and writes nothing).
fn allow_delivery(head: &Parts) -> Result<Success, Failure> {
    let origin = head
        .headers
        .get(eventgrid::WEBHOOK_REQUEST_ORIGIN)
        .and_then(|v| v.to_str().ok());
    eventgrid::abuse_protection_answer(origin)
        .map(|headers| Success::DeliveryAllowed {
            headers: headers.into(),
        })
        .ok_or(Failure::InvalidHandshake)
}

/// The one log line for a request: method, path (never the query string), status, and what
/// happened (the error code and message for failures).
pub fn log_line(method: &Method, path: &str, outcome: &Result<Success, Failure>) -> String {
    let status = crate::answer::status(outcome).as_u16();
    let what = match outcome {
        Ok(Success::Stored {
            id,
            unknown_action,
            conflicts_with,
        }) => {
            let mut line = format!("stored {id}");
            if let Some(action) = unknown_action {
                line.push_str("; ");
                line.push_str(&unknown_action_note(action));
            }
            if let Some(taken) = conflicts_with {
                line.push_str("; ");
                line.push_str(&conflict_note(id, taken));
            }
            line
        }
        Ok(Success::AlreadyStored { id, conflicts_with }) => match conflicts_with {
            Some(taken) => format!(
                "already stored {id} (beside {taken}, which holds a different event with the same id)"
            ),
            None => format!("already stored {id}"),
        },
        Ok(Success::Pong) => "ping ok".into(),
        Ok(Success::PongWithWarning(warning)) => format!("ping ok, with a warning: {warning}"),
        Ok(Success::Healthy) => "healthy".into(),
        Ok(Success::Filtered { reason }) => format!("filtered out: {reason}"),
        Ok(Success::Batch(b)) => format!(
            "stored {}, already stored {}, skipped {}, filtered {}{}{}",
            b.stored.len(),
            b.already_stored.len(),
            b.skipped,
            b.filtered.len(),
            b.refused
                .iter()
                .map(|(id, f)| format!(
                    "; error: event {} refused, not stored: {}: {f}",
                    crate::text::printable(id),
                    f.code()
                ))
                .collect::<String>(),
            b.filtered
                .iter()
                .chain(&b.notes)
                .map(|r| format!("; {r}"))
                .collect::<String>()
        ),
        Ok(Success::ValidationAccepted { .. }) => "event grid subscription validated".into(),
        Ok(Success::DeliveryAllowed { .. }) => "cloudevents delivery allowed".into(),
        Ok(Success::Json(body)) => format!("{} bytes", body.len()),
        Ok(Success::UiFile(file)) if file.not_modified => "not modified".into(),
        Ok(Success::UiFile(file)) => format!("{} gzip bytes", file.asset.gzip.len()),
        Err(f) => format!("{}: {f}", f.code()),
    };
    format!("{method} {path} {status} {what}")
}
