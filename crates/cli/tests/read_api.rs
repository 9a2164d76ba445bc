//! End to end, through the real component (`.wasm` on `acr-webhook up`) and the real local
//! store: the read API (`GET /events`, `GET /events/{id}`), the `include`/`exclude` filters
//! and the separate `read_keys`.
//!
//! Expected pages are computed here from the documents read straight from the store (signed
//! REST, no read API): filter, then order by `receivedAt` and `id`, both descending.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use acr_webhook_core::time;
use acr_webhook_testkit::http;
use serde_json::{json, Value};
use support::*;

crate::on_every_host!(
    every_event_exactly_once_in_order_for_each_filter,
    a_container_partitioned_by_image_pages_the_same,
    one_event_by_id_including_ids_made_safe,
    include_and_exclude_answer_202_and_write_nothing,
    read_keys_read_and_do_not_write,
    documents_left_by_the_old_function_are_listed_last,
);

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn get(stack: &Stack, path: &str, key: Option<&str>) -> http::HttpResponse {
    let auth = key.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    http::request("GET", &stack.url(path), &headers, None).unwrap()
}

/// Every page of `GET /events?{query}&limit={limit}`, following continuations.
fn all_pages(stack: &Stack, query: &str, limit: usize) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let mut path = format!("/events?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(token) = &continuation {
            path.push_str("&continuation=");
            path.push_str(&enc(token));
        }
        let answer = get(stack, &path, Some(TEST_READ_KEY));
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        let page = json(&answer);
        let events = page["events"].as_array().expect("events").clone();
        assert!(events.len() <= limit, "{query}: {} > {limit}", events.len());
        pages.push(events);
        match page.get("continuation") {
            Some(Value::String(token)) => continuation = Some(token.clone()),
            None => return pages,
            Some(other) => panic!("continuation {other}"),
        }
        assert!(pages.len() <= 1000, "{query}: no end");
    }
}

fn id_of(doc: &Value) -> String {
    doc["id"].as_str().unwrap().to_owned()
}

fn received(doc: &Value) -> &str {
    doc["receivedAt"].as_str().unwrap()
}

/// The store's documents that `keep` selects, newest first (receivedAt, then id, descending).
fn expected(docs: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut kept: Vec<&Value> = docs.iter().filter(|d| keep(d)).collect();
    kept.sort_by(|a, b| {
        (received(b), b["id"].as_str().unwrap()).cmp(&(received(a), a["id"].as_str().unwrap()))
    });
    kept.into_iter().map(id_of).collect()
}

/// A document as the read API shows it: without Cosmos's system properties.
fn without_system_properties(doc: &Value) -> Value {
    let mut doc = doc.clone();
    for name in ["_rid", "_self", "_etag", "_attachments", "_ts"] {
        doc.as_object_mut().unwrap().remove(name);
    }
    doc
}

const REPOSITORIES: [&str; 5] = ["hello-world", "team/api", "samples/nginx", "app", "x.y_z-w"];
const TAGS: [&str; 4] = ["v1", "v2", "v3", "latest"];

