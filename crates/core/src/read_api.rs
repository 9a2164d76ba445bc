//! The read API's pure parts: `GET /events?image=&tag=&action=&since=&until=&limit=&continuation=`
//! and `GET /events/{id}`.
//!
//! - [`EventQuery::parse`] reads and validates the query string.
//! - [`query_body`] builds the Cosmos DB SQL query, parameterised only: the SQL text is put
//!   together from fixed fragments, and every value travels in `parameters`.
//! - [`query_partition_key`] says whether the query can stay in one partition.
//! - [`partition_key_ranges`] reads the container's partition key ranges, which a query
//!   that cannot stay in one partition is sent to one by one ([`crate::event_reads`]).
//! - [`newest_first`] is the list order, used to merge the ranges' answers, and
//!   [`Position`] is where a page ended in it.
//! - [`seal_continuation`] / [`open_continuation`] wrap that position so that it goes back to
//!   the client opaque, and a forged or re-targeted token is refused (400).
//! - [`page_body`] shapes a page: `{"events": [...], "continuation": "..."}`.
//! - [`document_path_id`] turns the `{id}` path segment into a document id, and
//!   [`id_parameter`] reads the `id` of `GET /events?id=`, the form that names any id.
//!
//! # Ordering
//! Newest first by `receivedAt`, then by `id`, both descending. `receivedAt` is written by
//! this receiver, always as fixed-width RFC 3339 in UTC with milliseconds
//! (`2024-05-01T12:00:00.123Z`), so string order is time order. The event's own `timestamp`
//! is not: senders write 1 to 9 fraction digits (and sometimes offsets), so `...:01.5Z` sorts
//! after `...:01.343145347Z` as a string although it is later, and the order would be wrong.
//! `id` breaks ties between events received in the same millisecond, so pages are stable.
//!
//! On real Cosmos DB, ordering by two properties needs a composite index on
//! `(/receivedAt DESC, /id DESC)` (or both ascending) in the container's indexing policy.
//!
//! Documents without a string `receivedAt` (written by other tools, such as the Azure
//! Function this receiver replaces) come after all others, by `id` descending.
//!
//! # Paging across partitions
//! Cosmos DB's gateway refuses an `ORDER BY` query that spans partitions (400, "The provided
//! cross partition query can not be directly served by the gateway"): the SDKs merge the
//! partitions' answers themselves. So does this receiver. A page is the first `limit` events,
//! in the list order, of the merge of each partition key range's own first `limit + 1` (each
//! range answers in order); there are more pages when the merge holds more than `limit`.
//! The continuation token carries the last listed event's position (`receivedAt`, `id`), and
//! the next page's query asks each range only for what comes after it (keyset paging): the
//! token does not depend on how the container is split, stays small, and survives a
//! partition split between two pages.
//!
//! # Time window
//! `since` is inclusive and `until` exclusive (`since <= receivedAt < until`), so consecutive
//! windows neither overlap nor leave gaps. Both accept any RFC 3339 time (any fraction length,
//! `Z` or an offset) and are compared at millisecond precision, in UTC, like `receivedAt`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::acr::Action;
use crate::auth::CODE_QUERY_PARAMETER;
use crate::cosmos::{partition_key_header_for_str, PartitionKeyPath};
use crate::document::{is_safe_id, safe_id};
use crate::text::printable;
use crate::time::{normalise_time, TimeError};
use crate::url::{decode_strict, encode_component, query_pairs};

/// Route: the list of stored events.
pub const EVENTS_ROUTE: &str = "/events";
/// Route prefix of one stored event: `/events/{id}`.
pub const EVENT_ROUTE_PREFIX: &str = "/events/";

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page size; a larger `limit` is lowered to this.
pub const MAX_LIMIT: u32 = 100;
/// The longest `image` or `tag` value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;
/// The longest continuation token accepted, in bytes.
pub const MAX_CONTINUATION_LEN: usize = 16 * 1024;
/// The longest `{id}` path segment accepted, in bytes.
pub const MAX_ID_SEGMENT_LEN: usize = 4 * 1024;
/// Properties Cosmos DB adds to every document, removed from answers.
pub const SYSTEM_PROPERTIES: [&str; 5] = ["_rid", "_self", "_etag", "_attachments", "_ts"];

/// What the HMAC of a continuation token is bound to, besides the filters: a version tag, so
/// a later format can never be confused with this one.
const CONTINUATION_CONTEXT: &str = "acr-webhook/events-continuation/v2";

/// A parsed `GET /events` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events of this repository (`image` in the document).
    pub image: Option<String>,
    /// Only events with this tag.
    pub tag: Option<String>,
    /// Only events with this action: a short token, lower-cased (known actions and any
    /// other the senders used, see [`crate::acr::Action::parse`]).
    pub action: Option<String>,
    /// Only events received at or after this time: RFC 3339, UTC, milliseconds, exactly as
    /// `receivedAt` is written.
    pub since: Option<String>,
    /// Only events received before this time (same form as `since`).
    pub until: Option<String>,
    /// Page size, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// The sealed continuation token of the previous page, as the client sent it; open it with
    /// [`open_continuation`].
    pub continuation: Option<String>,
}

impl Default for EventQuery {
    /// No filter, the default page size, the first page.
    fn default() -> Self {
        Self {
            image: None,
            tag: None,
            action: None,
            since: None,
            until: None,
            limit: DEFAULT_LIMIT,
            continuation: None,
        }
    }
}

/// Why a `GET /events` query string is refused (400). Values are shown bounded and with control
/// characters replaced; the continuation token is never shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter this API does not have.
    #[error("unknown query parameter `{0}` (known: image, tag, action, since, until, limit, continuation)")]
    UnknownParameter(String),
    /// A parameter given twice.
    #[error("the query parameter `{0}` is given more than once")]
    DuplicateParameter(&'static str),
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8 once decoded.
    #[error("the query parameter `{0}` is not correctly percent-encoded UTF-8")]
    BadEncoding(String),
    /// A value longer than allowed.
    #[error("the query parameter `{parameter}` is longer than {max} bytes")]
    TooLong {
        /// The parameter.
        parameter: &'static str,
        /// The limit.
        max: usize,
    },
    /// `action` is not a short token.
    #[error(
        "invalid action `{0}` (an action is 1 to 64 of a-z 0-9 _ . -, such as push or delete)"
    )]
    UnknownAction(String),
    /// `limit` is not a whole number of at least 1.
    #[error("`limit` must be a whole number from 1 to {max} (larger values are lowered to {max}), not `{value}`")]
    InvalidLimit {
        /// The value sent.
        value: String,
        /// [`MAX_LIMIT`].
        max: u32,
    },
    /// `since` or `until` is not an RFC 3339 time.
    #[error("`{parameter}` is not a usable RFC 3339 time such as 2024-05-01T12:00:00Z: {reason}")]
    InvalidTime {
        /// `since` or `until`.
        parameter: &'static str,
        /// What is wrong.
        reason: TimeError,
    },
    /// `since` is not before `until`.
    #[error("`since` must be earlier than `until` (since is inclusive, until exclusive)")]
    EmptyWindow,
    /// `id` together with a filter or paging parameter.
    #[error("`id` names one event and takes no other parameter (`{0}` given)")]
    IdWithOthers(String),
}

