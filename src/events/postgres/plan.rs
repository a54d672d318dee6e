//! The SQL install puts on a server: per catalog table and operation, a PL/pgSQL trigger
//! function that appends the events to the outbox, and the trigger that calls it.

use sha2::{Digest, Sha256};

use super::{Column, Function, OUTBOX, channel};
use crate::events::catalog::{Catalog, Event, Operation};
use crate::licenses::postgres::quote_identifier as quote;

/// A sequence hands out numbers at insert time, not at commit time: a transaction could take
/// seq 10 and commit after another took and committed 11, and a dispatcher whose cursor had
/// moved to 11 would never see 10. Writers are not made to wait for each other over this (a
/// lock from a writer's first event to its commit made a writer that waits for another's row
/// deadlock with it): each transaction that writes events marks itself instead, before its
/// first outbox row, with a shared transaction-level advisory lock whose key is the outbox
/// sequence's last value at that moment ([`LAST_FUNCTION`], [`mark_class`]). Every seq the
/// transaction then takes is above its mark, and the lock goes with the transaction. A
/// reader ([`super::PgOutbox::read_after`]) reads the sequence's last value, then the marks in
/// `pg_locks`, then the rows, and takes none above the lowest of them: what an open
/// transaction may still commit is never passed by. Shared locks never wait for each other,
/// and nobody takes this key space exclusively, so the mark costs a writer no wait. It is
/// taken once per transaction (a transaction-local setting, [`mark_setting`], says it is).
///
/// Triggers made by earlier versions took `pg_advisory_xact_lock` with this key instead
/// (exclusive, held to commit): [`EARLIER_LOCK`] finds them.
pub const OUTBOX_LOCK: i64 = 0x6b65_7968_6f6f_6b01;

/// What the bodies of earlier versions' trigger functions call (see [`OUTBOX_LOCK`]).
pub const EARLIER_LOCK: &str = "pg_advisory_xact_lock(";

/// The outbox sequence's last value (the one before its first, before that), as the
/// installer sees it: a `SECURITY DEFINER` function, so a writer needs no grant on the
/// sequence. It runs as the installer: its search path puts `pg_temp` last (else a caller's
/// temporary table or view named like a catalog would be read first) and it names
/// everything in full.
pub const LAST_FUNCTION: &str = "keyhook_outbox_last";

/// The transaction-local setting that says the transaction has marked itself, per schema
/// (`keyhook.outbox_` and 16 hex digits of the schema's SHA-256).
pub fn mark_setting(schema: &str) -> String {
    let digest = Sha256::digest(schema.as_bytes());
    format!("keyhook.outbox_{}", hex::encode(&digest[..8]))
}

/// A mark is the two-key form of the advisory lock: this first key, per schema (31 bits of the
/// schema's SHA-256), so outboxes in other schemas never hold each other's events back, and
/// the low 32 bits of the sequence's last value as the second. A reader knows the range a
/// mark can be in (within 2^31 of the lowest row it has not taken), and there the low bits
/// tell the value.
pub fn mark_class(schema: &str) -> i32 {
    let digest = Sha256::digest(schema.as_bytes());
    let bits = u32::from_be_bytes([digest[8], digest[9], digest[10], digest[11]]) & 0x7fff_ffff;
    i32::try_from(bits).unwrap_or_default()
}

/// The body of [`LAST_FUNCTION`] in `schema`, as PostgreSQL stores it (`prosrc`).
pub fn last_function_body(schema: &str) -> String {
    let outbox = format!("{}.{OUTBOX}", quote(schema));
    format!(
        "SELECT coalesce(pg_catalog.pg_sequence_last_value(q.s), \
         (SELECT p.seqstart OPERATOR(pg_catalog.-) 1 FROM pg_catalog.pg_sequence p \
         WHERE p.seqrelid OPERATOR(pg_catalog.=) q.s)) \
         FROM (SELECT pg_catalog.pg_get_serial_sequence({}, 'seq')::pg_catalog.regclass AS s) q",
        literal(&outbox)
    )
}

/// The settings [`LAST_FUNCTION`] runs with, as the catalog holds them (`proconfig`): it runs
/// as its owner, so no caller's search path or string syntax reaches it.
const LAST_FUNCTION_SETTINGS: [&str; 2] = [
    "search_path=pg_catalog, pg_temp",
    "standard_conforming_strings=on",
];

/// The statement that (re)creates [`LAST_FUNCTION`] in `schema`.
pub fn last_function_sql(schema: &str) -> String {
    let settings: String = LAST_FUNCTION_SETTINGS
        .iter()
        .filter_map(|setting| setting.split_once('='))
        .map(|(name, value)| format!(" SET {name} = {value}"))
        .collect();
    format!(
        "CREATE OR REPLACE FUNCTION {}.{LAST_FUNCTION}() RETURNS bigint LANGUAGE sql STABLE \
         SECURITY DEFINER{settings} AS {}",
        quote(schema),
        dollar_quoted(&last_function_body(schema))
    )
}

