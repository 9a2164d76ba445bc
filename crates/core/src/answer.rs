//! Every answer the webhook gives, and the one place where outcomes become HTTP statuses.

use std::fmt;
use std::time::Duration;

use http::{header, Response, StatusCode};

use crate::acr::PayloadError;
use crate::config::ConfigError;
use crate::cosmos::CosmosFailure;
use crate::distribution::DistributionError;
use crate::eventgrid::EventGridError;
use crate::ui::{FileAnswer, FileRefusal};

/// A request that was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Success {
    /// The event is stored now (201).
    Stored {
        /// Document id.
        id: String,
        /// The action, when it is not one this receiver knows (stored as sent, and logged).
        unknown_action: Option<String>,
        /// The id the event maps to, when a different event holds it (the event is stored
        /// beside it under `id`, and a warning logged).
        conflicts_with: Option<String>,
    },
    /// The event was stored before, with the same content: a redelivery (200).
    AlreadyStored {
        /// Document id.
        id: String,
        /// As in [`Success::Stored`]: stored before beside the document holding its id.
        conflicts_with: Option<String>,
    },
    /// A ping, and the store answered a signed read (204).
    Pong,
    /// A ping whose signed read worked, of a container that cannot serve `GET /events`
    /// (204, with the reason in a `Warning` header and the log line).
    PongWithWarning(String),
    /// The health check (200).
    Healthy,
    /// The event is outside the configured `include`/`exclude` scope: not written (202).
    Filtered {
        /// Why, for the log line and the answer.
        reason: String,
    },
    /// A delivery of several events, every one of them stored or deliberately skipped.
    Batch(BatchOutcome),
    /// An Event Grid subscription validation: echo the code (200).
    ValidationAccepted {
        /// `validationCode`.
        code: String,
    },
    /// A CloudEvents abuse-protection handshake: delivery allowed (200 with these headers).
    DeliveryAllowed {
        /// `WebHook-Allowed-Origin`, `WebHook-Allowed-Rate`.
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
    },
    /// A read API answer: a JSON body (200).
    Json(Vec<u8>),
    /// One of the audit-trail page's files (200 or 304).
    UiFile(FileAnswer),
}

/// What happened to each event of a delivery (every event was handled; none failed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Ids stored now.
    pub stored: Vec<String>,
    /// Ids stored before (redelivery).
    pub already_stored: Vec<String>,
    /// Events skipped by kind (pulls, blobs, unknown types).
    pub skipped: usize,
    /// Events outside the `include`/`exclude` scope, with the reason.
    pub filtered: Vec<String>,
    /// Events refused one by one while the others were stored: the event's id and why
    /// (only [`Failure::ConflictIdsTaken`]: sending it again cannot store it, so the
    /// delivery is not failed for it, which would block every event after it).
    pub refused: Vec<(String, Failure)>,
    /// What the log line should say besides the counts (actions this receiver does not know,
    /// events stored beside a different event holding their id).
    pub notes: Vec<String>,
}

impl BatchOutcome {
    /// 201 when something was stored now, 200 when everything was stored before, 202 when
    /// there was nothing to store. Events refused one by one do not change it: they are
    /// listed in the body and the log line.
    pub fn status(&self) -> StatusCode {
        if !self.stored.is_empty() {
            StatusCode::CREATED
        } else if !self.already_stored.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        }
    }
}

/// The kind of key a route takes: webhook keys write, read keys read, and neither does the
/// other's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `webhook_keys`: the event routes (`/acr`, `/distribution`, `/eventgrid`).
    Webhook,
    /// `read_keys`: `GET /events*`.
    Read,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Webhook => "webhook key",
            KeyKind::Read => "read key",
        })
    }
}

