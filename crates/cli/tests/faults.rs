//! Nothing lost, nothing forged, under faults: a fault-injecting proxy between
//! `acr-webhook up` (the real component) and the Cosmos-compatible store answers 30 % of the
//! document writes with 429 (with `x-ms-retry-after-ms`), 503 or 449, resets the connection
//! before forwarding, stalls past the component's per-attempt timeout, or forwards the write
//! and then loses the answer. Senders that retry every non-2xx must end with every event
//! stored exactly once, each document matching its event.
//!
//! Seeded and reproducible: the seed is printed; `ACR_WEBHOOK_FAULT_SEED` (decimal or `0x`
//! hex) replays another one. Run with `-- --nocapture` to see the figures.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use acr_webhook_testkit::{
    sha256_digest, FaultKind, FaultPlan, FaultProxy, NotifyEndpoint, PushedImage, Registry,
};
use serde_json::Value;
use support::*;

crate::on_every_host!(
    two_thousand_events_through_a_faulty_store_are_stored_exactly_once,
    a_real_registry_delivers_every_push_once_through_a_faulty_store,
);

/// Environment variable overriding the seed.
const SEED_ENV: &str = "ACR_WEBHOOK_FAULT_SEED";
const DEFAULT_SEED: u64 = 0x00AC_4E5E_ED20_2604;
/// Distinct events sent through the faulty store.
const EVENTS: usize = 2000;
/// Concurrent senders.
const SENDERS: usize = 4;
/// Attempts per event before the sender gives up on it (then the test fails).
const MAX_ATTEMPTS: usize = 12;
/// The whole sending phase must end within this.
const SEND_BOUND: Duration = Duration::from_secs(150);
/// The component's budget: per-attempt timeout 375 ms, body deadline 750 ms.
const BUDGET_MS: &str = "1500";
/// Stalls outlast the per-attempt timeout (375 ms) by far.
const STALL: Duration = Duration::from_millis(900);
const FAULT_RATE: f64 = 0.3;

fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{SEED_ENV}={text:?} is not a u64"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// Distinct event number `i`, made from the push fixture: its own id, request id, repository,
/// tag, digest, size and timestamp.
fn event(template: &Value, seed: u64, i: usize) -> Value {
    let mut e = template.clone();
    e["id"] = format!("fault-{seed:016x}-{i:05}").into();
    e["timestamp"] = format!(
        "2024-05-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        1 + i / 1440 % 28,
        i / 60 % 24,
        i % 60,
        (i * 7) % 60,
        i * 1_000_003 % 1_000_000_000
    )
    .into();
    let target = &mut e["target"];
    target["repository"] = format!("faults/app-{}", i % 13).into();
    target["tag"] = format!("v{i}").into();
    target["digest"] = sha256_digest(format!("{seed}/{i}").as_bytes()).into();
    target["size"] = (500 + i).into();
    target["length"] = (500 + i).into();
    e["request"]["id"] = format!("req-{seed:x}-{i}").into();
    e
}

/// The document for an ACR event, field by field from the event itself.
fn assert_document_matches_event(doc: &Value, event: &Value) {
    let target = &event["target"];
    let request = &event["request"];
    let expected = [
        ("id", &event["id"]),
        ("action", &event["action"]),
        ("timestamp", &event["timestamp"]),
        ("loginServer", &request["host"]),
        ("image", &target["repository"]),
        ("tag", &target["tag"]),
        ("digest", &target["digest"]),
        ("mediaType", &target["mediaType"]),
        ("size", &target["size"]),
        ("requestId", &request["id"]),
        ("requestMethod", &request["method"]),
        ("userAgent", &request["useragent"]),
    ];
    for (field, want) in expected {
        assert_eq!(
            doc.get(field).unwrap_or(&Value::Null),
            want,
            "field {field} of {doc:#}"
        );
    }
    assert_eq!(doc["source"], "acr");
    assert!(doc.get("eventId").is_none(), "{doc:#}");
}

