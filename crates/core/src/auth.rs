//! The shared-key check: ACR signs nothing, so the sender proves itself with a key it was
//! configured to send (`az acr webhook create --headers "Authorization=Bearer <key>"`).
//!
//! Accepted, in this order of preference: `Authorization: Bearer <key>` (recommended),
//! `x-functions-key: <key>` and, for webhook keys only, `?code=<key>` (what webhooks set up for
//! the replaced Azure Function send; read keys never travel in a URL). Every presented value
//! is compared with every configured key in constant time (SHA-256 of both sides, compared
//! with `subtle`, so neither content nor length leaks).

use std::fmt;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::url::{decode_lenient, query_pairs};

/// The header an Azure Function key travels in.
pub const FUNCTIONS_KEY_HEADER: http::HeaderName = http::HeaderName::from_static("x-functions-key");
/// The query parameter an Azure Function key travels in.
pub const CODE_QUERY_PARAMETER: &str = "code";

/// The configured webhook keys (one or more). Debug never shows them.
#[derive(Clone)]
pub struct WebhookKeys {
    digests: Vec<[u8; 32]>,
}

/// Why a `webhook_keys` value is unusable (never contains the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWebhookKeys {
    /// Only commas and spaces.
    #[error("no key in the list (keys are separated by commas)")]
    Empty,
    /// A key contains a character that cannot travel in an HTTP header.
    #[error("a key contains a space or a control character; use printable ASCII without spaces")]
    Unprintable,
    /// A key is shorter than [`MIN_KEY_LENGTH`]: guessable, and too easily reused from a
    /// default or an example.
    #[error("a key is shorter than 16 characters; use a random one (e.g. `openssl rand -hex 32`)")]
    TooShort,
    /// A key is an example from the documentation: it contains `PLACEHOLDER` (any case, as
    /// every value of deploy/secret.example.yaml does) or is a published key
    /// ([`EXAMPLE_KEYS`]). Anyone can read it, so it admits anyone.
    #[error("a key is an example value (it contains PLACEHOLDER or is a published example key); use a random one (e.g. `openssl rand -hex 32`)")]
    Example,
}

/// Keys published in this repository's documentation and scripts that a configuration may
/// copy by mistake, besides the `PLACEHOLDER-…` values: the Cosmos DB emulator's well-known
/// account key (scripts/run-local.sh gives it to the local store). The development keys `make
/// run` prints are random for every run.
pub const EXAMPLE_KEYS: &[&str] =
    &["C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="];

/// The marker every example value in deploy/ carries.
const PLACEHOLDER: &[u8] = b"placeholder";

/// True when `key` is an example value: contains `PLACEHOLDER` (any case) or is one of
/// [`EXAMPLE_KEYS`].
fn is_example(key: &str) -> bool {
    key.as_bytes()
        .windows(PLACEHOLDER.len())
        .any(|w| w.eq_ignore_ascii_case(PLACEHOLDER))
        || EXAMPLE_KEYS.contains(&key)
}

/// The shortest key accepted, in characters (16 random hex characters are 64 bits).
pub const MIN_KEY_LENGTH: usize = 16;

/// HMAC-SHA256 of `label` under `key`: a 32-byte secret for another purpose, derived so that
/// the key itself is never used twice.
pub fn derive_secret(key: &[u8], label: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl WebhookKeys {
    /// A secret derived from every key of the list, in order ([`derive_secret`] under their
    /// digests): known only to whoever knows all the keys.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        derive_secret(&self.digests.concat(), label)
    }

    /// Parses a comma-separated list; blanks around keys are ignored.
    pub fn parse(list: &str) -> Result<Self, InvalidWebhookKeys> {
        let mut digests = Vec::new();
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(InvalidWebhookKeys::Unprintable);
            }
            if key.len() < MIN_KEY_LENGTH {
                return Err(InvalidWebhookKeys::TooShort);
            }
            if is_example(key) {
                return Err(InvalidWebhookKeys::Example);
            }
            digests.push(digest(key.as_bytes()));
        }
        if digests.is_empty() {
            return Err(InvalidWebhookKeys::Empty);
        }
        Ok(Self { digests })
    }

    /// Number of configured keys.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Never true: parsing refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when some key is in both lists (compared by digest).
    pub fn shares_a_key_with(&self, other: &WebhookKeys) -> bool {
        self.digests.iter().any(|d| other.digests.contains(d))
    }

    /// True when `presented` equals one of the keys. Constant time in the keys' content.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&presented)
            })
            .into()
    }
}

