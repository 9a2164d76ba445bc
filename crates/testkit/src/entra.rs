//! A fake Microsoft Entra ID on a free 127.0.0.1 port, answering both ways a workload gets an
//! access token, with real signed tokens that [`crate::LockedStore`] checks:
//!
//! - managed identity, as the VM's Instance Metadata Service (IMDS) answers it:
//!   `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=AUDIENCE[&client_id=…]`
//!   with header `Metadata: true`;
//! - the v2.0 token endpoint, client credentials grant:
//!   `POST /{tenant}/oauth2/v2.0/token`, form body `grant_type=client_credentials`,
//!   `client_id`, `scope=AUDIENCE/.default`, and `client_secret` or
//!   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` +
//!   `client_assertion` (workload identity: a service-account token the fake's "cluster"
//!   signed, read from the file AKS mounts at `AZURE_FEDERATED_TOKEN_FILE`).
//!
//! Tokens are JWTs signed with HS256 under a key the fake holds (real Entra signs RS256; the
//! difference does not matter to a client, which never checks the signature). Their claims are
//! those of a v1.0 app-only token (the version Cosmos DB's resource asks for): `aud`, `iss`
//! (`https://sts.windows.net/{tenant}/`), `iat`, `nbf`, `exp`, `appid`, `appidacr`, `idp`,
//! `idtyp`, `oid`, `sub`, `tid`, `uti`, `ver`. [`TokenValidator`] checks signature, issuer,
//! revocation, time and audience.
//!
//! Answers follow what the real services send (sources cited at each one): IMDS numbers are
//! strings (`"expires_in": "3600"`), v2.0 numbers are numbers; errors are Entra's
//! `{"error","error_description","error_codes","timestamp","trace_id","correlation_id",
//! "error_uri"}` with the AADSTS code and message. Failures on demand: [`FakeEntra::fail_next`]
//! (a status such as 500 or 503, or a closed connection, for the next N requests),
//! [`FakeEntra::go_down`] (connections refused), [`FakeEntra::set_delay`] (slow answers),
//! [`FakeEntra::rotate_client_secret`] (the secret the client holds becomes wrong:
//! `invalid_client`), [`FakeEntra::set_audiences`] (which resources exist: others get
//! `AADSTS500011`), [`FederatedTokenFile::rotate`] (the previous service-account token is then
//! refused, catching a client that does not re-read the file).
//!
//! ```no_run
//! use acr_webhook_testkit::{http, FakeEntra, COSMOS_AUDIENCE};
//! use std::time::SystemTime;
//!
//! let entra = FakeEntra::start();
//! // Managed identity (IMDS):
//! let url = format!("{}?api-version=2018-02-01&resource={COSMOS_AUDIENCE}", entra.imds_endpoint());
//! let r = http::request("GET", &url, &[("Metadata", "true")], None).unwrap();
//! let token = r.json().unwrap()["access_token"].as_str().unwrap().to_string();
//! let claims = entra.validate(&token, SystemTime::now()).unwrap();
//! assert_eq!(claims.oid, entra.system_identity().object_id);
//! // Workload identity: the variables a client on AKS reads.
//! let file = entra.federated_token_file();
//! for (name, value) in entra.workload_identity_env(&file) {
//!     println!("{name}={value}"); // AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE
//! }
//! file.rotate(); // the token the client read before is now refused
//! assert_eq!(entra.stats().issued_managed_identity, 1);
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::http_server::{form_pairs, Action, HttpServer, Reply, Request};

/// The Cosmos DB audience valid for every account: `https://cosmos.azure.com`.
pub const COSMOS_AUDIENCE: &str = "https://cosmos.azure.com";

/// The audience of a service-account token exchanged for an Entra token (workload identity
/// federation): `api://AzureADTokenExchange`.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The service account the fake's federated credential trusts, as AKS names it:
/// `system:serviceaccount:NAMESPACE:NAME`.
pub const SERVICE_ACCOUNT_SUBJECT: &str = "system:serviceaccount:default:acr-webhook";

/// The IMDS API version the fake requires (the one Microsoft's examples use).
pub const IMDS_API_VERSION: &str = "2018-02-01";

/// The IMDS token path.
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// How a token was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// IMDS (`GET /metadata/identity/oauth2/token`).
    ManagedIdentity,
    /// v2.0 token endpoint with `client_secret`.
    ClientSecret,
    /// v2.0 token endpoint with a federated `client_assertion` (workload identity).
    ClientAssertion,
}

/// What kind of principal a [`Principal`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// The VM's system-assigned managed identity: IMDS's answer when no `client_id` is given.
    SystemAssignedIdentity,
    /// A user-assigned managed identity: IMDS with `client_id=` (or `object_id=`) its id.
    UserAssignedIdentity,
    /// An app registration (service principal) with a client secret and a federated
    /// credential for [`SERVICE_ACCOUNT_SUBJECT`] of the fake's cluster.
    Application,
}

/// A principal the fake knows. Its `object_id` is the `oid` of its tokens, the id Cosmos DB
/// role assignments name; `client_id` is the `appid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// What it is.
    pub kind: PrincipalKind,
    /// Application (client) id.
    pub client_id: String,
    /// Object id (of the service principal).
    pub object_id: String,
}

