//! A keep-alive HTTP/1.1 server loop for the peers that answer in Rust ([`crate::FakeEntra`],
//! [`crate::LockedStore`], [`crate::CaptureServer`]): a listener on 127.0.0.1, one thread per connection, requests read
//! in order (pipelined requests are answered in the order they were sent), each handed to a
//! handler that answers, closes or resets. Stopped on drop, or by [`HttpServer::stop`], after
//! which connections to its port are refused and its open connections end within 100 ms.

use std::io::{self, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::http::{find_header, read_body, read_head};

/// One request, fully read.
#[derive(Clone)]
pub(crate) struct Request {
    /// Which TCP connection (numbered from 0 in accept order) carried the request.
    pub(crate) connection: usize,
    pub(crate) method: String,
    /// The request target as sent, query included.
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The target without its query.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query, without `?` (empty if none).
    pub(crate) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// An answer: status, headers (framing headers are added), body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// A JSON answer.
    pub(crate) fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(body).expect("json"),
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// What the handler does with a request.
pub(crate) enum Action {
    /// Answer it; the connection stays open unless the client asked to close it.
    Reply(Reply),
    /// Close the connection without answering (orderly FIN).
    Close,
}

type Handler = Arc<dyn Fn(&Request) -> Action + Send + Sync>;

struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
}

/// A running server. Stopped on drop.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `listener` with `handler` (`name` names the threads).
    pub(crate) fn start(name: &str, listener: TcpListener, handler: Handler) -> HttpServer {
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            let name = name.to_string();
            std::thread::Builder::new()
                .name(format!("testkit-{name}"))
                .spawn(move || accept_loop(listener, shared, handler, &name))
                .expect("spawn acceptor")
        };
        HttpServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Binds 127.0.0.1 on `port` (0: a free one) and serves it. Panics if it cannot bind.
    pub(crate) fn bind(name: &str, port: u16, handler: Handler) -> HttpServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("testkit: {name} cannot bind 127.0.0.1:{port}: {e}"));
        HttpServer::start(name, listener, handler)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Closes the listener (connections are then refused) and ends open connections after
    /// the request they are serving, if any. Idempotent.
    pub(crate) fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            // Wake the blocking accept().
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
            let _ = h.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, handler: Handler, name: &str) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        let (shared, handler) = (shared.clone(), handler.clone());
        let _ = std::thread::Builder::new()
            .name(format!("testkit-{name}-{id}"))
            .spawn(move || {
                let _ = serve_connection(stream, id, &shared.stop, &*handler);
            });
    }
}

/// Reads from the socket, retrying read timeouts until `stop` is set, so that idle
/// keep-alive connections do not keep their thread alive after the server stops.
struct StopAware<'a> {
    stream: TcpStream,
    stop: &'a AtomicBool,
}

impl Read for StopAware<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.stop.load(Ordering::SeqCst) {
                        return Err(e);
                    }
                }
                r => return r,
            }
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    connection: usize,
    stop: &AtomicBool,
    handler: &(dyn Fn(&Request) -> Action + Send + Sync),
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(StopAware { stream, stop });
    loop {
        let Some((start, headers)) = read_head(&mut reader)? else {
            return Ok(());
        };
        let body = read_body(&mut reader, &headers, false)?;
        let mut parts = start.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let version = parts.next().unwrap_or("HTTP/1.1");
        let close = find_header(&headers, "connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || version == "HTTP/1.0";
        let request = Request {
            connection,
            method,
            target,
            headers,
            body,
        };
        match handler(&request) {
            Action::Close => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Action::Reply(reply) => {
                let closing = close || stop.load(Ordering::SeqCst);
                write_reply(&mut writer, &request.method, &reply, closing)?;
                if closing {
                    let _ = writer.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
        }
    }
}

fn write_reply(w: &mut TcpStream, method: &str, reply: &Reply, close: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let no_body = method.eq_ignore_ascii_case("HEAD") || matches!(reply.status, 204 | 304);
    if !matches!(reply.status, 204 | 304) {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !no_body {
        bytes.extend_from_slice(&reply.body);
    }
    w.write_all(&bytes)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Decodes `%XX` escapes (and, when `plus_is_space`, `+` as a space, as forms encode it).
/// `None` if an escape is malformed or the result is not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The `name=value` pairs of a query string or an `application/x-www-form-urlencoded` body,
/// decoded (`+` is a space). Malformed pairs are skipped.
pub(crate) fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries_and_forms() {
        assert_eq!(
            percent_decode("type%3Daad%26sig%3Da.b", false).as_deref(),
            Some("type=aad&sig=a.b")
        );
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        let pairs = form_pairs("scope=https%3A%2F%2Fcosmos.azure.com%2F.default&x&y=1+2");
        assert_eq!(
            pairs,
            vec![
                ("scope".into(), "https://cosmos.azure.com/.default".into()),
                ("x".into(), String::new()),
                ("y".into(), "1 2".into()),
            ]
        );
    }
}
