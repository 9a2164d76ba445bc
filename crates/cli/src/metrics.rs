//! `acr-webhook up --metrics-listen ADDRESS`: the host's own figures, served as `GET /metrics`
//! in the Prometheus text format (0.0.4, encoded by `prometheus-client`) on a listener of its
//! own, never on the public one. ACR never retries a delivery: an event answered 5xx is gone
//! unless someone replays it, so these counters are what tells that it happened
//! (`deploy/prometheus/alerts.yaml`).
//!
//! What is counted, and where the server calls in:
//! - every request, by route template (never the raw path) and status, with its duration up
//!   to the answer's head ([`Metrics::request_started`], then [`InFlight::finish`]);
//! - requests in flight (the same guard);
//! - 503 `server_busy` refusals ([`Metrics::server_busy`]);
//! - the outbound requests the component makes through the host, by destination and status,
//!   with their duration up to the answer's head ([`observe_outbound`]);
//! - the process's resident and virtual memory, CPU seconds, start time and file descriptors
//!   (read from `/proc` at each scrape, [`crate::process_stats`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acr_webhook_core::webhook::route_template;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

use crate::log::{self, Level};
use crate::outbound::Destination;

/// The path the metrics listener answers.
pub const METRICS_PATH: &str = "/metrics";

/// Upper bounds of the duration buckets, in seconds: from a 1 ms health check to the 4 s
/// write budget and past it (a guest stopped at its deadline).
const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `route` and `code` of an answered request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteCode {
    route: &'static str,
    code: u16,
}

/// `route` of an answered request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOnly {
    route: &'static str,
}

/// `host` (`name:port`) and `status` (the code, or `error` when no answer came) of an
/// outbound request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostStatus {
    host: String,
    status: String,
}

