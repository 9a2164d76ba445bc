//! Cosmos DB for NoSQL over REST, without an SDK: the master-key token and Entra ID token
//! sources, requests built as plain `http::Request` values, and answers classified into
//! outcomes. No I/O and no clock.

mod container;
mod credential;
pub mod entra;
mod request;
mod response;
mod token;

pub use container::Container;
pub use credential::{CosmosAuth, Credential, SigningTarget, X_MS_DATE};
pub use entra::AccessToken;

pub use request::{
    at_low_priority, x_ms_date, QueryScope, API_VERSION, X_MS_CONTINUATION,
    X_MS_ENABLE_CROSS_PARTITION, X_MS_PARTITION_KEY, X_MS_PARTITION_KEY_RANGE_ID,
    X_MS_PRIORITY_LEVEL,
};
pub use response::{
    classify_read, classify_write, CosmosFailure, ReadResult, WriteResult, X_MS_RETRY_AFTER_MS,
    X_MS_SUBSTATUS,
};
pub use token::{authorization, signature, InvalidMasterKey, MasterKey, SigningScope};

use std::fmt;

use crate::text::hex_lower;

/// A Cosmos DB account endpoint: `http(s)://host[:port]`, kept without a trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct CosmosEndpoint(String);

/// Why an endpoint is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEndpoint {
    /// Not `http://` or `https://`.
    #[error(
        "expected an http:// or https:// URL such as https://myaccount.documents.azure.com:443"
    )]
    Scheme,
    /// No host, or a path, query or fragment after it.
    #[error("expected scheme://host[:port] with no path, query or user info")]
    Shape,
    /// `http://` to another machine: a master-key token signs no body, so one read off the
    /// wire authorizes other requests for its lifetime.
    #[error(
        "plain http:// is accepted only for this machine (127.0.0.0/8, ::1, localhost); \
         use https:// for any other host"
    )]
    PlainHttpOffMachine,
}

impl CosmosEndpoint {
    /// Parses an account endpoint as the portal shows it (a trailing `/` is accepted).
    pub fn parse(text: &str) -> Result<Self, InvalidEndpoint> {
        let text = text.trim();
        let (rest, plain) = match text.strip_prefix("https://") {
            Some(rest) => (rest, false),
            None => (
                text.strip_prefix("http://")
                    .ok_or(InvalidEndpoint::Scheme)?,
                true,
            ),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(InvalidEndpoint::Shape);
        }
        let parsed = authority
            .parse::<http::uri::Authority>()
            .map_err(|_| InvalidEndpoint::Shape)?;
        if plain && !is_this_machine(parsed.host()) {
            return Err(InvalidEndpoint::PlainHttpOffMachine);
        }
        Ok(Self(
            text[..text.len() - (rest.len() - authority.len())].to_owned(),
        ))
    }

    /// The endpoint without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `host` (as in a URL's authority: IPv6 in brackets) names this machine: `localhost`,
/// an address in 127.0.0.0/8, or `::1`. Names are not resolved; only `localhost` itself counts.
fn is_this_machine(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Debug for CosmosEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosmosEndpoint({})", self.0)
    }
}

/// A container's (single) partition key path, such as `/id` or `/image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeyPath(String);

/// Why a partition key path is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a path such as /id or /image: a leading /, then property names separated by /")]
pub struct InvalidPartitionKeyPath;

impl PartitionKeyPath {
    /// Parses `/a` or `/a/b`.
    pub fn parse(text: &str) -> Result<Self, InvalidPartitionKeyPath> {
        let rest = text.strip_prefix('/').ok_or(InvalidPartitionKeyPath)?;
        if rest
            .split('/')
            .any(|s| s.is_empty() || s.contains(['"', '\\']))
        {
            return Err(InvalidPartitionKeyPath);
        }
        Ok(Self(text.to_owned()))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The property this path names when it has one segment (`/image` → `image`).
    pub fn top_level_property(&self) -> Option<&str> {
        let rest = &self.0[1..];
        (!rest.contains('/')).then_some(rest)
    }

    /// The value at this path in a document; `None` when absent ("undefined" to Cosmos).
    pub fn value_in<'v>(&self, document: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        self.0[1..]
            .split('/')
            .try_fold(document, |node, segment| node.get(segment))
    }

    /// The `x-ms-documentdb-partitionkey` header value for `document`.
    pub fn header_for(&self, document: &serde_json::Value) -> String {
        partition_key_header(self.value_in(document))
    }
}

/// Encodes one partition key value as the header wants it: a JSON array, ASCII only
/// (non-ASCII as `\uXXXX` UTF-16 units), `[{}]` for an absent value.
pub fn partition_key_header(value: Option<&serde_json::Value>) -> String {
    use serde_json::Value;
    match value {
        Some(Value::String(s)) => partition_key_header_for_str(s),
        Some(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => format!("[{v}]"),
        Some(Value::Array(_) | Value::Object(_)) | None => PARTITION_KEY_UNDEFINED.to_owned(),
    }
}

/// The header value for an absent partition key ("undefined" to Cosmos).
pub const PARTITION_KEY_UNDEFINED: &str = "[{}]";

/// [`partition_key_header`] for a string value, without building a `serde_json::Value`.
pub fn partition_key_header_for_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str("[\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for &unit in c.encode_utf16(&mut units).iter() {
                    out.push_str("\\u");
                    out.push_str(&hex_lower(&unit.to_be_bytes()));
                }
            }
        }
    }
    out.push_str("\"]");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints() {
        for (input, want) in [
            (
                "https://a.documents.azure.com:443/",
                "https://a.documents.azure.com:443",
            ),
            (
                "https://a.documents.azure.com",
                "https://a.documents.azure.com",
            ),
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
            (" http://localhost:1/ ", "http://localhost:1"),
        ] {
            assert_eq!(CosmosEndpoint::parse(input).unwrap().as_str(), want);
        }
        assert_eq!(
            CosmosEndpoint::parse("ftp://x"),
            Err(InvalidEndpoint::Scheme)
        );
        for bad in [
            "https://",
            "https://a/b",
            "https://a?x",
            "https://u@a",
            "http://a b",
        ] {
            assert_eq!(
                CosmosEndpoint::parse(bad),
                Err(InvalidEndpoint::Shape),
                "{bad}"
            );
        }
    }

    #[test]
    fn partition_key_paths() {
        let doc = json!({"id": "x", "target": {"repo": "r"}, "n": 5});
        let p = PartitionKeyPath::parse("/target/repo").unwrap();
        assert_eq!(p.header_for(&doc), r#"["r"]"#);
        assert_eq!(
            PartitionKeyPath::parse("/id").unwrap().header_for(&doc),
            r#"["x"]"#
        );
        assert_eq!(
            PartitionKeyPath::parse("/n").unwrap().header_for(&doc),
            "[5]"
        );
        assert_eq!(
            PartitionKeyPath::parse("/nope").unwrap().header_for(&doc),
            "[{}]"
        );
        for bad in ["id", "/", "//a", "/a/", "/\"a\""] {
            assert!(PartitionKeyPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn partition_key_header_is_ascii_json() {
        let v = json!("a\"b\\cé😀");
        let h = partition_key_header(Some(&v));
        assert_eq!(h, r#"["a\"b\\c\u00e9\ud83d\ude00"]"#);
        let back: Vec<String> = serde_json::from_str(&h).unwrap();
        assert_eq!(back, vec!["a\"b\\cé😀".to_string()]);
        assert_eq!(partition_key_header(Some(&json!(null))), "[null]");
        assert_eq!(partition_key_header(Some(&json!(true))), "[true]");
    }
}
