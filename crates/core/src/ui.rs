//! The audit-trail page's files (the `ui/` folder) and their routes: `GET /` and the files it loads (`/ui/app.js`,
//! `/ui/app.css`). The page is data (the `acr-webhook-ui-assets` crate embeds `ui/`,
//! gzip-compressed at build time); this module only decides how to answer a request for it:
//!
//! - `GET` and `HEAD` only; no key (the page holds no data: it asks for the read key and sends
//!   it to the read API, which checks it).
//! - The files are embedded gzip-compressed only (the component's size budget), and answered
//!   with `Content-Encoding: gzip` to every client that accepts gzip (every browser; and any
//!   client without `Accept-Encoding`, which RFC 9110 §12.5.3 takes as accepting any coding).
//!   A client that refuses gzip gets 406 `not_acceptable`.
//! - A strong `ETag` and `Cache-Control: no-cache`: the browser revalidates each time and gets
//!   304 (no body) while the page is unchanged; a new build changes the ETag.
//! - Security headers on every answer: a strict Content-Security-Policy (everything from this
//!   origin only, no inline script or style, no framing, no `<base>`, no form posts),
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.

use acr_webhook_ui_assets::Asset;
use http::{header, request::Parts, HeaderMap, Method, Response, StatusCode};

/// The page's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// The file served at `path`, if `path` is one of the page's routes.
pub fn asset(path: &str) -> Option<&'static Asset> {
    acr_webhook_ui_assets::find(path)
}

/// The answer to a request for one of the page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAnswer {
    /// The file.
    pub asset: &'static Asset,
    /// The client's copy is current (`If-None-Match`): 304 without a body.
    pub not_modified: bool,
    /// A `HEAD` request: the headers without the body.
    pub head_only: bool,
}

/// Why a request for one of the page's files is refused (the statuses are in `crate::answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRefusal {
    /// Neither `GET` nor `HEAD`: 405 with the methods named here.
    MethodNotAllowed {
        /// The `Allow` header.
        allow: &'static str,
    },
    /// The client refuses gzip, the only form the files are stored in: 406.
    NotAcceptable,
}

/// Answers `GET`/`HEAD` for `asset`: 200 with the gzip bytes, or 304 when the client's copy
/// is current; 406 when the client refuses gzip.
pub fn serve(head: &Parts, asset: &'static Asset) -> Result<FileAnswer, FileRefusal> {
    if !matches!(head.method, Method::GET | Method::HEAD) {
        return Err(FileRefusal::MethodNotAllowed { allow: "GET, HEAD" });
    }
    if !accepts_gzip(&head.headers) {
        return Err(FileRefusal::NotAcceptable);
    }
    Ok(FileAnswer {
        asset,
        not_modified: etag_matches(&head.headers, asset.etag),
        head_only: head.method == Method::HEAD,
    })
}

impl FileAnswer {
    /// 304 when the client's copy is current, else 200.
    pub fn status(&self) -> StatusCode {
        if self.not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        }
    }

    /// The HTTP answer.
    pub fn response(&self) -> Response<Vec<u8>> {
        let asset = self.asset;
        let mut builder = Response::builder()
            .header(header::ETAG, asset.etag)
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::VARY, "accept-encoding");
        builder = with_security_headers(builder);
        let body = if self.not_modified {
            Vec::new()
        } else {
            builder = builder
                .header(header::CONTENT_TYPE, asset.content_type)
                .header(header::CONTENT_ENCODING, "gzip");
            if self.head_only {
                Vec::new()
            } else {
                asset.gzip.to_vec()
            }
        };
        builder
            .status(self.status())
            .body(body)
            .expect("the page's headers are valid")
    }
}

/// Adds the security headers of the page's answers.
pub fn with_security_headers(builder: http::response::Builder) -> http::response::Builder {
    builder
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
}

/// Whether the client accepts `gzip`: no `Accept-Encoding` at all, or one that lists `gzip`
/// (or `x-gzip`), or `*` without naming gzip, with a non-zero weight.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    let mut gzip = None;
    let mut any = None;
    for value in values {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let weight_ok = parts.all(|p| {
                let p = p.trim();
                !(p.len() >= 2 && p[..2].eq_ignore_ascii_case("q=") && is_zero(&p[2..]))
            });
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(weight_ok);
            } else if coding == "*" {
                any = Some(weight_ok);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// `0`, `0.`, `0.0`, ... `0.000`.
fn is_zero(q: &str) -> bool {
    let q = q.trim();
    q.starts_with('0') && q[1..].trim_start_matches('.').bytes().all(|b| b == b'0')
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 §13.1.2 asks) or is `*`.
pub fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn answer(method: &str, path: &str, headers: &[(&str, &str)]) -> Response<Vec<u8>> {
        let asset = asset(path).unwrap();
        let answer = serve(&head(method, path, headers), asset)
            .map(crate::Success::UiFile)
            .map_err(crate::Failure::from);
        crate::respond(&answer)
    }

    #[test]
    fn files_come_gzipped_with_their_type_etag_and_security_headers() {
        for (path, kind) in [
            ("/", "text/html; charset=utf-8"),
            ("/ui/app.js", "text/javascript; charset=utf-8"),
            ("/ui/app.css", "text/css; charset=utf-8"),
        ] {
            let r = answer("GET", path, &[("accept-encoding", "gzip, deflate, br")]);
            assert_eq!(r.status(), 200);
            let h = r.headers();
            assert_eq!(h["content-type"], kind);
            assert_eq!(h["content-encoding"], "gzip");
            assert_eq!(h["vary"], "accept-encoding");
            assert_eq!(h["cache-control"], "no-cache");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["referrer-policy"], "no-referrer");
            let csp = h["content-security-policy"].to_str().unwrap();
            for part in [
                "default-src 'none'",
                "script-src 'self'",
                "connect-src 'self'",
                "frame-ancestors 'none'",
                "base-uri 'none'",
            ] {
                assert!(csp.contains(part), "{csp}");
            }
            assert_eq!(r.body()[..2], [0x1f, 0x8b]);
            let etag = h["etag"].to_str().unwrap().to_owned();
            assert!(etag.starts_with('"') && etag.ends_with('"'));

            let r = answer(
                "GET",
                path,
                &[("if-none-match", &format!("\"x\", W/{etag}"))],
            );
            assert_eq!(r.status(), 304);
            assert!(r.body().is_empty());
            assert_eq!(r.headers()["etag"], etag.as_str());
            let r = answer("GET", path, &[("if-none-match", "\"other\"")]);
            assert_eq!(r.status(), 200);
            let r = answer("HEAD", path, &[]);
            assert_eq!(r.status(), 200);
            assert!(r.body().is_empty());
        }
        assert_eq!(answer("POST", "/", &[]).status(), 405);
    }

    #[test]
    fn gzip_negotiation() {
        let accepts = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::ACCEPT_ENCODING, v.parse().unwrap());
            }
            accepts_gzip(&h)
        };
        assert!(accepts(&[]), "no Accept-Encoding: any coding");
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["br", "GZIP;q=0.5"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["identity;q=1, *;q=0.1"]));
        assert!(!accepts(&[""]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.000, *"]));
        assert!(!accepts(&["*;q=0"]));
        let r = answer("GET", "/", &[("accept-encoding", "identity")]);
        assert_eq!(r.status(), 406);
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "not_acceptable");
    }
}