/// The claims of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Audience (the resource asked for, as asked).
    pub aud: String,
    /// Issuer, `https://sts.windows.net/{tenant}/`.
    pub iss: String,
    /// Tenant id.
    pub tid: String,
    /// Object id of the principal.
    pub oid: String,
    /// Client id of the principal.
    pub appid: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before (Unix seconds).
    pub nbf: u64,
    /// Expires at (Unix seconds): invalid from this second on.
    pub exp: u64,
    /// Unique token id.
    pub uti: String,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url parts of JSON with `alg: HS256` and the expected claims.
    Malformed,
    /// The signature is not the fake's (forged or altered).
    BadSignature,
    /// Signed by the fake but for another issuer (not possible with tokens it issues; kept
    /// for forged claims signed with a stolen key).
    WrongIssuer {
        /// The `iss` claim.
        issuer: String,
    },
    /// Revoked with [`FakeEntra::revoke`] or [`FakeEntra::revoke_all`].
    Revoked,
    /// `now < nbf`.
    NotYetValid {
        /// The `nbf` claim.
        nbf: u64,
        /// The time checked (Unix seconds).
        now: u64,
    },
    /// `now >= exp`.
    Expired {
        /// The `exp` claim.
        exp: u64,
        /// The time checked (Unix seconds).
        now: u64,
    },
    /// The audience is not one accepted.
    WrongAudience {
        /// The `aud` claim.
        audience: String,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed => f.write_str("malformed token"),
            Rejection::BadSignature => f.write_str("bad signature"),
            Rejection::WrongIssuer { issuer } => write!(f, "untrusted issuer {issuer}"),
            Rejection::Revoked => f.write_str("revoked"),
            Rejection::NotYetValid { nbf, now } => write!(f, "not valid before {nbf} (now {now})"),
            Rejection::Expired { exp, now } => write!(f, "expired at {exp} (now {now})"),
            Rejection::WrongAudience { audience } => write!(f, "audience {audience} not accepted"),
        }
    }
}

/// A failure the fake answers instead of a token (see [`FakeEntra::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Answer this status (e.g. 500, 503, 429) with an error body of the protocol asked:
    /// Entra's `temporarily_unavailable` on the v2.0 endpoint, IMDS's `unknown` error on IMDS.
    Status(u16),
    /// Read the request, then close the connection without answering.
    Close,
}

/// One token request the fake answered (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// How it was asked (`None`: neither IMDS nor a recognisable v2.0 credential).
    pub protocol: Option<Protocol>,
    /// The `client_id` sent (IMDS: only if one was).
    pub client_id: Option<String>,
    /// The audience asked for (`resource`, or `scope` without `/.default`).
    pub audience: Option<String>,
    /// The status answered (0: the connection was closed unanswered).
    pub status: u16,
    /// The error answered: `invalid_client`, `invalid_resource`, `bad_request_102`, ...
    pub error: Option<String>,
    /// The AADSTS code of the error, if it has one (e.g. 7000215, 500011).
    pub aadsts: Option<u32>,
}

/// One token the fake issued over HTTP (the token itself is not kept here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// How it was asked.
    pub protocol: Protocol,
    /// Its `appid`.
    pub client_id: String,
    /// Its `oid`.
    pub object_id: String,
    /// Its `aud`.
    pub audience: String,
    /// Its `uti`.
    pub token_id: String,
    /// `iat` (Unix seconds).
    pub issued_at: u64,
    /// `exp` (Unix seconds).
    pub expires_at: u64,
}

/// Counters of a [`FakeEntra`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntraStats {
    /// HTTP requests read (any path), injected failures included.
    pub requests: u64,
    /// Tokens issued by IMDS.
    pub issued_managed_identity: u64,
    /// Tokens issued for a client secret.
    pub issued_client_secret: u64,
    /// Tokens issued for a federated client assertion.
    pub issued_client_assertion: u64,
    /// Requests refused with a 4xx error (bad credentials, unknown resource, missing header...).
    pub refused: u64,
    /// Failures injected by [`FakeEntra::fail_next`].
    pub injected: u64,
}

impl EntraStats {
    /// Tokens issued by `protocol`.
    pub fn issued(&self, protocol: Protocol) -> u64 {
        match protocol {
            Protocol::ManagedIdentity => self.issued_managed_identity,
            Protocol::ClientSecret => self.issued_client_secret,
            Protocol::ClientAssertion => self.issued_client_assertion,
        }
    }

    /// Tokens issued in all.
    pub fn total_issued(&self) -> u64 {
        self.issued_managed_identity + self.issued_client_secret + self.issued_client_assertion
    }
}

struct State {
    tenant: String,
    key: [u8; 32],
    cluster_key: [u8; 32],
    cluster_issuer: String,
    system_identity: Principal,
    user_identity: Principal,
    app: Principal,
    m: Mutex<Mutable>,
}

