//! Replay of missed deliveries: reads what `az acr webhook list-events -r REG -n HOOK -o json`
//! prints and picks the deliveries to send again.
//!
//! ACR keeps a webhook's recent deliveries, each with the request it sent and the answer it
//! got (ARM `POST .../webhooks/{name}/listEvents`, protocols.md §A5):
//!
//! ```text
//! Event { id, eventRequestMessage  { content: <the ACR event>, headers, method, requestUri, version },
//!             eventResponseMessage { content, headers, reasonPhrase, statusCode: "200", version } }
//! ```
//!
//! The CLI prints a JSON array of those; the ARM API answers `{"value": [...], "nextLink": ...}`.
//! Both are accepted. ACR never retries a failed delivery, so these are the only copies of the
//! events the receiver missed. Re-sending is safe: the receiver keys each document by the
//! event's own id, so an event stored before answers "already stored" and nothing is written
//! twice.
//!
//! What is sent again is `content`, re-serialised. It is the ACR event, but not byte for byte
//! what ACR first sent: the CLI rebuilds it from the SDK model, so members the model knows but
//! the event lacked come out as `null` (they are dropped here, since ACR omits absent fields),
//! key order and number formatting are serde_json's, and the CLI writes `timestamp` as Python's
//! `isoformat()` (microseconds, `+00:00`). None of this changes the event's id, action,
//! repository, tag or digest. `requestUri` is never read: it can hold a `?code=` key.

use serde_json::Value;

use crate::text::printable_n;

/// One recorded delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The delivery's id (the event id), or `#N` (1-based position) when the file has none.
    pub id: String,
    /// The body to send again: the ACR event (`eventRequestMessage.content`), JSON.
    pub body: Vec<u8>,
    /// True when the receiver answered 2xx.
    pub succeeded: bool,
    /// The receiver's status code; `None` when no answer was recorded (a timeout, or the
    /// endpoint could not be reached).
    pub status: Option<u16>,
}

impl Delivery {
    /// One line for the operator: `push hello-world:v1 (event <id>)`, as far as the body says.
    pub fn summary(&self) -> String {
        let event: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let text = |v: &Value| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(|s| printable_n(s, 100))
        };
        let action = text(&event["action"]).unwrap_or_else(|| "event".to_owned());
        let what = match (
            text(&event["target"]["repository"]),
            text(&event["target"]["tag"]),
            text(&event["target"]["digest"]),
        ) {
            (Some(r), Some(t), _) => format!(" {r}:{t}"),
            (Some(r), None, Some(d)) => format!(" {r}@{d}"),
            (Some(r), None, None) => format!(" {r}"),
            (None, ..) => String::new(),
        };
        let answer = match self.status {
            Some(code) => format!("answered {code}"),
            None => "no answer recorded".to_owned(),
        };
        format!(
            "{action}{what} (delivery {}, {answer})",
            printable_n(&self.id, 100)
        )
    }
}

/// Why a `list-events` file cannot be read. Positions are 1-based, as an operator counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// UTF-16 text, as PowerShell 5's `>` writes.
    #[error("the file is UTF-16; write it as UTF-8 (PowerShell: `az acr webhook list-events ... -o json | Out-File -Encoding utf8 FILE`)")]
    Utf16,
    /// Not JSON.
    #[error("the file is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but neither an array nor `{"value": [...]}`.
    #[error("expected the JSON array that `az acr webhook list-events -o json` prints, or an ARM `{{\"value\": [...]}}` answer")]
    NotAList,
    /// An entry that is not an object.
    #[error("delivery #{position} is not a JSON object")]
    NotAnEntry {
        /// 1-based position in the list.
        position: usize,
    },
    /// An entry without `eventRequestMessage.content`.
    #[error("delivery #{position} ({id}) has no `eventRequestMessage.content`: there is nothing to send again")]
    NoContent {
        /// 1-based position in the list.
        position: usize,
        /// The delivery's id (control characters replaced, bounded).
        id: String,
    },
    /// `content` is neither an object nor a string.
    #[error("delivery #{position} ({id}): `eventRequestMessage.content` is neither a JSON object nor a string")]
    BadContent {
        /// 1-based position in the list.
        position: usize,
        /// The delivery's id (control characters replaced, bounded).
        id: String,
    },
    /// `statusCode` is not an HTTP status.
    #[error("delivery #{position} ({id}): `eventResponseMessage.statusCode` `{status}` is not an HTTP status code")]
    BadStatus {
        /// 1-based position in the list.
        position: usize,
        /// The delivery's id (control characters replaced, bounded).
        id: String,
        /// The value, as found.
        status: String,
    },
}

