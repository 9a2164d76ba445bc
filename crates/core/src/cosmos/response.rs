//! What a Cosmos DB answer means for the caller.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// Header: how long Cosmos asks the client to wait after a 429.
pub const X_MS_RETRY_AFTER_MS: http::HeaderName =
    http::HeaderName::from_static("x-ms-retry-after-ms");

/// Header: Cosmos DB's sub-status of a refusal (`5202`: local authorization is disabled;
/// `5300`: a data-plane token on a control-plane operation; `5301`: the principal lacks a
/// data-plane role).
pub const X_MS_SUBSTATUS: http::HeaderName = http::HeaderName::from_static("x-ms-substatus");

/// The outcome of a create-document request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    /// 201: the document is stored now.
    Created,
    /// 409: a document with this id (and partition key) was stored before.
    AlreadyStored,
    /// Anything else: not stored.
    Failed(CosmosFailure),
}

/// The outcome of a read (document or container metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// 200 with the body.
    Found(Vec<u8>),
    /// 404.
    NotFound,
    /// Anything else.
    Failed(CosmosFailure),
}

/// A Cosmos answer that is neither success nor the expected "exists"/"absent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosmosFailure {
    /// HTTP status Cosmos answered.
    pub status: StatusCode,
    /// Cosmos's `code` field (`Forbidden`, `TooManyRequests`, ...) when present.
    pub code: Option<String>,
    /// `x-ms-retry-after-ms`, when Cosmos gave it.
    pub retry_after: Option<Duration>,
    /// `x-ms-substatus`, when Cosmos gave it.
    pub substatus: Option<u32>,
    /// Cosmos's own `message`, made safe to show ([`store_message`]): what a status line
    /// alone does not say.
    pub message: Option<String>,
    /// What fixes it, when this receiver knows (added by [`CosmosFailure::with_advice`]).
    pub advice: Option<String>,
}

impl CosmosFailure {
    /// What an answer that is not the expected success means: its status, Cosmos's `code`
    /// and the wait it asks for. For queries and feed reads, where even 404 is a failure.
    pub fn from_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        failure(status, headers, body)
    }

    /// Statuses worth trying again: throttled (429), retry-with (449), timeout (408) and
    /// server-side trouble (500, 502, 503, 504). 400/401/403/404/413 are final.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.status.as_u16(),
            408 | 429 | 449 | 500 | 502 | 503 | 504
        )
    }

    /// Whether Cosmos DB refused a query because the container has no composite index that
    /// serves its `ORDER BY`. Read from the answer's message, never guessed from the status:
    /// the gateway and the local store both answer 400 with the sentence
    /// [`MISSING_COMPOSITE_INDEX`] (the gateway inside `Message: {"Errors":[...]}`), and 400
    /// has many other causes.
    pub fn is_missing_composite_index(&self) -> bool {
        self.status == StatusCode::BAD_REQUEST
            && self
                .message
                .as_deref()
                .is_some_and(|m| contains_ignoring_case(m, MISSING_COMPOSITE_INDEX))
    }
}

/// The words Cosmos DB refuses an `ORDER BY` on several properties with when no composite
/// index serves it: "The order by query does not have a corresponding composite index that it
/// can be served from." (the gateway's documented wording, and the local store's).
pub const MISSING_COMPOSITE_INDEX: &str =
    "does not have a corresponding composite index that it can be served from";

impl CosmosFailure {
    /// The same refusal with what fixes it appended to its words.
    pub fn with_advice(mut self, advice: impl Into<String>) -> Self {
        self.advice = Some(advice.into());
        self
    }

    /// Whether Cosmos DB refused a master key because the account allows Entra ID only
    /// (401, sub-status 5202: "Local Authorization is disabled").
    pub fn is_local_auth_disabled(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED && self.substatus == Some(5202)
    }

    /// Whether Cosmos DB refused a valid token whose principal holds no data-plane role that
    /// allows the operation (403, sub-status 5301).
    pub fn is_role_missing(&self) -> bool {
        self.status == StatusCode::FORBIDDEN && matches!(self.substatus, Some(5301 | 5302))
    }

    /// Whether Cosmos DB refused a control-plane operation (creating a database or a
    /// container) made with an Entra ID token (403, sub-status 5300).
    pub fn is_control_plane_refused(&self) -> bool {
        self.status == StatusCode::FORBIDDEN && self.substatus == Some(5300)
    }
}

