//! A fault-injecting HTTP/1.1 proxy to put between a client and the Cosmos-compatible store:
//! it forwards real traffic and, at a given rate, answers or breaks a request the way a
//! struggling Cosmos DB account or network does.
//!
//! Faults ([`FaultKind`]): `429` with `x-ms-retry-after-ms`, `503`, `449`, a connection reset
//! before forwarding, a stall past the client's timeout (held open, never forwarded, never
//! answered), and an answer lost after the write (forwarded, applied by the store, then the
//! connection is reset instead of answered).
//!
//! Which request gets which fault depends only on the plan's seed and the request's index
//! among the faultable requests ([`FaultPlan::decision`]), so a run can be replayed with the
//! same seed (with concurrent clients, which request gets which index depends on arrival
//! order). By default only document creates (`POST .../docs` that are not queries) are
//! faulted; reads, queries and database/container creation pass through
//! ([`FaultScope`]).
//!
//! Every connection carries one request and is answered with `connection: close`; request
//! bodies framed by `Content-Length` (or chunked) are read in full before anything else.

use std::fmt;
use std::io::{self, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::{find_header, read_body, read_head, Head};

/// One kind of fault the proxy can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `429 Too Many Requests` with `x-ms-retry-after-ms` (not forwarded).
    Throttled,
    /// `503 Service Unavailable` (not forwarded).
    Unavailable,
    /// `449 Retry With` (not forwarded).
    RetryWith,
    /// The request is read, then the connection is reset (RST) without forwarding.
    ResetBeforeForward,
    /// The request is read and the connection held open, unanswered and not forwarded, for
    /// [`FaultPlan::stall`]; then it is closed.
    Stall,
    /// The request is forwarded and the store's answer read (the write is applied), then the
    /// connection is reset instead of answered: the client cannot know the outcome.
    AnswerLost,
}

impl FaultKind {
    /// Every kind, in a fixed order (the order of [`FaultStats::injected`]).
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Throttled,
        FaultKind::Unavailable,
        FaultKind::RetryWith,
        FaultKind::ResetBeforeForward,
        FaultKind::Stall,
        FaultKind::AnswerLost,
    ];

    /// A short label: `429`, `503`, `449`, `reset`, `stall`, `lost`.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Throttled => "429",
            FaultKind::Unavailable => "503",
            FaultKind::RetryWith => "449",
            FaultKind::ResetBeforeForward => "reset",
            FaultKind::Stall => "stall",
            FaultKind::AnswerLost => "lost",
        }
    }

    fn index(self) -> usize {
        FaultKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("in ALL")
    }
}

/// Which requests may be faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultScope {
    /// Document creates only: `POST` to a path ending in `/docs` that is not a query
    /// (no `x-ms-documentdb-isquery: true`, no `application/query+json`). The default.
    #[default]
    DocumentCreates,
    /// Every request.
    All,
}

impl FaultScope {
    fn covers(self, method: &str, path: &str, headers: &[(String, String)]) -> bool {
        match self {
            FaultScope::All => true,
            FaultScope::DocumentCreates => {
                let path = path.split('?').next().unwrap_or("");
                let is_query = find_header(headers, "x-ms-documentdb-isquery")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
                    || find_header(headers, "content-type")
                        .is_some_and(|v| v.to_ascii_lowercase().contains("query+json"));
                method.eq_ignore_ascii_case("POST")
                    && path.trim_end_matches('/').ends_with("/docs")
                    && !is_query
            }
        }
    }
}

/// What the proxy injects, how often, and into which requests.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Seed of the per-request decisions.
    pub seed: u64,
    /// Probability (0.0 to 1.0) that a faultable request gets a fault.
    pub rate: f64,
    /// The kinds to choose from, uniformly (a kind listed twice is twice as likely).
    pub kinds: Vec<FaultKind>,
    /// Range of the `x-ms-retry-after-ms` sent with 429 (inclusive, milliseconds).
    pub retry_after_ms: (u64, u64),
    /// How long a stalled connection is held before it is closed; make it longer than the
    /// client's per-attempt timeout.
    pub stall: Duration,
    /// Which requests may be faulted.
    pub scope: FaultScope,
}

