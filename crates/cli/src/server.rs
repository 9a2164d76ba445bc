//! The HTTP server behind `acr-webhook up`: a wasmtime host that serves one wasi:http
//! component the way `spin up` does.
//!
//! The structure follows `wasmtime serve` (wasmtime 48): one engine (pooling allocator when
//! the machine can reserve the address space), a `ProxyPre` made once, and for every request
//! a fresh `Store` and instance, so no request ever sees another's memory. Connections are
//! served by hyper's HTTP/1 server; SIGINT/SIGTERM stop accepting and let in-flight
//! requests finish for up to [`SHUTDOWN_GRACE`]. The component's outbound requests (to the
//! hosts `allowed_outbound_hosts` lists) go through one [`OutboundPool`] per server, so
//! connections to Cosmos DB (and their TLS sessions) outlive the instance that opened them.

use crate::componentize;
use crate::connections::Connections;
use crate::engine::{new_engine_with, EngineOptions};
use crate::federated_token::TokenDir;
use crate::guest_deadline::{GuestDeadline, StallClock};
use crate::held_body::HeldBody;
use crate::key_value::{self, KeyValue, KeyValueStores};
use crate::log::{self, Level, LogFormat};
use crate::manifest::{App, ComponentVariables};
use crate::metrics::{self, Metrics};
use crate::outbound::{AllowedHosts, Destination};
use crate::outbound_pool::{OutboundPool, PoolSettings};
use crate::precompile::{self, ChildCompileError};
use crate::route::{Route, RouteMatch};
use crate::slots::{Busy, RequestSlot, Slots, DEFAULT_MAX_CONCURRENT_REQUESTS};
use crate::variables;
use anyhow::{anyhow, bail, Context, Result};
use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// How long in-flight requests may run after SIGINT/SIGTERM before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The most a component may print while handling one request in JSON log mode.
const COMPONENT_OUTPUT_LIMIT: usize = 64 * 1024;

/// Backlog of the listening socket: the connections waiting to be accepted while the server
/// is at its connection bound and closes others to make room (they hold no descriptor of
/// the server's until accepted). `wasmtime serve` uses 100, which a flood of half-sent heads
/// fills: new connections, a sender's among them, then wait for the kernel's SYN retries.
const LISTEN_BACKLOG: u32 = 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How long a client may take to send a whole request head (also the longest a connection
/// stays open idle between two requests); then the connection is closed. hyper's default is
/// 30 s, three times longer than a connection sending half a head should hold a descriptor.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Spin's request header with the full request URL.
const SPIN_FULL_URL: &str = "spin-full-url";
/// Spin's request header with the path below the matched route.
const SPIN_PATH_INFO: &str = "spin-path-info";
/// Spin's request header with the matched route as written.
const SPIN_MATCHED_ROUTE: &str = "spin-matched-route";
/// Spin's request header with the component's route as written.
const SPIN_RAW_COMPONENT_ROUTE: &str = "spin-raw-component-route";
/// Spin's request header with the component's route without the wildcard.
const SPIN_COMPONENT_ROUTE: &str = "spin-component-route";
/// Spin's request header with the application's base path (always `/` in manifest v2).
const SPIN_BASE_PATH: &str = "spin-base-path";
/// Spin's request header with the client's socket address.
const SPIN_CLIENT_ADDR: &str = "spin-client-addr";

/// Linear memory one instance may grow to by default (the component needs far less; a
/// read answer is at most a few MiB).
pub const DEFAULT_MAX_INSTANCE_MEMORY: usize = 128 << 20;
/// How much longer than the app's `write_budget_ms` a guest may run before it is stopped.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(1);
/// The guest deadline when the app sets no `write_budget_ms` (its default, 4 s, plus the
/// margin).
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_millis(5000);
/// How long writing an answer to a client may stall before the connection is closed.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the engine's epoch advances: the granularity of the guest deadline, and how long
/// a guest that computes runs before it yields its worker thread. Short, because tokio polls
/// for new connections and sockets only every 61 task polls while its workers are busy: with
/// 50 ms slices and every worker running a looping guest, a health probe waited seconds for
/// its connection to be accepted and read (10 ms: well under a second; no cost measured at
/// concurrency 1 or 64, since a request that finishes within a tick never yields).
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// `Retry-After` of a 503 given when every request slot is taken, in seconds.
const RETRY_AFTER_SECS: &str = "1";

/// What one server lets requests use (`acr-webhook up` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests handled at once (guests running, answers being streamed); more are answered
    /// 503 with `Retry-After` without running the guest.
    pub max_concurrent_requests: usize,
    /// Bytes of linear memory one instance may have; growing past fails (the guest then
    /// traps, and the request is answered 500).
    pub max_instance_memory: usize,
    /// How long one guest may run (wasm code, enforced by epoch interruption, and its waits
    /// on the host); then it is stopped and, if it had not answered, the request gets 500.
    pub request_deadline: Duration,
    /// How long writing the answer to a client may make no progress before the connection
    /// is closed (slow readers).
    pub write_timeout: Duration,
    /// Of the request slots, how many reads of the trail (`/events...`) may take at once
    /// (fewer than the slots, so that writes always find one); more are answered 503.
    pub max_concurrent_reads: usize,
    /// Client connections open at once; at the bound, the one that has waited longest for
    /// its request head is closed to make room (see [`crate::connections`]).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_instance_memory: DEFAULT_MAX_INSTANCE_MEMORY,
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_concurrent_reads: crate::slots::default_max_reads(DEFAULT_MAX_CONCURRENT_REQUESTS),
            max_connections: crate::connections::DEFAULT_MAX_CONNECTIONS_CAP,
        }
    }
}