impl std::fmt::Display for CosmosFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cosmos DB answered {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(advice) = &self.advice {
            write!(f, "; {advice}")?;
        }
        Ok(())
    }
}

/// Classifies the answer to a create-document request.
pub fn classify_write(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> WriteResult {
    match status.as_u16() {
        200 | 201 => WriteResult::Created,
        409 => WriteResult::AlreadyStored,
        _ => WriteResult::Failed(failure(status, headers, body)),
    }
}

/// Classifies the answer to a read.
pub fn classify_read(status: StatusCode, headers: &HeaderMap, body: Vec<u8>) -> ReadResult {
    match status.as_u16() {
        200 => ReadResult::Found(body),
        404 => ReadResult::NotFound,
        _ => ReadResult::Failed(failure(status, headers, &body)),
    }
}

fn failure(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CosmosFailure {
    #[derive(Default)]
    struct ErrorBody {
        code: Option<String>,
        message: Option<serde_json::Value>,
    }
    crate::json::json_fields!(ErrorBody { "code" => code: Text, "message" => message: Value });
    let mut error = ErrorBody::default();
    let read = crate::json::read_object(body, &mut error).is_ok();
    let code = error
        .code
        .filter(|c| read && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    let message = error
        .message
        .filter(|_| read)
        .and_then(|m| m.as_str().and_then(store_message));
    let retry_after = headers
        .get(X_MS_RETRY_AFTER_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after_ms);
    let substatus = headers
        .get(X_MS_SUBSTATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    CosmosFailure {
        status,
        code,
        retry_after,
        substatus,
        message,
        advice: None,
    }
}

/// The most characters of Cosmos DB's message kept in an answer or a log line.
pub const MAX_STORE_MESSAGE_CHARS: usize = 300;

/// Cosmos DB's `message`, made safe to show: the gateway's `Message: {"Errors":[...]}`
/// envelope opened to its sentences (its `ActivityId` kept, for Azure support; request URIs
/// and statistics dropped), control characters and runs of white space made one space,
/// anything shaped like a signature or a key (`sig=…`, `type=master…`, a run of 40 or more
/// base64 characters) replaced by `[redacted]`, and at most [`MAX_STORE_MESSAGE_CHARS`]
/// characters. `None` when nothing is left.
pub fn store_message(message: &str) -> Option<String> {
    let text = match gateway_errors(message) {
        Some(errors) => match activity_id(message) {
            Some(id) => format!("{errors} (ActivityId: {id})"),
            None => errors,
        },
        None => message.to_owned(),
    };
    let mut out = String::new();
    let mut kept = 0;
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        let word = if secret_shaped(word) {
            "[redacted]"
        } else {
            word
        };
        for c in (!out.is_empty())
            .then_some(' ')
            .into_iter()
            .chain(word.chars())
        {
            if kept == MAX_STORE_MESSAGE_CHARS {
                out.push('…');
                return Some(out);
            }
            out.push(c);
            kept += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The sentences of the gateway's `Message: {"Errors":["...", ...]}` envelope, joined; `None`
/// for a message of another shape. Read by hand, not as JSON (a JSON reader for this one
/// message would cost the component 3 KB): the sentences are plain text, and the escapes
/// `\"` and `\\` are undone.
fn gateway_errors(message: &str) -> Option<String> {
    let rest = message.trim_start().strip_prefix("Message:")?.trim_start();
    let list = rest.strip_prefix(r#"{"Errors":[""#)?;
    let end = find(list, r#""]}"#)?;
    let mut out = String::with_capacity(end);
    let mut chars = list[..end].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => {
                // `","` between two sentences.
                if chars.as_str().starts_with(",\"") {
                    chars.nth(1);
                    out.push(' ');
                } else {
                    return None;
                }
            }
            _ => out.push(c),
        }
    }
    (!out.trim().is_empty()).then_some(out)
}

/// The `ActivityId` the gateway appends to a message, when it looks like one (a GUID).
fn activity_id(message: &str) -> Option<&str> {
    let label = "ActivityId:";
    let after = &message[find(message, label)? + label.len()..];
    let id = after
        .trim_start()
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()?;
    (id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(id)
}

/// Whether `text` contains `needle`, ASCII letters compared without regard to case. These
/// searches scan byte windows: messages are short, and a substring searcher would add to the
/// component for nothing.
fn contains_ignoring_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Where `needle` first starts in `text`.
fn find(text: &str, needle: &str) -> Option<usize> {
    text.as_bytes()
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
}

/// Whether a word of a message could carry a signature or a key.
fn secret_shaped(word: &str) -> bool {
    [
        "sig=",
        "sig%3d",
        "type=master",
        "type%3dmaster",
        "type=aad",
        "type%3daad",
    ]
    .iter()
    .any(|marker| contains_ignoring_case(word, marker))
        || longest_run(word, b"+/=%") >= 40
        // An Entra ID access token: a JWT (`eyJ…`), base64url segments joined by dots.
        || (word.contains("eyJ") && longest_run(word, b"-_.") >= 40)
}

/// The longest run of ASCII letters, digits and `also` in `word`.
fn longest_run(word: &str, also: &[u8]) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for b in word.bytes() {
        if b.is_ascii_alphanumeric() || also.contains(&b) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// The longest wait taken from `x-ms-retry-after-ms` (an hour; the budget cuts it anyway).
const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

/// `x-ms-retry-after-ms`: milliseconds as decimal digits, possibly with a fraction (`100`,
/// `12.5`), to the microsecond; larger values are lowered to [`MAX_RETRY_AFTER_MS`]. Parsed
/// by hand: `f64`'s parser would add its tables to the component for this one header.
fn retry_after_ms(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let ms = whole.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    if ms >= MAX_RETRY_AFTER_MS {
        return Some(Duration::from_millis(MAX_RETRY_AFTER_MS));
    }
    // The first three fraction digits, right-padded: ".5" is 500 µs, ".0625" is 62 µs.
    let micros = (0..3).fold(0u64, |n, i| {
        n * 10
            + fraction
                .as_bytes()
                .get(i)
                .map_or(0, |d| u64::from(d - b'0'))
    });
    Some(Duration::from_micros(ms * 1000 + micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_to_the_microsecond() {
        for (text, micros) in [
            ("100", Some(100_000)),
            ("0", Some(0)),
            (" 7 ", Some(7_000)),
            ("12.5", Some(12_500)),
            ("1.0625", Some(1_062)),
            (".5", Some(500)),
            ("5.", Some(5_000)),
            ("3599999.999", Some(3_599_999_999)),
            ("3600000", Some(3_600_000_000)),
            ("99999999999999999999999", Some(3_600_000_000)),
            ("", None),
            (".", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("NaN", None),
            ("inf", None),
            ("1.2.3", None),
            ("1 000", None),
            ("١٢", None),
        ] {
            assert_eq!(
                retry_after_ms(text),
                micros.map(Duration::from_micros),
                "{text:?}"
            );
        }
    }

    #[test]
    fn writes() {
        let h = HeaderMap::new();
        assert_eq!(
            classify_write(StatusCode::CREATED, &h, b""),
            WriteResult::Created
        );
        assert_eq!(
            classify_write(StatusCode::CONFLICT, &h, b""),
            WriteResult::AlreadyStored
        );
        let mut h = HeaderMap::new();
        h.insert(X_MS_RETRY_AFTER_MS, "12.5".parse().unwrap());
        let WriteResult::Failed(f) = classify_write(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"code":"TooManyRequests","message":"m"}"#,
        ) else {
            panic!()
        };
        assert_eq!(f.code.as_deref(), Some("TooManyRequests"));
        assert_eq!(f.retry_after, Some(Duration::from_micros(12_500)));
        assert!(f.is_transient());
        assert_eq!(
            f.to_string(),
            "Cosmos DB answered 429 Too Many Requests (TooManyRequests): m"
        );
    }

    #[test]
    fn store_messages_are_one_bounded_line_without_secrets() {
        let key = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
        let sig =
            "type%3Dmaster%26ver%3D1.0%26sig%3DMlPO83gCEkMzq3THhsZvfZcS2Kr9%2BG3Jwa1rBsaW4mU%3D";
        let hostile = format!(
            "bad\r\nFORGED LOG LINE\t\u{1b}[31m key {key} header {sig} sig=abc type=master&x"
        );
        let shown = store_message(&hostile).unwrap();
        assert_eq!(
            shown,
            "bad FORGED LOG LINE [31m key [redacted] header [redacted] [redacted] [redacted]"
        );
        // An Entra ID token, bare or in its header, is redacted too.
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJodHRwczovL2Nvc21vcy5henVyZS5jb20ifQ.s1g-n_d";
        let shown =
            store_message(&format!("token {jwt} header type%3Daad%26ver%3D1.0 end")).unwrap();
        assert_eq!(shown, "token [redacted] header [redacted] end");
        let long = store_message(&"word ".repeat(200)).unwrap();
        assert_eq!(long.chars().count(), MAX_STORE_MESSAGE_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(store_message(" \r\n\t "), None);
        // Multi-byte characters are cut on a character boundary.
        let wide = store_message(&"é".repeat(400)).unwrap();
        assert_eq!(wide.chars().count(), MAX_STORE_MESSAGE_CHARS + 1);
        // GUIDs, versions and container paths are not secrets.
        let plain = "ActivityId: 0b5c4f7e-1c1a-4d55-9d0e-2f4b8e7a6c11, Microsoft.Azure.Documents.Common/2.14.0 dbs/acr/colls/events";
        assert_eq!(store_message(plain).unwrap(), plain);
    }

    #[test]
    fn the_gateways_message_envelope_is_opened() {
        let gateway = "Message: {\"Errors\":[\"First.\",\"Second.\"]}\r\nActivityId: \
                       af78cca2-48d9-4cf2-94a9-3582e86a0b3e, Request URI: /apps/x/services/y, \
                       RequestStats: \r\nRequestStartTime: 2026, SDK: z";
        assert_eq!(
            store_message(gateway).unwrap(),
            "First. Second. (ActivityId: af78cca2-48d9-4cf2-94a9-3582e86a0b3e)"
        );
        // Escapes inside a sentence are undone; a sentence may hold `,` and `]`.
        assert_eq!(
            store_message(r#"Message: {"Errors":["Say \"a, b\" [x] \\ ok."]}"#).unwrap(),
            r#"Say "a, b" [x] \ ok."#
        );
        // The older shape, with objects (dotnet/efcore#16150): shown as it is, one line.
        let older = "Message: {\"errors\":[{\"severity\":\"Error\",\"message\":\"Unsupported ORDER BY clause.\"}]}\r\nActivityId: x";
        assert_eq!(
            store_message(older).unwrap(),
            "Message: {\"errors\":[{\"severity\":\"Error\",\"message\":\"Unsupported ORDER BY clause.\"}]} ActivityId: x"
        );
        // Not an envelope after all: the message as it is.
        assert_eq!(
            store_message("Message: not json").unwrap(),
            "Message: not json"
        );
        assert_eq!(
            store_message("Message: {\"Errors\":[]}").unwrap(),
            "Message: {\"Errors\":[]}"
        );
    }

    #[test]
    fn a_message_that_is_not_a_string_is_ignored_and_the_code_kept() {
        let f = failure(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"code":"BadRequest","message":{"nested":true}}"#,
        );
        assert_eq!(f.code.as_deref(), Some("BadRequest"));
        assert_eq!(f.message, None);
        assert_eq!(
            f.to_string(),
            "Cosmos DB answered 400 Bad Request (BadRequest)"
        );
        assert!(!f.is_missing_composite_index());
    }

    #[test]
    fn final_statuses_are_not_transient() {
        for s in [400, 401, 403, 404, 413] {
            let f = failure(
                StatusCode::from_u16(s).unwrap(),
                &HeaderMap::new(),
                b"garbage",
            );
            assert!(!f.is_transient(), "{s}");
            assert_eq!(f.code, None);
        }
    }

    #[test]
    fn reads() {
        let h = HeaderMap::new();
        assert_eq!(
            classify_read(StatusCode::OK, &h, b"{}".to_vec()),
            ReadResult::Found(b"{}".to_vec())
        );
        assert_eq!(
            classify_read(StatusCode::NOT_FOUND, &h, vec![]),
            ReadResult::NotFound
        );
        assert!(matches!(
            classify_read(StatusCode::UNAUTHORIZED, &h, vec![]),
            ReadResult::Failed(_)
        ));
    }
}
