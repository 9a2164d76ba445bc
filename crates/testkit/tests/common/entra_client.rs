//! A minimal token client for the fake Entra's tests (the project's own client lives in the
//! component), and a reader of pipelined keep-alive answers.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

use acr_webhook_testkit::http::{self, HttpResponse};
use acr_webhook_testkit::{FakeEntra, IMDS_API_VERSION, JWT_BEARER};

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// IMDS: `GET …?api-version=2018-02-01&resource=RESOURCE[&client_id=…]` with `Metadata: true`.
pub fn imds(entra: &FakeEntra, resource: &str, client_id: Option<&str>) -> HttpResponse {
    let mut url = format!(
        "{}?api-version={IMDS_API_VERSION}&resource={}",
        entra.imds_endpoint(),
        encode(resource)
    );
    if let Some(id) = client_id {
        url.push_str(&format!("&client_id={}", encode(id)));
    }
    http::request("GET", &url, &[("Metadata", "true")], None).expect("IMDS request")
}

/// v2.0 token endpoint with a form of `pairs` plus `grant_type=client_credentials`.
pub fn token_endpoint(entra: &FakeEntra, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut body = String::from("grant_type=client_credentials");
    for (k, v) in pairs {
        body.push_str(&format!("&{k}={}", encode(v)));
    }
    http::request(
        "POST",
        &entra.token_endpoint(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    )
    .expect("token request")
}

/// Client secret grant for `scope`.
pub fn with_secret(entra: &FakeEntra, secret: &str, scope: &str) -> HttpResponse {
    let app = entra.app();
    token_endpoint(
        entra,
        &[
            ("client_id", &app.client_id),
            ("scope", scope),
            ("client_secret", secret),
        ],
    )
}

/// Federated assertion grant for `scope`.
pub fn with_assertion(entra: &FakeEntra, assertion: &str, scope: &str) -> HttpResponse {
    let app = entra.app();
    token_endpoint(
        entra,
        &[
            ("client_id", &app.client_id),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
}

/// The `access_token` of a 200 answer; panics with the answer otherwise.
pub fn access_token(r: &HttpResponse) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().expect("json")["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// `Authorization` for an AAD token, URL-encoded as a whole, as Cosmos DB wants it.
pub fn aad_authorization(token: &str) -> String {
    encode(&format!("type=aad&ver=1.0&sig={token}"))
}

/// Reads one answer (status, headers, `Content-Length` body) from a keep-alive connection.
pub fn read_answer(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header");
        if l == "\r\n" {
            break;
        }
        let (k, v) = l.trim().split_once(':').expect("header line");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("body");
    (status, headers, body)
}
