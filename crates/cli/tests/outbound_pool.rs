//! The host's outbound connection pool (`acr_webhook_cli::outbound_pool`) against real local
//! servers on free 127.0.0.1 ports (plain HTTP and TLS with a self-signed certificate): one
//! connection for many requests, the request options' timeouts with the error codes
//! wasmtime-wasi-http's default sender gives, servers that close idle connections, and https.
//! Every server runs on the test's runtime and stops with it.

use acr_webhook_cli::outbound_pool::{OutboundPool, PoolSettings};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

#[path = "support/tls.rs"]
mod tls;
use tls::self_signed;

/// A request as the component's would reach the pool: absolute URI, `host` header, a body.
fn request(url: &str, body: &'static [u8]) -> Request<WasiBody> {
    let uri: http::Uri = url.parse().unwrap();
    let host = uri.authority().unwrap().as_str().to_owned();
    Request::builder()
        .method("POST")
        .uri(uri)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(
            Full::new(Bytes::from_static(body))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
        .unwrap()
}

fn timeouts(connect: u64, first_byte: u64, between_bytes: u64) -> Option<RequestOptions> {
    Some(RequestOptions {
        connect_timeout: Some(Duration::from_millis(connect)),
        first_byte_timeout: Some(Duration::from_millis(first_byte)),
        between_bytes_timeout: Some(Duration::from_millis(between_bytes)),
    })
}

/// Sends one request and reads its answer whole.
async fn exchange(
    pool: &OutboundPool,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(StatusCode, Bytes), Error> {
    let (response, _io) = pool.send(request, options).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The echo answer: method, path (no query) and the request body's length; paths starting
/// with `/slow` are answered after 300 ms.
async fn echo(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let has_absolute_uri = request.uri().scheme().is_some();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let text = format!(
        "{method} {path} {} bytes absolute={has_absolute_uri}",
        body.len()
    );
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// A keep-alive HTTP/1.1 echo server counting the TCP connections it accepts. `idle_close`
/// makes it close a connection that has been idle that long (hyper's header read timeout).
struct EchoServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl EchoServer {
    async fn start(idle_close: Option<Duration>, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let mut builder = http1::Builder::new();
                    builder.keep_alive(true).timer(TokioTimer::new());
                    if let Some(idle) = idle_close {
                        builder.header_read_timeout(idle);
                    }
                    let service = hyper::service::service_fn(echo);
                    let _ = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await
                            }
                            Err(_) => return,
                        },
                        None => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                    };
                });
            }
        });
        EchoServer { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A server that reads each request's head and then sends `answer` (possibly nothing) and
/// holds the connection open without another byte; it counts the connections the client
/// closed.
async fn stalling_server(answer: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let closed_by_client = closed.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let closed = closed_by_client.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            closed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(answer).await;
                // Hold the connection until the client goes away.
                if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, closed)
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let server = EchoServer::start(None, None).await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    for i in 0..20 {
        let url = format!("http://{}/dbs/acr/colls/events/docs?n={i}", server.addr);
        let (status, body) = exchange(&pool, request(&url, b"{\"id\":\"x\"}"), None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        // The request line is in origin form, and the body arrives whole.
        assert_eq!(
            body,
            "POST /dbs/acr/colls/events/docs 10 bytes absolute=false"
        );
        // Back in the pool as soon as the body has been read: the next request, sent right
        // away (as a component's next attempt or the next event's), finds it.
        assert_eq!(pool.idle_connections(), 1, "after request {i}");
    }
    assert_eq!(server.accepted(), 1, "20 requests, one TCP connection");
    assert_eq!(pool.connections_opened(), 1);
}

#[tokio::test]
async fn concurrent_requests_open_a_connection_each_and_keep_at_most_the_idle_limit() {
    let server = EchoServer::start(None, None).await;
    let pool = OutboundPool::new(PoolSettings {
        idle_timeout: Duration::from_secs(90),
        max_idle_per_host: 2,
    })
    .unwrap();
    // Five at once, each answered after 300 ms: all five are in flight together.
    let url = format!("http://{}/slow", server.addr);
    let sends: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            let url = url.clone();
            async move { exchange(&pool, request(&url, b"abc"), None).await.unwrap() }
        })
        .collect();
    for (status, body) in futures_join_all(sends).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "POST /slow 3 bytes absolute=false");
    }
    assert_eq!(server.accepted(), 5);
    wait_until(|| pool.idle_connections() == 2).await;
    // Two were kept (the other three closed); the next two requests, at once, reuse them.
    let url = format!("http://{}/slow-again", server.addr);
    let sends: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            let url = url.clone();
            async move { exchange(&pool, request(&url, b"abc"), None).await.unwrap() }
        })
        .collect();
    futures_join_all(sends).await;
    assert_eq!(server.accepted(), 5);
    assert_eq!(pool.connections_opened(), 5);
}

