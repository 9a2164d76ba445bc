//! The read API's conversations with Cosmos DB: a page of `GET /events` and one event for
//! `GET /events/{id}`. The pure parts (query text, order, tokens, answer shapes) are in
//! [`crate::read_api`]; this module sends the queries through the [`Host`] and puts the
//! answers together.
//!
//! # One page
//! When the filters fix the container's partition key (`/image` with `image=`, ...), the
//! query runs in that one partition. Otherwise it is sent to each partition key range (read
//! from `.../pkranges` for every page, so a split is seen at once): Cosmos DB's gateway
//! refuses an `ORDER BY` across partitions, but serves it within one range. The ranges are
//! queried [`FAN_OUT`] at a time ([`Reads::query_pages`], the fan-out); each is asked for
//! events after the page's starting position, a few at first and then more only from the
//! ranges whose events could still be on the page, following Cosmos's own continuation through
//! short and empty pages ([`Reads::newest_first`]). Answers are merged in the list order as
//! they come and what cannot be on the page is dropped at once. One more event anywhere means
//! another page, which starts after the last one listed (see [`crate::read_api`], "Paging
//! across partitions").
//!
//! # Limits of one read
//! At most [`round_trip_budget`] requests (64 + 4 per range) and none after the time budget;
//! at most `limit + 1` events and [`MAX_PAGE_BYTES`] of them held, plus the answers of the
//! queries in flight. Reaching a limit is [`Failure::ReadLimitReached`], which names it.

use std::cell::Cell;
use std::cmp::Ordering;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::SystemTime;

use http::Response;
use serde_json::Value;

use crate::answer::{Failure, Success};
use crate::config::Config;
use crate::cosmos::{at_low_priority, CosmosFailure, QueryScope, X_MS_CONTINUATION};
use crate::host::Host;
use crate::read_api::{self, EventQuery, PageError, Position};
use crate::retry::RetryBudget;
use crate::store::send_with_retries;

/// The round trips every read request may make whatever the container: the pages of the
/// `pkranges` feed and a query in one partition, through short and empty pages. A store that
/// keeps answering empty pages with a continuation cannot hold a request forever.
pub const MAX_ROUND_TRIPS: usize = 64;

/// The round trips a read request may make on top of [`MAX_ROUND_TRIPS`] for each partition
/// key range it queries: a first page, and three more for short and empty pages or for a range
/// that holds much of the page.
pub const ROUND_TRIPS_PER_RANGE: usize = 4;

/// At most this many queries of one read request are in flight at once.
pub const FAN_OUT: usize = 8;

/// The most bytes of events one page holds (the events' JSON): a page of large events is
/// shorter than `limit` and has a continuation. A page always holds at least one event (a
/// Cosmos DB document is at most 2 MiB).
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// A query page asks a range for no more events than fit in about this many bytes, judged by
/// the largest event seen so far in the request.
const ASK_BYTES: usize = 1 << 20;

/// The round trips one read request may make when it queries `ranges` partition key ranges.
pub fn round_trip_budget(ranges: usize) -> usize {
    MAX_ROUND_TRIPS.saturating_add(ranges.saturating_mul(ROUND_TRIPS_PER_RANGE))
}

/// The secret that seals continuation tokens ([`Config::derive_secret`]): the same on every
/// replica; tokens sealed before a rotation of the key it comes from are refused (400
/// `invalid_continuation`) and the reader starts again from the first page.
fn continuation_secret(config: &Config) -> [u8; 32] {
    config.derive_secret(b"acr-webhook continuation token v1")
}

