//! Cosmos DB REST requests as data: method, URL, headers and body. Each carries what its
//! signature is bound to ([`SigningTarget`]); the `Authorization` header is added by
//! [`Credential::sign`](super::Credential::sign) with whichever credential is in force.

use std::time::SystemTime;

use http::{header, HeaderName, Method, Request};

use super::container::Container;
use super::credential::{SigningTarget, X_MS_DATE};
use crate::url::encode_component;

/// The REST API version sent with every request (the newest in the REST reference).
pub const API_VERSION: &str = "2018-12-31";

/// Header: REST API version.
pub const X_MS_VERSION: HeaderName = HeaderName::from_static("x-ms-version");
/// Header: the partition key of a document operation, as a JSON array.
pub const X_MS_PARTITION_KEY: HeaderName = HeaderName::from_static("x-ms-documentdb-partitionkey");
/// Header: the partition key range (physical partition) a query is sent to.
pub const X_MS_PARTITION_KEY_RANGE_ID: HeaderName =
    HeaderName::from_static("x-ms-documentdb-partitionkeyrangeid");
/// Header: allows a query to run across partitions.
pub const X_MS_ENABLE_CROSS_PARTITION: HeaderName =
    HeaderName::from_static("x-ms-documentdb-query-enablecrosspartition");
/// Header: the continuation token of a paged feed or query (request and answer).
pub const X_MS_CONTINUATION: HeaderName = HeaderName::from_static("x-ms-continuation");
/// Header: marks a `POST …/docs` as a query.
pub const X_MS_IS_QUERY: HeaderName = HeaderName::from_static("x-ms-documentdb-isquery");
/// Header: the most documents one query page may return.
pub const X_MS_MAX_ITEM_COUNT: HeaderName = HeaderName::from_static("x-ms-max-item-count");
/// Header: Cosmos DB priority-based execution (`Low` or `High`, the default). When the
/// account is throttled, low-priority requests are throttled first.
pub const X_MS_PRIORITY_LEVEL: HeaderName = HeaderName::from_static("x-ms-cosmos-priority-level");

/// Where a query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryScope<'a> {
    /// In one logical partition: the `x-ms-documentdb-partitionkey` value.
    Partition(&'a str),
    /// In one partition key range (a physical partition), by its id from
    /// [`Container::read_partition_key_ranges_request`]. The gateway serves `ORDER BY`
    /// queries scoped this way; the caller merges the ranges' answers.
    PartitionKeyRange(&'a str),
    /// Across every partition. The gateway refuses `ORDER BY`, `TOP` and aggregates here.
    CrossPartition,
}

/// `request` sent at low priority ([`X_MS_PRIORITY_LEVEL`]): what every read-side request is
/// (the read API's queries, the summary, `pkranges`), so that a burst of reads is throttled
/// before the writes that store events. The header is not signed: marking a built request
/// keeps its signature.
pub fn at_low_priority(mut request: Request<Vec<u8>>) -> Request<Vec<u8>> {
    request
        .headers_mut()
        .insert(X_MS_PRIORITY_LEVEL, http::HeaderValue::from_static("Low"));
    request
}

/// The `x-ms-date` value for `now` (`Thu, 27 Apr 2017 00:51:12 GMT`).
pub fn x_ms_date(now: SystemTime) -> String {
    crate::time::http_date(now)
}

/// A request being built: the signing scope is derived once from verb, type and link.
struct Signed<'a> {
    store: &'a Container,
    method: Method,
    resource_type: &'static str,
    resource_link: String,
    path: String,
}

impl Signed<'_> {
    fn build(self, date: &str, extra: &[(HeaderName, &str)], body: Vec<u8>) -> Request<Vec<u8>> {
        let mut builder = Request::builder()
            .method(self.method)
            .uri(format!("{}/{}", self.store.endpoint.as_str(), self.path))
            .header(X_MS_DATE, date)
            .header(X_MS_VERSION, API_VERSION)
            .header(header::ACCEPT, "application/json")
            .extension(SigningTarget {
                resource_type: self.resource_type,
                resource_link: self.resource_link,
            });
        for (name, value) in extra {
            builder = builder.header(name.clone(), *value);
        }
        builder
            .body(body)
            .expect("names and values built here are valid HTTP")
    }
}

impl Container {
    fn database_link(&self) -> String {
        format!("dbs/{}", self.database)
    }

    fn container_link(&self) -> String {
        format!("dbs/{}/colls/{}", self.database, self.container)
    }