#[tokio::test]
async fn first_byte_timeout_gives_connection_read_timeout() {
    let (addr, closed) = stalling_server(b"").await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    let started = Instant::now();
    let result = exchange(
        &pool,
        request(&format!("http://{addr}/never"), b"x"),
        timeouts(5_000, 300, 5_000),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(Error::ConnectionReadTimeout)),
        "{result:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(4),
        "the 300 ms first-byte timeout fired after {elapsed:?}"
    );
    // The abandoned connection is closed at once, not pooled nor left to the server.
    assert_eq!(pool.idle_connections(), 0);
    wait_until(|| closed.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn between_bytes_timeout_fails_the_body_with_connection_read_timeout() {
    let (addr, closed) = stalling_server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ncontent-type: text/plain\r\n\r\nten bytes.",
    )
    .await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    let (response, _io) = pool
        .send(
            request(&format!("http://{addr}/slow"), b"x"),
            timeouts(5_000, 5_000, 300),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "ten bytes.");
    let started = Instant::now();
    let next = body.frame().await;
    let elapsed = started.elapsed();
    assert!(
        matches!(next, Some(Err(Error::ConnectionReadTimeout))),
        "{next:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(4),
        "the 300 ms between-bytes timeout fired after {elapsed:?}"
    );
    // The guest drops the failed body: the half-read connection is closed, not pooled.
    drop(body);
    wait_until(|| closed.load(Ordering::SeqCst) == 1).await;
    assert_eq!(pool.idle_connections(), 0);
}

