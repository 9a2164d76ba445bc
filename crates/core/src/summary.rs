//! `GET /events/summary?since=&until=&image=&tag=&action=`: how many events were received per
//! hour or per day, by action, over a time window. The audit-trail page draws its activity
//! chart from it, so the counts are exact, computed from the store, never estimated from a
//! page of events.
//!
//! # How it is counted
//! Cosmos DB could group (`GROUP BY`), but the local store (`@vercel/cosmosdb-server`) cannot,
//! and the gateway refuses aggregates across partitions. What both serve is a plain projection
//! without `ORDER BY`, sent to one partition (when the filters fix the partition key) or to
//! each partition key range, exactly like the pages of `GET /events`:
//!
//! ```sql
//! SELECT c.receivedAt, c.action FROM c
//! WHERE c.receivedAt >= @since AND c.receivedAt < @until [AND c.image = @image ...]
//! ```
//!
//! Each answer page is counted and dropped ([`Counts::add_page`]), so memory stays bounded
//! whatever the window holds; every range's pages add to the same counts.
//!
//! # Buckets
//! `receivedAt` is fixed-width RFC 3339 in UTC (`2024-05-01T12:00:00.123Z`), so its first 13
//! characters name its hour and its first 10 its day (UTC). A window of up to
//! [`MAX_HOURLY_SPAN_HOURS`] hours is counted per hour, a longer one per day. Buckets without
//! events are left out of the answer; the first and last may be partial (the window's own
//! bounds apply, `since` inclusive, `until` exclusive).
//!
//! # Limits
//! A summary reads at most [`MAX_SUMMARY_EVENTS`] events (and, like every read, at most
//! [`crate::event_reads::round_trip_budget`] requests to the store, through the same fan-out
//! over partition key ranges as `GET /events`). A window holding more is
//! refused with 422 `summary_too_large`: choose a shorter window or narrower filters. A window
//! longer than [`MAX_SPAN_DAYS`] days is refused with 400 `invalid_query`.

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use crate::answer::{Failure, Success};
use crate::config::Config;
use crate::event_reads::Reads;
use crate::host::Host;
use crate::read_api::{EventQuery, QueryError};
use crate::time::{format_millis, millis_since_epoch, parse_millis, MS_PER_DAY};
use crate::url::{decode_strict, query_pairs};

/// Route of the summary. (An event whose id is `summary` is still readable as
/// `/events/%73ummary`.)
pub const SUMMARY_ROUTE: &str = "/events/summary";

/// The most events one summary reads; a window with more is refused (422).
pub const MAX_SUMMARY_EVENTS: usize = 20_000;
/// Events asked for per request to the store (Cosmos DB's largest page is 1000 items).
pub const SUMMARY_PAGE_SIZE: u32 = 1000;
/// The longest window counted per hour; longer ones are counted per day.
pub const MAX_HOURLY_SPAN_HOURS: u64 = 72;
/// The longest window accepted, in days.
pub const MAX_SPAN_DAYS: u64 = 732;
/// The window when neither `since` nor `until` is given: the last 7 days.
pub const DEFAULT_SPAN: Duration = Duration::from_secs(7 * 86_400);

/// Why a summary query string is refused (400 `invalid_query`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    /// As for `GET /events`.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// `limit` or `continuation`: the summary is one answer, not pages.
    #[error(
        "`{0}` is not a parameter of the summary (it knows image, tag, action, since and until)"
    )]
    Paging(&'static str),
    /// `since` to `until` is longer than [`MAX_SPAN_DAYS`].
    #[error("the window from `since` to `until` is longer than {MAX_SPAN_DAYS} days")]
    WindowTooLong,
}

/// The size of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One UTC hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Bucket {
    /// `hour` or `day`, as in the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    /// How many leading characters of a `receivedAt` name its bucket.
    fn prefix_len(self) -> usize {
        match self {
            Bucket::Hour => 13, // 2024-05-01T12
            Bucket::Day => 10,  // 2024-05-01
        }
    }

    /// The bucket's start, written like `receivedAt`, from its prefix.
    fn start(self, prefix: &str) -> String {
        match self {
            Bucket::Hour => format!("{prefix}:00:00.000Z"),
            Bucket::Day => format!("{prefix}T00:00:00.000Z"),
        }
    }
}

