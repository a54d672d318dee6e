//! `keyhook dispatch`: one pass. New outbox rows become deliveries (recorded with the cursor),
//! then every webhook source's due deliveries go out through the one send path. `run-due`
//! and `watch` run the same pass.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use super::Context;
use super::license_outbox::LicenseOutbox;
use super::sending::{self, Stop};
use super::webhook_sources::{self, Source};
use crate::cli::DispatchArgs;
use crate::delivery::dispatch::Tally;
use crate::error::{Error, Exit, Result};
use crate::events::catalog::Catalog;
use crate::events::dispatch::{BodyError, DispatchError, Pass, Taken};
use crate::events::expired::take_expired;
use crate::state::State;
use crate::state::deliveries::Queue;

/// Outbox rows read and recorded per state transaction.
const BATCH: u32 = 500;

pub fn run(context: &Context, _: &DispatchArgs, out: &mut impl Write) -> Result {
    let stop = Stop::install();
    let Some(mut dispatcher) = Dispatcher::new(context, out)? else {
        // The only webhook files may be broken ones: their events wait, an error.
        if let Some(why) = held(context) {
            return Err(Error::config(anyhow!(why)));
        }
        return Ok(Exit::Success);
    };
    let exit = dispatcher.pass(context, &stop, out)?;
    Ok(exit.worst(stop.exit().unwrap_or(Exit::Success)))
}

/// What passes share: the webhook sources (secrets and TLS resolved once), the catalog, the
/// outbox read-only, and the state database once opened (opening it checks the schema).
pub struct Dispatcher {
    pub sources: Vec<Source>,
    catalog: Catalog,
    /// The license database's canonical path: the cursor's key.
    pub license_db: PathBuf,
    pub outbox: LicenseOutbox,
    /// Opened by the first pass and kept; dropped after a failed pass, so the next reopens it.
    state: Option<State>,
    /// `watch`'s cadence for the `license.expired` scan; `None`: every pass scans.
    expiry_gate: Option<ExpiryGate>,
    /// Why no event is taken: a webhook file is broken. An event is taken once for every
    /// webhook, so taking it now would pass the broken one's by for good; the deliveries
    /// already recorded still go out.
    pub held: Option<String>,
    /// `held` was said (by `watch`: once, not at every pass).
    held_said: bool,
    /// The outbox behind the cursor ([`Taken::behind`]) as last said: `watch` says it once.
    behind_said: Option<(i64, i64)>,
    /// What was said of deliveries waiting behind an earlier one of their entity.
    waiting_said: WaitingSaid,
}

impl Dispatcher {
    /// Loads the active webhooks of the runner's environment and opens the outbox; `None`
    /// (said) when there is nothing to dispatch: no webhook, or events not installed.
    pub fn new(context: &Context, out: &mut impl Write) -> Result<Option<Dispatcher>> {
        let definitions = &context.definitions;
        // A loaded webhook with a problem (a name another file has too): nothing is taken or
        // sent, and every webhook problem is said, not the first file's alone.
        if definitions
            .webhooks
            .iter()
            .any(|webhook| !definitions.problems_in(&webhook.path).is_empty())
        {
            let lines: Vec<String> = definitions
                .webhook_problems()
                .iter()
                .map(ToString::to_string)
                .collect();
            return Err(Error::config(anyhow!(
                "{}\nnothing is dispatched until the webhook files are fixed (`keyhook check` \
                 lists every problem); the events wait in the outbox",
                lines.join("\n")
            )));
        }
        let environment = context.environment();
        let catalog = definitions.catalog.clone();
        let now = context.clock.now();
        let sources = webhook_sources::load(definitions, environment, now)
            .map_err(|error| Error::config(anyhow!("{error}")))?;
        if sources.is_empty() {
            // A broken file may be the only webhook: the caller says that instead.
            if definitions.webhook_problems().is_empty() {
                writeln!(out, "no active webhooks in environment `{environment}`")?;
            }
            return Ok(None);
        }
        let (license_db, outbox) = LicenseOutbox::open(context)?;
        Ok(Some(Dispatcher {
            sources,
            catalog,
            license_db,
            outbox,
            state: None,
            expiry_gate: None,
            held: held(context),
            held_said: false,
            behind_said: None,
            waiting_said: WaitingSaid::default(),
        }))
    }

