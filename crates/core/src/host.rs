//! What the host gives the core: outbound HTTP with a timeout, a monotonic clock, a way to
//! wait, randomness for jitter, and the incoming body. The Spin component, the native CLI and
//! the tests (with a virtual clock) each implement these.

use std::time::Duration;

use http::{header, HeaderName, Request, Response};

use crate::auth::FUNCTIONS_KEY_HEADER;
use crate::cosmos::{X_MS_CONTINUATION, X_MS_RETRY_AFTER_MS, X_MS_SUBSTATUS};
use crate::eventgrid::WEBHOOK_REQUEST_ORIGIN;

/// Every request header [`handle`](crate::handle) reads. A host may pass it only these: the
/// component does, so that it never parses a header name from text (`http`'s name parser is
/// 12 KB of the module, BENCHMARKS.md).
pub const REQUEST_HEADERS: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::ACCEPT_ENCODING,
    header::IF_NONE_MATCH,
    FUNCTIONS_KEY_HEADER,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    WEBHOOK_REQUEST_ORIGIN,
];

/// Every header of a Cosmos DB answer the core reads. [`Host::send`] may return only these.
pub const ANSWER_HEADERS: [HeaderName; 3] =
    [X_MS_RETRY_AFTER_MS, X_MS_CONTINUATION, X_MS_SUBSTATUS];

/// The constant in `known` that is the header `name` (compared without regard to case), for
/// a host that builds header maps from names given as text.
pub fn known_header(known: &[HeaderName], name: &str) -> Option<HeaderName> {
    known
        .iter()
        .find(|candidate| candidate.as_str().eq_ignore_ascii_case(name))
        .cloned()
}

/// The host's side of one request's life.
#[allow(async_fn_in_trait)] // single-threaded hosts (wasm) need no Send bound
pub trait Host {
    /// Sends one request and returns the whole answer, giving up after `timeout` (connect,
    /// first byte and between bytes each bounded by it). The answer needs only the headers
    /// in [`ANSWER_HEADERS`].
    async fn send(
        &self,
        request: Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, TransportError>;

    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);

    /// Monotonic time since the incoming request arrived.
    fn elapsed(&self) -> Duration;

    /// A random number (for retry jitter; need not be cryptographic).
    fn random_u64(&self) -> u64;

    /// A value kept across requests under `key` (Spin's key-value store: the Entra ID token
    /// cache); `None` when absent, or when this host keeps nothing.
    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        let _ = key;
        None
    }

    /// Keeps `value` under `key` for later requests; a host that keeps nothing drops it.
    async fn cache_set(&self, key: &str, value: &[u8]) {
        let _ = (key, value);
    }

    /// Reads a text file the host gives the component (workload identity's federated token,
    /// which rotates: read on every token request). The error says why, without the content.
    fn read_file(&self, path: &str) -> Result<String, String> {
        let _ = path;
        Err("this host gives the component no files".into())
    }
}

/// The store could not be reached or did not answer in time. Carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// What happened.
    pub message: String,
    /// True when the request may have reached the store (a timeout after sending, a reset
    /// mid-answer): its outcome is unknown.
    pub outcome_unknown: bool,
}

impl TransportError {
    /// The request did not reach the store (refused, DNS, denied by the host).
    pub fn not_sent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            outcome_unknown: false,
        }
    }

    /// The request may have reached the store; no answer came back.
    pub fn outcome_unknown(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            outcome_unknown: true,
        }
    }
}

/// The incoming request's body, read only after the key was checked.
#[allow(async_fn_in_trait)]
pub trait RequestBody {
    /// Reads the body to its end, failing with [`BodyError::TooLarge`] as soon as more than
    /// `limit` bytes have arrived and with [`BodyError::TimedOut`] when it has not ended
    /// within `timeout`.
    async fn read_to_end(self, limit: usize, timeout: Duration) -> Result<Vec<u8>, BodyError>;
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived.
    #[error("body too large")]
    TooLarge,
    /// The body did not end in time.
    #[error("body not received in time")]
    TimedOut,
    /// The stream failed.
    #[error("{0}")]
    Io(String),
}

impl RequestBody for Vec<u8> {
    async fn read_to_end(self, limit: usize, _timeout: Duration) -> Result<Vec<u8>, BodyError> {
        if self.len() > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[test]
    fn known_headers_are_found_in_any_case_and_others_are_not() {
        assert_eq!(
            known_header(&REQUEST_HEADERS, "Authorization"),
            Some(header::AUTHORIZATION)
        );
        assert_eq!(
            known_header(&REQUEST_HEADERS, "WebHook-Request-Origin"),
            Some(WEBHOOK_REQUEST_ORIGIN)
        );
        assert_eq!(
            known_header(&ANSWER_HEADERS, "x-ms-continuation"),
            Some(X_MS_CONTINUATION)
        );
        assert_eq!(known_header(&REQUEST_HEADERS, "x-ms-continuation"), None);
        assert_eq!(known_header(&REQUEST_HEADERS, "user-agent"), None);
        assert_eq!(known_header(&REQUEST_HEADERS, ""), None);
    }
}
