//! Text helpers shared by every room: quoting user input safely in a message, the shape of an
//! API type name, and a JSON parse error described without echoing the input.

use crate::error::Refusal;

/// A user-supplied name made safe to quote in a message (control characters escaped, clipped
/// to 64 characters).
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// A request type name: upper-case letters, digits and `_`, starting with a letter.
pub(crate) fn check_type_name(field: &str, name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes()[0].is_ascii_uppercase();
    if ok {
        Ok(())
    } else {
        Err(Refusal::field(field, "expected an upper-case API type name like UNIT_STATUS"))
    }
}

/// Every byte outside the URL-unreserved set as `%XX` (a v2 path segment or query value; a
/// key as it may stand in a URL, for redaction).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// serde_json's error without any of the input: its kind and position only.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column())
}