    /// Deliveries waiting behind an earlier one are said only by a pass that sent something to
    /// their URL (`run-due`, called every minute: not the same line in every cron mail).
    pub fn say_waiting_only_with_sends(&mut self) {
        self.waiting_said.only_with_sends = true;
    }

    /// From now on, the `license.expired` scan runs on its own cadence rather than every pass
    /// (`watch`): see [`ExpiryGate`].
    pub fn gate_expiry_scans(&mut self) {
        self.expiry_gate = Some(ExpiryGate::default());
    }

    /// Sends to `sources` from the next pass on (`watch` reloaded its definitions). A source
    /// no longer there keeps its deliveries pending, as a removed webhook's. Events are taken
    /// again if a broken file held them.
    pub fn replace_sources(&mut self, sources: Vec<Source>, catalog: Catalog) {
        self.sources = sources;
        self.catalog = catalog;
        self.hold(None);
    }

    /// Takes no new event from the next pass on, for `why` (a webhook file that broke while
    /// `watch` runs: an event taken now would pass its webhook by for good), said once; `None`
    /// takes them again. The deliveries already recorded still go out.
    pub fn hold(&mut self, why: Option<String>) {
        self.held_said &= self.held == why;
        self.held = why;
    }

    /// Takes new events, then sends every source's due deliveries. Times are the clock's
    /// ticks (the real time unless pinned), so a long `watch` sees retries come due.
    pub fn pass(&mut self, context: &Context, stop: &Stop, out: &mut impl Write) -> Result<Exit> {
        if self.state.is_none() {
            self.state = Some(context.open_state()?);
        }
        let result = self.pass_with_state(context, stop, out);
        if result.is_err() {
            self.state = None;
        }
        result
    }

    fn pass_with_state(
        &mut self,
        context: &Context,
        stop: &Stop,
        out: &mut impl Write,
    ) -> Result<Exit> {
        let (taken, mut exit) = match &self.held {
            Some(why) => {
                if !self.held_said {
                    writeln!(std::io::stderr(), "error: {why}")?;
                    self.held_said = true;
                }
                (Taken::default(), Exit::Config)
            }
            // No webhook is active (`watch` reloaded with every one disabled): the events wait
            // for one, as `dispatch` leaves them when it finds none.
            None if self.sources.is_empty() => (Taken::default(), Exit::Success),
            None => (self.take(context)?, Exit::Success),
        };
        if taken.events > 0 {
            writeln!(
                out,
                "dispatch: {} new event(s), {} deliveries recorded",
                taken.events, taken.deliveries
            )?;
            // Said as it happens: sending may take a while (and a benchmark times the line).
            out.flush()?;
        }
        let state = self.state.as_ref().expect("opened by pass");
        for source in &self.sources {
            if stop.exit().is_some() {
                break;
            }
            let said = &mut self.waiting_said;
            let sent = send_source(context, state, source, stop, said, out);
            let name = &source.route.source;
            exit = exit.worst(super::sending::or_source_local(sent, name, out)?);
        }
        Ok(exit)
    }

