//! Microsoft Entra ID token sources for Cosmos DB, as data: the request each source sends for
//! an access token, and what its answer means. No I/O and no clock (the signer in
//! [`crate::signer`] sends them through the host, caches and refreshes).
//!
//! - Managed identity (Azure Instance Metadata Service, "How to use managed identities for
//!   Azure resources on an Azure VM to acquire an access token"):
//!   `GET {imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=<audience>[&client_id=…]`
//!   with `Metadata: true`; IMDS answers numbers as strings (`"expires_in": "86399"`).
//! - Client secret and workload identity (Microsoft identity platform, "OAuth 2.0 client
//!   credentials flow"): `POST {authority}/{tenant}/oauth2/v2.0/token`, form-encoded
//!   `grant_type=client_credentials`, `client_id`, `scope=<audience>/.default` and either
//!   `client_secret`, or `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//!   with `client_assertion=<the federated token AKS mounts>`.
//!
//! The audience is the account's own `https://<account>.documents.azure.com`; an account whose
//! tenant does not know that resource answers `AADSTS500011`, and the request is made again for
//! `https://cosmos.azure.com`, as Microsoft's SDKs do.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, Method, Request, StatusCode};

use crate::url::encode_component;

/// Header: the Azure Instance Metadata Service refuses requests without `Metadata: true`
/// (a guard against server-side request forgery). A constant: a name given as text would be
/// parsed at run time, which links http's table of every standard header (12 KB of wasm).
const METADATA: http::HeaderName = http::HeaderName::from_static("metadata");

/// A bearer access token for Cosmos DB issued by Microsoft Entra ID. A credential: its
/// `Debug` never shows it, and it is never logged or answered.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token as the token endpoint issued it.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself (for the header and the cache only).
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

/// The audience every account accepts, asked for when the account's own is unknown to the
/// tenant (`AADSTS500011`).
pub const FALLBACK_AUDIENCE: &str = "https://cosmos.azure.com";
/// The IMDS API version the managed identity request names.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// `client_assertion_type` of a federated (workload identity) token.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra's code for "the resource principal was not found in the tenant".
pub const AUDIENCE_NOT_FOUND: &str = "AADSTS500011";

/// A client secret: redacted in `Debug`, never in a URL (it goes in the form body).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps the secret as configured.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([REDACTED])")
    }
}

/// How the receiver gets Entra ID tokens (`cosmos_auth=entra`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraSettings {
    /// Where tokens come from.
    pub source: TokenSource,
    /// `entra_audience` when set; otherwise the account's own, with [`FALLBACK_AUDIENCE`]
    /// after `AADSTS500011`.
    pub audience: Option<String>,
}

impl EntraSettings {
    /// The audience to ask for first, and the one to ask for when the tenant does not know
    /// it (only when no audience was configured).
    pub fn audiences(&self, endpoint: &str) -> (String, Option<&'static str>) {
        match &self.audience {
            Some(audience) => (audience.trim_end_matches('/').to_owned(), None),
            None => (account_audience(endpoint), Some(FALLBACK_AUDIENCE)),
        }
    }
}

/// Where access tokens come from (`entra_token_source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The Azure Instance Metadata Service of the VM or node (`managed-identity`).
    ManagedIdentity {
        /// `http://169.254.169.254` in Azure (a loopback address in tests).
        imds_endpoint: String,
        /// A user-assigned identity's client id; `None` for the system-assigned one.
        client_id: Option<String>,
    },
    /// An app registration's client secret (`client-secret`).
    ClientSecret {
        /// `https://login.microsoftonline.com` in the public cloud.
        authority_host: String,
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The secret.
        secret: ClientSecret,
    },
    /// AKS workload identity: a federated token read from a file that rotates
    /// (`workload-identity`).
    WorkloadIdentity {
        /// As for the client secret.
        authority_host: String,
        /// Directory (tenant) id.
        tenant_id: String,
        /// The client id of the identity the service account is federated with.
        client_id: String,
        /// Path of the federated token (`AZURE_FEDERATED_TOKEN_FILE`), read again for every
        /// token request.
        token_file: String,
    },
}

