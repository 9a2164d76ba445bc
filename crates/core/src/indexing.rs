//! The container's indexing policy as the read API needs it: the composite index that
//! `GET /events` orders by, whether a container's policy serves that order, and the change
//! that adds the index to a policy a user configured without removing anything from it
//! (what `acr-webhook init` sends as a `PUT` of the container).
//!
//! Cosmos DB answers an `ORDER BY` on two properties only from a composite index on exactly
//! those properties, in the query's order or in its exact reverse ("The composite index that
//! will support this query must exactly match the sequence of the properties in the ORDER BY
//! clause"; Microsoft Learn, "Evaluate composite indexes"). Without one it refuses the query
//! (400), even in one partition and when nothing matches: see
//! [`crate::cosmos::CosmosFailure::is_missing_composite_index`].

use serde_json::{json, Map, Value};

/// The composite index the read query (`ORDER BY c.receivedAt DESC, c.id DESC`) needs, as
/// people write it.
pub const READ_ORDER_INDEX: &str = "(/receivedAt DESC, /id DESC)";

/// The paths and orders of [`READ_ORDER_INDEX`].
const READ_ORDER: [(&str, &str); 2] = [("/receivedAt", "descending"), ("/id", "descending")];

/// The policy file in the repository that `az cosmosdb sql container create/update --idx`
/// takes: the same policy [`default_indexing_policy`] builds.
pub const POLICY_FILE: &str = "deploy/cosmos-indexing-policy.json";

/// What is missing and how to add it, for an answer, a log line or a ping's warning:
/// "container `events` of database `acr` has no composite index ...; add it with ...".
pub fn missing_index_advice(database: &str, container: &str) -> String {
    format!(
        "container `{container}` of database `{database}` has no composite index \
         {READ_ORDER_INDEX}, which GET /events orders by. Add it with `acr-webhook init` and \
         the receiver's variables (it adds the index and keeps the rest of the container's \
         indexing policy; `--dry-run` shows the change first), or with `az cosmosdb sql \
         container update -g <resource-group> -a <account> -d {database} -n {container} --idx \
         @{POLICY_FILE}` (which replaces the whole policy with that file's). Cosmos DB builds \
         the index online; the receiver needs no restart"
    )
}

/// [`READ_ORDER_INDEX`] as an entry of `indexingPolicy.compositeIndexes`.
pub fn read_order_composite_index() -> Value {
    Value::Array(
        READ_ORDER
            .iter()
            .map(|(path, order)| json!({ "path": path, "order": order }))
            .collect(),
    )
}

/// The indexing policy of a container `acr-webhook init` creates (and of [`POLICY_FILE`]):
/// every path indexed, `_etag` excluded, and [`READ_ORDER_INDEX`].
pub fn default_indexing_policy() -> Value {
    json!({
        "indexingMode": "consistent",
        "automatic": true,
        "includedPaths": [{ "path": "/*" }],
        "excludedPaths": [{ "path": "/\"_etag\"/?" }],
        "compositeIndexes": [read_order_composite_index()]
    })
}

/// Whether `policy` (a container's `indexingPolicy`) has a composite index that serves the
/// read order: exactly `/receivedAt`, `/id`, both descending or both ascending (a missing
/// `order` is ascending), with an indexing mode other than `none`.
pub fn serves_read_order(policy: &Value) -> bool {
    let mode_ok = policy
        .get("indexingMode")
        .and_then(Value::as_str)
        .is_none_or(|m| !m.eq_ignore_ascii_case("none"));
    mode_ok
        && policy
            .get("compositeIndexes")
            .and_then(Value::as_array)
            .is_some_and(|indexes| indexes.iter().any(is_read_order_index))
}

fn is_read_order_index(index: &Value) -> bool {
    let Some(paths) = index.as_array() else {
        return false;
    };
    if paths.len() != READ_ORDER.len() {
        return false;
    }
    let orders: Option<Vec<bool>> = paths
        .iter()
        .zip(READ_ORDER)
        .map(|(entry, (path, _))| {
            if entry.get("path").and_then(Value::as_str) != Some(path) {
                return None;
            }
            let order = entry
                .get("order")
                .and_then(Value::as_str)
                .unwrap_or("ascending");
            Some(order.eq_ignore_ascii_case("descending"))
        })
        .collect();
    // All descending (the query's order) or all ascending (its exact reverse).
    orders.is_some_and(|o| o.iter().all(|&d| d) || o.iter().all(|&d| !d))
}

