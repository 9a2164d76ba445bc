//! Signs every Cosmos DB request of one incoming request with the credential in force: the
//! account key, or a Microsoft Entra ID access token.
//!
//! A token lives about an hour and a component instance one request, so tokens are kept in
//! the host's cache ([`Host::cache_get`], Spin's key-value store) under their source and
//! audience, used until [`REFRESH_AHEAD`] before they expire, and fetched again then. When
//! Cosmos DB answers 401 to a token (revoked, or the cache held a stale one), a new token is
//! fetched, the cache entry replaced and the request sent once more. Token requests run inside
//! the request's time budget, retried like Cosmos DB requests.
//!
//! The token is a bearer credential: it goes into the `Authorization` header and the cache,
//! never into a log line, an error or an answer.

use std::cell::{Cell, RefCell};
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};

use crate::answer::Failure;
use crate::config::{
    Config, ConfigError, VAR_ENTRA_AUDIENCE, VAR_ENTRA_CLIENT_ID, VAR_ENTRA_CLIENT_SECRET,
    VAR_ENTRA_FEDERATED_TOKEN_FILE, VAR_ENTRA_TENANT_ID,
};
use crate::cosmos::entra::{
    read_token_answer, EntraSettings, IssuedToken, TokenError, TokenSource,
};
use crate::cosmos::{Container, CosmosAuth, Credential};
use crate::host::{Host, TransportError};
use crate::retry::RetryBudget;

/// A cached token is replaced when less than this is left of its life.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// The host, with every Cosmos DB request it sends signed (requests the core's builders did
/// not make are passed on unsigned).
pub struct SigningHost<'h, H> {
    host: &'h H,
    store: &'h Container,
    budget: RetryBudget,
    now: SystemTime,
    credential: RefCell<Credential>,
    refreshed: Cell<bool>,
}

impl<'h, H: Host> SigningHost<'h, H> {
    /// The credential for this request: the account key, or a token from the cache or its
    /// source. Fails as [`credential`] does.
    pub async fn new(config: &'h Config, host: &'h H, now: SystemTime) -> Result<Self, Failure> {
        let budget = RetryBudget {
            total: config.write_budget,
        };
        let credential = credential(&config.store, budget, host, now, Fetch::Cached).await?;
        Ok(Self {
            host,
            store: &config.store,
            budget,
            now,
            credential: RefCell::new(credential),
            refreshed: Cell::new(false),
        })
    }
}

impl<H: Host> Host for SigningHost<'_, H> {
    async fn send(
        &self,
        mut request: Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let token = self.credential.borrow().is_token();
        let again = (token && !self.refreshed.get()).then(|| request.clone());
        self.credential.borrow().sign(&mut request);
        let answer = self.host.send(request, timeout).await?;
        let Some(mut again) = again.filter(|_| answer.status() == StatusCode::UNAUTHORIZED) else {
            return Ok(answer);
        };
        // Once per incoming request: a token Cosmos DB refuses is replaced, in the cache too.
        self.refreshed.set(true);
        let Ok(fresh) =
            credential(self.store, self.budget, self.host, self.now, Fetch::Fresh).await
        else {
            return Ok(answer);
        };
        fresh.sign(&mut again);
        *self.credential.borrow_mut() = fresh;
        self.host.send(again, timeout).await
    }

    async fn sleep(&self, duration: Duration) {
        self.host.sleep(duration).await
    }

    fn elapsed(&self) -> Duration {
        self.host.elapsed()
    }

    fn random_u64(&self) -> u64 {
        self.host.random_u64()
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        self.host.cache_get(key).await
    }

    async fn cache_set(&self, key: &str, value: &[u8]) {
        self.host.cache_set(key, value).await
    }

    fn read_file(&self, path: &str) -> Result<String, String> {
        self.host.read_file(path)
    }
}

/// Whether a cached token may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// A cached token that is not about to expire serves.
    Cached,
    /// A new token is fetched (and cached), whatever the cache holds.
    Fresh,
}

