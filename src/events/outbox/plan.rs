//! The SQL install puts in the license database: per catalog table, one `AFTER` trigger per
//! operation that appends the table's events to the outbox, with the row as a JSON snapshot.

use sha2::{Digest, Sha256};

use super::{NOW_MS, OUTBOX};
use crate::events::catalog::{Catalog, Event, Operation, quote};

/// Columns per `json_object` call: older SQLite builds allow 127 arguments per function.
const COLUMNS_PER_OBJECT: usize = 60;

/// The triggers one table should have now: their names and SQL, for its current columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    pub table: String,
    pub columns: Vec<String>,
    pub triggers: Vec<(String, String)>,
}

impl TablePlan {
    /// The triggers for `table`'s events in `catalog`, over `columns`.
    pub fn new(catalog: &Catalog, table: &str, columns: Vec<String>) -> TablePlan {
        let mut triggers = Vec::new();
        for operation in Operation::ALL {
            let (key, events) = catalog.events_of(table, operation);
            if !events.is_empty() {
                let name = trigger_name(table, operation);
                let sql = trigger_sql(&name, table, &key, operation, &events, &columns);
                triggers.push((name, sql));
            }
        }
        TablePlan {
            table: table.to_string(),
            columns,
            triggers,
        }
    }

    /// The SHA-256 of the triggers' SQL, as recorded in the meta table.
    pub fn sql_hash(&self) -> String {
        sql_hash(self.triggers.iter().map(|(_, sql)| sql.as_str()))
    }
}

/// The SHA-256, hex, of trigger statements in order.
pub fn sql_hash<'a>(statements: impl Iterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for sql in statements {
        hasher.update(sql.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// `keyhook_<table>_<operation>`.
pub fn trigger_name(table: &str, operation: Operation) -> String {
    format!("keyhook_{table}_{}", operation.word())
}

/// One `AFTER` trigger: one `INSERT` into the outbox per event, in catalog order, each
/// guarded by the event's condition. SQLite stores this text as given, so what is installed
/// can be compared with what would be installed now.
fn trigger_sql(
    name: &str,
    table: &str,
    key: &str,
    operation: Operation,
    events: &[&Event],
    columns: &[String],
) -> String {
    let row = operation.row();
    let mut sql = format!(
        "CREATE TRIGGER {} AFTER {} ON {} FOR EACH ROW BEGIN\n",
        quote(name),
        operation.word().to_uppercase(),
        quote(table)
    );
    let snapshot = snapshot_sql(row, columns);
    for event in events {
        sql.push_str(&format!(
            "INSERT INTO {OUTBOX} (event_type, table_name, row_key, created_ms, snapshot) \
             SELECT {}, {}, {row}.{}, {NOW_MS}, {snapshot}",
            literal(&event.name),
            literal(table),
            quote(key)
        ));
        if let Some(condition) = &event.condition {
            sql.push_str(&format!(" WHERE (\n{}\n)", condition.trim()));
        }
        sql.push_str(";\n");
    }
    sql.push_str("END");
    sql
}

/// `json_object('Col', value, ...)` over every column of `row`. A BLOB (which JSON cannot
/// hold, and which would fail the writer's statement) is written as its hex text.
pub(in crate::events) fn snapshot_sql(row: &str, columns: &[String]) -> String {
    let objects: Vec<String> = columns
        .chunks(COLUMNS_PER_OBJECT)
        .map(|chunk| {
            let pairs: Vec<String> = chunk
                .iter()
                .map(|column| {
                    let value = format!("{row}.{}", quote(column));
                    format!(
                        "{}, CASE typeof({value}) WHEN 'blob' THEN hex({value}) ELSE {value} END",
                        literal(column)
                    )
                })
                .collect();
            format!("json_object({})", pairs.join(", "))
        })
        .collect();
    // Joined as text, `{"a":1` + `,` + `"b":2}`: json_patch would drop the NULL columns. Every
    // value is a scalar, so the object's only `}` is its last character and its only `{` the
    // first.
    let mut objects = objects.into_iter();
    let first = objects.next().unwrap_or_else(|| "json_object()".into());
    objects.fold(first, |merged, next| {
        format!("(rtrim({merged}, '}}') || ',' || ltrim({next}, '{{'))")
    })
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
