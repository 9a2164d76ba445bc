//! The container events are written to: the account, how requests to it are authorized, the
//! database and container ids and the partition key path. What `acr-webhook init` and every
//! request builder ([`super::request`]) need; read from the variables by
//! [`crate::config::container_from_lookup`].

use super::credential::CosmosAuth;
use super::{CosmosEndpoint, PartitionKeyPath};

/// The events container and the account it lives on. `Debug` redacts the credential.
#[derive(Debug, Clone)]
pub struct Container {
    /// Account endpoint.
    pub endpoint: CosmosEndpoint,
    /// How requests are authorized: the account key or Entra ID (secrets redacted in Debug).
    pub auth: CosmosAuth,
    /// Database id.
    pub database: String,
    /// Container id.
    pub container: String,
    /// Partition key path of the container.
    pub partition_key_path: PartitionKeyPath,
}