    /// Records the deliveries of the events after the cursor.
    fn take(&mut self, context: &Context) -> Result<Taken> {
        let state = self.state.as_mut().expect("opened by pass");
        let now = context.clock.tick().timestamp();
        let body = |route: &crate::events::dispatch::Route, row: &_, snapshot: &_| {
            let source = self.sources.iter().find(|s| s.route.source == route.source);
            source.map_or_else(
                || Err(BodyError::WebhookGone),
                |s| webhook_sources::body(s, &self.catalog, row, snapshot),
            )
        };
        let routes: Vec<_> = self.sources.iter().map(|s| s.route.clone()).collect();
        let pass = Pass {
            license_db: &self.license_db.to_string_lossy(),
            routes: &routes,
            body: &body,
            batch: BATCH,
        };
        let mut unsendable = Vec::new();
        let failed = |error| match error {
            DispatchError::State(error) => error.into(),
            error @ DispatchError::Thread { .. } => Error::runtime(error),
            other => Error::runtime(anyhow!("{}: {other}", context.db_path.display())),
        };
        let state = state.events();
        let taken = (|| -> Result<Taken> {
            let mut taken = self
                .outbox
                .take(state, &pass, now, &mut unsendable)
                .map_err(failed)?;
            let (at, zone) = (context.clock.tick(), context.clock.zone());
            let expired = match (&mut self.expiry_gate, self.outbox.expiries()) {
                (_, None) => Taken::default(),
                (Some(gate), _) if !gate.due(at) => Taken::default(),
                (gate, Some(conn)) => {
                    let look_ahead = gate.is_some();
                    let scan =
                        take_expired(state, conn, &pass, (at, zone), look_ahead, &mut unsendable)
                            .map_err(failed)?;
                    if let Some(gate) = gate {
                        gate.scanned(at, scan.next_expiry);
                    }
                    scan.taken
                }
            };
            taken.events += expired.events;
            taken.deliveries += expired.deliveries;
            Ok(taken)
        })();
        if let Ok(taken) = &taken {
            self.say_behind(context, taken);
        }
        // Said even when the pass then failed: the batches recorded before it moved the cursor
        // past these events, so no later pass would say it.
        for skipped in &unsendable {
            eprintln!(
                "warning: event delivery {} was not recorded: {}",
                skipped.id,
                super::printable::short(&skipped.reason)
            );
        }
        taken
    }

    /// Says (once per figures) that the outbox numbers its events where the cursor has passed.
    fn say_behind(&mut self, context: &Context, taken: &Taken) {
        let Some(behind @ (handed_out, cursor)) = taken.behind else {
            return;
        };
        if self.behind_said == Some(behind) {
            return;
        }
        self.behind_said = Some(behind);
        eprintln!(
            "warning: the outbox of license database {} has handed out event numbers up to \
             {handed_out} only, below keyhook's cursor {cursor}: the database was replaced by an \
             older copy (a restore?). Its new events are numbered where the cursor has passed, \
             and are not sent until the numbers pass {cursor}; to have them numbered above it \
             from now on, run `keyhook events uninstall --force` and `keyhook events install`",
            context.db_path.display()
        );
    }
}

/// When `watch` scans for `license.expired`. The scan reads the whole license table (the
/// expiry is an expression, not an indexed column), so it runs when the clock reaches the
/// earliest expiry the previous scan saw ahead of it, and otherwise once a minute, not on
/// every pass. Skipping a scan loses nothing: the next scan's window starts where the last
/// one ended. A change that moves an expiry sooner than the one expected is seen by the
/// minute's scan at the latest.
#[derive(Debug, Default)]
pub struct ExpiryGate {
    /// When the last scan ran; `None` before the first.
    last: Option<DateTime<Utc>>,
    /// The earliest expiry after the last scan's window, when there is one.
    next_expiry: Option<DateTime<Utc>>,
}

/// How often `watch` scans for `license.expired` when no expiry is expected sooner.
pub const EXPIRY_RESCAN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl ExpiryGate {
    fn due(&self, now: DateTime<Utc>) -> bool {
        let Some(last) = self.last else { return true };
        // A clock that went back scans too: the window logic handles it.
        now < last
            || now - last >= EXPIRY_RESCAN
            || self.next_expiry.is_some_and(|next| now >= next)
    }

    fn scanned(&mut self, at: DateTime<Utc>, next_expiry: Option<DateTime<Utc>>) {
        self.last = Some(at);
        self.next_expiry = next_expiry;
    }
}

