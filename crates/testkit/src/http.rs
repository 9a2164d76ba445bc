//! A minimal blocking HTTP/1.1 client over `std::net`, for talking to the local peers
//! (plain `http://` only), and the message parsing shared with [`crate::CaptureServer`].

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// An HTTP response, fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code, e.g. 201.
    pub status: u16,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding already removed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, or `None` if it is not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends one request to an `http://host:port/path` URL with `Connection: close` and reads the
/// whole response. `Host` and `Content-Length` are added. Any status is `Ok`; only transport
/// failures are errors. Connect, read and write time out after 10 s.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<HttpResponse> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("only http:// URLs: {url}"),
        )
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if body.is_some() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!(
            "Content-Length: {}\r\n",
            body.map_or(0, <[u8]>::len)
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    // A server may answer before it has read the whole body (413 for a body it refuses by
    // its Content-Length) and close the connection, so that the rest of the write fails.
    // As curl does, the answer it sent is then still read, and the write error reported only
    // when there is none.
    let written = stream.write_all(&out).and_then(|()| stream.flush());
    if let Err(e) = &written {
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return Err(written.unwrap_err());
        }
    }

    let mut reader = BufReader::new(stream);
    let head = match read_head(&mut reader) {
        Ok(head) => head,
        Err(read_error) => return Err(written.err().unwrap_or(read_error)),
    };
    let (start, headers) = match head {
        Some(head) => head,
        None => {
            return Err(written
                .err()
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "empty response")))
        }
    };
    let status: u16 = start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad status: {start}"))
        })?;
    let no_body = method == "HEAD" || status == 204 || status == 304 || status / 100 == 1;
    let body = if no_body {
        Vec::new()
    } else {
        read_body(&mut reader, &headers, true)?
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The first header named `name` (case-insensitive) in `headers`.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// A start line and the headers that follow it.
pub(crate) type Head = (String, Vec<(String, String)>);

/// Reads a start line and headers. `Ok(None)` on a clean EOF before the first byte.
pub(crate) fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let start = match read_line(r)? {
        None => return Ok(None),
        Some(l) => l,
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in headers"))?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((start, headers)))
}

/// Reads a body framed by `Transfer-Encoding: chunked` or `Content-Length`; without either,
/// a response body runs to EOF and a request has none.
pub(crate) fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    is_response: bool,
) -> io::Result<Vec<u8>> {
    let chunked = find_header(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        loop {
            let line = read_line(r)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in chunks"))?;
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {line}"))
            })?;
            if size == 0 {
                // Trailers, up to the empty line.
                while let Some(l) = read_line(r)? {
                    if l.is_empty() {
                        break;
                    }
                }
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(r)?;
        }
    }
    if let Some(len) = find_header(headers, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad length {len}")))?;
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if is_response {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}
