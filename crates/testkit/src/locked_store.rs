//! A Cosmos DB account with local (key) authentication disabled, made of a front on a free
//! 127.0.0.1 port and the local Cosmos-compatible store behind it ([`crate::CosmosStore`],
//! which ignores signatures). The front decides what the real service decides for such an
//! account, with its statuses, `x-ms-substatus` and messages, and forwards only what the
//! service would serve:
//!
//! | request | answer |
//! |---|---|
//! | no `Authorization` | 401, substatus 5000 |
//! | `type=master` or `type=resource` | 401, substatus 5202, "Local Authorization is disabled. Use an AAD token to authorize all requests." |
//! | `type=aad`, token malformed / bad signature / not yet valid / expired / wrong issuer / wrong audience | 401, substatus 5003 / 5004 / 5005 / 5006 / 5007 / 5008 |
//! | `type=aad`, token revoked ([`crate::FakeEntra::revoke`]) | 401, substatus 5200 (its signing key is no longer trusted) |
//! | valid token, create/replace/delete of a database, container, stored procedure, trigger, UDF, user, permission or offer | 403, substatus 5300, "The given request [POST /dbs] cannot be authorized by AAD token in data plane." |
//! | valid token, principal without `readMetadata` (account, database, container reads) | 403, substatus 5301, naming the action |
//! | valid token, principal without the data action (`items/create`, `executeQuery`, ...) | 403, substatus 5302, naming the action |
//! | otherwise | forwarded unchanged to the store, its answer returned |
//!
//! Roles: by default every principal with a valid token holds "Cosmos DB Built-in Data
//! Contributor"; [`LockedStore::set_role`] and [`LockedStore::set_default_role`] change that
//! ([`DataRole::Reader`] is "Cosmos DB Built-in Data Reader"). Accepted audiences: those Cosmos
//! DB lists for an account, `https://ACCOUNT.documents.azure.com`,
//! `https://ACCOUNT.sql.cosmos.azure.com`, `https://ACCOUNT.sqlx.cosmos.azure.com` and
//! `https://cosmos.azure.com`, compared exactly (a trailing `/` is refused).
//!
//! Clients may keep connections alive and pipeline requests; each request to the store goes
//! on its own connection. `x-ms-date` is not checked.
//!
//! ```no_run
//! use acr_webhook_testkit::{http, CosmosStore, FakeEntra, LockedStore, COSMOS_AUDIENCE};
//!
//! let store = CosmosStore::start();
//! store.create_database("registry"); // set up as ARM/Bicep would: the front refuses it
//! store.create_container("registry", "events", "/repository");
//! let entra = FakeEntra::start();
//! let locked = LockedStore::start(store.addr(), entra.validator());
//! let url = format!("{}?api-version=2018-02-01&resource={COSMOS_AUDIENCE}", entra.imds_endpoint());
//! let token = http::request("GET", &url, &[("Metadata", "true")], None).unwrap().json().unwrap()
//!     ["access_token"].as_str().unwrap().to_string();
//! let auth = format!("type%3Daad%26ver%3D1.0%26sig%3D{token}");
//! let date = httpdate::fmt_http_date(std::time::SystemTime::now());
//! let r = http::request(
//!     "GET",
//!     &format!("{}/dbs/registry/colls/events", locked.endpoint()),
//!     &[("authorization", &auth), ("x-ms-date", &date), ("x-ms-version", "2018-12-31")],
//!     None,
//! )
//! .unwrap();
//! assert_eq!(r.status, 200);
//! assert_eq!(locked.stats().forwarded, 1);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde_json::json;

use crate::entra::{uuid, Claims, Rejection, TokenValidator, UtcTime};
use crate::fault_proxy::{forward, is_framing};
use crate::http_server::{percent_decode, Action, HttpServer, Reply, Request};