impl Limits {
    /// The default deadline for `app`: its `write_budget_ms` plus [`DEADLINE_MARGIN`].
    pub fn deadline_for(app: &App) -> Duration {
        app.variables
            .get(acr_webhook_core::config::VAR_WRITE_BUDGET_MS)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|ms| Duration::from_millis(ms) + DEADLINE_MARGIN)
            .unwrap_or(DEFAULT_REQUEST_DEADLINE)
    }
}

/// Per-request wasmtime store data: WASI, wasi:http and the Spin variables.
pub struct RequestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    variables: ComponentVariables,
    key_value: KeyValue,
    limits: wasmtime::StoreLimits,
}

impl RequestState {
    /// The store data of one request: `wasi` for the component's WASI context, outbound
    /// requests to `allowed` hosts sent through `pool` (others refused), `variables` for
    /// `fermyon:spin/variables`.
    pub fn new(
        wasi: WasiCtx,
        allowed: Arc<AllowedHosts>,
        pool: OutboundPool,
        variables: ComponentVariables,
    ) -> Self {
        Self {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                allowed,
                pool,
                metrics: None,
            },
            variables,
            key_value: KeyValue::default(),
            limits: wasmtime::StoreLimitsBuilder::new().build(),
        }
    }

    /// The same, with the server's key-value stores (`fermyon:spin/key-value`); without, every
    /// `open` is `access-denied`.
    pub fn with_key_value(mut self, key_value: KeyValue) -> Self {
        self.key_value = key_value;
        self
    }

    /// The same, with at most `bytes` of linear memory per instance.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(bytes)
            .build();
        self
    }

    /// The same, with its outbound requests counted in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.hooks.metrics = Some(metrics);
        self
    }

    /// Makes `wasm_store` enforce the memory limit and stop its guest at `deadline` (epoch
    /// interruption: checked every [`EPOCH_TICK`], yielding to other tasks in between).
    pub fn enforce(wasm_store: &mut Store<RequestState>, deadline: GuestDeadline) {
        wasm_store.limiter(|state| &mut state.limits);
        wasm_store.set_epoch_deadline(1);
        wasm_store.epoch_deadline_callback(move |_| {
            if deadline.passed(Instant::now()) {
                Err(wasmtime::Error::msg(
                    "the guest ran past the request deadline and was stopped",
                ))
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
    }
    /// Hands `request` to `wasm_store` as a wasi:http incoming request, with the response outparam
    /// the component answers through: what `incoming-handler.handle` takes, and the receiver
    /// the component's response arrives on.
    pub fn incoming_call<B>(
        wasm_store: &mut Store<RequestState>,
        request: Request<B>,
    ) -> Result<IncomingCall>
    where
        B: hyper::body::Body<Data = hyper::body::Bytes, Error = hyper::Error> + Send + 'static,
    {
        let (sender, response) = tokio::sync::oneshot::channel();
        let request = wasm_store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| anyhow!("{e}"))?;
        let outparam = wasm_store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(IncomingCall {
            request,
            outparam,
            response,
        })
    }
}

/// One request handed to a wasmtime store ([`RequestState::incoming_call`]).
pub struct IncomingCall {
    /// The request, for `incoming-handler.handle`.
    pub request: Resource<HostIncomingRequest>,
    /// Where the component sets its response, for `incoming-handler.handle`.
    pub outparam: Resource<HostResponseOutparam>,
    /// The component's response (or its error code) once it sets one.
    pub response: tokio::sync::oneshot::Receiver<Result<Response<HyperOutgoingBody>, ErrorCode>>,
}

/// Links what the host provides (WASI, wasi:http, Spin variables) for `component` and
/// pre-instantiates it; `component_id` names it in errors.
pub fn link(
    engine: &Engine,
    component: &Component,
    component_id: &str,
) -> Result<ProxyPre<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| anyhow!("linking WASI: {e}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| anyhow!("linking wasi:http: {e}"))?;
    variables::add_to_linker(&mut linker, |state: &mut RequestState| &mut state.variables)
        .map_err(|e| anyhow!("linking fermyon:spin/variables: {e}"))?;
    key_value::add_to_linker(&mut linker, |state: &mut RequestState| &mut state.key_value)
        .map_err(|e| anyhow!("linking fermyon:spin/key-value: {e}"))?;
    let instance_pre = linker
        .instantiate_pre(component)
        .map_err(|e| anyhow!("component {component_id:?} cannot run on this host: {e}"))?;
    ProxyPre::new(instance_pre).map_err(|e| {
        anyhow!("component {component_id:?} does not export wasi:http/incoming-handler: {e}")
    })
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The wasi:http hooks that enforce `allowed_outbound_hosts` and send what is allowed
/// through the server's connection pool.
struct OutboundHooks {
    allowed: Arc<AllowedHosts>,
    pool: OutboundPool,
    metrics: Option<Arc<Metrics>>,
}

/// The future `WasiHttpHooks::send_request` returns.
type SendRequestFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendRequestFuture {
        // One authority is checked and dialled: a URL with user info is refused outright
        // (the allow-list sees the host alone; the user info would reach the `host` header).
        if let Err(refusal) = crate::outbound_pool::refuse_user_info(request.uri()) {
            log::message(
                Level::Warn,
                None,
                &format!(
                    "outbound URL with user info refused: {}",
                    describe_destination(request.uri())
                ),
            );
            return Box::new(async move { Err(refusal) });
        }
        match Destination::from_uri(request.uri()) {
            // `_fut` reports nothing here, as with wasmtime-wasi-http's default sender. The
            // pool dials the destination just checked.
            Some(dest) if self.allowed.allows(&dest) => {
                let pool = self.pool.clone();
                let counted = dest.clone();
                Box::new(metrics::observe_outbound(
                    self.metrics.clone(),
                    counted,
                    async move { pool.send_to(&dest, request, options).await },
                ))
            }
            dest => {
                let shown = match dest {
                    Some(dest) => dest.to_string(),
                    None => describe_destination(request.uri()),
                };
                log::message(
                    Level::Warn,
                    None,
                    &format!("outbound network destination not allowed: {shown}"),
                );
                Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
            }
        }
    }
}

/// `scheme://authority` of a URI for a refusal log line; user info shows as `***@`, so that
/// neither a user name nor a password reaches the log.
fn describe_destination(uri: &Uri) -> String {
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    let authority = match authority.rsplit_once('@') {
        Some((_user_info, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    format!("{}://{authority}", uri.scheme_str().unwrap_or("?"))
}

/// A loaded application, ready to serve requests.
pub struct AppServer {
    pre: ProxyPre<RequestState>,
    route: Route,
    component_id: String,
    allowed: Arc<AllowedHosts>,
    /// Outbound connections, kept open between requests (and instances).
    outbound: OutboundPool,
    variables: ComponentVariables,
    /// The key-value stores every request shares (`key_value_stores`).
    key_value: Arc<KeyValueStores>,
    /// The folder of workload identity's token file, preopened read-only for each request.
    token_dir: Option<TokenDir>,
    /// The authority used for the request URI when the client sends no usable `Host`.
    fallback_authority: Authority,
    limits: Limits,
    /// The request slots ([`Limits::max_concurrent_requests`]) and the reads' share of them.
    slots: Slots,
    /// What `--metrics-listen` serves.
    metrics: Arc<Metrics>,
}

impl AppServer {
    /// Reads, componentizes and compiles the component, links the Spin imports and
    /// pre-instantiates it. Fails when the component imports something this host lacks.
    pub fn new(engine: &Engine, app: &App, listen: SocketAddr) -> Result<Self> {
        let bytes = componentize::read_component_bytes(&app.source)?;
        let component = Component::new(engine, &bytes)
            .map_err(|e| anyhow!("cannot compile {}: {e:?}", app.source.display()))?;
        Self::with_component(engine, &component, app, listen)
    }

    /// [`AppServer::new`] for a component compiled already (by [`precompile`]).
    pub fn with_component(
        engine: &Engine,
        component: &Component,
        app: &App,
        listen: SocketAddr,
    ) -> Result<Self> {
        let pre = link(engine, component, &app.component_id)?;
        let fallback_authority = listen
            .to_string()
            .parse()
            .context("listen address is not a valid authority")?;
        let outbound = OutboundPool::new(PoolSettings::default())
            .map_err(|e| anyhow!("cannot set up TLS for outbound requests: {e}"))?;
        Ok(Self {
            pre,
            route: app.route.clone(),
            component_id: app.component_id.clone(),
            allowed: Arc::new(app.allowed_outbound_hosts.clone()),
            outbound,
            variables: app.variables.clone(),
            key_value: Arc::new(KeyValueStores::for_component(
                &app.component_id,
                &app.key_value_stores,
            )?),
            token_dir: TokenDir::for_app(app)?,
            fallback_authority,
            limits: Limits::default(),
            slots: Slots::new(
                Limits::default().max_concurrent_requests,
                Limits::default().max_concurrent_reads,
            ),
            metrics: Metrics::new(),
        })
    }

    /// The server's counters (requests, outbound requests, refusals).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The same server with `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.slots = Slots::new(limits.max_concurrent_requests, limits.max_concurrent_reads);
        self.limits = limits;
        self
    }

    /// Advances the engine's epoch every [`EPOCH_TICK`] (the guest deadline's clock) from a
    /// thread of its own, so that a guest spinning on a runtime worker cannot stop it; the
    /// thread ends when the engine is dropped.
    fn start_epoch_ticker(&self) {
        let engine = self.pre.engine().weak();
        let _ = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            });
    }

    /// The same server with its outbound requests going through `pool` instead of the pool
    /// [`AppServer::new`] made (which trusts the webpki roots, as `up` always does); tests use
    /// it to trust a local certificate authority.
    pub fn with_outbound_pool(mut self, pool: OutboundPool) -> Self {
        self.outbound = pool;
        self
    }

    /// The lines `spin up` prints once it listens, e.g. `Serving http://127.0.0.1:3000`.
    pub fn banner(&self, local: SocketAddr) -> String {
        let base = format!("http://{local}");
        let route = match &self.route {
            Route::Wildcard { prefix, .. } => format!("{base}{prefix} (wildcard)"),
            Route::Exact { path, .. } => format!("{base}{path}"),
        };
        format!(
            "Serving {base}\nAvailable Routes:\n  {}: {route}",
            self.component_id
        )
    }

    /// Accepts connections until `shutdown` resolves, then waits up to [`SHUTDOWN_GRACE`]
    /// for in-flight requests (or returns early when `shutdown_again` resolves).
    pub async fn serve<S, T>(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: S,
        shutdown_again: T,
    ) -> Result<()>
    where
        S: Future<Output = &'static str>,
        T: Future<Output = &'static str>,
    {
        let graceful = GracefulShutdown::new();
        self.start_epoch_ticker();
        let connections = Connections::new(self.limits.max_connections);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                signal = &mut shutdown => {
                    log::message(Level::Info, None, &format!("Received {signal}; shutting down"));
                    break;
                }
                // At the connection bound, room is made (or waited for) before accepting.
                accepted = async {
                    connections.room().await;
                    listener.accept().await
                } => accepted,
            };
            let (stream, client) = match accepted {
                Ok(v) => v,
                Err(e) => {
                    log::message(
                        Level::Warn,
                        None,
                        &format!("accepting a connection failed: {e}"),
                    );
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            // Small response chunks must not wait for Nagle (as `wasmtime serve`).
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let counted = connections.open();
            let in_service = counted.clone();
            // The time this connection's writes are stalled, which the guest deadline of its
            // requests does not count (see [`crate::guest_deadline`]).
            let stalls = Arc::new(StallClock::default());
            let io =
                WriteTimeout::new(stream, self.limits.write_timeout).with_stalls(stalls.clone());
            let connection = http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(
                    TokioIo::new(io),
                    hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        let server = server.clone();
                        let request = in_service.request_started();
                        req.extensions_mut().insert(stalls.clone());
                        async move {
                            let response = server.handle(req, client).await;
                            Ok::<_, Infallible>(response.map(|body| HeldBody::new(body, request)))
                        }
                    }),
                );
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                tokio::select! {
                    result = connection => {
                        if let Err(e) = result {
                            if !e.is_incomplete_message() {
                                log::message(
                                    Level::Debug,
                                    None,
                                    &format!("connection from {client}: {e}"),
                                );
                            }
                        }
                    }
                    // Dropping the connection closes it.
                    () = counted.closed_for_room() => {}
                }
            });
        }
        drop(listener);

        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
                log::message(
                    Level::Warn,
                    None,
                    &format!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; exiting"),
                );
            }
            signal = shutdown_again => {
                log::message(Level::Info, None, &format!("Received {signal} again; exiting now"));
            }
        }
        Ok(())
    }

    /// Routes one request, runs the component, logs `METHOD /path STATUS 1.2ms id=…`.
    async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let start = Instant::now();
        let in_flight = self.metrics.request_started();
        let id = log::new_request_id();
        let method = req.method().clone();
        // Never the query string: it can carry credentials.
        let path = req.uri().path().to_string();

        let response = match self.route.matches(&path) {
            None => empty_response(StatusCode::NOT_FOUND),
            // A liveness probe never waits for a slot (see [`crate::slots`]).
            Some(_) if crate::slots::is_health_probe(&method, &path) => health_response(),
            Some(matched) => match self.slots.take(&path) {
                Err(busy) => {
                    self.metrics.server_busy();
                    busy_response(busy)
                }
                Ok(slot) => match self.call_component(req, &matched, client, &id, slot).await {
                    Ok(response) => response,
                    Err(e) => {
                        log::message(Level::Error, Some(&id), &format!("{method} {path}: {e:#}"));
                        empty_response(StatusCode::INTERNAL_SERVER_ERROR)
                    }
                },
            },
        };
        in_flight.finish(&path, response.status());
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        log::request(
            &id,
            method.as_str(),
            &path,
            response.status().as_u16(),
            elapsed_ms,
        );
        response
    }

    /// Instantiates the component in a fresh wasmtime store and hands it the request.
    async fn call_component(
        &self,
        req: Request<Incoming>,
        matched: &RouteMatch,
        client: SocketAddr,
        id: &str,
        slot: RequestSlot,
    ) -> Result<Response<HyperOutgoingBody>> {
        // The guest's deadline does not count the time the client's connection stalls.
        let stalls = req.extensions().get::<Arc<StallClock>>().cloned();
        let req = self.spin_request(req, matched, client)?;

        let mut wasi = WasiCtxBuilder::new();
        // In JSON mode the component's output is captured and logged as JSON lines tied to
        // the request; in text mode it goes straight to the host's stdout and stderr.
        let captured = match log::format() {
            LogFormat::Text => {
                wasi.inherit_stdout().inherit_stderr();
                None
            }
            LogFormat::Json => {
                let pipe = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(COMPONENT_OUTPUT_LIMIT);
                wasi.stdout(pipe.clone()).stderr(pipe.clone());
                Some(pipe)
            }
        };
        if let Some(dir) = &self.token_dir {
            dir.preopen(&mut wasi)?;
        }
        let state = RequestState::new(
            wasi.build(),
            self.allowed.clone(),
            self.outbound.clone(),
            self.variables.clone(),
        )
        .with_key_value(self.key_value.instance())
        .with_memory_limit(self.limits.max_instance_memory)
        .with_metrics(self.metrics.clone());
        let mut wasm_store = Store::new(self.pre.engine(), state);
        let limit = self.limits.request_deadline;
        let deadline = GuestDeadline::new(limit, stalls);
        RequestState::enforce(&mut wasm_store, deadline.clone());

        let IncomingCall {
            request: req,
            outparam: out,
            response: receiver,
        } = RequestState::incoming_call(&mut wasm_store, req)?;
        let pre = self.pre.clone();

        // The guest runs in its own task so it can keep streaming the body after the
        // response head has been handed to hyper.
        let request_id = id.to_owned();
        // The request's slot is held until the guest is done and its answer is written (or
        // the connection is gone): a slow reader's buffered answer counts against the limit.
        let slot = Arc::new(slot);
        let guest_slot = slot.clone();
        let task = tokio::task::spawn(async move {
            let _slot = guest_slot;
            // Wasm code is stopped by the epoch callback; this bounds its waits on the host too.
            let run = async {
                let proxy = pre.instantiate_async(&mut wasm_store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut wasm_store, req, out)
                    .await
            };
            let result = tokio::select! {
                result = run => result,
                () = deadline.passed_by(EPOCH_TICK) => Err(wasmtime::Error::msg(format!(
                    "the guest ran past the request deadline ({limit:?}) and was stopped"
                ))),
            };
            // The instance goes back to the pool before the slot is given back, so that the
            // pool, sized from the slots, never runs out.
            drop(wasm_store);
            if let Some(pipe) = captured {
                log::component_output(&request_id, &pipe.contents());
            }
            result
        });

        match receiver.await {
            Ok(Ok(response)) => {
                let response = response.map(|body| HeldBody::new(body, slot).boxed_unsync());
                let id = id.to_owned();
                tokio::spawn(async move {
                    let failure = match task.await {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => format!("component failed after responding: {e:?}"),
                        Err(e) => format!("component task failed after responding: {e}"),
                    };
                    log::message(Level::Error, Some(&id), &failure);
                });
                Ok(response)
            }
            Ok(Err(code)) => bail!("component returned error {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("component returned without setting a response"),
                Ok(Err(e)) => Err(anyhow!("component failed: {e:?}")),
                Err(e) => Err(anyhow!("component task failed: {e}")),
            },
        }
    }

    /// Gives the request the absolute URI and `spin-*` headers Spin gives it.
    fn spin_request(
        &self,
        req: Request<Incoming>,
        matched: &RouteMatch,
        client: SocketAddr,
    ) -> Result<Request<Incoming>> {
        let (mut parts, body) = req.into_parts();
        let authority = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<Authority>().ok())
            .unwrap_or_else(|| self.fallback_authority.clone());
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path_and_query)
            .build()
            .context("cannot build the request URI")?;

        let full_url = parts.uri.to_string();
        let headers = [
            (SPIN_FULL_URL, full_url.as_str()),
            (SPIN_PATH_INFO, matched.path_info.as_str()),
            (SPIN_MATCHED_ROUTE, self.route.raw()),
            (SPIN_RAW_COMPONENT_ROUTE, self.route.raw()),
            (SPIN_COMPONENT_ROUTE, self.route.component_route()),
            (SPIN_BASE_PATH, "/"),
            (SPIN_CLIENT_ADDR, &client.to_string()),
        ];
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .with_context(|| format!("invalid value for header {name}"))?;
            parts.headers.insert(HeaderName::from_static(name), value);
        }
        Ok(Request::from_parts(parts, body))
    }
}

