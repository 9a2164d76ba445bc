//! The Spin variables adapter over `wasi:config/store@0.2.0-rc.1`: a component that exports
//! `fermyon:spin/variables@2.0.0` and reads each application variable under its spin.toml name
//! from the config store, falling back to spin.toml's defaults (the shared
//! `spin-variables-adapter` crate). On `wasmtime serve`: `-S config -S config-var=NAME=VALUE`.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "acr-webhook:spin-variables/config",
        path: ["../../../wit", "../wit"],
        generate_all,
    });

    use exports::fermyon::spin::variables::{Error, Guest};
    use spin_variables_adapter::{Provider, VariableError};
    use wasi::config::store;

    /// `wasi:config/store`, keyed by the variable's name.
    struct ConfigStore;

    impl Provider for ConfigStore {
        fn get(&self, name: &str) -> Result<Option<String>, String> {
            store::get(name).map_err(|e| match e {
                store::Error::Upstream(m) => format!("wasi:config/store: {m}"),
                store::Error::Io(m) => format!("wasi:config/store: I/O: {m}"),
            })
        }

        fn how_to_set(&self, name: &str) -> String {
            format!(
                "set the config variable {name}, e.g. `wasmtime serve -S config-var={name}=...`"
            )
        }
    }

    struct Adapter;

    impl Guest for Adapter {
        fn get(name: String) -> Result<String, Error> {
            spin_variables_adapter::get(&name, &ConfigStore).map_err(|e| match e {
                VariableError::InvalidName(m) => Error::InvalidName(m),
                VariableError::Undefined(m) => Error::Undefined(m),
                VariableError::Provider(m) => Error::Provider(m),
            })
        }
    }

    spin_variables_adapter::no_key_value_stores!(Adapter);

    export!(Adapter);
}
