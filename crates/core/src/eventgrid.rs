//! Azure Event Grid deliveries of Azure Container Registry events, in the Event Grid schema
//! (a JSON array, `application/json`) and in CloudEvents 1.0 (structured mode,
//! `application/cloudevents+json`, and batched, `application/cloudevents-batch+json`), plus the
//! two handshakes: the `Microsoft.EventGrid.SubscriptionValidationEvent` (answered with
//! `{"validationResponse": code}`) and the CloudEvents abuse-protection `OPTIONS` request
//! (answered with `WebHook-Allowed-Origin`).
//!
//! The `data` of the four ACR event types is the ACR event itself (`id`, `timestamp`,
//! `action`, `target`, `request`), so each event becomes the [`ParsedEvent`] an ACR webhook
//! would have given, with its id taken from `data.id`. What the documentation says and what
//! is assumed is written down in `docs/event-grid.md`.
//!
//! Unknown event types next to ACR events are skipped (and listed); a delivery with no ACR
//! event and no validation event is an error.

use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::acr::{AcrAction, AcrEvent, Action, EventRequest, ParsedEvent, Target};
use crate::distribution::{
    json_error, media_type_essence, strip_bom, ContentTypeError, JsonErrorKind,
};
use crate::json::{json_fields, Capped};
use crate::text::printable;

/// The most events accepted in one delivery: the largest "max events per batch" an Event
/// Grid subscription can be configured with (1 to 5,000, "Event Grid message delivery and
/// retry"). A smaller cap would refuse a legitimate batch, which Event Grid then dead-letters.
pub const MAX_EVENTS: usize = 5000;

/// Event type of the subscription validation handshake (Event Grid schema only).
pub const VALIDATION_EVENT_TYPE: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// `Content-Type` of an Event Grid schema delivery (sent with `; charset=utf-8`).
pub const MEDIA_TYPE_JSON: &str = "application/json";
/// `Content-Type` of one CloudEvent in structured mode (sent with `; charset=utf-8`).
pub const MEDIA_TYPE_CLOUDEVENTS: &str = "application/cloudevents+json";
/// `Content-Type` of a batch of CloudEvents.
pub const MEDIA_TYPE_CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";

/// Request header of the abuse-protection `OPTIONS` request: who wants to send.
pub const WEBHOOK_REQUEST_ORIGIN: HeaderName = HeaderName::from_static("webhook-request-origin");
/// Optional request header of the `OPTIONS` request: the desired rate (requests per minute).
pub const WEBHOOK_REQUEST_RATE: HeaderName = HeaderName::from_static("webhook-request-rate");
/// Response header granting delivery to an origin.
pub const WEBHOOK_ALLOWED_ORIGIN: HeaderName = HeaderName::from_static("webhook-allowed-origin");
/// Response header granting a rate (`*`: no limit).
pub const WEBHOOK_ALLOWED_RATE: HeaderName = HeaderName::from_static("webhook-allowed-rate");
/// Header Event Grid sets on every POST: `SubscriptionValidation`, `Notification`, ...
pub const AEG_EVENT_TYPE: HeaderName = HeaderName::from_static("aeg-event-type");
/// The `Allow` value the `OPTIONS` answer should carry (CloudEvents webhook spec §4.2).
pub const ALLOW_METHODS: &str = "POST, OPTIONS";

/// The longest `WebHook-Request-Origin` echoed back (a DNS name is at most 253 characters).
const MAX_ORIGIN_LEN: usize = 255;

/// Why a body is not an Event Grid delivery this receiver accepts. Messages are bounded and
/// never echo more than a short piece of the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventGridError {
    /// A `Content-Type` other than JSON or the two CloudEvents types.
    #[error("unsupported content type `{0}` (expected application/json, application/cloudevents+json or application/cloudevents-batch+json)")]
    UnsupportedContentType(String),
    /// A `charset` parameter other than UTF-8.
    #[error("unsupported charset `{0}` (JSON must be UTF-8)")]
    UnsupportedCharset(String),
    /// Not JSON at all (or not UTF-8, or truncated, or nested too deep).
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but neither an event object nor an array of event objects.
    #[error("the body is not an Event Grid delivery: {0}")]
    NotAnEvent(String),
    /// An empty array.
    #[error("the delivery holds no event")]
    NoEvents,
    /// More events than [`MAX_EVENTS`].
    #[error("{count} events in one delivery (at most {max} are accepted)")]
    TooManyEvents {
        /// How many the delivery holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// No event of a known type: the type of the first one (empty if it had none).
    #[error("unsupported event type `{0}` (expected Microsoft.ContainerRegistry.ImagePushed, ImageDeleted, ChartPushed, ChartDeleted or Microsoft.EventGrid.SubscriptionValidationEvent)")]
    UnsupportedEventType(String),
    /// A CloudEvent of another spec version (`specversion` other than 1.0, or CloudEvents 0.1).
    #[error("unsupported CloudEvents spec version `{0}` (expected 1.0)")]
    UnsupportedSpecVersion(String),
    /// A validation event together with other events (Event Grid sends it alone).
    #[error("a subscription validation event must be the only event of its delivery")]
    ValidationNotAlone,
    /// A validation event without `data.validationCode`.
    #[error("the subscription validation event has no data.validationCode")]
    MissingValidationCode,
    /// An ACR event whose `data` is missing or not an ACR event.
    #[error("event {index}: {reason}")]
    InvalidData {
        /// Position in the delivery (0-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// An ACR event whose `data.action` contradicts its event type.
    #[error("event {index}: type {event_type} carries action `{action}`")]
    ActionMismatch {
        /// Position in the delivery (0-based).
        index: usize,
        /// The event type.
        event_type: &'static str,
        /// The action in `data` (bounded).
        action: String,
    },
}

impl EventGridError {
    /// The HTTP status this error answers with: 415 for the content type and charset, 413 for
    /// too many events, 400 otherwise (Event Grid dead-letters on 400 and 413 when
    /// dead-lettering is set up, and retries otherwise).
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::UnsupportedContentType(_) | Self::UnsupportedCharset(_) => {
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::TooManyEvents { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// The envelope format an event came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Event Grid schema (`eventType`, `topic`, `eventTime`, `dataVersion`).
    EventGrid,
    /// CloudEvents 1.0 (`type`, `source`, `time`, `specversion`).
    CloudEvents,
}

/// The Azure Container Registry event types ("Azure Container Registry as an Event Grid
/// source").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrEventType {
    /// `Microsoft.ContainerRegistry.ImagePushed`: ACR `push`.
    ImagePushed,
    /// `Microsoft.ContainerRegistry.ImageDeleted`: ACR `delete`.
    ImageDeleted,
    /// `Microsoft.ContainerRegistry.ChartPushed`: ACR `chart_push`.
    ChartPushed,
    /// `Microsoft.ContainerRegistry.ChartDeleted`: ACR `chart_delete`.
    ChartDeleted,
}

impl AcrEventType {
    /// Every type, in documentation order.
    pub const ALL: [AcrEventType; 4] = [
        Self::ImagePushed,
        Self::ImageDeleted,
        Self::ChartPushed,
        Self::ChartDeleted,
    ];

    /// The full event type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImagePushed => "Microsoft.ContainerRegistry.ImagePushed",
            Self::ImageDeleted => "Microsoft.ContainerRegistry.ImageDeleted",
            Self::ChartPushed => "Microsoft.ContainerRegistry.ChartPushed",
            Self::ChartDeleted => "Microsoft.ContainerRegistry.ChartDeleted",
        }
    }

    /// The ACR webhook action of the same event.
    pub fn action(self) -> AcrAction {
        match self {
            Self::ImagePushed => AcrAction::Push,
            Self::ImageDeleted => AcrAction::Delete,
            Self::ChartPushed => AcrAction::ChartPush,
            Self::ChartDeleted => AcrAction::ChartDelete,
        }
    }

    /// Parses an event type, ignoring ASCII case. The short names (`ImagePushed`, ...) that
    /// the 2018–2021 revisions of Microsoft's examples show are accepted too.
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| {
            let full = t.as_str();
            name.eq_ignore_ascii_case(full)
                || name.eq_ignore_ascii_case(&full["Microsoft.ContainerRegistry.".len()..])
        })
    }
}