/// A Cosmos DB built-in data-plane role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataRole {
    /// "Cosmos DB Built-in Data Reader" (`00000000-0000-0000-0000-000000000001`):
    /// `readMetadata`, `items/read`, `executeQuery`, `readChangeFeed`.
    Reader,
    /// "Cosmos DB Built-in Data Contributor" (`00000000-0000-0000-0000-000000000002`):
    /// `readMetadata`, `sqlDatabases/containers/*`, `sqlDatabases/containers/items/*`.
    Contributor,
}

impl DataRole {
    /// The role definition id.
    pub fn definition_id(self) -> &'static str {
        match self {
            DataRole::Reader => "00000000-0000-0000-0000-000000000001",
            DataRole::Contributor => "00000000-0000-0000-0000-000000000002",
        }
    }

    /// True if the role grants `action` (a full data action name).
    pub fn allows(self, action: &str) -> bool {
        match self {
            DataRole::Contributor => true,
            DataRole::Reader => {
                [READ_METADATA, ITEMS_READ, EXECUTE_QUERY, READ_CHANGE_FEED].contains(&action)
            }
        }
    }
}

/// `Microsoft.DocumentDB/databaseAccounts/readMetadata`.
pub const READ_METADATA: &str = "Microsoft.DocumentDB/databaseAccounts/readMetadata";

/// A data action on a container: `Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/`
/// and the action's own part.
macro_rules! container_action {
    ($action:literal) => {
        concat!(
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/",
            $action
        )
    };
}

/// `Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/create`.
pub const ITEMS_CREATE: &str = container_action!("items/create");
const ITEMS_READ: &str = container_action!("items/read");
const EXECUTE_QUERY: &str = container_action!("executeQuery");
const READ_CHANGE_FEED: &str = container_action!("readChangeFeed");
const ITEMS_UPSERT: &str = container_action!("items/upsert");
const ITEMS_REPLACE: &str = container_action!("items/replace");
const ITEMS_DELETE: &str = container_action!("items/delete");
const EXECUTE_STORED_PROCEDURE: &str = container_action!("executeStoredProcedure");
const MANAGE_CONFLICTS: &str = container_action!("manageConflicts");

/// What the front did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the store, which answered `status`.
    Forwarded {
        /// The store's status.
        status: u16,
    },
    /// 401/5000: no `Authorization` header.
    MissingAuthorization,
    /// 401/5001: an `Authorization` header that is not `type=…&ver=1.0&sig=…`.
    BadAuthorization,
    /// 401/5202: a master key or resource token signature.
    LocalAuthDisabled,
    /// 401: an AAD token refused for this reason.
    TokenRejected(Rejection),
    /// 403/5300: a control-plane operation with a valid token.
    ControlPlane,
    /// 403/5301 or 5302: the principal's role lacks `action`.
    MissingRole {
        /// The full data action name.
        action: String,
    },
    /// 503: the store could not be asked or did not answer.
    UpstreamError,
}

/// One request the front answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRequest {
    /// Method.
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// The `oid` of a valid token's principal.
    pub principal: Option<String>,
    /// True if an `Authorization` header came URL-encoded as a whole (no raw `=` or `&` in
    /// it), as Cosmos DB clients send it; the front also reads one sent raw.
    pub authorization_encoded: bool,
    /// The status answered to the client.
    pub status: u16,
    /// The `x-ms-substatus` the front answered (not the store's).
    pub substatus: Option<u32>,
    /// What happened.
    pub outcome: Outcome,
}

/// Counters of a [`LockedStore`], one per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockedStats {
    /// Requests read.
    pub requests: u64,
    /// Forwarded to the store (whatever it answered).
    pub forwarded: u64,
    /// 401/5000 and 401/5001.
    pub bad_authorization: u64,
    /// 401/5202 (master key or resource token).
    pub local_auth_refused: u64,
    /// 401 for an AAD token (malformed, forged, expired, revoked, wrong audience...).
    pub token_refused: u64,
    /// 403/5300.
    pub control_plane_refused: u64,
    /// 403/5301 and 403/5302.
    pub role_refused: u64,
    /// 503 (the store failed).
    pub upstream_errors: u64,
}

