//! Turning the core module `cargo build --target wasm32-wasip1` produces into a component, at
//! load time, as Spin does (`spin_componentize::componentize_if_necessary`).
//!
//! The module carries `component-type:*` custom sections describing its WIT world; the
//! preview1 imports it has (`fd_write` for `eprintln!`, `random_get`, ...) are satisfied by
//! wasmtime's *proxy* adapter, which maps them onto `wasi:cli/stdout|stderr`, `wasi:random`
//! and `wasi:clocks` and imports no filesystem and no environment.

use anyhow::{Context, Result};
use std::borrow::Cow;
use std::path::Path;
use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER;
use wit_component::ComponentEncoder;

/// The import module name the preview1 adapter replaces.
const PREVIEW1_MODULE: &str = "wasi_snapshot_preview1";

/// The Wasm magic number every binary starts with.
const WASM_MAGIC: [u8; 4] = *b"\0asm";

/// Bytes 4..8 of a component (version 0x0d, layer 1); a core module has version 1, layer 0.
const COMPONENT_VERSION_AND_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Whether `bytes` is a component rather than a core module.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == WASM_MAGIC && bytes[4..8] == COMPONENT_VERSION_AND_LAYER
}

/// Returns `bytes` unchanged when it is already a component, otherwise encodes the core
/// module as a component with the preview1 proxy adapter.
pub fn componentize_if_necessary(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    if bytes.len() < 8 || bytes[..4] != WASM_MAGIC {
        anyhow::bail!("not a WebAssembly binary");
    }
    if is_component(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let component = ComponentEncoder::default()
        .validate(true)
        .module(bytes)
        .context("the core module has no usable component-type section (was it built with spin-sdk / wit-bindgen?)")?
        .adapter(PREVIEW1_MODULE, WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER)
        .context("cannot load the wasi_snapshot_preview1 proxy adapter")?
        .encode()
        .context("cannot encode the core module as a component")?;
    Ok(Cow::Owned(component))
}

/// Reads `path` and componentizes it if needed.
pub fn read_component_bytes(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read component source {}", path.display()))?;
    let component = componentize_if_necessary(&bytes)
        .with_context(|| format!("cannot load {}", path.display()))?;
    Ok(component.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_components_and_modules() {
        let module = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(!is_component(&module));
        assert!(is_component(&component));
        assert!(matches!(
            componentize_if_necessary(&component),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(componentize_if_necessary(b"hello world").is_err());
        assert!(componentize_if_necessary(b"").is_err());
        // A valid header followed by a broken section.
        let truncated = [0, b'a', b's', b'm', 1, 0, 0, 0, 1, 5, 0];
        assert!(componentize_if_necessary(&truncated).is_err());
    }

    #[test]
    fn empty_module_becomes_an_empty_component() {
        // It has no exports, so serving it fails later with a clear error (no incoming-handler).
        let empty_module = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let component = componentize_if_necessary(&empty_module).unwrap();
        assert!(is_component(&component));
    }
}