/// A deterministic, well-mixed number (so ids do not follow the sending order).
fn mix(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Event `n`: one of 5 repositories, push (70%), delete (20%, by digest, no tag) or
/// quarantine (10%), an id that sorts unlike `n`.
fn event(n: u64) -> Value {
    let repository = REPOSITORIES[(n % 5) as usize];
    let action = match n % 10 {
        2 | 6 => "delete",
        9 => "quarantine",
        _ => "push",
    };
    let digest = format!("sha256:{:016x}{:048x}", mix(n), n);
    let mut target = json!({
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 500 + n,
        "digest": digest,
        "repository": repository,
    });
    if action != "delete" {
        target["tag"] = json!(TAGS[((n / 5) % 4) as usize]);
    }
    json!({
        "id": format!("{:08x}-evt-{n:03}", mix(n) >> 32),
        "timestamp": format!("2024-05-01T12:{:02}:{:02}.{n:07}Z", n / 60 % 60, n % 60),
        "action": action,
        "target": target,
        "request": {
            "id": format!("req-{n}"),
            "host": "myregistry.azurecr.io",
            "method": if action == "delete" { "DELETE" } else { "PUT" },
            "useragent": "e2e"
        }
    })
}

/// `2024-05-01T23:30:00.123Z` written as the same instant at `+02:00`, with a 7-digit
/// fraction: `2024-05-02T01:30:00.1230000+02:00`.
fn at_plus_two(received_at: &str) -> String {
    let millis = time::parse_millis(received_at).unwrap() + 2 * 3_600_000;
    let shifted = time::format_millis(millis).unwrap();
    format!("{}0000+02:00", shifted.strip_suffix('Z').unwrap())
}

#[test]
fn offsets_are_computed_right() {
    assert_eq!(
        at_plus_two("2024-05-01T23:30:59.123Z"),
        "2024-05-02T01:30:59.1230000+02:00"
    );
    assert_eq!(
        at_plus_two("2024-12-31T22:00:00.000Z"),
        "2025-01-01T00:00:00.0000000+02:00"
    );
}

fn every_event_exactly_once_in_order_for_each_filter(host: Runtime) {
    let started = Instant::now();
    let stack = Stack::start_on(host, &[]);
    // Three groups, received apart, to make time windows meaningful.
    let groups: [std::ops::Range<u64>; 3] = [0..120, 120..220, 220..300];
    let mut group_ids: Vec<HashSet<String>> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut ids = HashSet::new();
        for n in group.clone() {
            let body = serde_json::to_vec(&event(n)).unwrap();
            let answer = stack.post_acr(&body);
            assert_eq!(answer.status, 201, "{n}: {}", answer.text());
            ids.insert(json(&answer)["id"].as_str().unwrap().to_owned());
        }
        group_ids.push(ids);
    }
    let posted = started.elapsed();
    let docs = stack.documents();
    assert_eq!(docs.len(), 300);
    let group_of = |doc: &Value| {
        group_ids
            .iter()
            .position(|g| g.contains(&id_of(doc)))
            .unwrap()
    };
    // The boundaries: the first receivedAt of groups 2 and 3, each after all of the group
    // before.
    let first_of = |g: usize| {
        docs.iter()
            .filter(|d| group_of(d) == g)
            .map(received)
            .min()
            .unwrap()
            .to_owned()
    };
    let last_of = |g: usize| {
        docs.iter()
            .filter(|d| group_of(d) == g)
            .map(received)
            .max()
            .unwrap()
            .to_owned()
    };
    let (g2, g3) = (first_of(1), first_of(2));
    assert!(last_of(0) < g2 && last_of(1) < g3, "groups are apart");
    // A time inside group 2, for windows that cut a group.
    let mut group2: Vec<&str> = docs
        .iter()
        .filter(|d| group_of(d) == 1)
        .map(received)
        .collect();
    group2.sort();
    let middle = group2[group2.len() / 2].to_owned();

    let field = |d: &Value, f: &str| d.get(f).and_then(Value::as_str).map(str::to_owned);
    type Keep<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let cases: Vec<(String, Keep)> = vec![
        (String::new(), Box::new(|_| true)),
        (
            format!("image={}", enc("team/api")),
            Box::new(move |d| field(d, "image").as_deref() == Some("team/api")),
        ),
        (
            "image=hello-world".into(),
            Box::new(move |d| field(d, "image").as_deref() == Some("hello-world")),
        ),
        (
            "tag=v2".into(),
            Box::new(move |d| field(d, "tag").as_deref() == Some("v2")),
        ),
        (
            "action=delete".into(),
            Box::new(move |d| d["action"] == "delete"),
        ),
        (
            "action=quarantine".into(),
            Box::new(move |d| d["action"] == "quarantine"),
        ),
        (
            format!("image={}&action=push", enc("samples/nginx")),
            Box::new(move |d| {
                field(d, "image").as_deref() == Some("samples/nginx") && d["action"] == "push"
            }),
        ),
        (
            "image=app&tag=v3&action=push".into(),
            Box::new(move |d| {
                field(d, "image").as_deref() == Some("app")
                    && field(d, "tag").as_deref() == Some("v3")
                    && d["action"] == "push"
            }),
        ),
        (
            format!("since={g2}"),
            Box::new({
                let g2 = g2.clone();
                move |d| received(d) >= g2.as_str()
            }),
        ),
        (
            format!("until={g2}"),
            Box::new({
                let g2 = g2.clone();
                move |d| received(d) < g2.as_str()
            }),
        ),
        (
            format!("since={g2}&until={g3}"),
            Box::new({
                let (g2, g3) = (g2.clone(), g3.clone());
                move |d| received(d) >= g2.as_str() && received(d) < g3.as_str()
            }),
        ),
        // The same window written at +02:00 with 7 fraction digits, `+` sent unencoded.
        (
            format!(
                "since={}&until={}&image={}",
                at_plus_two(&g2),
                at_plus_two(&g3),
                enc("x.y_z-w")
            ),
            Box::new({
                let (g2, g3) = (g2.clone(), g3.clone());
                move |d| {
                    received(d) >= g2.as_str()
                        && received(d) < g3.as_str()
                        && field(d, "image").as_deref() == Some("x.y_z-w")
                }
            }),
        ),
        (
            format!("action=push&since={middle}"),
            Box::new({
                let middle = middle.clone();
                move |d| d["action"] == "push" && received(d) >= middle.as_str()
            }),
        ),
        (
            format!("until={middle}&tag=latest"),
            Box::new({
                let middle = middle.clone();
                move |d| {
                    received(d) < middle.as_str() && field(d, "tag").as_deref() == Some("latest")
                }
            }),
        ),
        ("tag=none-such".into(), Box::new(|_| false)),
    ];
    for (query, keep) in &cases {
        let want = expected(&docs, keep);
        let pages = all_pages(&stack, query, 7);
        let got: Vec<String> = pages.iter().flatten().map(id_of).collect();
        let distinct: HashSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), got.len(), "{query}: an event twice");
        assert_eq!(got, want, "{query}");
        if want.is_empty() {
            assert_eq!(pages.len(), 1, "{query}");
        }
        eprintln!("{query:?}: {} events in {} pages", got.len(), pages.len());
    }
    // The window cases are not trivial: group 2 exactly.
    let window: HashSet<String> = expected(&docs, |d| {
        received(d) >= g2.as_str() && received(d) < g3.as_str()
    })
    .into_iter()
    .collect();
    assert_eq!(window, group_ids[1]);

    // Pages carry the stored documents, without Cosmos's system properties.
    let first = &all_pages(&stack, "", 100)[0];
    assert_eq!(first.len(), 100);
    for event in first {
        let stored = docs.iter().find(|d| d["id"] == event["id"]).unwrap();
        assert_eq!(event, &without_system_properties(stored));
    }

    // Continuation tokens: bound to the filters, unforgeable; the page size may change.
    let query = format!("image={}", enc("team/api"));
    let page = json(&get(
        &stack,
        &format!("/events?{query}&limit=7"),
        Some(TEST_READ_KEY),
    ));
    let token = page["continuation"].as_str().unwrap().to_owned();
    let next = get(
        &stack,
        &format!("/events?{query}&limit=3&continuation={}", enc(&token)),
        Some(TEST_READ_KEY),
    );
    assert_eq!(next.status, 200, "{}", next.text());
    let want = expected(&docs, |d| d["image"] == "team/api");
    assert_eq!(
        json(&next)["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        want[7..10]
    );
    let (body, mac) = token.split_once('.').unwrap();
    let mut flipped = mac.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{body}.{}", String::from_utf8(flipped).unwrap());
    let forged_cosmos = format!("{}.{mac}", "eyJ0b2tlbiI6IjEifQ");
    for (label, path) in [
        (
            "another image",
            format!("/events?image=hello-world&continuation={}", enc(&token)),
        ),
        ("no filter", format!("/events?continuation={}", enc(&token))),
        (
            "a time window added",
            format!("/events?{query}&since={g2}&continuation={}", enc(&token)),
        ),
        (
            "a flipped MAC",
            format!("/events?{query}&continuation={}", enc(&flipped)),
        ),
        (
            "a token of the client's making",
            format!("/events?{query}&continuation={}", enc(&forged_cosmos)),
        ),
        ("garbage", format!("/events?{query}&continuation=abc.def")),
        (
            "Cosmos's own format",
            format!(
                "/events?{query}&continuation={}",
                enc(r#"{"token":"+RID:~x","range":{"min":"","max":"FF"}}"#)
            ),
        ),
    ] {
        let answer = get(&stack, &path, Some(TEST_READ_KEY));
        assert_eq!(answer.status, 400, "{label}: {}", answer.text());
        assert_eq!(json(&answer)["error"], "invalid_continuation", "{label}");
        assert!(
            !answer.text().contains(body),
            "{label}: the token is not echoed"
        );
    }

    // Query errors, and the key in its other forms.
    for path in [
        "/events?limit=0",
        "/events?limit=x",
        // Any action token is a filter now (unknown actions are stored); this is no token.
        "/events?action=not%20a%20token",
        "/events?colour=red",
        "/events?image=a&image=b",
        "/events?since=yesterday",
        &format!("/events?since={g3}&until={g2}"),
    ] {
        let answer = get(&stack, path, Some(TEST_READ_KEY));
        assert_eq!(answer.status, 400, "{path}: {}", answer.text());
        assert_eq!(json(&answer)["error"], "invalid_query", "{path}");
    }
    assert_eq!(get(&stack, "/events", None).status, 401);
    assert_eq!(get(&stack, "/events", Some("wrong")).status, 401);
    // Read keys travel in headers only: `?code=` (kept in browser and shell history and in
    // proxy logs) is refused, also beside a valid header.
    for key in [None, Some(TEST_READ_KEY)] {
        let by_code = get(
            &stack,
            &format!("/events?code={TEST_READ_KEY}&limit=1"),
            key,
        );
        assert_eq!(by_code.status, 401, "{}", by_code.text());
        let body = json(&by_code);
        assert_eq!(body["error"], "unauthorized");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("never in the URL"),
            "{body}"
        );
    }
    let over = json(&get(&stack, "/events?limit=1000", Some(TEST_READ_KEY)));
    assert_eq!(
        over["events"].as_array().unwrap().len(),
        100,
        "limit lowered to 100"
    );
    let log = stack.app_log();
    assert!(
        !log.contains(TEST_KEY) && !log.contains(TEST_READ_KEY),
        "no key in the log"
    );
    eprintln!(
        "300 events posted in {posted:?}; whole test {:?}",
        started.elapsed()
    );
}

