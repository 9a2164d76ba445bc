//! Talking to Cosmos DB through the host, within the request's time budget: writes with
//! retries, the ping check, and the read API's queries.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::{Request, Response};

use crate::answer::{Failure, Success};
use crate::config::Config;
use crate::cosmos::{
    classify_read, classify_write, x_ms_date, CosmosFailure, PartitionKeyPath, ReadResult,
    WriteResult, X_MS_CONTINUATION,
};
use crate::document::EventDocument;
use crate::host::Host;
use crate::json::json_fields;
use crate::retry::{RetryBudget, MIN_ATTEMPT};

/// Where an event was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The id of the document that holds the event.
    pub id: String,
    /// Stored now; `false`: stored before, with the same content (a redelivery).
    pub created: bool,
    /// The id the event maps to, when a different event holds it: this one is stored beside
    /// it, under `id` (see [`EventDocument::beside`]).
    pub conflicts_with: Option<String>,
}

/// How many ids derived from an event's id ([`EventDocument::beside`]) are tried when the one
/// before holds a different event (taken only by a sender that sent such an id on purpose).
/// After them the event is kept aside ([`EventDocument::kept_aside`]).
pub const MAX_CONFLICTS: usize = 3;

/// The documents an event may be stored as, in the order they are tried: its own, then
/// [`MAX_CONFLICTS`] derived from it one after the other ([`EventDocument::beside`]), and
/// last kept aside under an id derived with a secret no sender knows
/// ([`EventDocument::kept_aside`]). Each is taken only when the one before holds a different
/// event; every one of them is deterministic, so a redelivery finds the same one again.
pub fn candidates(config: &Config, document: &EventDocument) -> Vec<EventDocument> {
    let mut chain = Vec::with_capacity(MAX_CONFLICTS + 2);
    chain.push(document.clone());
    for _ in 0..MAX_CONFLICTS {
        let next = chain.last().expect("not empty").beside();
        chain.push(next);
    }
    chain.push(document.kept_aside(&kept_aside_secret(config)));
    chain
}

/// The secret of [`EventDocument::kept_aside`] ([`Config::derive_secret`], as the read API's
/// continuation secret is), so every replica shares it and no sender knows it.
fn kept_aside_secret(config: &Config) -> [u8; 32] {
    config.derive_secret(b"acr-webhook kept-aside id v1")
}

/// How often an id may be found taken (409) but its document not readable (404: deleted,
/// expired, or a replica behind) before the write gives up.
const MAX_TAKEN_BUT_ABSENT: usize = 2;

/// Sends the request `build(date)` makes, again after transient failures (429, 449, 408, 5xx,
/// no answer) with jittered backoff or the wait Cosmos asks for, until an answer that is not
/// transient arrives or the budget is spent. Resending is safe for every request built here:
/// creates are idempotent by id (409), reads and queries have no effect.
pub async fn send_with_retries<H: Host>(
    config: &Config,
    host: &H,
    now: SystemTime,
    build: impl Fn(&str) -> Request<Vec<u8>>,
) -> Result<Response<Vec<u8>>, Failure> {
    let budget = RetryBudget {
        total: config.write_budget,
    };
    let mut attempt = 0;
    let mut last: Option<(String, Option<Duration>)> = None;
    loop {
        let elapsed = host.elapsed();
        let Some(timeout) = budget.attempt_timeout(elapsed) else {
            let (reason, requested) =
                last.unwrap_or_else(|| ("no time left for a first attempt".into(), None));
            return Err(Failure::StoreUnavailable {
                reason,
                retry_after: requested,
            });
        };
        let (reason, requested) = match host.send(build(&x_ms_date(now + elapsed)), timeout).await {
            Ok(response) => {
                let failure = transient_failure(&response);
                match failure {
                    None => return Ok(response),
                    Some(f) => (f.to_string(), f.retry_after),
                }
            }
            Err(e) => (format!("Cosmos DB could not be reached: {e}"), None),
        };
        match budget.delay(attempt, requested, host.elapsed(), host.random_u64()) {
            Some(wait) => host.sleep(wait).await,
            None => {
                return Err(Failure::StoreUnavailable {
                    reason,
                    retry_after: requested,
                })
            }
        }
        last = Some((reason, requested));
        attempt += 1;
    }
}

fn transient_failure(response: &Response<Vec<u8>>) -> Option<CosmosFailure> {
    match classify_write(response.status(), response.headers(), response.body()) {
        WriteResult::Failed(f) if f.is_transient() => Some(f),
        _ => None,
    }
}

