//! `acr-webhook replay FILE --to URL [--all] [--key KEY]`: sends again the deliveries an ACR
//! webhook recorded (`az acr webhook list-events -r REGISTRY -n WEBHOOK -o json > FILE`).
//!
//! ACR tries a delivery once; the recorded ones are the only copies of the events a receiver
//! missed. By default only the deliveries that did not get a 2xx answer (or got none) are
//! sent; `--all` sends every one. Each body is POSTed to `URL` (the receiver's `/acr` route)
//! with `Authorization: Bearer <key>` and `Content-Type: application/json`. Sending again is
//! safe: the receiver keys every document by the event's id, so an event stored before is
//! answered `already_stored` and written once.
//!
//! One line per delivery goes to stdout: what the event is, its delivery id and recorded
//! answer, and what came back now. The command fails (non-zero exit) when any delivery could
//! not be sent again with a 2xx answer; running it again is the remedy. The key and the URL's
//! query string (which may hold a `?code=` key) are never printed.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use acr_webhook_core::replay::{parse_list_events, select, Delivery};
use anyhow::{bail, Context, Result};
use http::Uri;

use crate::store_client::NativeHost;

/// Environment variable holding the webhook key when `--key` is not given.
pub const KEY_ENV: &str = "ACR_WEBHOOK_KEY";

/// Timeout of each re-send (ACR itself gives a receiver 5 s; a replay may wait longer).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The most characters of an answer shown when it is not one of the receiver's own.
const SHOWN_ANSWER_CHARS: usize = 200;

/// Arguments of `acr-webhook replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// What `az acr webhook list-events -r REGISTRY -n WEBHOOK -o json` printed (a JSON
    /// array; an ARM `{"value": [...]}` answer works too), or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The receiver's ACR route, e.g. https://acr-webhook.example.com/acr.
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Send every recorded delivery again, not only those that did not get a 2xx answer.
    #[arg(long)]
    pub all: bool,

    /// The webhook key, sent as `Authorization: Bearer <key>`. Default: the ACR_WEBHOOK_KEY
    /// environment variable (preferred: a command line is visible to other local users).
    /// May be omitted when URL carries `?code=<key>`.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
}

/// Where the deliveries go, and what may never be printed.
struct Target {
    uri: Uri,
    /// `scheme://host[:port]/path`: no user info, no query string.
    shown: String,
    key: Option<String>,
    /// Strings removed from everything printed (the key, the query string).
    secrets: Vec<String>,
}

impl Target {
    fn new(to: &str, key: Option<String>) -> Result<Self> {
        // The URL is not echoed in errors: its query string may hold a key.
        let uri: Uri = to.parse().ok().context(
            "--to is not a usable URL (expected e.g. https://acr-webhook.example.com/acr)",
        )?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
                s.to_ascii_lowercase()
            }
            _ => bail!("--to must be an http:// or https:// URL"),
        };
        let authority = uri
            .authority()
            .context("--to has no host (expected e.g. https://acr-webhook.example.com/acr)")?;
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        let shown = format!("{scheme}://{host}{}", uri.path());
        let query = uri.query().unwrap_or_default().to_owned();
        let has_code = query.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(k, v)| k == "code" && !v.is_empty())
        });
        let key = key.filter(|k| !k.trim().is_empty());
        if key
            .as_deref()
            .is_some_and(|k| http::HeaderValue::from_str(&format!("Bearer {k}")).is_err())
        {
            bail!("the webhook key cannot be sent in an HTTP header (control characters?)");
        }
        if key.is_none() && !has_code {
            bail!(
                "no webhook key: pass --key KEY or set {KEY_ENV} (or put ?code=KEY in the --to URL)"
            );
        }
        let mut secrets: Vec<String> = key.iter().cloned().collect();
        if let Some(userinfo) = authority.as_str().rsplit_once('@').map(|(u, _)| u) {
            secrets.push(userinfo.to_owned());
        }
        if !query.is_empty() {
            secrets.push(query);
        }
        Ok(Self {
            uri,
            shown,
            key,
            secrets,
        })
    }

    /// `text` with every secret replaced, control characters replaced, and at most `max`
    /// characters.
    fn redact(&self, text: &str, max: usize) -> String {
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

    fn request(&self, body: &[u8]) -> Result<http::Request<Vec<u8>>> {
        let mut builder = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.key {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        builder
            .body(body.to_vec())
            .ok()
            .context("the webhook key cannot be sent in an HTTP header")
    }
}

/// What came back for one delivery.
struct Resent {
    ok: bool,
    /// `201 stored`, `200 already stored`, `503 store_unavailable: ...`, `not sent: ...`.
    what: String,
    status: Option<u16>,
}

/// Reads the file, sends the selected deliveries, reports each one.
pub fn run(args: ReplayArgs) -> Result<()> {
    let key = args.key.or_else(|| std::env::var(KEY_ENV).ok());
    let target = Target::new(&args.to, key)?;
    let json = read_input(&args.file)?;
    let deliveries = parse_list_events(&json)
        .with_context(|| format!("{} is not list-events output", args.file.display()))?;
    let chosen = select(&deliveries, args.all);
    if chosen.is_empty() {
        eprintln!(
            "nothing to replay: all {} recorded deliveries were answered 2xx (--all sends them anyway)",
            deliveries.len()
        );
        return Ok(());
    }
    eprintln!(
        "replaying {} of {} recorded deliveries to {}",
        chosen.len(),
        deliveries.len(),
        target.shown
    );
    let host = NativeHost::new();
    let mut failed = 0;
    let (mut stored, mut already) = (0, 0);
    for delivery in &chosen {
        let resent = resend(&host, &target, delivery);
        println!(
            "{} -> {}",
            target.redact(&delivery.summary(), 400),
            resent.what
        );
        if !resent.ok {
            failed += 1;
        }
        match resent.status {
            Some(201) => stored += 1,
            Some(200) => already += 1,
            _ => {}
        }
    }
    eprintln!("done: {stored} stored now, {already} already stored, {failed} failed");
    if failed > 0 {
        bail!(
            "{failed} of {} deliveries were not accepted; run the same command again once the receiver is fixed (events stored already are not stored twice)",
            chosen.len()
        );
    }
    Ok(())
}

fn read_input(file: &std::path::Path) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        return Ok(buf);
    }
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

