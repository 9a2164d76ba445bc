//! The document stored for each event: one flat camelCase JSON object per event, keyed by the
//! event's own id so that a redelivery maps to the same document.

use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::acr::{AcrEvent, ParsedEvent};
use crate::cosmos::{partition_key_header_for_str, PartitionKeyPath, PARTITION_KEY_UNDEFINED};
use crate::text::hex_lower;

/// The longest id Cosmos accepts (REST reference: 255 characters).
pub const MAX_ID_LEN: usize = 255;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// An Azure Container Registry webhook (`POST /acr`).
    Acr,
    /// A CNCF Distribution notification (`POST /distribution`).
    Distribution,
    /// An Azure Event Grid delivery (`POST /eventgrid`).
    EventGrid,
}

impl EventSource {
    /// The name stored in `source` (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acr => "acr",
            Self::Distribution => "distribution",
            Self::EventGrid => "eventgrid",
        }
    }
}

/// A top-level property of a document, as a partition key reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property<'a> {
    Text(Option<&'a str>),
    Integer(Option<i64>),
    /// A flag written only when set.
    Flag(bool),
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDocument {
    /// Document id: the event id, made safe for Cosmos, or derived from the content.
    pub id: String,
    /// The event id exactly as sent, when it differs from `id` (made safe) or is absent (`None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `push`, `delete`, ... (and `pull`, `mount` from Distribution when kept)
    pub action: String,
    /// The event's own time, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// When this receiver got it (RFC 3339, UTC, milliseconds).
    pub received_at: String,
    /// `request.host`: the registry's login server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_server: Option<String>,
    /// `target.repository`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `target.tag` (absent on deletes and pushes by digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `target.digest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `target.mediaType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// `target.size` (or `target.length` when only that is sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// `target.name` (chart events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `target.version` (chart events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `request.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `request.method`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_method: Option<String>,
    /// `request.useragent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Which sender delivered it.
    pub source: EventSource,
    /// SHA-256 (hex) of the event's content: [`content_hash`] of every field above but
    /// `id`, `receivedAt` and `source` (what this receiver adds), with the event id as sent.
    /// A create that finds the id taken compares it with the stored document's.
    pub content_hash: String,
    /// When the event's id was taken by a different event: that document's id. This
    /// document's id is then derived from it and the content ([`EventDocument::beside`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts_with: Option<String>,
    /// `true` on an event kept aside ([`EventDocument::kept_aside`]): its id and every id
    /// derived from it held other events.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conflict_ids_exhausted: bool,
    /// Whether `id` is the event's own (made safe), rather than derived from the content.
    #[serde(skip)]
    pub id_sent: bool,
}

impl EventDocument {
    /// Maps an ACR webhook event to its document; `received_at` is this receiver's clock.
    pub fn from_acr(parsed: &ParsedEvent, received_at: SystemTime) -> Self {
        Self::from_event(
            &parsed.event,
            parsed.action.as_str(),
            EventSource::Acr,
            received_at,
        )
    }

    /// Maps a registry event (in the ACR model, whoever sent it) to its document.
    pub fn from_event(
        event: &AcrEvent,
        action: &str,
        source: EventSource,
        received_at: SystemTime,
    ) -> Self {
        let target = event.target.clone().unwrap_or_default();
        let request = event.request.clone().unwrap_or_default();
        let sent_id = event.id.as_deref().filter(|id| !id.is_empty());
        let id = match sent_id {
            Some(id) => safe_id(id),
            None => derived_id(event),
        };
        let mut document = Self {
            event_id: match sent_id {
                Some(sent) if sent == id => None,
                other => other.map(str::to_owned),
            },
            id,
            action: action.to_owned(),
            timestamp: non_empty(event.timestamp.clone()),
            received_at: crate::time::received_at(received_at),
            login_server: non_empty(request.host),
            image: non_empty(target.repository),
            tag: non_empty(target.tag),
            digest: non_empty(target.digest),
            media_type: non_empty(target.media_type),
            size: target.size.or(target.length),
            name: non_empty(target.name),
            version: non_empty(target.version),
            request_id: non_empty(request.id),
            request_method: non_empty(request.method),
            user_agent: non_empty(request.user_agent),
            source,
            content_hash: String::new(),
            conflicts_with: None,
            conflict_ids_exhausted: false,
            id_sent: sent_id.is_some(),
        };
        document.content_hash = content_hash(&document, sent_id);
        document
    }

    /// The same event stored beside the document that holds its id with different content:
    /// a deterministic id derived from the taken id and this content (so a redelivery maps to
    /// it again), `eventId` kept (the id as sent), and `conflictsWith` naming the taken id.
    pub fn beside(&self) -> Self {
        let taken = &self.id;
        let suffix = hex_lower(&Sha256::digest(
            serde_json::json!([taken, self.content_hash])
                .to_string()
                .as_bytes(),
        ));
        Self {
            id: with_suffix(taken, &format!("~conflict-{}", &suffix[..32])),
            event_id: self
                .event_id
                .clone()
                .or_else(|| self.id_sent.then(|| taken.clone())),
            conflicts_with: Some(taken.clone()),
            ..self.clone()
        }
    }

    /// The event (`self`: its own document, not one [`beside`](Self::beside) another) kept
    /// aside once its id and every id derived from it hold other events: under
    /// `<id>~kept-<32 hex>`, an HMAC-SHA256 with `secret` (a server-side secret) of the id and
    /// the content. Deterministic, so a redelivery maps to it again, and not computable by a
    /// sender, so no sender can take it in advance as it can the derived ids (which anyone who
    /// knows the content can compute). `conflictsWith` names the event's own id, and
    /// `conflictIdsExhausted` marks it.
    pub fn kept_aside(&self, secret: &[u8]) -> Self {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(
            serde_json::json!(["acr-webhook/kept-aside/v1", self.id, self.content_hash])
                .to_string()
                .as_bytes(),
        );
        let suffix = hex_lower(&mac.finalize().into_bytes());
        Self {
            conflict_ids_exhausted: true,
            id: with_suffix(&self.id, &format!("~kept-{}", &suffix[..32])),
            ..self.beside()
        }
    }
}

/// `id` cut (at a character boundary) so that `id` + `suffix` fits in [`MAX_ID_LEN`], then
/// `suffix`.
fn with_suffix(id: &str, suffix: &str) -> String {
    let mut cut = id.len().min(MAX_ID_LEN - suffix.len());
    while !id.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &id[..cut])
}

