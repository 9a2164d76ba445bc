//! End to end: `acr-webhook export` reads every stored event of its filters through the real
//! component's read API (`.wasm` on `acr-webhook up`, and the composed component on stock
//! `wasmtime serve`) and the local store, and writes them as CSV or NDJSON. The expected files
//! are built from the documents read straight from the store (signed REST, not the read API),
//! newest first, with the CSV rules of `acr_webhook_cli::csv` (checked on their own against
//! tests/fixtures/export/).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use acr_webhook_cli::csv;
use serde_json::{json, Value};
use support::*;

crate::on_every_host!(every_event_of_the_filters_once_newest_first_in_both_formats);

/// More than two pages of the largest page size (100).
const EVENTS: usize = 230;
const FORMULA_TAG: &str = "=cmd|' /C calc'!A0";
const QUOTED_REPOSITORY: &str = "team \"quoted\", repo";
const MULTILINE_REPOSITORY: &str = "two\nlines\r\nrepo";

fn export(args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acr-webhook"));
    cmd.arg("export")
        .args(args)
        .env_remove("ACR_WEBHOOK_READ_KEY");
    if let Some(key) = key {
        cmd.env("ACR_WEBHOOK_READ_KEY", key);
    }
    cmd.output().unwrap()
}

/// `acr-webhook export --url URL --format csv --output FILE`, with `key` in the environment.
fn export_csv_to(url: &str, file: &std::path::Path, key: Option<&str>) -> Output {
    export(
        &[
            "--url",
            url,
            "--format",
            "csv",
            "--output",
            file.to_str().unwrap(),
        ],
        key,
    )
}

