//! `keyhook db init` and `keyhook db demo`: create or fill a license database.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Context as _, anyhow};
use rusqlite::Connection;

use super::sending::Stop;
use super::{Context, success};
use crate::cli::DbDemoArgs;
use crate::demo::{self, DemoOptions};
use crate::error::{Error, Exit, Result};
use crate::file_access::{self, Presence};
use crate::licenses::postgres::{connect, schema as pg_schema};
use crate::licenses::schema;

pub fn init(context: &Context, out: &mut impl Write) -> Result {
    if let Some(url) = context.server_db()? {
        return init_postgres(url, out);
    }
    let path = &context.db_path;
    if let Presence::Unusable(reason) = file_access::presence(path) {
        return Err(init_error(path, reason));
    }
    let mut conn = Connection::open(path).map_err(|error| init_failure(path, &error))?;
    refuse_incomplete_table(&conn, path)?;
    // One transaction: a failure halfway leaves the file as it was, not half indexed.
    let count = (|| -> rusqlite::Result<i64> {
        let transaction = conn.transaction()?;
        schema::create(&transaction)?;
        let count = transaction.query_row(
            &format!("SELECT count(*) FROM {}", schema::TABLE),
            [],
            |row| row.get(0),
        )?;
        transaction.commit()?;
        Ok(count)
    })()
    .map_err(|error| init_failure(path, &error))?;
    writeln!(
        out,
        "license database {} is ready ({count} licenses)",
        path.display()
    )?;
    success()
}

/// An existing license table must have every column before anything is added to it.
fn refuse_incomplete_table(conn: &Connection, path: &Path) -> Result<()> {
    let failure = |error| init_failure(path, &error);
    let exists: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
            [schema::TABLE],
            |row| row.get(0),
        )
        .map_err(failure)?;
    if !exists {
        return Ok(());
    }
    let missing = schema::missing_columns(conn, schema::all_columns()).map_err(failure)?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::runtime(anyhow!(
        "license database {} already has a {} table, without QLM's column(s) {}; nothing was \
         changed: add them (`ALTER TABLE {} ADD COLUMN ...`), or point --db (KEYHOOK_DB) at a \
         new file",
        path.display(),
        schema::TABLE,
        missing.join(", "),
        schema::TABLE
    )))
}

/// A failed `db init`: SQLite's own words (never the whole script) and the file system's.
fn init_failure(path: &Path, error: &rusqlite::Error) -> Error {
    if error.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        return init_error(path, "it is not a SQLite database".into());
    }
    let sqlite = match error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    let reason = match file_access::open_problem(path, true) {
        Some(problem) => format!("{problem} ({sqlite})"),
        None => sqlite,
    };
    init_error(path, reason)
}

fn init_error(path: &Path, reason: String) -> Error {
    Error::runtime(anyhow!(
        "could not create the {} table in {}: {reason}; nothing was changed",
        schema::TABLE,
        path.display()
    ))
}

pub fn demo(context: &Context, args: &DbDemoArgs, out: &mut impl Write) -> Result {
    if let Some(url) = context.server_db()? {
        return demo_postgres(context, url, args, out);
    }
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
    let stop = Stop::install();
    let Some(written) = write_demo(path, &options, &stop).map_err(Error::runtime)? else {
        eprintln!(
            "interrupted: {} was left as it was, and the partial demo database removed",
            path.display()
        );
        return Ok(stop.exit().unwrap_or(Exit::Interrupted(2)));
    };
    writeln!(
        out,
        "wrote {written} demo licenses to {} (dates around {today})",
        path.display()
    )?;
    success()
}

/// Writes a demo database to `path`, atomically: a half-written file never takes its place.
/// Returns `None`, leaving nothing behind, when `stop` is set meanwhile.
pub fn write_demo(
    path: &Path,
    options: &DemoOptions,
    stop: &Stop,
) -> anyhow::Result<Option<usize>> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{}.tmp", file_name.unwrap_or_default()));
    let _ = std::fs::remove_file(&temporary);
    let flag = stop.shared_flag();
    let written = (|| -> rusqlite::Result<usize> {
        let mut conn = Connection::open(&temporary)?;
        // A million rows take a while: a signal stops the writing within a few thousand steps.
        conn.progress_handler(10_000, Some(move || flag.load(Ordering::Relaxed)))?;
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
        schema::create(&conn)?;
        let written = demo::populate(&mut conn, options)?;
        conn.execute_batch("ANALYZE;")?;
        Ok(written)
    })();
    if written.is_err() || stop.exit().is_some() {
        let _ = std::fs::remove_file(&temporary);
    }
    if stop.exit().is_some() {
        return Ok(None);
    }
    let written = written
        .with_context(|| format!("could not write demo database {}", temporary.display()))?;
    if let Err(error) = retire_logs(path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::rename(&temporary, path)
        .with_context(|| format!("could not move the demo database to {}", path.display()))?;
    Ok(Some(written))
}

