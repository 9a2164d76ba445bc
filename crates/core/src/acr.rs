//! Azure Container Registry webhook events, as in Microsoft's "Azure Container Registry webhook
//! reference" and the ARM `EventContent` model (the CNCF Distribution event): every field
//! optional, unknown fields ignored, sizes as 64-bit integers.

use crate::json::json_fields;
use crate::text::printable;

/// The actions ACR sends. `ping` comes from `az acr webhook ping` and the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrAction {
    /// An image manifest was pushed.
    Push,
    /// A manifest or repository was deleted.
    Delete,
    /// An image was quarantined (quarantine policy).
    Quarantine,
    /// A legacy Helm chart was pushed (`az acr helm push`, retired).
    ChartPush,
    /// A legacy Helm chart was deleted.
    ChartDelete,
    /// A connectivity test.
    Ping,
}

impl AcrAction {
    /// Every action, in documentation order.
    pub const ALL: [AcrAction; 6] = [
        AcrAction::Push,
        AcrAction::Delete,
        AcrAction::Quarantine,
        AcrAction::ChartPush,
        AcrAction::ChartDelete,
        AcrAction::Ping,
    ];

    /// The wire name (`push`, `chart_push`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AcrAction::Push => "push",
            AcrAction::Delete => "delete",
            AcrAction::Quarantine => "quarantine",
            AcrAction::ChartPush => "chart_push",
            AcrAction::ChartDelete => "chart_delete",
            AcrAction::Ping => "ping",
        }
    }

    /// Parses a wire name, ignoring ASCII case (`PUSH` is `push`).
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }
}

/// The longest action accepted that this receiver does not know.
pub const MAX_ACTION_LEN: usize = 64;

/// An event's action: one this receiver knows, or another one (ACR has added actions
/// before), kept as a short token so that a future event is stored rather than lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// One of [`AcrAction::ALL`], matched ignoring case.
    Known(AcrAction),
    /// Any other: ASCII lower-cased, 1 to [`MAX_ACTION_LEN`] of `a-z`, `0-9`, `_`, `.`, `-`.
    Other(String),
}

impl Action {
    /// A known action (ignoring case), or another short token (lower-cased); `None` for
    /// anything else (empty, too long, spaces, other characters).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(known) = AcrAction::from_wire(name) {
            return Some(Self::Known(known));
        }
        action_token(name).map(Self::Other)
    }

    /// The name stored in `action`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(a) => a.as_str(),
            Self::Other(token) => token,
        }
    }

    /// The known action, if it is one.
    pub fn known(&self) -> Option<AcrAction> {
        match self {
            Self::Known(a) => Some(*a),
            Self::Other(_) => None,
        }
    }
}

impl PartialEq<AcrAction> for Action {
    fn eq(&self, other: &AcrAction) -> bool {
        self.known() == Some(*other)
    }
}

impl From<AcrAction> for Action {
    fn from(a: AcrAction) -> Self {
        Self::Known(a)
    }
}

/// `name` ASCII lower-cased when it is a short token (1 to [`MAX_ACTION_LEN`] of `a-z`,
/// `0-9`, `_`, `.`, `-` once lower-cased); `None` otherwise.
pub fn action_token(name: &str) -> Option<String> {
    let ok = (1..=MAX_ACTION_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    ok.then(|| name.to_ascii_lowercase())
}

/// One ACR webhook event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize), serde(rename_all = "camelCase"))]
pub struct AcrEvent {
    /// The event id (a GUID in every documented example).
    pub id: Option<String>,
    /// When the event happened (RFC 3339), kept as sent.
    pub timestamp: Option<String>,
    /// The action, as sent.
    pub action: Option<String>,
    /// What the event is about.
    #[cfg_attr(
        test,
        serde(default, deserialize_with = "crate::json::reference::optional_object")
    )]
    pub target: Option<Target>,
    /// The registry request that caused it (absent on chart events).
    #[cfg_attr(
        test,
        serde(default, deserialize_with = "crate::json::reference::optional_object")
    )]
    pub request: Option<EventRequest>,
}

/// `target` of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize), serde(rename_all = "camelCase"))]
pub struct Target {
    /// Manifest media type.
    pub media_type: Option<String>,
    /// Size in bytes.
    pub size: Option<i64>,
    /// Content digest (`sha256:...`).
    pub digest: Option<String>,
    /// Same as size.
    pub length: Option<i64>,
    /// Repository name (may contain `/`).
    pub repository: Option<String>,
    /// Tag (absent on delete, empty on a push by digest).
    pub tag: Option<String>,
    /// Chart name (chart events).
    pub name: Option<String>,
    /// Chart version (chart events).
    pub version: Option<String>,
}