/// A parsed summary query: the filters of `GET /events` and a window that is always bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryQuery {
    /// The filters, with `since` and `until` always set (normalised like `receivedAt`).
    pub filters: EventQuery,
    /// Hour or day, chosen from the window's length.
    pub bucket: Bucket,
}

impl SummaryQuery {
    /// Parses the query string (without `?`). `since` defaults to 7 days before `until`, and
    /// `until` to `now`. `limit` and `continuation` are not parameters of the summary.
    pub fn parse(query: &str, now: SystemTime) -> Result<Self, SummaryError> {
        for (key, _) in query_pairs(query) {
            if let Some(key @ ("limit" | "continuation")) = decode_strict(key).as_deref() {
                return Err(SummaryError::Paging(if key == "limit" {
                    "limit"
                } else {
                    "continuation"
                }));
            }
        }
        let mut filters = EventQuery::parse(query)?;
        // In milliseconds since 1970 (`since` and `until` are normalised by EventQuery::parse).
        let until = match &filters.until {
            Some(until) => parse_millis(until).map_err(|_| QueryError::EmptyWindow)?,
            None => millis_since_epoch(now).max(0),
        };
        let since = match &filters.since {
            Some(since) => parse_millis(since).map_err(|_| QueryError::EmptyWindow)?,
            None => until - DEFAULT_SPAN.as_millis() as i64,
        };
        let span = until - since;
        if span <= 0 {
            return Err(QueryError::EmptyWindow.into());
        }
        if span > MAX_SPAN_DAYS as i64 * MS_PER_DAY {
            return Err(SummaryError::WindowTooLong);
        }
        filters.since = Some(format_millis(since).ok_or(QueryError::EmptyWindow)?);
        filters.until = Some(format_millis(until).ok_or(QueryError::EmptyWindow)?);
        let bucket = if span <= (MAX_HOURLY_SPAN_HOURS * 3_600_000) as i64 {
            Bucket::Hour
        } else {
            Bucket::Day
        };
        Ok(Self { filters, bucket })
    }

    /// The Cosmos DB query: a projection of `receivedAt` and `action` under the filters,
    /// without `ORDER BY` (parameterised only: the SQL text is fixed fragments).
    pub fn query_body(&self) -> Value {
        let q = &self.filters;
        let mut conditions: Vec<&'static str> = Vec::new();
        let mut parameters: Vec<Value> = Vec::new();
        let mut add = |condition: &'static str, name: &'static str, value: &str| {
            conditions.push(condition);
            parameters.push(json!({ "name": name, "value": value }));
        };
        if let Some(since) = &q.since {
            add("c.receivedAt >= @since", "@since", since);
        }
        if let Some(until) = &q.until {
            add("c.receivedAt < @until", "@until", until);
        }
        if let Some(image) = &q.image {
            add("c.image = @image", "@image", image);
        }
        if let Some(tag) = &q.tag {
            add("c.tag = @tag", "@tag", tag);
        }
        if let Some(action) = &q.action {
            add("c.action = @action", "@action", action);
        }
        let sql = format!(
            "SELECT c.receivedAt, c.action FROM c WHERE {}",
            conditions.join(" AND ")
        );
        json!({ "query": sql, "parameters": parameters })
    }
}

/// The counts so far: per bucket prefix, per action. Kept in `serde_json` maps (ordered by
/// key), whose code the component has anyway: a typed map would add its own (BENCHMARKS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    buckets: Map<String, Value>,
    /// Events counted.
    pub events: usize,
}

/// Adds `n` to the count of `name` in `counts`.
fn add(counts: &mut Map<String, Value>, name: &str, n: u64) {
    let was = counts.get(name).and_then(Value::as_u64).unwrap_or(0);
    counts.insert(name.to_owned(), Value::from(was + n));
}