/// `GET /events?...`: one page, newest first; or, for `GET /events?id=<id>`, that event.
pub async fn list_events<H: Host>(
    config: &Config,
    host: &H,
    query: &str,
    now: SystemTime,
) -> Result<Success, Failure> {
    if let Some(id) =
        read_api::id_parameter(query).map_err(|e| Failure::InvalidQuery(e.to_string()))?
    {
        return read_event(config, host, &id, now).await;
    }
    let query = EventQuery::parse(query).map_err(|e| Failure::InvalidQuery(e.to_string()))?;
    let secret = continuation_secret(config);
    let after = query
        .continuation
        .as_deref()
        .map(|token| read_api::open_continuation(&secret, &query, token))
        .transpose()
        .map_err(|e| Failure::InvalidContinuation(e.to_string()))?;
    let body = read_api::query_body(&query, after.as_ref());
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let reads = Reads::new(config, host, now);

    let targets = reads.targets(&query).await?;
    let merged = reads.newest_first(&body, &targets.scopes(), limit).await?;
    let next = if merged.more {
        let last = merged.events.last().and_then(Position::of).ok_or_else(|| {
            unusable(PageError::UnexpectedShape(
                "a listed document has no string `id`",
            ))
        })?;
        Some(read_api::seal_continuation(&secret, &query, &last))
    } else {
        None
    };
    Ok(Success::Json(read_api::page_body(merged.events, next)))
}

/// `GET /events/{id}`: one stored event, named by its path segment.
pub async fn read_one_event<H: Host>(
    config: &Config,
    host: &H,
    segment: &str,
    now: SystemTime,
) -> Result<Success, Failure> {
    let id =
        read_api::document_path_id(segment).map_err(|e| Failure::InvalidQuery(e.to_string()))?;
    read_event(config, host, &id, now).await
}

/// The stored event whose document id is `id`, found by a query on its id (which works
/// whatever the container's partition key path is; across partitions when it is not `/id`).
async fn read_event<H: Host>(
    config: &Config,
    host: &H,
    id: &str,
    now: SystemTime,
) -> Result<Success, Failure> {
    let body = read_api::id_query_body(id);
    let partition_key = read_api::read_partition_key(&config.store.partition_key_path, id);
    let scope = match &partition_key {
        Some(pk) => QueryScope::Partition(pk),
        None => QueryScope::CrossPartition,
    };
    let reads = Reads::new(config, host, now);
    match reads.collect(&body, scope, 1).await?.into_iter().next() {
        Some(document) => Ok(Success::Json(read_api::event_body(document))),
        None => Err(Failure::EventNotFound),
    }
}

/// The first events of a merge, newest first: what [`Reads::newest_first`] returns.
#[derive(Debug)]
pub struct Merged {
    /// The events, newest first: at most `limit`, and at most [`MAX_PAGE_BYTES`] of them
    /// (but at least one when there is one).
    pub events: Vec<Value>,
    /// True when more events follow the last one.
    pub more: bool,
}

/// One query page asked of one target by [`Reads::query_pages`].
#[derive(Debug, Clone, Copy)]
pub struct PageAsk<'a> {
    /// Where the query runs: usually one partition key range.
    pub scope: QueryScope<'a>,
    /// `x-ms-max-item-count`: the most documents the page may hold.
    pub max_items: u32,
    /// Cosmos DB's continuation from the previous page of this target, if any.
    pub continuation: Option<&'a str>,
}

/// One query page's answer, from [`Reads::query_pages`].
#[derive(Debug, Default)]
pub struct PageAnswer {
    /// The page's documents, in the order Cosmos DB returned them.
    pub documents: Vec<Value>,
    /// Cosmos DB's continuation: the target has more after this page.
    pub continuation: Option<String>,
}

/// What is known of one target while pages are merged.
#[derive(Default)]
struct Cursor {
    asked: bool,
    continuation: Option<String>,
    /// The last document this target returned (its position; the document itself may have
    /// been dropped from the merge).
    last: Option<Value>,
}

impl Cursor {
    fn done(&self) -> bool {
        self.asked && self.continuation.is_none()
    }
}

/// The read requests of one incoming request: the configuration, the host, and how many
/// round trips are left. Shared by the queries in flight (single-threaded: `Cell`s).
pub struct Reads<'a, H> {
    config: &'a Config,
    host: &'a H,
    now: SystemTime,
    round_trips_left: Cell<usize>,
    round_trips_made: Cell<usize>,
    round_trips_allowed: Cell<usize>,
    ranges: Cell<usize>,
}

