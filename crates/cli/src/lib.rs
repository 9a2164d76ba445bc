//! The native side of acr-webhook: a wasmtime host that serves the Spin component like
//! `spin up` (`acr-webhook up`), and the pieces it is made of.
//!
//! - [`manifest`]: spin.toml parsing and variable resolution;
//! - [`template`]: `{{ name }}` templates;
//! - [`route`]: HTTP trigger routes;
//! - [`outbound`]: the `allowed_outbound_hosts` allow-list;
//! - [`componentize`]: core module to component, with the preview1 proxy adapter;
//! - [`variables`]: the host side of `fermyon:spin/variables@2.0.0`;
//! - [`server`]: the wasmtime + hyper server;
//! - [`up`]: the `up` subcommand.

pub mod componentize;
pub mod manifest;
pub mod outbound;
pub mod route;
pub mod server;
pub mod template;
pub mod up;
pub mod variables;