/// The bucket `prefix`'s counts in `buckets`, made empty when new.
fn bucket<'m>(buckets: &'m mut Map<String, Value>, prefix: &str) -> &'m mut Map<String, Value> {
    if !buckets.contains_key(prefix) {
        buckets.insert(prefix.to_owned(), Value::Object(Map::new()));
    }
    match buckets.get_mut(prefix) {
        Some(Value::Object(counts)) => counts,
        _ => unreachable!("every bucket is an object"),
    }
}

impl Counts {
    /// Counts one page of projected documents (`{"receivedAt": ..., "action": ...}`).
    /// A document without a string `receivedAt` cannot have matched the window and is
    /// skipped; one without a string `action` is counted as `unknown`.
    pub fn add_page(&mut self, size: Bucket, documents: &[Value]) {
        for document in documents {
            let Some(received_at) = document.get("receivedAt").and_then(Value::as_str) else {
                continue;
            };
            let Some(prefix) = received_at.get(..size.prefix_len()) else {
                continue;
            };
            let action = document
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            add(bucket(&mut self.buckets, prefix), action, 1);
            self.events += 1;
        }
    }

    /// The answer body: `{"since", "until", "bucket", "total", "actions": {action: n},
    /// "buckets": [{"start", "total", "counts": {action: n}}]}`, buckets in time order.
    pub fn body(self, query: &SummaryQuery) -> Vec<u8> {
        let mut totals = Map::new();
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (prefix, counts) in self.buckets {
            let mut total = 0;
            for (action, n) in counts.as_object().into_iter().flatten() {
                let n = n.as_u64().unwrap_or(0);
                add(&mut totals, action, n);
                total += n;
            }
            let mut entry = Map::new();
            entry.insert("start".into(), Value::String(query.bucket.start(&prefix)));
            entry.insert("total".into(), Value::from(total));
            entry.insert("counts".into(), counts);
            buckets.push(Value::Object(entry));
        }
        let text = |t: &Option<String>| Value::String(t.clone().unwrap_or_default());
        let mut body = Map::new();
        body.insert("since".into(), text(&query.filters.since));
        body.insert("until".into(), text(&query.filters.until));
        body.insert("bucket".into(), Value::String(query.bucket.as_str().into()));
        body.insert("total".into(), Value::from(self.events as u64));
        body.insert("actions".into(), Value::Object(totals));
        body.insert("buckets".into(), Value::Array(buckets));
        Value::Object(body).to_string().into_bytes()
    }
}