fn shown(out: &Output) -> String {
    format!(
        "status {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

fn event(n: usize) -> Value {
    let (repository, tag) = match n {
        7 => (QUOTED_REPOSITORY, FORMULA_TAG.to_owned()),
        8 => (MULTILINE_REPOSITORY, "-2+3".to_owned()),
        9 => ("@team/at", "+x".to_owned()),
        _ => (
            ["team/api", "team/web", "tools/builder"][n % 3],
            format!("v{}", n % 4),
        ),
    };
    json!({
        "id": format!("export-{n:03}"),
        "timestamp": "2026-11-20T06:07:30Z",
        "action": if n % 5 == 0 { "delete" } else { "push" },
        "target": {"repository": repository, "tag": tag, "digest": format!("sha256:{n:064x}"),
                   "size": 1000 + n, "mediaType": "application/vnd.oci.image.manifest.v1+json"},
        "request": {"id": format!("req-{n}"), "host": "myregistry.azurecr.io", "method": "PUT",
                    "useragent": "export-test, \"quoted\""}
    })
}

fn text<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    doc.get(name).and_then(Value::as_str)
}

/// The documents that match, newest first (receivedAt, then id, descending), as the read API
/// lists them.
fn newest_first(docs: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<&Value> {
    let mut kept: Vec<&Value> = docs.iter().filter(|d| keep(d)).collect();
    kept.sort_by(|a, b| {
        (text(b, "receivedAt"), text(b, "id")).cmp(&(text(a, "receivedAt"), text(a, "id")))
    });
    kept
}

fn expected_csv(docs: &[&Value]) -> String {
    let mut out = csv::header();
    for d in docs {
        out.push_str(&csv::row(d));
    }
    out
}

fn expected_ndjson(docs: &[&Value]) -> String {
    docs.iter().map(|d| format!("{d}\n")).collect()
}

fn read(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

fn every_event_of_the_filters_once_newest_first_in_both_formats(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    for n in 0..EVENTS {
        let r = stack.post_acr(event(n).to_string().as_bytes());
        assert_eq!(r.status, 201, "{n}: {}", r.text());
    }
    let docs: Vec<Value> = stack.documents_as_read();
    assert_eq!(docs.len(), EVENTS);
    let url = stack.url("");
    // One folder per test: the tests of one binary run at once.
    let dir = std::env::temp_dir().join(format!(
        "acr-webhook-export-{}-{host:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();

    // Everything, in both formats, to files and to standard output.
    let all = newest_first(&docs, |_| true);
    let file = dir.join("all.csv");
    let out = export_csv_to(&url, &file, Some(TEST_READ_KEY));
    assert!(out.status.success(), "{}", shown(&out));
    let got = read(&file);
    assert_eq!(got, expected_csv(&all));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("exported {EVENTS} events from")),
        "{stderr}"
    );
    assert!(!dir.join("all.csv.partial").exists());
    // The formula-looking tag is inert: a `'` in front, in its own cell.
    assert!(
        got.contains(&format!(",'{FORMULA_TAG},")),
        "the formula tag's cell"
    );
    assert!(
        got.contains("\"two\nlines\r\nrepo\",'-2+3,"),
        "the multi-line cell"
    );
    assert!(got.contains(",'@team/at,'+x,"));
    assert!(got.contains(",\"team \"\"quoted\"\", repo\","));
    let out = export(&["--url", &url, "--format", "ndjson"], Some(TEST_READ_KEY));
    assert!(out.status.success(), "{}", shown(&out));
    let ndjson = String::from_utf8(out.stdout).unwrap();
    assert_eq!(ndjson, expected_ndjson(&all));
    let listed: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), EVENTS, "every event once");

    // Filters: a repository and an action; a time window (since inclusive, until exclusive).
    let out = export(
        &[
            "--url",
            &format!("{url}/"),
            "--image",
            "team/api",
            "--action",
            "delete",
            "--format",
            "csv",
        ],
        Some(TEST_READ_KEY),
    );
    assert!(out.status.success(), "{}", shown(&out));
    let want = newest_first(&docs, |d| {
        text(d, "image") == Some("team/api") && text(d, "action") == Some("delete")
    });
    assert!(want.len() > 5);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected_csv(&want));
    let times: Vec<&str> = all.iter().map(|d| text(d, "receivedAt").unwrap()).collect();
    let (since, until) = (times[150], times[20]);
    let out = export(
        &["--url", &url, "--tag", FORMULA_TAG, "--format", "ndjson"],
        Some(TEST_READ_KEY),
    );
    assert!(out.status.success(), "{}", shown(&out));
    let want = newest_first(&docs, |d| text(d, "tag") == Some(FORMULA_TAG));
    assert_eq!(want.len(), 1);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        expected_ndjson(&want)
    );
    let out = export(
        &[
            "--url", &url, "--since", since, "--until", until, "--format", "csv",
        ],
        Some(TEST_READ_KEY),
    );
    let want = newest_first(&docs, |d| {
        let at = text(d, "receivedAt").unwrap();
        at >= since && at < until
    });
    assert!(want.len() > 100, "{} events: more than a page", want.len());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected_csv(&want));

    // The key: from the environment only, never printed; a wrong one or none fails clearly,
    // and a failed export leaves no file.
    let failed = dir.join("failed.csv");
    let out = export_csv_to(&url, &failed, Some("not-the-read-key-0000"));
    assert!(!out.status.success());
    let err = shown(&out);
    assert!(
        err.contains("401")
            && err.contains("ACR_WEBHOOK_READ_KEY")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!err.contains("not-the-read-key-0000"), "{err}");
    assert!(!failed.exists() && !dir.join("failed.csv.partial").exists());
    let out = export(&["--url", &url, "--format", "csv"], None);
    assert!(!out.status.success());
    assert!(
        shown(&out).contains("set ACR_WEBHOOK_READ_KEY"),
        "{}",
        shown(&out)
    );
    let out = export(
        &["--url", &url, "--format", "csv", "--key", TEST_READ_KEY],
        None,
    );
    assert!(!out.status.success(), "no --key flag");
    let out = export(
        &[
            "--url",
            &format!("{url}/?code={TEST_READ_KEY}"),
            "--format",
            "csv",
        ],
        Some(TEST_READ_KEY),
    );
    assert!(!out.status.success());
    assert!(!shown(&out).contains(TEST_READ_KEY), "{}", shown(&out));
    let out = export(
        &[
            "--url",
            &url,
            "--action",
            "not an action",
            "--format",
            "csv",
        ],
        Some(TEST_READ_KEY),
    );
    assert!(!out.status.success());
    assert!(shown(&out).contains("400"), "{}", shown(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
