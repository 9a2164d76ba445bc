//! The connection pool behind the component's outbound requests (`wasi:http/outgoing-handler`).
//!
//! wasmtime-wasi-http's default sender opens a new TCP connection for every request, and for
//! `https://` also builds a rustls `ClientConfig` with its root store and does a full TLS
//! handshake. [`OutboundPool`] keeps HTTP/1.1 connections open between requests instead, keyed
//! by scheme and `host:port`, with one TLS client configuration (webpki roots, as the default
//! sender uses) built when the pool is made.
//!
//! It behaves as the default sender does where a guest can tell:
//!
//! - the request options' timeouts: the connect timeout bounds opening a connection (TCP,
//!   TLS and the HTTP/1 handshake, all together; the default sender bounds TCP and the HTTP/1
//!   handshake each, and not TLS; only a new connection pays it), the first-byte timeout
//!   bounds sending the request and receiving the response head, the between-bytes timeout
//!   bounds every wait for the next piece of the response body; each is 600 s when unset;
//! - the same [`Error`] values, hence the same `wasi:http` error codes: `connection-timeout`,
//!   `connection-read-timeout`, the connect error (refused, or a DNS error), the TLS error,
//!   hyper's errors;
//! - request and response bodies are streamed, not buffered.
//!
//! A pooled connection the server has closed is not handed out: before reuse its socket is
//! looked at (a close that arrived while the runtime was busy is seen there, not only when the
//! connection's task next runs), and when the connection turns out closed all the same before
//! any of the request was written, the request is sent on another connection. A request that
//! was written, even in part, is never sent again here (the outcome is the guest's to handle,
//! as with the default sender). A connection a request gives up on (a timeout, the guest
//! dropping the response) is closed at once. Idle connections are closed after [`PoolSettings::idle_timeout`], and at most
//! [`PoolSettings::max_idle_per_host`] are kept per destination.

use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::log::{self, Level};

/// A timeout the guest did not set (as wasmtime-wasi-http's default sender).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long and how many idle connections a pool keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// An idle connection unused for this long is closed.
    pub idle_timeout: Duration,
    /// Idle connections kept per destination (scheme, host and port); a connection that
    /// becomes idle when this many are already kept is closed.
    pub max_idle_per_host: usize,
}

impl Default for PoolSettings {
    /// 90 s idle, 64 idle connections per destination (the benchmark's highest concurrency).
    fn default() -> Self {
        PoolSettings {
            idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 64,
        }
    }
}

/// The webpki root certificates (Mozilla's), the roots wasmtime-wasi-http's default sender
/// trusts: the roots of [`OutboundPool::new`].
pub fn webpki_root_store() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    }
}

/// A pool of outbound HTTP/1.1 connections, `http://` and `https://`, shared by every request
/// a server handles. Cloning it is cheap and shares the pool.
#[derive(Clone)]
pub struct OutboundPool {
    shared: Arc<Shared>,
}

impl fmt::Debug for OutboundPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundPool")
            .field("settings", &self.shared.settings)
            .field("connections_opened", &self.connections_opened())
            .field("idle_connections", &self.idle_connections())
            .finish()
    }
}

struct Shared {
    settings: PoolSettings,
    /// Built once: TLS client configuration with its root store.
    tls: tokio_rustls::TlsConnector,
    idle: Mutex<HashMap<Destination, Vec<IdleConnection>>>,
    connections_opened: AtomicU64,
    requests_resent: AtomicU64,
    reaper_started: AtomicBool,
}

/// Where a connection goes: the scheme decides TLS, the authority always has its port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Destination {
    tls: bool,
    /// `host:port`, as `TcpStream::connect` takes it.
    authority: String,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

struct IdleConnection {
    connection: PooledConnection,
    since: Instant,
}

