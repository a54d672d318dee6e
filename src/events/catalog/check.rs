//! Validation of the catalog: what is wrong in the files alone (names, duplicates, keys), and
//! what is wrong against the license database (tables, key columns, conditions).

use std::path::PathBuf;

use rusqlite::Connection;

use super::{
    BUILTIN_ORIGIN, Catalog, Event, Operation, Source, quote, sqlite_message, table_columns,
};
use crate::definitions::Problem;

/// Where a check reports a problem: the field, then what is wrong with it.
type Found<'a> = dyn FnMut(&str, String) + 'a;

impl Catalog {
    /// What is wrong in the files, without the database: names, duplicates, keys.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut seen: Vec<(String, String)> = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            let number = self.number_in_file(index);
            let mut problem = |field: &str, message: String| {
                problems.push(source.problem(number, field, message));
            };
            self.source_problems(index, source, &mut problem);
            for event in &source.events {
                let mut event_problem = |field: &str, message: String| {
                    problem(&format!("event `{}`: field `{field}`", event.name), message);
                };
                event_problems(event, &mut event_problem);
                taken_names(event, &source.origin, &mut seen, &mut event_problem);
            }
        }
        problems
    }

    /// What is wrong against the database: tables, key columns, conditions. Read-only.
    pub fn problems_in(&self, conn: &Connection) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            let index = self.number_in_file(index);
            let columns = match table_columns(conn, &source.table) {
                Ok(columns) if columns.is_empty() => {
                    let hint = match source.origin == BUILTIN_ORIGIN {
                        true => " (`keyhook db init` adds QLM's tables that are missing)",
                        false => "",
                    };
                    problems.push(source.problem(
                        index,
                        "table",
                        format!("the license database has no table `{}`{hint}", source.table),
                    ));
                    continue;
                }
                Ok(columns) => columns,
                Err(error) => {
                    problems.push(source.problem(
                        index,
                        "table",
                        format!("could not read its columns: {error}"),
                    ));
                    continue;
                }
            };
            if !columns.iter().any(|c| c.eq_ignore_ascii_case(&source.key)) {
                problems.push(source.problem(
                    index,
                    "key",
                    format!("table `{}` has no column `{}`", source.table, source.key),
                ));
            }
            for event in &source.events {
                if let Some(condition) = &event.condition
                    && let Err(error) =
                        conn.prepare(&condition_probe(&source.table, event.operation, condition))
                {
                    let message = format!(
                        "{}; write columns as {}",
                        sqlite_message(&error),
                        rows_named(event.operation)
                    );
                    problems.push(source.problem(
                        index,
                        &format!("event `{}`: field `condition`", event.name),
                        message,
                    ));
                }
            }
        }
        problems
    }

    /// The source's own fields (table, key, events), and a key that differs from the one an
    /// earlier source gives the same table.
    fn source_problems(&self, index: usize, source: &Source, problem: &mut Found) {
        if !is_identifier(&source.table) {
            problem("table", format!("`{}` is not a table name", source.table));
        } else if is_reserved(&source.table) {
            problem(
                "table",
                format!("`{}` is keyhook's or SQLite's own", source.table),
            );
        }
        if !is_identifier(&source.key) {
            problem("key", format!("`{}` is not a column name", source.key));
        }
        if source.events.is_empty() {
            problem("event", "the source has no [[source.event]]".into());
        }
        let other_key = self.sources[..index].iter().find(|s| {
            s.table.eq_ignore_ascii_case(&source.table) && !s.key.eq_ignore_ascii_case(&source.key)
        });
        if let Some(other) = other_key {
            problem(
                "key",
                format!(
                    "`{}`, but {} gives table `{}` the key `{}`",
                    source.key, other.origin, other.table, other.key
                ),
            );
        }
    }
}

