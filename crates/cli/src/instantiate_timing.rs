//! `acr-webhook bench-instantiate` (hidden): what the component costs inside the host, with
//! no I/O at all.
//!
//! - **Pre-instantiation**, once: reading (and componentizing) the `.wasm`,
//!   `Component::new` (Cranelift compilation), linking WASI, wasi:http and the Spin
//!   variables, `instantiate_pre` and `ProxyPre::new`, exactly as `acr-webhook up` does;
//!   also how long loading the same component from its serialized (precompiled) form takes.
//! - **Per request**, `--requests` times in one thread: a fresh `Store` (as `up` makes per
//!   request), `ProxyPre::instantiate_async`, and the `wasi:http/incoming-handler` call for
//!   a `POST /acr` without a key, which the component answers 401 before reading the body
//!   or touching Cosmos DB. The wasmtime store data is `up`'s (`server::RequestState`) with no
//!   outbound host allowed (none is contacted), and the component's stderr line goes to a
//!   sink, so nothing leaves the process.
//!
//! The engine is `up`'s (`engine::new_engine_with`: pooling allocator when the machine allows
//! it, 64 KiB kept resident), optionally with the profiler or another keep-resident size.

use crate::componentize;
use crate::engine;
use crate::manifest::{ComponentVariables, DEFAULT_MANIFEST_FILE};
use crate::outbound::AllowedHosts;
use crate::outbound_pool::{OutboundPool, PoolSettings};
use crate::server::{self, IncomingCall, RequestState};
use crate::up::load_app;
use anyhow::{anyhow, bail, Context, Result};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::SinkOutputStream;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// Values for the required variables when neither `--variable` nor `SPIN_VARIABLE_*` sets
/// them, so that the command runs on its own. Nothing is ever sent to this endpoint.
const BENCH_DEFAULTS: [(&str, &str); 3] = [
    ("cosmos_endpoint", "http://127.0.0.1:9"),
    // The Cosmos emulator's well-known public key.
    (
        "cosmos_key",
        "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==",
    ),
    ("webhook_keys", "bench-instantiate-key"),
];

/// Requests run before timing starts (caches, lazy initialisation, the pool's first slots).
const WARMUP_REQUESTS: usize = 1_000;

/// The body sent (never read: the component answers 401 first).
const PUSH_EVENT: &[u8] = include_bytes!("../../../tests/fixtures/acr/push.json");

/// Arguments of `acr-webhook bench-instantiate`.
#[derive(Debug, clap::Args)]
pub struct InstantiateTimingArgs {
    /// The application manifest: a spin.toml file, or a folder that contains one.
    #[arg(long = "from", short = 'f', value_name = "MANIFEST", default_value = DEFAULT_MANIFEST_FILE)]
    pub from: PathBuf,

    /// How many requests to time (after a warm-up of 1,000).
    #[arg(long, default_value_t = 100_000)]
    pub requests: usize,

    /// Load this .wasm (core module or component) instead of the manifest's `source`, e.g.
    /// the output of `wasm-opt`.
    #[arg(long, value_name = "WASM")]
    pub component: Option<PathBuf>,

    /// Sets an application variable, NAME=VALUE, as for `up`; the required ones default to
    /// harmless bench values.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,

    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,

    /// Write /tmp/perf-<pid>.map so that `perf report` names the wasm functions (`up`'s
    /// engine settings plus the profiler).
    #[arg(long)]
    pub perfmap: bool,

    /// Experiment: keep this many bytes of each linear memory and table resident between
    /// instances (reset with memset instead of madvise) instead of `up`'s 64 KiB.
    #[arg(long, value_name = "BYTES")]
    pub keep_resident: Option<usize>,
}

/// Timings of one run, in nanoseconds.
#[derive(Debug, Default)]
struct Samples {
    /// Store creation + `instantiate_async`.
    instantiate: Vec<u64>,
    /// The handler call until the response head arrived.
    handle: Vec<u64>,
    /// Store creation + instantiation + the handler call: the goal's figure.
    instantiate_handle: Vec<u64>,
    /// Store creation to the store's drop: everything a request costs the host.
    total: Vec<u64>,
}

/// Median, 99th percentile, max and mean of a sample, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Summary {
    median: u64,
    p99: u64,
    max: u64,
    mean: u64,
}

