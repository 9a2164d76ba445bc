//! Host side of `fermyon:spin/variables@2.0.0`, the interface spin-sdk 5 imports for
//! `spin_sdk::variables::get`.
//!
//! The WIT is in the repository's top-level `wit/` folder (a verbatim copy of spin-sdk
//! 5.2.0's `variables.wit` plus a one-import world).

use crate::manifest::{ComponentVariables, LookupError};
use wasmtime::component::{HasSelf, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "fermyon:spin/variables-host",
    });
}

pub use bindings::fermyon::spin::variables::Error;

impl bindings::fermyon::spin::variables::Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, Error> {
        match ComponentVariables::get(self, &name) {
            Ok(value) => Ok(value.to_string()),
            Err(LookupError::InvalidName(msg)) => Err(Error::InvalidName(msg)),
            Err(LookupError::Undefined(msg)) => Err(Error::Undefined(msg)),
        }
    }
}

/// Adds `fermyon:spin/variables@2.0.0` to `linker`; `get` reads the store's
/// [`ComponentVariables`] through `getter`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> &mut ComponentVariables,
) -> wasmtime::Result<()> {
    bindings::fermyon::spin::variables::add_to_linker::<T, HasSelf<ComponentVariables>>(
        linker, getter,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bindings::fermyon::spin::variables::Host;
    use std::collections::BTreeMap;

    #[test]
    fn host_get_maps_errors_to_the_wit_variant() {
        let mut vars = ComponentVariables::new(
            "probe",
            BTreeMap::from([("cosmos_database".to_string(), "acr".to_string())]),
        );
        assert_eq!(
            Host::get(&mut vars, "cosmos_database".into()).unwrap(),
            "acr"
        );
        assert!(matches!(
            Host::get(&mut vars, "Cosmos".into()),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(
            Host::get(&mut vars, "absent".into()),
            Err(Error::Undefined(msg)) if msg.contains("absent")
        ));
    }
}
