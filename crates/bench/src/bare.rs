//! The floor: a native client that sends the same signed create requests as the receiver
//! straight to the store, at the same concurrency, and measures them the way wrk measures
//! the receivers (closed loop, one request in flight per connection, latency from the start
//! of the request to the end of the answer).
//!
//! Each request does what the component does between receiving an event and writing it:
//! the ACR push event (tests/fixtures/acr/push.json with a fresh id) is parsed by the core,
//! mapped to its document, serialized, and signed into a `create document` request by the
//! core's Cosmos code. Connections are kept alive and reused (as any native client would),
//! or, with `--new-connection-per-request`, opened for every request (what the wasmtime
//! host's default outbound HTTP does today).
//!
//! Prints one line for the driver: `BARE_RESULT {json}` (see [`RunResult::to_json`]), with
//! the CPU time and peak RSS of this process over the measured window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use acr_webhook_core::acr::parse_event;
use acr_webhook_core::cosmos::x_ms_date;
use acr_webhook_core::cosmos::Container;
use acr_webhook_core::document::EventDocument;
use acr_webhook_core::store::create_body;
use anyhow::{anyhow, bail, Context, Result};
use http::header::HOST;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::procfs;
use crate::stats::{percentile, RunResult};

/// Environment variable with the account key (base64).
pub const KEY_ENV: &str = "BENCH_COSMOS_KEY";

/// The event every request carries, with its id replaced.
const PUSH_EVENT: &[u8] = include_bytes!("../../../tests/fixtures/acr/push.json");

/// Arguments of `acr-webhook-bench bare-write`.
#[derive(Debug, Clone, clap::Args)]
pub struct BareArgs {
    /// The store, `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub endpoint: String,
    /// Database id.
    #[arg(long, default_value = "acr")]
    pub database: String,
    /// Container id.
    #[arg(long, default_value = "events")]
    pub container: String,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Prefix of the document ids (unique per run).
    #[arg(long, default_value = "bare")]
    pub prefix: String,
    /// Open a new TCP connection for every request instead of reusing one per client.
    #[arg(long)]
    pub new_connection_per_request: bool,
}

struct Shared {
    store: Container,
    addr: SocketAddr,
    authority: String,
    template: Value,
    prefix: String,
    new_connection: bool,
}

#[derive(Default)]
struct TaskResult {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// Runs the load and prints `BARE_RESULT {json}`.
pub fn run(args: BareArgs) -> Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    // The account key comes from the environment so that it never shows in `ps`.
    let key = std::env::var(KEY_ENV).map_err(|_| anyhow!("{KEY_ENV} is not set"))?;
    let store = acr_webhook_core::config::container_from_lookup(|name| match name {
        "cosmos_endpoint" => Some(args.endpoint.clone()),
        "cosmos_key" => Some(key.clone()),
        "cosmos_database" => Some(args.database.clone()),
        "cosmos_container" => Some(args.container.clone()),
        _ => None,
    })
    .map_err(|e| anyhow!("{e}"))?;
    let authority = args
        .endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the bare-write client speaks plain http:// only"))?
        .trim_end_matches('/')
        .to_string();
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("expected http://IP:PORT, got {}", args.endpoint))?;
    let shared = Arc::new(Shared {
        store,
        addr,
        authority,
        template: serde_json::from_slice(PUSH_EVENT).context("the push fixture")?,
        prefix: args.prefix.clone(),
        new_connection: args.new_connection_per_request,
    });

    // As many threads as wrk gets for the same concurrency.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.concurrency.min(2))
        .enable_all()
        .build()?;
    let pid = std::process::id();
    let result = runtime.block_on(async move {
        let start = Instant::now();
        let warm_end = start + Duration::from_secs_f64(args.warmup);
        let end = warm_end + Duration::from_secs_f64(args.duration);
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|i| tokio::spawn(client(shared.clone(), i, warm_end, end)))
            .collect();
        tokio::time::sleep_until(warm_end.into()).await;
        let cpu_before = procfs::cpu(pid)?;
        let peak_reset = procfs::reset_peak_rss(pid);
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let r = task.await.context("a client task panicked")??;
            latencies.extend(r.latencies_us);
            errors += r.errors;
        }
        let cpu = procfs::cpu(pid)?.since(cpu_before);
        latencies.sort_unstable();
        anyhow::Ok(RunResult {
            requests: latencies.len() as u64,
            seconds: args.duration,
            p50_us: percentile(&latencies, 0.5),
            p99_us: percentile(&latencies, 0.99),
            max_us: latencies.last().copied().map(f64::from).unwrap_or(0.0),
            errors,
            cpu_seconds: Some(cpu.total()),
            peak_rss_kib: procfs::peak_rss_kib(pid).ok(),
            peak_reset,
        })
    })?;
    println!("BARE_RESULT {}", result.to_json());
    Ok(())
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The request the receiver would send for event `id`: parse, document, serialize, sign.
fn create_request(shared: &Shared, id: &str) -> Result<http::Request<Full<Bytes>>> {
    let mut event = shared.template.clone();
    event["id"] = Value::String(id.to_owned());
    let body = serde_json::to_vec(&event)?;
    let now = SystemTime::now();
    let parsed = parse_event(&body).map_err(|e| anyhow!("{e}"))?;
    let document = EventDocument::from_acr(&parsed, now);
    let (body, partition_key) = create_body(&document, &shared.store.partition_key_path);
    let mut request = shared
        .store
        .create_document_request(body, &partition_key, &x_ms_date(now));
    shared
        .store
        .auth
        .key_credential()
        .context("the bare write signs with the account key (cosmos_auth=key)")?
        .sign(&mut request);
    let (mut parts, body) = request.into_parts();
    // Origin form on the wire, the authority in Host.
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()?;
    parts.headers.insert(HOST, shared.authority.parse()?);
    Ok(http::Request::from_parts(
        parts,
        Full::new(Bytes::from(body)),
    ))
}

/// One connection's closed loop until `end`; latencies of requests started after
/// `warm_end` are kept.
async fn client(
    shared: Arc<Shared>,
    index: usize,
    warm_end: Instant,
    end: Instant,
) -> Result<TaskResult> {
    let mut result = TaskResult::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut n = 0u64;
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        n += 1;
        let id = format!("{}-{index}-{n}", shared.prefix);
        let request = create_request(&shared, &id)?;
        let mut s = match sender.take() {
            Some(s) if !shared.new_connection && !s.is_closed() => s,
            _ => connect(shared.addr).await?,
        };
        let outcome = async {
            s.ready().await?;
            let response = s.send_request(request).await?;
            let status = response.status();
            let _ = response.into_body().collect().await?;
            anyhow::Ok(status)
        }
        .await;
        let elapsed = started.elapsed();
        let ok = matches!(outcome, Ok(status) if status.as_u16() == 201);
        if outcome.is_ok() {
            sender = Some(s);
        }
        if started >= warm_end {
            if ok {
                result
                    .latencies_us
                    .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
            } else {
                result.errors += 1;
            }
        }
    }
    Ok(result)
}
