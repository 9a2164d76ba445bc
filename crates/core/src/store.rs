//! Talking to Cosmos DB through the host, within the request's time budget: writes with
//! retries, the ping check, and the read API's queries.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use http::{Request, Response};

use crate::answer::{Failure, Success};
use crate::config::Config;
use crate::cosmos::{
    classify_read, classify_write, x_ms_date, CosmosFailure, PartitionKeyPath, ReadResult,
    WriteResult,
};
use crate::document::EventDocument;
use crate::host::Host;
use crate::json::{json_fields, Capped};
use crate::retry::{RetryBudget, MIN_ATTEMPT};

/// Whether a document was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored now.
    Created,
    /// Stored before (same id).
    AlreadyStored,
}

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

/// The create request's body and its `x-ms-documentdb-partitionkey` value for `document`, in
/// one serialization: the partition key comes from the document's own field, or, for a path
/// that is not one of its properties, from the serialized body.
pub fn create_body(document: &EventDocument, path: &PartitionKeyPath) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(document).expect("documents serialize");
    let partition_key = document.partition_key_header(path).unwrap_or_else(|| {
        path.header_for(&serde_json::from_slice(&body).expect("the body was just serialized"))
    });
    (body, partition_key)
}

/// Writes one document: created now, or stored before.
pub async fn write_document<H: Host>(
    config: &Config,
    host: &H,
    document: &EventDocument,
    now: SystemTime,
) -> Result<Written, Failure> {
    // Each attempt gets its own copy of the body because a request owns its `Vec<u8>` (the
    // host consumes it).
    let (body, partition_key) = create_body(document, &config.store.partition_key_path);
    let response = send_with_retries(config, host, now, |date| {
        config
            .store
            .create_document_request(body.clone(), &partition_key, date)
    })
    .await?;
    match classify_write(response.status(), response.headers(), response.body()) {
        WriteResult::Created => Ok(Written::Created),
        WriteResult::AlreadyStored => Ok(Written::AlreadyStored),
        WriteResult::Failed(f) => Err(Failure::store_refused(&config.store, f)),
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

/// Which of `ids` are stored already, in one cross-partition query, so that redelivering a
/// large batch does not spend the budget on a 409 per event and makes progress each time.
/// A failed or unusable answer gives an empty set: the writes then find out one by one.
pub async fn stored_ids<H: Host>(
    config: &Config,
    host: &H,
    ids: &[&str],
    now: SystemTime,
) -> HashSet<String> {
    let budget = RetryBudget {
        total: config.write_budget,
    };
    let Some(timeout) = budget.attempt_timeout(host.elapsed()) else {
        return HashSet::new();
    };
    let query = serde_json::json!({
        "query": "SELECT c.id FROM c WHERE ARRAY_CONTAINS(@ids, c.id)",
        "parameters": [{ "name": "@ids", "value": ids }],
    });
    let max_items = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    let request = config.store.query_documents_request(
        &query,
        None,
        max_items,
        None,
        &x_ms_date(now + host.elapsed()),
    );
    #[derive(Default)]
    struct Page {
        documents: Option<Capped<IdOnly, { usize::MAX }>>,
    }
    json_fields!(Page { "Documents" => documents: Objects });
    #[derive(Default)]
    struct IdOnly {
        id: Option<String>,
    }
    json_fields!(IdOnly { "id" => id: Text });
    match host.send(request, timeout).await {
        Ok(response) if response.status() == http::StatusCode::OK => {
            let mut page = Page::default();
            match crate::json::read_object(response.body(), &mut page) {
                Ok(()) => page
                    .documents
                    .map(|documents| documents.items.into_iter().filter_map(|d| d.id).collect())
                    .unwrap_or_default(),
                Err(_) => HashSet::new(),
            }
        }
        _ => HashSet::new(),
    }
}
