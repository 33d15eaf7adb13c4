//! Replaces secret values in any text, including their base64 and URL-encoded forms.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use std::borrow::Cow;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Masks a fixed set of secret values. Build one per validation or request from the
/// project's secrets; every log line and report passes through [`Masker::mask`].
#[derive(Clone, Debug)]
pub struct Masker {
    matcher: Option<AhoCorasick>,
}

impl Masker {
    /// A masker for these values. Longer forms win over shorter ones that they contain.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = Vec::new();
        for value in values {
            let value = value.as_ref();
            if value.is_empty() {
                continue;
            }
            let bytes = value.as_bytes();
            patterns.push(value.to_owned());
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                patterns.push(engine.encode(bytes));
            }
            patterns.push(url_encode(value, false));
            patterns.push(url_encode(value, true));
        }
        patterns.sort();
        patterns.dedup();
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .expect("literal patterns always build")
        });
        Self { matcher }
    }

    /// A masker that masks nothing (a project without secrets).
    pub fn empty() -> Self {
        Self { matcher: None }
    }

    /// The text with every occurrence of a secret replaced by `***`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(matcher) if matcher.is_match(text) => {
                let replacements = vec![MASK; matcher.patterns_len()];
                Cow::Owned(matcher.replace_all(text, &replacements))
            }
            _ => Cow::Borrowed(text),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters;
/// `plus_for_space` gives the form encoding's spelling of a space.
fn url_encode(value: &str, plus_for_space: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' if plus_for_space => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn masks_plain_base64_and_url_encoded_forms() {
        let secret = "s3cr3t/value with space+plus";
        let masker = Masker::new([secret]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let text = format!(
            "plain={secret} b64={b64} url={} form={}",
            url_encode(secret, false),
            url_encode(secret, true)
        );
        let masked = masker.mask(&text);
        assert_eq!(masked, "plain=*** b64=*** url=*** form=***");
    }

    #[test]
    fn masks_every_occurrence_of_every_value() {
        let masker = Masker::new(["alpha-token", "beta-token"]);
        assert_eq!(
            masker.mask("alpha-token beta-token alpha-token!"),
            "*** *** ***!"
        );
    }

    #[test]
    fn the_longest_overlapping_value_wins() {
        let masker = Masker::new(["abc", "abcdef"]);
        assert_eq!(masker.mask("xabcdefx abc"), "x***x ***");
    }

    #[test]
    fn text_without_secrets_is_borrowed_unchanged() {
        let masker = Masker::new(["secret-value"]);
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(Masker::empty().mask("x"), Cow::Borrowed("x")));
        assert!(matches!(Masker::new([""]).mask("x"), Cow::Borrowed("x")));
    }
}