/// The create request's body and its `x-ms-documentdb-partitionkey` value for `document`:
/// one serialization, and the partition key read from the document's own fields.
pub fn create_body(document: &EventDocument, path: &PartitionKeyPath) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(document).expect("documents serialize");
    (body, document.partition_key_header(path))
}

/// Writes one document: created now, or stored before with the same content. When its id is
/// taken (409) the stored document is read (a point read in the same partition) and its
/// `contentHash` compared: the same, or none (written before hashes were stored), is a
/// redelivery; a different one means another event holds the id, and this one is written as
/// the next of its [`candidates`], whose 409 is compared in turn. Every request runs inside
/// the same time budget.
pub async fn write_document<H: Host>(
    config: &Config,
    host: &H,
    document: &EventDocument,
    now: SystemTime,
) -> Result<Written, Failure> {
    // Most events are stored under their own id: the other candidates are built only once it
    // holds another event.
    match write_candidates(config, host, std::slice::from_ref(document), 0, now).await {
        Err(Failure::ConflictIdsTaken { .. }) => {
            write_candidates(config, host, &candidates(config, document), 1, now).await
        }
        other => other,
    }
}

/// [`write_document`] for an event's [`candidates`], starting at `candidates[start]` (the
/// batch pre-check may know that the ones before hold other events). When every candidate
/// holds another event the answer is [`Failure::ConflictIdsTaken`].
pub async fn write_candidates<H: Host>(
    config: &Config,
    host: &H,
    candidates: &[EventDocument],
    start: usize,
    now: SystemTime,
) -> Result<Written, Failure> {
    let path = &config.store.partition_key_path;
    let mut at = start;
    let mut absent = 0;
    while let Some(current) = candidates.get(at) {
        // Each attempt gets its own copy of the body because a request owns its `Vec<u8>`
        // (the host consumes it).
        let (body, partition_key) = create_body(current, path);
        let response = send_with_retries(config, host, now, |date| {
            config
                .store
                .create_document_request(body.clone(), &partition_key, date)
        })
        .await?;
        let written = |created| Written {
            id: current.id.clone(),
            created,
            conflicts_with: current.conflicts_with.clone(),
        };
        match classify_write(response.status(), response.headers(), response.body()) {
            WriteResult::Created => return Ok(written(true)),
            WriteResult::AlreadyStored => {}
            WriteResult::Failed(f) => return Err(Failure::store_refused(&config.store, f)),
        }
        match stored_content(config, host, &current.id, &partition_key, now).await? {
            Some(None) => return Ok(written(false)),
            Some(Some(hash)) if hash == current.content_hash => return Ok(written(false)),
            Some(Some(_)) => at += 1,
            None => {
                absent += 1;
                if absent > MAX_TAKEN_BUT_ABSENT {
                    return Err(Failure::StoreUnavailable {
                        reason: "Cosmos DB answered that the id is taken, but not with the \
                                 document holding it"
                            .into(),
                        retry_after: None,
                    });
                }
            }
        }
    }
    Err(ids_taken(candidates))
}

/// Every candidate of an event holds another event.
fn ids_taken(candidates: &[EventDocument]) -> Failure {
    Failure::ConflictIdsTaken {
        id: crate::text::printable(candidates.first().map_or("", |d| d.id.as_str())),
        tried: candidates.len(),
    }
}

/// The `contentHash` of the document stored under `id` in the partition `partition_key`:
/// `Some(Some(hash))`, `Some(None)` for a document without a (string) hash, `None` when
/// there is no such document (404).
async fn stored_content<H: Host>(
    config: &Config,
    host: &H,
    id: &str,
    partition_key: &str,
    now: SystemTime,
) -> Result<Option<Option<String>>, Failure> {
    let response = send_with_retries(config, host, now, |date| {
        config.store.read_document_request(id, partition_key, date)
    })
    .await?;
    let (parts, body) = response.into_parts();
    match classify_read(parts.status, &parts.headers, body) {
        ReadResult::Found(body) => {
            #[derive(Default)]
            struct Stored {
                content_hash: Option<serde_json::Value>,
            }
            crate::json::json_fields!(Stored { "contentHash" => content_hash: Value });
            let mut stored = Stored::default();
            crate::json::read_object(&body, &mut stored).map_err(|_| {
                Failure::StoreUnavailable {
                    reason: "Cosmos DB answered the read of a stored document with a body that \
                             is not a document"
                        .into(),
                    retry_after: None,
                }
            })?;
            Ok(Some(match stored.content_hash {
                None | Some(serde_json::Value::Null) => None,
                // Anything but a string cannot be this content: compared as different.
                Some(serde_json::Value::String(hash)) => Some(hash),
                Some(_) => Some(String::new()),
            }))
        }
        ReadResult::NotFound => Ok(None),
        ReadResult::Failed(f) => Err(Failure::store_refused(&config.store, f)),
    }
}

