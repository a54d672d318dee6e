//! TOML errors as text that is safe to print: the line, the column and the message, with the
//! value of anything that may be a secret masked.
//!
//! toml's own `Display` quotes the offending line, and a task file's offending line is often
//! its `secret = ...` line; cron mails whatever keyhook prints, so the excerpt is rebuilt here.

/// What is shown in place of a masked value.
const MASK: &str = "***";

/// `invalid TOML at line L, column C: message`, then the line itself with secrets masked.
pub fn describe(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return format!("invalid TOML: {}", mask_quoted(message, None));
    };
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_number = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let line = text[line_start..line_end].trim_end_matches('\r');
    let (shown, key) = safe_line(line);
    let message = match shown {
        Shown::Whole => message.to_string(),
        Shown::Masked => mask_quoted(message, key.as_deref()),
    };
    let excerpt = match shown {
        Shown::Whole => line.to_string(),
        Shown::Masked => masked_line(line, key.as_deref()),
    };
    format!(
        "invalid TOML at line {line_number}, column {column}: {message}\n  {line_number} | {excerpt}"
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Shown {
    Whole,
    Masked,
}

/// Whether `line` may be shown as it is, and the key it assigns, if it assigns one.
fn safe_line(line: &str) -> (Shown, Option<String>) {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return (Shown::Whole, None);
    }
    if is_table_header(trimmed) {
        return (Shown::Whole, None);
    }
    let Some((key, _)) = trimmed.split_once('=') else {
        // A value on a line of its own (inside a multi-line array, say): whose is it?
        return (Shown::Masked, None);
    };
    let key = key.trim().trim_matches(['"', '\'']).to_string();
    if says_secret(line) || holds_credential_url(line) || !is_plain_key(&key) {
        (Shown::Masked, Some(key).filter(|key| is_plain_key(key)))
    } else {
        (Shown::Whole, Some(key))
    }
}

/// Whether `line` holds a URL with a credential in it (a password, a `token` parameter):
/// one that [`shown_url`](super::url::shown_url) would mask.
fn holds_credential_url(line: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '[' | ']'))
        .filter(|word| word.contains("://"))
        .any(|url| super::url::shown_url(url) != url)
}

/// Whether a key name (or a line) says it holds a secret.
pub fn says_secret(text: &str) -> bool {
    text.to_ascii_lowercase().contains("secret")
}

fn is_table_header(trimmed: &str) -> bool {
    trimmed.starts_with('[')
        && !trimmed.contains('=')
        && !trimmed.contains('"')
        && !trimmed.contains('\'')
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
}

fn masked_line(line: &str, key: Option<&str>) -> String {
    let indent = &line[..line.len() - line.trim_start().len()];
    match key {
        Some(key) => format!("{indent}{key} = {MASK}"),
        None => format!("{indent}{MASK}"),
    }
}

/// Masks every `backticked` part of a message except the key itself (`duplicate key
/// \`secret\``) and field names (`unknown field \`x\`, expected one of ...`).
fn mask_quoted(message: &str, key: Option<&str>) -> String {
    if message.starts_with("unknown field") {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (index, part) in parts.enumerate() {
        out.push('`');
        let inside_quotes = index % 2 == 0;
        if inside_quotes && Some(part) != key {
            out.push_str(MASK);
        } else {
            out.push_str(part);
        }
    }
    out
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct File {
        name: Option<String>,
        secret: Option<String>,
        previous_secrets: Option<Vec<String>>,
        url: Option<String>,
    }

    fn describe_text(text: &str) -> String {
        let error = toml::from_str::<File>(text).expect_err("the text is invalid");
        describe(text, &error)
    }

    #[test]
    fn no_secret_value_survives_any_error() {
        let cases = [
            "secret = \"hunter2hunter2\" trailing\n",
            "name = \"x\"\nsecret = \"hunter2hunter2\"\nsecret = \"hunter2hunter2\"\n",
            "previous_secrets = [\"hunter2hunter2\", 5]\n",
            "previous_secrets = [\n  \"hunter2hunter2\",\n  5,\n]\n",
            "previous_secrets = [\n  \"hunter2hunter2\" \"hunter2hunter2\",\n]\n",
            "secret = 'hunter2hunter2\n",
            "url = \"http://x/\" secret = \"hunter2hunter2\"\n",
            "\"secret\" = \"hunter2hunter2\" x\n",
            "secret = hunter2hunter2\n",
            // A url's password or token is as secret (masked everywhere else).
            "url = \"http://bob:hunter2hunter2@127.0.0.1/h\" x\n",
            "url = \"http://127.0.0.1/h?api_token=hunter2hunter2\" x\n",
        ];
        for text in cases {
            let described = describe_text(text);
            assert!(
                !described.contains("hunter2"),
                "{text:?} gave {described:?}"
            );
            assert!(described.contains("line "), "{described}");
        }
    }

    #[test]
    fn ordinary_errors_keep_their_line_and_message() {
        let described = describe_text("name = \"x\"\nurl = \"http://x/\" oops\n");
        assert!(
            described.starts_with("invalid TOML at line 2, column 19: "),
            "{described}"
        );
        assert!(
            described.ends_with("2 | url = \"http://x/\" oops"),
            "{described}"
        );
        let described = describe_text("name = 5\n");
        assert!(described.contains("`5`"), "{described}");
    }

    #[test]
    fn masked_lines_name_their_key_and_the_duplicate() {
        let described = describe_text("secret = \"a-secret-value\"\nsecret = \"a-secret-value\"\n");
        assert!(described.contains("line 2"), "{described}");
        assert!(described.contains("duplicate key"), "{described}");
        assert!(described.ends_with("2 | secret = ***"), "{described}");
    }

    #[test]
    fn quoted_parts_are_masked_except_the_key() {
        assert_eq!(
            mask_quoted(
                "invalid type: integer `5`, expected a string",
                Some("secret")
            ),
            "invalid type: integer `***`, expected a string"
        );
        assert_eq!(
            mask_quoted("duplicate key `secret`", Some("secret")),
            "duplicate key `secret`"
        );
    }
}
