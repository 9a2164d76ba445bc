//! The notification capture server, exercised with plain HTTP clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use acr_webhook_testkit::{http, CaptureServer};

#[test]
fn records_requests_and_answers_the_configured_status() {
    let s = CaptureServer::start(202);
    let r = http::request(
        "POST",
        &s.url(),
        &[
            ("Authorization", "Bearer x"),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"events":[{"action":"push"}]}"#),
    )
    .unwrap();
    assert_eq!(r.status, 202);
    s.set_status(500);
    assert_eq!(s.status(), 500);
    let r = http::request(
        "POST",
        &format!("http://{}/other?q=1", s.addr()),
        &[],
        Some(b"x"),
    )
    .unwrap();
    assert_eq!(r.status, 500);

    let got = s.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/events");
    assert_eq!(got[0].header("authorization"), Some("Bearer x"));
    assert_eq!(got[0].events().len(), 1);
    assert!(got[0].accepted());
    assert_eq!(got[1].path, "/other?q=1");
    assert_eq!(got[1].body, b"x");
    assert_eq!(got[1].answered_status, 500);
    assert!(!got[1].accepted());
    assert_eq!(s.accepted_events().len(), 1);
    s.clear();
    assert!(s.received().is_empty());
}

fn read_response(r: &mut BufReader<TcpStream>) -> (String, Vec<String>) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l == "\r\n" {
            break;
        }
        headers.push(l.trim().to_string());
    }
    (status.trim().to_string(), headers)
}

#[test]
fn keeps_connections_alive_and_decodes_chunked_bodies() {
    let s = CaptureServer::start(200);
    let stream = TcpStream::connect(s.addr()).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    assert_eq!(read_response(&mut r).0, "HTTP/1.1 200 OK");
    w.write_all(
        b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut r).0, "HTTP/1.1 200 OK");
    w.write_all(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, headers) = read_response(&mut r);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("connection: close")));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "server closed after Connection: close");

    let got = s.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].body, b"abc");
    assert_eq!(got[1].body, b"hello");
    assert_eq!(got[2].method, "GET");
    assert!(got.iter().all(|g| g.connection == 0), "one connection");
    assert_eq!(s.connections(), 1);
}

#[test]
fn wait_for_returns_when_the_predicate_holds_and_times_out_otherwise() {
    let s = CaptureServer::start(200);
    let url = s.url();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        http::request(
            "POST",
            &url,
            &[],
            Some(br#"{"events":[{"action":"delete"}]}"#),
        )
        .unwrap();
    });
    let e = s.wait_for_event(|e| e["action"] == "delete", Duration::from_secs(5));
    assert_eq!(e["action"], "delete");
    sender.join().unwrap();
    assert!(s
        .try_wait_for(|r| r.len() >= 2, Duration::from_millis(100))
        .is_none());
}

#[test]
fn response_delay_holds_the_answer() {
    let s = CaptureServer::start(200);
    s.set_response_delay(Duration::from_millis(300));
    let t = std::time::Instant::now();
    http::request("POST", &s.url(), &[], Some(b"{}")).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
}
