//! `fermyon:spin/variables@2.0.0` for hosts that are not Spin: the variables spin.toml declares,
//! resolved the way Spin resolves them, from a value provider a stock WASI 0.2 host has.
//!
//! The app component (spin-sdk 5) imports `fermyon:spin/variables@2.0.0`; stock `wasmtime
//! serve` does not provide it and refuses the component at link time. The components built
//! from `environment/` and `config/` export that interface and import only
//! `wasi:cli/environment` or `wasi:config/store`; `acr-webhook compose` plugs one into the app
//! (`make wasi-http`). This crate is what they share, with no wasm dependency:
//!
//! - the table build.rs generates from spin.toml ([`APP_VARIABLES`], [`COMPONENT_VARIABLES`]),
//!   so names, defaults and `required` are written once, in spin.toml;
//! - [`get`]: Spin's lookup. The name must follow Spin's rules (`invalid-name` otherwise; the
//!   rules are `spin-manifest-rules`', shared with `acr-webhook up`) and be one of the
//!   component's variables (`undefined` otherwise); its template is rendered with
//!   each application variable's value from the provider, or its `default`. A `required`
//!   variable without a value is `undefined` with a message naming it: Spin refuses to start
//!   such an app, but a wasi:http host has no start-up hook to refuse in, so the app sees no
//!   value and answers `500 configuration_error` naming the variable, as it does under `spin
//!   up` or `acr-webhook up` when the variable is set but empty.
//! - [`no_key_value_stores!`]: the adapters' `fermyon:spin/key-value@2.0.0`, which has no
//!   store: every `open` answers `no-such-store`. Spin keeps a store for the whole app; a stock
//!   wasi:http host gives each request a fresh instance of the app and of the adapter, with
//!   nothing that outlives it to keep values in (`wasmtime serve`'s `-S keyvalue` is
//!   wasi:keyvalue, in memory per request, and not in the pinned build). The app then does
//!   without the store (it fetches an Entra ID token per request instead of caching it).

pub use spin_manifest_rules::Part;
use spin_manifest_rules::{env_var_name, validate_variable_name};

include!(concat!(env!("OUT_DIR"), "/spin_toml.rs"));

/// Why [`get`] has no value (the cases of `fermyon:spin/variables`' `error` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    /// The name breaks Spin's naming rules.
    InvalidName(String),
    /// The component has no such variable, or a required one has no value.
    Undefined(String),
    /// The provider failed.
    Provider(String),
}

/// Where application variables' values come from.
pub trait Provider {
    /// The value of application variable `name` (as spin.toml spells it), `None` when unset.
    fn get(&self, name: &str) -> Result<Option<String>, String>;
    /// How a user sets `name` with this provider, for messages.
    fn how_to_set(&self, name: &str) -> String;
}

/// Values from environment variables `SPIN_VARIABLE_<NAME>` (Spin's environment provider).
pub struct Environment(pub Vec<(String, String)>);

impl Provider for Environment {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        let key = env_var_name(name);
        Ok(self
            .0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn how_to_set(&self, name: &str) -> String {
        format!("set the environment variable {}", env_var_name(name))
    }
}

/// The value of the component's variable `name`, as Spin resolves it.
pub fn get(name: &str, provider: &impl Provider) -> Result<String, VariableError> {
    validate_variable_name(name).map_err(VariableError::InvalidName)?;
    let (_, parts) = COMPONENT_VARIABLES
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| {
            VariableError::Undefined(format!(
                "no variable {name:?} for component {COMPONENT_ID:?}"
            ))
        })?;
    let mut value = String::new();
    for part in *parts {
        match part {
            Part::Literal(text) => value.push_str(text),
            Part::Variable(app) => value.push_str(&app_value(app, provider)?),
        }
    }
    Ok(value)
}

/// An application variable's value: the provider's, else spin.toml's `default`.
fn app_value(name: &str, provider: &impl Provider) -> Result<String, VariableError> {
    if let Some(value) = provider.get(name).map_err(VariableError::Provider)? {
        return Ok(value);
    }
    match APP_VARIABLES.iter().find(|(known, _)| *known == name) {
        Some((_, Some(default))) => Ok((*default).to_owned()),
        Some((_, None)) => Err(VariableError::Undefined(format!(
            "the required variable {name:?} has no value ({})",
            provider.how_to_set(name)
        ))),
        // build.rs refuses templates naming undeclared variables.
        None => Err(VariableError::Undefined(format!("no variable {name:?}"))),
    }
}