impl TokenSource {
    /// The `entra_token_source` value naming this source.
    pub fn name(&self) -> &'static str {
        match self {
            TokenSource::ManagedIdentity { .. } => "managed-identity",
            TokenSource::ClientSecret { .. } => "client-secret",
            TokenSource::WorkloadIdentity { .. } => "workload-identity",
        }
    }

    /// The federated token file, for the source that reads one.
    pub fn token_file(&self) -> Option<&str> {
        match self {
            TokenSource::WorkloadIdentity { token_file, .. } => Some(token_file),
            _ => None,
        }
    }

    /// The key under which a token of this source for `audience` is cached: the source, its
    /// identity and the audience; never a secret.
    pub fn cache_key(&self, audience: &str) -> String {
        let (tenant, client) = match self {
            TokenSource::ManagedIdentity { client_id, .. } => ("", client_id.as_deref()),
            TokenSource::ClientSecret {
                tenant_id,
                client_id,
                ..
            }
            | TokenSource::WorkloadIdentity {
                tenant_id,
                client_id,
                ..
            } => (tenant_id.as_str(), Some(client_id.as_str())),
        };
        format!(
            "acr-webhook/entra-token/v1/{}/{}/{}/{}",
            self.name(),
            tenant,
            client.unwrap_or("system-assigned"),
            audience
        )
    }

    /// The request for an access token to `audience` (`https://…` without `/.default`).
    /// `federated_token` is the workload identity file's content, read just before.
    pub fn token_request(&self, audience: &str, federated_token: Option<&str>) -> Request<Vec<u8>> {
        match self {
            TokenSource::ManagedIdentity {
                imds_endpoint,
                client_id,
            } => {
                let mut uri = format!(
                    "{}/metadata/identity/oauth2/token?api-version={IMDS_API_VERSION}&resource={}",
                    imds_endpoint.trim_end_matches('/'),
                    encode_component(audience)
                );
                if let Some(id) = client_id {
                    uri.push_str("&client_id=");
                    uri.push_str(&encode_component(id));
                }
                Request::builder()
                    .method(Method::GET)
                    .uri(uri)
                    .header(METADATA, "true")
                    .header(header::ACCEPT, "application/json")
                    .body(Vec::new())
            }
            TokenSource::ClientSecret {
                authority_host,
                tenant_id,
                client_id,
                secret,
            } => v2_request(
                authority_host,
                tenant_id,
                client_id,
                audience,
                &[("client_secret", &secret.0)],
            ),
            TokenSource::WorkloadIdentity {
                authority_host,
                tenant_id,
                client_id,
                ..
            } => v2_request(
                authority_host,
                tenant_id,
                client_id,
                audience,
                &[
                    ("client_assertion_type", JWT_BEARER),
                    (
                        "client_assertion",
                        federated_token.unwrap_or_default().trim(),
                    ),
                ],
            ),
        }
        .expect("token requests built here are valid HTTP")
    }
}

/// `POST {authority}/{tenant}/oauth2/v2.0/token` with the client credentials grant.
fn v2_request(
    authority_host: &str,
    tenant_id: &str,
    client_id: &str,
    audience: &str,
    proof: &[(&str, &str)],
) -> http::Result<Request<Vec<u8>>> {
    let scope = format!("{}/.default", audience.trim_end_matches('/'));
    let mut form = format!(
        "grant_type=client_credentials&client_id={}&scope={}",
        encode_component(client_id),
        encode_component(&scope)
    );
    for (name, value) in proof {
        form.push('&');
        form.push_str(name);
        form.push('=');
        form.push_str(&encode_component(value));
    }
    Request::builder()
        .method(Method::POST)
        .uri(format!(
            "{}/{}/oauth2/v2.0/token",
            authority_host.trim_end_matches('/'),
            encode_component(tenant_id)
        ))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(form.into_bytes())
}

