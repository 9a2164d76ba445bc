//! The local stack for end-to-end tests: the Cosmos-compatible store, `acr-webhook init`, and
//! the app on a [`Runtime`]: `acr-webhook up` serving the repository's spin.toml with the real
//! component, or stock `wasmtime serve` serving the composed component (`make wasi-http`), each
//! on a free 127.0.0.1 port and stopped on drop (also when a test fails).
//!
//! One suite for every host: a test written as `fn name(host: Runtime)` that starts its stack with
//! [`Stack::start_on`] is listed in [`on_every_host!`], which makes one `#[test]` of it per host.
#![allow(dead_code)]

pub mod tls;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use acr_webhook_cli::native_host::NativeHost;
use acr_webhook_core::cosmos::x_ms_date;
use acr_webhook_core::cosmos::Container;
use acr_webhook_testkit::{free_port, http, repo_root, ChildGuard, CosmosStore};
use serde_json::Value;

/// The Cosmos emulator's well-known key: the local store accepts it (it checks no signature).
pub const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
/// Webhook keys for tests only.
pub const TEST_KEY: &str = "e2e-test-key-5f0c1d";
pub const TEST_KEY_2: &str = "e2e-test-key-rotated-in-77aa";
/// The read key every [`Stack`] is started with (reading is opt-in), for tests only.
pub const TEST_READ_KEY: &str = "e2e-read-key-default-3c9d";

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

pub fn fixture(path: &str) -> Vec<u8> {
    let full = repo_root().join("tests/fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

fn host_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_acr-webhook"))
}

fn manifest() -> PathBuf {
    let root = repo_root();
    let wasm = root.join("target/wasm32-wasip1/release/acr_webhook.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: build the component first (`make wasm`)",
        wasm.display()
    );
    root.join("spin.toml")
}

/// The runtime that serves the app (named apart from the core's `Host` trait, the I/O the
/// component is given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `acr-webhook up --from spin.toml` (the Spin module; variables as `SPIN_VARIABLE_<NAME>`).
    Up,
    /// Stock `wasmtime serve` (the pinned wasmtime-cli) serving the component composed with the
    /// environment adapter: `-S cli --env SPIN_VARIABLE_<NAME>`.
    Wasmtime,
    /// Stock `wasmtime serve` serving the component composed with the wasi:config adapter:
    /// `-S config -S config-var=<name>=<value>`. wasmtime splits `-S` options at commas, so a
    /// value with a comma (two keys, include/exclude lists) cannot be given this way.
    WasmtimeConfig,
}

/// Makes two `#[test]`s of each listed `fn name(host: Runtime)`: `up::name` on [`Runtime::Up`] and
/// `wasmtime::name` on [`Runtime::Wasmtime`].
#[macro_export]
macro_rules! on_every_host {
    ($($name:ident),* $(,)?) => {
        mod up {
            $(#[test] fn $name() { super::$name($crate::support::Runtime::Up) })*
        }
        mod wasmtime {
            $(#[test] fn $name() { super::$name($crate::support::Runtime::Wasmtime) })*
        }
    };
}

/// What the app imports from its host besides the Spin interfaces the adapter gives it
/// (component.rs checks the app, wasi_http.rs the composed components); `wasi:filesystem` is
/// for workload identity's token file.
pub const APP_WASI: [&str; 13] = [
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:http/outgoing-handler",
    "wasi:http/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
];

/// The pinned stock wasmtime CLI (`make setup-wasmtime` installs it; `make test` passes its
/// path in ACR_WEBHOOK_WASMTIME).
pub fn wasmtime_binary() -> PathBuf {
    let path = std::env::var_os("ACR_WEBHOOK_WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/acr-webhook/tools/wasmtime-48.0.8-serve/bin/wasmtime")
        });
    assert!(
        path.exists(),
        "{} is missing: install the pinned wasmtime-cli (`make setup-wasmtime`)",
        path.display()
    );
    path
}