/// Why events must wait while a webhook file is broken, and what to do.
pub const HOLD: &str = "no new event is taken while a webhook file (or events.toml) is broken: \
    each event is taken once for every webhook, so the broken one's would be lost. Fix the file (`keyhook \
    check` lists every problem); the events wait in the outbox, and deliveries already recorded \
    are still sent";

/// Why events must wait: the broken webhook files, and [`HOLD`].
pub fn held(context: &Context) -> Option<String> {
    let problems = context.definitions.webhook_problems();
    if problems.is_empty() {
        return None;
    }
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    Some(format!("{}\n{HOLD}", lines.join("\n")))
}

/// Sends the due deliveries of the webhook sources `names` (`retry`), in the runner's
/// environment.
pub fn send_sources(
    context: &Context,
    names: &[String],
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    let mut quiet = Vec::new();
    let sources = match Dispatcher::new(context, &mut quiet)? {
        Some(dispatcher) => dispatcher.sources,
        None => Vec::new(),
    };
    let state = context.open_state()?;
    let mut exit = Exit::Success;
    let mut said = WaitingSaid::default();
    // A webhook whose file is broken is not loaded: it may be the one.
    let broken = match context.definitions.webhook_problems().is_empty() {
        true => "",
        false => " (or its file is broken: `keyhook check` names it)",
    };
    for name in names {
        if let Some(switch) = super::sending::all_switched_off(context) {
            // Nothing is sent while the global switch is off: the retries wait, as a task's do.
            writeln!(out, "{name}: retries wait: {switch}")?;
            continue;
        }
        let Some(source) = sources.iter().find(|s| s.route.source == *name) else {
            writeln!(
                out,
                "{name}: deliveries wait, but its webhook is gone, inactive or of another \
                 environment{broken}; they stay pending"
            )?;
            exit = exit.worst(Exit::DeliveryFailed);
            continue;
        };
        let sent = send_source(context, &state, source, stop, &mut said, out);
        let name = &source.route.source;
        exit = exit.worst(super::sending::or_source_local(sent, name, out)?);
    }
    Ok(exit)
}

/// The license database read-only, and its canonical path.
pub fn open_outbox(context: &Context) -> Result<(PathBuf, Connection)> {
    let path = &context.db_path;
    let canonical = std::fs::canonicalize(path)
        .map_err(|error| Error::config(anyhow!("license database {}: {error}", path.display())))?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&canonical, flags)
        .and_then(|mut conn| conn.busy_handler(Some(retry_soon)).map(|()| conn))
        .map_err(|error| Error::runtime(anyhow!("license database {}: {error}", path.display())))?;
    Ok((canonical, conn))
}

/// The outbox connection's busy handler: up to about 5 s, as a busy timeout would wait, but
/// in short, even steps. SQLite's own busy timeout sleeps ever longer (1, 2, 5 ... 100 ms):
/// against a writer committing 100 times a second in rollback-journal mode (a locked file
/// for most of each commit), a reader that sleeps 100 ms keeps waking inside the next commit,
/// and one read of the outbox took 0.3-2.6 s. Retrying every 0.2 ms, then every 2 ms, finds
/// the gap between two commits.
fn retry_soon(attempt: i32) -> bool {
    const QUICK: i32 = 50;
    let pause = match attempt < QUICK {
        true => Duration::from_micros(200),
        false => Duration::from_millis(2),
    };
    std::thread::sleep(pause);
    // 50 x 0.2 ms + 2,495 x 2 ms: 5 s in all.
    attempt < QUICK + 2_495
}

/// How many deliveries of each source were last said to wait behind an earlier one of their
/// entity: `watch` says it again only when that changes.
#[derive(Default)]
pub struct WaitingSaid {
    counts: HashMap<String, i64>,
    only_with_sends: bool,
}

