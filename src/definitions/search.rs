//! A saved search: `searches/<stem>.toml` with a name, an SQL condition and a description.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Problem, read_toml_text, stem};
use crate::licenses::macros::{self, Template};

/// The TOML form of a search.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchFile {
    /// What users and task files call the search.
    name: String,
    /// An SQL condition over the `LicenseKeys` table, with date placeholders; where it is in
    /// the file, for errors that name a line and column.
    sql: toml::Spanned<String>,
    /// What the search is for.
    #[serde(default)]
    description: Option<String>,
}

/// A loaded search, its placeholders already parsed.
#[derive(Debug, Clone)]
pub struct Search {
    pub stem: String,
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// The condition as written.
    pub sql: String,
    pub template: Template,
}

impl Search {
    /// Loads and validates one search file.
    pub fn load(path: &Path) -> Result<Search, Vec<Problem>> {
        let (file, text): (SearchFile, String) = read_toml_text(path)?;
        Search::validate(path, file, &text).map_err(|problem| vec![problem])
    }

    fn validate(path: &Path, file: SearchFile, text: &str) -> Result<Search, Problem> {
        let origin = value_origin(text, file.sql.span(), file.sql.get_ref());
        let sql = file.sql.into_inner();
        let problem = |message: String| Problem {
            file: path.to_path_buf(),
            message,
        };
        if file.name.trim().is_empty() {
            return Err(problem("field `name` is empty".into()));
        }
        if sql.trim().is_empty() {
            return Err(problem("field `sql` is empty".into()));
        }
        let template = match origin {
            Some(origin) => macros::parse(&sql)
                .map(|template| template.moved_to(origin))
                .map_err(|error| problem(format!("field `sql`: {}", error.moved_to(origin)))),
            // Escapes in the value: its positions are not the file's, so they are said to be
            // within the value.
            None => macros::parse(&sql)
                .map_err(|error| problem(format!("field `sql` (within its value): {error}"))),
        }?;
        Ok(Search {
            stem: stem(path),
            path: path.to_path_buf(),
            name: file.name,
            description: file.description,
            sql,
            template,
        })
    }
}

/// Where a string value's first character is in `text` (line and column, from 1, in
/// characters), when the value is written there as it reads (no escapes): then a position
/// within it is a position in the file. `span` is the value's, quotes included.
fn value_origin(text: &str, span: std::ops::Range<usize>, value: &str) -> Option<(usize, usize)> {
    let raw = text.get(span.clone())?;
    let quotes = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3
    } else {
        1
    };
    let inner = raw.get(quotes..raw.len().checked_sub(quotes)?)?;
    // A multi-line string drops a line break right after its opening quotes.
    let skipped = match quotes {
        3 if inner.starts_with("\r\n") => 2,
        3 if inner.starts_with('\n') => 1,
        _ => 0,
    };
    if &inner[skipped..] != value {
        return None;
    }
    let start = span.start + quotes + skipped;
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |line| line.chars().count())
        + 1;
    Some((line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Option<(usize, usize)> {
        let file: SearchFile = toml::from_str(text).unwrap();
        value_origin(text, file.sql.span(), file.sql.get_ref())
    }

    #[test]
    fn a_value_written_as_it_reads_starts_where_the_file_says() {
        assert_eq!(origin("name = \"s\"\nsql = \"ID > 0\"\n"), Some((2, 8)));
        assert_eq!(origin("# c\nname = \"s\"\nsql = 'ID > 0'"), Some((3, 8)));
        assert_eq!(
            origin("name = \"s\"\nsql = \"\"\"\nID > 0\nAND 1\"\"\"\n"),
            Some((3, 1))
        );
        assert_eq!(
            origin("name = \"Zoë\"\nsql = \"\"\"ID > 0\"\"\""),
            Some((2, 10))
        );
        assert_eq!(origin("name = \"s\"\nsql = \"Email = \\\"x\\\"\"\n"), None);
    }
}
