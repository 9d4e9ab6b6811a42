//! Escaping text for the two markup formats gpuvet writes, JUnit XML and the HTML report.
//!
//! One rule serves both: what XML 1.0 accepts in element content and attribute values is also
//! safe in HTML5 (which knows `&apos;` and numeric references). Characters XML cannot carry at
//! all, most control characters, are dropped, so a device name or error message with a stray
//! byte never breaks a CI system's parser.

/// Text safe in XML 1.0 and HTML content and attribute values: markup characters escaped,
/// characters XML cannot carry at all (most control characters) dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute values normalise raw newlines and tabs to spaces: keep them as refs.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_never_break_the_document() {
        assert_eq!(
            escape("a<b>&\"c'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#10;"
        );
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }
}
