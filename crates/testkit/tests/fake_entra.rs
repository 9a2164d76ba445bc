//! The fake Entra ID over HTTP: both protocols, its errors, its tokens, its failure modes.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use acr_webhook_testkit::{
    http, port_is_open, FakeEntra, Outage, PrincipalKind, Protocol, Rejection, COSMOS_AUDIENCE,
    SERVICE_ACCOUNT_SUBJECT,
};
use common::entra_client::{
    access_token, encode, imds, read_answer, token_endpoint, with_assertion, with_secret,
};

const COSMOS_SCOPE: &str = "https://cosmos.azure.com/.default";

#[test]
fn imds_answers_a_signed_token_with_numbers_as_strings() {
    let entra = FakeEntra::start();
    let before = SystemTime::now();
    let r = imds(&entra, COSMOS_AUDIENCE, None);
    let body = r.json().unwrap();
    let token = access_token(&r);
    for field in ["expires_in", "expires_on", "not_before"] {
        assert!(body[field].is_string(), "{field} is a string: {body}");
    }
    assert_eq!(body["refresh_token"], "");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], COSMOS_AUDIENCE);
    let system = entra.system_identity();
    assert_eq!(system.kind, PrincipalKind::SystemAssignedIdentity);
    assert_eq!(body["client_id"], system.client_id.as_str());
    let n = |f: &str| body[f].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(n("expires_in"), 3600);
    assert_eq!(n("expires_on") - n("not_before"), 3600);

    let claims = entra.validate(&token, SystemTime::now()).unwrap();
    assert_eq!(claims.aud, COSMOS_AUDIENCE);
    assert_eq!(claims.oid, system.object_id);
    assert_eq!(claims.appid, system.client_id);
    assert_eq!(claims.tid, entra.tenant_id());
    assert_eq!(
        claims.iss,
        format!("https://sts.windows.net/{}/", entra.tenant_id())
    );
    assert_eq!(claims.exp, n("expires_on"));
    let issued_at = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(claims.iat >= issued_at && claims.iat <= issued_at + 5);

    // The token is a JWT with the claims of a v1.0 app-only token.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine as _;
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["ver"], "1.0");
    assert_eq!(payload["idtyp"], "app");
    assert_eq!(payload["sub"], system.object_id.as_str());

    // The user-assigned identity, by client id; an unknown one is refused as IMDS does.
    let user = entra.user_identity();
    let r = imds(&entra, COSMOS_AUDIENCE, Some(&user.client_id));
    assert_eq!(r.json().unwrap()["client_id"], user.client_id.as_str());
    let claims = entra
        .validate(&access_token(&r), SystemTime::now())
        .unwrap();
    assert_eq!(claims.oid, user.object_id);
    let r = imds(
        &entra,
        COSMOS_AUDIENCE,
        Some("00000000-0000-0000-0000-00000000beef"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["error_description"], "Identity not found");

    let stats = entra.stats();
    assert_eq!(stats.issued_managed_identity, 2);
    assert_eq!(stats.issued(Protocol::ManagedIdentity), 2);
    assert_eq!(stats.total_issued(), 2);
    assert_eq!(stats.refused, 1);
    let issued = entra.issued();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[1].object_id, user.object_id);
    assert_eq!(issued[1].audience, COSMOS_AUDIENCE);
    let asked = entra.requests();
    assert_eq!(asked.len(), 3);
    assert_eq!(asked[1].client_id.as_deref(), Some(user.client_id.as_str()));
    assert_eq!(asked[2].status, 400);
}

#[test]
fn imds_refuses_a_request_without_the_metadata_header() {
    let entra = FakeEntra::start();
    let url = format!(
        "{}?api-version=2018-02-01&resource={}",
        entra.imds_endpoint(),
        encode(COSMOS_AUDIENCE)
    );
    let r = http::request("GET", &url, &[], None).unwrap();
    assert_eq!(r.status, 400);
    let body = r.json().unwrap();
    assert_eq!(body["error"], "bad_request_102");
    assert_eq!(
        body["error_description"],
        "Required metadata header not specified"
    );
    let r = http::request("GET", &url, &[("Metadata", "false")], None).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(entra.stats().total_issued(), 0);
    assert_eq!(entra.stats().refused, 2);
    assert_eq!(
        entra.requests()[0].error.as_deref(),
        Some("bad_request_102")
    );
}

