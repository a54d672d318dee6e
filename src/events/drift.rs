//! Whether the installed triggers still match their tables and the catalog. Triggers are
//! schema: `ALTER TABLE ... ADD COLUMN` leaves their column list (and so every snapshot)
//! without the new column, and a dropped and re-created table loses them. Read-only.

use rusqlite::{Connection, OptionalExtension};

use super::catalog::{Catalog, table_columns};
use super::outbox::{META, TablePlan, sql_hash};

/// One table's triggers, compared with what install would make now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TableState {
    /// Installed, and what install would make now.
    Current,
    /// In the catalog, never installed.
    NotInstalled,
    /// The table is not in the database.
    TableMissing,
    /// Recorded triggers are gone: the table was dropped and re-created, or they were dropped.
    TriggersMissing { triggers: Vec<String> },
    /// On a server: recorded triggers are there but disabled (`ALTER TABLE ... DISABLE
    /// TRIGGER`, or enabled for replicas only): the table's changes make no events.
    TriggersDisabled { triggers: Vec<String> },
    /// Columns were added or removed since install: snapshots miss the new ones.
    ColumnsChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// The triggers' SQL is not what install recorded: edited outside keyhook.
    TriggersEdited,
    /// On a server: the function the triggers call before their first event
    /// (`keyhook_outbox_last`) is gone: every change to the table fails.
    FunctionMissing,
    /// On a server: that function is there but not as install makes it (its body, `SECURITY
    /// DEFINER` or its settings changed): writers without access to the outbox's sequence fail,
    /// or its answer may no longer be the outbox's last seq.
    FunctionChanged,
    /// On a server: that function is as install makes it, but cannot run for the table's
    /// writers: its owner (it runs as them) cannot read the outbox's sequence, or roles that
    /// may change the table may not execute it. Their changes fail.
    FunctionUnusable {
        /// The owner, when they cannot read the sequence.
        owner: Option<String>,
        /// Roles that may change the table but not insert into the outbox or execute the
        /// function.
        writers: Vec<String>,
    },
    /// On a server: the triggers were made by an earlier keyhook and hold one lock from a
    /// writer's first event to its commit (see `events::postgres::plan::OUTBOX_LOCK`).
    EarlierLock,
    /// The catalog (events.toml) changed since install.
    CatalogChanged,
    /// Installed, but no longer in the catalog.
    NotInCatalog,
}

impl std::fmt::Display for TableState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableState::Current => write!(f, "triggers current"),
            TableState::NotInstalled => write!(f, "no triggers installed"),
            TableState::TableMissing => write!(f, "the table is not in the database"),
            TableState::TriggersMissing { triggers } => write!(
                f,
                "trigger(s) {} are gone (was the table dropped and re-created?): its changes \
                 make no events",
                triggers.join(", ")
            ),
            TableState::TriggersDisabled { triggers } => write!(
                f,
                "trigger(s) {} are disabled (ALTER TABLE ... DISABLE TRIGGER, or ENABLE REPLICA \
                 TRIGGER): its changes make no events",
                triggers.join(", ")
            ),
            TableState::ColumnsChanged { added, removed } => {
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!(
                        "column(s) {} added since install are missing from snapshots",
                        added.join(", ")
                    ));
                }
                if !removed.is_empty() {
                    parts.push(format!(
                        "column(s) {} removed since install",
                        removed.join(", ")
                    ));
                }
                write!(f, "{}", parts.join("; "))
            }
            TableState::TriggersEdited => {
                write!(f, "the triggers were changed outside keyhook")
            }
            TableState::FunctionMissing => write!(
                f,
                "function keyhook_outbox_last() is gone: every change to the table fails until \
                 `keyhook events install` makes it again"
            ),
            TableState::FunctionChanged => write!(
                f,
                "function keyhook_outbox_last() was changed outside keyhook (its body, SECURITY \
                 DEFINER, its SET clauses or its volatility): writers may fail, and dispatch hold events back or pass \
                 them by, until `keyhook events install` makes it again"
            ),
            TableState::FunctionUnusable { owner, writers } => {
                write!(f, "{}", unusable(owner.as_deref(), writers))
            }
            TableState::EarlierLock => write!(
                f,
                "its triggers were made by an earlier keyhook: they make writers of events wait \
                 for each other and can deadlock them"
            ),
            TableState::CatalogChanged => {
                write!(f, "the event catalog changed since install")
            }
            TableState::NotInCatalog => write!(f, "no longer in the event catalog"),
        }
    }
}

/// [`TableState::FunctionUnusable`] in words.
fn unusable(owner: Option<&str>, writers: &[String]) -> String {
    let mut parts = Vec::new();
    if let Some(owner) = owner {
        parts.push(format!(
            "function keyhook_outbox_last() runs as its owner `{owner}`, who cannot read the \
             outbox's sequence: every change to the table fails"
        ));
    }
    if !writers.is_empty() {
        parts.push(format!(
            "role(s) {} may change the table but not write its events (INSERT on \
             keyhook_outbox, EXECUTE on function keyhook_outbox_last()): their changes fail",
            writers.join(", ")
        ));
    }
    format!("{} (`keyhook events install` fixes it)", parts.join("; "))
}