struct Shared {
    upstream: SocketAddr,
    validator: TokenValidator,
    account: String,
    m: Mutex<Mutable>,
}

struct Mutable {
    audiences: Vec<String>,
    roles: HashMap<String, Option<DataRole>>,
    default_role: Option<DataRole>,
    requests: Vec<StoreRequest>,
    stats: LockedStats,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mutable> {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The front of a Cosmos DB account with local authentication disabled, before a store.
/// Stopped on drop (the store is not).
pub struct LockedStore {
    server: HttpServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for LockedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedStore")
            .field("addr", &self.server.addr())
            .field("upstream", &self.shared.upstream)
            .field("account", &self.shared.account)
            .finish_non_exhaustive()
    }
}

impl LockedStore {
    /// Starts a front for account `testkit` before `upstream` (e.g.
    /// [`crate::CosmosStore::addr`]), checking tokens with `validator`.
    pub fn start(upstream: SocketAddr, validator: TokenValidator) -> LockedStore {
        LockedStore::start_for_account(upstream, validator, "testkit")
    }

    /// Starts a front for account `account` (named in messages and in the accepted
    /// audiences).
    pub fn start_for_account(
        upstream: SocketAddr,
        validator: TokenValidator,
        account: &str,
    ) -> LockedStore {
        let audiences = vec![
            format!("https://{account}.documents.azure.com"),
            format!("https://{account}.sql.cosmos.azure.com"),
            format!("https://{account}.sqlx.cosmos.azure.com"),
            "https://cosmos.azure.com".to_string(),
        ];
        let shared = Arc::new(Shared {
            upstream,
            validator,
            account: account.to_string(),
            m: Mutex::new(Mutable {
                audiences,
                roles: HashMap::new(),
                default_role: Some(DataRole::Contributor),
                requests: Vec::new(),
                stats: LockedStats::default(),
            }),
        });
        let handler = {
            let shared = shared.clone();
            Arc::new(move |req: &Request| Action::Reply(serve(&shared, req)))
        };
        LockedStore {
            server: HttpServer::bind("locked-store", 0, handler),
            shared,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), to use as the Cosmos endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.shared.account
    }

    /// The audiences accepted now.
    pub fn audiences(&self) -> Vec<String> {
        self.shared.lock().audiences.clone()
    }

    /// Accepts these audiences instead (exact comparison; `*` stands for one DNS label).
    pub fn set_audiences(&self, audiences: &[&str]) {
        self.shared.lock().audiences = audiences.iter().map(|a| a.to_string()).collect();
    }

    /// Gives the principal with object id `object_id` this role (`None`: no role at all),
    /// whatever the default.
    pub fn set_role(&self, object_id: &str, role: Option<DataRole>) {
        self.shared.lock().roles.insert(object_id.to_string(), role);
    }