impl EventQuery {
    /// Parses the query string of `GET /events` (without the `?`; empty for none).
    ///
    /// Rules: keys and values are percent-decoded (`+` stays `+`, so offsets such as
    /// `+02:00` survive clients that do not encode them); an empty value counts as not given;
    /// unknown and repeated parameters are refused; `code` (the webhook key, see
    /// [`crate::auth`]) is skipped, never interpreted here.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut out = Self::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for (raw_key, raw_value) in query_pairs(query) {
            let key = decode_strict(raw_key)
                .ok_or_else(|| QueryError::BadEncoding(printable(raw_key)))?;
            if key == CODE_QUERY_PARAMETER {
                continue;
            }
            let name = known_parameter(&key)
                .ok_or_else(|| QueryError::UnknownParameter(printable(&key)))?;
            if seen.contains(&name) {
                return Err(QueryError::DuplicateParameter(name));
            }
            seen.push(name);
            let value =
                decode_strict(raw_value).ok_or_else(|| QueryError::BadEncoding(name.to_owned()))?;
            if value.is_empty() {
                continue;
            }
            let max = if name == "continuation" {
                MAX_CONTINUATION_LEN
            } else {
                MAX_VALUE_LEN
            };
            if value.len() > max {
                return Err(QueryError::TooLong {
                    parameter: name,
                    max,
                });
            }
            match name {
                "image" => out.image = Some(value),
                "tag" => out.tag = Some(value),
                "action" => {
                    out.action = Some(
                        Action::parse(&value)
                            .map(|a| a.as_str().to_owned())
                            .ok_or_else(|| QueryError::UnknownAction(printable(&value)))?,
                    )
                }
                "since" | "until" => {
                    let normalised =
                        normalise_time(&value).map_err(|reason| QueryError::InvalidTime {
                            parameter: name,
                            reason,
                        })?;
                    if name == "since" {
                        out.since = Some(normalised);
                    } else {
                        out.until = Some(normalised);
                    }
                }
                "limit" => out.limit = parse_limit(&value)?,
                _ => out.continuation = Some(value),
            }
        }
        if let (Some(since), Some(until)) = (&out.since, &out.until) {
            if since >= until {
                return Err(QueryError::EmptyWindow);
            }
        }
        Ok(out)
    }
}

impl EventQuery {
    /// The query string (without `?`) that [`EventQuery::parse`] reads back as this query:
    /// what a client of `GET /events` sends. The page size is always given.
    pub fn to_query_string(&self) -> String {
        let limit = self.limit.to_string();
        [
            ("image", self.image.as_deref()),
            ("tag", self.tag.as_deref()),
            ("action", self.action.as_deref()),
            ("since", self.since.as_deref()),
            ("until", self.until.as_deref()),
            ("limit", Some(limit.as_str())),
            ("continuation", self.continuation.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", encode_component(value?))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn known_parameter(key: &str) -> Option<&'static str> {
    [
        "image",
        "tag",
        "action",
        "since",
        "until",
        "limit",
        "continuation",
    ]
    .into_iter()
    .find(|k| *k == key)
}

/// Digits only; 0 is refused, anything above [`MAX_LIMIT`] (however large) becomes it.
fn parse_limit(value: &str) -> Result<u32, QueryError> {
    let invalid = || QueryError::InvalidLimit {
        value: printable(value),
        max: MAX_LIMIT,
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let significant = value.trim_start_matches('0');
    if significant.is_empty() {
        return Err(invalid());
    }
    Ok(match significant.parse::<u32>() {
        Ok(n) => n.min(MAX_LIMIT),
        Err(_) => MAX_LIMIT, // more digits than a u32 holds: still "too large"
    })
}

/// The Cosmos DB query for a page of events: `{"query": "SELECT * FROM c WHERE ... ORDER BY
/// c.receivedAt DESC, c.id DESC", "parameters": [{"name": "@image", "value": ...}, ...]}`,
/// for the events after `after` (the position the previous page ended at), or from the newest.
///
/// The SQL text is made of fixed fragments only; what the client sent is only ever a
/// parameter value. (`limit` is not part of the query: it travels in the
/// `x-ms-max-item-count` header.)
pub fn query_body(query: &EventQuery, after: Option<&Position>) -> Value {
    let mut conditions: Vec<&'static str> = Vec::new();
    let mut parameters: Vec<Value> = Vec::new();
    let mut parameter = |name: &'static str, value: &str| {
        parameters.push(json!({ "name": name, "value": value }));
    };
    if let Some(image) = &query.image {
        conditions.push("c.image = @image");
        parameter("@image", image);
    }
    if let Some(tag) = &query.tag {
        conditions.push("c.tag = @tag");
        parameter("@tag", tag);
    }
    if let Some(action) = &query.action {
        conditions.push("c.action = @action");
        parameter("@action", action);
    }
    if let Some(since) = &query.since {
        conditions.push("c.receivedAt >= @since");
        parameter("@since", since);
    }
    if let Some(until) = &query.until {
        conditions.push("c.receivedAt < @until");
        parameter("@until", until);
    }
    match after {
        Some(Position {
            received_at: Some(received_at),
            id,
        }) => {
            conditions.push(
                "(c.receivedAt < @afterReceivedAt \
                 OR (c.receivedAt = @afterReceivedAt AND c.id < @afterId) \
                 OR NOT IS_STRING(c.receivedAt))",
            );
            parameter("@afterReceivedAt", received_at);
            parameter("@afterId", id);
        }
        Some(Position {
            received_at: None,
            id,
        }) => {
            conditions.push("(NOT IS_STRING(c.receivedAt) AND c.id < @afterId)");
            parameter("@afterId", id);
        }
        None => {}
    }
    let mut sql = String::from("SELECT * FROM c");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY c.receivedAt DESC, c.id DESC");
    json!({ "query": sql, "parameters": parameters })
}

/// Where an event stands in the list: its `receivedAt` (`None` when it has none as a string)
/// and its `id`. A page's continuation is the position of its last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// `receivedAt`, when the document has it as a string.
    pub received_at: Option<String>,
    /// The document id.
    pub id: String,
}

impl Position {
    /// The position of a stored document; `None` when it has no string `id`.
    pub fn of(document: &Value) -> Option<Self> {
        Some(Self {
            received_at: document
                .get("receivedAt")
                .and_then(Value::as_str)
                .map(str::to_owned),
            id: document.get("id")?.as_str()?.to_owned(),
        })
    }
}

/// The list order, as the query's `ORDER BY c.receivedAt DESC, c.id DESC` sorts within one
/// partition: newest `receivedAt` first, then `id` descending; documents without a string
/// `receivedAt` last, by `id` descending. Used to merge the partitions' answers.
pub fn newest_first(a: &Value, b: &Value) -> std::cmp::Ordering {
    fn key(document: &Value) -> (Option<&str>, Option<&str>) {
        (
            document.get("receivedAt").and_then(Value::as_str),
            document.get("id").and_then(Value::as_str),
        )
    }
    key(b).cmp(&key(a))
}

/// One partition key range (physical partition) of a container, as `GET .../pkranges` lists
/// it; the other properties are not needed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeyRange {
    /// The range's id, for `x-ms-documentdb-partitionkeyrangeid`. Cosmos DB writes it as a
    /// string (`"0"`); the local store as a number (`0`), taken as its decimal text.
    pub id: String,
    /// The ranges this one was split from.
    pub parents: Vec<String>,
}

/// The partition key ranges of one page of a `GET .../pkranges` answer
/// (`{"PartitionKeyRanges": [{"id": "0", "parents": [...], ...}, ...]}`).
///
/// Read through `Value` (whose parser the component has anyway) rather than a derived
/// deserializer, which would add its own code to the `.wasm`.
pub fn partition_key_ranges(
    cosmos_response_body: &[u8],
) -> Result<Vec<PartitionKeyRange>, PageError> {
    const SHAPE: PageError =
        PageError::UnexpectedShape("no `PartitionKeyRanges` array of ranges with an `id`");
    let feed: Value = serde_json::from_slice(cosmos_response_body)
        .map_err(|e| PageError::InvalidJson(e.to_string()))?;
    let ranges = feed
        .get("PartitionKeyRanges")
        .and_then(Value::as_array)
        .ok_or(SHAPE)?;
    ranges
        .iter()
        .map(|range| {
            let id = match range.get("id") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Number(n)) if n.is_u64() => n.to_string(),
                _ => return Err(SHAPE),
            };
            let parents = match range.get("parents") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(parents)) => parents
                    .iter()
                    .map(|p| p.as_str().map(str::to_owned).ok_or(SHAPE))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(SHAPE),
            };
            Ok(PartitionKeyRange { id, parents })
        })
        .collect()
}

