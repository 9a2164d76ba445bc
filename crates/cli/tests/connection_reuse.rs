//! The component's writes to the store reuse one connection: the real `.wasm` under
//! `acr-webhook up`, the local store answering with keep-alive (`bench/store-keepalive.js`, as
//! the real service does), and a TCP relay between the two that counts the connections the
//! host opens.

mod support;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use acr_webhook_testkit::{repo_root, COSMOS_CLI_ENV};
use serde_json::Value;
use support::{fixture_json, Stack};

/// Relays bytes between its clients and `upstream` on 127.0.0.1, counting accepted
/// connections. Stops accepting on drop.
struct CountingRelay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CountingRelay {
    fn start(upstream: SocketAddr) -> CountingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        CountingRelay {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` on its own thread until either side closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Push event `i`: the fixture with its own id.
fn push_event(template: &Value, i: usize) -> Vec<u8> {
    let mut event = template.clone();
    event["id"] = Value::String(format!("connection-reuse-{i}-{}", std::process::id()));
    serde_json::to_vec(&event).unwrap()
}

#[test]
fn sequential_events_are_written_over_one_store_connection() {
    // The keep-alive store (the stock CLI answers `connection: close`, which would force a
    // new connection per write whatever the host does). Only this test runs in this binary.
    std::env::set_var(COSMOS_CLI_ENV, repo_root().join("bench/store-keepalive.js"));
    let mut stack = Stack::start_store_only(&[]);
    let relay = CountingRelay::start(stack.store.addr());
    stack.start_app_against(&format!("http://{}", relay.addr));

    let template = fixture_json("acr/push.json");
    const EVENTS: usize = 25;
    for i in 0..EVENTS {
        let response = stack.post_acr(&push_event(&template, i));
        assert_eq!(
            response.status,
            201,
            "event {i}: {}\n{}",
            response.text(),
            stack.app_log()
        );
    }
    assert_eq!(stack.count(), EVENTS, "every event stored");
    assert_eq!(
        relay.accepted(),
        1,
        "{EVENTS} sequential writes should share one connection to the store"
    );
}