/// Things that must never appear in an answer or a log line.
fn secrets() -> Vec<&'static str> {
    vec![TEST_KEY, EMULATOR_KEY, &EMULATOR_KEY[..24]]
}

/// Signature and query-string markers, lower-cased.
const SIGNATURE_MARKERS: [&str; 3] = ["sig=", "type=master", "type%3dmaster"];

fn leaks(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut found: Vec<String> = secrets()
        .into_iter()
        .filter(|s| text.contains(s))
        .map(|s| format!("secret {}…", &s[..6]))
        .collect();
    found.extend(
        SIGNATURE_MARKERS
            .iter()
            .filter(|m| lower.contains(*m))
            .map(|m| format!("marker {m}")),
    );
    found
}

#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    retried: AtomicUsize,
    transport_errors: AtomicUsize,
    answers: Mutex<BTreeMap<u16, usize>>,
    problems: Mutex<Vec<String>>,
}

impl Tally {
    fn answer(&self, status: u16) {
        *self.answers.lock().unwrap().entry(status).or_default() += 1;
    }
    fn problem(&self, what: String) {
        self.problems.lock().unwrap().push(what);
    }
}

/// Sends one event until it is answered 2xx, checking every answer on the way.
fn deliver(stack: &Stack, event: &Value, deadline: Instant, tally: &Tally) {
    let body = serde_json::to_vec(event).unwrap();
    let id = event["id"].as_str().unwrap();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            tally.retried.fetch_add(1, Ordering::Relaxed);
            let backoff = Duration::from_millis((20u64 << attempt.min(4)).min(300));
            std::thread::sleep(backoff);
        }
        if Instant::now() > deadline {
            break;
        }
        let auth = bearer(TEST_KEY);
        let response = match acr_webhook_testkit::http::request(
            "POST",
            &stack.url("/acr"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(&body),
        ) {
            Ok(r) => r,
            Err(e) => {
                tally.transport_errors.fetch_add(1, Ordering::Relaxed);
                tally.problem(format!("{id}: transport error {e}"));
                continue;
            }
        };
        tally.answer(response.status);
        for leak in leaks(&response.text()) {
            tally.problem(format!("{id}: answer {} leaks {leak}", response.status));
        }
        let answer = response.json().unwrap_or(Value::Null);
        match response.status {
            201 | 200 => {
                let want = if response.status == 201 {
                    "stored"
                } else {
                    "already_stored"
                };
                if answer["id"] != id || answer["status"] != want {
                    tally.problem(format!("{id}: {} answered {answer}", response.status));
                }
                tally.accepted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            503 => {
                if answer["error"] != "store_unavailable"
                    || response.header("retry-after").is_none()
                {
                    tally.problem(format!("{id}: 503 without the right body/header: {answer}"));
                }
            }
            other => tally.problem(format!("{id}: unexpected {other}: {}", response.text())),
        }
    }
    tally.problem(format!("{id}: not accepted after {MAX_ATTEMPTS} attempts"));
}

