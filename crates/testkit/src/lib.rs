//! Test support for acr-webhook's end-to-end tests: real local peers on free 127.0.0.1 ports,
//! stopped when their handle drops (also while a failing test unwinds).
//!
//! - [`CosmosStore`]: `@vercel/cosmosdb-server` (Node), the Cosmos-compatible store, plain HTTP,
//!   in memory; `stop()`/`restart()` keep the port.
//! - [`CaptureServer`]: a small HTTP server recording what it receives (a stand-in webhook
//!   endpoint) and answering a status that can change at run time.
//! - [`ChildGuard`], [`free_port`], [`wait_for_port`]: the building blocks.
//! - [`http::request`]: a minimal blocking HTTP/1.1 client for `http://` URLs.
//!
//! Needs `node` (20) with `npm ci` run at the repository root. Unix only (process groups); on Linux a child is also killed by the kernel if the test
//! process dies without unwinding.

#![cfg(unix)]
#![warn(missing_docs)]

mod capture;
mod cosmos;
pub mod http;
mod net;
mod process;

pub use capture::{describe_event, summarize, CaptureServer, CapturedRequest};
pub use cosmos::{cosmos_cli_path, repo_root, CosmosStore, COSMOS_CLI_ENV, NODE_ENV};
pub use net::{free_port, port_is_open, wait_for_port, wait_for_port_closed, PortReservation};
pub use process::{log_tail, ChildGuard};
