//! The request flow, host-independent: route → configuration → key → body → event → store.
//!
//! The host supplies outbound HTTP, a monotonic clock and sleep ([`Host`]), the body
//! ([`RequestBody`]), the configuration loader and the wall-clock time; nothing here performs
//! I/O of its own, so the whole flow runs in plain `cargo test` with a virtual clock.

use std::time::SystemTime;

use http::{header, request::Parts, Method};

use crate::acr::{parse_event, AcrAction, ParsedEvent};
use crate::answer::{Failure, Success};
use crate::auth::is_authorized;
use crate::config::{Config, ConfigError};
use crate::cosmos::{classify_read, classify_write, x_ms_date, ReadResult, WriteResult};
use crate::document::EventDocument;
use crate::host::{BodyError, Host, RequestBody};
use crate::retry::RetryBudget;

/// The largest body accepted (1 MiB); larger ones are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Route: one ACR webhook event per POST.
pub const ACR_ROUTE: &str = "/acr";
/// Route: health check, answers without touching the store.
pub const HEALTH_ROUTE: &str = "/healthz";

/// Handles one request from start to end.
/// `now` is the wall-clock time (for `receivedAt` and `x-ms-date`); durations come from the
/// host's monotonic clock.
pub async fn handle<B, H>(
    head: &Parts,
    body: B,
    config: impl FnOnce() -> Result<Config, ConfigError>,
    host: &H,
    now: SystemTime,
) -> Result<Success, Failure>
where
    B: RequestBody,
    H: Host,
{
    match head.uri.path() {
        HEALTH_ROUTE => match head.method {
            Method::GET | Method::HEAD => Ok(Success::Healthy),
            _ => Err(Failure::MethodNotAllowed { allow: "GET, HEAD" }),
        },
        ACR_ROUTE => {
            if head.method != Method::POST {
                return Err(Failure::MethodNotAllowed { allow: "POST" });
            }
            let config = config()?;
            let body = admit(head, body, &config).await?;
            receive_acr_event(&config, host, &body, now).await
        }
        _ => Err(Failure::NotFound),
    }
}

/// Checks the key, then reads the body within [`MAX_BODY_BYTES`].
async fn admit<B: RequestBody>(head: &Parts, body: B, config: &Config) -> Result<Vec<u8>, Failure> {
    if !is_authorized(&head.headers, head.uri.query(), &config.webhook_keys) {
        return Err(Failure::Unauthorized);
    }
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

/// Parses one ACR event and stores it (or, for `ping`, checks the store).
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
    store_event(config, host, &parsed, now).await
}

/// Writes the event's document: 201 when new, 200 when it was stored before. Transient
/// failures (429, 449, 408, 5xx, no answer) are retried within the write budget; a write whose
/// outcome is unknown is simply sent again, since a create of the same id is idempotent (409).
async fn store_event<H: Host>(
    config: &Config,
    host: &H,
    parsed: &ParsedEvent,
    now: SystemTime,
) -> Result<Success, Failure> {
    let document = EventDocument::from_acr(parsed, now);
    let value = serde_json::to_value(&document).expect("documents serialize");
    let partition_key = config.store.partition_key_path.header_for(&value);
    let body = value.to_string().into_bytes();
    let budget = RetryBudget {
        total: config.write_budget,
    };
    let mut attempt = 0;
    loop {
        let elapsed = host.elapsed();
        let Some(timeout) = budget.attempt_timeout(elapsed) else {
            return Err(out_of_budget(
                "no time left for a first attempt".into(),
                None,
            ));
        };
        let request = config.store.create_document_request(
            body.clone(),
            &partition_key,
            &x_ms_date(now + elapsed),
        );
        let (reason, requested) = match host.send(request, timeout).await {
            Ok(response) => {
                match classify_write(response.status(), response.headers(), response.body()) {
                    WriteResult::Created => return Ok(Success::Stored { id: document.id }),
                    WriteResult::AlreadyStored => {
                        return Ok(Success::AlreadyStored { id: document.id })
                    }
                    WriteResult::Failed(f) if f.is_transient() => (f.to_string(), f.retry_after),
                    WriteResult::Failed(f) => return Err(Failure::StoreRefused(f)),
                }
            }
            Err(e) => (format!("Cosmos DB could not be reached: {e}"), None),
        };
        match budget.delay(attempt, requested, host.elapsed(), host.random_u64()) {
            Some(wait) => host.sleep(wait).await,
            None => return Err(out_of_budget(reason, requested)),
        }
        attempt += 1;
    }
}

fn out_of_budget(last: String, requested: Option<std::time::Duration>) -> Failure {
    Failure::StoreUnavailable {
        reason: last,
        retry_after: requested,
    }
}

/// A signed read of the container's metadata: proves endpoint, key, database and container.
async fn check_store<H: Host>(
    config: &Config,
    host: &H,
    now: SystemTime,
) -> Result<Success, Failure> {
    let store = &config.store;
    let budget = RetryBudget {
        total: config.write_budget,
    };
    let timeout = budget
        .attempt_timeout(host.elapsed())
        .unwrap_or(crate::retry::MIN_ATTEMPT);
    let request = store.read_container_request(&x_ms_date(now));
    let response = host
        .send(request, timeout)
        .await
        .map_err(|e| Failure::StoreCheckFailed {
            reason: format!("Cosmos DB could not be reached: {e}"),
        })?;
    let (parts, body) = response.into_parts();
    match classify_read(parts.status, &parts.headers, body) {
        ReadResult::Found(_) => Ok(Success::Pong),
        ReadResult::NotFound => Err(Failure::StoreCheckFailed {
            reason: format!(
                "container `{}` in database `{}` does not exist (create it with `acr-webhook init`)",
                store.container, store.database
            ),
        }),
        ReadResult::Failed(f) => Err(Failure::StoreCheckFailed {
            reason: f.to_string(),
        }),
    }
}

/// The one log line for a request: method, path (never the query string), status, and for
/// failures the error code and message.
pub fn log_line(method: &Method, path: &str, outcome: &Result<Success, Failure>) -> String {
    match outcome {
        Ok(Success::Stored { id }) => format!("{method} {path} 201 stored {id}"),
        Ok(Success::AlreadyStored { id }) => format!("{method} {path} 200 already stored {id}"),
        Ok(Success::Pong) => format!("{method} {path} 204 ping ok"),
        Ok(Success::Healthy) => format!("{method} {path} 200 healthy"),
        Err(f) => format!("{method} {path} {} {}: {f}", f.status().as_u16(), f.code()),
    }
}
