//! CNCF Distribution (registry v2) notifications: the `{"events": [...]}` envelope that a
//! `docker-registry`/`distribution` endpoint POSTs, parsed into classified events. Each event
//! is read into the same [`AcrEvent`] an ACR webhook gives: Distribution's event has the same
//! `id`, `timestamp`, `action`, `target` and `request`; what only Distribution sends (`actor`,
//! `source`, `target.url`, `target.fromRepository`, `request.addr`) is not stored and is
//! skipped like any unknown field.
//!
//! Sources: `distribution/distribution` `notifications/event.go` and `notifications/bridge.go`
//! (which event carries which target fields), `docs/content/about/notifications.md`, and the
//! captures in `tests/fixtures/distribution/` (registry 2.8.2). Every field is optional,
//! unknown fields are ignored, sizes are 64-bit.
//!
//! Errors are for the envelope only (content type, JSON, shape, size). An event this receiver
//! cannot use (a missing action, or one that is not a short token) is not an error: it is
//! classified [`DistributionAction::Other`] and [`should_store`] says no, because Distribution
//! retries a non-2xx answer until it succeeds and one odd event must not block its queue
//! forever. An action that is a short token but not one of the four known ones is
//! [`DistributionAction::Unknown`] and stored (as sent, lower-cased), so a future action is
//! not lost.

use crate::acr::{action_token, AcrAction, AcrEvent, ParsedEvent, Target};
use crate::json::{json_fields, Capped};
use crate::text::{printable, printable_n};

/// Envelope media type sent by Distribution up to 2.8.x.
pub const MEDIA_TYPE_V1: &str = "application/vnd.docker.distribution.events.v1+json";
/// Envelope media type sent by Distribution 3.x.
pub const MEDIA_TYPE_V2: &str = "application/vnd.docker.distribution.events.v2+json";
/// Plain JSON, also accepted (as is an absent `Content-Type`).
pub const MEDIA_TYPE_JSON: &str = "application/json";

/// The most events accepted in one envelope. Distribution 3.x sends one event per envelope and
/// the 2.8 captures here carry one too; at about 1 KiB per event as Distribution marshals them,
/// the 1 MiB body limit already ends near this number.
pub const MAX_EVENTS: usize = 1000;

