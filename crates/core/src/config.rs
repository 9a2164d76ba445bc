//! The component's configuration: Spin variables, read through a lookup function so that the
//! same code serves Spin, the project's wasmtime host and plain tests.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use crate::auth::WebhookKeys;
use crate::cosmos::entra::{ClientSecret, EntraSettings, TokenSource};
use crate::cosmos::{
    Container, CosmosAuth, CosmosEndpoint, InvalidEndpoint, MasterKey, PartitionKeyPath,
};
use crate::filter::{ScopeFilter, VAR_EXCLUDE, VAR_INCLUDE};

/// Spin variable: the Cosmos DB account endpoint, e.g. `https://myaccount.documents.azure.com:443`.
pub const VAR_COSMOS_ENDPOINT: &str = "cosmos_endpoint";
/// Spin variable (secret): the Cosmos DB account key, base64 as Azure shows it; required
/// with `cosmos_auth=key`, neither required nor read with `cosmos_auth=entra`.
pub const VAR_COSMOS_KEY: &str = "cosmos_key";
/// Spin variable: `key` (the default: the account key signs) or `entra` (Microsoft Entra ID
/// tokens, for accounts with key access turned off).
pub const VAR_COSMOS_AUTH: &str = "cosmos_auth";
/// Spin variable: `managed-identity` (default), `client-secret` or `workload-identity`.
pub const VAR_ENTRA_TOKEN_SOURCE: &str = "entra_token_source";
/// Spin variable: the client id of a user-assigned identity or an app registration.
pub const VAR_ENTRA_CLIENT_ID: &str = "entra_client_id";
/// Spin variable: the directory (tenant) id.
pub const VAR_ENTRA_TENANT_ID: &str = "entra_tenant_id";
/// Spin variable (secret): the app registration's client secret.
pub const VAR_ENTRA_CLIENT_SECRET: &str = "entra_client_secret";
/// Spin variable: the Entra authority (default [`DEFAULT_ENTRA_AUTHORITY_HOST`]).
pub const VAR_ENTRA_AUTHORITY_HOST: &str = "entra_authority_host";
/// Spin variable: the instance metadata service (default [`DEFAULT_ENTRA_IMDS_ENDPOINT`]).
pub const VAR_ENTRA_IMDS_ENDPOINT: &str = "entra_imds_endpoint";
/// Spin variable: the token audience (default: the account's own
/// `https://<account>.documents.azure.com`, then `https://cosmos.azure.com`).
pub const VAR_ENTRA_AUDIENCE: &str = "entra_audience";
/// Spin variable: the federated token file of workload identity (default
/// [`DEFAULT_FEDERATED_TOKEN_FILE`], where the AKS webhook mounts it).
pub const VAR_ENTRA_FEDERATED_TOKEN_FILE: &str = "entra_federated_token_file";
/// Spin variable (secret, optional): the key continuation tokens of the read API are sealed
/// with. Unset: derived from the account key (`cosmos_auth=key`) or from the webhook keys
/// (`cosmos_auth=entra`, where there is no account key).
pub const VAR_CONTINUATION_KEY: &str = "continuation_key";

/// The public cloud's Entra authority.
pub const DEFAULT_ENTRA_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// The Azure Instance Metadata Service (plain http, link-local, the one off-machine plain
/// http address accepted).
pub const DEFAULT_ENTRA_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Where the AKS workload identity webhook mounts the federated token
/// (`AZURE_FEDERATED_TOKEN_FILE`).
pub const DEFAULT_FEDERATED_TOKEN_FILE: &str = "/var/run/secrets/azure/tokens/azure-identity-token";
/// Spin variable: the database id (default [`DEFAULT_DATABASE`]).
pub const VAR_COSMOS_DATABASE: &str = "cosmos_database";
/// Spin variable: the container id (default [`DEFAULT_CONTAINER`]).
pub const VAR_COSMOS_CONTAINER: &str = "cosmos_container";
/// Spin variable: the container's partition key path (default [`DEFAULT_PARTITION_KEY_PATH`]).
pub const VAR_PARTITION_KEY_PATH: &str = "partition_key_path";
/// Spin variable (secret): webhook keys separated by commas; any of them is accepted, so a key
/// can be rotated without downtime.
pub const VAR_WEBHOOK_KEYS: &str = "webhook_keys";

