//! The limits of `acr-webhook up` (issue 15 item 9) against misbehaving guests: small
//! components written as WAT text and built here (one that loops forever, one that allocates
//! without end), served by the real binary from a spin.toml in a scratch folder on a free
//! 127.0.0.1 port. Each bad request gets 500, and the server keeps answering; beyond the
//! concurrency limit the answer is 503 with `Retry-After`, at once.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use acr_webhook_testkit::{free_port, http, proc_status_kib, wait_for_port, ChildGuard};

/// A wasi:http component whose handler runs `body` (a core function of two i32 handles that
/// never sets a response). It imports only the two resource types its signature names.
fn component(body: &str) -> Vec<u8> {
    let text = format!(
        r#"(component
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))
  ))
  (alias export $types "incoming-request" (type $req))
  (alias export $types "response-outparam" (type $out))
  (core module $m
    (memory 1)
    (func (export "handle") (param i32 i32) (local $page i32)
      {body}))
  (core instance $i (instantiate $m))
  (func $handle (param "request" (own $req)) (param "response-out" (own $out))
    (canon lift (core func $i "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $handler))
)"#
    );
    wat::parse_str(text).expect("the test component's WAT is valid")
}

/// Loops forever without calling the host.
const LOOPS: &str = "(loop $spin (br $spin))";

/// Grows its memory a page at a time and writes to every new page, until growing fails;
/// then traps.
const ALLOCATES: &str = "
      (loop $more
        (local.set $page (memory.grow (i32.const 1)))
        (if (i32.eq (local.get $page) (i32.const -1)) (then unreachable))
        (i32.store (i32.mul (local.get $page) (i32.const 65536)) (i32.const 1))
        (br $more))";

/// A scratch folder with `app.wasm` and a spin.toml serving it on `/...`; removed on drop.
struct App {
    dir: PathBuf,
}

impl App {
    fn new(name: &str, wasm: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "acr-webhook-limits-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.wasm"), wasm).unwrap();
        std::fs::write(
            dir.join("spin.toml"),
            r#"spin_manifest_version = 2

[application]
name = "limits-test"

[[trigger.http]]
route = "/..."
component = "guest"

[component.guest]
source = "app.wasm"
"#,
        )
        .unwrap();
        App { dir }
    }

    /// `acr-webhook up` serving this app with `flags`, once it listens.
    fn up(&self, flags: &[&str]) -> Server {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acr-webhook"));
        cmd.arg("up")
            .arg("--from")
            .arg(self.dir.join("spin.toml"))
            .arg("--listen")
            .arg(addr.to_string())
            .args(flags)
            .env_remove("RUST_LOG");
        let guard = ChildGuard::spawn("acr-webhook up", cmd, &self.dir.join("up.log")).unwrap();
        if wait_for_port(addr, Duration::from_secs(60)).is_err() {
            panic!("acr-webhook up did not start:\n{}", guard.log_tail(40));
        }
        Server { addr, guard }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

struct Server {
    addr: std::net::SocketAddr,
    guard: ChildGuard,
}

impl Server {
    fn get(&self, path: &str) -> http::HttpResponse {
        http::request("GET", &format!("http://{}{path}", self.addr), &[], None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.guard.log_tail(40)))
    }

    /// Peak resident memory of the server process so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.guard.id().expect("the server runs"), "VmHWM:")
    }
}

#[test]
fn a_guest_that_loops_forever_gets_500_and_the_server_keeps_serving() {
    let app = App::new("loop", &component(LOOPS));
    let mut server = app.up(&["--request-deadline-ms", "500"]);
    // More looping requests at once than the runtime has worker threads: each is stopped at
    // its deadline, none holds a worker for good.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("http://{}/loop/{i}", server.addr);
            std::thread::spawn(move || http::request("GET", &url, &[], None))
        })
        .collect();
    for handle in handles {
        let answer = handle
            .join()
            .unwrap()
            .expect("the looping request is answered");
        assert_eq!(answer.status, 500);
    }
    // And the server keeps answering.
    for _ in 0..3 {
        assert_eq!(server.get("/again").status, 500);
    }
    assert!(server.guard.is_running());
    let log = server.guard.log_tail(200);
    assert!(log.contains("request deadline"), "{log}");
}

#[test]
fn a_guest_that_allocates_without_end_gets_500_within_the_memory_limit() {
    let app = App::new("alloc", &component(ALLOCATES));
    let mut server = app.up(&["--max-instance-memory-mib", "16"]);
    for _ in 0..3 {
        assert_eq!(server.get("/alloc").status, 500);
    }
    assert!(server.guard.is_running());
    // Three instances of at most 16 MiB each, written to: the server stays far below what an
    // unbounded guest would take (up to 4 GiB each).
    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!("peak RSS of acr-webhook up after three 16 MiB guests: {peak_mib} MiB");
    assert!(peak_mib < 200, "peak RSS {peak_mib} MiB");
}

#[test]
fn beyond_the_concurrency_limit_the_answer_is_503_with_retry_after_at_once() {
    let app = App::new("busy", &component(LOOPS));
    let mut server = app.up(&[
        "--max-concurrent-requests",
        "1",
        "--request-deadline-ms",
        "5000",
    ]);
    let url = format!("http://{}/loop", server.addr);
    let busy = std::thread::spawn(move || http::request("GET", &url, &[], None));
    // Give the looping request time to take the one slot (it holds it for 5 s).
    std::thread::sleep(Duration::from_millis(1000));
    let answer = server.get("/second");
    // "At once": while the looping request still holds the slot (the order of events, not a
    // timing goal).
    assert!(
        !busy.is_finished(),
        "the busy answer came after the slot was freed"
    );
    assert_eq!(answer.status, 503, "{}", server.guard.log_tail(40));
    assert_eq!(answer.header("retry-after"), Some("1"));
    let body = answer.json().expect("a JSON body");
    assert_eq!(body["error"], "server_busy", "{body}");
    assert!(body["message"].as_str().unwrap().contains("(1,"), "{body}");
    assert_eq!(busy.join().unwrap().unwrap().status, 500);
    // The slot is free again.
    assert_eq!(server.get("/third").status, 500);
    assert!(server.guard.is_running());
}
