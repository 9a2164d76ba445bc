//! The component as `acr-webhook up` loads it, through the real binary and the real module:
//! compiled in a child process (`acr-webhook precompile`) whose output the server serves, and
//! what it asks of its host, as `make wasm` leaves it: WASI 0.2 (`wasi:http` at the 0.2.0 the
//! module was built against, `wasi:filesystem` for workload identity's token file, the rest
//! from the preview1 proxy adapter), `fermyon:spin/variables@2.0.0` and
//! `fermyon:spin/key-value@2.0.0`, nothing else. (`make wasm` drops spin-sdk's description of
//! the whole Spin platform from the module; the import test checks that what is left still
//! describes every import and that the imports are the ones Spin, SpinKube and `up` provide.)

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use acr_webhook_cli::componentize::read_component_bytes;
use acr_webhook_cli::engine::{self, new_engine, EngineOptions};
use acr_webhook_cli::server::AppServer;
use acr_webhook_cli::up;
use acr_webhook_testkit::repo_root;
use support::{fixture, Stack, APP_WASI, EMULATOR_KEY, TEST_KEY};
use wasmtime::component::Component;

fn host_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_acr-webhook"))
}

fn precompile(component: &Path, keep_resident: usize) -> Output {
    Command::new(host_binary())
        .arg("precompile")
        .arg("--component")
        .arg(component)
        .arg(format!("--keep-resident={keep_resident}"))
        .output()
        .unwrap()
}

/// A scratch folder in the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("acr-webhook-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_child_writes_a_component_this_host_links_and_serves() {
    let app = up::load_app(
        &repo_root().join("spin.toml"),
        &[
            "cosmos_endpoint=http://127.0.0.1:1".to_string(),
            format!("cosmos_key={EMULATOR_KEY}"),
            format!("webhook_keys={TEST_KEY}"),
        ],
    )
    .unwrap();
    let options = EngineOptions::default();
    let out = precompile(&app.source, options.keep_resident);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (engine, _) = engine::new_engine_with(options).unwrap();
    // SAFETY: the bytes are this test's own build of `acr-webhook precompile`'s output.
    let component = unsafe { Component::deserialize(&engine, &out.stdout) }.unwrap();
    AppServer::with_component(&engine, &component, &app, "127.0.0.1:0".parse().unwrap())
        .expect("the precompiled component links and exports wasi:http/incoming-handler");
}

#[test]
fn a_file_that_is_not_wasm_is_reported_with_its_path() {
    let scratch = Scratch::new("precompile-garbage");
    let garbage = scratch.0.join("broken.wasm");
    std::fs::write(&garbage, b"this is not a component").unwrap();

    let out = precompile(&garbage, 0);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.wasm"), "{stderr}");
    assert!(stderr.contains("not a WebAssembly binary"), "{stderr}");

    // `up` reports the child's error once, as its own, and exits without serving.
    let manifest = std::fs::read_to_string(repo_root().join("spin.toml"))
        .unwrap()
        .replace(
            "source = \"target/wasm32-wasip1/release/acr_webhook.wasm\"",
            &format!("source = {:?}", garbage.display().to_string()),
        );
    assert!(manifest.contains("broken.wasm"));
    std::fs::write(scratch.0.join("spin.toml"), manifest).unwrap();
    let out = Command::new(host_binary())
        .args(["up", "--listen", "127.0.0.1:0", "--from"])
        .arg(&scratch.0)
        .env("SPIN_VARIABLE_COSMOS_ENDPOINT", "http://127.0.0.1:1")
        .env("SPIN_VARIABLE_COSMOS_KEY", EMULATOR_KEY)
        .env("SPIN_VARIABLE_WEBHOOK_KEYS", TEST_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.wasm"), "{stderr}");
    assert!(stderr.contains("not a WebAssembly binary"), "{stderr}");
    assert!(!stderr.contains("in this process"), "{stderr}");
    assert_eq!(
        stderr.matches("not a WebAssembly binary").count(),
        1,
        "{stderr}"
    );
}

/// `up` refuses to start with a key the component would refuse (issue 15, item 6): under 16
/// characters, in either list, a key in both lists, or an example key (`PLACEHOLDER-…`). The error names the variable and never
/// the value; nothing listens.
#[test]
fn up_refuses_to_start_with_weak_or_shared_keys() {
    let weak = "fifteen-chars-k";
    let cases = [
        (weak.to_string(), None, "webhook_keys"),
        (format!("{TEST_KEY},{weak}"), None, "webhook_keys"),
        (TEST_KEY.to_string(), Some(weak.to_string()), "read_keys"),
        (
            TEST_KEY.to_string(),
            Some(format!("reader-key-0123456789,{TEST_KEY}")),
            "read_keys",
        ),
        // deploy/secret.example.yaml's values: long enough, but public.
        ("PLACEHOLDER-webhook-key".to_string(), None, "webhook_keys"),
        (
            TEST_KEY.to_string(),
            Some("PLACEHOLDER-read-key".to_string()),
            "read_keys",
        ),
    ];
    for (webhook_keys, read_keys, variable) in cases {
        let mut cmd = Command::new(host_binary());
        cmd.args(["up", "--listen", "127.0.0.1:0", "--from"])
            .arg(repo_root().join("spin.toml"))
            .env("SPIN_VARIABLE_COSMOS_ENDPOINT", "http://127.0.0.1:1")
            .env("SPIN_VARIABLE_COSMOS_KEY", EMULATOR_KEY)
            .env("SPIN_VARIABLE_WEBHOOK_KEYS", &webhook_keys)
            .env_remove("SPIN_VARIABLE_READ_KEYS");
        if let Some(read_keys) = &read_keys {
            cmd.env("SPIN_VARIABLE_READ_KEYS", read_keys);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{variable}: up started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("refusing to start"), "{stderr}");
        assert!(stderr.contains(&format!("`{variable}`")), "{stderr}");
        assert!(
            !stderr.contains(weak) && !stderr.contains(TEST_KEY),
            "{stderr}"
        );
        let example = [Some(webhook_keys.as_str()), read_keys.as_deref()]
            .into_iter()
            .flatten()
            .find(|k| k.starts_with("PLACEHOLDER"));
        if let Some(example) = example {
            assert!(stderr.contains("example"), "{stderr}");
            assert!(!stderr.contains(example), "{stderr}");
        }
    }
}

#[test]
fn up_serves_the_component_its_child_compiled() {
    let stack = Stack::start();
    stack.init();
    let response = stack.post_acr(&fixture("acr/push.json"));
    assert_eq!(response.status, 201, "{}", stack.app_log());
    // No fallback to compiling in the server's own process.
    let log = stack.app_log();
    assert!(
        !log.contains("compiling the component in this process"),
        "{log}"
    );
}

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
    let mut want = vec!["fermyon:spin/key-value", "fermyon:spin/variables"];
    want.extend(APP_WASI);
    assert_eq!(unversioned, want, "{imports:?}");
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
