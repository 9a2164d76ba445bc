//! Protocol logic of acr-webhook, independent of any host: Azure Container Registry events,
//! the webhook key check, the stored document, Cosmos DB master-key signing, requests and
//! answers, and the mapping of every outcome to an HTTP answer.
//!
//! Nothing here performs I/O or reads the clock: the host passes the request, the
//! configuration ([`ConfigSource`]), outbound HTTP and a monotonic clock ([`Host`]) and `now`.
//! The Spin component, the native CLI and the tests all drive this same code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acr;
pub mod answer;
pub mod auth;
pub mod config;
pub mod cosmos;
pub mod distribution;
pub mod document;
pub mod event_reads;
pub mod eventgrid;
pub mod filter;
pub mod host;
pub mod indexing;
mod json;
pub mod read_api;
pub mod replay;
pub mod retention;
pub mod retry;
pub mod signer;
pub mod store;
pub mod summary;
mod text;
pub mod time;
pub mod ui;
pub mod url;
pub mod webhook;

pub use answer::{respond, BatchOutcome, Failure, Success};
pub use config::{Config, ConfigError, ConfigSource, VariableSource};
pub use host::{
    known_header, BodyError, Host, RequestBody, TransportError, ANSWER_HEADERS, REQUEST_HEADERS,
};
pub use webhook::{handle, log_line};