/// Before a new database takes `path`'s place: the old one's write-ahead log or rollback
/// journal must not outlive it, as SQLite would read the old file's pages from it over the new
/// one's (a demo written over a database a crash left a log beside read as the old one). The
/// old database is opened and closed, which applies a log a crash left and removes it; a log
/// still there after that belongs to another process that has the database open, and the
/// database is not replaced under it.
fn retire_logs(path: &Path) -> anyhow::Result<()> {
    let logs = ["-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    });
    if !logs.iter().any(|log| log.exists()) {
        return Ok(());
    }
    // An exclusive transaction: it applies a log a crash left (a hot journal is rolled back,
    // a WAL read), and it cannot be had while another process is in a transaction on it.
    let opened = Connection::open(path).and_then(|conn| {
        conn.execute_batch("BEGIN EXCLUSIVE; SELECT count(*) FROM sqlite_master; COMMIT;")?;
        conn.close().map_err(|(_, error)| error)
    });
    let wal = &logs[0];
    let busy = matches!(
        &opened,
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if matches!(failure.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    if busy || (opened.is_ok() && wal.exists()) {
        return Err(anyhow!(
            "{} is open in another process ({}); nothing was replaced: stop what has it open \
             (keyhook watch, the license server) and run this again",
            path.display(),
            match busy {
                true => "it holds a lock on it".to_string(),
                false => format!("its log {} is in use", wal.display()),
            }
        ));
    }
    // Not a database SQLite can open, or closed cleanly (a journal left now is not hot):
    // what is left beside it is no one's.
    for log in &logs {
        match std::fs::remove_file(log) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("could not remove {}", log.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `db init` on a server: the tables created in one transaction, or an incomplete existing
/// license table named with what it lacks.
fn init_postgres(url: &str, out: &mut impl Write) -> Result {
    let shown = connect::redact(url);
    let fail = |reason: String| init_error(Path::new(&shown), reason);
    let mut client = connect::connect(url).map_err(|error| fail(error.to_string()))?;
    let count = pg_schema::init(&mut client).map_err(|e| fail(connect::error_text(&e)))?;
    let count = count.map_err(|missing| {
        Error::runtime(anyhow!(
            "license database {shown} already has a {} table, without QLM's column(s) {}; \
             nothing was changed: add them (`ALTER TABLE {} ADD COLUMN ...`), or point --db \
             (KEYHOOK_DB) at another schema or database",
            schema::TABLE,
            missing.join(", "),
            schema::TABLE
        ))
    })?;
    writeln!(out, "license database {shown} is ready ({count} licenses)")?;
    success()
}

/// `db demo` on a server: in one transaction, so an interrupted or failed demo leaves the
/// tables as they were; `--force` replaces existing QLM tables.
fn demo_postgres(context: &Context, url: &str, args: &DbDemoArgs, out: &mut impl Write) -> Result {
    let shown = connect::redact(url);
    let fail = |error: postgres::Error| {
        Error::runtime(anyhow!(
            "could not write demo data to {shown}: {}",
            connect::error_text(&error)
        ))
    };
    let mut client = connect::connect(url)
        .map_err(|reason| Error::runtime(anyhow!("could not connect to {shown}: {reason}")))?;
    let mut transaction = client.transaction().map_err(fail)?;
    let exists = pg_schema::table_schema(&mut transaction).map_err(fail)?;
    if exists.is_some() && !args.force {
        return Err(Error::config(anyhow!(
            "{shown} already has a {} table; pass --force to replace it (and the Customers and \
             Products tables) with demo data",
            schema::TABLE
        )));
    }
    pg_schema::drop_all(&mut transaction).map_err(fail)?;
    pg_schema::create(&mut transaction).map_err(fail)?;
    let today = context.clock.local_now().date_naive();
    let options = DemoOptions {
        licenses: args.licenses,
        today,
        seed: args.seed,
    };
    let stop = Stop::install();
    let written = demo::postgres::populate(&mut transaction, &options, &stop.shared_flag())
        .map_err(|error| {
            Error::runtime(anyhow!("could not write demo data to {shown}: {error:#}"))
        })?;
    let Some(written) = written.filter(|_| stop.exit().is_none()) else {
        eprintln!("interrupted: {shown} was left as it was");
        return Ok(stop.exit().unwrap_or(Exit::Interrupted(2)));
    };
    transaction.commit().map_err(fail)?;
    writeln!(
        out,
        "wrote {written} demo licenses to {shown} (dates around {today})"
    )?;
    success()
}
