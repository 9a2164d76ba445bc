//! Host side of `fermyon:spin/key-value@2.0.0`, the interface spin-sdk 5 imports for
//! `spin_sdk::key_value::Store`, as `spin up` provides it to one component.
//!
//! The WIT is in the repository's top-level `wit/` folder (a verbatim copy of spin-sdk 5.2.0's
//! `key-value.wit`, bound through the one-import world `key-value-host`).
//!
//! - The only store is `default`, as in `spin up` without a runtime configuration file. It is
//!   kept in memory for as long as the server runs and is shared by every request (each request
//!   has an instance of its own, so this is where a value outlives one: the component caches
//!   its Entra ID access tokens here). Unlike `spin up`'s SQLite file, it is gone on restart.
//! - A component may open only the labels its `key_value_stores` lists: any other label is
//!   `access-denied`, as in Spin. Listing a label this host has no store for stops start-up
//!   (Spin's words: `unknown key_value_stores label`); `open` answers `no-such-store` for a
//!   listed label without a store, which start-up makes impossible for a real manifest.
//! - The store is bounded, so that a guest cannot grow the host without limit: at most
//!   [`StoreLimits::max_bytes`] bytes of keys and values in all and
//!   [`StoreLimits::max_keys`] keys; a `set` past either fails with `other` and a message
//!   saying which limit (never the key or the value). One instance may hold at most
//!   [`MAX_OPEN_STORES`] open stores at once (`store-table-full` beyond).

use anyhow::{bail, Result};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "fermyon:spin/key-value-host",
        imports: { default: trappable },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
        },
    });
}

pub use bindings::fermyon::spin::key_value::Error;
use bindings::fermyon::spin::key_value::{Host, HostStore};

/// The label of the one store this host has (Spin's default store).
pub const DEFAULT_STORE: &str = "default";

/// Stores one instance may have open at once.
pub const MAX_OPEN_STORES: usize = 16;

/// How much one store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes of keys and values together.
    pub max_bytes: usize,
    /// Number of keys.
    pub max_keys: usize,
}

impl Default for StoreLimits {
    /// 1 MiB and 1024 keys: room for hundreds of access tokens (about 2 KB each), which is
    /// what the component keeps there.
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_keys: 1024,
        }
    }
}

/// Checks a `key_value_stores` label against Spin's manifest rules: lower-case ASCII letters
/// and digits in words joined by single `_` or `-`, starting with a letter.
pub fn validate_label(label: &str) -> Result<(), String> {
    let words_ok = !label.is_empty()
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label.split(['_', '-']).all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if words_ok {
        Ok(())
    } else {
        Err(format!(
            "store label {label:?}: expected lower-case letters and digits in words joined by `_` or `-`, starting with a letter"
        ))
    }
}

/// The key-value stores of one server, shared by every request it handles.
#[derive(Debug)]
pub struct KeyValueStores {
    /// The labels the component may open (`key_value_stores`).
    allowed: BTreeSet<String>,
    /// The stores by label: only [`DEFAULT_STORE`].
    stores: HashMap<String, Arc<MemoryStore>>,
}

impl KeyValueStores {
    /// The stores for component `component_id`, which may open `labels`. Fails, as Spin does,
    /// when a label names no store this host has.
    pub fn for_component(component_id: &str, labels: &[String]) -> Result<Self> {
        Self::with_limits(component_id, labels, StoreLimits::default())
    }

    /// [`KeyValueStores::for_component`] with other limits than the default.
    pub fn with_limits(component_id: &str, labels: &[String], limits: StoreLimits) -> Result<Self> {
        let stores = HashMap::from([(
            DEFAULT_STORE.to_string(),
            Arc::new(MemoryStore::new(DEFAULT_STORE, limits)),
        )]);
        for label in labels {
            if !stores.contains_key(label) {
                bail!(
                    "unknown key_value_stores label {label:?} for component {component_id:?} \
                     (this host has only the {DEFAULT_STORE:?} store, in memory)"
                );
            }
        }
        Ok(Self {
            allowed: labels.iter().cloned().collect(),
            stores,
        })
    }

    /// What one request's instance sees: these stores, none of them open yet.
    pub fn instance(self: &Arc<Self>) -> KeyValue {
        KeyValue {
            stores: Some(self.clone()),
            open: ResourceTable::new(),
            open_count: 0,
        }
    }
}