/// The composed component `make wasi-http` writes for `variant` (`environment` or `config`).
pub fn composed_component(variant: &str) -> PathBuf {
    let path = repo_root().join(format!("target/wasi-http/acr_webhook.{variant}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build it first (`make wasi-http`)",
        path.display()
    );
    path
}

/// The store, the app, and the variables they were started with.
pub struct Stack {
    pub host: Runtime,
    pub store: CosmosStore,
    app: Option<ChildGuard>,
    pub addr: std::net::SocketAddr,
    variables: Vec<(String, String)>,
    pub config: Container,
    logs: tempdir::Dir,
    /// Extra environment of `acr-webhook up` (not of `init`), see [`Stack::start_app_with_env`].
    app_env: Vec<(String, String)>,
    /// Extra flags of `acr-webhook up`, see [`Stack::start_app_with_flags`].
    app_flags: Vec<String>,
    /// The open-file limit (soft and hard) `acr-webhook up` runs with, see
    /// [`Stack::start_app_with_open_files`].
    app_open_files: Option<u64>,
}

mod tempdir {
    /// A temporary folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            // A counter, not a free port: a port is free again once released, so two stacks
            // of one test binary could get the same folder, and the first dropped would
            // remove the other's logs.
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "acr-webhook-e2e-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}

impl Stack {
    /// Store + init + app, with the webhook key [`TEST_KEY`].
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`Stack::start`], with more (or other) app variables.
    pub fn start_with(extra: &[(&str, &str)]) -> Self {
        Self::start_on(Runtime::Up, extra)
    }

    /// Store + init + the app on `host`, with the webhook key [`TEST_KEY`] and `extra`
    /// variables (a variable given twice takes the later value).
    pub fn start_on(host: Runtime, extra: &[(&str, &str)]) -> Self {
        let mut stack = Self::start_store_only(extra);
        stack.host = host;
        stack.start_app();
        stack
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(host_binary());
        cmd.args(args).arg("--from").arg(manifest());
        for (k, v) in &self.variables {
            cmd.env(format!("SPIN_VARIABLE_{}", k.to_uppercase()), v);
        }
        cmd
    }

    /// `acr-webhook init`, which must succeed.
    pub fn init(&self) {
        let out = self.command(&["init"]).output().unwrap();
        assert!(
            out.status.success(),
            "init failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_app(&mut self) {
        if let Err(e) = self.try_start_app() {
            panic!("{e}");
        }
    }

    /// Starts the app on `self.host`; `Err` with its log when it exits instead of listening.
    pub fn try_start_app(&mut self) -> Result<(), String> {
        let port = free_port();
        self.addr = format!("127.0.0.1:{port}").parse().unwrap();
        let (name, mut cmd) = match self.host {
            Runtime::Up => {
                let mut cmd = self.command(&["up", "--listen", &self.addr.to_string()]);
                cmd.args(&self.app_flags);
                if let Some(limit) = self.app_open_files {
                    limit_open_files(&mut cmd, limit);
                }
                ("acr-webhook up", cmd)
            }
            Runtime::Wasmtime | Runtime::WasmtimeConfig => {
                ("wasmtime serve", self.wasmtime_serve())
            }
        };
        cmd.env_remove("RUST_LOG");
        cmd.envs(self.app_env.iter().map(|(k, v)| (k, v)));
        let log = self.logs.0.join(format!("app-{port}.log"));
        let mut guard = ChildGuard::spawn(name, cmd, &log).unwrap();
        let addr = self.addr;
        let started = guard.wait_until(Duration::from_secs(60), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        self.app = Some(guard);
        started
    }

    /// Sets app variable `name` for the next app start (`init` and the test's reads keep the
    /// configuration the stack started with).
    pub fn set_variable(&mut self, name: &str, value: &str) {
        self.unset_variable(name);
        self.variables.push((name.into(), value.into()));
    }

    /// Leaves app variable `name` out of the next app start.
    pub fn unset_variable(&mut self, name: &str) {
        self.variables.retain(|(k, _)| k != name);
    }

    /// Stock `wasmtime serve` with the composed component and the stack's variables, as the
    /// README's "Run it on stock wasmtime" says: `--env NAME` passes the variable from
    /// wasmtime's own environment (values stay off the command line); `-S config-var` takes
    /// the value on the command line.
    fn wasmtime_serve(&self) -> Command {
        let mut cmd = Command::new(wasmtime_binary());
        cmd.arg("serve").arg("--addr").arg(self.addr.to_string());
        if self.host == Runtime::Wasmtime {
            cmd.args(["-S", "cli"]);
            for (k, v) in &self.variables {
                let name = format!("SPIN_VARIABLE_{}", k.to_uppercase());
                cmd.arg("--env").arg(&name).env(&name, v);
            }
            cmd.arg(composed_component("environment"));
        } else {
            // `-S cli` for wasi:filesystem (the component reads workload identity's token
            // file through it), which `serve` provides only with it.
            cmd.args(["-S", "config", "-S", "cli"]);
            for (k, v) in &self.variables {
                assert!(
                    !v.contains(','),
                    "{k}: wasmtime's -S parser splits at commas; this value cannot be given"
                );
                cmd.arg("-S").arg(format!("config-var={k}={v}"));
            }
            cmd.arg(composed_component("config"));
        }
        cmd
    }

    /// What `acr-webhook up` printed so far.
    pub fn app_log(&self) -> String {
        self.app
            .as_ref()
            .map(|a| a.log_tail(10_000))
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A POST with the given headers.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> http::HttpResponse {
        http::request("POST", &self.url(path), headers, Some(body)).unwrap()
    }

    /// A POST of an ACR event with the bearer key.
    pub fn post_acr(&self, body: &[u8]) -> http::HttpResponse {
        let auth = bearer(TEST_KEY);
        self.post(
            "/acr",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
    }

    /// Sends a request the core built straight to the store, signed with the stack's account
    /// key (the test's own reads and writes, beside the app's).
    pub fn send_signed(
        &self,
        host: &NativeHost,
        mut request: ::http::Request<Vec<u8>>,
    ) -> ::http::Response<Vec<u8>> {
        self.config
            .auth
            .key_credential()
            .expect("the stack's own requests are signed with the account key")
            .sign(&mut request);
        host.send_blocking(request, Duration::from_secs(10))
            .expect("the store answers")
    }

    /// Every stored document, read back over signed REST (a cross-partition query, paged).
    /// [`Stack::documents`] as the read API and `export` show them: without Cosmos DB's
    /// system properties.
    pub fn documents_as_read(&self) -> Vec<Value> {
        self.documents()
            .into_iter()
            .map(|mut d| {
                for name in acr_webhook_core::read_api::SYSTEM_PROPERTIES {
                    d.as_object_mut().unwrap().remove(name);
                }
                d
            })
            .collect()
    }

    pub fn documents(&self) -> Vec<Value> {
        let host = NativeHost::new();
        let query = serde_json::json!({ "query": "SELECT * FROM c", "parameters": [] });
        let mut all = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let request = self.config.query_documents_request(
                &query,
                None,
                100,
                continuation.as_deref(),
                &x_ms_date(SystemTime::now()),
            );
            let response = self.send_signed(&host, request);
            assert_eq!(
                response.status(),
                200,
                "{}",
                String::from_utf8_lossy(response.body())
            );
            let page: Value = serde_json::from_slice(response.body()).unwrap();
            all.extend(page["Documents"].as_array().unwrap().iter().cloned());
            continuation = response
                .headers()
                .get("x-ms-continuation")
                .and_then(|v| v.to_str().ok())
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if continuation.is_none() {
                return all;
            }
        }
    }

    /// One stored document by id, read back over signed REST.
    pub fn document(&self, id: &str) -> Option<Value> {
        let host = NativeHost::new();
        let query = serde_json::json!({
            "query": "SELECT * FROM c WHERE c.id = @id",
            "parameters": [{ "name": "@id", "value": id }]
        });
        let request = self.config.query_documents_request(
            &query,
            None,
            10,
            None,
            &x_ms_date(SystemTime::now()),
        );
        let response = self.send_signed(&host, request);
        assert_eq!(response.status(), 200);
        let page: Value = serde_json::from_slice(response.body()).unwrap();
        let docs = page["Documents"].as_array().unwrap();
        assert!(docs.len() <= 1, "id {id} stored {} times", docs.len());
        docs.first().cloned()
    }

    pub fn count(&self) -> usize {
        self.documents().len()
    }
}

/// Parses a JSON answer body.
pub fn json(response: &http::HttpResponse) -> Value {
    response
        .json()
        .unwrap_or_else(|| panic!("not JSON ({}): {}", response.status, response.text()))
}

/// For tests that put something between the app and the store (a fault proxy): the store and
/// `init` first, then the app against another endpoint. `init` and the test's own reads
/// (`documents()`, `document()`, `count()`) keep going to the store directly.
impl Stack {
    /// Store + init (against the store), without the app: start it with
    /// [`Stack::start_app_against`].
    pub fn start_store_only(extra: &[(&str, &str)]) -> Self {
        let stack = Self::store_without_init(extra);
        stack.init();
        stack
    }

    /// For a container the receiver did not create: the store, `prepare` run on it (through
    /// its REST API) instead of `acr-webhook init`, then the app.
    pub fn start_prepared(extra: &[(&str, &str)], prepare: impl FnOnce(&CosmosStore)) -> Self {
        let mut stack = Self::store_without_init(extra);
        prepare(&stack.store);
        stack.start_app();
        stack
    }

    /// `acr-webhook init` with more arguments (`--dry-run`), whatever its outcome.
    pub fn init_with(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        self.command(&all).output().unwrap()
    }

    fn store_without_init(extra: &[(&str, &str)]) -> Self {
        let store = CosmosStore::start();
        let mut variables: Vec<(String, String)> = vec![
            ("cosmos_endpoint".into(), store.endpoint()),
            ("cosmos_key".into(), EMULATOR_KEY.into()),
            ("webhook_keys".into(), TEST_KEY.into()),
            ("read_keys".into(), TEST_READ_KEY.into()),
        ];
        for (k, v) in extra {
            variables.retain(|(name, _)| name != k);
            variables.push((k.to_string(), v.to_string()));
        }
        let lookup = variables.clone();
        let config = acr_webhook_core::config::container_from_lookup(|name| {
            lookup
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        Stack {
            host: Runtime::Up,
            store,
            app: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            variables,
            config,
            logs: tempdir::Dir::new(),
            app_env: Vec::new(),
            app_flags: Vec::new(),
            app_open_files: None,
        }
    }

    /// Starts (or restarts) the app with `cosmos_endpoint` set to `endpoint` (it is also the
    /// app's only allowed outbound host). A later [`Stack::init`] goes there too.
    pub fn start_app_against(&mut self, endpoint: &str) {
        self.variables.retain(|(name, _)| name != "cosmos_endpoint");
        self.variables
            .push(("cosmos_endpoint".into(), endpoint.to_string()));
        self.start_app();
    }

    /// Starts (or restarts) the app with these environment variables added to its own
    /// (for example a preloaded library that sets its clock, in the page's browser tests).
    pub fn start_app_with_env(&mut self, env: &[(&str, &str)]) {
        self.app_env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.start_app();
    }

    /// Starts (or restarts) `acr-webhook up` with these flags added (its limits, in the flood
    /// test).
    pub fn start_app_with_flags(&mut self, flags: &[&str]) {
        assert_eq!(self.host, Runtime::Up, "flags are `acr-webhook up`'s");
        self.app_flags = flags.iter().map(|f| f.to_string()).collect();
        self.start_app();
    }

    /// Starts (or restarts) `acr-webhook up` with its open-file limit, soft and hard, set to
    /// `limit` (the usual 1,024 of a shell, in the connection tests).
    pub fn start_app_with_open_files(&mut self, limit: u64) {
        assert_eq!(self.host, Runtime::Up, "the limit is `acr-webhook up`'s");
        self.app_open_files = Some(limit);
        self.start_app();
    }

    /// The app's process id while it runs.
    pub fn app_pid(&self) -> Option<u32> {
        self.app.as_ref().and_then(|a| a.id())
    }

    /// Everything `acr-webhook up` printed so far (the whole log, not a tail).
    pub fn app_log_all(&self) -> String {
        self.app
            .as_ref()
            .and_then(|a| a.log_path())
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned())
            .unwrap_or_default()
    }
}

/// Makes `cmd` run with an open-file limit (RLIMIT_NOFILE) of `limit`, soft and hard, as
/// `prlimit --nofile=limit:limit` would.
pub fn limit_open_files(cmd: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// An ACR push event as ACR sends it, for the load tests: `id` is also the registry request's
/// id, the repository is `{name}/app` on `{name}.azurecr.io`, and the digest depends on the
/// tag's length only.
pub fn push_event(name: &str, id: &str, tag: &str, user_agent: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id, "timestamp": "2026-12-04T10:00:00.1234567Z", "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "repository": format!("{name}/app"), "tag": tag, "size": 1234,
                   "digest": format!("sha256:{:0>64}", tag.len())},
        "request": {"id": id, "host": format!("{name}.azurecr.io"), "method": "PUT",
                    "useragent": user_agent}
    }))
    .unwrap()
}

/// The tokio runtime a test's own clients run on: two worker threads, as many as the machine
/// the suite is measured on has cores.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