/// Why a body is not a Distribution envelope. Messages name the problem and are bounded; they
/// never echo more than a short piece of the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistributionError {
    /// A `Content-Type` that is neither a Distribution events type nor JSON.
    #[error("unsupported content type `{0}` (expected application/vnd.docker.distribution.events.v1+json, …v2+json or application/json)")]
    UnsupportedContentType(String),
    /// A `charset` parameter other than UTF-8 (JSON is UTF-8).
    #[error("unsupported charset `{0}` (JSON must be UTF-8)")]
    UnsupportedCharset(String),
    /// Not JSON at all (or not UTF-8, or truncated, or nested too deep).
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not `{"events": [...]}` with event objects in it.
    #[error("the body is not a Distribution envelope: {0}")]
    NotAnEnvelope(String),
    /// More events than [`MAX_EVENTS`].
    #[error("{count} events in one envelope (at most {max} are accepted)")]
    TooManyEvents {
        /// How many the envelope holds.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl DistributionError {
    /// The HTTP status this error answers with: 415 for the content type and charset, 413 for
    /// too many events, 400 otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::UnsupportedContentType(_) | Self::UnsupportedCharset(_) => {
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::TooManyEvents { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidJson(_) | Self::NotAnEnvelope(_) => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// A Distribution action (`notifications/event.go`). There is no `ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionAction {
    /// A manifest or blob was pushed.
    Push,
    /// A manifest or blob was pulled.
    Pull,
    /// A blob was mounted from another repository.
    Mount,
    /// A manifest, blob, tag or repository was deleted.
    Delete,
    /// Another action that is a short token (see [`crate::acr::Action::parse`]): stored as
    /// sent (lower-cased), like a push, unless its target is a blob.
    Unknown,
    /// Missing, empty or not a short token: never stored.
    Other,
}

impl DistributionAction {
    /// Classifies a wire name, ignoring ASCII case (Distribution sends lower case).
    pub fn from_wire(name: Option<&str>) -> Self {
        let Some(name) = name else {
            return Self::Other;
        };
        match name.to_ascii_lowercase().as_str() {
            "push" => Self::Push,
            "pull" => Self::Pull,
            "mount" => Self::Mount,
            "delete" => Self::Delete,
            _ if action_token(name).is_some() => Self::Unknown,
            _ => Self::Other,
        }
    }

    /// The ACR action the same registry operation has: `push`→`push`, `delete`→`delete`.
    /// ACR has no pull or mount event, so those (and [`Self::Other`]) have none.
    pub fn acr_action(self) -> Option<AcrAction> {
        match self {
            Self::Push => Some(AcrAction::Push),
            Self::Delete => Some(AcrAction::Delete),
            Self::Pull | Self::Mount | Self::Unknown | Self::Other => None,
        }
    }
}

/// What an event's target is, from its media type and, for deletes, its shape
/// (`notifications/bridge.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A manifest (its media type is a manifest or index type; see [`is_manifest_media_type`]).
    Manifest,
    /// A blob (layer or config): a media type that is not a manifest type.
    Blob,
    /// A delete carrying `digest` + `repository` and no media type. Distribution sends the same
    /// shape for `DELETE /v2/<name>/blobs/<digest>` (`BlobDeleted`), so a blob deleted through
    /// the API is indistinguishable from a manifest delete and lands here too.
    ManifestDelete,
    /// A delete carrying `repository` + `tag` and no digest (`TagDeleted`).
    TagDelete,
    /// A delete carrying only `repository` (`RepoDeleted`).
    RepositoryDelete,
    /// None of the above: a push, pull or mount without a media type, or a delete without a
    /// repository.
    Unknown,
}

/// One Distribution event with its action and target classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionEvent {
    /// The action, classified; the raw one is `event.action`.
    pub action: DistributionAction,
    /// What the target is.
    pub kind: TargetKind,
    /// The event, as sent (the fields it shares with ACR's).
    pub event: AcrEvent,
}

impl DistributionEvent {
    /// Classifies one event.
    pub fn classify(event: AcrEvent) -> Self {
        let action = DistributionAction::from_wire(event.action.as_deref());
        let kind = target_kind(action, event.target.as_ref());
        Self {
            action,
            kind,
            event,
        }
    }

    /// The action stored in `action`: the known name, or the token as sent, lower-cased;
    /// `None` for [`DistributionAction::Other`].
    pub fn action_name(&self) -> Option<String> {
        match self.action {
            DistributionAction::Other => None,
            _ => self.event.action.as_deref().and_then(action_token),
        }
    }

    /// The event as an ACR event with a known action, for the events that have an ACR
    /// equivalent (`push`, `delete`); `None` for `pull`, `mount` and unknown actions.
    pub fn to_parsed(&self) -> Option<ParsedEvent> {
        Some(ParsedEvent {
            action: self.action.acr_action()?.into(),
            event: self.event.clone(),
        })
    }
}

/// Whether an event is stored. Manifest pushes and every delete of a manifest, tag or
/// repository are; pulls, mounts and blob events only with `keep_pulls_and_blobs`; an
/// unknown action (a short token) is, unless its target is a blob (then it follows
/// `keep_pulls_and_blobs` like every blob event); a missing or unusable action never.
pub fn should_store(event: &DistributionEvent, keep_pulls_and_blobs: bool) -> bool {
    match (event.action, event.kind) {
        (DistributionAction::Other, _) => false,
        (DistributionAction::Unknown, TargetKind::Blob) => keep_pulls_and_blobs,
        (DistributionAction::Unknown, _) => true,
        (DistributionAction::Pull | DistributionAction::Mount, _) => keep_pulls_and_blobs,
        (DistributionAction::Push, TargetKind::Manifest) => true,
        (DistributionAction::Push, _) => keep_pulls_and_blobs,
        (DistributionAction::Delete, TargetKind::Blob) => keep_pulls_and_blobs,
        (DistributionAction::Delete, _) => true,
    }
}