/// An event's own fields: its names, and conditions that are empty or only for PostgreSQL.
fn event_problems(event: &Event, event_problem: &mut Found) {
    if !is_dotted(&event.name) {
        event_problem(
            "name",
            format!(
                "`{}` is not a dotted lowercase name such as `license.renewed`",
                event.name
            ),
        );
    }
    if let Some(qlm) = &event.qlm
        && !is_word(qlm)
    {
        event_problem(
            "qlm",
            format!("`{qlm}` is not a QLM-style name such as `license_renewed`"),
        );
    }
    for alias in &event.aliases {
        if !is_dotted(alias) && !is_word(alias) {
            event_problem("aliases", format!("`{alias}` is not an event name"));
        }
    }
    for (field, text) in [
        ("condition", &event.condition),
        ("condition_postgres", &event.condition_postgres),
    ] {
        if text.as_deref().is_some_and(|c| c.trim().is_empty()) {
            event_problem(
                field,
                "is empty; leave it out to fire on every change".into(),
            );
        }
    }
    if event.condition.is_none() && event.condition_postgres.is_some() {
        event_problem(
            "condition_postgres",
            "is set without `condition`: the event would fire on every change in \
             SQLite; write both"
                .into(),
        );
    }
}

/// Reports each of the event's names that an earlier event already has; `seen` holds every
/// name so far, with the event it belongs to.
fn taken_names(
    event: &Event,
    origin: &str,
    seen: &mut Vec<(String, String)>,
    event_problem: &mut Found,
) {
    let mut own = event.names();
    own.dedup();
    for name in own {
        match seen.iter().find(|(known, _)| *known == name) {
            Some((_, owner)) => {
                event_problem("name", format!("`{name}` is already the name of {owner}"))
            }
            None => seen.push((name, format!("`{}` ({})", event.name, origin))),
        }
    }
}

impl Catalog {
    /// Where source `index` stands in its own file (0 for the first): the built-ins come
    /// first in the catalog, and a user's `events.toml` counts its sources from 1.
    fn number_in_file(&self, index: usize) -> usize {
        let origin = &self.sources[index].origin;
        self.sources[..index]
            .iter()
            .filter(|source| source.origin == *origin)
            .count()
    }
}

impl Source {
    /// `index`: the source's place in its own file, from 0.
    fn problem(&self, index: usize, field: &str, message: String) -> Problem {
        let file = PathBuf::from(&self.origin);
        let field = match field.starts_with("event ") {
            true => field.to_string(),
            false => format!("field `{field}`"),
        };
        Problem {
            file,
            message: format!(
                "source {} (table `{}`): {field}: {message}",
                index + 1,
                self.table
            ),
        }
    }
}

/// A statement that compiles exactly when the condition would compile in the trigger: OLD and
/// NEW as the trigger has them, and a shadow copy of the table so that an unqualified column
/// (which a trigger cannot resolve) is an error here too.
fn condition_probe(table: &str, operation: Operation, condition: &str) -> String {
    let table = quote(table);
    let rows = match operation {
        Operation::Insert => format!("{table} AS NEW"),
        Operation::Update => format!("{table} AS OLD, {table} AS NEW"),
        Operation::Delete => format!("{table} AS OLD"),
    };
    format!("SELECT 1 FROM {rows}, {table} AS keyhook_shadow WHERE (\n{condition}\n)")
}

fn rows_named(operation: Operation) -> &'static str {
    match operation {
        Operation::Insert => "NEW.<column> (an insert has no OLD row)",
        Operation::Update => "OLD.<column> or NEW.<column>",
        Operation::Delete => "OLD.<column> (a delete has no NEW row)",
    }
}

fn is_identifier(name: &str) -> bool {
    !name.trim().is_empty() && !name.contains(['\0', '\n'])
}

fn is_reserved(table: &str) -> bool {
    let lower = table.to_ascii_lowercase();
    lower.starts_with("keyhook_") || lower.starts_with("sqlite_")
}

/// `license_renewed`: lowercase ASCII letters, digits and `_`, starting with a letter.
fn is_word(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `license.renewed`: two or more words joined by dots.
fn is_dotted(name: &str) -> bool {
    name.contains('.') && name.split('.').all(is_word)
}
