//! `keyhook watch` on a PostgreSQL license database: woken by `LISTEN/NOTIFY` (the triggers
//! notify `keyhook_outbox:<schema>` when their transaction commits) on a connection of its
//! own, and by a timer (`--poll`, at least a second) for the retries that came due (and for
//! events that waited behind an open transaction that rolled back, which notifies nobody). A
//! notification only says "look now": the pass reads the outbox from the cursor, and one runs
//! after every (re)connection, since notifications sent while nobody listened are gone. A lost
//! connection (a restarted server) is made again with backoff; SIGTERM ends the loop within a
//! second.

use std::io::Write;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use super::Context;
use super::dispatch::Dispatcher;
use super::license_outbox::connect_server;
use super::sending::Stop;
use super::watch_reload::Registry;
use crate::error::{Exit, Result};
use crate::events::postgres::{PgOutbox, channel};

/// The longest wait between two looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// The shortest timer: below it, a server would be polled as SQLite's counter is.
const MIN_TIMER: Duration = Duration::from_secs(1);

/// The first and the longest pause before connecting again.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(30));

/// Watches until stopped; exit 0 after a stop, as SQLite's watch.
pub fn run(
    context: &Context,
    url: &str,
    poll: Duration,
    (mut dispatcher, mut registry, stop): (Dispatcher, Registry, Stop),
    out: &mut impl Write,
) -> Result {
    let timer = poll.max(MIN_TIMER);
    let mut listener = Listener::new(url);
    let mut look = true;
    let mut next_timer = Instant::now();
    let mut retry_at = Instant::now();
    while stop.exit().is_none() {
        look |= listener.ensure();
        // A reload is looked for before a pass; one is run for it within `STOP_CHECK`.
        look |= registry.due();
        let now = Instant::now();
        if (look || now >= next_timer) && now >= retry_at {
            registry.before_pass(context, &mut dispatcher);
            match dispatcher.pass(context, &stop, out) {
                Ok(_) => {
                    look = false;
                    next_timer = Instant::now() + timer;
                }
                Err(error) => {
                    warn(&format!("dispatch pass failed, trying again: {error:#}"));
                    retry_at = Instant::now() + BACKOFF.0 * 5;
                }
            }
            out.flush()?;
        }
        let mut until = match look {
            true => retry_at,
            false => next_timer,
        };
        if listener.connection.is_none() {
            until = until.min(listener.next_try);
        }
        let wait = until
            .saturating_duration_since(Instant::now())
            .min(STOP_CHECK);
        look |= listener.wait(wait);
    }
    writeln!(out, "stopped")?;
    Ok(Exit::Success)
}

/// The listening connection, and when to try to make it again.
struct Listener {
    url: String,
    connection: Option<PgOutbox>,
    backoff: Duration,
    next_try: Instant,
}

impl Listener {
    fn new(url: &str) -> Listener {
        Listener {
            url: url.to_string(),
            connection: None,
            backoff: BACKOFF.0,
            next_try: Instant::now(),
        }
    }

    /// Connects and listens if it is not; true when it just did (a pass should look now).
    fn ensure(&mut self) -> bool {
        let live = self
            .connection
            .as_ref()
            .is_some_and(|c| !c.client.is_closed());
        if live || Instant::now() < self.next_try {
            return false;
        }
        self.connection = None;
        let listening = connect_server(&self.url).and_then(|mut pg| {
            let listen = format!("LISTEN {}", quote(&channel(&pg.schema)));
            pg.client
                .batch_execute(&listen)
                .map_err(|e| crate::error::Error::runtime(anyhow::anyhow!("{e}")))?;
            Ok(pg)
        });
        match listening {
            Ok(pg) => {
                self.connection = Some(pg);
                self.backoff = BACKOFF.0;
                true
            }
            Err(error) => {
                warn(&format!(
                    "could not listen for commits, trying again in {}: {error:#}",
                    humantime::format_duration(self.backoff)
                ));
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF.1);
                false
            }
        }
    }

    /// Waits up to `wait` for a notification; true when one (or more) came.
    fn wait(&mut self, wait: Duration) -> bool {
        let Some(pg) = self.connection.as_mut() else {
            std::thread::sleep(wait);
            return false;
        };
        let outcome = {
            let mut notifications = pg.client.notifications();
            let first = notifications.timeout_iter(wait).next();
            match first {
                Ok(Some(_)) => {
                    // The others already here are the same news.
                    while let Ok(Some(_)) = notifications.iter().next() {}
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(error) => Err(crate::licenses::postgres::connect::error_text(&error)),
            }
        };
        match outcome {
            Ok(false) if pg.client.is_closed() => {
                self.lost("the server closed the connection");
                false
            }
            Ok(notified) => notified,
            Err(why) => {
                self.lost(&why);
                false
            }
        }
    }

    fn lost(&mut self, why: &str) {
        warn(&format!(
            "lost the listening connection ({why}); connecting again"
        ));
        self.connection = None;
        self.next_try = Instant::now();
    }
}

fn quote(name: &str) -> String {
    crate::licenses::postgres::quote_identifier(name)
}

fn warn(message: &str) {
    eprintln!("warning: {message}");
}