/// A signed read of the container's metadata: proves endpoint, key, database and container.
/// One attempt: a ping is a check, its answer should say what is wrong now.
///
/// The same answer holds the container's indexing policy: when it has no composite index for
/// the read API's order, the ping still succeeds (writes work) but carries a warning
/// ([`Success::PongWithWarning`]). No further request is made for it, so the check costs one
/// round trip within ACR's 5 s as before.
pub async fn check_store<H: Host>(
    config: &Config,
    host: &H,
    now: SystemTime,
) -> Result<Success, Failure> {
    let store = &config.store;
    let budget = RetryBudget {
        total: config.write_budget,
    };
    let timeout = budget
        .attempt_timeout(host.elapsed())
        .unwrap_or(MIN_ATTEMPT);
    let request = store.read_container_request(&x_ms_date(now));
    let response = host
        .send(request, timeout)
        .await
        .map_err(|e| Failure::StoreCheckFailed {
            reason: format!("Cosmos DB could not be reached: {e}"),
        })?;
    let (parts, body) = response.into_parts();
    match classify_read(parts.status, &parts.headers, body) {
        ReadResult::Found(body) => Ok(match read_warning(&body) {
            Some(false) => Success::PongWithWarning(format!(
                "writes work, but GET /events will fail: {}",
                crate::indexing::missing_index_advice(&store.database, &store.container)
            )),
            Some(true) | None => Success::Pong,
        }),
        ReadResult::NotFound => Err(Failure::StoreCheckFailed {
            reason: format!(
                "container `{}` in database `{}` does not exist (create it with `acr-webhook init`)",
                store.container, store.database
            ),
        }),
        ReadResult::Failed(f) => Err(Failure::StoreCheckFailed {
            reason: f.to_string(),
        }),
    }
}

/// Whether the container's properties (the answer to its read) show an indexing policy that
/// serves the read API's order; `None` when the answer has no `indexingPolicy` object (Cosmos
/// DB and the local store always send one; nothing is claimed without it).
fn read_warning(container: &[u8]) -> Option<bool> {
    #[derive(Default)]
    struct Container {
        policy: Option<serde_json::Value>,
    }
    json_fields!(Container { "indexingPolicy" => policy: Value });
    let mut read = Container::default();
    crate::json::read_object(container, &mut read).ok()?;
    let policy = read.policy.filter(serde_json::Value::is_object)?;
    Some(crate::indexing::serves_read_order(&policy))
}

/// What the batch pre-check found of the documents of a delivery: by (partition key header,
/// id), the stored `contentHash` (`None` when the document has none). Only what was found is
/// known: an id missing here may still be stored (a page not read, a failed query), which
/// the write then finds out.
pub type StoredKeys = HashMap<(String, String), Option<String>>;

/// Which [`candidates`] of a delivery's events are stored already, with their `contentHash`,
/// so that redelivering a large batch does not spend the budget on a 409 and a point read per
/// event and makes progress each time. One cross-partition query for the events' own ids,
/// and a second one for the other candidates of the events whose own id holds a different
/// event (so an event stored beside another is found too). Each query follows its
/// continuation through every page (a cross-partition query is answered a partition key range
/// at a time). Cosmos DB's ids are unique per logical partition only, so a stored document
/// counts for a candidate only when its partition key is the candidate's too. The pre-check
/// stops at the first failed or unusable answer, and after half the budget, keeping what it
/// found: the writes find out the rest one by one.
pub async fn stored_keys<H: Host>(
    config: &Config,
    host: &H,
    documents: &[EventDocument],
    now: SystemTime,
) -> StoredKeys {
    let path = &config.store.partition_key_path;
    let mut known = StoredKeys::new();
    let own: Vec<&str> = documents.iter().map(|d| d.id.as_str()).collect();
    if !query_stored(config, host, &own, now, &mut known).await {
        return known;
    }
    let others: Vec<String> = documents
        .iter()
        .filter(|d| standing(&known, path, std::slice::from_ref(*d)) == Standing::Taken)
        .flat_map(|d| candidates(config, d).into_iter().skip(1).map(|c| c.id))
        .collect();
    if !others.is_empty() {
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        query_stored(config, host, &others, now, &mut known).await;
    }
    known
}