/// Parses `az acr webhook list-events -o json` output (or the ARM `{"value": [...]}` answer),
/// in file order. A UTF-8 byte-order mark is tolerated.
pub fn parse_list_events(json: &[u8]) -> Result<Vec<Delivery>, ReplayError> {
    if json.starts_with(b"\xFF\xFE") || json.starts_with(b"\xFE\xFF") {
        return Err(ReplayError::Utf16);
    }
    let json = json.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(json);
    let parsed: Value =
        serde_json::from_slice(json).map_err(|e| ReplayError::InvalidJson(e.to_string()))?;
    let entries = match parsed {
        Value::Array(entries) => entries,
        Value::Object(mut map) => match map.remove("value") {
            Some(Value::Array(entries)) => entries,
            _ => return Err(ReplayError::NotAList),
        },
        _ => return Err(ReplayError::NotAList),
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| delivery(index + 1, entry))
        .collect()
}

fn delivery(position: usize, entry: Value) -> Result<Delivery, ReplayError> {
    let Value::Object(mut entry) = entry else {
        return Err(ReplayError::NotAnEntry { position });
    };
    let content = match entry.get_mut("eventRequestMessage") {
        Some(Value::Object(request)) => request.remove("content"),
        _ => None,
    };
    let id = [entry.get("id"), content.as_ref().and_then(|c| c.get("id"))]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .map_or_else(|| format!("#{position}"), str::to_owned);
    let body = match content {
        None | Some(Value::Null) => {
            return Err(ReplayError::NoContent {
                position,
                id: printable_n(&id, 100),
            })
        }
        Some(Value::String(raw)) => raw.into_bytes(),
        Some(event @ Value::Object(_)) => without_nulls(event).to_string().into_bytes(),
        Some(_) => {
            return Err(ReplayError::BadContent {
                position,
                id: printable_n(&id, 100),
            })
        }
    };
    let status = match entry.get("eventResponseMessage") {
        None | Some(Value::Null) => None,
        Some(response) => {
            status_code(&response["statusCode"]).map_err(|status| ReplayError::BadStatus {
                position,
                id: printable_n(&id, 100),
                status,
            })?
        }
    };
    Ok(Delivery {
        succeeded: status.is_some_and(|s| (200..300).contains(&s)),
        id,
        body,
        status,
    })
}

/// `"200"` (what ARM and the CLI write) or `200`; absent, `null` or `""`: no status.
fn status_code(value: &Value) -> Result<Option<u16>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => return Err(printable_n(&other.to_string(), 100)),
    };
    match text.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(Some(code)),
        _ => Err(printable_n(&text, 100)),
    }
}

