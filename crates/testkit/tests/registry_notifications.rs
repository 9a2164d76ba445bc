//! A real Distribution registry sending real notifications to a [`CaptureServer`].
//!
//! Every test prints what arrived, one line per event (`cargo test -- --nocapture`).

mod common;

use std::time::{Duration, Instant};

use acr_webhook_testkit::{
    describe_event, port_is_open, summarize, CaptureServer, CapturedRequest, ManifestFormat,
    NotifyEndpoint, PushOptions, Registry, DOCKER_MANIFEST_V2, EVENTS_MEDIA_TYPE, OCI_MANIFEST_V1,
};
use common::gone_within;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn registry_for(hook: &CaptureServer) -> Registry {
    Registry::start(Some(
        NotifyEndpoint::new(hook.url()).header("Authorization", "Bearer test-key"),
    ))
}

fn print_events(title: &str, reqs: &[CapturedRequest]) {
    eprintln!("--- {title}");
    eprint!("{}", summarize(reqs));
}

fn is_manifest_push(e: &Value, tag: &str) -> bool {
    e["action"] == "push" && e["target"]["tag"] == tag
}

#[test]
fn push_notifies_the_manifest_with_the_computed_digest() {
    let hook = CaptureServer::start(200);
    let t0 = Instant::now();
    let registry = registry_for(&hook);
    let started_in = t0.elapsed();
    let t1 = Instant::now();
    let image = registry.push_image("team/app", "v1");
    let pushed_in = t1.elapsed();
    assert_eq!(image.manifest_media_type, DOCKER_MANIFEST_V2);
    assert!(image.digest.starts_with("sha256:") && image.digest.len() == 71);

    let event = hook.wait_for_event(|e| is_manifest_push(e, "v1"), WAIT);
    let notified_in = t1.elapsed();
    let reqs = hook.received();
    print_events("push team/app:v1 (v2s2)", &reqs);
    eprintln!(
        "registry start {started_in:?}, push {pushed_in:?}, manifest event after {notified_in:?}"
    );

    // Every request: POST, the events media type, the configured header, Go's user agent,
    // and an envelope holding nothing but an `events` array.
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/events");
        assert_eq!(r.header("Content-Type"), Some(EVENTS_MEDIA_TYPE));
        assert_eq!(r.header("Authorization"), Some("Bearer test-key"));
        assert_eq!(r.header("User-Agent"), Some("Go-http-client/1.1"));
        let body = r.json().expect("JSON body");
        let obj = body.as_object().expect("envelope object");
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["events"]);
        assert!(!r.events().is_empty());
    }

    let t = &event["target"];
    assert_eq!(t["mediaType"], DOCKER_MANIFEST_V2);
    assert_eq!(t["digest"], image.digest.as_str());
    assert_eq!(t["repository"], "team/app");
    assert_eq!(t["tag"], "v1");
    assert_eq!(t["size"], image.manifest_size);
    assert_eq!(t["length"], image.manifest_size);
    assert_eq!(
        t["url"],
        format!("{}/v2/team/app/manifests/{}", registry.url(), image.digest).as_str()
    );
    let refs: Vec<&str> = t["references"]
        .as_array()
        .expect("references (includereferences: true)")
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        [image.config_digest.as_str(), image.layer_digest.as_str()]
    );
    assert_eq!(event["request"]["method"], "PUT");
    assert_eq!(event["request"]["host"], registry.host().as_str());
    assert!(event["request"]["useragent"]
        .as_str()
        .unwrap()
        .starts_with("skopeo/"));
    for key in ["id", "timestamp", "actor", "source"] {
        assert!(event.get(key).is_some(), "event has {key}");
    }

    // The blobs were pushed (and notified) before the manifest.
    let events: Vec<Value> = reqs.iter().flat_map(CapturedRequest::events).collect();
    let pos = |digest: &str| {
        events
            .iter()
            .position(|e| e["action"] == "push" && e["target"]["digest"] == digest)
    };
    let manifest_at = pos(&image.digest).unwrap();
    assert!(pos(&image.layer_digest).unwrap() < manifest_at);
    assert!(pos(&image.config_digest).unwrap() < manifest_at);

    assert_eq!(
        registry.manifest_digest("team/app", "v1"),
        Some(image.digest.clone())
    );
}

#[test]
fn oci_push_and_digest_uniqueness() {
    let hook = CaptureServer::start(200);
    let registry = registry_for(&hook);
    let a = registry.push_image_with(
        "oci/app",
        "a",
        PushOptions {
            format: ManifestFormat::Oci,
            seed: None,
        },
    );
    assert_eq!(a.manifest_media_type, OCI_MANIFEST_V1);
    let e = hook.wait_for_event(|e| is_manifest_push(e, "a"), WAIT);
    assert_eq!(e["target"]["mediaType"], OCI_MANIFEST_V1);
    assert_eq!(e["target"]["digest"], a.digest.as_str());

    // Fresh content per call; a fixed seed gives the same image again.
    let b = registry.push_image("oci/app", "b");
    assert_ne!(a.digest, b.digest);
    let fixed = PushOptions {
        format: ManifestFormat::DockerV2S2,
        seed: Some(42),
    };
    let c = registry.push_image_with("oci/app", "c", fixed);
    let d = registry.push_image_with("oci/app", "d", fixed);
    assert_eq!(c.digest, d.digest);
    hook.wait_for_event(|e| is_manifest_push(e, "d"), WAIT);
    print_events(
        "oci push, v2s2 pushes, same image under two tags",
        &hook.received(),
    );
}