    /// `POST /dbs/{db}/colls/{coll}/docs`, signed like every request on the documents feed:
    /// type `docs`, the container's link (a create and a query are both this).
    fn post_to_documents(&self) -> Signed<'_> {
        Signed {
            store: self,
            method: Method::POST,
            resource_type: "docs",
            resource_link: self.container_link(),
            path: format!("{}/docs", self.container_path()),
        }
    }

    fn container_path(&self) -> String {
        format!(
            "dbs/{}/colls/{}",
            encode_component(&self.database),
            encode_component(&self.container)
        )
    }

    /// `POST /dbs/{db}/colls/{coll}/docs`: create one document (409 when its id exists).
    /// `partition_key` is the `x-ms-documentdb-partitionkey` value for the document.
    pub fn create_document_request(
        &self,
        document: Vec<u8>,
        partition_key: &str,
        date: &str,
    ) -> Request<Vec<u8>> {
        self.post_to_documents().build(
            date,
            &[
                (header::CONTENT_TYPE, "application/json"),
                (X_MS_PARTITION_KEY, partition_key),
            ],
            document,
        )
    }

    /// `POST /dbs/{db}/colls/{coll}/docs` as a query: parameterised SQL (`query` and
    /// `parameters` in `query_body`, never built from input by string), either scoped to one
    /// partition (`partition_key`) or across partitions, paged with `max_items` and an opaque
    /// `continuation` token from the previous page.
    ///
    /// A query across partitions that needs state across partitions (`ORDER BY`, `TOP`,
    /// aggregates) is refused by Cosmos DB's gateway; send those to each partition key range
    /// with [`QueryScope::PartitionKeyRange`] through [`Self::scoped_query_request`].
    pub fn query_documents_request(
        &self,
        query_body: &serde_json::Value,
        partition_key: Option<&str>,
        max_items: u32,
        continuation: Option<&str>,
        date: &str,
    ) -> Request<Vec<u8>> {
        let scope = match partition_key {
            Some(pk) => QueryScope::Partition(pk),
            None => QueryScope::CrossPartition,
        };
        self.scoped_query_request(query_body, scope, max_items, continuation, date)
    }

    /// A query (as [`Self::query_documents_request`]) with an explicit [`QueryScope`].
    pub fn scoped_query_request(
        &self,
        query_body: &serde_json::Value,
        scope: QueryScope<'_>,
        max_items: u32,
        continuation: Option<&str>,
        date: &str,
    ) -> Request<Vec<u8>> {
        let max_items = max_items.to_string();
        let mut extra: Vec<(HeaderName, &str)> = vec![
            // Exactly this content type, no charset: Cosmos (and the local store) treat anything
            // else as a create.
            (header::CONTENT_TYPE, "application/query+json"),
            (X_MS_IS_QUERY, "True"),
            (X_MS_MAX_ITEM_COUNT, &max_items),
        ];
        match scope {
            QueryScope::Partition(pk) => extra.push((X_MS_PARTITION_KEY, pk)),
            QueryScope::PartitionKeyRange(range) => {
                extra.push((X_MS_ENABLE_CROSS_PARTITION, "True"));
                extra.push((X_MS_PARTITION_KEY_RANGE_ID, range));
            }
            QueryScope::CrossPartition => extra.push((X_MS_ENABLE_CROSS_PARTITION, "True")),
        }
        extra.extend(continuation.map(|token| (X_MS_CONTINUATION, token)));
        self.post_to_documents()
            .build(date, &extra, query_body.to_string().into_bytes())
    }

    /// `GET /dbs/{db}/colls/{coll}/pkranges`: the container's partition key ranges (its
    /// physical partitions), paged with `continuation`. Signed like a feed read: type
    /// `pkranges`, the container's link.
    pub fn read_partition_key_ranges_request(
        &self,
        continuation: Option<&str>,
        date: &str,
    ) -> Request<Vec<u8>> {
        let mut extra: Vec<(HeaderName, &str)> = Vec::new();
        extra.extend(continuation.map(|token| (X_MS_CONTINUATION, token)));
        Signed {
            store: self,
            method: Method::GET,
            resource_type: "pkranges",
            resource_link: self.container_link(),
            path: format!("{}/pkranges", self.container_path()),
        }
        .build(date, &extra, Vec::new())
    }

    /// `GET /dbs/{db}/colls/{coll}/docs/{id}`: read one document.
    pub fn read_document_request(
        &self,
        id: &str,
        partition_key: &str,
        date: &str,
    ) -> Request<Vec<u8>> {
        Signed {
            store: self,
            method: Method::GET,
            resource_type: "docs",
            resource_link: format!("{}/docs/{id}", self.container_link()),
            path: format!("{}/docs/{}", self.container_path(), encode_component(id)),
        }
        .build(date, &[(X_MS_PARTITION_KEY, partition_key)], Vec::new())
    }

    /// `GET /dbs/{db}/colls/{coll}`: read the container's metadata (what `ping` checks).
    pub fn read_container_request(&self, date: &str) -> Request<Vec<u8>> {
        Signed {
            store: self,
            method: Method::GET,
            resource_type: "colls",
            resource_link: self.container_link(),
            path: self.container_path(),
        }
        .build(date, &[], Vec::new())
    }

    /// `POST /dbs`: create the database (409 when it exists).
    pub fn create_database_request(&self, date: &str) -> Request<Vec<u8>> {
        let body = serde_json::json!({ "id": self.database }).to_string();
        Signed {
            store: self,
            method: Method::POST,
            resource_type: "dbs",
            resource_link: String::new(),
            path: "dbs".into(),
        }
        .build(
            date,
            &[(header::CONTENT_TYPE, "application/json")],
            body.into_bytes(),
        )
    }

    /// `GET /dbs/{db}`: read the database's properties (404 when it does not exist).
    pub fn read_database_request(&self, date: &str) -> Request<Vec<u8>> {
        Signed {
            store: self,
            method: Method::GET,
            resource_type: "dbs",
            resource_link: self.database_link(),
            path: format!("dbs/{}", encode_component(&self.database)),
        }
        .build(date, &[], Vec::new())
    }

    /// `PUT /dbs/{db}/colls/{coll}`: replace the container's properties with `container` (what
    /// Cosmos DB lets change is the indexing policy; id and partition key must stay). With
    /// `etag` (the `_etag` it was read with) the replace is conditional (`If-Match`): Cosmos
    /// answers 412 when the container changed meanwhile, instead of overwriting that change.
    pub fn replace_container_request(
        &self,
        container: &serde_json::Value,
        etag: Option<&str>,
        date: &str,
    ) -> Request<Vec<u8>> {
        let mut extra: Vec<(HeaderName, &str)> = vec![(header::CONTENT_TYPE, "application/json")];
        if let Some(etag) = etag {
            extra.push((header::IF_MATCH, etag));
        }
        Signed {
            store: self,
            method: Method::PUT,
            resource_type: "colls",
            resource_link: self.container_link(),
            path: self.container_path(),
        }
        .build(date, &extra, container.to_string().into_bytes())
    }

    /// `POST /dbs/{db}/colls`: create the container with this configuration's partition key
    /// path (409 when it exists), and the indexing policy of
    /// [`crate::indexing::default_indexing_policy`], with the composite index the read API's
    /// ordering needs (`ORDER BY c.receivedAt DESC, c.id DESC` is refused without one).
    pub fn create_container_request(&self, date: &str) -> Request<Vec<u8>> {
        let body = serde_json::json!({
            "id": self.container,
            "partitionKey": {
                "paths": [self.partition_key_path.as_str()],
                "kind": "Hash",
                "version": 2
            },
            "indexingPolicy": crate::indexing::default_indexing_policy()
        })
        .to_string();
        Signed {
            store: self,
            method: Method::POST,
            resource_type: "colls",
            resource_link: self.database_link(),
            path: format!("dbs/{}/colls", encode_component(&self.database)),
        }
        .build(
            date,
            &[(header::CONTENT_TYPE, "application/json")],
            body.into_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::test_config;
    use crate::cosmos::{signature, SigningScope};
    use std::time::{Duration, UNIX_EPOCH};

    const DATE: &str = "Thu, 27 Apr 2017 00:51:12 GMT";

    fn test_key() -> crate::cosmos::MasterKey {
        crate::cosmos::MasterKey::from_base64(crate::config::tests::TEST_COSMOS_KEY).unwrap()
    }

    /// `req`'s `Authorization` is the master-key token with this signature.
    fn assert_signature(req: &Request<Vec<u8>>, sig: &str) {
        assert_eq!(
            req.headers()["authorization"],
            encode_component(&format!("type=master&ver=1.0&sig={sig}")).as_str()
        );
    }

    /// `req`'s `Authorization` is the test key's signature over this verb, resource type and
    /// link.
    fn assert_signed_for(req: &Request<Vec<u8>>, verb: &str, resource_type: &str, link: &str) {
        let sig = signature(
            &test_key(),
            &SigningScope {
                verb,
                resource_type,
                resource_link: link,
                date: DATE,
            },
        );
        assert_signature(req, &sig);
    }

    /// The request as sent: signed with the test account key.
    fn signed(mut request: Request<Vec<u8>>) -> Request<Vec<u8>> {
        crate::cosmos::Credential::Key(test_key()).sign(&mut request);
        request
    }

    #[test]
    fn x_ms_date_is_rfc1123() {
        let t = UNIX_EPOCH + Duration::from_secs(1_493_254_272);
        assert_eq!(x_ms_date(t), DATE);
    }

    /// Vectors derived from the published formula with the emulator key (protocols.md §C1.5).
    #[test]
    fn create_document_signs_the_container_link() {
        let store = test_config(&[]).store;
        let req = signed(store.create_document_request(b"{}".to_vec(), r#"["x"]"#, DATE));
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "http://127.0.0.1:8081/dbs/acr/colls/events/docs");
        let h = req.headers();
        assert_eq!(h["x-ms-date"], DATE);
        assert_eq!(h["x-ms-version"], "2018-12-31");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-ms-documentdb-partitionkey"], r#"["x"]"#);
        assert_eq!(
            h["authorization"],
            encode_component(
                "type=master&ver=1.0&sig=MlPO83gCEkMzq3THhsZvfZcS2Kr9+G3Jwa1rBsaW4mU="
            )
            .as_str()
        );
        assert!(
            h.get("date").is_none(),
            "no Date header: it would enter the signature"
        );
    }

    #[test]
    fn database_and_container_creation() {
        let store = test_config(&[]).store;
        let db = signed(store.create_database_request(DATE));
        assert_eq!(db.uri(), "http://127.0.0.1:8081/dbs");
        assert_signature(&db, "CHjhNtQltyEuPdWLf2/f+hSkSlYg+7UuFlwMyv8L7mI=");
        let coll = signed(store.create_container_request(DATE));
        assert_eq!(coll.uri(), "http://127.0.0.1:8081/dbs/acr/colls");
        assert_signature(&coll, "HDurgEDeuTSmxwSAhu2CZpIMZfUFXFAUPj+dRKw4M40=");
        let body: serde_json::Value = serde_json::from_slice(coll.body()).unwrap();
        assert_eq!(body["partitionKey"]["paths"][0], "/id");
        assert_eq!(body["partitionKey"]["kind"], "Hash");
        assert_eq!(
            body["indexingPolicy"],
            crate::indexing::default_indexing_policy()
        );
        assert!(crate::indexing::serves_read_order(&body["indexingPolicy"]));
    }

    #[test]
    fn read_document_signs_the_raw_id_and_escapes_the_path() {
        let store = test_config(&[]).store;
        let id = "cb8c3971-9adc-488b-bdd8-43cbb4974ff5";
        let req = signed(store.read_document_request(id, r#"["k"]"#, DATE));
        assert_signature(&req, "VIHZFg2dW/qEoVTH999K8xwTrV8uHEtg3059jSJt5QA=");

        let odd = "a b+é";
        let req = signed(store.read_document_request(odd, r#"["k"]"#, DATE));
        assert_eq!(
            req.uri(),
            "http://127.0.0.1:8081/dbs/acr/colls/events/docs/a%20b%2B%C3%A9"
        );
        assert_signed_for(&req, "GET", "docs", "dbs/acr/colls/events/docs/a b+é");
    }

    #[test]
    fn queries_are_signed_like_creates_and_never_carry_a_charset() {
        let store = test_config(&[]).store;
        let q = serde_json::json!({"query": "SELECT * FROM c WHERE c.image = @i", "parameters": [{"name": "@i", "value": "x"}]});
        let req = signed(store.query_documents_request(&q, None, 7, Some("tok"), DATE));
        let h = req.headers();
        assert_eq!(h["content-type"], "application/query+json");
        assert_eq!(h["x-ms-documentdb-isquery"], "True");
        assert_eq!(h["x-ms-documentdb-query-enablecrosspartition"], "True");
        assert_eq!(h["x-ms-max-item-count"], "7");
        assert_eq!(h["x-ms-continuation"], "tok");
        assert_eq!(
            h["authorization"],
            encode_component(
                "type=master&ver=1.0&sig=MlPO83gCEkMzq3THhsZvfZcS2Kr9+G3Jwa1rBsaW4mU="
            )
            .as_str()
        );
        let req = signed(store.query_documents_request(&q, Some(r#"["x"]"#), 1, None, DATE));
        assert_eq!(req.headers()["x-ms-documentdb-partitionkey"], r#"["x"]"#);
        assert!(req
            .headers()
            .get("x-ms-documentdb-query-enablecrosspartition")
            .is_none());
    }

    #[test]
    fn queries_scoped_to_a_partition_key_range_carry_its_id() {
        let store = test_config(&[]).store;
        let q = serde_json::json!({"query": "SELECT * FROM c ORDER BY c.receivedAt DESC", "parameters": []});
        let req = signed(store.scoped_query_request(
            &q,
            QueryScope::PartitionKeyRange("3"),
            20,
            Some("tok"),
            DATE,
        ));
        let h = req.headers();
        assert_eq!(h[X_MS_PARTITION_KEY_RANGE_ID], "3");
        assert_eq!(h[X_MS_ENABLE_CROSS_PARTITION], "True");
        assert!(h.get(X_MS_PARTITION_KEY).is_none());
        assert_eq!(h[X_MS_CONTINUATION], "tok");
        assert_eq!(req.uri(), "http://127.0.0.1:8081/dbs/acr/colls/events/docs");
        // Signed exactly like any other query of the container.
        let across = signed(store.query_documents_request(&q, None, 20, Some("tok"), DATE));
        assert_eq!(h["authorization"], across.headers()["authorization"]);
        assert!(across.headers().get(X_MS_PARTITION_KEY_RANGE_ID).is_none());
    }

    #[test]
    fn low_priority_adds_only_its_header_and_keeps_the_signature() {
        let store = test_config(&[]).store;
        let plain = signed(store.read_partition_key_ranges_request(None, DATE));
        assert!(plain.headers().get(X_MS_PRIORITY_LEVEL).is_none());
        let low = signed(at_low_priority(
            store.read_partition_key_ranges_request(None, DATE),
        ));
        assert_eq!(low.headers()[X_MS_PRIORITY_LEVEL], "Low");
        assert_eq!(low.headers().len(), plain.headers().len() + 1);
        assert_eq!(
            low.headers()["authorization"],
            plain.headers()["authorization"]
        );
    }

    #[test]
    fn partition_key_ranges_are_read_with_type_pkranges_on_the_container_link() {
        let store = test_config(&[]).store;
        let req = signed(store.read_partition_key_ranges_request(None, DATE));
        assert_eq!(req.method(), Method::GET);
        assert_eq!(
            req.uri(),
            "http://127.0.0.1:8081/dbs/acr/colls/events/pkranges"
        );
        assert!(req.headers().get(X_MS_CONTINUATION).is_none());
        assert_signed_for(&req, "GET", "pkranges", "dbs/acr/colls/events");
        let next = signed(store.read_partition_key_ranges_request(Some("page-2"), DATE));
        assert_eq!(next.headers()[X_MS_CONTINUATION], "page-2");
    }

    #[test]
    fn replacing_the_container_signs_put_colls_and_is_conditional() {
        let store = test_config(&[]).store;
        let body = serde_json::json!({"id": "events", "partitionKey": {"paths": ["/id"]}});
        let req = signed(store.replace_container_request(&body, Some("\"00-etag\""), DATE));
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri(), "http://127.0.0.1:8081/dbs/acr/colls/events");
        assert_eq!(req.headers()["if-match"], "\"00-etag\"");
        assert_eq!(req.headers()["content-type"], "application/json");
        let sent: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(sent, body);
        assert_signed_for(&req, "PUT", "colls", "dbs/acr/colls/events");
        let unconditional = signed(store.replace_container_request(&body, None, DATE));
        assert!(unconditional.headers().get("if-match").is_none());
    }

    #[test]
    fn reads_of_the_database_and_the_container_sign_their_own_links() {
        let store = test_config(&[]).store;
        for (req, uri, resource_type, link) in [
            (
                store.read_database_request(DATE),
                "dbs/acr",
                "dbs",
                "dbs/acr",
            ),
            (
                store.read_container_request(DATE),
                "dbs/acr/colls/events",
                "colls",
                "dbs/acr/colls/events",
            ),
        ] {
            let req = signed(req);
            assert_eq!(req.method(), Method::GET);
            assert_eq!(req.uri(), format!("http://127.0.0.1:8081/{uri}").as_str());
            assert_signed_for(&req, "GET", resource_type, link);
        }
    }
}