struct Mutable {
    client_secret: String,
    audiences: Vec<String>,
    lifetime: Duration,
    outages: VecDeque<Outage>,
    delay: Duration,
    /// `uti` of every token minted, for [`FakeEntra::revoke_all`].
    minted: Vec<String>,
    revoked: HashSet<String>,
    /// `jti` of service-account tokens rotated out, and when (Unix seconds).
    retired_assertions: HashMap<String, u64>,
    issued: Vec<IssuedToken>,
    requests: Vec<TokenRequest>,
    stats: EntraStats,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Mutable> {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn issuer(&self) -> String {
        format!("https://sts.windows.net/{}/", self.tenant)
    }

    /// Mints an access token for `principal` and `audience`.
    fn mint(
        &self,
        principal: &Principal,
        audience: &str,
        issued_at: u64,
        lifetime: Duration,
        appidacr: &str,
    ) -> (String, Claims) {
        let uti = BASE64URL.encode(random_bytes::<16>());
        let claims = Claims {
            aud: audience.to_string(),
            iss: self.issuer(),
            tid: self.tenant.clone(),
            oid: principal.object_id.clone(),
            appid: principal.client_id.clone(),
            iat: issued_at,
            nbf: issued_at,
            exp: issued_at + lifetime.as_secs(),
            uti: uti.clone(),
        };
        let payload = json!({
            "aud": claims.aud,
            "iss": claims.iss,
            "iat": claims.iat,
            "nbf": claims.nbf,
            "exp": claims.exp,
            "appid": claims.appid,
            "appidacr": appidacr,
            "idp": claims.iss,
            "idtyp": "app",
            "oid": claims.oid,
            "sub": claims.oid,
            "tid": claims.tid,
            "uti": uti,
            "ver": "1.0",
        });
        self.lock().minted.push(claims.uti.clone());
        (sign_jwt(&self.key, &payload), claims)
    }

    fn validate(
        &self,
        token: &str,
        now: SystemTime,
        audiences: &[String],
    ) -> Result<Claims, Rejection> {
        let payload = verify_jwt(&self.key, token)?;
        let s = |name: &str| {
            payload[name]
                .as_str()
                .map(str::to_string)
                .ok_or(Rejection::Malformed)
        };
        let n = |name: &str| payload[name].as_u64().ok_or(Rejection::Malformed);
        let claims = Claims {
            aud: s("aud")?,
            iss: s("iss")?,
            tid: s("tid")?,
            oid: s("oid")?,
            appid: s("appid")?,
            iat: n("iat")?,
            nbf: n("nbf")?,
            exp: n("exp")?,
            uti: s("uti")?,
        };
        if claims.iss != self.issuer() {
            return Err(Rejection::WrongIssuer { issuer: claims.iss });
        }
        if self.lock().revoked.contains(&claims.uti) {
            return Err(Rejection::Revoked);
        }
        let now = unix(now);
        if now < claims.nbf {
            return Err(Rejection::NotYetValid {
                nbf: claims.nbf,
                now,
            });
        }
        if now >= claims.exp {
            return Err(Rejection::Expired {
                exp: claims.exp,
                now,
            });
        }
        if !audiences.iter().any(|a| audience_matches(a, &claims.aud)) {
            return Err(Rejection::WrongAudience {
                audience: claims.aud,
            });
        }
        Ok(claims)
    }

    fn mint_service_account_token(
        &self,
        subject: &str,
        issued_at: u64,
        lifetime: Duration,
    ) -> (String, String) {
        let jti = uuid();
        let payload = json!({
            "aud": [TOKEN_EXCHANGE_AUDIENCE],
            "iss": self.cluster_issuer,
            "sub": subject,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + lifetime.as_secs(),
            "jti": jti,
            "kubernetes.io": {
                "namespace": subject.split(':').nth(2).unwrap_or_default(),
                "serviceaccount": { "name": subject.split(':').nth(3).unwrap_or_default() },
            },
        });
        (sign_jwt(&self.cluster_key, &payload), jti)
    }
}

/// Checks tokens the way a resource does: signature (the fake's key), issuer, revocation,
/// `nbf`/`exp` against a given time, and audience. Cheap to clone; shares the fake's state
/// (revocations made later apply), and keeps working after the [`FakeEntra`] is dropped.
#[derive(Clone)]
pub struct TokenValidator {
    state: Arc<State>,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator")
            .field("issuer", &self.state.issuer())
            .finish_non_exhaustive()
    }
}

impl TokenValidator {
    /// Validates `token` at `now` with an audience among the resources the fake Entra knows
    /// now ([`FakeEntra::audiences`], patterns included).
    pub fn validate(&self, token: &str, now: SystemTime) -> Result<Claims, Rejection> {
        let audiences = self.state.lock().audiences.clone();
        self.state.validate(token, now, &audiences)
    }

    /// Validates `token` at `now` with an audience among `audiences`, compared exactly
    /// (`https://x.documents.azure.com/` is not `https://x.documents.azure.com`, as Cosmos DB
    /// compares them) except that `*` in an entry stands for one DNS label.
    pub fn validate_for(
        &self,
        token: &str,
        now: SystemTime,
        audiences: &[String],
    ) -> Result<Claims, Rejection> {
        self.state.validate(token, now, audiences)
    }

    /// The issuer of valid tokens, `https://sts.windows.net/{tenant}/`.
    pub fn issuer(&self) -> String {
        self.state.issuer()
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.state.tenant.clone()
    }
}

/// A running fake Entra ID on a free 127.0.0.1 port (IMDS and the v2.0 token endpoint on the
/// same port). Stopped on drop. See the module docs for the protocols and failure modes.
///
/// Defaults: a random tenant; a system-assigned identity, a user-assigned identity and an
/// app registration with a random client secret and a federated credential for
/// [`SERVICE_ACCOUNT_SUBJECT`]; resources [`COSMOS_AUDIENCE`] and
/// `https://*.documents.azure.com` exist; tokens live one hour.
pub struct FakeEntra {
    port: u16,
    state: Arc<State>,
    server: Mutex<Option<HttpServer>>,
}

impl fmt::Debug for FakeEntra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeEntra")
            .field("port", &self.port)
            .field("tenant", &self.state.tenant)
            .finish_non_exhaustive()
    }
}

impl FakeEntra {
    /// Starts the fake with the defaults above. Panics if it cannot bind.
    pub fn start() -> FakeEntra {
        let tenant = uuid();
        let principal = |kind| Principal {
            kind,
            client_id: uuid(),
            object_id: uuid(),
        };
        let state = Arc::new(State {
            cluster_issuer: format!("https://eastus.oic.prod-aks.azure.com/{tenant}/{}/", uuid()),
            tenant,
            key: random_bytes(),
            cluster_key: random_bytes(),
            system_identity: principal(PrincipalKind::SystemAssignedIdentity),
            user_identity: principal(PrincipalKind::UserAssignedIdentity),
            app: principal(PrincipalKind::Application),
            m: Mutex::new(Mutable {
                client_secret: new_client_secret(),
                audiences: vec![
                    COSMOS_AUDIENCE.to_string(),
                    "https://*.documents.azure.com".to_string(),
                ],
                lifetime: Duration::from_secs(3600),
                outages: VecDeque::new(),
                delay: Duration::ZERO,
                minted: Vec::new(),
                revoked: HashSet::new(),
                retired_assertions: HashMap::new(),
                issued: Vec::new(),
                requests: Vec::new(),
                stats: EntraStats::default(),
            }),
        });
        let server = HttpServer::bind("entra", 0, handler(state.clone()));
        FakeEntra {
            port: server.addr().port(),
            state,
            server: Mutex::new(Some(server)),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT/metadata/identity/oauth2/token`: IMDS's token URL (the real one
    /// is `http://169.254.169.254/metadata/identity/oauth2/token`); add the query.
    pub fn imds_endpoint(&self) -> String {
        format!("{}{IMDS_PATH}", self.endpoint())
    }

    /// `http://127.0.0.1:PORT/`: the authority host (`AZURE_AUTHORITY_HOST`; the real one is
    /// `https://login.microsoftonline.com/`).
    pub fn authority_host(&self) -> String {
        format!("{}/", self.endpoint())
    }

    /// `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.endpoint(),
            self.state.tenant
        )
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.state.tenant
    }

