//! `events install` and `uninstall` on a server, each in one transaction: all or nothing.
//! Install makes the outbox and meta tables if needed, checks the catalog against the tables
//! (names, key columns, conditions compiled by the server), and makes every catalog table's
//! functions and triggers current; uninstall removes exactly what install added.

use postgres::Transaction;

use super::drift::{self, TableState};
use super::plan::{
    LAST_FUNCTION, OUTBOX_INSERTED, TablePlan, is_last_function, last_function_sql, snapshot_sql,
};
use super::{META, OUTBOX, PgOutbox, columns, function_access, function_source, relation};
use crate::events::catalog::{Catalog, Operation};
use crate::events::outbox::{InstallError, Report};
use crate::licenses::postgres::{connect, quote_identifier as quote};

const MISSING: &str = "is missing: on PostgreSQL an event with a `condition` needs the same \
    condition in PostgreSQL's SQL (SQLite's is not translated), even when the text is the same";

/// Taken by install and uninstall for their transaction: two at once wait for each other.
const INSTALL_LOCK: i64 = 0x6b65_7968_6f6f_6b02;

impl From<postgres::Error> for InstallError {
    fn from(error: postgres::Error) -> InstallError {
        InstallError::Sql(connect::error_text(&error))
    }
}

/// Creates what is missing and makes every catalog table's triggers current; removes those of
/// tables no longer in the catalog.
pub fn install(pg: &mut PgOutbox, catalog: &Catalog) -> Result<Report, InstallError> {
    let schema = pg.schema.clone();
    let mut tx = pg.client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INSTALL_LOCK])?;
    let problems = problems_in(&mut tx, &schema, catalog)?;
    if !problems.is_empty() {
        return Err(InstallError::Catalog(problems));
    }
    let mut report = create_missing(&mut tx, &schema)?;
    let status = drift::status(&mut tx, &schema, catalog)?;
    for table in &status.tables {
        if matches!(
            table.state,
            TableState::Current | TableState::FunctionUnusable { .. }
        ) {
            continue; // the second: below, with every table's writers
        }
        drop_recorded(&mut tx, &schema, &table.table, &table.installed_triggers)?;
        if table.state == TableState::NotInCatalog {
            let sql = format!(
                "DELETE FROM {}.{META} WHERE lower(table_name) = lower($1)",
                quote(&schema)
            );
            tx.execute(&sql, &[&table.table])?;
            report.push(format!(
                "{}: removed its triggers ({})",
                table.table, table.state
            ));
            continue;
        }
        let Some(rel) = relation(&mut tx, &schema, &table.table)? else {
            continue; // problems_in said so already
        };
        let plan = TablePlan::new(
            catalog,
            &schema,
            (&table.table, &rel),
            columns(&mut tx, &schema, &rel)?,
        );
        create(&mut tx, &schema, &plan)?;
        let names: Vec<&str> = plan.triggers.iter().map(|t| t.name.as_str()).collect();
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
    fix_access(&mut tx, &schema, &status, &mut report)?;
    if !report.is_empty() {
        tx.commit()?;
    }
    Ok(report)
}

/// Lets every writer of a catalog table write its events (whatever was made again above): see
/// [`Granted::fix`].
fn fix_access(
    tx: &mut Transaction,
    schema: &str,
    status: &drift::Status,
    report: &mut Report,
) -> Result<(), postgres::Error> {
    let mut granted = Granted::default();
    for table in &status.tables {
        if table.state == TableState::NotInCatalog {
            continue;
        }
        let Some(rel) = relation(tx, schema, &table.table)? else {
            continue;
        };
        if let Some(TableState::FunctionUnusable { owner, writers }) =
            function_access(tx, schema, &rel)?
        {
            granted.fix(tx, schema, owner.as_deref(), &writers, report)?;
        }
    }
    Ok(())
}

/// What install did so that [`LAST_FUNCTION`] runs for every writer, across tables.
#[derive(Default)]
struct Granted {
    owner_made: bool,
    roles: Vec<String>,
}