/// A request that was not handled. Messages never contain keys, signatures or query strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No such route.
    #[error("no such route")]
    NotFound,
    /// The route exists with other methods.
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },
    /// No key, or no configured key of the kind the route takes matches.
    #[error("missing or wrong {0} (send `Authorization: Bearer <key>`)")]
    Unauthorized(KeyKind),
    /// A read (`GET /events*`) with a `code` query parameter: read keys travel in headers only,
    /// since a URL is kept in browser and shell history and in proxy logs.
    // No `?` in the message: log lines never show one (they never carry a query string).
    #[error("read keys are accepted only in a header (`Authorization: Bearer <key>` or `x-functions-key`), never in the URL: the `code` query parameter is for webhook keys")]
    ReadKeyInUrl,
    /// A read (`GET /events*`) while no read key is configured: reading is opt-in.
    #[error("reading the stored events is disabled: set the Spin variable `read_keys` to one or more keys of their own (never the webhook keys)")]
    ReadsDisabled,
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read to its end.
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The body did not arrive in time.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The body is not an acceptable event.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The component is not configured.
    #[error("the receiver is not configured: {0}")]
    Config(#[from] ConfigError),
    /// Cosmos refused the request for good (401, 403, 400, 413, ...); nothing was written.
    #[error("Cosmos DB refused the request: {0}")]
    StoreRefused(CosmosFailure),
    /// Cosmos could not take the write now (unreachable, throttled, 5xx); sending again later may work.
    #[error("the event was not stored, the store is unavailable: {reason}")]
    StoreUnavailable {
        /// What happened, without secrets.
        reason: String,
        /// How long the sender should wait, when known.
        retry_after: Option<Duration>,
    },
    /// Cosmos could not answer a read (`GET /events`) now: unreachable, throttled, 5xx after
    /// the retries within the budget, or an answer that cannot be used.
    #[error("the events could not be read, the store is unavailable: {reason}")]
    ReadUnavailable {
        /// What happened, without secrets.
        reason: String,
        /// How long the client should wait, when known.
        retry_after: Option<Duration>,
    },
    /// Cosmos DB refused a read query because the container has no composite index for its
    /// `ORDER BY` (a container the receiver did not create).
    #[error(
        "Cosmos DB refused the read query ({store_message}): {}",
        crate::indexing::missing_index_advice(database, container)
    )]
    IndexMissing {
        /// The configured database.
        database: String,
        /// The configured container.
        container: String,
        /// Cosmos DB's own words, made safe to show.
        store_message: String,
    },
    /// A read (`GET /events`) reached one of this receiver's own limits for one request (its
    /// round trips or its time budget) before the page was put together.
    #[error(
        "the page could not be put together within this receiver's limits for one read: {reason}"
    )]
    ReadLimitReached {
        /// Which limit, and how far the read got.
        reason: String,
    },
    /// The event's id, every id derived from it and its kept-aside id all hold other events
    /// (which takes writing to the container without this receiver): not stored.
    #[error("the event was not stored: its id `{id}` and the {} ids derived from it all hold other events", tried - 1)]
    ConflictIdsTaken {
        /// The event's own document id, made printable.
        id: String,
        /// How many ids were tried.
        tried: usize,
    },
    /// A ping's signed read of the container failed.
    #[error("ping failed: the signed read of the container failed: {reason}")]
    StoreCheckFailed {
        /// What happened, without secrets.
        reason: String,
    },
    /// A Distribution notification that cannot be read.
    #[error(transparent)]
    Distribution(#[from] DistributionError),
    /// An Event Grid delivery that cannot be read.
    #[error(transparent)]
    EventGrid(#[from] EventGridError),
    /// An abuse-protection `OPTIONS` without a usable `WebHook-Request-Origin`.
    #[error("missing or invalid WebHook-Request-Origin header")]
    InvalidHandshake,
    /// The read API's query string is not acceptable.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A continuation token that this receiver did not issue for this query.
    #[error("invalid continuation token: {0}")]
    InvalidContinuation(String),
    /// No stored event has this id.
    #[error("no event with this id")]
    EventNotFound,
    /// `GET /events/summary` over a window holding more events than one summary reads.
    #[error("more than {limit} events match: choose a shorter window (since, until) or filter by image, tag or action")]
    SummaryTooLarge {
        /// [`crate::summary::MAX_SUMMARY_EVENTS`].
        limit: usize,
    },
    /// A page file asked for by a client that refuses gzip (the only form it is stored in).
    #[error("the page is stored gzip-compressed only; send `Accept-Encoding: gzip` (browsers do)")]
    NotAcceptable,
}

impl From<FileRefusal> for Failure {
    fn from(refusal: FileRefusal) -> Self {
        match refusal {
            FileRefusal::MethodNotAllowed { allow } => Failure::MethodNotAllowed { allow },
            FileRefusal::NotAcceptable => Failure::NotAcceptable,
        }
    }
}

impl Failure {
    /// The HTTP status for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Failure::Unauthorized(_) | Failure::ReadKeyInUrl => StatusCode::UNAUTHORIZED,
            Failure::ReadsDisabled => StatusCode::FORBIDDEN,
            Failure::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Failure::BodyUnreadable(_) | Failure::Payload(_) => StatusCode::BAD_REQUEST,
            Failure::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::StoreRefused(_) => StatusCode::BAD_GATEWAY,
            Failure::IndexMissing { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::StoreUnavailable { .. }
            | Failure::ReadUnavailable { .. }
            | Failure::ReadLimitReached { .. }
            | Failure::StoreCheckFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Distribution(e) => e.status(),
            Failure::EventGrid(e) => e.status(),
            Failure::InvalidHandshake
            | Failure::InvalidQuery(_)
            | Failure::InvalidContinuation(_) => StatusCode::BAD_REQUEST,
            Failure::EventNotFound => StatusCode::NOT_FOUND,
            Failure::SummaryTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Failure::ConflictIdsTaken { .. } => StatusCode::CONFLICT,
        }
    }

    /// The stable, machine-readable error code of the JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::NotFound => "not_found",
            Failure::MethodNotAllowed { .. } => "method_not_allowed",
            Failure::Unauthorized(_) | Failure::ReadKeyInUrl => "unauthorized",
            Failure::ReadsDisabled => "reads_disabled",
            Failure::PayloadTooLarge { .. } => "payload_too_large",
            Failure::BodyUnreadable(_) => "body_unreadable",
            Failure::BodyTimeout => "request_timeout",
            Failure::Payload(PayloadError::InvalidJson(_)) => "invalid_json",
            Failure::Payload(PayloadError::NotAnEvent(_)) => "invalid_event",
            Failure::Payload(PayloadError::UnsupportedAction(_)) => "unsupported_action",
            Failure::Config(_) => "configuration_error",
            Failure::StoreRefused(_) => "store_refused",
            Failure::IndexMissing { .. } => "index_missing",
            Failure::StoreUnavailable { .. } | Failure::ReadUnavailable { .. } => {
                "store_unavailable"
            }
            Failure::ReadLimitReached { .. } => "read_limit_reached",
            Failure::StoreCheckFailed { .. } => "store_check_failed",
            Failure::Distribution(e) => by_status(e.status(), "invalid_notification"),
            Failure::EventGrid(e) => by_status(e.status(), "invalid_delivery"),
            Failure::InvalidHandshake => "invalid_handshake",
            Failure::InvalidQuery(_) => "invalid_query",
            Failure::InvalidContinuation(_) => "invalid_continuation",
            Failure::EventNotFound => "event_not_found",
            Failure::SummaryTooLarge { .. } => "summary_too_large",
            Failure::NotAcceptable => "not_acceptable",
            Failure::ConflictIdsTaken { .. } => "conflict_ids_taken",
        }
    }
}