/// The audience of an account endpoint: `https://<host>` without port or path
/// (`https://myaccount.documents.azure.com:443` → `https://myaccount.documents.azure.com`).
pub fn account_audience(endpoint: &str) -> String {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rfind(':') {
        Some(colon) if !authority.ends_with(']') => &authority[..colon],
        _ => authority,
    };
    format!("https://{host}")
}

/// The id of the built-in data-plane role "Cosmos DB Built-in Data Contributor".
pub const DATA_CONTRIBUTOR_ROLE: &str = "00000000-0000-0000-0000-000000000002";

/// The account name of an endpoint: the first label of its host
/// (`https://myaccount.documents.azure.com:443` → `myaccount`).
pub fn account_name(endpoint: &str) -> String {
    let audience = account_audience(endpoint);
    let host = &audience["https://".len()..];
    host.split('.').next().unwrap_or(host).to_owned()
}

/// The `az` command that grants a principal the data-plane role the receiver needs, on the
/// whole account (`--scope /`); `<resource-group>` and `<principal-object-id>` are left for the
/// reader (the identity's object id, not its client id).
pub fn role_assignment_command(endpoint: &str) -> String {
    format!(
        "az cosmosdb sql role assignment create --account-name {} --resource-group <resource-group> \
         --role-definition-id {DATA_CONTRIBUTOR_ROLE} --principal-id <principal-object-id> --scope /",
        account_name(endpoint)
    )
}

/// What to do when Cosmos DB refuses a valid token for want of a role (403, sub-status 5301).
pub fn role_assignment_advice(endpoint: &str) -> String {
    format!(
        "the identity holds no data-plane role on this account: grant it \
         Cosmos DB Built-in Data Contributor with `{}`",
        role_assignment_command(endpoint)
    )
}

/// An access token and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token.
    pub token: AccessToken,
    /// When it stops being accepted.
    pub expires_at: SystemTime,
}

impl IssuedToken {
    /// Whether it is still worth using at `now`: more than `ahead` before its expiry.
    pub fn fresh_at(&self, now: SystemTime, ahead: Duration) -> bool {
        now + ahead < self.expires_at
    }

    /// The cache entry: `<expiry in unix seconds>\n<token>`.
    pub fn to_cache_entry(&self) -> Vec<u8> {
        let secs = self
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{secs}\n{}", self.token.secret()).into_bytes()
    }

    /// Reads a cache entry [`IssuedToken::to_cache_entry`] wrote; `None` for anything else.
    pub fn from_cache_entry(entry: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(entry).ok()?;
        let (secs, token) = text.split_once('\n')?;
        let secs: u64 = secs.parse().ok()?;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        Some(Self {
            token: AccessToken::new(token),
            expires_at: UNIX_EPOCH + Duration::from_secs(secs),
        })
    }
}

/// Why no token came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The endpoint failed or is throttling (5xx, 429, IMDS's 404 and 410 while it starts),
    /// or answered something unusable: worth trying again.
    Unavailable(String),
    /// The tenant does not know the audience (`AADSTS500011`).
    AudienceNotFound,
    /// Entra refused the credentials (`invalid_client`, `unauthorized_client`, an unknown
    /// identity, ...): trying again will not help.
    Refused {
        /// The OAuth `error` (`invalid_client`, `invalid_request`, ...).
        error: String,
        /// The `AADSTS…` code from the description, when there is one.
        aadsts: Option<String>,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Unavailable(why) => write!(f, "{why}"),
            TokenError::AudienceNotFound => write!(
                f,
                "Microsoft Entra ID does not know the audience ({AUDIENCE_NOT_FOUND})"
            ),
            TokenError::Refused { error, aadsts } => {
                write!(f, "Microsoft Entra ID refused the credentials: {error}")?;
                if let Some(code) = aadsts {
                    write!(f, " ({code})")?;
                }
                Ok(())
            }
        }
    }
}