impl FaultPlan {
    /// Every kind, 429 waits of 5 to 50 ms, stalls of 2 s, document creates only.
    pub fn new(seed: u64, rate: f64) -> FaultPlan {
        FaultPlan {
            seed,
            rate,
            kinds: FaultKind::ALL.to_vec(),
            retry_after_ms: (5, 50),
            stall: Duration::from_secs(2),
            scope: FaultScope::DocumentCreates,
        }
    }

    /// Only these kinds.
    pub fn kinds(mut self, kinds: &[FaultKind]) -> FaultPlan {
        self.kinds = kinds.to_vec();
        self
    }

    /// Stalls last `stall`.
    pub fn stall(mut self, stall: Duration) -> FaultPlan {
        self.stall = stall;
        self
    }

    /// Faults these requests.
    pub fn scope(mut self, scope: FaultScope) -> FaultPlan {
        self.scope = scope;
        self
    }

    /// The fault for the faultable request number `index` (0-based) at the plan's rate:
    /// a pure function of the seed, the index, the rate and the kinds.
    pub fn decision(&self, index: u64) -> Option<Fault> {
        self.decision_at(index, self.rate)
    }

    fn decision_at(&self, index: u64, rate: f64) -> Option<Fault> {
        if self.kinds.is_empty() {
            return None;
        }
        let mut rng =
            XorShift64::new(self.seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let roll = rng.next_f64();
        let kind = self.kinds[(rng.next_u64() % self.kinds.len() as u64) as usize];
        let (lo, hi) = self.retry_after_ms;
        let span = hi.saturating_sub(lo).saturating_add(1);
        let retry_after_ms = lo + rng.next_u64() % span;
        (roll < rate).then_some(Fault {
            kind,
            retry_after_ms,
        })
    }
}

/// One decided fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What happens to the request.
    pub kind: FaultKind,
    /// The `x-ms-retry-after-ms` value, for [`FaultKind::Throttled`].
    pub retry_after_ms: u64,
}

/// xorshift64* seeded through splitmix64: small, fast, deterministic; not cryptographic.
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> XorShift64 {
        // splitmix64 spreads nearby seeds apart and never yields a zero state here.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift64(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a [`FaultProxy`] did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultStats {
    /// Requests read from clients (faultable or not).
    pub requests: u64,
    /// Requests in the plan's scope (each got a decision).
    pub faultable: u64,
    /// Requests forwarded to the store and answered to the client.
    pub forwarded: u64,
    /// Faults applied, per kind in [`FaultKind::ALL`] order.
    pub injected: [u64; 6],
    /// Requests the store could not be asked or did not answer (the client got a reset).
    pub upstream_errors: u64,
}

impl FaultStats {
    /// How many faults of `kind` were applied.
    pub fn injected(&self, kind: FaultKind) -> u64 {
        self.injected[kind.index()]
    }

    /// All faults applied.
    pub fn total_injected(&self) -> u64 {
        self.injected.iter().sum()
    }
}

impl fmt::Display for FaultStats {
    /// `{429:12,503:9,449:11,reset:10,stall:8,lost:13}`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, kind) in FaultKind::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", kind.label(), self.injected[i])?;
        }
        f.write_str("}")
    }
}

struct Shared {
    upstream: SocketAddr,
    plan: FaultPlan,
    rate_bits: AtomicU64,
    stop: AtomicBool,
    next_index: AtomicU64,
    requests: AtomicU64,
    forwarded: AtomicU64,
    injected: [AtomicU64; 6],
    upstream_errors: AtomicU64,
}

