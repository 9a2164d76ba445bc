//! The local Cosmos-compatible store: `@vercel/cosmosdb-server` run with Node.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::http::{self, HttpResponse};
use crate::net::PortReservation;
use crate::process::ChildGuard;

/// Environment variable overriding where `cli.js` of `@vercel/cosmosdb-server` is found
/// (default: `<repo root>/node_modules/@vercel/cosmosdb-server/lib/cli.js`).
pub const COSMOS_CLI_ENV: &str = "ACR_WEBHOOK_COSMOSDB_SERVER_CLI";

/// Environment variable naming the Node binary (default: `node` on the `PATH`).
pub const NODE_ENV: &str = "ACR_WEBHOOK_NODE";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root: the nearest directory containing `spin.toml`, walking up from
/// [`manifest_dir`]. Panics if there is none.
pub fn repo_root() -> PathBuf {
    let start = manifest_dir(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .find(|d| d.join("spin.toml").is_file())
        .unwrap_or_else(|| {
            panic!(
                "testkit: no spin.toml in {} or any parent directory",
                start.display()
            )
        })
        .to_path_buf()
}

/// The package directory of the test or program running: `CARGO_MANIFEST_DIR` as cargo sets
/// it when it runs one, else `compiled` (pass `env!("CARGO_MANIFEST_DIR")`). The value
/// compiled in can be another checkout's: cargo does not rebuild a workspace that moved, so a
/// target directory shared by two checkouts (`.ci/run` shares one) may run a test binary
/// built in the other.
fn manifest_dir(compiled: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(compiled))
}

/// Where `cli.js` of `@vercel/cosmosdb-server` is: `$ACR_WEBHOOK_COSMOSDB_SERVER_CLI` if
/// set, else `<repo root>/node_modules/@vercel/cosmosdb-server/lib/cli.js`. Panics, telling
/// to run `npm ci`, if the file is missing.
pub fn cosmos_cli_path() -> PathBuf {
    let (path, origin) = match std::env::var_os(COSMOS_CLI_ENV) {
        Some(p) => (PathBuf::from(p), format!("${COSMOS_CLI_ENV}")),
        None => (
            repo_root().join("node_modules/@vercel/cosmosdb-server/lib/cli.js"),
            "the repository root".to_string(),
        ),
    };
    if !path.is_file() {
        panic!(
            "testkit: the local Cosmos server is not installed: {} (from {origin}) does not \
             exist. Run `npm ci` at the repository root ({}) to install @vercel/cosmosdb-server \
             from package-lock.json (Node 20 needed).",
            path.display(),
            repo_root().display()
        );
    }
    path
}

/// A running `@vercel/cosmosdb-server` on 127.0.0.1 over plain HTTP, in memory (it comes
/// back empty after a restart). It ignores the `Authorization` header entirely.
///
/// Killed on drop; its stdout and stderr go to [`CosmosStore::log_path`].
#[derive(Debug)]
pub struct CosmosStore {
    port: u16,
    child: Option<ChildGuard>,
    dir: tempfile::TempDir,
    cli: PathBuf,
}

