//! The component's configuration: Spin variables, read through a lookup function so that the
//! same code serves Spin, the project's wasmtime host and plain tests.

use std::fmt;
use std::time::Duration;

use crate::auth::WebhookKeys;
use crate::cosmos::{CosmosEndpoint, MasterKey, PartitionKeyPath};
use crate::filter::{ScopeFilter, VAR_EXCLUDE, VAR_INCLUDE};

/// Spin variable: the Cosmos DB account endpoint, e.g. `https://myaccount.documents.azure.com:443`.
pub const VAR_COSMOS_ENDPOINT: &str = "cosmos_endpoint";
/// Spin variable (secret): the Cosmos DB account key, base64 as Azure shows it.
pub const VAR_COSMOS_KEY: &str = "cosmos_key";
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

/// Spin variable (secret, optional): keys for the read API (`GET /events`), separated by
/// commas; when unset the webhook keys are accepted there too.
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
    pub store: StoreConfig,
    /// Keys a sender may present.
    pub webhook_keys: WebhookKeys,
    /// Time budget of one request, from arrival to answer.
    pub write_budget: Duration,
    /// Keys for the read API, when they differ from the webhook keys.
    pub read_keys: Option<WebhookKeys>,
    /// Which repositories and tags are stored (`include` / `exclude`).
    pub filter: ScopeFilter,
    /// Store Distribution pull, mount and blob events too.
    pub keep_pulls_and_blobs: bool,
}

/// The Cosmos DB side of the configuration (also what `acr-webhook init` needs).
#[derive(Clone)]
pub struct StoreConfig {
    /// Account endpoint.
    pub endpoint: CosmosEndpoint,
    /// Account key (redacted in Debug).
    pub key: MasterKey,
    /// Database id.
    pub database: String,
    /// Container id.
    pub container: String,
    /// Partition key path of the container.
    pub partition_key_path: PartitionKeyPath,
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
        let store = StoreConfig::from_lookup(&lookup)?;
        let webhook_keys =
            WebhookKeys::parse(&required(&lookup, VAR_WEBHOOK_KEYS)?).map_err(|reason| {
                ConfigError::Invalid {
                    name: VAR_WEBHOOK_KEYS,
                    reason: reason.to_string(),
                }
            })?;
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
        let read_keys = optional(&lookup, VAR_READ_KEYS)
            .map(|list| WebhookKeys::parse(&list))
            .transpose()
            .map_err(|reason| ConfigError::Invalid {
                name: VAR_READ_KEYS,
                reason: reason.to_string(),
            })?;
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
        Ok(Self {
            store,
            webhook_keys,
            write_budget,
            read_keys,
            filter,
            keep_pulls_and_blobs,
        })
    }
}

impl StoreConfig {
    /// Reads the Cosmos DB variables only.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let endpoint =
            CosmosEndpoint::parse(&required(&lookup, VAR_COSMOS_ENDPOINT)?).map_err(|reason| {
                ConfigError::Invalid {
                    name: VAR_COSMOS_ENDPOINT,
                    reason: reason.to_string(),
                }
            })?;
        let key = MasterKey::from_base64(&required(&lookup, VAR_COSMOS_KEY)?).map_err(|e| {
            ConfigError::Invalid {
                name: VAR_COSMOS_KEY,
                reason: e.to_string(),
            }
        })?;
        let database = resource_id(&lookup, VAR_COSMOS_DATABASE, DEFAULT_DATABASE)?;
        let container = resource_id(&lookup, VAR_COSMOS_CONTAINER, DEFAULT_CONTAINER)?;
        let path = optional(&lookup, VAR_PARTITION_KEY_PATH)
            .unwrap_or_else(|| DEFAULT_PARTITION_KEY_PATH.to_owned());
        let partition_key_path =
            PartitionKeyPath::parse(&path).map_err(|reason| ConfigError::Invalid {
                name: VAR_PARTITION_KEY_PATH,
                reason: reason.to_string(),
            })?;
        Ok(Self {
            endpoint,
            key,
            database,
            container,
            partition_key_path,
        })
    }
}

fn optional(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn required(
    lookup: impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    optional(lookup, name).ok_or(ConfigError::Missing(name))
}

/// A database or container id: Cosmos forbids `/ \ ? #` and more than 255 characters.
fn resource_id(
    lookup: impl Fn(&str) -> Option<String>,
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
            .finish()
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("endpoint", &self.endpoint)
            .field("key", &self.key)
            .field("database", &self.database)
            .field("container", &self.container)
            .field("partition_key_path", &self.partition_key_path)
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
    fn debug_shows_no_secret() {
        let c = test_config(&[]);
        let debug = format!("{c:?}");
        assert!(!debug.contains(TEST_COSMOS_KEY));
        assert!(!debug.contains(TEST_WEBHOOK_KEY));
        assert!(debug.contains("REDACTED"));
    }
}