/// Where an event's id (the future document id) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// `data.id`: the registry's event id, the same one its webhook sends (assumed; see
    /// `docs/event-grid.md`).
    Data,
    /// `data.id` was missing or empty; the envelope `id` was used instead. In every
    /// Microsoft example taken from a real registry the two are equal.
    Envelope,
    /// Neither was present: the event has no id.
    Absent,
}

/// One ACR event delivered by Event Grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGridEvent {
    /// The envelope format.
    pub schema: Schema,
    /// The event type, when it is one of the four known ones; `None` for another
    /// `Microsoft.ContainerRegistry.*` type, whose action is `data.action`.
    pub event_type: Option<AcrEventType>,
    /// The envelope `id`.
    pub envelope_id: Option<String>,
    /// Where `parsed.event.id` came from.
    pub id_source: IdSource,
    /// `topic` (Event Grid schema) or `source` (CloudEvents): the registry's resource id.
    pub topic: Option<String>,
    /// `subject`: `repository:tag`, or the repository.
    pub subject: Option<String>,
    /// `eventTime` or `time`, as sent.
    pub time: Option<String>,
    /// `dataVersion` (Event Grid schema).
    pub data_version: Option<String>,
    /// `data.location`: the registry's region.
    pub location: Option<String>,
    /// `data.connectedRegistry.name`, for events of a connected registry.
    pub connected_registry: Option<String>,
    /// The ACR event: `data` with its action known.
    pub parsed: ParsedEvent,
}

/// An event of an unknown type that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    /// Position in the delivery (0-based).
    pub index: usize,
    /// The envelope `id` (bounded).
    pub envelope_id: Option<String>,
    /// The event type (bounded).
    pub event_type: Option<String>,
}

/// What a POST from Event Grid carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The subscription validation handshake: answer 200 with
    /// [`validation_response_body`]`(code)`. (`validation_url` allows a manual GET instead.)
    Validation {
        /// `data.validationCode`.
        code: String,
        /// `data.validationUrl`, when sent.
        validation_url: Option<String>,
    },
    /// ACR events, in delivery order, and the events of other types that were skipped.
    Events {
        /// The ACR events.
        events: Vec<EventGridEvent>,
        /// The skipped ones.
        skipped: Vec<SkippedEvent>,
    },
}

/// Parses one Event Grid POST. The `Content-Type` must be JSON (or absent) or one of the two
/// CloudEvents types; either a single event object or an array of them is read, whatever the
/// type. With a CloudEvents type every element is a CloudEvent; with JSON an element is
/// Event Grid schema when it has `eventType`, else CloudEvents. A UTF-8 byte-order mark is
/// tolerated.
pub fn parse_delivery(content_type: Option<&str>, body: &[u8]) -> Result<Delivery, EventGridError> {
    let cloudevents_only = match media_type_essence(content_type) {
        Ok(None) => false,
        Ok(Some(essence)) if essence == MEDIA_TYPE_JSON => false,
        Ok(Some(essence))
            if essence == MEDIA_TYPE_CLOUDEVENTS || essence == MEDIA_TYPE_CLOUDEVENTS_BATCH =>
        {
            true
        }
        Ok(Some(_)) | Err(ContentTypeError::Malformed) => {
            return Err(EventGridError::UnsupportedContentType(printable(
                content_type.unwrap_or_default(),
            )))
        }
        Err(ContentTypeError::Charset(charset)) => {
            return Err(EventGridError::UnsupportedCharset(charset))
        }
    };
    let mut delivery = Capped::<RawEvent, MAX_EVENTS>::default();
    crate::json::read_object_or_array(strip_bom(body), &mut delivery).map_err(
        |e| match json_error(&e) {
            JsonErrorKind::Syntax(m) => EventGridError::InvalidJson(m),
            JsonErrorKind::Data(m) => EventGridError::NotAnEvent(m),
        },
    )?;
    let Capped { items, total } = delivery;
    if total > MAX_EVENTS {
        return Err(EventGridError::TooManyEvents {
            count: total,
            max: MAX_EVENTS,
        });
    }
    if items.is_empty() {
        return Err(EventGridError::NoEvents);
    }

    let mut typed = Vec::with_capacity(items.len());
    for raw in &items {
        let schema = raw.schema(cloudevents_only);
        if schema == Schema::CloudEvents {
            raw.check_spec_version()?;
        }
        typed.push((schema, raw.event_type(schema)));
    }

    let is_validation =
        |t: &Option<&str>| t.is_some_and(|t| t.eq_ignore_ascii_case(VALIDATION_EVENT_TYPE));
    if typed.iter().any(|(_, t)| is_validation(t)) {
        if items.len() != 1 {
            return Err(EventGridError::ValidationNotAlone);
        }
        return validation(&items[0]);
    }

    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for (index, (raw, (schema, type_name))) in items.iter().zip(&typed).enumerate() {
        match type_name.and_then(AcrEventType::from_wire) {
            Some(event_type) => events.push(acr_event(index, raw, *schema, Some(event_type))?),
            // A registry event type this receiver does not know yet (ACR has added event
            // types before): stored when its data is an ACR event with a usable action,
            // skipped otherwise (never an error, which would refuse the whole delivery).
            None if type_name.is_some_and(is_registry_type) => {
                match acr_event(index, raw, *schema, None) {
                    Ok(event) => events.push(event),
                    Err(_) => skipped.push(SkippedEvent {
                        index,
                        envelope_id: raw.id.as_deref().map(printable),
                        event_type: type_name.map(printable),
                    }),
                }
            }
            None => skipped.push(SkippedEvent {
                index,
                envelope_id: raw.id.as_deref().map(printable),
                event_type: type_name.map(printable),
            }),
        }
    }
    if events.is_empty() {
        return Err(EventGridError::UnsupportedEventType(
            typed[0].1.map(printable).unwrap_or_default(),
        ));
    }
    Ok(Delivery::Events { events, skipped })
}