fn two_thousand_events_through_a_faulty_store_are_stored_exactly_once(host: Runtime) {
    let started = Instant::now();
    let seed = seed();
    eprintln!("faults: seed={seed:#x} (replay with {SEED_ENV}={seed:#x})");
    let mut stack = Stack::start_store_only(&[("write_budget_ms", BUDGET_MS)]);
    let proxy = FaultProxy::start(
        stack.store.addr(),
        FaultPlan::new(seed, FAULT_RATE).stall(STALL),
    );
    stack.host = host;
    stack.start_app_against(&proxy.endpoint());

    let template = fixture_json("acr/push.json");
    let events: Vec<Value> = (0..EVENTS).map(|i| event(&template, seed, i)).collect();
    let next = AtomicUsize::new(0);
    let tally = Tally::default();
    let deadline = Instant::now() + SEND_BOUND;
    let sending = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..SENDERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= EVENTS {
                    return;
                }
                deliver(&stack, &events[i], deadline, &tally);
            });
        }
    });
    let send_time = sending.elapsed();

    let docs = stack.documents();
    let stats = proxy.stats();
    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for doc in &docs {
        by_id
            .entry(doc["id"].as_str().unwrap())
            .or_default()
            .push(doc);
    }
    let digests: HashSet<&str> = docs.iter().filter_map(|d| d["digest"].as_str()).collect();
    let duplicates = (docs.len() - by_id.len()) + (by_id.len() - digests.len());
    let accepted = tally.accepted.load(Ordering::Relaxed);
    let retried = tally.retried.load(Ordering::Relaxed);
    let answers = tally.answers.lock().unwrap().clone();
    eprintln!(
        "faults: sent={EVENTS} accepted={accepted} retried={retried} stored={} duplicates={duplicates} \
         injected={stats} seed={seed:#x}",
        docs.len()
    );
    eprintln!(
        "faults: answers={answers:?} transport_errors={} proxy: requests={} faultable={} forwarded={} \
         injected_total={} upstream_errors={}; sending {:.1}s, whole test {:.1}s",
        tally.transport_errors.load(Ordering::Relaxed),
        stats.requests,
        stats.faultable,
        stats.forwarded,
        stats.total_injected(),
        stats.upstream_errors,
        send_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let problems = tally.problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "{} problems, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    assert_eq!(accepted, EVENTS);
    assert_eq!(duplicates, 0);
    assert_eq!(docs.len(), EVENTS, "exactly one document per event");
    for event in &events {
        let id = event["id"].as_str().unwrap();
        let found = by_id.get(id).map_or(0, Vec::len);
        assert_eq!(found, 1, "event {id} stored {found} times");
        assert_document_matches_event(by_id[id][0], event);
    }

    // The faults really happened, at about the planned rate, every kind of them.
    for kind in FaultKind::ALL {
        assert!(
            stats.injected(kind) > 0,
            "no {} injected: {stats}",
            kind.label()
        );
    }
    let rate = stats.total_injected() as f64 / stats.faultable as f64;
    assert!((0.2..0.4).contains(&rate), "fault rate {rate:.3}: {stats}");
    assert!(stats.faultable as usize > EVENTS, "{stats:?}");

    // Nothing secret in the log, and no panic.
    let log = stack.app_log_all();
    let leaked = leaks(&log);
    assert!(leaked.is_empty(), "the app log leaks {leaked:?}");
    for bad in ["panicked", "wasm trap", "RUST_BACKTRACE"] {
        assert!(!log.contains(bad), "the app log shows {bad:?}");
    }
}

/// How many requests the app answered `status` on `path`, from its log: `acr-webhook up`'s own
/// access lines (it also shows the component's, which start with `acr-webhook:`); `wasmtime
/// serve` writes none, so there the component's lines.
fn answered(stack: &Stack, log: &str, path: &str, status: u16) -> usize {
    let needle = format!("POST {path} {status}");
    let component_line = format!("acr-webhook: {needle}");
    log.lines()
        .filter(|l| match stack.host {
            Runtime::Up => l.contains(&needle) && !l.contains("acr-webhook:"),
            Runtime::Wasmtime | Runtime::WasmtimeConfig => l.contains(&component_line),
        })
        .count()
}

fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let limit = Instant::now() + bound;
    while !done() {
        assert!(
            Instant::now() < limit,
            "{what} did not happen within {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn a_real_registry_delivers_every_push_once_through_a_faulty_store(host: Runtime) {
    const IMAGES: usize = 30;
    const FIRST: usize = 3;
    let started = Instant::now();
    let seed = seed() ^ 0xD157_0000;
    let mut stack = Stack::start_store_only(&[("write_budget_ms", BUDGET_MS)]);
    // Every write fails at first: the app must answer non-2xx and the registry retry.
    let proxy = FaultProxy::start(stack.store.addr(), FaultPlan::new(seed, 1.0).stall(STALL));
    stack.host = host;
    stack.start_app_against(&proxy.endpoint());
    let auth = bearer(TEST_KEY);
    let registry = Registry::start(Some(NotifyEndpoint {
        url: stack.url("/distribution"),
        headers: vec![("Authorization".into(), auth)],
        timeout: Duration::from_secs(5),
        threshold: 3,
        backoff: Duration::from_millis(200),
        ..Default::default()
    }));

    let mut pushed: Vec<PushedImage> = Vec::new();
    for i in 0..FIRST {
        pushed.push(registry.push_image(&format!("faults/reg-{}", i % 3), &format!("t{i}")));
    }
    wait_until("3 refused deliveries", Duration::from_secs(30), || {
        answered(&stack, &stack.app_log_all(), "/distribution", 503) >= 3
    });
    // A lost answer still stores its write, so some documents may exist already; the
    // registry was told 503 for them and must redeliver (answered 200 then).
    assert!(stack.count() <= FIRST);
    let refused_at_full_rate = answered(&stack, &stack.app_log_all(), "/distribution", 503);

    // Now the usual 30 %.
    proxy.set_rate(FAULT_RATE);
    let more = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..3 {
            let (registry, more) = (&registry, &more);
            s.spawn(move || {
                for i in (FIRST + t..IMAGES).step_by(3) {
                    let image =
                        registry.push_image(&format!("faults/reg-{}", i % 3), &format!("t{i}"));
                    more.lock().unwrap().push(image);
                }
            });
        }
    });
    pushed.extend(more.into_inner().unwrap());
    assert_eq!(pushed.len(), IMAGES);
    let wanted: HashMap<&str, &PushedImage> =
        pushed.iter().map(|p| (p.digest.as_str(), p)).collect();
    assert_eq!(wanted.len(), IMAGES, "every push has its own digest");

    wait_until(
        "every manifest push stored",
        Duration::from_secs(90),
        || {
            let docs = stack.documents();
            wanted
                .keys()
                .all(|d| docs.iter().any(|doc| doc["digest"] == *d))
        },
    );
    // Let late redeliveries arrive, then count.
    std::thread::sleep(Duration::from_secs(2));
    let docs = stack.documents();
    let mut per_digest: HashMap<&str, usize> = HashMap::new();
    for doc in &docs {
        let digest = doc["digest"].as_str().unwrap_or("");
        *per_digest.entry(digest).or_default() += 1;
        let image = wanted
            .get(digest)
            .unwrap_or_else(|| panic!("a document for nothing pushed: {doc:#}"));
        assert_eq!(doc["action"], "push");
        assert_eq!(doc["source"], "distribution");
        assert_eq!(doc["image"], image.repository.as_str());
        assert_eq!(doc["tag"], image.tag.as_str());
        assert_eq!(doc["mediaType"], image.manifest_media_type.as_str());
        assert_eq!(doc["size"], image.manifest_size);
        assert_eq!(doc["loginServer"], registry.host().as_str());
    }
    let duplicates: usize = per_digest.values().map(|n| n - 1).sum();
    let stats = proxy.stats();
    let log = stack.app_log_all();
    eprintln!(
        "faults (registry): pushed={IMAGES} stored={} duplicates={duplicates} \
         refused_deliveries={} (at 100 %: {refused_at_full_rate}) accepted_deliveries={} \
         injected={stats} seed={seed:#x}; {:.1}s",
        docs.len(),
        answered(&stack, &log, "/distribution", 503),
        answered(&stack, &log, "/distribution", 201) + answered(&stack, &log, "/distribution", 200),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(duplicates, 0);
    assert_eq!(
        docs.len(),
        IMAGES,
        "every manifest push stored exactly once"
    );
    assert!(stats.total_injected() > 0);
    let leaked = leaks(&log);
    assert!(leaked.is_empty(), "the app log leaks {leaked:?}");
}