/// Sends one source's due deliveries under its lock; a 410 left it disabled. Says how many
/// wait behind an earlier delivery of their entity, when that is not what `said` holds.
fn send_source(
    context: &Context,
    state: &State,
    source: &Source,
    stop: &Stop,
    said: &mut WaitingSaid,
    out: &mut impl Write,
) -> Result<Exit> {
    let name = &source.route.source;
    let now = context.clock.tick().timestamp();
    if let Some(webhook) = context.definitions.webhook(&source.route.webhook)
        && let Some(was) = webhook_sources::moved(
            webhook,
            name,
            &source.url,
            &state.source_urls(&source.route.webhook)?,
        )
        && state.pending_kinds(name)?.0
    {
        // Not seen under its new URL: the deliveries that wait stay for the one they were for.
        writeln!(
            out,
            "{}",
            webhook_sources::moved_words(name, &was, &source.url)
        )?;
        return Ok(Exit::DeliveryFailed);
    }
    let gone = state.see_source(name, &source.route.webhook, &source.url, now)?;
    if gone.is_some() {
        writeln!(
            out,
            "WARNING: {name}: webhook DISABLED after 410 Gone; deliveries wait until \
             `keyhook enable {}`",
            super::printable::shell_word(&source.route.webhook)
        )?;
        return Ok(Exit::DeliveryFailed);
    }
    let Some(held) = sending::hold_source(context, state, &source.target)? else {
        if state.is_shared() {
            // Several hosts share the state: another one is sending it now, as it should.
            writeln!(out, "{name}: another host or process is sending it")?;
            return Ok(Exit::Success);
        }
        writeln!(
            out,
            "{name}: another keyhook process is sending it; it waits"
        )?;
        return Ok(Exit::Locked);
    };
    let observe = |_: &crate::delivery::dispatch::Event| {};
    let tally = held.send(context, state, Queue::DueForTask(name, now), stop, &observe)?;
    print(name, &tally, out)?;
    let waiting = state.held_back(name)?;
    let changed = said.counts.insert(name.clone(), waiting).unwrap_or(0) != waiting;
    let sent = tally.delivered + tally.retrying + tally.dead > 0;
    if changed && waiting > 0 && (sent || !said.only_with_sends) {
        writeln!(
            out,
            "{name}: {waiting} {} behind an earlier one of the same license or customer, \
             which failed or is not sent yet; `keyhook log --webhook {}` shows which",
            if waiting == 1 {
                "delivery waits"
            } else {
                "deliveries wait"
            },
            source.route.webhook
        )?;
    }
    Ok(sending::exit_of(&tally, stop))
}

fn print(name: &str, tally: &Tally, out: &mut impl Write) -> std::io::Result<()> {
    let sent = tally.delivered + tally.retrying + tally.dead;
    if sent == 0 && !tally.gone {
        return Ok(());
    }
    writeln!(
        out,
        "{name}: sent {sent}, {} delivered, {} failed{}",
        tally.delivered,
        tally.retrying + tally.dead,
        if tally.gone {
            " (410 Gone: webhook DISABLED)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn watch_scans_for_expiries_at_start_at_the_next_expiry_and_once_a_minute() {
        let mut gate = ExpiryGate::default();
        assert!(gate.due(at("2026-11-23T10:00:00Z")), "the first pass scans");
        gate.scanned(at("2026-11-23T10:00:00Z"), Some(at("2026-11-23T10:00:20Z")));
        assert!(!gate.due(at("2026-11-23T10:00:01Z")));
        assert!(!gate.due(at("2026-11-23T10:00:19Z")));
        assert!(
            gate.due(at("2026-11-23T10:00:20Z")),
            "the expiry seen ahead"
        );
        gate.scanned(at("2026-11-23T10:00:20Z"), None);
        assert!(!gate.due(at("2026-11-23T10:01:19Z")));
        assert!(
            gate.due(at("2026-11-23T10:01:20Z")),
            "a minute after the last"
        );
        assert!(gate.due(at("2026-11-23T09:00:00Z")), "a clock set back");
    }
}
