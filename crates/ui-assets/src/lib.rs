//! The audit-trail page, embedded at build time: the files of `ui/` at the repository root,
//! gzip-compressed by `build.rs`, each with its route, content type and strong ETag.
//!
//! This crate is data only. The routes, conditional requests, content negotiation and
//! security headers are the core's (`acr_webhook_core::page`).
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
        assert!(find("/index.html").is_none());
    }
}
