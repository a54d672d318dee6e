//! Text that came from outside (a receiver's answer, a request's body and headers, a license
//! row) made safe to put on a terminal: control characters escaped, length bounded.
//!
//! A response body with `\x1b[2J` or `\r` would otherwise rewrite the user's screen or hide
//! a line in the mail cron sends. `--json` output keeps the exact text (JSON-escaped); only
//! what is shown to a person goes through here.

/// How many characters of a request body `listen` shows.
pub const BODY_CHARS: usize = 16 * 1024;

/// `text` on one line: every control or invisible formatting character escaped (`\r`,
/// `\u{1b}`, ...), and at most `max_chars` characters kept.
pub fn line(text: &str, max_chars: usize) -> String {
    escape(text, max_chars, false)
}

/// Like [`line`], but line breaks are kept, for multi-line bodies.
pub fn block(text: &str, max_chars: usize) -> String {
    escape(text, max_chars, true)
}

/// [`line`] with no bound beyond what the caller already applied.
pub fn short(text: &str) -> String {
    line(text, usize::MAX)
}

fn escape(text: &str, max_chars: usize, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_add(32)));
    for (shown, (index, c)) in text.char_indices().enumerate() {
        if shown == max_chars {
            let rest = text[index..].chars().count();
            out.push_str(&format!("… ({rest} more characters not shown)"));
            break;
        }
        if c == '\n' && keep_newlines {
            out.push(c);
        } else if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Controls (C0, DEL, C1) and the invisible characters that reorder or hide text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        let cases = [
            ("ok", "ok"),
            ("\u{1b}[2Jgone", "\\u{1b}[2Jgone"),
            ("line\rover", "line\\rover"),
            ("a\nb", "a\\nb"),
            ("tab\there", "tab\\there"),
            ("c1\u{9b}x", "c1\\u{9b}x"),
            ("rtl\u{202E}txt", "rtl\\u{202e}txt"),
            ("café ✓", "café ✓"),
        ];
        for (input, shown) in cases {
            assert_eq!(short(input), shown, "{input:?}");
        }
    }

    #[test]
    fn blocks_keep_line_breaks_but_not_carriage_returns() {
        assert_eq!(block("a\r\nb\u{7}", 100), "a\\r\nb\\u{7}");
    }

    #[test]
    fn long_text_is_cut_and_says_how_much_is_left() {
        assert_eq!(line("abcdef", 4), "abcd… (2 more characters not shown)");
        assert_eq!(line("abcd", 4), "abcd");
        let shown = block(&"x".repeat(50_000), BODY_CHARS);
        assert!(shown.starts_with(&"x".repeat(BODY_CHARS)));
        assert!(
            shown.ends_with("x… (33616 more characters not shown)"),
            "{shown}"
        );
    }
}

/// A name as one word of a shell command the user can copy: as it is when it holds only
/// letters, digits and `._-/@+:,%=`, else in single quotes (a `'` in it as `'\''`), so
/// `keyhook enable 'CRM activations'` is what is suggested, not two arguments.
pub fn shell_word(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/@+:,%=".contains(c));
    match plain {
        true => name.to_string(),
        false => format!("'{}'", name.replace('\'', r"'\''")),
    }
}

#[cfg(test)]
mod shell_word_tests {
    use super::shell_word;

    #[test]
    fn a_name_is_one_shell_word() {
        assert_eq!(shell_word("renewals"), "renewals");
        assert_eq!(shell_word("CRM activations"), "'CRM activations'");
        assert_eq!(shell_word("O'Brien"), r"'O'\''Brien'");
        assert_eq!(shell_word("a;rm -rf"), "'a;rm -rf'");
        assert_eq!(shell_word(""), "''");
    }
}