#[test]
fn client_secret_grant_and_a_wrong_or_rotated_secret() {
    let entra = FakeEntra::start();
    let secret = entra.client_secret();
    let r = with_secret(&entra, &secret, COSMOS_SCOPE);
    let body = r.json().unwrap();
    let token = access_token(&r);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600, "a number, not a string: {body}");
    assert_eq!(body["ext_expires_in"], 3600);
    let claims = entra.validate(&token, SystemTime::now()).unwrap();
    assert_eq!(claims.appid, entra.app().client_id);
    assert_eq!(claims.oid, entra.app().object_id);
    assert_eq!(claims.aud, COSMOS_AUDIENCE);

    let r = with_secret(&entra, "not-the-secret", COSMOS_SCOPE);
    assert_eq!(r.status, 401);
    let body = r.json().unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], serde_json::json!([7000215]));
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS7000215: Invalid client secret provided."),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    assert!(!r.text().contains(&secret), "the secret is never echoed");

    let new_secret = entra.rotate_client_secret();
    assert_ne!(new_secret, secret);
    assert_eq!(with_secret(&entra, &secret, COSMOS_SCOPE).status, 401);
    access_token(&with_secret(&entra, &new_secret, COSMOS_SCOPE));

    let stats = entra.stats();
    assert_eq!(stats.issued_client_secret, 2);
    assert_eq!(stats.refused, 2);
    let asked = entra.requests();
    assert_eq!(asked[1].protocol, Some(Protocol::ClientSecret));
    assert_eq!(asked[1].aadsts, Some(7000215));
    assert!(
        !format!("{entra:?}{asked:?}").contains(&new_secret),
        "no secret in Debug"
    );
}

#[test]
fn an_unknown_resource_is_refused_so_a_client_can_fall_back() {
    let entra = FakeEntra::start();
    let account = "https://acct.documents.azure.com";
    // By default the account audience exists too.
    let account_token = access_token(&with_secret(
        &entra,
        &entra.client_secret(),
        &format!("{account}/.default"),
    ));
    assert_eq!(
        entra
            .validate(&account_token, SystemTime::now())
            .unwrap()
            .aud,
        account
    );

    entra.set_audiences(&[COSMOS_AUDIENCE]);
    let r = with_secret(
        &entra,
        &entra.client_secret(),
        &format!("{account}/.default"),
    );
    assert_eq!(r.status, 400);
    let body = r.json().unwrap();
    assert_eq!(body["error"], "invalid_resource");
    assert_eq!(body["error_codes"], serde_json::json!([500011]));
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!(
            "AADSTS500011: The resource principal named {account} was not found in the tenant"
        )),
        "{description}"
    );
    let r = imds(&entra, account, None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["error"], "invalid_resource");
    // The fallback audience works, by both protocols; a trailing slash is the same resource.
    access_token(&with_secret(&entra, &entra.client_secret(), COSMOS_SCOPE));
    let token = access_token(&imds(&entra, "https://cosmos.azure.com/", None));
    assert_eq!(
        entra.validate(&token, SystemTime::now()),
        Err(Rejection::WrongAudience {
            audience: "https://cosmos.azure.com/".into()
        }),
        "the token's aud is the resource as asked, which resources compare exactly"
    );
    // The earlier token for the account audience is not for a resource the fake knows any
    // more (a resource checking its own list would still take it).
    assert!(matches!(
        entra.validate(&account_token, SystemTime::now()),
        Err(Rejection::WrongAudience { .. })
    ));
    let asked: Vec<_> = entra
        .requests()
        .into_iter()
        .map(|r| (r.audience.unwrap(), r.status))
        .collect();
    assert_eq!(asked[1], (account.to_string(), 400));
    assert_eq!(asked[3], (COSMOS_AUDIENCE.to_string(), 200));
}

#[test]
fn malformed_token_requests_get_entra_errors() {
    let entra = FakeEntra::start();
    let secret = entra.client_secret();
    // Scope without /.default.
    let r = with_secret(&entra, &secret, COSMOS_AUDIENCE);
    assert_eq!(
        (r.status, r.json().unwrap()["error"].clone()),
        (400, "invalid_scope".into())
    );
    // Unknown client.
    let r = token_endpoint(
        &entra,
        &[
            ("client_id", "someone-else"),
            ("scope", COSMOS_SCOPE),
            ("client_secret", &secret),
        ],
    );
    assert_eq!(
        r.json().unwrap()["error_codes"],
        serde_json::json!([700016])
    );
    // Wrong tenant.
    let url = entra
        .token_endpoint()
        .replace(entra.tenant_id(), "other-tenant");
    let body = format!(
        "grant_type=client_credentials&client_id={}&scope={}&client_secret={}",
        entra.app().client_id,
        encode(COSMOS_SCOPE),
        encode(&secret)
    );
    let r = http::request("POST", &url, &[], Some(body.as_bytes())).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["error_codes"], serde_json::json!([90002]));
    // No credential at all.
    let r = token_endpoint(
        &entra,
        &[
            ("client_id", &entra.app().client_id),
            ("scope", COSMOS_SCOPE),
        ],
    );
    assert_eq!(
        (r.status, r.json().unwrap()["error"].clone()),
        (401, "invalid_client".into())
    );
    assert_eq!(entra.stats().total_issued(), 0);
    assert_eq!(entra.stats().refused, 4);
}

