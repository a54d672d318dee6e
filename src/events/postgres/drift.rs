//! Whether the triggers on a server still match their tables and the catalog, in the same
//! terms as SQLite's ([`crate::events::drift`]): `ALTER TABLE ... ADD COLUMN` leaves a
//! function's column list (and so every snapshot) without the new column, and a dropped and
//! re-created table loses its triggers. Read-only.

use postgres::GenericClient;

use super::plan::{EARLIER_LOCK, LAST_FUNCTION, TablePlan, bodies_hash, is_last_function};
use super::{META, columns, function_access, function_source, relation};
use crate::events::catalog::Catalog;
pub use crate::events::drift::{Recorded, Status, TableState, TableStatus};
use crate::licenses::postgres::quote_identifier as quote;

/// Compares every catalog table (and every recorded one) with what install would make now.
pub fn status(
    client: &mut impl GenericClient,
    schema: &str,
    catalog: &Catalog,
) -> Result<Status, postgres::Error> {
    let installed = relation(client, schema, META)?.is_some();
    let recorded = match installed {
        true => recorded(client, schema)?,
        false => Vec::new(),
    };
    crate::events::drift::assemble(catalog, installed, &recorded, |table, record| {
        table_state(client, schema, catalog, table, record)
    })
}

fn table_state(
    client: &mut impl GenericClient,
    schema: &str,
    catalog: &Catalog,
    table: &str,
    record: Option<&Recorded>,
) -> Result<TableState, postgres::Error> {
    let Some(rel) = relation(client, schema, table)? else {
        return Ok(TableState::TableMissing);
    };
    let Some(record) = record else {
        return Ok(TableState::NotInstalled);
    };
    let mut bodies = Vec::new();
    let mut missing = Vec::new();
    let mut disabled = Vec::new();
    for name in &record.triggers {
        match installed_body(client, schema, &rel, name)? {
            Some((body, enabled)) => {
                bodies.push(body);
                if !enabled {
                    disabled.push(name.clone());
                }
            }
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Ok(TableState::TriggersMissing { triggers: missing });
    }
    if !disabled.is_empty() {
        return Ok(TableState::TriggersDisabled { triggers: disabled });
    }
    let now = columns(client, schema, &rel)?;
    let names: Vec<String> = now.iter().map(|c| c.name.clone()).collect();
    let lacks = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|c| !b.contains(c)).cloned().collect()
    };
    let (added, removed) = (
        lacks(&names, &record.columns),
        lacks(&record.columns, &names),
    );
    if !added.is_empty() || !removed.is_empty() {
        return Ok(TableState::ColumnsChanged { added, removed });
    }
    if bodies_hash(bodies.iter().map(String::as_str)) != record.sql_sha256 {
        return Ok(TableState::TriggersEdited);
    }
    if bodies.iter().any(|body| body.contains(EARLIER_LOCK)) {
        return Ok(TableState::EarlierLock);
    }
    if let Some(state) = function_state(client, schema)? {
        return Ok(state);
    }
    let plan = TablePlan::new(catalog, schema, (table, &rel), now);
    if plan.sql_hash() != record.sql_sha256 {
        return Ok(TableState::CatalogChanged);
    }
    // Last: install fixes it in a pass of its own, after any table's triggers are made again.
    Ok(function_access(client, schema, &rel)?.unwrap_or(TableState::Current))
}

/// What is wrong with [`LAST_FUNCTION`], which the triggers on `rel` call: gone, or not as
/// install makes it. `None`: nothing.
fn function_state(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<Option<TableState>, postgres::Error> {
    Ok(match function_source(client, schema, LAST_FUNCTION)? {
        None => Some(TableState::FunctionMissing),
        Some(function) if !is_last_function(&function, schema) => Some(TableState::FunctionChanged),
        Some(_) => None,
    })
}

/// The body of the function trigger `name` on `rel` calls, if that trigger exists and calls
/// keyhook's function of the same name, and whether it fires for ordinary writers (enabled,
/// not for replicas only).
fn installed_body(
    client: &mut impl GenericClient,
    schema: &str,
    rel: &str,
    name: &str,
) -> Result<Option<(String, bool)>, postgres::Error> {
    let row = client.query_opt(
        "SELECT p.prosrc, t.tgenabled IN ('O', 'A') FROM pg_catalog.pg_trigger t \
         JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid \
         WHERE n.nspname = $1 AND c.relname = $2 AND t.tgname = $3 AND p.proname = $3 \
         AND p.pronamespace = n.oid",
        &[&schema, &rel, &name],
    )?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
}

/// What install recorded, table by table.
pub fn recorded(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<Vec<Recorded>, postgres::Error> {
    let sql = format!(
        "SELECT table_name, columns, triggers, sql_sha256 FROM {}.{META} ORDER BY installed_ms, \
         table_name",
        quote(schema)
    );
    let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    client
        .query(&sql, &[])?
        .iter()
        .map(|row| {
            Ok(Recorded {
                table: row.try_get(0)?,
                columns: list(row.try_get(1)?),
                triggers: list(row.try_get(2)?),
                sql_sha256: row.try_get(3)?,
            })
        })
        .collect()
}
