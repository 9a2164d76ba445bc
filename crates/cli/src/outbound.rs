//! The `allowed_outbound_hosts` allow-list, with Spin's semantics.
//!
//! An entry is `scheme://host[:port]`, optionally with a trailing `/`:
//! - scheme: `http`, `https`, or `*` for any;
//! - host: a name or IP address (`[::1]` for IPv6), `*` for any host, or `*.example.com`
//!   for any subdomain of `example.com` (not `example.com` itself);
//! - port: a number, a range `8000..8010` (end exclusive, as in Spin), or `*` for any. When
//!   omitted it is the scheme's default port (80 for `http`, 443 for `https`); with scheme `*`
//!   a port must be given.
//!
//! A path, query, fragment or user info in an entry is an error. A request is allowed when one
//! entry matches its scheme, host and port (default ports filled in the same way).

use anyhow::{bail, Context, Result};
use std::fmt;

/// The default port of `http` destinations when none is written.
pub const HTTP_DEFAULT_PORT: u16 = 80;
/// The default port of `https` destinations when none is written.
pub const HTTPS_DEFAULT_PORT: u16 = 443;

/// Where an outbound request goes: what the allow-list is checked against and what the
/// refusal log line shows (never a path or query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Lower-case scheme, e.g. `https`.
    pub scheme: String,
    /// Lower-case host without IPv6 brackets.
    pub host: String,
    /// Explicit port, or the scheme's default.
    pub port: u16,
}

impl Destination {
    /// The destination of an absolute request URI. `None` when the URI has no scheme or
    /// host, or no port can be inferred for its scheme.
    pub fn from_uri(uri: &http::Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        let port = match uri.port_u16() {
            Some(port) => port,
            None => default_port(&scheme)?,
        };
        Some(Self { scheme, host, port })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// The default port for a scheme, if it has one.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(HTTP_DEFAULT_PORT),
        "https" => Some(HTTPS_DEFAULT_PORT),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    Subdomain(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// `start..end`, end exclusive.
    Range(u16, u16),
    Exact(u16),
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

impl AllowedHost {
    /// Parses one entry (already template-rendered).
    pub fn parse(entry: &str) -> Result<Self> {
        let entry = entry.trim();
        let Some((scheme, rest)) = entry.split_once("://") else {
            if entry == "*" {
                bail!("'*' is not a valid allowed outbound host; did you mean '*://*:*'?");
            }
            bail!("{entry:?} has no scheme (write e.g. 'https://{entry}')");
        };
        let scheme = scheme.to_ascii_lowercase();
        let scheme_pattern = match scheme.as_str() {
            "*" => SchemePattern::Any,
            "http" | "https" => SchemePattern::Exact(scheme.clone()),
            other => bail!("{entry:?}: unsupported scheme {other:?} (use http, https or *)"),
        };
        if rest.contains(['?', '#', '@']) {
            bail!("{entry:?} must be scheme://host[:port] without user info, query or fragment");
        }
        let authority = match rest.split_once('/') {
            Some((authority, "")) => authority,
            Some(_) => bail!("{entry:?} has a path, which allowed outbound hosts may not have"),
            None => rest,
        };
        let (host, port) = split_host_port(authority).with_context(|| format!("{entry:?}"))?;
        let host = parse_host(&host).with_context(|| format!("{entry:?}"))?;
        let port = match port {
            Some(port) => parse_port(port).with_context(|| format!("{entry:?}"))?,
            None => match default_port(&scheme) {
                Some(port) => PortPattern::Exact(port),
                None => bail!("{entry:?}: a port (or ':*') is required with scheme '*'"),
            },
        };
        Ok(Self {
            scheme: scheme_pattern,
            host,
            port,
        })
    }

    /// Whether this entry allows requests to `dest`.
    pub fn allows(&self, dest: &Destination) -> bool {
        let scheme_ok = match &self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Exact(s) => *s == dest.scheme,
        };
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomain(suffix) => {
                dest.host.len() > suffix.len() && dest.host.ends_with(suffix.as_str())
            }
            HostPattern::Exact(h) => *h == dest.host,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(start, end) => (start..end).contains(&dest.port),
            PortPattern::Exact(p) => p == dest.port,
        };
        scheme_ok && host_ok && port_ok
    }
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>)> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((v6, after)) = bracketed.split_once(']') else {
            bail!("unclosed '[' in IPv6 host");
        };
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .context("unexpected text after IPv6 host")?,
            ),
        };
        return Ok((format!("[{v6}]"), port));
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), Some(port)),
        None => (authority.to_string(), None),
    })
}

fn parse_host(host: &str) -> Result<HostPattern> {
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        bail!("the host is empty");
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>()
            .with_context(|| format!("invalid IPv6 address {v6:?}"))?;
        return Ok(HostPattern::Exact(v6.to_string()));
    }
    let (pattern, name) = match host.strip_prefix("*.") {
        Some(domain) => (HostPattern::Subdomain(format!(".{domain}")), domain),
        None => (HostPattern::Exact(host.clone()), host.as_str()),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        bail!("invalid host {host:?}");
    }
    Ok(pattern)
}

