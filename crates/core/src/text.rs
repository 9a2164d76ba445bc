//! Small text helpers shared by the parsers: untrusted strings shown safely in messages and
//! log lines, and hex.

/// At most `max` characters of an untrusted string, control characters replaced and an
/// ellipsis when cut, so a name in a message can neither flood it nor forge a second log line.
pub(crate) fn printable_n(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// [`printable_n`] with the usual bound of 64 characters.
pub(crate) fn printable(text: &str) -> String {
    printable_n(text, 64)
}

/// Lower-case hex of some bytes.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_bounds_and_neutralises() {
        assert_eq!(printable("a\nb"), "a\u{FFFD}b");
        assert_eq!(printable_n("abcdef", 3), "abc…");
        assert_eq!(printable_n("abc", 3), "abc");
        assert_eq!(hex_lower(&[0, 255]), "00ff");
    }
}