impl Granted {
    /// Makes the installing role the function's owner when `owner` cannot read the outbox's
    /// sequence, and grants the `writers` of a table what its triggers need of them (`INSERT`
    /// on the outbox's columns they fill, `EXECUTE` on the function); no other role's grants
    /// are touched.
    fn fix(
        &mut self,
        tx: &mut Transaction,
        schema: &str,
        owner: Option<&str>,
        writers: &[String],
        report: &mut Report,
    ) -> Result<(), postgres::Error> {
        let function = format!("{}.{LAST_FUNCTION}()", quote(schema));
        if let Some(owner) = owner
            && !self.owner_made
        {
            tx.batch_execute(&format!("ALTER FUNCTION {function} OWNER TO CURRENT_USER"))?;
            self.owner_made = true;
            report.push(format!(
                "made the installing role the owner of function {LAST_FUNCTION}() (its owner \
                 `{owner}` could not read the outbox's sequence)"
            ));
        }
        let new: Vec<&String> = writers.iter().filter(|w| !self.roles.contains(w)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let roles: Vec<String> = new.iter().map(|role| quote(role)).collect();
        let roles = roles.join(", ");
        let outbox = format!("{}.{OUTBOX}", quote(schema));
        let columns = OUTBOX_INSERTED.join(", ");
        tx.batch_execute(&format!(
            "GRANT EXECUTE ON FUNCTION {function} TO {roles}; \
             GRANT INSERT ({columns}) ON {outbox} TO {roles}"
        ))?;
        let names: Vec<&str> = new.iter().map(|role| role.as_str()).collect();
        report.push(format!(
            "granted INSERT on {OUTBOX} ({columns}) and EXECUTE on function \
             {LAST_FUNCTION}() to {} (they may change a table with events)",
            names.join(", ")
        ));
        self.roles.extend(new.into_iter().cloned());
        Ok(())
    }
}

/// Creates the outbox, the meta table and [`LAST_FUNCTION`] where they are missing.
fn create_missing(tx: &mut Transaction, schema: &str) -> Result<Report, postgres::Error> {
    let mut report = Report::new();
    for (table, ddl) in [(OUTBOX, outbox_ddl(schema)), (META, meta_ddl(schema))] {
        if relation(tx, schema, table)?.is_none() {
            tx.batch_execute(&ddl)?;
            report.push(format!("created table {table}"));
        }
    }
    let verb = match function_source(tx, schema, LAST_FUNCTION)? {
        None => Some("created"),
        Some(function) if !is_last_function(&function, schema) => Some("replaced"),
        Some(_) => None,
    };
    if let Some(verb) = verb {
        tx.batch_execute(&last_function_sql(schema))?;
        report.push(format!("{verb} function {LAST_FUNCTION}"));
    }
    Ok(report)
}

/// Creates `plan`'s functions and triggers and records them.
fn create(tx: &mut Transaction, schema: &str, plan: &TablePlan) -> Result<(), InstallError> {
    for statement in plan.statements(schema) {
        tx.batch_execute(&statement)?;
    }
    let names: Vec<&str> = plan.triggers.iter().map(|t| t.name.as_str()).collect();
    let columns: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    let sql = format!(
        "INSERT INTO {}.{META} \
         (table_name, columns, triggers, sql_sha256, installed_ms, keyhook_version) \
         VALUES ($1, $2, $3, $4, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, $5) \
         ON CONFLICT (table_name) DO UPDATE SET columns = excluded.columns, \
         triggers = excluded.triggers, sql_sha256 = excluded.sql_sha256, \
         installed_ms = excluded.installed_ms, keyhook_version = excluded.keyhook_version",
        quote(schema)
    );
    let json = |list: &[&str]| serde_json::to_string(list).unwrap_or_default();
    tx.execute(
        &sql,
        &[
            &plan.table,
            &json(&columns),
            &json(&names),
            &plan.sql_hash(),
            &env!("CARGO_PKG_VERSION"),
        ],
    )?;
    Ok(())
}

/// Drops the recorded triggers (if the table is still there) and their functions.
fn drop_recorded(
    tx: &mut Transaction,
    schema: &str,
    table: &str,
    triggers: &[String],
) -> Result<(), postgres::Error> {
    let rel = relation(tx, schema, table)?;
    for name in triggers {
        if let Some(rel) = &rel {
            tx.batch_execute(&format!(
                "DROP TRIGGER IF EXISTS {} ON {}.{}",
                quote(name),
                quote(schema),
                quote(rel)
            ))?;
        }
        tx.batch_execute(&format!(
            "DROP FUNCTION IF EXISTS {}.{}()",
            quote(schema),
            quote(name)
        ))?;
    }
    Ok(())
}

/// Removes the triggers, their functions, the meta table and the outbox; refuses while the
/// outbox holds rows, unless `force`.
pub fn uninstall(pg: &mut PgOutbox, force: bool) -> Result<Report, InstallError> {
    let schema = pg.schema.clone();
    let mut tx = pg.client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INSTALL_LOCK])?;
    let mut report = Report::new();
    if relation(&mut tx, &schema, META)?.is_some() {
        for (table, triggers) in drift::recorded(&mut tx, &schema)?
            .into_iter()
            .map(|r| (r.table, r.triggers))
        {
            drop_recorded(&mut tx, &schema, &table, &triggers)?;
            report.push(format!("{table}: removed triggers {}", triggers.join(", ")));
        }
    }
    if function_source(&mut tx, &schema, LAST_FUNCTION)?.is_some() {
        tx.batch_execute(&format!(
            "DROP FUNCTION {}.{LAST_FUNCTION}()",
            quote(&schema)
        ))?;
        report.push(format!("dropped function {LAST_FUNCTION}"));
    }
    let qualified = |table: &str| format!("{}.{table}", quote(&schema));
    if relation(&mut tx, &schema, OUTBOX)?.is_some() {
        let sql = format!("SELECT count(*) FROM {}", qualified(OUTBOX));
        let rows: i64 = tx.query_one(&sql, &[])?.try_get(0)?;
        if rows > 0 && !force {
            return Err(InstallError::OutboxNotEmpty(rows));
        }
        tx.batch_execute(&format!("DROP TABLE {}", qualified(OUTBOX)))?;
        report.push(format!("dropped table {OUTBOX} ({rows} event(s))"));
    }
    if relation(&mut tx, &schema, META)?.is_some() {
        tx.batch_execute(&format!("DROP TABLE {}", qualified(META)))?;
        report.push(format!("dropped table {META}"));
    }
    if !report.is_empty() {
        tx.commit()?;
    }
    Ok(report)
}