impl fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookKeys([REDACTED] x{})", self.digests.len())
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// True when the request carries one of the configured keys, in the bearer header, the
/// functions-key header or the `code` query parameter.
pub fn is_authorized(headers: &HeaderMap, query: Option<&str>, keys: &WebhookKeys) -> bool {
    let mut authorized = false;
    for value in headers.get_all(http::header::AUTHORIZATION) {
        if let Some(key) = bearer_token(value.as_bytes()) {
            authorized |= keys.accepts(key);
        }
    }
    for value in headers.get_all(FUNCTIONS_KEY_HEADER) {
        authorized |= !value.is_empty() && keys.accepts(value.as_bytes());
    }
    if let Some(query) = query {
        for code in query_values(query, CODE_QUERY_PARAMETER) {
            authorized |= !code.is_empty() && keys.accepts(&code);
        }
    }
    authorized
}

/// True when the query string has a `code` parameter, whatever its value. The read routes
/// refuse it: read keys travel in headers only.
pub fn has_code_parameter(query: Option<&str>) -> bool {
    query.is_some_and(|q| query_values(q, CODE_QUERY_PARAMETER).next().is_some())
}

/// `Bearer <token>` with the scheme matched case-insensitively (RFC 7235), one or more spaces.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let token = value[SCHEME.len()..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Values of `name` in a query string, percent-decoded (`+` is kept: keys are often base64).
fn query_values<'q>(query: &'q str, name: &'q str) -> impl Iterator<Item = Vec<u8>> + 'q {
    query_pairs(query)
        .filter(move |(k, _)| decode_lenient(k) == name.as_bytes())
        .map(|(_, v)| decode_lenient(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{TEST_WEBHOOK_KEY as K1, TEST_WEBHOOK_KEY_2 as K2};

    fn keys(list: &str) -> WebhookKeys {
        WebhookKeys::parse(list).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn accepted_forms() {
        let ks = keys(K1);
        let bearer = format!("Bearer {K1}");
        let lower = format!("bearer   {K1}");
        assert!(is_authorized(
            &headers(&[("authorization", &bearer)]),
            None,
            &ks
        ));
        assert!(is_authorized(
            &headers(&[("authorization", &lower)]),
            None,
            &ks
        ));
        assert!(is_authorized(
            &headers(&[("x-functions-key", K1)]),
            None,
            &ks
        ));
        let q = format!("a=1&code={K1}");
        assert!(is_authorized(&HeaderMap::new(), Some(&q), &ks));
    }

    #[test]
    fn refused_forms() {
        let ks = keys(K1);
        let mut changed = K1.as_bytes().to_vec();
        for i in 0..changed.len() {
            changed[i] ^= 1;
            let v = format!("Bearer {}", String::from_utf8_lossy(&changed));
            assert!(!is_authorized(
                &headers(&[("authorization", &v)]),
                None,
                &ks
            ));
            changed[i] ^= 1;
        }
        let prefix = format!("Bearer {}", &K1[..K1.len() - 1]);
        let longer = format!("Bearer {K1}x");
        let wrong_header = [("x-api-key", K1)];
        let no_scheme = [("authorization", K1)];
        let basic = format!("Basic {K1}");
        for h in [
            headers(&[]),
            headers(&[("authorization", "Bearer ")]),
            headers(&[("authorization", "Bearer")]),
            headers(&[("x-functions-key", "")]),
            headers(&[("authorization", &prefix)]),
            headers(&[("authorization", &longer)]),
            headers(&[("authorization", &basic)]),
            headers(&wrong_header),
            headers(&no_scheme),
        ] {
            assert!(!is_authorized(&h, None, &ks), "{h:?}");
        }
        for q in [
            "code=",
            "code",
            "secret=x",
            &format!("Code={K1}"),
            &format!("xcode={K1}"),
        ] {
            assert!(!is_authorized(&HeaderMap::new(), Some(q), &ks), "{q}");
        }
    }

    #[test]
    fn a_code_parameter_is_seen_whatever_its_value() {
        for q in ["code=x", "a=1&code=", "code", "a=1&%63ode=x"] {
            assert!(has_code_parameter(Some(q)), "{q}");
        }
        for q in [
            None,
            Some(""),
            Some("xcode=1"),
            Some("Code=1"),
            Some("codes=1"),
        ] {
            assert!(!has_code_parameter(q), "{q:?}");
        }
    }

    #[test]
    fn rotation_accepts_every_configured_key() {
        let ks = keys(&format!(" {K1} , {K2},"));
        assert_eq!(ks.len(), 2);
        assert!(ks.accepts(K1.as_bytes()));
        assert!(ks.accepts(K2.as_bytes()));
        assert!(!ks.accepts(b"rotated-out"));
    }

    #[test]
    fn query_code_is_percent_decoded_and_plus_is_kept() {
        let ks = keys("a+b/c==0123456789");
        assert!(is_authorized(
            &HeaderMap::new(),
            Some("code=a%2Bb%2Fc%3D%3D0123456789"),
            &ks
        ));
        assert!(is_authorized(
            &HeaderMap::new(),
            Some("code=a+b/c==0123456789"),
            &ks
        ));
        assert!(!is_authorized(
            &HeaderMap::new(),
            Some("code=a b/c==0123456789"),
            &ks
        ));
    }

    #[test]
    fn invalid_key_lists() {
        assert!(matches!(
            WebhookKeys::parse(" , ,"),
            Err(InvalidWebhookKeys::Empty)
        ));
        assert!(matches!(
            WebhookKeys::parse("has space"),
            Err(InvalidWebhookKeys::Unprintable)
        ));
    }

    #[test]
    fn keys_shorter_than_sixteen_characters_are_refused() {
        let fifteen = "abcdefghij12345";
        assert_eq!(
            WebhookKeys::parse(fifteen).unwrap_err(),
            InvalidWebhookKeys::TooShort
        );
        // One short key spoils a list of good ones: it would be accepted like the others.
        assert_eq!(
            WebhookKeys::parse(&format!("{K1},{fifteen}")).unwrap_err(),
            InvalidWebhookKeys::TooShort
        );
        assert!(WebhookKeys::parse(&format!("{fifteen}6")).is_ok());
        let message = InvalidWebhookKeys::TooShort.to_string();
        assert!(message.contains(&MIN_KEY_LENGTH.to_string()), "{message}");
        assert!(!message.contains(fifteen));
    }

    #[test]
    fn example_keys_are_refused() {
        for example in [
            "PLACEHOLDER-webhook-key",
            "PLACEHOLDER-read-key",
            "my-placeholder-key-0123",
            "xxPlaceHolderxxxxxxxx",
            EXAMPLE_KEYS[0],
        ] {
            assert_eq!(
                WebhookKeys::parse(example).unwrap_err(),
                InvalidWebhookKeys::Example,
                "{example}"
            );
            // One example spoils a list of good keys.
            assert_eq!(
                WebhookKeys::parse(&format!("{K1}, {example}")).unwrap_err(),
                InvalidWebhookKeys::Example
            );
        }
        let message = InvalidWebhookKeys::Example.to_string();
        assert!(message.contains("PLACEHOLDER"), "{message}");
        // Near misses are keys like any other.
        assert!(WebhookKeys::parse("place-holder-0123456789").is_ok());
        assert!(WebhookKeys::parse(&EXAMPLE_KEYS[0][1..]).is_ok());
    }

    #[test]
    fn lists_sharing_a_key() {
        assert!(keys(&format!("{K1},{K2}")).shares_a_key_with(&keys(K2)));
        assert!(!keys(K1).shares_a_key_with(&keys(K2)));
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(format!("{:?}", keys(K1)), "WebhookKeys([REDACTED] x1)");
    }
}