/// A running fault-injecting proxy on a free 127.0.0.1 port, forwarding to one upstream.
/// Stopped on drop (stalled connections end on their own).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("plan", &self.shared.plan)
            .finish()
    }
}

/// How long the proxy waits for a client's request or the store's answer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

impl FaultProxy {
    /// Starts the proxy in front of `upstream`. Panics if it cannot bind.
    pub fn start(upstream: SocketAddr, plan: FaultPlan) -> FaultProxy {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("testkit: cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            upstream,
            rate_bits: AtomicU64::new(plan.rate.to_bits()),
            plan,
            stop: AtomicBool::new(false),
            next_index: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            injected: Default::default(),
            upstream_errors: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("testkit-fault-proxy".into())
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn fault proxy acceptor")
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), to use as the Cosmos endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The plan it was started with (its `rate` is the initial one).
    pub fn plan(&self) -> &FaultPlan {
        &self.shared.plan
    }

    /// Changes the fault rate from the next request on (the decisions stay those of the
    /// seed and index, compared with the new rate).
    pub fn set_rate(&self, rate: f64) {
        self.shared
            .rate_bits
            .store(rate.to_bits(), Ordering::SeqCst);
    }

    /// The current fault rate.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.shared.rate_bits.load(Ordering::SeqCst))
    }

    /// The counters so far.
    pub fn stats(&self) -> FaultStats {
        let s = &self.shared;
        let mut injected = [0; 6];
        for (i, c) in s.injected.iter().enumerate() {
            injected[i] = c.load(Ordering::SeqCst);
        }
        FaultStats {
            requests: s.requests.load(Ordering::SeqCst),
            faultable: s.next_index.load(Ordering::SeqCst),
            forwarded: s.forwarded.load(Ordering::SeqCst),
            injected,
            upstream_errors: s.upstream_errors.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("testkit-fault-conn".into())
            .spawn(move || {
                let _ = serve(stream, &shared);
            });
    }
}

fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = client.set_nodelay(true);
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((start, headers)) = read_head(&mut reader)? else {
        return Ok(());
    };
    let body = read_body(&mut reader, &headers, false)?;
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let mut parts = start.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();

    let fault = if shared.plan.scope.covers(&method, &path, &headers) {
        let index = shared.next_index.fetch_add(1, Ordering::SeqCst);
        let rate = f64::from_bits(shared.rate_bits.load(Ordering::SeqCst));
        shared.plan.decision_at(index, rate)
    } else {
        None
    };
    let count = |kind: FaultKind| shared.injected[kind.index()].fetch_add(1, Ordering::SeqCst);
    let mut client = client;
    match fault.map(|f| (f.kind, f)) {
        None => match forward(shared.upstream, &method, &start, &headers, &body) {
            Ok(answer) => {
                write_answer(&mut client, &answer)?;
                shared.forwarded.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                shared.upstream_errors.fetch_add(1, Ordering::SeqCst);
                reset(client);
            }
        },
        Some((FaultKind::Throttled, f)) => {
            count(FaultKind::Throttled);
            let ms = f.retry_after_ms.to_string();
            respond(
                &mut client,
                "429 Too Many Requests",
                &[("x-ms-retry-after-ms", &ms), ("x-ms-substatus", "3200")],
                r#"{"code":"TooManyRequests","message":"Request rate is large (injected by the test proxy)"}"#,
            )?;
        }
        Some((FaultKind::Unavailable, _)) => {
            count(FaultKind::Unavailable);
            respond(
                &mut client,
                "503 Service Unavailable",
                &[],
                r#"{"code":"ServiceUnavailable","message":"injected by the test proxy"}"#,
            )?;
        }
        Some((FaultKind::RetryWith, _)) => {
            count(FaultKind::RetryWith);
            respond(
                &mut client,
                "449 Retry With",
                &[],
                r#"{"code":"RetryWith","message":"injected by the test proxy"}"#,
            )?;
        }
        Some((FaultKind::ResetBeforeForward, _)) => {
            count(FaultKind::ResetBeforeForward);
            reset(client);
        }
        Some((FaultKind::Stall, _)) => {
            count(FaultKind::Stall);
            let until = Instant::now() + shared.plan.stall;
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10).min(shared.plan.stall));
            }
            drop(client);
        }
        Some((FaultKind::AnswerLost, _)) => {
            match forward(shared.upstream, &method, &start, &headers, &body) {
                Ok(_) => count(FaultKind::AnswerLost),
                Err(_) => shared.upstream_errors.fetch_add(1, Ordering::SeqCst),
            };
            reset(client);
        }
    }
    Ok(())
}