/// One open connection: the handle requests are sent through, the task that drives its I/O
/// (aborted, closing the connection, when this is dropped) and a probe of its socket.
struct PooledConnection {
    sender: http1::SendRequest<WasiBody>,
    driver: tokio::task::AbortHandle,
    probe: Option<SocketProbe>,
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        // A connection nobody holds any more is closed now, not when the server gets round
        // to it: after a timeout the server may never answer.
        self.driver.abort();
    }
}

impl PooledConnection {
    /// Whether a request can be sent on it now: idle, not closed, and nothing has arrived on
    /// its socket (the server's close may have arrived without the runtime having seen it).
    fn reusable(&self) -> bool {
        self.sender.is_ready() && self.probe.as_ref().is_none_or(SocketProbe::quiet)
    }
}

/// The future a sent request's I/O resolves to (the pool drives connections itself, so it
/// is always ready).
pub type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

impl OutboundPool {
    /// A pool that trusts the webpki roots ([`webpki_root_store`]), as the default sender
    /// does.
    pub fn new(settings: PoolSettings) -> Result<Self, rustls::Error> {
        Self::with_roots(settings, webpki_root_store())
    }

    /// A pool that trusts `roots` instead of the webpki roots (tests use it to trust a local
    /// self-signed certificate). The TLS configuration is built here, once.
    pub fn with_roots(
        settings: PoolSettings,
        roots: rustls::RootCertStore,
    ) -> Result<Self, rustls::Error> {
        // The ring provider, as wasmtime-wasi-http's default sender (the only one built in).
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(OutboundPool {
            shared: Arc::new(Shared {
                settings,
                tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                idle: Mutex::new(HashMap::new()),
                connections_opened: AtomicU64::new(0),
                requests_resent: AtomicU64::new(0),
                reaper_started: AtomicBool::new(false),
            }),
        })
    }