/// Implements the exported `fermyon:spin/key-value@2.0.0` for `$adapter` in a component crate
/// whose wit-bindgen output is in scope as `exports`: no store exists, so `open` answers
/// `no-such-store` for every label, and the store resource is a type without values (its
/// methods can never be called).
#[macro_export]
macro_rules! no_key_value_stores {
    ($adapter:ty) => {
        /// A store that cannot exist: `open` never makes one.
        pub enum NoStore {}

        impl exports::fermyon::spin::key_value::Guest for $adapter {
            type Store = NoStore;
        }

        impl exports::fermyon::spin::key_value::GuestStore for NoStore {
            fn open(
                _label: String,
            ) -> Result<
                exports::fermyon::spin::key_value::Store,
                exports::fermyon::spin::key_value::Error,
            > {
                Err(exports::fermyon::spin::key_value::Error::NoSuchStore)
            }

            fn get(
                &self,
                _key: String,
            ) -> Result<Option<Vec<u8>>, exports::fermyon::spin::key_value::Error> {
                match *self {}
            }

            fn set(
                &self,
                _key: String,
                _value: Vec<u8>,
            ) -> Result<(), exports::fermyon::spin::key_value::Error> {
                match *self {}
            }

            fn delete(&self, _key: String) -> Result<(), exports::fermyon::spin::key_value::Error> {
                match *self {}
            }

            fn exists(
                &self,
                _key: String,
            ) -> Result<bool, exports::fermyon::spin::key_value::Error> {
                match *self {}
            }

            fn get_keys(&self) -> Result<Vec<String>, exports::fermyon::spin::key_value::Error> {
                match *self {}
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// spin.toml, parsed here with a TOML parser, against the generated table.
    #[test]
    fn the_table_is_spin_toml() {
        let package: String = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let text = std::fs::read_to_string(format!("{package}/../../spin.toml")).unwrap();
        let declared: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "[variables]")
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(" = ").map(|(name, _)| name))
            .collect();
        let generated: Vec<&str> = APP_VARIABLES.iter().map(|(name, _)| *name).collect();
        let mut sorted = declared.clone();
        sorted.sort();
        assert_eq!(generated, sorted);
        assert!(declared.contains(&"webhook_keys"));
        assert_eq!(COMPONENT_ID, "acr-webhook");
        assert_eq!(COMPONENT_VARIABLES.len(), APP_VARIABLES.len());
        assert!(APP_VARIABLES.contains(&("webhook_keys", None)));
        // Not required: with cosmos_auth = "entra" there is no key.
        assert!(APP_VARIABLES.contains(&("cosmos_key", Some(""))));
        assert!(APP_VARIABLES.contains(&("cosmos_auth", Some("key"))));
        assert!(APP_VARIABLES.contains(&("cosmos_database", Some("acr"))));
        assert!(APP_VARIABLES.contains(&("read_keys", Some(""))));
        assert!(COMPONENT_VARIABLES.contains(&("cosmos_key", &[Part::Variable("cosmos_key")])));
    }

    #[test]
    fn values_come_from_the_provider_then_the_default() {
        let provider = env(&[
            ("SPIN_VARIABLE_COSMOS_KEY", "k"),
            ("SPIN_VARIABLE_COSMOS_CONTAINER", "audit"),
            ("SPIN_VARIABLE_READ_KEYS", ""),
            ("cosmos_database", "not-this-spelling"),
            ("SPIN_VARIABLE_cosmos_database", "nor-this"),
        ]);
        assert_eq!(get("cosmos_key", &provider).unwrap(), "k");
        assert_eq!(get("cosmos_container", &provider).unwrap(), "audit");
        assert_eq!(get("cosmos_database", &provider).unwrap(), "acr");
        assert_eq!(get("read_keys", &provider).unwrap(), "", "set but empty");
    }

    #[test]
    fn a_required_variable_without_a_value_is_undefined_and_named() {
        let err = get("webhook_keys", &env(&[])).unwrap_err();
        let VariableError::Undefined(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("\"webhook_keys\""), "{message}");
        assert!(message.contains("SPIN_VARIABLE_WEBHOOK_KEYS"), "{message}");
    }

    #[test]
    fn names_follow_spins_rules_and_the_component_list() {
        let provider = env(&[("SPIN_VARIABLE_NOT_DECLARED", "x")]);
        for bad in ["", "Cosmos_key", "1x", "x_", "a__b", "a-b"] {
            assert!(
                matches!(get(bad, &provider), Err(VariableError::InvalidName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            get("not_declared", &provider),
            Err(VariableError::Undefined(m)) if m.contains("acr-webhook")
        ));
    }

    struct Failing;
    impl Provider for Failing {
        fn get(&self, _: &str) -> Result<Option<String>, String> {
            Err("store unreachable".into())
        }
        fn how_to_set(&self, _: &str) -> String {
            String::new()
        }
    }

    #[test]
    fn provider_errors_are_reported() {
        assert_eq!(
            get("cosmos_key", &Failing),
            Err(VariableError::Provider("store unreachable".into()))
        );
    }
}
