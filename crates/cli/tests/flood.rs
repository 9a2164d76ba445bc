//! The limits of `acr-webhook up` under a bounded loopback flood, with the real component
//! and the Cosmos-compatible store. While 2,000 connections press on it (most send half a
//! request and wait, some ask for a 100-event page and read it slowly or not at all, some open
//! and close connections as fast as they can), real senders post 200 events and a probe asks
//! `/healthz` every 100 ms. Then:
//! - every event that got a 2xx is stored exactly once, and every event got one (a 503 is
//!   retried after its `Retry-After`, as Distribution and Event Grid do);
//! - every health probe was answered (200, or 503 with `Retry-After` when every request slot
//!   was taken), none timed out or was refused;
//! - the server's peak resident memory stays under [`PEAK_RSS_BOUND_MIB`].

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acr_webhook_testkit::{http, proc_status_kib, raise_open_files_limit};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Connections that send part of a request head and then wait (slowloris).
const IDLE: usize = 1_600;
/// Connections that ask for a page of 100 events with a 4 KiB receive window and read it a
/// little at a time, or not at all.
const SLOW_READERS: usize = 200;
/// Tasks that open a connection, send a request, read the answer and close, in a loop.
const CHURNERS: usize = 200;
/// Events posted during the flood, by [`SENDERS`] threads.
const EVENTS: usize = 200;
const SENDERS: usize = 4;
/// The write timeout the server runs with here, so that slow readers are cut off within the
/// test (the default is 30 s).
const WRITE_TIMEOUT_SECS: &str = "3";
/// Fewer request slots than slow readers (the default is 256), so that the flood reaches the
/// limit and senders meet 503s.
const MAX_CONCURRENT_REQUESTS: &str = "128";
/// The bound on the server's peak RSS (VmHWM) over the whole test. Measured on a 2-core
/// machine: 40-45 MiB idle, 80-110 MiB at the end of the flood; the bound leaves room for
/// another allocator's or kernel's habits, and is far below what an unbounded server reaches
/// (one slow reader's page per connection, or 2,000 instances).
const PEAK_RSS_BOUND_MIB: u64 = 256;

fn event(id: &str, tag: &str) -> Vec<u8> {
    push_event("flood", id, tag, "docker/27.0 go/go1.22 (flood test)")
}

/// What the flood's clients saw.
#[derive(Default)]
struct Seen {
    idle_open: AtomicUsize,
    slow_got_head: AtomicUsize,
    slow_cut_off: AtomicUsize,
    churn_answers: AtomicUsize,
    churn_busy: AtomicUsize,
    churn_errors: AtomicUsize,
}

