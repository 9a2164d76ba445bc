//! The receiver a command talks to over HTTP (`replay` sends to it, `export` reads from it):
//! its URL as given on the command line, the key it is sent with, and what may never be
//! printed.
//!
//! The key travels as `Authorization: Bearer <key>`. The key, the URL's user info and its
//! query string (which may hold a `?code=` key) are removed from everything shown, and an
//! unusable URL is not echoed.

use anyhow::{bail, Context, Result};
use http::Uri;

/// The most characters of an answer shown when it is not one of the receiver's own.
pub const SHOWN_ANSWER_CHARS: usize = 200;

/// A receiver's URL and key.
pub struct Receiver {
    /// The URL as given.
    pub uri: Uri,
    /// `scheme://host[:port]/path`: no user info, no query string.
    pub shown: String,
    key: Option<String>,
    /// Strings removed from everything printed (the key, the user info, the query string).
    secrets: Vec<String>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("shown", &self.shown)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Parses `url`, given as the option `flag` (`--to`, `--url`; `example` is shown when it
    /// is unusable), with `key` (a blank one counts as none), which is a `what` (`webhook key`,
    /// `read key`) in messages.
    pub fn new(
        flag: &str,
        example: &str,
        url: &str,
        key: Option<String>,
        what: &str,
    ) -> Result<Self> {
        // The URL is not echoed in errors: its query string may hold a key.
        let uri: Uri = url
            .parse()
            .ok()
            .with_context(|| format!("{flag} is not a usable URL (expected e.g. {example})"))?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
                s.to_ascii_lowercase()
            }
            _ => bail!("{flag} must be an http:// or https:// URL"),
        };
        let authority = uri
            .authority()
            .with_context(|| format!("{flag} has no host (expected e.g. {example})"))?;
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        let shown = format!("{scheme}://{host}{}", uri.path());
        let key = key.filter(|k| !k.trim().is_empty());
        if key
            .as_deref()
            .is_some_and(|k| http::HeaderValue::from_str(&format!("Bearer {k}")).is_err())
        {
            bail!("the {what} cannot be sent in an HTTP header (control characters?)");
        }
        let mut secrets: Vec<String> = key.iter().cloned().collect();
        if let Some(userinfo) = authority.as_str().rsplit_once('@').map(|(u, _)| u) {
            secrets.push(userinfo.to_owned());
        }
        if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
            secrets.push(query.to_owned());
        }
        Ok(Self {
            uri,
            shown,
            key,
            secrets,
        })
    }

    /// True when a key will be sent in the `Authorization` header.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// True when the URL carries a non-empty `?code=` (a key in the query string), read
    /// percent-decoded as the receiver reads it.
    pub fn has_code(&self) -> bool {
        let query = self.uri.query().unwrap_or_default();
        form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "code" && !v.is_empty())
    }

    /// `text` with every secret replaced, control characters replaced, and at most `max`
    /// characters.
    pub fn redact(&self, text: &str, max: usize) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            text = text.replace(secret.as_str(), "***");
        }
        let mut out: String = text
            .chars()
            .take(max)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.chars().nth(max).is_some() {
            out.push('…');
        }
        out
    }

    /// A request to `uri` with the key, when there is one.
    pub fn request(
        &self,
        builder: http::request::Builder,
        body: Vec<u8>,
    ) -> Result<http::Request<Vec<u8>>> {
        let mut builder = builder;
        if let Some(key) = &self.key {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        builder
            .body(body)
            .ok()
            .context("the key cannot be sent in an HTTP header")
    }

    /// An answer body as it came (the receiver's are one line of JSON such as
    /// `{"id":"...","status":"stored"}` or `{"error":"...","message":"..."}`), bounded, with
    /// secrets and control characters replaced.
    pub fn describe_answer(&self, body: &[u8]) -> String {
        if body.is_empty() {
            return "(empty answer)".into();
        }
        self.redact(String::from_utf8_lossy(body).trim(), SHOWN_ANSWER_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(url: &str, key: Option<&str>) -> Result<Receiver> {
        Receiver::new(
            "--to",
            "https://acr-webhook.example.com/acr",
            url,
            key.map(str::to_owned),
            "webhook key",
        )
    }

    #[test]
    fn nothing_secret_is_shown() {
        let r = receiver(
            "https://user:pw@acr.example.com:8443/acr?code=s3cret&x=1",
            Some("the-key"),
        )
        .unwrap();
        assert_eq!(r.shown, "https://acr.example.com:8443/acr");
        assert_eq!(
            r.redact("a the-key b code=s3cret&x=1 c user:pw d", 100),
            "a *** b *** c *** d"
        );
        assert!(r.has_code() && r.has_key());
        let request = r
            .request(http::Request::get(r.uri.clone()), Vec::new())
            .unwrap();
        assert_eq!(request.headers()["authorization"], "Bearer the-key");
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("the-key") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn unusable_urls_and_keys_are_refused_without_echo() {
        assert!(!receiver("http://h/acr", Some("  ")).unwrap().has_key());
        assert!(!receiver("http://h/acr?code=", None).unwrap().has_code());
        // Percent-decoded, as the receiver reads it (crates/core's auth.rs).
        assert!(receiver("http://h/acr?%63ode=k", None).unwrap().has_code());
        assert!(!receiver("http://h/acr?a=1&code", None).unwrap().has_code());
        let err = receiver("http://h/acr", Some("k\nX-Injected: 1"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            !err.contains("Injected") && err.contains("webhook key"),
            "{err}"
        );
        for bad in ["127.0.0.1:3000/acr", "ftp://h/acr", "/acr", "not a url"] {
            let err = receiver(bad, Some("k")).err().unwrap().to_string();
            assert!(err.starts_with("--to "), "{bad}: {err}");
        }
        // An unusable URL is not echoed: its query string may hold a key.
        let err = receiver("http://h/acr?code=zz y", Some("k"))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("zz"), "{err}");
    }

    #[test]
    fn answers_are_shown_bounded_and_redacted() {
        let r = receiver("http://h/acr?code=k3y", None).unwrap();
        let d = |body: &str| r.describe_answer(body.as_bytes());
        assert_eq!(
            d("{\"id\":\"a\",\"status\":\"stored\"}\n"),
            "{\"id\":\"a\",\"status\":\"stored\"}"
        );
        assert_eq!(d(""), "(empty answer)");
        assert_eq!(d("<html>code=k3y\n</html>"), "<html>*** </html>");
        assert_eq!(d(&"x".repeat(500)).chars().count(), SHOWN_ANSWER_CHARS + 1);
    }
}
