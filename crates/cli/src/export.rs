//! `acr-webhook export --url URL [--since T] [--until T] [--image R] [--tag T] [--action A]
//! --format csv|ndjson [--output FILE]`: every stored event of the filters, newest first, as a
//! file, read through the receiver's read API.
//!
//! It asks `GET /events` for pages of the most events a page holds and follows the
//! continuation to the end, so every event of the filters is written once whatever the page
//! size (the read API pages by position; events received during the export are newer than
//! its first page and are not in it). The read key comes from `ACR_WEBHOOK_READ_KEY` only,
//! never from a flag (a command line is visible to other local users), and travels as
//! `Authorization: Bearer`. CSV follows [`crate::csv`] (the page builds the same file); NDJSON
//! is the stored documents as the read API lists them, one per line.
//!
//! The file is written under a temporary name beside `FILE` and renamed when complete, so a
//! failed export leaves no partial file behind; without `--output` it goes to standard
//! output as it is read. Progress goes to standard error.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use acr_webhook_core::read_api::{EventQuery, MAX_LIMIT};
use anyhow::{anyhow, bail, Context, Result};
use http::Uri;
use serde_json::Value;

use crate::native_host::NativeHost;
use crate::receiver::{Receiver, SHOWN_ANSWER_CHARS};

/// Environment variable holding the read key.
pub const READ_KEY_ENV: &str = "ACR_WEBHOOK_READ_KEY";

/// Timeout of one page request (the receiver answers within its own time budget).
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts per page when the receiver is busy or unreachable (503, no answer).
const ATTEMPTS: u32 = 4;

/// The longest wait between two attempts, whatever `Retry-After` asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Without a terminal, a progress line every this many pages.
const PAGES_PER_LINE: u64 = 10;

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 4180 CSV with a fixed header (README "Export").
    Csv,
    /// The stored documents, one JSON object per line.
    Ndjson,
}

/// Arguments of `acr-webhook export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The receiver's address, e.g. https://acr-webhook.example.com (`/events` is added unless
    /// the path already ends with it). The read key comes from ACR_WEBHOOK_READ_KEY.
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// Only events received at or after this RFC 3339 time (e.g. 2026-11-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only events received before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only events of this repository.
    #[arg(long, value_name = "REPOSITORY")]
    pub image: Option<String>,

    /// Only events with this tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Only events with this action (push, delete, ...).
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,

    /// The file format.
    #[arg(long, value_enum)]
    pub format: Format,

    /// Write to FILE (replaced only once the export is complete) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Where the lines go: standard output, or a temporary file renamed into place at the end.
enum Sink {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File {
        writer: std::io::BufWriter<std::fs::File>,
        partial: PathBuf,
        path: PathBuf,
    },
}

impl Sink {
    fn open(output: Option<&Path>) -> Result<Self> {
        let Some(path) = output else {
            return Ok(Self::Stdout(std::io::BufWriter::new(std::io::stdout())));
        };
        let mut name = path
            .file_name()
            .with_context(|| format!("--output {} names no file", path.display()))?
            .to_owned();
        name.push(".partial");
        let partial = path.with_file_name(name);
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Self::File {
            writer: std::io::BufWriter::new(file),
            partial,
            path: path.to_owned(),
        })
    }

    fn write(&mut self, text: &str) -> Result<()> {
        match self {
            Self::Stdout(w) => w
                .write_all(text.as_bytes())
                .context("writing standard output"),
            Self::File {
                writer, partial, ..
            } => writer
                .write_all(text.as_bytes())
                .with_context(|| format!("writing {}", partial.display())),
        }
    }

    /// Flushes, and puts a file in place.
    fn finish(self) -> Result<()> {
        match self {
            Self::Stdout(mut w) => w.flush().context("writing standard output"),
            Self::File {
                writer,
                partial,
                path,
            } => {
                let file = writer
                    .into_inner()
                    .map_err(|e| anyhow!("writing {}: {}", partial.display(), e.error()))?;
                file.sync_all()
                    .with_context(|| format!("writing {}", partial.display()))?;
                std::fs::rename(&partial, &path).with_context(|| {
                    format!("renaming {} to {}", partial.display(), path.display())
                })
            }
        }
    }

    /// Removes what a failed export wrote to a file.
    fn abandon(self) {
        if let Self::File { partial, .. } = self {
            let _ = std::fs::remove_file(partial);
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Stdout(_) => "standard output".into(),
            Self::File { path, .. } => path.display().to_string(),
        }
    }
}

/// Runs the export.
pub fn run(args: ExportArgs) -> Result<()> {
    let key = std::env::var(READ_KEY_ENV).ok();
    let receiver = Receiver::new(
        "--url",
        "https://acr-webhook.example.com",
        &args.url,
        key,
        "read key",
    )?;
    if !receiver.has_key() {
        bail!("no read key: set {READ_KEY_ENV} to one of the receiver's read_keys");
    }
    if receiver.uri.query().is_some() {
        bail!("--url takes the receiver's address without a query string: the filters are options (--since, --image, ...) and the read key comes from {READ_KEY_ENV}");
    }
    let query = EventQuery {
        image: args.image,
        tag: args.tag,
        action: args.action,
        since: args.since,
        until: args.until,
        limit: MAX_LIMIT,
        continuation: None,
    };
    let mut sink = Sink::open(args.output.as_deref())?;
    let written = export(&receiver, query, args.format, &mut sink);
    let count = match written {
        Ok(count) => count,
        Err(e) => {
            let what = match &sink {
                Sink::Stdout(_) => "the output above is incomplete",
                Sink::File { .. } => "nothing was written",
            };
            sink.abandon();
            return Err(e.context(format!("export failed ({what})")));
        }
    };
    let to = sink.describe();
    if let Err(e) = sink.finish() {
        return Err(e.context("export failed"));
    }
    eprintln!("exported {count} events from {} to {to}", receiver.shown);
    Ok(())
}