impl CosmosStore {
    /// Starts the server on a free port and waits (up to 30 s) until it answers `GET /`.
    /// Panics with the server's log if it does not come up.
    pub fn start() -> CosmosStore {
        let cli = cosmos_cli_path();
        let dir = tempfile::Builder::new()
            .prefix("testkit-cosmos-")
            .tempdir()
            .expect("testkit: cannot create a temp dir");
        let log_path = dir.path().join("cosmosdb-server.log");
        let mut last_err = String::new();
        // A port picked free can be taken before Node binds it; then try another.
        for _ in 0..3 {
            let port = PortReservation::new()
                .expect("testkit: cannot bind 127.0.0.1:0")
                .release();
            match spawn_server(&cli, port, dir.path(), &log_path) {
                Ok(child) => {
                    return CosmosStore {
                        port,
                        child: Some(child),
                        dir,
                        cli,
                    }
                }
                Err(e) => last_err = e,
            }
        }
        panic!("testkit: the Cosmos server did not start: {last_err}");
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port, kept across [`CosmosStore::stop`] and [`CosmosStore::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The log file with the server's stdout and stderr (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("cosmosdb-server.log")
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Kills the server (connections are then refused) and keeps the port for
    /// [`CosmosStore::restart`]. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Stops the server if it runs and starts it again on the same port. It comes back
    /// empty. Panics if it does not come up (e.g. something else took the port meanwhile).
    pub fn restart(&mut self) {
        self.stop();
        match spawn_server(&self.cli, self.port, self.dir.path(), &self.log_path()) {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!(
                "testkit: the Cosmos server did not restart on port {}: {e}",
                self.port
            ),
        }
    }

    /// Sends a request to `path` (starting with `/`) with a current `x-ms-date`, a dummy
    /// `authorization` (the server ignores it) and `content-type: application/json`, plus
    /// `extra` headers. Any status is returned; panics only on transport errors.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&Value>,
    ) -> HttpResponse {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let mut headers: Vec<(&str, &str)> = vec![
            ("x-ms-date", date.as_str()),
            ("x-ms-version", "2018-12-31"),
            (
                "authorization",
                "type%3Dmaster%26ver%3D1.0%26sig%3Dtestkit-ignored",
            ),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ];
        headers.extend_from_slice(extra);
        let body = body.map(|b| serde_json::to_vec(b).expect("json"));
        http::request(
            method,
            &format!("{}{path}", self.endpoint()),
            &headers,
            body.as_deref(),
        )
        .unwrap_or_else(|e| panic!("testkit: {method} {path} to the Cosmos server failed: {e}"))
    }

    /// Creates database `id` (`POST /dbs`); panics unless the answer is 201.
    pub fn create_database(&self, id: &str) {
        let r = self.request("POST", "/dbs", &[], Some(&json!({ "id": id })));
        assert_eq!(r.status, 201, "create database {id}: {}", r.text());
    }

    /// Creates container `id` in database `db` with the hash partition key `partition_key_path`
    /// (e.g. `/repository`), stored with `"kind": "Hash"` so every SDK can read it back;
    /// panics unless the answer is 201.
    pub fn create_container(&self, db: &str, id: &str, partition_key_path: &str) {
        let body = json!({
            "id": id,
            "partitionKey": { "paths": [partition_key_path], "kind": "Hash" },
        });
        let r = self.request(
            "POST",
            &format!("/dbs/{}/colls", encode_segment(db)),
            &[],
            Some(&body),
        );
        assert_eq!(r.status, 201, "create container {db}/{id}: {}", r.text());
    }

    /// Every document in container `db/coll` (read feed, following continuations), with the
    /// server's `_rid`, `_etag`, `_ts`, `_self` fields. Panics unless the answers are 200.
    pub fn list_documents(&self, db: &str, coll: &str) -> Vec<Value> {
        let path = format!(
            "/dbs/{}/colls/{}/docs",
            encode_segment(db),
            encode_segment(coll)
        );
        let mut docs = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut extra = vec![("x-ms-max-item-count", "1000")];
            if let Some(c) = continuation.as_deref() {
                extra.push(("x-ms-continuation", c));
            }
            let r = self.request("GET", &path, &extra, None);
            assert_eq!(r.status, 200, "read feed {path}: {}", r.text());
            let page = r.json().unwrap_or_default();
            if let Some(Value::Array(a)) = page.get("Documents") {
                docs.extend(a.iter().cloned());
            }
            match r.header("x-ms-continuation") {
                Some(c) if !c.is_empty() => continuation = Some(c.to_string()),
                _ => return docs,
            }
        }
    }

    /// Reads document `id` with partition key value `partition_key` (e.g. `json!("repo")`).
    /// `None` on 404. Sends `x-ms-documentdb-query-enablecrosspartition: true`, without which
    /// this server answers 500 instead of 404 for a missing document. Panics on other
    /// statuses.
    pub fn get_document(
        &self,
        db: &str,
        coll: &str,
        id: &str,
        partition_key: &Value,
    ) -> Option<Value> {
        let pk = json!([partition_key]).to_string();
        let path = format!(
            "/dbs/{}/colls/{}/docs/{}",
            encode_segment(db),
            encode_segment(coll),
            encode_segment(id)
        );
        let r = self.request(
            "GET",
            &path,
            &[
                ("x-ms-documentdb-partitionkey", pk.as_str()),
                ("x-ms-documentdb-query-enablecrosspartition", "true"),
            ],
            None,
        );
        match r.status {
            200 => r.json(),
            404 => None,
            s => panic!("testkit: GET {path} answered {s}: {}", r.text()),
        }
    }
}

/// Starts `node cli.js -p PORT --host 127.0.0.1 --no-ssl` logging to `log_path` (appended)
/// and waits until it answers HTTP.
fn spawn_server(cli: &Path, port: u16, dir: &Path, log_path: &Path) -> Result<ChildGuard, String> {
    use std::io::Write;
    if let Ok(mut f) = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log_path)
    {
        let _ = writeln!(f, "--- testkit: starting on 127.0.0.1:{port}");
    }
    let node = std::env::var_os(NODE_ENV).unwrap_or_else(|| "node".into());
    let mut cmd = Command::new(node);
    cmd.arg(cli)
        .args(["-p", &port.to_string(), "--host", "127.0.0.1", "--no-ssl"])
        .current_dir(dir);
    let mut child = ChildGuard::spawn("cosmosdb-server", cmd, log_path)
        .map_err(|e| format!("cannot run node {}: {e}", cli.display()))?;
    let url = format!("http://127.0.0.1:{port}/");
    child.wait_until(STARTUP_TIMEOUT, || {
        http::request("GET", &url, &[], None).is_ok_and(|r| r.status == 200)
    })?;
    Ok(child)
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Drop for CosmosStore {
    fn drop(&mut self) {
        self.stop();
        crate::process::keep_dir_if_wanted(&mut self.dir, "Cosmos store");
    }
}
