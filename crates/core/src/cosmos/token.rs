//! The Cosmos DB master-key authorization token, built in-crate.
//!
//! String to sign (Microsoft, "Access control in the Azure Cosmos DB SQL API"):
//! `lower(verb) \n lower(resourceType) \n resourceLink \n lower(x-ms-date) \n \n`, signed with
//! HMAC-SHA256 under the base64-decoded account key; the header value is
//! `type=master&ver=1.0&sig=<base64 signature>`, URL-encoded as a whole.
//!
//! Nothing here reads the clock: the `x-ms-date` string is a parameter, so every token is
//! reproducible and pinned by known-answer tests.

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::url::encode_component;

/// A Cosmos DB account key (primary or secondary), already base64-decoded.
///
/// HMAC-SHA256 under the key is keyed once, at its first use (the key schedule is one SHA-256
/// block for each of the inner and outer pads), and the keyed state is cloned for every
/// signature; a request that signs nothing (a 401, a ping of `/healthz`) does not pay for it.
///
/// Its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey {
    decoded: Vec<u8>,
    mac: OnceLock<Hmac<Sha256>>,
}

/// The account key is not valid base64, or is empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Cosmos DB account key is not valid base64 (expected the primary or secondary key as shown by `az cosmosdb keys list`)")]
pub struct InvalidMasterKey;

impl MasterKey {
    /// Decodes an account key as Azure shows it (standard base64, with padding).
    pub fn from_base64(encoded: &str) -> Result<Self, InvalidMasterKey> {
        let decoded = BASE64
            .decode(encoded.trim().as_bytes())
            .map_err(|_| InvalidMasterKey)?;
        if decoded.is_empty() {
            return Err(InvalidMasterKey);
        }
        Ok(Self {
            decoded,
            mac: OnceLock::new(),
        })
    }

    /// HMAC-SHA256 under the key, cloned from the state keyed at first use.
    fn mac(&self) -> Hmac<Sha256> {
        self.mac
            .get_or_init(|| {
                <Hmac<Sha256> as KeyInit>::new_from_slice(&self.decoded)
                    .expect("HMAC-SHA256 accepts keys of any length")
            })
            .clone()
    }
}

impl MasterKey {
    /// A 32-byte secret derived from the key for another purpose (HMAC-SHA256 of `label`),
    /// so the key itself is never reused directly.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

/// What a master-key token is bound to: one verb on one resource at one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningScope<'a> {
    /// HTTP verb (`GET`, `POST`, ...); lower-cased for signing.
    pub verb: &'a str,
    /// Resource type (`dbs`, `colls`, `docs`, ...); lower-cased for signing.
    pub resource_type: &'a str,
    /// Name-based resource link without a leading slash, ids unescaped and in their own case:
    /// the *parent* link for feed operations (create, upsert, query on `.../docs`).
    pub resource_link: &'a str,
    /// The exact `x-ms-date` header value (RFC 1123, GMT); lower-cased for signing.
    pub date: &'a str,
}

impl SigningScope<'_> {
    /// The text that is signed. Not secret: useful to log when diagnosing a 401.
    pub fn string_to_sign(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n\n",
            self.verb.to_ascii_lowercase(),
            self.resource_type.to_ascii_lowercase(),
            self.resource_link,
            self.date.to_ascii_lowercase()
        )
    }
}