/// What a token endpoint's answer means, at `now` (the expiry is `now + expires_in`).
pub fn read_token_answer(
    status: StatusCode,
    body: &[u8],
    now: SystemTime,
) -> Result<IssuedToken, TokenError> {
    #[derive(Default)]
    struct Answer {
        access_token: Option<String>,
        expires_in: Option<serde_json::Value>,
        error: Option<String>,
        description: Option<String>,
    }
    crate::json::json_fields!(Answer {
        "access_token" => access_token: Text,
        "expires_in" => expires_in: Value,
        "error" => error: Text,
        "error_description" => description: Text,
    });
    let mut answer = Answer::default();
    let read = crate::json::read_object(body, &mut answer).is_ok();
    if status.is_success() {
        let token = answer
            .access_token
            .filter(|t| read && !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
        // IMDS sends `"86399"`, the v2 endpoint `3599`.
        let expires_in = match answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        return match (token, expires_in) {
            (Some(token), Some(secs)) => Ok(IssuedToken {
                token: AccessToken::new(token),
                expires_at: now + Duration::from_secs(secs),
            }),
            _ => Err(TokenError::Unavailable(format!(
                "the token endpoint answered {status} without a usable access_token and expires_in"
            ))),
        };
    }
    let aadsts = answer.description.as_deref().and_then(aadsts_code);
    if aadsts.as_deref() == Some(AUDIENCE_NOT_FOUND) {
        return Err(TokenError::AudienceNotFound);
    }
    let transient = status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT | StatusCode::GONE
        )
        || (status == StatusCode::NOT_FOUND && answer.error.is_none());
    match answer.error.filter(|_| read && !transient) {
        Some(error) => Err(TokenError::Refused {
            error: crate::text::printable_n(&error, 64),
            aadsts,
        }),
        None => Err(TokenError::Unavailable(format!(
            "the token endpoint answered {status}"
        ))),
    }
}

