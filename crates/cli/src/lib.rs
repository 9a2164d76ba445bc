//! The native side of acr-webhook: a wasmtime host that serves the Spin component like
//! `spin up` (`acr-webhook up`), and the pieces it is made of.
//!
//! - [`manifest`]: spin.toml parsing and variable resolution;
//! - [`template`]: `{{ name }}` templates;
//! - [`route`]: HTTP trigger routes;
//! - [`outbound`]: the `allowed_outbound_hosts` allow-list.

pub mod manifest;
pub mod outbound;
pub mod route;
pub mod template;
