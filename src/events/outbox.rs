//! The transactional outbox in the license database: triggers that append one row per event
//! inside the writer's own transaction (so an event exists if and only if its change
//! committed), the record of what was installed, and reading the rows back.
//!
//! Installing, uninstalling and pruning taken rows are the only writes keyhook makes to the
//! license database.

mod plan;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

pub(super) use self::plan::snapshot_sql;
pub use self::plan::{TablePlan, sql_hash, trigger_name};
use super::catalog::{Catalog, quote, sqlite_message, table_columns};
use super::drift::{self, TableState};

/// The outbox table. `seq` is AUTOINCREMENT: SQLite has one writer at a time, so sequence
/// numbers grow in commit order and a reader's high-water mark never skips a row; a rolled
/// back transaction leaves a gap, never a row.
pub const OUTBOX: &str = "keyhook_outbox";

/// What install put where: one row per table with triggers.
pub const META: &str = "keyhook_events_meta";

const OUTBOX_DDL: &str = "CREATE TABLE keyhook_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_key TEXT,
    created_ms INTEGER NOT NULL,
    snapshot TEXT NOT NULL
)";

const META_DDL: &str = "CREATE TABLE keyhook_events_meta (
    table_name TEXT PRIMARY KEY COLLATE NOCASE,
    columns TEXT NOT NULL,
    triggers TEXT NOT NULL,
    sql_sha256 TEXT NOT NULL,
    installed_ms INTEGER NOT NULL,
    keyhook_version TEXT NOT NULL
)";

/// Now, in UTC milliseconds, with functions every SQLite has: the triggers run in the
/// writer's SQLite, which may be older than keyhook's (`unixepoch('subsec')` is 3.42+).
const NOW_MS: &str = "CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)";

/// Deletes the rows at or before `taken` (what dispatch has turned into deliveries) created
/// before `before_ms`, in one transaction; returns how many. `seq` is AUTOINCREMENT, so a
/// deleted seq is never handed out again, and the cursor stays valid.
pub fn prune(conn: &mut Connection, taken: i64, before_ms: i64) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let removed = tx.execute(
        &format!("DELETE FROM {OUTBOX} WHERE seq <= ?1 AND created_ms < ?2"),
        [taken, before_ms],
    )?;
    tx.commit()?;
    Ok(removed)
}

/// The first seq of an outbox created now: the time in milliseconds, times 100.
///
/// A state keeps one cursor per license database, and an event's delivery ids are made of its
/// seq. An outbox made again (`events uninstall`, then `install`) starts above every seq the
/// one before it handed out, unless that one averaged more than 100 events a millisecond, so
/// the cursor passes none of its events by; and two license databases whose deliveries share
/// one state number their events apart. The seq still fits the 12 hex digits of an id until
/// 2058.
pub fn first_seq() -> i64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    i64::try_from(millis)
        .unwrap_or(0)
        .saturating_mul(100)
        .max(1)
}

/// One outbox row: one event of one committed change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRow {
    /// Commit order.
    pub seq: i64,
    /// The canonical dotted name; the catalog gives the others.
    pub event_type: String,
    pub table_name: String,
    /// The row's key, as text.
    pub row_key: Option<String>,
    /// When the change was made (UTC, ms), by the writer's clock.
    pub created_ms: i64,
    /// The row as of that change (the old row for a delete), a JSON object by column.
    pub snapshot: String,
    /// The column whose text is not UTF-8, when the snapshot holds such text (then
    /// `snapshot` is its lossy reading): the event cannot be sent truthfully.
    #[serde(skip)]
    pub not_utf8: Option<String>,
}

/// A snapshot's bytes as text; with the column holding text that is not UTF-8 (a license
/// row's bad value must not stop every event after it: its event is skipped and said).
fn snapshot_text(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(error) => {
            let before = String::from_utf8_lossy(&bytes[..error.valid_up_to()]);
            // The key of the value the bad byte is in: the last `"name":` before it.
            let column = before
                .rfind("\":")
                .and_then(|end| {
                    before[..end]
                        .rfind('"')
                        .map(|start| &before[start + 1..end])
                })
                .unwrap_or("?")
                .to_string();
            (String::from_utf8_lossy(bytes).into_owned(), Some(column))
        }
    }
}