/// The first `AADSTS<digits>` in an error description.
fn aadsts_code(description: &str) -> Option<String> {
    let start = description.find("AADSTS")?;
    let digits: String = description[start + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .take(12)
        .collect();
    (!digits.is_empty()).then(|| format!("AADSTS{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_source() -> TokenSource {
        TokenSource::ClientSecret {
            authority_host: "https://login.microsoftonline.com/".into(),
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "6731de76-14a6-49ae-97bc-6eba6914391e".into(),
            secret: ClientSecret::new("sec+ret/with=chars&more"),
        }
    }

    #[test]
    fn managed_identity_asks_imds_with_metadata_true() {
        let source = TokenSource::ManagedIdentity {
            imds_endpoint: "http://169.254.169.254".into(),
            client_id: Some("a-b".into()),
        };
        let req = source.token_request("https://acct.documents.azure.com", None);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(
            req.uri(),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Facct.documents.azure.com&client_id=a-b"
        );
        assert_eq!(req.headers()["metadata"], "true");
        assert!(req.body().is_empty());
    }

    #[test]
    fn a_client_secret_goes_in_the_form_body_never_the_url() {
        let req = secret_source().token_request("https://cosmos.azure.com", None);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(
            req.uri(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        assert_eq!(
            req.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            std::str::from_utf8(req.body()).unwrap(),
            "grant_type=client_credentials&client_id=6731de76-14a6-49ae-97bc-6eba6914391e\
             &scope=https%3A%2F%2Fcosmos.azure.com%2F.default\
             &client_secret=sec%2Bret%2Fwith%3Dchars%26more"
        );
        assert!(!req.uri().to_string().contains("sec"));
        assert!(!format!("{:?}", secret_source()).contains("sec+ret"));
    }

    #[test]
    fn workload_identity_sends_the_federated_token_as_assertion() {
        let source = TokenSource::WorkloadIdentity {
            authority_host: "https://login.microsoftonline.com".into(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
        };
        let req = source.token_request("https://a.documents.azure.com", Some("eyJ.fed.tok\n"));
        assert_eq!(
            std::str::from_utf8(req.body()).unwrap(),
            "grant_type=client_credentials&client_id=c\
             &scope=https%3A%2F%2Fa.documents.azure.com%2F.default\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion=eyJ.fed.tok"
        );
        assert_eq!(
            source.token_file(),
            Some("/var/run/secrets/azure/tokens/azure-identity-token")
        );
    }

    #[test]
    fn the_audience_is_the_account_host() {
        assert_eq!(
            account_audience("https://acct.documents.azure.com:443"),
            "https://acct.documents.azure.com"
        );
        assert_eq!(
            account_audience("https://acct.documents.azure.com"),
            "https://acct.documents.azure.com"
        );
        assert_eq!(
            account_audience("http://127.0.0.1:8081"),
            "https://127.0.0.1"
        );
    }

    #[test]
    fn imds_numbers_are_strings_and_v2_numbers_are_numbers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let imds = br#"{"access_token":"eyJ.a.b","refresh_token":"","expires_in":"86399","expires_on":"1700000000","resource":"https://x","token_type":"Bearer"}"#;
        let t = read_token_answer(StatusCode::OK, imds, now).unwrap();
        assert_eq!(t.token.secret(), "eyJ.a.b");
        assert_eq!(t.expires_at, now + Duration::from_secs(86_399));
        let v2 = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ.c.d"}"#;
        let t = read_token_answer(StatusCode::OK, v2, now).unwrap();
        assert_eq!(t.expires_at, now + Duration::from_secs(3_599));
        assert!(matches!(
            read_token_answer(StatusCode::OK, b"{}", now),
            Err(TokenError::Unavailable(_))
        ));
    }

    #[test]
    fn entra_refusals_unknown_audiences_and_outages_are_told_apart() {
        let now = UNIX_EPOCH;
        let bad_secret = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.","error_codes":[7000215]}"#;
        assert_eq!(
            read_token_answer(StatusCode::UNAUTHORIZED, bad_secret, now),
            Err(TokenError::Refused {
                error: "invalid_client".into(),
                aadsts: Some("AADSTS7000215".into())
            })
        );
        let unknown = br#"{"error":"invalid_resource","error_description":"AADSTS500011: The resource principal named https://a.documents.azure.com was not found in the tenant named contoso."}"#;
        assert_eq!(
            read_token_answer(StatusCode::BAD_REQUEST, unknown, now),
            Err(TokenError::AudienceNotFound)
        );
        for status in [500, 503, 429, 410, 404] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(matches!(
                read_token_answer(status, b"", now),
                Err(TokenError::Unavailable(_))
            ));
        }
        let imds = br#"{"error":"invalid_request","error_description":"Identity not found"}"#;
        assert!(matches!(
            read_token_answer(StatusCode::BAD_REQUEST, imds, now),
            Err(TokenError::Refused { aadsts: None, .. })
        ));
    }

    #[test]
    fn cache_entries_round_trip_and_keys_hold_no_secret() {
        let t = IssuedToken {
            token: AccessToken::new("eyJ.x.y"),
            expires_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        assert_eq!(IssuedToken::from_cache_entry(&t.to_cache_entry()), Some(t));
        assert_eq!(IssuedToken::from_cache_entry(b"garbage"), None);
        assert_eq!(IssuedToken::from_cache_entry(b"12\n"), None);
        let key = secret_source().cache_key("https://a.documents.azure.com");
        assert!(
            !key.contains("sec+ret") && !key.contains("sec%2Bret"),
            "{key}"
        );
        assert!(key.contains("client-secret") && key.contains("https://a.documents.azure.com"));
    }

    #[test]
    fn tokens_are_refreshed_ahead_of_expiry() {
        let t = IssuedToken {
            token: AccessToken::new("x"),
            expires_at: UNIX_EPOCH + Duration::from_secs(3_600),
        };
        let ahead = Duration::from_secs(300);
        assert!(t.fresh_at(UNIX_EPOCH + Duration::from_secs(3_000), ahead));
        assert!(!t.fresh_at(UNIX_EPOCH + Duration::from_secs(3_301), ahead));
    }
}