impl Failure {
    /// What a final refusal by Cosmos DB (`failure`) of a request for `store` means: a
    /// missing composite index when its message says so ([`Failure::IndexMissing`]), else
    /// [`Failure::StoreRefused`] with Cosmos DB's own message.
    ///
    /// A refusal that is about how the receiver authenticates carries what fixes it: a master
    /// key refused by an account with local authorization disabled (401/5202) names
    /// `cosmos_auth=entra`; a valid Entra ID token whose principal lacks a data-plane role
    /// (403/5301) names the role assignment.
    pub fn store_refused(store: &crate::cosmos::Container, failure: CosmosFailure) -> Self {
        if failure.is_missing_composite_index() {
            return Failure::IndexMissing {
                database: store.database.clone(),
                container: store.container.clone(),
                store_message: failure.message.unwrap_or_default(),
            };
        }
        if failure.is_local_auth_disabled() {
            return Failure::StoreRefused(failure.with_advice(
                "this account accepts Microsoft Entra ID tokens only: set cosmos_auth=entra \
                 (README: Cosmos DB with Entra ID)",
            ));
        }
        if failure.is_role_missing() {
            return Failure::StoreRefused(failure.with_advice(
                crate::cosmos::entra::role_assignment_advice(store.endpoint.as_str()),
            ));
        }
        Failure::StoreRefused(failure)
    }
}