/// Whether `function` is [`LAST_FUNCTION`] as install makes it in `schema`: its body, `SECURITY
/// DEFINER`, its settings and `STABLE` (an `ALTER FUNCTION` can change any of the last three
/// alone; an `IMMUTABLE` one could be folded into a cached plan and answer an old value).
pub fn is_last_function(function: &Function, schema: &str) -> bool {
    function.definer
        && function.volatility == "s"
        && function.settings == LAST_FUNCTION_SETTINGS
        && function.body == last_function_body(schema)
}

/// The outbox columns each trigger inserts, as the writer: what a writer needs `INSERT` on.
pub const OUTBOX_INSERTED: [&str; 5] = [
    "event_type",
    "table_name",
    "row_key",
    "created_ms",
    "snapshot",
];

/// Now, in UTC milliseconds: the writer's clock at the change.
const NOW_MS: &str = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// `json_build_object` takes at most 100 arguments: 50 columns per call.
const COLUMNS_PER_OBJECT: usize = 50;

/// The trigger functions and triggers one table should have now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    /// The catalog's name for the table (`LicenseKeys`).
    pub table: String,
    /// The table as PostgreSQL names it (`licensekeys`).
    pub relation: String,
    pub columns: Vec<Column>,
    /// Per operation: the trigger's (and its function's) name, and the function's body.
    pub triggers: Vec<Trigger>,
}

/// One trigger and the body of the function it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    pub operation: Operation,
    pub body: String,
}

impl TablePlan {
    /// The triggers for `table`'s events in `catalog`, over `columns`, in `schema`.
    pub fn new(
        catalog: &Catalog,
        schema: &str,
        (table, relation): (&str, &str),
        columns: Vec<Column>,
    ) -> TablePlan {
        let mut triggers = Vec::new();
        for operation in Operation::ALL {
            let (key, events) = catalog.events_of(table, operation);
            if events.is_empty() {
                continue;
            }
            let key = columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&key))
                .map_or(key, |c| c.name.clone());
            let name = crate::events::outbox::trigger_name(table, operation);
            let body = function_body(schema, table, &key, operation, &events, &columns);
            triggers.push(Trigger {
                name,
                operation,
                body,
            });
        }
        TablePlan {
            table: table.to_string(),
            relation: relation.to_string(),
            columns,
            triggers,
        }
    }

    /// The SHA-256 of the function bodies, as recorded in the meta table.
    pub fn sql_hash(&self) -> String {
        bodies_hash(self.triggers.iter().map(|t| t.body.as_str()))
    }

    /// The statements that (re)create the functions and triggers, in `schema`.
    pub fn statements(&self, schema: &str) -> Vec<String> {
        let relation = format!("{}.{}", quote(schema), quote(&self.relation));
        let mut statements = Vec::new();
        for trigger in &self.triggers {
            let function = format!("{}.{}", quote(schema), quote(&trigger.name));
            statements.push(format!(
                "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {}",
                dollar_quoted(&trigger.body)
            ));
            statements.push(format!(
                "DROP TRIGGER IF EXISTS {} ON {relation}",
                quote(&trigger.name)
            ));
            statements.push(format!(
                "CREATE TRIGGER {} AFTER {} ON {relation} FOR EACH ROW EXECUTE FUNCTION {function}()",
                quote(&trigger.name),
                trigger.operation.word().to_uppercase(),
            ));
        }
        statements
    }
}