/// 503 with `Retry-After` and the receiver's error shape (`server_busy`): every slot of a
/// kind is taken.
fn busy_response(busy: Busy) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "error": "server_busy",
        "message": format!(
            "{} is taken; retry after {RETRY_AFTER_SECS} s",
            busy.describe()
        ),
    });
    let mut response = Response::new(
        http_body_util::Full::new(bytes::Bytes::from(body.to_string()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A client connection whose writes fail with `TimedOut` when one makes no progress for
/// `timeout` (a client that does not read its answer); reads are untouched.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Set while a write is pending: when it must have made progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Told when writes stall and when they stop stalling.
    stalls: Option<Arc<StallClock>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
            stalls: None,
        }
    }

    /// The same, telling `stalls` how long its writes stall.
    fn with_stalls(mut self, stalls: Arc<StallClock>) -> Self {
        self.stalls = Some(stalls);
        self
    }

    /// The current stall, if any, is over.
    fn stall_over(&mut self) {
        if let Some(stalls) = &self.stalls {
            stalls.progressed();
        }
    }

    /// After a write-side poll: progress clears the timer; `Pending` starts it (or checks it).
    fn watch<T>(
        &mut self,
        cx: &mut TaskContext<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                self.stall_over();
                Poll::Ready(result)
            }
            Poll::Pending => {
                if let Some(stalls) = &self.stalls {
                    stalls.stalled();
                }
                let timeout = self.timeout;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.stall_over();
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client read nothing of the answer for the write timeout",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S> Drop for WriteTimeout<S> {
    /// A connection gone stalls no more: its guest's deadline counts again.
    fn drop(&mut self) {
        self.stall_over();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

/// The component's own answer to a liveness probe (`200 {"status":"ok"}`, built by the core),
/// given by the host without a request slot.
fn health_response() -> Response<HyperOutgoingBody> {
    acr_webhook_core::respond(&Ok(acr_webhook_core::Success::Healthy)).map(|body| {
        http_body_util::Full::new(bytes::Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync()
    })
}

/// A response with no body.
fn empty_response(status: StatusCode) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// Binds the listening socket (with `SO_REUSEADDR`, as `wasmtime serve` on Unix).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(!cfg!(windows))?;
    socket
        .bind(addr)
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

/// SIGINT and SIGTERM, registered when this is created (so a signal that arrives right after
/// the banner is not lost).
pub struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; needs a running tokio runtime.
    pub fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves with the signal's name when the next one arrives.
    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// The signal's name, or never if the signal task has gone away.
async fn signal_or_pending(rx: tokio::sync::oneshot::Receiver<&'static str>) -> &'static str {
    match rx.await {
        Ok(signal) => signal,
        Err(_) => std::future::pending().await,
    }
}

/// Loads `app` into an engine made with `options`, listens on `listen` (and serves the
/// metrics on `metrics_listen` when given), prints the banner on stdout and serves until
/// SIGINT or SIGTERM.
pub async fn run(
    app: App,
    listen: SocketAddr,
    options: EngineOptions,
    limits: Limits,
    metrics_listen: Option<SocketAddr>,
) -> Result<()> {
    let (engine, _allocation) = new_engine_with(options)?;
    let server = {
        let engine = engine.clone();
        let app = app.clone();
        // Compiling is CPU-bound (and waiting for the compiler process blocks): keep it off
        // the async workers.
        tokio::task::spawn_blocking(move || {
            match precompile::load_compiled_in_child(&engine, options, &app.source) {
                Ok(component) => AppServer::with_component(&engine, &component, &app, listen),
                Err(ChildCompileError::Component(e)) => Err(e),
                Err(ChildCompileError::Unavailable(e)) => {
                    log::message(
                        Level::Warn,
                        None,
                        &format!(
                            "compiling the component in this process, which keeps the \
                             compiler's memory for as long as it runs: {e:#}"
                        ),
                    );
                    AppServer::new(&engine, &app, listen)
                }
            }
        })
        .await
        .context("loading the component panicked")??
    };
    let server = server.with_limits(limits);
    let listener = bind(listen)?;
    let local = listener.local_addr()?;
    // A listener of its own: the public one never serves the metrics.
    let metrics_listener = metrics_listen.map(bind).transpose()?;
    let mut signals = Signals::install()?;
    println!("{}", server.banner(local));
    if let Some(listener) = metrics_listener {
        let at = listener.local_addr()?;
        println!("Metrics: http://{at}{}", metrics::METRICS_PATH);
        tokio::spawn(metrics::serve(server.metrics(), listener));
    }

    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (again_tx, again_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = first_tx.send(signals.next().await);
        let _ = again_tx.send(signals.next().await);
    });
    Arc::new(server)
        .serve(
            listener,
            signal_or_pending(first_rx),
            signal_or_pending(again_rx),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_log_lines_never_show_user_info() {
        let uri: Uri = "https://reader:s3cret@acct.documents.azure.com:443/dbs"
            .parse()
            .unwrap();
        let shown = describe_destination(&uri);
        assert_eq!(shown, "https://***@acct.documents.azure.com:443");
        let uri: Uri = "http://127.0.0.1:8081/x".parse().unwrap();
        assert_eq!(describe_destination(&uri), "http://127.0.0.1:8081");
    }

    /// A peer that reads nothing: once the pipe is full, the next write fails with `TimedOut`
    /// after the write timeout (hyper then closes the connection).
    #[tokio::test]
    async fn a_write_that_makes_no_progress_times_out() {
        use tokio::io::AsyncWriteExt;
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut ours = WriteTimeout::new(ours, Duration::from_millis(100));
        let failed = ours.write_all(&[7u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(failed.kind(), io::ErrorKind::TimedOut);
    }

    /// A slow reader that keeps making progress is never cut off, however long the answer
    /// takes in all.
    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut ours = WriteTimeout::new(ours, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match theirs.read(&mut buf).await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        // 16 KiB at 512 bytes per 20 ms: about 640 ms in all, over three times the timeout.
        ours.write_all(&[7u8; 16 * 1024]).await.unwrap();
        ours.shutdown().await.unwrap();
        drop(ours);
        assert_eq!(reader.await.unwrap(), 16 * 1024);
    }

    /// An allowed host with user info is refused by the hooks with a clear
    /// error, and nothing is dialled.
    #[tokio::test]
    async fn allowed_host_with_user_info_is_refused_and_not_dialled() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = OutboundPool::new(PoolSettings::default()).unwrap();
        let mut hooks = OutboundHooks {
            allowed: Arc::new(AllowedHosts::parse([format!("http://{addr}")]).unwrap()),
            pool: pool.clone(),
            metrics: None,
        };
        let request = Request::builder()
            .uri(format!("http://user:s3cret@{addr}/dbs"))
            .body(
                Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        let sent = Box::into_pin(hooks.send_request(request, None, Box::new(async { Ok(()) })));
        let Err(wasmtime_wasi_http::Error::InternalError(Some(message))) = sent.await else {
            panic!("expected the user-info refusal");
        };
        assert!(message.contains("user info"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert_eq!(pool.connections_opened(), 0);
    }
}