/// Whether a media type names a manifest: the Docker v2 manifest and manifest list, the OCI
/// manifest and index, the Docker schema 1 (signed) manifest, and any other
/// `…manifest….+json` type (e.g. `application/vnd.oci.artifact.manifest.v1+json`).
/// Parameters and case are ignored.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    const KNOWN: [&str; 6] = [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ];
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if KNOWN.contains(&essence.as_str()) {
        return true;
    }
    match essence
        .strip_suffix("+json")
        .and_then(|s| s.split_once('/'))
    {
        Some((_, subtype)) => subtype.split('.').any(|segment| segment == "manifest"),
        None => false,
    }
}

fn target_kind(action: DistributionAction, target: Option<&Target>) -> TargetKind {
    let present = |v: Option<&String>| v.is_some_and(|s| !s.is_empty());
    let Some(t) = target else {
        return TargetKind::Unknown;
    };
    if let Some(mt) = t.media_type.as_deref().filter(|mt| !mt.is_empty()) {
        return if is_manifest_media_type(mt) {
            if action == DistributionAction::Delete {
                TargetKind::ManifestDelete
            } else {
                TargetKind::Manifest
            }
        } else {
            TargetKind::Blob
        };
    }
    if action != DistributionAction::Delete || !present(t.repository.as_ref()) {
        return TargetKind::Unknown;
    }
    if present(t.digest.as_ref()) {
        TargetKind::ManifestDelete
    } else if present(t.tag.as_ref()) {
        TargetKind::TagDelete
    } else {
        TargetKind::RepositoryDelete
    }
}

/// `{"events": [...]}`.
#[derive(Default)]
struct Envelope {
    events: Option<Capped<AcrEvent, MAX_EVENTS>>,
}

json_fields!(Envelope { "events" => events: Objects });

/// Parses one Distribution POST: checks the `Content-Type` (the v1/v2 events types, JSON, or
/// none), then reads `{"events": [...]}` and classifies each event. An empty `events` array
/// gives an empty list; a body without `events` is not an envelope. A UTF-8 byte-order mark is
/// tolerated.
pub fn parse_envelope(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<DistributionEvent>, DistributionError> {
    match media_type_essence(content_type) {
        Ok(None) => {}
        Ok(Some(essence))
            if [MEDIA_TYPE_V1, MEDIA_TYPE_V2, MEDIA_TYPE_JSON].contains(&essence.as_str()) => {}
        Ok(Some(_)) => {
            return Err(DistributionError::UnsupportedContentType(printable(
                content_type.unwrap_or_default(),
            )))
        }
        Err(ContentTypeError::Malformed) => {
            return Err(DistributionError::UnsupportedContentType(printable(
                content_type.unwrap_or_default(),
            )))
        }
        Err(ContentTypeError::Charset(charset)) => {
            return Err(DistributionError::UnsupportedCharset(charset))
        }
    }
    let body = strip_bom(body);
    let mut envelope = Envelope::default();
    crate::json::read_object(body, &mut envelope).map_err(|e| match json_error(&e) {
        JsonErrorKind::Syntax(m) => DistributionError::InvalidJson(m),
        JsonErrorKind::Data(m) => DistributionError::NotAnEnvelope(m),
    })?;
    let events = envelope
        .events
        .ok_or_else(|| DistributionError::NotAnEnvelope("no `events` array".into()))?;
    if events.total > MAX_EVENTS {
        return Err(DistributionError::TooManyEvents {
            count: events.total,
            max: MAX_EVENTS,
        });
    }
    Ok(events
        .items
        .into_iter()
        .map(DistributionEvent::classify)
        .collect())
}

// ---------------------------------------------------------------------------------------
// Helpers shared with `eventgrid`.

/// Why a `Content-Type` value was refused.
pub(crate) enum ContentTypeError {
    /// Not `type/subtype`.
    Malformed,
    /// A charset other than UTF-8 (the value, bounded).
    Charset(String),
}

/// The lower-cased `type/subtype` of a `Content-Type`, or `None` when it is absent or blank.
/// A `charset` parameter must be UTF-8; other parameters are ignored.
pub(crate) fn media_type_essence(
    content_type: Option<&str>,
) -> Result<Option<String>, ContentTypeError> {
    let Some(value) = content_type.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let valid = essence.split_once('/').is_some_and(|(t, s)| {
        let token = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        token(t) && token(s)
    });
    if !valid {
        return Err(ContentTypeError::Malformed);
    }
    for param in parts {
        if let Some((name, charset)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("charset") {
                let charset = charset.trim().trim_matches('"');
                if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                    return Err(ContentTypeError::Charset(printable(charset)));
                }
            }
        }
    }
    Ok(Some(essence))
}