    /// The role of principals not named in [`LockedStore::set_role`] (Contributor at start;
    /// `None`: they hold none).
    pub fn set_default_role(&self, role: Option<DataRole>) {
        self.shared.lock().default_role = role;
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<StoreRequest> {
        self.shared.lock().requests.clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> LockedStats {
        self.shared.lock().stats
    }

    /// TCP connections accepted from clients so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }
}

/// What a request asks of the account.
#[derive(Debug, PartialEq, Eq)]
enum Operation {
    /// A management operation the data plane refuses with an AAD token.
    ControlPlane,
    /// A data action on `resource`.
    Data {
        action: &'static str,
        resource: String,
    },
}

fn classify(req: &Request) -> Operation {
    let method = req.method.to_ascii_uppercase();
    let segments: Vec<String> = req
        .path()
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false).unwrap_or_else(|| s.to_string()))
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let is_query = req
        .header("x-ms-documentdb-isquery")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || req
            .header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().contains("query+json"));
    let reading = matches!(method.as_str(), "GET" | "HEAD") || (method == "POST" && is_query);
    let metadata = |reading: bool| {
        if reading {
            Operation::Data {
                action: READ_METADATA,
                resource: "/".into(),
            }
        } else {
            Operation::ControlPlane
        }
    };
    let data = |action: &'static str, db: &str, coll: &str| Operation::Data {
        action,
        resource: format!("dbs/{db}/colls/{coll}"),
    };
    match seg.as_slice() {
        ["dbs", db, "colls", coll, "docs"] => match method.as_str() {
            "POST" if is_query => data(EXECUTE_QUERY, db, coll),
            "POST"
                if req
                    .header("x-ms-documentdb-is-upsert")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")) =>
            {
                data(ITEMS_UPSERT, db, coll)
            }
            "POST" => data(ITEMS_CREATE, db, coll),
            _ => data(READ_CHANGE_FEED, db, coll),
        },
        ["dbs", db, "colls", coll, "docs", _] => match method.as_str() {
            "GET" | "HEAD" => data(ITEMS_READ, db, coll),
            "DELETE" => data(ITEMS_DELETE, db, coll),
            // PUT, and PATCH (partial update) taken as a replace.
            _ => data(ITEMS_REPLACE, db, coll),
        },
        ["dbs", db, "colls", coll, "sprocs", _] if method == "POST" => {
            data(EXECUTE_STORED_PROCEDURE, db, coll)
        }
        ["dbs", db, "colls", coll, "conflicts", ..] => {
            if reading {
                metadata(true)
            } else {
                data(MANAGE_CONFLICTS, db, coll)
            }
        }
        // The account, databases, containers and what hangs off them (partition key ranges,
        // scripts, users, permissions, offers): reads are metadata reads, writes are control
        // plane.
        _ => metadata(reading),
    }
}

/// The `Authorization` header's `type`, `ver` and `sig`, URL-decoded (a header sent
/// unencoded is read as is).
fn parse_authorization(value: &str) -> Option<(String, String, String)> {
    let decoded = percent_decode(value, false)?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for part in decoded.split('&') {
        let (k, v) = part.split_once('=')?;
        fields.insert(k.trim(), v.trim());
    }
    Some((
        fields.get("type")?.to_string(),
        fields.get("ver")?.to_string(),
        fields.get("sig")?.to_string(),
    ))
}

/// A refusal in Cosmos DB's shape: `{"code","message"}` where the message ends with
/// `\r\nActivityId: …, Microsoft.Azure.Documents.Common/2.14.0`, and headers
/// `x-ms-substatus` and `x-ms-activity-id`.
fn refusal(status: u16, substatus: u32, message: &str) -> Reply {
    let code = match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "ServiceUnavailable",
    };
    let activity = uuid();
    Reply::json(
        status,
        &json!({
            "code": code,
            "message": format!(
                "{message}\r\nActivityId: {activity}, Microsoft.Azure.Documents.Common/2.14.0"
            ),
        }),
    )
    .with_header("x-ms-substatus", &substatus.to_string())
    .with_header("x-ms-activity-id", &activity)
}

/// `7/17/2022 5:09:09 PM`, as Cosmos DB writes times in its AAD messages.
fn cosmos_time(secs: u64) -> String {
    let t = UtcTime::of_unix(secs);
    let (hour, half) = match t.hour {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{}/{}/{} {hour}:{:02}:{:02} {half}",
        t.month, t.day, t.year, t.minute, t.second
    )
}

