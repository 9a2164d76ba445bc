//! `acr-webhook up` under overload, with the real component and the Cosmos-compatible store:
//! - at the usual 1,024 open-file limit, 1,200 connections that send half a request head (and
//!   reopen as soon as they are closed) do not lock a sender out: an ACR push on a new
//!   connection gets its 201 within ACR's 5 s, and `/healthz` answers (`--max-connections`);
//! - a client that reads a large page slowly gets all of it, although reading it takes longer
//!   than the guest deadline: once the answer is handed over, the write timeout governs;
//! - at the default slot count, an overload of writes to a store that hangs is answered 503
//!   (`server_busy`, or the component's `store_unavailable`), never 500: the instance pool
//!   holds what the slots may run.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acr_webhook_testkit::{http, raise_open_files_limit, FaultKind, FaultPlan, FaultProxy};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// ACR's delivery timeout: a push must be answered within it.
const ACR_TIMEOUT: Duration = Duration::from_secs(5);

fn event(id: &str, user_agent: &str) -> Vec<u8> {
    push_event("overload", id, id, user_agent)
}

/// Connections holding half a request head.
const HALF_HEADS: usize = 1_200;
/// The open-file limit `up` runs with in the connection test (a shell's usual one).
const OPEN_FILES: u64 = 1_024;

