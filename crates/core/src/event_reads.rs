//! The read API's conversations with Cosmos DB: a page of `GET /events` and one event for
//! `GET /events/{id}`. The pure parts (query text, order, tokens, answer shapes) are in
//! [`crate::read_api`]; this module sends the queries through the [`Host`] and puts the
//! answers together.
//!
//! # One page
//! When the filters fix the container's partition key (`/image` with `image=`, ...), the
//! query runs in that one partition. Otherwise it is sent to each partition key range (read
//! from `.../pkranges` for every page, so a split is seen at once): Cosmos DB's gateway
//! refuses an `ORDER BY` across partitions, but serves it within one range. Each target is
//! asked for `limit + 1` events after the page's starting position, following Cosmos's own
//! continuation through short and empty pages; the answers are merged in the list order and
//! the first `limit` form the page. One more event anywhere means another page, which starts
//! after the last one listed (see [`crate::read_api`], "Paging across partitions").

use std::time::SystemTime;

use http::Response;
use serde_json::Value;

use crate::answer::{Failure, Success};
use crate::config::Config;
use crate::cosmos::{CosmosFailure, QueryScope, X_MS_CONTINUATION};
use crate::host::Host;
use crate::read_api::{self, EventQuery, PageError, Position};
use crate::store::send_with_retries;

/// The most Cosmos DB round trips one read request makes (ranges, pages of ranges, pages of
/// answers): a store that keeps answering empty pages with a continuation cannot hold a
/// request forever, whatever the time budget.
pub const MAX_ROUND_TRIPS: usize = 64;

/// The secret that seals continuation tokens: derived from the account key, so every replica
/// shares it and it changes when the key is rotated.
fn continuation_secret(config: &Config) -> [u8; 32] {
    config
        .store
        .key
        .derive(b"acr-webhook continuation token v1")
}

/// `GET /events?...`: one page, newest first.
pub async fn list_events<H: Host>(
    config: &Config,
    host: &H,
    query: &str,
    now: SystemTime,
) -> Result<Success, Failure> {
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
    let mut reads = Reads::new(config, host, now);

    let mut events = match read_api::query_partition_key(&config.store.partition_key_path, &query) {
        Some(partition_key) => {
            reads
                .collect(&body, QueryScope::Partition(&partition_key), limit + 1)
                .await?
        }
        None => {
            let mut merged = Vec::new();
            for range in reads.partition_key_ranges().await? {
                merged.extend(
                    reads
                        .collect(&body, QueryScope::PartitionKeyRange(&range), limit + 1)
                        .await?,
                );
            }
            merged
        }
    };
    events.sort_by(read_api::newest_first);
    let next = if events.len() > limit {
        events.truncate(limit);
        let last = events.last().and_then(Position::of).ok_or_else(|| {
            unusable(PageError::UnexpectedShape(
                "a listed document has no string `id`",
            ))
        })?;
        Some(read_api::seal_continuation(&secret, &query, &last))
    } else {
        None
    };
    Ok(Success::Json(read_api::page_body(events, next)))
}

/// `GET /events/{id}`: one stored event, found by a query on its id (which works whatever
/// the container's partition key path is; across partitions when it is not `/id`).
pub async fn read_one_event<H: Host>(
    config: &Config,
    host: &H,
    segment: &str,
    now: SystemTime,
) -> Result<Success, Failure> {
    let id =
        read_api::document_path_id(segment).map_err(|e| Failure::InvalidQuery(e.to_string()))?;
    let body = read_api::id_query_body(&id);
    let partition_key = read_api::read_partition_key(&config.store.partition_key_path, &id);
    let scope = match &partition_key {
        Some(pk) => QueryScope::Partition(pk),
        None => QueryScope::CrossPartition,
    };
    let mut reads = Reads::new(config, host, now);
    match reads.collect(&body, scope, 1).await?.into_iter().next() {
        Some(document) => Ok(Success::Json(read_api::event_body(document))),
        None => Err(Failure::EventNotFound),
    }
}