#[test]
fn workload_identity_with_a_federated_token_file_and_its_rotation() {
    let entra = FakeEntra::start();
    let file = entra.federated_token_file();
    let env = entra.workload_identity_env(&file);
    let var = |name: &str| env.iter().find(|(k, _)| k == name).unwrap().1.clone();
    assert_eq!(
        var("AZURE_FEDERATED_TOKEN_FILE"),
        file.path().display().to_string()
    );
    assert_eq!(var("AZURE_CLIENT_ID"), entra.app().client_id);
    assert_eq!(var("AZURE_TENANT_ID"), entra.tenant_id());
    assert_eq!(
        format!(
            "{}{}/oauth2/v2.0/token",
            var("AZURE_AUTHORITY_HOST"),
            var("AZURE_TENANT_ID")
        ),
        entra.token_endpoint()
    );

    let first = std::fs::read_to_string(file.path()).unwrap();
    let token = access_token(&with_assertion(&entra, &first, COSMOS_SCOPE));
    let claims = entra.validate(&token, SystemTime::now()).unwrap();
    assert_eq!(claims.appid, entra.app().client_id);

    file.rotate();
    let second = file.token();
    assert_ne!(first, second);
    // A client that kept the old token is refused as Entra refuses an expired assertion.
    let r = with_assertion(&entra, &first, COSMOS_SCOPE);
    assert_eq!(r.status, 401);
    let body = r.json().unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], serde_json::json!([700024]));
    // One that re-reads the file gets a token.
    access_token(&with_assertion(&entra, &second, COSMOS_SCOPE));

    // Another service account of the same cluster has no federated credential.
    let other = entra.mint_service_account_token(
        "system:serviceaccount:default:someone-else",
        Duration::from_secs(600),
    );
    let r = with_assertion(&entra, &other, COSMOS_SCOPE);
    assert_eq!(r.status, 400);
    let description = r.json().unwrap()["error_description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        description.starts_with("AADSTS70021: No matching federated identity record found"),
        "{description}"
    );
    // A token signed by another cluster fails signature validation.
    let foreign = FakeEntra::start()
        .mint_service_account_token(SERVICE_ACCOUNT_SUBJECT, Duration::from_secs(600));
    assert_eq!(with_assertion(&entra, &foreign, COSMOS_SCOPE).status, 401);
    // An expired service-account token.
    let expired = entra.mint_service_account_token(SERVICE_ACCOUNT_SUBJECT, Duration::ZERO);
    let r = with_assertion(&entra, &expired, COSMOS_SCOPE);
    assert_eq!(
        r.json().unwrap()["error_codes"],
        serde_json::json!([700024])
    );

    let stats = entra.stats();
    assert_eq!(stats.issued_client_assertion, 2);
    assert_eq!(stats.issued(Protocol::ClientAssertion), 2);
    assert_eq!(stats.refused, 4);
    assert!(entra
        .requests()
        .iter()
        .all(|r| r.protocol == Some(Protocol::ClientAssertion)));
    let dir = file.path().parent().unwrap().to_path_buf();
    drop(file);
    assert!(!dir.exists(), "the token file's dir is removed on drop");
}