/// Where one read's queries go: the one partition its filters fix, or every partition key range.
pub enum Targets {
    /// The filters fix the container's partition key to this value.
    Partition(String),
    /// The container's current partition key ranges.
    Ranges(Vec<String>),
}

impl Targets {
    /// The scope of each query.
    pub fn scopes(&self) -> Vec<QueryScope<'_>> {
        match self {
            Targets::Partition(pk) => vec![QueryScope::Partition(pk)],
            Targets::Ranges(ranges) => ranges
                .iter()
                .map(|r| QueryScope::PartitionKeyRange(r))
                .collect(),
        }
    }
}

impl<'a, H: Host> Reads<'a, H> {
    /// Where a read with these filters goes: the partition they fix, or every partition key
    /// range (read now), with the round-trip budget raised for them.
    pub async fn targets(&self, query: &EventQuery) -> Result<Targets, Failure> {
        match read_api::query_partition_key(&self.config.store.partition_key_path, query) {
            Some(pk) => Ok(Targets::Partition(pk)),
            None => {
                let ranges = self.partition_key_ranges().await?;
                self.allow_for_ranges(ranges.len());
                Ok(Targets::Ranges(ranges))
            }
        }
    }

    /// A read request's budget: [`MAX_ROUND_TRIPS`] round trips, until
    /// [`Reads::allow_for_ranges`] says how many ranges it queries.
    pub fn new(config: &'a Config, host: &'a H, now: SystemTime) -> Self {
        Self {
            config,
            host,
            now,
            round_trips_left: Cell::new(MAX_ROUND_TRIPS),
            round_trips_made: Cell::new(0),
            round_trips_allowed: Cell::new(MAX_ROUND_TRIPS),
            ranges: Cell::new(0),
        }
    }

    /// Raises the round-trip budget to [`round_trip_budget`]`(ranges)` (counting those
    /// already made).
    pub fn allow_for_ranges(&self, ranges: usize) {
        let allowed = round_trip_budget(ranges);
        self.ranges.set(ranges);
        self.round_trips_allowed.set(allowed);
        self.round_trips_left
            .set(allowed.saturating_sub(self.round_trips_made.get()));
    }

    /// Takes one round trip from the budget, or says which limit was reached.
    fn spend_round_trip(&self) -> Result<(), Failure> {
        let budget = self.config.write_budget;
        let time = RetryBudget { total: budget };
        if time.attempt_timeout(self.host.elapsed()).is_none() {
            // As u64: formatting a u128 (what as_millis gives) links 3 KB of wasm for this line.
            return Err(self.limit_reached(format!(
                "the read's time budget of {} ms (`write_budget_ms`) ran out",
                u64::try_from(budget.as_millis()).unwrap_or(u64::MAX)
            )));
        }
        if self.round_trips_left.get() == 0 {
            return Err(self.limit_reached(format!(
                "it reached the most requests to Cosmos DB one read makes ({} = {MAX_ROUND_TRIPS} \
                 + {ROUND_TRIPS_PER_RANGE} per partition key range); the store kept answering \
                 short or empty pages with a continuation",
                self.round_trips_allowed.get()
            )));
        }
        self.round_trips_left.set(self.round_trips_left.get() - 1);
        self.round_trips_made.set(self.round_trips_made.get() + 1);
        Ok(())
    }

    fn limit_reached(&self, what: String) -> Failure {
        let ranges = match self.ranges.get() {
            0 => String::new(),
            1 => " in 1 partition key range".to_owned(),
            n => format!(" across {n} partition key ranges"),
        };
        Failure::ReadLimitReached {
            reason: format!(
                "{what}, after {} requests{ranges}; narrow the filters or ask for a smaller `limit`",
                self.round_trips_made.get()
            ),
        }
    }