/// Builds the request for one page: `(x-ms-date, continuation, items still wanted)`. Taken as
/// `dyn` (as is the page reader), so that `pages` exists once in the component however many
/// queries use it (4 KB of the module per copy).
pub(crate) type BuildPage<'f> = dyn Fn(&str, Option<&str>, usize) -> http::Request<Vec<u8>> + 'f;

/// The read requests of one incoming request: the configuration, the host, and how many
/// round trips are left.
pub(crate) struct Reads<'a, H> {
    config: &'a Config,
    host: &'a H,
    now: SystemTime,
    round_trips_left: usize,
}

impl<'a, H: Host> Reads<'a, H> {
    pub(crate) fn new(config: &'a Config, host: &'a H, now: SystemTime) -> Self {
        Self {
            config,
            host,
            now,
            round_trips_left: MAX_ROUND_TRIPS,
        }
    }

    /// Sends what `build(date, continuation, wanted)` makes (with retries within the budget)
    /// for each page of a paged answer, where `wanted` is how many items are still wanted, and
    /// hands each successful answer to `take`, which says how many items it took. Stops when
    /// `wanted` items were taken or the answer has no continuation.
    pub(crate) async fn pages(
        &mut self,
        mut wanted: usize,
        build: &BuildPage<'_>,
        take: &mut dyn FnMut(&[u8]) -> Result<usize, Failure>,
    ) -> Result<(), Failure> {
        let mut continuation: Option<String> = None;
        loop {
            if self.round_trips_left == 0 {
                return Err(Failure::ReadUnavailable {
                    reason: format!(
                        "Cosmos DB had not answered the query after {MAX_ROUND_TRIPS} requests \
                         (pages kept coming back short with a continuation)"
                    ),
                    retry_after: None,
                });
            }
            self.round_trips_left -= 1;
            let response = send_with_retries(self.config, self.host, self.now, |date| {
                build(date, continuation.as_deref(), wanted)
            })
            .await
            .map_err(for_reads)
            .and_then(|response| successful(self.config, response))?;
            wanted = wanted.saturating_sub(take(response.body())?);
            if wanted == 0 {
                return Ok(());
            }
            continuation = response
                .headers()
                .get(X_MS_CONTINUATION)
                .and_then(|v| v.to_str().ok())
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if continuation.is_none() {
                return Ok(());
            }
        }
    }

    /// Up to `want` documents of a query in one scope, in the order Cosmos DB returns them.
    async fn collect(
        &mut self,
        query_body: &Value,
        scope: QueryScope<'_>,
        want: usize,
    ) -> Result<Vec<Value>, Failure> {
        let config = self.config;
        let mut documents: Vec<Value> = Vec::new();
        self.pages(
            want,
            &|date, continuation, wanted| {
                config.store.scoped_query_request(
                    query_body,
                    scope,
                    u32::try_from(wanted).unwrap_or(u32::MAX),
                    continuation,
                    date,
                )
            },
            &mut |body| {
                let page = read_api::query_documents(body).map_err(unusable)?;
                let taken = page.len();
                documents.extend(page);
                Ok(taken)
            },
        )
        .await?;
        // A store that answers more than it was asked for does not make a page longer.
        documents.truncate(want);
        Ok(documents)
    }

    /// The ids of the container's current partition key ranges.
    pub(crate) async fn partition_key_ranges(&mut self) -> Result<Vec<String>, Failure> {
        let config = self.config;
        let mut listed = Vec::new();
        self.pages(
            usize::MAX, // every page of the feed
            &|date, continuation, _| {
                config
                    .store
                    .read_partition_key_ranges_request(continuation, date)
            },
            &mut |body| {
                let page = read_api::partition_key_ranges(body).map_err(unusable)?;
                let taken = page.len();
                listed.extend(page);
                Ok(taken)
            },
        )
        .await?;
        let ranges = read_api::current_range_ids(&listed);
        if ranges.is_empty() {
            return Err(unusable(PageError::UnexpectedShape(
                "the container has no partition key ranges",
            )));
        }
        Ok(ranges)
    }
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
