//! What the component asks of its host, as `make wasm` leaves it: WASI 0.2 (`wasi:http` at the
//! 0.2.0 the module was built against, the rest from the preview1 proxy adapter) and
//! `fermyon:spin/variables@2.0.0`, nothing else. `make wasm` drops spin-sdk's description of the
//! whole Spin platform from the module; this checks that what is left still describes every
//! import and that the component's imports are the ones Spin, SpinKube and `acr-webhook up`
//! provide.

use acr_webhook_cli::componentize::read_component_bytes;
use acr_webhook_cli::server::new_engine;
use acr_webhook_testkit::repo_root;
use wasmtime::component::Component;

/// The module `spin.toml` names (built by `make wasm`, which `make test` runs first).
fn built_module() -> std::path::PathBuf {
    repo_root().join("target/wasm32-wasip1/release/acr_webhook.wasm")
}

#[test]
fn the_component_imports_wasi_0_2_and_spin_variables_only() {
    let bytes = read_component_bytes(&built_module()).unwrap();
    let (engine, _) = new_engine().unwrap();
    let component = Component::new(&engine, &bytes).unwrap();
    let ty = component.component_type();
    let mut imports: Vec<String> = ty
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    imports.sort();
    // Names without their versions, then the versions that matter.
    let unversioned: Vec<&str> = imports
        .iter()
        .map(|name| name.split('@').next().unwrap())
        .collect();
    assert_eq!(
        unversioned,
        [
            "fermyon:spin/variables",
            "wasi:cli/stderr",
            "wasi:cli/stdin",
            "wasi:cli/stdout",
            "wasi:clocks/monotonic-clock",
            "wasi:clocks/wall-clock",
            "wasi:http/outgoing-handler",
            "wasi:http/types",
            "wasi:io/error",
            "wasi:io/poll",
            "wasi:io/streams",
            "wasi:random/random",
        ],
        "{imports:?}"
    );
    assert!(imports.contains(&"fermyon:spin/variables@2.0.0".to_string()));
    assert!(
        imports.contains(&"wasi:http/types@0.2.0".to_string()),
        "{imports:?}"
    );
    for name in &imports {
        let version = name.split('@').nth(1).unwrap_or_default();
        assert!(
            name.starts_with("fermyon:") || version.starts_with("0.2."),
            "{name}: not WASI 0.2"
        );
    }

    let exports: Vec<String> = ty
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert_eq!(exports, ["wasi:http/incoming-handler@0.2.0"]);
}