/// SHA-256 (hex) over a canonical form of an event's content: a JSON array of a version tag,
/// the event id as sent, and every stored field of the event (`action` lower-cased as stored,
/// `timestamp` as an instant, so that `+00:00` and `Z`, or 7 and 9 fraction digits, of the
/// same time are one content). Excluded: what the receiver adds (`id`, `receivedAt`,
/// `source`, so one event sent as a webhook and through Event Grid is one content).
pub fn content_hash(document: &EventDocument, sent_id: Option<&str>) -> String {
    let d = document;
    let canonical = serde_json::json!([
        "acr-webhook/content/v1",
        sent_id,
        d.action,
        d.timestamp.as_deref().map(canonical_time),
        d.login_server,
        d.image,
        d.tag,
        d.digest,
        d.media_type,
        d.size,
        d.name,
        d.version,
        d.request_id,
        d.request_method,
        d.user_agent,
    ]);
    hex_lower(&Sha256::digest(canonical.to_string().as_bytes()))
}

/// An RFC 3339 time as one string per instant: UTC milliseconds, then the further fraction
/// digits without trailing zeros; a text that is not such a time, as sent.
fn canonical_time(text: &str) -> String {
    match crate::time::normalise_time(text) {
        Ok(millis) => {
            let further: String = text
                .split_once('.')
                .map(|(_, fraction)| {
                    fraction
                        .bytes()
                        .take_while(u8::is_ascii_digit)
                        .skip(3)
                        .map(char::from)
                        .collect()
                })
                .unwrap_or_default();
            format!("{millis} {}", further.trim_end_matches('0'))
        }
        Err(_) => format!("as sent {text}"),
    }
}

