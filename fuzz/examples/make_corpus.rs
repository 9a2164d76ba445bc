//! Writes the seed corpora from tests/fixtures: `cargo run --manifest-path fuzz/Cargo.toml
//! --example make_corpus` (run from the repository root). Seeds are named `seed-*`, so they
//! stay recognisable next to what the fuzzer adds; running it again rewrites them only.
//!
//! - payload_to_document: every fixture, verbatim.
//! - request_parser: the `arbitrary` encoding of a request head (the choices below) followed
//!   by the fixture as body. Each seed is decoded again and compared, so a change in the
//!   input type or in `arbitrary`'s encoding fails here instead of giving useless seeds.
//! - read_api_query: a few query strings, tokens and ids.

use std::fs;
use std::path::{Path, PathBuf};

use acr_webhook_fuzz::{
    AuthChoice, ContentLengthChoice, ContentTypeChoice, MethodChoice, RequestInput, RouteChoice,
};
use arbitrary::{Arbitrary, Unstructured};

/// The `arbitrary` encoding, for the few shapes the seeds use: front bytes in order, string
/// lengths taken from the end (1 byte while at most 257 bytes remain), the body verbatim last.
#[derive(Default)]
struct Enc {
    front: Vec<u8>,
    /// Length bytes in the order they are read (the first one read is the last byte).
    lengths: Vec<u8>,
}

impl Enc {
    fn variant(&mut self, index: u64, count: u64) -> &mut Self {
        // derive(Arbitrary) picks (u32 * count) >> 32.
        let v = ((index << 32) + count - 1) / count;
        self.front.extend_from_slice(&(v as u32).to_le_bytes());
        self
    }
    fn flag(&mut self, on: bool) -> &mut Self {
        self.front.push(u8::from(on));
        self
    }
    fn string(&mut self, s: &str) -> &mut Self {
        assert!(s.len() < 256);
        self.lengths.push(s.len() as u8);
        self.front.extend_from_slice(s.as_bytes());
        self
    }
    fn finish(&self, rest: &[u8]) -> Vec<u8> {
        let mut out = self.front.clone();
        out.extend_from_slice(rest);
        out.extend(self.lengths.iter().rev());
        if !self.lengths.is_empty() {
            assert!(out.len() <= 257, "1-byte lengths need short inputs");
        }
        out
    }
}

#[derive(Clone, Copy)]
enum Auth {
    Bearer,
    BearerRotated,
    FunctionsKey,
    Code,
    ReadKey,
    ReadKeyCode,
    None,
}

#[derive(Clone, Copy)]
enum Ct {
    Json,
    Absent,
    DistV1,
    CloudEvents,
    CloudEventsBatch,
}

struct Seed<'a> {
    method: u64, // index in MethodChoice
    route: u64,  // index in RouteChoice (Event = 5 takes `segment`)
    segment: Option<&'a str>,
    query: Option<&'a str>,
    auth: Auth,
    ct: Ct,
    actual_length: bool,
    origin: Option<&'a str>,
}