/// Runs the flood against `addr` until `stop` is set; returns once every connection is closed.
async fn flood(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let mut tasks = tokio::task::JoinSet::new();
    let read_auth = format!("Authorization: Bearer {TEST_READ_KEY}\r\n");
    for i in 0..IDLE {
        let (stop, seen) = (stop.clone(), seen.clone());
        tasks.spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            // Half a request head, then nothing (the server closes it after its 10 s header
            // timeout).
            let _ = stream
                .write_all(format!("GET /slow/{i} HTTP/1.1\r\nHost: x\r\n").as_bytes())
                .await;
            seen.idle_open.fetch_add(1, Ordering::Relaxed);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    for i in 0..SLOW_READERS {
        let (stop, seen, read_auth) = (stop.clone(), seen.clone(), read_auth.clone());
        tasks.spawn(async move {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let Ok(mut stream) = socket.connect(addr).await else {
                return;
            };
            let head = format!(
                "GET /events?limit=100 HTTP/1.1\r\nHost: x\r\n{read_auth}\
                 Accept-Encoding: identity\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = [0u8; 256];
            // The last bytes read: a complete (chunked) answer ends with its last chunk.
            let mut tail = Vec::new();
            let mut keep = |bytes: &[u8]| {
                tail.extend_from_slice(bytes);
                let cut = tail.len().saturating_sub(5);
                tail.drain(..cut);
            };
            match stream.read(&mut buf).await {
                Ok(n) if n > 0 => {
                    keep(&buf[..n]);
                    seen.slow_got_head.fetch_add(1, Ordering::Relaxed);
                }
                _ => return,
            };
            // Odd readers read up to 256 bytes every 200 ms; even ones read nothing more until
            // the flood ends, then what is left. Either way: was the answer cut off (the
            // server closed the connection before its last chunk)?
            let mut closed = false;
            while !closed {
                let stopping = stop.load(Ordering::Relaxed);
                if i % 2 == 1 || stopping {
                    let wait = Duration::from_millis(if stopping { 2_000 } else { 200 });
                    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => closed = true,
                        Ok(Ok(n)) => keep(&buf[..n]),
                        Err(_) if stopping => break,
                        Err(_) => {}
                    }
                }
                if !stopping && !closed {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            if closed && !tail.ends_with(b"0\r\n\r\n") {
                seen.slow_cut_off.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    for i in 0..CHURNERS {
        let (stop, seen) = (stop.clone(), seen.clone());
        tasks.spawn(async move {
            let paths = ["/", "/ui/app.js", "/acr", "/events", "/nowhere"];
            let mut n = i;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let path = paths[n % paths.len()];
                let method = if path == "/acr" { "POST" } else { "GET" };
                let request = format!(
                    "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                     Content-Length: 2\r\n\r\n{{}}"
                );
                let answer = async {
                    let mut stream = tokio::net::TcpStream::connect(addr).await?;
                    stream.write_all(request.as_bytes()).await?;
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer).await?;
                    Ok::<_, std::io::Error>(answer)
                };
                match tokio::time::timeout(Duration::from_secs(10), answer).await {
                    Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 503") => {
                        seen.churn_busy.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 ") => {
                        seen.churn_answers.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        seen.churn_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[test]
fn a_loopback_flood_loses_no_event_and_health_keeps_answering() {
    let open_files = raise_open_files_limit(16_384);
    assert!(
        open_files >= (IDLE + SLOW_READERS + CHURNERS + 1_024) as u64,
        "this test needs about {} open files; the limit is {open_files}",
        IDLE + SLOW_READERS + CHURNERS + 1_024
    );
    let mut stack = Stack::start_store_only(&[]);
    stack.start_app_with_flags(&[
        "--write-timeout-secs",
        WRITE_TIMEOUT_SECS,
        "--max-concurrent-requests",
        MAX_CONCURRENT_REQUESTS,
    ]);
    let pid = stack.app_pid().expect("acr-webhook up runs");
    let addr = stack.addr;

    // A page of 100 events is far larger than a slow reader's 4 KiB window.
    for i in 0..100 {
        let answer = stack.post_acr(&event(&format!("seed-{i}"), &format!("seed-{i}")));
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    let page = http::request(
        "GET",
        &stack.url("/events?limit=100"),
        &[("authorization", &bearer(TEST_READ_KEY))],
        None,
    )
    .unwrap();
    assert_eq!(page.status, 200);
    eprintln!("a page of 100 events: {} bytes", page.body.len());
    let rss_before = proc_status_kib(pid, "VmRSS:") / 1024;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let runtime = client_runtime();
    let flooding = {
        let (stop, seen) = (stop.clone(), seen.clone());
        runtime.spawn(flood(addr, stop, seen))
    };
    // Let the flood build up before the events start.
    std::thread::sleep(Duration::from_secs(2));

    // The health probe, every 100 ms until the senders are done.
    let senders_done = Arc::new(AtomicBool::new(false));
    let probes = {
        let (done, url) = (senders_done.clone(), stack.url("/healthz"));
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let answer = http::request("GET", &url, &[], None)
                    .map(|a| (a.status, a.header("retry-after").map(str::to_owned)));
                answers.push(answer);
                std::thread::sleep(Duration::from_millis(100));
            }
            answers
        })
    };

    // The senders: each posts its share; a 503 is retried after its Retry-After.
    let stored_with_2xx = Arc::new(Mutex::new(Vec::new()));
    let retries = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (url, stored, retries) =
                (stack.url("/acr"), stored_with_2xx.clone(), retries.clone());
            std::thread::spawn(move || {
                let auth = bearer(TEST_KEY);
                for i in (s..EVENTS).step_by(SENDERS) {
                    let id = format!("flood-{i}");
                    let body = event(&id, &format!("v{i}"));
                    let mut last = String::new();
                    let mut answered = false;
                    for _attempt in 0..30 {
                        let answer = http::request(
                            "POST",
                            &url,
                            &[
                                ("authorization", &auth),
                                ("content-type", "application/json"),
                            ],
                            Some(&body),
                        );
                        match answer {
                            Ok(a) if (200..300).contains(&a.status) => {
                                stored.lock().unwrap().push(id.clone());
                                answered = true;
                                break;
                            }
                            Ok(a) if a.status == 503 => {
                                retries.fetch_add(1, Ordering::Relaxed);
                                let after: u64 = a
                                    .header("retry-after")
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(1);
                                last = format!("503 {}", a.text());
                                std::thread::sleep(Duration::from_secs(after));
                            }
                            Ok(a) => panic!("{id}: {} {}", a.status, a.text()),
                            Err(e) => panic!("{id}: no answer: {e}"),
                        }
                    }
                    assert!(answered, "{id} never got a 2xx; last: {last}");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("a sender failed");
    }
    let sending = started.elapsed();
    senders_done.store(true, Ordering::Relaxed);
    let probes = probes.join().unwrap();
    let peak_during = proc_status_kib(pid, "VmHWM:") / 1024;

    stop.store(true, Ordering::Relaxed);
    let ending = Instant::now();
    runtime.block_on(flooding).unwrap();
    drop(runtime);
    eprintln!("flood ended in {:.1?}", ending.elapsed());

    let idle_open = seen.idle_open.load(Ordering::Relaxed);
    let slow_got_head = seen.slow_got_head.load(Ordering::Relaxed);
    let slow_cut_off = seen.slow_cut_off.load(Ordering::Relaxed);
    let churn_answers = seen.churn_answers.load(Ordering::Relaxed);
    let churn_busy = seen.churn_busy.load(Ordering::Relaxed);
    let churn_errors = seen.churn_errors.load(Ordering::Relaxed);
    let health_ok = probes.iter().filter(|p| matches!(p, Ok((200, _)))).count();
    let health_busy = probes
        .iter()
        .filter(|p| matches!(p, Ok((503, Some(_)))))
        .count();
    eprintln!(
        "flood: {idle_open} idle connections open, {slow_got_head} slow readers answered \
         ({slow_cut_off} cut off), churn {churn_answers} answered + {churn_busy} busy (503) + \
         {churn_errors} failed; {EVENTS} events sent in {sending:.1?} with {} retries after 503; \
         /healthz {health_ok} x 200 + {health_busy} x 503 of {} probes; RSS {rss_before} MiB \
         before, peak {peak_during} MiB",
        retries.load(Ordering::Relaxed),
        probes.len(),
    );

    // The flood was real: the idle connections were open, the slow readers got an answer
    // head, the churners were answered.
    assert_eq!(idle_open, IDLE);
    assert!(slow_got_head > SLOW_READERS / 2, "{slow_got_head}");
    assert!(churn_answers > CHURNERS, "{churn_answers}");
    // The server lives and kept answering its health probe.
    assert!(
        probes
            .iter()
            .all(|p| matches!(p, Ok((200, _)) | Ok((503, Some(_))))),
        "health probes: {:?}",
        probes
            .iter()
            .filter(|p| !matches!(p, Ok((200, _))))
            .collect::<Vec<_>>()
    );
    assert!(health_ok > 0, "no probe got 200");
    assert_eq!(
        http::request("GET", &stack.url("/healthz"), &[], None)
            .unwrap()
            .status,
        200
    );
    // Every event got a 2xx, and each is stored exactly once.
    let stored_with_2xx = stored_with_2xx.lock().unwrap().clone();
    assert_eq!(stored_with_2xx.len(), EVENTS);
    let documents = stack.documents();
    for id in &stored_with_2xx {
        let copies = documents
            .iter()
            .filter(|d| d["eventId"].as_str().or(d["id"].as_str()) == Some(id.as_str()))
            .count();
        assert_eq!(copies, 1, "{id} is stored {copies} times");
    }
    assert_eq!(documents.len(), 100 + EVENTS);
    // Memory stayed bounded.
    assert!(
        peak_during < PEAK_RSS_BOUND_MIB,
        "peak RSS {peak_during} MiB, bound {PEAK_RSS_BOUND_MIB} MiB"
    );
}
