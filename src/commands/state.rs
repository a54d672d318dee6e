//! `keyhook state migrate`: a SQLite state moved into a PostgreSQL state.

use std::io::Write;

use anyhow::anyhow;

use super::{Context, success};
use crate::cli::StateMigrateArgs;
use crate::error::{Error, Result};
use crate::state::postgres::PgState;
use crate::state::{Location, StateDb};

pub fn migrate(context: &Context, args: &StateMigrateArgs, out: &mut impl Write) -> Result {
    let Location::Postgres(url) = Location::parse(std::path::Path::new(&args.to)) else {
        return Err(Error::config(anyhow!(
            "--to must be a PostgreSQL URL (postgres://user@host/db?schema=keyhook)"
        )));
    };
    crate::state::postgres::check_url(&url).map_err(|reason| {
        Error::config(anyhow!("{}", super::bad_server_url("--to", &url, reason)))
    })?;
    if !StateDb::exists(&args.from)? {
        return Err(Error::config(anyhow!(
            "--from {}: no such state file",
            args.from.display()
        )));
    }
    let from = StateDb::open(&args.from)?;
    let to = PgState::open(&url, context.identity.clone())?;
    let moved = to.import(&from)?;
    writeln!(
        out,
        "moved {} tasks, {} runs, {} deliveries ({} pending or failed), {} attempts and {} bad \
         rows from {} to {}",
        moved.tasks,
        moved.runs,
        moved.deliveries,
        moved.waiting,
        moved.attempts,
        moved.bad_rows,
        args.from.display(),
        to.shown()
    )?;
    success()
}
