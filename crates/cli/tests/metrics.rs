//! `acr-webhook up --metrics-listen`: known traffic through the real component, the real local
//! store and a fault proxy in front of it, then a scrape of the metrics listener compared with
//! what the clients saw (requests per route template and status code, exactly), with what the
//! proxy counted (outbound requests and the 503s it injected), and with the refusals seen; the
//! public port does not serve `/metrics`; and the alerting rules of
//! deploy/prometheus/alerts.yaml, fed two real scrapes, fire (`promtool test rules`).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use acr_webhook_testkit::{free_port, http, repo_root, FaultKind, FaultPlan, FaultProxy};
use serde_json::json;
use support::*;

/// One scrape: `(name, sorted labels) -> value`.
type Scrape = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parses the Prometheus text format (samples only; the comments are checked elsewhere).
fn parse(text: &str) -> Scrape {
    let mut samples = Scrape::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut labels: Vec<(String, String)> = labels
            .split("\",")
            .filter(|l| !l.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                (k.to_owned(), v.trim_end_matches('"').to_owned())
            })
            .collect();
        labels.sort();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        samples.insert((name.to_owned(), labels), value);
    }
    samples
}

/// Samples of `name` whose labels include every one of `with`.
fn select<'a>(
    scrape: &'a Scrape,
    name: &'a str,
    with: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = (&'a Vec<(String, String)>, f64)> + 'a {
    scrape.iter().filter_map(move |((n, labels), v)| {
        let matches = n == name
            && with
                .iter()
                .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v));
        matches.then_some((labels, *v))
    })
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {labels:?}"))
}

/// `acr_webhook_http_requests_total` as `(route, code) -> count`.
fn requests(scrape: &Scrape) -> BTreeMap<(String, u16), u64> {
    select(scrape, "acr_webhook_http_requests_total", &[])
        .map(|(labels, v)| {
            (
                (
                    label(labels, "route").to_owned(),
                    label(labels, "code").parse().unwrap(),
                ),
                v as u64,
            )
        })
        .collect()
}

fn scrape_text(addr: &str) -> http::HttpResponse {
    http::request("GET", &format!("http://{addr}/metrics"), &[], None).unwrap()
}

/// The client side's record: what each request to each route template was answered.
#[derive(Default)]
struct Seen(BTreeMap<(String, u16), u64>);

impl Seen {
    fn record(&mut self, route: &str, answer: &http::HttpResponse) -> u16 {
        *self.0.entry((route.to_owned(), answer.status)).or_default() += 1;
        answer.status
    }
}

fn push_event(id: &str) -> Vec<u8> {
    let mut event = fixture_json("acr/push.json");
    event["id"] = json!(id);
    event["target"]["tag"] = json!(id);
    serde_json::to_vec(&event).unwrap()
}