impl EventDocument {
    /// The `x-ms-documentdb-partitionkey` header for this document in a container partitioned
    /// by `path`, read from the document's own fields: the same value as `path.header_for` on
    /// the serialized document, without serializing it. Documents are flat (strings, integers
    /// and one flag), so a nested path or a property they do not have is undefined (`[{}]`).
    pub fn partition_key_header(&self, path: &PartitionKeyPath) -> String {
        match path
            .top_level_property()
            .and_then(|name| self.property(name))
        {
            Some(Property::Text(Some(text))) => partition_key_header_for_str(text),
            Some(Property::Integer(Some(n))) => format!("[{n}]"),
            Some(Property::Flag(true)) => "[true]".to_owned(),
            Some(Property::Text(None) | Property::Integer(None) | Property::Flag(false)) | None => {
                PARTITION_KEY_UNDEFINED.to_owned()
            }
        }
    }

    /// The top-level property `name` (its serialized, camelCase name); `None` when documents
    /// have no such property.
    fn property(&self, name: &str) -> Option<Property<'_>> {
        Some(match name {
            "id" => Property::Text(Some(&self.id)),
            "eventId" => Property::Text(Option::as_deref(&self.event_id)),
            "action" => Property::Text(Some(&self.action)),
            "timestamp" => Property::Text(Option::as_deref(&self.timestamp)),
            "receivedAt" => Property::Text(Some(&self.received_at)),
            "loginServer" => Property::Text(Option::as_deref(&self.login_server)),
            "image" => Property::Text(Option::as_deref(&self.image)),
            "tag" => Property::Text(Option::as_deref(&self.tag)),
            "digest" => Property::Text(Option::as_deref(&self.digest)),
            "mediaType" => Property::Text(Option::as_deref(&self.media_type)),
            "size" => Property::Integer(self.size),
            "name" => Property::Text(Option::as_deref(&self.name)),
            "version" => Property::Text(Option::as_deref(&self.version)),
            "requestId" => Property::Text(Option::as_deref(&self.request_id)),
            "requestMethod" => Property::Text(Option::as_deref(&self.request_method)),
            "userAgent" => Property::Text(Option::as_deref(&self.user_agent)),
            "source" => Property::Text(Some(self.source.as_str())),
            "contentHash" => Property::Text(Some(&self.content_hash)),
            "conflictsWith" => Property::Text(Option::as_deref(&self.conflicts_with)),
            "conflictIdsExhausted" => Property::Flag(self.conflict_ids_exhausted),
            _ => return None,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Makes an id acceptable to Cosmos, deterministically and without collisions: `%`, the
/// characters Cosmos forbids (`/ \ ? #`) and control characters are percent-encoded; an id
/// still longer than [`MAX_ID_LEN`] bytes keeps a prefix and gets a SHA-256 of the original.
/// An id that is already safe is returned unchanged.
pub fn safe_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        if escaped_by_safe_id(c) {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.len() <= MAX_ID_LEN && out == id {
        return out;
    }
    if out.len() > MAX_ID_LEN {
        let hash = hex_lower(&Sha256::digest(id.as_bytes()));
        let mut cut = MAX_ID_LEN - hash.len() - 1;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('~');
        out.push_str(&hash);
    }
    out
}

/// Characters [`safe_id`] escapes.
fn escaped_by_safe_id(c: char) -> bool {
    matches!(c, '%' | '/' | '\\' | '?' | '#') || c.is_control()
}

/// True when `id` has the form of a [`safe_id`] result (the read API takes such an id as it is): at most [`MAX_ID_LEN`] bytes, no raw
/// character safe_id escapes, and every `%` part of an upper-case `%XX` escape whose decoded
/// run consists of characters safe_id escapes. A shortened id (prefix, `~`, 64 hex digits)
/// may end its prefix in the middle of an escape, where safe_id cut it.
pub(crate) fn is_safe_id(id: &str) -> bool {
    if id.len() > MAX_ID_LEN {
        return false;
    }
    let (body, shortened) = match shortened_prefix(id) {
        Some(prefix) => (prefix, true),
        None => (id, false),
    };
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            let Some(c) = body[i..].chars().next() else {
                return false;
            };
            if escaped_by_safe_id(c) {
                return false;
            }
            i += c.len_utf8();
            continue;
        }
        // A run of escapes, decoded together (a control character may take several bytes).
        let mut run = Vec::new();
        while bytes.get(i) == Some(&b'%') {
            let high = bytes.get(i + 1).copied().and_then(upper_hex_value);
            let low = bytes.get(i + 2).copied().and_then(upper_hex_value);
            match (high, low) {
                (Some(h), Some(l)) => {
                    run.push(h << 4 | l);
                    i += 3;
                }
                // safe_id's cut can leave `%` or `%X` at the very end of the prefix.
                _ if shortened
                    && (i + 1 == bytes.len() || (i + 2 == bytes.len() && high.is_some())) =>
                {
                    i = bytes.len();
                }
                _ => return false,
            }
        }
        let text = match std::str::from_utf8(&run) {
            Ok(text) => text,
            // The cut can also fall between the escapes of one multi-byte character.
            Err(e) if shortened && i == bytes.len() && e.error_len().is_none() => {
                match std::str::from_utf8(&run[..e.valid_up_to()]) {
                    Ok(text) => text,
                    Err(_) => return false,
                }
            }
            Err(_) => return false,
        };
        if !text.chars().all(escaped_by_safe_id) {
            return false;
        }
    }
    true
}

fn upper_hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The prefix of an id shortened by [`safe_id`] (`prefix~<64 lower-case hex>`), if `id` has
/// that form.
fn shortened_prefix(id: &str) -> Option<&str> {
    let split = id.len().checked_sub(65)?;
    let (prefix, tail) = (id.get(..split)?, id.get(split..)?);
    let hash = tail.strip_prefix('~')?;
    (prefix.len() <= MAX_ID_LEN - 65
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(prefix)
}

/// An id for an event that has none: a SHA-256 over every field the event carries, in a fixed
/// order, so the same event delivered twice gets the same id.
pub fn derived_id(event: &AcrEvent) -> String {
    let t = event.target.clone().unwrap_or_default();
    let r = event.request.clone().unwrap_or_default();
    // The action lower-cased, as it is stored (`PUSH` is `push`).
    let canonical = serde_json::json!([
        event.action.as_deref().map(str::to_ascii_lowercase),
        event.timestamp,
        [
            t.media_type,
            t.size,
            t.digest,
            t.length,
            t.repository,
            t.tag,
            t.name,
            t.version
        ],
        [r.id, r.host, r.method, r.user_agent],
    ]);
    format!(
        "sha256-{}",
        hex_lower(&Sha256::digest(canonical.to_string().as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acr::parse_event;
    use std::time::{Duration, UNIX_EPOCH};

    fn doc(body: &str) -> EventDocument {
        EventDocument::from_acr(
            &parse_event(body.as_bytes()).unwrap(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        )
    }

    #[test]
    fn push_maps_every_field() {
        let d = doc(
            r#"{"id":"e1","timestamp":"2023-11-17T16:52:01.343145347Z","action":"push",
            "target":{"mediaType":"m","size":524,"digest":"sha256:ab","length":524,"repository":"hello-world","tag":"v1"},
            "request":{"id":"r1","host":"reg.azurecr.io","method":"PUT","useragent":"docker/1"}}"#,
        );
        let mut json = serde_json::to_value(&d).unwrap();
        let hash = json.as_object_mut().unwrap().remove("contentHash").unwrap();
        assert_eq!(hash, d.content_hash.as_str());
        assert!(
            d.content_hash.len() == 64 && d.content_hash.bytes().all(|b| b.is_ascii_hexdigit())
        );
        assert_eq!(
            json,
            serde_json::json!({
                "id": "e1", "action": "push", "timestamp": "2023-11-17T16:52:01.343145347Z",
                "receivedAt": "2023-11-14T22:13:20.123Z", "loginServer": "reg.azurecr.io",
                "image": "hello-world", "tag": "v1", "digest": "sha256:ab", "mediaType": "m",
                "size": 524, "requestId": "r1", "requestMethod": "PUT", "userAgent": "docker/1",
                "source": "acr"
            })
        );
    }

    fn full_document() -> EventDocument {
        let mut d = doc(
            r#"{"id":"a/b","timestamp":"2023-11-17T16:52:01Z","action":"chart_push",
            "target":{"mediaType":"m","size":-524,"digest":"sha256:ab","repository":"héllo \"w\\😀",
            "tag":"v1","name":"n","version":"1.0"},
            "request":{"id":"r1","host":"reg.azurecr.io","method":"PUT","useragent":"docker/1"}}"#,
        );
        d.source = EventSource::EventGrid;
        d.conflicts_with = Some("other".into());
        d
    }

    /// The partition key read from the fields is the one read from the serialized document,
    /// for every property a document can have (present and absent) and for other paths.
    #[test]
    fn partition_key_from_fields_equals_the_serialized_document() {
        let mut full = full_document();
        full.conflict_ids_exhausted = true;
        let sparse = doc(r#"{"action":"push"}"#);
        let full_value = serde_json::to_value(&full).unwrap();
        let names: Vec<String> = full_value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            names.len(),
            20,
            "every field of the full document is present"
        );
        for document in [&full, &sparse] {
            let value = serde_json::to_value(document).unwrap();
            for name in &names {
                let path = PartitionKeyPath::parse(&format!("/{name}")).unwrap();
                assert_eq!(
                    document.partition_key_header(&path),
                    path.header_for(&value),
                    "{path:?}"
                );
            }
            for other in ["/nope", "/image/x", "/id/x", "/nope/x", "/Image"] {
                let path = PartitionKeyPath::parse(other).unwrap();
                assert_eq!(
                    document.partition_key_header(&path),
                    path.header_for(&value),
                    "{other}"
                );
                assert_eq!(
                    document.partition_key_header(&path),
                    PARTITION_KEY_UNDEFINED
                );
            }
        }
        let image = PartitionKeyPath::parse("/image").unwrap();
        assert_eq!(
            full.partition_key_header(&image),
            r#"["h\u00e9llo \"w\\\ud83d\ude00"]"#
        );
        assert_eq!(sparse.partition_key_header(&image), PARTITION_KEY_UNDEFINED);
        let size = PartitionKeyPath::parse("/size").unwrap();
        assert_eq!(full.partition_key_header(&size), "[-524]");
    }

    #[test]
    fn source_names_are_the_serialized_ones() {
        for source in [
            EventSource::Acr,
            EventSource::Distribution,
            EventSource::EventGrid,
        ] {
            assert_eq!(
                serde_json::to_value(source).unwrap(),
                serde_json::Value::from(source.as_str())
            );
        }
    }

    #[test]
    fn safe_ids() {
        assert_eq!(safe_id("cb8c3971-9adc-488b"), "cb8c3971-9adc-488b");
        assert_eq!(safe_id("a/b\\c?d#e%f"), "a%2Fb%5Cc%3Fd%23e%25f");
        assert_ne!(
            safe_id("a/b"),
            safe_id("a%2Fb"),
            "no collision with a pre-escaped id"
        );
        let long = "x".repeat(300);
        let s = safe_id(&long);
        assert_eq!(s.len(), MAX_ID_LEN);
        assert_eq!(s, safe_id(&long), "deterministic");
        assert_ne!(s, safe_id(&"x".repeat(301)));
        let unicode = "é".repeat(200);
        assert!(safe_id(&unicode).len() <= MAX_ID_LEN);
        let exactly = "y".repeat(MAX_ID_LEN);
        assert_eq!(safe_id(&exactly), exactly);
    }

    #[test]
    fn unsafe_id_keeps_the_original_as_event_id() {
        let d = doc(r#"{"id":"a/b","action":"push"}"#);
        assert_eq!(d.id, "a%2Fb");
        assert_eq!(d.event_id.as_deref(), Some("a/b"));
    }

    #[test]
    fn missing_id_is_derived_deterministically() {
        let a = doc(r#"{"action":"push","target":{"repository":"r","tag":"1"}}"#);
        let b = doc(r#"{"target":{"tag":"1","repository":"r"},"action":"push","extra":1}"#);
        let c = doc(r#"{"action":"push","target":{"repository":"r","tag":"2"}}"#);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert!(a.id.starts_with("sha256-"));
        assert_eq!(
            doc(r#"{"id":"","action":"push","target":{"repository":"r","tag":"1"}}"#).id,
            a.id
        );
    }

    #[test]
    fn length_stands_in_for_missing_size_and_empty_tag_is_absent() {
        let d = doc(r#"{"id":"x","action":"push","target":{"length":7,"tag":""}}"#);
        assert_eq!(d.size, Some(7));
        assert_eq!(d.tag, None);
    }

    #[test]
    fn the_content_hash_is_the_event_s_content() {
        let a = doc(
            r#"{"id":"e","timestamp":"2019-03-12T22:16:31.0087496+00:00","action":"push","target":{"repository":"r","digest":"sha256:1"}}"#,
        );
        // The same instant written otherwise, received later, by another sender, `PUSH`.
        let b = EventDocument::from_event(
            &parse_event(br#"{"id":"e","timestamp":"2019-03-12T15:16:31.008749600-07:00","action":"PUSH","target":{"repository":"r","digest":"sha256:1"}}"#).unwrap().event,
            "push",
            EventSource::EventGrid,
            UNIX_EPOCH + Duration::from_secs(2_000_000_000),
        );
        assert_eq!(a.content_hash, b.content_hash);
        for other in [
            r#"{"id":"e","timestamp":"2019-03-12T22:16:31.0087497Z","action":"push","target":{"repository":"r","digest":"sha256:1"}}"#,
            r#"{"id":"e","timestamp":"2019-03-12T22:16:31.0087496Z","action":"delete","target":{"repository":"r","digest":"sha256:1"}}"#,
            r#"{"id":"e","timestamp":"2019-03-12T22:16:31.0087496Z","action":"push","target":{"repository":"r","digest":"sha256:2"}}"#,
            r#"{"id":"f","timestamp":"2019-03-12T22:16:31.0087496Z","action":"push","target":{"repository":"r","digest":"sha256:1"}}"#,
            r#"{"id":"e","timestamp":"yesterday","action":"push","target":{"repository":"r","digest":"sha256:1"}}"#,
        ] {
            assert_ne!(doc(other).content_hash, a.content_hash, "{other}");
        }
    }

    #[test]
    fn beside_is_deterministic_keeps_the_event_id_and_fits() {
        let a = doc(r#"{"id":"e1","action":"push","target":{"digest":"sha256:1"}}"#);
        let b = doc(r#"{"id":"e1","action":"push","target":{"digest":"sha256:2"}}"#);
        let (a2, b2) = (a.beside(), b.beside());
        assert_eq!(a2, a.beside());
        assert_ne!(a2.id, b2.id);
        assert!(a2.id.starts_with("e1~conflict-"), "{}", a2.id);
        assert_eq!(a2.event_id.as_deref(), Some("e1"));
        assert_eq!(a2.conflicts_with.as_deref(), Some("e1"));
        assert_eq!(a2.content_hash, a.content_hash);
        assert_eq!(safe_id(&a2.id), a2.id);
        let long = doc(&format!(
            r#"{{"id":"{}","action":"push"}}"#,
            "é".repeat(200)
        ));
        let beside = long.beside();
        assert!(beside.id.len() <= MAX_ID_LEN);
        assert_eq!(beside.event_id.as_deref(), Some("é".repeat(200).as_str()));
        // An event without id: no eventId to keep.
        let derived = doc(r#"{"action":"push","target":{"digest":"sha256:1"}}"#).beside();
        assert_eq!(derived.event_id, None);
        let value = serde_json::to_value(&a2).unwrap();
        assert_eq!(value["conflictsWith"], "e1");
        assert!(value.get("idSent").is_none());
        assert!(value.get("conflictIdsExhausted").is_none());
    }

    #[test]
    fn kept_aside_depends_on_the_secret_and_the_content_and_is_marked() {
        let a = doc(r#"{"id":"e1","action":"push","target":{"digest":"sha256:1"}}"#);
        let b = doc(r#"{"id":"e1","action":"push","target":{"digest":"sha256:2"}}"#);
        let kept = a.kept_aside(b"secret one");
        assert_eq!(kept, a.kept_aside(b"secret one"));
        assert_ne!(kept.id, a.kept_aside(b"secret two").id);
        assert_ne!(kept.id, b.kept_aside(b"secret one").id);
        assert!(kept.id.starts_with("e1~kept-"), "{}", kept.id);
        assert_eq!(kept.id.len(), "e1~kept-".len() + 32);
        assert_eq!(kept.conflicts_with.as_deref(), Some("e1"));
        assert_eq!(kept.event_id.as_deref(), Some("e1"));
        assert_eq!(kept.content_hash, a.content_hash);
        assert_eq!(safe_id(&kept.id), kept.id);
        let value = serde_json::to_value(&kept).unwrap();
        assert_eq!(value["conflictIdsExhausted"], true);
        let long = doc(&format!(
            r#"{{"id":"{}","action":"push"}}"#,
            "é".repeat(200)
        ));
        assert!(long.kept_aside(b"s").id.len() <= MAX_ID_LEN);
    }
}
