//! `keyhook watch`: the long-running dispatcher. It polls `PRAGMA data_version` on a
//! connection it keeps open (a read of a counter in shared memory, no query of the outbox),
//! runs a pass when another connection committed, and once a second for the retries that
//! came due. A busy or replaced license database is a warning, never the end. On a
//! PostgreSQL license database, `watch_postgres` waits for `NOTIFY` instead.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::Context;
use super::dispatch::{Dispatcher, open_outbox};
use super::license_outbox::LicenseOutbox;
use super::sending::Stop;
use super::watch_postgres;
use super::watch_reload::Registry;
use crate::cli::WatchArgs;
use crate::error::{Error, Exit, Result};
use crate::licenses::database::Location;

/// How often due retries are looked for, and the license file's identity checked.
const TICK: Duration = Duration::from_secs(1);

pub fn run(context: &Context, args: &WatchArgs, out: &mut impl Write) -> Result {
    // A URL that cannot be read stops it at the start, not at every pass.
    context.server_db()?;
    context.server_state()?;
    let stop = Stop::install();
    let Some(mut dispatcher) = Dispatcher::new(context, out)? else {
        if let Some(why) = super::dispatch::held(context) {
            return Err(Error::config(anyhow::anyhow!("{why}")));
        }
        return Ok(Exit::Config);
    };
    // While running, a file that breaks keeps its last good webhook; at start there is none.
    if let Some(why) = dispatcher.held.take() {
        return Err(Error::config(anyhow::anyhow!("{why}")));
    }
    dispatcher.gate_expiry_scans();
    // Before the line below: a SIGHUP sent once it is printed reloads, not kills.
    let mut registry = Registry::new(context);
    // A server is named as shown everywhere (no secret), not by its cursor's key.
    let watched = match &context.db {
        Location::Sqlite(_) => dispatcher.license_db.display().to_string(),
        Location::Postgres(_) => context.db.describe(),
    };
    writeln!(
        out,
        "watching {watched} for {} webhook source(s); stop with SIGTERM or Ctrl-C",
        dispatcher.sources.len()
    )?;
    out.flush()?;
    if let Some(url) = context.server_db()? {
        let watching = (dispatcher, registry, stop);
        return watch_postgres::run(context, url, args.poll, watching, out);
    }
    let mut watch = Watch {
        version: None,
        next_tick: Instant::now(),
        inode: inode(context),
        retry_at: Instant::now(),
        backoff: args.poll,
    };
    while stop.exit().is_none() {
        // After a pass that went through, poll again at once: what was committed during it
        // is not kept waiting a poll interval.
        let mut pause = true;
        if Instant::now() >= watch.retry_at && watch.due(dispatcher.outbox.sqlite()) {
            registry.before_pass(context, &mut dispatcher);
            match dispatcher.pass(context, &stop, out) {
                Ok(_) => {
                    pause = false;
                    watch.backoff = args.poll;
                }
                Err(error) => watch.failed(&error),
            }
            out.flush()?;
        }
        if Instant::now() >= watch.next_tick {
            watch.next_tick = Instant::now() + TICK;
            watch.reopen_if_replaced(context, &mut dispatcher);
        }
        if pause {
            std::thread::sleep(args.poll);
        }
    }
    writeln!(out, "stopped")?;
    // A stop is how a service ends: exit 0 (a second Ctrl-C exits at once with 130).
    Ok(Exit::Success)
}

/// The longest wait between two passes that fail.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

/// What the loop remembers between polls.
struct Watch {
    /// The last `data_version` a pass ran for; `None` before the first pass.
    version: Option<i64>,
    next_tick: Instant,
    inode: Option<u64>,
    /// No pass before this, after one failed.
    retry_at: Instant,
    /// How long the next failed pass waits: the poll interval, doubled at each failure.
    backoff: std::time::Duration,
}

impl Watch {
    /// A pass failed. The commit that started it is not taken yet: the next try runs a pass
    /// whatever the license database says, after a wait that doubles while passes keep
    /// failing (a state or database that is down), up to [`MAX_BACKOFF`].
    fn failed(&mut self, error: &Error) {
        warn(&format!(
            "dispatch pass failed, trying again in {:?}: {error:#}",
            self.backoff
        ));
        self.version = None;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Whether to run a pass now: another connection committed to the license database
    /// (`outbox`), or a tick came.
    fn due(&mut self, outbox: Option<&rusqlite::Connection>) -> bool {
        let Some(outbox) = outbox else {
            return false;
        };
        let version = outbox.query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0));
        let version = match version {
            Ok(version) => Some(version),
            Err(error) => {
                warn(&format!("license database unreadable for now: {error}"));
                None
            }
        };
        let changed = version.is_some() && version != self.version;
        if changed || Instant::now() >= self.next_tick {
            self.version = version.or(self.version);
            return true;
        }
        false
    }

    /// A license database replaced by another file (a restore, a copy) is reopened.
    fn reopen_if_replaced(&mut self, context: &Context, dispatcher: &mut Dispatcher) {
        let now = inode(context);
        if now.is_none() || now == self.inode {
            return;
        }
        match open_outbox(context) {
            Ok((path, conn)) => {
                warn(&format!(
                    "license database {} was replaced; reopened it",
                    path.display()
                ));
                dispatcher.license_db = path;
                dispatcher.outbox = LicenseOutbox::Sqlite(conn);
                self.inode = now;
                self.version = None;
            }
            Err(error) => warn(&format!(
                "license database replaced, not reopened yet: {error}"
            )),
        }
    }
}

fn inode(context: &Context) -> Option<u64> {
    std::fs::metadata(&context.db_path).ok().map(|m| m.ino())
}

fn warn(message: &str) {
    eprintln!("warning: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit by another connection makes a pass due at once, long before the tick: the
    /// latency `watch` promises does not come from its once-a-second tick.
    #[test]
    fn a_commit_by_another_connection_is_due_at_once_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("licenses.db");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let outbox = rusqlite::Connection::open(&path).unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        let mut watch = Watch {
            version: None,
            next_tick: far,
            inode: None,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(25),
        };
        assert!(watch.due(Some(&outbox)), "the first poll runs a pass");
        assert!(!watch.due(Some(&outbox)), "nothing changed, no tick");
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert!(watch.due(Some(&outbox)), "another connection committed");
        assert!(!watch.due(Some(&outbox)), "that commit runs one pass");
        watch.next_tick = Instant::now();
        assert!(watch.due(Some(&outbox)), "the tick");
        assert!(
            !watch.due(None),
            "no SQLite outbox: the PostgreSQL loop decides"
        );
    }
}