/// Base64 of HMAC-SHA256(key, string to sign): the `sig` part of the token.
pub fn signature(key: &MasterKey, scope: &SigningScope<'_>) -> String {
    let mut mac = key.mac();
    mac.update(scope.string_to_sign().as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value: `type=master&ver=1.0&sig=...`, URL-encoded as a whole.
pub fn authorization(key: &MasterKey, scope: &SigningScope<'_>) -> String {
    let token = format!("type=master&ver=1.0&sig={}", signature(key, scope));
    encode_component(&token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS_KEY: &str =
        "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";

    /// The date of Microsoft's published example.
    const DOCS_DATE: &str = "Thu, 27 Apr 2017 00:51:12 GMT";

    fn scope<'a>(verb: &'a str, ty: &'a str, link: &'a str, date: &'a str) -> SigningScope<'a> {
        SigningScope {
            verb,
            resource_type: ty,
            resource_link: link,
            date,
        }
    }

    /// Microsoft's published example ("Access control ... Example Encoding").
    /// If this regresses, master-key auth breaks against every Cosmos account.
    #[test]
    fn microsoft_published_vector() {
        let key = MasterKey::from_base64(DOCS_KEY).unwrap();
        let s = scope("GET", "dbs", "dbs/ToDoList", DOCS_DATE);
        assert_eq!(
            s.string_to_sign(),
            "get\ndbs\ndbs/ToDoList\nthu, 27 apr 2017 00:51:12 gmt\n\n"
        );
        assert_eq!(
            signature(&key, &s),
            "c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c="
        );
        // Microsoft shows lower-case hex (HttpUtility.UrlEncode); hex case is not significant.
        assert_eq!(
            authorization(&key, &s).to_ascii_lowercase(),
            "type%3dmaster%26ver%3d1.0%26sig%3dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2bc%2bc%3d"
                .to_ascii_lowercase()
        );
    }

    /// azure-sdk-for-rust `generate_authorization_for_primary_key_0` and `_1` (a truncated
    /// key): (key, resource type, link, date, signature).
    #[test]
    fn azure_sdk_for_rust_vectors() {
        for (key, ty, link, date, want) in [
            (
                "8F8xXXOptJxkblM1DBXW7a6NMI5oE8NnwPGYBmwxLCKfejOK7B7yhcCHMGvN3PBrlMLIOeol1Hv9RCdzAZR5sg==",
                "colls",
                "dbs/MyDatabase/colls/MyCollection",
                "Mon, 01 Jan 1900 01:00:00 GMT",
                "vrHmd02almbIg1e4htVWH+Eg/OhEHip3VTwFivZLH0A=",
            ),
            (
                "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxL",
                "dbs",
                "dbs/ToDoList",
                DOCS_DATE,
                "KvBM8vONofkv3yKm/8zD9MEGlbu6jjHDJBp4E9c2ZZI=",
            ),
        ] {
            let key = MasterKey::from_base64(key).unwrap();
            let s = scope("GET", ty, link, date);
            assert_eq!(signature(&key, &s), want, "{link}");
            assert_eq!(
                authorization(&key, &s),
                encode_component(&format!("type=master&ver=1.0&sig={want}"))
            );
        }
        assert_eq!(
            encode_component(
                "type=master&ver=1.0&sig=vrHmd02almbIg1e4htVWH+Eg/OhEHip3VTwFivZLH0A="
            ),
            "type%3Dmaster%26ver%3D1.0%26sig%3DvrHmd02almbIg1e4htVWH%2BEg%2FOhEHip3VTwFivZLH0A%3D"
        );
    }

    /// The date is lower-cased for signing only; a proper-case RFC 1123 date must sign the same
    /// as its lower-case form.
    #[test]
    fn date_is_lowercased_in_string_to_sign() {
        let key = MasterKey::from_base64(DOCS_KEY).unwrap();
        let upper = scope("GET", "DBS", "dbs/ToDoList", DOCS_DATE);
        let lower = scope(
            "get",
            "dbs",
            "dbs/ToDoList",
            "thu, 27 apr 2017 00:51:12 gmt",
        );
        assert_eq!(signature(&key, &upper), signature(&key, &lower));
    }

    /// The resource link keeps its case and is not URL-encoded.
    #[test]
    fn resource_link_is_signed_raw() {
        let s = scope("GET", "docs", "dbs/Acr/colls/Events/docs/a b+c", "x");
        assert!(s
            .string_to_sign()
            .contains("\ndbs/Acr/colls/Events/docs/a b+c\n"));
    }

    #[test]
    fn invalid_keys_are_refused() {
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(InvalidMasterKey)
        ));
        assert!(matches!(MasterKey::from_base64(""), Err(InvalidMasterKey)));
    }

    /// The keyed state is cloned per use, never consumed: signing other scopes in between, or
    /// deriving, does not change a later signature; `derive` is HMAC-SHA256 under the decoded key.
    #[test]
    fn keyed_state_is_reused_unchanged() {
        let key = MasterKey::from_base64(DOCS_KEY).unwrap();
        let s = scope("GET", "dbs", "dbs/ToDoList", DOCS_DATE);
        let first = signature(&key, &s);
        let _ = signature(&key, &scope("POST", "docs", "dbs/a/colls/b", "x"));
        let _ = key.derive(b"label");
        assert_eq!(signature(&key, &s), first);
        assert_eq!(first, "c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c=");

        let mut fresh =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&BASE64.decode(DOCS_KEY).unwrap()).unwrap();
        fresh.update(b"label");
        let want: [u8; 32] = fresh.finalize().into_bytes().into();
        assert_eq!(key.derive(b"label"), want);
        assert_ne!(key.derive(b"label"), key.derive(b"other label"));
    }

    #[test]
    fn debug_redacts_the_key() {
        let key = MasterKey::from_base64(DOCS_KEY).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey([REDACTED])");
    }
}
