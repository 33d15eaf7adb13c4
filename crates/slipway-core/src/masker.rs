//! Replaces secret values in any text, including their encoded forms: base64 and base64url
//! (padded, unpadded, and as they appear inside a longer encoded text at each of the three
//! byte alignments), hexadecimal and percent-encoding in both cases, and JSON string escapes.
//! Values reversed or split into pieces are not recognised.

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
            patterns.extend(encoded_forms(value));
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

/// Shortest embedded base64 fragment worth masking: shorter ones match innocent text.
const MIN_FRAGMENT: usize = 8;

/// Every spelling of `value` that masking recognises.
fn encoded_forms(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let mut forms = vec![value.to_owned()];
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        forms.push(engine.encode(bytes));
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        forms.extend(embedded_base64(engine, bytes));
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    forms.push(hex.to_ascii_uppercase());
    forms.push(hex);
    for plus_for_space in [false, true] {
        let encoded = url_encode(value, plus_for_space);
        forms.push(lowercase_escapes(&encoded));
        forms.push(encoded);
    }
    let json = json_escape(value);
    forms.push(json.replace('/', "\\/"));
    forms.push(json);
    forms.retain(|f| !f.is_empty());
    forms
}

/// The part of `bytes`'s base64 that is the same wherever they sit in a longer encoded text:
/// for each of the three alignments, the characters that depend on these bytes alone.
fn embedded_base64(engine: &impl Engine, bytes: &[u8]) -> Vec<String> {
    (0..3)
        .filter_map(|offset| {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(bytes);
            let encoded = engine.encode(&padded);
            let skip = (offset * 8).div_ceil(6);
            let end = padded.len() * 8 / 6;
            let fragment = encoded.get(skip..end)?;
            (fragment.len() >= MIN_FRAGMENT).then(|| fragment.to_owned())
        })
        .collect()
}

/// The value as it appears inside a JSON string.
fn json_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `%2F` spelled `%2f`.
fn lowercase_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
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
    fn masks_hex_percent_json_and_embedded_base64_forms() {
        let secret = "p@ss/w\"rd-0123456789";
        let masker = Masker::new([secret]);
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        let json = serde_json::to_string(secret).unwrap();
        let texts = [
            format!("hex={hex}!"),
            format!("HEX={}!", hex.to_ascii_uppercase()),
            format!("url={}!", url_encode(secret, false).to_ascii_lowercase()),
            format!("json={json}"),
        ];
        for text in &texts {
            let masked = masker.mask(text);
            assert!(masked.contains(MASK), "{text} -> {masked}");
            assert!(!masked.contains("0123456789"), "{masked}");
        }
        // Inside a longer base64 text (a Basic auth header, a JSON blob), at every offset.
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ] {
            for prefix in ["", "u", "us", "user:"] {
                let whole = engine.encode(format!("{prefix}{secret} and more after it"));
                let masked = masker.mask(&whole);
                assert!(masked.contains(MASK), "{prefix:?}: {whole} -> {masked}");
                // What is left cannot be decoded back into the value.
                let left: String = masked.replace(MASK, "");
                assert!(!left.contains(&engine.encode(secret)[..8]), "{masked}");
            }
        }
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