/// Spin variable: the time budget of a request in milliseconds: body, store writes, retries
/// and waits all end within it (default [`DEFAULT_WRITE_BUDGET_MS`]; ACR waits 5 s).
pub const VAR_WRITE_BUDGET_MS: &str = "write_budget_ms";
/// Default request budget: 4 s, under ACR's 5 s timeout.
pub const DEFAULT_WRITE_BUDGET_MS: u64 = 4000;

/// Spin variable (secret, optional): keys for the read API (`GET /events*`) and the page's data,
/// separated by commas. Reading is opt-in: when it is unset or blank the read API answers 403
/// `reads_disabled`. No key may be both a webhook key and a read key.
pub const VAR_READ_KEYS: &str = "read_keys";
/// Spin variable: `true` to also store Distribution pull, mount and blob (layer) events.
pub const VAR_KEEP_PULLS_AND_BLOBS: &str = "keep_pulls_and_blobs";

/// Default database id, as the replaced Azure Function used.
pub const DEFAULT_DATABASE: &str = "acr";
/// Default container id.
pub const DEFAULT_CONTAINER: &str = "events";
/// Default partition key path: `/id`, what the replaced function's container used.
pub const DEFAULT_PARTITION_KEY_PATH: &str = "/id";

/// Everything the webhook needs to run.
#[derive(Clone)]
pub struct Config {
    /// Where and how to write.
    pub store: Container,
    /// Keys a sender may present.
    pub webhook_keys: WebhookKeys,
    /// Time budget of one request, from arrival to answer.
    pub write_budget: Duration,
    /// Keys for the read API; `None` when reading is disabled (the default).
    pub read_keys: Option<WebhookKeys>,
    /// Which repositories and tags are stored (`include` / `exclude`).
    pub filter: ScopeFilter,
    /// Store Distribution pull, mount and blob events too.
    pub keep_pulls_and_blobs: bool,
    /// `continuation_key`, when set.
    pub continuation_key: Option<String>,
}

/// A variable is missing or unusable. Never carries a variable's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set or is empty.
    #[error("the Spin variable `{0}` is not set (or is empty)")]
    Missing(&'static str),
    /// A variable is set but its value cannot be used.
    #[error("the Spin variable `{name}` is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// Why, without the value.
        reason: String,
    },
}

impl ConfigError {
    /// Name of the variable at fault.
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Missing(name) | ConfigError::Invalid { name, .. } => name,
        }
    }
}

impl Config {
    /// Reads the whole configuration; `lookup(name)` returns the variable's value, `None` when
    /// it is not defined. Empty values count as missing.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let store = container_from_lookup(&lookup)?;
        let (webhook_keys, read_keys) = keys(&lookup)?;
        let write_budget = match optional(&lookup, VAR_WRITE_BUDGET_MS) {
            None => Duration::from_millis(DEFAULT_WRITE_BUDGET_MS),
            Some(text) => match text.parse::<u64>() {
                Ok(ms @ 200..=60_000) => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: VAR_WRITE_BUDGET_MS,
                        reason: "expected milliseconds from 200 to 60000".into(),
                    })
                }
            },
        };
        let filter = ScopeFilter::from_variables(
            optional(&lookup, VAR_INCLUDE).as_deref(),
            optional(&lookup, VAR_EXCLUDE).as_deref(),
        )
        .map_err(|e| ConfigError::Invalid {
            name: e.variable,
            reason: e.error.to_string(),
        })?;
        let keep_pulls_and_blobs = match optional(&lookup, VAR_KEEP_PULLS_AND_BLOBS).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: VAR_KEEP_PULLS_AND_BLOBS,
                    reason: "expected true or false".into(),
                })
            }
        };
        let continuation_key = optional(&lookup, VAR_CONTINUATION_KEY);
        if continuation_key
            .as_ref()
            .is_some_and(|k| k.chars().count() < 16)
        {
            return Err(ConfigError::Invalid {
                name: VAR_CONTINUATION_KEY,
                reason: "expected at least 16 characters (`openssl rand -hex 32`)".into(),
            });
        }
        Ok(Self {
            store,
            webhook_keys,
            write_budget,
            read_keys,
            filter,
            keep_pulls_and_blobs,
            continuation_key,
        })
    }
}

