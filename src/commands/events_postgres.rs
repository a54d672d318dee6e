//! `keyhook events install|uninstall|status|prune` on a PostgreSQL license database: the same
//! words as on SQLite, the objects made in the license table's schema.

use std::io::Write;

use anyhow::anyhow;

use super::license_outbox::{connect_server, server_error};
use super::{Context, success};
use crate::cli::{EventsPruneArgs, EventsStatusArgs, EventsUninstallArgs};
use crate::error::{Error, Result};
use crate::events::catalog::Catalog;
use crate::events::outbox::{InstallError, OUTBOX, Report};
use crate::events::postgres::{PgEventsError, PgOutbox, channel, drift, install as pg_install};
use crate::licenses::postgres::connect;

pub fn install(url: &str, catalog: &Catalog, out: &mut impl Write) -> Result {
    let mut pg = connect_server(url)?;
    let report = pg_install::install(&mut pg, catalog).map_err(|e| install_error(url, e))?;
    let db = describe(url, &pg);
    if report.is_empty() {
        writeln!(
            out,
            "events are already installed in {db} and current: nothing changed"
        )?;
        return success();
    }
    print(&report, out)?;
    writeln!(
        out,
        "installed in {db}: each committed change to {} now appends its events to {OUTBOX} in \
         the same transaction and notifies `{}`",
        catalog.tables().join(", "),
        channel(&pg.schema)
    )?;
    success()
}

pub fn uninstall(url: &str, args: &EventsUninstallArgs, out: &mut impl Write) -> Result {
    let mut pg = connect_server(url)?;
    let report = pg_install::uninstall(&mut pg, args.force).map_err(|e| install_error(url, e))?;
    let db = describe(url, &pg);
    if report.is_empty() {
        writeln!(out, "events are not installed in {db}: nothing changed")?;
        return success();
    }
    print(&report, out)?;
    writeln!(out, "uninstalled from {db}")?;
    success()
}

/// For `check` on a server: what `events install` would refuse in the catalog (a table or
/// key column the server lacks, a `condition_postgres` it cannot compile), then the installed
/// tables whose triggers are not current (changed tables, an altered function, writers that
/// could not write their events). The catalog is checked once events are installed there or
/// `events.toml` exists. Nothing when the server cannot be reached (the searches' check says
/// why).
pub fn check_problems(
    url: &str,
    catalog: &Catalog,
    has_file: bool,
) -> (Vec<String>, Vec<(String, drift::TableState)>) {
    let Ok(mut pg) = connect_server(url) else {
        return (Vec::new(), Vec::new());
    };
    let schema = pg.schema.clone();
    let status = match drift::status(&mut pg.client, &schema, catalog) {
        Ok(status) => status,
        Err(_) => return (Vec::new(), Vec::new()),
    };
    if !status.installed && !has_file {
        return (Vec::new(), Vec::new());
    }
    let problems = match pg_install::catalog_problems(&mut pg, catalog) {
        Ok(problems) => problems
            .into_iter()
            .map(|problem| format!("{problem}; `keyhook events install` refuses it"))
            .collect(),
        Err(error) => vec![format!(
            "the catalog could not be checked on the server: {error}"
        )],
    };
    let stale = match status.installed {
        true => status
            .tables
            .into_iter()
            .filter(|table| table.state != drift::TableState::Current)
            .map(|table| (table.table, table.state))
            .collect(),
        false => Vec::new(),
    };
    (problems, stale)
}

pub fn status(
    context: &Context,
    url: &str,
    (catalog, args): (&Catalog, &EventsStatusArgs),
    out: &mut impl Write,
) -> Result {
    let mut pg = connect_server(url)?;
    let failure = |error: postgres::Error| server_error(url, PgEventsError::from(error));
    let status = drift::status(&mut pg.client, &pg.schema.clone(), catalog).map_err(failure)?;
    let taken = taken_by_dispatch(context, url)?;
    let counts = pg.counts(taken).map_err(|e| server_error(url, e))?;
    let db = describe(url, &pg);
    super::events::show_status(context, &db, &status, counts.as_ref(), args.json, out)
}

/// Deletes the outbox rows dispatch has taken that are older than `--older-than`.
pub fn prune(context: &Context, url: &str, args: &EventsPruneArgs, out: &mut impl Write) -> Result {
    let mut pg = connect_server(url)?;
    let db = describe(url, &pg);
    if !pg.installed().map_err(|e| server_error(url, e))? {
        return Err(Error::config(anyhow!(
            "events are not installed in {db}: there is no outbox to prune"
        )));
    }
    let taken = taken_by_dispatch(context, url)?.unwrap_or(0);
    let age = chrono::Duration::from_std(args.older_than).unwrap_or(chrono::Duration::MAX);
    let before = context.clock.now() - age;
    let removed = pg
        .prune(taken, before.timestamp_millis())
        .map_err(|e| Error::runtime(anyhow!("{db}: {e}; nothing was removed")))?;
    let age = humantime::format_duration(args.older_than);
    writeln!(
        out,
        "removed {removed} outbox row(s) from {db}: taken by dispatch (seq <= {taken}) and \
         older than {age}"
    )?;
    success()
}

/// The state's cursor for this server (keyed by its URL without the password); `None` when the
/// state file does not exist yet.
fn taken_by_dispatch(context: &Context, url: &str) -> Result<Option<i64>> {
    if !context.state_exists()? {
        return Ok(None);
    }
    Ok(Some(
        context
            .open_state()?
            .outbox_cursor(&connect::cursor_key(url))?,
    ))
}

/// `postgres://...` (schema `public`): where the objects are.
fn describe(url: &str, pg: &PgOutbox) -> String {
    format!("{} (schema `{}`)", connect::redact(url), pg.schema)
}

fn print(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    for line in report {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn install_error(url: &str, error: InstallError) -> Error {
    let db = connect::redact(url);
    match error {
        InstallError::Catalog(_) | InstallError::OutboxNotEmpty(_) => {
            Error::config(anyhow!("{error}; nothing was changed in {db}"))
        }
        InstallError::Sql(_) => Error::runtime(anyhow!("{db}: {error}; nothing was changed")),
    }
}