/// The body answering a validation event: `{"validationResponse": code}`.
pub fn validation_response_body(code: &str) -> Vec<u8> {
    serde_json::json!({ "validationResponse": code })
        .to_string()
        .into_bytes()
}

/// The headers answering a CloudEvents abuse-protection `OPTIONS` request: the
/// `WebHook-Request-Origin` echoed as `WebHook-Allowed-Origin`, and `WebHook-Allowed-Rate: *`
/// (no limit; the spec requires it when `WebHook-Request-Rate` was sent and recommends it
/// otherwise). `None` when the origin is missing, blank or not a host name (letters, digits,
/// `.`, `-`, `_`, `:` or a lone `*`, at most 255 characters): answer 400 then, as published
/// Event Grid handlers do. Any origin is granted; the handshake is consent, not authentication.
pub fn abuse_protection_answer(
    request_origin: Option<&str>,
) -> Option<[(HeaderName, HeaderValue); 2]> {
    let origin = request_origin?.trim();
    let valid = origin == "*"
        || (!origin.is_empty()
            && origin.len() <= MAX_ORIGIN_LEN
            && origin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)));
    if !valid {
        return None;
    }
    Some([
        (WEBHOOK_ALLOWED_ORIGIN, HeaderValue::from_str(origin).ok()?),
        (WEBHOOK_ALLOWED_RATE, HeaderValue::from_static("*")),
    ])
}

/// One element of a delivery, either schema, every field optional. `data` is kept as a JSON
/// value so an event of an unknown type is skipped whatever its data looks like.
#[derive(Default)]
#[cfg_attr(
    test,
    derive(Debug, PartialEq, serde::Deserialize),
    serde(rename_all = "camelCase")
)]
struct RawEvent {
    id: Option<String>,
    topic: Option<String>,
    source: Option<String>,
    subject: Option<String>,
    event_type: Option<String>,
    #[cfg_attr(test, serde(rename = "type"))]
    ce_type: Option<String>,
    event_time: Option<String>,
    time: Option<String>,
    data: Option<Value>,
    data_version: Option<String>,
    #[cfg_attr(test, serde(rename = "specversion"))]
    spec_version: Option<String>,
    #[cfg_attr(test, serde(rename = "specVersion"))]
    spec_version_camel: Option<String>,
    /// CloudEvents 0.1 (`cloudEventsVersion`), which Event Grid once sent.
    #[cfg_attr(
        test,
        serde(default, deserialize_with = "crate::json::reference::present")
    )]
    cloud_events_version: bool,
    #[cfg_attr(test, serde(rename = "datacontenttype"))]
    data_content_type: Option<String>,
    #[cfg_attr(
        test,
        serde(
            rename = "data_base64",
            default,
            deserialize_with = "crate::json::reference::present"
        )
    )]
    data_base64: bool,
}

json_fields!(RawEvent {
    "id" => id: Text,
    "topic" => topic: Text,
    "source" => source: Text,
    "subject" => subject: Text,
    "eventType" => event_type: Text,
    "type" => ce_type: Text,
    "eventTime" => event_time: Text,
    "time" => time: Text,
    "data" => data: Value,
    "dataVersion" => data_version: Text,
    "specversion" => spec_version: Text,
    "specVersion" => spec_version_camel: Text,
    "cloudEventsVersion" => cloud_events_version: Present,
    "datacontenttype" => data_content_type: Text,
    "data_base64" => data_base64: Present,
});

impl RawEvent {
    fn schema(&self, cloudevents_only: bool) -> Schema {
        if cloudevents_only || self.event_type.is_none() {
            Schema::CloudEvents
        } else {
            Schema::EventGrid
        }
    }

    fn event_type(&self, schema: Schema) -> Option<&str> {
        match schema {
            Schema::EventGrid => self.event_type.as_deref(),
            Schema::CloudEvents => self.ce_type.as_deref(),
        }
    }

    fn check_spec_version(&self) -> Result<(), EventGridError> {
        if self.cloud_events_version {
            return Err(EventGridError::UnsupportedSpecVersion("0.1".into()));
        }
        match self
            .spec_version
            .as_deref()
            .or(self.spec_version_camel.as_deref())
        {
            None | Some("1.0") => Ok(()),
            Some(other) => Err(EventGridError::UnsupportedSpecVersion(printable(other))),
        }
    }
}

/// `data` of an ACR event (Event Grid `ContainerRegistryEventData` /
/// `ContainerRegistryArtifactEventData`).
#[derive(Default)]
#[cfg_attr(
    test,
    derive(Debug, PartialEq, serde::Deserialize),
    serde(rename_all = "camelCase")
)]
struct AcrData {
    id: Option<String>,
    timestamp: Option<String>,
    action: Option<String>,
    #[cfg_attr(
        test,
        serde(default, deserialize_with = "crate::json::reference::optional_object")
    )]
    target: Option<Target>,
    #[cfg_attr(
        test,
        serde(default, deserialize_with = "crate::json::reference::optional_object")
    )]
    request: Option<EventRequest>,
    location: Option<String>,
    #[cfg_attr(
        test,
        serde(default, deserialize_with = "crate::json::reference::optional_object")
    )]
    connected_registry: Option<ConnectedRegistry>,
}

json_fields!(AcrData {
    "id" => id: Text,
    "timestamp" => timestamp: Text,
    "action" => action: Text,
    "target" => target: Object,
    "request" => request: Object,
    "location" => location: Text,
    "connectedRegistry" => connected_registry: Object,
});

#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq, serde::Deserialize))]
struct ConnectedRegistry {
    name: Option<String>,
}

json_fields!(ConnectedRegistry { "name" => name: Text });

#[derive(Default)]
struct ValidationData {
    validation_code: Option<String>,
    validation_url: Option<String>,
}

json_fields!(ValidationData {
    "validationCode" => validation_code: Text,
    "validationUrl" => validation_url: Text,
});

fn validation(raw: &RawEvent) -> Result<Delivery, EventGridError> {
    let mut data = ValidationData::default();
    match &raw.data {
        Some(value @ Value::Object(_)) => crate::json::read_value(value, &mut data)
            .map_err(|_| EventGridError::MissingValidationCode)?,
        _ => return Err(EventGridError::MissingValidationCode),
    }
    let code = data
        .validation_code
        .filter(|c| !c.is_empty())
        .ok_or(EventGridError::MissingValidationCode)?;
    Ok(Delivery::Validation {
        code,
        validation_url: data.validation_url.filter(|u| !u.is_empty()),
    })
}

/// Whether an event type is Azure Container Registry's (`Microsoft.ContainerRegistry.*`).
fn is_registry_type(name: &str) -> bool {
    const PREFIX: &str = "Microsoft.ContainerRegistry.";
    name.len() > PREFIX.len()
        && name.is_char_boundary(PREFIX.len())
        && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
}