fn encode(seed: &Seed, body: &[u8]) -> Vec<u8> {
    let mut e = Enc::default();
    e.variant(seed.method, 7);
    e.variant(seed.route, 7);
    if let Some(segment) = seed.segment {
        e.string(segment);
    }
    e.flag(seed.query.is_some());
    if let Some(q) = seed.query {
        e.string(q);
    }
    e.variant(seed.auth as u64, 9);
    let ct = match seed.ct {
        Ct::Json => 0,
        Ct::Absent => 1,
        Ct::DistV1 => 3,
        Ct::CloudEvents => 5,
        Ct::CloudEventsBatch => 6,
    };
    e.variant(ct, 8);
    e.variant(u64::from(seed.actual_length), 4);
    e.flag(seed.origin.is_some());
    if let Some(o) = seed.origin {
        e.string(o);
    }
    e.flag(false); // no extra headers
    let bytes = e.finish(body);

    // Decode again and compare.
    let input = RequestInput::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
    assert_eq!(input.body.0, body, "body");
    let method_ok = matches!(
        (&input.method, seed.method),
        (MethodChoice::Post, 0) | (MethodChoice::Get, 1) | (MethodChoice::Options, 3)
    );
    assert!(method_ok, "method {:?}", input.method);
    match (&input.route, seed.route) {
        (RouteChoice::Acr, 0)
        | (RouteChoice::Distribution, 1)
        | (RouteChoice::EventGrid, 2)
        | (RouteChoice::Health, 3)
        | (RouteChoice::Events, 4) => {}
        (RouteChoice::Event(s), 5) => assert_eq!(Some(s.as_str()), seed.segment),
        other => panic!("route {other:?}"),
    }
    assert_eq!(input.query.as_deref(), seed.query);
    let auth_ok = matches!(
        (&input.auth, seed.auth),
        (AuthChoice::Bearer, Auth::Bearer)
            | (AuthChoice::BearerRotated, Auth::BearerRotated)
            | (AuthChoice::FunctionsKey, Auth::FunctionsKey)
            | (AuthChoice::Code, Auth::Code)
            | (AuthChoice::ReadKey, Auth::ReadKey)
            | (AuthChoice::ReadKeyCode, Auth::ReadKeyCode)
            | (AuthChoice::None, Auth::None)
    );
    assert!(auth_ok, "auth {:?}", input.auth);
    let ct_ok = matches!(
        (&input.content_type, seed.ct),
        (ContentTypeChoice::Json, Ct::Json)
            | (ContentTypeChoice::Absent, Ct::Absent)
            | (ContentTypeChoice::DistributionV1, Ct::DistV1)
            | (ContentTypeChoice::CloudEvents, Ct::CloudEvents)
            | (ContentTypeChoice::CloudEventsBatch, Ct::CloudEventsBatch)
    );
    assert!(ct_ok, "content type {:?}", input.content_type);
    assert!(matches!(
        (&input.content_length, seed.actual_length),
        (ContentLengthChoice::Absent, false) | (ContentLengthChoice::Actual, true)
    ));
    assert_eq!(input.origin.as_deref(), seed.origin);
    assert!(input.extra_headers.is_empty());
    bytes
}

