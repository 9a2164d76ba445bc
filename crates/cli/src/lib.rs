//! The native side of acr-webhook: a wasmtime host that serves the Spin component like
//! `spin up` (`acr-webhook up`), and the pieces it is made of.
//!
//! - [`manifest`]: spin.toml parsing and variable resolution;
//! - [`template`]: `{{ name }}` templates;
//! - [`route`]: HTTP trigger routes;
//! - [`outbound`]: the `allowed_outbound_hosts` allow-list;
//! - [`outbound_pool`]: the connection pool the component's outbound requests go through;
//! - [`componentize`]: core module to component, with the preview1 proxy adapter;
//! - [`compose`]: the Spin variables adapter plugged into the app, for stock wasi:http hosts;
//! - [`precompile`]: compiling the component in a child process (`up` never runs Cranelift);
//! - [`variables`]: the host side of `fermyon:spin/variables@2.0.0`;
//! - [`key_value`]: the host side of `fermyon:spin/key-value@2.0.0` (in memory, per server);
//! - [`federated_token`]: workload identity's token folder, preopened for the component;
//! - [`server`]: the wasmtime + hyper server;
//! - [`up`]: the `up` subcommand;
//! - [`init`]: the `init` subcommand (database and container creation);
//! - [`log`]: the host's log lines (text or JSON);
//! - [`store_client`]: the core's host for the CLI's own Cosmos calls.

pub mod bench;
pub mod componentize;
pub mod compose;
pub mod federated_token;
pub mod init;
pub mod key_value;
pub mod log;
pub mod manifest;
pub mod outbound;
pub mod outbound_pool;
pub mod precompile;
pub mod replay;
pub mod route;
pub mod server;
pub mod store_client;
pub mod template;
pub mod up;
pub mod variables;