fn parse_port(port: &str) -> Result<PortPattern> {
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    if let Some((start, end)) = port.split_once("..") {
        let start: u16 = start
            .parse()
            .with_context(|| format!("invalid port range {port:?}"))?;
        let end: u16 = end
            .parse()
            .with_context(|| format!("invalid port range {port:?}"))?;
        if start >= end {
            bail!("empty port range {port:?}");
        }
        return Ok(PortPattern::Range(start, end));
    }
    port.parse()
        .map(PortPattern::Exact)
        .with_context(|| format!("invalid port {port:?}"))
}

/// The component's whole allow-list. Empty means no outbound request is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses every entry; the first bad one fails the whole list.
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Self> {
        let entries = entries
            .into_iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<_>>()?;
        Ok(Self { entries })
    }

    /// Builds a list from already parsed entries.
    pub fn from_entries(entries: Vec<AllowedHost>) -> Self {
        Self { entries }
    }

    /// Whether any entry allows `dest`.
    pub fn allows(&self, dest: &Destination) -> bool {
        self.entries.iter().any(|e| e.allows(dest))
    }

    /// Whether a request to `uri` is allowed; a URI without a usable destination is not.
    pub fn allows_uri(&self, uri: &http::Uri) -> bool {
        Destination::from_uri(uri).is_some_and(|d| self.allows(&d))
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(uri: &str) -> Destination {
        Destination::from_uri(&uri.parse().unwrap()).unwrap()
    }

    fn allows(entries: &[&str], uri: &str) -> bool {
        AllowedHosts::parse(entries).unwrap().allows(&dest(uri))
    }

    #[test]
    fn destination_fills_default_ports_and_drops_path() {
        let d = dest("https://Example.com/path?q=secret");
        assert_eq!(d.to_string(), "https://example.com:443");
        assert_eq!(dest("http://h/x").to_string(), "http://h:80");
        assert_eq!(
            dest("http://127.0.0.1:8099/").to_string(),
            "http://127.0.0.1:8099"
        );
        assert_eq!(dest("http://[::1]:8080/").to_string(), "http://[::1]:8080");
        assert!(Destination::from_uri(&"/relative".parse().unwrap()).is_none());
    }

    #[test]
    fn exact_scheme_host_port() {
        let list = ["http://127.0.0.1:8099"];
        assert!(allows(&list, "http://127.0.0.1:8099/hello.txt"));
        assert!(!allows(&list, "http://127.0.0.1:8098/"));
        assert!(!allows(&list, "https://127.0.0.1:8099/"));
        assert!(!allows(&list, "http://localhost:8099/"));
    }

    #[test]
    fn default_ports_on_both_sides() {
        assert!(allows(
            &["https://acct.documents.azure.com"],
            "https://acct.documents.azure.com/dbs"
        ));
        assert!(allows(
            &["https://acct.documents.azure.com"],
            "https://acct.documents.azure.com:443/"
        ));
        assert!(allows(
            &["https://acct.documents.azure.com:443/"],
            "https://acct.documents.azure.com/"
        ));
        assert!(!allows(
            &["https://acct.documents.azure.com"],
            "https://acct.documents.azure.com:8443/"
        ));
        assert!(allows(&["http://h"], "http://h:80/"));
        assert!(!allows(&["http://h"], "https://h/"));
    }

    #[test]
    fn host_is_case_insensitive() {
        assert!(allows(
            &["https://ACCT.Documents.Azure.com"],
            "https://acct.documents.azure.com/"
        ));
    }

    #[test]
    fn wildcards() {
        assert!(allows(&["*://*:*"], "http://anything:1234/"));
        assert!(allows(&["https://*"], "https://x.y/"));
        assert!(!allows(&["https://*"], "https://x.y:8443/"));
        assert!(allows(&["https://*.example.com"], "https://a.example.com/"));
        assert!(allows(
            &["https://*.example.com"],
            "https://a.b.example.com/"
        ));
        assert!(!allows(&["https://*.example.com"], "https://example.com/"));
        assert!(!allows(
            &["https://*.example.com"],
            "https://badexample.com/"
        ));
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1:9/"));
        assert!(allows(&["*://127.0.0.1:8080"], "https://127.0.0.1:8080/"));
        assert!(allows(
            &["http://localhost:8000..8002"],
            "http://localhost:8001/"
        ));
        assert!(!allows(
            &["http://localhost:8000..8002"],
            "http://localhost:8002/"
        ));
    }

    #[test]
    fn ipv6() {
        assert!(allows(&["http://[::1]:8080"], "http://[::1]:8080/"));
        assert!(!allows(&["http://[::1]:8080"], "http://[::2]:8080/"));
    }

    #[test]
    fn empty_list_allows_nothing() {
        let list = AllowedHosts::parse(Vec::<String>::new()).unwrap();
        assert!(list.is_empty());
        assert!(!list.allows(&dest("https://example.com/")));
        assert!(!list.allows_uri(&"/no-authority".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_errors() {
        for bad in [
            "*",
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://example.com?x=1",
            "https://user@example.com",
            "*://example.com",
            "https://",
            "https://exa mple.com",
            "https://example.com:http",
            "https://example.com:99999",
            "https://example.com:9..3",
            "http://[::1",
            "https://{{ endpoint }}",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
