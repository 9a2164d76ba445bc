//! The audit-trail page, embedded at build time: the files of `ui/` at the repository root,
//! gzip-compressed by `build.rs`, each with its route, content type and strong ETag.
//!
//! This crate is data only. The routes, conditional requests, content negotiation and
//! security headers are the core's (`acr_webhook_core::ui`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// One file of the page.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// The path it is served at (`/`, `/ui/app.js`, ...).
    pub route: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its strong `ETag`, quoted: the first 16 bytes of the SHA-256 of the uncompressed file,
    /// in hex.
    pub etag: &'static str,
    /// The file, gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: &'static [u8],
    /// The uncompressed size in bytes.
    pub size: usize,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file served at `route`, if any.
pub fn find(route: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.route == route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_there_and_compressed() {
        for route in ["/", "/ui/app.css", "/ui/app.js"] {
            let asset = find(route).unwrap();
            assert_eq!(&asset.gzip[..3], &[0x1f, 0x8b, 8], "{route}: gzip, deflate");
            assert!(asset.gzip.len() < asset.size, "{route}");
            assert_eq!(asset.etag.len(), 34);
        }
        assert!(find("/ui/").is_none());
        assert!(find("/ui/app.js.gz").is_none());
        assert!(find("/index.html").is_none());
    }

    /// The page puts event values in as text only, loads nothing from elsewhere, and has no
    /// inline script or style (which the Content-Security-Policy would block anyway).
    #[test]
    fn the_sources_use_no_html_sinks_and_nothing_external() {
        let package: String = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let ui = std::path::Path::new(&package).join("../../ui");
        let read = |f: &str| std::fs::read_to_string(ui.join(f)).unwrap();
        let js = read("app.js");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage",
            "document.cookie",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
        let html = read("index.html");
        for external in ["http://", "https://", "//cdn", "<style", "style="] {
            assert!(!html.contains(external), "index.html: {external}");
        }
        assert!(!read("app.css").contains("url("), "app.css loads something");
        // No inline event handler attribute (` onclick=`, ...).
        for (at, _) in html.match_indices(" on") {
            let name: String = html[at + 3..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            let next = html[at + 3 + name.len()..].chars().next();
            assert!(next != Some('='), "index.html: an inline handler on{name}");
        }
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(r#"<script src="/ui/app.js" defer></script>"#));
    }
}