fn by_status(status: StatusCode, otherwise: &'static str) -> &'static str {
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "too_many_events",
        _ => otherwise,
    }
}

/// `[{"id", "error", "message"}]` for the events of a delivery refused one by one.
fn refused_body(refused: &[(String, Failure)]) -> serde_json::Value {
    refused
        .iter()
        .map(|(id, failure)| {
            serde_json::json!({ "id": id, "error": failure.code(), "message": failure.to_string() })
        })
        .collect()
}

/// `{"id", "status"}`, and `conflictsWith` when the event is stored beside another.
fn stored_body(id: &str, status: &str, conflicts_with: &Option<String>) -> serde_json::Value {
    let mut body = serde_json::json!({ "id": id, "status": status });
    if let Some(taken) = conflicts_with {
        body["conflictsWith"] = taken.as_str().into();
    }
    body
}

/// The status of an outcome: what [`respond`] answers and the log line names, decided here
/// without building the answer.
pub fn status(outcome: &Result<Success, Failure>) -> StatusCode {
    match outcome {
        Ok(Success::Stored { .. }) => StatusCode::CREATED,
        Ok(Success::Pong | Success::PongWithWarning(_)) => StatusCode::NO_CONTENT,
        Ok(Success::Filtered { .. }) => StatusCode::ACCEPTED,
        Ok(Success::Batch(batch)) => batch.status(),
        Ok(Success::UiFile(file)) => file.status(),
        Ok(
            Success::AlreadyStored { .. }
            | Success::Healthy
            | Success::ValidationAccepted { .. }
            | Success::DeliveryAllowed { .. }
            | Success::Json(_),
        ) => StatusCode::OK,
        Err(failure) => failure.status(),
    }
}

/// The HTTP answer for an outcome: JSON `{"error": code, "message": ...}` for failures, a small
/// JSON body naming the id for stored events, empty for a ping.
pub fn respond(outcome: &Result<Success, Failure>) -> Response<Vec<u8>> {
    let status = status(outcome);
    let json = |value: serde_json::Value| json_answer(status).body(value.to_string().into_bytes());
    let response = match outcome {
        Ok(Success::Stored {
            id, conflicts_with, ..
        }) => json(stored_body(id, "stored", conflicts_with)),
        Ok(Success::AlreadyStored { id, conflicts_with }) => {
            json(stored_body(id, "already_stored", conflicts_with))
        }
        Ok(Success::Pong) => Response::builder().status(status).body(Vec::new()),
        Ok(Success::PongWithWarning(warning)) => Response::builder()
            .status(status)
            .header(header::WARNING, warning_header(warning))
            .body(Vec::new()),
        Ok(Success::Healthy) => json(serde_json::json!({ "status": "ok" })),
        Ok(Success::Filtered { reason }) => {
            json(serde_json::json!({ "status": "filtered", "reason": reason }))
        }
        Ok(Success::Batch(batch)) => {
            let mut body = serde_json::json!({
                "stored": batch.stored,
                "alreadyStored": batch.already_stored,
                "skipped": batch.skipped,
                "filtered": batch.filtered.len(),
            });
            if !batch.refused.is_empty() {
                body["refused"] = refused_body(&batch.refused);
            }
            json(body)
        }
        Ok(Success::ValidationAccepted { code }) => {
            json(serde_json::json!({ "validationResponse": code }))
        }
        Ok(Success::DeliveryAllowed { headers }) => {
            let mut builder = Response::builder()
                .status(status)
                .header(header::ALLOW, crate::eventgrid::ALLOW_METHODS);
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            builder.body(Vec::new())
        }
        Ok(Success::UiFile(file)) => return file.response(),
        Ok(Success::Json(body)) => json_answer(status).body(body.clone()),
        Err(failure) => {
            let mut response = json(
                serde_json::json!({ "error": failure.code(), "message": failure.to_string() }),
            );
            if let Ok(r) = &mut response {
                let headers = r.headers_mut();
                match failure {
                    Failure::MethodNotAllowed { allow } => {
                        headers.insert(header::ALLOW, header::HeaderValue::from_static(allow));
                    }
                    Failure::Unauthorized(_) | Failure::ReadKeyInUrl => {
                        headers.insert(
                            header::WWW_AUTHENTICATE,
                            header::HeaderValue::from_static("Bearer"),
                        );
                    }
                    Failure::StoreUnavailable { retry_after, .. }
                    | Failure::ReadUnavailable { retry_after, .. } => {
                        let secs =
                            retry_after.map_or(1, |d| d.as_millis().div_ceil(1000).max(1) as u64);
                        headers.insert(header::RETRY_AFTER, secs.into());
                    }
                    _ => {}
                }
            }
            response
        }
    };
    response.expect("status codes and header values built here are valid")
}

