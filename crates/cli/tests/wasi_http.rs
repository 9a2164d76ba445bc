//! The components for stock wasi:http hosts (`make wasi-http`, which `make test` runs first):
//! the app with a Spin variables adapter plugged in imports only WASI 0.2 and `wasi:http`
//! (never `fermyon:spin/variables`), each variant exactly one value interface, and exports
//! what the app exports.

mod support;

use acr_webhook_cli::compose::compose;
use acr_webhook_cli::engine::new_engine;
use acr_webhook_testkit::repo_root;
use support::{composed_component, APP_WASI};
use wasmtime::component::Component;

/// The composed component's imports, sorted.
fn imports_of(variant: &str) -> (Vec<String>, Vec<String>) {
    let bytes = std::fs::read(composed_component(variant)).unwrap();
    let (engine, _) = new_engine().unwrap();
    let component = Component::new(&engine, &bytes).unwrap();
    let ty = component.component_type();
    let mut imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_owned()).collect();
    imports.sort();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
    (imports, exports)
}

fn assert_imports(variant: &str, value_interface: &str) {
    let (imports, exports) = imports_of(variant);
    let mut want: Vec<&str> = APP_WASI.to_vec();
    want.push(value_interface);
    want.sort();
    let unversioned: Vec<&str> = imports
        .iter()
        .map(|name| name.split('@').next().unwrap())
        .collect();
    assert_eq!(unversioned, want, "{variant}: {imports:?}");
    for name in &imports {
        let version = name.split('@').nth(1).unwrap_or_default();
        assert!(version.starts_with("0.2."), "{name}: not WASI 0.2");
    }
    assert_eq!(exports, ["wasi:http/incoming-handler@0.2.0"], "{variant}");
}

#[test]
fn the_environment_variant_imports_wasi_0_2_and_wasi_http_only() {
    assert_imports("environment", "wasi:cli/environment");
    let (imports, _) = imports_of("environment");
    assert!(imports.contains(&"wasi:cli/environment@0.2.0".to_string()));
}

#[test]
fn the_config_variant_imports_wasi_0_2_and_wasi_http_only() {
    assert_imports("config", "wasi:config/store");
    let (imports, _) = imports_of("config");
    assert!(imports.contains(&"wasi:config/store@0.2.0-rc.1".to_string()));
}

#[test]
fn the_composed_files_are_what_compose_makes_of_the_tested_module() {
    let app =
        std::fs::read(repo_root().join("target/wasm32-wasip1/release/acr_webhook.wasm")).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    for variant in ["environment", "config"] {
        let adapter = target.join(format!(
            "wasm32-wasip1/release/spin_variables_{variant}.wasm"
        ));
        let adapter = std::fs::read(&adapter)
            .unwrap_or_else(|e| panic!("{}: {e} (`make wasi-http`)", adapter.display()));
        let composed = compose(&app, &adapter).unwrap();
        assert!(
            composed == std::fs::read(composed_component(variant)).unwrap(),
            "target/wasi-http/acr_webhook.{variant}.wasm is not the current module composed: \
             run `make wasi-http`"
        );
    }
}

#[test]
fn composing_refuses_what_does_not_fit() {
    let app =
        std::fs::read(repo_root().join("target/wasm32-wasip1/release/acr_webhook.wasm")).unwrap();
    // The app as the adapter: it does not export the variables interface.
    let err = compose(&app, &app).unwrap_err();
    assert!(format!("{err:#}").contains("does not export fermyon:spin/variables@2.0.0"));
    // A composed component as the app: nothing left to plug.
    let composed = std::fs::read(composed_component("environment")).unwrap();
    let err = compose(&composed, &app).unwrap_err();
    assert!(format!("{err:#}").contains("does not import fermyon:spin/variables@2.0.0"));
}
