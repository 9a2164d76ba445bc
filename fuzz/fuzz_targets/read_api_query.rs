//! The read API's pure parts: `EventQuery::parse` on any query string, continuation tokens
//! sealed and opened (random, tampered and re-targeted tokens), and the `{id}` path segment.
//!
//! Invariants: no panic; a token opens only if it is exactly the one the server would seal
//! for that query and that position (no forgery, no re-targeting to other filters, no
//! other secret); a sealed token always opens with the same filters, whatever the limit;
//! `document_path_id(document_path_segment(id)) == id` for every id `safe_id` produces;
//! the SQL body is JSON with the values only as parameters.
#![no_main]

use acr_webhook_core::document::safe_id;
use acr_webhook_core::read_api::{
    document_path_id, document_path_segment, open_continuation, query_body, seal_continuation,
    ContinuationError, EventQuery, Position, MAX_CONTINUATION_LEN,
};
use acr_webhook_fuzz::{check_id, is_plainly_safe};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = *b"fuzz-continuation-secret-32bytes";
const OTHER_SECRET: [u8; 32] = *b"another-secret-of-thirty-two-byt";

/// Where a page ended: `receivedAt` (or none) and the id.
#[derive(Arbitrary, Debug, Clone)]
struct At(Option<String>, String);

impl At {
    fn position(&self) -> Position {
        Position {
            received_at: self.0.clone(),
            id: self.1.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Token {
    /// Any text as the token.
    Raw(String),
    /// The token sealed for this query and this position.
    Sealed(At),
    /// Sealed, then one byte changed.
    Tampered(At, u16, u8),
    /// Sealed for another query string, opened with this one.
    OtherQuery(String, At),
    /// Sealed with another secret.
    OtherSecret(At),
}

#[derive(Arbitrary, Debug)]
struct Input {
    query: String,
    after: Option<At>,
    token: Token,
    id: String,
}

fn check_open(query: &EventQuery, token: &str) {
    match open_continuation(&SECRET, query, token) {
        Ok(position) => {
            assert_eq!(
                seal_continuation(&SECRET, query, &position),
                token,
                "a token that the server never issued was accepted"
            );
        }
        Err(ContinuationError::TooLong) => assert!(token.len() > MAX_CONTINUATION_LEN),
        Err(_) => {}
    }
}

fn same_filters(a: &EventQuery, b: &EventQuery) -> bool {
    (&a.image, &a.tag, &a.action, &a.since, &a.until)
        == (&b.image, &b.tag, &b.action, &b.since, &b.until)
}

fuzz_target!(|input: Input| {
    let parsed = EventQuery::parse(&input.query);
    assert_eq!(
        parsed,
        EventQuery::parse(&input.query),
        "parse is not deterministic"
    );
    let query = match parsed {
        Ok(q) => q,
        Err(e) => {
            assert!(e.to_string().len() <= 1024, "unbounded query error: {e}");
            EventQuery::default()
        }
    };
    assert!((1..=100).contains(&query.limit));
    let after = input.after.as_ref().map(At::position);
    let body = query_body(&query, after.as_ref()).to_string();
    let sql: serde_json::Value = serde_json::from_str(&body).expect("query body is JSON");
    let text = sql["query"].as_str().expect("a SQL text");
    // The SQL text is made of the fixed fragments only; the values travel as parameters.
    let mut conditions = Vec::new();
    let mut parameters = Vec::new();
    for (present, condition, name, value) in [
        (
            query.image.as_deref(),
            "c.image = @image",
            "@image",
            query.image.clone(),
        ),
        (
            query.tag.as_deref(),
            "c.tag = @tag",
            "@tag",
            query.tag.clone(),
        ),
        (
            query.action.as_deref(),
            "c.action = @action",
            "@action",
            query.action.clone(),
        ),
        (
            query.since.as_deref(),
            "c.receivedAt >= @since",
            "@since",
            query.since.clone(),
        ),
        (
            query.until.as_deref(),
            "c.receivedAt < @until",
            "@until",
            query.until.clone(),
        ),
    ] {
        if present.is_some() {
            conditions.push(condition);
            parameters.push(serde_json::json!({ "name": name, "value": value }));
        }
    }
    match &after {
        Some(Position {
            received_at: Some(received_at),
            id,
        }) => {
            conditions.push(
                "(c.receivedAt < @afterReceivedAt OR (c.receivedAt = @afterReceivedAt AND \
                 c.id < @afterId) OR NOT IS_STRING(c.receivedAt))",
            );
            parameters
                .push(serde_json::json!({ "name": "@afterReceivedAt", "value": received_at }));
            parameters.push(serde_json::json!({ "name": "@afterId", "value": id }));
        }
        Some(Position {
            received_at: None,
            id,
        }) => {
            conditions.push("(NOT IS_STRING(c.receivedAt) AND c.id < @afterId)");
            parameters.push(serde_json::json!({ "name": "@afterId", "value": id }));
        }
        None => {}
    }
    let mut expected = String::from("SELECT * FROM c");
    if !conditions.is_empty() {
        expected.push_str(" WHERE ");
        expected.push_str(&conditions.join(" AND "));
    }
    expected.push_str(" ORDER BY c.receivedAt DESC, c.id DESC");
    assert_eq!(
        text, expected,
        "the SQL text is not made of the fixed fragments"
    );
    assert_eq!(sql["parameters"], serde_json::Value::Array(parameters));
    if let Some(token) = &query.continuation {
        check_open(&query, token);
    }

    match &input.token {
        Token::Raw(token) => check_open(&query, token),
        Token::Sealed(at) => {
            let position = at.position();
            let token = seal_continuation(&SECRET, &query, &position);
            let mut other_limit = query.clone();
            other_limit.limit = 100 - query.limit + 1;
            for q in [&query, &other_limit] {
                match open_continuation(&SECRET, q, &token) {
                    Ok(opened) => assert_eq!(opened, position),
                    Err(ContinuationError::TooLong) => assert!(token.len() > MAX_CONTINUATION_LEN),
                    Err(e) => panic!("a sealed token did not open: {e}"),
                }
            }
        }
        Token::Tampered(position, at, byte) => {
            let token = seal_continuation(&SECRET, &query, &position.position());
            let mut bytes = token.into_bytes();
            let at = usize::from(*at) % bytes.len();
            bytes[at] = *byte;
            if let Ok(tampered) = String::from_utf8(bytes) {
                check_open(&query, &tampered);
            }
        }
        Token::OtherQuery(other, at) => {
            if let Ok(other) = EventQuery::parse(other) {
                let token = seal_continuation(&SECRET, &other, &at.position());
                let opened = open_continuation(&SECRET, &query, &token);
                if token.len() <= MAX_CONTINUATION_LEN {
                    assert_eq!(
                        opened.is_ok(),
                        same_filters(&query, &other),
                        "a token opened for other filters (or did not for the same ones)"
                    );
                }
            }
        }
        Token::OtherSecret(at) => {
            let token = seal_continuation(&OTHER_SECRET, &query, &at.position());
            assert!(
                open_continuation(&SECRET, &query, &token).is_err(),
                "a token sealed with another secret opened"
            );
        }
    }

    // The `{id}` segment.
    if !input.id.is_empty() {
        let id = safe_id(&input.id);
        check_id(&id);
        let segment = document_path_segment(&id);
        assert_eq!(
            document_path_id(&segment).as_deref(),
            Ok(id.as_str()),
            "GET /events/{{segment}} does not lead back to the id"
        );
        // A client that encodes the original event id instead.
        let raw = document_path_segment(&input.id);
        if raw.len() <= 4096 {
            let found = document_path_id(&raw).expect("an encoded id is a valid segment");
            check_id(&found);
            if is_plainly_safe(&input.id) {
                assert_eq!(found, input.id);
            }
        }
    }
    // Any segment: no panic, and what it names is a valid id.
    if let Ok(found) = document_path_id(&input.query) {
        check_id(&found);
    }
});
