//! The component's writes to the store reuse one connection: the real `.wasm` served by the
//! host, the local store answering with keep-alive (`bench/store-keepalive.js`, as the real
//! service does), and a relay between the two that counts the connections the host opens:
//! a TCP relay for `http://`, and a TLS-terminating relay (a self-signed certificate the
//! host's pool is told to trust) for `https://`.

mod support;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use acr_webhook_cli::outbound_pool::{OutboundPool, PoolSettings};
use acr_webhook_cli::{engine, server, up};
use acr_webhook_testkit::{repo_root, COSMOS_CLI_ENV};
use serde_json::Value;
use support::{client_runtime, fixture_json, Stack, EMULATOR_KEY, TEST_KEY};

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

/// The store and `init`, with the keep-alive store (the stock CLI answers `connection:
/// close`, which would force a new connection per write whatever the host does).
fn keep_alive_store() -> Stack {
    // Set once, before any test of this binary starts a process.
    static KEEP_ALIVE_STORE: std::sync::Once = std::sync::Once::new();
    KEEP_ALIVE_STORE.call_once(|| {
        std::env::set_var(COSMOS_CLI_ENV, repo_root().join("bench/store-keepalive.js"));
    });
    Stack::start_store_only(&[])
}

#[test]
fn sequential_events_are_written_over_one_store_connection() {
    let mut stack = keep_alive_store();
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
        "{EVENTS} sequential writes should share one connection to the store\n{}",
        stack.app_log()
    );
}

/// Terminates TLS with a self-signed certificate for 127.0.0.1 and relays to `upstream`,
/// counting the TLS connections it accepts. Runs until the runtime it is started on stops.
async fn start_tls_relay(
    upstream: SocketAddr,
) -> (SocketAddr, Arc<AtomicUsize>, rustls::RootCertStore) {
    let (cert, acceptor) = support::tls::self_signed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(mut store) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut store).await;
            });
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    (addr, accepted, roots)
}

#[test]
fn sequential_events_over_https_share_one_tls_connection() {
    let mut stack = keep_alive_store();
    let runtime = client_runtime();
    let (relay, handshakes, roots) = runtime.block_on(start_tls_relay(stack.store.addr()));

    // The host in this process, as `acr-webhook up` runs it, with the store behind https
    // and a pool that trusts the relay's certificate.
    let endpoint = format!("https://{relay}");
    let app = up::load_app(
        &repo_root().join("spin.toml"),
        &[
            format!("cosmos_endpoint={endpoint}"),
            format!("cosmos_key={EMULATOR_KEY}"),
            format!("webhook_keys={TEST_KEY}"),
        ],
    )
    .unwrap();
    let listener = runtime.block_on(async { server::bind("127.0.0.1:0".parse().unwrap()) });
    let listener = listener.unwrap();
    let listen = listener.local_addr().unwrap();
    let (engine, _) = engine::new_engine().unwrap();
    let pool = OutboundPool::with_roots(PoolSettings::default(), roots).unwrap();
    let app_server = Arc::new(
        server::AppServer::new(&engine, &app, listen)
            .unwrap()
            .with_outbound_pool(pool.clone()),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(app_server.serve(
        listener,
        async move {
            let _ = stopped.await;
            "the end of the test"
        },
        std::future::pending(),
    ));
    stack.addr = listen;

    let template = fixture_json("acr/push.json");
    const EVENTS: usize = 10;
    for i in 0..EVENTS {
        let response = stack.post_acr(&push_event(&template, 1000 + i));
        assert_eq!(response.status, 201, "event {i}: {}", response.text());
    }
    assert_eq!(stack.count(), EVENTS, "every event stored");
    assert_eq!(
        handshakes.load(Ordering::SeqCst),
        1,
        "{EVENTS} sequential writes over https should share one TLS connection"
    );
    assert_eq!(pool.connections_opened(), 1);

    let _ = stop.send(());
    runtime.block_on(serving).unwrap().unwrap();
}