fn summarize(values: &mut [u64]) -> Summary {
    values.sort_unstable();
    let n = values.len().max(1);
    let at = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Summary {
        median: at(0.5),
        p99: at(0.99),
        max: values.last().copied().unwrap_or(0),
        mean: values.iter().sum::<u64>() / n as u64,
    }
}

/// Runs the measurement and prints the report.
pub fn run(args: InstantiateTimingArgs) -> Result<()> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let mut variable_args = args.variables.clone();
    for (name, value) in BENCH_DEFAULTS {
        let env = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        let given = variable_args
            .iter()
            .any(|a| a.split_once('=').is_some_and(|(n, _)| n == name));
        if !given && std::env::var_os(&env).is_none() {
            variable_args.insert(0, format!("{name}={value}"));
        }
    }
    let mut app = load_app(&args.from, &variable_args)?;
    if let Some(path) = &args.component {
        app.source = path.clone();
    }

    // Pre-instantiation, phase by phase.
    let started = Instant::now();
    let defaults = engine::EngineOptions::default();
    let (engine, allocation) = engine::new_engine_with(engine::EngineOptions {
        perfmap: args.perfmap,
        keep_resident: args.keep_resident.unwrap_or(defaults.keep_resident),
        ..defaults
    })?;
    let engine_time = started.elapsed();

    let t = Instant::now();
    let bytes = componentize::read_component_bytes(&app.source)?;
    let read_time = t.elapsed();

    let t = Instant::now();
    let component = Component::new(&engine, &bytes)
        .map_err(|e| anyhow!("cannot compile {}: {e:?}", app.source.display()))?;
    let compile_time = t.elapsed();

    let t = Instant::now();
    let pre = server::link(&engine, &component, &app.component_id)?;
    let link_time = t.elapsed();

    // The same component from its precompiled form (what a compilation cache would load).
    let serialized = component
        .serialize()
        .map_err(|e| anyhow!("cannot serialize the compiled component: {e}"))?;
    let t = Instant::now();
    // SAFETY: the bytes were produced just now by `serialize` on this same engine.
    let from_cache = unsafe { Component::deserialize(&engine, &serialized) }
        .map_err(|e| anyhow!("cannot load the serialized component: {e}"))?;
    let _ = server::link(&engine, &from_cache, &app.component_id)?;
    let cached_time = t.elapsed();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let variables = app.variables.clone();
    let mut samples = runtime.block_on(measure(&engine, &pre, &variables, args.requests))?;

    let instantiate = summarize(&mut samples.instantiate);
    let handle = summarize(&mut samples.handle);
    let instantiate_handle = summarize(&mut samples.instantiate_handle);
    let total = summarize(&mut samples.total);
    let pre_total = read_time + compile_time + link_time;
    let wasm_bytes = std::fs::metadata(&app.source).map(|m| m.len()).unwrap_or(0);

    if args.json {
        let s = |x: Summary| serde_json::json!({"median_ns": x.median, "p99_ns": x.p99, "max_ns": x.max, "mean_ns": x.mean});
        let report = serde_json::json!({
            "wasm": app.source.display().to_string(),
            "wasm_bytes": wasm_bytes,
            "component_bytes": bytes.len(),
            "allocation": format!("{allocation:?}"),
            "requests": args.requests,
            "engine_ns": engine_time.as_nanos() as u64,
            "read_componentize_ns": read_time.as_nanos() as u64,
            "compile_ns": compile_time.as_nanos() as u64,
            "link_pre_ns": link_time.as_nanos() as u64,
            "pre_instantiate_ns": pre_total.as_nanos() as u64,
            "precompiled_load_link_ns": cached_time.as_nanos() as u64,
            "instantiate": s(instantiate),
            "handle": s(handle),
            "instantiate_handle": s(instantiate_handle),
            "total": s(total),
        });
        println!("{report}");
        return Ok(());
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "component: {} ({wasm_bytes} bytes on disk, {} bytes as a component), {allocation:?} allocation",
        app.source.display(),
        bytes.len()
    );
    println!(
        "pre-instantiation: {:.1} ms = read+componentize {:.1} ms + compile {:.1} ms + link+ProxyPre {:.2} ms (engine {:.1} ms; from precompiled: {:.2} ms)",
        ms(pre_total),
        ms(read_time),
        ms(compile_time),
        ms(link_time),
        ms(engine_time),
        ms(cached_time)
    );
    println!(
        "per request, {} requests answered 401 without I/O (µs):",
        args.requests
    );
    for (name, x) in [
        ("instantiate", instantiate),
        ("handle", handle),
        ("instantiate+handle", instantiate_handle),
        ("instantiate+handle+drop", total),
    ] {
        println!(
            "  {name:<24} median {:>7.2}  p99 {:>7.2}  max {:>8.2}  mean {:>7.2}",
            us(x.median),
            us(x.p99),
            us(x.max),
            us(x.mean)
        );
    }
    Ok(())
}

