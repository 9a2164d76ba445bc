//! `acr-webhook compose` (hidden; `make wasi-http` runs it): the component for stock `wasi:http`
//! hosts such as `wasmtime serve`, which do not provide `fermyon:spin/variables@2.0.0` nor
//! `fermyon:spin/key-value@2.0.0`.
//!
//! The app (the Spin module spin.toml names, componentized with the preview1 proxy adapter as
//! `up` and Spin do) imports the variables interface, and key-value when its code uses a store;
//! a Spin variables adapter component (`adapters/spin-variables/`) exports both, the variables
//! over `wasi:cli/environment` or `wasi:config/store`, key-value without any store (every
//! `open` is `no-such-store`). Composing the two (wasm-compose: both instantiated, each adapter
//! export the app imports given to it, the app's exports exported) leaves a component that
//! imports only WASI 0.2 and `wasi:http` (crates/cli/tests/wasi_http.rs pins the list).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use wasm_compose::graph::{Component, CompositionGraph, EncodeOptions};
use wasmparser::{Validator, WasmFeatures};

use crate::componentize::componentize_if_necessary;

/// The interface the adapter exports and the app imports.
pub const SPIN_VARIABLES: &str = "fermyon:spin/variables@2.0.0";
/// The interface the adapter exports and the app imports when its code opens a store.
pub const SPIN_KEY_VALUE: &str = "fermyon:spin/key-value@2.0.0";

/// `acr-webhook compose`.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// The app: the core module spin.toml names (or a component).
    #[arg(long)]
    pub app: PathBuf,
    /// The Spin variables adapter: a core module built from adapters/spin-variables (or a
    /// component) exporting fermyon:spin/variables@2.0.0.
    #[arg(long)]
    pub adapter: PathBuf,
    /// Where to write the composed component.
    #[arg(long, short)]
    pub output: PathBuf,
}

/// Runs `compose`.
pub fn run(args: ComposeArgs) -> Result<()> {
    let read = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let composed = compose(&read(&args.app)?, &read(&args.adapter)?)?;
    if let Some(dir) = args.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = args.output.with_extension("wasm.tmp");
    std::fs::write(&tmp, &composed).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "composed: {} {} bytes",
        args.output.display(),
        composed.len()
    );
    Ok(())
}

/// The app with the adapter plugged into its `fermyon:spin/variables` import, and into its
/// `fermyon:spin/key-value` import when it has one.
pub fn compose(app: &[u8], adapter: &[u8]) -> Result<Vec<u8>> {
    let app = componentize_if_necessary(app).context("the app")?;
    let adapter = componentize_if_necessary(adapter).context("the adapter")?;
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut graph = CompositionGraph::new();
    let app = graph.add_component(
        Component::from_bytes(&mut validator, "app", app.into_owned()).context("the app")?,
    )?;
    let adapter = graph.add_component(
        Component::from_bytes(&mut validator, "spin-variables", adapter.into_owned())
            .context("the adapter")?,
    )?;
    let import_of = |name| {
        graph
            .get_component(app)
            .and_then(|c| c.import_by_name(name))
            .map(|(index, _)| index)
    };
    let mut plugs = Vec::new();
    for name in [SPIN_VARIABLES, SPIN_KEY_VALUE] {
        let Some(import) = import_of(name) else {
            if name == SPIN_VARIABLES {
                bail!("the app does not import {SPIN_VARIABLES}: nothing to compose");
            }
            continue;
        };
        let Some((export, _, _)) = graph
            .get_component(adapter)
            .and_then(|c| c.export_by_name(name))
        else {
            bail!("the adapter does not export {name}");
        };
        plugs.push((name, export, import));
    }
    let app_instance = graph.instantiate(app)?;
    let adapter_instance = graph.instantiate(adapter)?;
    for (name, export, import) in plugs {
        graph
            .connect(adapter_instance, Some(export), app_instance, import)
            .with_context(|| format!("the adapter's {name} does not fit the app's import"))?;
    }
    graph
        .encode(EncodeOptions {
            define_components: true,
            export: Some(app_instance),
            validate: true,
        })
        .context("cannot encode the composed component")
}
