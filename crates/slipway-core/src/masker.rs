//! Replaces secret values in any text, including their encoded forms: base64 and base64url
//! (padded, unpadded, and as they appear inside a longer encoded text at each of the three
//! byte alignments), hexadecimal and percent-encoding in both cases, and JSON string escapes.
//! A value with line breaks is also masked line by line (each line long enough to mask), as
//! output prints it over several log lines; a text cut short (the sandbox's `… [line cut`
//! mark) has a secret's beginning right before its cut masked too.
//! Values reversed or split into other pieces are not recognised.
//! A value shorter than [`WHOLE_TOKEN_BELOW`] characters (new secrets have at least 4; older
//! stored ones may be shorter) is masked, in every form, only where it stands as a whole
//! token: not inside a longer word, so a secret `test` leaves "tests" and "testing" alone.

use crate::secret::WHOLE_TOKEN_BELOW;
use aho_corasick::Input;

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
    /// Per pattern: masked only as a whole token (a form of a short value).
    whole_token: std::sync::Arc<[bool]>,
    /// Every form masked anywhere, for the beginnings of secrets at the end of a cut text.
    patterns: std::sync::Arc<[String]>,
}

/// How the sandbox marks a line it cut short (`" … [line cut at 64 KiB]"`).
pub const CUT_MARK_START: &str = " … [line cut";

impl Masker {
    /// A masker for these values. Longer forms win over shorter ones that they contain.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // (form, whole token only); a form wanted both ways is masked anywhere.
        let mut patterns: Vec<(String, bool)> = Vec::new();
        for value in values {
            let value = value.as_ref();
            if value.is_empty() {
                continue;
            }
            let short = value.chars().count() < WHOLE_TOKEN_BELOW;
            for part in parts(value) {
                patterns.extend(encoded_forms(part).into_iter().map(|f| (f, short)));
            }
        }
        patterns.sort();
        patterns.dedup_by(|later, earlier| later.0 == earlier.0);
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|(form, _)| form))
                .expect("literal patterns always build")
        });
        Self {
            matcher,
            whole_token: patterns.iter().map(|(_, whole)| *whole).collect(),
            patterns: patterns
                .into_iter()
                .filter(|(_, whole)| !whole)
                .map(|(form, _)| form)
                .collect(),
        }
    }

    /// A masker that masks nothing (a project without secrets).
    pub fn empty() -> Self {
        Self::new(std::iter::empty::<&str>())
    }

    /// The text with every occurrence of a secret replaced by `***`. A text that ends with
    /// the sandbox's cut mark is also masked as [`Masker::mask_truncated`] masks (before it).
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if let Some(at) = text.rfind(CUT_MARK_START) {
            let (kept, mark) = text.split_at(at);
            if mark.ends_with(']') && !mark.contains('\n') {
                return match self.mask_truncated(kept) {
                    Cow::Borrowed(_) => Cow::Borrowed(text),
                    Cow::Owned(masked) => Cow::Owned(masked + mark),
                };
            }
        }
        self.mask_whole(text)
    }

    /// A text that was cut short: masked, and a secret's beginning (at least
    /// [`MIN_PART`] bytes of any of its forms) at its very end masked as well.
    pub fn mask_truncated<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let masked = self.mask_whole(text);
        let Some(at) = self.partial_at_end(&masked) else {
            return masked;
        };
        let mut out = masked.into_owned();
        out.truncate(at);
        out.push_str(MASK);
        Cow::Owned(out)
    }

    fn mask_whole<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(text);
        };
        let mut out = String::new();
        let (mut copied, mut at) = (0, 0);
        while let Some(found) = matcher.find(Input::new(text).span(at..text.len())) {
            let (start, end) = (found.start(), found.end());
            if self.whole_token[found.pattern().as_usize()] && !stands_alone(text, start, end) {
                // Look again from the next character: a longer value may start inside.
                at = start + text[start..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
            (copied, at) = (end, end);
        }
        if copied == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// Where the longest beginning of a form (cut before its end) that ends `text` starts.
    fn partial_at_end(&self, text: &str) -> Option<usize> {
        let mut longest = 0;
        for form in self.patterns.iter() {
            let most = (form.len() - 1).min(text.len());
            for len in (MIN_PART.max(longest + 1)..=most).rev() {
                if form.is_char_boundary(len) && text.ends_with(&form[..len]) {
                    longest = len;
                    break;
                }
            }
        }
        (longest > 0).then(|| text.len() - longest)
    }
}

/// Whether `text[start..end]` is a whole token: no word character (letter, digit, `_`)
/// runs on into it from either side.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let found = &text[start..end];
    let open = !found.chars().next().is_some_and(word)
        || !text[..start].chars().next_back().is_some_and(word);
    let close = !found.chars().next_back().is_some_and(word)
        || !text[end..].chars().next().is_some_and(word);
    open && close
}

/// What of `value` is masked: the value, and when it has line breaks, each of its lines
/// (trimmed) long enough to mask; a value that is one line and a line break, that line.
fn parts(value: &str) -> Vec<&str> {
    let mut parts = vec![value];
    if !value.contains(['\n', '\r']) {
        return parts;
    }
    let lines: Vec<&str> = value
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    match lines.as_slice() {
        [only] => parts.push(only),
        _ => parts.extend(lines.into_iter().filter(|line| line.len() >= MIN_PART)),
    }
    parts
}

