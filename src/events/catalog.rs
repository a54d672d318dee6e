//! The event catalog as data: which table changes are which events. The built-ins (over QLM's
//! schema, in `builtin.toml`) and a user's `events.toml` share one format and one validation.

mod check;

use std::path::Path;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::definitions::{Problem, read_toml};

/// The file in the configuration folder where users add their own sources.
pub const FILE: &str = "events.toml";

/// The built-in catalog, in the format of [`FILE`].
pub const BUILTIN: &str = include_str!("builtin.toml");

/// What `origin` says for the built-in sources.
pub const BUILTIN_ORIGIN: &str = "built-in";

/// Every event type keyhook knows, built-ins first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub sources: Vec<Source>,
}

/// One table whose changes are events.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The table, as named in the license database.
    pub table: String,
    /// The column that identifies a row: the event's row key; events of one key keep their
    /// commit order.
    pub key: String,
    /// What the payload of these events describes.
    pub payload: PayloadKind,
    /// The events this table's changes fire.
    #[serde(rename = "event", default)]
    pub events: Vec<Event>,
    /// Where the source was read from: `built-in`, or the file's path.
    #[serde(skip_deserializing)]
    pub origin: String,
}

/// What a payload describes, and so which payload shape dispatch builds from the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// QLM's `LicenseInfo`.
    License,
    /// QLM's `CustomerInfo`.
    Customer,
    /// A product row.
    Product,
    /// The row as it is, column by column.
    Generic,
}

/// One event type.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The canonical, dotted name (`license.activated`): what the outbox records.
    pub name: String,
    /// QLM's name for it (`license_activated`); default: `name` with `_` for `.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qlm: Option<String>,
    /// Other names a webhook may subscribe with (`activation.created`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The change that fires it.
    pub operation: Operation,
    /// SQL over the OLD (update, delete) and NEW (insert, update) row; the event fires only
    /// when it is true. It runs inside the writer's transaction: keep it cheap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The same condition in PostgreSQL's SQL, for a license database on a server. Required
    /// there when `condition` is set: SQLite's SQL is not translated (`ifnull`, `IS NOT` and
    /// 0/1 comparisons differ), so each dialect's text is what the user wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_postgres: Option<String>,
    /// One line for `keyhook events catalog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    source: Vec<Source>,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Insert, Operation::Update, Operation::Delete];

    /// `insert`, `update`, `delete`.
    pub fn word(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    /// The row the snapshot and key are taken from.
    pub fn row(self) -> &'static str {
        match self {
            Operation::Delete => "OLD",
            _ => "NEW",
        }
    }
}

impl Event {
    /// QLM's name for the event.
    pub fn qlm_name(&self) -> String {
        self.qlm
            .clone()
            .unwrap_or_else(|| self.name.replace('.', "_"))
    }

    /// Every name it answers to: canonical, QLM's, aliases.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec![self.name.clone(), self.qlm_name()];
        names.extend(self.aliases.iter().cloned());
        names
    }
}

impl Catalog {
    /// The built-in catalog alone.
    pub fn builtin() -> Catalog {
        let file: CatalogFile = match toml::from_str(BUILTIN) {
            Ok(file) => file,
            Err(error) => unreachable!("builtin.toml is tested to parse: {error}"),
        };
        Catalog {
            sources: with_origin(file.source, BUILTIN_ORIGIN),
        }
    }

    /// The built-ins and, if the folder has one, its `events.toml`, validated together.
    pub fn load(dir: &Path) -> Result<Catalog, Vec<Problem>> {
        let mut catalog = Catalog::builtin();
        let path = dir.join(FILE);
        if path.exists() {
            let file: CatalogFile = read_toml(&path)?;
            let origin = path.display().to_string();
            catalog.sources.extend(with_origin(file.source, &origin));
        }
        let problems = catalog.problems();
        if problems.is_empty() {
            Ok(catalog)
        } else {
            Err(problems)
        }
    }

    /// The event called `name` in either style or by an alias, and its source.
    pub fn find(&self, name: &str) -> Option<(&Source, &Event)> {
        self.events()
            .find(|(_, event)| event.names().iter().any(|known| known == name))
    }

    /// Every (source, event), in catalog order.
    pub fn events(&self) -> impl Iterator<Item = (&Source, &Event)> {
        self.sources
            .iter()
            .flat_map(|source| source.events.iter().map(move |event| (source, event)))
    }

    /// The tables, each once (case-insensitively), in catalog order.
    pub fn tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for source in &self.sources {
            if !tables.iter().any(|t| t.eq_ignore_ascii_case(&source.table)) {
                tables.push(&source.table);
            }
        }
        tables
    }

    /// The key column of `table`, and its events of `operation`, in catalog order.
    pub fn events_of(&self, table: &str, operation: Operation) -> (String, Vec<&Event>) {
        let mut key = String::new();
        let mut events = Vec::new();
        for source in self
            .sources
            .iter()
            .filter(|s| s.table.eq_ignore_ascii_case(table))
        {
            key.clone_from(&source.key);
            events.extend(source.events.iter().filter(|e| e.operation == operation));
        }
        (key, events)
    }
}

fn with_origin(mut sources: Vec<Source>, origin: &str) -> Vec<Source> {
    for source in &mut sources {
        source.origin = origin.to_string();
    }
    sources
}

/// SQLite's words for a failure, without rusqlite's wrapping.
pub fn sqlite_message(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

/// The table's column names in order; empty when there is no such table.
pub fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    statement.query_map([table], |row| row.get(0))?.collect()
}

/// `"name"`, with inner quotes doubled: an SQL identifier whatever it holds.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests;
