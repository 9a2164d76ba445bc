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
//! - [`engine`]: the wasmtime engine (pooling allocator when the machine allows it);
//! - [`precompile`]: compiling the component in a child process (`up` never runs Cranelift);
//! - [`variables`]: the host side of `fermyon:spin/variables@2.0.0`;
//! - [`key_value`]: the host side of `fermyon:spin/key-value@2.0.0` (in memory, per server);
//! - [`federated_token`]: workload identity's token folder, preopened for the component;
//! - [`server`]: the wasmtime + hyper server;
//! - [`metrics`]: `up --metrics-listen`: the server's counters in the Prometheus text format;
//! - [`process_stats`]: the process's own figures, from `/proc`;
//! - [`connections`]: the bound on its open client connections;
//! - [`slots`]: its request slots, the reads' share of them, the liveness probe;
//! - [`guest_deadline`]: the guest deadline, which does not count a slow reader's time;
//! - [`instance_pool`]: the pooling allocator's limits, sized from the slots;
//! - [`held_body`]: an answer's body holding a slot or a mark until it is done;
//! - [`up`]: the `up` subcommand;
//! - [`init`]: the `init` subcommand (database and container creation);
//! - [`log`]: the host's log lines (text or JSON);
//! - [`replay`]: the `replay` subcommand: failed deliveries from `az acr webhook list-events`
//!   sent again;
//! - [`instantiate_timing`]: `acr-webhook bench-instantiate`, the in-process timing of
//!   instantiating the component and handling one request that `make bench` reports;
//! - [`receiver`]: the receiver `replay` and `export` talk to (URL, key, what is never shown);
//! - [`export`]: the `export` subcommand, and [`csv`] its CSV rules;
//! - [`native_host`]: the core's `Host` for the CLI's own HTTP calls (`init` to Cosmos,
//!   `replay` and `export` to the receiver).

pub mod componentize;
pub mod compose;
pub mod connections;
pub mod csv;
pub mod engine;
pub mod export;
pub mod federated_token;
pub mod guest_deadline;
pub mod held_body;
pub mod init;
pub mod instance_pool;
pub mod instantiate_timing;
pub mod key_value;
pub mod log;
pub mod manifest;
pub mod metrics;
pub mod native_host;
pub mod outbound;
pub mod outbound_pool;
pub mod precompile;
pub mod process_stats;
pub mod receiver;
pub mod replay;
pub mod route;
pub mod server;
pub mod slots;
pub mod template;
pub mod up;
pub mod variables;
