//! ANSI colours (SGR codes) of log lines as HTML spans; everything else is escaped.

/// `line` as HTML: text escaped, SGR colour and bold codes as `<span class="…">`, other
/// escape sequences dropped.
pub fn to_html(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut open = false;
    let mut rest = line;
    while let Some(start) = rest.find('\u{1b}') {
        escape_into(&mut out, &rest[..start]);
        let after = &rest[start + 1..];
        let Some(body) = after.strip_prefix('[') else {
            rest = after;
            continue;
        };
        let end = body
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(body.len());
        let (params, command) = (&body[..end], body[end..].chars().next());
        rest = body.get(end + 1..).unwrap_or("");
        if command != Some('m') {
            continue;
        }
        if open {
            out.push_str("</span>");
            open = false;
        }
        let classes: Vec<&str> = params.split(';').filter_map(class_of).collect();
        if !classes.is_empty() {
            out.push_str(&format!("<span class=\"{}\">", classes.join(" ")));
            open = true;
        }
    }
    escape_into(&mut out, rest);
    if open {
        out.push_str("</span>");
    }
    out
}

fn class_of(code: &str) -> Option<&'static str> {
    Some(match code {
        "1" => "ansi-bold",
        "30" | "90" => "ansi-black",
        "31" | "91" => "ansi-red",
        "32" | "92" => "ansi-green",
        "33" | "93" => "ansi-yellow",
        "34" | "94" => "ansi-blue",
        "35" | "95" => "ansi-magenta",
        "36" | "96" => "ansi-cyan",
        "37" | "97" => "ansi-white",
        _ => return None,
    })
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn colours_become_spans_and_markup_is_escaped() {
        assert_eq!(
            to_html("\u{1b}[31merror\u{1b}[0m: <b>&"),
            "<span class=\"ansi-red\">error</span>: &lt;b&gt;&amp;"
        );
        assert_eq!(
            to_html("\u{1b}[1;32mok"),
            "<span class=\"ansi-bold ansi-green\">ok</span>"
        );
        assert_eq!(to_html("\u{1b}[2Kcleared"), "cleared");
        assert_eq!(to_html("broken \u{1b}["), "broken ");
    }
}