/// The status, substatus and message Cosmos DB answers for a refused AAD token.
fn token_refusal(account: &str, rejection: &Rejection, audiences: &[String]) -> (u32, String) {
    let blocked = format!("Request blocked by Auth {account} :");
    match rejection {
        // Wording as in Azure/azure-sdk-for-js#22620: "Request blocked by Auth … : Provided
        // AAD token has been expired since [7/17/2022 5:09:09 PM (UTC)]. Current server time is
        // [7/18/2022 12:04:25 AM (UTC)]. Please refresh the AAD token."
        Rejection::Expired { exp, now } => (
            5006,
            format!(
                "{blocked} Provided AAD token has been expired since [{} (UTC)]. Current server \
                 time is [{} (UTC)]. Please refresh the AAD token.",
                cosmos_time(*exp),
                cosmos_time(*now)
            ),
        ),
        // Wording as in Azure/azure-sdk-for-java#42800 (substatus 5008).
        Rejection::WrongAudience { audience } => (
            5008,
            format!(
                "{blocked} Provided AAD token is intended for [{audience}]. This database \
                 account accepts tokens intended for [{}].",
                audiences.join(", ")
            ),
        ),
        // Wording as in Azure/azure-cosmos-dotnet-v3#3339 (substatus 5007).
        Rejection::WrongIssuer { issuer } => (
            5007,
            format!(
                "{blocked} Provided AAD token was issued by the authority [{issuer}] which is \
                 not trusted by this database account."
            ),
        ),
        // The messages below are the fake's own: no public report of them was found.
        Rejection::NotYetValid { nbf, now } => (
            5005,
            format!(
                "{blocked} Provided AAD token is not valid before [{} (UTC)]. Current server \
                 time is [{} (UTC)].",
                cosmos_time(*nbf),
                cosmos_time(*now)
            ),
        ),
        Rejection::Malformed => (5003, format!("{blocked} Provided AAD token is malformed.")),
        Rejection::BadSignature => (
            5004,
            format!("{blocked} Provided AAD token has an invalid signature."),
        ),
        Rejection::Revoked => (
            5200,
            format!("{blocked} Provided AAD token was signed with a key that is not trusted."),
        ),
    }
}

fn serve(shared: &Shared, req: &Request) -> Reply {
    let (reply, principal, substatus, outcome) = decide(shared, req);
    let mut m = shared.lock();
    let s = &mut m.stats;
    s.requests += 1;
    match &outcome {
        Outcome::Forwarded { .. } => s.forwarded += 1,
        Outcome::MissingAuthorization | Outcome::BadAuthorization => s.bad_authorization += 1,
        Outcome::LocalAuthDisabled => s.local_auth_refused += 1,
        Outcome::TokenRejected(_) => s.token_refused += 1,
        Outcome::ControlPlane => s.control_plane_refused += 1,
        Outcome::MissingRole { .. } => s.role_refused += 1,
        Outcome::UpstreamError => s.upstream_errors += 1,
    }
    m.requests.push(StoreRequest {
        method: req.method.clone(),
        target: req.target.clone(),
        principal,
        authorization_encoded: req
            .header("authorization")
            .is_some_and(|a| !a.contains(['=', '&'])),
        status: reply.status,
        substatus,
        outcome,
    });
    reply
}

/// The reply, the principal (a token's `oid`, once known), the substatus and the outcome.
type Decision = (Reply, Option<String>, Option<u32>, Outcome);

/// A refusal ([`refusal`]) as a [`Decision`].
fn refuse(
    status: u16,
    substatus: u32,
    message: &str,
    outcome: Outcome,
    principal: Option<String>,
) -> Decision {
    (
        refusal(status, substatus, message),
        principal,
        Some(substatus),
        outcome,
    )
}