/// The ACR event of one element: of a known type (whose action `data.action` must match,
/// ignoring case, when sent), or of another registry type (`None`: `data.action` must be a
/// short token, see [`Action::parse`]).
fn acr_event(
    index: usize,
    raw: &RawEvent,
    schema: Schema,
    event_type: Option<AcrEventType>,
) -> Result<EventGridEvent, EventGridError> {
    let invalid = |reason: String| EventGridError::InvalidData { index, reason };
    if raw.data_base64 {
        return Err(invalid("binary data (data_base64) is not supported".into()));
    }
    if let Some(ct) = &raw.data_content_type {
        let json = matches!(media_type_essence(Some(ct)), Ok(Some(e)) if e == MEDIA_TYPE_JSON || e.ends_with("+json"));
        if !json {
            return Err(invalid(format!(
                "datacontenttype `{}` is not JSON",
                printable(ct)
            )));
        }
    }
    let mut data = AcrData::default();
    match &raw.data {
        Some(value @ Value::Object(_)) => {
            crate::json::read_value(value, &mut data).map_err(|e| {
                invalid(format!(
                    "data is not an ACR event: {}",
                    printable(&e.to_string())
                ))
            })?
        }
        Some(_) => return Err(invalid("data is not an object".into())),
        None => return Err(invalid("no data".into())),
    }
    let sent_action = data.action.filter(|a| !a.is_empty());
    let action = match event_type {
        Some(event_type) => {
            let action = event_type.action();
            if let Some(sent) = &sent_action {
                if !sent.eq_ignore_ascii_case(action.as_str()) {
                    return Err(EventGridError::ActionMismatch {
                        index,
                        event_type: event_type.as_str(),
                        action: printable(sent),
                    });
                }
            }
            Action::Known(action)
        }
        None => sent_action
            .as_deref()
            .and_then(Action::parse)
            .ok_or_else(|| invalid("data.action is missing or not a short token".into()))?,
    };
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let (id, id_source) = match (non_empty(&data.id), non_empty(&raw.id)) {
        (Some(id), _) => (Some(id), IdSource::Data),
        (None, Some(id)) => (Some(id), IdSource::Envelope),
        (None, None) => (None, IdSource::Absent),
    };
    let (topic, time) = match schema {
        Schema::EventGrid => (raw.topic.clone(), raw.event_time.clone()),
        Schema::CloudEvents => (raw.source.clone(), raw.time.clone()),
    };
    Ok(EventGridEvent {
        schema,
        event_type,
        envelope_id: raw.id.clone(),
        id_source,
        topic,
        subject: raw.subject.clone(),
        time,
        data_version: raw.data_version.clone(),
        location: data.location,
        connected_registry: data.connected_registry.and_then(|c| c.name),
        parsed: ParsedEvent {
            event: AcrEvent {
                id,
                timestamp: data.timestamp,
                action: Some(action.as_str().to_owned()),
                target: data.target,
                request: data.request,
            },
            action,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acr::parse_event;

    macro_rules! fixture {
        ($path:literal) => {
            include_bytes!(concat!("../../../tests/fixtures/", $path)).as_slice()
        };
    }

    const EG_IMAGE_PUSHED: &[u8] = fixture!("eventgrid/eventgrid-schema/image_pushed.json");
    const EG_IMAGE_DELETED: &[u8] = fixture!("eventgrid/eventgrid-schema/image_deleted.json");
    const EG_CHART_PUSHED: &[u8] = fixture!("eventgrid/eventgrid-schema/chart_pushed.json");
    const EG_CHART_DELETED: &[u8] = fixture!("eventgrid/eventgrid-schema/chart_deleted.json");
    const EG_VALIDATION: &[u8] =
        fixture!("eventgrid/eventgrid-schema/subscription_validation.json");
    const CE_IMAGE_PUSHED: &[u8] = fixture!("eventgrid/cloudevents/image_pushed.json");
    const CE_IMAGE_DELETED: &[u8] = fixture!("eventgrid/cloudevents/image_deleted.json");
    const CE_CHART_PUSHED: &[u8] = fixture!("eventgrid/cloudevents/chart_pushed.json");
    const CE_CHART_DELETED: &[u8] = fixture!("eventgrid/cloudevents/chart_deleted.json");
    const CE_BATCH_10: &[u8] = fixture!("eventgrid/cloudevents/batch_10.json");
    const OPTIONS: &[u8] = fixture!("eventgrid/options_handshake.json");

    const EG_CT: Option<&str> = Some("application/json; charset=utf-8");
    const CE_CT: Option<&str> = Some("application/cloudevents+json; charset=utf-8");
    const CE_BATCH_CT: Option<&str> = Some("application/cloudevents-batch+json; charset=utf-8");

    /// The reader and serde's derived readers (the delivery, then each event's `data`) agree
    /// on every Event Grid fixture and its variants (every field given every JSON type,
    /// removed, repeated; truncations).
    #[test]
    fn agrees_with_the_derived_reader() {
        use crate::json::differential::assert_agree;
        use crate::json::reference;
        use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
        use serde::Deserialize;

        /// The single-object-or-array reader as it was before `json::read_object_or_array`.
        struct OneOrManyRef(Vec<RawEvent>, usize);

        impl<'de> Deserialize<'de> for OneOrManyRef {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(OneOrManyVisitor)
            }
        }

        struct OneOrManyVisitor;

        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrManyRef;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event object or an array of event objects")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OneOrManyRef, A::Error> {
                let one = RawEvent::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(OneOrManyRef(vec![one], 1))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OneOrManyRef, A::Error> {
                let capped = reference::CappedVisitor::<reference::Object<RawEvent>, MAX_EVENTS>(
                    std::marker::PhantomData,
                )
                .visit_seq(seq)?;
                Ok(OneOrManyRef(
                    capped.items.into_iter().map(|object| object.0).collect(),
                    capped.total,
                ))
            }
        }

        let fixtures = [
            EG_IMAGE_PUSHED,
            EG_IMAGE_DELETED,
            EG_CHART_PUSHED,
            EG_CHART_DELETED,
            EG_VALIDATION,
            CE_IMAGE_PUSHED,
            CE_IMAGE_DELETED,
            CE_CHART_PUSHED,
            CE_CHART_DELETED,
            CE_BATCH_10,
        ];
        let (mut deliveries, mut datas) = (0, 0);
        for fixture in fixtures {
            for body in crate::json::differential::variants(fixture) {
                let mut delivery = Capped::<RawEvent, MAX_EVENTS>::default();
                let new = crate::json::read_object_or_array(&body, &mut delivery)
                    .map(|()| (delivery.items, delivery.total));
                let old = serde_json::from_slice::<OneOrManyRef>(&body).map(|o| (o.0, o.1));
                if let Ok((events, _)) = &old {
                    for data in events.iter().filter_map(|e| e.data.as_ref()) {
                        if data.is_object() {
                            let mut acr = AcrData::default();
                            let new = crate::json::read_value(data, &mut acr).map(|()| acr);
                            assert_agree(&body, new, AcrData::deserialize(data));
                            datas += 1;
                        }
                    }
                }
                assert_agree(&body, new, old);
                deliveries += 1;
            }
        }
        assert!(deliveries > 5000 && datas > 5000, "{deliveries} {datas}");
    }

    fn events(ct: Option<&str>, body: &[u8]) -> (Vec<EventGridEvent>, Vec<SkippedEvent>) {
        match parse_delivery(ct, body).unwrap() {
            Delivery::Events { events, skipped } => (events, skipped),
            other => panic!("not events: {other:?}"),
        }
    }

    fn one(ct: Option<&str>, body: &[u8]) -> EventGridEvent {
        let (mut events, skipped) = events(ct, body);
        assert_eq!((events.len(), skipped.len()), (1, 0));
        events.remove(0)
    }

    #[test]
    fn documented_events_in_both_schemas() {
        let table = [
            (
                EG_IMAGE_PUSHED,
                CE_IMAGE_PUSHED,
                AcrEventType::ImagePushed,
                "c25fdb80-ebbd-4dd0-a29c-a7349e6388f6",
            ),
            (
                EG_IMAGE_DELETED,
                CE_IMAGE_DELETED,
                AcrEventType::ImageDeleted,
                "6fdef14c-2594-41e8-9156-c0376eb0a190",
            ),
            (
                EG_CHART_PUSHED,
                CE_CHART_PUSHED,
                AcrEventType::ChartPushed,
                "ea3a9c28-5b17-40f6-a500-3f02b682927",
            ),
            (
                EG_CHART_DELETED,
                CE_CHART_DELETED,
                AcrEventType::ChartDeleted,
                "39136b3a-1a7e-416f-a09e-5c85d5402fca",
            ),
        ];
        for (eg_body, ce_body, event_type, id) in table {
            let eg = one(EG_CT, eg_body);
            let ce = one(CE_CT, ce_body);
            for (e, schema) in [(&eg, Schema::EventGrid), (&ce, Schema::CloudEvents)] {
                assert_eq!(e.schema, schema);
                assert_eq!(e.event_type, Some(event_type));
                assert_eq!(e.parsed.action, event_type.action());
                assert_eq!(
                    e.parsed.event.action.as_deref(),
                    Some(event_type.action().as_str())
                );
                assert_eq!(e.parsed.event.id.as_deref(), Some(id));
                assert_eq!(e.id_source, IdSource::Data);
                assert_eq!(e.location.as_deref(), Some("westus"));
                assert_eq!(e.connected_registry.as_deref(), Some("edge1"));
                assert!(e
                    .topic
                    .as_deref()
                    .unwrap()
                    .contains("/providers/Microsoft.ContainerRegistry/registries/"));
                assert!(e.time.is_some() && e.subject.is_some());
            }
            assert_eq!(eg.data_version.as_deref(), Some("2.0"));
            assert_eq!(ce.data_version, None);
            // Same event, either schema: same id, same target and request.
            assert_eq!(eg.parsed.event.id, ce.parsed.event.id);
            assert_eq!(eg.parsed.event.target, ce.parsed.event.target);
            assert_eq!(eg.parsed.event.request, ce.parsed.event.request);
            assert_eq!(
                (&eg.envelope_id, &eg.subject, &eg.time),
                (&ce.envelope_id, &ce.subject, &ce.time)
            );
        }
    }

    #[test]
    fn image_pushed_fields() {
        let e = one(EG_CT, EG_IMAGE_PUSHED);
        assert_eq!(e.envelope_id, e.parsed.event.id);
        let a = &e.parsed.event;
        assert_eq!(a.timestamp.as_deref(), Some("2021-09-08T06:37:45.4681009Z"));
        let t = a.target.as_ref().unwrap();
        assert_eq!(
            t.media_type.as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        assert_eq!((t.size, t.length), (Some(1153), Some(1153)));
        assert_eq!(t.repository.as_deref(), Some("samples/nginx"));
        assert_eq!(t.tag.as_deref(), Some("latest"));
        let r = a.request.as_ref().unwrap();
        assert_eq!(r.host.as_deref(), Some("jolovcr.azurecr.io"));
        assert_eq!(r.method.as_deref(), Some("PUT"));
        assert!(r
            .user_agent
            .as_deref()
            .unwrap()
            .ends_with("(Docker-Client/20.10.7 \\(windows\\))"));
        assert_eq!(e.subject.as_deref(), Some("samples/nginx:latest"));
        assert_eq!(e.time.as_deref(), Some("2021-09-08T06:37:45.6609948Z"));
    }

    #[test]
    fn chart_events_have_no_request_and_keep_name_and_version() {
        for body in [EG_CHART_PUSHED, EG_CHART_DELETED] {
            let e = one(None, body);
            assert_eq!(e.parsed.event.request, None);
            let t = e.parsed.event.target.unwrap();
            assert_eq!(
                (t.name.as_deref(), t.version.as_deref()),
                (Some("mychart"), Some("1.0.0"))
            );
            assert_eq!(t.tag.as_deref(), Some("mychart-1.0.0.tgz"));
        }
        // The same documented event, two schemas, two spellings of one instant: only the id is
        // relied on to be equal.
        let eg = one(None, EG_CHART_PUSHED).parsed.event.timestamp;
        let ce = one(CE_CT, CE_CHART_PUSHED).parsed.event.timestamp;
        assert_eq!(eg.as_deref(), Some("2019-03-12T22:16:31.0087496+00:00"));
        assert_eq!(ce.as_deref(), Some("2019-03-12T15:16:31.0087496-07:00"));
        // The documented ChartPushed carries a data.id that differs from its envelope id; data.id wins.
        let e = one(None, EG_CHART_PUSHED);
        assert_eq!(
            e.envelope_id.as_deref(),
            Some("ea3a9c28-5b17-40f6-a500-3f02b6829277")
        );
        assert_eq!(
            e.parsed.event.id.as_deref(),
            Some("ea3a9c28-5b17-40f6-a500-3f02b682927")
        );
    }

    #[test]
    fn cloudevents_batch_of_ten() {
        let (events, skipped) = events(CE_BATCH_CT, CE_BATCH_10);
        assert_eq!((events.len(), skipped.len()), (10, 0));
        let ids: std::collections::BTreeSet<_> = events
            .iter()
            .map(|e| e.parsed.event.id.clone().unwrap())
            .collect();
        assert_eq!(ids.len(), 10);
        for e in &events {
            assert_eq!(e.schema, Schema::CloudEvents);
            assert_eq!(e.envelope_id, e.parsed.event.id);
            assert_eq!(e.id_source, IdSource::Data);
        }
        let count = |t| events.iter().filter(|e| e.event_type == Some(t)).count();
        assert_eq!(AcrEventType::ALL.map(count), [6, 2, 1, 1]);
        // The same batch without a content type, or as plain JSON, reads the same.
        for ct in [None, Some("application/json")] {
            assert_eq!(
                parse_delivery(ct, CE_BATCH_10).unwrap(),
                parse_delivery(CE_BATCH_CT, CE_BATCH_10).unwrap()
            );
        }
    }

    #[test]
    fn structured_and_batched_forms_are_interchangeable() {
        let single = parse_delivery(CE_CT, CE_IMAGE_PUSHED).unwrap();
        let wrapped = format!("[{}]", String::from_utf8_lossy(CE_IMAGE_PUSHED));
        assert_eq!(
            parse_delivery(CE_BATCH_CT, wrapped.as_bytes()).unwrap(),
            single
        );
        assert_eq!(parse_delivery(CE_CT, wrapped.as_bytes()).unwrap(), single);
        let bare_eg =
            serde_json::to_vec(&serde_json::from_slice::<Value>(EG_IMAGE_PUSHED).unwrap()[0])
                .unwrap();
        assert_eq!(
            parse_delivery(None, &bare_eg).unwrap(),
            parse_delivery(None, EG_IMAGE_PUSHED).unwrap()
        );
    }

    /// Every ACR webhook fixture, wrapped as the `data` of an Event Grid event and of a
    /// CloudEvent, gives exactly the ParsedEvent the webhook route gives.
    #[test]
    fn same_event_by_webhook_and_by_event_grid() {
        let fixtures: [(&[u8], AcrEventType); 7] = [
            (fixture!("acr/push.json"), AcrEventType::ImagePushed),
            (fixture!("acr/delete.json"), AcrEventType::ImageDeleted),
            (fixture!("acr/chart_push.json"), AcrEventType::ChartPushed),
            (
                fixture!("acr/chart_delete.json"),
                AcrEventType::ChartDeleted,
            ),
            (
                fixture!("acr/push_digest_only.json"),
                AcrEventType::ImagePushed,
            ),
            (
                fixture!("acr/push_oci_helm.json"),
                AcrEventType::ImagePushed,
            ),
            (
                fixture!("acr/push_unknown_fields.json"),
                AcrEventType::ImagePushed,
            ),
        ];
        for (body, event_type) in fixtures {
            let webhook = parse_event(body).unwrap();
            let data: Value = serde_json::from_slice(body).unwrap();
            let eg = serde_json::json!([{
                "id": "envelope-id", "topic": "/subscriptions/x", "subject": "s",
                "eventType": event_type.as_str(), "eventTime": "2024-01-01T00:00:00Z",
                "data": data, "dataVersion": "1.0", "metadataVersion": "1"
            }]);
            let ce = serde_json::json!({
                "specversion": "1.0", "id": "envelope-id", "source": "/subscriptions/x",
                "type": event_type.as_str(), "time": "2024-01-01T00:00:00Z", "data": data
            });
            let eg = one(EG_CT, eg.to_string().as_bytes());
            let ce = one(CE_CT, ce.to_string().as_bytes());
            assert_eq!(eg.parsed, webhook);
            assert_eq!(ce.parsed, webhook);
        }
    }

    #[test]
    fn subscription_validation() {
        let d = parse_delivery(EG_CT, EG_VALIDATION).unwrap();
        assert_eq!(
            d,
            Delivery::Validation {
                code: "512d38b6-c7b8-40c8-89fe-f46f9e9622b6".into(),
                validation_url: Some("https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/myeventsub/validate?id=0000000000-0000-0000-0000-00000000000000&t=2022-10-28T04:23:35.1981776Z&apiVersion=2018-05-01-preview&token=1A1A1A1A".into()),
            }
        );
        let body = validation_response_body("512d38b6-c7b8-40c8-89fe-f46f9e9622b6");
        assert_eq!(
            body,
            br#"{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}"#
        );
        // Hostile codes are escaped, not injected.
        let body = validation_response_body("a\"}\n");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["validationResponse"], "a\"}\n");
    }

    #[test]
    fn validation_edge_cases() {
        let v = |data: &str| {
            format!(
                r#"[{{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{data}}}]"#
            )
        };
        assert_eq!(
            parse_delivery(None, v(r#"{"validationCode":"c"}"#).as_bytes()).unwrap(),
            Delivery::Validation {
                code: "c".into(),
                validation_url: None
            }
        );
        for data in [
            r#"{}"#,
            r#"{"validationCode":""}"#,
            r#"{"validationCode":null}"#,
            r#"{"validationCode":5}"#,
            "null",
            "\"c\"",
            r#"{"validationUrl":"https://x"}"#,
        ] {
            assert_eq!(
                parse_delivery(None, v(data).as_bytes()),
                Err(EventGridError::MissingValidationCode),
                "{data}"
            );
        }
        let mixed = format!(
            "[{},{}]",
            &v(r#"{"validationCode":"c"}"#)[1..v(r#"{"validationCode":"c"}"#).len() - 1],
            String::from_utf8_lossy(&EG_IMAGE_PUSHED[1..EG_IMAGE_PUSHED.len() - 2])
        );
        assert_eq!(
            parse_delivery(None, mixed.as_bytes()),
            Err(EventGridError::ValidationNotAlone)
        );
        // Case of the type is ignored.
        let lower = v(r#"{"validationCode":"c"}"#).replace(
            "Microsoft.EventGrid.SubscriptionValidationEvent",
            "microsoft.eventgrid.subscriptionvalidationevent",
        );
        assert!(matches!(
            parse_delivery(None, lower.as_bytes()),
            Ok(Delivery::Validation { .. })
        ));
    }

    #[test]
    fn unknown_types_are_skipped_next_to_acr_events_and_refused_alone() {
        let storage = r#"{"id":"s1","eventType":"Microsoft.Storage.BlobCreated","subject":"x","data":"not an object","dataVersion":"","metadataVersion":"1"}"#;
        let image =
            String::from_utf8_lossy(&EG_IMAGE_PUSHED[1..EG_IMAGE_PUSHED.len() - 2]).into_owned();
        let body = format!("[{storage},{image},{{}}]");
        let (events, skipped) = events(EG_CT, body.as_bytes());
        assert_eq!(events.len(), 1);
        assert_eq!(
            skipped,
            vec![
                SkippedEvent {
                    index: 0,
                    envelope_id: Some("s1".into()),
                    event_type: Some("Microsoft.Storage.BlobCreated".into())
                },
                SkippedEvent {
                    index: 2,
                    envelope_id: None,
                    event_type: None
                },
            ]
        );
        assert_eq!(
            parse_delivery(EG_CT, format!("[{storage}]").as_bytes()),
            Err(EventGridError::UnsupportedEventType(
                "Microsoft.Storage.BlobCreated".into()
            ))
        );
        assert_eq!(
            parse_delivery(EG_CT, b"[{}]"),
            Err(EventGridError::UnsupportedEventType(String::new()))
        );
        let deleted_sub = r#"{"specversion":"1.0","id":"1","type":"Microsoft.EventGrid.SubscriptionDeletedEvent","source":"x","data":{"eventSubscriptionId":"y"}}"#;
        assert!(matches!(
            parse_delivery(CE_CT, deleted_sub.as_bytes()),
            Err(EventGridError::UnsupportedEventType(_))
        ));
        let err = parse_delivery(EG_CT, format!("[{storage}]").as_bytes()).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn event_type_names() {
        for t in AcrEventType::ALL {
            assert_eq!(AcrEventType::from_wire(t.as_str()), Some(t));
            assert_eq!(
                AcrEventType::from_wire(&t.as_str().to_ascii_uppercase()),
                Some(t)
            );
        }
        assert_eq!(
            AcrEventType::from_wire("ImagePushed"),
            Some(AcrEventType::ImagePushed)
        );
        assert_eq!(
            AcrEventType::from_wire("imagedeleted"),
            Some(AcrEventType::ImageDeleted)
        );
        for bad in [
            "",
            "Microsoft.ContainerRegistry.",
            "Microsoft.ContainerRegistry.ImageQuarantined",
            "ContainerRegistry.ImagePushed",
            "Microsoft.Storage.ImagePushed",
            " ImagePushed",
        ] {
            assert_eq!(AcrEventType::from_wire(bad), None, "{bad}");
        }
        assert_eq!(AcrEventType::ChartDeleted.action(), AcrAction::ChartDelete);
    }

    #[test]
    fn schema_follows_content_type_then_fields() {
        // With a CloudEvents content type, `eventType` is not read: `type` is.
        let eg_shaped = String::from_utf8_lossy(EG_IMAGE_PUSHED).into_owned();
        assert!(matches!(
            parse_delivery(CE_BATCH_CT, eg_shaped.as_bytes()),
            Err(EventGridError::UnsupportedEventType(_))
        ));
        // Both names present with JSON: `eventType` wins.
        let both = r#"[{"eventType":"Microsoft.ContainerRegistry.ImagePushed","type":"other","data":{"action":"push"}}]"#;
        assert_eq!(one(None, both.as_bytes()).schema, Schema::EventGrid);
    }

    #[test]
    fn id_fallbacks() {
        let ev = |id: &str, data_id: &str| {
            format!(
                r#"{{"specversion":"1.0","type":"Microsoft.ContainerRegistry.ImagePushed"{id},"data":{{"action":"push"{data_id}}}}}"#
            )
        };
        let e = one(CE_CT, ev(r#","id":"env""#, r#","id":"dat""#).as_bytes());
        assert_eq!(
            (e.parsed.event.id.as_deref(), e.id_source),
            (Some("dat"), IdSource::Data)
        );
        let e = one(CE_CT, ev(r#","id":"env""#, "").as_bytes());
        assert_eq!(
            (e.parsed.event.id.as_deref(), e.id_source),
            (Some("env"), IdSource::Envelope)
        );
        let e = one(CE_CT, ev(r#","id":"env""#, r#","id":"""#).as_bytes());
        assert_eq!(
            (e.parsed.event.id.as_deref(), e.id_source),
            (Some("env"), IdSource::Envelope)
        );
        let e = one(CE_CT, ev("", r#","id":null"#).as_bytes());
        assert_eq!((e.parsed.event.id, e.id_source), (None, IdSource::Absent));
    }

    #[test]
    fn data_problems_are_precise() {
        let ev = |extra: &str| {
            format!(
                r#"[{{"id":"e","eventType":"Microsoft.ContainerRegistry.ImageDeleted"{extra}}}]"#
            )
        };
        let invalid = |body: String| match parse_delivery(None, body.as_bytes()) {
            Err(EventGridError::InvalidData { index: 0, reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(invalid(ev("")), "no data");
        assert_eq!(invalid(ev(r#","data":null"#)), "no data");
        assert_eq!(invalid(ev(r#","data":"x""#)), "data is not an object");
        assert_eq!(invalid(ev(r#","data":[]"#)), "data is not an object");
        assert!(invalid(ev(r#","data":{"target":{"size":"big"}}"#))
            .starts_with("data is not an ACR event"));
        assert!(invalid(ev(r#","data":{"target":[1]}"#)).starts_with("data is not an ACR event"));
        assert!(invalid(ev(r#","data_base64":"AAAA""#)).contains("data_base64"));
        assert!(
            invalid(ev(r#","datacontenttype":"application/xml","data":{}"#)).contains("not JSON")
        );
        // JSON data content types are fine; an action-less data takes the type's action.
        let e = one(
            None,
            ev(r#","datacontenttype":"application/json","data":{}"#).as_bytes(),
        );
        assert_eq!(e.parsed.event.action.as_deref(), Some("delete"));
        assert_eq!(
            parse_delivery(None, ev(r#","data":{"action":"push"}"#).as_bytes()),
            Err(EventGridError::ActionMismatch {
                index: 0,
                event_type: "Microsoft.ContainerRegistry.ImageDeleted",
                action: "push".into()
            })
        );
        // Wrong envelope types are shape errors of the whole delivery.
        assert!(matches!(
            parse_delivery(None, br#"[{"id":5,"eventType":"x"}]"#),
            Err(EventGridError::NotAnEvent(_))
        ));
    }

    #[test]
    fn spec_versions() {
        let ce = |v: &str| {
            format!(
                r#"{{{v}"type":"Microsoft.ContainerRegistry.ImagePushed","id":"1","data":{{"action":"push"}}}}"#
            )
        };
        assert!(parse_delivery(CE_CT, ce(r#""specversion":"1.0","#).as_bytes()).is_ok());
        assert!(parse_delivery(CE_CT, ce("").as_bytes()).is_ok());
        assert!(parse_delivery(CE_CT, ce(r#""specVersion":"1.0","#).as_bytes()).is_ok());
        assert_eq!(
            parse_delivery(CE_CT, ce(r#""specversion":"0.3","#).as_bytes()),
            Err(EventGridError::UnsupportedSpecVersion("0.3".into()))
        );
        let v01 = r#"{"cloudEventsVersion":"0.1","eventType":"Microsoft.ContainerRegistry.ImagePushed","eventID":"1","data":{}}"#;
        assert_eq!(
            parse_delivery(CE_CT, v01.as_bytes()),
            Err(EventGridError::UnsupportedSpecVersion("0.1".into()))
        );
        assert!(matches!(
            parse_delivery(CE_CT, ce(r#""specversion":1.0,"#).as_bytes()),
            Err(EventGridError::NotAnEvent(_))
        ));
    }

    #[test]
    fn content_types() {
        for ct in [
            None,
            Some(""),
            Some("application/json"),
            Some("APPLICATION/JSON;charset=UTF-8"),
            CE_CT,
            CE_BATCH_CT,
        ] {
            assert!(parse_delivery(ct, CE_IMAGE_PUSHED).is_ok(), "{ct:?}");
        }
        for ct in [
            "text/plain",
            "application/cloudevents+xml",
            "application/vnd.docker.distribution.events.v1+json",
            "application/x-www-form-urlencoded",
            "nonsense",
        ] {
            let err = parse_delivery(Some(ct), CE_IMAGE_PUSHED).unwrap_err();
            assert!(
                matches!(err, EventGridError::UnsupportedContentType(_)),
                "{ct}"
            );
            assert_eq!(err.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        assert_eq!(
            parse_delivery(
                Some("application/cloudevents+json; charset=utf-16"),
                CE_IMAGE_PUSHED
            ),
            Err(EventGridError::UnsupportedCharset("utf-16".into()))
        );
    }

    #[test]
    fn hostile_bodies() {
        use EventGridError::*;
        type Check = fn(&EventGridError) -> bool;
        let cases: [(&[u8], Check); 12] = [
            (b"", |e| matches!(e, InvalidJson(_))),
            (b"[", |e| matches!(e, InvalidJson(_))),
            (b"\xff", |e| matches!(e, InvalidJson(_))),
            (b"[] x", |e| matches!(e, InvalidJson(_))),
            (b"[]", |e| *e == NoEvents),
            (b"null", |e| matches!(e, NotAnEvent(_))),
            (b"1", |e| matches!(e, NotAnEvent(_))),
            (b"\"[]\"", |e| matches!(e, NotAnEvent(_))),
            (b"[null]", |e| matches!(e, NotAnEvent(_))),
            (b"[1,2]", |e| matches!(e, NotAnEvent(_))),
            (b"[[]]", |e| matches!(e, NotAnEvent(_))),
            (br#"[{"eventType":"a","eventType":"b"}]"#, |e| {
                matches!(e, NotAnEvent(_))
            }),
        ];
        for (body, check) in cases {
            let err = parse_delivery(None, body).unwrap_err();
            assert!(check(&err), "{:?}: {err:?}", String::from_utf8_lossy(body));
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        }
        // BOM and unknown fields everywhere.
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(CE_IMAGE_PUSHED);
        assert!(parse_delivery(CE_CT, &bom).is_ok());
        // An ACR webhook body posted here by mistake has no event type.
        assert!(matches!(
            parse_delivery(None, fixture!("acr/push.json")),
            Err(UnsupportedEventType(_))
        ));
    }

    #[test]
    fn too_many_events() {
        let body = |n: usize| {
            let e = r#"{"eventType":"Microsoft.ContainerRegistry.ImagePushed","data":{"action":"push"}}"#;
            format!("[{}]", vec![e; n].join(","))
        };
        assert!(parse_delivery(None, body(MAX_EVENTS).as_bytes()).is_ok());
        let err = parse_delivery(None, body(MAX_EVENTS + 1).as_bytes()).unwrap_err();
        assert_eq!(
            err,
            EventGridError::TooManyEvents {
                count: MAX_EVENTS + 1,
                max: MAX_EVENTS
            }
        );
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        // Elements past the cap are counted, not parsed.
        let mut over = body(MAX_EVENTS);
        over.pop();
        over.push_str(",null,7,[[[]]]]");
        assert_eq!(
            parse_delivery(None, over.as_bytes()),
            Err(EventGridError::TooManyEvents {
                count: MAX_EVENTS + 3,
                max: MAX_EVENTS
            })
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        // Outside `data`, an unknown field is skipped without recursion.
        let body = format!(
            r#"[{{"x":{deep},"eventType":"Microsoft.ContainerRegistry.ImagePushed","data":{{}}}}]"#
        );
        assert!(parse_delivery(None, body.as_bytes()).is_ok());
        // Inside `data` (kept as a JSON value) it hits serde_json's recursion limit.
        let body = format!(
            r#"[{{"eventType":"Microsoft.ContainerRegistry.ImagePushed","data":{{"x":{deep}}}}}]"#
        );
        assert!(matches!(
            parse_delivery(None, body.as_bytes()),
            Err(EventGridError::InvalidJson(_))
        ));
    }

    #[test]
    fn messages_are_bounded() {
        let long_type = format!(r#"[{{"eventType":"{}"}}]"#, "T".repeat(5000));
        let err = parse_delivery(None, long_type.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.len() < 400, "{}", err.len());
        let long_action = format!(
            r#"[{{"eventType":"ImagePushed","data":{{"action":"{}"}}}}]"#,
            "a".repeat(5000)
        );
        let err = parse_delivery(None, long_action.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{}", err.len());
        let (_, skipped) = events(None, format!(r#"[{{"eventType":"{}\u0007","id":"{}"}},{{"eventType":"ImagePushed","data":{{}}}}]"#, "T".repeat(500), "i".repeat(500)).as_bytes());
        assert!(skipped[0].event_type.as_ref().unwrap().chars().count() <= 65);
        assert!(skipped[0].envelope_id.as_ref().unwrap().chars().count() <= 65);
    }

    #[test]
    fn abuse_protection() {
        let v: Value = serde_json::from_slice(OPTIONS).unwrap();
        let origin = v["request"]["headers"]["WebHook-Request-Origin"].as_str();
        let answer = abuse_protection_answer(origin).unwrap();
        let expected = &v["response"]["headers"];
        assert_eq!(answer[0].0, WEBHOOK_ALLOWED_ORIGIN);
        assert_eq!(
            answer[0].1,
            expected["WebHook-Allowed-Origin"].as_str().unwrap()
        );
        assert_eq!(answer[1].0, WEBHOOK_ALLOWED_RATE);
        assert_eq!(
            answer[1].1,
            expected["WebHook-Allowed-Rate"].as_str().unwrap()
        );
        assert_eq!(ALLOW_METHODS, expected["Allow"].as_str().unwrap());
        assert_eq!(v["response"]["status"], 200);
        // Header names match the spec's spelling, case-insensitively.
        assert_eq!(WEBHOOK_REQUEST_ORIGIN.as_str(), "webhook-request-origin");
        assert_eq!(WEBHOOK_REQUEST_RATE.as_str(), "webhook-request-rate");
        assert_eq!(AEG_EVENT_TYPE.as_str(), "aeg-event-type");

        let trimmed = abuse_protection_answer(Some(" eventemitter.example.com ")).unwrap();
        assert_eq!(trimmed[0].1, "eventemitter.example.com");
        assert_eq!(abuse_protection_answer(Some("*")).unwrap()[0].1, "*");
        assert_eq!(
            abuse_protection_answer(Some("localhost:8080")).unwrap()[0].1,
            "localhost:8080"
        );
        let long = "a".repeat(MAX_ORIGIN_LEN + 1);
        for bad in [
            None,
            Some(""),
            Some("   "),
            Some("a b"),
            Some("a\r\nSet-Cookie: x"),
            Some("**"),
            Some("https://x/"),
            Some("é.example"),
            Some(long.as_str()),
        ] {
            assert_eq!(abuse_protection_answer(bad), None, "{bad:?}");
        }
    }

    /// Events of a batch are objects: an array of the fields in order (which serde's derive
    /// would otherwise take for the event) is refused like any other non-object.
    #[test]
    fn batch_elements_must_be_objects() {
        let mut fields = vec!["null"; 15];
        fields[0] = r#""e1""#;
        fields[4] = r#""Microsoft.ContainerRegistry.ImagePushed""#;
        fields[8] = r#"{"id":"d1","action":"push","target":{"repository":"r","tag":"t"}}"#;
        let positional = format!("[[{}]]", fields.join(","));
        match parse_delivery(None, positional.as_bytes()) {
            Err(EventGridError::NotAnEvent(message)) => {
                assert!(message.contains("expected a JSON object"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let as_object = r#"[{"id":"e1","eventType":"Microsoft.ContainerRegistry.ImagePushed",
            "data":{"id":"d1","action":"push","target":{"repository":"r","tag":"t"}}}]"#;
        assert!(parse_delivery(None, as_object.as_bytes()).is_ok());
    }
}