/// What the pre-check knows of `document`: `Some(hash)` when it is stored (`hash` as in
/// [`StoredKeys`]), `None` when it was not found.
pub fn stored_hash<'k>(
    known: &'k StoredKeys,
    path: &PartitionKeyPath,
    document: &EventDocument,
) -> Option<&'k Option<String>> {
    known.get(&(document.partition_key_header(path), document.id.clone()))
}

/// Where an event's [`candidates`] stand by the pre-check's `known`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// `candidates[i]` is stored with this content (or without a hash): a redelivery.
    Stored(usize),
    /// The candidates before `i` hold other events; `candidates[i]` was not found: the write
    /// starts there.
    WriteFrom(usize),
    /// Every candidate holds another event.
    Taken,
}

/// The [`Standing`] of an event's `candidates` by the pre-check's `known`.
pub fn standing(
    known: &StoredKeys,
    path: &PartitionKeyPath,
    candidates: &[EventDocument],
) -> Standing {
    for (i, candidate) in candidates.iter().enumerate() {
        match stored_hash(known, path, candidate) {
            None => return Standing::WriteFrom(i),
            Some(hash) if hash.as_ref().is_none_or(|h| *h == candidate.content_hash) => {
                return Standing::Stored(i)
            }
            Some(_) => {}
        }
    }
    Standing::Taken
}

/// The most pages one pre-check query reads (besides the time it may take).
const MAX_PRE_CHECK_PAGES: usize = 100;

/// Adds to `known` the stored documents whose id is one of `ids`, page after page; `false`
/// when it stopped before the last page (a failed or unusable answer, or half the budget
/// spent).
async fn query_stored<H: Host>(
    config: &Config,
    host: &H,
    ids: &[&str],
    now: SystemTime,
    known: &mut StoredKeys,
) -> bool {
    let budget = RetryBudget {
        total: config.write_budget,
    };
    let path = &config.store.partition_key_path;
    let query = serde_json::json!({
        "query": format!(
            "SELECT c.id, c.contentHash{} FROM c WHERE ARRAY_CONTAINS(@ids, c.id)",
            partition_key_projection(path)
        ),
        "parameters": [{ "name": "@ids", "value": ids }],
    });
    let max_items = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    let mut continuation: Option<String> = None;
    for _ in 0..MAX_PRE_CHECK_PAGES {
        // The writes keep at least half the budget.
        let elapsed = host.elapsed();
        let timeout = match budget.attempt_timeout(elapsed) {
            Some(timeout) if elapsed < budget.total / 2 => timeout,
            _ => return false,
        };
        let request = config.store.query_documents_request(
            &query,
            None,
            max_items,
            continuation.as_deref(),
            &x_ms_date(now + elapsed),
        );
        let Ok(response) = host.send(request, timeout).await else {
            return false;
        };
        if response.status() != http::StatusCode::OK {
            return false;
        }
        let Ok(page) = serde_json::from_slice::<serde_json::Value>(response.body()) else {
            return false;
        };
        let Some(rows) = page.get("Documents").and_then(serde_json::Value::as_array) else {
            return false;
        };
        for row in rows {
            let Some(id) = row.get("id").and_then(serde_json::Value::as_str) else {
                continue;
            };
            let hash = row
                .get("contentHash")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            known.insert((path.header_for(row), id.to_owned()), hash);
        }
        continuation = response
            .headers()
            .get(X_MS_CONTINUATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if continuation.is_none() {
            return true;
        }
    }
    false
}

/// `, c.<property>` for the first segment of the partition key path, so that a row of the
/// pre-check's answer has the partition key where a document has it; nothing when the path
/// is `/id` or `/contentHash` (already selected) or its first segment is not a plain identifier (no document
/// written here has such a property: their partition key is undefined, as the row's is).
fn partition_key_projection(path: &PartitionKeyPath) -> String {
    let first = path.as_str()[1..].split('/').next().unwrap_or_default();
    let identifier = first
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if identifier && first != "id" && first != "contentHash" {
        format!(", c.{first}")
    } else {
        String::new()
    }
}
