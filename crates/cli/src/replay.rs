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

use crate::native_host::NativeHost;
use crate::receiver::{Receiver, SHOWN_ANSWER_CHARS};

/// Environment variable holding the webhook key when `--key` is not given.
pub const KEY_ENV: &str = "ACR_WEBHOOK_KEY";

/// Timeout of each re-send (ACR itself gives a receiver 5 s; a replay may wait longer).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The receiver's ACR route, with the webhook key: a key in the header, or `?code=` in the URL.
fn target(to: &str, key: Option<String>) -> Result<Receiver> {
    let target = Receiver::new(
        "--to",
        "https://acr-webhook.example.com/acr",
        to,
        key,
        "webhook key",
    )?;
    if !target.has_key() && !target.has_code() {
        bail!("no webhook key: pass --key KEY or set {KEY_ENV} (or put ?code=KEY in the --to URL)");
    }
    Ok(target)
}

/// One delivery's body, as ACR posts it.
fn request(target: &Receiver, body: &[u8]) -> Result<http::Request<Vec<u8>>> {
    target.request(
        http::Request::post(target.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json"),
        body.to_vec(),
    )
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
    let target = target(&args.to, key)?;
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

fn resend(host: &NativeHost, target: &Receiver, delivery: &Delivery) -> Resent {
    let request = match request(target, &delivery.body) {
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
                what: format!("{status} {}", target.describe_answer(response.body())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_posted_as_json_with_the_key() {
        let t = target("https://acr.example.com/acr", Some("the-key".into())).unwrap();
        let request = request(&t, b"{}").unwrap();
        assert_eq!(request.headers()["authorization"], "Bearer the-key");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.body(), b"{}");
    }

    #[test]
    fn a_key_is_needed_somewhere() {
        let err = target("http://127.0.0.1:3000/acr", None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(KEY_ENV), "{err}");
        assert!(target("http://127.0.0.1:3000/acr", Some("  ".into())).is_err());
        assert!(target("http://127.0.0.1:3000/acr?code=k", None).is_ok());
        let request = request(&target("http://h/acr?code=k", None).unwrap(), b"{}").unwrap();
        assert!(request.headers().get("authorization").is_none());
    }
}