fn a_container_partitioned_by_image_pages_the_same(host: Runtime) {
    let stack = Stack::start_on(host, &[("partition_key_path", "/image")]);
    for n in 0..60 {
        let answer = stack.post_acr(&serde_json::to_vec(&event(n)).unwrap());
        assert_eq!(answer.status, 201, "{n}: {}", answer.text());
    }
    let docs = stack.documents();
    assert_eq!(docs.len(), 60);
    for (query, image) in [
        (format!("image={}", enc("team/api")), Some("team/api")),
        ("image=app&action=push".into(), Some("app")),
        (String::new(), None),
        ("action=delete".into(), None),
    ] {
        let keep = |d: &Value| {
            image.is_none_or(|i| d["image"] == i)
                && (!query.contains("action=push") || d["action"] == "push")
                && (!query.contains("action=delete") || d["action"] == "delete")
        };
        let got: Vec<String> = all_pages(&stack, &query, 7)
            .iter()
            .flatten()
            .map(id_of)
            .collect();
        assert_eq!(got, expected(&docs, keep), "{query}");
    }
    // `/events/{id}` finds a document whatever the partition.
    let one = &docs[17];
    let answer = get(
        &stack,
        &format!("/events/{}", enc(&id_of(one))),
        Some(TEST_READ_KEY),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(json(&answer), without_system_properties(one));
}

fn one_event_by_id_including_ids_made_safe(host: Runtime) {
    let stack = Stack::start_on(host, &[]);
    let mut stored = Vec::new();
    for name in ["push", "push_id_with_slashes", "push_long_id"] {
        let path = format!("acr/{name}.json");
        let answer = stack.post_acr(&fixture(&path));
        assert_eq!(answer.status, 201, "{name}: {}", answer.text());
        let id = json(&answer)["id"].as_str().unwrap().to_owned();
        stored.push((fixture_json(&path)["id"].as_str().unwrap().to_owned(), id));
    }
    // The ids made safe, as documented: `/ \ ? #` percent-encoded; over 255 shortened.
    assert_eq!(stored[0].0, stored[0].1);
    assert_eq!(stored[1].1, "evt%2F2024%5C01%3Fkind=push%23frag");
    assert!(stored[2].1.len() <= 255 && stored[2].1.contains('~'));

    for (original, id) in &stored {
        let doc = stack.document(id).expect("stored");
        let want = without_system_properties(&doc);
        // The contract: the listed id, percent-encoded once.
        let answer = get(&stack, &format!("/events/{}", enc(id)), Some(TEST_READ_KEY));
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
        assert_eq!(json(&answer), want);
        if original != id {
            assert_eq!(want["eventId"], original.as_str());
            // A client that sends the original event id, encoded once, finds it too.
            let answer = get(
                &stack,
                &format!("/events/{}", enc(original)),
                Some(TEST_READ_KEY),
            );
            assert_eq!(answer.status, 200, "{original}: {}", answer.text());
            assert_eq!(json(&answer), want);
        }
        // The listed id, found in the list too.
        let listed = json(&get(&stack, "/events?limit=10", Some(TEST_READ_KEY)));
        assert!(listed["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == &want));
    }
    // The id with slashes sent raw (not encoded) by a careless client.
    let raw = get(
        &stack,
        "/events/evt%2F2024%5C01%3Fkind=push%23frag",
        Some(TEST_READ_KEY),
    );
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(json(&raw)["id"], "evt%2F2024%5C01%3Fkind=push%23frag");

    let missing = get(&stack, "/events/no-such-event", Some(TEST_READ_KEY));
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(json(&missing)["error"], "event_not_found");
    // An id that is not one (a slash in it, as safe_id would have escaped it) is still absent.
    assert_eq!(
        get(&stack, "/events/a%2Fb", Some(TEST_READ_KEY)).status,
        404
    );
    for bad in ["/events/", "/events/%zz", "/events/%C3"] {
        let answer = get(&stack, bad, Some(TEST_READ_KEY));
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text());
        assert_eq!(json(&answer)["error"], "invalid_query", "{bad}");
    }
    let id = enc(&stored[0].1);
    assert_eq!(get(&stack, &format!("/events/{id}"), None).status, 401);
    let post = stack.post(
        &format!("/events/{id}"),
        &[("authorization", &bearer(TEST_KEY))],
        b"{}",
    );
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, HEAD"))
    );
}

/// An ACR push body for `repository:tag` (no tag: a delete by digest).
fn acr_event(id: &str, repository: &str, tag: Option<&str>) -> Vec<u8> {
    let mut event = json!({
        "id": id,
        "timestamp": "2024-05-01T12:00:00.000Z",
        "action": if tag.is_some() { "push" } else { "delete" },
        "target": {"repository": repository, "digest": "sha256:0123"},
        "request": {"id": "r", "host": "myregistry.azurecr.io", "method": "PUT"}
    });
    if let Some(tag) = tag {
        event["target"]["tag"] = json!(tag);
    }
    serde_json::to_vec(&event).unwrap()
}

fn include_and_exclude_answer_202_and_write_nothing(host: Runtime) {
    let stack = Stack::start_on(
        host,
        &[
            ("include", "hello-world:*, team/*:*"),
            ("exclude", "team/secret:*"),
        ],
    );
    // Kept: included and not excluded, with or without a tag.
    for (id, repository, tag) in [
        ("kept-1", "hello-world", Some("v1")),
        ("kept-2", "team/api", Some("1.0")),
        ("kept-3", "hello-world", None),
    ] {
        let answer = stack.post_acr(&acr_event(id, repository, tag));
        assert_eq!(answer.status, 201, "{id}: {}", answer.text());
    }
    // Filtered: 202, the reason, nothing written.
    for (id, repository, tag, reason) in [
        (
            "out-1",
            "team/secret",
            Some("v1"),
            "`team/secret:v1` matches the exclude pattern `team/secret:*`",
        ),
        (
            "out-2",
            "other",
            Some("v1"),
            "`other:v1` matches no include pattern; include: `hello-world:*`, `team/*:*`",
        ),
        (
            "out-3",
            "team/secret",
            None,
            "`team/secret` (no tag) matches the exclude pattern `team/secret:*`",
        ),
    ] {
        let answer = stack.post_acr(&acr_event(id, repository, tag));
        assert_eq!(answer.status, 202, "{id}: {}", answer.text());
        assert_eq!(
            json(&answer),
            json!({"status": "filtered", "reason": reason}),
            "{id}"
        );
        assert!(stack.document(id).is_none(), "{id} not written");
        let again = stack.post_acr(&acr_event(id, repository, tag));
        assert_eq!(again.status, 202, "{id} again");
    }
    assert_eq!(stack.count(), 3);

    // A batch: only the events in scope are written, the rest counted.
    let batch = fixture_json("eventgrid/cloudevents/batch_10.json");
    let in_scope: Vec<&str> = batch
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let r = e["data"]["target"]["repository"].as_str().unwrap_or("");
            r == "hello-world" || r.starts_with("team/")
        })
        .map(|e| e["data"]["id"].as_str().unwrap())
        .collect();
    assert!(in_scope.len() > 2 && in_scope.len() < 10);
    let auth = bearer(TEST_KEY);
    let answer = stack.post(
        "/eventgrid",
        &[
            ("authorization", &auth),
            ("content-type", "application/cloudevents-batch+json"),
        ],
        &fixture("eventgrid/cloudevents/batch_10.json"),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let outcome = json(&answer);
    assert_eq!(outcome["stored"], json!(in_scope));
    assert_eq!(outcome["filtered"], 10 - in_scope.len());
    assert_eq!(stack.count(), 3 + in_scope.len());

    // A delivery with nothing in scope: 202, nothing written.
    let cloud = stack.post(
        "/eventgrid",
        &[
            ("authorization", &auth),
            ("content-type", "application/cloudevents+json"),
        ],
        &fixture("eventgrid/cloudevents/chart_pushed.json"),
    );
    assert_eq!(cloud.status, 202, "{}", cloud.text());
    assert_eq!(json(&cloud)["filtered"], 1);
    assert_eq!(stack.count(), 3 + in_scope.len());
    let log = stack.app_log();
    assert!(
        log.contains("filtered out: `other:v1` matches no include pattern"),
        "{log}"
    );
}