/// The store's answer: status line, headers, body.
pub(crate) struct Answer {
    pub(crate) start: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Hop-by-hop and framing headers, replaced by the proxy's own.
pub(crate) fn is_framing(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Sends one request to `upstream` on a new connection (`Connection: close`) and reads the
/// whole answer.
pub(crate) fn forward(
    upstream: SocketAddr,
    method: &str,
    start: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<Answer> {
    let stream = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let mut out = format!("{start}\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| !is_framing(k)) {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    (&stream).write_all(&bytes)?;
    (&stream).flush()?;

    let mut reader = BufReader::new(stream);
    let (start, headers): Head = read_head(&mut reader)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no answer"))?;
    let status: u16 = start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let no_body =
        method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || status / 100 == 1;
    let body = if no_body {
        Vec::new()
    } else {
        read_body(&mut reader, &headers, true)?
    };
    Ok(Answer {
        start,
        headers,
        body,
    })
}

fn write_answer(client: &mut TcpStream, answer: &Answer) -> io::Result<()> {
    let mut out = format!("{}\r\n", answer.start);
    for (k, v) in answer.headers.iter().filter(|(k, _)| !is_framing(k)) {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        answer.body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer.body);
    client.write_all(&bytes)?;
    client.flush()
}

fn respond(
    client: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    client.write_all(out.as_bytes())?;
    client.flush()
}

/// Closes with a TCP reset (`SO_LINGER` 0) instead of an orderly FIN.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_a_function_of_seed_and_index() {
        let plan = FaultPlan::new(42, 0.3);
        let a: Vec<_> = (0..1000).map(|i| plan.decision(i)).collect();
        let b: Vec<_> = (0..1000).map(|i| plan.decision(i)).collect();
        assert_eq!(a, b);
        let other = FaultPlan::new(43, 0.3);
        assert_ne!(a, (0..1000).map(|i| other.decision(i)).collect::<Vec<_>>());
        let faults = a.iter().flatten().count();
        assert!((240..360).contains(&faults), "{faults} of 1000 at 30 %");
        for kind in FaultKind::ALL {
            assert!(a.iter().flatten().any(|f| f.kind == kind), "{kind:?}");
        }
        for f in a.iter().flatten() {
            assert!((5..=50).contains(&f.retry_after_ms));
        }
        assert!((0..1000).all(|i| FaultPlan::new(1, 0.0).decision(i).is_none()));
        assert!((0..1000).all(|i| FaultPlan::new(1, 1.0).decision(i).is_some()));
    }

    #[test]
    fn scope_is_document_creates_by_default() {
        let none: Vec<(String, String)> = Vec::new();
        let query = vec![("x-ms-documentdb-isquery".to_string(), "True".to_string())];
        let s = FaultScope::default();
        assert!(s.covers("POST", "/dbs/acr/colls/events/docs", &none));
        assert!(!s.covers("POST", "/dbs/acr/colls/events/docs", &query));
        assert!(!s.covers("GET", "/dbs/acr/colls/events/docs", &none));
        assert!(!s.covers("POST", "/dbs", &none));
        assert!(!s.covers("GET", "/dbs/acr/colls/events", &none));
        assert!(FaultScope::All.covers("GET", "/", &none));
    }
}
