//! Cosmos DB with Microsoft Entra ID through the whole request flow, on a virtual clock: the
//! token cache, the refresh on 401, outages and refusals of the token endpoint, the audience
//! fallback, and what Cosmos DB's refusals say. (Against real peers, through the component:
//! crates/cli/tests/entra.rs.)

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use acr_webhook_core::{handle, respond, Config, Host, TransportError};
use common::*;
use http::{Request, Response};

const SECRET: &str = "client-secret-value-never-shown";

/// What the token endpoint does with one request.
#[derive(Clone, Debug)]
enum TokenAnswer {
    Issue,
    Status(u16, &'static str),
    Unreachable,
}

/// A token endpoint and an account that accepts only the tokens it issued (and not revoked),
/// in front of the in-memory store, with a key-value cache and a file system of one file.
struct EntraHost {
    store: MemoryStore,
    cache: RefCell<HashMap<String, Vec<u8>>>,
    script: RefCell<VecDeque<TokenAnswer>>,
    token_requests: RefCell<Vec<Request<Vec<u8>>>>,
    issued: Cell<u32>,
    valid: RefCell<HashSet<String>>,
    /// Answer data-plane requests 403/5302 (the principal holds no data role).
    no_role: Cell<bool>,
    file: RefCell<String>,
    files_read: Cell<u32>,
}

impl EntraHost {
    fn new() -> Self {
        Self {
            store: MemoryStore::new(),
            cache: RefCell::default(),
            script: RefCell::default(),
            token_requests: RefCell::default(),
            issued: Cell::new(0),
            valid: RefCell::default(),
            no_role: Cell::new(false),
            file: RefCell::new("eyJ.federated.one".into()),
            files_read: Cell::new(0),
        }
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Vec<u8>> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body.as_bytes().to_vec()).unwrap()
    }

    fn token(&self) -> Result<Response<Vec<u8>>, TransportError> {
        match self
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or(TokenAnswer::Issue)
        {
            TokenAnswer::Unreachable => Err(TransportError::not_sent("connection refused")),
            TokenAnswer::Status(status, body) => Ok(Self::answer(status, &[], body)),
            TokenAnswer::Issue => {
                self.issued.set(self.issued.get() + 1);
                let token = format!("eyJ0eXAi.token-{}.sig", self.issued.get());
                self.valid.borrow_mut().insert(token.clone());
                Ok(Self::answer(
                    200,
                    &[],
                    &format!(
                        r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{token}"}}"#
                    ),
                ))
            }
        }
    }
}

impl Host for EntraHost {
    async fn send(
        &self,
        request: Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        if request.uri().path().contains("/oauth2/") {
            self.token_requests.borrow_mut().push(request);
            return self.token();
        }
        let auth = request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned();
        if auth.starts_with("type%3Dmaster") {
            return Ok(Self::answer(
                401,
                &[("x-ms-substatus", "5202")],
                r#"{"code":"Unauthorized","message":"Local Authorization is disabled. Use an AAD token to authorize all requests."}"#,
            ));
        }
        let token = auth
            .strip_prefix("type%3Daad%26ver%3D1.0%26sig%3D")
            .expect("type=aad&ver=1.0&sig=<token>, URL-encoded");
        if !self.valid.borrow().contains(token) {
            return Ok(Self::answer(
                401,
                &[("x-ms-substatus", "5200")],
                r#"{"code":"Unauthorized","message":"the token is not valid"}"#,
            ));
        }
        if self.no_role.get() {
            return Ok(Self::answer(
                403,
                &[("x-ms-substatus", "5302")],
                r#"{"code":"Forbidden","message":"Request blocked by Auth acct : the principal does not have required RBAC permissions to perform action [Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/create]"}"#,
            ));
        }
        self.store.send(request, timeout).await
    }

    async fn sleep(&self, duration: Duration) {
        self.store.sleep(duration).await
    }

    fn elapsed(&self) -> Duration {
        self.store.elapsed()
    }

    fn random_u64(&self) -> u64 {
        self.store.random_u64()
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        self.cache.borrow().get(key).cloned()
    }

    async fn cache_set(&self, key: &str, value: &[u8]) {
        self.cache.borrow_mut().insert(key.into(), value.to_vec());
    }

    fn read_file(&self, path: &str) -> Result<String, String> {
        assert_eq!(path, "/var/run/secrets/azure/tokens/azure-identity-token");
        self.files_read.set(self.files_read.get() + 1);
        Ok(self.file.borrow().clone())
    }
}

fn entra_config(extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("cosmos_endpoint", "https://acct.documents.azure.com:443"),
        ("cosmos_auth", "entra"),
        ("cosmos_key", ""),
        ("entra_token_source", "client-secret"),
        ("entra_tenant_id", "tenant-1"),
        ("entra_client_id", "client-1"),
        ("entra_client_secret", SECRET),
    ];
    vars.extend_from_slice(extra);
    config(&vars)
}

