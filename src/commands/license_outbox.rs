//! The outbox a dispatcher reads: a SQLite license database's, or a server's. A server's
//! connection is made again after it broke (a restarted server, a dropped connection): the
//! pass that failed is retried by the next one, from the cursor.

use std::path::PathBuf;

use anyhow::anyhow;
use rusqlite::Connection;

use super::Context;
use crate::error::{Error, Result};
use crate::events::dispatch::{DispatchError, Outbox, Pass, Taken, Unsendable, take};
use crate::events::expiry::Expiries;
use crate::events::postgres::{PgEventsError, PgOutbox};
use crate::licenses::database::Location;
use crate::licenses::postgres::connect;
use crate::state::EventStore;

/// The outbox of the license database `--db` names.
pub enum LicenseOutbox {
    Sqlite(Connection),
    /// The URL, and the connection while it works.
    Server {
        url: String,
        outbox: Option<Box<PgOutbox>>,
    },
}

fn not_installed(context: &Context) -> String {
    format!(
        "events are not installed in {}: run `keyhook events install` first",
        context.db.describe()
    )
}

impl LicenseOutbox {
    /// Opens the outbox and returns it with the cursor's key: the SQLite file's canonical
    /// path, or the server's URL without its password. A config error if events are not
    /// installed there.
    pub fn open(context: &Context) -> Result<(PathBuf, LicenseOutbox)> {
        let (key, outbox, installed) = LicenseOutbox::connect(context)?;
        if !installed {
            return Err(Error::config(anyhow!(not_installed(context))));
        }
        Ok((key, outbox))
    }

    /// The outbox and its cursor's key, as [`LicenseOutbox::open`], and whether events are
    /// installed there.
    fn connect(context: &Context) -> Result<(PathBuf, LicenseOutbox, bool)> {
        context.server_db()?;
        Ok(match &context.db {
            Location::Sqlite(_) => {
                let (path, conn) = super::dispatch::open_outbox(context)?;
                let installed =
                    crate::events::drift::has_table(&conn, crate::events::outbox::OUTBOX)
                        .map_err(|e| outbox_error(&context.db_path, &e))?;
                (path, LicenseOutbox::Sqlite(conn), installed)
            }
            Location::Postgres(url) => {
                let mut pg = connect_server(url)?;
                let installed = pg.installed().map_err(|e| server_error(url, e))?;
                let outbox = LicenseOutbox::Server {
                    url: url.clone(),
                    outbox: Some(Box::new(pg)),
                };
                (PathBuf::from(connect::cursor_key(url)), outbox, installed)
            }
        })
    }

    /// Whether a dispatch could open the outbox: `Some(why not)` when events are not installed
    /// in the license database (`check` says it as `dispatch` would); `None` when they are, or
    /// when the database cannot be reached at all (the searches' check says why).
    pub fn not_installed_problem(context: &Context) -> Option<String> {
        match LicenseOutbox::connect(context) {
            Ok((_, _, false)) => Some(not_installed(context)),
            _ => None,
        }
    }

    /// Takes the events after the cursor; a server's connection is made first if it broke.
    pub fn take(
        &mut self,
        state: &mut dyn EventStore,
        pass: &Pass,
        now: i64,
        unsendable: &mut Vec<Unsendable>,
    ) -> std::result::Result<Taken, DispatchError> {
        match self {
            LicenseOutbox::Sqlite(conn) => take(state, conn, pass, now, unsendable),
            LicenseOutbox::Server { url, outbox } => {
                if outbox.as_ref().is_none_or(|pg| pg.client.is_closed()) {
                    *outbox = Some(Box::new(PgOutbox::connect(url)?));
                }
                let pg = outbox.as_mut().expect("connected above");
                let taken = take(state, pg.as_mut() as &mut dyn Outbox, pass, now, unsendable);
                if taken.is_err() {
                    *outbox = None;
                }
                taken
            }
        }
    }

    /// Where the `license.expired` scan reads; `None` while a server's connection is broken.
    pub fn expiries(&mut self) -> Option<&mut dyn Expiries> {
        match self {
            LicenseOutbox::Sqlite(conn) => Some(conn),
            LicenseOutbox::Server { outbox, .. } => {
                outbox.as_deref_mut().map(|pg| pg as &mut dyn Expiries)
            }
        }
    }

    /// The SQLite connection, for what only SQLite has (`PRAGMA data_version`).
    pub fn sqlite(&self) -> Option<&Connection> {
        match self {
            LicenseOutbox::Sqlite(conn) => Some(conn),
            LicenseOutbox::Server { .. } => None,
        }
    }
}

/// Connects to the server's outbox; an error names the server without its password.
pub fn connect_server(url: &str) -> Result<PgOutbox> {
    PgOutbox::connect(url).map_err(|error| match error {
        PgEventsError::NoLicenseTable => Error::config(anyhow!(
            "license database {}: {error} (`keyhook db init` creates it)",
            connect::redact(url)
        )),
        error => server_error(url, error),
    })
}

/// A server's failure, named without the password.
pub fn server_error(url: &str, error: PgEventsError) -> Error {
    Error::runtime(anyhow!(
        "license database {}: {error}",
        connect::redact(url)
    ))
}

/// A failure reading the SQLite license database's outbox, naming the file; a write lock
/// held past the wait says so, as a search meeting it does.
fn outbox_error(path: &std::path::Path, error: &rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match error.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => Error::runtime(anyhow!(
            "{}",
            crate::licenses::query::QueryError::Busy(path.to_path_buf())
        )),
        _ => Error::runtime(anyhow!("license database {}: {error}", path.display())),
    }
}
