//! The `route` of a `[[trigger.http]]`, matched the way Spin matches it.
//!
//! Two forms are supported: a wildcard (`/...` catches every path, `/api/...` catches `/api`
//! and everything below it) and an exact path (`/acr` matches `/acr` and `/acr/`). Spin's
//! `:param` segments are not supported and are rejected when the manifest is read.

use anyhow::{bail, Result};

/// The suffix that makes a route a wildcard.
const WILDCARD_SUFFIX: &str = "/...";

/// A parsed HTTP trigger route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Matches the prefix (without a trailing slash; empty for `/...`) and everything below it.
    Wildcard {
        /// The route as written in the manifest.
        raw: String,
        /// The path before `/...`, e.g. `/api` for `/api/...` and `""` for `/...`.
        prefix: String,
    },
    /// Matches this path only (a trailing slash on the request is ignored).
    Exact {
        /// The route as written in the manifest.
        raw: String,
        /// The path without a trailing slash (`/` stays `/`).
        path: String,
    },
}

/// What a matched request needs to know about the route, passed to the component in Spin's
/// `spin-*` request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The part of the path after the route's prefix (`spin-path-info`).
    pub path_info: String,
}

impl Route {
    /// Parses a route as written in `[[trigger.http]] route = "..."`.
    pub fn parse(raw: &str) -> Result<Self> {
        if !raw.starts_with('/') {
            bail!("route {raw:?} must start with '/'");
        }
        if raw.contains('?') || raw.contains('#') {
            bail!("route {raw:?} must be a path without query or fragment");
        }
        if raw.split('/').any(|seg| seg.starts_with(':')) {
            bail!("route {raw:?}: parameterised (':name') routes are not supported by this host");
        }
        if let Some(prefix) = raw.strip_suffix(WILDCARD_SUFFIX) {
            if prefix.contains("...") {
                bail!("route {raw:?}: '...' may only appear once, at the end");
            }
            return Ok(Route::Wildcard {
                raw: raw.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
            });
        }
        if raw.contains("...") {
            bail!("route {raw:?}: a wildcard route must end in '/...'");
        }
        let path = match raw.trim_end_matches('/') {
            "" => "/".to_string(),
            trimmed => trimmed.to_string(),
        };
        Ok(Route::Exact {
            raw: raw.to_string(),
            path,
        })
    }

    /// The route as written in the manifest (`spin-raw-component-route`).
    pub fn raw(&self) -> &str {
        match self {
            Route::Wildcard { raw, .. } | Route::Exact { raw, .. } => raw,
        }
    }

    /// The route without its wildcard suffix (`spin-component-route`).
    pub fn component_route(&self) -> &str {
        match self {
            Route::Wildcard { prefix, .. } => prefix,
            Route::Exact { path, .. } => path,
        }
    }

    /// Whether this route catches more than one path.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Route::Wildcard { .. })
    }

    /// Matches a request path (no query string). `None` means 404.
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        match self {
            Route::Wildcard { prefix, .. } => {
                let rest = path.strip_prefix(prefix.as_str())?;
                if rest.is_empty() || rest.starts_with('/') {
                    Some(RouteMatch {
                        path_info: rest.to_string(),
                    })
                } else {
                    None
                }
            }
            Route::Exact { path: route, .. } => {
                let trimmed = match path.strip_suffix('/') {
                    Some("") | None => path,
                    Some(trimmed) => trimmed,
                };
                (trimmed == route).then(|| RouteMatch {
                    path_info: String::new(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(route: &Route, path: &str) -> Option<String> {
        route.matches(path).map(|m| m.path_info)
    }

    #[test]
    fn catch_all_matches_everything() {
        let r = Route::parse("/...").unwrap();
        assert!(r.is_wildcard());
        assert_eq!(r.component_route(), "");
        assert_eq!(info(&r, "/").as_deref(), Some("/"));
        assert_eq!(info(&r, "/acr").as_deref(), Some("/acr"));
        assert_eq!(info(&r, "/a/b/c").as_deref(), Some("/a/b/c"));
    }

    #[test]
    fn prefixed_wildcard() {
        let r = Route::parse("/api/...").unwrap();
        assert_eq!(r.component_route(), "/api");
        assert_eq!(info(&r, "/api").as_deref(), Some(""));
        assert_eq!(info(&r, "/api/").as_deref(), Some("/"));
        assert_eq!(info(&r, "/api/x/y").as_deref(), Some("/x/y"));
        assert_eq!(info(&r, "/apix"), None);
        assert_eq!(info(&r, "/other"), None);
        assert_eq!(info(&r, "/"), None);
    }

    #[test]
    fn exact_route() {
        let r = Route::parse("/acr").unwrap();
        assert!(!r.is_wildcard());
        assert_eq!(info(&r, "/acr").as_deref(), Some(""));
        assert_eq!(info(&r, "/acr/").as_deref(), Some(""));
        assert_eq!(info(&r, "/acr/x"), None);
        assert_eq!(info(&r, "/ac"), None);
        assert_eq!(info(&r, "/"), None);
    }

    #[test]
    fn exact_root() {
        let r = Route::parse("/").unwrap();
        assert_eq!(info(&r, "/").as_deref(), Some(""));
        assert_eq!(info(&r, "/x"), None);
    }

    #[test]
    fn bad_routes() {
        assert!(Route::parse("acr").is_err());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/a...").is_err());
        assert!(Route::parse("/users/:id").is_err());
        assert!(Route::parse("/a?b").is_err());
    }
}