/// Posts one ACR push with id `id`; the answer's status and body.
fn push(config: &Config, host: &EntraHost, id: &str) -> (u16, String) {
    let body = String::from_utf8(fixture("acr/push.json"))
        .unwrap()
        .replace("cb8c3971-9adc-488b-bdd8-43cbb4974ff5", id);
    let auth = format!("Bearer {TEST_WEBHOOK_KEY}");
    let head = head("POST", "/acr", &[("authorization", auth.as_str())]);
    let outcome = block_on(handle(
        &head,
        body.into_bytes(),
        Ok(config.clone()),
        host,
        now(),
    ));
    let response = respond(&outcome);
    (
        response.status().as_u16(),
        String::from_utf8(response.body().clone()).unwrap(),
    )
}

#[test]
fn many_events_cost_one_token() {
    let config = entra_config(&[]);
    let host = EntraHost::new();
    for i in 0..10 {
        assert_eq!(push(&config, &host, &format!("event-{i}")).0, 201);
    }
    assert_eq!(host.issued.get(), 1);
    assert_eq!(host.store.documents.borrow().len(), 10);
    let form = String::from_utf8(host.token_requests.borrow()[0].body().clone()).unwrap();
    assert!(form.contains("scope=https%3A%2F%2Facct.documents.azure.com%2F.default"));
    // The cache holds the token, under a key that names no secret.
    let cache = host.cache.borrow();
    assert_eq!(cache.len(), 1);
    assert!(cache.keys().all(|k| !k.contains(SECRET)));
}

#[test]
fn a_revoked_token_is_refreshed_once_and_the_event_stored() {
    let config = entra_config(&[]);
    let host = EntraHost::new();
    assert_eq!(push(&config, &host, "first").0, 201);
    host.valid.borrow_mut().clear();
    assert_eq!(push(&config, &host, "second").0, 201);
    assert_eq!(host.issued.get(), 2);
    // The refreshed token replaced the cached one: the next event costs no token.
    assert_eq!(push(&config, &host, "third").0, 201);
    assert_eq!(host.issued.get(), 2);
}

#[test]
fn a_token_about_to_expire_is_replaced_before_use() {
    let config = entra_config(&[]);
    let host = EntraHost::new();
    assert_eq!(push(&config, &host, "first").0, 201);
    // Issued for 3599 s at `now`: an hour later it is within the refresh margin.
    let later = now() + Duration::from_secs(3_400);
    let auth = format!("Bearer {TEST_WEBHOOK_KEY}");
    let head = head("POST", "/acr", &[("authorization", auth.as_str())]);
    let outcome = block_on(handle(
        &head,
        fixture("acr/delete.json"),
        Ok(config.clone()),
        &host,
        later,
    ));
    assert_eq!(respond(&outcome).status(), 201);
    assert_eq!(host.issued.get(), 2);
}

#[test]
fn token_endpoint_outages_are_retried_within_the_budget_then_503() {
    let config = entra_config(&[]);
    let host = EntraHost::new();
    host.script.borrow_mut().extend([
        TokenAnswer::Status(503, ""),
        TokenAnswer::Unreachable,
        TokenAnswer::Issue,
    ]);
    assert_eq!(push(&config, &host, "retried").0, 201);

    let host = EntraHost::new();
    host.script
        .borrow_mut()
        .extend(std::iter::repeat_n(TokenAnswer::Status(500, ""), 1000));
    let (status, body) = push(&config, &host, "down");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("store_unavailable") && body.contains("Entra"),
        "{body}"
    );
    assert!(host.store.documents.borrow().is_empty());
    assert!(host.elapsed() <= config.write_budget);
    // The redelivery, once the endpoint is back, stores it once.
    host.script.borrow_mut().clear();
    assert_eq!(push(&config, &host, "down").0, 201);
    assert_eq!(push(&config, &host, "down").0, 200);
}

#[test]
fn refused_credentials_are_a_configuration_error_naming_variable_and_code() {
    let config = entra_config(&[]);
    let host = EntraHost::new();
    host.script.borrow_mut().push_back(TokenAnswer::Status(
        401,
        r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#,
    ));
    let (status, body) = push(&config, &host, "x");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("configuration_error"), "{body}");
    assert!(body.contains("entra_client_secret"), "{body}");
    assert!(
        body.contains("AADSTS7000215") && body.contains("invalid_client"),
        "{body}"
    );
    assert!(!body.contains(SECRET));
    // Refusals are not retried.
    assert_eq!(host.token_requests.borrow().len(), 1);
}