    /// How many connections this pool has opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.shared.connections_opened.load(Ordering::Relaxed)
    }

    /// How many requests were sent again on another connection because the pooled one they
    /// were given had been closed by the server before any of the request was written.
    pub fn requests_resent(&self) -> u64 {
        self.shared.requests_resent.load(Ordering::Relaxed)
    }

    /// How many idle connections the pool holds now, over all destinations (expired or closed
    /// ones included until they are next looked at).
    pub fn idle_connections(&self) -> usize {
        self.shared.lock_idle().values().map(Vec::len).sum()
    }

    /// Sends `request` (absolute URI; its body streamed) on a pooled connection or a new
    /// one, honouring the timeouts in `options`. Returns the response, whose body is streamed
    /// with the between-bytes timeout, and the I/O future `WasiHttpHooks::send_request`
    /// returns along with it.
    ///
    /// A URI with user info (`user:password@host`) is refused before anything is dialled
    /// ([`refuse_user_info`], in [`OutboundPool::send_to`]).
    pub async fn send(
        &self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(Response<WasiBody>, IoFuture), Error> {
        let checked = crate::outbound::Destination::from_uri(request.uri())
            .ok_or(Error::HttpRequestUriInvalid)?;
        self.send_to(&checked, request, options).await
    }

    /// As [`OutboundPool::send`], dialling exactly `checked` (the destination the allow-list
    /// checked: scheme, host and port), never an authority taken from the request again.
    pub async fn send_to(
        &self,
        checked: &crate::outbound::Destination,
        mut request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(Response<WasiBody>, IoFuture), Error> {
        refuse_user_info(request.uri())?;
        let destination = Destination::from_checked(checked)?;
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_byte_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes_timeout = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);

        // On the wire the request line carries the path only (no proxy here).
        *request.uri_mut() = origin_form(request.uri());

        loop {
            let (mut connection, reused) = match self.shared.checkout(&destination) {
                Some(connection) => (connection, true),
                None => (self.connect(&destination, connect_timeout).await?, false),
            };
            let sent = tokio::time::timeout(
                first_byte_timeout,
                connection.sender.try_send_request(request),
            )
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?;
            match sent {
                Ok(response) => {
                    let returning = Returning {
                        shared: Arc::downgrade(&self.shared),
                        destination,
                        connection,
                    };
                    let response = response.map(|incoming| {
                        ResponseBody::new(incoming, between_bytes_timeout, returning).boxed_unsync()
                    });
                    let io: IoFuture = Box::new(async { Ok(()) });
                    return Ok((response, io));
                }
                Err(mut failed) => match failed.take_message() {
                    // The reused connection turned out closed before any of the request was
                    // written: send it again on another connection.
                    Some(unsent) if reused => {
                        self.shared.requests_resent.fetch_add(1, Ordering::Relaxed);
                        request = unsent;
                    }
                    _ => return Err(Error::from(failed.into_error())),
                },
            }
        }
    }

    /// Opens a connection to `destination` within `connect_timeout` (TCP, then TLS for
    /// https, then the HTTP/1 handshake) and spawns the task that drives it.
    async fn connect(
        &self,
        destination: &Destination,
        connect_timeout: Duration,
    ) -> Result<PooledConnection, Error> {
        let opening = async {
            let tcp = TcpStream::connect(&destination.authority)
                .await
                .map_err(Error::Connect)?;
            // Small request heads and bodies must not wait for Nagle on a reused connection.
            let _ = tcp.set_nodelay(true);
            let probe = SocketProbe::of(&tcp);
            let stream: Box<dyn Stream> = if destination.tls {
                // The code wasmtime-wasi-http's default sender gives an unusable TLS name.
                let name =
                    tls_server_name(&destination.authority).map_err(|_| Error::DnsError {
                        rcode: Some("invalid dns name".to_string()),
                        info_code: None,
                    })?;
                let tls = self
                    .shared
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(Error::Tls)?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            let (sender, connection) = http1::Builder::new()
                .handshake::<_, WasiBody>(TokioIo::new(stream))
                .await?;
            Ok::<_, Error>((sender, connection, probe))
        };
        let (sender, connection, probe) = tokio::time::timeout(connect_timeout, opening)
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
        self.shared
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);

        let shown = destination.to_string();
        let driver = tokio::spawn(async move {
            // Ends when the server closes the connection, when it fails, or when the pool
            // and the last request drop their handle to it.
            if let Err(e) = connection.await {
                if !e.is_incomplete_message() {
                    log::message(
                        Level::Debug,
                        None,
                        &format!("outbound connection to {shown} ended: {e}"),
                    );
                }
            }
        })
        .abort_handle();
        Ok(PooledConnection {
            sender,
            driver,
            probe,
        })
    }
}

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, HashMap<Destination, Vec<IdleConnection>>> {
        // The map stays consistent whatever panicked while holding it.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used idle connection to `destination` that is still reusable and
    /// not expired; expired and closed ones met on the way are dropped (closing them).
    fn checkout(&self, destination: &Destination) -> Option<PooledConnection> {
        let mut idle = self.lock_idle();
        let list = idle.get_mut(destination)?;
        let now = Instant::now();
        while let Some(candidate) = list.pop() {
            if now.duration_since(candidate.since) < self.settings.idle_timeout
                && candidate.connection.reusable()
            {
                return Some(candidate.connection);
            }
        }
        None
    }

    /// Keeps an idle connection, unless `max_idle_per_host` are kept already (then it is
    /// closed).
    fn put(self: Arc<Self>, destination: Destination, connection: PooledConnection) {
        {
            let mut idle = self.lock_idle();
            let list = idle.entry(destination).or_default();
            if list.len() >= self.settings.max_idle_per_host {
                return;
            }
            list.push(IdleConnection {
                connection,
                since: Instant::now(),
            });
        }
        if !self.reaper_started.swap(true, Ordering::Relaxed) {
            spawn_reaper(Arc::downgrade(&self), self.settings.idle_timeout);
        }
    }

    /// Drops (closes) the idle connections that expired or that the server closed.
    fn drop_expired(&self) {
        let now = Instant::now();
        let mut idle = self.lock_idle();
        for list in idle.values_mut() {
            list.retain(|c| {
                now.duration_since(c.since) < self.settings.idle_timeout && c.connection.reusable()
            });
        }
        idle.retain(|_, list| !list.is_empty());
    }
}