#[tokio::test]
async fn connect_timeout_gives_connection_timeout_when_the_tls_handshake_stalls() {
    // Accepts TCP but never says a word of TLS: opening the connection cannot finish.
    let (addr, closed) = stalling_server(b"").await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    let started = Instant::now();
    let result = exchange(
        &pool,
        request(&format!("https://127.0.0.1:{}/", addr.port()), b""),
        timeouts(300, 5_000, 5_000),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(Error::ConnectionTimeout)),
        "{result:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(4),
        "the 300 ms connect timeout fired after {elapsed:?}"
    );
    assert_eq!(pool.connections_opened(), 0);
    wait_until(|| closed.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn refused_connections_give_the_connect_error() {
    // A port that was free a moment ago and has no listener.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    let result = exchange(
        &pool,
        request(&format!("http://{addr}/"), b""),
        timeouts(2_000, 2_000, 2_000),
    )
    .await;
    match result {
        Err(Error::Connect(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_closing_idle_connections_causes_no_failures() {
    // The server closes a connection idle for 100 ms, as a store's keep-alive timeout does.
    let server = EchoServer::start(Some(Duration::from_millis(100)), None).await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    let url = format!("http://{}/k", server.addr);
    for round in 0..4 {
        // Back to back: the pooled connection is reused.
        for _ in 0..3 {
            let (status, _) = exchange(&pool, request(&url, b"abc"), None)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(status, StatusCode::OK);
            tokio::task::yield_now().await;
        }
        // Idle past the server's timeout: it closes the connection; the next request must
        // still succeed, on a new one.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(
        server.accepted(),
        4,
        "one connection per round: reused within a round, closed by the server between rounds"
    );
    assert_eq!(pool.connections_opened(), 4);
}

#[tokio::test]
async fn idle_connections_expire_after_the_idle_timeout() {
    let server = EchoServer::start(None, None).await;
    let pool = OutboundPool::new(PoolSettings {
        idle_timeout: Duration::from_millis(200),
        max_idle_per_host: 8,
    })
    .unwrap();
    let url = format!("http://{}/e", server.addr);
    exchange(&pool, request(&url, b""), None).await.unwrap();
    wait_until(|| pool.idle_connections() == 1).await;
    // The reaper closes it without any request looking at it.
    wait_until(|| pool.idle_connections() == 0).await;
    exchange(&pool, request(&url, b""), None).await.unwrap();
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn https_requests_share_one_tls_connection() {
    let (cert, acceptor) = self_signed();
    let server = EchoServer::start(None, Some(acceptor)).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let pool = OutboundPool::with_roots(PoolSettings::default(), roots).unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/dbs/acr", server.addr.port());
        for _ in 0..5 {
            let (status, body) =
                exchange(&pool, request(&url, b"{}"), timeouts(5_000, 5_000, 5_000))
                    .await
                    .unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, "POST /dbs/acr 2 bytes absolute=false");
            tokio::task::yield_now().await;
            wait_until(|| pool.idle_connections() >= 1).await;
        }
    }
    // One connection (and handshake) per destination: 127.0.0.1 and localhost are two.
    assert_eq!(server.accepted(), 2);
    assert_eq!(pool.connections_opened(), 2);
}

#[tokio::test]
async fn https_with_the_production_roots_refuses_a_self_signed_server() {
    let (_cert, acceptor) = self_signed();
    let server = EchoServer::start(None, Some(acceptor)).await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    let result = exchange(
        &pool,
        request(&format!("https://127.0.0.1:{}/", server.addr.port()), b""),
        timeouts(5_000, 5_000, 5_000),
    )
    .await;
    match result {
        Err(Error::Tls(e)) => assert!(
            e.to_string().contains("certificate"),
            "not a certificate error: {e}"
        ),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert_eq!(pool.idle_connections(), 0);
}

/// Polls `condition` every 5 ms for up to 5 s; panics if it never holds.
async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the futures concurrently (each in its own task) and returns their outputs in order.
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[test]
fn a_pooled_connection_closed_while_the_runtime_was_busy_is_not_reused() {
    use std::io::{Read, Write};
    // A raw server on its own thread: it answers each connection's first request and then,
    // for the first connection, closes it when told to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => seen.extend_from_slice(&buf[..k]),
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            if n == 0 {
                let _ = close_rx.recv();
                drop(stream);
                let _ = closed_tx.send(());
            } else {
                // Answered; the client closes it when the test ends.
                let _ = stream.read(&mut buf);
            }
        }
    });
    // One thread: while the test blocks it, the connection's task cannot run and so cannot
    // see the server's close.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = OutboundPool::new(PoolSettings::default()).unwrap();
        let url = format!("http://{addr}/a");
        let (status, body) = exchange(&pool, request(&url, b""), None).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        wait_until(|| pool.idle_connections() == 1).await;
        close_tx.send(()).unwrap();
        closed_rx.recv().unwrap();
        // Blocking the runtime's only thread: the close reaches the socket unseen.
        std::thread::sleep(Duration::from_millis(200));
        let (status, body) = exchange(&pool, request(&url, b""), None)
            .await
            .expect("the closed pooled connection must not fail the request");
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        assert_eq!(pool.connections_opened(), 2);
    });
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// A URL with user info (`user:password@host`) is refused with an error that
/// says why and never shows the password, before any connection is opened (a pool that
/// dialled the authority with the user info in it would use what the allow-list did not check).
#[tokio::test]
async fn urls_with_user_info_are_refused_before_any_connection() {
    let server = EchoServer::start(None, None).await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    for url in [
        format!("http://reader:s3cret-pass@{}/dbs", server.addr),
        format!("http://token-only@{}/dbs", server.addr),
    ] {
        let failed = exchange(&pool, request(&url, b"x"), None).await;
        let Err(Error::InternalError(Some(message))) = failed else {
            panic!("{url}: expected a refusal, got {failed:?}");
        };
        assert!(message.contains("user info"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(!message.contains("token-only"), "{message}");
    }
    assert_eq!(pool.connections_opened(), 0);
    assert_eq!(server.accepted(), 0);
    // The same host without user info is served.
    let url = format!("http://{}/dbs", server.addr);
    let (status, _) = exchange(&pool, request(&url, b"x"), None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

/// The pool dials the destination the allow-list checked, whatever authority the request's
/// URI carries.
#[tokio::test]
async fn send_to_dials_exactly_the_checked_destination() {
    use acr_webhook_cli::outbound::Destination;
    let server = EchoServer::start(None, None).await;
    let pool = OutboundPool::new(PoolSettings::default()).unwrap();
    let checked = Destination {
        scheme: "http".into(),
        host: "127.0.0.1".into(),
        port: server.addr.port(),
    };
    // The URI names a port nothing listens on; the checked destination is what is dialled.
    let (response, _io) = pool
        .send_to(&checked, request("http://127.0.0.1:9/dbs", b"x"), None)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted(), 1);
}