#[test]
fn expiry_revocation_and_forgery() {
    let entra = FakeEntra::start();
    let token = access_token(&imds(&entra, COSMOS_AUDIENCE, None));
    let now = SystemTime::now();
    assert!(entra.validate(&token, now).is_ok());
    let exp = entra.validate(&token, now).unwrap().exp;
    let later = now + Duration::from_secs(3601);
    assert!(
        matches!(entra.validate(&token, later), Err(Rejection::Expired { exp: e, .. }) if e == exp)
    );
    let earlier = now - Duration::from_secs(120);
    assert!(matches!(
        entra.validate(&token, earlier),
        Err(Rejection::NotYetValid { .. })
    ));

    // A zero lifetime issues tokens already expired.
    entra.set_token_lifetime(Duration::ZERO);
    let r = imds(&entra, COSMOS_AUDIENCE, None);
    assert_eq!(r.json().unwrap()["expires_in"], "0");
    assert!(matches!(
        entra.validate(&access_token(&r), SystemTime::now()),
        Err(Rejection::Expired { .. })
    ));
    entra.set_token_lifetime(Duration::from_secs(3600));

    // Revocation of one token, then of all.
    let other = access_token(&with_secret(&entra, &entra.client_secret(), COSMOS_SCOPE));
    assert!(entra.revoke(&token));
    assert_eq!(
        entra.validate(&token, SystemTime::now()),
        Err(Rejection::Revoked)
    );
    assert!(entra.validate(&other, SystemTime::now()).is_ok());
    entra.revoke_all();
    assert_eq!(
        entra.validate(&other, SystemTime::now()),
        Err(Rejection::Revoked)
    );
    let fresh = access_token(&imds(&entra, COSMOS_AUDIENCE, None));
    assert!(
        entra.validate(&fresh, SystemTime::now()).is_ok(),
        "issued after revoke_all"
    );
    assert!(!entra.revoke("not-a-token"));

    // Forged: another fake's token, a payload altered, garbage.
    let foreign = access_token(&imds(&FakeEntra::start(), COSMOS_AUDIENCE, None));
    assert_eq!(
        entra.validate(&foreign, SystemTime::now()),
        Err(Rejection::BadSignature)
    );
    let mut parts: Vec<String> = fresh.split('.').map(str::to_string).collect();
    parts[1] = parts[1].replace('A', "B");
    assert_eq!(
        entra.validate(&parts.join("."), SystemTime::now()),
        Err(Rejection::BadSignature)
    );
    assert_eq!(
        entra.validate("garbage", SystemTime::now()),
        Err(Rejection::Malformed)
    );

    // Audience checks by the validator, against the fake's resources or a given list.
    let account = access_token(&imds(&entra, "https://acct.documents.azure.com", None));
    let validator = entra.validator();
    assert!(validator.validate(&account, SystemTime::now()).is_ok());
    assert_eq!(
        validator.validate_for(&account, SystemTime::now(), &[COSMOS_AUDIENCE.to_string()]),
        Err(Rejection::WrongAudience {
            audience: "https://acct.documents.azure.com".into()
        })
    );
    // A token minted directly, for a store test.
    let direct = entra.issue_token(
        &entra.app(),
        COSMOS_AUDIENCE,
        SystemTime::now() - Duration::from_secs(7200),
        Duration::from_secs(3600),
    );
    assert!(matches!(
        validator.validate(&direct, SystemTime::now()),
        Err(Rejection::Expired { .. })
    ));
    assert_eq!(
        entra.stats().total_issued(),
        5,
        "direct mints are not counted"
    );
}

#[test]
fn failures_on_demand_then_recovery() {
    let entra = FakeEntra::start();
    entra.fail_next(2, Outage::Status(503));
    let r = with_secret(&entra, &entra.client_secret(), COSMOS_SCOPE);
    assert_eq!(r.status, 503);
    assert_eq!(r.json().unwrap()["error"], "temporarily_unavailable");
    let r = imds(&entra, COSMOS_AUDIENCE, None);
    assert_eq!(r.status, 503);
    assert!(r.json().unwrap()["error"].is_string());
    access_token(&imds(&entra, COSMOS_AUDIENCE, None));

    entra.fail_next(1, Outage::Status(500));
    assert_eq!(imds(&entra, COSMOS_AUDIENCE, None).status, 500);

    // A connection closed without an answer.
    entra.fail_next(1, Outage::Close);
    let url = format!(
        "{}?api-version=2018-02-01&resource=x",
        entra.imds_endpoint()
    );
    assert!(http::request("GET", &url, &[("Metadata", "true")], None).is_err());
    access_token(&imds(&entra, COSMOS_AUDIENCE, None));

    // Down: refused; up again on the same port.
    let addr = entra.addr();
    entra.go_down();
    assert!(entra.is_down());
    assert!(!port_is_open(addr));
    assert!(http::request("GET", &url, &[("Metadata", "true")], None).is_err());
    entra.go_down(); // idempotent
    entra.come_up();
    assert!(!entra.is_down());
    assert_eq!(entra.addr(), addr);
    access_token(&imds(&entra, COSMOS_AUDIENCE, None));

    // Slow answers.
    entra.set_delay(Duration::from_millis(300));
    let t0 = Instant::now();
    access_token(&imds(&entra, COSMOS_AUDIENCE, None));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    entra.set_delay(Duration::ZERO);

    let stats = entra.stats();
    assert_eq!(stats.injected, 4);
    assert_eq!(stats.issued_managed_identity, 4);
    assert_eq!(stats.requests, 8, "refused connections never reach it");
}

#[test]
fn pipelined_requests_on_one_keep_alive_connection() {
    let entra = FakeEntra::start();
    let path = format!(
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
        encode(COSMOS_AUDIENCE)
    );
    let one = format!("GET {path} HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n\r\n");
    let without_header = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let stream = TcpStream::connect(entra.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    w.write_all(format!("{one}{without_header}{one}").as_bytes())
        .unwrap();
    let mut r = BufReader::new(stream);
    let statuses: Vec<u16> = (0..3).map(|_| read_answer(&mut r).0).collect();
    assert_eq!(statuses, [200, 400, 200], "answered in order");
    assert_eq!(entra.connections(), 1);
    assert_eq!(entra.stats().issued_managed_identity, 2);
}