/// Writes every event of `query`; the number written.
fn export(
    receiver: &Receiver,
    mut query: EventQuery,
    format: Format,
    sink: &mut Sink,
) -> Result<u64> {
    let host = NativeHost::new();
    let terminal = std::io::stderr().is_terminal();
    if format == Format::Csv {
        sink.write(&crate::csv::header())?;
    }
    let mut count: u64 = 0;
    for pages in 1u64.. {
        let page = read_page(&host, receiver, &query)?;
        let events = page
            .get("events")
            .and_then(Value::as_array)
            .with_context(|| format!("{} answered a page without `events`", receiver.shown))?;
        for event in events {
            if !event.is_object() {
                bail!(
                    "{} listed an event that is not a JSON object",
                    receiver.shown
                );
            }
            match format {
                Format::Csv => sink.write(&crate::csv::row(event))?,
                Format::Ndjson => sink.write(&format!("{event}\n"))?,
            }
        }
        count += events.len() as u64;
        let next = page.get("continuation").and_then(Value::as_str);
        if terminal {
            eprint!("\rexport: {count} events so far");
            if next.is_none() {
                eprintln!();
            }
        } else if next.is_some() && pages % PAGES_PER_LINE == 0 {
            eprintln!("export: {count} events so far");
        }
        match next {
            None => break,
            Some(next) if events.is_empty() || query.continuation.as_deref() == Some(next) => {
                bail!(
                    "{} answered a page that does not move on (stopped after {count} events)",
                    receiver.shown
                )
            }
            Some(next) => query.continuation = Some(next.to_owned()),
        }
    }
    Ok(count)
}

/// One page of `GET /events`, tried again while the receiver is busy or unreachable.
fn read_page(host: &NativeHost, receiver: &Receiver, query: &EventQuery) -> Result<Value> {
    let uri = events_uri(receiver, query)?;
    let mut attempt = 1;
    loop {
        let request = receiver.request(http::Request::get(uri.clone()), Vec::new())?;
        let (wait, problem) = match host.send_blocking(request, PAGE_TIMEOUT) {
            Ok(response) if response.status().is_success() => {
                return serde_json::from_slice(response.body()).with_context(|| {
                    format!(
                        "{} answered something that is not a page of events: {}",
                        receiver.shown,
                        receiver.describe_answer(response.body())
                    )
                });
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let answer = receiver.describe_answer(response.body());
                let hint = match status {
                    401 => format!(" (is {READ_KEY_ENV} one of the receiver's read_keys?)"),
                    404 => " (is --url the receiver's address?)".to_owned(),
                    _ => String::new(),
                };
                let problem = format!("{} answered {status}: {answer}{hint}", receiver.shown);
                if status != 503 {
                    bail!(problem);
                }
                let wait = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(1), Duration::from_secs);
                (wait, problem)
            }
            Err(e) => (
                Duration::from_secs(1),
                format!(
                    "{} could not be reached: {}",
                    receiver.shown,
                    receiver.redact(&e.message, SHOWN_ANSWER_CHARS)
                ),
            ),
        };
        if attempt == ATTEMPTS {
            bail!("{problem} (tried {ATTEMPTS} times)");
        }
        eprintln!("export: {problem}; trying again");
        std::thread::sleep(wait.min(MAX_WAIT));
        attempt += 1;
    }
}

/// `GET {url}/events?{query}`.
fn events_uri(receiver: &Receiver, query: &EventQuery) -> Result<Uri> {
    let base = &receiver.uri;
    let path = base.path().trim_end_matches('/');
    let path = if path.ends_with("/events") {
        path.to_owned()
    } else {
        format!("{path}/events")
    };
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let scheme = base.scheme_str().unwrap_or("https");
    format!("{scheme}://{authority}{path}?{}", query.to_query_string())
        .parse()
        .ok()
        .context("the filters do not make a usable URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(url: &str) -> Receiver {
        Receiver::new("--url", "x", url, Some("k".into()), "read key").unwrap()
    }

    #[test]
    fn the_events_route_is_added_once_and_the_filters_encoded() {
        let query = EventQuery {
            image: Some("team/a b".into()),
            tag: Some("=1+1".into()),
            limit: MAX_LIMIT,
            ..EventQuery::default()
        };
        for (url, want) in [
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000/events?"),
            ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/events?"),
            (
                "https://h.example/audit/",
                "https://h.example/audit/events?",
            ),
            (
                "https://h.example/audit/events",
                "https://h.example/audit/events?",
            ),
        ] {
            let uri = events_uri(&receiver(url), &query).unwrap().to_string();
            assert_eq!(
                uri,
                format!("{want}image=team%2Fa%20b&tag=%3D1%2B1&limit=100"),
                "{url}"
            );
        }
    }
}