/// `host` of an outbound request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostOnly {
    host: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The host's counters, and the registry that encodes them. One per server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteCode, Counter>,
    durations: Family<RouteOnly, Histogram>,
    in_flight: Gauge,
    server_busy: Counter,
    outbound: Family<HostStatus, Counter>,
    outbound_durations: Family<HostOnly, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every metric registered, all at zero.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RouteCode, Counter>::default();
        registry.register(
            "acr_webhook_http_requests",
            "Requests answered, by route template and status code",
            requests.clone(),
        );
        let durations =
            Family::<RouteOnly, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        registry.register_with_unit(
            "acr_webhook_http_request_duration",
            "Time from a request's arrival to its answer's head, by route template",
            Unit::Seconds,
            durations.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "acr_webhook_http_requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        let server_busy = Counter::default();
        registry.register(
            "acr_webhook_server_busy",
            "Requests refused with 503 server_busy because every request slot was taken \
             (--max-concurrent-requests)",
            server_busy.clone(),
        );
        let outbound = Family::<HostStatus, Counter>::default();
        registry.register(
            "acr_webhook_outbound_requests",
            "Requests the component sent through the host (to Cosmos DB), by destination \
             host:port and status code (`error`: no answer)",
            outbound.clone(),
        );
        let outbound_durations =
            Family::<HostOnly, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        registry.register_with_unit(
            "acr_webhook_outbound_request_duration",
            "Time from sending an outbound request to its answer's head, by destination",
            Unit::Seconds,
            outbound_durations.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Arc::new(Self {
            registry,
            requests,
            durations,
            in_flight,
            server_busy,
            outbound,
            outbound_durations,
        })
    }

    /// A request arrived: it counts as in flight until the guard is finished or dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.inc();
        InFlight {
            metrics: self.clone(),
            started: Instant::now(),
        }
    }

    /// A request was refused with 503 `server_busy`.
    pub fn server_busy(&self) {
        self.server_busy.inc();
    }

    /// An outbound request to `destination` ended: with an answer of `status`, or with none.
    pub fn outbound_done(
        &self,
        destination: &Destination,
        status: Option<StatusCode>,
        elapsed: Duration,
    ) {
        let host = host_label(destination);
        let status = status.map_or_else(|| "error".to_owned(), |s| s.as_u16().to_string());
        self.outbound
            .get_or_create(&HostStatus {
                host: host.clone(),
                status,
            })
            .inc();
        self.outbound_durations
            .get_or_create(&HostOnly { host })
            .observe(elapsed.as_secs_f64());
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// `name:port` (`[::1]:port` for IPv6) of a destination: bounded by the allow-list.
fn host_label(destination: &Destination) -> String {
    if destination.host.contains(':') {
        format!("[{}]:{}", destination.host, destination.port)
    } else {
        format!("{}:{}", destination.host, destination.port)
    }
}

/// A request being handled; [`InFlight::finish`] counts it. Dropped unfinished (the client
/// went away before the answer), it only leaves the in-flight gauge.
pub struct InFlight {
    metrics: Arc<Metrics>,
    started: Instant,
}

impl InFlight {
    /// The request to `path` was answered with `status`.
    pub fn finish(self, path: &str, status: StatusCode) {
        let route = route_template(path);
        self.metrics
            .requests
            .get_or_create(&RouteCode {
                route,
                code: status.as_u16(),
            })
            .inc();
        self.metrics
            .durations
            .get_or_create(&RouteOnly { route })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// Runs `send` (an outbound request to `destination`) and counts how it ended, when `metrics`
/// is given.
pub async fn observe_outbound<B, T, E>(
    metrics: Option<Arc<Metrics>>,
    destination: Destination,
    send: impl Future<Output = Result<(Response<B>, T), E>>,
) -> Result<(Response<B>, T), E> {
    let started = Instant::now();
    let sent = send.await;
    if let Some(metrics) = metrics {
        let status = sent.as_ref().ok().map(|(response, _)| response.status());
        metrics.outbound_done(&destination, status, started.elapsed());
    }
    sent
}

/// The `process_*` figures, read at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(stats) = crate::process_stats::read() else {
            return Ok(());
        };
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                stats.resident_memory_bytes as f64,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(Unit::Bytes),
                stats.virtual_memory_bytes as f64,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(Unit::Seconds),
                stats.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                stats.open_fds as f64,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        if let Some(max) = stats.max_fds {
            let gauge = ConstGauge::new(max as f64);
            gauge.encode(encoder.encode_descriptor(
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let cpu = ConstCounter::new(stats.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Serves `GET /metrics` on `listener` until the runtime stops: 200 with the figures, 404 for
/// any other path, 405 for another method.
pub async fn serve(metrics: Arc<Metrics>, listener: TcpListener) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                log::message(
                    Level::Warn,
                    None,
                    &format!("metrics listener: accepting a connection failed: {e}"),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer(&metrics, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            if let Err(e) = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                log::message(
                    Level::Debug,
                    None,
                    &format!("metrics connection from {client}: {e}"),
                );
            }
        });
    }
}

/// The answer of the metrics listener to one request.
fn answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = if request.uri().path() != METRICS_PATH {
        (StatusCode::NOT_FOUND, Bytes::new())
    } else if !matches!(*request.method(), Method::GET | Method::HEAD) {
        (StatusCode::METHOD_NOT_ALLOWED, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from(metrics.encode()))
    };
    let mut response = Response::new(Full::new(if *request.method() == Method::HEAD {
        Bytes::new()
    } else {
        body
    }));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    match status {
        StatusCode::OK => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                ),
            );
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(host: &str, port: u16) -> Destination {
        Destination {
            scheme: "https".into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn counts_are_encoded_per_route_template_and_code() {
        let metrics = Metrics::new();
        for (path, code) in [
            ("/acr", 201),
            ("/acr", 201),
            ("/acr", 503),
            ("/events/abc", 200),
            ("/events/def", 200),
            ("/nowhere", 404),
        ] {
            metrics
                .request_started()
                .finish(path, StatusCode::from_u16(code).unwrap());
        }
        let held = metrics.request_started();
        metrics.server_busy();
        metrics.outbound_done(
            &destination("acct.documents.azure.com", 443),
            Some(StatusCode::CREATED),
            Duration::from_millis(12),
        );
        metrics.outbound_done(&destination("::1", 8081), None, Duration::from_millis(3));
        let text = metrics.encode();
        for line in [
            "acr_webhook_http_requests_total{route=\"/acr\",code=\"201\"} 2",
            "acr_webhook_http_requests_total{route=\"/acr\",code=\"503\"} 1",
            "acr_webhook_http_requests_total{route=\"/events/{id}\",code=\"200\"} 2",
            "acr_webhook_http_requests_total{route=\"other\",code=\"404\"} 1",
            "acr_webhook_http_request_duration_seconds_count{route=\"/acr\"} 3",
            "acr_webhook_http_requests_in_flight 1",
            "acr_webhook_server_busy_total 1",
            "acr_webhook_outbound_requests_total{host=\"acct.documents.azure.com:443\",status=\"201\"} 1",
            "acr_webhook_outbound_requests_total{host=\"[::1]:8081\",status=\"error\"} 1",
            "acr_webhook_outbound_request_duration_seconds_count{host=\"[::1]:8081\"} 1",
            "# TYPE acr_webhook_http_request_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(!text.contains("/events/abc"), "{text}");
        drop(held);
        assert!(metrics
            .encode()
            .contains("acr_webhook_http_requests_in_flight 0"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_figures_are_there() {
        let text = Metrics::new().encode();
        for name in [
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_start_time_seconds ",
            "process_open_fds ",
            "process_cpu_seconds_total ",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            assert!(text.contains(name), "{name:?} not in:\n{text}");
        }
    }
}