/// Closes expired idle connections even when no request comes to look at them; ends when
/// the pool is dropped.
fn spawn_reaper(shared: Weak<Shared>, idle_timeout: Duration) {
    let period = (idle_timeout / 4).max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match shared.upgrade() {
                Some(shared) => shared.drop_expired(),
                None => return,
            }
        }
    });
}

/// A second descriptor of a connection's TCP socket, to look at it without reading: an idle
/// HTTP/1.1 connection has nothing to read, so end of stream (the server closed it), bytes
/// or an error mean it must not be reused. This sees a close that arrived while the runtime
/// was busy, which the connection's own task only notices when it next runs (after the next
/// request has been written, too late to know whether the server saw it).
#[cfg(unix)]
struct SocketProbe(std::net::TcpStream);

#[cfg(unix)]
impl SocketProbe {
    fn of(tcp: &TcpStream) -> Option<SocketProbe> {
        use std::os::fd::AsFd;
        let fd = tcp.as_fd().try_clone_to_owned().ok()?;
        Some(SocketProbe(std::net::TcpStream::from(fd)))
    }

    /// Nothing to read and no error: the socket is non-blocking (tokio made it so; the flag
    /// is shared by both descriptors), so a quiet socket answers `WouldBlock`.
    fn quiet(&self) -> bool {
        matches!(self.0.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

#[cfg(not(unix))]
struct SocketProbe;

#[cfg(not(unix))]
impl SocketProbe {
    fn of(_tcp: &TcpStream) -> Option<SocketProbe> {
        None
    }

    fn quiet(&self) -> bool {
        true
    }
}

/// A TCP or TLS stream.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

/// The destination of an absolute request URI, with the scheme's default port when it has
/// none (443 for https, 80 otherwise, as the default sender).
#[cfg(test)]
fn destination_of(uri: &Uri) -> Result<Destination, Error> {
    let checked =
        crate::outbound::Destination::from_uri(uri).ok_or(Error::HttpRequestUriInvalid)?;
    Destination::from_checked(&checked)
}

impl Destination {
    /// The connection destination of a checked one: `host:port` (IPv6 in brackets), TLS for
    /// `https`.
    fn from_checked(checked: &crate::outbound::Destination) -> Result<Destination, Error> {
        let tls = match checked.scheme.as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(Error::HttpProtocolError),
        };
        let authority = if checked.host.contains(':') {
            format!("[{}]:{}", checked.host, checked.port)
        } else {
            format!("{}:{}", checked.host, checked.port)
        };
        Ok(Destination { tls, authority })
    }
}

/// The error a URI with user info (`user[:password]@` before the host) gets: such a URI is
/// never sent, since the allow-list checks the host and the user info would travel in the
/// `host` header. The message names neither the user nor the password.
pub fn refuse_user_info(uri: &Uri) -> Result<(), Error> {
    match uri.authority() {
        Some(authority) if authority.as_str().contains('@') => {
            Err(Error::InternalError(Some(USER_INFO_REFUSED.to_string())))
        }
        _ => Ok(()),
    }
}

/// What a guest is told when its outbound URL carries user info.
pub const USER_INFO_REFUSED: &str = "outbound URLs with user info (user:password@host) are \
    refused: put credentials in a header, not in the URL";

/// The path and query of `uri` alone (`/` when it has none).
fn origin_form(uri: &Uri) -> Uri {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Uri::builder()
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| Uri::from_static("/"))
}

/// The rustls server name for `host:port`: an IP literal (IPv6 in brackets) or a DNS name
/// without its port. The same rule as wasmtime-wasi-http's default sender.
fn tls_server_name(
    authority: &str,
) -> Result<rustls::pki_types::ServerName<'static>, rustls::pki_types::InvalidDnsNameError> {
    use rustls::pki_types::ServerName;
    if let Ok(addr) = authority.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::from(addr.ip()));
    }
    let host = match authority.split_once(':') {
        Some((host, _port)) => host,
        None => authority,
    };
    Ok(ServerName::try_from(host)?.to_owned())
}

