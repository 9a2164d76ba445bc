//! The audit-trail page in a real browser: headless Chromium (Debian's `chromium`) driven by
//! Playwright (`playwright-core`, from npm) against `acr-webhook up`, the real `.wasm` and
//! the local store. `make test` installs both.
//!
//! This test seeds 110 events through the real routes (`/acr`, `/distribution`, `/eventgrid`:
//! 3 repositories, every action, four with hostile repository and tag names (HTML, and for
//! the CSV export quotes, commas, line breaks and a formula-looking tag), a `pull` (an action
//! the page has no colour for), actions named `constructor` and `__proto__`, and ids a path
//! cannot name: `summary`, `.` and `..`) at known times: more than one export page (100).
//! `acr-webhook up` runs with libfaketime preloaded, its wall clock read from a file this test
//! rewrites before each event (its monotonic clock is left alone). It computes the oracle from
//! the documents read straight from the store (signed REST, not the read API), checks
//! `acr-webhook export` against it, then runs `tests/ui/browser.mjs`, which drives the page
//! (list, filters, chart, documents, errors, the exports and how often it asks for a
//! summary) and writes screenshots under `target/ui/`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use acr_webhook_testkit::{repo_root, ChildGuard, EVENTS_MEDIA_TYPE};
use serde_json::{json, Value};
use support::*;

/// The read key (distinct from the webhook key, as reads require).
const READ_KEY: &str = "ui-read-key-7d41c09be2";
const REPOSITORIES: [&str; 3] = ["team/api", "team/web", "tools/builder"];
const HOSTILE_REPOSITORY: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_TAG: &str = "\"><script>window.__pwned=1</script>";
const HOSTILE_REPOSITORY_2: &str = "evil</td><script>window.__pwned=2</script>";
const HOSTILE_TAG_2: &str = "<img src=x onerror=\"window.__pwned=3\">";
/// Names that matter in a CSV file: quotes and a comma, line breaks, formulas.
const QUOTED_REPOSITORY: &str = "team \"quoted\", repo";
const FORMULA_TAG: &str = "=cmd|' /C calc'!A0";
const MULTILINE_REPOSITORY: &str = "two\nlines\r\nrepo";
/// Ids a `/events/{id}` path cannot name from a browser.
const PATHLESS_IDS: [&str; 3] = ["summary", ".", ".."];
/// How many events are seeded: more than the largest page (100), so an export reads two.
const SEEDED: u64 = 110;
/// The chart's hourly window (49 hours) and a daily one; every seeded event is in both.
const HOURLY: (&str, &str) = ("2026-11-20T05:00:00.000Z", "2026-11-22T06:00:00.000Z");
const DAILY: (&str, &str) = ("2026-11-15T00:00:00.000Z", "2026-11-25T00:00:00.000Z");

/// libfaketime, as Debian installs it.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.expect(
        "libfaketime is not installed (`make test` installs it: apt-get install libfaketime)",
    )
}

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()));
    assert!(
        path.exists(),
        "{} is missing (`make test` installs Debian's chromium)",
        path.display()
    );
    path
}

/// The `n`th event's time: every 47 minutes from 2026-11-20T06:07:30Z (never on an hour); the
/// two hostile ones (60 and 61) come before the others, so they are the last rows listed, the
/// pull (62) 10 minutes after the first, and the others (63 and later) every 41 minutes from 13
/// minutes after the first: all within the chart's hourly window.
fn seed_time(n: u64) -> (String, i64) {
    let base = 1_795_154_850; // 2026-11-20T06:07:30Z
    let secs = match n {
        60 | 61 => base - (62 - n as i64) * 20 * 60,
        62 => base + 10 * 60,
        63.. => base + 13 * 60 + (n as i64 - 63) * 41 * 60,
        _ => base + n as i64 * 47 * 60,
    };
    let text =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs as u64))
            .to_string();
    (text, secs)
}

