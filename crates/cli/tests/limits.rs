//! The limits of `acr-webhook up` against misbehaving guests and clients: small components
//! written as WAT text and built here (one that loops forever, one that allocates without
//! end), served by the real binary from a spin.toml in a scratch folder on a free 127.0.0.1
//! port. Each bad request gets 500, and the server keeps answering; beyond the concurrency
//! limit the answer is 503 with `Retry-After`, at once; reads take at most their share of the
//! slots; `/healthz` needs no slot; a half-sent request head is closed after the header
//! timeout; a limit of 0 is refused at start, naming its flag.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

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

    /// `acr-webhook up` for this app on `addr` with `flags`.
    fn command(&self, addr: std::net::SocketAddr, flags: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acr-webhook"));
        cmd.arg("up")
            .arg("--from")
            .arg(self.dir.join("spin.toml"))
            .arg("--listen")
            .arg(addr.to_string())
            .args(flags)
            .env_remove("RUST_LOG");
        cmd
    }

    /// `acr-webhook up` serving this app with `flags`, once it listens.
    fn up(&self, flags: &[&str]) -> Server {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let cmd = self.command(addr, flags);
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
        self.request("GET", path)
    }

    fn request(&self, method: &str, path: &str) -> http::HttpResponse {
        http::request(method, &format!("http://{}{path}", self.addr), &[], None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.guard.log_tail(40)))
    }

    /// Sends `method path` from a thread of its own (for a guest that loops, holding its slot
    /// until its deadline); joined for its answer.
    fn in_background(
        &self,
        method: &str,
        path: &str,
    ) -> std::thread::JoinHandle<std::io::Result<http::HttpResponse>> {
        let (method, url) = (method.to_string(), format!("http://{}{path}", self.addr));
        std::thread::spawn(move || http::request(&method, &url, &[], None))
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
        "2",
        "--request-deadline-ms",
        "5000",
    ]);
    let busy = [
        server.in_background("GET", "/loop/1"),
        server.in_background("GET", "/loop/2"),
    ];
    // Give the looping requests time to take both slots (they hold them for 5 s).
    std::thread::sleep(Duration::from_millis(1000));
    let answer = server.get("/third");
    // "At once": while the looping requests still hold the slots (the order of events, not a
    // timing goal).
    assert!(
        busy.iter().all(|b| !b.is_finished()),
        "the busy answer came after a slot was freed"
    );
    assert_eq!(answer.status, 503, "{}", server.guard.log_tail(40));
    assert_eq!(answer.header("retry-after"), Some("1"));
    let body = answer.json().expect("a JSON body");
    assert_eq!(body["error"], "server_busy", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("(2, --max-concurrent-requests)"),
        "{body}"
    );
    for busy in busy {
        assert_eq!(busy.join().unwrap().unwrap().status, 500);
    }
    // The slots are free again.
    assert_eq!(server.get("/fourth").status, 500);
    assert!(server.guard.is_running());
}

/// Reads of the trail take at most `--max-concurrent-reads` of the slots (by default a
/// quarter of them): beyond, a read gets the same 503 as a request beyond the slots, while
/// writes and the page's files still find a slot.
#[test]
fn reads_take_at_most_their_share_of_the_slots_and_writes_still_find_one() {
    let app = App::new("reads", &component(LOOPS));
    // 8 slots: 2 for reads by default.
    let mut server = app.up(&[
        "--max-concurrent-requests",
        "8",
        "--request-deadline-ms",
        "6000",
    ]);
    let reads = [
        server.in_background("GET", "/events"),
        server.in_background("GET", "/events/some-id"),
    ];
    std::thread::sleep(Duration::from_millis(1000));
    let refused = server.get("/events/summary");
    assert_eq!(refused.status, 503, "{}", server.guard.log_tail(40));
    let ended: Vec<_> = reads.iter().map(|r| r.is_finished()).collect();
    assert_eq!(refused.header("retry-after"), Some("1"));
    let body = refused.json().expect("a JSON body");
    assert_eq!(body["error"], "server_busy", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("(2, --max-concurrent-reads)"),
        "{body}"
    );
    // A write and a page file are run (the guest loops: 500 at its deadline), not refused.
    let others = [
        server.in_background("POST", "/acr"),
        server.in_background("GET", "/ui/app.js"),
    ];
    for other in others {
        assert_eq!(other.join().unwrap().unwrap().status, 500);
    }
    let reads: Vec<_> = reads.into_iter().map(|r| r.join().unwrap()).collect();
    // "At once": while both reads still held their share (the order of events).
    assert_eq!(
        ended,
        [false, false],
        "a read ended before the third was refused: {reads:?}\n{}",
        server.guard.log_tail(20)
    );
    for read in reads {
        assert_eq!(read.unwrap().status, 500);
    }
    // The reads' share is free again.
    assert_eq!(server.get("/events").status, 500);
    assert!(server.guard.is_running());
}