/// One store's contents, kept in memory. Its `Debug` shows the size, never a key or value
/// (the values are access tokens).
struct MemoryStore {
    label: String,
    limits: StoreLimits,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    values: HashMap<String, Vec<u8>>,
    /// Bytes of every key and value in `values`.
    bytes: usize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries();
        f.debug_struct("MemoryStore")
            .field("label", &self.label)
            .field("keys", &entries.values.len())
            .field("bytes", &entries.bytes)
            .field("limits", &self.limits)
            .finish()
    }
}

impl MemoryStore {
    fn new(label: &str, limits: StoreLimits) -> Self {
        Self {
            label: label.to_string(),
            limits,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The entries; a panic elsewhere while the lock was held leaves them consistent (every
    /// change is a single insert or remove with its byte count), so a poisoned lock is used.
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries().values.get(key).cloned()
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        let mut entries = self.entries();
        let old = entries.values.get(&key).map(|v| key.len() + v.len());
        if old.is_none() && entries.values.len() >= self.limits.max_keys {
            return Err(Error::Other(format!(
                "key-value store {:?} is full: it holds {} keys, the most it may hold",
                self.label, self.limits.max_keys
            )));
        }
        let bytes = entries.bytes - old.unwrap_or(0) + key.len() + value.len();
        if bytes > self.limits.max_bytes {
            return Err(Error::Other(format!(
                "key-value store {:?} is full: this value would make it hold {bytes} bytes of \
                 keys and values, over its limit of {}",
                self.label, self.limits.max_bytes
            )));
        }
        entries.bytes = bytes;
        entries.values.insert(key, value);
        Ok(())
    }

    fn delete(&self, key: &str) {
        let mut entries = self.entries();
        if let Some(value) = entries.values.remove(key) {
            entries.bytes -= key.len() + value.len();
        }
    }

    fn exists(&self, key: &str) -> bool {
        self.entries().values.contains_key(key)
    }

    fn keys(&self) -> Vec<String> {
        self.entries().values.keys().cloned().collect()
    }
}

/// An open store: what a guest's `store` resource refers to.
pub struct OpenStore(Arc<MemoryStore>);

/// The key-value state of one instance: which stores it may open, and those it has open.
/// The default has no store at all (every `open` is `access-denied`), which is what a
/// component that lists no `key_value_stores` gets.
#[derive(Default)]
pub struct KeyValue {
    stores: Option<Arc<KeyValueStores>>,
    open: ResourceTable,
    open_count: usize,
}

impl KeyValue {
    fn store(&self, store: &Resource<OpenStore>) -> wasmtime::Result<&MemoryStore> {
        Ok(self.open.get(store)?.0.as_ref())
    }
}

impl Host for KeyValue {}

impl HostStore for KeyValue {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        let Some(stores) = &self.stores else {
            return Ok(Err(Error::AccessDenied));
        };
        if !stores.allowed.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(store) = stores.stores.get(&label).cloned() else {
            return Ok(Err(Error::NoSuchStore));
        };
        if self.open_count >= MAX_OPEN_STORES {
            return Ok(Err(Error::StoreTableFull));
        }
        let handle = self.open.push(OpenStore(store))?;
        self.open_count += 1;
        Ok(Ok(handle))
    }

    fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(Ok(self.store(&store)?.get(&key)))
    }

    fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.store(&store)?.set(key, value))
    }

    fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.store(&store)?.delete(&key);
        Ok(Ok(()))
    }

    fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(Ok(self.store(&store)?.exists(&key)))
    }

    fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(Ok(self.store(&store)?.keys()))
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.open.delete(store)?;
        self.open_count -= 1;
        Ok(())
    }
}