/// `GET /events/summary?...`: the counts, from the store.
pub async fn summarize<H: Host>(
    config: &Config,
    host: &H,
    query: &str,
    now: SystemTime,
) -> Result<Success, Failure> {
    let query =
        SummaryQuery::parse(query, now).map_err(|e| Failure::InvalidQuery(e.to_string()))?;
    let body = query.query_body();
    let reads = Reads::new(config, host, now);
    let mut counts = Counts::default();
    let targets = reads.targets(&query.filters).await?;
    // Every page of every target, counted as it comes, refused once more than
    // MAX_SUMMARY_EVENTS events were read.
    reads
        .drain(
            &body,
            &targets.scopes(),
            SUMMARY_PAGE_SIZE,
            |_, documents| {
                counts.add_page(query.bucket, &documents);
                if counts.events > MAX_SUMMARY_EVENTS {
                    return Err(Failure::SummaryTooLarge {
                        limit: MAX_SUMMARY_EVENTS,
                    });
                }
                Ok(())
            },
        )
        .await?;
    Ok(Success::Json(counts.body(&query)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        // 2023-11-14T22:13:20.123Z
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    }

    #[test]
    fn windows_and_buckets() {
        let q = SummaryQuery::parse("", now()).unwrap();
        assert_eq!(q.filters.since.as_deref(), Some("2023-11-07T22:13:20.123Z"));
        assert_eq!(q.filters.until.as_deref(), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(q.bucket, Bucket::Day);
        let q = SummaryQuery::parse(
            "since=2024-05-01T00:00:00Z&until=2024-05-04T00:00:00%2B00:00",
            now(),
        )
        .unwrap();
        assert_eq!(q.bucket, Bucket::Hour, "72 hours are counted per hour");
        assert_eq!(q.filters.until.as_deref(), Some("2024-05-04T00:00:00.000Z"));
        let q = SummaryQuery::parse(
            "since=2024-05-01T00:00:00Z&until=2024-05-04T00:00:00.001Z",
            now(),
        )
        .unwrap();
        assert_eq!(q.bucket, Bucket::Day);
        let q = SummaryQuery::parse("until=2024-05-04T00:00:00Z&image=app", now()).unwrap();
        assert_eq!(q.filters.since.as_deref(), Some("2024-04-27T00:00:00.000Z"));
        assert_eq!(q.filters.image.as_deref(), Some("app"));
        let q = SummaryQuery::parse("since=2023-11-14T00:00:00Z&code=x", now()).unwrap();
        assert_eq!(q.filters.until.as_deref(), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(q.bucket, Bucket::Hour);

        for bad in [
            "limit=5",
            "continuation=x",
            "%6Cimit=5",
            "nope=1",
            "since=2024-05-01T00:00:00Z&until=2024-05-01T00:00:00Z",
            "since=2030-01-01T00:00:00Z",
            "since=2020-01-01T00:00:00Z&until=2022-01-03T00:00:00Z",
            "action=a%20b",
            "since=yesterday",
        ] {
            assert!(SummaryQuery::parse(bad, now()).is_err(), "{bad}");
        }
        assert!(SummaryQuery::parse(
            "since=2020-01-01T00:00:00Z&until=2022-01-02T00:00:00Z",
            now()
        )
        .is_ok());
    }

    #[test]
    fn the_query_is_parameterised_and_unordered() {
        let q = SummaryQuery::parse(
            "image=a%27%20OR%201%3D1&tag=v1&action=delete&since=2024-05-01T00:00:00Z&until=2024-05-02T00:00:00Z",
            now(),
        )
        .unwrap();
        assert_eq!(
            q.query_body(),
            json!({
                "query": "SELECT c.receivedAt, c.action FROM c WHERE c.receivedAt >= @since \
                          AND c.receivedAt < @until AND c.image = @image AND c.tag = @tag \
                          AND c.action = @action",
                "parameters": [
                    {"name": "@since", "value": "2024-05-01T00:00:00.000Z"},
                    {"name": "@until", "value": "2024-05-02T00:00:00.000Z"},
                    {"name": "@image", "value": "a' OR 1=1"},
                    {"name": "@tag", "value": "v1"},
                    {"name": "@action", "value": "delete"},
                ]
            })
        );
    }

    #[test]
    fn counts_add_up_across_pages_and_shape() {
        let q = SummaryQuery::parse(
            "since=2024-05-01T00:00:00Z&until=2024-05-02T00:00:00Z",
            now(),
        )
        .unwrap();
        let mut a = Counts::default();
        a.add_page(
            q.bucket,
            &[
                json!({"receivedAt": "2024-05-01T10:59:59.999Z", "action": "push"}),
                json!({"receivedAt": "2024-05-01T10:00:00.000Z", "action": "push"}),
                json!({"receivedAt": "2024-05-01T11:00:00.000Z", "action": "future_thing"}),
                json!({"receivedAt": 5, "action": "push"}),
                json!({"receivedAt": "2024-05-01T12:30:00.000Z"}),
            ],
        );
        // A second page (of another range) adds to the same counts.
        a.add_page(
            q.bucket,
            &[json!({"receivedAt": "2024-05-01T10:30:00.000Z", "action": "delete"})],
        );
        assert_eq!(a.events, 5);
        let body: Value = serde_json::from_slice(&a.body(&q)).unwrap();
        assert_eq!(
            body,
            json!({
                "since": "2024-05-01T00:00:00.000Z",
                "until": "2024-05-02T00:00:00.000Z",
                "bucket": "hour",
                "total": 5,
                "actions": {"push": 2, "delete": 1, "future_thing": 1, "unknown": 1},
                "buckets": [
                    {"start": "2024-05-01T10:00:00.000Z", "total": 3, "counts": {"push": 2, "delete": 1}},
                    {"start": "2024-05-01T11:00:00.000Z", "total": 1, "counts": {"future_thing": 1}},
                    {"start": "2024-05-01T12:00:00.000Z", "total": 1, "counts": {"unknown": 1}},
                ]
            })
        );
    }
}