/// The SHA-256, hex, of function bodies in order.
pub fn bodies_hash<'a>(bodies: impl Iterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for body in bodies {
        hasher.update(body.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The function's body: the transaction's mark (once, see [`OUTBOX_LOCK`]), then one guarded
/// `INSERT` per event in catalog order, then a notification (delivered by PostgreSQL only if
/// the transaction commits).
fn function_body(
    schema: &str,
    table: &str,
    key: &str,
    operation: Operation,
    events: &[&Event],
    columns: &[Column],
) -> String {
    let row = operation.row();
    let outbox = format!("{}.{OUTBOX}", quote(schema));
    let setting = literal(&mark_setting(schema));
    let mut body = format!(
        "\nDECLARE\n    snapshot text := {};\nBEGIN\n    \
         IF current_setting({setting}, true) IS DISTINCT FROM 'on' THEN\n        \
         PERFORM pg_advisory_xact_lock_shared({}, \
         ({}.{LAST_FUNCTION}() & 4294967295)::bit(32)::integer);\n        \
         PERFORM set_config({setting}, 'on', true);\n    END IF;\n",
        snapshot_sql(row, columns),
        mark_class(schema),
        quote(schema)
    );
    for event in events {
        let insert = format!(
            "INSERT INTO {outbox} ({}) \
             VALUES ({}, {}, {row}.{}::text, {NOW_MS}, snapshot);",
            OUTBOX_INSERTED.join(", "),
            literal(&event.name),
            literal(table),
            quote(key)
        );
        match &event.condition_postgres {
            Some(condition) => body.push_str(&format!(
                "    IF (\n{}\n    ) THEN\n        {insert}\n    END IF;\n",
                condition.trim()
            )),
            None => body.push_str(&format!("    {insert}\n")),
        }
    }
    body.push_str(&format!(
        "    PERFORM pg_notify({}, '');\n    RETURN NULL;\nEND\n",
        literal(&channel(schema))
    ));
    body
}

/// The row as one JSON object of text, in the table's column order, keys spelled as SQLite's
/// `db init` spells QLM's columns: the same snapshot bytes, and so the same payloads, as
/// SQLite's triggers give for the same row. Not `to_jsonb(NEW)`: jsonb reorders keys and
/// would name QLM's columns in PostgreSQL's lower case. Values as SQLite holds them: a
/// boolean as 0/1, bytea as upper-case hex; a timestamp is ISO text
/// (`2026-01-31T08:00:00`), which a license payload reads as a date.
pub(crate) fn snapshot_sql(row: &str, columns: &[Column]) -> String {
    let objects: Vec<String> = columns
        .chunks(COLUMNS_PER_OBJECT)
        .map(|chunk| {
            let pairs: Vec<String> = chunk
                .iter()
                .map(|column| {
                    let value = format!("{row}.{}", quote(&column.name));
                    let value = match column.type_name.as_str() {
                        "boolean" => format!("{value}::int"),
                        "bytea" => format!("upper(encode({value}, 'hex'))"),
                        _ => value,
                    };
                    format!("{}, {value}", literal(&column.key))
                })
                .collect();
            format!("json_build_object({})::text", pairs.join(", "))
        })
        .collect();
    // Joined as text, `{"a" : 1` + `, ` + `"b" : 2}`: every value is a scalar, so an object's
    // first character is its only `{` and its last its only `}`.
    let mut objects = objects.into_iter();
    let first = objects
        .next()
        .unwrap_or_else(|| "json_build_object()::text".into());
    objects.fold(first, |merged, next| {
        format!("(left({merged}, -1) || ', ' || substr({next}, 2))")
    })
}

/// `$keyhook$...$keyhook$`: the body as PostgreSQL stores it (`prosrc`), byte for byte. A body
/// that holds that tag (a schema's name, a condition) gets `$keyhook1$`, `$keyhook2$`, ...: the
/// first it does not hold.
fn dollar_quoted(body: &str) -> String {
    let tag = std::iter::once(String::from("$keyhook$"))
        .chain((1..).map(|n| format!("$keyhook{n}$")))
        .find(|tag| !body.contains(tag.as_str()))
        .expect("a body holds finitely many tags");
    format!("{tag}{body}{tag}")
}

/// `text` as a string literal that every session reads the same: one with a backslash (a
/// schema's name) is written `E'...'`, which a writer session with
/// `standard_conforming_strings = off` reads as one with it on does. Without a backslash the
/// plain form, as earlier installs wrote it (their bodies stay current).
pub(crate) fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::postgres::channel;

    fn column(index: usize) -> Column {
        Column {
            name: format!("c{index}"),
            type_name: match index {
                0 => "boolean".into(),
                1 => "bytea".into(),
                _ => "integer".into(),
            },
            key: format!("C{index}"),
        }
    }

    #[test]
    fn snapshots_keep_column_order_in_objects_of_fifty_and_read_values_as_sqlite_holds_them() {
        let columns: Vec<Column> = (0..120).map(column).collect();
        let sql = snapshot_sql("NEW", &columns);
        assert_eq!(sql.matches("json_build_object(").count(), 3, "{sql}");
        assert!(sql.starts_with("(left((left(json_build_object('C0', NEW.\"c0\"::int, "));
        assert!(sql.contains("'C1', upper(encode(NEW.\"c1\", 'hex'))"));
        let c49 = sql.find("'C49'").unwrap();
        let c50 = sql.find("'C50'").unwrap();
        assert!(c49 < c50 && sql[c49..c50].contains(")::text, -1) || ', ' || substr("));
        assert_eq!(snapshot_sql("OLD", &[]), "json_build_object()::text");
    }

    #[test]
    fn a_body_is_quoted_with_a_tag_it_does_not_hold() {
        assert_eq!(dollar_quoted("BEGIN END"), "$keyhook$BEGIN END$keyhook$");
        let body = "x = '$keyhook$' OR y = '$keyhook1$'";
        assert_eq!(dollar_quoted(body), format!("$keyhook2${body}$keyhook2$"));
    }

    #[test]
    fn channels_are_per_schema_and_fit_postgresqls_limit() {
        assert_eq!(channel("public"), "keyhook_outbox:public");
        let long = channel(&"é".repeat(40));
        assert!(
            long.len() <= 63 && long.starts_with("keyhook_outbox:é"),
            "{long}"
        );
    }
}