fn fixtures(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.join("tests/fixtures")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(root.join("tests/fixtures")).unwrap();
                let name = rel.to_string_lossy().replace(['/', '\\'], "-");
                out.push((name, fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn main() {
    // The directory cargo gives at run time (the one compiled in can be another checkout's).
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..");
    let corpus = root.join("fuzz/corpus");
    let fixtures = fixtures(&root);

    // payload_to_document: every fixture as it is.
    for (name, bytes) in &fixtures {
        write(&corpus.join("payload_to_document"), name, bytes);
    }

    // request_parser: fixtures as bodies of the route they belong to.
    let dir = corpus.join("request_parser");
    let post = |route, auth, ct| Seed {
        method: 0,
        route,
        segment: None,
        query: None,
        auth,
        ct,
        actual_length: false,
        origin: None,
    };
    for (name, bytes) in &fixtures {
        let seed = if name.starts_with("acr-") && name != "acr-list-events.json" {
            post(0, Auth::Bearer, Ct::Json)
        } else if name.starts_with("distribution-") && name != "distribution-request_headers.json" {
            post(1, Auth::Bearer, Ct::DistV1)
        } else if name.starts_with("eventgrid-eventgrid-schema-") {
            post(2, Auth::Bearer, Ct::Json)
        } else if name == "eventgrid-cloudevents-batch_10.json" {
            post(2, Auth::Bearer, Ct::CloudEventsBatch)
        } else if name.starts_with("eventgrid-cloudevents-") {
            post(2, Auth::Bearer, Ct::CloudEvents)
        } else {
            continue;
        };
        write(&dir, name, &encode(&seed, bytes));
    }
    let ping = fixtures
        .iter()
        .find(|(n, _)| n == "acr-ping.json")
        .unwrap()
        .1
        .clone();
    let push = fixtures
        .iter()
        .find(|(n, _)| n == "acr-push.json")
        .unwrap()
        .1
        .clone();
    let mut extra: Vec<(&str, Seed, Vec<u8>)> = vec![
        (
            "acr-ping-functions-key",
            post(0, Auth::FunctionsKey, Ct::Absent),
            ping.clone(),
        ),
        ("acr-ping-code", post(0, Auth::Code, Ct::Json), ping.clone()),
        (
            "acr-push-rotated-key",
            post(0, Auth::BearerRotated, Ct::Json),
            push.clone(),
        ),
        (
            "acr-push-no-key",
            post(0, Auth::None, Ct::Json),
            push.clone(),
        ),
        (
            "acr-push-read-key",
            post(0, Auth::ReadKey, Ct::Json),
            push.clone(),
        ),
    ];
    // Outside the scope (the configuration excludes `scratch/*:*` and `*:tmp-*`): 202.
    let excluded = String::from_utf8(push.clone())
        .unwrap()
        .replace("hello-world", "scratch/app");
    extra.push((
        "acr-push-excluded",
        post(0, Auth::Bearer, Ct::Json),
        excluded.into_bytes(),
    ));
    let mut with_length = post(0, Auth::Bearer, Ct::Json);
    with_length.actual_length = true;
    extra.push(("acr-push-content-length", with_length, push));
    let get = |route, segment, query, auth| Seed {
        method: 1,
        route,
        segment,
        query,
        auth,
        ct: Ct::Absent,
        actual_length: false,
        origin: None,
    };
    extra.push(("healthz", get(3, None, None, Auth::None), Vec::new()));
    extra.push(("events", get(4, None, None, Auth::ReadKey), Vec::new()));
    extra.push((
        "events-query",
        get(
            4,
            None,
            Some("image=hello-world&tag=v1&action=push&limit=2"),
            Auth::ReadKeyCode,
        ),
        Vec::new(),
    ));
    extra.push((
        "events-window",
        get(
            4,
            None,
            Some("since=2023-11-14T00:00:00Z&until=2023-11-15T00:00:00.5%2B01:00&limit=1"),
            Auth::ReadKey,
        ),
        Vec::new(),
    ));
    extra.push((
        "event-by-id",
        get(
            5,
            Some("cb8c3971-9adc-488b-bdd8-43cbb4974ff5"),
            None,
            Auth::ReadKey,
        ),
        Vec::new(),
    ));
    extra.push((
        "event-by-escaped-id",
        get(
            5,
            Some("evt%252F2024%255C01%253Fkind%253Dpush%2523frag"),
            None,
            Auth::ReadKey,
        ),
        Vec::new(),
    ));
    extra.push((
        "eventgrid-options",
        Seed {
            method: 3,
            route: 2,
            segment: None,
            query: None,
            auth: Auth::None,
            ct: Ct::Absent,
            actual_length: false,
            origin: Some("eventgrid.azure.net"),
        },
        Vec::new(),
    ));
    for (name, seed, body) in &extra {
        write(&dir, name, &encode(seed, body));
    }

    // read_api_query: Input { query, token, id }: the query's length is the last byte, the
    // token's string length the one before it, and the id takes the rest.
    let dir = corpus.join("read_api_query");
    let cases: [(&str, &str, u64, &str, &str); 4] = [
        (
            "q-sealed",
            "image=hello-world&tag=v1&limit=5",
            1,
            "cosmos-token-1",
            "evt/2024\\01?kind=push#frag",
        ),
        (
            "q-window",
            "since=2024-05-01T12:00:00Z&until=2024-05-01t14:00:00.5%2B02:00",
            2,
            "+RID:~abc==#RT:1",
            "a%2Fb",
        ),
        (
            "q-other",
            "action=delete&limit=0100",
            4,
            "token",
            "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
        ),
        (
            "q-raw",
            "continuation=Y29zbW9z.AAAA&code=k",
            0,
            "Y29zbW9z.AAAA",
            "é",
        ),
    ];
    for (name, query, token, value, id) in cases {
        let mut e = Enc::default();
        e.string(query);
        e.variant(token, 5);
        e.string(value);
        if token == 2 {
            e.front.extend_from_slice(&7u16.to_le_bytes());
            e.front.push(b'x');
        }
        let bytes = e.finish(id.as_bytes());
        write(&dir, name, &bytes);
    }
    println!("seeds written under {}", corpus.display());
}