/// A connection whose response is being read, on its way back to the pool.
struct Returning {
    shared: Weak<Shared>,
    destination: Destination,
    connection: PooledConnection,
}

impl Returning {
    /// Puts the connection back into the pool: now when it is ready for another request
    /// (the usual case once its response has been read to the end, so that the guest's next
    /// request finds it), else from a task once it is; a connection that closes instead is
    /// dropped.
    fn finish(mut self) {
        if self.connection.sender.is_ready() {
            if let Some(shared) = self.shared.upgrade() {
                shared.put(self.destination, self.connection);
            }
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if self.connection.sender.ready().await.is_err() {
                return;
            }
            if let Some(shared) = self.shared.upgrade() {
                shared.put(self.destination, self.connection);
            }
        });
    }
}

/// The response body handed to the guest: it fails with `connection-read-timeout` when the
/// next frame takes longer than the between-bytes timeout (as the default sender's), and
/// gives the connection back to the pool at its end (or when the guest drops it; a
/// connection whose body failed is closed instead).
struct ResponseBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
    returning: Option<Returning>,
}

impl ResponseBody {
    fn new(incoming: hyper::body::Incoming, between_bytes: Duration, returning: Returning) -> Self {
        // Tokio panics on a zero interval; 1 ns is as good as zero.
        let between_bytes = between_bytes.max(Duration::from_nanos(1));
        let mut timeout = tokio::time::interval(between_bytes);
        timeout.reset();
        ResponseBody {
            incoming,
            timeout,
            returning: Some(returning),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(returning) = self.returning.take() {
            returning.finish();
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => {
                // Back into the pool before the guest learns the body ended.
                if let Some(returning) = self.returning.take() {
                    returning.finish();
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.returning = None;
                Poll::Ready(Some(Err(if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(e)
                })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                // Mid-response: the connection cannot serve another request.
                self.returning = None;
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_get_the_schemes_default_port() {
        let d = destination_of(&"https://acct.documents.azure.com/dbs".parse().unwrap()).unwrap();
        assert_eq!(
            d,
            Destination {
                tls: true,
                authority: "acct.documents.azure.com:443".into()
            }
        );
        let d = destination_of(&"http://127.0.0.1:8081/x?y=1".parse().unwrap()).unwrap();
        assert_eq!(
            d,
            Destination {
                tls: false,
                authority: "127.0.0.1:8081".into()
            }
        );
        let d = destination_of(&"http://[::1]/".parse().unwrap()).unwrap();
        assert_eq!(d.authority, "[::1]:80");
        assert!(matches!(
            destination_of(&"/relative".parse().unwrap()),
            Err(Error::HttpRequestUriInvalid)
        ));
    }

    #[test]
    fn the_request_line_carries_path_and_query_only() {
        let uri: Uri = "https://h:1/dbs/a/colls/b/docs?x=1".parse().unwrap();
        assert_eq!(origin_form(&uri).to_string(), "/dbs/a/colls/b/docs?x=1");
        let uri: Uri = "http://h".parse().unwrap();
        assert_eq!(origin_form(&uri).to_string(), "/");
    }

    #[test]
    fn tls_server_names_drop_the_port_and_keep_ip_literals() {
        use rustls::pki_types::ServerName;
        assert_eq!(
            tls_server_name("acct.documents.azure.com:443").unwrap(),
            ServerName::try_from("acct.documents.azure.com").unwrap()
        );
        assert_eq!(
            tls_server_name("[::1]:443").unwrap(),
            ServerName::from(std::net::Ipv6Addr::LOCALHOST)
        );
        assert_eq!(
            tls_server_name("127.0.0.1:8081").unwrap(),
            ServerName::from(std::net::Ipv4Addr::LOCALHOST)
        );
        assert!(tls_server_name("bad name:443").is_err());
    }
}