const READ_KEY: &str = "e2e-read-key-91b2";
const READ_KEY_2: &str = "e2e-read-key-second-c3d4";

/// Reading is opt-in: with `read_keys` unset every read route answers 403
/// `reads_disabled` naming the variable, to the webhook key too, while writes go on.
#[test]
fn reads_are_disabled_without_read_keys() {
    let stack = Stack::start_with(&[("read_keys", "")]);
    let push = stack.post_acr(&fixture("acr/push.json"));
    assert_eq!(push.status, 201, "{}", push.text());
    for path in ["/events", "/events/summary", "/events/some-id"] {
        for key in [Some(TEST_KEY), Some(TEST_READ_KEY), None] {
            let answer = get(&stack, path, key);
            assert_eq!(answer.status, 403, "{path}: {}", answer.text());
            let body = json(&answer);
            assert_eq!(body["error"], "reads_disabled");
            assert!(
                body["message"].as_str().unwrap().contains("`read_keys`"),
                "{body}"
            );
        }
    }
    let by_code = get(&stack, &format!("/events?code={TEST_KEY}"), None);
    assert_eq!(by_code.status, 403);
    assert_eq!(stack.count(), 1);
}

/// `read_keys` set: reads take only the read keys, writes only the webhook keys (the
/// webhook key no longer reads: `read_keys` replaces the webhook keys for the read API).
fn read_keys_read_and_do_not_write(host: Runtime) {
    let stack = Stack::start_on(host, &[("read_keys", &format!("{READ_KEY}, {READ_KEY_2}"))]);
    let push = fixture("acr/push.json");
    let by_reader = stack.post(
        "/acr",
        &[
            ("authorization", &bearer(READ_KEY)),
            ("content-type", "application/json"),
        ],
        &push,
    );
    assert_eq!(by_reader.status, 401, "{}", by_reader.text());
    assert_eq!(stack.count(), 0);
    let by_code = stack.post(&format!("/acr?code={READ_KEY}"), &[], &push);
    assert_eq!(by_code.status, 401);
    let stored = stack.post_acr(&push);
    assert_eq!(stored.status, 201);
    // Every JSON answer, through the real component and host: neither cached nor sniffed.
    let listed = get(&stack, "/events", Some(READ_KEY));
    for (what, answer) in [
        ("401", &by_code),
        ("201", &stored),
        ("GET /events", &listed),
    ] {
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
    }

    let id = fixture_json("acr/push.json")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for key in [READ_KEY, READ_KEY_2] {
        let list = get(&stack, "/events", Some(key));
        assert_eq!(list.status, 200, "{}", list.text());
        assert_eq!(json(&list)["events"][0]["id"], id.as_str());
        assert_eq!(get(&stack, &format!("/events/{id}"), Some(key)).status, 200);
    }
    let by_code = get(&stack, &format!("/events?code={READ_KEY}"), None);
    assert_eq!(
        by_code.status,
        401,
        "a read key in the URL: {}",
        by_code.text()
    );
    let by_header = http::request(
        "GET",
        &stack.url("/events"),
        &[("x-functions-key", READ_KEY_2)],
        None,
    )
    .unwrap();
    assert_eq!(by_header.status, 200);
    for path in ["/events".to_owned(), format!("/events/{id}")] {
        let answer = get(&stack, &path, Some(TEST_READ_KEY));
        assert_eq!(answer.status, 401, "{path}: the webhook key does not read");
        assert_eq!(json(&answer)["error"], "unauthorized");
    }
    let log = stack.app_log();
    assert!(
        !log.contains(READ_KEY) && !log.contains(READ_KEY_2),
        "{log}"
    );
}