impl Config {
    /// A 32-byte secret for `label`, the same on every replica and known to no sender or
    /// reader: derived from `continuation_key` when it is set, else from the account key, else
    /// (Entra ID, where there is no account key) from the webhook keys. It changes when the key
    /// it comes from is rotated.
    pub fn derive_secret(&self, label: &[u8]) -> [u8; 32] {
        match (&self.continuation_key, &self.store.auth) {
            (Some(key), _) => crate::auth::derive_secret(key.as_bytes(), label),
            (None, CosmosAuth::Key(key)) => key.derive(label),
            (None, CosmosAuth::Entra(_)) => self.webhook_keys.derive(label),
        }
    }
}

/// Reads the Cosmos DB variables only (what `acr-webhook init` needs).
pub fn container_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Container, ConfigError> {
    let endpoint =
        CosmosEndpoint::parse(&required(&lookup, VAR_COSMOS_ENDPOINT)?).map_err(|reason| {
            ConfigError::Invalid {
                name: VAR_COSMOS_ENDPOINT,
                reason: reason.to_string(),
            }
        })?;
    let auth = cosmos_auth(&lookup)?;
    let database = resource_id(&lookup, VAR_COSMOS_DATABASE, DEFAULT_DATABASE)?;
    let container = resource_id(&lookup, VAR_COSMOS_CONTAINER, DEFAULT_CONTAINER)?;
    let path = optional(&lookup, VAR_PARTITION_KEY_PATH)
        .unwrap_or_else(|| DEFAULT_PARTITION_KEY_PATH.to_owned());
    let partition_key_path =
        PartitionKeyPath::parse(&path).map_err(|reason| ConfigError::Invalid {
            name: VAR_PARTITION_KEY_PATH,
            reason: reason.to_string(),
        })?;
    Ok(Container {
        endpoint,
        auth,
        database,
        container,
        partition_key_path,
    })
}

/// `cosmos_auth` and the variables of the way it names: the account key, or where Entra ID
/// tokens come from. With `entra`, `cosmos_key` is not read.
fn cosmos_auth(lookup: &dyn Fn(&str) -> Option<String>) -> Result<CosmosAuth, ConfigError> {
    let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
        name,
        reason: reason.into(),
    };
    match optional(lookup, VAR_COSMOS_AUTH).as_deref() {
        None | Some("key") => {}
        Some("entra") => return entra_settings(lookup).map(CosmosAuth::Entra),
        Some(_) => return Err(invalid(VAR_COSMOS_AUTH, "expected key or entra")),
    }
    MasterKey::from_base64(&required(lookup, VAR_COSMOS_KEY)?)
        .map(CosmosAuth::Key)
        .map_err(|e| invalid(VAR_COSMOS_KEY, &e.to_string()))
}

/// The Entra ID variables of `cosmos_auth=entra`.
fn entra_settings(lookup: &dyn Fn(&str) -> Option<String>) -> Result<EntraSettings, ConfigError> {
    let endpoint = |name: &'static str, default: &str| {
        let text = optional(lookup, name).unwrap_or_else(|| default.to_owned());
        endpoint_variable(name, &text)
    };
    let source = match optional(lookup, VAR_ENTRA_TOKEN_SOURCE).as_deref() {
        None | Some("managed-identity") => TokenSource::ManagedIdentity {
            imds_endpoint: endpoint(VAR_ENTRA_IMDS_ENDPOINT, DEFAULT_ENTRA_IMDS_ENDPOINT)?,
            client_id: optional(lookup, VAR_ENTRA_CLIENT_ID),
        },
        Some("client-secret") => TokenSource::ClientSecret {
            authority_host: endpoint(VAR_ENTRA_AUTHORITY_HOST, DEFAULT_ENTRA_AUTHORITY_HOST)?,
            tenant_id: required(lookup, VAR_ENTRA_TENANT_ID)?,
            client_id: required(lookup, VAR_ENTRA_CLIENT_ID)?,
            secret: ClientSecret::new(required(lookup, VAR_ENTRA_CLIENT_SECRET)?),
        },
        Some("workload-identity") => TokenSource::WorkloadIdentity {
            authority_host: endpoint(VAR_ENTRA_AUTHORITY_HOST, DEFAULT_ENTRA_AUTHORITY_HOST)?,
            tenant_id: required(lookup, VAR_ENTRA_TENANT_ID)?,
            client_id: required(lookup, VAR_ENTRA_CLIENT_ID)?,
            token_file: optional(lookup, VAR_ENTRA_FEDERATED_TOKEN_FILE)
                .unwrap_or_else(|| DEFAULT_FEDERATED_TOKEN_FILE.to_owned()),
        },
        Some(_) => {
            return Err(ConfigError::Invalid {
                name: VAR_ENTRA_TOKEN_SOURCE,
                reason: "expected managed-identity, client-secret or workload-identity".into(),
            })
        }
    };
    let audience = optional(lookup, VAR_ENTRA_AUDIENCE)
        .map(|text| match text.strip_prefix("https://") {
            Some(rest) if !rest.is_empty() && !rest.contains(['?', '#', '@', ' ']) => Ok(text),
            _ => Err(ConfigError::Invalid {
                name: VAR_ENTRA_AUDIENCE,
                reason: "expected https://<resource>, such as https://cosmos.azure.com".into(),
            }),
        })
        .transpose()?;
    Ok(EntraSettings { source, audience })
}