/// `request` of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize), serde(rename_all = "camelCase"))]
pub struct EventRequest {
    /// Registry request id.
    pub id: Option<String>,
    /// The registry's login server (`myregistry.azurecr.io`).
    pub host: Option<String>,
    /// HTTP method of the registry request.
    pub method: Option<String>,
    /// User agent of the client that pushed.
    #[cfg_attr(test, serde(rename = "useragent"))]
    pub user_agent: Option<String>,
}

json_fields!(AcrEvent {
    "id" => id: Text,
    "timestamp" => timestamp: Text,
    "action" => action: Text,
    "target" => target: Object,
    "request" => request: Object,
});

json_fields!(Target {
    "mediaType" => media_type: Text,
    "size" => size: Integer,
    "digest" => digest: Text,
    "length" => length: Integer,
    "repository" => repository: Text,
    "tag" => tag: Text,
    "name" => name: Text,
    "version" => version: Text,
});

json_fields!(EventRequest {
    "id" => id: Text,
    "host" => host: Text,
    "method" => method: Text,
    "useragent" => user_agent: Text,
});

/// Why a body is not an ACR event. Messages name the problem, never echo the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all (or not UTF-8, or truncated).
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not the shape of an ACR event.
    #[error("the body is not an ACR webhook event: {0}")]
    NotAnEvent(String),
    /// An action that is not a short token (see [`Action::parse`]).
    #[error("unsupported action `{0}` (an action is 1 to 64 of a-z 0-9 _ . -)")]
    UnsupportedAction(String),
}

/// An ACR event with its action read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// The action: a known one, or another short token.
    pub action: Action,
    /// The whole event.
    pub event: AcrEvent,
}

/// Parses one ACR webhook body (a bare JSON object). A UTF-8 byte-order mark is tolerated.
pub fn parse_event(body: &[u8]) -> Result<ParsedEvent, PayloadError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut event = AcrEvent::default();
    crate::json::read_object(body, &mut event).map_err(classify_json_error)?;
    let action = match event.action.as_deref() {
        None => return Err(PayloadError::NotAnEvent("no `action` field".into())),
        Some(name) => {
            Action::parse(name).ok_or_else(|| PayloadError::UnsupportedAction(printable(name)))?
        }
    };
    Ok(ParsedEvent { action, event })
}

