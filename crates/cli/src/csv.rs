//! The trail as CSV (RFC 4180), for `acr-webhook export --format csv`. The page builds the
//! same file with the same rules in `ui/app.js` (`csvLine`); both are tested against
//! `tests/fixtures/export/` (documents.json, expected.csv).
//!
//! - A fixed header, [`COLUMNS`]: the fields of the stored document (README "The stored
//!   document"), one row per event; a field the document lacks is an empty cell, a field not in
//!   the list is left out (the NDJSON export has every field).
//! - A cell is the string as stored; a number, `true`/`false`, an object or an array is its
//!   compact JSON text; `null` is empty.
//! - A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a `'` in
//!   front, so that a spreadsheet shows it as text instead of running it as a formula:
//!   repository and tag names come from whoever pushes.
//! - A cell holding `"`, `,`, a carriage return or a line feed is put in double quotes, each
//!   `"` doubled. Lines end with CRLF, the last one too. UTF-8, without a byte order mark.

use serde_json::Value;

/// The columns, in order.
pub const COLUMNS: [&str; 19] = [
    "id",
    "action",
    "timestamp",
    "receivedAt",
    "loginServer",
    "image",
    "tag",
    "digest",
    "mediaType",
    "size",
    "requestId",
    "requestMethod",
    "userAgent",
    "source",
    "contentHash",
    "eventId",
    "conflictsWith",
    "name",
    "version",
];

/// The header line.
pub fn header() -> String {
    line(COLUMNS.iter().map(|c| cell_text(c)))
}

/// The line of one stored document (a JSON object).
pub fn row(document: &Value) -> String {
    line(COLUMNS.iter().map(|c| match document.get(c) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => cell_text(text),
        Some(other) => cell_text(&other.to_string()),
    }))
}

fn line(cells: impl Iterator<Item = String>) -> String {
    let mut out = cells.collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

/// One cell: made inert for spreadsheets, then quoted when it must be.
fn cell_text(text: &str) -> String {
    let inert = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if inert.contains(['"', ',', '\r', '\n']) {
        format!("\"{}\"", inert.replace('"', "\"\""))
    } else {
        inert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/export")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The file the page must build too (crates/cli/tests/ui/browser.mjs checks app.js against
    /// the same fixture).
    #[test]
    fn the_fixture_documents_give_the_expected_file() {
        let documents: Vec<Value> = serde_json::from_slice(&fixture("documents.json")).unwrap();
        let mut got = header();
        for document in &documents {
            got.push_str(&row(document));
        }
        assert_eq!(got, String::from_utf8(fixture("expected.csv")).unwrap());
    }

    #[test]
    fn cells() {
        for (text, want) in [
            ("plain", "plain"),
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=a,\"b\"", "\"'=a,\"\"b\"\"\""),
            ("x=1", "x=1"),
            ("'quoted'", "'quoted'"),
            ("", ""),
            ("é ü", "é ü"),
        ] {
            assert_eq!(cell_text(text), want, "{text:?}");
        }
        let document = serde_json::json!({"id": "a", "size": 524, "digest": null,
            "name": {"b": 1, "a": [true]}, "version": -2, "other": "left out"});
        let row = row(&document);
        assert_eq!(
            row,
            "a,,,,,,,,,524,,,,,,,,\"{\"\"a\"\":[true],\"\"b\"\":1}\",'-2\r\n"
        );
        assert_eq!(row.matches(',').count(), COLUMNS.len() - 1 + 1);
        assert!(header().starts_with("id,action,timestamp,receivedAt,"));
    }
}