/// Documents written by the Azure Function this receiver replaces (`{id, loginServer, action,
/// timestamp, image, tag}`, no `receivedAt`) may share the container: they are listed after
/// every event this receiver stored, by id descending, and paging goes through them.
fn documents_left_by_the_old_function_are_listed_last(host: Runtime) {
    use acr_webhook_cli::native_host::NativeHost;
    use acr_webhook_core::cosmos::x_ms_date;

    let stack = Stack::start_on(host, &[]);
    for n in 0..13 {
        let answer = stack.post_acr(&serde_json::to_vec(&event(n)).unwrap());
        assert_eq!(answer.status, 201, "{n}: {}", answer.text());
    }
    let host = NativeHost::new();
    for n in 0..7 {
        let id = format!("req-{:04x}", mix(n) & 0xffff);
        let legacy = json!({"id": id, "loginServer": "old.azurecr.io", "action": "push",
                            "timestamp": "2023-01-01T00:00:00Z", "image": "app", "tag": "v1"});
        let request = stack.config.create_document_request(
            legacy.to_string().into_bytes(),
            &format!(r#"["{id}"]"#),
            &x_ms_date(std::time::SystemTime::now()),
        );
        let response = stack.send_signed(&host, request);
        assert_eq!(response.status(), 201);
    }
    let docs = stack.documents();
    assert_eq!(docs.len(), 20);
    let mut want = expected(&docs, |d| d.get("receivedAt").is_some());
    let mut legacy: Vec<String> = docs
        .iter()
        .filter(|d| d.get("receivedAt").is_none())
        .map(id_of)
        .collect();
    legacy.sort_by(|a, b| b.cmp(a));
    want.extend(legacy);
    for limit in [3, 20, 100] {
        let got: Vec<String> = all_pages(&stack, "", limit)
            .iter()
            .flatten()
            .map(id_of)
            .collect();
        assert_eq!(got, want, "limit {limit}");
    }
    // Filters apply to them like to any document.
    let pushes_of_app: Vec<String> = all_pages(&stack, "image=app&action=push", 2)
        .iter()
        .flatten()
        .map(id_of)
        .collect();
    let want_app: Vec<String> = want
        .iter()
        .filter(|id| {
            let d = docs.iter().find(|d| id_of(d) == **id).unwrap();
            d["image"] == "app" && d["action"] == "push"
        })
        .cloned()
        .collect();
    assert!(want_app.len() > 7, "{want_app:?}");
    assert_eq!(pushes_of_app, want_app);
}
