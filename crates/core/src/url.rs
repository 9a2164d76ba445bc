//! URL text in one place: a query string split into its pairs, percent-decoding (strict where
//! a bad escape must be refused, lenient for the webhook key in `?code=`), and the
//! percent-encoding of a path segment or query value. The escapes themselves come from the
//! `percent-encoding` crate.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `key=value` pairs of a query string (without `?`), raw (still percent-encoded); an
/// empty pair is skipped and a pair without `=` has an empty value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Strict RFC 3986 percent-decoding into UTF-8: `None` for a `%` without two hex digits or
/// for bytes that are not UTF-8. `+` stays `+`.
pub fn decode_strict(raw: &str) -> Option<String> {
    let well_formed = raw
        .split('%')
        .skip(1)
        .all(|after| after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if !well_formed {
        return None;
    }
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

/// Lenient percent-decoding into bytes: a `%` without two hex digits is kept as it is, and
/// `+` stays `+` (keys are often base64).
pub fn decode_lenient(raw: &str) -> Vec<u8> {
    percent_decode_str(raw).collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, with upper-case hex: fit
/// for a path segment and for a query value (a space becomes `%20`, `+` becomes `%2B`).
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_split_raw() {
        let pairs: Vec<_> = query_pairs("a=1&&b&c=x%20y=z&").collect();
        assert_eq!(pairs, [("a", "1"), ("b", ""), ("c", "x%20y=z")]);
        assert_eq!(query_pairs("").count(), 0);
    }

    #[test]
    fn strict_decoding_refuses_bad_escapes_and_bad_utf8() {
        assert_eq!(decode_strict("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(decode_strict("%C3%A9%2b").as_deref(), Some("é+"));
        for bad in ["%", "%4", "%zz", "a%2", "%FF", "%C3"] {
            assert_eq!(decode_strict(bad), None, "{bad}");
        }
    }

    #[test]
    fn lenient_decoding_keeps_bad_escapes() {
        assert_eq!(decode_lenient("%zz%4"), b"%zz%4");
        assert_eq!(decode_lenient("%41%"), b"A%");
        assert_eq!(decode_lenient("a+b%2F"), b"a+b/");
    }

    #[test]
    fn components_keep_only_unreserved_characters() {
        assert_eq!(encode_component("a-Z_0.9~"), "a-Z_0.9~");
        assert_eq!(
            encode_component("type=master&ver=1.0&sig=a+b/c="),
            "type%3Dmaster%26ver%3D1.0%26sig%3Da%2Bb%2Fc%3D"
        );
        assert_eq!(encode_component("é /?#%"), "%C3%A9%20%2F%3F%23%25");
        for text in ["x", "a b", "é+%", "50%/2"] {
            assert_eq!(
                decode_strict(&encode_component(text)).as_deref(),
                Some(text)
            );
        }
    }
}
