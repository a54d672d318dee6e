//! `keyhook events catalog|install|uninstall|status`, and what `check` says about events.
//! Install, uninstall and prune are the only commands that open the license database for
//! writing.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use comfy_table::{Table, presets};
use rusqlite::{Connection, OpenFlags};

use super::{Context, events_postgres, success};
use crate::cli::{EventsCatalogArgs, EventsPruneArgs, EventsStatusArgs, EventsUninstallArgs};
use crate::definitions::Problem;
use crate::error::{Error, Result};
use crate::events::catalog::{self, Catalog};
use crate::events::drift::{self, TableState};
use crate::events::outbox::{self, InstallError, OUTBOX};
use crate::file_access::{self, Presence};

/// How long install waits for the license database's writers to let it in.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn catalog(context: &Context, args: &EventsCatalogArgs, out: &mut impl Write) -> Result {
    let catalog = load_catalog(context)?;
    if args.json {
        let events: Vec<serde_json::Value> = catalog
            .events()
            .map(|(source, event)| {
                serde_json::json!({
                    "name": event.name,
                    "qlm": event.qlm_name(),
                    "aliases": event.aliases,
                    "table": source.table,
                    "key": source.key,
                    "payload": source.payload,
                    "operation": event.operation,
                    "condition": event.condition.as_deref().map(str::trim),
                    "condition_postgres": event.condition_postgres.as_deref().map(str::trim),
                    "description": event.description,
                    "origin": source.origin,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(events))?;
        return success();
    }
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "Event", "QLM name", "Aliases", "Table", "On", "When", "From",
    ]);
    for (source, event) in catalog.events() {
        let when = match (&event.description, &event.condition) {
            (Some(description), _) => description.clone(),
            (None, Some(condition)) => condition.split_whitespace().collect::<Vec<_>>().join(" "),
            (None, None) => format!("every {}", event.operation.word()),
        };
        table.add_row([
            event.name.clone(),
            event.qlm_name(),
            event.aliases.join(", "),
            source.table.clone(),
            event.operation.word().to_string(),
            when,
            source.origin.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    success()
}

pub fn install(context: &Context, out: &mut impl Write) -> Result {
    let catalog = load_catalog(context)?;
    if let Some(url) = context.server_db()? {
        return events_postgres::install(url, &catalog, out);
    }
    let mut conn = open_for_writing(&context.db_path)?;
    let report = outbox::install(&mut conn, &catalog).map_err(|e| install_error(context, e))?;
    let db = context.db_path.display();
    if report.is_empty() {
        writeln!(
            out,
            "events are already installed in {db} and current: nothing changed"
        )?;
        return success();
    }
    for line in &report {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "installed in {db}: each committed change to {} now appends its events to {OUTBOX} in \
         the same transaction",
        catalog.tables().join(", ")
    )?;
    success()
}

pub fn uninstall(context: &Context, args: &EventsUninstallArgs, out: &mut impl Write) -> Result {
    if let Some(url) = context.server_db()? {
        return events_postgres::uninstall(url, args, out);
    }
    let mut conn = open_for_writing(&context.db_path)?;
    let report = outbox::uninstall(&mut conn, args.force).map_err(|e| install_error(context, e))?;
    let db = context.db_path.display();
    if report.is_empty() {
        writeln!(out, "events are not installed in {db}: nothing changed")?;
        return success();
    }
    for line in &report {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "uninstalled from {db}")?;
    success()
}

pub fn status(context: &Context, args: &EventsStatusArgs, out: &mut impl Write) -> Result {
    let catalog = load_catalog(context)?;
    if let Some(url) = context.server_db()? {
        return events_postgres::status(context, url, (&catalog, args), out);
    }
    let conn = open_read_only(&context.db_path)?;
    let failure = |error: rusqlite::Error| {
        Error::runtime(anyhow!(
            "could not read {}: {error}",
            context.db_path.display()
        ))
    };
    let status = drift::status(&conn, &catalog).map_err(failure)?;
    let taken = taken_by_dispatch(context)?;
    let counts = outbox::counts(&conn, taken).map_err(failure)?;
    let db = context.db_path.display().to_string();
    show_status(context, &db, &status, counts.as_ref(), args.json, out)
}

/// What `events status` says of a license database `db` (a file or a server): whether the
/// triggers are installed and current, and the outbox's counts; or all of it as JSON.
pub(super) fn show_status(
    context: &Context,
    db: &str,
    status: &drift::Status,
    counts: Option<&outbox::Counts>,
    json: bool,
    out: &mut impl Write,
) -> Result {
    if json {
        let json = serde_json::json!({ "status": status, "outbox": counts, "current": status.is_current() });
        writeln!(out, "{json}")?;
        return success();
    }
    if !status.installed {
        writeln!(
            out,
            "events are not installed in {db}; `keyhook events install` installs them"
        )?;
        return success();
    }
    writeln!(out, "events are installed in {db}")?;
    for table in &status.tables {
        writeln!(out, "  {}: {}", table.table, table.state)?;
    }
    if let Some(counts) = counts {
        let oldest = counts.oldest_pending_ms.map_or("none".into(), utc_ms);
        writeln!(
            out,
            "outbox: {} rows, {} not yet taken by dispatch (state {}), oldest of them {oldest}",
            counts.total,
            counts.pending,
            context.state_path.display()
        )?;
    }
    if !status.is_current() {
        writeln!(
            out,
            "`keyhook events install` brings the triggers up to date"
        )?;
    }
    success()
}

/// The last outbox row dispatch took for this license database, by the state's cursor; `None`
/// when the state file does not exist yet (nothing taken).
fn taken_by_dispatch(context: &Context) -> Result<Option<i64>> {
    if !context.state_exists()? {
        return Ok(None);
    }
    let Ok(canonical) = std::fs::canonicalize(&context.db_path) else {
        return Ok(None);
    };
    let state = context.open_state()?;
    Ok(Some(state.outbox_cursor(&canonical.to_string_lossy())?))
}

/// Deletes the outbox rows dispatch has taken (seq at or before the state's cursor for this
/// license database) that are older than `--older-than`; says how many.
pub fn prune(context: &Context, args: &EventsPruneArgs, out: &mut impl Write) -> Result {
    if let Some(url) = context.server_db()? {
        return events_postgres::prune(context, url, args, out);
    }
    let mut conn = open_for_writing(&context.db_path)?;
    let db = context.db_path.display();
    if !drift::has_table(&conn, OUTBOX).map_err(|e| Error::runtime(anyhow!("{db}: {e}")))? {
        return Err(Error::config(anyhow!(
            "events are not installed in {db}: there is no outbox to prune"
        )));
    }
    let (canonical, _) = super::dispatch::open_outbox(context)?;
    let taken = match context.state_exists()? {
        true => context
            .open_state()?
            .outbox_cursor(&canonical.to_string_lossy())?,
        false => 0,
    };
    let age = chrono::Duration::from_std(args.older_than).unwrap_or(chrono::Duration::MAX);
    let before = context.clock.now() - age;
    let removed = outbox::prune(&mut conn, taken, before.timestamp_millis())
        .map_err(|e| Error::runtime(anyhow!("{db}: {e}; nothing was removed")))?;
    let age = humantime::format_duration(args.older_than);
    writeln!(
        out,
        "removed {removed} outbox row(s) from {db}: taken by dispatch (seq <= {taken}) and \
         older than {age}"
    )?;
    success()
}

/// For `check`: a broken `events.toml`, a catalog that does not fit the database, and
/// installed triggers that no longer match their tables. Nothing when events are not used.
pub fn check_problems(context: &Context) -> Vec<Problem> {
    let has_file = context.definitions.dir.join(catalog::FILE).exists();
    let catalog = match Catalog::load(&context.definitions.dir) {
        Ok(catalog) => catalog,
        Err(problems) => return problems,
    };
    // A URL that cannot be read: the searches' check says why.
    let Ok(server) = context.server_db() else {
        return Vec::new();
    };
    if let Some(url) = server {
        let (refused, stale) = super::events_postgres::check_problems(url, &catalog, has_file);
        let refused = refused.into_iter().map(|message| Problem {
            file: context.db_path.clone(),
            message: format!("events: {message}"),
        });
        let stale = stale
            .into_iter()
            .map(|(table, state)| not_current(context, &table, &state));
        return refused.chain(stale).collect();
    }
    let Ok(conn) = open_read_only(&context.db_path) else {
        return Vec::new(); // the searches' check already says why
    };
    let Ok(status) = drift::status(&conn, &catalog) else {
        return Vec::new();
    };
    if !status.installed && !has_file {
        return Vec::new();
    }
    let mut problems = catalog.problems_in(&conn);
    if status.installed {
        for table in status
            .tables
            .iter()
            .filter(|t| t.state != TableState::Current)
        {
            problems.push(not_current(context, &table.table, &table.state));
        }
    }
    problems
}

/// `check`'s words for a table whose triggers are not current.
fn not_current(context: &Context, table: &str, state: &TableState) -> Problem {
    Problem {
        file: context.db_path.clone(),
        message: format!(
            "events: table `{table}`: {state}; `keyhook events install` brings the triggers up \
             to date"
        ),
    }
}

fn load_catalog(context: &Context) -> Result<Catalog> {
    Catalog::load(&context.definitions.dir).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Error::config(anyhow!("{}", lines.join("\n")))
    })
}

fn install_error(context: &Context, error: InstallError) -> Error {
    let db = context.db_path.display();
    match error {
        InstallError::Catalog(_) | InstallError::OutboxNotEmpty(_) => {
            Error::config(anyhow!("{error}; nothing was changed in {db}"))
        }
        InstallError::Sql(_) => Error::runtime(anyhow!("{db}: {error}; nothing was changed")),
    }
}

/// The license database for `events install` and `uninstall`: it must exist already.
fn open_for_writing(path: &Path) -> Result<Connection> {
    match file_access::presence(path) {
        Presence::File => {}
        Presence::Absent => {
            return Err(Error::config(anyhow!(
                "license database {} does not exist (create one with `keyhook db init` or \
                 `keyhook db demo`)",
                path.display()
            )));
        }
        Presence::Unusable(reason) => {
            return Err(Error::runtime(anyhow!("{}: {reason}", path.display())));
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let failed = |error: rusqlite::Error| {
        let reason = file_access::open_problem(path, true).unwrap_or_else(|| error.to_string());
        Error::runtime(anyhow!(
            "could not open license database {} to write: {reason}",
            path.display()
        ))
    };
    let conn = Connection::open_with_flags(path, flags).map_err(failed)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    Ok(conn)
}

fn open_read_only(path: &Path) -> Result<Connection> {
    crate::licenses::open::connect(path).map_err(|error| match error {
        crate::licenses::query::QueryError::Missing(_) => Error::config(error),
        _ => Error::runtime(error),
    })
}

/// `2026-11-23T10:00:00.123Z`.
pub fn utc_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |at| at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}
