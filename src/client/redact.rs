//! Keeping secrets out of every text that leaves the library: error messages, log lines, stats.
//!
//! The rules (README, "Redaction"):
//! - The API key is removed wherever it appears, also JSON-escaped or percent-encoded, and a
//!   piece of at least [`TAIL_MIN`] characters of its start at the very end of a text (a server
//!   text cut off in the middle of the key). Keys shorter than
//!   [`crate::config::MIN_API_KEY_CHARS`] are refused at configuration, so removing every
//!   occurrence never mangles ordinary words.
//! - Session ids seen in requests are removed the same way when they have at least
//!   [`SUBSTRING_MIN`] characters; shorter ones (4 to 7 characters) only where they stand as a
//!   whole word, so that a short id cannot eat into the server's own text. Ids under 4
//!   characters are not secrets the library can keep.
//! - Redaction comes first, clipping after: a message is at most [`MAX_MESSAGE`] bytes, cut on
//!   a character boundary, and a clipped message says how long the whole one was.

use crate::text::percent_encode;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Mutex;

/// What replaces a secret.
pub(crate) const REDACTED: &str = "[redacted]";
/// Longest message (error or log line) the library hands out, in bytes.
pub(crate) const MAX_MESSAGE: usize = 640;
/// Secrets at least this long are removed wherever they appear; shorter ones as whole words.
pub(crate) const SUBSTRING_MIN: usize = 8;
/// A cut-off start of the key this long at the end of a text is removed too.
pub(crate) const TAIL_MIN: usize = 8;
/// Session ids remembered (the oldest are forgotten first).
const MAX_SESSIONS: usize = 1024;
/// Shortest session id remembered.
const SESSION_MIN: usize = 4;

pub(crate) struct Redactor {
    key: String,
    /// The key as it may appear in a text: plain, JSON-escaped, percent-encoded.
    key_forms: Vec<String>,
    sessions: Mutex<VecDeque<String>>,
}

impl Redactor {
    pub(crate) fn new(key: &str) -> Redactor {
        let mut key_forms = vec![key.to_string()];
        let json = serde_json::to_string(key).unwrap_or_default();
        let json = json.trim_matches('"').to_string();
        let percent = percent_encode(key);
        for form in [json, percent] {
            if !form.is_empty() && !key_forms.contains(&form) {
                key_forms.push(form);
            }
        }
        Redactor { key: key.to_string(), key_forms, sessions: Mutex::new(VecDeque::new()) }
    }

    /// Remember session ids a request carries, so that no text quotes them.
    pub(crate) fn remember<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut ids = ids.into_iter().filter(|id| id.chars().count() >= SESSION_MIN).peekable();
        if ids.peek().is_none() {
            return;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if !sessions.iter().any(|s| s == id) {
                if sessions.len() >= MAX_SESSIONS {
                    sessions.pop_front();
                }
                sessions.push_back(id.to_string());
            }
        }
    }

    /// `text` without the key and the remembered session ids.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = Cow::Borrowed(text);
        for form in &self.key_forms {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), REDACTED));
            }
        }
        if let Some(cut) = key_tail(&out, &self.key) {
            out = Cow::Owned(format!("{}{REDACTED}", &out[..cut]));
        }
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for s in sessions.iter() {
            if let Cow::Owned(o) = replace_secret(&out, s) {
                out = Cow::Owned(o);
            }
        }
        out.into_owned()
    }

    /// Redacted, then clipped to [`MAX_MESSAGE`] bytes.
    pub(crate) fn scrub(&self, text: &str) -> String {
        clip(&self.redact(text))
    }
}

/// `text` with every occurrence of `secret` replaced: anywhere for a secret of at least
/// [`SUBSTRING_MIN`] characters, only as a whole word for a shorter one.
fn replace_secret<'t>(text: &'t str, secret: &str) -> Cow<'t, str> {
    if secret.is_empty() || !text.contains(secret) {
        return Cow::Borrowed(text);
    }
    if secret.chars().count() >= SUBSTRING_MIN {
        return Cow::Owned(text.replace(secret, REDACTED));
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in text.match_indices(secret) {
        if at < rest {
            continue;
        }
        let before = text[..at].chars().next_back();
        let after = text[at + secret.len()..].chars().next();
        if !word(before) && !word(after) {
            out.push_str(&text[rest..at]);
            out.push_str(REDACTED);
            rest = at + secret.len();
        }
    }
    if rest == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[rest..]);
    Cow::Owned(out)
}

/// Where a cut-off start of `key` (at least [`TAIL_MIN`] characters, not all of it) begins at
/// the end of `text`.
fn key_tail(text: &str, key: &str) -> Option<usize> {
    let bounds: Vec<usize> = key.char_indices().map(|(i, _)| i).skip(TAIL_MIN).collect();
    bounds.into_iter().rev().find(|&n| text.ends_with(&key[..n])).map(|n| text.len() - n)
}

/// At most [`MAX_MESSAGE`] bytes (whitespace around it trimmed), cut on a character boundary;
/// a clipped text ends with `... (N bytes)`. Clipping a clipped text changes nothing.
pub(crate) fn clip(text: &str) -> String {
    let t = text.trim();
    if t.len() <= MAX_MESSAGE {
        return t.to_string();
    }
    let suffix = format!("... ({} bytes)", t.len());
    let mut end = MAX_MESSAGE - suffix.len();
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &t[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "s3cr3t-key-0123456789";

    #[test]
    fn the_key_is_removed_from_any_text() {
        let r = Redactor::new(KEY);
        assert_eq!(r.redact(&format!("bad key {KEY} ({KEY})")), "bad key [redacted] ([redacted])");
        assert_eq!(r.redact(&format!("x{KEY}y")), "x[redacted]y");
    }

    #[test]
    fn a_cut_off_key_at_the_end_is_removed() {
        let r = Redactor::new(KEY);
        assert_eq!(r.redact("echo: s3cr3t-key-01"), "echo: [redacted]");
        // Shorter than TAIL_MIN: not recognisable as the key.
        assert_eq!(r.redact("the s3cr3t"), "the s3cr3t");
    }

    #[test]
    fn encoded_forms_of_the_key_are_removed() {
        let key = "key with/slash\"quote-1234";
        let r = Redactor::new(key);
        assert_eq!(r.redact(r#"{"key":"key with/slash\"quote-1234"}"#), r#"{"key":"[redacted]"}"#);
        assert_eq!(r.redact("?key=key%20with%2Fslash%22quote-1234"), "?key=[redacted]");
    }

    #[test]
    fn session_ids_are_removed_and_short_ones_only_as_words() {
        let r = Redactor::new(KEY);
        r.remember(["75afeea-a869-4dea-b2", "ab", "Serv"]);
        assert_eq!(
            r.redact("echo 75afeea-a869-4dea-b2 with Serv, ab stays, Backend Service Reached"),
            "echo [redacted] with [redacted], ab stays, Backend Service Reached"
        );
    }

    #[test]
    fn clipping_comes_after_redaction_and_is_stable() {
        let r = Redactor::new(KEY);
        let text = format!("{}{KEY}{}", "a".repeat(MAX_MESSAGE - 10), "b".repeat(100));
        let out = r.scrub(&text);
        assert!(out.len() <= MAX_MESSAGE, "{}", out.len());
        assert!(!out.contains("s3cr3t"), "{out}");
        assert_eq!(clip(&out), out);
        let wide = "é".repeat(MAX_MESSAGE);
        let c = clip(&wide);
        assert!(c.len() <= MAX_MESSAGE && c.ends_with(" bytes)"), "{c}");
    }
}