#[test]
fn half_sent_heads_at_the_open_file_limit_do_not_lock_a_sender_out() {
    let ours = raise_open_files_limit(16_384);
    assert!(
        ours >= HALF_HEADS as u64 + 1_024,
        "this test needs about {} open files; the limit is {ours}",
        HALF_HEADS + 1_024
    );
    let mut stack = Stack::start_store_only(&[]);
    stack.start_app_with_open_files(OPEN_FILES);
    let addr = stack.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let runtime = client_runtime();
    let flooding = {
        let (stop, opened, closed) = (stop.clone(), opened.clone(), closed.clone());
        runtime.spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..HALF_HEADS {
                let (stop, opened, closed) = (stop.clone(), opened.clone(), closed.clone());
                tasks.spawn(async move {
                    let head = format!("GET /slow/{i} HTTP/1.1\r\nHost: x\r\n");
                    let mut buf = [0u8; 256];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        if stream.write_all(head.as_bytes()).await.is_err() {
                            continue;
                        }
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Hold it until the server closes it, then open another.
                        loop {
                            let read = tokio::time::timeout(
                                Duration::from_millis(200),
                                stream.read(&mut buf),
                            );
                            match read.await {
                                Ok(Ok(0)) | Ok(Err(_)) => {
                                    closed.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                                Ok(Ok(_)) => {}
                                Err(_) if stop.load(Ordering::Relaxed) => return,
                                Err(_) => {}
                            }
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    // Let the half-sent heads pile up past the open-file limit.
    let building = Instant::now();
    while opened.load(Ordering::Relaxed) < HALF_HEADS
        && building.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    eprintln!(
        "after {:.1?}: {} half-sent heads opened, {} closed by the server",
        building.elapsed(),
        opened.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed)
    );

    // ACR pushes, each on a new connection, while the flood goes on.
    let mut timings = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let answer = http::request(
            "POST",
            &stack.url("/acr"),
            &[
                ("authorization", &bearer(TEST_KEY)),
                ("content-type", "application/json"),
            ],
            Some(&event(&format!("push-{i}"), "docker/27.0")),
        );
        let took = started.elapsed();
        timings.push(took);
        let answer = answer.unwrap_or_else(|e| {
            panic!(
                "push {i}: no answer after {took:.1?}: {e}\n{}",
                stack.app_log()
            )
        });
        assert_eq!(answer.status, 201, "push {i}: {}", answer.text());
        assert!(
            took < ACR_TIMEOUT,
            "push {i} answered after {took:.1?}, past ACR's {ACR_TIMEOUT:?}"
        );
        let health = http::request("GET", &stack.url("/healthz"), &[], None)
            .unwrap_or_else(|e| panic!("/healthz: {e}"));
        assert_eq!(health.status, 200);
    }
    eprintln!(
        "pushes answered in {timings:.1?} among {} half-sent heads ({} closed by the server)",
        opened.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(flooding).unwrap();
    drop(runtime);

    assert!(
        closed.load(Ordering::Relaxed) > 0,
        "no half-sent head was closed"
    );
    for i in 0..5 {
        assert!(stack.document(&format!("push-{i}")).is_some(), "push-{i}");
    }
    let log = stack.app_log_all();
    assert!(
        !log.contains("accepting a connection failed"),
        "accept failed (out of descriptors?):\n{}",
        log.lines()
            .filter(|l| l.contains("accepting"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Reads an HTTP/1.1 answer from `stream` a little at a time (`chunk` bytes at most every
/// `pause`), to its end; returns the whole answer, head and (chunked) body.
async fn read_slowly(stream: &mut tokio::net::TcpStream, chunk: usize, pause: Duration) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return answer,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no byte for 30 s after {} bytes", answer.len()),
        }
        if answer.ends_with(b"\r\n0\r\n\r\n") {
            return answer;
        }
        tokio::time::sleep(pause).await;
    }
}

/// The body of a chunked HTTP/1.1 answer (`None` when it is cut short).
fn dechunk(answer: &[u8]) -> Option<Vec<u8>> {
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut rest = &answer[head_end..];
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Events of the large page, and the size of each one's user agent: about 3 MB of events.
const LARGE_EVENTS: usize = 100;
const USER_AGENT_BYTES: usize = 30_000;
/// The guest deadline in the slow-reader test, far below the time the page takes to read.
const SHORT_DEADLINE_MS: &str = "1500";

#[test]
fn a_slow_reader_of_a_large_page_gets_all_of_it() {
    let mut stack = Stack::start_store_only(&[]);
    stack.start_app_with_flags(&["--request-deadline-ms", SHORT_DEADLINE_MS]);
    let user_agent = "a".repeat(USER_AGENT_BYTES);
    for i in 0..LARGE_EVENTS {
        let answer = stack.post_acr(&event(&format!("large-{i}"), &user_agent));
        assert_eq!(answer.status, 201, "{}", answer.text());
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = stack.addr;
    let started = Instant::now();
    let answer = runtime.block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        // A small receive window: the server's writes stall while this reader sleeps.
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let head = format!(
            "GET /events?limit={LARGE_EVENTS} HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {TEST_READ_KEY}\r\nAccept-Encoding: identity\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        read_slowly(&mut stream, 16 * 1024, Duration::from_millis(10)).await
    });
    let took = started.elapsed();
    eprintln!(
        "read {} bytes in {took:.1?} (guest deadline {SHORT_DEADLINE_MS} ms)",
        answer.len()
    );
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );
    let body = dechunk(&answer).unwrap_or_else(|| {
        panic!(
            "the answer was cut after {} bytes and {took:.1?}\n{}",
            answer.len(),
            stack.app_log()
        )
    });
    let page: serde_json::Value = serde_json::from_slice(&body).expect("a JSON page");
    assert_eq!(page["events"].as_array().unwrap().len(), LARGE_EVENTS);
    assert!(
        took > Duration::from_millis(SHORT_DEADLINE_MS.parse().unwrap()),
        "the page was read faster than the deadline ({took:.1?}): the test proves nothing"
    );
    assert!(!stack.app_log().contains("request deadline"));
}

/// More writes at once than the default 256 slots, to a store whose writes hang.
const OVERLOAD: usize = 300;

#[test]
fn an_overload_at_the_default_slots_is_answered_503_never_500() {
    let ours = raise_open_files_limit(16_384);
    assert!(ours >= 4 * OVERLOAD as u64, "the open-file limit is {ours}");
    let mut stack = Stack::start_store_only(&[]);
    // Every document create hangs past the write budget: each write holds its slot (and
    // its instance) for the whole budget, then is answered 503 store_unavailable.
    let proxy = FaultProxy::start(
        stack.store.addr(),
        FaultPlan::new(7, 1.0)
            .kinds(&[FaultKind::Stall])
            .stall(Duration::from_secs(10)),
    );
    stack.start_app_against(&proxy.endpoint());
    let addr = stack.addr;

    let runtime = client_runtime();
    let answers = runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..OVERLOAD {
            tasks.spawn(async move {
                let body = event(&format!("overload-{i}"), "docker/27.0");
                let head = format!(
                    "POST /acr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let exchange = async {
                    let mut stream = tokio::net::TcpStream::connect(addr).await?;
                    stream.write_all(head.as_bytes()).await?;
                    stream.write_all(&body).await?;
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer).await?;
                    Ok::<_, std::io::Error>(answer)
                };
                match tokio::time::timeout(Duration::from_secs(30), exchange).await {
                    Ok(Ok(answer)) => String::from_utf8_lossy(&answer).into_owned(),
                    Ok(Err(e)) => format!("error: {e}"),
                    Err(_) => "no answer in 30 s".to_string(),
                }
            });
        }
        tasks.join_all().await
    });
    drop(runtime);

    let status = |a: &String| a.get(9..12).unwrap_or("").to_string();
    let busy = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503") && a.contains("server_busy"))
        .count();
    let unavailable = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503") && a.contains("store_unavailable"))
        .count();
    eprintln!(
        "{OVERLOAD} writes at once: {busy} x 503 server_busy, {unavailable} x 503 \
         store_unavailable, others: {:?}",
        answers
            .iter()
            .filter(|a| !a.starts_with("HTTP/1.1 503"))
            .map(|a| a.lines().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    );
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| !a.starts_with("HTTP/1.1 503"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} answers were not 503 ({:?}); log:\n{}",
        failed.len(),
        failed.iter().map(|a| status(a)).collect::<Vec<_>>(),
        stack
            .app_log_all()
            .lines()
            .filter(|l| l.contains("500") || l.contains("rror"))
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The overload was real: some writes found every slot taken, and the slots were all
    // used (each by a write the store left hanging).
    assert!(busy > 0, "no write found every slot taken");
    assert!(unavailable >= 200, "{unavailable} writes ran");
}
