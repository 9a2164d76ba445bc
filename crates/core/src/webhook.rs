//! The request flow, host-independent: route → configuration → key → body → event → store.
//!
//! The host supplies the outbound HTTP ([`Transport`]), the body ([`RequestBody`]), the
//! configuration loader and the current time; nothing here performs I/O of its own, so the
//! whole flow runs in plain `cargo test` with an in-memory transport.

use std::time::SystemTime;

use http::{header, request::Parts, Method, Request, Response};

use crate::acr::{parse_event, AcrAction, ParsedEvent};
use crate::answer::{Failure, Success};
use crate::auth::is_authorized;
use crate::config::{Config, ConfigError};
use crate::cosmos::{classify_read, classify_write, x_ms_date, ReadResult, WriteResult};
use crate::document::EventDocument;

/// The largest body accepted (1 MiB); larger ones are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Route: one ACR webhook event per POST.
pub const ACR_ROUTE: &str = "/acr";
/// Route: health check, answers without touching the store.
pub const HEALTH_ROUTE: &str = "/healthz";

/// The host's outbound HTTP client.
#[allow(async_fn_in_trait)] // single-threaded hosts (wasm) need no Send bound
pub trait Transport {
    /// Sends one request and returns the whole answer, or why there is none.
    async fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError>;
}

/// The store could not be reached or did not answer (connection refused, timeout, denied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// The incoming request's body, read only after the key was checked.
#[allow(async_fn_in_trait)]
pub trait RequestBody {
    /// Reads the body to its end, failing with [`BodyError::TooLarge`] as soon as more than
    /// `limit` bytes have arrived.
    async fn read_to_end(self, limit: usize) -> Result<Vec<u8>, BodyError>;
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived.
    #[error("body too large")]
    TooLarge,
    /// The stream failed.
    #[error("{0}")]
    Io(String),
}

impl RequestBody for Vec<u8> {
    async fn read_to_end(self, limit: usize) -> Result<Vec<u8>, BodyError> {
        if self.len() > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(self)
    }
}

/// Handles one request from start to end.
pub async fn handle<B, T>(
    head: &Parts,
    body: B,
    config: impl FnOnce() -> Result<Config, ConfigError>,
    transport: &T,
    now: SystemTime,
) -> Result<Success, Failure>
where
    B: RequestBody,
    T: Transport,
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
            receive_acr_event(&config, transport, &body, now).await
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
    body.read_to_end(MAX_BODY_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge => too_large,
        BodyError::Io(reason) => Failure::BodyUnreadable(reason),
    })
}

/// Parses one ACR event and stores it (or, for `ping`, checks the store).
pub async fn receive_acr_event<T: Transport>(
    config: &Config,
    transport: &T,
    body: &[u8],
    now: SystemTime,
) -> Result<Success, Failure> {
    let parsed = parse_event(body)?;
    if parsed.action == AcrAction::Ping {
        return check_store(config, transport, now).await;
    }
    store_event(config, transport, &parsed, now).await
}

/// Writes the event's document; 201 when new, 200 when it was stored before.
async fn store_event<T: Transport>(
    config: &Config,
    transport: &T,
    parsed: &ParsedEvent,
    now: SystemTime,
) -> Result<Success, Failure> {
    let document = EventDocument::from_acr(parsed, now);
    let value = serde_json::to_value(&document).expect("documents serialize");
    let partition_key = config.store.partition_key_path.header_for(&value);
    let request = config.store.create_document_request(
        value.to_string().into_bytes(),
        &partition_key,
        &x_ms_date(now),
    );
    let response = transport
        .send(request)
        .await
        .map_err(|e| Failure::StoreUnavailable {
            reason: format!("Cosmos DB could not be reached: {e}"),
            retry_after: None,
        })?;
    match classify_write(response.status(), response.headers(), response.body()) {
        WriteResult::Created => Ok(Success::Stored { id: document.id }),
        WriteResult::AlreadyStored => Ok(Success::AlreadyStored { id: document.id }),
        WriteResult::Failed(f) if f.is_transient() => Err(Failure::StoreUnavailable {
            reason: f.to_string(),
            retry_after: f.retry_after,
        }),
        WriteResult::Failed(f) => Err(Failure::StoreRefused(f)),
    }
}

/// A signed read of the container's metadata: proves endpoint, key, database and container.
async fn check_store<T: Transport>(
    config: &Config,
    transport: &T,
    now: SystemTime,
) -> Result<Success, Failure> {
    let store = &config.store;
    let request = store.read_container_request(&x_ms_date(now));
    let response = transport
        .send(request)
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