/// Syntax errors are "invalid JSON"; well-formed JSON of the wrong shape is "not an event".
/// serde_json quotes a wrong-typed value whole in its message: bounded here, so a body never
/// comes back in an answer or a log line.
pub(crate) fn classify_json_error(e: serde_json::Error) -> PayloadError {
    use serde_json::error::Category;
    let message = crate::text::printable_n(&e.to_string(), 200);
    match e.classify() {
        Category::Data => PayloadError::NotAnEvent(message),
        Category::Syntax | Category::Eof | Category::Io => PayloadError::InvalidJson(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips() {
        for a in AcrAction::ALL {
            assert_eq!(AcrAction::from_wire(a.as_str()), Some(a));
        }
        assert_eq!(AcrAction::from_wire("PUSH"), Some(AcrAction::Push));
        assert_eq!(
            AcrAction::from_wire("Chart_Delete"),
            Some(AcrAction::ChartDelete)
        );
        assert_eq!(AcrAction::from_wire("pushx"), None);
    }

    #[test]
    fn unknown_actions_are_short_tokens_lower_cased() {
        let p = parse_event(br#"{"action":"Image.Retag_v2-beta"}"#).unwrap();
        assert_eq!(p.action, Action::Other("image.retag_v2-beta".into()));
        assert_eq!(p.action.as_str(), "image.retag_v2-beta");
        assert_eq!(p.action.known(), None);
        let p = parse_event(br#"{"action":"PUSH"}"#).unwrap();
        assert_eq!(p.action, AcrAction::Push);
        let exactly = "x".repeat(MAX_ACTION_LEN);
        let body = format!(r#"{{"action":"{exactly}"}}"#);
        assert_eq!(
            parse_event(body.as_bytes()).unwrap().action.as_str(),
            exactly
        );
    }

    #[test]
    fn minimal_ping() {
        let p = parse_event(br#"{"action":"ping"}"#).unwrap();
        assert_eq!(p.action, AcrAction::Ping);
        assert_eq!(p.event.target, None);
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            parse_event(b"{"),
            Err(PayloadError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_event(b""),
            Err(PayloadError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_event(b"\xff\xfe"),
            Err(PayloadError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_event(b"[]"),
            Err(PayloadError::NotAnEvent(_))
        ));
        assert!(matches!(
            parse_event(b"{}"),
            Err(PayloadError::NotAnEvent(_))
        ));
        assert!(matches!(
            parse_event(br#"{"action":"push","target":{"size":"big"}}"#),
            Err(PayloadError::NotAnEvent(_))
        ));
        assert!(matches!(
            parse_event(br#"{"action":"push","id":"a","id":"b"}"#),
            Err(PayloadError::NotAnEvent(_))
        ));
        for bad in ["", "a b", "push!", "pùsh", "a/b", "\\u0000"] {
            let body = format!(r#"{{"action":"{bad}"}}"#);
            assert!(
                matches!(
                    parse_event(body.as_bytes()),
                    Err(PayloadError::UnsupportedAction(_))
                ),
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_ACTION_LEN + 1);
        assert!(matches!(
            parse_event(format!(r#"{{"action":"{long}"}}"#).as_bytes()),
            Err(PayloadError::UnsupportedAction(_))
        ));
    }

    #[test]
    fn arrays_never_stand_in_for_objects() {
        for body in [
            &br#"["h-positional","2024-01-02T03:04:05Z","push",null,null]"#[..],
            br#"{"action":"push","target":["m",1,"sha256:x",1,"repo","tag",null,null]}"#,
            br#"{"action":"push","request":["r","reg.example","PUT","ua"]}"#,
        ] {
            assert!(
                matches!(parse_event(body), Err(PayloadError::NotAnEvent(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let p = parse_event(br#"{"action":"push","target":null,"request":null}"#).unwrap();
        assert_eq!((p.event.target, p.event.request), (None, None));
    }

    #[test]
    fn bom_and_unknown_fields_are_tolerated() {
        let p = parse_event(b"\xEF\xBB\xBF{\"action\":\"push\",\"x\":{\"y\":[1]}}").unwrap();
        assert_eq!(p.action, AcrAction::Push);
    }

    #[test]
    fn deep_nesting_neither_crashes_nor_recurses() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        // An unknown field is skipped without recursion: the event itself is fine.
        let body = format!(r#"{{"action":"push","x":{deep}}}"#);
        assert_eq!(
            parse_event(body.as_bytes()).unwrap().action,
            AcrAction::Push
        );
        // In a known field it is the wrong type.
        let body = format!(r#"{{"action":"push","target":{deep}}}"#);
        assert!(matches!(
            parse_event(body.as_bytes()),
            Err(PayloadError::NotAnEvent(_))
        ));
        // Unclosed, it is not JSON.
        let body = format!(r#"{{"action":"push","x":{}"#, "[".repeat(10_000));
        assert!(matches!(
            parse_event(body.as_bytes()),
            Err(PayloadError::InvalidJson(_))
        ));
    }

    #[test]
    fn wrong_type_messages_do_not_echo_the_value() {
        let body = format!(
            r#"{{"action":"push","target":{{"size":"{}"}}}}"#,
            "A".repeat(5000)
        );
        let err = parse_event(body.as_bytes()).unwrap_err().to_string();
        assert!(err.len() < 400, "{} bytes", err.len());
    }

    /// The reader and serde's derived reader agree on every ACR fixture and its variants
    /// (every field given every JSON type, removed, repeated; truncations).
    #[test]
    fn agrees_with_the_derived_reader() {
        let package =
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
        let fixtures = std::fs::read_dir(format!("{package}/../../tests/fixtures/acr"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.file_name().unwrap() != "list-events.json")
            .collect::<Vec<_>>();
        assert!(fixtures.len() >= 14);
        let mut count = 0;
        for fixture in fixtures {
            for body in crate::json::differential::variants(&std::fs::read(&fixture).unwrap()) {
                let mut event = AcrEvent::default();
                let new = crate::json::read_object(&body, &mut event).map(|()| event);
                let old = serde_json::from_slice::<crate::json::reference::Object<AcrEvent>>(&body)
                    .map(|o| o.0);
                crate::json::differential::assert_agree(&body, new, old);
                count += 1;
            }
        }
        assert!(count > 2000, "{count}");
    }

    #[test]
    fn unsupported_action_message_is_bounded() {
        let long = "a".repeat(1000);
        let body = format!(r#"{{"action":"{long}"}}"#);
        let err = parse_event(body.as_bytes()).unwrap_err().to_string();
        assert!(err.len() < 200);
    }
}
