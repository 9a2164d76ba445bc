//! End to end: `acr-webhook replay FILE --to URL` re-sends the deliveries of
//! `az acr webhook list-events -o json` output to the real component (`.wasm` on
//! `acr-webhook up`) and the real local store.

mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use acr_webhook_testkit::{free_port, repo_root};
use serde_json::Value;
use support::*;

crate::on_every_host!(
    replay_stores_exactly_the_failed_deliveries_once,
    replay_fails_when_a_delivery_is_not_accepted,
);

/// The failed deliveries of tests/fixtures/acr/list-events.json (2, 3, 4), in file order,
/// with what the file recorded for each.
const FAILED: [(&str, &str); 3] = [
    ("5f3c9a1e-8d2b-4c6f-9e0a-7b1d2c3e4f50", "answered 500"),
    ("a7e4b2c9-1f3d-4e5a-8b6c-9d0e1f2a3b4c", "answered 504"),
    ("c2d8e6f4-3a1b-4c9d-8e7f-0a1b2c3d4e5f", "no answer recorded"),
];
const SUCCEEDED: [&str; 2] = [
    "00000000-0000-0000-0000-000000000000",
    "e9f1a3b5-7c2d-4e6f-8a9b-1c2d3e4f5a6b",
];

fn list_events() -> PathBuf {
    repo_root().join("tests/fixtures/acr/list-events.json")
}

fn replay(args: &[&str], key_env: Option<&str>) -> Output {
    replay_with_stdin(args, key_env, None)
}

fn replay_with_stdin(args: &[&str], key_env: Option<&str>, stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acr-webhook"));
    cmd.arg("replay").args(args).env_remove("ACR_WEBHOOK_KEY");
    if let Some(key) = key_env {
        cmd.env("ACR_WEBHOOK_KEY", key);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn shown(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(out: &Output, secrets: &[&str]) {
    let all = shown(out);
    for secret in secrets {
        assert!(!all.contains(secret), "{secret:?} printed:\n{all}");
    }
}

fn replay_stores_exactly_the_failed_deliveries_once(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    let file = list_events();
    let file = file.to_str().unwrap();
    let to = stack.url("/acr");

    // First replay: the three failed deliveries, each stored now.
    let out = replay(&[file, "--to", &to], Some(TEST_KEY));
    assert!(out.status.success(), "{}", shown(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3, "{}", shown(&out));
    for (line, (id, recorded)) in lines.iter().zip(FAILED) {
        assert!(
            line.contains(&format!("(delivery {id}, {recorded})")),
            "{line}"
        );
        assert!(
            line.ends_with(&format!(r#"-> 201 {{"id":"{id}","status":"stored"}}"#)),
            "{line}"
        );
    }
    assert_no_secret(&out, &[TEST_KEY]);
    let docs = stack.documents();
    let mut ids: Vec<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<&str> = FAILED.iter().map(|(id, _)| *id).collect();
    want.sort();
    assert_eq!(ids, want);

    // The documents are the recorded events (the CLI's nulls dropped, the timestamp as the
    // CLI printed it).
    let recorded: Value = serde_json::from_slice(&fixture("acr/list-events.json")).unwrap();
    for (id, _) in FAILED {
        let entry = recorded
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap();
        let event = &entry["eventRequestMessage"]["content"];
        let doc = stack.document(id).unwrap();
        assert_eq!(doc["action"], event["action"]);
        assert_eq!(doc["timestamp"], event["timestamp"]);
        assert_eq!(doc["image"], event["target"]["repository"]);
        assert_eq!(doc["digest"], event["target"]["digest"]);
        assert_eq!(
            doc.get("tag").unwrap_or(&Value::Null),
            &event["target"]["tag"]
        );
        assert_eq!(doc["loginServer"], event["request"]["host"]);
        assert_eq!(doc["source"], "acr");
    }

    // Second replay: nothing new, every one answered 200 already_stored.
    let out = replay(&[file, "--to", &to], Some(TEST_KEY));
    assert!(out.status.success(), "{}", shown(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3);
    for (line, (id, _)) in lines.iter().zip(FAILED) {
        assert!(
            line.ends_with(&format!(
                r#"-> 200 {{"id":"{id}","status":"already_stored"}}"#
            )),
            "{line}"
        );
    }
    assert_eq!(stack.count(), 3);

    // --all, the key as an argument: the two that succeeded before are stored now (this
    // receiver never had them), the three others are already there.
    let out = replay(&[file, "--to", &to, "--all", "--key", TEST_KEY], None);
    assert!(out.status.success(), "{}", shown(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 5, "{}", shown(&out));
    assert_eq!(lines.iter().filter(|l| l.contains("-> 201 ")).count(), 2);
    assert_eq!(lines.iter().filter(|l| l.contains("-> 200 ")).count(), 3);
    for id in SUCCEEDED {
        assert!(stack.document(id).is_some(), "{id}");
    }
    assert_eq!(stack.count(), 5);
    assert_no_secret(&out, &[TEST_KEY]);

    // The file from standard input, the key in the URL's query string (never printed).
    let with_code = stack.url(&format!("/acr?code={TEST_KEY}"));
    let out = replay_with_stdin(
        &["-", "--to", &with_code],
        None,
        Some(&fixture("acr/list-events.json")),
    );
    assert!(out.status.success(), "{}", shown(&out));
    assert_eq!(stdout_lines(&out).len(), 3);
    assert_no_secret(&out, &[TEST_KEY, "code="]);
    assert_eq!(stack.count(), 5);
    assert!(!stack.app_log().contains(TEST_KEY));
}

fn replay_fails_when_a_delivery_is_not_accepted(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    let file = list_events();
    let file = file.to_str().unwrap();
    let to = stack.url("/acr");

    // No key anywhere: refused before anything is sent.
    let out = replay(&[file, "--to", &to], None);
    assert!(!out.status.success(), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ACR_WEBHOOK_KEY"),
        "{}",
        shown(&out)
    );
    assert!(out.stdout.is_empty());

    // A wrong key: every delivery answered 401, exit status non-zero, nothing stored.
    let wrong = "wrong-key-0a1b2c";
    let out = replay(&[file, "--to", &to], Some(wrong));
    assert!(!out.status.success(), "{}", shown(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l.contains("-> 401 ")), "{lines:#?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 of 3 deliveries were not accepted"),
        "{}",
        shown(&out)
    );
    assert_no_secret(&out, &[wrong]);
    assert_eq!(stack.count(), 0);

    // Nobody listening: every delivery fails, the URL's query string is not printed.
    let closed = format!("http://127.0.0.1:{}/acr?code=hidden-0x", free_port());
    let out = replay(&[file, "--to", &closed], None);
    assert!(!out.status.success(), "{}", shown(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3, "{}", shown(&out));
    assert!(
        lines.iter().all(|l| l.contains("-> not sent: ")),
        "{lines:#?}"
    );
    assert_no_secret(&out, &["hidden-0x"]);

    // Not list-events output.
    let out = replay(
        &[
            repo_root()
                .join("tests/fixtures/acr/push.json")
                .to_str()
                .unwrap(),
            "--to",
            &to,
        ],
        Some(TEST_KEY),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("az acr webhook list-events"),
        "{}",
        shown(&out)
    );
    assert_eq!(stack.count(), 0);
}