/// The ids of the ranges that hold the data now: every listed range but those a split has
/// replaced (listed as another range's parent; a feed read during a split may list both).
pub fn current_range_ids(ranges: &[PartitionKeyRange]) -> Vec<String> {
    ranges
        .iter()
        .filter(|r| !ranges.iter().any(|other| other.parents.contains(&r.id)))
        .map(|r| r.id.clone())
        .collect()
}

/// The `x-ms-documentdb-partitionkey` value when the whole query lies in one partition: the
/// container is partitioned by a property the query fixes by equality (`/image` with `image`,
/// `/tag` with `tag`, `/action` with `action`). `None`: the query must fan out across
/// partitions (`x-ms-documentdb-query-enablecrosspartition: True`).
pub fn query_partition_key(path: &PartitionKeyPath, query: &EventQuery) -> Option<String> {
    let value = match path.as_str() {
        "/image" => query.image.as_deref(),
        "/tag" => query.tag.as_deref(),
        "/action" => query.action.as_deref(),
        _ => None,
    }?;
    Some(partition_key_header_for_str(value))
}

/// For `GET /events/{id}`: the partition key header of a point read when the container is
/// partitioned by `/id`; `None` when the partition is unknown, and the document must be found
/// with the cross-partition query [`id_query_body`] instead.
pub fn read_partition_key(path: &PartitionKeyPath, id: &str) -> Option<String> {
    (path.as_str() == "/id").then(|| partition_key_header_for_str(id))
}

/// The query that finds one document by id across partitions (parameterised).
pub fn id_query_body(id: &str) -> Value {
    json!({
        "query": "SELECT * FROM c WHERE c.id = @id",
        "parameters": [{ "name": "@id", "value": id }]
    })
}

/// Why a continuation token is refused (400). Never shows the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContinuationError {
    /// Longer than [`MAX_CONTINUATION_LEN`].
    #[error("the continuation token is too long")]
    TooLong,
    /// Not of the form this server issues.
    #[error("the continuation token is malformed (pass back the `continuation` value of the previous page unchanged)")]
    Malformed,
    /// Well-formed, but not issued by this server for this query's filters.
    #[error("the continuation token was not issued for these filters (keep image, tag, action, since and until unchanged while paging)")]
    Forged,
}

/// Wraps the position a page ended at for the client:
/// `base64url(position) "." base64url(HMAC-SHA256(secret, binding))`, where the position is
/// the JSON array `[receivedAt or null, id]` and the binding holds a version tag, the query's
/// normalised filters (`image`, `tag`, `action`, `since`, `until`) and the position. A token
/// therefore only opens with the same filters; `limit` is not bound, so a client may change
/// the page size between pages.
///
/// `secret` must be a server-side secret shared by every replica (at least 32 bytes), such as
/// an HMAC of the Cosmos account key with a fixed label.
pub fn seal_continuation(secret: &[u8], query: &EventQuery, position: &Position) -> String {
    let text = json!([position.received_at, position.id]).to_string();
    let mac = continuation_mac(secret, query, &text);
    format!("{}.{}", BASE64URL.encode(&text), BASE64URL.encode(mac))
}