    /// `https://sts.windows.net/{tenant}/`, the `iss` of its tokens.
    pub fn issuer(&self) -> String {
        self.state.issuer()
    }

    /// The system-assigned managed identity (IMDS without `client_id`).
    pub fn system_identity(&self) -> Principal {
        self.state.system_identity.clone()
    }

    /// The user-assigned managed identity (IMDS with `client_id=` its client id).
    pub fn user_identity(&self) -> Principal {
        self.state.user_identity.clone()
    }

    /// The app registration (v2.0 endpoint: client secret or federated assertion).
    pub fn app(&self) -> Principal {
        self.state.app.clone()
    }

    /// The app's current client secret.
    pub fn client_secret(&self) -> String {
        self.state.lock().client_secret.clone()
    }

    /// Replaces the app's client secret with a new random one and returns it: the secret a
    /// client holds is then answered `401 invalid_client` (AADSTS7000215).
    pub fn rotate_client_secret(&self) -> String {
        let secret = new_client_secret();
        self.state.lock().client_secret = secret.clone();
        secret
    }

    /// The resources that exist (audiences a token can be asked for); `*` in an entry stands
    /// for one DNS label. Others are answered `400 invalid_resource` (AADSTS500011). A
    /// trailing `/` on the resource asked for is ignored for this check (the token's `aud` is
    /// the resource as asked).
    pub fn set_audiences(&self, audiences: &[&str]) {
        self.state.lock().audiences = audiences.iter().map(|a| a.to_string()).collect();
    }

    /// The resources that exist.
    pub fn audiences(&self) -> Vec<String> {
        self.state.lock().audiences.clone()
    }

    /// Lifetime of tokens issued from now on (one hour by default). Zero issues tokens that
    /// are already expired (`exp == iat`).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.lock().lifetime = lifetime;
    }

    /// Answers the next `n` requests (any path) with `outage` instead of serving them; adds
    /// to outages already queued.
    pub fn fail_next(&self, n: usize, outage: Outage) {
        self.state
            .lock()
            .outages
            .extend(std::iter::repeat_n(outage, n));
    }

    /// Waits `delay` before answering each request (zero by default).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().delay = delay;
    }

    /// Stops listening: connections are refused (and open ones closed) until
    /// [`FakeEntra::come_up`]. Idempotent.
    pub fn go_down(&self) {
        if let Some(mut server) = self.server_slot().take() {
            server.stop();
        }
    }

    /// Listens again on the same port. Idempotent. Panics if the port was taken meanwhile.
    pub fn come_up(&self) {
        let mut slot = self.server_slot();
        if slot.is_none() {
            *slot = Some(HttpServer::bind(
                "entra",
                self.port,
                handler(self.state.clone()),
            ));
        }
    }

    /// True between [`FakeEntra::go_down`] and [`FakeEntra::come_up`].
    pub fn is_down(&self) -> bool {
        self.server_slot().is_none()
    }

    /// A validator sharing this fake's key and revocations.
    pub fn validator(&self) -> TokenValidator {
        TokenValidator {
            state: self.state.clone(),
        }
    }

    /// [`TokenValidator::validate`]: signature, issuer, revocation, time, and an audience
    /// among [`FakeEntra::audiences`].
    pub fn validate(&self, token: &str, now: SystemTime) -> Result<Claims, Rejection> {
        self.validator().validate(token, now)
    }

    /// Revokes `token` (it must be one of the fake's): it is refused from now on. Returns
    /// false if it is not a token of this fake.
    pub fn revoke(&self, token: &str) -> bool {
        let Ok(payload) = verify_jwt(&self.state.key, token) else {
            return false;
        };
        match payload["uti"].as_str() {
            Some(uti) => {
                self.state.lock().revoked.insert(uti.to_string());
                true
            }
            None => false,
        }
    }

    /// Revokes every token issued so far (tokens issued later are valid).
    pub fn revoke_all(&self) {
        let mut m = self.state.lock();
        let minted = m.minted.clone();
        m.revoked.extend(minted);
    }

    /// Mints a token directly (no HTTP, not counted in [`FakeEntra::stats`]), issued at
    /// `issued_at` for `lifetime`: for a store test that needs a token already expired, not
    /// yet valid, or for an audience Entra would refuse.
    pub fn issue_token(
        &self,
        principal: &Principal,
        audience: &str,
        issued_at: SystemTime,
        lifetime: Duration,
    ) -> String {
        self.state
            .mint(principal, audience, unix(issued_at), lifetime, "2")
            .0
    }

    /// Every token issued over HTTP so far, in order.
    pub fn issued(&self) -> Vec<IssuedToken> {
        self.state.lock().issued.clone()
    }

    /// Every token request answered so far, in order (failures injected by
    /// [`FakeEntra::fail_next`] are not token requests and are only counted).
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.lock().requests.clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> EntraStats {
        self.state.lock().stats
    }

    /// TCP connections accepted by the current listener (since start or the last
    /// [`FakeEntra::come_up`]).
    pub fn connections(&self) -> usize {
        self.server_slot()
            .as_ref()
            .map_or(0, HttpServer::connections)
    }

    /// The issuer of the fake's cluster (AKS's OIDC issuer URL), the `iss` of its
    /// service-account tokens.
    pub fn cluster_issuer(&self) -> String {
        self.state.cluster_issuer.clone()
    }

    /// A service-account token of the fake's cluster for `subject`
    /// (`system:serviceaccount:NS:NAME`), audience [`TOKEN_EXCHANGE_AUDIENCE`], valid for
    /// `lifetime` from now. Only [`SERVICE_ACCOUNT_SUBJECT`] matches the app's federated
    /// credential.
    pub fn mint_service_account_token(&self, subject: &str, lifetime: Duration) -> String {
        self.state
            .mint_service_account_token(subject, unix(SystemTime::now()), lifetime)
            .0
    }

    /// A service-account token for [`SERVICE_ACCOUNT_SUBJECT`] (valid one hour) written to a
    /// file in a new temp dir, as AKS's workload identity webhook mounts it; removed on drop.
    pub fn federated_token_file(&self) -> FederatedTokenFile {
        let dir = tempfile::Builder::new()
            .prefix("testkit-entra-")
            .tempdir()
            .expect("testkit: cannot create a temp dir");
        let file = FederatedTokenFile {
            path: dir.path().join("azure-identity-token"),
            _dir: dir,
            state: self.state.clone(),
            current: Mutex::new(String::new()),
        };
        file.rotate();
        file
    }

    /// The variables Azure's workload identity webhook sets in a pod, for `file`:
    /// `AZURE_AUTHORITY_HOST` ([`FakeEntra::authority_host`]), `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` (the app's), `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn workload_identity_env(&self, file: &FederatedTokenFile) -> Vec<(String, String)> {
        vec![
            ("AZURE_AUTHORITY_HOST".into(), self.authority_host()),
            ("AZURE_TENANT_ID".into(), self.state.tenant.clone()),
            ("AZURE_CLIENT_ID".into(), self.state.app.client_id.clone()),
            (
                "AZURE_FEDERATED_TOKEN_FILE".into(),
                file.path().display().to_string(),
            ),
        ]
    }

    fn server_slot(&self) -> MutexGuard<'_, Option<HttpServer>> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeEntra {
    fn drop(&mut self) {
        self.go_down();
    }
}