#[test]
fn failed_notifications_are_retried_until_accepted() {
    let hook = CaptureServer::start(500);
    let registry = registry_for(&hook);
    let image = registry.push_image("retry/app", "v1");

    // The first event is retried over and over while the endpoint answers 500.
    let failing = hook.wait_for(|r| r.len() >= 7, WAIT);
    assert!(failing.iter().all(|r| r.answered_status == 500));
    let first_id = failing[0].events()[0]["id"].clone();
    assert!(
        failing.iter().all(|r| r.events()[0]["id"] == first_id),
        "the same event is retried; the queue waits behind it"
    );
    let gaps: Vec<u128> = failing
        .windows(2)
        .map(|w| (w[1].received_at - w[0].received_at).as_millis())
        .collect();
    eprintln!("--- retry: gaps between attempts (ms) while answering 500: {gaps:?}");
    // Threshold 3 then a 200 ms backoff: some gaps are at least the backoff.
    assert!(gaps.iter().any(|&g| g >= 150), "{gaps:?}");

    hook.set_status(200);
    let switched_at = Instant::now();
    hook.wait_for_event(
        |e| is_manifest_push(e, "v1") && e["target"]["digest"] == image.digest.as_str(),
        WAIT,
    );
    let reqs = hook.received();
    let first_ok = reqs.iter().find(|r| r.accepted()).unwrap();
    eprintln!(
        "--- retry: first 2xx attempt {:?} after switching to 200; {} attempts in all",
        first_ok.received_at.saturating_duration_since(switched_at),
        reqs.len()
    );
    print_events("push with the endpoint failing first", &reqs);

    // Every event was eventually accepted exactly once, in order: layer, config, manifest.
    let accepted = hook.accepted_events();
    let digests: Vec<&str> = accepted
        .iter()
        .map(|e| e["target"]["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests,
        [
            image.layer_digest.as_str(),
            image.config_digest.as_str(),
            image.digest.as_str()
        ]
    );
}

#[test]
fn a_slow_endpoint_times_out_and_receives_the_event_twice() {
    let hook = CaptureServer::start(200);
    hook.set_response_delay(Duration::from_millis(1500));
    let mut notify = NotifyEndpoint::new(hook.url());
    notify.timeout = Duration::from_secs(1);
    let registry = Registry::start(Some(notify));
    let image = registry.push_image("slow/app", "v1");
    // The first attempt times out after 1 s and is sent again on a new connection.
    let first_two = hook.wait_for(|r| r.len() >= 2, WAIT);
    hook.set_response_delay(Duration::ZERO);
    hook.wait_for_event(|e| e["target"]["digest"] == image.digest.as_str(), WAIT);
    let reqs = hook.received();
    let gap = first_two[1].received_at - first_two[0].received_at;
    eprintln!("--- slow endpoint (answers after 1.5 s, timeout 1 s): resent after {gap:?}");
    print_events("slow endpoint", &reqs);
    assert!(gap >= Duration::from_millis(900), "{gap:?}");
    let first_id = &first_two[0].events()[0]["id"];
    assert_eq!(
        &first_two[1].events()[0]["id"],
        first_id,
        "same event resent"
    );
    assert_ne!(first_two[0].connection, first_two[1].connection);
    // The endpoint processed both copies: delivery is at least once; receivers must be
    // idempotent (the event `id` is stable across retries).
    let copies = reqs
        .iter()
        .filter(|r| r.events().first().is_some_and(|e| &e["id"] == first_id))
        .count();
    assert!(copies >= 2);
}

#[test]
fn delete_notifies_the_manifest_and_each_tag() {
    let hook = CaptureServer::start(200);
    let registry = registry_for(&hook);
    let image = registry.push_image("del/app", "v1");
    hook.wait_for_event(|e| is_manifest_push(e, "v1"), WAIT);
    hook.clear();

    // By tag: skopeo resolves the tag (a pull event) and deletes the digest.
    registry.delete_image("del/app", "v1");
    let digest_event = hook.wait_for_event(
        |e| e["action"] == "delete" && e["target"]["digest"] == image.digest.as_str(),
        WAIT,
    );
    let tag_event = hook.wait_for_event(
        |e| e["action"] == "delete" && e["target"]["tag"] == "v1",
        WAIT,
    );
    print_events("delete del/app:v1 (by tag)", &hook.received());
    let keys = |e: &Value| {
        let mut k: Vec<String> = e["target"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&digest_event), ["digest", "repository"]);
    assert_eq!(keys(&tag_event), ["repository", "tag"]);
    assert_eq!(digest_event["target"]["repository"], "del/app");
    assert_eq!(digest_event["request"]["method"], "DELETE");
    assert_eq!(registry.manifest_digest("del/app", "v1"), None);
    assert_eq!(registry.manifest_digest("del/app", &image.digest), None);

    // By digest, with two tags on the manifest: one delete event per tag.
    let fixed = PushOptions {
        format: ManifestFormat::DockerV2S2,
        seed: Some(7),
    };
    let two = registry.push_image_with("del/app", "a", fixed);
    registry.push_image_with("del/app", "b", fixed);
    hook.wait_for_event(|e| is_manifest_push(e, "b"), WAIT);
    hook.clear();
    registry.delete_image("del/app", &two.digest);
    hook.wait_for(
        |r| {
            r.iter()
                .flat_map(CapturedRequest::events)
                .filter(|e| e["action"] == "delete")
                .count()
                >= 3
        },
        WAIT,
    );
    std::thread::sleep(Duration::from_millis(300)); // anything else trailing
    let reqs = hook.received();
    print_events("delete del/app@digest with tags a and b", &reqs);
    let mut tags: Vec<String> = reqs
        .iter()
        .flat_map(CapturedRequest::events)
        .filter(|e| e["action"] == "delete")
        .filter_map(|e| e["target"]["tag"].as_str().map(str::to_string))
        .collect();
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    // skopeo GETs the manifest by digest before deleting it: a pull event without a tag.
    let events: Vec<Value> = reqs.iter().flat_map(CapturedRequest::events).collect();
    let deletes_of_digest = events
        .iter()
        .filter(|e| e["action"] == "delete" && e["target"]["digest"] == two.digest.as_str())
        .count();
    assert_eq!(deletes_of_digest, 1);
    for e in events.iter().filter(|e| e["action"] == "pull") {
        assert_eq!(e["target"]["digest"], two.digest.as_str());
        assert!(e["target"].get("tag").is_none(), "{e}");
        assert_eq!(e["request"]["method"], "GET");
    }
}

#[test]
fn ignored_pull_actions_are_not_sent() {
    let hook = CaptureServer::start(200);
    let registry = Registry::start(Some(
        NotifyEndpoint::new(hook.url()).ignore_actions(&["pull"]),
    ));
    let config = std::fs::read_to_string(registry.config_path()).unwrap();
    eprintln!("--- config.yml with ignore_actions([\"pull\"]):\n{config}");
    let fixed = PushOptions {
        format: ManifestFormat::DockerV2S2,
        seed: Some(99),
    };
    registry.push_image_with("quiet/app", "v1", fixed);
    // A second push of the same blobs makes skopeo check them (HEAD: pull events)...
    registry.push_image_with("quiet/app", "v2", fixed);
    // ...and deleting by tag makes it GET the manifest (a pull event).
    registry.delete_image("quiet/app", "v2");
    hook.wait_for_event(
        |e| e["action"] == "delete" && e["target"]["tag"] == "v1",
        WAIT,
    );
    std::thread::sleep(Duration::from_millis(300));
    let reqs = hook.received();
    print_events("pull ignored", &reqs);
    assert!(reqs
        .iter()
        .flat_map(CapturedRequest::events)
        .all(|e| e["action"] != "pull"));
    assert!(reqs.iter().all(|r| r.header("Authorization").is_none()));
}

#[test]
fn a_registry_without_notifications_runs_and_drop_stops_it() {
    let mut registry = Registry::start(None);
    let image = registry.push_image("plain/app", "v1");
    assert_eq!(
        registry.manifest_digest("plain/app", "v1"),
        Some(image.digest)
    );
    let config = std::fs::read_to_string(registry.config_path()).unwrap();
    assert!(!config.contains("notifications"));
    assert!(config.contains(&format!("addr: {}", registry.host())));
    let addr = registry.addr();
    let pid = find_pid(&registry.config_path().to_string_lossy()).expect("registry process");
    assert!(registry.is_running());
    drop(registry);
    assert!(gone_within(pid, Duration::from_secs(2)));
    assert!(!port_is_open(addr));
}

#[test]
fn a_panicking_test_keeps_the_registry_files_for_debugging() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let registry = Registry::start(None);
        *seen.lock().unwrap() = Some((registry.log_path(), registry.addr()));
        panic!("assertion failed while the registry runs");
    }));
    assert!(result.is_err());
    let (log, addr) = seen.lock().unwrap().take().unwrap();
    assert!(!port_is_open(addr), "stopped all the same");
    let text = std::fs::read_to_string(&log).expect("log kept");
    assert!(text.contains("listening on"), "{text}");
    std::fs::remove_dir_all(log.parent().unwrap()).unwrap();
}

#[test]
fn events_are_described_one_per_line() {
    let e = serde_json::json!({
        "action": "push",
        "target": { "repository": "r", "tag": "t", "digest": "sha256:0", "mediaType": "m", "size": 3 },
        "request": { "method": "PUT", "useragent": "u" },
    });
    assert_eq!(
        describe_event(&e),
        "push repo=r tag=t digest=sha256:0 mediaType=m size=3 method=PUT useragent=u"
    );
}

fn find_pid(config_path: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(config_path)
            .then_some(pid)
    })
}