/// Unwraps a token made by [`seal_continuation`] for the same secret and filters, returning
/// the position the next page starts after. The MAC is compared in constant time, before the
/// position is read.
pub fn open_continuation(
    secret: &[u8],
    query: &EventQuery,
    token: &str,
) -> Result<Position, ContinuationError> {
    if token.len() > MAX_CONTINUATION_LEN {
        return Err(ContinuationError::TooLong);
    }
    let (text, mac) = token.split_once('.').ok_or(ContinuationError::Malformed)?;
    let text = BASE64URL
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|t| !t.is_empty())
        .ok_or(ContinuationError::Malformed)?;
    let mac = BASE64URL
        .decode(mac)
        .ok()
        .filter(|m| m.len() == 32)
        .ok_or(ContinuationError::Malformed)?;
    let expected = continuation_mac(secret, query, &text);
    if !bool::from(expected.ct_eq(mac.as_slice())) {
        return Err(ContinuationError::Forged);
    }
    // Sealed by this server, so well-formed; checked all the same.
    // Read as a `Value`, whose parser the component has anyway (a typed tuple would bring
    // serde's type-error messages, and with them float formatting).
    let position: Value =
        serde_json::from_slice(text.as_bytes()).map_err(|_| ContinuationError::Malformed)?;
    match position.as_array().map(Vec::as_slice) {
        Some([received_at @ (Value::Null | Value::String(_)), Value::String(id)]) => Ok(Position {
            received_at: received_at.as_str().map(str::to_owned),
            id: id.clone(),
        }),
        _ => Err(ContinuationError::Malformed),
    }
}