#[test]
fn an_unknown_account_audience_falls_back_to_cosmos_azure_com() {
    let config = entra_config(&[]);
    let host = EntraHost::new();
    host.script.borrow_mut().push_back(TokenAnswer::Status(
        400,
        r#"{"error":"invalid_resource","error_description":"AADSTS500011: The resource principal named https://acct.documents.azure.com was not found in the tenant named t."}"#,
    ));
    assert_eq!(push(&config, &host, "x").0, 201);
    let requests = host.token_requests.borrow();
    assert_eq!(requests.len(), 2);
    let second = String::from_utf8(requests[1].body().clone()).unwrap();
    assert!(
        second.contains("scope=https%3A%2F%2Fcosmos.azure.com%2F.default"),
        "{second}"
    );

    // A configured audience is not second-guessed.
    let config = entra_config(&[("entra_audience", "https://custom.example")]);
    let host = EntraHost::new();
    host.script.borrow_mut().push_back(TokenAnswer::Status(
        400,
        r#"{"error":"invalid_resource","error_description":"AADSTS500011: not found"}"#,
    ));
    let (status, body) = push(&config, &host, "x");
    assert_eq!(status, 500);
    assert!(body.contains("entra_audience"), "{body}");
}

#[test]
fn workload_identity_reads_the_rotating_file_for_every_token() {
    let config = entra_config(&[("entra_token_source", "workload-identity")]);
    let host = EntraHost::new();
    assert_eq!(push(&config, &host, "a").0, 201);
    *host.file.borrow_mut() = "eyJ.federated.two".into();
    host.valid.borrow_mut().clear();
    assert_eq!(push(&config, &host, "b").0, 201);
    assert_eq!(host.files_read.get(), 2);
    let requests = host.token_requests.borrow();
    let last = String::from_utf8(requests[1].body().clone()).unwrap();
    assert!(
        last.ends_with("client_assertion=eyJ.federated.two"),
        "{last}"
    );
    assert!(!last.contains("client_secret"));
}

#[test]
fn cosmos_refusals_say_what_fixes_them() {
    // The account key against an account that accepts tokens only.
    let host = EntraHost::new();
    let keyed = config(&[("cosmos_endpoint", "https://acct.documents.azure.com")]);
    let (status, body) = push(&keyed, &host, "x");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Local Authorization is disabled"), "{body}");
    assert!(body.contains("set cosmos_auth=entra"), "{body}");

    // A valid token whose principal holds no data role.
    let host = EntraHost::new();
    host.no_role.set(true);
    let (status, body) = push(&entra_config(&[]), &host, "x");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("store_refused"), "{body}");
    assert!(
        body.contains("az cosmosdb sql role assignment create --account-name acct"),
        "{body}"
    );
    assert!(
        body.contains("00000000-0000-0000-0000-000000000002"),
        "{body}"
    );
}

#[test]
fn entra_configuration_is_checked() {
    let lookup = |extra: &[(&str, &str)]| {
        let mut vars: HashMap<&str, &str> = HashMap::from([
            ("cosmos_endpoint", "https://acct.documents.azure.com"),
            ("webhook_keys", TEST_WEBHOOK_KEY),
        ]);
        vars.extend(extra.iter().copied());
        Config::from_lookup(|n| vars.get(n).map(|v| v.to_string()))
    };
    // With entra, no cosmos_key is needed; with key (the default), it is.
    assert!(lookup(&[("cosmos_auth", "entra")]).is_ok());
    assert_eq!(lookup(&[]).unwrap_err().variable(), "cosmos_key");
    assert_eq!(
        lookup(&[("cosmos_auth", "aad")]).unwrap_err().variable(),
        "cosmos_auth"
    );
    // Plain http: this machine, and the metadata service's own address, only.
    for (imds, ok) in [
        ("http://169.254.169.254", true),
        ("http://169.254.169.254:80/", true),
        ("http://127.0.0.1:9", true),
        ("http://10.0.0.4", false),
        ("http://169.254.169.254:8080", false),
    ] {
        let result = lookup(&[("cosmos_auth", "entra"), ("entra_imds_endpoint", imds)]);
        assert_eq!(result.is_ok(), ok, "{imds}");
    }
    let plain_authority = lookup(&[
        ("cosmos_auth", "entra"),
        ("entra_token_source", "client-secret"),
        ("entra_tenant_id", "t"),
        ("entra_client_id", "c"),
        ("entra_client_secret", "s"),
        ("entra_authority_host", "http://169.254.169.254"),
    ]);
    assert_eq!(
        plain_authority.unwrap_err().variable(),
        "entra_authority_host"
    );
    let missing = lookup(&[
        ("cosmos_auth", "entra"),
        ("entra_token_source", "client-secret"),
    ]);
    assert_eq!(missing.unwrap_err().variable(), "entra_tenant_id");
    // Secrets stay out of Debug.
    let config = entra_config(&[]);
    assert!(!format!("{config:?}").contains(SECRET));
}