/// A token endpoint: `https://host[:port]`, or plain `http://` to this machine or, for
/// `entra_imds_endpoint` only, to the instance metadata service's own address (`169.254.169.254`, which Azure serves over plain
/// http on the link-local network only).
fn endpoint_variable(name: &'static str, text: &str) -> Result<String, ConfigError> {
    match CosmosEndpoint::parse(text) {
        Ok(endpoint) => Ok(endpoint.as_str().to_owned()),
        Err(InvalidEndpoint::PlainHttpOffMachine)
            if name == VAR_ENTRA_IMDS_ENDPOINT
                && matches!(
                    text.trim().trim_end_matches('/'),
                    "http://169.254.169.254" | "http://169.254.169.254:80"
                ) =>
        {
            Ok(DEFAULT_ENTRA_IMDS_ENDPOINT.to_owned())
        }
        Err(reason) => Err(ConfigError::Invalid {
            name,
            reason: reason.to_string(),
        }),
    }
}

/// `webhook_keys` and `read_keys`, parsed and checked together: no key may be in both (a
/// webhook key never reads, a read key never writes). `acr-webhook up` calls this at start.
pub fn keys(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(WebhookKeys, Option<WebhookKeys>), ConfigError> {
    let webhook = webhook_keys(&lookup)?;
    let read = read_keys(&lookup)?;
    if read.as_ref().is_some_and(|r| r.shares_a_key_with(&webhook)) {
        return Err(ConfigError::Invalid {
            name: VAR_READ_KEYS,
            reason: "a key is also in `webhook_keys`; a webhook key must never read, so give \
                     readers keys of their own"
                .into(),
        });
    }
    Ok((webhook, read))
}

/// The `webhook_keys` variable, parsed.
fn webhook_keys(lookup: &dyn Fn(&str) -> Option<String>) -> Result<WebhookKeys, ConfigError> {
    WebhookKeys::parse(&required(lookup, VAR_WEBHOOK_KEYS)?).map_err(|reason| {
        ConfigError::Invalid {
            name: VAR_WEBHOOK_KEYS,
            reason: reason.to_string(),
        }
    })
}

/// The `read_keys` variable, parsed; `None` when it is unset or empty.
fn read_keys(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<WebhookKeys>, ConfigError> {
    optional(lookup, VAR_READ_KEYS)
        .map(|list| WebhookKeys::parse(&list))
        .transpose()
        .map_err(|reason| ConfigError::Invalid {
            name: VAR_READ_KEYS,
            reason: reason.to_string(),
        })
}

/// Where [`handle`](crate::handle) gets its configuration from, in two steps: the keys that
/// admit a request first, the whole configuration only for a request they admitted. A request
/// without a valid key then costs the host one or two variable reads instead of all of them,
/// and learns nothing about the rest of the configuration (a broken `cosmos_key` answers 401 to
/// it, not 500).
pub trait ConfigSource {
    /// The keys a sender must present on the webhook routes (`webhook_keys`).
    fn webhook_keys(&self) -> Result<WebhookKeys, ConfigError>;
    /// The keys the read API accepts (`read_keys`); `None` when reading is disabled (unset or
    /// blank).
    fn read_keys(&self) -> Result<Option<WebhookKeys>, ConfigError>;
    /// The whole configuration.
    fn config(self) -> Result<Config, ConfigError>;
}

/// A configuration read already (tests and hosts that load it once).
impl ConfigSource for Result<Config, ConfigError> {
    fn webhook_keys(&self) -> Result<WebhookKeys, ConfigError> {
        self.as_ref()
            .map(|config| config.webhook_keys.clone())
            .map_err(Clone::clone)
    }

    fn read_keys(&self) -> Result<Option<WebhookKeys>, ConfigError> {
        self.as_ref()
            .map(|config| config.read_keys.clone())
            .map_err(Clone::clone)
    }

    fn config(self) -> Result<Config, ConfigError> {
        self
    }
}

/// Variables read on demand through a lookup function (Spin's `variables::get`), each at most
/// once per request.
pub struct VariableSource<F> {
    lookup: F,
    /// The values looked up so far, by name.
    seen: RefCell<Vec<(String, Option<String>)>>,
}

impl<F: Fn(&str) -> Option<String>> VariableSource<F> {
    /// `lookup(name)` returns the variable's value, `None` when it is not defined.
    pub fn new(lookup: F) -> Self {
        Self {
            lookup,
            seen: RefCell::new(Vec::new()),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        if let Some((_, value)) = self.seen.borrow().iter().find(|(seen, _)| seen == name) {
            return value.clone();
        }
        let value = (self.lookup)(name);
        self.seen
            .borrow_mut()
            .push((name.to_owned(), value.clone()));
        value
    }
}

impl<F: Fn(&str) -> Option<String>> ConfigSource for VariableSource<F> {
    fn webhook_keys(&self) -> Result<WebhookKeys, ConfigError> {
        webhook_keys(&|name| self.get(name))
    }

    fn read_keys(&self) -> Result<Option<WebhookKeys>, ConfigError> {
        read_keys(&|name| self.get(name))
    }

    fn config(self) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| self.get(name))
    }
}

impl<F> fmt::Debug for VariableSource<F> {
    /// Names only: the values include secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self.seen.borrow();
        f.debug_struct("VariableSource")
            .field(
                "read",
                &seen.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The variable `name`, trimmed; `None` when unset or empty. The helpers take the lookup as
/// `&dyn`: generic ones were compiled once per caller's closure (1.6 KB of the component).
fn optional(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn required(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    optional(lookup, name).ok_or(ConfigError::Missing(name))
}

/// A database or container id: Cosmos forbids `/ \ ? #` and more than 255 characters.
fn resource_id(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let id = optional(lookup, name).unwrap_or_else(|| default.to_owned());
    if id.chars().count() > 255 || id.contains(['/', '\\', '?', '#']) {
        return Err(ConfigError::Invalid {
            name,
            reason: "Cosmos ids may not contain / \\ ? # nor exceed 255 characters".into(),
        });
    }
    Ok(id)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field("webhook_keys", &self.webhook_keys)
            .field("write_budget", &self.write_budget)
            .field("read_keys", &self.read_keys)
            .field("filter", &self.filter)
            .field("keep_pulls_and_blobs", &self.keep_pulls_and_blobs)
            .field(
                "continuation_key",
                &self.continuation_key.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The Cosmos emulator's well-known key, for tests only.
    pub(crate) const TEST_COSMOS_KEY: &str =
        "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
    /// Webhook keys used in tests only.
    pub(crate) const TEST_WEBHOOK_KEY: &str = "test-webhook-key-0f1e2d3c4b5a";
    pub(crate) const TEST_WEBHOOK_KEY_2: &str = "test-webhook-key-rotated-in-9988";

    pub(crate) fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = [
            (VAR_COSMOS_ENDPOINT, "http://127.0.0.1:8081"),
            (VAR_COSMOS_KEY, TEST_COSMOS_KEY),
            (VAR_WEBHOOK_KEYS, TEST_WEBHOOK_KEY),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            map.insert(k.to_string(), v.to_string());
        }
        map
    }

    pub(crate) fn test_config(extra: &[(&str, &str)]) -> Config {
        let map = vars(extra);
        Config::from_lookup(|n| map.get(n).cloned()).unwrap()
    }

    /// The names a [`counting_source`] was asked for, in order.
    type Asked = std::rc::Rc<RefCell<Vec<String>>>;

    /// A [`VariableSource`] over `map` that records every name it is asked for.
    fn counting_source(
        map: HashMap<String, String>,
    ) -> (VariableSource<impl Fn(&str) -> Option<String>>, Asked) {
        let asked = std::rc::Rc::new(RefCell::new(Vec::new()));
        let log = asked.clone();
        let source = VariableSource::new(move |name: &str| {
            log.borrow_mut().push(name.to_owned());
            map.get(name).cloned()
        });
        (source, asked)
    }

    #[test]
    fn the_keys_are_read_without_the_rest() {
        let (source, asked) = counting_source(vars(&[]));
        let keys = source.webhook_keys().unwrap();
        assert!(keys.accepts(TEST_WEBHOOK_KEY.as_bytes()));
        assert_eq!(*asked.borrow(), [VAR_WEBHOOK_KEYS]);

        // Unset or blank read keys: reading is disabled, and the webhook keys are not read.
        for unset in [None, Some(""), Some("  ")] {
            let mut map = vars(&[]);
            if let Some(value) = unset {
                map.insert(VAR_READ_KEYS.into(), value.into());
            }
            let (source, asked) = counting_source(map);
            assert!(source.read_keys().unwrap().is_none());
            assert_eq!(*asked.borrow(), [VAR_READ_KEYS]);
        }

        let (source, asked) = counting_source(vars(&[(
            VAR_READ_KEYS,
            "reader-key-one-0001, reader-key-two-0002",
        )]));
        let keys = source.read_keys().unwrap().unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(b"reader-key-two-0002"));
        assert!(!keys.accepts(TEST_WEBHOOK_KEY.as_bytes()));
        assert_eq!(*asked.borrow(), [VAR_READ_KEYS]);
    }

    #[test]
    fn each_variable_is_looked_up_once_per_source() {
        let (source, asked) = counting_source(vars(&[]));
        source.webhook_keys().unwrap();
        source.read_keys().unwrap();
        let config = source.config().unwrap();
        assert!(config.webhook_keys.accepts(TEST_WEBHOOK_KEY.as_bytes()));
        assert_eq!(config.store.database, test_config(&[]).store.database);
        let asked = asked.borrow();
        let mut unique = asked.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), asked.len(), "{asked:?}");
        assert!(asked.contains(&VAR_COSMOS_KEY.to_string()));
    }

    #[test]
    fn key_errors_and_config_errors_come_from_their_own_step() {
        // A broken Cosmos key does not stop the key check; a broken webhook key list does.
        let (source, _) = counting_source(vars(&[(VAR_COSMOS_KEY, "not base64!")]));
        assert!(source.webhook_keys().is_ok());
        assert_eq!(source.config().unwrap_err().variable(), VAR_COSMOS_KEY);
        let mut map = vars(&[]);
        map.remove(VAR_WEBHOOK_KEYS);
        let (source, _) = counting_source(map);
        assert_eq!(
            source.webhook_keys().unwrap_err(),
            ConfigError::Missing(VAR_WEBHOOK_KEYS)
        );
        assert!(source.read_keys().unwrap().is_none());
        let (source, _) = counting_source(vars(&[(VAR_READ_KEYS, ",")]));
        assert_eq!(source.read_keys().unwrap_err().variable(), VAR_READ_KEYS);
    }

    #[test]
    fn a_variable_source_debug_names_variables_not_values() {
        let (source, _) = counting_source(vars(&[]));
        source.webhook_keys().unwrap();
        let debug = format!("{source:?}");
        assert!(debug.contains(VAR_WEBHOOK_KEYS), "{debug}");
        for (_, value) in vars(&[]) {
            assert!(!debug.contains(&value), "{debug}");
        }
    }

    #[test]
    fn defaults_apply() {
        let c = test_config(&[]);
        assert_eq!(c.store.database, "acr");
        assert_eq!(c.store.container, "events");
        assert_eq!(c.store.partition_key_path.as_str(), "/id");
        assert_eq!(c.store.endpoint.as_str(), "http://127.0.0.1:8081");
    }

    #[test]
    fn missing_and_empty_required_variables_are_named() {
        for name in [VAR_COSMOS_ENDPOINT, VAR_COSMOS_KEY, VAR_WEBHOOK_KEYS] {
            let mut map = vars(&[]);
            map.remove(name);
            let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
            assert_eq!(err, ConfigError::Missing(name));
            map.insert(name.into(), "  ".into());
            let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
            assert_eq!(err, ConfigError::Missing(name));
        }
    }

    #[test]
    fn invalid_values_are_named_without_the_value() {
        let map = vars(&[(VAR_COSMOS_KEY, "secret-but-not-base64!!")]);
        let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
        assert_eq!(err.variable(), VAR_COSMOS_KEY);
        assert!(!err.to_string().contains("secret-but-not-base64"));

        let map = vars(&[(VAR_COSMOS_CONTAINER, "a/b")]);
        let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
        assert_eq!(err.variable(), VAR_COSMOS_CONTAINER);

        let map = vars(&[(VAR_PARTITION_KEY_PATH, "id")]);
        let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
        assert_eq!(err.variable(), VAR_PARTITION_KEY_PATH);

        for bad in ["0", "199", "60001", "4s", "-1"] {
            let map = vars(&[(VAR_WRITE_BUDGET_MS, bad)]);
            let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
            assert_eq!(err.variable(), VAR_WRITE_BUDGET_MS);
        }
        assert_eq!(
            test_config(&[(VAR_WRITE_BUDGET_MS, "1500")]).write_budget,
            Duration::from_millis(1500)
        );

        for (name, bad) in [
            (VAR_READ_KEYS, "has space"),
            (VAR_INCLUDE, "a:b:c"),
            (VAR_EXCLUDE, "Upper"),
            (VAR_KEEP_PULLS_AND_BLOBS, "yes"),
        ] {
            let map = vars(&[(name, bad)]);
            let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
            assert_eq!(err.variable(), name);
        }

        let map = vars(&[(VAR_COSMOS_ENDPOINT, "ftp://x")]);
        let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
        assert_eq!(err.variable(), VAR_COSMOS_ENDPOINT);
    }

    #[test]
    fn reading_is_opt_in_and_a_key_never_both_writes_and_reads() {
        assert!(test_config(&[]).read_keys.is_none());
        let reader = "reader-key-0123456789";
        let config = test_config(&[(VAR_READ_KEYS, reader)]);
        let keys = config.read_keys.unwrap();
        assert!(keys.accepts(reader.as_bytes()));
        assert!(!keys.accepts(TEST_WEBHOOK_KEY.as_bytes()));

        let both = format!("{reader},{TEST_WEBHOOK_KEY}");
        let map = vars(&[(VAR_READ_KEYS, &both)]);
        let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
        assert_eq!(err.variable(), VAR_READ_KEYS);
        assert!(!err.to_string().contains(TEST_WEBHOOK_KEY), "{err}");
    }

    #[test]
    fn weak_keys_are_configuration_errors_naming_the_variable() {
        let weak = "only-15-chars!!";
        for name in [VAR_WEBHOOK_KEYS, VAR_READ_KEYS] {
            let map = vars(&[(name, weak)]);
            let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
            assert_eq!(err.variable(), name);
            assert!(err.to_string().contains("16"), "{err}");
            assert!(!err.to_string().contains(weak), "{err}");
        }
        let (source, _) = counting_source(vars(&[(VAR_WEBHOOK_KEYS, weak)]));
        assert_eq!(
            source.webhook_keys().unwrap_err().variable(),
            VAR_WEBHOOK_KEYS
        );
        let (source, _) = counting_source(vars(&[(VAR_READ_KEYS, weak)]));
        assert_eq!(source.read_keys().unwrap_err().variable(), VAR_READ_KEYS);
    }

    #[test]
    fn plain_http_reaches_only_this_machine() {
        for ok in [
            "http://127.0.0.1:8081",
            "http://127.8.9.10",
            "http://localhost:8081/",
            "http://LOCALHOST",
            "http://[::1]:8081",
            "https://myaccount.documents.azure.com:443",
            "https://10.0.0.5",
        ] {
            let map = vars(&[(VAR_COSMOS_ENDPOINT, ok)]);
            assert!(Config::from_lookup(|n| map.get(n).cloned()).is_ok(), "{ok}");
        }
        for plain in [
            "http://myaccount.documents.azure.com:443",
            "http://10.0.0.5:8081",
            "http://128.0.0.1",
            "http://[::2]",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://[::ffff:10.0.0.1]",
        ] {
            let map = vars(&[(VAR_COSMOS_ENDPOINT, plain)]);
            let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
            assert_eq!(err.variable(), VAR_COSMOS_ENDPOINT, "{plain}");
            assert!(err.to_string().contains("https://"), "{err}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = test_config(&[]);
        let debug = format!("{c:?}");
        assert!(!debug.contains(TEST_COSMOS_KEY));
        assert!(!debug.contains(TEST_WEBHOOK_KEY));
        assert!(debug.contains("REDACTED"));
    }
}
