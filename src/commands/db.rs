//! `keyhook db init` and `keyhook db demo`: create or fill a license database.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, anyhow};
use rusqlite::Connection;

use super::{Context, success};
use crate::cli::DbDemoArgs;
use crate::demo::{self, DemoOptions};
use crate::error::{Error, Result};
use crate::licenses::schema;

pub fn init(context: &Context, out: &mut impl Write) -> Result {
    let path = &context.db_path;
    let conn = Connection::open(path)
        .with_context(|| format!("could not create license database {}", path.display()))
        .map_err(Error::runtime)?;
    schema::create(&conn)
        .with_context(|| {
            format!(
                "could not create the {} table in {}",
                schema::TABLE,
                path.display()
            )
        })
        .map_err(Error::runtime)?;
    let count: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {}", schema::TABLE),
            [],
            |row| row.get(0),
        )
        .map_err(Error::runtime)?;
    writeln!(
        out,
        "license database {} is ready ({count} licenses)",
        path.display()
    )?;
    success()
}

pub fn demo(context: &Context, args: &DbDemoArgs, out: &mut impl Write) -> Result {
    let path = &context.db_path;
    if path.exists() && !args.force {
        return Err(Error::config(anyhow!(
            "{} already exists; pass --force to replace it with a demo database",
            path.display()
        )));
    }
    let today = context.clock.local_now().date_naive();
    let options = DemoOptions {
        licenses: args.licenses,
        today,
        seed: args.seed,
    };
    let written = write_demo(path, &options).map_err(Error::runtime)?;
    writeln!(
        out,
        "wrote {written} demo licenses to {} (dates around {today})",
        path.display()
    )?;
    success()
}

/// Writes a demo database to `path`, atomically: a half-written file never takes its place.
pub fn write_demo(path: &Path, options: &DemoOptions) -> anyhow::Result<usize> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{}.tmp", file_name.unwrap_or_default()));
    let _ = std::fs::remove_file(&temporary);
    let written = (|| -> rusqlite::Result<usize> {
        let mut conn = Connection::open(&temporary)?;
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
        schema::create(&conn)?;
        let written = demo::populate(&mut conn, options)?;
        conn.execute_batch("ANALYZE;")?;
        Ok(written)
    })()
    .with_context(|| format!("could not write demo database {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("could not move the demo database to {}", path.display()))?;
    Ok(written)
}