/// Drops object members whose value is `null`, at every depth (array elements stay).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// The deliveries to send again: those that did not get a 2xx (a missing answer counts as
/// failed), or every delivery when `all` is set. File order is kept.
pub fn select(deliveries: &[Delivery], all: bool) -> Vec<&Delivery> {
    deliveries.iter().filter(|d| all || !d.succeeded).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acr::{parse_event, AcrAction};
    use serde_json::json;

    /// The fixture reconstructed from the ARM example (tests/fixtures/README.md).
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/acr/list-events.json");

    /// The `200` body of the ARM example `WebhookListEvents.json` (Azure/azure-rest-api-specs,
    /// `specification/containerregistry/resource-manager/Microsoft.ContainerRegistry/stable/2019-05-01/examples/`,
    /// @ a23694147d64), verbatim.
    const ARM_EXAMPLE: &str = r#"{
        "value": [
            {
                "id": "00000000-0000-0000-0000-000000000000",
                "eventRequestMessage": {
                    "content": {
                        "id": "00000000-0000-0000-0000-000000000000",
                        "timestamp": "2017-03-01T23:14:37.0707808Z",
                        "action": "push",
                        "target": {
                            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                            "size": 708,
                            "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
                            "length": 708,
                            "repository": "hello-world",
                            "url": "http://192.168.100.227:5000/v2/hello-world/manifests/sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
                            "tag": "latest"
                        },
                        "request": {
                            "id": "00000000-0000-0000-0000-000000000000",
                            "addr": "192.168.64.11:42961",
                            "host": "192.168.100.227:5000",
                            "method": "GET",
                            "useragent": "curl/7.38.0"
                        },
                        "actor": {},
                        "source": {
                            "addr": "xtal.local:5000",
                            "instanceID": "00000000-0000-0000-0000-000000000000"
                        }
                    },
                    "headers": {
                        "Content-Type": "application/json",
                        "Content-Length": "719",
                        "Authorization": "******"
                    },
                    "method": "POST",
                    "requestUri": "http://myservice.com",
                    "version": "1.1"
                },
                "eventResponseMessage": {
                    "headers": {
                        "Content-Length": "0"
                    },
                    "statusCode": "200",
                    "version": "1.1"
                }
            }
        ]
    }"#;

    #[test]
    fn the_arm_example() {
        let deliveries = parse_list_events(ARM_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(deliveries.len(), 1);
        let d = &deliveries[0];
        assert_eq!(d.id, "00000000-0000-0000-0000-000000000000");
        assert_eq!(d.status, Some(200));
        assert!(d.succeeded);
        let event: Value = serde_json::from_slice(&d.body).unwrap();
        let original: Value = serde_json::from_str(ARM_EXAMPLE).unwrap();
        assert_eq!(
            event, original["value"][0]["eventRequestMessage"]["content"],
            "content is passed on whole"
        );
        let parsed = parse_event(&d.body).unwrap();
        assert_eq!(parsed.action, AcrAction::Push);
        assert!(select(&deliveries, false).is_empty());
        assert_eq!(select(&deliveries, true).len(), 1);
    }

    #[test]
    fn the_fixture_has_three_failed_deliveries() {
        let deliveries = parse_list_events(FIXTURE).unwrap();
        assert_eq!(deliveries.len(), 5);
        let statuses: Vec<_> = deliveries.iter().map(|d| d.status).collect();
        assert_eq!(statuses, [Some(200), Some(500), Some(504), None, Some(201)]);
        let failed: Vec<&str> = select(&deliveries, false)
            .into_iter()
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "5f3c9a1e-8d2b-4c6f-9e0a-7b1d2c3e4f50",
                "a7e4b2c9-1f3d-4e5a-8b6c-9d0e1f2a3b4c",
                "c2d8e6f4-3a1b-4c9d-8e7f-0a1b2c3d4e5f",
            ]
        );
        assert_eq!(select(&deliveries, true).len(), 5);
        let mut ids = std::collections::HashSet::new();
        for d in &deliveries {
            // Every body is an event the receiver accepts, keyed by the delivery's id.
            let parsed = parse_event(&d.body).unwrap();
            assert_eq!(parsed.event.id.as_deref(), Some(d.id.as_str()));
            assert!(ids.insert(d.id.clone()), "distinct ids");
            // The CLI's nulls are gone.
            assert!(
                !String::from_utf8_lossy(&d.body).contains("null"),
                "{}",
                d.id
            );
        }
        assert_eq!(
            deliveries[2].summary(),
            "delete hello-world@sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf (delivery a7e4b2c9-1f3d-4e5a-8b6c-9d0e1f2a3b4c, answered 504)"
        );
        assert_eq!(
            deliveries[3].summary(),
            "push team/api:1.4.2 (delivery c2d8e6f4-3a1b-4c9d-8e7f-0a1b2c3d4e5f, no answer recorded)"
        );
    }

    #[test]
    fn shapes_and_statuses() {
        let one = |entry: Value| parse_list_events(json!([entry]).to_string().as_bytes());
        let content =
            json!({"id": "e1", "action": "push", "target": {"repository": "r", "tag": null}});

        // No response recorded at all, or an empty status: failed, no status.
        let d = one(json!({"id": "d1", "eventRequestMessage": {"content": content}})).unwrap();
        assert_eq!((d[0].succeeded, d[0].status), (false, None));
        let d = one(json!({"id": "d1", "eventRequestMessage": {"content": content}, "eventResponseMessage": {"statusCode": ""}})).unwrap();
        assert_eq!((d[0].succeeded, d[0].status), (false, None));
        // Numbers are accepted too; 2xx only counts as success.
        for (code, ok) in [
            (json!(204), true),
            (json!("299"), true),
            (json!("302"), false),
            (json!(" 401 "), false),
        ] {
            let d = one(json!({"eventRequestMessage": {"content": content}, "eventResponseMessage": {"statusCode": code}})).unwrap();
            assert_eq!(d[0].succeeded, ok, "{code}");
        }
        // The id falls back to the event's, then to the position.
        let d = one(json!({"eventRequestMessage": {"content": content}})).unwrap();
        assert_eq!(d[0].id, "e1");
        let d =
            one(json!({"id": "", "eventRequestMessage": {"content": {"action": "push"}}})).unwrap();
        assert_eq!(d[0].id, "#1");
        // Nulls are dropped at every depth.
        assert_eq!(
            serde_json::from_slice::<Value>(&d[0].body).unwrap(),
            json!({"action": "push"})
        );
        let d = one(json!({"eventRequestMessage": {"content": content}})).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&d[0].body).unwrap(),
            json!({"id": "e1", "action": "push", "target": {"repository": "r"}})
        );
        // A raw string content is sent as is.
        let d =
            one(json!({"id": "d", "eventRequestMessage": {"content": "{\"action\":\"push\"}"}}))
                .unwrap();
        assert_eq!(d[0].body, br#"{"action":"push"}"#);

        assert_eq!(parse_list_events(b"[]").unwrap(), vec![]);
        assert_eq!(
            parse_list_events(br#"{"value": [], "nextLink": null}"#).unwrap(),
            vec![]
        );
        assert_eq!(parse_list_events(b"\xEF\xBB\xBF[]").unwrap(), vec![]);
    }

    #[test]
    fn errors_are_precise() {
        let one = |entry: Value| {
            parse_list_events(json!([{"id": "ok", "eventRequestMessage": {"content": {"action": "push"}}}, entry]).to_string().as_bytes())
        };
        assert_eq!(
            parse_list_events(b"\xFF\xFE[\x00]\x00"),
            Err(ReplayError::Utf16)
        );
        assert!(matches!(
            parse_list_events(b"[{"),
            Err(ReplayError::InvalidJson(_))
        ));
        assert_eq!(parse_list_events(b"{}"), Err(ReplayError::NotAList));
        assert_eq!(
            parse_list_events(br#"{"value": {}}"#),
            Err(ReplayError::NotAList)
        );
        assert_eq!(parse_list_events(b"42"), Err(ReplayError::NotAList));
        assert_eq!(
            one(json!("x")),
            Err(ReplayError::NotAnEntry { position: 2 })
        );
        assert_eq!(
            one(json!({"id": "d2"})),
            Err(ReplayError::NoContent {
                position: 2,
                id: "d2".into()
            })
        );
        assert_eq!(
            one(json!({"eventRequestMessage": {"content": null}})),
            Err(ReplayError::NoContent {
                position: 2,
                id: "#2".into()
            })
        );
        assert_eq!(
            one(json!({"id": "d2", "eventRequestMessage": {"content": [1]}})),
            Err(ReplayError::BadContent {
                position: 2,
                id: "d2".into()
            })
        );
        for bad in [
            json!("OK"),
            json!("99"),
            json!(600),
            json!(-1),
            json!(2.5),
            json!(true),
        ] {
            assert!(
                matches!(
                    one(
                        json!({"id": "d2", "eventRequestMessage": {"content": {}}, "eventResponseMessage": {"statusCode": bad}})
                    ),
                    Err(ReplayError::BadStatus { position: 2, .. })
                ),
                "{bad}"
            );
        }
        let err = one(json!({"id": "evil\nline", "eventRequestMessage": {"content": {}}, "eventResponseMessage": {"statusCode": "x\ny"}})).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn summaries_are_bounded_single_lines() {
        let d = Delivery {
            id: "id\nforged".into(),
            body:
                json!({"action": "push", "target": {"repository": "r\n".repeat(100), "tag": "t"}})
                    .to_string()
                    .into_bytes(),
            succeeded: false,
            status: Some(500),
        };
        let s = d.summary();
        assert!(!s.contains('\n'), "{s}");
        assert!(s.len() < 400, "{s}");
        let d = Delivery {
            id: "x".into(),
            body: b"not json".to_vec(),
            succeeded: false,
            status: None,
        };
        assert_eq!(d.summary(), "event (delivery x, no answer recorded)");
    }
}