fn decide(shared: &Shared, req: &Request) -> Decision {
    // What Cosmos DB answers for an `Authorization` header it cannot read.
    let unreadable = || {
        refuse(
            401,
            5001,
            "The input authorization token can't serve the request. The wrong key is being used \
             or the expected payload is not built as per the protocol.",
            Outcome::BadAuthorization,
            None,
        )
    };
    let Some(header) = req.header("authorization") else {
        // Wording as in Azure/azure-sdk-for-js#9980.
        return refuse(
            401,
            5000,
            "Required Header authorization is missing. Ensure a valid Authorization token is \
             passed.",
            Outcome::MissingAuthorization,
            None,
        );
    };
    let Some((kind, version, signature)) = parse_authorization(header) else {
        return unreadable();
    };
    if kind.eq_ignore_ascii_case("master") || kind.eq_ignore_ascii_case("resource") {
        // Status and message as in Azure/azure-cosmosdb-ads-extension#120 and
        // microsoft/TWL300-AI-Apps-and-agents#19 (401 Unauthorized, "Local Authorization is
        // disabled. Use an AAD token to authorize all requests.\r\nActivityId: …,
        // Microsoft.Azure.Documents.Common/2.14.0"); substatus 5202 is LocalAuthDisabled in
        // the SDKs' SubStatusCodes (Azure/azure-sdk-for-rust, azure_data_cosmos).
        return refuse(
            401,
            5202,
            "Local Authorization is disabled. Use an AAD token to authorize all requests.",
            Outcome::LocalAuthDisabled,
            None,
        );
    }
    if !kind.eq_ignore_ascii_case("aad") || version != "1.0" {
        return unreadable();
    }
    let audiences = shared.lock().audiences.clone();
    let now = SystemTime::now();
    let claims: Claims = match shared.validator.validate_for(&signature, now, &audiences) {
        Ok(c) => c,
        Err(rejection) => {
            let (substatus, message) = token_refusal(&shared.account, &rejection, &audiences);
            return refuse(
                401,
                substatus,
                &message,
                Outcome::TokenRejected(rejection),
                None,
            );
        }
    };
    let principal = Some(claims.oid.clone());
    match classify(req) {
        Operation::ControlPlane => {
            // Status, substatus and message as in dotnet/efcore#32197 and
            // Azure/azure-sdk-for-java#20781: 403, substatus 5300, "Request blocked by Auth
            // <account> : The given request [POST /dbs/catalogdb/colls] cannot be authorized by
            // AAD token in data plane. Learn more: https://aka.ms/cosmos-native-rbac."
            let message = format!(
                "Request blocked by Auth {} : The given request [{} {}] cannot be authorized by \
                 AAD token in data plane. Learn more: https://aka.ms/cosmos-native-rbac.",
                shared.account,
                req.method.to_ascii_uppercase(),
                req.path()
            );
            refuse(403, 5300, &message, Outcome::ControlPlane, principal)
        }
        Operation::Data { action, resource } => {
            let role = {
                let m = shared.lock();
                match m.roles.get(&claims.oid) {
                    Some(role) => *role,
                    None => m.default_role,
                }
            };
            if !role.is_some_and(|r| r.allows(action)) {
                // Message as in Azure/azure-cosmos-dotnet-v3#2891 (403, substatus 5301 for
                // readMetadata); a data action refused is 5302,
                // RbacUnauthorizedNameBasedDataRequest, in the SDKs' SubStatusCodes.
                let substatus = if action == READ_METADATA { 5301 } else { 5302 };
                let message = format!(
                    "Request blocked by Auth {} : Request is blocked because principal [{}] does \
                     not have required RBAC permissions to perform action [{action}] on resource \
                     [{resource}]. Learn more: https://aka.ms/cosmos-native-rbac.",
                    shared.account, claims.oid
                );
                let outcome = Outcome::MissingRole {
                    action: action.to_string(),
                };
                return refuse(403, substatus, &message, outcome, principal);
            }
            let start = format!("{} {} HTTP/1.1", req.method, req.target);
            match forward(
                shared.upstream,
                &req.method,
                &start,
                &req.headers,
                &req.body,
            ) {
                Ok(answer) => {
                    let status = answer
                        .start
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(502);
                    let reply = Reply {
                        status,
                        headers: answer
                            .headers
                            .into_iter()
                            .filter(|(k, _)| !is_framing(k))
                            .collect(),
                        body: answer.body,
                    };
                    (reply, principal, None, Outcome::Forwarded { status })
                }
                Err(e) => refuse(
                    503,
                    0,
                    &format!("The store behind the test front did not answer: {e}"),
                    Outcome::UpstreamError,
                    principal,
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            connection: 0,
            method: method.into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    fn action(op: Operation) -> &'static str {
        match op {
            Operation::Data { action, .. } => action,
            Operation::ControlPlane => "control",
        }
    }

    #[test]
    fn classifies_control_plane_metadata_and_data() {
        let c = |m, t| action(classify(&req(m, t, &[])));
        assert_eq!(c("POST", "/dbs"), "control");
        assert_eq!(c("DELETE", "/dbs/a"), "control");
        assert_eq!(c("POST", "/dbs/a/colls"), "control");
        assert_eq!(c("PUT", "/dbs/a/colls/b"), "control");
        assert_eq!(c("DELETE", "/dbs/a/colls/b/"), "control");
        assert_eq!(c("POST", "/dbs/a/colls/b/sprocs"), "control");
        assert_eq!(c("PUT", "/offers/x"), "control");
        assert_eq!(c("GET", "/"), READ_METADATA);
        assert_eq!(c("GET", "/dbs/a"), READ_METADATA);
        assert_eq!(c("GET", "/dbs/a/colls/b"), READ_METADATA);
        assert_eq!(c("GET", "/dbs/a/colls/b/pkranges"), READ_METADATA);
        assert_eq!(c("POST", "/dbs/a/colls/b/docs"), ITEMS_CREATE);
        assert_eq!(c("GET", "/dbs/a/colls/b/docs"), READ_CHANGE_FEED);
        assert_eq!(c("GET", "/dbs/a/colls/b/docs/x%20y"), ITEMS_READ);
        assert_eq!(c("PUT", "/dbs/a/colls/b/docs/x"), ITEMS_REPLACE);
        assert_eq!(c("DELETE", "/dbs/a/colls/b/docs/x"), ITEMS_DELETE);
        assert_eq!(
            c("POST", "/dbs/a/colls/b/sprocs/p"),
            EXECUTE_STORED_PROCEDURE
        );
        let query = req(
            "POST",
            "/dbs/a/colls/b/docs",
            &[("x-ms-documentdb-isquery", "True")],
        );
        assert_eq!(action(classify(&query)), EXECUTE_QUERY);
        let upsert = req(
            "POST",
            "/dbs/a/colls/b/docs",
            &[("x-ms-documentdb-is-upsert", "true")],
        );
        assert_eq!(action(classify(&upsert)), ITEMS_UPSERT);
        let list_dbs = req(
            "POST",
            "/dbs",
            &[("content-type", "application/query+json")],
        );
        assert_eq!(action(classify(&list_dbs)), READ_METADATA);
        match classify(&req("POST", "/dbs/a%20b/colls/c/docs", &[])) {
            Operation::Data { resource, .. } => assert_eq!(resource, "dbs/a b/colls/c"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_authorization_encoded_or_not() {
        let want = Some(("aad".into(), "1.0".into(), "h.p.s".into()));
        assert_eq!(
            parse_authorization("type%3Daad%26ver%3D1.0%26sig%3Dh.p.s"),
            want
        );
        assert_eq!(
            parse_authorization("type%3daad%26ver%3d1.0%26sig%3dh.p.s"),
            want
        );
        assert_eq!(parse_authorization("type=aad&ver=1.0&sig=h.p.s"), want);
        assert_eq!(
            parse_authorization("type%3Dmaster%26ver%3D1.0%26sig%3DabC%2B%2F%3D")
                .unwrap()
                .2,
            "abC+/="
        );
        assert_eq!(parse_authorization("Bearer h.p.s"), None);
        assert_eq!(parse_authorization("type%3Daad"), None);
    }

    #[test]
    fn roles_and_times() {
        assert!(DataRole::Reader.allows(READ_METADATA));
        assert!(DataRole::Reader.allows(EXECUTE_QUERY));
        assert!(!DataRole::Reader.allows(ITEMS_CREATE));
        assert!(DataRole::Contributor.allows(ITEMS_CREATE));
        // 2022-07-17 17:09:09 UTC and 2022-07-18 00:04:25 UTC, as in the service's message.
        assert_eq!(cosmos_time(1_658_077_749), "7/17/2022 5:09:09 PM");
        assert_eq!(cosmos_time(1_658_102_665), "7/18/2022 12:04:25 AM");
    }
}
