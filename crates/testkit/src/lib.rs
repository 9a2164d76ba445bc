//! Test support for acr-webhook's end-to-end tests: real local peers on free 127.0.0.1 ports,
//! stopped when their handle drops (also while a failing test unwinds).
//!
//! - [`CosmosStore`]: `@vercel/cosmosdb-server` (Node), the Cosmos-compatible store, plain HTTP,
//!   in memory; `stop()`/`restart()` keep the port.
//! - [`Registry`]: a real CNCF Distribution registry (`docker-registry` 2.8) that sends real
//!   webhook notifications; images are pushed and deleted with `skopeo`.
//! - [`CaptureServer`]: a small HTTP server recording what it receives (a stand-in webhook
//!   endpoint) and answering a status that can change at run time.
//! - [`FakeEntra`]: a fake Microsoft Entra ID (managed identity over IMDS, and the v2.0 token
//!   endpoint with a client secret or a workload identity's federated token) issuing signed
//!   tokens, with failures on demand.
//! - [`LockedStore`]: a front before the store that behaves like a Cosmos DB account with
//!   local (key) authentication disabled: Entra tokens only, data plane only, role checks.
//! - [`ChildGuard`], [`free_port`], [`wait_for_port`]: the building blocks.
//! - [`http::request`]: a minimal blocking HTTP/1.1 client for `http://` URLs.
//!
//! A peer's log and config live in a temp dir removed on drop, unless the test is panicking
//! or [`KEEP_ENV`] is set: then the dir is kept and its path printed.
//!
//! Needs on the machine: `node` (20) with `npm ci` run at the repository root,
//! `docker-registry` and `skopeo` (Debian packages). Unix only (process groups); on Linux a
//! child is also killed by the kernel if the test process dies without unwinding.
//!
//! ```no_run
//! use acr_webhook_testkit::{CaptureServer, CosmosStore, NotifyEndpoint, Registry};
//! use std::time::Duration;
//!
//! let store = CosmosStore::start();
//! store.create_database("registry");
//! let hook = CaptureServer::start(200);
//! let registry = Registry::start(Some(
//!     NotifyEndpoint::new(hook.url()).header("Authorization", "Bearer test-key"),
//! ));
//! let image = registry.push_image("team/app", "v1");
//! let event = hook.wait_for_event(
//!     |e| e["action"] == "push" && e["target"]["tag"] == "v1",
//!     Duration::from_secs(10),
//! );
//! assert_eq!(event["target"]["digest"], image.digest.as_str());
//! ```

#![cfg(unix)]
#![warn(missing_docs)]

mod capture;
mod cosmos;
mod entra;
mod fault_proxy;
pub mod http;
mod http_server;
mod locked_store;
mod net;
mod process;
mod registry;

pub use capture::{describe_event, summarize, CaptureServer, CapturedRequest};
pub use cosmos::{cosmos_cli_path, repo_root, CosmosStore, COSMOS_CLI_ENV, NODE_ENV};
pub use entra::{
    Claims, EntraStats, FakeEntra, FederatedTokenFile, IssuedToken, Outage, Principal,
    PrincipalKind, Protocol, Rejection, TokenRequest, TokenValidator, COSMOS_AUDIENCE,
    IMDS_API_VERSION, JWT_BEARER, SERVICE_ACCOUNT_SUBJECT, TOKEN_EXCHANGE_AUDIENCE,
};
pub use fault_proxy::{
    Fault, FaultKind, FaultPlan, FaultProxy, FaultScope, FaultStats, XorShift64,
};
pub use locked_store::{
    DataRole, LockedStats, LockedStore, Outcome, StoreRequest, ITEMS_CREATE, READ_METADATA,
};
pub use net::{
    free_port, port_is_open, raise_open_files_limit, wait_for_port, wait_for_port_closed,
    PortReservation,
};
pub use process::{log_tail, proc_status_kib, ChildGuard, KEEP_ENV};
pub use registry::{
    sha256_digest, ManifestFormat, NotifyEndpoint, PushOptions, PushedImage, Registry,
    DOCKER_MANIFEST_V2, EVENTS_MEDIA_TYPE, OCI_MANIFEST_V1, REGISTRY_BIN_ENV, SKOPEO_BIN_ENV,
};