/// The text of a column as read, its bytes taken lossily (a key or a name is shown, never
/// sent).
fn lossy(value: rusqlite::types::ValueRef<'_>) -> Option<String> {
    match value {
        rusqlite::types::ValueRef::Null => None,
        rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
        rusqlite::types::ValueRef::Real(x) => Some(x.to_string()),
        rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

/// A snapshot column as read: [`snapshot_text`] of its bytes.
pub fn snapshot_of(value: rusqlite::types::ValueRef<'_>) -> (String, Option<String>) {
    match value {
        rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
            snapshot_text(bytes)
        }
        other => (lossy(other).unwrap_or_default(), None),
    }
}

/// What `install` did, one line per change; empty when nothing needed to change.
pub type Report = Vec<String>;

/// Why install or uninstall changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the event catalog does not fit the license database:\n{}", .0.join("\n"))]
    Catalog(Vec<String>),
    #[error(
        "the outbox holds {0} event(s) that uninstall would delete; pass --force to delete them"
    )]
    OutboxNotEmpty(i64),
    #[error("{0}")]
    Sql(String),
}

impl From<rusqlite::Error> for InstallError {
    fn from(error: rusqlite::Error) -> InstallError {
        InstallError::Sql(sqlite_message(&error))
    }
}

/// Creates the outbox and the meta table if needed, and makes every catalog table's triggers
/// current; removes those of tables no longer in the catalog. One transaction: all or nothing.
pub fn install(conn: &mut Connection, catalog: &Catalog) -> Result<Report, InstallError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let problems = catalog.problems_in(&tx);
    if !problems.is_empty() {
        let lines = problems.iter().map(ToString::to_string).collect();
        return Err(InstallError::Catalog(lines));
    }
    let mut report = Report::new();
    for (table, ddl) in [(OUTBOX, OUTBOX_DDL), (META, META_DDL)] {
        if !drift::has_table(&tx, table)? {
            tx.execute_batch(ddl)?;
            report.push(format!("created table {table}"));
            if table == OUTBOX {
                // AUTOINCREMENT goes on from here: see `first_seq`.
                tx.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                    rusqlite::params![OUTBOX, first_seq() - 1],
                )?;
            }
        }
    }
    let status = drift::status(&tx, catalog)?;
    for table in &status.tables {
        if table.state == TableState::Current {
            continue;
        }
        drop_triggers(&tx, &table.installed_triggers)?;
        if table.state == TableState::NotInCatalog {
            tx.execute(
                &format!("DELETE FROM {META} WHERE table_name = ?1"),
                [&table.table],
            )?;
            report.push(format!(
                "{}: removed its triggers ({})",
                table.table, table.state
            ));
            continue;
        }
        let plan = TablePlan::new(catalog, &table.table, table_columns(&tx, &table.table)?);
        create_triggers(&tx, &plan)?;
        let names: Vec<&str> = plan
            .triggers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        let verb = match table.state {
            TableState::NotInstalled => "created".to_string(),
            ref state => format!("replaced ({state})"),
        };
        report.push(format!(
            "{}: {verb} triggers {}",
            table.table,
            names.join(", ")
        ));
    }
    if report.is_empty() {
        return Ok(report); // dropping `tx` rolls back: nothing was written
    }
    tx.commit()?;
    Ok(report)
}

/// Creates `plan`'s triggers, records them, and compiles a statement of each kind on the
/// table, so a trigger that cannot run fails here rather than in the writer's transaction.
fn create_triggers(tx: &Connection, plan: &TablePlan) -> Result<(), InstallError> {
    for (name, sql) in &plan.triggers {
        tx.execute(&format!("DROP TRIGGER IF EXISTS {}", quote(name)), [])?;
        tx.execute_batch(sql)?;
    }
    let table = quote(&plan.table);
    let column = quote(plan.columns.first().map_or("rowid", String::as_str));
    for probe in [
        format!("INSERT INTO {table} DEFAULT VALUES"),
        format!("UPDATE {table} SET {column} = {column} WHERE 0"),
        format!("DELETE FROM {table} WHERE 0"),
    ] {
        if let Err(error) = tx.prepare(&probe) {
            return Err(InstallError::Sql(format!(
                "the triggers on {} would fail the writer's statements: {}",
                plan.table,
                sqlite_message(&error)
            )));
        }
    }
    let names: Vec<&str> = plan
        .triggers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO {META} \
             (table_name, columns, triggers, sql_sha256, installed_ms, keyhook_version) \
             VALUES (?1, ?2, ?3, ?4, {NOW_MS}, ?5)"
        ),
        rusqlite::params![
            plan.table,
            serde_json::to_string(&plan.columns).unwrap_or_default(),
            serde_json::to_string(&names).unwrap_or_default(),
            plan.sql_hash(),
            env!("CARGO_PKG_VERSION"),
        ],
    )?;
    Ok(())
}

