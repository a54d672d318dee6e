//! A search's condition in PostgreSQL's dialect: placeholders become `$1`, `$2`, ..., and a
//! bracketed QLM column (`[Email]`) its bare name. The same pass lists every name called like a
//! function, for the guard to judge, and refuses what it cannot read safely (dollar quoting,
//! a parameter written by hand, `OPERATOR(...)`).

use crate::licenses::refusal::Refusal;

/// A name followed by `(`: a function call, a keyword, or a type with a modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The schema it is qualified with, if any (`pg_catalog` in `pg_catalog.lower(...)`).
    pub schema: Option<String>,
    /// Lower-cased unless it was quoted.
    pub name: String,
}

/// The condition rewritten, and the calls in it.
#[derive(Debug, PartialEq, Eq)]
pub struct Translated {
    pub sql: String,
    pub calls: Vec<Call>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    Dot,
    Open,
    Other,
}

/// Rewrites `condition` (a template's SQL, placeholders as `?N`); the error says what was
/// refused.
pub fn translate(condition: &str) -> Result<Translated, Refusal> {
    let chars: Vec<char> = condition.chars().collect();
    let (mut out, mut tokens, mut at) = (String::new(), Vec::new(), 0);
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        at = match c {
            '\'' => copy_literal(&chars, at, &mut out, escapes_backslash(&chars, at))?,
            '"' => {
                let end = copy_literal(&chars, at, &mut out, false)?;
                let quoted: String = chars[at + 1..end - 1].iter().collect();
                tokens.push(Token::Name(quoted.replace("\"\"", "\"")));
                end
            }
            '-' if next == Some('-') => copy_line_comment(&chars, at, &mut out),
            '/' if next == Some('*') => copy_block_comment(&chars, at, &mut out)?,
            '?' => parameter(&chars, at, &mut out, &mut tokens)?,
            '$' => return Err(Refusal::Dollar),
            '[' => bracketed(&chars, at, &mut out, &mut tokens)?,
            c if c.is_alphabetic() || c == '_' => name(&chars, at, &mut out, &mut tokens)?,
            c => {
                out.push(c);
                if !c.is_whitespace() {
                    tokens.push(match c {
                        '.' if !number_before(&tokens, &out) => Token::Dot,
                        '(' => Token::Open,
                        _ => Token::Other,
                    });
                }
                at + 1
            }
        };
    }
    Ok(Translated {
        sql: out,
        calls: calls(&tokens),
    })
}

/// A `.` right after a digit is a decimal point, not a qualifier.
fn number_before(tokens: &[Token], out: &str) -> bool {
    let before = out[..out.len() - 1].chars().last();
    matches!(tokens.last(), Some(Token::Other)) && before.is_some_and(|c| c.is_ascii_digit())
}

/// `E'...'` reads backslashes as escapes: only when the `E` stands alone before the quote.
fn escapes_backslash(chars: &[char], at: usize) -> bool {
    at >= 1
        && matches!(chars[at - 1], 'e' | 'E')
        && (at < 2 || !(chars[at - 2].is_alphanumeric() || chars[at - 2] == '_'))
}

/// Copies a `'...'` or `"..."` (doubled quotes inside) and returns the index after it.
fn copy_literal(
    chars: &[char],
    start: usize,
    out: &mut String,
    backslash: bool,
) -> Result<usize, Refusal> {
    let quote = chars[start];
    out.push(quote);
    let mut at = start + 1;
    while at < chars.len() {
        let c = chars[at];
        out.push(c);
        if backslash && c == '\\' && at + 1 < chars.len() {
            out.push(chars[at + 1]);
            at += 2;
            continue;
        }
        if c == quote {
            if chars.get(at + 1) == Some(&quote) {
                out.push(quote);
                at += 2;
                continue;
            }
            return Ok(at + 1);
        }
        at += 1;
    }
    Err(Refusal::UnclosedQuote(quote))
}

fn copy_line_comment(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut at = start;
    while at < chars.len() && chars[at] != '\n' {
        out.push(chars[at]);
        at += 1;
    }
    at
}

/// PostgreSQL's block comments nest.
fn copy_block_comment(chars: &[char], start: usize, out: &mut String) -> Result<usize, Refusal> {
    let (mut depth, mut at) = (0, start);
    while at + 1 < chars.len() {
        let pair = (chars[at], chars[at + 1]);
        if pair == ('/', '*') || pair == ('*', '/') {
            depth += if pair.0 == '/' { 1 } else { -1 };
            out.push(pair.0);
            out.push(pair.1);
            at += 2;
            if depth == 0 {
                return Ok(at);
            }
            continue;
        }
        out.push(chars[at]);
        at += 1;
    }
    Err(Refusal::UnclosedComment)
}

