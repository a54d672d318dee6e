//! TOML errors as text that is safe to print: the line, the column and the message, with the
//! value of anything that may be a secret masked.
//!
//! toml's own `Display` quotes the offending line, and a task file's offending line is often
//! its `secret = ...` line; cron mails whatever keyhook prints, so the excerpt is rebuilt here.

/// What is shown in place of a masked value.
const MASK: &str = "***";

/// `invalid TOML at line L, column C: message`, then the line itself with secrets masked.
pub fn describe(text: &str, error: &toml::de::Error) -> String {
    describe_masked(text, error, false)
}

/// [`describe`], the line's value masked whatever it is when `mask`: a line already said as
/// an entry at fault, met again by a later problem.
fn describe_masked(text: &str, error: &toml::de::Error, mask: bool) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return format!("invalid TOML: {}", mask_quoted(message, None));
    };
    let start = crate::bytes::floor_char_boundary(text, span.start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_number = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let line = text[line_start..line_end].trim_end_matches('\r');
    let (mut shown, key) = safe_line(line);
    // An unknown key is often a misspelled `secret` (`secert`, `api_key`): its value is
    // never shown, only its name.
    if mask || message.starts_with("unknown field") && !is_table_header(line.trim()) {
        shown = Shown::Masked;
    }
    // A missing key's span is the table that lacks it: no line of it says more.
    if message.starts_with("missing field") {
        // The name is one of keyhook's own fields.
        return format!("invalid TOML at line {line_number}, column {column}: {message}");
    }
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

/// How many problems of one file are said at most: the first in the file.
const MAX_SAID: usize = 20;
/// How many are looked for: toml does not find them in file order (an unknown key comes
/// before the values above it), so more than [`MAX_SAID`] are found to say the first ones.
/// Each is another parse of the whole file.
const MAX_FOUND: usize = 5 * MAX_SAID;

/// Parses `text` as `T`, saying every way valid TOML does not fit `T` (an unknown key, a value
/// of the wrong type, a missing key), not only the first: the entry at fault (its lines, or a
/// whole table under an unknown header) is blanked out in a copy of the same length, so lines
/// and columns stay the file's, and the copy is read again; a key missing from a table takes
/// the table out of the copy the same way. A syntax error is said alone: past it nothing can
/// be read; so is a key missing at the top. Returns the problems, and the value the file makes without the
/// entries at fault, when it makes one (nothing required is missing): its other fields can
/// then be checked too.
pub fn parse_partly<T: serde::de::DeserializeOwned>(text: &str) -> (Option<T>, Vec<String>) {
    let mut error = match toml::from_str::<T>(text) {
        Ok(value) => return (Some(value), Vec::new()),
        Err(error) => error,
    };
    let at = |error: &toml::de::Error| error.span().map_or(usize::MAX, |span| span.start);
    let mut said = vec![(at(&error), describe(text, &error))];
    if text.parse::<toml::Table>().is_err() {
        return (None, in_file_order(said));
    }
    let mut copy = text.as_bytes().to_vec();
    let mut blanked = Vec::new();
    loop {
        if said.len() > MAX_SAID && said.len() >= MAX_FOUND {
            break;
        }
        let Some(span) = error.span() else { break };
        // A key missing from a table: the table goes whole (its unknown keys were said
        // before), and the rest of the file is read on. One missing at the top: nothing to
        // take away.
        if error.message().starts_with("missing field") && !at_header(&copy, &span) {
            break;
        }
        let (name, end) = blank_entry(&mut copy, span);
        blanked.extend(name);
        let Some(next) = blank_until_valid(&mut copy, end) else {
            break;
        };
        error = match toml::from_str::<T>(next) {
            Ok(value) => return (Some(value), in_file_order(said)),
            Err(error) => error,
        };
        let missing_blanked = blanked
            .iter()
            .any(|key| error.message() == format!("missing field `{key}`"));
        if missing_blanked {
            break;
        }
        let blanked_line = error.span().is_some_and(|span| {
            let start = span.start.min(copy.len());
            let line = line_start(&copy, start);
            // Blanked: the copy's line is no longer the file's.
            copy.get(line..=start) != text.as_bytes().get(line..=start)
        });
        said.push((at(&error), describe_masked(text, &error, blanked_line)));
    }
    (None, in_file_order(said))
}

/// Whether `span` names a table's header (toml points at the table a missing key belongs to;
/// at nothing, for one missing at the top).
fn at_header(text: &[u8], span: &std::ops::Range<usize>) -> bool {
    let start = span.start.min(text.len());
    let line = line_start(text, start);
    !span.is_empty()
        && text[line..line_end(text, line)]
            .trim_ascii_start()
            .starts_with(b"[")
}

/// The problems from the top of the file down (toml finds an unknown key before the values
/// above it), the first [`MAX_SAID`] of them.
fn in_file_order(mut said: Vec<(usize, String)>) -> Vec<String> {
    said.sort_by_key(|(at, _)| *at);
    let more = said.len() > MAX_SAID;
    let mut said: Vec<String> = said
        .into_iter()
        .take(MAX_SAID)
        .map(|(_, message)| message)
        .collect();
    if more {
        said.push(format!(
            "(at most {MAX_SAID} problems of a file are said, the first ones: fix these, then \
             run `keyhook check` again for the rest)"
        ));
    }
    said
}

/// The copy, once it is valid TOML again: a multi-line value whose first line was blanked
/// (an array, a string) leaves lines that are not, and they are blanked one by one after
/// `end`, up to the next table header. `None` if it does not become valid.
fn blank_until_valid(text: &mut [u8], mut end: usize) -> Option<&str> {
    loop {
        // Only whole lines of ASCII spaces and `#` replace whole lines: still UTF-8.
        let valid = std::str::from_utf8(text)
            .ok()?
            .parse::<toml::Table>()
            .is_ok();
        if valid {
            return std::str::from_utf8(text).ok();
        }
        let next = end + 1;
        if next >= text.len() {
            return None;
        }
        let next_end = line_end(text, next);
        if text[next..next_end].trim_ascii_start().starts_with(b"[") {
            return None;
        }
        blank(&mut text[next..next_end]);
        end = next_end;
    }
}

/// Where the line holding byte `at` of `text` starts.
fn line_start(text: &[u8], at: usize) -> usize {
    text[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

/// Where the line that starts at or holds byte `from` of `text` ends (its `\n`, or the end).
fn line_end(text: &[u8], from: usize) -> usize {
    text[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| from + i)
}

/// Lines made `#` and spaces: the first byte `#`, every other byte but a line break a space.
fn blank(line: &mut [u8]) {
    for (index, byte) in line.iter_mut().enumerate() {
        if *byte != b'\n' {
            *byte = if index == 0 { b'#' } else { b' ' };
        }
    }
}

/// Blanks the lines of `span` (with the table below them when the first is a table header)
/// to spaces behind a `#`; returns the key or table name they held, and where they end.
fn blank_entry(text: &mut [u8], span: std::ops::Range<usize>) -> (Option<String>, usize) {
    let start = span.start.min(text.len());
    let first = line_start(text, start);
    let first_end = line_end(text, first);
    let line = String::from_utf8_lossy(&text[first..first_end]).into_owned();
    let header = line.trim_start().starts_with('[');
    let mut end = line_end(
        text,
        span.end
            .max(start + 1)
            .min(text.len())
            .saturating_sub(1)
            .max(first),
    );
    if header {
        // The table's own lines go with it, up to the next header.
        while end < text.len() {
            let next = end + 1;
            let next_end = line_end(text, next);
            if text[next..next_end].trim_ascii_start().starts_with(b"[") {
                break;
            }
            end = next_end;
        }
    }
    blank(&mut text[first..end]);
    // A dotted key or table name is known by its last part.
    let name = match header {
        true => Some(line.trim().trim_matches(['[', ']']).to_string()),
        false => safe_line(&line).1,
    };
    let name = name.and_then(|name| {
        let last = name.rsplit('.').next()?;
        Some(last.trim().trim_matches(['"', '\'']).to_string())
    });
    (name, end)
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
    // A value on a line of its own (inside a multi-line array, say): whose is it? A
    // secret's `=` padding (`whsec_...==`) is no assignment either.
    let Some((key, _)) = trimmed
        .split_once('=')
        .filter(|(_, value)| !value.trim().is_empty() && !value.starts_with('='))
    else {
        return (Shown::Masked, None);
    };
    // Only a bare key (no quotes) is taken for one: in `"whsec_...=" "whsec_...",` (a
    // value on a line of its own) the `=` is a secret's padding, not an assignment.
    let bare = !key.contains(['"', '\'']);
    let key = key.trim().trim_matches(['"', '\'']).to_string();
    if !bare || says_secret(line) || holds_credential_url(line) || !is_plain_key(&key) {
        (
            Shown::Masked,
            Some(key).filter(|key| bare && is_plain_key(key)),
        )
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
    // A value toml repeats in double quotes (`invalid type: string "whsec_..."`).
    let message = mask_double_quoted(message);
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

/// Every `"..."` part of `message` as `"***"`.
fn mask_double_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (index, part) in message.split('"').enumerate() {
        if index > 0 {
            out.push('"');
        }
        out.push_str(if index % 2 == 1 { MASK } else { part });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value when the file has no problem, else every problem.
    fn parse_all<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Vec<String>> {
        match parse_partly(text) {
            (Some(value), said) if said.is_empty() => Ok(value),
            (_, said) => Err(said),
        }
    }

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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        name: String,
        count: Option<u32>,
        inner: Option<Inner>,
        previous_secrets: Option<Vec<String>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        url: String,
        secret: Option<String>,
    }

    #[test]
    fn every_key_that_does_not_fit_is_said_with_its_own_line() {
        let text = "name = \"x\"\ncount = \"many\"\ncolour = 1\n[inner]\nurl = 5\nsecret = [\"hunter2hunter2\"]\nextra = true\n";
        let said = parse_all::<Strict>(text).unwrap_err();
        let lines: Vec<&str> = said.iter().map(|s| s.lines().next().unwrap()).collect();
        assert_eq!(said.len(), 5, "{said:#?}");
        for (line, what) in [
            (2, "invalid type: string"),
            (3, "unknown field `colour`"),
            (5, "invalid type: integer"),
            (6, "invalid type: sequence"),
            (7, "unknown field `extra`"),
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&format!("line {line},")) && l.contains(what)),
                "line {line}: {what} in {said:#?}"
            );
        }
        assert!(!said.concat().contains("hunter2"), "{said:#?}");
    }

    #[test]
    fn an_unknown_table_goes_with_its_keys_and_a_blanked_required_key_is_not_said_missing() {
        let text = "name = 7\n[innr]\nurl = \"http://x\"\n[inner]\nurl = \"http://y\"\n";
        let said = parse_all::<Strict>(text).unwrap_err();
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(
            said[0].contains("line 1,") && said[0].contains("invalid type"),
            "{said:#?}"
        );
        assert!(said[1].contains("line 2,") && said[1].contains("unknown field `innr`"));
        // The value without the entries at fault, when nothing required is missing.
        let (value, said) = parse_partly::<Strict>("name = \"n\"\ncount = -1\n");
        assert_eq!(said.len(), 1);
        assert_eq!(
            value.map(|v| (v.name, v.count)),
            Some(("n".to_string(), None))
        );
        // A key really missing is said, once.
        let said = parse_all::<Strict>("count = 1\nmore = 2\n").unwrap_err();
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(
            said.iter().any(|s| s.contains("missing field `name`")),
            "{said:#?}"
        );
    }

    #[test]
    fn a_multi_line_value_goes_whole_and_a_long_list_says_it_stops() {
        let text = "colour = [\n  \"a\",\n  \"b\",\n]\nname = 5\n";
        let said = parse_all::<Strict>(text).unwrap_err();
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(said[1].contains("line 5,"), "{said:#?}");
        let many: String = (0..25).map(|n| format!("k{n:02} = 1\n")).collect();
        let said = parse_all::<Strict>(&format!("name = \"x\"\n{many}")).unwrap_err();
        assert_eq!(said.len(), MAX_SAID + 1, "{said:#?}");
        assert!(said[MAX_SAID].contains("at most 20 problems"), "{said:#?}");
        assert!(
            said[19].contains("line 21,"),
            "the first 20 in the file: {said:#?}"
        );
    }

    #[test]
    fn a_key_missing_from_a_table_does_not_hide_the_problems_after_it() {
        let text = "name = \"x\"\ncount = \"two\"\nk1 = 1\n[inner]\nlevel = \"x\"\n";
        let said = parse_all::<Strict>(text).unwrap_err();
        assert_eq!(said.len(), 4, "{said:#?}");
        assert!(said[0].contains("line 2,"), "{said:#?}");
        assert!(
            said[1].contains("line 3,") && said[1].contains("`k1`"),
            "{said:#?}"
        );
        assert!(said[2].contains("missing field `url`"), "{said:#?}");
        assert!(said[3].contains("`level`"), "{said:#?}");
        // One missing at the top is said, and stops there as before.
        let said = parse_all::<Strict>("count = 1\n[inner]\nurl = \"u\"\n").unwrap_err();
        assert_eq!(said.len(), 1, "{said:#?}");
        assert!(said[0].contains("missing field `name`"), "{said:#?}");
    }

    #[test]
    fn past_the_limit_the_first_problems_in_the_file_are_the_ones_said() {
        // toml finds the unknown keys of [inner] before `k0` above them.
        let many: String = (1..=25).map(|n| format!("k{n:02} = 1\n")).collect();
        let text = format!("name = \"x\"\nk00 = 1\n[inner]\nurl = \"u\"\n{many}");
        let said = parse_all::<Strict>(&text).unwrap_err();
        assert_eq!(said.len(), MAX_SAID + 1, "{said:#?}");
        assert!(
            said[0].contains("line 2,") && said[0].contains("k00"),
            "{said:#?}"
        );
        assert!(said[19].contains("line 23,"), "{said:#?}");
        assert!(said[MAX_SAID].contains("the first ones"), "{said:#?}");
    }

    #[test]
    fn a_syntax_error_is_said_alone() {
        let said = parse_all::<Strict>("name = \"x\"\ncount = = 3\ncolour = 1\n").unwrap_err();
        assert_eq!(said.len(), 1, "{said:#?}");
        assert!(said[0].contains("line 2"), "{said:#?}");
    }

    #[test]
    fn a_misspelled_key_or_a_value_line_with_padding_never_shows_its_value() {
        let secret = "whsec_lRNJ3DX9bo4oaC7qh9HayxorhaG6frVnLUXzyv3q36w=";
        for text in [
            format!("name = \"x\"\nprevious_secrets = \"{secret}\"\n"),
            "name = \"x\"\nprevious_secrets = [\n  whsec_LEAK6==\n]\n".to_string(),
            format!("secert = \"{secret}\"\n"),
            format!("api_key = \"{secret}\"\n"),
            format!("previous_secrets = [\n  \"{secret}\" \"{secret}\",\n]\n"),
            format!("previous_secrets = [\n  \"{secret}\", 5,\n]\n"),
        ] {
            let said = parse_all::<Strict>(&text).unwrap_err().concat();
            assert!(!said.contains("whsec_"), "{said}");
        }
        let said = parse_all::<Strict>(&format!("name = \"x\"\nsecert = \"{secret}\"\n"))
            .unwrap_err()
            .concat();
        assert!(
            said.contains("unknown field `secert`") && said.contains("secert = ***"),
            "{said}"
        );
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