/// What `install` would refuse in `catalog` on this server (tables, key columns, conditions
/// compiled by the server), changing nothing: `check`'s look at a catalog before it is
/// installed, in a transaction that is rolled back.
pub fn catalog_problems(pg: &mut PgOutbox, catalog: &Catalog) -> Result<Vec<String>, InstallError> {
    let schema = pg.schema.clone();
    let mut tx = pg.client.transaction()?;
    let problems = problems_in(&mut tx, &schema, catalog)?;
    tx.rollback()?;
    Ok(problems)
}

/// What is wrong against the server: tables, key columns, conditions (compiled by the
/// server, with OLD and NEW as the trigger has them and a shadow copy of the table, so an
/// unqualified column is an error here rather than in a writer's transaction).
fn problems_in(
    tx: &mut Transaction,
    schema: &str,
    catalog: &Catalog,
) -> Result<Vec<String>, postgres::Error> {
    let mut problems = Vec::new();
    for (index, source) in catalog.sources.iter().enumerate() {
        let say = |field: &str, message: String| {
            format!(
                "{}: source {} (table `{}`): {field}: {message}",
                source.origin,
                index + 1,
                source.table
            )
        };
        let Some(rel) = relation(tx, schema, &source.table)? else {
            let message = format!("schema `{schema}` has no table `{}`", source.table);
            problems.push(say("field `table`", message));
            continue;
        };
        let columns = columns(tx, schema, &rel)?;
        if !columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&source.key))
        {
            let message = format!("table `{rel}` has no column `{}`", source.key);
            problems.push(say("field `key`", message));
            continue;
        }
        let table = format!("{}.{}", quote(schema), quote(&rel));
        for event in &source.events {
            let field = format!("event `{}`: field `condition_postgres`", event.name);
            let snapshot = format!("event `{}`: its snapshot", event.name);
            let mut probes = vec![(snapshot, snapshot_probe(&table, event.operation, &columns))];
            match (&event.condition, &event.condition_postgres) {
                (Some(_), None) => {
                    problems.push(say(&field, MISSING.into()));
                    continue;
                }
                (_, Some(condition)) => {
                    let probe = condition_probe(&table, event.operation, condition);
                    probes.push((field, probe));
                }
                (None, None) => {}
            }
            for (field, probe) in probes {
                let mut savepoint = tx.transaction()?;
                if let Err(error) = savepoint.prepare(&probe) {
                    problems.push(say(&field, connect::error_text(&error)));
                }
                savepoint.rollback()?;
            }
        }
    }
    Ok(problems)
}

/// A statement that compiles exactly when the condition compiles in the trigger function.
fn condition_probe(table: &str, operation: Operation, condition: &str) -> String {
    let rows = match operation {
        Operation::Insert => format!("{table} AS new"),
        Operation::Update => format!("{table} AS old, {table} AS new"),
        Operation::Delete => format!("{table} AS old"),
    };
    format!(
        "SELECT 1 FROM {rows}, {table} AS keyhook_shadow WHERE (\n{}\n)",
        condition.trim()
    )
}

/// The snapshot the trigger takes, as a query: it compiles exactly when the trigger's does.
fn snapshot_probe(table: &str, operation: Operation, columns: &[super::Column]) -> String {
    let row = operation.row();
    format!(
        "SELECT {} FROM {table} AS {}",
        snapshot_sql(row, columns),
        row.to_lowercase()
    )
}

fn outbox_ddl(schema: &str) -> String {
    format!(
        "CREATE TABLE {}.{OUTBOX} (
    seq bigint GENERATED ALWAYS AS IDENTITY (START WITH {}) PRIMARY KEY,
    event_type text NOT NULL,
    table_name text NOT NULL,
    row_key text,
    created_ms bigint NOT NULL,
    snapshot text NOT NULL
)",
        quote(schema),
        crate::events::outbox::first_seq()
    )
}

fn meta_ddl(schema: &str) -> String {
    format!(
        "CREATE TABLE {}.{META} (
    table_name text PRIMARY KEY,
    columns text NOT NULL,
    triggers text NOT NULL,
    sql_sha256 text NOT NULL,
    installed_ms bigint NOT NULL,
    keyhook_version text NOT NULL
)",
        quote(schema)
    )
}