/// Links what `up` links and pre-instantiates.
/// The request `up` would hand the component for `POST /acr` without a key.
fn unauthorized_request() -> Request<http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>>
{
    let body = Full::new(Bytes::from_static(PUSH_EVENT))
        .map_err(|never: Infallible| -> hyper::Error { match never {} })
        .boxed_unsync();
    Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:3000/acr")
        .header("host", "127.0.0.1:3000")
        .header("content-type", "application/json")
        .header("content-length", PUSH_EVENT.len())
        .header("user-agent", "AzureContainerRegistry/1.0")
        .header("spin-full-url", "http://127.0.0.1:3000/acr")
        .header("spin-path-info", "/acr")
        .header("spin-matched-route", "/...")
        .header("spin-raw-component-route", "/...")
        .header("spin-component-route", "")
        .header("spin-base-path", "/")
        .header("spin-client-addr", "127.0.0.1:40000")
        .body(body)
        .expect("a valid request")
}

async fn measure(
    engine: &Engine,
    pre: &ProxyPre<RequestState>,
    variables: &ComponentVariables,
    requests: usize,
) -> Result<Samples> {
    let mut samples = Samples {
        instantiate: Vec::with_capacity(requests),
        handle: Vec::with_capacity(requests),
        instantiate_handle: Vec::with_capacity(requests),
        total: Vec::with_capacity(requests),
    };
    let no_outbound = Arc::new(AllowedHosts::from_entries(Vec::new()));
    let pool = OutboundPool::new(PoolSettings::default())
        .map_err(|e| anyhow!("cannot set up the outbound pool: {e}"))?;
    for i in 0..WARMUP_REQUESTS + requests {
        let request = unauthorized_request();
        let t0 = Instant::now();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(SinkOutputStream).stderr(SinkOutputStream);
        // As `up` makes it per request; no host is allowed, so an outbound request (the
        // 401 path makes none) would be refused without leaving the process.
        let state = RequestState::new(
            wasi.build(),
            no_outbound.clone(),
            pool.clone(),
            variables.clone(),
        )
        .with_memory_limit(crate::server::DEFAULT_MAX_INSTANCE_MEMORY);
        let mut wasm_store = Store::new(engine, state);
        // As `up` (its epoch ticker does not run here: the deadline never fires).
        RequestState::enforce(
            &mut wasm_store,
            crate::guest_deadline::GuestDeadline::new(
                crate::server::DEFAULT_REQUEST_DEADLINE,
                None,
            ),
        );
        let IncomingCall {
            request: req,
            outparam: out,
            response: receiver,
        } = RequestState::incoming_call(&mut wasm_store, request)?;
        let proxy = pre.instantiate_async(&mut wasm_store).await?;
        let t1 = Instant::now();
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut wasm_store, req, out)
            .await?;
        let response = receiver
            .await
            .context("the component set no response")?
            .map_err(|code| anyhow!("the component answered an error: {code:?}"))?;
        let t2 = Instant::now();
        drop(wasm_store);
        let t3 = Instant::now();
        if response.status() != StatusCode::UNAUTHORIZED {
            bail!(
                "expected 401 for a request without a key, got {}",
                response.status()
            );
        }
        if i >= WARMUP_REQUESTS {
            samples.instantiate.push((t1 - t0).as_nanos() as u64);
            samples.handle.push((t2 - t1).as_nanos() as u64);
            samples.instantiate_handle.push((t2 - t0).as_nanos() as u64);
            samples.total.push((t3 - t0).as_nanos() as u64);
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_picks_nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = summarize(&mut v);
        assert_eq!((s.median, s.p99, s.max, s.mean), (50, 99, 100, 50));
        let mut one = vec![7];
        let s = summarize(&mut one);
        assert_eq!((s.median, s.p99, s.max), (7, 7, 7));
    }
}