/// A liveness probe is answered while every slot is taken, with the component's own answer.
#[test]
fn healthz_answers_while_every_slot_is_taken() {
    let app = App::new("health", &component(LOOPS));
    let mut server = app.up(&[
        "--max-concurrent-requests",
        "2",
        "--request-deadline-ms",
        "6000",
    ]);
    let busy = [
        server.in_background("POST", "/acr"),
        server.in_background("GET", "/"),
    ];
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(server.get("/busy").status, 503, "every slot is taken");
    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{}", server.guard.log_tail(40));
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.json(), Some(serde_json::json!({"status": "ok"})));
    assert_eq!(server.request("HEAD", "/healthz").status, 200);
    assert!(busy.iter().all(|b| !b.is_finished()));
    for busy in busy {
        assert_eq!(busy.join().unwrap().unwrap().status, 500);
    }
    assert!(server.guard.is_running());
}

/// A connection that sends half a request head is closed after the header timeout (about
/// 10 s; hyper's default is 30 s): it holds a descriptor no longer than that.
#[test]
fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let app = App::new("head", &component(LOOPS));
    let server = app.up(&[]);
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let outcome = stream.read(&mut buf);
    let waited = started.elapsed();
    eprintln!("the half-sent head was closed after {waited:.1?}");
    match outcome {
        // Closed (hyper may first answer 408).
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("still open after {waited:.1?}: {e}"),
    }
    assert!(
        waited < Duration::from_secs(20),
        "closed after {waited:.1?}: the header timeout is about 10 s"
    );
}

/// Runs `acr-webhook up` with `flags`, which it must refuse: its exit status is a failure
/// within 30 s, and its error output (returned) says why.
fn refused_at_start(app: &App, flags: &[&str]) -> String {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = app.dir.join(format!("refused-{}.log", free_port()));
    let mut guard = ChildGuard::spawn("acr-webhook up", app.command(addr, flags), &log).unwrap();
    let exited = guard.wait_until(Duration::from_secs(30), || false);
    let status = guard.try_wait();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        exited.is_err() && matches!(status, Some(s) if !s.success()),
        "{flags:?} was not refused ({status:?}):\n{output}"
    );
    output
}

/// A limit of 0 (which would make every request fail) is refused at start, naming the flag;
/// so are a reads' share that leaves writes no slot and a single slot.
#[test]
fn limits_that_would_fail_every_request_are_refused_at_start() {
    let app = App::new("zero", &component(LOOPS));
    for flag in [
        "--write-timeout-secs",
        "--max-instance-memory-mib",
        "--request-deadline-ms",
        "--max-concurrent-requests",
        "--max-concurrent-reads",
        "--max-connections",
    ] {
        let output = refused_at_start(&app, &[flag, "0"]);
        assert!(output.contains(flag), "{flag}: {output}");
        assert!(output.contains("at least 1"), "{flag}: {output}");
    }
    let output = refused_at_start(
        &app,
        &[
            "--max-concurrent-requests",
            "4",
            "--max-concurrent-reads",
            "4",
        ],
    );
    assert!(
        output.contains("--max-concurrent-reads (4) must be below --max-concurrent-requests (4)"),
        "{output}"
    );
    let output = refused_at_start(&app, &["--max-concurrent-requests", "1"]);
    assert!(
        output.contains("--max-concurrent-requests must be at least 2"),
        "{output}"
    );
}
