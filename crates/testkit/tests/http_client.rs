//! The test HTTP client against a server that answers before reading the body.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use acr_webhook_testkit::http;

/// Reads the request head only, answers 413 and closes: with a 4 MiB body still being sent,
/// the client's write fails (the close resets the connection), but the answer was sent.
#[test]
fn an_answer_sent_before_the_body_was_read_is_still_returned() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/acr", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .unwrap();
        // Dropped with unread body bytes: the kernel resets the connection.
    });
    let body = vec![b' '; 4 << 20];
    let response = http::request("POST", &url, &[], Some(&body)).unwrap();
    assert_eq!(response.status, 413);
    assert_eq!(response.body, b"{}");
    server.join().unwrap();
}

#[test]
fn a_refused_connection_is_still_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    assert!(http::request("GET", &url, &[], None).is_err());
}