/// The credential that signs requests to `store` at `now`.
///
/// - Token endpoint unreachable, throttling or failing after retries within `budget`:
///   [`Failure::StoreUnavailable`] (503 with `Retry-After`; nothing was written).
/// - Entra ID refuses the credentials: [`Failure::Config`] naming the variable at fault and
///   Entra's error code (500 `configuration_error`), never the secret.
/// - The federated token file cannot be read: [`Failure::Config`] naming
///   `entra_federated_token_file`.
pub async fn credential<H: Host>(
    store: &Container,
    budget: RetryBudget,
    host: &H,
    now: SystemTime,
    fetch: Fetch,
) -> Result<Credential, Failure> {
    let settings = match &store.auth {
        CosmosAuth::Key(_) => return Ok(store.auth.key_credential().expect("a key")),
        CosmosAuth::Entra(settings) => settings,
    };
    let (audience, fallback) = settings.audiences(store.endpoint.as_str());
    let cache_key = settings.source.cache_key(&audience);
    if fetch == Fetch::Cached {
        let cached = host.cache_get(&cache_key).await;
        if let Some(token) = cached.as_deref().and_then(IssuedToken::from_cache_entry) {
            if token.fresh_at(now + host.elapsed(), REFRESH_AHEAD) {
                return Ok(Credential::Token(token.token));
            }
        }
    }
    let issued = match fetch_token(&settings.source, &audience, budget, host, now).await {
        Err(Refusal::Token(TokenError::AudienceNotFound)) if fallback.is_some() => {
            let fallback = fallback.unwrap_or_default();
            fetch_token(&settings.source, fallback, budget, host, now).await
        }
        other => other,
    }
    .map_err(|refusal| refusal.into_failure(settings))?;
    host.cache_set(&cache_key, &issued.to_cache_entry()).await;
    Ok(Credential::Token(issued.token))
}

/// Why no token could be had.
enum Refusal {
    /// From the token endpoint.
    Token(TokenError),
    /// The federated token file could not be read.
    File(String),
}

impl Refusal {
    fn into_failure(self, settings: &EntraSettings) -> Failure {
        let source = settings.source.name();
        let invalid = |name: &'static str, reason: String| {
            Failure::Config(ConfigError::Invalid { name, reason })
        };
        match self {
            Refusal::File(why) => invalid(
                VAR_ENTRA_FEDERATED_TOKEN_FILE,
                format!("the federated token file could not be read: {why}"),
            ),
            Refusal::Token(TokenError::Unavailable(why)) => Failure::StoreUnavailable {
                reason: format!("no Microsoft Entra ID token ({source}): {why}"),
                retry_after: None,
            },
            Refusal::Token(e @ TokenError::AudienceNotFound) => {
                invalid(VAR_ENTRA_AUDIENCE, e.to_string())
            }
            Refusal::Token(TokenError::Refused { error, aadsts }) => {
                let name = variable_at_fault(&settings.source, aadsts.as_deref());
                let refused = TokenError::Refused { error, aadsts };
                invalid(name, format!("{refused} (entra_token_source={source})"))
            }
        }
    }
}

/// The variable an Entra refusal points at: by its `AADSTS` code where it names one, else the
/// credential the source presents.
fn variable_at_fault(source: &TokenSource, aadsts: Option<&str>) -> &'static str {
    match aadsts {
        // Invalid or expired client secret.
        Some("AADSTS7000215" | "AADSTS7000222") => VAR_ENTRA_CLIENT_SECRET,
        // Tenant not found, or not a valid tenant id.
        Some("AADSTS90002" | "AADSTS900023") => VAR_ENTRA_TENANT_ID,
        // The federated assertion expired or is not valid yet.
        Some("AADSTS700024") => VAR_ENTRA_FEDERATED_TOKEN_FILE,
        _ => match source {
            TokenSource::ClientSecret { .. } => VAR_ENTRA_CLIENT_SECRET,
            TokenSource::ManagedIdentity { .. } | TokenSource::WorkloadIdentity { .. } => {
                VAR_ENTRA_CLIENT_ID
            }
        },
    }
}

/// One token from `source` for `audience`, retried after outages within the budget.
async fn fetch_token<H: Host>(
    source: &TokenSource,
    audience: &str,
    budget: RetryBudget,
    host: &H,
    now: SystemTime,
) -> Result<IssuedToken, Refusal> {
    let mut attempt = 0;
    let mut last = None;
    loop {
        let Some(timeout) = budget.attempt_timeout(host.elapsed()) else {
            return Err(Refusal::Token(TokenError::Unavailable(
                last.unwrap_or_else(|| "no time left for a token request".to_owned()),
            )));
        };
        // The federated token rotates: read it for every request.
        let federated = match source.token_file() {
            Some(path) => Some(host.read_file(path).map_err(Refusal::File)?),
            None => None,
        };
        let request = source.token_request(audience, federated.as_deref());
        let reason = match host.send(request, timeout).await {
            Ok(answer) => {
                match read_token_answer(answer.status(), answer.body(), now + host.elapsed()) {
                    Ok(issued) => return Ok(issued),
                    Err(TokenError::Unavailable(why)) => why,
                    Err(refused) => return Err(Refusal::Token(refused)),
                }
            }
            Err(e) => format!("the token endpoint could not be reached: {e}"),
        };
        match budget.delay(attempt, None, host.elapsed(), host.random_u64()) {
            Some(wait) => host.sleep(wait).await,
            None => return Err(Refusal::Token(TokenError::Unavailable(reason))),
        }
        last = Some(reason);
        attempt += 1;
    }
}