/// What a container's indexing policy needs for the read API.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyPlan {
    /// The policy serves the read order already: nothing to change.
    Ready,
    /// The composite index is missing: `container` is the body of the `PUT` that adds it,
    /// with everything else as it was.
    Add {
        /// The container's properties to send back (its system properties `_rid`, `_ts`, ...
        /// left out), with [`READ_ORDER_INDEX`] appended to `indexingPolicy.compositeIndexes`.
        container: Value,
        /// The `_etag` the container had, to send as `If-Match` so that a change made
        /// meanwhile by someone else is not overwritten.
        etag: Option<String>,
        /// What the policy holds besides the new index, in words.
        kept: String,
    },
    /// The index cannot be added without changing something a user chose.
    Blocked(String),
}

/// Why a container's answer cannot be planned for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the container's properties are not usable: {0}")]
pub struct UnusableContainer(pub &'static str);

/// Plans the change `container` (the JSON of `GET /dbs/{db}/colls/{coll}`) needs so that it
/// serves the read API: nothing, or its properties with the composite index added. Nothing a
/// user configured is removed or changed: included and excluded paths, other composite
/// indexes, spatial indexes, the indexing mode, the time to live, unique keys and every other
/// property go back as they came.
pub fn plan(container: &Value) -> Result<PolicyPlan, UnusableContainer> {
    let object = container_object(container)?;
    let policy = match object.get("indexingPolicy") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Err(UnusableContainer("`indexingPolicy` is not an object")),
    };
    if serves_read_order(&policy) {
        return Ok(PolicyPlan::Ready);
    }
    let mode = policy
        .get("indexingMode")
        .and_then(Value::as_str)
        .unwrap_or("consistent");
    if mode.eq_ignore_ascii_case("none") {
        return Ok(PolicyPlan::Blocked(format!(
            "its indexing mode is `none`, which has no composite indexes and serves no ORDER BY; \
             init does not change an indexing mode a user chose: set it to `consistent` (for \
             example with `--idx @{POLICY_FILE}`) and run init again"
        )));
    }
    let mut policy = match policy {
        Value::Object(map) => map,
        _ => unreachable!("checked above"),
    };
    let kept = describe(&policy);
    match policy.get_mut("compositeIndexes") {
        Some(Value::Array(indexes)) => indexes.push(read_order_composite_index()),
        None | Some(Value::Null) => {
            policy.insert(
                "compositeIndexes".into(),
                Value::Array(vec![read_order_composite_index()]),
            );
        }
        Some(_) => {
            return Err(UnusableContainer(
                "`indexingPolicy.compositeIndexes` is not an array",
            ))
        }
    }
    let mut body = replace_body(object);
    body.insert("indexingPolicy".into(), Value::Object(policy));
    Ok(PolicyPlan::Add {
        container: Value::Object(body),
        etag: etag(object),
        kept,
    })
}

/// A container's properties as read (`GET /dbs/{db}/colls/{coll}`): an object with an `id`
/// and a `partitionKey`, the least a replace must send back. Shared with [`crate::retention`].
pub(crate) fn container_object(
    container: &Value,
) -> Result<&Map<String, Value>, UnusableContainer> {
    let object = container
        .as_object()
        .ok_or(UnusableContainer("not a JSON object"))?;
    if object.get("id").and_then(Value::as_str).is_none() {
        return Err(UnusableContainer("no `id`"));
    }
    if !object.get("partitionKey").is_some_and(Value::is_object) {
        return Err(UnusableContainer("no `partitionKey`"));
    }
    Ok(object)
}