#[test]
fn the_metrics_listener_counts_what_the_clients_saw() {
    let mut stack = Stack::start_store_only(&[("write_budget_ms", "1500")]);
    let proxy = FaultProxy::start(
        stack.store.addr(),
        FaultPlan::new(0x03e7_e1c5, 0.0).kinds(&[FaultKind::Unavailable]),
    );
    stack.set_variable("cosmos_endpoint", &proxy.endpoint());
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    stack.start_app_with_flags(&[
        "--metrics-listen",
        &metrics_addr,
        // Two slots: a request holds its slot a moment after its answer is read, so one
        // slot could refuse the next of these sequential requests; two writes held at once
        // by a failing store take both below.
        "--max-concurrent-requests",
        "2",
    ]);
    // The line `up` prints after its banner (the public port is open before it).
    let announced = format!("Metrics: http://{metrics_addr}/metrics");
    for _ in 0..100 {
        if stack.app_log().contains(&announced) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stack.app_log().contains(&announced), "{}", stack.app_log());

    // Before any traffic: every unlabelled figure at zero, no request counted.
    let fresh = parse(&scrape_text(&metrics_addr).text());
    assert!(requests(&fresh).is_empty(), "{fresh:?}");
    assert_eq!(
        fresh[&("acr_webhook_server_busy_total".into(), vec![])],
        0.0
    );

    let read = bearer(TEST_READ_KEY);
    let get = |path: &str| {
        http::request("GET", &stack.url(path), &[("authorization", &read)], None).unwrap()
    };
    let mut seen = Seen::default();
    for _ in 0..3 {
        assert_eq!(seen.record("/healthz", &get("/healthz")), 200);
    }
    assert_eq!(
        seen.record("/acr", &stack.post_acr(&push_event("metrics-1"))),
        201
    );
    assert_eq!(
        seen.record("/acr", &stack.post_acr(&push_event("metrics-2"))),
        201
    );
    assert_eq!(
        seen.record("/acr", &stack.post_acr(&push_event("metrics-1"))),
        200
    );
    assert_eq!(
        seen.record("/acr", &stack.post_acr(&fixture("acr/ping.json"))),
        204
    );
    let wrong_key = stack.post(
        "/acr",
        &[("authorization", "Bearer not-the-key-at-all-0000")],
        &push_event("metrics-3"),
    );
    assert_eq!(seen.record("/acr", &wrong_key), 401);
    assert_eq!(seen.record("/acr", &get("/acr")), 405);
    let distribution = stack.post(
        "/distribution",
        &[
            ("authorization", &bearer(TEST_KEY)),
            ("content-type", acr_webhook_testkit::EVENTS_MEDIA_TYPE),
        ],
        &fixture("distribution/push.json"),
    );
    assert_eq!(seen.record("/distribution", &distribution), 201);
    assert_eq!(seen.record("/events", &get("/events?limit=5")), 200);
    assert_eq!(seen.record("/events/summary", &get("/events/summary")), 200);
    assert_eq!(seen.record("/events/{id}", &get("/events/metrics-2")), 200);
    assert_eq!(seen.record("/", &get("/")), 200);
    assert_eq!(seen.record("/", &get("/ui/app.js")), 200);
    // The public port does not serve the metrics: the component answers its own 404.
    let public = get("/metrics");
    assert_eq!(seen.record("other", &public), 404);
    assert_eq!(json(&public)["error"], "not_found", "{}", public.text());
    assert!(!public.text().contains("acr_webhook_"), "{}", public.text());
    assert_eq!(seen.record("other", &get("/no/such/page")), 404);

    let healthy = scrape_text(&metrics_addr);
    assert_eq!(healthy.status, 200);
    assert_eq!(
        healthy.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let healthy_text = healthy.text();
    let before = parse(&healthy_text);
    assert_eq!(requests(&before), seen.0, "\n{healthy_text}");

    // Cosmos DB answers every write 503: the next two events are answered 503 once the
    // budget is spent, and while they hold both slots, requests for the page are refused
    // `server_busy` (health checks are answered by the host without a slot).
    proxy.set_rate(1.0);
    let written = AtomicUsize::new(0);
    let (failed, probes) = std::thread::scope(|s| {
        let writers: Vec<_> = ["metrics-lost-1", "metrics-lost-2"]
            .into_iter()
            .map(|id| {
                let (written, stack) = (&written, &stack);
                s.spawn(move || {
                    let answer = stack.post_acr(&push_event(id));
                    written.fetch_add(1, Ordering::SeqCst);
                    answer
                })
            })
            .collect();
        let mut probes = Vec::new();
        while written.load(Ordering::SeqCst) < 2 && probes.len() < 200 {
            probes.push(get("/"));
            std::thread::sleep(Duration::from_millis(25));
        }
        let failed: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        (failed, probes)
    });
    for failed in &failed {
        assert_eq!(seen.record("/acr", failed), 503, "{}", failed.text());
        assert_eq!(json(failed)["error"], "store_unavailable");
    }
    let mut refused = 0;
    for probe in &probes {
        if seen.record("/", probe) == 503 {
            assert_eq!(json(probe)["error"], "server_busy", "{}", probe.text());
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "no request for the page was refused while the slots were held"
    );

    let after_text = scrape_text(&metrics_addr).text();
    let after = parse(&after_text);
    assert_eq!(requests(&after), seen.0, "\n{after_text}");
    assert_eq!(
        after[&("acr_webhook_server_busy_total".into(), vec![])],
        refused as f64
    );
    assert_eq!(
        after[&("acr_webhook_http_requests_in_flight".into(), vec![])],
        0.0
    );
    // Each route's duration histogram counted each of its requests once.
    let mut per_route: BTreeMap<String, u64> = BTreeMap::new();
    for ((route, _), n) in &seen.0 {
        *per_route.entry(route.clone()).or_default() += n;
    }
    for (route, n) in &per_route {
        let count = select(
            &after,
            "acr_webhook_http_request_duration_seconds_count",
            &[("route", route.as_str())],
        )
        .map(|(_, v)| v)
        .sum::<f64>();
        assert_eq!(count, *n as f64, "{route}");
    }

    // Outbound: what the proxy received, by status, to the proxy's own host:port.
    let host = proxy.addr().to_string();
    let stats = proxy.stats();
    let outbound: BTreeMap<String, u64> = select(
        &after,
        "acr_webhook_outbound_requests_total",
        &[("host", host.as_str())],
    )
    .map(|(labels, v)| (label(labels, "status").to_owned(), v as u64))
    .collect();
    assert_eq!(
        outbound.values().sum::<u64>(),
        stats.requests,
        "{outbound:?} {stats:?}"
    );
    assert_eq!(
        outbound.get("503").copied().unwrap_or(0),
        stats.injected(FaultKind::Unavailable),
        "{outbound:?} {stats:?}"
    );
    assert!(
        stats.injected(FaultKind::Unavailable) >= 2,
        "retried: {stats:?}"
    );
    assert!(!outbound.contains_key("error"), "{outbound:?}");
    let outbound_timed = select(
        &after,
        "acr_webhook_outbound_request_duration_seconds_count",
        &[("host", host.as_str())],
    )
    .map(|(_, v)| v)
    .sum::<f64>();
    assert_eq!(outbound_timed, stats.requests as f64);

    // The process's own figures.
    let figure = |name: &str| after[&(name.to_owned(), vec![])];
    assert!(figure("process_resident_memory_bytes") > 1_048_576.0);
    assert!(figure("process_open_fds") >= 5.0);
    assert!(figure("process_cpu_seconds_total") > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = figure("process_start_time_seconds");
    assert!(
        started <= now && started > now - 600.0,
        "{started} vs {now}"
    );

    // Only GET (and HEAD) of /metrics on the metrics listener.
    let other = http::request("GET", &format!("http://{metrics_addr}/other"), &[], None).unwrap();
    assert_eq!(other.status, 404);
    let post = http::request(
        "POST",
        &format!("http://{metrics_addr}/metrics"),
        &[],
        Some(b"x"),
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    alerts_fire_on_the_real_scrapes(&healthy_text, &after_text, failed_count(&seen), refused);
}

fn failed_count(seen: &Seen) -> u64 {
    seen.0
        .iter()
        .filter(|((route, code), _)| route == "/acr" && *code >= 500)
        .map(|(_, n)| n)
        .sum()
}

/// The two scrapes as promtool input series one minute apart (a series missing from the
/// first is `_`), and the alerts alerts.yaml must fire one minute later, with their labels and
/// rendered annotations.
fn alerts_fire_on_the_real_scrapes(before: &str, after: &str, lost: u64, refused: u64) {
    let (before, after) = (parse(before), parse(after));
    let instance = "acr-webhook-test:9464";
    let mut series = Vec::new();
    for ((name, labels), value) in &after {
        if !name.starts_with("acr_webhook_") || name.contains("_bucket") {
            continue;
        }
        let first = before
            .get(&(name.clone(), labels.clone()))
            .map_or("_".to_owned(), |v| v.to_string());
        let mut all: Vec<String> = vec![
            "job=\"acr-webhook\"".to_owned(),
            format!("instance=\"{instance}\""),
        ];
        all.extend(labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
        series.push(json!({
            "series": format!("{name}{{{}}}", all.join(",")),
            "values": format!("{first} {value}"),
        }));
    }
    let rules_path = repo_root().join("deploy/prometheus/alerts.yaml");
    let rules: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&rules_path).unwrap()).unwrap();
    let annotations = |alert: &str, value: Option<u64>| {
        let rule = rules["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == alert)
            .unwrap_or_else(|| panic!("no {alert} in alerts.yaml"));
        let render = |text: &str| {
            let text = text.replace("{{ $labels.instance }}", instance);
            match value {
                Some(v) => text.replace("{{ $value | printf \"%.0f\" }}", &v.to_string()),
                None => text,
            }
        };
        json!({
            "summary": render(rule["annotations"]["summary"].as_str().unwrap()),
            "description": render(rule["annotations"]["description"].as_str().unwrap()),
        })
    };
    let expect = |alert: &str, severity: &str, value: Option<u64>| {
        json!({
            "eval_time": "1m",
            "alertname": alert,
            "exp_alerts": [{
                "exp_labels": {"severity": severity, "job": "acr-webhook", "instance": instance},
                "exp_annotations": annotations(alert, value),
            }],
        })
    };
    let test = json!({
        "rule_files": [rules_path.to_string_lossy()],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                expect("AcrEventsNotStored", "critical", Some(lost)),
                expect("AcrWebhookStoreUnavailable", "critical", None),
                expect("AcrWebhookServerBusy", "warning", Some(refused)),
            ],
        }],
    });
    let dir = std::env::temp_dir().join(format!("acr-webhook-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // JSON is YAML: promtool reads it as is.
    let file = dir.join("real-scrapes.test.yaml");
    std::fs::write(&file, serde_json::to_vec_pretty(&test).unwrap()).unwrap();
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let out = std::process::Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool: {e}; install it with `make setup-prometheus`")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "promtool test rules:\n{text}");
}
