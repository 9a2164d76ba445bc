//! The Spin variables adapter over `wasi:cli/environment`: a component that exports
//! `fermyon:spin/variables@2.0.0` and reads `SPIN_VARIABLE_<NAME>` (Spin's environment
//! provider's names), falling back to spin.toml's defaults (the shared `spin-variables-adapter`
//! crate). On `wasmtime serve`: `-S cli --env SPIN_VARIABLE_<NAME>[=VALUE]`.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "acr-webhook:spin-variables/environment",
        path: ["../../../wit", "../wit"],
        generate_all,
    });

    use exports::fermyon::spin::variables::{Error, Guest};
    use spin_variables_adapter::{Environment, VariableError};

    struct Adapter;

    impl Guest for Adapter {
        fn get(name: String) -> Result<String, Error> {
            let provider = Environment(wasi::cli::environment::get_environment());
            spin_variables_adapter::get(&name, &provider).map_err(|e| match e {
                VariableError::InvalidName(m) => Error::InvalidName(m),
                VariableError::Undefined(m) => Error::Undefined(m),
                VariableError::Provider(m) => Error::Provider(m),
            })
        }
    }

    spin_variables_adapter::no_key_value_stores!(Adapter);

    export!(Adapter);
}