/// The properties of a container to send back in a `PUT` that replaces it: every property as
/// it was read, without the system properties (`_rid`, `_ts`, `_etag`, ...), which Cosmos DB
/// sets itself. Shared with [`crate::retention`].
pub(crate) fn replace_body(container: &Map<String, Value>) -> Map<String, Value> {
    container
        .iter()
        .filter(|(name, _)| !name.starts_with('_'))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The `_etag` a container was read with, for the `If-Match` of its replace.
pub(crate) fn etag(container: &Map<String, Value>) -> Option<String> {
    container
        .get("_etag")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// "2 included paths, 1 excluded path and 1 other composite index" (what stays as it was).
fn describe(policy: &Map<String, Value>) -> String {
    let count = |name: &str| {
        policy
            .get(name)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = vec![
        plural(count("includedPaths"), "included path", "included paths"),
        plural(count("excludedPaths"), "excluded path", "excluded paths"),
        plural(
            count("compositeIndexes"),
            "other composite index",
            "other composite indexes",
        ),
    ];
    let spatial = count("spatialIndexes");
    if spatial > 0 {
        parts.push(plural(spatial, "spatial index", "spatial indexes"));
    }
    let last = parts.pop().expect("three parts at least");
    format!("{} and {last}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        // The package directory cargo gives the running test (a binary built in another
        // checkout sharing the target directory has that checkout's compiled in).
        let package: String = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let path = format!("{package}/../../tests/fixtures/cosmos/{name}");
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    fn added(plan: PolicyPlan) -> (Value, Option<String>, String) {
        match plan {
            PolicyPlan::Add {
                container,
                etag,
                kept,
            } => (container, etag, kept),
            other => panic!("expected an addition, got {other:?}"),
        }
    }

    #[test]
    fn the_default_policy_is_the_policy_file_and_serves_the_read_order() {
        let file = fixture("../../../deploy/cosmos-indexing-policy.json");
        assert_eq!(file, default_indexing_policy());
        assert!(serves_read_order(&default_indexing_policy()));
    }

    #[test]
    fn which_composite_indexes_serve_the_read_order() {
        let policy =
            |indexes: Value| json!({ "indexingMode": "consistent", "compositeIndexes": indexes });
        let desc = json!([{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "descending"}]);
        let asc = json!([{"path": "/receivedAt", "order": "ascending"}, {"path": "/id"}]);
        assert!(serves_read_order(&policy(json!([desc.clone()]))));
        assert!(
            serves_read_order(&policy(
                json!([[{"path": "/x", "order": "ascending"}, {"path": "/y"}], asc])
            )),
            "exact reverse"
        );
        assert!(serves_read_order(&policy(
            json!([[{"path": "/receivedAt", "order": "DESCENDING"}, {"path": "/id", "order": "Descending"}]])
        )));
        for wrong in [
            json!([[{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "ascending"}]]),
            json!([[{"path": "/id", "order": "descending"}, {"path": "/receivedAt", "order": "descending"}]]),
            json!([[{"path": "/receivedAt", "order": "descending"}]]),
            json!([[{"path": "/receivedAt", "order": "descending"}, {"path": "/id", "order": "descending"}, {"path": "/tag", "order": "descending"}]]),
            json!([[{"path": "/receivedAt/?", "order": "descending"}, {"path": "/id", "order": "descending"}]]),
            json!([]),
            json!("nonsense"),
        ] {
            assert!(!serves_read_order(&policy(wrong.clone())), "{wrong}");
        }
        assert!(!serves_read_order(&json!({"indexingMode": "consistent"})));
        assert!(!serves_read_order(
            &json!({"indexingMode": "none", "compositeIndexes": [desc]})
        ));
    }

    #[test]
    fn a_container_created_without_a_policy_gets_the_index_and_keeps_the_rest() {
        let container = fixture("local-store-container-without-policy.json");
        let (body, etag, kept) = added(plan(&container).unwrap());
        assert_eq!(etag.as_deref(), container["_etag"].as_str());
        assert_eq!(
            body,
            json!({
                "id": "events",
                "geospatialConfig": {},
                "partitionKey": {"paths": ["/id"], "kind": "Hash", "version": 2},
                "indexingPolicy": {
                    "indexingMode": "consistent",
                    "compositeIndexes": [read_order_composite_index()]
                }
            })
        );
        assert_eq!(
            kept,
            "0 included paths, 0 excluded paths and 0 other composite indexes"
        );
        // Applied, the plan is done: planning again changes nothing.
        assert_eq!(plan(&body).unwrap(), PolicyPlan::Ready);
    }

    #[test]
    fn a_users_own_indexes_and_settings_stay() {
        let container = fixture("local-store-container-with-user-indexes.json");
        let (body, _, kept) = added(plan(&container).unwrap());
        let before = &container["indexingPolicy"];
        let after = &body["indexingPolicy"];
        for field in [
            "indexingMode",
            "automatic",
            "includedPaths",
            "excludedPaths",
        ] {
            assert_eq!(after[field], before[field], "{field}");
        }
        let composite = after["compositeIndexes"].as_array().unwrap();
        assert_eq!(composite.len(), 2);
        assert_eq!(
            composite[0], before["compositeIndexes"][0],
            "the user's index first, unchanged"
        );
        assert_eq!(composite[1], read_order_composite_index());
        assert_eq!(body["defaultTtl"], -1);
        assert_eq!(body["partitionKey"], container["partitionKey"]);
        for system in ["_rid", "_self", "_etag", "_ts"] {
            assert!(body.get(system).is_none(), "{system} is not sent back");
        }
        assert_eq!(
            kept,
            "1 included path, 2 excluded paths and 1 other composite index"
        );
        assert_eq!(plan(&body).unwrap(), PolicyPlan::Ready);
    }

    #[test]
    fn the_gateways_full_policy_keeps_every_field_it_had() {
        // The shape Cosmos DB's gateway returns for a container created by `az` without
        // `--idx`: the default policy, a spatial index, unique keys, a conflict policy.
        let container = json!({
            "id": "events",
            "indexingPolicy": {
                "indexingMode": "consistent",
                "automatic": true,
                "includedPaths": [{"path": "/*"}],
                "excludedPaths": [{"path": "/\"_etag\"/?"}],
                "spatialIndexes": [{"path": "/where/*", "types": ["Point"]}],
                "fullTextIndexes": []
            },
            "partitionKey": {"paths": ["/image"], "kind": "Hash", "version": 2},
            "uniqueKeyPolicy": {"uniqueKeys": [{"paths": ["/digest"]}]},
            "conflictResolutionPolicy": {"mode": "LastWriterWins", "conflictResolutionPath": "/_ts", "conflictResolutionProcedure": ""},
            "geospatialConfig": {"type": "Geography"},
            "defaultTtl": 7776000,
            "_rid": "PaAfAPqHYgE=",
            "_ts": 1459194239,
            "_self": "dbs/PaAfAA==/colls/PaAfAPqHYgE=/",
            "_etag": "\"00005900-0000-0000-0000-56f9a27f0000\"",
            "_docs": "docs/",
            "_sprocs": "sprocs/",
            "_triggers": "triggers/",
            "_udfs": "udfs/",
            "_conflicts": "conflicts/"
        });
        let (body, etag, kept) = added(plan(&container).unwrap());
        assert_eq!(
            etag.as_deref(),
            Some("\"00005900-0000-0000-0000-56f9a27f0000\"")
        );
        let mut expected = container.clone();
        let object = expected.as_object_mut().unwrap();
        object.retain(|name, _| !name.starts_with('_'));
        object["indexingPolicy"]["compositeIndexes"] = json!([read_order_composite_index()]);
        assert_eq!(body, expected);
        assert_eq!(
            kept,
            "1 included path, 1 excluded path, 0 other composite indexes and 1 spatial index"
        );
    }

    #[test]
    fn a_container_that_serves_the_order_needs_nothing() {
        let mut container = fixture("local-store-container-without-policy.json");
        container["indexingPolicy"] = default_indexing_policy();
        assert_eq!(plan(&container).unwrap(), PolicyPlan::Ready);
    }

    #[test]
    fn indexing_mode_none_is_not_changed_behind_the_users_back() {
        let mut container = fixture("local-store-container-without-policy.json");
        container["indexingPolicy"] = json!({"indexingMode": "none", "automatic": false});
        let PolicyPlan::Blocked(reason) = plan(&container).unwrap() else {
            panic!("mode none must not be planned over");
        };
        assert!(
            reason.contains("`none`") && reason.contains(POLICY_FILE),
            "{reason}"
        );
    }

    #[test]
    fn unusable_container_answers_are_errors_not_guesses() {
        for bad in [
            json!([]),
            json!({"partitionKey": {"paths": ["/id"]}}),
            json!({"id": "events"}),
            json!({"id": "events", "partitionKey": {"paths": ["/id"]}, "indexingPolicy": 3}),
            json!({"id": "events", "partitionKey": {"paths": ["/id"]}, "indexingPolicy": {"compositeIndexes": {}}}),
        ] {
            assert!(plan(&bad).is_err(), "{bad}");
        }
        // No policy at all is an empty one.
        let (body, _, _) =
            added(plan(&json!({"id": "events", "partitionKey": {"paths": ["/id"]}})).unwrap());
        assert_eq!(
            body["indexingPolicy"],
            json!({"compositeIndexes": [read_order_composite_index()]})
        );
    }
}
