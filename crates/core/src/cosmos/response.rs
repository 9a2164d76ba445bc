//! What a Cosmos DB answer means for the caller.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// Header: how long Cosmos asks the client to wait after a 429.
pub const X_MS_RETRY_AFTER_MS: http::HeaderName =
    http::HeaderName::from_static("x-ms-retry-after-ms");

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
}

impl std::fmt::Display for CosmosFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cosmos DB answered {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
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
    }
    crate::json::json_fields!(ErrorBody { "code" => code: Text });
    let mut error = ErrorBody::default();
    let code = crate::json::read_object(body, &mut error)
        .ok()
        .and(error.code)
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    let retry_after = headers
        .get(X_MS_RETRY_AFTER_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after_ms);
    CosmosFailure {
        status,
        code,
        retry_after,
    }
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
            "Cosmos DB answered 429 Too Many Requests (TooManyRequests)"
        );
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
