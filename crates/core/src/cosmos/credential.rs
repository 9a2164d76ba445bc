//! What authorizes a Cosmos DB request, and the one place a request gets its `Authorization`.
//!
//! Two schemes, one header (Microsoft, "Access control in the Azure Cosmos DB SQL API" and
//! "Use data plane role-based access control with Azure Cosmos DB for NoSQL"):
//! - the master key: `type=master&ver=1.0&sig=<HMAC-SHA256 of the string to sign>`;
//! - a Microsoft Entra ID access token: `type=aad&ver=1.0&sig=<the token>`;
//!
//! each URL-encoded as a whole, with `x-ms-date` and `x-ms-version` sent either way. The
//! request builders ([`super::request`]) leave the header out and record what a master-key
//! signature is bound to ([`SigningTarget`]); [`Credential::sign`] adds it.

use http::{header, HeaderName, HeaderValue, Request};

use super::entra::{AccessToken, EntraSettings};
use super::token::{authorization, MasterKey, SigningScope};
use crate::url::encode_component;

/// Header: request date, RFC 1123 in GMT; part of what a master-key signature covers.
pub const X_MS_DATE: HeaderName = HeaderName::from_static("x-ms-date");

/// What a master-key signature of a request is bound to besides its verb and date: the
/// resource type and the resource link. Kept in the request's extensions by the builders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningTarget {
    /// Resource type (`dbs`, `colls`, `docs`, `pkranges`).
    pub resource_type: &'static str,
    /// Name-based resource link, ids raw (see [`SigningScope::resource_link`]).
    pub resource_link: String,
}

/// How the receiver authenticates to Cosmos DB (`cosmos_auth`), as configured.
#[derive(Debug, Clone)]
pub enum CosmosAuth {
    /// The account key (`cosmos_auth=key`, the default).
    Key(MasterKey),
    /// Microsoft Entra ID tokens (`cosmos_auth=entra`).
    Entra(EntraSettings),
}

impl CosmosAuth {
    /// The credential of `cosmos_auth=key`, which needs nothing fetched; `None` under Entra ID
    /// (see [`crate::signer::credential`]).
    pub fn key_credential(&self) -> Option<Credential> {
        match self {
            CosmosAuth::Key(key) => Some(Credential::Key(key.clone())),
            CosmosAuth::Entra(_) => None,
        }
    }
}

/// What signs the requests of one incoming request.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The account key (`cosmos_auth=key`).
    Key(MasterKey),
    /// An Entra ID access token (`cosmos_auth=entra`).
    Token(AccessToken),
}

impl Credential {
    /// The `Authorization` header value for a request with this verb, target and `x-ms-date`.
    pub fn authorization(&self, verb: &str, target: &SigningTarget, date: &str) -> String {
        match self {
            Credential::Key(key) => authorization(
                key,
                &SigningScope {
                    verb,
                    resource_type: target.resource_type,
                    resource_link: &target.resource_link,
                    date,
                },
            ),
            Credential::Token(token) => {
                encode_component(&format!("type=aad&ver=1.0&sig={}", token.secret()))
            }
        }
    }

    /// Adds (or replaces) the request's `Authorization`. A request that no builder of
    /// [`super::request`] made (no [`SigningTarget`], or no `x-ms-date`) is left unsigned, so
    /// that Cosmos DB refuses it with 401 rather than the receiver signing something else.
    pub fn sign(&self, request: &mut Request<Vec<u8>>) {
        let Some(target) = request.extensions().get::<SigningTarget>() else {
            return;
        };
        let Some(date) = request
            .headers()
            .get(X_MS_DATE)
            .and_then(|d| d.to_str().ok())
        else {
            return;
        };
        let value = self.authorization(request.method().as_str(), target, date);
        let value = HeaderValue::from_str(&value).expect("percent-encoded text is a header value");
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }

    /// Whether this is an Entra ID token (refreshed once when Cosmos DB answers 401 to it).
    pub fn is_token(&self) -> bool {
        matches!(self, Credential::Token(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS_KEY: &str =
        "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";
    const DATE: &str = "Thu, 27 Apr 2017 00:51:12 GMT";

    fn request() -> Request<Vec<u8>> {
        let mut request = Request::builder()
            .method("GET")
            .uri("https://a.documents.azure.com/dbs/ToDoList")
            .header(X_MS_DATE, DATE)
            .body(Vec::new())
            .unwrap();
        request.extensions_mut().insert(SigningTarget {
            resource_type: "dbs",
            resource_link: "dbs/ToDoList".into(),
        });
        request
    }

    /// Microsoft's published master-key example, through the request path.
    #[test]
    fn a_master_key_signs_verb_target_and_date() {
        let mut req = request();
        Credential::Key(MasterKey::from_base64(DOCS_KEY).unwrap()).sign(&mut req);
        assert_eq!(
            req.headers()["authorization"],
            "type%3Dmaster%26ver%3D1.0%26sig%3Dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2Bc%2Bc%3D"
        );
    }

    /// `type=aad&ver=1.0&sig=<token>`, URL-encoded as a whole (a JWT's `.`, `-` and `_` are
    /// unreserved and stay; anything else is encoded).
    #[test]
    fn a_token_is_sent_as_type_aad() {
        let mut req = request();
        Credential::Token(AccessToken::new("eyJ0.eyJh_b-c.s+g/=")).sign(&mut req);
        assert_eq!(
            req.headers()["authorization"],
            "type%3Daad%26ver%3D1.0%26sig%3DeyJ0.eyJh_b-c.s%2Bg%2F%3D"
        );
    }

    #[test]
    fn a_request_no_builder_made_is_not_signed() {
        let mut req = Request::builder()
            .uri("https://elsewhere.example/")
            .header(X_MS_DATE, DATE)
            .body(Vec::new())
            .unwrap();
        Credential::Token(AccessToken::new("t")).sign(&mut req);
        assert!(req.headers().get("authorization").is_none());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = AccessToken::new("eyJ-secret-token");
        assert_eq!(format!("{token:?}"), "AccessToken([REDACTED])");
        let shown = format!("{:?}", Credential::Token(token));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