/// Adds `fermyon:spin/key-value@2.0.0` to `linker`; the functions use the instance's
/// [`KeyValue`] that `getter` returns.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> &mut KeyValue,
) -> wasmtime::Result<()> {
    bindings::fermyon::spin::key_value::add_to_linker::<T, HasSelf<KeyValue>>(linker, getter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine, Store};

    fn stores(labels: &[&str], limits: StoreLimits) -> Arc<KeyValueStores> {
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        Arc::new(KeyValueStores::with_limits("probe", &labels, limits).unwrap())
    }

    fn open(kv: &mut KeyValue, label: &str) -> Result<Resource<OpenStore>, Error> {
        HostStore::open(kv, label.to_string()).unwrap()
    }

    /// A copy of a handle, as the guest passes it again for each call.
    fn again(handle: &Resource<OpenStore>) -> Resource<OpenStore> {
        Resource::new_borrow(handle.rep())
    }

    #[test]
    fn only_the_listed_labels_open() {
        let mut none = KeyValue::default();
        assert!(matches!(
            open(&mut none, "default"),
            Err(Error::AccessDenied)
        ));
        let mut unlisted = stores(&[], StoreLimits::default()).instance();
        assert!(matches!(
            open(&mut unlisted, "default"),
            Err(Error::AccessDenied)
        ));
        let mut listed = stores(&["default"], StoreLimits::default()).instance();
        assert!(open(&mut listed, "default").is_ok());
        assert!(matches!(
            open(&mut listed, "other"),
            Err(Error::AccessDenied)
        ));
        assert!(matches!(
            open(&mut listed, "Default"),
            Err(Error::AccessDenied)
        ));
    }

    #[test]
    fn a_label_this_host_has_no_store_for_stops_start_up() {
        let err = KeyValueStores::for_component("probe", &["default".into(), "cache".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key_value_stores label \"cache\""),
            "{err}"
        );
        assert!(err.contains("\"probe\""), "{err}");
    }

    /// A listed label without a store (which start-up refuses for a manifest) is
    /// `no-such-store`, checked after access as in Spin.
    #[test]
    fn a_listed_label_without_a_store_is_no_such_store() {
        let stores = Arc::new(KeyValueStores {
            allowed: ["default".to_string(), "cache".to_string()].into(),
            stores: HashMap::new(),
        });
        let mut kv = stores.instance();
        assert!(matches!(open(&mut kv, "cache"), Err(Error::NoSuchStore)));
        assert!(matches!(open(&mut kv, "other"), Err(Error::AccessDenied)));
    }

    #[test]
    fn values_outlive_the_instance_that_set_them() {
        let stores = stores(&["default"], StoreLimits::default());
        let mut first = stores.instance();
        let store = open(&mut first, "default").unwrap();
        let set = HostStore::set(&mut first, again(&store), "token".into(), b"t0k".to_vec());
        assert!(matches!(set.unwrap(), Ok(())));
        HostStore::drop(&mut first, store).unwrap();
        drop(first);

        let mut second = stores.instance();
        let store = open(&mut second, "default").unwrap();
        let got = HostStore::get(&mut second, again(&store), "token".into()).unwrap();
        assert_eq!(got.ok(), Some(Some(b"t0k".to_vec())));
        let exists = HostStore::exists(&mut second, again(&store), "token".into()).unwrap();
        assert_eq!(exists.ok(), Some(true));
        let keys = HostStore::get_keys(&mut second, again(&store)).unwrap();
        assert_eq!(keys.ok(), Some(vec!["token".to_string()]));
        HostStore::delete(&mut second, again(&store), "token".into())
            .unwrap()
            .unwrap();
        let got = HostStore::get(&mut second, again(&store), "token".into()).unwrap();
        assert_eq!(got.ok(), Some(None));
        // Deleting what is not there is no error.
        assert!(HostStore::delete(&mut second, store, "token".into())
            .unwrap()
            .is_ok());
    }

    #[test]
    fn the_store_is_bounded_in_bytes_and_keys() {
        let limits = StoreLimits {
            max_bytes: 100,
            max_keys: 3,
        };
        let stores = stores(&["default"], limits);
        let mut kv = stores.instance();
        let store = open(&mut kv, "default").unwrap();
        let set = |kv: &mut KeyValue, key: &str, len: usize| {
            HostStore::set(kv, again(&store), key.into(), vec![7; len]).unwrap()
        };
        // 1 + 59 bytes, then 1 + 39: 100 in all, the limit.
        assert!(set(&mut kv, "a", 59).is_ok());
        assert!(set(&mut kv, "b", 39).is_ok());
        let Err(Error::Other(full)) = set(&mut kv, "c", 1) else {
            panic!("expected the byte limit")
        };
        assert!(full.contains("102 bytes") && full.contains("100"), "{full}");
        assert!(!full.contains("\"c\""), "the key is not shown: {full}");
        // Overwriting counts the difference only: 1 + 9 instead of 1 + 59.
        assert!(set(&mut kv, "a", 9).is_ok());
        assert!(set(&mut kv, "c", 1).is_ok());
        let Err(Error::Other(full)) = set(&mut kv, "d", 0) else {
            panic!("expected the key limit")
        };
        assert!(full.contains("3 keys"), "{full}");
        // Replacing a key is allowed at the key limit, and a delete frees its bytes.
        assert!(set(&mut kv, "c", 2).is_ok());
        HostStore::delete(&mut kv, again(&store), "b".into())
            .unwrap()
            .unwrap();
        assert!(set(&mut kv, "d", 80).is_ok());
        assert_eq!(
            stores.stores["default"].entries().bytes,
            1 + 9 + 1 + 2 + 1 + 80
        );
    }

    #[test]
    fn one_instance_holds_a_bounded_number_of_open_stores() {
        let stores = stores(&["default"], StoreLimits::default());
        let mut kv = stores.instance();
        let mut open_ones: Vec<_> = (0..MAX_OPEN_STORES)
            .map(|_| open(&mut kv, "default").unwrap())
            .collect();
        assert!(matches!(
            open(&mut kv, "default"),
            Err(Error::StoreTableFull)
        ));
        HostStore::drop(&mut kv, open_ones.pop().unwrap()).unwrap();
        assert!(open(&mut kv, "default").is_ok());
    }

    #[test]
    fn a_closed_handle_is_an_error_not_another_store() {
        let stores = stores(&["default"], StoreLimits::default());
        let mut kv = stores.instance();
        let store = open(&mut kv, "default").unwrap();
        let stale = again(&store);
        HostStore::drop(&mut kv, store).unwrap();
        assert!(HostStore::get(&mut kv, stale, "k".into()).is_err());
    }

    #[test]
    fn debug_output_never_shows_keys_or_values() {
        let stores = stores(&["default"], StoreLimits::default());
        let mut kv = stores.instance();
        let store = open(&mut kv, "default").unwrap();
        let set = HostStore::set(&mut kv, store, "token-key".into(), b"s3cr3t-t0k3n".to_vec());
        assert!(set.unwrap().is_ok());
        let shown = format!("{stores:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("token-key"),
            "{shown}"
        );
        assert!(shown.contains("keys: 1"), "{shown}");
    }

    #[test]
    fn labels_follow_spins_rules() {
        for ok in ["default", "token-cache", "cache_2", "a1"] {
            assert!(validate_label(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "Default", "2nd", "a--b", "a__b", "a-", "-a", "a.b", "a b",
        ] {
            assert!(validate_label(bad).is_err(), "{bad}");
        }
    }

    /// A component that imports `fermyon:spin/key-value@2.0.0` as spin-sdk's does (a resource,
    /// a variant error, strings and lists through the canonical ABI) and exports `open`
    /// (0 for a store, else 1 + the error's case), `set` (the same) and `get` (the value).
    const GUEST: &str = r#"(component
  (import "fermyon:spin/key-value@2.0.0" (instance $kv
    (export "store" (type $store (sub resource)))
    (type $e (variant (case "store-table-full") (case "no-such-store") (case "access-denied") (case "other" string)))
    (export "error" (type $error (eq $e)))
    (export "[static]store.open" (func (param "label" string) (result (result (own $store) (error $error)))))
    (export "[method]store.get" (func (param "self" (borrow $store)) (param "key" string) (result (result (option (list u8)) (error $error)))))
    (export "[method]store.set" (func (param "self" (borrow $store)) (param "key" string) (param "value" (list u8)) (result (result (error $error)))))
  ))
  (alias export $kv "store" (type $store))
  (alias export $kv "[static]store.open" (func $open))
  (alias export $kv "[method]store.get" (func $get))
  (alias export $kv "[method]store.set" (func $set))
  (core module $libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
                              (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $at) (local.get 3)))
      (local.get $at)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  (core func $open-lowered (canon lower (func $open) (memory $mem) (realloc $realloc)))
  (core func $get-lowered (canon lower (func $get) (memory $mem) (realloc $realloc)))
  (core func $set-lowered (canon lower (func $set) (memory $mem) (realloc $realloc)))
  (core func $drop (canon resource.drop $store))
  (core module $m
    (import "libc" "memory" (memory 1))
    (import "kv" "open" (func $open (param i32 i32 i32)))
    (import "kv" "get" (func $get (param i32 i32 i32 i32)))
    (import "kv" "set" (func $set (param i32 i32 i32 i32 i32 i32)))
    (import "kv" "drop" (func $drop (param i32)))
    (global $store (mut i32) (i32.const 0))
    (func $answer (result i32)
      (if (result i32) (i32.eqz (i32.load8_u (i32.const 256)))
        (then (i32.const 0))
        (else (i32.add (i32.const 1) (i32.load8_u (i32.const 260))))))
    (func (export "open") (param i32 i32) (result i32)
      (call $open (local.get 0) (local.get 1) (i32.const 256))
      (if (i32.eqz (i32.load8_u (i32.const 256)))
        (then
          (if (global.get $store) (then (call $drop (global.get $store))))
          (global.set $store (i32.load (i32.const 260)))))
      (call $answer))
    (func (export "set") (param i32 i32 i32 i32) (result i32)
      (call $set (global.get $store) (local.get 0) (local.get 1) (local.get 2) (local.get 3) (i32.const 256))
      (call $answer))
    (func (export "get") (param i32 i32) (result i32)
      (call $get (global.get $store) (local.get 0) (local.get 1) (i32.const 256))
      (if (i32.load8_u (i32.const 256)) (then unreachable))
      (i32.store8 (i32.const 300) (i32.load8_u (i32.const 260)))
      (i32.store (i32.const 304) (i32.load (i32.const 264)))
      (i32.store (i32.const 308) (i32.load (i32.const 268)))
      (i32.const 300)))
  (core instance $i (instantiate $m
    (with "libc" (instance $libc))
    (with "kv" (instance
      (export "open" (func $open-lowered))
      (export "get" (func $get-lowered))
      (export "set" (func $set-lowered))
      (export "drop" (func $drop))))))
  (func (export "open") (param "label" string) (result u32)
    (canon lift (core func $i "open") (memory $mem) (realloc $realloc)))
  (func (export "set") (param "key" string) (param "value" string) (result u32)
    (canon lift (core func $i "set") (memory $mem) (realloc $realloc)))
  (func (export "get") (param "key" string) (result (option string))
    (canon lift (core func $i "get") (memory $mem) (realloc $realloc)))
)"#;

    /// The guest above, linked with [`add_to_linker`] as `up` links it: two instances (two
    /// requests) share the store, through the canonical ABI.
    #[test]
    fn a_guest_shares_values_between_instances_through_the_linker() {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).unwrap();
        let wasm = wat::parse_str(GUEST).expect("the test guest's WAT is valid");
        let component = Component::new(&engine, wasm).expect("the test guest compiles");
        let mut linker = Linker::<KeyValue>::new(&engine);
        add_to_linker(&mut linker, |kv| kv).unwrap();
        let limits = StoreLimits {
            max_bytes: 64,
            max_keys: 4,
        };
        let stores = stores(&["default"], limits);

        let request = |stores: &Arc<KeyValueStores>| {
            let mut store = Store::new(&engine, stores.instance());
            let instance = linker.instantiate(&mut store, &component).unwrap();
            (store, instance)
        };
        let (mut store, instance) = request(&stores);
        let open = instance
            .get_typed_func::<(&str,), (u32,)>(&mut store, "open")
            .unwrap();
        let set = instance
            .get_typed_func::<(&str, &str), (u32,)>(&mut store, "set")
            .unwrap();
        // access-denied is case 2 of the error variant.
        assert_eq!(open.call(&mut store, ("cache",)).unwrap(), (3,));
        assert_eq!(open.call(&mut store, ("default",)).unwrap(), (0,));
        assert_eq!(set.call(&mut store, ("token", "eyJ0eXAi")).unwrap(), (0,));
        // Past the byte limit: `other` (case 3), and the value is not stored.
        assert_eq!(
            set.call(&mut store, ("big", &"x".repeat(64))).unwrap(),
            (4,)
        );
        drop(store);

        let (mut store, instance) = request(&stores);
        let open = instance
            .get_typed_func::<(&str,), (u32,)>(&mut store, "open")
            .unwrap();
        let get = instance
            .get_typed_func::<(&str,), (Option<String>,)>(&mut store, "get")
            .unwrap();
        assert_eq!(open.call(&mut store, ("default",)).unwrap(), (0,));
        assert_eq!(
            get.call(&mut store, ("token",)).unwrap(),
            (Some("eyJ0eXAi".to_string()),)
        );
        assert_eq!(get.call(&mut store, ("big",)).unwrap(), (None,));
    }
}