/// Shortest piece of a secret worth masking on its own (a line of a multi-line value, an
/// embedded base64 fragment, a beginning cut short): shorter ones match innocent text.
pub const MIN_PART: usize = 8;

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
            (fragment.len() >= MIN_PART).then(|| fragment.to_owned())
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
        let masker = Masker::new(["abcdefgh", "abcdefghijk"]);
        assert_eq!(masker.mask("xabcdefghijkx abcdefgh"), "x***x ***");
    }

    #[test]
    fn short_values_are_masked_only_as_whole_tokens() {
        // A stored secret from before the 4-character rule: `FEATURE=on`.
        let masker = Masker::new(["on"]);
        assert_eq!(
            masker.mask("validation merged onto main: on"),
            "validation merged onto main: ***"
        );
        let masker = Masker::new(["test"]);
        assert_eq!(
            masker.mask("cargo test; tests passed, testing done (test)"),
            "cargo ***; tests passed, testing done (***)"
        );
        assert_eq!(masker.mask("x=test_1 retest"), "x=test_1 retest");
        assert_eq!(masker.mask("PASS=test\n"), "PASS=***\n");
        // Its encoded forms too: hex of "test" alone, not inside a longer hex string.
        assert_eq!(masker.mask("hex 74657374 ok"), "hex *** ok");
        assert_eq!(masker.mask("ab74657374cd"), "ab74657374cd");
        // Values that begin or end with punctuation need no boundary on that side.
        let masker = Masker::new(["-p4s"]);
        assert_eq!(masker.mask("cmd-p4s"), "cmd***");
        // A long value overlapping a short one's failed match is still found.
        let masker = Masker::new(["abcd", "bcdefghijk"]);
        assert_eq!(masker.mask("abcdefghijk"), "a***");
        // Eight characters and longer: everywhere, as before.
        let masker = Masker::new(["password"]);
        assert_eq!(masker.mask("mypasswords"), "my***s");
    }

    #[test]
    fn text_without_secrets_is_borrowed_unchanged() {
        let masker = Masker::new(["secret-value"]);
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(Masker::empty().mask("x"), Cow::Borrowed("x")));
        assert!(matches!(Masker::new([""]).mask("x"), Cow::Borrowed("x")));
    }

    /// A secret of several lines printed as it is: every line of output is masked alone.
    const KEY: &str = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\r\nAQEFAASCBKcwggSjAgEAAoIB\n}\n-----END KEY-----\n";

    #[test]
    fn a_multi_line_secret_is_masked_line_by_line() {
        let masker = Masker::new([KEY]);
        // As a command prints it: one log line per line, with \r\n or \n, indented or not.
        for printed in [
            KEY.to_owned(),
            KEY.replace('\n', "\r\n"),
            KEY.replace('\n', "\n    "),
        ] {
            for line in printed.lines() {
                let masked = masker.mask(line);
                assert!(!masked.contains("MIIEvQIBADANBgkqhkiG9w0B"), "{masked}");
                assert!(!masked.contains("AQEFAASCBKcwggSjAgEAAoIB"), "{masked}");
                assert!(!masked.contains("BEGIN KEY"), "{masked}");
            }
        }
        // Whole, inside one text (a JSON value, a page's text).
        assert_eq!(masker.mask(&format!("k={KEY}!")), "k=***!");
        // Encoded line by line too.
        let b64 = base64::engine::general_purpose::STANDARD.encode("AQEFAASCBKcwggSjAgEAAoIB");
        assert_eq!(masker.mask(&format!("x {b64} y")), "x *** y");
        // Lines too short to mask on their own mask nothing else.
        assert_eq!(masker.mask("fn main() {}"), "fn main() {}");
    }

    #[test]
    fn a_secret_with_a_trailing_line_break_is_masked_without_it() {
        for secret in ["t0k-9\n", "t0k-9\r\n", "\nt0k-9\n"] {
            let masker = Masker::new([secret]);
            assert_eq!(masker.mask("it is t0k-9"), "it is ***", "{secret:?}");
        }
    }

    #[test]
    fn a_secret_cut_with_its_line_is_masked_before_the_cut() {
        let secret = "sk-live-0123456789abcdef";
        let masker = Masker::new([secret]);
        let cut = format!("xxxx{} … [line cut at 64 KiB]", &secret[..12]);
        assert_eq!(masker.mask(&cut), "xxxx*** … [line cut at 64 KiB]");
        // Its base64 cut short too.
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let cut = format!("a {} … [line cut at 64 KiB]", &b64[..10]);
        assert_eq!(masker.mask(&cut), "a *** … [line cut at 64 KiB]");
        // A beginning shorter than MIN_PART, or not at the cut, is left alone.
        let short = format!("{} … [line cut at 64 KiB]", &secret[..MIN_PART - 1]);
        assert_eq!(masker.mask(&short), short);
        assert_eq!(masker.mask(&secret[..12]), &secret[..12]);
        assert_eq!(
            masker.mask_truncated(&format!("page: {}", &secret[..9])),
            "page: ***"
        );
    }
}