/// The projected service-account token file of a pod (`AZURE_FEDERATED_TOKEN_FILE`), in a
/// temp dir removed on drop. Only its current token is accepted as a client assertion.
pub struct FederatedTokenFile {
    path: PathBuf,
    _dir: tempfile::TempDir,
    state: Arc<State>,
    /// `jti` of the token in the file.
    current: Mutex<String>,
}

impl fmt::Debug for FederatedTokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederatedTokenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FederatedTokenFile {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token in the file now.
    pub fn token(&self) -> String {
        std::fs::read_to_string(&self.path).expect("testkit: read the federated token file")
    }

    /// Writes a new token (valid one hour) in place of the old one, atomically (written
    /// beside, then renamed, as the kubelet does), and retires the old one: the fake refuses
    /// it from now on with AADSTS700024 (outside its valid time range), which is what a
    /// client that keeps a token it read long ago gets.
    pub fn rotate(&self) {
        let now = unix(SystemTime::now());
        let (token, jti) = self.state.mint_service_account_token(
            SERVICE_ACCOUNT_SUBJECT,
            now,
            Duration::from_secs(3600),
        );
        let beside = self.path.with_extension("new");
        std::fs::write(&beside, token).expect("testkit: write the federated token file");
        std::fs::rename(&beside, &self.path).expect("testkit: rename the federated token file");
        let old = std::mem::replace(
            &mut *self.current.lock().unwrap_or_else(|e| e.into_inner()),
            jti,
        );
        if !old.is_empty() {
            self.state.lock().retired_assertions.insert(old, now);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving

fn handler(state: Arc<State>) -> Arc<dyn Fn(&Request) -> Action + Send + Sync> {
    Arc::new(move |req: &Request| serve(&state, req))
}

fn serve(state: &State, req: &Request) -> Action {
    let (delay, outage) = {
        let mut m = state.lock();
        m.stats.requests += 1;
        let outage = m.outages.pop_front();
        if outage.is_some() {
            m.stats.injected += 1;
        }
        (m.delay, outage)
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let imds = req.path() == IMDS_PATH;
    match outage {
        Some(Outage::Close) => return Action::Close,
        Some(Outage::Status(status)) => {
            return Action::Reply(if imds {
                // IMDS's answer when Entra behind it fails: "5xx Transient error from
                // service ... It's safe to retry" (learn.microsoft.com, "How to use managed
                // identities for Azure resources on an Azure VM to acquire an access token",
                // Error handling).
                Reply::json(
                    status,
                    &json!({
                        "error": "unknown",
                        "error_description": "Failed to retrieve token from the Active directory.",
                    }),
                )
            } else {
                entra_error(
                    status,
                    "temporarily_unavailable",
                    90033,
                    "AADSTS90033: A transient error has occurred. Please try again.",
                )
            });
        }
        None => {}
    }
    let (reply, record) = if imds {
        serve_imds(state, req)
    } else {
        serve_token_endpoint(state, req)
    };
    let mut m = state.lock();
    if (400..500).contains(&reply.status) {
        m.stats.refused += 1;
    }
    if let Some(record) = record {
        m.requests.push(record);
    }
    Action::Reply(reply)
}

/// A refusal: the reply and what to record.
struct Refusal {
    status: u16,
    error: &'static str,
    aadsts: Option<u32>,
    description: String,
}

impl Refusal {
    fn new(status: u16, error: &'static str, aadsts: u32, description: String) -> Refusal {
        Refusal {
            status,
            error,
            aadsts: Some(aadsts),
            description,
        }
    }

    /// A refusal whose AADSTS code, if any, is the one its description starts with (IMDS
    /// passes Entra's descriptions on).
    fn described(status: u16, error: &'static str, description: impl Into<String>) -> Refusal {
        let description = description.into();
        let aadsts = description
            .strip_prefix("AADSTS")
            .and_then(|d| d.split(':').next())
            .and_then(|c| c.parse().ok());
        Refusal {
            status,
            error,
            aadsts,
            description,
        }
    }
}

/// IMDS: `GET /metadata/identity/oauth2/token?api-version=…&resource=…[&client_id=…]`.
///
/// Request and answer as in learn.microsoft.com, "How to use managed identities for Azure
/// resources on an Azure VM to acquire an access token" (Get a token using HTTP; Error
/// handling): header `Metadata: true` is required ("400 Bad Request, bad_request_102,
/// Required metadata header not specified"); the answer is
/// `{"access_token","refresh_token":"","expires_in":"3599","expires_on":"1506484173",
/// "not_before":"1506480273","resource","token_type":"Bearer","client_id"}` with every
/// number a string.
fn serve_imds(state: &State, req: &Request) -> (Reply, Option<TokenRequest>) {
    let query = form_pairs(req.query());
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let client_id = get("client_id");
    let audience = get("resource");
    let mut record = TokenRequest {
        protocol: Some(Protocol::ManagedIdentity),
        client_id: client_id.clone(),
        audience: audience.clone(),
        status: 0,
        error: None,
        aadsts: None,
    };
    // The checks in IMDS's order; the first that fails is the answer.
    let checked = (|| -> Result<(Principal, String), Refusal> {
        if !req.method.eq_ignore_ascii_case("GET") {
            return Err(Refusal::described(
                405,
                "invalid_request",
                "The requested method is not supported.",
            ));
        }
        if req.header("metadata") != Some("true") {
            return Err(Refusal::described(
                400,
                "bad_request_102",
                "Required metadata header not specified",
            ));
        }
        if get("api-version").is_none() {
            return Err(Refusal::described(
                400,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            ));
        }
        let Some(audience) = audience.clone() else {
            return Err(Refusal::described(
                400,
                "invalid_request",
                "Required query variable 'resource' is missing",
            ));
        };
        let known = [&state.system_identity, &state.user_identity];
        let identity = match (&client_id, get("object_id")) {
            (None, None) => Some(&state.system_identity),
            (Some(id), _) => known.into_iter().find(|p| &p.client_id == id),
            (None, Some(oid)) => known.into_iter().find(|p| p.object_id == oid),
        };
        let Some(identity) = identity else {
            return Err(Refusal::described(
                400,
                "invalid_request",
                "Identity not found",
            ));
        };
        if let Some(description) = unknown_resource(state, &audience) {
            // IMDS passes Entra's refusal on as 400 invalid_resource (same article, Error
            // handling: "400 Bad Request | invalid_resource | AADSTS50001: The application named
            // <URI> was not found in the tenant named <TENANT-ID>...").
            return Err(Refusal::described(400, "invalid_resource", description));
        }
        Ok((identity.clone(), audience))
    })();
    let (identity, audience) = match checked {
        Ok(checked) => checked,
        Err(refusal) => {
            record.status = refusal.status;
            record.error = Some(refusal.error.to_string());
            record.aadsts = refusal.aadsts;
            let reply = Reply::json(
                refusal.status,
                &json!({ "error": refusal.error, "error_description": refusal.description }),
            );
            return (reply, Some(record));
        }
    };
    let lifetime = state.lock().lifetime;
    let (token, claims) = state.mint(&identity, &audience, unix(SystemTime::now()), lifetime, "2");
    record.status = 200;
    let reply = Reply::json(
        200,
        &json!({
            "access_token": token,
            "refresh_token": "",
            "expires_in": lifetime.as_secs().to_string(),
            "expires_on": claims.exp.to_string(),
            "not_before": claims.nbf.to_string(),
            "resource": audience,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }),
    );
    record_issue(state, Protocol::ManagedIdentity, &claims);
    (reply, Some(record))
}

/// The v2.0 token endpoint, client credentials grant.
///
/// Request and answer as in learn.microsoft.com, "Microsoft identity platform and the OAuth
/// 2.0 client credentials flow": `POST /{tenant}/oauth2/v2.0/token` with a form body;
/// success `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token"}`;
/// errors `{"error","error_description","error_codes","timestamp","trace_id",
/// "correlation_id","error_uri"}`.
fn serve_token_endpoint(state: &State, req: &Request) -> (Reply, Option<TokenRequest>) {
    let path = req.path();
    let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
    else {
        return (Reply::json(404, &json!({ "error": "not_found" })), None);
    };
    let form = form_pairs(&String::from_utf8_lossy(&req.body));
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let client_id = get("client_id");
    let scope = get("scope");
    let assertion = get("client_assertion");
    let secret = get("client_secret");
    let protocol = if assertion.is_some() {
        Some(Protocol::ClientAssertion)
    } else if secret.is_some() {
        Some(Protocol::ClientSecret)
    } else {
        None
    };
    let audience = scope
        .as_deref()
        .map(|s| s.strip_suffix("/.default").unwrap_or(s).to_string());
    let mut record = TokenRequest {
        protocol,
        client_id: client_id.clone(),
        audience,
        status: 0,
        error: None,
        aadsts: None,
    };
    let outcome = (|| -> Result<(String, &'static str), Refusal> {
        if !req.method.eq_ignore_ascii_case("POST") {
            return Err(Refusal::new(
                405,
                "invalid_request",
                900561,
                "AADSTS900561: The endpoint only accepts POST requests.".into(),
            ));
        }
        if tenant != state.tenant {
            // AADSTS90002 as Entra words it for a tenant it does not know.
            return Err(Refusal::new(
                400,
                "invalid_request",
                90002,
                format!(
                    "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the \
                     correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let missing = |name: &str| {
            Refusal::new(
                400,
                "invalid_request",
                900144,
                format!(
                    "AADSTS900144: The request body must contain the following parameter: \
                     '{name}'."
                ),
            )
        };
        let grant = get("grant_type").ok_or_else(|| missing("grant_type"))?;
        if grant != "client_credentials" {
            return Err(Refusal::new(
                400,
                "unsupported_grant_type",
                70003,
                format!("AADSTS70003: The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let client_id = client_id.clone().ok_or_else(|| missing("client_id"))?;
        let scope = scope.clone().ok_or_else(|| missing("scope"))?;
        if client_id != state.app.client_id {
            // AADSTS700016 as Entra words it for an unknown application.
            return Err(Refusal::new(
                400,
                "unauthorized_client",
                700016,
                format!(
                    "AADSTS700016: Application with identifier '{client_id}' was not found in \
                     the directory '{}'. This can happen if the application has not been \
                     installed by the administrator of the tenant or consented to by any user \
                     in the tenant. You may have sent your authentication request to the wrong \
                     tenant.",
                    state.tenant
                ),
            ));
        }
        let Some(resource) = scope.strip_suffix("/.default") else {
            return Err(Refusal::new(
                400,
                "invalid_scope",
                1002012,
                format!(
                    "AADSTS1002012: The provided value for scope {scope} is not valid. Client \
                     credential flows must have a scope value with /.default suffixed to the \
                     resource identifier (application ID URI)."
                ),
            ));
        };
        let appidacr = match (&secret, &assertion) {
            (_, Some(assertion)) => {
                if get("client_assertion_type").as_deref() != Some(JWT_BEARER) {
                    return Err(Refusal::new(
                        400,
                        "invalid_request",
                        700023,
                        "AADSTS700023: Client assertion type is not supported.".into(),
                    ));
                }
                check_assertion(state, assertion)?;
                "2"
            }
            (Some(secret), None) => {
                if *secret != state.lock().client_secret {
                    // Status, error and wording as Entra answers a wrong secret, e.g.
                    // OfficeDev/microsoft-365-agents-toolkit#8621 and Azure/sap-automation#418:
                    // 401 {"error":"invalid_client","error_description":"AADSTS7000215: Invalid
                    // client secret provided. Ensure the secret being sent in the request is
                    // the client secret value, not the client secret ID, for a secret added to
                    // app '…'.\r\nTrace ID: …","error_codes":[7000215],…}.
                    return Err(Refusal::new(
                        401,
                        "invalid_client",
                        7000215,
                        format!(
                            "AADSTS7000215: Invalid client secret provided. Ensure the secret \
                             being sent in the request is the client secret value, not the \
                             client secret ID, for a secret added to app '{client_id}'."
                        ),
                    ));
                }
                "1"
            }
            (None, None) => {
                return Err(Refusal::new(
                    401,
                    "invalid_client",
                    7000218,
                    "AADSTS7000218: The request body must contain the following parameter: \
                     'client_assertion' or 'client_secret'."
                        .into(),
                ))
            }
        };
        if let Some(description) = unknown_resource(state, resource) {
            return Err(Refusal::new(400, "invalid_resource", 500011, description));
        }
        Ok((resource.to_string(), appidacr))
    })();
    match outcome {
        Err(refusal) => {
            record.status = refusal.status;
            record.error = Some(refusal.error.to_string());
            record.aadsts = refusal.aadsts;
            let reply = entra_error(
                refusal.status,
                refusal.error,
                refusal.aadsts.unwrap_or(0),
                &refusal.description,
            );
            (reply, Some(record))
        }
        Ok((resource, appidacr)) => {
            let lifetime = state.lock().lifetime;
            let now = unix(SystemTime::now());
            let (token, claims) = state.mint(&state.app, &resource, now, lifetime, appidacr);
            record.status = 200;
            let secs = lifetime.as_secs();
            let reply = Reply::json(
                200,
                &json!({
                    "token_type": "Bearer",
                    "expires_in": secs,
                    "ext_expires_in": secs,
                    "access_token": token,
                }),
            );
            let protocol = protocol.expect("a credential was checked");
            record_issue(state, protocol, &claims);
            (reply, Some(record))
        }
    }
}

/// Checks a federated client assertion: a service-account token of the fake's cluster,
/// current (not rotated out, not expired), for the app's federated credential.
fn check_assertion(state: &State, assertion: &str) -> Result<(), Refusal> {
    let malformed = || {
        Refusal::new(
            400,
            "invalid_request",
            50027,
            "AADSTS50027: JWT token is invalid or malformed.".into(),
        )
    };
    let payload = match verify_jwt(&state.cluster_key, assertion) {
        Ok(p) => p,
        Err(Rejection::BadSignature) => {
            return Err(Refusal::new(
                401,
                "invalid_client",
                700027,
                "AADSTS700027: Client assertion failed signature validation.".into(),
            ))
        }
        Err(_) => return Err(malformed()),
    };
    let iss = payload["iss"].as_str().unwrap_or_default();
    let sub = payload["sub"].as_str().unwrap_or_default();
    let aud = match &payload["aud"] {
        Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or_default(),
        v => v.as_str().unwrap_or_default(),
    };
    if iss != state.cluster_issuer
        || sub != SERVICE_ACCOUNT_SUBJECT
        || aud != TOKEN_EXCHANGE_AUDIENCE
    {
        // Wording as in Azure/azure-workload-identity#616: 400 invalid_request "AADSTS70021:
        // No matching federated identity record found for presented assertion. Assertion
        // Issuer: '…'. Assertion Subject: '…'. Assertion Audience: '…'."
        return Err(Refusal::new(
            400,
            "invalid_request",
            70021,
            format!(
                "AADSTS70021: No matching federated identity record found for presented \
                 assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion \
                 Audience: '{aud}'. \
                 https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation"
            ),
        ));
    }
    let (Some(nbf), Some(exp), Some(jti)) = (
        payload["nbf"].as_u64(),
        payload["exp"].as_u64(),
        payload["jti"].as_str(),
    ) else {
        return Err(malformed());
    };
    let now = unix(SystemTime::now());
    // A rotated-out token counts as expired at its rotation.
    let exp = match state.lock().retired_assertions.get(jti) {
        Some(retired) => exp.min(*retired),
        None => exp,
    };
    if now < nbf || now >= exp {
        // Status and wording as in risingwavelabs/risingwave#17123 and
        // Azure/azure-workload-identity#693 (a client still using the old service-account
        // token): 401 invalid_client "AADSTS700024: Client assertion is not within its valid
        // time range. Current time: …, assertion valid from …, expiry time of assertion …."
        return Err(Refusal::new(
            401,
            "invalid_client",
            700024,
            format!(
                "AADSTS700024: Client assertion is not within its valid time range. Current \
                 time: {}, assertion valid from {}, expiry time of assertion {}. Review the \
                 documentation at \
                 https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                iso_time(now),
                iso_time(nbf),
                iso_time(exp)
            ),
        ));
    }
    Ok(())
}

/// `Some(AADSTS500011 description)` if `resource` is not a resource the fake knows.
///
/// Wording as in rootinc/laravel-azure-middleware#51 and Azure/azure-cli#16850:
/// `{"error":"invalid_resource","error_description":"AADSTS500011: The resource principal
/// named https://management.azure.com was not found in the tenant named …. This can happen if
/// the application has not been installed by the administrator of the tenant or consented to
/// by any user in the tenant. You might have sent your authentication request to the wrong
/// tenant.\r\nTrace ID: …","error_codes":[500011],…}` with status 400.
fn unknown_resource(state: &State, resource: &str) -> Option<String> {
    let trimmed = resource.strip_suffix('/').unwrap_or(resource);
    let known = state
        .lock()
        .audiences
        .iter()
        .any(|a| audience_matches(a, trimmed));
    (!known).then(|| {
        format!(
            "AADSTS500011: The resource principal named {trimmed} was not found in the tenant \
             named {}. This can happen if the application has not been installed by the \
             administrator of the tenant or consented to by any user in the tenant. You might \
             have sent your authentication request to the wrong tenant.",
            state.tenant
        )
    })
}

fn record_issue(state: &State, protocol: Protocol, claims: &Claims) {
    let mut m = state.lock();
    match protocol {
        Protocol::ManagedIdentity => m.stats.issued_managed_identity += 1,
        Protocol::ClientSecret => m.stats.issued_client_secret += 1,
        Protocol::ClientAssertion => m.stats.issued_client_assertion += 1,
    }
    m.issued.push(IssuedToken {
        protocol,
        client_id: claims.appid.clone(),
        object_id: claims.oid.clone(),
        audience: claims.aud.clone(),
        token_id: claims.uti.clone(),
        issued_at: claims.iat,
        expires_at: claims.exp,
    });
}

/// An Entra error answer: `description` followed by trace id, correlation id and timestamp
/// lines, as Entra words them.
fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Reply {
    let (trace, correlation) = (uuid(), uuid());
    let t = UtcTime::of(SystemTime::now());
    let timestamp = format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    Reply::json(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "{description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Tokens, ids and time

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length")
}

/// `base64url(header).base64url(payload).base64url(HS256 signature)`.
fn sign_jwt(key: &[u8], payload: &Value) -> String {
    let header = BASE64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = BASE64URL.encode(serde_json::to_vec(payload).expect("json"));
    let signing_input = format!("{header}.{body}");
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    let signature = BASE64URL.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The payload of an HS256 JWT signed under `key`.
fn verify_jwt(key: &[u8], token: &str) -> Result<Value, Rejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let signing_input = &token[..header.len() + 1 + body.len()];
    let decode = |part: &str| BASE64URL.decode(part).map_err(|_| Rejection::Malformed);
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| Rejection::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(Rejection::Malformed);
    }
    let signature = decode(signature)?;
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    m.verify_slice(&signature)
        .map_err(|_| Rejection::BadSignature)?;
    serde_json::from_slice(&decode(body)?).map_err(|_| Rejection::Malformed)
}

/// True if `audience` is `pattern`, where `*` in `pattern` stands for one non-empty DNS label.
fn audience_matches(pattern: &str, audience: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == audience,
        Some((before, after)) => audience
            .strip_prefix(before)
            .and_then(|rest| rest.strip_suffix(after))
            .is_some_and(|label| {
                !label.is_empty() && !label.contains(['.', '/', ':', '?', '#', '@'])
            }),
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("testkit: read /dev/urandom");
    buf
}

/// A random (version 4) UUID, lower-case hex with dashes.
pub(crate) fn uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A random client secret in the shape Entra generates (40 characters, `~` among them).
fn new_client_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    random_bytes::<40>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Unix seconds (0 before 1970).
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A UTC calendar time, read from the IMF-fixdate `httpdate` formats.
pub(crate) struct UtcTime {
    pub(crate) year: u32,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

impl UtcTime {
    pub(crate) fn of(t: SystemTime) -> UtcTime {
        // "Sun, 06 Dec 2026 22:49:09 GMT"
        let text = httpdate::fmt_http_date(t);
        let f: Vec<&str> = text.split([' ', ':']).collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = f
            .get(2)
            .and_then(|m| MONTHS.iter().position(|x| x == m))
            .map_or(0, |i| i as u32 + 1);
        UtcTime {
            year: num(3),
            month,
            day: num(1),
            hour: num(4),
            minute: num(5),
            second: num(6),
        }
    }

    pub(crate) fn of_unix(secs: u64) -> UtcTime {
        UtcTime::of(UNIX_EPOCH + Duration::from_secs(secs))
    }
}

/// `2024-06-04T11:40:28.0000000Z`, as Entra writes times in AADSTS700024.
fn iso_time(secs: u64) -> String {
    let t = UtcTime::of_unix(secs);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_and_tampering() {
        let key = [7u8; 32];
        let token = sign_jwt(&key, &json!({ "a": 1 }));
        assert_eq!(verify_jwt(&key, &token).unwrap()["a"], 1);
        assert_eq!(verify_jwt(&[8u8; 32], &token), Err(Rejection::BadSignature));
        let (head, _) = token.rsplit_once('.').unwrap();
        let forged_body = BASE64URL.encode(br#"{"a":2}"#);
        let forged = format!(
            "{}.{forged_body}.{}",
            head.split('.').next().unwrap(),
            token.rsplit('.').next().unwrap()
        );
        assert_eq!(verify_jwt(&key, &forged), Err(Rejection::BadSignature));
        assert_eq!(verify_jwt(&key, "a.b"), Err(Rejection::Malformed));
        assert_eq!(verify_jwt(&key, "not.a.jwt"), Err(Rejection::Malformed));
    }

    #[test]
    fn audience_patterns() {
        let p = "https://*.documents.azure.com";
        assert!(audience_matches(p, "https://acct.documents.azure.com"));
        assert!(!audience_matches(p, "https://acct.documents.azure.com/"));
        assert!(!audience_matches(p, "https://.documents.azure.com"));
        assert!(!audience_matches(p, "https://a.b.documents.azure.com"));
        assert!(audience_matches(
            COSMOS_AUDIENCE,
            "https://cosmos.azure.com"
        ));
        assert!(!audience_matches(
            COSMOS_AUDIENCE,
            "https://cosmos.azure.com/"
        ));
    }

    #[test]
    fn utc_time_and_ids() {
        let t = UtcTime::of_unix(1_717_501_228); // 2024-06-04T11:40:28Z
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2024, 6, 4, 11, 40, 28)
        );
        assert_eq!(iso_time(1_717_501_228), "2024-06-04T11:40:28.0000000Z");
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(uuid(), id);
        assert_eq!(new_client_secret().len(), 40);
    }
}