fn drop_triggers(tx: &Connection, names: &[String]) -> rusqlite::Result<()> {
    for name in names {
        tx.execute(&format!("DROP TRIGGER IF EXISTS {}", quote(name)), [])?;
    }
    Ok(())
}

/// Removes the triggers, the meta table and the outbox: exactly what install added. Refuses
/// while the outbox holds rows, unless `force`.
pub fn uninstall(conn: &mut Connection, force: bool) -> Result<Report, InstallError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut report = Report::new();
    if drift::has_table(&tx, META)? {
        for (table, triggers) in drift::recorded_triggers(&tx)? {
            drop_triggers(&tx, &triggers)?;
            report.push(format!("{table}: removed triggers {}", triggers.join(", ")));
        }
    }
    if drift::has_table(&tx, OUTBOX)? {
        let rows: i64 =
            tx.query_row(&format!("SELECT count(*) FROM {OUTBOX}"), [], |r| r.get(0))?;
        if rows > 0 && !force {
            return Err(InstallError::OutboxNotEmpty(rows));
        }
        tx.execute_batch(&format!("DROP TABLE {OUTBOX}"))?;
        report.push(format!("dropped table {OUTBOX} ({rows} event(s))"));
    }
    if drift::has_table(&tx, META)? {
        tx.execute_batch(&format!("DROP TABLE {META}"))?;
        report.push(format!("dropped table {META}"));
    }
    if !report.is_empty() {
        tx.commit()?;
    }
    Ok(report)
}

/// The highest seq the outbox has handed out (SQLite's `sqlite_sequence`, which a restore of
/// an older copy takes back with it); `None` before the first.
pub fn handed_out(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let found = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            [OUTBOX],
            |row| row.get(0),
        )
        .optional();
    match found {
        // No AUTOINCREMENT table at all (the outbox was never installed here): nothing to say.
        Err(rusqlite::Error::SqliteFailure(_, Some(message)))
            if message.starts_with("no such table") =>
        {
            Ok(None)
        }
        found => found,
    }
}

/// Up to `limit` outbox rows after sequence `after`, in commit order: what dispatch takes.
pub fn read_after(conn: &Connection, after: i64, limit: u32) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT seq, event_type, table_name, row_key, created_ms, snapshot FROM {OUTBOX} \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    statement
        .query_map(rusqlite::params![after, limit], |row| {
            let (snapshot, not_utf8) = snapshot_of(row.get_ref(5)?);
            Ok(OutboxRow {
                seq: row.get(0)?,
                event_type: row.get(1)?,
                table_name: row.get(2)?,
                row_key: lossy(row.get_ref(3)?),
                created_ms: row.get(4)?,
                snapshot,
                not_utf8,
            })
        })?
        .collect()
}

/// The outbox's size, and what is after a high-water mark (`taken`; none yet: all of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub total: i64,
    pub pending: i64,
    /// The oldest pending row's `created_ms`.
    pub oldest_pending_ms: Option<i64>,
    pub last_seq: Option<i64>,
}

/// Counts the outbox rows; `None` when there is no outbox.
pub fn counts(conn: &Connection, taken: Option<i64>) -> rusqlite::Result<Option<Counts>> {
    if !drift::has_table(conn, OUTBOX)? {
        return Ok(None);
    }
    let after = taken.unwrap_or(i64::MIN);
    conn.query_row(
        &format!(
            "SELECT count(*), (SELECT count(*) FROM {OUTBOX} WHERE seq > ?1), \
             (SELECT created_ms FROM {OUTBOX} WHERE seq > ?1 ORDER BY seq LIMIT 1), max(seq) \
             FROM {OUTBOX}"
        ),
        [after],
        |row| {
            Ok(Counts {
                total: row.get(0)?,
                pending: row.get(1)?,
                oldest_pending_ms: row.get(2)?,
                last_seq: row.get(3)?,
            })
        },
    )
    .map(Some)
}

#[cfg(test)]
mod tests;