/// A digest-looking, distinct hex string for event `n`.
fn digest(n: u64) -> String {
    let mut h = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut hex = String::from("sha256:");
    for _ in 0..4 {
        h = (h ^ (h >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        hex.push_str(&format!("{h:016x}"));
    }
    hex
}

fn target(n: u64, repository: &str, tag: Option<&str>) -> Value {
    let mut t = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 1000 + n * 997,
        "digest": digest(n),
        "repository": repository,
    });
    if let Some(tag) = tag {
        t["tag"] = json!(tag);
    }
    t
}

/// One ACR webhook event.
fn acr_event(n: u64, action: &str, target: Value) -> Value {
    json!({
        "id": format!("ui-acr-{n:03}"),
        "timestamp": seed_time(n).0,
        "action": action,
        "target": target,
        "request": {"id": format!("req-{n}"), "host": "myregistry.azurecr.io",
                    "method": if action.contains("delete") { "DELETE" } else { "PUT" },
                    "useragent": "ui-test"}
    })
}

/// Sends event `n` through the route its number selects; returns (route, action).
fn send(stack: &Stack, n: u64) -> (&'static str, &'static str) {
    let repository = REPOSITORIES[(n % 3) as usize];
    let tag = format!("v{}", n % 4);
    let auth = bearer(TEST_KEY);
    let post = |path: &str, content_type: &str, body: &Value, extra: &[(&str, &str)]| {
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("content-type", content_type),
        ];
        headers.extend_from_slice(extra);
        let answer = stack.post(path, &headers, body.to_string().as_bytes());
        assert!(
            answer.status == 201,
            "event {n} to {path}: {} {}",
            answer.status,
            answer.text()
        );
    };
    let acr = |action: &'static str, target: Value| {
        post(
            "/acr",
            "application/json",
            &acr_event(n, action, target),
            &[],
        );
        ("/acr", action)
    };
    let special = |id: &str, action: &'static str, repository: &str, tag: &str| {
        let mut event = acr_event(n, action, target(n, repository, Some(tag)));
        event["id"] = json!(id);
        post("/acr", "application/json", &event, &[]);
        ("/acr", action)
    };
    match n {
        60 => return acr("push", target(n, HOSTILE_REPOSITORY, Some(HOSTILE_TAG))),
        61 => return acr("push", target(n, HOSTILE_REPOSITORY_2, Some(HOSTILE_TAG_2))),
        63..=65 => return special(PATHLESS_IDS[n as usize - 63], "push", "team/api", "v9"),
        66 => return acr("constructor", target(n, "team/web", Some("v1"))),
        67 => return acr("__proto__", target(n, "team/web", Some("v2"))),
        68 => return acr("push", target(n, QUOTED_REPOSITORY, Some(FORMULA_TAG))),
        69 => return acr("delete", target(n, MULTILINE_REPOSITORY, Some("-2+3"))),
        62 => {
            // An action the page has no badge colour for (kept with keep_pulls_and_blobs).
            let mut event = acr_event(n, "pull", target(n, "team/web", Some("v1")));
            event["id"] = json!(format!("ui-distribution-{n:03}"));
            event["request"]["method"] = json!("GET");
            post(
                "/distribution",
                EVENTS_MEDIA_TYPE,
                &json!({ "events": [event] }),
                &[],
            );
            return ("/distribution", "pull");
        }
        _ => {}
    }
    match n % 12 {
        0..=2 => acr("push", target(n, repository, Some(&tag))),
        3 => acr("delete", target(n, repository, None)),
        4 => acr("quarantine", target(n, repository, Some(&tag))),
        5 | 6 => {
            let mut t = target(n, repository, Some(&format!("chart-{n}.tgz")));
            t["mediaType"] = json!("application/vnd.acr.helm.chart");
            t["name"] = json!(format!("chart-{}", n % 3));
            t["version"] = json!(format!("1.{n}.0"));
            acr(
                if n % 12 == 5 {
                    "chart_push"
                } else {
                    "chart_delete"
                },
                t,
            )
        }
        7..=9 => {
            let action = if n % 12 == 9 { "delete" } else { "push" };
            let mut event = acr_event(
                n,
                action,
                target(n, repository, (action == "push").then_some(tag.as_str())),
            );
            event["id"] = json!(format!("ui-distribution-{n:03}"));
            event["request"]["host"] = json!("registry.internal:5000");
            post(
                "/distribution",
                EVENTS_MEDIA_TYPE,
                &json!({ "events": [event] }),
                &[],
            );
            ("/distribution", action)
        }
        _ => {
            let (event_type, action) = if n % 12 == 10 {
                ("Microsoft.ContainerRegistry.ImagePushed", "push")
            } else {
                ("Microsoft.ContainerRegistry.ImageDeleted", "delete")
            };
            let data = acr_event(
                n,
                action,
                target(n, repository, (action == "push").then_some(tag.as_str())),
            );
            let delivery = json!([{
                "id": format!("ui-eventgrid-{n:03}"),
                "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/myregistry",
                "subject": format!("{repository}:{tag}"),
                "eventType": event_type,
                "eventTime": seed_time(n).0,
                "data": data,
                "dataVersion": "2.0",
                "metadataVersion": "1"
            }]);
            post(
                "/eventgrid",
                "application/json; charset=utf-8",
                &delivery,
                &[("aeg-event-type", "Notification")],
            );
            ("/eventgrid", action)
        }
    }
}