/// The head of every JSON answer: its type, and neither cached (stored events and answers
/// naming ids are for the key holder who asked, not for a browser's or proxy's cache) nor
/// sniffed as another type. The page's files have their own caching ([`crate::ui`]).
fn json_answer(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
}

/// The longest `Warning` header text (a header stays well below hosts' limits).
const MAX_WARNING_CHARS: usize = 1000;

/// `Warning: 199 acr-webhook "<text>"` (RFC 7234 §5.5, code 199 "miscellaneous warning"):
/// printable ASCII only, quotes and backslashes replaced, at most [`MAX_WARNING_CHARS`].
fn warning_header(text: &str) -> header::HeaderValue {
    let quoted: String = text
        .chars()
        .take(MAX_WARNING_CHARS)
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    header::HeaderValue::from_str(&format!("199 acr-webhook \"{quoted}\""))
        .expect("printable ASCII is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_status_and_code() {
        let cosmos = CosmosFailure {
            status: StatusCode::FORBIDDEN,
            code: None,
            retry_after: None,
            substatus: None,
            message: None,
            advice: None,
        };
        let table: Vec<(Failure, u16, &str)> = vec![
            (Failure::NotFound, 404, "not_found"),
            (
                Failure::MethodNotAllowed { allow: "POST" },
                405,
                "method_not_allowed",
            ),
            (Failure::Unauthorized(KeyKind::Webhook), 401, "unauthorized"),
            (Failure::Unauthorized(KeyKind::Read), 401, "unauthorized"),
            (Failure::ReadKeyInUrl, 401, "unauthorized"),
            (Failure::ReadsDisabled, 403, "reads_disabled"),
            (
                Failure::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (Failure::BodyUnreadable("x".into()), 400, "body_unreadable"),
            (Failure::BodyTimeout, 408, "request_timeout"),
            (
                PayloadError::InvalidJson("x".into()).into(),
                400,
                "invalid_json",
            ),
            (
                PayloadError::NotAnEvent("x".into()).into(),
                400,
                "invalid_event",
            ),
            (
                PayloadError::UnsupportedAction("x".into()).into(),
                400,
                "unsupported_action",
            ),
            (
                ConfigError::Missing("cosmos_key").into(),
                500,
                "configuration_error",
            ),
            (Failure::StoreRefused(cosmos), 502, "store_refused"),
            (
                Failure::IndexMissing {
                    database: "acr".into(),
                    container: "events".into(),
                    store_message: "x".into(),
                },
                500,
                "index_missing",
            ),
            (
                Failure::StoreUnavailable {
                    reason: "x".into(),
                    retry_after: None,
                },
                503,
                "store_unavailable",
            ),
            (
                Failure::ReadUnavailable {
                    reason: "x".into(),
                    retry_after: None,
                },
                503,
                "store_unavailable",
            ),
            (
                Failure::ReadLimitReached { reason: "x".into() },
                503,
                "read_limit_reached",
            ),
            (
                Failure::StoreCheckFailed { reason: "x".into() },
                503,
                "store_check_failed",
            ),
            (
                Failure::SummaryTooLarge { limit: 5 },
                422,
                "summary_too_large",
            ),
            (Failure::NotAcceptable, 406, "not_acceptable"),
            (
                Failure::ConflictIdsTaken {
                    id: "e1".into(),
                    tried: 5,
                },
                409,
                "conflict_ids_taken",
            ),
        ];
        for (failure, status, code) in table {
            assert_eq!(failure.status().as_u16(), status, "{failure:?}");
            assert_eq!(failure.code(), code);
            let response = respond(&Err(failure.clone()));
            assert_eq!(response.status().as_u16(), status);
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["error"], code);
            assert_eq!(body["message"], failure.to_string());
        }
    }

    #[test]
    fn successes() {
        let r = respond(&Ok(Success::Stored {
            id: "a".into(),
            unknown_action: None,
            conflicts_with: None,
        }));
        assert_eq!(r.status(), 201);
        assert_eq!(r.body(), br#"{"id":"a","status":"stored"}"#);
        let r = respond(&Ok(Success::AlreadyStored {
            id: "a".into(),
            conflicts_with: None,
        }));
        assert_eq!(r.status(), 200);
        let r = respond(&Ok(Success::Stored {
            id: "a~c".into(),
            unknown_action: None,
            conflicts_with: Some("a".into()),
        }));
        assert_eq!(
            r.body(),
            br#"{"conflictsWith":"a","id":"a~c","status":"stored"}"#
        );
        let r = respond(&Ok(Success::Pong));
        assert_eq!(r.status(), 204);
        assert!(r.body().is_empty());
    }

    fn store() -> crate::cosmos::Container {
        crate::config::tests::test_config(&[]).store
    }

    fn refusal(status: u16, fixture: &str) -> CosmosFailure {
        let package: String = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let path = format!("{package}/../../tests/fixtures/cosmos/{fixture}");
        CosmosFailure::from_answer(
            StatusCode::from_u16(status).unwrap(),
            &http::HeaderMap::new(),
            &std::fs::read(&path).unwrap(),
        )
    }

    #[test]
    fn a_missing_composite_index_is_told_apart_from_other_refusals() {
        for fixture in [
            "local-store-missing-composite-index.json",
            "gateway-missing-composite-index.json",
        ] {
            let failure = Failure::store_refused(&store(), refusal(400, fixture));
            assert_eq!(failure.code(), "index_missing", "{fixture}");
            assert_eq!(failure.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let message = failure.to_string();
            for needed in [
                "(/receivedAt DESC, /id DESC)",
                "container `events` of database `acr`",
                "`acr-webhook init`",
                "az cosmosdb sql container update",
                "-d acr -n events --idx @deploy/cosmos-indexing-policy.json",
                "The order by query does not have a corresponding composite index that it can \
                 be served from.",
            ] {
                assert!(
                    message.contains(needed),
                    "{fixture}: {needed:?} not in {message}"
                );
            }
            assert!(!message.contains(['\r', '\n']), "one line: {message:?}");
        }
        // The gateway's envelope is opened: its sentence and ActivityId, no request URI.
        let gateway = Failure::store_refused(
            &store(),
            refusal(400, "gateway-missing-composite-index.json"),
        )
        .to_string();
        assert!(
            gateway.contains("ActivityId: af78cca2-48d9-4cf2-94a9-3582e86a0b3e"),
            "{gateway}"
        );
        assert!(
            !gateway.contains("/apps/") && !gateway.contains("Errors"),
            "{gateway}"
        );

        // Not from the status alone: other 400s, and the same words with another status.
        for (status, fixture) in [
            (400, "gateway-order-by-path-excluded.json"),
            (400, "local-store-replace-partition-key.json"),
            (500, "local-store-missing-composite-index.json"),
            (401, "gateway-unauthorized.json"),
        ] {
            let failure = Failure::store_refused(&store(), refusal(status, fixture));
            assert_eq!(failure.code(), "store_refused", "{fixture}");
        }
        let bare =
            CosmosFailure::from_answer(StatusCode::BAD_REQUEST, &http::HeaderMap::new(), b"");
        assert_eq!(
            Failure::store_refused(&store(), bare).code(),
            "store_refused"
        );
    }

    #[test]
    fn other_refusals_carry_cosmos_dbs_own_words() {
        let excluded = Failure::store_refused(
            &store(),
            refusal(400, "gateway-order-by-path-excluded.json"),
        );
        assert_eq!(
            excluded.to_string(),
            "Cosmos DB refused the request: Cosmos DB answered 400 Bad Request (BadRequest): \
             The index path corresponding to the specified order-by item is excluded. \
             (ActivityId: 3318a5c9-d1b5-4893-861d-73dc4c97ff29)"
        );
        let local = Failure::store_refused(
            &store(),
            refusal(400, "local-store-replace-partition-key.json"),
        );
        assert_eq!(
            local.to_string(),
            "Cosmos DB refused the request: Cosmos DB answered 400 Bad Request: replacing \
             partitionKey is not allowed"
        );
        let unauthorized =
            Failure::store_refused(&store(), refusal(401, "gateway-unauthorized.json")).to_string();
        assert!(
            unauthorized.starts_with(
                "Cosmos DB refused the request: Cosmos DB answered 401 Unauthorized (Unauthorized): \
                 The input authorization token can't serve the request."
            ),
            "{unauthorized}"
        );
        assert!(
            unauthorized.contains("'post docs dbs/acr/colls/events fri, 04 dec 2026"),
            "{unauthorized}"
        );
        assert!(!unauthorized.contains(['\r', '\n']), "{unauthorized:?}");
    }

    #[test]
    fn a_ping_warning_is_a_header_on_the_204() {
        let r = respond(&Ok(Success::PongWithWarning(
            "no index \"x\" in \\ container é\nnext".into(),
        )));
        assert_eq!(r.status(), 204);
        assert!(r.body().is_empty());
        assert_eq!(
            r.headers()["warning"],
            "199 acr-webhook \"no index 'x' in / container ??next\""
        );
        let long = respond(&Ok(Success::PongWithWarning("a".repeat(5000))));
        assert!(long.headers()["warning"].len() < 1100);
    }

    /// Every JSON answer, success or failure, is `no-store` and `nosniff`.
    #[test]
    fn json_answers_are_neither_cached_nor_sniffed() {
        let outcomes: Vec<Result<Success, Failure>> = vec![
            Ok(Success::Stored {
                id: "a".into(),
                unknown_action: None,
                conflicts_with: None,
            }),
            Ok(Success::AlreadyStored {
                id: "a".into(),
                conflicts_with: None,
            }),
            Ok(Success::Healthy),
            Ok(Success::Filtered { reason: "x".into() }),
            Ok(Success::Batch(BatchOutcome::default())),
            Ok(Success::ValidationAccepted { code: "c".into() }),
            Ok(Success::Json(b"{}".to_vec())),
            Err(Failure::NotFound),
            Err(Failure::Unauthorized(KeyKind::Read)),
            Err(Failure::EventNotFound),
            Err(Failure::StoreUnavailable {
                reason: "x".into(),
                retry_after: None,
            }),
        ];
        for outcome in &outcomes {
            let r = respond(outcome);
            assert_eq!(status(outcome), r.status(), "{outcome:?}");
            assert_eq!(
                r.headers()["content-type"],
                "application/json",
                "{outcome:?}"
            );
            assert_eq!(r.headers()["cache-control"], "no-store", "{outcome:?}");
            assert_eq!(
                r.headers()["x-content-type-options"],
                "nosniff",
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn helpful_headers() {
        let r = respond(&Err(Failure::StoreUnavailable {
            reason: "x".into(),
            retry_after: Some(Duration::from_millis(1500)),
        }));
        assert_eq!(r.headers()["retry-after"], "2");
        let r = respond(&Err(Failure::ReadUnavailable {
            reason: "x".into(),
            retry_after: Some(Duration::from_millis(200)),
        }));
        assert_eq!(r.headers()["retry-after"], "1");
        let r = respond(&Err(Failure::MethodNotAllowed { allow: "POST" }));
        assert_eq!(r.headers()["allow"], "POST");
        let r = respond(&Err(Failure::Unauthorized(KeyKind::Webhook)));
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
}