/// `?N`, as the placeholder grammar writes it, becomes `$N`.
fn parameter(
    chars: &[char],
    start: usize,
    out: &mut String,
    tokens: &mut Vec<Token>,
) -> Result<usize, Refusal> {
    let digits: String = chars[start + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if digits.is_empty() {
        return Err(Refusal::QuestionMark);
    }
    out.push('$');
    out.push_str(&digits);
    tokens.push(Token::Other);
    Ok(start + 1 + digits.len())
}

/// `[Email]`: the placeholder grammar keeps only QLM's column names in brackets.
fn bracketed(
    chars: &[char],
    start: usize,
    out: &mut String,
    tokens: &mut Vec<Token>,
) -> Result<usize, Refusal> {
    let length = chars[start..]
        .iter()
        .position(|c| *c == ']')
        .ok_or(Refusal::UnclosedBracket)?;
    let column: String = chars[start + 1..start + length].iter().collect();
    out.push_str(column.trim());
    tokens.push(Token::Name(column.trim().to_ascii_lowercase()));
    Ok(start + length + 1)
}

fn name(
    chars: &[char],
    start: usize,
    out: &mut String,
    tokens: &mut Vec<Token>,
) -> Result<usize, Refusal> {
    let length = chars[start..]
        .iter()
        .position(|c| !(c.is_alphanumeric() || *c == '_' || *c == '$'))
        .unwrap_or(chars.len() - start);
    let word: String = chars[start..start + length].iter().collect();
    if word.contains('$') {
        return Err(Refusal::DollarName(word));
    }
    let lower = word.to_lowercase();
    if lower == "operator" {
        return Err(Refusal::Operator);
    }
    out.push_str(&word);
    // A number's exponent (`1e5`) is not a name; digits were pushed as `Other` tokens.
    let after_digit = out[..out.len() - word.len()]
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_digit());
    tokens.push(if after_digit {
        Token::Other
    } else {
        Token::Name(lower)
    });
    Ok(start + length)
}

/// Every name directly followed by `(`, with the schema it is qualified with.
fn calls(tokens: &[Token]) -> Vec<Call> {
    let mut found = Vec::new();
    for (index, window) in tokens.windows(2).enumerate() {
        let (Token::Name(name), Token::Open) = (&window[0], &window[1]) else {
            continue;
        };
        let schema = match (index.checked_sub(2), index.checked_sub(1)) {
            (Some(before), Some(dot)) if tokens[dot] == Token::Dot => match &tokens[before] {
                Token::Name(schema) => Some(schema.clone()),
                _ => None,
            },
            _ => None,
        };
        found.push(Call {
            schema,
            name: name.clone(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str) -> Call {
        Call {
            schema: None,
            name: name.into(),
        }
    }

    #[test]
    fn placeholders_and_brackets_become_postgresql() {
        let translated =
            translate("ExpiryDate > ?1 AND [Email] LIKE '%?2%' -- ?3\nAND x < ?2").unwrap();
        assert_eq!(
            translated.sql,
            "ExpiryDate > $1 AND Email LIKE '%?2%' -- ?3\nAND x < $2"
        );
        assert!(translated.calls.is_empty());
    }

    #[test]
    fn calls_are_found_outside_literals_and_comments() {
        let sql = "lower(Email) = 'pg_sleep(1)' /* set_config( /* nested */ ) */ \
                   AND pg_catalog.upper (\"FullName\") <> E'it\\'s' AND \"My Fn\"(1) AND 1.5e3 > 0";
        let calls = translate(sql).unwrap().calls;
        assert_eq!(
            calls,
            [
                call("lower"),
                Call {
                    schema: Some("pg_catalog".into()),
                    name: "upper".into()
                },
                call("My Fn"),
            ]
        );
    }

    #[test]
    fn unsafe_syntax_is_refused() {
        for sql in [
            "x = $$a$$",
            "x = $1",
            "x ? 'key'",
            "1 OPERATOR(public.+) 2",
            "x = 'open",
            "/* open",
        ] {
            assert!(translate(sql).is_err(), "{sql}");
        }
    }
}