fn text<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    doc.get(name).and_then(Value::as_str)
}

/// The documents of `ids` (newest first) as the CSV and NDJSON exports must write them.
fn export_files(by_id: &serde_json::Map<String, Value>, ids: &[String]) -> (String, String) {
    let mut csv = acr_webhook_cli::csv::header();
    let mut ndjson = String::new();
    for id in ids {
        csv.push_str(&acr_webhook_cli::csv::row(&by_id[id]));
        ndjson.push_str(&format!("{}\n", by_id[id]));
    }
    (csv, ndjson)
}

/// `acr-webhook export` of everything in `format`, from the stack's read API.
fn cli_export(stack: &Stack, format: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_acr-webhook"))
        .args(["export", "--url", &stack.url(""), "--format", format])
        .args(extra)
        .env("ACR_WEBHOOK_READ_KEY", READ_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Ids newest first (receivedAt, then id, descending), as the read API lists them.
fn newest_first(docs: &[&Value]) -> Vec<String> {
    let mut docs = docs.to_vec();
    docs.sort_by(|a, b| {
        (text(b, "receivedAt"), text(b, "id")).cmp(&(text(a, "receivedAt"), text(a, "id")))
    });
    docs.iter()
        .map(|d| text(d, "id").unwrap().to_owned())
        .collect()
}

/// `{bucket start: {action: count}}` of the documents in `[since, until)`.
fn buckets(docs: &[Value], (since, until): (&str, &str), hourly: bool) -> Value {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for d in docs {
        let at = text(d, "receivedAt").unwrap();
        if at < since || at >= until {
            continue;
        }
        let start = if hourly {
            format!("{}:00:00.000Z", &at[..13])
        } else {
            format!("{}T00:00:00.000Z", &at[..10])
        };
        *out.entry(start)
            .or_default()
            .entry(text(d, "action").unwrap().to_owned())
            .or_default() += 1;
    }
    json!(out)
}

fn run_browser(script: &Path, env: &[(&str, String)], log: &Path) -> (bool, String) {
    let mut cmd = Command::new("node");
    cmd.arg(script).current_dir(repo_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut node = ChildGuard::spawn("node tests/ui/browser.mjs", cmd, log).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = node.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    (status.is_some_and(|s| s.success()), output)
}

/// The page's files through the real component: gzip, ETag and 304, the security headers, no
/// key needed, 406 for a client that refuses gzip; and the summary needs the read key.
fn page_files_are_served_by_the_component(stack: &Stack) {
    use acr_webhook_testkit::http::request;
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let url = stack.url(path);
        let r = request("GET", &url, &[("accept-encoding", "gzip, br")], None).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("vary"), Some("accept-encoding"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{csp}"
        );
        assert_eq!(r.body[..2], [0x1f, 0x8b], "{path}: gzip bytes");
        let etag = r.header("etag").unwrap().to_owned();
        let again = request("GET", &url, &[("if-none-match", &etag)], None).unwrap();
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        let plain = request("GET", &url, &[("accept-encoding", "identity")], None).unwrap();
        assert_eq!(plain.status, 406, "{path}");
        assert_eq!(json(&plain)["error"], "not_acceptable");
    }
    let summary = stack.url("/events/summary");
    let r = request("GET", &summary, &[], None).unwrap();
    assert_eq!(r.status, 401);
    let auth = bearer(TEST_KEY);
    let r = request("GET", &summary, &[("authorization", &auth)], None).unwrap();
    assert_eq!(r.status, 401, "the webhook key does not read");
    let auth = bearer(READ_KEY);
    let r = request("GET", &summary, &[("authorization", &auth)], None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["total"], 0);
}

#[test]
fn the_page_in_a_real_browser() {
    let chromium = chromium();
    let faketime = libfaketime();
    let work = std::env::temp_dir().join(format!("acr-webhook-ui-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let clock = work.join("clock");
    let set_clock = |secs: i64| {
        let t = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(secs as u64),
        )
        .to_string();
        // libfaketime's absolute form: "@YYYY-MM-DD HH:MM:SS".
        std::fs::write(&clock, format!("@{} {}\n", &t[..10], &t[11..19])).unwrap();
    };
    set_clock(seed_time(0).1);

    let mut stack =
        Stack::start_store_only(&[("read_keys", READ_KEY), ("keep_pulls_and_blobs", "true")]);
    let preload = faketime.display().to_string();
    let clock_path = clock.display().to_string();
    stack.start_app_with_env(&[
        ("LD_PRELOAD", preload.as_str()),
        ("FAKETIME_TIMESTAMP_FILE", clock_path.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]);

    page_files_are_served_by_the_component(&stack);

    // 1. Seed, each event at its known time.
    let mut sent = BTreeMap::new();
    for n in 0..SEEDED {
        set_clock(seed_time(n).1);
        let (route, action) = send(&stack, n);
        *sent.entry((route, action)).or_insert(0) += 1;
    }
    // From here on the app's clock reads an hour after the newest event, as it would for a
    // user looking at the page: its default window (the last 7 days) holds every event.
    set_clock((0..SEEDED).map(|n| seed_time(n).1).max().unwrap() + 3600);
    let docs: Vec<Value> = stack.documents_as_read();
    assert_eq!(docs.len() as u64, SEEDED, "{sent:?}");
    for action in [
        "push",
        "delete",
        "quarantine",
        "chart_push",
        "chart_delete",
        "pull",
        "constructor",
        "__proto__",
    ] {
        assert!(
            docs.iter().any(|d| text(d, "action") == Some(action)),
            "{action}"
        );
    }
    for source in ["acr", "distribution", "eventgrid"] {
        assert!(
            docs.iter().any(|d| text(d, "source") == Some(source)),
            "{source}"
        );
    }
    // The times are the ones set (libfaketime works in the app).
    for d in &docs {
        let event = text(d, "timestamp").expect("timestamp kept");
        let at = text(d, "receivedAt").unwrap();
        let set = humantime::parse_rfc3339(event).unwrap();
        let got = humantime::parse_rfc3339(at).unwrap();
        let off = got.duration_since(set).unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_secs(60), "received {at}, set {event}");
    }

    let all: Vec<&Value> = docs.iter().collect();
    let image: Vec<&Value> = docs
        .iter()
        .filter(|d| text(d, "image") == Some("team/api"))
        .collect();
    let image_delete: Vec<&Value> = image
        .iter()
        .copied()
        .filter(|d| text(d, "action") == Some("delete"))
        .collect();
    assert!(image_delete.len() >= 2 && image.len() > image_delete.len());
    let by_id: serde_json::Map<String, Value> = docs
        .iter()
        .map(|d| (text(d, "id").unwrap().to_owned(), d.clone()))
        .collect();
    for id in PATHLESS_IDS {
        assert!(by_id.contains_key(id), "the id {id:?} is stored as it is");
    }
    // The exports, from the store's documents; the CLI's must be exactly these files.
    let (all_csv, all_ndjson) = export_files(&by_id, &newest_first(&all));
    let (image_csv, _) = export_files(&by_id, &newest_first(&image));
    assert!(
        all_csv.contains(&format!(",'{FORMULA_TAG},")),
        "the formula-looking tag is inert"
    );
    assert_eq!(cli_export(&stack, "csv", &[]), all_csv, "the CLI's CSV");
    assert_eq!(
        cli_export(&stack, "ndjson", &[]),
        all_ndjson,
        "the CLI's NDJSON"
    );
    assert_eq!(
        cli_export(&stack, "csv", &["--image", "team/api"]),
        image_csv,
        "the CLI's CSV of one repository"
    );
    let oracle = json!({
        "all": newest_first(&all),
        "csv": all_csv,
        "ndjson": all_ndjson,
        "imageCsv": image_csv,
        "pathless": PATHLESS_IDS,
        "image": "team/api",
        "imageIds": newest_first(&image),
        "imageDeleteIds": newest_first(&image_delete),
        "hourly": {"since": HOURLY.0, "until": HOURLY.1, "buckets": buckets(&docs, HOURLY, true)},
        "daily": {"since": DAILY.0, "until": DAILY.1, "buckets": buckets(&docs, DAILY, false)},
        "documents": by_id,
        "hostile": [
            [HOSTILE_REPOSITORY, HOSTILE_TAG],
            [HOSTILE_REPOSITORY_2, HOSTILE_TAG_2],
            [QUOTED_REPOSITORY, FORMULA_TAG],
            [MULTILINE_REPOSITORY, "-2+3"],
        ],
    });
    let oracle_path = work.join("oracle.json");
    std::fs::write(&oracle_path, oracle.to_string()).unwrap();
    let shots = repo_root().join("target/ui");
    std::fs::create_dir_all(&shots).unwrap();

    let script = repo_root().join("crates/cli/tests/ui/browser.mjs");
    let (ok, output) = run_browser(
        &script,
        &[
            ("UI_URL", stack.url("")),
            ("READ_KEY", READ_KEY.to_owned()),
            ("WEBHOOK_KEY", TEST_KEY.to_owned()),
            ("ORACLE", oracle_path.display().to_string()),
            ("SHOTS", shots.display().to_string()),
            ("CHROMIUM", chromium.display().to_string()),
        ],
        &work.join("browser.log"),
    );
    println!("{output}");
    assert!(
        ok,
        "the browser checks failed:\n{output}\n--- acr-webhook up:\n{}",
        stack.app_log()
    );
    for shot in [
        "table.png",
        "filtered.png",
        "narrow-360.png",
        "dark.png",
        "page.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot}");
    }

    // The store stops: the page says so.
    stack.store.stop();
    let (ok, output) = run_browser(
        &script,
        &[
            ("PHASE", "unavailable".to_owned()),
            ("UI_URL", stack.url("")),
            ("READ_KEY", READ_KEY.to_owned()),
            ("WEBHOOK_KEY", TEST_KEY.to_owned()),
            ("ORACLE", oracle_path.display().to_string()),
            ("SHOTS", shots.display().to_string()),
            ("CHROMIUM", chromium.display().to_string()),
        ],
        &work.join("browser-unavailable.log"),
    );
    println!("{output}");
    assert!(
        ok,
        "the browser checks failed with the store stopped:\n{output}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