/// A `serde_json` error, sorted: syntax (not JSON) or data (JSON of the wrong shape).
pub(crate) enum JsonErrorKind {
    /// Syntax, truncation, recursion limit, invalid UTF-8.
    Syntax(String),
    /// Well-formed JSON of the wrong shape.
    Data(String),
}

pub(crate) fn json_error(e: &serde_json::Error) -> JsonErrorKind {
    use serde_json::error::Category;
    let message = printable_n(&e.to_string(), 200);
    match e.classify() {
        Category::Data => JsonErrorKind::Data(message),
        Category::Syntax | Category::Eof | Category::Io => JsonErrorKind::Syntax(message),
    }
}

pub(crate) fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSH: &[u8] = include_bytes!("../../../tests/fixtures/distribution/push.json");
    const PUSH_BLOB: &[u8] = include_bytes!("../../../tests/fixtures/distribution/push_blob.json");
    const PULL: &[u8] = include_bytes!("../../../tests/fixtures/distribution/pull.json");
    const DELETE: &[u8] = include_bytes!("../../../tests/fixtures/distribution/delete.json");
    const DELETE_TAG: &[u8] =
        include_bytes!("../../../tests/fixtures/distribution/delete_tag.json");
    const HEADERS: &[u8] =
        include_bytes!("../../../tests/fixtures/distribution/request_headers.json");

    fn one(body: &[u8]) -> DistributionEvent {
        let mut events = parse_envelope(Some(MEDIA_TYPE_V1), body).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn captures_are_classified() {
        let table = [
            (PUSH, DistributionAction::Push, TargetKind::Manifest, true),
            (PUSH_BLOB, DistributionAction::Push, TargetKind::Blob, false),
            (PULL, DistributionAction::Pull, TargetKind::Manifest, false),
            (
                DELETE,
                DistributionAction::Delete,
                TargetKind::ManifestDelete,
                true,
            ),
            (
                DELETE_TAG,
                DistributionAction::Delete,
                TargetKind::TagDelete,
                true,
            ),
        ];
        for (body, action, kind, stored) in table {
            let e = one(body);
            assert_eq!((e.action, e.kind), (action, kind), "{:?}", e.event.id);
            assert_eq!(should_store(&e, false), stored, "{:?}", e.event.id);
            assert!(should_store(&e, true), "{:?}", e.event.id);
        }
    }

    #[test]
    fn push_capture_maps_to_the_acr_model() {
        let e = one(PUSH);
        let parsed = e.to_parsed().unwrap();
        assert_eq!(parsed.action, AcrAction::Push);
        let a = parsed.event;
        assert_eq!(
            a.id.as_deref(),
            Some("38ef5387-9675-4f83-9c14-4ec81385675e")
        );
        assert_eq!(
            a.timestamp.as_deref(),
            Some("2026-11-25T15:32:32.355363588Z")
        );
        assert_eq!(a.action.as_deref(), Some("push"));
        let t = a.target.unwrap();
        assert_eq!(
            t.media_type.as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        assert_eq!((t.size, t.length), (Some(423), Some(423)));
        assert_eq!(t.repository.as_deref(), Some("hello-world"));
        assert_eq!(t.tag.as_deref(), Some("v1"));
        assert_eq!((t.name, t.version), (None, None));
        let r = a.request.unwrap();
        assert_eq!(r.host.as_deref(), Some("127.0.0.1:47501"));
        assert_eq!(r.method.as_deref(), Some("PUT"));
        assert_eq!(r.user_agent.as_deref(), Some("skopeo/1.9.3"));
    }

    #[test]
    fn deletes_map_to_acr_delete() {
        let manifest = one(DELETE).to_parsed().unwrap();
        assert_eq!(manifest.action, AcrAction::Delete);
        let t = manifest.event.target.unwrap();
        assert_eq!(
            t.digest.as_deref(),
            Some("sha256:edad62edb9a93f6fb7d5b86a10b781d0e20b5f8a47dce2e74e9aca286d109d82")
        );
        assert_eq!((t.media_type, t.tag), (None, None));

        let tag = one(DELETE_TAG).to_parsed().unwrap();
        assert_eq!(tag.action, AcrAction::Delete);
        let t = tag.event.target.unwrap();
        assert_eq!((t.tag.as_deref(), t.digest), (Some("v1"), None));
        // Two events of one registry request: same request id, different event ids.
        assert_eq!(
            manifest.event.request.unwrap().id,
            tag.event.request.unwrap().id
        );
        assert_ne!(manifest.event.id, tag.event.id);
    }

    #[test]
    fn pull_and_mount_have_no_acr_action() {
        assert_eq!(one(PULL).to_parsed(), None);
        assert_eq!(one(PULL).event.action.as_deref(), Some("pull"));
        let mount = br#"{"events":[{"action":"mount","target":{"mediaType":"application/octet-stream","digest":"sha256:1","repository":"b","fromRepository":"a"}}]}"#;
        let e = one(mount);
        assert_eq!(
            (e.action, e.kind),
            (DistributionAction::Mount, TargetKind::Blob)
        );
        assert_eq!(
            e.event.target.as_ref().unwrap().repository.as_deref(),
            Some("b")
        );
        assert_eq!(e.to_parsed(), None);
        assert!(!should_store(&e, false));
        assert!(should_store(&e, true));
    }

    #[test]
    fn action_mapping() {
        use DistributionAction::*;
        assert_eq!(Push.acr_action(), Some(AcrAction::Push));
        assert_eq!(Delete.acr_action(), Some(AcrAction::Delete));
        for a in [Pull, Mount, Unknown, Other] {
            assert_eq!(a.acr_action(), None);
        }
        assert_eq!(DistributionAction::from_wire(Some("ping")), Unknown);
        assert_eq!(DistributionAction::from_wire(Some("PUSH")), Push);
        assert_eq!(DistributionAction::from_wire(Some("Mount")), Mount);
        assert_eq!(DistributionAction::from_wire(Some("")), Other);
        assert_eq!(DistributionAction::from_wire(Some("a b")), Other);
        assert_eq!(DistributionAction::from_wire(Some(&"x".repeat(65))), Other);
        assert_eq!(DistributionAction::from_wire(None), Other);
    }

    #[test]
    fn delete_shapes() {
        let kind = |target: &str| {
            let body = format!(r#"{{"events":[{{"action":"delete","target":{target}}}]}}"#);
            one(body.as_bytes()).kind
        };
        assert_eq!(kind(r#"{"repository":"r"}"#), TargetKind::RepositoryDelete);
        assert_eq!(
            kind(r#"{"repository":"r","tag":"t"}"#),
            TargetKind::TagDelete
        );
        assert_eq!(
            kind(r#"{"repository":"r","digest":"sha256:1"}"#),
            TargetKind::ManifestDelete
        );
        assert_eq!(
            kind(r#"{"repository":"r","digest":"sha256:1","tag":"t"}"#),
            TargetKind::ManifestDelete
        );
        assert_eq!(
            kind(r#"{"repository":"r","tag":"","digest":""}"#),
            TargetKind::RepositoryDelete
        );
        assert_eq!(kind(r#"{"digest":"sha256:1"}"#), TargetKind::Unknown);
        assert_eq!(kind(r#"{}"#), TargetKind::Unknown);
        assert_eq!(kind("null"), TargetKind::Unknown);
        assert_eq!(
            kind(
                r#"{"repository":"r","mediaType":"application/octet-stream","digest":"sha256:1"}"#
            ),
            TargetKind::Blob
        );
        assert_eq!(
            kind(
                r#"{"repository":"r","mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1"}"#
            ),
            TargetKind::ManifestDelete
        );
        // Every delete is stored except a blob's.
        let body = br#"{"events":[{"action":"delete"}]}"#;
        assert!(should_store(&one(body), false));
    }

    #[test]
    fn manifest_media_types() {
        for mt in [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.artifact.manifest.v1+json",
            "Application/VND.OCI.Image.Manifest.v1+JSON; charset=utf-8",
        ] {
            assert!(is_manifest_media_type(mt), "{mt}");
        }
        for mt in [
            "application/octet-stream",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.cncf.helm.config.v1+json",
            "application/vnd.acr.helm.chart",
            "application/json",
            "manifest+json",
            "",
        ] {
            assert!(!is_manifest_media_type(mt), "{mt}");
        }
    }

    #[test]
    fn push_without_media_type_is_unknown_and_kept_only_on_request() {
        let e = one(br#"{"events":[{"action":"push","target":{"repository":"r","tag":"t"}}]}"#);
        assert_eq!(e.kind, TargetKind::Unknown);
        assert!(!should_store(&e, false));
        assert!(should_store(&e, true));
    }

    #[test]
    fn unknown_actions_are_stored_as_sent_unless_on_a_blob() {
        let body = br#"{"events":[
            {"action":"Retag","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"r"}},
            {"action":"scan.done","target":{"repository":"r","tag":"t"}},
            {"action":"copy","target":{"mediaType":"application/octet-stream","repository":"r"}}]}"#;
        let events = parse_envelope(None, body).unwrap();
        assert!(events
            .iter()
            .all(|e| e.action == DistributionAction::Unknown));
        let names: Vec<_> = events.iter().map(|e| e.action_name()).collect();
        assert_eq!(
            names,
            [
                Some("retag".into()),
                Some("scan.done".into()),
                Some("copy".into())
            ]
        );
        assert!(should_store(&events[0], false));
        assert!(should_store(&events[1], false));
        assert!(!should_store(&events[2], false), "a blob event");
        assert!(should_store(&events[2], true));
        assert_eq!(events[0].to_parsed(), None);
        let push = one(br#"{"events":[{"action":"PUSH","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json"}}]}"#);
        assert_eq!(push.action, DistributionAction::Push);
        assert_eq!(push.action_name().as_deref(), Some("push"));
    }

    #[test]
    fn missing_or_unusable_actions_are_never_stored() {
        let body = br#"{"events":[{"action":"a b"},{},{"action":null,"target":{"mediaType":"application/vnd.oci.image.manifest.v1+json"}}]}"#;
        let events = parse_envelope(None, body).unwrap();
        assert_eq!(events.len(), 3);
        for e in &events {
            assert_eq!(e.action, DistributionAction::Other);
            assert!(!should_store(e, true));
            assert_eq!(e.to_parsed(), None);
        }
    }

    #[test]
    fn content_types() {
        let ok = [
            None,
            Some(""),
            Some("  "),
            Some(MEDIA_TYPE_V1),
            Some(MEDIA_TYPE_V2),
            Some("application/json"),
            Some("Application/JSON; charset=UTF-8"),
            Some("application/vnd.docker.distribution.events.v2+json; charset=\"utf-8\""),
            Some("application/json;charset=utf8; foo=bar"),
        ];
        for ct in ok {
            assert_eq!(parse_envelope(ct, PUSH).unwrap().len(), 1, "{ct:?}");
        }
        for ct in [
            "text/plain",
            "application/vnd.docker.distribution.events.v3+json",
            "application/cloudevents+json",
            "application/x-www-form-urlencoded",
            "json",
            "/",
            "application/",
            "application/json extra",
        ] {
            assert!(
                matches!(
                    parse_envelope(Some(ct), PUSH),
                    Err(DistributionError::UnsupportedContentType(_))
                ),
                "{ct}"
            );
        }
        assert_eq!(
            parse_envelope(Some("application/json; charset=latin1"), PUSH),
            Err(DistributionError::UnsupportedCharset("latin1".into()))
        );
    }

    #[test]
    fn captured_request_headers_are_accepted() {
        let v: serde_json::Value = serde_json::from_slice(HEADERS).unwrap();
        let ct = v["headers"]["Content-Type"].as_str();
        assert_eq!(ct, Some(MEDIA_TYPE_V1));
        assert!(parse_envelope(ct, PUSH).is_ok());
    }

    #[test]
    fn envelope_errors() {
        use DistributionError::*;
        type Check = fn(&DistributionError) -> bool;
        let cases: [(&[u8], Check); 13] = [
            (b"", |e| matches!(e, InvalidJson(_))),
            (b"{", |e| matches!(e, InvalidJson(_))),
            (b"\xff\xfe", |e| matches!(e, InvalidJson(_))),
            (b"{\"events\":[]}garbage", |e| matches!(e, InvalidJson(_))),
            (b"[]", |e| matches!(e, NotAnEnvelope(_))),
            (b"null", |e| matches!(e, NotAnEnvelope(_))),
            (b"{}", |e| matches!(e, NotAnEnvelope(_))),
            (b"{\"events\":null}", |e| matches!(e, NotAnEnvelope(_))),
            (b"{\"events\":{}}", |e| matches!(e, NotAnEnvelope(_))),
            (b"{\"events\":[1]}", |e| matches!(e, NotAnEnvelope(_))),
            (b"{\"events\":[null]}", |e| matches!(e, NotAnEnvelope(_))),
            (b"{\"events\":[{\"target\":{\"size\":\"big\"}}]}", |e| {
                matches!(e, NotAnEnvelope(_))
            }),
            (b"{\"events\":[{\"id\":\"a\",\"id\":\"b\"}]}", |e| {
                matches!(e, NotAnEnvelope(_))
            }),
        ];
        for (body, check) in cases {
            let err = parse_envelope(None, body).unwrap_err();
            assert!(check(&err), "{:?}: {err:?}", String::from_utf8_lossy(body));
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        }
        // An ACR webhook body posted here by mistake is refused, not silently dropped.
        let acr = include_bytes!("../../../tests/fixtures/acr/push.json");
        assert!(matches!(parse_envelope(None, acr), Err(NotAnEnvelope(_))));
    }

    #[test]
    fn empty_envelope_and_bom_and_unknown_fields() {
        assert_eq!(parse_envelope(None, br#"{"events":[]}"#).unwrap(), vec![]);
        let body = b"\xEF\xBB\xBF{\"x\":1,\"events\":[{\"action\":\"push\",\"target\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"references\":[{\"digest\":\"sha256:1\"}],\"annotations\":{\"a\":\"b\"}},\"extra\":[[[]]]}]}";
        let e = one(body);
        assert_eq!(e.kind, TargetKind::Manifest);
    }

    #[test]
    fn too_many_events_are_refused_without_storing_them() {
        let body = |n: usize| {
            let mut s = String::from("{\"events\":[");
            for i in 0..n {
                if i > 0 {
                    s.push(',');
                }
                s.push_str("{\"action\":\"push\"}");
            }
            s.push_str("]}");
            s
        };
        assert_eq!(
            parse_envelope(None, body(MAX_EVENTS).as_bytes())
                .unwrap()
                .len(),
            MAX_EVENTS
        );
        let err = parse_envelope(None, body(MAX_EVENTS + 1).as_bytes()).unwrap_err();
        assert_eq!(
            err,
            DistributionError::TooManyEvents {
                count: MAX_EVENTS + 1,
                max: MAX_EVENTS
            }
        );
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        // Beyond the cap the elements are skipped, whatever they are.
        let mut huge = body(MAX_EVENTS);
        huge.truncate(huge.len() - 2);
        huge.push_str(",1,null,[[[]]],\"x\"]}");
        assert_eq!(
            parse_envelope(None, huge.as_bytes()),
            Err(DistributionError::TooManyEvents {
                count: MAX_EVENTS + 4,
                max: MAX_EVENTS
            })
        );
    }

    #[test]
    fn deep_nesting_neither_crashes_nor_recurses() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let body = format!(r#"{{"events":[{{"action":"push","x":{deep}}}]}}"#);
        assert_eq!(one(body.as_bytes()).action, DistributionAction::Push);
        let body = format!(r#"{{"events":[{{"action":"push","target":{deep}}}]}}"#);
        assert!(matches!(
            parse_envelope(None, body.as_bytes()),
            Err(DistributionError::NotAnEnvelope(_))
        ));
        let body = format!(
            r#"{{"events":[{{"action":"push","x":{}"#,
            "[".repeat(10_000)
        );
        assert!(matches!(
            parse_envelope(None, body.as_bytes()),
            Err(DistributionError::InvalidJson(_))
        ));
    }

    #[test]
    fn messages_are_bounded() {
        let ct = format!("text/{}", "a".repeat(1000));
        let err = parse_envelope(Some(&ct), PUSH).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
        let body = format!(r#"{{"events":[{{"id":{}}}]}}"#, "1".repeat(5000));
        let err = parse_envelope(None, body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.len() < 300, "{err}");
        let charset = format!("application/json; charset={}", "\u{7}x".repeat(100));
        let err = parse_envelope(Some(&charset), PUSH)
            .unwrap_err()
            .to_string();
        assert!(err.len() < 300 && !err.contains('\u{7}'), "{err}");
    }

    #[test]
    fn error_statuses() {
        assert_eq!(
            DistributionError::UnsupportedContentType("x".into()).status(),
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            DistributionError::UnsupportedCharset("x".into()).status(),
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    /// The envelope is an object: `[[event]]` (its one field given positionally, which serde's
    /// derive would otherwise take for `{"events": [event]}`) is not an envelope.
    /// The reader and serde's derived reader agree on every Distribution capture and its
    /// variants (every field given every JSON type, removed, repeated; truncations).
    #[test]
    fn agrees_with_the_derived_reader() {
        #[derive(serde::Deserialize)]
        struct EnvelopeRef {
            events: Option<
                crate::json::reference::Capped<
                    crate::json::reference::Object<AcrEvent>,
                    MAX_EVENTS,
                >,
            >,
        }
        let mut count = 0;
        for fixture in [PUSH, PUSH_BLOB, PULL, DELETE, DELETE_TAG] {
            for body in crate::json::differential::variants(fixture) {
                let mut envelope = Envelope::default();
                let new = crate::json::read_object(&body, &mut envelope)
                    .map(|()| envelope.events.map(|e| (e.items, e.total)));
                let old =
                    serde_json::from_slice::<crate::json::reference::Object<EnvelopeRef>>(&body)
                        .map(|o| {
                            o.0.events
                                .map(|e| (e.items.into_iter().map(|o| o.0).collect(), e.total))
                        });
                crate::json::differential::assert_agree(&body, new, old);
                count += 1;
            }
        }
        assert!(count > 1000, "{count}");
    }

    #[test]
    fn the_envelope_must_be_an_object() {
        let positional = br#"[[{"action":"push","id":"p1","target":{"repository":"r","digest":"sha256:1","mediaType":"application/vnd.docker.distribution.manifest.v2+json"}}]]"#;
        match parse_envelope(None, positional) {
            Err(DistributionError::NotAnEnvelope(message)) => {
                assert!(message.contains("expected a JSON object"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        for not_an_object in [&b"null"[..], b"1", b"\"events\""] {
            assert!(matches!(
                parse_envelope(None, not_an_object),
                Err(DistributionError::NotAnEnvelope(_))
            ));
        }
    }
}