/// One table's comparison.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableStatus {
    pub table: String,
    #[serde(flatten)]
    pub state: TableState,
    /// The trigger names install recorded for it.
    pub installed_triggers: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// Whether install ever ran (the meta table is there).
    pub installed: bool,
    pub tables: Vec<TableStatus>,
}

impl Status {
    /// Installed, and every table current.
    pub fn is_current(&self) -> bool {
        self.installed
            && self
                .tables
                .iter()
                .all(|table| table.state == TableState::Current)
    }
}

/// What install recorded for one table.
pub struct Recorded {
    pub table: String,
    pub columns: Vec<String>,
    pub triggers: Vec<String>,
    pub sql_sha256: String,
}

/// Compares every catalog table (and every recorded one) with what install would make now.
pub fn status(conn: &Connection, catalog: &Catalog) -> rusqlite::Result<Status> {
    let installed = has_table(conn, META)?;
    let recorded = if installed {
        recorded(conn)?
    } else {
        Vec::new()
    };
    assemble(catalog, installed, &recorded, |table, record| {
        table_state(conn, catalog, table, record)
    })
}

/// The status of every catalog table, `state_of` each (from the database's schema and what
/// install recorded for it), then of every recorded table the catalog no longer has: for a
/// SQLite license database and a server alike.
pub fn assemble<E>(
    catalog: &Catalog,
    installed: bool,
    recorded: &[Recorded],
    mut state_of: impl FnMut(&str, Option<&Recorded>) -> Result<TableState, E>,
) -> Result<Status, E> {
    let mut tables = Vec::new();
    for table in catalog.tables() {
        let record = recorded
            .iter()
            .find(|r| r.table.eq_ignore_ascii_case(table));
        tables.push(TableStatus {
            table: table.to_string(),
            state: state_of(table, record)?,
            installed_triggers: record.map(|r| r.triggers.clone()).unwrap_or_default(),
        });
    }
    for record in recorded {
        let listed = catalog
            .tables()
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&record.table));
        if !listed {
            tables.push(TableStatus {
                table: record.table.clone(),
                state: TableState::NotInCatalog,
                installed_triggers: record.triggers.clone(),
            });
        }
    }
    Ok(Status { installed, tables })
}

fn table_state(
    conn: &Connection,
    catalog: &Catalog,
    table: &str,
    record: Option<&Recorded>,
) -> rusqlite::Result<TableState> {
    let columns = table_columns(conn, table)?;
    if columns.is_empty() {
        return Ok(TableState::TableMissing);
    }
    let Some(record) = record else {
        return Ok(TableState::NotInstalled);
    };
    let mut installed_sql = Vec::new();
    let mut missing = Vec::new();
    for name in &record.triggers {
        match trigger_sql(conn, name, table)? {
            Some(sql) => installed_sql.push(sql),
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Ok(TableState::TriggersMissing { triggers: missing });
    }
    let lacks = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter()
            .filter(|c| !b.iter().any(|d| d.eq_ignore_ascii_case(c)))
            .cloned()
            .collect()
    };
    let (added, removed) = (
        lacks(&columns, &record.columns),
        lacks(&record.columns, &columns),
    );
    if !added.is_empty() || !removed.is_empty() {
        return Ok(TableState::ColumnsChanged { added, removed });
    }
    if sql_hash(installed_sql.iter().map(String::as_str)) != record.sql_sha256 {
        return Ok(TableState::TriggersEdited);
    }
    if TablePlan::new(catalog, table, columns).sql_hash() != record.sql_sha256 {
        return Ok(TableState::CatalogChanged);
    }
    Ok(TableState::Current)
}

/// The SQL of trigger `name` if it exists on `table`.
fn trigger_sql(conn: &Connection, name: &str, table: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1 \
         AND tbl_name = ?2 COLLATE NOCASE",
        [name, table],
        |row| row.get(0),
    )
    .optional()
}

fn recorded(conn: &Connection) -> rusqlite::Result<Vec<Recorded>> {
    let mut statement = conn.prepare(&format!(
        "SELECT table_name, columns, triggers, sql_sha256 FROM {META} ORDER BY rowid"
    ))?;
    let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    statement
        .query_map([], |row| {
            Ok(Recorded {
                table: row.get(0)?,
                columns: list(row.get(1)?),
                triggers: list(row.get(2)?),
                sql_sha256: row.get(3)?,
            })
        })?
        .collect()
}

/// Each recorded table and its trigger names.
pub fn recorded_triggers(conn: &Connection) -> rusqlite::Result<Vec<(String, Vec<String>)>> {
    Ok(recorded(conn)?
        .into_iter()
        .map(|r| (r.table, r.triggers))
        .collect())
}

/// Whether the database has a table called `name`.
pub fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
        [name],
        |row| row.get(0),
    )
}