fn resend(host: &NativeHost, target: &Target, delivery: &Delivery) -> Resent {
    let request = match target.request(&delivery.body) {
        Ok(r) => r,
        Err(e) => {
            return Resent {
                ok: false,
                what: format!("not sent: {e}"),
                status: None,
            }
        }
    };
    match host.send_blocking(request, SEND_TIMEOUT) {
        Ok(response) => {
            let status = response.status().as_u16();
            Resent {
                ok: response.status().is_success(),
                what: format!("{status} {}", describe_answer(target, response.body())),
                status: Some(status),
            }
        }
        Err(e) => Resent {
            ok: false,
            what: format!(
                "not sent: {} could not be reached: {}",
                target.shown,
                target.redact(&e.message, SHOWN_ANSWER_CHARS)
            ),
            status: None,
        },
    }
}

/// The answer body as it came (the receiver's are one line of JSON such as
/// `{"id":"...","status":"stored"}` or `{"error":"...","message":"..."}`), bounded, with
/// secrets and control characters replaced.
fn describe_answer(target: &Target, body: &[u8]) -> String {
    if body.is_empty() {
        return "(empty answer)".into();
    }
    target.redact(String::from_utf8_lossy(body).trim(), SHOWN_ANSWER_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_secret_is_shown() {
        let t = Target::new(
            "https://user:pw@acr.example.com:8443/acr?code=s3cret&x=1",
            Some("the-key".into()),
        )
        .unwrap();
        assert_eq!(t.shown, "https://acr.example.com:8443/acr");
        assert_eq!(
            t.redact("a the-key b code=s3cret&x=1 c user:pw d", 100),
            "a *** b *** c *** d"
        );
        let request = t.request(b"{}").unwrap();
        assert_eq!(request.headers()["authorization"], "Bearer the-key");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.method(), http::Method::POST);
    }

    #[test]
    fn a_key_is_needed_somewhere() {
        let err = Target::new("http://127.0.0.1:3000/acr", None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(KEY_ENV), "{err}");
        assert!(Target::new("http://127.0.0.1:3000/acr", Some("  ".into())).is_err());
        assert!(Target::new("http://127.0.0.1:3000/acr?code=k", None).is_ok());
        let err = Target::new("http://h/acr", Some("k\nX-Injected: 1".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("Injected"), "{err}");
        for bad in ["127.0.0.1:3000/acr", "ftp://h/acr", "/acr", "not a url"] {
            assert!(Target::new(bad, Some("k".into())).is_err(), "{bad}");
        }
        // An unusable URL is not echoed: its query string may hold a key.
        let err = Target::new("http://h/acr?code=zz y", Some("k".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("zz"), "{err}");
    }

    #[test]
    fn answers_are_shown_bounded_and_redacted() {
        let t = Target::new("http://h/acr?code=k3y", None).unwrap();
        let d = |body: &str| describe_answer(&t, body.as_bytes());
        assert_eq!(
            d("{\"id\":\"a\",\"status\":\"stored\"}\n"),
            "{\"id\":\"a\",\"status\":\"stored\"}"
        );
        assert_eq!(d(""), "(empty answer)");
        assert_eq!(d("<html>code=k3y\n</html>"), "<html>*** </html>");
        assert_eq!(d(&"x".repeat(500)).chars().count(), SHOWN_ANSWER_CHARS + 1);
    }
}