fn continuation_mac(secret: &[u8], query: &EventQuery, position: &str) -> [u8; 32] {
    // A JSON array: unambiguous (no separator can be smuggled into a value), absent ≠ empty.
    let binding = json!([
        CONTINUATION_CONTEXT,
        query.image,
        query.tag,
        query.action.as_deref(),
        query.since,
        query.until,
        position
    ])
    .to_string();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(binding.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Why a Cosmos DB answer cannot be turned into a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// Not JSON.
    #[error("the Cosmos DB answer is not JSON: {0}")]
    InvalidJson(String),
    /// JSON without a `Documents` array (query) or not an object (point read).
    #[error("the Cosmos DB answer has an unexpected shape: {0}")]
    UnexpectedShape(&'static str),
}

/// The answer body of `GET /events`: `{"events": [...], "continuation": "..."}` from the
/// page's documents, in their order, without Cosmos's system properties
/// ([`SYSTEM_PROPERTIES`]). `continuation` (already sealed) is absent on the last page.
pub fn page_body(documents: Vec<Value>, sealed_next: Option<String>) -> Vec<u8> {
    let mut page = serde_json::Map::new();
    page.insert(
        "events".to_owned(),
        Value::Array(
            documents
                .into_iter()
                .map(without_system_properties)
                .collect(),
        ),
    );
    if let Some(token) = sealed_next {
        page.insert("continuation".to_owned(), Value::String(token));
    }
    Value::Object(page).to_string().into_bytes()
}

/// The answer body of `GET /events/{id}`: the stored document without Cosmos's system
/// properties.
pub fn event_body(document: Value) -> Vec<u8> {
    without_system_properties(document).to_string().into_bytes()
}

/// The documents of a Cosmos DB query answer (`{"Documents": [...], ...}`), in order.
pub fn query_documents(body: &[u8]) -> Result<Vec<Value>, PageError> {
    let mut response: Value =
        serde_json::from_slice(body).map_err(|e| PageError::InvalidJson(e.to_string()))?;
    match response.get_mut("Documents") {
        Some(Value::Array(documents)) => Ok(std::mem::take(documents)),
        _ => Err(PageError::UnexpectedShape("no `Documents` array")),
    }
}

fn without_system_properties(mut document: Value) -> Value {
    if let Value::Object(map) = &mut document {
        for name in SYSTEM_PROPERTIES {
            map.remove(name);
        }
    }
    document
}

/// Why an `{id}` path segment is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Nothing after `/events/`.
    #[error("the event id is empty")]
    Empty,
    /// Longer than [`MAX_ID_SEGMENT_LEN`].
    #[error("the event id is too long")]
    TooLong,
    /// A bad `%` escape, or not UTF-8 once decoded.
    #[error("the event id is not correctly percent-encoded UTF-8")]
    BadEncoding,
}

/// The document id named by the `{id}` of `GET /events/{id}`: `segment` is the raw path after
/// `/events/` (not yet decoded; it may contain `/`).
///
/// The contract: the segment is a document's `id` (as listed by `GET /events`),
/// percent-encoded once like any path segment ([`document_path_segment`]). Ids made by
/// [`safe_id`] contain `%XX` themselves (`a/b` is stored as `a%2Fb`), so a correct client
/// sends `a%252Fb`, which decodes once to `a%2Fb`.
///
/// Clients that skip the encoding are served too: the segment is decoded once, and if the
/// result cannot be an id [`safe_id`] produces (it holds a raw `/ \ ? #` or control
/// character, or a `%` that is not one of safe_id's own escapes), it is taken to be the
/// original event id and mapped through [`safe_id`], which leads to the same document. So
/// `a%2Fb` sent raw decodes to `a/b` and maps to `a%2Fb`. The only ambiguity left is an event
/// id that itself looks like an escaped id (a literal `a%2Fb`); there the contract wins.
pub fn document_path_id(segment: &str) -> Result<String, IdError> {
    if segment.is_empty() {
        return Err(IdError::Empty);
    }
    if segment.len() > MAX_ID_SEGMENT_LEN {
        return Err(IdError::TooLong);
    }
    let decoded = decode_strict(segment).ok_or(IdError::BadEncoding)?;
    if decoded.is_empty() {
        return Err(IdError::Empty);
    }
    if is_safe_id(&decoded) {
        Ok(decoded)
    } else {
        Ok(safe_id(&decoded))
    }
}

/// The document id asked for by `GET /events?id=<id>`, or `None` when the query has no `id`
/// (then it is a list query for [`EventQuery::parse`]).
///
/// The value is the document's `id` exactly as listed, percent-encoded like any query value
/// (`+` stays `+`), and is taken as it is: unlike a path segment it is never mapped through
/// [`safe_id`], so every stored id can be named, including `summary` (`/events/summary` is the
/// summary route) and `.` or `..` (which a browser's URL parser removes from a path, even
/// written `%2E`). `id` takes no other parameter; `code` (the webhook key, see
/// [`crate::auth`]) is skipped. An empty value counts as not given, as for every parameter.
pub fn id_parameter(query: &str) -> Result<Option<String>, QueryError> {
    let mut id: Option<String> = None;
    let mut other: Option<String> = None;
    for (raw_key, raw_value) in query_pairs(query) {
        let key =
            decode_strict(raw_key).ok_or_else(|| QueryError::BadEncoding(printable(raw_key)))?;
        if key == CODE_QUERY_PARAMETER {
            continue;
        }
        if key != "id" {
            other.get_or_insert(key);
            continue;
        }
        if id.is_some() {
            return Err(QueryError::DuplicateParameter("id"));
        }
        let value = decode_strict(raw_value).ok_or_else(|| QueryError::BadEncoding("id".into()))?;
        if value.len() > MAX_ID_SEGMENT_LEN {
            return Err(QueryError::TooLong {
                parameter: "id",
                max: MAX_ID_SEGMENT_LEN,
            });
        }
        id = Some(value);
    }
    match (id.filter(|id| !id.is_empty()), other) {
        (Some(_), Some(other)) => Err(QueryError::IdWithOthers(printable(&other))),
        (id, _) => Ok(id),
    }
}

/// Percent-encodes a document id for a `/events/{id}` path (everything but RFC 3986
/// unreserved characters, so the `%` of safe_id's escapes becomes `%25`).
pub fn document_path_segment(id: &str) -> String {
    encode_component(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::MAX_ID_LEN;

    const SECRET: &[u8] = b"test-continuation-secret-32-bytes!!";

    fn parse(q: &str) -> Result<EventQuery, QueryError> {
        EventQuery::parse(q)
    }

    #[test]
    fn a_full_query() {
        let q = parse("image=team%2Fapp&tag=v1&action=push&since=2024-05-01T12:00:00Z&until=2024-05-02T00:00:00.5%2B02:00&limit=7&continuation=abc.def").unwrap();
        assert_eq!(
            q,
            EventQuery {
                image: Some("team/app".into()),
                tag: Some("v1".into()),
                action: Some("push".into()),
                since: Some("2024-05-01T12:00:00.000Z".into()),
                until: Some("2024-05-01T22:00:00.500Z".into()),
                limit: 7,
                continuation: Some("abc.def".into()),
            }
        );
        assert_eq!(parse("").unwrap(), EventQuery::default());
        assert_eq!(parse("&&").unwrap(), EventQuery::default());
    }

    #[test]
    fn empty_values_are_not_given_and_code_is_skipped() {
        assert_eq!(
            parse("image=&tag=&action=&since=&until=&limit=&continuation=").unwrap(),
            EventQuery::default()
        );
        assert_eq!(
            parse("code=secret&tag=v1").unwrap().tag.as_deref(),
            Some("v1")
        );
        assert!(!format!("{:?}", parse("code=secret").unwrap()).contains("secret"));
    }

    #[test]
    fn a_query_string_reads_back_as_its_query() {
        let q = EventQuery {
            image: Some("a b+c/d&e=f%".into()),
            tag: Some("=cmd|' /C calc'!A0".into()),
            action: Some("__proto__".into()),
            since: Some("2026-11-20T05:00:00.000Z".into()),
            until: Some("2026-11-22T06:00:00.000+02:00".into()),
            limit: 100,
            continuation: Some("eyJ.abc-_".into()),
        };
        let text = q.to_query_string();
        assert!(
            text.starts_with("image=a%20b%2Bc%2Fd%26e%3Df%25&tag=%3Dcmd"),
            "{text}"
        );
        let mut want = q.clone();
        want.until = Some("2026-11-22T04:00:00.000Z".into());
        assert_eq!(EventQuery::parse(&text), Ok(want));
        assert_eq!(EventQuery::default().to_query_string(), "limit=20");
    }

    #[test]
    fn plus_is_not_a_space() {
        let q = parse("since=2024-05-01T14:00:00+02:00&image=a+b").unwrap();
        assert_eq!(q.since.as_deref(), Some("2024-05-01T12:00:00.000Z"));
        assert_eq!(q.image.as_deref(), Some("a+b"));
    }

    #[test]
    fn query_errors_are_precise() {
        assert_eq!(
            parse("imgae=x"),
            Err(QueryError::UnknownParameter("imgae".into()))
        );
        assert_eq!(
            parse("tag=a&tag=b"),
            Err(QueryError::DuplicateParameter("tag"))
        );
        assert_eq!(
            parse("tag=&tag=b"),
            Err(QueryError::DuplicateParameter("tag")),
            "an empty duplicate is still a duplicate"
        );
        assert_eq!(
            parse("t%61g=a&tag=b"),
            Err(QueryError::DuplicateParameter("tag")),
            "keys are decoded too"
        );
        assert_eq!(parse("tag=%zz"), Err(QueryError::BadEncoding("tag".into())));
        assert_eq!(parse("tag=%4"), Err(QueryError::BadEncoding("tag".into())));
        assert_eq!(parse("tag=%ff"), Err(QueryError::BadEncoding("tag".into())));
        assert_eq!(parse("%ff=1"), Err(QueryError::BadEncoding("%ff".into())));
        assert_eq!(
            parse("action=pull").unwrap().action.as_deref(),
            Some("pull")
        );
        assert_eq!(
            parse("action=PUSH").unwrap().action.as_deref(),
            Some("push")
        );
        assert_eq!(
            parse("action=Image.Retag_2").unwrap().action.as_deref(),
            Some("image.retag_2")
        );
        assert_eq!(
            parse("action=a%20b"),
            Err(QueryError::UnknownAction("a b".into()))
        );
        assert_eq!(
            parse("action=p%C3%BCsh"),
            Err(QueryError::UnknownAction("püsh".into()))
        );
        assert!(matches!(
            parse(&format!("action={}", "a".repeat(65))),
            Err(QueryError::UnknownAction(_))
        ));
        assert_eq!(
            parse(&format!("image={}", "a".repeat(MAX_VALUE_LEN + 1))),
            Err(QueryError::TooLong {
                parameter: "image",
                max: MAX_VALUE_LEN
            })
        );
        assert!(matches!(
            parse("since=yesterday"),
            Err(QueryError::InvalidTime {
                parameter: "since",
                reason: TimeError::Format
            })
        ));
        assert_eq!(
            parse("since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z"),
            Err(QueryError::EmptyWindow)
        );
        assert_eq!(
            parse("since=2024-05-01T00:00:00Z&until=2024-05-01T02:00:00+02:00"),
            Err(QueryError::EmptyWindow),
            "compared as instants"
        );
        let err = parse("x%0Aforged=1").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn limits() {
        assert_eq!(parse("limit=1").unwrap().limit, 1);
        assert_eq!(parse("limit=007").unwrap().limit, 7);
        assert_eq!(parse("limit=100").unwrap().limit, 100);
        assert_eq!(parse("limit=101").unwrap().limit, MAX_LIMIT);
        assert_eq!(
            parse("limit=99999999999999999999999").unwrap().limit,
            MAX_LIMIT
        );
        for bad in ["0", "000", "-1", "+5", "5.0", "ten", " 5", "1e3"] {
            assert_eq!(
                parse(&format!("limit={}", bad.replace(' ', "%20"))),
                Err(QueryError::InvalidLimit {
                    value: bad.into(),
                    max: MAX_LIMIT
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn query_bodies_are_parameterised() {
        let all = query_body(&EventQuery::default(), None);
        assert_eq!(
            all,
            json!({"query": "SELECT * FROM c ORDER BY c.receivedAt DESC, c.id DESC", "parameters": []})
        );
        let hostile = "x' OR 1=1 --\"; DROP";
        let q = EventQuery {
            image: Some(hostile.into()),
            tag: Some(hostile.into()),
            action: Some("delete".into()),
            since: Some("2024-05-01T00:00:00.000Z".into()),
            until: Some("2024-06-01T00:00:00.000Z".into()),
            ..EventQuery::default()
        };
        let body = query_body(&q, None);
        assert_eq!(
            body["query"],
            "SELECT * FROM c WHERE c.image = @image AND c.tag = @tag AND c.action = @action \
             AND c.receivedAt >= @since AND c.receivedAt < @until \
             ORDER BY c.receivedAt DESC, c.id DESC"
        );
        assert_eq!(
            body["parameters"],
            json!([
                {"name": "@image", "value": hostile},
                {"name": "@tag", "value": hostile},
                {"name": "@action", "value": "delete"},
                {"name": "@since", "value": "2024-05-01T00:00:00.000Z"},
                {"name": "@until", "value": "2024-06-01T00:00:00.000Z"},
            ])
        );
        let tag_only = query_body(
            &EventQuery {
                tag: Some("v1".into()),
                ..EventQuery::default()
            },
            None,
        );
        assert_eq!(
            tag_only["query"],
            "SELECT * FROM c WHERE c.tag = @tag ORDER BY c.receivedAt DESC, c.id DESC"
        );
    }

    #[test]
    fn later_pages_ask_for_what_comes_after_the_position() {
        let q = EventQuery {
            image: Some("app".into()),
            ..EventQuery::default()
        };
        let after = Position {
            received_at: Some("2024-05-01T00:00:00.001Z".into()),
            id: "x' OR 1=1".into(),
        };
        let body = query_body(&q, Some(&after));
        assert_eq!(
            body["query"],
            "SELECT * FROM c WHERE c.image = @image AND (c.receivedAt < @afterReceivedAt \
             OR (c.receivedAt = @afterReceivedAt AND c.id < @afterId) \
             OR NOT IS_STRING(c.receivedAt)) ORDER BY c.receivedAt DESC, c.id DESC"
        );
        assert_eq!(
            body["parameters"],
            json!([
                {"name": "@image", "value": "app"},
                {"name": "@afterReceivedAt", "value": "2024-05-01T00:00:00.001Z"},
                {"name": "@afterId", "value": "x' OR 1=1"},
            ])
        );
        let legacy = Position {
            received_at: None,
            id: "b".into(),
        };
        let body = query_body(&EventQuery::default(), Some(&legacy));
        assert_eq!(
            body["query"],
            "SELECT * FROM c WHERE (NOT IS_STRING(c.receivedAt) AND c.id < @afterId) \
             ORDER BY c.receivedAt DESC, c.id DESC"
        );
        assert_eq!(
            body["parameters"],
            json!([{"name": "@afterId", "value": "b"}])
        );
    }

    #[test]
    fn the_merge_order_is_the_query_order() {
        let mut documents = [
            json!({"id": "a", "receivedAt": "2024-05-01T00:00:00.001Z"}),
            json!({"id": "legacy-1"}),
            json!({"id": "c", "receivedAt": "2024-05-01T00:00:00.002Z"}),
            json!({"id": "b", "receivedAt": "2024-05-01T00:00:00.001Z"}),
            json!({"id": "legacy-2", "receivedAt": 7}),
            json!({"id": "d", "receivedAt": "2023-12-31T23:59:59.999Z"}),
        ];
        documents.sort_by(newest_first);
        let ids: Vec<&str> = documents
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["c", "b", "a", "d", "legacy-2", "legacy-1"]);
        assert_eq!(
            Position::of(&documents[1]),
            Some(Position {
                received_at: Some("2024-05-01T00:00:00.001Z".into()),
                id: "b".into()
            })
        );
        assert_eq!(
            Position::of(&documents[4]),
            Some(Position {
                received_at: None,
                id: "legacy-2".into()
            })
        );
        assert_eq!(Position::of(&json!({"receivedAt": "x"})), None);
        assert_eq!(Position::of(&json!({"id": 5})), None);
    }

    #[test]
    fn partition_key_ranges_without_the_split_ones() {
        let one = br#"{"_rid":"x","PartitionKeyRanges":[{"_rid":"r","id":"0","minInclusive":"","maxExclusive":"FF","ridPrefix":0,"_self":"s","throughputFraction":1,"status":"online","parents":[],"_ts":1}],"_count":1}"#;
        let ids = |body: &[u8]| partition_key_ranges(body).map(|r| current_range_ids(&r));
        assert_eq!(ids(one), Ok(vec!["0".to_owned()]));
        // Range 0 split into 1 and 2; a feed may still list 0.
        let split = br#"{"PartitionKeyRanges":[
            {"id":"0","minInclusive":"","maxExclusive":"FF"},
            {"id":"1","minInclusive":"","maxExclusive":"7F","parents":["0"]},
            {"id":"2","minInclusive":"7F","maxExclusive":"FF","parents":["0"]}]}"#;
        assert_eq!(ids(split), Ok(vec!["1".to_owned(), "2".to_owned()]));
        assert_eq!(ids(br#"{"PartitionKeyRanges":[]}"#), Ok(vec![]));
        // The local store writes the id as a number.
        assert_eq!(
            ids(br#"{"PartitionKeyRanges":[{"id":0,"minInclusive":"","maxExclusive":"FF"}],"_count":1}"#),
            Ok(vec!["0".to_owned()])
        );
        assert!(matches!(
            partition_key_ranges(b"nope"),
            Err(PageError::InvalidJson(_))
        ));
        for bad in [
            &br#"{"Documents":[]}"#[..],
            br#"{"PartitionKeyRanges":[{"minInclusive":""}]}"#,
            br#"{"PartitionKeyRanges":{}}"#,
            br#"{"PartitionKeyRanges":[{"id":-1}]}"#,
            br#"{"PartitionKeyRanges":[{"id":null}]}"#,
            b"[]",
        ] {
            assert!(
                matches!(
                    partition_key_ranges(bad),
                    Err(PageError::UnexpectedShape(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn partitions() {
        let path = |p: &str| PartitionKeyPath::parse(p).unwrap();
        let q = EventQuery {
            image: Some("héllo".into()),
            action: Some("push".into()),
            ..EventQuery::default()
        };
        assert_eq!(
            query_partition_key(&path("/image"), &q).as_deref(),
            Some(r#"["h\u00e9llo"]"#)
        );
        assert_eq!(
            query_partition_key(&path("/action"), &q).as_deref(),
            Some(r#"["push"]"#)
        );
        assert_eq!(query_partition_key(&path("/tag"), &q), None);
        assert_eq!(query_partition_key(&path("/id"), &q), None);
        assert_eq!(
            query_partition_key(&path("/image"), &EventQuery::default()),
            None
        );
        assert_eq!(
            read_partition_key(&path("/id"), "a%2Fb").as_deref(),
            Some(r#"["a%2Fb"]"#)
        );
        assert_eq!(read_partition_key(&path("/image"), "x"), None);
        assert_eq!(
            id_query_body("x'--"),
            json!({"query": "SELECT * FROM c WHERE c.id = @id", "parameters": [{"name": "@id", "value": "x'--"}]})
        );
    }

    fn position(received_at: Option<&str>, id: &str) -> Position {
        Position {
            received_at: received_at.map(str::to_owned),
            id: id.to_owned(),
        }
    }

    #[test]
    fn continuation_round_trip() {
        let q = parse("image=app&limit=7").unwrap();
        for at in [
            position(Some("2024-05-01T00:00:00.001Z"), "cb8c3971-9adc"),
            position(None, "legacy \"id\" with é and ."),
            position(Some(""), ""),
        ] {
            let sealed = seal_continuation(SECRET, &q, &at);
            assert!(sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
            assert_eq!(open_continuation(SECRET, &q, &sealed), Ok(at.clone()));
            // As it comes back through the query string, unencoded.
            let again = parse(&format!("image=app&limit=50&continuation={sealed}")).unwrap();
            assert_eq!(
                open_continuation(SECRET, &again, again.continuation.as_deref().unwrap()),
                Ok(at),
                "limit may change between pages"
            );
        }
    }

    #[test]
    fn forged_and_retargeted_continuations_are_refused() {
        let q = parse("image=app").unwrap();
        let at = position(Some("2024-05-01T00:00:00.001Z"), "id-1");
        let sealed = seal_continuation(SECRET, &q, &at);
        let (body, mac) = sealed.split_once('.').unwrap();

        // Another filter set, another secret.
        for other in [
            "image=other",
            "",
            "image=app&tag=v1",
            "image=app&action=push",
            "image=app&since=2024-01-01T00:00:00Z",
        ] {
            assert_eq!(
                open_continuation(SECRET, &parse(other).unwrap(), &sealed),
                Err(ContinuationError::Forged),
                "{other}"
            );
        }
        assert_eq!(
            open_continuation(b"another-secret", &q, &sealed),
            Err(ContinuationError::Forged)
        );
        // A position of the client's own choosing under the genuine MAC.
        let forged = format!(
            "{}.{mac}",
            BASE64URL.encode(r#"["9999-12-31T23:59:59.999Z","id-1"]"#)
        );
        assert_eq!(
            open_continuation(SECRET, &q, &forged),
            Err(ContinuationError::Forged)
        );
        let mut flipped = mac.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{body}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(
            open_continuation(SECRET, &q, &flipped),
            Err(ContinuationError::Forged)
        );
        // A token of the previous format (a sealed Cosmos DB continuation) no longer opens.
        let v1_body = BASE64URL.encode(r#"{"token":"+RID:~abc==#RT:1#TRC:7"}"#);
        let v1_mac = {
            let binding = json!([
                "acr-webhook/events-continuation/v1",
                "app",
                null,
                null,
                null,
                null,
                r#"{"token":"+RID:~abc==#RT:1#TRC:7"}"#
            ])
            .to_string();
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
            m.update(binding.as_bytes());
            BASE64URL.encode(m.finalize().into_bytes())
        };
        assert_eq!(
            open_continuation(SECRET, &q, &format!("{v1_body}.{v1_mac}")),
            Err(ContinuationError::Forged)
        );
        // Shapes this server never issues.
        for bad in [
            "",
            ".",
            "abc",
            &format!("{body}."),
            &format!(".{mac}"),
            &format!("{body}.{mac}.x"),
            &format!("{body}.{}", &mac[..10]),
            &format!("{body}=.{mac}"),
            &format!("{}.{mac}", BASE64URL.encode([0xff, 0xfe])),
            "cosmos-token",
            r#"{"token":"+RID:x"}"#,
        ] {
            assert_eq!(
                open_continuation(SECRET, &q, bad),
                Err(ContinuationError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            open_continuation(SECRET, &q, &"a".repeat(MAX_CONTINUATION_LEN + 1)),
            Err(ContinuationError::TooLong)
        );
    }

    /// A token sealed with the right secret whose position is not `[receivedAt or null, id]`
    /// is malformed; the two shapes the server issues open.
    #[test]
    fn sealed_positions_of_another_shape_are_malformed() {
        let q = EventQuery::default();
        let seal = |text: &str| {
            let mac = continuation_mac(SECRET, &q, text);
            format!("{}.{}", BASE64URL.encode(text), BASE64URL.encode(mac))
        };
        for text in [
            r#"[1,"x"]"#,
            r#"["a"]"#,
            r#"[null,null]"#,
            r#"["a",1]"#,
            r#"[null,"x",3]"#,
            r#"{"receivedAt":null,"id":"x"}"#,
            r#"[[],"x"]"#,
            r#""x""#,
            "[null,",
        ] {
            assert_eq!(
                open_continuation(SECRET, &q, &seal(text)),
                Err(ContinuationError::Malformed),
                "{text}"
            );
        }
        assert_eq!(
            open_continuation(SECRET, &q, &seal(r#"[null,"x"]"#)),
            Ok(Position {
                received_at: None,
                id: "x".into()
            })
        );
        assert_eq!(
            open_continuation(SECRET, &q, &seal(r#"["2026-01-01T00:00:00Z","y"]"#)),
            Ok(Position {
                received_at: Some("2026-01-01T00:00:00Z".into()),
                id: "y".into()
            })
        );
    }

    #[test]
    fn pages_drop_system_properties() {
        let cosmos = br#"{"_rid":"x","Documents":[
            {"id":"b","receivedAt":"2024-05-01T00:00:00.002Z","_rid":"r","_self":"s","_etag":"\"e\"","_attachments":"a/","_ts":1},
            {"id":"a","receivedAt":"2024-05-01T00:00:00.001Z","_ts":2,"_custom":"kept"}
        ],"_count":2}"#;
        let documents = query_documents(cosmos).unwrap();
        let page: Value =
            serde_json::from_slice(&page_body(documents, Some("tok.en".into()))).unwrap();
        assert_eq!(
            page,
            json!({
                "events": [
                    {"id": "b", "receivedAt": "2024-05-01T00:00:00.002Z"},
                    {"id": "a", "receivedAt": "2024-05-01T00:00:00.001Z", "_custom": "kept"}
                ],
                "continuation": "tok.en"
            })
        );
        let last: Value = serde_json::from_slice(&page_body(
            query_documents(br#"{"Documents":[]}"#).unwrap(),
            None,
        ))
        .unwrap();
        assert_eq!(last, json!({"events": []}));
        assert!(matches!(
            query_documents(b"nope"),
            Err(PageError::InvalidJson(_))
        ));
        assert_eq!(
            query_documents(br#"{"Documents":{}}"#),
            Err(PageError::UnexpectedShape("no `Documents` array"))
        );
        assert_eq!(
            query_documents(b"[]"),
            Err(PageError::UnexpectedShape("no `Documents` array"))
        );

        let one: Value =
            serde_json::from_slice(&event_body(json!({"id":"x","_etag":"e","_ts":1}))).unwrap();
        assert_eq!(one, json!({"id": "x"}));
    }

    /// Original event ids of every awkward kind, including long ones whose shortening by
    /// safe_id cuts through an escape at every possible offset.
    fn awkward_ids() -> Vec<String> {
        let mut ids: Vec<String> = [
            "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
            "evt/2024\\01?kind=push#frag",
            "a/b",
            "a%2Fb",
            "100%",
            "%",
            "x%41",
            "tab\there",
            "nul\0",
            "c1\u{85}control",
            "é😀 spaces and + signs",
            "~",
            "ends~0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for pad in 180..=192 {
            ids.push(format!("{}{}", "p".repeat(pad), "/".repeat(100)));
            ids.push(format!("{}{}", "p".repeat(pad), "\u{85}".repeat(50)));
            ids.push(format!("{}{}", "é".repeat(pad / 2), "#?".repeat(60)));
        }
        ids.push("x".repeat(300));
        ids.push("/".repeat(300));
        ids
    }

    #[test]
    fn every_safe_id_round_trips_through_the_path() {
        for original in awkward_ids() {
            let id = safe_id(&original);
            assert!(is_safe_id(&id), "{id:?} from {original:?}");
            // The contract: the listed id, percent-encoded once.
            let segment = document_path_segment(&id);
            assert_eq!(
                document_path_id(&segment).as_deref(),
                Ok(id.as_str()),
                "{original:?}"
            );
            // A client that does not encode: the raw id (for ids that are not shortened, whose
            // raw form decodes back to the original event id, and whose original has no `%`).
            if !original.contains('%') && id.len() == original.len() + 2 * id.matches('%').count() {
                assert_eq!(
                    document_path_id(&id).as_deref(),
                    Ok(id.as_str()),
                    "raw {id:?}"
                );
            }
            // A client that sends the original event id, encoded, when it has no `%`.
            if !original.contains('%') {
                let segment = document_path_segment(&original);
                assert_eq!(
                    document_path_id(&segment).as_deref(),
                    Ok(id.as_str()),
                    "original {original:?}"
                );
            }
        }
    }

    #[test]
    fn ids_that_safe_id_cannot_produce_are_mapped_through_it() {
        for (segment, want) in [
            ("a%2Fb", "a%2Fb"),   // raw `a/b`'s id sent unencoded
            ("a%252Fb", "a%2Fb"), // the same id, encoded: the contract
            ("a/b", "a%2Fb"),     // a raw slash in the path
            ("x%2541", "x%2541"), // `x%41` cannot be a safe id: the event id `x%41`
            ("100%25", "100%25"), // `100%` → its id
            ("guid-1", "guid-1"),
            ("%C3%A9", "é"),
        ] {
            assert_eq!(document_path_id(segment).as_deref(), Ok(want), "{segment}");
        }
        assert!(!is_safe_id("x%41"));
        assert!(!is_safe_id("x%2f"), "safe_id writes upper-case hex");
        assert!(!is_safe_id("a/b"));
        assert!(!is_safe_id(&"y".repeat(MAX_ID_LEN + 1)));
        assert_eq!(document_path_id(""), Err(IdError::Empty));
        assert_eq!(document_path_id("%zz"), Err(IdError::BadEncoding));
        assert_eq!(document_path_id("%C3"), Err(IdError::BadEncoding));
        assert_eq!(
            document_path_id(&"a".repeat(MAX_ID_SEGMENT_LEN + 1)),
            Err(IdError::TooLong)
        );
        // Long but acceptable: shortened like safe_id does.
        let long = "z".repeat(1000);
        assert_eq!(document_path_id(&long), Ok(safe_id(&long)));
    }

    #[test]
    fn the_id_parameter_names_any_id_exactly() {
        // Every id this receiver stores, percent-encoded as a query value, comes back as it is.
        for original in awkward_ids() {
            let id = safe_id(&original);
            let query = format!("id={}", document_path_segment(&id));
            assert_eq!(id_parameter(&query), Ok(Some(id.clone())), "{original:?}");
        }
        // Ids a path cannot name: the summary route's, the dot segments, and ids that are not
        // safe_id's (written by other tools): never mapped through safe_id.
        for (query, want) in [
            ("id=summary", "summary"),
            ("id=.", "."),
            ("id=..", ".."),
            ("id=%2E%2E", ".."),
            ("id=100%25", "100%"),
            ("id=x%2541", "x%41"),
            ("id=a+b", "a+b"),
            ("id=a%20b", "a b"),
            ("code=k&id=guid-1", "guid-1"),
        ] {
            assert_eq!(id_parameter(query), Ok(Some(want.to_owned())), "{query}");
        }
        // Not an id query: a list query, for EventQuery::parse.
        for query in ["", "image=a&limit=5", "id=", "id=&tag=v1", "code=k"] {
            assert_eq!(id_parameter(query), Ok(None), "{query}");
        }
        assert_eq!(
            id_parameter("id=a&image=b"),
            Err(QueryError::IdWithOthers("image".into()))
        );
        assert_eq!(
            id_parameter("limit=1&id=a"),
            Err(QueryError::IdWithOthers("limit".into()))
        );
        assert_eq!(
            id_parameter("id=a&id=b"),
            Err(QueryError::DuplicateParameter("id"))
        );
        assert_eq!(
            id_parameter("id=%zz"),
            Err(QueryError::BadEncoding("id".into()))
        );
        assert!(matches!(
            id_parameter(&format!("id={}", "a".repeat(MAX_ID_SEGMENT_LEN + 1))),
            Err(QueryError::TooLong {
                parameter: "id",
                ..
            })
        ));
        // The summary knows no `id`.
        assert!(matches!(
            EventQuery::parse("id=a"),
            Err(QueryError::UnknownParameter(_))
        ));
    }
}