    /// Sends what `build(date)` makes, with retries within the time budget, as one round trip
    /// of the budget; a 2xx answer or the failure it means.
    async fn round_trip(
        &self,
        build: impl Fn(&str) -> http::Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, Failure> {
        self.spend_round_trip()?;
        // Reads go at low priority: a burst of them is throttled before the writes.
        send_with_retries(self.config, self.host, self.now, |date| {
            at_low_priority(build(date))
        })
        .await
        .map_err(for_reads)
        .and_then(|response| successful(self.config, response))
    }

    /// One query page from each of `asks`, at most [`FAN_OUT`] in flight at once, each a
    /// round trip of the budget; the answers in the order of `asks`. The first failure ends
    /// the whole (the queries of the same batch still in flight are dropped).
    ///
    /// This is the fan-out over partition key ranges: a caller asks each range for a page,
    /// looks at the answers, and asks again the ranges it needs more of (with their
    /// continuations). See [`Reads::newest_first`] and [`Reads::drain`].
    pub async fn query_pages(
        &self,
        query_body: &Value,
        asks: &[PageAsk<'_>],
    ) -> Result<Vec<PageAnswer>, Failure> {
        let mut answers = Vec::with_capacity(asks.len());
        for batch in asks.chunks(FAN_OUT) {
            let pages = batch.iter().map(|ask| self.query_page(query_body, *ask));
            for answer in join_all(pages.collect()).await {
                answers.push(answer?);
            }
        }
        Ok(answers)
    }

    async fn query_page(
        &self,
        query_body: &Value,
        ask: PageAsk<'_>,
    ) -> Result<PageAnswer, Failure> {
        let config = self.config;
        let response = self
            .round_trip(|date| {
                config.store.scoped_query_request(
                    query_body,
                    ask.scope,
                    ask.max_items,
                    ask.continuation,
                    date,
                )
            })
            .await?;
        let continuation = continuation_of(&response);
        let documents = read_api::query_documents(response.body()).map_err(unusable)?;
        Ok(PageAnswer {
            documents,
            continuation,
        })
    }

    /// Every document of a query in each of `targets`, following continuations, handed to
    /// `take(target index, documents)` page by page as they come, [`FAN_OUT`] pages at a
    /// time, `max_items` per page (for a query whose answers are small, such as counts).
    pub async fn drain(
        &self,
        query_body: &Value,
        targets: &[QueryScope<'_>],
        max_items: u32,
        mut take: impl FnMut(usize, Vec<Value>) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut cursors: Vec<Cursor> = targets.iter().map(|_| Cursor::default()).collect();
        loop {
            let open: Vec<usize> = (0..targets.len()).filter(|&i| !cursors[i].done()).collect();
            if open.is_empty() {
                return Ok(());
            }
            let asks: Vec<PageAsk<'_>> = open
                .iter()
                .map(|&i| PageAsk {
                    scope: targets[i],
                    max_items,
                    continuation: cursors[i].continuation.as_deref(),
                })
                .collect();
            let answers = self.query_pages(query_body, &asks).await?;
            for (&i, answer) in open.iter().zip(answers) {
                cursors[i].asked = true;
                cursors[i].continuation = answer.continuation;
                take(i, answer.documents)?;
            }
        }
    }

    /// The first `limit` events of `query_body` (an `ORDER BY` newest-first query) over all
    /// of `targets` (each answers in that order), and whether more follow.
    ///
    /// Each target is asked for a few events at first (`2 (limit + 1) / targets`, at least
    /// one), then, round by round, only the targets whose last event could still be on the
    /// page are asked again, for no more events than could still be on it and no more than
    /// about [`ASK_BYTES`] of them. Every answer is merged into the page at once and what
    /// cannot be on it (past `limit + 1` events or past [`MAX_PAGE_BYTES`]) is dropped, so a
    /// request holds at most the page plus the answers of [`FAN_OUT`] queries.
    pub async fn newest_first(
        &self,
        query_body: &Value,
        targets: &[QueryScope<'_>],
        limit: usize,
    ) -> Result<Merged, Failure> {
        let want = limit.saturating_add(1);
        let mut cursors: Vec<Cursor> = targets.iter().map(|_| Cursor::default()).collect();
        // The page so far, newest first, with each event's size in bytes.
        let mut page: Vec<(Value, usize)> = Vec::new();
        // Whether events were dropped for the byte budget (the page is full at its end).
        let mut cut_for_bytes = false;
        let mut largest = 0usize;
        let first_ask = want
            .saturating_mul(2)
            .div_ceil(targets.len().max(1))
            .clamp(1, want);
        loop {
            let full = page.len() >= want || cut_for_bytes;
            let cutoff = if full {
                page.last().map(|(d, _)| d)
            } else {
                None
            };
            let mut asks = Vec::new();
            let mut asked = Vec::new();
            for (i, cursor) in cursors.iter().enumerate() {
                if cursor.done() {
                    continue;
                }
                // Positions on the page still open to this target's next events.
                let open = match (&cursor.last, cutoff) {
                    (Some(last), Some(cutoff))
                        if read_api::newest_first(last, cutoff) != Ordering::Less =>
                    {
                        continue
                    }
                    (Some(last), _) => want.saturating_sub(
                        page.iter()
                            .filter(|(d, _)| read_api::newest_first(d, last) != Ordering::Greater)
                            .count(),
                    ),
                    (None, _) if !cursor.asked => first_ask,
                    (None, _) => want, // only empty pages so far
                };
                let by_bytes = ASK_BYTES.checked_div(largest).map_or(want, |n| n.max(1));
                let max_items = open.min(by_bytes).max(1);
                asks.push(PageAsk {
                    scope: targets[i],
                    max_items: u32::try_from(max_items).unwrap_or(u32::MAX),
                    continuation: cursor.continuation.as_deref(),
                });
                asked.push(i);
            }
            if asks.is_empty() {
                break;
            }
            // One batch at a time, merged as it comes, so that the answers of at most
            // FAN_OUT queries are held besides the page.
            let mut results: Vec<(usize, PageAnswer)> = Vec::with_capacity(asks.len());
            for (batch, indexes) in asks.chunks(FAN_OUT).zip(asked.chunks(FAN_OUT)) {
                let answers = self.query_pages(query_body, batch).await?;
                for ((&i, ask), mut answer) in indexes.iter().zip(batch).zip(answers) {
                    // A store that answers more than it was asked for does not make a page longer.
                    answer
                        .documents
                        .truncate(usize::try_from(ask.max_items).unwrap_or(usize::MAX));
                    let last = answer.documents.last().cloned();
                    for document in answer.documents.drain(..) {
                        let size = serde_json::to_string(&document).map_or(0, |t| t.len());
                        largest = largest.max(size);
                        page.push((document, size));
                    }
                    cut_for_bytes |= trim(&mut page, want);
                    results.push((
                        i,
                        PageAnswer {
                            documents: last.into_iter().collect(),
                            continuation: answer.continuation,
                        },
                    ));
                }
            }
            for (i, answer) in results {
                let cursor = &mut cursors[i];
                cursor.asked = true;
                cursor.continuation = answer.continuation;
                if let Some(last) = answer.documents.into_iter().next() {
                    cursor.last = Some(last);
                }
            }
        }
        let more = page.len() > limit || cut_for_bytes;
        page.truncate(limit);
        Ok(Merged {
            events: page.into_iter().map(|(d, _)| d).collect(),
            more,
        })
    }

    /// Up to `want` documents of a query in one scope, in the order Cosmos DB returns them.
    async fn collect(
        &self,
        query_body: &Value,
        scope: QueryScope<'_>,
        want: usize,
    ) -> Result<Vec<Value>, Failure> {
        let mut documents: Vec<Value> = Vec::new();
        let mut continuation: Option<String> = None;
        while documents.len() < want {
            let ask = PageAsk {
                scope,
                max_items: u32::try_from(want - documents.len()).unwrap_or(u32::MAX),
                continuation: continuation.as_deref(),
            };
            let answer = self.query_page(query_body, ask).await?;
            documents.extend(answer.documents);
            continuation = answer.continuation;
            if continuation.is_none() {
                break;
            }
        }
        // A store that answers more than it was asked for does not make a page longer.
        documents.truncate(want);
        Ok(documents)
    }

    /// The ids of the container's current partition key ranges.
    pub async fn partition_key_ranges(&self) -> Result<Vec<String>, Failure> {
        let config = self.config;
        let mut listed = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let response = self
                .round_trip(|date| {
                    config
                        .store
                        .read_partition_key_ranges_request(continuation.as_deref(), date)
                })
                .await?;
            listed.extend(read_api::partition_key_ranges(response.body()).map_err(unusable)?);
            continuation = continuation_of(&response);
            if continuation.is_none() {
                break;
            }
        }
        let ranges = read_api::current_range_ids(&listed);
        if ranges.is_empty() {
            return Err(unusable(PageError::UnexpectedShape(
                "the container has no partition key ranges",
            )));
        }
        Ok(ranges)
    }
}

/// Sorts the page newest first and drops what cannot be on it: events past the first
/// `want`, and events past [`MAX_PAGE_BYTES`] (keeping at least one). True when an event was
/// dropped for its bytes.
fn trim(page: &mut Vec<(Value, usize)>, want: usize) -> bool {
    page.sort_by(|a, b| read_api::newest_first(&a.0, &b.0));
    page.truncate(want);
    // The page's JSON: the events, a comma each, and room for the envelope and token.
    let mut bytes = 512;
    for (i, (_, size)) in page.iter().enumerate() {
        bytes += size + 1;
        if bytes > MAX_PAGE_BYTES && i > 0 {
            page.truncate(i);
            return true;
        }
    }
    false
}

/// A non-empty `x-ms-continuation` of an answer.
fn continuation_of(response: &Response<Vec<u8>>) -> Option<String> {
    response
        .headers()
        .get(X_MS_CONTINUATION)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Runs `futures` concurrently (on the caller's task) and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(out) => *output = Some(out),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A 2xx answer, or what its status means: any other answer to a read or query is final here
/// (transient ones were retried), including 404 for a container that does not exist, and
/// 400 for a container without the composite index the query orders by
/// ([`Failure::IndexMissing`], told apart by Cosmos DB's message).
fn successful(config: &Config, response: Response<Vec<u8>>) -> Result<Response<Vec<u8>>, Failure> {
    if response.status().is_success() {
        return Ok(response);
    }
    Err(Failure::store_refused(
        &config.store,
        CosmosFailure::from_answer(response.status(), response.headers(), response.body()),
    ))
}

/// The retried requests' "store unavailable", said of a read.
fn for_reads(failure: Failure) -> Failure {
    match failure {
        Failure::StoreUnavailable {
            reason,
            retry_after,
        } => Failure::ReadUnavailable {
            reason,
            retry_after,
        },
        other => other,
    }
}

pub(crate) fn unusable(error: PageError) -> Failure {
    Failure::ReadUnavailable {
        reason: format!("unusable answer from Cosmos DB: {error}"),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::test_config;

    /// Continuation tokens are sealed under `continuation_key` when it is set, else the account
    /// key, else (Entra ID) the webhook keys: each a different secret, and the Entra one
    /// changes when the webhook keys do.
    #[test]
    fn continuation_secrets_follow_the_configuration() {
        let entra = |webhook_keys: &str| {
            test_config(&[
                ("cosmos_auth", "entra"),
                ("cosmos_key", ""),
                ("webhook_keys", webhook_keys),
            ])
        };
        let own_key = [("continuation_key", "a-key-of-its-own-0123")];
        let keyed = continuation_secret(&test_config(&[]));
        let own = continuation_secret(&test_config(&own_key));
        let by_webhook_keys = continuation_secret(&entra("webhook-key-number-one-01"));
        assert_ne!(keyed, own);
        assert_ne!(keyed, by_webhook_keys);
        assert_ne!(own, by_webhook_keys);
        assert_eq!(
            by_webhook_keys,
            continuation_secret(&entra("webhook-key-number-one-01"))
        );
        assert_ne!(
            by_webhook_keys,
            continuation_secret(&entra("webhook-key-number-two-02"))
        );
        let entra_with_own_key = test_config(&[("cosmos_auth", "entra"), own_key[0]]);
        assert_eq!(own, continuation_secret(&entra_with_own_key));
    }
}
